//! In-memory geo index of located things (rstar), queried in metres (geodesic).

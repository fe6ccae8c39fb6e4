//! API-key authentication: `Authorization: Bearer …` → a principal (admin or one building).

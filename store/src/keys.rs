//! API keys: created with a random secret, stored as a SHA-256 hash, verified in constant time.

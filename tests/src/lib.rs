//! End-to-end test support lives in tests/tests/; this library is intentionally empty.

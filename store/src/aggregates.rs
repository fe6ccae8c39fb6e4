//! Time aggregation of readings (`time_bucket`), with every bucket of a window present.

//! Parameters of time-aggregation requests (`bucket`, `agg`, window limits).

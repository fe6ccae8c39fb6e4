//! Open-data exports (Parquet/CSV with DCAT-AP.de metadata). Empty until the open-data issue;
//! the crate exists so the workspace layout is fixed from the start.

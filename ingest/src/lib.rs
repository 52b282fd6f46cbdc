//! vellum-ingest

//! vellum-store

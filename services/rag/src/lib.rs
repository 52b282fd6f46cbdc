//! vellum-rag

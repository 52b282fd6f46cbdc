//! The JSON shapes of the API under `/v1`: the application layer's request and response types
//! (`vellum_app::types`), which derive their OpenAPI schemas, so `/v1/openapi.json` describes
//! exactly what the service takes and returns.

pub use vellum_app::types::*;

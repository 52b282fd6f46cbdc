//! Prometheus metrics (`GET /metrics`, OpenMetrics text): requests and latency per route, the
//! upload (ingest) and generation queues, and how long the models took to load.
//!
//! Labels are bounded: the route is actix's pattern (`/v1/documents/{id}`), never the path a
//! client sent, so a scanner cannot blow up the series count or plant document ids in them.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    method: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: String,
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    role: String,
    model: String,
}

fn latency_histogram() -> Histogram {
    // 1 ms … ~33 s: searches sit at the bottom, answers from a CPU model near the top.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Every metric the server exports.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabels, Histogram, fn() -> Histogram>,
    ingest_queue: Gauge,
    ingested: Family<OutcomeLabels, Counter>,
    generation_queue: Gauge,
    model_load: Family<ModelLabels, Gauge<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric under the `vellum_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("vellum");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register(
            "http_requests",
            "HTTP requests answered, by route pattern, method and status",
            requests.clone(),
        );
        let latency: Family<RouteLabels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "http_request_duration_seconds",
            "Time to answer (for streamed answers: to the response head), by route and method",
            latency.clone(),
        );
        let ingest_queue = Gauge::default();
        registry.register(
            "ingest_queue_depth",
            "Uploads waiting for or in ingestion",
            ingest_queue.clone(),
        );
        let ingested = Family::<OutcomeLabels, Counter>::default();
        registry.register(
            "ingested_documents",
            "Uploaded documents by outcome (indexed, duplicate, quarantined, failed)",
            ingested.clone(),
        );
        let generation_queue = Gauge::default();
        registry.register(
            "generation_queue_depth",
            "Answers and summaries waiting for or running on the model",
            generation_queue.clone(),
        );
        let model_load = Family::<ModelLabels, Gauge<f64, AtomicU64>>::default();
        registry.register(
            "model_load_seconds",
            "Seconds each model took to load at start-up",
            model_load.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            ingest_queue,
            ingested,
            generation_queue,
            model_load,
        }
    }

    /// Counts one answered request.
    pub fn observe_request(&self, route: &str, method: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                method: method.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                route: route.to_string(),
                method: method.to_string(),
            })
            .observe(seconds);
    }

    /// Records how long a model took to load (`role`: `embedder` or `generator`).
    pub fn record_model_load(&self, role: &str, model: &str, seconds: f64) {
        self.model_load
            .get_or_create(&ModelLabels {
                role: role.to_string(),
                model: model.to_string(),
            })
            .set(seconds);
    }

    /// Counts an upload's outcome.
    pub fn count_ingest(&self, outcome: &str) {
        self.ingested
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Holds one place in the upload queue until dropped.
    /// Ingests and answers running or waiting now: (ingest, generation).
    pub fn queue_depths(&self) -> (i64, i64) {
        (self.ingest_queue.get(), self.generation_queue.get())
    }

    pub fn ingest_slot(&self) -> QueueSlot {
        QueueSlot::new(self.ingest_queue.clone())
    }

    /// Holds one place in the generation queue until dropped.
    pub fn generation_slot(&self) -> QueueSlot {
        QueueSlot::new(self.generation_queue.clone())
    }

    /// The OpenMetrics text exposition.
    pub fn encode(&self) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        Ok(text)
    }
}

/// A place in a queue gauge, given back when dropped (also on error paths and panics).
pub struct QueueSlot(Gauge);

impl QueueSlot {
    fn new(gauge: Gauge) -> QueueSlot {
        gauge.inc();
        QueueSlot(gauge)
    }
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        self.0.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposition_has_routes_queues_and_models() {
        let metrics = Metrics::new();
        metrics.observe_request("/v1/search", "POST", 200, 0.012);
        metrics.observe_request("/v1/search", "POST", 200, 0.020);
        metrics.record_model_load("generator", "SmolLM2", 0.5);
        let slot = metrics.ingest_slot();
        let text = metrics.encode().unwrap_or_default();
        assert!(
            text.contains(
                r#"vellum_http_requests_total{route="/v1/search",method="POST",status="200"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("vellum_ingest_queue_depth 1"), "{text}");
        assert!(text.contains(r#"vellum_model_load_seconds{role="generator",model="SmolLM2"} 0.5"#));
        drop(slot);
        let text = metrics.encode().unwrap_or_default();
        assert!(text.contains("vellum_ingest_queue_depth 0"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}

//! Prometheus metrics, one registry per server instance (tests run several in a process).

use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder,
};

#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    requests: IntCounterVec,
    latency: HistogramVec,
    pool: IntGaugeVec,
}

impl Metrics {
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "paraply_http_requests_total",
                "HTTP requests by FHIR interaction and status",
            ),
            &["interaction", "status"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "paraply_http_request_duration_seconds",
                "Request latency by FHIR interaction",
            )
            .buckets(vec![
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["interaction"],
        )?;
        let pool = IntGaugeVec::new(
            Opts::new(
                "paraply_db_pool_connections",
                "Database pool connections by pool and state",
            ),
            &["pool", "state"],
        )?;
        registry.register(Box::new(requests.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(pool.clone()))?;
        Ok(Metrics {
            registry,
            requests,
            latency,
            pool,
        })
    }

    pub fn observe(&self, interaction: &str, status: u16, seconds: f64) {
        self.requests
            .with_label_values(&[interaction, &status.to_string()])
            .inc();
        self.latency
            .with_label_values(&[interaction])
            .observe(seconds);
    }

    pub fn set_pool(&self, pool: &str, size: u32, idle: u32) {
        self.pool
            .with_label_values(&[pool, "open"])
            .set(i64::from(size));
        self.pool
            .with_label_values(&[pool, "idle"])
            .set(i64::from(idle));
    }

    pub fn render(&self) -> String {
        let mut out = Vec::new();
        let encoder = TextEncoder::new();
        if encoder.encode(&self.registry.gather(), &mut out).is_err() {
            return String::new();
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

//! Prometheus metrics of the server: commands by outcome, the latency of a
//! command's decide-and-append, HTTP responses by route and status, and the
//! lag of every read model (refreshed when `/metrics` is scraped).

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// Buckets of the append latency histogram, in seconds.
const APPEND_SECONDS_BUCKETS: &[f64] = &[
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
];

#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    /// `outcome`: accepted, rejected, conflict, forbidden, malformed, failed.
    pub commands: IntCounterVec,
    pub append_seconds: HistogramVec,
    pub responses: IntCounterVec,
    pub projector_lag_positions: IntGaugeVec,
    pub projector_lag_seconds: GaugeVec,
}

impl Metrics {
    pub fn new() -> Self {
        let registry = Registry::new();
        let commands = IntCounterVec::new(
            Opts::new("pathway_commands_total", "Commands handled, by outcome"),
            &["outcome"],
        )
        .expect("metric definition");
        let append_seconds = HistogramVec::new(
            HistogramOpts::new(
                "pathway_command_append_seconds",
                "Time to decide and append one command, by aggregate",
            )
            .buckets(APPEND_SECONDS_BUCKETS.to_vec()),
            &["aggregate"],
        )
        .expect("metric definition");
        let responses = IntCounterVec::new(
            Opts::new(
                "pathway_http_responses_total",
                "HTTP responses, by route and status",
            ),
            &["route", "status"],
        )
        .expect("metric definition");
        let projector_lag_positions = IntGaugeVec::new(
            Opts::new(
                "pathway_projector_lag_positions",
                "Log positions a read model is behind the head",
            ),
            &["model"],
        )
        .expect("metric definition");
        let projector_lag_seconds = GaugeVec::new(
            Opts::new(
                "pathway_projector_lag_seconds",
                "Commit-time distance between a read model's checkpoint and the head",
            ),
            &["model"],
        )
        .expect("metric definition");
        for c in [&commands, &responses] {
            registry.register(Box::new(c.clone())).expect("register");
        }
        registry
            .register(Box::new(append_seconds.clone()))
            .expect("register");
        registry
            .register(Box::new(projector_lag_positions.clone()))
            .expect("register");
        registry
            .register(Box::new(projector_lag_seconds.clone()))
            .expect("register");
        Metrics {
            registry,
            commands,
            append_seconds,
            responses,
            projector_lag_positions,
            projector_lag_seconds,
        }
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut out)
            .expect("text encoding into a Vec does not fail");
        String::from_utf8(out).expect("the text format is UTF-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

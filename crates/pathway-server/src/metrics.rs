//! Prometheus metrics of the server: commands by outcome, the latency of a
//! command's decide-and-append, HTTP responses by route and status, the lag
//! of every read model (refreshed when `/metrics` is scraped), and the
//! background workers (refreshed by [`crate::workers`] every
//! [`crate::workers::METRICS_REFRESH_MS`]): relay lag and leadership, saga
//! timers pending and overdue, sweeper leadership, hash-chain verification.

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge,
    IntGaugeVec, Opts, Registry, TextEncoder,
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
    /// Positions the relay's checkpoint is behind the head.
    pub relay_lag_positions: IntGauge,
    /// 1 while this instance leads the relay.
    pub relay_leader: IntGauge,
    /// Pending saga timers.
    pub saga_timers_pending: IntGauge,
    /// Pending saga timers past their due time by more than `timer_overdue_after_ms`.
    pub saga_timers_overdue: IntGauge,
    /// Saga timers this instance fired.
    pub saga_timers_fired: IntCounter,
    /// 1 while this instance leads the workflows (routers and timer sweeper).
    pub saga_sweeper_leader: IntGauge,
    /// Bad positions found by the periodic tail verification of the hash chain.
    pub chain_verification_failures: IntCounter,
    /// The last position the tail verification has checked.
    pub chain_verified_position: IntGauge,
    /// 1 when a worker runs (or stands by) healthily, 0 when it failed,
    /// absent when switched off; by `worker`.
    pub worker_up: IntGaugeVec,
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
        let gauge = |name: &str, help: &str| {
            let g = IntGauge::new(name, help).expect("metric definition");
            registry.register(Box::new(g.clone())).expect("register");
            g
        };
        let counter = |name: &str, help: &str| {
            let c = IntCounter::new(name, help).expect("metric definition");
            registry.register(Box::new(c.clone())).expect("register");
            c
        };
        let relay_lag_positions = gauge(
            "pathway_relay_lag_positions",
            "Log positions the relay's checkpoint is behind the head",
        );
        let relay_leader = gauge(
            "pathway_relay_leader",
            "1 while this instance leads the NATS relay",
        );
        let saga_timers_pending = gauge("pathway_saga_timers_pending", "Pending saga timers");
        let saga_timers_overdue = gauge(
            "pathway_saga_timers_overdue",
            "Pending saga timers past their due time by more than timer_overdue_after_ms",
        );
        let saga_timers_fired = counter(
            "pathway_saga_timers_fired_total",
            "Saga timers this instance fired",
        );
        let saga_sweeper_leader = gauge(
            "pathway_saga_sweeper_leader",
            "1 while this instance leads the workflows (saga routers and timer sweeper)",
        );
        let chain_verification_failures = counter(
            "pathway_chain_verification_failures_total",
            "Bad positions found by the periodic tail verification of the hash chain",
        );
        let chain_verified_position = gauge(
            "pathway_chain_verified_position",
            "Last log position checked by the periodic tail verification",
        );
        let worker_up = IntGaugeVec::new(
            Opts::new(
                "pathway_worker_up",
                "1 when a background worker runs or stands by, 0 when it failed",
            ),
            &["worker"],
        )
        .expect("metric definition");
        registry
            .register(Box::new(worker_up.clone()))
            .expect("register");
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
            relay_lag_positions,
            relay_leader,
            saga_timers_pending,
            saga_timers_overdue,
            saga_timers_fired,
            saga_sweeper_leader,
            chain_verification_failures,
            chain_verified_position,
            worker_up,
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

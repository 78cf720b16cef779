//! `GET /metrics`: the counters and the histogram the engine, the checks and the
//! listener record (through the `metrics` facade into metrics-exporter-prometheus's
//! recorder), then gauges of the state, computed at each scrape in a recorder of
//! their own (so a service that is gone leaves no stale series).

use alertcore_checks::heartbeat::Standing;
use metrics::{Unit, describe_gauge, gauge};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::status::StatusOut;

/// The check duration histogram's buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// The Prometheus exposition of this process.
#[derive(Clone)]
pub(crate) struct Prom {
    handle: PrometheusHandle,
}

impl std::fmt::Debug for Prom {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Prom").finish_non_exhaustive()
    }
}

impl Prom {
    /// Installs the process-wide recorder (once per process).
    ///
    /// # Errors
    /// A recorder is already installed.
    pub(crate) fn install() -> Result<Self, String> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full(alertcore::telemetry::CHECK_DURATION.to_owned()),
                &BUCKETS,
            )
            .and_then(PrometheusBuilder::install_recorder)
            .map_err(|e| format!("cannot set up /metrics: {e}"))?;
        alertcore::telemetry::describe();
        Ok(Self { handle })
    }

    /// The exposition: what was counted, then the state in `out`.
    pub(crate) fn render(&self, out: &StatusOut) -> String {
        self.handle.run_upkeep();
        let mut text = self.handle.render();
        let state = PrometheusBuilder::new().build_recorder();
        metrics::with_local_recorder(&state, || record_state(out));
        text.push_str(&state.handle().render());
        text
    }
}

/// Sets the state gauges from `out`.
fn record_state(out: &StatusOut) {
    describe_gauge!(
        "alertcore_service_failing",
        "1 while the service has a failure streak, else 0."
    );
    describe_gauge!(
        "alertcore_service_streak_failures",
        "Failures in the service's current streak."
    );
    describe_gauge!(
        "alertcore_outbox_deliveries",
        "Deliveries in the outbox, by status (pending, failed)."
    );
    describe_gauge!(
        "alertcore_check_status",
        "The check's last result: 0 ok, 1 warning, 2 critical, 3 unknown."
    );
    describe_gauge!(
        "alertcore_heartbeat_up",
        "1 while the heartbeat is up (or has not had its first run yet), 0 while down."
    );
    describe_gauge!(
        "alertcore_heartbeat_last_success_timestamp_seconds",
        Unit::Seconds,
        "When the heartbeat's last good run finished, as a Unix time."
    );
    for s in &out.services {
        gauge!("alertcore_service_failing", "service" => s.service.clone())
            .set(f64::from(u8::from(s.failing)));
        gauge!("alertcore_service_streak_failures", "service" => s.service.clone())
            .set(f64::from(s.consecutive_failures));
    }
    for (status, n) in [
        ("pending", out.outbox_pending),
        ("failed", out.outbox_failed),
    ] {
        #[allow(clippy::cast_precision_loss)]
        gauge!("alertcore_outbox_deliveries", "status" => status).set(n as f64);
    }
    for c in &out.checks {
        if let Some(last) = &c.state.last {
            gauge!("alertcore_check_status", "check" => c.name.clone())
                .set(f64::from(last.outcome.status.code()));
        }
    }
    for h in &out.heartbeats {
        let up = !matches!(h.assessment.standing, Standing::Down(_));
        gauge!("alertcore_heartbeat_up", "heartbeat" => h.name.clone())
            .set(f64::from(u8::from(up)));
        if let Some(t) = h.assessment.last_success {
            #[allow(clippy::cast_precision_loss)]
            gauge!("alertcore_heartbeat_last_success_timestamp_seconds", "heartbeat" => h.name.clone())
                .set(t.as_millis() as f64 / 1000.0);
        }
    }
}

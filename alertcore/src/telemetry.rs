//! What alertcore counts, through the [`metrics`](https://docs.rs/metrics) facade.
//!
//! The engine and the sources record into whatever recorder the program installed
//! (none: the calls cost next to nothing). `alertctl run`'s `/metrics` installs
//! `metrics-exporter-prometheus`; an embedder may install its own and call
//! [`describe`] for the help texts. The names follow Prometheus' conventions.

/// Counter: events recorded, by `event` (`failure`, `success`) and `duplicate`
/// (`true` for a failure whose invocation id its streak already had).
pub const EVENTS: &str = "alertcore_events_total";
/// Counter: delivery attempts, by `notifier` and `outcome` (`delivered`, `retry`,
/// `handed_over`, `lost`).
pub const NOTIFICATIONS: &str = "alertcore_notifications_total";
/// Histogram: how long check runs took, in seconds, by check `kind`.
pub const CHECK_DURATION: &str = "alertcore_check_duration_seconds";
/// Counter: heartbeat signals a listener recorded, by `kind`.
pub const PINGS: &str = "alertcore_pings_total";

/// Registers the help text and unit of every metric above with the installed recorder.
pub fn describe() {
    use metrics::{Unit, describe_counter, describe_histogram};
    describe_counter!(
        EVENTS,
        "Failure and success events the engine recorded, by event and duplicate."
    );
    describe_counter!(
        NOTIFICATIONS,
        "Delivery attempts, by notifier and outcome (delivered, retry, handed_over, lost)."
    );
    describe_histogram!(
        CHECK_DURATION,
        Unit::Seconds,
        "How long polling check runs took, by kind."
    );
    describe_counter!(PINGS, "Heartbeat signals the listener recorded, by kind.");
}

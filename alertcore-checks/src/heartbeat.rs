//! Heartbeats: jobs that must call in. Each signal a job sends (success, start, fail,
//! an exit status, a log line) is recorded in the store; what they mean — late, still
//! running, failed, finished too fast, ran too early, N failures in a window — is
//! judged from them ([`assess`]) and told to the engine as the failure or success of a
//! service of the heartbeat's name ([`evaluate`]).

mod assess;
mod evaluate;
pub mod monitor;
mod spec;

pub use assess::{Assessment, Problem, Standing, assess, kind, local};
pub use evaluate::{
    BODY_CAP, Evaluation, HeartbeatState, KEEP, Recorded, SOURCE_KIND, assess_stored, evaluate,
    first_seen, record, save_created,
};
pub use monitor::{Handle, Monitor, PingError};
pub use spec::{DEFAULT_GRACE, Expect, Failures, Heartbeat, check_name, heartbeats};

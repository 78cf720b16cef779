//! Watching the systemd journal for alertcore (`[journal]` in `alertctl run`):
//! Pyruse-style chains of filters and actions over every entry, with counters, bans,
//! alerts through the same engine as every other event, and the lines for a daily
//! report, all saved with the journal cursor so that a restart at any point loses no
//! entry and acts on none twice.
//!
//! - [`entry`]: one entry as `journalctl -o json` prints it (binary fields decoded
//!   lossily);
//! - [`spec`]: `[journal]` and `[journal.chains]`, read from the config with errors at
//!   the step;
//! - [`chain`]: an entry through the chains;
//! - [`state`]: what the chains remember, saved as the store's source rows;
//! - [`follow`]: journalctl as a child process, its matches pushed down;
//! - [`watch`]: the daemon's loop, and the dry run of `alertctl journal test`.
//!
//! Why journalctl and not sd-journal: no C library to link (libsystemd's journal API
//! would need `libsystemd-dev` at build time and ties the binary to it), journalctl's
//! own cursor, match and rotation handling are the reference behaviour, and it runs
//! in its own process, beside the chains, on another core.

pub mod act;
pub mod chain;
pub mod entry;
pub mod follow;
pub mod report;
pub mod spec;
pub mod state;
pub mod text;
pub mod watch;

pub use chain::{Alert, Outcome, Runner};
pub use entry::Entry;
pub use spec::{Chains, Class, JournalConfig, ReportConfig, Start};
pub use state::State;
pub use watch::{Handle, dry_run, spawn};

//! What [`Router::plan`] decided and why, rule by rule: the explanation `alertctl test`
//! and `--trace` print (public as [`crate::explain`]).

use std::fmt::Write as _;

use serde::Serialize;

use super::{Router, Rule};
use crate::policy::{Decision, ServiceState};

/// The result of [`Router::plan`]: the new state, one decision per notifier and the
/// explanation.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct Plan {
    /// The state to store.
    #[serde(skip)]
    pub next: ServiceState,
    /// One decision per notifier, in the order given.
    pub decisions: Vec<Decision>,
    /// How the rules were evaluated.
    pub rules: Vec<RuleTrace>,
}

/// How one rule was evaluated.
#[derive(Debug, Clone, Serialize)]
#[non_exhaustive]
pub struct RuleTrace {
    /// Its position.
    pub index: usize,
    /// Its config line.
    pub line: usize,
    /// What happened.
    #[serde(flatten)]
    pub outcome: RuleOutcome,
    /// Notes about recipients it did not route (already routed, ignored, unknown).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<(String, String)>,
}

/// Whether a rule matched, and if not why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum RuleOutcome {
    /// It matched and routed the event to its recipients.
    Matched,
    /// It matched and dropped the event (`ignore = true`).
    Ignored,
    /// A matcher failed.
    NoMatch {
        /// Which, and why.
        why: String,
    },
    /// Not evaluated: an earlier matching rule had `stop = true`.
    Stopped {
        /// That rule's position.
        by: usize,
    },
    /// An `unmatched = true` rule left out because other rules sent the alert.
    NotNeeded,
    /// A recovery: it goes back through the rule that alerted each recipient.
    Recovery,
}

impl Plan {
    /// The explanation as text, one rule or recipient per line, as `alertctl test` and
    /// `--trace` print it.
    pub fn explain(&self, router: &Router) -> String {
        explain(router, &self.rules, &self.decisions)
    }
}

/// The explanation of `rules` and `decisions` (of a [`Plan`] or a
/// [`Report`](crate::Report)) as text, one rule or recipient per line.
pub fn explain(router: &Router, rules: &[RuleTrace], decisions: &[Decision]) -> String {
    let mut out = String::new();
    if rules.is_empty() && router.rules.is_empty() {
        out.push_str("no [[rules]]: every notifier gets every event\n");
    }
    for t in rules {
        let name = router
            .rule(t.index)
            .map_or_else(|| format!("rule {}", t.index), Rule::name);
        let unmatched = router.rule(t.index).is_some_and(|r| r.unmatched);
        let tag = if unmatched { " [unmatched]" } else { "" };
        let _ = match &t.outcome {
            RuleOutcome::Matched => writeln!(out, "{name}{tag}: matched"),
            RuleOutcome::Ignored => writeln!(out, "{name}{tag}: matched, ignore: event dropped"),
            RuleOutcome::NoMatch { why } => writeln!(out, "{name}{tag}: no match: {why}"),
            RuleOutcome::Stopped { by } => {
                writeln!(out, "{name}{tag}: not evaluated: stopped by rule {by}")
            }
            RuleOutcome::NotNeeded => writeln!(
                out,
                "{name}{tag}: not needed: other rules sent the alert (or hold it back by repeat)"
            ),
            RuleOutcome::Recovery => writeln!(
                out,
                "{name}{tag}: recovery: goes to whoever this rule alerted in the streak"
            ),
        };
        for d in decisions.iter().filter(|d| d.rule == Some(t.index)) {
            let _ = writeln!(out, "    {}: {}", d.notifier, d.action);
        }
        for (n, note) in &t.notes {
            let _ = writeln!(out, "    {n}: {note}");
        }
    }
    for d in decisions.iter().filter(|d| d.rule.is_none()) {
        let _ = writeln!(out, "{}: {}", d.notifier, d.action);
    }
    out
}

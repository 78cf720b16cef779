//! The built-in templates. `full` reproduces what alertcore wrote before templates
//! existed, so its output is a stable reference for every transport's tests.
//!
//! `full`'s three are also written out in Rust (`Model::full_subject`, `full_body`,
//! `full_line` in `model.rs`), which is what renders them; a test holds the two equal,
//! so a change goes into both.

/// `[web1] FAILED: backup.service (exit-code, status=1)`;
/// `[web1] RECOVERED: backup.service (after 3 failures)`, `(after 3 failures, 3
/// restarts)` when systemd restarted it.
pub(super) const FULL_SUBJECT: &str = concat!(
    "[{{ host }}] {{ event_word }}: {{ service }} (",
    "{% if event == \"recovery\" %}after {{ streak_length }} failure",
    "{{ \"s\" if streak_length != 1 else \"\" }}",
    "{% if restarts %}, {{ restarts }} restart{{ \"s\" if restarts != 1 else \"\" }}{% endif %}",
    "{% else %}{{ summary }}{% endif %})",
    "{% if show_rule_id and rule %} [{{ rule.text }}]{% endif %}",
);

/// The subject, then for failure-kind events `, 3 failures since <time>: <message>`;
/// `[web1] OUTPUT: backup.service (success)` for a run's output.
pub(super) const FULL_LINE: &str = concat!(
    "{{ subject }}{% if event != \"recovery\" and event != \"output\" and event != \"digest\" %}, {{ streak_length }} failure",
    "{{ \"s\" if streak_length != 1 else \"\" }} since {{ streak_start }}",
    "{% if message %}: {{ message }}{% endif %}{% endif %}",
    "{% if fallback_for %} (instead of {{ fallback_for.notifier }}: {{ fallback_for.error }}){% endif %}",
);

/// The summary, the failure history as a table, and the journal excerpt if there is one;
/// a digest's text for a digest.
pub(super) const FULL_BODY: &str = r##"{% if digest %}{{ digest.text }}{% else %}{% set streak = streak_length ~ " consecutive failure" ~ ("s" if streak_length != 1 else "") ~ " since " ~ streak_start ~ " (" ~ duration ~ ")" -%}
Service:   {{ service }}
Host:      {{ host }}
Event:     {{ event }}
{% if ack %}Acknowledged by {{ ack.by }} at {{ ack.time }}{% if ack.comment %}: {{ ack.comment }}{% endif %}
{% endif -%}
{% if failures %}Severity:  {{ severity }}
Result:    {{ result }}
Exit code: {{ exit_code or "-" }}
Status:    {{ exit_status or "-" }}
{% if invocation_id %}Invocation: {{ invocation_id }}
{% endif %}{% if message %}Message:   {{ message }}
{% endif %}{% endif %}{% if event == "recovery" %}Recovered at {{ time }} after {{ streak }}{% elif event == "output" %}Succeeded at {{ time }}{% if invocation_id %}
Invocation: {{ invocation_id }}{% endif %}{% else %}Streak:    {{ streak }}{% endif %}
Sequence:  {{ sequence }}
{% if fallback_for %}Instead of: {{ fallback_for.notifier }}, which gave this alert up: {{ fallback_for.error }}
{% endif %}{% if show_rule_id and rule %}Rule:      {{ rule.text }}
{% endif %}{% if event != "output" %}
Failure history (oldest first):
  {{ "#"|pad(3) }} {{ "time"|pad(20) }} {{ "severity"|pad(8) }} {{ "result"|pad(16) }} {{ "code"|pad(8) }} {{ "status"|pad(7) }} invocation
{% for f in failures %}  {{ f.number|string|pad(3) }} {{ f.time|pad(20) }} {{ f.severity|pad(8) }} {{ f.result|pad(16) }} {{ (f.exit_code or "-")|pad(8) }} {{ (f.exit_status or "-")|pad(7) }} {{ f.invocation_id or "-" }}
{% endfor %}{% endif %}{% if journal %}
Journal of invocation {{ journal.invocation_id }} (last {{ journal.lines }} lines):
{{ journal.text }}
{% endif %}{% endif %}
"##;

/// One line for SMS and pagers, the important words first; cut to 160 bytes afterwards.
pub(super) const SHORT: &str = concat!(
    "{{ event_word }}{% if show_rule_id and rule %} [r{{ rule.index }}]{% endif %} ",
    "{{ service|cut(64) }} on {{ host|cut(32) }}: ",
    "{% if event == \"digest\" %}{{ summary }}",
    "{% elif event == \"output\" %}succeeded",
    "{% elif event == \"recovery\" %}OK after {{ streak_length }} failure",
    "{{ \"s\" if streak_length != 1 else \"\" }}",
    "{% if restarts %}, {{ restarts }} restart{{ \"s\" if restarts != 1 else \"\" }}{% endif %}",
    " in {{ duration }}",
    "{% else %}{{ summary|cut(40) }}, {{ streak_length }}x in {{ duration }}",
    "{% if message %}: {{ message }}{% endif %}{% endif %}",
);

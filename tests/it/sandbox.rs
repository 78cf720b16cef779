//! The systemd sandbox shared by the tests that need a real systemd.
//!
//! systemd runs as PID 1 of its own namespaces (`tests/peers/systemd-sandbox.sh`, whose
//! header explains why it must never be started any other way), which needs root and a
//! machine whose init is not systemd. Where it cannot run, a test says why and passes,
//! except under CI (`CI` set), where that is a failure ([`skip_unless_available`]).
//!
//! The tests using it wait in real time (polling with deadlines): the clock they would
//! have to pause is PID 1's.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/systemd-sandbox.sh"
);
/// The shipped unit files.
pub(crate) const UNITS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/systemd");
/// How long one step may take; it takes well under a second when things work.
pub(crate) const DEADLINE: Duration = Duration::from_secs(20);

/// Whether the test `what` must be skipped because the sandbox cannot run here: says why
/// and returns `true`; under CI (`CI` set) that is a failure instead (a panic).
pub(crate) fn skip_unless_available(what: &str) -> bool {
    let Err(why) = Sandbox::check() else {
        return false;
    };
    assert!(!crate::under_ci(), "{what} cannot run under CI: {why}");
    eprintln!("skipping {what}: {why}");
    true
}

/// A running sandbox; stopped on drop, also when the test panics (after printing the
/// end of its journal).
pub(crate) struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    /// Why the sandbox cannot run here, if it cannot.
    fn check() -> Result<(), String> {
        let out = Command::new("bash")
            .args([SCRIPT, "check"])
            .output()
            .map_err(|e| format!("cannot run bash: {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
    }

    /// Starts a sandbox in `dir` (its units, journal and bookkeeping go there).
    pub(crate) fn start(dir: PathBuf) -> Self {
        Self::start_with_overlays(dir, &[])
    }

    /// [`Sandbox::start`], with a private overlay over each of `paths` (`/etc`,
    /// `/var/lib`, ...) inside: what is installed or written there stays in the sandbox.
    pub(crate) fn start_with_overlays(dir: PathBuf, paths: &[&str]) -> Self {
        std::fs::create_dir_all(&dir).expect("mkdir sandbox");
        // Constructed first: a start that fails half-way still gets stopped.
        let sb = Self { dir };
        let out = sb
            .command(&["start"])
            .env("SANDBOX_OVERLAY", paths.join(" "))
            .output()
            .expect("run the sandbox script");
        assert!(out.status.success(), "sandbox start: {}", text(&out));
        std::fs::create_dir_all(sb.units()).expect("units dir");
        sb
    }

    /// The only unit directory the sandbox's systemd reads.
    pub(crate) fn units(&self) -> PathBuf {
        self.dir.join("units")
    }

    fn script(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run the sandbox script")
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("bash");
        cmd.arg(SCRIPT).args(args).env("SANDBOX", &self.dir);
        cmd
    }

    /// `systemctl ARGS` inside the sandbox: its standard output; panics when it fails.
    pub(crate) fn systemctl(&self, args: &[&str]) -> String {
        let out = self.script(&[&["run", "systemctl", "--no-pager"], args].concat());
        assert!(out.status.success(), "systemctl {args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ARGS` run inside the sandbox's namespaces; panics when it fails.
    pub(crate) fn run(&self, args: &[&str]) -> String {
        let out = self.script(&[&["run"], args].concat());
        assert!(out.status.success(), "{args:?}: {}", text(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The sandbox's journal directory.
    pub(crate) fn journal_dir(&self) -> PathBuf {
        self.dir.join("journal")
    }

    /// `systemctl ARGS` inside the sandbox, whatever its exit status: stdout and stderr.
    pub(crate) fn systemctl_output(&self, args: &[&str]) -> Output {
        self.script(&[&["run", "systemctl", "--no-pager"], args].concat())
    }

    /// The property `name` of `unit` (`systemctl show --value`).
    pub(crate) fn prop(&self, unit: &str, name: &str) -> String {
        self.systemctl(&["show", "--value", "-p", name, unit])
            .trim()
            .to_owned()
    }

    /// `systemctl status UNIT`, for messages: its output also when it exits non-zero (as
    /// it does for a unit that is not active).
    pub(crate) fn status(&self, unit: &str) -> String {
        text(&self.script(&["run", "systemctl", "--no-pager", "-l", "status", unit]))
    }

    /// Waits until `unit` is in `state`, `also` holds and no job is queued: the handler
    /// job is queued as the unit changes state, so then it has run.
    pub(crate) fn settle(&self, unit: &str, state: &str, also: impl Fn() -> bool) {
        let start = Instant::now();
        loop {
            let jobs = self.systemctl(&["list-jobs", "--no-legend"]);
            if self.prop(unit, "ActiveState") == state && also() && jobs.trim().is_empty() {
                return;
            }
            assert!(
                start.elapsed() < DEADLINE,
                "{unit} did not settle in state {state}; jobs:\n{jobs}\n{}",
                self.status(unit),
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The sandbox's journal, read from outside it.
    pub(crate) fn journal(&self, args: &[&str]) -> String {
        let out = Command::new("journalctl")
            .args(["--no-pager", "-q", "-D"])
            .arg(self.dir.join("journal"))
            .args(args)
            .output()
            .expect("run journalctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Installs the shipped handler units and the prefix drop-in that keeps them from
    /// triggering handlers for themselves, as an administrator does, plus a test drop-in
    /// per handler: the binary, config and state of the work dir `w` (`w/alertctl`,
    /// `w/alertcore.toml`, `w/state.db`). Wiring units to them is the caller's part.
    pub(crate) fn install_handlers(&self, w: &Path) {
        let units = self.units();
        let shipped = Path::new(UNITS);
        for f in ["alertcore-failure@.service", "alertcore-success@.service"] {
            std::fs::copy(shipped.join(f), units.join(f)).expect("copy unit");
        }
        self.install_shipped(
            "alertcore-.service.d/10-alertcore.conf",
            "alertcore-.service.d/10-alertcore.conf",
        );
        let wd = w.display();
        for kind in ["failure", "success"] {
            // StateDirectory= is reset so the test does not create /var/lib/alertcore on
            // the host (the sandbox shares its file system); the hardening stays as
            // shipped.
            self.drop_in(
                &format!("alertcore-{kind}@.service"),
                "50-test.conf",
                &format!(
                    "[Service]\n\
                     ExecStart=\n\
                     ExecStart={wd}/alertctl {kind} -- %i\n\
                     Environment=ALERTCORE_CONFIG={wd}/alertcore.toml ALERTCORE_STATE={wd}/state.db\n\
                     StateDirectory=\n\
                     BindPaths={wd}\n"
                ),
            );
        }
    }

    /// Copies the shipped file `from` (relative to `systemd/`) to `to` in the units dir.
    pub(crate) fn install_shipped(&self, from: &str, to: &str) {
        self.install_shipped_with(from, to, |text| text.to_owned());
    }

    /// [`Sandbox::install_shipped`], the text passed through `edit` (to point its
    /// command lines at the binary under test, leaving them otherwise as shipped).
    pub(crate) fn install_shipped_with(&self, from: &str, to: &str, edit: impl Fn(&str) -> String) {
        let to = self.units().join(to);
        std::fs::create_dir_all(to.parent().expect("parent")).expect("mkdir");
        write(&to, &edit(&read(&Path::new(UNITS).join(from))));
    }

    /// Writes the drop-in `UNIT.d/NAME` (replacing an earlier one of that name); a
    /// `daemon-reload` makes it count.
    pub(crate) fn drop_in(&self, unit: &str, name: &str, text: &str) {
        let dir = self.units().join(format!("{unit}.d"));
        std::fs::create_dir_all(&dir).expect("mkdir");
        write(&dir.join(name), text);
    }

    /// `alertctl status --json` over the state of the work dir `w` (as
    /// [`Sandbox::install_handlers`] lays it out).
    pub(crate) fn alertctl_status(&self, w: &Path) -> Value {
        let out = Command::new(w.join("alertctl"))
            .args(["status", "--json"])
            .env("ALERTCORE_CONFIG", w.join("alertcore.toml"))
            .env("ALERTCORE_STATE", w.join("state.db"))
            .output()
            .expect("run alertctl status");
        assert!(out.status.success(), "alertctl status: {}", text(&out));
        serde_json::from_slice(&out.stdout).expect("status JSON")
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "--- sandbox journal (last 80 lines) ---\n{}",
                self.journal(&["-n", "80", "-o", "short-precise"])
            );
        }
        let out = self.script(&["stop"]);
        if !out.status.success() {
            eprintln!("sandbox stop: {}", text(&out));
        }
    }
}

/// A finished command's status and output, for messages.
fn text(out: &Output) -> String {
    let mut s = String::new();
    let _ = write!(
        s,
        "{}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s
}

/// Writes `text` to `path`, or panics naming it.
/// A work dir for units to see, with a copy of the `alertctl` under test in it (so a
/// unit can run it whatever the target dir's path). Under /tmp, not the target dir: a
/// checkout under /home would be hidden by ProtectHome=; the units see it through
/// BindPaths= (PrivateTmp=).
pub(crate) fn work_dir(prefix: &str) -> tempfile::TempDir {
    let work = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("temp dir");
    std::fs::copy(env!("CARGO_BIN_EXE_alertctl"), work.path().join("alertctl"))
        .expect("copy alertctl");
    work
}

pub(crate) fn write(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

/// Reads `path`, or panics naming it.
pub(crate) fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

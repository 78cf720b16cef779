//! `alertctl systemd install|uninstall`: the handler wiring as drop-ins, written and
//! removed by the tool so nobody copies unit files by hand.
//!
//! Every file written starts with [`MARK`]; `uninstall` removes only files that start
//! with it (and the drop-in directories that are empty afterwards), so it undoes exactly
//! what `install` did and never touches an admin's own drop-in of the same name.
//! `install` refuses to replace such a file.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Fail;
use crate::cli::{SystemdCommand, WireArgs};

/// The first line of every file `install` writes.
const MARK: &str =
    "# Written by `alertctl systemd install`; `alertctl systemd uninstall` removes it.";

/// The drop-in file name: the same as the recursion guard's, which is what lets the
/// guard replace the top-level wiring for alertcore's own units (see the guard).
const DROP_IN: &str = "10-alertcore.conf";

/// The recursion guard, as shipped (`systemd/alertcore-.service.d/10-alertcore.conf`).
const GUARD: &str = include_str!("../systemd/alertcore-.service.d/10-alertcore.conf");

/// One file of the wiring.
struct File {
    path: PathBuf,
    text: String,
}

/// The files `args` asks for.
fn files(args: &WireArgs) -> Result<Vec<File>, Fail> {
    let mut wiring = format!("{MARK}\n[Unit]\nOnFailure=alertcore-failure@%n.service\n");
    if !args.failure_only {
        wiring.push_str("OnSuccess=alertcore-success@%n.service\n");
    }
    let dir = &args.unit_dir;
    if args.all_services {
        return Ok(vec![
            File {
                path: dir.join("alertcore-.service.d").join(DROP_IN),
                text: format!("{MARK}\n{GUARD}"),
            },
            File {
                path: dir.join("service.d").join(DROP_IN),
                text: wiring,
            },
        ]);
    }
    args.units
        .iter()
        .map(|unit| {
            if unit.starts_with("alertcore-") {
                return Err(Fail::usage(format!(
                    "{unit}: alertcore's own units are not wired to the handlers (a handler \
                     for a handler would loop)"
                )));
            }
            if !unit.contains('.') || unit.contains('/') {
                return Err(Fail::usage(format!(
                    "{unit:?} is not a unit name: give it with its type, as backup.service"
                )));
            }
            Ok(File {
                path: dir.join(format!("{unit}.d")).join(DROP_IN),
                text: wiring.clone(),
            })
        })
        .collect()
}

/// Whether the file at `path` is one `install` wrote.
fn ours(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.starts_with(MARK))
}

pub(crate) fn run(action: &SystemdCommand) -> Result<u8, Fail> {
    let (args, install) = match action {
        SystemdCommand::Install(a) => (a, true),
        SystemdCommand::Uninstall(a) => (a, false),
    };
    let io = |what: &str, path: &Path, e: std::io::Error| {
        Fail::other(&std::io::Error::new(
            e.kind(),
            format!("{what} {}: {e}", path.display()),
        ))
    };
    let files = files(args)?;
    let mut changed = false;
    for f in &files {
        let exists = f.path.exists();
        if install {
            // the guard as shipped (the package's, copied by hand) already does the job
            if exists && std::fs::read_to_string(&f.path).is_ok_and(|t| t == GUARD) {
                println!("kept {} (the shipped guard)", f.path.display());
                continue;
            }
            if exists && !ours(&f.path) {
                return Err(Fail::usage(format!(
                    "{} exists and was not written by alertctl: leave it, or remove it first",
                    f.path.display()
                )));
            }
            if args.dry_run {
                println!("would write {}:\n{}", f.path.display(), f.text);
                continue;
            }
            if let Some(parent) = f.path.parent() {
                std::fs::create_dir_all(parent).map_err(|e| io("creating", parent, e))?;
            }
            std::fs::write(&f.path, &f.text).map_err(|e| io("writing", &f.path, e))?;
            println!("wrote {}", f.path.display());
            changed = true;
        } else if exists && ours(&f.path) {
            if args.dry_run {
                println!("would remove {}", f.path.display());
                continue;
            }
            std::fs::remove_file(&f.path).map_err(|e| io("removing", &f.path, e))?;
            println!("removed {}", f.path.display());
            // the drop-in directory goes too, when nothing else is in it
            if let Some(parent) = f.path.parent() {
                let _ = std::fs::remove_dir(parent);
            }
            changed = true;
        } else if exists {
            println!("left {} (not written by alertctl)", f.path.display());
        }
    }
    if changed && !args.no_reload && Path::new("/run/systemd/system").exists() {
        let ok = Command::new("systemctl")
            .arg("daemon-reload")
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("alertctl: systemctl daemon-reload failed: run it yourself");
            return Ok(1);
        }
    }
    Ok(0)
}

//! Running the programs actions queue (`exec`, `ban`): argv, no shell, a timeout that
//! kills the whole process group.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::process::Command;

use crate::state::Pending;

/// Output kept for the log.
const KEEP: usize = 4096;

/// Runs `p`; returns `Err` with what went wrong (exit status and output, a timeout, a
/// program that cannot be started).
///
/// # Errors
/// As said.
pub async fn run(p: &Pending) -> Result<(), String> {
    let Some((program, args)) = p.argv.split_first() else {
        return Err("no program".into());
    };
    let mut child = Command::new(program)
        .args(args)
        .envs(p.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot start {program}: {e}"))?;
    let pid = child.id();
    let mut out = child.stdout.take();
    let mut err = child.stderr.take();
    // both at once: a program that fills one pipe while the other is read would block
    let read = async {
        let (mut a, mut b) = (Vec::new(), Vec::new());
        tokio::join!(
            async {
                if let Some(o) = out.as_mut() {
                    let _ = o.read_to_end(&mut a).await;
                }
            },
            async {
                if let Some(e) = err.as_mut() {
                    let _ = e.read_to_end(&mut b).await;
                }
            }
        );
        a.extend(b);
        a
    };
    let timeout = Duration::from_millis(p.timeout_ms);
    let waited = tokio::time::timeout(timeout, async {
        let text = read.await;
        (child.wait().await, text)
    })
    .await;
    match waited {
        Ok((Ok(status), _)) if status.success() => Ok(()),
        Ok((Ok(status), text)) => {
            let text = String::from_utf8_lossy(&text[..text.len().min(KEEP)])
                .trim()
                .to_owned();
            Err(format!("{status}: {text}"))
        }
        Ok((Err(e), _)) => Err(e.to_string()),
        Err(_) => {
            if let Some(pid) = pid
                .and_then(|p| i32::try_from(p).ok())
                .and_then(rustix::process::Pid::from_raw)
            {
                let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
            }
            Err(format!(
                "timed out after {}",
                alertcore::duration::format(timeout)
            ))
        }
    }
}

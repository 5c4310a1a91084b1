//! Twilio's official Python library against the sandbox: if the sandbox's
//! shapes drift from Twilio's, the library's own parsing notices.
//!
//! Needs `python3 -m pip install twilio` (the interpreter is `HEIMDALL_PYTHON`,
//! default `python3`). The test fails, rather than skipping, when the package
//! is missing.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::sandbox;
use heimdall_sandbox::content_sid;

/// `HEIMDALL_PYTHON`, default `python3`. A relative path with a `/` is taken
/// from the workspace root (tests run in the crate's directory).
fn python() -> String {
    let chosen = std::env::var("HEIMDALL_PYTHON")
        .ok()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".into());
    let path = Path::new(&chosen);
    if chosen.contains('/') && path.is_relative() {
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let candidate = workspace.join(path);
        if candidate.exists() {
            return candidate.display().to_string();
        }
    }
    chosen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_twilio_library_creates_and_fetches_a_message() {
    let python = python();
    let probe = tokio::process::Command::new(&python)
        .args(["-c", "import twilio, sys; print(twilio.__version__)"])
        .output()
        .await;
    match &probe {
        Ok(out) if out.status.success() => {
            eprintln!(
                "using the twilio library {} via {python}",
                String::from_utf8_lossy(&out.stdout).trim()
            );
        }
        Ok(out) => panic!(
            "the official `twilio` Python package is not importable by `{python}`: {}\n\
             Install it with `{python} -m pip install twilio` (or set HEIMDALL_PYTHON to an \
             interpreter that has it, e.g. a venv: `python3 -m venv target/pyenv && \
             target/pyenv/bin/pip install twilio`, then HEIMDALL_PYTHON=target/pyenv/bin/python).",
            String::from_utf8_lossy(&out.stderr).trim()
        ),
        Err(e) => panic!(
            "could not run `{python}` ({e}); install Python 3 and `pip install twilio`, \
             or set HEIMDALL_PYTHON"
        ),
    }

    let sb = sandbox().await;
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/twilio_official.py");
    let base = sb.base_url().to_string();
    let run = tokio::process::Command::new(&python)
        .arg(&script)
        .arg(base.trim_end_matches('/'))
        .arg(sb.twilio_settings().account_sid)
        .arg(sb.auth_token())
        .arg(content_sid("task_reminder"))
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the script finishes within 60 s")
        .expect("the script runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "twilio_official.py failed ({}):\nstdout:\n{stdout}\nstderr:\n{stderr}",
        out.status
    );
    assert!(stdout.contains("official twilio library: ok"), "{stdout}");

    // What the library created is in the sandbox, as the library sent it.
    let messages = sb.state().messages();
    let first = messages
        .iter()
        .find(|m| m.body.as_deref() == Some("Hello from the official library"))
        .expect("the library's message reached the sandbox");
    assert_eq!(first.to, "whatsapp:+14155550101");
    assert!(stdout.contains(&first.sid));
    let templated = messages
        .iter()
        .find(|m| m.content_sid.as_deref() == Some(content_sid("task_reminder").as_str()))
        .expect("template message");
    assert_eq!(
        templated.variables.get("1").map(String::as_str),
        Some("Call Bob")
    );
    sb.stop().await;
}

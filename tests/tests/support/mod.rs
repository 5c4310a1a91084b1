//! Start the real binary on port 0 with a fresh database and read the port
//! from its log.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub fn bin() -> PathBuf {
    let path = std::env::var("HEIMDALL_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/debug/heimdall")
        });
    assert!(
        path.exists(),
        "the heimdall binary is not built at {} (run `cargo build -p heimdall-server` first, or set HEIMDALL_BIN)",
        path.display()
    );
    path
}

pub struct Server {
    pub child: Child,
    pub base: String,
    pub sandbox: Option<String>,
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for one server: a fresh database (SQLite file, or a fresh
/// PostgreSQL database and Redis namespace when the run asks for them).
pub async fn env_for(dir: &std::path::Path) -> Vec<(String, String)> {
    let url = heimdall_domain::testing::fresh_database_url(dir).await;
    let mut env = vec![
        ("HEIMDALL_DATABASE_URL".to_string(), url),
        (
            "HEIMDALL_DATA_DIR".to_string(),
            dir.join("data").display().to_string(),
        ),
        ("HEIMDALL_BIND".to_string(), "127.0.0.1:0".to_string()),
        ("HEIMDALL_STATUS_STEP_MS".to_string(), "100".to_string()),
    ];
    if let Some(r) = heimdall_domain::testing::redis_url() {
        env.push(("HEIMDALL_REDIS_URL".into(), r));
        env.push((
            "HEIMDALL_REDIS_NAMESPACE".into(),
            heimdall_domain::testing::unique("bb"),
        ));
    }
    env
}

/// Start `heimdall serve` and wait (with a deadline) until it says where it listens.
pub async fn start(extra: &[(&str, &str)]) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut env = env_for(dir.path()).await;
    for (k, v) in extra {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v.to_string()));
    }
    start_with(dir, env)
}

pub fn start_with(dir: tempfile::TempDir, env: Vec<(String, String)>) -> Server {
    let mut cmd = Command::new(bin());
    cmd.arg("serve")
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in &env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start heimdall");
    let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    let (tx, rx) = mpsc::channel::<String>();
    for stream in [
        Box::new(child.stderr.take().unwrap()) as Box<dyn std::io::Read + Send>,
        Box::new(child.stdout.take().unwrap()),
    ] {
        let tx = tx.clone();
        let log = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                log.lock().unwrap().push_str(&line);
                log.lock().unwrap().push('\n');
                let _ = tx.send(line);
            }
        });
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut base = None;
    let mut sandbox = None;
    while Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                if let Some(i) = line.find("sandbox=http://") {
                    sandbox = Some(
                        line[i + 8..]
                            .split_whitespace()
                            .next()
                            .unwrap()
                            .trim_end_matches('/')
                            .to_string(),
                    );
                }
                if let Some(i) = line.find("listening on http://") {
                    base = Some(
                        line[i + 13..]
                            .split_whitespace()
                            .next()
                            .unwrap()
                            .to_string(),
                    );
                    break;
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if let Ok(Some(status)) = child.try_wait() {
                    panic!("heimdall exited with {status}:\n{}", log.lock().unwrap());
                }
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    let base = base
        .unwrap_or_else(|| panic!("heimdall did not report its port:\n{}", log.lock().unwrap()));
    Server {
        child,
        base,
        sandbox,
        log,
        dir,
    }
}

impl Server {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Send SIGTERM and wait (with a deadline) for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill");
        let deadline = Instant::now() + Duration::from_secs(45);
        while Instant::now() < deadline {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!(
            "heimdall did not stop within 45 s after SIGTERM:\n{}",
            self.log()
        );
    }
}

//! The pieces `heimdall-bench chaos` runs Heimdall between: a TCP proxy that
//! can cut every connection or refuse new ones (in front of PostgreSQL, and
//! in front of the two `serve` processes as the address Twilio sees), a
//! private `redis-server`, and the `heimdall` processes themselves.
//!
//! Everything listens on 127.0.0.1 only; nothing here touches the machine's
//! own Redis or any database but the one the run made.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// A free loopback port (bound, then released for a child to take).
pub fn spare_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}

/// Poll `check` every 100 ms until it answers true or `within` has passed.
pub async fn wait_until<F, Fut>(what: &str, within: Duration, mut check: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    loop {
        if check().await {
            return Ok(());
        }
        if Instant::now() > deadline {
            anyhow::bail!("{what}: not ready within {} s", within.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A TCP proxy in front of one or more upstreams (tried in turn, starting
/// with the next in round-robin order, so a dead upstream is skipped).
#[derive(Clone)]
pub struct Proxy {
    pub addr: SocketAddr,
    /// Bumped to cut every open connection.
    generation: watch::Sender<u64>,
    refuse_until: Arc<Mutex<Option<Instant>>>,
}

impl Proxy {
    pub async fn start(upstreams: Vec<SocketAddr>) -> anyhow::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let (generation, _) = watch::channel(0u64);
        let proxy = Proxy {
            addr,
            generation,
            refuse_until: Arc::new(Mutex::new(None)),
        };
        let me = proxy.clone();
        let next = Arc::new(AtomicUsize::new(0));
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                let refusing = me
                    .refuse_until
                    .lock()
                    .unwrap()
                    .is_some_and(|t| Instant::now() < t);
                if refusing {
                    let _ = inbound.set_zero_linger();
                    drop(inbound);
                    continue;
                }
                let mut cut = me.generation.subscribe();
                let first = next.fetch_add(1, Ordering::Relaxed);
                let upstreams = upstreams.clone();
                tokio::spawn(async move {
                    let mut outbound = None;
                    for k in 0..upstreams.len() {
                        let to = upstreams[(first + k) % upstreams.len()];
                        if let Ok(Ok(s)) =
                            tokio::time::timeout(Duration::from_secs(2), TcpStream::connect(to))
                                .await
                        {
                            outbound = Some(s);
                            break;
                        }
                    }
                    let Some(mut outbound) = outbound else {
                        let _ = inbound.set_zero_linger();
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = cut.changed() => {
                            // A reset, as a failing network or server gives.
                            let _ = inbound.set_zero_linger();
                            let _ = outbound.set_zero_linger();
                        }
                    }
                });
            }
        });
        Ok(proxy)
    }

    /// Reset every open connection.
    pub fn cut(&self) {
        self.generation.send_modify(|g| *g += 1);
    }

    /// Cut every connection and refuse new ones for `for_`.
    pub fn outage(&self, for_: Duration) {
        *self.refuse_until.lock().unwrap() = Some(Instant::now() + for_);
        self.cut();
    }
}

/// How a process shows it is ready.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// `GET /readyz` on this port answers 200.
    Readyz(u16),
    /// `GET /sandbox` on this port answers 200.
    Sandbox(u16),
    /// Its log holds this line.
    LogLine(&'static str),
}

/// One child process, restartable with the same command and environment.
pub struct Proc {
    pub name: String,
    bin: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
    logs: PathBuf,
    pub readiness: Readiness,
    child: Option<Child>,
    starts: u32,
    log_file: PathBuf,
}

impl Proc {
    pub fn new(
        name: &str,
        bin: &Path,
        args: &[&str],
        env: Vec<(String, String)>,
        logs: &Path,
        readiness: Readiness,
    ) -> Proc {
        Proc {
            name: name.to_string(),
            bin: bin.to_path_buf(),
            args: args.iter().map(|a| a.to_string()).collect(),
            env,
            logs: logs.to_path_buf(),
            readiness,
            child: None,
            starts: 0,
            log_file: PathBuf::new(),
        }
    }

    pub fn start(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        self.log_file = self.logs.join(format!("{}-{}.log", self.name, self.starts));
        let out = std::fs::File::create(&self.log_file)?;
        let mut cmd = Command::new(&self.bin);
        // A clean environment and a scratch working directory: no
        // `heimdall.toml` or HEIMDALL_* of the caller's leaks into the run.
        cmd.args(&self.args)
            .current_dir(&self.logs)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out);
        self.child =
            Some(cmd.spawn().map_err(|e| {
                anyhow::anyhow!("{}: could not start {:?}: {e}", self.name, self.bin)
            })?);
        Ok(())
    }

    /// `kill -9`, and reap it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then wait up to `within` for it to exit: its exit code, or
    /// None when it had to be killed.
    pub async fn terminate(&mut self, within: Duration) -> Option<i32> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status.code().unwrap_or(-1));
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                let _ = c.wait();
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Still running (not exited).
    pub fn alive(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub async fn is_ready(&mut self, http: &reqwest::Client) -> bool {
        if !self.alive() {
            return false;
        }
        match self.readiness {
            Readiness::Readyz(port) => http
                .get(format!("http://127.0.0.1:{port}/readyz"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            Readiness::Sandbox(port) => http
                .get(format!("http://127.0.0.1:{port}/sandbox"))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success()),
            Readiness::LogLine(line) => {
                std::fs::read_to_string(&self.log_file).is_ok_and(|text| text.contains(line))
            }
        }
    }

    pub async fn wait_ready(
        &mut self,
        http: &reqwest::Client,
        within: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + within;
        loop {
            if self.is_ready(http).await {
                return Ok(());
            }
            if !self.alive() {
                anyhow::bail!(
                    "{} exited while starting; its log: {}",
                    self.name,
                    self.log_file.display()
                );
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{} not ready within {} s; its log: {}",
                    self.name,
                    within.as_secs(),
                    self.log_file.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A private `redis-server` on its own port, no persistence: a restart
/// starts it empty, as a crashed cache without a disk would.
pub struct Redis {
    pub port: u16,
    bin: String,
    child: Option<Child>,
    log: PathBuf,
}

impl Redis {
    pub async fn start(bin: &str, logs: &Path) -> anyhow::Result<Redis> {
        let mut r = Redis {
            port: spare_port()?,
            bin: bin.to_string(),
            child: None,
            log: logs.join("redis.log"),
        };
        r.spawn().await?;
        Ok(r)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> anyhow::Result<()> {
        let port = self.port.to_string();
        let out = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let child = Command::new(&self.bin)
            .args([
                "--port",
                &port,
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "yes",
            ])
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .map_err(|e| anyhow::anyhow!("could not start {}: {e}", self.bin))?;
        self.child = Some(child);
        let addr: SocketAddr = format!("127.0.0.1:{}", self.port).parse()?;
        wait_until("redis-server", Duration::from_secs(20), || async move {
            ping(addr).await
        })
        .await
    }

    /// Kill it (no shutdown save: there is nothing to save), stay down for
    /// `down`, start it again on the same port, empty.
    pub async fn restart(&mut self, down: Duration) -> anyhow::Result<()> {
        self.kill();
        tokio::time::sleep(down).await;
        self.spawn().await
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Redis answers PING with +PONG.
async fn ping(addr: SocketAddr) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(Ok(mut s)) =
        tokio::time::timeout(Duration::from_secs(1), TcpStream::connect(addr)).await
    else {
        return false;
    };
    if s.write_all(b"PING\r\n").await.is_err() {
        return false;
    }
    let mut buf = [0u8; 16];
    matches!(
        tokio::time::timeout(Duration::from_secs(1), s.read(&mut buf)).await,
        Ok(Ok(n)) if buf[..n].starts_with(b"+PONG")
    )
}

/// The loopback address of a `postgres://` URL's server; anything else is refused.
pub fn postgres_upstream(url: &str) -> anyhow::Result<SocketAddr> {
    let u = url::Url::parse(url)?;
    let host = u.host_str().unwrap_or("127.0.0.1");
    let port = u.port().unwrap_or(5432);
    let ip: std::net::IpAddr = match host {
        "localhost" => std::net::Ipv4Addr::LOCALHOST.into(),
        h => h
            .trim_matches(|c| c == '[' || c == ']')
            .parse()
            .map_err(|_| {
                anyhow::anyhow!("--database-url: the chaos run needs a loopback address, not {h}")
            })?,
    };
    if !ip.is_loopback() {
        anyhow::bail!("--database-url: the chaos run only talks to a PostgreSQL server on this machine (a loopback address)");
    }
    Ok(SocketAddr::new(ip, port))
}

/// `url` with its server replaced by `via`.
pub fn through(url: &str, via: SocketAddr) -> anyhow::Result<String> {
    let mut u = url::Url::parse(url)?;
    u.set_host(Some(&via.ip().to_string()))?;
    u.set_port(Some(via.port()))
        .map_err(|_| anyhow::anyhow!("cannot set a port on {url}"))?;
    Ok(u.to_string())
}

//! Benchmarks that print figures (never asserted in tests):
//!
//! - `heimdall-bench outbound`: messages through acceptance, the gates, the
//!   queue, the worker and the sandbox; messages per second, p50/p99 from
//!   acceptance to the provider call, peak memory; and with a sender rate
//!   set, the highest count sent in any one-second window.
//! - `heimdall-bench inbound`: signed Twilio inbound requests against the
//!   real `heimdall serve` binary, at a fixed rate and at full speed;
//!   requests per second, p50/p99 latency, and that each was stored once.
//!
//! - `heimdall-bench chaos`: two `serve` and two `heimdall worker` processes
//!   on PostgreSQL and a private Redis under a mixed workload, with faults
//!   injected on a printed schedule; invariants checked afterwards (exits
//!   non-zero when one fails). `--short` is the CI form.
//!
//! Run in release: `cargo run --release -p heimdall-server --bin heimdall-bench -- outbound`.
//! `--database-url postgres://...` (an empty database is created under it)
//! and `--redis-url redis://...` run the same on PostgreSQL and Redis.

use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The allocator `heimdall` runs with (see its `main.rs`), so the figures
/// are the product's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[path = "bench/chaos.rs"]
mod chaos;
#[path = "bench/chaos_check.rs"]
mod chaos_check;
#[path = "bench/chaos_infra.rs"]
mod chaos_infra;
#[path = "bench/chaos_load.rs"]
mod chaos_load;

use clap::{Parser, Subcommand};
use futures::future::BoxFuture;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};

use heimdall_domain::access::authz::ApiPrincipal;
use heimdall_domain::channels::{Accepted, MessageProvider, OutboundRequest, Rejected};
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::settings::{Settings, Source};
use heimdall_domain::{Channel, Db, SystemClock};

#[derive(Parser)]
#[command(
    name = "heimdall-bench",
    about = "Heimdall's benchmarks (print figures)"
)]
struct Cli {
    #[command(subcommand)]
    command: Bench,
}

#[derive(Subcommand)]
enum Bench {
    /// Messages through acceptance, gates, queue, worker and the sandbox.
    Outbound {
        #[arg(long, default_value_t = 100_000)]
        messages: usize,
        #[arg(long, default_value_t = 1_000)]
        contacts: usize,
        /// Concurrent accepting tasks.
        #[arg(long, default_value_t = 16)]
        producers: usize,
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Then send this many at `--rate` per second and report the busiest second.
        #[arg(long, default_value_t = 800)]
        rate_messages: usize,
        #[arg(long, default_value_t = 80)]
        rate: u32,
        /// A PostgreSQL server URL (an empty database is created on it).
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        redis_url: Option<String>,
    },
    /// Signed Twilio inbound requests against the real binary.
    Inbound {
        /// The fixed rate for the first phase.
        #[arg(long, default_value_t = 500)]
        rps: u32,
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Connections for the full-speed phase.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        redis_url: Option<String>,
        /// The heimdall binary (default: next to this one).
        #[arg(long)]
        bin: Option<std::path::PathBuf>,
    },
    /// Several processes, faults injected, invariants checked (exit 1 when one fails).
    Chaos {
        /// The CI form: a few hundred recipients, the same faults, about two minutes.
        #[arg(long)]
        short: bool,
        /// Campaign recipients (default 5,000; 400 with --short).
        #[arg(long)]
        recipients: Option<usize>,
        /// The sender's rate per second (default 50; 10 with --short).
        #[arg(long)]
        rate: Option<u32>,
        /// A PostgreSQL server on this machine (an empty database is created on it).
        #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
        database_url: String,
        /// The redis-server program (a private one is started on a spare port).
        #[arg(long, default_value = "redis-server")]
        redis_server: String,
        /// The heimdall binary (default: next to this one).
        #[arg(long)]
        bin: Option<std::path::PathBuf>,
        /// Keep the database and the logs.
        #[arg(long)]
        keep: bool,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(async move {
        match cli.command {
            Bench::Outbound {
                messages,
                contacts,
                producers,
                concurrency,
                rate_messages,
                rate,
                database_url,
                redis_url,
            } => {
                outbound_bench(
                    messages,
                    contacts,
                    producers,
                    concurrency,
                    None,
                    database_url.clone(),
                    redis_url.clone(),
                )
                .await?;
                if rate_messages > 0 {
                    outbound_bench(
                        rate_messages,
                        contacts.min(rate_messages),
                        producers,
                        concurrency,
                        Some(rate),
                        database_url,
                        redis_url,
                    )
                    .await?;
                }
                Ok(())
            }
            Bench::Inbound {
                rps,
                seconds,
                connections,
                database_url,
                redis_url,
                bin,
            } => inbound_bench(rps, seconds, connections, database_url, redis_url, bin).await,
            Bench::Chaos {
                short,
                recipients,
                rate,
                database_url,
                redis_server,
                bin,
                keep,
            } => {
                let pass = chaos::run(chaos::Options {
                    short,
                    recipients,
                    rate,
                    database_url,
                    redis_server,
                    bin,
                    keep,
                })
                .await?;
                if !pass {
                    std::process::exit(1);
                }
                Ok(())
            }
        }
    })
}

/// A fresh database URL: a temp SQLite file, or a new database on the server.
async fn fresh_db(
    server: Option<&str>,
    dir: &std::path::Path,
    tag: &str,
) -> anyhow::Result<String> {
    match server {
        None => Ok(format!("sqlite://{}/bench.db?mode=rwc", dir.display())),
        Some(url) => {
            let name = format!("heimdall_bench_{tag}_{}", std::process::id());
            let admin = Db::connect_url(url, false).await?;
            admin
                .conn
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name}"))
                .await?;
            admin
                .conn
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await?;
            let mut u = url::Url::parse(url)?;
            u.set_path(&format!("/{name}"));
            Ok(u.to_string())
        }
    }
}

/// Drop a database made by [`fresh_db`] (SQLite's file goes with its temp dir).
async fn drop_fresh_db(server: Option<&str>, url: &str) -> anyhow::Result<()> {
    let Some(server) = server else {
        return Ok(());
    };
    let name = url::Url::parse(url)?
        .path()
        .trim_start_matches('/')
        .to_string();
    let admin = Db::connect_url(server, false).await?;
    admin
        .conn
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    Ok(())
}

/// Records when each message reached the provider, and the calls that
/// failed (with why: the error table retries timeouts, network failures,
/// 429 and 5xx, so a message may be called again after a failed call).
#[derive(Debug)]
struct Timed {
    inner: Arc<dyn MessageProvider>,
    calls: Mutex<Vec<(String, Instant)>>,
    failed: Mutex<Vec<(String, String)>>,
    /// The messages called at least once.
    reached: Mutex<std::collections::HashSet<String>>,
}

impl MessageProvider for Timed {
    fn send<'a>(
        &'a self,
        request: &'a OutboundRequest,
    ) -> BoxFuture<'a, Result<Accepted, Rejected>> {
        Box::pin(async move {
            self.calls
                .lock()
                .unwrap()
                .push((request.message_id.clone(), Instant::now()));
            self.reached
                .lock()
                .unwrap()
                .insert(request.message_id.clone());
            let result = self.inner.send(request).await;
            if let Err(e) = &result {
                self.failed
                    .lock()
                    .unwrap()
                    .push((request.message_id.clone(), e.message.clone()));
            }
            result
        })
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn peak_rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .map(str::to_string)
        })
        .and_then(|l| {
            l.split_whitespace()
                .nth(1)
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map(|kb| kb / 1024.0)
        .unwrap_or(0.0)
}

#[allow(clippy::too_many_arguments)]
async fn outbound_bench(
    messages: usize,
    n_contacts: usize,
    producers: usize,
    concurrency: usize,
    rate: Option<u32>,
    database_url: Option<String>,
    redis_url: Option<String>,
) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tag = if rate.is_some() { "rate" } else { "out" };
    let url = fresh_db(database_url.as_deref(), dir.path(), tag).await?;
    let backend = format!(
        "{}{}",
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if redis_url.is_some() { " + Redis" } else { "" }
    );
    let sid = heimdall_sandbox::content_sid("task_reminder");
    let rate_s = rate.map(|r| r.to_string());
    let conc = concurrency.to_string();
    let data = dir.path().join("data").display().to_string();
    let mut pairs = vec![
        ("HEIMDALL_DATABASE_URL", url.as_str()),
        ("HEIMDALL_API_KEY", "bench-key"),
        ("WA_TEMPLATE_TASK_REMINDER", sid.as_str()),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
        ("HEIMDALL_TIER_LIMIT", "unlimited"),
        ("HEIMDALL_WORKER_CONCURRENCY", conc.as_str()),
        ("HEIMDALL_STATUS_STEP_MS", "3600000"),
        ("HEIMDALL_DATA_DIR", data.as_str()),
        ("HEIMDALL_BIND", "127.0.0.1:0"),
    ];
    let ns = format!("bench{}", std::process::id());
    if let Some(r) = &rate_s {
        pairs.push(("HEIMDALL_RATE_PER_SECOND", r.as_str()));
    }
    if let Some(r) = &redis_url {
        pairs.push(("HEIMDALL_REDIS_URL", r.as_str()));
        pairs.push(("HEIMDALL_REDIS_NAMESPACE", ns.as_str()));
    }
    let mut settings = Settings::from_source(&Source::from_pairs(pairs))?;
    if rate.is_none() {
        // Lift the sender limit: the benchmark measures Heimdall, not the
        // limit (no setting allows more than Meta's 1,000 per second).
        settings.rate_per_second = 1_000_000;
    }
    let sandbox = heimdall_server::startup::start_sandbox(&mut settings).await?;
    let mut providers = heimdall_server::startup::build_providers(&settings);
    let timed = Arc::new(Timed {
        inner: providers.whatsapp.clone().expect("whatsapp provider"),
        calls: Mutex::new(Vec::with_capacity(messages)),
        failed: Mutex::new(Vec::new()),
        reached: Mutex::new(std::collections::HashSet::with_capacity(messages)),
    });
    providers.whatsapp = Some(timed.clone());
    let (core, queue) =
        heimdall_server::startup::build_core_with(settings, Arc::new(SystemClock), providers)
            .await?;

    // Contacts with WhatsApp consent.
    let mut ids = Vec::with_capacity(n_contacts);
    for i in 0..n_contacts {
        let (c, _) = contacts::upsert(
            &core,
            &ContactInput {
                phone: format!("+4790{:06}", i),
                name: Some(format!("Bench {i}")),
                ..Default::default()
            },
        )
        .await?;
        heimdall_domain::consent::record_opt_in(
            &core.db.conn,
            &c.id,
            Channel::WhatsApp,
            None,
            ConsentSource::Api,
            &ConsentEvidence {
                ip: Some("203.0.113.1".into()),
                user_agent: Some("bench".into()),
                consent_text_version: Some("v1".into()),
                ..Default::default()
            },
            "bench",
            false,
            core.now(),
        )
        .await?;
        ids.push(c.id);
    }
    let ids = Arc::new(ids);

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let workers = tokio::spawn(heimdall_jobs::runner::run(
        core.clone(),
        queue,
        async move {
            let _ = stop_rx.wait_for(|v| *v).await;
        },
    ));

    let accepted_at: Arc<Mutex<HashMap<String, Instant>>> =
        Arc::new(Mutex::new(HashMap::with_capacity(messages)));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for p in 0..producers {
        let core = core.clone();
        let ids = ids.clone();
        let accepted_at = accepted_at.clone();
        tasks.push(tokio::spawn(async move {
            let mut refused = 0usize;
            let mut i = p;
            while i < messages {
                let mut variables = std::collections::BTreeMap::new();
                variables.insert("task_name".to_string(), format!("Task {i}"));
                variables.insert("due_time".to_string(), "17:00".to_string());
                let t0 = Instant::now();
                let out = outbound::accept(
                    &core,
                    SendRequest {
                        recipient: Recipient::Contact(ids[i % ids.len()].clone()),
                        channel: Channel::WhatsApp,
                        content: RequestedContent::Template {
                            name: "task_reminder".into(),
                            variables,
                        },
                        origin: Origin::Automation {
                            principal: ApiPrincipal {
                                key_id: None,
                                name: "bench".into(),
                            },
                            source: MessageSource::Api,
                            reminder_id: None,
                        },
                        idempotency_key: None,
                        purpose: None,
                    },
                )
                .await;
                match out {
                    Ok(o)
                        if o.state
                            == heimdall_domain::compliance::message_state::MessageState::Queued =>
                    {
                        accepted_at.lock().unwrap().insert(o.message_id, t0);
                    }
                    _ => refused += 1,
                }
                i += producers;
            }
            refused
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += t.await?;
    }
    let accept_elapsed = start.elapsed();
    let expected = messages - refused;
    // Wait (with a deadline) until every accepted message reached the provider.
    let deadline = Instant::now() + Duration::from_secs(3600);
    loop {
        let n = timed.reached.lock().unwrap().len();
        if n >= expected || Instant::now() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let total = start.elapsed();
    let calls = timed.calls.lock().unwrap().clone();
    let accepted = accepted_at.lock().unwrap().clone();
    let mut lat: Vec<Duration> = calls
        .iter()
        .filter_map(|(id, at)| accepted.get(id).map(|t0| at.saturating_duration_since(*t0)))
        .collect();
    lat.sort();
    // Of a message's calls after its first, as many as it had failed calls
    // are retries; any more are duplicates (a message sent twice: must be 0).
    let failed = timed.failed.lock().unwrap().clone();
    let mut per_message: HashMap<&str, (usize, usize)> = HashMap::new();
    for (id, _) in &calls {
        per_message.entry(id.as_str()).or_default().0 += 1;
    }
    for (id, _) in &failed {
        per_message.entry(id.as_str()).or_default().1 += 1;
    }
    let (mut duplicates, mut retries) = (0, 0);
    for (n_calls, n_failed) in per_message.values() {
        let again = n_calls.saturating_sub(1);
        retries += again.min(*n_failed);
        duplicates += again - again.min(*n_failed);
    }
    println!(
        "== outbound on {backend}{}",
        rate.map(|r| format!(", sender rate {r}/s"))
            .unwrap_or_default()
    );
    println!("messages accepted        {expected} (refused: {refused})");
    println!(
        "provider calls           {} (duplicates: {duplicates}, retries after a failed call: {retries})",
        calls.len()
    );
    if !failed.is_empty() {
        let mut why: Vec<&str> = failed.iter().map(|(_, m)| m.as_str()).collect();
        why.sort();
        why.dedup();
        println!(
            "failed provider calls    {} ({})",
            failed.len(),
            why.into_iter().take(3).collect::<Vec<_>>().join("; ")
        );
    }
    println!(
        "acceptance               {:.0} msg/s ({:.1} s)",
        expected as f64 / accept_elapsed.as_secs_f64(),
        accept_elapsed.as_secs_f64()
    );
    println!(
        "end to end               {:.0} msg/s ({:.1} s, acceptance to last provider call)",
        calls.len() as f64 / total.as_secs_f64(),
        total.as_secs_f64()
    );
    println!(
        "accept -> provider call  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.50).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    println!("peak memory (RSS)        {:.0} MiB", peak_rss_mib());
    if let Some(r) = rate {
        let mut times: Vec<Instant> = calls.iter().map(|(_, t)| *t).collect();
        times.sort();
        let mut best = 0;
        let mut j = 0;
        for i in 0..times.len() {
            while times[i].duration_since(times[j]) >= Duration::from_secs(1) {
                j += 1;
            }
            best = best.max(i - j + 1);
        }
        println!(
            "busiest one-second window {best} messages (sender rate {r}/s: must not exceed it)"
        );
    }
    let _ = stop_tx.send(true);
    let _ = workers.await;
    sandbox.stop().await;
    drop(core);
    drop_fresh_db(database_url.as_deref(), &url).await
}

async fn inbound_bench(
    rps: u32,
    seconds: u64,
    connections: usize,
    database_url: Option<String>,
    redis_url: Option<String>,
    bin: Option<std::path::PathBuf>,
) -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir()?;
    let url = fresh_db(database_url.as_deref(), dir.path(), "in").await?;
    let bin = bin.unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("heimdall")))
            .unwrap_or_else(|| "heimdall".into())
    });
    let token = "bench-auth-token";
    let mut cmd = std::process::Command::new(&bin);
    cmd.arg("serve")
        .env("HEIMDALL_DATABASE_URL", &url)
        .env("HEIMDALL_BIND", "127.0.0.1:0")
        .env("HEIMDALL_DATA_DIR", dir.path().join("data"))
        .env("TWILIO_ACCOUNT_SID", "ACsandbox0000000000000000000000000")
        .env("TWILIO_AUTH_TOKEN", token)
        .env("TWILIO_API_BASE", "http://127.0.0.1:9")
        .env("RUST_LOG", "warn,heimdall_server=info")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null());
    if let Some(r) = &redis_url {
        cmd.env("HEIMDALL_REDIS_URL", r).env(
            "HEIMDALL_REDIS_NAMESPACE",
            format!("benchin{}", std::process::id()),
        );
    }
    let mut child = cmd.spawn()?;
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(i) = line.find("listening on http://") {
                let _ = tx.send(
                    line[i + 13..]
                        .split_whitespace()
                        .next()
                        .unwrap_or_default()
                        .to_string(),
                );
            }
        }
    });
    let base = rx.recv_timeout(Duration::from_secs(60))?;
    let target = format!("{base}/webhooks/twilio/inbound");
    let backend = format!(
        "{}{}",
        if database_url.is_some() {
            "PostgreSQL"
        } else {
            "SQLite"
        },
        if redis_url.is_some() { " + Redis" } else { "" }
    );
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(connections * 2)
        .build()?;
    let counter = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let make = {
        let target = target.clone();
        move |n: u64| {
            let sid = format!("SM{n:032x}");
            let from = format!("whatsapp:+4790{:06}", n % 5000);
            let params: Vec<(String, String)> = vec![
                ("MessageSid".into(), sid.clone()),
                (
                    "AccountSid".into(),
                    "ACsandbox0000000000000000000000000".into(),
                ),
                ("From".into(), from),
                ("To".into(), "whatsapp:+14155238886".into()),
                ("Body".into(), format!("hello {n}")),
                ("NumMedia".into(), "0".into()),
            ];
            let sig = heimdall_domain::signature::twilio_signature(token, &target, &params);
            (params, sig)
        }
    };
    let send = |http: reqwest::Client,
                target: String,
                params: Vec<(String, String)>,
                sig: String| async move {
        let t0 = Instant::now();
        let ok = http
            .post(&target)
            .header("X-Twilio-Signature", sig)
            .form(&params)
            .send()
            .await
            .map(|r| r.status().is_success())
            .unwrap_or(false);
        (ok, t0.elapsed())
    };

    // Closed loop: `connections` requests at a time for `secs` seconds;
    // answered requests and every latency.
    let closed_loop = |secs: f64| {
        let http = http.clone();
        let target = target.clone();
        let counter = counter.clone();
        let make = make.clone();
        async move {
            let until = Instant::now() + Duration::from_secs_f64(secs);
            let mut workers = Vec::new();
            for _ in 0..connections {
                let http = http.clone();
                let target = target.clone();
                let counter = counter.clone();
                let make = make.clone();
                workers.push(tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut ok = 0u64;
                    while Instant::now() < until {
                        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let (params, sig) = make(n);
                        let (good, d) = send(http.clone(), target.clone(), params, sig).await;
                        ok += good as u64;
                        lat.push(d);
                    }
                    (ok, lat)
                }));
            }
            let mut lat = Vec::new();
            let mut ok = 0;
            for w in workers {
                let (o, l) = w.await.expect("a benchmark connection");
                ok += o;
                lat.extend(l);
            }
            (ok, lat)
        }
    };

    // Warm-up, not measured: the pool's connections opened and every
    // statement prepared, as on a server that has been running.
    let (warm_ok, warm) = closed_loop(2.0).await;
    println!(
        "== inbound on {backend}: warm-up, {} requests in 2 s (not measured)",
        warm.len()
    );

    // Phase 1: a fixed rate (open loop: requests start on schedule).
    let mut handles = Vec::new();
    let interval = Duration::from_secs_f64(1.0 / f64::from(rps));
    let start = Instant::now();
    let total = rps as u64 * seconds;
    for k in 0..total {
        let due = start + interval.mul_f64(k as f64);
        tokio::time::sleep_until(due.into()).await;
        let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let (params, sig) = make(n);
        handles.push(tokio::spawn(send(
            http.clone(),
            target.clone(),
            params,
            sig,
        )));
    }
    let mut lat = Vec::new();
    let mut ok = 0u64;
    for h in handles {
        let (good, d) = h.await?;
        ok += good as u64;
        lat.push(d);
    }
    let elapsed = start.elapsed();
    lat.sort();
    println!("== inbound on {backend}: fixed rate {rps}/s for {seconds} s");
    println!(
        "requests                 {total} ({ok} answered 2xx), {:.0} req/s achieved",
        total as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency                  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );
    let phase1 = ok;

    // Phase 2: full speed (closed loop, `connections` at a time).
    let start = Instant::now();
    let (ok2, mut lat) = closed_loop(seconds as f64).await;
    let elapsed = start.elapsed();
    lat.sort();
    println!("== inbound on {backend}: full speed, {connections} connections for {seconds} s");
    println!(
        "requests                 {} ({ok2} answered 2xx), {:.0} req/s",
        lat.len(),
        ok2 as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency                  p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        percentile(&lat, 0.5).as_secs_f64() * 1000.0,
        percentile(&lat, 0.99).as_secs_f64() * 1000.0,
        lat.last().copied().unwrap_or_default().as_secs_f64() * 1000.0
    );

    // Each answered request stored exactly once.
    let db = Db::connect_url(&url, false).await?;
    let stored = heimdall_domain::entities::inbound_message::Entity::find()
        .count(&db.conn)
        .await?;
    println!(
        "stored                   {stored} inbound messages for {} answered requests ({})",
        warm_ok + phase1 + ok2,
        if stored == warm_ok + phase1 + ok2 {
            "each once"
        } else {
            "MISMATCH"
        }
    );
    let _ = child.kill();
    let _ = child.wait();
    drop(db);
    drop_fresh_db(database_url.as_deref(), &url).await
}

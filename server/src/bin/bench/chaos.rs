//! `heimdall-bench chaos`: Heimdall scaled out (two `serve`, two `heimdall
//! worker` processes on one PostgreSQL database and one private Redis) under
//! a mixed workload, with faults injected on a printed schedule, then its
//! invariants checked from the database and the sandbox's record.
//!
//! The pieces: `heimdall sandbox` as its own process (Twilio and Discord),
//! a private `redis-server` (no persistence), a TCP proxy in front of
//! PostgreSQL that cuts connections on command, and one in front of the two
//! `serve` processes (the public URL Twilio sees, skipping a dead one). The
//! harness plays the staff through the domain crate (two users: one writes
//! the campaign, the other approves it), the automations through the API
//! with the bootstrap key, and the people through `POST /sandbox/inbound`.
//!
//! Every loop is bounded; the run stops by itself and exits non-zero when an
//! invariant fails.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::Value;

use heimdall_domain::access::accounts::{self, Role};
use heimdall_domain::campaigns::{self, Audience, CampaignDraft, VariableSource};
use heimdall_domain::entities::outbound_message;
use heimdall_domain::settings::{Settings, Source};
use heimdall_domain::{Channel, Db};

use crate::chaos_check::check;
use crate::chaos_infra::{self as infra, Proc, Proxy, Readiness, Redis};

/// What `heimdall-bench chaos` is asked to do.
pub struct Options {
    pub short: bool,
    pub recipients: Option<usize>,
    pub rate: Option<u32>,
    pub database_url: String,
    pub redis_server: String,
    pub bin: Option<PathBuf>,
    pub keep: bool,
}

const API_KEY: &str = "chaos-bench-key";
const ACCOUNT_SID: &str = "ACchaos000000000000000000000000001";
const AUTH_TOKEN: &str = "chaos-auth-token-not-a-secret";
pub(crate) const WHATSAPP_FROM: &str = "+14155238886";
/// The sandbox's fault recipients put in the campaign: 429 twice, 500
/// twice, a 2 s answer, and a connection broken after the message was taken.
pub(crate) const FAULT_NUMBERS: [&str; 4] = [
    "+12025550129",
    "+12025550150",
    "+12025550120",
    "+12025550141",
];

/// One fault of the schedule and how long Heimdall took to recover.
struct FaultRecord {
    at: f64,
    what: String,
    recovery: Option<f64>,
    note: String,
}

struct Cluster {
    http: reqwest::Client,
    sandbox: Proc,
    serves: Vec<Proc>,
    workers: Vec<Proc>,
    redis: Redis,
    pg: Proxy,
    /// The serves' public address: kept for the run's length.
    _lb: Proxy,
}

pub async fn run(opts: Options) -> anyhow::Result<bool> {
    let n = opts
        .recipients
        .unwrap_or(if opts.short { 400 } else { 5000 });
    let rate = opts.rate.unwrap_or(if opts.short { 10 } else { 50 });
    // The messaging tier: fewer unique people than the workload reaches (every
    // contact is in the campaign), so the last tenth waits for it.
    let tier = n - n / 10;
    let stretch = if opts.short { 1.0 } else { 2.5 };
    let bin = opts.bin.clone().unwrap_or_else(|| {
        std::env::current_exe()
            .ok()
            .and_then(|p| p.parent().map(|d| d.join("heimdall")))
            .unwrap_or_else(|| "heimdall".into())
    });
    let dir = tempfile::Builder::new()
        .prefix("heimdall-chaos")
        .tempdir()?;
    let logs = dir.path().to_path_buf();
    let db_url = crate::fresh_db(Some(&opts.database_url), &logs, "chaos").await?;
    println!(
        "== chaos: {n} campaign recipients, sender rate {rate}/s, messaging tier {tier} people, 2 serve + 2 worker on PostgreSQL + Redis; logs in {}",
        logs.display()
    );
    let result = run_in(&opts, n, rate, tier, stretch, &bin, &logs, &db_url).await;
    // A failed run keeps its database (and logs) for reading.
    if !opts.keep && matches!(result, Ok(true)) {
        let _ = crate::drop_fresh_db(Some(&opts.database_url), &db_url).await;
    } else {
        println!("database kept: {db_url}");
    }
    match result {
        Ok(pass) => {
            if opts.keep || !pass {
                // Keep the logs of a failed run for reading.
                let kept = dir.keep();
                println!("logs kept in {}", kept.display());
            }
            Ok(pass)
        }
        Err(e) => {
            let kept = dir.keep();
            println!("logs kept in {}", kept.display());
            Err(e)
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn run_in(
    opts: &Options,
    n: usize,
    rate: u32,
    tier: usize,
    stretch: f64,
    bin: &std::path::Path,
    logs: &std::path::Path,
    db_url: &str,
) -> anyhow::Result<bool> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()?;
    // The infrastructure: Redis, the proxies, the sandbox.
    let redis = Redis::start(&opts.redis_server, logs).await?;
    let pg = Proxy::start(vec![infra::postgres_upstream(&opts.database_url)?]).await?;
    let serve_ports = [infra::spare_port()?, infra::spare_port()?];
    let lb = Proxy::start(
        serve_ports
            .iter()
            .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
            .collect(),
    )
    .await?;
    let public_url = format!("http://{}", lb.addr);
    let sandbox_port = infra::spare_port()?;
    let sandbox_url = format!("http://127.0.0.1:{sandbox_port}");
    let ns = format!("chaos{}", std::process::id());
    let rate_s = rate.to_string();
    let tier_s = tier.to_string();
    let discord = format!(
        "{sandbox_url}/api/webhooks/{}/{}",
        heimdall_sandbox::DISCORD_WEBHOOK_ID,
        heimdall_sandbox::DISCORD_WEBHOOK_TOKEN
    );
    let template_sid = heimdall_sandbox::content_sid("task_reminder");
    let common = |db: &str, data: &str| -> Vec<(String, String)> {
        [
            ("HEIMDALL_DATABASE_URL", db),
            ("HEIMDALL_REDIS_URL", &redis.url()),
            ("HEIMDALL_REDIS_NAMESPACE", &ns),
            ("HEIMDALL_SANDBOX", "off"),
            ("HEIMDALL_PUBLIC_URL", &public_url),
            ("HEIMDALL_API_KEY", API_KEY),
            (
                "HEIMDALL_API_KEY_SCOPES",
                "send,reminders,contacts:write,contacts:read,consents:write",
            ),
            ("TWILIO_ACCOUNT_SID", ACCOUNT_SID),
            ("TWILIO_AUTH_TOKEN", AUTH_TOKEN),
            ("TWILIO_WHATSAPP_NUMBER", WHATSAPP_FROM),
            ("TWILIO_API_BASE", &sandbox_url),
            ("WA_TEMPLATE_TASK_REMINDER", &template_sid),
            ("HEIMDALL_RATE_PER_SECOND", &rate_s),
            ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
            ("HEIMDALL_TIER_LIMIT", &tier_s),
            ("HEIMDALL_WORKER_CONCURRENCY", "16"),
            ("HEIMDALL_STATUS_STEP_MS", "200"),
            ("HEIMDALL_DATA_DIR", data),
            ("DISCORD_WEBHOOK_URL", &discord),
            (
                "HEIMDALL_FETCH_ALLOWLIST",
                &format!("127.0.0.1:{sandbox_port}"),
            ),
            ("RUST_LOG", "warn,heimdall_server=info,heimdall_jobs=info"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    };
    let mut sandbox = Proc::new(
        "sandbox",
        bin,
        &["sandbox", "--bind", &format!("127.0.0.1:{sandbox_port}")],
        common(db_url, &logs.join("sandbox-data").display().to_string()),
        logs,
        Readiness::Sandbox(sandbox_port),
    );
    sandbox.start()?;
    sandbox.wait_ready(&http, Duration::from_secs(60)).await?;

    // The staff's side, straight on the database (not through the proxy):
    // migrate, activate the sender, two staff users.
    let direct = common(db_url, &logs.join("harness-data").display().to_string());
    let settings = Settings::from_source(&Source::from_pairs(direct.clone()))?;
    let (core, _queue) =
        heimdall_server::startup::build_core(settings, Arc::new(heimdall_domain::SystemClock))
            .await?;
    for s in heimdall_domain::access::authz::list_senders(&core).await? {
        heimdall_domain::sending::senders::set_sender_active(
            &core,
            &s.id,
            true,
            "chaos admin",
            Role::Admin,
        )
        .await
        .map_err(|e| anyhow::anyhow!("activating a sender: {e}"))?;
    }
    let password = secrecy::SecretString::from("chaos-bench-password-1".to_string());
    let author =
        accounts::create_user(&core, "author@chaos.test", None, Role::Operator, &password).await?;
    let approver = accounts::create_user(
        &core,
        "approver@chaos.test",
        None,
        Role::Approver,
        &password,
    )
    .await?;

    // The processes, on the database through the proxy.
    let via_proxy = infra::through(db_url, pg.addr)?;
    let mut serves = Vec::new();
    for (i, port) in serve_ports.iter().enumerate() {
        let mut env = common(
            &via_proxy,
            &logs
                .join(format!("serve-{}-data", i + 1))
                .display()
                .to_string(),
        );
        env.push(("HEIMDALL_BIND".into(), format!("127.0.0.1:{port}")));
        serves.push(Proc::new(
            &format!("serve-{}", i + 1),
            bin,
            &["serve"],
            env,
            logs,
            Readiness::Readyz(*port),
        ));
    }
    let mut workers = Vec::new();
    for i in 0..2 {
        workers.push(Proc::new(
            &format!("worker-{}", i + 1),
            bin,
            &["worker"],
            common(
                &via_proxy,
                &logs
                    .join(format!("worker-{}-data", i + 1))
                    .display()
                    .to_string(),
            ),
            logs,
            Readiness::LogLine("heimdall worker running"),
        ));
    }
    let started = Instant::now();
    for p in serves.iter_mut().chain(workers.iter_mut()) {
        p.start()?;
    }
    for p in serves.iter_mut().chain(workers.iter_mut()) {
        p.wait_ready(&http, Duration::from_secs(120)).await?;
    }
    println!(
        "processes ready in {:.1} s: sandbox {sandbox_url}, public {public_url}, redis :{}, postgres proxy {}",
        started.elapsed().as_secs_f64(),
        redis.port,
        pg.addr
    );
    let mut cluster = Cluster {
        http: http.clone(),
        sandbox,
        serves,
        workers,
        redis,
        pg,
        _lb: lb,
    };

    // The workload's people: contacts with WhatsApp consent through the API.
    let t = Instant::now();
    // The sandbox's fault numbers first: the campaign reaches them before the
    // messaging tier is full (the last tenth waits for it).
    let mut phones: Vec<String> = FAULT_NUMBERS.iter().map(|s| s.to_string()).collect();
    phones.extend((0..n.saturating_sub(FAULT_NUMBERS.len())).map(|i| format!("+4790{i:06}")));
    let contact_ids = crate::chaos_load::create_contacts(&http, &public_url, &phones).await?;
    println!(
        "{} contacts with WhatsApp consent through the API in {:.1} s",
        contact_ids.len(),
        t.elapsed().as_secs_f64()
    );
    // Reminders due while the campaign runs.
    let reminders = (n / 40).max(5);
    let reminder_at = Utc::now() + chrono::Duration::seconds((20.0 * stretch) as i64);
    crate::chaos_load::create_reminders(&http, &public_url, &contact_ids, reminders, reminder_at)
        .await?;

    // The campaign: written by one person, approved by another.
    let mut variables = BTreeMap::new();
    variables.insert(
        "task_name".into(),
        VariableSource::Value("Chaos drill".into()),
    );
    variables.insert("due_time".into(), VariableSource::Value("17:00".into()));
    let draft = campaigns::create_draft(
        &core,
        &author,
        CampaignDraft {
            name: "chaos".into(),
            channel: Channel::WhatsApp,
            template_name: "task_reminder".into(),
            audience: Audience::Tags {
                tags: vec!["chaos".into()],
            },
            variables,
            scheduled_at: None,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("campaign draft: {e}"))?;
    campaigns::submit(&core, &author, &draft.id)
        .await
        .map_err(|e| anyhow::anyhow!("campaign submit: {e}"))?;
    let review = campaigns::review(&core, &draft.id, 1)
        .await
        .map_err(|e| anyhow::anyhow!("campaign review: {e}"))?;
    anyhow::ensure!(
        review.audience_size == phones.len(),
        "the campaign's audience is {} people, expected {}",
        review.audience_size,
        phones.len()
    );
    let t0 = Instant::now();
    campaigns::approve(&core, &approver, &draft.id, &review.content_hash)
        .await
        .map_err(|e| anyhow::anyhow!("campaign approve: {e}"))?;
    println!("campaign {} approved at t=0", draft.id);

    // While it runs: STOPs for every 20th person, API sends, and the faults.
    let stops: Vec<String> = phones
        .iter()
        .step_by(20)
        .filter(|p| !FAULT_NUMBERS.contains(&p.as_str()))
        .cloned()
        .collect();
    let stop_answers: Arc<Mutex<HashMap<String, DateTime<Utc>>>> = Arc::default();
    let stop_task = tokio::spawn(crate::chaos_load::send_stops(
        http.clone(),
        sandbox_url.clone(),
        stops.clone(),
        Duration::from_secs_f64(30.0 * stretch),
        stop_answers.clone(),
    ));
    let api_sends = (n / 10).max(20);
    let api_task = tokio::spawn(crate::chaos_load::api_sends(
        http.clone(),
        public_url.clone(),
        contact_ids.clone(),
        api_sends,
        Duration::from_secs_f64(30.0 * stretch),
    ));
    let db = Db::connect_url(db_url, false).await?;
    let faults = run_faults(&mut cluster, &db, t0, stretch, !opts.short).await;
    let stop_errors = stop_task.await?;
    let (api_accepted, api_errors) = api_task.await?;
    println!(
        "workload: {} STOPs answered ({stop_errors} never answered), {api_accepted} API sends accepted ({api_errors} failed to get an answer), {reminders} reminders",
        stop_answers.lock().unwrap().len()
    );

    // Drain, with a deadline; when it stalls, run what housekeeping would run.
    let drain_deadline = Duration::from_secs(if opts.short { 150 } else { 600 });
    let drain_started = Instant::now();
    let fast_forward = crate::chaos_load::drain(
        &db,
        &opts_settings(&direct)?,
        drain_deadline,
        Duration::from_secs(if opts.short { 10 } else { 20 }),
    )
    .await?;
    let drained_in = drain_started.elapsed();
    let elapsed = t0.elapsed();

    // The record, and the invariants.
    let sandbox_messages: Vec<Value> = http
        .get(format!("{sandbox_url}/sandbox/messages"))
        .send()
        .await?
        .json()
        .await?;
    let stops = stop_answers.lock().unwrap().clone();
    let report = check(&db, &draft.id, &sandbox_messages, &stops, rate, tier).await?;
    for p in cluster.serves.iter_mut().chain(cluster.workers.iter_mut()) {
        p.terminate(Duration::from_secs(35)).await;
    }
    cluster.sandbox.kill9();

    println!("== faults (t = seconds after the approval)");
    for f in &faults {
        println!(
            "t={:>6.1}  {:<44} recovered in {}{}",
            f.at,
            f.what,
            f.recovery
                .map(|r| format!("{r:.1} s"))
                .unwrap_or_else(|| "NOT RECOVERED".into()),
            if f.note.is_empty() {
                String::new()
            } else {
                format!(" ({})", f.note)
            }
        );
    }
    println!(
        "drain after the workload: {:.1} s{}",
        drained_in.as_secs_f64(),
        if fast_forward.is_empty() {
            String::new()
        } else {
            format!(
                ", with {} fast-forwards of housekeeping",
                fast_forward.len()
            )
        }
    );
    for ff in &fast_forward {
        println!("  {ff}");
    }
    println!("== invariants");
    for (name, count, must_be_zero) in &report.rows {
        println!(
            "{name:<58} {count:>6}{}",
            if *must_be_zero && *count > 0 {
                "  FAIL"
            } else {
                ""
            }
        );
    }
    let failed: Vec<&str> = report
        .rows
        .iter()
        .filter(|(_, c, z)| *z && *c > 0)
        .map(|(n, _, _)| n.as_str())
        .collect();
    let unrecovered = faults.iter().filter(|f| f.recovery.is_none()).count();
    let pass = failed.is_empty() && unrecovered == 0;
    let max_recovery = faults
        .iter()
        .filter_map(|f| f.recovery)
        .fold(0.0f64, f64::max);
    println!(
        "chaos: {} messages={} provider_records={} duration={:.1}s end_to_end={:.1} msg/s faults={} unrecovered={unrecovered} max_recovery={max_recovery:.1}s busiest_second={}/{rate} tier_people={}/{tier} unexplained={} reached_twice={} after_stop={} campaign_skipped={} campaign_doubled={}",
        if pass { "PASS" } else { "FAIL" },
        report.messages,
        report.provider_records,
        elapsed.as_secs_f64(),
        report.provider_records as f64 / elapsed.as_secs_f64(),
        faults.len(),
        report.busiest,
        report.tier_people,
        report.get("unexplained"),
        report.get("reached the sandbox twice"),
        report.get("after its STOP"),
        report.get("skipped"),
        report.get("fanned out twice"),
    );
    if !pass {
        println!("failed: {}", failed.join("; "));
    }
    Ok(pass)
}

fn opts_settings(pairs: &[(String, String)]) -> anyhow::Result<Settings> {
    Ok(Settings::from_source(&Source::from_pairs(pairs.to_vec()))?)
}

/// Messages the provider took, as the database records it (the sign that
/// sending goes on).
async fn provider_taken(db: &Db) -> u64 {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::ProviderSid.is_not_null())
        .count(&db.conn)
        .await
        .unwrap_or(0)
}

/// Messages still to be sent (nothing left: a fault's recovery is then
/// measured by readiness alone).
async fn waiting(db: &Db) -> u64 {
    crate::chaos_load::waiting_to_send(db).await
}

/// Time from the fault until every process is ready again and (when work
/// was waiting) the provider took another message.
async fn recovery(
    cluster: &mut Cluster,
    db: &Db,
    since: Instant,
    taken_before: u64,
    deadline: Instant,
) -> (Option<f64>, String) {
    let mut ready_at = None;
    let had_work = waiting(db).await > 0;
    loop {
        if ready_at.is_none() {
            let mut all = true;
            for p in cluster.serves.iter_mut().chain(cluster.workers.iter_mut()) {
                if !p.is_ready(&cluster.http).await {
                    all = false;
                    break;
                }
            }
            if all {
                ready_at = Some(since.elapsed().as_secs_f64());
            }
        }
        if let Some(r) = ready_at {
            if !had_work {
                return (Some(r), "ready; nothing was waiting to be sent".into());
            }
            if provider_taken(db).await > taken_before {
                return (
                    Some(since.elapsed().as_secs_f64()),
                    format!("all ready at {r:.1} s, then sending"),
                );
            }
            if waiting(db).await == 0 {
                return (Some(r), "ready; the queue emptied".into());
            }
        }
        if Instant::now() > deadline {
            return (
                None,
                match ready_at {
                    Some(r) => format!(
                        "ready at {r:.1} s, but nothing sent in the {:.0} s before the next step",
                        since.elapsed().as_secs_f64()
                    ),
                    None => "processes not ready before the next step".into(),
                },
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn run_faults(
    cluster: &mut Cluster,
    db: &Db,
    t0: Instant,
    stretch: f64,
    rolling: bool,
) -> Vec<FaultRecord> {
    let mut schedule: Vec<(f64, &str)> = vec![
        (4.0, "kill -9 worker-1, restart it"),
        (10.0, "kill -9 serve-2, restart it"),
        (16.0, "restart Redis (down 2 s, comes back empty)"),
        (24.0, "cut every PostgreSQL connection"),
        (30.0, "PostgreSQL outage: refuse connections 3 s"),
        (38.0, "SIGTERM worker-2 (graceful), restart it"),
    ];
    if rolling {
        schedule.push((48.0, "rolling restart: SIGTERM each of the 4 in turn"));
    }
    println!("== fault schedule (t = seconds after the approval)");
    for (at, what) in &schedule {
        println!("t={:>6.1}  {what}", at * stretch);
    }
    let mut out = Vec::new();
    let times: Vec<f64> = schedule.iter().map(|(at, _)| *at).collect();
    for (k, (at, what)) in schedule.into_iter().enumerate() {
        // Recovery is measured until the next fault (the last: 40 s more).
        let next = times.get(k + 1).copied().unwrap_or(at + 40.0);
        let window_end = t0 + Duration::from_secs_f64(next * stretch);
        let due = t0 + Duration::from_secs_f64(at * stretch);
        tokio::time::sleep_until(due.into()).await;
        let since = Instant::now();
        let taken_before = provider_taken(db).await;
        let mut note = String::new();
        let outcome: anyhow::Result<()> = async {
            match at as u32 {
                4 => {
                    cluster.workers[0].kill9();
                    cluster.workers[0].start()?;
                }
                10 => {
                    cluster.serves[1].kill9();
                    cluster.serves[1].start()?;
                }
                16 => cluster.redis.restart(Duration::from_secs(2)).await?,
                24 => cluster.pg.cut(),
                30 => {
                    cluster.pg.outage(Duration::from_secs(3));
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
                38 => {
                    let code = cluster.workers[1].terminate(Duration::from_secs(35)).await;
                    note = format!("exit code {code:?}");
                    cluster.workers[1].start()?;
                }
                _ => {
                    let mut codes = Vec::new();
                    for i in 0..4 {
                        let p = if i < 2 {
                            &mut cluster.serves[i]
                        } else {
                            &mut cluster.workers[i - 2]
                        };
                        let code = p.terminate(Duration::from_secs(35)).await;
                        codes.push(format!("{} {code:?}", p.name));
                        p.start()?;
                        p.wait_ready(&cluster.http, Duration::from_secs(120))
                            .await?;
                    }
                    note = format!("exit codes: {}", codes.join(", "));
                }
            }
            Ok(())
        }
        .await;
        if let Err(e) = outcome {
            note = format!("{note} error: {e:#}");
        }
        let (rec, how) = recovery(
            cluster,
            db,
            since,
            taken_before,
            window_end.max(Instant::now() + Duration::from_secs(5)),
        )
        .await;
        out.push(FaultRecord {
            at: since.duration_since(t0).as_secs_f64(),
            what: what.to_string(),
            recovery: rec,
            note: if note.is_empty() {
                how
            } else {
                format!("{note}; {how}")
            },
        });
    }
    out
}

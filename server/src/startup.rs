//! Building and running the application: database, queue, workers and the
//! HTTP server, started together and stopped together.

use std::net::TcpListener;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix_web::body::MessageBody;
use actix_web::dev::{ServerHandle, ServiceRequest, ServiceResponse};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpServer};
use leptos::config::LeptosOptions;
use leptos_actix::{generate_route_list, LeptosRoutes};
use tokio::sync::watch;

use heimdall_domain::core::{CoreParts, Providers};
use heimdall_domain::settings::WhatsAppProvider;
use heimdall_domain::{Core, Db, Settings, SharedClock, SystemClock};
use heimdall_jobs::Queue;

use crate::routes;

/// What to start besides HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Run the workers and schedules in this process.
    pub workers: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options { workers: true }
    }
}

/// A built application, listening but not yet serving.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    core: Arc<Core>,
    queue: Queue,
    options: Options,
    sandbox: Option<heimdall_sandbox::SandboxHandle>,
}

/// The in-process sandbox stands in for Twilio, Meta and Discord when no
/// provider credentials are configured: start it and point the settings at it.
pub async fn start_sandbox(
    settings: &mut Settings,
) -> anyhow::Result<heimdall_sandbox::SandboxHandle> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let sandbox = heimdall_sandbox::start(
        heimdall_sandbox::SandboxConfig::from_settings(settings),
        listener,
    )
    .await?;
    if settings.twilio.is_none() {
        settings.twilio = Some(sandbox.twilio_settings());
    }
    if settings.meta.is_none() {
        settings.meta = Some(sandbox.meta_settings());
    }
    if settings.discord_webhook_url.is_none() {
        settings.discord_webhook_url = Some(sandbox.discord_webhook_url());
        // The sandbox's own Discord stand-in is on this machine: allowed,
        // by its exact address and port only.
        let own = format!("127.0.0.1:{}", sandbox.port());
        settings.fetch_allowlist = if settings.fetch_allowlist.trim().is_empty() {
            own
        } else {
            format!("{}, {own}", settings.fetch_allowlist)
        };
    }
    // The credentials now point at the sandbox; remember that it is one.
    settings.sandbox = heimdall_domain::settings::SandboxMode::On;
    tracing::warn!(
        sandbox = %sandbox.base_url(),
        "no provider credentials are configured: sending to the built-in sandbox (nothing reaches a real person)"
    );
    Ok(sandbox)
}

/// The provider clients the settings call for.
pub fn build_providers(settings: &Settings) -> Providers {
    use heimdall_domain::channels::{meta::MetaClient, twilio::TwilioClient, MessageProvider};
    let http = heimdall_domain::channels::twilio::default_http_client();
    let twilio = settings
        .twilio
        .as_ref()
        .map(|t| Arc::new(TwilioClient::new(t, http.clone())));
    let meta = settings
        .meta
        .as_ref()
        .map(|m| Arc::new(MetaClient::new(m, http.clone())));
    let whatsapp: Option<Arc<dyn MessageProvider>> = match settings.whatsapp_provider {
        WhatsAppProvider::Twilio => twilio.clone().map(|t| t as Arc<dyn MessageProvider>),
        WhatsAppProvider::Meta => meta.clone().map(|m| m as Arc<dyn MessageProvider>),
    };
    Providers {
        whatsapp,
        sms: twilio.clone().map(|t| t as Arc<dyn MessageProvider>),
        twilio,
        meta,
    }
}

/// Connect to the database (creating and migrating it), Redis and the
/// queue; build the clients; register templates and senders.
pub async fn build_core(
    settings: Settings,
    clock: SharedClock,
) -> anyhow::Result<(Arc<Core>, Queue)> {
    let providers = build_providers(&settings);
    build_core_with(settings, clock, providers).await
}

/// [`build_core`] with the provider clients given (benchmarks wrap them).
pub async fn build_core_with(
    settings: Settings,
    clock: SharedClock,
    providers: Providers,
) -> anyhow::Result<(Arc<Core>, Queue)> {
    let db = Db::connect(&settings).await?;
    db.migrate().await?;
    let redis = heimdall_domain::core::connect_redis(&settings)
        .await
        .map_err(|e| anyhow::anyhow!("HEIMDALL_REDIS_URL: could not connect to Redis: {e}"))?;
    let queue = Queue::open(&db, redis.clone(), &settings.redis_namespace).await?;
    // The webhook URL goes through the same guard as every URL that is
    // not a provider's (no address on this network unless allowlisted).
    let fetch = heimdall_domain::core::Fetch::from_settings(&settings);
    let alerter = heimdall_domain::channels::discord::Alerter::new(
        settings.discord_webhook_url.clone(),
        fetch.client.clone(),
        &fetch.policy,
        Duration::from_secs(60),
    );
    let sandbox = settings.sandbox_active();
    let core = Core::new(CoreParts {
        settings,
        db,
        redis,
        clock,
        queue: Arc::new(queue.clone()),
        providers,
        alerts: Some(Arc::new(alerter)),
    });
    prepare(&core, sandbox).await?;
    Ok((core, queue))
}

/// Start-up work that needs the core: templates, senders, stored settings.
async fn prepare(core: &Arc<Core>, sandbox: bool) -> anyhow::Result<()> {
    // Erased people's STOPs are honoured through hashes made with the
    // erasure key: never start without it, or with another one.
    heimdall_domain::privacy::check_key(core).await?;
    heimdall_domain::templates::register_from_settings(core).await?;
    heimdall_domain::access::authz::register_senders(core, sandbox).await?;
    // Settings stored in the console override the environment's.
    if heimdall_domain::settings::runtime::refresh(core).await? {
        tracing::info!("settings saved in the console override the environment");
    }
    core.limits.load_tier(&core.db, core.now()).await?;
    // With Redis: the shared limits ready (restored if Redis lost them) before any
    // worker asks them, and waiting work enqueued again if the queue was lost.
    heimdall_domain::housekeeping::watch_redis(core).await;
    // Twilio's Content API, and Meta's template list when Meta is configured.
    if core.providers.twilio.is_some()
        || !heimdall_domain::templates::authoring::available_providers(core).is_empty()
    {
        match heimdall_domain::templates::authoring::refresh_approvals(core).await {
            Ok(r) => tracing::info!(templates = r.seen, "templates synced from the providers"),
            Err(e) => {
                tracing::warn!(error = %e, "template sync from the providers failed; will retry in the background")
            }
        }
    }
    if let Err(e) = heimdall_domain::inbound::replay_spool(core).await {
        tracing::error!(error = %e, "webhook events in the local spool could not be replayed yet");
    }
    Ok(())
}

impl Application {
    pub async fn build(mut settings: Settings, options: Options) -> anyhow::Result<Application> {
        let listener = TcpListener::bind(settings.bind).map_err(|e| {
            anyhow::anyhow!("HEIMDALL_BIND: could not listen on {}: {e}", settings.bind)
        })?;
        let local = listener.local_addr()?;
        if settings.public_url.is_none() {
            settings.public_url = url::Url::parse(&format!("http://{local}")).ok();
        }
        let sandbox = if settings.sandbox_active() {
            Some(start_sandbox(&mut settings).await?)
        } else {
            None
        };
        if let Some(sb) = &sandbox {
            sb.set_heimdall_url(settings.public_base());
        }
        let (core, queue) = build_core(settings, Arc::new(SystemClock)).await?;
        let mut app = Self::build_with(core, queue, listener, options)?;
        app.sandbox = sandbox;
        Ok(app)
    }

    pub fn build_with(
        core: Arc<Core>,
        queue: Queue,
        listener: TcpListener,
        options: Options,
    ) -> anyhow::Result<Application> {
        let port = listener.local_addr()?.port();
        crate::metrics::handle();
        let site_root = site_root(&core.settings);
        let leptos_options = LeptosOptions::builder()
            .output_name("heimdall")
            .site_root(site_root.display().to_string())
            .site_pkg_dir("pkg")
            .site_addr(listener.local_addr()?)
            .build();
        let routes = generate_route_list(heimdall_app::App);
        // The console's shared state, given to the page renderer and the
        // server-function handler alike.
        let console = heimdall_app::server::ConsoleState::new(core.clone());
        tokio::spawn(crate::console::announce_first_admin_link(console.clone()));
        let data = web::Data::new(core.clone());
        let max_body = core.settings.max_webhook_bytes;
        let server = HttpServer::new(move || {
            let opts = leptos_options.clone();
            let pkg = site_root.join("pkg");
            App::new()
                .wrap(from_fn(routes::api::guard))
                .wrap(from_fn(log_request))
                .app_data(data.clone())
                .app_data(web::PayloadConfig::new(max_body))
                .app_data(crate::error::json_config())
                .app_data(crate::error::query_config())
                .app_data(crate::error::path_config())
                .route("/healthz", web::get().to(routes::health::healthz))
                .route("/readyz", web::get().to(routes::health::readyz))
                .route("/metrics", web::get().to(routes::health::metrics))
                .configure(routes::webhooks::configure)
                .configure(routes::api::configure)
                .configure(routes::reminders::configure)
                .configure(routes::optin::configure)
                .configure(crate::openapi::configure)
                .route("/api/{tail:.*}", web::route().to(routes::api::not_found))
                .service(actix_files::Files::new("/pkg", pkg))
                .service(
                    web::scope("/_sf")
                        .wrap(from_fn(crate::console::server_fn_errors))
                        // Console forms (a pasted audience list) may be larger than a webhook.
                        .app_data(web::PayloadConfig::new(crate::console::MAX_FORM_BYTES))
                        .route(
                            "/{tail:.*}",
                            leptos_actix::handle_server_fns_with_context({
                                let console = console.clone();
                                move || leptos::prelude::provide_context(console.clone())
                            }),
                        ),
                )
                .configure(crate::console::routes(console.clone()))
                .leptos_routes_with_context(
                    routes.clone(),
                    {
                        let console = console.clone();
                        move || leptos::prelude::provide_context(console.clone())
                    },
                    {
                        let opts = opts.clone();
                        move || heimdall_app::shell(opts.clone())
                    },
                )
                .app_data(web::Data::new(opts))
        })
        .disable_signals()
        .shutdown_timeout(30)
        .listen(listener)?
        .run();
        Ok(Application {
            port,
            server,
            core,
            queue,
            options,
            sandbox: None,
        })
    }

    /// The in-process sandbox, when one stands in for the providers.
    pub fn sandbox(&self) -> Option<&heimdall_sandbox::SandboxHandle> {
        self.sandbox.as_ref()
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn core(&self) -> &Arc<Core> {
        &self.core
    }

    /// Serve until SIGTERM/SIGINT (or `stop` fires): then stop accepting
    /// requests, let in-flight requests and jobs finish, and return.
    pub async fn run_until_stopped(
        self,
        stop: Option<watch::Receiver<bool>>,
    ) -> anyhow::Result<()> {
        let handle: ServerHandle = self.server.handle();
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let workers = if self.options.workers {
            let mut rx = shutdown_rx.clone();
            let core = self.core.clone();
            let queue = self.queue.clone();
            Some(tokio::spawn(async move {
                heimdall_jobs::runner::run(core, queue, async move {
                    let _ = rx.wait_for(|v| *v).await;
                })
                .await
            }))
        } else {
            None
        };
        // Every process keeps its runtime settings current (a change in the
        // console, a STOP waiting in another process's spool).
        let refresher = tokio::spawn(heimdall_domain::core::run_refresher(self.core.clone()));
        let server = tokio::spawn(self.server);
        tracing::info!(
            port = self.port,
            "listening on http://127.0.0.1:{}",
            self.port
        );
        wait_for_stop(stop).await;
        tracing::info!("shutting down: no new requests or jobs; finishing what is in flight");
        let _ = shutdown_tx.send(true);
        handle.stop(true).await;
        let _ = server.await;
        if let Some(w) = workers {
            match tokio::time::timeout(Duration::from_secs(40), w).await {
                Ok(Ok(Ok(()))) => tracing::info!("workers stopped cleanly"),
                Ok(Ok(Err(e))) => tracing::warn!(error = %e, "workers stopped with an error"),
                Ok(Err(e)) => tracing::warn!(error = %e, "workers task failed"),
                Err(_) => tracing::warn!(
                    "workers did not stop within 40 s; unfinished jobs return to the queue"
                ),
            }
        }
        if self.options.workers {
            seal_before_exit(&self.core).await;
        }
        refresher.abort();
        if let Some(sb) = self.sandbox {
            sb.stop().await;
        }
        tracing::info!("stopped");
        Ok(())
    }
}

/// Resolves on SIGTERM, SIGINT, or when `stop` turns true.
pub async fn wait_for_stop(stop: Option<watch::Receiver<bool>>) {
    let external = async move {
        match stop {
            Some(mut rx) => {
                let _ = rx.wait_for(|v| *v).await;
            }
            None => futures::future::pending::<()>().await,
        }
    };
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("can listen for SIGTERM");
        tokio::select! {
            _ = term.recv() => tracing::info!("SIGTERM received"),
            _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            _ = external => {},
        }
    }
    #[cfg(not(unix))]
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = external => {},
    }
}

/// Where the console's compiled assets are: `HEIMDALL_SITE_ROOT`, else
/// `site/` beside the binary, else `target/site` of the workspace the
/// binary was built in (so `heimdall serve` works from any directory).
pub fn site_root(settings: &Settings) -> PathBuf {
    if let Some(root) = &settings.site_root {
        return root.clone();
    }
    if let Ok(exe) = std::env::current_exe() {
        if let Some(dir) = exe.parent() {
            let beside = dir.join("site");
            if beside.join("pkg").exists() {
                return beside;
            }
        }
    }
    let built = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/site");
    if built.join("pkg").exists() {
        return built;
    }
    PathBuf::from("target/site")
}

/// One log line per request with its status and latency; the same as a
/// histogram for /metrics. Query strings are not logged (they may carry
/// tokens).
async fn log_request(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let start = Instant::now();
    let method = req.method().to_string();
    let path = loggable_path(req.path());
    let res = next.call(req).await;
    let elapsed = start.elapsed();
    let status = match &res {
        Ok(r) => r.status().as_u16(),
        Err(e) => e.as_response_error().status_code().as_u16(),
    };
    let route = metric_route(&path);
    metrics::histogram!("http_request_duration_seconds", "route" => route, "status" => status.to_string())
        .record(elapsed.as_secs_f64());
    if path.starts_with("/pkg/") {
        tracing::debug!(%method, %path, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request");
    } else {
        tracing::info!(%method, %path, status, latency_ms = elapsed.as_secs_f64() * 1000.0, "request");
    }
    res
}

/// The path as logged: one-time tokens in it (opt-in confirmation, first
/// admin set-up) are cut off.
fn loggable_path(path: &str) -> String {
    for prefix in ["/optin/confirm/", "/setup/"] {
        if path.starts_with(prefix) {
            return format!("{prefix}[token]");
        }
    }
    path.to_string()
}

/// A low-cardinality label for a path.
fn metric_route(path: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "/webhooks/twilio/inbound",
        "/webhooks/twilio/status",
        "/webhooks/meta",
        "/api/whatsapp/send",
        "/api/v1/messages",
        "/healthz",
        "/readyz",
        "/metrics",
    ];
    KNOWN
        .iter()
        .find(|k| path.starts_with(**k))
        .copied()
        .unwrap_or(if path.starts_with("/api/") {
            "/api/other"
        } else if path.starts_with("/pkg/") {
            "/pkg"
        } else {
            "other"
        })
}

/// `heimdall worker`: the workers and schedules without HTTP.
pub async fn run_worker_only(mut settings: Settings) -> anyhow::Result<()> {
    let _sandbox = if settings.sandbox_active() {
        Some(start_sandbox(&mut settings).await?)
    } else {
        None
    };
    let (core, queue) = build_core(settings, Arc::new(SystemClock)).await?;
    tracing::info!("heimdall worker running");
    let refresher = tokio::spawn(heimdall_domain::core::run_refresher(core.clone()));
    let res = heimdall_jobs::runner::run(core.clone(), queue, wait_for_stop(None)).await;
    seal_before_exit(&core).await;
    refresher.abort();
    res
}

/// One last run of the audit chain's sealer at a graceful stop (it runs
/// every second in housekeeping; this chains what the last second wrote).
/// Bounded, and never an error: any other process's sealer, or this one's
/// next start, chains what is left.
async fn seal_before_exit(core: &Core) {
    match tokio::time::timeout(
        Duration::from_secs(5),
        heimdall_domain::audit::chain::seal(core),
    )
    .await
    {
        Ok(Ok(report)) => tracing::info!(%report, "audit chain sealed before stopping"),
        Ok(Err(e)) => tracing::warn!(error = %e, "audit chain not sealed before stopping"),
        Err(_) => tracing::warn!("audit chain not sealed before stopping: took over 5 s"),
    }
}

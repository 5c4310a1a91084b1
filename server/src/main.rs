use clap::Parser;

/// mimalloc instead of the system allocator: the send path allocates and
/// frees many small buffers per message on every worker thread, where
/// glibc's malloc cost about 8 % of the machine's CPU under load
/// (`heimdall-bench outbound`, perf).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use heimdall_domain::Settings;
use heimdall_server::cli::{ApiKeyCommand, AuditCommand, Cli, Command, UserCommand};
use heimdall_server::{cli, startup, telemetry};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::load() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("heimdall: bad settings: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    telemetry::init(settings.log_json);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("heimdall: could not start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve { bind } => {
                let mut settings = settings;
                if let Some(b) = bind {
                    settings.bind = b;
                }
                let app =
                    startup::Application::build(settings, startup::Options::default()).await?;
                app.run_until_stopped(None).await
            }
            Command::Worker => startup::run_worker_only(settings).await,
            Command::Migrate => cli::migrate(settings).await,
            Command::User { command } => match command {
                UserCommand::Add { email, role, name } => {
                    cli::user_add(settings, email, role, name).await
                }
                UserCommand::Deactivate { email } => {
                    cli::user_change(settings, email, cli::UserChange::Deactivate).await
                }
                UserCommand::Reactivate { email } => {
                    cli::user_change(settings, email, cli::UserChange::Reactivate).await
                }
                UserCommand::SetRole { email, role } => {
                    cli::user_change(settings, email, cli::UserChange::Role(role)).await
                }
                UserCommand::ResetPassword { email } => {
                    cli::user_change(settings, email, cli::UserChange::Password).await
                }
                UserCommand::SetupLink => cli::setup_link(settings).await,
            },
            Command::ApiKey {
                command:
                    ApiKeyCommand::Create {
                        name,
                        created_by,
                        scopes,
                    },
            } => cli::api_key_create(settings, name, created_by, scopes).await,
            Command::Sandbox { bind } => {
                heimdall_server::sandbox::run_standalone(settings, bind).await
            }
            Command::Preview => cli::preview(),
            Command::Audit {
                command: AuditCommand::Verify,
            } => cli::audit_verify(settings).await,
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        // Already reported on stdout; its own status, so scripts can tell
        // "broken" from "could not check".
        Err(e) if e.is::<cli::ChainBroken>() => std::process::ExitCode::from(2),
        Err(e) => {
            eprintln!("heimdall: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

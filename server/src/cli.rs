//! The `heimdall` command line.

use std::io::Read;
use std::net::SocketAddr;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use heimdall_domain::access::accounts::{self, Role};
use heimdall_domain::{Settings, SystemClock};

#[derive(Debug, Parser)]
#[command(
    name = "heimdall",
    version,
    about = "Compliance-gated outbound messaging: every WhatsApp and SMS message gated, audited and traceable to a human decision.",
    long_about = None
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// HTTP (console, public pages, webhooks, API) plus workers and schedules; runs pending migrations first.
    Serve {
        /// Listen here instead of HEIMDALL_BIND (port 0 picks a free port, printed in the log).
        #[arg(long)]
        bind: Option<SocketAddr>,
    },
    /// Workers and schedules only, for scaling out.
    Worker,
    /// Apply pending migrations and exit.
    Migrate,
    /// Staff accounts.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// API keys for automations.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// The tamper-evident audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// A local stand-in for Twilio, Meta's Graph API and a Discord webhook.
    Sandbox {
        /// Where the sandbox listens.
        #[arg(long, default_value = "127.0.0.1:4010")]
        bind: SocketAddr,
    },
    /// Markdown on stdin to WhatsApp text and chunks, as JSON on stdout.
    Preview,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a staff account; the password is read from stdin (one line).
    Add {
        #[arg(long)]
        email: String,
        /// viewer, operator, approver or admin.
        #[arg(long, default_value = "operator")]
        role: Role,
        #[arg(long)]
        name: Option<String>,
    },
    /// End a staff member's access: they cannot sign in, and their sessions
    /// end at once (at least one active admin is always kept).
    Deactivate {
        #[arg(long)]
        email: String,
    },
    /// Give a deactivated staff member access again.
    Reactivate {
        #[arg(long)]
        email: String,
    },
    /// Change a staff member's role; their sessions end.
    SetRole {
        #[arg(long)]
        email: String,
        /// viewer, operator, approver or admin.
        #[arg(long)]
        role: Role,
    },
    /// Set a new password (read from stdin, one line); their sessions end.
    ResetPassword {
        #[arg(long)]
        email: String,
    },
    /// Print a new one-time link that creates the first admin (works for 15
    /// minutes, while no staff account exists).
    SetupLink,
}

#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Create an API key and print it once (only its hash is stored).
    Create {
        #[arg(long)]
        name: String,
        /// Who asked for it, for the audit trail.
        #[arg(long, default_value = "cli")]
        created_by: String,
        /// What the key may do (repeat, or comma separated): send,
        /// reminders, schedules, contacts:read, contacts:write,
        /// consents:read, consents:write, forms:read, forms:write.
        #[arg(long = "scope", required = true, value_delimiter = ',')]
        scopes: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Walk every audit chain (tool calls, consents, suppressions, campaign
    /// approvals) and print each one's head, or its first broken link.
    /// Exit status: 0 intact, 2 broken, 1 could not verify.
    Verify,
}

fn read_password() -> anyhow::Result<SecretString> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let line = input.lines().next().unwrap_or_default().to_string();
    Ok(SecretString::from(line))
}

/// Run a command that needs only the database (no HTTP, no workers).
async fn with_core<T>(
    settings: Settings,
    f: impl AsyncFnOnce(&heimdall_domain::Core) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let (core, _queue) =
        crate::startup::build_core(settings, std::sync::Arc::new(SystemClock)).await?;
    f(&core).await
}

pub async fn user_add(
    settings: Settings,
    email: String,
    role: Role,
    name: Option<String>,
) -> anyhow::Result<()> {
    let password = read_password()?;
    let user = with_core(settings, async |core| {
        Ok(accounts::create_user(core, &email, name, role, &password).await?)
    })
    .await?;
    println!("created {} ({}) with id {}", user.email, user.role, user.id);
    Ok(())
}

/// `heimdall user deactivate|reactivate|set-role|reset-password`.
pub async fn user_change(
    settings: Settings,
    email: String,
    change: UserChange,
) -> anyhow::Result<()> {
    let change = match change {
        UserChange::Deactivate => accounts::StaffChange::Deactivate,
        UserChange::Reactivate => accounts::StaffChange::Reactivate,
        UserChange::Role(r) => accounts::StaffChange::Role(r),
        UserChange::Password => accounts::StaffChange::Password(read_password()?),
    };
    let user = with_core(settings, async |core| {
        Ok(accounts::change_staff(core, None, &email, change).await?)
    })
    .await?;
    println!(
        "{} is {} ({}); the change is in the staff audit trail",
        user.email,
        if user.active { "active" } else { "deactivated" },
        user.role
    );
    Ok(())
}

/// What [`user_change`] does.
pub enum UserChange {
    Deactivate,
    Reactivate,
    Role(Role),
    Password,
}

/// `heimdall user setup-link`: a new first-admin link, printed.
pub async fn setup_link(settings: Settings) -> anyhow::Result<()> {
    let link = with_core(settings, async |core| {
        Ok(heimdall_domain::access::sessions::FirstAdminLink::new()
            .arm_if_needed(core)
            .await?
            .map(|(token, expires)| (crate::console::setup_url(core, &token), expires)))
    })
    .await?;
    match link {
        Some((url, expires)) => {
            eprintln!(
                "create the first admin here (works once, until {}):",
                expires.format("%Y-%m-%d %H:%M UTC")
            );
            println!("{url}");
            Ok(())
        }
        None => anyhow::bail!(
            "a staff account exists already: sign in, or ask an admin (or `heimdall user add`)"
        ),
    }
}

pub async fn api_key_create(
    settings: Settings,
    name: String,
    created_by: String,
    scopes: Vec<String>,
) -> anyhow::Result<()> {
    let scopes = heimdall_domain::entities::api_key::Scopes::parse_list(&scopes.join(","))
        .map_err(|e| anyhow::anyhow!("--scope: {e}"))?;
    let key = with_core(settings, async |core| {
        Ok(accounts::create_api_key(core, &name, &created_by, &scopes).await?)
    })
    .await?;
    eprintln!(
        "created API key '{}' (id {}) with scopes {}; it is shown once, store it now:",
        key.name,
        key.id,
        scopes.names().join(", ")
    );
    println!("{}", key.key.expose_secret());
    Ok(())
}

/// `heimdall audit verify` found a broken link (and printed it).
#[derive(Debug, thiserror::Error)]
#[error("the audit chain is broken")]
pub struct ChainBroken;

/// `heimdall audit verify`: every stream's head or first broken link, on
/// stdout; [`ChainBroken`] when a link is broken. It only reads: no
/// migration, no sealing (rows not chained yet are counted, as a warning).
pub async fn audit_verify(settings: Settings) -> anyhow::Result<()> {
    use heimdall_domain::audit::chain;
    let db = heimdall_domain::Db::connect(&settings).await?;
    let report = chain::verify(&db.conn).await.map_err(|e| {
        anyhow::anyhow!("could not read the audit chain (is the database migrated?): {e}")
    })?;
    for s in &report.streams {
        match &s.broken {
            None => println!(
                "{}: intact, {} entries, head {}",
                s.stream, s.head_seq, s.head_hash
            ),
            Some(b) => println!("{}: BROKEN at {b}", s.stream),
        }
        if let Some((seq, at)) = s.anchor {
            println!(
                "  last anchored at seq {seq} on {}",
                at.format("%Y-%m-%d %H:%M UTC")
            );
        }
        if s.unsealed > 0 {
            println!(
                "  warning: {} rows or changes not chained yet (the sealer chains them within seconds)",
                s.unsealed
            );
        }
    }
    let intact = report.intact();
    println!(
        "audit chain: {}",
        if intact {
            "intact"
        } else {
            "BROKEN (a chained row or entry was changed, removed or reordered)"
        }
    );
    if intact {
        Ok(())
    } else {
        Err(ChainBroken.into())
    }
}

pub async fn migrate(settings: Settings) -> anyhow::Result<()> {
    let db = heimdall_domain::Db::connect(&settings).await?;
    db.migrate().await?;
    println!("migrations applied");
    Ok(())
}

/// `heimdall preview`: Markdown on stdin, `{"text", "chunks"}` on stdout.
pub fn preview() -> anyhow::Result<()> {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input)?;
    let rendered = heimdall_domain::channels::formatting::render_for_whatsapp(&input);
    println!("{}", serde_json::to_string(&rendered)?);
    Ok(())
}

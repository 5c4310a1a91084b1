//! `heimdall audit verify`, the real binary against a database written by
//! the real paths (SQLite by default; PostgreSQL when the run asks for it):
//! 0 while the chains are intact, 2 naming the row after a change by hand,
//! 1 when it cannot verify at all.

use std::process::{Command, Output};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use secrecy::ExposeSecret;

use heimdall_domain::audit::chain;
use heimdall_domain::entities::consent;
use heimdall_domain::sending::outbound;
use heimdall_domain::testing::{self, TestEnv};
use heimdall_domain::{access::authz, templates};

fn audit_verify(database_url: &str, dir: &std::path::Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_heimdall"))
        .args(["audit", "verify"])
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HEIMDALL_DATABASE_URL", database_url)
        .env("HEIMDALL_DATA_DIR", dir.join("data"))
        .output()
        .expect("run heimdall audit verify")
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[tokio::test]
async fn audit_verify_exits_0_when_intact_and_2_naming_a_row_changed_by_hand() {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    let core = &env.core;
    authz::register_senders(core, true).await.unwrap();
    templates::register_from_settings(core).await.unwrap();
    testing::accept_reminder_to(core, "+4791234567").await;
    for id in env.take_enqueued() {
        outbound::process_send(core, &id).await.unwrap();
    }
    chain::seal(core).await.unwrap();
    let url = core.settings.database_url.expose_secret().to_string();

    let out = audit_verify(&url, env.dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("tool_calls: intact, 3 entries"),
        "{}",
        text(&out)
    );
    assert!(
        stdout.contains("consents: intact, 1 entries"),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("audit chain: intact"), "{}", text(&out));

    // The consent's evidence changed by hand.
    let id = consent::Entity::find()
        .filter(consent::Column::Channel.eq("whatsapp"))
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .id;
    core.db
        .conn
        .execute_raw(Statement::from_string(
            core.db.backend(),
            format!("UPDATE consents SET ip = '198.51.100.1' WHERE id = '{id}'"),
        ))
        .await
        .unwrap();
    let out = audit_verify(&url, env.dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "consents: BROKEN at consents seq 1: consents row {id} (created): content changed"
        )),
        "{}",
        text(&out)
    );
    assert!(stdout.contains("tool_calls: intact"), "{}", text(&out));
}

#[tokio::test]
async fn audit_verify_exits_1_when_it_cannot_verify() {
    let dir = tempfile::tempdir().unwrap();
    // A database without Heimdall's tables (never migrated).
    let url = format!("sqlite://{}/empty.db?mode=rwc", dir.path().display());
    let out = audit_verify(&url, dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("could not read the audit chain"),
        "{}",
        text(&out)
    );
}

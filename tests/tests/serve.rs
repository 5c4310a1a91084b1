//! `heimdall serve` as a user runs it: a fresh database, health, readiness,
//! metrics, the console shell, clean shutdown on SIGTERM, and clear errors
//! for bad settings. Runs on SQLite, and on PostgreSQL with Redis when
//! `HEIMDALL_TEST_BACKEND=postgres` and `HEIMDALL_TEST_REDIS_URL` are set.

mod support;

use std::process::Command;

#[tokio::test]
async fn serve_answers_health_readiness_metrics_and_the_shell() {
    let mut server = support::start(&[]).await;
    let http = reqwest::Client::new();

    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.json::<serde_json::Value>().await.unwrap()["status"],
        "ok"
    );

    let ready: serde_json::Value = http
        .get(server.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(ready["status"], "ready", "{ready}");
    assert_eq!(ready["database"], "ok");
    let postgres = std::env::var("HEIMDALL_TEST_BACKEND").as_deref() == Ok("postgres");
    assert_eq!(
        ready["database_backend"],
        if postgres { "postgres" } else { "sqlite" }
    );
    if heimdall_domain::testing::redis_url().is_some() {
        assert_eq!(ready["redis"], "ok");
    } else {
        assert_eq!(ready["redis"], "not configured");
    }

    // The shell is rendered on the server and loads the hydration bundle.
    let page = http.get(server.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.starts_with("<!DOCTYPE html>"), "{html}");
    assert!(
        html.contains("/pkg/heimdall.js"),
        "hydration script missing"
    );
    assert!(html.contains("/pkg/heimdall.css"));

    // Requests are measured.
    let metrics = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("http_request_duration_seconds"),
        "{metrics}"
    );

    // Unknown API paths answer in the API's error shape.
    let missing = http
        .get(server.url("/api/v1/nothing"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "not_found"
    );

    // With no provider credentials the in-process sandbox stands in.
    assert!(
        server.sandbox.is_some(),
        "sandbox not started:\n{}",
        server.log()
    );

    let status = server.terminate();
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    assert!(server.log().contains("stopped"));
}

#[tokio::test]
async fn a_fresh_machine_gets_the_embedded_database_file() {
    let dir = tempfile::tempdir().unwrap();
    // No database URL at all: the default sqlite://data/heimdall.db in the working directory.
    let env = vec![("HEIMDALL_BIND".to_string(), "127.0.0.1:0".to_string())];
    let mut server = support::start_with(dir, env);
    let body: serde_json::Value = reqwest::get(server.url("/readyz"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["database_backend"], "sqlite");
    assert!(server.dir.path().join("data/heimdall.db").exists());
    assert!(server.terminate().success());
}

fn run(args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(support::bin());
    cmd.args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    child.wait_with_output().unwrap()
}

#[test]
fn bad_settings_stop_start_up_naming_the_setting() {
    for (name, value) in [
        ("HEIMDALL_BIND", "not-an-address"),
        ("HEIMDALL_DATABASE_URL", "mysql://nope"),
        ("HEIMDALL_REDIS_URL", "http://localhost"),
        ("HEIMDALL_PUBLIC_URL", "ftp://example.com"),
        ("HEIMDALL_TIER_LADDER", "2000,250"),
        ("TWILIO_ACCOUNT_SID", "ACnot-long-enough"),
    ] {
        let out = run(&["serve"], &[(name, value)], None);
        assert_eq!(out.status.code(), Some(2), "{name}={value}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(name) || (name == "TWILIO_ACCOUNT_SID" && stderr.contains("TWILIO_")),
            "{name}: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[test]
fn every_command_has_help() {
    for args in [
        vec!["--help"],
        vec!["serve", "--help"],
        vec!["worker", "--help"],
        vec!["migrate", "--help"],
        vec!["user", "add", "--help"],
        vec!["api-key", "create", "--help"],
        vec!["sandbox", "--help"],
        vec!["preview", "--help"],
    ] {
        let out = run(&args, &[], None);
        assert!(out.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("Usage"), "{args:?}: {text}");
    }
}

#[test]
fn user_add_and_api_key_create_store_only_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/h.db?mode=rwc", dir.path().display());
    let env = [("HEIMDALL_DATABASE_URL", db.as_str())];
    let out = run(
        &[
            "user",
            "add",
            "--email",
            "Ops@Example.com",
            "--role",
            "admin",
        ],
        &env,
        Some("a long enough password\n"),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("ops@example.com"));
    // A short password is refused with a clear message.
    let out = run(
        &["user", "add", "--email", "b@example.com"],
        &env,
        Some("short\n"),
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("at least 12"));
    // Duplicate email: refused.
    let out = run(
        &["user", "add", "--email", "ops@example.com"],
        &env,
        Some("another long password\n"),
    );
    assert!(!out.status.success());

    // A key needs its scopes named; an unknown one is refused clearly.
    let out = run(&["api-key", "create", "--name", "n8n"], &env, None);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scope"));
    let out = run(
        &[
            "api-key",
            "create",
            "--name",
            "n8n",
            "--scope",
            "send,everything",
        ],
        &env,
        None,
    );
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("'everything' is not a scope"));
    let out = run(
        &[
            "api-key",
            "create",
            "--name",
            "n8n",
            "--scope",
            "send",
            "--scope",
            "reminders",
        ],
        &env,
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("send, reminders"));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(key.starts_with("hmd_") && key.len() > 40, "{key}");
    let file = std::fs::read(dir.path().join("h.db")).unwrap();
    let haystack = String::from_utf8_lossy(&file);
    assert!(!haystack.contains(&key), "the API key is stored in clear");
    assert!(
        !haystack.contains("a long enough password"),
        "the password is stored in clear"
    );
}

#[test]
fn preview_renders_markdown_from_stdin() {
    let out = run(&["preview"], &[], Some("# Hello\n\n**bold** and *it*"));
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["text"], "*Hello*\n\n*bold* and _it_");
    assert_eq!(v["chunks"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn migrations_go_up_down_and_up_again() {
    use heimdall_migrations::MigratorTrait;
    let dir = tempfile::tempdir().unwrap();
    let url = match heimdall_domain::testing::backend() {
        heimdall_domain::testing::Backend::Sqlite => {
            format!("sqlite://{}/m.db?mode=rwc", dir.path().display())
        }
        // A cloned database is already migrated: down then up again.
        heimdall_domain::testing::Backend::Postgres { .. } => {
            heimdall_domain::testing::fresh_database_url(dir.path()).await
        }
    };
    let db = heimdall_domain::Db::connect_url(&url, false).await.unwrap();
    heimdall_migrations::Migrator::up(&db.conn, None)
        .await
        .unwrap();
    let applied = heimdall_migrations::Migrator::get_applied_migrations(&db.conn)
        .await
        .unwrap()
        .len();
    assert_eq!(applied, heimdall_migrations::Migrator::migrations().len());
    heimdall_migrations::Migrator::down(&db.conn, None)
        .await
        .unwrap();
    assert_eq!(
        heimdall_migrations::Migrator::get_applied_migrations(&db.conn)
            .await
            .unwrap()
            .len(),
        0
    );
    heimdall_migrations::Migrator::up(&db.conn, None)
        .await
        .unwrap();
    assert_eq!(
        heimdall_migrations::Migrator::get_applied_migrations(&db.conn)
            .await
            .unwrap()
            .len(),
        applied
    );
    // The schema works after the round trip.
    db.ping().await.unwrap();
}

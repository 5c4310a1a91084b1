//! Connecting: the pools and their settings for each backend, the
//! group-commit writer (and on SQLite the checkpointer) started, and the
//! migrations applied.

use std::str::FromStr;
use std::time::Duration;

use heimdall_migrations::MigratorTrait;
use sea_orm::{DbErr, SqlxPostgresConnector, SqlxSqliteConnector};
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::settings::Settings;

use super::writers::{group_commit, pg_group_commit, PG_GROUPS_IN_FLIGHT};
use super::{Db, WriteRequest};

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("HEIMDALL_DATABASE_URL: {0}")]
    Url(String),
    #[error("could not create the database directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("could not connect to the database: {0}")]
    Connect(#[source] sqlx::Error),
    #[error("migrations failed: {0}")]
    Migrate(#[source] DbErr),
}

impl Db {
    /// Connect using the settings' URL. For SQLite the file's directory is
    /// created, WAL is switched on and foreign keys enforced.
    pub async fn connect(settings: &Settings) -> Result<Db, DbError> {
        Self::connect_url(
            settings.database_url.expose_secret(),
            settings.sqlite_synchronous_full,
        )
        .await
    }

    pub async fn connect_url(url: &str, sqlite_full_sync: bool) -> Result<Db, DbError> {
        if url.starts_with("sqlite:") {
            let opts =
                SqliteConnectOptions::from_str(url).map_err(|e| DbError::Url(e.to_string()))?;
            let path = opts.get_filename().to_path_buf();
            if let Some(dir) = path.parent() {
                if !dir.as_os_str().is_empty() && !dir.exists() {
                    std::fs::create_dir_all(dir).map_err(|source| DbError::Directory {
                        path: dir.display().to_string(),
                        source,
                    })?;
                }
            }
            let opts = opts
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(if sqlite_full_sync {
                    SqliteSynchronous::Full
                } else {
                    SqliteSynchronous::Normal
                })
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(30))
                // A larger page cache and memory-mapped reads keep lookups
                // fast as the file grows past the default 2 MB cache.
                .pragma("cache_size", "-65536")
                .pragma("mmap_size", "268435456")
                .pragma("temp_store", "memory")
                // No checkpoints on the write path: the checkpointer below
                // does them on its own connection (see `checkpointer`).
                .pragma("wal_autocheckpoint", "0");
            let pool = SqlitePoolOptions::new()
                .max_connections(sqlite_pool_size())
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts.clone())
                .await
                .map_err(DbError::Connect)?;
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(group_commit(pool.clone(), rx));
            tokio::spawn(checkpointer(opts, tx.downgrade()));
            Ok(Db {
                conn: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
                writer: Some(tx),
            })
        } else {
            // Generic plans for prepared statements: every statement here is
            // prepared once per connection and run with different keys, and
            // PostgreSQL otherwise re-plans some of them on every run (the
            // send path's facts query, six tables, cost more to plan than
            // to run). Set here so a URL's own `options` can still override.
            let opts = sqlx::postgres::PgConnectOptions::from_str(url)
                .map_err(|e| DbError::Url(e.to_string()))?;
            let opts = if url.contains("plan_cache_mode") {
                opts
            } else {
                opts.options([("plan_cache_mode", "force_generic_plan")])
            };
            let opts = without_tls_on_loopback(url, opts, std::env::var_os("PGSSLMODE").is_some());
            // The group-commit writer's own connections. Its statements
            // write rows found by primary key; the merged statement joins
            // the callers' rows to their messages, and a plan made while a
            // table is empty (a fresh install) would otherwise scan the
            // whole table on every write for as long as the connection
            // lives. Index lookups, always, on these connections.
            let write_opts = opts.clone().options([
                ("enable_seqscan", "off"),
                ("enable_hashjoin", "off"),
                ("enable_mergejoin", "off"),
            ]);
            let pool = PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(DbError::Connect)?;
            let write_pool = PgPoolOptions::new()
                .max_connections(PG_GROUPS_IN_FLIGHT as u32 * 2)
                .acquire_timeout(Duration::from_secs(30))
                .connect_lazy_with(write_opts);
            let (tx, rx) = tokio::sync::mpsc::channel(1024);
            tokio::spawn(pg_group_commit(write_pool, rx));
            Ok(Db {
                conn: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
                writer: Some(tx),
            })
        }
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        heimdall_migrations::Migrator::up(&self.conn, None)
            .await
            .map_err(DbError::Migrate)
    }
}

/// A PostgreSQL server on this machine (a loopback address or a Unix
/// socket) is reached without TLS unless TLS was asked for: nothing leaves
/// the machine, and encrypting every round trip costs a third of the send
/// path's throughput (measured with `heimdall-bench outbound`). An
/// `sslmode` (or `ssl-mode`) in the URL, or `PGSSLMODE` in the environment
/// (`env_sslmode`), is always taken as it says; any other host keeps
/// sqlx's default (`prefer`).
fn without_tls_on_loopback(
    url: &str,
    opts: sqlx::postgres::PgConnectOptions,
    env_sslmode: bool,
) -> sqlx::postgres::PgConnectOptions {
    let url_sslmode = url::Url::parse(url).is_ok_and(|u| {
        u.query_pairs()
            .any(|(k, _)| k.eq_ignore_ascii_case("sslmode") || k.eq_ignore_ascii_case("ssl-mode"))
    });
    // (sqlx keeps a socket path, given as the host or `?host=`, apart.)
    let loopback = opts.get_socket().is_some()
        || opts.get_host() == "localhost"
        || opts
            .get_host()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback && !url_sslmode && !env_sslmode {
        opts.ssl_mode(sqlx::postgres::PgSslMode::Disable)
    } else {
        opts
    }
}

/// Connections in the SQLite pool: `HEIMDALL_SQLITE_POOL` (tests and
/// benchmarks compare), default 1. SQLite takes one writer at a time; with
/// several connections, writers that find the lock taken sleep in SQLite's
/// busy handler (1, 2, 5, 10 ... 100 ms), which under load costs far more
/// than queueing for one connection in the pool.
fn sqlite_pool_size() -> u32 {
    std::env::var("HEIMDALL_SQLITE_POOL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n >= 1)
        .unwrap_or(1)
}

/// WAL frames after which the checkpointer resets the log even if that
/// briefly holds writers (about 64 MB).
const WAL_RESTART_FRAMES: i64 = 16_000;

/// SQLite: copy the write-ahead log back into the database file on a
/// connection of its own, every 250 ms, so that neither the copy nor its
/// fsync ever happens inside a request's commit (SQLite's automatic
/// checkpoint would run it in whichever commit crosses the threshold, and
/// every writer would wait). A passive checkpoint never blocks writers;
/// if the log still grows past [`WAL_RESTART_FRAMES`] (writes without a
/// pause), a restart checkpoint resets it. Ends when the database's last
/// handle is dropped.
async fn checkpointer(
    opts: SqliteConnectOptions,
    alive: tokio::sync::mpsc::WeakSender<WriteRequest>,
) {
    use sqlx::ConnectOptions;
    let mut conn = match opts.connect().await {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "SQLite checkpointer could not connect; the log grows until restart");
            return;
        }
    };
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if alive.upgrade().is_none() {
            break;
        }
        let passive: Result<(i64, i64, i64), _> = sqlx::query_as("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(&mut conn)
            .await;
        match passive {
            Ok((_, frames, _)) if frames > WAL_RESTART_FRAMES => {
                if let Err(e) = sqlx::query("PRAGMA wal_checkpoint(RESTART)")
                    .execute(&mut conn)
                    .await
                {
                    tracing::warn!(error = %e, "SQLite restart checkpoint failed");
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "SQLite checkpoint failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_server_on_this_machine_is_reached_without_tls_unless_tls_is_asked_for() {
        use sqlx::postgres::PgSslMode::{self, *};
        let mode = |url: &str, env_sslmode: bool| {
            let opts = sqlx::postgres::PgConnectOptions::from_str(url).unwrap();
            without_tls_on_loopback(url, opts, env_sslmode).get_ssl_mode()
        };
        // None: as sqlx reads the URL (and PGSSLMODE), untouched.
        let cases: [(&str, bool, Option<PgSslMode>); 11] = [
            ("postgres://u@127.0.0.1:5432/db", false, Some(Disable)),
            ("postgres://u@localhost/db", false, Some(Disable)),
            ("postgres://u@[::1]:5432/db", false, Some(Disable)),
            ("postgres://u@127.0.0.2/db", false, Some(Disable)),
            (
                "postgres://u@localhost/db?host=/var/run/postgresql",
                false,
                Some(Disable),
            ),
            // Another host keeps sqlx's default; an explicit mode is honoured.
            ("postgres://u@db.internal/db", false, None),
            ("postgres://u@10.0.0.5/db", false, None),
            (
                "postgres://u@127.0.0.1/db?sslmode=require",
                false,
                Some(Require),
            ),
            (
                "postgres://u@localhost/db?sslmode=prefer",
                false,
                Some(Prefer),
            ),
            (
                "postgres://u@db.internal/db?sslmode=verify-full",
                false,
                Some(VerifyFull),
            ),
            // PGSSLMODE set: sqlx's reading of it stands.
            ("postgres://u@127.0.0.1/db", true, None),
        ];
        for (url, env_sslmode, expected) in cases {
            let untouched = sqlx::postgres::PgConnectOptions::from_str(url)
                .unwrap()
                .get_ssl_mode();
            let expected = expected.unwrap_or(untouched);
            let got = mode(url, env_sslmode);
            assert_eq!(format!("{got:?}"), format!("{expected:?}"), "{url}");
        }
        // Without PGSSLMODE, sqlx's own default is `prefer` (so the
        // untouched cases above do keep TLS when offered).
        if std::env::var_os("PGSSLMODE").is_none() {
            assert!(matches!(mode("postgres://u@db.internal/db", false), Prefer));
        }
    }
}

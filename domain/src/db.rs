//! Connecting to the database (SQLite by default, PostgreSQL when the URL
//! says so) and applying the one set of migrations.
//!
//! sea-orm and the apalis queue share one sqlx pool, so the embedded
//! default is one file and one set of connections.

use std::str::FromStr;
use std::time::Duration;

use heimdall_migrations::MigratorTrait;
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    SqlxPostgresConnector, SqlxSqliteConnector, Statement, TransactionOptions, TransactionTrait,
};
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::settings::Settings;

/// The database, whichever backend it is.
#[derive(Debug, Clone)]
pub struct Db {
    pub conn: DatabaseConnection,
}

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
                .pragma("temp_store", "memory");
            let pool = SqlitePoolOptions::new()
                .max_connections(sqlite_pool_size())
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(DbError::Connect)?;
            Ok(Db {
                conn: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
            })
        } else {
            let pool = PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(Duration::from_secs(30))
                .connect(url)
                .await
                .map_err(DbError::Connect)?;
            Ok(Db {
                conn: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
            })
        }
    }

    /// Apply pending migrations.
    pub async fn migrate(&self) -> Result<(), DbError> {
        heimdall_migrations::Migrator::up(&self.conn, None)
            .await
            .map_err(DbError::Migrate)
    }

    pub fn backend(&self) -> DbBackend {
        self.conn.get_database_backend()
    }

    pub fn is_sqlite(&self) -> bool {
        self.backend() == DbBackend::Sqlite
    }

    /// A transaction that will write. On SQLite it takes the write lock at
    /// BEGIN (IMMEDIATE), so a read-then-write inside it cannot fail with
    /// SQLITE_BUSY when another writer commits in between.
    pub async fn begin_write(&self) -> Result<DatabaseTransaction, DbErr> {
        if self.is_sqlite() {
            self.conn
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(sea_orm::SqliteTransactionMode::Immediate),
                    ..Default::default()
                })
                .await
        } else {
            self.conn
                .begin_with_options(TransactionOptions {
                    access_mode: Some(AccessMode::ReadWrite),
                    ..Default::default()
                })
                .await
        }
    }

    /// Run write statements atomically. On PostgreSQL they go as ONE
    /// statement (the first ones as data-modifying `WITH` clauses before
    /// the last): one round trip and one commit instead of a transaction's
    /// five. On SQLite (in process, no round trips) a write transaction.
    /// The statements must not depend on each other's effects (they see
    /// one snapshot) and must be built for this backend.
    pub async fn write_together(&self, statements: Vec<Statement>) -> Result<(), DbErr> {
        if self.backend() != DbBackend::Postgres || statements.len() < 2 {
            let txn = self.begin_write().await?;
            for s in statements {
                txn.execute_raw(s).await?;
            }
            return txn.commit().await;
        }
        self.conn
            .execute_raw(join_as_ctes(statements))
            .await
            .map(|_| ())
    }

    /// Is the database answering?
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.conn.ping().await
    }

    pub fn sqlite_pool(&self) -> Option<&sqlx::SqlitePool> {
        (self.is_sqlite()).then(|| self.conn.get_sqlite_connection_pool())
    }

    pub fn postgres_pool(&self) -> Option<&sqlx::PgPool> {
        (!self.is_sqlite()).then(|| self.conn.get_postgres_connection_pool())
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

/// PostgreSQL statements (`$n` placeholders) joined into one:
/// `WITH w0 AS (s0), w1 AS (s1) sN`, each one's placeholders renumbered
/// after the values of those before it.
fn join_as_ctes(statements: Vec<Statement>) -> Statement {
    let n = statements.len();
    let mut sql = String::new();
    let mut values = Vec::new();
    for (i, s) in statements.into_iter().enumerate() {
        let part = renumber_placeholders(&s.sql, values.len());
        if let Some(v) = s.values {
            values.extend(v.0);
        }
        if i + 1 < n {
            sql.push_str(if i == 0 { "WITH " } else { ", " });
            sql.push_str(&format!("w{i} AS ({part})"));
        } else {
            sql.push(' ');
            sql.push_str(&part);
        }
    }
    Statement::from_sql_and_values(DbBackend::Postgres, sql, values)
}

/// `$n` becomes `$(n + offset)`, outside quoted strings and identifiers.
fn renumber_placeholders(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                out.push(c);
                if c == q {
                    quote = None;
                }
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) => {
                let mut digits = String::new();
                while let Some(d) = chars.peek().copied().filter(char::is_ascii_digit) {
                    digits.push(d);
                    chars.next();
                }
                let n: usize = digits.parse().unwrap_or(0);
                out.push_str(&format!("${}", n + offset));
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            renumber_placeholders(r#"UPDATE "t$1" SET a = $1, b = '$2' WHERE c = $12"#, 3),
            r#"UPDATE "t$1" SET a = $4, b = '$2' WHERE c = $15"#
        );
    }

    #[test]
    fn statements_join_as_ctes_with_their_values_in_order() {
        let a = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "INSERT INTO a (x, y) VALUES ($1, $2)",
            [1i32.into(), 2i32.into()],
        );
        let b = Statement::from_sql_and_values(
            DbBackend::Postgres,
            "UPDATE b SET z = $1 WHERE id = $2",
            [3i32.into(), 4i32.into()],
        );
        let joined = join_as_ctes(vec![a, b]);
        assert_eq!(
            joined.sql,
            "WITH w0 AS (INSERT INTO a (x, y) VALUES ($1, $2)) UPDATE b SET z = $3 WHERE id = $4"
        );
        let values: Vec<sea_orm::Value> = joined.values.unwrap().0;
        assert_eq!(
            values,
            vec![1i32.into(), 2i32.into(), 3i32.into(), 4i32.into()]
        );
    }
}

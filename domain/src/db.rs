//! Connecting to the database (SQLite by default, PostgreSQL when the URL
//! says so) and applying the one set of migrations.
//!
//! sea-orm and the apalis queue share one sqlx pool, so the embedded
//! default is one file and one set of connections.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use heimdall_migrations::MigratorTrait;

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    RuntimeErr, SqlxPostgresConnector, SqlxSqliteConnector, Statement, TransactionOptions,
    TransactionTrait,
};
use sea_query_sqlx::SqlxValues;
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::settings::Settings;

/// The database, whichever backend it is.
#[derive(Debug, Clone)]
pub struct Db {
    pub conn: DatabaseConnection,
    /// SQLite: the group-commit writer behind [`Db::write_together`].
    writer: Option<tokio::sync::mpsc::Sender<WriteRequest>>,
}

/// One caller's statements for the SQLite group-commit writer.
struct WriteRequest {
    statements: Vec<Statement>,
    reply: tokio::sync::oneshot::Sender<Result<(), DbErr>>,
}

/// At most this many callers' writes share one SQLite transaction.
const MAX_GROUP: usize = 64;

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
            let pool = PgPoolOptions::new()
                .max_connections(20)
                .acquire_timeout(Duration::from_secs(30))
                .connect_with(opts)
                .await
                .map_err(DbError::Connect)?;
            Ok(Db {
                conn: SqlxPostgresConnector::from_sqlx_postgres_pool(pool),
                writer: None,
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

    /// Run write statements atomically, in one round trip. On PostgreSQL
    /// they go as ONE statement (the first ones as data-modifying `WITH`
    /// clauses before the last): one commit instead of a transaction's
    /// five round trips. On SQLite they go to the group-commit writer
    /// ([`group_commit`]) as one batch, handed to the connection's thread
    /// at once instead of one hand-off per statement.
    /// The statements must not depend on each other's effects (on
    /// PostgreSQL they see one snapshot) and must be built for this backend
    /// (sea-query's anonymous `?` placeholders on SQLite).
    pub async fn write_together(&self, statements: Vec<Statement>) -> Result<(), DbErr> {
        match self.backend() {
            DbBackend::Postgres if statements.len() >= 2 => self
                .conn
                .execute_raw(join_as_ctes(statements))
                .await
                .map(|_| ()),
            DbBackend::Sqlite if !statements.is_empty() => {
                let pool = self.conn.get_sqlite_connection_pool();
                let Some(writer) = &self.writer else {
                    return sqlite_batch(pool, &statements).await;
                };
                let (reply, answer) = tokio::sync::oneshot::channel();
                match writer.send(WriteRequest { statements, reply }).await {
                    Ok(()) => answer.await.unwrap_or_else(|_| {
                        Err(DbErr::Custom("the database writer stopped".into()))
                    }),
                    // The writer's runtime is gone (a test's): write directly.
                    Err(e) => sqlite_batch(pool, &e.0.statements).await,
                }
            }
            _ => {
                let txn = self.begin_write().await?;
                for s in statements {
                    txn.execute_raw(s).await?;
                }
                txn.commit().await
            }
        }
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

fn sqlx_err(e: sqlx::Error) -> DbErr {
    shared_err(&Arc::new(e))
}

/// One driver error told to several callers.
fn shared_err(e: &Arc<sqlx::Error>) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(e.clone()))
}

/// Run one SQL text (several statements) on a connection; the first error
/// stops it.
async fn run_text(
    conn: &mut sqlx::SqliteConnection,
    sql: String,
    values: sea_orm::Values,
) -> Result<(), sqlx::Error> {
    use sqlx::Executor;
    conn.execute(sqlx::query_with(
        sqlx::AssertSqlSafe(sql),
        SqlxValues(values),
    ))
    .await
    .map(|_| ())
}

/// Roll back whatever is open; if even that fails, the connection is
/// closed instead of going back to the pool with a transaction open.
async fn roll_back(conn: &mut sqlx::pool::PoolConnection<sqlx::Sqlite>) {
    use sqlx::Executor;
    if (&mut **conn).execute("ROLLBACK").await.is_err() {
        conn.close_on_drop();
    }
}

/// SQLite: one caller's statements in one write transaction, handed to the
/// connection's thread as one batch (`BEGIN IMMEDIATE; ...; COMMIT`).
async fn sqlite_batch(pool: &sqlx::SqlitePool, statements: &[Statement]) -> Result<(), DbErr> {
    let mut conn = pool.acquire().await.map_err(sqlx_err)?;
    let (body, values) = join_as_batch(statements);
    match run_text(
        &mut conn,
        format!("BEGIN IMMEDIATE;\n{body}COMMIT;"),
        values,
    )
    .await
    {
        Ok(()) => Ok(()),
        Err(e) => {
            roll_back(&mut conn).await;
            Err(sqlx_err(e))
        }
    }
}

/// The SQLite writer: callers' [`Db::write_together`] calls that arrive
/// while a transaction is being written share the next one (group commit):
/// one `BEGIN`, each caller's statements as one batch inside its own
/// savepoint (so one caller's failure, say a unique key, undoes only its
/// own statements), one `COMMIT`. Each caller hears back only after the
/// commit. Under load this turns many small transactions, each a hand-off
/// to the connection's thread per statement and a WAL write of every page
/// it touched, into few.
async fn group_commit(pool: sqlx::SqlitePool, mut rx: tokio::sync::mpsc::Receiver<WriteRequest>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(r) => group.push(r),
                Err(_) => break,
            }
        }
        if group.len() == 1 {
            let r = group.pop().expect("one request");
            let _ = r.reply.send(sqlite_batch(&pool, &r.statements).await);
            continue;
        }
        let results = write_group(&pool, &group).await;
        for (r, result) in group.into_iter().zip(results) {
            let _ = r.reply.send(result);
        }
    }
}

/// Several callers' statements in one transaction, each caller's inside its
/// own savepoint; one result per caller, all errors if nothing committed.
async fn write_group(pool: &sqlx::SqlitePool, group: &[WriteRequest]) -> Vec<Result<(), DbErr>> {
    use sqlx::Executor;
    let fail_all = |e: Arc<sqlx::Error>| group.iter().map(|_| Err(shared_err(&e))).collect();
    let mut conn = match pool.acquire().await {
        Ok(c) => c,
        Err(e) => return fail_all(Arc::new(e)),
    };
    if (&mut *conn).execute("BEGIN IMMEDIATE").await.is_err() {
        // Could not start: each caller on its own.
        drop(conn);
        let mut results = Vec::with_capacity(group.len());
        for r in group {
            results.push(sqlite_batch(pool, &r.statements).await);
        }
        return results;
    }
    let mut results = Vec::with_capacity(group.len());
    for r in group {
        let (body, values) = join_as_batch(&r.statements);
        match run_text(&mut conn, format!("SAVEPOINT w;\n{body}RELEASE w;"), values).await {
            Ok(()) => results.push(Ok(())),
            Err(e) => {
                results.push(Err(sqlx_err(e)));
                // Undo this caller's statements only; if that fails the
                // whole transaction is lost.
                if let Err(e) = (&mut *conn).execute("ROLLBACK TO w; RELEASE w").await {
                    roll_back(&mut conn).await;
                    return fail_all(Arc::new(e));
                }
            }
        }
    }
    if let Err(e) = (&mut *conn).execute("COMMIT").await {
        // Nothing of this group was written: every caller hears so.
        roll_back(&mut conn).await;
        return fail_all(Arc::new(e));
    }
    results
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

/// SQLite statements (anonymous `?` placeholders) as one text, with their
/// values in order.
fn join_as_batch(statements: &[Statement]) -> (String, sea_orm::Values) {
    let mut sql = String::new();
    let mut values = Vec::new();
    for s in statements {
        debug_assert!(
            !s.sql.contains("?1"),
            "numbered placeholders cannot be batched: {}",
            s.sql
        );
        sql.push_str(s.sql.trim_end().trim_end_matches(';'));
        sql.push_str(";\n");
        if let Some(v) = &s.values {
            values.extend(v.0.iter().cloned());
        }
    }
    (sql, sea_orm::Values(values))
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

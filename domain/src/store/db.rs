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
    AccessMode, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr,
    SqlxPostgresConnector, SqlxSqliteConnector, Statement, TransactionOptions, TransactionTrait,
};
use sea_query_sqlx::SqlxValues;
use secrecy::ExposeSecret;
use sqlx::postgres::PgPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use crate::settings::Settings;
use crate::store::message_writes::{RowWrite, PG_ROWS_SQL};

/// The database, whichever backend it is.
#[derive(Debug, Clone)]
pub struct Db {
    pub conn: DatabaseConnection,
    /// The group-commit writer behind [`Db::write_together`] (SQLite:
    /// [`group_commit`], PostgreSQL: [`pg_group_commit`]).
    writer: Option<tokio::sync::mpsc::Sender<WriteRequest>>,
}

/// One caller's statements (or, PostgreSQL only, rows) for the
/// group-commit writer.
struct WriteRequest {
    statements: Vec<Statement>,
    rows: Option<RowWrite>,
    reply: Reply,
}

/// The ids of a write's claiming evaluations that were written
/// ([`crate::store::message_writes::EvaluationUpdate::claim_due_by`]); empty for
/// any other write.
type Claimed = Vec<String>;

type Reply = tokio::sync::oneshot::Sender<Result<Claimed, DbErr>>;

impl WriteRequest {
    fn shares_a_message_with(&self, group: &[WriteRequest]) -> bool {
        let Some(rows) = &self.rows else {
            return false;
        };
        group.iter().filter_map(|r| r.rows.as_ref()).any(|other| {
            rows.message_ids()
                .any(|id| other.message_ids().any(|o| o == id))
        })
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

/// At most this many callers' writes share one transaction.
const MAX_GROUP: usize = 64;

/// PostgreSQL: group transactions in flight at once. One: callers that
/// arrive during a group's round trip share the next group, so under load
/// each statement carries more rows and the server does less per row
/// (measured with `heimdall-bench outbound` on two cores, 20,000 messages,
/// groups / claim and read batches in flight: 4/4 about 500 msg/s and
/// 3.8 ms of CPU per message, 2/1 about 650 and 2.7 ms, 1/1 about 710 and
/// 2.5 ms with the lowest p99).
const PG_GROUPS_IN_FLIGHT: usize = 1;

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

    /// Run write statements atomically, in one round trip, through the
    /// group-commit writer: callers' writes that arrive while others are
    /// being written share the next transaction (one commit, one round
    /// trip for all of them), and a caller hears back only after the
    /// commit. SQLite: [`group_commit`]; PostgreSQL: [`pg_group_commit`].
    /// The statements must not depend on each other's effects (a lone
    /// caller's PostgreSQL statements run as one statement, seeing one
    /// snapshot) and must be built for this backend (sea-query's anonymous
    /// `?` placeholders on SQLite, `$n` on PostgreSQL).
    pub async fn write_together(&self, statements: Vec<Statement>) -> Result<(), DbErr> {
        if statements.is_empty() {
            return Ok(());
        }
        let Some(writer) = &self.writer else {
            return self.write_alone(statements).await;
        };
        self.send_to_writer(writer, statements, None)
            .await
            .map(drop)
    }

    /// Write the send path's rows atomically (see [`crate::store::message_writes`]):
    /// on PostgreSQL merged with other callers' rows into one statement, on
    /// SQLite as statements through [`Db::write_together`].
    pub async fn write_rows(&self, rows: RowWrite) -> Result<(), DbErr> {
        self.rows(rows).await.map(drop)
    }

    /// [`Db::write_rows`] for a worker's evaluation that is also its claim
    /// (one evaluation with
    /// [`claim_due_by`](crate::store::message_writes::EvaluationUpdate::claim_due_by)):
    /// `true` when the message was still waiting and the write was made,
    /// `false` when it was not (another worker has it, or it is finished
    /// or not yet due) and nothing of the message was written. PostgreSQL
    /// only: on SQLite the worker claims first, then evaluates.
    pub async fn write_claiming(&self, rows: RowWrite) -> Result<bool, DbErr> {
        if rows.claiming_ids().count() != 1 {
            return Err(DbErr::Custom(
                "a claiming write holds one claiming evaluation".into(),
            ));
        }
        Ok(!self.rows(rows).await?.is_empty())
    }

    async fn rows(&self, rows: RowWrite) -> Result<Claimed, DbErr> {
        if self.is_sqlite() && rows.claiming_ids().next().is_some() {
            // Plain statements cannot make the audit rows depend on the
            // claim.
            return Err(DbErr::Custom(
                "a claiming evaluation is written on PostgreSQL only".into(),
            ));
        }
        match &self.writer {
            Some(writer) if !self.is_sqlite() => {
                self.send_to_writer(writer, Vec::new(), Some(rows)).await
            }
            _ => self.write_now(Vec::new(), Some(rows)).await,
        }
    }

    /// One caller's write without the writer: rows on PostgreSQL as the
    /// merged statement (a claiming evaluation keeps its condition),
    /// anything else as plain statements in one transaction.
    async fn write_now(
        &self,
        mut statements: Vec<Statement>,
        rows: Option<RowWrite>,
    ) -> Result<Claimed, DbErr> {
        match (rows, self.postgres_pool()) {
            (Some(rows), Some(pool)) => pg_rows(pool, &[&rows]).await.map_err(sqlx_err),
            (rows, _) => {
                statements.extend(rows.iter().flat_map(|r| r.statements(self.backend())));
                self.write_alone(statements).await.map(|()| Claimed::new())
            }
        }
    }

    async fn send_to_writer(
        &self,
        writer: &tokio::sync::mpsc::Sender<WriteRequest>,
        statements: Vec<Statement>,
        rows: Option<RowWrite>,
    ) -> Result<Claimed, DbErr> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let request = WriteRequest {
            statements,
            rows,
            reply,
        };
        match writer.send(request).await {
            Ok(()) => answer
                .await
                .unwrap_or_else(|_| Err(DbErr::Custom("the database writer stopped".into()))),
            // The writer's runtime is gone (a test's): write directly.
            Err(e) => self.write_now(e.0.statements, e.0.rows).await,
        }
    }

    /// One caller's statements in one transaction, without the writer.
    async fn write_alone(&self, statements: Vec<Statement>) -> Result<(), DbErr> {
        match self.backend() {
            DbBackend::Sqlite => {
                sqlite_batch(self.conn.get_sqlite_connection_pool(), &statements).await
            }
            _ => pg_write_alone(self.conn.get_postgres_connection_pool(), statements).await,
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

pub(crate) fn sqlx_err(e: sqlx::Error) -> DbErr {
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
            let _ = r.reply.send(
                sqlite_batch(&pool, &r.statements)
                    .await
                    .map(|()| Claimed::new()),
            );
            continue;
        }
        let results = write_group(&pool, &group).await;
        for (r, result) in group.into_iter().zip(results) {
            let _ = r.reply.send(result.map(|()| Claimed::new()));
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

/// PostgreSQL: one caller's statements as ONE statement (the first ones as
/// data-modifying `WITH` clauses before the last; one statement is simply
/// run): prepared, one round trip, one commit.
async fn pg_write_alone(pool: &sqlx::PgPool, statements: Vec<Statement>) -> Result<(), DbErr> {
    if statements.is_empty() {
        return Ok(());
    }
    let statement = if statements.len() == 1 {
        statements.into_iter().next().expect("one statement")
    } else {
        join_as_ctes(statements)
    };
    let values = statement.values.unwrap_or(sea_orm::Values(Vec::new()));
    sqlx::query_with(
        sqlx::AssertSqlSafe(statement.sql),
        sea_query_sqlx::SqlxValues(values),
    )
    .execute(pool)
    .await
    .map(|_| ())
    .map_err(sqlx_err)
}

/// The PostgreSQL writer. Callers that arrive while
/// [`PG_GROUPS_IN_FLIGHT`] groups are being written share the next group,
/// written as one transaction in one round trip:
/// - the send path's rows ([`Db::write_rows`]) of every caller in the
///   group as ONE prepared statement ([`PG_ROWS_SQL`]);
/// - other callers' statements: a caller alone as one prepared statement
///   ([`pg_write_alone`]); several, with their values inlined by
///   sea-query's PostgreSQL quoting, as one simple-protocol text, which
///   PostgreSQL runs as one implicit transaction, statement after
///   statement. (Several callers' statements as one `WITH` statement would
///   not do: two updates of one row in one statement silently keep only
///   one.)
///
/// If a group fails on a database error, nothing of it was written, and
/// each of its callers is written alone, so one caller's failure (a unique
/// key, say) fails only that caller.
async fn pg_group_commit(pool: sqlx::PgPool, rx: tokio::sync::mpsc::Receiver<WriteRequest>) {
    // A request that touches a message already in the group waits for the
    // next one (one statement must not write one row twice).
    in_batches(
        rx,
        PG_GROUPS_IN_FLIGHT,
        MAX_GROUP,
        |group, r| !r.shares_a_message_with(group),
        move |group| {
            let pool = pool.clone();
            async move { pg_write_group(&pool, group).await }
        },
    )
    .await;
}

/// The loop behind the merged writers and reads: take the first request
/// and whatever else is already waiting (up to `max`, while `fits` says the
/// next one may join; the first that may not starts the next batch), run
/// the batch on its own task, at most `in_flight` batches at once. Under
/// light load each request runs alone at once; under load the requests
/// that queue while batches are running share the next one. Ends when
/// every sender is gone.
pub(crate) async fn in_batches<R, F, Fut>(
    mut rx: tokio::sync::mpsc::Receiver<R>,
    in_flight: usize,
    max: usize,
    fits: impl Fn(&[R], &R) -> bool,
    run: F,
) where
    R: Send + 'static,
    F: Fn(Vec<R>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut held: Option<R> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let first = match held.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < max {
            let Ok(r) = rx.try_recv() else {
                break;
            };
            if !fits(&batch, &r) {
                held = Some(r);
                break;
            }
            batch.push(r);
        }
        let work = run(batch);
        tokio::spawn(async move {
            work.await;
            drop(slot);
        });
    }
}

fn no_answer() -> DbErr {
    DbErr::Custom("the batch gave no answer".into())
}

/// What a [`Batcher`] request waits for.
type Answer<A> = tokio::sync::oneshot::Sender<Result<A, DbErr>>;

/// Requests of one kind (workers' reads, acceptance reads) merged into shared statements by
/// [`in_batches`]: each caller sends its request and waits for its own
/// answer. The batch function returns one answer per request, in order,
/// or an error that every request of the batch hears.
/// Started on first use, on the caller's runtime.
pub(crate) struct Batcher<Q, A> {
    tx: std::sync::OnceLock<tokio::sync::mpsc::Sender<(Q, Answer<A>)>>,
}

impl<Q, A> Default for Batcher<Q, A> {
    fn default() -> Self {
        Batcher {
            tx: std::sync::OnceLock::new(),
        }
    }
}

impl<Q, A> std::fmt::Debug for Batcher<Q, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("started", &self.tx.get().is_some())
            .finish()
    }
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Send `request` to the next batch (at most `max` requests, at most
    /// `in_flight` batches running) and wait for its answer. `start` makes
    /// the batch function; it is called once, when the batcher starts, or
    /// when the batcher's runtime is gone (a test's) to run this request
    /// alone.
    pub(crate) async fn call<F, Fut>(
        &self,
        request: Q,
        in_flight: usize,
        max: usize,
        start: impl FnOnce() -> F,
    ) -> Result<A, DbErr>
    where
        F: Fn(Vec<Q>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Vec<A>, DbErr>> + Send + 'static,
    {
        let mut start = Some(start);
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel::<(Q, Answer<A>)>(1024);
            let run = (start.take().expect("started once"))();
            tokio::spawn(in_batches(
                rx,
                in_flight,
                max,
                |_, _| true,
                move |batch| {
                    let (requests, answers): (Vec<Q>, Vec<Answer<A>>) = batch.into_iter().unzip();
                    let work = run(requests);
                    async move {
                        let mut results = work.await.map(Vec::into_iter);
                        for answer in answers {
                            let _ = answer.send(match &mut results {
                                Ok(results) => results.next().ok_or_else(no_answer),
                                Err(e) => Err(e.clone()),
                            });
                        }
                    }
                },
            ));
            tx
        });
        let (answer, answered) = tokio::sync::oneshot::channel();
        match tx.send((request, answer)).await {
            Ok(()) => answered
                .await
                .unwrap_or_else(|_| Err(DbErr::Custom("the batcher stopped".into()))),
            Err(e) => {
                let run = match start.take() {
                    Some(start) => start(),
                    None => {
                        return Err(DbErr::Custom("the batcher stopped".into()));
                    }
                };
                run(vec![e.0 .0])
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(no_answer)
            }
        }
    }
}

/// Write one group and answer each of its callers.
async fn pg_write_group(pool: &sqlx::PgPool, group: Vec<WriteRequest>) {
    let (rows, statements): (Vec<_>, Vec<_>) = group.into_iter().partition(|r| r.rows.is_some());
    futures::join!(
        pg_write_rows(pool, rows),
        pg_write_statements(pool, statements)
    );
}

/// Every caller's rows in one statement.
async fn pg_write_rows(pool: &sqlx::PgPool, group: Vec<WriteRequest>) {
    if group.is_empty() {
        return;
    }
    let writes: Vec<&RowWrite> = group.iter().filter_map(|r| r.rows.as_ref()).collect();
    let result = pg_rows(pool, &writes).await.map(|claimed| {
        let claimed: std::collections::HashSet<String> = claimed.into_iter().collect();
        // Each caller's share of the claims.
        writes
            .iter()
            .map(|w| {
                w.claiming_ids()
                    .filter(|id| claimed.contains(*id))
                    .map(str::to_string)
                    .collect()
            })
            .collect()
    });
    answer_group(pool, group, result).await;
}

/// Rows of one or more callers as ONE prepared statement ([`PG_ROWS_SQL`]):
/// the ids of the claiming evaluations that were written.
async fn pg_rows(pool: &sqlx::PgPool, writes: &[&RowWrite]) -> Result<Claimed, sqlx::Error> {
    let ([messages, tool_calls, evaluations, sends], [evaluated, sent, claiming]) =
        RowWrite::merged_json(writes).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar(PG_ROWS_SQL)
        .bind(messages)
        .bind(tool_calls)
        .bind(evaluations)
        .bind(sends)
        .bind(evaluated)
        .bind(sent)
        .bind(claiming)
        .fetch_all(pool)
        .await
}

/// Other callers' statements: alone as one statement, several as one text.
async fn pg_write_statements(pool: &sqlx::PgPool, mut group: Vec<WriteRequest>) {
    if group.len() <= 1 {
        if let Some(r) = group.pop() {
            pg_answer_alone(pool, r).await;
        }
        return;
    }
    let mut text = String::new();
    for s in group.iter().flat_map(|r| &r.statements) {
        text.push_str(s.to_string().trim_end().trim_end_matches(';'));
        text.push_str(";\n");
    }
    let result = sqlx::raw_sql(sqlx::AssertSqlSafe(text))
        .execute(pool)
        .await
        .map(|_| vec![Claimed::new(); group.len()]);
    answer_group(pool, group, result).await;
}

/// Tell a group's callers how their merged write went. When the server
/// refused it (nothing was written: the transaction rolled back), or the
/// rows could not even be encoded, each caller is written alone. When the
/// connection failed, whether the group committed is unknown, so nothing is
/// written again and each caller hears the error.
async fn answer_group(
    pool: &sqlx::PgPool,
    group: Vec<WriteRequest>,
    result: Result<Vec<Claimed>, sqlx::Error>,
) {
    match result {
        Ok(answers) => {
            for (r, claimed) in group.into_iter().zip(answers) {
                let _ = r.reply.send(Ok(claimed));
            }
        }
        Err(sqlx::Error::Database(_)) | Err(sqlx::Error::Encode(_)) => {
            futures::future::join_all(group.into_iter().map(|r| pg_answer_alone(pool, r))).await;
        }
        Err(e) => {
            let e = Arc::new(e);
            for r in group {
                let _ = r.reply.send(Err(shared_err(&e)));
            }
        }
    }
}

/// Write one caller's rows or statements alone, and answer it.
async fn pg_answer_alone(pool: &sqlx::PgPool, r: WriteRequest) {
    let WriteRequest {
        statements,
        rows,
        reply,
    } = r;
    let written = match rows {
        Some(rows) => pg_rows(pool, &[&rows]).await.map_err(sqlx_err),
        None => pg_write_alone(pool, statements)
            .await
            .map(|()| Claimed::new()),
    };
    let _ = reply.send(written);
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

/// `$n` on PostgreSQL, `?n` on SQLite.
pub fn placeholder(backend: sea_orm::DbBackend, n: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
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

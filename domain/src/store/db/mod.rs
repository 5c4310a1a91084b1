//! Connecting to the database (SQLite by default, PostgreSQL when the URL
//! says so) and applying the one set of migrations; and [`Db`], the handle
//! every write goes through: a caller's statements (or the send path's rows)
//! are written atomically, in one round trip, by a group-commit writer that
//! lets callers arriving together share one transaction.
//!
//! sea-orm and the apalis queue share one sqlx pool, so the embedded
//! default is one file and one set of connections.
//!
//! It holds no business rule and never decides what is written: callers
//! build the statements (for this backend) and the rows.
//!
//! One file per part: `connect` (the pools and their settings per backend,
//! the migrations, SQLite's checkpointer), `writers` (the SQLite and
//! PostgreSQL group-commit writers), `batcher` (the loop that merges waiting
//! requests into batches, for the writers and for the send path's reads) and
//! `placeholders` (statements joined into one text, `$n` renumbered).

use std::sync::Arc;

use sea_orm::{
    AccessMode, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, RuntimeErr, Statement,
    TransactionOptions, TransactionTrait,
};

use crate::store::message_writes::RowWrite;

mod batcher;
mod connect;
mod placeholders;
mod writers;

pub(crate) use batcher::Batcher;
pub use connect::DbError;
pub use placeholders::placeholder;

use writers::{pg_rows, pg_write_alone, sqlite_batch};

/// The database, whichever backend it is.
#[derive(Debug, Clone)]
pub struct Db {
    pub conn: DatabaseConnection,
    /// The group-commit writer behind [`Db::write_together`] (SQLite:
    /// [`group_commit`], PostgreSQL: [`pg_group_commit`]).
    ///
    /// [`group_commit`]: writers::group_commit
    /// [`pg_group_commit`]: writers::pg_group_commit
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

/// At most this many callers' writes share one transaction.
const MAX_GROUP: usize = 64;

impl Db {
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
    ///
    /// [`group_commit`]: writers::group_commit
    /// [`pg_group_commit`]: writers::pg_group_commit
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

pub(crate) fn sqlx_err(e: sqlx::Error) -> DbErr {
    shared_err(&Arc::new(e))
}

/// One driver error told to several callers.
fn shared_err(e: &Arc<sqlx::Error>) -> DbErr {
    DbErr::Exec(RuntimeErr::SqlxError(e.clone()))
}

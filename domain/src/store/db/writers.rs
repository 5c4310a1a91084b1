//! The group-commit writers behind [`Db::write_together`] and
//! [`Db::write_rows`]: SQLite's (one transaction, each caller in its own
//! savepoint) and PostgreSQL's (the send path's rows of many callers as one
//! statement, other statements as one text), and one caller written alone.
//!
//! [`Db::write_together`]: super::Db::write_together
//! [`Db::write_rows`]: super::Db::write_rows

use std::sync::Arc;

use sea_orm::{DbErr, Statement};
use sea_query_sqlx::SqlxValues;

use crate::store::message_writes::{RowWrite, PG_ROWS_SQL};

use super::batcher::in_batches;
use super::placeholders::{join_as_batch, join_as_ctes};
use super::{shared_err, sqlx_err, Claimed, WriteRequest, MAX_GROUP};

/// PostgreSQL: group transactions in flight at once. One: callers that
/// arrive during a group's round trip share the next group, so under load
/// each statement carries more rows and the server does less per row
/// (measured with `heimdall-bench outbound` on two cores, 20,000 messages,
/// groups / claim and read batches in flight: 4/4 about 500 msg/s and
/// 3.8 ms of CPU per message, 2/1 about 650 and 2.7 ms, 1/1 about 710 and
/// 2.5 ms with the lowest p99).
pub(super) const PG_GROUPS_IN_FLIGHT: usize = 1;

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
pub(super) async fn sqlite_batch(
    pool: &sqlx::SqlitePool,
    statements: &[Statement],
) -> Result<(), DbErr> {
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
///
/// [`Db::write_together`]: super::Db::write_together
pub(super) async fn group_commit(
    pool: sqlx::SqlitePool,
    mut rx: tokio::sync::mpsc::Receiver<WriteRequest>,
) {
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
pub(super) async fn pg_write_alone(
    pool: &sqlx::PgPool,
    statements: Vec<Statement>,
) -> Result<(), DbErr> {
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
///
/// [`Db::write_rows`]: super::Db::write_rows
pub(super) async fn pg_group_commit(
    pool: sqlx::PgPool,
    rx: tokio::sync::mpsc::Receiver<WriteRequest>,
) {
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
pub(super) async fn pg_rows(
    pool: &sqlx::PgPool,
    writes: &[&RowWrite],
) -> Result<Claimed, sqlx::Error> {
    let ([messages, tool_calls, evaluations, sends, staff_actions], [evaluated, sent, claiming]) =
        RowWrite::merged_json(writes).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    sqlx::query_scalar(PG_ROWS_SQL)
        .bind(messages)
        .bind(tool_calls)
        .bind(evaluations)
        .bind(sends)
        .bind(evaluated)
        .bind(sent)
        .bind(claiming)
        .bind(staff_actions)
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

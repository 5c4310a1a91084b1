//! The sealer: chain the events of rows not yet chained, one transaction
//! per stream and batch, holding the stream's lock.

use std::collections::{BTreeMap, HashSet};

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbErr, EntityTrait, Statement};
use serde::Serialize;

use super::content::{self, content_hash, content_pairs, link_hash, Detail, Row};
use super::{EventSpec, Stream, Table, BATCH};
use crate::entities::audit_chain;
use crate::Core;

/// One run of the sealer caps its work per stream (then the next run goes
/// on), so a large backlog (the first run after an upgrade) never holds a
/// housekeeping tick for long.
const MAX_BATCHES: usize = 25;

/// What [`seal`] chained.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SealReport {
    /// Entries appended, per stream.
    pub appended: BTreeMap<&'static str, u64>,
}

impl SealReport {
    pub fn total(&self) -> u64 {
        self.appended.values().sum()
    }
}

impl std::fmt::Display for SealReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.total() == 0 {
            return f.write_str("nothing to chain");
        }
        let parts: Vec<String> = self
            .appended
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(s, n)| format!("{n} {s}"))
            .collect();
        write!(f, "chained {}", parts.join(", "))
    }
}

/// Chain every event not chained yet (up to [`MAX_BATCHES`] batches of
/// [`BATCH`] rows per stream). Safe to run in several processes at once.
pub async fn seal(core: &Core) -> Result<SealReport, DbErr> {
    let mut report = SealReport::default();
    for stream in Stream::ALL {
        let mut appended = 0;
        for _ in 0..MAX_BATCHES {
            let (rows, entries) = seal_batch(core, stream).await?;
            appended += entries;
            if rows < BATCH {
                break;
            }
        }
        report.appended.insert(stream.as_str(), appended);
    }
    Ok(report)
}

/// Take the stream's lock for the rest of `txn` (PostgreSQL; on SQLite the
/// write transaction already excludes every other writer).
pub(super) async fn lock(txn: &DatabaseTransaction, stream: Stream) -> Result<(), DbErr> {
    if txn.get_database_backend() == sea_orm::DbBackend::Postgres {
        txn.execute_raw(Statement::from_sql_and_values(
            sea_orm::DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock($1)",
            [stream.lock_key().into()],
        ))
        .await?;
    }
    Ok(())
}

/// One event to chain.
struct Pending<'a> {
    row: &'a Row,
    spec: &'a EventSpec,
    time: String,
}

/// Chain up to [`BATCH`] rows of one stream: (rows taken, entries appended).
async fn seal_batch(core: &Core, stream: Stream) -> Result<(usize, u64), DbErr> {
    let table = stream.table();
    // A look without a transaction first: on SQLite the write lock is
    // taken only when there is something to chain.
    let mut waiting = false;
    for spec in table.events {
        if !content::unsealed(&core.db.conn, table, spec, 1)
            .await?
            .is_empty()
        {
            waiting = true;
            break;
        }
    }
    if !waiting {
        return Ok((0, 0));
    }
    let txn = core.db.begin_write().await?;
    lock(&txn, stream).await?;
    let (mut seq, mut prev) = content::head(&txn, stream).await?;
    let rows = candidates(&txn, table).await?;
    if rows.is_empty() {
        txn.commit().await?;
        return Ok((0, 0));
    }
    let ids: Vec<String> = rows.iter().map(|r| r.id.clone()).collect();
    // Entries already there (a row whose `chain_sealed` was reset by hand):
    // never chained twice, which the unique key would refuse anyway.
    let existing: HashSet<(String, String)> = content::entries_of(&txn, table, &ids)
        .await?
        .into_values()
        .flatten()
        .map(|e| (e.row_id, e.event))
        .collect();
    let mut pending = Vec::new();
    let mut ranks: BTreeMap<i32, Vec<String>> = BTreeMap::new();
    for row in &rows {
        let mut rank = row.sealed;
        for spec in row.happened(table) {
            rank = Ord::max(rank, spec.rank);
            if spec.rank <= row.sealed || existing.contains(&(row.id.clone(), spec.name.into())) {
                continue;
            }
            pending.push(Pending {
                row,
                spec,
                time: row.get(spec.time).unwrap_or_default().to_string(),
            });
        }
        ranks.entry(rank).or_default().push(row.id.clone());
    }
    // Deterministic: by the event's time, then the row, then the event.
    pending
        .sort_by(|a, b| (&a.time, &a.row.id, a.spec.rank).cmp(&(&b.time, &b.row.id, b.spec.rank)));
    let now = core.now();
    let mut entries = Vec::with_capacity(pending.len());
    for p in &pending {
        let detail = Detail {
            recorded: content::recorded_now(table, p.row),
            ..Default::default()
        };
        let pairs = content_pairs(table, p.spec.name, p.row, &detail, &BTreeMap::new())
            .map_err(DbErr::Custom)?;
        let content = content_hash(&pairs);
        seq += 1;
        let hash = link_hash(
            &prev,
            stream.as_str(),
            seq,
            table.name,
            &p.row.id,
            p.spec.name,
            &content,
        );
        entries.push(audit_chain::ActiveModel {
            stream: sea_orm::Set(stream.as_str().to_string()),
            seq: sea_orm::Set(seq),
            row_table: sea_orm::Set(table.name.to_string()),
            row_id: sea_orm::Set(p.row.id.clone()),
            event: sea_orm::Set(p.spec.name.to_string()),
            content_hash: sea_orm::Set(content),
            prev_hash: sea_orm::Set(prev.clone()),
            hash: sea_orm::Set(hash.clone()),
            detail: sea_orm::Set(detail.to_text()),
            sealed_at: sea_orm::Set(now),
        });
        prev = hash;
    }
    let appended = entries.len() as u64;
    let mut entries = entries.into_iter().peekable();
    while entries.peek().is_some() {
        let chunk: Vec<_> = entries.by_ref().take(400).collect();
        audit_chain::Entity::insert_many(chunk)
            .exec_without_returning(&txn)
            .await?;
    }
    for (rank, ids) in ranks {
        for chunk in ids.chunks(500) {
            let mut q = Query::update();
            q.table(Alias::new(table.name))
                .value(Alias::new("chain_sealed"), rank)
                .and_where(Expr::col(Alias::new("id")).is_in(chunk.iter().cloned()));
            txn.execute(&q).await?;
        }
    }
    txn.commit().await?;
    Ok((rows.len(), appended))
}

/// Up to [`BATCH`] rows with an event still to be chained, each once.
async fn candidates(txn: &DatabaseTransaction, table: &Table) -> Result<Vec<Row>, DbErr> {
    let mut rows: Vec<Row> = Vec::new();
    let mut seen: HashSet<String> = HashSet::new();
    for spec in table.events {
        let room = BATCH - rows.len();
        if room == 0 {
            break;
        }
        for row in content::unsealed(txn, table, spec, room).await? {
            if seen.insert(row.id.clone()) {
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

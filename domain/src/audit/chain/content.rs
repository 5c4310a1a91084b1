//! What an entry's hashes cover: a chained row as canonical text, the
//! per-field digests, an event's content hash and the link hash; and the
//! reads the sealer, the verifier and the redaction share.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Alias, Expr, ExprTrait, LockBehavior, LockType, Order, Query};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QueryResult, QuerySelect, Statement,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{EventSpec, Kind, Stream, Table, GENESIS};
use crate::entities::audit_chain;

/// A field's digest: SHA-256 of its canonical text, NULL distinct from any
/// text (the empty one included).
pub(super) type FieldDigest = [u8; 32];

pub(super) fn digest(value: Option<&str>) -> FieldDigest {
    let mut h = Sha256::new();
    match value {
        None => h.update([0u8]),
        Some(v) => {
            h.update([1u8]);
            h.update(v.as_bytes());
        }
    }
    h.finalize().into()
}

/// The content hash (hex) of an event's (field name, digest) pairs.
pub(super) fn content_hash(pairs: &[(String, FieldDigest)]) -> String {
    let mut h = Sha256::new();
    h.update(b"heimdall audit content v1\0");
    for (name, d) in pairs {
        h.update((name.len() as u32).to_be_bytes());
        h.update(name.as_bytes());
        h.update(d);
    }
    hex::encode(h.finalize())
}

/// The link hash (hex) of an entry: its predecessor's hash and everything
/// that places it, each part length-prefixed.
pub(super) fn link_hash(
    prev_hash: &str,
    stream: &str,
    seq: i64,
    row_table: &str,
    row_id: &str,
    event: &str,
    content_hash: &str,
) -> String {
    let mut h = Sha256::new();
    let seq = seq.to_string();
    for part in [
        prev_hash,
        stream,
        &seq,
        row_table,
        row_id,
        event,
        content_hash,
    ] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// A timestamp as it is hashed: UTC, microseconds (what PostgreSQL keeps),
/// so both databases give the same text.
pub(super) fn canonical_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// A chained row, each column as canonical text.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub id: String,
    values: HashMap<&'static str, Option<String>>,
    /// The rank of the row's last chained event (`chain_sealed`).
    pub sealed: i32,
}

impl Row {
    pub fn get(&self, column: &str) -> Option<&str> {
        self.values.get(column).and_then(|v| v.as_deref())
    }

    /// The row with one column replaced (as a redaction writes it).
    pub fn set(&mut self, column: &'static str, value: Option<String>) {
        self.values.insert(column, value);
    }

    fn read(table: &Table, r: &QueryResult) -> Row {
        let mut values = HashMap::new();
        for (name, kind) in table.columns {
            values.insert(*name, canonical(r, name, *kind));
        }
        Row {
            id: values
                .get("id")
                .cloned()
                .flatten()
                .unwrap_or_else(String::new),
            sealed: r
                .try_get::<Option<i32>>("", "chain_sealed")
                .ok()
                .flatten()
                .unwrap_or(0),
            values,
        }
    }

    /// The events of this row that have happened, by the row as it is now.
    pub fn happened<'a, 't: 'a>(
        &'a self,
        table: &'t Table,
    ) -> impl Iterator<Item = &'t EventSpec> + 'a {
        table
            .events
            .iter()
            .filter(|e| e.trigger.is_none_or(|t| self.get(t).is_some()))
    }
}

/// One column as canonical text. A value that cannot be read as its
/// column's type (changed by hand) becomes a text no real value has, so it
/// never matches what was chained.
fn canonical(r: &QueryResult, column: &str, kind: Kind) -> Option<String> {
    let read = match kind {
        Kind::Text => r.try_get::<Option<String>>("", column),
        Kind::Time => r
            .try_get::<Option<DateTime<Utc>>>("", column)
            .map(|v| v.map(canonical_time)),
        Kind::Bool => r
            .try_get::<Option<bool>>("", column)
            .map(|v| v.map(|b| b.to_string())),
        Kind::Int => r
            .try_get::<Option<i32>>("", column)
            .map(|v| v.map(|n| n.to_string())),
    };
    read.unwrap_or_else(|_| Some("\u{0}unreadable".into()))
}

/// What an entry records besides the row's columns (its `detail`, JSON).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Detail {
    /// The table's recorded columns as they were when the entry was chained.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recorded: BTreeMap<String, Option<String>>,
    /// A redaction: each replaced field's original digest (hex).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub redacted: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
}

impl Detail {
    pub fn parse(text: Option<&str>) -> Result<Detail, String> {
        match text {
            None => Ok(Detail::default()),
            Some(t) => serde_json::from_str(t).map_err(|_| "its detail is not readable".into()),
        }
    }

    pub fn to_text(&self) -> Option<String> {
        (*self != Detail::default()).then(|| serde_json::to_string(self).unwrap_or_default())
    }

    /// The original digests this redaction recorded.
    pub fn originals(&self) -> Result<BTreeMap<String, FieldDigest>, String> {
        self.redacted
            .iter()
            .map(|(f, hex_digest)| {
                let mut d = [0u8; 32];
                hex::decode_to_slice(hex_digest, &mut d)
                    .map_err(|_| format!("its digest of {f} is not readable"))?;
                Ok((f.clone(), d))
            })
            .collect()
    }
}

/// Whether an event name is a redaction (`redacted`, `redacted.2`, ...).
pub(super) fn is_redaction(event: &str) -> bool {
    event == "redacted" || event.starts_with("redacted.")
}

/// The (field, digest) pairs an entry's content hash covers.
///
/// `row` is the row as it is now; `originals` are the digests recorded by
/// redactions chained after this entry (a field they replaced is hashed as
/// it was). A redaction covers each field's original digest and the digest
/// of what replaced it, then the reason and the actor.
pub(super) fn content_pairs(
    table: &Table,
    event: &str,
    row: &Row,
    detail: &Detail,
    originals: &BTreeMap<String, FieldDigest>,
) -> Result<Vec<(String, FieldDigest)>, String> {
    let mut pairs = Vec::new();
    if is_redaction(event) {
        let recorded = detail.originals()?;
        for (field, _) in table.personal {
            if let Some(original) = recorded.get(*field) {
                pairs.push((format!("original:{field}"), *original));
                pairs.push((format!("now:{field}"), digest(row.get(field))));
            }
        }
        if pairs.len() != recorded.len() * 2 || pairs.is_empty() {
            return Err("it redacts a field that is not personal".into());
        }
        pairs.push(("reason".into(), digest(detail.reason.as_deref())));
        pairs.push(("actor".into(), digest(detail.actor.as_deref())));
        return Ok(pairs);
    }
    let spec = table
        .event(event)
        .ok_or_else(|| format!("{event} is not an event of {}", table.name))?;
    for field in spec.fields {
        let d = originals
            .get(*field)
            .copied()
            .unwrap_or_else(|| digest(row.get(field)));
        pairs.push((field.to_string(), d));
    }
    for (_, field) in table.appended.iter().filter(|(e, _)| *e == event) {
        let d = originals
            .get(*field)
            .copied()
            .unwrap_or_else(|| digest(row.get(field)));
        if d != digest(None) {
            pairs.push((field.to_string(), d));
        }
    }
    for field in table.recorded {
        let value = detail
            .recorded
            .get(*field)
            .ok_or_else(|| format!("it does not record {field}"))?;
        pairs.push((field.to_string(), digest(value.as_deref())));
    }
    Ok(pairs)
}

/// The content hash entry `e` should have, from its row as it is now
/// (`entries`: all of the row's entries, for its later redactions).
pub(super) fn recompute(
    table: &Table,
    e: &audit_chain::Model,
    row: &Row,
    entries: &[audit_chain::Model],
) -> Result<String, String> {
    let detail = Detail::parse(e.detail.as_deref())?;
    let originals = originals_after(entries, e.seq)?;
    Ok(content_hash(&content_pairs(
        table, &e.event, row, &detail, &originals,
    )?))
}

/// The recorded columns of `row` now, for a new entry's detail.
pub(super) fn recorded_now(table: &Table, row: &Row) -> BTreeMap<String, Option<String>> {
    table
        .recorded
        .iter()
        .map(|f| (f.to_string(), row.get(f).map(str::to_string)))
        .collect()
}

/// The original digests of the fields that redactions chained after `seq`
/// replaced (of one row's entries).
pub(super) fn originals_after(
    entries: &[audit_chain::Model],
    seq: i64,
) -> Result<BTreeMap<String, FieldDigest>, String> {
    let mut out = BTreeMap::new();
    let mut later: Vec<&audit_chain::Model> = entries
        .iter()
        .filter(|e| e.seq > seq && is_redaction(&e.event))
        .collect();
    later.sort_by_key(|e| e.seq);
    for e in later {
        for (f, d) in Detail::parse(e.detail.as_deref())?.originals()? {
            out.entry(f).or_insert(d);
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Reads

/// The stream's last entry (seq, hash); (0, genesis) when it is empty.
pub(super) async fn head(
    db: &impl ConnectionTrait,
    stream: Stream,
) -> Result<(i64, String), DbErr> {
    Ok(audit_chain::Entity::find()
        .filter(audit_chain::Column::Stream.eq(stream.as_str()))
        .order_by_desc(audit_chain::Column::Seq)
        .limit(1)
        .one(db)
        .await?
        .map(|e| (e.seq, e.hash))
        .unwrap_or_else(|| (0, GENESIS.to_string())))
}

fn select(table: &Table) -> sea_orm::sea_query::SelectStatement {
    let mut q = Query::select();
    q.from(Alias::new(table.name));
    for (name, _) in table.columns {
        q.column(Alias::new(*name));
    }
    q.column(Alias::new("chain_sealed"));
    q
}

/// Rows of `table` by id (those that exist).
pub(super) async fn rows_by_id(
    db: &impl ConnectionTrait,
    table: &Table,
    ids: &[String],
) -> Result<HashMap<String, Row>, DbErr> {
    let mut out = HashMap::new();
    for chunk in ids.chunks(500) {
        let mut q = select(table);
        q.and_where(Expr::col(Alias::new("id")).is_in(chunk.iter().cloned()));
        for r in db.query_all(&q).await? {
            let row = Row::read(table, &r);
            out.insert(row.id.clone(), row);
        }
    }
    Ok(out)
}

/// Up to `limit` rows with `event` still to be chained, oldest first; on
/// PostgreSQL locked for this transaction, skipping rows a writer holds
/// (they are chained on the next run, and the sealer never waits on a
/// writer, so it can never deadlock one).
pub(super) async fn unsealed(
    db: &impl ConnectionTrait,
    table: &Table,
    event: &EventSpec,
    limit: usize,
) -> Result<Vec<Row>, DbErr> {
    let mut q = select(table);
    // The predicate is written out (not bound) so that both databases
    // match it to its partial index.
    q.and_where(Expr::cust(event.unsealed))
        .order_by(Alias::new(event.time), Order::Asc)
        .order_by(Alias::new("id"), Order::Asc)
        .limit(limit as u64);
    if db.get_database_backend() == DbBackend::Postgres {
        q.lock_with_behavior(LockType::Update, LockBehavior::SkipLocked);
    }
    Ok(db
        .query_all(&q)
        .await?
        .iter()
        .map(|r| Row::read(table, r))
        .collect())
}

/// How many rows of `table` wait to have `event` chained.
pub(super) async fn count_unsealed(
    db: &impl ConnectionTrait,
    table: &Table,
    event: &EventSpec,
) -> Result<u64, DbErr> {
    let sql = format!(
        "SELECT COUNT(*) AS n FROM {} WHERE {}",
        table.name, event.unsealed
    );
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await?;
    Ok(row
        .and_then(|r| r.try_get::<i64>("", "n").ok())
        .map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// Every entry of the given rows of `table`, by row id.
pub(super) async fn entries_of(
    db: &impl ConnectionTrait,
    table: &Table,
    ids: &[String],
) -> Result<HashMap<String, Vec<audit_chain::Model>>, DbErr> {
    let mut out: HashMap<String, Vec<audit_chain::Model>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for e in audit_chain::Entity::find()
            .filter(audit_chain::Column::RowTable.eq(table.name))
            .filter(audit_chain::Column::RowId.is_in(chunk.iter().cloned()))
            .all(db)
            .await?
        {
            out.entry(e.row_id.clone()).or_default().push(e);
        }
    }
    Ok(out)
}

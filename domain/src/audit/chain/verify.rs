//! Walk every stream by seq, a page at a time, and recompute each entry
//! from the row as it is now: the first broken link of each stream is
//! reported.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{
    ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
};
use serde::Serialize;

use super::content::{self, is_redaction, link_hash, Detail, Row};
use super::{Stream, Table, GENESIS};
use crate::entities::{audit_anchor, audit_chain};

/// Entries read at a time: memory stays bounded however long a chain is.
const PAGE: u64 = 1_000;

/// What is wrong with an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum Broken {
    /// The entry is not at the position that follows the previous one (an
    /// entry was removed, or moved).
    SeqGap { expected: i64 },
    /// The entry's previous hash, or its own hash, does not match.
    LinkHash(String),
    /// The chained row is gone.
    RowMissing,
    /// The row's chained columns (or what the entry records) are not what
    /// was chained.
    ContentChanged(String),
    /// The chain does not contain the head it had when it was anchored.
    Anchor(String),
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::SeqGap { expected } => write!(f, "seq gap: expected seq {expected}"),
            Broken::LinkHash(why) => write!(f, "link hash wrong: {why}"),
            Broken::RowMissing => f.write_str("row missing: the chained row was deleted"),
            Broken::ContentChanged(why) => write!(f, "content changed: {why}"),
            Broken::Anchor(why) => write!(f, "anchor mismatch: {why}"),
        }
    }
}

/// The first broken link of a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BrokenLink {
    pub stream: Stream,
    pub seq: i64,
    pub row_table: String,
    pub row_id: String,
    pub event: String,
    pub problem: Broken,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} seq {}: {} row {} ({}): {}",
            self.stream, self.seq, self.row_table, self.row_id, self.event, self.problem
        )
    }
}

/// One stream, verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StreamReport {
    pub stream: Stream,
    /// The head: the last entry's seq (0 when empty) and hash.
    pub head_seq: i64,
    pub head_hash: String,
    /// Rows (or their later events) not chained yet: a warning, not a
    /// failure (the sealer runs every second).
    pub unsealed: u64,
    /// The latest anchor checked against the chain (seq, when).
    pub anchor: Option<(i64, DateTime<Utc>)>,
    pub broken: Option<BrokenLink>,
}

/// Every stream, verified.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub streams: Vec<StreamReport>,
}

impl VerifyReport {
    /// No stream has a broken link.
    pub fn intact(&self) -> bool {
        self.streams.iter().all(|s| s.broken.is_none())
    }

    pub fn broken(&self) -> impl Iterator<Item = &BrokenLink> {
        self.streams.iter().filter_map(|s| s.broken.as_ref())
    }
}

/// Verify every stream (see the module's documentation). It only reads:
/// `heimdall audit verify` runs it on a bare connection.
pub async fn verify(db: &DatabaseConnection) -> Result<VerifyReport, DbErr> {
    let mut streams = Vec::new();
    for stream in Stream::ALL {
        streams.push(verify_stream(db, stream).await?);
    }
    Ok(VerifyReport { streams })
}

async fn verify_stream(db: &DatabaseConnection, stream: Stream) -> Result<StreamReport, DbErr> {
    let table = stream.table();
    let anchor = audit_anchor::Entity::find()
        .filter(audit_anchor::Column::Stream.eq(stream.as_str()))
        .order_by_desc(audit_anchor::Column::AnchoredAt)
        .one(db)
        .await?;
    let mut prev = GENESIS.to_string();
    let mut last_seq = 0;
    let mut broken = None;
    'walk: loop {
        let page = audit_chain::Entity::find()
            .filter(audit_chain::Column::Stream.eq(stream.as_str()))
            .filter(audit_chain::Column::Seq.gt(last_seq))
            .order_by_asc(audit_chain::Column::Seq)
            .limit(PAGE)
            .all(db)
            .await?;
        let mut ids: Vec<String> = page.iter().map(|e| e.row_id.clone()).collect();
        ids.sort();
        ids.dedup();
        let rows = content::rows_by_id(db, table, &ids).await?;
        let row_entries = content::entries_of(db, table, &ids).await?;
        for e in &page {
            let problem = check(
                table,
                e,
                last_seq + 1,
                &prev,
                rows.get(&e.row_id),
                row_entries.get(&e.row_id).map_or(&[][..], |v| &v[..]),
            )
            .or_else(|| {
                anchor
                    .as_ref()
                    .filter(|a| a.seq == e.seq && a.hash != e.hash)
                    .map(|a| {
                        Broken::Anchor(format!(
                            "the anchor of {} has another hash at this seq",
                            a.anchored_at.format("%Y-%m-%d %H:%M UTC")
                        ))
                    })
            });
            if let Some(problem) = problem {
                broken = Some(BrokenLink {
                    stream,
                    seq: e.seq,
                    row_table: e.row_table.clone(),
                    row_id: e.row_id.clone(),
                    event: e.event.clone(),
                    problem,
                });
                break 'walk;
            }
            prev = e.hash.clone();
            last_seq = e.seq;
        }
        if (page.len() as u64) < PAGE {
            break;
        }
    }
    if let Some(a) = anchor
        .as_ref()
        .filter(|a| broken.is_none() && a.seq > last_seq)
    {
        broken = Some(BrokenLink {
            stream,
            seq: a.seq,
            row_table: table.name.into(),
            row_id: String::new(),
            event: String::new(),
            problem: Broken::Anchor(format!(
                "the chain ends at seq {last_seq}, but it was anchored at seq {} on {}",
                a.seq,
                a.anchored_at.format("%Y-%m-%d %H:%M UTC")
            )),
        });
    }
    let (head_seq, head_hash) = content::head(db, stream).await?;
    let mut unsealed = 0;
    for spec in table.events {
        unsealed += content::count_unsealed(db, table, spec).await?;
    }
    Ok(StreamReport {
        stream,
        head_seq,
        head_hash,
        unsealed,
        anchor: anchor.map(|a| (a.seq, a.anchored_at)),
        broken,
    })
}

/// What is wrong with entry `e`, if anything. `entries` are all of its
/// row's entries.
fn check(
    table: &Table,
    e: &audit_chain::Model,
    expected_seq: i64,
    prev: &str,
    row: Option<&Row>,
    entries: &[audit_chain::Model],
) -> Option<Broken> {
    if e.seq != expected_seq {
        return Some(Broken::SeqGap {
            expected: expected_seq,
        });
    }
    if e.prev_hash != prev {
        return Some(Broken::LinkHash(
            "its previous hash is not the previous entry's hash".into(),
        ));
    }
    let hash = link_hash(
        &e.prev_hash,
        &e.stream,
        e.seq,
        &e.row_table,
        &e.row_id,
        &e.event,
        &e.content_hash,
    );
    if hash != e.hash {
        return Some(Broken::LinkHash("its hash does not match the entry".into()));
    }
    row_problem(table, e, row, entries)
}

/// What is wrong with entry `e` against its row as it is now, if anything
/// (the entry's place in its stream aside). `entries` are all of its row's
/// entries. Shared by [`verify`] and [`super::position`].
pub(super) fn row_problem(
    table: &Table,
    e: &audit_chain::Model,
    row: Option<&Row>,
    entries: &[audit_chain::Model],
) -> Option<Broken> {
    if e.row_table != table.name {
        return Some(Broken::LinkHash(format!(
            "it names a row of {}, not of this stream's table",
            e.row_table
        )));
    }
    let Some(row) = row else {
        return Some(Broken::RowMissing);
    };
    match content::recompute(table, e, row, entries) {
        Err(why) => return Some(Broken::ContentChanged(why)),
        Ok(c) if c != e.content_hash => {
            return Some(Broken::ContentChanged(format!(
                "the row's {} columns are not what was chained",
                e.event
            )))
        }
        Ok(_) => {}
    }
    let last = entries.iter().map(|x| x.seq).max() == Some(e.seq);
    if last {
        return state_problem(table, row, entries);
    }
    None
}

/// At the row's last entry: an event the row shows without an entry,
/// though the row was chained past it, was made by hand; and, when every
/// event the row shows is chained, its recorded columns (a consent's status
/// and strength) must be as its latest entry recorded them.
fn state_problem(table: &Table, row: &Row, entries: &[audit_chain::Model]) -> Option<Broken> {
    let mut waiting = false;
    for spec in row.happened(table) {
        if entries.iter().any(|x| x.event == spec.name) {
            continue;
        }
        if spec.rank <= row.sealed {
            return Some(Broken::ContentChanged(format!(
                "{} was set after the row was chained",
                spec.trigger.unwrap_or(spec.name)
            )));
        }
        waiting = true;
    }
    if waiting || table.recorded.is_empty() {
        return None;
    }
    let latest = entries
        .iter()
        .filter(|x| !is_redaction(&x.event))
        .max_by_key(|x| x.seq)?;
    let recorded: BTreeMap<String, Option<String>> = Detail::parse(latest.detail.as_deref())
        .map(|d| d.recorded)
        .unwrap_or_default();
    for field in table.recorded {
        let now = row.get(field).map(str::to_string);
        if recorded.get(*field) != Some(&now) {
            return Some(Broken::ContentChanged(format!(
                "its {field} was changed after it was chained"
            )));
        }
    }
    None
}

//! Where one row stands in its chain, and whether it still matches: the
//! check [`super::verify`] makes for every entry, made for the entries of
//! one row (a receipt shows it beside each row it cites).

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use serde::Serialize;

use super::content::{self, link_hash};
use super::verify::row_problem;
use super::{Broken, Stream, GENESIS};
use crate::entities::audit_chain;

/// Whether a row still matches what was chained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChainState {
    /// Every entry of the row links to its predecessor and matches the row
    /// as it is now.
    Intact,
    /// An entry no longer matches its row (or its link): changed by hand
    /// after it was chained.
    ChangedSinceChained,
    /// The sealer has not chained the row yet (it runs every second).
    NotChainedYet,
}

impl ChainState {
    /// In words, as a receipt prints it.
    pub fn label(self) -> &'static str {
        match self {
            ChainState::Intact => "intact",
            ChainState::ChangedSinceChained => "changed since chained",
            ChainState::NotChainedYet => "not chained yet",
        }
    }
}

/// One entry of a row, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EntryCheck {
    pub stream: Stream,
    pub seq: i64,
    /// `created`, `confirmed`, `revoked`, `lifted`, `redacted`...
    pub event: String,
    /// The entry's link hash.
    pub hash: String,
    pub content_hash: String,
    pub sealed_at: DateTime<Utc>,
    /// Intact or changed since chained.
    pub state: ChainState,
    /// What no longer matches (none when intact).
    pub problem: Option<String>,
}

/// One row's place in its stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Position {
    pub stream: Stream,
    pub row_id: String,
    /// The row as a whole: changed when any entry is, not chained yet when
    /// it has no entry.
    pub state: ChainState,
    /// Its entries by seq.
    pub entries: Vec<EntryCheck>,
}

/// The entries of row `row_id` of `stream`'s table, each checked as
/// [`super::verify`] checks it: its link hash, its predecessor's hash and
/// its content against the row as it is now. It only reads.
pub async fn position(
    db: &impl ConnectionTrait,
    stream: Stream,
    row_id: &str,
) -> Result<Position, DbErr> {
    let table = stream.table();
    let ids = [row_id.to_string()];
    let mut entries = content::entries_of(db, table, &ids)
        .await?
        .remove(row_id)
        .unwrap_or_default();
    // Only this stream's entries (a row's table is its stream's).
    entries.retain(|e| e.stream == stream.as_str());
    entries.sort_by_key(|e| e.seq);
    let rows = content::rows_by_id(db, table, &ids).await?;
    let row = rows.get(row_id);
    let mut checks = Vec::with_capacity(entries.len());
    for e in &entries {
        let problem = match link_problem(db, e).await? {
            Some(p) => Some(p),
            None => row_problem(table, e, row, &entries),
        };
        checks.push(EntryCheck {
            stream,
            seq: e.seq,
            event: e.event.clone(),
            hash: e.hash.clone(),
            content_hash: e.content_hash.clone(),
            sealed_at: e.sealed_at,
            state: if problem.is_some() {
                ChainState::ChangedSinceChained
            } else {
                ChainState::Intact
            },
            problem: problem.map(|p| p.to_string()),
        });
    }
    let state = if checks.is_empty() {
        ChainState::NotChainedYet
    } else if checks.iter().any(|c| c.state != ChainState::Intact) {
        ChainState::ChangedSinceChained
    } else {
        ChainState::Intact
    };
    Ok(Position {
        stream,
        row_id: row_id.to_string(),
        state,
        entries: checks,
    })
}

/// The entry's own link: its hash over its parts, and its previous hash
/// the hash of the entry before it (the genesis for the first).
async fn link_problem(
    db: &impl ConnectionTrait,
    e: &audit_chain::Model,
) -> Result<Option<Broken>, DbErr> {
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
        return Ok(Some(Broken::LinkHash(
            "its hash does not match the entry".into(),
        )));
    }
    let prev = if e.seq <= 1 {
        Some(GENESIS.to_string())
    } else {
        audit_chain::Entity::find()
            .filter(audit_chain::Column::Stream.eq(e.stream.as_str()))
            .filter(audit_chain::Column::Seq.eq(e.seq - 1))
            .one(db)
            .await?
            .map(|p| p.hash)
    };
    Ok(match prev {
        None => Some(Broken::SeqGap {
            expected: e.seq - 1,
        }),
        Some(p) if p != e.prev_hash => Some(Broken::LinkHash(
            "its previous hash is not the previous entry's hash".into(),
        )),
        Some(_) => None,
    })
}

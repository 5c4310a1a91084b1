//! An audit trail that proves itself: the rows of `tool_calls` (every gate
//! evaluation and send attempt), `consents`, `suppressions` and
//! `campaign_approvals` are chained, each table in a stream of its own, in
//! `audit_chain`: one entry per event of a row, each entry's hash covering
//! the previous entry's hash and a hash of the event's content. A row
//! changed by hand after it was chained no longer matches its entry, a row
//! deleted leaves an entry without its row, an entry edited or removed
//! breaks the links after it; [`verify`] walks every stream and reports the
//! first broken link of each, and [`position`] checks the entries of one
//! row (a message's receipt cites them). A daily anchor ([`anchor`]) writes the heads
//! to the log and, when configured, to a URL elsewhere, so that even a
//! chain rewritten from some point on (every hash recomputed) is caught.
//!
//! How the rows are chained, and why:
//!
//! - **By a sealer, shortly after they are written, not inline.** The send
//!   path writes its audit rows through the group-commit writers
//!   (`store::db`), several processes at once; chaining inline would put
//!   every audit insert of every process behind one lock (the chain's
//!   head). Instead [`seal`] runs every second in every process's
//!   housekeeping: in one transaction per stream, holding the stream's lock
//!   (PostgreSQL: `pg_advisory_xact_lock` with a fixed key per stream;
//!   SQLite: the write transaction, which serializes writers), it reads the
//!   head, takes up to [`BATCH`] rows not yet chained, in order of their
//!   event's time and id, appends one entry per event and commits. Two
//!   sealers never fork a chain: the lock serializes them, and the primary
//!   key `(stream, seq)` would refuse a second entry at one position. The
//!   rows are found through `chain_sealed`, a column of each chained table
//!   (how far the row is chained: the rank of its last chained event) and
//!   partial indexes on the rows still to be chained. Cost: one entry in a
//!   small index per audit row written, and one update per row when it is
//!   chained (off the send path, in the sealer's batch; on PostgreSQL a
//!   non-HOT update, so the row's index entries are written again). An
//!   anti-join against `audit_chain` would cost nothing at write time but
//!   a scan of the whole table per run, or a time window that a row
//!   committed late (a spooled webhook replayed) falls outside of.
//! - **A row that legitimately changes later gets an event of its own**
//!   instead of being hashed again: a consent `confirmed` (double opt-in,
//!   a START) and `revoked`, a suppression `lifted`. Each event's content
//!   covers only the columns that event sets (`created`: every column fixed
//!   when the row is written), so any later change by hand to a chained
//!   column breaks verification. A consent's `status` and `strength` change
//!   with its events; each consent entry records them as they were when it
//!   was chained (in its `detail`, hashed with it), and the row's latest
//!   entry must match the row.
//! - **Content hash**: SHA-256 over the (field name, SHA-256 of the field's
//!   canonical text) pairs of the event, in a fixed order per table and
//!   event (NULL is distinct from an empty text; timestamps as
//!   `YYYY-MM-DDTHH:MM:SS.ffffffZ`, so SQLite and PostgreSQL hash alike).
//!   Hashing per-field digests is what lets [`redact`] replace a personal
//!   field (erasure) while the chain still verifies: the `redacted` entry
//!   keeps the field's original digest, with the reason and who did it.
//! - **Link hash**: SHA-256 over the previous hash, the stream, the seq,
//!   the table, the row id, the event and the content hash, each
//!   length-prefixed (plain concatenation would let `ab`+`c` pass for
//!   `a`+`bc`); the first entry's previous hash is 64 zeros.
//!
//! What the chain proves, and what not: nothing chained was changed,
//! removed or reordered since it was chained (and, against an anchor kept
//! elsewhere, since the anchor). A change made by hand *before* the sealer
//! ran (within a second or two of the write), or one that looks like a
//! legitimate later event (a revocation, a lift), is chained as if Heimdall
//! had made it. [`verify`] counts the rows not chained yet as a warning.
//!
//! This module never changes a chained column of a row, except through
//! [`redact`], which records what it replaced.

use std::fmt;

mod anchor;
mod content;
mod position;
mod redact;
mod seal;
mod verify;

pub use anchor::{anchor, AnchorError, AnchorReport, Head};
pub use position::{position, ChainState, EntryCheck, Position};
pub use redact::{redact, redact_to, RedactError};
pub use seal::{seal, SealReport};
pub use verify::{verify, Broken, BrokenLink, StreamReport, VerifyReport};

/// At most this many rows are chained per stream in one transaction.
pub const BATCH: usize = 2_000;

/// The previous hash of a stream's first entry.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One chain: the rows of one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Stream {
    ToolCalls,
    Consents,
    Suppressions,
    CampaignApprovals,
}

impl Stream {
    pub const ALL: [Stream; 4] = [
        Stream::ToolCalls,
        Stream::Consents,
        Stream::Suppressions,
        Stream::CampaignApprovals,
    ];

    /// The stream's name, which is its table's.
    pub fn as_str(self) -> &'static str {
        self.table().name
    }

    pub fn parse(name: &str) -> Option<Stream> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The key of the stream's PostgreSQL advisory lock (fixed: every
    /// process must take the same one).
    fn lock_key(self) -> i64 {
        // "hmdl" "chn" and the stream's number.
        0x686d_646c_6368_6e00
            + match self {
                Stream::ToolCalls => 1,
                Stream::Consents => 2,
                Stream::Suppressions => 3,
                Stream::CampaignApprovals => 4,
            }
    }

    fn table(self) -> &'static Table {
        match self {
            Stream::ToolCalls => &TOOL_CALLS,
            Stream::Consents => &CONSENTS,
            Stream::Suppressions => &SUPPRESSIONS,
            Stream::CampaignApprovals => &CAMPAIGN_APPROVALS,
        }
    }
}

impl fmt::Display for Stream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a column is read to be hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    Time,
    Bool,
    Int,
}

/// One event a row of a table can have.
#[derive(Debug)]
struct EventSpec {
    name: &'static str,
    /// Events of a row are chained in this order (`chain_sealed` holds the
    /// rank of the row's last chained event).
    rank: i32,
    /// The column whose value says the event happened (none: `created`).
    trigger: Option<&'static str>,
    /// The column the event's time is in (orders a batch).
    time: &'static str,
    /// The columns the event's content covers, in this order.
    fields: &'static [&'static str],
    /// The rows this event is still to be chained for; a partial index
    /// (migration `m20261206_000068_audit_chain`) covers exactly these.
    unsealed: &'static str,
}

/// A chained table: its columns, its events, and what may be redacted.
#[derive(Debug)]
struct Table {
    name: &'static str,
    columns: &'static [(&'static str, Kind)],
    events: &'static [EventSpec],
    /// Columns that change with the row's events: each entry records their
    /// values when it was chained (hashed with it), and the row's latest
    /// entry must match the row.
    recorded: &'static [&'static str],
    /// The personal columns [`redact`] may replace, each with the value it
    /// puts in their place by default (`None`: NULL).
    personal: &'static [(&'static str, Option<&'static str>)],
    /// Columns added to an event's content after rows were chained
    /// without them, as (event, column): hashed after the event's fields,
    /// and only when not NULL, so entries chained before the column
    /// existed still verify, and a value set or cleared by hand later does
    /// not.
    appended: &'static [(&'static str, &'static str)],
}

impl Table {
    #[cfg(test)]
    fn kind(&self, column: &str) -> Option<Kind> {
        self.columns
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, k)| *k)
    }

    fn event(&self, name: &str) -> Option<&EventSpec> {
        self.events.iter().find(|e| e.name == name)
    }

    fn created(&self) -> &EventSpec {
        &self.events[0]
    }
}

const CREATED_UNSEALED: &str = "chain_sealed IS NULL";

static TOOL_CALLS: Table = Table {
    name: "tool_calls",
    columns: &[
        ("id", Kind::Text),
        ("message_id", Kind::Text),
        ("kind", Kind::Text),
        ("stage", Kind::Text),
        ("channel", Kind::Text),
        ("contact_id", Kind::Text),
        ("campaign_id", Kind::Text),
        ("verdicts", Kind::Text),
        ("decision", Kind::Text),
        ("reason_code", Kind::Text),
        ("result_ok", Kind::Bool),
        ("error_code", Kind::Int),
        ("detail", Kind::Text),
        ("actor", Kind::Text),
        ("created_at", Kind::Time),
    ],
    events: &[EventSpec {
        name: "created",
        rank: 1,
        trigger: None,
        time: "created_at",
        fields: &[
            "id",
            "message_id",
            "kind",
            "stage",
            "channel",
            "contact_id",
            "campaign_id",
            "verdicts",
            "decision",
            "reason_code",
            "result_ok",
            "error_code",
            "detail",
            "actor",
            "created_at",
        ],
        unsealed: CREATED_UNSEALED,
    }],
    recorded: &[],
    // The gates' verdicts and the explanation can name the number (an
    // invalid one, a provider's error text).
    personal: &[("verdicts", Some("[]")), ("detail", None)],
    appended: &[],
};

static CONSENTS: Table = Table {
    name: "consents",
    columns: &[
        ("id", Kind::Text),
        ("contact_id", Kind::Text),
        ("channel", Kind::Text),
        ("status", Kind::Text),
        ("source", Kind::Text),
        ("captured_at", Kind::Time),
        ("ip", Kind::Text),
        ("user_agent", Kind::Text),
        ("page_url", Kind::Text),
        ("form_id", Kind::Text),
        ("qr_code", Kind::Text),
        ("inbound_message_id", Kind::Text),
        ("consent_text_version", Kind::Text),
        ("consent_text_hash", Kind::Text),
        ("consent_text", Kind::Text),
        ("recorded_by", Kind::Text),
        ("confirmed_at", Kind::Time),
        ("confirmation_token_hash", Kind::Text),
        ("revoked_at", Kind::Time),
        ("revocation_source", Kind::Text),
        ("revocation_ref", Kind::Text),
        ("created_at", Kind::Time),
        ("strength", Kind::Text),
        ("purpose", Kind::Text),
    ],
    events: &[
        EventSpec {
            name: "created",
            rank: 1,
            trigger: None,
            time: "created_at",
            fields: &[
                "id",
                "contact_id",
                "channel",
                "source",
                "captured_at",
                "ip",
                "user_agent",
                "page_url",
                "form_id",
                "qr_code",
                "inbound_message_id",
                "consent_text_version",
                "consent_text_hash",
                "consent_text",
                "recorded_by",
                // Set in the transaction that writes the consent.
                "confirmation_token_hash",
                "created_at",
            ],
            unsealed: CREATED_UNSEALED,
        },
        EventSpec {
            name: "confirmed",
            rank: 2,
            trigger: Some("confirmed_at"),
            time: "confirmed_at",
            fields: &["confirmed_at"],
            unsealed: "confirmed_at IS NOT NULL AND chain_sealed < 2",
        },
        EventSpec {
            name: "revoked",
            rank: 3,
            trigger: Some("revoked_at"),
            time: "revoked_at",
            fields: &["revoked_at", "revocation_source", "revocation_ref"],
            unsealed: "revoked_at IS NOT NULL AND chain_sealed < 3",
        },
    ],
    recorded: &["status", "strength"],
    // The evidence that identifies the person's device and visit, and the
    // text they sent (a keyword consent keeps the message); the consent
    // text's hash and version stay, and prove what was agreed to.
    personal: &[
        ("ip", None),
        ("user_agent", None),
        ("page_url", None),
        ("consent_text", None),
    ],
    // The purpose a consent covers (migration 070): consents chained
    // before purposes have none.
    appended: &[("created", "purpose")],
};

static SUPPRESSIONS: Table = Table {
    name: "suppressions",
    columns: &[
        ("id", Kind::Text),
        ("contact_id", Kind::Text),
        ("channel", Kind::Text),
        ("reason", Kind::Text),
        ("source_ref", Kind::Text),
        ("created_by", Kind::Text),
        ("created_at", Kind::Time),
        ("lifted_at", Kind::Time),
        ("lifted_by", Kind::Text),
        ("scope", Kind::Text),
        ("lift_ref", Kind::Text),
    ],
    events: &[
        EventSpec {
            name: "created",
            rank: 1,
            trigger: None,
            time: "created_at",
            fields: &[
                "id",
                "contact_id",
                "channel",
                "scope",
                "reason",
                "source_ref",
                "created_by",
                "created_at",
            ],
            unsealed: CREATED_UNSEALED,
        },
        EventSpec {
            name: "lifted",
            rank: 2,
            trigger: Some("lifted_at"),
            time: "lifted_at",
            fields: &["lifted_at", "lifted_by", "lift_ref"],
            unsealed: "lifted_at IS NOT NULL AND chain_sealed < 2",
        },
    ],
    recorded: &[],
    // What a suppression holds is what the law needs kept to honour the
    // opt-out.
    personal: &[],
    appended: &[],
};

static CAMPAIGN_APPROVALS: Table = Table {
    name: "campaign_approvals",
    columns: &[
        ("id", Kind::Text),
        ("campaign_id", Kind::Text),
        ("actor_id", Kind::Text),
        ("decision", Kind::Text),
        ("reason", Kind::Text),
        ("created_at", Kind::Time),
    ],
    events: &[EventSpec {
        name: "created",
        rank: 1,
        trigger: None,
        time: "created_at",
        fields: &[
            "id",
            "campaign_id",
            "actor_id",
            "decision",
            "reason",
            "created_at",
        ],
        unsealed: CREATED_UNSEALED,
    }],
    recorded: &[],
    personal: &[],
    appended: &[],
};

/// The personal columns of `table` that [`redact`] may replace (none for a
/// table that is not chained).
pub fn personal_fields(table: &str) -> Vec<&'static str> {
    Stream::parse(table)
        .map(|s| s.table().personal.iter().map(|(f, _)| *f).collect())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests;

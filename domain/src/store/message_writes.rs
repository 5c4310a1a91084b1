//! The send path's three writes, as rows rather than statements:
//!
//! - a message accepted: its row and its evaluation's audit row;
//! - an evaluation in the worker: the audit row and the message's new state;
//! - a provider's acceptance: the send attempt's audit row and the sid.
//!
//! Each is atomic. On SQLite a write becomes statements for the
//! group-commit writer ([`crate::store::db::Db::write_together`]). On PostgreSQL
//! the writer merges the rows of every caller waiting at that moment into
//! ONE prepared statement ([`PG_ROWS_SQL`]): the rows travel as JSON arrays
//! (`json_populate_recordset` into the tables' own row types), so one
//! statement, one plan and one commit serve any number of callers. That is
//! what lets the send path go faster than one commit per write.
//!
//! One statement sees one snapshot, so two writes to one message must not
//! share it; the writer never puts two writes of one message id into one
//! statement ([`RowWrite::message_ids`]). On the send path they could not
//! meet anyway (a message's next write starts after its previous one
//! committed), but the writer does not rely on that.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, DbBackend, EntityTrait, QueryFilter, QueryTrait};
use serde::Serialize;

use crate::compliance::message_state::MessageState;
use crate::entities::{outbound_message, staff_audit, tool_call};

/// One caller's rows, written atomically.
#[derive(Debug, Clone, Default)]
pub struct RowWrite {
    pub messages: Vec<outbound_message::Model>,
    pub tool_calls: Vec<tool_call::Model>,
    /// Staff actions that stand or fall with the messages (a staff reply
    /// and its `inbox_reply` row).
    pub staff_actions: Vec<staff_audit::Model>,
    pub evaluations: Vec<EvaluationUpdate>,
    pub sends: Vec<SentUpdate>,
}

/// An evaluation's outcome on the message row.
#[derive(Debug, Clone, Serialize)]
pub struct EvaluationUpdate {
    pub id: String,
    pub state: String,
    pub block_reason: Option<String>,
    pub defer_until: Option<DateTime<Utc>>,
    pub in_window: bool,
    pub updated_at: DateTime<Utc>,
    /// Set when the evaluation (re)queues the message.
    pub queued_at: Option<DateTime<Utc>>,
    /// 1 when the worker calls the provider next: the attempt is counted
    /// with this write, so a crash during the call still shows it.
    pub attempts_inc: i32,
    /// Set when this evaluation is also the worker's claim (PostgreSQL,
    /// [`crate::store::db::Db::write_claiming`]): the update applies only if the
    /// message is still waiting (`queued` or `deferred`), has no provider
    /// sid and is due by this time (the compare-and-set that lets exactly
    /// one worker have a message), and the write's audit rows of this
    /// message are inserted only if it did.
    pub claim_due_by: Option<DateTime<Utc>>,
}

/// A provider's acceptance on the message row. The state moves only if
/// the message is still `sending` (a status callback may have moved it
/// further already); the sid is recorded either way.
#[derive(Debug, Clone, Serialize)]
pub struct SentUpdate {
    pub id: String,
    pub provider_sid: String,
    pub provider: String,
    pub price: Option<String>,
    pub price_unit: Option<String>,
    pub state: String,
    pub updated_at: DateTime<Utc>,
}

/// PostgreSQL: every kind of row of any number of callers, one statement.
/// `$1`..`$4` are JSON arrays (possibly empty) as text; `$5` and `$6` the
/// ids of `$3` and `$4` (so the messages are found by their key without
/// parsing the JSON twice); `$7` the ids of the claiming evaluations
/// ([`EvaluationUpdate::claim_due_by`]). A claiming evaluation updates its
/// message only while it is waiting, without a sid and due (the states as
/// [`MessageState::is_waiting`] names them), and the audit rows of its
/// message are inserted only if it did. Returns the ids of the claiming
/// evaluations that were written.
pub(crate) const PG_ROWS_SQL: &str = "WITH \
 ue AS (UPDATE outbound_messages o SET state = v.state, block_reason = v.block_reason, \
   defer_until = v.defer_until, in_window = v.in_window, updated_at = v.updated_at, \
   queued_at = COALESCE(v.queued_at, o.queued_at), attempts = o.attempts + v.attempts_inc \
   FROM json_to_recordset($3::json) AS v(id varchar, state varchar, block_reason varchar, \
     defer_until timestamptz, in_window boolean, updated_at timestamptz, \
     queued_at timestamptz, attempts_inc integer, claim_due_by timestamptz) \
   WHERE o.id = v.id \
     AND o.id = ANY($5::varchar[]) \
     AND (v.claim_due_by IS NULL \
       OR (o.state IN ('queued', 'deferred') AND o.provider_sid IS NULL \
         AND (o.defer_until IS NULL OR o.defer_until <= v.claim_due_by))) \
   RETURNING o.id), \
 im AS (INSERT INTO outbound_messages \
   SELECT * FROM json_populate_recordset(NULL::outbound_messages, $1::json)), \
 it AS (INSERT INTO tool_calls \
   SELECT t.* FROM json_populate_recordset(NULL::tool_calls, $2::json) AS t \
   WHERE t.message_id IS NULL OR NOT (t.message_id = ANY($7::varchar[])) \
     OR t.message_id IN (SELECT id FROM ue)), \
 sa AS (INSERT INTO staff_audit_log \
   SELECT * FROM json_populate_recordset(NULL::staff_audit_log, $8::json)), \
 us AS (UPDATE outbound_messages o SET provider_sid = v.provider_sid, provider = v.provider, \
   price = v.price, price_unit = v.price_unit, \
   state = CASE WHEN o.state = 'sending' THEN v.state ELSE o.state END, \
   error_code = NULL, error_message = NULL, updated_at = v.updated_at \
 FROM json_to_recordset($4::json) AS v(id varchar, provider_sid varchar, provider varchar, \
   price varchar, price_unit varchar, state varchar, updated_at timestamptz) \
 WHERE o.id = v.id \
   AND o.id = ANY($6::varchar[])) \
 SELECT id FROM ue WHERE id = ANY($7::varchar[])";

impl RowWrite {
    /// Every message id this write touches (its audit rows' messages too:
    /// a claiming evaluation decides whether its message's audit rows of
    /// the same statement are inserted, so another caller's audit row of
    /// that message must not share the statement).
    pub fn message_ids(&self) -> impl Iterator<Item = &str> {
        self.messages
            .iter()
            .map(|m| m.id.as_str())
            .chain(self.evaluations.iter().map(|e| e.id.as_str()))
            .chain(self.sends.iter().map(|s| s.id.as_str()))
            .chain(
                self.tool_calls
                    .iter()
                    .filter_map(|t| t.message_id.as_deref()),
            )
    }

    /// The ids of this write's claiming evaluations.
    pub fn claiming_ids(&self) -> impl Iterator<Item = &str> {
        self.evaluations
            .iter()
            .filter(|e| e.claim_due_by.is_some())
            .map(|e| e.id.as_str())
    }

    /// The JSON arrays bound to [`PG_ROWS_SQL`] (as text) for several
    /// callers' rows together, and the ids of their evaluations, sends and
    /// claiming evaluations.
    pub(crate) fn merged_json<'a>(
        writes: &[&'a RowWrite],
    ) -> Result<([String; 5], [Vec<&'a str>; 3]), serde_json::Error> {
        fn all<'a, T: Serialize + 'a>(
            writes: &[&'a RowWrite],
            rows: impl Fn(&'a RowWrite) -> &'a Vec<T>,
        ) -> Result<String, serde_json::Error> {
            serde_json::to_string(&writes.iter().flat_map(|w| rows(w)).collect::<Vec<_>>())
        }
        let ids = [
            writes
                .iter()
                .flat_map(|w| w.evaluations.iter().map(|e| e.id.as_str()))
                .collect(),
            writes
                .iter()
                .flat_map(|w| w.sends.iter().map(|s| s.id.as_str()))
                .collect(),
            writes.iter().flat_map(|w| w.claiming_ids()).collect(),
        ];
        Ok((
            [
                all(writes, |w| &w.messages)?,
                all(writes, |w| &w.tool_calls)?,
                all(writes, |w| &w.evaluations)?,
                all(writes, |w| &w.sends)?,
                all(writes, |w| &w.staff_actions)?,
            ],
            ids,
        ))
    }

    /// The same write as plain statements for `backend` (SQLite's
    /// writer). Not for a claiming evaluation, whose audit rows depend on
    /// the claim: [`crate::store::db::Db::write_claiming`] is PostgreSQL's only.
    pub fn statements(&self, backend: DbBackend) -> Vec<sea_orm::Statement> {
        let mut out = Vec::new();
        for m in &self.messages {
            out.push(
                outbound_message::Entity::insert(
                    outbound_message::ActiveModel::from(m.clone()).reset_all(),
                )
                .build(backend),
            );
        }
        for t in &self.tool_calls {
            out.push(
                tool_call::Entity::insert(tool_call::ActiveModel::from(t.clone()).reset_all())
                    .build(backend),
            );
        }
        for a in &self.staff_actions {
            out.push(
                staff_audit::Entity::insert(staff_audit::ActiveModel::from(a.clone()).reset_all())
                    .build(backend),
            );
        }
        for e in &self.evaluations {
            out.push(evaluation_statement(e).build(backend));
        }
        for s in &self.sends {
            out.push(sent_statement(s).build(backend));
        }
        out
    }
}

fn evaluation_statement(e: &EvaluationUpdate) -> sea_orm::UpdateMany<outbound_message::Entity> {
    use outbound_message::Column;
    let mut update = outbound_message::Entity::update_many()
        .col_expr(Column::State, Expr::value(e.state.clone()))
        .col_expr(Column::BlockReason, Expr::value(e.block_reason.clone()))
        .col_expr(Column::DeferUntil, Expr::value(e.defer_until))
        .col_expr(Column::InWindow, Expr::value(Some(e.in_window)))
        .col_expr(Column::UpdatedAt, Expr::value(e.updated_at))
        .filter(Column::Id.eq(&e.id));
    if let Some(at) = e.queued_at {
        update = update.col_expr(Column::QueuedAt, Expr::value(Some(at)));
    }
    if e.attempts_inc != 0 {
        update = update.col_expr(
            Column::Attempts,
            Expr::col(Column::Attempts).add(e.attempts_inc),
        );
    }
    update
}

fn sent_statement(s: &SentUpdate) -> sea_orm::UpdateMany<outbound_message::Entity> {
    use outbound_message::Column;
    let still_sending = Expr::col(Column::State).eq(MessageState::Sending.as_str());
    outbound_message::Entity::update_many()
        .col_expr(
            Column::ProviderSid,
            Expr::value(Some(s.provider_sid.clone())),
        )
        .col_expr(Column::Provider, Expr::value(Some(s.provider.clone())))
        .col_expr(Column::Price, Expr::value(s.price.clone()))
        .col_expr(Column::PriceUnit, Expr::value(s.price_unit.clone()))
        .col_expr(
            Column::State,
            sea_orm::sea_query::CaseStatement::new()
                .case(still_sending, Expr::value(s.state.clone()))
                .finally(Expr::col(Column::State))
                .into(),
        )
        .col_expr(Column::ErrorCode, Expr::value(Option::<i32>::None))
        .col_expr(Column::ErrorMessage, Expr::value(Option::<String>::None))
        .col_expr(Column::UpdatedAt, Expr::value(s.updated_at))
        .filter(Column::Id.eq(&s.id))
}

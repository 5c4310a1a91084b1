//! Retention: how long personal content is kept, enforced daily by
//! [`super::Job::ApplyRetention`], counted in `retention_runs` for the
//! console.
//!
//! What goes, and what stays:
//!
//! - **Message bodies** (`HEIMDALL_RETAIN_MESSAGE_BODY_DAYS`): an outbound
//!   message older than that has its content cleared (the text, the text as
//!   written, the template's variables, the media link, the buttons). The
//!   row stays with its state, template name, times, provider answers and
//!   the gates' verdicts (`tool_calls`): the evidence that a message was
//!   sent, to whom and why. A message that may still go (pending, queued,
//!   deferred, held, or sending without the provider's id) keeps its
//!   content until it is settled.
//! - **Inbound texts** (`HEIMDALL_RETAIN_INBOUND_TEXT_DAYS`): the text, the
//!   media links and the button text of an inbound message older than that
//!   are cleared; the row stays, with the sender, the time and the keyword
//!   it was read as (that it was a STOP).
//! - **Webhook audit rows** (`HEIMDALL_WEBHOOK_AUDIT_DAYS`): deleted.
//! - **Consent evidence** (`HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS`): the IP
//!   address and user agent of a consent revoked longer ago than that are
//!   redacted through the audit chain ([`crate::audit::chain::redact`],
//!   reason `retention`, actor `housekeeping`), so `heimdall audit verify`
//!   still passes and shows what was replaced. A consent in force keeps its
//!   evidence; the consent row, its source, times and consent text (version,
//!   hash, text) stay; suppressions are never touched. A consent not chained
//!   yet is left for the next run (counted as deferred).
//!
//! Every kind works in bounded batches, each its own short statement (or,
//! for a consent, its own redaction transaction), so a large backlog never
//! holds a transaction or a lock for long.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, EntityTrait, QueryFilter, QueryOrder, QuerySelect,
    Set,
};
use serde::Serialize;

use heimdall_codes::ConsentStatus;

use crate::audit::chain::{self, RedactError};
use crate::clock::new_id;
use crate::compliance::message_state::MessageState;
use crate::entities::{consent, inbound_message, outbound_message, retention_run};
use crate::Core;

/// Rows cleared per statement.
pub const BATCH: u64 = 500;
/// Consents read per query (each is redacted in a transaction of its own).
const CONSENT_BATCH: u64 = 200;
/// The console totals what was purged over this long.
pub const TOTAL_OVER: Duration = Duration::days(30);

/// The redaction's recorded reason and actor.
pub const REASON: &str = "retention";
pub const ACTOR: &str = "housekeeping";

/// A kind of data retention purges.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    MessageBodies,
    InboundTexts,
    WebhookAudit,
    ConsentEvidence,
}

impl Kind {
    pub const ALL: [Kind; 4] = [
        Kind::MessageBodies,
        Kind::InboundTexts,
        Kind::WebhookAudit,
        Kind::ConsentEvidence,
    ];

    /// The stable name (the `retention_runs` key).
    pub fn name(self) -> &'static str {
        match self {
            Kind::MessageBodies => "message_bodies",
            Kind::InboundTexts => "inbound_texts",
            Kind::WebhookAudit => "webhook_audit",
            Kind::ConsentEvidence => "consent_evidence",
        }
    }

    /// What it is, in words.
    pub fn label(self) -> &'static str {
        match self {
            Kind::MessageBodies => "Outbound message bodies",
            Kind::InboundTexts => "Inbound message texts",
            Kind::WebhookAudit => "Webhook audit rows",
            Kind::ConsentEvidence => "Evidence (IP, user agent) of revoked consents",
        }
    }

    /// The setting that says how long it is kept.
    pub fn variable(self) -> &'static str {
        match self {
            Kind::MessageBodies => "HEIMDALL_RETAIN_MESSAGE_BODY_DAYS",
            Kind::InboundTexts => "HEIMDALL_RETAIN_INBOUND_TEXT_DAYS",
            Kind::WebhookAudit => "HEIMDALL_WEBHOOK_AUDIT_DAYS",
            Kind::ConsentEvidence => "HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS",
        }
    }

    /// How many days it is kept, as configured.
    pub fn days(self, core: &Core) -> u32 {
        let s = &core.settings;
        match self {
            Kind::MessageBodies => s.retain_message_body_days,
            Kind::InboundTexts => s.retain_inbound_text_days,
            Kind::WebhookAudit => s.webhook_audit_days,
            Kind::ConsentEvidence => s.retain_consent_evidence_days,
        }
    }

    fn cutoff(self, core: &Core) -> DateTime<Utc> {
        core.now() - Duration::days(i64::from(self.days(core)))
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one kind's purge did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Purged {
    pub purged: u64,
    /// Due but left for the next run.
    pub deferred: u64,
}

/// What a retention run did, per kind.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionReport {
    pub kinds: Vec<(Kind, Purged)>,
}

impl RetentionReport {
    pub fn get(&self, kind: Kind) -> Purged {
        self.kinds
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, p)| *p)
            .unwrap_or_default()
    }
}

impl fmt::Display for RetentionReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .kinds
            .iter()
            .map(|(k, p)| {
                let mut s = format!("{} {}", k.name(), p.purged);
                if p.deferred > 0 {
                    s.push_str(&format!(", {} deferred", p.deferred));
                }
                s
            })
            .collect();
        write!(f, "purged: {}", parts.join("; "))
    }
}

/// Purge every kind past its retention and record the counts.
pub async fn apply(core: &Core) -> Result<RetentionReport, sea_orm::DbErr> {
    let mut report = RetentionReport::default();
    for kind in Kind::ALL {
        report.kinds.push((kind, purge(core, kind).await?));
    }
    Ok(report)
}

/// Purge one kind past its retention and record the count in
/// `retention_runs`.
pub async fn purge(core: &Core, kind: Kind) -> Result<Purged, sea_orm::DbErr> {
    let done = match kind {
        Kind::MessageBodies => Purged {
            purged: clear_message_bodies(core).await?,
            deferred: 0,
        },
        Kind::InboundTexts => Purged {
            purged: clear_inbound_texts(core).await?,
            deferred: 0,
        },
        Kind::WebhookAudit => Purged {
            purged: crate::inbound::prune_webhook_audit(core).await?,
            deferred: 0,
        },
        Kind::ConsentEvidence => redact_consent_evidence(core).await?,
    };
    retention_run::ActiveModel {
        id: Set(new_id()),
        kind: Set(kind.name().to_string()),
        purged: Set(i64::try_from(done.purged).unwrap_or(i64::MAX)),
        deferred: Set(i64::try_from(done.deferred).unwrap_or(i64::MAX)),
        ran_at: Set(core.now()),
    }
    .insert(&core.db.conn)
    .await?;
    metrics::counter!("heimdall_retention_purged_total", "kind" => kind.name())
        .increment(done.purged);
    Ok(done)
}

/// States a message can still be sent from: its content is kept. A
/// `sending` message the provider accepted (it has the provider's id) has
/// gone, whether or not a status ever came back; one without is still in a
/// worker's hands (or stuck, until reconciliation fails it).
const UNSENT: [MessageState; 4] = [
    MessageState::Pending,
    MessageState::Deferred,
    MessageState::Queued,
    MessageState::Held,
];

fn message_settled() -> Condition {
    let unsent: Vec<&str> = UNSENT.iter().map(|s| s.as_str()).collect();
    Condition::all()
        .add(outbound_message::Column::State.is_not_in(unsent))
        .add(
            Condition::any()
                .add(outbound_message::Column::State.ne(MessageState::Sending.as_str()))
                .add(outbound_message::Column::ProviderSid.is_not_null()),
        )
}

/// Outbound messages past retention that still hold content.
fn message_has_content() -> Condition {
    Condition::any()
        .add(outbound_message::Column::Body.is_not_null())
        .add(outbound_message::Column::SourceText.is_not_null())
        .add(outbound_message::Column::MediaUrl.is_not_null())
        .add(outbound_message::Column::Interactive.is_not_null())
        .add(outbound_message::Column::Variables.ne("{}"))
}

/// Clear the content of `E`'s rows that are `due`, in batches of [`BATCH`]
/// ids (read in id order, then updated by id with `due` checked again, so a
/// row that changed since it was read is left): each batch is one short
/// statement. `clear` sets the content columns. The rows cleared.
async fn clear_in_batches<E>(
    core: &Core,
    id: E::Column,
    due: impl Fn() -> Condition,
    clear: impl Fn(sea_orm::UpdateMany<E>) -> sea_orm::UpdateMany<E>,
) -> Result<u64, sea_orm::DbErr>
where
    E: EntityTrait,
{
    let mut total = 0;
    let mut after = String::new();
    loop {
        let ids: Vec<String> = E::find()
            .select_only()
            .column(id)
            .filter(due())
            .filter(id.gt(after.clone()))
            .order_by_asc(id)
            .limit(BATCH)
            .into_tuple()
            .all(&core.db.conn)
            .await?;
        let Some(last) = ids.last().cloned() else {
            break;
        };
        let n = ids.len() as u64;
        total += clear(E::update_many())
            .filter(id.is_in(ids))
            .filter(due())
            .exec(&core.db.conn)
            .await?
            .rows_affected;
        if n < BATCH {
            break;
        }
        after = last;
    }
    Ok(total)
}

async fn clear_message_bodies(core: &Core) -> Result<u64, sea_orm::DbErr> {
    use outbound_message::Column as C;
    let cutoff = Kind::MessageBodies.cutoff(core);
    clear_in_batches::<outbound_message::Entity>(
        core,
        C::Id,
        || {
            Condition::all()
                .add(C::CreatedAt.lt(cutoff))
                .add(message_settled())
                .add(message_has_content())
        },
        |update| {
            update
                .col_expr(C::Body, Expr::value(None::<String>))
                .col_expr(C::SourceText, Expr::value(None::<String>))
                .col_expr(C::MediaUrl, Expr::value(None::<String>))
                .col_expr(C::Interactive, Expr::value(None::<String>))
                .col_expr(C::Variables, Expr::value("{}"))
        },
    )
    .await
}

fn inbound_has_content() -> Condition {
    Condition::any()
        .add(inbound_message::Column::Body.is_not_null())
        .add(inbound_message::Column::ButtonText.is_not_null())
        .add(inbound_message::Column::Media.ne("[]"))
}

async fn clear_inbound_texts(core: &Core) -> Result<u64, sea_orm::DbErr> {
    use inbound_message::Column as C;
    let cutoff = Kind::InboundTexts.cutoff(core);
    clear_in_batches::<inbound_message::Entity>(
        core,
        C::Id,
        || {
            Condition::all()
                .add(C::ReceivedAt.lt(cutoff))
                .add(inbound_has_content())
        },
        |update| {
            update
                .col_expr(C::Body, Expr::value(None::<String>))
                .col_expr(C::ButtonText, Expr::value(None::<String>))
                .col_expr(C::Media, Expr::value("[]"))
        },
    )
    .await
}

/// The evidence fields retention erases.
const EVIDENCE: [&str; 2] = ["ip", "user_agent"];

async fn redact_consent_evidence(core: &Core) -> Result<Purged, sea_orm::DbErr> {
    let cutoff = Kind::ConsentEvidence.cutoff(core);
    let mut done = Purged::default();
    let mut after = String::new();
    loop {
        let rows: Vec<(String, Option<String>, Option<String>)> = consent::Entity::find()
            .select_only()
            .column(consent::Column::Id)
            .column(consent::Column::Ip)
            .column(consent::Column::UserAgent)
            // Ended, and long enough ago: a consent in force keeps its evidence.
            .filter(consent::Column::Status.eq(ConsentStatus::Revoked))
            .filter(consent::Column::RevokedAt.lt(cutoff))
            .filter(
                Condition::any()
                    .add(consent::Column::Ip.is_not_null())
                    .add(consent::Column::UserAgent.is_not_null()),
            )
            .filter(consent::Column::Id.gt(after.clone()))
            .order_by_asc(consent::Column::Id)
            .limit(CONSENT_BATCH)
            .into_tuple()
            .all(&core.db.conn)
            .await?;
        let Some((last, _, _)) = rows.last().cloned() else {
            break;
        };
        let n = rows.len() as u64;
        for (id, ip, user_agent) in rows {
            let fields: Vec<&str> = EVIDENCE
                .into_iter()
                .zip([ip.is_some(), user_agent.is_some()])
                .filter(|(_, present)| *present)
                .map(|(f, _)| f)
                .collect();
            match chain::redact(core, "consents", &id, &fields, REASON, ACTOR).await {
                Ok(_) => done.purged += 1,
                // Chained within seconds: the next run takes it.
                Err(RedactError::NotSealed) => done.deferred += 1,
                Err(RedactError::Db(e)) => return Err(e),
                Err(e) => {
                    // A row that no longer matches its chain (changed by
                    // hand) or already redacted to a value: left as it is
                    // for a person to look at; `heimdall audit verify`
                    // reports the first.
                    tracing::error!(consent_id = %id, error = %e, "retention: consent evidence not redacted");
                    done.deferred += 1;
                }
            }
        }
        if n < CONSENT_BATCH {
            break;
        }
        after = last;
    }
    Ok(done)
}

/// One kind as the console shows it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct RetentionView {
    pub kind: String,
    pub label: String,
    /// The setting and its value in days.
    pub variable: String,
    pub days: u32,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_purged: Option<i64>,
    pub last_deferred: Option<i64>,
    /// Purged over the last [`TOTAL_OVER`].
    pub purged_last_30_days: i64,
}

/// Every kind with how long it is kept, its last run and what was purged
/// over the last 30 days.
pub async fn overview(core: &Core) -> Result<Vec<RetentionView>, sea_orm::DbErr> {
    let since = core.now() - TOTAL_OVER;
    let mut out = Vec::new();
    for kind in Kind::ALL {
        let last = retention_run::Entity::find()
            .filter(retention_run::Column::Kind.eq(kind.name()))
            .order_by_desc(retention_run::Column::RanAt)
            .one(&core.db.conn)
            .await?;
        let recent: Vec<i64> = retention_run::Entity::find()
            .select_only()
            .column(retention_run::Column::Purged)
            .filter(retention_run::Column::Kind.eq(kind.name()))
            .filter(retention_run::Column::RanAt.gte(since))
            .into_tuple()
            .all(&core.db.conn)
            .await?;
        out.push(RetentionView {
            kind: kind.name().into(),
            label: kind.label().into(),
            variable: kind.variable().into(),
            days: kind.days(core),
            last_run_at: last.as_ref().map(|r| r.ran_at),
            last_purged: last.as_ref().map(|r| r.purged),
            last_deferred: last.as_ref().map(|r| r.deferred),
            purged_last_30_days: recent.into_iter().sum(),
        });
    }
    Ok(out)
}

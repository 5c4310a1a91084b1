//! [`erase`]: one person's personal data erased, their STOP kept (see the
//! module's documentation for the steps and why they are in that order).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QuerySelect, Set,
};
use serde::Serialize;

use crate::audit::chain::{self, RedactError};
use crate::compliance::message_state::MessageState;
use crate::consent::tombstone::{ErasureKey, HASH_PREFIX, KEY_CHECK_SETTING};
use crate::consent::{self, OptOutSource, Scope};
use crate::entities::{
    alert, app_setting, attachment, consent as consent_row, contact, conversation_assignment,
    erased_number, inbound_message, job_run, outbound_message, preference_link, reminder, schedule,
    schedule_occurrence, service_window, staff_audit, tier_usage, tool_call, webhook_audit,
};
use crate::Core;

/// What stands in for a name where one was written.
const ERASED: &str = "[erased]";

/// Why an erasure was refused or did not finish.
#[derive(Debug, thiserror::Error)]
pub enum ErasureError {
    #[error("erasure is not configured: set HEIMDALL_ERASURE_KEY (a random secret of at least 32 characters that never changes) so that an erased person's number can be kept as a keyed hash and their STOP still honoured")]
    NoKey,
    #[error("HEIMDALL_ERASURE_KEY is not the key of the earlier erasures: erasure refused (a changed key would stop honouring their STOP)")]
    KeyChanged,
    #[error("a reason is required")]
    NoReason,
    #[error("no contact with id {0}")]
    NotFound(String),
    #[error("contact {0} was erased already")]
    AlreadyErased(String),
    /// A chained row could not be redacted; the tombstone is in force and
    /// asking again finishes the erasure.
    #[error("the audit rows could not be redacted ({0}); the number is suppressed, ask again to finish the erasure")]
    Redaction(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// What an erasure did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erased {
    pub contact_id: String,
    /// The keyed hash the number is kept as (hex HMAC-SHA256).
    pub number_hash: String,
    pub erased_at: DateTime<Utc>,
    /// Rows changed (or deleted), by what they are.
    pub counts: BTreeMap<String, u64>,
}

/// The person's identifiers, and what replaces them.
struct Person {
    e164: String,
    digits: String,
    name: Option<String>,
    hashed: String,
}

impl Person {
    /// `text` with the number (E.164, or its digits) replaced by its hash and
    /// the name by `[erased]` (any case).
    fn scrub(&self, text: &str) -> String {
        let out = text
            .replace(&self.e164, &self.hashed)
            .replace(&self.digits, &self.hashed);
        match &self.name {
            Some(n) => replace_any_case(&out, n, ERASED),
            None => out,
        }
    }

    fn scrub_opt(&self, text: Option<&str>) -> Option<String> {
        text.map(|t| self.scrub(t))
    }

    /// Rows of `col` that may hold the number or the name.
    fn mentioned<C: ColumnTrait>(&self, col: C) -> Condition {
        let c = Condition::any().add(col.contains(&self.digits));
        match &self.name {
            Some(n) => c.add(col.contains(n)),
            None => c,
        }
    }
}

fn replace_any_case(text: &str, needle: &str, with: &str) -> String {
    if needle.is_empty() {
        return text.to_string();
    }
    let lower = text.to_lowercase();
    let n = needle.to_lowercase();
    // Lower-casing may change byte lengths outside ASCII: then only the
    // exact spelling is replaced.
    if lower.len() != text.len() || n.len() != needle.len() {
        return text.replace(needle, with);
    }
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(i) = lower[at..].find(&n) {
        out.push_str(&text[at..at + i]);
        out.push_str(with);
        at += i + n.len();
    }
    out.push_str(&text[at..]);
    out
}

/// Erase contact `contact_id` (see [`super`]): `actor` is who asked, `reason`
/// why (required). Refused without `HEIMDALL_ERASURE_KEY`.
pub async fn erase(
    core: &Core,
    contact_id: &str,
    reason: &str,
    actor: &str,
) -> Result<Erased, ErasureError> {
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(ErasureError::NoReason);
    }
    let key = ErasureKey::of(core).ok_or(ErasureError::NoKey)?;
    let c = contact::Entity::find_by_id(contact_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| ErasureError::NotFound(contact_id.to_string()))?;
    if crate::contacts::is_erased(&c.phone_e164) {
        return Err(ErasureError::AlreadyErased(c.id));
    }
    let hash = key.number_hash(&c.phone_e164);
    let person = Person {
        digits: c.phone_e164.trim_start_matches('+').to_string(),
        e164: c.phone_e164.clone(),
        // A name of one or two letters would replace parts of words.
        name: c
            .name
            .as_deref()
            .map(str::trim)
            .filter(|n| n.chars().count() >= 3)
            .map(str::to_string),
        hashed: format!("{HASH_PREFIX}{hash}"),
    };
    // What staff typed may name the person: it is kept scrubbed.
    let reason = person.scrub(reason);
    let now = core.now();
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();

    stop_everything(
        core,
        &key,
        &c,
        &person,
        &hash,
        &reason,
        actor,
        now,
        &mut counts,
    )
    .await?;
    crate::contacts::forget_number(core, &c.phone_e164).await;
    redact_chained(core, &c.id, &person, &reason, actor, &mut counts).await?;
    clear_the_rest(core, &c, &person, &hash, &reason, actor, now, &mut counts).await?;
    crate::contacts::forget_number(core, &c.phone_e164).await;
    // A send asked for while this ran wrote an evaluation naming the number.
    redact_chained(core, &c.id, &person, &reason, actor, &mut counts).await?;
    counts.retain(|_, n| *n > 0);
    Ok(Erased {
        contact_id: c.id,
        number_hash: hash,
        erased_at: now,
        counts,
    })
}

/// Delete the rows of `E` whose `contact` column is the person's, counted
/// under `what`.
async fn delete_theirs<E: EntityTrait>(
    db: &impl ConnectionTrait,
    contact: E::Column,
    contact_id: &str,
    counts: &mut BTreeMap<String, u64>,
    what: &str,
) -> Result<(), sea_orm::DbErr> {
    let n = E::delete_many()
        .filter(contact.eq(contact_id))
        .exec(db)
        .await?
        .rows_affected;
    add(counts, what, n);
    Ok(())
}

fn add(counts: &mut BTreeMap<String, u64>, what: &str, n: u64) {
    *counts.entry(what.to_string()).or_default() += n;
}

/// Step 1: the tombstone, the opt-out, nothing left to send.
#[allow(clippy::too_many_arguments)]
async fn stop_everything(
    core: &Core,
    key: &ErasureKey,
    c: &contact::Model,
    person: &Person,
    hash: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
    counts: &mut BTreeMap<String, u64>,
) -> Result<(), ErasureError> {
    let txn = core.db.begin_write().await?;
    match app_setting::Entity::find_by_id(KEY_CHECK_SETTING)
        .one(&txn)
        .await?
    {
        Some(s) if serde_json::from_str::<String>(&s.value).ok() != Some(key.check_value()) => {
            return Err(ErasureError::KeyChanged);
        }
        Some(_) => {}
        None => {
            app_setting::ActiveModel {
                key: Set(KEY_CHECK_SETTING.to_string()),
                value: Set(serde_json::Value::String(key.check_value()).to_string()),
                updated_by: Set(actor.to_string()),
                updated_at: Set(now),
            }
            .insert(&txn)
            .await?;
        }
    }
    let tombstone = erased_number::ActiveModel {
        number_hash: Set(hash.to_string()),
        contact_id: Set(c.id.clone()),
        erased_at: Set(now),
        erased_by: Set(actor.to_string()),
        reason: Set(reason.to_string()),
        lifted_at: Set(None),
        lift_ref: Set(None),
    };
    // The same number erased again (after a START lifted the first).
    if erased_number::Entity::find_by_id(hash)
        .one(&txn)
        .await?
        .is_some()
    {
        tombstone.update(&txn).await?;
    } else {
        tombstone.insert(&txn).await?;
    }
    consent::opt_out(
        &txn,
        &c.id,
        None,
        Scope::All,
        OptOutSource::Erasure,
        Some(&crate::consent::tombstone::erased_reason(now)),
        actor,
        now,
    )
    .await?;

    let theirs = || {
        Condition::any()
            .add(outbound_message::Column::ContactId.eq(&c.id))
            .add(outbound_message::Column::ToAddress.eq(&person.e164))
    };
    let blocked = crate::sending::state::moving(&[MessageState::Pending], MessageState::Blocked)
        .col_expr(
            outbound_message::Column::BlockReason,
            Expr::value(Some("suppressed")),
        )
        .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
        .filter(theirs())
        .exec(&txn)
        .await?
        .rows_affected;
    let cancelled = crate::sending::state::moving(
        &[
            MessageState::Queued,
            MessageState::Deferred,
            MessageState::Held,
        ],
        MessageState::Cancelled,
    )
    .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
    .filter(theirs())
    .exec(&txn)
    .await?
    .rows_affected;
    add(counts, "messages_cancelled", blocked + cancelled);
    let reminders = reminder::Entity::update_many()
        .col_expr(reminder::Column::State, Expr::value("cancelled"))
        .col_expr(reminder::Column::Outcome, Expr::value(Some("erased")))
        .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
        .filter(reminder::Column::ContactId.eq(&c.id))
        .filter(reminder::Column::State.eq("scheduled"))
        .exec(&txn)
        .await?
        .rows_affected;
    add(counts, "reminders_cancelled", reminders);
    let schedules = schedule::Entity::update_many()
        .col_expr(schedule::Column::Active, Expr::value(false))
        .col_expr(
            schedule::Column::NextRunAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
        .filter(schedule::Column::ContactId.eq(&c.id))
        .filter(schedule::Column::Active.eq(true))
        .exec(&txn)
        .await?
        .rows_affected;
    add(counts, "schedules_stopped", schedules);
    txn.commit().await?;
    Ok(())
}

/// Step 2 (and 4): seal, then redact the chained rows through the chain.
async fn redact_chained(
    core: &Core,
    contact_id: &str,
    person: &Person,
    reason: &str,
    actor: &str,
    counts: &mut BTreeMap<String, u64>,
) -> Result<(), ErasureError> {
    chain::seal(core).await?;
    let why = format!("erasure: {reason}");

    let consents = consent_row::Entity::find()
        .filter(consent_row::Column::ContactId.eq(contact_id))
        .all(&core.db.conn)
        .await?;
    for row in consents {
        let mut fields: Vec<(&str, Option<&str>)> = Vec::new();
        for (name, value) in [
            ("ip", &row.ip),
            ("user_agent", &row.user_agent),
            ("page_url", &row.page_url),
        ] {
            if value.is_some() {
                fields.push((name, None));
            }
        }
        // A keyword consent's text is the person's message.
        if row.source == "keyword" && row.consent_text.is_some() {
            fields.push(("consent_text", None));
        }
        if redact(core, "consents", &row.id, &fields, &why, actor).await? {
            add(counts, "consents_redacted", 1);
        }
    }

    let calls = tool_call::Entity::find()
        .filter(
            Condition::any()
                .add(tool_call::Column::ContactId.eq(contact_id))
                .add(person.mentioned(tool_call::Column::Verdicts))
                .add(person.mentioned(tool_call::Column::Detail)),
        )
        .all(&core.db.conn)
        .await?;
    for row in calls {
        let verdicts = person.scrub(&row.verdicts);
        let detail = person.scrub_opt(row.detail.as_deref());
        let mut fields: Vec<(&str, Option<&str>)> = Vec::new();
        if verdicts != row.verdicts {
            fields.push(("verdicts", Some(&verdicts)));
        }
        if detail != row.detail {
            fields.push(("detail", detail.as_deref()));
        }
        if redact(core, "tool_calls", &row.id, &fields, &why, actor).await? {
            add(counts, "audit_rows_redacted", 1);
        }
    }
    Ok(())
}

/// One row redacted (false: nothing to do). A row not chained yet is
/// sealed first; one redacted already is left.
async fn redact(
    core: &Core,
    table: &str,
    id: &str,
    fields: &[(&str, Option<&str>)],
    why: &str,
    actor: &str,
) -> Result<bool, ErasureError> {
    if fields.is_empty() {
        return Ok(false);
    }
    for _ in 0..3 {
        match chain::redact_to(core, table, id, fields, why, actor).await {
            Ok(_) => return Ok(true),
            Err(RedactError::NotSealed) => {
                chain::seal(core).await?;
            }
            Err(RedactError::AlreadyRedacted(_)) => return Ok(false),
            Err(RedactError::Db(e)) => return Err(e.into()),
            Err(e) => {
                tracing::error!(table, row_id = id, error = %e, "erasure: a chained row was not redacted");
                return Err(ErasureError::Redaction(format!("{table} row {id}: {e}")));
            }
        }
    }
    Err(ErasureError::Redaction(format!(
        "{table} row {id} is not chained yet"
    )))
}

/// Step 3: everything else, the contact's shell and the staff audit row.
#[allow(clippy::too_many_arguments)]
async fn clear_the_rest(
    core: &Core,
    c: &contact::Model,
    person: &Person,
    hash: &str,
    reason: &str,
    actor: &str,
    now: DateTime<Utc>,
    counts: &mut BTreeMap<String, u64>,
) -> Result<(), ErasureError> {
    let txn = core.db.begin_write().await?;
    let hashed = person.hashed.as_str();

    // Outbound messages: the stored attachments they link to first.
    let theirs = Condition::any()
        .add(outbound_message::Column::ContactId.eq(&c.id))
        .add(outbound_message::Column::ToAddress.eq(&person.e164));
    let media: Vec<(String, Option<String>)> = outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::Id)
        .column(outbound_message::Column::MediaUrl)
        .filter(theirs.clone())
        .into_tuple()
        .all(&txn)
        .await?;
    let ids: Vec<String> = media.iter().map(|(id, _)| id.clone()).collect();
    let tokens: Vec<String> = media
        .iter()
        .filter_map(|(_, url)| url.as_deref().and_then(attachment_token))
        .collect();
    for token in tokens {
        let used_elsewhere = outbound_message::Entity::find()
            .filter(outbound_message::Column::MediaUrl.contains(&token))
            .filter(outbound_message::Column::Id.is_not_in(ids.clone()))
            .one(&txn)
            .await?
            .is_some();
        if !used_elsewhere {
            let n = attachment::Entity::delete_many()
                .filter(attachment::Column::Token.eq(&token))
                .exec(&txn)
                .await?
                .rows_affected;
            add(counts, "attachments", n);
        }
    }
    let n = outbound_message::Entity::update_many()
        .col_expr(outbound_message::Column::ToAddress, Expr::value(hashed))
        .col_expr(
            outbound_message::Column::Body,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbound_message::Column::SourceText,
            Expr::value(Option::<String>::None),
        )
        .col_expr(outbound_message::Column::Variables, Expr::value("{}"))
        .col_expr(
            outbound_message::Column::MediaUrl,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbound_message::Column::Interactive,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            outbound_message::Column::ErrorMessage,
            Expr::value(Option::<String>::None),
        )
        .filter(theirs)
        .exec(&txn)
        .await?
        .rows_affected;
    add(counts, "outbound_messages", n);

    let n = inbound_message::Entity::update_many()
        .col_expr(inbound_message::Column::FromAddress, Expr::value(hashed))
        .col_expr(
            inbound_message::Column::Body,
            Expr::value(Option::<String>::None),
        )
        .col_expr(inbound_message::Column::Media, Expr::value("[]"))
        .col_expr(
            inbound_message::Column::ButtonText,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            inbound_message::Column::ButtonPayload,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            inbound_message::Column::ProfileName,
            Expr::value(Option::<String>::None),
        )
        .filter(
            Condition::any()
                .add(inbound_message::Column::ContactId.eq(&c.id))
                .add(inbound_message::Column::FromAddress.eq(&person.e164)),
        )
        .exec(&txn)
        .await?
        .rows_affected;
    add(counts, "inbound_messages", n);

    // Raw webhook payloads name the number (`From=whatsapp%3A%2B1...`).
    let n = webhook_audit::Entity::delete_many()
        .filter(
            Condition::any()
                .add(person.mentioned(webhook_audit::Column::Body))
                .add(person.mentioned(webhook_audit::Column::Headers)),
        )
        .exec(&txn)
        .await?
        .rows_affected;
    add(counts, "webhook_payloads", n);

    delete_theirs::<service_window::Entity>(
        &txn,
        service_window::Column::ContactId,
        &c.id,
        counts,
        "service_windows",
    )
    .await?;
    delete_theirs::<conversation_assignment::Entity>(
        &txn,
        conversation_assignment::Column::ContactId,
        &c.id,
        counts,
        "conversation_assignments",
    )
    .await?;
    // Links to the person's preference page open nothing any more.
    delete_theirs::<preference_link::Entity>(
        &txn,
        preference_link::Column::ContactId,
        &c.id,
        counts,
        "preference_links",
    )
    .await?;
    let n = tier_usage::Entity::update_many()
        .col_expr(tier_usage::Column::Recipient, Expr::value(hashed))
        .filter(tier_usage::Column::Recipient.eq(&person.e164))
        .exec(&txn)
        .await?
        .rows_affected;
    add(counts, "tier_usage", n);
    let n = reminder::Entity::update_many()
        .col_expr(reminder::Column::ToAddress, Expr::value(hashed))
        .col_expr(reminder::Column::Variables, Expr::value("{}"))
        .filter(reminder::Column::ContactId.eq(&c.id))
        .exec(&txn)
        .await?
        .rows_affected;
    add(counts, "reminders", n);
    for s in schedule::Entity::find()
        .filter(schedule::Column::ContactId.eq(&c.id))
        .all(&txn)
        .await?
    {
        let mut am: schedule::ActiveModel = s.clone().into();
        am.name = Set(person.scrub(&s.name));
        am.variables = Set("{}".into());
        am.last_outcome = Set(person.scrub_opt(s.last_outcome.as_deref()));
        am.update(&txn).await?;
        add(counts, "schedules", 1);
    }

    // Free texts elsewhere that may name the number or the person.
    scrub_texts(&txn, person, counts).await?;

    // The contact: an anonymised shell, so everything that refers to it
    // still finds it.
    let mut am: contact::ActiveModel = c.clone().into();
    am.phone_e164 = Set(format!("{hashed}#{}", c.id));
    am.name = Set(None);
    am.time_zone = Set(None);
    am.locale = Set(None);
    am.tags = Set("[]".into());
    am.attributes = Set("{}".into());
    am.needs_manual_outreach = Set(false);
    am.manual_outreach_reason = Set(None);
    am.updated_at = Set(now);
    am.update(&txn).await?;

    crate::audit::record_staff_action(
        &txn,
        actor,
        "contact.erased",
        Some(&c.id),
        Some(serde_json::json!({
            "reason": reason,
            "number_hash": hash,
            "counts": counts,
        })),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(())
}

/// The staff audit, alerts, job results and schedule outcomes, where a
/// number or a name may have been written in a sentence.
async fn scrub_texts(
    db: &impl ConnectionTrait,
    person: &Person,
    counts: &mut BTreeMap<String, u64>,
) -> Result<(), sea_orm::DbErr> {
    for row in staff_audit::Entity::find()
        .filter(
            Condition::any()
                .add(person.mentioned(staff_audit::Column::Detail))
                .add(person.mentioned(staff_audit::Column::Target)),
        )
        .all(db)
        .await?
    {
        let mut am: staff_audit::ActiveModel = row.clone().into();
        am.detail = Set(person.scrub_opt(row.detail.as_deref()));
        am.target = Set(person.scrub_opt(row.target.as_deref()));
        am.update(db).await?;
        add(counts, "staff_audit", 1);
    }
    for row in alert::Entity::find()
        .filter(
            Condition::any()
                .add(person.mentioned(alert::Column::Description))
                .add(person.mentioned(alert::Column::Title)),
        )
        .all(db)
        .await?
    {
        let mut am: alert::ActiveModel = row.clone().into();
        am.title = Set(person.scrub(&row.title));
        am.description = Set(person.scrub(&row.description));
        am.update(db).await?;
        add(counts, "alerts", 1);
    }
    for row in job_run::Entity::find()
        .filter(
            Condition::any()
                .add(person.mentioned(job_run::Column::LastOutcome))
                .add(person.mentioned(job_run::Column::LastError)),
        )
        .all(db)
        .await?
    {
        let mut am: job_run::ActiveModel = row.clone().into();
        am.last_outcome = Set(person.scrub_opt(row.last_outcome.as_deref()));
        am.last_error = Set(person.scrub_opt(row.last_error.as_deref()));
        am.update(db).await?;
    }
    for row in schedule_occurrence::Entity::find()
        .filter(person.mentioned(schedule_occurrence::Column::Outcome))
        .all(db)
        .await?
    {
        let mut am: schedule_occurrence::ActiveModel = row.clone().into();
        am.outcome = Set(person.scrub_opt(row.outcome.as_deref()));
        am.update(db).await?;
    }
    for row in reminder::Entity::find()
        .filter(person.mentioned(reminder::Column::Outcome))
        .all(db)
        .await?
    {
        let mut am: reminder::ActiveModel = row.clone().into();
        am.outcome = Set(person.scrub_opt(row.outcome.as_deref()));
        am.update(db).await?;
    }
    Ok(())
}

/// The token of one of Heimdall's stored attachments in a media URL
/// (`.../media/{token}/{name}`).
fn attachment_token(url: &str) -> Option<String> {
    let rest = url.split("/media/").nth(1)?;
    let token = rest.split('/').next()?;
    (!token.is_empty()).then(|| token.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_replaces_the_number_in_every_spelling_and_the_name_in_any_case() {
        let p = Person {
            e164: "+15551230000".into(),
            digits: "15551230000".into(),
            name: Some("Ada Lovelace".into()),
            hashed: "hash:abc".into(),
        };
        assert_eq!(
            p.scrub(
                "+15551230000 is valid; From=whatsapp%3A%2B15551230000; ADA LOVELACE, ada lovelace"
            ),
            "hash:abc is valid; From=whatsapp%3A%2Bhash:abc; [erased], [erased]"
        );
        assert_eq!(p.scrub("nothing here"), "nothing here");
    }

    #[test]
    fn a_media_url_names_its_token() {
        assert_eq!(
            attachment_token("https://h.example/media/tok123/x.png").as_deref(),
            Some("tok123")
        );
        assert_eq!(attachment_token("https://elsewhere.example/x.png"), None);
    }
}

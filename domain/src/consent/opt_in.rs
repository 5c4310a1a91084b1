//! Opting in: a claim someone other than the number makes (form, QR, API,
//! import, staff), a new contact with the consent staff vouch for, the
//! confirmation link, and an opt-in keyword from the number itself (the one
//! proof that lifts an opt-out).

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::Serialize;

use super::purposes::Purpose;
use super::reading::{consent_status, covering, opted_out, revoked};
use super::records::{
    text_hash, ConsentEvidence, ConsentRecord, ConsentSource, OptedOut, Strength,
};
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::ConsentStatus;
use crate::contacts::ContactError;
use crate::entities::{consent, suppression};
use crate::Core;

/// What recording an opt-in did.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum OptInOutcome {
    /// A new active consent.
    Active { consent: ConsentRecord },
    /// A new pending consent: the person's confirmation is awaited (a YES
    /// from the number, or the link sent to it).
    Pending { consent: ConsentRecord },
    /// The number opted out earlier: the claim is kept as a pending consent,
    /// the opt-out stands, and only the person's own number (a START or a
    /// YES from it) can lift it.
    NeedsProofFromNumber {
        consent: ConsentRecord,
        opted_out: OptedOut,
    },
}

impl OptInOutcome {
    pub fn consent(&self) -> &ConsentRecord {
        match self {
            OptInOutcome::Active { consent }
            | OptInOutcome::Pending { consent }
            | OptInOutcome::NeedsProofFromNumber { consent, .. } => consent,
        }
    }

    pub fn into_consent(self) -> ConsentRecord {
        match self {
            OptInOutcome::Active { consent }
            | OptInOutcome::Pending { consent }
            | OptInOutcome::NeedsProofFromNumber { consent, .. } => consent,
        }
    }

    /// What to tell whoever asked, in one sentence.
    pub fn explanation(&self) -> String {
        match self {
            OptInOutcome::Active { .. } => "consent recorded and active".into(),
            OptInOutcome::Pending { .. } => {
                "consent recorded as pending: it counts once the person confirms (YES from their number)".into()
            }
            OptInOutcome::NeedsProofFromNumber { opted_out, .. } => format!(
                "the number opted out ({}, {}): the consent is recorded as pending and the opt-out stands until the person sends START from that number",
                opted_out.reason,
                opted_out.since.format("%Y-%m-%d")
            ),
        }
    }
}

/// Record an opt-in that someone other than the number itself claims: a
/// public form or QR page, an API client, an import, staff. `pending`
/// asks for the person's confirmation (double opt-in). Never lifts an
/// opt-out: for an opted-out number the claim is kept as a pending consent
/// ([`OptInOutcome::NeedsProofFromNumber`]).
#[allow(clippy::too_many_arguments)]
pub async fn record_opt_in(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    purpose: Option<&Purpose>,
    source: ConsentSource,
    evidence: &ConsentEvidence,
    recorded_by: &str,
    pending: bool,
    now: DateTime<Utc>,
) -> Result<OptInOutcome, ContactError> {
    evidence.validate(source)?;
    let opted_out = opted_out(db, contact_id, channel, purpose).await?;
    let strength = Strength::of_claim(source);
    let record = insert_consent(
        db,
        contact_id,
        channel,
        purpose.map(|p| p.name.as_str()),
        source,
        evidence,
        recorded_by,
        if pending || opted_out.is_some() {
            ConsentStatus::Pending
        } else {
            ConsentStatus::Active
        },
        strength,
        now,
    )
    .await?;
    Ok(match opted_out {
        Some(opted_out) => OptInOutcome::NeedsProofFromNumber {
            consent: record,
            opted_out,
        },
        None if pending => OptInOutcome::Pending { consent: record },
        None => OptInOutcome::Active { consent: record },
    })
}

/// [`record_opt_in`] for each purpose a claim names (none named: every
/// purpose defined now), each its own consent row with the same evidence.
#[allow(clippy::too_many_arguments)]
pub async fn record_opt_ins(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    purposes: &[String],
    source: ConsentSource,
    evidence: &ConsentEvidence,
    recorded_by: &str,
    pending: bool,
    now: DateTime<Utc>,
) -> Result<Vec<OptInOutcome>, ContactError> {
    evidence.validate(source)?;
    let purposes = super::purposes::claimed(db, purposes)
        .await
        .map_err(|e| match e {
            super::purposes::PurposeError::Db(d) => ContactError::Db(d),
            other => ContactError::Evidence(format!("purposes: {other}")),
        })?;
    let mut out = Vec::with_capacity(purposes.len());
    for p in &purposes {
        out.push(
            record_opt_in(
                db,
                contact_id,
                channel,
                Some(p),
                source,
                evidence,
                recorded_by,
                pending,
                now,
            )
            .await?,
        );
    }
    Ok(out)
}

/// The consent a staff member records with a new contact: they vouch for it
/// (`attested`), with the evidence the API requires of them.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffOptIn {
    pub channel: Channel,
    /// The purposes it covers (none named: every purpose defined now).
    pub purposes: Vec<String>,
    pub evidence: ConsentEvidence,
    /// Kept pending until the person confirms from their number (YES or START).
    pub pending: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum NewContactError {
    #[error("a contact with the number {phone} already exists")]
    Exists { id: String, phone: String },
    #[error(transparent)]
    Contact(#[from] ContactError),
}

impl From<sea_orm::DbErr> for NewContactError {
    fn from(e: sea_orm::DbErr) -> Self {
        NewContactError::Contact(ContactError::Db(e))
    }
}

/// A new contact and, when given, the consent staff vouch for, in one transaction: bad
/// evidence records neither, and an existing number is refused (with its contact's id)
/// rather than changed.
pub async fn create_contact_with_opt_in(
    core: &Core,
    input: &crate::contacts::ContactInput,
    opt_in: Option<&StaffOptIn>,
    actor: &str,
) -> Result<(crate::contacts::Contact, Vec<OptInOutcome>), NewContactError> {
    use sea_orm::TransactionTrait;
    let phone = crate::PhoneNumber::parse(&input.phone, core.settings.default_region)
        .map_err(ContactError::from)?;
    crate::contacts::check_tz(&input.time_zone)?;
    if let Some(o) = opt_in {
        o.evidence.validate(ConsentSource::Staff)?;
    }
    let now = core.now();
    let txn = core.db.conn.begin().await?;
    if let Some(existing) = crate::contacts::find_by_phone(&txn, &phone).await? {
        return Err(NewContactError::Exists {
            id: existing.id,
            phone: phone.to_string(),
        });
    }
    let contact = crate::contacts::insert_new(&txn, &phone, input, now).await?;
    super::tombstone::carry_over(core, &txn, &contact.id, &contact.phone_e164, now).await?;
    let outcome = match opt_in {
        Some(o) => {
            record_opt_ins(
                &txn,
                &contact.id,
                o.channel,
                &o.purposes,
                ConsentSource::Staff,
                &o.evidence,
                actor,
                o.pending,
                now,
            )
            .await?
        }
        None => Vec::new(),
    };
    txn.commit().await?;
    Ok((contact.into(), outcome))
}

#[allow(clippy::too_many_arguments)]
async fn insert_consent(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    purpose: Option<&str>,
    source: ConsentSource,
    evidence: &ConsentEvidence,
    recorded_by: &str,
    status: ConsentStatus,
    strength: Strength,
    now: DateTime<Utc>,
) -> Result<ConsentRecord, ContactError> {
    let hash = evidence
        .consent_text_hash
        .clone()
        .or_else(|| evidence.consent_text.as_deref().map(text_hash));
    let model = consent::ActiveModel {
        id: Set(new_id()),
        contact_id: Set(contact_id.to_string()),
        channel: Set(channel.as_str().to_string()),
        status: Set(status),
        source: Set(source.as_str().to_string()),
        strength: Set(strength.as_str().to_string()),
        captured_at: Set(evidence.captured_at.unwrap_or(now)),
        ip: Set(evidence.ip.clone()),
        user_agent: Set(evidence.user_agent.clone()),
        page_url: Set(evidence.page_url.clone()),
        form_id: Set(evidence.form_id.clone()),
        qr_code: Set(evidence.qr_code.clone()),
        inbound_message_id: Set(evidence.inbound_message_id.clone()),
        consent_text_version: Set(evidence.consent_text_version.clone()),
        consent_text_hash: Set(hash),
        consent_text: Set(evidence.consent_text.clone()),
        recorded_by: Set(recorded_by.to_string()),
        confirmed_at: Set(None),
        confirmation_token_hash: Set(None),
        revoked_at: Set(None),
        revocation_source: Set(None),
        revocation_ref: Set(None),
        created_at: Set(now),
        purpose: Set(purpose.map(str::to_string)),
    }
    .insert(db)
    .await?;
    Ok(model.into())
}

/// What a confirmation link did.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkConfirmation {
    /// The pending consent is active now (`confirmed`).
    Confirmed,
    /// The number opted out since (or before): a link cannot lift that;
    /// nothing changed.
    OptedOut(OptedOut),
    /// The consent was no longer pending (confirmed, or revoked): nothing
    /// changed.
    NotPending,
}

/// Confirm one pending consent through the link sent to the number (the
/// person pressed the button on the link's page). A link is not the
/// number: it confirms a pending consent of someone who has not opted out,
/// and lifts nothing.
pub async fn confirm_by_link(
    db: &impl ConnectionTrait,
    consent_id: &str,
    now: DateTime<Utc>,
) -> Result<LinkConfirmation, sea_orm::DbErr> {
    let Some(c) = consent::Entity::find_by_id(consent_id).one(db).await? else {
        return Ok(LinkConfirmation::NotPending);
    };
    let Ok(channel) = c.channel.parse::<Channel>() else {
        return Ok(LinkConfirmation::NotPending);
    };
    let purpose = match c.purpose.as_deref() {
        Some(name) => super::purposes::find(db, name).await?,
        None => None,
    };
    if let Some(o) = opted_out_besides(db, &c.contact_id, channel, purpose.as_ref(), &c.id).await? {
        return Ok(LinkConfirmation::OptedOut(o));
    }
    let res = consent::Entity::update_many()
        .col_expr(consent::Column::Status, Expr::value(ConsentStatus::Active))
        .col_expr(consent::Column::ConfirmedAt, Expr::value(Some(now)))
        .col_expr(
            consent::Column::Strength,
            Expr::value(Strength::Confirmed.as_str()),
        )
        .filter(consent::Column::Id.eq(&c.id))
        .filter(consent::Column::Status.eq(ConsentStatus::Pending))
        .filter(consent::Column::RevokedAt.is_null())
        .exec(db)
        .await?;
    Ok(if res.rows_affected == 1 {
        LinkConfirmation::Confirmed
    } else {
        LinkConfirmation::NotPending
    })
}

/// [`opted_out`], not counting `pending_id` itself as the latest consent
/// (a pending consent is newer than the revoked one it would replace).
async fn opted_out_besides(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    purpose: Option<&Purpose>,
    pending_id: &str,
) -> Result<Option<OptedOut>, sea_orm::DbErr> {
    if let Some(o) = opted_out(db, contact_id, channel, purpose).await? {
        return Ok(Some(o));
    }
    // The latest consent (for the purpose) other than the pending ones: a
    // revocation there still stands (a pending claim does not undo it).
    let mut settled = consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()));
    if let Some(p) = purpose {
        settled = settled.filter(super::reading::covering_purpose(p));
    }
    let latest_settled = settled
        .filter(consent::Column::Id.ne(pending_id))
        .filter(
            Condition::any()
                .add(consent::Column::Status.ne(ConsentStatus::Pending))
                .add(consent::Column::RevokedAt.is_not_null()),
        )
        .order_by_desc(consent::Column::CreatedAt)
        .order_by_desc(consent::Column::Id)
        .one(db)
        .await?;
    Ok(latest_settled.and_then(|c| revoked(&c)))
}

/// The inbound message an opt-in keyword came in.
#[derive(Debug, Clone)]
pub struct FromNumber<'a> {
    /// The provider's message id: the evidence.
    pub provider_message_id: &'a str,
    pub received_at: DateTime<Utc>,
    /// The keyword as matched (`START`, `YES`, `UNSTOP`).
    pub keyword: &'a str,
    pub body: Option<&'a str>,
}

/// What an opt-in keyword from the person's own number did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NumberOptIn {
    /// Pending consents (a double opt-in, or a claim held for proof) were
    /// confirmed, and any suppression lifted.
    Confirmed,
    /// The person had opted out: the suppression is lifted and a new
    /// consent recorded from their keyword.
    Resubscribed,
    /// Nothing was asked of them and they had not opted out: a "YES" to
    /// nothing is a message, not a consent.
    NothingToConfirm,
}

/// An opt-in keyword (START, UNSTOP, YES) from the contact's own number:
/// the one proof that confirms a pending consent and lifts an opt-out.
/// Records a consent only when one was pending or the person had opted
/// out; otherwise changes nothing.
pub async fn opt_in_from_number(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    from: &FromNumber<'_>,
    now: DateTime<Utc>,
) -> Result<NumberOptIn, sea_orm::DbErr> {
    let opted_out = opted_out(db, contact_id, channel, None).await?;
    let confirmed = consent::Entity::update_many()
        .col_expr(consent::Column::Status, Expr::value(ConsentStatus::Active))
        .col_expr(consent::Column::ConfirmedAt, Expr::value(Some(now)))
        .col_expr(
            consent::Column::Strength,
            Expr::value(Strength::Number.as_str()),
        )
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .filter(consent::Column::Status.eq(ConsentStatus::Pending))
        .filter(consent::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    if confirmed == 0 && opted_out.is_none() {
        return Ok(NumberOptIn::NothingToConfirm);
    }
    lift(db, contact_id, channel, from.provider_message_id, now).await?;
    // A confirmed pending consent is newer than any revocation. Otherwise
    // (or if a revocation is still the latest) the keyword is the consent,
    // for each purpose it resumes.
    let evidence = ConsentEvidence {
        captured_at: Some(from.received_at),
        inbound_message_id: Some(from.provider_message_id.to_string()),
        consent_text_version: Some(format!("keyword:{}", from.keyword)),
        consent_text: from.body.map(str::to_string),
        ..Default::default()
    };
    for purpose in resumed_purposes(db, contact_id, channel).await? {
        insert_consent(
            db,
            contact_id,
            channel,
            purpose.as_deref(),
            ConsentSource::Keyword,
            &evidence,
            "inbound",
            ConsentStatus::Active,
            Strength::Number,
            now,
        )
        .await
        .map_err(|e| match e {
            ContactError::Db(d) => d,
            other => sea_orm::DbErr::Custom(other.to_string()),
        })?;
    }
    Ok(if confirmed > 0 {
        NumberOptIn::Confirmed
    } else {
        NumberOptIn::Resubscribed
    })
}

/// The purposes a START from the number resumes: each purpose (`None`:
/// a consent recorded before purposes) whose latest consent on the channel
/// is revoked; with no consent at all, every non-marketing purpose
/// (marketing needs an opt-in that names it).
async fn resumed_purposes(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
) -> Result<Vec<Option<String>>, sea_orm::DbErr> {
    let rows = consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .order_by_desc(consent::Column::CreatedAt)
        .order_by_desc(consent::Column::Id)
        .all(db)
        .await?;
    if rows.is_empty() {
        return Ok(super::purposes::list(db)
            .await?
            .into_iter()
            .filter(|p| !p.marketing)
            .map(|p| Some(p.name))
            .collect());
    }
    let mut seen: Vec<Option<String>> = Vec::new();
    let mut resumed = Vec::new();
    for c in rows {
        if seen.contains(&c.purpose) {
            continue;
        }
        seen.push(c.purpose.clone());
        if consent_status(&c) == ConsentStatus::Revoked {
            resumed.push(c.purpose);
        }
    }
    Ok(resumed)
}

/// Lift the contact's suppressions that cover the channel (on it, or on
/// every channel) with the inbound message from the number that proves it.
async fn lift(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    inbound_ref: &str,
    now: DateTime<Utc>,
) -> Result<u64, sea_orm::DbErr> {
    let res = suppression::Entity::update_many()
        .col_expr(suppression::Column::LiftedAt, Expr::value(Some(now)))
        .col_expr(
            suppression::Column::LiftedBy,
            Expr::value(Some("inbound keyword from the number")),
        )
        .col_expr(
            suppression::Column::LiftRef,
            Expr::value(Some(inbound_ref.to_string())),
        )
        .filter(covering(contact_id, channel))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

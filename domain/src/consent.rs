//! The consent ledger: the one module that changes a person's consents and
//! suppressions. Every transition is a function here, and each records its
//! evidence and how strong that evidence is ([`Strength`]).
//!
//! | from | event | evidence required | to |
//! |---|---|---|---|
//! | no consent | form / QR, single opt-in | IP, user agent, page, consent text version | active (`declared`) |
//! | no consent | form / QR, double opt-in | the same | pending (`declared`), confirmation sent |
//! | no consent | API, import, staff | consent text version and how it was given | active (`attested`), or pending when asked |
//! | pending | YES / START from the number | the inbound message | active (`number`) |
//! | pending | confirmation link | the token sent to the number | active (`confirmed`) |
//! | opted out | form, QR, API, import, staff | as above | unchanged; the claim is kept as a pending consent that only the number can confirm (`needs proof from the number`) |
//! | opted out | START / UNSTOP / YES from the number | the inbound message | suppression lifted (`lift_ref`), consent active (`number`) |
//! | no consent, nothing pending | YES / START from the number | the inbound message | unchanged (stored as a message, nothing more) |
//! | any | STOP (or a revocation keyword) from the number | the inbound message | consents revoked, suppressed |
//! | any | provider opt-out (21610, 63014) | the provider's code | consents revoked, suppressed |
//! | any | Meta 131050 (user stopped marketing) | the provider's code | marketing suppressed (utility still goes) |
//! | any | staff or API suppression / revocation | who, and why | consents revoked, suppressed |
//!
//! "Opted out" means an active suppression on the channel (or on every
//! channel), or a latest consent that was revoked. Nothing but proof from
//! the person's own number lifts it: not a form (anyone can type anyone's
//! number), not an API call, not an import, not staff.
//!
//! This module must never lift a suppression on anything but an inbound
//! message from the suppressed number, and never change a contact's name
//! or fields (that is [`crate::contacts`]' job, and an anonymous form must
//! not do it at all).

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, EntityTrait, QueryFilter,
    QueryOrder, Set,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::ConsentStatus;
use crate::contacts::ContactError;
use crate::entities::{consent, suppression};
use crate::Core;

// ---------------------------------------------------------------------------
// Types

/// Where a consent came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentSource {
    WebForm,
    Qr,
    Keyword,
    Api,
    Import,
    Staff,
}

impl ConsentSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ConsentSource::WebForm => "web_form",
            ConsentSource::Qr => "qr",
            ConsentSource::Keyword => "keyword",
            ConsentSource::Api => "api",
            ConsentSource::Import => "import",
            ConsentSource::Staff => "staff",
        }
    }
}

/// How strong the proof behind a consent is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strength {
    /// The person's own number said so: an inbound opt-in keyword, or a YES
    /// from the number confirming a pending consent. The only proof that
    /// lifts an opt-out.
    Number,
    /// A double opt-in confirmed through the link that was sent to the number.
    Confirmed,
    /// Typed on a public form or QR page: anyone can type anyone's number.
    Declared,
    /// An API client, an import or a staff member vouches for it, with
    /// their evidence.
    Attested,
}

impl Strength {
    pub const ALL: [Strength; 4] = [
        Strength::Number,
        Strength::Confirmed,
        Strength::Declared,
        Strength::Attested,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Strength::Number => "number",
            Strength::Confirmed => "confirmed",
            Strength::Declared => "declared",
            Strength::Attested => "attested",
        }
    }

    pub fn parse(s: &str) -> Option<Strength> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// The strength of a claim made by `source` through anything but the
    /// person's own number (a form, an API call, an import, staff): a
    /// "keyword" claimed by an API client is still only the client's word.
    fn of_claim(source: ConsentSource) -> Strength {
        match source {
            ConsentSource::WebForm | ConsentSource::Qr => Strength::Declared,
            _ => Strength::Attested,
        }
    }
}

/// The proof behind a consent. What is required depends on the source: a
/// web form needs the IP and user agent; a keyword needs the inbound
/// message id; every source needs the time and the consent text version.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentEvidence {
    pub captured_at: Option<DateTime<Utc>>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub page_url: Option<String>,
    pub form_id: Option<String>,
    pub qr_code: Option<String>,
    pub inbound_message_id: Option<String>,
    pub consent_text_version: Option<String>,
    /// The text the person saw; its SHA-256 is stored with it.
    pub consent_text: Option<String>,
    pub consent_text_hash: Option<String>,
}

impl ConsentEvidence {
    /// Check that the evidence proves what the source claims.
    pub fn validate(&self, source: ConsentSource) -> Result<(), ContactError> {
        let need = |v: &Option<String>, what: &str| -> Result<(), ContactError> {
            match v.as_deref().map(str::trim) {
                Some(s) if !s.is_empty() => Ok(()),
                _ => Err(ContactError::Evidence(format!(
                    "evidence.{what} is required for a {} consent",
                    source.as_str()
                ))),
            }
        };
        let blank = |v: &Option<String>| v.as_deref().unwrap_or("").trim().is_empty();
        match source {
            ConsentSource::WebForm | ConsentSource::Qr => {
                need(&self.ip, "ip")?;
                need(&self.user_agent, "user_agent")?;
                need(&self.consent_text_version, "consent_text_version")?;
            }
            ConsentSource::Keyword => need(&self.inbound_message_id, "inbound_message_id")?,
            ConsentSource::Api | ConsentSource::Import | ConsentSource::Staff => {
                need(&self.consent_text_version, "consent_text_version")?;
                if blank(&self.ip) && blank(&self.inbound_message_id) && blank(&self.page_url) {
                    return Err(ContactError::Evidence(format!(
                        "a {} consent needs evidence of how it was given: evidence.ip (with user_agent), evidence.page_url or evidence.inbound_message_id",
                        source.as_str()
                    )));
                }
                if self.ip.is_some() {
                    need(&self.user_agent, "user_agent")?;
                }
            }
        }
        if let Some(at) = self.captured_at {
            if at > Utc::now() + Duration::minutes(5) {
                return Err(ContactError::Evidence(
                    "evidence.captured_at is in the future".into(),
                ));
            }
        }
        Ok(())
    }
}

pub fn text_hash(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// A consent record as shown (the audit export includes every field).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct ConsentRecord {
    pub id: String,
    pub contact_id: String,
    pub channel: String,
    pub status: String,
    pub source: String,
    /// `number`, `confirmed`, `declared` or `attested` ([`Strength`]).
    pub strength: String,
    pub captured_at: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub page_url: Option<String>,
    pub form_id: Option<String>,
    pub qr_code: Option<String>,
    pub inbound_message_id: Option<String>,
    pub consent_text_version: Option<String>,
    pub consent_text_hash: Option<String>,
    pub consent_text: Option<String>,
    pub recorded_by: String,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub revoked_at: Option<DateTime<Utc>>,
    pub revocation_source: Option<String>,
    pub revocation_ref: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<consent::Model> for ConsentRecord {
    fn from(m: consent::Model) -> Self {
        ConsentRecord {
            id: m.id,
            contact_id: m.contact_id,
            channel: m.channel,
            status: m.status,
            source: m.source,
            strength: m.strength,
            captured_at: m.captured_at,
            ip: m.ip,
            user_agent: m.user_agent,
            page_url: m.page_url,
            form_id: m.form_id,
            qr_code: m.qr_code,
            inbound_message_id: m.inbound_message_id,
            consent_text_version: m.consent_text_version,
            consent_text_hash: m.consent_text_hash,
            consent_text: m.consent_text,
            recorded_by: m.recorded_by,
            confirmed_at: m.confirmed_at,
            revoked_at: m.revoked_at,
            revocation_source: m.revocation_source,
            revocation_ref: m.revocation_ref,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Suppression {
    pub id: String,
    pub channel: String,
    /// `all`, or `marketing` (only marketing templates are stopped).
    pub scope: String,
    pub reason: String,
    pub source_ref: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub lifted_at: Option<DateTime<Utc>>,
    pub lifted_by: Option<String>,
    /// The inbound message from the number that lifted it.
    pub lift_ref: Option<String>,
}

impl From<suppression::Model> for Suppression {
    fn from(m: suppression::Model) -> Self {
        Suppression {
            id: m.id,
            channel: m.channel,
            scope: m.scope,
            reason: m.reason,
            source_ref: m.source_ref,
            created_by: m.created_by,
            created_at: m.created_at,
            lifted_at: m.lifted_at,
            lifted_by: m.lifted_by,
            lift_ref: m.lift_ref,
        }
    }
}

/// What a suppression stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scope {
    /// Everything on the channel.
    All,
    /// Marketing templates only (Meta's 131050: "user stopped marketing").
    Marketing,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::All => "all",
            Scope::Marketing => "marketing",
        }
    }
}

/// Why a contact counts as opted out on a channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptedOut {
    pub reason: String,
    pub since: DateTime<Utc>,
}

// ---------------------------------------------------------------------------
// Reading

/// The consent that decides: the newest record for the contact and channel.
pub async fn current_consent(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
) -> Result<Option<consent::Model>, sea_orm::DbErr> {
    consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .order_by_desc(consent::Column::CreatedAt)
        .order_by_desc(consent::Column::Id)
        .one(db)
        .await
}

pub fn consent_status(m: &consent::Model) -> ConsentStatus {
    status_of(&m.status, m.revoked_at.is_some())
}

/// A consent row's status: revoked (by status or a revocation time),
/// pending, or active.
pub(crate) fn status_of(status: &str, revoked: bool) -> ConsentStatus {
    if revoked || status == "revoked" {
        ConsentStatus::Revoked
    } else if status == "pending" {
        ConsentStatus::Pending
    } else {
        ConsentStatus::Active
    }
}

pub async fn consent_history(
    core: &Core,
    contact_id: &str,
) -> Result<Vec<ConsentRecord>, sea_orm::DbErr> {
    Ok(consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .order_by_desc(consent::Column::CreatedAt)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(ConsentRecord::from)
        .collect())
}

/// Active suppressions that cover `channel`: on it or on every channel.
fn covering(contact_id: &str, channel: Channel) -> Condition {
    Condition::all()
        .add(suppression::Column::ContactId.eq(contact_id))
        .add(suppression::Column::Channel.is_in([channel.as_str(), "all"]))
        .add(suppression::Column::LiftedAt.is_null())
}

/// The oldest active suppression that stops everything on the channel.
pub async fn active_suppression(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
) -> Result<Option<suppression::Model>, sea_orm::DbErr> {
    suppression::Entity::find()
        .filter(covering(contact_id, channel))
        .filter(suppression::Column::Scope.eq(Scope::All.as_str()))
        .order_by_asc(suppression::Column::CreatedAt)
        .one(db)
        .await
}

pub async fn suppressions(
    core: &Core,
    contact_id: &str,
) -> Result<Vec<Suppression>, sea_orm::DbErr> {
    Ok(suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .order_by_desc(suppression::Column::CreatedAt)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(Suppression::from)
        .collect())
}

/// Has the contact opted out on the channel: an active suppression that
/// stops everything there, or a latest consent that was revoked?
pub async fn opted_out(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
) -> Result<Option<OptedOut>, sea_orm::DbErr> {
    if let Some(s) = active_suppression(db, contact_id, channel).await? {
        return Ok(Some(OptedOut {
            reason: match s.source_ref {
                Some(r) => format!("{} ({r})", s.reason),
                None => s.reason,
            },
            since: s.created_at,
        }));
    }
    Ok(current_consent(db, contact_id, channel)
        .await?
        .and_then(|c| revoked(&c)))
}

/// A revoked consent as the opt-out it stands for.
fn revoked(c: &consent::Model) -> Option<OptedOut> {
    (consent_status(c) == ConsentStatus::Revoked).then(|| OptedOut {
        reason: format!(
            "consent revoked ({})",
            c.revocation_source.as_deref().unwrap_or("unknown")
        ),
        since: c.revoked_at.unwrap_or(c.created_at),
    })
}

// ---------------------------------------------------------------------------
// Opting in

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
    source: ConsentSource,
    evidence: &ConsentEvidence,
    recorded_by: &str,
    pending: bool,
    now: DateTime<Utc>,
) -> Result<OptInOutcome, ContactError> {
    evidence.validate(source)?;
    let opted_out = opted_out(db, contact_id, channel).await?;
    let strength = Strength::of_claim(source);
    let record = insert_consent(
        db,
        contact_id,
        channel,
        source,
        evidence,
        recorded_by,
        if pending || opted_out.is_some() {
            "pending"
        } else {
            "active"
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

/// The consent a staff member records with a new contact: they vouch for it
/// (`attested`), with the evidence the API requires of them.
#[derive(Debug, Clone, PartialEq)]
pub struct StaffOptIn {
    pub channel: Channel,
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
) -> Result<(crate::contacts::Contact, Option<OptInOutcome>), NewContactError> {
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
    let outcome = match opt_in {
        Some(o) => Some(
            record_opt_in(
                &txn,
                &contact.id,
                o.channel,
                ConsentSource::Staff,
                &o.evidence,
                actor,
                o.pending,
                now,
            )
            .await?,
        ),
        None => None,
    };
    txn.commit().await?;
    Ok((contact.into(), outcome))
}

#[allow(clippy::too_many_arguments)]
async fn insert_consent(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    source: ConsentSource,
    evidence: &ConsentEvidence,
    recorded_by: &str,
    status: &str,
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
        status: Set(status.to_string()),
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
    if let Some(o) = opted_out_besides(db, &c.contact_id, channel, &c.id).await? {
        return Ok(LinkConfirmation::OptedOut(o));
    }
    let res = consent::Entity::update_many()
        .col_expr(consent::Column::Status, Expr::value("active"))
        .col_expr(consent::Column::ConfirmedAt, Expr::value(Some(now)))
        .col_expr(
            consent::Column::Strength,
            Expr::value(Strength::Confirmed.as_str()),
        )
        .filter(consent::Column::Id.eq(&c.id))
        .filter(consent::Column::Status.eq("pending"))
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
    pending_id: &str,
) -> Result<Option<OptedOut>, sea_orm::DbErr> {
    if let Some(o) = opted_out(db, contact_id, channel).await? {
        return Ok(Some(o));
    }
    // The latest consent other than the pending ones: a revocation there
    // still stands (a pending claim does not undo it).
    let latest_settled = consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .filter(consent::Column::Id.ne(pending_id))
        .filter(
            Condition::any()
                .add(consent::Column::Status.ne("pending"))
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
    let opted_out = opted_out(db, contact_id, channel).await?;
    let confirmed = consent::Entity::update_many()
        .col_expr(consent::Column::Status, Expr::value("active"))
        .col_expr(consent::Column::ConfirmedAt, Expr::value(Some(now)))
        .col_expr(
            consent::Column::Strength,
            Expr::value(Strength::Number.as_str()),
        )
        .filter(consent::Column::ContactId.eq(contact_id))
        .filter(consent::Column::Channel.eq(channel.as_str()))
        .filter(consent::Column::Status.eq("pending"))
        .filter(consent::Column::RevokedAt.is_null())
        .exec(db)
        .await?
        .rows_affected;
    if confirmed == 0 && opted_out.is_none() {
        return Ok(NumberOptIn::NothingToConfirm);
    }
    lift(db, contact_id, channel, from.provider_message_id, now).await?;
    // A confirmed pending consent is newer than any revocation. Otherwise
    // (or if a revocation is still the latest) the keyword is the consent.
    let latest = current_consent(db, contact_id, channel).await?;
    let needs_record = latest.is_none_or(|c| consent_status(&c) != ConsentStatus::Active);
    if needs_record {
        let evidence = ConsentEvidence {
            captured_at: Some(from.received_at),
            inbound_message_id: Some(from.provider_message_id.to_string()),
            consent_text_version: Some(format!("keyword:{}", from.keyword)),
            consent_text: from.body.map(str::to_string),
            ..Default::default()
        };
        insert_consent(
            db,
            contact_id,
            channel,
            ConsentSource::Keyword,
            &evidence,
            "inbound",
            "active",
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

// ---------------------------------------------------------------------------
// Opting out

/// Who or what opted the contact out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptOutSource {
    /// A revocation keyword from the number (STOP, ...).
    Keyword,
    /// The provider reported an opt-out (21610, 63014, 131050).
    Provider,
    /// A staff member in the console.
    Staff,
    /// An API client.
    Api,
}

impl OptOutSource {
    pub fn as_str(self) -> &'static str {
        match self {
            OptOutSource::Keyword => "keyword",
            OptOutSource::Provider => "provider",
            OptOutSource::Staff => "staff",
            OptOutSource::Api => "api",
        }
    }
}

/// An opt-out from any origin: every live consent (active or pending) on
/// the channel is revoked and the contact suppressed there, in the
/// caller's transaction, before the caller answers. `channel` `None` is
/// every channel. A [`Scope::Marketing`] opt-out stops marketing
/// templates only and revokes no consent. Returns whether anything
/// changed (a second STOP changes nothing).
#[allow(clippy::too_many_arguments)]
pub async fn opt_out(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Option<Channel>,
    scope: Scope,
    source: OptOutSource,
    reference: Option<&str>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<bool, sea_orm::DbErr> {
    let mut changed = false;
    if scope == Scope::All {
        let mut revoke = consent::Entity::update_many()
            .col_expr(consent::Column::Status, Expr::value("revoked"))
            .col_expr(consent::Column::RevokedAt, Expr::value(Some(now)))
            .col_expr(
                consent::Column::RevocationSource,
                Expr::value(Some(source.as_str())),
            )
            .col_expr(
                consent::Column::RevocationRef,
                Expr::value(reference.map(str::to_string)),
            )
            .filter(consent::Column::ContactId.eq(contact_id))
            .filter(consent::Column::RevokedAt.is_null());
        if let Some(ch) = channel {
            revoke = revoke.filter(consent::Column::Channel.eq(ch.as_str()));
        }
        changed |= revoke.exec(db).await?.rows_affected > 0;
    }
    let channel_name = channel.map(|c| c.as_str()).unwrap_or("all");
    let mut existing = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .filter(suppression::Column::LiftedAt.is_null());
    existing = match channel {
        // Covered by one on this channel or on every channel.
        Some(ch) => existing.filter(suppression::Column::Channel.is_in([ch.as_str(), "all"])),
        None => existing.filter(suppression::Column::Channel.eq("all")),
    };
    if scope == Scope::All {
        existing = existing.filter(suppression::Column::Scope.eq(Scope::All.as_str()));
    }
    if existing.one(db).await?.is_none() {
        suppression::ActiveModel {
            id: Set(new_id()),
            contact_id: Set(contact_id.to_string()),
            channel: Set(channel_name.to_string()),
            scope: Set(scope.as_str().to_string()),
            reason: Set(source.as_str().to_string()),
            source_ref: Set(reference.map(str::to_string)),
            created_by: Set(actor.to_string()),
            created_at: Set(now),
            lifted_at: Set(None),
            lifted_by: Set(None),
            lift_ref: Set(None),
        }
        .insert(db)
        .await?;
        changed = true;
    }
    Ok(changed)
}

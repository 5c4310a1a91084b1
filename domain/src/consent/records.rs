//! The ledger's vocabulary: where a consent came from, how strong its
//! proof is, the evidence itself, and the consent and suppression records
//! as shown.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::compliance::gates::ConsentStatus;
use crate::contacts::ContactError;
use crate::entities::{consent, suppression};

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
    pub(super) fn of_claim(source: ConsentSource) -> Strength {
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
    pub status: ConsentStatus,
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
    /// The purpose it covers; `None`: recorded before purposes existed,
    /// covering the purposes that existed then (the `legacy` ones).
    pub purpose: Option<String>,
}

impl ConsentRecord {
    /// Its status as the gates read it: revoked once it has a revocation
    /// time, whatever its status column says.
    pub fn standing(&self) -> ConsentStatus {
        super::reading::status_of(self.status, self.revoked_at.is_some())
    }
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
            purpose: m.purpose,
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

    /// The scope of a suppression that stops one purpose only (the person
    /// withdrew it): `purpose:<name>`.
    pub fn purpose(name: &str) -> String {
        format!("purpose:{name}")
    }
}

/// Why a contact counts as opted out on a channel.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OptedOut {
    pub reason: String,
    pub since: DateTime<Utc>,
}

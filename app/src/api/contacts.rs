//! Contacts: search, the contact page (consents with evidence, suppressions
//! with their origin, service windows, the message timeline with gate
//! verdicts and status history), and manual suppression.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactRow {
    pub id: String,
    pub phone: String,
    pub name: Option<String>,
    pub tags: Vec<String>,
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    pub attributes: BTreeMap<String, String>,
    pub needs_manual_outreach: bool,
    pub manual_outreach_reason: Option<String>,
    pub created_at: DateTime<Utc>,
    /// The person was erased: this is the shell left (no number, name or
    /// fields; the number is kept only as a keyed hash).
    #[serde(default)]
    pub erased: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConsentView {
    pub channel: String,
    /// The purpose it covers; none: recorded before purposes (covers the
    /// purposes that existed then).
    #[serde(default)]
    pub purpose: Option<String>,
    /// As the gates read it (revoked once it has a revocation time).
    pub status: heimdall_codes::ConsentStatus,
    pub source: String,
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StandingRow {
    pub channel: String,
    /// The purpose (`purposes.name`) a message would be sent for.
    #[serde(default)]
    pub purpose: String,
    /// The latest consent's status as the gates read it; none without one.
    pub consent: Option<heimdall_codes::ConsentStatus>,
    /// The suppression the gates read, if any.
    pub suppression: Option<SuppressionRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuppressionRow {
    pub channel: String,
    /// keyword, provider, api, import or staff.
    pub origin: String,
    pub source_ref: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub lifted_at: Option<DateTime<Utc>>,
    pub active: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowView {
    pub channel: String,
    pub in_window: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_inbound: Option<DateTime<Utc>>,
    pub seconds_remaining: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerdictRow {
    pub gate: String,
    /// pass, block, defer or not_applicable.
    pub verdict: String,
    pub detail: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRow {
    pub kind: String,
    pub stage: String,
    pub decision: String,
    pub reason_code: Option<String>,
    pub error_code: Option<i32>,
    pub detail: Option<String>,
    pub actor: String,
    pub at: DateTime<Utc>,
    pub verdicts: Vec<VerdictRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusRow {
    pub status: String,
    pub error_code: Option<i32>,
    pub source: String,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MessageRow {
    pub id: String,
    pub channel: String,
    pub kind: String,
    pub template_name: Option<String>,
    pub body: Option<String>,
    pub source: heimdall_codes::MessageSource,
    pub campaign_id: Option<String>,
    pub actor: String,
    pub state: heimdall_codes::MessageState,
    pub block_reason: Option<String>,
    pub error_code: Option<i32>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub evaluations: Vec<EvaluationRow>,
    pub status_history: Vec<StatusRow>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContactView {
    pub contact: ContactRow,
    /// WhatsApp, then SMS: what the gates read (the server's answer; the
    /// page never works it out again).
    pub standing: Vec<StandingRow>,
    pub consents: Vec<ConsentView>,
    pub suppressions: Vec<SuppressionRow>,
    pub windows: Vec<WindowView>,
    pub messages: Vec<MessageRow>,
}

#[cfg(feature = "ssr")]
pub(crate) mod ssr {
    use super::*;
    use heimdall_domain::contacts::{Contact, WindowState};
    use heimdall_domain::sending::outbound::MessageView;

    /// The contact, 404 when there is none; a database outage stays an outage (500),
    /// never "not found".
    pub async fn existing_contact(ctx: &crate::server::Ctx, id: &str) -> Result<Contact, AppError> {
        use heimdall_domain::contacts::ContactError;
        heimdall_domain::contacts::get(ctx.core(), id)
            .await
            .map_err(|e| match e {
                ContactError::NotFound(_) => AppError::NotFound("No contact with that id.".into()),
                other => crate::server::internal(other),
            })
    }

    pub fn contact_row(c: Contact) -> ContactRow {
        ContactRow {
            erased: heimdall_domain::contacts::is_erased(&c.phone),
            id: c.id,
            phone: c.phone,
            name: c.name,
            tags: c.tags,
            time_zone: c.time_zone.or(c.time_zone_inferred),
            locale: c.locale,
            attributes: c.attributes,
            needs_manual_outreach: c.needs_manual_outreach,
            manual_outreach_reason: c.manual_outreach_reason,
            created_at: c.created_at,
        }
    }

    pub fn suppression_row(s: heimdall_domain::reports::SuppressionView) -> SuppressionRow {
        SuppressionRow {
            channel: s.suppression.channel,
            origin: s.origin,
            source_ref: s.suppression.source_ref,
            created_by: s.suppression.created_by,
            created_at: s.suppression.created_at,
            lifted_at: s.suppression.lifted_at,
            active: s.active,
        }
    }

    pub fn window_view(channel: String, w: WindowState) -> WindowView {
        WindowView {
            channel,
            in_window: w.in_window,
            expires_at: w.expires_at,
            last_inbound: w.last_inbound,
            seconds_remaining: w.seconds_remaining,
        }
    }

    /// Every gate's verdict from the stored JSON array.
    pub fn verdicts(v: &serde_json::Value) -> Vec<VerdictRow> {
        v.as_array()
            .map(|arr| {
                arr.iter()
                    .map(|x| VerdictRow {
                        gate: x
                            .get("gate")
                            .and_then(|g| g.as_str())
                            .unwrap_or("?")
                            .to_string(),
                        verdict: x
                            .get("verdict")
                            .and_then(|g| g.as_str())
                            .unwrap_or("?")
                            .to_string(),
                        detail: x
                            .get("detail")
                            .and_then(|g| g.as_str())
                            .unwrap_or("")
                            .to_string(),
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn message_row(m: MessageView) -> MessageRow {
        MessageRow {
            evaluations: m
                .evaluations
                .into_iter()
                .map(|e| EvaluationRow {
                    verdicts: verdicts(&e.verdicts),
                    kind: e.kind,
                    stage: e.stage,
                    decision: e.decision,
                    reason_code: e.reason_code,
                    error_code: e.error_code,
                    detail: e.detail,
                    actor: e.actor,
                    at: e.at,
                })
                .collect(),
            status_history: m
                .status_history
                .into_iter()
                .map(|s| StatusRow {
                    status: s.status,
                    error_code: s.error_code,
                    source: s.source,
                    at: s.at,
                })
                .collect(),
            id: m.id,
            channel: m.channel,
            kind: m.kind,
            template_name: m.template_name,
            body: m.body,
            source: m.source,
            campaign_id: m.campaign_id,
            actor: m.actor,
            state: m.state,
            block_reason: m.block_reason,
            error_code: m.error_code,
            error_message: m.error_message,
            created_at: m.created_at,
        }
    }
}

#[server(prefix = "/_sf", endpoint = "contacts_search")]
pub async fn contacts_search(q: Option<String>) -> Result<Vec<ContactRow>, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let q = q.unwrap_or_default();
            if q.chars().count() > 100 {
                return Err(AppError::invalid("q", "Search for at most 100 characters."));
            }
            Ok(heimdall_domain::contacts::search(ctx.core(), &q, 100)
                .await
                .map_err(internal)?
                .into_iter()
                .map(ssr::contact_row)
                .collect())
        }
        .await,
    )
}

#[server(prefix = "/_sf", endpoint = "contact_detail")]
pub async fn contact_detail(id: String) -> Result<ContactView, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let id = check_id(&id, "contact")?;
            ssr::existing_contact(&ctx, &id).await?;
            let t = heimdall_domain::reports::contact_timeline(ctx.core(), &id)
                .await
                .map_err(internal)?;
            Ok(ContactView {
                contact: ssr::contact_row(t.contact),
                standing: t
                    .standing
                    .into_iter()
                    .map(|s| StandingRow {
                        channel: s.channel.to_string(),
                        purpose: s.purpose,
                        consent: s.consent,
                        suppression: s.suppression.map(ssr::suppression_row),
                    })
                    .collect(),
                consents: t
                    .consents
                    .into_iter()
                    .map(|c| ConsentView {
                        status: c.standing(),
                        purpose: c.purpose.clone(),
                        channel: c.channel,
                        source: c.source,
                        captured_at: c.captured_at,
                        ip: c.ip,
                        user_agent: c.user_agent,
                        page_url: c.page_url,
                        form_id: c.form_id,
                        qr_code: c.qr_code,
                        inbound_message_id: c.inbound_message_id,
                        consent_text_version: c.consent_text_version,
                        consent_text_hash: c.consent_text_hash,
                        consent_text: c.consent_text,
                        recorded_by: c.recorded_by,
                        confirmed_at: c.confirmed_at,
                        revoked_at: c.revoked_at,
                        revocation_source: c.revocation_source,
                        revocation_ref: c.revocation_ref,
                    })
                    .collect(),
                suppressions: t
                    .suppressions
                    .into_iter()
                    .map(ssr::suppression_row)
                    .collect(),
                windows: t
                    .windows
                    .into_iter()
                    .map(|w| ssr::window_view(w.channel.to_string(), w.window))
                    .collect(),
                messages: {
                    let names = staff_names(ctx.core()).await?;
                    t.messages
                        .into_iter()
                        .map(ssr::message_row)
                        .map(|mut m| {
                            m.actor = actor_label(&names, m.actor);
                            for e in &mut m.evaluations {
                                e.actor = actor_label(&names, std::mem::take(&mut e.actor));
                            }
                            m
                        })
                        .collect()
                },
            })
        }
        .await,
    )
}

/// Suppress a contact by hand (one channel or all): their consents there
/// are revoked and nothing more is sent until the person themselves sends
/// START from their number.
#[server(prefix = "/_sf", endpoint = "contact_suppress")]
pub async fn contact_suppress(
    #[server(default)] csrf: String,
    id: String,
    channel: String,
    note: String,
) -> Result<(), AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let id = check_id(&id, "contact")?;
            ssr::existing_contact(&ctx, &id).await?;
            let channel = match channel.as_str() {
                "all" => None,
                other => Some(other.parse::<heimdall_domain::Channel>().map_err(|_| {
                    AppError::invalid("channel", "Choose WhatsApp, SMS or every channel.")
                })?),
            };
            let note = required("note", "A note saying why", &note, 500)?;
            heimdall_domain::consent::opt_out(
                &ctx.core().db.conn,
                &id,
                channel,
                heimdall_domain::consent::Scope::All,
                heimdall_domain::consent::OptOutSource::Staff,
                Some(&note),
                &ctx.actor(),
                ctx.core().now(),
            )
            .await
            .map_err(internal)?;
            ctx.audit(
                "contact_suppressed",
                Some(&format!("contact:{id}")),
                Some(serde_json::json!({
                    "channel": channel.map(|c| c.as_str()).unwrap_or("all"),
                    "note": note,
                })),
            )
            .await
        }
        .await,
    )
}

/// Erase a person (admins only): their personal data is erased and only a
/// keyed hash of their number is kept, in the tombstone that keeps their
/// opt-out in force (`heimdall_domain::privacy::erase`, which writes the
/// staff audit row). A reason and the confirmation are required.
#[server(prefix = "/_sf", endpoint = "contact_erase")]
pub async fn contact_erase(
    #[server(default)] csrf: String,
    id: String,
    #[server(default)] reason: String,
    #[server(default)] confirm: Option<String>,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::privacy::ErasureError;
    respond(
        async move {
            let ctx = mutation(Role::Admin, &csrf).await?;
            let id = check_id(&id, "contact")?;
            let reason = required("reason", "A reason", &reason, 500)?;
            if confirm.as_deref() != Some("on") {
                return Err(AppError::invalid(
                    "confirm",
                    "Tick the box to confirm: an erasure cannot be undone.",
                ));
            }
            match heimdall_domain::privacy::erase(ctx.core(), &id, &reason, &ctx.actor()).await {
                Ok(_) => Ok(()),
                Err(e @ ErasureError::NoReason) => Err(AppError::invalid("reason", e.to_string())),
                Err(ErasureError::NotFound(_)) => {
                    Err(AppError::NotFound("No contact with that id.".into()))
                }
                Err(
                    e @ (ErasureError::AlreadyErased(_)
                    | ErasureError::NoKey
                    | ErasureError::KeyChanged),
                ) => Err(AppError::Conflict(e.to_string())),
                Err(e) => Err(internal(e)),
            }
        }
        .await,
    )
}

/// Split "a, b" into tags.
#[cfg(feature = "ssr")]
fn tag_list(tags: &str) -> Vec<String> {
    tags.split(',')
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect()
}

/// Fields as `name=value`, one per line; a line without `=` is refused (with its number).
#[cfg(feature = "ssr")]
fn field_lines(text: &str) -> Result<BTreeMap<String, String>, AppError> {
    let mut out = BTreeMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        match line.split_once('=') {
            Some((k, v)) if !k.trim().is_empty() && k.trim().len() <= 100 && v.len() <= 1000 => {
                out.insert(k.trim().to_string(), v.trim().to_string());
            }
            _ => {
                return Err(AppError::invalid(
                    "fields",
                    format!("Line {}: write each field as name=value.", i + 1),
                ))
            }
        }
    }
    if out.len() > 50 {
        return Err(AppError::invalid("fields", "At most 50 fields."));
    }
    Ok(out)
}

/// Add a contact (operator), optionally with the consent a staff member vouches for and
/// its evidence (the same evidence the API requires of a staff source). Bad evidence
/// records nothing; an existing number is refused with a link, never changed. Goes to
/// the new contact's page.
#[server(prefix = "/_sf", endpoint = "contact_create")]
#[allow(clippy::too_many_arguments)]
pub async fn contact_create(
    #[server(default)] csrf: String,
    phone: String,
    #[server(default)] name: String,
    #[server(default)] tags: String,
    #[server(default)] time_zone: String,
    /// `whatsapp`, `sms` or empty (no consent recorded now).
    #[server(default)]
    consent_channel: String,
    #[server(default)] consent_text_version: String,
    #[server(default)] consent_text: String,
    #[server(default)] page_url: String,
    #[server(default)] ip: String,
    #[server(default)] user_agent: String,
    #[server(default)] pending: Option<String>,
    /// The purposes the consent covers, by name (separated by spaces or
    /// commas); empty: every purpose defined.
    #[server(default)]
    purposes: String,
) -> Result<String, AppError> {
    use crate::server::*;
    use heimdall_domain::consent::{self, ConsentEvidence, NewContactError, StaffOptIn};
    use heimdall_domain::contacts::{ContactError, ContactInput};
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let phone = required("phone", "A phone number", &phone, 40)?;
            if name.chars().count() > 200 {
                return Err(AppError::invalid("name", "At most 200 characters."));
            }
            let opt_in = match consent_channel.trim() {
                "" => None,
                other => {
                    let channel = other.parse::<heimdall_domain::Channel>().map_err(|_| {
                        AppError::invalid("consent_channel", "Choose WhatsApp, SMS or no consent.")
                    })?;
                    let version = required(
                        "consent_text_version",
                        "The consent text version",
                        &consent_text_version,
                        100,
                    )?;
                    let page_url = optional(Some(page_url));
                    if let Some(u) = &page_url {
                        let web = u.starts_with("https://") || u.starts_with("http://");
                        if !web || u.len() > 2000 || u.chars().any(char::is_whitespace) {
                            return Err(AppError::invalid(
                                "page_url",
                                "Give a full link such as https://example.com/signed-form.pdf.",
                            ));
                        }
                    }
                    let ip = optional(Some(ip));
                    if let Some(a) = &ip {
                        if a.parse::<std::net::IpAddr>().is_err() {
                            return Err(AppError::invalid("ip", "Give an IPv4 or IPv6 address."));
                        }
                    }
                    let user_agent = optional(Some(user_agent));
                    if ip.is_some() && user_agent.is_none() {
                        return Err(AppError::invalid(
                            "user_agent",
                            "With an IP address, give the browser's user agent too.",
                        ));
                    }
                    if ip.is_none() && page_url.is_none() {
                        return Err(AppError::invalid(
                            "page_url",
                            "Say how the consent was given: a link to the proof (signed form, recording, page), or the IP address and user agent of the page where they agreed.",
                        ));
                    }
                    Some(StaffOptIn {
                        channel,
                        purposes: heimdall_domain::consent::purposes::parse_list(&purposes),
                        evidence: ConsentEvidence {
                            ip,
                            user_agent,
                            page_url,
                            consent_text_version: Some(version),
                            consent_text: optional(Some(consent_text)),
                            ..Default::default()
                        },
                        pending: pending.is_some(),
                    })
                }
            };
            let input = ContactInput {
                phone,
                name: optional(Some(name)),
                time_zone: optional(Some(time_zone)),
                tags: tag_list(&tags),
                ..Default::default()
            };
            let (contact, outcome) =
                consent::create_contact_with_opt_in(ctx.core(), &input, opt_in.as_ref(), &ctx.actor())
                    .await
                    .map_err(|e| match e {
                        NewContactError::Exists { id, phone } => AppError::invalid(
                            "phone",
                            format!("A contact with {phone} already exists: /contacts/{id}"),
                        ),
                        NewContactError::Contact(ContactError::Phone(e)) => {
                            AppError::invalid("phone", capitalise(&e.to_string()))
                        }
                        NewContactError::Contact(ContactError::TimeZone(_)) => AppError::invalid(
                            "time_zone",
                            "Use an IANA time zone such as Europe/Oslo.",
                        ),
                        NewContactError::Contact(ContactError::Evidence(m)) => {
                            AppError::invalid("consent_text_version", capitalise(&m))
                        }
                        NewContactError::Contact(e) => internal(e),
                    })?;
            ctx.audit(
                "contact_created",
                Some(&format!("contact:{}", contact.id)),
                Some(serde_json::json!({
                    "phone": contact.phone,
                    "consent": outcome.iter().map(|o| serde_json::json!({
                        "channel": o.consent().channel,
                        "purpose": o.consent().purpose,
                        "status": o.consent().status,
                        "consent_text_version": o.consent().consent_text_version,
                    })).collect::<Vec<_>>(),
                })),
            )
            .await?;
            leptos_actix::redirect(&format!("/contacts/{}", contact.id));
            Ok(contact.id)
        }
        .await,
    )
}

/// Change a contact's name, tags, time zone and fields (operator); the number stays.
#[server(prefix = "/_sf", endpoint = "contact_edit")]
pub async fn contact_edit(
    #[server(default)] csrf: String,
    id: String,
    #[server(default)] name: String,
    #[server(default)] tags: String,
    #[server(default)] time_zone: String,
    #[server(default)] fields: String,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::contacts::{ContactEdit, ContactError};
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let id = check_id(&id, "contact")?;
            if name.chars().count() > 200 {
                return Err(AppError::invalid("name", "At most 200 characters."));
            }
            let edit = ContactEdit {
                name: optional(Some(name)),
                time_zone: optional(Some(time_zone)),
                tags: tag_list(&tags),
                attributes: field_lines(&fields)?,
            };
            let c = heimdall_domain::contacts::edit(ctx.core(), &id, &edit)
                .await
                .map_err(|e| match e {
                    ContactError::NotFound(_) => {
                        AppError::NotFound("No contact with that id.".into())
                    }
                    ContactError::TimeZone(_) => {
                        AppError::invalid("time_zone", "Use an IANA time zone such as Europe/Oslo.")
                    }
                    other => internal(other),
                })?;
            ctx.audit(
                "contact_edited",
                Some(&format!("contact:{id}")),
                Some(serde_json::json!({
                    "name": c.name,
                    "tags": c.tags,
                    "time_zone": c.time_zone,
                    "fields": c.attributes,
                })),
            )
            .await
        }
        .await,
    )
}

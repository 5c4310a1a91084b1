//! Public opt-in: the forms staff define, their versioned consent texts, the
//! QR codes that lead to them, submissions that record one consent per
//! ticked channel with its evidence, double opt-in confirmation, and the CSV
//! import and audit export of consent records.
//!
//! What a consent recorded here proves: the exact text the person saw (its
//! version and SHA-256), when, from which address and browser, on which
//! public page, through which form and QR code. A consent is never recorded
//! without the evidence [`ConsentEvidence::validate`] requires, and bad input
//! records nothing at all.
//!
//! This module never sends a message except through [`outbound::accept`]
//! with [`Origin::OptInConfirmation`] (gates and audit first). It knows
//! nothing of HTTP: the server parses a request into a [`SubmissionInput`]
//! and a [`RequestEvidence`] and renders what comes back.
//!
//! For the console, the whole surface is:
//! - forms: [`create_form`], [`update_form`], [`get_form`], [`form_by_slug`],
//!   [`list_forms`] (with [`FormStats`]), [`form_stats`];
//! - consent texts: [`add_consent_text`] (a new version; the old one stays
//!   on record), [`withdraw_channel`], [`consent_text_history`];
//! - QR codes: [`create_qr_code`], [`list_qr_codes`], [`find_qr_code`],
//!   [`qr_svg`], [`qr_png`], [`qr_target_url`], [`whatsapp_link`];
//! - submissions: [`recent_consents`] and the counts in [`form_stats`];
//! - records: [`import_consents`] (per-row report), [`export_consents_json`],
//!   [`export_consents_csv`];
//! - the proxy setting: [`trusted_proxies`], [`set_trusted_proxies`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::message_state::MessageState;
use crate::consent::OptInOutcome;
use crate::contacts::{self, ContactError};

use crate::consent::{ConsentEvidence, ConsentSource};
use crate::entities::{consent, consent_text, contact, optin_form, qr_code, suppression};
use crate::phone::PhoneNumber;
use crate::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use crate::{settings, templates, Core};

/// How long a double opt-in confirmation link works.
pub const CONFIRMATION_TTL: Duration = Duration::days(7);
/// The honeypot's field name: people never see it, form-filling bots do.
pub const HONEYPOT_FIELD: &str = "website";
/// Submissions per address in [`RATE_LIMIT_PERIOD`] (see [`SubmissionLimiter`]).
pub const RATE_LIMIT_MAX: u32 = 5;
/// The period of the per-address submission limit.
pub const RATE_LIMIT_PERIOD: StdDuration = StdDuration::from_secs(600);
/// The `app_settings` key listing the reverse proxies whose
/// `X-Forwarded-For` is believed (a JSON array of IP addresses).
pub const TRUSTED_PROXIES_SETTING: &str = "optin_trusted_proxies";
/// The variables Heimdall can fill in a WhatsApp confirmation template.
pub const CONFIRMATION_TEMPLATE_VARIABLES: &[&str] =
    &["program", "form_title", "confirm_url", "name"];
/// At most this many extra fields on a form.
pub const MAX_FIELDS: usize = 10;
/// At most this many data rows in one CSV import.
pub const MAX_IMPORT_ROWS: usize = 10_000;

const MAX_NAME: usize = 100;
const MAX_FIELD_VALUE: usize = 500;
const MAX_USER_AGENT: usize = 512;
const MAX_CONSENT_TEXT: usize = 2_000;
const MAX_LONG_TEXT: usize = 5_000;
const CODE_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const CODE_LEN: usize = 8;

/// Errors per field: field name to a message a person can act on.
pub type FieldErrors = BTreeMap<String, String>;

fn describe(errors: &FieldErrors) -> String {
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn one_error(field: &str, message: impl Into<String>) -> FieldErrors {
    let mut e = FieldErrors::new();
    e.insert(field.to_string(), message.into());
    e
}

/// What can go wrong managing forms and QR codes.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("{}", describe(.0))]
    Invalid(FieldErrors),
    #[error("a form with the slug '{0}' already exists")]
    SlugTaken(String),
    #[error("no form with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

// ---------------------------------------------------------------------------
// Forms and consent texts

/// An extra field on a form, beyond name and phone. Its value is kept on
/// the contact as the attribute `key`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FormField {
    /// `[a-z][a-z0-9_]*`, at most 32 characters.
    pub key: String,
    /// What the person sees.
    pub label: String,
    #[serde(default)]
    pub required: bool,
}

/// A channel a form offers, with the consent text shown beside its checkbox.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelText {
    pub channel: Channel,
    pub consent_text: String,
}

/// A new form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FormInput {
    /// The address `/optin/{slug}`: lower-case letters, digits and `-`. It
    /// cannot be changed later (printed links must keep working).
    pub slug: String,
    pub title: String,
    /// Plain text; blank lines separate paragraphs.
    #[serde(default)]
    pub intro: String,
    #[serde(default)]
    pub fields: Vec<FormField>,
    /// Plain text shown after a submission; a default when empty.
    #[serde(default)]
    pub thank_you: String,
    /// The channels offered, each with its own unticked checkbox and text.
    pub channels: Vec<ChannelText>,
    /// Keep each consent pending until the person confirms.
    #[serde(default)]
    pub double_opt_in: bool,
    /// The approved template a WhatsApp confirmation goes out as; without
    /// one the confirmation is free text, which the `outside_window` gate
    /// refuses (recorded) unless the person wrote in the last 24 hours.
    #[serde(default)]
    pub whatsapp_confirmation_template: Option<String>,
    /// Default true.
    #[serde(default)]
    pub active: Option<bool>,
}

/// Changes to a form; what is `None` stays as it is.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct FormUpdate {
    pub title: Option<String>,
    pub intro: Option<String>,
    pub fields: Option<Vec<FormField>>,
    pub thank_you: Option<String>,
    pub double_opt_in: Option<bool>,
    /// An empty string clears it.
    pub whatsapp_confirmation_template: Option<String>,
    pub active: Option<bool>,
    /// When given, exactly the channels offered: a changed text becomes a
    /// new version, an unchanged one stays, a channel left out is withdrawn.
    pub channels: Option<Vec<ChannelText>>,
}

/// One version of a consent text.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConsentTextVersion {
    pub id: String,
    pub form_id: String,
    pub channel: Channel,
    pub version: i32,
    /// What consents record as `consent_text_version`: `whatsapp:v2`.
    pub label: String,
    pub text: String,
    /// SHA-256 of `text`, hex.
    pub hash: String,
    /// The version shown now (at most one per form and channel).
    pub current: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl ConsentTextVersion {
    fn from_model(m: consent_text::Model) -> Option<Self> {
        let channel: Channel = m.channel.parse().ok()?;
        Some(ConsentTextVersion {
            label: version_label(channel, m.version),
            id: m.id,
            form_id: m.form_id,
            channel,
            version: m.version,
            text: m.text,
            hash: m.hash,
            current: m.current,
            created_by: m.created_by,
            created_at: m.created_at,
        })
    }
}

/// The `consent_text_version` recorded with a consent.
pub fn version_label(channel: Channel, version: i32) -> String {
    format!("{}:v{version}", channel.as_str())
}

/// A form as the console and the public page see it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Form {
    pub id: String,
    pub slug: String,
    pub title: String,
    pub intro: String,
    pub fields: Vec<FormField>,
    pub thank_you: String,
    pub double_opt_in: bool,
    pub whatsapp_confirmation_template: Option<String>,
    pub active: bool,
    /// The channels offered now (WhatsApp first), each with its current text.
    pub channels: Vec<ConsentTextVersion>,
    /// `<public URL>/optin/<slug>`
    pub url: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Form {
    /// The current consent text of a channel the form offers.
    pub fn offer(&self, channel: Channel) -> Option<&ConsentTextVersion> {
        self.channels.iter().find(|c| c.channel == channel)
    }
}

/// Counts for the console's form list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FormStats {
    pub form_id: String,
    /// Per channel offered now or ever consented to.
    pub channels: Vec<ChannelCounts>,
    /// Distinct contacts with a consent through this form.
    pub contacts: u64,
    pub qr_codes: Vec<QrStats>,
    pub last_submission_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChannelCounts {
    pub channel: String,
    pub active: u64,
    pub pending: u64,
    pub revoked: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QrStats {
    pub code: String,
    pub source_label: String,
    pub scans: i64,
    /// Consents (any status) recorded through this code.
    pub consents: u64,
}

/// A form with its counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FormSummary {
    pub form: Form,
    pub stats: FormStats,
}

/// `<public URL><path>`, for links in messages, evidence and QR codes.
pub fn public_url(core: &Core, path: &str) -> String {
    format!(
        "{}{path}",
        core.settings.public_base().as_str().trim_end_matches('/')
    )
}

fn clean(s: &str) -> String {
    s.trim().replace("\r\n", "\n")
}

fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

fn check_text(
    errors: &mut FieldErrors,
    field: &str,
    value: &str,
    required: bool,
    max: usize,
    what: &str,
) {
    let n = value.chars().count();
    if required && value.trim().is_empty() {
        errors.insert(field.into(), format!("{what} must not be empty"));
    } else if n > max {
        errors.insert(
            field.into(),
            format!("{what} must be at most {max} characters"),
        );
    } else if has_control(value) {
        errors.insert(
            field.into(),
            format!("{what} must not contain control characters"),
        );
    }
}

/// Normalise and check a slug.
pub fn parse_slug(input: &str) -> Result<String, String> {
    let slug = input.trim().to_ascii_lowercase();
    let ok_chars = slug
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if slug.len() < 2 || slug.len() > 64 || !ok_chars {
        return Err(
            "use 2 to 64 lower-case letters, digits and hyphens, like 'spring-open-house'".into(),
        );
    }
    if slug.starts_with('-') || slug.ends_with('-') || slug.contains("--") {
        return Err("a slug must not start or end with a hyphen or repeat one".into());
    }
    if ["confirm", "assets", "new"].contains(&slug.as_str()) {
        return Err(format!("'{slug}' is reserved"));
    }
    Ok(slug)
}

fn check_fields(errors: &mut FieldErrors, fields: &[FormField]) -> Vec<FormField> {
    if fields.len() > MAX_FIELDS {
        errors.insert(
            "fields".into(),
            format!("at most {MAX_FIELDS} extra fields"),
        );
        return vec![];
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for (i, f) in fields.iter().enumerate() {
        let key = f.key.trim().to_ascii_lowercase();
        let valid_key = !key.is_empty()
            && key.len() <= 32
            && key.starts_with(|c: char| c.is_ascii_lowercase())
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_key {
            errors.insert(
                format!("fields[{i}].key"),
                "use a lower-case letter, then letters, digits or _ (at most 32)".into(),
            );
            continue;
        }
        if ["name", "phone", "channel", HONEYPOT_FIELD].contains(&key.as_str()) {
            errors.insert(
                format!("fields[{i}].key"),
                format!("'{key}' is built in or reserved"),
            );
            continue;
        }
        if !seen.insert(key.clone()) {
            errors.insert(format!("fields[{i}].key"), format!("'{key}' appears twice"));
            continue;
        }
        let label = clean(&f.label);
        check_text(
            errors,
            &format!("fields[{i}].label"),
            &label,
            true,
            80,
            "the label",
        );
        out.push(FormField {
            key,
            label,
            required: f.required,
        });
    }
    out
}

fn check_channels(errors: &mut FieldErrors, channels: &[ChannelText]) -> Vec<(Channel, String)> {
    if channels.is_empty() {
        errors.insert(
            "channels".into(),
            "offer at least one channel (whatsapp or sms) with its consent text".into(),
        );
    }
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for c in channels {
        let field = format!("channels.{}", c.channel.as_str());
        if !seen.insert(c.channel) {
            errors.insert(field, "this channel is listed twice".into());
            continue;
        }
        let text = clean(&c.consent_text);
        check_text(
            errors,
            &field,
            &text,
            true,
            MAX_CONSENT_TEXT,
            "the consent text",
        );
        out.push((c.channel, text));
    }
    out.sort_by_key(|(c, _)| *c);
    out
}

/// Check a confirmation template against what is registered: it must be
/// able to state how to opt out and use only variables Heimdall can fill.
async fn check_template(
    core: &Core,
    errors: &mut FieldErrors,
    name: Option<&str>,
) -> Result<Option<String>, sea_orm::DbErr> {
    let Some(name) = name
        .map(|n| n.trim().to_lowercase())
        .filter(|n| !n.is_empty())
    else {
        return Ok(None);
    };
    const FIELD: &str = "whatsapp_confirmation_template";
    if name.len() > 512
        || !name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    {
        errors.insert(
            FIELD.into(),
            "a template name is lower-case letters, digits and _".into(),
        );
        return Ok(None);
    }
    if let Some(t) = templates::find_by_name(&core.db.conn, &name).await? {
        let unknown: Vec<&str> = t
            .variables
            .iter()
            .map(String::as_str)
            .filter(|v| !CONFIRMATION_TEMPLATE_VARIABLES.contains(v))
            .collect();
        if !unknown.is_empty() {
            errors.insert(
                FIELD.into(),
                format!(
                    "template '{name}' needs variable(s) Heimdall cannot fill: {}; use {}",
                    unknown.join(", "),
                    CONFIRMATION_TEMPLATE_VARIABLES.join(", ")
                ),
            );
        } else if !t.body.is_empty() && !t.body.to_lowercase().contains("stop") {
            errors.insert(
                FIELD.into(),
                format!("template '{name}' must tell the person how to opt out (reply STOP)"),
            );
        }
    }
    Ok(Some(name))
}

fn parse_fields_json(s: &str) -> Vec<FormField> {
    if let Ok(fields) = serde_json::from_str::<Vec<FormField>>(s) {
        return fields;
    }
    // The schema's first shape: a list of names.
    serde_json::from_str::<Vec<String>>(s)
        .unwrap_or_default()
        .into_iter()
        .map(|k| FormField {
            label: k.clone(),
            key: k,
            required: false,
        })
        .collect()
}

async fn current_texts(
    db: &impl ConnectionTrait,
    form_id: &str,
) -> Result<Vec<ConsentTextVersion>, sea_orm::DbErr> {
    let mut out: Vec<ConsentTextVersion> = consent_text::Entity::find()
        .filter(consent_text::Column::FormId.eq(form_id))
        .filter(consent_text::Column::Current.eq(true))
        .all(db)
        .await?
        .into_iter()
        .filter_map(ConsentTextVersion::from_model)
        .collect();
    out.sort_by_key(|c| c.channel);
    Ok(out)
}

async fn to_form(
    core: &Core,
    db: &impl ConnectionTrait,
    m: optin_form::Model,
) -> Result<Form, sea_orm::DbErr> {
    let channels = current_texts(db, &m.id).await?;
    Ok(Form {
        url: public_url(core, &format!("/optin/{}", m.slug)),
        fields: parse_fields_json(&m.fields),
        id: m.id,
        slug: m.slug,
        title: m.title,
        intro: m.intro,
        thank_you: m.thank_you,
        double_opt_in: m.double_opt_in,
        whatsapp_confirmation_template: m.whatsapp_confirmation_template,
        active: m.active,
        channels,
        created_by: m.created_by,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

/// Add a version of a channel's consent text (inside a transaction), or
/// keep the current one when the text is the same.
async fn put_text(
    db: &impl ConnectionTrait,
    form_id: &str,
    channel: Channel,
    text: &str,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(ConsentTextVersion, bool), sea_orm::DbErr> {
    let all = consent_text::Entity::find()
        .filter(consent_text::Column::FormId.eq(form_id))
        .filter(consent_text::Column::Channel.eq(channel.as_str()))
        .order_by_desc(consent_text::Column::Version)
        .all(db)
        .await?;
    if let Some(cur) = all.iter().find(|t| t.current) {
        if cur.text == text {
            if let Some(v) = ConsentTextVersion::from_model(cur.clone()) {
                return Ok((v, false));
            }
        }
    }
    let version = all.first().map(|t| t.version + 1).unwrap_or(1);
    consent_text::Entity::update_many()
        .col_expr(consent_text::Column::Current, Expr::value(false))
        .filter(consent_text::Column::FormId.eq(form_id))
        .filter(consent_text::Column::Channel.eq(channel.as_str()))
        .exec(db)
        .await?;
    let model = consent_text::ActiveModel {
        id: Set(new_id()),
        form_id: Set(form_id.to_string()),
        channel: Set(channel.as_str().to_string()),
        version: Set(version),
        text: Set(text.to_string()),
        hash: Set(crate::consent::text_hash(text)),
        current: Set(true),
        created_by: Set(actor.to_string()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok((
        ConsentTextVersion::from_model(model).ok_or_else(|| {
            sea_orm::DbErr::Custom("a consent text was stored with an unknown channel".into())
        })?,
        true,
    ))
}

/// Create a form with its channels and their first consent texts.
pub async fn create_form(core: &Core, input: &FormInput, actor: &str) -> Result<Form, FormError> {
    let mut errors = FieldErrors::new();
    let slug = match parse_slug(&input.slug) {
        Ok(s) => s,
        Err(m) => {
            errors.insert("slug".into(), m);
            String::new()
        }
    };
    let title = clean(&input.title);
    check_text(&mut errors, "title", &title, true, 200, "the title");
    let intro = clean(&input.intro);
    check_text(
        &mut errors,
        "intro",
        &intro,
        false,
        MAX_LONG_TEXT,
        "the intro",
    );
    let thank_you = clean(&input.thank_you);
    check_text(
        &mut errors,
        "thank_you",
        &thank_you,
        false,
        MAX_LONG_TEXT,
        "the thank-you text",
    );
    let fields = check_fields(&mut errors, &input.fields);
    let channels = check_channels(&mut errors, &input.channels);
    let template = check_template(
        core,
        &mut errors,
        input.whatsapp_confirmation_template.as_deref(),
    )
    .await?;
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    if optin_form::Entity::find()
        .filter(optin_form::Column::Slug.eq(&slug))
        .one(&core.db.conn)
        .await?
        .is_some()
    {
        return Err(FormError::SlugTaken(slug));
    }
    let now = core.now();
    let id = new_id();
    let txn = core.db.begin_write().await?;
    let inserted = optin_form::ActiveModel {
        id: Set(id.clone()),
        slug: Set(slug.clone()),
        title: Set(title),
        intro: Set(intro),
        fields: Set(serde_json::to_string(&fields).unwrap_or_else(|_| "[]".into())),
        thank_you: Set(if thank_you.is_empty() {
            "Thank you! You're signed up.".into()
        } else {
            thank_you
        }),
        double_opt_in: Set(input.double_opt_in),
        active: Set(input.active.unwrap_or(true)),
        whatsapp_confirmation_template: Set(template),
        created_by: Set(actor.to_string()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await;
    if let Err(e) = inserted {
        txn.rollback().await.ok();
        // Someone created the same slug a moment ago.
        if optin_form::Entity::find()
            .filter(optin_form::Column::Slug.eq(&slug))
            .one(&core.db.conn)
            .await?
            .is_some()
        {
            return Err(FormError::SlugTaken(slug));
        }
        return Err(e.into());
    }
    for (channel, text) in &channels {
        put_text(&txn, &id, *channel, text, actor, now).await?;
    }
    audit::record_staff_action(
        &txn,
        actor,
        "optin_form.create",
        Some(&id),
        Some(serde_json::json!({"slug": slug, "double_opt_in": input.double_opt_in})),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get_form(core, &id).await
}

/// Change a form. Consent texts given in `channels` that differ from the
/// current ones become new versions; earlier versions stay on record.
pub async fn update_form(
    core: &Core,
    form_id: &str,
    update: &FormUpdate,
    actor: &str,
) -> Result<Form, FormError> {
    let existing = optin_form::Entity::find_by_id(form_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| FormError::NotFound(form_id.to_string()))?;
    let mut errors = FieldErrors::new();
    let title = update.title.as_deref().map(clean);
    if let Some(t) = &title {
        check_text(&mut errors, "title", t, true, 200, "the title");
    }
    let intro = update.intro.as_deref().map(clean);
    if let Some(t) = &intro {
        check_text(&mut errors, "intro", t, false, MAX_LONG_TEXT, "the intro");
    }
    let thank_you = update.thank_you.as_deref().map(clean);
    if let Some(t) = &thank_you {
        check_text(
            &mut errors,
            "thank_you",
            t,
            true,
            MAX_LONG_TEXT,
            "the thank-you text",
        );
    }
    let fields = update.fields.as_ref().map(|f| check_fields(&mut errors, f));
    let channels = update
        .channels
        .as_ref()
        .map(|c| check_channels(&mut errors, c));
    let template = match &update.whatsapp_confirmation_template {
        Some(t) => Some(check_template(core, &mut errors, Some(t)).await?),
        None => None,
    };
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let mut am: optin_form::ActiveModel = existing.into();
    if let Some(t) = title {
        am.title = Set(t);
    }
    if let Some(t) = intro {
        am.intro = Set(t);
    }
    if let Some(t) = thank_you {
        am.thank_you = Set(t);
    }
    if let Some(f) = &fields {
        am.fields = Set(serde_json::to_string(f).unwrap_or_else(|_| "[]".into()));
    }
    if let Some(d) = update.double_opt_in {
        am.double_opt_in = Set(d);
    }
    if let Some(a) = update.active {
        am.active = Set(a);
    }
    if let Some(t) = template {
        am.whatsapp_confirmation_template = Set(t);
    }
    am.updated_at = Set(now);
    am.update(&txn).await?;
    let mut new_versions = Vec::new();
    if let Some(channels) = &channels {
        for (channel, text) in channels {
            let (v, created) = put_text(&txn, form_id, *channel, text, actor, now).await?;
            if created {
                new_versions.push(v.label);
            }
        }
        let kept: Vec<&str> = channels.iter().map(|(c, _)| c.as_str()).collect();
        consent_text::Entity::update_many()
            .col_expr(consent_text::Column::Current, Expr::value(false))
            .filter(consent_text::Column::FormId.eq(form_id))
            .filter(consent_text::Column::Channel.is_not_in(kept))
            .exec(&txn)
            .await?;
    }
    audit::record_staff_action(
        &txn,
        actor,
        "optin_form.update",
        Some(form_id),
        Some(serde_json::json!({"new_consent_text_versions": new_versions})),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get_form(core, form_id).await
}

/// Add a new version of a channel's consent text (and offer the channel,
/// if it was not offered). Consents already given keep the version they
/// recorded; the new text is shown from now on.
pub async fn add_consent_text(
    core: &Core,
    form_id: &str,
    channel: Channel,
    text: &str,
    actor: &str,
) -> Result<ConsentTextVersion, FormError> {
    optin_form::Entity::find_by_id(form_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| FormError::NotFound(form_id.to_string()))?;
    let text = clean(text);
    let mut errors = FieldErrors::new();
    check_text(
        &mut errors,
        "consent_text",
        &text,
        true,
        MAX_CONSENT_TEXT,
        "the consent text",
    );
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let (v, created) = put_text(&txn, form_id, channel, &text, actor, now).await?;
    if created {
        audit::record_staff_action(
            &txn,
            actor,
            "optin_form.consent_text",
            Some(form_id),
            Some(serde_json::json!({"version": v.label, "hash": v.hash})),
            None,
            now,
        )
        .await?;
    }
    txn.commit().await?;
    Ok(v)
}

/// Stop offering a channel on a form (its texts stay on record).
pub async fn withdraw_channel(
    core: &Core,
    form_id: &str,
    channel: Channel,
    actor: &str,
) -> Result<Form, FormError> {
    let form = get_form(core, form_id).await?;
    if form.offer(channel).is_none() {
        return Ok(form);
    }
    if form.channels.len() == 1 {
        return Err(FormError::Invalid(one_error(
            "channels",
            "a form must offer at least one channel; deactivate the form instead",
        )));
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    consent_text::Entity::update_many()
        .col_expr(consent_text::Column::Current, Expr::value(false))
        .filter(consent_text::Column::FormId.eq(form_id))
        .filter(consent_text::Column::Channel.eq(channel.as_str()))
        .exec(&txn)
        .await?;
    audit::record_staff_action(
        &txn,
        actor,
        "optin_form.withdraw_channel",
        Some(form_id),
        Some(serde_json::json!({"channel": channel})),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get_form(core, form_id).await
}

/// Every version of every consent text of a form, newest first.
pub async fn consent_text_history(
    core: &Core,
    form_id: &str,
) -> Result<Vec<ConsentTextVersion>, sea_orm::DbErr> {
    Ok(consent_text::Entity::find()
        .filter(consent_text::Column::FormId.eq(form_id))
        .order_by_asc(consent_text::Column::Channel)
        .order_by_desc(consent_text::Column::Version)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .filter_map(ConsentTextVersion::from_model)
        .collect())
}

pub async fn get_form(core: &Core, form_id: &str) -> Result<Form, FormError> {
    let m = optin_form::Entity::find_by_id(form_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| FormError::NotFound(form_id.to_string()))?;
    Ok(to_form(core, &core.db.conn, m).await?)
}

/// The form at `/optin/{slug}` (active or not: the page says when closed).
pub async fn form_by_slug(core: &Core, slug: &str) -> Result<Option<Form>, sea_orm::DbErr> {
    let slug = slug.trim().to_ascii_lowercase();
    match optin_form::Entity::find()
        .filter(optin_form::Column::Slug.eq(slug))
        .one(&core.db.conn)
        .await?
    {
        Some(m) => Ok(Some(to_form(core, &core.db.conn, m).await?)),
        None => Ok(None),
    }
}

/// Every form with its counts, newest first.
/// At most this many forms, QR codes per form, in one list.
pub const MAX_LIST: u64 = 200;

/// The newest forms (at most [`MAX_LIST`]), with their counts.
pub async fn list_forms(core: &Core) -> Result<Vec<FormSummary>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for m in optin_form::Entity::find()
        .order_by_desc(optin_form::Column::CreatedAt)
        .limit(MAX_LIST)
        .all(&core.db.conn)
        .await?
    {
        let stats = form_stats(core, &m.id).await?;
        out.push(FormSummary {
            form: to_form(core, &core.db.conn, m).await?,
            stats,
        });
    }
    Ok(out)
}

/// How many consents a form has gathered, per channel and status and per
/// QR code, with each code's scans.
pub async fn form_stats(core: &Core, form_id: &str) -> Result<FormStats, sea_orm::DbErr> {
    let db = &core.db.conn;
    let rows: Vec<(String, String, Option<String>, i64)> = consent::Entity::find()
        .select_only()
        .column(consent::Column::Channel)
        .column(consent::Column::Status)
        .column(consent::Column::QrCode)
        .column_as(
            sea_orm::sea_query::ExprTrait::count(Expr::col(consent::Column::Id)),
            "n",
        )
        .filter(consent::Column::FormId.eq(form_id))
        .group_by(consent::Column::Channel)
        .group_by(consent::Column::Status)
        .group_by(consent::Column::QrCode)
        .into_tuple()
        .all(db)
        .await?;
    let mut channels: BTreeMap<String, ChannelCounts> = BTreeMap::new();
    for t in current_texts(db, form_id).await? {
        channels.insert(
            t.channel.as_str().to_string(),
            ChannelCounts {
                channel: t.channel.as_str().to_string(),
                ..Default::default()
            },
        );
    }
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for (channel, status, code, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        let c = channels.entry(channel.clone()).or_insert(ChannelCounts {
            channel,
            ..Default::default()
        });
        match status.as_str() {
            "active" => c.active += n,
            "pending" => c.pending += n,
            _ => c.revoked += n,
        }
        if let Some(code) = code {
            *by_code.entry(code).or_default() += n;
        }
    }
    let contacts: Vec<String> = consent::Entity::find()
        .select_only()
        .column(consent::Column::ContactId)
        .distinct()
        .filter(consent::Column::FormId.eq(form_id))
        .into_tuple()
        .all(db)
        .await?;
    let last = consent::Entity::find()
        .filter(consent::Column::FormId.eq(form_id))
        .order_by_desc(consent::Column::CreatedAt)
        .one(db)
        .await?
        .map(|c| c.created_at);
    let qr_codes = qr_code::Entity::find()
        .filter(qr_code::Column::FormId.eq(form_id))
        .order_by_asc(qr_code::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|q| QrStats {
            consents: by_code.get(&q.code).copied().unwrap_or(0),
            code: q.code,
            source_label: q.source_label,
            scans: q.scans,
        })
        .collect();
    Ok(FormStats {
        form_id: form_id.to_string(),
        channels: channels.into_values().collect(),
        contacts: contacts.len() as u64,
        qr_codes,
        last_submission_at: last,
    })
}

/// The newest consents recorded through a form (the console's list of
/// submissions).
pub async fn recent_consents(
    core: &Core,
    form_id: &str,
    limit: u64,
) -> Result<Vec<crate::consent::ConsentRecord>, sea_orm::DbErr> {
    Ok(consent::Entity::find()
        .filter(consent::Column::FormId.eq(form_id))
        .order_by_desc(consent::Column::CreatedAt)
        .limit(limit)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(crate::consent::ConsentRecord::from)
        .collect())
}

// ---------------------------------------------------------------------------
// QR codes

/// A QR code: where it was put up, how often it was scanned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QrCode {
    pub id: String,
    pub code: String,
    pub form_id: String,
    pub source_label: String,
    pub prefilled_text: Option<String>,
    pub scans: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// What the QR encodes: `<public URL>/q/<code>`.
    pub url: String,
    pub svg_url: String,
    pub png_url: String,
    pub print_url: String,
}

impl QrCode {
    fn from_model(core: &Core, m: qr_code::Model) -> Self {
        let url = qr_target_url(core, &m.code);
        QrCode {
            svg_url: format!("{url}.svg"),
            png_url: format!("{url}.png"),
            print_url: format!("{url}/print"),
            url,
            id: m.id,
            code: m.code,
            form_id: m.form_id,
            source_label: m.source_label,
            prefilled_text: m.prefilled_text,
            scans: m.scans,
            created_by: m.created_by,
            created_at: m.created_at,
        }
    }

    /// The text a "Message us on WhatsApp" link fills in.
    pub fn whatsapp_text(&self) -> String {
        self.prefilled_text
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| default_prefilled_text(&self.source_label))
    }
}

/// A new QR code for a form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QrInput {
    /// Where it is put up: 'open house 12 Elm St', 'flyer March'.
    pub source_label: String,
    /// The WhatsApp message the landing page's link fills in; default
    /// "Hi! I scanned the code at <source label>."
    #[serde(default)]
    pub prefilled_text: Option<String>,
}

pub fn default_prefilled_text(source_label: &str) -> String {
    format!("Hi! I scanned the code at {}.", source_label.trim())
}

/// What a QR code encodes.
pub fn qr_target_url(core: &Core, code: &str) -> String {
    public_url(core, &format!("/q/{code}"))
}

fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[(rng.next_u32() as usize) % CODE_ALPHABET.len()] as char)
        .collect()
}

/// Is this string shaped like a code (so a path can be looked up)?
pub fn is_code(s: &str) -> bool {
    (4..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub async fn create_qr_code(
    core: &Core,
    form_id: &str,
    input: &QrInput,
    actor: &str,
) -> Result<QrCode, FormError> {
    optin_form::Entity::find_by_id(form_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| FormError::NotFound(form_id.to_string()))?;
    let label = clean(&input.source_label).replace('\n', " ");
    let prefilled = input
        .prefilled_text
        .as_deref()
        .map(clean)
        .filter(|t| !t.is_empty());
    let mut errors = FieldErrors::new();
    check_text(
        &mut errors,
        "source_label",
        &label,
        true,
        120,
        "the source label",
    );
    if let Some(p) = &prefilled {
        check_text(
            &mut errors,
            "prefilled_text",
            p,
            false,
            500,
            "the prefilled text",
        );
    }
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let now = core.now();
    let mut last_err = None;
    for _ in 0..5 {
        let code = new_code();
        let res = qr_code::ActiveModel {
            id: Set(new_id()),
            code: Set(code.clone()),
            form_id: Set(form_id.to_string()),
            source_label: Set(label.clone()),
            prefilled_text: Set(prefilled.clone()),
            scans: Set(0),
            created_by: Set(actor.to_string()),
            created_at: Set(now),
        }
        .insert(&core.db.conn)
        .await;
        match res {
            Ok(m) => {
                audit::record_staff_action(
                    &core.db.conn,
                    actor,
                    "optin_form.qr_code",
                    Some(form_id),
                    Some(serde_json::json!({"code": code, "source_label": label})),
                    None,
                    now,
                )
                .await?;
                return Ok(QrCode::from_model(core, m));
            }
            // A code collision (1 in 10^11): draw again.
            Err(e) => last_err = Some(e),
        }
    }
    Err(FormError::Db(last_err.unwrap_or_else(|| {
        sea_orm::DbErr::Custom("could not draw a unique QR code".into())
    })))
}

pub async fn list_qr_codes(core: &Core, form_id: &str) -> Result<Vec<QrCode>, sea_orm::DbErr> {
    Ok(qr_code::Entity::find()
        .filter(qr_code::Column::FormId.eq(form_id))
        .order_by_asc(qr_code::Column::CreatedAt)
        .limit(MAX_LIST)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|m| QrCode::from_model(core, m))
        .collect())
}

/// A code and its form, without counting a scan (images, print page).
pub async fn find_qr_code(
    core: &Core,
    code: &str,
) -> Result<Option<(QrCode, Form)>, sea_orm::DbErr> {
    let code = code.trim().to_ascii_lowercase();
    if !is_code(&code) {
        return Ok(None);
    }
    let Some(m) = qr_code::Entity::find()
        .filter(qr_code::Column::Code.eq(code))
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let Some(f) = optin_form::Entity::find_by_id(m.form_id.as_str())
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        QrCode::from_model(core, m),
        to_form(core, &core.db.conn, f).await?,
    )))
}

/// Count a scan (atomically, in the database) and return the code and form.
pub async fn record_scan(
    core: &Core,
    code: &str,
) -> Result<Option<(QrCode, Form)>, sea_orm::DbErr> {
    let code = code.trim().to_ascii_lowercase();
    if !is_code(&code) {
        return Ok(None);
    }
    let res = qr_code::Entity::update_many()
        .col_expr(
            qr_code::Column::Scans,
            sea_orm::sea_query::ExprTrait::add(Expr::col(qr_code::Column::Scans), 1),
        )
        .filter(qr_code::Column::Code.eq(code.as_str()))
        .exec(&core.db.conn)
        .await?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    find_qr_code(core, &code).await
}

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("could not make a QR code: {0}")]
    Encode(String),
}

fn qr_for(url: &str) -> Result<qrcode::QrCode, QrError> {
    qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))
}

/// The QR code for `url` as an SVG document (quiet zone included).
pub fn qr_svg(url: &str) -> Result<String, QrError> {
    use qrcode::render::svg;
    Ok(qr_for(url)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// The QR code for `url` as a PNG at least `size` pixels wide (clamped to
/// 64..=2048).
pub fn qr_png(url: &str, size: u32) -> Result<Vec<u8>, QrError> {
    use image::ImageEncoder;
    let size = size.clamp(64, 2048);
    let img = qr_for(url)?
        .render::<image::Luma<u8>>()
        .min_dimensions(size, size)
        .build();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::L8,
        )
        .map_err(|e| QrError::Encode(e.to_string()))?;
    Ok(out)
}

/// Percent-encode everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `https://wa.me/<number>?text=<prefilled>` for the WhatsApp sender, when
/// the sender is a phone number (Twilio). With Meta's Cloud API the sender
/// setting is a phone-number id, not a number, so there is no link.
/// Writing to us this way opens the 24-hour window; it is not an opt-in.
pub fn whatsapp_link(core: &Core, qr: &QrCode) -> Option<String> {
    let sender = core.settings.sender_for(Channel::WhatsApp)?;
    let number = PhoneNumber::parse_e164(sender.trim_start_matches("whatsapp:")).ok()?;
    let digits: String = number
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some(format!(
        "https://wa.me/{digits}?text={}",
        percent_encode(&qr.whatsapp_text())
    ))
}

// ---------------------------------------------------------------------------
// Submissions

/// A submission as the browser sent it (parsed by [`SubmissionInput::from_pairs`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmissionInput {
    pub name: String,
    pub phone: String,
    /// The ticked channels, as sent.
    pub channels: Vec<String>,
    /// Per channel, the consent text version the page showed.
    pub text_versions: BTreeMap<String, String>,
    /// Extra fields by key.
    pub fields: BTreeMap<String, String>,
    /// The honeypot: must be empty.
    pub honeypot: String,
}

impl SubmissionInput {
    /// From the form's `application/x-www-form-urlencoded` pairs: `name`,
    /// `phone`, `channel` (repeated), `text_version_<channel>`,
    /// `field_<key>`, and the honeypot [`HONEYPOT_FIELD`].
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut s = SubmissionInput::default();
        for (k, v) in pairs {
            match k.as_str() {
                "name" => s.name = v,
                "phone" => s.phone = v,
                "channel" => {
                    if s.channels.len() < 8 {
                        s.channels.push(v)
                    }
                }
                k if k == HONEYPOT_FIELD => s.honeypot = v,
                k => {
                    if let Some(ch) = k.strip_prefix("text_version_") {
                        s.text_versions.insert(ch.to_string(), v);
                    } else if let Some(key) = k.strip_prefix("field_") {
                        if s.fields.len() < 32 {
                            s.fields.insert(key.to_string(), v);
                        }
                    }
                }
            }
        }
        s
    }

    /// Whether a channel box was ticked (for re-rendering the form).
    pub fn ticked(&self, channel: Channel) -> bool {
        self.channels
            .iter()
            .any(|c| c.parse::<Channel>().ok() == Some(channel))
    }
}

/// What the server knows about the request, recorded as evidence.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestEvidence {
    /// The client's address (see [`client_ip`]).
    pub ip: IpAddr,
    pub user_agent: Option<String>,
    /// The public URL of the page the person saw (`<public URL><path>`).
    pub page_url: String,
}

/// A validated submission.
#[derive(Debug, Clone)]
struct ValidSubmission {
    name: String,
    phone: PhoneNumber,
    channels: Vec<ConsentTextVersion>,
    fields: BTreeMap<String, String>,
}

/// Check a submission against its form. Pure: the errors name the field
/// (`name`, `phone`, `channels`, `field_<key>`) and say what to do.
fn validate_submission(
    form: &Form,
    input: &SubmissionInput,
    region: phonenumber::country::Id,
) -> Result<ValidSubmission, FieldErrors> {
    let mut errors = FieldErrors::new();
    let name = input.name.trim().to_string();
    if name.is_empty() {
        errors.insert("name".into(), "Enter your name.".into());
    } else if name.chars().count() > MAX_NAME {
        errors.insert(
            "name".into(),
            format!("Your name must be {MAX_NAME} characters or fewer."),
        );
    } else if has_control(&name) || name.contains('\n') {
        errors.insert("name".into(), "Enter your name on one line.".into());
    }
    let phone = if input.phone.trim().is_empty() {
        errors.insert("phone".into(), "Enter your mobile number.".into());
        None
    } else if input.phone.chars().count() > 40 {
        errors.insert(
            "phone".into(),
            "Enter a mobile number, like +1 415 555 2671.".into(),
        );
        None
    } else {
        match PhoneNumber::parse(&input.phone, region) {
            Ok(p) => Some(p),
            Err(_) => {
                errors.insert(
                    "phone".into(),
                    "Enter a valid mobile number. Include the country code if it is from another country, like +1 415 555 2671.".into(),
                );
                None
            }
        }
    };
    let mut channels = Vec::new();
    let mut changed = false;
    let mut unknown = false;
    for raw in &input.channels {
        let Ok(channel) = raw.parse::<Channel>() else {
            unknown = true;
            continue;
        };
        if channels
            .iter()
            .any(|c: &ConsentTextVersion| c.channel == channel)
        {
            continue;
        }
        match form.offer(channel) {
            None => unknown = true,
            Some(text) => {
                let shown = input
                    .text_versions
                    .get(channel.as_str())
                    .map(|v| v.trim().trim_start_matches('v'));
                if shown == Some(text.version.to_string().as_str()) {
                    channels.push(text.clone());
                } else {
                    changed = true;
                }
            }
        }
    }
    if unknown {
        errors.insert(
            "channels".into(),
            "Choose from the options shown on this page.".into(),
        );
    } else if changed {
        errors.insert(
            "channels".into(),
            "The wording of the consent changed while this page was open. Please read it again and tick the box again.".into(),
        );
    } else if channels.is_empty() {
        errors.insert(
            "channels".into(),
            "Tick at least one way we may message you.".into(),
        );
    }
    let mut fields = BTreeMap::new();
    for f in &form.fields {
        let value = input
            .fields
            .get(&f.key)
            .map(|v| v.trim().to_string())
            .unwrap_or_default();
        let field = format!("field_{}", f.key);
        if value.is_empty() {
            if f.required {
                errors.insert(field, format!("Enter {}.", f.label.to_lowercase()));
            }
        } else if value.chars().count() > MAX_FIELD_VALUE {
            errors.insert(
                field,
                format!("{} must be {MAX_FIELD_VALUE} characters or fewer.", f.label),
            );
        } else if has_control(&value) {
            errors.insert(field, format!("{} must be plain text.", f.label));
        } else {
            fields.insert(f.key.clone(), value);
        }
    }
    match (errors.is_empty(), phone) {
        (true, Some(phone)) => Ok(ValidSubmission {
            name,
            phone,
            channels,
            fields,
        }),
        _ => Err(errors),
    }
}

/// What happened on one channel of a submission.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelStatus {
    /// A new active consent was recorded.
    Subscribed,
    /// A new pending consent was recorded and a confirmation requested.
    AwaitingConfirmation,
    /// The same consent (form and text version) was already active, or the
    /// person already had an active consent and the form asks for
    /// confirmation: nothing new was recorded.
    AlreadySubscribed,
    /// The same pending consent exists and its link still works: nothing
    /// new was recorded and no second confirmation sent.
    AlreadyAwaitingConfirmation,
    /// The number opted out earlier. A form cannot undo that (anyone can
    /// type anyone's number): the submission is kept as a pending consent,
    /// nothing is sent, and the person resubscribes by sending START from
    /// that number.
    NeedsProofFromNumber,
}

/// The confirmation request sent for a pending consent.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfirmationRequest {
    pub message_id: String,
    pub state: MessageState,
    /// The gate that refused or deferred it, if one did.
    pub gate: Option<String>,
    pub explanation: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelReceipt {
    pub channel: Channel,
    pub status: ChannelStatus,
    /// The consent recorded (or the one that already covered it).
    pub consent_id: String,
    pub consent_text_version: String,
    pub confirmation: Option<ConfirmationRequest>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SubmitReceipt {
    pub contact_id: String,
    pub contact_created: bool,
    pub channels: Vec<ChannelReceipt>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum SubmitOutcome {
    /// The honeypot was filled: nothing recorded, logged; answer as if it
    /// worked so the bot learns nothing.
    Discarded,
    Recorded(SubmitReceipt),
}

#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// Bad input: shown beside each field; nothing was recorded.
    #[error("{}", describe(.0))]
    Invalid(FieldErrors),
    /// The form is not accepting submissions.
    #[error("this form is closed")]
    Closed,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn token_hash(token: &str) -> String {
    crate::consent::text_hash(token)
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

/// Record a submission: validate, create or update the contact, record one
/// consent per ticked channel with its evidence (pending for double
/// opt-in), and ask for confirmation through the gates. Nothing is
/// recorded when anything is invalid; a repeated submission adds nothing.
pub async fn submit(
    core: &Core,
    form: &Form,
    qr: Option<&QrCode>,
    input: &SubmissionInput,
    request: &RequestEvidence,
) -> Result<SubmitOutcome, SubmitError> {
    if !input.honeypot.trim().is_empty() {
        tracing::warn!(form = %form.slug, ip = %request.ip, "opt-in honeypot filled: submission discarded");
        metrics::counter!("heimdall_optin_submissions_total", "result" => "honeypot").increment(1);
        return Ok(SubmitOutcome::Discarded);
    }
    if !form.active {
        return Err(SubmitError::Closed);
    }
    if let Some(q) = qr {
        if q.form_id != form.id {
            return Err(SubmitError::Invalid(one_error(
                "form",
                "This code belongs to another form.",
            )));
        }
    }
    let valid = match validate_submission(form, input, core.settings.default_region) {
        Ok(v) => v,
        Err(e) => {
            metrics::counter!("heimdall_optin_submissions_total", "result" => "invalid")
                .increment(1);
            return Err(SubmitError::Invalid(e));
        }
    };
    let user_agent = request
        .user_agent
        .as_deref()
        .map(str::trim)
        .filter(|u| !u.is_empty())
        .map(|u| truncate(u, MAX_USER_AGENT));
    let Some(user_agent) = user_agent else {
        return Err(SubmitError::Invalid(one_error(
            "form",
            "Your browser did not identify itself (no User-Agent), which we keep as a record of your consent. Please use a regular web browser.",
        )));
    };
    let now = core.now();
    let (source, qr_code) = match qr {
        Some(q) => (ConsentSource::Qr, Some(q.code.clone())),
        None => (ConsentSource::WebForm, None),
    };
    let recorded_by = format!("optin:{}", form.slug);

    let txn = core.db.begin_write().await?;
    let existing = contacts::find_by_phone(&txn, &valid.phone).await?;
    let contact_created = existing.is_none();
    let contact = match existing {
        // An anonymous submission never changes an existing contact: the
        // name and fields typed here are only the visitor's word.
        Some(c) => c,
        None => {
            let c = contacts::find_or_create_by_phone(
                &txn,
                &valid.phone,
                Some(valid.name.clone()),
                now,
            )
            .await?;
            if valid.fields.is_empty() {
                c
            } else {
                let mut am: contact::ActiveModel = c.into();
                am.attributes =
                    Set(serde_json::to_string(&valid.fields).unwrap_or_else(|_| "{}".into()));
                am.update(&txn).await?
            }
        }
    };

    let mut receipts = Vec::new();
    let mut to_confirm = Vec::new();
    for text in &valid.channels {
        let channel = text.channel;
        let same: Vec<consent::Model> = consent::Entity::find()
            .filter(consent::Column::ContactId.eq(&contact.id))
            .filter(consent::Column::Channel.eq(channel.as_str()))
            .filter(consent::Column::FormId.eq(&form.id))
            .filter(consent::Column::ConsentTextVersion.eq(&text.label))
            .filter(consent::Column::RevokedAt.is_null())
            .order_by_desc(consent::Column::CreatedAt)
            .all(&txn)
            .await?;
        let receipt = |status, consent_id: &str| ChannelReceipt {
            channel,
            status,
            consent_id: consent_id.to_string(),
            consent_text_version: text.label.clone(),
            confirmation: None,
        };
        if crate::consent::opted_out(&txn, &contact.id, channel)
            .await?
            .is_some()
        {
            // The same claim again adds nothing.
            if let Some(c) = same.iter().find(|c| c.status == "pending") {
                receipts.push(receipt(ChannelStatus::NeedsProofFromNumber, &c.id));
                continue;
            }
        } else {
            if let Some(c) = same.iter().find(|c| c.status == "active") {
                receipts.push(receipt(ChannelStatus::AlreadySubscribed, &c.id));
                continue;
            }
            if let Some(c) = same
                .iter()
                .find(|c| c.status == "pending" && c.created_at + CONFIRMATION_TTL > now)
            {
                receipts.push(receipt(ChannelStatus::AlreadyAwaitingConfirmation, &c.id));
                continue;
            }
            if form.double_opt_in {
                // A pending record would become the newest and so the deciding
                // one: it must not put an active subscriber on hold.
                if let Some(cur) =
                    crate::consent::current_consent(&txn, &contact.id, channel).await?
                {
                    if cur.status == "active" && cur.revoked_at.is_none() {
                        receipts.push(receipt(ChannelStatus::AlreadySubscribed, &cur.id));
                        continue;
                    }
                }
            }
        }
        let evidence = ConsentEvidence {
            captured_at: None,
            ip: Some(request.ip.to_string()),
            user_agent: Some(user_agent.clone()),
            page_url: Some(truncate(&request.page_url, 2048)),
            form_id: Some(form.id.clone()),
            qr_code: qr_code.clone(),
            inbound_message_id: None,
            consent_text_version: Some(text.label.clone()),
            consent_text: Some(text.text.clone()),
            consent_text_hash: Some(text.hash.clone()),
        };
        let outcome = crate::consent::record_opt_in(
            &txn,
            &contact.id,
            channel,
            source,
            &evidence,
            &recorded_by,
            form.double_opt_in,
            now,
        )
        .await
        .map_err(|e| match e {
            ContactError::Db(d) => SubmitError::Db(d),
            // The evidence is built here from a validated request.
            other => SubmitError::Invalid(one_error("form", other.to_string())),
        })?;
        match outcome {
            OptInOutcome::NeedsProofFromNumber { consent: rec, .. } => {
                receipts.push(receipt(ChannelStatus::NeedsProofFromNumber, &rec.id));
            }
            OptInOutcome::Pending { consent: rec } => {
                let token = new_token();
                consent::Entity::update_many()
                    .col_expr(
                        consent::Column::ConfirmationTokenHash,
                        Expr::value(Some(token_hash(&token))),
                    )
                    .filter(consent::Column::Id.eq(&rec.id))
                    .exec(&txn)
                    .await?;
                to_confirm.push((receipts.len(), channel, rec.id.clone(), token));
                receipts.push(receipt(ChannelStatus::AwaitingConfirmation, &rec.id));
            }
            OptInOutcome::Active { consent: rec } => {
                receipts.push(receipt(ChannelStatus::Subscribed, &rec.id));
            }
        }
    }
    txn.commit().await?;

    for (i, channel, consent_id, token) in to_confirm {
        let sent = request_confirmation(
            core,
            form,
            &contact.id,
            &valid.name,
            channel,
            &consent_id,
            &token,
        )
        .await;
        receipts[i].confirmation = sent;
    }
    metrics::counter!("heimdall_optin_submissions_total", "result" => "recorded").increment(1);
    Ok(SubmitOutcome::Recorded(SubmitReceipt {
        contact_id: contact.id,
        contact_created,
        channels: receipts,
    }))
}

/// The free-text confirmation request (SMS, and WhatsApp inside the window).
pub fn confirmation_text(program: &str, form_title: &str, channel: Channel, link: &str) -> String {
    match channel {
        Channel::Sms => format!(
            "{program}: reply YES to confirm {form_title} messages, or open {link}. Reply STOP to opt out. Msg & data rates may apply."
        ),
        Channel::WhatsApp => format!(
            "{program}: reply YES to confirm {form_title} messages on WhatsApp, or open {link}. Reply STOP to opt out."
        ),
    }
}

/// Send the confirmation request through the gates. A refusal is recorded
/// (message row and audit) and reported, never hidden.
async fn request_confirmation(
    core: &Core,
    form: &Form,
    contact_id: &str,
    name: &str,
    channel: Channel,
    consent_id: &str,
    token: &str,
) -> Option<ConfirmationRequest> {
    let link = public_url(core, &format!("/optin/confirm/{token}"));
    let program = core.settings.program_name.clone();
    let content = match (channel, &form.whatsapp_confirmation_template) {
        (Channel::WhatsApp, Some(template)) => {
            let declared = match templates::find_by_name(&core.db.conn, template).await {
                Ok(Some(t)) => t.variables,
                Ok(None) => vec![],
                Err(e) => {
                    tracing::error!(error = %e, "could not load the confirmation template");
                    vec![]
                }
            };
            let mut values = BTreeMap::new();
            values.insert("program", program.clone());
            values.insert("form_title", form.title.clone());
            values.insert("confirm_url", link.clone());
            values.insert("name", name.to_string());
            let variables = declared
                .iter()
                .filter_map(|v| values.get(v.as_str()).map(|val| (v.clone(), val.clone())))
                .collect();
            RequestedContent::Template {
                name: template.clone(),
                variables,
            }
        }
        // Heimdall's own text with a link in it, written for the channel: only split (a
        // Markdown reading could change the link).
        _ => RequestedContent::Text {
            body: confirmation_text(&program, &form.title, channel, &link),
            media_url: None,
            format: crate::channels::formatting::TextFormat::AsIs,
            reply_to: None,
        },
    };
    let res = outbound::accept(
        core,
        SendRequest {
            recipient: Recipient::Contact(contact_id.to_string()),
            channel,
            content,
            origin: Origin::OptInConfirmation,
            idempotency_key: Some(format!("optin-confirm:{consent_id}")),
        },
    )
    .await;
    match res {
        Ok(o) => {
            if let Some(reason) = o.decision.decision.reason() {
                tracing::warn!(consent_id, %channel, gate = reason.code(), "opt-in confirmation not sent now: {}", o.decision.explanation());
            }
            Some(ConfirmationRequest {
                gate: o.decision.decision.reason().map(|g| g.code().to_string()),
                explanation: o.decision.explanation(),
                message_id: o.message_id,
                state: o.state,
            })
        }
        Err(e) => {
            tracing::error!(consent_id, error = %e, "could not accept the opt-in confirmation; the person can still reply YES");
            None
        }
    }
}

/// Where a confirmation link stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfirmationStatus {
    Pending,
    Confirmed,
    Expired,
    /// The person opted out since.
    Revoked,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ConfirmationView {
    pub consent_id: String,
    pub contact_id: String,
    pub channel: Channel,
    pub form_title: Option<String>,
    pub status: ConfirmationStatus,
}

async fn find_by_token(
    core: &Core,
    token: &str,
) -> Result<Option<(consent::Model, ConfirmationView)>, sea_orm::DbErr> {
    let token = token.trim();
    let plausible = (20..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return Ok(None);
    }
    let Some(c) = consent::Entity::find()
        .filter(consent::Column::ConfirmationTokenHash.eq(token_hash(token)))
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let Ok(channel) = c.channel.parse::<Channel>() else {
        return Ok(None);
    };
    let form_title = match &c.form_id {
        Some(id) => optin_form::Entity::find_by_id(id.as_str())
            .one(&core.db.conn)
            .await?
            .map(|f| f.title),
        None => None,
    };
    let status = match crate::consent::consent_status(&c) {
        crate::compliance::gates::ConsentStatus::Revoked => ConfirmationStatus::Revoked,
        crate::compliance::gates::ConsentStatus::Active => ConfirmationStatus::Confirmed,
        crate::compliance::gates::ConsentStatus::Pending
            if c.created_at + CONFIRMATION_TTL <= core.now() =>
        {
            ConfirmationStatus::Expired
        }
        crate::compliance::gates::ConsentStatus::Pending => ConfirmationStatus::Pending,
    };
    let view = ConfirmationView {
        consent_id: c.id.clone(),
        contact_id: c.contact_id.clone(),
        channel,
        form_title,
        status,
    };
    Ok(Some((c, view)))
}

/// What a confirmation link stands for, without changing anything (the
/// page a link opens: link previews must not confirm on someone's behalf).
pub async fn confirmation_view(
    core: &Core,
    token: &str,
) -> Result<Option<ConfirmationView>, sea_orm::DbErr> {
    Ok(find_by_token(core, token).await?.map(|(_, v)| v))
}

/// Confirm the pending consent a link stands for (the person pressed the
/// button). Expired, revoked or already confirmed links change nothing.
pub async fn confirm(core: &Core, token: &str) -> Result<Option<ConfirmationView>, sea_orm::DbErr> {
    let Some((c, mut view)) = find_by_token(core, token).await? else {
        return Ok(None);
    };
    if view.status != ConfirmationStatus::Pending {
        return Ok(Some(view));
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let done = crate::consent::confirm_by_link(&txn, &c.id, now).await?;
    txn.commit().await?;
    match done {
        crate::consent::LinkConfirmation::Confirmed => {
            tracing::info!(consent_id = %c.id, channel = %view.channel, "opt-in confirmed by link");
            view.status = ConfirmationStatus::Confirmed;
        }
        // A link is not the number: it cannot undo an opt-out.
        crate::consent::LinkConfirmation::OptedOut(_) => view.status = ConfirmationStatus::Revoked,
        crate::consent::LinkConfirmation::NotPending => {
            if let Some((_, v)) = find_by_token(core, token).await? {
                view = v;
            }
        }
    }
    Ok(Some(view))
}

// ---------------------------------------------------------------------------
// Abuse protection

/// The client's address: the peer, unless the peer is a trusted reverse
/// proxy, in which case the right-most address in `X-Forwarded-For` that is
/// not itself a trusted proxy. A malformed header counts as absent.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut hops = Vec::new();
    for part in header.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(ip),
            Err(_) => return peer,
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// The reverse proxies whose `X-Forwarded-For` is believed (an admin
/// setting, stored under [`TRUSTED_PROXIES_SETTING`]; none by default, so
/// behind a proxy every visitor has the proxy's address until it is set).
pub async fn trusted_proxies(core: &Core) -> Result<Vec<IpAddr>, sea_orm::DbErr> {
    Ok(settings::store::get(core, TRUSTED_PROXIES_SETTING)
        .await?
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.trim().parse().ok())
        .collect())
}

pub async fn set_trusted_proxies(
    core: &Core,
    proxies: &[IpAddr],
    actor: &str,
) -> Result<(), sea_orm::DbErr> {
    let list: Vec<String> = proxies.iter().map(IpAddr::to_string).collect();
    settings::store::put(
        core,
        TRUSTED_PROXIES_SETTING,
        &serde_json::json!(list),
        actor,
    )
    .await?;
    audit::record_staff_action(
        &core.db.conn,
        actor,
        "settings.optin_trusted_proxies",
        None,
        Some(serde_json::json!(list)),
        None,
        core.now(),
    )
    .await
}

/// The key an address is limited under: IPv6 by its /64 (one subscriber's
/// network), IPv4 as is.
fn limit_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

const RATE_SCRIPT: &str = r#"
-- KEYS[1] = counter; ARGV[1] = period (s). Returns {count, seconds left}.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"#;

static RATE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RATE_SCRIPT));

/// Submissions per address: `max` in `period`. In process (governor, keyed
/// by address); with Redis configured, shared by every process (a counter
/// per address under the Redis namespace), falling back to the in-process
/// limit if Redis does not answer.
pub struct SubmissionLimiter {
    max: u32,
    period: StdDuration,
    local: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for SubmissionLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmissionLimiter")
            .field("max", &self.max)
            .field("period", &self.period)
            .finish()
    }
}

impl Default for SubmissionLimiter {
    fn default() -> Self {
        Self::new(RATE_LIMIT_MAX, RATE_LIMIT_PERIOD)
    }
}

impl SubmissionLimiter {
    pub fn new(max: u32, period: StdDuration) -> Self {
        let max = NonZeroU32::new(max.max(1)).unwrap_or(NonZeroU32::MIN);
        let per = (period / max.get()).max(StdDuration::from_millis(1));
        let quota = Quota::with_period(per)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(max);
        SubmissionLimiter {
            max: max.get(),
            period,
            local: RateLimiter::keyed(quota),
        }
    }

    /// Count one submission from `ip`; `Err(wait)` when it is over the limit.
    pub async fn check(&self, core: &Core, ip: IpAddr) -> Result<(), StdDuration> {
        let key = limit_key(ip);
        if let Some(conn) = &core.redis {
            let mut conn = conn.clone();
            let redis_key = format!("{}:optin:rate:{key}", core.settings.redis_namespace);
            let res: Result<(i64, i64), _> = RATE
                .key(&redis_key)
                .arg(self.period.as_secs().max(1))
                .invoke_async(&mut conn)
                .await;
            match res {
                Ok((n, ttl)) if n > i64::from(self.max) => {
                    return Err(StdDuration::from_secs(ttl.max(1) as u64))
                }
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "opt-in rate limit: Redis unavailable, limiting in process")
                }
            }
        }
        if self.local.len() > 100_000 {
            self.local.retain_recent();
        }
        self.local
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

// ---------------------------------------------------------------------------
// CSV import

/// What an import did. Row numbers are the file's line numbers (the header
/// is row 1), as a spreadsheet shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    pub imported: usize,
    /// Rows whose consent was already on record (same contact, channel,
    /// time and text version): nothing added.
    pub duplicates: Vec<usize>,
    pub refused: Vec<RefusedRow>,
    /// Columns that are not part of the format and were not read.
    pub ignored_columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusedRow {
    pub row: usize,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file itself is unusable; nothing was imported.
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Columns an import must have.
pub const IMPORT_REQUIRED_COLUMNS: &[&str] = &[
    "phone",
    "channel",
    "source",
    "captured_at",
    "consent_text_version",
];
/// Columns of which an import must have at least one (how consent was given).
pub const IMPORT_EVIDENCE_COLUMNS: &[&str] = &["ip", "page_url", "inbound_message_id"];
/// Further columns an import may have.
pub const IMPORT_OPTIONAL_COLUMNS: &[&str] = &[
    "name",
    "user_agent",
    "consent_text",
    "consent_text_hash",
    "form_id",
    "qr_code",
];

fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

fn parse_source(s: &str) -> Option<ConsentSource> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "web_form" => ConsentSource::WebForm,
        "qr" => ConsentSource::Qr,
        "keyword" => ConsentSource::Keyword,
        "api" => ConsentSource::Api,
        "import" => ConsentSource::Import,
        "staff" => ConsentSource::Staff,
        _ => return None,
    })
}

struct ImportRow {
    phone: PhoneNumber,
    name: Option<String>,
    channel: Channel,
    source: ConsentSource,
    /// A source described in words (kept with who recorded it).
    described: Option<String>,
    evidence: ConsentEvidence,
}

fn read_row(core: &Core, get: &dyn Fn(&str) -> Option<String>) -> Result<ImportRow, String> {
    let phone_raw = get("phone").ok_or("phone is empty")?;
    let phone = PhoneNumber::parse(&phone_raw, core.settings.default_region)
        .map_err(|e| format!("phone: {e}"))?;
    let channel: Channel = get("channel")
        .ok_or("channel is empty")?
        .parse()
        .map_err(|e| format!("channel: {e}"))?;
    let source_raw = get("source").ok_or("source is empty: say where the consent came from")?;
    let (source, described) = match parse_source(&source_raw) {
        Some(s) => (s, None),
        None => (ConsentSource::Import, Some(truncate(&source_raw, 200))),
    };
    let captured_raw =
        get("captured_at").ok_or("captured_at is empty: the time consent was given is required")?;
    let captured_at = parse_time(&captured_raw).ok_or_else(|| {
        format!("captured_at '{captured_raw}' is not a time like 2026-03-14T15:09:26Z")
    })?;
    if captured_at > core.now() + Duration::minutes(5) {
        return Err("captured_at is in the future".into());
    }
    let ip = match get("ip") {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| format!("ip '{ip}' is not an IP address"))?
                .to_string(),
        ),
        None => None,
    };
    let page_url = match get("page_url") {
        Some(u) => {
            let parsed = url::Url::parse(&u).map_err(|_| format!("page_url '{u}' is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("page_url must be an http or https URL".into());
            }
            Some(u)
        }
        None => None,
    };
    let consent_text = get("consent_text");
    let consent_text_hash = match (get("consent_text_hash"), &consent_text) {
        (Some(h), text) => {
            let h = h.to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("consent_text_hash must be a SHA-256 in hex (64 characters)".into());
            }
            if let Some(t) = text {
                if crate::consent::text_hash(t) != h {
                    return Err("consent_text_hash is not the SHA-256 of consent_text".into());
                }
            }
            Some(h)
        }
        (None, Some(t)) => Some(crate::consent::text_hash(t)),
        (None, None) => None,
    };
    for (col, v, max) in [
        ("user_agent", get("user_agent"), MAX_USER_AGENT),
        ("consent_text", consent_text.clone(), MAX_LONG_TEXT),
        ("name", get("name"), MAX_NAME),
        ("consent_text_version", get("consent_text_version"), 200),
        ("inbound_message_id", get("inbound_message_id"), 200),
        ("page_url", page_url.clone(), 2048),
    ] {
        if v.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(format!("{col} is longer than {max} characters"));
        }
    }
    let evidence = ConsentEvidence {
        captured_at: Some(captured_at),
        ip,
        user_agent: get("user_agent"),
        page_url,
        form_id: get("form_id"),
        qr_code: get("qr_code"),
        inbound_message_id: get("inbound_message_id"),
        consent_text_version: get("consent_text_version"),
        consent_text,
        consent_text_hash,
    };
    evidence.validate(source).map_err(|e| e.to_string())?;
    Ok(ImportRow {
        phone,
        name: get("name"),
        channel,
        source,
        described,
        evidence,
    })
}

/// Import consents from CSV. The header must name [`IMPORT_REQUIRED_COLUMNS`]
/// and at least one of [`IMPORT_EVIDENCE_COLUMNS`]. Each row is checked on
/// its own: a row without its source or evidence, with a bad value, or for
/// a person who has opted out on that channel is refused and reported, and
/// nothing is recorded for it. An accepted row creates the contact if new
/// and records the consent with `source` when it names one (`web_form`,
/// `qr`, `keyword`, `api`, `import`, `staff`), else as `import` with the
/// words kept in `recorded_by`. An import never lifts an opt-out.
pub async fn import_consents(
    core: &Core,
    csv_text: &str,
    actor: &str,
) -> Result<ImportReport, ImportError> {
    let text = csv_text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError::File(format!("the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase().replace([' ', '-'], "_"))
        .collect();
    let missing: Vec<&str> = IMPORT_REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !headers.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::File(format!(
            "the header row must name the column(s): {} (it has: {})",
            missing.join(", "),
            headers.join(", ")
        )));
    }
    if !IMPORT_EVIDENCE_COLUMNS
        .iter()
        .any(|c| headers.iter().any(|h| h == c))
    {
        return Err(ImportError::File(format!(
            "the header row must name at least one evidence column: {}",
            IMPORT_EVIDENCE_COLUMNS.join(", ")
        )));
    }
    let mut report = ImportReport {
        ignored_columns: headers
            .iter()
            .filter(|h| {
                !IMPORT_REQUIRED_COLUMNS.contains(&h.as_str())
                    && !IMPORT_EVIDENCE_COLUMNS.contains(&h.as_str())
                    && !IMPORT_OPTIONAL_COLUMNS.contains(&h.as_str())
            })
            .cloned()
            .collect(),
        ..Default::default()
    };
    let mut rows = 0usize;
    for (i, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let row = e.position().map(|p| p.line() as usize).unwrap_or(i + 2);
                report.refused.push(RefusedRow {
                    row,
                    reason: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let row = record
            .position()
            .map(|p| p.line() as usize)
            .unwrap_or(i + 2);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows += 1;
        if rows > MAX_IMPORT_ROWS {
            return Err(ImportError::File(format!(
                "the file has more than {MAX_IMPORT_ROWS} rows; nothing after row {row} was read. Split it and import the rest"
            )));
        }
        if record.len() != headers.len() {
            report.refused.push(RefusedRow {
                row,
                reason: format!(
                    "the row has {} fields, the header {}",
                    record.len(),
                    headers.len()
                ),
            });
            continue;
        }
        let get = |col: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == col)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let parsed = match read_row(core, &get) {
            Ok(r) => r,
            Err(reason) => {
                report.refused.push(RefusedRow { row, reason });
                continue;
            }
        };
        match import_row(core, &parsed, actor).await? {
            RowResult::Imported => report.imported += 1,
            RowResult::Duplicate => report.duplicates.push(row),
            RowResult::Refused(reason) => report.refused.push(RefusedRow { row, reason }),
        }
    }
    audit::record_staff_action(
        &core.db.conn,
        actor,
        "consents.import",
        None,
        Some(serde_json::json!({
            "imported": report.imported,
            "duplicates": report.duplicates.len(),
            "refused": report.refused.len(),
        })),
        None,
        core.now(),
    )
    .await?;
    Ok(report)
}

enum RowResult {
    Imported,
    Duplicate,
    Refused(String),
}

async fn import_row(
    core: &Core,
    row: &ImportRow,
    actor: &str,
) -> Result<RowResult, sea_orm::DbErr> {
    let now = core.now();
    let txn = core.db.begin_write().await?;
    if let Some(form_id) = &row.evidence.form_id {
        if optin_form::Entity::find_by_id(form_id.as_str())
            .one(&txn)
            .await?
            .is_none()
        {
            txn.rollback().await?;
            return Ok(RowResult::Refused(format!(
                "form_id {form_id} is not a form"
            )));
        }
    }
    let contact =
        contacts::find_or_create_by_phone(&txn, &row.phone, row.name.clone(), now).await?;
    if let Some(o) = crate::consent::opted_out(&txn, &contact.id, row.channel).await? {
        txn.rollback().await?;
        return Ok(RowResult::Refused(format!(
            "{} opted out on {} ({}, {}); an import cannot override an opt-out: only the person, from their own number (START), can",
            row.phone,
            row.channel,
            o.reason,
            o.since.format("%Y-%m-%d")
        )));
    }
    let dup = consent::Entity::find()
        .filter(consent::Column::ContactId.eq(&contact.id))
        .filter(consent::Column::Channel.eq(row.channel.as_str()))
        .filter(consent::Column::CapturedAt.eq(row.evidence.captured_at))
        .filter(consent::Column::ConsentTextVersion.eq(row.evidence.consent_text_version.clone()))
        .filter(consent::Column::RevokedAt.is_null())
        .one(&txn)
        .await?;
    if dup.is_some() {
        txn.rollback().await?;
        return Ok(RowResult::Duplicate);
    }
    if contact.name.is_none() && row.name.is_some() {
        let mut am: contact::ActiveModel = contact.clone().into();
        am.name = Set(row.name.clone());
        am.updated_at = Set(now);
        am.update(&txn).await?;
    }
    let recorded_by = match &row.described {
        Some(d) => format!("{actor} (CSV import; source: {d})"),
        None => format!("{actor} (CSV import)"),
    };
    let res = crate::consent::record_opt_in(
        &txn,
        &contact.id,
        row.channel,
        row.source,
        &row.evidence,
        &recorded_by,
        false,
        now,
    )
    .await;
    match res {
        Ok(_) => {
            txn.commit().await?;
            Ok(RowResult::Imported)
        }
        Err(ContactError::Db(e)) => Err(e),
        Err(other) => {
            txn.rollback().await?;
            Ok(RowResult::Refused(other.to_string()))
        }
    }
}

// ---------------------------------------------------------------------------
// Export

/// A contact's whole consent record: every field of every consent and
/// suppression, revoked and lifted ones included, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentExport {
    pub exported_at: DateTime<Utc>,
    pub contact: contacts::Contact,
    pub consents: Vec<consent::Model>,
    pub suppressions: Vec<suppression::Model>,
}

pub async fn export_consents(core: &Core, contact_id: &str) -> Result<ConsentExport, ContactError> {
    let contact = contacts::get(core, contact_id).await?;
    let consents = consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .order_by_asc(consent::Column::CreatedAt)
        .order_by_asc(consent::Column::Id)
        .all(&core.db.conn)
        .await?;
    let suppressions = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .order_by_asc(suppression::Column::CreatedAt)
        .order_by_asc(suppression::Column::Id)
        .all(&core.db.conn)
        .await?;
    Ok(ConsentExport {
        exported_at: core.now(),
        contact,
        consents,
        suppressions,
    })
}

/// The consent record as pretty-printed JSON.
pub async fn export_consents_json(core: &Core, contact_id: &str) -> Result<String, ContactError> {
    let export = export_consents(core, contact_id).await?;
    serde_json::to_string_pretty(&export)
        .map_err(|e| ContactError::Db(sea_orm::DbErr::Custom(e.to_string())))
}

/// Column order of the CSV export: one row per consent (`record_type`
/// `consent`) or suppression (`suppression`).
pub const EXPORT_CSV_COLUMNS: &[&str] = &[
    "record_type",
    "contact_id",
    "contact_phone",
    "contact_name",
    "id",
    "channel",
    "status",
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
    "confirmed_at",
    "confirmation_token_hash",
    "revoked_at",
    "revocation_source",
    "revocation_ref",
    "reason",
    "source_ref",
    "created_by",
    "lifted_at",
    "lifted_by",
    "created_at",
];

/// A cell a spreadsheet will not run as a formula: one starting with `=`,
/// `+`, `-`, `@`, tab or carriage return gets a leading `'`.
pub fn csv_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

fn ts(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// The consent record as CSV (safe to open in a spreadsheet).
pub async fn export_consents_csv(core: &Core, contact_id: &str) -> Result<String, ContactError> {
    let e = export_consents(core, contact_id).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |err: csv::Error| ContactError::Db(sea_orm::DbErr::Custom(err.to_string()));
    w.write_record(EXPORT_CSV_COLUMNS).map_err(io)?;
    let name = e.contact.name.clone().unwrap_or_default();
    for c in &e.consents {
        let row: Vec<String> = vec![
            "consent".into(),
            e.contact.id.clone(),
            e.contact.phone.clone(),
            name.clone(),
            c.id.clone(),
            c.channel.clone(),
            c.status.clone(),
            c.source.clone(),
            ts(Some(c.captured_at)),
            c.ip.clone().unwrap_or_default(),
            c.user_agent.clone().unwrap_or_default(),
            c.page_url.clone().unwrap_or_default(),
            c.form_id.clone().unwrap_or_default(),
            c.qr_code.clone().unwrap_or_default(),
            c.inbound_message_id.clone().unwrap_or_default(),
            c.consent_text_version.clone().unwrap_or_default(),
            c.consent_text_hash.clone().unwrap_or_default(),
            c.consent_text.clone().unwrap_or_default(),
            c.recorded_by.clone(),
            ts(c.confirmed_at),
            c.confirmation_token_hash.clone().unwrap_or_default(),
            ts(c.revoked_at),
            c.revocation_source.clone().unwrap_or_default(),
            c.revocation_ref.clone().unwrap_or_default(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            ts(Some(c.created_at)),
        ];
        w.write_record(row.iter().map(|s| csv_safe(s)))
            .map_err(io)?;
    }
    for s in &e.suppressions {
        let mut row = vec![String::new(); EXPORT_CSV_COLUMNS.len()];
        row[0] = "suppression".into();
        row[1] = e.contact.id.clone();
        row[2] = e.contact.phone.clone();
        row[3] = name.clone();
        row[4] = s.id.clone();
        row[5] = s.channel.clone();
        row[6] = if s.lifted_at.is_some() {
            "lifted"
        } else {
            "active"
        }
        .into();
        row[24] = s.reason.clone();
        row[25] = s.source_ref.clone().unwrap_or_default();
        row[26] = s.created_by.clone();
        row[27] = ts(s.lifted_at);
        row[28] = s.lifted_by.clone().unwrap_or_default();
        row[29] = ts(Some(s.created_at));
        w.write_record(row.iter().map(|s| csv_safe(s)))
            .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ContactError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn form() -> Form {
        let t = |channel, version| ConsentTextVersion {
            id: format!("t-{channel}"),
            form_id: "f".into(),
            channel,
            version,
            label: version_label(channel, version),
            text: format!("I agree to {channel} messages."),
            hash: crate::consent::text_hash(&format!("I agree to {channel} messages.")),
            current: true,
            created_by: "test".into(),
            created_at: Utc::now(),
        };
        Form {
            id: "f".into(),
            slug: "spring".into(),
            title: "Spring".into(),
            intro: String::new(),
            fields: vec![FormField {
                key: "email".into(),
                label: "Email".into(),
                required: true,
            }],
            thank_you: "Thanks".into(),
            double_opt_in: false,
            whatsapp_confirmation_template: None,
            active: true,
            channels: vec![t(Channel::WhatsApp, 2), t(Channel::Sms, 1)],
            url: String::new(),
            created_by: "test".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> SubmissionInput {
        SubmissionInput::from_pairs(p.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn a_good_submission_validates() {
        let input = pairs(&[
            ("name", " Ada "),
            ("phone", "+47 912 34 567"),
            ("channel", "whatsapp"),
            ("text_version_whatsapp", "2"),
            ("text_version_sms", "1"),
            ("field_email", "ada@example.com"),
        ]);
        let v = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap();
        assert_eq!(v.name, "Ada");
        assert_eq!(v.phone.as_str(), "+4791234567");
        assert_eq!(v.channels.len(), 1);
        assert_eq!(v.channels[0].label, "whatsapp:v2");
        assert_eq!(v.fields.get("email").unwrap(), "ada@example.com");
    }

    #[test]
    fn every_bad_field_is_named() {
        let input = pairs(&[
            ("name", ""),
            ("phone", "12"),
            ("text_version_whatsapp", "2"),
        ]);
        let e = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap_err();
        assert!(e.contains_key("name"));
        assert!(e.contains_key("phone"));
        assert!(e["channels"].contains("at least one"));
        assert!(e.contains_key("field_email"));
    }

    #[test]
    fn a_consent_text_changed_under_the_page_is_not_recorded() {
        let input = pairs(&[
            ("name", "Ada"),
            ("phone", "+4791234567"),
            ("channel", "whatsapp"),
            ("text_version_whatsapp", "1"),
            ("field_email", "a@b.c"),
        ]);
        let e = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap_err();
        assert!(e["channels"].contains("changed"), "{e:?}");
        let input = pairs(&[
            ("name", "Ada"),
            ("phone", "+4791234567"),
            ("channel", "fax"),
            ("field_email", "a@b.c"),
        ]);
        let e = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap_err();
        assert!(e["channels"].contains("options shown"), "{e:?}");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, Some("203.0.113.9"), &[]), peer);
        assert_eq!(client_ip(peer, Some("203.0.113.9"), &[peer]), client);
        // The left-most entries are whatever the client claimed.
        assert_eq!(
            client_ip(
                peer,
                Some("1.2.3.4, 203.0.113.9, 10.0.0.3"),
                &[peer, "10.0.0.3".parse().unwrap()]
            ),
            client
        );
        assert_eq!(client_ip(peer, Some("garbage"), &[peer]), peer);
        assert_eq!(client_ip(peer, None, &[peer]), peer);
    }

    #[test]
    fn ipv6_is_limited_per_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_eq!(limit_key("::ffff:1.2.3.4".parse().unwrap()), "1.2.3.4");
    }

    #[test]
    fn slugs() {
        assert_eq!(parse_slug(" Spring-House ").unwrap(), "spring-house");
        for bad in [
            "a",
            "-a",
            "a-",
            "a--b",
            "a b",
            "confirm",
            "ø",
            &"x".repeat(65),
        ] {
            assert!(parse_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_cells_never_run_as_formulas() {
        assert_eq!(csv_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_safe("+4791234567"), "'+4791234567");
        assert_eq!(csv_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_safe("plain"), "plain");
    }

    #[test]
    fn percent_encoding_for_wa_me() {
        assert_eq!(
            percent_encode("Hi! I scanned the code at 12 Elm St."),
            "Hi%21%20I%20scanned%20the%20code%20at%2012%20Elm%20St."
        );
        assert_eq!(percent_encode("æ&="), "%C3%A6%26%3D");
    }

    #[test]
    fn import_times() {
        assert!(parse_time("2026-03-14T15:09:26Z").is_some());
        assert!(parse_time("2026-03-14 15:09:26").is_some());
        assert!(parse_time("2026-03-14").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}

//! Forms staff define: their fields and channels, the checks on them, and
//! creating, changing and reading a form.

use super::*;

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

/// A checkbox a form offers: a channel, optionally one purpose, and the
/// consent text shown beside it.
///
/// A channel is asked about either once (a text without a purpose: its
/// consent is recorded without one and covers the purposes that existed
/// before purposes, as every form's did) or per purpose (one checkbox and
/// one versioned text for each, each consent naming its purpose), not both.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ChannelText {
    pub channel: Channel,
    pub consent_text: String,
    /// A defined purpose (`purposes.name`); none asks for the channel once.
    #[serde(default)]
    pub purpose: Option<String>,
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
    /// The purpose its checkbox asks about (none: the channel once).
    #[serde(default)]
    pub purpose: Option<String>,
    /// The purpose's label, for the page (none without a purpose).
    #[serde(default)]
    pub purpose_label: Option<String>,
    pub version: i32,
    /// What consents record as `consent_text_version`: `whatsapp:v2`, or
    /// `whatsapp:reminders:v3` for a purpose's text.
    pub label: String,
    pub text: String,
    /// SHA-256 of `text`, hex.
    pub hash: String,
    /// The version shown now (at most one per form, channel and purpose).
    pub current: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl ConsentTextVersion {
    pub(super) fn from_model(m: consent_text::Model) -> Option<Self> {
        let channel: Channel = m.channel.parse().ok()?;
        Some(ConsentTextVersion {
            label: version_label(channel, m.purpose.as_deref(), m.version),
            id: m.id,
            form_id: m.form_id,
            channel,
            purpose: m.purpose,
            purpose_label: None,
            version: m.version,
            text: m.text,
            hash: m.hash,
            current: m.current,
            created_by: m.created_by,
            created_at: m.created_at,
        })
    }

    /// What its checkbox sends (`channel` values, and the suffix of
    /// `text_version_<key>`): `whatsapp`, or `whatsapp:reminders`.
    pub fn key(&self) -> String {
        offer_key(self.channel, self.purpose.as_deref())
    }
}

/// A checkbox's key: the channel, then `:<purpose>` for a purpose's text.
pub fn offer_key(channel: Channel, purpose: Option<&str>) -> String {
    match purpose {
        Some(p) => format!("{}:{p}", channel.as_str()),
        None => channel.as_str().to_string(),
    }
}

/// The `consent_text_version` recorded with a consent: `whatsapp:v2`, or
/// `whatsapp:reminders:v3`. Versions are numbered per form and channel, so a
/// label names one text of the form.
pub fn version_label(channel: Channel, purpose: Option<&str>, version: i32) -> String {
    format!("{}:v{version}", offer_key(channel, purpose))
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
    /// The checkboxes offered now (WhatsApp first, then by purpose), each
    /// with its current text.
    pub channels: Vec<ConsentTextVersion>,
    /// `<public URL>/optin/<slug>`
    pub url: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Form {
    /// The current consent text of a checkbox the form offers: the channel
    /// asked once (`purpose` none) or for one purpose.
    pub fn offer(&self, channel: Channel, purpose: Option<&str>) -> Option<&ConsentTextVersion> {
        self.channels
            .iter()
            .find(|c| c.channel == channel && c.purpose.as_deref() == purpose)
    }

    /// Whether the form offers a channel at all.
    pub fn offers(&self, channel: Channel) -> bool {
        self.channels.iter().any(|c| c.channel == channel)
    }
}

/// `<public URL><path>`, for links in messages, evidence and QR codes.
pub fn public_url(core: &Core, path: &str) -> String {
    format!(
        "{}{path}",
        core.settings.public_base().as_str().trim_end_matches('/')
    )
}

pub(super) fn clean(s: &str) -> String {
    s.trim().replace("\r\n", "\n")
}

pub(super) fn has_control(s: &str) -> bool {
    s.chars().any(|c| c.is_control() && c != '\n' && c != '\t')
}

pub(super) fn check_text(
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

pub(super) fn check_fields(errors: &mut FieldErrors, fields: &[FormField]) -> Vec<FormField> {
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

/// A checked checkbox of a form: channel, purpose (none: the channel once)
/// and its consent text.
pub(super) type Offer = (Channel, Option<String>, String);

/// Check the checkboxes a form offers: at least one, none twice, each
/// purpose defined, and a channel asked either once or per purpose.
pub(super) async fn check_channels(
    db: &impl ConnectionTrait,
    errors: &mut FieldErrors,
    channels: &[ChannelText],
) -> Result<Vec<Offer>, sea_orm::DbErr> {
    if channels.is_empty() {
        errors.insert(
            "channels".into(),
            "offer at least one channel (whatsapp or sms) with its consent text".into(),
        );
    }
    let mut seen = BTreeSet::new();
    let mut out: Vec<Offer> = Vec::new();
    for c in channels {
        let purpose = c
            .purpose
            .as_deref()
            .map(|p| p.trim().to_ascii_lowercase())
            .filter(|p| !p.is_empty());
        let field = format!(
            "channels.{}",
            offer_key(c.channel, purpose.as_deref()).replace(':', ".")
        );
        if !seen.insert((c.channel, purpose.clone())) {
            errors.insert(field, "this channel and purpose are listed twice".into());
            continue;
        }
        if let Some(p) = &purpose {
            if crate::consent::purposes::find(db, p).await?.is_none() {
                errors.insert(
                    field,
                    format!("there is no purpose '{p}'; an admin defines purposes on the Templates page"),
                );
                continue;
            }
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
        out.push((c.channel, purpose, text));
    }
    for channel in [Channel::WhatsApp, Channel::Sms] {
        let of: Vec<&Offer> = out.iter().filter(|o| o.0 == channel).collect();
        if of.iter().any(|o| o.1.is_none()) && of.iter().any(|o| o.1.is_some()) {
            errors.insert(
                format!("channels.{}", channel.as_str()),
                "ask for this channel either once (a text without a purpose) or per purpose, not both"
                    .into(),
            );
        }
    }
    out.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    Ok(out)
}

/// Check a confirmation template against what is registered: it must be
/// able to state how to opt out and use only variables Heimdall can fill.
pub(super) async fn check_template(
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

pub(super) fn parse_fields_json(s: &str) -> Vec<FormField> {
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

pub(super) async fn to_form(
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
    let channels = check_channels(&core.db.conn, &mut errors, &input.channels).await?;
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
    for (channel, purpose, text) in &channels {
        put_text(&txn, &id, *channel, purpose.as_deref(), text, actor, now).await?;
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
    let channels = match &update.channels {
        Some(c) => Some(check_channels(&core.db.conn, &mut errors, c).await?),
        None => None,
    };
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
        for (channel, purpose, text) in channels {
            let (v, created) = put_text(
                &txn,
                form_id,
                *channel,
                purpose.as_deref(),
                text,
                actor,
                now,
            )
            .await?;
            if created {
                new_versions.push(v.label);
            }
        }
        // A checkbox left out is no longer offered (its texts stay on record).
        let left_out: Vec<String> = current_texts(&txn, form_id)
            .await?
            .into_iter()
            .filter(|t| {
                !channels
                    .iter()
                    .any(|(c, p, _)| *c == t.channel && *p == t.purpose)
            })
            .map(|t| t.id)
            .collect();
        if !left_out.is_empty() {
            consent_text::Entity::update_many()
                .col_expr(consent_text::Column::Current, Expr::value(false))
                .filter(consent_text::Column::Id.is_in(left_out))
                .exec(&txn)
                .await?;
        }
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

//! Public submissions: validation, one consent per ticked checkbox (a
//! channel, or a channel and a purpose) with its evidence, and double
//! opt-in confirmation.

use super::*;
use crate::compliance::gates::ConsentStatus;

/// A submission as the browser sent it (parsed by [`SubmissionInput::from_pairs`]).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SubmissionInput {
    pub name: String,
    pub phone: String,
    /// The ticked checkboxes, as sent: `whatsapp`, or `whatsapp:<purpose>`
    /// ([`ConsentTextVersion::key`]).
    pub channels: Vec<String>,
    /// Per checkbox key, the consent text version the page showed.
    pub text_versions: BTreeMap<String, String>,
    /// Extra fields by key.
    pub fields: BTreeMap<String, String>,
    /// The honeypot: must be empty.
    pub honeypot: String,
}

impl SubmissionInput {
    /// From the form's `application/x-www-form-urlencoded` pairs: `name`,
    /// `phone`, `channel` (repeated), `text_version_<key>`,
    /// `field_<key>`, and the honeypot [`HONEYPOT_FIELD`].
    pub fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let mut s = SubmissionInput::default();
        for (k, v) in pairs {
            match k.as_str() {
                "name" => s.name = v,
                "phone" => s.phone = v,
                "channel" => {
                    if s.channels.len() < 32 {
                        s.channels.push(v)
                    }
                }
                k if k == HONEYPOT_FIELD => s.honeypot = v,
                k => {
                    if let Some(key) = k.strip_prefix("text_version_") {
                        if s.text_versions.len() < 32 {
                            s.text_versions.insert(key.to_string(), v);
                        }
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

    /// Whether a checkbox (its [`ConsentTextVersion::key`]) was ticked, for
    /// re-rendering the form.
    pub fn ticked(&self, key: &str) -> bool {
        self.channels.iter().any(|c| c.trim() == key)
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
pub(super) struct ValidSubmission {
    pub(super) name: String,
    pub(super) phone: PhoneNumber,
    pub(super) channels: Vec<ConsentTextVersion>,
    pub(super) fields: BTreeMap<String, String>,
}

/// Check a submission against its form. Pure: the errors name the field
/// (`name`, `phone`, `channels`, `field_<key>`) and say what to do.
pub(super) fn validate_submission(
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
        let raw = raw.trim();
        let (channel, purpose) = match raw.split_once(':') {
            Some((c, p)) => (c, Some(p)),
            None => (raw, None),
        };
        let Ok(channel) = channel.parse::<Channel>() else {
            unknown = true;
            continue;
        };
        if channels
            .iter()
            .any(|c: &ConsentTextVersion| c.channel == channel && c.purpose.as_deref() == purpose)
        {
            continue;
        }
        match form.offer(channel, purpose) {
            None => unknown = true,
            Some(text) => {
                let shown = input
                    .text_versions
                    .get(&text.key())
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
    /// The purpose the checkbox asked about (none: the channel once).
    pub purpose: Option<String>,
    /// Its label, for the page.
    pub purpose_label: Option<String>,
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

pub(super) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::thread_rng().fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn token_hash(token: &str) -> String {
    crate::consent::text_hash(token)
}

pub(super) fn truncate(s: &str, max: usize) -> String {
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
    // An erased person's number: opted out until the number says otherwise.
    crate::consent::tombstone::carry_over(core, &txn, &contact.id, &contact.phone_e164, now)
        .await?;

    let mut receipts = Vec::new();
    // Per channel: one confirmation for every box of it ticked here (its
    // pending consents share the link's token), and the receipts it answers.
    let mut to_confirm: Vec<Confirming> = Vec::new();
    for text in &valid.channels {
        let channel = text.channel;
        let purpose = match text.purpose.as_deref() {
            Some(name) => match crate::consent::purposes::find(&txn, name).await? {
                Some(p) => Some(p),
                None => {
                    return Err(SubmitError::Invalid(one_error(
                        "channels",
                        "Choose from the options shown on this page.",
                    )))
                }
            },
            None => None,
        };
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
            purpose: text.purpose.clone(),
            purpose_label: text.purpose_label.clone(),
            status,
            consent_id: consent_id.to_string(),
            consent_text_version: text.label.clone(),
            confirmation: None,
        };
        if crate::consent::opted_out(&txn, &contact.id, channel, purpose.as_ref())
            .await?
            .is_some()
        {
            // The same claim again adds nothing.
            if let Some(c) = same.iter().find(|c| c.status == ConsentStatus::Pending) {
                receipts.push(receipt(ChannelStatus::NeedsProofFromNumber, &c.id));
                continue;
            }
        } else {
            if let Some(c) = same.iter().find(|c| c.status == ConsentStatus::Active) {
                receipts.push(receipt(ChannelStatus::AlreadySubscribed, &c.id));
                continue;
            }
            if let Some(c) = same.iter().find(|c| {
                c.status == ConsentStatus::Pending && c.created_at + CONFIRMATION_TTL > now
            }) {
                receipts.push(receipt(ChannelStatus::AlreadyAwaitingConfirmation, &c.id));
                continue;
            }
            if form.double_opt_in {
                // A pending record would become the newest and so the deciding
                // one: it must not put an active subscriber on hold.
                let cur = match &purpose {
                    Some(p) => {
                        crate::consent::current_consent_for(&txn, &contact.id, channel, p).await?
                    }
                    None => crate::consent::current_consent(&txn, &contact.id, channel).await?,
                };
                if let Some(cur) = cur {
                    if cur.status == ConsentStatus::Active && cur.revoked_at.is_none() {
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
        // A box for one purpose records a consent naming it; a channel asked
        // once records one without a purpose, which covers the purposes that
        // existed before purposes, as every form's did.
        let outcome = crate::consent::record_opt_in(
            &txn,
            &contact.id,
            channel,
            purpose.as_ref(),
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
                let group = match to_confirm.iter().position(|g| g.channel == channel) {
                    Some(i) => i,
                    None => {
                        // The purpose the confirmation is checked for: the box's, or
                        // for a channel asked once one its consent covers (a legacy
                        // purpose), whatever purpose a confirmation template has.
                        let purpose = match &text.purpose {
                            Some(p) => Some(p.clone()),
                            None => legacy_purpose(&txn).await?,
                        };
                        to_confirm.push(Confirming {
                            answers: Vec::new(),
                            channel,
                            consent_id: rec.id.clone(),
                            purpose,
                            token: new_token(),
                        });
                        to_confirm.len() - 1
                    }
                };
                consent::Entity::update_many()
                    .col_expr(
                        consent::Column::ConfirmationTokenHash,
                        Expr::value(Some(token_hash(&to_confirm[group].token))),
                    )
                    .filter(consent::Column::Id.eq(&rec.id))
                    .exec(&txn)
                    .await?;
                to_confirm[group].answers.push(receipts.len());
                receipts.push(receipt(ChannelStatus::AwaitingConfirmation, &rec.id));
            }
            OptInOutcome::Active { consent: rec } => {
                receipts.push(receipt(ChannelStatus::Subscribed, &rec.id));
            }
        }
    }
    txn.commit().await?;

    for c in to_confirm {
        let sent = request_confirmation(core, form, &contact.id, &valid.name, &c).await;
        for i in c.answers {
            receipts[i].confirmation = sent.clone();
        }
    }
    metrics::counter!("heimdall_optin_submissions_total", "result" => "recorded").increment(1);
    Ok(SubmitOutcome::Recorded(SubmitReceipt {
        contact_id: contact.id,
        contact_created,
        channels: receipts,
    }))
}

/// One confirmation to ask for: every box of a channel ticked in one
/// submission that is now pending shares it (and its link's token).
pub(super) struct Confirming {
    /// The receipts it answers.
    answers: Vec<usize>,
    channel: Channel,
    /// The first pending consent (the message's idempotency key).
    consent_id: String,
    /// Its purpose: the consent gate looks for that pending consent.
    purpose: Option<String>,
    token: String,
}

/// A purpose that a consent recorded without one covers (a legacy one,
/// not marketing if there is such).
async fn legacy_purpose(db: &impl ConnectionTrait) -> Result<Option<String>, sea_orm::DbErr> {
    let all = crate::consent::purposes::list(db).await?;
    Ok(all
        .iter()
        .filter(|p| p.legacy)
        .min_by_key(|p| p.marketing)
        .map(|p| p.name.clone()))
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
pub(super) async fn request_confirmation(
    core: &Core,
    form: &Form,
    contact_id: &str,
    name: &str,
    confirming: &Confirming,
) -> Option<ConfirmationRequest> {
    let Confirming {
        channel,
        consent_id,
        token,
        purpose,
        ..
    } = confirming;
    let (channel, consent_id) = (*channel, consent_id.as_str());
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
            // A consent for one purpose is looked for as that purpose's.
            purpose: purpose.clone(),
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

/// The pending consents a confirmation link stands for (one per box of the
/// channel ticked in one submission; the first decides the view).
pub(super) async fn find_by_token(
    core: &Core,
    token: &str,
) -> Result<Option<(Vec<consent::Model>, ConfirmationView)>, sea_orm::DbErr> {
    let token = token.trim();
    let plausible = (20..=128).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !plausible {
        return Ok(None);
    }
    let all = consent::Entity::find()
        .filter(consent::Column::ConfirmationTokenHash.eq(token_hash(token)))
        .order_by_asc(consent::Column::CreatedAt)
        .order_by_asc(consent::Column::Id)
        .all(&core.db.conn)
        .await?;
    let Some(c) = all.first().cloned() else {
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
    Ok(Some((all, view)))
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
    let Some((all, mut view)) = find_by_token(core, token).await? else {
        return Ok(None);
    };
    if view.status != ConfirmationStatus::Pending {
        return Ok(Some(view));
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let mut done = Vec::new();
    for c in &all {
        done.push(crate::consent::confirm_by_link(&txn, &c.id, now).await?);
    }
    txn.commit().await?;
    use crate::consent::LinkConfirmation as L;
    if done.iter().any(|d| matches!(d, L::Confirmed)) {
        tracing::info!(consent_id = %view.consent_id, consents = done.iter().filter(|d| matches!(d, L::Confirmed)).count(), channel = %view.channel, "opt-in confirmed by link");
        view.status = ConfirmationStatus::Confirmed;
    } else if done.iter().any(|d| matches!(d, L::OptedOut(_))) {
        // A link is not the number: it cannot undo an opt-out.
        view.status = ConfirmationStatus::Revoked;
    } else if let Some((_, v)) = find_by_token(core, token).await? {
        view = v;
    }
    Ok(Some(view))
}

//! Consent texts: each checkbox of a form (a channel, or a channel and a
//! purpose) has versioned texts; a new version supersedes the old one,
//! which stays on record with its hash. Versions are numbered per form and
//! channel, so a version label names one text.

use super::*;

/// Consent text models as versions, with their purposes' labels.
async fn versions(
    db: &impl ConnectionTrait,
    models: Vec<consent_text::Model>,
) -> Result<Vec<ConsentTextVersion>, sea_orm::DbErr> {
    let purposes = crate::consent::purposes::list(db).await?;
    Ok(models
        .into_iter()
        .filter_map(ConsentTextVersion::from_model)
        .map(|mut v| {
            v.purpose_label = v.purpose.as_deref().map(|name| {
                purposes
                    .iter()
                    .find(|p| p.name == name)
                    .map(|p| p.label.clone())
                    .unwrap_or_else(|| name.to_string())
            });
            v
        })
        .collect())
}

pub(super) async fn current_texts(
    db: &impl ConnectionTrait,
    form_id: &str,
) -> Result<Vec<ConsentTextVersion>, sea_orm::DbErr> {
    let models = consent_text::Entity::find()
        .filter(consent_text::Column::FormId.eq(form_id))
        .filter(consent_text::Column::Current.eq(true))
        .all(db)
        .await?;
    let mut out = versions(db, models).await?;
    out.sort_by(|a, b| (a.channel, &a.purpose).cmp(&(b.channel, &b.purpose)));
    Ok(out)
}

/// Add a version of a checkbox's consent text (inside a transaction), or
/// keep the current one when the text is the same.
pub(super) async fn put_text(
    db: &impl ConnectionTrait,
    form_id: &str,
    channel: Channel,
    purpose: Option<&str>,
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
    let same_box = |t: &&consent_text::Model| t.purpose.as_deref() == purpose;
    if let Some(cur) = all.iter().filter(same_box).find(|t| t.current) {
        if cur.text == text {
            if let Some(v) = ConsentTextVersion::from_model(cur.clone()) {
                return Ok((v, false));
            }
        }
    }
    let version = all.first().map(|t| t.version + 1).unwrap_or(1);
    let superseded: Vec<String> = all
        .iter()
        .filter(same_box)
        .filter(|t| t.current)
        .map(|t| t.id.clone())
        .collect();
    if !superseded.is_empty() {
        consent_text::Entity::update_many()
            .col_expr(consent_text::Column::Current, Expr::value(false))
            .filter(consent_text::Column::Id.is_in(superseded))
            .exec(db)
            .await?;
    }
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
        purpose: Set(purpose.map(str::to_string)),
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

/// Add a new version of a checkbox's consent text: a channel's (`purpose`
/// none) or a channel's for one purpose (and offer it, if it was not
/// offered). Consents already given keep the version they recorded; the
/// new text is shown from now on. A channel asked once cannot also be
/// asked per purpose, nor the other way round.
pub async fn add_consent_text(
    core: &Core,
    form_id: &str,
    channel: Channel,
    purpose: Option<&str>,
    text: &str,
    actor: &str,
) -> Result<ConsentTextVersion, FormError> {
    let form = get_form(core, form_id).await?;
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
    let purpose = purpose
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty());
    if let Some(p) = &purpose {
        if crate::consent::purposes::find(&core.db.conn, p)
            .await?
            .is_none()
        {
            errors.insert(
                "purpose".into(),
                format!(
                    "there is no purpose '{p}'; an admin defines purposes on the Templates page"
                ),
            );
        }
    }
    if form
        .channels
        .iter()
        .any(|t| t.channel == channel && t.purpose.is_some() != purpose.is_some())
    {
        errors.insert(
            "purpose".into(),
            "this form asks for this channel the other way (once, or per purpose); ask either once or per purpose, not both".into(),
        );
    }
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let (v, created) = put_text(
        &txn,
        form_id,
        channel,
        purpose.as_deref(),
        &text,
        actor,
        now,
    )
    .await?;
    if created {
        audit::record_staff_action(
            &txn,
            actor,
            "optin_form.consent_text",
            Some(form_id),
            Some(serde_json::json!({"version": v.label, "hash": v.hash, "purpose": v.purpose})),
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
    if !form.offers(channel) {
        return Ok(form);
    }
    if form.channels.iter().all(|t| t.channel == channel) {
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
    let models = consent_text::Entity::find()
        .filter(consent_text::Column::FormId.eq(form_id))
        .order_by_asc(consent_text::Column::Channel)
        .order_by_desc(consent_text::Column::Version)
        .all(&core.db.conn)
        .await?;
    versions(&core.db.conn, models).await
}

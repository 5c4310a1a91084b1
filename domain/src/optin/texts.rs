//! Consent texts: each channel of a form has versioned texts; a new
//! version supersedes the old one, which stays on record with its hash.

use super::*;

pub(super) async fn current_texts(
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

/// Add a version of a channel's consent text (inside a transaction), or
/// keep the current one when the text is the same.
pub(super) async fn put_text(
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
        purpose: Set(None),
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

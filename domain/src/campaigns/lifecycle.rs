//! A campaign from draft to approval and after: create, edit, submit, approve
//! (by a second person), reject, pause, resume, cancel; each status change is
//! the one table CampaignStatus::apply, written with a compare-and-set.

use super::*;

/// Write a new draft (operator or above).
pub async fn create_draft(
    core: &Core,
    actor: &StaffUser,
    draft: CampaignDraft,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "create campaigns")?;
    let draft = normalise(draft);
    let template = validate(core, &draft).await?;
    let now = core.now();
    let id = new_id();
    let txn = core.db.begin_write().await?;
    campaign::ActiveModel {
        id: Set(id.clone()),
        name: Set(draft.name.clone()),
        channel: Set(draft.channel.as_str().into()),
        template_id: Set(template.id.clone()),
        audience: Set(
            serde_json::to_string(&stored_audience(core, &draft.audience))
                .unwrap_or_else(|_| "{}".into()),
        ),
        variable_mapping: Set(
            serde_json::to_string(&draft.variables).unwrap_or_else(|_| "{}".into())
        ),
        scheduled_at: Set(draft.scheduled_at),
        send_on_approval: Set(draft.scheduled_at.is_none()),
        status: Set(CampaignStatus::Draft),
        created_by: Set(actor.id.clone()),
        submitted_at: Set(None),
        approved_by: Set(None),
        approved_at: Set(None),
        rejection_reason: Set(None),
        fanned_out_at: Set(None),
        completed_at: Set(None),
        fan_out_finished_at: Set(None),
        recipients: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        authors: Set(serde_json::json!([actor.id]).to_string()),
        approved_hash: Set(None),
        approved_snapshot: Set(None),
        purpose: Set(template.purpose.clone()),
    }
    .insert(&txn)
    .await?;
    audit::record_staff_action(
        &txn,
        &actor.email,
        "campaign created",
        Some(&target(&id)),
        Some(serde_json::json!({"name": draft.name, "template": template.name})),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &id).await
}

/// Change a draft: its author or an admin, while it is a draft or was
/// rejected (it becomes a draft again).
pub async fn update_draft(
    core: &Core,
    actor: &StaffUser,
    id: &str,
    draft: CampaignDraft,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "edit campaigns")?;
    let m = load(core, id).await?;
    if m.created_by != actor.id && actor.role != Role::Admin {
        return Err(CampaignError::Forbidden(
            "only the campaign's author or an admin may edit it".into(),
        ));
    }
    let from = m.status;
    let to = next_status(from, CampaignAction::Edit)?;
    let draft = normalise(draft);
    let template = validate(core, &draft).await?;
    let now = core.now();
    // Whoever changes it is one of its authors from now on.
    let mut authors = authz::campaign_authors(&m);
    if !authors.contains(&actor.id) {
        authors.push(actor.id.clone());
    }
    let txn = begin_move(core, &m.id, from, to, "edit", now, |u| {
        u.col_expr(
            campaign::Column::Authors,
            Expr::value(serde_json::json!(authors).to_string()),
        )
        .col_expr(campaign::Column::Name, Expr::value(draft.name.clone()))
        .col_expr(
            campaign::Column::Channel,
            Expr::value(draft.channel.as_str()),
        )
        .col_expr(
            campaign::Column::TemplateId,
            Expr::value(template.id.clone()),
        )
        .col_expr(
            campaign::Column::Purpose,
            Expr::value(template.purpose.clone()),
        )
        .col_expr(
            campaign::Column::Audience,
            Expr::value(
                serde_json::to_string(&stored_audience(core, &draft.audience))
                    .unwrap_or_else(|_| "{}".into()),
            ),
        )
        .col_expr(
            campaign::Column::VariableMapping,
            Expr::value(serde_json::to_string(&draft.variables).unwrap_or_else(|_| "{}".into())),
        )
        .col_expr(
            campaign::Column::ScheduledAt,
            Expr::value(draft.scheduled_at),
        )
        .col_expr(
            campaign::Column::SendOnApproval,
            Expr::value(draft.scheduled_at.is_none()),
        )
        .col_expr(
            campaign::Column::RejectionReason,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            campaign::Column::SubmittedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
    })
    .await?;
    if from == CampaignStatus::Rejected {
        record(&txn, &m.id, Some(actor), "reopened", None, None, None, now).await?;
    }
    audit::record_staff_action(
        &txn,
        &actor.email,
        "campaign updated",
        Some(&target(&m.id)),
        Some(serde_json::json!({"name": draft.name, "template": template.name})),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Ask for approval (operator or above). The draft is checked again: its
/// template or the consents of a number list may have changed.
pub async fn submit(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "submit campaigns")?;
    let m = load(core, id).await?;
    let from = m.status;
    let to = next_status(from, CampaignAction::Submit)?;
    let template = template_of(core, &m).await?;
    validate(core, &draft_of(&m, template.name)).await?;
    let now = core.now();
    let txn = begin_move(core, &m.id, from, to, "submit", now, |u| {
        u.col_expr(campaign::Column::SubmittedAt, Expr::value(Some(now)))
    })
    .await?;
    record(
        &txn,
        &m.id,
        Some(actor),
        "submitted",
        None,
        Some("campaign submitted"),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Approve (approver or above, never one of its authors) what the approver
/// reviewed: `reviewed` is the review's [`Review::content_hash`]; if the
/// campaign changed since, nothing is approved. The campaign is then
/// scheduled, or its fan-out is enqueued at once.
pub async fn approve(
    core: &Core,
    actor: &StaffUser,
    id: &str,
    reviewed: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Approver, "approve campaigns")?;
    let m = load(core, id).await?;
    if authz::campaign_authors(&m).contains(&actor.id) {
        return Err(CampaignError::SelfApproval);
    }
    let from = m.status;
    let now = core.now();
    let to = next_status(
        from,
        CampaignAction::Approve {
            scheduled_ahead: m.scheduled_at.is_some_and(|at| at > now),
        },
    )?;
    let template = template_of(core, &m).await?;
    check_template(core, &template.name, &parse_variables(&m.variable_mapping)).await?;
    let snapshot = content_snapshot(core, &m).await?;
    let hash = snapshot.hash();
    if reviewed.trim() != hash {
        return Err(CampaignError::Changed(
            "its template, mapping, audience or schedule is not what the review showed".into(),
        ));
    }
    let txn = begin_move(core, &m.id, from, to, "approve", now, |u| {
        u.col_expr(
            campaign::Column::ApprovedBy,
            Expr::value(Some(actor.id.clone())),
        )
        .col_expr(campaign::Column::ApprovedAt, Expr::value(Some(now)))
        .col_expr(
            campaign::Column::ApprovedHash,
            Expr::value(Some(hash.clone())),
        )
        .col_expr(
            campaign::Column::ApprovedSnapshot,
            Expr::value(Some(serde_json::to_string(&snapshot).unwrap_or_default())),
        )
        // The authors who were current when it was reviewed.
        .filter(campaign::Column::Authors.eq(m.authors.clone()))
    })
    .await?;
    record(
        &txn,
        &m.id,
        Some(actor),
        "approved",
        None,
        Some("campaign approved"),
        Some(serde_json::json!({
            "status": to.as_str(),
            "scheduled_at": m.scheduled_at,
            "content_hash": hash,
            "audience_count": snapshot.audience_count,
        })),
        now,
    )
    .await?;
    txn.commit().await?;
    if to == CampaignStatus::Approved {
        enqueue_fan_out(core, &m.id).await;
    }
    get(core, &m.id).await
}

/// Send back to the author with a reason (approver or above, not the author).
pub async fn reject(
    core: &Core,
    actor: &StaffUser,
    id: &str,
    reason: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Approver, "reject campaigns")?;
    let m = load(core, id).await?;
    if authz::campaign_authors(&m).contains(&actor.id) {
        return Err(CampaignError::SelfApproval);
    }
    let reason = reason.trim();
    if reason.is_empty() {
        return Err(invalid("reason", "say why the campaign is rejected"));
    }
    let reason: String = reason.chars().take(2000).collect();
    let from = m.status;
    let to = next_status(from, CampaignAction::Reject)?;
    let now = core.now();
    let txn = begin_move(core, &m.id, from, to, "reject", now, |u| {
        u.col_expr(
            campaign::Column::RejectionReason,
            Expr::value(Some(reason.clone())),
        )
    })
    .await?;
    record(
        &txn,
        &m.id,
        Some(actor),
        "rejected",
        Some(&reason),
        Some("campaign rejected"),
        Some(serde_json::json!({"reason": reason})),
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Stop sending (operator or above): the fan-out stops and the campaign's
/// waiting messages are held (deferred, marked [`PAUSED_REASON`]) until a
/// resume.
pub async fn pause(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "pause campaigns")?;
    let m = load(core, id).await?;
    let from = m.status;
    let to = next_status(from, CampaignAction::Pause)?;
    let now = core.now();
    let txn = begin_move(core, &m.id, from, to, "pause", now, |u| u).await?;
    let held = moving(
        &[MessageState::Queued, MessageState::Deferred],
        MessageState::Deferred,
    )
    .col_expr(
        outbound_message::Column::DeferUntil,
        Expr::value(Some(paused_until())),
    )
    .col_expr(
        outbound_message::Column::BlockReason,
        Expr::value(Some(PAUSED_REASON.to_string())),
    )
    .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
    .filter(outbound_message::Column::CampaignId.eq(&m.id))
    .exec(&txn)
    .await?
    .rows_affected;
    record(
        &txn,
        &m.id,
        Some(actor),
        "paused",
        None,
        Some("campaign paused"),
        Some(serde_json::json!({"from": from.as_str(), "messages_held": held})),
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

/// Go on where the campaign was paused (operator or above): held messages
/// are released to the send queue, and an unfinished fan-out continues.
pub async fn resume(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "resume campaigns")?;
    let m = load(core, id).await?;
    let from = m.status;
    let now = core.now();
    let to = next_status(
        from,
        CampaignAction::Resume {
            fanned_out: m.fanned_out_at.is_some(),
            scheduled_ahead: m.scheduled_at.is_some_and(|at| at > now),
        },
    )?;
    let held = |q: sea_orm::Select<outbound_message::Entity>| {
        q.filter(outbound_message::Column::CampaignId.eq(&m.id))
            .filter(outbound_message::Column::State.eq(MessageState::Deferred.as_str()))
            .filter(outbound_message::Column::BlockReason.eq(PAUSED_REASON))
    };
    let txn = begin_move(core, &m.id, from, to, "resume", now, |u| u).await?;
    let released: Vec<String> = held(outbound_message::Entity::find())
        .select_only()
        .column(outbound_message::Column::Id)
        .into_tuple()
        .all(&txn)
        .await?;
    outbound::release_held(&txn, &released, PAUSED_REASON, now).await?;
    record(
        &txn,
        &m.id,
        Some(actor),
        "resumed",
        None,
        Some("campaign resumed"),
        Some(serde_json::json!({"to": to.as_str(), "messages_released": released.len()})),
        now,
    )
    .await?;
    txn.commit().await?;
    for message_id in released {
        // The worker evaluates the gates again (quiet hours may hold it).
        if let Err(e) = core.queue.enqueue_send(message_id.clone(), None).await {
            tracing::error!(%message_id, error = %e, "could not enqueue a released message; housekeeping will retry");
        }
    }
    let unfinished_fan_out = to == CampaignStatus::Sending && m.fan_out_finished_at.is_none();
    if to == CampaignStatus::Approved || unfinished_fan_out {
        enqueue_fan_out(core, &m.id).await;
    }
    get(core, &m.id).await
}

/// Withdraw the campaign (operator or above): its waiting messages are
/// cancelled and nothing more is sent.
pub async fn cancel(
    core: &Core,
    actor: &StaffUser,
    id: &str,
) -> Result<CampaignView, CampaignError> {
    require(actor, Role::Operator, "cancel campaigns")?;
    let m = load(core, id).await?;
    let from = m.status;
    let to = next_status(from, CampaignAction::Cancel)?;
    let now = core.now();
    let txn = begin_move(core, &m.id, from, to, "cancel", now, |u| u).await?;
    let cancelled = moving(
        &[MessageState::Queued, MessageState::Deferred],
        MessageState::Cancelled,
    )
    .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
    .filter(outbound_message::Column::CampaignId.eq(&m.id))
    .exec(&txn)
    .await?
    .rows_affected;
    record(
        &txn,
        &m.id,
        Some(actor),
        "cancelled",
        None,
        Some("campaign cancelled"),
        Some(serde_json::json!({"from": from.as_str(), "messages_cancelled": cancelled})),
        now,
    )
    .await?;
    txn.commit().await?;
    get(core, &m.id).await
}

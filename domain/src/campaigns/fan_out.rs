//! Turning an approved campaign into messages (each through the send path),
//! starting scheduled ones and completing finished ones.

use super::*;

/// The idempotency key of a campaign's message to one contact.
pub fn idempotency_key(campaign_id: &str, contact_id: &str) -> String {
    format!("campaign:{campaign_id}:{contact_id}")
}

/// Turn an approved (or due scheduled) campaign into messages, each through
/// [`outbound::accept`]. Safe to run twice at once or again after a crash:
/// the claim is a compare-and-set to `sending`, a campaign already sending
/// whose fan-out did not finish is continued, and each recipient's message
/// has an idempotency key, so no one ever gets two. Stops when the campaign
/// is paused or cancelled (checked before every recipient); a resume
/// enqueues it again to continue.
///
/// One edge remains by design: a recipient accepted in the very instant a
/// pause lands is evaluated against the paused campaign and blocked
/// (`not_authorized`, recorded, never sent) instead of held, because the
/// gates read the campaign's status and a blocked message stays final.
pub async fn fan_out(core: &Core, id: &str) -> Result<FanOutReport, CampaignError> {
    let m = load(core, id).await?;
    let now = core.now();
    let status = m.status;
    let due = match status {
        CampaignStatus::Approved | CampaignStatus::Sending => true,
        CampaignStatus::Scheduled => m.scheduled_at.is_none_or(|at| at <= now),
        _ => false,
    };
    if due && m.fan_out_finished_at.is_none() {
        // The approval binds to what the approver reviewed: if that is
        // not what would go out now, nothing goes out.
        let current = content_snapshot(core, &m).await?;
        if m.approved_hash.as_deref() != Some(current.hash().as_str()) {
            return_to_review(core, &m, status, &current).await?;
            let after = load(core, &m.id).await?;
            return Ok(FanOutReport {
                campaign_id: m.id.clone(),
                claimed: false,
                status: after.status,
                recipients: 0,
                created: 0,
                existing: 0,
                skipped: 0,
                finished: false,
                by_state: BTreeMap::new(),
            });
        }
    }
    let txn = core.db.begin_write().await?;
    let claimed = campaign::Entity::update_many()
        .col_expr(
            campaign::Column::Status,
            Expr::value(CampaignStatus::Sending),
        )
        .col_expr(campaign::Column::FannedOutAt, Expr::value(Some(now)))
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::Id.eq(&m.id))
        .filter(
            Condition::any()
                .add(campaign::Column::Status.eq(CampaignStatus::Approved))
                .add(
                    Condition::all()
                        .add(campaign::Column::Status.eq(CampaignStatus::Scheduled))
                        .add(campaign::Column::ScheduledAt.lte(now)),
                ),
        )
        .exec(&txn)
        .await?
        .rows_affected
        == 1;
    if claimed {
        record(&txn, &m.id, None, "sending", None, None, None, now).await?;
    }
    txn.commit().await?;
    let m = load(core, id).await?;
    let status = m.status;
    let mut report = FanOutReport {
        campaign_id: m.id.clone(),
        claimed,
        status,
        recipients: 0,
        created: 0,
        existing: 0,
        skipped: 0,
        finished: m.fan_out_finished_at.is_some(),
        by_state: BTreeMap::new(),
    };
    if status != CampaignStatus::Sending || m.fan_out_finished_at.is_some() {
        return Ok(report);
    }
    let template = template_of(core, &m).await?;
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let mapping = parse_variables(&m.variable_mapping);
    let (contacts, unresolved) = recipients(core, &parse_audience(&m.audience)).await?;
    report.recipients = contacts.len();
    report.skipped = unresolved.len();
    for (i, c) in contacts.iter().enumerate() {
        // Checked before every recipient, so a pause or cancel stops the run
        // at once; every CHECK_EVERY recipients the check is also the run's
        // heartbeat.
        let going_on = if i > 0 && i % CHECK_EVERY == 0 {
            still_sending(core, &m.id).await?
        } else {
            current_status(core, &m.id).await? == Some(CampaignStatus::Sending)
        };
        if !going_on {
            report.status = load(core, &m.id).await?.status;
            return Ok(report);
        }
        if core.stopping.is_set() {
            // This process is stopping (SIGTERM): the fan-out is enqueued again for
            // another process to continue at once (the recipients done so far are
            // found by their idempotency keys), instead of waiting for this run to be
            // found stale.
            match core.queue.enqueue_campaign(m.id.clone()).await {
                Ok(()) => {
                    tracing::info!(campaign_id = %m.id, done = i, "fan-out handed over: this process is stopping")
                }
                Err(e) => {
                    tracing::warn!(campaign_id = %m.id, error = %e, "fan-out stopped with its process; it resumes when found stale")
                }
            }
            return Ok(report);
        }
        let (variables, _) = variables_for(&mapping, c);
        let res = outbound::accept(
            core,
            SendRequest {
                recipient: Recipient::Contact(c.id.clone()),
                channel,
                content: RequestedContent::Template {
                    name: template.name.clone(),
                    variables,
                },
                origin: Origin::Campaign {
                    campaign_id: m.id.clone(),
                },
                idempotency_key: Some(idempotency_key(&m.id, &c.id)),
                purpose: None,
            },
        )
        .await;
        match res {
            Ok(o) if o.duplicate => report.existing += 1,
            Ok(o) => {
                report.created += 1;
                *report.by_state.entry(o.state.as_str().into()).or_default() += 1;
            }
            Err(AcceptError::Db(e)) => return Err(e.into()),
            Err(e) => {
                tracing::warn!(campaign_id = %m.id, contact_id = %c.id, error = %e, "campaign recipient skipped");
                report.skipped += 1;
            }
        }
    }
    let done = core.now();
    let finished = campaign::Entity::update_many()
        .col_expr(campaign::Column::FanOutFinishedAt, Expr::value(Some(done)))
        .col_expr(
            campaign::Column::Recipients,
            Expr::value(Some(i32::try_from(contacts.len()).unwrap_or(i32::MAX))),
        )
        .col_expr(campaign::Column::UpdatedAt, Expr::value(done))
        .filter(campaign::Column::Id.eq(&m.id))
        .filter(campaign::Column::Status.eq(CampaignStatus::Sending))
        .filter(campaign::Column::FanOutFinishedAt.is_null())
        .exec(&core.db.conn)
        .await?;
    let after = load(core, &m.id).await?;
    report.status = after.status;
    report.finished = after.fan_out_finished_at.is_some();
    tracing::info!(
        campaign_id = %m.id,
        recipients = report.recipients,
        created = report.created,
        existing = report.existing,
        skipped = report.skipped,
        marked_finished = finished.rows_affected == 1,
        "campaign fanned out"
    );
    Ok(report)
}

/// A campaign whose content no longer matches its approval goes back to
/// review (`submitted`, the approval cleared), with a history row saying
/// what changed and an alert. Messages already accepted stay as they are
/// (their worker re-checks the template against the approval); once
/// approved again, the fan-out continues where it stopped.
pub(super) async fn return_to_review(
    core: &Core,
    m: &campaign::Model,
    from: CampaignStatus,
    current: &ContentSnapshot,
) -> Result<(), CampaignError> {
    let approved: Option<ContentSnapshot> = m
        .approved_snapshot
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    let what = match &approved {
        Some(a) => current.differences(a),
        None => "it was approved before approvals were bound to content".into(),
    };
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let to = next_status(from, CampaignAction::ReturnToReview)?;
    let res = cas(&m.id, from, now)
        .col_expr(campaign::Column::Status, Expr::value(to))
        .col_expr(
            campaign::Column::ApprovedBy,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            campaign::Column::ApprovedAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(
            campaign::Column::ApprovedHash,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            campaign::Column::ApprovedSnapshot,
            Expr::value(Option::<String>::None),
        )
        .exec(&txn)
        .await?;
    if res.rows_affected != 1 {
        // Paused or cancelled meanwhile: nothing to send anyway.
        txn.rollback().await?;
        return Ok(());
    }
    let reason = format!("changed since it was approved: {what}");
    record(
        &txn,
        &m.id,
        None,
        "returned",
        Some(&reason),
        None,
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    tracing::warn!(campaign_id = %m.id, %what, "campaign returned to review: its content changed since approval");
    alerts::raise(
        core,
        alerts::Alert {
            key: format!("campaign_returned:{}", m.id),
            title: "Campaign returned to review".into(),
            description: format!(
                "Campaign '{}' was not sent: {reason}. An approver must review and approve it again.",
                m.name
            ),
            error_code: None,
            meaning: None,
            message_id: None,
            campaign_id: Some(m.id.clone()),
        },
    )
    .await;
    Ok(())
}

pub(super) async fn current_status(core: &Core, id: &str) -> Result<Option<CampaignStatus>, DbErr> {
    let status: Option<String> = campaign::Entity::find_by_id(id)
        .select_only()
        .column(campaign::Column::Status)
        .into_tuple()
        .one(&core.db.conn)
        .await?;
    Ok(status.as_deref().and_then(CampaignStatus::parse))
}

/// Heartbeat of a running fan-out: touches the campaign while it is still
/// sending; false when it was paused or cancelled meanwhile.
pub(super) async fn still_sending(core: &Core, id: &str) -> Result<bool, DbErr> {
    Ok(campaign::Entity::update_many()
        .col_expr(campaign::Column::UpdatedAt, Expr::value(core.now()))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::Status.eq(CampaignStatus::Sending))
        .exec(&core.db.conn)
        .await?
        .rows_affected
        == 1)
}

/// Housekeeping: scheduled campaigns whose time has come are started
/// (scheduled -> approved, fan-out enqueued). Approved campaigns and
/// unfinished fan-outs with no sign of life for a while are enqueued again
/// (a lost job, a crashed worker). Returns how many fan-outs were enqueued.
pub async fn start_due(core: &Core) -> Result<usize, DbErr> {
    let now = core.now();
    let mut enqueued = Vec::new();
    let due = campaign::Entity::find()
        .filter(campaign::Column::Status.eq(CampaignStatus::Scheduled))
        .filter(campaign::Column::ScheduledAt.lte(now))
        .all(&core.db.conn)
        .await?;
    for m in due {
        let txn = core.db.begin_write().await?;
        let res = cas(&m.id, CampaignStatus::Scheduled, now)
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Approved),
            )
            .filter(campaign::Column::ScheduledAt.lte(now))
            .exec(&txn)
            .await?;
        if res.rows_affected == 1 {
            record(&txn, &m.id, None, "started", None, None, None, now).await?;
            txn.commit().await?;
            enqueued.push(m.id);
        } else {
            txn.rollback().await?;
        }
    }
    let stale = unfinished_fan_outs()
        .filter(campaign::Column::UpdatedAt.lt(now - STALE_AFTER))
        .all(&core.db.conn)
        .await?;
    for m in stale {
        // Touch it, so it is not enqueued again on every tick while the job waits.
        let res = cas(&m.id, m.status, now).exec(&core.db.conn).await?;
        if res.rows_affected == 1 {
            enqueued.push(m.id);
        }
    }
    for id in &enqueued {
        enqueue_fan_out(core, id).await;
    }
    Ok(enqueued.len())
}

/// Approved campaigns and fan-outs that did not finish.
fn unfinished_fan_outs() -> sea_orm::Select<campaign::Entity> {
    campaign::Entity::find().filter(
        Condition::any()
            .add(campaign::Column::Status.eq(CampaignStatus::Approved))
            .add(
                Condition::all()
                    .add(campaign::Column::Status.eq(CampaignStatus::Sending))
                    .add(campaign::Column::FanOutFinishedAt.is_null()),
            ),
    )
}

/// The queue lost its jobs (Redis came back empty): every approved campaign and
/// unfinished fan-out is enqueued again at once, without waiting for
/// [`STALE_AFTER`] (a fan-out run twice sends no one anything twice: each
/// recipient's message has its idempotency key). Returns how many.
pub async fn resume_fan_outs(core: &Core) -> Result<usize, DbErr> {
    let unfinished = unfinished_fan_outs().all(&core.db.conn).await?;
    for m in &unfinished {
        enqueue_fan_out(core, &m.id).await;
    }
    Ok(unfinished.len())
}

/// Message states in which Heimdall still has work to do for a campaign.
pub(super) const UNFINISHED: [MessageState; 3] = [
    MessageState::Pending,
    MessageState::Queued,
    MessageState::Deferred,
];

/// Housekeeping: sending campaigns whose fan-out finished and whose
/// messages are all settled (none waiting or mid-claim; messages handed to
/// the provider count as settled, their statuses keep arriving) become
/// completed. Returns how many.
pub async fn complete_finished(core: &Core) -> Result<usize, DbErr> {
    let now = core.now();
    let candidates = campaign::Entity::find()
        .filter(campaign::Column::Status.eq(CampaignStatus::Sending))
        .filter(campaign::Column::FanOutFinishedAt.is_not_null())
        .all(&core.db.conn)
        .await?;
    let mut n = 0;
    for m in candidates {
        let busy = outbound_message::Entity::find()
            .select_only()
            .column(outbound_message::Column::Id)
            .filter(outbound_message::Column::CampaignId.eq(&m.id))
            .filter(
                Condition::any()
                    .add(outbound_message::Column::State.is_in(UNFINISHED.map(|s| s.as_str())))
                    .add(
                        Condition::all()
                            .add(outbound_message::Column::State.eq(MessageState::Sending.as_str()))
                            .add(outbound_message::Column::ProviderSid.is_null()),
                    ),
            )
            .into_tuple::<String>()
            .one(&core.db.conn)
            .await?;
        if busy.is_some() {
            continue;
        }
        let txn = core.db.begin_write().await?;
        let res = cas(&m.id, CampaignStatus::Sending, now)
            .col_expr(
                campaign::Column::Status,
                Expr::value(CampaignStatus::Completed),
            )
            .col_expr(campaign::Column::CompletedAt, Expr::value(Some(now)))
            .exec(&txn)
            .await?;
        if res.rows_affected == 1 {
            record(&txn, &m.id, None, "completed", None, None, None, now).await?;
            txn.commit().await?;
            n += 1;
        } else {
            txn.rollback().await?;
        }
    }
    Ok(n)
}

//! Reading stored campaigns into views, and writing them: history rows and the
//! compare-and-set every status change goes through.

use super::*;

pub(super) fn parse_audience(s: &str) -> Audience {
    if let Ok(a) = serde_json::from_str::<Audience>(s) {
        return a;
    }
    // The schema's documented shape: {"tags": [...]} or {"phones": [...]}.
    #[derive(Deserialize)]
    struct Loose {
        tags: Option<Vec<String>>,
        phones: Option<Vec<String>>,
    }
    match serde_json::from_str::<Loose>(s) {
        Ok(Loose {
            phones: Some(phones),
            ..
        }) => Audience::Phones { phones },
        Ok(Loose { tags, .. }) => Audience::Tags {
            tags: tags.unwrap_or_default(),
        },
        Err(_) => Audience::Tags { tags: vec![] },
    }
}

pub(super) fn parse_variables(s: &str) -> BTreeMap<String, VariableSource> {
    serde_json::from_str(s).unwrap_or_default()
}

pub(super) fn draft_of(m: &campaign::Model, template_name: String) -> CampaignDraft {
    CampaignDraft {
        name: m.name.clone(),
        channel: m.channel.parse().unwrap_or(Channel::WhatsApp),
        template_name,
        audience: parse_audience(&m.audience),
        variables: parse_variables(&m.variable_mapping),
        scheduled_at: m.scheduled_at,
    }
}

/// What the campaign would send now: the snapshot an approval binds to.
pub async fn content_snapshot(core: &Core, m: &campaign::Model) -> Result<ContentSnapshot, DbErr> {
    let template = template_of(core, m).await?;
    let audience = parse_audience(&m.audience);
    let (contacts, _) = recipients(core, &audience).await?;
    Ok(ContentSnapshot {
        channel: m.channel.parse().unwrap_or(Channel::WhatsApp),
        template_name: template.name.clone(),
        template_digest: template.digest(),
        variables: parse_variables(&m.variable_mapping),
        audience,
        audience_count: contacts.len(),
        scheduled_at: m.scheduled_at,
    })
}

pub(super) async fn load(core: &Core, id: &str) -> Result<campaign::Model, CampaignError> {
    campaign::Entity::find_by_id(id.trim())
        .one(&core.db.conn)
        .await?
        .ok_or(CampaignError::NotFound)
}

pub(super) async fn template_of(core: &Core, m: &campaign::Model) -> Result<Template, DbErr> {
    templates::get(&core.db.conn, &m.template_id)
        .await?
        .ok_or_else(|| DbErr::RecordNotFound(format!("template {}", m.template_id)))
}

/// Build views for many campaigns with a fixed number of queries.
pub(super) async fn views(
    core: &Core,
    models: Vec<campaign::Model>,
) -> Result<Vec<CampaignView>, DbErr> {
    if models.is_empty() {
        return Ok(vec![]);
    }
    let db = &core.db.conn;
    let ids: Vec<String> = models.iter().map(|m| m.id.clone()).collect();
    let mut history: HashMap<String, Vec<campaign_approval::Model>> = HashMap::new();
    for chunk in ids.chunks(500) {
        for a in campaign_approval::Entity::find()
            .filter(campaign_approval::Column::CampaignId.is_in(chunk.to_vec()))
            .order_by_asc(campaign_approval::Column::CreatedAt)
            .order_by_asc(campaign_approval::Column::Id)
            .all(db)
            .await?
        {
            history.entry(a.campaign_id.clone()).or_default().push(a);
        }
    }
    let mut user_ids: BTreeSet<String> = BTreeSet::new();
    for m in &models {
        user_ids.insert(m.created_by.clone());
        if let Some(a) = &m.approved_by {
            user_ids.insert(a.clone());
        }
    }
    for h in history.values() {
        user_ids.extend(h.iter().map(|a| a.actor_id.clone()));
    }
    let mut emails: HashMap<String, String> = HashMap::new();
    let user_ids: Vec<String> = user_ids.into_iter().collect();
    for chunk in user_ids.chunks(500) {
        for u in staff_user::Entity::find()
            .filter(staff_user::Column::Id.is_in(chunk.to_vec()))
            .all(db)
            .await?
        {
            emails.insert(u.id, u.email);
        }
    }
    let template_ids: BTreeSet<String> = models.iter().map(|m| m.template_id.clone()).collect();
    let mut tpl: HashMap<String, (String, String)> = HashMap::new();
    for id in template_ids {
        if let Some(t) = templates::get(db, &id).await? {
            tpl.insert(id, (t.name, t.category.to_uppercase()));
        }
    }
    Ok(models
        .into_iter()
        .map(|m| {
            let (template_name, template_category) = tpl
                .get(&m.template_id)
                .cloned()
                .unwrap_or_else(|| (m.template_id.clone(), "UTILITY".into()));
            let history = history
                .remove(&m.id)
                .unwrap_or_default()
                .into_iter()
                .map(|a| ApprovalEvent {
                    actor_email: emails
                        .get(&a.actor_id)
                        .cloned()
                        .unwrap_or_else(|| a.actor_id.clone()),
                    decision: a.decision,
                    reason: a.reason,
                    at: a.created_at,
                })
                .collect();
            CampaignView {
                authors: authz::campaign_authors(&m),
                status: m.status,
                channel: m.channel.parse().unwrap_or(Channel::WhatsApp),
                audience: parse_audience(&m.audience),
                variables: parse_variables(&m.variable_mapping),
                created_by_email: emails.get(&m.created_by).cloned(),
                approved_by_email: m.approved_by.as_ref().and_then(|a| emails.get(a).cloned()),
                recipients: m.recipients.and_then(|r| u32::try_from(r).ok()),
                id: m.id,
                name: m.name,
                template_name,
                template_category,
                created_by: m.created_by,
                submitted_at: m.submitted_at,
                approved_by: m.approved_by,
                approved_at: m.approved_at,
                rejection_reason: m.rejection_reason,
                scheduled_at: m.scheduled_at,
                fanned_out_at: m.fanned_out_at,
                fan_out_finished_at: m.fan_out_finished_at,
                completed_at: m.completed_at,
                created_at: m.created_at,
                updated_at: m.updated_at,
                history,
            }
        })
        .collect())
}

pub async fn get(core: &Core, id: &str) -> Result<CampaignView, CampaignError> {
    let m = load(core, id).await?;
    views(core, vec![m])
        .await?
        .pop()
        .ok_or(CampaignError::NotFound)
}

/// At most this many campaigns in one list.
pub const MAX_LIST: u64 = 200;

/// Campaigns, newest first, optionally of one status: at most `limit`
/// ([`MAX_LIST`] at most), created before the campaign `before` (its id,
/// for the next page) when given.
pub async fn list(
    core: &Core,
    status: Option<CampaignStatus>,
    limit: u64,
    before: Option<&str>,
) -> Result<Vec<CampaignView>, DbErr> {
    let mut q = campaign::Entity::find()
        .order_by_desc(campaign::Column::CreatedAt)
        .order_by_desc(campaign::Column::Id)
        .limit(limit.clamp(1, MAX_LIST));
    if let Some(s) = status {
        q = q.filter(campaign::Column::Status.eq(s));
    }
    if let Some(id) = before {
        if let Some(b) = campaign::Entity::find_by_id(id).one(&core.db.conn).await? {
            q = q.filter(
                Condition::any()
                    .add(campaign::Column::CreatedAt.lt(b.created_at))
                    .add(
                        Condition::all()
                            .add(campaign::Column::CreatedAt.eq(b.created_at))
                            .add(campaign::Column::Id.lt(b.id)),
                    ),
            );
        }
    }
    views(core, q.all(&core.db.conn).await?).await
}

pub(super) fn target(id: &str) -> String {
    format!("campaign:{id}")
}

/// The history row and, for staff, the staff audit row of one change.
#[allow(clippy::too_many_arguments)]
pub(super) async fn record(
    db: &impl ConnectionTrait,
    campaign_id: &str,
    actor: Option<&StaffUser>,
    decision: &str,
    reason: Option<&str>,
    audit_action: Option<&str>,
    detail: Option<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    campaign_approval::ActiveModel {
        id: Set(new_id()),
        campaign_id: Set(campaign_id.to_string()),
        actor_id: Set(actor.map(|a| a.id.clone()).unwrap_or_else(|| SYSTEM.into())),
        decision: Set(decision.to_string()),
        reason: Set(reason.map(str::to_string)),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    if let (Some(actor), Some(action)) = (actor, audit_action) {
        audit::record_staff_action(
            db,
            &actor.email,
            action,
            Some(&target(campaign_id)),
            detail,
            None,
            now,
        )
        .await?;
    }
    Ok(())
}

/// An update of one campaign that only applies while its status is `from`.
pub(super) fn cas(
    id: &str,
    from: CampaignStatus,
    now: DateTime<Utc>,
) -> sea_orm::UpdateMany<campaign::Entity> {
    campaign::Entity::update_many()
        .col_expr(campaign::Column::UpdatedAt, Expr::value(now))
        .filter(campaign::Column::Id.eq(id))
        .filter(campaign::Column::Status.eq(from))
}

/// Open the write that moves a campaign from `from` to `to`: the
/// compare-and-set (with `more` columns or conditions) in a transaction the
/// caller goes on with (its history row, its messages) and commits. When
/// someone else moved it first, nothing is written and the error says what
/// it is now (`action` names what was tried).
pub(super) async fn begin_move(
    core: &Core,
    id: &str,
    from: CampaignStatus,
    to: CampaignStatus,
    action: &'static str,
    now: DateTime<Utc>,
    more: impl FnOnce(sea_orm::UpdateMany<campaign::Entity>) -> sea_orm::UpdateMany<campaign::Entity>,
) -> Result<sea_orm::DatabaseTransaction, CampaignError> {
    let txn = core.db.begin_write().await?;
    let update = cas(id, from, now).col_expr(campaign::Column::Status, Expr::value(to));
    if more(update).exec(&txn).await?.rows_affected != 1 {
        txn.rollback().await?;
        return Err(lost(core, id, action).await);
    }
    Ok(txn)
}

/// The error for a compare-and-set that lost: the status someone else set.
pub(super) async fn lost(core: &Core, id: &str, action: &'static str) -> CampaignError {
    match load(core, id).await {
        Ok(m) => CampaignError::InvalidTransition {
            from: m.status,
            action,
        },
        Err(e) => e,
    }
}

pub(super) async fn enqueue_fan_out(core: &Core, id: &str) {
    // The campaign's status is the record: if the queue is away,
    // housekeeping (`start_due`) enqueues it again.
    if let Err(e) = core.queue.enqueue_campaign(id.to_string()).await {
        tracing::error!(campaign_id = %id, error = %e, "could not enqueue the fan-out; housekeeping will retry");
    }
}

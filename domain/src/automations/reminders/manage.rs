//! Creating, reading, listing and cancelling reminders.

use super::*;

/// Create a reminder for `principal` (the caller's API key). Nothing is
/// stored when the request is refused.
pub async fn create(
    core: &Core,
    principal: &ApiPrincipal,
    input: NewReminder,
) -> Result<Reminder, RequestError> {
    let tolerance_secs = tolerance(input.tolerance_secs)?;
    let variables = variables_from_json(&input.variables)?;
    if input.template_name.trim().is_empty() {
        return Err(RequestError::invalid(
            "bad_request",
            "template_name is required",
        ));
    }
    let contact = resolve_contact(core, &input.target).await?;
    let send_at = parse_send_at(&input.send_at, contact_time_zone(core, &contact))?;
    let now = core.now();
    if now - send_at > Duration::seconds(tolerance_secs) {
        return Err(RequestError::invalid(
            "invalid_send_at",
            format!(
                "send_at {} is more than the tolerance ({tolerance_secs} s) in the past",
                send_at.to_rfc3339()
            ),
        ));
    }
    if send_at - now > MAX_AHEAD {
        return Err(RequestError::invalid(
            "invalid_send_at",
            "send_at is more than two years ahead",
        ));
    }
    let template = check_template(core, principal, &input.template_name, &variables, true).await?;
    let row = reminder::ActiveModel {
        id: Set(new_id()),
        contact_id: Set(contact.id.clone()),
        to_address: Set(contact.phone_e164.clone()),
        template_name: Set(template.name),
        variables: Set(serde_json::to_string(&variables).unwrap_or_else(|_| "{}".into())),
        send_at: Set(send_at),
        tolerance_secs: Set(tolerance_secs),
        state: Set(ReminderState::Scheduled.as_str().into()),
        automation_id: Set(None),
        api_key_id: Set(principal.key_id.clone()),
        message_id: Set(None),
        outcome: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await?;
    tracing::info!(reminder_id = %row.id, send_at = %row.send_at, actor = %principal.actor(), "reminder scheduled");
    view(core, row).await.map_err(Into::into)
}

async fn view(core: &Core, m: reminder::Model) -> Result<Reminder, sea_orm::DbErr> {
    let message_state = match &m.message_id {
        Some(id) => outbound_message::Entity::find_by_id(id.as_str())
            .one(&core.db.conn)
            .await?
            .map(|msg| msg.state),
        None => None,
    };
    Ok(Reminder {
        variables: serde_json::from_str(&m.variables).unwrap_or_default(),
        created_by: actor_of(m.api_key_id.as_deref()),
        id: m.id,
        contact_id: m.contact_id,
        to: m.to_address,
        template_name: m.template_name,
        send_at: m.send_at,
        tolerance_secs: m.tolerance_secs,
        state: m.state,
        outcome: m.outcome,
        message_id: m.message_id,
        message_state,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

pub async fn get(core: &Core, id: &str) -> Result<Reminder, RequestError> {
    let m = reminder::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no reminder with id {id}")))?;
    Ok(view(core, m).await?)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ReminderFilter {
    pub contact_id: Option<String>,
    /// One of the [`ReminderState`] names.
    pub state: Option<String>,
    /// At most this many (default 100, at most 500), latest `send_at` first.
    pub limit: Option<u64>,
}

pub async fn list(core: &Core, filter: &ReminderFilter) -> Result<Vec<Reminder>, RequestError> {
    let mut q = reminder::Entity::find()
        .order_by_desc(reminder::Column::SendAt)
        .order_by_desc(reminder::Column::Id);
    if let Some(c) = filter.contact_id.as_deref().filter(|c| !c.is_empty()) {
        q = q.filter(reminder::Column::ContactId.eq(c));
    }
    if let Some(s) = filter.state.as_deref().filter(|s| !s.is_empty()) {
        let state = ReminderState::parse(s).ok_or_else(|| {
            RequestError::invalid(
                "invalid_state",
                format!(
                    "state must be one of {}",
                    ReminderState::ALL.map(|s| s.as_str()).join(", ")
                ),
            )
        })?;
        q = q.filter(reminder::Column::State.eq(state.as_str()));
    }
    let limit = match filter.limit {
        None => 100,
        Some(n) if (1..=500).contains(&n) => n,
        Some(_) => {
            return Err(RequestError::invalid(
                "bad_request",
                "limit must be between 1 and 500",
            ))
        }
    };
    let mut out = Vec::new();
    for m in q.limit(limit).all(&core.db.conn).await? {
        out.push(view(core, m).await?);
    }
    Ok(out)
}

/// Cancel a reminder that has not come due yet. Cancelling a cancelled
/// reminder is not an error; one already sent (or being sent) is a conflict.
pub async fn cancel(core: &Core, id: &str, actor: &str) -> Result<Reminder, RequestError> {
    let now = core.now();
    let res = reminder::Entity::update_many()
        .col_expr(
            reminder::Column::State,
            Expr::value(ReminderState::Cancelled.as_str()),
        )
        .col_expr(
            reminder::Column::Outcome,
            Expr::value(Some(format!("cancelled by {actor}"))),
        )
        .col_expr(reminder::Column::UpdatedAt, Expr::value(now))
        .filter(reminder::Column::Id.eq(id))
        .filter(reminder::Column::State.eq(ReminderState::Scheduled.as_str()))
        .exec(&core.db.conn)
        .await?;
    let current = get(core, id).await?;
    if res.rows_affected == 1 {
        tracing::info!(reminder_id = %id, %actor, "reminder cancelled");
        return Ok(current);
    }
    match ReminderState::parse(&current.state) {
        Some(ReminderState::Cancelled) => Ok(current),
        Some(ReminderState::Sending) => Err(RequestError::Conflict(
            "the reminder is being sent and can no longer be cancelled".into(),
        )),
        _ => Err(RequestError::Conflict(format!(
            "the reminder is already {} and can no longer be cancelled",
            current.state
        ))),
    }
}

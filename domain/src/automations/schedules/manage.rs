//! Creating, reading, pausing, resuming and deleting schedules, checked as the
//! send path would check them.

use super::*;

/// A schedule as the caller asks for it.
#[derive(Debug, Clone)]
pub struct NewSchedule {
    pub name: String,
    pub target: Target,
    pub cron: String,
    pub template_name: String,
    /// Fixed values (strings, numbers, booleans).
    pub variables: BTreeMap<String, serde_json::Value>,
    /// Fetched at each occurrence (GET, JSON object); its values override
    /// the fixed ones. Only the template's variables are taken from it.
    pub variables_url: Option<String>,
    /// Seconds an occurrence may be late after downtime; default 15 minutes.
    pub tolerance_secs: Option<i64>,
}

/// A schedule as the API and console show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Schedule {
    pub id: String,
    pub name: String,
    pub contact_id: String,
    pub to: Option<String>,
    /// The zone the cron expression is read in (the contact's, or the default).
    pub time_zone: String,
    pub cron: String,
    pub template_name: String,
    pub variables: BTreeMap<String, String>,
    /// The variables URL with its query values hidden.
    pub variables_url: Option<String>,
    pub active: bool,
    pub tolerance_secs: i64,
    pub next_run_at: Option<DateTime<Utc>>,
    pub last_run_at: Option<DateTime<Utc>>,
    pub last_outcome: Option<String>,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// The latest occurrences (single-schedule views only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub occurrences: Option<Vec<Occurrence>>,
}

/// One occurrence of a schedule and what became of it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Occurrence {
    pub occurs_at: DateTime<Utc>,
    /// claimed | sent | blocked | failed | missed
    pub state: String,
    pub message_id: Option<String>,
    pub outcome: Option<String>,
}

/// The URL with query values and credentials hidden, for views and alerts.
pub fn redact_url(raw: &str) -> String {
    match url::Url::parse(raw) {
        Ok(mut u) => {
            let _ = u.set_password(None);
            let _ = u.set_username("");
            if u.query().is_some() {
                let names: Vec<String> = u.query_pairs().map(|(k, _)| k.into_owned()).collect();
                u.set_query(None);
                let mut q = u.query_pairs_mut();
                for n in names {
                    q.append_pair(&n, "***");
                }
            }
            u.to_string()
        }
        Err(_) => "(invalid URL)".into(),
    }
}

pub(super) fn parse_variables_url(
    policy: &crate::outbound_http::UrlPolicy,
    raw: &str,
) -> Result<String, RequestError> {
    let raw = raw.trim();
    if raw.len() > 2048 {
        return Err(RequestError::invalid(
            "invalid_variables_url",
            "variables_url is longer than 2048 characters",
        ));
    }
    let u = url::Url::parse(raw).map_err(|e| {
        RequestError::invalid(
            "invalid_variables_url",
            format!("variables_url is not a URL: {e}"),
        )
    })?;
    if !matches!(u.scheme(), "http" | "https") || u.host().is_none() {
        return Err(RequestError::invalid(
            "invalid_variables_url",
            "variables_url must be an http or https URL",
        ));
    }
    // An address on this network is refused now (a name is checked again
    // at every fetch, when it is resolved).
    crate::outbound_http::check_url(policy, &u).map_err(|e| {
        RequestError::invalid("invalid_variables_url", format!("variables_url: {e}"))
    })?;
    Ok(u.to_string())
}

/// The API principal of an automation, for schedules (or reminders) a
/// staff member creates in the console on that automation's behalf: the
/// automation's API key and its approval apply, again at every send.
pub async fn principal_for_automation(
    core: &Core,
    automation_id: &str,
) -> Result<ApiPrincipal, RequestError> {
    let a = automation::Entity::find_by_id(automation_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no automation with id {automation_id}")))?;
    let key = api_key::Entity::find_by_id(a.api_key_id.as_str())
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| {
            RequestError::Conflict(format!(
                "the API key of automation '{}' no longer exists",
                a.name
            ))
        })?;
    if key.revoked_at.is_some() {
        return Err(RequestError::Conflict(format!(
            "the API key of automation '{}' was revoked",
            a.name
        )));
    }
    Ok(ApiPrincipal {
        key_id: Some(key.id),
        name: key.name,
    })
}

/// Create a schedule for `principal` (the caller's API key). Nothing is
/// stored when the request is refused.
pub async fn create(
    core: &Core,
    principal: &ApiPrincipal,
    input: NewSchedule,
) -> Result<Schedule, RequestError> {
    let name = input.name.trim().to_string();
    if name.is_empty() || name.chars().count() > 200 {
        return Err(RequestError::invalid(
            "bad_request",
            "name is required (at most 200 characters)",
        ));
    }
    let cron = CronExpr::parse_for_schedule(&input.cron)
        .map_err(|m| RequestError::invalid("invalid_cron", m))?;
    let tolerance_secs = reminders::tolerance(input.tolerance_secs)?;
    let variables = variables_from_json(&input.variables)?;
    let variables_url = input
        .variables_url
        .as_deref()
        .filter(|u| !u.trim().is_empty())
        .map(|u| parse_variables_url(&core.fetch.policy, u))
        .transpose()?;
    if input.template_name.trim().is_empty() {
        return Err(RequestError::invalid(
            "bad_request",
            "template_name is required",
        ));
    }
    let contact = resolve_contact(core, &input.target).await?;
    let template = check_template(
        core,
        principal,
        &input.template_name,
        &variables,
        variables_url.is_none(),
    )
    .await?;
    let now = core.now();
    let tz = contact_time_zone(core, &contact);
    let row = schedule::ActiveModel {
        id: Set(new_id()),
        name: Set(name),
        contact_id: Set(contact.id.clone()),
        cron: Set(cron.as_str().to_string()),
        template_name: Set(template.name),
        variables: Set(serde_json::to_string(&variables).unwrap_or_else(|_| "{}".into())),
        variables_url: Set(variables_url),
        automation_id: Set(None),
        api_key_id: Set(principal.key_id.clone()),
        tolerance_secs: Set(tolerance_secs),
        active: Set(true),
        last_run_at: Set(None),
        next_run_at: Set(cron.next_after(tz, now)),
        last_outcome: Set(None),
        created_by: Set(principal.actor()),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await?;
    tracing::info!(schedule_id = %row.id, cron = %row.cron, time_zone = %tz, actor = %principal.actor(), "schedule created");
    Ok(view(core, row, false).await?)
}

pub(super) async fn view(
    core: &Core,
    m: schedule::Model,
    with_occurrences: bool,
) -> Result<Schedule, sea_orm::DbErr> {
    let c = contact::Entity::find_by_id(m.contact_id.as_str())
        .one(&core.db.conn)
        .await?;
    let tz = c
        .as_ref()
        .map(|c| contact_time_zone(core, c))
        .unwrap_or(core.settings.default_time_zone);
    let occurrences = if with_occurrences {
        Some(
            schedule_occurrence::Entity::find()
                .filter(schedule_occurrence::Column::ScheduleId.eq(&m.id))
                .order_by_desc(schedule_occurrence::Column::OccursAt)
                .limit(20)
                .all(&core.db.conn)
                .await?
                .into_iter()
                .map(|o| Occurrence {
                    occurs_at: o.occurs_at,
                    state: o.state,
                    message_id: o.message_id,
                    outcome: o.outcome,
                })
                .collect(),
        )
    } else {
        None
    };
    Ok(Schedule {
        variables: serde_json::from_str(&m.variables).unwrap_or_default(),
        variables_url: m.variables_url.as_deref().map(redact_url),
        to: c.map(|c| c.phone_e164),
        time_zone: tz.to_string(),
        id: m.id,
        name: m.name,
        contact_id: m.contact_id,
        cron: m.cron,
        template_name: m.template_name,
        active: m.active,
        tolerance_secs: m.tolerance_secs,
        next_run_at: m.next_run_at,
        last_run_at: m.last_run_at,
        last_outcome: m.last_outcome,
        created_by: m.created_by,
        created_at: m.created_at,
        updated_at: m.updated_at,
        occurrences,
    })
}

/// One schedule with its latest occurrences.
pub async fn get(core: &Core, id: &str) -> Result<Schedule, RequestError> {
    let m = schedule::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no schedule with id {id}")))?;
    Ok(view(core, m, true).await?)
}

/// What to list.
#[derive(Debug, Clone, Default)]
pub struct ScheduleFilter {
    pub contact_id: Option<String>,
    pub active: Option<bool>,
}

pub async fn list(core: &Core, filter: &ScheduleFilter) -> Result<Vec<Schedule>, RequestError> {
    let mut q = schedule::Entity::find()
        .order_by_asc(schedule::Column::Name)
        .order_by_asc(schedule::Column::Id);
    if let Some(c) = filter.contact_id.as_deref().filter(|c| !c.is_empty()) {
        q = q.filter(schedule::Column::ContactId.eq(c));
    }
    if let Some(a) = filter.active {
        q = q.filter(schedule::Column::Active.eq(a));
    }
    let mut out = Vec::new();
    for m in q.limit(1000).all(&core.db.conn).await? {
        out.push(view(core, m, false).await?);
    }
    Ok(out)
}

/// Pause (`active = false`) or resume a schedule. Resuming starts from the
/// next occurrence after now: nothing missed while paused is sent.
pub async fn set_active(
    core: &Core,
    id: &str,
    active: bool,
    actor: &str,
) -> Result<Schedule, RequestError> {
    let m = schedule::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RequestError::NotFound(format!("no schedule with id {id}")))?;
    if m.active == active {
        return Ok(view(core, m, true).await?);
    }
    let now = core.now();
    let next = if active {
        let tz = match contact::Entity::find_by_id(m.contact_id.as_str())
            .one(&core.db.conn)
            .await?
        {
            Some(c) => contact_time_zone(core, &c),
            None => {
                return Err(RequestError::Conflict(
                    "the schedule's contact no longer exists".into(),
                ))
            }
        };
        CronExpr::parse(&m.cron)
            .map_err(|e| RequestError::Conflict(format!("the schedule cannot run: {e}")))?
            .next_after(tz, now)
    } else {
        None
    };
    schedule::Entity::update_many()
        .col_expr(schedule::Column::Active, Expr::value(active))
        .col_expr(schedule::Column::NextRunAt, Expr::value(next))
        .col_expr(
            schedule::Column::LastOutcome,
            Expr::value(Some(format!(
                "{} by {actor}",
                if active { "resumed" } else { "paused" }
            ))),
        )
        .col_expr(schedule::Column::UpdatedAt, Expr::value(now))
        .filter(schedule::Column::Id.eq(id))
        .exec(&core.db.conn)
        .await?;
    tracing::info!(schedule_id = %id, active, %actor, "schedule changed");
    get(core, id).await
}

//! Reading and checking a request to create a reminder or schedule (shared
//! with schedules): template values, tolerance, the contact and its time
//! zone, the send time, and the template and authorization rules the gates
//! will apply at send time.

use super::*;

/// Template values from JSON: strings, numbers and booleans become text.
pub fn variables_from_json(
    vars: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, String>, RequestError> {
    let mut out = BTreeMap::new();
    for (k, v) in vars {
        let name = k.trim();
        if name.is_empty() {
            return Err(RequestError::invalid(
                "invalid_variables",
                "variable names must not be empty",
            ));
        }
        let s = match v {
            serde_json::Value::String(s) => s.clone(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Bool(b) => b.to_string(),
            other => {
                return Err(RequestError::invalid(
                    "invalid_variables",
                    format!("variables.{name} must be a string or number, not {other}"),
                ))
            }
        };
        if s.chars().count() > MAX_VALUE_CHARS {
            return Err(RequestError::invalid(
                "invalid_variables",
                format!("variables.{name} is longer than {MAX_VALUE_CHARS} characters"),
            ));
        }
        out.insert(name.to_string(), s);
    }
    Ok(out)
}

/// A tolerance in seconds, within bounds; the default when not given.
pub fn tolerance(secs: Option<i64>) -> Result<i64, RequestError> {
    match secs {
        None => Ok(DEFAULT_TOLERANCE_SECS),
        Some(s) if (MIN_TOLERANCE_SECS..=MAX_TOLERANCE_SECS).contains(&s) => Ok(s),
        Some(s) => Err(RequestError::invalid(
            "invalid_tolerance",
            format!(
                "tolerance must be between {MIN_TOLERANCE_SECS} and {MAX_TOLERANCE_SECS} seconds, not {s}"
            ),
        )),
    }
}

/// The contact a reminder or schedule is for; it must exist.
pub async fn resolve_contact(core: &Core, target: &Target) -> Result<contact::Model, RequestError> {
    match target {
        Target::Contact(id) => contact::Entity::find_by_id(id.trim())
            .one(&core.db.conn)
            .await?
            .ok_or_else(|| RequestError::ContactNotFound(format!("no contact with id {id}"))),
        Target::Phone(raw) => {
            let phone = PhoneNumber::parse(raw, core.settings.default_region)
                .map_err(|e| RequestError::invalid("invalid_number", format!("'{raw}': {e}")))?;
            contacts::find_by_phone(&core.db.conn, &phone)
                .await?
                .ok_or_else(|| {
                    RequestError::ContactNotFound(format!(
                        "no contact with phone {phone}; add the contact (with consent) first"
                    ))
                })
        }
    }
}

/// The contact's time zone: its own, else the one its number is in (for
/// a number that spans zones, the one whose clock is furthest behind, so a
/// 07:00 briefing is 07:00 or later wherever they are), else the
/// configured default.
pub fn contact_time_zone(core: &Core, c: &contact::Model) -> Tz {
    let number = crate::phone::PhoneNumber::parse_e164(&c.phone_e164).ok();
    crate::sending::outbound::local_zones(core, c.time_zone.as_deref(), number.as_ref())
        .primary(core.now())
}

/// A send time: RFC 3339 with an offset, or a local time without one read
/// in `tz` (a local time that does not exist, in a spring-forward gap, is
/// moved forward by the gap; one that exists twice is the earlier).
pub fn parse_send_at(raw: &str, tz: Tz) -> Result<DateTime<Utc>, RequestError> {
    let raw = raw.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(n) = NaiveDateTime::parse_from_str(raw, fmt) {
            // Far-off years are refused later; keep the arithmetic in range.
            if !(1970..=9999).contains(&n.year()) {
                break;
            }
            return Ok(local_instant(tz, n));
        }
    }
    Err(RequestError::invalid(
        "invalid_send_at",
        format!(
            "send_at '{raw}' is not an RFC 3339 time (2026-11-20T07:00:00+01:00) or a local time (2026-11-20T07:00) in the contact's time zone"
        ),
    ))
}

/// Check, at creation, what the template and authorization gates would
/// check at send time, so a request that could never be sent is refused
/// now. With `complete`, the variables must be exactly the template's;
/// otherwise (values fetched later) they must be a subset.
pub async fn check_template(
    core: &Core,
    principal: &ApiPrincipal,
    name: &str,
    variables: &BTreeMap<String, String>,
    complete: bool,
) -> Result<templates::Template, RequestError> {
    let name = name.trim().to_lowercase();
    if name.is_empty() {
        return Err(RequestError::invalid(
            "bad_request",
            "template_name must not be empty",
        ));
    }
    let refused = |message: String| RequestError::Refused {
        gate: Gate::TemplateNotApproved,
        message,
    };
    let Some(t) = templates::find_by_name(&core.db.conn, &name).await? else {
        return Err(refused(format!("template '{name}' is not registered")));
    };
    let registered = Some((t.approval_status, t.variables.as_slice()));
    match gates::template_problem(registered, variables.keys().map(String::as_str)) {
        Some(TemplateProblem::NotApproved { status }) => {
            return Err(refused(format!(
                "template '{name}' is {status}, not approved"
            )))
        }
        Some(TemplateProblem::Variables { unknown, .. }) if !unknown.is_empty() => {
            return Err(refused(format!(
                "template '{name}' has no variable(s): {}",
                unknown.join(", ")
            )))
        }
        // Values fetched at send time may fill the rest.
        Some(TemplateProblem::Variables { missing, .. }) if complete => {
            return Err(refused(format!(
                "template '{name}' needs variable(s): {}",
                missing.join(", ")
            )))
        }
        _ => {}
    }
    let authorization = authz::automation_authorization(core, principal).await?;
    match gates::automation_template_verdict(&authorization, &name) {
        Verdict::Block { detail } => Err(RequestError::Refused {
            gate: Gate::NotAuthorized,
            message: detail,
        }),
        _ => Ok(t),
    }
}

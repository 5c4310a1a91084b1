//! Checking a campaign draft: its name, audience, template and variables,
//! before anything is stored.

use super::*;

pub(super) fn invalid(field: &str, why: impl std::fmt::Display) -> CampaignError {
    CampaignError::Invalid {
        field: field.to_string(),
        message: why.to_string(),
    }
}

pub(super) fn require(actor: &StaffUser, role: Role, what: &str) -> Result<(), CampaignError> {
    if !actor.active {
        return Err(CampaignError::Forbidden(format!(
            "the account {} is deactivated",
            actor.email
        )));
    }
    if !actor.role.allows(role) {
        return Err(CampaignError::Forbidden(format!(
            "only an {role} or above may {what}; {} is a {}",
            actor.email, actor.role
        )));
    }
    Ok(())
}

pub(super) fn clean_tags(tags: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = tags
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    set.into_iter().collect()
}

/// The draft as stored: trimmed, lower-cased names and tags.
pub(super) fn normalise(mut d: CampaignDraft) -> CampaignDraft {
    d.name = d.name.trim().to_string();
    d.template_name = d.template_name.trim().to_lowercase();
    d.audience = match d.audience {
        Audience::Tags { tags } => Audience::Tags {
            tags: clean_tags(&tags),
        },
        Audience::Phones { phones } => Audience::Phones {
            phones: phones
                .into_iter()
                .map(|p| p.trim().to_string())
                .filter(|p| !p.is_empty())
                .collect(),
        },
    };
    d.variables = d
        .variables
        .into_iter()
        .map(|(k, v)| {
            let v = match v {
                VariableSource::Field(f) => VariableSource::Field(f.trim().to_string()),
                other => other,
            };
            (k.trim().to_string(), v)
        })
        .collect();
    d
}

/// Check every number of a `Phones` audience: it must parse (default
/// region), belong to a contact, and that contact must have an active,
/// unsuppressed consent for the channel and the campaign's purpose (the
/// template's; `None`: any). Returns the contacts found (in the order
/// given, each once) and every refused number with the reason.
pub async fn check_phone_audience(
    core: &Core,
    channel: Channel,
    purpose: Option<&crate::consent::purposes::Purpose>,
    phones: &[String],
) -> Result<(Vec<Contact>, Vec<RefusedNumber>), DbErr> {
    let db = &core.db.conn;
    let what = purpose
        .map(|p| format!("{channel} ({})", p.name))
        .unwrap_or_else(|| channel.to_string());
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    let mut seen = BTreeSet::new();
    for raw in phones.iter().map(|p| p.trim()).filter(|p| !p.is_empty()) {
        let refuse = |why: String| RefusedNumber {
            number: raw.chars().take(64).collect(),
            why,
        };
        let phone = match PhoneNumber::parse(raw, core.settings.default_region) {
            Ok(p) => p,
            Err(e) => {
                refused.push(refuse(format!("not a number ({e})")));
                continue;
            }
        };
        if !seen.insert(phone.clone()) {
            continue;
        }
        let Some(c) = contacts::find_by_phone(&core.db.conn, &phone).await? else {
            refused.push(refuse("not a contact".into()));
            continue;
        };
        // An opt-out first: it is the stronger fact (and it revoked the
        // consent too).
        let suppressed = match purpose {
            Some(p) => crate::consent::opted_out(db, &c.id, channel, Some(p))
                .await?
                .map(|o| format!("opted out on {what} ({})", o.reason)),
            None => crate::consent::active_suppression(db, &c.id, channel)
                .await?
                .map(|s| format!("suppressed on {channel} ({})", s.reason)),
        };
        let current = match purpose {
            Some(p) => crate::consent::current_consent_for(db, &c.id, channel, p).await?,
            None => crate::consent::current_consent(db, &c.id, channel).await?,
        };
        let why = match suppressed {
            Some(w) => Some(w),
            None => match current.map(|m| crate::consent::consent_status(&m)) {
                None => Some(format!("no consent for {what}")),
                Some(ConsentStatus::Pending) => {
                    Some(format!("{what} consent is waiting for confirmation"))
                }
                Some(ConsentStatus::Revoked) => Some(format!("{what} consent was revoked")),
                Some(ConsentStatus::Active) => None,
            },
        };
        match why {
            Some(why) => refused.push(refuse(why)),
            None => ok.push(Contact::from(c)),
        }
    }
    Ok((ok, refused))
}

/// Check the template and the variable mapping against it.
pub(super) async fn check_template(
    core: &Core,
    template_name: &str,
    variables: &BTreeMap<String, VariableSource>,
) -> Result<Template, CampaignError> {
    if template_name.is_empty() {
        return Err(invalid("template_name", "choose a template"));
    }
    let Some(t) = templates::find_by_name(&core.db.conn, template_name).await? else {
        return Err(invalid(
            "template_name",
            format!("template '{template_name}' is not registered"),
        ));
    };
    let registered = Some((t.approval_status, t.variables.as_slice()));
    let shown = t.name.as_str();
    match gates::template_problem(registered, variables.keys().map(String::as_str)) {
        Some(gates::TemplateProblem::NotApproved { status }) => {
            return Err(invalid(
                "template_name",
                format!("template '{shown}' is {status}, not approved"),
            ))
        }
        Some(gates::TemplateProblem::Variables { missing, unknown }) => {
            return Err(invalid(
                "variables",
                if !missing.is_empty() {
                    format!(
                        "template '{shown}' needs a value for: {}",
                        missing.join(", ")
                    )
                } else {
                    format!(
                        "template '{shown}' has no variable(s): {}",
                        unknown.join(", ")
                    )
                },
            ))
        }
        // Not registered was answered above.
        Some(gates::TemplateProblem::NotRegistered) | None => {}
    }
    for (k, v) in variables {
        if let VariableSource::Field(f) = v {
            if f.is_empty() {
                return Err(invalid(
                    "variables",
                    format!("'{k}' takes a contact field: name it (name, phone or an attribute)"),
                ));
            }
        }
    }
    Ok(t)
}

/// Every rule of a draft. Returns the template.
pub(super) async fn validate(core: &Core, d: &CampaignDraft) -> Result<Template, CampaignError> {
    if d.name.is_empty() {
        return Err(invalid("name", "must not be blank"));
    }
    if d.name.chars().count() > MAX_NAME {
        return Err(invalid(
            "name",
            format!("must be at most {MAX_NAME} characters"),
        ));
    }
    let template = check_template(core, &d.template_name, &d.variables).await?;
    match &d.audience {
        Audience::Tags { tags } => {
            if tags.is_empty() {
                return Err(invalid("audience", "name at least one tag"));
            }
            if contacts::with_tags(core, tags).await?.is_empty() {
                return Err(invalid(
                    "audience",
                    format!("no contact has the tag(s) {}", tags.join(", ")),
                ));
            }
        }
        Audience::Phones { phones } => {
            if phones.is_empty() {
                return Err(invalid("audience", "the list of numbers is empty"));
            }
            if phones.len() > MAX_PHONES {
                return Err(invalid(
                    "audience",
                    format!("at most {MAX_PHONES} numbers per campaign"),
                ));
            }
            let purpose = match template.purpose.as_deref() {
                Some(name) => crate::consent::purposes::find(&core.db.conn, name).await?,
                None => None,
            };
            let (_, refused) =
                check_phone_audience(core, d.channel, purpose.as_ref(), phones).await?;
            if !refused.is_empty() {
                let list: Vec<String> = refused
                    .iter()
                    .map(|r| format!("{} ({})", r.number, r.why))
                    .collect();
                return Err(invalid(
                    "audience.phones",
                    format!("{} number(s) refused: {}", refused.len(), list.join("; ")),
                ));
            }
        }
    }
    if let Some(at) = d.scheduled_at {
        if at <= core.now() {
            return Err(invalid(
                "scheduled_at",
                "must be in the future (leave it empty to send on approval)",
            ));
        }
    }
    Ok(template)
}

/// The stored form of a Phones audience: E.164, each once.
pub(super) fn stored_audience(core: &Core, a: &Audience) -> Audience {
    match a {
        Audience::Phones { phones } => {
            let mut seen = BTreeSet::new();
            Audience::Phones {
                phones: phones
                    .iter()
                    .filter_map(|p| PhoneNumber::parse(p, core.settings.default_region).ok())
                    .filter(|p| seen.insert(p.clone()))
                    .map(|p| p.to_string())
                    .collect(),
            }
        }
        other => other.clone(),
    }
}

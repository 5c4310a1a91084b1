//! The human decision behind the message (a campaign's approval, an
//! automation, staff) and its template: the `not_authorized` and
//! `template_not_approved` gates, and the rules they share with the checks
//! made before a message exists.

use super::*;

pub(super) fn not_authorized(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    window_open: bool,
) -> Verdict {
    if !facts.sender.active {
        return Verdict::block(match &facts.sender.address {
            Some(a) => format!(
                "the {} sender {a} has not been activated by an admin",
                msg.channel
            ),
            None => format!("no {} sender is configured", msg.channel),
        });
    }
    match (&facts.authorization, &msg.purpose) {
        (Authorization::System, Purpose::ComplianceReply | Purpose::OptInConfirmation) => {
            Verdict::pass("system reply required by the consent rules")
        }
        (
            Authorization::Campaign {
                status,
                authors,
                approved_by,
                approved_template,
            },
            Purpose::Campaign | Purpose::Fallback,
        ) => match approved_by {
            None => Verdict::block("the campaign has not been approved"),
            Some(a) if authors.contains(a) => {
                Verdict::block("the campaign was approved by one of its authors")
            }
            Some(_)
                if msg.purpose == Purpose::Campaign
                    && approved_template.is_some()
                    && facts.template.as_ref().map(|t| &t.digest) != approved_template.as_ref() =>
            {
                Verdict::block(
                    "the template changed since the campaign was approved (provider id, body, language, category, variables or purpose); it must be approved again",
                )
            }
            Some(_) if !status.authorizes_sending() =>
            {
                Verdict::block(format!("the campaign is {status}"))
            }
            Some(a) => Verdict::pass(format!("campaign approved by {a}")),
        },
        (
            Authorization::Automation {
                name,
                approved,
                approved_by,
                free_form,
                ..
            },
            Purpose::Automation | Purpose::Fallback,
        ) => {
            if !approved {
                return Verdict::block(format!("the automation '{name}' is not approved"));
            }
            match &msg.content {
                MessageContent::Template { name: t, .. } => {
                    automation_template_verdict(&facts.authorization, t)
                }
                MessageContent::FreeForm if msg.purpose != Purpose::Fallback && !free_form => {
                    Verdict::block(format!(
                        "the automation '{name}' may only send approved templates"
                    ))
                }
                // Approved for replies: on WhatsApp the window gate refuses them once the
                // window has closed; SMS has no such gate, so the reply rule is kept here.
                MessageContent::FreeForm
                    if msg.purpose != Purpose::Fallback
                        && msg.channel == Channel::Sms
                        && !window_open =>
                {
                    Verdict::block(format!(
                        "the automation '{name}' may send free text only as a reply within 24 hours of the person's last message"
                    ))
                }
                MessageContent::FreeForm if msg.purpose != Purpose::Fallback => {
                    Verdict::pass(format!(
                        "automation '{name}' approved for free-form replies inside the window by {}",
                        approved_by.as_deref().unwrap_or("its configurer")
                    ))
                }
                _ => Verdict::pass(format!(
                    "automation '{name}' approved by {}",
                    approved_by.as_deref().unwrap_or("its configurer")
                )),
            }
        }
        (Authorization::Staff { user, may_reply }, Purpose::InboxReply | Purpose::Fallback) => {
            if *may_reply {
                Verdict::pass(format!("inbox reply by {user}"))
            } else {
                Verdict::block(format!("{user} may not reply to contacts"))
            }
        }
        (Authorization::None { why }, _) => Verdict::block(why.clone()),
        (auth, purpose) => Verdict::block(format!(
            "{purpose:?} is not authorized by {}",
            match auth {
                Authorization::Campaign { .. } => "a campaign",
                Authorization::Automation { .. } => "an automation",
                Authorization::Staff { .. } => "a staff member",
                Authorization::System => "the system",
                Authorization::None { .. } => "nothing",
            }
        )),
    }
}

pub(super) fn template_not_approved(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    let (name, supplied) = match &msg.content {
        MessageContent::FreeForm => return Verdict::na("free-form text, no template"),
        MessageContent::Template { name, supplied } => (name, supplied),
    };
    let registered = facts
        .template
        .as_ref()
        .map(|t| (t.approval_status, t.variable_names.as_slice()));
    let name = facts.template.as_ref().map_or(name, |t| &t.name);
    match template_problem(registered, supplied.iter().map(String::as_str)) {
        Some(TemplateProblem::NotRegistered) => {
            Verdict::block(format!("template '{name}' is not registered"))
        }
        Some(TemplateProblem::NotApproved { status }) => {
            Verdict::block(format!("template '{name}' is {status}, not approved"))
        }
        Some(TemplateProblem::Variables { missing, unknown }) => {
            if !missing.is_empty() {
                Verdict::block(format!(
                    "template '{name}' needs variable(s): {}",
                    missing.join(", ")
                ))
            } else {
                Verdict::block(format!(
                    "template '{name}' has no variable(s): {}",
                    unknown.join(", ")
                ))
            }
        }
        None => Verdict::pass(format!("template '{name}' is approved")),
    }
}

/// What is wrong with the template a message names, if anything: the rule
/// of the `template_not_approved` gate, also used by the checks made before
/// a message exists (a campaign's draft, a reminder, a schedule), each of
/// which words the problem for its own form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateProblem {
    NotRegistered,
    NotApproved {
        status: heimdall_codes::TemplateApproval,
    },
    /// `missing`: the template's variables not supplied; `unknown`:
    /// supplied names the template does not have. At least one is not empty.
    Variables {
        missing: Vec<String>,
        unknown: Vec<String>,
    },
}

/// `registered`: the template's approval status and variable names, if it
/// is registered; `supplied`: the variable names the message fills.
pub fn template_problem<'a>(
    registered: Option<(heimdall_codes::TemplateApproval, &[String])>,
    supplied: impl IntoIterator<Item = &'a str>,
) -> Option<TemplateProblem> {
    let Some((status, variables)) = registered else {
        return Some(TemplateProblem::NotRegistered);
    };
    if !status.is_approved() {
        return Some(TemplateProblem::NotApproved { status });
    }
    let supplied: Vec<&str> = supplied.into_iter().collect();
    let missing: Vec<String> = variables
        .iter()
        .filter(|n| !supplied.contains(&n.as_str()))
        .cloned()
        .collect();
    let unknown: Vec<String> = supplied
        .iter()
        .filter(|s| !variables.iter().any(|v| v == *s))
        .map(|s| s.to_string())
        .collect();
    (!missing.is_empty() || !unknown.is_empty())
        .then_some(TemplateProblem::Variables { missing, unknown })
}

/// The automation's part of `not_authorized` for a template message: is the
/// automation approved, and approved for this template? Shared by the gate
/// and the checks made when a reminder or schedule is created.
pub fn automation_template_verdict(automation: &Authorization, template: &str) -> Verdict {
    match automation {
        Authorization::Automation {
            name,
            approved,
            approved_by,
            templates,
            ..
        } => {
            if !approved {
                Verdict::block(format!("the automation '{name}' is not approved"))
            } else if !templates.iter().any(|t| t == template) {
                Verdict::block(format!(
                    "the automation '{name}' is not approved for template '{template}'"
                ))
            } else {
                Verdict::pass(format!(
                    "automation '{name}' approved by {}",
                    approved_by.as_deref().unwrap_or("its configurer")
                ))
            }
        }
        _ => Verdict::block("no approved automation stands behind this API key"),
    }
}

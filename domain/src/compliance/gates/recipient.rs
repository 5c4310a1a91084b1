//! Whether the person may receive it at all: a valid number, the phone
//! allowlist, suppression, and consent (a reply inside the window to a
//! person who wrote first included).

use super::*;

pub(super) fn invalid_number(msg: &MessageFacts) -> Verdict {
    match &msg.recipient {
        Some(p) => Verdict::pass(format!("{p} is a valid E.164 number")),
        None => Verdict::block(format!(
            "'{}' is not a valid E.164 phone number",
            msg.raw_to
        )),
    }
}

pub(super) fn not_allowlisted(msg: &MessageFacts, policy: &Policy) -> Verdict {
    let (Some(list), Some(to)) = (&policy.allowlist, &msg.recipient) else {
        return Verdict::na("no phone allowlist is set");
    };
    if list.contains(to.as_str()) {
        Verdict::pass(format!("{to} is on the phone allowlist"))
    } else {
        Verdict::block(format!(
            "{to} is not on the phone allowlist; only listed numbers receive anything"
        ))
    }
}

/// Is the message marketing: a marketing template, or sent for a
/// marketing purpose?
pub(super) fn is_marketing(msg: &MessageFacts, facts: &LoadedFacts) -> bool {
    facts.purpose.as_ref().is_some_and(|p| p.marketing)
        || matches!(
            (&msg.content, &facts.template),
            (MessageContent::Template { .. }, Some(t)) if t.category == TemplateCategory::Marketing
        )
}

pub(super) fn suppressed(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    match (&facts.suppression, &msg.purpose) {
        (Some(s), _) if s.marketing_only && !is_marketing(msg, facts) => Verdict::pass(format!(
            "the person stopped marketing messages ({}), and this is not marketing",
            s.reason
        )),
        (Some(s), _) if s.purpose.is_some() && s.purpose != msg.consent_purpose => {
            Verdict::pass(format!(
                "the person withdrew {} only ({}), and this is not for it",
                s.purpose.as_deref().unwrap_or_default(),
                s.reason
            ))
        }
        (Some(s), Purpose::ComplianceReply) => Verdict::na(format!(
            "suppressed ({}), but this is the reply to the person's own keyword",
            s.reason
        )),
        (Some(s), _) => Verdict::block(format!(
            "the contact is suppressed on {}{} since {} ({})",
            msg.channel,
            match (&s.purpose, s.marketing_only) {
                (Some(p), _) => format!(" for {p}"),
                (None, true) => " for marketing".into(),
                (None, false) => String::new(),
            },
            s.since.format("%Y-%m-%d %H:%M UTC"),
            s.reason
        )),
        (None, _) => Verdict::pass("no suppression"),
    }
}

/// Whether the authorization behind a free-form message is one that may reply in a
/// conversation: staff in the inbox, or an automation approved for free-form replies.
fn allows_free_form_replies(authorization: &Authorization) -> bool {
    match authorization {
        Authorization::Staff { .. } => true,
        Authorization::Automation {
            approved,
            free_form,
            ..
        } => *approved && *free_form,
        _ => false,
    }
}

pub(super) fn no_consent(msg: &MessageFacts, facts: &LoadedFacts, window_open: bool) -> Verdict {
    match msg.purpose {
        Purpose::ComplianceReply => {
            return Verdict::na("reply to the person's own keyword needs no opt-in")
        }
        Purpose::OptInConfirmation => {
            return match facts.consent.as_ref().map(|c| c.status) {
                Some(ConsentStatus::Pending) | Some(ConsentStatus::Active) => {
                    Verdict::pass("confirmation of a consent the person just gave")
                }
                _ => Verdict::block(format!("no pending {} opt-in to confirm", msg.channel)),
            }
        }
        // A reply inside the window to a person who wrote first, by staff or by an
        // automation an approver approved for it (the not_authorized gate checks which).
        Purpose::InboxReply | Purpose::Automation
            if window_open
                && msg.content == MessageContent::FreeForm
                && allows_free_form_replies(&facts.authorization) =>
        {
            if matches!(
                facts.consent.as_ref().map(|c| c.status),
                Some(ConsentStatus::Revoked)
            ) {
                return Verdict::block(format!(
                    "{} consent was revoked; the person must opt in again",
                    msg.channel
                ));
            }
            return Verdict::pass(
                "a reply inside the window to a person who wrote first (conversational consent)",
            );
        }
        _ => {}
    }
    let Some(purpose) = &facts.purpose else {
        if matches!(msg.content, MessageContent::Template { .. }) && facts.template.is_none() {
            // An unknown template has no purpose: its own gate refuses it.
            return Verdict::na("the template is unknown, so is its purpose");
        }
        return Verdict::block(match &msg.consent_purpose {
            Some(name) => format!(
                "the message is for '{name}', which is not a defined purpose: no consent can cover it"
            ),
            None => "the message names no purpose, so no consent can be checked for it".into(),
        });
    };
    let covers = |c: &ConsentFact| match &c.purpose {
        Some(p) => format!("for {p}"),
        None => format!(
            "for {} (recorded before purposes: it covers the purposes that existed then)",
            purpose.name
        ),
    };
    match &facts.consent {
        Some(c) if c.status == ConsentStatus::Active => Verdict::pass(format!(
            "{} opt-in {} recorded {} via {}",
            msg.channel,
            covers(c),
            c.captured_at.format("%Y-%m-%d"),
            c.source
        )),
        Some(c) if c.status == ConsentStatus::Pending => Verdict::block(format!(
            "{} opt-in {} via {} is waiting for the person's confirmation",
            msg.channel,
            covers(c),
            c.source
        )),
        Some(c) => Verdict::block(format!("{} consent {} was revoked", msg.channel, covers(c))),
        None => Verdict::block(format!(
            "no recorded {} opt-in for {} for this person",
            msg.channel, purpose.name
        )),
    }
}

//! The gates, one rule at a time, on hand-made facts.
//!
//! Here: the facts every case starts from, and the cases about the decision
//! as a whole. Each group of gates has its cases in the file named after
//! the gates' own: `recipient`, `authorization`, `channel_rules`, `pace`.

use super::*;
use phonenumber::country::Id;

mod authorization;
mod channel_rules;
mod pace;
mod recipient;

fn now() -> DateTime<Utc> {
    // A Tuesday, 15:00 UTC.
    Utc.with_ymd_and_hms(2026, 11, 17, 15, 0, 0).unwrap()
}

fn msg(channel: Channel, content: MessageContent, purpose: Purpose) -> MessageFacts {
    MessageFacts {
        channel,
        raw_to: "+4791234567".into(),
        recipient: Some(PhoneNumber::parse("+4791234567", Id::US).unwrap()),
        content,
        purpose,
        consent_purpose: Some("service".into()),
    }
}

fn template(name: &str) -> MessageContent {
    MessageContent::Template {
        name: name.into(),
        supplied: vec!["task_name".into(), "due_time".into()],
    }
}

fn facts() -> LoadedFacts {
    LoadedFacts {
        purpose: Some(PurposeFact {
            name: "service".into(),
            marketing: false,
        }),
        consent: Some(ConsentFact {
            status: ConsentStatus::Active,
            source: "web_form".into(),
            captured_at: now() - Duration::days(3),
            purpose: Some("service".into()),
        }),
        suppression: None,
        window_expires_at: None,
        template: Some(TemplateFact {
            name: "task_reminder".into(),
            approval_status: heimdall_codes::TemplateApproval::Approved,
            category: TemplateCategory::Utility,
            variable_names: vec!["task_name".into(), "due_time".into()],
            digest: "d1".into(),
        }),
        authorization: Authorization::Automation {
            name: "n8n".into(),
            approved: true,
            approved_by: Some("approver@example.com".into()),
            templates: vec!["task_reminder".into()],
            free_form: false,
        },
        sender: SenderFact {
            address: Some("+14155550100".into()),
            active: true,
            paused: None,
        },
        time_zone: LocalZones::Contact(chrono_tz::Europe::Oslo),
        tier: TierFact {
            used: 0,
            limit: Some(250),
            recipient_counted: false,
            next_free_at: None,
        },
        recipient_next_at: None,
    }
}

fn run(m: &MessageFacts, f: &LoadedFacts) -> GateDecision {
    evaluate(m, f, now(), &Policy::default())
}

fn automation_template() -> MessageFacts {
    msg(
        Channel::WhatsApp,
        template("task_reminder"),
        Purpose::Automation,
    )
}

#[test]
fn the_passing_message_passes_with_every_verdict() {
    let d = run(&automation_template(), &facts());
    assert_eq!(d.decision, Decision::Pass, "{d:#?}");
    assert_eq!(d.verdicts.len(), Gate::ORDER.len());
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["decision"]["decision"], "pass");
    assert_eq!(json["verdicts"][0]["gate"], "invalid_number");
}

#[test]
fn a_block_wins_over_a_defer_and_the_first_block_names_the_decision() {
    let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
    let mut f = facts();
    f.time_zone = LocalZones::Contact(chrono_tz::Pacific::Auckland);
    f.consent = None;
    f.suppression = Some(SuppressionFact {
        reason: "staff".into(),
        since: now(),
        marketing_only: false,
        purpose: None,
    });
    let d = run(&m, &f);
    assert_eq!(
        d.decision,
        Decision::Block {
            reason: Gate::Suppressed
        }
    );
    assert!(matches!(
        d.verdict(Gate::NoConsent),
        Some(Verdict::Block { .. })
    ));
    assert!(matches!(
        d.verdict(Gate::QuietHours),
        Some(Verdict::Defer { .. })
    ));
}

#[test]
fn reason_codes_are_the_contract() {
    let codes: Vec<&str> = Gate::ORDER.iter().map(|g| g.code()).collect();
    assert_eq!(
        codes,
        [
            "invalid_number",
            "not_allowlisted",
            "suppressed",
            "no_consent",
            "outside_window",
            "template_not_approved",
            "not_authorized",
            "marketing_paused",
            "sender_paused",
            "quiet_hours",
            "tier_limit",
            "rate_limited"
        ]
    );
    for g in Gate::ORDER {
        assert_eq!(serde_json::to_value(g).unwrap(), g.code());
    }
}

//! Who stands behind the message, and its template.

use super::*;
use heimdall_codes::TemplateApproval;

#[test]
fn one_template_rule_for_the_gate_and_every_earlier_check() {
    let vars = vec!["name".to_string(), "day".to_string()];
    let approved = Some((TemplateApproval::Approved, vars.as_slice()));
    assert_eq!(
        template_problem(None, ["name"]),
        Some(TemplateProblem::NotRegistered)
    );
    assert_eq!(
        template_problem(
            Some((TemplateApproval::Pending, vars.as_slice())),
            ["name", "day"]
        ),
        Some(TemplateProblem::NotApproved {
            status: TemplateApproval::Pending
        })
    );
    assert_eq!(template_problem(approved, ["day", "name"]), None);
    assert_eq!(
        template_problem(approved, ["name", "colour"]),
        Some(TemplateProblem::Variables {
            missing: vec!["day".into()],
            unknown: vec!["colour".into()],
        })
    );
    // The automation's part, as the gate and a reminder's creation see it.
    let automation = |approved: bool| Authorization::Automation {
        name: "reminders".into(),
        approved,
        approved_by: Some("approver".into()),
        templates: vec!["visit".into()],
        free_form: false,
    };
    assert!(matches!(
        automation_template_verdict(&automation(true), "visit"),
        Verdict::Pass { .. }
    ));
    for (auth, template, says) in [
        (automation(false), "visit", "is not approved"),
        (
            automation(true),
            "promo",
            "not approved for template 'promo'",
        ),
        (
            Authorization::None { why: "x".into() },
            "visit",
            "no approved automation",
        ),
    ] {
        match automation_template_verdict(&auth, template) {
            Verdict::Block { detail } => assert!(detail.contains(says), "{detail}"),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn an_automation_replies_in_free_text_only_when_approved_for_it_and_only_inside_the_window() {
    let automation = |approved: bool, free_form: bool| Authorization::Automation {
        name: "agent".into(),
        approved,
        approved_by: approved.then(|| "approver@example.com".into()),
        templates: vec![],
        free_form,
    };
    let wa = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::Automation,
    );
    let sms = msg(Channel::Sms, MessageContent::FreeForm, Purpose::Automation);
    let mut f = facts();
    f.consent = None;
    f.window_expires_at = Some(now() + Duration::hours(3));
    let blocked = |reason| Decision::Block { reason };

    // Not approved for free text (or not approved at all): refused, window or not.
    // Without an opt-in the consent gate refuses first; with one, the authorization.
    for auth in [automation(true, false), automation(false, true)] {
        f.authorization = auth;
        f.consent = None;
        assert_eq!(run(&wa, &f).decision, blocked(Gate::NoConsent));
        f.consent = facts().consent;
        assert_eq!(run(&wa, &f).decision, blocked(Gate::NotAuthorized));
    }
    f.consent = None;

    // Approved: inside the window it goes, to a person who wrote first (no opt-in needed,
    // as for staff), on WhatsApp and SMS alike.
    f.authorization = automation(true, true);
    let d = run(&wa, &f);
    assert_eq!(d.decision, Decision::Pass, "{d:#?}");
    let said = d
        .verdicts
        .iter()
        .find(|v| v.gate == Gate::NotAuthorized)
        .map(|v| format!("{:?}", v.verdict))
        .unwrap_or_default();
    assert!(
        said.contains("approved for free-form replies inside the window by approver@example.com"),
        "{said}"
    );
    assert_eq!(run(&sms, &f).decision, Decision::Pass);

    // Outside the window: refused on both channels, with the reason that applies.
    f.window_expires_at = Some(now() - Duration::minutes(1));
    assert_eq!(run(&wa, &f).decision, blocked(Gate::NoConsent));
    assert_eq!(run(&sms, &f).decision, blocked(Gate::NoConsent));
    f.consent = facts().consent;
    assert_eq!(run(&wa, &f).decision, blocked(Gate::OutsideWindow));
    assert_eq!(run(&sms, &f).decision, blocked(Gate::NotAuthorized));

    // A STOP, or a revoked consent, blocks even inside the window.
    f.window_expires_at = Some(now() + Duration::hours(3));
    let mut revoked = facts();
    if let Some(c) = revoked.consent.as_mut() {
        c.status = ConsentStatus::Revoked;
    }
    f.consent = revoked.consent;
    assert_eq!(run(&wa, &f).decision, blocked(Gate::NoConsent));
    f.consent = None;
    f.suppression = Some(SuppressionFact {
        reason: "keyword STOP".into(),
        since: now(),
        marketing_only: false,
        purpose: None,
    });
    assert_eq!(run(&wa, &f).decision, blocked(Gate::Suppressed));
    assert_eq!(run(&sms, &f).decision, blocked(Gate::Suppressed));
}

#[test]
fn template_not_approved_blocks_unknown_unapproved_and_mismatched() {
    let m = automation_template();
    let mut f = facts();
    f.template = None;
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::TemplateNotApproved
        }
    );
    for status in [
        TemplateApproval::Pending,
        TemplateApproval::Rejected,
        TemplateApproval::Paused,
        TemplateApproval::Disabled,
    ] {
        let mut f = facts();
        f.template.as_mut().unwrap().approval_status = status;
        let d = run(&m, &f);
        assert_eq!(
            d.decision,
            Decision::Block {
                reason: Gate::TemplateNotApproved
            }
        );
        assert!(d.explanation().contains(status.as_str()));
    }
    let mut missing = m.clone();
    missing.content = MessageContent::Template {
        name: "task_reminder".into(),
        supplied: vec!["task_name".into()],
    };
    let d = run(&missing, &facts());
    assert_eq!(
        d.decision,
        Decision::Block {
            reason: Gate::TemplateNotApproved
        }
    );
    assert!(d.explanation().contains("due_time"));
    let mut extra = m.clone();
    extra.content = MessageContent::Template {
        name: "task_reminder".into(),
        supplied: vec!["task_name".into(), "due_time".into(), "colour".into()],
    };
    assert!(run(&extra, &facts()).explanation().contains("colour"));
}

#[test]
fn not_authorized_covers_campaigns_automations_staff_and_senders() {
    let campaign = msg(
        Channel::WhatsApp,
        template("task_reminder"),
        Purpose::Campaign,
    );
    let mut f = facts();
    f.authorization = Authorization::Campaign {
        status: heimdall_codes::CampaignStatus::Approved,
        authors: vec!["a@x.com".into()],
        approved_by: Some("a@x.com".into()),
        approved_template: None,
    };
    assert_eq!(
        run(&campaign, &f).decision,
        Decision::Block {
            reason: Gate::NotAuthorized
        }
    );
    f.authorization = Authorization::Campaign {
        status: heimdall_codes::CampaignStatus::Approved,
        authors: vec!["a@x.com".into()],
        approved_by: None,
        approved_template: None,
    };
    assert_eq!(
        run(&campaign, &f).decision,
        Decision::Block {
            reason: Gate::NotAuthorized
        }
    );
    f.authorization = Authorization::Campaign {
        status: heimdall_codes::CampaignStatus::Sending,
        authors: vec!["a@x.com".into()],
        approved_by: Some("b@x.com".into()),
        approved_template: None,
    };
    assert_eq!(run(&campaign, &f).decision, Decision::Pass);
    f.authorization = Authorization::Campaign {
        status: heimdall_codes::CampaignStatus::Cancelled,
        authors: vec!["a@x.com".into()],
        approved_by: Some("b@x.com".into()),
        approved_template: None,
    };
    assert_eq!(
        run(&campaign, &f).decision,
        Decision::Block {
            reason: Gate::NotAuthorized
        }
    );

    // Automation not approved, or not for this template.
    let mut f = facts();
    f.authorization = Authorization::Automation {
        name: "n8n".into(),
        approved: false,
        approved_by: None,
        templates: vec!["task_reminder".into()],
        free_form: false,
    };
    assert_eq!(
        run(&automation_template(), &f).decision,
        Decision::Block {
            reason: Gate::NotAuthorized
        }
    );
    f.authorization = Authorization::Automation {
        name: "n8n".into(),
        approved: true,
        approved_by: Some("x".into()),
        templates: vec!["daily_briefing".into()],
        free_form: false,
    };
    assert_eq!(
        run(&automation_template(), &f).decision,
        Decision::Block {
            reason: Gate::NotAuthorized
        }
    );

    // A sender nobody activated.
    let mut f = facts();
    f.sender.active = false;
    let d = run(&automation_template(), &f);
    assert_eq!(
        d.decision,
        Decision::Block {
            reason: Gate::NotAuthorized
        }
    );
    assert!(d.explanation().contains("activated"));

    // Staff without the right to reply.
    let mut f = facts();
    f.window_expires_at = Some(now() + Duration::hours(1));
    f.authorization = Authorization::Staff {
        user: "viewer@x.com".into(),
        may_reply: false,
    };
    let m = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::InboxReply,
    );
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::NotAuthorized
        }
    );
}

#[test]
fn no_author_may_approve_and_approval_binds_to_the_template() {
    let campaign = msg(
        Channel::WhatsApp,
        template("task_reminder"),
        Purpose::Campaign,
    );
    let mut f = facts();
    // A second author (who edited the draft) approved it: refused.
    f.authorization = Authorization::Campaign {
        status: heimdall_codes::CampaignStatus::Approved,
        authors: vec!["a".into(), "b".into()],
        approved_by: Some("b".into()),
        approved_template: Some("d1".into()),
    };
    assert_eq!(
        run(&campaign, &f).decision.reason(),
        Some(Gate::NotAuthorized)
    );
    // Someone else approved the template as it is now: passes.
    f.authorization = Authorization::Campaign {
        status: heimdall_codes::CampaignStatus::Approved,
        authors: vec!["a".into(), "b".into()],
        approved_by: Some("c".into()),
        approved_template: Some("d1".into()),
    };
    assert_eq!(run(&campaign, &f).decision, Decision::Pass);
    // The template changed since: refused.
    f.template.as_mut().unwrap().digest = "d2".into();
    let d = run(&campaign, &f);
    assert_eq!(d.decision.reason(), Some(Gate::NotAuthorized));
    assert!(
        d.explanation().contains("template changed"),
        "{}",
        d.explanation()
    );
}

//! The gates, one rule at a time, on hand-made facts.

use super::*;

#[test]
fn one_template_rule_for_the_gate_and_every_earlier_check() {
    let vars = vec!["name".to_string(), "day".to_string()];
    let approved = Some(("approved", vars.as_slice()));
    assert_eq!(
        template_problem(None, ["name"]),
        Some(TemplateProblem::NotRegistered)
    );
    assert_eq!(
        template_problem(Some(("pending", vars.as_slice())), ["name", "day"]),
        Some(TemplateProblem::NotApproved {
            status: "pending".into()
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
use phonenumber::country::Id;

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
        consent: Some(ConsentFact {
            status: ConsentStatus::Active,
            source: "web_form".into(),
            captured_at: now() - Duration::days(3),
        }),
        suppression: None,
        window_expires_at: None,
        template: Some(TemplateFact {
            name: "task_reminder".into(),
            approval_status: "approved".into(),
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
fn invalid_number_blocks() {
    let mut m = automation_template();
    m.recipient = None;
    m.raw_to = "12".into();
    let d = run(&m, &facts());
    assert_eq!(
        d.decision,
        Decision::Block {
            reason: Gate::InvalidNumber
        }
    );
    assert!(d.explanation().contains("'12'"));
}

#[test]
fn no_consent_blocks_and_pending_or_revoked_also_block() {
    let m = automation_template();
    let mut f = facts();
    f.consent = None;
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::NoConsent
        }
    );
    for status in [ConsentStatus::Pending, ConsentStatus::Revoked] {
        f.consent = Some(ConsentFact {
            status,
            source: "web_form".into(),
            captured_at: now(),
        });
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::NoConsent
            }
        );
    }
}

#[test]
fn suppressed_blocks_everything_but_the_keyword_reply() {
    let mut f = facts();
    f.suppression = Some(SuppressionFact {
        reason: "keyword STOP".into(),
        since: now(),
        marketing_only: false,
    });
    assert_eq!(
        run(&automation_template(), &f).decision,
        Decision::Block {
            reason: Gate::Suppressed
        }
    );
    let mut reply = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::ComplianceReply,
    );
    f.authorization = Authorization::System;
    f.consent = None;
    reply.content = MessageContent::FreeForm;
    assert_eq!(run(&reply, &f).decision, Decision::Pass);
}

#[test]
fn outside_window_blocks_free_form_and_its_twin_passes_inside() {
    let m = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::InboxReply,
    );
    let mut f = facts();
    f.authorization = Authorization::Staff {
        user: "op@example.com".into(),
        may_reply: true,
    };
    f.window_expires_at = Some(now() - Duration::minutes(1));
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::OutsideWindow
        }
    );
    f.window_expires_at = Some(now() + Duration::hours(2));
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    // Outside the window a template passes.
    f.window_expires_at = None;
    let t = msg(
        Channel::WhatsApp,
        template("task_reminder"),
        Purpose::InboxReply,
    );
    assert_eq!(run(&t, &f).decision, Decision::Pass);
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
    });
    assert_eq!(run(&wa, &f).decision, blocked(Gate::Suppressed));
    assert_eq!(run(&sms, &f).decision, blocked(Gate::Suppressed));
}

#[test]
fn inbox_reply_in_window_needs_no_opt_in_but_revocation_still_blocks() {
    let m = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::InboxReply,
    );
    let mut f = facts();
    f.authorization = Authorization::Staff {
        user: "op@example.com".into(),
        may_reply: true,
    };
    f.window_expires_at = Some(now() + Duration::hours(2));
    f.consent = None;
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    f.consent = Some(ConsentFact {
        status: ConsentStatus::Revoked,
        source: "keyword".into(),
        captured_at: now(),
    });
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::NoConsent
        }
    );
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
    for status in ["pending", "rejected", "paused", "disabled"] {
        let mut f = facts();
        f.template.as_mut().unwrap().approval_status = status.into();
        let d = run(&m, &f);
        assert_eq!(
            d.decision,
            Decision::Block {
                reason: Gate::TemplateNotApproved
            }
        );
        assert!(d.explanation().contains(status));
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
        status: "approved".into(),
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
        status: "approved".into(),
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
        status: "sending".into(),
        authors: vec!["a@x.com".into()],
        approved_by: Some("b@x.com".into()),
        approved_template: None,
    };
    assert_eq!(run(&campaign, &f).decision, Decision::Pass);
    f.authorization = Authorization::Campaign {
        status: "cancelled".into(),
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
fn marketing_to_plus_one_is_paused_on_whatsapp_only() {
    let mut m = msg(
        Channel::WhatsApp,
        template("spring_offer"),
        Purpose::Automation,
    );
    m.recipient = Some(PhoneNumber::parse("+14155552671", Id::US).unwrap());
    let mut f = facts();
    f.template.as_mut().unwrap().category = TemplateCategory::Marketing;
    if let Authorization::Automation { templates, .. } = &mut f.authorization {
        templates.push("spring_offer".into());
    }
    f.template.as_mut().unwrap().name = "spring_offer".into();
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::MarketingPaused
        }
    );
    // Twin: the same template to a Norwegian number passes.
    let mut m2 = m.clone();
    m2.recipient = Some(PhoneNumber::parse("+4791234567", Id::US).unwrap());
    assert_eq!(run(&m2, &f).decision, Decision::Pass);
    // Canada is +1 but not part of Meta's US pause.
    let mut ca = m.clone();
    ca.recipient = Some(PhoneNumber::parse("+14165550123", Id::US).unwrap());
    assert_eq!(run(&ca, &f).decision, Decision::Pass);
    // And by SMS the WhatsApp rule does not apply.
    let mut m3 = m.clone();
    m3.channel = Channel::Sms;
    f.time_zone = LocalZones::Contact(chrono_tz::UTC);
    assert_eq!(run(&m3, &f).decision, Decision::Pass);
}

#[test]
fn quiet_hours_defer_sms_until_eight_local() {
    let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
    let mut f = facts();
    // 15:00 UTC is 16:00 in Oslo: fine.
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    // 15:00 UTC is 04:00 next day in Auckland (UTC+13): defer to 08:00 local.
    f.time_zone = LocalZones::Contact(chrono_tz::Pacific::Auckland);
    match run(&m, &f).decision {
        Decision::Defer { reason, until } => {
            assert_eq!(reason, Gate::QuietHours);
            assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 17, 19, 0, 0).unwrap());
        }
        other => panic!("expected defer, got {other:?}"),
    }
    // 15:00 UTC is 10:00 in New York: fine; 22:00 New York defers to next 08:00.
    f.time_zone = LocalZones::Contact(chrono_tz::America::New_York);
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    let late = Utc.with_ymd_and_hms(2026, 11, 18, 3, 0, 0).unwrap();
    match evaluate(&m, &f, late, &Policy::default()).decision {
        Decision::Defer { until, .. } => {
            assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 18, 13, 0, 0).unwrap())
        }
        other => panic!("expected defer, got {other:?}"),
    }
    // WhatsApp at the same hour is not subject to quiet hours.
    let wa = automation_template();
    assert_eq!(
        evaluate(&wa, &f, late, &Policy::default()).decision,
        Decision::Pass
    );
}

#[test]
fn tier_limit_defers_new_people_but_not_counted_ones() {
    let m = automation_template();
    let mut f = facts();
    f.tier = TierFact {
        used: 250,
        limit: Some(250),
        recipient_counted: false,
        next_free_at: Some(now() + Duration::hours(3)),
    };
    assert_eq!(
        run(&m, &f).decision,
        Decision::Defer {
            reason: Gate::TierLimit,
            until: now() + Duration::hours(3)
        }
    );
    f.tier.recipient_counted = true;
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    f.tier.recipient_counted = false;
    f.tier.limit = None;
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    // Inside the window the conversation is not business-initiated.
    f.tier.limit = Some(250);
    f.window_expires_at = Some(now() + Duration::hours(1));
    assert_eq!(run(&m, &f).decision, Decision::Pass);
}

#[test]
fn rate_limited_defers_until_the_recipient_may_be_messaged() {
    let m = automation_template();
    let mut f = facts();
    f.recipient_next_at = Some(now() + Duration::seconds(4));
    assert_eq!(
        run(&m, &f).decision,
        Decision::Defer {
            reason: Gate::RateLimited,
            until: now() + Duration::seconds(4)
        }
    );
    f.recipient_next_at = Some(now() - Duration::seconds(1));
    assert_eq!(run(&m, &f).decision, Decision::Pass);
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
fn next_local_time_handles_daylight_saving_gaps() {
    // Europe/Oslo springs forward at 02:00 on 2026-03-29: 02:30 does not exist.
    let t = next_local_time(
        chrono_tz::Europe::Oslo,
        chrono::NaiveDate::from_ymd_opt(2026, 3, 29).unwrap(),
        NaiveTime::from_hms_opt(2, 30, 0).unwrap(),
    )
    .unwrap();
    assert_eq!(t, Utc.with_ymd_and_hms(2026, 3, 29, 1, 0, 0).unwrap());
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

#[test]
fn the_allowlist_refuses_every_other_number_with_its_own_code() {
    let m = automation_template();
    let f = facts();
    let mut policy = Policy {
        allowlist: Some(std::sync::Arc::new(
            ["+4700000000".to_string()].into_iter().collect(),
        )),
        ..Policy::default()
    };
    let d = evaluate(&m, &f, now(), &policy);
    assert_eq!(
        d.decision,
        Decision::Block {
            reason: Gate::NotAllowlisted
        }
    );
    // Even the reply to a keyword does not go outside the list.
    let reply = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::ComplianceReply,
    );
    assert_eq!(
        evaluate(&reply, &f, now(), &policy).decision.reason(),
        Some(Gate::NotAllowlisted)
    );
    // The listed number passes.
    policy.allowlist = Some(std::sync::Arc::new(
        ["+4791234567".to_string()].into_iter().collect(),
    ));
    assert_eq!(evaluate(&m, &f, now(), &policy).decision, Decision::Pass);
    // No list: the gate does not apply.
    assert!(matches!(
        run(&m, &f).verdict(Gate::NotAllowlisted),
        Some(Verdict::NotApplicable { .. })
    ));
}

#[test]
fn a_marketing_only_suppression_stops_marketing_and_nothing_else() {
    let mut f = facts();
    f.suppression = Some(SuppressionFact {
        reason: "provider 131050".into(),
        since: now(),
        marketing_only: true,
    });
    // A utility template still goes.
    assert_eq!(run(&automation_template(), &f).decision, Decision::Pass);
    // A marketing one does not.
    f.template.as_mut().unwrap().category = TemplateCategory::Marketing;
    assert_eq!(
        run(&automation_template(), &f).decision.reason(),
        Some(Gate::Suppressed)
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
        status: "approved".into(),
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
        status: "approved".into(),
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

#[test]
fn a_paused_sender_holds_messages_instead_of_refusing_them() {
    let mut f = facts();
    f.sender.paused = Some("error 63007".into());
    let d = run(&automation_template(), &f);
    match d.decision {
        Decision::Defer { reason, until } => {
            assert_eq!(reason, Gate::SenderPaused);
            assert_eq!(until, sender_paused_until());
        }
        other => panic!("{other:?}"),
    }
    assert!(Gate::SenderPaused.defers());
}

#[test]
fn quiet_hours_name_the_zone_and_take_every_inferred_zone() {
    let m = msg(Channel::Sms, template("task_reminder"), Purpose::Automation);
    let mut f = facts();
    static ZONES: [chrono_tz::Tz; 2] = [
        chrono_tz::America::New_York,
        chrono_tz::America::Los_Angeles,
    ];
    f.time_zone = LocalZones::Inferred {
        zones: &ZONES,
        prefix: "1",
    };
    // 15:00 UTC: 10:00 in New York, 07:00 in Los Angeles: held.
    let d = run(&m, &f);
    match d.decision {
        Decision::Defer { reason, until } => {
            assert_eq!(reason, Gate::QuietHours);
            // Until 08:00 in Los Angeles (16:00 UTC in November).
            assert_eq!(until, Utc.with_ymd_and_hms(2026, 11, 17, 16, 0, 0).unwrap());
        }
        other => panic!("{other:?}"),
    }
    let detail = d.explanation();
    assert!(detail.contains("America/Los_Angeles"), "{detail}");
    assert!(detail.contains("inferred from +1"), "{detail}");
    // One zone only (New York): it may go.
    f.time_zone = LocalZones::Contact(chrono_tz::America::New_York);
    assert_eq!(run(&m, &f).decision, Decision::Pass);
}

//! Campaigns against real storage (SQLite by default; PostgreSQL and Redis
//! when the run asks for them): the two-person life cycle, refusals that
//! name the field, the review's dry run, a fan-out that happens exactly
//! once under a race and resumes after a crash, pause/resume/cancel of
//! waiting messages, progress, and scheduled starts.

use heimdall_domain::compliance::message_source::MessageSource;
use heimdall_domain::compliance::message_state::MessageState;
use std::collections::BTreeMap;

use chrono::Duration;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::accounts::{Role, StaffUser};
use heimdall_domain::campaigns::{
    self, Audience, CampaignDraft, CampaignError, CampaignStatus, VariableSource,
};
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::entities::{
    campaign, campaign_approval, outbound_message, staff_audit, tool_call,
};
use heimdall_domain::sending::outbound::{
    self, Origin, Recipient, RequestedContent, SendRequest, SendResult, StatusReport,
};
use heimdall_domain::templates::{self, TemplateSpec};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{access::authz, Channel, Core};

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    env
}

async fn template(core: &Core, name: &str, category: &str, approval: &str) {
    templates::upsert(
        &core.db.conn,
        TemplateSpec {
            name: name.into(),
            provider: "twilio".into(),
            provider_id: Some(format!("HX{:0>32}", name.len())),
            category: category.into(),
            language: "en".into(),
            body: "Hi {{1}}, spring sale: {{2}}".into(),
            variables: vec!["first_name".into(), "offer".into()],
            approval_status: heimdall_domain::templates::TemplateApproval::parse(approval)
                .expect("an approval status"),
            rejection_reason: None,
            source: "staff".into(),
        },
        false,
        core.now(),
    )
    .await
    .unwrap();
}

async fn staff(core: &Core, email: &str, role: Role) -> StaffUser {
    heimdall_domain::testing::staff_user(core, email, role).await
}

struct People {
    author: StaffUser,
    approver: StaffUser,
    viewer: StaffUser,
    operator: StaffUser,
    admin: StaffUser,
}

async fn people(core: &Core) -> People {
    People {
        author: staff(core, "author@example.com", Role::Operator).await,
        approver: staff(core, "approver@example.com", Role::Approver).await,
        viewer: staff(core, "viewer@example.com", Role::Viewer).await,
        operator: staff(core, "other-operator@example.com", Role::Operator).await,
        admin: staff(core, "admin@example.com", Role::Admin).await,
    }
}

fn evidence() -> ConsentEvidence {
    ConsentEvidence {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 test".into()),
        consent_text_version: Some("v1".into()),
        consent_text: Some("I agree to receive messages.".into()),
        ..Default::default()
    }
}

async fn contact(
    core: &Core,
    phone: &str,
    name: &str,
    tags: &[&str],
    consent: &[Channel],
) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: phone.into(),
            name: Some(name.into()),
            time_zone: Some("Europe/Oslo".into()),
            tags: tags.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for ch in consent {
        heimdall_domain::consent::record_opt_in(
            &core.db.conn,
            &c.id,
            *ch,
            None,
            ConsentSource::Api,
            &evidence(),
            "test",
            false,
            core.now(),
        )
        .await
        .unwrap();
    }
    c.id
}

/// `n` consented contacts tagged `tag`, numbers +4791000000 + offset.
async fn crowd(core: &Core, n: usize, tag: &str, offset: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for i in 0..n {
        ids.push(
            contact(
                core,
                &format!("+47910{:05}", offset + i),
                &format!("Person {i}"),
                &[tag],
                &[Channel::WhatsApp],
            )
            .await,
        );
    }
    ids
}

fn mapping() -> BTreeMap<String, VariableSource> {
    [
        (
            "task_name".to_string(),
            VariableSource::Field("name".into()),
        ),
        (
            "due_time".to_string(),
            VariableSource::Value("17:00".into()),
        ),
    ]
    .into()
}

fn draft(name: &str, tag: &str) -> CampaignDraft {
    CampaignDraft {
        name: name.into(),
        channel: Channel::WhatsApp,
        template_name: "task_reminder".into(),
        audience: Audience::Tags {
            tags: vec![tag.into()],
        },
        variables: mapping(),
        scheduled_at: None,
    }
}

/// Draft, submit and approve: the campaign is approved with its fan-out enqueued.
async fn approved(env: &TestEnv, p: &People, d: CampaignDraft) -> String {
    let c = campaigns::create_draft(&env.core, &p.author, d)
        .await
        .unwrap();
    campaigns::submit(&env.core, &p.author, &c.id)
        .await
        .unwrap();
    let c = campaigns::approve(
        &env.core,
        &p.approver,
        &c.id,
        &reviewed(&env.core, &c.id).await,
    )
    .await
    .unwrap();
    c.id
}

/// What an approver's review of the campaign shows: the hash they approve.
async fn reviewed(core: &Core, id: &str) -> String {
    campaigns::review(core, id, 0).await.unwrap().content_hash
}

async fn messages_of(core: &Core, campaign_id: &str) -> Vec<outbound_message::Model> {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::CampaignId.eq(campaign_id))
        .all(&core.db.conn)
        .await
        .unwrap()
}

async fn drain(env: &TestEnv) -> Vec<SendResult> {
    let mut out = Vec::new();
    for id in env.take_enqueued() {
        out.push(outbound::process_send(&env.core, &id).await.unwrap());
    }
    out
}

fn status(message_id: &str, status: &str, code: Option<i64>) -> StatusReport {
    StatusReport {
        message_id: Some(message_id.into()),
        provider_sid: None,
        status: status.into(),
        error_code: code,
        error_message: None,
        price: None,
        price_unit: None,
        source: "twilio".into(),
    }
}

async fn staff_actions(core: &Core, action: &str) -> u64 {
    staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.eq(action))
        .count(&core.db.conn)
        .await
        .unwrap()
}

fn invalid(e: CampaignError) -> String {
    match e {
        e @ CampaignError::Invalid { .. } => e.to_string(),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn the_full_life_cycle_from_draft_to_completed() {
    let env = env().await;
    let p = people(&env.core).await;
    let ids = crowd(&env.core, 3, "vip", 0).await;
    let c = campaigns::create_draft(&env.core, &p.author, draft("November reminder", "VIP "))
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Draft);
    assert_eq!(c.template_name, "task_reminder");
    assert_eq!(c.template_category, "UTILITY");
    assert_eq!(c.created_by_email.as_deref(), Some("author@example.com"));
    assert_eq!(
        c.audience,
        Audience::Tags {
            tags: vec!["vip".into()]
        }
    );

    let c = campaigns::submit(&env.core, &p.author, &c.id)
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Submitted);
    assert!(c.submitted_at.is_some());
    assert!(env.queue.campaigns.lock().unwrap().is_empty());

    let c = campaigns::approve(
        &env.core,
        &p.approver,
        &c.id,
        &reviewed(&env.core, &c.id).await,
    )
    .await
    .unwrap();
    assert_eq!(c.status, CampaignStatus::Approved);
    assert_eq!(c.approved_by.as_deref(), Some(p.approver.id.as_str()));
    assert_eq!(c.approved_by_email.as_deref(), Some("approver@example.com"));
    assert_eq!(*env.queue.campaigns.lock().unwrap(), vec![c.id.clone()]);

    let report = campaigns::fan_out(&env.core, &c.id).await.unwrap();
    assert!(report.claimed);
    assert!(report.finished);
    assert_eq!((report.recipients, report.created), (3, 3));
    let c = campaigns::get(&env.core, &c.id).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Sending);
    assert!(c.fanned_out_at.is_some());
    assert_eq!(c.recipients, Some(3));

    // Each recipient got the template with their own name.
    let msgs = messages_of(&env.core, &c.id).await;
    assert_eq!(msgs.len(), 3);
    for m in &msgs {
        assert_eq!(m.source, MessageSource::Campaign);
        assert!(ids.contains(m.contact_id.as_ref().unwrap()));
        assert_eq!(
            m.idempotency_key.as_deref(),
            Some(campaigns::idempotency_key(&c.id, m.contact_id.as_ref().unwrap()).as_str())
        );
        assert!(m.variables.contains("Person "), "{}", m.variables);
    }
    // Not completed while messages wait.
    assert_eq!(campaigns::complete_finished(&env.core).await.unwrap(), 0);
    let results = drain(&env).await;
    assert_eq!(results.len(), 3);
    assert!(
        results.iter().all(|r| matches!(r, SendResult::Sent { .. })),
        "{results:?}"
    );
    assert_eq!(env.provider.count(), 3);
    for m in &msgs {
        outbound::apply_status(&env.core, status(&m.id, "delivered", None))
            .await
            .unwrap();
    }
    assert_eq!(campaigns::complete_finished(&env.core).await.unwrap(), 1);
    let c = campaigns::get(&env.core, &c.id).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Completed);
    assert!(c.completed_at.is_some());
    let decisions: Vec<&str> = c.history.iter().map(|h| h.decision.as_str()).collect();
    assert_eq!(decisions, ["submitted", "approved", "sending", "completed"]);
    assert_eq!(c.history[0].actor_email, "author@example.com");
    assert_eq!(c.history[1].actor_email, "approver@example.com");
    assert_eq!(c.history[2].actor_email, "system");
    for action in [
        "campaign created",
        "campaign submitted",
        "campaign approved",
    ] {
        assert_eq!(staff_actions(&env.core, action).await, 1, "{action}");
    }
    // A finished campaign cannot be paused or cancelled.
    assert!(matches!(
        campaigns::cancel(&env.core, &p.author, &c.id).await,
        Err(CampaignError::InvalidTransition {
            from: CampaignStatus::Completed,
            ..
        })
    ));
    let listed = campaigns::list(&env.core, Some(CampaignStatus::Completed), 50, None)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    assert!(
        campaigns::list(&env.core, Some(CampaignStatus::Draft), 50, None)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn the_author_cannot_approve_or_reject_their_own_campaign() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 1, "vip", 0).await;
    // An approver writes a campaign: still not theirs to approve.
    let c = campaigns::create_draft(&env.core, &p.approver, draft("Mine", "vip"))
        .await
        .unwrap();
    campaigns::submit(&env.core, &p.approver, &c.id)
        .await
        .unwrap();
    assert!(matches!(
        campaigns::approve(
            &env.core,
            &p.approver,
            &c.id,
            &reviewed(&env.core, &c.id).await
        )
        .await,
        Err(CampaignError::SelfApproval)
    ));
    assert!(matches!(
        campaigns::reject(&env.core, &p.approver, &c.id, "no").await,
        Err(CampaignError::SelfApproval)
    ));
    let c = campaigns::get(&env.core, &c.id).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Submitted);
    assert!(c.approved_by.is_none());
    assert!(env.queue.campaigns.lock().unwrap().is_empty());
    // Someone else may.
    let c = campaigns::approve(
        &env.core,
        &p.admin,
        &c.id,
        &reviewed(&env.core, &c.id).await,
    )
    .await
    .unwrap();
    assert_eq!(c.status, CampaignStatus::Approved);
}

#[tokio::test]
async fn viewers_and_operators_cannot_approve() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 1, "vip", 0).await;
    assert!(matches!(
        campaigns::create_draft(&env.core, &p.viewer, draft("x", "vip")).await,
        Err(CampaignError::Forbidden(_))
    ));
    let c = campaigns::create_draft(&env.core, &p.author, draft("x", "vip"))
        .await
        .unwrap();
    assert!(matches!(
        campaigns::submit(&env.core, &p.viewer, &c.id).await,
        Err(CampaignError::Forbidden(_))
    ));
    campaigns::submit(&env.core, &p.author, &c.id)
        .await
        .unwrap();
    for who in [&p.viewer, &p.operator] {
        match campaigns::approve(&env.core, who, &c.id, &reviewed(&env.core, &c.id).await).await {
            Err(CampaignError::Forbidden(m)) => assert!(m.contains("approver"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            campaigns::reject(&env.core, who, &c.id, "because").await,
            Err(CampaignError::Forbidden(_))
        ));
    }
    // A deactivated approver cannot either.
    let mut gone = p.approver.clone();
    gone.active = false;
    assert!(matches!(
        campaigns::approve(&env.core, &gone, &c.id, &reviewed(&env.core, &c.id).await).await,
        Err(CampaignError::Forbidden(_))
    ));
    assert_eq!(
        campaigns::get(&env.core, &c.id).await.unwrap().status,
        CampaignStatus::Submitted
    );
    // Only the author or an admin edits a draft.
    let c2 = campaigns::create_draft(&env.core, &p.author, draft("y", "vip"))
        .await
        .unwrap();
    assert!(matches!(
        campaigns::update_draft(&env.core, &p.operator, &c2.id, draft("y2", "vip")).await,
        Err(CampaignError::Forbidden(_))
    ));
    let c2 = campaigns::update_draft(&env.core, &p.admin, &c2.id, draft("y3", "vip"))
        .await
        .unwrap();
    assert_eq!(c2.name, "y3");
    assert!(matches!(
        campaigns::get(&env.core, "no-such-id").await,
        Err(CampaignError::NotFound)
    ));
}

#[tokio::test]
async fn a_rejection_needs_a_reason_and_sends_the_draft_back() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 1, "vip", 0).await;
    let c = campaigns::create_draft(&env.core, &p.author, draft("x", "vip"))
        .await
        .unwrap();
    // Not submitted yet: nothing to reject.
    assert!(matches!(
        campaigns::reject(&env.core, &p.approver, &c.id, "too early").await,
        Err(CampaignError::InvalidTransition {
            from: CampaignStatus::Draft,
            action: "reject"
        })
    ));
    campaigns::submit(&env.core, &p.author, &c.id)
        .await
        .unwrap();
    for blank in ["", "   \n"] {
        let m = invalid(
            campaigns::reject(&env.core, &p.approver, &c.id, blank)
                .await
                .unwrap_err(),
        );
        assert!(m.starts_with("reason:"), "{m}");
    }
    assert_eq!(
        campaigns::get(&env.core, &c.id).await.unwrap().status,
        CampaignStatus::Submitted
    );
    let c = campaigns::reject(&env.core, &p.approver, &c.id, " Wrong audience ")
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Rejected);
    assert_eq!(c.rejection_reason.as_deref(), Some("Wrong audience"));
    assert_eq!(
        c.history.last().unwrap().reason.as_deref(),
        Some("Wrong audience")
    );
    // A rejected campaign cannot be approved; the author edits it back to a draft.
    assert!(matches!(
        campaigns::approve(
            &env.core,
            &p.approver,
            &c.id,
            &reviewed(&env.core, &c.id).await
        )
        .await,
        Err(CampaignError::InvalidTransition {
            from: CampaignStatus::Rejected,
            ..
        })
    ));
    let c = campaigns::update_draft(&env.core, &p.author, &c.id, draft("x, fixed", "vip"))
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Draft);
    assert!(c.rejection_reason.is_none());
    let decisions: Vec<&str> = c.history.iter().map(|h| h.decision.as_str()).collect();
    assert_eq!(decisions, ["submitted", "rejected", "reopened"]);
    assert_eq!(staff_actions(&env.core, "campaign rejected").await, 1);
}

#[tokio::test]
async fn invalid_drafts_name_the_field_and_change_nothing() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 1, "vip", 0).await;
    template(&env.core, "pending_promo", "MARKETING", "pending").await;
    let cases: Vec<(CampaignDraft, &str)> = vec![
        (
            CampaignDraft {
                name: "  ".into(),
                ..draft("x", "vip")
            },
            "name:",
        ),
        (
            CampaignDraft {
                template_name: "nope".into(),
                ..draft("x", "vip")
            },
            "template_name:",
        ),
        (
            CampaignDraft {
                template_name: "pending_promo".into(),
                variables: [
                    (
                        "first_name".to_string(),
                        VariableSource::Field("name".into()),
                    ),
                    ("offer".to_string(), VariableSource::Value("10%".into())),
                ]
                .into(),
                ..draft("x", "vip")
            },
            "template_name:",
        ),
        (
            CampaignDraft {
                variables: [(
                    "task_name".to_string(),
                    VariableSource::Field("name".into()),
                )]
                .into(),
                ..draft("x", "vip")
            },
            "variables:",
        ),
        (
            CampaignDraft {
                variables: {
                    let mut m = mapping();
                    m.insert("extra".into(), VariableSource::Value("x".into()));
                    m
                },
                ..draft("x", "vip")
            },
            "variables:",
        ),
        (
            CampaignDraft {
                audience: Audience::Tags { tags: vec![] },
                ..draft("x", "vip")
            },
            "audience:",
        ),
        (draft("x", "nobody-has-this-tag"), "audience:"),
        (
            CampaignDraft {
                audience: Audience::Phones { phones: vec![] },
                ..draft("x", "vip")
            },
            "audience:",
        ),
        (
            CampaignDraft {
                scheduled_at: Some(env.core.now() - Duration::minutes(1)),
                ..draft("x", "vip")
            },
            "scheduled_at:",
        ),
    ];
    for (d, field) in cases {
        let m = invalid(
            campaigns::create_draft(&env.core, &p.author, d)
                .await
                .unwrap_err(),
        );
        assert!(m.starts_with(field), "{m} should start with {field}");
    }
    assert_eq!(
        campaign::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        0
    );
    assert_eq!(staff_actions(&env.core, "campaign created").await, 0);
}

#[tokio::test]
async fn csv_numbers_without_consent_are_refused_one_by_one() {
    let env = env().await;
    let p = people(&env.core).await;
    let ok = "+4791000001";
    contact(&env.core, ok, "Ok", &[], &[Channel::WhatsApp]).await;
    contact(&env.core, "+4791000002", "No consent", &[], &[]).await;
    contact(&env.core, "+4791000003", "SMS only", &[], &[Channel::Sms]).await;
    let suppressed = contact(
        &env.core,
        "+4791000004",
        "Suppressed",
        &[],
        &[Channel::WhatsApp],
    )
    .await;
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &suppressed,
        None,
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Staff,
        None,
        "admin@example.com",
        env.core.now(),
    )
    .await
    .unwrap();
    // A consent to marketing only does not cover the template's purpose.
    let (marketing_only, _) = heimdall_domain::contacts::upsert(
        &env.core,
        &heimdall_domain::contacts::ContactInput {
            phone: "+4791000005".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    heimdall_domain::consent::record_opt_ins(
        &env.core.db.conn,
        &marketing_only.id,
        Channel::WhatsApp,
        &["marketing".to_string()],
        heimdall_domain::consent::ConsentSource::Api,
        &heimdall_domain::testing::api_evidence(),
        "test",
        false,
        env.core.now(),
    )
    .await
    .unwrap();
    let d = CampaignDraft {
        audience: Audience::Phones {
            phones: vec![
                ok.into(),
                "+4791000005".into(),
                "+47 910 00 002".into(),
                "+4791000003".into(),
                "+4791000004".into(),
                "+4791999999".into(),
                "not-a-number".into(),
                "".into(),
            ],
        },
        ..draft("csv", "unused")
    };
    let m = invalid(
        campaigns::create_draft(&env.core, &p.author, d)
            .await
            .unwrap_err(),
    );
    assert!(m.starts_with("audience.phones: 6 number(s) refused"), "{m}");
    assert!(
        m.contains("+4791000005 (no consent for whatsapp (service))"),
        "{m}"
    );
    assert!(
        m.contains("+47 910 00 002 (no consent for whatsapp (service))"),
        "{m}"
    );
    assert!(
        m.contains("+4791000003 (no consent for whatsapp (service))"),
        "{m}"
    );
    assert!(
        m.contains("+4791000004 (opted out on whatsapp (service)"),
        "{m}"
    );
    assert!(m.contains("+4791999999 (not a contact)"), "{m}");
    assert!(m.contains("not-a-number (not a number"), "{m}");
    assert!(!m.contains(&format!("{ok} (")), "{m}");
    // The same list for the console's upload table.
    let (found, refused) = campaigns::check_phone_audience(
        &env.core,
        Channel::WhatsApp,
        None,
        &[
            ok.to_string(),
            "+4791999999".to_string(),
            " 9100 0001".to_string(),
        ],
    )
    .await
    .unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!(refused.len(), 2);
    // Only consented numbers: accepted, stored in E.164.
    let c = campaigns::create_draft(
        &env.core,
        &p.author,
        CampaignDraft {
            audience: Audience::Phones {
                phones: vec!["+47 910 00 001".into(), ok.into()],
            },
            ..draft("csv", "unused")
        },
    )
    .await
    .unwrap();
    assert_eq!(
        c.audience,
        Audience::Phones {
            phones: vec![ok.into()]
        }
    );
}

#[tokio::test]
async fn the_review_dry_run_counts_what_the_gates_would_do_and_writes_no_evaluation() {
    let env = env().await;
    let p = people(&env.core).await;
    template(&env.core, "spring_sale", "MARKETING", "approved").await;
    contact(
        &env.core,
        "+4791000001",
        "Ada",
        &["promo"],
        &[Channel::WhatsApp],
    )
    .await;
    contact(
        &env.core,
        "+4791000002",
        "Bea",
        &["promo"],
        &[Channel::WhatsApp],
    )
    .await;
    contact(&env.core, "+4791000003", "Cy", &["promo"], &[]).await;
    let s = contact(
        &env.core,
        "+4791000004",
        "Di",
        &["promo"],
        &[Channel::WhatsApp],
    )
    .await;
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &s,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("STOP"),
        "inbound",
        env.core.now(),
    )
    .await
    .unwrap();
    contact(
        &env.core,
        "+14155550123",
        "Ed",
        &["promo"],
        &[Channel::WhatsApp],
    )
    .await;
    let c = campaigns::create_draft(
        &env.core,
        &p.author,
        CampaignDraft {
            name: "Spring".into(),
            channel: Channel::WhatsApp,
            template_name: "spring_sale".into(),
            audience: Audience::Tags {
                tags: vec!["promo".into()],
            },
            variables: [
                (
                    "first_name".to_string(),
                    VariableSource::Field("name".into()),
                ),
                ("offer".to_string(), VariableSource::Field("coupon".into())),
            ]
            .into(),
            scheduled_at: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(c.template_category, "MARKETING");
    let r = campaigns::review_by(&env.core, Some(&p.approver), &c.id, 2)
        .await
        .unwrap();
    assert_eq!(r.audience_size, 5);
    assert_eq!(r.dry_run.would_pass, 2);
    assert_eq!(r.dry_run.would_block.get("no_consent"), Some(&1));
    assert_eq!(r.dry_run.would_block.get("suppressed"), Some(&1));
    assert_eq!(r.dry_run.would_block.get("marketing_paused"), Some(&1));
    assert_eq!(r.dry_run.would_block.values().sum::<usize>(), 3);
    assert!(r.dry_run.would_defer.is_empty());
    // Samples: masked numbers, the template rendered per contact.
    assert_eq!(r.samples.len(), 2);
    assert_eq!(r.samples[0].phone, "+47••••••01");
    assert_eq!(r.samples[0].text, "Hi Ada, spring sale: ");
    assert_eq!(r.samples[0].name.as_deref(), Some("Ada"));
    assert_eq!(r.missing_fields.get("coupon"), Some(&5));
    // The estimate: two billable MARKETING messages.
    assert_eq!(r.estimated_cost.currency, "USD");
    assert_eq!(r.estimated_cost.billable_messages, 2);
    assert!((r.estimated_cost.per_message - 0.025).abs() < 1e-9);
    assert!((r.estimated_cost.total - 0.05).abs() < 1e-9);
    // Not a message evaluation: no tool_calls, no messages; one staff audit row.
    assert_eq!(
        tool_call::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        outbound_message::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        0
    );
    let rows = staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.eq("campaign reviewed"))
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].actor, "approver@example.com");
    // The review without an actor still records one row.
    campaigns::review(&env.core, &c.id, 0).await.unwrap();
    assert_eq!(staff_actions(&env.core, "campaign reviewed").await, 2);
}

#[tokio::test]
async fn an_sms_review_prices_segments() {
    let env = env().await;
    let p = people(&env.core).await;
    contact(&env.core, "+4791000001", "Ada", &["sms"], &[Channel::Sms]).await;
    let c = campaigns::create_draft(
        &env.core,
        &p.author,
        CampaignDraft {
            channel: Channel::Sms,
            ..draft("sms", "sms")
        },
    )
    .await
    .unwrap();
    let r = campaigns::review(&env.core, &c.id, 1).await.unwrap();
    assert_eq!(r.dry_run.would_pass, 1, "{:?}", r.dry_run);
    assert_eq!(r.estimated_cost.sms_segments, Some(1));
    assert!((r.estimated_cost.total - 0.0079).abs() < 1e-9);
}

#[tokio::test]
async fn two_racing_fan_outs_create_each_message_exactly_once() {
    let env = env().await;
    let p = people(&env.core).await;
    let ids = crowd(&env.core, 200, "all", 0).await;
    let id = approved(&env, &p, draft("Big", "all")).await;
    let (a, b) = tokio::join!(
        campaigns::fan_out(&env.core, &id),
        campaigns::fan_out(&env.core, &id)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    // Exactly one run claimed the campaign.
    assert!(a.claimed ^ b.claimed, "{a:?} {b:?}");
    assert_eq!(a.created + b.created, 200);
    let msgs = messages_of(&env.core, &id).await;
    assert_eq!(msgs.len(), 200);
    let mut per_contact: BTreeMap<String, usize> = BTreeMap::new();
    for m in &msgs {
        *per_contact
            .entry(m.contact_id.clone().unwrap())
            .or_default() += 1;
    }
    assert_eq!(per_contact.len(), 200);
    assert!(per_contact.values().all(|n| *n == 1));
    assert!(ids.iter().all(|c| per_contact.contains_key(c)));
    // A third run finds it finished and does nothing.
    let again = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert!(!again.claimed);
    assert_eq!(again.created, 0);
    assert_eq!(messages_of(&env.core, &id).await.len(), 200);
    let sending: Vec<_> = campaigns::get(&env.core, &id)
        .await
        .unwrap()
        .history
        .into_iter()
        .filter(|h| h.decision == "sending")
        .collect();
    assert_eq!(sending.len(), 1);
}

#[tokio::test]
async fn a_fan_out_interrupted_half_way_resumes_without_duplicates() {
    let env = env().await;
    let p = people(&env.core).await;
    let ids = crowd(&env.core, 200, "all", 0).await;
    let id = approved(&env, &p, draft("Big", "all")).await;
    // A worker claimed it and accepted half the recipients, then died.
    let now = env.core.now();
    campaign::Entity::update_many()
        .col_expr(
            campaign::Column::Status,
            sea_orm::sea_query::Expr::value("sending"),
        )
        .col_expr(
            campaign::Column::FannedOutAt,
            sea_orm::sea_query::Expr::value(Some(now)),
        )
        .filter(campaign::Column::Id.eq(&id))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    for cid in ids.iter().step_by(2) {
        outbound::accept(
            &env.core,
            SendRequest {
                recipient: Recipient::Contact(cid.clone()),
                channel: Channel::WhatsApp,
                content: RequestedContent::Template {
                    name: "task_reminder".into(),
                    variables: [
                        ("task_name".to_string(), "x".to_string()),
                        ("due_time".to_string(), "17:00".to_string()),
                    ]
                    .into(),
                },
                origin: Origin::Campaign {
                    campaign_id: id.clone(),
                },
                idempotency_key: Some(campaigns::idempotency_key(&id, cid)),
                purpose: None,
            },
        )
        .await
        .unwrap();
    }
    assert_eq!(messages_of(&env.core, &id).await.len(), 100);
    // Housekeeping notices the silent fan-out after a minute and enqueues it again.
    env.queue.campaigns.lock().unwrap().clear();
    assert_eq!(campaigns::start_due(&env.core).await.unwrap(), 0);
    env.clock.advance(Duration::seconds(50));
    assert_eq!(campaigns::start_due(&env.core).await.unwrap(), 0);
    env.clock.advance(Duration::seconds(11));
    assert_eq!(campaigns::start_due(&env.core).await.unwrap(), 1);
    assert_eq!(*env.queue.campaigns.lock().unwrap(), vec![id.clone()]);
    let report = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert!(!report.claimed);
    assert!(report.finished);
    assert_eq!((report.created, report.existing), (100, 100));
    assert_eq!(messages_of(&env.core, &id).await.len(), 200);
    // And again: nothing more.
    campaigns::fan_out(&env.core, &id).await.unwrap();
    assert_eq!(messages_of(&env.core, &id).await.len(), 200);
}

#[tokio::test]
async fn a_fan_out_in_a_stopping_process_hands_the_campaign_over_at_once() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 20, "all", 0).await;
    let id = approved(&env, &p, draft("Handed over", "all")).await;
    env.queue.campaigns.lock().unwrap().clear();
    // SIGTERM: the process stops taking work.
    env.core.stop();
    let report = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert!(report.claimed);
    assert!(!report.finished);
    assert_eq!(report.created, 0, "a stopping process accepts no one");
    // Enqueued again for another process, not left to be found stale.
    assert_eq!(*env.queue.campaigns.lock().unwrap(), vec![id.clone()]);
    // Another process continues it: everyone once.
    let other = env.core_with_queue(env.queue.clone());
    let report = campaigns::fan_out(&other, &id).await.unwrap();
    assert!(report.finished);
    assert_eq!(report.created, 20);
    assert_eq!(messages_of(&env.core, &id).await.len(), 20);
}

#[tokio::test]
async fn two_approvers_at_once_only_one_wins() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 1, "vip", 0).await;
    let c = campaigns::create_draft(&env.core, &p.author, draft("x", "vip"))
        .await
        .unwrap();
    campaigns::submit(&env.core, &p.author, &c.id)
        .await
        .unwrap();
    let hash = reviewed(&env.core, &c.id).await;
    let (a, b) = tokio::join!(
        campaigns::approve(&env.core, &p.approver, &c.id, &hash),
        campaigns::approve(&env.core, &p.admin, &c.id, &hash)
    );
    let wins = [a.is_ok(), b.is_ok()].iter().filter(|w| **w).count();
    assert_eq!(wins, 1, "{a:?} {b:?}");
    let loser = if a.is_ok() { b } else { a };
    assert!(matches!(
        loser,
        Err(CampaignError::InvalidTransition {
            action: "approve",
            ..
        })
    ));
    let approvals = campaign_approval::Entity::find()
        .filter(campaign_approval::Column::Decision.eq("approved"))
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(approvals, 1);
    assert_eq!(env.queue.campaigns.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn pause_holds_waiting_messages_and_resume_releases_them() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 5, "vip", 0).await;
    let id = approved(&env, &p, draft("x", "vip")).await;
    campaigns::fan_out(&env.core, &id).await.unwrap();
    let queued = env.take_enqueued();
    assert_eq!(queued.len(), 5);

    let c = campaigns::pause(&env.core, &p.operator, &id).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Paused);
    for m in messages_of(&env.core, &id).await {
        assert_eq!(m.state, MessageState::Deferred);
        assert_eq!(m.block_reason.as_deref(), Some(campaigns::PAUSED_REASON));
        assert!(m.defer_until.unwrap() > env.core.now() + Duration::days(3650));
    }
    // The worker leaves them alone (not blocked: they wait).
    for mid in &queued {
        let r = outbound::process_send(&env.core, mid).await.unwrap();
        assert_eq!(r, SendResult::NotDue);
    }
    assert_eq!(env.provider.count(), 0);
    // A fan-out job arriving now does nothing.
    let r = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert_eq!(
        (r.claimed, r.created, r.status),
        (false, 0, CampaignStatus::Paused)
    );
    assert!(matches!(
        campaigns::pause(&env.core, &p.operator, &id).await,
        Err(CampaignError::InvalidTransition {
            from: CampaignStatus::Paused,
            ..
        })
    ));

    env.take_enqueued();
    let c = campaigns::resume(&env.core, &p.operator, &id)
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Sending);
    let released = env.queue.sends.lock().unwrap().len();
    assert_eq!(released, 5);
    let results = drain(&env).await;
    assert!(
        results.iter().all(|r| matches!(r, SendResult::Sent { .. })),
        "{results:?}"
    );
    assert_eq!(env.provider.count(), 5);
    let decisions: Vec<String> = c.history.iter().map(|h| h.decision.clone()).collect();
    assert!(decisions.ends_with(&["paused".to_string(), "resumed".to_string()]));
    assert_eq!(staff_actions(&env.core, "campaign paused").await, 1);
    assert_eq!(staff_actions(&env.core, "campaign resumed").await, 1);
}

#[tokio::test]
async fn a_fan_out_paused_half_way_continues_on_resume() {
    let env = env().await;
    let p = people(&env.core).await;
    let ids = crowd(&env.core, 6, "vip", 0).await;
    let id = approved(&env, &p, draft("x", "vip")).await;
    // A run claimed it and reached half the recipients.
    campaign::Entity::update_many()
        .col_expr(
            campaign::Column::Status,
            sea_orm::sea_query::Expr::value("sending"),
        )
        .col_expr(
            campaign::Column::FannedOutAt,
            sea_orm::sea_query::Expr::value(Some(env.core.now())),
        )
        .filter(campaign::Column::Id.eq(&id))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    for cid in &ids[..3] {
        outbound::accept(
            &env.core,
            SendRequest {
                recipient: Recipient::Contact(cid.clone()),
                channel: Channel::WhatsApp,
                content: RequestedContent::Template {
                    name: "task_reminder".into(),
                    variables: [
                        ("task_name".to_string(), "x".to_string()),
                        ("due_time".to_string(), "17:00".to_string()),
                    ]
                    .into(),
                },
                origin: Origin::Campaign {
                    campaign_id: id.clone(),
                },
                idempotency_key: Some(campaigns::idempotency_key(&id, cid)),
                purpose: None,
            },
        )
        .await
        .unwrap();
    }
    campaigns::pause(&env.core, &p.operator, &id).await.unwrap();
    // A run arriving while paused stops before the first recipient.
    let r = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert_eq!((r.created, r.status), (0, CampaignStatus::Paused));
    assert_eq!(messages_of(&env.core, &id).await.len(), 3);
    env.queue.campaigns.lock().unwrap().clear();
    let c = campaigns::resume(&env.core, &p.operator, &id)
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Sending);
    // The unfinished fan-out is enqueued again, and continues.
    assert_eq!(*env.queue.campaigns.lock().unwrap(), vec![id.clone()]);
    let r = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert_eq!((r.created, r.existing, r.finished), (3, 3, true));
    assert_eq!(messages_of(&env.core, &id).await.len(), 6);
}

#[tokio::test]
async fn a_campaign_paused_before_its_fan_out_resumes_to_approved() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 2, "vip", 0).await;
    let id = approved(&env, &p, draft("x", "vip")).await;
    env.queue.campaigns.lock().unwrap().clear();
    campaigns::pause(&env.core, &p.author, &id).await.unwrap();
    let r = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert!(!r.claimed);
    assert!(messages_of(&env.core, &id).await.is_empty());
    let c = campaigns::resume(&env.core, &p.author, &id).await.unwrap();
    assert_eq!(c.status, CampaignStatus::Approved);
    assert_eq!(*env.queue.campaigns.lock().unwrap(), vec![id.clone()]);
    let r = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert_eq!((r.claimed, r.created), (true, 2));
}

#[tokio::test]
async fn cancel_cancels_waiting_messages_and_nothing_is_sent() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 4, "vip", 0).await;
    let id = approved(&env, &p, draft("x", "vip")).await;
    campaigns::fan_out(&env.core, &id).await.unwrap();
    let queued = env.take_enqueued();
    // One already went out before the cancel.
    assert!(matches!(
        outbound::process_send(&env.core, &queued[0]).await.unwrap(),
        SendResult::Sent { .. }
    ));
    let c = campaigns::cancel(&env.core, &p.operator, &id)
        .await
        .unwrap();
    assert_eq!(c.status, CampaignStatus::Cancelled);
    let msgs = messages_of(&env.core, &id).await;
    let cancelled = msgs
        .iter()
        .filter(|m| m.state == MessageState::Cancelled)
        .count();
    assert_eq!(cancelled, 3);
    for mid in &queued[1..] {
        assert_eq!(
            outbound::process_send(&env.core, mid).await.unwrap(),
            SendResult::NotClaimed
        );
    }
    assert_eq!(env.provider.count(), 1);
    for action in ["pause", "resume", "cancel"] {
        let res = match action {
            "pause" => campaigns::pause(&env.core, &p.operator, &id).await,
            "resume" => campaigns::resume(&env.core, &p.operator, &id).await,
            _ => campaigns::cancel(&env.core, &p.operator, &id).await,
        };
        assert!(
            matches!(
                res,
                Err(CampaignError::InvalidTransition {
                    from: CampaignStatus::Cancelled,
                    ..
                })
            ),
            "{action}"
        );
    }
    // A late fan-out job does nothing.
    let r = campaigns::fan_out(&env.core, &id).await.unwrap();
    assert_eq!((r.created, r.status), (0, CampaignStatus::Cancelled));
    let progress = campaigns::progress(&env.core, &id).await.unwrap();
    assert_eq!(progress.by_state.get("cancelled"), Some(&3));
}

#[tokio::test]
async fn progress_counts_states_reasons_rates_and_failures() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 3, "vip", 0).await;
    contact(&env.core, "+4791000999", "No consent", &["vip"], &[]).await;
    let id = approved(&env, &p, draft("x", "vip")).await;
    campaigns::fan_out(&env.core, &id).await.unwrap();
    let sent = drain(&env).await;
    assert_eq!(sent.len(), 3);
    let msgs: Vec<_> = messages_of(&env.core, &id)
        .await
        .into_iter()
        .filter(|m| m.state == MessageState::Sending)
        .collect();
    assert_eq!(msgs.len(), 3);
    outbound::apply_status(&env.core, status(&msgs[0].id, "delivered", None))
        .await
        .unwrap();
    outbound::apply_status(&env.core, status(&msgs[1].id, "read", None))
        .await
        .unwrap();
    outbound::apply_status(&env.core, status(&msgs[2].id, "failed", Some(63016)))
        .await
        .unwrap();
    let pr = campaigns::progress(&env.core, &id).await.unwrap();
    assert_eq!(pr.status, CampaignStatus::Sending);
    assert_eq!(pr.total, 4);
    assert_eq!(pr.recipients, Some(4));
    assert_eq!(pr.by_state.get("delivered"), Some(&1));
    assert_eq!(pr.by_state.get("read"), Some(&1));
    assert_eq!(pr.by_state.get("failed"), Some(&1));
    assert_eq!(pr.by_state.get("blocked"), Some(&1));
    assert_eq!(pr.by_block_reason.get("no_consent"), Some(&1));
    assert_eq!(pr.by_block_reason.len(), 1);
    assert!(
        (pr.delivered_rate - 2.0 / 3.0).abs() < 1e-9,
        "{}",
        pr.delivered_rate
    );
    assert!((pr.read_rate - 1.0 / 3.0).abs() < 1e-9, "{}", pr.read_rate);
    assert_eq!(pr.failures.len(), 1);
    assert_eq!(pr.failures[0].message_id, msgs[2].id);
    assert_eq!(pr.failures[0].error_code, Some(63016));
    assert!(pr.failures[0].phone_masked.contains('•'));
    assert!(pr.failures[0].meaning.is_some());
    // Everything settled: the campaign completes.
    assert_eq!(campaigns::complete_finished(&env.core).await.unwrap(), 1);
    assert_eq!(
        campaigns::progress(&env.core, &id).await.unwrap().status,
        CampaignStatus::Completed
    );
}

#[tokio::test]
async fn start_due_starts_only_scheduled_campaigns_whose_time_has_come() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 2, "vip", 0).await;
    let soon = env.core.now() + Duration::hours(1);
    let later = env.core.now() + Duration::hours(3);
    let a = approved(
        &env,
        &p,
        CampaignDraft {
            scheduled_at: Some(soon),
            ..draft("soon", "vip")
        },
    )
    .await;
    let b = approved(
        &env,
        &p,
        CampaignDraft {
            scheduled_at: Some(later),
            ..draft("later", "vip")
        },
    )
    .await;
    for id in [&a, &b] {
        assert_eq!(
            campaigns::get(&env.core, id).await.unwrap().status,
            CampaignStatus::Scheduled
        );
    }
    assert!(env.queue.campaigns.lock().unwrap().is_empty());
    // Nothing is due yet, and an early fan-out job cannot start one.
    assert_eq!(campaigns::start_due(&env.core).await.unwrap(), 0);
    let early = campaigns::fan_out(&env.core, &a).await.unwrap();
    assert!(!early.claimed);
    assert!(messages_of(&env.core, &a).await.is_empty());

    env.clock.advance(Duration::hours(2));
    assert_eq!(campaigns::start_due(&env.core).await.unwrap(), 1);
    assert_eq!(*env.queue.campaigns.lock().unwrap(), vec![a.clone()]);
    assert_eq!(
        campaigns::get(&env.core, &a).await.unwrap().status,
        CampaignStatus::Approved
    );
    assert_eq!(
        campaigns::get(&env.core, &b).await.unwrap().status,
        CampaignStatus::Scheduled
    );
    // Started once: the next tick does not enqueue it again.
    assert_eq!(campaigns::start_due(&env.core).await.unwrap(), 0);
    let r = campaigns::fan_out(&env.core, &a).await.unwrap();
    assert_eq!((r.claimed, r.created), (true, 2));
    let r = campaigns::fan_out(&env.core, &b).await.unwrap();
    assert_eq!((r.claimed, r.created), (false, 0));

    env.clock.advance(Duration::hours(2));
    assert_eq!(campaigns::start_due(&env.core).await.unwrap(), 1);
    assert_eq!(env.queue.campaigns.lock().unwrap().last(), Some(&b));
}

/// The template as the Content API might sync it after a review: same
/// name, different body.
async fn change_template_body(core: &Core, body: &str) {
    let t = templates::find_by_name(&core.db.conn, "task_reminder")
        .await
        .unwrap()
        .unwrap();
    templates::upsert(
        &core.db.conn,
        TemplateSpec {
            name: t.name.clone(),
            provider: t.provider.clone(),
            provider_id: t.provider_id.clone(),
            category: t.category.clone(),
            language: t.language.clone(),
            body: body.into(),
            variables: t.variables.clone(),
            approval_status: t.approval_status,
            rejection_reason: None,
            source: t.source.clone(),
        },
        true,
        core.now(),
    )
    .await
    .unwrap();
}

/// Finding 4: whoever changes a campaign is one of its authors; no author
/// approves, not even an admin who only edited someone else's draft.
#[tokio::test]
async fn an_admin_who_edited_the_draft_is_an_author_and_cannot_approve_it() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 2, "vip", 0).await;
    let c = campaigns::create_draft(&env.core, &p.author, draft("Spring", "vip"))
        .await
        .unwrap();
    campaigns::update_draft(&env.core, &p.admin, &c.id, draft("Spring (edited)", "vip"))
        .await
        .unwrap();
    campaigns::submit(&env.core, &p.admin, &c.id).await.unwrap();
    let v = campaigns::get(&env.core, &c.id).await.unwrap();
    assert_eq!(v.authors, vec![p.author.id.clone(), p.admin.id.clone()]);
    let hash = reviewed(&env.core, &c.id).await;
    for who in [&p.admin, &p.author] {
        assert!(matches!(
            campaigns::approve(&env.core, who, &c.id, &hash).await,
            Err(CampaignError::SelfApproval) | Err(CampaignError::Forbidden(_))
        ));
    }
    assert!(matches!(
        campaigns::reject(&env.core, &p.admin, &c.id, "no").await,
        Err(CampaignError::SelfApproval)
    ));
    let v = campaigns::approve(&env.core, &p.approver, &c.id, &hash)
        .await
        .unwrap();
    assert_eq!(v.status, CampaignStatus::Approved);
    assert_eq!(v.approved_by.as_deref(), Some(p.approver.id.as_str()));
}

/// Finding 4: an approval binds to what the approver reviewed. If the
/// audience or the template changed since the review, nothing is approved.
#[tokio::test]
async fn an_approval_of_a_stale_review_approves_nothing() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 2, "vip", 0).await;
    let c = campaigns::create_draft(&env.core, &p.author, draft("Spring", "vip"))
        .await
        .unwrap();
    campaigns::submit(&env.core, &p.author, &c.id)
        .await
        .unwrap();
    let seen = reviewed(&env.core, &c.id).await;
    // A third person is tagged while the approver reads the review.
    crowd(&env.core, 1, "vip", 100).await;
    assert!(matches!(
        campaigns::approve(&env.core, &p.approver, &c.id, &seen).await,
        Err(CampaignError::Changed(_))
    ));
    let seen = reviewed(&env.core, &c.id).await;
    change_template_body(&env.core, "Changed: {{1}} at {{2}}.").await;
    assert!(matches!(
        campaigns::approve(&env.core, &p.approver, &c.id, &seen).await,
        Err(CampaignError::Changed(_))
    ));
    assert!(matches!(
        campaigns::approve(&env.core, &p.approver, &c.id, "").await,
        Err(CampaignError::Changed(_))
    ));
    let v = campaigns::get(&env.core, &c.id).await.unwrap();
    assert_eq!(v.status, CampaignStatus::Submitted);
    assert!(v.approved_by.is_none());
    // What the approver sees now can be approved.
    let seen = reviewed(&env.core, &c.id).await;
    campaigns::approve(&env.core, &p.approver, &c.id, &seen)
        .await
        .unwrap();
}

/// A campaign to the "vip" tag scheduled an hour from now, submitted and
/// approved (so scheduled): the campaign and its time.
async fn approved_for_later(
    env: &TestEnv,
    p: &People,
) -> (campaigns::CampaignView, chrono::DateTime<chrono::Utc>) {
    let soon = env.core.now() + Duration::hours(1);
    let d = CampaignDraft {
        scheduled_at: Some(soon),
        ..draft("Later", "vip")
    };
    let c = campaigns::create_draft(&env.core, &p.author, d)
        .await
        .unwrap();
    campaigns::submit(&env.core, &p.author, &c.id)
        .await
        .unwrap();
    let seen = reviewed(&env.core, &c.id).await;
    let v = campaigns::approve(&env.core, &p.approver, &c.id, &seen)
        .await
        .unwrap();
    assert_eq!(v.status, CampaignStatus::Scheduled);
    (v, soon)
}

/// Finding 4: a campaign whose content differs from its approval when it
/// fans out is not sent: it goes back to review, with an alert; approved
/// again, it goes out.
#[tokio::test]
async fn content_that_changed_after_approval_goes_back_to_review_with_an_alert() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 2, "vip", 0).await;
    let (c, soon) = approved_for_later(&env, &p).await;
    // The template changes before the time comes.
    change_template_body(&env.core, "New wording: {{1}} at {{2}}.").await;
    env.clock.set(soon + Duration::seconds(1));
    let report = campaigns::fan_out(&env.core, &c.id).await.unwrap();
    assert_eq!(report.status, CampaignStatus::Submitted);
    assert_eq!(report.created, 0);
    assert!(messages_of(&env.core, &c.id).await.is_empty());
    let v = campaigns::get(&env.core, &c.id).await.unwrap();
    assert!(v.approved_by.is_none());
    let returned = v
        .history
        .iter()
        .find(|h| h.decision == "returned")
        .expect("the history says why");
    assert!(
        returned
            .reason
            .as_deref()
            .unwrap()
            .contains("template's content"),
        "{returned:?}"
    );
    let alerts = heimdall_domain::entities::alert::Entity::find()
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.title == "Campaign returned to review"),
        "{alerts:?}"
    );
    // Approved again as it is now, it goes out.
    let seen = reviewed(&env.core, &c.id).await;
    campaigns::approve(&env.core, &p.approver, &c.id, &seen)
        .await
        .unwrap();
    let report = campaigns::fan_out(&env.core, &c.id).await.unwrap();
    assert_eq!(report.created, 2, "{report:?}");
}

/// Finding 4: messages already queued when the template changes are not
/// sent with content nobody approved.
#[tokio::test]
async fn a_queued_campaign_message_whose_template_changed_is_not_sent() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 1, "vip", 0).await;
    let id = approved(&env, &p, draft("Now", "vip")).await;
    campaigns::fan_out(&env.core, &id).await.unwrap();
    let messages = messages_of(&env.core, &id).await;
    assert_eq!(messages.len(), 1);
    change_template_body(&env.core, "Something else: {{1}} {{2}}").await;
    let res = outbound::process_send(&env.core, &messages[0].id)
        .await
        .unwrap();
    assert_eq!(
        res,
        SendResult::Blocked(heimdall_domain::compliance::gates::Gate::NotAuthorized)
    );
    assert_eq!(env.provider.count(), 0);
}

/// Retag the reminder template with another purpose (`marketing`: the
/// crowd's consents, recorded before purposes, cover it, so only the
/// approval can stop what follows).
async fn retag_reminder(core: &Core, purpose: &str) {
    let t = templates::find_by_name(&core.db.conn, "task_reminder")
        .await
        .unwrap()
        .unwrap();
    templates::set_purpose(&core.db.conn, &t.id, purpose)
        .await
        .unwrap();
}

/// The approval binds to the template's purpose too: one admin retagging
/// an approved campaign's template (which changes whose consent lets it
/// go) sends it back to review, and a message already queued is not sent.
#[tokio::test]
async fn a_template_retagged_with_another_purpose_after_approval_needs_a_new_approval() {
    let env = env().await;
    let p = people(&env.core).await;
    crowd(&env.core, 2, "vip", 0).await;
    let (c, soon) = approved_for_later(&env, &p).await;
    retag_reminder(&env.core, "marketing").await;
    env.clock.set(soon + Duration::seconds(1));
    let report = campaigns::fan_out(&env.core, &c.id).await.unwrap();
    assert_eq!(report.status, CampaignStatus::Submitted);
    assert_eq!(report.created, 0);
    let v = campaigns::get(&env.core, &c.id).await.unwrap();
    assert!(v.approved_by.is_none());
    let returned = v
        .history
        .iter()
        .find(|h| h.decision == "returned")
        .expect("the history says why");
    assert!(
        returned.reason.as_deref().unwrap().contains("purpose"),
        "{returned:?}"
    );
    // Tagged back as it was approved, the digest is the approved one again.
    retag_reminder(&env.core, "service").await;
    let seen = reviewed(&env.core, &c.id).await;
    campaigns::approve(&env.core, &p.approver, &c.id, &seen)
        .await
        .unwrap();
    let report = campaigns::fan_out(&env.core, &c.id).await.unwrap();
    assert_eq!(report.created, 2, "{report:?}");

    // Queued, then retagged: not sent.
    let messages = messages_of(&env.core, &c.id).await;
    retag_reminder(&env.core, "marketing").await;
    for m in &messages {
        let res = outbound::process_send(&env.core, &m.id).await.unwrap();
        assert_eq!(
            res,
            SendResult::Blocked(heimdall_domain::compliance::gates::Gate::NotAuthorized)
        );
    }
    assert_eq!(env.provider.count(), 0);
}

/// Security finding 8: the review's dry run (the gates for every
/// recipient) is not computed again for every page view of the same
/// content: within two minutes the same answer comes back; content that
/// changed, or time, computes it afresh.
#[tokio::test]
async fn a_review_of_unchanged_content_is_answered_from_the_last_one_for_a_while() {
    let env = env().await;
    let p = people(&env.core).await;
    let ids = crowd(&env.core, 3, "vip", 0).await;
    let c = campaigns::create_draft(&env.core, &p.author, draft("Cached", "vip"))
        .await
        .unwrap();
    let first = campaigns::review(&env.core, &c.id, 0).await.unwrap();
    assert_eq!(first.dry_run.would_pass, 3);
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &ids[0],
        None,
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Staff,
        None,
        "admin@example.com",
        env.core.now(),
    )
    .await
    .unwrap();
    let again = campaigns::review(&env.core, &c.id, 0).await.unwrap();
    assert_eq!(
        again.dry_run.would_pass, 3,
        "the same content: the last answer"
    );
    assert_eq!(again.content_hash, first.content_hash);
    env.clock.advance(Duration::minutes(3));
    let later = campaigns::review(&env.core, &c.id, 0).await.unwrap();
    assert_eq!(later.dry_run.would_pass, 2, "computed afresh after a while");
    // Changed content is never answered from an old review.
    crowd(&env.core, 1, "vip", 50).await;
    let grown = campaigns::review(&env.core, &c.id, 0).await.unwrap();
    assert_eq!(grown.audience_size, 4);
    assert_ne!(grown.content_hash, first.content_hash);
}

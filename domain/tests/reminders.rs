//! Reminders against real storage (SQLite by default; PostgreSQL and Redis
//! when the run asks for them), with the manual clock: a reminder fires
//! once at its time, a local time across a daylight-saving change fires at
//! the right local hour, a late one is recorded and not sent, two workers
//! send it once, a claim left by a stopped worker is taken up without
//! sending twice, and the automation's authorization and the person's
//! consent are checked again when it comes due.

use heimdall_domain::compliance::message_source::MessageSource;
use heimdall_domain::compliance::message_state::MessageState;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::accounts::{self, Role};
use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::automations::reminders::{
    self, NewReminder, ReminderFilter, ReminderState, RequestError, Target,
};
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::core::CoreParts;
use heimdall_domain::entities::{api_key, outbound_message, reminder, tool_call};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core, Db};

const PHONE: &str = "+4791234567";

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        (
            "WA_TEMPLATE_DAILY_BRIEFING",
            "HX00000000000000000000000000000002",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    env
}

fn evidence() -> ConsentEvidence {
    ConsentEvidence {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 test".into()),
        consent_text_version: Some("v1".into()),
        consent_text: Some("I agree to receive reminders by WhatsApp.".into()),
        ..Default::default()
    }
}

async fn contact(core: &Core, phone: &str, consent: bool) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: phone.into(),
            name: Some("Test Person".into()),
            time_zone: Some("Europe/Oslo".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    if consent {
        heimdall_domain::consent::record_opt_in(
            &core.db.conn,
            &c.id,
            Channel::WhatsApp,
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

fn bootstrap() -> ApiPrincipal {
    ApiPrincipal {
        key_id: None,
        name: "bootstrap".into(),
    }
}

fn task_vars() -> BTreeMap<String, serde_json::Value> {
    serde_json::from_value(serde_json::json!({"task_name": "Call Bob", "due_time": "17:00"}))
        .unwrap()
}

fn new_reminder(contact_id: &str, send_at: DateTime<Utc>) -> NewReminder {
    NewReminder {
        target: Target::Contact(contact_id.into()),
        template_name: "task_reminder".into(),
        variables: task_vars(),
        send_at: send_at.to_rfc3339(),
        tolerance_secs: None,
    }
}

async fn row(core: &Core, id: &str) -> reminder::Model {
    reminder::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
}

async fn messages_for(core: &Core, reminder_id: &str) -> Vec<outbound_message::Model> {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::ReminderId.eq(reminder_id))
        .all(&core.db.conn)
        .await
        .unwrap()
}

/// A second process on the same storage: its own pool and limits, the same clock.
async fn second_core(env: &TestEnv) -> Arc<Core> {
    let settings = (*env.core.settings).clone();
    let db = Db::connect(&settings).await.unwrap();
    let redis = heimdall_domain::core::connect_redis(&settings)
        .await
        .unwrap();
    Core::new(CoreParts {
        settings,
        db,
        redis,
        clock: Arc::new(env.clock.clone()),
        queue: env.queue.clone(),
        providers: env.core.providers.clone(),
        alerts: None,
    })
}

#[tokio::test]
async fn a_reminder_fires_once_at_its_time() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, true).await;
    let send_at = env.core.now() + Duration::hours(1);
    let r = reminders::create(&env.core, &bootstrap(), new_reminder(&cid, send_at))
        .await
        .unwrap();
    assert_eq!(r.state, "scheduled");
    assert_eq!(r.send_at, send_at);
    assert_eq!(r.tolerance_secs, reminders::DEFAULT_TOLERANCE_SECS);
    assert_eq!(r.to, PHONE);

    // Not before its time.
    assert_eq!(
        reminders::deliver_due(&env.core).await.unwrap().sent,
        0,
        "an hour early"
    );
    env.clock.set(send_at - Duration::seconds(1));
    assert_eq!(reminders::deliver_due(&env.core).await.unwrap().sent, 0);
    assert!(env.take_enqueued().is_empty());

    // At its time, once.
    env.clock.set(send_at + Duration::seconds(5));
    let report = reminders::deliver_due(&env.core).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    let enqueued = env.take_enqueued();
    assert_eq!(enqueued.len(), 1);
    for id in &enqueued {
        heimdall_domain::sending::outbound::process_send(&env.core, id)
            .await
            .unwrap();
    }
    assert_eq!(env.provider.sent_to(PHONE), 1);

    for later in [Duration::seconds(20), Duration::hours(1), Duration::days(2)] {
        env.clock.set(send_at + later);
        let again = reminders::deliver_due(&env.core).await.unwrap();
        assert_eq!(again, Default::default(), "{later}");
    }
    assert!(env.take_enqueued().is_empty());

    let r = reminders::get(&env.core, &r.id).await.unwrap();
    assert_eq!(r.state, "sent");
    let msgs = messages_for(&env.core, &r.id).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(r.message_id.as_deref(), Some(msgs[0].id.as_str()));
    assert_eq!(msgs[0].source, MessageSource::Reminder);
    assert_eq!(msgs[0].actor, "api_key:bootstrap");
    assert_eq!(msgs[0].template_name.as_deref(), Some("task_reminder"));
    assert_eq!(
        msgs[0].idempotency_key.as_deref(),
        Some(format!("reminder:{}", r.id).as_str())
    );
    assert_eq!(r.message_state, Some(MessageState::Sending));
}

#[tokio::test]
async fn a_local_time_across_a_daylight_saving_change_fires_at_the_local_hour() {
    let env = env().await;
    // Friday 27 March 2026; Oslo moves from UTC+1 to UTC+2 on Sunday the 29th.
    env.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 27, 12, 0, 0).unwrap());
    let cid = contact(&env.core, PHONE, true).await;
    let mut input = new_reminder(&cid, env.core.now());
    input.send_at = "2026-03-30T07:00".into();
    let r = reminders::create(&env.core, &bootstrap(), input)
        .await
        .unwrap();
    // 07:00 summer time in Oslo, not the 06:00 UTC the winter offset would give.
    assert_eq!(
        r.send_at,
        Utc.with_ymd_and_hms(2026, 3, 30, 5, 0, 0).unwrap()
    );

    env.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 30, 4, 59, 50).unwrap());
    assert_eq!(reminders::deliver_due(&env.core).await.unwrap().sent, 0);
    env.clock
        .set(Utc.with_ymd_and_hms(2026, 3, 30, 5, 0, 10).unwrap());
    assert_eq!(reminders::deliver_due(&env.core).await.unwrap().sent, 1);
    let local = reminders::get(&env.core, &r.id)
        .await
        .unwrap()
        .send_at
        .with_timezone(&chrono_tz::Europe::Oslo);
    assert_eq!(local.format("%H:%M").to_string(), "07:00");
}

#[tokio::test]
async fn a_missed_reminder_beyond_tolerance_is_recorded_not_sent() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, true).await;
    let start = env.core.now();
    let mut early = new_reminder(&cid, start + Duration::hours(1));
    early.tolerance_secs = Some(600);
    let early = reminders::create(&env.core, &bootstrap(), early)
        .await
        .unwrap();
    let recent = reminders::create(
        &env.core,
        &bootstrap(),
        new_reminder(&cid, start + Duration::minutes(75)),
    )
    .await
    .unwrap();

    // Heimdall was down from before the first until 80 minutes in: the
    // first is 20 minutes late (tolerance 10), the second 5 (tolerance 15).
    env.clock.set(start + Duration::minutes(80));
    let report = reminders::deliver_due(&env.core).await.unwrap();
    assert_eq!((report.sent, report.missed), (1, 1), "{report:?}");

    let missed = reminders::get(&env.core, &early.id).await.unwrap();
    assert_eq!(missed.state, "missed");
    assert!(missed.message_id.is_none());
    assert!(
        missed
            .outcome
            .as_deref()
            .unwrap_or("")
            .contains("1200 s late"),
        "{:?}",
        missed.outcome
    );
    assert!(messages_for(&env.core, &early.id).await.is_empty());
    let audit = tool_call::Entity::find()
        .filter(tool_call::Column::Kind.eq("reminder_missed"))
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].contact_id.as_deref(), Some(cid.as_str()));
    assert_eq!(audit[0].message_id, None);
    assert_eq!(audit[0].decision, "missed");
    assert!(audit[0].detail.as_deref().unwrap().contains(&early.id));

    assert_eq!(
        reminders::get(&env.core, &recent.id).await.unwrap().state,
        "sent"
    );
    assert_eq!(env.take_enqueued().len(), 1, "only the recent one is sent");
}

#[tokio::test]
async fn two_workers_send_each_reminder_once() {
    let env = env().await;
    let other = second_core(&env).await;
    let start = env.core.now();
    let mut ids = Vec::new();
    for i in 0..6 {
        let cid = contact(&env.core, &format!("+47912345{i:02}"), true).await;
        let r = reminders::create(
            &env.core,
            &bootstrap(),
            new_reminder(&cid, start + Duration::minutes(10)),
        )
        .await
        .unwrap();
        ids.push(r.id);
    }
    env.clock.set(start + Duration::minutes(10));
    let (a, b) = tokio::join!(
        reminders::deliver_due(&env.core),
        reminders::deliver_due(&other)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 6, "{a:?} {b:?}");
    for id in &ids {
        assert_eq!(messages_for(&env.core, id).await.len(), 1, "{id}");
        assert_eq!(row(&env.core, id).await.state, "sent");
    }
    assert_eq!(env.take_enqueued().len(), 6);
}

#[tokio::test]
async fn a_claim_left_by_a_stopped_worker_is_taken_up_without_sending_twice() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, true).await;
    let start = env.core.now();
    let a = reminders::create(
        &env.core,
        &bootstrap(),
        new_reminder(&cid, start + Duration::minutes(1)),
    )
    .await
    .unwrap();
    let b = reminders::create(
        &env.core,
        &bootstrap(),
        new_reminder(&cid, start + Duration::minutes(1)),
    )
    .await
    .unwrap();
    env.clock.set(start + Duration::minutes(1));
    // A worker claimed both; it accepted the message for `a`, then stopped.
    for id in [&a.id, &b.id] {
        reminder::Entity::update_many()
            .col_expr(reminder::Column::State, Expr::value("sending"))
            .col_expr(reminder::Column::UpdatedAt, Expr::value(env.core.now()))
            .filter(reminder::Column::Id.eq(id.as_str()))
            .exec(&env.core.db.conn)
            .await
            .unwrap();
    }
    let first = heimdall_domain::sending::outbound::accept(
        &env.core,
        heimdall_domain::sending::outbound::SendRequest {
            recipient: heimdall_domain::sending::outbound::Recipient::Contact(cid.clone()),
            channel: Channel::WhatsApp,
            content: heimdall_domain::sending::outbound::RequestedContent::Template {
                name: "task_reminder".into(),
                variables: reminders::variables_from_json(&task_vars()).unwrap(),
            },
            origin: heimdall_domain::sending::outbound::Origin::Automation {
                principal: bootstrap(),
                source: MessageSource::Reminder,
                reminder_id: Some(a.id.clone()),
            },
            idempotency_key: Some(format!("reminder:{}", a.id)),
            purpose: None,
        },
    )
    .await
    .unwrap();

    // Too soon to call it stopped.
    env.clock.set(start + Duration::minutes(3));
    let report = reminders::deliver_due(&env.core).await.unwrap();
    assert_eq!(report.recovered, 0);

    env.clock.set(start + Duration::minutes(7));
    let report = reminders::deliver_due(&env.core).await.unwrap();
    assert_eq!(report.recovered, 2, "{report:?}");
    assert_eq!(report.sent, 2, "{report:?}");
    let a = reminders::get(&env.core, &a.id).await.unwrap();
    assert_eq!(a.state, "sent");
    assert_eq!(a.message_id.as_deref(), Some(first.message_id.as_str()));
    assert_eq!(messages_for(&env.core, &a.id).await.len(), 1);
    assert_eq!(messages_for(&env.core, &b.id).await.len(), 1);
}

#[tokio::test]
async fn revoked_consent_blocks_the_reminder_when_it_comes_due() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, true).await;
    let send_at = env.core.now() + Duration::hours(2);
    let r = reminders::create(&env.core, &bootstrap(), new_reminder(&cid, send_at))
        .await
        .unwrap();
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("STOP"),
        "system",
        env.core.now() + Duration::hours(1),
    )
    .await
    .unwrap();
    env.clock.set(send_at);
    let report = reminders::deliver_due(&env.core).await.unwrap();
    assert_eq!(report.blocked, 1, "{report:?}");
    let r = reminders::get(&env.core, &r.id).await.unwrap();
    assert_eq!(r.state, "blocked");
    assert!(
        r.outcome.as_deref().unwrap().starts_with("suppressed")
            || r.outcome.as_deref().unwrap().starts_with("no_consent"),
        "{:?}",
        r.outcome
    );
    // The refusal is a recorded message with its gate evaluation, never sent.
    let msgs = messages_for(&env.core, &r.id).await;
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].state, MessageState::Blocked);
    assert!(env.take_enqueued().is_empty());
    assert_eq!(env.provider.count(), 0);
}

#[tokio::test]
async fn the_automations_authorization_is_checked_again_at_send_time() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, true).await;
    let key = accounts::create_api_key(
        &env.core,
        "n8n",
        "admin@example.com",
        &heimdall_domain::entities::api_key::Scopes::all(),
    )
    .await
    .unwrap();
    let automation = authz::create_automation(
        &env.core,
        "Norns reminders",
        &key.id,
        &["task_reminder".to_string()],
        false,
        "author@example.com",
    )
    .await
    .unwrap();
    let principal = ApiPrincipal {
        key_id: Some(key.id.clone()),
        name: "n8n".into(),
    };
    let send_at = env.core.now() + Duration::hours(1);
    // Not approved yet: refused at creation, nothing stored.
    let err = reminders::create(&env.core, &principal, new_reminder(&cid, send_at))
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            RequestError::Refused {
                gate: Gate::NotAuthorized,
                ..
            }
        ),
        "{err:?}"
    );
    authz::approve_automation(
        &env.core,
        &automation.id,
        "approver@example.com",
        Role::Approver,
    )
    .await
    .unwrap();
    let r = reminders::create(&env.core, &principal, new_reminder(&cid, send_at))
        .await
        .unwrap();
    assert_eq!(r.created_by, format!("api_key:{}", key.id));
    // The daily briefing is not among the automation's templates.
    let mut briefing = new_reminder(&cid, send_at);
    briefing.template_name = "daily_briefing".into();
    briefing.variables = serde_json::from_value(
        serde_json::json!({"date": "Monday", "task_count": 3, "top_tasks": "A"}),
    )
    .unwrap();
    assert!(matches!(
        reminders::create(&env.core, &principal, briefing).await,
        Err(RequestError::Refused {
            gate: Gate::NotAuthorized,
            ..
        })
    ));

    // The key is revoked before the reminder comes due.
    api_key::Entity::update_many()
        .col_expr(
            api_key::Column::RevokedAt,
            Expr::value(Some(env.core.now())),
        )
        .filter(api_key::Column::Id.eq(&key.id))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    env.clock.set(send_at);
    let report = reminders::deliver_due(&env.core).await.unwrap();
    assert_eq!(report.blocked, 1, "{report:?}");
    let r = reminders::get(&env.core, &r.id).await.unwrap();
    assert_eq!(r.state, "blocked");
    assert!(r.outcome.as_deref().unwrap().starts_with("not_authorized"));
    assert!(messages_for(&env.core, &r.id).await.is_empty());
    let audit = tool_call::Entity::find()
        .filter(tool_call::Column::Kind.eq("reminder_blocked"))
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(audit.reason_code.as_deref(), Some("not_authorized"));
    assert_eq!(audit.actor, format!("api_key:{}", key.id));
}

#[tokio::test]
async fn bad_requests_are_refused_and_change_nothing() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, true).await;
    let now = env.core.now();
    let ok = || new_reminder(&cid, now + Duration::hours(1));
    let cases: Vec<(NewReminder, &str)> = vec![
        (
            NewReminder {
                target: Target::Contact("nope".into()),
                ..ok()
            },
            "contact",
        ),
        (
            NewReminder {
                target: Target::Phone("12".into()),
                ..ok()
            },
            "invalid_number",
        ),
        (
            NewReminder {
                target: Target::Phone("+4798765432".into()),
                ..ok()
            },
            "contact",
        ),
        (
            NewReminder {
                template_name: "no_such_template".into(),
                ..ok()
            },
            "template_not_approved",
        ),
        (
            NewReminder {
                template_name: " ".into(),
                ..ok()
            },
            "bad_request",
        ),
        (
            NewReminder {
                variables: serde_json::from_value(serde_json::json!({"task_name": "x"})).unwrap(),
                ..ok()
            },
            "template_not_approved",
        ),
        (
            NewReminder {
                variables: serde_json::from_value(
                    serde_json::json!({"task_name": "x", "due_time": {"h": 1}}),
                )
                .unwrap(),
                ..ok()
            },
            "invalid_variables",
        ),
        (
            NewReminder {
                send_at: "next tuesday".into(),
                ..ok()
            },
            "invalid_send_at",
        ),
        (
            NewReminder {
                send_at: (now - Duration::hours(1)).to_rfc3339(),
                ..ok()
            },
            "invalid_send_at",
        ),
        (
            NewReminder {
                send_at: (now + Duration::days(800)).to_rfc3339(),
                ..ok()
            },
            "invalid_send_at",
        ),
        (
            NewReminder {
                tolerance_secs: Some(5),
                ..ok()
            },
            "invalid_tolerance",
        ),
    ];
    for (input, want) in cases {
        let err = reminders::create(&env.core, &bootstrap(), input.clone())
            .await
            .unwrap_err();
        let got = match &err {
            RequestError::Invalid { code, .. } => code.to_string(),
            RequestError::ContactNotFound(_) => "contact".into(),
            RequestError::Refused { gate, .. } => gate.code().into(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, want, "{input:?}: {err}");
    }
    assert_eq!(
        reminder::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        0
    );
    // A number of a known contact works as well as its id.
    let by_phone = reminders::create(
        &env.core,
        &bootstrap(),
        NewReminder {
            target: Target::Phone("+47 912 34 567".into()),
            ..ok()
        },
    )
    .await
    .unwrap();
    assert_eq!(by_phone.contact_id, cid);
}

#[tokio::test]
async fn cancelling_a_reminder_and_listing() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, true).await;
    let other = contact(&env.core, "+4791234500", true).await;
    let now = env.core.now();
    let a = reminders::create(
        &env.core,
        &bootstrap(),
        new_reminder(&cid, now + Duration::hours(1)),
    )
    .await
    .unwrap();
    let b = reminders::create(
        &env.core,
        &bootstrap(),
        new_reminder(&cid, now + Duration::minutes(50)),
    )
    .await
    .unwrap();
    reminders::create(
        &env.core,
        &bootstrap(),
        new_reminder(&other, now + Duration::hours(1)),
    )
    .await
    .unwrap();

    let cancelled = reminders::cancel(&env.core, &a.id, "api_key:bootstrap")
        .await
        .unwrap();
    assert_eq!(cancelled.state, "cancelled");
    // Again: no error, no change.
    assert_eq!(
        reminders::cancel(&env.core, &a.id, "api_key:bootstrap")
            .await
            .unwrap()
            .state,
        "cancelled"
    );
    env.clock.set(now + Duration::hours(1));
    let report = reminders::deliver_due(&env.core).await.unwrap();
    assert_eq!(report.sent, 2, "b and the other contact's, not a");
    assert!(messages_for(&env.core, &a.id).await.is_empty());
    assert!(matches!(
        reminders::cancel(&env.core, &b.id, "api_key:bootstrap").await,
        Err(RequestError::Conflict(_))
    ));
    assert!(matches!(
        reminders::cancel(&env.core, "missing", "x").await,
        Err(RequestError::NotFound(_))
    ));
    assert!(matches!(
        reminders::get(&env.core, "missing").await,
        Err(RequestError::NotFound(_))
    ));

    let mine = reminders::list(
        &env.core,
        &ReminderFilter {
            contact_id: Some(cid.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(mine.len(), 2);
    let sent = reminders::list(
        &env.core,
        &ReminderFilter {
            contact_id: Some(cid.clone()),
            state: Some("sent".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].id, b.id);
    assert_eq!(
        reminders::list(&env.core, &ReminderFilter::default())
            .await
            .unwrap()
            .len(),
        3
    );
    assert!(matches!(
        reminders::list(
            &env.core,
            &ReminderFilter {
                state: Some("done".into()),
                ..Default::default()
            }
        )
        .await,
        Err(RequestError::Invalid { .. })
    ));
    assert!(ReminderState::parse(&mine[0].state).is_some());
}

#[tokio::test]
async fn the_seed_templates_register_with_their_variables_from_settings() {
    let env = TestEnv::new(&[
        ("WA_TEMPLATE_TASK_REMINDER", "HX1"),
        ("WA_TEMPLATE_DAILY_BRIEFING", "HX2"),
        ("WA_TEMPLATE_CALENDAR_REMINDER", "HX3"),
        ("WA_TEMPLATE_TASK_COMPLETE", "HX4"),
        ("WA_TEMPLATE_WEEKLY_REVIEW", "HX5"),
    ])
    .await;
    let mut names = templates::register_from_settings(&env.core).await.unwrap();
    names.sort();
    assert_eq!(
        names,
        [
            "calendar_reminder",
            "daily_briefing",
            "task_complete_confirm",
            "task_reminder",
            "weekly_review"
        ]
    );
    for (name, sid, vars) in [
        ("task_reminder", "HX1", vec!["task_name", "due_time"]),
        (
            "daily_briefing",
            "HX2",
            vec!["date", "task_count", "top_tasks"],
        ),
        (
            "calendar_reminder",
            "HX3",
            vec!["event_name", "time", "location"],
        ),
        ("task_complete_confirm", "HX4", vec!["task_name"]),
        (
            "weekly_review",
            "HX5",
            vec!["completed_count", "highlights"],
        ),
    ] {
        let t = templates::find_by_name(&env.core.db.conn, name)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{name} not registered"));
        assert_eq!(t.provider_id.as_deref(), Some(sid), "{name}");
        assert_eq!(t.variables, vars, "{name}");
        assert!(t.approval_status.is_approved(), "{name}");
        assert_eq!(t.source, "settings", "{name}");
    }
}

//! The console's read models against real storage (SQLite by default;
//! PostgreSQL and Redis when the run asks for them): the dashboard of one
//! local day, the audit log and its CSV export (formula cells escaped), the
//! inbox and a conversation, and a contact's timeline.

use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::BTreeMap;

use chrono::{Duration, NaiveDate};
use sea_orm::{ActiveModelTrait, EntityTrait, PaginatorTrait, Set};

use heimdall_domain::access::accounts::{Role, StaffUser};
use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::entities::{staff_user, tool_call};
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::reports::{self, AuditFilter, ConversationItem};
use heimdall_domain::sending::outbound::{
    self, Origin, Recipient, RequestedContent, SendRequest, SendResult, StatusReport,
};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core};

const A: &str = "+4791000001";
const B: &str = "+4791000002";
const C: &str = "+4791000003";

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

async fn contact(core: &Core, phone: &str, consent: &[Channel]) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: phone.into(),
            name: Some(format!("Person {phone}")),
            time_zone: Some("Europe/Oslo".into()),
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
            &ConsentEvidence {
                ip: Some("203.0.113.7".into()),
                user_agent: Some("Mozilla/5.0 test".into()),
                consent_text_version: Some("v1".into()),
                ..Default::default()
            },
            "test",
            false,
            core.now(),
        )
        .await
        .unwrap();
    }
    c.id
}

async fn operator(core: &Core) -> StaffUser {
    let now = core.now();
    let m = staff_user::ActiveModel {
        id: Set(heimdall_domain::clock::new_id()),
        email: Set("op@example.com".into()),
        name: Set(None),
        role: Set("operator".into()),
        password_hash: Set("not-a-hash".into()),
        active: Set(true),
        failed_logins: Set(0),
        locked_until: Set(None),
        last_login_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await
    .unwrap();
    StaffUser {
        id: m.id,
        email: m.email,
        name: None,
        role: Role::Operator,
        active: true,
    }
}

fn reminder(to: Recipient) -> SendRequest {
    let mut variables = BTreeMap::new();
    variables.insert("task_name".to_string(), "Call Bob".to_string());
    variables.insert("due_time".to_string(), "17:00".to_string());
    SendRequest {
        recipient: to,
        channel: Channel::WhatsApp,
        content: RequestedContent::Template {
            name: "task_reminder".into(),
            variables,
        },
        origin: Origin::Automation {
            principal: ApiPrincipal {
                key_id: None,
                name: "bootstrap".into(),
            },
            source: MessageSource::Api,
            reminder_id: None,
        },
        idempotency_key: None,
        purpose: None,
    }
}

fn text(to: &str, body: &str, origin: Origin) -> SendRequest {
    SendRequest {
        recipient: Recipient::Contact(to.into()),
        channel: Channel::WhatsApp,
        content: RequestedContent::Text {
            body: body.into(),
            media_url: None,
            format: Default::default(),
            reply_to: None,
        },
        origin,
        idempotency_key: None,
        purpose: None,
    }
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

/// Accept and, when it was queued, send it.
async fn accept_and_send(env: &TestEnv, req: SendRequest) -> String {
    let out = outbound::accept(&env.core, req).await.unwrap();
    for id in env.take_enqueued() {
        let r = outbound::process_send(&env.core, &id).await.unwrap();
        assert!(matches!(r, SendResult::Sent { .. }), "{r:?}");
    }
    out.message_id
}

async fn inbound_from(env: &TestEnv, phone: &str, channel: Channel, body: &str) {
    let from = match channel {
        Channel::WhatsApp => format!("whatsapp:{phone}"),
        Channel::Sms => phone.to_string(),
    };
    inbound::handle_message(
        &env.core,
        InboundMessage {
            provider: "twilio".into(),
            provider_message_id: format!("SM{}", heimdall_domain::clock::new_id().replace('-', "")),
            channel,
            from,
            to: None,
            body: Some(body.into()),
            media: vec![],
            button_text: None,
            button_payload: None,
            profile_name: None,
            received_at: env.core.now(),
        },
    )
    .await
    .unwrap();
}

fn day() -> NaiveDate {
    TestEnv::start_time().date_naive()
}

#[tokio::test]
async fn the_dashboard_counts_one_local_day() {
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp]).await;
    let b = contact(&env.core, B, &[]).await;
    let c = contact(&env.core, C, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;

    let read = accept_and_send(&env, reminder(Recipient::Contact(a.clone()))).await;
    outbound::apply_status(&env.core, status(&read, "delivered", None))
        .await
        .unwrap();
    outbound::apply_status(&env.core, status(&read, "read", None))
        .await
        .unwrap();
    let blocked = outbound::accept(&env.core, reminder(Recipient::Contact(b.clone())))
        .await
        .unwrap();
    assert_eq!(blocked.state, MessageState::Blocked);
    let free = outbound::accept(
        &env.core,
        text(
            &c,
            "Hi!",
            Origin::Automation {
                principal: ApiPrincipal {
                    key_id: None,
                    name: "bootstrap".into(),
                },
                source: MessageSource::Api,
                reminder_id: None,
            },
        ),
    )
    .await
    .unwrap();
    assert_eq!(
        free.decision.decision.reason().map(|g| g.code()),
        Some("outside_window")
    );
    let failed = accept_and_send(&env, reminder(Recipient::Contact(c.clone()))).await;
    outbound::apply_status(&env.core, status(&failed, "failed", Some(21211)))
        .await
        .unwrap();
    // A reply inside the window, waiting for the worker.
    env.clock.advance(Duration::minutes(5));
    inbound_from(&env, A, Channel::WhatsApp, "Thanks, what time again?").await;
    let reply = outbound::accept(
        &env.core,
        text(&a, "17:00!", Origin::Inbox { staff, ip: None }),
    )
    .await
    .unwrap();
    assert_eq!(reply.state, MessageState::Queued);
    let d = reports::dashboard(&env.core, day(), chrono_tz::UTC)
        .await
        .unwrap();
    assert_eq!(d.total, 5);
    let expected: BTreeMap<String, usize> = [
        ("read".to_string(), 1),
        ("blocked".to_string(), 2),
        ("failed".to_string(), 1),
        ("queued".to_string(), 1),
    ]
    .into();
    assert_eq!(d.sends_by_state, expected);
    let blocks: BTreeMap<String, usize> = [
        ("no_consent".to_string(), 1),
        ("outside_window".to_string(), 1),
    ]
    .into();
    assert_eq!(d.blocks_by_reason, blocks);
    assert!((d.delivery_rate - 0.5).abs() < 1e-9, "{}", d.delivery_rate);
    assert!((d.read_rate - 0.5).abs() < 1e-9, "{}", d.read_rate);
    assert_eq!(d.window_coverage.in_window, 1);
    assert_eq!(d.window_coverage.by_template, 2);
    assert_eq!(d.window_coverage.free_form_outside_window_blocked, 1);
    assert_eq!(d.tier.limit, Some(250));
    assert_eq!(d.tier.used, 2);
    assert_eq!(d.tier.percent, Some(0.8));
    assert_eq!(d.waiting, 1);
    assert!(d.queue_depth.is_some());
    assert_eq!(d.recent_failures.len(), 1);
    assert_eq!(d.recent_failures[0].message_id, failed);
    assert_eq!(d.recent_failures[0].error_code, Some(21211));
    assert_eq!(d.recent_failures[0].phone_masked, "+47••••••03");
    assert!(d.recent_alerts.iter().any(|a| a.error_code == Some(21211)));

    // The next day: not counted in the first.
    env.clock.advance(Duration::days(1));
    outbound::accept(&env.core, reminder(Recipient::Contact(b.clone())))
        .await
        .unwrap();
    let again = reports::dashboard(&env.core, day(), chrono_tz::UTC)
        .await
        .unwrap();
    assert_eq!(again.sends_by_state, d.sends_by_state);
    let next = reports::dashboard(&env.core, day().succ_opt().unwrap(), chrono_tz::UTC)
        .await
        .unwrap();
    assert_eq!(next.total, 1);
    assert_eq!(next.sends_by_state.get("blocked"), Some(&1));
    // The same instants seen from UTC+14 fall on the next local day.
    let kiritimati = chrono_tz::Pacific::Kiritimati;
    let there = reports::dashboard(&env.core, day(), kiritimati)
        .await
        .unwrap();
    assert_eq!(there.total, 0);
    let there = reports::dashboard(&env.core, day().succ_opt().unwrap(), kiritimati)
        .await
        .unwrap();
    assert_eq!(there.total, 5);
}

#[tokio::test]
async fn the_audit_log_filters_and_masks() {
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp]).await;
    let b = contact(&env.core, B, &[]).await;
    accept_and_send(&env, reminder(Recipient::Contact(a.clone()))).await;
    env.clock.advance(Duration::minutes(1));
    outbound::accept(&env.core, reminder(Recipient::Contact(b.clone())))
        .await
        .unwrap();
    env.clock.advance(Duration::minutes(1));
    let later = env.core.now();
    outbound::accept(
        &env.core,
        reminder(Recipient::Phone("=cmd|' /C calc'!A0".into())),
    )
    .await
    .unwrap();

    let all = reports::audit_log(&env.core, &AuditFilter::default())
        .await
        .unwrap();
    let stored = tool_call::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(all.len() as u64, stored);
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].at >= w[1].at), "newest first");
    assert_eq!(all[0].reason_code.as_deref(), Some("invalid_number"));
    for row in &all {
        let phone = row.phone_masked.as_deref().unwrap();
        assert!(phone.contains('•'), "{phone}");
        assert!(!phone.contains("91000001"), "{phone}");
    }
    let evaluation = all.iter().find(|r| r.kind == "gate_evaluation").unwrap();
    assert_eq!(
        evaluation.verdicts.as_array().unwrap().len(),
        heimdall_domain::compliance::gates::Gate::ORDER.len()
    );
    assert_eq!(evaluation.actor, "api_key:bootstrap");

    let of_a = reports::audit_log(
        &env.core,
        &AuditFilter {
            contact_id: Some(a.clone()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(of_a.len(), 3);
    assert!(of_a
        .iter()
        .all(|r| r.contact_id.as_deref() == Some(a.as_str())));
    let blocks = reports::audit_log(
        &env.core,
        &AuditFilter {
            decision: Some("block".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(blocks.len(), 2);
    let no_consent = reports::audit_log(
        &env.core,
        &AuditFilter {
            reason_code: Some("no_consent".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(no_consent.len(), 1);
    assert_eq!(no_consent[0].contact_id.as_deref(), Some(b.as_str()));
    let attempts = reports::audit_log(
        &env.core,
        &AuditFilter {
            kind: Some("send_attempt".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].result_ok);
    let recent = reports::audit_log(
        &env.core,
        &AuditFilter {
            from: Some(later),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(recent.len(), 1);
    let older = reports::audit_log(
        &env.core,
        &AuditFilter {
            to: Some(later),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(older.len(), 4);
    let page = reports::audit_log(
        &env.core,
        &AuditFilter {
            limit: Some(2),
            offset: Some(1),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(
        page.iter().map(|r| r.id.clone()).collect::<Vec<_>>(),
        all[1..3].iter().map(|r| r.id.clone()).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn the_audit_csv_has_a_header_one_row_per_call_and_no_live_formulas() {
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp]).await;
    accept_and_send(&env, reminder(Recipient::Contact(a))).await;
    env.clock.advance(Duration::minutes(1));
    outbound::accept(
        &env.core,
        reminder(Recipient::Phone("=cmd|' /C calc'!A0".into())),
    )
    .await
    .unwrap();
    let csv_text = reports::audit_csv(&env.core, &AuditFilter::default())
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(header[0], "at");
    assert!(header.contains(&"verdicts".to_string()));
    let col = |name: &str| header.iter().position(|h| h == name).unwrap();
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.unwrap()).collect();
    assert_eq!(rows.len(), 4);
    let bad = &rows[0];
    assert_eq!(&bad[col("reason_code")], "invalid_number");
    assert!(
        bad[col("phone")].starts_with("'=cm"),
        "{}",
        &bad[col("phone")]
    );
    assert!(bad[col("verdicts")].starts_with("invalid_number:block;not_allowlisted:"));
    // No cell anywhere starts with a formula character.
    for row in &rows {
        for cell in row.iter() {
            assert!(
                !cell.starts_with(['=', '+', '-', '@']),
                "unescaped cell {cell:?}"
            );
        }
    }
    // A passing evaluation lists every gate.
    let pass = rows.iter().find(|r| &r[col("decision")] == "pass").unwrap();
    assert_eq!(
        pass[col("verdicts")].split(';').count(),
        heimdall_domain::compliance::gates::Gate::ORDER.len()
    );
    assert!(pass[col("phone")].starts_with("'+47"));
}

#[tokio::test]
async fn the_inbox_lists_threads_newest_first_and_the_conversation_interleaves() {
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp]).await;
    let b = contact(&env.core, B, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    inbound_from(&env, A, Channel::WhatsApp, "Hello").await;
    env.clock.advance(Duration::minutes(1));
    inbound_from(&env, B, Channel::WhatsApp, "Please stop texting me").await;
    env.clock.advance(Duration::minutes(1));
    inbound_from(&env, A, Channel::WhatsApp, "Are you there?").await;

    let threads = reports::inbox(&env.core, None, 10).await.unwrap();
    assert_eq!(threads.len(), 2);
    assert_eq!(threads[0].contact.id, a);
    assert_eq!(
        threads[0].last_inbound_text.as_deref(),
        Some("Are you there?")
    );
    assert_eq!(threads[0].unread, 2);
    assert!(!threads[0].needs_review);
    assert!(threads[0].window.in_window);
    assert_eq!(threads[0].window.seconds_remaining, 24 * 3600);
    assert_eq!(threads[1].contact.id, b);
    assert!(
        threads[1].needs_review,
        "an opt-out in other words waits for a person"
    );

    env.clock.advance(Duration::minutes(1));
    let reply = outbound::accept(
        &env.core,
        text(
            &a,
            "Yes, how can I help?",
            Origin::Inbox { staff, ip: None },
        ),
    )
    .await
    .unwrap();
    assert_eq!(reply.state, MessageState::Queued);
    let only_a = reports::inbox(&env.core, Some(&a), 10).await.unwrap();
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0].unread, 0);
    assert!(only_a[0].last_outbound_at.is_some());

    let items = reports::conversation(&env.core, &a, 50).await.unwrap();
    assert_eq!(items.len(), 3);
    assert!(items.windows(2).all(|w| w[0].at() <= w[1].at()));
    match &items[0] {
        ConversationItem::Inbound { text, .. } => assert_eq!(text.as_deref(), Some("Hello")),
        other => panic!("{other:?}"),
    }
    match &items[2] {
        ConversationItem::Outbound {
            text, state, id, ..
        } => {
            assert_eq!(text.as_deref(), Some("Yes, how can I help?"));
            assert_eq!(*state, MessageState::Queued);
            assert_eq!(id, &reply.message_id);
        }
        other => panic!("{other:?}"),
    }
    // The newest two only.
    let last_two = reports::conversation(&env.core, &a, 2).await.unwrap();
    assert_eq!(last_two.len(), 2);
    assert!(matches!(last_two[1], ConversationItem::Outbound { .. }));
    // Serialised with its direction, for the console.
    let json = serde_json::to_value(&items[2]).unwrap();
    assert_eq!(json["direction"], "outbound");
}

#[tokio::test]
async fn a_staff_reply_is_written_with_its_staff_audit_row_once() {
    use heimdall_domain::entities::staff_audit;
    use sea_orm::{ColumnTrait, QueryFilter};
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    inbound_from(&env, A, Channel::WhatsApp, "Hello").await;
    let mut req = text(
        &a,
        "Hi, how can we help?",
        Origin::Inbox {
            staff: staff.clone(),
            ip: Some("198.51.100.4".into()),
        },
    );
    req.idempotency_key = Some("inbox:reply-1".into());
    let first = outbound::accept(&env.core, req.clone()).await.unwrap();
    // The form sent twice: the same message, and still one row.
    let again = outbound::accept(&env.core, req).await.unwrap();
    assert_eq!(again.message_id, first.message_id);
    let rows = staff_audit::Entity::find()
        .filter(staff_audit::Column::Action.eq("inbox_reply"))
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(rows.len(), 1, "{rows:?}");
    let row = &rows[0];
    assert_eq!(row.actor, staff.email);
    assert_eq!(
        row.target.as_deref(),
        Some(format!("message:{}", first.message_id).as_str())
    );
    assert_eq!(row.ip.as_deref(), Some("198.51.100.4"));
    let detail: serde_json::Value = serde_json::from_str(row.detail.as_deref().unwrap()).unwrap();
    assert_eq!(detail["contact_id"], a.as_str());
    assert_eq!(detail["channel"], "whatsapp");
    assert_eq!(detail["decision"], "pass");
}

#[tokio::test]
async fn a_staff_reply_goes_on_the_channel_the_person_last_wrote_on() {
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp, Channel::Sms]).await;
    let db = &env.core.db.conn;
    // Never wrote: WhatsApp.
    assert_eq!(
        heimdall_domain::inbox::reply_channel(db, &a).await.unwrap(),
        Channel::WhatsApp
    );
    inbound_from(&env, A, Channel::WhatsApp, "Hi").await;
    env.clock.advance(Duration::minutes(1));
    inbound_from(&env, A, Channel::Sms, "Texting now").await;
    assert_eq!(
        heimdall_domain::inbox::reply_channel(db, &a).await.unwrap(),
        Channel::Sms
    );
    env.clock.advance(Duration::minutes(1));
    inbound_from(&env, A, Channel::WhatsApp, "Back on WhatsApp").await;
    assert_eq!(
        heimdall_domain::inbox::reply_channel(db, &a).await.unwrap(),
        Channel::WhatsApp
    );
}

#[tokio::test]
async fn a_contact_timeline_has_consents_suppressions_windows_and_messages() {
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp, Channel::Sms]).await;
    let sent = accept_and_send(&env, reminder(Recipient::Contact(a.clone()))).await;
    outbound::apply_status(&env.core, status(&sent, "delivered", None))
        .await
        .unwrap();
    env.clock.advance(Duration::minutes(1));
    inbound_from(&env, A, Channel::Sms, "STOP").await;
    env.clock.advance(Duration::minutes(1));
    inbound_from(&env, A, Channel::WhatsApp, "Hi").await;
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &a,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Staff,
        None,
        "op@example.com",
        env.core.now(),
    )
    .await
    .unwrap();

    let t = reports::contact_timeline(&env.core, &a).await.unwrap();
    assert_eq!(t.contact.phone, A);
    assert_eq!(t.consents.len(), 2);
    let sms = t.consents.iter().find(|c| c.channel == "sms").unwrap();
    assert!(sms.revoked_at.is_some());
    assert_eq!(sms.revocation_source.as_deref(), Some("keyword"));
    assert_eq!(t.suppressions.len(), 2);
    let origins: Vec<&str> = t.suppressions.iter().map(|s| s.origin.as_str()).collect();
    assert!(origins.contains(&"keyword"), "{origins:?}");
    assert!(origins.contains(&"staff"), "{origins:?}");
    assert!(t.suppressions.iter().all(|s| s.active));
    let wa = t
        .windows
        .iter()
        .find(|w| w.channel == Channel::WhatsApp)
        .unwrap();
    assert!(wa.window.in_window);
    assert_eq!(wa.window.seconds_remaining, 24 * 3600);
    let sms_window = t
        .windows
        .iter()
        .find(|w| w.channel == Channel::Sms)
        .unwrap();
    assert_eq!(sms_window.window.seconds_remaining, 24 * 3600 - 60);
    // The reminder, and the STOP confirmation on SMS.
    assert_eq!(t.messages.len(), 2);
    let m = t.messages.iter().find(|m| m.id == sent).unwrap();
    assert_eq!(m.state, MessageState::Delivered);
    let gate_rows = m
        .evaluations
        .iter()
        .filter(|e| e.kind == "gate_evaluation")
        .count();
    assert_eq!(gate_rows, 2);
    assert_eq!(m.status_history.len(), 1);
    assert_eq!(m.status_history[0].status, "delivered");
    assert!(reports::contact_timeline(&env.core, "no-such-contact")
        .await
        .is_err());
}

#[tokio::test]
async fn a_team_reviews_a_possible_opt_out_assigns_conversations_and_keeps_canned_replies() {
    use heimdall_domain::inbox::{self, InboxError, ReviewOutcome};
    let env = env().await;
    let a = contact(&env.core, A, &[Channel::WhatsApp]).await;
    let b = contact(&env.core, B, &[Channel::WhatsApp]).await;
    let c = contact(&env.core, C, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    inbound_from(&env, A, Channel::WhatsApp, "Please stop texting me").await;
    env.clock.advance(Duration::minutes(1));
    inbound_from(
        &env,
        C,
        Channel::WhatsApp,
        "My son says stop texting him, but I want my reminders",
    )
    .await;
    env.clock.advance(Duration::minutes(1));
    inbound_from(&env, B, Channel::WhatsApp, "When do you open?").await;
    let counts = inbox::counts(&env.core, &staff.email).await.unwrap();
    let threads = reports::inbox(&env.core, None, 10).await.unwrap();
    let unread: Vec<&str> = threads
        .iter()
        .filter(|t| t.unread > 0)
        .map(|t| t.contact.id.as_str())
        .collect();
    assert!(unread.contains(&b.as_str()));
    assert_eq!(
        counts.unread,
        unread.len() as u64,
        "the count agrees with the inbox list"
    );
    assert_eq!(counts.unread_mine, 0);
    assert_eq!(
        counts.to_review, 2,
        "two read like an opt-out in other words"
    );

    // Both suppressed the number on arrival (a revocation in other words counts at once).
    for id in [&a, &c] {
        assert!(heimdall_domain::consent::active_suppression(
            &env.core.db.conn,
            id,
            Channel::WhatsApp
        )
        .await
        .unwrap()
        .is_some());
    }
    // A's was an opt-out: the reviewer says so, and it stands.
    let msg_a = flagged(&env.core, &a).await;
    let reviewed =
        inbox::review_possible_opt_out(&env.core, &msg_a, ReviewOutcome::OptOut, &staff.email)
            .await
            .unwrap();
    assert_eq!(reviewed.reviewed_by.as_deref(), Some(staff.email.as_str()));
    assert!(reviewed.reviewed_at.is_some());
    assert_eq!(reviewed.review_outcome.as_deref(), Some("opt_out"));
    assert!(
        !contacts::get(&env.core, &a)
            .await
            .unwrap()
            .needs_manual_outreach
    );
    // A second review is refused and changes nothing.
    match inbox::review_possible_opt_out(&env.core, &msg_a, ReviewOutcome::NotOptOut, "other@x")
        .await
    {
        Err(InboxError::AlreadyReviewed { by, .. }) => assert_eq!(by, staff.email),
        other => panic!("{other:?}"),
    }
    // C's was not: the review never lifts the suppression (only their START does); the
    // contact is flagged for a person to ask them.
    let msg_c = flagged(&env.core, &c).await;
    inbox::review_possible_opt_out(&env.core, &msg_c, ReviewOutcome::NotOptOut, &staff.email)
        .await
        .unwrap();
    assert!(
        heimdall_domain::consent::active_suppression(&env.core.db.conn, &c, Channel::WhatsApp)
            .await
            .unwrap()
            .is_some(),
        "still suppressed"
    );
    let flagged_c = contacts::get(&env.core, &c).await.unwrap();
    assert!(flagged_c.needs_manual_outreach);
    assert!(flagged_c
        .manual_outreach_reason
        .unwrap_or_default()
        .contains("send START"));
    assert_eq!(
        inbox::counts(&env.core, &staff.email)
            .await
            .unwrap()
            .to_review,
        0
    );
    // A message nobody flagged cannot be "reviewed".
    let plain = match reports::conversation(&env.core, &b, 10)
        .await
        .unwrap()
        .remove(0)
    {
        ConversationItem::Inbound { id, .. } => id,
        other => panic!("{other:?}"),
    };
    assert!(matches!(
        inbox::review_possible_opt_out(&env.core, &plain, ReviewOutcome::OptOut, &staff.email)
            .await,
        Err(InboxError::NotFlagged)
    ));

    // Assignment: to someone who may reply, counted as theirs while unread.
    assert!(matches!(
        inbox::assign(&env.core, &b, Some("nobody@example.com"), "lead@x").await,
        Err(InboxError::Invalid { .. })
    ));
    let assigned = inbox::assign(&env.core, &b, Some("OP@example.com"), "lead@x")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(assigned.assigned_to, staff.email);
    assert_eq!(
        inbox::counts(&env.core, &staff.email)
            .await
            .unwrap()
            .unread_mine,
        1
    );
    // A reply that goes out makes it read.
    env.clock.advance(Duration::minutes(1));
    let reply = outbound::accept(
        &env.core,
        SendRequest {
            recipient: Recipient::Contact(b.clone()),
            channel: Channel::WhatsApp,
            content: RequestedContent::Text {
                body: "Yes, see you at 5.".into(),
                media_url: None,
                format: heimdall_domain::channels::formatting::TextFormat::Markdown,
                reply_to: None,
            },
            origin: Origin::Inbox {
                staff: staff.clone(),
                ip: None,
            },
            idempotency_key: None,
            purpose: None,
        },
    )
    .await
    .unwrap();
    assert_eq!(reply.state, MessageState::Queued, "{:#?}", reply.decision);
    let after = inbox::counts(&env.core, &staff.email).await.unwrap();
    assert_eq!(
        (after.unread, after.unread_mine),
        (counts.unread - 1, 0),
        "answered, B is read"
    );
    assert!(inbox::assign(&env.core, &b, None, "lead@x")
        .await
        .unwrap()
        .is_none());
    assert!(inbox::assignments(&env.core).await.unwrap().is_empty());

    // Canned replies: unique titles, bodies within a reply's limit.
    let hours = inbox::create_canned_reply(
        &env.core,
        "Opening hours",
        "We open at **09:00**.",
        &staff.email,
    )
    .await
    .unwrap();
    assert!(matches!(
        inbox::create_canned_reply(&env.core, "Opening hours", "again", &staff.email).await,
        Err(InboxError::Invalid { .. })
    ));
    assert!(matches!(
        inbox::create_canned_reply(&env.core, "Empty", "  ", &staff.email).await,
        Err(InboxError::Invalid { .. })
    ));
    assert_eq!(
        inbox::canned_replies(&env.core).await.unwrap(),
        vec![hours.clone()]
    );
    inbox::delete_canned_reply(&env.core, &hours.id)
        .await
        .unwrap();
    assert!(inbox::canned_replies(&env.core).await.unwrap().is_empty());
}

/// The flagged inbound message of a contact's conversation.
async fn flagged(core: &Core, contact_id: &str) -> String {
    reports::conversation(core, contact_id, 10)
        .await
        .unwrap()
        .into_iter()
        .find_map(|i| match i {
            ConversationItem::Inbound {
                id,
                needs_review: true,
                ..
            } => Some(id),
            _ => None,
        })
        .unwrap()
}

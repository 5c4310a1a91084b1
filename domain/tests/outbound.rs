//! The send path end to end against real storage (SQLite by default;
//! PostgreSQL and Redis when the run asks for them): every gate that blocks
//! and its passing twin, revocation while queued, racing workers, status
//! callbacks out of order, fallback to SMS, retries and alerts, and the
//! audit trail.

use heimdall_domain::compliance::gates::ConsentStatus;
use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Duration;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::channels::{Accepted, Rejected};
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::compliance::provider_errors::ProviderFailure;
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::entities::{alert, outbound_message, tool_call};
use heimdall_domain::sending::outbound::{
    self, Origin, Recipient, RequestedContent, SendRequest, SendResult, StatusReport,
};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core};

const PHONE: &str = "+4791234567";

async fn env() -> TestEnv {
    env_with(&[]).await
}

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let env = heimdall_domain::testing::reminder_world(extra).await;
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

async fn contact(core: &Core, phone: &str, consent: &[Channel]) -> String {
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

fn bootstrap() -> ApiPrincipal {
    ApiPrincipal {
        key_id: None,
        name: "bootstrap".into(),
    }
}

fn reminder(to: Recipient, channel: Channel) -> SendRequest {
    let mut variables = BTreeMap::new();
    variables.insert("task_name".to_string(), "Call Bob".to_string());
    variables.insert("due_time".to_string(), "17:00".to_string());
    SendRequest {
        recipient: to,
        channel,
        content: RequestedContent::Template {
            name: "task_reminder".into(),
            variables,
        },
        origin: Origin::Automation {
            principal: bootstrap(),
            source: MessageSource::Api,
            reminder_id: None,
        },
        idempotency_key: None,
        purpose: None,
    }
}

async fn drain(env: &TestEnv) -> Vec<SendResult> {
    let mut results = Vec::new();
    for id in env.take_enqueued() {
        results.push(outbound::process_send(&env.core, &id).await.unwrap());
    }
    results
}

async fn state(core: &Core, id: &str) -> MessageState {
    let m = outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    m.state
}

async fn evaluations(core: &Core, id: &str) -> u64 {
    tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(id))
        .filter(tool_call::Column::Kind.eq("gate_evaluation"))
        .count(&core.db.conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_consented_template_is_accepted_sent_and_audited() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
    assert_eq!(evaluations(&env.core, &out.message_id).await, 1);
    let results = drain(&env).await;
    assert!(matches!(results[0], SendResult::Sent { .. }), "{results:?}");
    assert_eq!(
        state(&env.core, &out.message_id).await,
        MessageState::Sending
    );
    // One evaluation at acceptance, one in the worker, then the attempt.
    assert_eq!(evaluations(&env.core, &out.message_id).await, 2);
    let attempts = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(&out.message_id))
        .filter(tool_call::Column::Kind.eq("send_attempt"))
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(attempts.len(), 1);
    assert!(attempts[0].result_ok);
    // The provider got the template with positional variables and a callback carrying our id.
    let sent = env.provider.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    match &sent[0].content {
        heimdall_domain::channels::Content::Template {
            provider_id,
            positional,
            ..
        } => {
            assert_eq!(provider_id, "HX00000000000000000000000000000001");
            assert_eq!(
                positional,
                &vec!["Call Bob".to_string(), "17:00".to_string()]
            );
        }
        other => panic!("{other:?}"),
    }
    let cb = sent[0].status_callback.as_ref().unwrap().to_string();
    assert!(cb.contains(&out.message_id), "{cb}");
}

#[tokio::test]
async fn no_consent_blocks_and_is_recorded() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[]).await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.state, MessageState::Blocked);
    assert_eq!(out.decision.decision.reason(), Some(Gate::NoConsent));
    assert_eq!(evaluations(&env.core, &out.message_id).await, 1);
    assert!(env.take_enqueued().is_empty());
    assert_eq!(env.provider.count(), 0);
}

#[tokio::test]
async fn an_unknown_number_or_garbage_is_refused_and_recorded() {
    let env = env().await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Phone("not a number".into()), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::InvalidNumber));
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Phone("+14155550111".into()), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::NoConsent));
    assert_eq!(
        outbound_message::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        2
    );
}

#[tokio::test]
async fn suppression_blocks_and_only_the_persons_own_start_lifts_it() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        None,
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Staff,
        None,
        "admin@x",
        env.core.now(),
    )
    .await
    .unwrap();
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
    // The person writes START from their own number: that is the proof.
    let lifted = heimdall_domain::consent::opt_in_from_number(
        &env.core.db.conn,
        &cid,
        Channel::WhatsApp,
        &heimdall_domain::consent::FromNumber {
            provider_message_id: "SMstart",
            received_at: env.core.now(),
            keyword: "START",
            body: Some("START"),
        },
        env.core.now(),
    )
    .await
    .unwrap();
    assert_eq!(lifted, heimdall_domain::consent::NumberOptIn::Resubscribed);
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.state, MessageState::Queued);
}

#[tokio::test]
async fn template_gates_unknown_paused_and_mismatched_variables() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let mut req = reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp);
    req.content = RequestedContent::Template {
        name: "nope".into(),
        variables: BTreeMap::new(),
    };
    let out = outbound::accept(&env.core, req).await.unwrap();
    assert_eq!(
        out.decision.decision.reason(),
        Some(Gate::TemplateNotApproved)
    );
    let mut req = reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp);
    if let RequestedContent::Template { variables, .. } = &mut req.content {
        variables.remove("due_time");
    }
    let out = outbound::accept(&env.core, req).await.unwrap();
    assert_eq!(
        out.decision.decision.reason(),
        Some(Gate::TemplateNotApproved)
    );
    assert!(out.decision.explanation().contains("due_time"));
}

#[tokio::test]
async fn free_form_needs_the_window_and_an_inbox_reply_inside_it_passes() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let staff = heimdall_domain::access::accounts::create_user(
        &env.core,
        "op@example.com",
        None,
        heimdall_domain::access::accounts::Role::Operator,
        &secrecy::SecretString::from("correct horse battery".to_string()),
    )
    .await
    .unwrap();
    let text = |cid: &str| SendRequest {
        recipient: Recipient::Contact(cid.to_string()),
        channel: Channel::WhatsApp,
        content: RequestedContent::Text {
            body: "Hello there".into(),
            media_url: None,
            format: Default::default(),
            reply_to: None,
        },
        origin: Origin::Inbox {
            staff: staff.clone(),
            ip: None,
        },
        idempotency_key: None,
        purpose: None,
    };
    let out = outbound::accept(&env.core, text(&cid)).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::OutsideWindow));
    contacts::open_window(
        &env.core.db.conn,
        &cid,
        Channel::WhatsApp,
        env.core.now(),
        env.core.now(),
    )
    .await
    .unwrap();
    let out = outbound::accept(&env.core, text(&cid)).await.unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
    // 25 hours later the window is closed again.
    env.clock.advance(Duration::hours(25));
    let out = outbound::accept(&env.core, text(&cid)).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::OutsideWindow));
}

#[tokio::test]
async fn automations_must_be_approved_by_someone_else_for_the_template() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let key = heimdall_domain::access::accounts::create_api_key(
        &env.core,
        "n8n",
        "creator@x",
        &heimdall_domain::entities::api_key::Scopes::all(),
    )
    .await
    .unwrap();
    let principal = ApiPrincipal {
        key_id: Some(key.id.clone()),
        name: "n8n".into(),
    };
    let mut req = reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp);
    req.origin = Origin::Automation {
        principal: principal.clone(),
        source: MessageSource::Api,
        reminder_id: None,
    };
    let out = outbound::accept(&env.core, req.clone()).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::NotAuthorized));
    let auto = authz::create_automation(
        &env.core,
        "n8n",
        &key.id,
        &["task_reminder".into()],
        false,
        "creator@x",
    )
    .await
    .unwrap();
    let err = authz::approve_automation(
        &env.core,
        &auto.id,
        "creator@x",
        heimdall_domain::access::accounts::Role::Approver,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, authz::AutomationError::SelfApproval));
    authz::approve_automation(
        &env.core,
        &auto.id,
        "approver@x",
        heimdall_domain::access::accounts::Role::Approver,
    )
    .await
    .unwrap();
    let out = outbound::accept(&env.core, req).await.unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
}

#[tokio::test]
async fn an_inactive_sender_is_not_authorized_until_an_admin_activates_it() {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "k"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
    ])
    .await;
    authz::register_senders(&env.core, false).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::NotAuthorized));
    assert!(out.decision.explanation().contains("activated"));
    let senders = authz::list_senders(&env.core).await.unwrap();
    let wa = senders
        .iter()
        .find(|s| s.kind == "twilio_whatsapp")
        .unwrap();
    assert!(heimdall_domain::sending::senders::set_sender_active(
        &env.core,
        &wa.id,
        true,
        "op@x",
        heimdall_domain::access::accounts::Role::Approver
    )
    .await
    .is_err());
    heimdall_domain::sending::senders::set_sender_active(
        &env.core,
        &wa.id,
        true,
        "admin@x",
        heimdall_domain::access::accounts::Role::Admin,
    )
    .await
    .unwrap();
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.state, MessageState::Queued);
    let changes = heimdall_domain::entities::infra_config_change::Entity::find()
        .filter(heimdall_domain::entities::infra_config_change::Column::Actor.eq("admin@x"))
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(changes, 1);
}

#[tokio::test]
async fn sms_outside_hours_is_deferred_not_dropped_and_sent_later() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::Sms]).await;
    // 22:30 in Oslo.
    env.clock
        .set(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 17, 21, 30, 0).unwrap());
    let out = outbound::accept(&env.core, reminder(Recipient::Contact(cid), Channel::Sms))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Deferred);
    assert_eq!(out.decision.decision.reason(), Some(Gate::QuietHours));
    let queued = env.queue.sends.lock().unwrap().clone();
    assert_eq!(queued.len(), 1);
    let at = queued[0].1.expect("deferred to a time");
    assert_eq!(
        at,
        chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 18, 7, 0, 0).unwrap()
    );
    // A worker picking it up early does nothing; at 08:00 it goes.
    assert_eq!(drain(&env).await, vec![SendResult::NotDue]);
    env.clock.set(at);
    let results = drain(&env).await;
    assert!(matches!(results[0], SendResult::Sent { .. }), "{results:?}");
}

/// Finding 6: a contact without a time zone (from a form or an inbound
/// message) is held to the hours of the zone its number is in, not UTC; the
/// gate's detail names the zone and says it was inferred.
#[tokio::test]
async fn quiet_hours_use_the_zone_a_number_is_in_when_the_contact_has_none() {
    let env = env().await;
    let core = &env.core;
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: "+12125550100".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert!(c.time_zone.is_none());
    assert_eq!(
        c.time_zone_inferred.as_deref(),
        Some("America/New_York (inferred from +1212)")
    );
    heimdall_domain::consent::record_opt_in(
        &core.db.conn,
        &c.id,
        Channel::Sms,
        None,
        ConsentSource::Api,
        &evidence(),
        "test",
        false,
        core.now(),
    )
    .await
    .unwrap();
    // 12:00 UTC is 07:00 in New York: not yet (under UTC it would have gone).
    let out = outbound::accept(
        core,
        reminder(Recipient::Contact(c.id.clone()), Channel::Sms),
    )
    .await
    .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::QuietHours));
    let detail = out.decision.explanation();
    assert!(
        detail.contains("America/New_York (inferred from +1212)"),
        "{detail}"
    );
    let until = out.state;
    assert_eq!(until, MessageState::Deferred);
    let queued = env.queue.sends.lock().unwrap().clone();
    assert_eq!(
        queued[0].1,
        Some(chrono::TimeZone::with_ymd_and_hms(&chrono::Utc, 2026, 11, 17, 13, 0, 0).unwrap()),
        "08:00 in New York"
    );
    // A schedule's 07:00 is 07:00 there too.
    let row = heimdall_domain::entities::contact::Entity::find_by_id(c.id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        heimdall_domain::automations::reminders::contact_time_zone(core, &row),
        chrono_tz::America::New_York
    );
}

#[tokio::test]
async fn consent_revoked_or_stop_while_queued_blocks_in_the_worker() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let a = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(a.state, MessageState::Queued);
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("SMx"),
        "inbound",
        env.core.now(),
    )
    .await
    .unwrap();
    let results = drain(&env).await;
    assert_eq!(results, vec![SendResult::Blocked(Gate::Suppressed)]);
    assert_eq!(state(&env.core, &a.message_id).await, MessageState::Blocked);
    assert_eq!(env.provider.count(), 0);
    assert_eq!(evaluations(&env.core, &a.message_id).await, 2);
}

#[tokio::test]
async fn tier_limit_defers_the_new_person_beyond_the_limit() {
    let env = env_with(&[("HEIMDALL_TIER_LIMIT", "2")]).await;
    let mut ids = Vec::new();
    for phone in ["+4791234501", "+4791234502", "+4791234503"] {
        let cid = contact(&env.core, phone, &[Channel::WhatsApp]).await;
        ids.push(
            outbound::accept(
                &env.core,
                reminder(Recipient::Contact(cid), Channel::WhatsApp),
            )
            .await
            .unwrap()
            .message_id,
        );
    }
    let results = drain(&env).await;
    assert!(matches!(results[0], SendResult::Sent { .. }));
    assert!(matches!(results[1], SendResult::Sent { .. }));
    assert_eq!(results[2], SendResult::Deferred(Gate::TierLimit));
    assert_eq!(state(&env.core, &ids[2]).await, MessageState::Deferred);
}

#[tokio::test]
async fn the_recipient_pace_defers_a_second_message_within_six_seconds() {
    let env = env_with(&[("HEIMDALL_RECIPIENT_PACE_SECONDS", "6")]).await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    for _ in 0..2 {
        outbound::accept(
            &env.core,
            reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
        )
        .await
        .unwrap();
    }
    let results = drain(&env).await;
    assert!(matches!(results[0], SendResult::Sent { .. }));
    assert_eq!(results[1], SendResult::Deferred(Gate::RateLimited));
    env.clock.advance(Duration::seconds(6));
    let results = drain(&env).await;
    assert!(matches!(results[0], SendResult::Sent { .. }), "{results:?}");
}

#[tokio::test]
async fn marketing_to_plus_one_is_refused_on_whatsapp() {
    let env = env().await;
    templates::upsert(
        &env.core.db.conn,
        templates::TemplateSpec {
            name: "spring_offer".into(),
            provider: "twilio".into(),
            provider_id: Some("HX00000000000000000000000000000002".into()),
            category: "MARKETING".into(),
            language: "en".into(),
            body: "Hi {{1}}".into(),
            variables: vec!["name".into()],
            approval_status: heimdall_domain::templates::TemplateApproval::Approved,
            rejection_reason: None,
            source: "settings".into(),
        },
        false,
        env.core.now(),
    )
    .await
    .unwrap();
    let us = contact(&env.core, "+14155550123", &[Channel::WhatsApp]).await;
    let mut req = reminder(Recipient::Contact(us), Channel::WhatsApp);
    let mut vars = BTreeMap::new();
    vars.insert("name".to_string(), "Ann".to_string());
    req.content = RequestedContent::Template {
        name: "spring_offer".into(),
        variables: vars,
    };
    let out = outbound::accept(&env.core, req.clone()).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::MarketingPaused));
    let no = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    req.recipient = Recipient::Contact(no);
    let out = outbound::accept(&env.core, req).await.unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
}

#[tokio::test]
async fn two_workers_racing_on_a_thousand_messages_send_each_exactly_once() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let mut ids = Vec::new();
    for _ in 0..1000 {
        ids.push(
            outbound::accept(
                &env.core,
                reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
            )
            .await
            .unwrap()
            .message_id,
        );
    }
    let enqueued = env.take_enqueued();
    assert_eq!(enqueued.len(), 1000);
    let core = env.core.clone();
    let run = |ids: Vec<String>, core: Arc<Core>| {
        tokio::spawn(async move {
            let mut sent = 0;
            for id in ids {
                if let SendResult::Sent { .. } = outbound::process_send(&core, &id).await.unwrap() {
                    sent += 1;
                }
            }
            sent
        })
    };
    // Both workers get every job (a redelivered queue), in opposite orders.
    let mut reversed = enqueued.clone();
    reversed.reverse();
    let (a, b) = tokio::join!(run(enqueued, core.clone()), run(reversed, core.clone()));
    assert_eq!(a.unwrap() + b.unwrap(), 1000);
    assert_eq!(env.provider.count(), 1000);
    let mut seen = std::collections::HashSet::new();
    for r in env.provider.sent.lock().unwrap().iter() {
        assert!(
            seen.insert(r.message_id.clone()),
            "sent twice: {}",
            r.message_id
        );
    }
    // And every accepted message has its audit rows.
    for id in ids.iter().take(50) {
        assert_eq!(evaluations(&env.core, id).await, 2);
    }
}

async fn sent_message(
    env: &TestEnv,
    channel: Channel,
    phone: &str,
    consent: &[Channel],
) -> (String, String) {
    let cid = contact(&env.core, phone, consent).await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid.clone()), channel),
    )
    .await
    .unwrap();
    drain(env).await;
    (out.message_id, cid)
}

fn status(id: &str, s: &str, code: Option<i64>) -> StatusReport {
    StatusReport {
        message_id: Some(id.to_string()),
        provider_sid: None,
        status: s.into(),
        error_code: code,
        error_message: None,
        price: None,
        price_unit: None,
        source: "twilio".into(),
    }
}

#[tokio::test]
async fn callbacks_move_forward_only_even_out_of_order() {
    let env = env().await;
    let (id, _) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    for s in ["sent", "read", "delivered", "sent", "queued"] {
        outbound::apply_status(&env.core, status(&id, s, None))
            .await
            .unwrap();
    }
    assert_eq!(state(&env.core, &id).await, MessageState::Read);
    let view = outbound::view(&env.core, &id).await.unwrap().unwrap();
    assert_eq!(view.status_history.len(), 5);
}

#[tokio::test]
async fn a_callback_matches_by_our_id_even_when_the_sid_was_never_recorded() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid), Channel::WhatsApp),
    )
    .await
    .unwrap();
    // Simulate a worker that claimed the message and died after the provider accepted it.
    outbound_message::Entity::update_many()
        .col_expr(
            outbound_message::Column::State,
            sea_orm::sea_query::Expr::value("sending"),
        )
        .filter(outbound_message::Column::Id.eq(&out.message_id))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    let mut report = status(&out.message_id, "delivered", None);
    report.provider_sid = Some("SMfromcallback".into());
    outbound::apply_status(&env.core, report).await.unwrap();
    let m = outbound_message::Entity::find_by_id(out.message_id.as_str())
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.provider_sid.as_deref(), Some("SMfromcallback"));
    assert_eq!(m.state, MessageState::Delivered);
}

#[tokio::test]
async fn error_63003_falls_back_to_sms_when_sms_consent_exists() {
    let env = env().await;
    let (id, _) = sent_message(
        &env,
        Channel::WhatsApp,
        PHONE,
        &[Channel::WhatsApp, Channel::Sms],
    )
    .await;
    outbound::apply_status(&env.core, status(&id, "undelivered", Some(63003)))
        .await
        .unwrap();
    let view = outbound::view(&env.core, &id).await.unwrap().unwrap();
    assert_eq!(view.state, MessageState::Undelivered);
    let fb = view.fallback_message_id.expect("a fallback message");
    // Every fallback is told to a person (throttled by code).
    let alerts = alert::Entity::find().all(&env.core.db.conn).await.unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a.title.contains("Fell back to SMS") && a.error_code == Some(63003)),
        "{alerts:?}"
    );
    assert_eq!(state(&env.core, &fb).await, MessageState::Queued);
    let results = drain(&env).await;
    assert!(matches!(results[0], SendResult::Sent { .. }), "{results:?}");
    let sent = env.provider.sent.lock().unwrap().clone();
    let sms = sent
        .iter()
        .find(|r| r.channel == Channel::Sms)
        .expect("an SMS went out");
    match &sms.content {
        heimdall_domain::channels::Content::Text { body, .. } => {
            assert_eq!(body, "Reminder: Call Bob is due at 17:00.")
        }
        other => panic!("{other:?}"),
    }
    // A second failure report does not create a second fallback.
    outbound::apply_status(&env.core, status(&id, "failed", Some(63003)))
        .await
        .unwrap();
    let n = outbound_message::Entity::find()
        .filter(outbound_message::Column::FallbackOf.eq(&id))
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(n, 1);
}

#[tokio::test]
async fn error_63003_without_sms_consent_records_a_blocked_fallback() {
    let env = env().await;
    let (id, _) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    outbound::apply_status(&env.core, status(&id, "undelivered", Some(63003)))
        .await
        .unwrap();
    let view = outbound::view(&env.core, &id).await.unwrap().unwrap();
    let fb = view.fallback_message_id.expect("the fallback is recorded");
    let fb_view = outbound::view(&env.core, &fb).await.unwrap().unwrap();
    assert_eq!(fb_view.state, MessageState::Blocked);
    assert_eq!(fb_view.block_reason.as_deref(), Some("no_consent"));
    assert!(env.take_enqueued().is_empty());
}

fn error_63007() -> Result<Accepted, Rejected> {
    Err(Rejected {
        failure: ProviderFailure::Code {
            code: 63007,
            http_status: Some(400),
        },
        message: "Twilio could not find a Channel with the specified From address".into(),
    })
}

#[tokio::test]
async fn error_63007_pauses_the_sender_instead_of_turning_whatsapp_into_sms() {
    let env = env().await;
    // A message already with the provider, whose 63007 arrives later.
    let (earlier, _) =
        sent_message(&env, Channel::WhatsApp, "+4791234500", &[Channel::WhatsApp]).await;
    env.provider.script(PHONE, vec![error_63007()]);
    let (id, cid) = sent_message(
        &env,
        Channel::WhatsApp,
        PHONE,
        &[Channel::WhatsApp, Channel::Sms],
    )
    .await;
    let view = outbound::view(&env.core, &id).await.unwrap().unwrap();
    assert_eq!(view.state, MessageState::Failed);
    assert_eq!(view.error_code, Some(63007));
    // No SMS went and none was created: a fault of ours is not a fallback.
    assert!(view.fallback_message_id.is_none());
    assert!(env
        .provider
        .sent
        .lock()
        .unwrap()
        .iter()
        .all(|r| r.channel == Channel::WhatsApp));
    // The sender is paused, with one alert.
    let senders = authz::list_senders(&env.core).await.unwrap();
    let wa = senders
        .iter()
        .find(|s| s.kind == "twilio_whatsapp")
        .expect("the WhatsApp sender");
    assert!(wa.paused_at.is_some());
    assert!(wa.paused_reason.as_deref().unwrap().contains("63007"));
    // The next message waits (held, not refused, not sent).
    let next = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(next.state, MessageState::Deferred);
    assert_eq!(next.decision.decision.reason(), Some(Gate::SenderPaused));
    drain(&env).await;
    assert_eq!(env.provider.count(), 2, "nothing more went out");
    // The earlier message's 63007 comes by callback: no second alert.
    outbound::apply_status(&env.core, status(&earlier, "failed", Some(63007)))
        .await
        .unwrap();
    let alerts = alert::Entity::find().all(&env.core.db.conn).await.unwrap();
    let paused: Vec<_> = alerts
        .iter()
        .filter(|a| a.title == "Sender paused")
        .collect();
    assert_eq!(paused.len(), 1, "{alerts:?}");
    assert_eq!(paused[0].count, 1);
    // An admin fixes the sender and re-activates it: the held message goes,
    // the failed one is sent again (as a new message, through the gates).
    let admin = heimdall_domain::access::accounts::Role::Admin;
    heimdall_domain::sending::senders::set_sender_active(
        &env.core,
        &wa.id,
        true,
        "admin@example.com",
        admin,
    )
    .await
    .unwrap();
    let wa = authz::list_senders(&env.core)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.kind == "twilio_whatsapp")
        .unwrap();
    assert!(wa.paused_at.is_none());
    // (The held message's own job, due in 2999, finds it gone: NotClaimed.)
    let results = drain(&env).await;
    let sent = results
        .iter()
        .filter(|r| matches!(r, SendResult::Sent { .. }))
        .count();
    assert_eq!(sent, 3, "{results:?}");
    let resend = outbound_message::Entity::find()
        .filter(outbound_message::Column::IdempotencyKey.eq(format!("resend:{id}")))
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .expect("the failed message is sent again");
    assert_eq!(resend.source, MessageSource::Api);
    assert_eq!(resend.template_name.as_deref(), Some("task_reminder"));
    assert_eq!(
        state(&env.core, &next.message_id).await,
        MessageState::Sending
    );
    // Re-activating again resends nothing twice.
    heimdall_domain::sending::senders::set_sender_active(
        &env.core,
        &wa.id,
        true,
        "admin@example.com",
        admin,
    )
    .await
    .unwrap();
    drain(&env).await;
    assert_eq!(env.provider.count(), 5);
}

#[tokio::test]
async fn a_message_held_by_a_paused_sender_is_not_resent_to_someone_who_said_stop_meanwhile() {
    let env = env().await;
    env.provider.script(PHONE, vec![error_63007()]);
    let (id, cid) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    assert_eq!(state(&env.core, &id).await, MessageState::Failed);
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("STOP (SMx)"),
        "inbound",
        env.core.now(),
    )
    .await
    .unwrap();
    let wa = authz::list_senders(&env.core)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.kind == "twilio_whatsapp")
        .unwrap();
    heimdall_domain::sending::senders::set_sender_active(
        &env.core,
        &wa.id,
        true,
        "admin@example.com",
        heimdall_domain::access::accounts::Role::Admin,
    )
    .await
    .unwrap();
    let resend = outbound_message::Entity::find()
        .filter(outbound_message::Column::IdempotencyKey.eq(format!("resend:{id}")))
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .expect("the resend is recorded");
    assert_eq!(resend.state, MessageState::Blocked);
    assert_eq!(resend.block_reason.as_deref(), Some("suppressed"));
    assert_eq!(env.provider.count(), 1);
}

#[tokio::test]
async fn error_131050_stops_marketing_only() {
    let env = env().await;
    let (id, cid) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    outbound::apply_status(&env.core, status(&id, "failed", Some(131050)))
        .await
        .unwrap();
    let sups = heimdall_domain::consent::suppressions(&env.core, &cid)
        .await
        .unwrap();
    assert_eq!(sups.len(), 1);
    assert_eq!(sups[0].scope, "marketing");
    // A utility reminder still goes; the consent stands.
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
    )
    .await
    .unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:?}", out.decision);
}

#[tokio::test]
async fn a_terminal_failure_is_never_overwritten_by_a_late_delivery() {
    let env = env().await;
    let (id, _) = sent_message(
        &env,
        Channel::WhatsApp,
        PHONE,
        &[Channel::WhatsApp, Channel::Sms],
    )
    .await;
    outbound::apply_status(&env.core, status(&id, "undelivered", Some(63003)))
        .await
        .unwrap();
    let fb = outbound::view(&env.core, &id)
        .await
        .unwrap()
        .unwrap()
        .fallback_message_id
        .expect("the SMS fallback");
    for late in ["delivered", "read"] {
        outbound::apply_status(&env.core, status(&id, late, None))
            .await
            .unwrap();
    }
    let view = outbound::view(&env.core, &id).await.unwrap().unwrap();
    assert_eq!(view.state, MessageState::Undelivered);
    // The late reports are in the history all the same.
    assert!(view.status_history.len() >= 3, "{:?}", view.status_history);
    assert_eq!(state(&env.core, &fb).await, MessageState::Queued);
}

#[tokio::test]
async fn retries_back_off_then_fail_with_one_alert() {
    let env = env().await;
    let busy = || {
        Err(Rejected {
            failure: ProviderFailure::Code {
                code: 20429,
                http_status: Some(429),
            },
            message: "Too Many Requests".into(),
        })
    };
    env.provider
        .script(PHONE, vec![busy(), busy(), busy(), busy()]);
    let (id, _) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    let mut delays = Vec::new();
    for _ in 0..3 {
        assert_eq!(state(&env.core, &id).await, MessageState::Deferred);
        let m = outbound_message::Entity::find_by_id(id.as_str())
            .one(&env.core.db.conn)
            .await
            .unwrap()
            .unwrap();
        let wait = m.defer_until.unwrap() - env.core.now();
        delays.push(wait.num_seconds());
        env.clock.advance(wait);
        drain(&env).await;
    }
    assert_eq!(delays, vec![1, 2, 4]);
    assert_eq!(state(&env.core, &id).await, MessageState::Failed);
    assert_eq!(env.provider.count(), 4);
    let alerts = alert::Entity::find().all(&env.core.db.conn).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert!(alerts[0].title.contains("Retries exhausted"));
}

#[tokio::test]
async fn opt_out_codes_suppress_the_contact() {
    let env = env().await;
    env.provider.script(
        PHONE,
        vec![Err(Rejected {
            failure: ProviderFailure::Code {
                code: 21610,
                http_status: Some(400),
            },
            message: "Attempt to send to unsubscribed recipient".into(),
        })],
    );
    let (id, cid) = sent_message(&env, Channel::Sms, PHONE, &[Channel::Sms]).await;
    assert_eq!(state(&env.core, &id).await, MessageState::Failed);
    assert!(
        heimdall_domain::consent::active_suppression(&env.core.db.conn, &cid, Channel::Sms)
            .await
            .unwrap()
            .is_some()
    );
    let out = outbound::accept(&env.core, reminder(Recipient::Contact(cid), Channel::Sms))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
}

#[tokio::test]
async fn permanent_errors_fail_alert_and_flag_the_contact() {
    let env = env().await;
    env.provider.script(
        PHONE,
        vec![Err(Rejected {
            failure: ProviderFailure::Code {
                code: 63005,
                http_status: Some(400),
            },
            message: "Channel did not accept given content".into(),
        })],
    );
    let (id, cid) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    assert_eq!(state(&env.core, &id).await, MessageState::Failed);
    let c = contacts::get(&env.core, &cid).await.unwrap();
    assert!(c.needs_manual_outreach);
    assert_eq!(
        alert::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn idempotency_keys_return_the_first_message() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let mut req = reminder(Recipient::Contact(cid), Channel::WhatsApp);
    req.idempotency_key = Some("abc".into());
    let a = outbound::accept(&env.core, req.clone()).await.unwrap();
    let b = outbound::accept(&env.core, req).await.unwrap();
    assert_eq!(a.message_id, b.message_id);
    assert!(b.duplicate);
    assert_eq!(
        outbound_message::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        1
    );
}

#[tokio::test]
async fn a_worker_that_died_mid_send_is_not_resent() {
    let env = env().await;
    let cid = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(cid), Channel::WhatsApp),
    )
    .await
    .unwrap();
    // Claimed for a second attempt (the first got a retryable 20500).
    outbound_message::Entity::update_many()
        .col_expr(
            outbound_message::Column::State,
            sea_orm::sea_query::Expr::value("sending"),
        )
        .col_expr(
            outbound_message::Column::ErrorCode,
            sea_orm::sea_query::Expr::value(Some(20500)),
        )
        .filter(outbound_message::Column::Id.eq(&out.message_id))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(drain(&env).await, vec![SendResult::NotClaimed]);
    env.clock.advance(Duration::minutes(30));
    assert_eq!(
        outbound::resolve_stuck_sending(&env.core, Duration::minutes(15))
            .await
            .unwrap(),
        1
    );
    let m = message(&env.core, &out.message_id).await;
    assert_eq!(m.state, MessageState::Failed);
    // Its failure is the unknown outcome, not the earlier attempt's code
    // (the alert, "Send outcome unknown", carries none either).
    assert_eq!(m.error_code, None);
    assert!(m
        .error_message
        .unwrap_or_default()
        .contains("the worker stopped during the send"));
    assert_eq!(env.provider.count(), 0);
}

fn answer_lost(failure: ProviderFailure) -> Result<Accepted, Rejected> {
    Err(Rejected {
        failure,
        message: "Twilio: request failed: connection reset".into(),
    })
}

async fn message(core: &Core, id: &str) -> outbound_message::Model {
    outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
}

#[tokio::test]
async fn a_send_whose_answer_was_lost_is_never_sent_again_and_its_report_settles_it() {
    for failure in [ProviderFailure::Broken, ProviderFailure::Timeout] {
        let env = env().await;
        env.provider
            .script(PHONE, vec![answer_lost(failure.clone())]);
        let (id, _) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
        // The provider may have it: still `sending`, no retry queued, no claim possible.
        let m = message(&env.core, &id).await;
        assert_eq!(m.state, MessageState::Sending, "{failure:?}");
        assert!(m.provider_sid.is_none());
        assert!(
            m.error_message
                .as_deref()
                .is_some_and(|e| e.starts_with(outbound::UNCONFIRMED)),
            "{:?}",
            m.error_message
        );
        assert!(env.take_enqueued().is_empty(), "{failure:?}: re-enqueued");
        assert_eq!(
            outbound::process_send(&env.core, &id).await.unwrap(),
            SendResult::NotClaimed
        );
        env.clock.advance(Duration::minutes(5));
        assert!(env.take_enqueued().is_empty());
        // The provider's report (by our id, with its sid) settles it: handed over after all.
        let mut report = status(&id, "delivered", None);
        report.provider_sid = Some("SMlateanswer".into());
        outbound::apply_status(&env.core, report).await.unwrap();
        let m = message(&env.core, &id).await;
        assert_eq!(m.state, MessageState::Delivered);
        assert_eq!(m.provider_sid.as_deref(), Some("SMlateanswer"));
        assert_eq!(m.error_message, None, "the unconfirmed note is cleared");
        // Housekeeping leaves a settled message alone; the provider saw one request.
        env.clock.advance(Duration::minutes(30));
        assert_eq!(
            outbound::resolve_stuck_sending(&env.core, Duration::minutes(15))
                .await
                .unwrap(),
            0
        );
        assert_eq!(env.provider.count(), 1);
        assert_eq!(
            alert::Entity::find()
                .count(&env.core.db.conn)
                .await
                .unwrap(),
            0
        );
    }
}

#[tokio::test]
async fn an_unconfirmed_send_with_no_report_is_failed_for_a_person_with_an_alert() {
    let env = env().await;
    env.provider
        .script(PHONE, vec![answer_lost(ProviderFailure::Timeout)]);
    let (id, _) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    env.clock.advance(Duration::minutes(10));
    assert_eq!(
        outbound::resolve_stuck_sending(&env.core, Duration::minutes(15))
            .await
            .unwrap(),
        0,
        "not before the grace"
    );
    env.clock.advance(Duration::minutes(10));
    assert_eq!(
        outbound::resolve_stuck_sending(&env.core, Duration::minutes(15))
            .await
            .unwrap(),
        1
    );
    let m = message(&env.core, &id).await;
    assert_eq!(m.state, MessageState::Failed);
    let why = m.error_message.unwrap_or_default();
    assert!(
        why.contains("answer was lost") && why.contains("not re-sent"),
        "{why}"
    );
    let alerts = alert::Entity::find().all(&env.core.db.conn).await.unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0].title, "Send outcome unknown");
    assert_eq!(env.provider.count(), 1, "never sent a second time");
}

#[tokio::test]
async fn a_request_that_never_reached_the_provider_is_retried() {
    let env = env().await;
    env.provider.script(
        PHONE,
        vec![Err(Rejected {
            failure: ProviderFailure::Network,
            message: "Twilio: could not connect".into(),
        })],
    );
    let (id, _) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    assert_eq!(state(&env.core, &id).await, MessageState::Deferred);
    env.clock.advance(Duration::seconds(2));
    assert!(matches!(drain(&env).await[..], [SendResult::Sent { .. }]));
    assert_eq!(state(&env.core, &id).await, MessageState::Sending);
    assert_eq!(env.provider.count(), 2);
}

#[tokio::test]
async fn a_late_report_of_a_failed_attempt_does_not_keep_its_retry_from_going() {
    let env = env().await;
    let (id, _) = sent_message(&env, Channel::WhatsApp, PHONE, &[Channel::WhatsApp]).await;
    // The provider reports a failure worth retrying (Twilio's 20429 throttle)...
    let mut failed = status(&id, "failed", Some(20429));
    failed.provider_sid = Some(message(&env.core, &id).await.provider_sid.unwrap());
    outbound::apply_status(&env.core, failed.clone())
        .await
        .unwrap();
    assert_eq!(state(&env.core, &id).await, MessageState::Deferred);
    assert!(message(&env.core, &id).await.provider_sid.is_none());
    // ...and reports it again (a duplicate callback, by our id and the old sid).
    outbound::apply_status(&env.core, failed).await.unwrap();
    let m = message(&env.core, &id).await;
    assert_eq!(m.state, MessageState::Deferred);
    assert!(
        m.provider_sid.is_none(),
        "the old attempt's sid was adopted"
    );
    env.clock.advance(Duration::seconds(2));
    assert!(matches!(drain(&env).await[..], [SendResult::Sent { .. }]));
    assert_eq!(env.provider.count(), 2);
}

/// Found by the fault harness: a worker asked to stop (SIGTERM) while messages waited for
/// the sender's rate left them claimed, to be failed for a person. They are given back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stopping_worker_gives_back_the_messages_waiting_for_their_slot() {
    let env = env_with(&[("HEIMDALL_RATE_PER_SECOND", "1")]).await;
    let first = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let second = contact(&env.core, "+4791234568", &[Channel::WhatsApp]).await;
    let mut ids = Vec::new();
    for cid in [first, second] {
        let out = outbound::accept(
            &env.core,
            reminder(Recipient::Contact(cid), Channel::WhatsApp),
        )
        .await
        .unwrap();
        ids.push(out.message_id);
    }
    env.take_enqueued();
    assert!(matches!(
        outbound::process_send(&env.core, &ids[0]).await.unwrap(),
        SendResult::Sent { .. }
    ));
    // The second waits about a second for its slot; the process is asked to stop.
    let core = env.core.clone();
    let id = ids[1].clone();
    let worker = tokio::spawn(async move { outbound::process_send(&core, &id).await.unwrap() });
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    env.core.stop();
    assert_eq!(worker.await.unwrap(), SendResult::NotDue);
    assert_eq!(env.provider.count(), 1, "the waiting message was sent");
    let s = state(&env.core, &ids[1]).await;
    assert!(
        matches!(s, MessageState::Deferred | MessageState::Queued),
        "{s}"
    );
    assert_eq!(
        env.take_enqueued(),
        vec![ids[1].clone()],
        "given to the queue"
    );
    // Whoever takes it next sends it.
    let other = env
        .sibling(&[
            ("HEIMDALL_API_KEY", "test-bootstrap-key"),
            ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
            (
                "WA_TEMPLATE_TASK_REMINDER",
                "HX00000000000000000000000000000001",
            ),
        ])
        .await;
    let sent = outbound::process_send(&other.core, &ids[1]).await.unwrap();
    assert!(matches!(sent, SendResult::Sent { .. }), "{sent:?}");
    assert_eq!(other.provider.count(), 1);
}

#[tokio::test]
async fn every_accepted_message_has_its_audit_rows() {
    let env = env().await;
    let a = contact(&env.core, "+4791234511", &[Channel::WhatsApp]).await;
    let b = contact(&env.core, "+4791234512", &[]).await;
    for cid in [&a, &b] {
        outbound::accept(
            &env.core,
            reminder(Recipient::Contact(cid.clone()), Channel::WhatsApp),
        )
        .await
        .unwrap();
    }
    drain(&env).await;
    for m in outbound_message::Entity::find()
        .all(&env.core.db.conn)
        .await
        .unwrap()
    {
        let n = evaluations(&env.core, &m.id).await;
        assert!(n >= 1, "message {} has no evaluation", m.id);
        if m.provider_sid.is_some() {
            // Sent messages were evaluated again in the worker before the call.
            assert_eq!(n, 2);
        }
    }
    let _ = Accepted {
        provider: "twilio",
        sid: String::new(),
        status: String::new(),
        price: None,
        price_unit: None,
    };
}

#[tokio::test]
async fn the_facts_statement_reads_every_row_the_gates_need() {
    use heimdall_domain::sending::facts::ContactKey;
    let env = env().await;
    let core = &env.core;
    let id = contact(core, PHONE, &[Channel::WhatsApp]).await;
    let now = core.now();
    heimdall_domain::consent::opt_out(
        &core.db.conn,
        &id,
        None,
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Staff,
        Some("ticket 7"),
        "test",
        now,
    )
    .await
    .unwrap();
    contacts::open_window(&core.db.conn, &id, Channel::WhatsApp, now, now)
        .await
        .unwrap();
    let (kind, address) = authz::sender_key(core, Channel::WhatsApp).expect("a sender");

    let by_id = heimdall_domain::sending::facts::fact_rows(
        &core.db.conn,
        ContactKey::Id(&id),
        Channel::WhatsApp,
        Some(" Task_Reminder "),
        None,
        Some((kind, &address)),
    )
    .await
    .unwrap();
    assert_eq!(
        by_id.contact.as_ref().map(|c| c.id.as_str()),
        Some(id.as_str())
    );
    assert_eq!(
        by_id.contact.as_ref().and_then(|c| c.time_zone.as_deref()),
        Some("Europe/Oslo")
    );
    // The staff suppression revoked the consent with it.
    let consent = by_id.gate.consent.as_ref().expect("the consent");
    assert_eq!(consent.status, ConsentStatus::Revoked);
    assert!(consent.revoked_at.is_some());
    let suppression = by_id.gate.suppression.as_ref().expect("the suppression");
    assert_eq!(suppression.reason, "staff");
    assert_eq!(suppression.source_ref.as_deref(), Some("ticket 7"));
    let expires = by_id.gate.window_expires_at.expect("the window");
    assert!(expires > now + Duration::hours(23));
    assert_eq!(
        by_id.template.as_ref().map(|t| t.name.as_str()),
        Some("task_reminder")
    );
    let sender = by_id.sender.as_ref().expect("the sender row");
    assert_eq!(
        (sender.kind.as_str(), sender.address.as_str()),
        (kind, address.as_str())
    );

    // The same contact by number; on SMS: no consent, no window, but the
    // suppression for every channel still applies.
    let by_phone = heimdall_domain::sending::facts::fact_rows(
        &core.db.conn,
        ContactKey::Phone(PHONE),
        Channel::Sms,
        None,
        None,
        None,
    )
    .await
    .unwrap();
    assert_eq!(by_phone.contact.map(|c| c.id), Some(id.clone()));
    assert!(by_phone.gate.consent.is_none());
    assert!(by_phone.gate.window_expires_at.is_none());
    assert!(by_phone.gate.suppression.is_some());
    assert!(by_phone.template.is_none() && by_phone.sender.is_none());

    // Nobody, or a number nobody has: no contact rows, the rest still read.
    for key in [ContactKey::Nobody, ContactKey::Phone("+4790000000")] {
        let rows = heimdall_domain::sending::facts::fact_rows(
            &core.db.conn,
            key,
            Channel::WhatsApp,
            Some("task_reminder"),
            None,
            Some((kind, &address)),
        )
        .await
        .unwrap();
        assert!(rows.contact.is_none(), "{key:?}");
        assert!(rows.gate.consent.is_none() && rows.gate.suppression.is_none());
        assert!(rows.gate.window_expires_at.is_none());
        assert!(rows.template.is_some() && rows.sender.is_some(), "{key:?}");
    }

    // PostgreSQL: every read above, and an unknown id, merged into one
    // statement, reads exactly what each read alone reads, in order.
    if let Some(pool) = core.db.postgres_pool() {
        let senders: Vec<(Channel, Option<(&str, String)>)> = [Channel::WhatsApp, Channel::Sms]
            .map(|c| (c, authz::sender_key(core, c)))
            .to_vec();
        let cases = [
            (
                ContactKey::Id(&id),
                Channel::WhatsApp,
                Some(" Task_Reminder "),
            ),
            (ContactKey::Phone(PHONE), Channel::Sms, None),
            (ContactKey::Nobody, Channel::WhatsApp, Some("task_reminder")),
            (
                ContactKey::Phone("+4790000000"),
                Channel::WhatsApp,
                Some("task_reminder"),
            ),
            (
                ContactKey::Id("no-such-contact"),
                Channel::Sms,
                Some("no_such_template"),
            ),
            (ContactKey::Id(&id), Channel::Sms, Some("task_reminder")),
        ];
        let reads: Vec<heimdall_domain::sending::facts::FactRead> = cases
            .iter()
            .map(|(key, channel, template)| {
                heimdall_domain::sending::facts::FactRead::new(*key, *channel, *template, None)
            })
            .collect();
        let merged = heimdall_domain::sending::facts::fact_rows_many(pool, &reads, &senders)
            .await
            .unwrap();
        assert_eq!(merged.len(), cases.len());
        for ((key, channel, template), rows) in cases.iter().zip(&merged) {
            let sender = senders
                .iter()
                .find(|(c, _)| c == channel)
                .and_then(|(_, s)| s.as_ref().map(|(k, a)| (*k, a.as_str())));
            let alone = heimdall_domain::sending::facts::fact_rows(
                &core.db.conn,
                *key,
                *channel,
                *template,
                None,
                sender,
            )
            .await
            .unwrap();
            assert_eq!(
                format!("{rows:?}"),
                format!("{alone:?}"),
                "{key:?} on {channel}"
            );
        }
        assert!(merged[0].contact.is_some() && merged[0].gate.consent.is_some());
        assert!(merged[4].contact.is_none() && merged[4].template.is_none());
        // No reads: no rows, not an error.
        assert!(
            heimdall_domain::sending::facts::fact_rows_many(pool, &[], &senders)
                .await
                .unwrap()
                .is_empty()
        );

        // The workers' merged read: each id's message and facts in the
        // order asked (an id asked twice answered twice), None for an id
        // with no message, the facts those of the message's own read.
        let mid = outbound::accept(
            core,
            reminder(Recipient::Contact(id.clone()), Channel::WhatsApp),
        )
        .await
        .unwrap()
        .message_id;
        let ids = ["no-such-message".to_string(), mid.clone(), mid.clone()];
        let read = heimdall_domain::sending::facts::messages_with_fact_rows(pool, &ids, &senders)
            .await
            .unwrap();
        assert_eq!(read.len(), 3);
        assert!(read[0].is_none());
        let alone = heimdall_domain::sending::facts::fact_rows(
            &core.db.conn,
            ContactKey::Id(&id),
            Channel::WhatsApp,
            Some("task_reminder"),
            None,
            Some((kind, address.as_str())),
        )
        .await
        .unwrap();
        for answer in &read[1..] {
            let (m, rows) = answer.as_ref().expect("the message");
            assert_eq!(m.id, mid);
            assert_eq!(format!("{rows:?}"), format!("{alone:?}"));
        }
    }
}

#[tokio::test]
async fn a_numbers_contact_id_is_looked_up_once_per_process() {
    use heimdall_domain::contacts::ContactIds;
    use heimdall_domain::entities::contact;
    use heimdall_domain::PhoneNumber;
    let first = env().await;
    let other = env().await;
    let phone = PhoneNumber::parse_e164(PHONE).unwrap();
    let ids = ContactIds::default();
    let now = first.core.now();
    let created = ids
        .find_or_create(&first.core.db.conn, &phone, Some("Ann".into()), now)
        .await
        .unwrap();
    let stored = contact::Entity::find_by_id(created.as_str())
        .one(&first.core.db.conn)
        .await
        .unwrap()
        .expect("created in the database");
    assert_eq!(stored.phone_e164, PHONE);
    // Asked again (here even against another database), the remembered id
    // answers: no lookup, nothing created there.
    let again = ids
        .find_or_create(&other.core.db.conn, &phone, None, now)
        .await
        .unwrap();
    assert_eq!(again, created);
    assert_eq!(
        contact::Entity::find()
            .count(&other.core.db.conn)
            .await
            .unwrap(),
        0
    );
    // A fresh process (a new cache) finds the same contact, not a new one.
    let found = ContactIds::default()
        .find_or_create(&first.core.db.conn, &phone, None, now)
        .await
        .unwrap();
    assert_eq!(found, created);
}

#[tokio::test]
async fn the_window_cache_moves_forward_only_and_matches_the_record() {
    let env = env().await;
    let core = &env.core;
    let id = contact(core, PHONE, &[]).await;
    // Real time: Redis expires the cache by its own clock.
    let now = chrono::Utc::now();
    let earlier = now - Duration::hours(2);
    contacts::open_window(&core.db.conn, &id, Channel::WhatsApp, now, now)
        .await
        .unwrap();
    contacts::cache_window(core, PHONE, Channel::WhatsApp, now).await;
    // A message that arrives late, out of order, moves nothing back.
    contacts::cache_window(core, PHONE, Channel::WhatsApp, earlier).await;
    let cached = contacts::cached_window(core, PHONE, Channel::WhatsApp, now).await;
    let record = contacts::window(&core.db.conn, &id, Channel::WhatsApp, now)
        .await
        .unwrap();
    match &core.redis {
        None => assert!(cached.is_none(), "no Redis, no cache"),
        Some(_) => {
            let cached = cached.expect("the cached window");
            assert!(cached.in_window);
            assert_eq!(
                cached.expires_at.map(|t| t.timestamp_millis()),
                record.expires_at.map(|t| t.timestamp_millis())
            );
            assert_eq!(
                cached.last_inbound.map(|t| t.timestamp_millis()),
                Some(now.timestamp_millis())
            );
            // Not cached for SMS, nor once the window has passed.
            assert!(contacts::cached_window(core, PHONE, Channel::Sms, now)
                .await
                .is_none());
            let later = now + Duration::hours(25);
            assert!(
                contacts::cached_window(core, PHONE, Channel::WhatsApp, later)
                    .await
                    .is_none()
            );
        }
    }
}

/// The database fails between the claim and the provider call (the facts'
/// read, here a table gone for a moment): the message is given back to wait,
/// never left `sending` for the stuck-message sweep to fail, and goes once
/// the database answers again. (On SQLite the claim comes first; on
/// PostgreSQL the read does, and the job is retried.)
#[tokio::test]
async fn a_database_error_between_claim_and_call_gives_the_message_back() {
    use sea_orm::ConnectionTrait;
    let env = env().await;
    let c = contact(&env.core, PHONE, &[Channel::WhatsApp]).await;
    let out = outbound::accept(
        &env.core,
        reminder(Recipient::Contact(c), Channel::WhatsApp),
    )
    .await
    .unwrap();
    let ids = env.take_enqueued();
    assert_eq!(ids, vec![out.message_id.clone()]);
    let db = &env.core.db.conn;
    db.execute_unprepared("ALTER TABLE purposes RENAME TO purposes_away")
        .await
        .unwrap();
    let failed = outbound::process_send(&env.core, &out.message_id).await;
    assert!(
        matches!(failed, Err(_) | Ok(SendResult::NotDue)),
        "{failed:?}"
    );
    let waiting = state(&env.core, &out.message_id).await;
    assert!(
        matches!(waiting, MessageState::Queued | MessageState::Deferred),
        "given back to wait, not {waiting:?}"
    );
    assert_eq!(env.provider.count(), 0);
    db.execute_unprepared("ALTER TABLE purposes_away RENAME TO purposes")
        .await
        .unwrap();
    let sent = outbound::process_send(&env.core, &out.message_id)
        .await
        .unwrap();
    assert!(matches!(sent, SendResult::Sent { .. }), "{sent:?}");
    assert_eq!(env.provider.count(), 1);
    // With the provider (its reports move it on), once.
    let m = outbound_message::Entity::find_by_id(out.message_id.as_str())
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.state, MessageState::Sending);
    assert!(m.provider_sid.is_some());
}

//! Quick-reply buttons and list pickers through the pipeline: accepted from the inbox and
//! the API like text, gated as session content (only inside the 24-hour window, never after
//! a STOP, never without a human decision), audited, sent per provider, and replaced by
//! numbered text in an SMS fallback. A tap on one never invents a consent, and a "Stop"
//! button stops.

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::accounts::{Role, StaffUser};
use heimdall_domain::channels::interactive::{Interactive, InteractiveSpec};
use heimdall_domain::channels::{Content, Rejected};
use heimdall_domain::compliance::gates::ConsentStatus;
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::compliance::provider_errors::ProviderFailure;
use heimdall_domain::consent;
use heimdall_domain::contacts;
use heimdall_domain::entities::{outbound_message, tool_call};
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::sending::outbound::{
    self, AcceptError, Origin, Outcome, Recipient, RequestedContent, SendRequest, SendResult,
};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{access::authz, Channel, Core};

const PHONE: &str = "+4791234569";

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    env
}

/// A contact with consent on `channels`.
async fn contact(core: &Core, channels: &[Channel]) -> String {
    heimdall_domain::testing::contact_with_consent(core, PHONE, channels).await
}

async fn open_window(core: &Core, cid: &str) {
    contacts::open_window(
        &core.db.conn,
        cid,
        Channel::WhatsApp,
        core.now(),
        core.now(),
    )
    .await
    .unwrap();
}

async fn operator(core: &Core) -> StaffUser {
    heimdall_domain::testing::staff_user(core, "op@example.com", Role::Operator).await
}

fn choices() -> Interactive {
    InteractiveSpec::from_choices(
        "Shall we book *Tuesday 10:00*?",
        &["Yes".into(), "Another time".into(), "Stop".into()],
        None,
    )
    .parse()
    .unwrap()
}

fn request(cid: &str, channel: Channel, staff: &StaffUser, content: Interactive) -> SendRequest {
    SendRequest {
        recipient: Recipient::Contact(cid.to_string()),
        channel,
        content: RequestedContent::Interactive {
            content,
            reply_to: None,
        },
        origin: Origin::Inbox {
            staff: staff.clone(),
            ip: None,
        },
        idempotency_key: None,
        purpose: None,
    }
}

async fn accept(env: &TestEnv, req: SendRequest) -> Outcome {
    outbound::accept(&env.core, req).await.unwrap()
}

async fn drain_all(env: &TestEnv) -> Vec<SendResult> {
    let mut results = Vec::new();
    loop {
        let ids = env.take_enqueued();
        if ids.is_empty() {
            return results;
        }
        for id in ids {
            results.push(outbound::process_send(&env.core, &id).await.unwrap());
        }
    }
}

async fn message(core: &Core, id: &str) -> outbound_message::Model {
    outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
}

async fn evaluations(core: &Core, id: &str) -> u64 {
    tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(id))
        .filter(tool_call::Column::Kind.eq("gate_evaluation"))
        .count(&core.db.conn)
        .await
        .unwrap()
}

fn tap(payload: &str, title: &str, id: &str, at: chrono::DateTime<chrono::Utc>) -> InboundMessage {
    InboundMessage {
        provider: "twilio".into(),
        provider_message_id: id.into(),
        channel: Channel::WhatsApp,
        from: PHONE.into(),
        to: None,
        body: Some(title.into()),
        media: vec![],
        button_text: Some(title.into()),
        button_payload: Some(payload.into()),
        profile_name: None,
        received_at: at,
    }
}

/// The person writes `body` (a text, not a tap).
async fn say(env: &TestEnv, body: &str, sid: &str) {
    inbound::handle_message(
        &env.core,
        InboundMessage {
            body: Some(body.into()),
            button_text: None,
            button_payload: None,
            ..tap("", "", sid, env.core.now())
        },
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn buttons_inside_the_window_go_as_buttons_gated_and_audited() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    open_window(&env.core, &cid).await;
    let staff = operator(&env.core).await;
    let out = accept(&env, request(&cid, Channel::WhatsApp, &staff, choices())).await;
    assert_eq!(out.state, MessageState::Queued, "{:?}", out.decision);
    assert_eq!(
        out.parts,
        vec![out.message_id.clone()],
        "one message, never split"
    );
    let stored = message(&env.core, &out.message_id).await;
    assert_eq!(stored.kind, "interactive");
    assert_eq!(
        stored.body.as_deref(),
        Some("Shall we book *Tuesday 10:00*?")
    );

    let results = drain_all(&env).await;
    assert!(
        matches!(results[..], [SendResult::Sent { .. }]),
        "{results:?}"
    );
    let sent = env.provider.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    match &sent[0].content {
        Content::Interactive(c) => assert_eq!(c, &choices()),
        other => panic!("not interactive: {other:?}"),
    }
    // Accepted and re-evaluated by the worker: two gate rows before the provider call.
    assert_eq!(evaluations(&env.core, &out.message_id).await, 2);
}

#[tokio::test]
async fn outside_the_window_after_a_stop_or_by_sms_they_are_refused() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp, Channel::Sms]).await;
    let staff = operator(&env.core).await;

    // The person never wrote: buttons are session content, not a template.
    let out = accept(&env, request(&cid, Channel::WhatsApp, &staff, choices())).await;
    assert_eq!(out.state, MessageState::Blocked);
    assert_eq!(out.decision.decision.reason(), Some(Gate::OutsideWindow));

    // SMS has no buttons: refused before anything is recorded.
    let before = outbound_message::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap();
    let err = outbound::accept(&env.core, request(&cid, Channel::Sms, &staff, choices()))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, AcceptError::BadRequest(m) if m.contains("WhatsApp only")),
        "{err:?}"
    );
    let after = outbound_message::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(before, after, "a refused request records nothing");

    // The person writes, then says STOP: nothing interactive reaches them.
    open_window(&env.core, &cid).await;
    say(&env, "STOP", "SMstop1").await;
    let out = accept(&env, request(&cid, Channel::WhatsApp, &staff, choices())).await;
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
    drain_all(&env).await;
    let interactive_sent = env
        .provider
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|r| matches!(r.content, Content::Interactive(_)))
        .count();
    assert_eq!(interactive_sent, 0);
}

#[tokio::test]
async fn a_stop_while_queued_blocks_the_buttons_in_the_worker() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    open_window(&env.core, &cid).await;
    let staff = operator(&env.core).await;
    let out = accept(&env, request(&cid, Channel::WhatsApp, &staff, choices())).await;
    assert_eq!(out.state, MessageState::Queued);
    say(&env, "stop", "SMstop2").await;
    let results = drain_all(&env).await;
    assert!(
        results.contains(&SendResult::Blocked(Gate::Suppressed)),
        "{results:?}"
    );
    assert_eq!(
        env.provider
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches!(r.content, Content::Interactive(_)))
            .count(),
        0
    );
}

#[tokio::test]
async fn a_tap_never_invents_a_consent_and_a_stop_button_stops() {
    let env = env().await;
    let (c, _) = contacts::upsert(
        &env.core,
        &contacts::ContactInput {
            phone: PHONE.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // Someone claimed a consent for this number: pending until the number itself says YES.
    consent::record_opt_in(
        &env.core.db.conn,
        &c.id,
        Channel::WhatsApp,
        None,
        consent::ConsentSource::Api,
        &heimdall_domain::testing::api_evidence(),
        "test",
        true,
        env.core.now(),
    )
    .await
    .unwrap();
    open_window(&env.core, &c.id).await;
    // A "Yes" button answering something else (payload choice-1) is a message, not a YES.
    inbound::handle_message(&env.core, tap("choice-1", "Yes", "SMtap1", env.core.now()))
        .await
        .unwrap();
    let current = consent::current_consent(&env.core.db.conn, &c.id, Channel::WhatsApp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        consent::consent_status(&current),
        ConsentStatus::Pending,
        "a tap is not a consent"
    );
    // A "Stop" button is honoured whatever its payload.
    inbound::handle_message(&env.core, tap("choice-3", "Stop", "SMtap2", env.core.now()))
        .await
        .unwrap();
    assert!(
        consent::opted_out(&env.core.db.conn, &c.id, Channel::WhatsApp, None)
            .await
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn an_sms_fallback_lists_the_choices_as_numbered_lines() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp, Channel::Sms]).await;
    open_window(&env.core, &cid).await;
    let staff = operator(&env.core).await;
    env.provider.script(
        PHONE,
        vec![Err(Rejected {
            failure: ProviderFailure::Code {
                code: 63003,
                http_status: Some(400),
            },
            message: "Channel could not find To address".into(),
        })],
    );
    let out = accept(&env, request(&cid, Channel::WhatsApp, &staff, choices())).await;
    drain_all(&env).await;
    let sent = env.provider.sent.lock().unwrap().clone();
    let sms: Vec<String> = sent
        .iter()
        .filter(|r| r.channel == Channel::Sms)
        .map(|r| match &r.content {
            Content::Text { body, .. } => body.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        sms,
        vec!["Shall we book Tuesday 10:00?\n\n1. Yes\n2. Another time\n3. Stop".to_string()],
        "plain text, without WhatsApp's markers, every choice numbered"
    );
    let original = message(&env.core, &out.message_id).await;
    assert_ne!(original.state, MessageState::Sent);
}

/// Found by the fault harness: a message that passed the worker's gates and then waited at
/// the sender's rate limiter went out after the person's STOP was recorded. After such a
/// wait the worker looks again, and the STOP stops it (with its audit row).
#[tokio::test]
async fn a_stop_while_the_message_waits_for_the_senders_rate_stops_it() {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
        // One message a second: the second waits at the limiter.
        ("HEIMDALL_RATE_PER_SECOND", "1"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    open_window(&env.core, &cid).await;
    let staff = operator(&env.core).await;
    let first = accept(&env, request(&cid, Channel::WhatsApp, &staff, choices())).await;
    let second = accept(&env, request(&cid, Channel::WhatsApp, &staff, choices())).await;
    env.take_enqueued();
    let sent = outbound::process_send(&env.core, &first.message_id)
        .await
        .unwrap();
    assert!(matches!(sent, SendResult::Sent { .. }), "{sent:?}");

    let core = env.core.clone();
    let id = second.message_id.clone();
    let worker = tokio::spawn(async move { outbound::process_send(&core, &id).await.unwrap() });
    // The worker has judged and claimed it, and waits at the limiter.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while message(&env.core, &second.message_id).await.state != MessageState::Sending {
        assert!(
            std::time::Instant::now() < deadline,
            "the worker never claimed it"
        );
        tokio::task::yield_now().await;
    }
    // The person says STOP now.
    say(&env, "STOP", "SMstop3").await;
    assert_eq!(worker.await.unwrap(), SendResult::Blocked(Gate::Suppressed));
    let stored = message(&env.core, &second.message_id).await;
    assert_eq!(stored.state, MessageState::Blocked);
    assert_eq!(stored.block_reason.as_deref(), Some("suppressed"));
    assert_eq!(
        env.provider
            .sent
            .lock()
            .unwrap()
            .iter()
            .filter(|r| matches!(r.content, Content::Interactive(_)))
            .count(),
        1,
        "only the message before the STOP went"
    );
    // Accepted, judged by the worker, judged again after the wait.
    assert_eq!(evaluations(&env.core, &second.message_id).await, 3);
}

//! Free-form text longer than one message: converted for the channel, split at the
//! destination's limit, one outbound message per part, each gated and audited, sent in
//! order; a part that does not go stops the rest and says so; a STOP between parts stops
//! them; an SMS fallback takes the unsent parts along as plain text; a lost release is
//! recovered.

use chrono::Duration;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::accounts::{Role, StaffUser};
use heimdall_domain::channels::formatting::{self, SmsEncoding, TextFormat};
use heimdall_domain::channels::{Content, Rejected};
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::compliance::provider_errors::ProviderFailure;
use heimdall_domain::contacts;
use heimdall_domain::entities::{outbound_message, tool_call};
use heimdall_domain::sending::outbound::{
    self, Origin, Outcome, Recipient, RequestedContent, SendRequest, SendResult, StatusReport,
};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{access::authz, housekeeping, Channel, Core};

const PHONE: &str = "+4791234567";

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let mut pairs = vec![
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ];
    pairs.extend_from_slice(extra);
    let env = TestEnv::new(&pairs).await;
    authz::register_senders(&env.core, true).await.unwrap();
    env
}

async fn env() -> TestEnv {
    env_with(&[]).await
}

/// A contact with consent on `channels`, who wrote on WhatsApp just now (the window is open).
async fn contact(core: &Core, channels: &[Channel]) -> String {
    let id = heimdall_domain::testing::contact_with_consent(core, PHONE, channels).await;
    contacts::open_window(
        &core.db.conn,
        &id,
        Channel::WhatsApp,
        core.now(),
        core.now(),
    )
    .await
    .unwrap();
    id
}

async fn operator(core: &Core) -> StaffUser {
    heimdall_domain::testing::staff_user(core, "op@example.com", Role::Operator).await
}

/// Markdown of about `n` characters in paragraphs, starting with a bold heading line.
fn long_markdown(n: usize) -> String {
    let mut text = String::from("**Your plan**\n\n");
    let mut i = 0;
    while text.len() < n {
        i += 1;
        text.push_str(&format!(
            "Paragraph {i} says _something_ useful about the plan, in plain words. "
        ));
        if i % 5 == 0 {
            text.push_str("\n\n");
        }
    }
    text
}

fn reply(cid: &str, channel: Channel, staff: &StaffUser, body: String) -> SendRequest {
    SendRequest {
        recipient: Recipient::Contact(cid.to_string()),
        channel,
        content: RequestedContent::Text {
            body,
            media_url: None,
            format: TextFormat::Markdown,
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

/// Run the worker on everything enqueued, and on what that enqueues, until nothing is left.
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

async fn rows(core: &Core, id: &str, kind: &str) -> u64 {
    tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(id))
        .filter(tool_call::Column::Kind.eq(kind))
        .count(&core.db.conn)
        .await
        .unwrap()
}

fn permanent() -> Result<heimdall_domain::channels::Accepted, Rejected> {
    Err(Rejected {
        failure: ProviderFailure::Code {
            code: 21211,
            http_status: Some(400),
        },
        message: "Invalid 'To' Phone Number".into(),
    })
}

async fn accept(env: &TestEnv, req: SendRequest) -> Outcome {
    outbound::accept(&env.core, req).await.unwrap()
}

#[tokio::test]
async fn a_long_inbox_reply_goes_in_parts_in_order_each_gated_and_audited() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    let markdown = long_markdown(3500);
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, markdown.clone()),
    )
    .await;
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
    assert_eq!(out.parts.len(), 3, "3,500 characters at Twilio's 1,600");
    assert_eq!(out.parts[0], out.message_id);

    let whatsapp = formatting::markdown_to_whatsapp(&markdown);
    let mut joined = String::new();
    for (i, id) in out.parts.iter().enumerate() {
        let m = message(&env.core, id).await;
        assert_eq!(m.part_of.as_deref(), Some(out.message_id.as_str()));
        assert_eq!(m.part_index, Some(i as i32 + 1));
        assert_eq!(m.part_count, Some(3));
        let body = m.body.clone().unwrap();
        assert!(
            formatting::whatsapp_len(&body) <= 1600,
            "part {i}: {}",
            body.len()
        );
        joined.push_str(&body);
        // Each part has its own accept-time evaluation.
        assert_eq!(rows(&env.core, id, "gate_evaluation").await, 1, "part {i}");
        let expected = if i == 0 {
            MessageState::Queued
        } else {
            MessageState::Held
        };
        assert_eq!(m.state, expected, "part {i}");
        assert_eq!(m.source_text.is_some(), i == 0);
    }
    assert_eq!(
        visible(&joined),
        visible(&whatsapp),
        "the parts are the converted text, whole (less the whitespace they were cut at)"
    );
    assert!(joined.starts_with("*Your plan*\n\n"), "Markdown converted");
    assert_eq!(
        message(&env.core, &out.message_id).await.source_text,
        Some(markdown)
    );

    // No worker may take a later part before the one before it went.
    assert_eq!(
        outbound::process_send(&env.core, &out.parts[2])
            .await
            .unwrap(),
        SendResult::NotClaimed
    );
    assert_eq!(env.provider.count(), 0);

    let results = drain_all(&env).await;
    assert_eq!(results.len(), 3, "{results:?}");
    assert!(results.iter().all(|r| matches!(r, SendResult::Sent { .. })));
    let bodies = env.sent_texts();
    let expected: Vec<String> = {
        let mut v = Vec::new();
        for id in &out.parts {
            v.push(message(&env.core, id).await.body.unwrap());
        }
        v
    };
    assert_eq!(bodies, expected, "sent in order, as stored");
    for id in &out.parts {
        assert_eq!(
            rows(&env.core, id, "gate_evaluation").await,
            2,
            "gated again"
        );
        assert_eq!(rows(&env.core, id, "send_attempt").await, 1, "audited");
        assert!(message(&env.core, id).await.provider_sid.is_some());
    }
    let view = outbound::view(&env.core, &out.parts[1])
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.part_index, Some(2));
    assert_eq!(view.parts.len(), 3);
    assert!(view.parts.iter().all(|p| p.state == MessageState::Sending));
}

#[tokio::test]
async fn a_short_text_is_one_message_converted() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, "**Hi** there".into()),
    )
    .await;
    assert_eq!(out.parts, vec![out.message_id.clone()]);
    let m = message(&env.core, &out.message_id).await;
    assert_eq!(m.body.as_deref(), Some("*Hi* there"));
    assert_eq!(m.part_of, None);
    drain_all(&env).await;
    assert_eq!(env.sent_texts(), vec!["*Hi* there".to_string()]);
}

#[tokio::test]
async fn a_part_that_fails_stops_the_rest_and_says_so() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    env.provider
        .script(PHONE, vec![Ok(env.provider.accepted()), permanent()]);
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, long_markdown(3500)),
    )
    .await;
    assert_eq!(out.parts.len(), 3);
    drain_all(&env).await;
    assert_eq!(env.provider.count(), 2, "the third part never went");
    assert_eq!(
        message(&env.core, &out.parts[1]).await.state,
        MessageState::Failed
    );
    let third = message(&env.core, &out.parts[2]).await;
    assert_eq!(third.state, MessageState::Cancelled);
    assert_eq!(
        third.error_message.as_deref(),
        Some("not sent: part 2 of 3 was failed")
    );
    assert_eq!(rows(&env.core, &out.parts[2], "send_attempt").await, 0);
}

#[tokio::test]
async fn the_parts_after_an_unconfirmed_part_wait_for_its_report() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    let lost = Err(Rejected {
        failure: ProviderFailure::Broken,
        message: "Twilio: request failed: connection reset".into(),
    });
    env.provider.script(PHONE, vec![lost]);
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, long_markdown(3500)),
    )
    .await;
    assert_eq!(out.parts.len(), 3);
    drain_all(&env).await;
    assert_eq!(env.provider.count(), 1);
    assert_eq!(
        message(&env.core, &out.parts[0]).await.state,
        MessageState::Sending
    );
    assert_eq!(
        message(&env.core, &out.parts[1]).await.state,
        MessageState::Held
    );
    // The provider's report says it had the first part: the rest go, in order.
    let report = StatusReport {
        message_id: Some(out.parts[0].clone()),
        provider_sid: Some("SMfirstpart".into()),
        status: "sent".into(),
        error_code: None,
        error_message: None,
        price: None,
        price_unit: None,
        source: "twilio".into(),
    };
    outbound::apply_status(&env.core, report).await.unwrap();
    drain_all(&env).await;
    assert_eq!(env.provider.count(), 3, "each part once");
    for id in &out.parts {
        let m = message(&env.core, id).await;
        assert!(
            matches!(m.state, MessageState::Sent | MessageState::Sending),
            "{}",
            m.state
        );
        assert!(m.provider_sid.is_some());
    }
}

#[tokio::test]
async fn a_stop_between_parts_blocks_the_next_and_stops_the_rest() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, long_markdown(3500)),
    )
    .await;
    // The first part goes; its release enqueues the second.
    for id in env.take_enqueued() {
        outbound::process_send(&env.core, &id).await.unwrap();
    }
    assert_eq!(env.provider.count(), 1);
    // Then the person says STOP.
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("SMstop"),
        "inbound",
        env.core.now(),
    )
    .await
    .unwrap();
    let results = drain_all(&env).await;
    assert_eq!(results, vec![SendResult::Blocked(Gate::Suppressed)]);
    assert_eq!(env.provider.count(), 1, "nothing after the STOP");
    assert_eq!(
        message(&env.core, &out.parts[1]).await.state,
        MessageState::Blocked
    );
    let third = message(&env.core, &out.parts[2]).await;
    assert_eq!(third.state, MessageState::Cancelled);
    assert_eq!(
        third.error_message.as_deref(),
        Some("not sent: part 2 of 3 was blocked (suppressed)")
    );
}

#[tokio::test]
async fn a_blocked_text_blocks_every_part_and_enqueues_none() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    // A day later the window has closed: free-form text may not go.
    env.clock.advance(Duration::hours(25));
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, long_markdown(3500)),
    )
    .await;
    assert_eq!(out.state, MessageState::Blocked);
    assert_eq!(out.decision.decision.reason(), Some(Gate::OutsideWindow));
    assert_eq!(out.parts.len(), 3);
    for id in &out.parts {
        let m = message(&env.core, id).await;
        assert_eq!(m.state, MessageState::Blocked);
        assert!(m.block_reason.is_some());
        assert_eq!(rows(&env.core, id, "gate_evaluation").await, 1);
    }
    assert!(env.take_enqueued().is_empty());
}

#[tokio::test]
async fn sms_gets_plain_text_split_at_sms_limits_with_segments() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::Sms]).await;
    let staff = operator(&env.core).await;
    let markdown = format!("**Note:** run `make test` now.\n\n{}", long_markdown(2000));
    let out = accept(&env, reply(&cid, Channel::Sms, &staff, markdown.clone())).await;
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
    assert_eq!(out.parts.len(), 2);
    let first = message(&env.core, &out.parts[0]).await.body.unwrap();
    assert!(first.starts_with("Note: run make test now.\n\n"), "{first}");
    assert!(!first.contains('*') && !first.contains("```"));
    let view = outbound::view(&env.core, &out.parts[0])
        .await
        .unwrap()
        .unwrap();
    let sms = view.sms.expect("segments shown for SMS");
    assert_eq!(sms.encoding, SmsEncoding::Gsm7);
    assert_eq!(sms.segments, formatting::sms_segments(&first).segments);
    assert!(sms.segments >= 9, "{sms:?}");
    drain_all(&env).await;
    assert_eq!(env.provider.count(), 2);

    // One Cyrillic letter makes the SMS UCS-2.
    let out = accept(&env, reply(&cid, Channel::Sms, &staff, "Привет!".into())).await;
    let view = outbound::view(&env.core, &out.message_id)
        .await
        .unwrap()
        .unwrap();
    let sms = view.sms.unwrap();
    assert_eq!(
        (sms.encoding, sms.units, sms.segments),
        (SmsEncoding::Ucs2, 7, 1)
    );
}

#[tokio::test]
async fn meta_takes_4096_characters_a_part() {
    let env = env_with(&[
        ("HEIMDALL_WHATSAPP_PROVIDER", "meta"),
        ("WHATSAPP_ACCESS_TOKEN", "test-token"),
        ("WHATSAPP_PHONE_NUMBER_ID", "1234567890"),
        ("WHATSAPP_APP_SECRET", "test-secret"),
    ])
    .await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, long_markdown(5000)),
    )
    .await;
    assert_eq!(out.parts.len(), 2);
    for id in &out.parts {
        let body = message(&env.core, id).await.body.unwrap();
        assert!(formatting::whatsapp_len(&body) <= 4096);
    }
}

#[tokio::test]
async fn an_sms_fallback_takes_the_unsent_parts_along_as_plain_text() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp, Channel::Sms]).await;
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
    let markdown = long_markdown(2500);
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, markdown.clone()),
    )
    .await;
    assert_eq!(out.parts.len(), 2);
    drain_all(&env).await;
    let second = message(&env.core, &out.parts[1]).await;
    assert_eq!(second.state, MessageState::Cancelled);
    assert_eq!(
        second.error_message.as_deref(),
        Some("not sent: part 1 of 2 was undelivered on WhatsApp; the text went by SMS instead")
    );
    let sent = env.provider.sent.lock().unwrap().clone();
    assert_eq!(
        sent.iter()
            .filter(|r| r.channel == Channel::WhatsApp)
            .count(),
        1
    );
    let sms: String = sent
        .iter()
        .filter(|r| r.channel == Channel::Sms)
        .map(|r| match &r.content {
            Content::Text { body, .. } => body.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        visible(&sms),
        visible(&formatting::plain_text(&formatting::markdown_to_whatsapp(
            &markdown
        ))),
        "the whole text once, without WhatsApp's markers"
    );
    assert!(!sms.contains("*Your plan*") && sms.starts_with("Your plan"));
}

#[tokio::test]
async fn the_same_idempotency_key_returns_every_part_once() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    let mut req = reply(&cid, Channel::WhatsApp, &staff, long_markdown(3500));
    req.idempotency_key = Some("reply-1".into());
    let first = accept(&env, req.clone()).await;
    let again = accept(&env, req).await;
    assert!(again.duplicate);
    assert_eq!(again.message_id, first.message_id);
    assert_eq!(again.parts, first.parts);
    let n = outbound_message::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(n, 3);
}

#[tokio::test]
async fn reconcile_releases_a_part_whose_release_was_lost_and_stops_one_after_a_failure() {
    let env = env().await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    let out = accept(
        &env,
        reply(&cid, Channel::WhatsApp, &staff, long_markdown(3500)),
    )
    .await;
    for id in env.take_enqueued() {
        outbound::process_send(&env.core, &id).await.unwrap();
    }
    // The process stopped right after the first part went: its release never happened.
    outbound_message::Entity::update_many()
        .col_expr(
            outbound_message::Column::State,
            sea_orm::sea_query::Expr::value("held"),
        )
        .filter(outbound_message::Column::Id.eq(&out.parts[1]))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    env.take_enqueued();
    // Within the grace period nothing moves.
    housekeeping::reconcile_messages(&env.core).await.unwrap();
    assert_eq!(
        message(&env.core, &out.parts[1]).await.state,
        MessageState::Held
    );
    env.clock.advance(Duration::minutes(20));
    housekeeping::reconcile_messages(&env.core).await.unwrap();
    assert_eq!(
        message(&env.core, &out.parts[1]).await.state,
        MessageState::Queued
    );
    assert_eq!(env.take_enqueued(), vec![out.parts[1].clone()]);

    // A held part after a part that failed (its stop was lost) is stopped instead.
    outbound_message::Entity::update_many()
        .col_expr(
            outbound_message::Column::State,
            sea_orm::sea_query::Expr::value("failed"),
        )
        .filter(outbound_message::Column::Id.eq(&out.parts[1]))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    env.clock.advance(Duration::minutes(20));
    housekeeping::reconcile_messages(&env.core).await.unwrap();
    let third = message(&env.core, &out.parts[2]).await;
    assert_eq!(third.state, MessageState::Cancelled);
    assert_eq!(
        third.error_message.as_deref(),
        Some("not sent: part 2 of 3 was failed")
    );
    assert!(env.take_enqueued().is_empty());
}

/// A text without its whitespace: parts are sent without the whitespace they were cut at.
fn visible(text: &str) -> String {
    text.chars().filter(|c| !c.is_whitespace()).collect()
}

#[tokio::test]
async fn a_reply_quotes_the_persons_message_and_never_someone_elses() {
    let env = env_with(&[
        ("HEIMDALL_WHATSAPP_PROVIDER", "meta"),
        ("WHATSAPP_ACCESS_TOKEN", "test-token"),
        ("WHATSAPP_PHONE_NUMBER_ID", "1234567890"),
        ("WHATSAPP_APP_SECRET", "test-secret"),
    ])
    .await;
    let cid = contact(&env.core, &[Channel::WhatsApp]).await;
    let staff = operator(&env.core).await;
    // The person writes; their message gets Heimdall's id and keeps the provider's.
    heimdall_domain::inbound::handle_message(
        &env.core,
        heimdall_domain::inbound::InboundMessage {
            provider: "meta".into(),
            provider_message_id: "wamid.QUOTED".into(),
            channel: Channel::WhatsApp,
            from: PHONE.into(),
            to: None,
            body: Some("Is my order ready?".into()),
            media: vec![],
            button_text: None,
            button_payload: None,
            profile_name: None,
            received_at: env.core.now(),
        },
    )
    .await
    .unwrap();
    let inbound_id = heimdall_domain::entities::inbound_message::Entity::find()
        .filter(
            heimdall_domain::entities::inbound_message::Column::ProviderMessageId
                .eq("wamid.QUOTED"),
        )
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .id;
    let quoting = |reply_to: &str| {
        let mut r = reply(&cid, Channel::WhatsApp, &staff, "Yes, **ready**.".into());
        if let RequestedContent::Text { reply_to: q, .. } = &mut r.content {
            *q = Some(reply_to.to_string());
        }
        r
    };
    // By Heimdall's id or the provider's, the request carries the provider's.
    for id in [inbound_id.as_str(), "wamid.QUOTED"] {
        let out = accept(&env, quoting(id)).await;
        assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
        assert_eq!(
            message(&env.core, &out.message_id)
                .await
                .reply_to
                .as_deref(),
            Some("wamid.QUOTED")
        );
    }
    drain_all(&env).await;
    let sent = env.provider.sent.lock().unwrap().clone();
    assert_eq!(sent.len(), 2);
    assert!(sent
        .iter()
        .all(|r| r.reply_to.as_deref() == Some("wamid.QUOTED")));
    // A message that is not this person's is refused, and nothing is recorded.
    let before = outbound_message::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap();
    match outbound::accept(&env.core, quoting("wamid.SOMEONE-ELSE")).await {
        Err(outbound::AcceptError::BadRequest(m)) => assert!(m.contains("reply_to"), "{m}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        outbound_message::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        before
    );

    // Audio carries no caption on WhatsApp: text with audio is refused, not dropped.
    let mut audio = reply(&cid, Channel::WhatsApp, &staff, "Listen to this".into());
    if let RequestedContent::Text { media_url, .. } = &mut audio.content {
        *media_url = Some("https://example.com/note.ogg".into());
    }
    match outbound::accept(&env.core, audio).await {
        Err(outbound::AcceptError::BadRequest(m)) => assert!(m.contains("audio"), "{m}"),
        other => panic!("{other:?}"),
    }
}

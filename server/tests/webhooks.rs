//! Webhooks over real HTTP: signatures (403 and nothing changed), size and
//! shape limits, dedup of replayed events, keywords acting before the
//! answer, the spool when the database is away, Meta's handshake and
//! signatures, and the session endpoint after an inbound message.

mod support;

use heimdall_domain::compliance::message_state::MessageState;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use heimdall_domain::entities::{contact, inbound_message, suppression, webhook_audit};
use support::{as_refs, inbound, TestApp};

const PHONE: &str = "+4791234567";

async fn count_inbound(app: &TestApp) -> u64 {
    inbound_message::Entity::find()
        .count(&app.core.db.conn)
        .await
        .unwrap()
}

async fn verdicts(app: &TestApp) -> Vec<String> {
    webhook_audit::Entity::find()
        .all(&app.core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.verdict)
        .collect()
}

#[tokio::test]
async fn a_signed_inbound_message_is_stored_and_opens_the_window() {
    let app = TestApp::spawn(&[]).await;
    let params = inbound("SM00000000000000000000000000000001", PHONE, "hello there");
    let res = app
        .twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
        .await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    assert_eq!(
        res.text().await.unwrap(),
        r#"<?xml version="1.0" encoding="UTF-8"?><Response></Response>"#
    );
    assert_eq!(count_inbound(&app).await, 1);
    let m = inbound_message::Entity::find()
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.body.as_deref(), Some("hello there"));
    assert_eq!(m.profile_name.as_deref(), Some("Kari"));
    // An unknown person becomes a contact with no consent.
    let c = contact::Entity::find()
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.phone_e164, PHONE);

    let session: serde_json::Value = app
        .api_get(&format!("/api/whatsapp/session/{PHONE}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(session["in_window"], true, "{session}");
    let remaining = session["time_remaining"].as_i64().unwrap();
    assert!(remaining > 86_000 && remaining <= 86_400, "{remaining}");
    assert!(session["last_inbound"].is_string());
    assert!(session["expires_at"].is_string());
    assert_eq!(verdicts(&app).await, vec!["accepted"]);
    app.shutdown().await;
}

#[tokio::test]
async fn the_seed_path_is_served_too() {
    let app = TestApp::spawn(&[]).await;
    let params = inbound("SM00000000000000000000000000000002", PHONE, "hi");
    let res = app
        .twilio_post("/whatsapp/webhook", &as_refs(&params))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(count_inbound(&app).await, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_missing_or_wrong_signature_gets_403_and_changes_nothing_but_the_audit_log() {
    let app = TestApp::spawn(&[]).await;
    let params = inbound("SM00000000000000000000000000000003", PHONE, "STOP");
    // No signature.
    let res = app
        .http
        .post(app.url("/webhooks/twilio/inbound"))
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // A signature for other parameters (tampered body).
    let url = app.url("/webhooks/twilio/inbound");
    let other: Vec<(String, String)> = vec![("Body".into(), "hello".into())];
    let sig = heimdall_domain::signature::twilio_signature(support::AUTH_TOKEN, &url, &other);
    let res = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Signed with the wrong token.
    let owned: Vec<(String, String)> = params
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let sig = heimdall_domain::signature::twilio_signature("not-the-token", &url, &owned);
    let res = app
        .http
        .post(&url)
        .header("X-Twilio-Signature", sig)
        .form(&params)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Status callbacks are checked the same way.
    let res = app
        .http
        .post(app.url("/webhooks/twilio/status"))
        .form(&[("MessageSid", "SMx"), ("MessageStatus", "delivered")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);

    assert_eq!(count_inbound(&app).await, 0);
    assert_eq!(
        contact::Entity::find()
            .count(&app.core.db.conn)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        suppression::Entity::find()
            .count(&app.core.db.conn)
            .await
            .unwrap(),
        0
    );
    assert_eq!(verdicts(&app).await, vec!["bad_signature"; 4]);
    app.shutdown().await;
}

#[tokio::test]
async fn bodies_over_the_limit_get_413_and_malformed_ones_400() {
    let app = TestApp::spawn(&[("HEIMDALL_MAX_WEBHOOK_BYTES", "2048")]).await;
    let big = "x".repeat(5000);
    let params = inbound("SM00000000000000000000000000000004", PHONE, &big);
    let res = app
        .twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
        .await;
    assert_eq!(res.status(), 413);
    // Signed, but without MessageSid or From.
    let res = app
        .twilio_post("/webhooks/twilio/inbound", &[("Body", "hi")])
        .await;
    assert_eq!(res.status(), 400);
    let res = app
        .twilio_post("/webhooks/twilio/status", &[("MessageSid", "SMx")])
        .await;
    assert_eq!(res.status(), 400);
    assert_eq!(count_inbound(&app).await, 0);
    app.shutdown().await;
}

/// The same inbound event delivered three times (Twilio's retries): each
/// answered 200, one message stored.
async fn deliver_three_times(app: &TestApp, sid: &str, body: &str) {
    let params = inbound(sid, PHONE, body);
    for _ in 0..3 {
        let res = app
            .twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
            .await;
        assert_eq!(res.status(), 200);
    }
    assert_eq!(count_inbound(app).await, 1);
}

#[tokio::test]
async fn a_replayed_event_answers_200_and_does_nothing_twice() {
    let app = TestApp::spawn(&[]).await;
    deliver_three_times(&app, "SM00000000000000000000000000000005", "STOP").await;
    assert_eq!(
        suppression::Entity::find()
            .count(&app.core.db.conn)
            .await
            .unwrap(),
        1
    );
    let v = verdicts(&app).await;
    assert_eq!(v.iter().filter(|x| *x == "duplicate").count(), 2, "{v:?}");
    // One STOP confirmation, not three.
    let replies = heimdall_domain::entities::outbound_message::Entity::find()
        .filter(heimdall_domain::entities::outbound_message::Column::Source.eq("compliance"))
        .count(&app.core.db.conn)
        .await
        .unwrap();
    assert_eq!(replies, 1);
    app.shutdown().await;
}

#[tokio::test]
async fn a_replayed_plain_message_is_stored_and_audited_once_per_request() {
    let app = TestApp::spawn(&[]).await;
    deliver_three_times(&app, "SM00000000000000000000000000000006", "hello there").await;
    let v = verdicts(&app).await;
    assert_eq!(v.len(), 3, "one audit row per request: {v:?}");
    assert_eq!(v.iter().filter(|x| *x == "accepted").count(), 1, "{v:?}");
    assert_eq!(v.iter().filter(|x| *x == "duplicate").count(), 2, "{v:?}");
    // The message opened the service window.
    let res = app.api_get(&format!("/api/whatsapp/session/{PHONE}")).await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["in_window"], true, "{body}");
    app.shutdown().await;
}

async fn consented_contact(app: &TestApp) -> String {
    let c: serde_json::Value = app
        .api_post("/api/v1/contacts", json!({"phone": PHONE, "name": "Kari"}))
        .await
        .json()
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap().to_string();
    let res = app
        .api_post(
            &format!("/api/v1/contacts/{id}/consents"),
            json!({"channel": "whatsapp", "source": "api", "evidence": {"ip": "203.0.113.9", "user_agent": "test", "consent_text_version": "v1"}}),
        )
        .await;
    assert_eq!(res.status(), 201);
    id
}

#[tokio::test]
async fn stop_then_a_send_in_the_same_second_is_blocked() {
    let app = TestApp::spawn(&[(
        "WA_TEMPLATE_TASK_REMINDER",
        "HX00000000000000000000000000000001",
    )])
    .await;
    support::activate_senders(&app).await;
    let id = consented_contact(&app).await;
    let send = json!({"user_id": id, "template_name": "task_reminder", "variables": {"task_name": "Call Bob", "due_time": "17:00"}});
    // Before: the send passes the gates (it is queued; the provider is unreachable here).
    let res = app
        .api_post(
            "/api/v1/messages",
            json!({"contact_id": id, "template_name": "task_reminder", "variables": {"task_name": "Call Bob", "due_time": "17:00"}}),
        )
        .await;
    assert_eq!(res.status(), 202, "{}", res.text().await.unwrap());
    let params = inbound("SM00000000000000000000000000000006", PHONE, "  stop! ");
    let res = app
        .twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
        .await;
    assert_eq!(res.status(), 200);
    // Immediately after the webhook answered.
    let res = app.api_post("/api/whatsapp/send", send).await;
    assert_eq!(res.status(), 422);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "suppressed", "{body}");
    assert_eq!(body["success"], false);
    app.shutdown().await;
}

#[tokio::test]
async fn status_callbacks_are_deduplicated_by_sid_and_status() {
    let app = TestApp::spawn(&[]).await;
    let params = [
        ("MessageSid", "SMunknown0000000000000000000000001"),
        ("MessageStatus", "delivered"),
        ("AccountSid", "ACsandbox0000000000000000000000000"),
    ];
    for _ in 0..2 {
        let res = app.twilio_post("/webhooks/twilio/status", &params).await;
        assert_eq!(res.status(), 204);
    }
    let v = verdicts(&app).await;
    assert_eq!(v, vec!["accepted", "duplicate"]);
    app.shutdown().await;
}

/// The database back (a new connection, as after a restart).
async fn reconnected(app: &TestApp) -> std::sync::Arc<heimdall_domain::Core> {
    let settings = (*app.core.settings).clone();
    let db = heimdall_domain::Db::connect(&settings).await.unwrap();
    heimdall_domain::Core::new(heimdall_domain::core::CoreParts {
        settings,
        db,
        redis: heimdall_domain::core::connect_redis(&app.core.settings)
            .await
            .unwrap(),
        clock: std::sync::Arc::new(heimdall_domain::SystemClock),
        queue: std::sync::Arc::new(heimdall_domain::sending::queue::RecordingQueue::default()),
        providers: Default::default(),
        alerts: None,
    })
}

#[tokio::test]
async fn when_the_database_is_away_a_stop_is_spooled_answered_and_replayed() {
    let app = TestApp::spawn_with(&[], false).await;
    // Create the contact first (so the replay has something to suppress).
    let params = inbound("SM00000000000000000000000000000007", PHONE, "hello");
    assert_eq!(
        app.twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
            .await
            .status(),
        200
    );

    // The database goes away.
    if let Some(pool) = app.core.db.sqlite_pool() {
        pool.close().await;
    } else if let Some(pool) = app.core.db.postgres_pool() {
        pool.close().await;
    }
    let stop = inbound("SM00000000000000000000000000000008", PHONE, "STOP");
    let res = app
        .twilio_post("/webhooks/twilio/inbound", &as_refs(&stop))
        .await;
    assert_eq!(res.status(), 200, "the webhook still answers");
    assert!(
        heimdall_domain::store::spool::spool_pending(&app.core),
        "the event is in the spool"
    );

    // The database returns (a new connection, as after a restart): replay.
    let core2 = reconnected(&app).await;
    let replayed = heimdall_domain::inbound::replay_spool(&core2)
        .await
        .unwrap();
    assert_eq!(replayed, 1);
    assert!(!heimdall_domain::store::spool::spool_pending(&core2));
    let c = contact::Entity::find()
        .one(&core2.db.conn)
        .await
        .unwrap()
        .unwrap();
    let s = heimdall_domain::consent::active_suppression(
        &core2.db.conn,
        &c.id,
        heimdall_domain::Channel::WhatsApp,
    )
    .await
    .unwrap();
    assert!(s.is_some(), "the STOP was applied on replay");
    // The audit log has the replayed event.
    let replayed_rows = webhook_audit::Entity::find()
        .filter(webhook_audit::Column::Replayed.eq(true))
        .count(&core2.db.conn)
        .await
        .unwrap();
    assert_eq!(replayed_rows, 1);
}

/// Meta's events and Twilio's status callbacks while the database is
/// away: answered, spooled, and the STOP applied on replay.
#[tokio::test]
async fn when_the_database_is_away_meta_events_and_status_callbacks_are_spooled() {
    let app = TestApp::spawn_with(&[], false).await;
    let meta_post = |body: Vec<u8>| {
        app.http
            .post(app.url("/webhooks/meta"))
            .header(
                "X-Hub-Signature-256",
                heimdall_domain::signature::meta_signature(support::APP_SECRET, &body),
            )
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };
    // The person writes first (the contact exists for the replay).
    assert_eq!(
        meta_post(meta_body("wamid.HELLO", "hello"))
            .await
            .unwrap()
            .status(),
        200
    );
    if let Some(pool) = app.core.db.sqlite_pool() {
        pool.close().await;
    } else if let Some(pool) = app.core.db.postgres_pool() {
        pool.close().await;
    }
    let stop = meta_post(meta_body("wamid.STOP", "STOP")).await.unwrap();
    assert_eq!(stop.status(), 200, "Meta's webhook still answers");
    let status = app
        .twilio_post(
            "/webhooks/twilio/status",
            &[
                ("MessageSid", "SM00000000000000000000000000000099"),
                ("MessageStatus", "delivered"),
            ],
        )
        .await;
    assert_eq!(
        status.status(),
        204,
        "Twilio's status callback still answers"
    );
    assert!(heimdall_domain::store::spool::spool_pending(&app.core));

    let core2 = reconnected(&app).await;
    let replayed = heimdall_domain::inbound::replay_spool(&core2)
        .await
        .unwrap();
    assert!(
        replayed >= 2,
        "the STOP and the status at least: {replayed}"
    );
    assert!(!heimdall_domain::store::spool::spool_pending(&core2));
    let c = contact::Entity::find()
        .one(&core2.db.conn)
        .await
        .unwrap()
        .unwrap();
    let s = heimdall_domain::consent::active_suppression(
        &core2.db.conn,
        &c.id,
        heimdall_domain::Channel::WhatsApp,
    )
    .await
    .unwrap();
    assert!(s.is_some(), "Meta's STOP was applied on replay");
}

fn meta_body(wamid: &str, text: &str) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "14155238886", "phone_number_id": "100000000000001"},
            "contacts": [{"profile": {"name": "Kari"}, "wa_id": "4791234567"}],
            "messages": [{"from": "4791234567", "id": wamid, "timestamp": "1700000000", "type": "text", "text": {"body": text}}]
        }}]}]
    }))
    .unwrap()
}

#[tokio::test]
async fn meta_handshake_and_signed_events() {
    let app = TestApp::spawn(&[]).await;
    let ok = app
        .http
        .get(app.url(&format!(
            "/webhooks/meta?hub.mode=subscribe&hub.verify_token={}&hub.challenge=12345",
            support::VERIFY_TOKEN
        )))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "12345");
    let bad = app
        .http
        .get(
            app.url("/webhooks/whatsapp?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 403);

    let body = meta_body("wamid.AAA", "STOP");
    let unsigned = app
        .http
        .post(app.url("/webhooks/meta"))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 403);
    let wrong = app
        .http
        .post(app.url("/webhooks/meta"))
        .header(
            "X-Hub-Signature-256",
            heimdall_domain::signature::meta_signature("other-secret", &body),
        )
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 403);
    assert_eq!(count_inbound(&app).await, 0);
    let signed = app
        .http
        .post(app.url("/webhooks/meta"))
        .header(
            "X-Hub-Signature-256",
            heimdall_domain::signature::meta_signature(support::APP_SECRET, &body),
        )
        .header("Content-Type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(signed.status(), 200);
    assert_eq!(count_inbound(&app).await, 1);
    assert_eq!(
        suppression::Entity::find()
            .count(&app.core.db.conn)
            .await
            .unwrap(),
        1
    );
    // Malformed JSON with a valid signature: 400.
    let junk = b"{not json".to_vec();
    let res = app
        .http
        .post(app.url("/webhooks/meta"))
        .header(
            "X-Hub-Signature-256",
            heimdall_domain::signature::meta_signature(support::APP_SECRET, &junk),
        )
        .body(junk)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A messaging-limit change updates the tier.
    let cap = serde_json::to_vec(&json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "business_capability_update", "value": {"max_daily_conversations_per_business": "TIER_2K"}}]}]})).unwrap();
    let res = app
        .http
        .post(app.url("/webhooks/meta"))
        .header(
            "X-Hub-Signature-256",
            heimdall_domain::signature::meta_signature(support::APP_SECRET, &cap),
        )
        .body(cap)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.core.limits.tier_limit(), Some(2000));
    app.shutdown().await;
}

#[tokio::test]
async fn a_stop_from_outside_the_phone_allowlist_is_honoured_and_nothing_else_is() {
    let app = TestApp::spawn(&[("HEIMDALL_PHONE_ALLOWLIST", "+4791111111, +4792222222")]).await;
    // A STOP from a number outside the list is honoured: suppressed before
    // the webhook answers (the allowlist must never drop an opt-out).
    let params = inbound("SM00000000000000000000000000000009", PHONE, "STOP");
    assert_eq!(
        app.twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
            .await
            .status(),
        200
    );
    let c = contact::Entity::find()
        .filter(contact::Column::PhoneE164.eq(PHONE))
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .expect("the contact");
    let active = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(&c.id))
        .filter(suppression::Column::LiftedAt.is_null())
        .count(&app.core.db.conn)
        .await
        .unwrap();
    assert_eq!(active, 1);
    assert_eq!(count_inbound(&app).await, 1);
    // The STOP confirmation itself goes nowhere outside the list.
    let reply = heimdall_domain::entities::outbound_message::Entity::find()
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .expect("the keyword reply is recorded");
    assert_eq!(reply.state, MessageState::Blocked);
    assert_eq!(reply.block_reason.as_deref(), Some("not_allowlisted"));
    // Anything else from outside the list is only logged.
    let params = inbound("SM00000000000000000000000000000011", "+4793333333", "hi");
    assert_eq!(
        app.twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
            .await
            .status(),
        200
    );
    assert_eq!(count_inbound(&app).await, 1);
    // A listed number is handled as usual.
    let params = inbound("SM00000000000000000000000000000010", "+4791111111", "hi");
    assert_eq!(
        app.twilio_post("/webhooks/twilio/inbound", &as_refs(&params))
            .await
            .status(),
        200
    );
    assert_eq!(count_inbound(&app).await, 2);
    assert!(verdicts(&app).await.contains(&"ignored".to_string()));
    app.shutdown().await;
}

/// Finding 8: the seed-compatible send answers `success: false` with the
/// provider's code when the provider refused the message (it used to say
/// `success: true` with no sid).
#[tokio::test]
async fn the_seed_send_says_success_false_with_the_providers_code_when_the_send_failed() {
    // The bootstrap key is authorized for the template registered from
    // settings: the sandbox's own Content SID for it.
    let sid = heimdall_sandbox::templates::content_sid("task_reminder");
    let (sandbox, app) =
        support::app_with_sandbox(&[("WA_TEMPLATE_TASK_REMINDER", sid.as_str())]).await;
    let a = &app;
    let send_to = |phone: &'static str| async move {
        let c: serde_json::Value = a
            .api_post("/api/v1/contacts", json!({"phone": phone}))
            .await
            .json()
            .await
            .unwrap();
        let id = c["id"].as_str().unwrap().to_string();
        let res = a
            .api_post(
                &format!("/api/v1/contacts/{id}/consents"),
                json!({"channel": "whatsapp", "source": "api", "evidence": {"ip": "203.0.113.9", "user_agent": "test", "consent_text_version": "v1"}}),
            )
            .await;
        assert_eq!(res.status(), 201);
        a.api_post(
            "/api/whatsapp/send",
            json!({"user_id": id, "template_name": "task_reminder", "variables": {"task_name": "Call Bob", "due_time": "17:00"}}),
        )
        .await
    };
    // Twilio's magic number for an invalid 'To': the provider refuses it.
    let res = send_to("+15005550001").await;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["state"], "failed", "{body}");
    assert_eq!(body["error"]["code"], "provider_error", "{body}");
    assert_eq!(body["error"]["provider_code"], 21211, "{body}");
    assert!(body["message_sid"].is_null(), "{body}");
    // Its passing twin: success with the provider's sid.
    let res = send_to("+4791234567").await;
    let status = res.status();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["success"], true, "{body}");
    assert!(
        body["message_sid"].as_str().unwrap().starts_with("SM"),
        "{body}"
    );
    app.shutdown().await;
    sandbox.stop().await;
}

/// Security finding 3: a flood of forged webhooks (bad signatures, big
/// bodies) stays bounded on disk: each refused request keeps at most a few
/// KiB of its body (with its hash), at most a few per address per minute
/// are recorded, and old audit rows are pruned by age.
#[tokio::test]
async fn a_flood_of_refused_webhooks_stays_bounded_on_disk() {
    let app = TestApp::spawn(&[]).await;
    let big = "Body=".to_string() + &"A".repeat(60 * 1024);
    let started = std::time::Instant::now();
    for _ in 0..120 {
        let res = app
            .http
            .post(app.url("/webhooks/twilio/inbound"))
            .header("X-Twilio-Signature", "forged")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(big.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
    let rows = webhook_audit::Entity::find()
        .all(&app.core.db.conn)
        .await
        .unwrap();
    assert!(!rows.is_empty(), "refused requests are recorded");
    // The limit is a rate (GCRA): a burst of REFUSED_PER_MINUTE, then one
    // more each 60 / REFUSED_PER_MINUTE seconds the flood lasts.
    let per_minute = heimdall_domain::inbound::REFUSED_PER_MINUTE;
    let refilled = (started.elapsed().as_secs_f64() * f64::from(per_minute) / 60.0).ceil() as u32;
    assert!(
        rows.len() as u32 <= per_minute + refilled,
        "{} rows for one address in {:?} (at most {per_minute} and {refilled} refilled)",
        rows.len(),
        started.elapsed()
    );
    assert!(rows.len() < 120, "the flood was bounded");
    for r in &rows {
        assert_eq!(r.verdict, "bad_signature");
        assert!(r.body.len() < 2 * 1024 + 200, "{} bytes kept", r.body.len());
        assert!(
            r.body.contains("61445 bytes, sha256 "),
            "{}",
            &r.body[..100]
        );
    }
    let kept: usize = rows.iter().map(|r| r.body.len()).sum();
    assert!(kept < 100 * 1024, "{kept} bytes for 120 x 60 KiB refused");
    // Nothing was spooled to disk for them either.
    assert!(!heimdall_domain::store::spool::spool_pending(&app.core));

    // Housekeeping prunes audit rows older than the setting (30 days).
    let old = app.core.now() - chrono::Duration::days(31);
    webhook_audit::Entity::update_many()
        .col_expr(
            webhook_audit::Column::ReceivedAt,
            sea_orm::sea_query::Expr::value(old),
        )
        .exec(&app.core.db.conn)
        .await
        .unwrap();
    let summary = heimdall_domain::housekeeping::execute(
        &app.core,
        heimdall_domain::housekeeping::Job::ApplyRetention,
    )
    .await
    .unwrap();
    assert!(
        summary.contains(&format!("webhook_audit {}", rows.len())),
        "{summary}"
    );
    assert_eq!(
        webhook_audit::Entity::find()
            .count(&app.core.db.conn)
            .await
            .unwrap(),
        0
    );
    app.shutdown().await;
}

/// Security finding 8: `/metrics` behind a bearer token when one is set.
#[tokio::test]
async fn metrics_need_the_token_when_one_is_set() {
    let app = TestApp::spawn(&[("HEIMDALL_METRICS_TOKEN", "metrics-token-for-tests")]).await;
    let url = app.url("/metrics");
    let res = app.http.get(&url).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(&url)
        .bearer_auth("wrong-token-for-tests!!")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = app
        .http
        .get(&url)
        .bearer_auth("metrics-token-for-tests")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("http_request_duration_seconds"));
    app.shutdown().await;
    // Without a token, reachable from elsewhere: refused, saying what to set.
    let app = TestApp::spawn(&[("HEIMDALL_PUBLIC_URL", "https://heimdall.example.com")]).await;
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("HEIMDALL_METRICS_TOKEN"));
    app.shutdown().await;
}

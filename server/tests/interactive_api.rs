//! Quick-reply buttons and lists from `POST /api/v1/messages`, end to end against the
//! sandbox standing in for Twilio: inside the 24-hour window they reach the sandbox as a
//! Content API resource sent by its ContentSid; outside it they are refused `outside_window`;
//! malformed ones, keyword ids and SMS are refused 400 and record nothing.

mod support;

use std::time::{Duration, Instant};

use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};
use support::{inbound, TestApp};

use heimdall_domain::entities::outbound_message;

const PERSON: &str = "+4791234570";
const SILENT: &str = "+4791234571";

async fn consenting_contact(app: &TestApp, phone: &str) {
    let c: Value = app
        .api_post("/api/v1/contacts", json!({"phone": phone}))
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
}

async fn stored(app: &TestApp) -> u64 {
    outbound_message::Entity::find()
        .count(&app.core.db.conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn buttons_go_through_the_api_inside_the_window_only() {
    // The bootstrap key's automation may answer in the window.
    let (sandbox, app) = support::app_with_sandbox(&[("HEIMDALL_API_KEY_FREE_FORM", "true")]).await;
    consenting_contact(&app, PERSON).await;
    consenting_contact(&app, SILENT).await;
    // The person writes: their window opens.
    let res = app
        .twilio_post(
            "/webhooks/twilio/inbound",
            &support::as_refs(&inbound("SMwrote1", PERSON, "Can I move my appointment?")),
        )
        .await;
    assert_eq!(res.status(), 200);

    let buttons = json!({"type": "buttons", "body": "Which day suits you?", "buttons": [
        {"id": "day-mon", "title": "Monday"}, {"id": "day-tue", "title": "Tuesday"}]});

    // Refused before anything is recorded: a fourth button, an id that reads as YES under
    // another title, SMS, media with buttons, two kinds of content at once.
    let before = stored(&app).await;
    let four = json!({"type": "buttons", "body": "Pick", "buttons": [
        {"id": "a", "title": "A"}, {"id": "b", "title": "B"}, {"id": "c", "title": "C"}, {"id": "d", "title": "D"}]});
    let keyword = json!({"type": "buttons", "body": "More?", "buttons": [{"id": "YES", "title": "Tell me more"}]});
    for (body, says) in [
        (json!({"to": PERSON, "interactive": four}), "1 to 3"),
        (json!({"to": PERSON, "interactive": keyword}), "keyword"),
        (
            json!({"to": PERSON, "channel": "sms", "interactive": buttons}),
            "WhatsApp only",
        ),
        (
            json!({"to": PERSON, "interactive": buttons, "media_url": "https://example.com/a.png"}),
            "media_url",
        ),
        (
            json!({"to": PERSON, "interactive": buttons, "text": "hi"}),
            "one of",
        ),
        (
            json!({"to": PERSON, "interactive": {"type": "carousel", "body": "x"}}),
            "",
        ),
    ] {
        let res = app.api_post("/api/v1/messages", body.clone()).await;
        let status = res.status();
        let answer: Value = res.json().await.unwrap();
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(says),
            "{body} -> {answer}"
        );
    }
    assert_eq!(
        stored(&app).await,
        before,
        "nothing recorded for a refused request"
    );

    // Outside the window (this person never wrote): refused by the gate.
    let res = app
        .api_post(
            "/api/v1/messages",
            json!({"to": SILENT, "interactive": buttons}),
        )
        .await;
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "outside_window", "{answer}");

    // Inside the window: accepted, and the sandbox receives it as session content.
    let res = app
        .api_post(
            "/api/v1/messages",
            json!({"to": PERSON, "interactive": buttons}),
        )
        .await;
    let status = res.status();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{answer}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let sent = loop {
        let found = sandbox
            .state()
            .messages()
            .into_iter()
            .find(|m| m.to == format!("whatsapp:{PERSON}") && m.content_sid.is_some());
        if let Some(m) = found {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the buttons never reached the sandbox"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sent.body.as_deref(), Some("Which day suits you?"));
    let sid = sent.content_sid.unwrap();
    let content = sandbox
        .state()
        .templates()
        .into_iter()
        .find(|t| t.sid == sid)
        .expect("the Content resource");
    assert_eq!(
        content.types["twilio/quick-reply"]["actions"],
        json!([{"title": "Monday", "id": "day-mon"}, {"title": "Tuesday", "id": "day-tue"}])
    );
    // The message view says what it was.
    let id = answer["message_id"].as_str().unwrap();
    let view: Value = app
        .api_get(&format!("/api/v1/messages/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(view["kind"], "interactive", "{view}");
    assert_eq!(view["interactive"], buttons, "{view}");
    app.shutdown().await;
    sandbox.stop().await;
}

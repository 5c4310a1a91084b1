//! Quick-reply buttons and lists as each provider takes them, over real HTTP against the
//! sandbox: Twilio through a Content API resource made for the session (`twilio/quick-reply`,
//! `twilio/list-picker`) and sent by its ContentSid, made once for the same content; Meta as
//! an `interactive` message.

mod common;

use common::sandbox;
use heimdall_domain::channels::interactive::{Interactive, InteractiveSpec};
use heimdall_domain::channels::meta::MetaClient;
use heimdall_domain::channels::twilio::{
    default_http_client, TwilioClient, SESSION_CONTENT_PREFIX,
};
use heimdall_domain::channels::{Content, MessageProvider, OutboundRequest};
use heimdall_domain::{Channel, PhoneNumber};
use heimdall_sandbox::magic::*;
use serde_json::json;

fn request(from: &str, content: Interactive) -> OutboundRequest {
    OutboundRequest {
        message_id: "msg-1".into(),
        channel: Channel::WhatsApp,
        to: PhoneNumber::parse("+14155550101", phonenumber::country::Id::US).unwrap(),
        from: from.into(),
        content: Content::Interactive(content),
        status_callback: None,
        reply_to: None,
    }
}

fn buttons() -> Interactive {
    InteractiveSpec::from_choices("Did you finish it?", &["Done".into(), "Later".into()], None)
        .parse()
        .unwrap()
}

fn list() -> Interactive {
    serde_json::from_value::<InteractiveSpec>(json!({
        "type": "list", "body": "Which slot?", "button": "Slots",
        "sections": [
            {"title": "Monday", "rows": [{"id": "mon", "title": "09:00", "description": "with Kim"}]},
            {"title": "Tuesday", "rows": [{"id": "tue", "title": "10:00"}]}
        ]
    }))
    .unwrap()
    .parse()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twilio_sends_buttons_and_lists_as_session_content() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let first = client
        .send(&request(FROM_VALID, buttons()))
        .await
        .expect("accepted");
    let m = sb.state().message(&first.sid).expect("recorded");
    let sid = m.content_sid.clone().expect("sent by ContentSid");
    assert_eq!(m.body.as_deref(), Some("Did you finish it?"));
    let content = sb
        .state()
        .templates()
        .into_iter()
        .find(|t| t.sid == sid)
        .expect("the Content resource exists");
    assert!(content.friendly_name.starts_with(SESSION_CONTENT_PREFIX));
    assert_eq!(
        content.types["twilio/quick-reply"]["actions"],
        json!([{"title": "Done", "id": "choice-1"}, {"title": "Later", "id": "choice-2"}])
    );

    // The same buttons again: the same resource, not a new one.
    let count = |sb: &heimdall_sandbox::SandboxHandle| {
        sb.state()
            .templates()
            .iter()
            .filter(|t| t.friendly_name.starts_with(SESSION_CONTENT_PREFIX))
            .count()
    };
    let second = client
        .send(&request(FROM_VALID, buttons()))
        .await
        .expect("accepted");
    assert_eq!(
        sb.state()
            .message(&second.sid)
            .unwrap()
            .content_sid
            .as_deref(),
        Some(sid.as_str())
    );
    assert_eq!(count(&sb), 1);

    // A list: Twilio's list picker has no sections, so the rows go in order.
    let third = client
        .send(&request(FROM_VALID, list()))
        .await
        .expect("accepted");
    let sid = sb.state().message(&third.sid).unwrap().content_sid.unwrap();
    let content = sb
        .state()
        .templates()
        .into_iter()
        .find(|t| t.sid == sid)
        .unwrap();
    let picker = &content.types["twilio/list-picker"];
    assert_eq!(picker["button"], "Slots");
    assert_eq!(
        picker["items"],
        json!([
            {"item": "09:00", "id": "mon", "description": "with Kim"},
            {"item": "10:00", "id": "tue"}
        ])
    );
    assert_eq!(count(&sb), 2);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_sends_buttons_and_lists_as_interactive_messages() {
    let sb = sandbox().await;
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let phone_id = client.phone_number_id().to_string();
    let a = client
        .send(&request(&phone_id, buttons()))
        .await
        .expect("accepted");
    let sent = sb.state().message(&a.sid).unwrap().request.unwrap();
    assert_eq!(sent["type"], "interactive");
    assert_eq!(sent["interactive"]["type"], "button");
    assert_eq!(
        sent["interactive"]["action"]["buttons"][1],
        json!({"type": "reply", "reply": {"id": "choice-2", "title": "Later"}})
    );
    let b = client
        .send(&request(&phone_id, list()))
        .await
        .expect("accepted");
    let sent = sb.state().message(&b.sid).unwrap().request.unwrap();
    assert_eq!(sent["interactive"]["type"], "list");
    assert_eq!(sent["interactive"]["action"]["button"], "Slots");
    assert_eq!(
        sent["interactive"]["action"]["sections"][1]["title"],
        "Tuesday"
    );
    assert_eq!(
        sent["interactive"]["action"]["sections"][0]["rows"][0]["description"],
        "with Kim"
    );
    sb.stop().await;
}

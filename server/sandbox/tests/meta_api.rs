//! Heimdall's Meta Cloud API client against the sandbox's Graph API, and the
//! sandbox's signed status webhooks.

mod common;

use std::time::Duration;

use common::{sandbox, wait_for, Receiver};
use heimdall_domain::channels::formatting::{ListMessage, ListRow, ListSection, QuickReplies};
use heimdall_domain::channels::meta::{Interactive, MetaClient};
use heimdall_domain::channels::twilio::default_http_client;
use heimdall_domain::channels::{Content, MessageProvider, OutboundRequest, Rejected};
use heimdall_domain::compliance::provider_errors::ProviderFailure;
use heimdall_domain::signature::verify_meta_signature;
use heimdall_domain::{Channel, PhoneNumber};
use heimdall_sandbox::magic::TO_META_131026;
use heimdall_sandbox::{DEFAULT_META_TOKEN, DEFAULT_PHONE_NUMBER_ID};
use secrecy::SecretString;
use serde_json::{json, Value};

fn to(n: &str) -> PhoneNumber {
    PhoneNumber::parse(n, phonenumber::country::Id::US).expect("valid")
}

fn request(content: Content, reply_to: Option<&str>) -> OutboundRequest {
    OutboundRequest {
        message_id: "m-1".into(),
        channel: Channel::WhatsApp,
        to: to("+14155550101"),
        from: DEFAULT_PHONE_NUMBER_ID.into(),
        content,
        status_callback: None,
        reply_to: reply_to.map(str::to_owned),
    }
}

fn template(name: &str, language: &str, values: &[&str]) -> Content {
    Content::Template {
        name: name.into(),
        provider_id: name.into(),
        language: language.into(),
        positional: values.iter().map(|v| v.to_string()).collect(),
    }
}

fn code_of(r: &Rejected) -> (i64, Option<u16>) {
    match r.failure {
        ProviderFailure::Code { code, http_status } => (code, http_status),
        ref other => panic!("expected a coded failure, got {other:?} ({})", r.message),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_with_reply_context_is_accepted() {
    let sb = sandbox().await;
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let accepted = client
        .send(&request(
            Content::Text {
                body: "Hello from Heimdall".into(),
                media_url: None,
            },
            Some("wamid.PREVIOUS"),
        ))
        .await
        .expect("accepted");
    assert_eq!(accepted.provider, "meta");
    assert!(accepted.sid.starts_with("wamid."));
    assert_eq!(accepted.status, "accepted");
    assert_eq!(accepted.price, None);
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.provider, "meta");
    assert_eq!(m.to, "+14155550101");
    assert_eq!(m.body.as_deref(), Some("Hello from Heimdall"));
    assert_eq!(m.reply_to.as_deref(), Some("wamid.PREVIOUS"));
    let sent = m.request.expect("request body");
    assert_eq!(sent["to"], "14155550101");
    assert_eq!(sent["recipient_type"], "individual");
    assert_eq!(sent["text"]["preview_url"], false);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_goes_as_an_image() {
    let sb = sandbox().await;
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let accepted = client
        .send(&request(
            Content::Text {
                body: "the chart".into(),
                media_url: Some("https://example.com/chart.png".into()),
            },
            None,
        ))
        .await
        .expect("accepted");
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.media_urls, vec!["https://example.com/chart.png"]);
    assert_eq!(m.body.as_deref(), Some("the chart"));
    assert_eq!(m.request.expect("request")["type"], "image");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_checked_like_meta_does() {
    let sb = sandbox().await;
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let accepted = client
        .send(&request(
            template("task_reminder", "en", &["Call Bob", "17:00"]),
            None,
        ))
        .await
        .expect("accepted");
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.template_name.as_deref(), Some("task_reminder"));
    assert_eq!(m.variables.get("2").map(String::as_str), Some("17:00"));
    assert_eq!(
        m.body.as_deref(),
        Some("Reminder: Call Bob is due at 17:00.")
    );

    let err = client
        .send(&request(
            template("task_reminder", "en", &["only one"]),
            None,
        ))
        .await
        .expect_err("count mismatch");
    assert_eq!(code_of(&err).0, 132000);
    assert!(
        err.message.contains("number of localizable_params (1)"),
        "{}",
        err.message
    );

    let err = client
        .send(&request(template("task_reminder", "de", &["a", "b"]), None))
        .await
        .expect_err("no such translation");
    assert_eq!(code_of(&err).0, 132001);

    let err = client
        .send(&request(template("no_such_template", "en", &[]), None))
        .await
        .expect_err("unknown");
    assert_eq!(code_of(&err).0, 132001);

    let err = client
        .send(&request(template("paused_notice", "en", &["x"]), None))
        .await
        .expect_err("paused");
    assert_eq!(code_of(&err), (132015, Some(400)));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_buttons_and_lists() {
    let sb = sandbox().await;
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let buttons = QuickReplies::new(
        "Did you finish it?",
        vec![
            ("done".into(), "Done".into()),
            ("later".into(), "Later".into()),
        ],
    )
    .expect("valid");
    let a = client
        .send_interactive(&to("+14155550101"), Interactive::Buttons(&buttons), None)
        .await
        .expect("accepted");
    let sent = sb
        .state()
        .message(&a.sid)
        .expect("recorded")
        .request
        .expect("body");
    assert_eq!(sent["type"], "interactive");
    assert_eq!(sent["interactive"]["type"], "button");
    assert_eq!(
        sent["interactive"]["action"]["buttons"][0],
        json!({"type": "reply", "reply": {"id": "done", "title": "Done"}})
    );

    let list = ListMessage::new(
        "Which task?",
        "Tasks",
        vec![ListSection::new(
            None,
            vec![
                ListRow::new("t1", "Report", Some("due today".into())),
                ListRow::new("t2", "Taxes", None),
            ],
        )],
    )
    .expect("valid");
    let b = client
        .send_interactive(
            &to("+14155550101"),
            Interactive::List(&list),
            Some("wamid.Q"),
        )
        .await
        .expect("accepted");
    let m = sb.state().message(&b.sid).expect("recorded");
    assert_eq!(m.body.as_deref(), Some("Which task?"));
    assert_eq!(m.reply_to.as_deref(), Some("wamid.Q"));
    let sent = m.request.expect("body");
    assert_eq!(sent["interactive"]["action"]["button"], "Tasks");
    assert_eq!(
        sent["interactive"]["action"]["sections"][0]["rows"][1]["id"],
        "t2"
    );

    // The sandbox refuses a malformed interactive message as Meta would.
    let response = reqwest::Client::new()
        .post(format!(
            "{}v21.0/{DEFAULT_PHONE_NUMBER_ID}/messages",
            sb.base_url()
        ))
        .bearer_auth(DEFAULT_META_TOKEN)
        .json(&json!({
            "messaging_product": "whatsapp", "to": "14155550101", "type": "interactive",
            "interactive": {"type": "button", "body": {"text": "x"}, "action": {"buttons": []}}
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], 131009);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mark_as_read_is_recorded() {
    let sb = sandbox().await;
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    client.mark_as_read("wamid.INBOUND1").await.expect("marked");
    assert_eq!(sb.state().read_receipts(), vec!["wamid.INBOUND1"]);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_is_190_and_never_echoed() {
    let sb = sandbox().await;
    let mut settings = sb.meta_settings();
    settings.access_token = SecretString::from("EAA-wrong-token");
    let client = MetaClient::new(&settings, default_http_client());
    let err = client
        .send(&request(
            Content::Text {
                body: "x".into(),
                media_url: None,
            },
            None,
        ))
        .await
        .expect_err("refused");
    assert_eq!(code_of(&err), (190, Some(401)));
    assert!(err.message.contains("Invalid OAuth access token"));
    assert!(!err.message.contains("EAA-wrong-token"));
    let err = client.mark_as_read("wamid.X").await.expect_err("refused");
    assert_eq!(code_of(&err).0, 190);
    // A phone number id that is not ours.
    let mut settings = sb.meta_settings();
    settings.phone_number_id = "999".into();
    let client = MetaClient::new(&settings, default_http_client());
    let err = client
        .mark_as_read("wamid.X")
        .await
        .expect_err("unknown id");
    assert_eq!(code_of(&err), (100, Some(400)));
    assert!(sb.state().messages().is_empty());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_webhooks_are_signed_and_shaped_like_meta() {
    let sb = sandbox().await;
    let receiver = Receiver::start().await;
    sb.set_heimdall_url(receiver.base.clone());
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let accepted = client
        .send(&request(
            Content::Text {
                body: "x".into(),
                media_url: None,
            },
            None,
        ))
        .await
        .expect("accepted");
    let hooks = wait_for("three status webhooks", Duration::from_secs(10), || {
        let hooks = receiver.requests();
        (hooks.len() >= 3).then_some(hooks)
    })
    .await;
    let mut seen = Vec::new();
    for h in &hooks {
        assert_eq!(h.path_and_query, "/webhooks/meta");
        let signature = h.header("x-hub-signature-256").expect("signed");
        assert!(verify_meta_signature(
            sb.meta_app_secret(),
            &h.body,
            signature
        ));
        assert!(!verify_meta_signature("other-secret", &h.body, signature));
        let body = h.json();
        assert_eq!(body["object"], "whatsapp_business_account");
        let change = &body["entry"][0]["changes"][0];
        assert_eq!(change["field"], "messages");
        assert_eq!(change["value"]["messaging_product"], "whatsapp");
        assert_eq!(
            change["value"]["metadata"]["phone_number_id"],
            DEFAULT_PHONE_NUMBER_ID
        );
        let status = &change["value"]["statuses"][0];
        assert_eq!(status["id"], accepted.sid.as_str());
        assert_eq!(status["recipient_id"], "14155550101");
        assert!(status["timestamp"]
            .as_str()
            .is_some_and(|t| t.parse::<i64>().is_ok()));
        seen.push(status["status"].as_str().expect("status").to_string());
    }
    assert_eq!(seen, ["sent", "delivered", "read"]);
    receiver.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meta_failure_recipient_gets_a_failed_webhook() {
    let sb = sandbox().await;
    let receiver = Receiver::start().await;
    sb.set_heimdall_url(receiver.base.clone());
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let mut r = request(
        Content::Text {
            body: "x".into(),
            media_url: None,
        },
        None,
    );
    r.to = to(TO_META_131026);
    let accepted = client.send(&r).await.expect("accepted at first");
    let hook = wait_for("failed webhook", Duration::from_secs(10), || {
        receiver.requests().into_iter().next()
    })
    .await;
    let status = hook.json()["entry"][0]["changes"][0]["value"]["statuses"][0].clone();
    assert_eq!(status["id"], accepted.sid.as_str());
    assert_eq!(status["status"], "failed");
    assert_eq!(status["errors"][0]["code"], 131026);
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.error_code, Some(131026));
    receiver.stop().await;
    sb.stop().await;
}

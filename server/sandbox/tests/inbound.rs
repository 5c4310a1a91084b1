//! Playing the person: `POST /sandbox/inbound` sends Heimdall the request
//! Twilio (or Meta) would, signed with the right secret over the right URL.

mod common;

use common::{closed_port, sandbox, Receiver};
use heimdall_domain::signature::{verify_meta_signature, verify_twilio_signature};
use heimdall_sandbox::{
    SandboxHandle, DEFAULT_ACCOUNT_SID, DEFAULT_SMS_NUMBER, DEFAULT_WHATSAPP_NUMBER,
};
use serde_json::{json, Value};

async fn play(sb: &SandboxHandle, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}sandbox/inbound", sb.base_url()))
        .json(&body)
        .send()
        .await
        .expect("POST");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_stop_arrives_signed_like_twilio() {
    let sb = sandbox().await;
    let heimdall = Receiver::start().await;
    sb.set_heimdall_url(heimdall.base.clone());
    let (status, answer) = play(
        &sb,
        json!({"from": "+14155550101", "body": "STOP", "profile_name": "Ada"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["status"], 200);
    assert!(answer["response_body"]
        .as_str()
        .is_some_and(|b| b.contains("<Response>")));
    let sid = answer["message_sid"].as_str().expect("sid").to_string();
    assert!(sid.starts_with("SM") && sid.len() == 34);

    let requests = heimdall.requests();
    assert_eq!(requests.len(), 1);
    let r = &requests[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path_and_query, "/webhooks/twilio/inbound");
    let url = heimdall.url("/webhooks/twilio/inbound");
    let signature = r.header("x-twilio-signature").expect("signed");
    assert!(verify_twilio_signature(
        sb.auth_token(),
        &url,
        &r.form(),
        signature
    ));
    assert!(!verify_twilio_signature(
        sb.auth_token(),
        &heimdall.url("/webhooks/twilio/status"),
        &r.form(),
        signature
    ));
    assert_eq!(r.param("From").as_deref(), Some("whatsapp:+14155550101"));
    assert_eq!(
        r.param("To"),
        Some(format!("whatsapp:{DEFAULT_WHATSAPP_NUMBER}"))
    );
    assert_eq!(r.param("Body").as_deref(), Some("STOP"));
    assert_eq!(r.param("WaId").as_deref(), Some("14155550101"));
    assert_eq!(r.param("ProfileName").as_deref(), Some("Ada"));
    assert_eq!(r.param("SmsStatus").as_deref(), Some("received"));
    assert_eq!(r.param("NumMedia").as_deref(), Some("0"));
    assert_eq!(r.param("MessageSid").as_deref(), Some(sid.as_str()));
    assert_eq!(r.param("SmsMessageSid").as_deref(), Some(sid.as_str()));
    assert_eq!(r.param("AccountSid").as_deref(), Some(DEFAULT_ACCOUNT_SID));
    assert_eq!(r.param("ApiVersion").as_deref(), Some("2010-04-01"));
    assert_eq!(r.param("ButtonText"), None);

    let m = sb.state().message(&sid).expect("recorded");
    assert_eq!(m.direction, "inbound");
    assert_eq!(m.body.as_deref(), Some("STOP"));
    heimdall.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_and_buttons_and_heimdalls_status_is_relayed() {
    let sb = sandbox().await;
    let heimdall = Receiver::answering(403, "forbidden").await;
    sb.set_heimdall_url(heimdall.base.clone());
    let (status, answer) = play(
        &sb,
        json!({"from": "(415) 555-0101", "body": "HELP", "channel": "sms"}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["status"], 403);
    assert_eq!(answer["response_body"], "forbidden");
    let (_, answer) = play(
        &sb,
        json!({"from": "+14155550101", "body": "", "button_text": "Done", "button_payload": "task:42:done"}),
    )
    .await;
    assert_eq!(answer["status"], 403);
    let requests = heimdall.requests();
    assert_eq!(requests.len(), 2);
    let sms = &requests[0];
    assert_eq!(sms.param("From").as_deref(), Some("+14155550101"));
    assert_eq!(sms.param("To").as_deref(), Some(DEFAULT_SMS_NUMBER));
    assert_eq!(sms.param("WaId"), None);
    assert_eq!(sms.param("FromCountry").as_deref(), Some("US"));
    let button = &requests[1];
    assert_eq!(button.param("ButtonText").as_deref(), Some("Done"));
    assert_eq!(
        button.param("ButtonPayload").as_deref(),
        Some("task:42:done")
    );
    assert_eq!(button.param("MessageType").as_deref(), Some("button"));
    let url = heimdall.url("/webhooks/twilio/inbound");
    for r in &requests {
        let signature = r.header("x-twilio-signature").expect("signed");
        assert!(verify_twilio_signature(
            sb.auth_token(),
            &url,
            &r.form(),
            signature
        ));
    }
    heimdall.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn meta_inbound_is_signed_with_the_app_secret() {
    let sb = sandbox().await;
    let heimdall = Receiver::start().await;
    sb.set_heimdall_url(heimdall.base.clone());
    let (status, answer) = play(
        &sb,
        json!({"from": "+14155550101", "body": "hello", "provider": "meta"}),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let wamid = answer["message_sid"].as_str().expect("id").to_string();
    assert!(wamid.starts_with("wamid."));
    let r = &heimdall.requests()[0];
    assert_eq!(r.path_and_query, "/webhooks/meta");
    let signature = r.header("x-hub-signature-256").expect("signed");
    assert!(verify_meta_signature(
        sb.meta_app_secret(),
        &r.body,
        signature
    ));
    let value = &r.json()["entry"][0]["changes"][0]["value"];
    assert_eq!(value["messages"][0]["id"], wamid.as_str());
    assert_eq!(value["messages"][0]["from"], "14155550101");
    assert_eq!(value["messages"][0]["text"]["body"], "hello");
    assert_eq!(value["contacts"][0]["wa_id"], "14155550101");
    heimdall.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_heimdall_or_with_bad_input_the_sandbox_says_why() {
    let sb = sandbox().await;
    let (status, answer) = play(&sb, json!({"from": "+14155550101", "body": "hi"})).await;
    assert_eq!(status, 502);
    assert_eq!(answer["error"]["code"], "heimdall_unknown");

    sb.set_heimdall_url(
        url::Url::parse(&format!("http://127.0.0.1:{}/", closed_port())).expect("url"),
    );
    let (status, answer) = play(&sb, json!({"from": "+14155550101", "body": "hi"})).await;
    assert_eq!(status, 502);
    assert_eq!(answer["error"]["code"], "heimdall_unreachable");

    let (status, answer) = play(&sb, json!({"from": "12", "body": "hi"})).await;
    assert_eq!(status, 400);
    assert_eq!(answer["error"]["code"], "invalid_number");
    let (status, _) = play(&sb, json!({"from": "+14155550101", "channel": "fax"})).await;
    assert_eq!(status, 400);
    sb.stop().await;
}

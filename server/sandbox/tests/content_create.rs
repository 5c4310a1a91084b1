//! Creating content through the sandbox's Content API, as Twilio documents
//! it: `POST /v1/Content` (any documented type, the ones Heimdall sends
//! checked field by field), `POST /v1/Content/{sid}/ApprovalRequests/whatsapp`,
//! `DELETE /v1/Content/{sid}`, with Twilio's error JSON for bad input.

mod common;

use std::collections::BTreeMap;

use common::sandbox;
use heimdall_domain::channels::twilio::{default_http_client, TwilioClient};
use heimdall_domain::compliance::provider_errors::ProviderFailure;
use heimdall_sandbox::{TemplateSpec, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN};
use serde_json::{json, Value};

fn samples(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

async fn post(base: &url::Url, path: &str, body: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .basic_auth(DEFAULT_ACCOUNT_SID, Some(DEFAULT_AUTH_TOKEN))
        .header("Content-Type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("sandbox answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_content_is_created_submitted_and_listed() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let created = client
        .create_content(
            "welcome_note",
            "en",
            &samples(&[("1", "Kari"), ("2", "Monday")]),
            json!({"twilio/text": {"body": "Hi {{1}}, see you {{2}}."}}),
        )
        .await
        .expect("created");
    assert!(
        created.sid.starts_with("HX") && created.sid.len() == 34,
        "{}",
        created.sid
    );
    assert_eq!(created.friendly_name, "welcome_note");
    assert_eq!(created.body.as_deref(), Some("Hi {{1}}, see you {{2}}."));
    assert_eq!(
        created.variables.get("2").map(String::as_str),
        Some("Monday")
    );

    // Not yet submitted.
    let before = client
        .approval_status(&created.sid)
        .await
        .expect("approval");
    assert_eq!(before.status, "unsubmitted");

    let submitted = client
        .submit_whatsapp_approval(&created.sid, "welcome_note", "UTILITY")
        .await
        .expect("submitted");
    assert_eq!(submitted.status, "received");
    assert_eq!(submitted.category.as_deref(), Some("UTILITY"));
    assert_eq!(submitted.name.as_deref(), Some("welcome_note"));
    let after = client
        .approval_status(&created.sid)
        .await
        .expect("approval");
    assert_eq!(after.status, "pending");

    // Submitting again while pending is refused.
    let again = client
        .submit_whatsapp_approval(&created.sid, "welcome_note", "UTILITY")
        .await
        .unwrap_err();
    assert!(
        matches!(
            again.failure,
            ProviderFailure::Code {
                code: 20001,
                http_status: Some(400)
            }
        ),
        "{again:?}"
    );

    // The control endpoint rejects it with a reason, as WhatsApp would.
    sb.state()
        .apply_template(TemplateSpec {
            name: "welcome_note".into(),
            status: Some("rejected".into()),
            rejection_reason: Some("INVALID_FORMAT".into()),
            ..Default::default()
        })
        .expect("rejected");
    let rejected = client
        .approval_status(&created.sid)
        .await
        .expect("approval");
    assert_eq!(rejected.status, "rejected");
    assert_eq!(rejected.rejection_reason.as_deref(), Some("INVALID_FORMAT"));

    let listed = client.list_content().await.expect("list");
    assert!(listed.iter().any(|c| c.sid == created.sid));

    client.delete_content(&created.sid).await.expect("deleted");
    let listed = client.list_content().await.expect("list");
    assert!(!listed.iter().any(|c| c.sid == created.sid));
    let gone = client.delete_content(&created.sid).await.unwrap_err();
    assert!(
        matches!(
            gone.failure,
            ProviderFailure::Code {
                code: 20404,
                http_status: Some(404)
            }
        ),
        "{gone:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_types_are_accepted_and_checked() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let quick = client
        .create_content(
            "",
            "en",
            &BTreeMap::new(),
            json!({"twilio/quick-reply": {"body": "Coming?", "actions": [
                {"title": "Yes", "id": "yes"}, {"title": "No", "id": "no"}
            ]}}),
        )
        .await
        .expect("quick reply");
    assert_eq!(quick.body.as_deref(), Some("Coming?"));
    assert_eq!(quick.types["twilio/quick-reply"]["actions"][1]["id"], "no");
    let list = client
        .create_content(
            "",
            "en",
            &BTreeMap::new(),
            json!({"twilio/list-picker": {"body": "Pick a time", "button": "Times", "items": [
                {"id": "t9", "item": "09:00", "description": "Morning"}
            ]}}),
        )
        .await
        .expect("list picker");
    assert_eq!(
        list.types["twilio/list-picker"]["items"][0]["item"],
        "09:00"
    );
    client
        .create_content(
            "",
            "en",
            &BTreeMap::new(),
            json!({"twilio/media": {"body": "Map", "media": ["https://example.com/a.png"]}}),
        )
        .await
        .expect("media");

    let long_title = "x".repeat(21);
    let long_item = "y".repeat(25);
    let eleven: Vec<Value> = (0..11)
        .map(|i| json!({"title": "t", "id": i.to_string()}))
        .collect();
    let bad = [
        json!({"twilio/text": {}}),
        json!({"twilio/text": {"body": "  "}}),
        json!({"twilio/quick-reply": {"body": "b", "actions": []}}),
        json!({"twilio/quick-reply": {"body": "b", "actions": eleven}}),
        json!({"twilio/quick-reply": {"body": "b", "actions": [{"title": long_title, "id": "a"}]}}),
        json!({"twilio/quick-reply": {"body": "b", "actions": [{"title": "ok"}]}}),
        json!({"twilio/quick-reply": {"actions": [{"title": "ok", "id": "a"}]}}),
        json!({"twilio/list-picker": {"body": "b", "items": [{"id": "a", "item": "i"}]}}),
        json!({"twilio/list-picker": {"body": "b", "button": "x".repeat(21), "items": [{"id": "a", "item": "i"}]}}),
        json!({"twilio/list-picker": {"body": "b", "button": "B", "items": [{"id": "a", "item": long_item}]}}),
        json!({"twilio/list-picker": {"body": "b", "button": "B", "items": [{"item": "i"}]}}),
        json!({"twilio/media": {"body": "b"}}),
        json!({"twilio/media": {"media": []}}),
        json!({"twilio/unknown": {"body": "b"}}),
    ];
    for types in bad {
        let err = client
            .create_content("", "en", &BTreeMap::new(), types.clone())
            .await
            .expect_err(&format!("{types} is refused"));
        assert!(
            matches!(
                err.failure,
                ProviderFailure::Code {
                    code: 20001,
                    http_status: Some(400)
                }
            ),
            "{types}: {err:?}"
        );
        assert!(!err.message.is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_twilio_error_json_and_change_nothing() {
    let sb = sandbox().await;
    let base = sb.base_url();
    let before = sb.state().templates().len();
    let cases = [
        ("not json", 20001),
        (
            r#"{"friendly_name": "x", "types": {"twilio/text": {"body": "b"}}}"#,
            92003,
        ),
        (
            r#"{"language": "english!", "types": {"twilio/text": {"body": "b"}}}"#,
            92004,
        ),
        (r#"{"language": "en"}"#, 92001),
        (r#"{"language": "en", "types": {}}"#, 92001),
        (
            r#"{"language": "en", "types": {"twilio/text": {"body": "b"}}, "variables": {"1": 5}}"#,
            20001,
        ),
    ];
    for (body, code) in cases {
        let (status, json) = post(&base, "v1/Content", body).await;
        assert_eq!(status, 400, "{body}: {json}");
        assert_eq!(json["code"], code, "{body}: {json}");
        assert_eq!(json["status"], 400);
        assert!(json["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert_eq!(
            json["more_info"],
            format!("https://www.twilio.com/docs/errors/{code}")
        );
    }
    assert_eq!(sb.state().templates().len(), before);

    // Without credentials: 401.
    let r = reqwest::Client::new()
        .post(format!("{base}v1/Content"))
        .body(r#"{"language": "en", "types": {"twilio/text": {"body": "b"}}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Approval requests: unknown content, bad name or category, a missing sample.
    let (status, created) = post(
        &base,
        "v1/Content",
        r#"{"language": "en", "types": {"twilio/text": {"body": "Hi {{1}}"}}}"#,
    )
    .await;
    assert_eq!(status, 201, "{created}");
    let sid = created["sid"].as_str().unwrap().to_string();
    let submit = format!("v1/Content/{sid}/ApprovalRequests/whatsapp");
    for (path, body, status, code) in [
        (
            "v1/Content/HX00000000000000000000000000000000/ApprovalRequests/whatsapp",
            r#"{"name": "a", "category": "UTILITY"}"#,
            404,
            20404,
        ),
        (
            submit.as_str(),
            r#"{"name": "Bad Name", "category": "UTILITY"}"#,
            400,
            20001,
        ),
        (
            submit.as_str(),
            r#"{"name": "ok", "category": "PROMO"}"#,
            400,
            20001,
        ),
        (
            submit.as_str(),
            r#"{"name": "ok", "category": "UTILITY"}"#,
            400,
            20001,
        ),
    ] {
        let (s, json) = post(&base, path, body).await;
        assert_eq!(
            (s, json["code"].as_i64()),
            (status, Some(code)),
            "{body}: {json}"
        );
    }
    let stored = sb
        .state()
        .templates()
        .into_iter()
        .find(|t| t.sid == sid)
        .unwrap();
    assert_eq!(stored.status, "unsubmitted");
}

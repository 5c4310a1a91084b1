//! Meta's message templates on the sandbox, through Heimdall's Meta client
//! and raw HTTP: create (PENDING), list with paging, review by the control
//! endpoint, and Graph error shapes for bad input.

mod common;

use common::sandbox;
use heimdall_domain::channels::meta::MetaClient;
use heimdall_domain::channels::twilio::default_http_client;
use heimdall_domain::compliance::provider_errors::ProviderFailure;
use heimdall_sandbox::{TemplateSpec, DEFAULT_META_TOKEN, DEFAULT_WABA_ID};
use serde_json::{json, Value};

async fn post(base: &url::Url, path: &str, token: &str, body: Value) -> (u16, Value) {
    let r = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("sandbox answers");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn templates_are_created_pending_listed_and_reviewed() {
    let sb = sandbox().await;
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    let created = client
        .create_template(
            "order_ready",
            "en_US",
            "UTILITY",
            "Hi {{1}}, order {{2}} is ready.",
            &["Kari".into(), "A-17".into()],
        )
        .await
        .expect("created");
    assert_eq!(created.status, "PENDING");
    assert_eq!(created.category, "UTILITY");
    assert!(
        created.id.bytes().all(|b| b.is_ascii_digit()),
        "{}",
        created.id
    );

    let listed = client.list_templates().await.expect("listed");
    let mine = listed.iter().find(|t| t.id == created.id).expect("listed");
    assert_eq!(mine.name, "order_ready");
    assert_eq!(mine.language, "en_US");
    assert_eq!(mine.status, "PENDING");
    assert_eq!(
        mine.body.as_deref(),
        Some("Hi {{1}}, order {{2}} is ready.")
    );
    assert_eq!(mine.examples, vec!["Kari", "A-17"]);
    assert_eq!(mine.rejected_reason, None);
    // The seeds are there too, and nothing made through Twilio's Content API.
    assert!(listed
        .iter()
        .any(|t| t.name == "task_reminder" && t.status == "APPROVED"));
    assert!(listed.len() >= 8, "{}", listed.len());

    sb.state()
        .apply_template(TemplateSpec {
            name: "order_ready".into(),
            status: Some("rejected".into()),
            rejection_reason: Some("INCORRECT_CATEGORY".into()),
            ..Default::default()
        })
        .expect("reviewed");
    let listed = client.list_templates().await.expect("listed");
    let mine = listed.iter().find(|t| t.id == created.id).expect("listed");
    assert_eq!(mine.status, "REJECTED");
    assert_eq!(mine.rejected_reason.as_deref(), Some("INCORRECT_CATEGORY"));

    // A second one with the same name and language is refused.
    let dup = client
        .create_template("order_ready", "en_US", "UTILITY", "Ready.", &[])
        .await
        .unwrap_err();
    assert!(
        matches!(
            dup.failure,
            ProviderFailure::Code {
                code: 100,
                http_status: Some(400)
            }
        ),
        "{dup:?}"
    );
    assert!(dup.message.contains("already exists"), "{}", dup.message);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_with_cursors_and_next() {
    let sb = sandbox().await;
    let base = sb.base_url();
    let r = reqwest::Client::new()
        .get(format!(
            "{base}v21.0/{DEFAULT_WABA_ID}/message_templates?limit=3"
        ))
        .bearer_auth(DEFAULT_META_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let page: Value = r.json().await.unwrap();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(3));
    let next = page["paging"]["next"]
        .as_str()
        .expect("a next page")
        .to_string();
    assert!(page["paging"]["cursors"]["after"].is_string());
    let second: Value = reqwest::Client::new()
        .get(&next)
        .bearer_auth(DEFAULT_META_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(second["data"].as_array().map(Vec::len), Some(3));
    assert_ne!(second["data"][0]["id"], page["data"][0]["id"]);
    // The domain client reads every page.
    let client = MetaClient::new(&sb.meta_settings(), default_http_client());
    assert_eq!(client.list_templates().await.unwrap().len(), 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_graph_errors_and_changes_nothing() {
    let sb = sandbox().await;
    let base = sb.base_url();
    let path = format!("v21.0/{DEFAULT_WABA_ID}/message_templates");
    let before = sb.state().templates().len();
    let body = |text: &str| json!([{"type": "BODY", "text": text}]);
    let cases = [
        json!({"language": "en", "category": "UTILITY", "components": body("x")}),
        json!({"name": "Bad Name", "language": "en", "category": "UTILITY", "components": body("x")}),
        json!({"name": "x".repeat(513), "language": "en", "category": "UTILITY", "components": body("x")}),
        json!({"name": "ok", "category": "UTILITY", "components": body("x")}),
        json!({"name": "ok", "language": "en", "category": "PROMO", "components": body("x")}),
        json!({"name": "ok", "language": "en", "category": "UTILITY", "components": []}),
        json!({"name": "ok", "language": "en", "category": "UTILITY", "components": body(&"y".repeat(1025))}),
        json!({"name": "ok", "language": "en", "category": "UTILITY", "components": body("Hi {{1}}")}),
        json!({"name": "ok", "language": "en", "category": "UTILITY", "components": [
            {"type": "BODY", "text": "Hi {{1}} {{2}}", "example": {"body_text": [["only one"]]}}
        ]}),
    ];
    for case in cases {
        let (status, json) = post(&base, &path, DEFAULT_META_TOKEN, case.clone()).await;
        assert_eq!(status, 400, "{case}: {json}");
        assert_eq!(json["error"]["code"], 100, "{case}: {json}");
        assert_eq!(json["error"]["type"], "OAuthException");
        assert!(
            json["error"]["error_user_msg"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{json}"
        );
        assert!(json["error"]["fbtrace_id"].is_string());
    }
    assert_eq!(sb.state().templates().len(), before);

    let good =
        json!({"name": "ok", "language": "en", "category": "UTILITY", "components": body("x")});
    let (status, json) = post(&base, &path, "wrong-token", good.clone()).await;
    assert_eq!(
        (status, json["error"]["code"].as_i64()),
        (401, Some(190)),
        "{json}"
    );
    let (status, json) = post(
        &base,
        "v21.0/999/message_templates",
        DEFAULT_META_TOKEN,
        good,
    )
    .await;
    assert_eq!(
        (status, json["error"]["code"].as_i64()),
        (400, Some(100)),
        "{json}"
    );
    assert_eq!(sb.state().templates().len(), before);

    // Without the account id, Heimdall's client says what is missing.
    let mut settings = sb.meta_settings();
    settings.business_account_id = None;
    let err = MetaClient::new(&settings, default_http_client())
        .list_templates()
        .await
        .unwrap_err();
    assert!(
        err.message.contains("WHATSAPP_BUSINESS_ACCOUNT_ID"),
        "{}",
        err.message
    );
}

//! The send path as an API caller sees it: `POST /api/v1/preview` shows a text part by
//! part as it would go to each destination (WhatsApp formatting and Twilio's 1,600-character
//! parts, plain SMS text with its segments), and refuses what it cannot read.

mod support;

use serde_json::json;
use support::TestApp;

fn long_markdown() -> String {
    let mut text = String::from("**Plan**\n\n");
    for i in 0..60 {
        text.push_str(&format!("Step {i} is _explained_ here in a few words. "));
        if i % 6 == 5 {
            text.push_str("\n\n");
        }
    }
    text
}

#[tokio::test]
async fn preview_shows_each_part_as_it_would_go() {
    let app = TestApp::spawn(&[]).await;
    let markdown = long_markdown();

    let res = app
        .api_post("/api/v1/preview", json!({"markdown": markdown}))
        .await;
    assert_eq!(res.status(), 200);
    let wa: serde_json::Value = res.json().await.unwrap();
    assert_eq!(wa["destination"], "whatsapp_twilio");
    assert_eq!(wa["max_chars"], 1600);
    let parts = wa["parts"].as_array().unwrap();
    assert_eq!(parts.len(), 2, "{wa:#}");
    let joined: String = parts.iter().map(|p| p["text"].as_str().unwrap()).collect();
    let visible = |t: &str| t.chars().filter(|c| !c.is_whitespace()).collect::<String>();
    assert_eq!(visible(&joined), visible(wa["text"].as_str().unwrap()));
    assert!(
        parts.iter().all(|p| {
            let t = p["text"].as_str().unwrap();
            t.trim_end() == t
        }),
        "no part ends in the whitespace it was cut at"
    );
    assert!(joined.starts_with("*Plan*\n\nStep 0 is _explained_"));
    for p in parts {
        assert!(p["chars"].as_u64().unwrap() <= 1600);
        assert!(p.get("sms").is_none());
    }
    // `chunks` (the first version's field) are the parts' texts.
    let chunks: Vec<&str> = wa["chunks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    let texts: Vec<&str> = parts.iter().map(|p| p["text"].as_str().unwrap()).collect();
    assert_eq!(chunks, texts);

    let res = app
        .api_post(
            "/api/v1/preview",
            json!({"markdown": markdown, "channel": "sms"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    let sms: serde_json::Value = res.json().await.unwrap();
    assert_eq!(sms["destination"], "sms");
    let first = &sms["parts"][0];
    let text = first["text"].as_str().unwrap();
    assert!(text.starts_with("Plan\n\nStep 0 is explained"), "{text}");
    assert!(!text.contains('*') && !text.contains('_'));
    assert_eq!(first["sms"]["encoding"], "GSM-7");
    assert_eq!(
        first["sms"]["segments"].as_u64().unwrap() as usize,
        heimdall_domain::channels::formatting::sms_segments(text).segments
    );

    let res = app
        .api_post(
            "/api/v1/preview",
            json!({"markdown": "Привет", "channel": "sms"}),
        )
        .await;
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["parts"][0]["sms"]["encoding"], "UCS-2");
    app.shutdown().await;
}

#[tokio::test]
async fn preview_refuses_what_it_cannot_read() {
    let app = TestApp::spawn(&[]).await;
    for body in [
        json!({"markdown": "hi", "channel": "fax"}),
        json!({"markdown": 5}),
        json!({"text": "hi"}),
    ] {
        let res = app.api_post("/api/v1/preview", body.clone()).await;
        assert_eq!(res.status(), 400, "{body}");
        let err: serde_json::Value = res.json().await.unwrap();
        assert!(err["error"]["message"].as_str().is_some(), "{err}");
    }
    app.shutdown().await;
}

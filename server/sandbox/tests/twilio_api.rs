//! Heimdall's Twilio client against the sandbox over real HTTP: sends, every
//! synchronous error shape, faults, fetch, list and the Content API.

mod common;

use std::time::{Duration, Instant};

use common::{closed_port, sandbox, wait_for};
use heimdall_domain::channels::twilio::{default_http_client, TwilioClient};
use heimdall_domain::channels::{Content, MessageProvider, OutboundRequest, Rejected};
use heimdall_domain::compliance::provider_errors::ProviderFailure;
use heimdall_domain::{Channel, PhoneNumber};
use heimdall_sandbox::magic::*;
use heimdall_sandbox::{content_sid, TemplateSpec, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN};
use secrecy::SecretString;
use serde_json::Value;

fn number(n: &str) -> PhoneNumber {
    PhoneNumber::parse(n, phonenumber::country::Id::US).expect("valid number")
}

fn text(channel: Channel, to: &str, body: &str) -> OutboundRequest {
    OutboundRequest {
        message_id: "msg-1".into(),
        channel,
        to: number(to),
        from: FROM_VALID.into(),
        content: Content::Text {
            body: body.into(),
            media_url: None,
        },
        status_callback: None,
        reply_to: None,
    }
}

fn code_of(r: &Rejected) -> (i64, Option<u16>) {
    match r.failure {
        ProviderFailure::Code { code, http_status } => (code, http_status),
        ref other => panic!("expected a coded failure, got {other:?} ({})", r.message),
    }
}

fn is_sid(s: &str, prefix: &str) -> bool {
    s.len() == 34 && s.starts_with(prefix) && s[2..].bytes().all(|b| b.is_ascii_hexdigit())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_text_is_accepted_with_prefixes() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let accepted = client
        .send(&text(Channel::WhatsApp, "+14155550101", "Hello there"))
        .await
        .expect("accepted");
    assert_eq!(accepted.provider, "twilio");
    assert!(is_sid(&accepted.sid, "SM"), "{}", accepted.sid);
    assert_eq!(accepted.status, "queued");
    assert_eq!(accepted.price, None);
    assert_eq!(accepted.price_unit.as_deref(), Some("USD"));
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.channel, "whatsapp");
    assert_eq!(m.to, "whatsapp:+14155550101");
    assert_eq!(m.from.as_deref(), Some("whatsapp:+15005550006"));
    assert_eq!(m.body.as_deref(), Some("Hello there"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_has_plain_numbers_and_segments() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let long = "x".repeat(200);
    let accepted = client
        .send(&text(Channel::Sms, "+14155550101", &long))
        .await
        .expect("accepted");
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.channel, "sms");
    assert_eq!(m.to, "+14155550101");
    assert_eq!(m.from.as_deref(), Some("+15005550006"));
    assert_eq!(m.num_segments, 2);
    let fetched = client.fetch_message(&accepted.sid).await.expect("fetched");
    assert_eq!(fetched.num_segments.as_deref(), Some("2"));
    assert_eq!(fetched.to.as_deref(), Some("+14155550101"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn template_variables_are_visible_in_inspection() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let sid = content_sid("task_reminder");
    let request = OutboundRequest {
        content: Content::Template {
            name: "task_reminder".into(),
            provider_id: sid.clone(),
            language: "en".into(),
            positional: vec!["Call Bob".into(), "17:00".into()],
        },
        ..text(Channel::WhatsApp, "+14155550101", "")
    };
    let accepted = client.send(&request).await.expect("accepted");
    let url = format!("{}sandbox/messages", sb.base_url());
    let all: Value = reqwest::get(&url)
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    let m = all
        .as_array()
        .expect("array")
        .iter()
        .find(|m| m["sid"] == accepted.sid.as_str())
        .expect("listed");
    assert_eq!(m["content_sid"], sid.as_str());
    assert_eq!(m["template_name"], "task_reminder");
    assert_eq!(m["variables"]["1"], "Call Bob");
    assert_eq!(m["variables"]["2"], "17:00");
    assert_eq!(m["body"], "Reminder: Call Bob is due at 17:00.");
    let one: Value = reqwest::get(format!("{url}/{}", accepted.sid))
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(one["variables"]["2"], "17:00");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_url_is_passed_through() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let mut request = text(Channel::WhatsApp, "+14155550101", "see this");
    request.content = Content::Text {
        body: "see this".into(),
        media_url: Some("https://example.com/picture.png".into()),
    };
    let accepted = client.send(&request).await.expect("accepted");
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.media_urls, vec!["https://example.com/picture.png"]);
    let fetched = client.fetch_message(&accepted.sid).await.expect("fetched");
    assert_eq!(fetched.num_media.as_deref(), Some("1"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_credentials_are_20003_without_the_token() {
    let sb = sandbox().await;
    let mut settings = sb.twilio_settings();
    settings.auth_token = SecretString::from("wrong-token-value");
    let client = TwilioClient::new(&settings, default_http_client());
    let err = client
        .send(&text(Channel::WhatsApp, "+14155550101", "x"))
        .await
        .expect_err("refused");
    assert_eq!(code_of(&err), (20003, Some(401)));
    assert_eq!(err.message, "Authenticate");
    assert!(!err.message.contains("wrong-token-value"));
    assert!(!format!("{client:?}").contains("wrong-token-value"));
    assert!(sb.state().messages().is_empty());

    // No credentials at all, straight over HTTP.
    let url = format!(
        "{}2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
        sb.base_url()
    );
    let response = reqwest::Client::new()
        .post(&url)
        .form(&[("To", "+14155550101"), ("From", FROM_VALID), ("Body", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 401);
    assert_eq!(
        response
            .headers()
            .get("x-heimdall-sandbox")
            .and_then(|v| v.to_str().ok()),
        Some("true")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], 20003);
    assert_eq!(body["status"], 401);
    assert_eq!(
        body["more_info"],
        "https://www.twilio.com/docs/errors/20003"
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_account_in_the_path_is_404() {
    let sb = sandbox().await;
    let url = format!(
        "{}2010-04-01/Accounts/ACtestaccount000000000000000000002/Messages.json",
        sb.base_url()
    );
    let response = reqwest::Client::new()
        .post(&url)
        .basic_auth(DEFAULT_ACCOUNT_SID, Some(DEFAULT_AUTH_TOKEN))
        .form(&[("To", "+14155550101"), ("From", FROM_VALID), ("Body", "x")])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 404);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], 20404);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_fields_give_twilio_validation_codes() {
    let sb = sandbox().await;
    let url = format!(
        "{}2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
        sb.base_url()
    );
    let http = reqwest::Client::new();
    let post = |form: Vec<(&'static str, &'static str)>| {
        let http = http.clone();
        let url = url.clone();
        async move {
            let r = http
                .post(&url)
                .basic_auth(DEFAULT_ACCOUNT_SID, Some(DEFAULT_AUTH_TOKEN))
                .form(&form)
                .send()
                .await
                .expect("POST");
            let status = r.status().as_u16();
            let body: Value = r.json().await.expect("json");
            (status, body["code"].as_i64().expect("code"))
        }
    };
    assert_eq!(
        post(vec![("From", FROM_VALID), ("Body", "x")]).await,
        (400, 21604)
    );
    assert_eq!(
        post(vec![("To", "+14155550101"), ("Body", "x")]).await,
        (400, 21603)
    );
    assert_eq!(
        post(vec![("To", "+14155550101"), ("From", FROM_VALID)]).await,
        (400, 21602)
    );
    assert_eq!(
        post(vec![("To", "12345"), ("From", FROM_VALID), ("Body", "x")]).await,
        (400, 21211)
    );
    assert_eq!(
        post(vec![
            ("To", "whatsapp:+14155550101"),
            ("From", FROM_VALID),
            ("Body", "x")
        ])
        .await,
        (400, 21910)
    );
    assert_eq!(
        post(vec![
            ("To", "+14155550101"),
            ("From", FROM_VALID),
            ("ContentSid", "HX00000000000000000000000000000000")
        ])
        .await,
        (400, 21655)
    );
    assert!(sb.state().messages().is_empty());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn magic_recipients_and_senders_give_documented_errors() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    for (to, code) in [
        (TO_INVALID, 21211),
        (TO_UNROUTABLE, 21612),
        (TO_NO_INTERNATIONAL, 21408),
        (TO_BLOCKED, 21610),
        (TO_NOT_MOBILE, 21614),
    ] {
        let err = client
            .send(&text(Channel::Sms, to, "x"))
            .await
            .expect_err("refused");
        assert_eq!(code_of(&err), (code, Some(400)), "{to}");
        assert!(!err.message.is_empty());
    }
    for (from, code) in [
        (FROM_INVALID, 21212),
        (FROM_NOT_OWNED, 21606),
        (FROM_QUEUE_FULL, 21611),
    ] {
        let mut request = text(Channel::Sms, "+14155550101", "x");
        request.from = from.into();
        let err = client.send(&request).await.expect_err("refused");
        assert_eq!(code_of(&err), (code, Some(400)), "{from}");
    }
    assert!(sb.state().messages().is_empty());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttled_recipient_gets_429_twice_then_success() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let request = text(Channel::WhatsApp, TO_THROTTLED, "x");
    for _ in 0..FAULT_REPEAT {
        let err = client.send(&request).await.expect_err("throttled");
        assert_eq!(code_of(&err), (20429, Some(429)));
    }
    let accepted = client.send(&request).await.expect("then accepted");
    assert_eq!(accepted.status, "queued");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_recipient_is_accepted_but_the_answer_breaks() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let err = client
        .send(&text(Channel::WhatsApp, TO_RESET_AFTER_ACCEPT, "x"))
        .await
        .expect_err("the answer breaks");
    assert_eq!(err.failure, ProviderFailure::Broken, "{}", err.message);
    assert!(err.failure.outcome_unknown());
    // ...but the sandbox took the message, as Twilio may have.
    let taken = sb.state().messages();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].to, format!("whatsapp:{TO_RESET_AFTER_ACCEPT}"));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_error_recipient_gets_500() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let request = text(Channel::Sms, TO_SERVER_ERROR, "x");
    let err = client.send(&request).await.expect_err("500");
    assert_eq!(code_of(&err), (20500, Some(500)));
    sb.state().reset();
    // The counter starts again after a reset.
    let err = client.send(&request).await.expect_err("500 again");
    assert_eq!(code_of(&err), (20500, Some(500)));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_recipient_times_out_with_a_short_client_timeout() {
    let sb = sandbox().await;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_millis(400))
        .build()
        .expect("client");
    let client = TwilioClient::new(&sb.twilio_settings(), http);
    let started = Instant::now();
    let err = client
        .send(&text(Channel::WhatsApp, TO_SLOW, "x"))
        .await
        .expect_err("timeout");
    assert_eq!(err.failure, ProviderFailure::Timeout);
    assert!(err.failure.outcome_unknown());
    assert!(
        started.elapsed() < LATENCY,
        "gave up before the sandbox answered"
    );
    assert!(!err.message.contains(DEFAULT_AUTH_TOKEN));
    // With the default client (15 s), the same recipient is accepted after the delay.
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let started = Instant::now();
    client
        .send(&text(Channel::WhatsApp, TO_SLOW, "x"))
        .await
        .expect("accepted");
    assert!(started.elapsed() >= LATENCY);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_port_is_a_network_failure() {
    let sb = sandbox().await;
    let mut settings = sb.twilio_settings();
    settings.api_base =
        url::Url::parse(&format!("http://127.0.0.1:{}/", closed_port())).expect("url");
    let client = TwilioClient::new(&settings, default_http_client());
    let err = client
        .send(&text(Channel::Sms, "+14155550101", "x"))
        .await
        .expect_err("unreachable");
    assert_eq!(err.failure, ProviderFailure::Network);
    assert!(!err.failure.outcome_unknown());
    assert!(
        err.message.starts_with("Twilio: could not connect"),
        "{}",
        err.message
    );
    assert!(!err.message.contains(DEFAULT_AUTH_TOKEN));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_non_json_error_body_is_a_bare_http_failure() {
    let sb = sandbox().await;
    let mut settings = sb.twilio_settings();
    settings.api_base = sb.base_url().join("no-such-prefix/").expect("url");
    let client = TwilioClient::new(&settings, default_http_client());
    let err = client
        .send(&text(Channel::Sms, "+14155550101", "x"))
        .await
        .expect_err("404");
    assert_eq!(err.failure, ProviderFailure::Http(404));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_follows_the_status_walk_and_unknown_sids_are_20404() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let accepted = client
        .send(&text(Channel::Sms, "+14155550101", "x"))
        .await
        .expect("accepted");
    let state = sb.state();
    wait_for("delivered", Duration::from_secs(10), || {
        state
            .message(&accepted.sid)
            .filter(|m| m.status == "delivered")
    })
    .await;
    let m = client.fetch_message(&accepted.sid).await.expect("fetched");
    assert_eq!(m.status, "delivered");
    assert_eq!(m.sid, accepted.sid);
    assert_eq!(m.direction.as_deref(), Some("outbound-api"));
    assert_eq!(m.api_version.as_deref(), Some("2010-04-01"));
    assert!(m.date_sent.is_some());
    assert_eq!(m.error_code, None);
    let err = client
        .fetch_message("SM00000000000000000000000000000000")
        .await
        .expect_err("unknown");
    assert_eq!(code_of(&err), (20404, Some(404)));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_message_has_every_twilio_field() {
    let sb = sandbox().await;
    let url = format!(
        "{}2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json",
        sb.base_url()
    );
    let response = reqwest::Client::new()
        .post(&url)
        .basic_auth(DEFAULT_ACCOUNT_SID, Some(DEFAULT_AUTH_TOKEN))
        .form(&[
            ("To", "whatsapp:+14155550101"),
            ("From", "whatsapp:+15005550006"),
            ("Body", "hi"),
        ])
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 201);
    let m: Value = response.json().await.expect("json");
    for field in [
        "account_sid",
        "api_version",
        "body",
        "date_created",
        "date_sent",
        "date_updated",
        "direction",
        "error_code",
        "error_message",
        "from",
        "messaging_service_sid",
        "num_media",
        "num_segments",
        "price",
        "price_unit",
        "sid",
        "status",
        "subresource_uris",
        "to",
        "uri",
    ] {
        assert!(m.get(field).is_some(), "missing {field}");
    }
    let sid = m["sid"].as_str().expect("sid");
    assert_eq!(m["account_sid"], DEFAULT_ACCOUNT_SID);
    assert_eq!(m["api_version"], "2010-04-01");
    assert_eq!(m["direction"], "outbound-api");
    assert_eq!(m["status"], "queued");
    assert_eq!(m["price_unit"], "USD");
    assert_eq!(m["num_media"], "0");
    assert_eq!(m["num_segments"], "1");
    assert_eq!(
        m["uri"],
        format!("/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages/{sid}.json")
    );
    let created = m["date_created"].as_str().expect("date");
    chrono::DateTime::parse_from_rfc2822(created).expect("RFC 2822 date");
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_list_pages() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    for i in 0..3 {
        client
            .send(&text(Channel::Sms, "+14155550101", &format!("m{i}")))
            .await
            .expect("accepted");
    }
    let base = sb.base_url();
    let http = reqwest::Client::new();
    let get = |uri: String| {
        let http = http.clone();
        let url = base.join(uri.trim_start_matches('/')).expect("url");
        async move {
            http.get(url)
                .basic_auth(DEFAULT_ACCOUNT_SID, Some(DEFAULT_AUTH_TOKEN))
                .send()
                .await
                .expect("GET")
                .json::<Value>()
                .await
                .expect("json")
        }
    };
    let first = get(format!(
        "/2010-04-01/Accounts/{DEFAULT_ACCOUNT_SID}/Messages.json?PageSize=2"
    ))
    .await;
    assert_eq!(first["messages"].as_array().expect("array").len(), 2);
    assert_eq!(first["page"], 0);
    assert_eq!(first["page_size"], 2);
    // Newest first.
    assert_eq!(first["messages"][0]["body"], "m2");
    let next = first["next_page_uri"]
        .as_str()
        .expect("next page")
        .to_string();
    let second = get(next).await;
    assert_eq!(second["messages"].as_array().expect("array").len(), 1);
    assert_eq!(second["messages"][0]["body"], "m0");
    assert!(second["next_page_uri"].is_null());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_api_lists_every_template_across_pages() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let all = client.list_content().await.expect("listed");
    assert_eq!(all.len(), 7);
    let paged = client.list_content_paged(2).await.expect("listed in pages");
    assert_eq!(paged, all);
    let reminder = paged
        .iter()
        .find(|t| t.friendly_name == "task_reminder")
        .expect("seeded");
    assert_eq!(reminder.sid, content_sid("task_reminder"));
    assert_eq!(reminder.language, "en");
    assert_eq!(
        reminder.body.as_deref(),
        Some("Reminder: {{1}} is due at {{2}}.")
    );
    assert_eq!(reminder.variables.len(), 2);
    assert!(reminder.types.get("twilio/text").is_some());

    // The page size really pages: the first page of 2 names a next page.
    let page: Value = reqwest::Client::new()
        .get(format!("{}v1/Content?PageSize=2", sb.base_url()))
        .basic_auth(DEFAULT_ACCOUNT_SID, Some(DEFAULT_AUTH_TOKEN))
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("json");
    assert_eq!(page["contents"].as_array().expect("array").len(), 2);
    assert_eq!(page["meta"]["key"], "contents");
    assert!(page["meta"]["next_page_url"].as_str().is_some());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn approval_statuses_come_from_the_content_api() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let approved = client
        .approval_status(&content_sid("task_reminder"))
        .await
        .expect("status");
    assert_eq!(approved.status, "approved");
    assert_eq!(approved.category.as_deref(), Some("UTILITY"));
    assert_eq!(approved.rejection_reason, None);
    assert_eq!(approved.name.as_deref(), Some("task_reminder"));
    let marketing = client
        .approval_status(&content_sid("spring_offer"))
        .await
        .expect("status");
    assert_eq!(marketing.category.as_deref(), Some("MARKETING"));
    let paused = client
        .approval_status(&content_sid("paused_notice"))
        .await
        .expect("status");
    assert_eq!(paused.status, "paused");

    // Change one over HTTP, as a test of Heimdall's template sync would.
    let response = reqwest::Client::new()
        .post(format!("{}sandbox/templates", sb.base_url()))
        .json(&serde_json::json!({
            "name": "weekly_review",
            "status": "rejected",
            "rejection_reason": "Promotional content in a utility template",
        }))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let rejected = client
        .approval_status(&content_sid("weekly_review"))
        .await
        .expect("status");
    assert_eq!(rejected.status, "rejected");
    assert_eq!(
        rejected.rejection_reason.as_deref(),
        Some("Promotional content in a utility template")
    );

    // A new template, programmatically.
    let added = sb
        .state()
        .apply_template(TemplateSpec {
            name: "appointment_moved".into(),
            body: Some("Your appointment moved to {{1}}".into()),
            variable_names: Some(vec!["new_time".into()]),
            status: Some("pending".into()),
            ..TemplateSpec::default()
        })
        .expect("added");
    let pending = client.approval_status(&added.sid).await.expect("status");
    assert_eq!(pending.status, "pending");
    assert_eq!(client.list_content().await.expect("listed").len(), 8);

    let err = client
        .approval_status("HX00000000000000000000000000000000")
        .await
        .expect_err("unknown");
    assert_eq!(code_of(&err), (20404, Some(404)));

    let bad = reqwest::Client::new()
        .post(format!("{}sandbox/templates", sb.base_url()))
        .json(&serde_json::json!({"name": "x", "body": "y", "status": "sort-of"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(bad.status().as_u16(), 400);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn info_and_reset() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    client
        .send(&text(Channel::Sms, "+14155550101", "x"))
        .await
        .expect("accepted");
    let info = reqwest::get(format!("{}sandbox", sb.base_url()))
        .await
        .expect("GET")
        .text()
        .await
        .expect("text");
    assert!(info.contains("\"sandbox\":true"));
    assert!(info.contains(TO_FAIL_63007));
    assert!(
        !info.contains(DEFAULT_AUTH_TOKEN),
        "no secret in the info page"
    );
    let reset = reqwest::Client::new()
        .post(format!("{}sandbox/reset", sb.base_url()))
        .send()
        .await
        .expect("POST");
    assert_eq!(reset.status().as_u16(), 200);
    assert!(sb.state().messages().is_empty());
    assert_eq!(sb.state().templates().len(), 7);
    sb.stop().await;
}

//! The throttled Discord alerter against the sandbox's Discord webhook.

mod common;

use std::time::{Duration, Instant};

use common::{closed_port, sandbox, wait_for};
use heimdall_domain::channels::discord::{Alert, Alerter};
use heimdall_domain::channels::twilio::default_http_client;
use heimdall_sandbox::DISCORD_WEBHOOK_TOKEN;
use secrecy::SecretString;
use serde_json::Value;

/// The sandbox is on this machine: its address is allowed explicitly, as
/// `heimdall serve` allows its own sandbox.
fn local() -> heimdall_domain::outbound_http::UrlPolicy {
    heimdall_domain::outbound_http::UrlPolicy::parse("127.0.0.1").unwrap()
}

fn alert(key: &str, n: usize) -> Alert {
    Alert::new(
        key,
        "WhatsApp delivery failed",
        format!("Message {n} could not be delivered"),
    )
    .with_error(63007, "From is not a WhatsApp sender")
    .with_message(format!("msg-{n}"))
    .with_campaign("spring-campaign")
}

fn field<'a>(embed: &'a Value, name: &str) -> Option<&'a str> {
    embed["fields"]
        .as_array()?
        .iter()
        .find(|f| f["name"] == name)
        .and_then(|f| f["value"].as_str())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_alerts_of_one_key_are_two_posts() {
    let sb = sandbox().await;
    let alerter = Alerter::new(
        Some(sb.discord_webhook_url()),
        default_http_client(),
        &local(),
        Duration::from_secs(60),
    );
    for n in 0..50 {
        alerter.alert(alert("twilio:63007", n));
    }
    alerter.flush().await;
    let posts = sb.state().alerts();
    assert_eq!(posts.len(), 2, "{posts:#?}");
    let first = &posts[0].payload;
    assert_eq!(first["username"], "Heimdall");
    let embed = &first["embeds"][0];
    assert_eq!(embed["title"], "WhatsApp delivery failed");
    assert_eq!(
        field(embed, "Error"),
        Some("63007 — From is not a WhatsApp sender")
    );
    assert_eq!(field(embed, "Message"), Some("msg-0"));
    assert_eq!(field(embed, "Campaign"), Some("spring-campaign"));
    assert_eq!(field(embed, "Count"), None);
    chrono::DateTime::parse_from_rfc3339(embed["timestamp"].as_str().expect("timestamp"))
        .expect("RFC 3339");

    let summary = &posts[1].payload["embeds"][0];
    assert_eq!(field(summary, "Count"), Some("49"));
    assert_eq!(field(summary, "Message"), Some("msg-49"));
    assert!(summary["description"]
        .as_str()
        .expect("description")
        .starts_with("63007 ×49 in the last"));
    let stats = alerter.stats();
    assert_eq!(
        (stats.posted, stats.throttled, stats.dropped, stats.failed),
        (2, 49, 0, 0)
    );
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_summary_goes_out_when_the_window_ends() {
    let sb = sandbox().await;
    let alerter = Alerter::new(
        Some(sb.discord_webhook_url()),
        default_http_client(),
        &local(),
        Duration::from_millis(300),
    );
    for n in 0..5 {
        alerter.alert(alert("twilio:63007", n));
    }
    let state = sb.state();
    let posts = wait_for(
        "the summary at the end of the window",
        Duration::from_secs(10),
        || {
            let posts = state.alerts();
            (posts.len() >= 2).then_some(posts)
        },
    )
    .await;
    assert_eq!(field(&posts[1].payload["embeds"][0], "Count"), Some("4"));
    // The sandbox records the post before the alerter has read the answer
    // and counted it, so the count is polled too, not read once.
    wait_for(
        "the alerter to count its second post",
        Duration::from_secs(10),
        || (alerter.stats().posted == 2).then_some(()),
    )
    .await;
    assert_eq!(alerter.stats().posted, 2);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn different_keys_are_not_folded_together() {
    let sb = sandbox().await;
    let alerter = Alerter::new(
        Some(sb.discord_webhook_url()),
        default_http_client(),
        &local(),
        Duration::from_secs(60),
    );
    alerter.alert(alert("twilio:63007", 1));
    alerter.alert(
        Alert::new("twilio:30003", "SMS undelivered", "handset unreachable").with_error(30003, ""),
    );
    alerter.alert(Alert::new(
        "meta:131026",
        "Meta undeliverable",
        "not on WhatsApp",
    ));
    alerter.alert(alert("twilio:63007", 2));
    alerter.flush().await;
    let posts = sb.state().alerts();
    let titles: Vec<&str> = posts
        .iter()
        .map(|p| p.payload["embeds"][0]["title"].as_str().expect("title"))
        .collect();
    assert_eq!(posts.len(), 4, "{titles:?}");
    assert_eq!(titles[0], "WhatsApp delivery failed");
    assert_eq!(titles[1], "SMS undelivered");
    assert_eq!(titles[2], "Meta undeliverable");
    // Only 63007 repeated: its summary counts 1.
    assert_eq!(field(&posts[3].payload["embeds"][0], "Count"), Some("1"));
    assert_eq!(
        field(&posts[1].payload["embeds"][0], "Error"),
        Some("30003")
    );
    assert_eq!(alerter.stats().throttled, 1);
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_honoured() {
    let sb = sandbox().await;
    sb.state().set_discord_rate_limit(1, 0.3);
    let alerter = Alerter::new(
        Some(sb.discord_webhook_url()),
        default_http_client(),
        &local(),
        Duration::from_secs(60),
    );
    let started = Instant::now();
    alerter.alert(alert("k", 0));
    alerter.flush().await;
    assert!(
        started.elapsed() >= Duration::from_millis(300),
        "waited retry_after"
    );
    assert_eq!(sb.state().discord_rate_limited(), 1);
    assert_eq!(sb.state().alerts().len(), 1);
    let stats = alerter.stats();
    assert_eq!((stats.posted, stats.failed), (1, 0));
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_rate_limit_control_and_giving_up() {
    let sb = sandbox().await;
    let response = reqwest::Client::new()
        .post(format!("{}sandbox/discord/rate-limit", sb.base_url()))
        .json(&serde_json::json!({"times": 10, "retry_after": 0.05}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let alerter = Alerter::new(
        Some(sb.discord_webhook_url()),
        default_http_client(),
        &local(),
        Duration::from_secs(60),
    );
    alerter.alert(alert("k", 0));
    alerter.flush().await;
    let stats = alerter.stats();
    assert_eq!((stats.posted, stats.failed), (0, 1));
    assert_eq!(
        sb.state().discord_rate_limited(),
        4,
        "four attempts, then it gave up"
    );
    assert!(sb.state().alerts().is_empty());
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_webhook_fails_without_blocking_the_caller() {
    let url = SecretString::from(format!(
        "http://127.0.0.1:{}/api/webhooks/1/{DISCORD_WEBHOOK_TOKEN}",
        closed_port()
    ));
    let alerter = Alerter::new(
        Some(url),
        default_http_client(),
        &local(),
        Duration::from_secs(60),
    );
    let started = Instant::now();
    for n in 0..2000 {
        alerter.alert(alert("k", n));
    }
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "alert() never blocks"
    );
    alerter.flush().await;
    let stats = alerter.stats();
    // The first alert and the summary both failed after their retries; the
    // queue (1024) overflowed while the first was being retried.
    assert_eq!(stats.failed, 2);
    assert_eq!(stats.posted, 0);
    assert!(stats.dropped > 0);
    assert_eq!(stats.dropped + stats.throttled + 1, 2000);
    assert!(!format!("{alerter:?}").contains(DISCORD_WEBHOOK_TOKEN));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_refuses_empty_messages() {
    let sb = sandbox().await;
    let url = format!("{}api/webhooks/1/tok", sb.base_url());
    let response = reqwest::Client::new()
        .post(&url)
        .json(&serde_json::json!({"username": "x"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 400);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["code"], 50006);
    let response = reqwest::Client::new()
        .post(format!("{}discord/webhooks/1/tok", sb.base_url()))
        .json(&serde_json::json!({"content": "hello"}))
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 204);
    assert_eq!(sb.state().alerts().len(), 1);
    sb.stop().await;
}

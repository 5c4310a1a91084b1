//! Status walks and their callbacks: order, Twilio's parameters, signatures
//! that verify with Heimdall's own checker, and failure endings per code.

mod common;

use std::time::Duration;

use common::{closed_port, sandbox, wait_for, Captured, Receiver, STEP};
use heimdall_domain::channels::twilio::{default_http_client, TwilioClient};
use heimdall_domain::channels::{Content, MessageProvider, OutboundRequest};
use heimdall_domain::signature::{twilio_signature, verify_twilio_signature};
use heimdall_domain::{Channel, PhoneNumber};
use heimdall_sandbox::magic::*;
use heimdall_sandbox::{SandboxHandle, DEFAULT_ACCOUNT_SID};
use url::Url;

const LIMIT: Duration = Duration::from_secs(10);

fn request(channel: Channel, to: &str, callback: &str) -> OutboundRequest {
    OutboundRequest {
        message_id: "01HZX-message".into(),
        channel,
        to: PhoneNumber::parse(to, phonenumber::country::Id::US).expect("valid"),
        from: FROM_VALID.into(),
        content: Content::Text {
            body: "Your task is due".into(),
            media_url: None,
        },
        status_callback: Some(Url::parse(callback).expect("url")),
        reply_to: None,
    }
}

fn statuses(callbacks: &[Captured]) -> Vec<String> {
    callbacks
        .iter()
        .map(|c| c.param("MessageStatus").expect("MessageStatus"))
        .collect()
}

/// Callbacks for one message, once `done` says the list is complete.
async fn callbacks_until(
    receiver: &Receiver,
    sid: &str,
    done: impl Fn(&[Captured]) -> bool,
) -> Vec<Captured> {
    wait_for("status callbacks", LIMIT, || {
        let mine: Vec<Captured> = receiver
            .requests()
            .into_iter()
            .filter(|c| c.param("MessageSid").as_deref() == Some(sid))
            .collect();
        done(&mine).then_some(mine)
    })
    .await
}

fn assert_signed(sb: &SandboxHandle, callback_url: &str, c: &Captured) {
    let signature = c.header("x-twilio-signature").expect("signature header");
    let params = c.form();
    assert!(
        verify_twilio_signature(sb.auth_token(), callback_url, &params, signature),
        "signature does not verify for {:?}",
        c.param("MessageStatus")
    );
    assert_eq!(
        signature,
        twilio_signature(sb.auth_token(), callback_url, &params),
        "the sandbox signs exactly as the domain signer does"
    );
    assert!(!verify_twilio_signature(
        "another-token",
        callback_url,
        &params,
        signature
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_walk_reaches_read_with_signed_callbacks_in_order() {
    let sb = sandbox().await;
    let receiver = Receiver::start().await;
    let callback_url = receiver.url("/webhooks/twilio/status?message_id=01HZX-message");
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let accepted = client
        .send(&request(Channel::WhatsApp, "+14155550101", &callback_url))
        .await
        .expect("accepted");
    let callbacks = callbacks_until(&receiver, &accepted.sid, |cs| {
        cs.iter()
            .any(|c| c.param("MessageStatus").as_deref() == Some("read"))
    })
    .await;
    // Twilio sends no callback for the initial `queued`.
    assert_eq!(
        statuses(&callbacks),
        ["sending", "sent", "delivered", "read"]
    );
    for c in &callbacks {
        assert_eq!(c.method, "POST");
        assert_eq!(
            c.path_and_query,
            "/webhooks/twilio/status?message_id=01HZX-message"
        );
        assert!(c
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/x-www-form-urlencoded")));
        assert_signed(&sb, &callback_url, c);
        assert_eq!(c.param("SmsSid").as_deref(), Some(accepted.sid.as_str()));
        assert_eq!(c.param("SmsStatus"), c.param("MessageStatus"));
        assert_eq!(c.param("AccountSid").as_deref(), Some(DEFAULT_ACCOUNT_SID));
        assert_eq!(c.param("ApiVersion").as_deref(), Some("2010-04-01"));
        assert_eq!(c.param("To").as_deref(), Some("whatsapp:+14155550101"));
        assert_eq!(c.param("From").as_deref(), Some("whatsapp:+15005550006"));
        assert_eq!(c.param("ChannelPrefix").as_deref(), Some("whatsapp"));
        assert_eq!(c.param("ChannelToAddress").as_deref(), Some("+14155550101"));
        assert_eq!(c.param("ErrorCode"), None);
    }
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(
        m.statuses(),
        ["queued", "sending", "sent", "delivered", "read"]
    );
    assert!(m.history.windows(2).all(|w| w[0].at <= w[1].at));
    assert_eq!(m.callbacks.len(), 4);
    assert!(m.callbacks.iter().all(|c| c.http_status == Some(200)));
    receiver.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_walk_ends_at_delivered() {
    let sb = sandbox().await;
    let receiver = Receiver::start().await;
    let callback_url = receiver.url("/webhooks/twilio/status");
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let accepted = client
        .send(&request(Channel::Sms, "+14155550101", &callback_url))
        .await
        .expect("accepted");
    let callbacks = callbacks_until(&receiver, &accepted.sid, |cs| {
        cs.iter()
            .any(|c| c.param("MessageStatus").as_deref() == Some("delivered"))
    })
    .await;
    assert_eq!(statuses(&callbacks), ["sending", "sent", "delivered"]);
    let delivered = callbacks.last().expect("delivered");
    assert_eq!(delivered.param("To").as_deref(), Some("+14155550101"));
    assert_eq!(delivered.param("ChannelPrefix"), None);
    assert!(delivered
        .param("RawDlrDoneDate")
        .is_some_and(|d| d.len() == 10));
    for c in &callbacks {
        assert_signed(&sb, &callback_url, c);
    }
    // Absence check: give the walk a few more steps; no `read` on SMS.
    tokio::time::sleep(STEP * 6).await;
    let m = sb.state().message(&accepted.sid).expect("recorded");
    assert_eq!(m.statuses(), ["queued", "sending", "sent", "delivered"]);
    receiver.stop().await;
    sb.stop().await;
}

async fn assert_failure(to: &str, channel: Channel, final_status: &str, code: i64) {
    let sb = sandbox().await;
    let receiver = Receiver::start().await;
    let callback_url = receiver.url("/webhooks/twilio/status?message_id=x");
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let accepted = client
        .send(&request(channel, to, &callback_url))
        .await
        .expect("accepted at first");
    let callbacks = callbacks_until(&receiver, &accepted.sid, |cs| {
        cs.iter().any(|c| {
            matches!(
                c.param("MessageStatus").as_deref(),
                Some("failed" | "undelivered")
            )
        })
    })
    .await;
    let last = callbacks.last().expect("final callback");
    assert_eq!(last.param("MessageStatus").as_deref(), Some(final_status));
    assert_eq!(last.param("ErrorCode"), Some(code.to_string()));
    assert!(last.param("ErrorMessage").is_some_and(|m| !m.is_empty()));
    for c in &callbacks {
        assert_signed(&sb, &callback_url, c);
    }
    let expected: Vec<&str> = if final_status == "failed" {
        vec!["sending", "failed"]
    } else {
        vec!["sending", "sent", "undelivered"]
    };
    assert_eq!(statuses(&callbacks), expected);
    let fetched = client.fetch_message(&accepted.sid).await.expect("fetched");
    assert_eq!(fetched.status, final_status);
    assert_eq!(fetched.error_code, Some(code));
    receiver.stop().await;
    sb.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_63007_ends_failed() {
    assert_failure(TO_FAIL_63007, Channel::WhatsApp, "failed", 63007).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_63016_ends_failed() {
    assert_failure(TO_FAIL_63016, Channel::WhatsApp, "failed", 63016).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_63032_ends_undelivered() {
    assert_failure(
        TO_UNDELIVERED_63032,
        Channel::WhatsApp,
        "undelivered",
        63032,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_21610_ends_failed() {
    assert_failure(TO_FAIL_21610, Channel::Sms, "failed", 21610).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_30003_ends_undelivered() {
    assert_failure(TO_UNDELIVERED_30003, Channel::Sms, "undelivered", 30003).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_or_failing_callbacks_do_not_stop_the_walk() {
    let sb = sandbox().await;
    let client = TwilioClient::new(&sb.twilio_settings(), default_http_client());
    let dead = format!("http://127.0.0.1:{}/status", closed_port());
    let a = client
        .send(&request(Channel::WhatsApp, "+14155550101", &dead))
        .await
        .expect("accepted");
    let failing = Receiver::answering(500, "no").await;
    let b = client
        .send(&request(
            Channel::WhatsApp,
            "+14155550102",
            &failing.url("/status"),
        ))
        .await
        .expect("accepted");
    let state = sb.state();
    for sid in [&a.sid, &b.sid] {
        wait_for("read despite callback failures", LIMIT, || {
            state
                .message(sid)
                .filter(|m| m.status == "read" && m.callbacks.len() == 4)
        })
        .await;
    }
    let a = state.message(&a.sid).expect("a");
    assert!(a
        .callbacks
        .iter()
        .all(|c| c.http_status.is_none() && c.error.is_some()));
    let b = state.message(&b.sid).expect("b");
    assert!(b.callbacks.iter().all(|c| c.http_status == Some(500)));
    failing.stop().await;
    sb.stop().await;
}

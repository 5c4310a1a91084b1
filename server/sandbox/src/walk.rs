//! Status walks: every accepted message moves through its statuses one step
//! per `status_step`, and each step is reported the way the provider reports
//! it — a signed, form-encoded status callback for Twilio, a signed webhook
//! JSON for Meta.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use heimdall_domain::signature::{meta_signature, twilio_signature};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::magic::Behaviour;
use crate::state::{CallbackRecord, Shared, StatusEvent};
use crate::twilio_api::API_VERSION;

/// A receiver gets this long to answer a callback.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// One status a message moves to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Step {
    pub status: &'static str,
    pub error: Option<(i64, &'static str)>,
}

fn ok(status: &'static str) -> Step {
    Step {
        status,
        error: None,
    }
}

/// Twilio: queued -> sending -> sent -> delivered (-> read on WhatsApp);
/// failures end `failed` (after sending) or `undelivered` (after sent).
/// The initial status gets no callback, as at Twilio.
pub(crate) fn twilio_plan(
    whatsapp: bool,
    behaviour: Option<Behaviour>,
    via_service: bool,
) -> Vec<Step> {
    let mut plan = Vec::new();
    if via_service {
        plan.push(ok("queued"));
    }
    match behaviour {
        Some(Behaviour::Fail { code, message }) => {
            plan.push(ok("sending"));
            plan.push(Step {
                status: "failed",
                error: Some((code, message)),
            });
        }
        Some(Behaviour::Undeliver { code, message }) => {
            plan.push(ok("sending"));
            plan.push(ok("sent"));
            plan.push(Step {
                status: "undelivered",
                error: Some((code, message)),
            });
        }
        _ => {
            plan.extend([ok("sending"), ok("sent"), ok("delivered")]);
            if whatsapp {
                plan.push(ok("read"));
            }
        }
    }
    plan
}

/// Meta: sent -> delivered -> read, or `failed` with a Cloud API error.
pub(crate) fn meta_plan(behaviour: Option<Behaviour>) -> Vec<Step> {
    match behaviour {
        Some(Behaviour::MetaFail { code, message, .. }) => vec![Step {
            status: "failed",
            error: Some((code, message)),
        }],
        _ => vec![ok("sent"), ok("delivered"), ok("read")],
    }
}

/// Wait one step; false when the sandbox is stopping.
async fn pause(shared: &Shared) -> bool {
    let mut stop = shared.shutdown.subscribe();
    if *stop.borrow() {
        return false;
    }
    tokio::select! {
        () = tokio::time::sleep(shared.config.status_step) => true,
        _ = stop.wait_for(|s| *s) => false,
    }
}

pub(crate) fn spawn_twilio(shared: Arc<Shared>, sid: String, plan: Vec<Step>) {
    let runtime = shared.runtime.clone();
    runtime.spawn(run_twilio(shared, sid, plan));
}

pub(crate) fn spawn_meta(shared: Arc<Shared>, wamid: String, plan: Vec<Step>) {
    let runtime = shared.runtime.clone();
    runtime.spawn(run_meta(shared, wamid, plan));
}

/// A stable `XE...` channel install SID for the account.
fn channel_install_sid(account_sid: &str) -> String {
    let digest = Sha256::digest(format!("heimdall-sandbox-channel:{account_sid}").as_bytes());
    format!("XE{}", &hex::encode(digest)[..32])
}

async fn run_twilio(shared: Arc<Shared>, sid: String, plan: Vec<Step>) {
    let account_sid = shared.config.account_sid.clone();
    for step in plan {
        if !pause(&shared).await {
            return;
        }
        let now = Utc::now();
        let (callback, params) = {
            let mut inner = shared.lock();
            let Some(m) = inner.get_mut(&sid) else {
                return; // reset
            };
            m.status = step.status.to_string();
            m.date_updated = now;
            m.history.push(StatusEvent {
                status: step.status.to_string(),
                at: now,
            });
            if step.status == "sent" {
                m.date_sent = Some(now);
                m.price = Some(
                    if m.is_whatsapp() {
                        "-0.00500"
                    } else {
                        "-0.00790"
                    }
                    .into(),
                );
            }
            if let Some((code, message)) = step.error {
                m.error_code = Some(code);
                m.error_message = Some(message.to_string());
            }
            let bare_to = m.to.trim_start_matches("whatsapp:").to_string();
            let mut params: Vec<(String, String)> = vec![
                ("MessageSid".into(), m.sid.clone()),
                ("SmsSid".into(), m.sid.clone()),
                ("SmsStatus".into(), step.status.into()),
                ("MessageStatus".into(), step.status.into()),
                ("AccountSid".into(), account_sid.clone()),
                ("From".into(), m.from.clone().unwrap_or_default()),
                ("To".into(), m.to.clone()),
                ("ApiVersion".into(), API_VERSION.into()),
            ];
            if let Some(service) = &m.messaging_service_sid {
                params.push(("MessagingServiceSid".into(), service.clone()));
            }
            if let Some((code, message)) = step.error {
                params.push(("ErrorCode".into(), code.to_string()));
                params.push(("ErrorMessage".into(), message.into()));
            }
            if m.is_whatsapp() {
                params.push(("ChannelPrefix".into(), "whatsapp".into()));
                params.push((
                    "ChannelInstallSid".into(),
                    channel_install_sid(&account_sid),
                ));
                params.push(("ChannelToAddress".into(), bare_to));
                if matches!(step.status, "delivered" | "read" | "sent") {
                    params.push(("EventType".into(), step.status.to_ascii_uppercase()));
                }
                if step.status == "sent" {
                    params.push(("ChannelStatusMessage".into(), "Message sent".into()));
                }
            } else if matches!(step.status, "delivered" | "undelivered") {
                params.push((
                    "RawDlrDoneDate".into(),
                    now.format("%y%m%d%H%M").to_string(),
                ));
            }
            (m.status_callback.clone(), params)
        };
        tracing::debug!(sid = %sid, status = step.status, "sandbox status step");
        if let Some(url) = callback {
            let record = post_twilio_callback(&shared, &url, &params, step.status).await;
            if let Some(m) = shared.lock().get_mut(&sid) {
                m.callbacks.push(record);
            }
        }
    }
}

/// POST one status callback, signed over the URL exactly as given.
async fn post_twilio_callback(
    shared: &Shared,
    url: &str,
    params: &[(String, String)],
    status: &str,
) -> CallbackRecord {
    let signature = twilio_signature(shared.config.auth_token.expose_secret(), url, params);
    let result = shared
        .http
        .post(url)
        .timeout(CALLBACK_TIMEOUT)
        .header("X-Twilio-Signature", signature)
        .header(
            "I-Twilio-Idempotency-Token",
            uuid::Uuid::new_v4().to_string(),
        )
        .header(reqwest::header::USER_AGENT, "TwilioProxy/1.1")
        .form(params)
        .send()
        .await;
    record(url, status, result)
}

fn record(
    url: &str,
    status: &str,
    result: Result<reqwest::Response, reqwest::Error>,
) -> CallbackRecord {
    let (http_status, error) = match result {
        Ok(response) => {
            let code = response.status().as_u16();
            if !response.status().is_success() {
                tracing::warn!(
                    status,
                    http_status = code,
                    "sandbox callback was not accepted"
                );
            }
            (Some(code), None)
        }
        Err(e) => {
            let text = e.without_url().to_string();
            tracing::warn!(status, error = %text, "sandbox could not deliver a callback");
            (None, Some(text))
        }
    };
    CallbackRecord {
        status: status.to_string(),
        url: url.to_string(),
        http_status,
        error,
        at: Utc::now(),
    }
}

/// The WhatsApp Business Account id the sandbox reports in webhooks.
pub(crate) const WABA_ID: &str = "100000000000000";

/// Digits of a configured display number.
pub(crate) fn display_number(shared: &Shared) -> String {
    shared
        .config
        .whatsapp_number
        .chars()
        .filter(char::is_ascii_digit)
        .collect()
}

async fn run_meta(shared: Arc<Shared>, wamid: String, plan: Vec<Step>) {
    for step in plan {
        if !pause(&shared).await {
            return;
        }
        let now = Utc::now();
        let (recipient, category) = {
            let mut inner = shared.lock();
            let Some(m) = inner.get_mut(&wamid) else {
                return;
            };
            m.status = step.status.to_string();
            m.date_updated = now;
            m.history.push(StatusEvent {
                status: step.status.to_string(),
                at: now,
            });
            if step.status == "sent" {
                m.date_sent = Some(now);
            }
            if let Some((code, message)) = step.error {
                m.error_code = Some(code);
                m.error_message = Some(message.to_string());
            }
            let category = if m.template_name.is_some() {
                "utility"
            } else {
                "service"
            };
            (m.to.trim_start_matches('+').to_string(), category)
        };
        let Some(base) = shared.heimdall_url() else {
            continue;
        };
        let mut status = json!({
            "id": wamid,
            "status": step.status,
            "timestamp": now.timestamp().to_string(),
            "recipient_id": recipient,
        });
        if matches!(step.status, "sent" | "delivered") {
            status["pricing"] = json!({
                "billable": category != "service",
                "pricing_model": "PMP",
                "category": category,
            });
        }
        if let Some((code, message)) = step.error {
            status["errors"] = json!([{
                "code": code,
                "title": message,
                "message": message,
                "error_data": {"details": message},
                "href": "https://developers.facebook.com/docs/whatsapp/cloud-api/support/error-codes/",
            }]);
        }
        let body = json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": WABA_ID,
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": display_number(&shared),
                            "phone_number_id": shared.config.meta_phone_number_id,
                        },
                        "statuses": [status],
                    },
                }],
            }],
        });
        let url = format!("{}/webhooks/meta", base.as_str().trim_end_matches('/'));
        let record = post_meta_webhook(&shared, &url, &body, step.status).await;
        if let Some(m) = shared.lock().get_mut(&wamid) {
            m.callbacks.push(record);
        }
    }
}

/// POST a Meta webhook body, signed with `X-Hub-Signature-256`.
pub(crate) async fn post_meta_webhook(
    shared: &Shared,
    url: &str,
    body: &serde_json::Value,
    status: &str,
) -> CallbackRecord {
    let bytes = serde_json::to_vec(body).unwrap_or_default();
    let signature = meta_signature(shared.config.meta_app_secret.expose_secret(), &bytes);
    let result = shared
        .http
        .post(url)
        .timeout(CALLBACK_TIMEOUT)
        .header("X-Hub-Signature-256", signature)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(reqwest::header::USER_AGENT, "facebookexternalua")
        .body(bytes)
        .send()
        .await;
    record(url, status, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn statuses(plan: &[Step]) -> Vec<&str> {
        plan.iter().map(|s| s.status).collect()
    }

    #[test]
    fn plans() {
        assert_eq!(
            statuses(&twilio_plan(true, None, false)),
            ["sending", "sent", "delivered", "read"]
        );
        assert_eq!(
            statuses(&twilio_plan(false, None, false)),
            ["sending", "sent", "delivered"]
        );
        assert_eq!(
            statuses(&twilio_plan(false, None, true)),
            ["queued", "sending", "sent", "delivered"]
        );
        let fail = crate::magic::recipient(crate::magic::TO_FAIL_63007);
        let plan = twilio_plan(true, fail, false);
        assert_eq!(statuses(&plan), ["sending", "failed"]);
        assert_eq!(plan[1].error.map(|e| e.0), Some(63007));
        let undelivered = crate::magic::recipient(crate::magic::TO_UNDELIVERED_30003);
        assert_eq!(
            statuses(&twilio_plan(false, undelivered, false)),
            ["sending", "sent", "undelivered"]
        );
        assert_eq!(statuses(&meta_plan(None)), ["sent", "delivered", "read"]);
        let meta_fail = crate::magic::recipient(crate::magic::TO_META_131026);
        assert_eq!(statuses(&meta_plan(meta_fail)), ["failed"]);
    }
}

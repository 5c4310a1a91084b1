//! A message's receipt, `GET /api/v1/messages/{id}/receipt`, end to end
//! against the sandbox standing in for Twilio (SQLite by default;
//! PostgreSQL and Redis when the run asks for them): a campaign message's
//! consent with its evidence and text, the approval, the verdicts at
//! acceptance and in the worker, the provider's answer and the delivered
//! report, each chained record intact once sealed and "changed since
//! chained" after a hand edit; an inbox reply's and an API send's
//! authorization; 404, 400 and 403; the printable page escapes what it
//! shows; and the console's page is for signed-in staff only.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Statement};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use support::{inbound, TestApp};

use heimdall_domain::access::accounts::{self, Role, StaffUser};
use heimdall_domain::access::authz;
use heimdall_domain::audit::chain;
use heimdall_domain::campaigns::{self, Audience, CampaignDraft, VariableSource};
use heimdall_domain::channels::formatting::TextFormat;
use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::api_key::{Scope, Scopes};
use heimdall_domain::entities::{consent, outbound_message};
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::Channel;

const HOSTILE_AGENT: &str = "Mozilla/5.0 <script>alert('x')</script> & co";
const CONSENT_TEXT: &str = "Yes, send me reminders on WhatsApp. Reply STOP to end.";

async fn app() -> (heimdall_sandbox::SandboxHandle, TestApp) {
    let sid = heimdall_sandbox::templates::content_sid("task_reminder");
    support::app_with_sandbox(&[("WA_TEMPLATE_TASK_REMINDER", sid.as_str())]).await
}

/// A contact tagged `tag` with a WhatsApp consent whose user agent is hostile.
async fn contact(app: &TestApp, phone: &str, tag: &str) -> String {
    let core = &app.core;
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: phone.into(),
            name: Some("Kari Nordmann".into()),
            time_zone: Some("Europe/Oslo".into()),
            tags: vec![tag.into()],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    heimdall_domain::consent::record_opt_in(
        &core.db.conn,
        &c.id,
        Channel::WhatsApp,
        None,
        ConsentSource::Api,
        &ConsentEvidence {
            ip: Some("203.0.113.7".into()),
            user_agent: Some(HOSTILE_AGENT.into()),
            page_url: Some("https://example.com/signup".into()),
            consent_text_version: Some("whatsapp:v3".into()),
            consent_text: Some(CONSENT_TEXT.into()),
            ..Default::default()
        },
        "api_key:crm",
        false,
        core.now(),
    )
    .await
    .unwrap();
    c.id
}

/// Poll until the message has been delivered (the sandbox's report).
async fn delivered(app: &TestApp, find: impl Fn(&outbound_message::Model) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let found = outbound_message::Entity::find()
            .all(&app.core.db.conn)
            .await
            .unwrap()
            .into_iter()
            .find(|m| find(m) && m.delivered_at.is_some());
        if let Some(m) = found {
            return m.id;
        }
        assert!(Instant::now() < deadline, "the message was not delivered");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn receipt(app: &TestApp, id: &str) -> Value {
    let res = app.api_get(&format!("/api/v1/messages/{id}/receipt")).await;
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("application/json"));
    res.json().await.unwrap()
}

async fn sql(app: &TestApp, statement: &str) {
    app.core
        .db
        .conn
        .execute_raw(Statement::from_string(app.core.db.backend(), statement))
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn approved_campaign(app: &TestApp, author: &StaffUser, approver: &StaffUser) -> String {
    let core = &app.core;
    let variables: BTreeMap<String, VariableSource> = [
        (
            "task_name".to_string(),
            VariableSource::Field("name".into()),
        ),
        (
            "due_time".to_string(),
            VariableSource::Value("17:00".into()),
        ),
    ]
    .into();
    let c = campaigns::create_draft(
        core,
        author,
        CampaignDraft {
            name: "November reminder".into(),
            channel: Channel::WhatsApp,
            template_name: "task_reminder".into(),
            audience: Audience::Tags {
                tags: vec!["receipt".into()],
            },
            variables,
            scheduled_at: None,
        },
    )
    .await
    .unwrap();
    campaigns::submit(core, author, &c.id).await.unwrap();
    let hash = campaigns::review(core, &c.id, 0)
        .await
        .unwrap()
        .content_hash;
    campaigns::approve(core, approver, &c.id, &hash)
        .await
        .unwrap();
    c.id
}

#[tokio::test]
async fn a_campaign_messages_receipt_shows_what_justified_it_and_whether_it_changed() {
    let (sandbox, app) = app().await;
    let core = &app.core;
    let author =
        heimdall_domain::testing::staff_user(core, "author@example.com", Role::Operator).await;
    let approver =
        heimdall_domain::testing::staff_user(core, "approver@example.com", Role::Approver).await;
    contact(&app, "+4791234567", "receipt").await;
    let campaign_id = approved_campaign(&app, &author, &approver).await;
    let id = delivered(&app, |m| {
        m.campaign_id.as_deref() == Some(campaign_id.as_str())
    })
    .await;
    // Every record cited chained.
    chain::seal(core).await.unwrap();

    let r = receipt(&app, &id).await;
    let m = &r["message"];
    assert_eq!(m["id"], id.as_str());
    assert_eq!(m["channel"], "whatsapp");
    assert_eq!(m["to"], "+4791234567");
    assert_eq!(m["source"], "campaign");
    assert_eq!(m["template"]["name"], "task_reminder");
    assert_eq!(m["free_form"], false);
    assert!(
        m["sent_at"].is_string() && m["delivered_at"].is_string(),
        "{m:#}"
    );
    assert_eq!(m["variables"]["due_time"], "17:00", "{m:#}");
    assert_eq!(m["variables"]["task_name"], "Kari Nordmann", "{m:#}");
    assert_eq!(m["content_cleared"], false);

    // The consent in force, with its evidence and its text.
    let c = &r["consent"]["record"];
    assert_eq!(c["source"], "api", "{r:#}");
    assert_eq!(c["ip"], "203.0.113.7");
    assert_eq!(c["user_agent"], HOSTILE_AGENT);
    assert_eq!(c["page_url"], "https://example.com/signup");
    assert_eq!(c["consent_text_version"], "whatsapp:v3");
    assert_eq!(c["consent_text"], CONSENT_TEXT);
    assert_eq!(
        c["consent_text_hash"],
        heimdall_domain::consent::text_hash(CONSENT_TEXT).as_str()
    );
    assert_eq!(c["recorded_by"], "api_key:crm");
    // Recorded before purposes (no purpose of its own); the message went
    // for its template's.
    assert!(c["purpose"].is_null(), "{c:#}");
    assert_eq!(r["message"]["purpose"], "service", "{r:#}");
    assert!(c["strength"].is_string());
    let gate_detail = r["consent"]["gate_detail"].as_str().unwrap();
    assert!(
        gate_detail.contains("opt-in") && gate_detail.contains(" recorded "),
        "{gate_detail}"
    );

    // The approval: who, when, what it binds to.
    let a = &r["authorization"];
    assert_eq!(a["kind"], "campaign", "{a:#}");
    assert_eq!(a["campaign_id"], campaign_id.as_str());
    assert_eq!(a["approved_by"]["email"], "approver@example.com");
    assert_eq!(a["authors"][0]["email"], "author@example.com");
    let stored = heimdall_domain::entities::campaign::Entity::find_by_id(campaign_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        a["approved_content_hash"].as_str(),
        stored.approved_hash.as_deref()
    );
    assert_eq!(a["approved_template_digest"].as_str().unwrap().len(), 64);
    assert_eq!(a["approval"]["by"]["email"], "approver@example.com");
    assert_eq!(a["approval"]["decision"], "approved");
    assert_eq!(a["approval"]["chain"]["state"], "intact", "{a:#}");

    // The verdicts, at acceptance then in the worker, in time order.
    let stages: Vec<&str> = r["evaluations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, ["accept", "worker"], "{r:#}");
    for e in r["evaluations"].as_array().unwrap() {
        assert_eq!(e["decision"], "pass");
        assert!(e["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["gate"] == "no_consent" && v["verdict"] == "pass"));
        assert_eq!(e["chain"]["state"], "intact", "{e:#}");
        assert_eq!(e["chain"]["entries"][0]["stream"], "tool_calls");
        assert_eq!(e["chain"]["entries"][0]["hash"].as_str().unwrap().len(), 64);
    }
    // The provider's answer and the status reports.
    let p = &r["provider_answers"][0];
    assert_eq!(p["ok"], true, "{r:#}");
    assert_eq!(p["provider"], "twilio");
    assert_eq!(p["answer"], m["provider_sid"]);
    assert_eq!(p["chain"]["state"], "intact");
    let statuses: Vec<&str> = r["status_events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert!(statuses.contains(&"delivered"), "{statuses:?}");
    assert_eq!(c["chain"]["state"], "intact");
    assert_eq!(r["chain"], "intact");
    assert!(r["suppressions"].as_array().unwrap().is_empty());

    // The consent changed by hand after it was chained.
    let consent_id = c["id"].as_str().unwrap().to_string();
    sql(
        &app,
        &format!("UPDATE consents SET ip = '198.51.100.1' WHERE id = '{consent_id}'"),
    )
    .await;
    let r = receipt(&app, &id).await;
    assert_eq!(r["consent"]["record"]["ip"], "198.51.100.1");
    assert_eq!(
        r["consent"]["record"]["chain"]["state"], "changed_since_chained",
        "{r:#}"
    );
    assert!(r["consent"]["record"]["chain"]["entries"][0]["problem"]
        .as_str()
        .unwrap()
        .contains("content changed"));
    assert_eq!(r["chain"], "changed_since_chained");
    assert_eq!(r["evaluations"][0]["chain"]["state"], "intact");

    // The printable page: the hostile user agent is text, never markup.
    for res in [
        app.api_get(&format!("/api/v1/messages/{id}/receipt?format=html"))
            .await,
        app.http
            .get(app.url(&format!("/api/v1/messages/{id}/receipt")))
            .header("X-API-Key", support::API_KEY)
            .header("Accept", "text/html,application/xhtml+xml")
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(res.status(), 200);
        assert!(res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
        assert!(res.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'"));
        let html = res.text().await.unwrap();
        assert!(html.starts_with("<!doctype html>"));
        assert!(!html.contains("<script"), "{html}");
        assert!(
            html.contains("Mozilla/5.0 &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; co")
                || html.contains("Mozilla/5.0 &lt;script&gt;alert('x')&lt;/script&gt; &amp; co"),
            "{html}"
        );
        assert!(html.contains("@media print"));
        assert!(html.contains("approver@example.com"));
        assert!(html.contains(CONSENT_TEXT));
        assert!(html.contains("changed since chained"));
    }
    app.shutdown().await;
    sandbox.stop().await;
}

#[tokio::test]
async fn an_inbox_reply_and_an_api_send_name_their_authorization() {
    let (sandbox, app) = app().await;
    let core = &app.core;
    let operator =
        heimdall_domain::testing::staff_user(core, "operator@example.com", Role::Operator).await;
    let approver =
        heimdall_domain::testing::staff_user(core, "approver@example.com", Role::Approver).await;
    let contact_id = contact(&app, "+4791234568", "none").await;

    // The person writes; an operator replies inside the window.
    let res = app
        .twilio_post(
            "/webhooks/twilio/inbound",
            &support::as_refs(&inbound(
                "SM00000000000000000000000000000301",
                "+4791234568",
                "Can I move my appointment?",
            )),
        )
        .await;
    assert_eq!(res.status(), 200);
    let reply = outbound::accept(
        core,
        SendRequest {
            recipient: Recipient::Contact(contact_id.clone()),
            channel: Channel::WhatsApp,
            content: RequestedContent::Text {
                body: "Yes, Thursday works.".into(),
                media_url: None,
                format: TextFormat::Markdown,
                reply_to: None,
            },
            origin: Origin::Inbox {
                staff: operator.clone(),
                ip: None,
            },
            idempotency_key: None,
            purpose: None,
        },
    )
    .await
    .unwrap()
    .message_id;
    delivered(&app, |m| m.id == reply).await;
    let r = receipt(&app, &reply).await;
    assert_eq!(r["authorization"]["kind"], "staff", "{r:#}");
    assert_eq!(r["authorization"]["staff"]["email"], "operator@example.com");
    assert_eq!(r["authorization"]["staff"]["id"], operator.id.as_str());
    assert_eq!(r["message"]["free_form"], true);
    assert_eq!(r["message"]["text"], "Yes, Thursday works.");
    assert_eq!(
        r["message"]["text_sha256"].as_str().unwrap().len(),
        64,
        "{r:#}"
    );
    assert_eq!(r["message"]["content_cleared"], false);
    // The reply went on conversational consent; the opt-in was on file too.
    assert!(r["consent"]["summary"]
        .as_str()
        .unwrap()
        .starts_with("conversational consent"));
    assert!(r["consent"]["gate_detail"]
        .as_str()
        .unwrap()
        .contains("conversational consent"));

    // An API key bound to the template by an approved automation.
    let key = accounts::create_api_key(
        core,
        "crm reminders",
        "admin@example.com",
        &Scopes::of(&[Scope::Send]),
    )
    .await
    .unwrap();
    let automation = authz::create_automation(
        core,
        "CRM reminders",
        &key.id,
        &["task_reminder".to_string()],
        false,
        "operator@example.com",
    )
    .await
    .unwrap();
    authz::approve_automation(core, &automation.id, &approver.email, Role::Approver)
        .await
        .unwrap();
    let res = app
        .http
        .post(app.url("/api/v1/messages"))
        .header("X-API-Key", key.key.expose_secret())
        .json(
            &json!({"contact_id": contact_id, "template_name": "task_reminder",
            "variables": {"task_name": "Call Bob", "due_time": "17:00"}}),
        )
        .send()
        .await
        .unwrap();
    let status = res.status();
    let body: Value = res.json().await.unwrap();
    assert_eq!(status, 202, "{body}");
    let sent = body["message_id"].as_str().unwrap().to_string();
    // The key itself may read the receipt (it has the send scope).
    let res = app
        .http
        .get(app.url(&format!("/api/v1/messages/{sent}/receipt")))
        .header("X-API-Key", key.key.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    let a = &r["authorization"];
    assert_eq!(a["kind"], "automation", "{a:#}");
    assert_eq!(a["api_key_name"], "crm reminders");
    assert_eq!(a["api_key_id"], key.id.as_str());
    assert_eq!(a["automations"][0]["name"], "CRM reminders");
    assert_eq!(a["automations"][0]["status"], "approved");
    assert_eq!(a["automations"][0]["approved_by"], "approver@example.com");
    // Nothing secret: not the key, not its hash.
    let text = r.to_string();
    assert!(!text.contains(key.key.expose_secret()));
    assert!(!text.contains("key_hash") && !text.contains("confirmation_token"));
    app.shutdown().await;
    sandbox.stop().await;
}

#[tokio::test]
async fn unknown_ids_bad_formats_and_keys_without_the_scope_are_refused() {
    let app = TestApp::spawn(&[]).await;
    let res = app
        .api_get("/api/v1/messages/00000000-0000-0000-0000-000000000000/receipt")
        .await;
    assert_eq!(res.status(), 404);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    let res = app
        .api_get("/api/v1/messages/x/receipt?format=<b>pdf</b>")
        .await;
    assert_eq!(res.status(), 400);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request", "{body}");

    let key = accounts::create_api_key(
        &app.core,
        "contacts only",
        "admin@example.com",
        &Scopes::of(&[Scope::ContactsRead]),
    )
    .await
    .unwrap();
    let res = app
        .http
        .get(app.url("/api/v1/messages/x/receipt"))
        .header("X-API-Key", key.key.expose_secret())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(
        body["error"]["message"].as_str().unwrap().contains("send"),
        "{body}"
    );
    let res = app
        .http
        .get(app.url("/api/v1/messages/x/receipt"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn the_console_page_is_for_signed_in_staff() {
    let app = TestApp::spawn(&[]).await;
    let core = &app.core;
    let message = heimdall_domain::testing::accept_reminder_to(core, "+4791234569").await;
    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // Signed out: to the sign-in page, and back here after it.
    let res = no_redirects
        .get(app.url(&format!("/messages/{message}/receipt")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let to = res.headers()["location"].to_str().unwrap();
    assert!(to.starts_with("/login?next="), "{to}");
    assert!(to.contains("receipt"), "{to}");

    // A viewer (the least role) sees it, and its JSON.
    let password = secrecy::SecretString::from("a long enough password".to_string());
    accounts::create_user(core, "viewer@example.com", None, Role::Viewer, &password)
        .await
        .unwrap();
    let session = heimdall_domain::access::sessions::login(
        core,
        &heimdall_domain::access::sessions::LoginThrottle::new(),
        heimdall_domain::access::sessions::LoginAttempt {
            email: "viewer@example.com",
            password: &password,
            ip: None,
            user_agent: None,
        },
    )
    .await
    .unwrap();
    let cookie = format!(
        "{}={}",
        heimdall_app::server::SESSION_COOKIE,
        session.token.expose_secret()
    );
    let res = no_redirects
        .get(app.url(&format!("/messages/{message}/receipt")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let html = res.text().await.unwrap();
    assert!(html.contains(&message));
    assert!(html.contains(&format!("/messages/{message}/receipt?format=json")));
    assert!(html.contains("bootstrap key"));
    let res = no_redirects
        .get(app.url(&format!("/messages/{message}/receipt?format=json")))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    assert_eq!(r["message"]["id"], message.as_str());
    let res = no_redirects
        .get(app.url("/messages/no-such-message/receipt"))
        .header("Cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    // Sanity: the consent it cites exists.
    assert!(consent::Entity::find()
        .filter(consent::Column::ContactId.eq(r["message"]["contact_id"].as_str().unwrap()))
        .one(&core.db.conn)
        .await
        .unwrap()
        .is_some());
    app.shutdown().await;
}

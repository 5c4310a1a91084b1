//! `/api/v1/reminders` and `/api/v1/schedules` over real HTTP: every bad
//! request answers a clear JSON error with the right status and stores
//! nothing; a good one is stored, read, listed, cancelled or paused; and a
//! reminder that comes due is delivered by the running workers.

mod support;

use heimdall_domain::compliance::message_source::MessageSource;
use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use sea_orm::{EntityTrait, PaginatorTrait};
use serde_json::{json, Value};

use heimdall_domain::access::accounts::Role;
use heimdall_domain::access::authz;
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::entities::{outbound_message, reminder, schedule};
use heimdall_domain::{Channel, Core};
use support::{TestApp, API_KEY};

const PHONE: &str = "+4791234567";
const TEMPLATES: &[(&str, &str)] = &[
    (
        "WA_TEMPLATE_TASK_REMINDER",
        "HX00000000000000000000000000000001",
    ),
    (
        "WA_TEMPLATE_DAILY_BRIEFING",
        "HX00000000000000000000000000000002",
    ),
];

async fn contact(core: &Core) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: PHONE.into(),
            time_zone: Some("Europe/Oslo".into()),
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
            user_agent: Some("Mozilla/5.0 test".into()),
            consent_text_version: Some("v1".into()),
            consent_text: Some("I agree to reminders by WhatsApp.".into()),
            ..Default::default()
        },
        "test",
        false,
        core.now(),
    )
    .await
    .unwrap();
    c.id
}

async fn delete(app: &TestApp, path: &str) -> reqwest::Response {
    app.http
        .delete(app.url(path))
        .header("X-API-Key", API_KEY)
        .send()
        .await
        .unwrap()
}

/// The status and the error code of a JSON error answer.
async fn error_of(res: reqwest::Response) -> (u16, String) {
    let status = res.status().as_u16();
    let body: Value = res.json().await.unwrap();
    let code = body["error"]["code"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    (status, code)
}

#[tokio::test]
async fn reminders_over_http() {
    let app = TestApp::spawn_with(TEMPLATES, false).await;
    let cid = contact(&app.core).await;
    let send_at = (Utc::now() + Duration::hours(1)).to_rfc3339();
    let good = json!({
        "contact_id": cid,
        "template_name": "task_reminder",
        "variables": {"task_name": "Call Bob", "due_time": "17:00"},
        "send_at": send_at,
    });
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };

    // No key.
    let res = app
        .http
        .post(app.url("/api/v1/reminders"))
        .json(&good)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await, (401, "unauthorized".into()));

    for (body, want) in [
        (with("to", json!(PHONE)), (400, "bad_request")),
        (
            json!({"template_name": "task_reminder", "send_at": send_at}),
            (400, "bad_request"),
        ),
        (with("contact_id", json!("nobody")), (404, "not_found")),
        (with("send_at", json!("soon")), (400, "invalid_send_at")),
        (with("tolerance", json!("15m")), (400, "bad_request")),
        (with("tolerance", json!(1)), (400, "invalid_tolerance")),
        (with("colour", json!("red")), (400, "bad_request")),
        (
            with("variables", json!({"task_name": ["x"], "due_time": "1"})),
            (400, "invalid_variables"),
        ),
        (
            with("template_name", json!("nope")),
            (422, "template_not_approved"),
        ),
        (
            with("variables", json!({"task_name": "x"})),
            (422, "template_not_approved"),
        ),
    ] {
        let res = app.api_post("/api/v1/reminders", body.clone()).await;
        let (status, code) = error_of(res).await;
        assert_eq!((status, code.as_str()), want, "{body}");
    }
    let mut by_phone = good.clone();
    by_phone.as_object_mut().unwrap().remove("contact_id");
    by_phone["to"] = json!("not a number");
    let res = app.api_post("/api/v1/reminders", by_phone.clone()).await;
    assert_eq!(error_of(res).await, (400, "invalid_number".into()));
    by_phone["to"] = json!("+4798765432");
    let res = app.api_post("/api/v1/reminders", by_phone).await;
    assert_eq!(error_of(res).await, (404, "not_found".into()));
    let res = app
        .http
        .post(app.url("/api/v1/reminders"))
        .header("X-API-Key", API_KEY)
        .header("Content-Type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(res).await.0, 400);
    assert_eq!(
        reminder::Entity::find()
            .count(&app.core.db.conn)
            .await
            .unwrap(),
        0,
        "refused requests store nothing"
    );

    let res = app.api_post("/api/v1/reminders", good.clone()).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let id = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["state"], "scheduled");
    assert_eq!(created["tolerance_secs"], 900);
    assert_eq!(created["created_by"], "api_key:bootstrap");
    assert!(created["send_at"].is_string());

    let got: Value = app
        .api_get(&format!("/api/v1/reminders/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["variables"]["task_name"], "Call Bob");
    let res = app.api_get("/api/v1/reminders/nope").await;
    assert_eq!(error_of(res).await, (404, "not_found".into()));

    let list: Value = app
        .api_get(&format!(
            "/api/v1/reminders?contact_id={cid}&state=scheduled"
        ))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["reminders"].as_array().unwrap().len(), 1);
    let none: Value = app
        .api_get(&format!("/api/v1/reminders?contact_id={cid}&state=sent"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(none["reminders"].as_array().unwrap().len(), 0);
    let res = app.api_get("/api/v1/reminders?state=later").await;
    assert_eq!(error_of(res).await, (400, "invalid_state".into()));
    let res = app.api_get("/api/v1/reminders?limit=lots").await;
    assert_eq!(error_of(res).await.0, 400);

    let res = delete(&app, &format!("/api/v1/reminders/{id}")).await;
    assert_eq!(res.status(), 200);
    let cancelled: Value = res.json().await.unwrap();
    assert_eq!(cancelled["state"], "cancelled");
    let res = delete(&app, &format!("/api/v1/reminders/{id}")).await;
    assert_eq!(res.status(), 200, "cancelling twice is not an error");
    let res = delete(&app, "/api/v1/reminders/nope").await;
    assert_eq!(error_of(res).await, (404, "not_found".into()));
    app.shutdown().await;
}

#[tokio::test]
async fn schedules_over_http() {
    let app = TestApp::spawn_with(TEMPLATES, false).await;
    let cid = contact(&app.core).await;
    let good = json!({
        "name": "Daily briefing",
        "contact_id": cid,
        "cron": "0 7 * * *",
        "template_name": "daily_briefing",
        "variables": {"date": "today"},
        "variables_url": "https://n8n.example.com/webhook/briefing?token=s3cret",
    });
    let with = |k: &str, v: Value| {
        let mut b = good.clone();
        b[k] = v;
        b
    };
    for (body, want) in [
        (with("cron", json!("at seven")), (400, "invalid_cron")),
        (with("cron", json!("* * * * * *")), (400, "invalid_cron")),
        (
            with("variables_url", json!("file:///etc/passwd")),
            (400, "invalid_variables_url"),
        ),
        (with("name", json!("")), (400, "bad_request")),
        (with("contact_id", json!("nobody")), (404, "not_found")),
        (
            with("template_name", json!("weekly_review")),
            (422, "template_not_approved"),
        ),
        (
            with("variables_url", Value::Null),
            (422, "template_not_approved"),
        ),
    ] {
        let res = app.api_post("/api/v1/schedules", body.clone()).await;
        let (status, code) = error_of(res).await;
        assert_eq!((status, code.as_str()), want, "{body}");
    }
    assert_eq!(
        schedule::Entity::find()
            .count(&app.core.db.conn)
            .await
            .unwrap(),
        0
    );

    let res = app.api_post("/api/v1/schedules", good.clone()).await;
    assert_eq!(res.status(), 201);
    let s: Value = res.json().await.unwrap();
    let id = s["id"].as_str().unwrap().to_string();
    assert_eq!(s["time_zone"], "Europe/Oslo");
    assert_eq!(s["active"], true);
    assert!(s["next_run_at"].is_string());
    assert!(!s.to_string().contains("s3cret"), "{s}");

    let got: Value = app
        .api_get(&format!("/api/v1/schedules/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(got["occurrences"], json!([]));
    let list: Value = app
        .api_get(&format!("/api/v1/schedules?contact_id={cid}&active=true"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);
    let res = app.api_get("/api/v1/schedules?active=maybe").await;
    assert_eq!(error_of(res).await.0, 400);

    let res = delete(&app, &format!("/api/v1/schedules/{id}")).await;
    assert_eq!(res.status(), 200);
    let paused: Value = res.json().await.unwrap();
    assert_eq!(paused["active"], false);
    assert_eq!(paused["next_run_at"], Value::Null);
    let res = app
        .api_post(&format!("/api/v1/schedules/{id}/resume"), json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let resumed: Value = res.json().await.unwrap();
    assert_eq!(resumed["active"], true);
    assert!(resumed["next_run_at"].is_string());
    let res = app
        .api_post("/api/v1/schedules/nope/pause", json!({}))
        .await;
    assert_eq!(error_of(res).await, (404, "not_found".into()));
    app.shutdown().await;
}

#[tokio::test]
async fn a_reminder_that_comes_due_is_delivered_by_the_running_workers() {
    let app = TestApp::spawn_with(TEMPLATES, true).await;
    for s in authz::list_senders(&app.core).await.unwrap() {
        heimdall_domain::sending::senders::set_sender_active(
            &app.core,
            &s.id,
            true,
            "admin@example.com",
            Role::Admin,
        )
        .await
        .unwrap();
    }
    let cid = contact(&app.core).await;
    let res = app
        .api_post(
            "/api/v1/reminders",
            json!({
                "contact_id": cid,
                "template_name": "task_reminder",
                "variables": {"task_name": "Call Bob", "due_time": "17:00"},
                "send_at": (Utc::now() + Duration::seconds(1)).to_rfc3339(),
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    // The delivery job ticks every 15 seconds.
    let deadline = tokio::time::Instant::now() + StdDuration::from_secs(45);
    let r = loop {
        let r: Value = app
            .api_get(&format!("/api/v1/reminders/{id}"))
            .await
            .json()
            .await
            .unwrap();
        if r["state"] != "scheduled" && r["state"] != "sending" {
            break r;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not delivered in time: {r}"
        );
        tokio::time::sleep(StdDuration::from_millis(250)).await;
    };
    assert_eq!(r["state"], "sent", "{r}");
    let mid = r["message_id"].as_str().unwrap();
    let m = outbound_message::Entity::find_by_id(mid)
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.source, MessageSource::Reminder);
    assert_eq!(m.reminder_id.as_deref(), Some(id.as_str()));
    // Sent: too late to cancel.
    let res = delete(&app, &format!("/api/v1/reminders/{id}")).await;
    assert_eq!(error_of(res).await, (409, "conflict".into()));
    app.shutdown().await;
}

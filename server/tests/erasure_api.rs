//! `DELETE /api/v1/contacts/{id}`: erasure through the API. Only a key
//! with `contacts:erase` (no key has it by default) may; a reason is
//! required; an unknown id is 404, an erased one 410, and without
//! `HEIMDALL_ERASURE_KEY` the answer is 503 naming the setting. After it
//! the contact's page still answers (no 500), and the number brought back
//! through the API is held for proof from the number and refused a send.

mod support;

use heimdall_domain::entities::api_key::{Scope, Scopes};
use secrecy::ExposeSecret;
use serde_json::{json, Value};
use support::TestApp;

const KEY: &str = "erasure-key-for-api-tests-0123456789abcdef";
const PHONE: &str = "+4791234580";

async fn erase_key(app: &TestApp) -> String {
    heimdall_domain::access::accounts::create_api_key(
        &app.core,
        "privacy desk",
        "admin@example.com",
        &Scopes::of(&[Scope::ContactsErase]),
    )
    .await
    .unwrap()
    .key
    .expose_secret()
    .to_string()
}

async fn delete(app: &TestApp, id: &str, key: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = app
        .http
        .delete(app.url(&format!("/api/v1/contacts/{id}")))
        .header("X-API-Key", key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn contact_with_consent(app: &TestApp, phone: &str) -> (String, u16) {
    let c: Value = app
        .api_post(
            "/api/v1/contacts",
            json!({"phone": phone, "name": "Grace Hopper"}),
        )
        .await
        .json()
        .await
        .unwrap();
    let id = c["id"].as_str().unwrap().to_string();
    let res = app
        .api_post(
            &format!("/api/v1/contacts/{id}/consents"),
            json!({"channel": "whatsapp", "source": "api", "evidence": {"ip": "203.0.113.9", "user_agent": "test", "consent_text_version": "v1"}}),
        )
        .await;
    (id, res.status().as_u16())
}

#[tokio::test]
async fn erasure_through_the_api() {
    let app = TestApp::spawn(&[
        ("HEIMDALL_ERASURE_KEY", KEY),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
    ])
    .await;
    let (id, status) = contact_with_consent(&app, PHONE).await;
    assert_eq!(status, 201);
    let erase = erase_key(&app).await;

    // A key with every other scope may not.
    let others: Vec<Scope> = Scope::ALL
        .into_iter()
        .filter(|s| *s != Scope::ContactsErase)
        .collect();
    let without = heimdall_domain::access::accounts::create_api_key(
        &app.core,
        "everything else",
        "admin@example.com",
        &Scopes::of(&others),
    )
    .await
    .unwrap();
    let (status, body) = delete(
        &app,
        &id,
        without.key.expose_secret(),
        Some(json!({"reason": "asked"})),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["scope"], "contacts:erase");

    // A reason is required.
    for bad in [
        None,
        Some(json!({})),
        Some(json!({"reason": "  "})),
        Some(json!({"reason": "x", "other": 1})),
        Some(json!({"reason": 12})),
    ] {
        let (status, body) = delete(&app, &id, &erase, bad.clone()).await;
        assert_eq!(status, 400, "{bad:?} -> {body}");
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    let (status, body) = delete(
        &app,
        "no-such-contact",
        &erase,
        Some(json!({"reason": "asked"})),
    )
    .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found");
    // Nothing was erased by the refusals.
    let c: Value = app
        .api_get(&format!("/api/v1/contacts/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["contact"]["phone"], PHONE);

    let (status, body) = delete(
        &app,
        &id,
        &erase,
        Some(json!({"reason": "GDPR request #12"})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["contact_id"], id.as_str());
    let hash = body["number_hash"].as_str().unwrap().to_string();
    assert_eq!(hash.len(), 64);
    assert!(body["counts"].is_object(), "{body}");
    assert!(!body.to_string().contains(PHONE), "{body}");
    assert!(!body.to_string().contains("Grace"), "{body}");

    // Erased already: 410.
    let (status, body) = delete(&app, &id, &erase, Some(json!({"reason": "again"}))).await;
    assert_eq!(status, 410, "{body}");
    assert_eq!(body["error"]["code"], "gone");

    // The shell still answers, with nothing of the person.
    let res = app.api_get(&format!("/api/v1/contacts/{id}")).await;
    assert_eq!(res.status(), 200);
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["contact"]["name"], Value::Null);
    assert!(
        c["contact"]["phone"].as_str().unwrap().starts_with("hash:"),
        "{c}"
    );
    assert_eq!(c["suppressed"]["whatsapp"], true, "{c}");
    let res = app.api_get("/api/v1/contacts").await;
    assert_eq!(res.status(), 200);
    assert!(!res.text().await.unwrap().contains(PHONE));

    // Brought back through the API: held for the number's own proof, and refused.
    let (again, status) = contact_with_consent(&app, PHONE).await;
    assert_ne!(again, id);
    assert_eq!(
        status, 202,
        "an erased number's consent needs proof from the number"
    );
    let res = app
        .api_post(
            "/api/v1/messages",
            json!({"contact_id": again, "channel": "whatsapp", "template_name": "task_reminder",
                   "variables": {"task_name": "x", "due_time": "17:00"}}),
        )
        .await;
    let status = res.status().as_u16();
    let answer: Value = res.json().await.unwrap();
    assert_eq!(status, 422, "{answer}");
    assert_eq!(answer["error"]["code"], "suppressed", "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("asked to be erased"),
        "{answer}"
    );

    // The staff audit row: who, why, the hash; not the number or the name.
    let audit = heimdall_domain::entities::staff_audit::Entity::find()
        .filter(heimdall_domain::entities::staff_audit::Column::Action.eq("contact.erased"))
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .expect("the staff audit row");
    assert_eq!(audit.target.as_deref(), Some(id.as_str()));
    let detail = audit.detail.unwrap();
    assert!(
        detail.contains(&hash) && detail.contains("GDPR request #12"),
        "{detail}"
    );
    assert!(
        !detail.contains(PHONE) && !detail.contains("Grace"),
        "{detail}"
    );
    assert!(audit.actor.contains("privacy desk"), "{}", audit.actor);
    app.shutdown().await;
}

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

#[tokio::test]
async fn without_the_erasure_key_the_api_answers_503_naming_it() {
    let app = TestApp::spawn(&[]).await;
    let (id, _) = contact_with_consent(&app, PHONE).await;
    let erase = erase_key(&app).await;
    let (status, body) = delete(&app, &id, &erase, Some(json!({"reason": "asked"}))).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "not_configured");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("HEIMDALL_ERASURE_KEY"),
        "{body}"
    );
    let c: Value = app
        .api_get(&format!("/api/v1/contacts/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(c["contact"]["phone"], PHONE, "nothing erased");
    app.shutdown().await;
}

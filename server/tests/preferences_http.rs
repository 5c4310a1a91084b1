//! The preference page over real HTTP: a HELP from the person's number is
//! answered with a link to `/p/{token}`; the page (no script, made for a
//! phone) shows what they agreed to; a button stops one kind of message
//! on one channel, or everything, before the page answers, and the gates
//! then refuse exactly that. Bad posts and unknown links change nothing.

mod support;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;

use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::entities::{outbound_message, preference_link, suppression};
use support::{as_refs, inbound, TestApp};

const PHONE: &str = "+4791234567";
const UA: &str = "Mozilla/5.0 (Linux; Android 15; Pixel 9) Mobile Safari/537.36";

/// A contact with consents for both purposes on WhatsApp, through the API.
async fn person(app: &TestApp) -> String {
    let res = app
        .api_post("/api/v1/contacts", json!({"phone": PHONE, "name": "Kari"}))
        .await;
    assert!(res.status().is_success());
    let id = res.json::<serde_json::Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .api_post(
            &format!("/api/v1/contacts/{id}/consents"),
            json!({
                "channel": "whatsapp",
                "source": "api",
                "purposes": ["service", "marketing"],
                "evidence": {"consent_text_version": "v1", "page_url": "https://example.com/signup"}
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["consents"].as_array().unwrap().len(), 2);
    id
}

/// The link in the HELP reply (the message queued for the person).
async fn help_link(app: &TestApp) -> String {
    let res = app
        .twilio_post(
            "/webhooks/twilio/inbound",
            &as_refs(&inbound("SMhelp0001", PHONE, "HELP")),
        )
        .await;
    assert_eq!(res.status(), 200);
    let reply = outbound_message::Entity::find()
        .filter(outbound_message::Column::ToAddress.eq(PHONE))
        .all(&app.core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .filter_map(|m| m.body)
        .find(|b| b.contains("/p/"))
        .expect("the HELP reply carries the link");
    let at = reply.find("/p/").unwrap();
    let token: String = reply[at + 3..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect();
    assert_eq!(token.len(), 22, "{reply}");
    token
}

async fn send(app: &TestApp, id: &str, template: &str) -> (u16, serde_json::Value) {
    let mut body = json!({"contact_id": id, "template_name": template, "variables": {"task_name": "x", "due_time": "y"}});
    if template == "spring_offer" {
        body["variables"] = json!({"name": "Kari"});
    }
    let res = app.api_post("/api/v1/messages", body).await;
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or_default())
}

async fn post(app: &TestApp, token: &str, form: &[(&str, &str)]) -> (u16, String) {
    let res = app
        .http
        .post(app.url(&format!("/p/{token}")))
        .header("User-Agent", UA)
        .form(form)
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

async fn suppressions(app: &TestApp) -> u64 {
    suppression::Entity::find()
        .filter(suppression::Column::LiftedAt.is_null())
        .count(&app.core.db.conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_help_link_opens_a_page_that_withdraws_one_purpose_or_everything() {
    let app = TestApp::spawn(&[(
        "WA_TEMPLATE_TASK_REMINDER",
        "HX00000000000000000000000000000001",
    )])
    .await;
    support::activate_senders(&app).await;
    heimdall_domain::templates::upsert(
        &app.core.db.conn,
        heimdall_domain::templates::TemplateSpec {
            name: "spring_offer".into(),
            provider: "twilio".into(),
            provider_id: Some("HX00000000000000000000000000000009".into()),
            category: "MARKETING".into(),
            language: "en".into(),
            body: "Hi {{1}}, 20% off this week".into(),
            variables: vec!["name".into()],
            approval_status: heimdall_domain::templates::TemplateApproval::Approved,
            rejection_reason: None,
            source: "settings".into(),
        },
        false,
        app.core.now(),
    )
    .await
    .unwrap();
    let id = person(&app).await;
    let token = help_link(&app).await;
    // Only the token's hash is kept.
    let links = preference_link::Entity::find()
        .all(&app.core.db.conn)
        .await
        .unwrap();
    assert_eq!(links.len(), 1);
    assert_ne!(links[0].token_hash, token);

    let res = app
        .http
        .get(app.url(&format!("/p/{token}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers().contains_key("content-security-policy"));
    let page = res.text().await.unwrap();
    assert!(!page.contains("<script"), "no script");
    assert!(page.contains("name=\"viewport\""));
    assert!(page.contains("ending in 4567"));
    assert!(!page.contains(PHONE), "the number is not shown in full");
    assert!(page.contains("Offers and news") && page.contains("Reminders and account messages"));
    assert!(page.contains("You receive these"));
    // Opening the page (as a link preview would) changed nothing.
    assert_eq!(suppressions(&app).await, 0);

    // A post that names nothing, or a purpose that does not exist, changes nothing.
    let before = suppressions(&app).await;
    assert_eq!(post(&app, &token, &[("what", "nonsense")]).await.0, 400);
    let (status, body) = post(
        &app,
        &token,
        &[
            ("what", "purpose"),
            ("channel", "whatsapp"),
            ("purpose", "raffles"),
        ],
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("Nothing was changed"));
    assert_eq!(suppressions(&app).await, before);

    // Stop marketing on WhatsApp: effective before the page answers.
    let (status, body) = post(
        &app,
        &token,
        &[
            ("what", "purpose"),
            ("channel", "whatsapp"),
            ("purpose", "marketing"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("Done: you will receive no more offers and news messages by WhatsApp"),
        "{body}"
    );
    let (status, refused) = send(&app, &id, "spring_offer").await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(
        refused["error"]["code"],
        Gate::Suppressed.code(),
        "{refused}"
    );
    let (status, accepted) = send(&app, &id, "task_reminder").await;
    assert_eq!(status, 202, "{accepted}");

    // Stop everything.
    let (status, body) = post(&app, &token, &[("what", "everything")]).await;
    assert_eq!(status, 200);
    assert!(body.contains("you will receive nothing more"));
    assert!(
        !body.contains("id=\"stop-everything\""),
        "nothing left to stop"
    );
    let (status, refused) = send(&app, &id, "task_reminder").await;
    assert_eq!(status, 422, "{refused}");

    // Unknown and malformed links open nothing.
    for bad in ["AAAAAAAAAAAAAAAAAAAAAA", "x", "..%2F..%2Fetc"] {
        let res = app
            .http
            .get(app.url(&format!("/p/{bad}")))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404, "{bad}");
    }
    // Guessing links by posting is limited per address, and a refused
    // post changes nothing.
    let suppressed = suppressions(&app).await;
    let mut answers = Vec::new();
    for _ in 0..40 {
        answers.push(
            post(&app, "AAAAAAAAAAAAAAAAAAAAAA", &[("what", "everything")])
                .await
                .0,
        );
    }
    assert!(
        answers.iter().all(|s| *s == 404 || *s == 429),
        "{answers:?}"
    );
    assert!(answers.contains(&429), "{answers:?}");
    assert_eq!(suppressions(&app).await, suppressed);
}

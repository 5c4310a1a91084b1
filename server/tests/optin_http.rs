//! The public opt-in pages and the forms/consents API over real HTTP: the
//! form page's markup, a submission's evidence stored exactly, errors
//! beside their fields with nothing recorded, the honeypot and the rate
//! limit, double opt-in through the confirmation link, QR landing pages
//! and images that decode to the right URL, CSV import and export.

mod support;

use heimdall_domain::compliance::gates::ConsentStatus;
use std::net::IpAddr;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::{json, Value};

use heimdall_domain::entities::{consent, contact, outbound_message, qr_code};
use heimdall_domain::optin;
use support::{TestApp, API_KEY};

const UA: &str = "Mozilla/5.0 (Linux; Android 15; Pixel 9) Mobile Safari/537.36";
const WA_TEXT: &str = "Yes, send me updates about <this> listing on WhatsApp & more.";
const SMS_TEXT: &str = "Yes, text me updates about this listing.";

/// The app, believing `X-Forwarded-For` from the test client (127.0.0.1)
/// so each test can speak from its own addresses.
async fn app() -> TestApp {
    let app = TestApp::spawn_with(&[("HEIMDALL_PROGRAM_NAME", "Elm Realty")], false).await;
    optin::set_trusted_proxies(&app.core, &["127.0.0.1".parse().unwrap()], "test")
        .await
        .unwrap();
    app
}

async fn create_form(app: &TestApp, slug: &str, double_opt_in: bool) -> Value {
    let res = app
        .api_post(
            "/api/v1/forms",
            json!({
                "slug": slug,
                "title": "12 Elm St <open house>",
                "intro": "Get updates about this home.\n\nWe never share your number.",
                "fields": [{"key": "email", "label": "Email", "required": false}],
                "thank_you": "Thanks for visiting!",
                "channels": [
                    {"channel": "whatsapp", "consent_text": WA_TEXT},
                    {"channel": "sms", "consent_text": SMS_TEXT}
                ],
                "double_opt_in": double_opt_in
            }),
        )
        .await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn post_form(app: &TestApp, path: &str, ip: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let res = app
        .http
        .post(app.url(path))
        .header("User-Agent", UA)
        .header("X-Forwarded-For", ip)
        .form(fields)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

fn good<'a>(phone: &'a str, channels: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    let mut v = vec![
        ("name", "Ada Lovelace"),
        ("phone", phone),
        ("field_email", "ada@example.com"),
        ("website", ""),
    ];
    for c in channels {
        v.push(("channel", c));
    }
    v.push(("text_version_whatsapp", "1"));
    v.push(("text_version_sms", "1"));
    v
}

async fn all_consents(app: &TestApp) -> Vec<consent::Model> {
    consent::Entity::find()
        .all(&app.core.db.conn)
        .await
        .unwrap()
}

async fn count_contacts(app: &TestApp) -> u64 {
    contact::Entity::find()
        .count(&app.core.db.conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn the_form_page_is_accessible_escaped_html_that_needs_no_script() {
    let app = app().await;
    create_form(&app, "elm-st", false).await;
    let res = app.http.get(app.url("/optin/elm-st")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    assert!(res.headers().contains_key("content-security-policy"));
    let html = res.text().await.unwrap();
    assert!(html.starts_with("<!doctype html>\n<html lang=\"en\">"));
    assert!(html.contains("name=\"viewport\""));
    assert!(!html.contains("<script"), "works without JavaScript");
    // Staff text is escaped, never markup.
    assert!(html.contains("<h1>12 Elm St &lt;open house&gt;</h1>"));
    assert!(html.contains("about &lt;this&gt; listing on WhatsApp &amp; more."));
    assert!(html.contains("<p>Get updates about this home.</p><p>We never share your number.</p>"));
    // Labels, a fieldset with a legend, unticked boxes, the version shown.
    assert!(html.contains("<label for=\"name\">"));
    assert!(html.contains("<label for=\"phone\">"));
    assert!(html.contains("autocomplete=\"tel\""));
    assert!(html.contains("<fieldset"));
    assert!(html.contains("<legend>How may we message you?</legend>"));
    for ch in ["whatsapp", "sms"] {
        assert!(html.contains(&format!(
            "<input type=\"checkbox\" id=\"channel-{ch}\" name=\"channel\" value=\"{ch}\"><label for=\"channel-{ch}\">"
        )));
        assert!(html.contains(&format!(
            "<input type=\"hidden\" name=\"text_version_{ch}\" value=\"1\">"
        )));
    }
    assert!(!html.contains(" checked"));
    // The honeypot is hidden from people and assistive technology.
    assert!(html.contains("<div aria-hidden=\"true\" class=\"hp\">"));
    assert!(html.contains("name=\"website\" value=\"\" tabindex=\"-1\" autocomplete=\"off\""));
    let css = app
        .http
        .get(app.url("/optin-assets/optin.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.text().await.unwrap().contains(".hp{position:absolute"));
    let missing = app.http.get(app.url("/optin/nope")).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert!(missing.text().await.unwrap().contains("Page not found"));
    app.shutdown().await;
}

#[tokio::test]
async fn a_submission_stores_its_evidence_exactly() {
    let app = app().await;
    let form = create_form(&app, "elm-st", false).await;
    let (status, html) = post_form(
        &app,
        "/optin/elm-st",
        "203.0.113.10",
        &good("+47 912 34 567", &["whatsapp", "sms"]),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    assert!(html.contains("Thanks for visiting!"));
    assert!(html.contains("<strong>WhatsApp:</strong> you're signed up."));
    let rows = all_consents(&app).await;
    assert_eq!(rows.len(), 2);
    for (ch, text) in [("whatsapp", WA_TEXT), ("sms", SMS_TEXT)] {
        let r = rows.iter().find(|r| r.channel == ch).unwrap();
        assert_eq!(r.status, ConsentStatus::Active);
        assert_eq!(r.source, "web_form");
        assert_eq!(r.ip.as_deref(), Some("203.0.113.10"));
        assert_eq!(r.user_agent.as_deref(), Some(UA));
        assert_eq!(r.page_url, Some(app.url("/optin/elm-st")));
        assert_eq!(r.form_id.as_deref(), form["id"].as_str());
        assert_eq!(r.consent_text_version, Some(format!("{ch}:v1")));
        assert_eq!(r.consent_text.as_deref(), Some(text));
        assert_eq!(
            r.consent_text_hash,
            Some(heimdall_domain::consent::text_hash(text))
        );
    }
    // The same person again: thanked, nothing added.
    let (status, html) = post_form(
        &app,
        "/optin/elm-st",
        "203.0.113.10",
        &good("+4791234567", &["whatsapp"]),
    )
    .await;
    assert_eq!(status, 200);
    assert!(html.contains("you were already signed up"));
    assert_eq!(all_consents(&app).await.len(), 2);
    app.shutdown().await;
}

#[tokio::test]
async fn without_a_trusted_proxy_the_peer_address_is_recorded() {
    let app = TestApp::spawn_with(&[], false).await;
    create_form(&app, "elm-st", false).await;
    let (status, _) = post_form(
        &app,
        "/optin/elm-st",
        "198.51.100.77",
        &good("+4791234567", &["sms"]),
    )
    .await;
    assert_eq!(status, 200);
    let rows = all_consents(&app).await;
    assert_eq!(rows[0].ip.as_deref(), Some("127.0.0.1"));
    app.shutdown().await;
}

#[tokio::test]
async fn errors_are_shown_beside_their_fields_and_nothing_is_recorded() {
    let app = app().await;
    create_form(&app, "elm-st", false).await;
    let (status, html) = post_form(
        &app,
        "/optin/elm-st",
        "203.0.113.20",
        &[
            ("name", "<b>Ada</b>"),
            ("phone", "555 12"),
            ("text_version_whatsapp", "1"),
            ("website", ""),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert!(html.contains("<title>Error: "));
    assert!(html.contains(
        "<div role=\"alert\" tabindex=\"-1\" id=\"error-summary\" autofocus class=\"summary\">"
    ));
    assert!(html.contains("<a href=\"#phone\">"));
    assert!(html.contains("<a href=\"#channel-whatsapp\">"));
    // The phone field: marked invalid, described by its hint and error.
    assert!(html.contains("aria-describedby=\"phone-hint phone-error\" aria-invalid=\"true\""));
    assert!(html.contains("<p id=\"phone-error\" class=\"error\">"));
    // The channels: the fieldset points at its error.
    assert!(html.contains("aria-describedby=\"channels-hint channels-error\""));
    assert!(html.contains("Tick at least one way we may message you."));
    // What the person typed comes back, escaped.
    assert!(html.contains("value=\"&lt;b&gt;Ada&lt;/b&gt;\""));
    assert!(html.contains("value=\"555 12\""));
    assert_eq!(count_contacts(&app).await, 0);
    assert_eq!(all_consents(&app).await.len(), 0);

    // No User-Agent (a script): refused, nothing recorded.
    let res = app
        .http
        .post(app.url("/optin/elm-st"))
        .header("X-Forwarded-For", "203.0.113.21")
        .form(&good("+4791234567", &["sms"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res
        .text()
        .await
        .unwrap()
        .contains("did not identify itself"));
    // A body that is not a form.
    let res = app
        .http
        .post(app.url("/optin/elm-st"))
        .header("User-Agent", UA)
        .header("X-Forwarded-For", "203.0.113.22")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .body("%%%")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(count_contacts(&app).await, 0);
    app.shutdown().await;
}

#[tokio::test]
async fn the_honeypot_and_the_rate_limit_record_nothing() {
    let app = app().await;
    create_form(&app, "elm-st", false).await;
    let mut bot = good("+4791234567", &["sms"]);
    bot.retain(|(k, _)| *k != "website");
    bot.push(("website", "http://spam.example"));
    let (status, html) = post_form(&app, "/optin/elm-st", "203.0.113.30", &bot).await;
    assert_eq!(status, 200);
    assert!(html.contains("Thanks for visiting!"));
    assert_eq!(count_contacts(&app).await, 0);

    // Five submissions per address in ten minutes; the sixth is refused.
    let phones = [
        "+4791234501",
        "+4791234502",
        "+4791234503",
        "+4791234504",
        "+4791234505",
        "+4791234506",
    ];
    for p in &phones[..5] {
        let (status, _) =
            post_form(&app, "/optin/elm-st", "203.0.113.31", &good(p, &["sms"])).await;
        assert_eq!(status, 200);
    }
    let res = app
        .http
        .post(app.url("/optin/elm-st"))
        .header("User-Agent", UA)
        .header("X-Forwarded-For", "203.0.113.31")
        .form(&good(phones[5], &["sms"]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 429);
    let wait: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(wait > 0 && wait <= 600);
    assert!(res.text().await.unwrap().contains("too many sign-ups"));
    assert_eq!(count_contacts(&app).await, 5);
    // Another address is not affected.
    let (status, _) = post_form(
        &app,
        "/optin/elm-st",
        "203.0.113.32",
        &good(phones[5], &["sms"]),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(count_contacts(&app).await, 6);
    app.shutdown().await;
}

#[tokio::test]
async fn double_opt_in_is_confirmed_by_the_link_and_its_button() {
    let app = app().await;
    create_form(&app, "elm-st", true).await;
    let (status, html) = post_form(
        &app,
        "/optin/elm-st",
        "203.0.113.40",
        &good("+4791234567", &["sms"]),
    )
    .await;
    assert_eq!(status, 200, "{html}");
    let rows = all_consents(&app).await;
    assert_eq!(rows[0].status, ConsentStatus::Pending);
    let m = outbound_message::Entity::find()
        .filter(outbound_message::Column::Source.eq("optin"))
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    let body = m.body.unwrap();
    assert!(body.contains("Reply STOP to opt out"));
    let at = body.find("/optin/confirm/").unwrap();
    let link: String = body[at..]
        .chars()
        .take_while(|c| !c.is_whitespace())
        .collect::<String>()
        .trim_end_matches('.')
        .to_string();
    assert!(body.contains(&app.url(&link)));

    // Opening the link (or a preview fetching it) confirms nothing.
    let page = app.http.get(app.url(&link)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["referrer-policy"], "no-referrer");
    let html = page.text().await.unwrap();
    assert!(html.contains(&format!("<form method=\"post\" action=\"{link}\">")));
    assert_eq!(all_consents(&app).await[0].status, ConsentStatus::Pending);
    let done = app.http.post(app.url(&link)).send().await.unwrap();
    assert_eq!(done.status(), 200);
    assert!(done.text().await.unwrap().contains("you're confirmed"));
    let row = &all_consents(&app).await[0];
    assert_eq!(row.status, ConsentStatus::Active);
    assert!(row.confirmed_at.is_some());

    let bad = app
        .http
        .get(app.url("/optin/confirm/not-a-token-at-all-aaaaaaaaaaaaaa"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 404);
    app.shutdown().await;
}

#[tokio::test]
async fn qr_codes_land_count_scans_serve_images_and_mark_consents() {
    let app = app().await;
    let form = create_form(&app, "elm-st", false).await;
    let id = form["id"].as_str().unwrap();
    let res = app
        .api_post(
            &format!("/api/v1/forms/{id}/qr-codes"),
            json!({"source_label": "open house 12 Elm St"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let qr: Value = res.json().await.unwrap();
    let code = qr["code"].as_str().unwrap().to_string();
    let target = app.url(&format!("/q/{code}"));
    assert_eq!(qr["url"], target.as_str());
    assert_eq!(
        qr["whatsapp_link"],
        "https://wa.me/14155238886?text=Hi%21%20I%20scanned%20the%20code%20at%20open%20house%2012%20Elm%20St."
    );

    let landing = app.http.get(&target).send().await.unwrap();
    assert_eq!(landing.status(), 200);
    let html = landing.text().await.unwrap();
    assert!(html.contains("You scanned our code at open house 12 Elm St."));
    assert!(html.contains(&format!("<form method=\"post\" action=\"/q/{code}\"")));
    assert!(html.contains("href=\"https://wa.me/14155238886?text=Hi%21%20I%20scanned"));
    assert!(html.contains("Message us on WhatsApp"));

    // The PNG decodes to the landing URL; SVG and print page are served.
    let png = app
        .http
        .get(app.url(&format!("/q/{code}.png?size=300")))
        .send()
        .await
        .unwrap();
    assert_eq!(png.status(), 200);
    assert_eq!(png.headers()["content-type"], "image/png");
    let img = image::load_from_memory(&png.bytes().await.unwrap())
        .unwrap()
        .to_luma8();
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        img.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    assert_eq!(grids[0].decode().unwrap().1, target);
    let svg = app
        .http
        .get(app.url(&format!("/q/{code}.svg")))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().contains("<svg"));
    let print = app
        .http
        .get(app.url(&format!("/q/{code}/print")))
        .send()
        .await
        .unwrap();
    assert_eq!(print.status(), 200);
    let html = print.text().await.unwrap();
    assert!(html.contains("<svg") && html.contains("open house 12 Elm St"));
    assert!(html.contains(&format!("<p class=\"url\">{target}</p>")));
    assert_eq!(
        app.http
            .get(app.url("/q/zzzzzzzz.png"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.http
            .get(app.url("/q/zzzzzzzz"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    // Only the landing page counts a scan.
    let row = qr_code::Entity::find()
        .filter(qr_code::Column::Code.eq(&code))
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.scans, 1);

    let (status, _) = post_form(
        &app,
        &format!("/q/{code}"),
        "203.0.113.50",
        &good("+4791234567", &["whatsapp"]),
    )
    .await;
    assert_eq!(status, 200);
    let c = &all_consents(&app).await[0];
    assert_eq!(c.source, "qr");
    assert_eq!(c.qr_code.as_deref(), Some(code.as_str()));
    assert_eq!(c.page_url.as_deref(), Some(target.as_str()));
    app.shutdown().await;
}

#[tokio::test]
async fn the_forms_api_creates_lists_changes_and_versions() {
    let app = app().await;
    let bad = app
        .api_post(
            "/api/v1/forms",
            json!({"slug": "x", "title": "", "channels": []}),
        )
        .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_form");
    for f in ["slug", "title", "channels"] {
        assert!(body["error"]["fields"][f].is_string(), "{body}");
    }
    let form = create_form(&app, "elm-st", false).await;
    let id = form["id"].as_str().unwrap();
    let dup = app
        .api_post(
            "/api/v1/forms",
            json!({"slug": "elm-st", "title": "t", "channels": [{"channel": "sms", "consent_text": "ok"}]}),
        )
        .await;
    assert_eq!(dup.status(), 409);
    let v2 = app
        .api_post(
            &format!("/api/v1/forms/{id}/consent-texts"),
            json!({"channel": "sms", "text": "Yes, text me about this and other homes."}),
        )
        .await;
    assert_eq!(v2.status(), 201);
    let v2: Value = v2.json().await.unwrap();
    assert_eq!(v2["label"], "sms:v2");
    let patched = app
        .http
        .patch(app.url(&format!("/api/v1/forms/{id}")))
        .header("X-API-Key", API_KEY)
        .json(&json!({"title": "Elm St", "double_opt_in": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(patched.status(), 200);
    let one: Value = app
        .api_get(&format!("/api/v1/forms/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(one["form"]["title"], "Elm St");
    assert_eq!(one["form"]["double_opt_in"], true);
    assert_eq!(one["consent_texts"].as_array().unwrap().len(), 3);
    assert_eq!(one["stats"]["contacts"], 0);
    let list: Value = app.api_get("/api/v1/forms").await.json().await.unwrap();
    assert_eq!(list["forms"].as_array().unwrap().len(), 1);
    let missing = app.api_get("/api/v1/forms/nope").await;
    assert_eq!(missing.status(), 404);
    let anon = app.http.get(app.url("/api/v1/forms")).send().await.unwrap();
    assert_eq!(anon.status(), 401);
    app.shutdown().await;
}

#[tokio::test]
async fn consents_import_from_csv_and_export_for_audits() {
    let app = app().await;
    let csv = "phone,channel,source,captured_at,page_url,consent_text_version,consent_text\n\
+4791234567,sms,Trade show sheet,2026-03-14T15:09:26Z,https://old-crm.example.com/f/7,crm-v3,I agree.\n\
+4791234568,sms,,2026-03-14T15:09:26Z,https://old-crm.example.com/f/7,crm-v3,I agree.\n";
    let res = app
        .http
        .post(app.url("/api/v1/consents/import"))
        .header("X-API-Key", API_KEY)
        .header("Content-Type", "text/csv")
        .body(csv)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    assert_eq!(report["imported"], 1);
    assert_eq!(report["refused"][0]["row"], 3);
    assert!(report["refused"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("source"));
    let bad = app
        .http
        .post(app.url("/api/v1/consents/import"))
        .header("X-API-Key", API_KEY)
        .header("Content-Type", "text/csv")
        .body("phone,channel\n+4791234567,sms\n")
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_csv");

    let c = contact::Entity::find()
        .one(&app.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    let json_res = app
        .api_get(&format!(
            "/api/v1/contacts/{}/consents/export?format=json",
            c.id
        ))
        .await;
    assert_eq!(json_res.status(), 200);
    assert!(json_res.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .contains(".json"));
    let export: Value = json_res.json().await.unwrap();
    assert_eq!(export["consents"][0]["source"], "import");
    assert_eq!(
        export["consents"][0]["page_url"],
        "https://old-crm.example.com/f/7"
    );
    let csv_res = app
        .api_get(&format!(
            "/api/v1/contacts/{}/consents/export?format=csv",
            c.id
        ))
        .await;
    assert_eq!(csv_res.status(), 200);
    assert!(csv_res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = csv_res.text().await.unwrap();
    assert!(text.starts_with("record_type,contact_id,contact_phone"));
    assert!(text.contains(",'+4791234567,"));
    assert_eq!(
        app.api_get(&format!(
            "/api/v1/contacts/{}/consents/export?format=xml",
            c.id
        ))
        .await
        .status(),
        400
    );
    assert_eq!(
        app.api_get("/api/v1/contacts/nope/consents/export")
            .await
            .status(),
        404
    );
    // The consent API still requires evidence.
    let res = app
        .api_post(
            &format!("/api/v1/contacts/{}/consents", c.id),
            json!({"channel": "whatsapp", "source": "web_form", "evidence": {}}),
        )
        .await;
    assert_eq!(res.status(), 400);
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    assert_eq!(optin::trusted_proxies(&app.core).await.unwrap(), vec![ip]);
    app.shutdown().await;
}

/// Issue 22: a form asked per purpose over HTTP. The API takes a purpose per
/// consent text (an unknown one, or asking a channel both ways, is a 400
/// that creates nothing); the page shows one labelled checkbox per purpose
/// with its own version; a post records one consent per ticked box, naming
/// its purpose.
#[tokio::test]
async fn a_form_asked_per_purpose_shows_a_box_per_purpose_and_records_each() {
    use heimdall_domain::consent::purposes::{self, NewPurpose};
    let app = app().await;
    purposes::create(
        &app.core.db.conn,
        &NewPurpose {
            name: "reminders".into(),
            label: "Viewing reminders".into(),
            description: String::new(),
            marketing: false,
        },
        "test",
        app.core.now(),
    )
    .await
    .unwrap();
    let body = |purpose: &str| {
        json!({
            "slug": "elm-st",
            "title": "12 Elm St",
            "channels": [
                {"channel": "whatsapp", "purpose": purpose, "consent_text": "Yes, remind me of viewings."},
                {"channel": "whatsapp", "purpose": "marketing", "consent_text": "Yes, send me <offers>."}
            ]
        })
    };
    let bad = app.api_post("/api/v1/forms", body("birthdays")).await;
    assert_eq!(bad.status(), 400);
    let bad: Value = bad.json().await.unwrap();
    assert!(
        bad["error"]["fields"]["channels.whatsapp.birthdays"]
            .as_str()
            .unwrap()
            .contains("no purpose"),
        "{bad}"
    );
    let form = app.api_post("/api/v1/forms", body("reminders")).await;
    assert_eq!(form.status(), 201);
    let form: Value = form.json().await.unwrap();
    let id = form["id"].as_str().unwrap();
    // The channel is asked per purpose: a text for it once is refused.
    let once = app
        .api_post(
            &format!("/api/v1/forms/{id}/consent-texts"),
            json!({"channel": "whatsapp", "text": "Yes to everything."}),
        )
        .await;
    assert_eq!(once.status(), 400);
    let labels: Vec<String> = form["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["label"].as_str().unwrap().to_string())
        .collect();
    // Versions are numbered per form and channel (the texts in name order).
    assert_eq!(labels, ["whatsapp:marketing:v1", "whatsapp:reminders:v2"]);

    let html = app
        .http
        .get(app.url("/optin/elm-st"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains(
        "<input type=\"checkbox\" id=\"channel-whatsapp-reminders\" name=\"channel\" value=\"whatsapp:reminders\"><label for=\"channel-whatsapp-reminders\"><strong>WhatsApp: Viewing reminders</strong>"
    ), "{html}");
    assert!(html.contains("name=\"text_version_whatsapp:reminders\" value=\"2\""));
    assert!(html.contains("name=\"text_version_whatsapp:marketing\" value=\"1\""));
    assert!(html.contains("Yes, send me &lt;offers&gt;."));

    let (status, page) = post_form(
        &app,
        "/optin/elm-st",
        "203.0.113.7",
        &[
            ("name", "Ada Lovelace"),
            ("phone", "+4791234567"),
            ("channel", "whatsapp:reminders"),
            ("text_version_whatsapp:reminders", "2"),
            ("text_version_whatsapp:marketing", "1"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("WhatsApp (Viewing reminders)"), "{page}");
    let rows = all_consents(&app).await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].purpose.as_deref(), Some("reminders"));
    assert_eq!(
        rows[0].consent_text_version.as_deref(),
        Some("whatsapp:reminders:v2")
    );
    // A box the page did not offer records nothing.
    let (status, _) = post_form(
        &app,
        "/optin/elm-st",
        "203.0.113.8",
        &[
            ("name", "Ada Lovelace"),
            ("phone", "+4791234568"),
            ("channel", "whatsapp:service"),
            ("text_version_whatsapp:service", "1"),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(all_consents(&app).await.len(), 1);
    app.shutdown().await;
}

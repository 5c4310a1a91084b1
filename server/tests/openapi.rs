//! The OpenAPI document (`/api/openapi.json`) against the server itself:
//! it is OpenAPI 3.1 with every `$ref` resolving; every route the router
//! registers under `/api/`, `/webhooks/`, `/whatsapp/`, `/healthz`,
//! `/readyz` and `/metrics` is in it with its method, and nothing else is;
//! every error response it documents is provoked here and answers with
//! that status, a body that validates against the documented schema and a
//! documented code; and the reference page at `/api/docs` renders it.
//!
//! The router's routes are read from the source (`.route("…", web::…())`
//! in `server/src`): actix keeps no list of its routes to ask, and a
//! route added anywhere without documenting it fails the comparison.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Duration, Utc};
use regex::Regex;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait};
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::api_key::{Scope, Scopes};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::entities::{reminder, schedule};
use heimdall_domain::Channel;
use heimdall_server::routes::api::ROUTE_SCOPES;
use support::{TestApp, API_KEY, APP_SECRET, VERIFY_TOKEN};

const PREFIXES: &[&str] = &[
    "/api/",
    "/webhooks/",
    "/whatsapp/",
    "/healthz",
    "/readyz",
    "/metrics",
];
const METRICS_TOKEN: &str = "test-metrics-token-0123456789";
const TEMPLATES: &[(&str, &str)] = &[
    (
        "WA_TEMPLATE_TASK_REMINDER",
        "HX00000000000000000000000000000001",
    ),
    (
        "WA_TEMPLATE_DAILY_BRIEFING",
        "HX00000000000000000000000000000002",
    ),
    ("HEIMDALL_METRICS_TOKEN", METRICS_TOKEN),
];
const UNKNOWN_ID: &str = "01a00000-0000-7000-8000-000000000000";

/// [`TEMPLATES`] and an erasure key (erasure answers 503 without one).
fn with_erasure_key() -> Vec<(&'static str, &'static str)> {
    let mut pairs = TEMPLATES.to_vec();
    pairs.push((
        "HEIMDALL_ERASURE_KEY",
        "erasure-key-for-openapi-tests-0123456789",
    ));
    pairs
}

async fn document(app: &TestApp) -> Value {
    let res = app
        .http
        .get(app.url("/api/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the document needs no key");
    res.json().await.unwrap()
}

/// `(METHOD, path)` of every documented operation.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            if [
                "get", "put", "post", "delete", "options", "head", "patch", "trace",
            ]
            .contains(&method.as_str())
            {
                out.push((method.to_uppercase(), path.clone(), op.clone()));
            }
        }
    }
    out
}

/// The value a local `$ref` points at.
fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    doc.pointer(r.strip_prefix('#')?)
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                if k == "$ref" {
                    out.push(v.as_str().unwrap_or("<not a string>").to_string());
                } else {
                    refs(v, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
        _ => {}
    }
}

/// Whether `value` validates against `schema` (the JSON Schema the
/// document uses: `$ref`, `type` (one or several), `properties`,
/// `required`, `additionalProperties`, `items`, `enum`, `oneOf`/`anyOf`).
fn validate(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    if let Some(r) = schema["$ref"].as_str() {
        let target = resolve(doc, r).ok_or_else(|| format!("{at}: {r} does not resolve"))?;
        return validate(doc, target, value, at);
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(list) = schema[key].as_array() {
            let ok = list
                .iter()
                .filter(|s| validate(doc, s, value, at).is_ok())
                .count();
            let fits = if key == "oneOf" { ok == 1 } else { ok >= 1 };
            if !fits {
                return Err(format!("{at}: {value} matches {ok} of {key} {schema}"));
            }
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        if !values.contains(value) {
            return Err(format!("{at}: {value} is not one of {values:?}"));
        }
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    if !types.is_empty() {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !fits {
            return Err(format!("{at}: {value} is {actual}, not {types:?}"));
        }
    }
    if let Value::Object(m) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap();
            if !m.contains_key(name) {
                return Err(format!("{at}: `{name}` is required, in {value}"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, v) in m {
            match props.and_then(|p| p.get(k)) {
                Some(s) => validate(doc, s, v, &format!("{at}.{k}"))?,
                None => {
                    if let Some(extra) = schema.get("additionalProperties") {
                        if extra == &Value::Bool(false) {
                            return Err(format!("{at}: `{k}` is not a documented field"));
                        }
                        if extra.is_object() {
                            validate(doc, extra, v, &format!("{at}.{k}"))?;
                        }
                    }
                }
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            validate(doc, item_schema, v, &format!("{at}[{i}]"))?;
        }
    }
    Ok(())
}

/// The codes an error response documents: the backticked words its
/// description puts before a colon ("`not_found`: no contact ...").
fn documented_codes(description: &str) -> BTreeSet<String> {
    Regex::new(r"`([a-z_]+)`:")
        .unwrap()
        .captures_iter(description)
        .map(|c| c[1].to_string())
        .collect()
}

#[tokio::test]
async fn the_document_is_openapi_3_1_and_every_ref_resolves() {
    let app = TestApp::spawn_with(&[], false).await;
    let doc = document(&app).await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    assert_eq!(doc["info"]["title"], "Heimdall HTTP API");
    assert!(doc["info"]["version"].is_string());
    let mut all = Vec::new();
    refs(&doc, &mut all);
    assert!(all.len() > 20, "the document uses named schemas");
    for r in &all {
        assert!(r.starts_with("#/"), "{r}: only local references");
        assert!(resolve(&doc, r).is_some(), "{r} does not resolve");
    }
    // Every security requirement names a declared scheme.
    let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
    let mut ids = BTreeSet::new();
    let placeholder = Regex::new(r"\{([^}]+)\}").unwrap();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_default().to_string();
        assert!(
            ids.insert(id.clone()),
            "{method} {path}: operationId {id} twice"
        );
        assert!(op["summary"].is_string(), "{method} {path} has no summary");
        assert!(op["tags"][0].is_string(), "{method} {path} has no tag");
        for req in op["security"].as_array().expect("security") {
            for name in req.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{method} {path}: {name}");
            }
        }
        // Path parameters are declared.
        for name in placeholder.captures_iter(&path) {
            let declared = op["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|p| p["name"] == name[1] && p["in"] == "path" && p["required"] == true);
            assert!(
                declared,
                "{method} {path}: path parameter {} undeclared",
                &name[1]
            );
        }
        // Every error answer has its shape and names its codes.
        for (status, r) in op["responses"].as_object().unwrap() {
            let schema = &r["content"]["application/json"]["schema"]["$ref"];
            if status.as_str() >= "400" && schema == "#/components/schemas/ErrorBody" {
                assert!(
                    !documented_codes(r["description"].as_str().unwrap()).is_empty(),
                    "{method} {path} {status}: no code named in {}",
                    r["description"]
                );
            }
        }
    }
    // The gate refusal lists exactly the gates' codes.
    let gate = doc["components"]["schemas"]["Gate"]["enum"]
        .as_array()
        .expect("the Gate schema is an enum");
    let codes: Vec<&str> = heimdall_domain::compliance::gates::Gate::ORDER
        .iter()
        .map(|g| g.code())
        .collect();
    assert_eq!(gate.len(), codes.len());
    for c in codes {
        assert!(gate.contains(&json!(c)), "{c}");
    }
    app.shutdown().await;
}

/// `(METHOD, path)` of every route `server/src` registers under the
/// documented prefixes.
fn registered_routes() -> BTreeSet<(String, String)> {
    let route = Regex::new(r#"\.route\(\s*"([^"]+)"\s*,\s*web::([a-z_]+)\(\)"#).unwrap();
    let other = Regex::new(r#"web::(resource|scope)\(\s*"([^"]+)""#).unwrap();
    let mut out = BTreeSet::new();
    let mut files = vec![std::path::PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/src"
    ))];
    let mut seen = 0;
    while let Some(p) = files.pop() {
        if p.is_dir() {
            files.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        seen += 1;
        let src = std::fs::read_to_string(&p).unwrap();
        let documented = |path: &str| PREFIXES.iter().any(|x| path.starts_with(x));
        for c in other.captures_iter(&src) {
            assert!(
                !documented(&c[2]),
                "{}: a {} at {} is not read by this test: register API routes with .route(\"…\", web::method())",
                p.display(),
                &c[1],
                &c[2]
            );
        }
        for c in route.captures_iter(&src) {
            let (path, method) = (&c[1], &c[2]);
            if !documented(path) {
                continue;
            }
            if path == "/api/{tail:.*}" && method == "route" {
                continue; // The catch-all 404, in the document's description.
            }
            assert!(
                ["get", "post", "put", "patch", "delete"].contains(&method),
                "{}: {path} registered for web::{method}()",
                p.display()
            );
            out.insert((method.to_uppercase(), path.to_string()));
        }
    }
    assert!(seen > 5, "read the server's sources");
    out
}

#[tokio::test]
async fn every_route_in_the_router_is_in_the_document_and_nothing_else() {
    let app = TestApp::spawn_with(&[], false).await;
    let doc = document(&app).await;
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, p))
        .collect();
    let registered = registered_routes();
    assert!(registered.len() > 40, "{registered:?}");
    let missing: Vec<_> = registered.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&registered).collect();
    assert!(
        missing.is_empty(),
        "routes not in the document: {missing:?}"
    );
    assert!(extra.is_empty(), "documented but not routed: {extra:?}");
    // The scope each API route needs is the one the guard checks.
    for (method, path, op) in operations(&doc) {
        let needed = ROUTE_SCOPES
            .iter()
            .find(|(m, p, _)| *m == method && *p == path)
            .map(|(_, _, s)| s.as_str());
        match needed {
            Some(scope) => {
                assert_eq!(op["x-required-scope"], scope, "{method} {path}");
                assert_eq!(
                    op["security"],
                    json!([{"api_key": [scope]}, {"bearer": [scope]}]),
                    "{method} {path}"
                );
            }
            None => assert!(
                op.get("x-required-scope").is_none(),
                "{method} {path} documents a scope the guard does not check"
            ),
        }
    }
    for (method, path, _) in ROUTE_SCOPES {
        assert!(
            documented.contains(&(method.to_string(), path.to_string())),
            "{method} {path} has a scope but is not documented"
        );
    }
    // Every documented route is served: answered by its handler, not by the
    // catch-all or a 405 (no key: the API answers 401, the rest answer).
    for (method, path) in &documented {
        let url = app.url(
            &path
                .replace("{id}", UNKNOWN_ID)
                .replace("{phone}", "+4791234567"),
        );
        let res = app
            .http
            .request(method.parse().unwrap(), url)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let body = res.text().await.unwrap();
        assert_ne!(status, 405, "{method} {path}");
        assert!(
            !body.contains("no such endpoint"),
            "{method} {path} is not routed: {body}"
        );
    }
    app.shutdown().await;
}

/// One request that should provoke a documented error.
struct Case {
    method: &'static str,
    path: String,
    status: u16,
    send: reqwest::RequestBuilder,
}

fn fill(path: &str, id: &str) -> String {
    path.replace("{id}", id).replace("{phone}", "+4791234567")
}

#[tokio::test]
async fn every_documented_error_is_what_the_route_answers() {
    let app = TestApp::spawn_with(&with_erasure_key(), false).await;
    // Without providers (webhooks not configured) and reachable from
    // elsewhere without a metrics token.
    let bare = TestApp::spawn_with(
        &[
            ("TWILIO_ACCOUNT_SID", ""),
            ("TWILIO_AUTH_TOKEN", ""),
            ("WHATSAPP_ACCESS_TOKEN", ""),
            ("HEIMDALL_SANDBOX", "off"),
            ("HEIMDALL_PUBLIC_URL", "https://heimdall.example.com"),
        ],
        false,
    )
    .await;
    let doc = document(&app).await;
    let http = &app.http;

    // A contact with consent, a reminder that was sent, a schedule whose
    // cron can no longer be read, a form.
    let core = &app.core;
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: "+4791234567".into(),
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
            ..Default::default()
        },
        "test",
        false,
        core.now(),
    )
    .await
    .unwrap();
    let cid = c.id.clone();
    let reminder_body = json!({
        "contact_id": cid,
        "template_name": "task_reminder",
        "variables": {"task_name": "Call Bob", "due_time": "17:00"},
        "send_at": (Utc::now() + Duration::hours(1)).to_rfc3339(),
    });
    let res = app
        .api_post("/api/v1/reminders", reminder_body.clone())
        .await;
    assert_eq!(res.status(), 201);
    let sent_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut r: reminder::ActiveModel = reminder::Entity::find_by_id(sent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .into();
    r.state = Set("sent".into());
    r.update(&core.db.conn).await.unwrap();
    let schedule_body = json!({
        "name": "Daily briefing",
        "contact_id": cid,
        "cron": "0 7 * * *",
        "template_name": "daily_briefing",
        "variables": {"date": "today"},
        "variables_url": "https://n8n.example.com/webhook/briefing",
    });
    let res = app
        .api_post("/api/v1/schedules", schedule_body.clone())
        .await;
    assert_eq!(res.status(), 201);
    let broken_id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .api_post(&format!("/api/v1/schedules/{broken_id}/pause"), json!({}))
        .await;
    assert_eq!(res.status(), 200);
    let mut s: schedule::ActiveModel = schedule::Entity::find_by_id(broken_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .into();
    s.cron = Set("no longer a cron".into());
    s.update(&core.db.conn).await.unwrap();
    let form_body = json!({
        "slug": "open-house",
        "title": "Open house",
        "channels": [{"channel": "whatsapp", "consent_text": "Yes, message me on WhatsApp."}],
    });
    let res = app.api_post("/api/v1/forms", form_body.clone()).await;
    assert_eq!(res.status(), 201);

    // A key without each scope.
    let mut without = BTreeMap::new();
    for scope in Scope::ALL {
        let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
        let k = heimdall_domain::access::accounts::create_api_key(
            core,
            &format!("without {scope}"),
            "admin@example.com",
            &Scopes::of(&others),
        )
        .await
        .unwrap();
        without.insert(scope.as_str(), k.key.expose_secret().to_string());
    }

    let mut cases: Vec<Case> = Vec::new();
    let mut case =
        |method: &'static str, path: &str, status: u16, send: reqwest::RequestBuilder| {
            cases.push(Case {
                method,
                path: path.to_string(),
                status,
                send,
            })
        };
    let req = |base: &TestApp, method: &str, path: &str| {
        base.http.request(method.parse().unwrap(), base.url(path))
    };
    let key = |b: reqwest::RequestBuilder| b.header("X-API-Key", API_KEY);
    let json_body = |b: reqwest::RequestBuilder, v: Value| key(b).json(&v);

    // What every API route shares: no key, a key without the scope, and
    // for a JSON body, one that is not JSON or is too large.
    let big = format!("{{\"markdown\": \"{}\"}}", "a".repeat(300 * 1024));
    for (method, path, op) in operations(&doc) {
        let method: &'static str = Box::leak(method.into_boxed_str());
        let filled = fill(&path, UNKNOWN_ID);
        if let Some(scope) = op["x-required-scope"].as_str() {
            case(method, &path, 401, req(&app, method, &filled));
            case(
                method,
                &path,
                403,
                req(&app, method, &filled).header("X-API-Key", &without[scope]),
            );
        }
        if op["x-required-scope"].is_string()
            && op["requestBody"]["content"]["application/json"].is_object()
        {
            let id = if path.contains("/forms/") {
                "x"
            } else {
                UNKNOWN_ID
            };
            case(
                method,
                &path,
                400,
                key(req(&app, method, &fill(&path, id)))
                    .header("Content-Type", "application/json")
                    .body("{not json"),
            );
            case(
                method,
                &path,
                413,
                key(req(&app, method, &filled))
                    .header("Content-Type", "application/json")
                    .body(big.clone()),
            );
        }
    }

    // Each route's own.
    let none = format!("/api/v1/contacts/{UNKNOWN_ID}");
    let erase = "/api/v1/contacts/{id}";
    case(
        "DELETE",
        erase,
        400,
        json_body(req(&app, "DELETE", &none), json!({"reason": " "})),
    );
    case(
        "DELETE",
        erase,
        404,
        json_body(req(&app, "DELETE", &none), json!({"reason": "asked"})),
    );
    let (gone, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: "+4791234599".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    heimdall_domain::privacy::erase(core, &gone.id, "asked", "test")
        .await
        .unwrap();
    case(
        "DELETE",
        erase,
        410,
        json_body(
            req(&app, "DELETE", &format!("/api/v1/contacts/{}", gone.id)),
            json!({"reason": "asked"}),
        ),
    );
    case(
        "DELETE",
        erase,
        503,
        json_body(req(&bare, "DELETE", &none), json!({"reason": "asked"})),
    );
    case(
        "GET",
        "/api/whatsapp/session/{phone}",
        400,
        key(req(&app, "GET", "/api/whatsapp/session/not-a-number")),
    );
    case(
        "POST",
        "/api/whatsapp/send",
        404,
        json_body(
            req(&app, "POST", "/api/whatsapp/send"),
            json!({"user_id": UNKNOWN_ID, "template_name": "task_reminder"}),
        ),
    );
    // A number nobody gave consent for.
    case(
        "POST",
        "/api/whatsapp/send",
        422,
        json_body(
            req(&app, "POST", "/api/whatsapp/send"),
            json!({"to": "+4798765432", "template_name": "task_reminder", "variables": {"task_name": "x", "due_time": "1"}}),
        ),
    );
    case(
        "GET",
        "/api/v1/contacts",
        400,
        key(req(&app, "GET", "/api/v1/contacts?phone=not-a-number")),
    );
    case(
        "GET",
        "/api/v1/contacts",
        404,
        key(req(&app, "GET", "/api/v1/contacts?phone=%2B4798765432")),
    );
    case(
        "GET",
        "/api/v1/contacts/{id}",
        404,
        key(req(&app, "GET", &none)),
    );
    case(
        "POST",
        "/api/v1/contacts/{id}/consents",
        404,
        json_body(
            req(&app, "POST", &format!("{none}/consents")),
            json!({"channel": "whatsapp", "source": "api", "evidence": {"consent_text_version": "v1", "page_url": "https://example.com"}}),
        ),
    );
    case(
        "GET",
        "/api/v1/contacts/{id}/consents",
        404,
        key(req(&app, "GET", &format!("{none}/consents"))),
    );
    case(
        "POST",
        "/api/v1/contacts/{id}/consents/revoke",
        404,
        json_body(
            req(&app, "POST", &format!("{none}/consents/revoke")),
            json!({"channel": "whatsapp"}),
        ),
    );
    case(
        "GET",
        "/api/v1/contacts/{id}/consents/export",
        400,
        key(req(
            &app,
            "GET",
            &format!("/api/v1/contacts/{cid}/consents/export?format=xml"),
        )),
    );
    case(
        "GET",
        "/api/v1/contacts/{id}/consents/export",
        404,
        key(req(&app, "GET", &format!("{none}/consents/export"))),
    );
    case(
        "POST",
        "/api/v1/consents/import",
        400,
        key(req(&app, "POST", "/api/v1/consents/import"))
            .header("Content-Type", "text/csv")
            .body(""),
    );
    case(
        "POST",
        "/api/v1/consents/import",
        413,
        key(req(&app, "POST", "/api/v1/consents/import"))
            .header("Content-Type", "text/csv")
            .body("a".repeat(5 * 1024 * 1024 + 1)),
    );
    case(
        "POST",
        "/api/v1/messages",
        404,
        json_body(
            req(&app, "POST", "/api/v1/messages"),
            json!({"contact_id": UNKNOWN_ID, "text": "Hi"}),
        ),
    );
    case(
        "POST",
        "/api/v1/messages",
        422,
        json_body(
            req(&app, "POST", "/api/v1/messages"),
            json!({"to": "+4798765432", "text": "Hi"}),
        ),
    );
    case(
        "GET",
        "/api/v1/messages/{id}",
        404,
        key(req(&app, "GET", &format!("/api/v1/messages/{UNKNOWN_ID}"))),
    );
    case(
        "GET",
        "/api/v1/messages/{id}/receipt",
        404,
        key(req(
            &app,
            "GET",
            &format!("/api/v1/messages/{UNKNOWN_ID}/receipt"),
        )),
    );
    case(
        "GET",
        "/api/v1/messages/{id}/receipt",
        400,
        key(req(
            &app,
            "GET",
            &format!("/api/v1/messages/{UNKNOWN_ID}/receipt?format=xml"),
        )),
    );
    let with = |base: &Value, k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    for (path, body) in [
        ("/api/v1/reminders", &reminder_body),
        ("/api/v1/schedules", &schedule_body),
    ] {
        case(
            "POST",
            path,
            404,
            json_body(
                req(&app, "POST", path),
                with(body, "contact_id", json!(UNKNOWN_ID)),
            ),
        );
        case(
            "POST",
            path,
            422,
            json_body(
                req(&app, "POST", path),
                with(body, "template_name", json!("nope")),
            ),
        );
    }
    case(
        "GET",
        "/api/v1/reminders",
        400,
        key(req(&app, "GET", "/api/v1/reminders?state=later")),
    );
    case(
        "GET",
        "/api/v1/schedules",
        400,
        key(req(&app, "GET", "/api/v1/schedules?active=maybe")),
    );
    for (method, pattern) in [
        ("GET", "/api/v1/reminders/{id}"),
        ("DELETE", "/api/v1/reminders/{id}"),
        ("GET", "/api/v1/schedules/{id}"),
        ("DELETE", "/api/v1/schedules/{id}"),
        ("POST", "/api/v1/schedules/{id}/pause"),
        ("POST", "/api/v1/schedules/{id}/resume"),
        ("GET", "/api/v1/forms/{id}"),
    ] {
        case(
            method,
            pattern,
            404,
            key(req(&app, method, &fill(pattern, UNKNOWN_ID))),
        );
    }
    case(
        "DELETE",
        "/api/v1/reminders/{id}",
        409,
        key(req(&app, "DELETE", &format!("/api/v1/reminders/{sent_id}"))),
    );
    case(
        "POST",
        "/api/v1/schedules/{id}/resume",
        409,
        key(req(
            &app,
            "POST",
            &format!("/api/v1/schedules/{broken_id}/resume"),
        )),
    );
    case(
        "POST",
        "/api/v1/forms",
        409,
        json_body(req(&app, "POST", "/api/v1/forms"), form_body.clone()),
    );
    let unknown_form = format!("/api/v1/forms/{UNKNOWN_ID}");
    for (method, pattern, body) in [
        (
            "PATCH",
            "/api/v1/forms/{id}",
            json!({"title": "Open house"}),
        ),
        (
            "POST",
            "/api/v1/forms/{id}/consent-texts",
            json!({"channel": "whatsapp", "text": "Yes"}),
        ),
        (
            "POST",
            "/api/v1/forms/{id}/qr-codes",
            json!({"source_label": "flyer"}),
        ),
    ] {
        let path = pattern.replace("/api/v1/forms/{id}", &unknown_form);
        case(
            method,
            pattern,
            404,
            json_body(req(&app, method, &path), body),
        );
    }

    // Webhooks, at both their addresses.
    for path in ["/webhooks/twilio/inbound", "/whatsapp/webhook"] {
        let url = app.url(path);
        let params = vec![("Foo".to_string(), "bar".to_string())];
        let sig = heimdall_domain::signature::twilio_signature(support::AUTH_TOKEN, &url, &params);
        case(
            "POST",
            path,
            400,
            http.post(&url)
                .header("X-Twilio-Signature", sig)
                .form(&params),
        );
        case("POST", path, 403, http.post(&url).form(&params));
        case(
            "POST",
            path,
            404,
            bare.http.post(bare.url(path)).form(&params),
        );
    }
    for path in ["/webhooks/twilio/status", "/whatsapp/status"] {
        let url = app.url(path);
        let params = vec![("MessageStatus".to_string(), "delivered".to_string())];
        let sig = heimdall_domain::signature::twilio_signature(support::AUTH_TOKEN, &url, &params);
        case(
            "POST",
            path,
            400,
            http.post(&url)
                .header("X-Twilio-Signature", sig)
                .form(&params),
        );
        case("POST", path, 403, http.post(&url).form(&params));
        case(
            "POST",
            path,
            404,
            bare.http.post(bare.url(path)).form(&params),
        );
    }
    for path in ["/webhooks/meta", "/webhooks/whatsapp"] {
        let ok = format!("{path}?hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}");
        case("GET", path, 400, http.get(app.url(&ok)));
        case(
            "GET",
            path,
            403,
            http.get(app.url(&format!(
                "{path}?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=1"
            ))),
        );
        case("GET", path, 404, bare.http.get(bare.url(&ok)));
        let body = b"not json".to_vec();
        let sig = heimdall_domain::signature::meta_signature(APP_SECRET, &body);
        case(
            "POST",
            path,
            400,
            http.post(app.url(path))
                .header("X-Hub-Signature-256", sig)
                .header("Content-Type", "application/json")
                .body(body.clone()),
        );
        case(
            "POST",
            path,
            403,
            http.post(app.url(path)).body(body.clone()),
        );
        case("POST", path, 404, bare.http.post(bare.url(path)).body(body));
    }
    case("GET", "/metrics", 401, http.get(app.url("/metrics")));
    case("GET", "/metrics", 403, bare.http.get(bare.url("/metrics")));

    // Every documented error has a case, and every case is documented.
    let mut documented = BTreeSet::new();
    let mut untested = Vec::new();
    for (method, path, op) in operations(&doc) {
        for (status, r) in op["responses"].as_object().unwrap() {
            let s: u16 = status.parse().unwrap();
            if s < 400 {
                continue;
            }
            if r.get("x-heimdall-untested").is_some() {
                untested.push(format!("{method} {path} {s}"));
            } else {
                documented.insert((method.clone(), path.clone(), s));
            }
        }
    }
    let provoked: BTreeSet<(String, String, u16)> = cases
        .iter()
        .map(|c| (c.method.to_string(), c.path.clone(), c.status))
        .collect();
    let missing: Vec<_> = documented.difference(&provoked).collect();
    assert!(
        missing.is_empty(),
        "documented errors no test provokes: {missing:?}"
    );
    let stray: Vec<_> = provoked.difference(&documented).collect();
    assert!(
        stray.is_empty(),
        "provoked errors the document does not name: {stray:?}"
    );
    // What is not provoked is marked in the document, and stays few.
    assert!(untested.len() <= 8, "{untested:?}");

    let mut checked = 0;
    for c in cases {
        let op = &doc["paths"][&c.path][c.method.to_lowercase()];
        let documented = &op["responses"][c.status.to_string()];
        let res = c.send.send().await.unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        let what = format!("{} {} -> {status} {text:.300}", c.method, c.path);
        assert_eq!(status, c.status, "{what}");
        let schema = &documented["content"]["application/json"]["schema"];
        if schema.is_null() {
            assert!(
                documented["content"].is_null() && text.is_empty(),
                "{what}: documented without a body"
            );
            checked += 1;
            continue;
        }
        let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
        validate(&doc, schema, &body, "body").unwrap_or_else(|e| panic!("{what}: {e}"));
        if schema["$ref"] == "#/components/schemas/ErrorBody" {
            let codes = documented_codes(documented["description"].as_str().unwrap());
            let code = body["error"]["code"].as_str().unwrap();
            assert!(
                codes.contains(code),
                "{what}: `{code}` is not one of {codes:?}"
            );
            assert!(
                !body["error"]["message"].as_str().unwrap().is_empty(),
                "{what}"
            );
        }
        checked += 1;
    }
    assert!(checked > 100, "{checked}");
    bare.shutdown().await;
    app.shutdown().await;
}

/// Send a request with the all-scopes key; the answer must have `status`,
/// be documented for the operation `method pattern`, and validate against
/// the documented schema. Returns the body.
async fn expect(
    app: &TestApp,
    doc: &Value,
    (method, pattern): (&str, &str),
    path: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let mut req = app
        .http
        .request(method.parse().unwrap(), app.url(path))
        .header("X-API-Key", API_KEY);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await.unwrap();
    let got = res.status().as_u16();
    let text = res.text().await.unwrap();
    let what = format!("{method} {path} -> {got} {text:.300}");
    assert_eq!(got, status, "{what}");
    let documented = &doc["paths"][pattern][method.to_lowercase()]["responses"][status.to_string()];
    assert!(documented.is_object(), "{what}: {status} is not documented");
    let schema = &documented["content"]["application/json"]["schema"];
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{what}: {e}"));
    validate(doc, schema, &body, "body").unwrap_or_else(|e| panic!("{what}: {e}"));
    body
}

#[tokio::test]
async fn successful_answers_validate_against_the_documented_schemas() {
    let app = TestApp::spawn_with(&with_erasure_key(), false).await;
    let doc = document(&app).await;
    let d = &doc;
    let contact = expect(
        &app,
        d,
        ("POST", "/api/v1/contacts"),
        "/api/v1/contacts",
        Some(json!({"phone": "+4791234567", "name": "Kari", "time_zone": "Europe/Oslo", "tags": ["vip"]})),
        201,
    )
    .await;
    let cid = contact["id"].as_str().unwrap().to_string();
    expect(
        &app,
        d,
        ("POST", "/api/v1/contacts"),
        "/api/v1/contacts",
        Some(json!({"phone": "+4791234567", "name": "Kari N."})),
        200,
    )
    .await;
    expect(
        &app,
        d,
        ("POST", "/api/v1/contacts/{id}/consents"),
        &format!("/api/v1/contacts/{cid}/consents"),
        Some(json!({"channel": "whatsapp", "source": "api", "evidence": {
            "consent_text_version": "v1", "ip": "203.0.113.7", "user_agent": "Mozilla/5.0 test"}})),
        201,
    )
    .await;
    let reminder = expect(
        &app,
        d,
        ("POST", "/api/v1/reminders"),
        "/api/v1/reminders",
        Some(json!({
            "contact_id": cid,
            "template_name": "task_reminder",
            "variables": {"task_name": "Call Bob", "due_time": "17:00"},
            "send_at": (Utc::now() + Duration::hours(1)).to_rfc3339(),
        })),
        201,
    )
    .await;
    let rid = reminder["id"].as_str().unwrap().to_string();
    let one = ("GET", "/api/v1/reminders/{id}");
    expect(&app, d, one, &format!("/api/v1/reminders/{rid}"), None, 200).await;
    let list = ("GET", "/api/v1/reminders");
    let all = expect(&app, d, list, "/api/v1/reminders", None, 200).await;
    assert_eq!(all["reminders"].as_array().unwrap().len(), 1);
    let cancel = ("DELETE", "/api/v1/reminders/{id}");
    expect(
        &app,
        d,
        cancel,
        &format!("/api/v1/reminders/{rid}"),
        None,
        200,
    )
    .await;
    let schedule = expect(
        &app,
        d,
        ("POST", "/api/v1/schedules"),
        "/api/v1/schedules",
        Some(json!({
            "name": "Daily briefing",
            "contact_id": cid,
            "cron": "0 7 * * *",
            "template_name": "daily_briefing",
            "variables": {"date": "today"},
            "variables_url": "https://n8n.example.com/webhook/briefing",
        })),
        201,
    )
    .await;
    let sid = schedule["id"].as_str().unwrap().to_string();
    for (method, pattern, path) in [
        (
            "GET",
            "/api/v1/schedules/{id}",
            format!("/api/v1/schedules/{sid}"),
        ),
        (
            "POST",
            "/api/v1/schedules/{id}/pause",
            format!("/api/v1/schedules/{sid}/pause"),
        ),
        (
            "POST",
            "/api/v1/schedules/{id}/resume",
            format!("/api/v1/schedules/{sid}/resume"),
        ),
        (
            "DELETE",
            "/api/v1/schedules/{id}",
            format!("/api/v1/schedules/{sid}"),
        ),
        ("GET", "/api/v1/schedules", "/api/v1/schedules".to_string()),
    ] {
        let body = (method == "POST").then(|| json!({}));
        expect(&app, d, (method, pattern), &path, body, 200).await;
    }
    let form = expect(
        &app,
        d,
        ("POST", "/api/v1/forms"),
        "/api/v1/forms",
        Some(json!({
            "slug": "open-house",
            "title": "Open house",
            "fields": [{"key": "address", "label": "Address"}],
            "channels": [{"channel": "whatsapp", "consent_text": "Yes, message me on WhatsApp."}],
        })),
        201,
    )
    .await;
    let fid = form["id"].as_str().unwrap().to_string();
    expect(
        &app,
        d,
        ("PATCH", "/api/v1/forms/{id}"),
        &format!("/api/v1/forms/{fid}"),
        Some(json!({"title": "Open house, 12 Elm St"})),
        200,
    )
    .await;
    expect(
        &app,
        d,
        ("POST", "/api/v1/forms/{id}/consent-texts"),
        &format!("/api/v1/forms/{fid}/consent-texts"),
        Some(json!({"channel": "sms", "text": "Yes, text me."})),
        201,
    )
    .await;
    expect(
        &app,
        d,
        ("POST", "/api/v1/forms/{id}/qr-codes"),
        &format!("/api/v1/forms/{fid}/qr-codes"),
        Some(json!({"source_label": "flyer March"})),
        201,
    )
    .await;
    // An erasure's answer.
    let (erased, _) = contacts::upsert(
        &app.core,
        &ContactInput {
            phone: "+4791234598".into(),
            name: Some("To Be Erased".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let answer = expect(
        &app,
        d,
        ("DELETE", "/api/v1/contacts/{id}"),
        &format!("/api/v1/contacts/{}", erased.id),
        Some(json!({"reason": "asked by email"})),
        200,
    )
    .await;
    assert_eq!(answer["contact_id"], erased.id.as_str());
    // The import report of a file with one row it refuses.
    let res = app
        .http
        .post(app.url("/api/v1/consents/import"))
        .header("X-API-Key", API_KEY)
        .header("Content-Type", "text/csv")
        .body("phone,channel,source,captured_at,consent_text_version,page_url\nnot-a-number,whatsapp,web_form,2026-01-01T00:00:00Z,v1,https://example.com\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let report: Value = res.json().await.unwrap();
    let schema = &doc["paths"]["/api/v1/consents/import"]["post"]["responses"]["200"]["content"]
        ["application/json"]["schema"];
    validate(&doc, schema, &report, "body").unwrap();
    assert_eq!(report["refused"].as_array().unwrap().len(), 1, "{report}");
    app.shutdown().await;
}

#[tokio::test]
async fn the_reference_page_renders_the_document_without_scripts() {
    let app = TestApp::spawn_with(&[], false).await;
    let doc = document(&app).await;
    let res = app.http.get(app.url("/api/docs")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let csp = res.headers()["content-security-policy"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("style-src 'self'"),
        "{csp}"
    );
    assert!(res.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/html"));
    let page = res.text().await.unwrap();
    assert!(!page.to_lowercase().contains("<script"), "no script");
    assert!(!page.contains("style="), "no inline style");
    assert!(page.contains("href=\"/api/docs.css\""));
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap();
        assert!(page.contains(&format!("id=\"op-{id}\"")), "{method} {path}");
        // Paths are escaped like every text.
        assert!(
            page.contains(&heimdall_server::openapi::esc(&path)),
            "{path}"
        );
    }
    assert!(page.contains("<code>send</code>"), "scopes are shown");
    let css = app.http.get(app.url("/api/docs.css")).send().await.unwrap();
    assert_eq!(css.status(), 200);
    assert!(css.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/css"));
    // The catch-all still answers unknown API paths.
    let res = app
        .http
        .get(app.url("/api/nothing-here"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    app.shutdown().await;
}

#[test]
fn the_page_escapes_what_the_document_says() {
    let doc = json!({
        "openapi": "3.1.0",
        "info": {"title": "<b>T</b>", "version": "1", "description": "a `<x>` & b"},
        "tags": [{"name": "T<", "description": "<i>"}],
        "paths": {"/a/<b>": {"get": {"operationId": "o\"p", "tags": ["T<"], "summary": "<s>",
            "responses": {"200": {"description": "<r>"}}}}},
        "components": {"schemas": {}},
    });
    let page = heimdall_server::openapi::render(&doc);
    for raw in ["<b>T</b>", "<x>", "<i>", "<s>", "<r>", "/a/<b>", "o\"p"] {
        assert!(!page.contains(raw), "{raw} unescaped");
    }
    assert!(page.contains("<code>&lt;x&gt;</code>"));
}

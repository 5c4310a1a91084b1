//! The OpenAPI 3.1 document of Heimdall's HTTP API and its reference page.
//!
//! Each routes module annotates its handlers (`#[utoipa::path]`) and lists
//! them in its `Docs`; the request types' schemas are derived from the same
//! types serde reads (utoipa follows serde's attributes). What every API
//! route shares is added here once, from the tables the server enforces:
//! the scope each route needs ([`ROUTE_SCOPES`]: the security requirement,
//! the 401 and 403 of the key guard) and the 413 of the JSON body limit.
//! A route served at a second address is documented from [`ALIASES`].
//!
//! `GET /api/openapi.json` serves the document, `GET /api/docs` a plain
//! HTML reference rendered from it (no script, styles from
//! `/api/docs.css`, every text escaped). Neither needs a key: the document
//! describes no secret and must never carry one.

use std::sync::LazyLock;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde_json::{json, Map, Value};
use utoipa::OpenApi;

use heimdall_domain::compliance::gates::Gate;

use crate::routes;
use crate::routes::api::ROUTE_SCOPES;

/// A request refused by a gate (HTTP 422): the error's code is the gate's
/// reason. A refused send is still recorded, and its answer says which
/// message and decision (`message_id`, `state`, `decision`).
#[derive(utoipa::ToSchema)]
#[allow(dead_code)] // A schema only: the answer is built by `ApiError::Refused`.
pub struct GateRefusal {
    error: GateRefusalDetail,
    /// Sends only: `false`.
    success: Option<bool>,
    /// Sends only: the id of the recorded, refused message.
    message_id: Option<String>,
    /// Sends only: the message's state (`refused`).
    state: Option<String>,
    /// Sends only: every gate's verdict and the decision.
    #[schema(value_type = Option<Object>)]
    decision: Option<Value>,
}

#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct GateRefusalDetail {
    /// The reason code of the gate that refused.
    code: Gate,
    /// Why, for a person to read.
    message: String,
}

/// Routes served at a second address (the first version's, or a second
/// method): `(method, path, the same as method, the same as path)`.
pub const ALIASES: &[(&str, &str, &str, &str)] = &[
    (
        "POST",
        "/whatsapp/webhook",
        "POST",
        "/webhooks/twilio/inbound",
    ),
    (
        "POST",
        "/whatsapp/status",
        "POST",
        "/webhooks/twilio/status",
    ),
    ("GET", "/webhooks/whatsapp", "GET", "/webhooks/meta"),
    ("POST", "/webhooks/whatsapp", "POST", "/webhooks/meta"),
    (
        "DELETE",
        "/api/v1/schedules/{id}",
        "POST",
        "/api/v1/schedules/{id}/pause",
    ),
];

/// The largest JSON body an API route reads ([`crate::error::json_config`]).
const JSON_LIMIT_TEXT: &str = "256 KiB";

const DESCRIPTION: &str = "Heimdall sends WhatsApp and SMS messages only when every compliance gate allows it: consent, suppression, the 24-hour service window, template approval, quiet hours and the provider's limits. A message a gate refuses is answered 422 with the gate's reason code, and recorded.

API routes (`/api/...`) need an API key, as `X-API-Key: <key>` or `Authorization: Bearer <key>`. Each route needs one scope, named in its description and security requirement; a key without it is answered 403 `missing_scope`, before the request's body is read.

Every error answer is JSON `{\"error\": {\"code\", \"message\"}}` (`ErrorBody`); each response names the codes it may carry. Any route may also answer 500 `internal` when something on Heimdall's side fails; the cause is logged, never sent. An unknown path under `/api/` is answered 404 `not_found` in the same shape.

Webhooks are called by Twilio and Meta and checked by their signatures; health routes are for monitoring. Not described here: the console's server functions under `/_sf/` (internal to the console, behind its session, role and CSRF checks), the console's pages, and the public opt-in pages (`/optin/...`, `/q/...`), which are HTML for people.";

/// The document's own operations.
#[derive(OpenApi)]
#[openapi(
    info(title = "Heimdall HTTP API", description = DESCRIPTION),
    paths(openapi_json, docs_page, docs_css),
    components(schemas(crate::error::ErrorBody)),
    tags(
        (name = "Messages", description = "Send templates and texts through the gates, follow them, preview formatting."),
        (name = "Contacts", description = "The people Heimdall may message."),
        (name = "Consents", description = "Consent records with their evidence, opt-outs, import and export."),
        (name = "Reminders", description = "One template message at a set time, checked again when it is due."),
        (name = "Schedules", description = "A template message on a cron schedule in the contact's time zone."),
        (name = "Forms", description = "Public opt-in forms, their consent texts and QR codes."),
        (name = "WhatsApp (first version)", description = "The first version's endpoints, kept for the automations that call them."),
        (name = "Webhooks", description = "Called by Twilio and Meta; every request is checked by its signature and written to the webhook audit log."),
        (name = "Health", description = "Liveness, readiness and metrics for monitoring."),
        (name = "Reference", description = "This document and its reference page."),
    )
)]
struct Base;

/// The whole document, as served.
pub fn document() -> Value {
    let mut doc = Base::openapi();
    doc.info.version = env!("CARGO_PKG_VERSION").to_string();
    for part in [
        routes::api::Docs::openapi(),
        routes::reminders::Docs::openapi(),
        routes::optin::Docs::openapi(),
        routes::webhooks::Docs::openapi(),
        routes::health::Docs::openapi(),
    ] {
        doc.merge(part);
    }
    let mut doc = serde_json::to_value(&doc).expect("the document serializes");
    add_aliases(&mut doc);
    add_shared(&mut doc);
    doc["components"]["securitySchemes"] = json!({
        "api_key": {
            "type": "apiKey",
            "in": "header",
            "name": "X-API-Key",
            "description": "An API key made in the console (or HEIMDALL_API_KEY). The scopes listed with a requirement are the key's scopes the route needs.",
        },
        "bearer": {
            "type": "http",
            "scheme": "bearer",
            "description": "The same API key as a bearer token.",
        },
        "metrics_token": {
            "type": "http",
            "scheme": "bearer",
            "description": "HEIMDALL_METRICS_TOKEN, when it is set.",
        },
    });
    doc
}

/// The document, built once.
static DOCUMENT: LazyLock<Value> = LazyLock::new(document);

fn operations_mut(doc: &mut Value) -> impl Iterator<Item = (String, String, &mut Value)> {
    doc["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
        .flat_map(|(path, item)| {
            let path = path.clone();
            item.as_object_mut()
                .into_iter()
                .flat_map(|m| m.iter_mut())
                .filter(|(method, _)| is_method(method))
                .map(move |(method, op)| (method.to_uppercase(), path.clone(), op))
        })
}

fn is_method(name: &str) -> bool {
    matches!(
        name,
        "get" | "put" | "post" | "delete" | "options" | "head" | "patch" | "trace"
    )
}

fn add_aliases(doc: &mut Value) {
    for (method, path, same_method, same_path) in ALIASES {
        let Some(original) = doc["paths"][*same_path][same_method.to_lowercase()]
            .as_object()
            .cloned()
        else {
            panic!("alias {method} {path}: {same_method} {same_path} is not documented");
        };
        let mut op = Value::Object(original);
        let id = format!(
            "{}_{}",
            op["operationId"].as_str().unwrap_or("operation"),
            path.trim_matches('/').replace(['/', '{', '}'], "_")
        );
        op["operationId"] = json!(id);
        op["description"] = json!(format!(
            "The same as `{same_method} {same_path}`.{}",
            op["description"]
                .as_str()
                .map(|d| format!("\n\n{d}"))
                .unwrap_or_default()
        ));
        let paths = doc["paths"].as_object_mut().expect("paths");
        let item = paths.entry(path.to_string()).or_insert_with(|| json!({}));
        item[method.to_lowercase()] = op;
    }
}

fn error_response(description: String) -> Value {
    json!({
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}},
    })
}

/// What every API route shares: the key, its scope, the guard's answers
/// and the JSON body limit.
fn add_shared(doc: &mut Value) {
    for (method, path, op) in operations_mut(doc) {
        let scope = ROUTE_SCOPES
            .iter()
            .find(|(m, p, _)| *m == method && *p == path)
            .map(|(_, _, s)| s.as_str());
        let responses = op["responses"].as_object_mut().expect("responses");
        if let Some(scope) = scope {
            responses.entry("401").or_insert_with(|| {
                error_response(
                    "`unauthorized`: no API key, or one that is unknown or revoked.".into(),
                )
            });
            responses.entry("403").or_insert_with(|| {
                error_response(format!(
                    "`missing_scope`: the key does not have the scope `{scope}` (named in `error.scope`)."
                ))
            });
        }
        let json_body = scope.is_some()
            && op["requestBody"]["content"]
                .as_object()
                .is_some_and(|c| c.contains_key("application/json"));
        if json_body {
            let responses = op["responses"].as_object_mut().expect("responses");
            responses.entry("413").or_insert_with(|| {
                error_response(format!(
                    "`payload_too_large`: the JSON body is over {JSON_LIMIT_TEXT}."
                ))
            });
        }
        sort_responses(op);
        match scope {
            Some(scope) => {
                op["security"] = json!([{"api_key": [scope]}, {"bearer": [scope]}]);
                op["x-required-scope"] = json!(scope);
                let text = format!(
                    "Needs an API key with the scope `{scope}` (as `X-API-Key` or `Authorization: Bearer`)."
                );
                op["description"] = json!(match op["description"].as_str() {
                    Some(d) => format!("{d}\n\n{text}"),
                    None => text,
                });
            }
            None if op.get("security").is_none() => op["security"] = json!([]),
            None => {}
        }
    }
}

fn sort_responses(op: &mut Value) {
    if let Some(responses) = op["responses"].as_object_mut() {
        let mut all: Vec<(String, Value)> = std::mem::take(responses).into_iter().collect();
        all.sort_by(|a, b| a.0.cmp(&b.0));
        responses.extend(all);
    }
}

// ---------------------------------------------------------------------------
// Routes

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/api/openapi.json", web::get().to(openapi_json))
        .route("/api/docs", web::get().to(docs_page))
        .route("/api/docs.css", web::get().to(docs_css));
}

/// The OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/api/openapi.json",
    tag = "Reference",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The OpenAPI document.", body = Object))
)]
async fn openapi_json() -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"))
        .json(&*DOCUMENT)
}

/// The reference page.
#[utoipa::path(
    get,
    path = "/api/docs",
    tag = "Reference",
    summary = "This document as a page to read",
    responses((status = 200, description = "HTML, without scripts.", content_type = "text/html", body = String))
)]
async fn docs_page() -> HttpResponse {
    static PAGE: LazyLock<String> = LazyLock::new(|| render(&DOCUMENT));
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::X_FRAME_OPTIONS, "DENY"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .insert_header((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ))
        .body(PAGE.as_str())
}

/// The reference page's styles.
#[utoipa::path(
    get,
    path = "/api/docs.css",
    tag = "Reference",
    summary = "The reference page's styles",
    responses((status = 200, description = "CSS.", content_type = "text/css", body = String))
)]
async fn docs_css() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(CSS)
}

// ---------------------------------------------------------------------------
// The page

const CSS: &str = r#"*{box-sizing:border-box}
body{margin:0;font:16px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#111827;background:#f9fafb}
main{max-width:62rem;margin:0 auto;padding:1.5rem}
h1{font-size:1.8rem;margin:.5rem 0}
h2{font-size:1.4rem;margin:2.5rem 0 .5rem;padding-top:.5rem;border-top:2px solid #d1d5db}
h3{font-size:1.1rem;margin:0 0 .5rem;font-weight:600}
h4{font-size:.95rem;margin:1rem 0 .25rem;color:#374151}
code{font-family:ui-monospace,SFMono-Regular,Menlo,monospace;font-size:.9em;background:#eef2f7;padding:0 .2em;border-radius:3px}
a{color:#1d4ed8}
nav ul{columns:2;padding-left:1.2rem}
nav li{break-inside:avoid}
.op{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
.method{display:inline-block;min-width:4.2rem;text-align:center;font:600 .8rem ui-monospace,monospace;padding:.15rem .4rem;border-radius:4px;color:#fff;background:#4b5563;margin-right:.5rem}
.get{background:#047857}.post{background:#1d4ed8}.patch{background:#a16207}.delete{background:#b91c1c}
.path{font:600 1rem ui-monospace,monospace}
.summary{margin:.25rem 0;font-weight:500}
.auth{color:#374151}
table{border-collapse:collapse;width:100%;margin:.25rem 0;font-size:.92rem}
th,td{text-align:left;vertical-align:top;padding:.35rem .5rem;border-bottom:1px solid #e5e7eb}
th{background:#f3f4f6;font-weight:600}
.status{font:600 .9rem ui-monospace,monospace;white-space:nowrap}
.untested{color:#92400e;font-size:.85rem}
.schema{background:#fff;border:1px solid #e5e7eb;border-radius:8px;padding:1rem 1.25rem;margin:1rem 0}
.muted{color:#6b7280}
"#;

/// Escape text for HTML element content and quoted attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Text from the document as HTML: escaped, `code` spans kept, blank lines
/// as paragraphs.
fn text(s: &str) -> String {
    s.split("\n\n")
        .filter(|p| !p.trim().is_empty())
        .map(|p| format!("<p>{}</p>", inline(p)))
        .collect()
}

/// One line or paragraph: escaped, with `code` spans.
fn inline(s: &str) -> String {
    let mut out = String::new();
    for (i, part) in s.split('`').enumerate() {
        if i % 2 == 1 {
            out.push_str(&format!("<code>{}</code>", esc(part)));
        } else {
            out.push_str(&esc(part));
        }
    }
    out
}

fn ref_name(r: &str) -> &str {
    r.rsplit('/').next().unwrap_or(r)
}

/// A schema in a few words, with links to named schemas.
fn type_of(schema: &Value) -> String {
    if let Some(r) = schema["$ref"].as_str() {
        let name = ref_name(r);
        return format!("<a href=\"#schema-{}\">{}</a>", esc(name), esc(name));
    }
    for key in ["oneOf", "anyOf"] {
        if let Some(list) = schema[key].as_array() {
            let parts: Vec<String> = list.iter().map(type_of).collect();
            return parts.join(" or ");
        }
    }
    if let Some(values) = schema["enum"].as_array() {
        let list: Vec<String> = values
            .iter()
            .map(|v| match v.as_str() {
                Some(s) => format!("<code>{}</code>", esc(s)),
                None => format!("<code>{}</code>", esc(&v.to_string())),
            })
            .collect();
        return format!("one of {}", list.join(", "));
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let one = |t: &str| -> String {
        match t {
            "array" => format!("array of {}", type_of(&schema["items"])),
            "object" => match &schema["additionalProperties"] {
                Value::Object(_) => format!("map of {}", type_of(&schema["additionalProperties"])),
                _ => "object".into(),
            },
            "string" => match schema["format"].as_str() {
                Some(f) => format!("string ({})", esc(f)),
                None => "string".into(),
            },
            other => esc(other),
        }
    };
    if types.is_empty() {
        return "any JSON".into();
    }
    types
        .iter()
        .map(|t| one(t))
        .collect::<Vec<_>>()
        .join(" or ")
}

/// The properties of an object schema as a table.
fn properties(schema: &Value) -> String {
    let Some(props) = schema["properties"].as_object() else {
        return String::new();
    };
    let required: Vec<&str> = schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let mut out = String::from(
        "<table><thead><tr><th>Field</th><th>Type</th><th>Required</th><th>Description</th></tr></thead><tbody>",
    );
    for (name, p) in props {
        out.push_str(&format!(
            "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(name),
            type_of(p),
            if required.contains(&name.as_str()) {
                "yes"
            } else {
                "no"
            },
            p["description"].as_str().map(inline).unwrap_or_default()
        ));
    }
    out.push_str("</tbody></table>");
    out
}

/// A request or response body: its media types and schema.
fn content(c: &Value) -> String {
    let Some(media) = c.as_object() else {
        return String::new();
    };
    media
        .iter()
        .map(|(kind, m)| {
            let schema = &m["schema"];
            let inline_table = if schema.get("$ref").is_none() {
                properties(schema)
            } else {
                String::new()
            };
            format!(
                "<p><code>{}</code>{}</p>{}",
                esc(kind),
                if schema.is_null() {
                    String::new()
                } else {
                    format!(": {}", type_of(schema))
                },
                inline_table
            )
        })
        .collect()
}

fn operation(doc: &Value, method: &str, path: &str, op: &Value) -> String {
    let mut out = format!(
        "<article class=\"op\" id=\"op-{}\"><h3><span class=\"method {}\">{}</span><span class=\"path\">{}</span></h3>",
        esc(op["operationId"].as_str().unwrap_or("")),
        esc(method),
        esc(&method.to_uppercase()),
        esc(path)
    );
    if let Some(s) = op["summary"].as_str() {
        out.push_str(&format!("<p class=\"summary\">{}</p>", inline(s)));
    }
    if let Some(d) = op["description"].as_str() {
        out.push_str(&text(d));
    }
    // An API route's description says which key and scope it needs.
    if op["x-required-scope"].is_null() {
        let auth = match op["security"].as_array() {
            Some(list) if !list.is_empty() => {
                let names: Vec<String> = list
                    .iter()
                    .filter_map(Value::as_object)
                    .flat_map(|o| o.keys())
                    .map(|k| format!("<code>{}</code>", esc(k)))
                    .collect();
                names.join(" or ")
            }
            _ => "no API key.".into(),
        };
        out.push_str(&format!(
            "<p class=\"auth\"><strong>Auth:</strong> {auth}</p>"
        ));
    }
    if let Some(params) = op["parameters"].as_array().filter(|p| !p.is_empty()) {
        out.push_str("<h4>Parameters</h4><table><thead><tr><th>Name</th><th>In</th><th>Type</th><th>Required</th><th>Description</th></tr></thead><tbody>");
        for p in params {
            out.push_str(&format!(
                "<tr><td><code>{}</code></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
                esc(p["name"].as_str().unwrap_or("")),
                esc(p["in"].as_str().unwrap_or("")),
                type_of(&p["schema"]),
                if p["required"].as_bool() == Some(true) {
                    "yes"
                } else {
                    "no"
                },
                p["description"].as_str().map(inline).unwrap_or_default()
            ));
        }
        out.push_str("</tbody></table>");
    }
    if let Some(body) = op.get("requestBody") {
        out.push_str("<h4>Request body</h4>");
        if let Some(d) = body["description"].as_str() {
            out.push_str(&text(d));
        }
        out.push_str(&content(&body["content"]));
        for media in body["content"]
            .as_object()
            .into_iter()
            .flat_map(|c| c.values())
        {
            if let Some(target) = media["schema"]["$ref"]
                .as_str()
                .and_then(|r| r.strip_prefix('#'))
                .and_then(|r| doc.pointer(r))
            {
                out.push_str(&properties(target));
            }
        }
    }
    out.push_str("<h4>Responses</h4><table><thead><tr><th>Status</th><th>Description</th><th>Body</th></tr></thead><tbody>");
    if let Some(responses) = op["responses"].as_object() {
        for (status, r) in responses {
            let untested = r["x-heimdall-untested"]
                .as_str()
                .map(|why| {
                    format!(
                        "<p class=\"untested\">Not provoked by the tests: {}.</p>",
                        inline(why)
                    )
                })
                .unwrap_or_default();
            out.push_str(&format!(
                "<tr><td class=\"status\">{}</td><td>{}{}</td><td>{}</td></tr>",
                esc(status),
                r["description"].as_str().map(inline).unwrap_or_default(),
                untested,
                content(&r["content"])
            ));
        }
    }
    out.push_str("</tbody></table></article>");
    out
}

/// An operation to show: method, path and the operation object.
type Op<'a> = (String, String, &'a Value);

/// The reference page for a document.
pub fn render(doc: &Value) -> String {
    let title = doc["info"]["title"].as_str().unwrap_or("HTTP API");
    let version = doc["info"]["version"].as_str().unwrap_or("");
    let tags: Vec<(String, String)> = doc["tags"]
        .as_array()
        .map(|t| {
            t.iter()
                .map(|t| {
                    (
                        t["name"].as_str().unwrap_or("").to_string(),
                        t["description"].as_str().unwrap_or("").to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    // Operations by tag, in the document's path order.
    let mut by_tag: Vec<(String, Vec<Op<'_>>)> =
        tags.iter().map(|(n, _)| (n.clone(), Vec::new())).collect();
    let empty = Map::new();
    for (path, item) in doc["paths"].as_object().unwrap_or(&empty) {
        for (method, op) in item.as_object().unwrap_or(&empty) {
            if !is_method(method) {
                continue;
            }
            let tag = op["tags"][0].as_str().unwrap_or("Other").to_string();
            let i = match by_tag.iter().position(|(t, _)| *t == tag) {
                Some(i) => i,
                None => {
                    by_tag.push((tag, Vec::new()));
                    by_tag.len() - 1
                }
            };
            by_tag[i].1.push((method.clone(), path.clone(), op));
        }
    }
    let mut nav = String::from("<nav><h2>Contents</h2><ul>");
    let mut body = String::new();
    for (tag, ops) in &by_tag {
        if ops.is_empty() {
            continue;
        }
        let anchor = format!(
            "tag-{}",
            tag.to_lowercase()
                .replace(|c: char| !c.is_ascii_alphanumeric(), "-")
        );
        nav.push_str(&format!(
            "<li><a href=\"#{}\">{}</a> ({})</li>",
            esc(&anchor),
            esc(tag),
            ops.len()
        ));
        body.push_str(&format!(
            "<section id=\"{}\"><h2>{}</h2>",
            esc(&anchor),
            esc(tag)
        ));
        if let Some((_, d)) = tags.iter().find(|(n, _)| n == tag) {
            body.push_str(&text(d));
        }
        for (method, path, op) in ops {
            body.push_str(&operation(doc, method, path, op));
        }
        body.push_str("</section>");
    }
    nav.push_str("<li><a href=\"#schemas\">Schemas</a></li></ul></nav>");
    body.push_str("<section id=\"schemas\"><h2>Schemas</h2>");
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap_or(&empty) {
        body.push_str(&format!(
            "<div class=\"schema\" id=\"schema-{}\"><h3>{}</h3>{}",
            esc(name),
            esc(name),
            schema["description"].as_str().map(text).unwrap_or_default()
        ));
        let table = properties(schema);
        if table.is_empty() {
            body.push_str(&format!("<p>{}</p>", type_of(schema)));
        } else {
            body.push_str(&table);
        }
        body.push_str("</div>");
    }
    body.push_str("</section>");
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{title} reference</title><link rel=\"stylesheet\" href=\"/api/docs.css\"></head>\
         <body><main><header><h1>{title} <span class=\"muted\">{version}</span></h1>{desc}\
         <p>The OpenAPI {openapi} document: <a href=\"/api/openapi.json\"><code>/api/openapi.json</code></a>.</p></header>\
         {nav}{body}</main></body></html>",
        title = esc(title),
        version = esc(version),
        desc = doc["info"]["description"].as_str().map(text).unwrap_or_default(),
        openapi = esc(doc["openapi"].as_str().unwrap_or("")),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_covers_markup_and_quotes() {
        assert_eq!(
            esc("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}

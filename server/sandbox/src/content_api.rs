//! Twilio's Content API (v1): create, list, fetch and delete content, and
//! submit it for WhatsApp approval and read that approval's status.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::state::Shared;
use crate::templates::{StoredTemplate, CATEGORIES};
use crate::twilio_api::{authenticate, new_sid, twilio_error};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/Content", web::get().to(list))
        .route("/v1/Content", web::post().to(create))
        .route("/v1/Content/{sid}", web::get().to(fetch))
        .route("/v1/Content/{sid}", web::delete().to(delete))
        .route(
            "/v1/Content/{sid}/ApprovalRequests",
            web::get().to(approval),
        )
        .route(
            "/v1/Content/{sid}/ApprovalRequests/whatsapp",
            web::post().to(submit),
        );
}

/// `scheme://host` as the client called us, for absolute URLs in responses.
pub(crate) fn request_base(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}", info.scheme(), info.host())
}

#[derive(Debug, serde::Deserialize)]
struct PageQuery {
    #[serde(rename = "PageSize")]
    page_size: Option<usize>,
    #[serde(rename = "Page")]
    page: Option<usize>,
}

async fn list(req: HttpRequest, shared: web::Data<Arc<Shared>>) -> HttpResponse {
    if let Err(r) = authenticate(&req, &shared) {
        return r;
    }
    let query = match web::Query::<PageQuery>::from_query(req.query_string()) {
        Ok(q) => q.into_inner(),
        Err(_) => return twilio_error(400, 20001, "Invalid query parameters"),
    };
    let page_size = query.page_size.unwrap_or(50).clamp(1, 500);
    let page = query.page.unwrap_or(0);
    let base = request_base(&req);
    let account_sid = &shared.config.account_sid;
    let all: Vec<Value> = shared
        .lock()
        .templates
        .values()
        .filter(|t| t.shown_by("twilio"))
        .map(|t| t.content_json(account_sid, &base))
        .collect();
    let start = page.saturating_mul(page_size);
    let contents: Vec<Value> = all.iter().skip(start).take(page_size).cloned().collect();
    let page_url = |p: usize| {
        format!(
            "{base}/v1/Content?PageSize={page_size}&Page={p}&PageToken=PT{}",
            p.saturating_mul(page_size)
        )
    };
    let has_next = start + contents.len() < all.len();
    HttpResponse::Ok().json(json!({
        "contents": contents,
        "meta": {
            "page": page,
            "page_size": page_size,
            "first_page_url": format!("{base}/v1/Content?PageSize={page_size}&Page=0"),
            "previous_page_url": (page > 0).then(|| page_url(page - 1)),
            "url": page_url(page),
            "next_page_url": has_next.then(|| page_url(page + 1)),
            "key": "contents",
        },
    }))
}

async fn fetch(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Err(r) = authenticate(&req, &shared) {
        return r;
    }
    let base = request_base(&req);
    match shared
        .lock()
        .templates
        .get(path.as_str())
        .filter(|t| t.shown_by("twilio"))
    {
        Some(t) => HttpResponse::Ok().json(t.content_json(&shared.config.account_sid, &base)),
        None => twilio_error(
            404,
            20404,
            format!(
                "The requested resource /Content/{} was not found",
                path.as_str()
            ),
        ),
    }
}

async fn approval(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Err(r) = authenticate(&req, &shared) {
        return r;
    }
    let base = request_base(&req);
    match shared
        .lock()
        .templates
        .get(path.as_str())
        .filter(|t| t.shown_by("twilio"))
    {
        Some(t) => HttpResponse::Ok().json(t.approval_json(&shared.config.account_sid, &base)),
        None => twilio_error(
            404,
            20404,
            format!(
                "The requested resource /Content/{}/ApprovalRequests was not found",
                path.as_str()
            ),
        ),
    }
}

fn not_found(path: &str) -> HttpResponse {
    twilio_error(
        404,
        20404,
        format!("The requested resource {path} was not found"),
    )
}

/// The content types Twilio documents. Those Heimdall sends are checked as
/// Twilio checks them; the others are taken as given.
const CONTENT_TYPES: &[&str] = &[
    "twilio/text",
    "twilio/media",
    "twilio/location",
    "twilio/list-picker",
    "twilio/call-to-action",
    "twilio/quick-reply",
    "twilio/card",
    "twilio/catalog",
    "twilio/carousel",
    "twilio/flows",
    "twilio/schedule",
    "whatsapp/card",
    "whatsapp/authentication",
    "whatsapp/flows",
];

/// Twilio's "Invalid parameter" error.
const INVALID: i64 = 20001;

/// A JSON value without its `null` members (Twilio's own libraries send
/// every optional field, unset ones as `null`).
fn without_nulls(v: Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(without_nulls).collect()),
        other => other,
    }
}

fn text_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())
}

/// Check one content type's required fields, as Twilio documents them.
fn check_type(kind: &str, spec: &Value) -> Result<(), String> {
    if !spec.is_object() {
        return Err(format!("types['{kind}'] must be an object"));
    }
    let body = || {
        text_at(spec, "body")
            .map(|_| ())
            .ok_or_else(|| format!("types['{kind}'].body is required"))
    };
    let items = |key: &str| -> Result<Vec<Value>, String> {
        let list = spec
            .get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if list.is_empty() || list.len() > 10 {
            return Err(format!("types['{kind}'].{key} must have 1 to 10 entries"));
        }
        Ok(list)
    };
    match kind {
        "twilio/text" => {
            body()?;
            let n = text_at(spec, "body").map_or(0, |b| b.chars().count());
            if n > 1600 {
                return Err(format!(
                    "types['twilio/text'].body must be at most 1600 characters (it has {n})"
                ));
            }
        }
        "twilio/quick-reply" => {
            body()?;
            for (i, a) in items("actions")?.iter().enumerate() {
                let title = text_at(a, "title")
                    .ok_or_else(|| format!("types['{kind}'].actions[{i}].title is required"))?;
                if title.chars().count() > 20 {
                    return Err(format!(
                        "types['{kind}'].actions[{i}].title must be at most 20 characters"
                    ));
                }
                if text_at(a, "id").is_none() {
                    return Err(format!("types['{kind}'].actions[{i}].id is required"));
                }
            }
        }
        "twilio/list-picker" => {
            body()?;
            let button = text_at(spec, "button")
                .ok_or_else(|| format!("types['{kind}'].button is required"))?;
            if button.chars().count() > 20 {
                return Err(format!(
                    "types['{kind}'].button must be at most 20 characters"
                ));
            }
            for (i, item) in items("items")?.iter().enumerate() {
                if text_at(item, "id").is_none() {
                    return Err(format!("types['{kind}'].items[{i}].id is required"));
                }
                let label = text_at(item, "item")
                    .ok_or_else(|| format!("types['{kind}'].items[{i}].item is required"))?;
                if label.chars().count() > 24 {
                    return Err(format!(
                        "types['{kind}'].items[{i}].item must be at most 24 characters"
                    ));
                }
            }
        }
        "twilio/media" => {
            let media = spec.get("media").and_then(Value::as_array);
            let ok = media.is_some_and(|m| {
                !m.is_empty()
                    && m.iter()
                        .all(|u| u.as_str().is_some_and(|u| !u.trim().is_empty()))
            });
            if !ok {
                return Err(format!(
                    "types['{kind}'].media must list at least one media URL"
                ));
            }
        }
        _ => {}
    }
    Ok(())
}

/// A language code as WhatsApp takes it: `en`, `pt_BR`, `en-US`.
fn valid_language(code: &str) -> bool {
    let mut parts = code.splitn(2, ['_', '-']);
    let lang = parts.next().unwrap_or("");
    let region_ok = parts
        .next()
        .is_none_or(|r| (2..=4).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphanumeric()));
    (2..=3).contains(&lang.len()) && lang.bytes().all(|b| b.is_ascii_lowercase()) && region_ok
}

/// `POST /v1/Content`: a JSON body with `friendly_name`, `language`,
/// `variables` (sample values) and `types`; answers 201 with the content.
async fn create(
    req: HttpRequest,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Err(r) = authenticate(&req, &shared) {
        return r;
    }
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => without_nulls(v),
        _ => return twilio_error(400, INVALID, "The request body must be a JSON object"),
    };
    let Some(language) = text_at(&request, "language").map(str::trim) else {
        return twilio_error(400, 92003, "Invalid language. Language is required");
    };
    if !valid_language(language) {
        return twilio_error(400, 92004, format!("Invalid language code: {language}"));
    }
    let types = match request.get("types") {
        Some(Value::Object(map)) if !map.is_empty() => map.clone(),
        _ => {
            return twilio_error(
                400,
                92001,
                "The 'types' parameter requires at least one type in order to create content",
            )
        }
    };
    for (kind, spec) in &types {
        if !CONTENT_TYPES.contains(&kind.as_str()) {
            return twilio_error(
                400,
                INVALID,
                format!("Content type '{kind}' is not supported"),
            );
        }
        if let Err(message) = check_type(kind, spec) {
            return twilio_error(400, INVALID, message);
        }
    }
    let mut variables = std::collections::BTreeMap::new();
    match request.get("variables") {
        None => {}
        Some(Value::Object(map)) => {
            for (k, v) in map {
                match v.as_str() {
                    Some(s) => {
                        variables.insert(k.clone(), s.to_string());
                    }
                    None => {
                        return twilio_error(
                            400,
                            INVALID,
                            format!("variables['{k}'] must be a string"),
                        )
                    }
                }
            }
        }
        Some(_) => return twilio_error(400, INVALID, "variables must be a JSON object"),
    }
    let friendly_name = text_at(&request, "friendly_name")
        .unwrap_or("")
        .trim()
        .to_string();
    let now = chrono::Utc::now();
    let template = StoredTemplate {
        sid: new_sid("HX"),
        friendly_name,
        language: language.to_string(),
        variables,
        types: Value::Object(types),
        status: "unsubmitted".into(),
        category: String::new(),
        rejection_reason: String::new(),
        date_created: now,
        date_updated: now,
        api: Some("twilio".into()),
        whatsapp_name: None,
    };
    let base = request_base(&req);
    let out = template.content_json(&shared.config.account_sid, &base);
    shared
        .lock()
        .templates
        .insert(template.sid.clone(), template);
    HttpResponse::Created().json(out)
}

/// `DELETE /v1/Content/{sid}`: 204.
async fn delete(
    req: HttpRequest,
    path: web::Path<String>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Err(r) = authenticate(&req, &shared) {
        return r;
    }
    let mut inner = shared.lock();
    match inner.templates.get(path.as_str()) {
        Some(t) if t.shown_by("twilio") => {
            inner.templates.remove(path.as_str());
            HttpResponse::NoContent().finish()
        }
        _ => not_found(&format!("/Content/{}", path.as_str())),
    }
}

/// A WhatsApp template name: lower-case letters, digits and underscores.
pub(crate) fn valid_template_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 512
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// `POST /v1/Content/{sid}/ApprovalRequests/whatsapp` with `{name,
/// category}`: the content goes to WhatsApp for approval. Answers 201 with
/// status `received`; the sandbox then shows it `pending` until
/// `POST /sandbox/templates` approves or rejects it.
async fn submit(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    if let Err(r) = authenticate(&req, &shared) {
        return r;
    }
    let request = match serde_json::from_slice::<Value>(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return twilio_error(400, INVALID, "The request body must be a JSON object"),
    };
    let Some(name) = text_at(&request, "name").map(str::trim) else {
        return twilio_error(400, INVALID, "name is required");
    };
    if !valid_template_name(name) {
        return twilio_error(
            400,
            INVALID,
            "name may contain only lower-case letters, digits and underscores (at most 512)",
        );
    }
    let category = text_at(&request, "category")
        .map(|c| c.trim().to_ascii_uppercase())
        .unwrap_or_default();
    if !CATEGORIES.contains(&category.as_str()) {
        return twilio_error(
            400,
            INVALID,
            format!("category must be one of {}", CATEGORIES.join(", ")),
        );
    }
    let mut inner = shared.lock();
    let Some(t) = inner
        .templates
        .get_mut(path.as_str())
        .filter(|t| t.shown_by("twilio"))
    else {
        return not_found(&format!(
            "/Content/{}/ApprovalRequests/whatsapp",
            path.as_str()
        ));
    };
    if !matches!(t.status.as_str(), "unsubmitted" | "rejected") {
        return twilio_error(
            400,
            INVALID,
            format!(
                "This content was already submitted for WhatsApp approval ({})",
                t.status
            ),
        );
    }
    let placeholders = t.placeholder_count();
    if let Some(missing) = (1..=placeholders)
        .map(|i| i.to_string())
        .find(|i| t.variables.get(i).is_none_or(|v| v.trim().is_empty()))
    {
        return twilio_error(
            400,
            INVALID,
            format!("WhatsApp approval needs a sample value for variable {{{{{missing}}}}}"),
        );
    }
    if t.friendly_name.is_empty() {
        t.friendly_name = name.to_string();
    }
    t.whatsapp_name = Some(name.to_string());
    t.category = category.clone();
    t.status = "pending".into();
    t.rejection_reason = String::new();
    t.date_updated = chrono::Utc::now();
    let content_type = t
        .types
        .as_object()
        .and_then(|m| m.keys().next().cloned())
        .unwrap_or_else(|| "twilio/text".into());
    HttpResponse::Created().json(json!({
        "name": name,
        "category": category,
        "content_type": content_type,
        "status": "received",
        "rejection_reason": "",
        "allow_category_change": true,
    }))
}

//! Meta's message templates for a WhatsApp Business Account:
//! `POST /{version}/{waba_id}/message_templates` (a new template, `PENDING`
//! until `POST /sandbox/templates` approves or rejects it) and `GET` on the
//! same path (every template, paged with cursors and `paging.next`), with
//! Graph-style errors and the bearer token the send endpoint takes.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as BASE64;
use base64::Engine as _;
use rand::Rng;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::content_api::{request_base, valid_template_name};
use crate::meta_api::graph_error;
use crate::state::Shared;
use crate::templates::{placeholders, StoredTemplate, CATEGORIES};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route(
        "/{version}/{waba_id}/message_templates",
        web::post().to(create),
    )
    .route(
        "/{version}/{waba_id}/message_templates",
        web::get().to(list),
    );
}

/// Meta's limit on a template body.
const BODY_LIMIT: usize = 1024;

/// The bearer token and the account in the path, as Graph checks them.
fn check(req: &HttpRequest, shared: &Shared, waba_id: &str) -> Result<(), HttpResponse> {
    let token = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.trim().split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(rest.trim())
        });
    if token != Some(shared.config.meta_access_token.expose_secret()) {
        return Err(graph_error(
            401,
            190,
            "OAuthException",
            "Invalid OAuth access token.",
            None,
        ));
    }
    if waba_id != shared.config.meta_business_account_id {
        return Err(graph_error(
            400,
            100,
            "GraphMethodException",
            &format!("Unsupported request. Object with ID '{waba_id}' does not exist, cannot be loaded due to missing permissions, or does not support this operation."),
            None,
        ));
    }
    Ok(())
}

/// Graph's "Invalid parameter" with the message meant for a person.
fn invalid(user_title: &str, user_msg: &str, subcode: Option<i64>) -> HttpResponse {
    let mut error = json!({
        "message": "Invalid parameter",
        "type": "OAuthException",
        "code": 100,
        "is_transient": false,
        "error_user_title": user_title,
        "error_user_msg": user_msg,
        "fbtrace_id": "AsandboxTemplates",
    });
    if let Some(sub) = subcode {
        error["error_subcode"] = json!(sub);
    }
    HttpResponse::BadRequest().json(json!({ "error": error }))
}

fn text_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

async fn create(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    body: web::Bytes,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let (_version, waba_id) = path.into_inner();
    if let Err(r) = check(&req, &shared, &waba_id) {
        return r;
    }
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => {
            return graph_error(
                400,
                100,
                "OAuthException",
                "(#100) The request body is not a JSON object.",
                None,
            )
        }
    };
    let Some(name) = text_at(&request, "name") else {
        return invalid("Name is missing", "Give the template a name.", None);
    };
    if !valid_template_name(name) {
        return invalid(
            "Invalid name",
            "A template name may contain only lower-case letters, numbers and underscores, and be at most 512 characters long.",
            None,
        );
    }
    let Some(language) = text_at(&request, "language") else {
        return invalid("Language is missing", "Give the template's language.", None);
    };
    let category = text_at(&request, "category")
        .map(str::to_ascii_uppercase)
        .unwrap_or_default();
    if !CATEGORIES.contains(&category.as_str()) {
        return invalid(
            "Invalid category",
            &format!("The category must be one of {}.", CATEGORIES.join(", ")),
            None,
        );
    }
    let components = request
        .get("components")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(body) = components
        .iter()
        .find(|c| text_at(c, "type").is_some_and(|t| t.eq_ignore_ascii_case("body")))
    else {
        return invalid(
            "Body is missing",
            "A template needs a BODY component with its text.",
            None,
        );
    };
    let Some(text) = body
        .get("text")
        .and_then(Value::as_str)
        .filter(|t| !t.trim().is_empty())
    else {
        return invalid(
            "Body is missing",
            "The BODY component needs its text.",
            None,
        );
    };
    let length = text.chars().count();
    if length > BODY_LIMIT {
        return invalid(
            "Body too long",
            &format!("The body may be at most {BODY_LIMIT} characters long (it has {length})."),
            None,
        );
    }
    let count = placeholders(text);
    let examples: Vec<String> = body
        .pointer("/example/body_text/0")
        .and_then(Value::as_array)
        .map(|v| {
            v.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if count > 0 && (examples.len() != count || examples.iter().any(|e| e.trim().is_empty())) {
        return invalid(
            "Sample values are missing",
            &format!(
                "The body has {count} variables: give example.body_text one sample value for each ({} given).",
                examples.len()
            ),
            Some(2388043),
        );
    }
    let mut inner = shared.lock();
    let taken = inner.templates.values().any(|t| {
        t.shown_by("meta")
            && t.whatsapp_name.as_deref().unwrap_or(&t.friendly_name) == name
            && t.language == language
    });
    if taken {
        return invalid(
            "Content in this language already exists",
            &format!("A template named {name} in {language} already exists."),
            Some(2388024),
        );
    }
    let id = format!(
        "{}",
        rand::thread_rng().gen_range(1_000_000_000_000_000u64..2_000_000_000_000_000)
    );
    let variables: BTreeMap<String, String> = examples
        .into_iter()
        .enumerate()
        .map(|(i, v)| ((i + 1).to_string(), v))
        .collect();
    let mut template = StoredTemplate::new(name, text, variables, &category, "pending");
    template.sid = id.clone();
    template.language = language.to_string();
    template.api = Some("meta".into());
    inner.templates.insert(id.clone(), template);
    HttpResponse::Ok().json(json!({"id": id, "status": "PENDING", "category": category}))
}

#[derive(Debug, serde::Deserialize)]
struct ListQuery {
    limit: Option<usize>,
    after: Option<String>,
}

fn template_json(t: &StoredTemplate) -> Value {
    let body = t.body().unwrap_or_default();
    let mut component = json!({"type": "BODY", "text": body});
    let count = placeholders(&body);
    if count > 0 {
        let samples: Vec<String> = (1..=count)
            .map(|i| t.variables.get(&i.to_string()).cloned().unwrap_or_default())
            .collect();
        component["example"] = json!({"body_text": [samples]});
    }
    let status = match t.status.as_str() {
        "unsubmitted" | "received" => "PENDING".to_string(),
        other => other.to_ascii_uppercase(),
    };
    let reason = if t.rejection_reason.trim().is_empty() {
        "NONE".to_string()
    } else {
        t.rejection_reason.clone()
    };
    json!({
        "name": t.whatsapp_name.as_deref().unwrap_or(&t.friendly_name),
        "language": t.language,
        "status": status,
        "category": t.category,
        "rejected_reason": reason,
        "components": [component],
        "id": t.meta_id(),
    })
}

async fn list(
    req: HttpRequest,
    path: web::Path<(String, String)>,
    shared: web::Data<Arc<Shared>>,
) -> HttpResponse {
    let (version, waba_id) = path.into_inner();
    if let Err(r) = check(&req, &shared, &waba_id) {
        return r;
    }
    let Ok(query) = web::Query::<ListQuery>::from_query(req.query_string()) else {
        return graph_error(400, 100, "OAuthException", "(#100) Invalid parameter", None);
    };
    let limit = query.limit.unwrap_or(25).clamp(1, 100);
    let start = match &query.after {
        None => 0,
        Some(cursor) => match BASE64
            .decode(cursor)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .and_then(|s| s.parse::<usize>().ok())
        {
            Some(n) => n,
            None => {
                return graph_error(
                    400,
                    100,
                    "OAuthException",
                    "(#100) Invalid parameter: after is not a valid cursor",
                    None,
                )
            }
        },
    };
    let all: Vec<Value> = shared
        .lock()
        .templates
        .values()
        .filter(|t| t.shown_by("meta"))
        .map(template_json)
        .collect();
    let data: Vec<Value> = all.iter().skip(start).take(limit).cloned().collect();
    let end = start + data.len();
    let cursor = |n: usize| BASE64.encode(n.to_string());
    let mut paging = json!({"cursors": {"before": cursor(start), "after": cursor(end)}});
    if end < all.len() {
        paging["next"] = json!(format!(
            "{}/{version}/{waba_id}/message_templates?limit={limit}&after={}",
            request_base(&req),
            cursor(end)
        ));
    }
    HttpResponse::Ok().json(json!({"data": data, "paging": paging}))
}

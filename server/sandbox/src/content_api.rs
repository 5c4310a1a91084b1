//! Twilio's Content API (v1): list, fetch and approval status of templates.

use std::sync::Arc;

use actix_web::{web, HttpRequest, HttpResponse};
use serde_json::{json, Value};

use crate::state::Shared;
use crate::twilio_api::{authenticate, twilio_error};

pub(crate) fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/v1/Content", web::get().to(list))
        .route("/v1/Content/{sid}", web::get().to(fetch))
        .route(
            "/v1/Content/{sid}/ApprovalRequests",
            web::get().to(approval),
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
    match shared.lock().templates.get(path.as_str()) {
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
    match shared.lock().templates.get(path.as_str()) {
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

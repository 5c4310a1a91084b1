//! The server side of every console server function (compiled with `ssr`
//! only): the state they share, the session and role check that comes
//! first in each, the CSRF and Origin check of every state-changing call,
//! the staff audit trail, the session cookie, and the mapping of errors to
//! HTTP statuses.
//!
//! Server functions are public HTTP endpoints: nothing here trusts what the
//! browser shows or hides. This module must never log or render a session
//! token or a password, and never put a cause chain into a response.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::HttpMessage;
use chrono::{DateTime, Duration, Utc};
use leptos::prelude::*;
use secrecy::{ExposeSecret, SecretString};

use heimdall_domain::access::accounts::{self, StaffUser};
use heimdall_domain::access::sessions::{self, FirstAdminLink, LoginThrottle, Session};
use heimdall_domain::Core;

use crate::error::AppError;
use crate::model::{Me, Role};

pub use heimdall_domain::access::accounts::Role as DomainRole;

/// Cookie name over plain HTTP (development, tests).
pub const SESSION_COOKIE: &str = "heimdall_session";
/// Cookie name behind HTTPS: the `__Host-` prefix makes the browser insist
/// on Secure, Path=/ and no Domain.
pub const SECURE_SESSION_COOKIE: &str = "__Host-heimdall_session";

/// What the console's server functions share, provided as context to both
/// the page renderer and the server-function handler.
#[derive(Clone, Debug)]
pub struct ConsoleState {
    pub core: Arc<Core>,
    pub throttle: Arc<LoginThrottle>,
    pub first_admin: Arc<FirstAdminLink>,
    pub flash: Arc<Flash>,
}

impl ConsoleState {
    pub fn new(core: Arc<Core>) -> Self {
        ConsoleState {
            core,
            throttle: Arc::new(LoginThrottle::new()),
            first_admin: Arc::new(FirstAdminLink::new()),
            flash: Arc::new(Flash::default()),
        }
    }

    /// Is the console served over HTTPS (so cookies must be Secure)?
    pub fn secure(&self) -> bool {
        self.core
            .settings
            .public_url
            .as_ref()
            .is_some_and(|u| u.scheme() == "https")
    }

    pub fn cookie_name(&self) -> &'static str {
        if self.secure() {
            SECURE_SESSION_COOKIE
        } else {
            SESSION_COOKIE
        }
    }
}

/// A value shown once to the session that caused it (a new API key, an
/// import report), kept in memory for a few minutes at most. It survives
/// the redirect of a form posted without JavaScript, which a return value
/// would not.
#[derive(Debug, Default)]
pub struct Flash {
    items: Mutex<HashMap<FlashKey, (DateTime<Utc>, SecretString)>>,
}

/// A session id and what kind of value.
type FlashKey = (String, &'static str);

impl Flash {
    const TTL: Duration = Duration::minutes(5);

    pub fn put(
        &self,
        session_id: &str,
        kind: &'static str,
        value: SecretString,
        now: DateTime<Utc>,
    ) {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items.retain(|_, (at, _)| *at > now - Self::TTL);
        items.insert((session_id.to_string(), kind), (now, value));
    }

    pub fn take(
        &self,
        session_id: &str,
        kind: &'static str,
        now: DateTime<Utc>,
    ) -> Option<SecretString> {
        let mut items = self.items.lock().unwrap_or_else(|e| e.into_inner());
        items
            .remove(&(session_id.to_string(), kind))
            .filter(|(at, _)| *at > now - Self::TTL)
            .map(|(_, v)| v)
    }
}

/// Marks a request whose error this module answered (with its own status),
/// so the server can tell those from the framework's own failures.
#[derive(Debug, Clone, Copy)]
pub struct ErrorAnswered;

/// The console state from context.
pub fn state() -> Result<ConsoleState, AppError> {
    use_context::<ConsoleState>().ok_or_else(|| {
        tracing::error!("ConsoleState was not provided to the console");
        AppError::Internal
    })
}

/// What the checks need from the request, read at once (the request itself
/// cannot be held across an await).
#[derive(Debug, Clone, Default)]
pub struct RequestFacts {
    pub session_token: Option<String>,
    /// The peer address (a reverse proxy's, behind one; see [`client_ip`]).
    pub ip: Option<String>,
    pub forwarded_for: Option<String>,
    pub user_agent: Option<String>,
    pub origin: Option<String>,
    pub referer: Option<String>,
    /// `scheme://host` as this request reached the server.
    pub own_origin: String,
}

pub fn request_facts(cookie_name: &str) -> RequestFacts {
    let Some(req) = use_context::<leptos_actix::Request>() else {
        return RequestFacts::default();
    };
    facts_of(&req, cookie_name)
}

/// What a request says about itself (for the console's own actix routes too).
pub fn facts_of(req: &actix_web::HttpRequest, cookie_name: &str) -> RequestFacts {
    let header = |name: header::HeaderName| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let conn = req.connection_info().clone();
    RequestFacts {
        session_token: req.cookie(cookie_name).map(|c| c.value().to_string()),
        ip: req.peer_addr().map(|a| a.ip().to_string()),
        forwarded_for: header(header::HeaderName::from_static("x-forwarded-for")),
        user_agent: header(header::USER_AGENT),
        origin: header(header::ORIGIN),
        referer: header(header::REFERER),
        own_origin: format!("{}://{}", conn.scheme(), conn.host()),
    }
}

/// A checked request: who is asking, with what role, from where.
#[derive(Debug, Clone)]
pub struct Ctx {
    pub state: ConsoleState,
    pub session: Session,
    pub facts: RequestFacts,
}

impl Ctx {
    pub fn core(&self) -> &Core {
        &self.state.core
    }

    pub fn user(&self) -> &StaffUser {
        &self.session.user
    }

    /// Who is recorded as having done something: the staff email.
    pub fn actor(&self) -> String {
        self.session.actor()
    }

    /// The client's address: the peer, or behind a trusted reverse proxy
    /// the address it forwarded.
    pub async fn ip(&self) -> Option<String> {
        client_ip(self.core(), &self.facts).await
    }

    pub fn me(&self) -> Me {
        Me {
            email: self.session.user.email.clone(),
            name: self.session.user.name.clone(),
            role: role_from_domain(self.session.user.role),
            csrf: self.session.csrf_token.clone(),
        }
    }

    /// Record a staff action that changed something: who, what, target,
    /// detail, address and time.
    pub async fn audit(
        &self,
        action: &str,
        target: Option<&str>,
        detail: Option<serde_json::Value>,
    ) -> Result<(), AppError> {
        let ip = self.ip().await;
        heimdall_domain::audit::record_staff_action(
            &self.core().db.conn,
            &self.actor(),
            action,
            target,
            detail,
            ip.as_deref(),
            self.core().now(),
        )
        .await
        .map_err(internal)
    }
}

/// The client's address: the peer, unless the peer is one of the reverse
/// proxies an admin listed (Settings), in which case the address it
/// forwarded. Used for sign-in throttling and the audit trail.
pub async fn client_ip(core: &Core, facts: &RequestFacts) -> Option<String> {
    let peer: std::net::IpAddr = facts.ip.as_deref()?.parse().ok()?;
    if facts.forwarded_for.is_none() {
        return Some(peer.to_string());
    }
    let trusted = match heimdall_domain::optin::trusted_proxies(core).await {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(error = %e, "trusted proxies could not be read; using the peer address");
            Vec::new()
        }
    };
    Some(
        heimdall_domain::optin::client_ip(peer, facts.forwarded_for.as_deref(), &trusted)
            .to_string(),
    )
}

/// Who an actor recorded as `staff:<id>` is, by email (other actors as
/// they are: `campaign:<id>`, `api_key:<name>`, `system:...`).
pub async fn staff_names(core: &Core) -> Result<HashMap<String, String>, AppError> {
    Ok(accounts::list_users(core)
        .await
        .map_err(internal)?
        .into_iter()
        .map(|u| (format!("staff:{}", u.id), u.email))
        .collect())
}

pub fn actor_label(names: &HashMap<String, String>, actor: String) -> String {
    names.get(&actor).cloned().unwrap_or(actor)
}

pub fn role_from_domain(r: DomainRole) -> Role {
    match r {
        DomainRole::Viewer => Role::Viewer,
        DomainRole::Operator => Role::Operator,
        DomainRole::Approver => Role::Approver,
        DomainRole::Admin => Role::Admin,
    }
}

pub fn role_to_domain(r: Role) -> DomainRole {
    match r {
        Role::Viewer => DomainRole::Viewer,
        Role::Operator => DomainRole::Operator,
        Role::Approver => DomainRole::Approver,
        Role::Admin => DomainRole::Admin,
    }
}

/// The session of this request, looked up once per request.
#[derive(Debug, Clone)]
struct CachedSession(Option<Session>);

async fn current_session(
    state: &ConsoleState,
    facts: &RequestFacts,
) -> Result<Option<Session>, AppError> {
    if let Some(req) = use_context::<leptos_actix::Request>() {
        if let Some(cached) = req.extensions().get::<CachedSession>() {
            return Ok(cached.0.clone());
        }
    }
    let session = match &facts.session_token {
        Some(token) => sessions::authenticate(&state.core, token)
            .await
            .map_err(internal)?,
        None => None,
    };
    if let Some(req) = use_context::<leptos_actix::Request>() {
        req.extensions_mut().insert(CachedSession(session.clone()));
    }
    Ok(session)
}

/// The signed-in staff member, or `None` (no error) when nobody is.
pub async fn optional_session() -> Result<Option<Ctx>, AppError> {
    let state = state()?;
    let facts = request_facts(state.cookie_name());
    let session = current_session(&state, &facts).await?;
    Ok(session.map(|session| Ctx {
        state,
        session,
        facts,
    }))
}

fn role_needed_message(role: Role) -> String {
    format!(
        "This needs the {role} role ({}); your account does not have it.",
        role.describe()
    )
}

/// Every read: a session (401 without) and at least `role` (403 below it).
pub async fn require(role: Role) -> Result<Ctx, AppError> {
    let ctx = optional_session().await?.ok_or(AppError::Unauthorized)?;
    check_role(&ctx, role)?;
    Ok(ctx)
}

fn check_role(ctx: &Ctx, role: Role) -> Result<(), AppError> {
    if !role_from_domain(ctx.session.user.role).allows(role) {
        return Err(AppError::Forbidden(role_needed_message(role)));
    }
    Ok(())
}

/// Every state-changing call: [`require`], then the session's CSRF token
/// and a same-origin Origin (or Referer) header. SameSite cookies alone do
/// not cover older browsers or same-site attackers.
pub async fn mutation(role: Role, csrf: &str) -> Result<Ctx, AppError> {
    let ctx = require(role).await?;
    check_change(&ctx, csrf)?;
    Ok(ctx)
}

/// [`mutation`]'s checks but the CSRF token, for a console route of actix's own (a file
/// upload), from its request: a session, the role and a same-origin request. They come
/// before the body is read; the route checks the token from the body with [`check_csrf`].
pub async fn staff_from_request(
    state: ConsoleState,
    req: &actix_web::HttpRequest,
    role: Role,
) -> Result<Ctx, AppError> {
    let ctx = staff_reading(state, req, role).await?;
    check_origin(&ctx.state, &ctx.facts)?;
    Ok(ctx)
}

/// [`require`] for a console page of actix's own that only reads (a
/// message's printable receipt), from its request: a session and the role.
/// No origin check: a read changes nothing, and a link opened in a new tab
/// or typed in need not carry one.
pub async fn staff_reading(
    state: ConsoleState,
    req: &actix_web::HttpRequest,
    role: Role,
) -> Result<Ctx, AppError> {
    let facts = facts_of(req, state.cookie_name());
    let session = match &facts.session_token {
        Some(token) => sessions::authenticate(&state.core, token)
            .await
            .map_err(internal)?,
        None => None,
    }
    .ok_or(AppError::Unauthorized)?;
    let ctx = Ctx {
        state,
        session,
        facts,
    };
    check_role(&ctx, role)?;
    Ok(ctx)
}

fn check_change(ctx: &Ctx, csrf: &str) -> Result<(), AppError> {
    check_origin(&ctx.state, &ctx.facts)?;
    check_csrf(ctx, csrf)
}

/// The session's CSRF token must come with every change.
pub fn check_csrf(ctx: &Ctx, csrf: &str) -> Result<(), AppError> {
    if !ctx.session.csrf_matches(csrf) {
        return Err(AppError::Forbidden(
            "This form has expired (its security token does not match your session). Reload the page and try again."
                .into(),
        ));
    }
    Ok(())
}

/// The request must come from a page of this server: its Origin (or, when
/// a browser sends none, its Referer) must be the public URL's origin or
/// the origin the request was addressed to.
pub fn check_origin(state: &ConsoleState, facts: &RequestFacts) -> Result<(), AppError> {
    let mut allowed = vec![facts.own_origin.to_ascii_lowercase()];
    if let Some(public) = &state.core.settings.public_url {
        allowed.push(public.origin().ascii_serialization().to_ascii_lowercase());
    }
    let ok = match (&facts.origin, &facts.referer) {
        (Some(origin), _) if origin != "null" => {
            allowed.iter().any(|a| a == &origin.to_ascii_lowercase())
        }
        (_, Some(referer)) => {
            let referer = referer.to_ascii_lowercase();
            allowed
                .iter()
                .any(|a| referer == *a || referer.starts_with(&format!("{a}/")))
        }
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(AppError::Forbidden(
            "This request did not come from a Heimdall page (cross-site requests are refused)."
                .into(),
        ))
    }
}

/// Log an unexpected failure with its cause and answer with the generic
/// internal error.
pub fn internal(e: impl std::fmt::Display) -> AppError {
    tracing::error!(error = %e, "console request failed");
    AppError::Internal
}

/// The end of every server function: on error, answer with the error's
/// status. A plain HTML form (JavaScript off) is redirected back to its page
/// instead, with the error in the URL for the page to show (by the server
/// function machinery); a sign-in is asked for when the session is gone.
pub fn respond<T>(result: Result<T, AppError>) -> Result<T, AppError> {
    if let Err(e) = &result {
        answer_error(e);
    }
    result
}

fn answer_error(e: &AppError) {
    let (Some(req), Some(res)) = (
        use_context::<leptos_actix::Request>(),
        use_context::<leptos_actix::ResponseOptions>(),
    ) else {
        return;
    };
    req.extensions_mut().insert(ErrorAnswered);
    let path = req.path().to_string();
    let query = req.query_string().to_string();
    let accepts_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/html"));
    let server_fn = path.starts_with("/_sf/");
    drop(req);
    match (server_fn, accepts_html, e) {
        // A form posted without JavaScript.
        (true, true, AppError::Unauthorized) => leptos_actix::redirect("/login"),
        (true, true, _) => {}
        // A page rendered on the server without a session.
        (false, _, AppError::Unauthorized) => {
            let here = if query.is_empty() {
                path
            } else {
                format!("{path}?{query}")
            };
            leptos_actix::redirect(&format!("/login?next={}", url_encode(&here)));
            res.set_status(StatusCode::FOUND);
        }
        _ => {
            let status =
                StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            res.set_status(status);
            if matches!(e, AppError::Unauthorized) {
                res.insert_header(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Cookie realm=\"heimdall\""),
                );
            }
        }
    }
}

/// Percent-encode for a query value.
pub fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Only a path on this site may be a post-login destination, written in
/// printable ASCII (it goes into a `Location` header: a control character
/// there would make the header invalid), at most 2,000 characters.
pub fn safe_next(next: Option<&str>) -> String {
    match next.map(str::trim) {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.contains('\\')
                && n.len() <= 2000
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !n.starts_with("/login")
                && !n.starts_with("/_sf/") =>
        {
            n.to_string()
        }
        _ => "/".to_string(),
    }
}

/// Hand the new session's token to the browser, once.
pub fn set_session_cookie(state: &ConsoleState, token: &SecretString) {
    let Some(res) = use_context::<leptos_actix::ResponseOptions>() else {
        return;
    };
    let mut cookie = format!(
        "{}={}; Path=/; HttpOnly; SameSite=Lax; Max-Age={}",
        state.cookie_name(),
        token.expose_secret(),
        sessions::ABSOLUTE_TIMEOUT.num_seconds()
    );
    if state.secure() {
        cookie.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.append_header(header::SET_COOKIE, v);
    }
}

pub fn clear_session_cookie(state: &ConsoleState) {
    let Some(res) = use_context::<leptos_actix::ResponseOptions>() else {
        return;
    };
    let mut cookie = format!(
        "{}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0",
        state.cookie_name()
    );
    if state.secure() {
        cookie.push_str("; Secure");
    }
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        res.append_header(header::SET_COOKIE, v);
    }
}

/// Console pages are personal and change with every action: never cached,
/// and never shown inside another site's frame (an approve button must not
/// be clickable through a disguise).
pub fn no_store() {
    if let Some(res) = use_context::<leptos_actix::ResponseOptions>() {
        res.insert_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        // (The pages' full Content-Security-Policy is set by the shell.)
        res.insert_header(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        res.insert_header(
            header::REFERRER_POLICY,
            HeaderValue::from_static("same-origin"),
        );
    }
}

/// An id from a form or a path: bounded and plain, or a 404.
pub fn check_id(id: &str, what: &str) -> Result<String, AppError> {
    let id = id.trim();
    if id.is_empty()
        || id.len() > 64
        || !id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(AppError::NotFound(format!("No {what} with that id.")));
    }
    Ok(id.to_string())
}

/// Trimmed text, or an error beside `field` when empty or too long.
pub fn required(field: &str, label: &str, value: &str, max: usize) -> Result<String, AppError> {
    let v = value.trim();
    if v.is_empty() {
        return Err(AppError::invalid(field, format!("{label} is required.")));
    }
    if v.chars().count() > max {
        return Err(AppError::invalid(
            field,
            format!("{label} must be at most {max} characters."),
        ));
    }
    Ok(v.to_string())
}

/// A message with its first letter in upper case (domain errors start in lower case).
pub fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str(),
        None => String::new(),
    }
}

pub fn optional(value: Option<String>) -> Option<String> {
    value
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_local_paths_are_post_login_destinations() {
        assert_eq!(safe_next(Some("/campaigns/1")), "/campaigns/1");
        assert_eq!(
            safe_next(Some("/audit?reason=suppressed")),
            "/audit?reason=suppressed"
        );
        for bad in [
            None,
            Some(""),
            Some("https://evil.example/"),
            Some("//evil.example"),
            Some("/\\evil.example"),
            Some("/login"),
            Some("/_sf/logout"),
            Some("javascript:alert(1)"),
            // Control characters and anything else a header cannot carry.
            Some("/campaigns\r\nSet-Cookie: x=1"),
            Some("/a\u{0}b"),
            Some("/a\u{7f}"),
            Some("/caf\u{e9}"),
            Some("/a b"),
        ] {
            assert_eq!(safe_next(bad), "/", "{bad:?}");
        }
    }

    #[test]
    fn query_values_are_encoded() {
        assert_eq!(
            url_encode("/campaigns?status=draft"),
            "/campaigns%3Fstatus%3Ddraft"
        );
        assert_eq!(url_encode("a b&c"), "a%20b%26c");
    }

    #[test]
    fn flash_values_are_taken_once_and_expire() {
        let flash = Flash::default();
        let now = Utc::now();
        flash.put("s1", "api_key", SecretString::from("k1".to_string()), now);
        assert!(
            flash.take("s2", "api_key", now).is_none(),
            "another session"
        );
        assert!(flash.take("s1", "other", now).is_none(), "another kind");
        assert_eq!(
            flash
                .take("s1", "api_key", now)
                .map(|v| v.expose_secret().to_string()),
            Some("k1".to_string())
        );
        assert!(flash.take("s1", "api_key", now).is_none(), "once");
        flash.put("s1", "api_key", SecretString::from("k2".to_string()), now);
        assert!(flash
            .take("s1", "api_key", now + Duration::minutes(6))
            .is_none());
    }

    #[test]
    fn ids_are_plain_and_bounded() {
        assert!(check_id("01a20524-f900-70b4-98e6-5b8e2a900e6d", "x").is_ok());
        for bad in ["", " ", "../etc", "a b", &"a".repeat(65)] {
            assert!(check_id(bad, "x").is_err(), "{bad}");
        }
    }
}

//! Shared helpers for the sandbox's integration tests: start a sandbox on a
//! free port, poll with a deadline, and a tiny HTTP receiver that records
//! what it is sent (status callbacks, webhooks, inbound messages).
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use heimdall_sandbox::{SandboxConfig, SandboxHandle};
use url::Url;

/// A fast status walk for tests.
pub const STEP: Duration = Duration::from_millis(25);

pub async fn sandbox() -> SandboxHandle {
    sandbox_with(SandboxConfig {
        status_step: STEP,
        ..SandboxConfig::default()
    })
    .await
}

pub async fn sandbox_with(config: SandboxConfig) -> SandboxHandle {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    heimdall_sandbox::start(config, listener)
        .await
        .expect("sandbox starts")
}

/// Poll `check` every 20 ms until it gives `Some`, or fail after `limit`.
pub async fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A port nothing listens on.
pub fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    port
}

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Captured {
    pub method: String,
    /// Path and query, as sent.
    pub path_and_query: String,
    pub headers: HashMap<String, String>,
    pub body: Vec<u8>,
}

impl Captured {
    pub fn form(&self) -> Vec<(String, String)> {
        url::form_urlencoded::parse(&self.body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    pub fn param(&self, key: &str) -> Option<String> {
        self.form()
            .into_iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("JSON body")
    }
}

#[derive(Clone)]
struct ReceiverState {
    captured: Arc<Mutex<Vec<Captured>>>,
    status: u16,
    reply: &'static str,
}

/// A tiny HTTP server on a free port that records every request.
pub struct Receiver {
    pub base: Url,
    captured: Arc<Mutex<Vec<Captured>>>,
    handle: actix_web::dev::ServerHandle,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::answering(
            200,
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>",
        )
        .await
    }

    /// Answer every request with this status and body.
    pub async fn answering(status: u16, reply: &'static str) -> Receiver {
        let captured = Arc::new(Mutex::new(Vec::new()));
        let state = ReceiverState {
            captured: captured.clone(),
            status,
            reply,
        };
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .default_service(web::to(record))
        })
        .workers(1)
        .disable_signals()
        .listen(listener)
        .expect("listen")
        .run();
        let handle = server.handle();
        tokio::spawn(server);
        Receiver {
            base: Url::parse(&format!("http://127.0.0.1:{port}/")).expect("url"),
            captured,
            handle,
        }
    }

    pub fn url(&self, path_and_query: &str) -> String {
        format!("{}{}", self.base, path_and_query.trim_start_matches('/'))
    }

    pub fn requests(&self) -> Vec<Captured> {
        self.captured.lock().expect("lock").clone()
    }

    pub async fn stop(self) {
        self.handle.stop(true).await;
    }
}

async fn record(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<ReceiverState>,
) -> HttpResponse {
    let headers = req
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let path_and_query = match req.query_string() {
        "" => req.path().to_string(),
        q => format!("{}?{q}", req.path()),
    };
    state.captured.lock().expect("lock").push(Captured {
        method: req.method().to_string(),
        path_and_query,
        headers,
        body: body.to_vec(),
    });
    HttpResponse::build(actix_web::http::StatusCode::from_u16(state.status).expect("status"))
        .content_type("text/xml")
        .body(state.reply)
}

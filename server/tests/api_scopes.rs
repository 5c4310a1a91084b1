//! API keys have scopes (security finding 2): every API route needs one,
//! checked before the request's body is read; a key without it gets 403
//! naming the scope; the bootstrap key from settings may only send and
//! manage reminders unless `HEIMDALL_API_KEY_SCOPES` says otherwise.

mod support;

use heimdall_domain::entities::api_key::{Scope, Scopes};
use heimdall_server::routes::api::ROUTE_SCOPES;
use secrecy::ExposeSecret;
use support::TestApp;

/// A request for a route pattern: placeholders filled, a body that parses
/// where one is needed (what the route then does with it is not the point).
fn request(app: &TestApp, method: &str, pattern: &str, key: &str) -> reqwest::RequestBuilder {
    let path = pattern
        .replace("{id}", "01a00000-0000-7000-8000-000000000000")
        .replace("{phone}", "+4791234567");
    let url = app.url(&path);
    let http = &app.http;
    let b = match method {
        "GET" => http.get(url),
        "DELETE" => http.delete(url),
        "PATCH" => http.patch(url),
        _ => http.post(url),
    };
    b.header("X-API-Key", key)
        .header("Content-Type", "application/json")
        .body("{}")
}

#[tokio::test]
async fn a_key_without_a_routes_scope_gets_403_naming_it_on_every_route() {
    let app = TestApp::spawn(&[]).await;
    for scope in Scope::ALL {
        // Every scope but this one.
        let others: Vec<Scope> = Scope::ALL.into_iter().filter(|s| *s != scope).collect();
        let without = heimdall_domain::access::accounts::create_api_key(
            &app.core,
            &format!("without {scope}"),
            "admin@example.com",
            &Scopes::of(&others),
        )
        .await
        .unwrap();
        let only = heimdall_domain::access::accounts::create_api_key(
            &app.core,
            &format!("only {scope}"),
            "admin@example.com",
            &Scopes::of(&[scope]),
        )
        .await
        .unwrap();
        for (method, pattern, needed) in ROUTE_SCOPES.iter().filter(|r| r.2 == scope) {
            let res = request(&app, method, pattern, without.key.expose_secret())
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 403, "{method} {pattern} without {needed}");
            let body: serde_json::Value = res.json().await.unwrap();
            assert_eq!(body["error"]["code"], "missing_scope", "{method} {pattern}");
            assert_eq!(
                body["error"]["scope"],
                needed.as_str(),
                "{method} {pattern}"
            );
            // With the scope the route answers (whatever it answers, it is
            // not a refusal of the key).
            let res = request(&app, method, pattern, only.key.expose_secret())
                .send()
                .await
                .unwrap();
            assert!(
                !matches!(res.status().as_u16(), 401 | 403),
                "{method} {pattern} with {needed}: {}",
                res.status()
            );
        }
    }
    app.shutdown().await;
}

#[tokio::test]
async fn the_bootstrap_key_may_send_and_remind_and_nothing_else_by_default() {
    let app = TestApp::spawn(&[("HEIMDALL_API_KEY_SCOPES", "send,reminders")]).await;
    let key = support::API_KEY;
    for (method, pattern, needed) in ROUTE_SCOPES {
        let res = request(&app, method, pattern, key).send().await.unwrap();
        let allowed = matches!(needed, Scope::Send | Scope::Reminders);
        if allowed {
            assert_ne!(res.status(), 403, "{method} {pattern}");
        } else {
            assert_eq!(res.status(), 403, "{method} {pattern}");
        }
    }
    // In particular it cannot record consents or lift anything.
    let res = request(&app, "POST", "/api/v1/contacts/{id}/consents", key)
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["scope"], "consents:write");
    app.shutdown().await;
}

#[tokio::test]
async fn every_api_route_has_a_scope_and_a_route_without_one_is_refused() {
    // The table covers what the router serves: every /api path a test of
    // the routes would reach is in it (a route missing from the table is
    // refused to every key, so forgetting one fails closed).
    let app = TestApp::spawn(&[]).await;
    let all = heimdall_domain::access::accounts::create_api_key(
        &app.core,
        "everything",
        "admin@example.com",
        &Scopes::all(),
    )
    .await
    .unwrap();
    for (method, pattern, _) in ROUTE_SCOPES {
        let res = request(&app, method, pattern, all.key.expose_secret())
            .send()
            .await
            .unwrap();
        assert!(
            !matches!(res.status().as_u16(), 401 | 403 | 405),
            "{method} {pattern}: {}",
            res.status()
        );
    }
    // A wrong key is 401 before anything else.
    let res = request(&app, "POST", "/api/v1/contacts", "not-a-key")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    app.shutdown().await;
}

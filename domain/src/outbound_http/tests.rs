//! The outbound HTTP policy against addresses of every kind, with servers
//! the tests start on loopback only.

use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

// -- is_public_ip -------------------------------------------------------

#[test]
fn public_and_non_public_addresses() {
    let cases: &[(&str, bool)] = &[
        // IPv4 public
        ("8.8.8.8", true),
        ("1.1.1.1", true),
        ("93.184.216.34", true),
        ("100.63.255.255", true),
        ("100.128.0.0", true),
        ("172.15.255.255", true),
        ("172.32.0.0", true),
        ("192.0.1.1", true),
        ("192.169.0.1", true),
        ("198.17.255.255", true),
        ("198.20.0.0", true),
        ("223.255.255.255", true),
        // IPv4 non-public
        ("0.0.0.0", false),
        ("0.1.2.3", false),
        ("10.0.0.1", false),
        ("10.255.255.255", false),
        ("100.64.0.1", false),
        ("100.127.255.255", false),
        ("127.0.0.1", false),
        ("127.255.255.254", false),
        ("169.254.169.254", false),
        ("172.16.0.1", false),
        ("172.31.255.255", false),
        ("192.0.0.1", false),
        ("192.0.0.9", false),
        ("192.0.2.1", false),
        ("192.88.99.1", false),
        ("192.168.1.1", false),
        ("198.18.0.1", false),
        ("198.19.255.255", false),
        ("198.51.100.7", false),
        ("203.0.113.9", false),
        ("224.0.0.1", false),
        ("239.255.255.250", false),
        ("240.0.0.1", false),
        ("255.255.255.255", false),
        // IPv6 public
        ("2606:4700:4700::1111", true),
        ("2001:4860:4860::8888", true),
        ("2a00:1450:4001:80b::200e", true),
        ("2001:db9::1", true),
        ("2001:1::1", true),
        // IPv6 non-public
        ("::", false),
        ("::1", false),
        ("fe80::1", false),
        ("febf::1", false),
        ("fec0::1", false),
        ("fc00::1", false),
        ("fd12:3456::1", false),
        ("ff02::1", false),
        ("ff0e::1", false),
        ("2001:db8::1", false),
        ("2001::1", false),
        ("2001:0:4136:e378:8000:63bf:3fff:fdd2", false),
        ("2001:2::1", false),
        ("2001:10::1", false),
        ("2001:20::1", false),
        ("3fff::1", false),
        ("100::1", false),
        ("64:ff9b:1::1", false),
        ("5f00::1", false),
        ("4000::1", false),
        // IPv4 inside IPv6: judged by the IPv4 address
        ("::ffff:127.0.0.1", false),
        ("::ffff:169.254.169.254", false),
        ("::ffff:10.0.0.1", false),
        ("::ffff:8.8.8.8", true),
        ("::127.0.0.1", false),
        ("::10.1.2.3", false),
        ("::8.8.8.8", true),
        ("64:ff9b::7f00:1", false),
        ("64:ff9b::169.254.169.254", false),
        ("64:ff9b::8.8.8.8", true),
        ("2002:7f00:1::1", false),
        ("2002:a9fe:a9fe::1", false),
        ("2002:c0a8:101::", false),
        ("2002:808:808::1", true),
    ];
    for (text, want) in cases {
        let ip: IpAddr = text.parse().unwrap();
        assert_eq!(is_public_ip(ip), *want, "is_public_ip({text})");
    }
}

// -- UrlPolicy ----------------------------------------------------------

#[test]
fn policy_parses_hosts_ips_and_ports() {
    let p = UrlPolicy::parse(
        " Hooks.Internal.Example , 10.0.0.5, 127.0.0.1:8080, fd00::1, [fd00::2]:9000, svc.local.:81,,",
    )
    .unwrap();
    assert_eq!(
        p.allow_hosts,
        vec![
            HostRule {
                host: RuleHost::Name("hooks.internal.example".into()),
                port: None
            },
            HostRule {
                host: RuleHost::Ip("10.0.0.5".parse().unwrap()),
                port: None
            },
            HostRule {
                host: RuleHost::Ip("127.0.0.1".parse().unwrap()),
                port: Some(8080)
            },
            HostRule {
                host: RuleHost::Ip("fd00::1".parse().unwrap()),
                port: None
            },
            HostRule {
                host: RuleHost::Ip("fd00::2".parse().unwrap()),
                port: Some(9000)
            },
            HostRule {
                host: RuleHost::Name("svc.local".into()),
                port: Some(81)
            },
        ]
    );
    assert!(UrlPolicy::parse("").unwrap().is_empty());
    assert!(UrlPolicy::parse(" , ").unwrap().is_empty());
}

#[test]
fn policy_errors_name_the_entry() {
    for bad in [
        "http://hooks.example",
        "hooks.example/path",
        "*.example.com",
        "user@host",
        "host:0",
        "host:70000",
        "host:http",
        ":8080",
        "fd00::1:8080:",
        "[fd00::1",
        "[nonsense]:80",
        "[fd00::1]8080",
        "a..b",
    ] {
        let err = UrlPolicy::parse(&format!("ok.example, {bad}")).unwrap_err();
        assert!(err.contains(&format!("'{bad}'")), "{bad}: {err}");
    }
}

// -- check_url ----------------------------------------------------------

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[test]
fn check_url_cases() {
    let empty = UrlPolicy::default();
    let p = UrlPolicy::parse("hooks.internal.example, 10.0.0.5, 127.0.0.1:8080, svc.internal:8443")
        .unwrap();
    let ok = |pol: &UrlPolicy, s: &str| check_url(pol, &url(s));
    let non_public = |s: &str| UrlRefused::NonPublicAddress {
        addr: s.parse().unwrap(),
    };

    assert_eq!(ok(&empty, "https://example.com/vars?x=1"), Ok(()));
    assert_eq!(ok(&empty, "http://8.8.8.8:8080/"), Ok(()));
    assert_eq!(ok(&empty, "http://[2606:4700:4700::1111]/"), Ok(()));
    // Names are not resolved here.
    assert_eq!(ok(&empty, "http://localhost/"), Ok(()));

    assert_eq!(
        ok(&empty, "http://127.0.0.1:8080/"),
        Err(non_public("127.0.0.1"))
    );
    assert_eq!(
        ok(&empty, "http://169.254.169.254/latest/meta-data/"),
        Err(non_public("169.254.169.254"))
    );
    assert_eq!(
        ok(&empty, "http://2130706433/"),
        Err(non_public("127.0.0.1"))
    );
    assert_eq!(ok(&empty, "http://0x7f.1/"), Err(non_public("127.0.0.1")));
    assert_eq!(ok(&empty, "http://0/"), Err(non_public("0.0.0.0")));
    assert_eq!(ok(&empty, "http://[::1]/"), Err(non_public("::1")));
    assert_eq!(ok(&empty, "http://[::]/"), Err(non_public("::")));
    assert_eq!(
        ok(&empty, "http://[::ffff:127.0.0.1]:8080/"),
        Err(non_public("::ffff:127.0.0.1"))
    );
    assert_eq!(ok(&empty, "http://[fe80::1]/"), Err(non_public("fe80::1")));
    assert_eq!(ok(&empty, "http://10.0.0.5/"), Err(non_public("10.0.0.5")));

    // Allowlisted literals, with and without a port restriction.
    assert_eq!(ok(&p, "http://10.0.0.5/"), Ok(()));
    assert_eq!(ok(&p, "https://10.0.0.5:9999/"), Ok(()));
    assert_eq!(ok(&p, "http://127.0.0.1:8080/x"), Ok(()));
    assert_eq!(
        ok(&p, "http://127.0.0.1:8081/"),
        Err(non_public("127.0.0.1"))
    );
    assert_eq!(ok(&p, "http://127.0.0.1/"), Err(non_public("127.0.0.1")));
    // Only the exact literal: the IPv4-mapped form is not allowlisted.
    assert_eq!(
        ok(&p, "http://[::ffff:127.0.0.1]:8080/"),
        Err(non_public("::ffff:127.0.0.1"))
    );
    // Allowlisted names.
    assert_eq!(ok(&p, "https://HOOKS.internal.example./x"), Ok(()));
    assert_eq!(ok(&p, "https://svc.internal:8443/"), Ok(()));
    assert_eq!(
        ok(&p, "https://svc.internal/"),
        Err(UrlRefused::PortNotAllowed {
            host: "svc.internal".into(),
            port: 443
        })
    );

    // Scheme, userinfo, host.
    for (s, want) in [
        (
            "file:///etc/passwd",
            UrlRefused::Scheme {
                scheme: "file".into(),
            },
        ),
        (
            "ftp://example.com/x",
            UrlRefused::Scheme {
                scheme: "ftp".into(),
            },
        ),
        (
            "gopher://example.com/",
            UrlRefused::Scheme {
                scheme: "gopher".into(),
            },
        ),
        (
            "data:text/plain,hi",
            UrlRefused::Scheme {
                scheme: "data".into(),
            },
        ),
        ("http://user:pass@example.com/", UrlRefused::Userinfo),
        ("http://user@example.com/", UrlRefused::Userinfo),
        ("http://:pass@example.com/", UrlRefused::Userinfo),
        ("https://u:p@hooks.internal.example/", UrlRefused::Userinfo),
    ] {
        assert_eq!(ok(&p, s), Err(want), "{s}");
    }
    // Messages are short and name what is wrong.
    assert_eq!(
        non_public("127.0.0.1").to_string(),
        "the address 127.0.0.1 is not a public address"
    );
}

// -- resolver -------------------------------------------------------------

#[test]
fn filter_keeps_public_addresses_only() {
    let addrs: Vec<SocketAddr> = ["10.0.0.1:0", "8.8.8.8:0", "[::1]:0", "[2606:4700::1]:0"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    let empty = UrlPolicy::default();
    let kept = filter_resolved(&empty, "mixed.example", addrs.clone()).unwrap();
    assert_eq!(kept, vec![addrs[1], addrs[3]]);

    let private = vec![addrs[0], addrs[2]];
    assert_eq!(
        filter_resolved(&empty, "Internal.Example.", private.clone()),
        Err(UrlRefused::NonPublicHost {
            host: "internal.example".into()
        })
    );
    // An allowlisted name keeps everything (port restrictions are
    // check_url's business).
    let p = UrlPolicy::parse("internal.example:8080").unwrap();
    assert_eq!(
        filter_resolved(&p, "internal.example.", private.clone()),
        Ok(private.clone())
    );
    // An IP entry does not allow names that resolve to it.
    let p = UrlPolicy::parse("10.0.0.1").unwrap();
    assert!(filter_resolved(&p, "internal.example", private).is_err());
}

#[tokio::test]
async fn resolver_refuses_localhost_unless_allowlisted() {
    let r = PublicOnlyResolver::new(Arc::new(UrlPolicy::default()));
    let err = match r.resolve("localhost".parse().unwrap()).await {
        Ok(_) => panic!("localhost resolved with the empty policy"),
        Err(e) => e,
    };
    assert_eq!(
        err.downcast_ref::<UrlRefused>(),
        Some(&UrlRefused::NonPublicHost {
            host: "localhost".into()
        })
    );
    assert_eq!(
        err.to_string(),
        "the host localhost resolves only to non-public addresses"
    );

    let r = PublicOnlyResolver::new(Arc::new(UrlPolicy::parse("LOCALHOST").unwrap()));
    let addrs: Vec<SocketAddr> = match r.resolve("localhost".parse().unwrap()).await {
        Ok(a) => a.collect(),
        Err(e) => panic!("allowlisted localhost refused: {e}"),
    };
    assert!(!addrs.is_empty());
    assert!(addrs.iter().all(|a| a.ip().is_loopback()), "{addrs:?}");
}

// -- against local servers ------------------------------------------------

/// A one-response-per-connection HTTP/1.1 server on `bind` (loopback
/// only). Counts accepted connections.
struct TestServer {
    addr: SocketAddr,
    accepts: Arc<AtomicUsize>,
}

impl TestServer {
    fn port(&self) -> u16 {
        self.addr.port()
    }
    fn accepts(&self) -> usize {
        self.accepts.load(Ordering::SeqCst)
    }
}

async fn serve_on(listener: TcpListener, response: Vec<u8>) -> TestServer {
    let addr = listener.local_addr().unwrap();
    assert!(addr.ip().is_loopback());
    let accepts = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&accepts);
    let response = Arc::new(response);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            let response = Arc::clone(&response);
            tokio::spawn(async move {
                read_request_head(&mut sock).await;
                let _ = sock.write_all(&response).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    TestServer { addr, accepts }
}

async fn serve(response: Vec<u8>) -> TestServer {
    serve_on(TcpListener::bind("127.0.0.1:0").await.unwrap(), response).await
}

async fn read_request_head(sock: &mut tokio::net::TcpStream) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") && buf.len() < 64 * 1024 {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn response(status: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn json_response(body: &str) -> Vec<u8> {
    response("200 OK", "Content-Type: application/json\r\n", body)
}

fn redirect_to(location: &str) -> Vec<u8> {
    response("302 Found", &format!("Location: {location}\r\n"), "")
}

fn setup(allow: &str) -> (reqwest::Client, Arc<UrlPolicy>) {
    let policy = Arc::new(UrlPolicy::parse(allow).unwrap());
    let c = client(Arc::clone(&policy), Duration::from_secs(5), 3);
    (c, policy)
}

/// Let any connection that was (wrongly) made reach `accept`.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test]
async fn loopback_literal_refused_unless_allowlisted() {
    let server = serve(json_response(r#"{"name":"Ada"}"#)).await;
    let target = url(&format!("http://127.0.0.1:{}/", server.port()));

    let (c, p) = setup("");
    let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Refused(UrlRefused::NonPublicAddress { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "refused: the address 127.0.0.1 is not a public address"
    );
    settle().await;
    assert_eq!(server.accepts(), 0);

    let (c, p) = setup(&format!("127.0.0.1:{}", server.port()));
    let value = fetch_json(&c, &p, &target, 1024).await.unwrap();
    assert_eq!(value, serde_json::json!({"name": "Ada"}));
    assert_eq!(server.accepts(), 1);
}

#[tokio::test]
async fn name_resolving_to_loopback_refused_by_resolver() {
    let server = serve(json_response(r#"{"a":1}"#)).await;
    let target = url(&format!("http://localhost:{}/", server.port()));

    let (c, p) = setup("");
    // check_url lets the name through; the resolver refuses it.
    assert_eq!(check_url(&p, &target), Ok(()));
    let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
    match &err {
        FetchError::Refused(UrlRefused::NonPublicHost { host }) => {
            assert_eq!(host, "localhost")
        }
        other => panic!("expected a resolver refusal, got {other:?} ({other})"),
    }
    assert_eq!(
        err.to_string(),
        "refused: the host localhost resolves only to non-public addresses"
    );
    settle().await;
    assert_eq!(server.accepts(), 0);

    // Allowlisted on another port: refused by check_url.
    let (c, p) = setup(&format!(
        "localhost:{}",
        server.port().wrapping_add(1).max(1)
    ));
    let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Refused(UrlRefused::PortNotAllowed { .. })),
        "{err:?}"
    );
    settle().await;
    assert_eq!(server.accepts(), 0);

    // Allowlisted name and port: fetched.
    let (c, p) = setup(&format!("localhost:{}", server.port()));
    let value = fetch_json(&c, &p, &target, 1024).await.unwrap();
    assert_eq!(value, serde_json::json!({"a": 1}));
    assert_eq!(server.accepts(), 1);
}

#[tokio::test]
async fn ipv6_loopback_and_mapped_refused() {
    let (c, p) = setup("");
    match TcpListener::bind("[::1]:0").await {
        Ok(listener) => {
            let server = serve_on(listener, json_response("{}")).await;
            let target = url(&format!("http://[::1]:{}/", server.port()));
            let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
            assert!(
                matches!(
                    err,
                    FetchError::Refused(UrlRefused::NonPublicAddress { .. })
                ),
                "{err:?}"
            );
            settle().await;
            assert_eq!(server.accepts(), 0);
        }
        Err(_) => {
            // No IPv6 loopback here; the check alone must refuse it.
            assert!(check_url(&p, &url("http://[::1]:8080/")).is_err());
        }
    }

    let server = serve(json_response("{}")).await;
    let mapped = url(&format!("http://[::ffff:127.0.0.1]:{}/", server.port()));
    assert_eq!(
        check_url(&p, &mapped),
        Err(UrlRefused::NonPublicAddress {
            addr: "::ffff:127.0.0.1".parse().unwrap()
        })
    );
    let err = fetch_json(&c, &p, &mapped, 1024).await.unwrap_err();
    assert!(matches!(err, FetchError::Refused(_)), "{err:?}");
    settle().await;
    assert_eq!(server.accepts(), 0);
}

#[tokio::test]
async fn redirect_to_non_allowlisted_address_refused() {
    let b = serve(json_response(r#"{"secret":true}"#)).await;
    let a = serve(redirect_to(&format!("http://127.0.0.1:{}/", b.port()))).await;

    let (c, p) = setup(&format!("127.0.0.1:{}", a.port()));
    let target = url(&format!("http://127.0.0.1:{}/", a.port()));
    let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
    assert!(
        matches!(
            err,
            FetchError::Refused(UrlRefused::NonPublicAddress { .. })
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "refused: the address 127.0.0.1 is not a public address"
    );
    settle().await;
    assert_eq!(a.accepts(), 1);
    assert_eq!(b.accepts(), 0);

    // A redirect to a name that resolves to loopback: the resolver.
    let a2 = serve(redirect_to(&format!("http://localhost:{}/", b.port()))).await;
    let (c, p) = setup(&format!("127.0.0.1:{}", a2.port()));
    let target = url(&format!("http://127.0.0.1:{}/", a2.port()));
    let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
    assert!(
        matches!(err, FetchError::Refused(UrlRefused::NonPublicHost { .. })),
        "{err:?}"
    );
    settle().await;
    assert_eq!(b.accepts(), 0);

    // A redirect to a file: URL is not followed at all (reqwest hands
    // back the 3xx answer without asking the redirect policy).
    let a3 = serve(redirect_to("file:///etc/passwd")).await;
    let (c, p) = setup(&format!("127.0.0.1:{}", a3.port()));
    let target = url(&format!("http://127.0.0.1:{}/", a3.port()));
    let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
    assert!(matches!(err, FetchError::Status(302)), "{err:?}");
}

#[tokio::test]
async fn allowed_redirect_followed_and_redirects_limited() {
    let b = serve(json_response(r#"{"ok":true}"#)).await;
    let a = serve(redirect_to(&format!("http://127.0.0.1:{}/", b.port()))).await;
    let (c, p) = setup(&format!("127.0.0.1:{}, 127.0.0.1:{}", a.port(), b.port()));
    let target = url(&format!("http://127.0.0.1:{}/", a.port()));
    let value = fetch_json(&c, &p, &target, 1024).await.unwrap();
    assert_eq!(value, serde_json::json!({"ok": true}));
    assert_eq!((a.accepts(), b.accepts()), (1, 1));

    // A server redirecting to itself: max_redirects (3) hops, then stop.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let lp = serve_on(
        listener,
        redirect_to(&format!("http://127.0.0.1:{port}/again")),
    )
    .await;
    let (c, p) = setup(&format!("127.0.0.1:{port}"));
    let err = fetch_json(&c, &p, &url(&format!("http://127.0.0.1:{port}/")), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::TooManyRedirects(3)), "{err:?}");
    assert_eq!(err.to_string(), "more than 3 redirects");
    assert_eq!(lp.accepts(), 4);
}

#[tokio::test]
async fn declared_oversized_body_refused() {
    let big = "x".repeat(10_000);
    let server = serve(json_response(&format!("\"{big}\""))).await;
    let (c, p) = setup(&format!("127.0.0.1:{}", server.port()));
    let target = url(&format!("http://127.0.0.1:{}/", server.port()));
    let err = fetch_json(&c, &p, &target, 1024).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { max: 1024 }), "{err:?}");
    assert_eq!(err.to_string(), "response larger than 1024 bytes");
}

#[tokio::test]
async fn streamed_oversized_body_not_read_to_the_end() {
    // No Content-Length: the body runs until the server closes, and the
    // server would send 64 MiB. Count what it manages to write.
    const TOTAL: usize = 64 * 1024 * 1024;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<usize>();
    tokio::spawn(async move {
        let (mut sock, _) = listener.accept().await.unwrap();
        read_request_head(&mut sock).await;
        let head =
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n";
        sock.write_all(head).await.unwrap();
        let chunk = vec![b' '; 64 * 1024];
        let mut written = 0;
        while written < TOTAL {
            match sock.write_all(&chunk).await {
                Ok(()) => written += chunk.len(),
                Err(_) => break,
            }
        }
        let _ = done_tx.send(written);
    });

    let (c, p) = setup(&format!("127.0.0.1:{port}"));
    let target = url(&format!("http://127.0.0.1:{port}/"));
    let err = fetch_json(&c, &p, &target, 4096).await.unwrap_err();
    assert!(matches!(err, FetchError::TooLarge { max: 4096 }), "{err:?}");
    let written = tokio::time::timeout(Duration::from_secs(20), done_rx)
        .await
        .expect("server still writing: the client kept reading")
        .unwrap();
    assert!(written < TOTAL, "the whole body was read ({written} bytes)");
}

#[tokio::test]
async fn error_messages_never_contain_the_body() {
    let secret = "TOP-SECRET-aws-key-AKIA1234";
    let not_json = serve(response(
        "200 OK",
        "Content-Type: text/html\r\n",
        &format!("<html>{secret}</html>"),
    ))
    .await;
    let failing = serve(response("500 Internal Server Error", "", secret)).await;
    let (c, p) = setup(&format!(
        "127.0.0.1:{}, 127.0.0.1:{}",
        not_json.port(),
        failing.port()
    ));

    let err = fetch_json(
        &c,
        &p,
        &url(&format!("http://127.0.0.1:{}/", not_json.port())),
        1024,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::NotJson { .. }), "{err:?}");
    assert!(!err.to_string().contains("SECRET"), "{err}");
    assert!(!format!("{err:?}").contains("SECRET"), "{err:?}");
    assert!(!err.to_string().contains("html"), "{err}");

    let err = fetch_json(
        &c,
        &p,
        &url(&format!("http://127.0.0.1:{}/", failing.port())),
        1024,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Status(500)), "{err:?}");
    assert_eq!(err.to_string(), "HTTP status 500");
}

#[tokio::test]
async fn timeouts_and_closed_ports_are_reported_plainly() {
    // Accepts, never answers.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    let policy = Arc::new(UrlPolicy::parse(&format!("127.0.0.1:{port}")).unwrap());
    let c = client(Arc::clone(&policy), Duration::from_millis(300), 3);
    let err = fetch_json(
        &c,
        &policy,
        &url(&format!("http://127.0.0.1:{port}/")),
        1024,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, FetchError::Timeout), "{err:?}");
    assert_eq!(err.to_string(), "timed out");

    // A loopback port nobody listens on (allowlisted).
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        l.local_addr().unwrap().port()
    };
    let (c, p) = setup(&format!("127.0.0.1:{closed}"));
    let err = fetch_json(&c, &p, &url(&format!("http://127.0.0.1:{closed}/")), 1024)
        .await
        .unwrap_err();
    assert!(matches!(err, FetchError::Connect), "{err:?}");
    assert_eq!(err.to_string(), "could not connect");
}

#[tokio::test]
async fn userinfo_and_other_schemes_refused_before_any_request() {
    let server = serve(json_response("{}")).await;
    let (c, p) = setup(&format!("127.0.0.1:{}", server.port()));
    for s in [
        format!("http://user:pass@127.0.0.1:{}/", server.port()),
        format!("http://user@127.0.0.1:{}/", server.port()),
        "file:///etc/passwd".to_string(),
        format!("ftp://127.0.0.1:{}/", server.port()),
    ] {
        let err = fetch_json(&c, &p, &url(&s), 1024).await.unwrap_err();
        assert!(matches!(err, FetchError::Refused(_)), "{s}: {err:?}");
    }
    settle().await;
    assert_eq!(server.accepts(), 0);
}

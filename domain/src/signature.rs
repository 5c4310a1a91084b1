//! Webhook signature checks for the two providers that call us: Twilio
//! (`X-Twilio-Signature`, HMAC-SHA1 over the URL and the form parameters, or
//! over the URL alone plus a `bodySHA256` for JSON bodies) and Meta's WhatsApp
//! Cloud API (`X-Hub-Signature-256`, HMAC-SHA256 over the raw body).
//!
//! These functions are pure: they never log, store or echo a secret, never
//! panic on hostile input, and never compare a secret-derived value with
//! anything but a constant-time comparison. They must never accept a request
//! when the secret is empty (a blank configuration would let anyone sign) or
//! when the signature is missing.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

type HmacSha1 = Hmac<Sha1>;
type HmacSha256 = Hmac<Sha256>;

/// Twilio's X-Twilio-Signature: base64(HMAC-SHA1(auth_token, url + concat of sorted (key+value))).
///
/// Parameters are sorted by key and, within a repeated key, by value (byte
/// order, which for UTF-8 is code-point order). Duplicate pairs are kept.
pub fn twilio_signature(auth_token: &str, url: &str, params: &[(String, String)]) -> String {
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    sign_twilio_sorted(auth_token, url, &sorted)
}

/// Validate a form-encoded Twilio request. Accepts the URL as given, and also the URL with the default
/// port added (":443" for https, ":80" for http) and with an explicit default port removed, as the official
/// validators do. Params are sorted by key; values of a repeated key sorted too (Twilio's rule).
/// Constant-time comparison (subtle). Empty/missing signature -> false.
///
/// The URL must be the public URL Twilio called (scheme, host, path and query
/// exactly as configured in Twilio), not the one a proxy forwarded to us.
pub fn verify_twilio_signature(
    auth_token: &str,
    url: &str,
    params: &[(String, String)],
    signature: &str,
) -> bool {
    let signature = signature.trim();
    if auth_token.is_empty() || signature.is_empty() {
        return false;
    }
    let mut sorted: Vec<(&str, &str)> = params
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    sorted.sort_unstable();
    // twilio-python drops duplicate (key, value) pairs before signing while
    // the other SDKs keep them; we cannot know which rule produced the header,
    // so accept either. Both still need the auth token to forge.
    let mut deduped = sorted.clone();
    deduped.dedup();
    let mut param_sets = vec![sorted];
    if deduped.len() != param_sets[0].len() {
        param_sets.push(deduped);
    }

    let mut ok = Choice::from(0u8);
    for candidate in url_variants(url) {
        for set in &param_sets {
            let expected = sign_twilio_sorted(auth_token, &candidate, set);
            ok |= expected.as_bytes().ct_eq(signature.as_bytes());
        }
    }
    ok.into()
}

/// Validate a Twilio request with a JSON (non-form) body: the URL carries `bodySHA256=<hex sha256 of body>`;
/// check the hash matches the body (constant time) and the signature over the URL with no params.
///
/// A URL without `bodySHA256`, or with a value that is not 64 hex digits, is rejected.
pub fn verify_twilio_json(auth_token: &str, url: &str, body: &[u8], signature: &str) -> bool {
    let Some(claimed_hex) = query_value(url, "bodySHA256") else {
        return false;
    };
    let Ok(claimed) = hex::decode(claimed_hex.trim()) else {
        return false;
    };
    let actual = Sha256::digest(body);
    // ct_eq on slices of different lengths is simply false, without a panic.
    let body_ok: bool = actual.as_slice().ct_eq(&claimed).into();
    let signature_ok = verify_twilio_signature(auth_token, url, &[], signature);
    body_ok & signature_ok
}

/// Meta's X-Hub-Signature-256 header value: "sha256=" + lowercase hex HMAC-SHA256(app_secret, raw body).
pub fn meta_signature(app_secret: &str, body: &[u8]) -> String {
    format!("sha256={}", hex::encode(hmac_sha256(app_secret, body)))
}

/// Constant-time check of that header (accept upper or lower case hex; reject missing "sha256=" prefix).
///
/// The body must be the raw bytes as received: re-serialised JSON will not match.
pub fn verify_meta_signature(app_secret: &str, body: &[u8], header: &str) -> bool {
    if app_secret.is_empty() {
        return false;
    }
    let Some(hex_part) = header.trim().strip_prefix("sha256=") else {
        return false;
    };
    // hex::decode accepts both cases, so "upper or lower" needs no folding.
    let Ok(claimed) = hex::decode(hex_part) else {
        return false;
    };
    let expected = hmac_sha256(app_secret, body);
    expected.as_slice().ct_eq(&claimed).into()
}

fn sign_twilio_sorted(auth_token: &str, url: &str, sorted: &[(&str, &str)]) -> String {
    // HMAC takes keys of any length, so new_from_slice cannot fail here; the
    // fallback keeps this function panic-free regardless.
    let Ok(mut mac) = HmacSha1::new_from_slice(auth_token.as_bytes()) else {
        return String::new();
    };
    mac.update(url.as_bytes());
    for (key, value) in sorted {
        mac.update(key.as_bytes());
        mac.update(value.as_bytes());
    }
    BASE64.encode(mac.finalize().into_bytes())
}

fn hmac_sha256(secret: &str, body: &[u8]) -> Vec<u8> {
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return Vec::new();
    };
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// The URL as given, plus the variant with the scheme's default port added
/// or removed. Done on the raw string: a URL parser would normalise
/// (percent-encoding, case, trailing slash) and break the byte-exact HMAC.
fn url_variants(url: &str) -> Vec<String> {
    let mut out = vec![url.to_owned()];
    let Some(scheme_end) = url.find("://") else {
        return out;
    };
    let default_port = match url[..scheme_end].to_ascii_lowercase().as_str() {
        "https" => "443",
        "http" => "80",
        _ => return out,
    };
    let authority_start = scheme_end + 3;
    let authority_len = url[authority_start..]
        .find(['/', '?', '#'])
        .unwrap_or(url.len() - authority_start);
    let authority_end = authority_start + authority_len;
    let authority = &url[authority_start..authority_end];
    // Userinfo may contain ':' too; the port only follows the host part.
    let host_start = authority.rfind('@').map_or(0, |i| i + 1);
    let host_port = &authority[host_start..];
    // An IPv6 literal is bracketed; only a ':' after the ']' starts a port.
    let search_from = host_port.rfind(']').map_or(0, |i| i + 1);
    let port_colon = host_port[search_from..].rfind(':').map(|i| search_from + i);

    let head = &url[..authority_start + host_start];
    let tail = &url[authority_end..];
    match port_colon {
        None => {
            out.push(format!("{head}{host_port}:{default_port}{tail}"));
        }
        Some(colon) if &host_port[colon + 1..] == default_port => {
            out.push(format!("{head}{}{tail}", &host_port[..colon]));
        }
        // A non-default port is part of the address Twilio called: keep it.
        Some(_) => {}
    }
    out
}

/// The first value of `name` in the URL's query string, percent-decoded.
fn query_value(url: &str, name: &str) -> Option<String> {
    let without_fragment = url.split('#').next().unwrap_or(url);
    let (_, query) = without_fragment.split_once('?')?;
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::Value;

    const VECTORS: &str = include_str!("../../tests/vectors/twilio_signature.json");

    struct Case {
        url: String,
        params: Vec<(String, String)>,
        body: Option<String>,
        signature: String,
    }

    fn load() -> (String, Vec<Case>) {
        let v: Value = serde_json::from_str(VECTORS).expect("vector file is JSON");
        let token = v["auth_token"].as_str().expect("auth_token").to_owned();
        let cases = v["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| {
                let mut params = Vec::new();
                if let Some(map) = c["params"].as_object() {
                    for (k, val) in map {
                        params.push((k.clone(), val.as_str().expect("str").to_owned()));
                    }
                }
                if let Some(list) = c["params_list"].as_array() {
                    for pair in list {
                        params.push((
                            pair[0].as_str().expect("key").to_owned(),
                            pair[1].as_str().expect("value").to_owned(),
                        ));
                    }
                }
                Case {
                    url: c["url"].as_str().expect("url").to_owned(),
                    params,
                    body: c["body"].as_str().map(str::to_owned),
                    signature: c["signature"].as_str().expect("signature").to_owned(),
                }
            })
            .collect();
        (token, cases)
    }

    fn case(note_fragment: &str) -> (String, Case) {
        let v: Value = serde_json::from_str(VECTORS).expect("vector file is JSON");
        let idx = v["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .position(|c| {
                c["note"]
                    .as_str()
                    .is_some_and(|n| n.contains(note_fragment))
            })
            .expect("case present");
        let (token, mut cases) = load();
        (token, cases.swap_remove(idx))
    }

    #[test]
    fn every_published_vector_validates() {
        let (token, cases) = load();
        assert_eq!(cases.len(), 5);
        for c in &cases {
            let ok = match &c.body {
                Some(body) => verify_twilio_json(&token, &c.url, body.as_bytes(), &c.signature),
                None => verify_twilio_signature(&token, &c.url, &c.params, &c.signature),
            };
            assert!(ok, "vector failed: {}", c.url);
        }
    }

    #[test]
    fn plain_url_signature_matches_exactly() {
        let (token, c) = case("plain URL");
        assert_eq!(twilio_signature(&token, &c.url, &c.params), c.signature);
    }

    #[test]
    fn port_443_signature_validates_with_and_without_port() {
        let (token, c) = case(":443");
        assert_eq!(twilio_signature(&token, &c.url, &c.params), c.signature);
        let without = c.url.replace(":443", "");
        assert!(verify_twilio_signature(
            &token,
            &c.url,
            &c.params,
            &c.signature
        ));
        assert!(verify_twilio_signature(
            &token,
            &without,
            &c.params,
            &c.signature
        ));
        // And the other way round: the portless signature validates on the URL with :443.
        let (_, plain) = case("plain URL");
        assert!(verify_twilio_signature(
            &token,
            &c.url,
            &plain.params,
            &plain.signature
        ));
    }

    #[test]
    fn port_80_signature_validates_with_and_without_port() {
        let (token, c) = case(":80");
        assert_eq!(twilio_signature(&token, &c.url, &c.params), c.signature);
        let without = c.url.replace(":80", "");
        assert!(verify_twilio_signature(
            &token,
            &without,
            &c.params,
            &c.signature
        ));
    }

    #[test]
    fn non_default_port_is_not_stripped() {
        let (token, c) = case("plain URL");
        let odd = c.url.replace("mycompany.com", "mycompany.com:8443");
        assert!(!verify_twilio_signature(
            &token,
            &odd,
            &c.params,
            &c.signature
        ));
        assert_eq!(url_variants(&odd), vec![odd.clone()]);
    }

    #[test]
    fn url_variants_handle_userinfo_ipv6_and_bare_hosts() {
        assert_eq!(
            url_variants("https://u:p@h.com/x"),
            vec!["https://u:p@h.com/x", "https://u:p@h.com:443/x"]
        );
        assert_eq!(
            url_variants("http://[::1]:80?a=1"),
            vec!["http://[::1]:80?a=1", "http://[::1]?a=1"]
        );
        assert_eq!(
            url_variants("HTTPS://h.com"),
            vec!["HTTPS://h.com", "HTTPS://h.com:443"]
        );
        assert_eq!(url_variants("not a url"), vec!["not a url"]);
        assert_eq!(url_variants("ftp://h.com/"), vec!["ftp://h.com/"]);
    }

    #[test]
    fn repeated_keys_sort_values() {
        let (token, c) = case("repeated keys");
        assert_eq!(twilio_signature(&token, &c.url, &c.params), c.signature);
        let mut reversed = c.params.clone();
        reversed.reverse();
        assert!(verify_twilio_signature(
            &token,
            &c.url,
            &reversed,
            &c.signature
        ));
    }

    #[test]
    fn duplicate_pairs_accepted_under_either_sdk_rule() {
        let token = "secret";
        let url = "https://example.com/hook";
        let dup = vec![
            ("A".to_owned(), "1".to_owned()),
            ("A".to_owned(), "1".to_owned()),
        ];
        let single = vec![("A".to_owned(), "1".to_owned())];
        let kept = twilio_signature(token, url, &dup);
        let dropped = twilio_signature(token, url, &single);
        assert_ne!(kept, dropped);
        assert!(verify_twilio_signature(token, url, &dup, &kept));
        assert!(verify_twilio_signature(token, url, &dup, &dropped));
    }

    #[test]
    fn json_body_vector_and_its_failures() {
        let (token, c) = case("JSON body");
        let body = c.body.clone().expect("body");
        assert!(verify_twilio_json(
            &token,
            &c.url,
            body.as_bytes(),
            &c.signature
        ));
        // Port variant of the URL still validates.
        let with_port = c.url.replace("mycompany.com", "mycompany.com:443");
        assert!(verify_twilio_json(
            &token,
            &with_port,
            body.as_bytes(),
            &c.signature
        ));
        // A different body no longer matches the hash in the URL.
        let tampered = body.replace("value", "VALUE");
        assert!(!verify_twilio_json(
            &token,
            &c.url,
            tampered.as_bytes(),
            &c.signature
        ));
        // The URL hash changed to fit a new body breaks the signature.
        let new_hash = hex::encode(Sha256::digest(tampered.as_bytes()));
        let forged_url = c.url.replace(
            "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
            &new_hash,
        );
        assert!(!verify_twilio_json(
            &token,
            &forged_url,
            tampered.as_bytes(),
            &c.signature
        ));
        // No bodySHA256 at all, or garbage in it.
        assert!(!verify_twilio_json(
            &token,
            "https://mycompany.com/myapp.php",
            body.as_bytes(),
            &c.signature
        ));
        assert!(!verify_twilio_json(
            &token,
            "https://mycompany.com/myapp.php?bodySHA256=zz",
            body.as_bytes(),
            &c.signature
        ));
        assert!(!verify_twilio_json(&token, &c.url, body.as_bytes(), ""));
        assert!(!verify_twilio_json(
            "wrong",
            &c.url,
            body.as_bytes(),
            &c.signature
        ));
    }

    #[test]
    fn tampering_fails() {
        let (token, c) = case("plain URL");
        let mut params = c.params.clone();
        params[0].1.push('9');
        assert!(!verify_twilio_signature(
            &token,
            &c.url,
            &params,
            &c.signature
        ));

        let mut extra = c.params.clone();
        extra.push(("Injected".to_owned(), "1".to_owned()));
        assert!(!verify_twilio_signature(
            &token,
            &c.url,
            &extra,
            &c.signature
        ));

        let url = c.url.replace("foo=1", "foo=2");
        assert!(!verify_twilio_signature(
            &token,
            &url,
            &c.params,
            &c.signature
        ));

        assert!(!verify_twilio_signature(
            "54321",
            &c.url,
            &c.params,
            &c.signature
        ));
        assert!(!verify_twilio_signature(&token, &c.url, &c.params, ""));
        assert!(!verify_twilio_signature(&token, &c.url, &c.params, "   "));
        assert!(!verify_twilio_signature(
            "",
            &c.url,
            &c.params,
            &c.signature
        ));
        // A truncated signature must not pass as a prefix match.
        assert!(!verify_twilio_signature(
            &token,
            &c.url,
            &c.params,
            &c.signature[..10]
        ));
    }

    #[test]
    fn twilio_round_trip_and_whitespace_tolerance() {
        let params = vec![
            ("Body".to_owned(), "héllo wörld".to_owned()),
            ("From".to_owned(), "whatsapp:+15551234567".to_owned()),
        ];
        let url = "https://heimdall.example/webhooks/twilio?x=1";
        let sig = twilio_signature("tok", url, &params);
        assert!(verify_twilio_signature("tok", url, &params, &sig));
        assert!(verify_twilio_signature(
            "tok",
            url,
            &params,
            &format!(" {sig}\r\n")
        ));
        assert!(!verify_twilio_signature("tok2", url, &params, &sig));
    }

    #[test]
    fn meta_rfc4231_case_2() {
        let header = meta_signature("Jefe", b"what do ya want for nothing?");
        assert_eq!(
            header,
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert!(verify_meta_signature(
            "Jefe",
            b"what do ya want for nothing?",
            &header
        ));
        assert!(verify_meta_signature(
            "Jefe",
            b"what do ya want for nothing?",
            "sha256=5BDCC146BF60754E6A042426089575C75A003F089D2739839DEC58B964EC3843"
        ));
    }

    #[test]
    fn meta_failures() {
        let body = b"what do ya want for nothing?";
        let good = meta_signature("Jefe", body);
        let bare = good.trim_start_matches("sha256=");
        assert!(!verify_meta_signature("Jefe", body, bare));
        assert!(!verify_meta_signature("Jefe", body, ""));
        assert!(!verify_meta_signature("Jefe", body, "sha256="));
        assert!(!verify_meta_signature("Jefe", body, "sha1=abcdef"));
        assert!(!verify_meta_signature("Jeff", body, &good));
        assert!(!verify_meta_signature(
            "Jefe",
            b"what do ya want for nothing!",
            &good
        ));
        assert!(!verify_meta_signature("", body, &meta_signature("", body)));
        assert!(!verify_meta_signature(
            "Jefe",
            body,
            &good[..good.len() - 2]
        ));
        assert!(!verify_meta_signature("Jefe", body, "sha256=not-hex"));
    }

    proptest! {
        #[test]
        fn twilio_sign_verify_round_trip(
            token in "[ -~]{1,40}",
            path in "[a-z/]{0,20}",
            params in proptest::collection::vec(("[A-Za-z]{1,8}", "\\PC{0,12}"), 0..6),
        ) {
            let url = format!("https://h.example/{path}");
            let params: Vec<(String, String)> = params;
            let sig = twilio_signature(&token, &url, &params);
            prop_assert!(verify_twilio_signature(&token, &url, &params, &sig));
            let with_port = format!("https://h.example:443/{path}");
            prop_assert!(verify_twilio_signature(&token, &with_port, &params, &sig));
        }

        #[test]
        fn meta_sign_verify_round_trip(secret in "[ -~]{1,40}", body in proptest::collection::vec(any::<u8>(), 0..200)) {
            let header = meta_signature(&secret, &body);
            prop_assert!(verify_meta_signature(&secret, &body, &header));
            prop_assert!(verify_meta_signature(&secret, &body, &header.to_uppercase().replacen("SHA256=", "sha256=", 1)));
        }

        #[test]
        fn verifiers_never_panic(url in "\\PC{0,60}", sig in "\\PC{0,40}", body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = verify_twilio_signature("t", &url, &[], &sig);
            let _ = verify_twilio_json("t", &url, &body, &sig);
            let _ = verify_meta_signature("t", &body, &sig);
        }
    }
}

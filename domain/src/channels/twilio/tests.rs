//! The Messages form, error bodies, resource parsing, endpoints and the
//! client's guards, on hand-made values.

use super::*;
use crate::phone::PhoneNumber;

fn settings() -> TwilioSettings {
    TwilioSettings {
        account_sid: "ACtestaccount000000000000000000001".into(),
        auth_token: SecretString::from("super-secret-token".to_string()),
        whatsapp_number: None,
        sms_number: None,
        api_base: Url::parse("https://api.twilio.com").unwrap(),
        content_base: Url::parse("https://content.twilio.com").unwrap(),
    }
}

fn request(channel: Channel, content: Content) -> OutboundRequest {
    OutboundRequest {
        message_id: "msg-1".into(),
        channel,
        to: PhoneNumber::parse_e164("+14155550101").unwrap(),
        from: "+15005550006".into(),
        content,
        status_callback: Some(
            Url::parse("https://heimdall.example/webhooks/twilio/status?message_id=msg-1").unwrap(),
        ),
        reply_to: None,
    }
}

fn get<'a>(form: &'a [(&'static str, String)], key: &str) -> Vec<&'a str> {
    form.iter()
        .filter(|(k, _)| *k == key)
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn whatsapp_text_form_has_prefixes_media_and_callback() {
    let r = request(
        Channel::WhatsApp,
        Content::Text {
            body: "hi".into(),
            media_url: Some("https://x.example/a.png".into()),
        },
    );
    let form = message_form(&r, None);
    assert_eq!(get(&form, "To"), ["whatsapp:+14155550101"]);
    assert_eq!(get(&form, "From"), ["whatsapp:+15005550006"]);
    assert_eq!(get(&form, "Body"), ["hi"]);
    assert_eq!(get(&form, "MediaUrl"), ["https://x.example/a.png"]);
    assert_eq!(
        get(&form, "StatusCallback"),
        ["https://heimdall.example/webhooks/twilio/status?message_id=msg-1"]
    );
    assert!(get(&form, "ContentSid").is_empty());
}

#[test]
fn sms_form_is_plain_e164_even_when_from_has_prefix() {
    let mut r = request(
        Channel::Sms,
        Content::Text {
            body: "hi".into(),
            media_url: None,
        },
    );
    r.from = "whatsapp:+15005550006".into();
    r.status_callback = None;
    let form = message_form(&r, None);
    assert_eq!(get(&form, "To"), ["+14155550101"]);
    assert_eq!(get(&form, "From"), ["+15005550006"]);
    assert!(get(&form, "StatusCallback").is_empty());
    assert!(get(&form, "MediaUrl").is_empty());
}

#[test]
fn template_form_maps_positional_variables() {
    let r = request(
        Channel::WhatsApp,
        Content::Template {
            name: "task_reminder".into(),
            provider_id: "HX0123".into(),
            language: "en".into(),
            positional: vec!["Call Bob".into(), "17:00".into()],
        },
    );
    let form = message_form(&r, None);
    assert_eq!(get(&form, "ContentSid"), ["HX0123"]);
    assert_eq!(
        get(&form, "ContentVariables"),
        [r#"{"1":"Call Bob","2":"17:00"}"#]
    );
    assert!(get(&form, "Body").is_empty());
}

#[test]
fn messaging_service_sender_goes_as_messaging_service_sid() {
    let mut r = request(
        Channel::Sms,
        Content::Text {
            body: "x".into(),
            media_url: None,
        },
    );
    r.from = "MG0123456789abcdef0123456789abcdef".into();
    let form = message_form(&r, None);
    assert_eq!(
        get(&form, "MessagingServiceSid"),
        ["MG0123456789abcdef0123456789abcdef"]
    );
    assert!(get(&form, "From").is_empty());
}

#[test]
fn error_json_becomes_code_and_other_bodies_http() {
    let r = twilio_error(
        400,
        br#"{"code": 21211, "message": "The 'To' number is not valid", "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}"#,
    );
    assert_eq!(
        r.failure,
        ProviderFailure::Code {
            code: 21211,
            http_status: Some(400)
        }
    );
    assert_eq!(r.message, "The 'To' number is not valid");
    let r = twilio_error(502, b"<html>Bad gateway</html>");
    assert_eq!(r.failure, ProviderFailure::Http(502));
    assert!(r.message.contains("502"));
    let r = twilio_error(503, b"");
    assert_eq!(r.failure, ProviderFailure::Http(503));
}

#[test]
fn message_json_parses_with_nulls_and_numbers() {
    let m: TwilioMessage = serde_json::from_str(
        r#"{"sid":"SM1","status":"queued","price":null,"price_unit":"USD","error_code":null,
            "num_segments":"1","num_media":0,"to":"whatsapp:+1","from":"whatsapp:+2","extra":true}"#,
    )
    .unwrap();
    assert_eq!(m.sid, "SM1");
    assert_eq!(m.price, None);
    assert_eq!(m.num_media.as_deref(), Some("0"));
    let m: TwilioMessage = serde_json::from_str(
        r#"{"sid":"SM2","status":"undelivered","error_code":"63016","price":-0.005}"#,
    )
    .unwrap();
    assert_eq!(m.error_code, Some(63016));
    assert_eq!(m.price.as_deref(), Some("-0.005"));
}

#[test]
fn template_body_prefers_text_then_any_body() {
    let t =
        serde_json::json!({"twilio/quick-reply": {"body": "qr"}, "twilio/text": {"body": "text"}});
    assert_eq!(template_body(&t).as_deref(), Some("text"));
    let t = serde_json::json!({"twilio/location": {"latitude": 1}, "custom/x": {"body": "c"}});
    assert_eq!(template_body(&t).as_deref(), Some("c"));
    assert_eq!(template_body(&serde_json::json!({})), None);
}

#[test]
fn endpoint_keeps_base_path_and_encodes_segments() {
    let base = Url::parse("http://127.0.0.1:9/prefix/").unwrap();
    let u = endpoint(&base, &["v1", "Content", "HX 1/2"]).unwrap();
    assert_eq!(
        u.as_str(),
        "http://127.0.0.1:9/prefix/v1/Content/HX%201%2F2"
    );
    let base = Url::parse("https://api.twilio.com").unwrap();
    let u = endpoint(&base, &["2010-04-01", "Accounts", "AC1", "Messages.json"]).unwrap();
    assert_eq!(
        u.as_str(),
        "https://api.twilio.com/2010-04-01/Accounts/AC1/Messages.json"
    );
}

#[test]
fn debug_shows_sid_not_token() {
    let c = TwilioClient::new(&settings(), reqwest::Client::new());
    let dbg = format!("{c:?}");
    assert!(dbg.contains("ACtestaccount000000000000000000001"));
    assert!(!dbg.contains("super-secret-token"));
}

#[test]
fn foreign_next_page_is_refused() {
    let c = TwilioClient::new(&settings(), reqwest::Client::new());
    assert!(c
        .same_origin_page("https://content.twilio.com/v1/Content?Page=1")
        .is_ok());
    assert!(c.same_origin_page("/v1/Content?Page=2").is_ok());
    let err = c
        .same_origin_page("https://evil.example/v1/Content?Page=1")
        .unwrap_err();
    assert!(err.message.contains("another host"));
}

//! Public opt-in against real storage (SQLite by default; PostgreSQL and
//! Redis when the run asks for them): forms and versioned consent texts,
//! submissions with their evidence, validation, honeypot and rate limit,
//! double opt-in by link and by YES, QR codes (scans, images that decode to
//! the right URL, the WhatsApp link that only opens the window), CSV
//! import with its per-row report, and the audit export.

use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration as StdDuration;

use chrono::Duration;
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::compliance::gates::{ConsentStatus, Gate};
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::contacts::{self, ContactError};
use heimdall_domain::entities::{consent, contact, outbound_message, tool_call};
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::optin::{
    self, ChannelStatus, ChannelText, ConfirmationStatus, FormError, FormField, FormInput,
    FormUpdate, QrInput, RequestEvidence, SubmissionInput, SubmissionLimiter, SubmitError,
    SubmitOutcome, SubmitReceipt,
};
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::templates::{self, TemplateSpec};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{Channel, Core};

const PHONE: &str = "+4791234567";
const UA: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Mobile/15E148";
const WA_TEXT: &str = "Yes, send me updates about this listing on WhatsApp.";
const SMS_TEXT: &str = "Yes, text me updates about this listing.";

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
        ("HEIMDALL_PROGRAM_NAME", "Elm Realty"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    env
}

fn form_input(slug: &str, double_opt_in: bool) -> FormInput {
    FormInput {
        slug: slug.into(),
        title: "12 Elm St open house".into(),
        intro: "Get updates about this home.".into(),
        fields: vec![FormField {
            key: "email".into(),
            label: "Email".into(),
            required: false,
        }],
        thank_you: "Thanks for visiting!".into(),
        channels: vec![
            ChannelText {
                channel: Channel::WhatsApp,
                consent_text: WA_TEXT.into(),
                purpose: None,
            },
            ChannelText {
                channel: Channel::Sms,
                consent_text: SMS_TEXT.into(),
                purpose: None,
            },
        ],
        double_opt_in,
        whatsapp_confirmation_template: None,
        active: None,
    }
}

fn input(phone: &str, channels: &[(Channel, i32)]) -> SubmissionInput {
    let mut pairs: Vec<(String, String)> = vec![
        ("name".into(), "Ada Lovelace".into()),
        ("phone".into(), phone.into()),
        ("field_email".into(), "ada@example.com".into()),
        ("website".into(), String::new()),
    ];
    for (c, v) in channels {
        pairs.push(("channel".into(), c.as_str().into()));
        pairs.push((format!("text_version_{}", c.as_str()), v.to_string()));
    }
    SubmissionInput::from_pairs(pairs)
}

fn request(ip: &str, path: &str, core: &Core) -> RequestEvidence {
    RequestEvidence {
        ip: ip.parse().unwrap(),
        user_agent: Some(UA.into()),
        page_url: optin::public_url(core, path),
    }
}

fn recorded(out: SubmitOutcome) -> SubmitReceipt {
    match out {
        SubmitOutcome::Recorded(r) => r,
        SubmitOutcome::Discarded => panic!("the submission was discarded"),
    }
}

async fn consents(core: &Core) -> Vec<consent::Model> {
    consent::Entity::find().all(&core.db.conn).await.unwrap()
}

fn bootstrap() -> ApiPrincipal {
    ApiPrincipal {
        key_id: None,
        name: "bootstrap".into(),
    }
}

fn reminder(contact_id: &str) -> SendRequest {
    let mut variables = BTreeMap::new();
    variables.insert("task_name".to_string(), "Viewing".to_string());
    variables.insert("due_time".to_string(), "17:00".to_string());
    SendRequest {
        recipient: Recipient::Contact(contact_id.into()),
        channel: Channel::WhatsApp,
        content: RequestedContent::Template {
            name: "task_reminder".into(),
            variables,
        },
        origin: Origin::Automation {
            principal: bootstrap(),
            source: MessageSource::Api,
            reminder_id: None,
        },
        idempotency_key: None,
        purpose: None,
    }
}

fn inbound_msg(channel: Channel, id: &str, body: &str, env: &TestEnv) -> InboundMessage {
    InboundMessage {
        provider: "twilio".into(),
        provider_message_id: id.into(),
        channel,
        from: match channel {
            Channel::WhatsApp => format!("whatsapp:{PHONE}"),
            Channel::Sms => PHONE.into(),
        },
        to: None,
        body: Some(body.into()),
        media: vec![],
        button_text: None,
        button_payload: None,
        profile_name: None,
        received_at: env.core.now(),
    }
}

async fn message(core: &Core, id: &str) -> outbound_message::Model {
    outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
}

fn token_in(body: &str) -> String {
    let at = body.find("/optin/confirm/").expect("a confirmation link") + "/optin/confirm/".len();
    body[at..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .collect()
}

#[tokio::test]
async fn a_submission_records_one_consent_per_ticked_channel_with_its_evidence() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    assert_eq!(form.url, "https://heimdall.example.com/optin/elm-st");
    assert_eq!(form.channels.len(), 2);
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(
                "+47 912 34 567",
                &[(Channel::WhatsApp, 1), (Channel::Sms, 1)],
            ),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    assert!(r.contact_created);
    assert_eq!(r.channels.len(), 2);
    assert!(r
        .channels
        .iter()
        .all(|c| c.status == ChannelStatus::Subscribed && c.confirmation.is_none()));

    let c = contacts::get(core, &r.contact_id).await.unwrap();
    assert_eq!(c.phone, PHONE);
    assert_eq!(c.name.as_deref(), Some("Ada Lovelace"));
    assert_eq!(c.attributes.get("email").unwrap(), "ada@example.com");

    let rows = consents(core).await;
    assert_eq!(rows.len(), 2);
    for (channel, text) in [(Channel::WhatsApp, WA_TEXT), (Channel::Sms, SMS_TEXT)] {
        let row = rows.iter().find(|r| r.channel == channel.as_str()).unwrap();
        assert_eq!(row.contact_id, r.contact_id);
        assert_eq!(row.status, ConsentStatus::Active);
        assert_eq!(row.source, "web_form");
        assert_eq!(row.captured_at, TestEnv::start_time());
        assert_eq!(row.ip.as_deref(), Some("203.0.113.7"));
        assert_eq!(row.user_agent.as_deref(), Some(UA));
        assert_eq!(
            row.page_url.as_deref(),
            Some("https://heimdall.example.com/optin/elm-st")
        );
        assert_eq!(row.form_id.as_deref(), Some(form.id.as_str()));
        assert_eq!(row.qr_code, None);
        assert_eq!(
            row.consent_text_version,
            Some(format!("{}:v1", channel.as_str()))
        );
        assert_eq!(row.consent_text.as_deref(), Some(text));
        assert_eq!(
            row.consent_text_hash,
            Some(heimdall_domain::consent::text_hash(text))
        );
        assert_eq!(row.recorded_by, "optin:elm-st");
        assert!(row.confirmation_token_hash.is_none());
        let current =
            heimdall_domain::consent::current_consent(&core.db.conn, &r.contact_id, channel)
                .await
                .unwrap()
                .unwrap();
        assert_eq!(
            heimdall_domain::consent::consent_status(&current),
            ConsentStatus::Active
        );
    }
    // No message is sent for a single opt-in.
    assert!(env.take_enqueued().is_empty());
}

#[tokio::test]
async fn bad_input_is_named_per_field_and_records_nothing() {
    let env = env().await;
    let core = &env.core;
    let mut fi = form_input("elm-st", false);
    fi.fields[0].required = true;
    let form = optin::create_form(core, &fi, "staff:1").await.unwrap();
    let mut bad = SubmissionInput::from_pairs([
        ("name".to_string(), "  ".to_string()),
        ("phone".to_string(), "555 12".to_string()),
    ]);
    let err = optin::submit(
        core,
        &form,
        None,
        &bad,
        &request("203.0.113.7", "/optin/elm-st", core),
    )
    .await
    .unwrap_err();
    let SubmitError::Invalid(fields) = err else {
        panic!("expected field errors, got {err:?}")
    };
    assert_eq!(
        fields.keys().map(String::as_str).collect::<Vec<_>>(),
        vec!["channels", "field_email", "name", "phone"]
    );
    assert!(fields["phone"].contains("valid mobile number"));

    // A good form but an unknown channel, or no User-Agent: still nothing.
    bad = input(PHONE, &[(Channel::WhatsApp, 1)]);
    bad.channels.push("fax".into());
    assert!(matches!(
        optin::submit(core, &form, None, &bad, &request("203.0.113.7", "/optin/elm-st", core)).await,
        Err(SubmitError::Invalid(f)) if f.contains_key("channels")
    ));
    let mut no_ua = request("203.0.113.7", "/optin/elm-st", core);
    no_ua.user_agent = None;
    assert!(matches!(
        optin::submit(core, &form, None, &input(PHONE, &[(Channel::WhatsApp, 1)]), &no_ua).await,
        Err(SubmitError::Invalid(f)) if f.contains_key("form")
    ));
    assert_eq!(
        contact::Entity::find().count(&core.db.conn).await.unwrap(),
        0
    );
    assert_eq!(
        consent::Entity::find().count(&core.db.conn).await.unwrap(),
        0
    );
}

#[tokio::test]
async fn repeated_submissions_add_nothing_and_a_new_text_version_is_recorded_as_such() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let req = request("203.0.113.7", "/optin/elm-st", core);
    let first = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::WhatsApp, 1)]),
            &req,
        )
        .await
        .unwrap(),
    );
    env.clock.advance(Duration::minutes(1));
    let again = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::WhatsApp, 1)]),
            &req,
        )
        .await
        .unwrap(),
    );
    assert!(!again.contact_created);
    assert_eq!(again.channels[0].status, ChannelStatus::AlreadySubscribed);
    assert_eq!(again.channels[0].consent_id, first.channels[0].consent_id);
    assert_eq!(consents(core).await.len(), 1);

    // Editing the text makes version 2; the old consent keeps version 1.
    let v2 = optin::add_consent_text(
        core,
        &form.id,
        Channel::WhatsApp,
        None,
        "Yes, WhatsApp me about this and similar homes.",
        "staff:2",
    )
    .await
    .unwrap();
    assert_eq!((v2.version, v2.label.as_str()), (2, "whatsapp:v2"));
    let same = optin::add_consent_text(
        core,
        &form.id,
        Channel::WhatsApp,
        None,
        "Yes, WhatsApp me about this and similar homes.",
        "staff:2",
    )
    .await
    .unwrap();
    assert_eq!(same.id, v2.id, "the same text is not a new version");
    let history = optin::consent_text_history(core, &form.id).await.unwrap();
    assert_eq!(history.len(), 3);
    let form = optin::get_form(core, &form.id).await.unwrap();
    assert_eq!(form.offer(Channel::WhatsApp, None).unwrap().version, 2);

    // A page still showing version 1 records nothing and asks again.
    let stale = optin::submit(
        core,
        &form,
        None,
        &input(PHONE, &[(Channel::WhatsApp, 1)]),
        &req,
    )
    .await
    .unwrap_err();
    assert!(matches!(stale, SubmitError::Invalid(f) if f["channels"].contains("changed")));
    let fresh = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::WhatsApp, 2)]),
            &req,
        )
        .await
        .unwrap(),
    );
    assert_eq!(fresh.channels[0].status, ChannelStatus::Subscribed);
    let rows = consents(core).await;
    assert_eq!(rows.len(), 2);
    let old = rows
        .iter()
        .find(|r| r.id == first.channels[0].consent_id)
        .unwrap();
    assert_eq!(old.consent_text_version.as_deref(), Some("whatsapp:v1"));
    assert_eq!(
        old.consent_text_hash,
        Some(heimdall_domain::consent::text_hash(WA_TEXT))
    );
    let new = rows
        .iter()
        .find(|r| r.id == fresh.channels[0].consent_id)
        .unwrap();
    assert_eq!(new.consent_text_version.as_deref(), Some("whatsapp:v2"));
    assert_eq!(new.consent_text_hash.as_deref(), Some(v2.hash.as_str()));
}

#[tokio::test]
async fn a_filled_honeypot_answers_like_success_and_records_nothing() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let mut bot = input(PHONE, &[(Channel::WhatsApp, 1)]);
    bot.honeypot = "http://spam.example".into();
    let out = optin::submit(
        core,
        &form,
        None,
        &bot,
        &request("198.51.100.1", "/optin/elm-st", core),
    )
    .await
    .unwrap();
    assert_eq!(out, SubmitOutcome::Discarded);
    assert_eq!(
        contact::Entity::find().count(&core.db.conn).await.unwrap(),
        0
    );
    assert_eq!(consents(core).await.len(), 0);
}

#[tokio::test]
async fn the_rate_limit_counts_per_address() {
    let env = env().await;
    let limiter = SubmissionLimiter::new(5, StdDuration::from_secs(600));
    let a: IpAddr = "198.51.100.20".parse().unwrap();
    let b: IpAddr = "198.51.100.21".parse().unwrap();
    for i in 0..5 {
        assert!(limiter.check(&env.core, a).await.is_ok(), "submission {i}");
    }
    let wait = limiter.check(&env.core, a).await.unwrap_err();
    assert!(wait > StdDuration::ZERO && wait <= StdDuration::from_secs(600));
    assert!(limiter.check(&env.core, b).await.is_ok());
    // With Redis the count is shared by every process: it lives there.
    if let Some(conn) = &env.core.redis {
        let mut conn = conn.clone();
        let key = format!(
            "{}:optin:rate:198.51.100.20",
            env.core.settings.redis_namespace
        );
        let n: i64 = redis::cmd("GET")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(n, 6);
    }
    // IPv6 addresses in one /64 share a limit.
    let v6a: IpAddr = "2001:db8:7:7::1".parse().unwrap();
    let v6b: IpAddr = "2001:db8:7:7::2".parse().unwrap();
    for _ in 0..5 {
        assert!(limiter.check(&env.core, v6a).await.is_ok());
    }
    assert!(limiter.check(&env.core, v6b).await.is_err());
}

#[tokio::test]
async fn double_opt_in_by_sms_stays_pending_until_the_link_confirms() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", true), "staff:1")
        .await
        .unwrap();
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::Sms, 1)]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    let ch = &r.channels[0];
    assert_eq!(ch.status, ChannelStatus::AwaitingConfirmation);
    let sent = ch.confirmation.as_ref().unwrap();
    assert_eq!(sent.state, MessageState::Queued, "{sent:?}");
    let row = consent::Entity::find_by_id(ch.consent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, ConsentStatus::Pending);

    // The confirmation went through the gates as an opt-in confirmation.
    let m = message(core, &sent.message_id).await;
    assert_eq!((m.channel.as_str(), m.source.as_str()), ("sms", "optin"));
    assert_eq!(m.actor, "system:optin");
    let body = m.body.clone().unwrap();
    assert!(body.starts_with("Elm Realty: reply YES to confirm 12 Elm St open house messages, or open https://heimdall.example.com/optin/confirm/"));
    assert!(body.ends_with(". Reply STOP to opt out. Msg & data rates may apply."));
    assert_eq!(
        tool_call::Entity::find()
            .filter(tool_call::Column::MessageId.eq(&m.id))
            .filter(tool_call::Column::Kind.eq("gate_evaluation"))
            .count(&core.db.conn)
            .await
            .unwrap(),
        1
    );
    // Only the token's hash is stored.
    let token = token_in(&body);
    assert!(token.len() >= 40);
    assert_eq!(
        row.confirmation_token_hash,
        Some(heimdall_domain::consent::text_hash(&token))
    );
    assert!(!serde_json::to_string(&row).unwrap().contains(&token));

    // Pending: nothing else may be sent yet.
    let mut sms = reminder(&r.contact_id);
    sms.channel = Channel::Sms;
    let blocked = outbound::accept(core, sms.clone()).await.unwrap();
    assert_eq!(blocked.decision.decision.reason(), Some(Gate::NoConsent));

    // Submitting again neither duplicates nor sends a second request.
    let again = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::Sms, 1)]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    assert_eq!(
        again.channels[0].status,
        ChannelStatus::AlreadyAwaitingConfirmation
    );
    assert!(again.channels[0].confirmation.is_none());
    assert_eq!(consents(core).await.len(), 1);

    // Opening the link changes nothing; pressing the button confirms.
    let view = optin::confirmation_view(core, &token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(view.status, ConfirmationStatus::Pending);
    assert_eq!(view.form_title.as_deref(), Some("12 Elm St open house"));
    env.clock.advance(Duration::hours(2));
    let done = optin::confirm(core, &token).await.unwrap().unwrap();
    assert_eq!(done.status, ConfirmationStatus::Confirmed);
    let row = consent::Entity::find_by_id(ch.consent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, ConsentStatus::Active);
    assert_eq!(
        row.confirmed_at,
        Some(TestEnv::start_time() + Duration::hours(2))
    );
    assert_eq!(
        optin::confirm(core, &token).await.unwrap().unwrap().status,
        ConfirmationStatus::Confirmed
    );
    assert!(
        optin::confirm(core, "not-a-real-token-aaaaaaaaaaaaaaaaaaaaaaaa")
            .await
            .unwrap()
            .is_none()
    );
    let ok = outbound::accept(core, sms).await.unwrap();
    assert_eq!(ok.decision.decision.reason(), None, "{:?}", ok.decision);
}

#[tokio::test]
async fn a_confirmation_link_expires_and_a_new_submission_asks_again() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", true), "staff:1")
        .await
        .unwrap();
    let req = request("203.0.113.7", "/optin/elm-st", core);
    let r = recorded(
        optin::submit(core, &form, None, &input(PHONE, &[(Channel::Sms, 1)]), &req)
            .await
            .unwrap(),
    );
    let m = message(
        core,
        &r.channels[0].confirmation.as_ref().unwrap().message_id,
    )
    .await;
    let token = token_in(m.body.as_deref().unwrap());
    env.clock
        .advance(optin::CONFIRMATION_TTL + Duration::minutes(1));
    assert_eq!(
        optin::confirm(core, &token).await.unwrap().unwrap().status,
        ConfirmationStatus::Expired
    );
    let row = consent::Entity::find_by_id(r.channels[0].consent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, ConsentStatus::Pending);
    let again = recorded(
        optin::submit(core, &form, None, &input(PHONE, &[(Channel::Sms, 1)]), &req)
            .await
            .unwrap(),
    );
    assert_eq!(
        again.channels[0].status,
        ChannelStatus::AwaitingConfirmation
    );
    assert!(again.channels[0].confirmation.is_some());
    assert_eq!(consents(core).await.len(), 2);
}

#[tokio::test]
async fn double_opt_in_is_confirmed_by_replying_yes() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", true), "staff:1")
        .await
        .unwrap();
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::Sms, 1)]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    inbound::handle_message(core, inbound_msg(Channel::Sms, "SMyes1", "YES", &env))
        .await
        .unwrap();
    let row = consent::Entity::find_by_id(r.channels[0].consent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.status, ConsentStatus::Active);
    assert!(row.confirmed_at.is_some());
    // YES confirmed the form's consent; it did not add a keyword one.
    assert_eq!(consents(core).await.len(), 1);
}

#[tokio::test]
async fn a_whatsapp_confirmation_needs_a_template_outside_the_window() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", true), "staff:1")
        .await
        .unwrap();
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::WhatsApp, 1)]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    // No template: free text outside the window is refused, and recorded.
    let sent = r.channels[0].confirmation.clone().unwrap();
    assert_eq!(sent.state, MessageState::Blocked);
    assert_eq!(sent.gate.as_deref(), Some("outside_window"));
    let m = message(core, &sent.message_id).await;
    assert_eq!(m.block_reason.as_deref(), Some("outside_window"));
    assert!(m.body.unwrap().contains("Reply STOP to opt out"));
    assert!(env.take_enqueued().is_empty());

    // A template that cannot state the opt-out is refused for the form.
    let now = core.now();
    let spec = |name: &str, body: &str| TemplateSpec {
        name: name.into(),
        provider: "twilio".into(),
        provider_id: Some("HX00000000000000000000000000000077".into()),
        category: "UTILITY".into(),
        language: "en".into(),
        body: body.into(),
        variables: vec!["program".into(), "form_title".into(), "confirm_url".into()],
        approval_status: heimdall_domain::templates::TemplateApproval::Approved,
        rejection_reason: None,
        source: "staff".into(),
    };
    templates::upsert(
        &core.db.conn,
        spec("optin_no_stop", "{{1}}: confirm {{2}} at {{3}}"),
        false,
        now,
    )
    .await
    .unwrap();
    let refused = optin::update_form(
        core,
        &form.id,
        &FormUpdate {
            whatsapp_confirmation_template: Some("optin_no_stop".into()),
            ..Default::default()
        },
        "staff:1",
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&refused, FormError::Invalid(f) if f["whatsapp_confirmation_template"].contains("STOP"))
    );
    templates::upsert(
        &core.db.conn,
        spec(
            "optin_confirm",
            "{{1}}: reply YES to confirm {{2}} messages or open {{3}}. Reply STOP to opt out.",
        ),
        false,
        now,
    )
    .await
    .unwrap();
    let form = optin::update_form(
        core,
        &form.id,
        &FormUpdate {
            whatsapp_confirmation_template: Some("optin_confirm".into()),
            ..Default::default()
        },
        "staff:1",
    )
    .await
    .unwrap();
    assert_eq!(
        form.whatsapp_confirmation_template.as_deref(),
        Some("optin_confirm")
    );
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input("+4791234568", &[(Channel::WhatsApp, 1)]),
            &request("203.0.113.8", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    let sent = r.channels[0].confirmation.clone().unwrap();
    assert_eq!(sent.state, MessageState::Queued, "{sent:?}");
    let m = message(core, &sent.message_id).await;
    assert_eq!(m.template_name.as_deref(), Some("optin_confirm"));
    let vars: BTreeMap<String, String> = serde_json::from_str(&m.variables).unwrap();
    assert_eq!(vars["program"], "Elm Realty");
    assert_eq!(vars["form_title"], "12 Elm St open house");
    assert!(vars["confirm_url"].starts_with("https://heimdall.example.com/optin/confirm/"));

    // The confirmation template tagged with a purpose defined since (which a
    // consent recorded without one does not cover): the confirmation is
    // checked for a purpose the pending consent covers, and goes.
    heimdall_domain::consent::purposes::create(
        &core.db.conn,
        &heimdall_domain::consent::purposes::NewPurpose {
            name: "onboarding".into(),
            label: "Getting started".into(),
            description: String::new(),
            marketing: false,
        },
        "staff:1",
        now,
    )
    .await
    .unwrap();
    let t = templates::find_by_name(&core.db.conn, "optin_confirm")
        .await
        .unwrap()
        .unwrap();
    templates::set_purpose(&core.db.conn, &t.id, "onboarding")
        .await
        .unwrap();
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input("+4791234569", &[(Channel::WhatsApp, 1)]),
            &request("203.0.113.9", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    let sent = r.channels[0].confirmation.clone().unwrap();
    assert_eq!(sent.state, MessageState::Queued, "{sent:?}");
    assert_eq!(
        message(core, &sent.message_id).await.purpose.as_deref(),
        Some("service")
    );
}

#[tokio::test]
async fn an_active_subscriber_is_not_put_on_hold_by_a_double_opt_in_form() {
    let env = env().await;
    let core = &env.core;
    let single = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let double = optin::create_form(core, &form_input("oak-st", true), "staff:1")
        .await
        .unwrap();
    let req = request("203.0.113.7", "/optin/elm-st", core);
    let r = recorded(
        optin::submit(
            core,
            &single,
            None,
            &input(PHONE, &[(Channel::Sms, 1)]),
            &req,
        )
        .await
        .unwrap(),
    );
    let again = recorded(
        optin::submit(
            core,
            &double,
            None,
            &input(PHONE, &[(Channel::Sms, 1)]),
            &req,
        )
        .await
        .unwrap(),
    );
    assert_eq!(again.channels[0].status, ChannelStatus::AlreadySubscribed);
    let current =
        heimdall_domain::consent::current_consent(&core.db.conn, &r.contact_id, Channel::Sms)
            .await
            .unwrap()
            .unwrap();
    assert_eq!(
        heimdall_domain::consent::consent_status(&current),
        ConsentStatus::Active
    );
}

#[tokio::test]
async fn a_form_consent_revoked_by_stop_blocks_every_later_send() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &input(PHONE, &[(Channel::WhatsApp, 1)]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    let before = outbound::accept(core, reminder(&r.contact_id))
        .await
        .unwrap();
    assert_eq!(before.state, MessageState::Queued, "{:?}", before.decision);

    inbound::handle_message(
        core,
        inbound_msg(Channel::WhatsApp, "SMstop1", "STOP", &env),
    )
    .await
    .unwrap();
    let row = consent::Entity::find_by_id(r.channels[0].consent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert!(row.revoked_at.is_some());
    assert_eq!(row.revocation_source.as_deref(), Some("keyword"));

    let after = outbound::accept(core, reminder(&r.contact_id))
        .await
        .unwrap();
    assert_eq!(after.state, MessageState::Blocked);
    assert_eq!(after.decision.decision.reason(), Some(Gate::Suppressed));
    assert!(matches!(
        after.decision.verdict(Gate::NoConsent),
        Some(heimdall_domain::compliance::gates::Verdict::Block { .. })
    ));
    // The message queued before the STOP is refused by the worker too.
    let worker = outbound::process_send(core, &before.message_id)
        .await
        .unwrap();
    assert_eq!(
        worker,
        outbound::SendResult::Blocked(Gate::Suppressed),
        "consent can be revoked while a message waits"
    );
}

#[tokio::test]
async fn qr_codes_count_scans_and_consents_remember_the_code() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let qr = optin::create_qr_code(
        core,
        &form.id,
        &QrInput {
            source_label: "open house 12 Elm St".into(),
            prefilled_text: None,
        },
        "staff:1",
    )
    .await
    .unwrap();
    assert_eq!(
        qr.url,
        format!("https://heimdall.example.com/q/{}", qr.code)
    );
    assert!(optin::record_scan(core, "nosuchcode")
        .await
        .unwrap()
        .is_none());
    for _ in 0..3 {
        let (q, f) = optin::record_scan(core, &qr.code.to_uppercase())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.id, form.id);
        assert_eq!(q.code, qr.code);
    }
    // Images and the print page do not count.
    optin::find_qr_code(core, &qr.code).await.unwrap().unwrap();

    let r = recorded(
        optin::submit(
            core,
            &form,
            Some(&qr),
            &input(PHONE, &[(Channel::Sms, 1)]),
            &request("203.0.113.7", &format!("/q/{}", qr.code), core),
        )
        .await
        .unwrap(),
    );
    let row = consent::Entity::find_by_id(r.channels[0].consent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.source, "qr");
    assert_eq!(row.qr_code.as_deref(), Some(qr.code.as_str()));
    assert_eq!(row.page_url.as_deref(), Some(qr.url.as_str()));

    let stats = optin::form_stats(core, &form.id).await.unwrap();
    assert_eq!(stats.contacts, 1);
    assert_eq!(stats.qr_codes.len(), 1);
    assert_eq!(
        (stats.qr_codes[0].scans, stats.qr_codes[0].consents),
        (3, 1)
    );
    let sms = stats.channels.iter().find(|c| c.channel == "sms").unwrap();
    assert_eq!((sms.active, sms.pending, sms.revoked), (1, 0, 0));
    let list = optin::list_forms(core).await.unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].stats, stats);
    assert_eq!(
        optin::recent_consents(core, &form.id, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn the_qr_images_decode_to_the_landing_url() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let qr = optin::create_qr_code(
        core,
        &form.id,
        &QrInput {
            source_label: "flyer March".into(),
            prefilled_text: Some("Hello from the flyer".into()),
        },
        "staff:1",
    )
    .await
    .unwrap();
    let png = optin::qr_png(&qr.url, 400).unwrap();
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    let img = image::load_from_memory(&png).unwrap().to_luma8();
    assert!(img.width() >= 400);
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut prepared = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        img.get_pixel(x as u32, y as u32).0[0]
    });
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, qr.url);

    let svg = optin::qr_svg(&qr.url).unwrap();
    assert!(svg.contains("<svg") && svg.contains("<path"));
}

#[tokio::test]
async fn the_whatsapp_link_opens_only_the_window_not_consent() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let qr = optin::create_qr_code(
        core,
        &form.id,
        &QrInput {
            source_label: "open house 12 Elm St".into(),
            prefilled_text: None,
        },
        "staff:1",
    )
    .await
    .unwrap();
    let link = optin::whatsapp_link(core, &qr).unwrap();
    assert_eq!(
        link,
        "https://wa.me/14155238886?text=Hi%21%20I%20scanned%20the%20code%20at%20open%20house%2012%20Elm%20St."
    );
    let out = inbound::handle_message(
        core,
        inbound_msg(
            Channel::WhatsApp,
            "SMhi1",
            "Hi! I scanned the code at open house 12 Elm St.",
            &env,
        ),
    )
    .await
    .unwrap();
    let inbound::InboundOutcome::Stored {
        contact_id,
        keyword,
        reply_message_id,
        ..
    } = out
    else {
        panic!("not stored: {out:?}")
    };
    assert_eq!(keyword, None);
    assert_eq!(reply_message_id, None);
    let w = contacts::window(&core.db.conn, &contact_id, Channel::WhatsApp, core.now())
        .await
        .unwrap();
    assert!(w.in_window);
    assert!(heimdall_domain::consent::current_consent(
        &core.db.conn,
        &contact_id,
        Channel::WhatsApp
    )
    .await
    .unwrap()
    .is_none());
    // So a template send (marketing or not) is still refused for no consent.
    let refused = outbound::accept(core, reminder(&contact_id)).await.unwrap();
    assert_eq!(refused.decision.decision.reason(), Some(Gate::NoConsent));
}

#[tokio::test]
async fn a_csv_import_records_good_rows_and_reports_each_refused_one() {
    let env = env().await;
    let core = &env.core;
    // Someone who opted out must stay opted out.
    let (opted_out, _) = contacts::upsert(
        core,
        &contacts::ContactInput {
            phone: "+4791234599".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    heimdall_domain::consent::opt_out(
        &core.db.conn,
        &opted_out.id,
        Some(Channel::Sms),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("SM1"),
        "inbound",
        core.now(),
    )
    .await
    .unwrap();
    let csv = "\u{feff}Phone,Channel,Source,Captured At,IP,User Agent,Page URL,Consent Text Version,Consent Text,Name,Notes\n\
+4791234567,sms,Trade show sign-up sheet,2026-03-14T15:09:26Z,,,https://old-crm.example.com/forms/7,crm-v3,I agree to texts.,Ada,first\n\
+4791234568,whatsapp,,2026-03-14T15:09:26Z,203.0.113.1,Mozilla/5.0,,crm-v3,I agree.,Bob,\n\
+4791234569,sms,import,2026-03-14T15:09:26Z,,,,crm-v3,I agree.,Cy,\n\
12,sms,import,2026-03-14T15:09:26Z,,,https://x.example.com,crm-v3,,,\n\
+4791234570,sms,import,2099-01-01T00:00:00Z,,,https://x.example.com,crm-v3,,,\n\
+4791234599,sms,import,2026-03-14T15:09:26Z,,,https://x.example.com,crm-v3,,,\n\
+4791234571,sms,web_form,2026-03-14T15:09:26Z,,,https://x.example.com,crm-v3,,,\n\
+4791234572,whatsapp,web_form,2026-03-14 15:09:26,203.0.113.9,Mozilla/5.0,https://x.example.com,crm-v3,I agree.,Dee,\n\
+4791234567,sms,Trade show sign-up sheet,2026-03-14T15:09:26Z,,,https://old-crm.example.com/forms/7,crm-v3,I agree to texts.,Ada,dup\n\
+4791234573,fax,import,2026-03-14T15:09:26Z,,,https://x.example.com,crm-v3,,,\n";
    let report = optin::import_consents(core, csv, "staff:9").await.unwrap();
    assert_eq!(report.imported, 2, "{report:#?}");
    assert_eq!(report.duplicates, vec![10]);
    assert_eq!(report.ignored_columns, vec!["notes".to_string()]);
    let refused: Vec<usize> = report.refused.iter().map(|r| r.row).collect();
    assert_eq!(refused, vec![3, 4, 5, 6, 7, 8, 11], "{report:#?}");
    let reason = |row: usize| {
        report
            .refused
            .iter()
            .find(|r| r.row == row)
            .unwrap()
            .reason
            .clone()
    };
    assert!(reason(3).contains("source"));
    assert!(reason(4).contains("evidence"));
    assert!(reason(5).starts_with("phone"));
    assert!(reason(6).contains("future"));
    assert!(reason(7).contains("opted out"));
    assert!(reason(8).contains("evidence.ip"));
    assert!(reason(11).starts_with("channel"));

    let rows = consents(core).await;
    let imported: Vec<&consent::Model> = rows
        .iter()
        .filter(|r| r.recorded_by.starts_with("staff:9"))
        .collect();
    // Two rows, each for every purpose (the file names none).
    assert_eq!(imported.len(), 4);
    assert!(imported.iter().all(|r| r.purpose.is_some()));
    let ada = imported.iter().find(|r| r.source == "import").unwrap();
    assert_eq!(
        ada.recorded_by,
        "staff:9 (CSV import; source: Trade show sign-up sheet)"
    );
    assert_eq!(ada.captured_at.to_rfc3339(), "2026-03-14T15:09:26+00:00");
    assert_eq!(
        ada.consent_text_hash,
        Some(heimdall_domain::consent::text_hash("I agree to texts."))
    );
    let dee = imported.iter().find(|r| r.source == "web_form").unwrap();
    assert_eq!(dee.ip.as_deref(), Some("203.0.113.9"));
    // The opted-out person got nothing.
    assert!(heimdall_domain::consent::active_suppression(
        &core.db.conn,
        &opted_out.id,
        Channel::Sms
    )
    .await
    .unwrap()
    .is_some());
    assert!(rows
        .iter()
        .all(|r| r.contact_id != opted_out.id || r.revoked_at.is_some()));

    // A file without the required columns imports nothing.
    let err = optin::import_consents(core, "phone,channel\n+4791234567,sms\n", "staff:9")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("source"), "{err}");
    let err = optin::import_consents(
        core,
        "phone,channel,source,captured_at,consent_text_version,user_agent\n",
        "staff:9",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("evidence column"), "{err}");
}

#[tokio::test]
async fn the_export_holds_every_consent_and_suppression_and_is_spreadsheet_safe() {
    let env = env().await;
    let core = &env.core;
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    let mut sub = input(PHONE, &[(Channel::WhatsApp, 1), (Channel::Sms, 1)]);
    sub.name = "=HYPERLINK(\"http://evil.example\",\"x\")".into();
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &sub,
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    env.clock.advance(Duration::minutes(5));
    inbound::handle_message(core, inbound_msg(Channel::Sms, "SMstop2", "STOP", &env))
        .await
        .unwrap();

    let json: serde_json::Value = serde_json::from_str(
        &optin::export_consents_json(core, &r.contact_id)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(json["contact"]["phone"], PHONE);
    let cons = json["consents"].as_array().unwrap();
    assert_eq!(cons.len(), 2);
    let sms = cons.iter().find(|c| c["channel"] == "sms").unwrap();
    assert_eq!(sms["status"], "revoked");
    assert_eq!(sms["revocation_source"], "keyword");
    assert_eq!(sms["ip"], "203.0.113.7");
    assert_eq!(sms["user_agent"], UA);
    assert_eq!(sms["consent_text"], SMS_TEXT);
    assert_eq!(sms["consent_text_version"], "sms:v1");
    assert_eq!(sms["form_id"], form.id.as_str());
    let sup = json["suppressions"].as_array().unwrap();
    assert_eq!(sup.len(), 1);
    assert_eq!(sup[0]["channel"], "sms");

    let csv = optin::export_consents_csv(core, &r.contact_id)
        .await
        .unwrap();
    let mut reader = csv::Reader::from_reader(csv.as_bytes());
    let headers: Vec<String> = reader.headers().unwrap().iter().map(String::from).collect();
    assert_eq!(headers, optin::EXPORT_CSV_COLUMNS);
    let records: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 3);
    let col = |name: &str| headers.iter().position(|h| h == name).unwrap();
    for rec in &records {
        assert!(rec[col("contact_name")].starts_with("'="), "{rec:?}");
        assert_eq!(&rec[col("contact_phone")], "'+4791234567");
    }
    let kinds: Vec<&str> = records.iter().map(|r| &r[col("record_type")]).collect();
    assert_eq!(kinds, vec!["consent", "consent", "suppression"]);
    let sms_row = records
        .iter()
        .find(|r| &r[col("channel")] == "sms" && &r[col("record_type")] == "consent")
        .unwrap();
    assert!(!sms_row[col("revoked_at")].is_empty());
    assert_eq!(
        &sms_row[col("consent_text_hash")],
        heimdall_domain::consent::text_hash(SMS_TEXT)
    );

    assert!(matches!(
        optin::export_consents_json(core, "no-such-contact").await,
        Err(ContactError::NotFound(_))
    ));
}

#[tokio::test]
async fn forms_are_checked_slugs_are_unique_and_channels_can_change() {
    let env = env().await;
    let core = &env.core;
    let mut bad = form_input("-Bad Slug", false);
    bad.title = " ".into();
    bad.channels.clear();
    bad.fields.push(FormField {
        key: "phone".into(),
        label: "Phone again".into(),
        required: false,
    });
    let Err(FormError::Invalid(fields)) = optin::create_form(core, &bad, "staff:1").await else {
        panic!("expected field errors")
    };
    for f in ["slug", "title", "channels", "fields[1].key"] {
        assert!(fields.contains_key(f), "{f} in {fields:?}");
    }
    let form = optin::create_form(core, &form_input("elm-st", false), "staff:1")
        .await
        .unwrap();
    assert!(matches!(
        optin::create_form(core, &form_input("Elm-St", false), "staff:1").await,
        Err(FormError::SlugTaken(s)) if s == "elm-st"
    ));
    // Keep WhatsApp as is, drop SMS: no new version, SMS withdrawn.
    let updated = optin::update_form(
        core,
        &form.id,
        &FormUpdate {
            title: Some("Elm St, again".into()),
            channels: Some(vec![ChannelText {
                channel: Channel::WhatsApp,
                consent_text: WA_TEXT.into(),
                purpose: None,
            }]),
            ..Default::default()
        },
        "staff:1",
    )
    .await
    .unwrap();
    assert_eq!(updated.title, "Elm St, again");
    assert_eq!(updated.channels.len(), 1);
    assert_eq!(updated.channels[0].version, 1);
    assert!(updated.offer(Channel::Sms, None).is_none());
    // A page still offering SMS cannot record it any more.
    let err = optin::submit(
        core,
        &updated,
        None,
        &input(PHONE, &[(Channel::Sms, 1)]),
        &request("203.0.113.7", "/optin/elm-st", core),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SubmitError::Invalid(f) if f.contains_key("channels")));
    assert!(matches!(
        optin::withdraw_channel(core, &form.id, Channel::WhatsApp, "staff:1").await,
        Err(FormError::Invalid(_))
    ));
    // Re-offering SMS with the old text makes it current again as version 2.
    let sms = optin::add_consent_text(core, &form.id, Channel::Sms, None, SMS_TEXT, "staff:1")
        .await
        .unwrap();
    assert_eq!(sms.version, 2);
    let closed = optin::update_form(
        core,
        &form.id,
        &FormUpdate {
            active: Some(false),
            ..Default::default()
        },
        "staff:1",
    )
    .await
    .unwrap();
    assert!(matches!(
        optin::submit(
            core,
            &closed,
            None,
            &input(PHONE, &[(Channel::WhatsApp, 1)]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await,
        Err(SubmitError::Closed)
    ));
    assert!(optin::form_by_slug(core, "ELM-ST").await.unwrap().is_some());
    assert!(matches!(
        optin::get_form(core, "nope").await,
        Err(FormError::NotFound(_))
    ));
}

#[tokio::test]
async fn forwarded_addresses_are_believed_only_from_configured_proxies() {
    let env = env().await;
    let core = &env.core;
    let proxy: IpAddr = "10.0.0.5".parse().unwrap();
    assert!(optin::trusted_proxies(core).await.unwrap().is_empty());
    assert_eq!(
        optin::client_ip(
            proxy,
            Some("203.0.113.50"),
            &optin::trusted_proxies(core).await.unwrap()
        ),
        proxy
    );
    optin::set_trusted_proxies(core, &[proxy], "staff:admin")
        .await
        .unwrap();
    let trusted = optin::trusted_proxies(core).await.unwrap();
    assert_eq!(trusted, vec![proxy]);
    assert_eq!(
        optin::client_ip(proxy, Some("203.0.113.50"), &trusted),
        "203.0.113.50".parse::<IpAddr>().unwrap()
    );
}

/// A form that asks per purpose: WhatsApp for reminders and for offers,
/// SMS for reminders.
fn per_purpose_form(slug: &str, double_opt_in: bool) -> FormInput {
    let text = |channel, purpose: &str, consent_text: &str| ChannelText {
        channel,
        consent_text: consent_text.into(),
        purpose: Some(purpose.into()),
    };
    FormInput {
        channels: vec![
            text(
                Channel::WhatsApp,
                "reminders",
                "Yes, remind me of my viewings on WhatsApp.",
            ),
            text(
                Channel::WhatsApp,
                "marketing",
                "Yes, send me offers on WhatsApp.",
            ),
            text(Channel::Sms, "reminders", "Yes, text me viewing reminders."),
        ],
        ..form_input(slug, double_opt_in)
    }
}

/// Boxes ticked by key (`whatsapp:reminders`) with the version the page showed.
fn ticked(form: &optin::Form, phone: &str, boxes: &[(Channel, &str)]) -> SubmissionInput {
    let mut pairs: Vec<(String, String)> = vec![
        ("name".into(), "Ada Lovelace".into()),
        ("phone".into(), phone.into()),
        ("field_email".into(), "ada@example.com".into()),
    ];
    for (channel, purpose) in boxes {
        let text = form.offer(*channel, Some(purpose)).expect("offered");
        pairs.push(("channel".into(), text.key()));
        pairs.push((
            format!("text_version_{}", text.key()),
            text.version.to_string(),
        ));
    }
    SubmissionInput::from_pairs(pairs)
}

/// Define `reminders` and tag the reminder template with it; a marketing
/// template beside it.
async fn reminders_purpose(core: &Core) {
    use heimdall_domain::consent::purposes::{self, NewPurpose};
    purposes::create(
        &core.db.conn,
        &NewPurpose {
            name: "reminders".into(),
            label: "Viewing reminders".into(),
            description: "Reminders of viewings you booked.".into(),
            marketing: false,
        },
        "staff:1",
        core.now(),
    )
    .await
    .unwrap();
    let t = templates::find_by_name(&core.db.conn, "task_reminder")
        .await
        .unwrap()
        .unwrap();
    templates::set_purpose(&core.db.conn, &t.id, "reminders")
        .await
        .unwrap();
    heimdall_domain::testing::approved_template(core, "spring_offer", "MARKETING").await;
}

fn offer(contact_id: &str) -> SendRequest {
    heimdall_domain::testing::template_send(contact_id, "spring_offer", &[("name", "Ada")])
}

/// Issue 22: a form offers a checkbox per purpose, each with its own
/// versioned text; each ticked box records one consent naming its purpose
/// with that text as evidence, and only that purpose's messages may go.
#[tokio::test]
async fn a_form_asks_per_purpose_and_each_box_records_a_consent_for_its_purpose() {
    let env = env().await;
    let core = &env.core;
    reminders_purpose(core).await;

    // Asking for a channel once and per purpose at the same time, or for a
    // purpose nobody defined, is refused and creates nothing.
    let mut mixed = per_purpose_form("mixed", false);
    mixed.channels.push(ChannelText {
        channel: Channel::WhatsApp,
        consent_text: WA_TEXT.into(),
        purpose: None,
    });
    let err = optin::create_form(core, &mixed, "staff:1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FormError::Invalid(f) if f["channels.whatsapp"].contains("not both")),
        "{err:?}"
    );
    let mut unknown = per_purpose_form("unknown", false);
    unknown.channels[0].purpose = Some("birthdays".into());
    let err = optin::create_form(core, &unknown, "staff:1")
        .await
        .unwrap_err();
    assert!(
        matches!(&err, FormError::Invalid(f) if f["channels.whatsapp.birthdays"].contains("no purpose")),
        "{err:?}"
    );
    assert!(optin::list_forms(core).await.unwrap().is_empty());

    let form = optin::create_form(core, &per_purpose_form("elm-st", false), "staff:1")
        .await
        .unwrap();
    let keys: Vec<String> = form.channels.iter().map(|t| t.key()).collect();
    assert_eq!(
        keys,
        ["whatsapp:marketing", "whatsapp:reminders", "sms:reminders"]
    );
    let reminders = form.offer(Channel::WhatsApp, Some("reminders")).unwrap();
    assert_eq!(
        reminders.purpose_label.as_deref(),
        Some("Viewing reminders")
    );
    // Versions are numbered per form and channel: each label names one text.
    assert_ne!(
        reminders.label,
        form.offer(Channel::WhatsApp, Some("marketing"))
            .unwrap()
            .label
    );
    assert!(reminders.label.starts_with("whatsapp:reminders:v"));
    // The channel asked per purpose cannot also be asked once.
    let err = optin::add_consent_text(core, &form.id, Channel::WhatsApp, None, WA_TEXT, "staff:1")
        .await
        .unwrap_err();
    assert!(matches!(err, FormError::Invalid(f) if f.contains_key("purpose")));

    // The person ticks reminders on WhatsApp only.
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &ticked(&form, PHONE, &[(Channel::WhatsApp, "reminders")]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    assert_eq!(r.channels.len(), 1);
    assert_eq!(r.channels[0].status, ChannelStatus::Subscribed);
    assert_eq!(r.channels[0].purpose.as_deref(), Some("reminders"));
    let rows = consents(core).await;
    assert_eq!(rows.len(), 1, "one consent, for the one box ticked");
    let row = &rows[0];
    assert_eq!(row.purpose.as_deref(), Some("reminders"));
    assert_eq!(row.channel, "whatsapp");
    assert_eq!(
        row.consent_text_version.as_deref(),
        Some(reminders.label.as_str())
    );
    assert_eq!(
        row.consent_text_hash.as_deref(),
        Some(reminders.hash.as_str())
    );
    assert_eq!(
        row.consent_text.as_deref(),
        Some("Yes, remind me of my viewings on WhatsApp.")
    );

    // Reminders go; offers, which the box left unticked, do not; nor does
    // SMS, which was not ticked at all.
    let ok = outbound::accept(core, reminder(&r.contact_id))
        .await
        .unwrap();
    assert_eq!(ok.decision.decision.reason(), None, "{:?}", ok.decision);
    let no = outbound::accept(core, offer(&r.contact_id)).await.unwrap();
    assert_eq!(no.decision.decision.reason(), Some(Gate::NoConsent));
    let mut sms = reminder(&r.contact_id);
    sms.channel = Channel::Sms;
    let no = outbound::accept(core, sms).await.unwrap();
    assert_eq!(no.decision.decision.reason(), Some(Gate::NoConsent));

    // A box whose text changed while the page was open records nothing.
    optin::add_consent_text(
        core,
        &form.id,
        Channel::WhatsApp,
        Some("marketing"),
        "Yes, send me offers and news on WhatsApp.",
        "staff:1",
    )
    .await
    .unwrap();
    let err = optin::submit(
        core,
        &optin::get_form(core, &form.id).await.unwrap(),
        None,
        &ticked(&form, PHONE, &[(Channel::WhatsApp, "marketing")]),
        &request("203.0.113.7", "/optin/elm-st", core),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, SubmitError::Invalid(f) if f["channels"].contains("changed")));
    assert_eq!(consents(core).await.len(), 1);

    // Ticked on the new text, offers go too.
    let form = optin::get_form(core, &form.id).await.unwrap();
    recorded(
        optin::submit(
            core,
            &form,
            None,
            &ticked(&form, PHONE, &[(Channel::WhatsApp, "marketing")]),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    let ok = outbound::accept(core, offer(&r.contact_id)).await.unwrap();
    assert_eq!(ok.decision.decision.reason(), None, "{:?}", ok.decision);
}

/// Double opt-in asking per purpose: the boxes of one channel ticked
/// together get one confirmation (through the gates, for the purpose of the
/// consents it confirms), and its link confirms them all.
#[tokio::test]
async fn double_opt_in_per_purpose_sends_one_confirmation_per_channel_and_confirms_every_box() {
    let env = env().await;
    let core = &env.core;
    reminders_purpose(core).await;
    let mut input = per_purpose_form("elm-st", true);
    input.channels.push(ChannelText {
        channel: Channel::Sms,
        consent_text: "Yes, text me offers.".into(),
        purpose: Some("marketing".into()),
    });
    let form = optin::create_form(core, &input, "staff:1").await.unwrap();
    let r = recorded(
        optin::submit(
            core,
            &form,
            None,
            &ticked(
                &form,
                PHONE,
                &[(Channel::Sms, "reminders"), (Channel::Sms, "marketing")],
            ),
            &request("203.0.113.7", "/optin/elm-st", core),
        )
        .await
        .unwrap(),
    );
    assert_eq!(r.channels.len(), 2);
    assert!(r
        .channels
        .iter()
        .all(|c| c.status == ChannelStatus::AwaitingConfirmation));
    let first = r.channels[0].confirmation.clone().expect("a confirmation");
    assert_eq!(r.channels[1].confirmation.as_ref(), Some(&first));
    assert_eq!(first.state, MessageState::Queued, "{first:?}");
    let confirmations = outbound_message::Entity::find()
        .filter(outbound_message::Column::Source.eq("optin"))
        .all(&core.db.conn)
        .await
        .unwrap();
    assert_eq!(confirmations.len(), 1, "one message for the channel");
    let token = token_in(confirmations[0].body.as_deref().unwrap());

    // Pending: neither purpose may be sent to yet.
    let mut sms = reminder(&r.contact_id);
    sms.channel = Channel::Sms;
    let no = outbound::accept(core, sms.clone()).await.unwrap();
    assert_eq!(no.decision.decision.reason(), Some(Gate::NoConsent));

    let done = optin::confirm(core, &token).await.unwrap().unwrap();
    assert_eq!(done.status, ConfirmationStatus::Confirmed);
    let rows = consents(core).await;
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter().all(|c| c.status == ConsentStatus::Active),
        "{rows:?}"
    );
    let mut purposes: Vec<_> = rows.iter().filter_map(|c| c.purpose.clone()).collect();
    purposes.sort();
    assert_eq!(purposes, ["marketing", "reminders"]);
    let ok = outbound::accept(core, sms).await.unwrap();
    assert_eq!(ok.decision.decision.reason(), None, "{:?}", ok.decision);
    let mut offer_sms = offer(&r.contact_id);
    offer_sms.channel = Channel::Sms;
    let ok = outbound::accept(core, offer_sms).await.unwrap();
    assert_eq!(ok.decision.decision.reason(), None, "{:?}", ok.decision);
}

/// An adversary with a form asked per purpose: after "STOP PROMOTIONS", a
/// ticked offers box is only a claim held for proof from the number
/// (offers stay refused) while reminders can still be asked for; after
/// STOP, no box of any purpose undoes it.
#[tokio::test]
async fn a_form_asked_per_purpose_never_undoes_an_opt_out() {
    let env = env().await;
    let core = &env.core;
    reminders_purpose(core).await;
    let form = optin::create_form(core, &per_purpose_form("elm-st", false), "staff:1")
        .await
        .unwrap();
    let tick = |boxes: &'static [(Channel, &'static str)], ip: &'static str| {
        let form = form.clone();
        async move {
            recorded(
                optin::submit(
                    core,
                    &form,
                    None,
                    &ticked(&form, PHONE, boxes),
                    &request(ip, "/optin/elm-st", core),
                )
                .await
                .unwrap(),
            )
        }
    };
    let r = tick(
        &[
            (Channel::WhatsApp, "reminders"),
            (Channel::WhatsApp, "marketing"),
        ],
        "203.0.113.7",
    )
    .await;
    assert!(r
        .channels
        .iter()
        .all(|c| c.status == ChannelStatus::Subscribed));

    inbound::handle_message(
        core,
        inbound_msg(Channel::WhatsApp, "SMpromo1", "STOP PROMOTIONS", &env),
    )
    .await
    .unwrap();
    let no = outbound::accept(core, offer(&r.contact_id)).await.unwrap();
    assert_eq!(no.state, MessageState::Blocked);
    let again = tick(&[(Channel::WhatsApp, "marketing")], "203.0.113.8").await;
    assert_eq!(
        again.channels[0].status,
        ChannelStatus::NeedsProofFromNumber
    );
    let no = outbound::accept(core, offer(&r.contact_id)).await.unwrap();
    assert_eq!(no.state, MessageState::Blocked, "{:?}", no.decision);
    let ok = outbound::accept(core, reminder(&r.contact_id))
        .await
        .unwrap();
    assert_eq!(ok.decision.decision.reason(), None, "{:?}", ok.decision);

    inbound::handle_message(
        core,
        inbound_msg(Channel::WhatsApp, "SMstop2", "STOP", &env),
    )
    .await
    .unwrap();
    let again = tick(
        &[
            (Channel::WhatsApp, "reminders"),
            (Channel::WhatsApp, "marketing"),
        ],
        "203.0.113.9",
    )
    .await;
    assert!(
        again
            .channels
            .iter()
            .all(|c| c.status == ChannelStatus::NeedsProofFromNumber),
        "{again:?}"
    );
    for send in [reminder(&r.contact_id), offer(&r.contact_id)] {
        let no = outbound::accept(core, send).await.unwrap();
        assert_eq!(no.decision.decision.reason(), Some(Gate::Suppressed));
    }
}

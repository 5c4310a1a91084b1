//! Conversational automations: an API key may reply in free text inside the 24-hour
//! window only when an approver (not its creator) approved its automation for it; the
//! bootstrap key only when a setting says so. Outside the window, or after a STOP, it is
//! refused; what goes is formatted and split as an inbox reply is.

use chrono::Duration;
use heimdall_domain::compliance::message_source::MessageSource;

use heimdall_domain::access::accounts::{self, Role};
use heimdall_domain::access::authz::{self, ApiPrincipal, AutomationError};
use heimdall_domain::channels::formatting::TextFormat;
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::api_key::Scopes;
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{Channel, Core};

const PHONE: &str = "+4791234568";

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let mut pairs = vec![
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ];
    pairs.extend_from_slice(extra);
    let env = TestEnv::new(&pairs).await;
    authz::register_senders(&env.core, true).await.unwrap();
    env
}

/// A person who never opted in, and wrote to us just now on WhatsApp.
async fn person_who_wrote(core: &Core) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: PHONE.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    contacts::open_window(
        &core.db.conn,
        &c.id,
        Channel::WhatsApp,
        core.now(),
        core.now(),
    )
    .await
    .unwrap();
    c.id
}

fn text(cid: &str, principal: ApiPrincipal, body: &str) -> SendRequest {
    SendRequest {
        recipient: Recipient::Contact(cid.to_string()),
        channel: Channel::WhatsApp,
        content: RequestedContent::Text {
            body: body.to_string(),
            media_url: None,
            format: TextFormat::Markdown,
            reply_to: None,
        },
        origin: Origin::Automation {
            principal,
            source: MessageSource::Api,
            reminder_id: None,
        },
        idempotency_key: None,
        purpose: None,
    }
}

/// An API key with an automation for it, created by `creator`.
async fn agent(core: &Core, free_form: bool) -> (ApiPrincipal, String) {
    let key = accounts::create_api_key(core, "agent", "creator@x", &Scopes::all())
        .await
        .unwrap();
    let automation =
        authz::create_automation(core, "Support agent", &key.id, &[], free_form, "creator@x").await;
    let automation = match automation {
        Ok(a) => a,
        Err(e) => panic!("{e}"),
    };
    assert_eq!(automation.free_form, free_form);
    (
        ApiPrincipal {
            key_id: Some(key.id),
            name: "agent".into(),
        },
        automation.id,
    )
}

async fn approve(core: &Core, id: &str, by: &str) -> Result<authz::Automation, AutomationError> {
    authz::approve_automation(core, id, by, Role::Approver).await
}

#[tokio::test]
async fn an_approved_agent_replies_in_free_text_inside_the_window_and_only_there() {
    let env = env_with(&[]).await;
    let cid = person_who_wrote(&env.core).await;
    let (principal, automation) = agent(&env.core, true).await;

    // Not approved yet: refused, and nothing goes.
    let out = outbound::accept(&env.core, text(&cid, principal.clone(), "Hello **there**"))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Blocked);
    assert_eq!(out.decision.decision.reason(), Some(Gate::NoConsent));

    // Its creator cannot approve it; an approver can.
    assert!(matches!(
        approve(&env.core, &automation, "creator@x").await,
        Err(AutomationError::SelfApproval)
    ));
    approve(&env.core, &automation, "approver@x").await.unwrap();

    // Inside the window: it goes, formatted for WhatsApp and in parts like an inbox reply.
    let long = format!(
        "**Answer**\n\n{}",
        "This is a sentence of the answer. ".repeat(80)
    );
    let out = outbound::accept(&env.core, text(&cid, principal.clone(), &long))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
    assert_eq!(out.parts.len(), 2, "2,700 characters at Twilio's 1,600");
    loop {
        let ids = env.take_enqueued();
        if ids.is_empty() {
            break;
        }
        for id in ids {
            outbound::process_send(&env.core, &id).await.unwrap();
        }
    }
    let bodies = env.sent_texts();
    assert_eq!(bodies.len(), 2);
    assert!(
        bodies[0].starts_with("*Answer*\n\nThis is a sentence"),
        "{}",
        bodies[0]
    );
    assert!(bodies.iter().all(|b| b.chars().count() <= 1600));

    // The person says STOP: the agent is refused at once, window or not.
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("STOP"),
        "test",
        env.core.now(),
    )
    .await
    .unwrap();
    let out = outbound::accept(&env.core, text(&cid, principal.clone(), "Still there?"))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
}

#[tokio::test]
async fn outside_the_window_an_approved_agent_is_refused() {
    let env = env_with(&[]).await;
    let cid = person_who_wrote(&env.core).await;
    let (principal, automation) = agent(&env.core, true).await;
    approve(&env.core, &automation, "approver@x").await.unwrap();
    env.clock.advance(Duration::hours(25));
    let out = outbound::accept(&env.core, text(&cid, principal, "Any news?"))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Blocked);
    // No opt-in, and the conversation is over: the consent gate refuses first.
    assert_eq!(out.decision.decision.reason(), Some(Gate::NoConsent));
    assert!(env.take_enqueued().is_empty());
}

#[tokio::test]
async fn an_agent_approved_for_templates_only_may_not_reply_in_free_text() {
    let env = env_with(&[(
        "WA_TEMPLATE_TASK_REMINDER",
        "HX00000000000000000000000000000001",
    )])
    .await;
    heimdall_domain::templates::register_from_settings(&env.core)
        .await
        .unwrap();
    let cid = person_who_wrote(&env.core).await;
    // Even with an opt-in on record, free text needs an automation approved for it.
    heimdall_domain::consent::record_opt_in(
        &env.core.db.conn,
        &cid,
        Channel::WhatsApp,
        None,
        heimdall_domain::consent::ConsentSource::Api,
        &heimdall_domain::testing::api_evidence(),
        "test",
        false,
        env.core.now(),
    )
    .await
    .unwrap();
    let key = accounts::create_api_key(&env.core, "n8n", "creator@x", &Scopes::all())
        .await
        .unwrap();
    // An automation must allow something.
    assert!(matches!(
        authz::create_automation(&env.core, "Nothing", &key.id, &[], false, "creator@x").await,
        Err(AutomationError::NoTemplates)
    ));
    let automation = authz::create_automation(
        &env.core,
        "Reminders",
        &key.id,
        &["task_reminder".to_string()],
        false,
        "creator@x",
    )
    .await
    .unwrap();
    approve(&env.core, &automation.id, "approver@x")
        .await
        .unwrap();
    let principal = ApiPrincipal {
        key_id: Some(key.id.clone()),
        name: "n8n".into(),
    };
    let out = outbound::accept(&env.core, text(&cid, principal, "Hi"))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::NotAuthorized));
    let why = out
        .decision
        .verdicts
        .iter()
        .find(|v| v.gate == Gate::NotAuthorized)
        .map(|v| format!("{:?}", v.verdict))
        .unwrap_or_default();
    assert!(why.contains("may only send approved templates"), "{why}");
}

#[tokio::test]
async fn the_bootstrap_key_replies_in_free_text_only_when_a_setting_says_so() {
    let bootstrap = || ApiPrincipal {
        key_id: None,
        name: "bootstrap".into(),
    };
    let off = env_with(&[]).await;
    let cid = person_who_wrote(&off.core).await;
    let out = outbound::accept(&off.core, text(&cid, bootstrap(), "Hi"))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Blocked, "off by default");

    let on = env_with(&[("HEIMDALL_API_KEY_FREE_FORM", "true")]).await;
    let cid = person_who_wrote(&on.core).await;
    let out = outbound::accept(&on.core, text(&cid, bootstrap(), "Hi"))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
    on.clock.advance(Duration::hours(25));
    let out = outbound::accept(&on.core, text(&cid, bootstrap(), "Hi again"))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Blocked, "outside the window");
}

//! The preference page's rules, against real storage (SQLite by default;
//! PostgreSQL when the run asks for it): a link opens only its own
//! person's page and is stored as a hash; withdrawing one purpose stops
//! exactly it (under a consent from before purposes too), everything stops
//! all; nothing but START from the number resumes.

use sea_orm::EntityTrait;

use heimdall_domain::access::authz;
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::consent::preferences::{self, PurposeState, Withdrawal};
use heimdall_domain::consent::{self, ConsentEvidence, ConsentSource};
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::preference_link;
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::sending::outbound;
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core};

const PHONE: &str = "+4791234567";

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
        (
            "HEIMDALL_ERASURE_KEY",
            "preference-test-erasure-key-0123456789abcdef",
        ),
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    heimdall_domain::testing::approved_template(&env.core, "spring_offer", "MARKETING").await;
    env
}

/// A contact with a WhatsApp consent: for `purposes`, or (`None`) one
/// recorded before purposes existed.
async fn person(core: &Core, purposes: Option<&[&str]>) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: PHONE.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let evidence = ConsentEvidence {
        page_url: Some("https://example.com/signup".into()),
        consent_text_version: Some("v1".into()),
        ..Default::default()
    };
    let names: Vec<String> = purposes
        .unwrap_or_default()
        .iter()
        .map(|s| s.to_string())
        .collect();
    if purposes.is_some() {
        consent::record_opt_ins(
            &core.db.conn,
            &c.id,
            Channel::WhatsApp,
            &names,
            ConsentSource::Api,
            &evidence,
            "test",
            false,
            core.now(),
        )
        .await
        .unwrap();
    } else {
        consent::record_opt_in(
            &core.db.conn,
            &c.id,
            Channel::WhatsApp,
            None,
            ConsentSource::Api,
            &evidence,
            "test",
            false,
            core.now(),
        )
        .await
        .unwrap();
    }
    c.id
}

async fn reason(core: &Core, contact_id: &str, template: &str) -> Option<Gate> {
    let variables: &[(&str, &str)] = if template == "task_reminder" {
        &[("task_name", "x"), ("due_time", "y")]
    } else {
        &[("name", "x")]
    };
    let send = heimdall_domain::testing::template_send(contact_id, template, variables);
    let out = outbound::accept(core, send).await.unwrap();
    out.decision.decision.reason()
}

fn state(view: &preferences::PreferenceView, channel: Channel, purpose: &str) -> PurposeState {
    view.channels
        .iter()
        .find(|c| c.channel == channel)
        .unwrap()
        .purposes
        .iter()
        .find(|p| p.purpose.name == purpose)
        .unwrap()
        .state
        .clone()
}

#[tokio::test]
async fn withdrawing_one_purpose_stops_it_alone_and_everything_stops_all() {
    let env = env().await;
    let core = &env.core;
    let id = person(core, Some(&["service", "marketing"])).await;
    let token = preferences::new_link(&core.db.conn, &id, core.now())
        .await
        .unwrap();
    // Stored as its hash only.
    let stored = preference_link::Entity::find()
        .all(&core.db.conn)
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0].token_hash, token);
    assert!(!stored[0].token_hash.contains(&token));

    let view = preferences::view(core, &token).await.unwrap().unwrap();
    assert_eq!(view.number_hint, "ending in 4567");
    assert!(matches!(
        state(&view, Channel::WhatsApp, "marketing"),
        PurposeState::Receiving { .. }
    ));
    assert_eq!(
        state(&view, Channel::Sms, "service"),
        PurposeState::NotAgreed
    );

    let view = preferences::withdraw(
        core,
        &token,
        &Withdrawal::Purpose {
            channel: Channel::WhatsApp,
            purpose: "marketing".into(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert!(matches!(
        state(&view, Channel::WhatsApp, "marketing"),
        PurposeState::Stopped { .. }
    ));
    assert_eq!(
        reason(core, &id, "spring_offer").await,
        Some(Gate::Suppressed)
    );
    assert_eq!(reason(core, &id, "task_reminder").await, None);

    let view = preferences::withdraw(core, &token, &Withdrawal::Everything)
        .await
        .unwrap()
        .unwrap();
    assert!(!view.receiving_any());
    assert_eq!(
        reason(core, &id, "task_reminder").await,
        Some(Gate::Suppressed)
    );

    // Only START from the number resumes.
    inbound::handle_message(
        core,
        InboundMessage {
            provider: "twilio".into(),
            provider_message_id: "SMstart1".into(),
            channel: Channel::WhatsApp,
            from: format!("whatsapp:{PHONE}"),
            to: None,
            body: Some("START".into()),
            media: vec![],
            button_text: None,
            button_payload: None,
            profile_name: None,
            received_at: core.now(),
        },
    )
    .await
    .unwrap();
    assert_eq!(reason(core, &id, "task_reminder").await, None);
}

#[tokio::test]
async fn a_purpose_is_withdrawn_under_a_consent_from_before_purposes_too() {
    let env = env().await;
    let core = &env.core;
    let id = person(core, None).await;
    let token = preferences::new_link(&core.db.conn, &id, core.now())
        .await
        .unwrap();
    preferences::withdraw(
        core,
        &token,
        &Withdrawal::Purpose {
            channel: Channel::WhatsApp,
            purpose: "service".into(),
        },
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(
        reason(core, &id, "task_reminder").await,
        Some(Gate::Suppressed)
    );
    // The consent still covers marketing.
    assert_eq!(reason(core, &id, "spring_offer").await, None);
}

#[tokio::test]
async fn a_link_opens_nothing_but_its_own_page() {
    let env = env().await;
    let core = &env.core;
    let id = person(core, Some(&["service"])).await;
    for bad in [
        "",
        "short",
        "AAAAAAAAAAAAAAAAAAAAAA",
        "../../etc/passwd",
        "a'; DROP TABLE consents; --",
    ] {
        assert!(
            preferences::view(core, bad).await.unwrap().is_none(),
            "{bad}"
        );
        assert!(preferences::withdraw(core, bad, &Withdrawal::Everything)
            .await
            .unwrap()
            .is_none());
    }
    assert_eq!(
        reason(core, &id, "task_reminder").await,
        None,
        "nothing changed"
    );
    let token = preferences::new_link(&core.db.conn, &id, core.now())
        .await
        .unwrap();
    let err = preferences::withdraw(
        core,
        &token,
        &Withdrawal::Purpose {
            channel: Channel::WhatsApp,
            purpose: "raffles".into(),
        },
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("raffles"));
    assert_eq!(
        reason(core, &id, "task_reminder").await,
        None,
        "nothing changed"
    );
}

#[tokio::test]
async fn an_erased_persons_links_open_nothing() {
    let env = env().await;
    let core = &env.core;
    let id = person(core, Some(&["service"])).await;
    let token = preferences::new_link(&core.db.conn, &id, core.now())
        .await
        .unwrap();
    assert!(preferences::view(core, &token).await.unwrap().is_some());
    heimdall_domain::privacy::erase(core, &id, "asked by letter", "staff:admin")
        .await
        .unwrap();
    assert!(preferences::view(core, &token).await.unwrap().is_none());
    assert!(preference_link::Entity::find()
        .all(&core.db.conn)
        .await
        .unwrap()
        .is_empty());
}

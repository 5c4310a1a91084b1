//! Consent by purpose, against real storage (SQLite by default; PostgreSQL
//! when the run asks for it): a consent covers the purposes it names and
//! no other; one recorded before purposes covers the purposes that existed
//! then and never one defined later; "STOP PROMOTIONS" stops marketing
//! only, STOP everything, and START resumes what they stopped; a template
//! goes for its own purpose; the audit chain covers a consent's purpose.

use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use heimdall_domain::compliance::gates::{Gate, Verdict};
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::consent::{self, purposes, ConsentEvidence, ConsentSource};
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::{consent as consent_row, outbound_message};
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::sending::outbound::{self, RequestedContent, SendRequest};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core};

const PHONE: &str = "+4791234567";

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let env = heimdall_domain::testing::reminder_world(extra).await;
    // A marketing template beside the utility one the settings register.
    template(&env.core, "spring_offer", "MARKETING").await;
    env
}

async fn template(core: &Core, name: &str, category: &str) -> templates::Template {
    heimdall_domain::testing::approved_template(core, name, category).await
}

fn evidence() -> ConsentEvidence {
    ConsentEvidence {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 test".into()),
        consent_text_version: Some("v1".into()),
        consent_text: Some("Yes to reminders.".into()),
        ..Default::default()
    }
}

/// A contact with WhatsApp consents for `purposes` (`None`: one recorded
/// before purposes existed).
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
    match purposes {
        Some(names) => {
            let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
            let out = consent::record_opt_ins(
                &core.db.conn,
                &c.id,
                Channel::WhatsApp,
                &names,
                ConsentSource::Api,
                &evidence(),
                "test",
                false,
                core.now(),
            )
            .await
            .unwrap();
            assert_eq!(out.len(), names.len());
        }
        None => {
            consent::record_opt_in(
                &core.db.conn,
                &c.id,
                Channel::WhatsApp,
                None,
                ConsentSource::Api,
                &evidence(),
                "test",
                false,
                core.now(),
            )
            .await
            .unwrap();
        }
    }
    c.id
}

fn send(contact_id: &str, template: &str) -> SendRequest {
    let variables: &[(&str, &str)] = if template == "task_reminder" {
        &[("task_name", "x"), ("due_time", "y")]
    } else {
        &[("name", "x")]
    };
    heimdall_domain::testing::template_send(contact_id, template, variables)
}

/// The consent gate's verdict detail and the decision's reason.
async fn try_send(core: &Core, contact_id: &str, template: &str) -> (Option<Gate>, String) {
    let out = outbound::accept(core, send(contact_id, template))
        .await
        .unwrap();
    let detail = out
        .decision
        .verdict(Gate::NoConsent)
        .map(|v| v.detail().to_string())
        .unwrap_or_default();
    (out.decision.decision.reason(), detail)
}

fn from_person(env: &TestEnv, sid: &str, body: &str) -> InboundMessage {
    InboundMessage {
        provider: "twilio".into(),
        provider_message_id: sid.into(),
        channel: Channel::WhatsApp,
        from: format!("whatsapp:{PHONE}"),
        to: None,
        body: Some(body.into()),
        media: vec![],
        button_text: None,
        button_payload: None,
        profile_name: None,
        received_at: env.core.now(),
    }
}

#[tokio::test]
async fn the_two_purposes_exist_and_templates_are_tagged_by_category() {
    let env = env_with(&[]).await;
    let db = &env.core.db.conn;
    let all = purposes::list(db).await.unwrap();
    let names: Vec<(&str, bool, bool)> = all
        .iter()
        .map(|p| (p.name.as_str(), p.marketing, p.legacy))
        .collect();
    assert_eq!(
        names,
        vec![("marketing", true, true), ("service", false, true)]
    );
    let reminder = templates::find_by_name(db, "task_reminder")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reminder.purpose.as_deref(), Some("service"));
    let offer = templates::find_by_name(db, "spring_offer")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.purpose.as_deref(), Some("marketing"));
    // A MARKETING template cannot be tagged with a purpose that is not
    // marketing: a consent to reminders would let it go.
    let err = templates::set_purpose(db, &offer.id, "service")
        .await
        .unwrap_err();
    assert!(err.to_string().contains("marketing"), "{err}");
    assert!(templates::set_purpose(db, &reminder.id, "nonsense")
        .await
        .is_err());
}

#[tokio::test]
async fn a_consent_covers_the_purposes_it_names_and_no_other() {
    let env = env_with(&[]).await;
    let core = &env.core;
    let id = person(core, Some(&["service"])).await;
    let (reason, detail) = try_send(core, &id, "task_reminder").await;
    assert_eq!(reason, None, "{detail}");
    assert!(detail.contains("for service"), "{detail}");
    let (reason, detail) = try_send(core, &id, "spring_offer").await;
    assert_eq!(reason, Some(Gate::NoConsent));
    assert!(detail.contains("marketing"), "{detail}");
    // Each message records the purpose it was checked for.
    let purposes: Vec<Option<String>> = outbound_message::Entity::find()
        .filter(outbound_message::Column::ContactId.eq(&id))
        .all(&core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.purpose)
        .collect();
    assert!(purposes.contains(&Some("service".into())));
    assert!(purposes.contains(&Some("marketing".into())));
    // A consent naming a purpose nobody defined is refused, and records nothing.
    let err = consent::record_opt_ins(
        &core.db.conn,
        &id,
        Channel::Sms,
        &["raffles".to_string()],
        ConsentSource::Api,
        &evidence(),
        "test",
        false,
        core.now(),
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("raffles"), "{err}");
    let sms_rows = consent_row::Entity::find()
        .filter(consent_row::Column::ContactId.eq(&id))
        .filter(consent_row::Column::Channel.eq("sms"))
        .all(&core.db.conn)
        .await
        .unwrap();
    assert!(sms_rows.is_empty());
}

#[tokio::test]
async fn a_consent_from_before_purposes_covers_only_the_purposes_that_existed_then() {
    let env = env_with(&[]).await;
    let core = &env.core;
    let db = &core.db.conn;
    let id = person(core, None).await;
    assert_eq!(try_send(core, &id, "task_reminder").await.0, None);
    let (reason, detail) = try_send(core, &id, "spring_offer").await;
    assert_eq!(reason, None, "{detail}");
    assert!(detail.contains("recorded before purposes"), "{detail}");
    // A purpose defined later is not covered by it.
    purposes::create(
        db,
        &purposes::NewPurpose {
            name: "surveys".into(),
            label: "Surveys".into(),
            description: String::new(),
            marketing: false,
        },
        "admin@example.com",
        core.now(),
    )
    .await
    .unwrap();
    let survey = template(core, "survey_invite", "UTILITY").await;
    templates::set_purpose(db, &survey.id, "surveys")
        .await
        .unwrap();
    let (reason, detail) = try_send(core, &id, "survey_invite").await;
    assert_eq!(reason, Some(Gate::NoConsent));
    assert!(detail.contains("surveys"), "{detail}");
}

#[tokio::test]
async fn stop_promotions_stops_marketing_only_stop_stops_everything_and_start_resumes_both() {
    let env = env_with(&[]).await;
    let core = &env.core;
    let id = person(core, Some(&["service", "marketing"])).await;
    assert_eq!(try_send(core, &id, "spring_offer").await.0, None);

    let out = inbound::handle_message(core, from_person(&env, "SMpromo1", "Stop promotions!"))
        .await
        .unwrap();
    match out {
        inbound::InboundOutcome::Stored {
            reply_message_id, ..
        } => assert!(reply_message_id.is_some(), "the opt-out is confirmed"),
        other => panic!("{other:?}"),
    }
    let offer = outbound::accept(core, send(&id, "spring_offer"))
        .await
        .unwrap();
    assert_eq!(offer.decision.decision.reason(), Some(Gate::Suppressed));
    assert!(matches!(
        offer.decision.verdict(Gate::Suppressed),
        Some(Verdict::Block { detail }) if detail.contains("for marketing")
    ));
    assert_eq!(try_send(core, &id, "task_reminder").await.0, None);
    // The marketing consent itself is revoked; the service one stands.
    let rows = consent_row::Entity::find()
        .filter(consent_row::Column::ContactId.eq(&id))
        .all(&core.db.conn)
        .await
        .unwrap();
    for r in &rows {
        match r.purpose.as_deref() {
            Some("marketing") => assert!(r.revoked_at.is_some()),
            Some("service") => assert!(r.revoked_at.is_none()),
            other => panic!("{other:?}"),
        }
    }

    inbound::handle_message(core, from_person(&env, "SMstop1", "STOP"))
        .await
        .unwrap();
    assert_eq!(
        try_send(core, &id, "task_reminder").await.0,
        Some(Gate::Suppressed)
    );

    inbound::handle_message(core, from_person(&env, "SMstart1", "START"))
        .await
        .unwrap();
    let out = outbound::accept(core, send(&id, "task_reminder"))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
    let out = outbound::accept(core, send(&id, "spring_offer"))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:#?}", out.decision);
}

#[tokio::test]
async fn marketing_stop_phrases_are_configured_per_language_and_never_narrow_a_stop() {
    // A full opt-out cannot be configured as marketing only.
    for bad in [
        "en: STOP",
        "en: unsubscribe",
        "en: stop texting me",
        "STOP ADS",
    ] {
        assert!(
            heimdall_domain::settings::parse_marketing_stop_phrases(bad).is_err(),
            "{bad} accepted"
        );
    }
    let env = env_with(&[("HEIMDALL_MARKETING_STOP_PHRASES", "nb: STOPP REKLAME")]).await;
    let core = &env.core;
    let id = person(core, Some(&["service", "marketing"])).await;
    inbound::handle_message(core, from_person(&env, "SMnb1", "Stopp reklame"))
        .await
        .unwrap();
    assert_eq!(
        try_send(core, &id, "spring_offer").await.0,
        Some(Gate::Suppressed)
    );
    assert_eq!(try_send(core, &id, "task_reminder").await.0, None);
    // The English default is replaced, not added to.
    inbound::handle_message(core, from_person(&env, "SMen1", "STOP PROMOTIONS"))
        .await
        .unwrap();
    let kinds: Vec<Option<String>> = heimdall_domain::entities::inbound_message::Entity::find()
        .all(&core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.keyword_action)
        .collect();
    assert!(kinds.contains(&Some("optoutmarketing".into())));
    assert!(kinds.contains(&None), "{kinds:?}");
}

#[tokio::test]
async fn a_message_goes_for_its_templates_purpose_and_a_named_purpose_must_exist() {
    let env = env_with(&[]).await;
    let core = &env.core;
    let id = person(core, Some(&["service"])).await;
    let mut req = send(&id, "spring_offer");
    req.purpose = Some("service".into());
    let err = outbound::accept(core, req).await.unwrap_err();
    assert!(err.to_string().contains("its own purpose"), "{err}");
    let mut req = send(&id, "task_reminder");
    req.content = RequestedContent::Text {
        body: "Your viewing is at five.".into(),
        media_url: None,
        format: heimdall_domain::channels::formatting::TextFormat::AsIs,
        reply_to: None,
    };
    req.channel = Channel::Sms;
    req.purpose = Some("nosuch".into());
    let err = outbound::accept(core, req).await.unwrap_err();
    assert!(err.to_string().contains("not a defined purpose"), "{err}");
}

#[tokio::test]
async fn a_consents_purpose_is_covered_by_the_audit_chain() {
    let env = env_with(&[]).await;
    let core = &env.core;
    let db = &core.db.conn;
    let id = person(core, Some(&["service"])).await;
    // One from before purposes too: it verifies without a purpose.
    consent::record_opt_in(
        db,
        &id,
        Channel::Sms,
        None,
        ConsentSource::Api,
        &evidence(),
        "test",
        false,
        core.now(),
    )
    .await
    .unwrap();
    heimdall_domain::audit::chain::seal(core).await.unwrap();
    let report = heimdall_domain::audit::chain::verify(db).await.unwrap();
    assert!(report.intact(), "{report:?}");
    // Widening a consent by hand is caught.
    use sea_orm::ConnectionTrait;
    db.execute_unprepared("UPDATE consents SET purpose = 'marketing' WHERE purpose = 'service'")
        .await
        .unwrap();
    let report = heimdall_domain::audit::chain::verify(db).await.unwrap();
    assert!(!report.intact());
}

//! The consent ledger against real storage (SQLite by default; PostgreSQL
//! and Redis when the run asks for them): one regression test for each way
//! a STOP could be undone or a consent invented, tried as an adversary
//! would, and the rule that only the person's own number lifts an opt-out.

use heimdall_domain::compliance::gates::ConsentStatus;
use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::authz::ApiPrincipal;
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::consent::{
    self, ConsentEvidence, ConsentSource, OptInOutcome, OptOutSource, Scope,
};
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::{consent as consent_row, contact, outbound_message, suppression};
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::optin::{
    self, ChannelStatus, ChannelText, FormInput, RequestEvidence, SubmissionInput, SubmitOutcome,
};
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{Channel, Core};

const PHONE: &str = "+4791234567";
const UA: &str = "Mozilla/5.0 (X11; Linux x86_64) Firefox/140.0";

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let env = heimdall_domain::testing::reminder_world(extra).await;
    env
}

async fn env() -> TestEnv {
    env_with(&[]).await
}

fn api_evidence() -> ConsentEvidence {
    ConsentEvidence {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 test".into()),
        consent_text_version: Some("v1".into()),
        consent_text: Some("I agree to receive reminders.".into()),
        ..Default::default()
    }
}

/// A contact named Kari with an active WhatsApp consent from the API.
async fn kari(core: &Core) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: PHONE.into(),
            name: Some("Kari".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let out = consent::record_opt_in(
        &core.db.conn,
        &c.id,
        Channel::WhatsApp,
        None,
        ConsentSource::Api,
        &api_evidence(),
        "api_key:bootstrap",
        false,
        core.now(),
    )
    .await
    .unwrap();
    assert!(matches!(out, OptInOutcome::Active { .. }), "{out:?}");
    c.id
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
            principal: ApiPrincipal {
                key_id: None,
                name: "bootstrap".into(),
            },
            source: MessageSource::Api,
            reminder_id: None,
        },
        idempotency_key: None,
        purpose: None,
    }
}

async fn active_suppressions(core: &Core, contact_id: &str) -> u64 {
    suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .filter(suppression::Column::LiftedAt.is_null())
        .count(&core.db.conn)
        .await
        .unwrap()
}

async fn consent_rows(core: &Core, contact_id: &str) -> Vec<consent_row::Model> {
    consent_row::Entity::find()
        .filter(consent_row::Column::ContactId.eq(contact_id))
        .all(&core.db.conn)
        .await
        .unwrap()
}

fn form_input(slug: &str) -> FormInput {
    FormInput {
        slug: slug.into(),
        title: "Open house".into(),
        intro: "Updates about this home.".into(),
        fields: vec![],
        thank_you: "Thanks!".into(),
        channels: vec![ChannelText {
            channel: Channel::WhatsApp,
            consent_text: "Yes, send me updates on WhatsApp.".into(),
            purpose: None,
        }],
        double_opt_in: false,
        whatsapp_confirmation_template: None,
        active: None,
    }
}

fn submission(name: &str) -> SubmissionInput {
    SubmissionInput::from_pairs([
        ("name".to_string(), name.to_string()),
        ("phone".to_string(), PHONE.to_string()),
        ("channel".to_string(), "whatsapp".to_string()),
        ("text_version_whatsapp".to_string(), "1".to_string()),
        ("website".to_string(), String::new()),
    ])
}

fn visitor(core: &Core) -> RequestEvidence {
    RequestEvidence {
        ip: "198.51.100.9".parse().unwrap(),
        user_agent: Some(UA.into()),
        page_url: optin::public_url(core, "/optin/open-house"),
    }
}

/// Finding 1: an anonymous form submission (single opt-in) with a STOPped
/// person's number neither lifts the STOP nor renames the contact; only a
/// START from the number does.
#[tokio::test]
async fn a_public_form_never_undoes_a_stop_nor_renames_the_contact() {
    let env = env().await;
    let core = &env.core;
    let cid = kari(core).await;
    inbound::handle_message(core, from_person(&env, "SMstop1", "STOP"))
        .await
        .unwrap();
    assert_eq!(active_suppressions(core, &cid).await, 1);

    let form = optin::create_form(core, &form_input("open-house"), "staff:1")
        .await
        .unwrap();
    let out = optin::submit(core, &form, None, &submission("Mallory"), &visitor(core))
        .await
        .unwrap();
    let SubmitOutcome::Recorded(receipt) = out else {
        panic!("discarded")
    };
    assert!(!receipt.contact_created);
    assert_eq!(
        receipt.channels[0].status,
        ChannelStatus::NeedsProofFromNumber
    );
    // The STOP stands; the claim is only a pending consent.
    assert_eq!(active_suppressions(core, &cid).await, 1);
    let latest = heimdall_domain::consent::current_consent(&core.db.conn, &cid, Channel::WhatsApp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.status, ConsentStatus::Pending);
    assert_eq!(latest.strength, "declared");
    // Nothing was sent to the person (no confirmation to someone who said STOP).
    assert_eq!(
        outbound_message::Entity::find()
            .filter(outbound_message::Column::Source.eq("optin"))
            .count(&core.db.conn)
            .await
            .unwrap(),
        0
    );
    // The name the visitor typed did not replace the contact's.
    let c = contact::Entity::find_by_id(cid.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.name.as_deref(), Some("Kari"));
    // A send is still refused.
    let out = outbound::accept(core, reminder(&cid)).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
    // Submitting again adds nothing.
    optin::submit(core, &form, None, &submission("Mallory"), &visitor(core))
        .await
        .unwrap();
    assert_eq!(consent_rows(core, &cid).await.len(), 2);

    // The person themselves sends START: the suppression is lifted with the
    // inbound message as proof, and the held consent counts now.
    inbound::handle_message(core, from_person(&env, "SMstart1", "START"))
        .await
        .unwrap();
    assert_eq!(active_suppressions(core, &cid).await, 0);
    let lifted = heimdall_domain::consent::suppressions(core, &cid)
        .await
        .unwrap();
    assert_eq!(lifted[0].lift_ref.as_deref(), Some("SMstart1"));
    let latest = heimdall_domain::consent::current_consent(&core.db.conn, &cid, Channel::WhatsApp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.status, ConsentStatus::Active);
    assert_eq!(latest.strength, "number");
    let out = outbound::accept(core, reminder(&cid)).await.unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:?}", out.decision);
}

/// Finding 1, the other claimants: an API call, an import and staff cannot
/// lift an opt-out either; the API says so (pending, needs proof).
#[tokio::test]
async fn no_api_call_import_or_staff_consent_lifts_an_opt_out() {
    let env = env().await;
    let core = &env.core;
    let cid = kari(core).await;
    consent::opt_out(
        &core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        Scope::All,
        OptOutSource::Provider,
        Some("21610"),
        "provider",
        core.now(),
    )
    .await
    .unwrap();
    for source in [
        ConsentSource::Api,
        ConsentSource::Staff,
        ConsentSource::Keyword,
    ] {
        let mut evidence = api_evidence();
        if source == ConsentSource::Keyword {
            // An API client claiming a keyword is still only its word.
            evidence.inbound_message_id = Some("SMclaimed".into());
        }
        let out = consent::record_opt_in(
            &core.db.conn,
            &cid,
            Channel::WhatsApp,
            None,
            source,
            &evidence,
            "api_key:bootstrap",
            false,
            core.now(),
        )
        .await
        .unwrap();
        match out {
            OptInOutcome::NeedsProofFromNumber { consent, opted_out } => {
                assert_eq!(consent.status, ConsentStatus::Pending);
                assert!(opted_out.reason.contains("provider"), "{opted_out:?}");
            }
            other => panic!("{source:?}: {other:?}"),
        }
        assert_eq!(active_suppressions(core, &cid).await, 1, "{source:?}");
    }
    let out = outbound::accept(core, reminder(&cid)).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
    // An import refuses the row and says why.
    let csv = format!(
        "phone,channel,source,captured_at,consent_text_version,ip,user_agent\n{PHONE},whatsapp,web_form,2026-11-01T10:00:00Z,v1,203.0.113.7,Mozilla/5.0\n"
    );
    let report = optin::import_consents(core, &csv, "admin@example.com")
        .await
        .unwrap();
    assert_eq!(report.imported, 0, "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(report.refused[0].reason.contains("opted out"), "{report:?}");
    assert_eq!(active_suppressions(core, &cid).await, 1);
}

/// Finding 2: a "YES" (or START) from someone with nothing pending and no
/// opt-out is a message, not a consent; a button is read by its payload.
#[tokio::test]
async fn yes_or_start_with_nothing_asked_creates_no_consent() {
    let env = env().await;
    let core = &env.core;
    for (sid, body) in [("SMyes1", "Yes"), ("SMstart9", "START")] {
        let out = inbound::handle_message(core, from_person(&env, sid, body))
            .await
            .unwrap();
        match out {
            inbound::InboundOutcome::Stored {
                reply_message_id, ..
            } => assert!(reply_message_id.is_none(), "no 'you are subscribed' reply"),
            other => panic!("{other:?}"),
        }
    }
    let c = contacts::find_by_phone(
        &core.db.conn,
        &heimdall_domain::PhoneNumber::parse(PHONE, phonenumber::country::Id::NO).unwrap(),
    )
    .await
    .unwrap()
    .expect("the writer became a contact");
    assert!(consent_rows(core, &c.id).await.is_empty());
    let out = outbound::accept(core, reminder(&c.id)).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::NoConsent));

    // A pending double opt-in: a quick-reply button whose TEXT is "Yes" but
    // whose payload answers another question confirms nothing...
    consent::record_opt_in(
        &core.db.conn,
        &c.id,
        Channel::WhatsApp,
        None,
        ConsentSource::WebForm,
        &api_evidence(),
        "optin:form",
        true,
        core.now(),
    )
    .await
    .unwrap();
    let mut button = from_person(&env, "SMbtn1", "Yes");
    button.button_text = Some("Yes".into());
    button.button_payload = Some("attending_viewing".into());
    inbound::handle_message(core, button).await.unwrap();
    let latest = heimdall_domain::consent::current_consent(&core.db.conn, &c.id, Channel::WhatsApp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.status, ConsentStatus::Pending);
    // ...but a button whose payload is the keyword does, and a "Stop"
    // button is honoured whatever its payload.
    let mut confirm = from_person(&env, "SMbtn2", "Confirm");
    confirm.button_text = Some("Confirm".into());
    confirm.button_payload = Some("YES".into());
    inbound::handle_message(core, confirm).await.unwrap();
    let latest = heimdall_domain::consent::current_consent(&core.db.conn, &c.id, Channel::WhatsApp)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.status, ConsentStatus::Active);
    assert_eq!(latest.strength, "number");
    let mut stop = from_person(&env, "SMbtn3", "Stop");
    stop.button_text = Some("Stop".into());
    stop.button_payload = Some("btn_2".into());
    inbound::handle_message(core, stop).await.unwrap();
    assert_eq!(active_suppressions(core, &c.id).await, 1);
}

/// Finding 3: the allowlist never drops a STOP, and outbound to a number
/// outside it is refused with its own reason code.
#[tokio::test]
async fn the_allowlist_honours_every_stop_and_refuses_others_by_its_own_gate() {
    let env = env_with(&[("HEIMDALL_PHONE_ALLOWLIST", "+4790000001")]).await;
    let core = &env.core;
    let cid = kari(core).await;
    let out = outbound::accept(core, reminder(&cid)).await.unwrap();
    assert_eq!(out.state, MessageState::Blocked);
    assert_eq!(out.decision.decision.reason(), Some(Gate::NotAllowlisted));
    inbound::handle_message(core, from_person(&env, "SMstop7", "STOP"))
        .await
        .unwrap();
    assert_eq!(active_suppressions(core, &cid).await, 1);
    // Anything else from outside the list is ignored.
    let out = inbound::handle_message(core, from_person(&env, "SMhi7", "hello"))
        .await
        .unwrap();
    assert_eq!(out, inbound::InboundOutcome::Ignored);
}

/// Finding 9 (settings): a change stored by one process takes effect in
/// another within its refresh, with no restart: the allowlist here.
#[tokio::test]
async fn a_setting_changed_in_one_process_applies_in_another() {
    let a = env().await;
    let b = a.sibling(&[]).await;
    let cid = kari(&a.core).await;
    let out = outbound::accept(&b.core, reminder(&cid)).await.unwrap();
    assert_eq!(out.state, MessageState::Queued);
    heimdall_domain::settings::runtime::store(
        &a.core,
        heimdall_domain::settings::runtime::keys::PHONE_ALLOWLIST,
        serde_json::json!("+4790000001"),
        "admin@example.com",
    )
    .await
    .unwrap();
    // Process B picks it up on its next refresh (every second in a real
    // process; called here instead of waiting).
    assert!(heimdall_domain::settings::runtime::refresh(&b.core)
        .await
        .unwrap());
    let out = outbound::accept(&b.core, reminder(&cid)).await.unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::NotAllowlisted));
    // And the tier limit Meta reports to one process.
    inbound::set_tier_limit(&a.core, Some(2000), "meta")
        .await
        .unwrap();
    heimdall_domain::settings::runtime::refresh(&b.core)
        .await
        .unwrap();
    assert_eq!(b.core.limits.tier_limit(), Some(2000));
}

/// A STOP from Kari (`sid`) in `env`'s local spool, as a webhook leaves it
/// there while the database is away.
async fn spool_stop(env: &TestEnv, sid: &str) {
    let msg = from_person(env, sid, "STOP");
    let record = inbound::WebhookRecord {
        provider: "twilio".into(),
        path: "/webhooks/twilio/inbound".into(),
        verdict: "accepted".into(),
        headers: Default::default(),
        body: String::new(),
        event_id: Some(sid.into()),
        received_at: env.core.now(),
    };
    inbound::spool(
        &env.core,
        &inbound::SpooledEvent {
            record,
            event: inbound::SpooledPayload::Message(msg),
        },
    )
    .await
    .unwrap();
}

/// A process replays its own spool by itself as soon as the database takes it
/// (its refresher, every second), not only when the cluster-wide replay job
/// happens to run in it: meanwhile every process holds its sends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_replays_its_own_spool_by_itself() {
    let a = env().await;
    let cid = kari(&a.core).await;
    spool_stop(&a, "SMownspool").await;
    assert!(heimdall_domain::store::spool::spool_pending(&a.core));
    let refresher = tokio::spawn(heimdall_domain::core::run_refresher(a.core.clone()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while heimdall_domain::store::spool::spool_pending(&a.core) {
        assert!(
            std::time::Instant::now() < deadline,
            "the spool was not replayed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    refresher.abort();
    assert!(
        heimdall_domain::consent::opted_out(&a.core.db.conn, &cid, Channel::WhatsApp, None)
            .await
            .unwrap()
            .is_some()
    );
}

/// Finding 9 (spool): a STOP waiting in one process's local spool holds the
/// sends of every process (through Redis), not only its own.
#[tokio::test]
async fn a_stop_waiting_in_another_processes_spool_holds_this_ones_sends() {
    let a = env().await;
    if a.core.redis.is_none() {
        // Without Redis nothing is shared between processes: the spool's
        // hold is per process, as the README says. The rule is tested in
        // the PostgreSQL + Redis run.
        assert!(!heimdall_domain::store::spool::spool_pending(&a.core));
        return;
    }
    let b = a.sibling(&[]).await;
    let cid = kari(&a.core).await;
    spool_stop(&a, "SMspooled").await;
    heimdall_domain::store::spool::share_spool_state(&b.core).await;
    assert!(heimdall_domain::store::spool::spool_pending(&b.core));
    let out = outbound::accept(&b.core, reminder(&cid)).await.unwrap();
    b.take_enqueued();
    let res = outbound::process_send(&b.core, &out.message_id)
        .await
        .unwrap();
    assert_eq!(res, outbound::SendResult::NotDue);
    assert_eq!(b.provider.count(), 0);
    // A replays its spool (the STOP goes in); B's hold ends with it and
    // the STOP blocks the message.
    inbound::replay_spool(&a.core).await.unwrap();
    heimdall_domain::store::spool::share_spool_state(&b.core).await;
    assert!(!heimdall_domain::store::spool::spool_pending(&b.core));
    let res = outbound::process_send(&b.core, &out.message_id)
        .await
        .unwrap();
    assert_eq!(res, outbound::SendResult::Blocked(Gate::Suppressed));
    assert_eq!(b.provider.count(), 0);
}

/// A consent row whose status this build does not know (written by hand, or
/// by a later version) is never read as consent: reading it is an error and
/// nothing is accepted for the person. (Before the status was a type,
/// anything but `revoked` and `pending` counted as active.)
#[tokio::test]
async fn a_consent_status_this_build_does_not_know_is_never_read_as_consent() {
    let env = env().await;
    let id = kari(&env.core).await;
    consent_row::Entity::update_many()
        .col_expr(
            consent_row::Column::Status,
            sea_orm::sea_query::Expr::value("opted_in"),
        )
        .filter(consent_row::Column::ContactId.eq(id.as_str()))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    let read = consent::current_consent(&env.core.db.conn, &id, Channel::WhatsApp).await;
    assert!(read.is_err(), "{read:?}");
    let accepted = outbound::accept(&env.core, reminder(&id)).await;
    assert!(accepted.is_err(), "{accepted:?}");
    assert_eq!(
        outbound_message::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        0
    );
}

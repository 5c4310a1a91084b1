//! Erasure that keeps the STOP (`privacy::erase`, `consent::tombstone`),
//! against real storage (SQLite by default; PostgreSQL and Redis when the
//! run asks for them): nothing of the person is left in any table, the
//! audit chain still verifies, nothing is sent after the erasure, and no
//! way of bringing the number back (a new contact by the API, staff, a
//! public form, an import; a send by number) gets around the tombstone
//! until the number itself says START.

use std::collections::BTreeMap;

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, Set, Statement};

use heimdall_domain::access::authz::ApiPrincipal;
use heimdall_domain::audit::chain;
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::compliance::message_source::MessageSource;
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::consent::{self, OptInOutcome, StaffOptIn};
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::{contact, erased_number, outbound_message, tool_call};
use heimdall_domain::inbound::{self, InboundMessage, InboundOutcome};
use heimdall_domain::optin::{
    self, ChannelStatus, ChannelText, FormInput, RequestEvidence, SubmissionInput, SubmitOutcome,
};
use heimdall_domain::privacy::{self, ErasureError, KeyProblem};
use heimdall_domain::sending::outbound::{
    self, Origin, Recipient, RequestedContent, SendRequest, SendResult,
};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{Channel, Core};

const KEY: &str = "erasure-key-for-tests-0123456789abcdef";
const NAME: &str = "Ada Lovelace";
const UA: &str = "Mozilla/5.0 (ErasureTest) Mobile";

async fn env() -> TestEnv {
    env_with(&[("HEIMDALL_ERASURE_KEY", KEY)]).await
}

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let env = heimdall_domain::testing::reminder_world(extra).await;
    env
}

fn reminder(to: Recipient) -> SendRequest {
    let mut variables = BTreeMap::new();
    variables.insert("task_name".to_string(), format!("Call {NAME}"));
    variables.insert("due_time".to_string(), "17:00".to_string());
    SendRequest {
        recipient: to,
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

fn inbound_from(core: &Core, phone: &str, id: &str, body: &str) -> InboundMessage {
    InboundMessage {
        provider: "twilio".into(),
        provider_message_id: id.into(),
        channel: Channel::WhatsApp,
        from: format!("whatsapp:{phone}"),
        to: None,
        body: Some(body.into()),
        media: vec![],
        button_text: None,
        button_payload: None,
        profile_name: Some(NAME.into()),
        received_at: core.now(),
    }
}

async fn form(core: &Core, slug: &str) -> optin::Form {
    optin::create_form(
        core,
        &FormInput {
            slug: slug.into(),
            title: "Updates".into(),
            intro: "Get updates.".into(),
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
        },
        "staff:1",
    )
    .await
    .unwrap()
}

/// A submission of `form` for `phone`, ticking WhatsApp.
async fn submit(core: &Core, form: &optin::Form, phone: &str) -> optin::SubmitReceipt {
    let input = SubmissionInput::from_pairs(vec![
        ("name".into(), NAME.into()),
        ("phone".into(), phone.into()),
        ("website".into(), String::new()),
        ("channel".into(), "whatsapp".into()),
        ("text_version_whatsapp".into(), "1".into()),
    ]);
    let evidence = RequestEvidence {
        ip: "203.0.113.77".parse().unwrap(),
        user_agent: Some(UA.into()),
        page_url: optin::public_url(core, &format!("/optin/{}?ref={phone}", form.slug)),
    };
    match optin::submit(core, form, None, &input, &evidence)
        .await
        .unwrap()
    {
        SubmitOutcome::Recorded(r) => r,
        SubmitOutcome::Discarded => panic!("discarded"),
    }
}

/// A person who signed up on a form, wrote to us, and was sent one
/// message; a second one waits in the queue.
async fn person(env: &TestEnv, phone: &str) -> (String, String) {
    let core = &env.core;
    let f = form(core, &format!("f{}", &phone[phone.len() - 4..])).await;
    let r = submit(core, &f, phone).await;
    assert_eq!(r.channels[0].status, ChannelStatus::Subscribed);
    inbound::handle_message(
        core,
        inbound_from(
            core,
            phone,
            &format!("SMhi{}", &phone[phone.len() - 4..]),
            "Hello, Ada here",
        ),
    )
    .await
    .unwrap();
    let sent = outbound::accept(core, reminder(Recipient::Contact(r.contact_id.clone())))
        .await
        .unwrap();
    assert_eq!(sent.state, MessageState::Queued, "{:?}", sent.decision);
    for id in env.take_enqueued() {
        let res = outbound::process_send(core, &id).await.unwrap();
        assert!(matches!(res, SendResult::Sent { .. }), "{res:?}");
    }
    let waiting = outbound::accept(core, reminder(Recipient::Contact(r.contact_id.clone())))
        .await
        .unwrap();
    assert_eq!(waiting.state, MessageState::Queued);
    (r.contact_id, waiting.message_id)
}

/// Every (table, column) that holds text, on either backend.
async fn text_columns(core: &Core) -> Vec<(String, String)> {
    let db = &core.db.conn;
    let backend = db.get_database_backend();
    let mut out = Vec::new();
    if backend == sea_orm::DatabaseBackend::Sqlite {
        let tables = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
            ))
            .await
            .unwrap();
        for t in tables {
            let table: String = t.try_get("", "name").unwrap();
            let cols = db
                .query_all_raw(Statement::from_string(
                    backend,
                    format!("PRAGMA table_info(\"{table}\")"),
                ))
                .await
                .unwrap();
            for c in cols {
                let ty: String = c.try_get("", "type").unwrap();
                if !ty.to_uppercase().contains("BLOB") {
                    out.push((table.clone(), c.try_get("", "name").unwrap()));
                }
            }
        }
    } else {
        let cols = db
            .query_all_raw(Statement::from_string(
                backend,
                "SELECT table_name::text AS t, column_name::text AS c FROM information_schema.columns \
                 WHERE table_schema = current_schema() \
                 AND data_type IN ('text', 'character varying', 'json', 'jsonb', 'character')",
            ))
            .await
            .unwrap();
        for c in cols {
            out.push((c.try_get("", "t").unwrap(), c.try_get("", "c").unwrap()));
        }
    }
    assert!(
        out.iter()
            .any(|(t, c)| t == "tool_calls" && c == "verdicts"),
        "the scan must see the audit rows"
    );
    out
}

/// Where `needle` is still written: (table, column, rows).
async fn found(core: &Core, needle: &str) -> Vec<(String, String, i64)> {
    let db = &core.db.conn;
    let backend = db.get_database_backend();
    let mut hits = Vec::new();
    for (table, column) in text_columns(core).await {
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                format!(
                    "SELECT COUNT(*) AS n FROM \"{table}\" WHERE LOWER(CAST(\"{column}\" AS TEXT)) LIKE '%{}%'",
                    needle.to_lowercase()
                ),
            ))
            .await
            .unwrap()
            .unwrap();
        let n: i64 = row.try_get("", "n").unwrap();
        if n > 0 {
            hits.push((table, column, n));
        }
    }
    hits
}

#[tokio::test]
async fn erasure_leaves_nothing_of_the_person_keeps_the_chain_and_sends_nothing_more() {
    let env = env().await;
    let core = &env.core;
    let phone = "+4791234567";
    let (id, waiting) = person(&env, phone).await;
    chain::seal(core).await.unwrap();
    // The scan finds them before: it can fail.
    assert!(!found(core, "4791234567").await.is_empty());
    assert!(!found(core, NAME).await.is_empty());
    let sent_before = env.provider.sent_to(phone);
    assert_eq!(sent_before, 1);

    let erased = privacy::erase(core, &id, &format!("{NAME} asked by email"), "staff:admin")
        .await
        .unwrap();
    assert_eq!(erased.contact_id, id);
    assert_eq!(erased.number_hash.len(), 64);
    assert_eq!(erased.counts.get("messages_cancelled"), Some(&1));
    assert!(erased
        .counts
        .get("audit_rows_redacted")
        .is_some_and(|n| *n >= 2));
    assert_eq!(erased.counts.get("consents_redacted"), Some(&1));
    assert_eq!(erased.counts.get("inbound_messages"), Some(&1));

    // The queued message: cancelled; its job, when a worker takes it, sends nothing.
    for job in env.take_enqueued().into_iter().chain([waiting.clone()]) {
        let res = outbound::process_send(core, &job).await.unwrap();
        assert!(
            matches!(res, SendResult::NotClaimed | SendResult::Blocked(_)),
            "{res:?}"
        );
    }
    assert_eq!(
        env.provider.sent_to(phone),
        sent_before,
        "nothing sent after erasure"
    );

    chain::seal(core).await.unwrap();
    let report = chain::verify(&core.db.conn).await.unwrap();
    assert!(report.intact(), "{:?}", report.broken().collect::<Vec<_>>());

    for needle in [
        "4791234567",
        NAME,
        "Lovelace",
        "203.0.113.77",
        UA,
        "Hello, Ada",
    ] {
        let hits = found(core, needle).await;
        assert!(hits.is_empty(), "{needle} is still in {hits:?}");
    }
    // What stays: the shell, the tombstone, the staff audit row.
    let shell = contacts::get(core, &id).await.unwrap();
    assert!(contacts::is_erased(&shell.phone), "{}", shell.phone);
    assert_eq!(shell.name, None);
    let t = erased_number::Entity::find_by_id(erased.number_hash.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("the tombstone");
    assert_eq!(t.erased_by, "staff:admin");
    assert!(t.reason.contains("[erased] asked by email"), "{}", t.reason);
    let m = outbound_message::Entity::find_by_id(waiting.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.to_address, format!("hash:{}", erased.number_hash));
    assert_eq!(m.state, MessageState::Cancelled);

    // Once is enough.
    assert!(matches!(
        privacy::erase(core, &id, "again", "staff:admin").await,
        Err(ErasureError::AlreadyErased(_))
    ));
}

#[tokio::test]
async fn nothing_gets_around_the_tombstone_until_the_number_says_start() {
    let env = env().await;
    let core = &env.core;

    // Staff (or the API) create the contact again with a consent they vouch for.
    let staff = "+4791230001";
    let (id, _) = person(&env, staff).await;
    privacy::erase(core, &id, "request", "staff:admin")
        .await
        .unwrap();
    env.take_enqueued();
    let (c, outcome) = consent::create_contact_with_opt_in(
        core,
        &ContactInput {
            phone: staff.into(),
            name: Some("Someone".into()),
            ..Default::default()
        },
        Some(&StaffOptIn {
            channel: Channel::WhatsApp,
            purposes: vec![],
            evidence: heimdall_domain::testing::api_evidence(),
            pending: false,
        }),
        "staff:1",
    )
    .await
    .unwrap();
    assert!(
        !outcome.is_empty()
            && outcome
                .iter()
                .all(|o| matches!(o, OptInOutcome::NeedsProofFromNumber { .. })),
        "{outcome:?}"
    );
    let out = outbound::accept(core, reminder(Recipient::Contact(c.id.clone())))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
    let detail = format!("{:?}", out.decision.verdict(Gate::Suppressed));
    assert!(detail.contains("asked to be erased on"), "{detail}");
    // By number, too.
    let out = outbound::accept(core, reminder(Recipient::Phone(staff.into())))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));

    // A public form.
    let by_form = "+4791230002";
    let (id, _) = person(&env, by_form).await;
    privacy::erase(core, &id, "request", "staff:admin")
        .await
        .unwrap();
    env.take_enqueued();
    let f = form(core, "again").await;
    let r = submit(core, &f, by_form).await;
    assert!(r.contact_created);
    assert_eq!(r.channels[0].status, ChannelStatus::NeedsProofFromNumber);
    let out = outbound::accept(core, reminder(Recipient::Contact(r.contact_id.clone())))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));

    // An import.
    let by_import = "+4791230003";
    let (id, _) = person(&env, by_import).await;
    privacy::erase(core, &id, "request", "staff:admin")
        .await
        .unwrap();
    env.take_enqueued();
    let csv = format!(
        "phone,channel,source,captured_at,ip,user_agent,page_url,consent_text_version,consent_text\n\
         {by_import},whatsapp,import,2026-03-14T15:09:26Z,203.0.113.1,Mozilla/5.0,https://x.example.com,v1,I agree.\n"
    );
    let report = optin::import_consents(core, &csv, "staff:1").await.unwrap();
    assert_eq!(report.imported, 0, "{report:?}");
    assert_eq!(report.refused.len(), 1, "{report:?}");
    assert!(report.refused[0].reason.contains("erased"), "{report:?}");

    // A contact made some other way with a consent recorded as active (no
    // ledger path would): the gates still block it.
    let bypass = "+4791230004";
    let (id, _) = person(&env, bypass).await;
    privacy::erase(core, &id, "request", "staff:admin")
        .await
        .unwrap();
    env.take_enqueued();
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: bypass.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    consent::record_opt_in(
        &core.db.conn,
        &c.id,
        Channel::WhatsApp,
        None,
        consent::ConsentSource::Api,
        &heimdall_domain::testing::api_evidence(),
        "test",
        false,
        core.now(),
    )
    .await
    .unwrap();
    let out = outbound::accept(core, reminder(Recipient::Contact(c.id.clone())))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));

    // HELP still gets its answer (a compliance reply).
    let help = inbound::handle_message(core, inbound_from(core, staff, "SMhelp1", "HELP"))
        .await
        .unwrap();
    let InboundOutcome::Stored {
        reply_message_id: Some(reply),
        ..
    } = help
    else {
        panic!("no HELP reply: {help:?}");
    };
    let m = outbound_message::Entity::find_by_id(reply.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(m.state, MessageState::Queued, "{:?}", m.block_reason);
    env.take_enqueued();

    // START from the number: the proof that lifts it; a send goes.
    inbound::handle_message(core, inbound_from(core, staff, "SMstart1", "START"))
        .await
        .unwrap();
    let key = consent::tombstone::ErasureKey::new(KEY);
    let t = erased_number::Entity::find_by_id(key.number_hash(staff))
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert!(t.lifted_at.is_some());
    assert_eq!(t.lift_ref.as_deref(), Some("SMstart1"));
    env.take_enqueued();
    let out = outbound::accept(core, reminder(Recipient::Contact(c_id(core, staff).await)))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Queued, "{:?}", out.decision);
    let before = env.provider.sent_to(staff);
    for id in env.take_enqueued() {
        outbound::process_send(core, &id).await.unwrap();
    }
    assert_eq!(env.provider.sent_to(staff), before + 1);
    // The other numbers stay suppressed.
    let out = outbound::accept(core, reminder(Recipient::Contact(r.contact_id)))
        .await
        .unwrap();
    assert_eq!(out.decision.decision.reason(), Some(Gate::Suppressed));
}

async fn c_id(core: &Core, phone: &str) -> String {
    contact::Entity::find()
        .filter(contact::Column::PhoneE164.eq(phone))
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .id
}

#[tokio::test]
async fn a_message_a_worker_holds_is_blocked_once_the_number_is_tombstoned() {
    let env = env().await;
    let core = &env.core;
    let phone = "+4791230010";
    let id =
        heimdall_domain::testing::contact_with_consent(core, phone, &[Channel::WhatsApp]).await;
    let out = outbound::accept(core, reminder(Recipient::Contact(id)))
        .await
        .unwrap();
    assert_eq!(out.state, MessageState::Queued);
    // Another process erased the number after this one queued the message.
    let key = consent::tombstone::ErasureKey::new(KEY);
    erased_number::ActiveModel {
        number_hash: Set(key.number_hash(phone)),
        contact_id: Set("elsewhere".into()),
        erased_at: Set(core.now()),
        erased_by: Set("staff:admin".into()),
        reason: Set("request".into()),
        lifted_at: Set(None),
        lift_ref: Set(None),
    }
    .insert_into(&core.db.conn)
    .await;
    let res = outbound::process_send(core, &out.message_id).await.unwrap();
    assert_eq!(res, SendResult::Blocked(Gate::Suppressed));
    assert_eq!(env.provider.sent_to(phone), 0);
    let evaluation = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(out.message_id.as_str()))
        .filter(tool_call::Column::Stage.eq("worker"))
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("the worker's evaluation");
    assert!(
        evaluation.verdicts.contains("asked to be erased"),
        "{}",
        evaluation.verdicts
    );
}

trait InsertInto {
    async fn insert_into(self, db: &sea_orm::DatabaseConnection);
}

impl InsertInto for erased_number::ActiveModel {
    async fn insert_into(self, db: &sea_orm::DatabaseConnection) {
        erased_number::Entity::insert(self).exec(db).await.unwrap();
    }
}

#[tokio::test]
async fn erasure_needs_a_key_a_reason_and_a_contact() {
    let env = env_with(&[]).await;
    let core = &env.core;
    let phone = "+4791230020";
    let id =
        heimdall_domain::testing::contact_with_consent(core, phone, &[Channel::WhatsApp]).await;
    let err = privacy::erase(core, &id, "request", "staff:admin")
        .await
        .unwrap_err();
    assert!(matches!(err, ErasureError::NoKey));
    assert!(err.to_string().contains("HEIMDALL_ERASURE_KEY"), "{err}");
    assert_eq!(contacts::get(core, &id).await.unwrap().phone, phone);

    let env = self::env().await;
    let core = &env.core;
    let id =
        heimdall_domain::testing::contact_with_consent(core, phone, &[Channel::WhatsApp]).await;
    assert!(matches!(
        privacy::erase(core, &id, "  ", "staff:admin").await,
        Err(ErasureError::NoReason)
    ));
    assert!(matches!(
        privacy::erase(core, "no-such-contact", "request", "staff:admin").await,
        Err(ErasureError::NotFound(_))
    ));
    assert_eq!(contacts::get(core, &id).await.unwrap().phone, phone);
}

#[tokio::test]
async fn start_up_refuses_tombstones_without_their_key_or_with_another() {
    let env = env().await;
    let core = &env.core;
    privacy::check_key(core)
        .await
        .expect("no tombstone: any key");
    let without = env.sibling(&[]).await;
    privacy::check_key(&without.core)
        .await
        .expect("no tombstone: no key needed");

    let id =
        heimdall_domain::testing::contact_with_consent(core, "+4791230030", &[Channel::WhatsApp])
            .await;
    privacy::erase(core, &id, "request", "staff:admin")
        .await
        .unwrap();
    privacy::check_key(core).await.expect("the same key");

    let err = privacy::check_key(&without.core).await.unwrap_err();
    assert!(matches!(err, KeyProblem::Missing(1)), "{err}");
    assert!(err.to_string().contains("HEIMDALL_ERASURE_KEY"), "{err}");
    let other = env
        .sibling(&[(
            "HEIMDALL_ERASURE_KEY",
            "another-key-0123456789abcdef-0123456789",
        )])
        .await;
    let err = privacy::check_key(&other.core).await.unwrap_err();
    assert!(matches!(err, KeyProblem::Changed(1)), "{err}");
    assert!(!err.to_string().contains(KEY), "the key is never shown");
    // Erasing with another key is refused too.
    let id = heimdall_domain::testing::contact_with_consent(
        &other.core,
        "+4791230031",
        &[Channel::WhatsApp],
    )
    .await;
    assert!(matches!(
        privacy::erase(&other.core, &id, "request", "staff:admin").await,
        Err(ErasureError::KeyChanged)
    ));
}

/// Another process (`serve` beside the one that erased) had the number's
/// contact id in memory: within its next refresh it forgets it, and a
/// plain message from the number is no longer filed under the erased
/// shell there.
#[tokio::test]
async fn another_process_stops_filing_the_number_under_the_shell_after_its_refresh() {
    let env = env().await;
    let other = env.sibling(&[("HEIMDALL_ERASURE_KEY", KEY)]).await;
    let phone = "+4791234570";
    let (id, _) = person(&env, phone).await;
    // The other process sees the number (and remembers its contact id).
    let seen = inbound::handle_message(
        &other.core,
        inbound_from(&other.core, phone, "SMother1", "Hi from the other process"),
    )
    .await
    .unwrap();
    assert!(
        matches!(seen, InboundOutcome::Stored { ref contact_id, .. } if *contact_id == id),
        "{seen:?}"
    );

    privacy::erase(&env.core, &id, "asked by email", "staff:admin")
        .await
        .unwrap();
    // What the other process's refresher does every second.
    other
        .core
        .contact_ids
        .forget_after_erasures(&other.core.db.conn)
        .await
        .unwrap();
    let after = inbound::handle_message(
        &other.core,
        inbound_from(&other.core, phone, "SMother2", "Hello again"),
    )
    .await
    .unwrap();
    match after {
        InboundOutcome::Stored { contact_id, .. } => {
            assert_ne!(contact_id, id, "not filed under the erased shell")
        }
        other => panic!("{other:?}"),
    }
}

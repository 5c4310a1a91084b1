//! `audit::chain::position`: one row's entries in its chain, checked as
//! `verify` checks them (SQLite by default; PostgreSQL when the run asks
//! for it). Not chained before the sealer runs, intact after, changed once
//! a chained column is changed by hand, and a later event of the row
//! (a revocation) is an entry of its own.

use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Statement};

use heimdall_domain::audit::chain::{self, ChainState, Stream};
use heimdall_domain::consent::{self, OptOutSource};
use heimdall_domain::entities::{consent as consent_entity, tool_call};
use heimdall_domain::sending::outbound;
use heimdall_domain::testing::{self, TestEnv};
use heimdall_domain::{access::authz, templates, Channel, Core};

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
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
    env
}

async fn sql(core: &Core, statement: &str) {
    core.db
        .conn
        .execute_raw(Statement::from_string(core.db.backend(), statement))
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

/// A reminder sent to a consenting contact: its audit rows and the consent.
async fn sent(env: &TestEnv) -> (Vec<String>, String) {
    let core = &env.core;
    let message = testing::accept_reminder_to(core, "+4791234567").await;
    for id in env.take_enqueued() {
        outbound::process_send(core, &id).await.unwrap();
    }
    let calls: Vec<String> = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(&message))
        .order_by_asc(tool_call::Column::CreatedAt)
        .all(&core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(calls.len(), 3, "accepted, evaluated by the worker, sent");
    let consent = consent_entity::Entity::find()
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("the contact's consent")
        .id;
    (calls, consent)
}

#[tokio::test]
async fn a_row_is_not_chained_then_intact_then_changed_by_hand() {
    let env = env().await;
    let core = &env.core;
    let (calls, consent_id) = sent(&env).await;

    let before = chain::position(&core.db.conn, Stream::Consents, &consent_id)
        .await
        .unwrap();
    assert_eq!(before.state, ChainState::NotChainedYet);
    assert!(before.entries.is_empty());

    chain::seal(core).await.unwrap();
    for id in &calls {
        let p = chain::position(&core.db.conn, Stream::ToolCalls, id)
            .await
            .unwrap();
        assert_eq!(p.state, ChainState::Intact, "{p:#?}");
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.entries[0].event, "created");
        assert_eq!(p.entries[0].hash.len(), 64);
        assert!(p.entries[0].seq >= 1);
    }
    let p = chain::position(&core.db.conn, Stream::Consents, &consent_id)
        .await
        .unwrap();
    assert_eq!(p.state, ChainState::Intact, "{p:#?}");

    // A chained column changed by hand: the row's entry no longer matches,
    // and the other rows are untouched.
    sql(
        core,
        &format!("UPDATE consents SET user_agent = 'forged' WHERE id = '{consent_id}'"),
    )
    .await;
    let p = chain::position(&core.db.conn, Stream::Consents, &consent_id)
        .await
        .unwrap();
    assert_eq!(p.state, ChainState::ChangedSinceChained, "{p:#?}");
    assert_eq!(p.entries[0].state, ChainState::ChangedSinceChained);
    assert!(
        p.entries[0]
            .problem
            .as_deref()
            .is_some_and(|w| w.contains("content changed")),
        "{p:#?}"
    );
    // The same finding as the whole-chain verification.
    let report = chain::verify(&core.db.conn).await.unwrap();
    let broken = report
        .broken()
        .find(|b| b.stream == Stream::Consents)
        .expect("the consent stream is broken");
    assert_eq!(broken.row_id, consent_id);

    // A tool call's decision changed by hand.
    sql(
        core,
        &format!(
            "UPDATE tool_calls SET decision = 'block' WHERE id = '{}'",
            calls[2]
        ),
    )
    .await;
    let p = chain::position(&core.db.conn, Stream::ToolCalls, &calls[2])
        .await
        .unwrap();
    assert_eq!(p.state, ChainState::ChangedSinceChained);
    let p = chain::position(&core.db.conn, Stream::ToolCalls, &calls[0])
        .await
        .unwrap();
    assert_eq!(p.state, ChainState::Intact);

    // An id no row has: nothing chained.
    let p = chain::position(&core.db.conn, Stream::ToolCalls, "no-such-row")
        .await
        .unwrap();
    assert_eq!(p.state, ChainState::NotChainedYet);
}

#[tokio::test]
async fn a_later_event_is_an_entry_of_its_own_and_an_edited_entry_is_caught() {
    let env = env().await;
    let core = &env.core;
    let (_, consent_id) = sent(&env).await;
    chain::seal(core).await.unwrap();
    let contact = consent_entity::Entity::find_by_id(consent_id.as_str())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .contact_id;
    consent::opt_out(
        &core.db.conn,
        &contact,
        Some(Channel::WhatsApp),
        consent::Scope::All,
        OptOutSource::Staff,
        Some("asked by phone"),
        "admin@example.com",
        core.now(),
    )
    .await
    .unwrap();
    chain::seal(core).await.unwrap();
    let p = chain::position(&core.db.conn, Stream::Consents, &consent_id)
        .await
        .unwrap();
    assert_eq!(p.state, ChainState::Intact, "{p:#?}");
    let events: Vec<&str> = p.entries.iter().map(|e| e.event.as_str()).collect();
    assert_eq!(events, ["created", "revoked"]);
    assert!(p.entries[0].seq < p.entries[1].seq);

    // The entry itself edited: its link no longer holds.
    sql(
        core,
        &format!(
            "UPDATE audit_chain SET content_hash = 'x' WHERE stream = 'consents' AND seq = {}",
            p.entries[1].seq
        ),
    )
    .await;
    let p = chain::position(&core.db.conn, Stream::Consents, &consent_id)
        .await
        .unwrap();
    assert_eq!(p.state, ChainState::ChangedSinceChained);
    assert_eq!(p.entries[0].state, ChainState::Intact);
    assert_eq!(p.entries[1].state, ChainState::ChangedSinceChained);
}

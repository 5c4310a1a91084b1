//! `Db::write_rows`: the send path's rows, merged across callers on
//! PostgreSQL (one statement) and written through the group-commit writer
//! on SQLite. Each caller's rows are atomic, one caller's failure fails
//! only that caller, two writes of one message never share a statement
//! (where one would be silently lost), and the provider's acceptance moves
//! the state only while the message is still `sending`.

use chrono::Utc;
use heimdall_domain::compliance::message_state::MessageState;
use sea_orm::EntityTrait;

use heimdall_domain::entities::{outbound_message, tool_call};
use heimdall_domain::sending::outbound::pending_message;
use heimdall_domain::store::db::Db;
use heimdall_domain::store::message_writes::{EvaluationUpdate, RowWrite, SentUpdate};
use heimdall_domain::testing;

async fn migrated_db(dir: &std::path::Path) -> Db {
    let db = Db::connect_url(&testing::fresh_database_url(dir).await, false)
        .await
        .expect("connect");
    db.migrate().await.expect("migrate");
    db
}

fn message(id: &str, state: &str) -> outbound_message::Model {
    let now = heimdall_domain::clock::Clock::now(&heimdall_domain::SystemClock);
    outbound_message::Model {
        state: MessageState::parse(state).expect("a message state"),
        ..pending_message(id.into(), "+4790000001".into(), now)
    }
}

fn audit_row(message_id: &str) -> tool_call::Model {
    tool_call::Model {
        id: heimdall_domain::clock::new_id(),
        message_id: Some(message_id.into()),
        kind: "gate_evaluation".into(),
        stage: "accept".into(),
        channel: Some("whatsapp".into()),
        contact_id: None,
        campaign_id: None,
        verdicts: "[]".into(),
        decision: "pass".into(),
        reason_code: None,
        result_ok: true,
        error_code: None,
        detail: Some("it's a \"quoted\" detail with a backslash \\ and ünïcode".into()),
        actor: "test".into(),
        created_at: Utc::now(),
    }
}

async fn stored(db: &Db, id: &str) -> Option<outbound_message::Model> {
    outbound_message::Entity::find_by_id(id.to_string())
        .one(&db.conn)
        .await
        .expect("read message")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_rows_commit_and_a_failure_fails_only_its_caller() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_db(dir.path()).await;
    db.write_rows(RowWrite {
        messages: vec![message("taken", "queued")],
        ..Default::default()
    })
    .await
    .expect("seed message");

    // 200 callers at once; every tenth one also inserts the taken id, so
    // it must fail as a whole while all the others commit.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let id = format!("m{i:03}");
            let mut rows = RowWrite {
                messages: vec![message(&id, "queued")],
                tool_calls: vec![audit_row(&id)],
                ..Default::default()
            };
            if i % 10 == 0 {
                rows.messages.push(message("taken", "queued"));
            }
            (i, db.write_rows(rows).await)
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match result {
            Ok(()) => assert_ne!(i % 10, 0, "caller {i} should have failed"),
            Err(e) => {
                assert!(
                    matches!(
                        e.sql_err(),
                        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
                    ),
                    "caller {i}: {e}"
                );
                failed.push(i);
            }
        }
    }
    assert_eq!(failed.len(), 20, "exactly the conflicting callers fail");
    let messages = outbound_message::Entity::find()
        .all(&db.conn)
        .await
        .unwrap();
    assert_eq!(messages.len(), 1 + 180, "180 new messages and the seed");
    let audit = tool_call::Entity::find().all(&db.conn).await.unwrap();
    assert_eq!(audit.len(), 180, "one audit row per committed caller");
    for i in failed {
        assert!(
            stored(&db, &format!("m{i:03}")).await.is_none(),
            "a failed caller's other rows were rolled back"
        );
    }
    // Text round-trips exactly (quotes, backslashes, non-ASCII).
    assert_eq!(audit[0].detail, audit_row("x").detail);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_writes_of_one_message_at_once_are_both_kept() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_db(dir.path()).await;
    let n = 100;
    for i in 0..n {
        db.write_rows(RowWrite {
            messages: vec![message(&format!("m{i:03}"), "queued")],
            ..Default::default()
        })
        .await
        .expect("message");
    }
    // For every message an evaluation (counts an attempt) and a provider's
    // acceptance (records the sid) at the same moment. Merged into one
    // statement, one of the two updates of a row would be silently lost.
    let mut tasks = Vec::new();
    for i in 0..n {
        let id = format!("m{i:03}");
        let now = Utc::now();
        let evaluation = RowWrite {
            tool_calls: vec![audit_row(&id)],
            evaluations: vec![EvaluationUpdate {
                id: id.clone(),
                state: "sending".into(),
                block_reason: None,
                defer_until: None,
                in_window: false,
                updated_at: now,
                queued_at: None,
                attempts_inc: 1,
                claim_due_by: None,
            }],
            ..Default::default()
        };
        let sent = RowWrite {
            tool_calls: vec![audit_row(&id)],
            sends: vec![SentUpdate {
                id: id.clone(),
                provider_sid: format!("SM{i:032}"),
                provider: "twilio".into(),
                price: None,
                price_unit: None,
                state: "sent".into(),
                updated_at: now,
            }],
            ..Default::default()
        };
        let (a, b) = (db.clone(), db.clone());
        tasks.push(tokio::spawn(async move { a.write_rows(evaluation).await }));
        tasks.push(tokio::spawn(async move { b.write_rows(sent).await }));
    }
    for t in tasks {
        t.await.unwrap().expect("write");
    }
    for i in 0..n {
        let m = stored(&db, &format!("m{i:03}")).await.expect("message");
        assert_eq!(m.attempts, 1, "{}: the evaluation was kept", m.id);
        assert_eq!(
            m.provider_sid.as_deref(),
            Some(format!("SM{i:032}").as_str()),
            "{}: the provider's sid was kept",
            m.id
        );
    }
    let audit = tool_call::Entity::find().all(&db.conn).await.unwrap();
    assert_eq!(audit.len(), 2 * n);
}

#[tokio::test]
async fn the_providers_acceptance_moves_the_state_only_while_sending() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_db(dir.path()).await;
    db.write_rows(RowWrite {
        messages: vec![message("sending", "sending"), message("read", "read")],
        ..Default::default()
    })
    .await
    .expect("messages");
    let accepted = |id: &str| SentUpdate {
        id: id.into(),
        provider_sid: format!("SM-{id}"),
        provider: "twilio".into(),
        price: Some("-0.0050".into()),
        price_unit: Some("USD".into()),
        state: "sent".into(),
        updated_at: Utc::now(),
    };
    db.write_rows(RowWrite {
        sends: vec![accepted("sending"), accepted("read")],
        ..Default::default()
    })
    .await
    .expect("acceptance");
    let m = stored(&db, "sending").await.unwrap();
    assert_eq!(
        (m.state.as_str(), m.provider_sid.as_deref()),
        ("sent", Some("SM-sending"))
    );
    assert_eq!(m.price.as_deref(), Some("-0.0050"));
    // A status callback had already moved it to `read`: the late answer
    // records the sid but never moves the state back.
    let m = stored(&db, "read").await.unwrap();
    assert_eq!(
        (m.state.as_str(), m.provider_sid.as_deref()),
        ("read", Some("SM-read"))
    );
}

/// A worker's evaluation that is also its claim, as two workers with the
/// same job (a redelivery) write it at once.
fn claiming(id: &str, due_by: chrono::DateTime<Utc>) -> RowWrite {
    RowWrite {
        tool_calls: vec![audit_row(id)],
        evaluations: vec![EvaluationUpdate {
            id: id.into(),
            state: "sending".into(),
            block_reason: None,
            defer_until: None,
            in_window: false,
            updated_at: Utc::now(),
            queued_at: None,
            attempts_inc: 1,
            claim_due_by: Some(due_by),
        }],
        ..Default::default()
    }
}

async fn audit_rows_of(db: &Db, id: &str) -> usize {
    use sea_orm::{ColumnTrait, QueryFilter};
    tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(id))
        .all(&db.conn)
        .await
        .unwrap()
        .len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claiming_evaluation_is_written_once_and_only_while_its_message_waits() {
    let dir = tempfile::tempdir().unwrap();
    let db = migrated_db(dir.path()).await;
    let now = Utc::now();
    let deferred = |id: &str, until| outbound_message::Model {
        defer_until: Some(until),
        ..message(id, "deferred")
    };
    db.write_rows(RowWrite {
        messages: vec![
            message("queued", "queued"),
            deferred("due", now - chrono::Duration::seconds(1)),
            deferred("later", now + chrono::Duration::hours(1)),
            message("sending", "sending"),
            outbound_message::Model {
                provider_sid: Some("SM-handed-over".into()),
                ..message("handed", "queued")
            },
            message("plain", "queued"),
        ],
        ..Default::default()
    })
    .await
    .expect("messages");
    if db.is_sqlite() {
        // SQLite claims first, then evaluates: a claiming write is refused
        // and changes nothing.
        assert!(db.write_claiming(claiming("queued", now)).await.is_err());
        assert!(db.write_rows(claiming("queued", now)).await.is_err());
        assert_eq!(
            stored(&db, "queued").await.unwrap().state,
            MessageState::Queued
        );
        assert_eq!(audit_rows_of(&db, "queued").await, 0);
        return;
    }
    // Two claims per message at once, with another caller's plain audit
    // rows in the same burst (one of them of a message whose claims lose:
    // it must be kept, so it may not share a statement with them).
    let ids = ["queued", "due", "later", "sending", "handed"];
    let mut tasks = Vec::new();
    for _ in 0..2 {
        for id in ids {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                (id, db.write_claiming(claiming(id, now)).await)
            }));
        }
    }
    let plain = {
        let db = db.clone();
        tokio::spawn(async move {
            db.write_rows(RowWrite {
                tool_calls: vec![audit_row("plain"), audit_row("later")],
                ..Default::default()
            })
            .await
        })
    };
    let mut won = std::collections::HashMap::new();
    for t in tasks {
        let (id, result) = t.await.unwrap();
        *won.entry(id).or_insert(0) += usize::from(result.expect("claiming write"));
    }
    plain.await.unwrap().expect("plain write");
    for id in ["queued", "due"] {
        assert_eq!(won[id], 1, "{id}: exactly one of the two claims won");
        let m = stored(&db, id).await.unwrap();
        assert_eq!((m.state.as_str(), m.attempts), ("sending", 1), "{id}");
        assert_eq!(
            audit_rows_of(&db, id).await,
            1,
            "{id}: the winner's audit row only"
        );
    }
    for (id, state) in [
        ("later", "deferred"),
        ("sending", "sending"),
        ("handed", "queued"),
    ] {
        assert_eq!(won[id], 0, "{id}: not waiting and due, never claimed");
        let m = stored(&db, id).await.unwrap();
        assert_eq!(
            (m.state.as_str(), m.attempts),
            (state, 0),
            "{id}: unchanged"
        );
        let plain = usize::from(id == "later");
        assert_eq!(
            audit_rows_of(&db, id).await,
            plain,
            "{id}: no claim's audit row"
        );
    }
    assert_eq!(
        audit_rows_of(&db, "plain").await,
        1,
        "the plain write is kept"
    );
    // A claiming write must hold exactly one claiming evaluation.
    let mut two = claiming("plain", now);
    two.evaluations.extend(claiming("due", now).evaluations);
    assert!(db.write_claiming(two).await.is_err());
    assert_eq!(
        stored(&db, "plain").await.unwrap().state,
        MessageState::Queued
    );
}

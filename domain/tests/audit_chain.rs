//! The audit chain against real storage (SQLite by default; PostgreSQL
//! when the run asks for it): rows written by the real paths are chained
//! and verify; a row changed, deleted or an entry edited by hand is
//! reported at exactly its entry; later events (a revocation) are chained
//! on their own; two sealers at once never fork a chain; a redaction keeps
//! the chain verifying; the daily anchor is stored, posted, and checked.

use std::collections::BTreeMap;

use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Statement,
};

use heimdall_domain::access::accounts::Role;
use heimdall_domain::audit::chain::{self, Broken, BrokenLink, RedactError, VerifyReport};
use heimdall_domain::campaigns::{self, Audience, CampaignDraft, VariableSource};
use heimdall_domain::consent::{self, OptOutSource};
use heimdall_domain::entities::{
    audit_anchor, audit_chain, campaign_approval, consent as consent_entity, suppression, tool_call,
};
use heimdall_domain::housekeeping::{self, Job, RunResult};
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::sending::outbound;
use heimdall_domain::testing::{self, TestEnv};
use heimdall_domain::{Channel, Core};

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let env = heimdall_domain::testing::reminder_world(extra).await;
    env
}

async fn env() -> TestEnv {
    env_with(&[]).await
}

/// Rows of each chained table, written by the real paths.
struct Written {
    /// The accepted message's evaluation, the worker's and the send attempt.
    tool_calls: Vec<String>,
    /// The consent of the person who was sent the message.
    consent: String,
    /// The consent of the person who said STOP (revoked by it).
    stopped_consent: String,
    /// The STOP's suppression.
    suppression: String,
    /// The campaign's submission and approval.
    approvals: Vec<String>,
}

async fn write_rows(env: &TestEnv) -> Written {
    let core = &env.core;
    // A message accepted and sent.
    let message = testing::accept_reminder_to(core, "+4791234567").await;
    for id in env.take_enqueued() {
        outbound::process_send(core, &id).await.unwrap();
    }
    assert_eq!(env.provider.count(), 1, "the message was sent");
    let tool_calls: Vec<String> = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(&message))
        .order_by_asc(tool_call::Column::CreatedAt)
        .all(&core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(
        tool_calls.len(),
        3,
        "accepted, evaluated by the worker, sent"
    );
    // A person with a consent who replies STOP.
    let stopper = testing::contact_with_consent(core, "+4791234568", &[Channel::WhatsApp]).await;
    inbound::handle_message(
        core,
        InboundMessage {
            provider: "twilio".into(),
            provider_message_id: "SM00000000000000000000000000000201".into(),
            channel: Channel::WhatsApp,
            from: "+4791234568".into(),
            to: Some("+14155238886".into()),
            body: Some("STOP".into()),
            media: Vec::new(),
            button_text: None,
            button_payload: None,
            profile_name: None,
            received_at: core.now(),
        },
    )
    .await
    .unwrap();
    let suppression = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(&stopper))
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("the STOP's suppression")
        .id;
    let consent_of = |contact: String| async move {
        consent_entity::Entity::find()
            .filter(consent_entity::Column::ContactId.eq(contact))
            .one(&core.db.conn)
            .await
            .unwrap()
            .expect("a consent")
    };
    let stopped = consent_of(stopper).await;
    assert!(stopped.revoked_at.is_some(), "the STOP revoked the consent");
    let sent_to = tool_call::Entity::find_by_id(tool_calls[0].clone())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .contact_id
        .unwrap();
    let consent = consent_of(sent_to).await.id;
    // A campaign written by one person and approved by another.
    let author = testing::staff_user(core, "author@example.com", Role::Operator).await;
    let approver = testing::staff_user(core, "approver@example.com", Role::Approver).await;
    let draft = campaigns::create_draft(
        core,
        &author,
        CampaignDraft {
            name: "Spring".into(),
            channel: Channel::WhatsApp,
            template_name: "task_reminder".into(),
            audience: Audience::Phones {
                phones: vec!["+4791234567".into()],
            },
            variables: [
                (
                    "task_name".to_string(),
                    VariableSource::Value("Call Bob".into()),
                ),
                (
                    "due_time".to_string(),
                    VariableSource::Value("17:00".into()),
                ),
            ]
            .into(),
            scheduled_at: None,
        },
    )
    .await
    .unwrap();
    campaigns::submit(core, &author, &draft.id).await.unwrap();
    let hash = campaigns::review(core, &draft.id, 0)
        .await
        .unwrap()
        .content_hash;
    campaigns::approve(core, &approver, &draft.id, &hash)
        .await
        .unwrap();
    let approvals: Vec<String> = campaign_approval::Entity::find()
        .filter(campaign_approval::Column::CampaignId.eq(&draft.id))
        .all(&core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.id)
        .collect();
    assert!(!approvals.is_empty());
    Written {
        tool_calls,
        consent,
        stopped_consent: stopped.id,
        suppression,
        approvals,
    }
}

async fn sql(core: &Core, statement: &str) {
    core.db
        .conn
        .execute_raw(Statement::from_string(core.db.backend(), statement))
        .await
        .unwrap_or_else(|e| panic!("{statement}: {e}"));
}

async fn verify(core: &Core) -> VerifyReport {
    chain::verify(&core.db.conn).await.unwrap()
}

/// The seq of a row's entry for `event`.
async fn seq_of(core: &Core, table: &str, row_id: &str, event: &str) -> i64 {
    audit_chain::Entity::find()
        .filter(audit_chain::Column::RowTable.eq(table))
        .filter(audit_chain::Column::RowId.eq(row_id))
        .filter(audit_chain::Column::Event.eq(event))
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("no {event} entry for {table} {row_id}"))
        .seq
}

fn broken_in<'a>(report: &'a VerifyReport, stream: &str) -> &'a BrokenLink {
    report
        .broken()
        .find(|b| b.stream.as_str() == stream)
        .unwrap_or_else(|| panic!("{stream} not reported broken: {report:#?}"))
}

fn assert_intact(report: &VerifyReport) {
    assert!(
        report.intact(),
        "broken: {:?}",
        report.broken().map(|b| b.to_string()).collect::<Vec<_>>()
    );
}

async fn count(core: &Core, table: &str) -> u64 {
    let row = core
        .db
        .conn
        .query_one_raw(Statement::from_string(
            core.db.backend(),
            format!("SELECT COUNT(*) AS n FROM {table}"),
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get::<i64>("", "n").unwrap() as u64
}

// ---------------------------------------------------------------------------

#[tokio::test]
async fn rows_from_the_real_paths_are_chained_once_and_verify() {
    let env = env().await;
    let w = write_rows(&env).await;
    let before = verify(&env.core).await;
    assert_intact(&before);
    assert!(
        before
            .streams
            .iter()
            .all(|s| s.unsealed > 0 && s.head_seq == 0),
        "nothing chained before the sealer ran: {before:#?}"
    );

    let report = chain::seal(&env.core).await.unwrap();
    assert!(report.total() > 0, "{report}");
    let after = verify(&env.core).await;
    assert_intact(&after);
    for (stream, table) in [
        ("tool_calls", "tool_calls"),
        ("consents", "consents"),
        ("suppressions", "suppressions"),
        ("campaign_approvals", "campaign_approvals"),
    ] {
        let s = after
            .streams
            .iter()
            .find(|s| s.stream.as_str() == stream)
            .unwrap();
        assert_eq!(s.unsealed, 0, "{stream}");
        let rows = count(&env.core, table).await;
        let created = audit_chain::Entity::find()
            .filter(audit_chain::Column::Stream.eq(stream))
            .filter(audit_chain::Column::Event.eq("created"))
            .count(&env.core.db.conn)
            .await
            .unwrap();
        assert_eq!(created, rows, "every {table} row chained once");
        assert!(s.head_seq >= rows as i64, "{stream}");
    }
    // The STOP's revocation is an event of its own.
    seq_of(&env.core, "consents", &w.stopped_consent, "revoked").await;
    // Sealing again appends nothing.
    assert_eq!(chain::seal(&env.core).await.unwrap().total(), 0);
    // The housekeeping job runs the sealer.
    testing::contact_with_consent(&env.core, "+4791234569", &[Channel::Sms]).await;
    match housekeeping::run(&env.core, Job::SealAuditChain)
        .await
        .unwrap()
    {
        RunResult::Ok { summary } => assert_eq!(summary, "chained 1 consents"),
        other => panic!("{other:?}"),
    }
    assert_intact(&verify(&env.core).await);
}

#[tokio::test]
async fn a_row_changed_by_hand_is_reported_at_exactly_its_entry() {
    let env = env().await;
    let w = write_rows(&env).await;
    chain::seal(&env.core).await.unwrap();
    assert_intact(&verify(&env.core).await);

    let core = &env.core;
    let changed = [
        (
            "tool_calls",
            w.tool_calls[1].clone(),
            "UPDATE tool_calls SET decision = 'block' WHERE id = '{id}'",
        ),
        (
            "consents",
            w.consent.clone(),
            "UPDATE consents SET ip = '198.51.100.1' WHERE id = '{id}'",
        ),
        (
            "suppressions",
            w.suppression.clone(),
            "UPDATE suppressions SET channel = 'sms' WHERE id = '{id}'",
        ),
        (
            "campaign_approvals",
            w.approvals.last().unwrap().clone(),
            "UPDATE campaign_approvals SET actor_id = 'someone-else' WHERE id = '{id}'",
        ),
    ];
    for (_, id, statement) in &changed {
        sql(core, &statement.replace("{id}", id)).await;
    }
    let report = verify(core).await;
    for (table, id, _) in &changed {
        let b = broken_in(&report, table);
        assert_eq!(
            (
                b.seq,
                b.row_table.as_str(),
                b.row_id.as_str(),
                b.event.as_str()
            ),
            (
                seq_of(core, table, id, "created").await,
                *table,
                id.as_str(),
                "created"
            ),
            "{b}"
        );
        assert!(matches!(b.problem, Broken::ContentChanged(_)), "{b}");
    }
}

#[tokio::test]
async fn a_row_deleted_or_an_entry_edited_by_hand_is_reported() {
    let env = env().await;
    let w = write_rows(&env).await;
    chain::seal(&env.core).await.unwrap();
    let core = &env.core;

    // A tool call deleted.
    let gone = &w.tool_calls[2];
    sql(core, &format!("DELETE FROM tool_calls WHERE id = '{gone}'")).await;
    // An entry's hash edited: the consent's creation.
    let edited = seq_of(core, "consents", &w.consent, "created").await;
    sql(
        core,
        &format!(
            "UPDATE audit_chain SET hash = '{}' WHERE stream = 'consents' AND seq = {edited}",
            "f".repeat(64)
        ),
    )
    .await;
    // An entry removed from the middle of a chain.
    let removed = seq_of(core, "campaign_approvals", &w.approvals[0], "created").await;
    sql(
        core,
        &format!("DELETE FROM audit_chain WHERE stream = 'campaign_approvals' AND seq = {removed}"),
    )
    .await;

    let report = verify(core).await;
    let b = broken_in(&report, "tool_calls");
    assert_eq!(b.row_id, *gone, "{b}");
    assert_eq!(b.seq, seq_of(core, "tool_calls", gone, "created").await);
    assert_eq!(b.problem, Broken::RowMissing, "{b}");

    let b = broken_in(&report, "consents");
    assert_eq!(
        (b.seq, b.row_id.as_str()),
        (edited, w.consent.as_str()),
        "{b}"
    );
    assert!(matches!(b.problem, Broken::LinkHash(_)), "{b}");

    let b = broken_in(&report, "campaign_approvals");
    assert_eq!(b.problem, Broken::SeqGap { expected: removed }, "{b}");
    // The suppressions were left alone.
    assert!(report
        .streams
        .iter()
        .any(|s| s.stream.as_str() == "suppressions" && s.broken.is_none()));
}

#[tokio::test]
async fn a_revocation_after_sealing_is_chained_and_then_protected() {
    let env = env().await;
    let core = &env.core;
    let contact = testing::contact_with_consent(core, "+4791234570", &[Channel::WhatsApp]).await;
    chain::seal(core).await.unwrap();
    let consent = consent_entity::Entity::find()
        .filter(consent_entity::Column::ContactId.eq(&contact))
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert!(consent.revoked_at.is_none());

    env.clock.advance(chrono::Duration::minutes(5));
    consent::opt_out(
        &core.db.conn,
        &contact,
        Some(Channel::WhatsApp),
        consent::Scope::All,
        OptOutSource::Staff,
        Some("asked on the phone"),
        "staff@example.com",
        core.now(),
    )
    .await
    .unwrap();
    // Not chained yet: a warning, not a failure.
    let waiting = verify(core).await;
    assert_intact(&waiting);
    let consents = waiting
        .streams
        .iter()
        .find(|s| s.stream.as_str() == "consents")
        .unwrap();
    assert_eq!(consents.unsealed, 1);

    let sealed = chain::seal(core).await.unwrap();
    assert_eq!(sealed.appended["consents"], 1, "the revocation");
    let revoked = seq_of(core, "consents", &consent.id, "revoked").await;
    assert_intact(&verify(core).await);

    // The revocation's time changed by hand.
    sql(
        core,
        &format!(
            "UPDATE consents SET revoked_at = created_at WHERE id = '{}'",
            consent.id
        ),
    )
    .await;
    let b = verify(core).await;
    let b = broken_in(&b, "consents");
    assert_eq!((b.seq, b.event.as_str()), (revoked, "revoked"), "{b}");
    assert!(matches!(b.problem, Broken::ContentChanged(_)), "{b}");
}

#[tokio::test]
async fn a_status_or_a_confirmation_made_by_hand_after_sealing_is_reported() {
    let env = env().await;
    let core = &env.core;
    let contact = testing::contact_with_consent(core, "+4791234571", &[Channel::WhatsApp]).await;
    let id = consent_entity::Entity::find()
        .filter(consent_entity::Column::ContactId.eq(&contact))
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .id;
    chain::seal(core).await.unwrap();
    let created = seq_of(core, "consents", &id, "created").await;

    // A consent turned to revoked and back to active by hand: the status
    // the entry recorded.
    sql(
        core,
        &format!("UPDATE consents SET status = 'revoked' WHERE id = '{id}'"),
    )
    .await;
    let b = verify(core).await;
    let b = broken_in(&b, "consents");
    assert_eq!(b.seq, created, "{b}");
    assert!(
        matches!(&b.problem, Broken::ContentChanged(why) if why.contains("status")),
        "{b}"
    );
    sql(
        core,
        &format!("UPDATE consents SET status = 'active' WHERE id = '{id}'"),
    )
    .await;
    assert_intact(&verify(core).await);

    // A confirmation set by hand on a row chained past it (the row's
    // `chain_sealed` says so): not a confirmation waiting for the sealer.
    sql(
        core,
        &format!(
            "UPDATE consents SET chain_sealed = 2, confirmed_at = created_at WHERE id = '{id}'"
        ),
    )
    .await;
    let b = verify(core).await;
    let b = broken_in(&b, "consents");
    assert!(
        matches!(&b.problem, Broken::ContentChanged(why) if why.contains("confirmed_at")),
        "{b}"
    );
}

#[tokio::test]
async fn two_sealers_at_once_make_one_chain_with_every_row_once() {
    let env = env().await;
    let other = env.sibling(&[]).await;
    const ROWS: usize = 2_600;
    let insert = |core: std::sync::Arc<Core>, from: usize, n: usize| async move {
        let rows: Vec<tool_call::ActiveModel> = (from..from + n)
            .map(|i| tool_call::ActiveModel {
                id: sea_orm::Set(format!("tc-{i:06}")),
                message_id: sea_orm::Set(None),
                kind: sea_orm::Set("gate_evaluation".into()),
                stage: sea_orm::Set("accept".into()),
                channel: sea_orm::Set(Some("whatsapp".into())),
                contact_id: sea_orm::Set(None),
                campaign_id: sea_orm::Set(None),
                verdicts: sea_orm::Set("[]".into()),
                decision: sea_orm::Set("pass".into()),
                reason_code: sea_orm::Set(None),
                result_ok: sea_orm::Set(true),
                error_code: sea_orm::Set(None),
                detail: sea_orm::Set(Some(format!("row {i}"))),
                actor: sea_orm::Set("test".into()),
                // Several rows share a time: the id orders them.
                created_at: sea_orm::Set(
                    core.now() + chrono::Duration::milliseconds((i / 3) as i64),
                ),
            })
            .collect();
        for chunk in rows.chunks(200) {
            tool_call::Entity::insert_many(chunk.to_vec())
                .exec_without_returning(&core.db.conn)
                .await
                .unwrap();
        }
    };
    insert(env.core.clone(), 0, ROWS).await;
    // Two processes' sealers at once, while rows keep coming.
    let (a, b, ()) = tokio::join!(
        async {
            let mut n = 0;
            for _ in 0..5 {
                n += chain::seal(&env.core).await.unwrap().total();
            }
            n
        },
        async {
            let mut n = 0;
            for _ in 0..5 {
                n += chain::seal(&other.core).await.unwrap().total();
            }
            n
        },
        insert(other.core.clone(), ROWS, 300),
    );
    let last = chain::seal(&env.core).await.unwrap().total();
    assert_eq!(a + b + last, (ROWS + 300) as u64, "{a} + {b} + {last}");

    let entries = audit_chain::Entity::find()
        .filter(audit_chain::Column::Stream.eq("tool_calls"))
        .order_by_asc(audit_chain::Column::Seq)
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(entries.len(), ROWS + 300);
    let mut seen = BTreeMap::new();
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(e.seq, i as i64 + 1, "no gap, no fork");
        assert!(
            seen.insert(e.row_id.clone(), e.seq).is_none(),
            "{} twice",
            e.row_id
        );
    }
    assert_intact(&verify(&env.core).await);
}

#[tokio::test]
async fn a_redaction_keeps_the_chain_verifying_and_the_rest_protected() {
    let env = env().await;
    let core = &env.core;
    let w = write_rows(&env).await;
    // Not chained yet: nothing to record the original against.
    let early = chain::redact(
        core,
        "consents",
        &w.consent,
        &["ip"],
        "erasure",
        "admin@example.com",
    )
    .await;
    assert!(matches!(early, Err(RedactError::NotSealed)), "{early:?}");
    chain::seal(core).await.unwrap();

    let refused = chain::redact(
        core,
        "consents",
        &w.consent,
        &["channel"],
        "erasure",
        "admin",
    )
    .await;
    assert!(
        matches!(refused, Err(RedactError::NotPersonal { .. })),
        "{refused:?}"
    );
    let refused = chain::redact(
        core,
        "suppressions",
        &w.suppression,
        &["lift_ref"],
        "erasure",
        "admin",
    )
    .await;
    assert!(
        matches!(refused, Err(RedactError::NotPersonal { .. })),
        "{refused:?}"
    );

    let seq = chain::redact(
        core,
        "consents",
        &w.consent,
        &["ip", "user_agent"],
        "erasure request 42",
        "admin@example.com",
    )
    .await
    .unwrap();
    let row = consent_entity::Entity::find_by_id(w.consent.clone())
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.ip, row.user_agent), (None, None));
    assert_eq!(seq_of(core, "consents", &w.consent, "redacted").await, seq);
    // A tool call's explanation replaced by a value of the caller's.
    chain::redact_to(
        core,
        "tool_calls",
        &w.tool_calls[0],
        &[("detail", Some("number erased"))],
        "erasure request 42",
        "admin@example.com",
    )
    .await
    .unwrap();
    assert_intact(&verify(core).await);

    let again = chain::redact(core, "consents", &w.consent, &["ip"], "again", "admin").await;
    assert!(
        matches!(again, Err(RedactError::AlreadyRedacted(_))),
        "{again:?}"
    );
    // Another personal field later: a second redaction of the row.
    chain::redact(
        core,
        "consents",
        &w.consent,
        &["page_url"],
        "erasure",
        "admin",
    )
    .await
    .unwrap();
    seq_of(core, "consents", &w.consent, "redacted.2").await;
    assert_intact(&verify(core).await);

    // Another column of the redacted row changed by hand.
    sql(
        core,
        &format!(
            "UPDATE consents SET consent_text_version = 'v9' WHERE id = '{}'",
            w.consent
        ),
    )
    .await;
    let report = verify(core).await;
    let b = broken_in(&report, "consents");
    assert_eq!(
        (b.seq, b.event.as_str()),
        (
            seq_of(core, "consents", &w.consent, "created").await,
            "created"
        ),
        "{b}"
    );
    // A tampered row is not redacted (its changed value would be recorded
    // as the original).
    let tampered = chain::redact(
        core,
        "consents",
        &w.consent,
        &["consent_text"],
        "erasure",
        "admin",
    )
    .await;
    assert!(
        matches!(tampered, Err(RedactError::Tampered(_))),
        "{tampered:?}"
    );

    // The redacted field itself put back by hand.
    sql(
        core,
        &format!(
            "UPDATE tool_calls SET detail = 'the original' WHERE id = '{}'",
            w.tool_calls[0]
        ),
    )
    .await;
    let report = verify(core).await;
    let b = broken_in(&report, "tool_calls");
    assert_eq!(b.event, "redacted", "{b}");
}

/// An HTTP server of the test's own on 127.0.0.1 that answers `status` to
/// every request and hands each request's body to the test.
async fn anchor_sink(status: u16) -> (String, tokio::sync::mpsc::UnboundedReceiver<String>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                return;
            };
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let n = s.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let length = text[..end]
                        .lines()
                        .find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case("content-length")
                                .then(|| v.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    if buf.len() < end + 4 + length {
                        continue;
                    }
                    let _ = tx.send(format!(
                        "{}\n{}",
                        text.lines().next().unwrap_or_default(),
                        &text[end + 4..end + 4 + length]
                    ));
                    let answer = format!(
                        "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                    return;
                }
            });
        }
    });
    (format!("127.0.0.1:{}", addr.port()), rx)
}

#[tokio::test]
async fn the_daily_anchor_is_stored_posted_and_checked() {
    let (host, mut bodies) = anchor_sink(200).await;
    let url = format!("http://{host}/anchors?token=secret");
    let env = env_with(&[
        ("HEIMDALL_FETCH_ALLOWLIST", host.as_str()),
        ("HEIMDALL_AUDIT_ANCHOR_URL", url.as_str()),
    ])
    .await;
    let core = &env.core;
    let w = write_rows(&env).await;

    let report = chain::anchor(core).await.unwrap();
    assert!(report.posted);
    let request = bodies.recv().await.expect("the anchor was posted");
    let (line, body) = request.split_once('\n').unwrap();
    assert!(line.starts_with("POST /anchors?token=secret "), "{line}");
    let body: serde_json::Value = serde_json::from_str(body).unwrap();
    let heads = body["heads"].as_array().unwrap();
    assert_eq!(heads.len(), 4);
    let v = verify(core).await;
    assert_intact(&v);
    for s in &v.streams {
        let posted = heads
            .iter()
            .find(|h| h["stream"] == s.stream.as_str())
            .unwrap();
        assert_eq!(posted["seq"], s.head_seq, "the anchor sealed first");
        assert_eq!(posted["hash"], s.head_hash.as_str());
        assert!(s.head_seq > 0);
        assert_eq!(s.anchor.map(|a| a.0), Some(s.head_seq));
    }
    assert_eq!(
        audit_anchor::Entity::find()
            .count(&core.db.conn)
            .await
            .unwrap(),
        4
    );

    // The chain's last entries removed (and their row, so nothing else
    // shows it): only the anchor tells.
    let last = w.suppression.clone();
    let seq = seq_of(core, "suppressions", &last, "created").await;
    sql(
        core,
        &format!("DELETE FROM audit_chain WHERE stream = 'suppressions' AND seq >= {seq}"),
    )
    .await;
    sql(
        core,
        &format!("DELETE FROM suppressions WHERE id = '{last}'"),
    )
    .await;
    let b = verify(core).await;
    let b = broken_in(&b, "suppressions");
    assert!(matches!(b.problem, Broken::Anchor(_)), "{b}");
}

#[tokio::test]
async fn an_anchor_url_that_fails_fails_the_job_and_keeps_the_anchor() {
    let (host, mut bodies) = anchor_sink(500).await;
    let url = format!("http://{host}/anchors");
    let env = env_with(&[
        ("HEIMDALL_FETCH_ALLOWLIST", host.as_str()),
        ("HEIMDALL_AUDIT_ANCHOR_URL", url.as_str()),
    ])
    .await;
    match housekeeping::run(&env.core, Job::AnchorAuditChain)
        .await
        .unwrap()
    {
        RunResult::Failed { error } => {
            assert!(error.contains("HTTP 500"), "{error}");
            assert!(
                !error.contains(&host),
                "the URL is not in the error: {error}"
            );
        }
        other => panic!("{other:?}"),
    }
    bodies.recv().await.expect("it was posted");
    assert_eq!(
        audit_anchor::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        4
    );

    // Without the allowlist, a loopback URL is refused before any request.
    let env = env_with(&[("HEIMDALL_AUDIT_ANCHOR_URL", url.as_str())]).await;
    let refused = chain::anchor(&env.core).await.unwrap_err();
    assert!(matches!(refused, chain::AnchorError::Post(_)), "{refused}");
    assert!(bodies.try_recv().is_err(), "nothing was sent");
}

#[tokio::test]
async fn the_sealer_finds_unsealed_rows_through_their_partial_indexes() {
    let env = env().await;
    let core = &env.core;
    let queries = [
        ("idx_tool_calls_unsealed", "SELECT id FROM tool_calls WHERE chain_sealed IS NULL ORDER BY created_at, id LIMIT 5"),
        ("idx_consents_unsealed", "SELECT id FROM consents WHERE chain_sealed IS NULL ORDER BY created_at, id LIMIT 5"),
        ("idx_consents_unsealed_confirmed", "SELECT id FROM consents WHERE confirmed_at IS NOT NULL AND chain_sealed < 2 ORDER BY confirmed_at, id LIMIT 5"),
        ("idx_consents_unsealed_revoked", "SELECT id FROM consents WHERE revoked_at IS NOT NULL AND chain_sealed < 3 ORDER BY revoked_at, id LIMIT 5"),
        ("idx_suppressions_unsealed", "SELECT id FROM suppressions WHERE chain_sealed IS NULL ORDER BY created_at, id LIMIT 5"),
        ("idx_suppressions_unsealed_lifted", "SELECT id FROM suppressions WHERE lifted_at IS NOT NULL AND chain_sealed < 2 ORDER BY lifted_at, id LIMIT 5"),
        ("idx_campaign_approvals_unsealed", "SELECT id FROM campaign_approvals WHERE chain_sealed IS NULL ORDER BY created_at, id LIMIT 5"),
    ];
    let txn = sea_orm::TransactionTrait::begin(&core.db.conn)
        .await
        .unwrap();
    if !core.db.is_sqlite() {
        // The tables are empty: tell the planner a scan is not an option.
        txn.execute_unprepared("SET LOCAL enable_seqscan = off")
            .await
            .unwrap();
    }
    for (index, query) in queries {
        let explain = if core.db.is_sqlite() {
            format!("EXPLAIN QUERY PLAN {query}")
        } else {
            format!("EXPLAIN {query}")
        };
        let plan: Vec<String> = txn
            .query_all_raw(Statement::from_string(core.db.backend(), explain))
            .await
            .unwrap()
            .iter()
            .map(|r| {
                r.try_get::<String>(
                    "",
                    if core.db.is_sqlite() {
                        "detail"
                    } else {
                        "QUERY PLAN"
                    },
                )
                .unwrap()
            })
            .collect();
        assert!(
            plan.iter().any(|l| l.contains(index)),
            "{query} does not use {index}: {plan:?}"
        );
    }
    drop(txn);
    // Nothing written: nothing to chain, and no write lock taken.
    assert_eq!(chain::seal(core).await.unwrap().total(), 0);
}

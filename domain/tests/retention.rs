//! Retention against real storage (SQLite by default; PostgreSQL when the
//! run asks for it), with the manual clock: past each limit the content
//! goes and the row stays; newer rows, a consent in force and every
//! suppression are untouched; a revoked consent's evidence is redacted
//! through the audit chain, which still verifies; a consent not chained
//! yet is left for the next run; the counts are recorded, and a second run
//! purges nothing more.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder};

use heimdall_domain::audit::chain::{self, VerifyReport};
use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::consent::{self, OptOutSource};
use heimdall_domain::entities::{
    audit_chain, consent as consent_entity, inbound_message, outbound_message, retention_run,
    suppression, tool_call, webhook_audit,
};
use heimdall_domain::housekeeping::retention::{self, Kind, Purged};
use heimdall_domain::housekeeping::{self, Job, RunResult};
use heimdall_domain::inbound::{self, InboundMessage, WebhookRecord};
use heimdall_domain::sending::outbound;
use heimdall_domain::settings::{Settings, Source};
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

/// A reminder accepted and sent now: its id.
async fn sent_message(env: &TestEnv, phone: &str) -> String {
    let id = testing::accept_reminder_to(&env.core, phone).await;
    for queued in env.take_enqueued() {
        outbound::process_send(&env.core, &queued).await.unwrap();
    }
    id
}

async fn message(core: &Core, id: &str) -> outbound_message::Model {
    outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("the message row is kept")
}

async fn receive(core: &Core, sid: &str, from: &str, body: &str) -> inbound_message::Model {
    inbound::handle_message(
        core,
        InboundMessage {
            provider: "twilio".into(),
            provider_message_id: sid.into(),
            channel: Channel::WhatsApp,
            from: from.into(),
            to: Some("+14155238886".into()),
            body: Some(body.into()),
            media: vec!["https://media.example.com/photo.jpg".into()],
            button_text: None,
            button_payload: None,
            profile_name: None,
            received_at: core.now(),
        },
    )
    .await
    .unwrap();
    inbound_row(core, sid).await
}

async fn inbound_row(core: &Core, sid: &str) -> inbound_message::Model {
    inbound_message::Entity::find()
        .filter(inbound_message::Column::ProviderMessageId.eq(sid))
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("the inbound row is kept")
}

async fn consent_of(core: &Core, contact: &str) -> consent_entity::Model {
    consent_entity::Entity::find()
        .filter(consent_entity::Column::ContactId.eq(contact))
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("the consent row is kept")
}

async fn webhook(core: &Core, event: &str, at: DateTime<Utc>) {
    inbound::record_webhook(
        &core.db.conn,
        &WebhookRecord {
            provider: "twilio".into(),
            path: "/webhooks/twilio/inbound".into(),
            verdict: "accepted".into(),
            headers: BTreeMap::new(),
            body: "From=whatsapp%3A%2B4791234567&Body=Hello".into(),
            event_id: Some(event.into()),
            received_at: at,
        },
        false,
        at,
    )
    .await
    .unwrap();
}

async fn suppressions(core: &Core) -> Vec<suppression::Model> {
    suppression::Entity::find()
        .order_by_asc(suppression::Column::Id)
        .all(&core.db.conn)
        .await
        .unwrap()
}

fn assert_intact(report: &VerifyReport) {
    assert!(
        report.intact(),
        "broken: {:?}",
        report.broken().map(|b| b.to_string()).collect::<Vec<_>>()
    );
}

fn counts(report: &retention::RetentionReport) -> [(u64, u64); 4] {
    Kind::ALL.map(|k| {
        let Purged { purged, deferred } = report.get(k);
        (purged, deferred)
    })
}

#[tokio::test]
async fn content_past_retention_goes_the_rows_and_the_evidence_of_consents_in_force_stay() {
    let env = env().await;
    let core = &env.core;
    assert_eq!(core.settings.retain_message_body_days, 90);
    assert_eq!(core.settings.retain_inbound_text_days, 90);
    assert_eq!(core.settings.webhook_audit_days, 30);
    assert_eq!(core.settings.retain_consent_evidence_days, 1826);
    let t0 = core.now();

    // Long ago: a message sent, a message still queued (it may still go),
    // a person's text with a photo, a consent still in force, a consent
    // ended by a STOP, a consent that will end recently, a webhook row.
    let old_sent = sent_message(&env, "+4791230001").await;
    let old_queued = testing::accept_reminder_to(core, "+4791230002").await;
    env.take_enqueued();
    let in_force = outbound_message::Entity::find_by_id(&old_sent)
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .contact_id
        .unwrap();
    let old_text = receive(
        core,
        "SM00000000000000000000000000000001",
        "+4791230001",
        "Here is my address: Storgata 1",
    )
    .await;
    let stopper = testing::contact_with_consent(core, "+4791230003", &[Channel::WhatsApp]).await;
    let old_stop = receive(
        core,
        "SM00000000000000000000000000000002",
        "+4791230003",
        "STOP",
    )
    .await;
    assert_eq!(
        old_stop.keyword_action.as_deref(),
        Some("optout"),
        "{old_stop:?}"
    );
    let late_ender = testing::contact_with_consent(core, "+4791230004", &[Channel::WhatsApp]).await;
    webhook(core, "old", t0).await;
    chain::seal(core).await.unwrap();

    let old_sent_before = message(core, &old_sent).await;
    assert!(old_sent_before.body.is_some() || old_sent_before.variables != "{}");
    let tool_calls_before = tool_call::Entity::find()
        .filter(tool_call::Column::MessageId.eq(&old_sent))
        .count(&core.db.conn)
        .await
        .unwrap();

    // Five years less ten days on, the late ender revokes.
    env.clock.set(t0 + Duration::days(1826 - 10));
    consent::opt_out(
        &core.db.conn,
        &late_ender,
        Some(Channel::WhatsApp),
        consent::Scope::All,
        OptOutSource::Staff,
        Some("asked on the phone"),
        "staff@example.com",
        core.now(),
    )
    .await
    .unwrap();

    // Yesterday (five years and one day after t0 is "now"): new rows.
    let now = t0 + Duration::days(1827);
    env.clock.set(now - Duration::days(1));
    let new_sent = sent_message(&env, "+4791230005").await;
    let new_text = receive(
        core,
        "SM00000000000000000000000000000003",
        "+4791230005",
        "Thanks, see you",
    )
    .await;
    webhook(core, "new", core.now()).await;
    chain::seal(core).await.unwrap();
    env.clock.set(now);

    // A consent revoked long ago, but written just now and not chained yet.
    let unchained = testing::contact_with_consent(core, "+4791230006", &[Channel::WhatsApp]).await;
    consent::opt_out(
        &core.db.conn,
        &unchained,
        Some(Channel::WhatsApp),
        consent::Scope::All,
        OptOutSource::Staff,
        None,
        "staff@example.com",
        t0,
    )
    .await
    .unwrap();

    let suppressions_before = suppressions(core).await;
    assert!(suppressions_before.len() >= 3, "{suppressions_before:?}");
    let stopper_before = consent_of(core, &stopper).await;
    let new_sent_before = message(core, &new_sent).await;
    let old_queued_before = message(core, &old_queued).await;

    // The job, as the scheduler runs it.
    let run = housekeeping::run(core, Job::ApplyRetention).await.unwrap();
    let RunResult::Ok { summary } = run else {
        panic!("{run:?}");
    };
    assert!(
        summary.contains("message_bodies 2")
            && summary.contains("inbound_texts 2")
            && summary.contains("webhook_audit 1")
            && summary.contains("consent_evidence 1, 1 deferred"),
        "{summary}"
    );

    // The old sent message: content gone, the row and its evidence kept.
    let m = message(core, &old_sent).await;
    assert_eq!(m.body, None);
    assert_eq!(m.source_text, None);
    assert_eq!(m.media_url, None);
    assert_eq!(m.variables, "{}");
    assert_eq!(m.state, old_sent_before.state);
    assert_eq!(m.template_name, old_sent_before.template_name);
    assert_eq!(m.to_address, old_sent_before.to_address);
    assert_eq!(m.provider_sid, old_sent_before.provider_sid);
    assert_eq!(
        tool_call::Entity::find()
            .filter(tool_call::Column::MessageId.eq(&old_sent))
            .count(&core.db.conn)
            .await
            .unwrap(),
        tool_calls_before,
        "the verdicts stay"
    );
    // The other old message, the answer to the STOP: cleared too.
    let others = outbound_message::Entity::find()
        .filter(outbound_message::Column::CreatedAt.lt(now - Duration::days(90)))
        .filter(outbound_message::Column::Id.is_not_in([old_sent.clone(), old_queued.clone()]))
        .all(&core.db.conn)
        .await
        .unwrap();
    assert_eq!(others.len(), 1, "{others:?}");
    assert_eq!(others[0].to_address, "+4791230003");
    assert_eq!(
        (others[0].body.as_deref(), others[0].variables.as_str()),
        (None, "{}")
    );
    // Still queued: it may go, so it keeps what it says.
    let q = message(core, &old_queued).await;
    assert_eq!(q.state, MessageState::Queued);
    assert_eq!(q, old_queued_before);
    // Yesterday's message: untouched.
    assert_eq!(message(core, &new_sent).await, new_sent_before);

    // Inbound: the old texts and media go, who, when and the STOP stay.
    for old in [&old_text, &old_stop] {
        let i = inbound_row(core, &old.provider_message_id).await;
        assert_eq!(i.body, None);
        assert_eq!(i.media, "[]");
        assert_eq!(i.from_address, old.from_address);
        assert_eq!(i.received_at, old.received_at);
        assert_eq!(i.keyword_action, old.keyword_action);
        assert_eq!(i.contact_id, old.contact_id);
    }
    assert_eq!(
        inbound_row(core, &new_text.provider_message_id).await,
        new_text
    );

    // Webhook audit: the old row deleted, the new kept.
    let left: Vec<Option<String>> = webhook_audit::Entity::find()
        .all(&core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|w| w.event_id)
        .collect();
    assert_eq!(left, vec![Some("new".to_string())]);

    // Consents: in force keeps its evidence; recently ended keeps it; ended
    // five years ago loses ip and user agent through a redaction entry,
    // and keeps everything else.
    let c = consent_of(core, &in_force).await;
    assert_eq!(c.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(c.user_agent.as_deref(), Some("Mozilla/5.0 test"));
    let c = consent_of(core, &late_ender).await;
    assert!(c.revoked_at.is_some());
    assert_eq!(c.ip.as_deref(), Some("203.0.113.7"));
    let s = consent_of(core, &stopper).await;
    assert_eq!(s.ip, None);
    assert_eq!(s.user_agent, None);
    assert_eq!(
        consent_entity::Model {
            ip: stopper_before.ip.clone(),
            user_agent: stopper_before.user_agent.clone(),
            ..s.clone()
        },
        stopper_before,
        "only ip and user_agent changed"
    );
    let entry = audit_chain::Entity::find()
        .filter(audit_chain::Column::RowTable.eq("consents"))
        .filter(audit_chain::Column::RowId.eq(&s.id))
        .filter(audit_chain::Column::Event.eq("redacted"))
        .one(&core.db.conn)
        .await
        .unwrap()
        .expect("a redacted entry");
    let detail = entry.detail.unwrap();
    assert!(
        detail.contains("retention") && detail.contains("housekeeping"),
        "{detail}"
    );
    assert!(
        detail.contains("\"ip\"") && detail.contains("\"user_agent\""),
        "{detail}"
    );
    // Not chained yet: left for the next run.
    assert_eq!(
        consent_of(core, &unchained).await.ip.as_deref(),
        Some("203.0.113.7")
    );
    // Suppressions: never touched.
    assert_eq!(suppressions(core).await, suppressions_before);

    // Recorded per kind.
    let runs = retention_run::Entity::find()
        .all(&core.db.conn)
        .await
        .unwrap();
    let recorded: BTreeMap<String, (i64, i64)> = runs
        .iter()
        .map(|r| (r.kind.clone(), (r.purged, r.deferred)))
        .collect();
    assert_eq!(runs.len(), 4);
    assert_eq!(recorded["message_bodies"], (2, 0));
    assert_eq!(recorded["inbound_texts"], (2, 0));
    assert_eq!(recorded["webhook_audit"], (1, 0));
    assert_eq!(recorded["consent_evidence"], (1, 1));

    // Chained now, the next run takes the deferred consent; the chain
    // still verifies.
    chain::seal(core).await.unwrap();
    env.clock.advance(Duration::days(1));
    let second = retention::apply(core).await.unwrap();
    assert_eq!(counts(&second), [(0, 0), (0, 0), (0, 0), (1, 0)]);
    let u = consent_of(core, &unchained).await;
    assert_eq!((u.ip, u.user_agent), (None, None));
    chain::seal(core).await.unwrap();
    assert_intact(&chain::verify(&core.db.conn).await.unwrap());

    // Once more: nothing left to purge.
    env.clock.advance(Duration::days(1));
    let third = retention::apply(core).await.unwrap();
    assert_eq!(counts(&third), [(0, 0); 4]);
    assert_eq!(suppressions(core).await, suppressions_before);
    assert_intact(&chain::verify(&core.db.conn).await.unwrap());

    // The console's view: last run and the total over 30 days.
    let view = retention::overview(core).await.unwrap();
    let of = |k: &str| view.iter().find(|v| v.kind == k).unwrap().clone();
    assert_eq!(of("message_bodies").days, 90);
    assert_eq!(
        of("message_bodies").variable,
        "HEIMDALL_RETAIN_MESSAGE_BODY_DAYS"
    );
    assert_eq!(of("message_bodies").last_purged, Some(0));
    assert_eq!(of("message_bodies").last_run_at, Some(core.now()));
    assert_eq!(of("message_bodies").purged_last_30_days, 2);
    assert_eq!(of("inbound_texts").purged_last_30_days, 2);
    assert_eq!(of("consent_evidence").purged_last_30_days, 2);
    assert_eq!(of("consent_evidence").days, 1826);

    // Past 30 days, the total no longer counts those runs.
    env.clock.advance(Duration::days(31));
    let view = retention::overview(core).await.unwrap();
    assert!(view.iter().all(|v| v.purged_last_30_days == 0), "{view:?}");
}

#[tokio::test]
async fn shorter_limits_are_read_from_the_settings_and_zero_is_refused() {
    let env = TestEnv::new(&[
        ("HEIMDALL_RETAIN_MESSAGE_BODY_DAYS", "7"),
        ("HEIMDALL_RETAIN_INBOUND_TEXT_DAYS", "3"),
        ("HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS", "400"),
    ])
    .await;
    let core = &env.core;
    assert_eq!(core.settings.retain_message_body_days, 7);
    assert_eq!(core.settings.retain_inbound_text_days, 3);
    assert_eq!(core.settings.retain_consent_evidence_days, 400);
    let text = receive(
        core,
        "SM00000000000000000000000000000009",
        "+4791230009",
        "Hello",
    )
    .await;
    env.clock.advance(Duration::days(2));
    assert_eq!(
        retention::purge(core, Kind::InboundTexts)
            .await
            .unwrap()
            .purged,
        0
    );
    env.clock.advance(Duration::days(2));
    assert_eq!(
        retention::purge(core, Kind::InboundTexts)
            .await
            .unwrap()
            .purged,
        1
    );
    assert_eq!(
        inbound_row(core, &text.provider_message_id).await.body,
        None
    );

    for var in [
        "HEIMDALL_RETAIN_MESSAGE_BODY_DAYS",
        "HEIMDALL_RETAIN_INBOUND_TEXT_DAYS",
        "HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS",
    ] {
        let err = Settings::from_source(&Source::from_pairs([(var, "0")]))
            .expect_err(var)
            .to_string();
        assert!(err.contains(var) && err.contains("at least 1"), "{err}");
    }
}

#[tokio::test]
async fn a_backlog_larger_than_a_batch_is_purged_in_one_run() {
    use sea_orm::Set;
    let env = env().await;
    let core = &env.core;
    let contact = testing::contact_with_consent(core, "+4791230010", &[Channel::WhatsApp]).await;
    let n = retention::BATCH as usize * 2 + 7;
    let at = core.now();
    let rows: Vec<inbound_message::ActiveModel> = (0..n)
        .map(|i| inbound_message::ActiveModel {
            id: Set(heimdall_domain::clock::new_id()),
            contact_id: Set(contact.clone()),
            channel: Set("whatsapp".into()),
            provider: Set("twilio".into()),
            provider_message_id: Set(format!("SMBACKLOG{i:06}")),
            from_address: Set("+4791230010".into()),
            to_address: Set(None),
            body: Set(Some(format!("message {i}"))),
            media: Set("[]".into()),
            button_text: Set(None),
            button_payload: Set(None),
            profile_name: Set(None),
            keyword_action: Set(None),
            needs_review: Set(false),
            reviewed_at: Set(None),
            reviewed_by: Set(None),
            review_outcome: Set(None),
            received_at: Set(at),
            created_at: Set(at),
        })
        .collect();
    for chunk in rows.chunks(200) {
        inbound_message::Entity::insert_many(chunk.to_vec())
            .exec_without_returning(&core.db.conn)
            .await
            .unwrap();
    }
    env.clock.advance(Duration::days(91));
    let done = retention::purge(core, Kind::InboundTexts).await.unwrap();
    assert_eq!(done.purged, n as u64);
    let left = inbound_message::Entity::find()
        .filter(inbound_message::Column::Body.is_not_null())
        .count(&core.db.conn)
        .await
        .unwrap();
    assert_eq!(left, 0);
    assert_eq!(
        inbound_message::Entity::find()
            .count(&core.db.conn)
            .await
            .unwrap(),
        n as u64,
        "every row kept"
    );
}

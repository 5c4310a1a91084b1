//! Housekeeping jobs against real storage with the manual clock: each job
//! does its work, runs once per cadence across processes, and leaves its
//! last run, next run and outcome for the console; a failing job is
//! recorded and alerted.

use heimdall_domain::compliance::message_source::MessageSource;
use heimdall_domain::compliance::message_state::MessageState;
use std::collections::HashMap;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, Set};
use secrecy::SecretString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::channels::twilio::TwilioClient;
use heimdall_domain::clock::new_id;
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::core::{CoreParts, Providers};
use heimdall_domain::entities::{
    alert, outbound_message, processed_webhook_event, service_window, tier_usage, tier_usage_daily,
};
use heimdall_domain::housekeeping::{self, Job, RunResult};
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::settings::TwilioSettings;
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core};

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

async fn contact(core: &Core, phone: &str) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: phone.into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    heimdall_domain::consent::record_opt_in(
        &core.db.conn,
        &c.id,
        Channel::WhatsApp,
        None,
        ConsentSource::Api,
        &ConsentEvidence {
            ip: Some("203.0.113.7".into()),
            user_agent: Some("Mozilla/5.0 test".into()),
            consent_text_version: Some("v1".into()),
            consent_text: Some("I agree.".into()),
            ..Default::default()
        },
        "test",
        false,
        core.now(),
    )
    .await
    .unwrap();
    c.id
}

/// Accept a template message to the contact; its id.
async fn message(core: &Core, contact_id: &str) -> String {
    outbound::accept(
        core,
        SendRequest {
            recipient: Recipient::Contact(contact_id.into()),
            channel: Channel::WhatsApp,
            content: RequestedContent::Template {
                name: "task_reminder".into(),
                variables: [("task_name", "Call Bob"), ("due_time", "17:00")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
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
        },
    )
    .await
    .unwrap()
    .message_id
}

async fn set_message(core: &Core, id: &str, cols: Vec<(outbound_message::Column, Expr)>) {
    let mut q = outbound_message::Entity::update_many();
    for (c, v) in cols {
        q = q.col_expr(c, v);
    }
    q.filter(outbound_message::Column::Id.eq(id))
        .exec(&core.db.conn)
        .await
        .unwrap();
}

async fn state(core: &Core, id: &str) -> MessageState {
    outbound_message::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .state
}

#[tokio::test]
async fn a_job_run_is_recorded_with_last_run_next_run_and_outcome() {
    let env = env().await;
    let before = housekeeping::job_runs(&env.core).await.unwrap();
    assert_eq!(before.len(), Job::ALL.len());
    for j in &before {
        assert_eq!(j.status, "never_run", "{}", j.name);
        assert_eq!(j.runs, 0);
        assert!(j.next_run_at.unwrap() > env.core.now(), "{}", j.name);
    }

    let now = env.core.now(); // 12:00:00
    let r = housekeeping::run(&env.core, Job::PurgeDedup).await.unwrap();
    assert_eq!(
        r,
        RunResult::Ok {
            summary: "0 dedup entries and 0 finished queue jobs purged".into()
        }
    );
    // A second tick (or another process) in the same cadence does not run it.
    env.clock.advance(Duration::minutes(5));
    assert_eq!(
        housekeeping::run(&env.core, Job::PurgeDedup).await.unwrap(),
        RunResult::Skipped
    );
    let view = housekeeping::job_runs(&env.core).await.unwrap();
    let purge = view.iter().find(|j| j.name == "purge_dedup").unwrap();
    assert_eq!(purge.status, "ok");
    assert_eq!(purge.runs, 1);
    assert_eq!(purge.last_run_at, Some(now));
    assert_eq!(
        purge.next_run_at,
        Some(Utc.with_ymd_and_hms(2026, 11, 17, 12, 17, 0).unwrap())
    );
    assert_eq!(
        purge.last_outcome.as_deref(),
        Some("ok: 0 dedup entries and 0 finished queue jobs purged")
    );
    assert_eq!(purge.cron, "0 17 * * * *");

    env.clock.advance(Duration::hours(1));
    assert!(matches!(
        housekeeping::run(&env.core, Job::PurgeDedup).await.unwrap(),
        RunResult::Ok { .. }
    ));
    let view = housekeeping::job_runs(&env.core).await.unwrap();
    assert_eq!(
        view.iter().find(|j| j.name == "purge_dedup").unwrap().runs,
        2
    );
}

#[tokio::test]
async fn every_job_runs_on_an_empty_installation() {
    let env = env().await;
    for job in Job::ALL {
        let r = housekeeping::run(&env.core, job).await.unwrap();
        assert!(matches!(r, RunResult::Ok { .. }), "{job}: {r:?}");
    }
    for j in housekeeping::job_runs(&env.core).await.unwrap() {
        assert_eq!(j.status, "ok", "{}", j.name);
        assert_eq!(j.runs, 1);
    }
    // Without Twilio, the template sync says it skipped.
    let view = housekeeping::job_runs(&env.core).await.unwrap();
    let sync = view.iter().find(|j| j.name == "sync_templates").unwrap();
    assert!(sync.last_outcome.as_deref().unwrap().contains("skipped"));
}

#[tokio::test]
async fn a_failing_job_is_recorded_and_alerted() {
    let env = env().await;
    // The spool file cannot be read (it is a directory).
    std::fs::create_dir_all(heimdall_domain::store::spool::spool_path(&env.core)).unwrap();
    let r = housekeeping::run(&env.core, Job::ReplayWebhookSpool)
        .await
        .unwrap();
    assert!(matches!(r, RunResult::Failed { .. }), "{r:?}");
    let view = housekeeping::job_runs(&env.core).await.unwrap();
    let j = view
        .iter()
        .find(|j| j.name == "replay_webhook_spool")
        .unwrap();
    assert_eq!(j.status, "error");
    assert_eq!(j.last_outcome.as_deref(), Some("error"));
    assert!(j.last_error.is_some());
    assert!(j.next_run_at.is_some());
    let a = alert::Entity::find()
        .filter(alert::Column::Key.eq("job:replay_webhook_spool"))
        .one(&env.core.db.conn)
        .await
        .unwrap();
    assert!(a.is_some());
}

#[tokio::test]
async fn dedup_entries_older_than_a_day_are_purged() {
    let env = env().await;
    for (key, age) in [("twilio:SM1", 25), ("twilio:SM2", 13)] {
        let seen = env.core.now() - Duration::hours(age);
        processed_webhook_event::ActiveModel {
            event_key: Set(key.into()),
            provider: Set("twilio".into()),
            created_at: Set(seen),
            expires_at: Set(seen + Duration::hours(24)),
        }
        .insert(&env.core.db.conn)
        .await
        .unwrap();
    }
    let summary = housekeeping::execute(&env.core, Job::PurgeDedup)
        .await
        .unwrap();
    assert_eq!(summary, "1 dedup entries and 0 finished queue jobs purged");
    let left = processed_webhook_event::Entity::find()
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].event_key, "twilio:SM2");
}

#[tokio::test]
async fn service_windows_closed_long_ago_are_deleted() {
    let env = env().await;
    let old = contact(&env.core, "+4791234501").await;
    let recent = contact(&env.core, "+4791234502").await;
    let now = env.core.now();
    contacts::open_window(
        &env.core.db.conn,
        &old,
        Channel::WhatsApp,
        now - Duration::days(40),
        now,
    )
    .await
    .unwrap();
    contacts::open_window(
        &env.core.db.conn,
        &recent,
        Channel::WhatsApp,
        now - Duration::days(10),
        now,
    )
    .await
    .unwrap();
    assert_eq!(
        housekeeping::expire_service_windows(&env.core)
            .await
            .unwrap(),
        1
    );
    let left = service_window::Entity::find()
        .all(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].contact_id, recent);
}

async fn usage(core: &Core, portfolio: &str, recipient: &str, at: chrono::DateTime<Utc>) {
    tier_usage::ActiveModel {
        id: Set(new_id()),
        portfolio: Set(portfolio.into()),
        recipient: Set(recipient.into()),
        message_id: Set(None),
        reached_at: Set(at),
    }
    .insert(&core.db.conn)
    .await
    .unwrap();
}

async fn daily(core: &Core) -> HashMap<(String, String), i64> {
    tier_usage_daily::Entity::find()
        .all(&core.db.conn)
        .await
        .unwrap()
        .into_iter()
        .map(|d| ((d.portfolio, d.day), d.recipients))
        .collect()
}

#[tokio::test]
async fn tier_usage_rolls_up_into_daily_counts() {
    let env = env().await;
    let now = env.core.now(); // 17 November, 12:00 UTC
    for (i, at) in [
        now - Duration::hours(30), // 16 November
        now - Duration::hours(31),
        now - Duration::hours(32),
        now - Duration::hours(40), // 15 November
        now - Duration::hours(41),
        now - Duration::hours(2), // still in the moving 24 hours
    ]
    .into_iter()
    .enumerate()
    {
        usage(&env.core, "+14155238886", &format!("+47912345{i:02}"), at).await;
    }
    usage(&env.core, "other", "+4791234599", now - Duration::hours(30)).await;

    let r = housekeeping::roll_up_tier_usage(&env.core).await.unwrap();
    assert_eq!((r.rows, r.days), (6, 3), "{r:?}");
    let d = daily(&env.core).await;
    assert_eq!(d[&("+14155238886".into(), "2026-11-16".into())], 3);
    assert_eq!(d[&("+14155238886".into(), "2026-11-15".into())], 2);
    assert_eq!(d[&("other".into(), "2026-11-16".into())], 1);
    assert_eq!(
        tier_usage::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        1,
        "the moving 24 hours stay"
    );

    // Nothing new: nothing changes. A late row for a counted day adds to it.
    assert_eq!(
        housekeeping::roll_up_tier_usage(&env.core)
            .await
            .unwrap()
            .rows,
        0
    );
    usage(
        &env.core,
        "+14155238886",
        "+4791234588",
        now - Duration::hours(33),
    )
    .await;
    env.clock.advance(Duration::hours(1));
    housekeeping::roll_up_tier_usage(&env.core).await.unwrap();
    let d = daily(&env.core).await;
    assert_eq!(d[&("+14155238886".into(), "2026-11-16".into())], 4);
    let history = housekeeping::tier_history(&env.core, 10).await.unwrap();
    assert_eq!(history.len(), 3);
    assert_eq!(history[0].day, "2026-11-16");
}

/// A stand-in for Twilio's Message resource: answers `GET .../Messages/{sid}.json`
/// with the status given for that sid, 404 otherwise.
async fn fake_twilio(statuses: HashMap<&'static str, &'static str>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let statuses = Arc::new(statuses);
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let statuses = statuses.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&got).to_string();
                let path = head.split_whitespace().nth(1).unwrap_or("").to_string();
                let found = statuses
                    .iter()
                    .find(|(sid, _)| path.ends_with(&format!("/Messages/{sid}.json")));
                let (code, body) = match found {
                    Some((sid, status)) => (
                        200,
                        format!(r#"{{"sid": "{sid}", "status": "{status}", "error_code": null}}"#),
                    ),
                    None => (
                        404,
                        r#"{"code": 20404, "message": "not found", "status": 404}"#.to_string(),
                    ),
                };
                let resp = format!(
                    "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    format!("http://{addr}")
}

#[tokio::test]
async fn reconcile_requeues_lost_messages_and_asks_twilio_about_stale_statuses() {
    let env = env().await;
    let cid = contact(&env.core, "+4791234567").await;
    let now = env.core.now();
    let old = Expr::value(now - Duration::minutes(20));

    // Queued 20 minutes ago and never picked up: its queue entry was lost.
    let lost = message(&env.core, &cid).await;
    set_message(
        &env.core,
        &lost,
        vec![(outbound_message::Column::UpdatedAt, old.clone())],
    )
    .await;
    // Deferred until tonight: still waiting for its time, left alone.
    let waiting = message(&env.core, &cid).await;
    set_message(
        &env.core,
        &waiting,
        vec![
            (outbound_message::Column::State, Expr::value("deferred")),
            (
                outbound_message::Column::DeferUntil,
                Expr::value(Some(now + Duration::hours(8))),
            ),
            (outbound_message::Column::UpdatedAt, old.clone()),
        ],
    )
    .await;
    // Sent a day and a half ago, no status since; Twilio says delivered.
    let stale = message(&env.core, &cid).await;
    // Sent as long ago, Twilio still says sent: asked, not moved.
    let unmoved = message(&env.core, &cid).await;
    // Sent ten days ago: no longer asked about.
    let ancient = message(&env.core, &cid).await;
    for (id, sid, created) in [
        (&stale, "SMstale", Duration::hours(36)),
        (&unmoved, "SMunmoved", Duration::hours(36)),
        (&ancient, "SMancient", Duration::days(10)),
    ] {
        set_message(
            &env.core,
            id,
            vec![
                (outbound_message::Column::State, Expr::value("sent")),
                (
                    outbound_message::Column::ProviderSid,
                    Expr::value(Some(sid)),
                ),
                (
                    outbound_message::Column::Provider,
                    Expr::value(Some("twilio")),
                ),
                (
                    outbound_message::Column::CreatedAt,
                    Expr::value(now - created),
                ),
                (
                    outbound_message::Column::UpdatedAt,
                    Expr::value(now - Duration::hours(30)),
                ),
            ],
        )
        .await;
    }
    env.take_enqueued();

    let base = fake_twilio(HashMap::from([
        ("SMstale", "delivered"),
        ("SMunmoved", "sent"),
        ("SMancient", "delivered"),
    ]))
    .await;
    let twilio = TwilioClient::new(
        &TwilioSettings {
            account_sid: "ACsandbox0000000000000000000000000".into(),
            auth_token: SecretString::from("test-token".to_string()),
            whatsapp_number: None,
            sms_number: None,
            api_base: base.parse().unwrap(),
            content_base: base.parse().unwrap(),
        },
        reqwest::Client::new(),
    );
    let core = Core::new(CoreParts {
        settings: (*env.core.settings).clone(),
        db: env.core.db.clone(),
        redis: env.core.redis.clone(),
        clock: Arc::new(env.clock.clone()),
        queue: env.queue.clone(),
        providers: Providers {
            twilio: Some(Arc::new(twilio)),
            ..env.core.providers.clone()
        },
        alerts: None,
    });

    let r = housekeeping::reconcile_messages(&core).await.unwrap();
    assert_eq!(r.requeued, 1, "{r:?}");
    assert_eq!(env.take_enqueued(), vec![lost.clone()]);
    assert_eq!((r.asked, r.moved, r.errors), (2, 1, 0), "{r:?}");
    assert_eq!(state(&core, &stale).await, MessageState::Delivered);
    assert_eq!(state(&core, &unmoved).await, MessageState::Sent);
    assert_eq!(state(&core, &ancient).await, MessageState::Sent);
    assert_eq!(state(&core, &waiting).await, MessageState::Deferred);

    // The unmoved one is not asked again until another day has passed.
    env.clock.advance(Duration::hours(1));
    let r = housekeeping::reconcile_messages(&core).await.unwrap();
    assert_eq!(r.asked, 0, "{r:?}");
    env.clock.advance(Duration::hours(24));
    let r = housekeeping::reconcile_messages(&core).await.unwrap();
    assert_eq!((r.asked, r.moved), (1, 0), "{r:?}");
}

#[tokio::test]
async fn a_send_stuck_without_a_provider_id_is_resolved() {
    let env = env().await;
    let cid = contact(&env.core, "+4791234567").await;
    let id = message(&env.core, &cid).await;
    set_message(
        &env.core,
        &id,
        vec![
            (outbound_message::Column::State, Expr::value("sending")),
            (
                outbound_message::Column::UpdatedAt,
                Expr::value(env.core.now() - Duration::minutes(20)),
            ),
        ],
    )
    .await;
    let r = housekeeping::reconcile_messages(&env.core).await.unwrap();
    assert_eq!(r.stuck, 1, "{r:?}");
    assert_eq!(state(&env.core, &id).await, MessageState::Failed);
}

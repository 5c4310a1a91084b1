//! Recurring schedules against real storage with the manual clock: a daily
//! briefing at 07:00 local across a daylight-saving change, a weekly review
//! on Monday, a revoked consent blocking the next briefing, two workers
//! sending one occurrence once, downtime sending only the latest occurrence
//! within tolerance, variables fetched from a URL, and a failing URL
//! recorded and alerted.

use heimdall_domain::compliance::message_state::MessageState;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, TimeZone, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::automations::reminders::{RequestError, Target};
use heimdall_domain::automations::schedules::{self, NewSchedule, RunOptions, ScheduleFilter};
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::core::CoreParts;
use heimdall_domain::entities::{
    alert, outbound_message, schedule, schedule_occurrence, tool_call,
};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core, Db};

const PHONE: &str = "+4791234567";

async fn env() -> TestEnv {
    // The tests' variables servers listen on this machine: allowed
    // explicitly, as an operator allows an internal n8n.
    env_with(&[("HEIMDALL_FETCH_ALLOWLIST", "127.0.0.1")]).await
}

async fn env_with(extra: &[(&str, &str)]) -> TestEnv {
    let mut pairs = vec![
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_DAILY_BRIEFING",
            "HX00000000000000000000000000000002",
        ),
        (
            "WA_TEMPLATE_WEEKLY_REVIEW",
            "HX00000000000000000000000000000005",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ];
    pairs.extend_from_slice(extra);
    let env = TestEnv::new(&pairs).await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    env
}

async fn contact(core: &Core, phone: &str) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: phone.into(),
            name: Some("Test Person".into()),
            time_zone: Some("Europe/Oslo".into()),
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
            consent_text: Some("I agree to a daily briefing by WhatsApp.".into()),
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

fn bootstrap() -> ApiPrincipal {
    ApiPrincipal {
        key_id: None,
        name: "bootstrap".into(),
    }
}

fn briefing(contact_id: &str, cron: &str) -> NewSchedule {
    NewSchedule {
        name: "Daily briefing".into(),
        target: Target::Contact(contact_id.into()),
        cron: cron.into(),
        template_name: "daily_briefing".into(),
        variables: serde_json::from_value(serde_json::json!({
            "date": "today", "task_count": 3, "top_tasks": "Write, Review, Ship"
        }))
        .unwrap(),
        variables_url: None,
        tolerance_secs: None,
    }
}

fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}

async fn occurrences(core: &Core, schedule_id: &str) -> Vec<schedule_occurrence::Model> {
    schedule_occurrence::Entity::find()
        .filter(schedule_occurrence::Column::ScheduleId.eq(schedule_id))
        .order_by_asc(schedule_occurrence::Column::OccursAt)
        .all(&core.db.conn)
        .await
        .unwrap()
}

async fn schedule_messages(core: &Core) -> Vec<outbound_message::Model> {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::Source.eq("schedule"))
        .order_by_asc(outbound_message::Column::CreatedAt)
        .all(&core.db.conn)
        .await
        .unwrap()
}

async fn second_core(env: &TestEnv) -> Arc<Core> {
    let settings = (*env.core.settings).clone();
    let db = Db::connect(&settings).await.unwrap();
    let redis = heimdall_domain::core::connect_redis(&settings)
        .await
        .unwrap();
    Core::new(CoreParts {
        settings,
        db,
        redis,
        clock: Arc::new(env.clock.clone()),
        queue: env.queue.clone(),
        providers: env.core.providers.clone(),
        alerts: None,
    })
}

/// A one-route HTTP server answering every request with `status` and
/// `body`; its URL (with a token that must never show) and a hit counter.
async fn serve(status: u16, body: &'static str) -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let counter = counter.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let mut got = Vec::new();
                while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                counter.fetch_add(1, Ordering::SeqCst);
                let resp = format!(
                    "HTTP/1.1 {status} Whatever\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    (format!("http://{addr}/briefing?token=s3cret"), hits)
}

/// A server that accepts and never answers.
async fn serve_silence() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(sock);
        }
    });
    format!("http://{addr}/briefing")
}

#[tokio::test]
async fn a_daily_briefing_fires_at_seven_local_across_a_daylight_saving_change() {
    let env = env().await;
    // Friday 27 March 2026; Oslo moves from UTC+1 to UTC+2 on Sunday the 29th.
    env.clock.set(utc(2026, 3, 27, 12, 0, 0));
    let cid = contact(&env.core, PHONE).await;
    let s = schedules::create(&env.core, &bootstrap(), briefing(&cid, "0 7 * * *"))
        .await
        .unwrap();
    assert_eq!(s.time_zone, "Europe/Oslo");
    assert_eq!(s.next_run_at, Some(utc(2026, 3, 28, 6, 0, 0)));

    let mut sent_at = Vec::new();
    for (before, at) in [
        (utc(2026, 3, 28, 5, 59, 50), utc(2026, 3, 28, 6, 0, 10)),
        // Sunday: 07:00 is now 05:00 UTC.
        (utc(2026, 3, 29, 4, 59, 50), utc(2026, 3, 29, 5, 0, 10)),
        (utc(2026, 3, 30, 4, 59, 50), utc(2026, 3, 30, 5, 0, 10)),
    ] {
        env.clock.set(before);
        let early = schedules::run_due(&env.core).await.unwrap();
        assert_eq!(early.sent, 0, "before {at}");
        env.clock.set(at);
        let report = schedules::run_due(&env.core).await.unwrap();
        assert_eq!(report.sent, 1, "at {at}: {report:?}");
        sent_at.push(at);
    }
    let occ = occurrences(&env.core, &s.id).await;
    assert_eq!(occ.len(), 3);
    for o in &occ {
        assert_eq!(o.state, "sent");
        let local = o.occurs_at.with_timezone(&chrono_tz::Europe::Oslo);
        assert_eq!(local.format("%H:%M").to_string(), "07:00", "{o:?}");
    }
    assert_eq!(occ[1].occurs_at, utc(2026, 3, 29, 5, 0, 0));
    let msgs = schedule_messages(&env.core).await;
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[0].actor, "api_key:bootstrap");
    let s = schedules::get(&env.core, &s.id).await.unwrap();
    assert_eq!(s.next_run_at, Some(utc(2026, 3, 31, 5, 0, 0)));
    assert_eq!(s.last_run_at, Some(utc(2026, 3, 30, 5, 0, 0)));
    assert!(s.last_outcome.as_deref().unwrap().starts_with("sent"));
    assert_eq!(s.occurrences.as_ref().map(Vec::len), Some(3));
}

#[tokio::test]
async fn a_weekly_review_goes_on_monday() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    // Tuesday 17 November 2026. Five fields: day-of-week 1 is Monday.
    let s = schedules::create(
        &env.core,
        &bootstrap(),
        NewSchedule {
            name: "Weekly review".into(),
            cron: "0 18 * * 1".into(),
            template_name: "weekly_review".into(),
            variables: serde_json::from_value(
                serde_json::json!({"completed_count": 12, "highlights": "Shipped"}),
            )
            .unwrap(),
            ..briefing(&cid, "")
        },
    )
    .await
    .unwrap();
    let next = s.next_run_at.unwrap();
    assert_eq!(next, utc(2026, 11, 23, 17, 0, 0));
    assert_eq!(
        next.with_timezone(&chrono_tz::Europe::Oslo)
            .format("%A %H:%M")
            .to_string(),
        "Monday 18:00"
    );
    env.clock.set(next + Duration::seconds(3));
    assert_eq!(schedules::run_due(&env.core).await.unwrap().sent, 1);
    assert_eq!(
        schedules::get(&env.core, &s.id).await.unwrap().next_run_at,
        Some(utc(2026, 11, 30, 17, 0, 0))
    );
    let msgs = schedule_messages(&env.core).await;
    assert_eq!(msgs[0].template_name.as_deref(), Some("weekly_review"));
}

#[tokio::test]
async fn a_revoked_consent_blocks_the_recurring_briefing() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let s = schedules::create(&env.core, &bootstrap(), briefing(&cid, "0 7 * * *"))
        .await
        .unwrap();
    let first = s.next_run_at.unwrap();
    env.clock.set(first + Duration::seconds(5));
    assert_eq!(schedules::run_due(&env.core).await.unwrap().sent, 1);

    // The person revokes consent (without a STOP keyword: staff recorded
    // it, which suppresses them too).
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Staff,
        None,
        "staff",
        env.core.now(),
    )
    .await
    .unwrap();
    env.clock
        .set(first + Duration::days(1) + Duration::seconds(5));
    let report = schedules::run_due(&env.core).await.unwrap();
    assert_eq!((report.sent, report.blocked), (0, 1), "{report:?}");
    let occ = occurrences(&env.core, &s.id).await;
    assert_eq!(occ.len(), 2);
    assert_eq!(occ[1].state, "blocked");
    assert!(occ[1].outcome.as_deref().unwrap().starts_with("suppressed"));
    let s = schedules::get(&env.core, &s.id).await.unwrap();
    assert!(
        s.last_outcome
            .as_deref()
            .unwrap()
            .starts_with("blocked: suppressed"),
        "{:?}",
        s.last_outcome
    );
    // Still active: the next one is evaluated again (consent may return).
    assert!(s.active);
    let msgs = schedule_messages(&env.core).await;
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[1].state, MessageState::Blocked);
    assert_eq!(msgs[1].block_reason.as_deref(), Some("suppressed"));
    assert_eq!(env.take_enqueued().len(), 1, "only the first went on");
}

#[tokio::test]
async fn two_workers_send_one_occurrence_once() {
    let env = env().await;
    let other = second_core(&env).await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let cid = contact(&env.core, &format!("+47912345{i:02}")).await;
        let s = schedules::create(&env.core, &bootstrap(), briefing(&cid, "0 7 * * *"))
            .await
            .unwrap();
        ids.push(s);
    }
    let at = ids[0].next_run_at.unwrap();
    env.clock.set(at + Duration::seconds(2));
    let (a, b) = tokio::join!(schedules::run_due(&env.core), schedules::run_due(&other));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a.sent + b.sent, 4, "{a:?} {b:?}");
    for s in &ids {
        let occ = occurrences(&env.core, &s.id).await;
        assert_eq!(occ.len(), 1);
        assert_eq!(occ[0].state, "sent");
    }
    assert_eq!(schedule_messages(&env.core).await.len(), 4);
    // And again, later in the same minute: nothing new.
    env.clock.set(at + Duration::seconds(30));
    let (a, b) = tokio::join!(schedules::run_due(&env.core), schedules::run_due(&other));
    assert_eq!(a.unwrap().sent + b.unwrap().sent, 0);
    assert_eq!(schedule_messages(&env.core).await.len(), 4);
}

#[tokio::test]
async fn after_downtime_only_the_latest_occurrence_within_tolerance_is_sent() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let start = env.core.now(); // 12:00 UTC, 13:00 in Oslo
    let s = schedules::create(
        &env.core,
        &bootstrap(),
        NewSchedule {
            name: "Hourly nudge".into(),
            ..briefing(&cid, "0 * * * *")
        },
    )
    .await
    .unwrap();
    // Down for five hours: 13:00, 14:00, 15:00, 16:00 and 17:00 UTC came due.
    env.clock
        .set(start + Duration::hours(5) + Duration::minutes(5));
    let report = schedules::run_due(&env.core).await.unwrap();
    assert_eq!((report.sent, report.missed), (1, 4), "{report:?}");
    let occ = occurrences(&env.core, &s.id).await;
    assert_eq!(
        occ.iter().map(|o| o.state.as_str()).collect::<Vec<_>>(),
        ["missed", "missed", "missed", "missed", "sent"]
    );
    assert_eq!(occ[4].occurs_at, start + Duration::hours(5));
    let audit = tool_call::Entity::find()
        .filter(tool_call::Column::Kind.eq("schedule_missed"))
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(audit, 4);
    assert_eq!(schedule_messages(&env.core).await.len(), 1, "no burst");

    // Down again, past the tolerance of even the latest one.
    env.clock
        .set(start + Duration::hours(8) + Duration::minutes(30));
    let report = schedules::run_due(&env.core).await.unwrap();
    assert_eq!((report.sent, report.missed), (0, 3), "{report:?}");
    assert_eq!(schedule_messages(&env.core).await.len(), 1);
    let s = schedules::get(&env.core, &s.id).await.unwrap();
    assert!(s.last_outcome.as_deref().unwrap().starts_with("missed"));
    assert_eq!(s.next_run_at, Some(start + Duration::hours(9)));
}

#[tokio::test]
async fn variables_are_fetched_from_the_url_at_send_time() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let (url, hits) = serve(
        200,
        r#"{"date": "Tuesday 17 November", "task_count": 4, "top_tasks": "Plan, Call Bob", "unrelated": {"x": 1}}"#,
    )
    .await;
    let s = schedules::create(
        &env.core,
        &bootstrap(),
        NewSchedule {
            variables: serde_json::from_value(serde_json::json!({"date": "fallback"})).unwrap(),
            variables_url: Some(url.clone()),
            ..briefing(&cid, "0 7 * * *")
        },
    )
    .await
    .unwrap();
    assert!(!s.variables_url.as_deref().unwrap().contains("s3cret"));
    assert_eq!(hits.load(Ordering::SeqCst), 0, "not fetched at creation");
    env.clock.set(s.next_run_at.unwrap() + Duration::seconds(1));
    let report = schedules::run_due(&env.core).await.unwrap();
    assert_eq!(report.sent, 1, "{report:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    let msg = &schedule_messages(&env.core).await[0];
    let vars: BTreeMap<String, String> = serde_json::from_str(&msg.variables).unwrap();
    assert_eq!(vars["date"], "Tuesday 17 November", "the URL wins");
    assert_eq!(vars["task_count"], "4");
    assert_eq!(vars["top_tasks"], "Plan, Call Bob");
    assert_eq!(vars.len(), 3, "only the template's variables");
}

#[tokio::test]
async fn a_failing_variables_url_is_recorded_and_alerted() {
    let env = env().await;
    let (server_error, _) = serve(500, r#"{"error": "n8n is down"}"#).await;
    let (not_json, _) = serve(200, "<html>login</html>").await;
    let (missing, _) = serve(200, r#"{"date": "today"}"#).await;
    let (wrong_type, _) = serve(200, r#"{"date": "x", "task_count": [1], "top_tasks": "y"}"#).await;
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/briefing", l.local_addr().unwrap())
    };
    let silent = serve_silence().await;
    let cases = [
        (server_error, "HTTP status 500"),
        (not_json, "not JSON"),
        (missing, "no value for: task_count, top_tasks"),
        (wrong_type, "not a string or number"),
        (refused, "could not connect"),
        (silent, "no answer within"),
    ];
    let mut ids = Vec::new();
    for (i, (url, _)) in cases.iter().enumerate() {
        let cid = contact(&env.core, &format!("+47912345{i:02}")).await;
        let s = schedules::create(
            &env.core,
            &bootstrap(),
            NewSchedule {
                variables: BTreeMap::new(),
                variables_url: Some(url.clone()),
                ..briefing(&cid, "0 7 * * *")
            },
        )
        .await
        .unwrap();
        ids.push(s);
    }
    env.clock
        .set(ids[0].next_run_at.unwrap() + Duration::seconds(1));
    let report = schedules::run_due_with(
        &env.core,
        &RunOptions {
            fetch_timeout: StdDuration::from_millis(300),
        },
    )
    .await
    .unwrap();
    assert_eq!((report.failed, report.sent), (6, 0), "{report:?}");
    for (s, (_, why)) in ids.iter().zip(cases.iter()) {
        let occ = occurrences(&env.core, &s.id).await;
        assert_eq!(occ.len(), 1);
        let outcome = occ[0].outcome.clone().unwrap_or_default();
        assert!(outcome.contains(why), "{why}: {outcome}");
        assert!(!outcome.contains("s3cret"));
        assert_eq!(occ[0].state, "failed");
        assert!(occ[0].message_id.is_none());
        let view = schedules::get(&env.core, &s.id).await.unwrap();
        assert!(
            view.last_outcome
                .as_deref()
                .unwrap()
                .starts_with("failed: variables URL"),
            "{:?}",
            view.last_outcome
        );
        let a = alert::Entity::find()
            .filter(alert::Column::Key.eq(format!("schedule_variables:{}", s.id)))
            .one(&env.core.db.conn)
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("no alert for {why}"));
        assert!(a.description.contains(why), "{}", a.description);
        assert!(!a.description.contains("s3cret"));
    }
    assert_eq!(
        tool_call::Entity::find()
            .filter(tool_call::Column::Kind.eq("schedule_failed"))
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        6
    );
    assert_eq!(env.provider.count(), 0);
    assert!(env.take_enqueued().is_empty());
}

#[tokio::test]
async fn bad_schedules_are_refused_and_change_nothing() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let ok = || briefing(&cid, "0 7 * * *");
    let cases: Vec<(NewSchedule, &str)> = vec![
        (
            NewSchedule {
                cron: "every morning".into(),
                ..ok()
            },
            "invalid_cron",
        ),
        (
            NewSchedule {
                cron: "0 7 * * 9".into(),
                ..ok()
            },
            "invalid_cron",
        ),
        (
            NewSchedule {
                cron: "*/10 * * * * *".into(),
                ..ok()
            },
            "invalid_cron",
        ),
        (
            NewSchedule {
                name: "  ".into(),
                ..ok()
            },
            "bad_request",
        ),
        (
            NewSchedule {
                variables_url: Some("ftp://example.com/x".into()),
                ..ok()
            },
            "invalid_variables_url",
        ),
        (
            NewSchedule {
                variables_url: Some("not a url".into()),
                ..ok()
            },
            "invalid_variables_url",
        ),
        (
            NewSchedule {
                variables: BTreeMap::new(),
                ..ok()
            },
            "template_not_approved",
        ),
        (
            NewSchedule {
                template_name: "calendar_reminder".into(),
                ..ok()
            },
            "template_not_approved",
        ),
        (
            NewSchedule {
                target: Target::Contact("nobody".into()),
                ..ok()
            },
            "contact",
        ),
        (
            NewSchedule {
                tolerance_secs: Some(0),
                ..ok()
            },
            "invalid_tolerance",
        ),
    ];
    for (input, want) in cases {
        let err = schedules::create(&env.core, &bootstrap(), input.clone())
            .await
            .unwrap_err();
        let got = match &err {
            RequestError::Invalid { code, .. } => code.to_string(),
            RequestError::ContactNotFound(_) => "contact".into(),
            RequestError::Refused { gate, .. } => gate.code().into(),
            other => format!("{other:?}"),
        };
        assert_eq!(got, want, "{input:?}: {err}");
    }
    assert_eq!(
        schedule::Entity::find()
            .count(&env.core.db.conn)
            .await
            .unwrap(),
        0
    );
    // With a URL, fixed variables may be partial.
    let partial = schedules::create(
        &env.core,
        &bootstrap(),
        NewSchedule {
            variables: BTreeMap::new(),
            variables_url: Some("https://n8n.example.com/webhook/briefing".into()),
            ..ok()
        },
    )
    .await;
    assert!(partial.is_ok(), "{partial:?}");
    // ...but not ones the template does not have.
    assert!(matches!(
        schedules::create(
            &env.core,
            &bootstrap(),
            NewSchedule {
                variables: serde_json::from_value(serde_json::json!({"colour": "red"})).unwrap(),
                variables_url: Some("https://n8n.example.com/webhook/briefing".into()),
                ..ok()
            },
        )
        .await,
        Err(RequestError::Refused {
            gate: Gate::TemplateNotApproved,
            ..
        })
    ));
}

#[tokio::test]
async fn pausing_and_resuming_a_schedule() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let s = schedules::create(&env.core, &bootstrap(), briefing(&cid, "0 7 * * *"))
        .await
        .unwrap();
    let first = s.next_run_at.unwrap();
    let paused = schedules::set_active(&env.core, &s.id, false, "api_key:bootstrap")
        .await
        .unwrap();
    assert!(!paused.active);
    assert_eq!(paused.next_run_at, None);
    env.clock.set(first + Duration::seconds(5));
    assert_eq!(
        schedules::run_due(&env.core).await.unwrap(),
        Default::default()
    );
    // Resumed after the occurrence: it is not sent late.
    env.clock.set(first + Duration::minutes(5));
    let resumed = schedules::set_active(&env.core, &s.id, true, "api_key:bootstrap")
        .await
        .unwrap();
    assert!(resumed.active);
    assert_eq!(resumed.next_run_at, Some(first + Duration::days(1)));
    assert_eq!(schedules::run_due(&env.core).await.unwrap().sent, 0);
    assert!(occurrences(&env.core, &s.id).await.is_empty());

    let active = schedules::list(
        &env.core,
        &ScheduleFilter {
            contact_id: Some(cid.clone()),
            active: Some(true),
        },
    )
    .await
    .unwrap();
    assert_eq!(active.len(), 1);
    assert!(matches!(
        schedules::set_active(&env.core, "missing", false, "x").await,
        Err(RequestError::NotFound(_))
    ));
}

#[tokio::test]
async fn an_occurrence_claimed_by_a_stopped_worker_is_sent_once() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let s = schedules::create(&env.core, &bootstrap(), briefing(&cid, "0 7 * * *"))
        .await
        .unwrap();
    let at = s.next_run_at.unwrap();
    env.clock.set(at + Duration::seconds(1));
    // A worker claimed it and stopped before sending.
    schedule_occurrence::ActiveModel {
        id: sea_orm::Set(heimdall_domain::clock::new_id()),
        schedule_id: sea_orm::Set(s.id.clone()),
        occurs_at: sea_orm::Set(at),
        state: sea_orm::Set("claimed".into()),
        message_id: sea_orm::Set(None),
        outcome: sea_orm::Set(None),
        created_at: sea_orm::Set(env.core.now()),
        updated_at: sea_orm::Set(Some(env.core.now())),
    }
    .insert(&env.core.db.conn)
    .await
    .unwrap();
    schedule::Entity::update_many()
        .col_expr(
            schedule::Column::NextRunAt,
            Expr::value(Some(at + Duration::days(1))),
        )
        .filter(schedule::Column::Id.eq(&s.id))
        .exec(&env.core.db.conn)
        .await
        .unwrap();
    env.clock.set(at + Duration::minutes(2));
    assert_eq!(schedules::run_due(&env.core).await.unwrap().recovered, 0);
    env.clock.set(at + Duration::minutes(7));
    let report = schedules::run_due(&env.core).await.unwrap();
    assert_eq!((report.recovered, report.sent), (1, 1), "{report:?}");
    env.clock.set(at + Duration::minutes(14));
    assert_eq!(schedules::run_due(&env.core).await.unwrap().sent, 0);
    assert_eq!(schedule_messages(&env.core).await.len(), 1);
    assert_eq!(occurrences(&env.core, &s.id).await[0].state, "sent");
}

#[tokio::test]
async fn a_schedule_made_in_the_console_runs_under_an_automation() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let key = heimdall_domain::access::accounts::create_api_key(
        &env.core,
        "briefings",
        "admin@example.com",
        &heimdall_domain::entities::api_key::Scopes::all(),
    )
    .await
    .unwrap();
    let automation = authz::create_automation(
        &env.core,
        "Morning briefing",
        &key.id,
        &["daily_briefing".to_string()],
        false,
        "author@example.com",
    )
    .await
    .unwrap();
    let principal = schedules::principal_for_automation(&env.core, &automation.id)
        .await
        .unwrap();
    assert_eq!(principal.key_id.as_deref(), Some(key.id.as_str()));
    // Not approved yet: refused.
    assert!(matches!(
        schedules::create(&env.core, &principal, briefing(&cid, "0 7 * * *")).await,
        Err(RequestError::Refused {
            gate: Gate::NotAuthorized,
            ..
        })
    ));
    authz::approve_automation(
        &env.core,
        &automation.id,
        "approver@example.com",
        heimdall_domain::access::accounts::Role::Approver,
    )
    .await
    .unwrap();
    let s = schedules::create(&env.core, &principal, briefing(&cid, "0 7 * * *"))
        .await
        .unwrap();
    assert_eq!(s.created_by, "api_key:briefings");
    env.clock.set(s.next_run_at.unwrap() + Duration::seconds(1));
    assert_eq!(schedules::run_due(&env.core).await.unwrap().sent, 1);
    let msgs = schedule_messages(&env.core).await;
    assert_eq!(msgs[0].automation_id.as_deref(), Some(key.id.as_str()));
    assert!(matches!(
        schedules::principal_for_automation(&env.core, "missing").await,
        Err(RequestError::NotFound(_))
    ));
}

/// Security finding 1: a schedule's variables URL cannot reach this
/// machine or its network (SSRF). An address is refused when the schedule
/// is created; a name that resolves to one is refused when it is fetched,
/// on every redirect too, and the listener never sees a connection.
#[tokio::test]
async fn a_variables_url_on_this_network_is_refused_and_never_fetched() {
    // No allowlist: public addresses only.
    let env = env_with(&[]).await;
    let cid = contact(&env.core, PHONE).await;
    let (url, hits) = serve(200, r#"{"date": "x", "task_count": 1, "top_tasks": "y"}"#).await;
    let port = url::Url::parse(&url).unwrap().port().unwrap();
    for literal in [
        url.clone(),
        format!("http://[::1]:{port}/briefing"),
        format!("http://[::ffff:127.0.0.1]:{port}/briefing"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://10.0.0.7/hook".to_string(),
        "http://2130706433/".to_string(),
    ] {
        let e = schedules::create(
            &env.core,
            &bootstrap(),
            NewSchedule {
                variables_url: Some(literal.clone()),
                ..briefing(&cid, "0 7 * * *")
            },
        )
        .await
        .unwrap_err();
        match &e {
            RequestError::Invalid { code, message } => {
                assert_eq!(*code, "invalid_variables_url", "{literal}: {e}");
                assert!(message.contains("not a public address"), "{literal}: {e}");
            }
            other => panic!("{literal}: {other:?}"),
        }
    }
    // A name that resolves to this machine passes creation (it is only a
    // name) and is refused at the fetch, before any connection.
    let by_name = url.replace("127.0.0.1", "localhost");
    let s = schedules::create(
        &env.core,
        &bootstrap(),
        NewSchedule {
            variables_url: Some(by_name),
            ..briefing(&cid, "0 7 * * *")
        },
    )
    .await
    .unwrap();
    env.clock.set(s.next_run_at.unwrap() + Duration::seconds(1));
    let report = schedules::run_due(&env.core).await.unwrap();
    assert_eq!((report.failed, report.sent), (1, 0), "{report:?}");
    let occ = occurrences(&env.core, &s.id).await;
    let outcome = occ[0].outcome.clone().unwrap();
    assert!(outcome.contains("non-public"), "{outcome}");
    assert!(!outcome.contains("task_count"), "no body echoed: {outcome}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "the listener saw nothing");
    assert_eq!(env.provider.count(), 0);
}

/// Security finding 1: the fetch waits for the gates that do not depend on
/// it: nothing is fetched for a person who opted out.
#[tokio::test]
async fn nothing_is_fetched_for_someone_who_opted_out() {
    let env = env().await;
    let cid = contact(&env.core, PHONE).await;
    let (url, hits) = serve(200, r#"{"date": "x", "task_count": 1, "top_tasks": "y"}"#).await;
    let s = schedules::create(
        &env.core,
        &bootstrap(),
        NewSchedule {
            variables: BTreeMap::new(),
            variables_url: Some(url),
            ..briefing(&cid, "0 7 * * *")
        },
    )
    .await
    .unwrap();
    heimdall_domain::consent::opt_out(
        &env.core.db.conn,
        &cid,
        Some(Channel::WhatsApp),
        heimdall_domain::consent::Scope::All,
        heimdall_domain::consent::OptOutSource::Keyword,
        Some("STOP (SMx)"),
        "inbound",
        env.core.now(),
    )
    .await
    .unwrap();
    env.clock.set(s.next_run_at.unwrap() + Duration::seconds(1));
    let report = schedules::run_due(&env.core).await.unwrap();
    assert_eq!((report.sent, report.blocked), (0, 1), "{report:?}");
    assert_eq!(hits.load(Ordering::SeqCst), 0, "not fetched");
    let occ = occurrences(&env.core, &s.id).await;
    assert!(
        occ[0].outcome.as_deref().unwrap().starts_with("suppressed"),
        "{occ:?}"
    );
}

//! The schedules on apalis-cron: the registered workers tick on the wall
//! clock and run the domain's jobs (which read the manual clock), and each
//! run is recorded for the console.

use std::sync::Arc;
use std::time::Duration as StdDuration;

use chrono::Duration;

use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::automations::reminders::{self, NewReminder, Target};
use heimdall_domain::automations::schedules::{self as domain_schedules, CronExpr, NewSchedule};
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::housekeeping::{self, Job, RunResult};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core};
use heimdall_jobs::housekeeping::Housekeeping;
use heimdall_jobs::schedules::{register_jobs, Cadence};

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        (
            "WA_TEMPLATE_DAILY_BRIEFING",
            "HX00000000000000000000000000000002",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    env
}

async fn contact(core: &Core) -> String {
    let (c, _) = contacts::upsert(
        core,
        &ContactInput {
            phone: "+4791234567".into(),
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

fn bootstrap() -> ApiPrincipal {
    ApiPrincipal {
        key_id: None,
        name: "bootstrap".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cron_workers_deliver_reminders_and_run_schedules() {
    let env = env().await;
    let cid = contact(&env.core).await;
    let schedule = domain_schedules::create(
        &env.core,
        &bootstrap(),
        NewSchedule {
            name: "Daily briefing".into(),
            target: Target::Contact(cid.clone()),
            cron: "0 * * * *".into(),
            template_name: "daily_briefing".into(),
            variables: serde_json::from_value(
                serde_json::json!({"date": "today", "task_count": 1, "top_tasks": "Ship"}),
            )
            .unwrap(),
            variables_url: None,
            tolerance_secs: None,
        },
    )
    .await
    .unwrap();
    let occurs_at = schedule.next_run_at.unwrap();
    let send_at = occurs_at;
    let reminder = reminders::create(
        &env.core,
        &bootstrap(),
        NewReminder {
            target: Target::Contact(cid.clone()),
            template_name: "task_reminder".into(),
            variables: serde_json::from_value(
                serde_json::json!({"task_name": "Call Bob", "due_time": "17:00"}),
            )
            .unwrap(),
            send_at: send_at.to_rfc3339(),
            tolerance_secs: None,
        },
    )
    .await
    .unwrap();
    env.clock.set(send_at.max(occurs_at) + Duration::seconds(1));

    // Every second on the wall clock instead of every 15 seconds.
    let every_second = Cadence::new(CronExpr::parse("* * * * * *").unwrap());
    let monitor = register_jobs(
        heimdall_jobs::runner::monitor(),
        &env.core,
        [
            (Job::DeliverReminders, every_second.clone()),
            (Job::RunSchedules, every_second),
        ],
    );
    let core: Arc<Core> = env.core.clone();
    let (rid, sid) = (reminder.id.clone(), schedule.id.clone());
    let done = async move {
        loop {
            let r = reminders::get(&core, &rid)
                .await
                .map_err(std::io::Error::other)?;
            let s = domain_schedules::get(&core, &sid)
                .await
                .map_err(std::io::Error::other)?;
            if r.state != "scheduled" && s.last_outcome.is_some() {
                return Ok(());
            }
            tokio::time::sleep(StdDuration::from_millis(100)).await;
        }
    };
    match tokio::time::timeout(StdDuration::from_secs(30), monitor.run_with_signal(done)).await {
        Ok(ran) => ran.unwrap(),
        Err(_) => panic!(
            "the cron workers did not finish within 30 s; job runs: {:?}; reminder: {:?}",
            housekeeping::job_runs(&env.core).await,
            reminders::get(&env.core, &reminder.id).await
        ),
    }

    let r = reminders::get(&env.core, &reminder.id).await.unwrap();
    assert_eq!(r.state, "sent", "{r:?}");
    let s = domain_schedules::get(&env.core, &schedule.id)
        .await
        .unwrap();
    assert!(
        s.last_outcome.as_deref().unwrap().starts_with("sent"),
        "{s:?}"
    );
    assert_eq!(env.take_enqueued().len(), 2);
    let runs = housekeeping::job_runs(&env.core).await.unwrap();
    for name in ["deliver_reminders", "run_schedules"] {
        let j = runs.iter().find(|j| j.name == name).unwrap();
        assert!(j.runs >= 1, "{j:?}");
        assert_eq!(j.status, "ok", "{j:?}");
        assert!(j.next_run_at.is_some());
    }
}

#[tokio::test]
async fn a_housekeeping_job_runs_through_its_job_file() {
    let env = env().await;
    let tasks: Vec<Job> = heimdall_jobs::housekeeping::tasks().collect();
    assert!(!tasks.contains(&Job::DeliverReminders));
    assert!(!tasks.contains(&Job::RunSchedules));
    assert_eq!(tasks.len(), Job::ALL.len() - 2);
    for task in tasks {
        let r = heimdall_jobs::housekeeping::run(Housekeeping { task }, env.core.clone())
            .await
            .unwrap();
        assert!(matches!(r, RunResult::Ok { .. }), "{task}: {r:?}");
    }
    let r = heimdall_jobs::deliver_reminders::run(env.core.clone())
        .await
        .unwrap();
    assert!(matches!(r, RunResult::Ok { .. }), "{r:?}");
    // The same cadence again: skipped.
    let r = heimdall_jobs::deliver_reminders::run(env.core.clone())
        .await
        .unwrap();
    assert_eq!(r, RunResult::Skipped);
    env.clock.advance(Duration::seconds(15));
    let r = heimdall_jobs::run_schedules::run(env.core.clone())
        .await
        .unwrap();
    assert!(matches!(r, RunResult::Ok { .. }), "{r:?}");
}

//! The fan-out job on the real queue (SQLite by default; PostgreSQL or
//! Redis when the run asks for them): approving a campaign enqueues it, the
//! worker fans it out and the send worker sends every message once, even
//! when the job is enqueued more than once; the queue reports its depth.

use std::time::Duration;

use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};

use heimdall_domain::access::accounts::{Role, StaffUser};
use heimdall_domain::campaigns::{self, Audience, CampaignDraft, CampaignStatus, VariableSource};
use heimdall_domain::contacts::{self, ContactInput};

use heimdall_domain::consent::{ConsentEvidence, ConsentSource};
use heimdall_domain::entities::{campaign, outbound_message};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{access::authz, templates, Channel, Core};
use heimdall_jobs::runner;

mod common;

async fn env() -> TestEnv {
    let env = TestEnv::new(&[
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

async fn staff(core: &Core, email: &str, role: Role) -> StaffUser {
    heimdall_domain::testing::staff_user(core, email, role).await
}

async fn crowd(core: &Core, n: usize) {
    for i in 0..n {
        let (c, _) = contacts::upsert(
            core,
            &ContactInput {
                phone: format!("+47910{i:05}"),
                name: Some(format!("Person {i}")),
                tags: vec!["all".into()],
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
                ..Default::default()
            },
            "test",
            false,
            core.now(),
        )
        .await
        .unwrap();
    }
}

fn draft() -> CampaignDraft {
    CampaignDraft {
        name: "Everyone".into(),
        channel: Channel::WhatsApp,
        template_name: "task_reminder".into(),
        audience: Audience::Tags {
            tags: vec!["all".into()],
        },
        variables: [
            (
                "task_name".to_string(),
                VariableSource::Field("name".into()),
            ),
            (
                "due_time".to_string(),
                VariableSource::Value("17:00".into()),
            ),
        ]
        .into(),
        scheduled_at: None,
    }
}

/// Poll `done` until it holds or the deadline passes.
async fn eventually<F, Fut>(what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    heimdall_domain::testing::eventually(what, Duration::from_secs(60), done).await
}

async fn messages(core: &Core, campaign_id: &str) -> u64 {
    outbound_message::Entity::find()
        .filter(outbound_message::Column::CampaignId.eq(campaign_id))
        .count(&core.db.conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_campaign_is_fanned_out_and_sent_once_even_if_enqueued_again() {
    let env = env().await;
    let (core, queue) = common::with_real_queue(&env).await;
    crowd(&core, 30).await;
    let author = staff(&core, "author@example.com", Role::Operator).await;
    let approver = staff(&core, "approver@example.com", Role::Approver).await;
    let c = campaigns::create_draft(&core, &author, draft())
        .await
        .unwrap();
    campaigns::submit(&core, &author, &c.id).await.unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(runner::run(core.clone(), queue.clone(), async move {
        let _ = stopped.await;
    }));
    // Approval enqueues the fan-out; two more jobs for the same campaign
    // (a retry, a second housekeeper) must change nothing.
    let reviewed = campaigns::review(&core, &c.id, 0)
        .await
        .unwrap()
        .content_hash;
    campaigns::approve(&core, &approver, &c.id, &reviewed)
        .await
        .unwrap();
    core.queue.enqueue_campaign(c.id.clone()).await.unwrap();
    core.queue.enqueue_campaign(c.id.clone()).await.unwrap();

    eventually("every message sent", || async {
        env.provider.count() >= 30
    })
    .await;
    eventually("the fan-out marked finished", || async {
        campaign::Entity::find_by_id(c.id.as_str())
            .one(&core.db.conn)
            .await
            .unwrap()
            .is_some_and(|m| m.fan_out_finished_at.is_some())
    })
    .await;
    eventually("the queue drained", || async {
        core.queue.depth().await == Some(0)
    })
    .await;
    assert_eq!(messages(&core, &c.id).await, 30);
    assert_eq!(env.provider.count(), 30);
    for i in 0..30 {
        assert_eq!(env.provider.sent_to(&format!("+47910{i:05}")), 1);
    }
    let view = campaigns::get(&core, &c.id).await.unwrap();
    assert_eq!(view.status, CampaignStatus::Sending);
    assert_eq!(view.recipients, Some(30));

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(60), workers)
        .await
        .expect("workers stop")
        .expect("worker task")
        .expect("workers ran");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_counts_waiting_fan_out_and_send_jobs() {
    let env = env().await;
    let (core, _queue) = common::with_real_queue(&env).await;
    assert_eq!(core.queue.depth().await, Some(0));
    core.queue
        .enqueue_campaign("campaign-1".into())
        .await
        .unwrap();
    core.queue
        .enqueue_campaign("campaign-2".into())
        .await
        .unwrap();
    core.queue
        .enqueue_send("message-1".into(), None)
        .await
        .unwrap();
    // Not yet due: still waiting.
    core.queue
        .enqueue_send(
            "message-2".into(),
            Some(chrono::Utc::now() + chrono::Duration::hours(1)),
        )
        .await
        .unwrap();
    assert_eq!(core.queue.depth().await, Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_out_job_for_a_campaign_that_is_gone_or_not_approved_is_dropped() {
    let env = env().await;
    let (core, _queue) = common::with_real_queue(&env).await;
    crowd(&core, 2).await;
    let author = staff(&core, "author@example.com", Role::Operator).await;
    let c = campaigns::create_draft(&core, &author, draft())
        .await
        .unwrap();
    // Not an error (no retry), and nothing is sent.
    heimdall_jobs::fan_out_campaign::run(
        heimdall_jobs::fan_out_campaign::FanOutCampaign {
            campaign_id: "no-such-campaign".into(),
        },
        core.clone(),
    )
    .await
    .unwrap();
    heimdall_jobs::fan_out_campaign::run(
        heimdall_jobs::fan_out_campaign::FanOutCampaign {
            campaign_id: c.id.clone(),
        },
        core.clone(),
    )
    .await
    .unwrap();
    assert_eq!(messages(&core, &c.id).await, 0);
    assert_eq!(
        campaigns::get(&core, &c.id).await.unwrap().status,
        CampaignStatus::Draft
    );
}

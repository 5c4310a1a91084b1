//! The send job: the send runs as a task of its own, so a job dropped half
//! way (its apalis worker stopped, its Redis restarted) does not cut the send
//! off between the claim and the call, which would leave the message for a
//! person to check; and a stopping process waits for the sends still running.

use std::sync::Arc;
use std::time::Duration;

use sea_orm::EntityTrait;

use heimdall_domain::entities::outbound_message;
use heimdall_jobs::send_message::{self, SendMessage};

mod common;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_job_dropped_half_way_still_finishes_its_send() {
    let env = common::env(&[]).await;
    let id = common::accepted_reminder(&env).await;
    // The provider takes its time: the job is dropped while the call is out.
    let (called_tx, called_rx) = tokio::sync::oneshot::channel::<()>();
    let called_tx = std::sync::Mutex::new(Some(called_tx));
    env.provider.on_send(Arc::new(move |_| {
        if let Some(tx) = called_tx.lock().unwrap().take() {
            let _ = tx.send(());
        }
        Box::pin(tokio::time::sleep(Duration::from_millis(500)))
    }));
    let job = tokio::spawn(send_message::run(
        SendMessage {
            message_id: id.clone(),
        },
        env.core.clone(),
    ));
    called_rx.await.expect("the provider was called");
    job.abort();
    assert!(job.await.unwrap_err().is_cancelled());

    // The send goes on without its job, and a stopping process waits for it:
    // when the wait ends, the provider's answer is recorded.
    assert_eq!(
        send_message::wait_for_sends(Duration::from_secs(20)).await,
        0
    );
    let m = outbound_message::Entity::find_by_id(id.as_str())
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert!(
        m.provider_sid.is_some(),
        "the send was cut off with its job"
    );
    assert_eq!(env.provider.sent_to(common::PHONE), 1);
}

#[tokio::test]
async fn a_stopped_workers_fetched_jobs_go_back_to_the_queue() {
    use heimdall_domain::sending::queue::JobQueue;
    let redis = heimdall_domain::testing::OwnRedis::start();
    let env = common::env(&[("HEIMDALL_REDIS_URL", redis.url().as_str())]).await;
    let queue = heimdall_jobs::Queue::open(
        &env.core.db,
        env.core.redis.clone(),
        &env.core.settings.redis_namespace,
    )
    .await
    .unwrap();
    let heimdall_jobs::Queue::Redis(storage) = &queue else {
        panic!("the queue is on Redis");
    };
    // As apalis leaves them when it drops fetched jobs at shutdown: in the
    // worker's in-flight set (two starts of it), not on the queue.
    let inflight = storage.get_config().inflight_jobs_set();
    let mut conn = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::pipe()
        .sadd(format!("{inflight}:heimdall-send-1-abc-0"), "job-1")
        .sadd(
            format!("{inflight}:heimdall-send-1-abc-1"),
            &["job-2", "job-3"],
        )
        .sadd(
            format!("{inflight}:heimdall-send-2-def-0"),
            "job-of-another",
        )
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(queue.depth().await, Some(0));
    assert_eq!(queue.release_in_flight("heimdall-send-1-abc").await, Ok(3));
    assert_eq!(queue.depth().await, Some(3));
    let left: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{inflight}:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, vec![format!("{inflight}:heimdall-send-2-def-0")]);
    // Nothing twice.
    assert_eq!(queue.release_in_flight("heimdall-send-1-abc").await, Ok(0));
}

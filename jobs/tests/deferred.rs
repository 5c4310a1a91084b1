//! Messages deferred for later on the Redis queue: thousands falling due
//! together all go (apalis-redis' own scheduled set stops its queue above
//! about 8,000: its fetch moves every due job in one Lua `unpack`), and an
//! entry whose mover died is moved again, never lost.
//!
//! Each test runs a `redis-server` of its own on a spare loopback port, so
//! the Redis path is what runs on every backend.

use heimdall_domain::compliance::message_state::MessageState;
use std::time::Duration;

use futures::StreamExt;
use sea_orm::EntityTrait;

use heimdall_domain::testing::{OwnRedis, TestEnv};
use heimdall_jobs::deferred::{self, DeferredKeys};
use heimdall_jobs::{runner, Queue};

mod common;

async fn env_on(redis: &OwnRedis) -> TestEnv {
    common::env(&[("HEIMDALL_REDIS_URL", redis.url().as_str())]).await
}

/// A connection to `redis` and the deferred set beside a queue there.
async fn deferred_set(redis: &OwnRedis) -> (redis::aio::ConnectionManager, DeferredKeys) {
    let conn = redis::Client::open(redis.url())
        .unwrap()
        .get_connection_manager()
        .await
        .unwrap();
    (conn, DeferredKeys::beside("test:heimdall.send_message"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_deferred_messages_falling_due_together_all_go() {
    let redis = OwnRedis::start();
    let env = env_on(&redis).await;
    let (core, queue) = common::with_real_queue(&env).await;
    assert!(matches!(queue, Queue::Redis(_)));

    // A real message and 10,000 jobs for messages that do not exist (the
    // worker finds nothing to claim), all deferred to the same moment.
    let real = common::accepted_reminder(&env).await;
    let due = chrono::Utc::now() + chrono::Duration::seconds(4);
    let ids: Vec<String> = (0..10_000)
        .map(|i| format!("no-such-message-{i}"))
        .chain([real.clone()])
        .collect();
    futures::stream::iter(ids)
        .map(|id| {
            let core = core.clone();
            async move { core.queue.enqueue_send(id, Some(due)).await }
        })
        .buffer_unordered(64)
        .for_each(|r| async move { r.unwrap() })
        .await;
    assert!(
        chrono::Utc::now() < due,
        "the jobs were enqueued before their time"
    );
    // All waiting, none on apalis' scheduled set.
    assert_eq!(core.queue.depth().await, Some(10_001));

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(runner::run(core.clone(), queue.clone(), async move {
        let _ = stopped.await;
    }));
    common::eventually("the real message sent", || async {
        env.provider.sent_to("+4791234567") == 1
    })
    .await;
    common::eventually("every job taken off the queue", || async {
        core.queue.depth().await == Some(0)
    })
    .await;
    assert!(chrono::Utc::now() >= due, "nothing went before its time");
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(60), workers)
        .await
        .expect("workers stop")
        .expect("worker task")
        .expect("workers ran");
}

#[tokio::test]
async fn an_entry_whose_mover_died_is_moved_again_after_a_while_and_only_then() {
    let redis = OwnRedis::start();
    let (mut conn, keys) = deferred_set(&redis).await;
    let now = chrono::Utc::now();
    deferred::defer(&mut conn, &keys, "m-1", now - chrono::Duration::seconds(1))
        .await
        .unwrap();
    deferred::defer(&mut conn, &keys, "m-2", now + chrono::Duration::hours(1))
        .await
        .unwrap();
    // An earlier time for a waiting entry wins; a later one does not.
    deferred::defer(&mut conn, &keys, "m-2", now + chrono::Duration::hours(2))
        .await
        .unwrap();
    deferred::defer(&mut conn, &keys, "m-3", now + chrono::Duration::hours(2))
        .await
        .unwrap();
    deferred::defer(&mut conn, &keys, "m-3", now + chrono::Duration::minutes(1))
        .await
        .unwrap();

    // The mover takes m-1 and dies before pushing it.
    let died = deferred::promote(&mut conn, &keys, now, |_| async {
        Err("killed".to_string())
    })
    .await;
    assert!(died.is_err());
    assert_eq!(deferred::count(&mut conn, &keys).await.unwrap(), 3);

    // Another mover, soon after: m-1 is still being moved (not pushed twice).
    let mut pushed = Vec::new();
    let n = deferred::promote(&mut conn, &keys, now, |ids| {
        pushed.extend(ids);
        async { Ok(()) }
    })
    .await
    .unwrap();
    assert_eq!(n, 0);
    assert!(pushed.is_empty());

    // Once the move counts as abandoned: m-1 goes back and is moved.
    let later = now + chrono::Duration::milliseconds(deferred::ABANDONED_AFTER_MS + 1);
    let n = deferred::promote(&mut conn, &keys, later, |ids| {
        pushed.extend(ids);
        async { Ok(()) }
    })
    .await
    .unwrap();
    assert_eq!(n, 1);
    assert_eq!(pushed, vec!["m-1".to_string()]);

    // m-3 kept its earlier time (a minute), m-2 its earlier one (an hour).
    let at_two_minutes = now + chrono::Duration::minutes(2);
    pushed.clear();
    deferred::promote(&mut conn, &keys, at_two_minutes, |ids| {
        pushed.extend(ids);
        async { Ok(()) }
    })
    .await
    .unwrap();
    assert_eq!(pushed, vec!["m-3".to_string()]);
    pushed.clear();
    deferred::promote(
        &mut conn,
        &keys,
        now + chrono::Duration::minutes(61),
        |ids| {
            pushed.extend(ids);
            async { Ok(()) }
        },
    )
    .await
    .unwrap();
    assert_eq!(pushed, vec!["m-2".to_string()]);
    assert_eq!(deferred::count(&mut conn, &keys).await.unwrap(), 0);
}

#[tokio::test]
async fn due_entries_move_in_bounded_batches_each_once() {
    let redis = OwnRedis::start();
    let (mut conn, keys) = deferred_set(&redis).await;
    let now = chrono::Utc::now();
    let n = 12_345;
    let mut pipe = redis::pipe();
    for i in 0..n {
        pipe.zadd(&keys.waiting, format!("m-{i}"), now.timestamp_millis() - 1)
            .ignore();
    }
    pipe.query_async::<()>(&mut conn).await.unwrap();

    let mut batches = Vec::new();
    let mut moved = 0;
    while moved < n {
        let m = deferred::promote(&mut conn, &keys, now, |ids| {
            batches.push(ids);
            async { Ok(()) }
        })
        .await
        .unwrap();
        assert!(m > 0, "due entries left behind");
        moved += m;
    }
    assert!(batches.iter().all(|b| b.len() <= deferred::BATCH));
    let mut all: Vec<String> = batches.concat();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "each entry moved exactly once");
    assert_eq!(deferred::count(&mut conn, &keys).await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deferred_message_whose_person_said_stop_before_its_time_is_not_sent() {
    let redis = OwnRedis::start();
    let env = env_on(&redis).await;
    let (core, queue) = common::with_real_queue(&env).await;
    let id = common::accepted_reminder(&env).await;
    core.queue
        .enqueue_send(
            id.clone(),
            Some(chrono::Utc::now() + chrono::Duration::seconds(2)),
        )
        .await
        .unwrap();
    // The person writes STOP while the message waits in the deferred set.
    heimdall_domain::inbound::handle_message(
        &env.core,
        heimdall_domain::inbound::InboundMessage {
            provider: "twilio".into(),
            provider_message_id: "SMstopdeferred".into(),
            channel: heimdall_domain::Channel::WhatsApp,
            from: format!("whatsapp:{}", common::PHONE),
            to: None,
            body: Some("STOP".into()),
            media: vec![],
            button_text: None,
            button_payload: None,
            profile_name: None,
            received_at: env.core.now(),
        },
    )
    .await
    .unwrap();

    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let workers = tokio::spawn(runner::run(core.clone(), queue.clone(), async move {
        let _ = stopped.await;
    }));
    common::eventually("the message taken off the queue and judged", || async {
        heimdall_domain::entities::outbound_message::Entity::find_by_id(id.as_str())
            .one(&core.db.conn)
            .await
            .unwrap()
            .is_some_and(|m| m.state == MessageState::Blocked)
    })
    .await;
    // Nothing reached the provider for the person but the STOP's confirmation.
    assert!(env
        .provider
        .sent
        .lock()
        .unwrap()
        .iter()
        .all(|r| r.message_id != id));
    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(60), workers)
        .await
        .expect("workers stop")
        .expect("worker task")
        .expect("workers ran");
}

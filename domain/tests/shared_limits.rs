//! The limits several processes share through Redis fail closed: while Redis
//! does not answer, no message goes on one process's count alone (each would
//! send at the full rate and count the tier on its own); the message waits,
//! and goes once Redis answers again, even when Redis came back empty (its
//! queue entries lost). One alert per outage.
//!
//! Each test runs a `redis-server` of its own on a spare loopback port (the
//! machine's Redis is never stopped); `scripts/test` installs it when missing.

use heimdall_domain::compliance::message_state::MessageState;
use std::time::{Duration as StdDuration, Instant};

use chrono::Duration;
use sea_orm::{EntityTrait, PaginatorTrait};

use heimdall_domain::access::authz;
use heimdall_domain::entities::{alert, outbound_message};
use heimdall_domain::sending::limits::{Limits, LimitsUnavailable};
use heimdall_domain::sending::outbound::{self, SendResult};
use heimdall_domain::testing::{self, OwnRedis, TestEnv};
use heimdall_domain::{housekeeping, templates};

const PHONE: &str = "+4791234567";

async fn env_on(redis: &OwnRedis, extra: &[(&str, &str)]) -> TestEnv {
    let url = redis.url();
    let mut pairs = vec![
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
        ("HEIMDALL_REDIS_URL", url.as_str()),
    ];
    pairs.extend_from_slice(extra);
    let env = TestEnv::new(&pairs).await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    env.core
        .limits
        .set_shared_wait(StdDuration::from_millis(300));
    env
}

async fn accept_reminder(env: &TestEnv) -> String {
    accept_reminder_to(env, PHONE).await
}

async fn accept_reminder_to(env: &TestEnv, phone: &str) -> String {
    testing::accept_reminder_to(&env.core, phone).await
}

async fn state(env: &TestEnv, id: &str) -> MessageState {
    outbound_message::Entity::find_by_id(id)
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .unwrap()
        .state
}

async fn alerts(env: &TestEnv) -> u64 {
    alert::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap()
}

/// Until `f` is true, with a deadline.
async fn eventually<F, Fut>(what: &str, f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    testing::eventually(what, StdDuration::from_secs(20), f).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shared_limits_refuse_rather_than_count_alone_while_redis_is_away() {
    let mut redis = OwnRedis::start();
    let client = redis::Client::open(redis.url()).unwrap();
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(StdDuration::from_secs(1)))
        .set_response_timeout(Some(StdDuration::from_secs(1)))
        .set_number_of_retries(2)
        .set_max_delay(StdDuration::from_millis(500));
    let conn = redis::aio::ConnectionManager::new_with_config(client, config)
        .await
        .unwrap();
    let limits = Limits::new(
        Some(conn.clone()),
        50,
        6,
        Some(10),
        "p",
        "shared-limits-test",
    );
    limits.set_shared_wait(StdDuration::from_millis(300));
    let now = chrono::Utc::now();
    // Before Heimdall's mark is in Redis (set by the watch once the tier is
    // rebuilt), the shared limits refuse.
    assert_eq!(
        limits.until_sender_ready("+1", None).await,
        Err(LimitsUnavailable)
    );
    assert_eq!(
        limits.reserve_pace("+47", now).await,
        Err(LimitsUnavailable)
    );
    let set_mark = || {
        let mut conn = conn.clone();
        let key = limits.mark_key();
        async move {
            redis::cmd("SET")
                .arg(key)
                .arg("test")
                .query_async::<()>(&mut conn)
                .await
        }
    };
    set_mark().await.unwrap();
    assert!(limits.until_sender_ready("+1", None).await.is_ok());
    assert_eq!(limits.reserve_pace("+47", now).await, Ok(Ok(())));
    assert!(matches!(limits.reserve_pace("+47", now).await, Ok(Err(_))));

    redis.kill();
    let started = Instant::now();
    assert_eq!(
        limits.until_sender_ready("+1", None).await,
        Err(LimitsUnavailable)
    );
    assert!(
        started.elapsed() >= StdDuration::from_millis(300),
        "gave up before the shared wait"
    );
    // Not the in-process pacer either: another recipient is refused too.
    assert_eq!(
        limits.reserve_pace("+48", now).await,
        Err(LimitsUnavailable)
    );

    redis.restart();
    eventually("Redis to answer again", || async {
        let mut conn = conn.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut conn)
            .await
            .is_ok()
    })
    .await;
    // It came back empty: without the mark, the counts it lost are not
    // started again from nothing.
    assert_eq!(
        limits.until_sender_ready("+1", None).await,
        Err(LimitsUnavailable)
    );
    assert_eq!(
        limits.reserve_pace("+48", now).await,
        Err(LimitsUnavailable)
    );
    set_mark().await.unwrap();
    assert!(limits.until_sender_ready("+1", None).await.is_ok());
    assert_eq!(limits.reserve_pace("+48", now).await, Ok(Ok(())));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_waits_while_redis_is_away_and_goes_once_when_it_is_back_empty() {
    let mut redis = OwnRedis::start();
    let env = env_on(&redis, &[]).await;
    housekeeping::watch_redis(&env.core).await;
    let id = accept_reminder(&env).await;
    let queued = env.take_enqueued();
    assert_eq!(queued, vec![id.clone()]);

    redis.kill();
    let result = outbound::process_send(&env.core, &id).await.unwrap();
    assert_eq!(result, SendResult::NotDue);
    assert_eq!(env.provider.count(), 0, "sent without the shared limits");
    let s = state(&env, &id).await;
    assert!(
        s == MessageState::Deferred || s == MessageState::Queued,
        "{s}"
    );
    // One alert for the outage, not one per look.
    for _ in 0..3 {
        housekeeping::watch_redis(&env.core).await;
    }
    assert_eq!(alerts(&env).await, 1);
    let a = alert::Entity::find()
        .one(&env.core.db.conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(a.title, "Redis not answering");

    // Redis comes back empty (its queue entries gone): the watch enqueues
    // the waiting message again, and it goes exactly once.
    redis.restart();
    env.take_enqueued();
    eventually("the watch to see Redis again", || async {
        housekeeping::watch_redis(&env.core).await;
        env.core
            .redis_watch
            .answering
            .load(std::sync::atomic::Ordering::SeqCst)
    })
    .await;
    let again = env.take_enqueued();
    assert!(again.contains(&id), "{again:?}");
    env.clock.advance(Duration::seconds(10));
    let results: Vec<SendResult> = {
        let mut r = Vec::new();
        for m in again {
            r.push(outbound::process_send(&env.core, &m).await.unwrap());
        }
        r
    };
    assert_eq!(
        results
            .iter()
            .filter(|r| matches!(r, SendResult::Sent { .. }))
            .count(),
        1,
        "{results:?}"
    );
    assert_eq!(env.provider.count(), 1);
    assert_eq!(alerts(&env).await, 1, "no alert when it comes back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_recipient_pace_and_the_tier_wait_for_redis_too() {
    for extra in [
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "6"),
        ("HEIMDALL_TIER_LIMIT", "1000"),
    ] {
        let mut redis = OwnRedis::start();
        let env = env_on(&redis, &[extra]).await;
        let id = accept_reminder(&env).await;
        env.take_enqueued();
        redis.kill();
        assert_eq!(
            outbound::process_send(&env.core, &id).await.unwrap(),
            SendResult::NotDue,
            "{extra:?}"
        );
        assert_eq!(env.provider.count(), 0, "{extra:?}");
        let s = state(&env, &id).await;
        assert!(
            s == MessageState::Deferred || s == MessageState::Queued,
            "{extra:?}: {s}"
        );
        assert_eq!(env.take_enqueued(), vec![id.clone()], "tried again later");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tier_count_lost_with_redis_is_rebuilt_from_its_record_before_anyone_is_counted() {
    let mut redis = OwnRedis::start();
    let env = env_on(&redis, &[("HEIMDALL_TIER_LIMIT", "1")]).await;
    let first = accept_reminder_to(&env, "+4791234501").await;
    env.take_enqueued();
    assert!(matches!(
        outbound::process_send(&env.core, &first).await.unwrap(),
        SendResult::Sent { .. }
    ));
    // Redis restarts empty: the tier's one person is no longer in its count.
    redis.kill();
    redis.restart();
    eventually("Redis to answer again", || async {
        env.core.ping_redis().await.is_ok()
    })
    .await;
    // Accepted on the empty count's word (acceptance only reads it)...
    let second = accept_reminder_to(&env, "+4791234502").await;
    assert_eq!(env.take_enqueued(), vec![second.clone()]);
    assert_eq!(state(&env, &second).await, MessageState::Queued);
    // ...but until the watch has rebuilt the count, the worker counts no one
    // from nothing.
    assert_eq!(
        outbound::process_send(&env.core, &second).await.unwrap(),
        SendResult::NotDue
    );
    assert_eq!(env.provider.count(), 1);
    // The watch rebuilds it from tier_usage: the second person is over the limit.
    housekeeping::watch_redis(&env.core).await;
    env.clock.advance(Duration::seconds(10));
    assert_eq!(
        outbound::process_send(&env.core, &second).await.unwrap(),
        SendResult::Deferred(heimdall_domain::compliance::gates::Gate::TierLimit)
    );
    assert_eq!(
        env.provider.count(),
        1,
        "the tier's limit held across the loss"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_waiters_in_several_processes_get_permits_spaced_by_the_rate() {
    let redis = OwnRedis::start();
    let mut processes = Vec::new();
    for _ in 0..3 {
        let client = redis::Client::open(redis.url()).unwrap();
        let conn = redis::aio::ConnectionManager::new(client).await.unwrap();
        let limits = Limits::new(Some(conn), 20, 0, None, "p", "spacing-test");
        processes.push(std::sync::Arc::new(limits));
    }
    let mut conn = redis::aio::ConnectionManager::new(redis::Client::open(redis.url()).unwrap())
        .await
        .unwrap();
    redis::cmd("SET")
        .arg(processes[0].mark_key())
        .arg("test")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    // 48 waiters at once (16 per process, as three workers' concurrency), 20/s.
    let start = Instant::now();
    let mut tasks = Vec::new();
    for limits in &processes {
        for _ in 0..16 {
            let limits = limits.clone();
            tasks.push(tokio::spawn(async move {
                limits.until_sender_ready("+1", None).await.unwrap();
                start.elapsed()
            }));
        }
    }
    let mut granted = Vec::new();
    for t in tasks {
        granted.push(t.await.unwrap());
    }
    granted.sort();
    // No one-second window holds more than the rate: any 21 permits in a
    // row span a second. What is measured is when each waiter woke, its
    // slot plus the scheduler's delay, so 20 ms of that delay is allowed
    // (a CI run saw 21 wake-ups 999.8 ms apart, the first woken 12.7 ms
    // after its slot).
    let jitter = StdDuration::from_millis(20);
    for (i, w) in granted.windows(21).enumerate() {
        assert!(
            w[20] - w[0] >= StdDuration::from_secs(1) - jitter,
            "permits {i}..{} within {:?}: {granted:?}",
            i + 20,
            w[20] - w[0]
        );
    }
    assert!(
        granted[47] >= StdDuration::from_millis(47 * 50),
        "{granted:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slots_handed_out_before_redis_lost_its_count_never_overlap_the_new_ones() {
    use heimdall_domain::sending::limits::FURTHEST_SLOT;
    let mut redis = OwnRedis::start();
    let env = env_on(&redis, &[]).await;
    let limits = &env.core.limits;
    // Twenty-five at 10/s: the last ones are not handed out until they are
    // within reach.
    let mut old = Vec::new();
    for _ in 0..25 {
        let slot = limits.reserve_slot("+1", Some(10)).await.unwrap();
        let granted = tokio::time::Instant::now();
        assert!(
            slot <= granted + FURTHEST_SLOT,
            "a slot {:?} ahead",
            slot - granted
        );
        old.push(slot);
    }
    let last_old = *old.iter().max().unwrap();
    assert!(last_old - old[0] >= StdDuration::from_millis(24 * 100));

    // Redis restarts empty; the watch restores the limits.
    redis.kill();
    redis.restart();
    eventually("the watch to restore the limits", || async {
        housekeeping::watch_redis(&env.core).await;
        let mut conn = env.core.redis.clone().unwrap();
        redis::cmd("EXISTS")
            .arg(limits.mark_key())
            .query_async::<bool>(&mut conn)
            .await
            .unwrap_or(false)
    })
    .await;
    let new = limits.reserve_slot("+1", Some(10)).await.unwrap();
    assert!(
        new > last_old,
        "a new slot {:?} before the last one handed out before the loss",
        last_old - new
    );
}

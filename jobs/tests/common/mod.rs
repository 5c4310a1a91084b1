//! What the jobs crate's tests share: a test world with a sender and the
//! reminder template, and a message accepted in it. (Each test file uses
//! what it needs.)
#![allow(dead_code)]

use std::sync::Arc;

use heimdall_domain::testing::{self, TestEnv};
use heimdall_domain::Core;
use heimdall_jobs::Queue;

/// The number [`accepted_reminder`] sends to.
pub const PHONE: &str = "+4791234567";

/// A test world (settings from `extra` on top) with the senders and the
/// reminder template registered, and no pause between one person's messages.
pub async fn env(extra: &[(&str, &str)]) -> TestEnv {
    testing::reminder_world(extra).await
}

/// A reminder to [`PHONE`] accepted on the test's recording queue: recorded
/// and queued, and on no real queue.
pub async fn accepted_reminder(env: &TestEnv) -> String {
    testing::accept_reminder_to(&env.core, PHONE).await
}

/// Poll `done` until it holds (180 s at most: the queue tests move thousands of
/// jobs, and a loaded machine may take a while).
pub async fn eventually<F, Fut>(what: &str, done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    testing::eventually(what, std::time::Duration::from_secs(180), done).await
}

/// The test's world with the real apalis queue (on the test's backend, or its
/// own Redis) in place of the recording one.
pub async fn with_real_queue(env: &TestEnv) -> (Arc<Core>, Queue) {
    let queue = Queue::open(
        &env.core.db,
        env.core.redis.clone(),
        &env.core.settings.redis_namespace,
    )
    .await
    .unwrap();
    let core = env.core_with_queue(Arc::new(queue.clone()));
    (core, queue)
}

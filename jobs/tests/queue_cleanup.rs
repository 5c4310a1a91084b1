//! Finished queue jobs are purged after a day, and the SQLite queue keeps
//! acknowledging by id however many jobs it has run.

use heimdall_domain::sending::queue::JobQueue;
use heimdall_domain::testing::TestEnv;
use heimdall_jobs::Queue;
use sea_orm::{ConnectionTrait, Statement};

#[tokio::test]
async fn finished_jobs_older_than_a_day_are_purged() {
    let env = TestEnv::new(&[]).await;
    let core = &env.core;
    let queue = Queue::open(&core.db, core.redis.clone(), &core.settings.redis_namespace)
        .await
        .unwrap();
    queue.enqueue_send("m-old".into(), None).await.unwrap();
    queue.enqueue_send("m-new".into(), None).await.unwrap();
    if core.redis.is_some() {
        // The queue lives in Redis: the database holds no queue tables.
        assert_eq!(
            heimdall_domain::housekeeping::purge_finished_queue_jobs(core)
                .await
                .unwrap(),
            0
        );
        return;
    }
    let backend = core.db.backend();
    let job_text = if core.db.is_sqlite() {
        "CAST(job AS TEXT)"
    } else {
        "convert_from(job, 'UTF8')"
    };
    let (table, mark) = if core.db.is_sqlite() {
        ("Jobs", "done_at = strftime('%s', 'now') - 200000")
    } else {
        ("apalis.jobs", "done_at = now() - interval '3 days'")
    };
    for (id_like, how) in [
        ("m-old", mark),
        (
            "m-new",
            if core.db.is_sqlite() {
                "done_at = strftime('%s', 'now')"
            } else {
                "done_at = now()"
            },
        ),
    ] {
        core.db
            .conn
            .execute_raw(Statement::from_string(
                backend,
                format!(
                    "UPDATE {table} SET status = 'Done', {how} WHERE {job_text} LIKE '%{id_like}%'"
                ),
            ))
            .await
            .unwrap();
    }
    let purged = heimdall_domain::housekeeping::purge_finished_queue_jobs(core)
        .await
        .unwrap();
    assert_eq!(purged, 1);
    if core.db.is_sqlite() {
        // Acknowledgements look jobs up by id, not by worker.
        let plan = core
            .db
            .conn
            .query_all_raw(Statement::from_string(
                backend,
                "EXPLAIN QUERY PLAN WITH j AS (SELECT value ->> 'task_id' AS task_id FROM json_each('[]')) \
                 UPDATE Jobs SET status = 'Done' FROM j WHERE Jobs.id = j.task_id AND Jobs.lock_by = 'w'"
                    .to_string(),
            ))
            .await
            .unwrap();
        let text: Vec<String> = plan
            .iter()
            .filter_map(|r| r.try_get_by_index::<String>(3).ok())
            .collect();
        assert!(text.iter().any(|l| l.contains("(id=?)")), "{text:?}");
        assert!(!text.iter().any(|l| l.contains("LIdx")), "{text:?}");
    }
}

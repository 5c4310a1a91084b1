//! `Db::write_together`: each caller's statements are atomic, one caller's
//! failure never undoes or fails another's (SQLite group commit, PostgreSQL
//! one statement), and the SQLite log is checkpointed off the write path.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait, DbBackend, Statement};

use heimdall_domain::store::db::Db;
use heimdall_domain::testing::{self, Backend};

async fn db_with_table(dir: &std::path::Path) -> Db {
    let db = Db::connect_url(&testing::fresh_database_url(dir).await, false)
        .await
        .expect("connect");
    db.conn
        .execute_unprepared("CREATE TABLE wt_rows (k VARCHAR(200) PRIMARY KEY, v VARCHAR(200))")
        .await
        .expect("create table");
    db
}

fn insert(db: &Db, k: &str, v: &str) -> Statement {
    let sql = match db.backend() {
        DbBackend::Postgres => "INSERT INTO wt_rows (k, v) VALUES ($1, $2)",
        _ => "INSERT INTO wt_rows (k, v) VALUES (?, ?)",
    };
    Statement::from_sql_and_values(db.backend(), sql, [k.into(), v.into()])
}

async fn keys(db: &Db) -> Vec<String> {
    let rows = db
        .conn
        .query_all_raw(Statement::from_string(
            db.backend(),
            "SELECT k FROM wt_rows ORDER BY k",
        ))
        .await
        .expect("select");
    rows.iter()
        .map(|r| r.try_get::<String>("", "k").expect("k"))
        .collect()
}

fn is_unique_violation(e: &sea_orm::DbErr) -> bool {
    matches!(
        e.sql_err(),
        Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writers_each_commit_and_a_failure_undoes_only_its_own_statements() {
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_table(dir.path()).await;
    db.write_together(vec![insert(&db, "taken", "first")])
        .await
        .expect("seed row");

    // 200 callers at once; every tenth one writes a fresh row AND the taken
    // key, so it must fail as a whole while the others all commit.
    let mut tasks = Vec::new();
    for i in 0..200 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let mut statements = vec![insert(&db, &format!("k{i:03}"), "v")];
            if i % 10 == 0 {
                statements.push(insert(&db, "taken", "again"));
            }
            (i, db.write_together(statements).await)
        }));
    }
    let mut failed = Vec::new();
    for t in tasks {
        let (i, result) = t.await.unwrap();
        match result {
            Ok(()) => assert_ne!(i % 10, 0, "caller {i} should have failed"),
            Err(e) => {
                assert!(is_unique_violation(&e), "caller {i}: {e}");
                failed.push(i);
            }
        }
    }
    assert_eq!(failed.len(), 20, "exactly the conflicting callers fail");
    let stored = keys(&db).await;
    assert_eq!(stored.len(), 1 + 180, "180 fresh rows and the seed");
    for i in failed {
        assert!(
            !stored.contains(&format!("k{i:03}")),
            "a failed caller's other statement was rolled back"
        );
    }
    // The connection is usable afterwards (no transaction left open).
    db.write_together(vec![insert(&db, "after", "v")])
        .await
        .expect("write after failures");
    assert!(keys(&db).await.contains(&"after".to_string()));
}

#[tokio::test]
async fn sqlite_log_is_checkpointed_into_the_database_file() {
    if testing::backend() != Backend::Sqlite {
        return; // PostgreSQL has no such log to check: nothing to assert here.
    }
    let dir = tempfile::tempdir().unwrap();
    let db = db_with_table(dir.path()).await;
    let file = dir.path().join("heimdall.db");
    let before = std::fs::metadata(&file).unwrap().len();
    let filler = "x".repeat(190);
    for chunk in 0..20 {
        let statements = (0..50)
            .map(|i| insert(&db, &format!("c{chunk:02}-{i:02}"), &filler))
            .collect();
        db.write_together(statements).await.expect("write");
    }
    // Automatic checkpoints are off on the write path; the checkpointer
    // must copy the log into the file on its own, within a few seconds.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = std::fs::metadata(&file).unwrap().len();
        if now > before + 100_000 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "database file still {now} bytes (was {before}): the log was never checkpointed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(keys(&db).await.len(), 1000);
}

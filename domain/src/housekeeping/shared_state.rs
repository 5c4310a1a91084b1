//! Redis as every process watches it: an outage alerted once, the shared limits
//! restored when Redis lost them, and the waiting work enqueued again when it answers.

use super::*;

/// Watch Redis (when configured), from every process at every runtime refresh.
///
/// - When it stops answering: one alert from this process for the outage (the
///   alert sink throttles repeats by key). Meanwhile sends are held (the shared
///   rate, pace and tier live there: see [`crate::sending::limits`]), webhooks
///   still answer, and STOPs are recorded (or spooled).
/// - When it answers having lost what it held (a restart without
///   persistence: the mark Heimdall leaves in it is gone), the shared limits
///   are restored first ([`restore_shared_limits`]; until then they refuse).
/// - When it answers again, lost or not, every waiting message and unfinished
///   fan-out is enqueued again at once, instead of after [`REQUEUE_GRACE`]. A
///   duplicate queue entry is harmless: a worker claims a message with a
///   compare-and-set, and a fan-out's messages have idempotency keys.
pub async fn watch_redis(core: &Core) {
    let Some(conn) = &core.redis else {
        return;
    };
    let mut conn = conn.clone();
    let mark = core.limits.mark_key();
    let res: Result<bool, _> = redis::cmd("EXISTS").arg(&mark).query_async(&mut conn).await;
    let was_answering = core
        .redis_watch
        .answering
        .swap(res.is_ok(), std::sync::atomic::Ordering::SeqCst);
    let marked = match res {
        Ok(marked) => marked,
        Err(e) => {
            if was_answering {
                tracing::error!(error = %e, "Redis is not answering: sends are held until it does");
                alerts::raise(
                    core,
                    Alert {
                        key: "redis_unreachable".into(),
                        title: "Redis not answering".into(),
                        description: "Sends are held: the shared rate limits and the tier count live in Redis. Webhooks still answer and STOPs are recorded. Sending resumes by itself when Redis answers.".into(),
                        error_code: None,
                        meaning: None,
                        message_id: None,
                        campaign_id: None,
                    },
                )
                .await;
            }
            return;
        }
    };
    let seen_before = core
        .redis_watch
        .seen
        .swap(true, std::sync::atomic::Ordering::SeqCst);
    if marked && was_answering {
        return;
    }
    if !marked {
        // Redis lost what it held (or this is its first use). The shared limits refuse
        // while the mark is missing: rebuild the tier's count from its record first.
        if let Err(e) = restore_shared_limits(core, &mut conn, &mark, seen_before).await {
            core.redis_watch
                .answering
                .store(false, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(error = %e, "could not restore the shared limits; trying at the next look");
            return;
        }
    }
    // One process enqueues again (every process sees the same event): the others would
    // only add duplicates.
    let lease = format!("{mark}:requeue");
    let taken: Result<Option<String>, _> = redis::cmd("SET")
        .arg(&lease)
        .arg(&core.redis_watch.mark)
        .arg("NX")
        .arg("PX")
        .arg(REQUEUE_LEASE_MS)
        .query_async(&mut conn)
        .await;
    let leader = match taken {
        Ok(Some(_)) => true,
        // This process's own lease (a retry after a failed attempt).
        Ok(None) => {
            redis::cmd("GET")
                .arg(&lease)
                .query_async::<Option<String>>(&mut conn)
                .await
                .ok()
                .flatten()
                .as_deref()
                == Some(core.redis_watch.mark.as_str())
        }
        Err(_) => false,
    };
    if !leader {
        return;
    }
    let messages = requeue_waiting(core).await;
    let fan_outs = campaigns::resume_fan_outs(core).await;
    match (messages, fan_outs) {
        (Ok(m), Ok(c)) => tracing::info!(
            messages = m,
            fan_outs = c,
            emptied = !marked,
            "Redis answers: waiting work enqueued again"
        ),
        (Err(e), _) | (_, Err(e)) => {
            // Asked again at the next look.
            core.redis_watch
                .answering
                .store(false, std::sync::atomic::Ordering::SeqCst);
            tracing::warn!(error = %e, "could not enqueue the waiting work again; trying at the next look");
        }
    }
}

/// After Redis lost what it held: the tier's count rebuilt from `tier_usage`, a hold
/// on the rate when this process had seen Redis before (the slots handed out before
/// the loss are no longer counted; at a process's first look there were none), then
/// the mark that lets the shared limits count again.
async fn restore_shared_limits(
    core: &Core,
    conn: &mut redis::aio::ConnectionManager,
    mark: &str,
    hold: bool,
) -> Result<(), String> {
    let people = core
        .limits
        .rebuild_shared_tier(&core.db, core.now())
        .await?;
    let mut pipe = redis::pipe();
    if hold {
        pipe.cmd("SET")
            .arg(core.limits.hold_key())
            .arg(1)
            .arg("PX")
            .arg(core.limits.hold_after_loss().as_millis() as u64)
            .ignore();
    }
    pipe.cmd("SET")
        .arg(mark)
        .arg(&core.redis_watch.mark)
        .arg("NX")
        .ignore();
    pipe.query_async::<()>(conn)
        .await
        .map_err(|e| e.to_string())?;
    tracing::info!(
        tier_people = people,
        hold,
        "shared limits restored in Redis"
    );
    Ok(())
}

/// How long the process that enqueues the waiting work again after an outage keeps
/// the others from doing the same.
const REQUEUE_LEASE_MS: u64 = 10_000;

/// Enqueue every waiting message again: those due at once (straight onto the queue),
/// the others for their time (on Redis they wait in Heimdall's own deferred set,
/// moved onto the queue in bounded batches: `heimdall_jobs::deferred`).
async fn requeue_waiting(core: &Core) -> Result<u64, sea_orm::DbErr> {
    let mut after = String::new();
    let mut n = 0;
    loop {
        let page = outbound_message::Entity::find()
            .filter(outbound_message::Column::State.is_in([
                MessageState::Queued.as_str(),
                MessageState::Deferred.as_str(),
            ]))
            .filter(outbound_message::Column::Id.gt(after.as_str()))
            .order_by_asc(outbound_message::Column::Id)
            .limit(1000)
            .all(&core.db.conn)
            .await?;
        let Some(last) = page.last() else {
            return Ok(n);
        };
        after = last.id.clone();
        let now = core.now();
        for m in page {
            let not_before = m.defer_until.filter(|at| *at > now);
            match core.queue.enqueue_send(m.id.clone(), not_before).await {
                Ok(()) => n += 1,
                Err(e) => {
                    tracing::warn!(message_id = %m.id, error = %e, "could not re-enqueue");
                    return Err(sea_orm::DbErr::Custom(e.to_string()));
                }
            }
        }
    }
}

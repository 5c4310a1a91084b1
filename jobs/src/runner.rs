//! Every worker and schedule, registered in one place, run under one apalis
//! monitor that stops when asked and lets in-flight jobs finish.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use futures::Future;

use heimdall_domain::Core;

use crate::deferred;
use crate::fan_out_campaign;
use crate::poll::Tick;
use crate::queue::{FanOutQueue, Queue};
use crate::send_message;

/// How often an idle worker looks for due jobs (deferred jobs become due
/// without a push, so polling is needed besides wake-on-push).
const POLL: Duration = Duration::from_millis(50);

/// How long a stopping process waits for its sends still running (a provider call
/// times out well within it).
const SENDS_AT_SHUTDOWN: Duration = Duration::from_secs(20);

/// Register one job's worker on whichever of the three backends `$queue`
/// is (`$queues`: the job's queue enum, with `Sqlite`, `Postgres` and
/// `Redis` arms). The arms differ only in the storage's type; a generic
/// function would have to restate apalis' backend bounds for each, so the
/// one registration is this macro. Each start of a worker takes a fresh
/// name (`{name}-{restarts}`): a restarted worker must not re-register under
/// the name its dead self still holds (apalis refuses it until that one's
/// heartbeats lapse, and the worker restarts in a loop meanwhile: seen
/// 741,005 times in four minutes).
macro_rules! register_queue_worker {
    ($monitor:expr, $queues:ident, $queue:expr, $name:expr, $poll:expr, $concurrency:expr, $core:expr, $handler:expr) => {{
        let name: String = $name;
        let core = $core;
        match $queue {
            $queues::Sqlite(storage) => $monitor.register(move |restarts| {
                WorkerBuilder::new(format!("{name}-{restarts}"))
                    .backend(storage.clone().poll_with_strategy(Tick::new($poll)))
                    .concurrency($concurrency)
                    .data(core.clone())
                    .build($handler)
            }),
            $queues::Postgres(storage) => $monitor.register(move |restarts| {
                WorkerBuilder::new(format!("{name}-{restarts}"))
                    .backend(storage.clone().poll_with_strategy(Tick::new($poll)))
                    .concurrency($concurrency)
                    .data(core.clone())
                    .build($handler)
            }),
            $queues::Redis(storage) => $monitor.register(move |restarts| {
                WorkerBuilder::new(format!("{name}-{restarts}"))
                    .backend(storage.clone().poll_with_strategy(Tick::new($poll)))
                    .concurrency($concurrency)
                    .data(core.clone())
                    .build($handler)
            }),
        }
    }};
}

/// The monitor every worker runs under: a worker that ends with an error
/// (its queue or scheduler failed) is started again, never left dead, and
/// shutdown waits up to 30 s for jobs in flight.
pub fn monitor() -> Monitor {
    Monitor::new()
        .shutdown_timeout(Duration::from_secs(30))
        .should_restart(|worker, error| {
            tracing::warn!(
                worker = worker.name(),
                restarts = worker.restarts(),
                error = %error,
                "worker stopped with an error; restarting it"
            );
            !worker.is_shutting_down()
        })
}

/// Run the workers until `shutdown` resolves; then stop taking jobs and wait
/// (up to 30 s) for those in flight.
pub async fn run(
    core: Arc<Core>,
    queue: Queue,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), anyhow::Error> {
    let concurrency = core.settings.worker_concurrency;
    // Worker names must be unique among live workers (apalis registers
    // them with heartbeats): one per process and start.
    let worker_name = format!(
        "heimdall-send-{}-{}",
        std::process::id(),
        heimdall_domain::clock::new_id()
    );
    let monitor = monitor();
    let queue_for_hooks = queue.clone();
    let promoter = tokio::spawn(promote_deferred(queue.clone()));
    let monitor = register_queue_worker!(
        monitor,
        Queue,
        queue,
        worker_name.clone(),
        POLL,
        concurrency,
        core.clone(),
        send_message::handler
    );
    // Names unique among live workers, as above.
    let fan_out_name = format!(
        "heimdall-fan-out-{}-{}",
        std::process::id(),
        heimdall_domain::clock::new_id()
    );
    let monitor = register_queue_worker!(
        monitor,
        FanOutQueue,
        queue_for_hooks.fan_out(),
        fan_out_name,
        fan_out_campaign::POLL,
        fan_out_campaign::CONCURRENCY,
        core.clone(),
        fan_out_campaign::handler
    );
    let monitor = crate::schedules::register(monitor, &core, &queue_for_hooks);
    let stopping = core.clone();
    let asked = Arc::new(std::sync::OnceLock::<std::time::Instant>::new());
    let asked_at = asked.clone();
    // A worker that takes a second or more to stop once asked is named, so a
    // slow graceful stop says what it waited for.
    let asked_for_events = asked.clone();
    let monitor = monitor.on_event(move |worker, event| {
        if let (apalis::prelude::Event::Exit, Some(at)) = (event, asked_for_events.get()) {
            let after_ms = at.elapsed().as_millis() as u64;
            if after_ms >= 1000 {
                tracing::info!(worker = worker.name(), after_ms, "worker slow to stop");
            }
        }
    });
    let ran = monitor
        .run_with_signal(async move {
            shutdown.await;
            let _ = asked_at.set(std::time::Instant::now());
            // Sends waiting for their slot give their message back now.
            stopping.stop();
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("workers stopped with an error: {e}"));
    promoter.abort();
    // Sends are tasks of their own: let those still running finish (a send waiting
    // for its slot gives its message back at once; one in its call records the answer).
    let left = send_message::wait_for_sends(SENDS_AT_SHUTDOWN).await;
    match queue_for_hooks.release_in_flight(&worker_name).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "fetched jobs not run given back to the queue"),
        Err(e) => {
            tracing::warn!(error = %e, "could not give back the fetched jobs; they return when this worker's silence is noticed")
        }
    }
    if let Some(at) = asked.get() {
        tracing::info!(
            after_ms = at.elapsed().as_millis() as u64,
            sends_cut_off = left,
            "workers stopped: jobs in flight finished"
        );
    }
    ran
}

/// On Redis: every [`deferred::TICK`], move the deferred messages that fell due
/// onto the queue (see [`crate::deferred`]). Every worker process does it; an
/// entry is moved by one of them. A failure is logged once until it clears
/// (Redis away is alerted by the domain's watch).
async fn promote_deferred(queue: Queue) {
    if !matches!(queue, Queue::Redis(_)) {
        return;
    }
    let mut failing = false;
    let mut tick = tokio::time::interval(deferred::TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match queue.promote_due().await {
            Ok(n) => {
                if n > 0 {
                    tracing::debug!(messages = n, "deferred messages due: enqueued");
                }
                failing = false;
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, "could not move due deferred messages onto the queue; trying again");
                }
                failing = true;
            }
        }
    }
}

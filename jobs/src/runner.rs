//! Every worker and schedule, registered in one place, run under one apalis
//! monitor that stops when asked and lets in-flight jobs finish.

use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use futures::Future;

use heimdall_domain::Core;

use crate::queue::Queue;
use crate::send_message::{self, SendMessage};

async fn send_message_handler(job: SendMessage, core: Data<Arc<Core>>) -> Result<(), BoxDynError> {
    send_message::run(job, (*core).clone())
        .await
        .map_err(|e| -> BoxDynError { e.into() })
}

/// Run the workers until `shutdown` resolves; then stop taking jobs and wait
/// (up to 30 s) for those in flight.
pub async fn run(
    core: Arc<Core>,
    queue: Queue,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), anyhow::Error> {
    let concurrency = core.settings.worker_concurrency;
    let monitor = Monitor::new().shutdown_timeout(Duration::from_secs(30));
    let monitor = match queue {
        Queue::Sqlite(storage) => {
            let core = core.clone();
            monitor.register(move |_| {
                WorkerBuilder::new("heimdall-send")
                    .backend(storage.clone())
                    .concurrency(concurrency)
                    .data(core.clone())
                    .build(send_message_handler)
            })
        }
        Queue::Postgres(storage) => {
            let core = core.clone();
            monitor.register(move |_| {
                WorkerBuilder::new("heimdall-send")
                    .backend(storage.clone())
                    .concurrency(concurrency)
                    .data(core.clone())
                    .build(send_message_handler)
            })
        }
        Queue::Redis(storage) => {
            let core = core.clone();
            monitor.register(move |_| {
                WorkerBuilder::new("heimdall-send")
                    .backend(storage.clone())
                    .concurrency(concurrency)
                    .data(core.clone())
                    .build(send_message_handler)
            })
        }
    };
    monitor
        .run_with_signal(async move {
            shutdown.await;
            Ok(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("workers stopped with an error: {e}"))
}

//! Requests merged into batches: the loop behind the PostgreSQL writer, and
//! [`Batcher`], which merges requests of one kind (the send path's reads)
//! into shared statements, each caller waiting for its own answer.

use std::sync::Arc;

use sea_orm::DbErr;

/// The loop behind the merged writers and reads: take the first request
/// and whatever else is already waiting (up to `max`, while `fits` says the
/// next one may join; the first that may not starts the next batch), run
/// the batch on its own task, at most `in_flight` batches at once. Under
/// light load each request runs alone at once; under load the requests
/// that queue while batches are running share the next one. Ends when
/// every sender is gone.
pub(crate) async fn in_batches<R, F, Fut>(
    mut rx: tokio::sync::mpsc::Receiver<R>,
    in_flight: usize,
    max: usize,
    fits: impl Fn(&[R], &R) -> bool,
    run: F,
) where
    R: Send + 'static,
    F: Fn(Vec<R>) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(tokio::sync::Semaphore::new(in_flight));
    let mut held: Option<R> = None;
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let first = match held.take() {
            Some(r) => r,
            None => match rx.recv().await {
                Some(r) => r,
                None => break,
            },
        };
        let mut batch = vec![first];
        while batch.len() < max {
            let Ok(r) = rx.try_recv() else {
                break;
            };
            if !fits(&batch, &r) {
                held = Some(r);
                break;
            }
            batch.push(r);
        }
        let work = run(batch);
        tokio::spawn(async move {
            work.await;
            drop(slot);
        });
    }
}

fn no_answer() -> DbErr {
    DbErr::Custom("the batch gave no answer".into())
}

/// What a [`Batcher`] request waits for.
type Answer<A> = tokio::sync::oneshot::Sender<Result<A, DbErr>>;

/// Requests of one kind (workers' reads, acceptance reads) merged into shared statements by
/// [`in_batches`]: each caller sends its request and waits for its own
/// answer. The batch function returns one answer per request, in order,
/// or an error that every request of the batch hears.
/// Started on first use, on the caller's runtime.
pub(crate) struct Batcher<Q, A> {
    tx: std::sync::OnceLock<tokio::sync::mpsc::Sender<(Q, Answer<A>)>>,
}

impl<Q, A> Default for Batcher<Q, A> {
    fn default() -> Self {
        Batcher {
            tx: std::sync::OnceLock::new(),
        }
    }
}

impl<Q, A> std::fmt::Debug for Batcher<Q, A> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Batcher")
            .field("started", &self.tx.get().is_some())
            .finish()
    }
}

impl<Q: Send + 'static, A: Send + 'static> Batcher<Q, A> {
    /// Send `request` to the next batch (at most `max` requests, at most
    /// `in_flight` batches running) and wait for its answer. `start` makes
    /// the batch function; it is called once, when the batcher starts, or
    /// when the batcher's runtime is gone (a test's) to run this request
    /// alone.
    pub(crate) async fn call<F, Fut>(
        &self,
        request: Q,
        in_flight: usize,
        max: usize,
        start: impl FnOnce() -> F,
    ) -> Result<A, DbErr>
    where
        F: Fn(Vec<Q>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<Vec<A>, DbErr>> + Send + 'static,
    {
        let mut start = Some(start);
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = tokio::sync::mpsc::channel::<(Q, Answer<A>)>(1024);
            let run = (start.take().expect("started once"))();
            tokio::spawn(in_batches(
                rx,
                in_flight,
                max,
                |_, _| true,
                move |batch| {
                    let (requests, answers): (Vec<Q>, Vec<Answer<A>>) = batch.into_iter().unzip();
                    let work = run(requests);
                    async move {
                        let mut results = work.await.map(Vec::into_iter);
                        for answer in answers {
                            let _ = answer.send(match &mut results {
                                Ok(results) => results.next().ok_or_else(no_answer),
                                Err(e) => Err(e.clone()),
                            });
                        }
                    }
                },
            ));
            tx
        });
        let (answer, answered) = tokio::sync::oneshot::channel();
        match tx.send((request, answer)).await {
            Ok(()) => answered
                .await
                .unwrap_or_else(|_| Err(DbErr::Custom("the batcher stopped".into()))),
            Err(e) => {
                let run = match start.take() {
                    Some(start) => start(),
                    None => {
                        return Err(DbErr::Custom("the batcher stopped".into()));
                    }
                };
                run(vec![e.0 .0])
                    .await?
                    .into_iter()
                    .next()
                    .ok_or_else(no_answer)
            }
        }
    }
}

//! A poll strategy that wakes an idle worker every `interval`.
//!
//! apalis 1.0's `IntervalStrategy` re-arms its timer without polling it, so
//! when a fetch completes within the same poll no wake-up is registered and
//! the worker stalls until the next heartbeat (30 s). This one always
//! leaves a polled, pending timer behind.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use apalis::prelude::{PollSnapshot, PollStrategy};

pub struct Tick {
    interval: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Tick {
    pub fn new(interval: Duration) -> Self {
        Tick {
            interval,
            sleep: None,
        }
    }
}

impl Clone for Tick {
    fn clone(&self) -> Self {
        Tick::new(self.interval)
    }
}

impl std::fmt::Debug for Tick {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tick")
            .field("interval", &self.interval)
            .finish()
    }
}

impl PollStrategy for Tick {
    fn poll_drive(&mut self, cx: &mut Context<'_>, _: &PollSnapshot) -> Poll<Option<()>> {
        let mut fired = false;
        loop {
            let interval = self.interval;
            let sleep = self
                .sleep
                .get_or_insert_with(|| Box::pin(tokio::time::sleep(interval)));
            match sleep.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    fired = true;
                    self.sleep = None;
                }
                // The new timer is polled, so its waker is registered.
                Poll::Pending => {
                    return if fired {
                        Poll::Ready(Some(()))
                    } else {
                        Poll::Pending
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::task::noop_waker_ref;

    #[tokio::test(start_paused = true)]
    async fn always_leaves_a_pending_timer() {
        let mut t = Tick::new(Duration::from_millis(50));
        let mut cx = Context::from_waker(noop_waker_ref());
        let snap = PollSnapshot::default();
        assert_eq!(t.poll_drive(&mut cx, &snap), Poll::Pending);
        tokio::time::advance(Duration::from_millis(60)).await;
        assert_eq!(t.poll_drive(&mut cx, &snap), Poll::Ready(Some(())));
        // A fresh timer is armed and pending.
        assert!(t.sleep.is_some());
        assert_eq!(t.poll_drive(&mut cx, &snap), Poll::Pending);
    }
}

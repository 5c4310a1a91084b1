//! The one place where the life of an outbound message is written down.
//!
//! ```text
//! pending ──gates──> blocked                      (refused; recorded, never sent)
//!    │      └──────> deferred ──due──> (claimed) sending
//!    └─────────────> queued ───claim─> sending ──provider──> sent ─> delivered ─> read
//!                      │                 │                    └──> undelivered / failed
//!                      └─> cancelled     └──> deferred (retry with backoff) / failed
//!
//! held ──the part before was handed over──> queued     (a later part of a text sent
//!   └───the part before was not sent──────> cancelled   in parts, in order)
//! ```
//!
//! [`MessageState::may_become`] is this diagram as a table; every write of
//! a message's state is checked against it.
//!
//! Provider statuses only ever move a message forward: a late `delivered`
//! never overwrites `read`, a failure never overwrites a delivery, and a
//! terminal failure is never overwritten by anything.

use serde::{Deserialize, Serialize};

/// Stored as its [`as_str`](MessageState::as_str) name: the
/// `outbound_messages.state` column's own type, so a stored name this enum
/// does not know is a read error, never a guess.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(sea_orm::DeriveValueType))]
#[cfg_attr(
    feature = "db",
    sea_orm(value_type = "String", from_str = "MessageState::from_stored")
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageState {
    /// Written, gates not yet evaluated.
    Pending,
    /// Refused by a gate.
    Blocked,
    /// Held by a gate (quiet hours, tier, pace) or waiting for a retry.
    Deferred,
    /// Passed the gates; waiting for a worker.
    Queued,
    /// A later part of a text sent in parts: passed the gates, and waits until the part
    /// before it has been handed to the provider (then `queued`, gated again when a worker
    /// takes it) or has failed (then `cancelled`, saying why). No worker may take it.
    Held,
    /// Claimed by a worker; with a provider sid, accepted by the provider.
    Sending,
    Sent,
    Delivered,
    Read,
    Undelivered,
    Failed,
    /// Withdrawn before it was sent (campaign cancelled, reminder cancelled).
    Cancelled,
}

crate::named_values!(MessageState, "message state", {
    Pending => "pending",
    Blocked => "blocked",
    Deferred => "deferred",
    Queued => "queued",
    Held => "held",
    Sending => "sending",
    Sent => "sent",
    Delivered => "delivered",
    Read => "read",
    Undelivered => "undelivered",
    Failed => "failed",
    Cancelled => "cancelled",
});

impl MessageState {
    /// No further change can come from Heimdall itself.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            MessageState::Blocked
                | MessageState::Read
                | MessageState::Undelivered
                | MessageState::Failed
                | MessageState::Cancelled
        )
    }

    /// Waiting to be sent (a worker may claim it).
    pub fn is_waiting(self) -> bool {
        matches!(self, MessageState::Queued | MessageState::Deferred)
    }

    /// The moves the diagram above allows a write to make (a provider's
    /// report is decided by [`MessageState::apply_provider_status`], which
    /// only ever moves forward). Writing a state onto itself is always
    /// allowed (a re-defer, a failure a callback already recorded). Every
    /// write of a message's state names the states it moves from and is
    /// checked against this table (`sending::state::moving`).
    pub fn may_become(self, next: MessageState) -> bool {
        use MessageState::*;
        if self == next {
            return true;
        }
        match self {
            // The gates at acceptance.
            Pending => matches!(next, Blocked | Deferred | Queued | Held),
            // A worker's claim, a campaign paused or cancelled, a part
            // stopped because the part before it was not sent.
            Queued => matches!(next, Sending | Deferred | Cancelled),
            Deferred => matches!(next, Sending | Queued | Cancelled),
            Held => matches!(next, Queued | Cancelled),
            // The gates in the worker, the provider's answer, a retry, a
            // worker that stopped mid-call (failed for a person to check).
            Sending => matches!(
                next,
                Blocked | Deferred | Sent | Delivered | Read | Undelivered | Failed
            ),
            Sent => matches!(next, Delivered | Read | Undelivered | Failed),
            Delivered => matches!(next, Read),
            // A failure the provider reported with a code worth retrying is
            // tried again (the one way out of a failure).
            Undelivered | Failed => next == Deferred,
            Blocked | Read | Cancelled => false,
        }
    }

    /// Progress along the delivery path; failures have none.
    fn delivery_rank(self) -> Option<u8> {
        match self {
            MessageState::Sending => Some(1),
            MessageState::Sent => Some(2),
            MessageState::Delivered => Some(3),
            MessageState::Read => Some(4),
            _ => None,
        }
    }

    /// The state a provider's status report moves the message to, if it
    /// moves it at all (forward only).
    pub fn apply_provider_status(self, reported: ProviderStatus) -> Option<MessageState> {
        let target = reported.state();
        if target == self {
            return None;
        }
        match (self.delivery_rank(), target.delivery_rank()) {
            // Forward along the path only.
            (Some(have), Some(new)) => (new > have).then_some(target),
            // A failure may end a message that has not been delivered.
            (Some(have), None) => (have <= 2).then_some(target),
            // Reports for messages not yet handed over, or already ended,
            // are recorded in the history but never change the state: a
            // terminal failure stays one (its SMS fallback may have gone
            // already, and a late "delivered" must not make it look as if
            // the person got the message twice, or that no fallback went).
            (None, _) => None,
        }
    }
}

/// A status as Twilio or Meta reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderStatus {
    Accepted,
    Queued,
    Sending,
    Sent,
    Delivered,
    Read,
    Undelivered,
    Failed,
}

impl ProviderStatus {
    pub fn parse(s: &str) -> Option<ProviderStatus> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "accepted" | "scheduled" => ProviderStatus::Accepted,
            "queued" => ProviderStatus::Queued,
            "sending" => ProviderStatus::Sending,
            "sent" => ProviderStatus::Sent,
            "delivered" => ProviderStatus::Delivered,
            "read" => ProviderStatus::Read,
            "undelivered" => ProviderStatus::Undelivered,
            "failed" | "canceled" => ProviderStatus::Failed,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ProviderStatus::Accepted => "accepted",
            ProviderStatus::Queued => "queued",
            ProviderStatus::Sending => "sending",
            ProviderStatus::Sent => "sent",
            ProviderStatus::Delivered => "delivered",
            ProviderStatus::Read => "read",
            ProviderStatus::Undelivered => "undelivered",
            ProviderStatus::Failed => "failed",
        }
    }

    /// The message state this report stands for.
    pub fn state(self) -> MessageState {
        match self {
            ProviderStatus::Accepted | ProviderStatus::Queued | ProviderStatus::Sending => {
                MessageState::Sending
            }
            ProviderStatus::Sent => MessageState::Sent,
            ProviderStatus::Delivered => MessageState::Delivered,
            ProviderStatus::Read => MessageState::Read,
            ProviderStatus::Undelivered => MessageState::Undelivered,
            ProviderStatus::Failed => MessageState::Failed,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, ProviderStatus::Undelivered | ProviderStatus::Failed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MessageState as S;
    use ProviderStatus as P;

    #[test]
    fn every_move_a_provider_report_makes_is_in_the_table() {
        for from in S::ALL {
            for reported in [
                P::Queued,
                P::Sent,
                P::Delivered,
                P::Read,
                P::Undelivered,
                P::Failed,
            ] {
                if let Some(next) = from.apply_provider_status(reported) {
                    assert!(from.may_become(next), "{from} -> {next} ({reported:?})");
                }
            }
        }
    }

    #[test]
    fn the_table_follows_the_diagram() {
        // Nothing leaves a refusal, a read message or a withdrawn one.
        for end in [S::Blocked, S::Read, S::Cancelled] {
            for next in S::ALL.into_iter().filter(|n| *n != end) {
                assert!(!end.may_become(next), "{end} -> {next}");
            }
        }
        // A failure is only ever retried.
        for end in [S::Failed, S::Undelivered] {
            let out: Vec<S> = S::ALL
                .into_iter()
                .filter(|n| *n != end && end.may_become(*n))
                .collect();
            assert_eq!(out, [S::Deferred], "{end}");
        }
        // Only a worker's claim leads to the provider; nothing skips the gates.
        for from in S::ALL {
            if from.may_become(S::Sending) && from != S::Sending {
                assert!(from.is_waiting(), "{from} -> sending");
            }
        }
        assert!(!S::Pending.may_become(S::Sending));
        assert!(!S::Held.may_become(S::Sending));
        assert!(S::Held.may_become(S::Queued));
        assert!(S::Deferred.may_become(S::Deferred));
    }

    #[test]
    fn forward_only() {
        assert_eq!(S::Sending.apply_provider_status(P::Sent), Some(S::Sent));
        assert_eq!(
            S::Sent.apply_provider_status(P::Delivered),
            Some(S::Delivered)
        );
        assert_eq!(S::Delivered.apply_provider_status(P::Read), Some(S::Read));
        // A late delivered never overwrites read; a late sent never overwrites delivered.
        assert_eq!(S::Read.apply_provider_status(P::Delivered), None);
        assert_eq!(S::Delivered.apply_provider_status(P::Sent), None);
        assert_eq!(S::Read.apply_provider_status(P::Sending), None);
        // Out of order: read before delivered lands on read and stays.
        assert_eq!(S::Sending.apply_provider_status(P::Read), Some(S::Read));
    }

    #[test]
    fn failures_end_undelivered_messages_only() {
        assert_eq!(S::Sending.apply_provider_status(P::Failed), Some(S::Failed));
        assert_eq!(
            S::Sent.apply_provider_status(P::Undelivered),
            Some(S::Undelivered)
        );
        assert_eq!(S::Delivered.apply_provider_status(P::Failed), None);
        assert_eq!(S::Read.apply_provider_status(P::Undelivered), None);
        // Forward only: a terminal failure is never overwritten, not even
        // by a later delivery report (its fallback may have gone).
        for late in [P::Sent, P::Delivered, P::Read] {
            assert_eq!(S::Failed.apply_provider_status(late), None, "{late:?}");
            assert_eq!(S::Undelivered.apply_provider_status(late), None, "{late:?}");
        }
    }

    #[test]
    fn reports_for_unsent_or_refused_messages_change_nothing() {
        for s in [S::Pending, S::Blocked, S::Queued, S::Deferred, S::Cancelled] {
            for p in [
                P::Queued,
                P::Sending,
                P::Sent,
                P::Delivered,
                P::Read,
                P::Failed,
            ] {
                assert_eq!(s.apply_provider_status(p), None, "{s} {p:?}");
            }
        }
    }

    #[test]
    fn names_round_trip() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            // The stored name is the JSON name.
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!(S::from_stored("SENT").is_err());
        for p in [
            "queued",
            "sending",
            "sent",
            "delivered",
            "read",
            "undelivered",
            "failed",
            "accepted",
        ] {
            assert_eq!(P::parse(p).unwrap().as_str(), p);
        }
        assert_eq!(P::parse("bogus"), None);
    }
}

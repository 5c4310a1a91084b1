//! The gate pipeline: a pure function of the message, the facts loaded for
//! it and the clock. It returns every gate's verdict and one decision.
//!
//! It never reads the database, the network or the system clock, so the
//! same inputs always give the same decision and every rule can be tested
//! on its own. Loading the facts is [`crate::sending::outbound`]'s job; writing the
//! decision to the `tool_calls` audit log happens before any provider call.
//!
//! One file per part: `facts` (what the pipeline is given), `recipient`
//! (the number, the allowlist, suppression, consent), `authorization` (who
//! stands behind the message, its template, and the template rule the
//! checks before a message exists share), `channel_rules` (WhatsApp's
//! window, marketing to US numbers, a paused sender), `pace` (quiet hours,
//! the messaging tier, one message per person at a time), `tests`; used as
//! `gates::name`.

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Timelike, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::phone::PhoneNumber;

/// The gates and their stable reason codes (part of the outside contract)
/// live in `heimdall-codes`, which the console's browser build shares.
pub use heimdall_codes::Gate;

mod authorization;
mod channel_rules;
mod facts;
mod pace;
mod recipient;

pub use authorization::*;
pub use channel_rules::*;
pub use facts::*;
pub use pace::*;
use recipient::*;

/// One gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "verdict", rename_all = "snake_case")]
pub enum Verdict {
    Pass {
        detail: String,
    },
    /// The gate does not apply to this message (e.g. quiet hours on WhatsApp).
    NotApplicable {
        detail: String,
    },
    Block {
        detail: String,
    },
    Defer {
        until: DateTime<Utc>,
        detail: String,
    },
}

impl Verdict {
    fn pass(d: impl Into<String>) -> Self {
        Verdict::Pass { detail: d.into() }
    }
    fn na(d: impl Into<String>) -> Self {
        Verdict::NotApplicable { detail: d.into() }
    }
    fn block(d: impl Into<String>) -> Self {
        Verdict::Block { detail: d.into() }
    }
    pub fn detail(&self) -> &str {
        match self {
            Verdict::Pass { detail }
            | Verdict::NotApplicable { detail }
            | Verdict::Block { detail }
            | Verdict::Defer { detail, .. } => detail,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateVerdict {
    pub gate: Gate,
    #[serde(flatten)]
    pub verdict: Verdict,
}

/// What happens to the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Decision {
    Pass,
    Block { reason: Gate },
    Defer { reason: Gate, until: DateTime<Utc> },
}

impl Decision {
    pub fn as_str(&self) -> &'static str {
        match self {
            Decision::Pass => "pass",
            Decision::Block { .. } => "block",
            Decision::Defer { .. } => "defer",
        }
    }
    pub fn reason(&self) -> Option<Gate> {
        match self {
            Decision::Pass => None,
            Decision::Block { reason } | Decision::Defer { reason, .. } => Some(*reason),
        }
    }
}

/// The pipeline's answer: the decision and every gate's verdict.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateDecision {
    pub decision: Decision,
    pub verdicts: Vec<GateVerdict>,
}

impl GateDecision {
    pub fn verdict(&self, gate: Gate) -> Option<&Verdict> {
        self.verdicts
            .iter()
            .find(|v| v.gate == gate)
            .map(|v| &v.verdict)
    }

    /// A one-line explanation for API errors and the console.
    pub fn explanation(&self) -> String {
        match self.decision {
            Decision::Pass => "all gates passed".into(),
            Decision::Block { reason } | Decision::Defer { reason, .. } => self
                .verdict(reason)
                .map(|v| v.detail().to_string())
                .unwrap_or_else(|| reason.code().to_string()),
        }
    }
}

/// Is the customer-service window open at `now`?
pub fn in_window(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    expires_at.is_some_and(|e| e > now)
}

/// Evaluate every gate. The decision is the first blocking gate in
/// [`Gate::ORDER`]; failing that, a defer until the latest time any
/// deferring gate names; failing that, pass.
pub fn evaluate(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    now: DateTime<Utc>,
    policy: &Policy,
) -> GateDecision {
    let window_open = in_window(facts.window_expires_at, now);
    let verdicts: Vec<GateVerdict> = Gate::ORDER
        .iter()
        .map(|&gate| GateVerdict {
            gate,
            verdict: match gate {
                Gate::InvalidNumber => invalid_number(msg),
                Gate::NotAllowlisted => not_allowlisted(msg, policy),
                Gate::Suppressed => suppressed(msg, facts),
                Gate::NoConsent => no_consent(msg, facts, window_open),
                Gate::NotAuthorized => not_authorized(msg, facts, window_open),
                Gate::TemplateNotApproved => template_not_approved(msg, facts),
                Gate::OutsideWindow => outside_window(msg, facts, window_open, now),
                Gate::MarketingPaused => marketing_paused(msg, facts),
                Gate::SenderPaused => sender_paused(msg, facts),
                Gate::QuietHours => quiet_hours(msg, facts, now, policy),
                Gate::TierLimit => tier_limit(msg, facts, window_open, now),
                Gate::RateLimited => rate_limited(facts, now),
            },
        })
        .collect();
    let decision = decide(&verdicts);
    GateDecision { decision, verdicts }
}

fn decide(verdicts: &[GateVerdict]) -> Decision {
    if let Some(v) = verdicts
        .iter()
        .find(|v| matches!(v.verdict, Verdict::Block { .. }))
    {
        return Decision::Block { reason: v.gate };
    }
    verdicts
        .iter()
        .filter_map(|v| match v.verdict {
            Verdict::Defer { until, .. } => Some((v.gate, until)),
            _ => None,
        })
        .max_by_key(|(_, until)| *until)
        .map(|(reason, until)| Decision::Defer { reason, until })
        .unwrap_or(Decision::Pass)
}

#[cfg(test)]
mod tests;

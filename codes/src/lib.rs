//! Heimdall's stable codes, part of the outside contract, and what each
//! means in a few words for staff: the gate reason codes in evaluation
//! order, the reasons a message is held, the audit log's decisions.
//!
//! Also a campaign's states with the one table of what may happen to it
//! in each ([`CampaignStatus::apply`]): the server applies it, the console
//! asks it which actions to offer; the life of an outbound message
//! ([`message_state`]) and where it came from ([`MessageSource`]); a
//! consent's and a template's status. With the `db`
//! feature each state is its database column's own type.
//!
//! One place for both the server and the console's browser build (this
//! crate has no dependency a browser cannot build), so no page retypes a
//! code, a label or a transition. What each gate checks is
//! `heimdall_domain::compliance::gates`.

use serde::{Deserialize, Serialize};

mod campaign;
mod consent;
mod message_source;
pub mod message_state;
mod template;
pub use campaign::{CampaignAction, CampaignStatus};
pub use consent::ConsentStatus;
pub use message_source::MessageSource;
pub use message_state::{MessageState, ProviderStatus};
pub use template::TemplateApproval;

/// A stored or sent name that none of a code's values has (reading a row
/// whose state this build does not know fails with it, never guesses).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    /// What kind of code (`campaign status`, `message state`).
    pub kind: &'static str,
    pub name: String,
}

impl std::fmt::Display for UnknownName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "unknown {} '{}'", self.kind, self.name)
    }
}

impl std::error::Error for UnknownName {}

/// The names of a code's values, written once: `ALL` (in declaration
/// order), `as_str`, `parse`, `from_stored` (the reader of a column that
/// stores them, failing with [`UnknownName`]) and `Display`. Each enum
/// keeps its own derives and docs; its serde names must be these names
/// (each has a test that says so).
#[macro_export]
macro_rules! named_values {
    ($ty:ident, $kind:literal, { $($variant:ident => $name:literal),+ $(,)? }) => {
        impl $ty {
            pub const ALL: [$ty; $crate::named_values!(@count $($variant)+)] = [$($ty::$variant),+];

            /// The stored (and sent) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($ty::$variant => $name),+
                }
            }

            pub fn parse(s: &str) -> Option<$ty> {
                Self::ALL.into_iter().find(|v| v.as_str() == s)
            }

            /// The stored name read back.
            pub fn from_stored(s: &str) -> Result<$ty, $crate::UnknownName> {
                Self::parse(s).ok_or_else(|| $crate::UnknownName {
                    kind: $kind,
                    name: s.to_string(),
                })
            }
        }

        impl ::std::fmt::Display for $ty {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
    (@count) => { 0 };
    (@count $head:ident $($tail:ident)*) => { 1 + $crate::named_values!(@count $($tail)*) };
}

/// The gates, each with its stable reason code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Gate {
    InvalidNumber,
    NotAllowlisted,
    Suppressed,
    NoConsent,
    NotAuthorized,
    TemplateNotApproved,
    OutsideWindow,
    MarketingPaused,
    SenderPaused,
    QuietHours,
    TierLimit,
    RateLimited,
}

impl Gate {
    /// In evaluation order: the first gate that blocks names the decision.
    pub const ORDER: [Gate; 12] = [
        Gate::InvalidNumber,
        Gate::NotAllowlisted,
        Gate::Suppressed,
        Gate::NoConsent,
        Gate::OutsideWindow,
        Gate::TemplateNotApproved,
        Gate::NotAuthorized,
        Gate::MarketingPaused,
        Gate::SenderPaused,
        Gate::QuietHours,
        Gate::TierLimit,
        Gate::RateLimited,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Gate::InvalidNumber => "invalid_number",
            Gate::NotAllowlisted => "not_allowlisted",
            Gate::Suppressed => "suppressed",
            Gate::NoConsent => "no_consent",
            Gate::NotAuthorized => "not_authorized",
            Gate::TemplateNotApproved => "template_not_approved",
            Gate::OutsideWindow => "outside_window",
            Gate::MarketingPaused => "marketing_paused",
            Gate::SenderPaused => "sender_paused",
            Gate::QuietHours => "quiet_hours",
            Gate::TierLimit => "tier_limit",
            Gate::RateLimited => "rate_limited",
        }
    }

    /// The gate a stored reason code names.
    pub fn parse(code: &str) -> Option<Gate> {
        Gate::ORDER.into_iter().find(|g| g.code() == code)
    }

    /// Deferring gates hold a message until later; the others refuse it.
    pub fn defers(self) -> bool {
        matches!(
            self,
            Gate::SenderPaused | Gate::QuietHours | Gate::TierLimit | Gate::RateLimited
        )
    }

    /// What the code means, in a few words, for staff.
    pub fn label(self) -> &'static str {
        match self {
            Gate::InvalidNumber => "not a valid phone number",
            Gate::NotAllowlisted => "not on the phone allowlist",
            Gate::NoConsent => "no recorded opt-in for this channel",
            Gate::Suppressed => "opted out (STOP), suppressed by staff or by the provider",
            Gate::OutsideWindow => "free-form text outside the 24-hour window",
            Gate::TemplateNotApproved => "template unknown, not approved, or variables wrong",
            Gate::NotAuthorized => "no human authorization, or the sender is not active",
            Gate::QuietHours => "SMS outside sending hours, the recipient's local time (deferred)",
            Gate::TierLimit => "messaging tier used up (deferred)",
            Gate::RateLimited => "sender or recipient pace (deferred)",
            Gate::MarketingPaused => "marketing template to a US number on WhatsApp",
            Gate::SenderPaused => "held while the sender is paused after a fault of ours",
        }
    }
}

impl std::fmt::Display for Gate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// The reason a message is held while its campaign is paused (not a gate:
/// the campaign's state, not the message's facts, holds it).
pub const CAMPAIGN_PAUSED: &str = "campaign_paused";

/// What a stored reason (a gate's code, or [`CAMPAIGN_PAUSED`]) means, for
/// staff; empty for a code this build does not know.
pub fn reason_label(code: &str) -> &'static str {
    match Gate::parse(code) {
        Some(gate) => gate.label(),
        None if code == CAMPAIGN_PAUSED => "held while the campaign is paused",
        None => "",
    }
}

/// The decisions an audit row records, as the audit log filters them.
pub const AUDIT_DECISIONS: [&str; 5] = ["pass", "block", "defer", "sent", "failed"];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_has_a_distinct_code_that_parses_back_and_a_label() {
        let mut codes: Vec<&str> = Gate::ORDER.iter().map(|g| g.code()).collect();
        for gate in Gate::ORDER {
            assert_eq!(Gate::parse(gate.code()), Some(gate));
            assert!(!gate.label().is_empty(), "{gate} has no label");
            assert_eq!(reason_label(gate.code()), gate.label());
        }
        codes.sort();
        codes.dedup();
        assert_eq!(codes.len(), Gate::ORDER.len());
        assert_eq!(Gate::parse("nonsense"), None);
        assert_eq!(reason_label("nonsense"), "");
        assert_eq!(
            reason_label(CAMPAIGN_PAUSED),
            "held while the campaign is paused"
        );
    }

    #[test]
    fn the_serialized_form_is_the_code() {
        for gate in Gate::ORDER {
            let json = serde_json::to_string(&gate).expect("serializes");
            assert_eq!(json, format!("\"{}\"", gate.code()));
            let back: Gate = serde_json::from_str(&json).expect("reads back");
            assert_eq!(back, gate);
        }
    }
}

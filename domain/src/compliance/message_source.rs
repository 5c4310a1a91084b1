//! Where an outbound message came from, as its row records it, and the one
//! mapping from that to the [`Purpose`] the gates judge it by (whose
//! authorization stands behind it).

use sea_orm::DeriveValueType;
use serde::{Deserialize, Serialize};

use crate::compliance::gates::Purpose;

/// Stored as its [`as_str`](MessageSource::as_str) name: the
/// `outbound_messages.source` column's own type, so a stored name this
/// enum does not know is a read error (before, it was judged as an API
/// send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, DeriveValueType)]
#[sea_orm(value_type = "String", from_str = "MessageSource::from_stored")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum MessageSource {
    /// The internal API, under an API key.
    Api,
    /// A one-off reminder, under the API key that asked for it.
    Reminder,
    /// A recurring schedule, under the API key that set it up.
    Schedule,
    Campaign,
    /// A staff member's reply in the inbox.
    Inbox,
    /// The SMS fallback of another message.
    Fallback,
    /// The fixed reply to a person's keyword (STOP confirmation, HELP).
    Compliance,
    /// A double opt-in confirmation request.
    Optin,
}

heimdall_codes::named_values!(MessageSource, "message source", {
    Api => "api",
    Reminder => "reminder",
    Schedule => "schedule",
    Campaign => "campaign",
    Inbox => "inbox",
    Fallback => "fallback",
    Compliance => "compliance",
    Optin => "optin",
});

impl MessageSource {
    /// What the gates judge a message from here as.
    pub fn purpose(self) -> Purpose {
        match self {
            MessageSource::Campaign => Purpose::Campaign,
            MessageSource::Inbox => Purpose::InboxReply,
            MessageSource::Fallback => Purpose::Fallback,
            MessageSource::Compliance => Purpose::ComplianceReply,
            MessageSource::Optin => Purpose::OptInConfirmation,
            MessageSource::Api | MessageSource::Reminder | MessageSource::Schedule => {
                Purpose::Automation
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::MessageSource as S;

    #[test]
    fn names_round_trip_and_unknown_ones_are_errors() {
        for s in S::ALL {
            assert_eq!(S::from_stored(s.as_str()), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!(S::from_stored("staff").is_err());
    }
}

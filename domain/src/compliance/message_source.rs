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

impl MessageSource {
    pub const ALL: [MessageSource; 8] = [
        MessageSource::Api,
        MessageSource::Reminder,
        MessageSource::Schedule,
        MessageSource::Campaign,
        MessageSource::Inbox,
        MessageSource::Fallback,
        MessageSource::Compliance,
        MessageSource::Optin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            MessageSource::Api => "api",
            MessageSource::Reminder => "reminder",
            MessageSource::Schedule => "schedule",
            MessageSource::Campaign => "campaign",
            MessageSource::Inbox => "inbox",
            MessageSource::Fallback => "fallback",
            MessageSource::Compliance => "compliance",
            MessageSource::Optin => "optin",
        }
    }

    pub fn parse(s: &str) -> Option<MessageSource> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    /// The stored name read back (the column type's reader).
    pub fn from_stored(s: &str) -> Result<MessageSource, heimdall_codes::UnknownName> {
        Self::parse(s).ok_or_else(|| heimdall_codes::UnknownName {
            kind: "message source",
            name: s.to_string(),
        })
    }

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

impl std::fmt::Display for MessageSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

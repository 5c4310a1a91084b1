//! Where an outbound message came from, as its row records it (what the
//! gates judge it by is `heimdall_domain::compliance::message_source`).

use serde::{Deserialize, Serialize};

/// Stored as its [`as_str`](MessageSource::as_str) name: the
/// `outbound_messages.source` column's own type, so a stored name this
/// enum does not know is a read error (before, it was judged as an API
/// send).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(sea_orm::DeriveValueType))]
#[cfg_attr(
    feature = "db",
    sea_orm(value_type = "String", from_str = "MessageSource::from_stored")
)]
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

crate::named_values!(MessageSource, "message source", {
    Api => "api",
    Reminder => "reminder",
    Schedule => "schedule",
    Campaign => "campaign",
    Inbox => "inbox",
    Fallback => "fallback",
    Compliance => "compliance",
    Optin => "optin",
});

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

//! Where an outbound message came from ([`MessageSource`], in
//! `heimdall-codes` so the console's pages carry it too), and the one
//! mapping from that to the [`Purpose`] the gates judge it by (whose
//! authorization stands behind it).

pub use heimdall_codes::MessageSource;

use crate::compliance::gates::Purpose;

/// What the gates judge a message from here as.
impl From<MessageSource> for Purpose {
    fn from(source: MessageSource) -> Purpose {
        match source {
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

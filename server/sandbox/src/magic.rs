//! Magic numbers: recipients and senders that make the sandbox answer with a
//! particular error, a failed delivery or a fault, so that every path of
//! Heimdall can be exercised without a real account.
//!
//! Every number here is a valid number for libphonenumber (Heimdall refuses
//! invalid numbers before it sends), which a test checks.

use std::time::Duration;

/// How a magic recipient behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// The create request fails at once with this Twilio error.
    Reject {
        code: i64,
        http_status: u16,
        message: &'static str,
    },
    /// Accepted, then walks to `failed` (via `sending`) with this code.
    Fail { code: i64, message: &'static str },
    /// Accepted, then walks to `undelivered` (via `sending`, `sent`) with this code.
    Undeliver { code: i64, message: &'static str },
    /// Meta only: accepted, then a `failed` status webhook with this Cloud API code.
    MetaFail {
        code: i64,
        title: &'static str,
        message: &'static str,
    },
    /// The create request answers only after this long (then succeeds).
    Latency(Duration),
    /// The first [`FAULT_REPEAT`] create requests get HTTP 429 (20429), then success.
    Throttled,
    /// The first [`FAULT_REPEAT`] create requests get HTTP 500 (20500), then success.
    ServerError,
    /// The message is accepted (recorded, and it walks to `read` as usual),
    /// then the connection breaks before the answer's body is written: the
    /// client cannot tell whether the provider took it (a reset after the
    /// request was received).
    ResetAfterAccept,
}

/// How many requests the fault-injection recipients fail before they succeed.
pub const FAULT_REPEAT: u32 = 2;

/// The latency recipient's delay.
pub const LATENCY: Duration = Duration::from_secs(2);

/// Twilio's documented test-credential recipients (synchronous errors).
pub const TO_INVALID: &str = "+15005550001";
pub const TO_UNROUTABLE: &str = "+15005550002";
pub const TO_NO_INTERNATIONAL: &str = "+15005550003";
pub const TO_BLOCKED: &str = "+15005550004";
pub const TO_NOT_MOBILE: &str = "+15005550009";

/// Twilio's documented test-credential senders.
pub const FROM_VALID: &str = "+15005550006";
pub const FROM_INVALID: &str = "+15005550001";
pub const FROM_NOT_OWNED: &str = "+15005550007";
pub const FROM_QUEUE_FULL: &str = "+15005550008";

/// Asynchronous failures (status callbacks end `failed`/`undelivered`).
pub const TO_FAIL_63007: &str = "+12025550107";
pub const TO_FAIL_63016: &str = "+12025550116";
pub const TO_UNDELIVERED_63032: &str = "+12025550132";
pub const TO_FAIL_21610: &str = "+12025550110";
pub const TO_UNDELIVERED_30003: &str = "+12025550103";

/// Meta Cloud API failures (status webhook `failed`).
pub const TO_META_131026: &str = "+12025550126";
pub const TO_META_131047: &str = "+12025550147";

/// Fault injection.
pub const TO_SLOW: &str = "+12025550120";
pub const TO_THROTTLED: &str = "+12025550129";
pub const TO_SERVER_ERROR: &str = "+12025550150";
pub const TO_RESET_AFTER_ACCEPT: &str = "+12025550141";

/// Every magic recipient and what it does, for docs, tests and the README.
pub const MAGIC_RECIPIENTS: &[(&str, &str)] = &[
    (
        TO_INVALID,
        "400 21211: the 'To' number is not a valid phone number (synchronous)",
    ),
    (
        TO_UNROUTABLE,
        "400 21612: the 'To' number cannot be reached from the 'From' number (synchronous)",
    ),
    (
        TO_NO_INTERNATIONAL,
        "400 21408: no permission to send to the 'To' number's region (synchronous)",
    ),
    (
        TO_BLOCKED,
        "400 21610: the recipient has unsubscribed (replied STOP) (synchronous)",
    ),
    (
        TO_NOT_MOBILE,
        "400 21614: the 'To' number is not a mobile number (synchronous)",
    ),
    (
        TO_FAIL_63007,
        "accepted, then `failed` with 63007 (no channel for the From address)",
    ),
    (
        TO_FAIL_63016,
        "accepted, then `failed` with 63016 (outside the 24-hour window)",
    ),
    (
        TO_UNDELIVERED_63032,
        "accepted, then `undelivered` with 63032 (WhatsApp limitation: use another channel)",
    ),
    (
        TO_FAIL_21610,
        "accepted, then `failed` with 21610 (unsubscribed recipient)",
    ),
    (
        TO_UNDELIVERED_30003,
        "accepted, then `undelivered` with 30003 (unreachable handset)",
    ),
    (
        TO_META_131026,
        "Meta: accepted, then a `failed` status with 131026 (undeliverable)",
    ),
    (
        TO_META_131047,
        "Meta: accepted, then a `failed` status with 131047 (re-engagement: window closed)",
    ),
    (
        TO_SLOW,
        "the create request answers after 2 s, then succeeds",
    ),
    (
        TO_THROTTLED,
        "HTTP 429 (20429) for the first 2 create requests, then success",
    ),
    (
        TO_SERVER_ERROR,
        "HTTP 500 (20500) for the first 2 create requests, then success",
    ),
    (
        TO_RESET_AFTER_ACCEPT,
        "accepted (and delivered), then the connection breaks before the answer's body: the client cannot know it was taken",
    ),
];

/// Every magic sender and what it does.
pub const MAGIC_SENDERS: &[(&str, &str)] = &[
    (
        FROM_VALID,
        "a valid sender (any other valid number works too)",
    ),
    (
        FROM_INVALID,
        "400 21212: the 'From' number is not a valid phone number",
    ),
    (
        FROM_NOT_OWNED,
        "400 21606: the 'From' number is not a number of this account",
    ),
    (
        FROM_QUEUE_FULL,
        "400 21611: the 'From' number's queue is full",
    ),
];

/// The behaviour of a recipient (E.164, without `whatsapp:`), if magic.
pub fn recipient(number: &str) -> Option<Behaviour> {
    use Behaviour::*;
    Some(match number {
        TO_INVALID => Reject {
            code: 21211,
            http_status: 400,
            message: "The 'To' number {to} is not a valid phone number.",
        },
        TO_UNROUTABLE => Reject {
            code: 21612,
            http_status: 400,
            message: "The 'To' phone number: {to}, is not currently reachable using the 'From' phone number: {from} via SMS.",
        },
        TO_NO_INTERNATIONAL => Reject {
            code: 21408,
            http_status: 400,
            message: "Permission to send an SMS has not been enabled for the region indicated by the 'To' number: {to}.",
        },
        TO_BLOCKED => Reject {
            code: 21610,
            http_status: 400,
            message: "Attempt to send to unsubscribed recipient",
        },
        TO_NOT_MOBILE => Reject {
            code: 21614,
            http_status: 400,
            message: "'To' number is not a valid mobile number",
        },
        TO_FAIL_63007 => Fail {
            code: 63007,
            message: "Twilio could not find a Channel with the specified From address",
        },
        TO_FAIL_63016 => Fail {
            code: 63016,
            message: "Failed to send freeform message because you are outside the allowed window. If you are using WhatsApp, please use a Message Template.",
        },
        TO_UNDELIVERED_63032 => Undeliver {
            code: 63032,
            message: "We cannot send this message to this user because of a WhatsApp limitation.",
        },
        TO_FAIL_21610 => Fail {
            code: 21610,
            message: "Attempt to send to unsubscribed recipient",
        },
        TO_UNDELIVERED_30003 => Undeliver {
            code: 30003,
            message: "Unreachable destination handset",
        },
        TO_META_131026 => MetaFail {
            code: 131026,
            title: "Message undeliverable",
            message: "Message undeliverable",
        },
        TO_META_131047 => MetaFail {
            code: 131047,
            title: "Re-engagement message",
            message: "Re-engagement message",
        },
        TO_SLOW => Latency(LATENCY),
        TO_THROTTLED => Throttled,
        TO_SERVER_ERROR => ServerError,
        TO_RESET_AFTER_ACCEPT => ResetAfterAccept,
        _ => return None,
    })
}

/// The synchronous error for a magic sender, if any: (code, message template).
pub fn sender(number: &str) -> Option<(i64, &'static str)> {
    Some(match number {
        FROM_INVALID => (
            21212,
            "The 'From' number {from} is not a valid phone number, shortcode, or alphanumeric sender ID.",
        ),
        FROM_NOT_OWNED => (
            21606,
            "The From phone number {from} is not a valid, SMS-capable inbound phone number or short code for your account.",
        ),
        FROM_QUEUE_FULL => (
            21611,
            "This 'From' number has exceeded the maximum number of queued messages",
        ),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_magic_number_is_valid_and_has_a_behaviour() {
        for (number, what) in MAGIC_RECIPIENTS.iter().chain(MAGIC_SENDERS) {
            let parsed = heimdall_domain::PhoneNumber::parse(number, phonenumber::country::Id::US)
                .unwrap_or_else(|e| panic!("{number} ({what}) is not valid: {e}"));
            assert_eq!(parsed.as_str(), *number);
        }
        for (number, _) in MAGIC_RECIPIENTS {
            assert!(recipient(number).is_some(), "{number} has no behaviour");
        }
        for (number, _) in MAGIC_SENDERS.iter().skip(1) {
            assert!(sender(number).is_some(), "{number} has no behaviour");
        }
        assert!(recipient("+14155550100").is_none());
        assert!(sender(FROM_VALID).is_none());
    }
}

//! One table from a provider's error (Twilio code, Meta WhatsApp Cloud API
//! code, bare HTTP status, timeout or network failure) to what it means and
//! what the sender should do next: retry, give up, suppress the contact,
//! wait for the customer-service window, or fall back to another channel.
//!
//! It only classifies: it never sends, sleeps or stores anything. It must
//! never classify an unrecognised code as retryable (a code we do not know
//! must not loop forever) and never panic on any code or status.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorAction {
    /// Transient: try again after [`retry_delay`].
    Retry,
    /// Will not succeed as sent; a person should follow up.
    Permanent,
    /// The recipient has opted out or blocked us on this channel: suppress.
    OptOut,
    /// WhatsApp's 24-hour customer-service window is closed: send a template.
    WindowClosed,
    /// This channel cannot reach the recipient: try the other channel (SMS).
    Fallback,
    /// A fault of ours, not of the recipient: the sender itself cannot send
    /// (63007: the From is not a WhatsApp sender; 131048: Meta's spam rate
    /// limit; a locked or unregistered account). Pause the sender, alert,
    /// and keep its messages until an admin fixes and re-activates it.
    PauseSender,
    /// The person stopped marketing messages (Meta's 131050): suppress
    /// marketing templates only; other messages still go.
    StopMarketing,
    /// The request went out but its answer was lost (no answer in time, or
    /// the connection broke): the provider may have taken the message. It is
    /// never sent again (a second request could reach the person twice); it
    /// stays `sending` for the provider's status report to settle it, and is
    /// failed for a person to check if none comes.
    Unconfirmed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorClass {
    pub code: Option<i64>,
    pub http_status: Option<u16>,
    pub meaning: String,
    pub action: ErrorAction,
    /// Does a person need to know.
    pub alert: bool,
}

/// How a send failed, as the channel clients report it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderFailure {
    Code {
        code: i64,
        http_status: Option<u16>,
    },
    Http(u16),
    /// The request was sent and no answer came in time: the provider may
    /// have taken it.
    Timeout,
    /// No connection could be made: the provider never saw the request.
    Network,
    /// The connection broke after the request was sent: the provider may
    /// have taken it.
    Broken,
}

impl ProviderFailure {
    /// Could the provider have taken the message, although no answer says so?
    pub fn outcome_unknown(&self) -> bool {
        matches!(self, ProviderFailure::Timeout | ProviderFailure::Broken)
    }
}

pub use crate::channel::Channel;

use ErrorAction::{
    Fallback, OptOut, PauseSender, Permanent, Retry, StopMarketing, Unconfirmed, WindowClosed,
};

/// The table: (code, meaning, action). Twilio codes are 5 digits; Meta's
/// Cloud API codes are 1-3 or 6 digits (plus 80007). Rows for the default
/// fallback codes hold the action they revert to when an operator removes
/// them from the fallback set; [`DEFAULT_FALLBACK_CODES`] overlays Fallback.
const DEFAULT_ROWS: &[(i64, &str, ErrorAction)] = &[
    // Meta Graph / Cloud API throttling.
    (4, "Meta: application request limit reached", Retry),
    (100, "Meta: invalid parameter", Permanent),
    (190, "Meta: access token expired or invalid (check credentials)", Permanent),
    (613, "Meta: API call rate limit exceeded", Retry),
    // Twilio REST API.
    (20003, "Twilio: authentication failed (check account SID and auth token)", Permanent),
    (20429, "Twilio: too many requests", Retry),
    (20500, "Twilio: internal server error", Retry),
    (21655, "Twilio: the ContentSid is invalid (no such Content template)", Permanent),
    // Twilio SMS addressing and delivery.
    (21211, "Twilio: invalid 'To' phone number", Permanent),
    (21610, "Twilio: attempt to send to unsubscribed recipient (replied STOP to SMS)", OptOut),
    (21612, "Twilio: 'To' number cannot be reached from this 'From' number", Permanent),
    (21614, "Twilio: 'To' number is not a valid mobile number", Permanent),
    (30003, "Twilio: unreachable destination handset", Permanent),
    (30005, "Twilio: unknown destination handset (number does not exist)", Permanent),
    (30006, "Twilio: landline or unreachable carrier", Permanent),
    (30007, "Twilio: message filtered by the carrier (spam or content filtering)", Permanent),
    // Twilio WhatsApp channel.
    (63001, "Twilio: channel could not authenticate the request", Permanent),
    (63003, "Twilio: channel could not find the recipient (not a WhatsApp user)", Permanent),
    (63005, "Twilio: channel did not accept the content", Permanent),
    (
        63007,
        "Twilio: no Channel found with the specified From address (the From is not a WhatsApp sender)",
        PauseSender,
    ),
    (63013, "Twilio: the message violates a WhatsApp channel policy", Permanent),
    (63014, "Twilio: message blocked by the user (the user has blocked the business)", OptOut),
    (
        63016,
        "Twilio: outside the 24-hour window; free-form not allowed, use a template",
        WindowClosed,
    ),
    (63018, "Twilio: rate limit exceeded for the WhatsApp channel", Retry),
    (63019, "Twilio: media failed to download", Permanent),
    (
        63020,
        "Twilio: the business has not accepted Twilio's request in its Meta Business Manager",
        PauseSender,
    ),
    (63021, "Twilio: the channel rejected the content as invalid", Permanent),
    (63024, "Twilio: invalid message recipient", Permanent),
    (63027, "Twilio: the template does not exist for this language and locale", Permanent),
    (63028, "Twilio: the number of template parameters does not match", Permanent),
    (
        63032,
        "Twilio: cannot send to this user because of a WhatsApp limitation; use another channel",
        Permanent,
    ),
    (
        63049,
        "Twilio: Meta chose not to deliver this marketing message (per-user marketing limits)",
        Permanent,
    ),
    (63051, "Twilio: the WhatsApp Business Account is locked", PauseSender),
    // Meta policy enforcement: the business is blocked from sending.
    (368, "Meta: temporarily blocked for policy violations", PauseSender),
    // Meta WABA throttling.
    (80007, "Meta: WhatsApp Business Account rate limit reached", Retry),
    // Meta WhatsApp Cloud API.
    (130429, "Meta: Cloud API throughput rate limit hit", Retry),
    (
        130472,
        "Meta: not delivered because the user's number is part of an experiment",
        Permanent,
    ),
    (
        130497,
        "Meta: the business may not message users in this country",
        Permanent,
    ),
    (131000, "Meta: something went wrong (generic error)", Permanent),
    (131008, "Meta: required parameter is missing", Permanent),
    (131009, "Meta: parameter value is not valid", Permanent),
    (131016, "Meta: service temporarily unavailable", Retry),
    (131021, "Meta: the recipient cannot be the sender", Permanent),
    (
        131026,
        "Meta: message undeliverable (recipient not on WhatsApp or cannot receive it)",
        Permanent,
    ),
    (
        131047,
        "Meta: re-engagement message; more than 24 hours since the customer last replied",
        WindowClosed,
    ),
    (
        131049,
        "Meta: chose not to deliver (per-user marketing limit, healthy ecosystem engagement)",
        Permanent,
    ),
    (131031, "Meta: the business account is locked", PauseSender),
    (
        131042,
        "Meta: business eligibility payment issue (check the payment method)",
        PauseSender,
    ),
    (
        131045,
        "Meta: the phone number's certificate is wrong (registration)",
        PauseSender,
    ),
    (
        131048,
        "Meta: spam rate limit hit (too many of the sender's messages were blocked or flagged)",
        PauseSender,
    ),
    (
        131050,
        "Meta: the user stopped marketing messages (other messages still go)",
        StopMarketing,
    ),
    (131051, "Meta: unsupported message type", Permanent),
    (131052, "Meta: the media could not be downloaded", Permanent),
    (131053, "Meta: the media could not be uploaded", Permanent),
    (
        131056,
        "Meta: pair rate limit hit (too many messages to the same recipient)",
        Retry,
    ),
    (132000, "Meta: template parameter count mismatch", Permanent),
    (132001, "Meta: template does not exist (name or language)", Permanent),
    (132015, "Meta: template is paused (low quality)", Permanent),
    (132016, "Meta: template is disabled", Permanent),
    (133010, "Meta: the phone number is not registered", PauseSender),
];

/// Codes that mean "this channel cannot reach the recipient: try SMS".
/// A default only: operators change it with [`ErrorTable::with_fallback_codes`].
/// 63007 is not among them: it means our From is not a WhatsApp sender, a
/// fault of ours that would silently turn every WhatsApp send into SMS.
pub const DEFAULT_FALLBACK_CODES: &[i64] = &[63003, 131026, 63032];

/// Backoff for retryable failures: 1 s, 2 s, 4 s, then give up.
pub const RETRY_BACKOFF_SECS: &[u64] = &[1, 2, 4];

/// Delay before retry number `attempt` (counted from 1): 1 -> 1 s, 2 -> 2 s,
/// 3 -> 4 s; 4 and later -> None (give up). Attempt 0 is not an attempt and
/// also gives None.
pub fn retry_delay(attempt: u32) -> Option<Duration> {
    let index = usize::try_from(attempt.checked_sub(1)?).ok()?;
    RETRY_BACKOFF_SECS
        .get(index)
        .map(|secs| Duration::from_secs(*secs))
}

/// Alerting follows the action: only failures nobody will fix by themselves
/// need a person. Retries alert only when exhausted, which the caller decides.
fn alert_for(action: ErrorAction) -> bool {
    matches!(action, Permanent | PauseSender)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    meaning: String,
    /// The action when the code is not in the fallback set.
    action: ErrorAction,
}

/// The defaults plus operator settings: the fallback set and overrides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorTable {
    rows: BTreeMap<i64, Row>,
    fallback: BTreeSet<i64>,
}

impl Default for ErrorTable {
    fn default() -> Self {
        Self::new()
    }
}

impl ErrorTable {
    /// The default table and the default fallback set.
    pub fn new() -> Self {
        let rows = DEFAULT_ROWS
            .iter()
            .map(|(code, meaning, action)| {
                (
                    *code,
                    Row {
                        meaning: (*meaning).to_owned(),
                        action: *action,
                    },
                )
            })
            .collect();
        Self {
            rows,
            fallback: DEFAULT_FALLBACK_CODES.iter().copied().collect(),
        }
    }

    /// Replace the fallback set. Listed codes become Fallback (unknown ones
    /// too); default fallback codes left out revert to their row's action
    /// (Permanent, with an alert).
    pub fn with_fallback_codes(mut self, codes: &[i64]) -> Self {
        self.fallback = codes.iter().copied().collect();
        self
    }

    /// Add or replace a row. The latest setting wins: an override to
    /// Fallback puts the code in the fallback set (keeping the row's previous
    /// action, or Permanent, for when it is later taken out); any other
    /// action takes it out.
    pub fn with_override(mut self, code: i64, action: ErrorAction, meaning: &str) -> Self {
        let base = if action == Fallback {
            self.fallback.insert(code);
            self.rows.get(&code).map_or(Permanent, |row| row.action)
        } else {
            self.fallback.remove(&code);
            action
        };
        self.rows.insert(
            code,
            Row {
                meaning: meaning.to_owned(),
                action: base,
            },
        );
        self
    }

    /// Classify a failure on a channel.
    ///
    /// The code decides when there is one, whatever the HTTP status. Fallback
    /// means "use SMS", so on the SMS channel it becomes Permanent: there is
    /// nothing further to fall back to.
    pub fn classify(&self, failure: &ProviderFailure, channel: Channel) -> ErrorClass {
        let class = match failure {
            ProviderFailure::Code { code, http_status } => {
                let mut class = self.classify_code(*code);
                class.http_status = *http_status;
                class
            }
            ProviderFailure::Http(status) => classify_http(*status),
            ProviderFailure::Timeout => make(
                None,
                None,
                "no answer from the provider in time; it may have taken the message".to_owned(),
                Unconfirmed,
            ),
            ProviderFailure::Broken => make(
                None,
                None,
                "the connection to the provider broke after the request was sent; it may have taken the message".to_owned(),
                Unconfirmed,
            ),
            ProviderFailure::Network => make(
                None,
                None,
                "network error reaching the provider".to_owned(),
                Retry,
            ),
        };
        if class.action == Fallback && channel == Channel::Sms {
            let meaning = format!(
                "{} (already on SMS: no channel to fall back to)",
                class.meaning
            );
            return make(class.code, class.http_status, meaning, Permanent);
        }
        class
    }

    /// Every known code with its effective action, sorted by code, for display.
    pub fn entries(&self) -> Vec<ErrorClass> {
        let codes: BTreeSet<i64> = self
            .rows
            .keys()
            .chain(self.fallback.iter())
            .copied()
            .collect();
        codes
            .into_iter()
            .map(|code| self.classify_code(code))
            .collect()
    }

    fn classify_code(&self, code: i64) -> ErrorClass {
        let (meaning, base) = match self.rows.get(&code) {
            Some(row) => (row.meaning.clone(), row.action),
            None => (format!("unknown provider error {code}"), Permanent),
        };
        let action = if self.fallback.contains(&code) {
            Fallback
        } else {
            base
        };
        make(Some(code), None, meaning, action)
    }
}

fn classify_http(status: u16) -> ErrorClass {
    let (meaning, action) = match status {
        429 => ("too many requests", Retry),
        408 => ("request timeout", Retry),
        500..=599 => ("provider server error", Retry),
        401 | 403 => (
            "credentials rejected (check the provider credentials)",
            Permanent,
        ),
        400 => ("bad request", Permanent),
        _ => ("unexpected HTTP status", Permanent),
    };
    make(
        None,
        Some(status),
        format!("HTTP {status}: {meaning}"),
        action,
    )
}

fn make(
    code: Option<i64>,
    http_status: Option<u16>,
    meaning: String,
    action: ErrorAction,
) -> ErrorClass {
    ErrorClass {
        code,
        http_status,
        meaning,
        action,
        alert: alert_for(action),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn code(table: &ErrorTable, code: i64, channel: Channel) -> ErrorClass {
        table.classify(
            &ProviderFailure::Code {
                code,
                http_status: Some(400),
            },
            channel,
        )
    }

    fn action_of(c: i64) -> ErrorAction {
        code(&ErrorTable::new(), c, Channel::WhatsApp).action
    }

    #[test]
    fn every_listed_code_classifies_as_stated() {
        let expected: &[(&[i64], ErrorAction, bool)] = &[
            (
                &[20429, 20500, 130429, 131056, 4, 80007, 613, 63018],
                Retry,
                false,
            ),
            (&[131016], Retry, false),
            (
                &[
                    21211, 21612, 21614, 30003, 30005, 30006, 30007, 63001, 63005, 131049, 131000,
                    100, 131008, 131009, 132000, 132001, 132015, 132016, 130472, 190, 20003, 21655,
                    63013, 63019, 63021, 63024, 63027, 63028, 63049, 130497, 131021, 131051,
                    131052, 131053,
                ],
                Permanent,
                true,
            ),
            (&[21610, 63014], OptOut, false),
            (&[131050], StopMarketing, false),
            (&[63016, 131047], WindowClosed, false),
            (&[63003, 131026, 63032], Fallback, false),
            (
                &[
                    63007, 63020, 63051, 368, 131031, 131042, 131045, 131048, 133010,
                ],
                PauseSender,
                true,
            ),
        ];
        let table = ErrorTable::new();
        for (codes, action, alert) in expected {
            for c in codes.iter() {
                let class = code(&table, *c, Channel::WhatsApp);
                assert_eq!(class.action, *action, "code {c}");
                assert_eq!(class.alert, *alert, "code {c}");
                assert_eq!(class.code, Some(*c));
                assert_eq!(class.http_status, Some(400));
                assert!(!class.meaning.is_empty());
                assert!(!class.meaning.starts_with("unknown"), "code {c}");
            }
        }
        // Every row in the table is covered by the list above.
        let listed: usize = expected.iter().map(|(codes, _, _)| codes.len()).sum();
        assert_eq!(listed, DEFAULT_ROWS.len());
    }

    #[test]
    fn opt_out_holds_on_either_channel() {
        let table = ErrorTable::new();
        for c in [21610, 63014] {
            for channel in [Channel::WhatsApp, Channel::Sms] {
                assert_eq!(code(&table, c, channel).action, OptOut, "{c} {channel:?}");
            }
        }
        // 131050 stops marketing only.
        assert_eq!(
            code(&table, 131050, Channel::WhatsApp).action,
            StopMarketing
        );
        assert!(code(&table, 21610, Channel::WhatsApp)
            .meaning
            .contains("SMS"));
    }

    #[test]
    fn meanings_carry_the_facts_the_console_needs() {
        assert!(ErrorTable::new()
            .entries()
            .iter()
            .any(|e| e.code == Some(63007) && e.meaning.contains("not a WhatsApp sender")));
    }

    #[test]
    fn http_without_code() {
        let table = ErrorTable::new();
        for status in [429, 500, 502, 503, 504, 408] {
            let class = table.classify(&ProviderFailure::Http(status), Channel::Sms);
            assert_eq!(class.action, Retry, "HTTP {status}");
            assert!(!class.alert);
            assert_eq!(class.http_status, Some(status));
            assert_eq!(class.code, None);
        }
        for status in [401, 403, 400, 404, 302, 0, u16::MAX] {
            let class = table.classify(&ProviderFailure::Http(status), Channel::WhatsApp);
            assert_eq!(class.action, Permanent, "HTTP {status}");
            assert!(class.alert);
        }
        let creds = table.classify(&ProviderFailure::Http(401), Channel::Sms);
        assert!(creds.meaning.contains("credentials"));
        assert_eq!(
            table
                .classify(&ProviderFailure::Http(429), Channel::Sms)
                .meaning,
            "HTTP 429: too many requests"
        );
        assert_eq!(
            table
                .classify(&ProviderFailure::Http(502), Channel::Sms)
                .meaning,
            "HTTP 502: provider server error"
        );
    }

    #[test]
    fn a_request_that_never_left_is_retried_one_that_may_have_arrived_is_not() {
        let table = ErrorTable::new();
        let class = table.classify(&ProviderFailure::Network, Channel::WhatsApp);
        assert_eq!(class.action, Retry);
        assert!(!ProviderFailure::Network.outcome_unknown());
        for failure in [ProviderFailure::Timeout, ProviderFailure::Broken] {
            assert!(failure.outcome_unknown());
            for channel in [Channel::WhatsApp, Channel::Sms] {
                let class = table.classify(&failure, channel);
                assert_eq!(class.action, Unconfirmed, "{failure:?} on {channel}");
                // A person hears of it only if no status report settles it.
                assert!(!class.alert);
                assert_eq!((class.code, class.http_status), (None, None));
            }
        }
    }

    #[test]
    fn unknown_code_is_permanent_with_alert_even_on_5xx() {
        let table = ErrorTable::new();
        let class = table.classify(
            &ProviderFailure::Code {
                code: 99999,
                http_status: Some(503),
            },
            Channel::WhatsApp,
        );
        assert_eq!(class.action, Permanent);
        assert!(class.alert);
        assert_eq!(class.meaning, "unknown provider error 99999");
        assert_eq!(class.http_status, Some(503));
        assert_eq!(action_of(-1), Permanent);
        assert_eq!(action_of(i64::MIN), Permanent);
    }

    #[test]
    fn a_known_code_decides_over_its_http_status() {
        let table = ErrorTable::new();
        let class = table.classify(
            &ProviderFailure::Code {
                code: 20429,
                http_status: Some(400),
            },
            Channel::Sms,
        );
        assert_eq!(class.action, Retry);
    }

    #[test]
    fn fallback_set_is_a_setting() {
        let only_63007 = ErrorTable::new().with_fallback_codes(&[63007]);
        assert_eq!(code(&only_63007, 63007, Channel::WhatsApp).action, Fallback);
        let c = code(&only_63007, 63003, Channel::WhatsApp);
        assert_eq!((c.action, c.alert), (Permanent, true));
        for c in [131026, 63032] {
            assert_eq!(code(&only_63007, c, Channel::WhatsApp).action, Permanent);
        }

        let none = ErrorTable::new().with_fallback_codes(&[]);
        let c = code(&none, 63007, Channel::WhatsApp);
        assert_eq!((c.action, c.alert), (PauseSender, true));
        assert!(c.meaning.contains("not a WhatsApp sender"));
        // By default 63007 pauses the sender: it never turns WhatsApp into SMS.
        let c = code(&ErrorTable::new(), 63007, Channel::WhatsApp);
        assert_eq!((c.action, c.alert), (PauseSender, true));

        // A code the operator adds becomes Fallback, even one we do not know.
        let more = ErrorTable::new().with_fallback_codes(&[63007, 30003, 777]);
        assert_eq!(code(&more, 30003, Channel::WhatsApp).action, Fallback);
        let c = code(&more, 777, Channel::WhatsApp);
        assert_eq!((c.action, c.alert), (Fallback, false));
        assert!(more.entries().iter().any(|e| e.code == Some(777)));
    }

    #[test]
    fn fallback_on_sms_has_nowhere_to_go() {
        let class = code(&ErrorTable::new(), 131026, Channel::Sms);
        assert_eq!((class.action, class.alert), (Permanent, true));
        assert!(class.meaning.contains("already on SMS"));
    }

    #[test]
    fn overrides_extend_and_replace() {
        let table = ErrorTable::new()
            .with_override(12345, Retry, "carrier congestion")
            .with_override(30007, OptOut, "treat carrier spam block as opt-out");
        let c = code(&table, 12345, Channel::Sms);
        assert_eq!((c.action, c.alert), (Retry, false));
        assert_eq!(c.meaning, "carrier congestion");
        assert_eq!(code(&table, 30007, Channel::Sms).action, OptOut);

        // Overriding a fallback code to another action takes it out of the set.
        let t = ErrorTable::new().with_override(63003, WindowClosed, "x");
        assert_eq!(code(&t, 63003, Channel::WhatsApp).action, WindowClosed);
        // Overriding to Fallback adds it; removing it again restores the old action.
        let t = ErrorTable::new()
            .with_override(30003, Fallback, "try SMS")
            .with_fallback_codes(&[]);
        let c = code(&t, 30003, Channel::WhatsApp);
        assert_eq!((c.action, c.meaning.as_str()), (Permanent, "try SMS"));
        let t = ErrorTable::new().with_override(30003, Fallback, "try SMS");
        assert_eq!(code(&t, 30003, Channel::WhatsApp).action, Fallback);
    }

    #[test]
    fn entries_are_sorted_and_complete() {
        let table = ErrorTable::new().with_override(5, Retry, "five");
        let entries = table.entries();
        assert_eq!(entries.len(), DEFAULT_ROWS.len() + 1);
        let codes: Vec<i64> = entries.iter().filter_map(|e| e.code).collect();
        let mut sorted = codes.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(codes, sorted);
        assert!(entries.iter().all(|e| e.http_status.is_none()));
        let fallback: Vec<i64> = entries
            .iter()
            .filter(|e| e.action == Fallback)
            .filter_map(|e| e.code)
            .collect();
        assert_eq!(fallback, vec![63003, 63032, 131026]);
    }

    #[test]
    fn table_rows_are_unique() {
        let codes: BTreeSet<i64> = DEFAULT_ROWS.iter().map(|(c, _, _)| *c).collect();
        assert_eq!(codes.len(), DEFAULT_ROWS.len());
        for c in DEFAULT_FALLBACK_CODES {
            assert!(
                codes.contains(c),
                "fallback code {c} needs a row to revert to"
            );
        }
    }

    #[test]
    fn retry_delays() {
        let seq: Vec<Option<Duration>> = (1..=5).map(retry_delay).collect();
        assert_eq!(
            seq,
            vec![
                Some(Duration::from_secs(1)),
                Some(Duration::from_secs(2)),
                Some(Duration::from_secs(4)),
                None,
                None
            ]
        );
        assert_eq!(retry_delay(0), None);
        assert_eq!(retry_delay(u32::MAX), None);
    }

    #[test]
    fn serde_forms() {
        assert_eq!(
            serde_json::to_string(&WindowClosed).expect("json"),
            "\"window_closed\""
        );
        let back: ErrorAction = serde_json::from_str("\"opt_out\"").expect("parse");
        assert_eq!(back, OptOut);
        let class =
            serde_json::to_value(code(&ErrorTable::default(), 21610, Channel::Sms)).expect("json");
        assert_eq!(class["action"], "opt_out");
        assert_eq!(class["code"], 21610);
        assert_eq!(class["alert"], false);
    }

    proptest! {
        #[test]
        fn any_failure_classifies_and_never_retries_unknown_codes(c in any::<i64>(), s in any::<u16>()) {
            let table = ErrorTable::new();
            for channel in [Channel::WhatsApp, Channel::Sms] {
                let class = table.classify(&ProviderFailure::Code { code: c, http_status: Some(s) }, channel);
                if !DEFAULT_ROWS.iter().any(|(code, _, _)| *code == c) {
                    prop_assert_eq!(class.action, Permanent);
                    prop_assert!(class.alert);
                }
                let _ = table.classify(&ProviderFailure::Http(s), channel);
            }
        }
    }
}

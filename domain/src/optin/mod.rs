//! Public opt-in: the forms staff define, their versioned consent texts, the
//! QR codes that lead to them, submissions that record one consent per
//! ticked checkbox (a channel, or a channel and a purpose) with its
//! evidence, double opt-in confirmation, and the CSV import and audit
//! export of consent records.
//!
//! What a consent recorded here proves: the exact text the person saw (its
//! version and SHA-256), when, from which address and browser, on which
//! public page, through which form and QR code. A consent is never recorded
//! without the evidence [`ConsentEvidence::validate`] requires, and bad input
//! records nothing at all.
//!
//! This module never sends a message except through [`outbound::accept`]
//! with [`Origin::OptInConfirmation`] (gates and audit first). It knows
//! nothing of HTTP: the server parses a request into a [`SubmissionInput`]
//! and a [`RequestEvidence`] and renders what comes back.
//!
//! For the console, the whole surface is:
//! - forms: [`create_form`], [`update_form`], [`get_form`], [`form_by_slug`],
//!   [`list_forms`] (with [`FormStats`]), [`form_stats`];
//! - consent texts: [`add_consent_text`] (a new version; the old one stays
//!   on record), [`withdraw_channel`], [`consent_text_history`];
//! - QR codes: [`create_qr_code`], [`list_qr_codes`], [`find_qr_code`],
//!   [`qr_svg`], [`qr_png`], [`qr_target_url`], [`whatsapp_link`];
//! - submissions: [`recent_consents`] and the counts in [`form_stats`];
//! - records: [`import_consents`] (per-row report), [`export_consents_json`],
//!   [`export_consents_csv`];
//! - the proxy setting: [`trusted_proxies`], [`set_trusted_proxies`].
//!
//! One file per part: `forms` (forms, their checks), `texts` (versioned
//! consent texts), `stats` (lists and counts), `qr` (QR codes), `submit`
//! (public submissions and double opt-in), `abuse` (client address,
//! submission limit), `import` and `export` (consent records as CSV/JSON).
//! Everything is used as `optin::name`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration as StdDuration;

use base64::Engine as _;
use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, Utc};
use governor::clock::{Clock as _, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use rand::RngCore;
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::audit;
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::message_state::MessageState;
use crate::consent::OptInOutcome;
use crate::contacts::{self, ContactError};

use crate::consent::{ConsentEvidence, ConsentSource};
use crate::entities::{consent, consent_text, contact, optin_form, qr_code, suppression};
use crate::phone::PhoneNumber;
use crate::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use crate::{settings, templates, Core};

/// How long a double opt-in confirmation link works.
pub const CONFIRMATION_TTL: Duration = Duration::days(7);
/// The honeypot's field name: people never see it, form-filling bots do.
pub const HONEYPOT_FIELD: &str = "website";
/// Submissions per address in [`RATE_LIMIT_PERIOD`] (see [`SubmissionLimiter`]).
pub const RATE_LIMIT_MAX: u32 = 5;
/// The period of the per-address submission limit.
pub const RATE_LIMIT_PERIOD: StdDuration = StdDuration::from_secs(600);
/// The `app_settings` key listing the reverse proxies whose
/// `X-Forwarded-For` is believed (a JSON array of IP addresses).
pub const TRUSTED_PROXIES_SETTING: &str = "optin_trusted_proxies";
/// The variables Heimdall can fill in a WhatsApp confirmation template.
pub const CONFIRMATION_TEMPLATE_VARIABLES: &[&str] =
    &["program", "form_title", "confirm_url", "name"];
/// At most this many extra fields on a form.
pub const MAX_FIELDS: usize = 10;
/// At most this many data rows in one CSV import.
pub const MAX_IMPORT_ROWS: usize = 10_000;

const MAX_NAME: usize = 100;
const MAX_FIELD_VALUE: usize = 500;
const MAX_USER_AGENT: usize = 512;
const MAX_CONSENT_TEXT: usize = 2_000;
const MAX_LONG_TEXT: usize = 5_000;
const CODE_ALPHABET: &[u8] = b"23456789abcdefghjkmnpqrstuvwxyz";
const CODE_LEN: usize = 8;

/// Errors per field: field name to a message a person can act on.
pub type FieldErrors = BTreeMap<String, String>;

fn describe(errors: &FieldErrors) -> String {
    errors
        .iter()
        .map(|(k, v)| format!("{k}: {v}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn one_error(field: &str, message: impl Into<String>) -> FieldErrors {
    let mut e = FieldErrors::new();
    e.insert(field.to_string(), message.into());
    e
}

/// What can go wrong managing forms and QR codes.
#[derive(Debug, thiserror::Error)]
pub enum FormError {
    #[error("{}", describe(.0))]
    Invalid(FieldErrors),
    #[error("a form with the slug '{0}' already exists")]
    SlugTaken(String),
    #[error("no form with id {0}")]
    NotFound(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

mod abuse;
mod export;
mod forms;
mod import;
mod qr;
mod stats;
mod submit;
mod texts;

pub use abuse::*;
pub use export::*;
pub use forms::*;
pub use import::*;
pub use qr::*;
pub use stats::*;
pub use submit::*;
pub use texts::*;

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn form() -> Form {
        let t = |channel, version| ConsentTextVersion {
            id: format!("t-{channel}"),
            form_id: "f".into(),
            channel,
            purpose: None,
            purpose_label: None,
            version,
            label: version_label(channel, None, version),
            text: format!("I agree to {channel} messages."),
            hash: crate::consent::text_hash(&format!("I agree to {channel} messages.")),
            current: true,
            created_by: "test".into(),
            created_at: Utc::now(),
        };
        Form {
            id: "f".into(),
            slug: "spring".into(),
            title: "Spring".into(),
            intro: String::new(),
            fields: vec![FormField {
                key: "email".into(),
                label: "Email".into(),
                required: true,
            }],
            thank_you: "Thanks".into(),
            double_opt_in: false,
            whatsapp_confirmation_template: None,
            active: true,
            channels: vec![t(Channel::WhatsApp, 2), t(Channel::Sms, 1)],
            url: String::new(),
            created_by: "test".into(),
            created_at: Utc::now(),
            updated_at: Utc::now(),
        }
    }

    fn pairs(p: &[(&str, &str)]) -> SubmissionInput {
        SubmissionInput::from_pairs(p.iter().map(|(k, v)| (k.to_string(), v.to_string())))
    }

    #[test]
    fn a_good_submission_validates() {
        let input = pairs(&[
            ("name", " Ada "),
            ("phone", "+47 912 34 567"),
            ("channel", "whatsapp"),
            ("text_version_whatsapp", "2"),
            ("text_version_sms", "1"),
            ("field_email", "ada@example.com"),
        ]);
        let v = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap();
        assert_eq!(v.name, "Ada");
        assert_eq!(v.phone.as_str(), "+4791234567");
        assert_eq!(v.channels.len(), 1);
        assert_eq!(v.channels[0].label, "whatsapp:v2");
        assert_eq!(v.fields.get("email").unwrap(), "ada@example.com");
    }

    #[test]
    fn every_bad_field_is_named() {
        let input = pairs(&[
            ("name", ""),
            ("phone", "12"),
            ("text_version_whatsapp", "2"),
        ]);
        let e = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap_err();
        assert!(e.contains_key("name"));
        assert!(e.contains_key("phone"));
        assert!(e["channels"].contains("at least one"));
        assert!(e.contains_key("field_email"));
    }

    #[test]
    fn a_consent_text_changed_under_the_page_is_not_recorded() {
        let input = pairs(&[
            ("name", "Ada"),
            ("phone", "+4791234567"),
            ("channel", "whatsapp"),
            ("text_version_whatsapp", "1"),
            ("field_email", "a@b.c"),
        ]);
        let e = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap_err();
        assert!(e["channels"].contains("changed"), "{e:?}");
        let input = pairs(&[
            ("name", "Ada"),
            ("phone", "+4791234567"),
            ("channel", "fax"),
            ("field_email", "a@b.c"),
        ]);
        let e = validate_submission(&form(), &input, phonenumber::country::Id::US).unwrap_err();
        assert!(e["channels"].contains("options shown"), "{e:?}");
    }

    #[test]
    fn forwarded_for_is_believed_only_from_trusted_proxies() {
        let peer = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
        let client: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(client_ip(peer, Some("203.0.113.9"), &[]), peer);
        assert_eq!(client_ip(peer, Some("203.0.113.9"), &[peer]), client);
        // The left-most entries are whatever the client claimed.
        assert_eq!(
            client_ip(
                peer,
                Some("1.2.3.4, 203.0.113.9, 10.0.0.3"),
                &[peer, "10.0.0.3".parse().unwrap()]
            ),
            client
        );
        assert_eq!(client_ip(peer, Some("garbage"), &[peer]), peer);
        assert_eq!(client_ip(peer, None, &[peer]), peer);
    }

    #[test]
    fn ipv6_is_limited_per_network() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:bbbb::2".parse().unwrap();
        assert_eq!(limit_key(a), limit_key(b));
        assert_eq!(limit_key("::ffff:1.2.3.4".parse().unwrap()), "1.2.3.4");
    }

    #[test]
    fn slugs() {
        assert_eq!(parse_slug(" Spring-House ").unwrap(), "spring-house");
        for bad in [
            "a",
            "-a",
            "a-",
            "a--b",
            "a b",
            "confirm",
            "ø",
            &"x".repeat(65),
        ] {
            assert!(parse_slug(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn csv_cells_never_run_as_formulas() {
        assert_eq!(csv_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_safe("+4791234567"), "'+4791234567");
        assert_eq!(csv_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(csv_safe("plain"), "plain");
    }

    #[test]
    fn percent_encoding_for_wa_me() {
        assert_eq!(
            percent_encode("Hi! I scanned the code at 12 Elm St."),
            "Hi%21%20I%20scanned%20the%20code%20at%2012%20Elm%20St."
        );
        assert_eq!(percent_encode("æ&="), "%C3%A6%26%3D");
    }

    #[test]
    fn import_times() {
        assert!(parse_time("2026-03-14T15:09:26Z").is_some());
        assert!(parse_time("2026-03-14 15:09:26").is_some());
        assert!(parse_time("2026-03-14").is_some());
        assert!(parse_time("yesterday").is_none());
    }
}

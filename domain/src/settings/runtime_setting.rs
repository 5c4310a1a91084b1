//! Each runtime setting once: its `app_settings` key, the variable that
//! configures it, and the one rule that reads it.
//!
//! A runtime setting arrives three ways: as text in the environment (or
//! `heimdall.toml`), as text in a console form, and as the JSON value
//! stored in `app_settings`. All three are read by [`RuntimeSetting::parse`]:
//! the environment and the console hand it their text, and a stored value
//! is first turned back into that text ([`RuntimeSetting::read_stored`]
//! checks only the JSON's shape). What is stored is always
//! [`RuntimeValue::stored`], the canonical form of a parsed value.
//!
//! This module must never accept for one path what it refuses for another.

use std::collections::BTreeSet;

use chrono::NaiveTime;
use serde_json::Value;

/// The most messages per second one sender may be set to: Meta's highest
/// Cloud API throughput (1,000 per second per number); Twilio's fastest
/// senders (short codes) are slower.
pub const MAX_RATE_PER_SECOND: u32 = 1000;

/// The longest per-recipient pace: an hour.
pub const MAX_PACE_SECONDS: u32 = 3600;

/// A setting an admin may change while Heimdall runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum RuntimeSetting {
    HelpText,
    FallbackCodes,
    TierLadder,
    TierLimit,
    RatePerSecond,
    RecipientPaceSeconds,
    QuietHours,
    PhoneAllowlist,
}

/// A runtime setting's value, parsed.
#[derive(Debug, Clone, PartialEq)]
pub enum RuntimeValue {
    HelpText(String),
    FallbackCodes(Vec<i64>),
    /// The steps; `None` is unlimited (only ever the last).
    TierLadder(Vec<Option<u64>>),
    /// `None` is unlimited.
    TierLimit(Option<u64>),
    RatePerSecond(u32),
    RecipientPaceSeconds(u32),
    /// When SMS may be sent, the recipient's local time.
    QuietHours((NaiveTime, NaiveTime)),
    /// E.164 numbers; empty is everyone.
    PhoneAllowlist(BTreeSet<String>),
}

use super::runtime::keys;

impl RuntimeSetting {
    /// Every runtime setting, in the order the console shows them.
    pub const ALL: [RuntimeSetting; 8] = [
        RuntimeSetting::HelpText,
        RuntimeSetting::FallbackCodes,
        RuntimeSetting::TierLadder,
        RuntimeSetting::TierLimit,
        RuntimeSetting::RatePerSecond,
        RuntimeSetting::RecipientPaceSeconds,
        RuntimeSetting::QuietHours,
        RuntimeSetting::PhoneAllowlist,
    ];

    /// Its key in `app_settings`.
    pub fn key(self) -> &'static str {
        match self {
            RuntimeSetting::HelpText => keys::HELP_TEXT,
            RuntimeSetting::FallbackCodes => keys::FALLBACK_CODES,
            RuntimeSetting::TierLadder => keys::TIER_LADDER,
            RuntimeSetting::TierLimit => keys::TIER_LIMIT,
            RuntimeSetting::RatePerSecond => keys::RATE_PER_SECOND,
            RuntimeSetting::RecipientPaceSeconds => keys::RECIPIENT_PACE_SECONDS,
            RuntimeSetting::QuietHours => keys::QUIET_HOURS,
            RuntimeSetting::PhoneAllowlist => keys::PHONE_ALLOWLIST,
        }
    }

    /// The environment variable (and `heimdall.toml` key) that configures it.
    pub fn variable(self) -> &'static str {
        match self {
            RuntimeSetting::HelpText => "HEIMDALL_HELP_TEXT",
            RuntimeSetting::FallbackCodes => "HEIMDALL_FALLBACK_CODES",
            RuntimeSetting::TierLadder => "HEIMDALL_TIER_LADDER",
            RuntimeSetting::TierLimit => "HEIMDALL_TIER_LIMIT",
            RuntimeSetting::RatePerSecond => "HEIMDALL_RATE_PER_SECOND",
            RuntimeSetting::RecipientPaceSeconds => "HEIMDALL_RECIPIENT_PACE_SECONDS",
            RuntimeSetting::QuietHours => "HEIMDALL_QUIET_HOURS",
            RuntimeSetting::PhoneAllowlist => "HEIMDALL_PHONE_ALLOWLIST",
        }
    }

    /// The setting stored under `key`.
    pub fn from_key(key: &str) -> Option<RuntimeSetting> {
        RuntimeSetting::ALL.into_iter().find(|s| s.key() == key)
    }

    /// The one rule: a value written as text (an environment variable, a
    /// console field, a stored value turned back into text), parsed and
    /// checked, or why not.
    pub fn parse(
        self,
        text: &str,
        region: phonenumber::country::Id,
    ) -> Result<RuntimeValue, String> {
        Ok(match self {
            RuntimeSetting::HelpText => RuntimeValue::HelpText(parse_help_text(text)?),
            RuntimeSetting::FallbackCodes => RuntimeValue::FallbackCodes(parse_codes(text)?),
            RuntimeSetting::TierLadder => RuntimeValue::TierLadder(parse_ladder(text)?),
            RuntimeSetting::TierLimit => RuntimeValue::TierLimit(parse_tier_limit(text)?),
            RuntimeSetting::RatePerSecond => RuntimeValue::RatePerSecond(
                whole_number(text)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| (1..=MAX_RATE_PER_SECOND).contains(n))
                    .ok_or_else(|| {
                        format!("the rate must be 1 to {MAX_RATE_PER_SECOND} messages per second")
                    })?,
            ),
            RuntimeSetting::RecipientPaceSeconds => RuntimeValue::RecipientPaceSeconds(
                whole_number(text)
                    .and_then(|n| u32::try_from(n).ok())
                    .filter(|n| *n <= MAX_PACE_SECONDS)
                    .ok_or_else(|| format!("the pace must be 0 to {MAX_PACE_SECONDS} seconds"))?,
            ),
            RuntimeSetting::QuietHours => RuntimeValue::QuietHours(parse_hours(text)?),
            RuntimeSetting::PhoneAllowlist => {
                RuntimeValue::PhoneAllowlist(parse_allowlist(text, region)?)
            }
        })
    }

    /// The stored value of `key`, read by its setting's rule; an unknown key
    /// is refused.
    pub fn read(
        key: &str,
        value: &Value,
        region: phonenumber::country::Id,
    ) -> Result<RuntimeValue, String> {
        RuntimeSetting::from_key(key)
            .ok_or_else(|| format!("'{key}' is not a runtime setting"))?
            .read_stored(value, region)
    }

    /// A stored value: its JSON shape checked, then read by [`Self::parse`]
    /// as the text it stands for.
    pub fn read_stored(
        self,
        value: &Value,
        region: phonenumber::country::Id,
    ) -> Result<RuntimeValue, String> {
        let list = |what: &str| match value {
            Value::Array(items) => items
                .iter()
                .map(|v| match v {
                    Value::String(s) => Some(s.clone()),
                    Value::Number(n) => Some(n.to_string()),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|parts| parts.join(","))
                .ok_or_else(|| format!("{what} must be a list")),
            Value::String(s) => Ok(s.clone()),
            _ => Err(format!("{what} must be a list")),
        };
        let text = match self {
            RuntimeSetting::HelpText => value
                .as_str()
                .ok_or("the HELP reply must be text")?
                .to_string(),
            RuntimeSetting::QuietHours => value
                .as_str()
                .ok_or("quiet hours must be text HH:MM-HH:MM")?
                .to_string(),
            RuntimeSetting::FallbackCodes => match value {
                Value::Array(_) => list("fallback codes")?,
                _ => return Err("fallback codes must be a list of numbers".into()),
            },
            RuntimeSetting::TierLadder => list("the tier ladder")?,
            RuntimeSetting::PhoneAllowlist => list("the allowlist")?,
            RuntimeSetting::TierLimit => match value {
                Value::Null => "unlimited".into(),
                Value::Number(n) => n.to_string(),
                _ => return Err("the tier limit must be a number or null".into()),
            },
            // Anything but a number reads as no number, refused with the
            // setting's own message.
            RuntimeSetting::RatePerSecond | RuntimeSetting::RecipientPaceSeconds => match value {
                Value::Number(n) => n.to_string(),
                _ => String::new(),
            },
        };
        self.parse(&text, region)
    }
}

impl RuntimeValue {
    /// The setting this is a value of.
    pub fn setting(&self) -> RuntimeSetting {
        match self {
            RuntimeValue::HelpText(_) => RuntimeSetting::HelpText,
            RuntimeValue::FallbackCodes(_) => RuntimeSetting::FallbackCodes,
            RuntimeValue::TierLadder(_) => RuntimeSetting::TierLadder,
            RuntimeValue::TierLimit(_) => RuntimeSetting::TierLimit,
            RuntimeValue::RatePerSecond(_) => RuntimeSetting::RatePerSecond,
            RuntimeValue::RecipientPaceSeconds(_) => RuntimeSetting::RecipientPaceSeconds,
            RuntimeValue::QuietHours(_) => RuntimeSetting::QuietHours,
            RuntimeValue::PhoneAllowlist(_) => RuntimeSetting::PhoneAllowlist,
        }
    }

    /// The canonical stored form (what `app_settings` holds).
    pub fn stored(&self) -> Value {
        match self {
            RuntimeValue::HelpText(t) => Value::from(t.as_str()),
            RuntimeValue::FallbackCodes(c) => Value::from(c.clone()),
            RuntimeValue::TierLadder(steps) => Value::from(
                steps
                    .iter()
                    .map(|s| limit_text(*s))
                    .collect::<Vec<String>>(),
            ),
            RuntimeValue::TierLimit(l) => l.map(Value::from).unwrap_or(Value::Null),
            RuntimeValue::RatePerSecond(n) | RuntimeValue::RecipientPaceSeconds(n) => {
                Value::from(*n)
            }
            RuntimeValue::QuietHours((a, b)) => {
                Value::from(format!("{}-{}", a.format("%H:%M"), b.format("%H:%M")))
            }
            RuntimeValue::PhoneAllowlist(set) => {
                Value::from(set.iter().cloned().collect::<Vec<String>>())
            }
        }
    }
}

/// A limit as people write it: the number, or `unlimited`.
pub fn limit_text(limit: Option<u64>) -> String {
    limit
        .map(|n| n.to_string())
        .unwrap_or_else(|| "unlimited".into())
}

/// A whole number as people write it (`10,000`, `10_000` and `10 000` too).
fn whole_number(text: &str) -> Option<u64> {
    text.trim().replace([',', '_', ' '], "").parse().ok()
}

/// The HELP reply: text that tells people how to opt out (STOP).
fn parse_help_text(v: &str) -> Result<String, String> {
    let text = v.trim();
    if text.is_empty() {
        return Err("the HELP reply must be text".into());
    }
    if !text.to_ascii_uppercase().contains("STOP") {
        return Err("the HELP reply must tell people how to opt out (STOP)".into());
    }
    Ok(text.to_string())
}

/// Provider error codes separated by commas, spaces or lines; sorted, each
/// once.
fn parse_codes(v: &str) -> Result<Vec<i64>, String> {
    let mut codes = v
        .split([',', ' ', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<i64>()
                .map_err(|_| format!("'{s}' is not an error code (digits only)"))
        })
        .collect::<Result<Vec<_>, _>>()?;
    codes.sort_unstable();
    codes.dedup();
    Ok(codes)
}

/// A tier limit: a number above 0, or `unlimited` (`none` too). The rule
/// [`RuntimeSetting::parse`] reads `TierLimit` by, public for the console's
/// tier form, which stores the limit through the tier's own path.
pub fn parse_tier_limit(v: &str) -> Result<Option<u64>, String> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("unlimited") || v.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    whole_number(v)
        .filter(|n| *n > 0)
        .map(Some)
        .ok_or_else(|| format!("'{v}' is not a whole number above 0 or 'unlimited'"))
}

/// A tier ladder, `1000,10000,unlimited`: steps that increase, `unlimited`
/// only last.
fn parse_ladder(v: &str) -> Result<Vec<Option<u64>>, String> {
    let mut out = Vec::new();
    for part in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        if part.eq_ignore_ascii_case("unlimited") {
            out.push(None);
        } else {
            out.push(Some(part.parse().map_err(|_| {
                format!("'{part}' is not a number or 'unlimited'")
            })?));
        }
    }
    if out.is_empty() {
        return Err("must list at least one step".into());
    }
    let finite: Vec<u64> = out.iter().flatten().copied().collect();
    if finite.windows(2).any(|w| w[0] >= w[1]) {
        return Err("steps must increase".into());
    }
    if out
        .iter()
        .position(Option::is_none)
        .is_some_and(|i| i != out.len() - 1)
    {
        return Err("'unlimited' can only be the last step".into());
    }
    Ok(out)
}

/// The phone allowlist: numbers separated by commas, spaces or lines, each
/// parsed (and so written) as E.164; empty means everyone.
fn parse_allowlist(v: &str, region: phonenumber::country::Id) -> Result<BTreeSet<String>, String> {
    v.split([',', ' ', '\n', ';'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|part| {
            crate::phone::PhoneNumber::parse(part, region)
                .map(|p| p.to_string())
                .map_err(|e| format!("'{part}': {e}"))
        })
        .collect()
}

/// SMS sending hours, `HH:MM-HH:MM`, the start before the end.
fn parse_hours(v: &str) -> Result<(NaiveTime, NaiveTime), String> {
    let (a, b) = v
        .split_once('-')
        .ok_or_else(|| format!("'{v}' is not of the form HH:MM-HH:MM"))?;
    let parse = |s: &str| {
        NaiveTime::parse_from_str(s.trim(), "%H:%M")
            .map_err(|_| format!("'{s}' is not a time HH:MM"))
    };
    let (start, end) = (parse(a)?, parse(b)?);
    if start >= end {
        return Err("the start must be before the end".into());
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::runtime::Runtime;
    use crate::settings::{Settings, Source};

    const REGION: phonenumber::country::Id = phonenumber::country::Id::NO;

    /// Texts for each setting, good and bad, as a person might write them.
    fn corpus(setting: RuntimeSetting) -> &'static [&'static str] {
        match setting {
            RuntimeSetting::HelpText => &["Reply STOP to opt out.", " stop ", "Call 555.", ""],
            RuntimeSetting::FallbackCodes => &["63003, 63016", "63016 63003 63003", "", "x"],
            RuntimeSetting::TierLadder => &["1000,unlimited", "250,100", "unlimited,5", ""],
            RuntimeSetting::TierLimit => &["1000", "10,000", "unlimited", "none", "0", "-1", ""],
            RuntimeSetting::RatePerSecond => &["1", "1000", "1001", "0", "1000000", "fast", ""],
            RuntimeSetting::RecipientPaceSeconds => &["0", "3600", "3601", "-1", ""],
            RuntimeSetting::QuietHours => &["09:00-20:00", "21:00-08:00", "9-5", ""],
            RuntimeSetting::PhoneAllowlist => &["+4791234567, 91234568", "", "not a number"],
        }
    }

    fn from_environment(setting: RuntimeSetting, text: &str) -> Result<Runtime, String> {
        Settings::from_source(&Source::from_pairs([
            (setting.variable(), text),
            ("HEIMDALL_DEFAULT_REGION", "NO"),
        ]))
        .map(|s| Runtime::from_settings(&s))
        .map_err(|e| e.to_string())
    }

    #[test]
    fn the_environment_the_console_and_the_stored_value_read_each_setting_alike() {
        for setting in RuntimeSetting::ALL {
            for text in corpus(setting) {
                let parsed = setting.parse(text, REGION);
                // Stored, then read back: the same value.
                if let Ok(value) = &parsed {
                    assert_eq!(value.setting(), setting);
                    assert_eq!(
                        setting.read_stored(&value.stored(), REGION).as_ref(),
                        Ok(value),
                        "{setting:?} {text:?}"
                    );
                }
                // The environment: the same verdict (blank is unset there:
                // the default stands).
                let env = from_environment(setting, text);
                if text.trim().is_empty() {
                    assert!(env.is_ok(), "{setting:?}: blank is unset");
                    continue;
                }
                match (&parsed, &env) {
                    (Ok(value), Ok(runtime)) => {
                        let mut expected = Runtime::from_settings(
                            &Settings::from_source(&Source::from_pairs([(
                                "HEIMDALL_DEFAULT_REGION",
                                "NO",
                            )]))
                            .unwrap(),
                        );
                        expected.set(value.clone());
                        if setting == RuntimeSetting::TierLadder {
                            // Unset, the limit follows the ladder's first step.
                            expected.tier_limit = expected.tier_ladder[0];
                        }
                        assert_eq!(runtime, &expected, "{setting:?} {text:?}");
                    }
                    (Err(m), Err(e)) => {
                        assert!(e.contains(setting.variable()), "{e}");
                        assert!(e.contains(m.as_str()), "{e} / {m}");
                    }
                    _ => panic!("{setting:?} {text:?}: console {parsed:?}, environment {env:?}"),
                }
            }
        }
    }

    #[test]
    fn a_stored_value_of_the_wrong_shape_is_refused_with_the_settings_message() {
        for (setting, value) in [
            (RuntimeSetting::HelpText, serde_json::json!(5)),
            (RuntimeSetting::FallbackCodes, serde_json::json!("63003")),
            (RuntimeSetting::FallbackCodes, serde_json::json!([true])),
            (RuntimeSetting::TierLadder, serde_json::json!({"a": 1})),
            (RuntimeSetting::TierLimit, serde_json::json!("1000")),
            (RuntimeSetting::RatePerSecond, serde_json::json!("20")),
            (RuntimeSetting::RatePerSecond, serde_json::json!(20.5)),
            (
                RuntimeSetting::RecipientPaceSeconds,
                serde_json::json!(null),
            ),
            (
                RuntimeSetting::QuietHours,
                serde_json::json!(["09:00-20:00"]),
            ),
            (RuntimeSetting::PhoneAllowlist, serde_json::json!(7)),
        ] {
            assert!(
                setting.read_stored(&value, REGION).is_err(),
                "{setting:?} {value}"
            );
        }
        assert_eq!(
            RuntimeSetting::RatePerSecond
                .read_stored(&serde_json::json!("20"), REGION)
                .unwrap_err(),
            "the rate must be 1 to 1000 messages per second"
        );
    }

    #[test]
    fn the_defaults_are_what_an_empty_environment_gives() {
        let settings =
            Settings::from_source(&Source::from_pairs(Vec::<(&str, &str)>::new())).unwrap();
        assert_eq!(Runtime::from_settings(&settings), Runtime::defaults());
    }
}

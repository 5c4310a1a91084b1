//! Phone numbers, parsed once into E.164 ("parse, don't validate").

use std::fmt;

/// A valid phone number in E.164 form (`+4791234567`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PhoneNumber(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("phone number is empty")]
    Empty,
    #[error("'{0}' is not a phone number")]
    Unparseable(String),
    #[error("'{0}' is not a valid number for its region")]
    Invalid(String),
}

impl PhoneNumber {
    /// Parse a number as a person or provider writes it: with `+` and a
    /// country code, or national format in `default_region`. A `whatsapp:`
    /// prefix (Twilio's addressing) is accepted and dropped.
    pub fn parse(
        input: &str,
        default_region: phonenumber::country::Id,
    ) -> Result<Self, PhoneError> {
        let raw = input.trim();
        let raw = raw
            .strip_prefix("whatsapp:")
            .or_else(|| raw.strip_prefix("sms:"))
            .unwrap_or(raw)
            .trim();
        if raw.is_empty() {
            return Err(PhoneError::Empty);
        }
        let parsed = phonenumber::parse(Some(default_region), raw)
            .map_err(|_| PhoneError::Unparseable(raw.to_string()))?;
        if !phonenumber::is_valid(&parsed) {
            return Err(PhoneError::Invalid(raw.to_string()));
        }
        Ok(PhoneNumber(
            parsed.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Meta's `wa_id`: the international number as digits, without `+`.
    pub fn from_wa_id(digits: &str) -> Result<Self, PhoneError> {
        let digits = digits.trim().trim_start_matches('+');
        Self::parse_e164(&format!("+{digits}"))
    }

    /// Parse something that must already be E.164 (stored values).
    pub fn parse_e164(input: &str) -> Result<Self, PhoneError> {
        if !input.trim().starts_with('+') {
            return Err(PhoneError::Unparseable(input.trim().to_string()));
        }
        Self::parse(input, phonenumber::country::Id::US)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// North American numbers (+1: the US, Canada and the Caribbean).
    pub fn is_nanp(&self) -> bool {
        self.0.starts_with("+1")
    }

    /// The number's region (country) as libphonenumber assigns it from the
    /// number itself (for +1, by area code: Canada, Puerto Rico and the
    /// Caribbean are regions of their own).
    pub fn region(&self) -> Option<phonenumber::country::Id> {
        phonenumber::parse(None, &self.0).ok()?.country().id()
    }

    /// A US number: Meta has not delivered WhatsApp MARKETING templates to
    /// them since April 2025 (Canada and the other +1 regions are not part
    /// of that pause).
    pub fn is_us(&self) -> bool {
        self.region() == Some(phonenumber::country::Id::US)
    }
}

impl AsRef<str> for PhoneNumber {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use phonenumber::country::Id;

    #[test]
    fn parses_to_e164() {
        assert_eq!(
            PhoneNumber::parse("+47 912 34 567", Id::US)
                .unwrap()
                .as_str(),
            "+4791234567"
        );
        assert_eq!(
            PhoneNumber::parse("(415) 555-2671", Id::US)
                .unwrap()
                .as_str(),
            "+14155552671"
        );
        assert_eq!(
            PhoneNumber::parse("whatsapp:+14155552671", Id::NO)
                .unwrap()
                .as_str(),
            "+14155552671"
        );
        assert_eq!(
            PhoneNumber::from_wa_id("4791234567").unwrap().as_str(),
            "+4791234567"
        );
        assert_eq!(
            PhoneNumber::from_wa_id("14155552671").unwrap().as_str(),
            "+14155552671"
        );
        assert_eq!(
            PhoneNumber::parse("912 34 567", Id::NO).unwrap().as_str(),
            "+4791234567"
        );
    }

    #[test]
    fn rejects_garbage() {
        assert_eq!(PhoneNumber::parse("  ", Id::US), Err(PhoneError::Empty));
        assert!(PhoneNumber::parse("hello", Id::US).is_err());
        assert!(PhoneNumber::parse("+1 555", Id::US).is_err());
        assert!(PhoneNumber::parse("+999 1234567", Id::US).is_err());
        assert!(PhoneNumber::parse_e164("4155552671").is_err());
    }

    #[test]
    fn regions_tell_the_us_from_canada() {
        let p = |n: &str| PhoneNumber::parse(n, Id::US).unwrap();
        assert!(p("+12125550100").is_us());
        assert!(p("+14155552671").is_us());
        // Toronto and Vancouver are +1 but not the US.
        assert!(!p("+14165550123").is_us());
        assert_eq!(p("+14165550123").region(), Some(Id::CA));
        assert!(!p("+16045550123").is_us());
        // Puerto Rico has its own region.
        assert_eq!(p("+17875550123").region(), Some(Id::PR));
        assert!(!p("+4791234567").is_us());
        assert_eq!(p("+4791234567").region(), Some(Id::NO));
    }

    #[test]
    fn nanp() {
        assert!(PhoneNumber::parse("+14155552671", Id::US)
            .unwrap()
            .is_nanp());
        assert!(!PhoneNumber::parse("+4791234567", Id::US).unwrap().is_nanp());
    }
}

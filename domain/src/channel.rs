//! The two ways Heimdall reaches a person.

use serde::{Deserialize, Serialize};

/// A messaging channel. Consent, suppression and service windows are kept
/// per channel: an SMS opt-in says nothing about WhatsApp, and the reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    #[serde(rename = "whatsapp")]
    WhatsApp,
    Sms,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::WhatsApp, Channel::Sms];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::WhatsApp => "whatsapp",
            Channel::Sms => "sms",
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Channel {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "whatsapp" | "wa" => Ok(Channel::WhatsApp),
            "sms" => Ok(Channel::Sms),
            other => Err(format!("unknown channel '{other}': use whatsapp or sms")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for c in Channel::ALL {
            assert_eq!(c.as_str().parse::<Channel>().unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            assert_eq!(json, format!("\"{}\"", c.as_str()));
        }
        assert!("fax".parse::<Channel>().is_err());
    }
}

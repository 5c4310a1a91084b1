//! What the providers send, read: Twilio's form parameters and Meta's
//! webhook JSON into [`InboundMessage`]s, status reports and a new messaging
//! limit; and the keyword a message carries.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::compliance::keywords::{self, KeywordAction};
use crate::sending::outbound::StatusReport;

/// An inbound message, whichever provider brought it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InboundMessage {
    pub provider: String,
    pub provider_message_id: String,
    pub channel: Channel,
    pub from: String,
    pub to: Option<String>,
    pub body: Option<String>,
    pub media: Vec<String>,
    pub button_text: Option<String>,
    pub button_payload: Option<String>,
    pub profile_name: Option<String>,
    pub received_at: DateTime<Utc>,
}

impl InboundMessage {
    /// Twilio's form parameters for an inbound WhatsApp or SMS message.
    pub fn from_twilio(
        params: &BTreeMap<String, String>,
        now: DateTime<Utc>,
    ) -> Result<Self, String> {
        let sid = params
            .get("MessageSid")
            .or_else(|| params.get("SmsMessageSid"))
            .or_else(|| params.get("SmsSid"))
            .filter(|s| !s.is_empty())
            .ok_or("MessageSid is missing")?;
        let from = params
            .get("From")
            .filter(|s| !s.is_empty())
            .ok_or("From is missing")?;
        let channel = if from.starts_with("whatsapp:") {
            Channel::WhatsApp
        } else {
            Channel::Sms
        };
        let num_media: usize = params
            .get("NumMedia")
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
            .min(10);
        let media = (0..num_media)
            .filter_map(|i| params.get(&format!("MediaUrl{i}")).cloned())
            .collect();
        Ok(InboundMessage {
            provider: "twilio".into(),
            provider_message_id: sid.clone(),
            channel,
            from: from.clone(),
            to: params.get("To").cloned(),
            body: params.get("Body").cloned(),
            media,
            button_text: params.get("ButtonText").cloned().filter(|s| !s.is_empty()),
            button_payload: params
                .get("ButtonPayload")
                .cloned()
                .filter(|s| !s.is_empty()),
            profile_name: params.get("ProfileName").cloned().filter(|s| !s.is_empty()),
            received_at: now,
        })
    }

    /// The keyword this message carries, if any. A button reply (it has a
    /// payload) is matched by its payload for opt-in and help: a "Yes"
    /// button answering an unrelated question must not become a consent.
    /// An opt-out is honoured from the payload, the button's text or the
    /// body alike: a STOP is never lost.
    /// `marketing` are the marketing-only opt-out phrases (settings).
    pub fn keyword(&self, marketing: &[(String, String)]) -> Option<keywords::KeywordMatch> {
        fn text(t: &Option<String>) -> Option<&str> {
            t.as_deref().filter(|b| !b.trim().is_empty())
        }
        if let Some(payload) = text(&self.button_payload) {
            if let Some(k) = keywords::classify_with(payload, marketing) {
                return Some(k);
            }
            return [text(&self.body), text(&self.button_text)]
                .into_iter()
                .flatten()
                .filter_map(keywords::classify)
                .find(|k| k.action == KeywordAction::OptOut);
        }
        text(&self.body)
            .or(text(&self.button_text))
            .and_then(|t| keywords::classify_with(t, marketing))
    }
}

/// What one Meta webhook delivery carries.
#[derive(Debug, Default)]
pub struct MetaEvents {
    pub messages: Vec<InboundMessage>,
    pub statuses: Vec<StatusReport>,
    /// A new messaging limit from `business_capability_update`.
    pub tier_limit: Option<Option<u64>>,
}

/// Parse Meta's webhook JSON (`whatsapp_business_account` object).
pub fn parse_meta(body: &serde_json::Value, now: DateTime<Utc>) -> Result<MetaEvents, String> {
    if body.get("object").and_then(|o| o.as_str()) != Some("whatsapp_business_account") {
        return Err("object must be whatsapp_business_account".into());
    }
    let entries = body
        .get("entry")
        .and_then(|e| e.as_array())
        .ok_or("entry is missing")?;
    let mut out = MetaEvents::default();
    for entry in entries {
        for change in entry
            .get("changes")
            .and_then(|c| c.as_array())
            .into_iter()
            .flatten()
        {
            let field = change
                .get("field")
                .and_then(|f| f.as_str())
                .unwrap_or_default();
            let value = change.get("value").cloned().unwrap_or_default();
            match field {
                "messages" => {
                    let names: BTreeMap<String, String> = value
                        .get("contacts")
                        .and_then(|c| c.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|c| {
                            Some((
                                c.get("wa_id")?.as_str()?.to_string(),
                                c.pointer("/profile/name")?.as_str()?.to_string(),
                            ))
                        })
                        .collect();
                    let to = value
                        .pointer("/metadata/display_phone_number")
                        .and_then(|v| v.as_str())
                        .map(str::to_string);
                    for m in value
                        .get("messages")
                        .and_then(|m| m.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let id = m
                            .get("id")
                            .and_then(|v| v.as_str())
                            .ok_or("message id missing")?;
                        let from = m
                            .get("from")
                            .and_then(|v| v.as_str())
                            .ok_or("message from missing")?;
                        let kind = m.get("type").and_then(|v| v.as_str()).unwrap_or("text");
                        let received_at = m
                            .get("timestamp")
                            .and_then(|t| t.as_str())
                            .and_then(|t| t.parse::<i64>().ok())
                            .and_then(|t| DateTime::from_timestamp(t, 0))
                            .filter(|t| *t <= now + Duration::minutes(5))
                            .unwrap_or(now);
                        let (body, button_text, button_payload) = match kind {
                            "text" => (
                                m.pointer("/text/body")
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                                None,
                                None,
                            ),
                            "button" => (
                                None,
                                m.pointer("/button/text")
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                                m.pointer("/button/payload")
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                            ),
                            "interactive" => {
                                let reply = m
                                    .pointer("/interactive/button_reply")
                                    .or_else(|| m.pointer("/interactive/list_reply"));
                                (
                                    None,
                                    reply
                                        .and_then(|r| r.get("title"))
                                        .and_then(|v| v.as_str())
                                        .map(str::to_string),
                                    reply
                                        .and_then(|r| r.get("id"))
                                        .and_then(|v| v.as_str())
                                        .map(str::to_string),
                                )
                            }
                            _ => (
                                m.pointer(&format!("/{kind}/caption"))
                                    .and_then(|v| v.as_str())
                                    .map(str::to_string),
                                None,
                                None,
                            ),
                        };
                        let media = ["image", "audio", "video", "document", "sticker"]
                            .iter()
                            .filter_map(|k| {
                                m.pointer(&format!("/{k}/id"))
                                    .and_then(|v| v.as_str())
                                    .map(|id| format!("meta-media:{id}"))
                            })
                            .collect();
                        out.messages.push(InboundMessage {
                            provider: "meta".into(),
                            provider_message_id: id.to_string(),
                            channel: Channel::WhatsApp,
                            from: from.to_string(),
                            to: to.clone(),
                            body,
                            media,
                            button_text,
                            button_payload,
                            profile_name: names.get(from).cloned(),
                            received_at,
                        });
                    }
                    for s in value
                        .get("statuses")
                        .and_then(|s| s.as_array())
                        .into_iter()
                        .flatten()
                    {
                        let id = s
                            .get("id")
                            .and_then(|v| v.as_str())
                            .ok_or("status id missing")?;
                        let status = s
                            .get("status")
                            .and_then(|v| v.as_str())
                            .ok_or("status missing")?;
                        let err = s
                            .get("errors")
                            .and_then(|e| e.as_array())
                            .and_then(|e| e.first());
                        out.statuses.push(StatusReport {
                            message_id: None,
                            provider_sid: Some(id.to_string()),
                            status: status.to_string(),
                            error_code: err.and_then(|e| e.get("code")).and_then(|c| c.as_i64()),
                            error_message: err
                                .and_then(|e| e.get("title").or_else(|| e.get("message")))
                                .and_then(|t| t.as_str())
                                .map(str::to_string),
                            price: None,
                            price_unit: None,
                            source: "meta".into(),
                        });
                    }
                }
                "business_capability_update" | "account_update" | "phone_number_quality_update" => {
                    if let Some(limit) = parse_meta_limit(&value) {
                        out.tier_limit = Some(limit);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Meta's messaging limit as a number (`None` = unlimited), from either
/// `max_daily_conversation_per_phone` (number), `max_daily_conversations_per_business`
/// or `current_limit` (`TIER_250`, `TIER_2K`, `TIER_10K`, `TIER_100K`, `TIER_UNLIMITED`).
pub fn parse_meta_limit(value: &serde_json::Value) -> Option<Option<u64>> {
    for key in [
        "max_daily_conversations_per_business",
        "max_daily_conversation_per_phone",
        "current_limit",
        "messaging_limit_tier",
    ] {
        match value.get(key) {
            Some(serde_json::Value::Number(n)) => return n.as_u64().map(Some),
            Some(serde_json::Value::String(s)) => {
                let s = s.to_ascii_uppercase();
                let tier = s.trim_start_matches("TIER_");
                return match tier {
                    "UNLIMITED" => Some(None),
                    _ => {
                        let (digits, mult) = match tier.strip_suffix('K') {
                            Some(d) => (d, 1000),
                            None => (tier, 1),
                        };
                        digits.parse::<u64>().ok().map(|n| Some(n * mult))
                    }
                };
            }
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_limits() {
        use serde_json::json;
        assert_eq!(
            parse_meta_limit(&json!({"max_daily_conversation_per_phone": 1000})),
            Some(Some(1000))
        );
        assert_eq!(
            parse_meta_limit(&json!({"max_daily_conversations_per_business": "TIER_2K"})),
            Some(Some(2000))
        );
        assert_eq!(
            parse_meta_limit(&json!({"current_limit": "TIER_UNLIMITED"})),
            Some(None)
        );
        assert_eq!(
            parse_meta_limit(&json!({"current_limit": "TIER_250"})),
            Some(Some(250))
        );
        assert_eq!(parse_meta_limit(&json!({})), None);
    }

    #[test]
    fn parses_meta_messages_and_statuses() {
        let now = Utc::now();
        let body = serde_json::json!({
            "object": "whatsapp_business_account",
            "entry": [{"id": "1", "changes": [{"field": "messages", "value": {
                "messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550001111", "phone_number_id": "1"},
                "contacts": [{"profile": {"name": "Kari"}, "wa_id": "4791234567"}],
                "messages": [{"from": "4791234567", "id": "wamid.A", "timestamp": "1700000000", "type": "text", "text": {"body": "STOP"}}],
                "statuses": [{"id": "wamid.B", "status": "failed", "timestamp": "1700000001", "recipient_id": "4791234567",
                              "errors": [{"code": 131026, "title": "Message undeliverable"}]}]
            }}]}]
        });
        let ev = parse_meta(&body, now).unwrap();
        assert_eq!(ev.messages.len(), 1);
        assert_eq!(ev.messages[0].body.as_deref(), Some("STOP"));
        assert_eq!(ev.messages[0].profile_name.as_deref(), Some("Kari"));
        assert_eq!(ev.statuses[0].error_code, Some(131026));
        assert!(parse_meta(&serde_json::json!({"object": "page"}), now).is_err());
    }
}

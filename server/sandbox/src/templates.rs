//! The sandbox's Content API store, seeded with the templates Heimdall ships with.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// A seeded template, as Heimdall's tests register it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SeedTemplate {
    /// Heimdall's name, also the Twilio friendly name and the Meta template name.
    pub name: &'static str,
    /// Stable `HX...` content SID.
    pub sid: String,
    /// The text with positional placeholders `{{1}}`, `{{2}}`, ...
    pub body: &'static str,
    /// Heimdall's names for the placeholders, in order.
    pub variable_names: Vec<&'static str>,
    /// `UTILITY` or `MARKETING`.
    pub category: &'static str,
    /// The WhatsApp approval status (`approved`, `paused`).
    pub status: &'static str,
}

const SEEDS: &[(&str, &str, &[&str], &str, &str)] = &[
    (
        "task_reminder",
        "Reminder: {{1}} is due at {{2}}.",
        &["task_name", "due_time"],
        "UTILITY",
        "approved",
    ),
    (
        "daily_briefing",
        "Good morning! {{1}}: you have {{2}} tasks today. Top: {{3}}",
        &["date", "task_count", "top_tasks"],
        "UTILITY",
        "approved",
    ),
    (
        "calendar_reminder",
        "{{1}} at {{2}}, {{3}}",
        &["event_name", "time", "location"],
        "UTILITY",
        "approved",
    ),
    (
        "task_complete_confirm",
        "Done: {{1}} ✅",
        &["task_name"],
        "UTILITY",
        "approved",
    ),
    (
        "weekly_review",
        "This week you completed {{1}} tasks. Highlights: {{2}}",
        &["completed_count", "highlights"],
        "UTILITY",
        "approved",
    ),
    (
        "spring_offer",
        "Hi {{1}}, spring offer: {{2}}",
        &["first_name", "offer"],
        "MARKETING",
        "approved",
    ),
    (
        "paused_notice",
        "Service notice: {{1}}",
        &["notice"],
        "UTILITY",
        "paused",
    ),
];

/// The templates the sandbox starts with.
pub fn seeded_templates() -> Vec<SeedTemplate> {
    SEEDS
        .iter()
        .map(|(name, body, vars, category, status)| SeedTemplate {
            name,
            sid: content_sid(name),
            body,
            variable_names: vars.to_vec(),
            category,
            status,
        })
        .collect()
}

/// A deterministic `HX` + 32 hex digits for a template name.
pub fn content_sid(name: &str) -> String {
    let digest = Sha256::digest(format!("heimdall-sandbox-content:{name}").as_bytes());
    format!("HX{}", &hex::encode(digest)[..32])
}

/// A sample value Twilio shows for a variable.
fn sample_for(name: &str) -> String {
    match name {
        "task_name" => "Call the dentist",
        "due_time" => "17:00",
        "date" => "Monday 2 March",
        "task_count" => "5",
        "top_tasks" => "Write the report",
        "event_name" => "Team stand-up",
        "time" => "09:30",
        "location" => "Room 4",
        "completed_count" => "12",
        "highlights" => "Shipped the release",
        "first_name" => "Alex",
        "offer" => "20% off all plans",
        "notice" => "Planned maintenance tonight",
        other => other,
    }
    .to_string()
}

/// One template in the store.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredTemplate {
    pub sid: String,
    pub friendly_name: String,
    pub language: String,
    /// Sample values keyed `"1"`, `"2"`, ...
    pub variables: BTreeMap<String, String>,
    /// Content types as Twilio shows them (`{"twilio/text": {"body": ...}}`).
    pub types: serde_json::Value,
    /// Lower case WhatsApp approval status.
    pub status: String,
    pub category: String,
    pub rejection_reason: String,
    pub date_created: DateTime<Utc>,
    pub date_updated: DateTime<Utc>,
    /// The API that made it: `None` for the seeds (both APIs show them),
    /// `twilio` (`POST /v1/Content`: Meta's API does not show it) or `meta`
    /// (`POST /{version}/{waba_id}/message_templates`: the Content API does
    /// not show it; its `sid` is Meta's numeric template id).
    #[serde(default)]
    pub api: Option<String>,
    /// The name it was submitted to WhatsApp under, when not its friendly name.
    #[serde(default)]
    pub whatsapp_name: Option<String>,
}

impl StoredTemplate {
    pub fn new(
        name: &str,
        body: &str,
        variables: BTreeMap<String, String>,
        category: &str,
        status: &str,
    ) -> Self {
        let now = Utc::now();
        StoredTemplate {
            sid: content_sid(name),
            friendly_name: name.to_string(),
            language: "en".into(),
            variables,
            types: serde_json::json!({"twilio/text": {"body": body}}),
            status: status.to_ascii_lowercase(),
            category: category.to_ascii_uppercase(),
            rejection_reason: String::new(),
            date_created: now,
            date_updated: now,
            api: None,
            whatsapp_name: None,
        }
    }

    /// Does the Content API (`twilio`) or Meta's Graph API (`meta`) show it?
    pub fn shown_by(&self, api: &str) -> bool {
        self.api.as_deref().is_none_or(|a| a == api)
    }

    /// Meta's id for it: the sid of one Meta made, a stable number otherwise.
    pub fn meta_id(&self) -> String {
        if self.api.as_deref() == Some("meta") {
            return self.sid.clone();
        }
        let digest = Sha256::digest(format!("heimdall-sandbox-meta:{}", self.sid).as_bytes());
        let n = u64::from_be_bytes(digest[..8].try_into().unwrap_or([0; 8]));
        format!("1{:015}", n % 1_000_000_000_000_000)
    }

    /// The text of the template, from its first type with a body.
    pub fn body(&self) -> Option<String> {
        let map = self.types.as_object()?;
        map.get("twilio/text")
            .and_then(|t| t.get("body"))
            .or_else(|| map.values().find_map(|v| v.get("body")))
            .and_then(|b| b.as_str())
            .map(str::to_owned)
    }

    /// How many positional placeholders the body has (the highest `{{n}}`).
    pub fn placeholder_count(&self) -> usize {
        self.body().map(|b| placeholders(&b)).unwrap_or(0)
    }

    /// The body with `{{n}}` replaced by `values[n]`, or the sample value.
    pub fn render(&self, values: &BTreeMap<String, String>) -> String {
        let body = self.body().unwrap_or_default();
        render(&body, |n| {
            values.get(n).or_else(|| self.variables.get(n)).cloned()
        })
    }

    /// Content API JSON.
    pub fn content_json(&self, account_sid: &str, base: &str) -> serde_json::Value {
        let url = format!("{base}/v1/Content/{}", self.sid);
        serde_json::json!({
            "account_sid": account_sid,
            "date_created": self.date_created.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "date_updated": self.date_updated.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            "friendly_name": self.friendly_name,
            "language": self.language,
            "links": {
                "approval_create": format!("{url}/ApprovalRequests/whatsapp"),
                "approval_fetch": format!("{url}/ApprovalRequests"),
            },
            "sid": self.sid,
            "types": self.types,
            "url": url,
            "variables": self.variables,
        })
    }

    /// `GET /v1/Content/{sid}/ApprovalRequests` JSON.
    pub fn approval_json(&self, account_sid: &str, base: &str) -> serde_json::Value {
        let content_type = self
            .types
            .as_object()
            .and_then(|m| m.keys().next().cloned())
            .unwrap_or_else(|| "twilio/text".into());
        serde_json::json!({
            "sid": self.sid,
            "account_sid": account_sid,
            "url": format!("{base}/v1/Content/{}/ApprovalRequests", self.sid),
            "whatsapp": {
                "type": "whatsapp",
                "name": self.whatsapp_name.as_deref().unwrap_or(&self.friendly_name),
                "category": self.category,
                "content_type": content_type,
                "status": self.status,
                "rejection_reason": self.rejection_reason,
                "allow_category_change": true,
            },
        })
    }
}

/// A template to add or change (`POST /sandbox/templates`). Only `name` is
/// required to change an existing template; a new one needs a `body` (or `types`).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TemplateSpec {
    pub name: String,
    #[serde(default)]
    pub body: Option<String>,
    /// Sample values keyed `"1"`, `"2"`, ...
    #[serde(default)]
    pub variables: Option<BTreeMap<String, String>>,
    /// Names for the placeholders, in order (their samples become the names).
    #[serde(default)]
    pub variable_names: Option<Vec<String>>,
    #[serde(default)]
    pub language: Option<String>,
    #[serde(default)]
    pub category: Option<String>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub rejection_reason: Option<String>,
    /// Content types as Twilio shows them, instead of `body`.
    #[serde(default)]
    pub types: Option<serde_json::Value>,
}

/// The WhatsApp approval statuses Twilio reports.
pub const APPROVAL_STATUSES: &[&str] = &[
    "approved",
    "pending",
    "rejected",
    "paused",
    "disabled",
    "unsubmitted",
    "received",
];

/// The WhatsApp template categories.
pub const CATEGORIES: &[&str] = &["UTILITY", "MARKETING", "AUTHENTICATION"];

impl TemplateSpec {
    /// Apply to an existing template (or make a new one).
    pub fn apply(self, existing: Option<StoredTemplate>) -> Result<StoredTemplate, String> {
        let name = self.name.trim().to_string();
        if name.is_empty() {
            return Err("name is required".into());
        }
        let status = match self.status {
            Some(s) => {
                let s = s.trim().to_ascii_lowercase();
                if !APPROVAL_STATUSES.contains(&s.as_str()) {
                    return Err(format!(
                        "status '{s}' is not one of {}",
                        APPROVAL_STATUSES.join(", ")
                    ));
                }
                Some(s)
            }
            None => None,
        };
        let category = match self.category {
            Some(c) => {
                let c = c.trim().to_ascii_uppercase();
                if !CATEGORIES.contains(&c.as_str()) {
                    return Err(format!(
                        "category '{c}' is not one of {}",
                        CATEGORIES.join(", ")
                    ));
                }
                Some(c)
            }
            None => None,
        };
        let variables = match (self.variables, self.variable_names) {
            (Some(v), _) => Some(v),
            (None, Some(names)) => Some(
                names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| ((i + 1).to_string(), sample_for(n)))
                    .collect(),
            ),
            (None, None) => None,
        };
        let mut t = match existing {
            Some(t) => t,
            None => {
                if self.body.is_none() && self.types.is_none() {
                    return Err(format!("template '{name}' is new: a body is required"));
                }
                StoredTemplate::new(&name, "", BTreeMap::new(), "UTILITY", "approved")
            }
        };
        if let Some(types) = self.types {
            if !types.is_object() {
                return Err("types must be a JSON object".into());
            }
            t.types = types;
        }
        if let Some(body) = self.body {
            t.types = serde_json::json!({"twilio/text": {"body": body}});
        }
        if let Some(v) = variables {
            t.variables = v;
        } else if t.variables.is_empty() {
            t.variables = (1..=t.placeholder_count())
                .map(|i| (i.to_string(), format!("sample {i}")))
                .collect();
        }
        if let Some(language) = self.language.filter(|l| !l.trim().is_empty()) {
            t.language = language.trim().to_string();
        }
        if let Some(c) = category {
            t.category = c;
        }
        if let Some(s) = status {
            t.status = s;
        }
        if let Some(r) = self.rejection_reason {
            t.rejection_reason = r;
        }
        t.date_updated = Utc::now();
        Ok(t)
    }
}

/// The store's starting content.
pub fn seed_store() -> BTreeMap<String, StoredTemplate> {
    seeded_templates()
        .into_iter()
        .map(|seed| {
            let variables = seed
                .variable_names
                .iter()
                .enumerate()
                .map(|(i, name)| ((i + 1).to_string(), sample_for(name)))
                .collect();
            let t =
                StoredTemplate::new(seed.name, seed.body, variables, seed.category, seed.status);
            (t.sid.clone(), t)
        })
        .collect()
}

/// The highest `{{n}}` in a text.
pub fn placeholders(text: &str) -> usize {
    let mut max = 0;
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                if let Ok(n) = after[..end].trim().parse::<usize>() {
                    max = max.max(n);
                }
                rest = &after[end + 2..];
            }
            None => break,
        }
    }
    max
}

/// Replace every `{{n}}` for which `value(n)` has something.
pub fn render(text: &str, value: impl Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match value(key) {
                    Some(v) => out.push_str(&v),
                    None => {
                        out.push_str("{{");
                        out.push_str(&after[..end]);
                        out.push_str("}}");
                    }
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sids_are_stable_and_well_formed() {
        let a = content_sid("task_reminder");
        assert_eq!(a, content_sid("task_reminder"));
        assert_ne!(a, content_sid("daily_briefing"));
        assert_eq!(a.len(), 34);
        assert!(a.starts_with("HX"));
        assert!(a[2..].bytes().all(|b| b.is_ascii_hexdigit()));
    }

    #[test]
    fn seeds_match_their_placeholders() {
        let seeds = seeded_templates();
        assert_eq!(seeds.len(), 7);
        for s in &seeds {
            assert_eq!(placeholders(s.body), s.variable_names.len(), "{}", s.name);
        }
        let paused = seeds.iter().find(|s| s.name == "paused_notice").unwrap();
        assert_eq!(paused.status, "paused");
        let offer = seeds.iter().find(|s| s.name == "spring_offer").unwrap();
        assert_eq!(offer.category, "MARKETING");
    }

    #[test]
    fn renders_values_then_samples() {
        let store = seed_store();
        let t = &store[&content_sid("task_reminder")];
        let mut v = BTreeMap::new();
        v.insert("1".to_string(), "Call Bob".to_string());
        assert_eq!(t.render(&v), "Reminder: Call Bob is due at 17:00.");
        assert_eq!(render("a {{x}} {{", |_| None), "a {{x}} {{");
    }
}

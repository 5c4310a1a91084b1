//! Meta's message templates for a WhatsApp Business Account: create one
//! (`POST /{version}/{waba_id}/message_templates`) and read them all with
//! their review status and rejection reason (`GET` on the same path, paged
//! with `paging.next`). Both need `WHATSAPP_BUSINESS_ACCOUNT_ID`.

use serde::Deserialize;
use serde_json::{json, Value};
use url::Url;

use super::super::twilio::endpoint;
use super::super::Rejected;
use super::{graph_error, MetaClient};
use crate::compliance::provider_errors::ProviderFailure;

/// A guard against a server that keeps handing out next pages.
const MAX_PAGES: usize = 1000;

/// What Meta answered to a new template.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct CreatedTemplate {
    pub id: String,
    /// `PENDING`, `APPROVED` or `REJECTED`.
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub category: String,
}

/// One template as Meta lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetaTemplate {
    pub id: String,
    pub name: String,
    pub language: String,
    /// Upper case as Meta says it: `APPROVED`, `PENDING`, `REJECTED`, `PAUSED`, `DISABLED`, ...
    pub status: String,
    pub category: String,
    /// `rejected_reason` (`NONE` when there is none is left out).
    pub rejected_reason: Option<String>,
    /// The BODY component's text.
    pub body: Option<String>,
    /// The BODY component's example values, in placeholder order.
    pub examples: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct Page {
    #[serde(default)]
    data: Vec<RawTemplate>,
    #[serde(default)]
    paging: Option<Paging>,
}

#[derive(Debug, Deserialize)]
struct Paging {
    #[serde(default)]
    next: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawTemplate {
    id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    language: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    category: String,
    #[serde(default)]
    rejected_reason: Option<String>,
    #[serde(default)]
    components: Vec<Value>,
}

#[derive(Debug, Deserialize)]
struct UserError {
    error: UserErrorBody,
}

#[derive(Debug, Deserialize)]
struct UserErrorBody {
    #[serde(default)]
    error_user_msg: Option<String>,
}

impl MetaClient {
    fn templates_url(&self) -> Result<Url, Rejected> {
        let waba = self
            .business_account_id
            .as_deref()
            .filter(|w| !w.trim().is_empty())
            .ok_or_else(|| Rejected {
                failure: ProviderFailure::Code {
                    code: 100,
                    http_status: None,
                },
                message: "WHATSAPP_BUSINESS_ACCOUNT_ID is not set: Meta's template endpoints need the WhatsApp Business Account id".into(),
            })?;
        endpoint(
            &self.graph_base,
            &[&self.graph_version, waba.trim(), "message_templates"],
        )
    }

    /// Submit a template with one BODY component for review. `samples` are
    /// the example values of `{{1}}`, `{{2}}`, ... (Meta requires them when
    /// the body has variables).
    pub async fn create_template(
        &self,
        name: &str,
        language: &str,
        category: &str,
        body: &str,
        samples: &[String],
    ) -> Result<CreatedTemplate, Rejected> {
        let url = self.templates_url()?;
        let mut component = json!({"type": "BODY", "text": body});
        if !samples.is_empty() {
            component["example"] = json!({ "body_text": [samples] });
        }
        let request = json!({
            "name": name,
            "language": language,
            "category": category,
            "components": [component],
        });
        let (status, bytes) = self.exchange(self.http.post(url).json(&request)).await?;
        if !status.is_success() {
            return Err(template_error(status.as_u16(), &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| Rejected {
            failure: ProviderFailure::Http(status.as_u16()),
            message: format!("Meta: unexpected response body (HTTP {status}): {e}"),
        })
    }

    /// Every template of the business account, following `paging.next`
    /// (on the configured host only: the token goes nowhere else).
    pub async fn list_templates(&self) -> Result<Vec<MetaTemplate>, Rejected> {
        let mut url = self.templates_url()?;
        url.query_pairs_mut()
            .append_pair(
                "fields",
                "name,language,status,category,rejected_reason,components,id",
            )
            .append_pair("limit", "100");
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) || seen.len() > MAX_PAGES {
                return Err(Rejected {
                    failure: ProviderFailure::Http(200),
                    message: "Meta template paging did not end".into(),
                });
            }
            let (status, bytes) = self.exchange(self.http.get(url)).await?;
            if !status.is_success() {
                return Err(graph_error(status.as_u16(), &bytes));
            }
            let page: Page = serde_json::from_slice(&bytes).map_err(|e| Rejected {
                failure: ProviderFailure::Http(status.as_u16()),
                message: format!("Meta: unexpected template list (HTTP {status}): {e}"),
            })?;
            out.extend(page.data.into_iter().map(MetaTemplate::from_raw));
            if let Some(link) = page
                .paging
                .and_then(|p| p.next)
                .filter(|s| !s.trim().is_empty())
            {
                let url = self.graph_base.join(&link).map_err(|_| Rejected {
                    failure: ProviderFailure::Http(200),
                    message: "Meta returned an invalid paging.next".into(),
                })?;
                if url.origin() != self.graph_base.origin() {
                    return Err(Rejected {
                        failure: ProviderFailure::Http(200),
                        message: "Meta's paging.next points at another host; not followed".into(),
                    });
                }
                next = Some(url);
            }
        }
        Ok(out)
    }
}

impl MetaTemplate {
    fn from_raw(raw: RawTemplate) -> Self {
        let body = raw
            .components
            .iter()
            .find(|c| {
                c.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|t| t.eq_ignore_ascii_case("body"))
            })
            .cloned();
        let text = body
            .as_ref()
            .and_then(|b| b.get("text"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        let examples = body
            .as_ref()
            .and_then(|b| b.pointer("/example/body_text/0"))
            .and_then(Value::as_array)
            .map(|v| {
                v.iter()
                    .map(|s| s.as_str().unwrap_or_default().to_string())
                    .collect()
            })
            .unwrap_or_default();
        MetaTemplate {
            id: raw.id,
            name: raw.name,
            language: raw.language,
            status: raw.status.to_ascii_uppercase(),
            category: raw.category.to_ascii_uppercase(),
            rejected_reason: raw
                .rejected_reason
                .map(|r| r.trim().to_string())
                .filter(|r| !r.is_empty() && !r.eq_ignore_ascii_case("none")),
            body: text,
            examples,
        }
    }
}

/// A Graph error, with the message meant for a person when Meta gives one.
fn template_error(status: u16, body: &[u8]) -> Rejected {
    let mut rejected = graph_error(status, body);
    if let Ok(UserError {
        error: UserErrorBody {
            error_user_msg: Some(m),
        },
    }) = serde_json::from_slice::<UserError>(body)
    {
        if !m.trim().is_empty() && !rejected.message.contains(m.trim()) {
            rejected.message = format!("{}: {}", rejected.message, m.trim());
        }
    }
    rejected
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_templates_read_body_examples_and_reason() {
        let raw: RawTemplate = serde_json::from_value(json!({
            "id": "1234", "name": "welcome", "language": "en_US", "status": "REJECTED",
            "category": "UTILITY", "rejected_reason": "INVALID_FORMAT",
            "components": [
                {"type": "HEADER", "format": "TEXT", "text": "Hi"},
                {"type": "BODY", "text": "Hi {{1}} at {{2}}", "example": {"body_text": [["Kari", "9"]]}}
            ]
        }))
        .unwrap();
        let t = MetaTemplate::from_raw(raw);
        assert_eq!(t.body.as_deref(), Some("Hi {{1}} at {{2}}"));
        assert_eq!(t.examples, vec!["Kari", "9"]);
        assert_eq!(t.rejected_reason.as_deref(), Some("INVALID_FORMAT"));
        let raw: RawTemplate = serde_json::from_value(json!({
            "id": "1", "status": "approved", "rejected_reason": "NONE", "components": []
        }))
        .unwrap();
        let t = MetaTemplate::from_raw(raw);
        assert_eq!(t.status, "APPROVED");
        assert_eq!(t.rejected_reason, None);
        assert_eq!(t.body, None);
    }

    #[test]
    fn user_messages_are_kept() {
        let r = template_error(
            400,
            br#"{"error":{"message":"Invalid parameter","type":"OAuthException","code":100,"error_subcode":2388043,"error_user_title":"Missing example","error_user_msg":"Add sample values for the variables.","fbtrace_id":"A"}}"#,
        );
        assert_eq!(
            r.failure,
            ProviderFailure::Code {
                code: 100,
                http_status: Some(400)
            }
        );
        assert!(r.message.contains("Add sample values"), "{}", r.message);
    }
}

//! The Content API: templates (list, create, delete), their WhatsApp
//! approval, and the Content resources made for interactive session messages.

use super::*;

/// `Messages` list and Content pages: Twilio's default and maximum useful size.
const CONTENT_PAGE_SIZE: u32 = 50;
/// A guard against a server that keeps handing out next pages.
const MAX_CONTENT_PAGES: usize = 1000;

/// A Content API template.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContentTemplate {
    /// `HX...`
    pub sid: String,
    pub friendly_name: String,
    pub language: String,
    /// Twilio's sample values, keyed `"1"`, `"2"`, ...
    pub variables: BTreeMap<String, String>,
    /// The text of the first content type that has one (`twilio/text`,
    /// `twilio/quick-reply`, ...).
    pub body: Option<String>,
    /// Every content type as Twilio returned it.
    pub types: serde_json::Value,
}

/// A template's WhatsApp approval, from `GET /v1/Content/{sid}/ApprovalRequests`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalStatus {
    /// Lower case: `approved`, `pending`, `rejected`, `paused`, `disabled`,
    /// `unsubmitted`, `received`.
    pub status: String,
    /// `UTILITY`, `MARKETING` or `AUTHENTICATION`.
    pub category: Option<String>,
    pub rejection_reason: Option<String>,
    /// The template name as submitted to WhatsApp.
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ContentPage {
    #[serde(default)]
    contents: Vec<RawContent>,
    #[serde(default)]
    meta: Option<ContentPageMeta>,
}

#[derive(Debug, Deserialize)]
struct ContentPageMeta {
    #[serde(default)]
    next_page_url: Option<String>,
}

#[derive(Debug, Deserialize)]
struct RawContent {
    sid: String,
    #[serde(default)]
    friendly_name: Option<String>,
    #[serde(default)]
    language: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    types: serde_json::Value,
}

#[derive(Debug, Deserialize)]
struct RawApproval {
    #[serde(default)]
    whatsapp: Option<RawWhatsAppApproval>,
}

#[derive(Debug, Deserialize)]
struct RawWhatsAppApproval {
    #[serde(default)]
    status: Option<String>,
    #[serde(default)]
    category: Option<String>,
    #[serde(default)]
    rejection_reason: Option<String>,
    #[serde(default)]
    name: Option<String>,
}

impl TwilioClient {
    /// The ContentSid of a Content resource holding `content`, made on first use.
    pub(super) async fn session_content(
        &self,
        content: &crate::channels::interactive::Interactive,
    ) -> Result<String, Rejected> {
        use sha2::Digest;
        let types = content.twilio_types();
        let key = hex::encode(sha2::Sha256::digest(types.to_string().as_bytes()));
        if let Some(sid) = self.cached_session_content(&key) {
            return Ok(sid);
        }
        let name = format!("{SESSION_CONTENT_PREFIX}{}", &key[..16]);
        let created = self
            .create_content(&name, "en", &BTreeMap::new(), types)
            .await?;
        if let Ok(mut cache) = self.session_contents.lock() {
            cache.put(key, created.sid.clone());
        }
        Ok(created.sid)
    }

    fn cached_session_content(&self, key: &str) -> Option<String> {
        self.session_contents.lock().ok()?.get(key).cloned()
    }

    /// Every Content API template, following `meta.next_page_url`.
    pub async fn list_content(&self) -> Result<Vec<ContentTemplate>, Rejected> {
        self.list_content_paged(CONTENT_PAGE_SIZE).await
    }

    /// [`list_content`](Self::list_content) with a chosen page size (1 to 500).
    pub async fn list_content_paged(
        &self,
        page_size: u32,
    ) -> Result<Vec<ContentTemplate>, Rejected> {
        let mut url = endpoint(&self.content_base, &["v1", "Content"])?;
        url.query_pairs_mut()
            .append_pair("PageSize", &page_size.clamp(1, 500).to_string());
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut next = Some(url);
        while let Some(url) = next.take() {
            if !seen.insert(url.to_string()) || seen.len() > MAX_CONTENT_PAGES {
                return Err(Rejected {
                    failure: ProviderFailure::Http(200),
                    message: "Twilio Content API paging did not end".into(),
                });
            }
            let response = self
                .http
                .get(url)
                .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
                .header(reqwest::header::ACCEPT, "application/json")
                .send()
                .await
                .map_err(|e| transport_failure("Twilio", e))?;
            let page: ContentPage = read_json(response).await?;
            out.extend(page.contents.into_iter().map(ContentTemplate::from_raw));
            if let Some(link) = page
                .meta
                .and_then(|m| m.next_page_url)
                .filter(|s| !s.trim().is_empty())
            {
                next = Some(self.same_origin_page(&link)?);
            }
        }
        Ok(out)
    }

    /// A template's WhatsApp approval status.
    pub async fn approval_status(&self, content_sid: &str) -> Result<ApprovalStatus, Rejected> {
        let url = endpoint(
            &self.content_base,
            &["v1", "Content", content_sid, "ApprovalRequests"],
        )?;
        let response = self
            .http
            .get(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let raw: RawApproval = read_json(response).await?;
        Ok(match raw.whatsapp {
            None => ApprovalStatus {
                status: "unsubmitted".into(),
                category: None,
                rejection_reason: None,
                name: None,
            },
            Some(w) => ApprovalStatus {
                status: w
                    .status
                    .map(|s| s.trim().to_ascii_lowercase())
                    .filter(|s| !s.is_empty())
                    .unwrap_or_else(|| "unsubmitted".into()),
                category: non_empty(w.category).map(|c| c.to_ascii_uppercase()),
                rejection_reason: non_empty(w.rejection_reason),
                name: non_empty(w.name),
            },
        })
    }

    /// Create a Content resource: `POST /v1/Content` with a JSON body.
    /// `variables` are the sample values keyed `"1"`, `"2"`, ...; `types` is
    /// Twilio's `types` object as is, e.g. `{"twilio/text": {"body": ...}}`
    /// for a template, or `twilio/quick-reply` / `twilio/list-picker` for
    /// interactive content made for one conversation.
    pub async fn create_content(
        &self,
        friendly_name: &str,
        language: &str,
        variables: &BTreeMap<String, String>,
        types: serde_json::Value,
    ) -> Result<ContentTemplate, Rejected> {
        let url = endpoint(&self.content_base, &["v1", "Content"])?;
        let body = serde_json::json!({
            "friendly_name": friendly_name,
            "language": language,
            "variables": variables,
            "types": types,
        });
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&body)
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let raw: RawContent = read_json(response).await?;
        Ok(ContentTemplate::from_raw(raw))
    }

    /// Submit content for WhatsApp approval under `name` (lower case,
    /// digits, underscores) in `category` (`UTILITY`, `MARKETING`,
    /// `AUTHENTICATION`): `POST /v1/Content/{sid}/ApprovalRequests/whatsapp`.
    pub async fn submit_whatsapp_approval(
        &self,
        content_sid: &str,
        name: &str,
        category: &str,
    ) -> Result<ApprovalStatus, Rejected> {
        let url = endpoint(
            &self.content_base,
            &["v1", "Content", content_sid, "ApprovalRequests", "whatsapp"],
        )?;
        let response = self
            .http
            .post(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .json(&serde_json::json!({"name": name, "category": category}))
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let w: RawWhatsAppApproval = read_json(response).await?;
        Ok(ApprovalStatus {
            status: w
                .status
                .map(|s| s.trim().to_ascii_lowercase())
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "received".into()),
            category: non_empty(w.category).map(|c| c.to_ascii_uppercase()),
            rejection_reason: non_empty(w.rejection_reason),
            name: non_empty(w.name),
        })
    }

    /// Delete a Content resource: `DELETE /v1/Content/{sid}` (204).
    pub async fn delete_content(&self, content_sid: &str) -> Result<(), Rejected> {
        let url = endpoint(&self.content_base, &["v1", "Content", content_sid])?;
        let response = self
            .http
            .delete(url)
            .basic_auth(&self.account_sid, Some(self.auth_token.expose_secret()))
            .header(reqwest::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let bytes = response
            .bytes()
            .await
            .map_err(|e| transport_failure("Twilio", e))?;
        Err(twilio_error(status.as_u16(), &bytes))
    }

    /// The credentials go only to the host we were configured with: a next
    /// page on another origin is refused, not followed.
    pub(super) fn same_origin_page(&self, link: &str) -> Result<Url, Rejected> {
        let url = self.content_base.join(link).map_err(|_| Rejected {
            failure: ProviderFailure::Http(200),
            message: "Twilio Content API returned an invalid next_page_url".into(),
        })?;
        if url.origin() != self.content_base.origin() {
            return Err(Rejected {
                failure: ProviderFailure::Http(200),
                message: "Twilio Content API next_page_url points at another host; not followed"
                    .into(),
            });
        }
        Ok(url)
    }
}

impl ContentTemplate {
    fn from_raw(raw: RawContent) -> Self {
        let variables = raw
            .variables
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| {
                let value = match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                };
                (k, value)
            })
            .collect();
        let body = template_body(&raw.types);
        ContentTemplate {
            sid: raw.sid,
            friendly_name: raw.friendly_name.unwrap_or_default(),
            language: raw.language.unwrap_or_default(),
            variables,
            body,
            types: raw.types,
        }
    }
}

/// The text of a template: the preferred content types first, then any type
/// with a `body`.
pub(super) fn template_body(types: &serde_json::Value) -> Option<String> {
    const PREFERRED: &[&str] = &[
        "twilio/text",
        "twilio/quick-reply",
        "twilio/list-picker",
        "twilio/call-to-action",
        "twilio/media",
        "twilio/card",
        "whatsapp/card",
        "whatsapp/authentication",
    ];
    let map = types.as_object()?;
    let body_of = |v: &serde_json::Value| v.get("body").and_then(|b| b.as_str()).map(str::to_owned);
    PREFERRED
        .iter()
        .filter_map(|t| map.get(*t))
        .find_map(body_of)
        .or_else(|| map.values().find_map(body_of))
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

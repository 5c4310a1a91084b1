//! The inbox: threads newest first, one conversation, and staff replies.
//! A reply goes through `outbound::accept` like every other message
//! (`Origin::Inbox`), so a refusal comes back with the gate's reason.

// Server-function arguments are the fields of a form.
#![allow(clippy::too_many_arguments)]

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::api::contacts::{ContactRow, StatusRow, WindowView};
use crate::api::templates::TemplateRow;
use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThreadRow {
    pub contact_id: String,
    pub name: Option<String>,
    pub phone: String,
    pub channel: String,
    pub last_text: Option<String>,
    pub last_at: DateTime<Utc>,
    pub unread: usize,
    pub window: WindowView,
    pub needs_review: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConversationEntry {
    Inbound {
        text: Option<String>,
        media: Vec<String>,
        keyword_action: Option<String>,
        needs_review: bool,
        at: DateTime<Utc>,
    },
    Outbound {
        text: Option<String>,
        template_name: Option<String>,
        state: String,
        block_reason: Option<String>,
        error_code: Option<i32>,
        error_message: Option<String>,
        /// Part `.0` of `.1`, for a text sent in parts.
        part: Option<(i32, i32)>,
        source: String,
        actor: String,
        at: DateTime<Utc>,
        statuses: Vec<StatusRow>,
    },
}

/// One message of a reply as it would go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreviewPart {
    pub text: String,
    pub chars: usize,
    /// For SMS: `GSM-7` or `UCS-2`, and the segments billed.
    pub encoding: Option<String>,
    pub segments: Option<usize>,
}

/// A reply as it would go: converted for the channel and split at its limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyPreview {
    pub channel: String,
    pub max_chars: usize,
    pub parts: Vec<PreviewPart>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationView {
    pub contact: ContactRow,
    /// The channel replies go on (that of the person's last message).
    pub channel: String,
    pub window: WindowView,
    pub entries: Vec<ConversationEntry>,
    /// Approved templates, for replies outside the window.
    pub templates: Vec<TemplateRow>,
    /// A fresh key for the reply form: submitting the same form twice sends once.
    pub reply_key: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyResult {
    pub message_id: String,
    pub state: String,
    pub note: String,
}

#[server(prefix = "/_sf", endpoint = "inbox_threads")]
pub async fn inbox_threads() -> Result<Vec<ThreadRow>, AppError> {
    use crate::api::contacts::ssr::window_view;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            Ok(heimdall_domain::reports::inbox(ctx.core(), None, 200)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|t| ThreadRow {
                    contact_id: t.contact.id.clone(),
                    name: t.contact.name.clone(),
                    phone: t.contact.phone.clone(),
                    window: window_view(t.channel.clone(), t.window),
                    channel: t.channel,
                    last_text: t.last_inbound_text,
                    last_at: t.last_inbound_at,
                    unread: t.unread,
                    needs_review: t.needs_review,
                })
                .collect())
        }
        .await,
    )
}

#[server(prefix = "/_sf", endpoint = "inbox_conversation")]
pub async fn inbox_conversation(contact_id: String) -> Result<ConversationView, AppError> {
    use crate::api::contacts::ssr::{contact_row, window_view};
    use crate::server::*;
    use heimdall_domain::reports::ConversationItem;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let core = ctx.core();
            let id = check_id(&contact_id, "contact")?;
            let contact = heimdall_domain::contacts::get(core, &id)
                .await
                .map_err(|_| AppError::NotFound("No contact with that id.".into()))?;
            let items = heimdall_domain::reports::conversation(core, &id, 200)
                .await
                .map_err(internal)?;
            // Replies go on the channel the person last wrote on.
            let channel = items
                .iter()
                .rev()
                .find_map(|i| match i {
                    ConversationItem::Inbound { channel, .. } => Some(channel.clone()),
                    _ => None,
                })
                .unwrap_or_else(|| "whatsapp".to_string());
            let ch: heimdall_domain::Channel = channel
                .parse()
                .unwrap_or(heimdall_domain::Channel::WhatsApp);
            let window = heimdall_domain::contacts::window(&core.db.conn, &id, ch, core.now())
                .await
                .map_err(internal)?;
            let names = staff_names(core).await?;
            let entries = items
                .into_iter()
                .map(|i| match i {
                    ConversationItem::Inbound {
                        text,
                        media,
                        button_text,
                        keyword_action,
                        needs_review,
                        at,
                        ..
                    } => ConversationEntry::Inbound {
                        text: text.or(button_text),
                        media,
                        keyword_action,
                        needs_review,
                        at,
                    },
                    ConversationItem::Outbound {
                        text,
                        template_name,
                        state,
                        block_reason,
                        error_code,
                        error_message,
                        part,
                        source,
                        actor,
                        at,
                        status_history,
                        ..
                    } => ConversationEntry::Outbound {
                        text,
                        template_name,
                        state,
                        block_reason,
                        error_code,
                        error_message,
                        part,
                        source,
                        actor: actor_label(&names, actor),
                        at,
                        statuses: status_history
                            .into_iter()
                            .map(|s| StatusRow {
                                status: s.status,
                                error_code: s.error_code,
                                source: s.source,
                                at: s.at,
                            })
                            .collect(),
                    },
                })
                .collect();
            let templates = heimdall_domain::templates::list(core)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|t| t.approval_status == "approved")
                .map(crate::api::templates::row)
                .collect();
            Ok(ConversationView {
                contact: contact_row(contact),
                window: window_view(channel.clone(), window),
                channel,
                entries,
                templates,
                reply_key: heimdall_domain::clock::new_id(),
            })
        }
        .await,
    )
}

/// A free-text reply as it would go on `channel`: what `inbox_reply` would send, part by
/// part (WhatsApp formatting or plain SMS text, each part within the channel's limit).
#[server(prefix = "/_sf", endpoint = "inbox_preview")]
pub async fn inbox_preview(channel: String, text: String) -> Result<ReplyPreview, AppError> {
    use crate::server::*;
    use heimdall_domain::formatting::{self, SmsEncoding, TextFormat};
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let ch: heimdall_domain::Channel = channel
                .parse()
                .map_err(|_| AppError::invalid("channel", "Unknown channel."))?;
            if formatting::whatsapp_len(&text) > heimdall_domain::outbound::MAX_TEXT_CHARS {
                return Err(AppError::invalid(
                    "text",
                    format!(
                        "The message is longer than {} characters.",
                        heimdall_domain::outbound::MAX_TEXT_CHARS
                    ),
                ));
            }
            let destination = heimdall_domain::outbound::destination(ctx.core(), ch);
            let prepared = formatting::prepare(&text, TextFormat::Markdown, destination, false);
            Ok(ReplyPreview {
                channel: ch.as_str().to_string(),
                max_chars: prepared.max_chars,
                parts: prepared
                    .parts
                    .into_iter()
                    .map(|p| PreviewPart {
                        chars: p.chars,
                        encoding: p.sms.map(|s| {
                            match s.encoding {
                                SmsEncoding::Gsm7 => "GSM-7",
                                SmsEncoding::Ucs2 => "UCS-2",
                            }
                            .to_string()
                        }),
                        segments: p.sms.map(|s| s.segments),
                        text: p.text,
                    })
                    .collect(),
            })
        }
        .await,
    )
}

/// Reply to a person: free text inside the 24-hour window, an approved
/// template outside it. Gated and audited like every message.
#[server(prefix = "/_sf", endpoint = "inbox_reply")]
pub async fn inbox_reply(
    #[server(default)] csrf: String,
    contact_id: String,
    channel: String,
    reply_key: String,
    mode: String,
    #[server(default)] text: String,
    #[server(default)] template_name: String,
    #[server(default)] vars: BTreeMap<String, String>,
) -> Result<ReplyResult, AppError> {
    use crate::server::*;
    use heimdall_domain::gates::Decision;
    use heimdall_domain::outbound::{
        self, AcceptError, Origin, Recipient, RequestedContent, SendRequest,
    };
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let id = check_id(&contact_id, "contact")?;
            let channel: heimdall_domain::Channel = channel
                .parse()
                .map_err(|_| AppError::invalid("channel", "Unknown channel."))?;
            let (content, field) = match mode.as_str() {
                "text" => {
                    let body = required(
                        "text",
                        "The message",
                        &text,
                        heimdall_domain::outbound::MAX_TEXT_CHARS,
                    )?;
                    (
                        RequestedContent::Text {
                            body,
                            media_url: None,
                            format: heimdall_domain::formatting::TextFormat::Markdown,
                        },
                        "text",
                    )
                }
                "template" => {
                    let name = required("template_name", "A template", &template_name, 200)?;
                    (
                        RequestedContent::Template {
                            name,
                            variables: vars,
                        },
                        "template_name",
                    )
                }
                _ => return Err(AppError::invalid("mode", "Choose free text or a template.")),
            };
            let key = check_id(&reply_key, "reply form")
                .map_err(|_| AppError::invalid("", "Reload the page and try again."))?;
            let outcome = outbound::accept(
                ctx.core(),
                SendRequest {
                    recipient: Recipient::Contact(id.clone()),
                    channel,
                    content,
                    origin: Origin::Inbox {
                        staff: ctx.user().clone(),
                    },
                    idempotency_key: Some(format!("inbox:{}:{key}", ctx.user().id)),
                },
            )
            .await
            .map_err(|e| match e {
                AcceptError::BadRequest(m) => AppError::invalid(field, m),
                AcceptError::ContactNotFound(_) => {
                    AppError::NotFound("No contact with that id.".into())
                }
                AcceptError::Db(e) => internal(e),
            })?;
            let decision = outcome.decision.decision;
            ctx.audit(
                "inbox_reply",
                Some(&format!("message:{}", outcome.message_id)),
                Some(serde_json::json!({
                    "contact_id": id,
                    "channel": channel.as_str(),
                    "decision": decision.as_str(),
                    "reason": decision.reason().map(|r| r.code()),
                })),
            )
            .await?;
            match decision {
                Decision::Block { reason } => Err(AppError::Refused {
                    reason: reason.code().to_string(),
                    message: outcome.decision.explanation(),
                }),
                Decision::Defer { reason, until } => Ok(ReplyResult {
                    message_id: outcome.message_id,
                    state: outcome.state.as_str().to_string(),
                    note: format!(
                        "Held by the {} gate until {}: {}",
                        reason.code(),
                        until.format("%Y-%m-%d %H:%M UTC"),
                        outcome.decision.explanation()
                    ),
                }),
                Decision::Pass => Ok(ReplyResult {
                    note: match outcome.parts.len() {
                        1 => "Sent to the queue.".into(),
                        n => format!("Sent to the queue in {n} parts, one after the other."),
                    },
                    message_id: outcome.message_id,
                    state: outcome.state.as_str().to_string(),
                }),
            }
        }
        .await,
    )
}

#[cfg(all(test, feature = "ssr"))]
mod tests {
    #[test]
    fn the_reply_box_takes_what_the_send_path_accepts() {
        assert_eq!(
            crate::pages::inbox::MAX_TEXT_CHARS,
            heimdall_domain::outbound::MAX_TEXT_CHARS
        );
    }
}

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
    /// Who the conversation is assigned to.
    pub assigned_to: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum ConversationEntry {
    Inbound {
        id: String,
        text: Option<String>,
        media: Vec<String>,
        keyword_action: Option<String>,
        needs_review: bool,
        /// Who reviewed a flagged message, when, and what they decided.
        review: Option<(String, DateTime<Utc>, String)>,
        at: DateTime<Utc>,
    },
    Outbound {
        /// The message's id (its receipt's link).
        id: String,
        text: Option<String>,
        template_name: Option<String>,
        state: heimdall_codes::MessageState,
        block_reason: Option<String>,
        error_code: Option<i32>,
        error_message: Option<String>,
        /// Part `.0` of `.1`, for a text sent in parts.
        part: Option<(i32, i32)>,
        /// The attachment's link.
        media_url: Option<String>,
        source: heimdall_codes::MessageSource,
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
    /// Who the conversation is assigned to, by whom.
    pub assigned_to: Option<String>,
    pub assigned_by: Option<String>,
    /// Staff who may be assigned (operators and above, active).
    pub assignable: Vec<String>,
    pub canned: Vec<CannedRow>,
}

/// A canned reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CannedRow {
    pub id: String,
    pub title: String,
    pub body: String,
    pub created_by: String,
}

/// What waits for someone, for the navigation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InboxCountsView {
    pub unread: u64,
    pub unread_mine: u64,
    pub to_review: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReplyResult {
    pub message_id: String,
    pub state: heimdall_codes::MessageState,
    pub note: String,
}

#[server(prefix = "/_sf", endpoint = "inbox_threads")]
pub async fn inbox_threads() -> Result<Vec<ThreadRow>, AppError> {
    use crate::api::contacts::ssr::window_view;
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let mut assigned = heimdall_domain::inbox::assignments(ctx.core())
                .await
                .map_err(internal)?;
            Ok(heimdall_domain::reports::inbox(ctx.core(), None, 200)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|t| ThreadRow {
                    assigned_to: assigned.remove(&t.contact.id).map(|a| a.assigned_to),
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
            let contact = crate::api::contacts::ssr::existing_contact(&ctx, &id).await?;
            let items = heimdall_domain::reports::conversation(core, &id, 200)
                .await
                .map_err(internal)?;
            let ch = heimdall_domain::inbox::reply_channel(&core.db.conn, &id)
                .await
                .map_err(internal)?;
            let channel = ch.as_str().to_string();
            let window = heimdall_domain::contacts::window(&core.db.conn, &id, ch, core.now())
                .await
                .map_err(internal)?;
            let names = staff_names(core).await?;
            let entries = items
                .into_iter()
                .map(|i| match i {
                    ConversationItem::Inbound {
                        id,
                        text,
                        media,
                        button_text,
                        keyword_action,
                        needs_review,
                        reviewed_by,
                        reviewed_at,
                        review_outcome,
                        at,
                        ..
                    } => ConversationEntry::Inbound {
                        id,
                        text: text.or(button_text),
                        media,
                        keyword_action,
                        needs_review,
                        review: match (reviewed_by, reviewed_at) {
                            (Some(by), Some(at)) => Some((
                                actor_label(&names, by),
                                at,
                                review_outcome.unwrap_or_default(),
                            )),
                            _ => None,
                        },
                        at,
                    },
                    ConversationItem::Outbound {
                        id,
                        text,
                        template_name,
                        state,
                        block_reason,
                        error_code,
                        error_message,
                        part,
                        media_url,
                        source,
                        actor,
                        at,
                        status_history,
                        ..
                    } => ConversationEntry::Outbound {
                        id,
                        media_url,
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
                .filter(|t| t.approval_status.is_approved())
                .map(crate::api::templates::row)
                .collect();
            let assignment = heimdall_domain::inbox::assignment(core, &id)
                .await
                .map_err(internal)?;
            let assignable = heimdall_domain::access::accounts::list_users(core)
                .await
                .map_err(internal)?
                .into_iter()
                .filter(|u| {
                    u.active
                        && u.role
                            .allows(heimdall_domain::access::accounts::Role::Operator)
                })
                .map(|u| u.email)
                .collect();
            let canned = heimdall_domain::inbox::canned_replies(core)
                .await
                .map_err(internal)?
                .into_iter()
                .map(|r| CannedRow {
                    id: r.id,
                    title: r.title,
                    body: r.body,
                    created_by: actor_label(&names, r.created_by),
                })
                .collect();
            Ok(ConversationView {
                contact: contact_row(contact),
                window: window_view(channel.clone(), window),
                channel,
                entries,
                templates,
                reply_key: heimdall_domain::clock::new_id(),
                assigned_to: assignment.as_ref().map(|a| a.assigned_to.clone()),
                assigned_by: assignment.map(|a| actor_label(&names, a.assigned_by)),
                assignable,
                canned,
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
    use heimdall_domain::channels::formatting::{self, SmsEncoding, TextFormat};
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let ch: heimdall_domain::Channel = channel
                .parse()
                .map_err(|_| AppError::invalid("channel", "Unknown channel."))?;
            if formatting::whatsapp_len(&text) > heimdall_domain::sending::outbound::MAX_TEXT_CHARS
            {
                return Err(AppError::invalid(
                    "text",
                    format!(
                        "The message is longer than {} characters.",
                        heimdall_domain::sending::outbound::MAX_TEXT_CHARS
                    ),
                ));
            }
            let destination = heimdall_domain::sending::outbound::destination(ctx.core(), ch);
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
    /// An attachment: a public https link the provider fetches (an image, a PDF...).
    #[server(default)]
    media_url: String,
    /// A canned reply, used when the text is empty (without JavaScript, choosing one
    /// cannot fill the box).
    #[server(default)]
    canned_id: String,
    /// The person's message the reply quotes (the checkbox carries its id).
    #[server(default)]
    quote: String,
    /// Choices, one per line: the reply goes with them as quick-reply buttons (WhatsApp,
    /// up to three), or as a list when `list_button` names the list's button.
    #[server(default)]
    choices: String,
    #[server(default)] list_button: String,
) -> Result<ReplyResult, AppError> {
    use crate::server::*;
    use heimdall_domain::sending::outbound::RequestedContent;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let id = check_id(&contact_id, "contact")?;
            let channel: heimdall_domain::Channel = channel
                .parse()
                .map_err(|_| AppError::invalid("channel", "Unknown channel."))?;
            let (content, field) = match mode.as_str() {
                "text" => {
                    let text = match optional(Some(canned_id)) {
                        Some(cid) if text.trim().is_empty() => {
                            let cid = check_id(&cid, "canned reply")?;
                            heimdall_domain::inbox::canned_reply(ctx.core(), &cid)
                                .await
                                .map_err(internal)?
                                .map(|r| r.body)
                                .ok_or_else(|| {
                                    AppError::invalid("canned_id", "That canned reply is gone.")
                                })?
                        }
                        _ => text,
                    };
                    let media_url = attachment(&ctx, &media_url)?;
                    let quote = match optional(Some(quote)) {
                        Some(q) => Some(check_id(&q, "quoted message")?),
                        None => None,
                    };
                    if let Some(content) = interactive(&text, &choices, &list_button)? {
                        if media_url.is_some() {
                            return Err(AppError::invalid(
                                "media_url",
                                "An attachment cannot go with buttons or a list: send it on its own.",
                            ));
                        }
                        let request = RequestedContent::Interactive {
                            content,
                            reply_to: quote,
                        };
                        return send_reply(&ctx, id, channel, request, "choices", &reply_key).await;
                    }
                    let body = if media_url.is_some() && text.trim().is_empty() {
                        String::new()
                    } else {
                        required(
                            "text",
                            "The message",
                            &text,
                            heimdall_domain::sending::outbound::MAX_TEXT_CHARS,
                        )?
                    };
                    (
                        RequestedContent::Text {
                            body,
                            media_url,
                            format: heimdall_domain::channels::formatting::TextFormat::Markdown,
                            reply_to: quote,
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
            send_reply(&ctx, id, channel, content, field, &reply_key).await
        }
        .await,
    )
}

/// The reply's buttons or list from the form: none when no choice is given.
#[cfg(feature = "ssr")]
fn interactive(
    text: &str,
    choices: &str,
    list_button: &str,
) -> Result<Option<heimdall_domain::channels::interactive::Interactive>, AppError> {
    use heimdall_domain::channels::interactive::InteractiveSpec;
    let lines: Vec<String> = choices
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    if lines.is_empty() {
        if !list_button.trim().is_empty() {
            return Err(AppError::invalid(
                "choices",
                "Give the list's choices, one per line.",
            ));
        }
        return Ok(None);
    }
    if text.trim().is_empty() {
        return Err(AppError::invalid(
            "text",
            "Write the message the choices answer.",
        ));
    }
    let button = Some(list_button.trim()).filter(|b| !b.is_empty());
    InteractiveSpec::from_choices(text, &lines, button)
        .parse()
        .map(Some)
        .map_err(|e| AppError::invalid("choices", crate::server::capitalise(&e.to_string())))
}

/// Accept a staff reply, audit it and say what became of it.
#[cfg(feature = "ssr")]
async fn send_reply(
    ctx: &crate::server::Ctx,
    id: String,
    channel: heimdall_domain::Channel,
    content: heimdall_domain::sending::outbound::RequestedContent,
    field: &'static str,
    reply_key: &str,
) -> Result<ReplyResult, AppError> {
    use crate::server::*;
    use heimdall_domain::compliance::gates::Decision;
    use heimdall_domain::sending::outbound::{self, AcceptError, Origin, Recipient, SendRequest};
    let key = check_id(reply_key, "reply form")
        .map_err(|_| AppError::invalid("", "Reload the page and try again."))?;
    let outcome = outbound::accept(
        ctx.core(),
        SendRequest {
            recipient: Recipient::Contact(id.clone()),
            channel,
            content,
            origin: Origin::Inbox {
                staff: ctx.user().clone(),
                ip: ctx.ip().await,
            },
            idempotency_key: Some(format!("inbox:{}:{key}", ctx.user().id)),
            purpose: None,
        },
    )
    .await
    .map_err(|e| match e {
        AcceptError::BadRequest(m) => AppError::invalid(field, m),
        AcceptError::ContactNotFound(_) => AppError::NotFound("No contact with that id.".into()),
        AcceptError::Db(e) => internal(e),
    })?;
    // Its `inbox_reply` staff audit row went in with the message (`accept`).
    let decision = outcome.decision.decision;
    match decision {
        Decision::Block { reason } => Err(AppError::Refused {
            reason: reason.code().to_string(),
            message: outcome.decision.explanation(),
        }),
        Decision::Defer { reason, until } => Ok(ReplyResult {
            message_id: outcome.message_id,
            state: outcome.state,
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
            state: outcome.state,
        }),
    }
}

/// The console's answer to a team-inbox error: bad input beside its field, a missing
/// thing as 404 (`missing` says what), an outage as 500, a refusal as 409.
#[cfg(feature = "ssr")]
fn inbox_error(e: heimdall_domain::inbox::InboxError, missing: &str) -> AppError {
    use crate::server::{capitalise, internal};
    use heimdall_domain::inbox::InboxError;
    match e {
        InboxError::NotFound(_) => AppError::NotFound(missing.to_string()),
        InboxError::Invalid { field, message } => AppError::invalid(field, capitalise(&message)),
        InboxError::Db(e) => internal(e),
        other => AppError::Conflict(capitalise(&other.to_string())),
    }
}

/// An attachment link as the providers take it: https (Twilio and Meta fetch it from the
/// internet, never from this machine), at most 2,000 characters, no spaces; or the link
/// of a file uploaded here (served by Heimdall itself, over its own scheme).
#[cfg(feature = "ssr")]
fn attachment(ctx: &crate::server::Ctx, url: &str) -> Result<Option<String>, AppError> {
    let url = url.trim();
    if url.is_empty() {
        return Ok(None);
    }
    if heimdall_domain::channels::attachments::is_ours(
        url,
        ctx.core().settings.public_base().as_str(),
    ) {
        return Ok(Some(url.to_string()));
    }
    if !url.starts_with("https://") || url.len() > 2000 || url.chars().any(char::is_whitespace) {
        return Err(AppError::invalid(
            "media_url",
            "Give a public https link to the file (an image, a PDF...).",
        ));
    }
    Ok(Some(url.to_string()))
}

/// Review a message that read as an opt-out in other words (operator): `opt_out` (it
/// was one; the suppression stands) or `not_opt_out` (it was not; the suppression still
/// stands until they send START, and the contact is flagged for someone to ask them).
#[server(prefix = "/_sf", endpoint = "inbox_review")]
pub async fn inbox_review(
    #[server(default)] csrf: String,
    id: String,
    outcome: String,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::inbox::ReviewOutcome;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let id = check_id(&id, "message")?;
            let outcome = match outcome.as_str() {
                "opt_out" => ReviewOutcome::OptOut,
                "not_opt_out" => ReviewOutcome::NotOptOut,
                _ => {
                    return Err(AppError::invalid(
                        "outcome",
                        "Say whether it was an opt-out.",
                    ))
                }
            };
            let m = heimdall_domain::inbox::review_possible_opt_out(
                ctx.core(),
                &id,
                outcome,
                &ctx.actor(),
            )
            .await
            .map_err(|e| inbox_error(e, "No such message."))?;
            ctx.audit(
                "inbound_reviewed",
                Some(&format!("contact:{}", m.contact_id)),
                Some(serde_json::json!({ "message_id": id, "outcome": outcome.as_str() })),
            )
            .await
        }
        .await,
    )
}

/// Assign a conversation to a staff member who may reply, or unassign it (empty `to`).
#[server(prefix = "/_sf", endpoint = "inbox_assign")]
pub async fn inbox_assign(
    #[server(default)] csrf: String,
    contact_id: String,
    #[server(default)] to: String,
) -> Result<(), AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let id = check_id(&contact_id, "contact")?;
            let to = optional(Some(to));
            heimdall_domain::inbox::assign(ctx.core(), &id, to.as_deref(), &ctx.actor())
                .await
                .map_err(|e| inbox_error(e, "No contact with that id."))?;
            ctx.audit(
                "conversation_assigned",
                Some(&format!("contact:{id}")),
                Some(serde_json::json!({ "to": to })),
            )
            .await
        }
        .await,
    )
}

/// Keep a reply for reuse (operator).
#[server(prefix = "/_sf", endpoint = "canned_create")]
pub async fn canned_create(
    #[server(default)] csrf: String,
    title: String,
    body: String,
) -> Result<(), AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let r = heimdall_domain::inbox::create_canned_reply(
                ctx.core(),
                &title,
                &body,
                &ctx.actor(),
            )
            .await
            .map_err(|e| inbox_error(e, "No such canned reply."))?;
            ctx.audit(
                "canned_reply_created",
                Some(&format!("canned_reply:{}", r.id)),
                Some(serde_json::json!({ "title": r.title })),
            )
            .await
        }
        .await,
    )
}

/// Delete a canned reply (operator).
#[server(prefix = "/_sf", endpoint = "canned_delete")]
pub async fn canned_delete(#[server(default)] csrf: String, id: String) -> Result<(), AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Operator, &csrf).await?;
            let id = check_id(&id, "canned reply")?;
            let r = heimdall_domain::inbox::delete_canned_reply(ctx.core(), &id)
                .await
                .map_err(|e| inbox_error(e, "No such canned reply."))?;
            ctx.audit(
                "canned_reply_deleted",
                Some(&format!("canned_reply:{id}")),
                Some(serde_json::json!({ "title": r.title })),
            )
            .await
        }
        .await,
    )
}

/// What waits for someone: unread conversations (and those assigned to me), messages
/// to review. For the navigation.
#[server(prefix = "/_sf", endpoint = "inbox_counts")]
pub async fn inbox_counts() -> Result<InboxCountsView, AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let c = heimdall_domain::inbox::counts(ctx.core(), &ctx.me().email)
                .await
                .map_err(internal)?;
            Ok(InboxCountsView {
                unread: c.unread,
                unread_mine: c.unread_mine,
                to_review: c.to_review,
            })
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
            heimdall_domain::sending::outbound::MAX_TEXT_CHARS
        );
    }
}

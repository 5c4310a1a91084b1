//! The inbox: threads newest first, one person's conversation, and the
//! reply box (free text inside the 24-hour window, an approved template
//! outside it) with the window's remaining time.

use heimdall_codes::MessageState;
use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::inbox::{
    inbox_conversation, inbox_threads, CannedCreate, CannedDelete, ConversationEntry,
    ConversationView, InboxAssign, InboxPreview, InboxReply, InboxReview, ReplyPreview,
};
use crate::components::{
    both, error_of, error_view, poll_every, reset_on_success, use_me, when, Badge, Countdown, Csrf,
    FieldError, FormError, Loading, PageTitle,
};
use crate::model::{reason_label, Me, Role};
use crate::pages::templates::AnnotatedBody;

#[component]
pub fn InboxPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").filter(|s| !s.is_empty());
    let tick = poll_every(10);
    let threads = Resource::new(move || tick.get(), |_| inbox_threads());
    view! {
        <PageTitle title="Inbox"/>
        <div class="inbox">
            <section class="threads card" aria-label="Conversations">
                <Transition fallback=Loading>
                    {move || Suspend::new(async move {
                        let current = id().unwrap_or_default();
                        match threads.await {
                            Err(e) => error_view(e),
                            Ok(list) if list.is_empty() => view! { <p class="empty">"No messages from anyone yet."</p> }.into_any(),
                            Ok(list) => view! {
                                <ul class="thread-list" id="threads">
                                    {list.into_iter().map(|t| {
                                        let label = t.name.clone().unwrap_or_else(|| t.phone.clone());
                                        let href = format!("/inbox/{}", t.contact_id);
                                        let active = t.contact_id == current;
                                        view! {
                                            <li class:active=active>
                                                <a href=href aria-current=active.then_some("page")>
                                                    <span class="thread-name">{label}</span>
                                                    {(t.unread > 0).then(|| view! { <span class="badge badge-unread">{t.unread}</span> })}
                                                    {t.needs_review.then(|| view! { <span class="badge badge-review">"check"</span> })}
                                                    {t.assigned_to.clone().map(|a| view! { <span class="thread-assignee small">{format!("→ {a}")}</span> })}
                                                    <span class="thread-text">{t.last_text.unwrap_or_default()}</span>
                                                    <span class="thread-meta">{when(&t.last_at)} " · " {t.channel}
                                                        {if t.window.in_window { " · window open" } else { "" }}</span>
                                                </a>
                                            </li>
                                        }
                                    }).collect_view()}
                                </ul>
                            }.into_any(),
                        }
                    })}
                </Transition>
            </section>
            <section class="conversation card" aria-label="Conversation">
                {move || match id() {
                    Some(id) => view! { <Conversation id=id/> }.into_any(),
                    None => view! { <p class="muted">"Choose a conversation."</p> }.into_any(),
                }}
            </section>
        </div>
    }
}

#[component]
fn Conversation(id: String) -> impl IntoView {
    let me = use_me();
    let reply = ServerAction::<InboxReply>::new();
    let actions = TeamActions {
        review: ServerAction::<InboxReview>::new(),
        assign: ServerAction::<InboxAssign>::new(),
        canned_create: ServerAction::<CannedCreate>::new(),
        canned_delete: ServerAction::<CannedDelete>::new(),
    };
    let query = use_query_map();
    let chosen = move || query.read().get("template").filter(|s| !s.is_empty());
    // Back from an upload: the file's link for the reply, or why it was refused.
    let upload = move || Upload {
        url: query.read().get("attachment").filter(|s| !s.is_empty()),
        error: query
            .read()
            .get("attachment_error")
            .filter(|s| !s.is_empty()),
    };
    let conv = Resource::new(
        {
            let id = id.clone();
            move || {
                (
                    id.clone(),
                    reply.version().get(),
                    actions.review.version().get(),
                    actions.assign.version().get(),
                    actions.canned_create.version().get() + actions.canned_delete.version().get(),
                )
            }
        },
        |(id, ..)| inbox_conversation(id),
    );
    // After a reply went, empty the box for the next one.
    let form = reset_on_success(reply);
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, c) = match both(me.await, conv.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                let chosen = chosen();
                let upload = upload();
                view! { <ConversationBody me=me c=c reply=reply chosen=chosen form=form actions=actions upload=upload/> }.into_any()
            })}
        </Transition>
    }
}

/// An attachment uploaded for the reply (its link), or why it was refused.
#[derive(Clone, Default)]
struct Upload {
    url: Option<String>,
    error: Option<String>,
}

/// What a team does with a conversation besides replying.
#[derive(Clone, Copy)]
struct TeamActions {
    review: ServerAction<InboxReview>,
    assign: ServerAction<InboxAssign>,
    canned_create: ServerAction<CannedCreate>,
    canned_delete: ServerAction<CannedDelete>,
}

#[component]
fn ConversationBody(
    me: Me,
    c: ConversationView,
    reply: ServerAction<InboxReply>,
    chosen: Option<String>,
    form: NodeRef<leptos::html::Form>,
    actions: TeamActions,
    upload: Upload,
) -> impl IntoView {
    let err = error_of(reply);
    let review_err = error_of(actions.review);
    let assign_err = error_of(actions.assign);
    let canned_err = error_of(actions.canned_create);
    let done = Signal::derive(move || reply.value().get().and_then(|r| r.ok()));
    let name = c
        .contact
        .name
        .clone()
        .unwrap_or_else(|| c.contact.phone.clone());
    let window = c.window.clone();
    let can_reply = me.can(Role::Operator);
    let selected = chosen.and_then(|n| c.templates.iter().find(|t| t.name == n).cloned());
    let here = format!("/inbox/{}", c.contact.id);
    let window_note = if window.in_window {
        view! {
            <p class="window open" id="window-state">
                "The 24-hour window is open: free text may go for another "
                <Countdown seconds=window.seconds_remaining/> "."
            </p>
        }
        .into_any()
    } else {
        view! {
            <p class="window closed" id="window-state">
                "The 24-hour window is closed: only an approved template may go until they write again."
            </p>
        }
        .into_any()
    };
    let csrf = me.csrf.clone();
    let last_inbound = c.entries.iter().rev().find_map(|e| match e {
        ConversationEntry::Inbound { id, .. } => Some(id.clone()),
        _ => None,
    });
    let whatsapp = c.channel == "whatsapp";
    let reply_box = can_reply.then(|| {
        let common = view! {
            <Csrf token=csrf.clone()/>
            <input type="hidden" name="contact_id" value=c.contact.id.clone()/>
            <input type="hidden" name="channel" value=c.channel.clone()/>
            <input type="hidden" name="reply_key" value=c.reply_key.clone()/>
        };
        let chooser = view! {
            <form method="get" action=here.clone() class="inline-form">
                <label for="template">"Template"</label>
                <select id="template" name="template">
                    <option value="">"Choose…"</option>
                    {c.templates.iter().map(|t| {
                        let is = selected.as_ref().is_some_and(|s| s.name == t.name);
                        view! { <option value=t.name.clone() selected=is>{t.name.clone()}</option> }
                    }).collect_view()}
                </select>
                <button type="submit">"Use this template"</button>
            </form>
        };
        let body = if window.in_window && selected.is_none() {
            let draft = RwSignal::new(String::new());
            let preview = ServerAction::<InboxPreview>::new();
            let preview_channel = c.channel.clone();
            let text_ref = NodeRef::<leptos::html::Textarea>::new();
            let canned_bodies: Vec<(String, String)> =
                c.canned.iter().map(|r| (r.id.clone(), r.body.clone())).collect();
            let canned_picker = (!c.canned.is_empty()).then(|| view! {
                <div class="field">
                    <label for="canned_id">"Canned reply"</label>
                    <select id="canned_id" name="canned_id"
                        on:change:target=move |ev| {
                            let id = ev.target().value();
                            if let Some((_, body)) = canned_bodies.iter().find(|(i, _)| *i == id) {
                                draft.set(body.clone());
                                if let Some(t) = text_ref.get_untracked() {
                                    t.set_value(body);
                                }
                            }
                        }>
                        <option value="">"None"</option>
                        {c.canned.iter().map(|r| view! { <option value=r.id.clone()>{r.title.clone()}</option> }).collect_view()}
                    </select>
                    <p class="hint small">"Fills the reply (without JavaScript: leave the reply empty and it is sent as is)."</p>
                </div>
            });
            let upload_form = view! {
                <form method="post" enctype="multipart/form-data" class="upload-form" id="upload-form"
                    action=format!("/inbox/{}/attachment", c.contact.id)>
                    <Csrf token=csrf.clone()/>
                    <div class="field">
                        <label for="attachment-file">"Attach a file (an image up to 5 MB; a PDF, video or audio up to 16 MB)"</label>
                        <input id="attachment-file" name="file" type="file" required
                            accept="image/jpeg,image/png,video/mp4,video/3gpp,audio/ogg,audio/mpeg,audio/aac,audio/amr,audio/mp4,application/pdf,.docx,.xlsx,.pptx"
                            aria-describedby="attachment-error"/>
                        {upload.error.clone().map(|e| view! { <p class="field-error" id="attachment-error" role="alert">{e}</p> })}
                    </div>
                    <button type="submit" id="upload-attachment">"Upload"</button>
                    {upload.url.clone().map(|u| view! { <p class="small ok" id="attachment-ready">"Attached: " <a href=u.clone() target="_blank" rel="noopener noreferrer">{u.rsplit('/').next().unwrap_or_default().to_string()}</a> " — it goes with the reply below."</p> })}
                </form>
            };
            view! {
                {upload_form}
                <ActionForm action=reply node_ref=form>
                    {common}
                    <input type="hidden" name="mode" value="text"/>
                    {canned_picker}
                    <div class="field">
                        <label for="text">"Reply"</label>
                        <textarea id="text" name="text" rows="3" maxlength=MAX_TEXT_CHARS node_ref=text_ref
                            aria-describedby="text-error text-hint"
                            on:input:target=move |ev| draft.set(ev.target().value())></textarea>
                        <p class="hint small" id="text-hint">"Markdown: **bold**, _italic_, lists. A long reply goes in several messages, in order; Preview shows them."</p>
                        <FieldError error=err field="text"/>
                    </div>
                    {last_inbound.clone().map(|id| view! {
                        <label class="choice" for="quote">
                            <input id="quote" name="quote" type="checkbox" value=id/>
                            "Quote their last message (shown above the reply on WhatsApp through Meta)"
                        </label>
                    })}
                    {whatsapp.then(|| view! {
                        <details class="choices">
                            <summary>"Add buttons or a list"</summary>
                            <div class="field">
                                <label for="choices">"Choices, one per line"</label>
                                <textarea id="choices" name="choices" rows="3" maxlength="2000"
                                    aria-describedby="choices-error choices-hint"></textarea>
                                <p class="hint small" id="choices-hint">"Up to three go as buttons under the reply (20 characters each). Name a list button below for up to ten (24 characters each). A tap comes back as their answer; nothing goes after a STOP."</p>
                                <FieldError error=err field="choices"/>
                            </div>
                            <div class="field">
                                <label for="list_button">"List button (makes a list)"</label>
                                <input id="list_button" name="list_button" type="text" maxlength="20" placeholder="e.g. Choose a time"/>
                            </div>
                        </details>
                    })}
                    <div class="field">
                        <label for="media_url">"Attachment (a public https link, or upload a file above)"</label>
                        <input id="media_url" name="media_url" type="url" maxlength="2000" placeholder="https://…" aria-describedby="media_url-error"
                            value=upload.url.clone().unwrap_or_default()/>
                        <FieldError error=err field="media_url"/>
                    </div>
                    <button type="button" id="preview-reply" disabled=move || preview.pending().get()
                        on:click=move |_| {
                            preview.dispatch(InboxPreview { channel: preview_channel.clone(), text: draft.get_untracked() });
                        }>"Preview"</button>
                    " "
                    <button type="submit" class="primary" disabled=move || reply.pending().get()>"Send reply"</button>
                </ActionForm>
                {move || preview.value().get().map(|r| match r {
                    Ok(p) => preview_view(p).into_any(),
                    Err(e) => view! { <p class="notice error" role="alert">{e.to_string()}</p> }.into_any(),
                })}
                <details>
                    <summary>"Or send a template"</summary>
                    {chooser}
                </details>
            }
            .into_any()
        } else {
            let form = selected.clone().map(|t| {
                let vars = t.variables.iter().enumerate().map(|(i, v)| {
                    let fid = format!("var-{i}");
                    view! {
                        <div class="field">
                            <label for=fid.clone()>{format!("{{{{{}}}}} {v}", i + 1)}</label>
                            <input id=fid type="text" name=format!("vars[{v}]")/>
                        </div>
                    }
                }).collect_view();
                view! {
                    <p class="template-body"><AnnotatedBody body=t.body.clone() variables=t.variables.clone()/></p>
                    <ActionForm action=reply>
                        {common}
                        <input type="hidden" name="mode" value="template"/>
                        <input type="hidden" name="template_name" value=t.name.clone()/>
                        {vars}
                        <FieldError error=err field="template_name"/>
                        <button type="submit" class="primary" disabled=move || reply.pending().get()>"Send template"</button>
                    </ActionForm>
                }
            });
            view! { {chooser} {form} }.into_any()
        };
        view! {
            <div class="reply-box" id="reply-box">
                <FormError error=err fields=&["text", "template_name", "media_url", "canned_id", "choices"]/>
                {move || done.get().map(|r| view! { <p class="notice ok" role="status">{r.note}</p> })}
                {body}
            </div>
        }
    });
    let assign_csrf = csrf.clone();
    let assign_contact = c.contact.id.clone();
    let current = c.assigned_to.clone();
    let assignable = c.assignable.clone();
    let assign_box = can_reply.then(move || {
        view! {
            <ActionForm action=actions.assign attr:class="inline-form" attr:id="assign-form">
                <Csrf token=assign_csrf/>
                <input type="hidden" name="contact_id" value=assign_contact/>
                <label for="assign-to">"Assigned to"</label>
                <select id="assign-to" name="to" aria-describedby="to-error">
                    <option value="" selected=current.is_none()>"Nobody"</option>
                    {assignable.iter().map(|e| {
                        let is = current.as_deref() == Some(e.as_str());
                        view! { <option value=e.clone() selected=is>{e.clone()}</option> }
                    }).collect_view()}
                </select>
                <button type="submit">"Assign"</button>
                <FieldError error=assign_err field="to"/>
            </ActionForm>
        }
    });
    let assigned_note = c.assigned_to.clone().map(|to| {
        view! {
            <p class="small muted" id="assigned">
                {format!("Assigned to {to}{}", c.assigned_by.clone().map(|b| format!(" by {b}")).unwrap_or_default())}
            </p>
        }
    });
    let canned_form = reset_on_success(actions.canned_create);
    let canned_csrf = csrf.clone();
    let canned_list = c.canned.clone();
    let canned_box = can_reply.then(move || {
        let csrf = canned_csrf;
        let rows = canned_list.into_iter().map(|r| {
            let csrf = csrf.clone();
            view! {
                <li>
                    <strong>{r.title.clone()}</strong> " " <span class="small muted">{format!("by {}", r.created_by)}</span>
                    <pre class="small">{r.body.clone()}</pre>
                    <ActionForm action=actions.canned_delete attr:class="inline-form">
                        <Csrf token=csrf/>
                        <input type="hidden" name="id" value=r.id.clone()/>
                        <button type="submit" class="link-button">"Delete"</button>
                    </ActionForm>
                </li>
            }
        }).collect_view();
        view! {
            <details id="canned-replies">
                <summary>"Canned replies"</summary>
                <ul class="plain">{rows}</ul>
                <ActionForm action=actions.canned_create node_ref=canned_form>
                    <FormError error=canned_err fields=&["title", "body"]/>
                    <Csrf token=csrf.clone()/>
                    <div class="field">
                        <label for="canned-title">"Title"</label>
                        <input id="canned-title" name="title" type="text" required maxlength="100" aria-describedby="title-error"/>
                        <FieldError error=canned_err field="title"/>
                    </div>
                    <div class="field">
                        <label for="canned-body">"Reply (Markdown)"</label>
                        <textarea id="canned-body" name="body" rows="2" required aria-describedby="body-error"></textarea>
                        <FieldError error=canned_err field="body"/>
                    </div>
                    <button type="submit">"Keep this reply"</button>
                </ActionForm>
            </details>
        }
    });
    let review_ctx = ReviewCtx {
        can: can_reply,
        csrf: csrf.clone(),
        action: actions.review,
    };
    view! {
        <h2>{name} " " <a class="small" href=format!("/contacts/{}", c.contact.id)>"contact page"</a></h2>
        <p class="muted"><code>{c.contact.phone.clone()}</code> " · replies go by " {c.channel.clone()}</p>
        {assigned_note}
        {assign_box}
        {window_note}
        <FormError error=review_err/>
        <ol class="chat" id="chat">
            {c.entries.into_iter().map(|e| entry(e, review_ctx.clone())).collect_view()}
        </ol>
        {reply_box}
        {canned_box}
    }
}

/// One answer to "was it an opt-out?".
#[component]
fn ReviewButton(
    action: ServerAction<InboxReview>,
    csrf: String,
    id: String,
    outcome: &'static str,
    label: &'static str,
) -> impl IntoView {
    view! {
        <ActionForm action=action attr:class="inline-form">
            <Csrf token=csrf/>
            <input type="hidden" name="id" value=id/>
            <input type="hidden" name="outcome" value=outcome/>
            <button type="submit">{label}</button>
        </ActionForm>
    }
}

/// What a flagged message's review buttons need.
#[derive(Clone)]
struct ReviewCtx {
    can: bool,
    csrf: String,
    action: ServerAction<InboxReview>,
}

/// The longest reply the box takes (what the send path accepts).
pub(crate) const MAX_TEXT_CHARS: usize = 16_384;

/// A reply as it would go, message by message.
fn preview_view(p: ReplyPreview) -> impl IntoView {
    let n = p.parts.len();
    let sms = p.channel == "sms";
    view! {
        <section class="reply-preview" id="reply-preview" aria-label="Preview">
            <h3>{match n {
                0 => "Nothing to send".to_string(),
                1 => "Goes as one message".to_string(),
                n => format!("Goes as {n} messages, in this order"),
            }}</h3>
            <ol>
                {p.parts.into_iter().enumerate().map(|(i, part)| {
                    let meta = match (part.encoding, part.segments) {
                        (Some(enc), Some(seg)) => format!(
                            "Part {} of {n} · {} of {} characters · SMS {enc}, {seg} segment{}",
                            i + 1, part.chars, p.max_chars, if seg == 1 { "" } else { "s" }
                        ),
                        _ => format!("Part {} of {n} · {} of {} characters", i + 1, part.chars, p.max_chars),
                    };
                    view! {
                        <li class="preview-part" data-part=i + 1>
                            <div class="small muted">{meta}</div>
                            <pre class="bubble preview-text">{part.text}</pre>
                        </li>
                    }
                }).collect_view()}
            </ol>
            {(!sms).then(|| view! { <p class="small muted">"As WhatsApp receives it: *bold*, _italic_, ~strike~."</p> })}
        </section>
    }
}

fn entry(e: ConversationEntry, review: ReviewCtx) -> impl IntoView {
    match e {
        ConversationEntry::Inbound {
            id,
            text,
            media,
            keyword_action,
            needs_review,
            review: reviewed,
            at,
        } => {
            let pending_review = needs_review && reviewed.is_none();
            let (rid, rcsrf, raction) = (id.clone(), review.csrf.clone(), review.action);
            let buttons = (pending_review && review.can).then(|| view! {
                <div class="review-actions" data-review=id.clone()>
                    <span class="small">"It stopped their messages when it came in. Was it an opt-out?"</span>
                    <ReviewButton action=raction csrf=rcsrf.clone() id=rid.clone() outcome="opt_out" label="Yes, an opt-out"/>
                    <ReviewButton action=raction csrf=rcsrf id=rid outcome="not_opt_out" label="No (they must send START)"/>
                </div>
            });
            view! {
            <li class="chat-in" data-inbound=id.clone()>
                <div class="bubble">
                    {text.unwrap_or_default()}
                    {(!media.is_empty()).then(|| view! { <div class="muted small">{format!("{} attachment(s)", media.len())}</div> })}
                </div>
                <div class="chat-meta">
                    <time>{when(&at)}</time>
                    {keyword_action.map(|k| view! { " · " <Badge state=k/> })}
                    {pending_review.then(|| view! { " · " <span class="warn-text">"may be an opt-out: check"</span> })}
                    {reviewed.map(|(by, at, outcome)| view! {
                        " · " <span class="reviewed small">{format!(
                            "reviewed by {by}, {}: {}",
                            when(&at),
                            if outcome == "opt_out" { "an opt-out" } else { "not an opt-out" }
                        )}</span>
                    })}
                </div>
                {buttons}
            </li>
            }
            .into_any()
        }
        ConversationEntry::Outbound {
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
            statuses,
        } => {
            let state_attr = state.as_str();
            let stopped = (state == MessageState::Cancelled)
                .then_some(error_message)
                .flatten();
            view! {
            <li class="chat-out" data-state=state_attr data-part=part.map(|(i, _)| i)>
                <div class="bubble">
                    {text.unwrap_or_else(|| template_name.clone().unwrap_or_default())}
                    {media_url.map(|u| view! { <div class="small attachment">"Attachment: " <a href=u.clone() rel="noopener noreferrer" target="_blank">{u.clone()}</a></div> })}
                </div>
                <div class="chat-meta">
                    <time>{when(&at)}</time> " · " <Badge state=state.as_str()/>
                    {part.map(|(i, n)| view! { " · " <span class="part-label">{format!("part {i} of {n}")}</span> })}
                    {stopped.map(|m| view! { " · " <span class="warn-text">{m}</span> })}
                    {block_reason.map(|r| view! { " " <code>{r.clone()}</code> <span class="small">{format!(" {}", reason_label(&r))}</span> })}
                    {error_code.map(|c| format!(" · error {c}"))}
                    " · " {source.as_str()} " · " {actor}
                    " · " <a class="receipt-link" href=format!("/messages/{id}/receipt") target="_blank" rel="external noopener">"Receipt"</a>
                    {(!statuses.is_empty()).then(|| {
                        let trail: Vec<String> = statuses.iter().map(|s| s.status.clone()).collect();
                        view! { <span class="small">{format!(" · {}", trail.join(" → "))}</span> }
                    })}
                </div>
            </li>
        }
        .into_any()
        }
    }
}

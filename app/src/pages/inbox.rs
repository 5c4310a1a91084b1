//! The inbox: threads newest first, one person's conversation, and the
//! reply box (free text inside the 24-hour window, an approved template
//! outside it) with the window's remaining time.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::inbox::{
    inbox_conversation, inbox_threads, ConversationEntry, ConversationView, InboxPreview,
    InboxReply, ReplyPreview,
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
    let query = use_query_map();
    let chosen = move || query.read().get("template").filter(|s| !s.is_empty());
    let conv = Resource::new(
        {
            let id = id.clone();
            move || (id.clone(), reply.version().get())
        },
        |(id, _)| inbox_conversation(id),
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
                view! { <ConversationBody me=me c=c reply=reply chosen=chosen form=form/> }.into_any()
            })}
        </Transition>
    }
}

#[component]
fn ConversationBody(
    me: Me,
    c: ConversationView,
    reply: ServerAction<InboxReply>,
    chosen: Option<String>,
    form: NodeRef<leptos::html::Form>,
) -> impl IntoView {
    let err = error_of(reply);
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
            view! {
                <ActionForm action=reply node_ref=form>
                    {common}
                    <input type="hidden" name="mode" value="text"/>
                    <div class="field">
                        <label for="text">"Reply"</label>
                        <textarea id="text" name="text" rows="3" required maxlength=MAX_TEXT_CHARS
                            aria-describedby="text-error text-hint"
                            on:input:target=move |ev| draft.set(ev.target().value())></textarea>
                        <p class="hint small" id="text-hint">"Markdown: **bold**, _italic_, lists. A long reply goes in several messages, in order; Preview shows them."</p>
                        <FieldError error=err field="text"/>
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
                <FormError error=err fields=&["text", "template_name"]/>
                {move || done.get().map(|r| view! { <p class="notice ok" role="status">{r.note}</p> })}
                {body}
            </div>
        }
    });
    view! {
        <h2>{name} " " <a class="small" href=format!("/contacts/{}", c.contact.id)>"contact page"</a></h2>
        <p class="muted"><code>{c.contact.phone.clone()}</code> " · replies go by " {c.channel.clone()}</p>
        {window_note}
        <ol class="chat" id="chat">
            {c.entries.into_iter().map(entry).collect_view()}
        </ol>
        {reply_box}
    }
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

fn entry(e: ConversationEntry) -> impl IntoView {
    match e {
        ConversationEntry::Inbound {
            text,
            media,
            keyword_action,
            needs_review,
            at,
        } => view! {
            <li class="chat-in">
                <div class="bubble">
                    {text.unwrap_or_default()}
                    {(!media.is_empty()).then(|| view! { <div class="muted small">{format!("{} attachment(s)", media.len())}</div> })}
                </div>
                <div class="chat-meta">
                    <time>{when(&at)}</time>
                    {keyword_action.map(|k| view! { " · " <Badge state=k/> })}
                    {needs_review.then(|| view! { " · " <span class="warn-text">"may be an opt-out: check"</span> })}
                </div>
            </li>
        }
        .into_any(),
        ConversationEntry::Outbound {
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
            statuses,
        } => {
            let state_attr = state.clone();
            let stopped = (state == "cancelled").then_some(error_message).flatten();
            view! {
            <li class="chat-out" data-state=state_attr data-part=part.map(|(i, _)| i)>
                <div class="bubble">{text.unwrap_or_else(|| template_name.clone().unwrap_or_default())}</div>
                <div class="chat-meta">
                    <time>{when(&at)}</time> " · " <Badge state=state/>
                    {part.map(|(i, n)| view! { " · " <span class="part-label">{format!("part {i} of {n}")}</span> })}
                    {stopped.map(|m| view! { " · " <span class="warn-text">{m}</span> })}
                    {block_reason.map(|r| view! { " " <code>{r.clone()}</code> <span class="small">{format!(" {}", reason_label(&r))}</span> })}
                    {error_code.map(|c| format!(" · error {c}"))}
                    " · " {source} " · " {actor}
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

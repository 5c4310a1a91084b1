//! Contact pages: search, and one person's consents (with evidence),
//! suppressions (with origin), service-window countdowns, and every
//! message with its gate verdicts and status history.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::contacts::{
    contact_detail, contacts_search, ConsentView, ContactCreate, ContactEdit, ContactErase,
    ContactSuppress, ContactView, MessageRow,
};
use crate::api::forms::{consents_import_report, ConsentsImport};
use crate::components::{
    both, error_of, error_view, use_me, when, when_opt, Badge, Countdown, Csrf, FieldError,
    FormError, Loading, PageTitle,
};
use crate::model::{reason_label, Me, Role};
use crate::pages::forms::{ImportForm, ImportReport};

#[component]
pub fn ContactsPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || query.read().get("q").unwrap_or_default();
    let results = Resource::new(q, |q| contacts_search(Some(q)));
    let me = use_me();
    let create = ServerAction::<ContactCreate>::new();
    let import = ServerAction::<ConsentsImport>::new();
    let report = Resource::new(move || import.version().get(), |_| consents_import_report());
    view! {
        <PageTitle title="Contacts"/>
        <Transition fallback=|| ()>
            {move || Suspend::new(async move {
                let Ok(me) = me.await else { return ().into_any() };
                let report = report.await.ok().flatten();
                view! {
                    {me.can(Role::Operator).then(|| view! { <NewContactForm me=me.clone() create=create/> })}
                    {report.map(|r| view! { <ImportReport r=r/> })}
                    {me.can(Role::Admin).then(|| view! { <ImportForm me=me.clone() import=import/> })}
                }.into_any()
            })}
        </Transition>
        <form method="get" action="/contacts" class="inline-form search" role="search">
            <label for="q">"Phone or name"</label>
            <input id="q" name="q" type="search" value=q placeholder="+47… or Kari"/>
            <button type="submit">"Search"</button>
        </form>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                match results.await {
                    Err(e) => error_view(e),
                    Ok(list) if list.is_empty() => view! { <p class="empty">"No contacts found."</p> }.into_any(),
                    Ok(list) => view! {
                        <div class="table-wrap">
                            <table class="data" id="contacts">
                                <thead><tr>
                                    <th scope="col">"Name"</th><th scope="col">"Phone"</th>
                                    <th scope="col">"Tags"</th><th scope="col">"Added"</th>
                                </tr></thead>
                                <tbody>
                                    {list.into_iter().map(|c| {
                                        let label = c.name.clone().unwrap_or_else(|| "(no name)".into());
                                        view! {
                                            <tr>
                                                <th scope="row"><a href=format!("/contacts/{}", c.id)>{label}</a></th>
                                                <td><code>{c.phone}</code></td>
                                                <td>{c.tags.join(", ")}</td>
                                                <td>{when(&c.created_at)}</td>
                                            </tr>
                                        }
                                    }).collect_view()}
                                </tbody>
                            </table>
                        </div>
                    }.into_any(),
                }
            })}
        </Transition>
    }
}

/// Add a contact, with the consent staff vouch for and its evidence (the fields the API
/// requires of a staff source).
#[component]
fn NewContactForm(me: Me, create: ServerAction<ContactCreate>) -> impl IntoView {
    let err = error_of(create);
    view! {
        <details class="card" id="new-contact" open=move || err.get().is_some()>
            <summary><h2>"Add a contact"</h2></summary>
            <ActionForm action=create>
                <FormError error=err fields=&["phone", "name", "tags", "time_zone", "consent_channel", "consent_text_version", "page_url", "ip", "user_agent"]/>
                <Csrf token=me.csrf.clone()/>
                <div class="grid-2">
                    <div class="field">
                        <label for="new-phone">"Phone (E.164, or national)"</label>
                        <input id="new-phone" name="phone" type="tel" required maxlength="40" placeholder="+4791234567" aria-describedby="phone-error"/>
                        <FieldError error=err field="phone"/>
                    </div>
                    <div class="field">
                        <label for="new-name">"Name"</label>
                        <input id="new-name" name="name" type="text" maxlength="200" aria-describedby="name-error"/>
                        <FieldError error=err field="name"/>
                    </div>
                    <div class="field">
                        <label for="new-tags">"Tags (comma-separated)"</label>
                        <input id="new-tags" name="tags" type="text" maxlength="500" placeholder="customers, oslo"/>
                    </div>
                    <div class="field">
                        <label for="new-tz">"Time zone (IANA; empty: from the number)"</label>
                        <input id="new-tz" name="time_zone" type="text" maxlength="64" placeholder="Europe/Oslo" aria-describedby="time_zone-error"/>
                        <FieldError error=err field="time_zone"/>
                    </div>
                </div>
                <fieldset class="field">
                    <legend>"Consent you vouch for (recorded with your name as the source: staff)"</legend>
                    <div class="field">
                        <label for="consent_channel">"Opt-in"</label>
                        <select id="consent_channel" name="consent_channel" aria-describedby="consent_channel-error">
                            <option value="whatsapp">"WhatsApp"</option>
                            <option value="sms">"SMS"</option>
                            <option value="">"None now (the contact gets no messages but replies)"</option>
                        </select>
                        <FieldError error=err field="consent_channel"/>
                    </div>
                    <div class="grid-2">
                        <div class="field">
                            <label for="consent_text_version">"Consent text version (required)"</label>
                            <input id="consent_text_version" name="consent_text_version" type="text" maxlength="100" placeholder="front-desk-v1" aria-describedby="consent_text_version-error"/>
                            <FieldError error=err field="consent_text_version"/>
                        </div>
                        <div class="field">
                            <label for="page_url">"Where the proof is (a link to the signed form, recording or page)"</label>
                            <input id="page_url" name="page_url" type="url" maxlength="2000" placeholder="https://…" aria-describedby="page_url-error"/>
                            <FieldError error=err field="page_url"/>
                        </div>
                    </div>
                    <div class="field">
                        <label for="consent_text">"The text they agreed to (its SHA-256 is kept with it)"</label>
                        <textarea id="consent_text" name="consent_text" rows="2" maxlength="5000"></textarea>
                    </div>
                    <p class="muted small">"Or, if they agreed on a web page of yours, its IP address and user agent:"</p>
                    <div class="grid-2">
                        <div class="field">
                            <label for="ip">"IP address"</label>
                            <input id="ip" name="ip" type="text" maxlength="64" aria-describedby="ip-error"/>
                            <FieldError error=err field="ip"/>
                        </div>
                        <div class="field">
                            <label for="user_agent">"User agent"</label>
                            <input id="user_agent" name="user_agent" type="text" maxlength="500" aria-describedby="user_agent-error"/>
                            <FieldError error=err field="user_agent"/>
                        </div>
                    </div>
                    <label class="choice" for="pending">
                        <input id="pending" name="pending" type="checkbox" value="on"/>
                        "Pending until they confirm from their number (they reply YES)"
                    </label>
                </fieldset>
                <p class="muted small">"A number that opted out earlier stays opted out: the consent is kept pending until they send START."</p>
                <button type="submit" class="primary" disabled=move || create.pending().get()>"Add contact"</button>
            </ActionForm>
        </details>
    }
}

/// Change a contact's name, tags, time zone and fields.
#[component]
fn EditContactForm(
    me: Me,
    c: crate::api::contacts::ContactRow,
    edit: ServerAction<ContactEdit>,
) -> impl IntoView {
    let err = error_of(edit);
    let fields = c
        .attributes
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    let saved = move || edit.value().get().is_some_and(|r| r.is_ok());
    view! {
        <details class="card" id="edit-contact" open=move || edit.value().get().is_some()>
            <summary><h2>"Edit"</h2></summary>
            <ActionForm action=edit>
                <FormError error=err fields=&["name", "time_zone", "fields"]/>
                <Csrf token=me.csrf.clone()/>
                <input type="hidden" name="id" value=c.id.clone()/>
                <div class="grid-2">
                    <div class="field">
                        <label for="edit-name">"Name"</label>
                        <input id="edit-name" name="name" type="text" maxlength="200" value=c.name.clone().unwrap_or_default() aria-describedby="name-error"/>
                        <FieldError error=err field="name"/>
                    </div>
                    <div class="field">
                        <label for="edit-tags">"Tags (comma-separated)"</label>
                        <input id="edit-tags" name="tags" type="text" maxlength="500" value=c.tags.join(", ")/>
                    </div>
                    <div class="field">
                        <label for="edit-tz">"Time zone (IANA; empty: from the number)"</label>
                        <input id="edit-tz" name="time_zone" type="text" maxlength="64" value=c.time_zone.clone().unwrap_or_default() aria-describedby="time_zone-error"/>
                        <FieldError error=err field="time_zone"/>
                    </div>
                    <div class="field">
                        <label for="edit-fields">"Fields (name=value, one per line; templates can use them)"</label>
                        <textarea id="edit-fields" name="fields" rows="3" aria-describedby="fields-error">{fields}</textarea>
                        <FieldError error=err field="fields"/>
                    </div>
                </div>
                <button type="submit" class="primary" disabled=move || edit.pending().get()>"Save"</button>
                {move || saved().then(|| view! { <span class="notice ok inline" role="status">"Saved."</span> })}
            </ActionForm>
        </details>
    }
}

/// Erase the person (admins only): a reason and a confirmation, then the
/// page shows what is left.
#[component]
fn EraseForm(me: Me, id: String, erase: ServerAction<ContactErase>) -> impl IntoView {
    let err = error_of(erase);
    view! {
        <details class="card danger-zone" id="erase-contact" open=move || erase.value().get().is_some()>
            <summary><h2>"Erase this person"</h2></summary>
            <p class="muted">"Erases their name, fields, message texts, inbound texts, consent evidence (IP address, user agent, page), stored media and their number everywhere it is stored. What stays: a keyed hash of the number, so their opt-out is still honoured (only START from the number lifts it), and the audit trail with the number replaced by that hash. This cannot be undone."</p>
            <ActionForm action=erase>
                <FormError error=err fields=&["reason", "confirm"]/>
                <Csrf token=me.csrf.clone()/>
                <input type="hidden" name="id" value=id/>
                <div class="field">
                    <label for="erase-reason">"Why (kept in the audit log)"</label>
                    <input id="erase-reason" name="reason" type="text" required maxlength="500" aria-describedby="reason-error" placeholder="Erasure request received by email on …"/>
                    <FieldError error=err field="reason"/>
                </div>
                <label class="choice" for="erase-confirm">
                    <input id="erase-confirm" name="confirm" type="checkbox" value="on" required aria-describedby="confirm-error"/>
                    "I understand this erases the person's data for good"
                </label>
                <FieldError error=err field="confirm"/>
                <button type="submit" class="danger" disabled=move || erase.pending().get()>"Erase this person"</button>
            </ActionForm>
        </details>
    }
}

#[component]
pub fn ContactPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let me = use_me();
    let suppress = ServerAction::<ContactSuppress>::new();
    let edit = ServerAction::<ContactEdit>::new();
    let erase = ServerAction::<ContactErase>::new();
    let detail = Resource::new(
        move || {
            (
                id(),
                suppress.version().get(),
                edit.version().get(),
                erase.version().get(),
            )
        },
        |(id, _, _, _)| contact_detail(id),
    );
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, d) = match both(me.await, detail.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                view! { <ContactBody me=me d=d suppress=suppress edit=edit erase=erase/> }.into_any()
            })}
        </Transition>
    }
}

#[component]
fn ContactBody(
    me: Me,
    d: ContactView,
    suppress: ServerAction<ContactSuppress>,
    edit: ServerAction<ContactEdit>,
    erase: ServerAction<ContactErase>,
) -> impl IntoView {
    let c = d.contact.clone();
    let title = if c.erased {
        "Erased contact".to_string()
    } else {
        c.name.clone().unwrap_or_else(|| c.phone.clone())
    };
    let err = error_of(suppress);
    let standing = d
        .standing
        .iter()
        .map(|st| {
            let ch = &st.channel;
            let consent_text = st.consent.map_or("none", |c| c.as_str());
            let suppression = st.suppression.clone();
            let window = d.windows.iter().find(|w| w.channel == *ch).cloned();
            view! {
                <div class="standing card" data-channel=ch.clone() data-purpose=st.purpose.clone()>
                    <h3>{if ch == "sms" { "SMS" } else { "WhatsApp" }} " · " {st.purpose.clone()}</h3>
                    <dl>
                        <dt>"Consent"</dt><dd><Badge state=consent_text/></dd>
                        <dt>"Suppression"</dt>
                        <dd class="suppression-state">
                            {match suppression {
                                Some(s) => view! {
                                    <Badge state="suppressed"/>
                                    " " {format!("origin: {}", s.origin)}
                                    {s.source_ref.map(|r| view! { <div class="muted small">{r}</div> })}
                                }.into_any(),
                                None => view! { <span>"not suppressed"</span> }.into_any(),
                            }}
                        </dd>
                        <dt>"Service window"</dt>
                        <dd>
                            {match window {
                                Some(w) if w.in_window => view! {
                                    <span>"open, closes in " <Countdown seconds=w.seconds_remaining/></span>
                                }.into_any(),
                                Some(w) => view! { <span>"closed (last message " {when_opt(&w.last_inbound)} ")"</span> }.into_any(),
                                None => view! { <span>"no message from them yet"</span> }.into_any(),
                            }}
                        </dd>
                    </dl>
                </div>
            }
        })
        .collect_view();
    let can_suppress = me.can(Role::Operator) && !c.erased;
    let suppress_form = can_suppress.then(|| {
        let csrf = me.csrf.clone();
        let id = c.id.clone();
        view! {
            <section class="card">
                <h2>"Suppress by hand"</h2>
                <p class="muted">"Nothing more is sent to this person on the channel until they send START from their own number."</p>
                <ActionForm action=suppress>
                    <FormError error=err fields=&["channel", "note"]/>
                    <Csrf token=csrf/>
                    <input type="hidden" name="id" value=id/>
                    <div class="field">
                        <label for="channel">"Channel"</label>
                        <select id="channel" name="channel">
                            <option value="all">"Every channel"</option>
                            <option value="whatsapp">"WhatsApp"</option>
                            <option value="sms">"SMS"</option>
                        </select>
                        <FieldError error=err field="channel"/>
                    </div>
                    <div class="field">
                        <label for="note">"Why (kept with the suppression)"</label>
                        <input id="note" name="note" type="text" required maxlength="500" aria-describedby="note-error"/>
                        <FieldError error=err field="note"/>
                    </div>
                    <button type="submit" class="danger">"Suppress"</button>
                </ActionForm>
            </section>
        }
    });
    let attrs = c
        .attributes
        .iter()
        .map(|(k, v)| view! { <li><code>{k.clone()}</code> ": " {v.clone()}</li> })
        .collect_view();
    let erased_notice = c.erased.then(|| {
        view! {
            <section class="card notice" id="erased-notice" role="status">
                <h2>"This person was erased"</h2>
                <p>"Their name, fields, message texts, consent evidence and number were erased. Only a keyed hash of the number is kept, so their opt-out stays in force: nothing is sent to that number again until the person sends START from it."</p>
            </section>
        }
    });
    let erase_form = (me.can(Role::Admin) && !c.erased)
        .then(|| view! { <EraseForm me=me.clone() id=c.id.clone() erase=erase/> });
    view! {
        <PageTitle title=title/>
        {erased_notice}
        <section class="card">
            <dl class="summary">
                <dt>"Phone"</dt><dd><code id="contact-phone">{c.phone.clone()}</code></dd>
                <dt>"Name"</dt><dd>{c.name.clone().unwrap_or_default()}</dd>
                <dt>"Tags"</dt><dd>{c.tags.join(", ")}</dd>
                <dt>"Time zone"</dt><dd>{c.time_zone.clone().unwrap_or_else(|| "(the default setting)".into())}</dd>
                <dt>"Fields"</dt>
                <dd>{if c.attributes.is_empty() {
                    view! { <span class="muted">"none"</span> }.into_any()
                } else {
                    view! { <ul class="plain">{attrs}</ul> }.into_any()
                }}</dd>
                {c.needs_manual_outreach.then(|| view! {
                    <dt>"Needs a person"</dt>
                    <dd class="warn-text">{c.manual_outreach_reason.clone().unwrap_or_else(|| "manual outreach".into())}</dd>
                })}
            </dl>
            <p><a href=format!("/inbox/{}", c.id)>"Open the conversation"</a></p>
        </section>
        {(me.can(Role::Operator) && !c.erased).then(|| view! { <EditContactForm me=me.clone() c=c.clone() edit=edit/> })}
        <div class="grid-2" id="standing">{standing}</div>
        {suppress_form}
        {erase_form}
        <section class="card">
            <h2>"Consent history"</h2>
            {if d.consents.is_empty() {
                view! { <p class="muted">"No consent recorded."</p> }.into_any()
            } else {
                view! { <ul class="consents">{d.consents.into_iter().map(consent_item).collect_view()}</ul> }.into_any()
            }}
        </section>
        <section class="card">
            <h2>"Suppressions"</h2>
            {if d.suppressions.is_empty() {
                view! { <p class="muted">"Never suppressed."</p> }.into_any()
            } else {
                view! {
                    <div class="table-wrap">
                        <table class="data compact" id="suppressions">
                            <thead><tr>
                                <th scope="col">"Channel"</th><th scope="col">"Origin"</th><th scope="col">"State"</th>
                                <th scope="col">"Since"</th><th scope="col">"By"</th><th scope="col">"Reference"</th>
                            </tr></thead>
                            <tbody>
                                {d.suppressions.into_iter().map(|s| view! {
                                    <tr>
                                        <td>{s.channel}</td>
                                        <td>{s.origin}</td>
                                        <td>{if s.active { view! { <Badge state="suppressed"/> }.into_any() } else {
                                            view! { <span>{format!("lifted {}", when_opt(&s.lifted_at))}</span> }.into_any()
                                        }}</td>
                                        <td>{when(&s.created_at)}</td>
                                        <td>{s.created_by}</td>
                                        <td>{s.source_ref.unwrap_or_default()}</td>
                                    </tr>
                                }).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }.into_any()
            }}
        </section>
        <section class="card">
            <h2>"Messages"</h2>
            {if d.messages.is_empty() {
                view! { <p class="muted">"No messages sent to this person."</p> }.into_any()
            } else {
                view! { <ol class="timeline" id="timeline">{d.messages.into_iter().map(message_item).collect_view()}</ol> }.into_any()
            }}
        </section>
    }
}

fn consent_item(c: ConsentView) -> impl IntoView {
    // The server's answer (revoked once it has a revocation time).
    let state = c.status.as_str();
    let evidence: Vec<(&'static str, Option<String>)> = vec![
        (
            "Purpose",
            Some(c.purpose.clone().unwrap_or_else(|| {
                "every purpose that existed before purposes (marketing, service)".into()
            })),
        ),
        ("Captured", Some(when(&c.captured_at))),
        ("Source", Some(c.source.clone())),
        ("Consent text version", c.consent_text_version.clone()),
        ("Text SHA-256", c.consent_text_hash.clone()),
        ("IP address", c.ip.clone()),
        ("Browser", c.user_agent.clone()),
        ("Page", c.page_url.clone()),
        ("Form", c.form_id.clone()),
        ("QR code", c.qr_code.clone()),
        ("Inbound message", c.inbound_message_id.clone()),
        ("Recorded by", Some(c.recorded_by.clone())),
        ("Confirmed", c.confirmed_at.as_ref().map(when)),
        ("Revoked", c.revoked_at.as_ref().map(when)),
        ("Revoked by", c.revocation_source.clone()),
        ("Revocation reference", c.revocation_ref.clone()),
    ];
    view! {
        <li class="consent">
            <div>
                <strong>{c.channel.clone()}</strong> " " <Badge state=state/> " via " {c.source.clone()}
                " · " {when(&c.captured_at)}
            </div>
            <details>
                <summary>"Evidence"</summary>
                <dl class="evidence">
                    {evidence.into_iter().filter_map(|(k, v)| v.map(|v| view! { <dt>{k}</dt><dd>{v}</dd> })).collect_view()}
                </dl>
                {c.consent_text.map(|t| view! { <blockquote class="consent-text">{t}</blockquote> })}
            </details>
        </li>
    }
}

fn message_item(m: MessageRow) -> impl IntoView {
    let what = match (&m.template_name, &m.body) {
        (Some(t), _) => format!("template {t}"),
        (None, Some(b)) => b.chars().take(120).collect(),
        _ => m.kind.clone(),
    };
    let reason = m.block_reason.clone();
    let reason_attr = reason.clone().unwrap_or_default();
    let state_attr = m.state.as_str();
    view! {
        <li class="message" data-state=state_attr data-reason=reason_attr>
            <div class="message-head">
                <time>{when(&m.created_at)}</time>
                " " <Badge state=m.state.as_str()/>
                {reason.map(|r| view! {
                    " " <code class="reason">{r.clone()}</code>
                    <span class="muted small">{format!(" {}", reason_label(&r))}</span>
                })}
            </div>
            <div>{m.channel.clone()} " · " {what} " · from " {m.source.as_str()}
                {m.campaign_id.clone().map(|c| view! { " (" <a href=format!("/campaigns/{c}")>"campaign"</a> ")" })}
                " · " <a class="receipt-link" href=format!("/messages/{}/receipt", m.id) target="_blank" rel="external noopener">"Receipt"</a>
                " " <a class="small muted" href=format!("/messages/{}/receipt?format=json", m.id) target="_blank" rel="external noopener">"(JSON)"</a>
            </div>
            {m.error_code.map(|code| view! {
                <div class="warn-text">{format!("Error {code}")} {m.error_message.clone().map(|e| format!(": {e}"))}</div>
            })}
            <details>
                <summary>"Gate verdicts and status history"</summary>
                {m.evaluations.into_iter().map(|e| view! {
                    <div class="evaluation">
                        <p>
                            <strong>{e.kind.replace('_', " ")}</strong> " at " {e.stage} ": " <Badge state=e.decision.clone()/>
                            {e.reason_code.map(|r| view! { " " <code>{r}</code> })}
                            " · " {when(&e.at)} " · " {e.actor}
                        </p>
                        {(!e.verdicts.is_empty()).then(|| view! {
                            <table class="data compact verdicts">
                                <thead><tr><th scope="col">"Gate"</th><th scope="col">"Verdict"</th><th scope="col">"Why"</th></tr></thead>
                                <tbody>
                                    {e.verdicts.into_iter().map(|v| view! {
                                        <tr class=format!("verdict-{}", v.verdict)>
                                            <th scope="row"><code>{v.gate}</code></th>
                                            <td>{v.verdict.replace('_', " ")}</td>
                                            <td>{v.detail}</td>
                                        </tr>
                                    }).collect_view()}
                                </tbody>
                            </table>
                        })}
                    </div>
                }).collect_view()}
                {(!m.status_history.is_empty()).then(|| view! {
                    <ol class="status-history">
                        {m.status_history.into_iter().map(|s| view! {
                            <li><time>{when(&s.at)}</time> " " <Badge state=s.status/>
                                {s.error_code.map(|c| format!(" error {c}"))} " (" {s.source} ")"</li>
                        }).collect_view()}
                    </ol>
                })}
            </details>
        </li>
    }
}

//! Campaign pages: the list, the draft form, and the campaign page with its
//! review (samples, audience size, dry run, cost), the approval controls,
//! and the live progress view.

use leptos::prelude::*;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::campaigns::{
    campaign_form, campaign_page, campaign_progress, campaigns_list, CampaignApprove,
    CampaignCancel, CampaignInfo, CampaignPause, CampaignReject, CampaignResume, CampaignSave,
    CampaignSubmit, DraftFormData, ProgressView, ReviewView,
};
use crate::api::templates::TemplateRow;
use crate::components::{
    both, error_of, error_view, percent, poll_every, use_me, when, when_opt, Badge, Csrf,
    FieldError, FormError, Loading, PageTitle,
};
use crate::error::AppError;
use crate::model::{reason_label, Counts, Me, Role};
use crate::pages::templates::AnnotatedBody;
use heimdall_codes::{CampaignAction, CampaignStatus};

#[component]
pub fn CampaignsPage() -> impl IntoView {
    let me = use_me();
    let query = use_query_map();
    let status = move || query.read().get("status").filter(|s| !s.is_empty());
    let list = Resource::new(status, campaigns_list);
    view! {
        <PageTitle title="Campaigns"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, list) = match both(me.await, list.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                let current = status().unwrap_or_default();
                view! {
                    <div class="toolbar">
                        <form method="get" action="/campaigns" class="inline-form">
                            <label for="status">"Status"</label>
                            <select id="status" name="status">
                                <option value="" selected=current.is_empty()>"All"</option>
                                {CampaignStatus::ALL
                                    .iter()
                                    .map(|s| { let s = s.as_str(); view! { <option value=s selected=current == s>{s}</option> } })
                                    .collect_view()}
                            </select>
                            <button type="submit">"Filter"</button>
                        </form>
                        {me.can(Role::Operator).then(|| view! {
                            <a class="button primary" href="/campaigns/new">"New campaign"</a>
                        })}
                    </div>
                    {if list.is_empty() {
                        view! { <p class="empty">"No campaigns yet."</p> }.into_any()
                    } else {
                        view! {
                            <div class="table-wrap">
                                <table class="data" id="campaigns">
                                    <thead>
                                        <tr>
                                            <th scope="col">"Name"</th>
                                            <th scope="col">"Status"</th>
                                            <th scope="col">"Channel"</th>
                                            <th scope="col">"Template"</th>
                                            <th scope="col">"Audience"</th>
                                            <th scope="col">"Author"</th>
                                            <th scope="col">"Created"</th>
                                        </tr>
                                    </thead>
                                    <tbody>
                                        {list.into_iter().map(|c| view! {
                                            <tr>
                                                <th scope="row"><a href=format!("/campaigns/{}", c.id)>{c.name}</a></th>
                                                <td><Badge state=c.status.as_str()/></td>
                                                <td>{c.channel}</td>
                                                <td><code>{c.template_name}</code></td>
                                                <td>{c.audience}</td>
                                                <td>{c.author.unwrap_or_default()}</td>
                                                <td>{when(&c.created_at)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        }.into_any()
                    }}
                }
                .into_any()
            })}
        </Transition>
    }
}

// ---------------------------------------------------------------------------
// The draft form

#[component]
pub fn CampaignEditPage() -> impl IntoView {
    let params = use_params_map();
    let query = use_query_map();
    let id = move || params.read().get("id");
    let template = move || query.read().get("template").filter(|t| !t.is_empty());
    let data = Resource::new(move || (id(), template()), |(id, t)| campaign_form(id, t));
    let me = use_me();
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, data) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                view! { <DraftForm me=me data=data/> }.into_any()
            })}
        </Transition>
    }
}

#[component]
fn DraftForm(me: Me, data: DraftFormData) -> impl IntoView {
    let save = ServerAction::<CampaignSave>::new();
    let err = error_of(save);
    let draft = data.draft.clone();
    let title = match &draft {
        Some(d) => format!("Edit campaign: {}", d.name),
        None => "New campaign".to_string(),
    };
    let here = match &draft {
        Some(d) => format!("/campaigns/{}/edit", d.id),
        None => "/campaigns/new".to_string(),
    };
    let selected_name = data
        .selected
        .as_ref()
        .map(|t| t.name.clone())
        .unwrap_or_default();
    let chooser = view! {
        <section class="card">
            <h2>"1. Template"</h2>
            <form method="get" action=here.clone() class="inline-form">
                <label for="template">"Approved template"</label>
                <select id="template" name="template" required>
                    <option value="" selected=selected_name.is_empty()>"Choose…"</option>
                    {data
                        .templates
                        .iter()
                        .map(|t| {
                            let label = format!("{} ({}, {})", t.name, t.category, t.language);
                            view! { <option value=t.name.clone() selected=t.name == selected_name>{label}</option> }
                        })
                        .collect_view()}
                </select>
                <button type="submit">"Use this template"</button>
            </form>
            {data.selected.clone().map(|t| view! {
                <p class="template-body"><AnnotatedBody body=t.body.clone() variables=t.variables.clone()/></p>
            })}
        </section>
    };
    let form = data.selected.clone().map(|t| {
        view! {
            <DraftFields
                me=me.clone()
                template=t
                draft=draft.clone()
                time_zone=data.time_zone.clone()
                scheduled_local=data.scheduled_local.clone()
                save=save
                err=err
            />
        }
    });
    view! {
        <PageTitle title=title/>
        {chooser}
        {form}
    }
}

#[component]
fn DraftFields(
    me: Me,
    template: TemplateRow,
    draft: Option<CampaignInfo>,
    time_zone: String,
    scheduled_local: Option<String>,
    save: ServerAction<CampaignSave>,
    err: Signal<Option<AppError>>,
) -> impl IntoView {
    let d = draft.clone();
    let name = d.as_ref().map(|d| d.name.clone()).unwrap_or_default();
    let channel = d
        .as_ref()
        .map(|d| d.channel.clone())
        .unwrap_or_else(|| "whatsapp".into());
    let kind = d
        .as_ref()
        .map(|d| d.audience_kind.clone())
        .unwrap_or_else(|| "tags".into());
    let tags = d.as_ref().map(|d| d.tags.join(", ")).unwrap_or_default();
    let phones = d.as_ref().map(|d| d.phones.join("\n")).unwrap_or_default();
    let on_approval = scheduled_local.is_none();
    let mapping = d.as_ref().map(|d| d.variables.clone()).unwrap_or_default();
    let phones_ref = NodeRef::<leptos::html::Textarea>::new();
    let variables = template
        .variables
        .iter()
        .enumerate()
        .map(|(i, var)| {
            let existing = mapping.iter().find(|m| &m.name == var);
            let (source, value) = match existing {
                Some(m) => (m.source.clone(), m.value.clone()),
                None if matches!(var.as_str(), "name" | "first_name" | "full_name" | "contact_name") => {
                    ("field".to_string(), "name".to_string())
                }
                None => ("value".to_string(), String::new()),
            };
            let src_id = format!("var-source-{i}");
            let val_id = format!("var-value-{i}");
            view! {
                <div class="var-row">
                    <span class="slot">
                        <code>{format!("{{{{{}}}}}", i + 1)}</code>
                        <span class="slot-name">{var.clone()}</span>
                    </span>
                    <label for=src_id.clone() class="visually-hidden">{format!("Source of {var}")}</label>
                    <select id=src_id name=format!("var_source[{var}]")>
                        <option value="field" selected=source == "field">"Contact field"</option>
                        <option value="value" selected=source == "value">"Fixed text"</option>
                    </select>
                    <label for=val_id.clone() class="visually-hidden">{format!("Value of {var}")}</label>
                    <input id=val_id type="text" name=format!("var_value[{var}]") value=value list="contact-fields"
                        placeholder="field name (name, phone, an attribute) or text"/>
                </div>
            }
        })
        .collect_view();
    view! {
        <section class="card">
            <h2>"2. The campaign"</h2>
            <ActionForm action=save>
                <FormError error=err fields=&["name", "channel", "audience", "tags", "phones", "variables", "schedule", "scheduled_at"]/>
                <Csrf token=me.csrf.clone()/>
                <input type="hidden" name="id" value=d.as_ref().map(|d| d.id.clone()).unwrap_or_default()/>
                <input type="hidden" name="template_name" value=template.name.clone()/>
                <div class="field">
                    <label for="name">"Name"</label>
                    <input id="name" name="name" type="text" required maxlength="200" value=name
                        aria-describedby="name-error"/>
                    <FieldError error=err field="name"/>
                </div>
                <fieldset class="field">
                    <legend>"Channel"</legend>
                    <label class="choice">
                        <input type="radio" name="channel" value="whatsapp" checked=channel == "whatsapp"/>
                        "WhatsApp"
                    </label>
                    <label class="choice">
                        <input type="radio" name="channel" value="sms" checked=channel == "sms"/>
                        "SMS"
                    </label>
                    <FieldError error=err field="channel"/>
                </fieldset>
                <fieldset class="field">
                    <legend>"Audience"</legend>
                    <label class="choice">
                        <input type="radio" name="audience" value="tags" checked=kind == "tags"/>
                        "Contacts with any of these tags"
                    </label>
                    <label for="tags" class="sub-label">"Tags (comma separated)"</label>
                    <input id="tags" name="tags" type="text" value=tags aria-describedby="tags-error"/>
                    <FieldError error=err field="tags"/>
                    <label class="choice">
                        <input type="radio" name="audience" value="phones" checked=kind == "phones"/>
                        "A list of phone numbers (each must already have consent)"
                    </label>
                    <label for="phones" class="sub-label">"Numbers, one per line (CSV: the first column with a number is used)"</label>
                    <textarea id="phones" name="phones" rows="5" node_ref=phones_ref aria-describedby="phones-error">{phones}</textarea>
                    <label for="phones-file" class="sub-label">"Or choose a CSV file (fills the list above; needs JavaScript)"</label>
                    <input id="phones-file" type="file" accept=".csv,.txt,text/csv,text/plain"
                        on:change=move |_ev| {
                            #[cfg(feature = "hydrate")]
                            read_file_into(_ev, phones_ref);
                        }/>
                    <FieldError error=err field="phones"/>
                    <FieldError error=err field="audience"/>
                </fieldset>
                <fieldset class="field">
                    <legend>"Variables"</legend>
                    {template.variables.is_empty().then(|| view! { <p class="muted">"This template has no variables."</p> })}
                    {variables}
                    <datalist id="contact-fields">
                        <option value="name"></option>
                        <option value="phone"></option>
                    </datalist>
                    <FieldError error=err field="variables"/>
                </fieldset>
                <fieldset class="field">
                    <legend>"When"</legend>
                    <label class="choice">
                        <input type="radio" name="schedule" value="on_approval" checked=on_approval/>
                        "Send on approval"
                    </label>
                    <label class="choice">
                        <input type="radio" name="schedule" value="at" checked=!on_approval/>
                        "At a time"
                    </label>
                    <label for="scheduled_at" class="sub-label">{format!("Date and time ({time_zone})")}</label>
                    <input id="scheduled_at" name="scheduled_at" type="datetime-local"
                        value=scheduled_local.unwrap_or_default() aria-describedby="scheduled_at-error"/>
                    <FieldError error=err field="scheduled_at"/>
                    <FieldError error=err field="schedule"/>
                </fieldset>
                <button type="submit" class="primary" disabled=move || save.pending().get()>
                    "Save draft and review"
                </button>
            </ActionForm>
        </section>
    }
}

/// Read the chosen CSV file into the numbers field.
#[cfg(feature = "hydrate")]
pub(crate) fn read_file_into(ev: leptos::ev::Event, target: NodeRef<leptos::html::Textarea>) {
    use wasm_bindgen::JsCast;
    let Some(input) = ev
        .target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlInputElement>().ok())
    else {
        return;
    };
    let Some(file) = input.files().and_then(|f| f.get(0)) else {
        return;
    };
    let promise = file.text();
    leptos::task::spawn_local(async move {
        if let Ok(text) = wasm_bindgen_futures::JsFuture::from(promise).await {
            if let (Some(s), Some(el)) = (text.as_string(), target.get_untracked()) {
                el.set_value(&s);
            }
        }
    });
}

// ---------------------------------------------------------------------------
// The campaign page

#[component]
pub fn CampaignPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let me = use_me();
    let submit = ServerAction::<CampaignSubmit>::new();
    let approve = ServerAction::<CampaignApprove>::new();
    let reject = ServerAction::<CampaignReject>::new();
    let cancel = ServerAction::<CampaignCancel>::new();
    let info = Resource::new(
        move || {
            (
                id(),
                submit.version().get(),
                approve.version().get(),
                reject.version().get(),
                cancel.version().get(),
            )
        },
        |(id, ..)| campaign_page(id),
    );
    let actions = PreSendActions {
        submit,
        approve,
        reject,
        cancel,
    };
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, page) = match both(me.await, info.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                let c = page.info;
                let title = format!("Campaign: {}", c.name);
                let before = c.before_sending();
                let id = c.id.clone();
                let status = c.status;
                let review = page.review;
                view! {
                    // While sending, the progress section shows the live status.
                    <PageTitle title=title>
                        {before.then(|| view! { <Badge state=status.as_str()/> })}
                    </PageTitle>
                    <Summary c=c.clone()/>
                    {before.then(|| view! { <PreSend me=me.clone() c=c.clone() review=review.clone() actions=actions/> })}
                    {(!before).then(|| view! { <LiveSection me=me.clone() id=id.clone()/> })}
                    <History c=c/>
                }
                .into_any()
            })}
        </Transition>
    }
}

#[component]
fn Summary(c: CampaignInfo) -> impl IntoView {
    let audience = match c.audience_kind.as_str() {
        "phones" => view! {
            <details>
                <summary>{format!("{} uploaded numbers", c.phones.len())}</summary>
                <ul class="plain">{c.phones.iter().map(|p| view! { <li><code>{p.clone()}</code></li> }).collect_view()}</ul>
            </details>
        }
        .into_any(),
        _ => view! { <span>{format!("Contacts tagged: {}", c.tags.join(", "))}</span> }.into_any(),
    };
    let vars = c
        .template_variables
        .iter()
        .enumerate()
        .map(|(i, var)| {
            let m = c.variables.iter().find(|m| &m.name == var);
            let source = match m {
                Some(m) if m.source == "field" => format!("contact field '{}'", m.value),
                Some(m) => format!("fixed text \"{}\"", m.value),
                None => "not mapped".to_string(),
            };
            view! {
                <li>
                    <code>{format!("{{{{{}}}}}", i + 1)}</code> " " <strong>{var.clone()}</strong> " ← " {source}
                </li>
            }
        })
        .collect_view();
    let when_text = match c.scheduled_at {
        Some(at) => format!("At {}", when(&at)),
        None => "On approval".to_string(),
    };
    view! {
        <section class="card">
            <h2>"Summary"</h2>
            <dl class="summary">
                <dt>"Channel"</dt><dd>{c.channel.clone()}</dd>
                <dt>"Template"</dt>
                <dd>
                    <code>{c.template_name.clone()}</code> " (" {c.template_category.clone()} ")"
                    {c.template_body.clone().map(|b| view! {
                        <p class="template-body"><AnnotatedBody body=b variables=c.template_variables.clone()/></p>
                    })}
                </dd>
                <dt>"Variables"</dt><dd><ul class="plain">{vars}</ul></dd>
                <dt>"Audience"</dt><dd>{audience}</dd>
                <dt>"Send"</dt><dd>{when_text}</dd>
                <dt>"Author"</dt><dd>{c.author.clone().unwrap_or_default()}</dd>
                <dt>"Submitted"</dt><dd>{when_opt(&c.submitted_at)}</dd>
                <dt>"Approved"</dt>
                <dd>
                    {when_opt(&c.approved_at)}
                    {c.approved_by.clone().map(|a| format!(" by {a}"))}
                </dd>
                {c.rejection_reason.clone().map(|r| view! {
                    <dt>"Rejected because"</dt><dd class="rejection">{r}</dd>
                })}
                {c.recipients.map(|n| view! { <dt>"Recipients"</dt><dd>{n}</dd> })}
            </dl>
        </section>
    }
}

#[derive(Clone, Copy)]
struct PreSendActions {
    submit: ServerAction<CampaignSubmit>,
    approve: ServerAction<CampaignApprove>,
    reject: ServerAction<CampaignReject>,
    cancel: ServerAction<CampaignCancel>,
}

/// The review and the controls before anything is sent.
#[component]
fn PreSend(
    me: Me,
    c: CampaignInfo,
    review: Option<ReviewView>,
    actions: PreSendActions,
) -> impl IntoView {
    let submit_err = error_of(actions.submit);
    let approve_err = error_of(actions.approve);
    let reject_err = error_of(actions.reject);
    let cancel_err = error_of(actions.cancel);
    let can_edit = c.allows(CampaignAction::Edit)
        && me.can(Role::Operator)
        && (c.is_author || me.can(Role::Admin));
    let can_submit = c.allows(CampaignAction::Submit) && me.can(Role::Operator);
    let decidable = c.allows(CampaignAction::Reject);
    let may_decide = decidable && me.can(Role::Approver) && !c.is_author;
    let author_waiting = decidable && c.is_author;
    let csrf = me.csrf.clone();
    let controls = view! {
        <section class="card" id="decision">
            <h2>"Decision"</h2>
            <FormError error=submit_err/>
            <FormError error=approve_err/>
            <FormError error=reject_err fields=&["reason"]/>
            <FormError error=cancel_err/>
            {can_edit.then(|| view! {
                <p><a class="button" href=format!("/campaigns/{}/edit", c.id)>"Edit draft"</a></p>
            })}
            {can_submit.then(|| {
                let f = hidden(&csrf, &c.id);
                view! {
                <ActionForm action=actions.submit>
                    {f}
                    <button type="submit" class="primary" id="submit-campaign">"Submit for approval"</button>
                </ActionForm>
            }})}
            {author_waiting.then(|| view! {
                <p class="notice" id="self-approval-note">
                    "You wrote or changed this campaign, so you cannot approve it: another approver must review it."
                </p>
            })}
            {(decidable && !me.can(Role::Approver) && !c.is_author).then(|| view! {
                <p class="notice">"Waiting for an approver."</p>
            })}
            {may_decide.then(|| {
                let f1 = hidden(&csrf, &c.id);
                let f2 = hidden(&csrf, &c.id);
                let reviewed = review.as_ref().map(|r| r.content_hash.clone()).unwrap_or_default();
                view! {
                <div class="decide">
                    <ActionForm action=actions.approve>
                        {f1}
                        // The approval binds to exactly what this page shows.
                        <input type="hidden" name="content_hash" value=reviewed/>
                        <button type="submit" class="primary" id="approve-campaign">"Approve and send"</button>
                    </ActionForm>
                    <ActionForm action=actions.reject>
                        {f2}
                        <div class="field">
                            <label for="reason">"Reason for rejecting (required)"</label>
                            <textarea id="reason" name="reason" rows="2" required aria-describedby="reason-error"></textarea>
                            <FieldError error=reject_err field="reason"/>
                        </div>
                        <button type="submit" class="danger" id="reject-campaign">"Reject"</button>
                    </ActionForm>
                </div>
            }})}
            {me.can(Role::Operator).then(|| {
                let f = hidden(&csrf, &c.id);
                view! {
                <ActionForm action=actions.cancel>
                    {f}
                    <button type="submit" class="link-button danger-text">"Cancel campaign"</button>
                </ActionForm>
            }})}
        </section>
    };
    view! {
        <section class="card" id="review">
            <h2>"Review"</h2>
            {review.map(|r| view! { <ReviewBody r=r/> })}
        </section>
        {controls}
    }
}

#[component]
fn ReviewBody(r: ReviewView) -> impl IntoView {
    let blocked: usize = r.would_block.iter().map(|(_, n)| n).sum();
    let deferred: usize = r.would_defer.iter().map(|(_, n)| n).sum();
    let cost = format!(
        "{:.2} {} in total ({:.4} per message, {} billable message(s){})",
        r.total,
        r.currency,
        r.per_message,
        r.billable_messages,
        r.sms_segments
            .map(|s| format!(", {s} SMS segment(s)"))
            .unwrap_or_default()
    );
    view! {
        <div class="stats">
            <div class="stat"><span class="stat-value" id="audience-size">{r.audience_size}</span><span class="stat-label">"recipients"</span></div>
            <div class="stat ok"><span class="stat-value" id="would-pass">{r.would_pass}</span><span class="stat-label">"would pass"</span></div>
            <div class="stat bad"><span class="stat-value" id="would-block">{blocked}</span><span class="stat-label">"would be blocked"</span></div>
            <div class="stat warn"><span class="stat-value">{deferred}</span><span class="stat-label">"would be deferred"</span></div>
        </div>
        <h3>"Dry run of the gates over the whole audience"</h3>
        <ReasonTable counts=r.would_block.clone() empty="Nothing would be blocked." id="dry-run-blocked"/>
        {(!r.would_defer.is_empty()).then(|| view! {
            <h4>"Deferred"</h4>
            <ReasonTable counts=r.would_defer.clone() empty="" id="dry-run-deferred"/>
        })}
        <h3>"Estimated cost"</h3>
        <p id="estimated-cost">{cost}</p>
        <p class="muted small">"An estimate from typical list prices, not a bill."</p>
        {(!r.missing_fields.is_empty()).then(|| view! {
            <h3>"Missing contact fields"</h3>
            <ul>{r.missing_fields.iter().map(|(f, n)| view! {
                <li>{format!("'{f}' is missing for {n} recipient(s) (sent empty)")}</li>
            }).collect_view()}</ul>
        })}
        {(!r.unresolved.is_empty()).then(|| view! {
            <h3>"Numbers that cannot be used"</h3>
            <ul>{r.unresolved.iter().map(|(n, why)| view! { <li><code>{n.clone()}</code> " — " {why.clone()}</li> }).collect_view()}</ul>
        })}
        <h3>"Samples"</h3>
        {if r.samples.is_empty() {
            view! { <p class="empty">"No recipients."</p> }.into_any()
        } else {
            view! {
                <ul class="samples" id="samples">
                    {r.samples.into_iter().map(|s| view! {
                        <li class="sample">
                            <div class="sample-to">{s.name.unwrap_or_else(|| "(no name)".into())} " · " <code>{s.phone}</code></div>
                            <div class="bubble">{s.text}</div>
                        </li>
                    }).collect_view()}
                </ul>
            }.into_any()
        }}
    }
}

/// A table of reason codes and counts, with what each means.
#[component]
pub fn ReasonTable(counts: Counts, empty: &'static str, #[prop(into)] id: String) -> impl IntoView {
    if counts.is_empty() {
        return view! { <p class="muted" id=id>{empty}</p> }.into_any();
    }
    view! {
        <table class="data compact" id=id>
            <thead><tr><th scope="col">"Reason"</th><th scope="col">"Count"</th><th scope="col">"Meaning"</th></tr></thead>
            <tbody>
                {counts.into_iter().map(|(reason, n)| view! {
                    <tr data-reason=reason.clone()>
                        <th scope="row"><code>{reason.clone()}</code></th>
                        <td class="num">{n}</td>
                        <td class="muted">{reason_label(&reason)}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
    }
    .into_any()
}

/// Counts by message state.
#[component]
pub fn StateCounts(counts: Counts, #[prop(into)] id: String) -> impl IntoView {
    view! {
        <dl class="state-counts" id=id>
            {counts.into_iter().map(|(state, n)| view! {
                <div class="state-count" data-state=state.clone()>
                    <dt><Badge state=state.clone()/></dt>
                    <dd>{n}</dd>
                </div>
            }).collect_view()}
        </dl>
    }
}

/// Progress while sending (and after), refreshed every few seconds in the
/// browser, with pause, resume and cancel.
#[component]
fn LiveSection(me: Me, id: String) -> impl IntoView {
    let pause = ServerAction::<CampaignPause>::new();
    let resume = ServerAction::<CampaignResume>::new();
    let cancel = ServerAction::<CampaignCancel>::new();
    let tick = poll_every(3);
    let progress = Resource::new(
        {
            let id = id.clone();
            move || {
                (
                    id.clone(),
                    tick.get(),
                    pause.version().get(),
                    resume.version().get(),
                    cancel.version().get(),
                )
            }
        },
        |(id, ..)| campaign_progress(id),
    );
    let errs = [error_of(pause), error_of(resume), error_of(cancel)];
    view! {
        <section class="card" id="progress" aria-live="polite">
            <h2>"Progress"</h2>
            {errs.into_iter().map(|e| view! { <FormError error=e/> }).collect_view()}
            <Transition fallback=Loading>
                {move || {
                    let me = me.clone();
                    let id = id.clone();
                    Suspend::new(async move {
                        match progress.await {
                            Ok(p) => view! {
                                <ProgressBody p=p me=me id=id pause=pause resume=resume cancel=cancel/>
                            }
                            .into_any(),
                            Err(e) => error_view(e),
                        }
                    })
                }}
            </Transition>
        </section>
    }
}

#[component]
fn ProgressBody(
    p: ProgressView,
    me: Me,
    id: String,
    pause: ServerAction<CampaignPause>,
    resume: ServerAction<CampaignResume>,
    cancel: ServerAction<CampaignCancel>,
) -> impl IntoView {
    let status = p.status;
    let allows = |action| me.can(Role::Operator) && status.allows(action);
    let can_pause = allows(CampaignAction::Pause);
    let can_resume = allows(CampaignAction::Resume {
        fanned_out: false,
        scheduled_ahead: false,
    });
    let can_cancel = allows(CampaignAction::Cancel);
    let csrf = me.csrf.clone();
    let failures = p.failures.clone();
    view! {
        <p>"Status: " <span id="progress-status"><Badge state=status.as_str()/></span></p>
        <div class="stats">
            <div class="stat"><span class="stat-value" id="progress-total">{p.total}</span>
                <span class="stat-label">{match p.recipients { Some(r) => format!("messages of {r} recipients"), None => "messages so far".to_string() }}</span></div>
            <div class="stat ok"><span class="stat-value" id="delivered-rate">{percent(Some(p.delivered_rate))}</span><span class="stat-label">"delivered"</span></div>
            <div class="stat ok"><span class="stat-value" id="read-rate">{percent(Some(p.read_rate))}</span><span class="stat-label">"read"</span></div>
        </div>
        <h3>"By state"</h3>
        <StateCounts counts=p.by_state.clone() id="by-state"/>
        <h3>"Blocked, by gate"</h3>
        <ReasonTable counts=p.by_block_reason.clone() empty="No message was blocked." id="by-block-reason"/>
        <h3>"Failures"</h3>
        {if failures.is_empty() {
            view! { <p class="muted">"No failures."</p> }.into_any()
        } else {
            view! { <FailureTable failures=failures/> }.into_any()
        }}
        <div class="button-row">
            {can_pause.then(|| {
                let f = hidden(&csrf, &id);
                view! {
                <ActionForm action=pause>
                    {f}
                    <button type="submit">"Pause"</button>
                </ActionForm>
            }})}
            {can_resume.then(|| {
                let f = hidden(&csrf, &id);
                view! {
                <ActionForm action=resume>
                    {f}
                    <button type="submit" class="primary">"Resume"</button>
                </ActionForm>
            }})}
            {can_cancel.then(|| {
                let f = hidden(&csrf, &id);
                view! {
                <ActionForm action=cancel>
                    {f}
                    <button type="submit" class="danger">"Cancel"</button>
                </ActionForm>
            }})}
        </div>
    }
}

#[component]
pub fn FailureTable(failures: Vec<crate::model::FailureView>) -> impl IntoView {
    view! {
        <div class="table-wrap">
            <table class="data compact">
                <thead><tr>
                    <th scope="col">"When"</th><th scope="col">"To"</th><th scope="col">"Error"</th><th scope="col">"Meaning"</th>
                </tr></thead>
                <tbody>
                    {failures.into_iter().map(|f| view! {
                        <tr>
                            <td>{when(&f.at)}</td>
                            <td><code>{f.phone_masked}</code></td>
                            <td>{f.error_code.map(|c| c.to_string()).unwrap_or_else(|| "—".into())}</td>
                            <td>{f.meaning.unwrap_or_default()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </div>
    }
}

/// The CSRF token and the campaign id of a one-button form.
fn hidden(csrf: &str, id: &str) -> impl IntoView {
    view! {
        <Csrf token=csrf.to_string()/>
        <input type="hidden" name="id" value=id.to_string()/>
    }
}

#[component]
fn History(c: CampaignInfo) -> impl IntoView {
    view! {
        <section class="card">
            <h2>"History"</h2>
            {if c.history.is_empty() {
                view! { <p class="muted">"Nothing yet."</p> }.into_any()
            } else {
                view! {
                    <ol class="history">
                        {c.history.into_iter().map(|h| view! {
                            <li>
                                <time>{when(&h.at)}</time> " " <strong>{h.decision}</strong> " by " {h.actor}
                                {h.reason.map(|r| view! { <div class="muted">{r}</div> })}
                            </li>
                        }).collect_view()}
                    </ol>
                }.into_any()
            }}
        </section>
    }
}

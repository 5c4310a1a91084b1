//! Opt-in forms: the list and the consent import, one form (consent text
//! versions, QR codes, submissions), and the form editor.

use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::api::forms::{
    form_editor, form_get, forms_list, ConsentsImport, FormDetail, FormEditData, FormSave,
    ImportReportView, QrCreate,
};
use crate::components::{
    both, error_of, error_view, reset_on_success, use_me, when, when_opt, Badge, Csrf, FieldError,
    FormError, Loading, PageTitle,
};
use crate::model::{Me, Role};

#[component]
pub fn FormsPage() -> impl IntoView {
    let me = use_me();
    let import = ServerAction::<ConsentsImport>::new();
    let data = Resource::new(move || import.version().get(), |_| forms_list());
    view! {
        <PageTitle title="Opt-in forms"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, v) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                let is_admin = me.can(Role::Admin);
                view! {
                    {is_admin.then(|| view! {
                        <p><a class="button primary" href="/forms/new">"New form"</a></p>
                    })}
                    {if v.forms.is_empty() {
                        view! { <p class="empty">"No forms yet."</p> }.into_any()
                    } else {
                        view! {
                            <div class="table-wrap">
                                <table class="data" id="forms">
                                    <thead><tr>
                                        <th scope="col">"Form"</th><th scope="col">"Public page"</th><th scope="col">"Consent texts"</th>
                                        <th scope="col">"People"</th><th scope="col">"QR codes"</th><th scope="col">"Last submission"</th>
                                    </tr></thead>
                                    <tbody>
                                        {v.forms.into_iter().map(|f| view! {
                                            <tr>
                                                <th scope="row">
                                                    <a href=format!("/forms/{}", f.id)>{f.title.clone()}</a>
                                                    " " {if f.active { view! { <Badge state="active"/> }.into_any() } else { view! { <Badge state="inactive"/> }.into_any() }}
                                                    {f.double_opt_in.then(|| view! { <div class="muted small">"double opt-in"</div> })}
                                                </th>
                                                <td><a href=f.url.clone()>{format!("/optin/{}", f.slug)}</a></td>
                                                <td>{f.channels.join(", ")}</td>
                                                <td class="num">{f.contacts}</td>
                                                <td class="num">{f.qr_codes}</td>
                                                <td>{when_opt(&f.last_submission_at)}</td>
                                            </tr>
                                        }).collect_view()}
                                    </tbody>
                                </table>
                            </div>
                        }.into_any()
                    }}
                    {v.import_report.map(|r| view! { <ImportReport r=r/> })}
                    {is_admin.then(|| view! { <ImportForm me=me.clone() import=import/> })}
                }
                .into_any()
            })}
        </Transition>
    }
}

#[component]
pub fn ImportReport(r: ImportReportView) -> impl IntoView {
    view! {
        <section class="card" id="import-report" role="status">
            <h2>"Import report"</h2>
            <p>
                <strong>{format!("{} imported", r.imported)}</strong>
                {format!(", {} duplicate(s), {} refused.", r.duplicates.len(), r.refused.len())}
            </p>
            {(!r.duplicates.is_empty()).then(|| view! {
                <p class="muted">{format!("Already on record (rows): {}", r.duplicates.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", "))}</p>
            })}
            {(!r.ignored_columns.is_empty()).then(|| view! {
                <p class="muted">{format!("Columns ignored: {}", r.ignored_columns.join(", "))}</p>
            })}
            {(!r.refused.is_empty()).then(|| view! {
                <table class="data compact">
                    <thead><tr><th scope="col">"Row"</th><th scope="col">"Why it was refused"</th></tr></thead>
                    <tbody>
                        {r.refused.into_iter().map(|(row, why)| view! {
                            <tr><th scope="row">{row}</th><td>{why}</td></tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>
    }
}

#[component]
pub fn ImportForm(me: Me, import: ServerAction<ConsentsImport>) -> impl IntoView {
    let err = error_of(import);
    let csv_ref = NodeRef::<leptos::html::Textarea>::new();
    view! {
        <section class="card">
            <h2>"Import consent records (CSV)"</h2>
            <p class="muted small">
                "Columns: phone, channel, source, captured_at, consent_text_version, and evidence "
                "(ip with user_agent, page_url or inbound_message_id); optional: name, consent_text, "
                "consent_text_hash, form_id, qr_code. Rows with a problem record nothing and are listed."
            </p>
            <ActionForm action=import>
                <FormError error=err fields=&["csv"]/>
                <Csrf token=me.csrf.clone()/>
                <div class="field">
                    <label for="csv">"CSV with its header row"</label>
                    <textarea id="csv" name="csv" rows="6" node_ref=csv_ref aria-describedby="csv-error"></textarea>
                    <FieldError error=err field="csv"/>
                </div>
                <div class="field">
                    <label for="csv-file">"Or choose a file (fills the box above; needs JavaScript)"</label>
                    <input id="csv-file" type="file" accept=".csv,text/csv,text/plain"
                        on:change=move |_ev| {
                            #[cfg(feature = "hydrate")]
                            crate::pages::campaigns::read_file_into(_ev, csv_ref);
                        }/>
                </div>
                <button type="submit" class="primary" disabled=move || import.pending().get()>"Import"</button>
            </ActionForm>
        </section>
    }
}

#[component]
pub fn FormPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let me = use_me();
    let qr = ServerAction::<QrCreate>::new();
    let qr_form = reset_on_success(qr);
    let data = Resource::new(move || (id(), qr.version().get()), |(id, _)| form_get(id));
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, f) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                view! { <FormBody me=me f=f qr=qr qr_form=qr_form/> }.into_any()
            })}
        </Transition>
    }
}

#[component]
fn FormBody(
    me: Me,
    f: FormDetail,
    qr: ServerAction<QrCreate>,
    qr_form: NodeRef<leptos::html::Form>,
) -> impl IntoView {
    let err = error_of(qr);
    let is_admin = me.can(Role::Admin);
    let title = format!("Form: {}", f.title);
    let counts = f
        .counts
        .iter()
        .map(|c| view! {
            <tr><th scope="row">{c.channel.clone()}</th><td class="num">{c.active}</td><td class="num">{c.pending}</td><td class="num">{c.revoked}</td></tr>
        })
        .collect_view();
    let history = f
        .history
        .iter()
        .map(|v| {
            view! {
                <li>
                    <strong>{v.label.clone()}</strong>
                    {v.current.then(|| view! { " " <Badge state="active"/> })}
                    " · " {when(&v.created_at)} " · " {v.created_by.clone()}
                    <blockquote class="consent-text">{v.text.clone()}</blockquote>
                    <div class="muted small">"SHA-256 " <code>{v.hash.clone()}</code></div>
                </li>
            }
        })
        .collect_view();
    let codes = f
        .qr_codes
        .iter()
        .map(|q| view! {
            <li class="qr">
                <img src=q.svg_url.clone() alt=format!("QR code for {}", q.source_label) width="128" height="128"/>
                <div>
                    <strong>{q.source_label.clone()}</strong>
                    <div><a href=q.url.clone()>{q.url.clone()}</a></div>
                    <div class="muted small">{format!("{} scans, {} consents", q.scans, q.consents)}</div>
                    <div class="muted small">{format!("WhatsApp text: {}", q.prefilled_text)}</div>
                    <a href=q.print_url.clone()>"Printable page"</a>
                </div>
            </li>
        })
        .collect_view();
    let form_id = f.id.clone();
    view! {
        <PageTitle title=title>
            {is_admin.then(|| view! { <a class="button" href=format!("/forms/{}/edit", f.id)>"Edit"</a> })}
        </PageTitle>
        <section class="card">
            <dl class="summary">
                <dt>"Public page"</dt><dd><a href=f.url.clone()>{f.url.clone()}</a></dd>
                <dt>"State"</dt><dd>{if f.active { "open" } else { "closed" }}</dd>
                <dt>"Double opt-in"</dt>
                <dd>{if f.double_opt_in { "yes: each consent waits for the person's confirmation" } else { "no" }}
                    {f.confirmation_template.clone().map(|t| format!(" (WhatsApp confirmation: {t})"))}</dd>
            </dl>
            <table class="data compact">
                <thead><tr><th scope="col">"Channel"</th><th scope="col">"Active"</th><th scope="col">"Pending"</th><th scope="col">"Revoked"</th></tr></thead>
                <tbody>{counts}</tbody>
            </table>
        </section>
        <section class="card">
            <h2>"Consent texts (every version)"</h2>
            <ul class="plain">{history}</ul>
        </section>
        <section class="card" id="qr-codes">
            <h2>"QR codes"</h2>
            {if f.qr_codes.is_empty() {
                view! { <p class="muted">"None yet."</p> }.into_any()
            } else {
                view! { <ul class="plain qr-list">{codes}</ul> }.into_any()
            }}
            {is_admin.then(|| view! {
                <h3>"New QR code"</h3>
                <ActionForm action=qr node_ref=qr_form>
                    <FormError error=err fields=&["source_label", "prefilled_text"]/>
                    <Csrf token=me.csrf.clone()/>
                    <input type="hidden" name="form_id" value=form_id.clone()/>
                    <div class="field">
                        <label for="source_label">"Where it is put up"</label>
                        <input id="source_label" name="source_label" type="text" required placeholder="flyer March, open house 12 Elm St" aria-describedby="source_label-error"/>
                        <FieldError error=err field="source_label"/>
                    </div>
                    <div class="field">
                        <label for="prefilled_text">"WhatsApp message the landing page fills in (optional)"</label>
                        <input id="prefilled_text" name="prefilled_text" type="text" aria-describedby="prefilled_text-error"/>
                        <FieldError error=err field="prefilled_text"/>
                    </div>
                    <button type="submit" class="primary">"Create QR code"</button>
                </ActionForm>
            })}
        </section>
        <section class="card">
            <h2>"Recent submissions"</h2>
            {if f.recent.is_empty() {
                view! { <p class="muted">"None yet."</p> }.into_any()
            } else {
                view! {
                    <table class="data compact">
                        <thead><tr><th scope="col">"When"</th><th scope="col">"Contact"</th><th scope="col">"Channel"</th><th scope="col">"State"</th><th scope="col">"Text version"</th></tr></thead>
                        <tbody>
                            {f.recent.into_iter().map(|s| view! {
                                <tr>
                                    <td>{when(&s.captured_at)}</td>
                                    <td><a href=format!("/contacts/{}", s.contact_id)>"contact"</a></td>
                                    <td>{s.channel}</td>
                                    <td><Badge state=s.status/></td>
                                    <td>{s.text_version.unwrap_or_default()}</td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }.into_any()
            }}
        </section>
    }
}

#[component]
pub fn FormEditPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id");
    let me = use_me();
    let data = Resource::new(id, form_editor);
    view! {
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, d) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                view! { <FormEditor me=me d=d/> }.into_any()
            })}
        </Transition>
    }
}

#[component]
fn FormEditor(me: Me, d: FormEditData) -> impl IntoView {
    let save = ServerAction::<FormSave>::new();
    let err = error_of(save);
    let f = d.form.clone();
    let editing = f.is_some();
    let title = match &f {
        Some(f) => format!("Edit form: {}", f.title),
        None => "New opt-in form".to_string(),
    };
    let get = |pick: fn(&FormDetail) -> String| f.as_ref().map(pick).unwrap_or_default();
    let (id, slug, form_title, intro, fields_spec, thank_you) = (
        get(|f| f.id.clone()),
        get(|f| f.slug.clone()),
        get(|f| f.title.clone()),
        get(|f| f.intro.clone()),
        get(|f| f.fields_spec.clone()),
        get(|f| f.thank_you.clone()),
    );
    let wa_text = f.as_ref().and_then(|f| f.whatsapp_text.clone());
    let sms_text = f.as_ref().and_then(|f| f.sms_text.clone());
    let purpose_texts = f
        .as_ref()
        .map(|f| f.purpose_texts.clone())
        .unwrap_or_default();
    let asked_per_purpose = |channel: &str| {
        purpose_texts
            .keys()
            .any(|k| k.starts_with(&format!("{channel}.")))
    };
    let offer_wa = wa_text.is_some() || asked_per_purpose("whatsapp") || !editing;
    let offer_sms = sms_text.is_some() || asked_per_purpose("sms");
    // Per channel, a text box for each purpose (filled in: asked per purpose).
    let per_purpose = |channel: &'static str, channel_label: &'static str| {
        let boxes = d
            .purposes
            .iter()
            .map(|p| {
                let key = format!("{channel}.{}", p.name);
                let id = format!("purpose-text-{channel}-{}", p.name);
                let text = purpose_texts.get(&key).cloned().unwrap_or_default();
                view! {
                    <label for=id.clone() class="sub-label">{format!("{channel_label}: {} ({})", p.label, p.name)}</label>
                    <textarea id=id name=format!("purpose_text[{key}]") rows="2">{text}</textarea>
                }
            })
            .collect_view();
        view! {
            <details class="sub-field" open=asked_per_purpose(channel)>
                <summary>{format!("Or ask for {channel_label} per purpose")}</summary>
                <p class="muted small">"Fill in a text for each purpose to ask about, each with its own checkbox; leave the text above empty. Each consent then names its purpose."</p>
                <div class="sub-fields">{boxes}</div>
            </details>
        }
    };
    let wa_per_purpose = per_purpose("whatsapp", "WhatsApp");
    let sms_per_purpose = per_purpose("sms", "SMS");
    let chosen = f
        .as_ref()
        .and_then(|f| f.confirmation_template.clone())
        .unwrap_or_default();
    let active = f.as_ref().map(|f| f.active).unwrap_or(true);
    let double = f.as_ref().map(|f| f.double_opt_in).unwrap_or(false);
    view! {
        <PageTitle title=title/>
        <section class="card">
            <ActionForm action=save>
                <FormError error=err fields=&["slug", "title", "intro", "thank_you", "fields_spec", "channels", "whatsapp_text", "sms_text", "confirmation_template"]/>
                <Csrf token=me.csrf.clone()/>
                <input type="hidden" name="id" value=id/>
                <div class="field">
                    <label for="slug">"Address: /optin/…"</label>
                    <input id="slug" name="slug" type="text" required=!editing disabled=editing
                        value=slug pattern="[a-z0-9\\-]+" aria-describedby="slug-error"/>
                    {editing.then(|| view! { <p class="muted small">"The address cannot change: printed links must keep working."</p> })}
                    <FieldError error=err field="slug"/>
                </div>
                <div class="field">
                    <label for="title">"Title"</label>
                    <input id="title" name="title" type="text" required value=form_title aria-describedby="title-error"/>
                    <FieldError error=err field="title"/>
                </div>
                <div class="field">
                    <label for="intro">"Introduction (blank lines separate paragraphs)"</label>
                    <textarea id="intro" name="intro" rows="3" aria-describedby="intro-error">{intro}</textarea>
                    <FieldError error=err field="intro"/>
                </div>
                <div class="field">
                    <label for="fields_spec">"Extra fields, one per line as 'key: Label' (add * for required)"</label>
                    <textarea id="fields_spec" name="fields_spec" rows="3" placeholder="first_name: First name *" aria-describedby="fields_spec-error">{fields_spec}</textarea>
                    <FieldError error=err field="fields_spec"/>
                </div>
                <fieldset class="field">
                    <legend>"Channels and their consent texts"</legend>
                    <p class="muted small">"Each channel gets its own unticked checkbox with this text (its consent covers the purposes that existed before purposes), or one checkbox per purpose. A changed text becomes a new version; consents keep the version they were given under."</p>
                    <label class="choice"><input type="checkbox" name="offer_whatsapp" value="on" checked=offer_wa/>"Offer WhatsApp"</label>
                    <label for="whatsapp_text" class="sub-label">"WhatsApp consent text"</label>
                    <textarea id="whatsapp_text" name="whatsapp_text" rows="3" aria-describedby="whatsapp_text-error">{wa_text.unwrap_or_default()}</textarea>
                    <FieldError error=err field="whatsapp_text"/>
                    {wa_per_purpose}
                    <label class="choice"><input type="checkbox" name="offer_sms" value="on" checked=offer_sms/>"Offer SMS"</label>
                    <label for="sms_text" class="sub-label">"SMS consent text"</label>
                    <textarea id="sms_text" name="sms_text" rows="3" aria-describedby="sms_text-error">{sms_text.unwrap_or_default()}</textarea>
                    <FieldError error=err field="sms_text"/>
                    {sms_per_purpose}
                    <FieldError error=err field="channels"/>
                </fieldset>
                <div class="field">
                    <label for="thank_you">"Thank-you text (optional)"</label>
                    <textarea id="thank_you" name="thank_you" rows="2" aria-describedby="thank_you-error">{thank_you}</textarea>
                    <FieldError error=err field="thank_you"/>
                </div>
                <fieldset class="field">
                    <legend>"Confirmation"</legend>
                    <label class="choice"><input type="checkbox" name="double_opt_in" value="on" checked=double/>"Double opt-in: keep each consent pending until the person confirms"</label>
                    <label for="confirmation_template" class="sub-label">"WhatsApp confirmation template"</label>
                    <select id="confirmation_template" name="confirmation_template" aria-describedby="confirmation_template-error">
                        <option value="" selected=chosen.is_empty()>"None (free text, only inside a 24-hour window)"</option>
                        {d.templates.iter().map(|t| view! {
                            <option value=t.name.clone() selected=t.name == chosen>{t.name.clone()}</option>
                        }).collect_view()}
                    </select>
                    <FieldError error=err field="confirmation_template"/>
                </fieldset>
                <label class="choice field"><input type="checkbox" name="active" value="on" checked=active/>"Open (the public page accepts submissions)"</label>
                <button type="submit" class="primary" disabled=move || save.pending().get()>"Save form"</button>
            </ActionForm>
        </section>
    }
}

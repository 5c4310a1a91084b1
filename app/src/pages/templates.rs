//! The templates page: category, language, approval state (with the
//! reason of a rejection), last sync, each placeholder with the variable
//! name that fills it; a form to write a new template and submit it for
//! WhatsApp approval, and a refresh of the approval states.

use leptos::prelude::*;

use crate::api::templates::{
    templates_list, PurposeCreate, PurposeRow, TemplateCreate, TemplateRow, TemplateSetPurpose,
    TemplatesSync,
};
use crate::components::{
    both, error_of, error_view, reset_on_success, use_me, when_opt, Badge, Csrf, FieldError,
    FormError, Loading, PageTitle,
};
use crate::model::{Me, Role};

/// A template body as text and placeholders (`{{n}}` with its name).
pub enum Segment {
    Text(String),
    Slot {
        position: usize,
        name: Option<String>,
    },
}

pub fn segments(body: &str, variables: &[String]) -> Vec<Segment> {
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(start) = rest.find("{{") {
        let Some(len) = rest[start + 2..].find("}}") else {
            break;
        };
        let inner = &rest[start + 2..start + 2 + len];
        match inner.trim().parse::<usize>() {
            Ok(position) if position >= 1 => {
                if start > 0 {
                    out.push(Segment::Text(rest[..start].to_string()));
                }
                out.push(Segment::Slot {
                    position,
                    name: variables.get(position - 1).cloned(),
                });
            }
            _ => out.push(Segment::Text(rest[..start + 2 + len + 2].to_string())),
        }
        rest = &rest[start + 2 + len + 2..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest.to_string()));
    }
    out
}

/// The body with each placeholder labelled by its variable name.
#[component]
pub fn AnnotatedBody(body: String, variables: Vec<String>) -> impl IntoView {
    segments(&body, &variables)
        .into_iter()
        .map(|s| match s {
            Segment::Text(t) => view! { <span>{t}</span> }.into_any(),
            Segment::Slot { position, name } => view! {
                <span class="slot">
                    <code>{format!("{{{{{position}}}}}")}</code>
                    <span class="slot-name">{name.unwrap_or_else(|| "unnamed".into())}</span>
                </span>
            }
            .into_any(),
        })
        .collect_view()
}

#[component]
pub fn TemplatesPage() -> impl IntoView {
    let me = use_me();
    let sync = ServerAction::<TemplatesSync>::new();
    let create = ServerAction::<TemplateCreate>::new();
    let create_form = reset_on_success(create);
    let new_purpose = ServerAction::<PurposeCreate>::new();
    let purpose_form = reset_on_success(new_purpose);
    let tag = ServerAction::<TemplateSetPurpose>::new();
    let err = error_of(sync);
    let data = Resource::new(
        move || {
            (
                sync.version().get(),
                create.version().get(),
                new_purpose.version().get(),
                tag.version().get(),
            )
        },
        |_| templates_list(),
    );
    view! {
        <PageTitle title="Templates"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, data) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                let sync_result = sync.value().get().and_then(|r| r.ok());
                let providers = data.providers.clone();
                let purposes = data.purposes.clone();
                let admin = me.can(Role::Admin).then(|| (me.csrf.clone(), purposes.clone()));
                let purposes_view = view! {
                    <Purposes me=me.clone() purposes=purposes.clone() create=new_purpose form=purpose_form/>
                };
                let sync_csrf = me.csrf.clone();
                view! {
                    {(me.can(Role::Operator) && !providers.is_empty()).then(|| view! {
                        <NewTemplateForm me=me.clone() create=create form=create_form providers=providers/>
                    })}
                    <section class="card" id="refresh">
                        <p>
                            "Last read from the providers: " <strong>{when_opt(&data.last_sync)}</strong>
                            ". Approval states are also refreshed in the background."
                        </p>
                        {(me.can(Role::Operator) && data.can_sync).then(|| view! {
                            <ActionForm action=sync>
                                <Csrf token=sync_csrf.clone()/>
                                <button type="submit" class="primary" id="refresh-approval" disabled=move || sync.pending().get()>
                                    "Refresh approval"
                                </button>
                            </ActionForm>
                        })}
                        <FormError error=err/>
                        {sync_result.map(|r| view! {
                            <p class="notice ok" role="status">
                                {format!("Refreshed: {} read, {} updated.", r.seen, r.updated)}
                                {(!r.failed.is_empty()).then(|| format!(" Not read: {}", r.failed.join("; ")))}
                            </p>
                        })}
                    </section>
                    {purposes_view}
                    <FormError error=error_of(tag)/>
                    <div class="table-wrap">
                        <table class="data" id="templates">
                            <caption class="visually-hidden">"Templates"</caption>
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Category"</th>
                                    <th scope="col">"Language"</th>
                                    <th scope="col">"Approval"</th>
                                    <th scope="col">"Purpose"</th>
                                    <th scope="col">"Last sync"</th>
                                    <th scope="col">"Body and variables"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {data.templates.into_iter().map(|t| template_row(t, admin.clone(), tag)).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                .into_any()
            })}
        </Transition>
    }
}

/// The purposes, and (admin) a form to define one.
#[component]
fn Purposes(
    me: Me,
    purposes: Vec<PurposeRow>,
    create: ServerAction<PurposeCreate>,
    form: NodeRef<leptos::html::Form>,
) -> impl IntoView {
    let err = error_of(create);
    let items = purposes
        .into_iter()
        .map(|p| {
            view! {
                <li data-purpose=p.name.clone()>
                    <code>{p.name.clone()}</code> " " <strong>{p.label.clone()}</strong>
                    {p.marketing.then(|| view! { " " <Badge state="marketing"/> })}
                    {(!p.description.is_empty()).then(|| view! { <div class="muted small">{p.description.clone()}</div> })}
                    {p.legacy.then(|| view! { <div class="muted small">"Also covered by consents recorded before purposes existed."</div> })}
                </li>
            }
        })
        .collect_view();
    view! {
        <section class="card" id="purposes">
            <h2>"Purposes"</h2>
            <p class="muted">"What messages are sent for. Each template goes for one purpose, and only to people whose consent covers it; a marketing purpose is also stopped by STOP PROMOTIONS and Meta's 131050."</p>
            <ul class="purposes">{items}</ul>
            {me.can(Role::Admin).then(|| view! {
                <ActionForm action=create node_ref=form>
                    <FormError error=err fields=&["name", "label", "description"]/>
                    <Csrf token=me.csrf.clone()/>
                    <div class="grid-2">
                        <div class="field">
                            <label for="purpose-name">"Name (lower-case letters, digits, - and _)"</label>
                            <input id="purpose-name" name="name" type="text" required maxlength="40" placeholder="surveys" aria-describedby="name-error"/>
                            <FieldError error=err field="name"/>
                        </div>
                        <div class="field">
                            <label for="purpose-label">"Label, as people read it"</label>
                            <input id="purpose-label" name="label" type="text" required maxlength="120" placeholder="Surveys about our service" aria-describedby="label-error"/>
                            <FieldError error=err field="label"/>
                        </div>
                    </div>
                    <div class="field">
                        <label for="purpose-description">"Description"</label>
                        <input id="purpose-description" name="description" type="text" maxlength="1000" aria-describedby="description-error"/>
                        <FieldError error=err field="description"/>
                    </div>
                    <div class="field">
                        <label><input type="checkbox" name="marketing" value="on"/> " Marketing"</label>
                    </div>
                    <button type="submit" class="primary" id="add-purpose" disabled=move || create.pending().get()>"Add purpose"</button>
                </ActionForm>
            })}
        </section>
    }
}

fn template_row(
    t: TemplateRow,
    admin: Option<(String, Vec<PurposeRow>)>,
    tag: ServerAction<TemplateSetPurpose>,
) -> impl IntoView {
    let purpose_cell = match admin {
        Some((csrf, purposes)) => {
            let current = t.purpose.clone().unwrap_or_default();
            let name = t.name.clone();
            let select_id = format!("purpose-{}", t.name);
            let options = purposes
                .into_iter()
                .map(|p| {
                    let selected = p.name == current;
                    view! { <option value=p.name.clone() selected=selected>{p.label.clone()}</option> }
                })
                .collect_view();
            view! {
                <ActionForm action=tag attr:class="inline-form">
                    <Csrf token=csrf/>
                    <input type="hidden" name="template" value=name/>
                    <label class="visually-hidden" for=select_id.clone()>"Purpose"</label>
                    <select id=select_id name="purpose">{options}</select>
                    " "
                    <button type="submit">"Save"</button>
                </ActionForm>
            }
            .into_any()
        }
        None => {
            view! { <code>{t.purpose.clone().unwrap_or_else(|| "none".into())}</code> }.into_any()
        }
    };
    let vars = t
        .variables
        .iter()
        .enumerate()
        .map(
            |(i, v)| view! { <li><code>{format!("{{{{{}}}}}", i + 1)}</code> " " {v.clone()}</li> },
        )
        .collect_view();
    view! {
        <tr data-template=t.name.clone() data-status=t.approval_status.as_str()>
            <th scope="row"><code>{t.name.clone()}</code><div class="muted small">{format!("{} · {}", t.source, t.provider)}</div></th>
            <td>{t.category.clone()}</td>
            <td>{t.language.clone()}</td>
            <td>
                <Badge state=t.approval_status.as_str()/>
                {t.rejection_reason.clone().map(|r| view! { <div class="rejection small">"Rejected: " {r}</div> })}
            </td>
            <td class="purpose">{purpose_cell}</td>
            <td>{when_opt(&t.synced_at)}</td>
            <td>
                <p class="template-body"><AnnotatedBody body=t.body.clone() variables=t.variables.clone()/></p>
                <ul class="vars">{vars}</ul>
            </td>
        </tr>
    }
}

/// Write a template with named variables and submit it for WhatsApp approval.
#[component]
fn NewTemplateForm(
    me: Me,
    create: ServerAction<TemplateCreate>,
    form: NodeRef<leptos::html::Form>,
    providers: Vec<String>,
) -> impl IntoView {
    let err = error_of(create);
    let created = move || create.value().get().and_then(|r| r.ok());
    let provider_field = if providers.len() > 1 {
        view! {
            <div class="field">
                <label for="tpl-provider">"Submit through"</label>
                <select id="tpl-provider" name="provider" aria-describedby="provider-error">
                    {providers.iter().map(|p| {
                        let label = if p == "meta" { "Meta (WhatsApp Cloud API)" } else { "Twilio (Content API)" };
                        view! { <option value=p.clone()>{label}</option> }
                    }).collect_view()}
                </select>
                <FieldError error=err field="provider"/>
            </div>
        }
        .into_any()
    } else {
        view! { <input type="hidden" name="provider" value=providers.first().cloned().unwrap_or_default()/> }.into_any()
    };
    view! {
        <details class="card" id="new-template" open=move || err.get().is_some() || create.value().get().is_some()>
            <summary><h2>"New template"</h2></summary>
            <ActionForm action=create node_ref=form>
                <FormError error=err fields=&["name", "language", "category", "provider", "body", "samples"]/>
                <Csrf token=me.csrf.clone()/>
                <div class="grid-2">
                    <div class="field">
                        <label for="tpl-name">"Name (lower-case letters, digits and _)"</label>
                        <input id="tpl-name" name="name" type="text" required maxlength="512" placeholder="order_ready" aria-describedby="name-error"/>
                        <FieldError error=err field="name"/>
                    </div>
                    <div class="field">
                        <label for="tpl-language">"Language"</label>
                        <input id="tpl-language" name="language" type="text" required maxlength="10" value="en" placeholder="en, en_US, pt_BR" aria-describedby="language-error"/>
                        <FieldError error=err field="language"/>
                    </div>
                    <div class="field">
                        <label for="tpl-category">"Category"</label>
                        <select id="tpl-category" name="category" aria-describedby="category-error">
                            <option value="UTILITY">"Utility (about something they asked for)"</option>
                            <option value="MARKETING">"Marketing"</option>
                            <option value="AUTHENTICATION">"Authentication (one-time codes)"</option>
                        </select>
                        <FieldError error=err field="category"/>
                    </div>
                    {provider_field}
                </div>
                <div class="field">
                    <label for="tpl-body">"Text, with named variables such as {{first_name}}"</label>
                    <textarea id="tpl-body" name="body" rows="4" required maxlength="1200" placeholder="Hi {{first_name}}, your order {{order_id}} is ready for pickup." aria-describedby="body-error"></textarea>
                    <FieldError error=err field="body"/>
                </div>
                <div class="field">
                    <label for="tpl-samples">"A sample value for each variable, one name=value per line (WhatsApp reviews the template with them)"</label>
                    <textarea id="tpl-samples" name="samples" rows="3" maxlength="4000" placeholder="first_name=Kari\norder_id=A-17" aria-describedby="samples-error"></textarea>
                    <FieldError error=err field="samples"/>
                </div>
                <p class="muted small">"The variables become {{1}}, {{2}}, … in the order they first appear; the names are kept here, so sends and campaigns fill them by name. Until WhatsApp approves it, the template is refused for sending (template_not_approved)."</p>
                <button type="submit" class="primary" disabled=move || create.pending().get()>"Submit for approval"</button>
            </ActionForm>
            {move || created().map(|t| view! {
                <p class="notice ok" role="status" id="template-created">
                    {format!("{} was submitted for WhatsApp approval: {}.", t.name, t.approval_status)}
                </p>
            })}
        </details>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_get_their_names() {
        let vars = vec!["task_name".to_string(), "due_time".to_string()];
        let segs = segments("Reminder: {{1}} is due at {{2}}. {{x}} {{3}}", &vars);
        let described: Vec<String> = segs
            .iter()
            .map(|s| match s {
                Segment::Text(t) => format!("[{t}]"),
                Segment::Slot { position, name } => {
                    format!("{position}={}", name.clone().unwrap_or_default())
                }
            })
            .collect();
        assert_eq!(
            described,
            vec![
                "[Reminder: ]",
                "1=task_name",
                "[ is due at ]",
                "2=due_time",
                "[. {{x}}]",
                "[ ]",
                "3=",
            ]
        );
    }
}

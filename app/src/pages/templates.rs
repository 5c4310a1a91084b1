//! The templates page: category, language, approval state, last sync, and
//! each placeholder with the variable name that fills it.

use leptos::prelude::*;

use crate::api::templates::{templates_list, TemplateRow, TemplatesSync};
use crate::components::{
    both, error_of, error_view, use_me, when_opt, Badge, Csrf, FormError, Loading, PageTitle,
};
use crate::model::Role;

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
    let err = error_of(sync);
    let data = Resource::new(move || sync.version().get(), |_| templates_list());
    view! {
        <PageTitle title="Templates"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, data) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                let sync_result = sync.value().get().and_then(|r| r.ok());
                view! {
                    <section class="card">
                        <p>
                            "Last sync from the Content API: " <strong>{when_opt(&data.last_sync)}</strong>
                            ". Templates are also synced in the background."
                        </p>
                        {(me.can(Role::Operator) && data.can_sync).then(|| view! {
                            <ActionForm action=sync>
                                <Csrf token=me.csrf.clone()/>
                                <button type="submit" class="primary" disabled=move || sync.pending().get()>
                                    "Sync now"
                                </button>
                            </ActionForm>
                        })}
                        <FormError error=err/>
                        {sync_result.map(|r| view! {
                            <p class="notice ok" role="status">
                                {format!("Synced: {} seen, {} updated.", r.seen, r.updated)}
                                {(!r.failed.is_empty()).then(|| format!(" Not synced: {}", r.failed.join("; ")))}
                            </p>
                        })}
                    </section>
                    <div class="table-wrap">
                        <table class="data">
                            <caption class="visually-hidden">"Templates"</caption>
                            <thead>
                                <tr>
                                    <th scope="col">"Name"</th>
                                    <th scope="col">"Category"</th>
                                    <th scope="col">"Language"</th>
                                    <th scope="col">"Approval"</th>
                                    <th scope="col">"Last sync"</th>
                                    <th scope="col">"Body and variables"</th>
                                </tr>
                            </thead>
                            <tbody>
                                {data.templates.into_iter().map(template_row).collect_view()}
                            </tbody>
                        </table>
                    </div>
                }
                .into_any()
            })}
        </Transition>
    }
}

fn template_row(t: TemplateRow) -> impl IntoView {
    let vars = t
        .variables
        .iter()
        .enumerate()
        .map(
            |(i, v)| view! { <li><code>{format!("{{{{{}}}}}", i + 1)}</code> " " {v.clone()}</li> },
        )
        .collect_view();
    view! {
        <tr>
            <th scope="row"><code>{t.name.clone()}</code><div class="muted small">{t.source.clone()}</div></th>
            <td>{t.category.clone()}</td>
            <td>{t.language.clone()}</td>
            <td>
                <Badge state=t.approval_status.clone()/>
                {t.rejection_reason.clone().map(|r| view! { <div class="muted small">{r}</div> })}
            </td>
            <td>{when_opt(&t.synced_at)}</td>
            <td>
                <p class="template-body"><AnnotatedBody body=t.body.clone() variables=t.variables.clone()/></p>
                <ul class="vars">{vars}</ul>
            </td>
        </tr>
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

//! The audit log page: gate evaluations and send attempts with filters and
//! a CSV download, and the trail of staff actions.

use heimdall_codes::{Gate, AUDIT_DECISIONS};
use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::audit::{audit_log, AuditEntry, AuditQuery};
use crate::components::{error_view, when, Badge, ErrorNote, Loading, PageTitle};
use crate::error::AppError;

#[component]
pub fn AuditPage() -> impl IntoView {
    let query = use_query_map();
    let q = move || {
        let m = query.read();
        let get = |k: &str| m.get(k).filter(|v| !v.is_empty());
        AuditQuery {
            contact: get("contact"),
            campaign: get("campaign"),
            decision: get("decision"),
            reason: get("reason"),
            from: get("from"),
            to: get("to"),
        }
    };
    let data = Resource::new(q, |q| {
        audit_log(q.contact, q.campaign, q.decision, q.reason, q.from, q.to)
    });
    view! {
        <PageTitle title="Audit log"/>
        <Transition fallback=Loading>
            {move || {
                let q = q();
                Suspend::new(async move {
                    let result = data.await;
                    let field_error = result.as_ref().err().cloned();
                    let filters = view! { <Filters q=q.clone() error=field_error.clone()/> };
                    match result {
                        Err(AppError::Invalid { .. }) => filters.into_any(),
                        Err(e) => error_view(e),
                        Ok(v) => {
                            let csv = format!("/audit/export.csv?{}", q.to_query_string());
                            view! {
                                {filters}
                                <p>
                                    <a class="button" href=csv download="heimdall-audit.csv" id="audit-csv">"Download CSV"</a>
                                    " " <span class="muted small">{format!("Dates are days in {}. Newest first; at most 200 rows here, 10,000 in the CSV.", v.time_zone)}</span>
                                </p>
                                {if v.entries.is_empty() {
                                    view! { <p class="empty">"Nothing matches."</p> }.into_any()
                                } else {
                                    view! {
                                        <div class="table-wrap">
                                            <table class="data compact" id="audit">
                                                <thead><tr>
                                                    <th scope="col">"When"</th><th scope="col">"What"</th><th scope="col">"Decision"</th>
                                                    <th scope="col">"Reason"</th><th scope="col">"To"</th><th scope="col">"Campaign / contact"</th>
                                                    <th scope="col">"Actor"</th><th scope="col">"Verdicts"</th>
                                                </tr></thead>
                                                <tbody>{v.entries.into_iter().map(audit_row).collect_view()}</tbody>
                                            </table>
                                        </div>
                                    }.into_any()
                                }}
                                <h2>"Staff actions"</h2>
                                <div class="table-wrap">
                                    <table class="data compact" id="staff-actions">
                                        <thead><tr>
                                            <th scope="col">"When"</th><th scope="col">"Who"</th><th scope="col">"Action"</th>
                                            <th scope="col">"Target"</th><th scope="col">"From"</th><th scope="col">"Detail"</th>
                                        </tr></thead>
                                        <tbody>
                                            {v.staff_actions.into_iter().map(|a| view! {
                                                <tr>
                                                    <td>{when(&a.at)}</td><td>{a.actor}</td><td>{a.action}</td>
                                                    <td><code>{a.target.unwrap_or_default()}</code></td>
                                                    <td>{a.ip.unwrap_or_default()}</td>
                                                    <td class="small">{a.detail.unwrap_or_default()}</td>
                                                </tr>
                                            }).collect_view()}
                                        </tbody>
                                    </table>
                                </div>
                            }
                            .into_any()
                        }
                    }
                })
            }}
        </Transition>
    }
}

#[component]
fn Filters(q: AuditQuery, error: Option<AppError>) -> impl IntoView {
    let field_msg = |f: &str| error.as_ref().and_then(|e| e.for_field(f));
    let fields = ["contact", "campaign", "decision", "reason", "from", "to"];
    let msgs: Vec<(&str, Option<String>)> = fields.iter().map(|f| (*f, field_msg(f))).collect();
    let msg = move |f: &str| {
        msgs.iter()
            .find(|(k, _)| *k == f)
            .and_then(|(_, m)| m.clone())
            .map(|m| view! { <p class="field-error" id=format!("{f}-error") role="alert">{m}</p> })
    };
    let general = error.clone().filter(|e| !e.is_field_error(&fields));
    let decision = q.decision.clone().unwrap_or_default();
    let reason = q.reason.clone().unwrap_or_default();
    view! {
        <form method="get" action="/audit" class="filters card">
            {general.map(|e| view! { <ErrorNote error=e/> })}
            <div class="field">
                <label for="contact">"Contact id"</label>
                <input id="contact" name="contact" type="text" value=q.contact.clone().unwrap_or_default() aria-describedby="contact-error"/>
                {msg("contact")}
            </div>
            <div class="field">
                <label for="campaign">"Campaign id"</label>
                <input id="campaign" name="campaign" type="text" value=q.campaign.clone().unwrap_or_default() aria-describedby="campaign-error"/>
                {msg("campaign")}
            </div>
            <div class="field">
                <label for="decision">"Decision"</label>
                <select id="decision" name="decision" aria-describedby="decision-error">
                    <option value="" selected=decision.is_empty()>"Any"</option>
                    {AUDIT_DECISIONS.iter().map(|d| view! { <option value=*d selected=decision == *d>{*d}</option> }).collect_view()}
                </select>
                {msg("decision")}
            </div>
            <div class="field">
                <label for="reason">"Reason"</label>
                <select id="reason" name="reason" aria-describedby="reason-error">
                    <option value="" selected=reason.is_empty()>"Any"</option>
                    {Gate::ORDER.iter().map(|g| { let r = g.code(); view! { <option value=r selected=reason == r>{r}</option> } }).collect_view()}
                </select>
                {msg("reason")}
            </div>
            <div class="field">
                <label for="from">"From"</label>
                <input id="from" name="from" type="date" value=q.from.clone().unwrap_or_default() aria-describedby="from-error"/>
                {msg("from")}
            </div>
            <div class="field">
                <label for="to">"To"</label>
                <input id="to" name="to" type="date" value=q.to.clone().unwrap_or_default() aria-describedby="to-error"/>
                {msg("to")}
            </div>
            <div class="field actions">
                <button type="submit" class="primary">"Filter"</button>
                " " <a href="/audit">"Clear"</a>
            </div>
        </form>
    }
}

fn audit_row(e: AuditEntry) -> impl IntoView {
    let verdicts = e
        .verdicts
        .iter()
        .filter(|v| v.verdict != "pass" && v.verdict != "not_applicable")
        .map(|v| format!("{}: {}", v.gate, v.detail))
        .collect::<Vec<_>>()
        .join("; ");
    let all = e.verdicts.len();
    view! {
        <tr data-decision=e.decision.clone()>
            <td>{when(&e.at)}</td>
            <td>{e.kind.replace('_', " ")} <div class="muted small">{e.stage}</div></td>
            <td><Badge state=e.decision.clone()/></td>
            <td>{e.reason_code.map(|r| view! { <code>{r}</code> })}
                {e.error_code.map(|c| format!(" error {c}"))}</td>
            <td><code>{e.phone_masked.unwrap_or_default()}</code> <div class="muted small">{e.channel.unwrap_or_default()}</div></td>
            <td class="small">
                {e.campaign_id.map(|c| view! { <a href=format!("/campaigns/{c}")>"campaign"</a> " " })}
                {e.contact_id.map(|c| view! { <a href=format!("/contacts/{c}")>"contact"</a> })}
            </td>
            <td class="small">{e.actor}</td>
            <td class="small">
                {if verdicts.is_empty() { format!("{all} gate(s), none objected") } else { verdicts }}
                {e.detail.map(|d| view! { <div class="muted">{d}</div> })}
            </td>
        </tr>
    }
}

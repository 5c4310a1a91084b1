//! The dashboard: today at a glance, refreshed every few seconds in the
//! browser.

use leptos::prelude::*;
use leptos_router::hooks::use_query_map;

use crate::api::dashboard::dashboard;
use crate::components::{error_view, percent, poll_every, when, Loading, PageTitle};
use crate::pages::campaigns::{FailureTable, ReasonTable, StateCounts};

#[component]
pub fn DashboardPage() -> impl IntoView {
    let query = use_query_map();
    let day = move || query.read().get("day").filter(|d| !d.is_empty());
    let tick = poll_every(10);
    let data = Resource::new(move || (day(), tick.get()), |(day, _)| dashboard(day));
    view! {
        <PageTitle title="Dashboard"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let d = match data.await {
                    Ok(d) => d,
                    Err(e) => return error_view(e),
                };
                let tier = match d.tier_limit {
                    Some(limit) => format!("{} of {} people ({})", d.tier_used, limit, percent(d.tier_percent.map(|p| p / 100.0))),
                    None => format!("{} people (no limit)", d.tier_used),
                };
                let tier_pct = d.tier_percent.unwrap_or(0.0).clamp(0.0, 100.0);
                view! {
                    <form method="get" action="/" class="inline-form">
                        <label for="day">{format!("Day ({})", d.time_zone)}</label>
                        <input id="day" name="day" type="date" value=d.day.clone()/>
                        <button type="submit">"Show"</button>
                    </form>
                    <div class="stats">
                        <div class="stat"><span class="stat-value" id="sends-total">{d.total}</span><span class="stat-label">"messages that day"</span></div>
                        <div class="stat ok"><span class="stat-value">{percent(Some(d.delivery_rate))}</span><span class="stat-label">"delivered"</span></div>
                        <div class="stat ok"><span class="stat-value">{percent(Some(d.read_rate))}</span><span class="stat-label">"read"</span></div>
                        <div class="stat"><span class="stat-value">{d.waiting}</span><span class="stat-label">"waiting to send"</span></div>
                        <div class="stat"><span class="stat-value">{d.queue_depth.map(|q| q.to_string()).unwrap_or_else(|| "—".into())}</span><span class="stat-label">"jobs in the queue"</span></div>
                    </div>
                    <div class="grid-2">
                        <section class="card">
                            <h2>"Sends by state"</h2>
                            <StateCounts counts=d.sends_by_state.clone() id="sends-by-state"/>
                        </section>
                        <section class="card">
                            <h2>"Gate blocks by reason"</h2>
                            <ReasonTable counts=d.blocks_by_reason.clone() empty="Nothing blocked." id="blocks-by-reason"/>
                        </section>
                        <section class="card">
                            <h2>"24-hour window coverage (WhatsApp)"</h2>
                            <dl class="summary">
                                <dt>"Inside an open window"</dt><dd>{d.in_window}</dd>
                                <dt>"Outside, as an approved template"</dt><dd>{d.by_template}</dd>
                                <dt>"Free text refused (window closed)"</dt><dd>{d.free_form_blocked}</dd>
                            </dl>
                        </section>
                        <section class="card">
                            <h2>"Messaging tier"</h2>
                            <p>{tier}</p>
                            <div class="meter" role="meter" aria-valuemin="0" aria-valuemax="100"
                                aria-valuenow=format!("{tier_pct:.0}") aria-label="Tier use">
                                <span style=format!("width: {tier_pct:.1}%")></span>
                            </div>
                            <p class="muted small">"Unique people reached outside a window in the last 24 hours."</p>
                        </section>
                    </div>
                    <section class="card">
                        <h2>"Recent failures"</h2>
                        {if d.recent_failures.is_empty() {
                            view! { <p class="muted">"No failures."</p> }.into_any()
                        } else {
                            view! { <FailureTable failures=d.recent_failures.clone()/> }.into_any()
                        }}
                    </section>
                    <section class="card">
                        <h2>"Recent alerts"</h2>
                        {if d.recent_alerts.is_empty() {
                            view! { <p class="muted">"No alerts."</p> }.into_any()
                        } else {
                            view! {
                                <ul class="alerts">
                                    {d.recent_alerts.into_iter().map(|a| view! {
                                        <li>
                                            <strong>{a.title}</strong>
                                            {(a.count > 1).then(|| format!(" ×{}", a.count))}
                                            " · " <time>{when(&a.last_at)}</time>
                                            <div class="muted">{a.description}</div>
                                        </li>
                                    }).collect_view()}
                                </ul>
                            }.into_any()
                        }}
                    </section>
                }
                .into_any()
            })}
        </Transition>
    }
}

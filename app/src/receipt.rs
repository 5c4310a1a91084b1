//! A message's receipt as a printable page: one whole HTML document
//! rendered on the server, never hydrated, with no script, its stylesheet
//! inline (print rules included) so that a saved or printed copy stands
//! alone. Leptos escapes every text and attribute value, so nothing a
//! person, a provider or staff wrote (a user agent, a reason) is markup.
//!
//! Served by the API (`GET /api/v1/messages/{id}/receipt?format=html`) and
//! the console (`/messages/{id}/receipt`); the receipt itself is
//! `heimdall_domain::reports::receipt`'s.

use chrono::{DateTime, Utc};
use leptos::prelude::*;

use heimdall_domain::audit::chain::{ChainState, Position};
use heimdall_domain::reports::{ConsentRecord, HumanAuthorization, Receipt, StaffRef, TemplateRef};

/// The page's own stylesheet (inline: the page must stand alone).
const STYLE: &str = "
body { font: 14px/1.45 system-ui, sans-serif; color: #111; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; }
h1 { font-size: 1.5rem; margin-bottom: .25rem; }
h2 { font-size: 1.1rem; border-bottom: 1px solid #ccc; padding-bottom: .2rem; margin-top: 1.6rem; }
table { border-collapse: collapse; width: 100%; margin: .4rem 0; }
th, td { text-align: left; vertical-align: top; padding: .25rem .5rem; border: 1px solid #ddd; }
th { background: #f4f4f4; font-weight: 600; width: 14rem; }
table.rows th { width: auto; }
code, .hash { font-family: ui-monospace, monospace; font-size: .85em; word-break: break-all; }
.intact { color: #116611; }
.changed { color: #aa1111; font-weight: 700; }
.pending { color: #885500; }
.muted { color: #555; }
.actions { margin: 1rem 0; }
.actions a { margin-right: 1rem; }
blockquote { margin: .3rem 0; padding: .4rem .8rem; border-left: 3px solid #bbb; background: #fafafa; white-space: pre-wrap; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  .actions { display: none; }
  h2 { break-after: avoid; }
  tr, blockquote { break-inside: avoid; }
  a { color: inherit; text-decoration: none; }
}
";

/// Links the page offers besides its content (hidden when printed).
#[derive(Debug, Clone, Default)]
pub struct ReceiptLinks {
    /// The same receipt as JSON.
    pub json: Option<String>,
    /// Back to where staff came from (the contact's page).
    pub back: Option<(String, String)>,
}

/// The receipt as one whole HTML document.
pub fn receipt_page_html(receipt: &Receipt, links: &ReceiptLinks) -> String {
    let r = receipt.clone();
    let links = links.clone();
    let owner = Owner::new();
    let body = owner.with(|| view! { <ReceiptBody r=r links=links/> }.to_html());
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"robots\" content=\"noindex\">\
         <title>Receipt for message {}</title><style>{STYLE}</style></head><body>{}</body></html>",
        escape(&receipt.message.id),
        body.replace("<!>", "")
    )
}

/// Text for the document's title, outside Leptos.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

fn when_opt(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(when).unwrap_or_else(|| "—".into())
}

fn or_dash(v: &Option<String>) -> String {
    v.clone()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "—".into())
}

fn staff(s: &StaffRef) -> String {
    match (&s.email, &s.name) {
        (Some(e), Some(n)) => format!("{n} <{e}>"),
        (Some(e), None) => e.clone(),
        _ => format!("{} (account no longer exists)", s.id),
    }
}

fn state_class(s: ChainState) -> &'static str {
    match s {
        ChainState::Intact => "intact",
        ChainState::ChangedSinceChained => "changed",
        ChainState::NotChainedYet => "pending",
    }
}

/// One row's place in the audit chain.
#[component]
fn Chain(p: Position) -> impl IntoView {
    let class = format!("chain {}", state_class(p.state));
    view! {
        <span class=class data-chain=p.state.label()>{p.state.label()}</span>
        {p.entries.into_iter().map(|e| {
            let problem = e.problem.clone();
            view! {
                <div class="small">
                    {format!("{} #{} ({}) ", e.stream, e.seq, e.event)}
                    <span class="hash">{e.hash}</span>
                    {problem.map(|p| view! { <div class="changed">{p}</div> })}
                </div>
            }
        }).collect_view()}
    }
}

#[component]
fn Row(#[prop(into)] label: String, #[prop(into)] value: String) -> impl IntoView {
    view! { <tr><th scope="row">{label}</th><td>{value}</td></tr> }
}

#[component]
fn ReceiptBody(r: Receipt, links: ReceiptLinks) -> impl IntoView {
    let m = r.message;
    let template = m
        .template
        .as_ref()
        .map(|t: &TemplateRef| {
            let mut s = t.name.clone();
            if let Some(l) = &t.language {
                s.push_str(&format!(" ({l}"));
                if let Some(c) = &t.category {
                    s.push_str(&format!(", {c}"));
                }
                s.push(')');
            }
            if let Some(p) = &t.provider_id {
                s.push_str(&format!(", provider id {p}"));
            }
            s
        })
        .unwrap_or_else(|| "free-form text".into());
    let text = match (&m.text, &m.text_sha256) {
        (Some(t), Some(h)) => view! {
            <blockquote class="message-text">{t.clone()}</blockquote>
            <div class="small">"SHA-256 of the text as sent: " <span class="hash">{h.clone()}</span></div>
        }
        .into_any(),
        _ if m.content_cleared => view! {
            <p class="muted">"The content is no longer kept (cleared by retention); the records below remain."</p>
        }
        .into_any(),
        _ if !m.variables.is_empty() => view! {
            <table class="rows variables">
                <thead><tr><th scope="col">"Template variable"</th><th scope="col">"Value sent"</th></tr></thead>
                <tbody>
                    {m.variables.clone().into_iter().map(|(k, v)| view! { <tr><td><code>{k}</code></td><td>{v}</td></tr> }).collect_view()}
                </tbody>
            </table>
        }
        .into_any(),
        _ => ().into_any(),
    };
    let overall = r.chain;
    view! {
        <main class="receipt">
            <h1>"Receipt for message " <code>{m.id.clone()}</code></h1>
            <p class="muted">{format!("Generated {} by Heimdall. Everything below is read from the records; the audit chain column says whether each record still matches what was sealed.", when(&r.generated_at))}</p>
            <p>"Audit chain, all records cited: "
                <strong class=state_class(overall) data-chain-overall=overall.label()>{overall.label()}</strong>
            </p>
            <nav class="actions">
                {links.back.map(|(href, label)| view! { <a href=href>{label}</a> })}
                {links.json.map(|href| view! { <a href=href>"This receipt as JSON"</a> })}
            </nav>

            <section id="message">
                <h2>"The message"</h2>
                <table>
                    <Row label="Channel" value=m.channel.clone()/>
                    <Row label="Recipient" value=m.to.clone()/>
                    <Row label="Source" value=m.source.as_str()/>
                    <Row label="Purpose" value=m.purpose.clone().unwrap_or_else(|| "—".into())/>
                    <Row label="Content" value=template/>
                    <Row label="State" value=m.state.as_str()/>
                    {m.block_reason.clone().map(|b| view! { <Row label="Refused by" value=b/> })}
                    <Row label="Accepted" value=when(&m.accepted_at)/>
                    <Row label="Sent" value=when_opt(&m.sent_at)/>
                    <Row label="Delivered" value=when_opt(&m.delivered_at)/>
                    <Row label="Read" value=when_opt(&m.read_at)/>
                    {m.failed_at.map(|f| view! { <Row label="Failed" value=when(&f)/> })}
                    <Row label="Provider" value=format!("{} {}", or_dash(&m.provider), or_dash(&m.provider_sid))/>
                    {m.error_code.map(|c| view! { <Row label="Error" value=format!("{c} {}", m.error_message.clone().unwrap_or_default())/> })}
                    {m.part_count.map(|n| view! { <Row label="Part" value=format!("{} of {n}", m.part_index.unwrap_or(1))/> })}
                    {m.fallback_of.clone().map(|f| view! { <Row label="SMS fallback of" value=f/> })}
                </table>
                {text}
            </section>

            <section id="consent">
                <h2>"Consent in force when it was accepted"</h2>
                <p class="consent-summary">{r.consent.summary.clone()}</p>
                {r.consent.gate_detail.clone().map(|d| view! { <p class="small">"The consent gate said: " <em>{d}</em></p> })}
                {r.consent.record.map(|c| view! { <ConsentTable c=c/> })}
            </section>

            <section id="authorization">
                <h2>"Human authorization"</h2>
                <Authorization a=r.authorization/>
            </section>

            <section id="evaluations">
                <h2>"Gate verdicts"</h2>
                {r.evaluations.into_iter().map(|e| view! {
                    <h3>{format!("{} at {}: {}{}", when(&e.at), e.stage, e.decision, e.reason_code.as_deref().map(|c| format!(" ({c})")).unwrap_or_default())}</h3>
                    <p class="small">{format!("By {}. ", e.actor)} "Audit chain: " <Chain p=e.chain/></p>
                    <table class="rows verdicts">
                        <thead><tr><th scope="col">"Gate"</th><th scope="col">"Verdict"</th><th scope="col">"Why"</th></tr></thead>
                        <tbody>
                            {e.verdicts.into_iter().map(|v| view! {
                                <tr><td><code>{v.gate}</code></td><td>{v.verdict}</td><td>{v.detail}</td></tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                }).collect_view()}
            </section>

            <section id="provider">
                <h2>"Provider answers and status reports"</h2>
                <table class="rows">
                    <thead><tr><th scope="col">"When"</th><th scope="col">"What"</th><th scope="col">"Answer"</th><th scope="col">"Audit chain"</th></tr></thead>
                    <tbody>
                        {r.provider_answers.into_iter().map(|p| view! {
                            <tr class="provider-answer">
                                <td>{when(&p.at)}</td>
                                <td>{format!("send attempt to {}: {}", or_dash(&p.provider), if p.ok { "accepted" } else { "refused" })}</td>
                                <td>{or_dash(&p.answer)} {p.error_code.map(|c| format!(" (error {c})"))}</td>
                                <td><Chain p=p.chain/></td>
                            </tr>
                        }).collect_view()}
                        {r.status_events.into_iter().map(|s| view! {
                            <tr class="status-event">
                                <td>{when(&s.at)}</td>
                                <td>{format!("status report ({})", s.source)}</td>
                                <td>{s.status} {s.error_code.map(|c| format!(" (error {c})"))}</td>
                                <td class="muted">"not chained"</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            </section>

            {(!r.suppressions.is_empty()).then(|| view! {
                <section id="suppressions">
                    <h2>"Suppressions in force when it was accepted"</h2>
                    <table class="rows">
                        <thead><tr><th scope="col">"Since"</th><th scope="col">"Channel"</th><th scope="col">"Reason"</th><th scope="col">"By"</th><th scope="col">"Audit chain"</th></tr></thead>
                        <tbody>
                            {r.suppressions.into_iter().map(|s| view! {
                                <tr>
                                    <td>{when(&s.created_at)}</td>
                                    <td>{format!("{} ({})", s.channel, s.scope)}</td>
                                    <td>{s.reason} {s.source_ref.map(|x| format!(" ({x})"))}</td>
                                    <td>{s.created_by}</td>
                                    <td><Chain p=s.chain/></td>
                                </tr>
                            }).collect_view()}
                        </tbody>
                    </table>
                </section>
            })}
        </main>
    }
}

#[component]
fn ConsentTable(c: ConsentRecord) -> impl IntoView {
    let registered = c.registered_text.clone();
    view! {
        <table class="consent-evidence">
            <Row label="Channel" value=c.channel.clone()/>
            <Row label="Status now" value=c.status_now.clone()/>
            <Row label="Source" value=c.source.clone()/>
            <Row label="Strength" value=c.strength.clone()/>
            <Row label="Captured" value=when(&c.captured_at)/>
            <Row label="Recorded" value=format!("{} by {}", when(&c.recorded_at), c.recorded_by)/>
            <Row label="Confirmed" value=when_opt(&c.confirmed_at)/>
            <Row label="Revoked" value=match (&c.revoked_at, &c.revocation_source) {
                (Some(t), s) => format!("{} ({})", when(t), s.clone().unwrap_or_default()),
                _ => "—".into(),
            }/>
            <Row label="IP address" value=or_dash(&c.ip)/>
            <Row label="User agent" value=or_dash(&c.user_agent)/>
            <Row label="Page" value=or_dash(&c.page_url)/>
            <Row label="Form" value=or_dash(&c.form_id)/>
            <Row label="QR code" value=or_dash(&c.qr_code)/>
            <Row label="Inbound message" value=or_dash(&c.inbound_message_id)/>
            <Row label="Purpose" value=c.purpose.clone().unwrap_or_else(|| "every purpose that existed before purposes".into())/>
            <Row label="Consent text version" value=or_dash(&c.consent_text_version)/>
            <tr><th scope="row">"Consent text hash"</th><td class="hash">{or_dash(&c.consent_text_hash)}</td></tr>
            <tr><th scope="row">"Audit chain"</th><td><Chain p=c.chain.clone()/></td></tr>
        </table>
        {c.consent_text.clone().map(|t| view! { <p>"The text agreed to:"</p><blockquote class="consent-text">{t}</blockquote> })}
        {registered.map(|t| view! {
            <p class="small">{format!(
                "The form's registered consent text version {} ({}), written by {} on {}, has this hash.",
                t.version, t.channel, t.created_by, when(&t.created_at)
            )}</p>
        })}
    }
}

#[component]
fn Authorization(a: HumanAuthorization) -> impl IntoView {
    match a {
        HumanAuthorization::Campaign {
            campaign_id,
            campaign_name,
            authors,
            approved_by,
            approved_at,
            approved_content_hash,
            approved_template_digest,
            approval,
        } => view! {
            <p>"A campaign, approved by someone other than its authors."</p>
            <table class="approval">
                <Row label="Campaign" value=format!("{} ({campaign_id})", campaign_name.unwrap_or_default())/>
                <Row label="Written by" value={authors.iter().map(staff).collect::<Vec<_>>().join(", ")}/>
                <Row label="Approved by" value={approved_by.as_ref().map(staff).unwrap_or_else(|| "—".into())}/>
                <Row label="Approved" value=when_opt(&approved_at)/>
                <tr><th scope="row">"Approved content hash"</th><td class="hash">{or_dash(&approved_content_hash)}</td></tr>
                <tr><th scope="row">"Approved template digest"</th><td class="hash">{or_dash(&approved_template_digest)}</td></tr>
                {approval.map(|ap| view! {
                    <Row label="Approval record" value=format!("{} by {} at {}", ap.decision, staff(&ap.by), when(&ap.at))/>
                    <tr><th scope="row">"Approval in the audit chain"</th><td><Chain p=ap.chain/></td></tr>
                })}
            </table>
        }
        .into_any(),
        HumanAuthorization::Automation {
            api_key_id,
            api_key_name,
            reminder_id,
            automations,
        } => view! {
            <p>"An automation: an API key bound to approved templates."</p>
            <table class="automation">
                <Row label="API key" value=format!("{api_key_name}{}", api_key_id.map(|k| format!(" ({k})")).unwrap_or_default())/>
                {reminder_id.map(|r| view! { <Row label="Reminder" value=r/> })}
                {automations.into_iter().map(|a| view! {
                    <Row label=format!("Automation {}", a.name) value=format!(
                        "{}, created by {}, approved by {} {}",
                        a.status,
                        a.created_by,
                        a.approved_by.unwrap_or_else(|| "nobody".into()),
                        when_opt(&a.approved_at)
                    )/>
                }).collect_view()}
            </table>
        }
        .into_any(),
        HumanAuthorization::Staff { staff: s } => view! {
            <p class="staff-reply">{format!("A reply written in the inbox by {}.", staff(&s))}</p>
        }
        .into_any(),
        HumanAuthorization::Fallback { of, original } => view! {
            <p>{format!("The SMS fallback of message {of}, under that message's authorization:")}</p>
            {original.map(|o| view! { <Authorization a=*o/> })}
        }
        .into_any(),
        HumanAuthorization::System { why } => view! {
            <p>{format!("Sent by Heimdall itself: {why}; no human decision is needed.")}</p>
        }
        .into_any(),
    }
}

//! The preference page (`/p/{token}`, linked from the HELP reply): what the
//! person agreed to, on each channel and for each kind of message, when
//! and how, with a button to stop each one and one to stop everything.
//! Plain forms that post back: no script, and made for a phone.

use leptos::prelude::*;

use heimdall_domain::consent::preferences::{ChannelLine, PreferenceView, PurposeState};

use super::{channel_name, render_document, Page};

fn day(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.format("%-d %B %Y").to_string()
}

fn how(source: &str) -> &'static str {
    match source {
        "web_form" => "on a sign-up form",
        "qr" => "through a QR code's sign-up page",
        "keyword" => "by a message from your phone",
        "api" | "import" => "through one of our systems",
        "staff" => "with a member of our staff",
        _ => "by other means",
    }
}

/// One kind of message on one channel, and its button.
fn purpose_item(action: String, line: &ChannelLine, i: usize) -> impl IntoView {
    let p = line.purposes[i].clone();
    let channel = line.channel;
    let (status, detail, can_stop) = match &p.state {
        PurposeState::Receiving {
            since,
            how: source,
            text_version,
            before_purposes,
        } => (
            "You receive these",
            format!(
                "You agreed on {} {}{}{}.",
                day(since),
                how(source),
                text_version
                    .as_ref()
                    .map(|v| format!(" (wording {v})"))
                    .unwrap_or_default(),
                if *before_purposes {
                    ", before we asked separately for each kind of message"
                } else {
                    ""
                }
            ),
            true,
        ),
        PurposeState::Pending { since } => (
            "Waiting for your confirmation",
            format!(
                "You signed up on {}; nothing is sent until you confirm.",
                day(since)
            ),
            true,
        ),
        PurposeState::Stopped { since, .. } => (
            "Stopped",
            format!(
                "Stopped on {}. Nothing of this kind is sent to you.",
                day(since)
            ),
            false,
        ),
        PurposeState::NotAgreed => (
            "Not agreed",
            "You have not agreed to these: none are sent to you.".to_string(),
            false,
        ),
    };
    let id = format!("{}-{}", channel.as_str(), p.purpose.name);
    view! {
        <li class="purpose" id=id.clone() data-state=status>
            <h3>{p.purpose.label.clone()}</h3>
            {(!p.purpose.description.is_empty()).then(|| view! { <p class="hint">{p.purpose.description.clone()}</p> })}
            <p class="status"><strong>{status}</strong>" · "{detail}</p>
            {can_stop.then(|| view! {
                <form method="post" action=action>
                    <input type="hidden" name="what" value="purpose"/>
                    <input type="hidden" name="channel" value=channel.as_str()/>
                    <input type="hidden" name="purpose" value=p.purpose.name.clone()/>
                    <button type="submit" id=format!("stop-{id}")>
                        {format!("Stop {} by {}", p.purpose.label.to_lowercase(), channel_name(channel))}
                    </button>
                </form>
            })}
        </li>
    }
}

/// The page for `token` showing `view`; `notice` says what just happened
/// (or why nothing did).
pub fn preferences_page_html(view: &PreferenceView, token: &str, notice: Option<&str>) -> String {
    let view = view.clone();
    let action = format!("/p/{token}");
    let notice = notice.map(str::to_string);
    render_document(move || {
        let channels = view
            .channels
            .iter()
            .map(|line| {
                let items = (0..line.purposes.len())
                    .map(|i| purpose_item(action.clone(), line, i))
                    .collect_view();
                view! {
                    <section class="summary" data-channel=line.channel.as_str()>
                        <h2>{channel_name(line.channel)}</h2>
                        <ul class="purposes">{items}</ul>
                    </section>
                }
            })
            .collect_view();
        let any = view.receiving_any();
        view! {
            <Page title="Your messages from us">
                <h1>"Your messages from us"</h1>
                <p>{format!("For the phone number {}.", view.number_hint)}</p>
                {notice.map(|n| view! { <p class="notice" role="status" id="notice">{n}</p> })}
                {channels}
                {any.then(|| view! {
                    <form method="post" action=action.clone()>
                        <input type="hidden" name="what" value="everything"/>
                        <button type="submit" id="stop-everything">"Stop everything"</button>
                    </form>
                })}
                <p class="fine">
                    "A change here takes effect at once. You can also reply STOP to any of our messages. To receive messages again after stopping, send START from your phone."
                </p>
            </Page>
        }
    })
}

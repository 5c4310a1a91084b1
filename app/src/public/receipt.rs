//! What a person sees after submitting the form (the form's thanks, and
//! per channel what happened), and the short pages that only say
//! something: not found, closed, an invalid link, an error on our side.

use leptos::prelude::*;

use heimdall_domain::compliance::message_state::MessageState;
use heimdall_domain::optin::{ChannelReceipt, ChannelStatus, Form, SubmitReceipt};
use heimdall_domain::Channel;

use super::{channel_name, render_document, Page, Paragraphs};

/// The receipt after a submission: the form's thanks and, when something
/// was recorded, one line per channel. `sender_for` is the number the
/// channel sends from (shown only when it is a phone number), for "send
/// START / YES to ...".
pub fn receipt_page_html(
    form: &Form,
    receipt: Option<&SubmitReceipt>,
    sender_for: impl Fn(Channel) -> Option<String>,
) -> String {
    let title = form.title.clone();
    let thank_you = form.thank_you.clone();
    let lines: Option<Vec<(String, String)>> = receipt.map(|r| {
        r.channels
            .iter()
            .map(|c| {
                let reply_to = sender_for(c.channel)
                    .filter(|s| s.starts_with('+'))
                    .map(|s| format!(" to {s}"))
                    .unwrap_or_default();
                let what = match &c.purpose_label {
                    Some(purpose) => format!("{} ({purpose})", channel_name(c.channel)),
                    None => channel_name(c.channel).to_string(),
                };
                (what, status_text(c, &reply_to))
            })
            .collect()
    });
    render_document(move || {
        view! {
            <Page title=title.clone()>
                <h1>{title}</h1>
                <Paragraphs text=thank_you/>
                {lines
                    .map(|lines| {
                        let items = lines
                            .into_iter()
                            .map(|(channel, text)| {
                                view! {
                                    <li>
                                        <strong>{format!("{channel}:")}</strong>
                                        {format!(" {text}")}
                                    </li>
                                }
                            })
                            .collect_view();
                        view! { <ul class="status">{items}</ul> }
                    })}
                <p class="fine">
                    "You can opt out at any time by replying STOP to any of our messages."
                </p>
            </Page>
        }
    })
}

/// What happened on one channel, after "WhatsApp:". `reply_to` is
/// " to +1..." or empty.
fn status_text(c: &ChannelReceipt, reply_to: &str) -> String {
    let app_name = match c.channel {
        Channel::WhatsApp => "WhatsApp",
        Channel::Sms => "SMS",
    };
    match c.status {
        ChannelStatus::Subscribed => "you're signed up.".to_string(),
        ChannelStatus::AlreadySubscribed => "you were already signed up.".to_string(),
        ChannelStatus::NeedsProofFromNumber => format!(
            "this number opted out of our messages earlier, so a form cannot sign it up again. To receive messages again, send START{reply_to} from that phone on {app_name}."
        ),
        ChannelStatus::AlreadyAwaitingConfirmation => {
            "we already sent you a message to confirm. Reply YES to it, or open the link in it."
                .to_string()
        }
        ChannelStatus::AwaitingConfirmation => match &c.confirmation {
            Some(m) if m.state == MessageState::Deferred => format!(
                "we'll send you a message to confirm shortly ({}). Reply YES to it, or open the link in it.",
                if m.gate.as_deref() == Some("quiet_hours") {
                    "we don't send texts at night"
                } else {
                    "we're sending many messages right now"
                }
            ),
            Some(m) if m.state == MessageState::Blocked => format!(
                "we couldn't send you a confirmation message right now. To confirm, send YES{reply_to} on {app_name}."
            ),
            Some(_) => {
                "we've sent you a message to confirm. Reply YES to it, or open the link in it."
                    .to_string()
            }
            None => format!("please confirm by sending YES{reply_to}."),
        },
    }
}

/// A page that only says something: `title` as its heading, `text` as
/// paragraphs.
pub fn message_page_html(title: &str, text: &str) -> String {
    let title = title.to_string();
    let text = text.to_string();
    render_document(move || {
        view! {
            <Page title=title.clone()>
                <h1>{title}</h1>
                <Paragraphs text=text/>
            </Page>
        }
    })
}

/// No form (or QR code) at this address.
pub fn not_found_page_html() -> String {
    message_page_html(
        "Page not found",
        "We couldn't find this sign-up page. Check the address, or ask the person who gave it to you.",
    )
}

/// A problem on our side; nothing was recorded.
pub fn error_page_html() -> String {
    message_page_html(
        "Something went wrong",
        "We couldn't save your answer because of a problem on our side. Nothing was recorded. Please try again in a few minutes.",
    )
}

/// A submission to a form that was closed meanwhile.
pub fn form_closed_page_html(form: &Form) -> String {
    message_page_html(
        &form.title,
        "This sign-up form is closed. Nothing was saved.",
    )
}

/// A confirmation link that matches nothing.
pub fn invalid_link_page_html() -> String {
    message_page_html(
        "This link is not valid",
        "Check that you opened the whole link from our message.",
    )
}

//! Double opt-in: the page a confirmation link opens. Opening the link
//! shows a button (a link preview fetching the page confirms nothing);
//! pressing it posts back and confirms.

use leptos::prelude::*;

use heimdall_domain::optin::{ConfirmationStatus, ConfirmationView};

use super::{channel_name, message_page_html, render_document, Page};

/// The page for a confirmation link (`token`) in the state `view`;
/// `just_confirmed` after the button was pressed.
pub fn confirmation_page_html(
    view: &ConfirmationView,
    token: &str,
    just_confirmed: bool,
) -> String {
    let what = view.form_title.clone().unwrap_or_else(|| "our".to_string());
    let channel = channel_name(view.channel);
    match view.status {
        ConfirmationStatus::Pending => {
            let action = format!("/optin/confirm/{token}");
            render_document(move || {
                view! {
                    <Page title="Confirm your sign-up">
                        <h1>"Confirm your sign-up"</h1>
                        <p>
                            {format!(
                                "Press the button to confirm that you want {what} messages by {channel}.",
                            )}
                        </p>
                        <form method="post" action=action>
                            <button type="submit" id="confirm">"Yes, confirm"</button>
                        </form>
                        <p class="fine">
                            "If you didn't ask for this, ignore the message: nothing will be sent to you. You can opt out at any time by replying STOP."
                        </p>
                    </Page>
                }
            })
        }
        ConfirmationStatus::Confirmed => message_page_html(
            if just_confirmed {
                "Thank you, you're confirmed"
            } else {
                "You're already confirmed"
            },
            &format!(
                "You'll receive {what} messages by {channel}. You can opt out at any time by replying STOP."
            ),
        ),
        ConfirmationStatus::Expired => message_page_html(
            "This link has expired",
            "Confirmation links work for 7 days. Reply YES to our message, or sign up again on the form.",
        ),
        ConfirmationStatus::Revoked => message_page_html(
            "You've opted out",
            "You opted out of these messages, so this link no longer confirms anything. To receive messages again, send START from your phone to the number that messaged you.",
        ),
    }
}

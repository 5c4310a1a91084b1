//! The public opt-in pages, for people who are not staff: the sign-up form
//! (at `/optin/{slug}` and behind a QR code at `/q/{code}`), the receipt
//! after a submission, the double opt-in confirmation, a QR code's print
//! page, and the short message pages (not found, closed, expired, error).
//!
//! Each `*_html` function renders one whole HTML document on the server
//! with Leptos components. These pages are never hydrated: they carry no
//! script and work without JavaScript (forms are plain `POST`s). Leptos
//! escapes every text and attribute value, so staff and visitor text is
//! never markup. Compiled with `ssr` only, the components take
//! `heimdall_domain` types directly.
//!
//! The server (`heimdall-server`'s `routes::optin`) parses requests, calls
//! `heimdall_domain::optin`, chooses the status code and headers, and
//! sends what these functions return; it also serves [`STYLESHEET`] at
//! [`STYLESHEET_PATH`].
//!
//! - [`form`]: the sign-up form, with its errors and the QR landing's
//!   WhatsApp link.
//! - [`receipt`]: the receipt after a submission, and the message pages.
//! - [`qr`]: a QR code's print page.
//! - [`confirm`]: the double opt-in confirmation pages.
//! - [`preferences`]: the preference page a HELP reply links to.

pub mod confirm;
pub mod form;
pub mod preferences;
pub mod qr;
pub mod receipt;

use leptos::prelude::*;

use heimdall_domain::Channel;

pub use confirm::confirmation_page_html;
pub use form::{form_page_html, FormPage};
pub use preferences::preferences_page_html;
pub use qr::qr_print_page_html;
pub use receipt::{
    error_page_html, form_closed_page_html, invalid_link_page_html, message_page_html,
    not_found_page_html, receipt_page_html,
};

/// Where the server serves [`STYLESHEET`]; every page links to it.
pub const STYLESHEET_PATH: &str = "/optin-assets/optin.css";

/// The public pages' stylesheet (phone first, large tap targets, print
/// rules for the QR page). Kept apart from the console's `style/*.css`,
/// which `scripts/build-site` concatenates into the console's stylesheet.
pub const STYLESHEET: &str = include_str!("optin.css");

/// Renders a page to a whole HTML document: the doctype, then `view`
/// (a [`Page`]) rendered to HTML inside its own reactive owner.
///
/// Leptos writes an empty comment `<!>` after lists and in place of an
/// absent optional part, as a placeholder for hydration. These pages are
/// never hydrated, so the placeholders are removed. They cannot be
/// confused with content: Leptos escapes `<` in every text and attribute
/// value, and the only raw markup on any page is the QR code's SVG, which
/// has no comments.
fn render_document<V: IntoView>(view: impl FnOnce() -> V) -> String {
    let owner = Owner::new();
    let html = owner.with(|| view().to_html());
    format!("<!doctype html>\n{}", html.replace("<!>", ""))
}

/// The document around a page: its title, the viewport for phones, the
/// stylesheet, and `noindex` (sign-up pages are not for search engines).
#[component]
fn Page(#[prop(into)] title: String, children: Children) -> impl IntoView {
    view! {
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{title}</title>
                <link rel="stylesheet" href=STYLESHEET_PATH/>
                <meta name="robots" content="noindex"/>
            </head>
            <body>
                <main>{children()}</main>
            </body>
        </html>
    }
}

/// Plain text as paragraphs: blank lines separate them, single newlines
/// break lines.
#[component]
fn Paragraphs(#[prop(into)] text: String) -> impl IntoView {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let lines = p
                .lines()
                .enumerate()
                .map(|(i, line)| {
                    view! {
                        {(i > 0).then(|| view! { <br/> })}
                        {(!line.is_empty()).then(|| line.to_string())}
                    }
                })
                .collect_view();
            view! { <p>{lines}</p> }
        })
        .collect_view()
}

/// A channel as a person knows it.
pub fn channel_name(c: Channel) -> &'static str {
    match c {
        Channel::WhatsApp => "WhatsApp",
        Channel::Sms => "Text message (SMS)",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paragraphs_split_on_blank_lines_and_escape_text() {
        let html = render_document(|| view! { <Paragraphs text="a\nb\n\n<c>\n\n\n  d & 'e'  "/> });
        assert_eq!(
            html,
            "<!doctype html>\n<p>a<br>b</p><p>&lt;c&gt;</p><p>d &amp; 'e'</p>"
        );
    }

    #[test]
    fn a_document_has_no_script_and_no_placeholders() {
        let html = message_page_html("<Title>", "One\n\nTwo");
        assert_eq!(
            html,
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
             <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
             <title>&lt;Title&gt;</title><link rel=\"stylesheet\" href=\"/optin-assets/optin.css\">\
             <meta name=\"robots\" content=\"noindex\"></head><body><main>\
             <h1>&lt;Title&gt;</h1><p>One</p><p>Two</p></main></body></html>"
        );
    }
}

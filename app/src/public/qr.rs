//! A QR code's print page: the code large, the address it leads to and
//! where it is put up, with links to the PNG and SVG files (hidden when
//! printed).

use leptos::prelude::*;

use heimdall_domain::optin::{Form, QrCode};

use super::{render_document, Page};

/// The print page of `qr`, which leads to `form`. `svg` is the code as an
/// SVG document; its `<svg>` element is inlined.
pub fn qr_print_page_html(form: &Form, qr: &QrCode, svg: &str) -> String {
    let title = format!("{} — {}", form.title, qr.source_label);
    let form_title = form.title.clone();
    let url = qr.url.clone();
    let label = qr.source_label.clone();
    let png_href = format!("/q/{}.png?size=1200", qr.code);
    let svg_href = format!("/q/{}.svg", qr.code);
    // Inline the SVG element (without its XML declaration).
    let svg = svg
        .find("<svg")
        .map(|i| svg[i..].to_string())
        .unwrap_or_default();
    render_document(move || {
        view! {
            <Page title=title>
                <div class="print">
                    <h1>{form_title.clone()}</h1>
                    <p>"Scan with your phone's camera to sign up."</p>
                    <div role="img" aria-label=format!("QR code for {url}") inner_html=svg></div>
                    <p class="url">{url.clone()}</p>
                    <p class="label">{label}</p>
                    <p class="noprint hint">
                        "Print this page from your browser's menu. "
                        <a href=png_href>"Download PNG"</a>
                        " · "
                        <a href=svg_href>"Download SVG"</a>
                    </p>
                </div>
            </Page>
        }
    })
}

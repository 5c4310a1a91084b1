//! Heimdall's console and public pages, rendered on the server and hydrated
//! in the browser; the public opt-in pages (`public`, `ssr` only) are
//! rendered on the server only and never hydrated.
//!
//! Server functions here are public HTTP endpoints: each one checks the
//! session and the role first, then calls `heimdall-domain`. No business
//! rule lives in this crate, and no page relies on what the browser hides:
//! the server refuses what a role may not do.

// Deep view types (nested tables of a contact's timeline) need more room.
#![recursion_limit = "256"]

pub mod api;
pub mod components;
pub mod error;
pub mod layout;
pub mod model;
pub mod pages;
#[cfg(feature = "ssr")]
pub mod public;
#[cfg(feature = "ssr")]
pub mod receipt;
#[cfg(feature = "ssr")]
pub mod server;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::{
    components::{ParentRoute, Route, Router, Routes},
    path, SsrMode,
};

use crate::layout::ConsoleLayout;
use crate::pages::audit::AuditPage;
use crate::pages::auth::{LoginPage, SetupPage};
use crate::pages::campaigns::{CampaignEditPage, CampaignPage, CampaignsPage};
use crate::pages::contacts::{ContactPage, ContactsPage};
use crate::pages::dashboard::DashboardPage;
use crate::pages::forms::{FormEditPage, FormPage, FormsPage};
use crate::pages::inbox::InboxPage;
use crate::pages::settings::{AutomationsPage, SettingsPage};
use crate::pages::templates::TemplatesPage;

/// The HTML document around the app; rendered on the server only.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    content_security_policy();
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone() />
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The console's Content-Security-Policy, on every page it renders: scripts
/// only from this site and the inline hydration script carrying this
/// response's nonce (Leptos adds it to every script it writes), WebAssembly
/// allowed to compile, nothing from elsewhere, never inside a frame.
#[cfg(feature = "ssr")]
fn content_security_policy() {
    use actix_web::http::header::{HeaderValue, CONTENT_SECURITY_POLICY};
    let (Some(nonce), Some(res)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_actix::ResponseOptions>(),
    ) else {
        return;
    };
    let policy = format!(
        "default-src 'self'; script-src 'self' 'nonce-{}' 'wasm-unsafe-eval'; \
         style-src 'self'; style-src-attr 'unsafe-inline'; img-src 'self' data:; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
        &*nonce
    );
    if let Ok(v) = HeaderValue::from_str(&policy) {
        res.insert_header(CONTENT_SECURITY_POLICY, v);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="heimdall" href="/pkg/heimdall.css"/>
        <Title text="Heimdall"/>
        <Router>
            <Routes fallback=|| view! { <NotFound/> }>
                <Route path=path!("/login") view=LoginPage ssr=SsrMode::Async/>
                <Route path=path!("/setup/:token") view=SetupPage ssr=SsrMode::Async/>
                <ParentRoute path=path!("") view=ConsoleLayout ssr=SsrMode::Async>
                    <Route path=path!("") view=DashboardPage/>
                    <Route path=path!("/templates") view=TemplatesPage/>
                    <Route path=path!("/campaigns") view=CampaignsPage/>
                    <Route path=path!("/campaigns/new") view=CampaignEditPage/>
                    <Route path=path!("/campaigns/:id") view=CampaignPage/>
                    <Route path=path!("/campaigns/:id/edit") view=CampaignEditPage/>
                    <Route path=path!("/contacts") view=ContactsPage/>
                    <Route path=path!("/contacts/:id") view=ContactPage/>
                    <Route path=path!("/inbox") view=InboxPage/>
                    <Route path=path!("/inbox/:id") view=InboxPage/>
                    <Route path=path!("/audit") view=AuditPage/>
                    <Route path=path!("/automations") view=AutomationsPage/>
                    <Route path=path!("/settings") view=SettingsPage/>
                    <Route path=path!("/forms") view=FormsPage/>
                    <Route path=path!("/forms/new") view=FormEditPage/>
                    <Route path=path!("/forms/:id") view=FormPage/>
                    <Route path=path!("/forms/:id/edit") view=FormEditPage/>
                </ParentRoute>
            </Routes>
        </Router>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    {
        if let Some(resp) = use_context::<leptos_actix::ResponseOptions>() {
            resp.set_status(actix_web::http::StatusCode::NOT_FOUND);
        }
    }
    view! {
        <main class="content" id="main">
            <h1>"Not found"</h1>
            <p><a href="/">"Back to the dashboard"</a></p>
        </main>
    }
}

/// Entry point of the WASM bundle: hydrate the server-rendered page.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(App);
    // Mark the page as hydrated once the work queued by hydration has run
    // (before the next paint): browser tests wait for it before they click,
    // so a click never lands on the server-rendered page before its
    // handlers are attached.
    leptos::prelude::request_animation_frame(|| {
        if let Some(root) = leptos::prelude::document().document_element() {
            let _ = root.set_attribute("data-hydrated", "");
        }
    });
}

//! The frame around every console page: the navigation (by role), who is
//! signed in, and the sign-out button. It fetches the signed-in staff
//! member once and shares it with the pages; without a session the server
//! answers the page with a redirect to the sign-in page.

use leptos::prelude::*;
use leptos_router::components::{Outlet, A};

use crate::api::auth::{current_staff, Logout};
use crate::api::inbox::inbox_counts;
use crate::components::{poll_every, Csrf, MeResource};
use crate::model::{Me, Role};

#[component]
pub fn ConsoleLayout() -> impl IntoView {
    let me = Resource::new(|| (), |_| current_staff());
    provide_context(MeResource(me));
    view! {
        <a class="skip-link" href="#main">"Skip to content"</a>
        <header class="topbar">
            <a class="brand" href="/">"Heimdall"</a>
            <Suspense fallback=|| ()>
                {move || Suspend::new(async move {
                    match me.await {
                        Ok(me) => view! { <Nav me=me/> }.into_any(),
                        Err(_) => view! {
                            <nav class="nav" aria-label="Console"><a href="/login">"Sign in"</a></nav>
                        }
                        .into_any(),
                    }
                })}
            </Suspense>
        </header>
        <main id="main" class="content" tabindex="-1">
            <Outlet/>
        </main>
    }
}

#[component]
fn Nav(me: Me) -> impl IntoView {
    let logout = ServerAction::<Logout>::new();
    let links: Vec<(&'static str, &'static str, Role)> = vec![
        ("/", "Dashboard", Role::Viewer),
        ("/campaigns", "Campaigns", Role::Viewer),
        ("/inbox", "Inbox", Role::Viewer),
        ("/contacts", "Contacts", Role::Viewer),
        ("/templates", "Templates", Role::Viewer),
        ("/audit", "Audit log", Role::Viewer),
        ("/automations", "Automations", Role::Viewer),
        ("/forms", "Forms", Role::Viewer),
        ("/settings", "Settings", Role::Admin),
    ];
    let name = me.display_name();
    let role = me.role.to_string();
    view! {
        <nav class="nav" aria-label="Console">
            <ul>
                {links
                    .into_iter()
                    .filter(|(_, _, r)| me.can(*r))
                    .map(|(href, label, _)| {
                        view! {
                            <li>
                                <A href=href exact=href == "/">{label}{(href == "/inbox").then(|| view! { <InboxBadge/> })}</A>
                            </li>
                        }
                    })
                    .collect_view()}
            </ul>
        </nav>
        <div class="whoami">
            <span class="who" title=me.email.clone()>{name}</span>
            <span class="badge badge-role">{role}</span>
            <ActionForm action=logout>
                <Csrf token=me.csrf.clone()/>
                <button type="submit" class="link-button">"Sign out"</button>
            </ActionForm>
        </div>
    }
}

/// Beside "Inbox": how many conversations wait for an answer (and how many of them are
/// assigned to me), and how many messages wait for a review. Fetched in the browser only
/// (the server renders the link without it, so hydration never disagrees), every 15 s.
#[component]
fn InboxBadge() -> impl IntoView {
    let tick = poll_every(15);
    let counts = LocalResource::new(move || {
        tick.get();
        inbox_counts()
    });
    // Read only once mounted in the browser: on the server (and before hydration) nothing
    // is read, so no Suspense around the navigation waits for it.
    let mounted = RwSignal::new(false);
    Effect::new(move |_| mounted.set(true));
    move || {
        if !mounted.get() {
            return None;
        }
        counts.get().and_then(Result::ok).map(|c| {
            let title = format!(
                "{} conversation(s) wait for an answer, {} of them assigned to you; {} message(s) to review",
                c.unread, c.unread_mine, c.to_review
            );
            view! {
                {(c.unread > 0).then(|| view! {
                    " " <span class="badge badge-unread" id="nav-unread" title=title.clone()>{c.unread}</span>
                })}
                {(c.to_review > 0).then(|| view! {
                    " " <span class="badge badge-review" id="nav-review" title=title.clone()>{format!("{} to check", c.to_review)}</span>
                })}
            }
        })
    }
}

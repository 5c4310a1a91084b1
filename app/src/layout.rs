//! The frame around every console page: the navigation (by role), who is
//! signed in, and the sign-out button. It fetches the signed-in staff
//! member once and shares it with the pages; without a session the server
//! answers the page with a redirect to the sign-in page.

use leptos::prelude::*;
use leptos_router::components::{Outlet, A};

use crate::api::auth::{current_staff, Logout};
use crate::components::{Csrf, MeResource};
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
                                <A href=href exact=href == "/">{label}</A>
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

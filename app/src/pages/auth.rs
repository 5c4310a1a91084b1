//! Sign-in and the first-admin setup page: the only console pages open
//! without a session.

use leptos::prelude::*;
use leptos_meta::Title;
use leptos_router::hooks::{use_params_map, use_query_map};

use crate::api::auth::{setup_status, whoami, Login, SetupAdmin};
use crate::components::{error_of, FieldError, FormError};

#[component]
pub fn LoginPage() -> impl IntoView {
    let action = ServerAction::<Login>::new();
    let err = error_of(action);
    let query = use_query_map();
    let next = move || query.read().get("next").unwrap_or_default();
    let who = Resource::new(|| (), |_| whoami());
    view! {
        <Title text="Sign in · Heimdall"/>
        <div class="auth-page">
            <main class="card auth-card" id="main">
                <h1>"Heimdall"</h1>
                <p class="muted">"Staff console: sign in with your email and password."</p>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        who.await.ok().flatten().map(|me| {
                            view! {
                                <p class="notice">
                                    "You are signed in as " {me.email} ". "
                                    <a href="/">"Go to the dashboard"</a>
                                </p>
                            }
                        })
                    })}
                </Suspense>
                <ActionForm action=action>
                    <FormError error=err fields=&["email", "password"]/>
                    <input type="hidden" name="next" value=next/>
                    <div class="field">
                        <label for="email">"Email"</label>
                        <input
                            id="email"
                            name="email"
                            type="email"
                            autocomplete="username"
                            required
                            aria-describedby="email-error"
                        />
                        <FieldError error=err field="email"/>
                    </div>
                    <div class="field">
                        <label for="password">"Password"</label>
                        <input
                            id="password"
                            name="password"
                            type="password"
                            autocomplete="current-password"
                            required
                            aria-describedby="password-error"
                        />
                        <FieldError error=err field="password"/>
                    </div>
                    <button type="submit" class="primary" disabled=move || action.pending().get()>
                        "Sign in"
                    </button>
                </ActionForm>
            </main>
        </div>
    }
}

#[component]
pub fn SetupPage() -> impl IntoView {
    let action = ServerAction::<SetupAdmin>::new();
    let err = error_of(action);
    let params = use_params_map();
    let token = move || params.read().get("token").unwrap_or_default();
    let valid = Resource::new(token, setup_status);
    view! {
        <Title text="Create the first admin · Heimdall"/>
        <div class="auth-page">
            <main class="card auth-card" id="main">
                <h1>"Welcome to Heimdall"</h1>
                <Suspense fallback=|| ()>
                    {move || Suspend::new(async move {
                        if valid.await.unwrap_or(false) {
                            view! {
                                <p>
                                    "No staff account exists yet. Create the first admin: "
                                    "they can then add the other staff in Settings."
                                </p>
                                <ActionForm action=action>
                                    <FormError error=err fields=&["email", "password", "password_again"]/>
                                    <input type="hidden" name="token" value=token/>
                                    <div class="field">
                                        <label for="email">"Email"</label>
                                        <input id="email" name="email" type="email" autocomplete="username"
                                            required aria-describedby="email-error"/>
                                        <FieldError error=err field="email"/>
                                    </div>
                                    <div class="field">
                                        <label for="name">"Name (optional)"</label>
                                        <input id="name" name="name" type="text" autocomplete="name"/>
                                    </div>
                                    <div class="field">
                                        <label for="password">"Password (at least 12 characters)"</label>
                                        <input id="password" name="password" type="password"
                                            autocomplete="new-password" required minlength="12"
                                            aria-describedby="password-error"/>
                                        <FieldError error=err field="password"/>
                                    </div>
                                    <div class="field">
                                        <label for="password_again">"Password again"</label>
                                        <input id="password_again" name="password_again" type="password"
                                            autocomplete="new-password" required
                                            aria-describedby="password_again-error"/>
                                        <FieldError error=err field="password_again"/>
                                    </div>
                                    <button type="submit" class="primary">"Create admin and sign in"</button>
                                </ActionForm>
                            }
                            .into_any()
                        } else {
                            view! {
                                <p class="notice error" role="alert">
                                    "This setup link is no longer valid: it was used, the server restarted "
                                    "(a new link is in the log), or a staff account already exists."
                                </p>
                                <p><a href="/login">"Sign in"</a></p>
                            }
                            .into_any()
                        }
                    })}
                </Suspense>
            </main>
        </div>
    }
}

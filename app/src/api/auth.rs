//! Signing in and out, the current staff member, and the first admin.

use leptos::prelude::*;

use crate::error::AppError;
use crate::model::Me;
#[cfg(feature = "ssr")]
use crate::model::Role;

/// The signed-in staff member (401 without a session).
#[server(prefix = "/_sf", endpoint = "current_staff")]
pub async fn current_staff() -> Result<Me, AppError> {
    use crate::server::*;
    no_store();
    respond(require(Role::Viewer).await.map(|ctx| ctx.me()))
}

/// Who is signed in, if anyone (for the sign-in page; never an error for
/// a missing session).
#[server(prefix = "/_sf", endpoint = "whoami")]
pub async fn whoami() -> Result<Option<Me>, AppError> {
    use crate::server::*;
    no_store();
    respond(optional_session().await.map(|c| c.map(|c| c.me())))
}

/// Sign in with email and password. Every refusal has the same message.
#[server(prefix = "/_sf", endpoint = "login")]
pub async fn login(email: String, password: String, next: Option<String>) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::access::sessions::{self, LoginAttempt, LoginError};
    respond(
        async move {
            let state = state()?;
            let facts = request_facts(state.cookie_name());
            check_origin(&state, &facts)?;
            if email.trim().is_empty() {
                return Err(AppError::invalid("email", "Enter your email address."));
            }
            if password.is_empty() {
                return Err(AppError::invalid("password", "Enter your password."));
            }
            let password = secrecy::SecretString::from(password);
            let ip = client_ip(&state.core, &facts).await;
            let new = sessions::login(
                &state.core,
                &state.throttle,
                LoginAttempt {
                    email: &email,
                    password: &password,
                    ip: ip.as_deref(),
                    user_agent: facts.user_agent.as_deref(),
                },
            )
            .await
            .map_err(|e| match e {
                LoginError::Refused => AppError::invalid("password", e.to_string()),
                LoginError::Throttled | LoginError::Busy => AppError::TooMany(e.to_string()),
                LoginError::Db(e) => internal(e),
            })?;
            set_session_cookie(&state, &new.token);
            leptos_actix::redirect(&safe_next(next.as_deref()));
            Ok(())
        }
        .await,
    )
}

/// Sign out: the session is deleted on the server and the cookie cleared.
#[server(prefix = "/_sf", endpoint = "logout")]
pub async fn logout(#[server(default)] csrf: String) -> Result<(), AppError> {
    use crate::server::*;
    respond(
        async move {
            let ctx = mutation(Role::Viewer, &csrf).await?;
            let ip = ctx.ip().await;
            heimdall_domain::access::sessions::logout(ctx.core(), &ctx.session, ip.as_deref())
                .await
                .map_err(internal)?;
            clear_session_cookie(&ctx.state);
            leptos_actix::redirect("/login");
            Ok(())
        }
        .await,
    )
}

/// Is this first-admin link still good?
#[server(prefix = "/_sf", endpoint = "setup_status")]
pub async fn setup_status(token: String) -> Result<bool, AppError> {
    use crate::server::*;
    no_store();
    respond(
        async move {
            let state = state()?;
            state
                .first_admin
                .is_valid(&state.core, &token)
                .await
                .map_err(internal)
        }
        .await,
    )
}

/// Create the first admin through the one-time link, and sign them in.
#[server(prefix = "/_sf", endpoint = "setup_admin")]
pub async fn setup_admin(
    token: String,
    email: String,
    name: Option<String>,
    password: String,
    password_again: String,
) -> Result<(), AppError> {
    use crate::server::*;
    use heimdall_domain::access::accounts::AccountError;
    use heimdall_domain::access::sessions::{self, LoginAttempt, SetupError};
    respond(
        async move {
            let state = state()?;
            let facts = request_facts(state.cookie_name());
            check_origin(&state, &facts)?;
            if !state
                .first_admin
                .is_valid(&state.core, &token)
                .await
                .map_err(internal)?
            {
                return Err(AppError::Conflict(SetupError::LinkInvalid.to_string()));
            }
            if password != password_again {
                return Err(AppError::invalid(
                    "password_again",
                    "The two passwords are not the same.",
                ));
            }
            let secret = secrecy::SecretString::from(password);
            let ip = client_ip(&state.core, &facts).await;
            let user = sessions::create_first_admin(
                &state.core,
                &state.first_admin,
                &token,
                &email,
                optional(name),
                &secret,
                ip.as_deref(),
            )
            .await
            .map_err(|e| match e {
                SetupError::LinkInvalid => AppError::Conflict(e.to_string()),
                SetupError::Account(AccountError::InvalidEmail(_))
                | SetupError::Account(AccountError::Exists(_)) => {
                    AppError::invalid("email", e.to_string())
                }
                SetupError::Account(AccountError::WeakPassword) => {
                    AppError::invalid("password", e.to_string())
                }
                other => internal(other),
            })?;
            let new = sessions::login(
                &state.core,
                &state.throttle,
                LoginAttempt {
                    email: &user.email,
                    password: &secret,
                    ip: ip.as_deref(),
                    user_agent: facts.user_agent.as_deref(),
                },
            )
            .await
            .map_err(internal)?;
            set_session_cookie(&state, &new.token);
            leptos_actix::redirect("/");
            Ok(())
        }
        .await,
    )
}

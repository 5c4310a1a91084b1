//! Small pieces every console page uses: the signed-in staff member from
//! context, error messages beside fields and above forms, the CSRF field,
//! time and duration formatting, a live countdown, and state badges.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use leptos::server_fn::ServerFn;

use crate::error::AppError;
use crate::model::Me;

/// The signed-in staff member, fetched once by the console layout.
#[derive(Clone, Copy)]
pub struct MeResource(pub Resource<Result<Me, AppError>>);

/// The staff member resource (from the layout), or a fresh one.
pub fn use_me() -> Resource<Result<Me, AppError>> {
    use_context::<MeResource>()
        .map(|m| m.0)
        .unwrap_or_else(|| Resource::new(|| (), |_| crate::api::auth::current_staff()))
}

/// The error an action's last call ended with, if any.
pub fn error_of<S>(action: ServerAction<S>) -> Signal<Option<AppError>>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Signal::derive(move || action.value().get().and_then(|r| r.err()))
}

/// Did the action's last call succeed?
pub fn succeeded<S>(action: ServerAction<S>) -> Signal<bool>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    Signal::derive(move || matches!(action.value().get(), Some(Ok(_))))
}

/// Both results, or the first error.
pub fn both<A, B>(a: Result<A, AppError>, b: Result<B, AppError>) -> Result<(A, B), AppError> {
    Ok((a?, b?))
}

/// The message for one field, shown right below it (and referenced by the
/// input's `aria-describedby`).
#[component]
pub fn FieldError(
    #[prop(into)] error: Signal<Option<AppError>>,
    field: &'static str,
) -> impl IntoView {
    move || {
        error.get().and_then(|e| e.for_field(field)).map(|m| {
            view! { <p class="field-error" id=format!("{field}-error") role="alert">{m}</p> }
        })
    }
}

/// An error that belongs to the whole form (not one of `fields`).
#[component]
pub fn FormError(
    #[prop(into)] error: Signal<Option<AppError>>,
    #[prop(optional)] fields: &'static [&'static str],
) -> impl IntoView {
    move || {
        error
            .get()
            .filter(|e| !e.is_field_error(fields))
            .map(|e| view! { <ErrorNote error=e/> })
    }
}

/// One error as a notice, with a way to sign in again when that is the cause.
#[component]
pub fn ErrorNote(error: AppError) -> impl IntoView {
    let signin = matches!(error, AppError::Unauthorized);
    view! {
        <div class="notice error" role="alert">
            <p>{error.to_string()}</p>
            {signin.then(|| view! { <p><a href="/login">"Sign in again"</a></p> })}
        </div>
    }
}

/// A success message after an action.
#[component]
pub fn Success(#[prop(into)] when: Signal<bool>, message: &'static str) -> impl IntoView {
    move || {
        when.get()
            .then(|| view! { <p class="notice ok" role="status">{message}</p> })
    }
}

/// The session's CSRF token, sent back by every form that changes something.
#[component]
pub fn Csrf(token: String) -> impl IntoView {
    view! { <input type="hidden" name="csrf" value=token/> }
}

/// A page's heading and its `<title>`.
#[component]
pub fn PageTitle(
    #[prop(into)] title: String,
    #[prop(optional)] children: Option<Children>,
) -> impl IntoView {
    let head = format!("{title} · Heimdall");
    view! {
        <leptos_meta::Title text=head/>
        <div class="page-head">
            <h1>{title}</h1>
            {children.map(|c| view! { <div class="page-actions">{c()}</div> })}
        </div>
    }
}

#[component]
pub fn Loading() -> impl IntoView {
    view! { <p class="muted" aria-live="polite">"Loading…"</p> }
}

/// `2026-11-17 12:00 UTC`: the same on the server and in the browser.
pub fn when(t: &DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub fn when_opt(t: &Option<DateTime<Utc>>) -> String {
    t.as_ref().map(when).unwrap_or_else(|| "—".into())
}

/// `3 h 12 min`, `4 min 05 s`, `closed`.
pub fn duration(secs: i64) -> String {
    if secs <= 0 {
        return "closed".into();
    }
    let h = secs / 3600;
    let m = (secs % 3600) / 60;
    let s = secs % 60;
    if h > 0 {
        format!("{h} h {m:02} min")
    } else {
        format!("{m} min {s:02} s")
    }
}

pub fn percent(rate: Option<f64>) -> String {
    match rate {
        Some(r) if r.is_finite() => format!("{:.1} %", r * 100.0),
        _ => "—".into(),
    }
}

/// Time left, rendered on the server and counting down in the browser.
#[component]
pub fn Countdown(seconds: i64) -> impl IntoView {
    let (left, set_left) = signal(seconds.max(0));
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || set_left.update(|s| *s = (*s - 1).max(0)),
            std::time::Duration::from_secs(1),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    view! {
        <span class="countdown" class:closed=move || left.get() == 0>
            {move || duration(left.get())}
        </span>
    }
}

/// A message or campaign state as a coloured badge.
#[component]
pub fn Badge(#[prop(into)] state: String) -> impl IntoView {
    let class = format!("badge badge-{}", state.replace([' ', '_'], "-"));
    view! { <span class=class>{state}</span> }
}

/// Re-run something every few seconds in the browser (live views); does
/// nothing on the server.
pub fn poll_every(seconds: u64) -> ReadSignal<u64> {
    let (tick, set_tick) = signal(0u64);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || set_tick.update(|t| *t += 1),
            std::time::Duration::from_secs(seconds),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}

/// A page's error in place of its content.
pub fn error_view(e: AppError) -> AnyView {
    view! { <ErrorNote error=e/> }.into_any()
}

/// A form to empty once its action succeeded (so the next entry starts
/// blank, and a password typed into it does not linger). Create it in the
/// page component, not inside a `Suspend`.
pub fn reset_on_success<S>(action: ServerAction<S>) -> NodeRef<leptos::html::Form>
where
    S: ServerFn<Error = AppError> + Clone + Send + Sync + 'static,
    S::Output: Clone + Send + Sync + 'static,
{
    let form = NodeRef::<leptos::html::Form>::new();
    Effect::new(move |_| {
        if matches!(action.value().get(), Some(Ok(_))) {
            if let Some(f) = form.get_untracked() {
                f.reset();
            }
        }
    });
    form
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_rates_read_well() {
        assert_eq!(duration(0), "closed");
        assert_eq!(duration(-5), "closed");
        assert_eq!(duration(65), "1 min 05 s");
        assert_eq!(duration(86_399), "23 h 59 min");
        assert_eq!(percent(Some(0.5)), "50.0 %");
        assert_eq!(percent(Some(f64::NAN)), "—");
        assert_eq!(percent(None), "—");
    }
}

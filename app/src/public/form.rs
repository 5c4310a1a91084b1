//! The sign-up form: name, phone and the form's own fields, one checkbox
//! per channel beside its consent text (with the text's version in a
//! hidden field, which is what the consent records), the honeypot, and
//! after a refused submission an error summary above the form and each
//! error beside its field, with what the person typed kept. Behind a QR
//! code the page also says where the code was scanned and offers a
//! WhatsApp link.

use leptos::either::Either;
use leptos::prelude::*;

use heimdall_domain::optin::{
    ConsentTextVersion, FieldErrors, Form, QrCode, SubmissionInput, HONEYPOT_FIELD,
};

use super::{channel_name, render_document, Page, Paragraphs};

/// What the form page shows besides the form itself.
pub struct FormPage<'a> {
    pub form: &'a Form,
    /// Where the form posts to: `/optin/{slug}` or `/q/{code}`.
    pub action: String,
    /// What the person sent, shown again after a refused submission.
    pub input: Option<&'a SubmissionInput>,
    pub errors: &'a FieldErrors,
    /// A general message above the form (rate limit).
    pub notice: Option<String>,
    /// The QR code the person scanned to get here.
    pub qr: Option<&'a QrCode>,
    pub whatsapp_link: Option<String>,
}

/// The form page as a whole HTML document; its title starts with
/// "Error: " when there are errors.
pub fn form_page_html(p: &FormPage<'_>) -> String {
    let title = if p.errors.is_empty() {
        p.form.title.clone()
    } else {
        format!("Error: {}", p.form.title)
    };
    let form = p.form.clone();
    let action = p.action.clone();
    let input = p.input.cloned();
    let errors = p.errors.clone();
    let notice = p.notice.clone();
    let scanned_at = p.qr.map(|q| q.source_label.clone());
    let whatsapp_link = p.whatsapp_link.clone();
    render_document(move || {
        view! {
            <Page title=title>
                <h1>{form.title.clone()}</h1>
                {scanned_at
                    .map(|at| view! { <p class="hint">{format!("You scanned our code at {at}.")}</p> })}
                <Paragraphs text=form.intro.clone()/>
                {(!errors.is_empty())
                    .then(|| view! { <ErrorSummary form=form.clone() errors=errors.clone()/> })}
                {notice.map(|n| view! { <p class="notice" role="status">{n}</p> })}
                {if form.active {
                    Either::Left(view! {
                        <SignUpForm form=form.clone() action=action input=input errors=errors.clone()/>
                    })
                } else {
                    Either::Right(view! { <p class="notice">"This sign-up form is closed."</p> })
                }}
                {whatsapp_link.map(|link| view! { <WhatsAppLink link=link/> })}
            </Page>
        }
    })
}

/// The id of a field's error message (`field_budget_max` →
/// `field-budget-max-error`).
fn error_id(field: &str) -> String {
    format!("{}-error", field.replace('_', "-"))
}

/// Where each error's field is, for the summary's links.
fn anchor_for(form: &Form, field: &str) -> String {
    match field {
        "channels" => form
            .channels
            .first()
            .map(box_id)
            .unwrap_or_else(|| "submit".into()),
        "form" => "submit".into(),
        f => f.replace('_', "-"),
    }
}

/// Every error above the form, each linking to its field: the whole form
/// first, then name, phone, the form's own fields, and the channels.
#[component]
fn ErrorSummary(form: Form, errors: FieldErrors) -> impl IntoView {
    let rank = |k: &str| match k {
        "form" => 0,
        "name" => 1,
        "phone" => 2,
        "channels" => 9,
        _ => 5,
    };
    let mut order: Vec<(&String, &String)> = errors.iter().collect();
    order.sort_by_key(|(k, _)| rank(k));
    let items = order
        .into_iter()
        .map(|(k, message)| {
            view! { <li><a href=format!("#{}", anchor_for(&form, k))>{message.clone()}</a></li> }
        })
        .collect_view();
    view! {
        <div class="summary" role="alert" tabindex="-1" id="error-summary" autofocus>
            <h2>"There is a problem"</h2>
            <ul>{items}</ul>
        </div>
    }
}

/// The form itself.
#[component]
fn SignUpForm(
    form: Form,
    action: String,
    input: Option<SubmissionInput>,
    errors: FieldErrors,
) -> impl IntoView {
    let value = |f: fn(&SubmissionInput) -> &str| input.as_ref().map(f).unwrap_or("").to_string();
    let name = value(|i| &i.name);
    let phone = value(|i| &i.phone);
    let extra_fields = form
        .fields
        .iter()
        .map(|f| {
            let name = format!("field_{}", f.key);
            let is_email = f.key.contains("email");
            let value = input
                .as_ref()
                .and_then(|i| i.fields.get(&f.key))
                .cloned()
                .unwrap_or_default();
            view! {
                <TextField
                    id=name.replace('_', "-")
                    error=errors.get(&name).cloned()
                    name=name
                    label=f.label.clone()
                    kind=if is_email { "email" } else { "text" }
                    autocomplete=if is_email { "email" } else { "off" }
                    value=value
                    required=f.required
                />
            }
        })
        .collect_view();
    let fine = format!(
        "{}By signing up you agree to receive the messages you ticked. Reply STOP to opt out, HELP for help. Msg & data rates may apply.",
        if form.double_opt_in {
            "We'll send you a message to confirm. "
        } else {
            ""
        }
    );
    view! {
        <form method="post" action=action accept-charset="utf-8">
            {errors
                .get("form")
                .cloned()
                .map(|e| view! { <p class="error" id="form-error">{e}</p> })}
            <TextField
                name="name"
                id="name"
                label="Your name"
                kind="text"
                autocomplete="name"
                value=name
                required=true
                error=errors.get("name").cloned()
            />
            <TextField
                name="phone"
                id="phone"
                label="Mobile number"
                hint="Include the country code if your number is from another country, like +1 415 555 2671."
                kind="tel"
                autocomplete="tel"
                value=phone
                required=true
                error=errors.get("phone").cloned()
            />
            {extra_fields}
            <Channels
                channels=form.channels.clone()
                input=input
                error=errors.get("channels").cloned()
            />
            <div class="hp" aria-hidden="true">
                <label for=HONEYPOT_FIELD>"Leave this field empty"</label>
                <input
                    type="text"
                    id=HONEYPOT_FIELD
                    name=HONEYPOT_FIELD
                    value=""
                    tabindex="-1"
                    autocomplete="off"
                />
            </div>
            <button type="submit" id="submit">"Sign up"</button>
            <p class="fine">{fine}</p>
        </form>
    }
}

/// A text input with its label, hint and error. Its `aria-describedby`
/// names the hint and the error; an error also sets `aria-invalid`.
#[component]
fn TextField(
    #[prop(into)] name: String,
    #[prop(into)] id: String,
    #[prop(into)] label: String,
    #[prop(optional)] hint: Option<&'static str>,
    /// The input's `type`: `text`, `tel` or `email`.
    kind: &'static str,
    autocomplete: &'static str,
    value: String,
    required: bool,
    error: Option<String>,
) -> impl IntoView {
    let invalid = error.is_some();
    let hint_id = format!("{id}-hint");
    let error_id = error_id(&name);
    let described = [
        hint.map(|_| hint_id.clone()),
        error.as_ref().map(|_| error_id.clone()),
    ]
    .into_iter()
    .flatten()
    .collect::<Vec<_>>()
    .join(" ");
    let label = if required {
        label
    } else {
        format!("{label} (optional)")
    };
    view! {
        <div class=if invalid { "field invalid" } else { "field" }>
            <label for=id.clone()>{label}</label>
            {hint.map(|h| view! { <p class="hint" id=hint_id>{h}</p> })}
            <input
                type=kind
                id=id
                name=name
                value=value
                autocomplete=autocomplete
                inputmode=(kind == "tel").then_some("tel")
                required=required
                aria-describedby=(!described.is_empty()).then_some(described)
                aria-invalid=invalid.then_some("true")
            />
            {error
                .map(|e| {
                    view! {
                        <p class="error" id=error_id>
                            <span class="visually-hidden">"Error: "</span>
                            {e}
                        </p>
                    }
                })}
        </div>
    }
}

/// A checkbox's id: `channel-whatsapp`, or `channel-whatsapp-reminders`.
fn box_id(text: &ConsentTextVersion) -> String {
    format!("channel-{}", text.key().replace([':', '_'], "-"))
}

/// The checkboxes the form offers: one per channel, or per channel and
/// purpose, each labelled with the channel (and the purpose) and its
/// consent text. After a refused submission a ticked box stays ticked,
/// unless the choices themselves were refused.
#[component]
fn Channels(
    channels: Vec<ConsentTextVersion>,
    input: Option<SubmissionInput>,
    error: Option<String>,
) -> impl IntoView {
    let has_error = error.is_some();
    let choices = channels
        .into_iter()
        .map(|text| {
            let key = text.key();
            let id = box_id(&text);
            // The version beside each box is what the consent records.
            let ticked = input.as_ref().is_some_and(|i| i.ticked(&key)) && !has_error;
            let heading = match &text.purpose_label {
                Some(purpose) => format!("{}: {purpose}", channel_name(text.channel)),
                None => channel_name(text.channel).to_string(),
            };
            view! {
                <div class="choice">
                    <input type="checkbox" id=id.clone() name="channel" value=key.clone() checked=ticked/>
                    <label for=id>
                        <strong>{heading}</strong>
                        <span class="consent">{text.text}</span>
                    </label>
                    <input
                        type="hidden"
                        name=format!("text_version_{key}")
                        value=text.version.to_string()
                    />
                </div>
            }
        })
        .collect_view();
    let inside = view! {
        <legend>"How may we message you?"</legend>
        <p class="hint" id="channels-hint">
            "Tick each one you agree to. You can opt out at any time by replying STOP."
        </p>
        {error
            .map(|e| {
                view! {
                    <p class="error" id="channels-error">
                        <span class="visually-hidden">"Error: "</span>
                        {e}
                    </p>
                }
            })}
        {choices}
    };
    if has_error {
        Either::Left(view! {
            <fieldset class="invalid" aria-describedby="channels-hint channels-error">
                {inside}
            </fieldset>
        })
    } else {
        Either::Right(view! { <fieldset aria-describedby="channels-hint">{inside}</fieldset> })
    }
}

/// The QR landing's other way in: a message on WhatsApp (which opens the
/// conversation window, not a subscription).
#[component]
fn WhatsAppLink(link: String) -> impl IntoView {
    view! {
        <p class="or">"or"</p>
        <a class="button whatsapp" href=link rel="noopener">
            "Message us on WhatsApp"
        </a>
        <p class="fine">
            "Writing to us lets us reply to you for 24 hours. It does not sign you up for messages."
        </p>
    }
}

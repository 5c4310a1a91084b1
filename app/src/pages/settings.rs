//! Settings (admins) and automations (everyone reads; admins create,
//! approvers approve).

use leptos::prelude::*;

use crate::api::settings::{
    automations_data, settings_data, AllowlistSave, ApiKeyCreate, ApiKeyRevoke, AutomationApprove,
    AutomationCreate, FallbackCodesSave, HelpTextSave, ProxiesSave, QuietHoursSave, RatesSave,
    RetentionRow, SenderSetActive, SettingValue, SettingsView, StaffUpdate, TierSave, UserCreate,
    API_KEY_SCOPES,
};
use crate::components::{
    both, error_of, error_view, reset_on_success, succeeded, use_me, when, when_opt, Badge, Csrf,
    FieldError, FormError, Loading, PageTitle, Success,
};
use crate::model::{Me, Role};

#[derive(Clone, Copy)]
struct SettingsActions {
    sender: ServerAction<SenderSetActive>,
    key_create: ServerAction<ApiKeyCreate>,
    key_revoke: ServerAction<ApiKeyRevoke>,
    user: ServerAction<UserCreate>,
    staff: ServerAction<StaffUpdate>,
    help: ServerAction<HelpTextSave>,
    fallback: ServerAction<FallbackCodesSave>,
    tier: ServerAction<TierSave>,
    rates: ServerAction<RatesSave>,
    quiet: ServerAction<QuietHoursSave>,
    allowlist: ServerAction<AllowlistSave>,
    proxies: ServerAction<ProxiesSave>,
    key_form: NodeRef<leptos::html::Form>,
    user_form: NodeRef<leptos::html::Form>,
}

#[component]
pub fn SettingsPage() -> impl IntoView {
    let me = use_me();
    let key_create = ServerAction::<ApiKeyCreate>::new();
    let user = ServerAction::<UserCreate>::new();
    let a = SettingsActions {
        sender: ServerAction::new(),
        key_create,
        key_revoke: ServerAction::new(),
        user,
        staff: ServerAction::new(),
        key_form: reset_on_success(key_create),
        user_form: reset_on_success(user),
        help: ServerAction::new(),
        fallback: ServerAction::new(),
        tier: ServerAction::new(),
        rates: ServerAction::new(),
        quiet: ServerAction::new(),
        allowlist: ServerAction::new(),
        proxies: ServerAction::new(),
    };
    let data = Resource::new(
        move || {
            (
                a.sender.version().get(),
                a.key_create.version().get(),
                a.key_revoke.version().get(),
                a.user.version().get(),
                a.staff.version().get(),
                a.help.version().get(),
                a.fallback.version().get(),
                a.tier.version().get(),
                a.rates.version().get(),
                a.quiet.version().get(),
                a.allowlist.version().get(),
                a.proxies.version().get(),
            )
        },
        |_| settings_data(),
    );
    view! {
        <PageTitle title="Settings"/>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, s) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                view! { <SettingsBody me=me s=s a=a/> }.into_any()
            })}
        </Transition>
    }
}

/// Where a setting's value comes from (the environment, or who set it in
/// the console and when).
fn origin_note(v: &SettingValue) -> impl IntoView {
    view! { <p class="muted small origin">"In force: " <code>{v.effective.clone()}</code> " (" {v.origin.clone()} ")"</p> }
}

#[component]
fn SettingsBody(me: Me, s: SettingsView, a: SettingsActions) -> impl IntoView {
    let csrf = me.csrf.clone();
    let sender_err = error_of(a.sender);
    let key_err = error_of(a.key_create);
    let revoke_err = error_of(a.key_revoke);
    let user_err = error_of(a.user);
    let help_err = error_of(a.help);
    let fb_err = error_of(a.fallback);
    let tier_err = error_of(a.tier);
    let rates_err = error_of(a.rates);
    let quiet_err = error_of(a.quiet);
    let allow_err = error_of(a.allowlist);
    let proxies_err = error_of(a.proxies);
    let senders = s
        .senders
        .clone()
        .into_iter()
        .map(|x| {
            let c = csrf.clone();
            let form = if x.paused_reason.is_some() {
                let cb = format!("authorize-{}", x.id);
                view! {
                    <ActionForm action=a.sender>
                        <Csrf token=c/>
                        <input type="hidden" name="id" value=x.id.clone()/>
                        <input type="hidden" name="active" value="true"/>
                        <label class="choice" for=cb.clone()>
                            <input id=cb.clone() type="checkbox" name="authorize" value="yes" required/>
                            "The sender is fixed: send its waiting messages (each through the gates again)"
                        </label>
                        <button type="submit" class="primary">"Re-activate"</button>
                    </ActionForm>
                }
                .into_any()
            } else if x.active {
                view! {
                    <ActionForm action=a.sender>
                        <Csrf token=c/>
                        <input type="hidden" name="id" value=x.id.clone()/>
                        <input type="hidden" name="active" value="false"/>
                        <button type="submit" class="danger">"Deactivate"</button>
                    </ActionForm>
                }
                .into_any()
            } else {
                let cb = format!("authorize-{}", x.id);
                view! {
                    <ActionForm action=a.sender>
                        <Csrf token=c/>
                        <input type="hidden" name="id" value=x.id.clone()/>
                        <input type="hidden" name="active" value="true"/>
                        <label class="choice" for=cb.clone()>
                            <input id=cb.clone() type="checkbox" name="authorize" value="yes" required/>
                            "I authorize sending from this sender"
                        </label>
                        <button type="submit" class="primary">"Activate"</button>
                    </ActionForm>
                }
                .into_any()
            };
            view! {
                <tr>
                    <th scope="row"><code>{x.address.clone()}</code></th>
                    <td>{x.kind.clone()}</td>
                    <td>{if x.paused_reason.is_some() { view! { <Badge state="paused"/> }.into_any() } else if x.active { view! { <Badge state="active"/> }.into_any() } else { view! { <Badge state="inactive"/> }.into_any() }}
                        {x.paused_reason.clone().map(|r| view! { <div class="notice small">{format!("Paused {}: {r}", when_opt(&x.paused_at))}</div> })}
                        {x.activated_by.clone().map(|b| view! { <div class="muted small">{format!("by {b}, {}", when_opt(&x.activated_at))}</div> })}</td>
                    <td>{form}</td>
                </tr>
            }
        })
        .collect_view();
    let keys = s
        .api_keys
        .clone()
        .into_iter()
        .map(|k| {
            let c = csrf.clone();
            view! {
                <tr>
                    <th scope="row">{k.name.clone()}</th>
                    <td><code>{format!("{}…", k.prefix)}</code>
                        <div class="muted small scopes">{k.scopes.join(", ")}</div></td>
                    <td>{k.created_by.clone()} <div class="muted small">{when(&k.created_at)}</div></td>
                    <td>{when_opt(&k.last_used_at)}</td>
                    <td>{match k.revoked_at {
                        Some(at) => view! { <span>{format!("revoked {}", when(&at))}</span> }.into_any(),
                        None => view! {
                            <ActionForm action=a.key_revoke>
                                <Csrf token=c/>
                                <input type="hidden" name="id" value=k.id.clone()/>
                                <button type="submit" class="danger">"Revoke"</button>
                            </ActionForm>
                        }.into_any(),
                    }}</td>
                </tr>
            }
        })
        .collect_view();
    let staff_err = error_of(a.staff);
    let users = s
        .users
        .iter()
        .map(|u| {
            let [c1, c2, c3] = std::array::from_fn(|_| csrf.clone());
            let [e1, e2, e3] = std::array::from_fn(|_| u.email.clone());
            let toggle = if u.active { "deactivate" } else { "reactivate" };
            let slug: String = u
                .email
                .chars()
                .map(|ch| if ch.is_ascii_alphanumeric() { ch } else { '-' })
                .collect();
            let toggle_id = format!("{toggle}-{slug}");
            let role_id = format!("role-{slug}");
            let role_for = role_id.clone();
            let set_role_id = format!("set-role-{slug}");
            let password_id = format!("password-{slug}");
            let password_for = password_id.clone();
            let active = u.active;
            let current = u.role.clone();
            let options = Role::ALL
                .iter()
                .map(|r| view! { <option value=r.as_str() selected=r.as_str() == current>{r.as_str()}</option> })
                .collect_view();
            view! {
                <tr>
                    <th scope="row">{u.email.clone()}</th>
                    <td>{u.name.clone().unwrap_or_default()}</td>
                    <td><span class="badge badge-role">{u.role.clone()}</span></td>
                    <td>{if u.active { "active" } else { "deactivated" }}</td>
                    <td class="staff-actions">
                        <ActionForm action=a.staff>
                            <Csrf token=c1/>
                            <input type="hidden" name="email" value=e1/>
                            <input type="hidden" name="action" value=toggle/>
                            <button type="submit" class=if active { "danger" } else { "" } id=toggle_id>
                                {if active { "Deactivate" } else { "Reactivate" }}
                            </button>
                        </ActionForm>
                        <ActionForm action=a.staff>
                            <Csrf token=c2/>
                            <input type="hidden" name="email" value=e2/>
                            <input type="hidden" name="action" value="role"/>
                            <label class="sr-only" for=role_for>"New role"</label>
                            <select name="role" id=role_id>{options}</select>
                            <button type="submit" id=set_role_id>"Change role"</button>
                        </ActionForm>
                        <ActionForm action=a.staff>
                            <Csrf token=c3/>
                            <input type="hidden" name="email" value=e3/>
                            <input type="hidden" name="action" value="password"/>
                            <label class="sr-only" for=password_for>"New password"</label>
                            <input type="password" name="password" id=password_id minlength="12" placeholder="new password (12+)" autocomplete="new-password" required/>
                            <button type="submit">"Reset password"</button>
                        </ActionForm>
                    </td>
                </tr>
            }
        })
        .collect_view();
    let codes = s
        .error_codes
        .iter()
        .filter(|e| e.action == "fallback")
        .map(|e| view! { <li><code>{e.code.map(|c| c.to_string()).unwrap_or_default()}</code> " " {e.meaning.clone()}</li> })
        .collect_view();
    let retention = s
        .retention
        .iter()
        .map(|r| {
            let last = last_run_text(r);
            let days = kept_for(r.days);
            view! {
                <tr data-kind=r.kind.clone()>
                    <th scope="row">{r.label.clone()}</th>
                    <td>{days}<div class="muted small"><code>{r.variable.clone()}</code></div></td>
                    <td>{last}</td>
                    <td class="num">{r.purged_last_30_days.to_string()}</td>
                </tr>
            }
        })
        .collect_view();
    let [csrf1, csrf2, csrf3, csrf4, csrf5, csrf6, csrf7, csrf8, csrf9] =
        std::array::from_fn(|_| csrf.clone());
    view! {
        <section class="card" id="senders">
            <h2>"Channels and senders"</h2>
            <p class="muted">"Nothing is sent from a sender until an admin activates it. Every change is recorded."</p>
            <FormError error=sender_err fields=&["authorize"]/>
            <FieldError error=sender_err field="authorize"/>
            <div class="table-wrap">
                <table class="data">
                    <thead><tr><th scope="col">"Sender"</th><th scope="col">"Kind"</th><th scope="col">"State"</th><th scope="col">"Change"</th></tr></thead>
                    <tbody>{senders}</tbody>
                </table>
            </div>
        </section>
        <section class="card" id="api-keys">
            <h2>"API keys"</h2>
            {s.new_key.clone().map(|k| view! {
                <div class="notice ok" role="status">
                    <p><strong>"Your new API key. It is shown once: store it now."</strong></p>
                    <p><code class="secret" id="new-api-key">{k}</code></p>
                </div>
            })}
            <FormError error=revoke_err/>
            <div class="table-wrap">
                <table class="data">
                    <thead><tr><th scope="col">"Name"</th><th scope="col">"Key and scopes"</th><th scope="col">"Created"</th><th scope="col">"Last used"</th><th scope="col">""</th></tr></thead>
                    <tbody>{keys}</tbody>
                </table>
            </div>
            <ActionForm action=a.key_create node_ref=a.key_form>
                <FormError error=key_err fields=&["name", "scopes"]/>
                <Csrf token=csrf1/>
                <div class="field">
                    <label for="key-name">"New key's name (what uses it)"</label>
                    <input id="key-name" name="name" type="text" required maxlength="100" aria-describedby="name-error"/>
                    <FieldError error=key_err field="name"/>
                </div>
                <fieldset class="field" aria-describedby="scopes-error">
                    <legend>"What this key may do (only what its user needs)"</legend>
                    {API_KEY_SCOPES.iter().map(|(name, field, what)| view! {
                        <label class="choice">
                            <input type="checkbox" name=*field value="on" id=*field/>
                            <code>{*name}</code> ": " {*what}
                        </label>
                    }).collect_view()}
                    <FieldError error=key_err field="scopes"/>
                </fieldset>
                <button type="submit" class="primary">"Create API key"</button>
            </ActionForm>
        </section>
        <section class="card" id="users">
            <h2>"Staff"</h2>
            <FormError error=staff_err fields=&["password", "role"]/>
            <div class="table-wrap">
                <table class="data">
                    <thead><tr><th scope="col">"Email"</th><th scope="col">"Name"</th><th scope="col">"Role"</th><th scope="col">"State"</th><th scope="col">"Change (their sessions end at once)"</th></tr></thead>
                    <tbody>{users}</tbody>
                </table>
            </div>
            <h3>"Add a staff member"</h3>
            <ActionForm action=a.user node_ref=a.user_form>
                <FormError error=user_err fields=&["email", "role", "password"]/>
                <Success when=succeeded(a.user) message="Staff member added."/>
                <Csrf token=csrf2/>
                <div class="field">
                    <label for="user-email">"Email"</label>
                    <input id="user-email" name="email" type="email" required autocomplete="off" aria-describedby="email-error"/>
                    <FieldError error=user_err field="email"/>
                </div>
                <div class="field">
                    <label for="user-name">"Name (optional)"</label>
                    <input id="user-name" name="name" type="text" autocomplete="off"/>
                </div>
                <div class="field">
                    <label for="user-role">"Role"</label>
                    <select id="user-role" name="role" aria-describedby="role-error">
                        {Role::ALL.iter().map(|r| view! {
                            <option value=r.as_str() selected=*r == Role::Operator>{format!("{r}: {}", r.describe())}</option>
                        }).collect_view()}
                    </select>
                    <FieldError error=user_err field="role"/>
                </div>
                <div class="field">
                    <label for="user-password">"First password (at least 12 characters; tell them to keep it safe)"</label>
                    <input id="user-password" name="password" type="password" required minlength="12" autocomplete="new-password" aria-describedby="password-error"/>
                    <FieldError error=user_err field="password"/>
                </div>
                <button type="submit" class="primary">"Add staff member"</button>
            </ActionForm>
        </section>
        <section class="card" id="runtime">
            <h2>"Messaging settings"</h2>
            <p class="muted">"Each setting applies at once, in every Heimdall process within a few seconds. Each shows where its value comes from: the environment, or who set it here."</p>
            <h3>"HELP reply"</h3>
            {origin_note(&s.help_text)}
            <ActionForm action=a.help>
                <FormError error=help_err fields=&["help_text"]/>
                <Success when=succeeded(a.help) message="Saved; applies now in every process."/>
                <Csrf token=csrf3/>
                <div class="field">
                    <label for="help_text">"Text sent when someone replies HELP"</label>
                    <textarea id="help_text" name="help_text" rows="3" required maxlength="1000" aria-describedby="help_text-error">{s.help_text.effective.clone()}</textarea>
                    <FieldError error=help_err field="help_text"/>
                </div>
                <button type="submit">"Save HELP reply"</button>
            </ActionForm>
            <h3>"Fallback to SMS"</h3>
            {origin_note(&s.fallback_codes)}
            <p class="muted small">"WhatsApp errors that re-send the message by SMS (through the gates again, with its own SMS consent). Now:"</p>
            <ul class="plain small">{codes}</ul>
            <ActionForm action=a.fallback>
                <FormError error=fb_err fields=&["codes"]/>
                <Success when=succeeded(a.fallback) message="Saved; applies now in every process."/>
                <Csrf token=csrf4/>
                <div class="field">
                    <label for="codes">"Error codes (comma separated)"</label>
                    <input id="codes" name="codes" type="text" value=s.fallback_codes.effective.clone() aria-describedby="codes-error"/>
                    <FieldError error=fb_err field="codes"/>
                </div>
                <button type="submit">"Save fallback codes"</button>
            </ActionForm>
            <h3>"Messaging tier"</h3>
            {origin_note(&s.tier_ladder)}
            {origin_note(&s.tier_limit)}
            <ActionForm action=a.tier>
                <FormError error=tier_err fields=&["ladder", "limit"]/>
                <Success when=succeeded(a.tier) message="Saved. The limit applies now."/>
                <Csrf token=csrf5/>
                <div class="field">
                    <label for="ladder">"Tier ladder (people per 24 hours, comma separated)"</label>
                    <input id="ladder" name="ladder" type="text" value=s.tier_ladder.effective.clone() aria-describedby="ladder-error"/>
                    <FieldError error=tier_err field="ladder"/>
                </div>
                <div class="field">
                    <label for="limit">"Current limit (applies at once; a number or 'unlimited')"</label>
                    <input id="limit" name="limit" type="text" value=s.tier_limit.effective.clone() aria-describedby="limit-error"/>
                    <FieldError error=tier_err field="limit"/>
                </div>
                <button type="submit">"Save tier"</button>
            </ActionForm>
            <h3>"Rate limits"</h3>
            {origin_note(&s.rate_per_second)}
            {origin_note(&s.recipient_pace_seconds)}
            <ActionForm action=a.rates>
                <FormError error=rates_err fields=&["rate_per_second", "recipient_pace_seconds"]/>
                <Success when=succeeded(a.rates) message="Saved; applies now in every process."/>
                <Csrf token=csrf6/>
                <div class="field">
                    <label for="rate_per_second">"Messages per second per sender"</label>
                    <input id="rate_per_second" name="rate_per_second" type="number" min="1" max="1000"
                        value=s.rate_per_second.effective.clone() aria-describedby="rate_per_second-error"/>
                    <FieldError error=rates_err field="rate_per_second"/>
                </div>
                <div class="field">
                    <label for="recipient_pace_seconds">"Seconds between WhatsApp messages to one person (0: off)"</label>
                    <input id="recipient_pace_seconds" name="recipient_pace_seconds" type="number" min="0" max="3600"
                        value=s.recipient_pace_seconds.effective.clone() aria-describedby="recipient_pace_seconds-error"/>
                    <FieldError error=rates_err field="recipient_pace_seconds"/>
                </div>
                <button type="submit">"Save rate limits"</button>
            </ActionForm>
            <h3>"Sending hours (SMS)"</h3>
            {origin_note(&s.quiet_hours)}
            <ActionForm action=a.quiet>
                <FormError error=quiet_err fields=&["quiet_hours"]/>
                <Success when=succeeded(a.quiet) message="Saved; applies now in every process."/>
                <Csrf token=csrf8/>
                <div class="field">
                    <label for="quiet_hours">"SMS may be sent between (the recipient's local time, HH:MM-HH:MM)"</label>
                    <input id="quiet_hours" name="quiet_hours" type="text" value=s.quiet_hours.effective.clone() aria-describedby="quiet_hours-error"/>
                    <FieldError error=quiet_err field="quiet_hours"/>
                </div>
                <button type="submit">"Save sending hours"</button>
            </ActionForm>
            <h3>"Phone allowlist"</h3>
            {origin_note(&s.phone_allowlist)}
            <ActionForm action=a.allowlist>
                <FormError error=allow_err fields=&["allowlist"]/>
                <Success when=succeeded(a.allowlist) message="Saved; applies now in every process."/>
                <Csrf token=csrf9/>
                <div class="field">
                    <label for="allowlist">"Only these numbers receive anything (comma separated; empty: everyone)"</label>
                    <textarea id="allowlist" name="allowlist" rows="2" aria-describedby="allowlist-error">{s.phone_allowlist.effective.clone()}</textarea>
                    <p class="muted small">"STOP is honoured from every number, listed or not."</p>
                    <FieldError error=allow_err field="allowlist"/>
                </div>
                <button type="submit">"Save allowlist"</button>
            </ActionForm>
            <h3>"Reverse proxies"</h3>
            <ActionForm action=a.proxies>
                <FormError error=proxies_err fields=&["proxies"]/>
                <Success when=succeeded(a.proxies) message="Saved; applies now."/>
                <Csrf token=csrf7/>
                <div class="field">
                    <label for="proxies">"Addresses of the reverse proxies in front of Heimdall (comma separated; applies at once)"</label>
                    <input id="proxies" name="proxies" type="text" value=s.trusted_proxies.clone() placeholder="none: every request's own address is used" aria-describedby="proxies-error"/>
                    <p class="muted small">"Their X-Forwarded-For header is then believed for opt-in evidence, sign-in throttling and the audit trail."</p>
                    <FieldError error=proxies_err field="proxies"/>
                </div>
                <button type="submit">"Save proxies"</button>
            </ActionForm>
        </section>
        <section class="card" id="retention">
            <h2>"Retention"</h2>
            <p class="muted">"Personal content past its time is purged daily (job apply_retention). The rows stay: that a message was sent or received, when, its state, the gates' verdicts, a STOP and every suppression. Set in the environment or heimdall.toml."</p>
            <div class="table-wrap">
                <table class="data">
                    <thead><tr><th scope="col">"What"</th><th scope="col">"Kept for"</th><th scope="col">"Last run"</th><th scope="col">"Purged, last 30 days"</th></tr></thead>
                    <tbody>{retention}</tbody>
                </table>
            </div>
        </section>
    }
}

/// A retention kind's last run: when, how many purged, how many left.
fn last_run_text(r: &RetentionRow) -> String {
    match (r.last_run_at, r.last_purged) {
        (Some(at), Some(n)) => {
            let deferred = match r.last_deferred {
                Some(d) if d > 0 => format!(" ({d} left for the next run)"),
                _ => String::new(),
            };
            format!("{}: {n} purged{deferred}", when(&at))
        }
        _ => "not run yet".to_string(),
    }
}

/// `90 days`, `1826 days (about 5 years)`.
fn kept_for(days: u32) -> String {
    match days {
        1 => "1 day".to_string(),
        365 | 366 => format!("{days} days (about a year)"),
        d if d >= 730 && d % 365 <= 1 => format!("{d} days (about {} years)", d / 365),
        d => format!("{d} days"),
    }
}

#[component]
pub fn AutomationsPage() -> impl IntoView {
    let me = use_me();
    let create = ServerAction::<AutomationCreate>::new();
    let approve = ServerAction::<AutomationApprove>::new();
    let create_form_ref = reset_on_success(create);
    let data = Resource::new(
        move || (create.version().get(), approve.version().get()),
        |_| automations_data(),
    );
    view! {
        <PageTitle title="Automations"/>
        <p class="muted">
            "An automation is an API key bound to approved templates and, if chosen, to free-form replies "
            "inside the 24-hour window after a person wrote (a bot answering people). It may send only once "
            "an approver who did not create it has approved it."
        </p>
        <Transition fallback=Loading>
            {move || Suspend::new(async move {
                let (me, d) = match both(me.await, data.await) {
                    Ok(v) => v,
                    Err(e) => return error_view(e),
                };
                let create_err = error_of(create);
                let approve_err = error_of(approve);
                let csrf = me.csrf.clone();
                let rows = d.automations.clone().into_iter().map(|x| {
                    let may_approve = x.status != "approved" && me.can(Role::Approver) && x.created_by != me.email;
                    let c = csrf.clone();
                    view! {
                        <tr>
                            <th scope="row">{x.name.clone()}</th>
                            <td>{x.api_key.clone()}</td>
                            <td>{x.templates.join(", ")}
                                {x.free_form.then(|| view! { <div class="small free-form">"+ free-form replies inside the window"</div> })}</td>
                            <td><Badge state=x.status.clone()/>
                                {x.approved_by.clone().map(|b| view! { <div class="muted small">{format!("by {b}, {}", when_opt(&x.approved_at))}</div> })}</td>
                            <td>{x.created_by.clone()}</td>
                            <td>{may_approve.then(|| view! {
                                <ActionForm action=approve>
                                    <Csrf token=c/>
                                    <input type="hidden" name="id" value=x.id.clone()/>
                                    <button type="submit" class="primary">"Approve"</button>
                                </ActionForm>
                            })}</td>
                        </tr>
                    }
                }).collect_view();
                let create_form = me.can(Role::Admin).then(|| view! {
                    <section class="card">
                        <h2>"New automation"</h2>
                        <ActionForm action=create node_ref=create_form_ref>
                            <FormError error=create_err fields=&["name", "api_key_id", "templates"]/>
                            <Csrf token=csrf.clone()/>
                            <div class="field">
                                <label for="auto-name">"Name"</label>
                                <input id="auto-name" name="name" type="text" required maxlength="200" aria-describedby="name-error"/>
                                <FieldError error=create_err field="name"/>
                            </div>
                            <div class="field">
                                <label for="api_key_id">"API key"</label>
                                <select id="api_key_id" name="api_key_id" required aria-describedby="api_key_id-error">
                                    <option value="">"Choose…"</option>
                                    {d.keys.iter().map(|k| view! { <option value=k.id.clone()>{format!("{} ({}…)", k.name, k.prefix)}</option> }).collect_view()}
                                </select>
                                <FieldError error=create_err field="api_key_id"/>
                            </div>
                            <fieldset class="field">
                                <legend>"Templates it may send"</legend>
                                {d.templates.iter().enumerate().map(|(i, t)| {
                                    let id = format!("tpl-{i}");
                                    view! {
                                        <label class="choice" for=id.clone()>
                                            <input id=id.clone() type="checkbox" name=format!("tpl[{}]", t.name) value="on"/>
                                            <code>{t.name.clone()}</code>
                                        </label>
                                    }
                                }).collect_view()}
                                <FieldError error=create_err field="templates"/>
                            </fieldset>
                            <div class="field">
                                <label class="choice" for="auto-free-form">
                                    <input id="auto-free-form" type="checkbox" name="free_form" value="on"/>
                                    "Free-form replies inside the 24-hour window"
                                </label>
                                <p class="muted small">
                                    "It may then answer a person in its own words (Markdown, formatted and split as an inbox reply) "
                                    "within 24 hours of their last message; never outside it, never after a STOP."
                                </p>
                            </div>
                            <button type="submit" class="primary">"Create (needs approval)"</button>
                        </ActionForm>
                    </section>
                });
                view! {
                    <FormError error=approve_err/>
                    {if d.automations.is_empty() {
                        view! { <p class="empty">"No automations yet."</p> }.into_any()
                    } else {
                        view! {
                            <div class="table-wrap">
                                <table class="data" id="automations">
                                    <thead><tr>
                                        <th scope="col">"Name"</th><th scope="col">"API key"</th><th scope="col">"Templates"</th>
                                        <th scope="col">"State"</th><th scope="col">"Created by"</th><th scope="col">""</th>
                                    </tr></thead>
                                    <tbody>{rows}</tbody>
                                </table>
                            </div>
                        }.into_any()
                    }}
                    {create_form}
                }
                .into_any()
            })}
        </Transition>
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};

    fn row(last: Option<(i64, i64)>) -> RetentionRow {
        RetentionRow {
            kind: "consent_evidence".into(),
            label: "Evidence".into(),
            variable: "HEIMDALL_RETAIN_CONSENT_EVIDENCE_DAYS".into(),
            days: 1826,
            last_run_at: last.map(|_| Utc.with_ymd_and_hms(2026, 12, 5, 3, 35, 0).unwrap()),
            last_purged: last.map(|(p, _)| p),
            last_deferred: last.map(|(_, d)| d),
            purged_last_30_days: 0,
        }
    }

    #[test]
    fn a_retention_run_reads_as_when_purged_and_left() {
        assert_eq!(last_run_text(&row(None)), "not run yet");
        assert_eq!(
            last_run_text(&row(Some((12, 0)))),
            "2026-12-05 03:35 UTC: 12 purged"
        );
        assert_eq!(
            last_run_text(&row(Some((3, 2)))),
            "2026-12-05 03:35 UTC: 3 purged (2 left for the next run)"
        );
        assert_eq!(kept_for(1), "1 day");
        assert_eq!(kept_for(90), "90 days");
        assert_eq!(kept_for(1826), "1826 days (about 5 years)");
        assert_eq!(kept_for(730), "730 days (about 2 years)");
        assert_eq!(kept_for(365), "365 days (about a year)");
    }
}

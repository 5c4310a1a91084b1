//! Staff sessions for the console: signing in with email and password,
//! login throttling (per account in the database, per address in memory),
//! session and CSRF tokens, and the one-time link that creates the first
//! admin while no staff account exists.
//!
//! Policy, in one place:
//! - a session token is 32 random bytes (hex); only its SHA-256 is stored
//!   (`staff_sessions.id`), so a copy of the database cannot sign anyone in;
//! - a session ends after [`IDLE_TIMEOUT`] without use, and in any case
//!   [`ABSOLUTE_TIMEOUT`] after sign-in; signing out deletes it;
//! - [`MAX_ACCOUNT_FAILURES`] wrong passwords in a row lock the account for
//!   [`ACCOUNT_LOCK`]; [`MAX_ADDRESS_FAILURES`] failures from one address
//!   within [`ADDRESS_WINDOW`] refuse that address for the rest of the window;
//! - every refusal gives the same answer ([`LoginError::Refused`]) and takes
//!   about the same time (unknown emails are checked against
//!   [`accounts::dummy_password_hash`]), so it reveals nothing about which
//!   accounts exist or are locked.
//!
//! This module must never log, return or store a session token, a first-admin
//! token or a password except to hand a new token once to its caller.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use rand::RngCore;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};
use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::access::accounts::{self, AccountError, Role, StaffUser};
use crate::audit;
use crate::entities::{api_key, staff_audit, staff_session, staff_user};
use crate::Core;

/// A session ends after this long without a request.
pub const IDLE_TIMEOUT: Duration = Duration::hours(12);
/// A session ends this long after sign-in, however busy.
pub const ABSOLUTE_TIMEOUT: Duration = Duration::days(7);
/// Wrong passwords in a row before an account is locked.
pub const MAX_ACCOUNT_FAILURES: i32 = 5;
/// How long a locked account stays locked.
pub const ACCOUNT_LOCK: Duration = Duration::minutes(15);
/// Failed sign-ins from one address within [`ADDRESS_WINDOW`] before the
/// address is refused. Higher than the per-account limit because several
/// people may share an address (an office, a proxy).
pub const MAX_ADDRESS_FAILURES: usize = 30;
/// The moving window for [`MAX_ADDRESS_FAILURES`].
pub const ADDRESS_WINDOW: Duration = Duration::minutes(15);
/// Sliding the expiry writes to the database at most this often per session.
const SLIDE_STEP: Duration = Duration::minutes(5);

/// A signed-in staff member's session. Holds no secret that could sign in:
/// `id` is the hash of the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    pub id: String,
    pub user: StaffUser,
    /// Sent back with every state-changing request (hidden form field).
    pub csrf_token: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

impl Session {
    /// Does the presented CSRF token belong to this session (constant time)?
    pub fn csrf_matches(&self, presented: &str) -> bool {
        let a = self.csrf_token.as_bytes();
        let b = presented.trim().as_bytes();
        a.len() == b.len() && bool::from(a.ct_eq(b))
    }

    /// The actor recorded for this staff member's actions.
    pub fn actor(&self) -> String {
        self.user.email.clone()
    }
}

/// A session just created: the token goes into the cookie, once.
#[derive(Debug)]
pub struct NewSession {
    pub token: SecretString,
    pub session: Session,
}

/// Why a sign-in did not succeed. There is deliberately one answer for
/// every refusal.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("The email or password is not right, or signing in is paused for a while after too many attempts. Try again later.")]
    Refused,
    /// Too many failures from this address: refused before any password
    /// is checked (HTTP 429).
    #[error("Too many failed sign-ins from your address. Wait a few minutes, then try again.")]
    Throttled,
    /// Too many sign-ins are being checked at this moment (HTTP 429): each
    /// costs about 19 MiB and a core's time, so their number is bounded.
    #[error("Signing in is busy right now. Try again in a moment.")]
    Busy,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// One sign-in attempt as the console received it.
#[derive(Debug)]
pub struct LoginAttempt<'a> {
    pub email: &'a str,
    pub password: &'a SecretString,
    /// The peer address (throttling and the audit trail).
    pub ip: Option<&'a str>,
    pub user_agent: Option<&'a str>,
}

fn random_hex() -> String {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// SHA-256 hex of a session token: what is stored and looked up.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A well-formed token is 64 lowercase hex digits; anything else is not
/// looked up at all.
fn well_formed(token: &str) -> bool {
    token.len() == 64 && token.bytes().all(|b| b.is_ascii_hexdigit())
}

async fn verify_off_thread(password: &SecretString, hash: String) -> bool {
    let password = password.clone();
    tokio::task::spawn_blocking(move || accounts::verify_password(&password, &hash))
        .await
        .unwrap_or(false)
}

/// Check the credentials and open a session.
pub async fn login(
    core: &Core,
    throttle: &LoginThrottle,
    attempt: LoginAttempt<'_>,
) -> Result<NewSession, LoginError> {
    let now = core.now();
    // An address that failed too often is refused before any password is
    // checked (argon2 costs memory and CPU: it must not be free to call).
    if attempt.ip.is_some_and(|ip| throttle.is_blocked(ip, now)) {
        metrics::counter!("heimdall_logins_total", "result" => "throttled").increment(1);
        return Err(LoginError::Throttled);
    }
    // At most a few verifications at once; beyond that, 429.
    let Some(_permit) = throttle.try_verify() else {
        metrics::counter!("heimdall_logins_total", "result" => "busy").increment(1);
        return Err(LoginError::Busy);
    };
    let user = match accounts::parse_email(attempt.email) {
        Ok(email) => {
            staff_user::Entity::find()
                .filter(staff_user::Column::Email.eq(email))
                .one(&core.db.conn)
                .await?
        }
        Err(_) => None,
    };
    // Always verify, so every refusal costs the same time.
    let hash = user
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| accounts::dummy_password_hash().to_string());
    let password_ok = verify_off_thread(attempt.password, hash).await;
    drop(_permit);
    let address_blocked = attempt.ip.is_some_and(|ip| throttle.is_blocked(ip, now));
    let Some(user) = user else {
        if let Some(ip) = attempt.ip {
            throttle.record_failure(ip, now);
        }
        return Err(LoginError::Refused);
    };
    let locked = user.locked_until.is_some_and(|t| t > now);
    if !password_ok || locked || address_blocked || !user.active {
        if let Some(ip) = attempt.ip {
            throttle.record_failure(ip, now);
        }
        if !password_ok && !locked {
            record_account_failure(core, &user, now).await?;
        }
        let reason = if locked {
            "account locked"
        } else if address_blocked {
            "address throttled"
        } else if !user.active {
            "account disabled"
        } else {
            "wrong password"
        };
        audit::record_staff_action(
            &core.db.conn,
            &user.email,
            "login_refused",
            None,
            Some(serde_json::json!({ "reason": reason })),
            attempt.ip,
            now,
        )
        .await?;
        return Err(LoginError::Refused);
    }
    staff_user::Entity::update_many()
        .col_expr(staff_user::Column::FailedLogins, Expr::value(0))
        .col_expr(
            staff_user::Column::LockedUntil,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
        .col_expr(staff_user::Column::LastLoginAt, Expr::value(now))
        .filter(staff_user::Column::Id.eq(&user.id))
        .exec(&core.db.conn)
        .await?;
    // Sessions past their time are of no use to anyone: clear them out.
    staff_session::Entity::delete_many()
        .filter(staff_session::Column::ExpiresAt.lte(now))
        .exec(&core.db.conn)
        .await?;
    let token = random_hex();
    let id = hash_token(&token);
    let csrf_token = random_hex();
    let expires_at = now + IDLE_TIMEOUT;
    staff_session::ActiveModel {
        id: Set(id.clone()),
        user_id: Set(user.id.clone()),
        csrf_token: Set(csrf_token.clone()),
        ip: Set(attempt.ip.map(str::to_string)),
        user_agent: Set(attempt
            .user_agent
            .map(|ua| ua.chars().take(300).collect::<String>())),
        created_at: Set(now),
        expires_at: Set(expires_at),
    }
    .insert(&core.db.conn)
    .await?;
    let staff = StaffUser::from(user);
    audit::record_staff_action(
        &core.db.conn,
        &staff.email,
        "login",
        None,
        None,
        attempt.ip,
        now,
    )
    .await?;
    Ok(NewSession {
        token: SecretString::from(token),
        session: Session {
            id,
            user: staff,
            csrf_token,
            created_at: now,
            expires_at,
        },
    })
}

/// Count a wrong password; the failure that reaches the limit locks the
/// account and starts the count again for when the lock ends.
async fn record_account_failure(
    core: &Core,
    user: &staff_user::Model,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    let failures = user.failed_logins.saturating_add(1);
    let mut update = staff_user::Entity::update_many().filter(staff_user::Column::Id.eq(&user.id));
    if failures >= MAX_ACCOUNT_FAILURES {
        update = update
            .col_expr(staff_user::Column::FailedLogins, Expr::value(0))
            .col_expr(
                staff_user::Column::LockedUntil,
                Expr::value(now + ACCOUNT_LOCK),
            );
    } else {
        update = update.col_expr(
            staff_user::Column::FailedLogins,
            Expr::col(staff_user::Column::FailedLogins).add(1),
        );
    }
    update.exec(&core.db.conn).await?;
    Ok(())
}

/// The session a cookie's token belongs to, if it is still good. Each use
/// moves the idle expiry forward (never past the absolute limit).
pub async fn authenticate(core: &Core, token: &str) -> Result<Option<Session>, sea_orm::DbErr> {
    let token = token.trim();
    if !well_formed(token) {
        return Ok(None);
    }
    let id = hash_token(token);
    let Some(row) = staff_session::Entity::find_by_id(&id)
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let now = core.now();
    let hard_end = row.created_at + ABSOLUTE_TIMEOUT;
    if row.expires_at <= now || hard_end <= now {
        staff_session::Entity::delete_by_id(&id)
            .exec(&core.db.conn)
            .await?;
        return Ok(None);
    }
    let Some(user) = staff_user::Entity::find_by_id(&row.user_id)
        .one(&core.db.conn)
        .await?
    else {
        staff_session::Entity::delete_by_id(&id)
            .exec(&core.db.conn)
            .await?;
        return Ok(None);
    };
    if !user.active {
        return Ok(None);
    }
    let slid = std::cmp::min(now + IDLE_TIMEOUT, hard_end);
    let mut expires_at = row.expires_at;
    if slid - row.expires_at >= SLIDE_STEP {
        staff_session::Entity::update_many()
            .col_expr(staff_session::Column::ExpiresAt, Expr::value(slid))
            .filter(staff_session::Column::Id.eq(&id))
            .exec(&core.db.conn)
            .await?;
        expires_at = slid;
    }
    Ok(Some(Session {
        id,
        user: StaffUser::from(user),
        csrf_token: row.csrf_token,
        created_at: row.created_at,
        expires_at,
    }))
}

/// Sign out: the session is deleted, so its cookie is worthless.
pub async fn logout(
    core: &Core,
    session: &Session,
    ip: Option<&str>,
) -> Result<(), sea_orm::DbErr> {
    staff_session::Entity::delete_by_id(&session.id)
        .exec(&core.db.conn)
        .await?;
    audit::record_staff_action(
        &core.db.conn,
        &session.user.email,
        "logout",
        None,
        None,
        ip,
        core.now(),
    )
    .await
}

/// End every session of a staff member (password change, deactivation).
pub async fn end_sessions_of(core: &Core, user_id: &str) -> Result<u64, sea_orm::DbErr> {
    Ok(staff_session::Entity::delete_many()
        .filter(staff_session::Column::UserId.eq(user_id))
        .exec(&core.db.conn)
        .await?
        .rows_affected)
}

// ---------------------------------------------------------------------------
// Per-address throttling

/// Failed sign-ins per address, in memory (per process), and the bound on
/// password verifications running at once. Bounded: old entries are
/// pruned on every write and the map never holds more than
/// [`LoginThrottle::MAX_ADDRESSES`] addresses.
#[derive(Debug)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<String, Vec<DateTime<Utc>>>>,
    verifying: Arc<tokio::sync::Semaphore>,
    in_flight: std::sync::atomic::AtomicUsize,
    most_in_flight: std::sync::atomic::AtomicUsize,
    verified: std::sync::atomic::AtomicU64,
}

impl Default for LoginThrottle {
    fn default() -> Self {
        Self::with_verifications(Self::VERIFICATIONS)
    }
}

/// A password verification in progress (see [`LoginThrottle::try_verify`]).
pub struct Verifying<'a> {
    throttle: &'a LoginThrottle,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl Drop for Verifying<'_> {
    fn drop(&mut self) {
        self.throttle
            .in_flight
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl LoginThrottle {
    pub const MAX_ADDRESSES: usize = 10_000;
    /// Password verifications at once (argon2id, about 19 MiB each).
    pub const VERIFICATIONS: usize = 4;

    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_verifications(n: usize) -> Self {
        LoginThrottle {
            failures: Mutex::default(),
            verifying: Arc::new(tokio::sync::Semaphore::new(n.max(1))),
            in_flight: Default::default(),
            most_in_flight: Default::default(),
            verified: Default::default(),
        }
    }

    /// A slot to verify a password in, if one is free now.
    pub fn try_verify(&self) -> Option<Verifying<'_>> {
        use std::sync::atomic::Ordering;
        let permit = self.verifying.clone().try_acquire_owned().ok()?;
        let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        self.most_in_flight.fetch_max(now, Ordering::SeqCst);
        self.verified.fetch_add(1, Ordering::SeqCst);
        Some(Verifying {
            throttle: self,
            _permit: permit,
        })
    }

    /// How many verifications were started so far.
    pub fn verifications(&self) -> u64 {
        self.verified.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The most verifications that ran at once so far.
    pub fn most_in_flight(&self) -> usize {
        self.most_in_flight
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Has this address failed too often within the window?
    pub fn is_blocked(&self, ip: &str, now: DateTime<Utc>) -> bool {
        let map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        map.get(ip).is_some_and(|times| {
            times.iter().filter(|t| **t > now - ADDRESS_WINDOW).count() >= MAX_ADDRESS_FAILURES
        })
    }

    pub fn record_failure(&self, ip: &str, now: DateTime<Utc>) {
        let mut map = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let cutoff = now - ADDRESS_WINDOW;
        if map.len() >= Self::MAX_ADDRESSES {
            map.retain(|_, times| times.iter().any(|t| *t > cutoff));
            if map.len() >= Self::MAX_ADDRESSES {
                // Still full of live entries: forget the quietest address.
                if let Some(victim) = map
                    .iter()
                    .min_by_key(|(_, times)| times.last().copied())
                    .map(|(k, _)| k.clone())
                {
                    map.remove(&victim);
                }
            }
        }
        let times = map.entry(ip.to_string()).or_default();
        times.retain(|t| *t > cutoff);
        times.push(now);
    }
}

// ---------------------------------------------------------------------------
// The first admin

/// The one-time link that creates the first admin, while no staff account
/// exists. Only the token's SHA-256 is stored (in `app_settings`, so that
/// every process knows it and `heimdall user setup-link` can make a new
/// one), and it works for [`FIRST_ADMIN_LINK_TTL`] at most, once.
#[derive(Debug, Default)]
pub struct FirstAdminLink;

/// How long a first-admin link works.
pub const FIRST_ADMIN_LINK_TTL: Duration = Duration::minutes(15);

const FIRST_ADMIN_KEY: &str = "first_admin_link";

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("This setup link is no longer valid: it was used, it expired (links work for 15 minutes; `heimdall user setup-link` prints a new one), or a staff account already exists. Sign in instead.")]
    LinkInvalid,
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// The stored link: the token's hash and when it stops working.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq)]
struct StoredLink {
    hash: String,
    expires_at: DateTime<Utc>,
}

impl FirstAdminLink {
    pub fn new() -> Self {
        FirstAdminLink
    }

    /// When no staff account exists, make a new token (replacing any
    /// earlier link) and return it with its expiry (once, for the log or
    /// the command line). Otherwise nothing, and no link works.
    pub async fn arm_if_needed(
        &self,
        core: &Core,
    ) -> Result<Option<(SecretString, DateTime<Utc>)>, sea_orm::DbErr> {
        if accounts::count_users(core).await? > 0 {
            self.disarm(core).await?;
            return Ok(None);
        }
        let token = random_hex();
        let link = StoredLink {
            hash: hash_token(&token),
            expires_at: core.now() + FIRST_ADMIN_LINK_TTL,
        };
        crate::settings::store::put(
            core,
            FIRST_ADMIN_KEY,
            &serde_json::to_value(&link).unwrap_or_default(),
            "system",
        )
        .await?;
        Ok(Some((SecretString::from(token), link.expires_at)))
    }

    pub async fn disarm(&self, core: &Core) -> Result<(), sea_orm::DbErr> {
        crate::entities::app_setting::Entity::delete_by_id(FIRST_ADMIN_KEY)
            .exec(&core.db.conn)
            .await?;
        Ok(())
    }

    async fn stored(core: &Core) -> Result<Option<StoredLink>, sea_orm::DbErr> {
        Ok(crate::settings::store::get(core, FIRST_ADMIN_KEY)
            .await?
            .and_then(|v| serde_json::from_value(v).ok()))
    }

    /// Is this the live, unexpired token (constant-time compare)?
    pub async fn is_valid(&self, core: &Core, token: &str) -> Result<bool, sea_orm::DbErr> {
        let Some(link) = Self::stored(core).await? else {
            return Ok(false);
        };
        let presented = hash_token(token.trim());
        Ok(link.expires_at > core.now()
            && bool::from(link.hash.as_bytes().ct_eq(presented.as_bytes())))
    }

    /// Take the token if it is the live one: only one request can (the row
    /// is deleted where it still holds this hash); a second finds the link
    /// used. [`FirstAdminLink::restore`] puts it back when the account
    /// could not be created (a weak password, say).
    async fn take(&self, core: &Core, token: &str) -> Result<Option<StoredLink>, sea_orm::DbErr> {
        use crate::entities::app_setting;
        if !self.is_valid(core, token).await? {
            return Ok(None);
        }
        let Some(row) = app_setting::Entity::find_by_id(FIRST_ADMIN_KEY)
            .one(&core.db.conn)
            .await?
        else {
            return Ok(None);
        };
        let taken = app_setting::Entity::delete_many()
            .filter(app_setting::Column::Key.eq(FIRST_ADMIN_KEY))
            .filter(app_setting::Column::Value.eq(row.value.clone()))
            .exec(&core.db.conn)
            .await?
            .rows_affected
            == 1;
        Ok(taken
            .then(|| serde_json::from_str(&row.value).ok())
            .flatten())
    }

    async fn restore(&self, core: &Core, link: StoredLink) -> Result<(), sea_orm::DbErr> {
        if Self::stored(core).await?.is_none() {
            crate::settings::store::put(
                core,
                FIRST_ADMIN_KEY,
                &serde_json::to_value(&link).unwrap_or_default(),
                "system",
            )
            .await?;
        }
        Ok(())
    }
}

/// Create the first admin through the one-time link.
pub async fn create_first_admin(
    core: &Core,
    link: &FirstAdminLink,
    token: &str,
    email: &str,
    name: Option<String>,
    password: &SecretString,
    ip: Option<&str>,
) -> Result<StaffUser, SetupError> {
    let Some(taken) = link.take(core, token).await? else {
        return Err(SetupError::LinkInvalid);
    };
    let result = async {
        if accounts::count_users(core).await? > 0 {
            return Err(SetupError::LinkInvalid);
        }
        let user = accounts::create_user(core, email, name, Role::Admin, password).await?;
        audit::record_staff_action(
            &core.db.conn,
            &user.email,
            "first_admin_created",
            Some(&format!("staff_user:{}", user.id)),
            Some(serde_json::json!({ "email": user.email, "role": "admin" })),
            ip,
            core.now(),
        )
        .await?;
        Ok(user)
    }
    .await;
    // Bad input: the link stays usable for a corrected attempt.
    if let Err(SetupError::Account(
        AccountError::InvalidEmail(_) | AccountError::WeakPassword | AccountError::Exists(_),
    )) = &result
    {
        link.restore(core, taken).await?;
    }
    if result.is_ok() {
        link.disarm(core).await?;
    }
    result
}

// ---------------------------------------------------------------------------
// API keys from the console

#[derive(Debug, thiserror::Error)]
pub enum RevokeKeyError {
    #[error("no API key with id {0}")]
    NotFound(String),
    #[error("this API key was already revoked")]
    AlreadyRevoked,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Revoke an API key: from now on it authenticates nothing. Recorded in the
/// staff audit trail.
pub async fn revoke_api_key(
    core: &Core,
    id: &str,
    actor: &str,
    ip: Option<&str>,
) -> Result<(), RevokeKeyError> {
    let key = api_key::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| RevokeKeyError::NotFound(id.to_string()))?;
    if key.revoked_at.is_some() {
        return Err(RevokeKeyError::AlreadyRevoked);
    }
    let now = core.now();
    let name = key.name.clone();
    let mut am: api_key::ActiveModel = key.into();
    am.revoked_at = Set(Some(now));
    am.revoked_by = Set(Some(actor.to_string()));
    am.update(&core.db.conn).await?;
    audit::record_staff_action(
        &core.db.conn,
        actor,
        "api_key_revoked",
        Some(&format!("api_key:{id}")),
        Some(serde_json::json!({ "name": name })),
        ip,
        now,
    )
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The staff audit trail, as the console lists it

/// One staff action: who did what to which thing, from where, when.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StaffAction {
    pub actor: String,
    pub action: String,
    pub target: Option<String>,
    pub detail: Option<String>,
    pub ip: Option<String>,
    pub at: DateTime<Utc>,
}

/// The newest staff actions, optionally only those about `target`.
pub async fn recent_staff_actions(
    core: &Core,
    target: Option<&str>,
    limit: u64,
) -> Result<Vec<StaffAction>, sea_orm::DbErr> {
    use sea_orm::{QueryOrder, QuerySelect};
    let mut q = staff_audit::Entity::find()
        .order_by_desc(staff_audit::Column::CreatedAt)
        .order_by_desc(staff_audit::Column::Id)
        .limit(limit.clamp(1, 1_000));
    if let Some(t) = target {
        q = q.filter(staff_audit::Column::Target.eq(t));
    }
    Ok(q.all(&core.db.conn)
        .await?
        .into_iter()
        .map(|m| StaffAction {
            actor: m.actor,
            action: m.action,
            target: m.target,
            detail: m.detail,
            ip: m.ip,
            at: m.created_at,
        })
        .collect())
}

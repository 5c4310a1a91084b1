//! Staff accounts (argon2id passwords, roles) and API keys (stored as a
//! SHA-256 hash, shown once).
//!
//! This module must never log, return or store a password or a key in clear
//! after the moment it is created.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, Set,
};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::clock::new_id;
use crate::entities::{api_key, staff_user};
use crate::Core;

/// What a staff member may do. Each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything.
    Viewer,
    /// Drafts campaigns, replies in the inbox.
    Operator,
    /// Approves campaigns and automations.
    Approver,
    /// Users, channels, API keys, settings.
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    /// Does this role include `needed`?
    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "viewer" => Ok(Role::Viewer),
            "operator" => Ok(Role::Operator),
            "approver" => Ok(Role::Approver),
            "admin" => Ok(Role::Admin),
            other => Err(format!(
                "unknown role '{other}': use viewer, operator, approver or admin"
            )),
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("'{0}' is not an email address")]
    InvalidEmail(String),
    #[error("the password must be at least 12 characters")]
    WeakPassword,
    #[error("a staff account with email {0} already exists")]
    Exists(String),
    #[error("the API key name must not be empty")]
    EmptyName,
    #[error("choose at least one scope for the API key")]
    NoScopes,
    #[error("no staff member with email or id {0}")]
    NoSuchUser(String),
    #[error("only an admin may change staff accounts")]
    NotAdmin,
    #[error("this would leave no active admin: make someone else an admin first")]
    LastAdmin,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
    #[error("could not hash the password")]
    Hash,
}

/// A staff account as the rest of the system sees it (no password hash).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaffUser {
    pub id: String,
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    pub active: bool,
}

impl From<staff_user::Model> for StaffUser {
    fn from(m: staff_user::Model) -> Self {
        StaffUser {
            role: m.role.parse().unwrap_or(Role::Viewer),
            id: m.id,
            email: m.email,
            name: m.name,
            active: m.active,
        }
    }
}

/// Normalise and check an email address (enough for a login name).
pub fn parse_email(input: &str) -> Result<String, AccountError> {
    let email = input.trim().to_ascii_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !email.chars().any(char::is_whitespace)
        });
    if valid {
        Ok(email)
    } else {
        Err(AccountError::InvalidEmail(input.trim().to_string()))
    }
}

/// argon2id with the crate's recommended parameters.
pub fn hash_password(password: &SecretString) -> Result<String, AccountError> {
    let salt = SaltString::generate(&mut rand_core::OsRng);
    Argon2::default()
        .hash_password(password.expose_secret().as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|_| AccountError::Hash)
}

/// Check a password against a stored hash, in constant time.
pub fn verify_password(password: &SecretString, stored: &str) -> bool {
    PasswordHash::new(stored)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.expose_secret().as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash to compare against when the account does not exist, so a login
/// for an unknown email takes as long as one for a known email.
pub fn dummy_password_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        hash_password(&SecretString::from("not-a-real-password".to_string())).unwrap_or_default()
    })
}

pub async fn create_user(
    core: &Core,
    email: &str,
    name: Option<String>,
    role: Role,
    password: &SecretString,
) -> Result<StaffUser, AccountError> {
    let email = parse_email(email)?;
    if password.expose_secret().chars().count() < 12 {
        return Err(AccountError::WeakPassword);
    }
    if staff_user::Entity::find()
        .filter(staff_user::Column::Email.eq(&email))
        .one(&core.db.conn)
        .await?
        .is_some()
    {
        return Err(AccountError::Exists(email));
    }
    let now = core.clock.now();
    let model = staff_user::ActiveModel {
        id: Set(new_id()),
        email: Set(email),
        name: Set(name.filter(|n| !n.trim().is_empty())),
        role: Set(role.as_str().to_string()),
        password_hash: Set(hash_password(password)?),
        active: Set(true),
        failed_logins: Set(0),
        locked_until: Set(None),
        last_login_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await?;
    Ok(model.into())
}

/// A change to a staff account.
#[derive(Debug, Clone)]
pub enum StaffChange {
    /// They can no longer sign in; their sessions end at once.
    Deactivate,
    Reactivate,
    /// A new role; their sessions end (they sign in again under it).
    Role(Role),
    /// A new password (at least 12 characters); their sessions end, and a
    /// lock from failed attempts is cleared.
    Password(SecretString),
}

impl StaffChange {
    fn action(&self) -> &'static str {
        match self {
            StaffChange::Deactivate => "staff_deactivated",
            StaffChange::Reactivate => "staff_reactivated",
            StaffChange::Role(_) => "staff_role_changed",
            StaffChange::Password(_) => "staff_password_reset",
        }
    }
}

/// Change a staff account (`who`: its email or id). `by` is the admin
/// making the change (`None`: the command line, run by whoever operates
/// the machine). At least one active admin always remains. The change is
/// recorded in the staff audit trail, and the person's sessions end at
/// once when they lose access, change role or get a new password.
pub async fn change_staff(
    core: &Core,
    by: Option<&StaffUser>,
    who: &str,
    change: StaffChange,
) -> Result<StaffUser, AccountError> {
    if let Some(admin) = by {
        if !admin.active || admin.role != Role::Admin {
            return Err(AccountError::NotAdmin);
        }
    }
    let who = who.trim();
    let target = staff_user::Entity::find()
        .filter(
            sea_orm::Condition::any()
                .add(staff_user::Column::Email.eq(who.to_lowercase()))
                .add(staff_user::Column::Id.eq(who)),
        )
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| AccountError::NoSuchUser(who.to_string()))?;
    let was_admin = target.active && target.role == Role::Admin.as_str();
    let stays_admin = match &change {
        StaffChange::Deactivate => false,
        StaffChange::Role(r) => *r == Role::Admin,
        StaffChange::Reactivate | StaffChange::Password(_) => was_admin,
    };
    let now = core.clock.now();
    let txn = core.db.begin_write().await?;
    if was_admin && !stays_admin {
        let admins = staff_user::Entity::find()
            .filter(staff_user::Column::Role.eq(Role::Admin.as_str()))
            .filter(staff_user::Column::Active.eq(true))
            .count(&txn)
            .await?;
        if admins <= 1 {
            txn.rollback().await?;
            return Err(AccountError::LastAdmin);
        }
    }
    let before = serde_json::json!({"role": target.role, "active": target.active});
    let mut am: staff_user::ActiveModel = target.clone().into();
    let ends_sessions = match &change {
        StaffChange::Deactivate => {
            am.active = Set(false);
            true
        }
        StaffChange::Reactivate => {
            am.active = Set(true);
            false
        }
        StaffChange::Role(r) => {
            am.role = Set(r.as_str().to_string());
            true
        }
        StaffChange::Password(p) => {
            if p.expose_secret().chars().count() < 12 {
                txn.rollback().await?;
                return Err(AccountError::WeakPassword);
            }
            am.password_hash = Set(hash_password(p)?);
            am.failed_logins = Set(0);
            am.locked_until = Set(None);
            true
        }
    };
    am.updated_at = Set(now);
    let updated = am.update(&txn).await?;
    if ends_sessions {
        crate::entities::staff_session::Entity::delete_many()
            .filter(crate::entities::staff_session::Column::UserId.eq(&updated.id))
            .exec(&txn)
            .await?;
    }
    crate::audit::record_staff_action(
        &txn,
        by.map(|a| a.email.as_str()).unwrap_or("cli"),
        change.action(),
        Some(&format!("staff_user:{}", updated.id)),
        Some(serde_json::json!({
            "email": updated.email,
            "before": before,
            "after": {"role": updated.role, "active": updated.active},
            "sessions_ended": ends_sessions,
        })),
        None,
        now,
    )
    .await?;
    txn.commit().await?;
    Ok(updated.into())
}

pub async fn count_users(core: &Core) -> Result<u64, sea_orm::DbErr> {
    staff_user::Entity::find().count(&core.db.conn).await
}

pub async fn list_users(core: &Core) -> Result<Vec<StaffUser>, sea_orm::DbErr> {
    Ok(staff_user::Entity::find()
        .order_by_asc(staff_user::Column::Email)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(StaffUser::from)
        .collect())
}

/// SHA-256 hex of a key: what is stored and looked up.
pub fn hash_api_key(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// A newly created API key. The plaintext exists only here, to be shown once.
#[derive(Debug)]
pub struct NewApiKey {
    pub id: String,
    pub name: String,
    pub key: SecretString,
    pub prefix: String,
}

/// An API key as listed (never the key itself).
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyInfo {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub created_by: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// What the key may do (scope names).
    pub scopes: Vec<&'static str>,
}

impl From<api_key::Model> for ApiKeyInfo {
    fn from(m: api_key::Model) -> Self {
        ApiKeyInfo {
            scopes: crate::entities::api_key::Scopes::from_stored(&m.scopes).names(),
            id: m.id,
            name: m.name,
            prefix: m.prefix,
            created_by: m.created_by,
            created_at: m.created_at,
            revoked_at: m.revoked_at,
            last_used_at: m.last_used_at,
        }
    }
}

/// Create a key with `scopes` (at least one): 32 random bytes, `hmd_` +
/// hex. Only the hash is stored.
pub async fn create_api_key(
    core: &Core,
    name: &str,
    created_by: &str,
    scopes: &crate::entities::api_key::Scopes,
) -> Result<NewApiKey, AccountError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AccountError::EmptyName);
    }
    if scopes.is_empty() {
        return Err(AccountError::NoScopes);
    }
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let key = format!("hmd_{}", hex::encode(bytes));
    let prefix: String = key.chars().take(12).collect();
    let id = new_id();
    api_key::ActiveModel {
        id: Set(id.clone()),
        name: Set(name.to_string()),
        prefix: Set(prefix.clone()),
        key_hash: Set(hash_api_key(&key)),
        created_by: Set(created_by.to_string()),
        created_at: Set(core.clock.now()),
        revoked_at: Set(None),
        revoked_by: Set(None),
        last_used_at: Set(None),
        scopes: Set(scopes.to_stored()),
    }
    .insert(&core.db.conn)
    .await?;
    Ok(NewApiKey {
        id,
        name: name.to_string(),
        key: SecretString::from(key),
        prefix,
    })
}

pub async fn list_api_keys(core: &Core) -> Result<Vec<ApiKeyInfo>, sea_orm::DbErr> {
    Ok(api_key::Entity::find()
        .order_by_desc(api_key::Column::CreatedAt)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(ApiKeyInfo::from)
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Admin.allows(Role::Approver));
        assert!(Role::Approver.allows(Role::Operator));
        assert!(!Role::Operator.allows(Role::Approver));
        assert!(!Role::Viewer.allows(Role::Operator));
        for r in Role::ALL {
            assert_eq!(r.as_str().parse::<Role>().unwrap(), r);
        }
    }

    #[test]
    fn passwords_hash_and_verify() {
        let pw = SecretString::from("correct horse battery".to_string());
        let hash = hash_password(&pw).unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(verify_password(&pw, &hash));
        assert!(!verify_password(
            &SecretString::from("wrong horse battery".to_string()),
            &hash
        ));
        assert!(!verify_password(&pw, "garbage"));
    }

    #[test]
    fn emails() {
        assert_eq!(parse_email(" Ops@Example.COM ").unwrap(), "ops@example.com");
        for bad in ["", "a", "a@b", "@b.com", "a b@c.com", "a@.com"] {
            assert!(parse_email(bad).is_err(), "{bad}");
        }
    }
}

//! The `api_keys` table.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

// Holds a hash of a secret: deliberately not Serialize.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "api_keys")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub key_hash: String,
    pub created_by: String,
    pub created_at: DateTimeUtc,
    pub revoked_at: Option<DateTimeUtc>,
    pub revoked_by: Option<String>,
    pub last_used_at: Option<DateTimeUtc>,
    /// JSON array of scope names ([`Scope`], read with [`Scopes::from_stored`]).
    pub scopes: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What an API key may do. Each route of the API needs one; a key is given
/// its scopes when it is created (in the console or with `heimdall api-key
/// create --scope ...`), and the bootstrap key from settings has
/// `HEIMDALL_API_KEY_SCOPES` (default `send,reminders`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Scope {
    /// Send messages (templates; free text where the gates allow), read
    /// their state, the templates and a number's session window.
    #[serde(rename = "send")]
    Send,
    /// One-off reminders.
    #[serde(rename = "reminders")]
    Reminders,
    /// Recurring schedules (their variables URLs are fetched by Heimdall).
    #[serde(rename = "schedules")]
    Schedules,
    #[serde(rename = "contacts:read")]
    ContactsRead,
    #[serde(rename = "contacts:write")]
    ContactsWrite,
    /// Erase a person (`DELETE /api/v1/contacts/{id}`): never given by
    /// default; an admin ticks it for the one key that needs it.
    #[serde(rename = "contacts:erase")]
    ContactsErase,
    /// Consent history and its export.
    #[serde(rename = "consents:read")]
    ConsentsRead,
    /// Record consents with evidence, revoke them, import them.
    #[serde(rename = "consents:write")]
    ConsentsWrite,
    #[serde(rename = "forms:read")]
    FormsRead,
    /// Create and change opt-in forms, their consent texts and QR codes.
    #[serde(rename = "forms:write")]
    FormsWrite,
}

impl Scope {
    pub const ALL: [Scope; 10] = [
        Scope::Send,
        Scope::Reminders,
        Scope::Schedules,
        Scope::ContactsRead,
        Scope::ContactsWrite,
        Scope::ContactsErase,
        Scope::ConsentsRead,
        Scope::ConsentsWrite,
        Scope::FormsRead,
        Scope::FormsWrite,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Send => "send",
            Scope::Reminders => "reminders",
            Scope::Schedules => "schedules",
            Scope::ContactsRead => "contacts:read",
            Scope::ContactsWrite => "contacts:write",
            Scope::ContactsErase => "contacts:erase",
            Scope::ConsentsRead => "consents:read",
            Scope::ConsentsWrite => "consents:write",
            Scope::FormsRead => "forms:read",
            Scope::FormsWrite => "forms:write",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Self::ALL.into_iter().find(|x| x.as_str() == s.trim())
    }

    /// What it allows, for the console.
    pub fn describe(self) -> &'static str {
        match self {
            Scope::Send => "send messages, read their state, templates and session windows",
            Scope::Reminders => "create, read and cancel reminders",
            Scope::Schedules => "create, read, pause and resume recurring schedules",
            Scope::ContactsRead => "read contacts",
            Scope::ContactsWrite => "create and change contacts",
            Scope::ContactsErase => {
                "erase a person's personal data (their opt-out is kept as a keyed hash)"
            }
            Scope::ConsentsRead => "read consent history and export it",
            Scope::ConsentsWrite => "record, revoke and import consents (with evidence)",
            Scope::FormsRead => "read opt-in forms",
            Scope::FormsWrite => "create and change opt-in forms, consent texts and QR codes",
        }
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A key's scopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scopes(std::collections::BTreeSet<Scope>);

impl Scopes {
    pub fn all() -> Scopes {
        Scopes(Scope::ALL.into_iter().collect())
    }

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().copied().collect())
    }

    /// `send, reminders` (commas or spaces); an unknown name is an error
    /// that names it and lists the known ones.
    pub fn parse_list(s: &str) -> Result<Scopes, String> {
        let mut out = std::collections::BTreeSet::new();
        for part in s.split([',', ' ']).map(str::trim).filter(|p| !p.is_empty()) {
            match Scope::parse(part) {
                Some(x) => {
                    out.insert(x);
                }
                None => {
                    return Err(format!(
                        "'{part}' is not a scope (known: {})",
                        Scope::ALL.map(Scope::as_str).join(", ")
                    ))
                }
            }
        }
        Ok(Scopes(out))
    }

    /// As stored: a JSON array; anything unreadable is no scope at all.
    pub fn from_stored(s: &str) -> Scopes {
        let names: Vec<String> = serde_json::from_str(s).unwrap_or_default();
        Scopes(names.iter().filter_map(|n| Scope::parse(n)).collect())
    }

    pub fn to_stored(&self) -> String {
        serde_json::to_string(&self.names()).unwrap_or_else(|_| "[]".into())
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.0.iter().map(|s| s.as_str()).collect()
    }

    pub fn contains(&self, scope: Scope) -> bool {
        self.0.contains(&scope)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

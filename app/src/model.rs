//! What the console's server functions send to the browser, shared by the
//! server and the WASM bundle. These are views for staff to read, made from
//! the domain's types on the server; they never carry a secret other than
//! the session's own CSRF token and an API key at the moment it is created.

use serde::{Deserialize, Serialize};

/// What a staff member may do; each role includes the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Viewer,
    Operator,
    Approver,
    Admin,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Viewer, Role::Operator, Role::Approver, Role::Admin];

    pub fn allows(self, needed: Role) -> bool {
        self >= needed
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Approver => "approver",
            Role::Admin => "admin",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Role::Viewer => "reads everything",
            Role::Operator => "drafts campaigns, replies in the inbox",
            Role::Approver => "approves campaigns and automations",
            Role::Admin => "users, channels, API keys, settings",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The signed-in staff member, as every console page knows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Me {
    pub email: String,
    pub name: Option<String>,
    pub role: Role,
    /// Sent back in a hidden field by every form that changes something.
    pub csrf: String,
}

impl Me {
    pub fn display_name(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.email.clone())
    }

    pub fn can(&self, role: Role) -> bool {
        self.role.allows(role)
    }
}

/// A failed or undelivered message, with what its error means.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FailureView {
    pub message_id: String,
    pub phone_masked: String,
    pub error_code: Option<i32>,
    pub meaning: Option<String>,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// A label and how many: states, reasons.
pub type Counts = Vec<(String, usize)>;

/// What a gate reason code means, in a few words, for staff.
pub use heimdall_codes::reason_label;

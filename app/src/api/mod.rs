//! The console's server functions, mounted under `/_sf/<name>`. Each one
//! checks the session and role first (and, when it changes something, the
//! CSRF token and origin), then calls `heimdall-domain`, records the staff
//! action, and maps errors to statuses. No business rule lives here.

pub mod audit;
pub mod auth;
pub mod campaigns;
pub mod contacts;
pub mod dashboard;
pub mod forms;
pub mod inbox;
pub mod settings;
pub mod templates;

//! The one schema of Heimdall: every table, for SQLite and PostgreSQL alike.
//!
//! One file per change, each with `up` and `down`. Later changes add columns
//! to these tables rather than inventing parallel ones. Identifiers are
//! UUIDv7 strings (sortable by creation, assigned before insert so a message
//! has a stable id before anything else happens); timestamps are UTC; JSON
//! payloads are stored as text so both databases read them the same way.

pub use sea_orm_migration::prelude::*;

mod m20261122_000001_contacts_and_consent;
mod m20261122_000002_templates_and_campaigns;
mod m20261122_000003_messages_and_audit;
mod m20261122_000004_webhooks_and_inbound;
mod m20261122_000005_staff_and_access;
mod m20261122_000006_scheduling;
mod m20261122_000007_operations;
mod m20261122_000008_optin;
mod m20261122_000010_campaign_fan_out_progress;
mod m20261122_000030_optin_confirmation_template;
mod m20261122_000040_schedule_principal;
mod m20261122_000041_schedule_occurrence_claims;
mod m20261122_000042_tier_usage_daily;
mod m20261123_000050_partial_indexes;
mod m20261202_000060_consent_ledger;
mod m20261202_000061_api_key_scopes;
mod m20261202_000062_message_parts;
mod m20261204_000063_automation_free_form;
mod m20261204_000064_team_inbox;
mod m20261204_000065_reply_context;
mod m20261205_000066_interactive_messages;
mod m20261205_000067_attachments;
mod m20261206_000068_audit_chain;
mod m20261207_000069_retention_runs;
mod m20261208_000070_purposes;
mod m20261209_000071_preference_links;
mod m20261210_000072_erased_numbers;
mod util;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261122_000001_contacts_and_consent::Migration),
            Box::new(m20261122_000002_templates_and_campaigns::Migration),
            Box::new(m20261122_000003_messages_and_audit::Migration),
            Box::new(m20261122_000004_webhooks_and_inbound::Migration),
            Box::new(m20261122_000005_staff_and_access::Migration),
            Box::new(m20261122_000006_scheduling::Migration),
            Box::new(m20261122_000007_operations::Migration),
            Box::new(m20261122_000008_optin::Migration),
            Box::new(m20261122_000010_campaign_fan_out_progress::Migration),
            Box::new(m20261122_000030_optin_confirmation_template::Migration),
            Box::new(m20261122_000040_schedule_principal::Migration),
            Box::new(m20261122_000041_schedule_occurrence_claims::Migration),
            Box::new(m20261122_000042_tier_usage_daily::Migration),
            Box::new(m20261123_000050_partial_indexes::Migration),
            Box::new(m20261202_000060_consent_ledger::Migration),
            Box::new(m20261202_000061_api_key_scopes::Migration),
            Box::new(m20261202_000062_message_parts::Migration),
            Box::new(m20261204_000063_automation_free_form::Migration),
            Box::new(m20261204_000064_team_inbox::Migration),
            Box::new(m20261204_000065_reply_context::Migration),
            Box::new(m20261205_000066_interactive_messages::Migration),
            Box::new(m20261205_000067_attachments::Migration),
            Box::new(m20261206_000068_audit_chain::Migration),
            Box::new(m20261207_000069_retention_runs::Migration),
            Box::new(m20261208_000070_purposes::Migration),
            Box::new(m20261209_000071_preference_links::Migration),
            Box::new(m20261210_000072_erased_numbers::Migration),
        ]
    }
}

//! The consent ledger's facts, and what approvals bind to:
//!
//! - `consents.strength`: how strong the proof behind a consent is
//!   (`number`: the person's own number said so; `confirmed`: a double
//!   opt-in confirmed through the link sent to the number; `declared`:
//!   typed on a public page; `attested`: an API client, an import or staff
//!   vouch for it). Only proof from the number lifts an opt-out.
//! - `suppressions.scope` (`all`, or `marketing` for Meta's 131050) and
//!   `suppressions.lift_ref` (the inbound message that lifted it).
//! - `campaigns.authors` (every staff member who wrote or changed the
//!   content, audience or schedule; none of them may approve) and the
//!   approved content: `approved_hash` and `approved_snapshot`.
//! - `channels.paused_at` / `paused_reason`: a sender paused after a fault
//!   of ours (63007: the From is not a WhatsApp sender; 131048: spam rate
//!   limit), until an admin re-activates it.

use crate::util::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, column definition): SQLite takes one change per ALTER TABLE.
fn columns() -> Vec<(&'static str, ColumnDef)> {
    vec![
        (
            "consents",
            string_len(Alias::new("strength"), 16)
                .default("attested")
                .take(),
        ),
        (
            "suppressions",
            string_len(Alias::new("scope"), 16).default("all").take(),
        ),
        ("suppressions", string_null(Alias::new("lift_ref"))),
        (
            "campaigns",
            text(Alias::new("authors")).default("[]").take(),
        ),
        (
            "campaigns",
            string_len_null(Alias::new("approved_hash"), 64),
        ),
        ("campaigns", text_null(Alias::new("approved_snapshot"))),
        ("channels", ts_null("paused_at")),
        ("channels", string_null(Alias::new("paused_reason"))),
    ]
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, col) in columns() {
            manager
                .alter_table(Table::alter().table(table).add_column(col).to_owned())
                .await?;
        }
        let db = manager.get_connection();
        // Existing consents: a keyword came from the number; a form consent
        // that was confirmed went through the double opt-in; the rest were
        // typed on a page or vouched for by the business.
        db.execute_unprepared(
            "UPDATE consents SET strength = CASE \
               WHEN source = 'keyword' THEN 'number' \
               WHEN source IN ('web_form', 'qr') AND confirmed_at IS NOT NULL THEN 'confirmed' \
               WHEN source IN ('web_form', 'qr') THEN 'declared' \
               ELSE 'attested' END",
        )
        .await?;
        // Every campaign's author so far is its creator.
        db.execute_unprepared("UPDATE campaigns SET authors = '[\"' || created_by || '\"]'")
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, col) in columns().into_iter().rev() {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new(col.get_column_name()))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

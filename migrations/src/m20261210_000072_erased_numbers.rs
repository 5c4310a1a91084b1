//! Erasure (`heimdall_domain::privacy`): `erased_numbers` is the
//! suppression tombstone of a person who asked to be erased. It holds no
//! number, only its keyed hash (HMAC-SHA256 with `HEIMDALL_ERASURE_KEY`,
//! hex), which every gate looks up by its primary key: a later contact with
//! the same number is suppressed until a message from the number (START,
//! UNSTOP, YES) lifts it (`lifted_at`, `lift_ref`).
//!
//! Where an erased person's row stays, their number is replaced by
//! `hash:<hex>` (a contact's shell: `hash:<hex>#<id>`, unique): on
//! PostgreSQL the columns that hold a number are widened to 128 to take it
//! (a longer `varchar` is a change of the catalogue only, no rewrite;
//! SQLite does not enforce lengths).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::*;

/// The columns that hold a number (all required).
const NUMBER_COLUMNS: &[(&str, &str)] = &[
    ("contacts", "phone_e164"),
    ("outbound_messages", "to_address"),
    ("inbound_messages", "from_address"),
    ("reminders", "to_address"),
    ("tier_usage", "recipient"),
];

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("erased_numbers")
                    .col(string_len("number_hash", 64).primary_key())
                    // The erased contact (an anonymised shell stays).
                    .col(reference("contact_id"))
                    .col(ts("erased_at"))
                    .col(string("erased_by"))
                    .col(text("reason"))
                    .col(ts_null("lifted_at"))
                    // The inbound message from the number that lifted it.
                    .col(string_null("lift_ref"))
                    .to_owned(),
            )
            .await?;
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            for (table, column) in NUMBER_COLUMNS {
                manager
                    .alter_table(
                        Table::alter()
                            .table(*table)
                            .modify_column(ColumnDef::new(*column).string_len(128).not_null())
                            .to_owned(),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("erased_numbers").to_owned())
            .await?;
        Ok(())
    }
}

//! Erasure (`heimdall_domain::privacy`): `erased_numbers` is the
//! suppression tombstone of a person who asked to be erased. It holds no
//! number, only its keyed hash (HMAC-SHA256 with `HEIMDALL_ERASURE_KEY`,
//! hex), which every gate looks up by its primary key: a later contact with
//! the same number is suppressed until a message from the number (START,
//! UNSTOP, YES) lifts it (`lifted_at`, `lift_ref`).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::*;

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
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("erased_numbers").to_owned())
            .await?;
        Ok(())
    }
}

//! How far a campaign's fan-out got: when it had accepted a message for
//! every recipient, and how many recipients that was. Without it a
//! fan-out interrupted half way would look finished once its first
//! messages were.

use crate::util::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite takes one change per ALTER TABLE.
        manager
            .alter_table(
                Table::alter()
                    .table("campaigns")
                    .add_column(ts_null("fan_out_finished_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("campaigns")
                    .add_column(integer_null("recipients"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in ["recipients", "fan_out_finished_at"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("campaigns")
                        .drop_column(Alias::new(col))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

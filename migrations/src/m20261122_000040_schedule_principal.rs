//! Schedules remember the API key behind them (so each occurrence is sent
//! with that automation's authorization, checked again at send time) and
//! how late an occurrence may still be sent after downtime.

use crate::util::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table("schedules")
                    .add_column(reference_null("api_key_id"))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("schedules")
                    .add_column(big_integer("tolerance_secs").default(900))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for col in ["tolerance_secs", "api_key_id"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("schedules")
                        .drop_column(col)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

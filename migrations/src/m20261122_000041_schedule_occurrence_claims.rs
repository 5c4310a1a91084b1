//! When an occurrence was last claimed or settled, so one left `claimed` by
//! a worker that stopped can be taken up again (with the same idempotency
//! key, so it is still sent at most once).

use crate::util::*;
use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("schedule_occurrences")
                    .add_column(ts_null("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "schedule_occurrences",
                "idx_schedule_occurrences_state",
                &["state", "updated_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_schedule_occurrences_state")
                    .table("schedule_occurrences")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("schedule_occurrences")
                    .drop_column("updated_at")
                    .to_owned(),
            )
            .await
    }
}

//! An automation may be approved for free-form replies inside the 24-hour
//! window (a bot answering people who wrote), besides its templates. Off for
//! every automation approved before: their approvers approved templates only.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("automations")
                    .add_column(boolean(Alias::new("free_form")).default(false).take())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("automations")
                    .drop_column(Alias::new("free_form"))
                    .to_owned(),
            )
            .await
    }
}

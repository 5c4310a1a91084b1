//! Quick-reply buttons and list pickers: an outbound message of kind
//! `interactive` keeps its checked content (the JSON of
//! `heimdall_domain::channels::interactive::InteractiveSpec`) so the worker, a resend
//! and the SMS fallback send what was accepted.

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
                    .table("outbound_messages")
                    .add_column(text_null(Alias::new("interactive")).take())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("outbound_messages")
                    .drop_column(Alias::new("interactive"))
                    .to_owned(),
            )
            .await
    }
}

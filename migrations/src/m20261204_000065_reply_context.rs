//! A reply may quote the person's message it answers (WhatsApp's reply
//! context): the provider's id of that message, kept on the outbound message
//! (its first part) so the worker can send it.

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
                    .add_column(string_null(Alias::new("reply_to")).take())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("outbound_messages")
                    .drop_column(Alias::new("reply_to"))
                    .to_owned(),
            )
            .await
    }
}

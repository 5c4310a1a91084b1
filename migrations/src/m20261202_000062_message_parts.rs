//! A free-form text longer than one message goes in parts: one outbound
//! message per part, linked to the first (`part_of`), numbered
//! (`part_index` of `part_count`), sent in order. The first part keeps the
//! text as it was written (`source_text`), before it was converted for
//! the channel and split.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::{index, reference_null};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [
            reference_null("part_of"),
            integer_null("part_index"),
            integer_null("part_count"),
            text_null("source_text"),
        ] {
            let mut column = column;
            manager
                .alter_table(
                    Table::alter()
                        .table("outbound_messages")
                        .add_column(column.take())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(index(
                "outbound_messages",
                "idx_outbound_messages_part_of",
                &["part_of", "part_index"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_outbound_messages_part_of")
                    .table("outbound_messages")
                    .to_owned(),
            )
            .await?;
        for name in ["part_of", "part_index", "part_count", "source_text"] {
            manager
                .alter_table(
                    Table::alter()
                        .table("outbound_messages")
                        .drop_column(Alias::new(name))
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}

//! Files staff attach to an inbox reply. The bytes live in the database, not
//! on one machine's disk, so every `serve` process can hand them to the
//! provider that fetches them; housekeeping deletes them after
//! `HEIMDALL_ATTACHMENT_DAYS`.

use crate::util::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("attachments")
                    .col(id("id"))
                    // The unguessable part of the public link.
                    .col(string("token"))
                    .col(string("file_name"))
                    .col(string("content_type"))
                    .col(big_integer("size"))
                    .col(string("sha256"))
                    .col(blob("content"))
                    .col(string("uploaded_by"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique("attachments", "uq_attachments_token", &["token"]))
            .await?;
        manager
            .create_index(index(
                "attachments",
                "idx_attachments_created_at",
                &["created_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("attachments").to_owned())
            .await
    }
}

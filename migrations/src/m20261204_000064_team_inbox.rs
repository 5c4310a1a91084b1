//! The inbox as a team uses it: who a conversation is assigned to, and the
//! canned replies staff pick from. (Reviews of a possible opt-out are kept on
//! the inbound message itself: `reviewed_at`, `reviewed_by`, and now what the
//! reviewer decided.)

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
                    .table("conversation_assignments")
                    // One assignment per contact: the conversation is the contact's.
                    .col(reference("contact_id").primary_key())
                    .col(string("assigned_to"))
                    .col(string("assigned_by"))
                    .col(ts("assigned_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "conversation_assignments",
                "idx_conversation_assignments_to",
                &["assigned_to"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("canned_replies")
                    .col(id("id"))
                    .col(string("title"))
                    .col(text("body"))
                    .col(string("created_by"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "canned_replies",
                "uq_canned_replies_title",
                &["title"],
            ))
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("inbound_messages")
                    .add_column(string_null(Alias::new("review_outcome")).take())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("inbound_messages")
                    .drop_column(Alias::new("review_outcome"))
                    .to_owned(),
            )
            .await?;
        manager
            .drop_table(Table::drop().table("canned_replies").to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table("conversation_assignments").to_owned())
            .await
    }
}

//! Message templates (Twilio Content API / Meta), campaigns and their approvals.

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
                    .table("templates")
                    .col(id("id"))
                    .col(string_len_uniq("name", 128))
                    .col(string_len("provider", 16))
                    .col(string_null("provider_id"))
                    .col(string_len("category", 32))
                    .col(string_len("language", 16))
                    .col(text("body"))
                    // JSON array of variable names, in the order of the
                    // provider's positional placeholders {{1}}, {{2}}, ...
                    .col(text("variables"))
                    .col(string_len("approval_status", 16))
                    .col(text_null("rejection_reason"))
                    .col(string_len("source", 16))
                    .col(ts_null("synced_at"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("campaigns")
                    .col(id("id"))
                    .col(string("name"))
                    .col(string_len("channel", 16))
                    .col(reference("template_id"))
                    // JSON: {"tags": [...]} or {"phones": [...]}
                    .col(text("audience"))
                    // JSON: variable name -> {"field": "name"} | {"value": "..."}
                    .col(text("variable_mapping"))
                    .col(ts_null("scheduled_at"))
                    .col(boolean("send_on_approval").default(true))
                    .col(string_len("status", 16))
                    .col(reference("created_by"))
                    .col(ts_null("submitted_at"))
                    .col(reference_null("approved_by"))
                    .col(ts_null("approved_at"))
                    .col(text_null("rejection_reason"))
                    .col(ts_null("fanned_out_at"))
                    .col(ts_null("completed_at"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("campaigns", "template_id")
                            .to("templates", "id"),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("campaigns", "idx_campaigns_status", &["status"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("campaign_approvals")
                    .col(id("id"))
                    .col(reference("campaign_id"))
                    .col(reference("actor_id"))
                    // submitted, approved, rejected, paused, resumed, cancelled
                    .col(string_len("decision", 16))
                    .col(text_null("reason"))
                    .col(ts("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("campaign_approvals", "campaign_id")
                            .to("campaigns", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "campaign_approvals",
                "idx_campaign_approvals_campaign",
                &["campaign_id"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["campaign_approvals", "campaigns", "templates"] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

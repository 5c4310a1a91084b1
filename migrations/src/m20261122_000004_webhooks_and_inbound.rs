//! Webhook dedup and audit, and inbound messages for the inbox.

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
                    .table("processed_webhook_events")
                    .col(string_len("event_key", 200).primary_key())
                    .col(string_len("provider", 16))
                    .col(ts("created_at"))
                    .col(ts("expires_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "processed_webhook_events",
                "idx_processed_webhook_expires",
                &["expires_at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("webhook_audit_log")
                    .col(id("id"))
                    .col(string_len("provider", 16))
                    .col(string("path"))
                    // accepted | duplicate | bad_signature | malformed | too_large | ignored
                    .col(string_len("verdict", 24))
                    .col(text("headers"))
                    .col(text("body"))
                    .col(string_null("event_id"))
                    .col(boolean("replayed").default(false))
                    .col(ts("received_at"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "webhook_audit_log",
                "idx_webhook_audit_received",
                &["received_at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("inbound_messages")
                    .col(id("id"))
                    .col(reference("contact_id"))
                    .col(string_len("channel", 16))
                    .col(string_len("provider", 16))
                    .col(string("provider_message_id"))
                    .col(string_len("from_address", 64))
                    .col(string_null("to_address"))
                    .col(text_null("body"))
                    .col(text("media").default("[]"))
                    .col(string_null("button_text"))
                    .col(string_null("button_payload"))
                    .col(string_null("profile_name"))
                    .col(string_null("keyword_action"))
                    .col(boolean("needs_review").default(false))
                    .col(ts_null("reviewed_at"))
                    .col(reference_null("reviewed_by"))
                    .col(ts("received_at"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "inbound_messages",
                "uq_inbound_provider_message",
                &["provider", "provider_message_id"],
            ))
            .await?;
        manager
            .create_index(index(
                "inbound_messages",
                "idx_inbound_contact",
                &["contact_id", "received_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "inbound_messages",
            "webhook_audit_log",
            "processed_webhook_events",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

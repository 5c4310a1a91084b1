//! Outbound messages (the state machine's record), their status history, and
//! `tool_calls`: one audit row per gate evaluation and per send attempt.

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
                    .table("outbound_messages")
                    .col(id("id"))
                    .col(reference_null("contact_id"))
                    .col(string_len("to_address", 64))
                    .col(string_len("channel", 16))
                    .col(string_len("kind", 16))
                    .col(reference_null("template_id"))
                    .col(string_null("template_name"))
                    .col(text("variables").default("{}"))
                    .col(text_null("body"))
                    .col(text_null("media_url"))
                    .col(string_len("source", 16))
                    .col(reference_null("campaign_id"))
                    .col(reference_null("automation_id"))
                    .col(reference_null("reminder_id"))
                    .col(string("actor"))
                    .col(string_len("state", 16))
                    .col(string_null("block_reason"))
                    .col(ts_null("defer_until"))
                    .col(string_null("provider"))
                    .col(string_null("provider_sid"))
                    .col(integer_null("error_code"))
                    .col(text_null("error_message"))
                    .col(integer("attempts").default(0))
                    .col(string_null("price"))
                    .col(string_null("price_unit"))
                    .col(reference_null("fallback_of"))
                    .col(boolean_null("in_window"))
                    .col(string_null("idempotency_key"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .col(ts_null("queued_at"))
                    .col(ts_null("sent_at"))
                    .col(ts_null("delivered_at"))
                    .col(ts_null("read_at"))
                    .col(ts_null("failed_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "outbound_messages",
                "uq_outbound_provider_sid",
                &["provider_sid"],
            ))
            .await?;
        manager
            .create_index(unique(
                "outbound_messages",
                "uq_outbound_idempotency",
                &["idempotency_key"],
            ))
            .await?;
        for (name, cols) in [
            ("idx_outbound_state", &["state", "updated_at"][..]),
            ("idx_outbound_contact", &["contact_id", "created_at"][..]),
            ("idx_outbound_campaign", &["campaign_id", "state"][..]),
            ("idx_outbound_created", &["created_at"][..]),
        ] {
            manager
                .create_index(index("outbound_messages", name, cols))
                .await?;
        }
        manager
            .create_table(
                Table::create()
                    .table("message_status_events")
                    .col(id("id"))
                    .col(reference("message_id"))
                    .col(string_len("status", 16))
                    .col(integer_null("error_code"))
                    .col(string_len("source", 16))
                    .col(ts("occurred_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "message_status_events",
                "idx_status_events_message",
                &["message_id"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tool_calls")
                    .col(id("id"))
                    .col(reference_null("message_id"))
                    // gate_evaluation | send_attempt
                    .col(string_len("kind", 24))
                    // accept | worker | dry_run
                    .col(string_len("stage", 16))
                    .col(string_null("channel"))
                    .col(reference_null("contact_id"))
                    .col(reference_null("campaign_id"))
                    // JSON array of {gate, verdict, reason, detail}
                    .col(text("verdicts"))
                    // pass | block | defer | sent | failed
                    .col(string_len("decision", 16))
                    .col(string_null("reason_code"))
                    .col(boolean("result_ok"))
                    .col(integer_null("error_code"))
                    .col(text_null("detail"))
                    .col(string("actor"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        for (name, cols) in [
            ("idx_tool_calls_message", &["message_id"][..]),
            ("idx_tool_calls_created", &["created_at"][..]),
            ("idx_tool_calls_contact", &["contact_id", "created_at"][..]),
            ("idx_tool_calls_campaign", &["campaign_id"][..]),
        ] {
            manager
                .create_index(index("tool_calls", name, cols))
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["tool_calls", "message_status_events", "outbound_messages"] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

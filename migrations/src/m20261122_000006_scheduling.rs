//! Reminders (one-off) and schedules (recurring, cron in the contact's time
//! zone), with one row per occurrence so each is sent once.

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
                    .table("reminders")
                    .col(id("id"))
                    .col(reference("contact_id"))
                    .col(string_len("to_address", 64))
                    .col(string("template_name"))
                    .col(text("variables"))
                    .col(ts("send_at"))
                    .col(big_integer("tolerance_secs"))
                    // scheduled | sending | sent | blocked | missed | cancelled | failed
                    .col(string_len("state", 16))
                    .col(reference_null("automation_id"))
                    .col(reference_null("api_key_id"))
                    .col(reference_null("message_id"))
                    .col(text_null("outcome"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "reminders",
                "idx_reminders_due",
                &["state", "send_at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("schedules")
                    .col(id("id"))
                    .col(string("name"))
                    .col(reference("contact_id"))
                    .col(string("cron"))
                    .col(string("template_name"))
                    .col(text("variables"))
                    .col(text_null("variables_url"))
                    .col(reference_null("automation_id"))
                    .col(boolean("active").default(true))
                    .col(ts_null("last_run_at"))
                    .col(ts_null("next_run_at"))
                    .col(text_null("last_outcome"))
                    .col(string("created_by"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("schedule_occurrences")
                    .col(id("id"))
                    .col(reference("schedule_id"))
                    .col(ts("occurs_at"))
                    // claimed | sent | blocked | failed | missed
                    .col(string_len("state", 16))
                    .col(reference_null("message_id"))
                    .col(text_null("outcome"))
                    .col(ts("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("schedule_occurrences", "schedule_id")
                            .to("schedules", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "schedule_occurrences",
                "uq_schedule_occurrence",
                &["schedule_id", "occurs_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["schedule_occurrences", "schedules", "reminders"] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! Running the system: channels (senders) and who activated them, tier usage,
//! alerts, settings editable by admins, and housekeeping job runs.

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
                    .table("channels")
                    .col(id("id"))
                    // twilio_whatsapp | twilio_sms | meta_whatsapp
                    .col(string_len("kind", 24))
                    .col(string("address"))
                    .col(boolean("active").default(false))
                    .col(string_null("activated_by"))
                    .col(ts_null("activated_at"))
                    .col(integer_null("rate_per_sec"))
                    .col(big_integer_null("tier_limit"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "channels",
                "uq_channels_kind_address",
                &["kind", "address"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("infra_config_changes")
                    .col(id("id"))
                    .col(string("actor"))
                    .col(string("target"))
                    .col(string("action"))
                    .col(text_null("before"))
                    .col(text_null("after"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("tier_usage")
                    .col(id("id"))
                    // The business portfolio (or sender) the tier applies to.
                    .col(string("portfolio"))
                    .col(string_len("recipient", 20))
                    .col(reference_null("message_id"))
                    .col(ts("reached_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "tier_usage",
                "idx_tier_usage_window",
                &["portfolio", "reached_at"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("alerts")
                    .col(id("id"))
                    .col(string("key"))
                    .col(string("title"))
                    .col(text("description"))
                    .col(integer_null("error_code"))
                    .col(reference_null("message_id"))
                    .col(reference_null("campaign_id"))
                    .col(integer("count").default(1))
                    // pending | sent | failed | throttled
                    .col(string_len("delivery", 16))
                    .col(ts("first_at"))
                    .col(ts("last_at"))
                    .col(ts_null("sent_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("alerts", "idx_alerts_last", &["last_at"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("app_settings")
                    .col(string("key").primary_key())
                    .col(text("value"))
                    .col(string("updated_by"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("job_runs")
                    .col(string("name").primary_key())
                    .col(ts_null("last_run_at"))
                    .col(ts_null("next_run_at"))
                    .col(string_null("last_outcome"))
                    .col(text_null("last_error"))
                    .col(big_integer("runs").default(0))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "job_runs",
            "app_settings",
            "alerts",
            "tier_usage",
            "infra_config_changes",
            "channels",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! Retention (`heimdall_domain::housekeeping::retention`): `retention_runs`
//! holds, for each run of the daily retention job and each kind of data it
//! purges (message bodies, inbound texts, webhook audit rows, consent
//! evidence), how many rows it purged and how many it left for the next run
//! (a consent not yet chained). The console shows the last run and the
//! total of the last 30 days per kind, read through the index on
//! `(kind, ran_at)`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("retention_runs")
                    .col(id("id"))
                    // message_bodies | inbound_texts | webhook_audit | consent_evidence
                    .col(string_len("kind", 32))
                    .col(big_integer("purged"))
                    // Left for the next run (a consent not chained yet).
                    .col(big_integer("deferred").default(0))
                    .col(ts("ran_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "retention_runs",
                "idx_retention_runs_kind_ran_at",
                &["kind", "ran_at"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("retention_runs").to_owned())
            .await?;
        Ok(())
    }
}

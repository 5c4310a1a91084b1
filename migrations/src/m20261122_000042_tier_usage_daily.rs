//! Daily history of the messaging tier: housekeeping folds `tier_usage`
//! rows older than the moving 24 hours into one count per portfolio and
//! UTC day, so dashboards keep the history after the rows are gone.

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
                    .table("tier_usage_daily")
                    .col(id("id"))
                    .col(string("portfolio"))
                    // YYYY-MM-DD, UTC.
                    .col(string_len("day", 10))
                    // People newly counted in the tier that day.
                    .col(big_integer("recipients").default(0))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "tier_usage_daily",
                "uq_tier_usage_daily",
                &["portfolio", "day"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("tier_usage_daily").to_owned())
            .await
    }
}

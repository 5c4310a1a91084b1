//! Indexes on columns that most rows leave empty cover only the rows that
//! have a value. `outbound_messages` is written three times per message and
//! every write changes an indexed column (`state`), so each write adds an
//! entry to every index on the table; an index that skips the empty rows
//! costs those writes nothing. Lookups are unchanged: `col = value` implies
//! `col IS NOT NULL`, so both databases use the partial index for it, and a
//! partial unique index still refuses a second row with the same value.

use sea_orm_migration::prelude::*;

use crate::util::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// (table, index, columns, unique): each index's first column is NULL on
/// most rows (a message outside a campaign, without an idempotency key, not
/// yet handed to a provider; an audit row outside a campaign), and the
/// partial index covers the rows where it is not.
const SPARSE: [(&str, &str, &[&str], bool); 4] = [
    (
        "outbound_messages",
        "uq_outbound_provider_sid",
        &["provider_sid"],
        true,
    ),
    (
        "outbound_messages",
        "uq_outbound_idempotency",
        &["idempotency_key"],
        true,
    ),
    (
        "outbound_messages",
        "idx_outbound_campaign",
        &["campaign_id", "state"],
        false,
    ),
    (
        "tool_calls",
        "idx_tool_calls_campaign",
        &["campaign_id"],
        false,
    ),
];

fn create(table: &str, name: &str, cols: &[&'static str], is_unique: bool) -> IndexCreateStatement {
    if is_unique {
        unique(table.to_string(), name, cols)
    } else {
        index(table.to_string(), name, cols)
    }
}

async fn drop(manager: &SchemaManager<'_>, table: &str, name: &str) -> Result<(), DbErr> {
    manager
        .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
        .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, cols, is_unique) in SPARSE {
            drop(manager, table, name).await?;
            let mut stmt = create(table, name, cols, is_unique);
            stmt.and_where(Expr::col(Alias::new(cols[0])).is_not_null());
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, cols, is_unique) in SPARSE {
            drop(manager, table, name).await?;
            manager
                .create_index(create(table, name, cols, is_unique))
                .await?;
        }
        Ok(())
    }
}

//! The audit chain (`heimdall_domain::audit::chain`): `audit_chain` holds
//! one hash-chained entry per event of the rows of `tool_calls`,
//! `consents`, `suppressions` and `campaign_approvals` (a row written, a
//! consent confirmed or revoked, a suppression lifted, a personal field
//! redacted), one chain (stream) per table; `audit_anchors` keeps the chain
//! heads as they were anchored each day.
//!
//! Each chained table gets `chain_sealed`: how far the row is chained (the
//! rank of its last chained event; NULL: not yet). The sealer finds the
//! rows it has not chained through partial indexes on exactly those rows,
//! so finding them costs nothing however large the table grows; the
//! predicates here are the ones `audit::chain` queries with (both
//! databases use a partial index only for a query that states its
//! predicate).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const CHAINED: [&str; 4] = [
    "tool_calls",
    "consents",
    "suppressions",
    "campaign_approvals",
];

/// (table, index, columns, predicate): the rows each kind of event is
/// still to be chained for.
const UNSEALED: [(&str, &str, [&str; 2], &str); 7] = [
    (
        "tool_calls",
        "idx_tool_calls_unsealed",
        ["created_at", "id"],
        "chain_sealed IS NULL",
    ),
    (
        "consents",
        "idx_consents_unsealed",
        ["created_at", "id"],
        "chain_sealed IS NULL",
    ),
    (
        "consents",
        "idx_consents_unsealed_confirmed",
        ["confirmed_at", "id"],
        "confirmed_at IS NOT NULL AND chain_sealed < 2",
    ),
    (
        "consents",
        "idx_consents_unsealed_revoked",
        ["revoked_at", "id"],
        "revoked_at IS NOT NULL AND chain_sealed < 3",
    ),
    (
        "suppressions",
        "idx_suppressions_unsealed",
        ["created_at", "id"],
        "chain_sealed IS NULL",
    ),
    (
        "suppressions",
        "idx_suppressions_unsealed_lifted",
        ["lifted_at", "id"],
        "lifted_at IS NOT NULL AND chain_sealed < 2",
    ),
    (
        "campaign_approvals",
        "idx_campaign_approvals_unsealed",
        ["created_at", "id"],
        "chain_sealed IS NULL",
    ),
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("audit_chain")
                    // The chain: one per table (`tool_calls`, ...).
                    .col(string_len("stream", 32))
                    .col(big_integer("seq"))
                    .col(string_len("row_table", 32))
                    .col(string_len("row_id", 64))
                    // created | confirmed | revoked | lifted | redacted[.n]
                    .col(string_len("event", 32))
                    .col(string_len("content_hash", 64))
                    .col(string_len("prev_hash", 64))
                    .col(string_len("hash", 64))
                    // JSON: what the entry records besides the row
                    // (a consent's status when chained; a redaction's
                    // original field digests, reason and actor).
                    .col(text_null("detail"))
                    .col(ts("sealed_at"))
                    .primary_key(Index::create().col("stream").col("seq"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "audit_chain",
                "uq_audit_chain_row_event",
                &["row_table", "row_id", "event"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("audit_anchors")
                    .col(id("id"))
                    .col(ts("anchored_at"))
                    .col(string_len("stream", 32))
                    .col(big_integer("seq"))
                    .col(string_len("hash", 64))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "audit_anchors",
                "idx_audit_anchors_stream",
                &["stream", "anchored_at"],
            ))
            .await?;
        for table in CHAINED {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(integer_null("chain_sealed"))
                        .to_owned(),
                )
                .await?;
        }
        for (table, name, cols, predicate) in UNSEALED {
            let mut stmt = index(table.to_string(), name, &cols);
            stmt.and_where(Expr::cust(predicate));
            manager.create_index(stmt).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, name, _, _) in UNSEALED {
            manager
                .drop_index(Index::drop().name(name).table(Alias::new(table)).to_owned())
                .await?;
        }
        for table in CHAINED {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column("chain_sealed")
                        .to_owned(),
                )
                .await?;
        }
        for table in ["audit_anchors", "audit_chain"] {
            manager
                .drop_table(Table::drop().table(table).to_owned())
                .await?;
        }
        Ok(())
    }
}

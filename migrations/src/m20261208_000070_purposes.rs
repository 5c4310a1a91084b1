//! Consent by purpose (`heimdall_domain::consent::purposes`): staff define
//! the purposes messages are sent for (`purposes`); each template and
//! campaign is tagged with one, each outbound message records the one it
//! was checked against, and each consent row names the purpose it covers.
//!
//! Two purposes are created here: `marketing` (offers and news) and
//! `service` (reminders and account messages). Every template is tagged
//! `marketing` when its category is MARKETING, else `service`; every
//! campaign with its template's purpose. Consents recorded before purposes
//! existed keep `purpose` NULL, and the purposes created here are marked
//! `legacy`: such a consent covers exactly the purposes that existed when
//! it was migrated (both), never one staff define later. The consent rows
//! themselves are not changed (they are chained in the audit trail).

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

use crate::util::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TAGGED: [&str; 5] = [
    "templates",
    "campaigns",
    "consents",
    "consent_texts",
    "outbound_messages",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table("purposes")
                    .col(string_len("name", 40).primary_key())
                    .col(string_len("label", 120))
                    .col(text("description").default(""))
                    // Marketing: stopped by "STOP PROMOTIONS" and Meta's 131050.
                    .col(boolean("marketing").default(false))
                    // Covered by the consents recorded before purposes existed.
                    .col(boolean("legacy").default(false))
                    .col(string_len("created_by", 255))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        for table in TAGGED {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(string_len_null(Alias::new("purpose"), 40).take())
                        .to_owned(),
                )
                .await?;
        }
        let db = manager.get_connection();
        let now = sea_orm_migration::sea_orm::prelude::ChronoUtc::now();
        let mut seed = Query::insert();
        seed.into_table(Alias::new("purposes")).columns(
            [
                "name",
                "label",
                "description",
                "marketing",
                "legacy",
                "created_by",
                "created_at",
            ]
            .map(Alias::new),
        );
        for (name, label, description, marketing) in [
            ("marketing", "Offers and news", "Promotions, offers and news: marketing messages.", true),
            (
                "service",
                "Reminders and account messages",
                "Appointment reminders, account and order updates: what the person is a customer for.",
                false,
            ),
        ] {
            seed.values_panic([
                name.into(),
                label.into(),
                description.into(),
                marketing.into(),
                true.into(),
                "migration".into(),
                now.into(),
            ]);
        }
        manager.exec_stmt(seed).await?;
        db.execute_unprepared(
            "UPDATE templates SET purpose = CASE WHEN upper(category) = 'MARKETING' THEN 'marketing' ELSE 'service' END",
        )
        .await?;
        db.execute_unprepared(
            "UPDATE campaigns SET purpose = (SELECT t.purpose FROM templates t WHERE t.id = campaigns.template_id)",
        )
        .await?;
        db.execute_unprepared("UPDATE campaigns SET purpose = 'marketing' WHERE purpose IS NULL")
            .await?;
        // Messages still to go are checked for their template's purpose, a
        // free-form text for `service` (HEIMDALL_DEFAULT_PURPOSE's default).
        db.execute_unprepared(
            "UPDATE outbound_messages SET purpose = COALESCE(\
               (SELECT t.purpose FROM templates t WHERE t.id = outbound_messages.template_id), \
               'service') \
             WHERE state IN ('pending', 'deferred', 'queued', 'held', 'sending')",
        )
        .await?;
        // A suppression of one purpose is scoped `purpose:<name>` (a name
        // is up to 40 characters): PostgreSQL enforces the column's length
        // (a longer varchar is a change of the catalogue only); SQLite
        // does not.
        if manager.get_database_backend() == sea_orm_migration::sea_orm::DatabaseBackend::Postgres {
            manager
                .alter_table(
                    Table::alter()
                        .table("suppressions")
                        .modify_column(ColumnDef::new("scope").string_len(64).not_null())
                        .to_owned(),
                )
                .await?;
        }
        manager
            .create_index(index(
                "consents",
                "idx_consents_contact_channel_purpose",
                &["contact_id", "channel", "purpose", "created_at"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name("idx_consents_contact_channel_purpose")
                    .table("consents")
                    .to_owned(),
            )
            .await?;
        for table in TAGGED {
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .drop_column(Alias::new("purpose"))
                        .to_owned(),
                )
                .await?;
        }
        manager
            .drop_table(Table::drop().table("purposes").to_owned())
            .await?;
        Ok(())
    }
}

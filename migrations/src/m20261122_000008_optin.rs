//! Public opt-in forms, their versioned consent texts, and QR codes.

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
                    .table("optin_forms")
                    .col(id("id"))
                    .col(string_len_uniq("slug", 64))
                    .col(string("title"))
                    .col(text("intro"))
                    // JSON array of extra field names beyond name and phone.
                    .col(text("fields").default("[]"))
                    .col(text("thank_you"))
                    .col(boolean("double_opt_in").default(false))
                    .col(boolean("active").default(true))
                    .col(string("created_by"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("consent_texts")
                    .col(id("id"))
                    .col(reference("form_id"))
                    .col(string_len("channel", 16))
                    .col(integer("version"))
                    .col(text("text"))
                    .col(string_len("hash", 64))
                    .col(boolean("current").default(true))
                    .col(string("created_by"))
                    .col(ts("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("consent_texts", "form_id")
                            .to("optin_forms", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                "consent_texts",
                "uq_consent_text_version",
                &["form_id", "channel", "version"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("qr_codes")
                    .col(id("id"))
                    .col(string_len_uniq("code", 32))
                    .col(reference("form_id"))
                    .col(string("source_label"))
                    .col(text_null("prefilled_text"))
                    .col(big_integer("scans").default(0))
                    .col(string("created_by"))
                    .col(ts("created_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("qr_codes", "form_id")
                            .to("optin_forms", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in ["qr_codes", "consent_texts", "optin_forms"] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

//! The preference page (`heimdall_domain::consent::preferences`): a person
//! opens `/p/{token}` from the link in Heimdall's HELP reply and sees what
//! they agreed to and can withdraw it. `preference_links` keeps each
//! link's token as its SHA-256 only (a leaked table opens no page), the
//! contact it is for, when it was made and last used.

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
                    .table("preference_links")
                    .col(string_len("token_hash", 64).primary_key())
                    .col(reference("contact_id"))
                    .col(ts("created_at"))
                    .col(ts_null("used_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "preference_links",
                "idx_preference_links_contact",
                &["contact_id"],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table("preference_links").to_owned())
            .await?;
        Ok(())
    }
}

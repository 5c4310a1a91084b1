//! Double opt-in on WhatsApp: the approved template a form's confirmation
//! request goes out as (outside the 24-hour window only a template may go).
//! Without one, the confirmation is free text and the `outside_window` gate
//! refuses it (recorded) unless the person wrote in the last 24 hours.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("optin_forms")
                    .add_column(string_null("whatsapp_confirmation_template"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("optin_forms")
                    .drop_column("whatsapp_confirmation_template")
                    .to_owned(),
            )
            .await
    }
}

//! API keys carry scopes: what each key may do (send, reminders,
//! schedules, contacts, consents, forms). Keys made before scopes existed
//! could do everything, and keep that (their owners chose them for it);
//! new keys get only the scopes chosen when they are created.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

/// Every scope there was when scopes were introduced.
const ALL: &str = r#"["send","reminders","schedules","contacts:read","contacts:write","consents:read","consents:write","forms:read","forms:write"]"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .add_column(text(Alias::new("scopes")).default("[]").take())
                    .to_owned(),
            )
            .await?;
        manager
            .get_connection()
            .execute_unprepared(&format!("UPDATE api_keys SET scopes = '{ALL}'"))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("api_keys")
                    .drop_column(Alias::new("scopes"))
                    .to_owned(),
            )
            .await
    }
}

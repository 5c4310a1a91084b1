//! Staff accounts and sessions, API keys (hashes only) and automations: the
//! human authorization behind API and scheduled sends.

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
                    .table("staff_users")
                    .col(id("id"))
                    .col(string_uniq("email"))
                    .col(string_null("name"))
                    // viewer | operator | approver | admin
                    .col(string_len("role", 16))
                    .col(text("password_hash"))
                    .col(boolean("active").default(true))
                    .col(integer("failed_logins").default(0))
                    .col(ts_null("locked_until"))
                    .col(ts_null("last_login_at"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("staff_sessions")
                    // SHA-256 of the cookie token; the token itself is never stored.
                    .col(string_len("id", 64).primary_key())
                    .col(reference("user_id"))
                    .col(string_len("csrf_token", 64))
                    .col(string_null("ip"))
                    .col(text_null("user_agent"))
                    .col(ts("created_at"))
                    .col(ts("expires_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("staff_sessions", "user_id")
                            .to("staff_users", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("api_keys")
                    .col(id("id"))
                    .col(string("name"))
                    // The first characters, to recognise a key in lists.
                    .col(string_len("prefix", 16))
                    // SHA-256 hex of the whole key; the key is shown once.
                    .col(string_len_uniq("key_hash", 64))
                    .col(string("created_by"))
                    .col(ts("created_at"))
                    .col(ts_null("revoked_at"))
                    .col(string_null("revoked_by"))
                    .col(ts_null("last_used_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("automations")
                    .col(id("id"))
                    .col(string("name"))
                    .col(reference("api_key_id"))
                    // JSON array of template names the key may send.
                    .col(text("templates"))
                    // pending | approved | revoked
                    .col(string_len("status", 16))
                    .col(string("created_by"))
                    .col(string_null("approved_by"))
                    .col(ts_null("approved_at"))
                    .col(ts("created_at"))
                    .col(ts("updated_at"))
                    .foreign_key(
                        ForeignKey::create()
                            .from("automations", "api_key_id")
                            .to("api_keys", "id")
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index("automations", "idx_automations_key", &["api_key_id"]))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table("staff_audit_log")
                    .col(id("id"))
                    .col(string("actor"))
                    .col(string("action"))
                    .col(string_null("target"))
                    .col(text_null("detail"))
                    .col(string_null("ip"))
                    .col(ts("created_at"))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                "staff_audit_log",
                "idx_staff_audit_created",
                &["created_at"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            "staff_audit_log",
            "automations",
            "api_keys",
            "staff_sessions",
            "staff_users",
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

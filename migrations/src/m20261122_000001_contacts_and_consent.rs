//! Contacts, their consents with evidence, suppressions and service windows.

use crate::util::*;
use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Contacts {
    Table,
    Id,
    PhoneE164,
    Name,
    TimeZone,
    Locale,
    Tags,
    Attributes,
    NeedsManualOutreach,
    ManualOutreachReason,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Consents {
    Table,
    Id,
    ContactId,
    Channel,
    Status,
    Source,
    CapturedAt,
    Ip,
    UserAgent,
    PageUrl,
    FormId,
    QrCode,
    InboundMessageId,
    ConsentTextVersion,
    ConsentTextHash,
    ConsentText,
    RecordedBy,
    ConfirmedAt,
    ConfirmationTokenHash,
    RevokedAt,
    RevocationSource,
    RevocationRef,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Suppressions {
    Table,
    Id,
    ContactId,
    Channel,
    Reason,
    SourceRef,
    CreatedBy,
    CreatedAt,
    LiftedAt,
    LiftedBy,
}

#[derive(DeriveIden)]
enum ServiceWindows {
    Table,
    Id,
    ContactId,
    Channel,
    LastInboundAt,
    WindowExpiresAt,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Contacts::Table)
                    .col(id(Contacts::Id))
                    .col(string_len_uniq(Contacts::PhoneE164, 20))
                    .col(string_null(Contacts::Name))
                    .col(string_null(Contacts::TimeZone))
                    .col(string_null(Contacts::Locale))
                    .col(text(Contacts::Tags).default("[]"))
                    .col(text(Contacts::Attributes).default("{}"))
                    .col(boolean(Contacts::NeedsManualOutreach).default(false))
                    .col(text_null(Contacts::ManualOutreachReason))
                    .col(ts(Contacts::CreatedAt))
                    .col(ts(Contacts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Consents::Table)
                    .col(id(Consents::Id))
                    .col(reference(Consents::ContactId))
                    .col(string_len(Consents::Channel, 16))
                    .col(string_len(Consents::Status, 16))
                    .col(string_len(Consents::Source, 32))
                    .col(ts(Consents::CapturedAt))
                    .col(string_null(Consents::Ip))
                    .col(text_null(Consents::UserAgent))
                    .col(text_null(Consents::PageUrl))
                    .col(reference_null(Consents::FormId))
                    .col(string_null(Consents::QrCode))
                    .col(string_null(Consents::InboundMessageId))
                    .col(string_null(Consents::ConsentTextVersion))
                    .col(string_null(Consents::ConsentTextHash))
                    .col(text_null(Consents::ConsentText))
                    .col(string(Consents::RecordedBy))
                    .col(ts_null(Consents::ConfirmedAt))
                    .col(string_null(Consents::ConfirmationTokenHash))
                    .col(ts_null(Consents::RevokedAt))
                    .col(string_null(Consents::RevocationSource))
                    .col(string_null(Consents::RevocationRef))
                    .col(ts(Consents::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Consents::Table, Consents::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                Consents::Table,
                "idx_consents_contact_channel",
                &["contact_id", "channel"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Suppressions::Table)
                    .col(id(Suppressions::Id))
                    .col(reference(Suppressions::ContactId))
                    .col(string_len(Suppressions::Channel, 16))
                    .col(string_len(Suppressions::Reason, 32))
                    .col(string_null(Suppressions::SourceRef))
                    .col(string(Suppressions::CreatedBy))
                    .col(ts(Suppressions::CreatedAt))
                    .col(ts_null(Suppressions::LiftedAt))
                    .col(string_null(Suppressions::LiftedBy))
                    .foreign_key(
                        ForeignKey::create()
                            .from(Suppressions::Table, Suppressions::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(index(
                Suppressions::Table,
                "idx_suppressions_contact",
                &["contact_id", "channel"],
            ))
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(ServiceWindows::Table)
                    .col(id(ServiceWindows::Id))
                    .col(reference(ServiceWindows::ContactId))
                    .col(string_len(ServiceWindows::Channel, 16))
                    .col(ts(ServiceWindows::LastInboundAt))
                    .col(ts(ServiceWindows::WindowExpiresAt))
                    .col(ts(ServiceWindows::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .from(ServiceWindows::Table, ServiceWindows::ContactId)
                            .to(Contacts::Table, Contacts::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(unique(
                ServiceWindows::Table,
                "uq_service_windows_contact_channel",
                &["contact_id", "channel"],
            ))
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for t in [
            ServiceWindows::Table.into_iden(),
            Suppressions::Table.into_iden(),
            Consents::Table.into_iden(),
            Contacts::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(t).to_owned())
                .await?;
        }
        Ok(())
    }
}

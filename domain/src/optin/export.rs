//! The audit export of a contact's consent records (JSON and CSV).

use super::*;

/// A contact's whole consent record: every field of every consent and
/// suppression, revoked and lifted ones included, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct ConsentExport {
    pub exported_at: DateTime<Utc>,
    pub contact: contacts::Contact,
    pub consents: Vec<consent::Model>,
    pub suppressions: Vec<suppression::Model>,
}

pub async fn export_consents(core: &Core, contact_id: &str) -> Result<ConsentExport, ContactError> {
    let contact = contacts::get(core, contact_id).await?;
    let consents = consent::Entity::find()
        .filter(consent::Column::ContactId.eq(contact_id))
        .order_by_asc(consent::Column::CreatedAt)
        .order_by_asc(consent::Column::Id)
        .all(&core.db.conn)
        .await?;
    let suppressions = suppression::Entity::find()
        .filter(suppression::Column::ContactId.eq(contact_id))
        .order_by_asc(suppression::Column::CreatedAt)
        .order_by_asc(suppression::Column::Id)
        .all(&core.db.conn)
        .await?;
    Ok(ConsentExport {
        exported_at: core.now(),
        contact,
        consents,
        suppressions,
    })
}

/// The consent record as pretty-printed JSON.
pub async fn export_consents_json(core: &Core, contact_id: &str) -> Result<String, ContactError> {
    let export = export_consents(core, contact_id).await?;
    serde_json::to_string_pretty(&export)
        .map_err(|e| ContactError::Db(sea_orm::DbErr::Custom(e.to_string())))
}

/// Column order of the CSV export: one row per consent (`record_type`
/// `consent`) or suppression (`suppression`).
pub const EXPORT_CSV_COLUMNS: &[&str] = &[
    "record_type",
    "contact_id",
    "contact_phone",
    "contact_name",
    "id",
    "channel",
    "status",
    "source",
    "captured_at",
    "ip",
    "user_agent",
    "page_url",
    "form_id",
    "qr_code",
    "inbound_message_id",
    "consent_text_version",
    "consent_text_hash",
    "consent_text",
    "recorded_by",
    "confirmed_at",
    "confirmation_token_hash",
    "revoked_at",
    "revocation_source",
    "revocation_ref",
    "reason",
    "source_ref",
    "created_by",
    "lifted_at",
    "lifted_by",
    "created_at",
    // A consent's purpose (empty: recorded before purposes, covering the
    // legacy ones); a suppression's scope (`all`, `marketing`, `purpose:<name>`).
    "purpose",
    "scope",
];

/// A cell a spreadsheet will not run as a formula: one starting with `=`,
/// `+`, `-`, `@`, tab or carriage return gets a leading `'`.
pub fn csv_safe(s: &str) -> String {
    if s.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{s}")
    } else {
        s.to_string()
    }
}

pub(super) fn ts(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// The consent record as CSV (safe to open in a spreadsheet).
pub async fn export_consents_csv(core: &Core, contact_id: &str) -> Result<String, ContactError> {
    let e = export_consents(core, contact_id).await?;
    let mut w = csv::Writer::from_writer(Vec::new());
    let io = |err: csv::Error| ContactError::Db(sea_orm::DbErr::Custom(err.to_string()));
    w.write_record(EXPORT_CSV_COLUMNS).map_err(io)?;
    let name = e.contact.name.clone().unwrap_or_default();
    for c in &e.consents {
        let row: Vec<String> = vec![
            "consent".into(),
            e.contact.id.clone(),
            e.contact.phone.clone(),
            name.clone(),
            c.id.clone(),
            c.channel.clone(),
            c.status.to_string(),
            c.source.clone(),
            ts(Some(c.captured_at)),
            c.ip.clone().unwrap_or_default(),
            c.user_agent.clone().unwrap_or_default(),
            c.page_url.clone().unwrap_or_default(),
            c.form_id.clone().unwrap_or_default(),
            c.qr_code.clone().unwrap_or_default(),
            c.inbound_message_id.clone().unwrap_or_default(),
            c.consent_text_version.clone().unwrap_or_default(),
            c.consent_text_hash.clone().unwrap_or_default(),
            c.consent_text.clone().unwrap_or_default(),
            c.recorded_by.clone(),
            ts(c.confirmed_at),
            c.confirmation_token_hash.clone().unwrap_or_default(),
            ts(c.revoked_at),
            c.revocation_source.clone().unwrap_or_default(),
            c.revocation_ref.clone().unwrap_or_default(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            ts(Some(c.created_at)),
            c.purpose.clone().unwrap_or_default(),
            String::new(),
        ];
        w.write_record(row.iter().map(|s| csv_safe(s)))
            .map_err(io)?;
    }
    for s in &e.suppressions {
        let mut row = vec![String::new(); EXPORT_CSV_COLUMNS.len()];
        row[0] = "suppression".into();
        row[1] = e.contact.id.clone();
        row[2] = e.contact.phone.clone();
        row[3] = name.clone();
        row[4] = s.id.clone();
        row[5] = s.channel.clone();
        row[6] = if s.lifted_at.is_some() {
            "lifted"
        } else {
            "active"
        }
        .into();
        row[24] = s.reason.clone();
        row[25] = s.source_ref.clone().unwrap_or_default();
        row[26] = s.created_by.clone();
        row[27] = ts(s.lifted_at);
        row[28] = s.lifted_by.clone().unwrap_or_default();
        row[29] = ts(Some(s.created_at));
        row[31] = s.scope.clone();
        w.write_record(row.iter().map(|s| csv_safe(s)))
            .map_err(io)?;
    }
    let bytes = w
        .into_inner()
        .map_err(|e| ContactError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

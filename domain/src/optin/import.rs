//! CSV import of consent records with their evidence, with a report per row.

use super::*;

/// What an import did. Row numbers are the file's line numbers (the header
/// is row 1), as a spreadsheet shows them.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ImportReport {
    pub imported: usize,
    /// Rows whose consent was already on record (same contact, channel,
    /// time and text version): nothing added.
    pub duplicates: Vec<usize>,
    pub refused: Vec<RefusedRow>,
    /// Columns that are not part of the format and were not read.
    pub ignored_columns: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefusedRow {
    pub row: usize,
    pub reason: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The file itself is unusable; nothing was imported.
    #[error("{0}")]
    File(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Columns an import must have.
pub const IMPORT_REQUIRED_COLUMNS: &[&str] = &[
    "phone",
    "channel",
    "source",
    "captured_at",
    "consent_text_version",
];
/// Columns of which an import must have at least one (how consent was given).
pub const IMPORT_EVIDENCE_COLUMNS: &[&str] = &["ip", "page_url", "inbound_message_id"];
/// Further columns an import may have.
pub const IMPORT_OPTIONAL_COLUMNS: &[&str] = &[
    "name",
    // Purpose names, separated by spaces, commas or |; empty: every purpose.
    "purposes",
    "user_agent",
    "consent_text",
    "consent_text_hash",
    "form_id",
    "qr_code",
];

pub(super) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc());
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
}

pub(super) fn parse_source(s: &str) -> Option<ConsentSource> {
    Some(match s.trim().to_ascii_lowercase().as_str() {
        "web_form" => ConsentSource::WebForm,
        "qr" => ConsentSource::Qr,
        "keyword" => ConsentSource::Keyword,
        "api" => ConsentSource::Api,
        "import" => ConsentSource::Import,
        "staff" => ConsentSource::Staff,
        _ => return None,
    })
}

pub(super) struct ImportRow {
    phone: PhoneNumber,
    name: Option<String>,
    channel: Channel,
    source: ConsentSource,
    /// A source described in words (kept with who recorded it).
    described: Option<String>,
    evidence: ConsentEvidence,
    /// The purposes it names (none: every purpose defined).
    purposes: Vec<String>,
}

pub(super) fn read_row(
    core: &Core,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<ImportRow, String> {
    let phone_raw = get("phone").ok_or("phone is empty")?;
    let phone = PhoneNumber::parse(&phone_raw, core.settings.default_region)
        .map_err(|e| format!("phone: {e}"))?;
    let channel: Channel = get("channel")
        .ok_or("channel is empty")?
        .parse()
        .map_err(|e| format!("channel: {e}"))?;
    let source_raw = get("source").ok_or("source is empty: say where the consent came from")?;
    let (source, described) = match parse_source(&source_raw) {
        Some(s) => (s, None),
        None => (ConsentSource::Import, Some(truncate(&source_raw, 200))),
    };
    let captured_raw =
        get("captured_at").ok_or("captured_at is empty: the time consent was given is required")?;
    let captured_at = parse_time(&captured_raw).ok_or_else(|| {
        format!("captured_at '{captured_raw}' is not a time like 2026-03-14T15:09:26Z")
    })?;
    if captured_at > core.now() + Duration::minutes(5) {
        return Err("captured_at is in the future".into());
    }
    let ip = match get("ip") {
        Some(ip) => Some(
            ip.parse::<IpAddr>()
                .map_err(|_| format!("ip '{ip}' is not an IP address"))?
                .to_string(),
        ),
        None => None,
    };
    let page_url = match get("page_url") {
        Some(u) => {
            let parsed = url::Url::parse(&u).map_err(|_| format!("page_url '{u}' is not a URL"))?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err("page_url must be an http or https URL".into());
            }
            Some(u)
        }
        None => None,
    };
    let consent_text = get("consent_text");
    let consent_text_hash = match (get("consent_text_hash"), &consent_text) {
        (Some(h), text) => {
            let h = h.to_ascii_lowercase();
            if h.len() != 64 || !h.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err("consent_text_hash must be a SHA-256 in hex (64 characters)".into());
            }
            if let Some(t) = text {
                if crate::consent::text_hash(t) != h {
                    return Err("consent_text_hash is not the SHA-256 of consent_text".into());
                }
            }
            Some(h)
        }
        (None, Some(t)) => Some(crate::consent::text_hash(t)),
        (None, None) => None,
    };
    for (col, v, max) in [
        ("user_agent", get("user_agent"), MAX_USER_AGENT),
        ("consent_text", consent_text.clone(), MAX_LONG_TEXT),
        ("name", get("name"), MAX_NAME),
        ("consent_text_version", get("consent_text_version"), 200),
        ("inbound_message_id", get("inbound_message_id"), 200),
        ("page_url", page_url.clone(), 2048),
    ] {
        if v.as_ref().is_some_and(|v| v.chars().count() > max) {
            return Err(format!("{col} is longer than {max} characters"));
        }
    }
    let evidence = ConsentEvidence {
        captured_at: Some(captured_at),
        ip,
        user_agent: get("user_agent"),
        page_url,
        form_id: get("form_id"),
        qr_code: get("qr_code"),
        inbound_message_id: get("inbound_message_id"),
        consent_text_version: get("consent_text_version"),
        consent_text,
        consent_text_hash,
    };
    evidence.validate(source).map_err(|e| e.to_string())?;
    Ok(ImportRow {
        phone,
        name: get("name"),
        channel,
        source,
        described,
        evidence,
        purposes: get("purposes")
            .map(|p| crate::consent::purposes::parse_list(&p))
            .unwrap_or_default(),
    })
}

/// Import consents from CSV. The header must name [`IMPORT_REQUIRED_COLUMNS`]
/// and at least one of [`IMPORT_EVIDENCE_COLUMNS`]. Each row is checked on
/// its own: a row without its source or evidence, with a bad value, or for
/// a person who has opted out on that channel is refused and reported, and
/// nothing is recorded for it. An accepted row creates the contact if new
/// and records the consent with `source` when it names one (`web_form`,
/// `qr`, `keyword`, `api`, `import`, `staff`), else as `import` with the
/// words kept in `recorded_by`. An import never lifts an opt-out.
pub async fn import_consents(
    core: &Core,
    csv_text: &str,
    actor: &str,
) -> Result<ImportReport, ImportError> {
    let text = csv_text.trim_start_matches('\u{feff}');
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| ImportError::File(format!("the header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_ascii_lowercase().replace([' ', '-'], "_"))
        .collect();
    let missing: Vec<&str> = IMPORT_REQUIRED_COLUMNS
        .iter()
        .copied()
        .filter(|c| !headers.iter().any(|h| h == c))
        .collect();
    if !missing.is_empty() {
        return Err(ImportError::File(format!(
            "the header row must name the column(s): {} (it has: {})",
            missing.join(", "),
            headers.join(", ")
        )));
    }
    if !IMPORT_EVIDENCE_COLUMNS
        .iter()
        .any(|c| headers.iter().any(|h| h == c))
    {
        return Err(ImportError::File(format!(
            "the header row must name at least one evidence column: {}",
            IMPORT_EVIDENCE_COLUMNS.join(", ")
        )));
    }
    let mut report = ImportReport {
        ignored_columns: headers
            .iter()
            .filter(|h| {
                !IMPORT_REQUIRED_COLUMNS.contains(&h.as_str())
                    && !IMPORT_EVIDENCE_COLUMNS.contains(&h.as_str())
                    && !IMPORT_OPTIONAL_COLUMNS.contains(&h.as_str())
            })
            .cloned()
            .collect(),
        ..Default::default()
    };
    let mut rows = 0usize;
    for (i, record) in reader.records().enumerate() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                let row = e.position().map(|p| p.line() as usize).unwrap_or(i + 2);
                report.refused.push(RefusedRow {
                    row,
                    reason: format!("unreadable row: {e}"),
                });
                continue;
            }
        };
        let row = record
            .position()
            .map(|p| p.line() as usize)
            .unwrap_or(i + 2);
        if record.iter().all(|f| f.trim().is_empty()) {
            continue;
        }
        rows += 1;
        if rows > MAX_IMPORT_ROWS {
            return Err(ImportError::File(format!(
                "the file has more than {MAX_IMPORT_ROWS} rows; nothing after row {row} was read. Split it and import the rest"
            )));
        }
        if record.len() != headers.len() {
            report.refused.push(RefusedRow {
                row,
                reason: format!(
                    "the row has {} fields, the header {}",
                    record.len(),
                    headers.len()
                ),
            });
            continue;
        }
        let get = |col: &str| -> Option<String> {
            headers
                .iter()
                .position(|h| h == col)
                .and_then(|i| record.get(i))
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let parsed = match read_row(core, &get) {
            Ok(r) => r,
            Err(reason) => {
                report.refused.push(RefusedRow { row, reason });
                continue;
            }
        };
        match import_row(core, &parsed, actor).await? {
            RowResult::Imported => report.imported += 1,
            RowResult::Duplicate => report.duplicates.push(row),
            RowResult::Refused(reason) => report.refused.push(RefusedRow { row, reason }),
        }
    }
    audit::record_staff_action(
        &core.db.conn,
        actor,
        "consents.import",
        None,
        Some(serde_json::json!({
            "imported": report.imported,
            "duplicates": report.duplicates.len(),
            "refused": report.refused.len(),
        })),
        None,
        core.now(),
    )
    .await?;
    Ok(report)
}

pub(super) enum RowResult {
    Imported,
    Duplicate,
    Refused(String),
}

pub(super) async fn import_row(
    core: &Core,
    row: &ImportRow,
    actor: &str,
) -> Result<RowResult, sea_orm::DbErr> {
    let now = core.now();
    let txn = core.db.begin_write().await?;
    if let Some(form_id) = &row.evidence.form_id {
        if optin_form::Entity::find_by_id(form_id.as_str())
            .one(&txn)
            .await?
            .is_none()
        {
            txn.rollback().await?;
            return Ok(RowResult::Refused(format!(
                "form_id {form_id} is not a form"
            )));
        }
    }
    let purposes = match crate::consent::purposes::claimed(&txn, &row.purposes).await {
        Ok(p) => p,
        Err(crate::consent::purposes::PurposeError::Db(e)) => return Err(e),
        Err(other) => {
            txn.rollback().await?;
            return Ok(RowResult::Refused(format!("purposes: {other}")));
        }
    };
    let contact =
        contacts::find_or_create_by_phone(&txn, &row.phone, row.name.clone(), now).await?;
    crate::consent::tombstone::carry_over(core, &txn, &contact.id, &contact.phone_e164, now)
        .await?;
    for purpose in &purposes {
        if let Some(o) =
            crate::consent::opted_out(&txn, &contact.id, row.channel, Some(purpose)).await?
        {
            txn.rollback().await?;
            return Ok(RowResult::Refused(format!(
                "{} opted out on {} ({}, {}); an import cannot override an opt-out: only the person, from their own number (START), can",
                row.phone,
                row.channel,
                o.reason,
                o.since.format("%Y-%m-%d")
            )));
        }
    }
    let dup = consent::Entity::find()
        .filter(consent::Column::ContactId.eq(&contact.id))
        .filter(consent::Column::Channel.eq(row.channel.as_str()))
        .filter(consent::Column::CapturedAt.eq(row.evidence.captured_at))
        .filter(consent::Column::ConsentTextVersion.eq(row.evidence.consent_text_version.clone()))
        .filter(consent::Column::RevokedAt.is_null())
        .one(&txn)
        .await?;
    if dup.is_some() {
        txn.rollback().await?;
        return Ok(RowResult::Duplicate);
    }
    if contact.name.is_none() && row.name.is_some() {
        let mut am: contact::ActiveModel = contact.clone().into();
        am.name = Set(row.name.clone());
        am.updated_at = Set(now);
        am.update(&txn).await?;
    }
    let recorded_by = match &row.described {
        Some(d) => format!("{actor} (CSV import; source: {d})"),
        None => format!("{actor} (CSV import)"),
    };
    let mut res = Ok(());
    for purpose in &purposes {
        res = crate::consent::record_opt_in(
            &txn,
            &contact.id,
            row.channel,
            Some(purpose),
            row.source,
            &row.evidence,
            &recorded_by,
            false,
            now,
        )
        .await
        .map(|_| ());
        if res.is_err() {
            break;
        }
    }
    match res {
        Ok(_) => {
            txn.commit().await?;
            Ok(RowResult::Imported)
        }
        Err(ContactError::Db(e)) => Err(e),
        Err(other) => {
            txn.rollback().await?;
            Ok(RowResult::Refused(other.to_string()))
        }
    }
}

//! What the console shows of the forms: the list, each form's counts
//! (submissions, consents by channel, QR scans) and its recent consents.

use super::*;

/// Counts for the console's form list.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct FormStats {
    pub form_id: String,
    /// Per channel offered now or ever consented to.
    pub channels: Vec<ChannelCounts>,
    /// Distinct contacts with a consent through this form.
    pub contacts: u64,
    pub qr_codes: Vec<QrStats>,
    pub last_submission_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ChannelCounts {
    pub channel: String,
    pub active: u64,
    pub pending: u64,
    pub revoked: u64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct QrStats {
    pub code: String,
    pub source_label: String,
    pub scans: i64,
    /// Consents (any status) recorded through this code.
    pub consents: u64,
}

/// A form with its counts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct FormSummary {
    pub form: Form,
    pub stats: FormStats,
}

/// Every form with its counts, newest first.
/// At most this many forms, QR codes per form, in one list.
pub const MAX_LIST: u64 = 200;

/// The newest forms (at most [`MAX_LIST`]), with their counts.
pub async fn list_forms(core: &Core) -> Result<Vec<FormSummary>, sea_orm::DbErr> {
    let mut out = Vec::new();
    for m in optin_form::Entity::find()
        .order_by_desc(optin_form::Column::CreatedAt)
        .limit(MAX_LIST)
        .all(&core.db.conn)
        .await?
    {
        let stats = form_stats(core, &m.id).await?;
        out.push(FormSummary {
            form: to_form(core, &core.db.conn, m).await?,
            stats,
        });
    }
    Ok(out)
}

/// How many consents a form has gathered, per channel and status and per
/// QR code, with each code's scans.
pub async fn form_stats(core: &Core, form_id: &str) -> Result<FormStats, sea_orm::DbErr> {
    let db = &core.db.conn;
    let rows: Vec<(String, String, Option<String>, i64)> = consent::Entity::find()
        .select_only()
        .column(consent::Column::Channel)
        .column(consent::Column::Status)
        .column(consent::Column::QrCode)
        .column_as(
            sea_orm::sea_query::ExprTrait::count(Expr::col(consent::Column::Id)),
            "n",
        )
        .filter(consent::Column::FormId.eq(form_id))
        .group_by(consent::Column::Channel)
        .group_by(consent::Column::Status)
        .group_by(consent::Column::QrCode)
        .into_tuple()
        .all(db)
        .await?;
    let mut channels: BTreeMap<String, ChannelCounts> = BTreeMap::new();
    for t in current_texts(db, form_id).await? {
        channels.insert(
            t.channel.as_str().to_string(),
            ChannelCounts {
                channel: t.channel.as_str().to_string(),
                ..Default::default()
            },
        );
    }
    let mut by_code: BTreeMap<String, u64> = BTreeMap::new();
    for (channel, status, code, n) in rows {
        let n = u64::try_from(n).unwrap_or(0);
        let c = channels.entry(channel.clone()).or_insert(ChannelCounts {
            channel,
            ..Default::default()
        });
        match status.as_str() {
            "active" => c.active += n,
            "pending" => c.pending += n,
            _ => c.revoked += n,
        }
        if let Some(code) = code {
            *by_code.entry(code).or_default() += n;
        }
    }
    let contacts: Vec<String> = consent::Entity::find()
        .select_only()
        .column(consent::Column::ContactId)
        .distinct()
        .filter(consent::Column::FormId.eq(form_id))
        .into_tuple()
        .all(db)
        .await?;
    let last = consent::Entity::find()
        .filter(consent::Column::FormId.eq(form_id))
        .order_by_desc(consent::Column::CreatedAt)
        .one(db)
        .await?
        .map(|c| c.created_at);
    let qr_codes = qr_code::Entity::find()
        .filter(qr_code::Column::FormId.eq(form_id))
        .order_by_asc(qr_code::Column::CreatedAt)
        .all(db)
        .await?
        .into_iter()
        .map(|q| QrStats {
            consents: by_code.get(&q.code).copied().unwrap_or(0),
            code: q.code,
            source_label: q.source_label,
            scans: q.scans,
        })
        .collect();
    Ok(FormStats {
        form_id: form_id.to_string(),
        channels: channels.into_values().collect(),
        contacts: contacts.len() as u64,
        qr_codes,
        last_submission_at: last,
    })
}

/// The newest consents recorded through a form (the console's list of
/// submissions).
pub async fn recent_consents(
    core: &Core,
    form_id: &str,
    limit: u64,
) -> Result<Vec<crate::consent::ConsentRecord>, sea_orm::DbErr> {
    Ok(consent::Entity::find()
        .filter(consent::Column::FormId.eq(form_id))
        .order_by_desc(consent::Column::CreatedAt)
        .limit(limit)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(crate::consent::ConsentRecord::from)
        .collect())
}

//! Alerts for operators: recorded in the `alerts` table (the console shows
//! them) and handed to a sink (Discord) that throttles and never blocks.

use std::sync::Arc;

use chrono::{Duration, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};
use serde::Serialize;

use crate::clock::new_id;
use crate::entities::alert;
use crate::Core;

pub use crate::channels::discord::Alert;

/// Where alerts go besides the database. Must never block or fail.
pub trait AlertSink: Send + Sync + std::fmt::Debug {
    fn alert(&self, alert: Alert);
}

/// A sink that only logs (no Discord configured).
#[derive(Debug, Default)]
pub struct LogSink;

impl AlertSink for LogSink {
    fn alert(&self, alert: Alert) {
        tracing::warn!(key = %alert.key, title = %alert.title, "alert: {}", alert.description);
    }
}

pub type SharedSink = Arc<dyn AlertSink>;

impl AlertSink for crate::channels::discord::Alerter {
    fn alert(&self, alert: Alert) {
        crate::channels::discord::Alerter::alert(self, alert)
    }
}

/// How long alerts with one key fold into one row.
const FOLD: Duration = Duration::minutes(10);

/// Record the alert and pass it to the sink. Database trouble is logged,
/// never returned: an alert must not fail the work that raised it.
pub async fn raise(core: &Core, alert: Alert) {
    metrics::counter!("heimdall_alerts_total", "key" => alert.key.split(':').next().unwrap_or("other").to_string()).increment(1);
    let now = core.clock.now();
    let recent = alert::Entity::find()
        .filter(alert::Column::Key.eq(&alert.key))
        .filter(alert::Column::LastAt.gt(now - FOLD))
        .order_by_desc(alert::Column::LastAt)
        .one(&core.db.conn)
        .await;
    let res = match recent {
        Ok(Some(row)) => alert::Entity::update_many()
            .col_expr(alert::Column::Count, Expr::col(alert::Column::Count).add(1))
            .col_expr(alert::Column::LastAt, Expr::value(now))
            .filter(alert::Column::Id.eq(row.id))
            .exec(&core.db.conn)
            .await
            .map(|_| ()),
        Ok(None) => alert::ActiveModel {
            id: Set(new_id()),
            key: Set(alert.key.clone()),
            title: Set(alert.title.clone()),
            description: Set(alert.description.clone()),
            error_code: Set(alert.error_code.and_then(|c| i32::try_from(c).ok())),
            message_id: Set(alert.message_id.clone()),
            campaign_id: Set(alert.campaign_id.clone()),
            count: Set(1),
            delivery: Set("sent".into()),
            first_at: Set(now),
            last_at: Set(now),
            sent_at: Set(Some(Utc::now())),
        }
        .insert(&core.db.conn)
        .await
        .map(|_| ()),
        Err(e) => Err(e),
    };
    if let Err(e) = res {
        tracing::error!(error = %e, key = %alert.key, "could not record an alert");
    }
    core.alerts.alert(alert);
}

#[derive(Debug, Clone, Serialize)]
pub struct AlertRow {
    pub id: String,
    pub key: String,
    pub title: String,
    pub description: String,
    pub error_code: Option<i32>,
    pub message_id: Option<String>,
    pub campaign_id: Option<String>,
    pub count: i32,
    pub first_at: chrono::DateTime<Utc>,
    pub last_at: chrono::DateTime<Utc>,
}

pub async fn recent(core: &Core, limit: u64) -> Result<Vec<AlertRow>, sea_orm::DbErr> {
    use sea_orm::QuerySelect;
    Ok(alert::Entity::find()
        .order_by_desc(alert::Column::LastAt)
        .limit(limit)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|m| AlertRow {
            id: m.id,
            key: m.key,
            title: m.title,
            description: m.description,
            error_code: m.error_code,
            message_id: m.message_id,
            campaign_id: m.campaign_id,
            count: m.count,
            first_at: m.first_at,
            last_at: m.last_at,
        })
        .collect())
}

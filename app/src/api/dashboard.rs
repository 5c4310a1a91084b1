//! The dashboard: one day's sends by state, delivery and read rates,
//! session-window coverage, gate blocks by reason, tier use against the
//! limit, queue depth, recent failures and alerts.

use chrono::{DateTime, Utc};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
#[cfg(feature = "ssr")]
use crate::model::Role;
use crate::model::{Counts, FailureView};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub title: String,
    pub description: String,
    pub error_code: Option<i32>,
    pub count: i32,
    pub campaign_id: Option<String>,
    pub last_at: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DashboardView {
    pub day: String,
    pub time_zone: String,
    pub total: usize,
    pub sends_by_state: Counts,
    pub delivery_rate: f64,
    pub read_rate: f64,
    pub in_window: usize,
    pub by_template: usize,
    pub free_form_blocked: usize,
    pub blocks_by_reason: Counts,
    pub tier_used: u64,
    pub tier_limit: Option<u64>,
    pub tier_percent: Option<f64>,
    pub queue_depth: Option<u64>,
    pub waiting: usize,
    pub recent_failures: Vec<FailureView>,
    pub recent_alerts: Vec<AlertView>,
}

#[server(prefix = "/_sf", endpoint = "dashboard")]
pub async fn dashboard(day: Option<String>) -> Result<DashboardView, AppError> {
    use crate::api::campaigns::{counts, failure};
    use crate::server::*;
    respond(
        async move {
            let ctx = require(Role::Viewer).await?;
            let core = ctx.core();
            let tz = core.settings.default_time_zone;
            let day = match optional(day) {
                Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                    .map_err(|_| AppError::invalid("day", "Enter a date as YYYY-MM-DD."))?,
                None => core.now().with_timezone(&tz).date_naive(),
            };
            let d = heimdall_domain::reports::dashboard(core, day, tz)
                .await
                .map_err(internal)?;
            Ok(DashboardView {
                day: d.day.format("%Y-%m-%d").to_string(),
                time_zone: d.time_zone,
                total: d.total,
                sends_by_state: counts(d.sends_by_state),
                delivery_rate: d.delivery_rate,
                read_rate: d.read_rate,
                in_window: d.window_coverage.in_window,
                by_template: d.window_coverage.by_template,
                free_form_blocked: d.window_coverage.free_form_outside_window_blocked,
                blocks_by_reason: counts(d.blocks_by_reason),
                tier_used: d.tier.used,
                tier_limit: d.tier.limit,
                tier_percent: d.tier.percent,
                queue_depth: d.queue_depth,
                waiting: d.waiting,
                recent_failures: d.recent_failures.into_iter().map(failure).collect(),
                recent_alerts: d
                    .recent_alerts
                    .into_iter()
                    .map(|a| AlertView {
                        title: a.title,
                        description: a.description,
                        error_code: a.error_code,
                        count: a.count,
                        campaign_id: a.campaign_id,
                        last_at: a.last_at,
                    })
                    .collect(),
            })
        }
        .await,
    )
}

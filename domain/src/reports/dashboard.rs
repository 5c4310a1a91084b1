//! The dashboard: one local day at a glance (sends by state, rates, window
//! coverage, blocks, the tier, the queue, recent failures and alerts).

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, NaiveDate, NaiveTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{
    ColumnTrait, Condition, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QuerySelect,
};
use serde::Serialize;

use crate::alerts::{self, AlertRow};
use crate::campaigns::{self, FailureRow};
use crate::channel::Channel;
use crate::compliance::gates;
use crate::compliance::message_state::MessageState;
use crate::entities::outbound_message;
use crate::Core;

/// One day at a glance.
#[derive(Debug, Clone, Serialize)]
pub struct Dashboard {
    pub day: NaiveDate,
    pub time_zone: String,
    /// Messages created that local day, by state.
    pub sends_by_state: BTreeMap<String, usize>,
    /// Messages created that local day.
    pub total: usize,
    /// Of that day's messages handed to the provider: delivered (or read).
    pub delivery_rate: f64,
    /// Of that day's messages handed to the provider: read.
    pub read_rate: f64,
    pub window_coverage: WindowCoverage,
    /// That day's blocked messages by reason code.
    pub blocks_by_reason: BTreeMap<String, usize>,
    /// Messaging tier use now (moving 24 hours).
    pub tier: TierUsage,
    /// Jobs waiting in the queue, when the queue can tell.
    pub queue_depth: Option<u64>,
    /// Messages waiting to be sent now (queued or deferred), any day.
    pub waiting: usize,
    /// The 10 newest failed or undelivered messages.
    pub recent_failures: Vec<FailureRow>,
    /// The 10 newest alerts.
    pub recent_alerts: Vec<AlertRow>,
}

/// How that day's WhatsApp messages relate to the 24-hour window.
#[derive(Debug, Clone, Default, Serialize)]
pub struct WindowCoverage {
    /// Went (or are going) inside an open window.
    pub in_window: usize,
    /// Went outside a window, as an approved template.
    pub by_template: usize,
    /// Free-form text refused because no window was open.
    pub free_form_outside_window_blocked: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct TierUsage {
    /// Unique people reached outside a window in the moving 24 hours.
    pub used: u64,
    /// `None`: unlimited.
    pub limit: Option<u64>,
    /// `used` as a percentage of `limit`; `None` when unlimited.
    pub percent: Option<f64>,
}

/// The UTC instants a local day starts and ends at.
fn day_bounds(day: NaiveDate, tz: chrono_tz::Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = gates::next_local_time(tz, day, NaiveTime::MIN)
        .unwrap_or_else(|| day.and_time(NaiveTime::MIN).and_utc());
    let next = day.succ_opt().unwrap_or(day);
    let end = gates::next_local_time(tz, next, NaiveTime::MIN).unwrap_or(start + Duration::days(1));
    (start, end)
}

fn to_usize(n: i64) -> usize {
    usize::try_from(n).unwrap_or(0)
}

pub async fn dashboard(core: &Core, day: NaiveDate, tz: chrono_tz::Tz) -> Result<Dashboard, DbErr> {
    let db = &core.db.conn;
    let (start, end) = day_bounds(day, tz);
    let that_day = Condition::all()
        .add(outbound_message::Column::CreatedAt.gte(start))
        .add(outbound_message::Column::CreatedAt.lt(end));
    let counts = campaigns::state_counts(db, that_day.clone()).await?;
    let mut sends_by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut blocks_by_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0;
    for (state, reason, n, _) in &counts {
        let n = to_usize(*n);
        total += n;
        *sends_by_state.entry(state.clone()).or_default() += n;
        if state == MessageState::Blocked.as_str() {
            if let Some(r) = reason {
                *blocks_by_reason.entry(r.clone()).or_default() += n;
            }
        }
    }
    let (delivery_rate, read_rate) = campaigns::rates(&counts);

    let coverage: Vec<(String, Option<bool>, i64)> = outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::Kind)
        .column(outbound_message::Column::InWindow)
        .column_as(Expr::col(outbound_message::Column::Id).count(), "n")
        .filter(that_day)
        .filter(outbound_message::Column::Channel.eq(Channel::WhatsApp.as_str()))
        .filter(outbound_message::Column::State.is_not_in([
            MessageState::Pending.as_str(),
            MessageState::Blocked.as_str(),
            MessageState::Cancelled.as_str(),
        ]))
        .group_by(outbound_message::Column::Kind)
        .group_by(outbound_message::Column::InWindow)
        .into_tuple()
        .all(db)
        .await?;
    let mut window_coverage = WindowCoverage {
        free_form_outside_window_blocked: blocks_by_reason
            .get(gates::Gate::OutsideWindow.code())
            .copied()
            .unwrap_or(0),
        ..Default::default()
    };
    for (kind, in_window, n) in coverage {
        match (in_window, kind.as_str()) {
            (Some(true), _) => window_coverage.in_window += to_usize(n),
            (_, "template") => window_coverage.by_template += to_usize(n),
            _ => {}
        }
    }

    let now = core.now();
    let fact = core.limits.tier_fact("", now).await;
    let tier = TierUsage {
        used: fact.used,
        limit: fact.limit,
        percent: fact
            .limit
            .filter(|l| *l > 0)
            .map(|l| (fact.used as f64 * 100.0 / l as f64 * 10.0).round() / 10.0),
    };
    let waiting = outbound_message::Entity::find()
        .filter(outbound_message::Column::State.is_in([
            MessageState::Queued.as_str(),
            MessageState::Deferred.as_str(),
            MessageState::Held.as_str(),
        ]))
        .count(db)
        .await?;
    Ok(Dashboard {
        day,
        time_zone: tz.name().to_string(),
        sends_by_state,
        total,
        delivery_rate,
        read_rate,
        window_coverage,
        blocks_by_reason,
        tier,
        queue_depth: core.queue.depth().await,
        waiting: usize::try_from(waiting).unwrap_or(usize::MAX),
        recent_failures: campaigns::failures(core, Condition::all(), 10).await?,
        recent_alerts: alerts::recent(core, 10).await?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_days_follow_the_time_zone() {
        let day = NaiveDate::from_ymd_opt(2026, 11, 17).unwrap();
        let (s, e) = day_bounds(day, chrono_tz::Europe::Oslo);
        assert_eq!(s.to_rfc3339(), "2026-11-16T23:00:00+00:00");
        assert_eq!(e - s, Duration::hours(24));
        // A day with a daylight-saving change is 23 hours long.
        let spring = NaiveDate::from_ymd_opt(2026, 3, 29).unwrap();
        let (s, e) = day_bounds(spring, chrono_tz::Europe::Oslo);
        assert_eq!(e - s, Duration::hours(23));
    }
}

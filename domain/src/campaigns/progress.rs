//! A campaign's progress for the console: counts by state, rates and failures.

use super::*;

/// Message counts grouped by state and block reason, with how many of each
/// were handed to the provider (have a provider sid).
pub(crate) async fn state_counts(
    db: &impl ConnectionTrait,
    filter: Condition,
) -> Result<Vec<(String, Option<String>, i64, i64)>, DbErr> {
    outbound_message::Entity::find()
        .select_only()
        .column(outbound_message::Column::State)
        .column(outbound_message::Column::BlockReason)
        .column_as(Expr::col(outbound_message::Column::Id).count(), "n")
        .column_as(
            Expr::col(outbound_message::Column::ProviderSid).count(),
            "handed",
        )
        .filter(filter)
        .group_by(outbound_message::Column::State)
        .group_by(outbound_message::Column::BlockReason)
        .into_tuple::<(String, Option<String>, i64, i64)>()
        .all(db)
        .await
}

/// Rates over messages handed to the provider: (delivered or read, read).
pub(crate) fn rates(counts: &[(String, Option<String>, i64, i64)]) -> (f64, f64) {
    let handed: i64 = counts.iter().map(|c| c.3).sum();
    if handed <= 0 {
        return (0.0, 0.0);
    }
    let of = |states: &[MessageState]| -> i64 {
        counts
            .iter()
            .filter(|c| states.iter().any(|s| s.as_str() == c.0))
            .map(|c| c.3)
            .sum()
    };
    let delivered = of(&[MessageState::Delivered, MessageState::Read]);
    let read = of(&[MessageState::Read]);
    (
        delivered as f64 / handed as f64,
        read as f64 / handed as f64,
    )
}

/// The newest failed or undelivered messages matching `filter`.
pub(crate) async fn failures(
    core: &Core,
    filter: Condition,
    limit: u64,
) -> Result<Vec<FailureRow>, DbErr> {
    Ok(outbound_message::Entity::find()
        .filter(filter)
        .filter(outbound_message::Column::State.is_in([
            MessageState::Failed.as_str(),
            MessageState::Undelivered.as_str(),
        ]))
        .order_by_desc(outbound_message::Column::UpdatedAt)
        .order_by_desc(outbound_message::Column::Id)
        .limit(limit)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|m| FailureRow {
            phone_masked: outbound::mask(&m.to_address),
            error_code: m.error_code,
            meaning: m.error_message.clone().or_else(|| {
                m.error_code.map(|c| {
                    core.live
                        .get()
                        .errors
                        .classify(
                            &crate::compliance::provider_errors::ProviderFailure::Code {
                                code: i64::from(c),
                                http_status: None,
                            },
                            m.channel.parse().unwrap_or(Channel::WhatsApp),
                        )
                        .meaning
                })
            }),
            at: m.failed_at.unwrap_or(m.updated_at),
            message_id: m.id,
        })
        .collect())
}

/// Where a campaign's messages stand.
pub async fn progress(core: &Core, id: &str) -> Result<Progress, CampaignError> {
    let m = load(core, id).await?;
    let filter = Condition::all().add(outbound_message::Column::CampaignId.eq(&m.id));
    let counts = state_counts(&core.db.conn, filter.clone()).await?;
    let mut by_state: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_block_reason: BTreeMap<String, usize> = BTreeMap::new();
    let mut total = 0usize;
    for (state, reason, n, _) in &counts {
        let n = usize::try_from(*n).unwrap_or(0);
        total += n;
        *by_state.entry(state.clone()).or_default() += n;
        if state == MessageState::Blocked.as_str() {
            if let Some(r) = reason {
                *by_block_reason.entry(r.clone()).or_default() += n;
            }
        }
    }
    let (delivered_rate, read_rate) = rates(&counts);
    Ok(Progress {
        status: m.status,
        total,
        recipients: m.recipients.and_then(|r| usize::try_from(r).ok()),
        by_state,
        by_block_reason,
        delivered_rate,
        read_rate,
        failures: failures(core, filter, 50).await?,
    })
}

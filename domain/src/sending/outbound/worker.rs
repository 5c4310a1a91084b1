//! The worker's side: claim the message, evaluate the gates again, wait for the
//! sender's rate and the tier, look at consent once more, call the provider,
//! record its answer.

use super::*;

/// What the worker did with one job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendResult {
    /// Someone else has it or it is no longer waiting.
    NotClaimed,
    /// Not due yet; re-enqueued.
    NotDue,
    Blocked(gates::Gate),
    Deferred(gates::Gate),
    Sent {
        sid: String,
    },
    Failed {
        action: ErrorAction,
        code: Option<i64>,
    },
}

/// Send one message: the whole worker path.
pub async fn process_send(core: &Core, message_id: &str) -> Result<SendResult, sea_orm::DbErr> {
    let now = core.now();
    // Webhook events wait in the local spool (the database was away): one
    // of them may be a STOP, so hold sends until they are replayed.
    if crate::store::spool::spool_pending(core) {
        enqueue(core, message_id, Some(now + Duration::seconds(5))).await;
        return Ok(SendResult::NotDue);
    }
    // Exactly one worker takes a waiting, due message: a compare-and-set
    // on its state. PostgreSQL: read the message and its facts (one
    // statement shared with other workers' reads), and claim with the
    // evaluation's write. SQLite: claim, then read.
    let due_by = now + Duration::milliseconds(CLAIM_SLACK_MS);
    let (m, mut rows, claim_due_by) = match core.db.postgres_pool() {
        Some(pool) => match core.message_reads.read(core, pool, message_id).await? {
            Some((m, rows)) if claimable(&m, due_by) => (m, rows, Some(due_by)),
            Some((m, _)) => return Ok(not_claimed(core, &m, now).await),
            None => return Ok(SendResult::NotClaimed),
        },
        None => match claim_on_sqlite(core, message_id, now, due_by).await? {
            Some(m) => {
                let rows = match read_fact_rows_for(core, &m).await {
                    Ok(rows) => rows,
                    Err(e) => return give_back_after_error(core, &m, true, e).await,
                };
                (m, rows, None)
            }
            None => {
                return Ok(
                    match outbound_message::Entity::find_by_id(message_id)
                        .one(&core.db.conn)
                        .await?
                    {
                        Some(m) => not_claimed(core, &m, now).await,
                        None => SendResult::NotClaimed,
                    },
                )
            }
        },
    };
    let actor = "worker";
    let template = rows.template.take().map(Template::from);
    // SQLite claimed it already (see `give_back_after_error`).
    let claimed_first = claim_due_by.is_none();
    let (facts, mut loaded, extras) =
        match facts_from_rows(core, &core.db.conn, &m, rows, template, None).await {
            Ok(f) => f,
            Err(e) => return give_back_after_error(core, &m, claimed_first, e).await,
        };
    let mut decision = gates::evaluate(&facts, &loaded, now, &policy(core));
    if decision.decision == Decision::Pass {
        // Reserve the limits only for a message that may otherwise go, and
        // evaluate again if a reservation was refused, so the audit row
        // holds the final verdicts.
        if let Some(recipient) = &facts.recipient {
            if facts.channel == Channel::WhatsApp {
                match core.limits.reserve_pace(recipient.as_str(), now).await {
                    Ok(Ok(())) => {}
                    Ok(Err(next)) => loaded.recipient_next_at = Some(next),
                    Err(LimitsUnavailable) => {
                        return hand_back(core, &m, claimed_first, HandBack::LimitsUnavailable)
                            .await;
                    }
                }
            }
            if loaded.recipient_next_at.is_none() && loaded.tier.limit.is_some() {
                let business_initiated = facts.channel == Channel::WhatsApp
                    && matches!(facts.content, MessageContent::Template { .. })
                    && !gates::in_window(loaded.window_expires_at, now);
                if business_initiated {
                    let reserved = match core
                        .limits
                        .reserve_tier(&core.db, recipient.as_str(), &m.id, now)
                        .await
                    {
                        Ok(r) => r,
                        Err(e) => return give_back_after_error(core, &m, claimed_first, e).await,
                    };
                    match reserved {
                        TierReservation::Full(f) => loaded.tier = f,
                        TierReservation::Unavailable => {
                            return hand_back(core, &m, claimed_first, HandBack::LimitsUnavailable)
                                .await;
                        }
                        TierReservation::Counted { used, newly } => {
                            if newly {
                                tier_threshold_alert(core, used).await;
                            }
                        }
                    }
                }
            }
        }
        decision = gates::evaluate(&facts, &loaded, now, &policy(core));
    }
    // A message that may go takes the sender's slot now, and is claimed only shortly
    // before it (on PostgreSQL; on SQLite the claim came first): a worker that dies while
    // it waits leaves the message waiting, not claimed for a person to sort out.
    let slot = match decision.decision {
        Decision::Pass => {
            let evaluated = tokio::time::Instant::now();
            let (from, rate) = sender_of(&loaded, &extras);
            match core.limits.reserve_slot(&from, rate).await {
                Ok(at) => {
                    let claim_at = at.checked_sub(CLAIM_LEAD).unwrap_or(at);
                    if !core.stopping.sleep_until(claim_at).await {
                        return hand_back(core, &m, claimed_first, HandBack::Stopping).await;
                    }
                    Some(Slot { at, evaluated })
                }
                Err(LimitsUnavailable) => {
                    return hand_back(core, &m, claimed_first, HandBack::LimitsUnavailable).await;
                }
            }
        }
        _ => None,
    };
    let written = finish_evaluation(
        core,
        &m,
        Stage::Worker,
        &decision,
        actor,
        now,
        loaded.window_expires_at,
        claim_due_by,
    )
    .await;
    let written = match written {
        Err(e) if claim_due_by.is_some() && matches!(decision.decision, Decision::Pass) => {
            return claim_cut_off(core, &m, now, e).await;
        }
        Err(e) => return give_back_after_error(core, &m, claimed_first, e).await,
        Ok(written) => written,
    };
    let Some(state) = written else {
        // Another worker claimed it between the read and the write.
        return Ok(SendResult::NotClaimed);
    };
    metrics::counter!("heimdall_gate_decisions_total", "stage" => "worker", "decision" => decision.decision.as_str(), "reason" => decision.decision.reason().map(|g| g.code()).unwrap_or("none")).increment(1);
    match decision.decision {
        Decision::Block { reason } => return blocked(core, &m, reason, now).await,
        Decision::Defer { reason, .. } => return Ok(SendResult::Deferred(reason)),
        Decision::Pass => {}
    }
    debug_assert_eq!(state, MessageState::Sending);
    let Some(slot) = slot else {
        return Ok(SendResult::NotClaimed);
    };
    call_provider(core, &m, &facts, &loaded, extras, slot).await
}

/// The sender's slot a message goes out at ([`Limits::reserve_slot`]), and when the
/// worker's gates judged it.
///
/// [`Limits::reserve_slot`]: crate::sending::limits::Limits::reserve_slot
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    at: tokio::time::Instant,
    evaluated: tokio::time::Instant,
}

/// How long before its slot a message is claimed (the claim's write fits in it).
pub(super) const CLAIM_LEAD: std::time::Duration = std::time::Duration::from_millis(250);
/// How long before its slot the worker looks at the person's consent again, after a
/// wait (the look fits in it).
pub(super) const RECHECK_LEAD: std::time::Duration = std::time::Duration::from_millis(25);
/// How late a call may still use its slot; later, a new slot is taken. Slots are spaced
/// 1 % wider than 1/rate, so a one-second window of calls made up to this late holds calls
/// of slots from a window of 1 s + this: at most `(1 s + 9 ms) / (1.01 s / rate) < rate`
/// of them, at any rate. (A slot missed by more is lost: fewer messages, never more.)
pub(super) const SLOT_TOLERANCE: std::time::Duration = std::time::Duration::from_millis(9);
/// New slots taken at most for one message before it goes at the next one without
/// another look (each look came just before its slot).
const MAX_NEW_SLOTS: u32 = 5;

/// The sender's address and rate (messages per second) for the worker's message.
fn sender_of(loaded: &LoadedFacts, extras: &Loaded) -> (String, Option<u32>) {
    (
        loaded.sender.address.clone().unwrap_or_default(),
        extras.sender_rate.and_then(|r| u32::try_from(r).ok()),
    )
}

/// How late a deferred message may be claimed early.
pub(super) const CLAIM_SLACK_MS: i64 = 500;

/// May a worker claim `m` now: waiting, not yet handed to a provider, and
/// due by `due_by`? (The claim's compare-and-set asks the same.)
pub(super) fn claimable(m: &outbound_message::Model, due_by: DateTime<Utc>) -> bool {
    m.state.is_waiting()
        && m.provider_sid.is_none()
        && m.defer_until.is_none_or(|until| until <= due_by)
}

/// A message the worker did not claim: re-enqueued for its time if it is
/// still waiting but not yet due; otherwise gone, taken or finished.
pub(super) async fn not_claimed(
    core: &Core,
    m: &outbound_message::Model,
    now: DateTime<Utc>,
) -> SendResult {
    match m.defer_until {
        Some(until) if until > now && claimable(m, until) => {
            enqueue(core, &m.id, Some(until)).await;
            SendResult::NotDue
        }
        _ => SendResult::NotClaimed,
    }
}

/// SQLite: claim a message (move it from waiting and due to `sending`, a
/// compare-and-set only one worker can win). `None` when nothing was
/// claimed.
pub(super) async fn claim_on_sqlite(
    core: &Core,
    message_id: &str,
    now: DateTime<Utc>,
    due_by: DateTime<Utc>,
) -> Result<Option<outbound_message::Model>, sea_orm::DbErr> {
    let claim = moving(
        &[MessageState::Queued, MessageState::Deferred],
        MessageState::Sending,
    )
    .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
    .filter(outbound_message::Column::Id.eq(message_id))
    .filter(outbound_message::Column::ProviderSid.is_null())
    .filter(
        sea_orm::Condition::any()
            .add(outbound_message::Column::DeferUntil.is_null())
            .add(outbound_message::Column::DeferUntil.lte(due_by)),
    );
    Ok(claim
        .exec_with_returning(&core.db.conn)
        .await?
        .into_iter()
        .next())
}

/// Each channel's sender (kind, address): the same for every merged
/// read of one [`Core`] (they come from its settings).
pub(super) type Senders = Vec<(Channel, Option<(&'static str, String)>)>;

pub(super) fn senders(core: &Core) -> Senders {
    [Channel::WhatsApp, Channel::Sms]
        .map(|c| (c, authz::sender_key(core, c)))
        .to_vec()
}

/// At most this many reads share one statement.
pub(super) const MAX_BATCH: usize = 64;
/// Statements of one kind (workers' reads, acceptance reads) in flight
/// at once (one, for the reason and the figures at
/// `db::PG_GROUPS_IN_FLIGHT`).
pub(super) const BATCHES_IN_FLIGHT: usize = 1;

/// PostgreSQL: the workers' reads of their messages, merged like
/// [`FactReads`]: a read made while [`BATCHES_IN_FLIGHT`] statements are
/// running waits for the next one, which reads every waiting id's message
/// and facts at once ([`facts::messages_with_fact_rows`]). `None` for a
/// message that does not exist.
#[derive(Debug, Default)]
pub struct MessageReads(
    crate::store::db::Batcher<String, Option<(outbound_message::Model, FactRows)>>,
);

impl MessageReads {
    pub(super) async fn read(
        &self,
        core: &Core,
        pool: &sqlx::PgPool,
        id: &str,
    ) -> Result<Option<(outbound_message::Model, FactRows)>, sea_orm::DbErr> {
        let key = crate::consent::tombstone::ErasureKey::of(core);
        batched(&self.0, core, pool, id.to_string(), move |p, s, ids| {
            super::evaluate::messages_marked(p, s, ids, key.clone())
        })
        .await
    }
}

/// Send `request` to `batcher`, whose batches run `run` with the pool and
/// the core's senders (computed once, when the batcher starts).
pub(super) async fn batched<Q, A, F, Fut>(
    batcher: &crate::store::db::Batcher<Q, A>,
    core: &Core,
    pool: &sqlx::PgPool,
    request: Q,
    run: F,
) -> Result<A, sea_orm::DbErr>
where
    Q: Send + 'static,
    A: Send + 'static,
    F: Fn(sqlx::PgPool, std::sync::Arc<Senders>, Vec<Q>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Vec<A>, sea_orm::DbErr>> + Send + 'static,
{
    let start = || {
        let (pool, senders) = (pool.clone(), std::sync::Arc::new(senders(core)));
        move |batch| run(pool.clone(), senders.clone(), batch)
    };
    batcher
        .call(request, BATCHES_IN_FLIGHT, MAX_BATCH, start)
        .await
}

/// PostgreSQL: the acceptance reads of concurrent callers, merged into
/// one statement per batch ([`facts::fact_rows_many`]), like
/// [`MessageReads`]. Each caller gets exactly what [`facts::fact_rows`]
/// would have read for it.
#[derive(Debug, Default)]
pub struct FactReads(crate::store::db::Batcher<facts::FactRead, FactRows>);

impl FactReads {
    pub(super) async fn read(
        &self,
        core: &Core,
        pool: &sqlx::PgPool,
        read: facts::FactRead,
    ) -> Result<FactRows, sea_orm::DbErr> {
        let key = crate::consent::tombstone::ErasureKey::of(core);
        batched(&self.0, core, pool, read, move |p, s, batch| {
            super::evaluate::fact_rows_marked(p, s, batch, key.clone())
        })
        .await
    }
}

pub(super) async fn tier_threshold_alert(core: &Core, used: u64) {
    if let Some(limit) = core.limits.tier_limit() {
        if limit > 0 && used * 5 >= limit * 4 && (used - 1) * 5 < limit * 4 {
            alerts::raise(
                core,
                Alert {
                    key: "tier:80".into(),
                    title: "Messaging tier at 80 %".into(),
                    description: format!(
                        "{used} of {limit} unique people reached in the moving 24 hours; further business-initiated WhatsApp messages will be deferred at the limit."
                    ),
                    error_code: None,
                    meaning: None,
                    message_id: None,
                    campaign_id: None,
                },
            )
            .await;
        }
    }
}

pub(super) fn status_callback(core: &Core, message_id: &str) -> Option<url::Url> {
    let mut url = core.settings.public_base();
    url.set_path(STATUS_PATH);
    url.query_pairs_mut().append_pair("mid", message_id);
    Some(url)
}

/// A message that cannot be handed to a provider at all (its content no
/// longer builds, no provider for its channel): a permanent failure with an
/// alert, recorded as a send attempt by Heimdall itself.
pub(super) async fn fail_before_call(
    core: &Core,
    m: &outbound_message::Model,
    why: String,
    now: DateTime<Utc>,
) -> Result<SendResult, sea_orm::DbErr> {
    audit::send_attempt_row(m, false, "heimdall", &why, None, "worker", now)
        .insert(&core.db.conn)
        .await?;
    let class = ErrorClass {
        code: None,
        http_status: None,
        meaning: why,
        action: ErrorAction::Permanent,
        alert: true,
    };
    handle_failure(core, m, class, false).await
}

pub(super) async fn call_provider(
    core: &Core,
    m: &outbound_message::Model,
    facts: &MessageFacts,
    loaded: &LoadedFacts,
    extras: Loaded,
    mut slot: Slot,
) -> Result<SendResult, sea_orm::DbErr> {
    let now = core.now();
    let channel = facts.channel;
    let Some(recipient) = facts.recipient.clone() else {
        return Ok(SendResult::Blocked(gates::Gate::InvalidNumber));
    };
    let (from, rate) = sender_of(loaded, &extras);
    let content = match build_content(m, extras.template.as_ref()) {
        Ok(c) => c,
        Err(why) => {
            // The template changed under the message (variables no longer
            // match): a permanent failure for this message, recorded.
            return fail_before_call(core, m, why, now).await;
        }
    };
    let Some(provider) = core.providers.for_channel(channel).cloned() else {
        let why = format!("no provider is configured for {channel}");
        return fail_before_call(core, m, why, now).await;
    };
    let request = OutboundRequest {
        message_id: m.id.clone(),
        channel,
        to: recipient,
        from,
        content,
        status_callback: status_callback(core, &m.id),
        reply_to: m.reply_to.clone(),
    };
    // (The attempt was counted when the worker's evaluation passed.)
    // The call goes out at the slot: nothing between the slot and the request
    // can bunch requests together. A message that waited for its slot is
    // looked at again just before it: a STOP (or a revoked consent) that came
    // meanwhile must still stop it. (Without a wait, the last check is the
    // worker's evaluation a few writes ago.)
    let mut new_slots = 0;
    loop {
        let waited = slot.at.saturating_duration_since(slot.evaluated) > RECHECK_AFTER_WAIT;
        if waited && facts.purpose != Purpose::ComplianceReply {
            let look_at = slot.at.checked_sub(RECHECK_LEAD).unwrap_or(slot.at);
            if !core.stopping.sleep_until(look_at).await {
                return hand_back(core, m, true, HandBack::Stopping).await;
            }
            match stopped_while_waiting(core, m).await {
                Ok(Some(stopped)) => return Ok(stopped),
                Ok(None) => {}
                // Not looked at, so not sent: back to wait, no provider called.
                Err(e) => return give_back_after_error(core, m, true, e).await,
            }
        }
        let in_time = || tokio::time::Instant::now() <= slot.at + SLOT_TOLERANCE;
        if in_time() || new_slots == MAX_NEW_SLOTS {
            if !core.stopping.sleep_until(slot.at).await {
                return hand_back(core, m, true, HandBack::Stopping).await;
            }
            // (A busy machine may wake the task late.)
            if in_time() || new_slots == MAX_NEW_SLOTS {
                break;
            }
        }
        // The slot went by while the claim or the look took their time (or the task woke
        // late): a late call could bunch with the next slot's, so the message takes a new one.
        new_slots += 1;
        metrics::counter!("heimdall_rate_slots_missed_total").increment(1);
        match core.limits.reserve_slot(&request.from, rate).await {
            Ok(at) => slot.at = at,
            Err(LimitsUnavailable) => {
                return hand_back(core, m, true, HandBack::LimitsUnavailable).await
            }
        }
    }
    let started = std::time::Instant::now();
    // The attempt's audit row is dated when the request went out (its slot), not when
    // the answer came: the record of what the sender's rate allowed.
    let called_at = core.now();
    let result = provider.send(&request).await;
    metrics::histogram!("heimdall_provider_call_seconds", "channel" => channel.as_str())
        .record(started.elapsed().as_secs_f64());
    let now = core.now();
    match result {
        Ok(accepted) => {
            let status = ProviderStatus::parse(&accepted.status).unwrap_or(ProviderStatus::Queued);
            let state = MessageState::Sending
                .apply_provider_status(status)
                .unwrap_or(MessageState::Sending);
            // The audit row and the sid written together. The
            // state moves only if no callback moved it further already; the
            // sid is recorded either way.
            let attempt = audit::send_attempt_row(
                m,
                true,
                accepted.provider,
                &accepted.sid,
                None,
                "worker",
                called_at,
            )
            .try_into_model()?;
            core.db
                .write_rows(RowWrite {
                    tool_calls: vec![attempt],
                    sends: vec![SentUpdate {
                        id: m.id.clone(),
                        provider_sid: accepted.sid.clone(),
                        provider: accepted.provider.to_string(),
                        price: accepted.price.clone(),
                        price_unit: accepted.price_unit.clone(),
                        state: state.as_str().into(),
                        updated_at: now,
                    }],
                    ..Default::default()
                })
                .await?;
            metrics::counter!("heimdall_sends_total", "channel" => channel.as_str(), "result" => "accepted").increment(1);
            if let Some(next) = release_next_part(&core.db.conn, m, now).await? {
                enqueue(core, &next, None).await;
            }
            Ok(SendResult::Sent { sid: accepted.sid })
        }
        Err(rejected) => {
            let code = match &rejected.failure {
                ProviderFailure::Code { code, .. } => Some(*code),
                _ => None,
            };
            audit::send_attempt_row(
                m,
                false,
                provider_name(core, channel),
                &rejected.message,
                code,
                "worker",
                called_at,
            )
            .insert(&core.db.conn)
            .await?;
            let mut class = core.live.get().errors.classify(&rejected.failure, channel);
            if !rejected.message.is_empty() {
                class.meaning = format!("{} ({})", class.meaning, rejected.message);
            }
            metrics::counter!("heimdall_sends_total", "channel" => channel.as_str(), "result" => "rejected").increment(1);
            handle_failure(core, m, class, false).await
        }
    }
}

/// Why a worker gives a message back to wait instead of sending it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum HandBack {
    /// The limits are shared (Redis) and did not answer (or cannot be trusted yet): the
    /// message does not go on this process's count alone.
    LimitsUnavailable,
    /// The process is stopping (SIGTERM): another process takes it at once.
    Stopping,
    /// The database failed after the claim and before the provider was called (the
    /// claim's commit was cut off and had landed, the last look at consent failed, or,
    /// on SQLite where the claim comes first, a read or write before the call failed):
    /// the message goes back to wait, for any worker at once.
    DatabaseError,
}

/// Give a message back to wait ([`HandBack`] says why). A message this worker claimed
/// (`claimed`) goes from `sending` back to `deferred` (only while no provider has it);
/// either way it is enqueued again: for [`LIMITS_RETRY`] later, or at once for another
/// process when this one stops. If the queue (Redis too) is away, the watch on Redis
/// (`housekeeping::watch_redis`) enqueues every waiting message again once it answers.
pub(super) async fn hand_back(
    core: &Core,
    m: &outbound_message::Model,
    claimed: bool,
    why: HandBack,
) -> Result<SendResult, sea_orm::DbErr> {
    let now = core.now();
    let until = match why {
        HandBack::LimitsUnavailable => now + LIMITS_RETRY,
        HandBack::Stopping | HandBack::DatabaseError => now,
    };
    if claimed {
        moving(&[MessageState::Sending], MessageState::Deferred)
            .col_expr(
                outbound_message::Column::DeferUntil,
                Expr::value(Some(until)),
            )
            .col_expr(outbound_message::Column::UpdatedAt, Expr::value(now))
            .filter(outbound_message::Column::Id.eq(&m.id))
            .filter(outbound_message::Column::ProviderSid.is_null())
            .exec(&core.db.conn)
            .await?;
    }
    let reason = match why {
        HandBack::LimitsUnavailable => {
            tracing::warn!(message_id = %m.id, "held: the shared rate limits (Redis) are not answering");
            "limits_unavailable"
        }
        HandBack::Stopping => {
            tracing::info!(message_id = %m.id, "given back: the process is stopping");
            "stopping"
        }
        HandBack::DatabaseError => {
            tracing::warn!(message_id = %m.id, "given back: the database failed between the claim and the call");
            "database_error"
        }
    };
    metrics::counter!("heimdall_sends_held_total", "reason" => reason).increment(1);
    enqueue(core, &m.id, Some(until)).await;
    Ok(SendResult::NotDue)
}

/// The write that claims a message failed (its connection was cut, say): it may have
/// been committed or not, and no provider has been called. Read the message again
/// (while the database comes back, up to [`CLAIM_CUT_OFF_WAIT`]): if this claim landed
/// (`sending`, no provider id, dated this worker's `now`), give the message back to wait
/// at once, instead of leaving it claimed by no one until it is failed for a person
/// after 15 minutes. If it did not land, or the database stays away, the error stands
/// (the job is tried again; a landed claim left then still goes to a person).
async fn claim_cut_off(
    core: &Core,
    m: &outbound_message::Model,
    now: DateTime<Utc>,
    error: sea_orm::DbErr,
) -> Result<SendResult, sea_orm::DbErr> {
    let deadline = tokio::time::Instant::now() + CLAIM_CUT_OFF_WAIT;
    loop {
        match outbound_message::Entity::find_by_id(m.id.as_str())
            .one(&core.db.conn)
            .await
        {
            Ok(Some(current)) => {
                let ours = current.state == MessageState::Sending
                    && current.provider_sid.is_none()
                    // The database keeps microseconds.
                    && (current.updated_at - now).abs() < Duration::microseconds(1);
                if ours {
                    return give_back_after_error(core, &current, true, error).await;
                }
                return Err(error);
            }
            Ok(None) => return Err(error),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(_) => return Err(error),
        }
    }
}

/// A message this worker `claimed`, and for which it called no provider, goes back to
/// wait after a database error ([`HandBack::DatabaseError`]), never left `sending` for
/// the stuck-message sweep; the hand-back is tried again while the database comes back
/// (up to [`CLAIM_CUT_OFF_WAIT`]). If it never lands the error stands, and the message
/// is failed for a person after 15 minutes (`housekeeping`), as for a worker that died.
/// One not claimed yet (PostgreSQL claims with the evaluation's write) still waits:
/// the error is the job's to retry.
async fn give_back_after_error(
    core: &Core,
    m: &outbound_message::Model,
    claimed: bool,
    error: sea_orm::DbErr,
) -> Result<SendResult, sea_orm::DbErr> {
    if !claimed {
        return Err(error);
    }
    let deadline = tokio::time::Instant::now() + CLAIM_CUT_OFF_WAIT;
    loop {
        match hand_back(core, m, true, HandBack::DatabaseError).await {
            Ok(result) => return Ok(result),
            Err(_) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
            }
            Err(_) => return Err(error),
        }
    }
}

/// How long a worker keeps trying to learn whether its cut-off claim landed, and to
/// give back a message after a database error.
const CLAIM_CUT_OFF_WAIT: std::time::Duration = std::time::Duration::from_secs(15);

/// How long a message held for unanswering shared limits waits before a worker tries again.
pub(super) const LIMITS_RETRY: Duration = Duration::seconds(5);

/// A wait at the sender's rate limiter longer than this is followed by a fresh look at
/// the person's consent and opt-outs before the provider call.
pub(super) const RECHECK_AFTER_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

/// After a wait at the limiter: if the person opted out (or their consent was revoked)
/// since the worker's evaluation, the message is blocked as the gates block it, with the
/// fresh evaluation as its audit row, and never reaches the provider.
pub(super) async fn stopped_while_waiting(
    core: &Core,
    m: &outbound_message::Model,
) -> Result<Option<SendResult>, sea_orm::DbErr> {
    let Some(contact_id) = m.contact_id.as_deref() else {
        return Ok(None);
    };
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    if crate::consent::opted_out(&core.db.conn, contact_id, channel, None)
        .await?
        .is_none()
    {
        return Ok(None);
    }
    let now = core.now();
    let mut rows = read_fact_rows_for(core, m).await?;
    let template = rows.template.take().map(Template::from);
    let (facts, loaded, _) = facts_from_rows(core, &core.db.conn, m, rows, template, None).await?;
    let decision = gates::evaluate(&facts, &loaded, now, &policy(core));
    let Decision::Block { reason } = decision.decision else {
        return Ok(None);
    };
    finish_evaluation(
        core,
        m,
        Stage::Worker,
        &decision,
        "worker",
        now,
        loaded.window_expires_at,
        None,
    )
    .await?;
    tracing::info!(message_id = %m.id, reason = reason.code(), "stopped after waiting for the sender's rate");
    blocked(core, m, reason, now).await.map(Some)
}

/// A message the worker's gates blocked: the parts after it stop too.
pub(super) async fn blocked(
    core: &Core,
    m: &outbound_message::Model,
    reason: gates::Gate,
    now: DateTime<Utc>,
) -> Result<SendResult, sea_orm::DbErr> {
    stop_later_parts(
        &core.db.conn,
        m,
        &format!("blocked ({})", reason.code()),
        now,
    )
    .await?;
    Ok(SendResult::Blocked(reason))
}

pub(super) fn provider_name(core: &Core, channel: Channel) -> &'static str {
    match (channel, core.settings.whatsapp_provider) {
        (Channel::WhatsApp, crate::settings::WhatsAppProvider::Meta) => "meta",
        _ => "twilio",
    }
}

/// The provider content for a stored message (`template`: the message's
/// template as loaded for the gates).
pub(super) fn build_content(
    m: &outbound_message::Model,
    template: Option<&Template>,
) -> Result<Content, String> {
    if m.kind == "interactive" {
        return Interactive::from_stored(m.interactive.as_deref())
            .map(Content::Interactive)
            .map_err(|e| e.to_string());
    }
    if m.kind != "template" {
        return Ok(Content::Text {
            body: m.body.clone().unwrap_or_default(),
            media_url: m.media_url.clone(),
        });
    }
    let Some(name) = &m.template_name else {
        return Err("template message without a template name".into());
    };
    let Some(t) = template else {
        return Err(format!("template '{name}' is no longer registered"));
    };
    let values: BTreeMap<String, String> = serde_json::from_str(&m.variables).unwrap_or_default();
    let positional =
        crate::channels::positional_variables(&t.variables, &values).map_err(|e| e.to_string())?;
    let Some(provider_id) = t.provider_id.clone() else {
        return Err(format!("template '{name}' has no provider id"));
    };
    Ok(Content::Template {
        name: t.name.clone(),
        provider_id,
        language: t.language.clone(),
        positional,
    })
}

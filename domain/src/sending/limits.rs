//! Rate limits and the messaging tier.
//!
//! - The sender's rate (80 msg/s per number by default): a GCRA with no
//!   burst that hands out slots, evenly spaced, so no one-second window ever
//!   holds more than the rate. A worker reserves its slot before it claims
//!   the message and calls the provider at the slot (see
//!   [`Limits::reserve_slot`]). In process, or shared across processes
//!   through Redis when configured (the same algorithm in a Lua script).
//! - The per-recipient pace on WhatsApp (about one message per 6 s to one
//!   person): a reservation, `SET NX PX` in Redis or a map in process.
//! - The messaging tier: unique people reached with business-initiated
//!   messages in a moving 24 hours, against the current step of the ladder.
//!   The `tier_usage` table is the record; Redis (a sorted set) or an
//!   in-process index answers the count quickly.
//!
//! With Redis configured (several processes share the limits), a Redis that
//! does not answer is never replaced by a count of this process alone: each
//! process would then send at the full rate and count the tier on its own.
//! The reservations say [`LimitsUnavailable`] instead, and the worker holds
//! the message until Redis answers again (fail closed).
//!
//! Nothing here sends or refuses a message: the gates decide, with the
//! facts this module provides.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};
use std::time::Duration as StdDuration;

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, Set};

use crate::clock::new_id;
use crate::compliance::gates::TierFact;
use crate::entities::tier_usage;
use crate::store::db::Db;

/// How long a counted person stays in the tier.
pub const TIER_WINDOW: Duration = Duration::hours(24);

const GCRA_SCRIPT: &str = r#"
-- KEYS[1] = key; KEYS[2] = the mark (gone: Redis lost what it held);
-- KEYS[3] = the hold after such a loss;
-- ARGV[1] = now (us); ARGV[2] = interval (us); ARGV[3] = furthest slot (us ahead)
-- Returns {1, us}: the sender's next slot, reserved, us from now;
-- {0, us}: no slot that close, ask again in us; {-1, 0}: the shared count
-- cannot be trusted (yet).
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 0} end
local now = tonumber(ARGV[1])
local interval = tonumber(ARGV[2])
local furthest = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local hold = redis.call('PTTL', KEYS[3])
if hold > 0 and tat < now + hold * 1000 then tat = now + hold * 1000 end
if tat - now > furthest then return {0, tat - now - furthest} end
redis.call('SET', KEYS[1], tat + interval, 'PX', math.floor((tat + interval - now) / 1000) + 1000)
return {1, tat - now}
"#;

/// The scripts, each hashed once (invoking sends EVALSHA, loading the
/// script only when Redis does not have it yet).
static GCRA: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(GCRA_SCRIPT));
static PACE: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(PACE_SCRIPT));
static TIER: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(TIER_SCRIPT));

const PACE_SCRIPT: &str = r#"
-- KEYS[1] = key; KEYS[2] = the mark; ARGV[1] = now (ms, Heimdall's clock); ARGV[2] = pace (ms)
-- Returns 0 when a message may go now (and reserves the slot), -1 when the
-- shared reservations cannot be trusted (yet), else the time (ms) the next one may.
if redis.call('EXISTS', KEYS[2]) == 0 then return -1 end
local now = tonumber(ARGV[1])
local nxt = tonumber(redis.call('GET', KEYS[1]) or '0')
if nxt > now then return nxt end
redis.call('SET', KEYS[1], now + tonumber(ARGV[2]), 'PX', tonumber(ARGV[2]) + 60000)
return 0
"#;

const TIER_SCRIPT: &str = r#"
-- KEYS[1] = zset; KEYS[2] = the mark; ARGV[1] = now (ms); ARGV[2] = window (ms);
-- ARGV[3] = recipient; ARGV[4] = limit (-1 = none)
-- Returns {allowed (1/0, -1: the count cannot be trusted yet), used, oldest score or -1, newly counted (1/0)}
if redis.call('EXISTS', KEYS[2]) == 0 then return {-1, 0, -1, 0} end
local now = tonumber(ARGV[1])
local from = now - tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', from)
local score = redis.call('ZSCORE', KEYS[1], ARGV[3])
local used = redis.call('ZCARD', KEYS[1])
if score then
  return {1, used, -1, 0}
end
local limit = tonumber(ARGV[4])
if limit >= 0 and used >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return {0, used, tonumber(oldest[2] or '-1'), 0}
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
return {1, used + 1, -1, 1}
"#;

/// In-process tier index: recipient -> time counted.
#[derive(Debug, Default)]
struct LocalTier {
    by_recipient: HashMap<String, DateTime<Utc>>,
    by_time: BTreeMap<(DateTime<Utc>, String), ()>,
}

impl LocalTier {
    fn expire(&mut self, now: DateTime<Utc>) {
        let from = now - TIER_WINDOW;
        while let Some(((t, r), _)) = self.by_time.first_key_value() {
            if *t > from {
                break;
            }
            let key = (*t, r.clone());
            self.by_time.remove(&key);
            if self.by_recipient.get(&key.1) == Some(&key.0) {
                self.by_recipient.remove(&key.1);
            }
        }
    }

    fn insert(&mut self, recipient: &str, at: DateTime<Utc>) {
        if let Some(old) = self.by_recipient.insert(recipient.to_string(), at) {
            self.by_time.remove(&(old, recipient.to_string()));
        }
        self.by_time.insert((at, recipient.to_string()), ());
    }

    fn fact(&self, recipient: &str, limit: Option<u64>) -> TierFact {
        TierFact {
            used: self.by_recipient.len() as u64,
            limit,
            recipient_counted: self.by_recipient.contains_key(recipient),
            next_free_at: self
                .by_time
                .first_key_value()
                .map(|((t, _), _)| *t + TIER_WINDOW),
        }
    }
}

/// The outcome of trying to count a recipient in the tier.
#[derive(Debug, Clone)]
pub enum TierReservation {
    /// Counted (or already counted): the message may go.
    Counted { used: u64, newly: bool },
    /// The tier is full: the fact says until when.
    Full(TierFact),
    /// The shared count (Redis) did not answer: nothing was counted, and the
    /// message must wait (see [`LimitsUnavailable`]).
    Unavailable,
}

/// The limits are shared through Redis and Redis did not answer: a message
/// must not go on this process's count alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the shared rate limits (Redis) are not answering")]
pub struct LimitsUnavailable;

/// How long the sender's limiter keeps asking an unanswering Redis before
/// it gives up (the worker then gives the message back, to wait).
pub const SHARED_WAIT: StdDuration = StdDuration::from_secs(5);

pub struct Limits {
    redis: Option<redis::aio::ConnectionManager>,
    /// Messages per second per sender, unless the sender has its own.
    default_rate: AtomicU32,
    /// The per-recipient pace, in milliseconds.
    pace_ms: AtomicI64,
    /// In process: each sender's next free slot.
    slots: Mutex<HashMap<String, tokio::time::Instant>>,
    pacer: Mutex<HashMap<String, DateTime<Utc>>>,
    tier: Mutex<LocalTier>,
    /// Current tier limit; `u64::MAX` is unlimited.
    tier_limit: AtomicU64,
    portfolio: String,
    namespace: String,
    /// How long [`Limits::until_sender_ready`] waits for an unanswering Redis.
    shared_wait: Mutex<StdDuration>,
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits")
            .field("shared", &self.redis.is_some())
            .field("default_rate", &self.default_rate())
            .field("pace", &self.pace())
            .field("tier_limit", &self.tier_limit())
            .finish()
    }
}

impl Limits {
    pub fn new(
        redis: Option<redis::aio::ConnectionManager>,
        default_rate: u32,
        pace_seconds: u32,
        tier_limit: Option<u64>,
        portfolio: &str,
        namespace: &str,
    ) -> Limits {
        Limits {
            redis,
            default_rate: AtomicU32::new(default_rate.max(1)),
            pace_ms: AtomicI64::new(i64::from(pace_seconds) * 1000),
            slots: Mutex::new(HashMap::new()),
            pacer: Mutex::new(HashMap::new()),
            tier: Mutex::new(LocalTier::default()),
            tier_limit: AtomicU64::new(tier_limit.unwrap_or(u64::MAX)),
            portfolio: portfolio.to_string(),
            namespace: namespace.to_string(),
            shared_wait: Mutex::new(SHARED_WAIT),
        }
    }

    /// Are the limits shared with other processes (through Redis)?
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// The mark Heimdall leaves in Redis: while it is missing (Redis lost what
    /// it held, or has not been looked at yet), the shared limits refuse
    /// rather than count from nothing (`housekeeping::watch_redis` rebuilds
    /// the tier from its record, then sets it).
    pub fn mark_key(&self) -> String {
        format!("{}:mark", self.namespace)
    }

    /// Set after Redis lost what it held, for [`Limits::hold_after_loss`]: the
    /// slots handed out before the loss are no longer in the rate's count, so
    /// no new one starts until they and the second before them are past.
    pub fn hold_key(&self) -> String {
        format!("{}:hold", self.namespace)
    }

    /// How long new slots wait after Redis lost the rate's count: the furthest
    /// slot handed out before it, and a second.
    pub fn hold_after_loss(&self) -> StdDuration {
        FURTHEST_SLOT + StdDuration::from_secs(1)
    }

    /// The tier's shared count, rebuilt from its record (`tier_usage`, the last
    /// [`TIER_WINDOW`]): after Redis lost it. Returns how many people it holds.
    pub async fn rebuild_shared_tier(&self, db: &Db, now: DateTime<Utc>) -> Result<usize, String> {
        let Some(conn) = &self.redis else {
            return Ok(0);
        };
        let rows = tier_usage::Entity::find()
            .filter(tier_usage::Column::Portfolio.eq(&self.portfolio))
            .filter(tier_usage::Column::ReachedAt.gt(now - TIER_WINDOW))
            .order_by_asc(tier_usage::Column::ReachedAt)
            .all(&db.conn)
            .await
            .map_err(|e| e.to_string())?;
        let mut conn = conn.clone();
        let key = self.key("tier", "set");
        let mut people = std::collections::HashSet::new();
        for chunk in rows.chunks(1000) {
            let members: Vec<(i64, &str)> = chunk
                .iter()
                .map(|r| (r.reached_at.timestamp_millis(), r.recipient.as_str()))
                .collect();
            people.extend(chunk.iter().map(|r| r.recipient.as_str()));
            redis::cmd("ZADD")
                .arg(&key)
                .arg(&members)
                .query_async::<()>(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(people.len())
    }

    /// How long the sender's limiter waits for an unanswering Redis (tests
    /// shorten it).
    pub fn set_shared_wait(&self, wait: StdDuration) {
        *self.shared_wait.lock().unwrap_or_else(|e| e.into_inner()) = wait;
    }

    pub fn tier_limit(&self) -> Option<u64> {
        match self.tier_limit.load(Ordering::Relaxed) {
            u64::MAX => None,
            n => Some(n),
        }
    }

    pub fn set_tier_limit(&self, limit: Option<u64>) {
        self.tier_limit
            .store(limit.unwrap_or(u64::MAX), Ordering::Relaxed);
    }

    pub fn pace(&self) -> Duration {
        Duration::milliseconds(self.pace_ms.load(Ordering::Relaxed))
    }

    pub fn set_pace_seconds(&self, seconds: u32) {
        self.pace_ms
            .store(i64::from(seconds) * 1000, Ordering::Relaxed);
    }

    pub fn default_rate(&self) -> u32 {
        self.default_rate.load(Ordering::Relaxed)
    }

    pub fn set_default_rate(&self, rate: u32) {
        self.default_rate.store(rate.max(1), Ordering::Relaxed);
    }

    /// Load the last 24 hours of tier usage from the record (start-up).
    pub async fn load_tier(&self, db: &Db, now: DateTime<Utc>) -> Result<(), sea_orm::DbErr> {
        let rows = tier_usage::Entity::find()
            .filter(tier_usage::Column::Portfolio.eq(&self.portfolio))
            .filter(tier_usage::Column::ReachedAt.gt(now - TIER_WINDOW))
            .order_by_asc(tier_usage::Column::ReachedAt)
            .all(&db.conn)
            .await?;
        let mut tier = self.tier.lock().unwrap_or_else(|e| e.into_inner());
        for r in rows {
            tier.insert(&r.recipient, r.reached_at);
        }
        Ok(())
    }

    fn key(&self, kind: &str, rest: &str) -> String {
        format!("{}:{kind}:{}:{rest}", self.namespace, self.portfolio)
    }

    /// The tier as it stands for this recipient (no reservation).
    pub async fn tier_fact(&self, recipient: &str, now: DateTime<Utc>) -> TierFact {
        let limit = self.tier_limit();
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let key = self.key("tier", "set");
            let from = (now - TIER_WINDOW).timestamp_millis();
            // (count in window, this recipient's score, the oldest member)
            type TierRead = (u64, Option<f64>, Vec<(String, f64)>);
            let res: Result<TierRead, _> = redis::pipe()
                .zcount(&key, from + 1, "+inf")
                .zscore(&key, recipient)
                .zrangebyscore_limit_withscores(&key, from + 1, "+inf", 0, 1)
                .query_async(&mut conn)
                .await;
            if let Ok((used, score, oldest)) = res {
                return TierFact {
                    used,
                    limit,
                    recipient_counted: score.is_some_and(|s| s as i64 > from),
                    next_free_at: oldest
                        .first()
                        .and_then(|(_, s)| DateTime::from_timestamp_millis(*s as i64))
                        .map(|t| t + TIER_WINDOW),
                };
            }
        }
        let mut tier = self.tier.lock().unwrap_or_else(|e| e.into_inner());
        tier.expire(now);
        tier.fact(recipient, limit)
    }

    /// Count the recipient in the tier if there is room. The record row is
    /// written for a newly counted person.
    pub async fn reserve_tier(
        &self,
        db: &Db,
        recipient: &str,
        message_id: &str,
        now: DateTime<Utc>,
    ) -> Result<TierReservation, sea_orm::DbErr> {
        let limit = self.tier_limit();
        let reservation = match &self.redis {
            Some(conn) => {
                let mut conn = conn.clone();
                let res: Result<(i64, u64, i64, i64), _> = TIER
                    .key(self.key("tier", "set"))
                    .key(self.mark_key())
                    .arg(now.timestamp_millis())
                    .arg(TIER_WINDOW.num_milliseconds())
                    .arg(recipient)
                    .arg(limit.map(|l| l as i64).unwrap_or(-1))
                    .invoke_async(&mut conn)
                    .await;
                match res {
                    Ok((-1, ..)) => {
                        tracing::warn!(
                            "tier: the shared count is being rebuilt; the message waits"
                        );
                        return Ok(TierReservation::Unavailable);
                    }
                    Ok((1, used, _, newly)) => TierReservation::Counted {
                        used,
                        newly: newly == 1,
                    },
                    Ok((_, used, oldest, _)) => TierReservation::Full(TierFact {
                        used,
                        limit,
                        recipient_counted: false,
                        next_free_at: DateTime::from_timestamp_millis(oldest)
                            .map(|t| t + TIER_WINDOW),
                    }),
                    Err(e) => {
                        tracing::warn!(error = %e, "tier: redis unavailable, nothing counted; the message waits");
                        return Ok(TierReservation::Unavailable);
                    }
                }
            }
            None => self.reserve_tier_local(recipient, limit, now),
        };
        if let TierReservation::Counted { newly: true, .. } = reservation {
            {
                let mut tier = self.tier.lock().unwrap_or_else(|e| e.into_inner());
                tier.insert(recipient, now);
            }
            tier_usage::ActiveModel {
                id: Set(new_id()),
                portfolio: Set(self.portfolio.clone()),
                recipient: Set(recipient.to_string()),
                message_id: Set(Some(message_id.to_string())),
                reached_at: Set(now),
            }
            .insert(&db.conn)
            .await?;
        }
        Ok(reservation)
    }

    fn reserve_tier_local(
        &self,
        recipient: &str,
        limit: Option<u64>,
        now: DateTime<Utc>,
    ) -> TierReservation {
        let mut tier = self.tier.lock().unwrap_or_else(|e| e.into_inner());
        tier.expire(now);
        let fact = tier.fact(recipient, limit);
        if fact.recipient_counted {
            return TierReservation::Counted {
                used: fact.used,
                newly: false,
            };
        }
        if let Some(l) = limit {
            if fact.used >= l {
                return TierReservation::Full(fact);
            }
        }
        // The caller inserts into the local index with the DB row.
        TierReservation::Counted {
            used: fact.used + 1,
            newly: true,
        }
    }

    /// Reserve the next slot to this recipient: `Ok(Ok)` when a message may
    /// go now, `Ok(Err(when))` when the next one may, and
    /// [`LimitsUnavailable`] when the shared reservation did not answer.
    pub async fn reserve_pace(
        &self,
        recipient: &str,
        now: DateTime<Utc>,
    ) -> Result<Result<(), DateTime<Utc>>, LimitsUnavailable> {
        let pace = self.pace();
        if pace <= Duration::zero() {
            return Ok(Ok(()));
        }
        if let Some(conn) = &self.redis {
            let mut conn = conn.clone();
            let res: Result<i64, _> = PACE
                .key(self.key("pace", recipient))
                .key(self.mark_key())
                .arg(now.timestamp_millis())
                .arg(pace.num_milliseconds().max(1))
                .invoke_async(&mut conn)
                .await;
            return match res {
                Ok(0) => Ok(Ok(())),
                Ok(-1) => Err(LimitsUnavailable),
                Ok(next) => Ok(Err(
                    DateTime::from_timestamp_millis(next).unwrap_or(now + pace)
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "pace: redis unavailable; the message waits");
                    Err(LimitsUnavailable)
                }
            };
        }
        let mut pacer = self.pacer.lock().unwrap_or_else(|e| e.into_inner());
        if pacer.len() > 100_000 {
            pacer.retain(|_, at| *at > now);
        }
        Ok(match pacer.get(recipient) {
            Some(next) if *next > now => Err(*next),
            _ => {
                pacer.insert(recipient.to_string(), now + pace);
                Ok(())
            }
        })
    }

    /// Reserve the sender's next slot at `rate` (messages per second; the
    /// default when `None`): the moment its request may go out. Slots are
    /// spaced by 1 % more than 1/rate (so the jitter of the request on the
    /// wire cannot squeeze an extra one into a second) and handed out in
    /// order, across processes when shared. A slot not used is lost (fewer
    /// messages, never more). [`LimitsUnavailable`] when the limits are shared
    /// and Redis has not answered, or cannot be trusted, for [`SHARED_WAIT`].
    pub async fn reserve_slot(
        &self,
        sender: &str,
        rate: Option<u32>,
    ) -> Result<tokio::time::Instant, LimitsUnavailable> {
        let rate = rate.unwrap_or_else(|| self.default_rate()).max(1);
        // In microseconds, so that rates up to and past 1,000/s keep their
        // spacing; rounded up: never faster than the rate.
        let interval_us = (1_010_000.0 / f64::from(rate)).ceil().max(1.0) as u64;
        let Some(conn) = &self.redis else {
            let now = tokio::time::Instant::now();
            {
                let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                if slots.len() > 10_000 {
                    slots.retain(|_, next| *next > now);
                }
            }
            loop {
                let slot = {
                    let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
                    let next = slots.entry(sender.to_string()).or_insert(now);
                    let slot = (*next).max(tokio::time::Instant::now());
                    let ahead = slot - tokio::time::Instant::now();
                    if ahead <= FURTHEST_SLOT {
                        *next = slot + StdDuration::from_micros(interval_us);
                        return Ok(slot);
                    }
                    ahead - FURTHEST_SLOT
                };
                tokio::time::sleep(slot).await;
            }
        };
        let mut conn = conn.clone();
        let key = self.key("rate", sender);
        let start = std::time::Instant::now();
        let give_up = *self.shared_wait.lock().unwrap_or_else(|e| e.into_inner());
        let mut warned = false;
        loop {
            let asked = tokio::time::Instant::now();
            let res: Result<(i64, i64), _> = GCRA
                .key(&key)
                .key(self.mark_key())
                .key(self.hold_key())
                .arg(Utc::now().timestamp_micros())
                .arg(interval_us)
                .arg(FURTHEST_SLOT.as_micros() as i64)
                .invoke_async(&mut conn)
                .await;
            let trouble = match res {
                Ok((1, us)) => return Ok(asked + StdDuration::from_micros(us.max(0) as u64)),
                Ok((0, us)) => {
                    tokio::time::sleep(StdDuration::from_micros(us.max(1) as u64)).await;
                    continue;
                }
                Ok(_) => "the shared count is being rebuilt".to_string(),
                Err(e) => e.to_string(),
            };
            if !warned {
                tracing::warn!(error = %trouble, "rate: redis unavailable; waiting for it, not sending on this process's count alone");
                warned = true;
            }
            if start.elapsed() >= give_up {
                return Err(LimitsUnavailable);
            }
            tokio::time::sleep(SHARED_RETRY.min(give_up)).await;
        }
    }

    /// Reserve the sender's next slot and wait for it ([`Limits::reserve_slot`]).
    /// Returns how long it waited.
    pub async fn until_sender_ready(
        &self,
        sender: &str,
        rate: Option<u32>,
    ) -> Result<StdDuration, LimitsUnavailable> {
        let start = tokio::time::Instant::now();
        let slot = self.reserve_slot(sender, rate).await?;
        tokio::time::sleep_until(slot).await;
        Ok(start.elapsed())
    }
}

/// No slot is handed out further ahead than this: a message waits for a closer one
/// without holding one. It bounds how long a slot is held (a worker that dies with one
/// wastes it), and how far ahead slots handed out before Redis lost its count can
/// reach: the hold after such a loss ([`Limits::hold_after_loss`]) outlasts them.
pub const FURTHEST_SLOT: StdDuration = StdDuration::from_secs(2);

/// How often an unanswering Redis is asked again while the limiter waits.
const SHARED_RETRY: StdDuration = StdDuration::from_millis(250);

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 17, 12, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn pace_reserves_one_slot_per_recipient() {
        let l = Limits::new(None, 80, 6, None, "p", "t");
        assert_eq!(l.reserve_pace("+1", t0()).await, Ok(Ok(())));
        assert_eq!(
            l.reserve_pace("+1", t0()).await,
            Ok(Err(t0() + Duration::seconds(6)))
        );
        assert_eq!(l.reserve_pace("+2", t0()).await, Ok(Ok(())));
        assert_eq!(
            l.reserve_pace("+1", t0() + Duration::seconds(6)).await,
            Ok(Ok(()))
        );
        let off = Limits::new(None, 80, 0, None, "p", "t");
        assert_eq!(off.reserve_pace("+1", t0()).await, Ok(Ok(())));
        assert_eq!(off.reserve_pace("+1", t0()).await, Ok(Ok(())));
    }

    #[test]
    fn local_tier_counts_unique_people_in_a_moving_day() {
        let l = Limits::new(None, 80, 6, Some(2), "p", "t");
        let r = |who: &str, at| l.reserve_tier_local(who, Some(2), at);
        let insert = |who: &str, at| l.tier.lock().unwrap().insert(who, at);
        assert!(matches!(
            r("a", t0()),
            TierReservation::Counted { newly: true, .. }
        ));
        insert("a", t0());
        assert!(matches!(
            r("a", t0()),
            TierReservation::Counted { newly: false, .. }
        ));
        assert!(matches!(
            r("b", t0() + Duration::hours(1)),
            TierReservation::Counted { newly: true, .. }
        ));
        insert("b", t0() + Duration::hours(1));
        match r("c", t0() + Duration::hours(2)) {
            TierReservation::Full(f) => {
                assert_eq!(f.used, 2);
                assert_eq!(f.next_free_at, Some(t0() + TIER_WINDOW));
            }
            other => panic!("{other:?}"),
        }
        // After a day, a's slot is free again.
        assert!(matches!(
            r("c", t0() + TIER_WINDOW + Duration::seconds(1)),
            TierReservation::Counted { newly: true, .. }
        ));
    }

    #[tokio::test]
    async fn sender_rate_spaces_messages() {
        let l = Limits::new(None, 50, 0, None, "p", "t");
        let start = std::time::Instant::now();
        for _ in 0..11 {
            l.until_sender_ready("+1", None).await.unwrap();
        }
        // 11 messages at 50/s with no burst need at least 10 intervals of 20 ms.
        assert!(
            start.elapsed() >= StdDuration::from_millis(190),
            "{:?}",
            start.elapsed()
        );
    }
}

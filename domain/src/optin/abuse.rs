//! Abuse protection for the public pages: the client address behind trusted
//! proxies, and the per-address submission limit.

use super::*;

/// The client's address: the peer, unless the peer is a trusted reverse
/// proxy, in which case the right-most address in `X-Forwarded-For` that is
/// not itself a trusted proxy. A malformed header counts as absent.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpAddr]) -> IpAddr {
    if !trusted.contains(&peer) {
        return peer;
    }
    let Some(header) = forwarded_for else {
        return peer;
    };
    let mut hops = Vec::new();
    for part in header.split(',') {
        match part.trim().parse::<IpAddr>() {
            Ok(ip) => hops.push(ip),
            Err(_) => return peer,
        }
    }
    hops.into_iter()
        .rev()
        .find(|ip| !trusted.contains(ip))
        .unwrap_or(peer)
}

/// The reverse proxies whose `X-Forwarded-For` is believed (an admin
/// setting, stored under [`TRUSTED_PROXIES_SETTING`]; none by default, so
/// behind a proxy every visitor has the proxy's address until it is set).
pub async fn trusted_proxies(core: &Core) -> Result<Vec<IpAddr>, sea_orm::DbErr> {
    Ok(settings::store::get(core, TRUSTED_PROXIES_SETTING)
        .await?
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.trim().parse().ok())
        .collect())
}

pub async fn set_trusted_proxies(
    core: &Core,
    proxies: &[IpAddr],
    actor: &str,
) -> Result<(), sea_orm::DbErr> {
    let list: Vec<String> = proxies.iter().map(IpAddr::to_string).collect();
    settings::store::put(
        core,
        TRUSTED_PROXIES_SETTING,
        &serde_json::json!(list),
        actor,
    )
    .await?;
    audit::record_staff_action(
        &core.db.conn,
        actor,
        "settings.optin_trusted_proxies",
        None,
        Some(serde_json::json!(list)),
        None,
        core.now(),
    )
    .await
}

/// The key an address is limited under: IPv6 by its /64 (one subscriber's
/// network), IPv4 as is.
pub(super) fn limit_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.to_string(),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
    }
}

pub(super) const RATE_SCRIPT: &str = r#"
-- KEYS[1] = counter; ARGV[1] = period (s). Returns {count, seconds left}.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], ARGV[1]) end
local ttl = redis.call('TTL', KEYS[1])
if ttl < 0 then redis.call('EXPIRE', KEYS[1], ARGV[1]); ttl = tonumber(ARGV[1]) end
return {n, ttl}
"#;

pub(super) static RATE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(RATE_SCRIPT));

/// Submissions per address: `max` in `period`. In process (governor, keyed
/// by address); with Redis configured, shared by every process (a counter
/// per address under the Redis namespace), falling back to the in-process
/// limit if Redis does not answer.
pub struct SubmissionLimiter {
    /// What it limits, in its Redis key (`optin`, `preferences`).
    name: &'static str,
    max: u32,
    period: StdDuration,
    local: DefaultKeyedRateLimiter<String>,
}

impl std::fmt::Debug for SubmissionLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SubmissionLimiter")
            .field("max", &self.max)
            .field("period", &self.period)
            .finish()
    }
}

impl Default for SubmissionLimiter {
    fn default() -> Self {
        Self::new(RATE_LIMIT_MAX, RATE_LIMIT_PERIOD)
    }
}

impl SubmissionLimiter {
    pub fn new(max: u32, period: StdDuration) -> Self {
        Self::named("optin", max, period)
    }

    /// A limiter of its own for `name` (a separate count per address).
    pub fn named(name: &'static str, max: u32, period: StdDuration) -> Self {
        let max = NonZeroU32::new(max.max(1)).unwrap_or(NonZeroU32::MIN);
        let per = (period / max.get()).max(StdDuration::from_millis(1));
        let quota = Quota::with_period(per)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(max);
        SubmissionLimiter {
            name,
            max: max.get(),
            period,
            local: RateLimiter::keyed(quota),
        }
    }

    /// Count one submission from `ip`; `Err(wait)` when it is over the limit.
    pub async fn check(&self, core: &Core, ip: IpAddr) -> Result<(), StdDuration> {
        let key = limit_key(ip);
        if let Some(conn) = &core.redis {
            let mut conn = conn.clone();
            let redis_key = format!("{}:{}:rate:{key}", core.settings.redis_namespace, self.name);
            let res: Result<(i64, i64), _> = RATE
                .key(&redis_key)
                .arg(self.period.as_secs().max(1))
                .invoke_async(&mut conn)
                .await;
            match res {
                Ok((n, ttl)) if n > i64::from(self.max) => {
                    return Err(StdDuration::from_secs(ttl.max(1) as u64))
                }
                Ok(_) => return Ok(()),
                Err(e) => {
                    tracing::warn!(error = %e, "opt-in rate limit: Redis unavailable, limiting in process")
                }
            }
        }
        if self.local.len() > 100_000 {
            self.local.retain_recent();
        }
        self.local
            .check_key(&key)
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

//! Contacts and what the rules need to know about them: consents with their
//! evidence, suppressions, and customer-service windows.
//!
//! A revocation anywhere (keyword, staff, API, provider opt-out code) is
//! written here, in the database, before the caller answers: no gate
//! evaluated after that instant can pass.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set,
};
use serde::{Deserialize, Serialize};

use crate::channel::Channel;
use crate::clock::new_id;
use crate::consent::status_of;
use crate::entities::{channel_config, contact, service_window, template};
use crate::gates::ConsentStatus;
use crate::phone::{PhoneError, PhoneNumber};
use crate::Core;

// The ledger's read side and types, where callers have always found them.
// Every change of a consent or suppression goes through [`crate::consent`].
pub use crate::consent::{
    active_suppression, consent_history, consent_status, current_consent, suppressions, text_hash,
    ConsentEvidence, ConsentRecord, ConsentSource, Suppression,
};

/// How long a person's message keeps the customer-service window open.
pub const WINDOW: Duration = Duration::hours(24);

#[derive(Debug, thiserror::Error)]
pub enum ContactError {
    #[error(transparent)]
    Phone(#[from] PhoneError),
    #[error("no contact with id {0}")]
    NotFound(String),
    #[error("'{0}' is not an IANA time zone such as Europe/Oslo")]
    TimeZone(String),
    #[error("{0}")]
    Evidence(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// A contact as the API and console show it.
#[derive(Debug, Clone, Serialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Contact {
    pub id: String,
    pub phone: String,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    /// Without a time zone of its own: the zone(s) its number is in, as
    /// quiet hours use them ("America/New_York (inferred from +1212)").
    pub time_zone_inferred: Option<String>,
    pub locale: Option<String>,
    pub tags: Vec<String>,
    pub attributes: BTreeMap<String, String>,
    pub needs_manual_outreach: bool,
    pub manual_outreach_reason: Option<String>,
    pub created_at: DateTime<Utc>,
}

impl From<contact::Model> for Contact {
    fn from(m: contact::Model) -> Self {
        let time_zone_inferred = match m.time_zone {
            Some(_) => None,
            None => crate::time_zones::for_e164(&m.phone_e164).map(|z| {
                crate::gates::LocalZones::Inferred {
                    zones: z.zones(),
                    prefix: z.prefix(),
                }
                .describe()
            }),
        };
        Contact {
            time_zone_inferred,
            tags: serde_json::from_str(&m.tags).unwrap_or_default(),
            attributes: serde_json::from_str(&m.attributes).unwrap_or_default(),
            id: m.id,
            phone: m.phone_e164,
            name: m.name,
            time_zone: m.time_zone,
            locale: m.locale,
            needs_manual_outreach: m.needs_manual_outreach,
            manual_outreach_reason: m.manual_outreach_reason,
            created_at: m.created_at,
        }
    }
}

/// Fields for creating or updating a contact.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactInput {
    pub phone: String,
    pub name: Option<String>,
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

pub(crate) fn check_tz(tz: &Option<String>) -> Result<(), ContactError> {
    if let Some(tz) = tz {
        tz.parse::<chrono_tz::Tz>()
            .map_err(|_| ContactError::TimeZone(tz.clone()))?;
    }
    Ok(())
}

pub(crate) fn clean_tags(tags: &[String]) -> Vec<String> {
    let mut out: Vec<String> = tags
        .iter()
        .map(|t| t.trim().to_lowercase())
        .filter(|t| !t.is_empty())
        .collect();
    out.sort();
    out.dedup();
    out
}

pub async fn find_by_phone(
    db: &impl ConnectionTrait,
    phone: &PhoneNumber,
) -> Result<Option<contact::Model>, sea_orm::DbErr> {
    contact::Entity::find()
        .filter(contact::Column::PhoneE164.eq(phone.as_str()))
        .one(db)
        .await
}

pub async fn get(core: &Core, id: &str) -> Result<Contact, ContactError> {
    contact::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .map(Contact::from)
        .ok_or_else(|| ContactError::NotFound(id.to_string()))
}

/// Create a contact, or update the one with the same number (fields given
/// replace the stored ones; tags are merged).
pub async fn upsert(core: &Core, input: &ContactInput) -> Result<(Contact, bool), ContactError> {
    let phone = PhoneNumber::parse(&input.phone, core.settings.default_region)?;
    check_tz(&input.time_zone)?;
    let now = core.clock.now();
    let tags = clean_tags(&input.tags);
    if let Some(existing) = find_by_phone(&core.db.conn, &phone).await? {
        let mut merged: Vec<String> = serde_json::from_str(&existing.tags).unwrap_or_default();
        merged.extend(tags);
        let merged = clean_tags(&merged);
        let mut attrs: BTreeMap<String, String> =
            serde_json::from_str(&existing.attributes).unwrap_or_default();
        attrs.extend(input.attributes.clone());
        let mut am: contact::ActiveModel = existing.into();
        if input.name.is_some() {
            am.name = Set(input.name.clone());
        }
        if input.time_zone.is_some() {
            am.time_zone = Set(input.time_zone.clone());
        }
        if input.locale.is_some() {
            am.locale = Set(input.locale.clone());
        }
        am.tags = Set(serde_json::to_string(&merged).unwrap_or_else(|_| "[]".into()));
        am.attributes = Set(serde_json::to_string(&attrs).unwrap_or_else(|_| "{}".into()));
        am.updated_at = Set(now);
        return Ok((am.update(&core.db.conn).await?.into(), false));
    }
    let model = insert_new(&core.db.conn, &phone, input, now).await?;
    Ok((model.into(), true))
}

/// Insert a contact that does not exist yet (the number is unique: a second insert of it
/// fails).
pub(crate) async fn insert_new(
    db: &impl ConnectionTrait,
    phone: &PhoneNumber,
    input: &ContactInput,
    now: DateTime<Utc>,
) -> Result<contact::Model, sea_orm::DbErr> {
    contact::ActiveModel {
        id: Set(new_id()),
        phone_e164: Set(phone.to_string()),
        name: Set(input.name.clone().filter(|n| !n.trim().is_empty())),
        time_zone: Set(input.time_zone.clone()),
        locale: Set(input.locale.clone()),
        tags: Set(serde_json::to_string(&clean_tags(&input.tags)).unwrap_or_else(|_| "[]".into())),
        attributes: Set(serde_json::to_string(&input.attributes).unwrap_or_else(|_| "{}".into())),
        needs_manual_outreach: Set(false),
        manual_outreach_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
}

/// What staff may change about a contact (the number is who they are, and stays).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContactEdit {
    /// `None` or blank removes the name.
    pub name: Option<String>,
    /// An IANA zone; `None` falls back to the zone(s) of the number.
    pub time_zone: Option<String>,
    /// Replace the tags (cleaned: trimmed, lower case, sorted, unique).
    pub tags: Vec<String>,
    /// Replace the fields.
    pub attributes: BTreeMap<String, String>,
}

/// Change a contact's name, time zone, tags and fields (each replaced by what is given).
pub async fn edit(core: &Core, id: &str, edit: &ContactEdit) -> Result<Contact, ContactError> {
    check_tz(&edit.time_zone)?;
    let existing = contact::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| ContactError::NotFound(id.to_string()))?;
    let mut am: contact::ActiveModel = existing.into();
    am.name = Set(edit
        .name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string));
    am.time_zone = Set(edit.time_zone.clone());
    am.tags = Set(serde_json::to_string(&clean_tags(&edit.tags)).unwrap_or_else(|_| "[]".into()));
    am.attributes = Set(serde_json::to_string(&edit.attributes).unwrap_or_else(|_| "{}".into()));
    am.updated_at = Set(core.clock.now());
    Ok(am.update(&core.db.conn).await?.into())
}

/// Find the contact for an inbound number, creating an unknown contact
/// (with no consent) the first time someone writes.
pub async fn find_or_create_by_phone(
    db: &impl ConnectionTrait,
    phone: &PhoneNumber,
    name: Option<String>,
    now: DateTime<Utc>,
) -> Result<contact::Model, sea_orm::DbErr> {
    if let Some(c) = find_by_phone(db, phone).await? {
        return Ok(c);
    }
    let model = contact::ActiveModel {
        id: Set(new_id()),
        phone_e164: Set(phone.to_string()),
        name: Set(name),
        time_zone: Set(None),
        locale: Set(None),
        tags: Set("[]".into()),
        attributes: Set("{}".into()),
        needs_manual_outreach: Set(false),
        manual_outreach_reason: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    };
    match model.insert(db).await {
        Ok(m) => Ok(m),
        // Two requests for a new number at once: the other one created it.
        Err(e) => find_by_phone(db, phone).await?.ok_or(e),
    }
}

/// Contact ids by E.164 number, remembered in process so that a message
/// from a known number needs no lookup. Exact, never stale: contacts are
/// never deleted and a contact's number never changes (it is set when the
/// contact is created, and is its identity), so a number that once had an
/// id always has that id. Bounded: the least recently used go first.
#[derive(Debug)]
pub struct ContactIds(std::sync::Mutex<lru::LruCache<String, String>>);

/// How many numbers [`ContactIds`] remembers (about 10 MB).
const CONTACT_IDS: usize = 100_000;

impl Default for ContactIds {
    fn default() -> Self {
        let cap = std::num::NonZeroUsize::new(CONTACT_IDS).expect("a positive capacity");
        ContactIds(std::sync::Mutex::new(lru::LruCache::new(cap)))
    }
}

impl ContactIds {
    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, String>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of the contact with this number, finding or creating it in
    /// the database only the first time this process sees the number.
    pub async fn find_or_create(
        &self,
        db: &impl ConnectionTrait,
        phone: &PhoneNumber,
        name: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<String, sea_orm::DbErr> {
        if let Some(id) = self.lock().get(phone.as_str()) {
            return Ok(id.clone());
        }
        let contact = find_or_create_by_phone(db, phone, name, now).await?;
        self.lock().put(phone.to_string(), contact.id.clone());
        Ok(contact.id)
    }
}

/// Search by phone fragment or name.
pub async fn search(core: &Core, query: &str, limit: u64) -> Result<Vec<Contact>, sea_orm::DbErr> {
    let q = query.trim();
    let mut select = contact::Entity::find().order_by_desc(contact::Column::CreatedAt);
    if !q.is_empty() {
        let digits: String = q.chars().filter(|c| c.is_ascii_digit()).collect();
        let mut cond = sea_orm::Condition::any().add(contact::Column::Name.contains(q));
        if !digits.is_empty() {
            cond = cond.add(contact::Column::PhoneE164.contains(&digits));
        }
        select = select.filter(cond);
    }
    Ok(select
        .limit(limit)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(Contact::from)
        .collect())
}

/// Every contact with at least one of `tags`, oldest first. The database
/// narrows the rows (each tag as a JSON string inside the stored array),
/// the exact match is checked here, so both databases agree and a campaign
/// of a thousand out of a million contacts reads a thousand rows.
pub async fn with_tags(core: &Core, tags: &[String]) -> Result<Vec<Contact>, sea_orm::DbErr> {
    let wanted = clean_tags(tags);
    if wanted.is_empty() {
        return Ok(vec![]);
    }
    let mut any = sea_orm::Condition::any();
    for t in &wanted {
        let quoted = serde_json::to_string(t).unwrap_or_default();
        any = any.add(contact::Column::Tags.contains(&quoted));
    }
    let mut out = Vec::new();
    for c in contact::Entity::find()
        .filter(any)
        .order_by_asc(contact::Column::CreatedAt)
        .all(&core.db.conn)
        .await?
    {
        let contact = Contact::from(c);
        if wanted.iter().any(|t| contact.tags.contains(t)) {
            out.push(contact);
        }
    }
    Ok(out)
}

pub async fn flag_manual_outreach(
    db: &impl ConnectionTrait,
    contact_id: &str,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    contact::Entity::update_many()
        .col_expr(contact::Column::NeedsManualOutreach, Expr::value(true))
        .col_expr(contact::Column::ManualOutreachReason, Expr::value(reason))
        .col_expr(contact::Column::UpdatedAt, Expr::value(now))
        .filter(contact::Column::Id.eq(contact_id))
        .exec(db)
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Service windows

/// A contact's service window on a channel; the default is no window.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct WindowState {
    pub in_window: bool,
    pub expires_at: Option<DateTime<Utc>>,
    pub last_inbound: Option<DateTime<Utc>>,
    /// Seconds left, 0 when closed.
    pub seconds_remaining: i64,
}

impl WindowState {
    /// The window opened by a message at `last_inbound`, expiring at
    /// `expires`, as seen at `now`.
    fn at(last_inbound: DateTime<Utc>, expires: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        let open = expires > now;
        WindowState {
            in_window: open,
            expires_at: Some(expires),
            last_inbound: Some(last_inbound),
            seconds_remaining: if open {
                (expires - now).num_seconds()
            } else {
                0
            },
        }
    }
}

/// The service window cached in Redis (when configured), written after
/// the database (the record) has it: a hash of the last inbound time and
/// the expiry (ms), moved forward only, expiring with the window.
const WINDOW_CACHE_SCRIPT: &str = r#"
-- KEYS[1] = key; ARGV[1] = last inbound (ms); ARGV[2] = expires (ms)
local cur = tonumber(redis.call('HGET', KEYS[1], 'last') or '0')
if tonumber(ARGV[1]) > cur then
  redis.call('HSET', KEYS[1], 'last', ARGV[1], 'expires', ARGV[2])
  redis.call('PEXPIREAT', KEYS[1], ARGV[2])
end
return 0
"#;

static WINDOW_CACHE: std::sync::LazyLock<redis::Script> =
    std::sync::LazyLock::new(|| redis::Script::new(WINDOW_CACHE_SCRIPT));

fn window_key(core: &Core, phone: &str, channel: Channel) -> String {
    format!(
        "{}:window:{}:{phone}",
        core.settings.redis_namespace,
        channel.as_str()
    )
}

/// Cache a window opened by a message received at `received_at` (after
/// the database has it). A failure is logged: the database still answers.
pub async fn cache_window(core: &Core, phone: &str, channel: Channel, received_at: DateTime<Utc>) {
    let Some(conn) = &core.redis else {
        return;
    };
    let mut conn = conn.clone();
    let res: Result<i64, _> = WINDOW_CACHE
        .key(window_key(core, phone, channel))
        .arg(received_at.timestamp_millis())
        .arg((received_at + WINDOW).timestamp_millis())
        .invoke_async(&mut conn)
        .await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "window cache: redis unavailable");
    }
}

/// The window of a number as cached in Redis: `None` when Redis is not
/// configured, not answering, or has no open window for it (then the
/// database answers).
pub async fn cached_window(
    core: &Core,
    phone: &str,
    channel: Channel,
    now: DateTime<Utc>,
) -> Option<WindowState> {
    let mut conn = core.redis.clone()?;
    let res: Result<(Option<i64>, Option<i64>), _> = redis::cmd("HMGET")
        .arg(window_key(core, phone, channel))
        .arg("last")
        .arg("expires")
        .query_async(&mut conn)
        .await;
    let (last, expires) = match res {
        Ok((Some(l), Some(e))) => (l, e),
        _ => return None,
    };
    let last = DateTime::from_timestamp_millis(last)?;
    let expires = DateTime::from_timestamp_millis(expires)?;
    (expires > now).then(|| WindowState::at(last, expires, now))
}

/// Open or extend the window to 24 hours after `received_at` (never
/// shortening it when messages arrive out of order).
pub async fn open_window(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sea_orm::DbErr> {
    window_upsert(contact_id, channel, received_at, now)
        .exec_without_returning(db)
        .await
        .map(|_| ())
}

/// [`open_window`] as one statement, to be written with others: insert the
/// window, or move an existing one forward (a concurrent or out-of-order
/// message never shortens it).
pub fn window_upsert(
    contact_id: &str,
    channel: Channel,
    received_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> sea_orm::Insert<service_window::ActiveModel> {
    use sea_orm::sea_query::{Alias, ExprTrait, OnConflict};
    use service_window::Column;
    service_window::Entity::insert(service_window::ActiveModel {
        id: Set(new_id()),
        contact_id: Set(contact_id.to_string()),
        channel: Set(channel.as_str().to_string()),
        last_inbound_at: Set(received_at),
        window_expires_at: Set(received_at + WINDOW),
        updated_at: Set(now),
    })
    .on_conflict(
        OnConflict::columns([Column::ContactId, Column::Channel])
            .update_columns([
                Column::LastInboundAt,
                Column::WindowExpiresAt,
                Column::UpdatedAt,
            ])
            .action_and_where(
                Expr::col((service_window::Entity, Column::LastInboundAt))
                    .lt(Expr::col((Alias::new("excluded"), Column::LastInboundAt))),
            )
            .to_owned(),
    )
}

pub async fn window(
    db: &impl ConnectionTrait,
    contact_id: &str,
    channel: Channel,
    now: DateTime<Utc>,
) -> Result<WindowState, sea_orm::DbErr> {
    let w = service_window::Entity::find()
        .filter(service_window::Column::ContactId.eq(contact_id))
        .filter(service_window::Column::Channel.eq(channel.as_str()))
        .one(db)
        .await?;
    Ok(w.map_or_else(WindowState::default, |w| {
        WindowState::at(w.last_inbound_at, w.window_expires_at, now)
    }))
}

/// What the gates need to know about one contact on one channel.
#[derive(Debug, Clone, Default)]
pub struct GateState {
    /// The latest consent.
    pub consent: Option<LatestConsent>,
    /// The oldest active suppression.
    pub suppression: Option<ActiveSuppression>,
    pub window_expires_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct LatestConsent {
    pub status: String,
    pub source: String,
    pub captured_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone)]
pub struct ActiveSuppression {
    pub reason: String,
    pub source_ref: Option<String>,
    pub since: DateTime<Utc>,
    /// It stops marketing templates only (Meta's 131050).
    pub marketing_only: bool,
}

/// The suppression the gates read: one that stops everything first, then
/// the oldest.
const SUPPRESSION_ORDER: &str = "(scope <> 'all') ASC, created_at ASC";

impl GateState {
    pub fn consent_status(&self) -> Option<ConsentStatus> {
        self.consent
            .as_ref()
            .map(|c| status_of(&c.status, c.revoked_at.is_some()))
    }
}

/// Which contact [`fact_rows`] reads.
#[derive(Debug, Clone, Copy)]
pub enum ContactKey<'a> {
    Id(&'a str),
    Phone(&'a str),
    /// No contact (an unparseable number): only the other rows are read.
    Nobody,
}

/// Everything the gates read from the database for one message, read in
/// ONE statement (the send path reads it twice per message, at acceptance
/// and in the worker): the contact, its latest consent, oldest active
/// suppression and service window on the channel, the template by name and
/// the sender's `channels` row.
#[derive(Debug, Clone, Default)]
pub struct FactRows {
    pub contact: Option<contact::Model>,
    pub gate: GateState,
    pub template: Option<template::Model>,
    pub sender: Option<channel_config::Model>,
}

/// `k.col AS pre_col, ...` for every column of an entity.
fn prefixed_columns<E: sea_orm::EntityTrait>(table: &str, pre: &str) -> String {
    use sea_orm::{IdenStatic, Iterable};
    E::Column::iter()
        .map(|c| format!("{table}.{col} AS {pre}{col}", col = c.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A model read under a prefix by a `LEFT JOIN`: `None` when nothing
/// joined (its id is NULL), an error if a joined row does not decode.
fn joined<M: sea_orm::FromQueryResult>(
    row: &sea_orm::QueryResult,
    pre: &str,
) -> Result<Option<M>, sea_orm::DbErr> {
    let id: Option<String> = row.try_get(pre, "id")?;
    id.map(|_| M::from_query_result(row, pre)).transpose()
}

/// Where the facts statement finds what it reads: SQL expressions for the
/// contact's condition, the channel and the template name, and the
/// senders' (kind, address) pairs.
struct FactSources<'a> {
    contact_where: &'a str,
    channel: &'a str,
    template: &'a str,
    senders: &'a [(String, String)],
}

/// The facts statement: one row, every source joined to a one-row base.
/// The columns every facts statement selects (contact `k`, latest consent
/// `lc`, suppression `ls`, window `w`, template `t`, senders `s0`...), and
/// the joins of the senders' rows; `senders` are (kind, address) SQL
/// expressions. [`decode_facts`] reads them back.
fn fact_columns(senders: &[(String, String)]) -> (String, String) {
    let mut columns = format!(
        "{c}, \
         lc.status AS lc_status, lc.source AS lc_source, \
         lc.captured_at AS lc_captured_at, lc.revoked_at AS lc_revoked_at, \
         ls.reason AS ls_reason, ls.source_ref AS ls_source_ref, ls.created_at AS ls_since, \
         ls.scope AS ls_scope, \
         w.window_expires_at AS w_expires_at, {t}",
        c = prefixed_columns::<contact::Entity>("k", "c_"),
        t = prefixed_columns::<template::Entity>("t", "t_"),
    );
    let mut joins = String::new();
    for (i, (kind, address)) in senders.iter().enumerate() {
        columns.push_str(", ");
        columns.push_str(&prefixed_columns::<channel_config::Entity>(
            &format!("s{i}"),
            &format!("s{i}_"),
        ));
        joins.push_str(&format!(
            " LEFT JOIN channels s{i} ON s{i}.kind = {kind} AND s{i}.address = {address}"
        ));
    }
    (columns, joins)
}

fn facts_sql(src: &FactSources<'_>) -> String {
    let (columns, senders_joins) = fact_columns(src.senders);
    format!(
        "WITH k AS (SELECT * FROM contacts WHERE {contact_where} LIMIT 1) \
         SELECT {columns} \
         FROM (SELECT 1 AS one) one \
         LEFT JOIN k ON TRUE \
         LEFT JOIN (SELECT status, source, captured_at, revoked_at FROM consents \
           WHERE contact_id = (SELECT id FROM k) AND channel = {ch} \
           ORDER BY created_at DESC, id DESC LIMIT 1) lc ON TRUE \
         LEFT JOIN (SELECT reason, source_ref, created_at, scope FROM suppressions \
           WHERE contact_id = (SELECT id FROM k) AND channel IN ({ch}, 'all') \
           AND lifted_at IS NULL ORDER BY {SUPPRESSION_ORDER} LIMIT 1) ls ON TRUE \
         LEFT JOIN service_windows w \
           ON w.contact_id = (SELECT id FROM k) AND w.channel = {ch} \
         LEFT JOIN templates t ON t.name = {tn}{senders_joins}",
        contact_where = src.contact_where,
        ch = src.channel,
        tn = src.template,
    )
}

/// The facts row decoded; `sender` picks which sender's row is the one.
fn decode_facts(row: &sea_orm::QueryResult, sender: usize) -> Result<FactRows, sea_orm::DbErr> {
    let consent = match row.try_get::<Option<String>>("", "lc_status")? {
        Some(status) => Some(LatestConsent {
            status,
            source: row.try_get("", "lc_source")?,
            captured_at: row.try_get("", "lc_captured_at")?,
            revoked_at: row.try_get("", "lc_revoked_at")?,
        }),
        None => None,
    };
    let suppression = match row.try_get::<Option<String>>("", "ls_reason")? {
        Some(reason) => Some(ActiveSuppression {
            reason,
            source_ref: row.try_get("", "ls_source_ref")?,
            since: row.try_get("", "ls_since")?,
            marketing_only: row.try_get::<String>("", "ls_scope")? == "marketing",
        }),
        None => None,
    };
    Ok(FactRows {
        contact: joined(row, "c_")?,
        gate: GateState {
            consent,
            suppression,
            window_expires_at: row.try_get("", "w_expires_at")?,
        },
        template: joined(row, "t_")?,
        sender: joined(row, &format!("s{sender}_"))?,
    })
}

/// `$n` on PostgreSQL, `?n` on SQLite.
pub(crate) fn placeholder(backend: sea_orm::DbBackend, n: usize) -> String {
    match backend {
        sea_orm::DbBackend::Postgres => format!("${n}"),
        _ => format!("?{n}"),
    }
}

/// Read [`FactRows`] in one statement. `template` is a template name,
/// `sender` a `channels` (kind, address).
pub async fn fact_rows(
    db: &impl ConnectionTrait,
    key: ContactKey<'_>,
    channel: Channel,
    template: Option<&str>,
    sender: Option<(&str, &str)>,
) -> Result<FactRows, sea_orm::DbErr> {
    use sea_orm::Statement;
    let backend = db.get_database_backend();
    let p = |n| placeholder(backend, n);
    let (contact_where, contact_value) = match key {
        ContactKey::Id(id) => (format!("id = {}", p(1)), id),
        ContactKey::Phone(phone) => (format!("phone_e164 = {}", p(1)), phone),
        ContactKey::Nobody => (format!("FALSE AND id = {}", p(1)), ""),
    };
    let sql = facts_sql(&FactSources {
        contact_where: &contact_where,
        channel: &p(2),
        template: &p(3),
        senders: &[(p(4), p(5))],
    });
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            sql,
            [
                contact_value.into(),
                channel.as_str().into(),
                template.map(|t| t.trim().to_lowercase()).into(),
                sender.map(|s| s.0.to_string()).into(),
                sender.map(|s| s.1.to_string()).into(),
            ],
        ))
        .await?
        .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the facts row".into()))?;
    decode_facts(&row, 0)
}

/// The `LATERAL` lookups of the merged facts statements: the contact `k`
/// (`contact` is a subquery giving at most one contacts row), its latest
/// consent `lc`, oldest active suppression `ls` and window `w` on
/// `channel`, and the template `t` named `template` (SQL expressions of
/// the row being read for). Each is an index lookup by key per row.
fn lateral_fact_joins(contact: &str, channel: &str, template: &str) -> String {
    format!(
        "LEFT JOIN LATERAL ({contact}) k ON TRUE \
         LEFT JOIN LATERAL (SELECT status, source, captured_at, revoked_at FROM consents \
           WHERE contact_id = k.id AND channel = {channel} \
           ORDER BY created_at DESC, id DESC LIMIT 1) lc ON TRUE \
         LEFT JOIN LATERAL (SELECT reason, source_ref, created_at, scope FROM suppressions \
           WHERE contact_id = k.id AND channel IN ({channel}, 'all') \
           AND lifted_at IS NULL ORDER BY {SUPPRESSION_ORDER} LIMIT 1) ls ON TRUE \
         LEFT JOIN LATERAL (SELECT window_expires_at FROM service_windows \
           WHERE contact_id = k.id AND channel = {channel} LIMIT 1) w ON TRUE \
         LEFT JOIN LATERAL (SELECT * FROM templates \
           WHERE name = {template} LIMIT 1) t ON TRUE"
    )
}

/// The senders' (kind, address) as bound parameters from `$first` on,
/// the joins' SQL expressions for [`fact_columns`].
fn sender_params(
    senders: &[(Channel, Option<(&str, String)>)],
    first: usize,
) -> Vec<(String, String)> {
    (0..senders.len())
        .map(|i| {
            (
                format!("${}", first + 2 * i),
                format!("${}", first + 1 + 2 * i),
            )
        })
        .collect()
}

/// Bind the senders' (kind, address) pairs in [`sender_params`]' order.
fn bind_senders<'q>(
    mut query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    senders: &[(Channel, Option<(&str, String)>)],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    for (_, sender) in senders {
        let (kind, address) = match sender {
            Some((k, a)) => (Some(k.to_string()), Some(a.clone())),
            None => (None, None),
        };
        query = query.bind(kind).bind(address);
    }
    query
}

/// Which sender's row of the facts statement is `channel`'s.
fn sender_index(senders: &[(Channel, Option<(&str, String)>)], channel: &str) -> usize {
    senders
        .iter()
        .position(|(c, _)| c.as_str() == channel)
        .unwrap_or(0)
}

/// One message's facts to read with [`fact_rows_many`]: the contact by id,
/// else by phone (neither: no contact), the channel and template name.
#[derive(Debug, Clone)]
pub struct FactRead {
    pub contact_id: Option<String>,
    pub phone: Option<String>,
    pub channel: Channel,
    pub template: Option<String>,
}

impl FactRead {
    pub fn new(key: ContactKey<'_>, channel: Channel, template: Option<&str>) -> FactRead {
        let (contact_id, phone) = match key {
            ContactKey::Id(id) => (Some(id.to_string()), None),
            ContactKey::Phone(p) => (None, Some(p.to_string())),
            ContactKey::Nobody => (None, None),
        };
        FactRead {
            contact_id,
            phone,
            channel,
            template: template.map(|t| t.trim().to_lowercase()),
        }
    }
}

/// PostgreSQL only: [`fact_rows`] for many messages in ONE statement, the
/// answers in the order of `reads` (the acceptance reads of concurrent
/// callers, merged). The reads travel as arrays, unnested with their
/// ordinal; every source is a `LATERAL` lookup by key
/// ([`lateral_fact_joins`]), as in [`messages_with_fact_rows`].
pub async fn fact_rows_many(
    pool: &sqlx::PgPool,
    reads: &[FactRead],
    senders: &[(Channel, Option<(&str, String)>)],
) -> Result<Vec<FactRows>, sea_orm::DbErr> {
    let (columns, senders_joins) = fact_columns(&sender_params(senders, 5));
    let sql = format!(
        "SELECT {columns} \
         FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[]) \
           WITH ORDINALITY AS r(cid, phone, channel, tname, ord) \
         {joins}{senders_joins} \
         ORDER BY r.ord",
        joins = lateral_fact_joins(
            "(SELECT * FROM contacts WHERE id = r.cid LIMIT 1) \
             UNION ALL (SELECT * FROM contacts WHERE phone_e164 = r.phone LIMIT 1) LIMIT 1",
            "r.channel",
            "r.tname",
        ),
    );
    let column = |f: fn(&FactRead) -> Option<String>| reads.iter().map(f).collect::<Vec<_>>();
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(column(|r| r.contact_id.clone()))
        .bind(column(|r| r.phone.clone()))
        .bind(column(|r| Some(r.channel.as_str().to_string())))
        .bind(column(|r| r.template.clone()));
    let rows = bind_senders(query, senders)
        .fetch_all(pool)
        .await
        .map_err(crate::db::sqlx_err)?;
    one_row_per_read(rows.len(), reads.len())?;
    reads
        .iter()
        .zip(rows)
        .map(|(read, row)| {
            decode_facts(
                &sea_orm::QueryResult::from(row),
                sender_index(senders, read.channel.as_str()),
            )
        })
        .collect()
}

/// PostgreSQL only: read each message of `ids` and its [`FactRows`] in
/// one statement, the answers in the order of `ids` (`None` for an id
/// with no message; the workers' reads, merged: the worker claims a
/// message with its evaluation's write, [`crate::db::Db::write_claiming`]).
/// The message, and every source, is a `LATERAL` lookup by key per id, so
/// the plan is index lookups whatever the tables' sizes were when it was
/// made (`id = ANY($1)` over the table is planned as a scan while the
/// table is small, and the connection keeps that generic plan as the
/// table grows).
pub async fn messages_with_fact_rows(
    pool: &sqlx::PgPool,
    ids: &[String],
    senders: &[(Channel, Option<(&str, String)>)],
) -> Result<Vec<Option<(crate::entities::outbound_message::Model, FactRows)>>, sea_orm::DbErr> {
    use crate::entities::outbound_message;
    // Each sender's kind and address: $2 and $3, $4 and $5, ...
    let (columns, senders_joins) = fact_columns(&sender_params(senders, 2));
    let sql = format!(
        "SELECT {columns}, {mc} \
         FROM unnest($1::varchar[]) WITH ORDINALITY AS r(id, ord) \
         LEFT JOIN LATERAL (SELECT * FROM outbound_messages WHERE id = r.id LIMIT 1) m ON TRUE \
         {joins}{senders_joins} \
         ORDER BY r.ord",
        joins = lateral_fact_joins(
            "SELECT * FROM contacts WHERE id = m.contact_id LIMIT 1",
            "m.channel",
            "lower(trim(m.template_name))",
        ),
        mc = prefixed_columns::<outbound_message::Entity>("m", "m_"),
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids);
    let rows = bind_senders(query, senders)
        .fetch_all(pool)
        .await
        .map_err(crate::db::sqlx_err)?;
    one_row_per_read(rows.len(), ids.len())?;
    rows.into_iter()
        .map(|row| {
            let row = sea_orm::QueryResult::from(row);
            let Some(m) = joined::<outbound_message::Model>(&row, "m_")? else {
                return Ok(None);
            };
            let mut facts = decode_facts(&row, sender_index(senders, &m.channel))?;
            if m.template_name.is_none() {
                facts.template = None;
            }
            Ok(Some((m, facts)))
        })
        .collect()
}

/// A merged read must give one row per read, or no caller may trust its
/// answer (they are matched by position).
fn one_row_per_read(rows: usize, reads: usize) -> Result<(), sea_orm::DbErr> {
    if rows == reads {
        return Ok(());
    }
    Err(sea_orm::DbErr::Custom(format!(
        "the facts statement returned {rows} rows for {reads} reads"
    )))
}

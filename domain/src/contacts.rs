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
use crate::entities::{contact, service_window};
use crate::phone::{PhoneError, PhoneNumber};
use crate::Core;

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
                crate::compliance::gates::LocalZones::Inferred {
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
/// from a known number needs no lookup. Exact: contacts are never deleted
/// and a contact's number never changes (it is set when the contact is
/// created, and is its identity), so a number that once had an id always
/// has that id; except after an erasure (see [`ContactIds::forget`] and
/// [`ContactIds::forget_after_erasures`]). Bounded: the least recently used go first.
#[derive(Debug)]
pub struct ContactIds {
    ids: std::sync::Mutex<lru::LruCache<String, String>>,
    /// The erasures on record at the last look (how many, and the latest
    /// time), whoever made them.
    erasures: std::sync::Mutex<Option<(u64, Option<DateTime<Utc>>)>>,
}

/// How many numbers [`ContactIds`] remembers (about 10 MB).
const CONTACT_IDS: usize = 100_000;

impl Default for ContactIds {
    fn default() -> Self {
        let cap = std::num::NonZeroUsize::new(CONTACT_IDS).expect("a positive capacity");
        ContactIds {
            ids: std::sync::Mutex::new(lru::LruCache::new(cap)),
            erasures: std::sync::Mutex::new(None),
        }
    }
}

impl ContactIds {
    fn lock(&self) -> std::sync::MutexGuard<'_, lru::LruCache<String, String>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Forget a number (its contact was erased here: the number is no
    /// longer its identity). Other processes forget it through
    /// [`Self::forget_after_erasures`].
    pub fn forget(&self, phone: &str) {
        self.lock().pop(phone);
    }

    /// Forget every number when an erasure was recorded since the last look,
    /// by any process (the cache holds numbers, the tombstones only their
    /// keyed hashes, so which number went cannot be told: all go, and are
    /// looked up again). The refresher calls it every second
    /// ([`crate::core::run_refresher`]), so within a second of an erasure
    /// no process files a message from the number under the erased shell.
    pub async fn forget_after_erasures(
        &self,
        db: &impl ConnectionTrait,
    ) -> Result<(), sea_orm::DbErr> {
        use crate::entities::erased_number;
        use sea_orm::PaginatorTrait;
        let count = erased_number::Entity::find().count(db).await?;
        let latest = erased_number::Entity::find()
            .order_by_desc(erased_number::Column::ErasedAt)
            .one(db)
            .await?
            .map(|e| e.erased_at);
        let now = Some((count, latest));
        let mut seen = self.erasures.lock().unwrap_or_else(|e| e.into_inner());
        if *seen != now {
            self.lock().clear();
            *seen = now;
        }
        Ok(())
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

/// Forget what this process and Redis hold under a number (an erased
/// person's): the contact id it maps to and its cached windows.
pub async fn forget_number(core: &Core, phone: &str) {
    core.contact_ids.forget(phone);
    let Some(conn) = &core.redis else {
        return;
    };
    let mut conn = conn.clone();
    let keys: Vec<String> = Channel::ALL
        .iter()
        .map(|c| window_key(core, phone, *c))
        .collect();
    let res: Result<i64, _> = redis::cmd("DEL").arg(keys).query_async(&mut conn).await;
    if let Err(e) = res {
        tracing::warn!(error = %e, "window cache: redis unavailable (an erased number's windows expire in 24 h)");
    }
}

/// Whether a contact is the anonymised shell an erasure left
/// (`privacy::erase`): its number was replaced by a keyed hash.
pub fn is_erased(phone_e164: &str) -> bool {
    phone_e164.starts_with("hash:")
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

//! The facts statement: everything the gates read for one message (the
//! contact, its latest consent and active suppression and service window
//! on the channel, the template and the sender's row), read in ONE
//! statement at acceptance and again in the worker; on PostgreSQL the reads
//! of concurrent callers are merged into one statement, each by key.
//!
//! It only reads. Which consent and which suppression count is the
//! ledger's rule ([`crate::consent`]); this is that rule as SQL.

use chrono::{DateTime, Utc};
use sea_orm::ConnectionTrait;

use crate::channel::Channel;
use crate::compliance::gates::ConsentStatus;
use crate::consent::status_of;
use crate::entities::{channel_config, contact, template};
use crate::store::db::placeholder;

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
    pub status: ConsentStatus,
    pub source: String,
    pub captured_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
    /// The purpose it covers; `None`: recorded before purposes, covering
    /// the legacy ones.
    pub purpose: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ActiveSuppression {
    pub reason: String,
    pub source_ref: Option<String>,
    pub since: DateTime<Utc>,
    /// It stops marketing templates only (Meta's 131050).
    pub marketing_only: bool,
    /// It stops one purpose only (the person withdrew it): that purpose.
    pub purpose: Option<String>,
}

/// The purpose the consent was read for, as defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PurposeRow {
    pub name: String,
    pub marketing: bool,
    pub legacy: bool,
}

/// The consent the gates read, for the contact `contact_id` (an SQL
/// expression) on `channel` and the purpose `pp` (the `purposes` row
/// joined before it): the latest one (ties by id) that covers the purpose,
/// its own or, recorded before purposes, one covering the legacy purposes;
/// as `consent::current_consent_for` picks it. `columns` is what to
/// select. Written once for every facts statement;
/// `domain/tests/selection_agrees.rs` checks the paths agree on generated
/// ledgers.
fn latest_consent_sql(columns: &str, contact_id: &str, channel: &str) -> String {
    format!(
        "SELECT {columns} FROM consents \
         WHERE contact_id = {contact_id} AND channel = {channel} \
         AND (purpose = pp.name OR (purpose IS NULL AND pp.legacy = TRUE)) \
         ORDER BY created_at DESC, id DESC LIMIT 1"
    )
}

/// The suppression the gates read, for `contact_id` on `channel` and the
/// purpose `pp`: an active one on the channel or on `all` that stops
/// everything, or this purpose, or marketing; in that order, then the
/// oldest (ties by id). When it stops everything it is the one
/// `consent::active_suppression` picks.
fn gate_suppression_sql(columns: &str, contact_id: &str, channel: &str) -> String {
    format!(
        "SELECT {columns} FROM suppressions \
         WHERE contact_id = {contact_id} AND channel IN ({channel}, 'all') \
         AND lifted_at IS NULL \
         AND (scope IN ('all', 'marketing') OR scope = 'purpose:' || pp.name) \
         ORDER BY CASE scope WHEN 'all' THEN 0 WHEN 'marketing' THEN 2 ELSE 1 END, \
         created_at ASC, id ASC LIMIT 1"
    )
}

/// The purpose a message is checked for: the one it names (`named`, an SQL
/// expression), else its template's.
fn purpose_join(lateral: bool, named: &str) -> String {
    if lateral {
        format!(
            "LEFT JOIN LATERAL (SELECT * FROM purposes \
               WHERE name = COALESCE({named}, t.purpose) LIMIT 1) pp ON TRUE"
        )
    } else {
        format!("LEFT JOIN purposes pp ON pp.name = COALESCE({named}, t.purpose)")
    }
}

impl GateState {
    pub fn consent_status(&self) -> Option<ConsentStatus> {
        self.consent
            .as_ref()
            .map(|c| status_of(c.status, c.revoked_at.is_some()))
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
    /// The purpose the message is checked for (the one it names, else its
    /// template's), as defined; `None` when it names none or an unknown one.
    pub purpose: Option<PurposeRow>,
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
    /// The purpose the message names (NULL: its template's).
    purpose: &'a str,
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
         lc.purpose AS lc_purpose, \
         pp.name AS pp_name, pp.marketing AS pp_marketing, pp.legacy AS pp_legacy, \
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
         LEFT JOIN templates t ON t.name = {tn} \
         {pp} \
         LEFT JOIN consents lc ON lc.id = ({lc}) \
         LEFT JOIN suppressions ls ON ls.id = ({ls}) \
         LEFT JOIN service_windows w \
           ON w.contact_id = k.id AND w.channel = {ch}{senders_joins}",
        contact_where = src.contact_where,
        ch = src.channel,
        pp = purpose_join(false, src.purpose),
        lc = latest_consent_sql("id", "k.id", src.channel),
        ls = gate_suppression_sql("id", "k.id", src.channel),
        tn = src.template,
    )
}

/// The facts row decoded; `sender` picks which sender's row is the one.
fn decode_facts(row: &sea_orm::QueryResult, sender: usize) -> Result<FactRows, sea_orm::DbErr> {
    // A stored status this build does not know is an error (the send waits and is
    // tried again), never read as consent.
    let consent = match row.try_get::<Option<ConsentStatus>>("", "lc_status")? {
        Some(status) => Some(LatestConsent {
            status,
            source: row.try_get("", "lc_source")?,
            captured_at: row.try_get("", "lc_captured_at")?,
            revoked_at: row.try_get("", "lc_revoked_at")?,
            purpose: row.try_get("", "lc_purpose")?,
        }),
        None => None,
    };
    let scope: String = row
        .try_get::<Option<String>>("", "ls_scope")?
        .unwrap_or_default();
    let suppression = match row.try_get::<Option<String>>("", "ls_reason")? {
        Some(reason) => Some(ActiveSuppression {
            reason,
            source_ref: row.try_get("", "ls_source_ref")?,
            since: row.try_get("", "ls_since")?,
            marketing_only: scope == "marketing",
            purpose: scope.strip_prefix("purpose:").map(str::to_string),
        }),
        None => None,
    };
    let purpose = match row.try_get::<Option<String>>("", "pp_name")? {
        Some(name) => Some(PurposeRow {
            name,
            marketing: row.try_get("", "pp_marketing")?,
            legacy: row.try_get("", "pp_legacy")?,
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
        purpose,
        sender: joined(row, &format!("s{sender}_"))?,
    })
}

/// Read [`FactRows`] in one statement. `template` is a template name,
/// `sender` a `channels` (kind, address).
pub async fn fact_rows(
    db: &impl ConnectionTrait,
    key: ContactKey<'_>,
    channel: Channel,
    template: Option<&str>,
    purpose: Option<&str>,
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
        purpose: &p(6),
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
                purpose.map(str::to_string).into(),
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
/// the row being read for; `purpose` the one it names). Each is an index
/// lookup by key per row.
fn lateral_fact_joins(contact: &str, channel: &str, template: &str, purpose: &str) -> String {
    format!(
        "LEFT JOIN LATERAL ({contact}) k ON TRUE \
         LEFT JOIN LATERAL (SELECT * FROM templates \
           WHERE name = {template} LIMIT 1) t ON TRUE \
         {pp} \
         LEFT JOIN LATERAL ({lc}) lc ON TRUE \
         LEFT JOIN LATERAL ({ls}) ls ON TRUE \
         LEFT JOIN LATERAL (SELECT window_expires_at FROM service_windows \
           WHERE contact_id = k.id AND channel = {channel} LIMIT 1) w ON TRUE",
        pp = purpose_join(true, purpose),
        lc = latest_consent_sql(
            "status, source, captured_at, revoked_at, purpose",
            "k.id",
            channel
        ),
        ls = gate_suppression_sql("reason, source_ref, created_at, scope", "k.id", channel),
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
    /// The purpose the message names (`None`: its template's).
    pub purpose: Option<String>,
}

impl FactRead {
    pub fn new(
        key: ContactKey<'_>,
        channel: Channel,
        template: Option<&str>,
        purpose: Option<&str>,
    ) -> FactRead {
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
            purpose: purpose.map(str::to_string),
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
    let (columns, senders_joins) = fact_columns(&sender_params(senders, 6));
    let sql = format!(
        "SELECT {columns} \
         FROM unnest($1::varchar[], $2::varchar[], $3::varchar[], $4::varchar[], \
           $5::varchar[]) \
           WITH ORDINALITY AS r(cid, phone, channel, tname, purpose, ord) \
         {joins}{senders_joins} \
         ORDER BY r.ord",
        joins = lateral_fact_joins(
            "(SELECT * FROM contacts WHERE id = r.cid LIMIT 1) \
             UNION ALL (SELECT * FROM contacts WHERE phone_e164 = r.phone LIMIT 1) LIMIT 1",
            "r.channel",
            "r.tname",
            "r.purpose",
        ),
    );
    let column = |f: fn(&FactRead) -> Option<String>| reads.iter().map(f).collect::<Vec<_>>();
    let query = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(column(|r| r.contact_id.clone()))
        .bind(column(|r| r.phone.clone()))
        .bind(column(|r| Some(r.channel.as_str().to_string())))
        .bind(column(|r| r.template.clone()))
        .bind(column(|r| r.purpose.clone()));
    let rows = bind_senders(query, senders)
        .fetch_all(pool)
        .await
        .map_err(crate::store::db::sqlx_err)?;
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
/// message with its evaluation's write, [`crate::store::db::Db::write_claiming`]).
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
            "m.purpose",
        ),
        mc = prefixed_columns::<outbound_message::Entity>("m", "m_"),
    );
    let query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ids);
    let rows = bind_senders(query, senders)
        .fetch_all(pool)
        .await
        .map_err(crate::store::db::sqlx_err)?;
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

/// The keyed hash of the number a facts row was read for: its contact's,
/// else `phone` (the number asked for), for the erasure tombstone's lookup
/// (`consent::tombstone`).
pub fn recipient_hash(
    key: &crate::consent::tombstone::ErasureKey,
    rows: &FactRows,
    phone: Option<&str>,
) -> Option<String> {
    rows.contact
        .as_ref()
        .map(|c| c.phone_e164.as_str())
        .or(phone)
        .filter(|p| p.starts_with('+'))
        .map(|p| key.number_hash(p))
}

/// The recipient's number is an erased person's (tombstoned on `erased_at`):
/// suppressed on every channel, whatever else the row holds.
pub fn mark_erased(rows: &mut FactRows, erased_at: DateTime<Utc>) {
    rows.gate.suppression = Some(ActiveSuppression {
        reason: crate::consent::tombstone::erased_reason(erased_at),
        source_ref: None,
        since: erased_at,
        marketing_only: false,
        purpose: None,
    });
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

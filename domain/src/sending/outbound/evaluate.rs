//! The facts the gates read for a message, read in one statement (merged across
//! callers on PostgreSQL), and an evaluation written with its audit row.

use super::*;
use crate::consent::tombstone::{self, ErasureKey};

/// What loading the facts found besides the facts themselves, so the send
/// path does not read it twice.
pub(super) struct Loaded {
    pub(super) template: Option<Template>,
    pub(super) sender_rate: Option<i32>,
}

/// The rows the gates read for a message to `key` on `channel`, in one
/// statement: on PostgreSQL merged with concurrent callers' reads
/// ([`FactReads`]), on SQLite alone ([`facts::fact_rows`]).
pub(super) async fn read_fact_rows(
    core: &Core,
    key: ContactKey<'_>,
    channel: Channel,
    template_name: Option<&str>,
    purpose: Option<&str>,
) -> Result<FactRows, sea_orm::DbErr> {
    if let Some(pool) = core.db.postgres_pool() {
        let read = facts::FactRead::new(key, channel, template_name, purpose);
        return core.fact_reads.read(core, pool, read).await;
    }
    let sender = authz::sender_key(core, channel);
    let mut rows = facts::fact_rows(
        &core.db.conn,
        key,
        channel,
        template_name,
        purpose,
        sender.as_ref().map(|(k, a)| (*k, a.as_str())),
    )
    .await?;
    let phone = match key {
        ContactKey::Phone(p) => Some(p),
        _ => None,
    };
    if let Some(hash) = ErasureKey::of(core).and_then(|k| facts::recipient_hash(&k, &rows, phone)) {
        if let Some(at) = tombstone::active(&core.db.conn, std::slice::from_ref(&hash))
            .await?
            .remove(&hash)
        {
            facts::mark_erased(&mut rows, at);
        }
    }
    Ok(rows)
}

/// PostgreSQL: the workers' merged read of messages and their facts
/// ([`facts::messages_with_fact_rows`]), erased recipients marked.
pub(super) async fn messages_marked(
    pool: sqlx::PgPool,
    senders: std::sync::Arc<super::worker::Senders>,
    ids: Vec<String>,
    key: Option<ErasureKey>,
) -> Result<Vec<Option<(outbound_message::Model, FactRows)>>, sea_orm::DbErr> {
    let mut read = facts::messages_with_fact_rows(&pool, &ids, &senders).await?;
    let rows = read
        .iter_mut()
        .flatten()
        .map(|(m, f)| (Some(m.to_address.as_str()), f))
        .collect();
    mark_erased_pg(&pool, key.as_ref(), rows).await?;
    Ok(read)
}

/// PostgreSQL: the acceptance reads merged ([`facts::fact_rows_many`]),
/// erased recipients marked.
pub(super) async fn fact_rows_marked(
    pool: sqlx::PgPool,
    senders: std::sync::Arc<super::worker::Senders>,
    batch: Vec<facts::FactRead>,
    key: Option<ErasureKey>,
) -> Result<Vec<FactRows>, sea_orm::DbErr> {
    let mut rows = facts::fact_rows_many(&pool, &batch, &senders).await?;
    let marked = batch
        .iter()
        .map(|r| r.phone.as_deref())
        .zip(rows.iter_mut())
        .collect();
    mark_erased_pg(&pool, key.as_ref(), marked).await?;
    Ok(rows)
}

/// PostgreSQL: the erased numbers among a batch of reads' recipients (each
/// its contact's number, else the number asked for), looked up at once and
/// marked suppressed (`consent::tombstone`). Nothing is looked up without
/// an erasure key (no tombstone can exist then).
pub(super) async fn mark_erased_pg(
    pool: &sqlx::PgPool,
    key: Option<&ErasureKey>,
    rows: Vec<(Option<&str>, &mut FactRows)>,
) -> Result<(), sea_orm::DbErr> {
    let Some(key) = key else {
        return Ok(());
    };
    let hashes: Vec<Option<String>> = rows
        .iter()
        .map(|(phone, r)| facts::recipient_hash(key, r, *phone))
        .collect();
    let wanted: Vec<String> = hashes.iter().flatten().cloned().collect();
    let erased = tombstone::active_pg(pool, &wanted).await?;
    if erased.is_empty() {
        return Ok(());
    }
    for ((_, r), hash) in rows.into_iter().zip(hashes) {
        if let Some(at) = hash.and_then(|h| erased.get(&h)) {
            facts::mark_erased(r, *at);
        }
    }
    Ok(())
}

/// [`read_fact_rows`] for a stored message.
pub(super) async fn read_fact_rows_for(
    core: &Core,
    m: &outbound_message::Model,
) -> Result<FactRows, sea_orm::DbErr> {
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let key = m
        .contact_id
        .as_deref()
        .map_or(ContactKey::Nobody, ContactKey::Id);
    read_fact_rows(
        core,
        key,
        channel,
        m.template_name.as_deref(),
        m.purpose.as_deref(),
    )
    .await
}

/// Load every fact the gates need for a stored message.
pub(super) async fn load_facts(
    core: &Core,
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
    template: Option<&Template>,
    authorization: Option<Authorization>,
) -> Result<(MessageFacts, LoadedFacts, Loaded), sea_orm::DbErr> {
    let mut rows = read_fact_rows_for(core, m).await?;
    let template = match template {
        Some(t) => Some(t.clone()),
        None => rows.template.take().map(Template::from),
    };
    facts_from_rows(core, db, m, rows, template, authorization).await
}

/// The gates' facts for a message from the rows read for it and its
/// template.
pub(super) async fn facts_from_rows(
    core: &Core,
    db: &impl ConnectionTrait,
    m: &outbound_message::Model,
    rows: FactRows,
    template: Option<Template>,
    authorization: Option<Authorization>,
) -> Result<(MessageFacts, LoadedFacts, Loaded), sea_orm::DbErr> {
    let now = core.now();
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let recipient = PhoneNumber::parse_e164(&m.to_address).ok();
    let variables: BTreeMap<String, String> =
        serde_json::from_str(&m.variables).unwrap_or_default();
    let content = match &m.template_name {
        Some(name) if m.kind == "template" => MessageContent::Template {
            name: name.clone(),
            supplied: variables.keys().cloned().collect(),
        },
        _ => MessageContent::FreeForm,
    };
    let purpose = Purpose::from(m.source);
    let FactRows {
        contact,
        gate: state,
        sender: sender_row,
        purpose: purpose_row,
        ..
    } = rows;
    let facts = MessageFacts {
        channel,
        raw_to: m.to_address.clone(),
        recipient: recipient.clone(),
        content: content.clone(),
        purpose,
        consent_purpose: purpose_row
            .as_ref()
            .map(|p| p.name.clone())
            .or_else(|| m.purpose.clone())
            .or_else(|| template.as_ref().and_then(|t| t.purpose.clone())),
    };
    // (With no contact the statement found no consent, suppression or
    // window either.)
    let consent = state
        .consent_status()
        .zip(state.consent)
        .map(|(status, c)| ConsentFact {
            status,
            source: c.source,
            captured_at: c.captured_at,
            purpose: c.purpose,
        });
    let suppression = state.suppression.map(|s| SuppressionFact {
        reason: match s.source_ref {
            Some(r) => format!("{} {r}", s.reason),
            None => s.reason,
        },
        since: s.since,
        marketing_only: s.marketing_only,
        purpose: s.purpose,
    });
    let window_expires_at = state.window_expires_at;
    let authorization = match authorization {
        Some(a) => a,
        None => authorization_for(core, db, m, template.as_ref()).await?,
    };
    let (sender, sender_rate) = authz::sender_fact(
        authz::sender_key(core, channel).as_ref(),
        sender_row.as_ref(),
    );
    let time_zone = local_zones(
        core,
        contact.as_ref().and_then(|c| c.time_zone.as_deref()),
        recipient.as_ref(),
    );
    let business_initiated = channel == Channel::WhatsApp
        && matches!(content, MessageContent::Template { .. })
        && !gates::in_window(window_expires_at, now);
    let tier = match (&recipient, business_initiated) {
        (Some(r), true) => core.limits.tier_fact(r.as_str(), now).await,
        _ => TierFact {
            used: 0,
            limit: core.limits.tier_limit(),
            recipient_counted: false,
            next_free_at: None,
        },
    };
    Ok((
        facts,
        LoadedFacts {
            purpose: purpose_row.map(|p| gates::PurposeFact {
                name: p.name,
                marketing: p.marketing,
            }),
            consent,
            suppression,
            window_expires_at,
            template: template.as_ref().map(|t| t.fact()),
            authorization,
            sender,
            time_zone,
            tier,
            recipient_next_at: None,
        },
        Loaded {
            template,
            sender_rate,
        },
    ))
}

/// A recipient's local time zone(s): the contact's own, else inferred from
/// the number, else the default setting.
pub fn local_zones(
    core: &Core,
    stored: Option<&str>,
    number: Option<&PhoneNumber>,
) -> gates::LocalZones {
    if let Some(tz) = stored.and_then(|tz| tz.parse().ok()) {
        return gates::LocalZones::Contact(tz);
    }
    match number.and_then(|n| crate::time_zones::for_e164(n.as_str())) {
        Some(z) => gates::LocalZones::Inferred {
            zones: z.zones(),
            prefix: z.prefix(),
        },
        None => gates::LocalZones::Default(core.settings.default_time_zone),
    }
}

/// The facts the gates would see for `m`, a message that is NOT stored (a
/// campaign review's dry run), loaded exactly as the send path loads them.
/// Reads only: no row is written and no limit is reserved.
pub async fn dry_run_facts(
    core: &Core,
    m: &outbound_message::Model,
    template: Option<&Template>,
    authorization: Authorization,
) -> Result<(MessageFacts, LoadedFacts), sea_orm::DbErr> {
    load_facts(core, &core.db.conn, m, template, Some(authorization))
        .await
        .map(|(f, l, _)| (f, l))
}

/// Write the evaluation's audit row and the state it leads to, and enqueue.
/// With `claim_due_by` the write is also the claim
/// ([`crate::store::db::Db::write_claiming`]): `None` when the message was no
/// longer waiting (another worker has it), and nothing was written.
#[allow(clippy::too_many_arguments)]
pub(super) async fn finish_evaluation(
    core: &Core,
    m: &outbound_message::Model,
    stage: Stage,
    decision: &GateDecision,
    actor: &str,
    now: DateTime<Utc>,
    window: Option<DateTime<Utc>>,
    claim_due_by: Option<DateTime<Utc>>,
) -> Result<Option<MessageState>, sea_orm::DbErr> {
    let outcome = EvaluationOutcome::of(stage, decision);
    let (state, reason, until) = (outcome.state, outcome.reason, outcome.until);
    let update = EvaluationUpdate {
        id: m.id.clone(),
        state: state.as_str().into(),
        block_reason: reason.map(str::to_string),
        defer_until: until,
        in_window: gates::in_window(window, now),
        updated_at: now,
        queued_at: (state == MessageState::Queued).then_some(now),
        // The worker calls the provider next: count the attempt with this
        // write, so a crash during the call still shows it.
        attempts_inc: i32::from(state == MessageState::Sending),
        claim_due_by,
    };
    let rows = RowWrite {
        tool_calls: vec![audit::evaluation_row(m, stage, decision, actor, now).try_into_model()?],
        evaluations: vec![update],
        ..Default::default()
    };
    if claim_due_by.is_some() {
        if !core.db.write_claiming(rows).await? {
            return Ok(None);
        }
    } else {
        core.db.write_rows(rows).await?;
    }
    outcome.enqueue(core, &m.id).await;
    Ok(Some(state))
}

/// The state an evaluation leads to.
pub(super) struct EvaluationOutcome {
    pub(super) state: MessageState,
    pub(super) reason: Option<&'static str>,
    pub(super) until: Option<DateTime<Utc>>,
}

impl EvaluationOutcome {
    pub(super) fn of(stage: Stage, decision: &GateDecision) -> Self {
        let (state, reason, until) = match decision.decision {
            Decision::Pass => (
                if stage == Stage::Worker {
                    MessageState::Sending
                } else {
                    MessageState::Queued
                },
                None,
                None,
            ),
            Decision::Block { reason } => (MessageState::Blocked, Some(reason.code()), None),
            Decision::Defer { reason, until } => {
                (MessageState::Deferred, Some(reason.code()), Some(until))
            }
        };
        EvaluationOutcome {
            state,
            reason,
            until,
        }
    }

    pub(super) async fn enqueue(&self, core: &Core, id: &str) {
        match self.state {
            MessageState::Queued => enqueue(core, id, None).await,
            MessageState::Deferred => enqueue(core, id, self.until).await,
            _ => {}
        }
    }
}

pub(super) async fn enqueue(core: &Core, id: &str, at: Option<DateTime<Utc>>) {
    // The message's state is the record: if the queue is down, housekeeping
    // re-enqueues waiting messages, so this failure is logged, not raised.
    if let Err(e) = core.queue.enqueue_send(id.to_string(), at).await {
        tracing::error!(message_id = %id, error = %e, "could not enqueue; housekeeping will retry");
    }
}

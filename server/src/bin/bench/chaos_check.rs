//! The invariants `heimdall-bench chaos` checks after its run, from the
//! database and the sandbox's record.

use heimdall_domain::compliance::message_state::MessageState;
use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::Value;

use heimdall_domain::entities::{alert, contact, outbound_message, tier_usage, tool_call};
use heimdall_domain::Db;

use crate::chaos::{FAULT_NUMBERS, WHATSAPP_FROM};
use crate::chaos_load::HELD_BY_TIER;

/// The invariants' counts, in order: (name, count, must be zero).
pub struct Report {
    pub rows: Vec<(String, u64, bool)>,
    pub messages: u64,
    pub provider_records: u64,
    pub busiest: u64,
    /// Unique people the sandbox took a business-initiated message for.
    pub tier_people: u64,
}

impl Report {
    pub fn get(&self, prefix: &str) -> u64 {
        self.rows
            .iter()
            .find(|(n, _, _)| n.contains(prefix))
            .map(|r| r.1)
            .unwrap_or(0)
    }
}

pub async fn check(
    db: &Db,
    campaign_id: &str,
    sandbox: &[Value],
    stops: &HashMap<String, DateTime<Utc>>,
    rate: u32,
    tier: usize,
) -> anyhow::Result<Report> {
    let messages = outbound_message::Entity::find().all(&db.conn).await?;
    let contacts = contact::Entity::find().all(&db.conn).await?;
    let alerts = alert::Entity::find().all(&db.conn).await?;
    let by_id: HashMap<&str, &outbound_message::Model> =
        messages.iter().map(|m| (m.id.as_str(), m)).collect();
    let mut rows = Vec::new();
    let mut states: BTreeMap<&str, u64> = BTreeMap::new();
    for m in &messages {
        *states.entry(m.state.as_str()).or_default() += 1;
    }
    let states_text: Vec<String> = states.iter().map(|(s, c)| format!("{s} {c}")).collect();
    println!("messages by state: {}", states_text.join(", "));

    // 1. Every message ends in a terminal or explained state.
    let unexplained = messages
        .iter()
        .filter(|m| match m.state.as_str() {
            "sent" | "delivered" | "read" => false,
            // Taken by the provider; its status callbacks were lost with a process.
            "sending" => m.provider_sid.is_none(),
            "blocked" => m.block_reason.is_none(),
            // Waiting, rightly, for the messaging tier to free a place.
            "deferred" => m.block_reason.as_deref() != Some(HELD_BY_TIER),
            "failed" | "undelivered" => m.error_code.is_none() && m.error_message.is_none(),
            "cancelled" => m.error_message.is_none() && m.block_reason.is_none(),
            _ => true,
        })
        .count() as u64;
    rows.push((
        "unexplained (not terminal, or terminal without a reason)".into(),
        unexplained,
        true,
    ));
    let accepted_no_status = messages
        .iter()
        .filter(|m| m.state == MessageState::Sending && m.provider_sid.is_some())
        .count() as u64;
    rows.push((
        "taken by the provider, status callbacks lost (explained)".into(),
        accepted_no_status,
        false,
    ));
    let needs_person: Vec<&outbound_message::Model> = messages
        .iter()
        .filter(|m| m.state == MessageState::Failed)
        .collect();
    let alerted: HashSet<Option<i32>> = alerts.iter().map(|a| a.error_code).collect();
    let unalerted = needs_person
        .iter()
        .filter(|m| !alerted.contains(&m.error_code))
        .count() as u64;
    rows.push((
        "failed (needs a person)".into(),
        needs_person.len() as u64,
        false,
    ));
    rows.push(("failed with no alert of its kind".into(), unalerted, true));

    // 2. Nothing reaches the sandbox twice.
    let outbound: Vec<&Value> = sandbox
        .iter()
        .filter(|m| m["direction"].as_str() == Some("outbound-api"))
        .collect();
    let mut per_mid: HashMap<String, u64> = HashMap::new();
    let mut per_campaign_to: HashMap<(String, String), u64> = HashMap::new();
    let mut times: Vec<DateTime<Utc>> = Vec::new();
    let mut after_stop = 0u64;
    let mut in_flight = 0u64;
    // When each message's request left (its attempts' audit rows are dated at the call).
    let attempts = tool_call::Entity::find()
        .filter(tool_call::Column::Kind.eq("send_attempt"))
        .all(&db.conn)
        .await?;
    let mut left_at: HashMap<&str, DateTime<Utc>> = HashMap::new();
    for a in &attempts {
        if let Some(mid) = a.message_id.as_deref() {
            let e = left_at.entry(mid).or_insert(a.created_at);
            *e = (*e).max(a.created_at);
        }
    }
    let mut confirmations = 0u64;
    for m in &outbound {
        let mid = message_id_of(m);
        *per_mid.entry(mid.clone()).or_default() += 1;
        let to = m["to"]
            .as_str()
            .unwrap_or_default()
            .trim_start_matches("whatsapp:")
            .to_string();
        if let Some(cid) = by_id.get(mid.as_str()).and_then(|r| r.campaign_id.clone()) {
            *per_campaign_to.entry((cid, to.clone())).or_default() += 1;
        }
        let created: Option<DateTime<Utc>> = m["date_created"]
            .as_str()
            .and_then(|s| DateTime::parse_from_rfc3339(s).ok())
            .map(|d| d.with_timezone(&Utc));
        if let Some(at) = created {
            if m["from"]
                .as_str()
                .map(|f| f.trim_start_matches("whatsapp:"))
                == Some(WHATSAPP_FROM)
            {
                times.push(at);
            }
            if let Some(answered) = stops.get(&to).filter(|answered| at > **answered) {
                // Heimdall's own answer to the STOP (the opt-out confirmation)
                // is the one message that may follow it.
                if by_id.get(mid.as_str()).map(|r| r.source.as_str()) == Some("compliance") {
                    confirmations += 1;
                } else if left_at
                    .get(mid.as_str())
                    .is_some_and(|left| *left <= *answered + in_flight_allowance())
                {
                    // Its request left (its last look at consent came before the STOP
                    // was recorded) and reached the sandbox after the answer.
                    in_flight += 1;
                } else {
                    after_stop += 1;
                }
            }
        }
    }
    let twice = per_mid
        .values()
        .filter(|c| **c > 1)
        .map(|c| c - 1)
        .sum::<u64>()
        + per_campaign_to
            .values()
            .filter(|c| **c > 1)
            .map(|c| c - 1)
            .sum::<u64>();
    let on_fault_numbers = outbound
        .iter()
        .filter(|m| {
            FAULT_NUMBERS.contains(
                &m["to"]
                    .as_str()
                    .unwrap_or_default()
                    .trim_start_matches("whatsapp:"),
            )
        })
        .count();
    rows.push((
        format!("reached the sandbox twice (same message, or same person and campaign; {on_fault_numbers} records on fault numbers)"),
        twice,
        true,
    ));
    rows.push((
        "STOP confirmations sent after the STOP (expected, one each)".into(),
        confirmations,
        false,
    ));
    rows.push((
        "in flight when the STOP came: left before it was answered, arrived after (explained)"
            .into(),
        in_flight,
        false,
    ));
    rows.push((
        "reached the sandbox after its STOP was answered (other than the confirmation)".into(),
        after_stop,
        true,
    ));

    // 3. The sender's rate, in the busiest one-second window across all processes: of the
    // requests as they left (each attempt's audit row is dated at its call, accepted or
    // not), and, printed beside it, of the messages as the sandbox took them in. On this
    // two-core machine the sandbox is one process among eight, and its arrivals bunch when
    // it is not scheduled for a moment; the limiter controls the departures.
    let mut departures: Vec<DateTime<Utc>> = attempts
        .iter()
        .filter(|a| a.channel.as_deref() == Some("whatsapp") && a.actor == "worker")
        // (not the attempts Heimdall failed itself, before any call)
        .filter(|a| !a.detail.as_deref().unwrap_or("").starts_with("heimdall:"))
        .map(|a| a.created_at)
        .collect();
    let busiest = busiest_second(&mut departures);
    let arrivals = busiest_second(&mut times);
    rows.push((
        format!("busiest one-second window of requests sent above the sender rate of {rate}/s ({busiest} sent; {arrivals} taken in by the sandbox)"),
        (busiest as u64).saturating_sub(u64::from(rate)),
        true,
    ));

    // 4. The messaging tier: unique people reached by business-initiated messages
    // (everything but Heimdall's own compliance answers, which go inside the window the
    // person's STOP opened), as the tier's record counts them and as the sandbox took
    // them in, never above the limit; the messages held for it are explained.
    let counted: HashSet<String> = tier_usage::Entity::find()
        .all(&db.conn)
        .await?
        .into_iter()
        .map(|u| u.recipient)
        .collect();
    let mut reached: HashSet<&str> = HashSet::new();
    for m in &outbound {
        let mid = message_id_of(m);
        if by_id.get(mid.as_str()).map(|r| r.source.as_str()) != Some("compliance") {
            if let Some(to) = m["to"].as_str() {
                reached.insert(to.trim_start_matches("whatsapp:"));
            }
        }
    }
    let held = messages
        .iter()
        .filter(|m| {
            m.state == MessageState::Deferred && m.block_reason.as_deref() == Some(HELD_BY_TIER)
        })
        .count() as u64;
    rows.push((
        format!(
            "unique people counted in the tier above its limit of {tier} ({} counted)",
            counted.len()
        ),
        (counted.len() as u64).saturating_sub(tier as u64),
        true,
    ));
    rows.push((
        format!(
            "unique people the sandbox took business-initiated messages for above the tier ({} reached)",
            reached.len()
        ),
        (reached.len() as u64).saturating_sub(tier as u64),
        true,
    ));
    rows.push((
        "messages held for the tier (explained: they wait for a place)".into(),
        held,
        false,
    ));

    // 5. Each campaign recipient fanned out exactly once.
    let mut per_contact: HashMap<&str, u64> = HashMap::new();
    for m in messages.iter().filter(|m| {
        m.campaign_id.as_deref() == Some(campaign_id)
            && m.fallback_of.is_none()
            && m.part_of.is_none()
    }) {
        if let Some(c) = m.contact_id.as_deref() {
            *per_contact.entry(c).or_default() += 1;
        }
    }
    let audience: Vec<&contact::Model> = contacts
        .iter()
        .filter(|c| c.tags.contains("chaos"))
        .collect();
    let skipped = audience
        .iter()
        .filter(|c| !per_contact.contains_key(c.id.as_str()))
        .count() as u64;
    let doubled = per_contact.values().filter(|c| **c > 1).count() as u64;
    rows.push(("campaign recipients skipped".into(), skipped, true));
    rows.push(("campaign recipients fanned out twice".into(), doubled, true));
    Ok(Report {
        rows,
        messages: messages.len() as u64,
        provider_records: outbound.len() as u64,
        busiest: busiest as u64,
        tier_people: reached.len() as u64,
    })
}

/// How long after its last look at consent a request may leave: the look is made
/// 25 ms before the call's slot (`RECHECK_LEAD`), or, without a wait, is the worker's
/// evaluation at most 50 ms before it (`RECHECK_AFTER_WAIT`), and a call may go up to
/// 9 ms after its slot (`SLOT_TOLERANCE`): 59 ms, plus the look's own read, which saw
/// the database as it was when the read began. A request that left later than this
/// after the STOP was answered (so, recorded) was sent against it.
fn in_flight_allowance() -> chrono::Duration {
    chrono::Duration::milliseconds(100)
}

/// Heimdall's id of a message the sandbox took (its status callback names it).
fn message_id_of(m: &Value) -> String {
    m["status_callback"]
        .as_str()
        .and_then(|u| url::Url::parse(u).ok())
        .and_then(|u| {
            u.query_pairs()
                .find(|(k, _)| k == "mid")
                .map(|(_, v)| v.to_string())
        })
        .unwrap_or_default()
}

/// The most times in any one-second window.
fn busiest_second(times: &mut [DateTime<Utc>]) -> usize {
    times.sort();
    let mut busiest = 0usize;
    let mut j = 0;
    for i in 0..times.len() {
        while times[i] - times[j] >= chrono::Duration::seconds(1) {
            j += 1;
        }
        busiest = busiest.max(i - j + 1);
    }
    busiest
}

//! What an approver reviews: the recipients and their variables, sample
//! renders, the dry-run of the gates and the cost.

use super::*;
use crate::compliance::message_source::MessageSource;

/// The contacts a campaign goes to, and the numbers of a `Phones` audience
/// that no longer match a contact.
pub(super) async fn recipients(
    core: &Core,
    audience: &Audience,
) -> Result<(Vec<Contact>, Vec<RefusedNumber>), DbErr> {
    match audience {
        Audience::Tags { tags } => {
            let mut found = contacts::with_tags(core, tags).await?;
            // Ids are time-ordered: a stable order when creation times tie.
            found.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
            Ok((found, vec![]))
        }
        Audience::Phones { phones } => {
            let mut by_phone: HashMap<String, contact::Model> = HashMap::new();
            for chunk in phones.chunks(500) {
                for c in contact::Entity::find()
                    .filter(contact::Column::PhoneE164.is_in(chunk.to_vec()))
                    .all(&core.db.conn)
                    .await?
                {
                    by_phone.insert(c.phone_e164.clone(), c);
                }
            }
            let mut found = Vec::new();
            let mut missing = Vec::new();
            let mut seen = BTreeSet::new();
            for p in phones {
                if !seen.insert(p.as_str()) {
                    continue;
                }
                match by_phone.get(p) {
                    Some(c) => found.push(Contact::from(c.clone())),
                    None => missing.push(RefusedNumber {
                        number: p.clone(),
                        why: "not a contact".into(),
                    }),
                }
            }
            Ok((found, missing))
        }
    }
}

/// A contact's values for the mapped variables, and the mapped fields it
/// lacks (sent as empty text).
pub fn variables_for(
    mapping: &BTreeMap<String, VariableSource>,
    c: &Contact,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut missing = Vec::new();
    for (var, source) in mapping {
        let value = match source {
            VariableSource::Value(v) => Some(v.clone()),
            VariableSource::Field(f) => match f.as_str() {
                "name" => c.name.clone().filter(|n| !n.trim().is_empty()),
                "phone" => Some(c.phone.clone()),
                key => c.attributes.get(key).cloned(),
            },
        };
        match value {
            Some(v) => {
                values.insert(var.clone(), v);
            }
            None => {
                if let VariableSource::Field(f) = source {
                    missing.push(f.clone());
                }
                values.insert(var.clone(), String::new());
            }
        }
    }
    (values, missing)
}

/// [`review_by`] without a known actor (recorded as `unattributed`).
pub async fn review(core: &Core, id: &str, samples: usize) -> Result<Review, CampaignError> {
    review_by(core, None, id, samples).await
}

/// The review screen: audience size, sample renders, the gate pipeline's
/// dry run for every recipient, and the estimated cost. Writes no
/// `tool_calls` row (no message is evaluated) but one staff audit row
/// "campaign reviewed".
pub async fn review_by(
    core: &Core,
    actor: Option<&StaffUser>,
    id: &str,
    samples: usize,
) -> Result<Review, CampaignError> {
    let m = load(core, id).await?;
    let template = template_of(core, &m).await?;
    let channel: Channel = m.channel.parse().unwrap_or(Channel::WhatsApp);
    let mapping = parse_variables(&m.variable_mapping);
    let audience = parse_audience(&m.audience);
    let (contacts, unresolved) = recipients(core, &audience).await?;
    // What an approval of this review binds to (as [`content_snapshot`]).
    let content_hash = ContentSnapshot {
        channel,
        template_name: template.name.clone(),
        template_digest: template.digest(),
        variables: mapping.clone(),
        audience,
        audience_count: contacts.len(),
        scheduled_at: m.scheduled_at,
    }
    .hash();
    let now = core.now();
    // The dry run evaluates every recipient's gates: the same content
    // looked at again within a short while is answered from what was
    // computed (a viewer reloading the page costs one audience read, not
    // one facts read per recipient).
    let cache_key = (m.id.clone(), content_hash.clone(), samples);
    let cached = reviews()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&cache_key)
        .filter(|(at, _)| now - *at < REVIEW_FRESH)
        .map(|(_, r)| r.clone());
    if let Some(review) = cached {
        record_review(core, actor, &m.id, &review, now).await?;
        return Ok(review);
    }
    let policy = outbound::policy(core);
    // As it would be once approved by someone other than its authors.
    let authorization = Authorization::Campaign {
        status: CampaignStatus::Approved,
        authors: authz::campaign_authors(&m),
        approved_by: Some("review:another approver".into()),
        approved_template: None,
    };
    let category = templates::parse_category(&template.category);
    let price = price_for(channel, category);
    let mut dry = DryRun::default();
    let mut missing_fields: BTreeMap<String, usize> = BTreeMap::new();
    let mut sample_rows = Vec::new();
    let mut billable = 0usize;
    let mut segments = 0usize;
    for c in &contacts {
        let (values, missing) = variables_for(&mapping, c);
        for f in missing {
            *missing_fields.entry(f).or_default() += 1;
        }
        let text = template.render(&values);
        if sample_rows.len() < samples.min(MAX_SAMPLES) {
            sample_rows.push(SampleRender {
                contact_id: c.id.clone(),
                phone: outbound::mask(&c.phone),
                name: c.name.clone(),
                text: text.clone(),
            });
        }
        let message = unsent_message(&m, &template, channel, c, &values, now);
        let (facts, loaded) =
            outbound::dry_run_facts(core, &message, Some(&template), authorization.clone()).await?;
        let decision = gates::evaluate(&facts, &loaded, now, &policy);
        match decision.decision {
            Decision::Pass => dry.would_pass += 1,
            Decision::Block { reason } => {
                *dry.would_block.entry(reason.code().into()).or_default() += 1
            }
            Decision::Defer { reason, .. } => {
                *dry.would_defer.entry(reason.code().into()).or_default() += 1
            }
        }
        if !matches!(decision.decision, Decision::Block { .. }) {
            billable += 1;
            if price.per_segment {
                segments += sms_segments(&text).segments;
            }
        }
    }
    let total = if price.per_segment {
        price.usd * segments as f64
    } else {
        price.usd * billable as f64
    };
    let per_message = if billable > 0 {
        total / billable as f64
    } else if price.per_segment {
        price.usd * sms_segments(&template.body).segments as f64
    } else {
        price.usd
    };
    let review = Review {
        campaign_id: m.id.clone(),
        audience_size: contacts.len(),
        samples: sample_rows,
        dry_run: dry,
        estimated_cost: Cost {
            per_message: round4(per_message),
            currency: "USD",
            total: round4(total),
            billable_messages: billable,
            sms_segments: price.per_segment.then_some(segments),
        },
        missing_fields,
        unresolved,
        content_hash,
    };
    reviews()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .put(cache_key, (now, review.clone()));
    record_review(core, actor, &m.id, &review, now).await?;
    Ok(review)
}

/// How long a computed review answers for the same content.
pub(super) const REVIEW_FRESH: Duration = Duration::minutes(2);

/// Reviews computed lately, by (campaign, content hash, samples).
pub(super) type ReviewCache =
    std::sync::Mutex<lru::LruCache<(String, String, usize), (DateTime<Utc>, Review)>>;

pub(super) fn reviews() -> &'static ReviewCache {
    static CACHE: std::sync::OnceLock<ReviewCache> = std::sync::OnceLock::new();
    CACHE.get_or_init(|| {
        std::sync::Mutex::new(lru::LruCache::new(
            std::num::NonZeroUsize::new(256).expect("positive"),
        ))
    })
}

/// The staff audit row of a review (every look is recorded, cached or not).
pub(super) async fn record_review(
    core: &Core,
    actor: Option<&StaffUser>,
    id: &str,
    review: &Review,
    now: DateTime<Utc>,
) -> Result<(), DbErr> {
    audit::record_staff_action(
        &core.db.conn,
        actor.map(|a| a.email.as_str()).unwrap_or("unattributed"),
        "campaign reviewed",
        Some(&target(id)),
        Some(serde_json::json!({
            "audience_size": review.audience_size,
            "would_pass": review.dry_run.would_pass,
            "would_block": review.dry_run.would_block,
            "would_defer": review.dry_run.would_defer,
            "content_hash": review.content_hash,
        })),
        None,
        now,
    )
    .await
}

pub(super) fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

/// The message a recipient would get, in memory only (never stored).
pub(super) fn unsent_message(
    m: &campaign::Model,
    template: &Template,
    channel: Channel,
    c: &Contact,
    values: &BTreeMap<String, String>,
    now: DateTime<Utc>,
) -> outbound_message::Model {
    outbound_message::Model {
        contact_id: Some(c.id.clone()),
        channel: channel.as_str().into(),
        kind: "template".into(),
        template_id: Some(template.id.clone()),
        template_name: Some(template.name.clone()),
        variables: serde_json::to_string(values).unwrap_or_else(|_| "{}".into()),
        source: MessageSource::Campaign,
        campaign_id: Some(m.id.clone()),
        actor: format!("campaign:{}", m.id),
        ..crate::sending::outbound::pending_message(
            format!("dry-run:{}:{}", m.id, c.id),
            c.phone.clone(),
            now,
        )
    }
}

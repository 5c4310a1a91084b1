//! "Which consent and which suppression count" is written once in Rust
//! (`consent::current_consent`, `consent::active_suppression`, what the
//! ledger and the console read) and once in SQL (the gates' facts
//! statements, `sending::facts`: one statement per message, and on
//! PostgreSQL one for many). This test generates ledgers (consents and
//! suppressions on both channels and on `all`, with ties in time, revoked
//! and lifted ones) and checks that every path picks the same rows, and
//! that the console's contact page shows what the gates read.

use chrono::{Duration, TimeZone, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter, Set};

use heimdall_domain::channel::Channel;
use heimdall_domain::compliance::gates::ConsentStatus;
use heimdall_domain::consent;
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::{consent as consent_row, suppression};
use heimdall_domain::sending::facts::{self, ContactKey, FactRead, GateState};
use heimdall_domain::testing::TestEnv;

/// A small deterministic generator (xorshift64*): the same ledgers every run.
struct Gen(u64);

impl Gen {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n
    }
    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.below(from.len() as u64) as usize]
    }
}

const CASES: u64 = 80;

/// What a path says about one contact on one channel: the consent
/// (status, source, when) and the suppression (reason, when, marketing only).
type Picked = (
    Option<(ConsentStatus, String, chrono::DateTime<Utc>)>,
    Option<(String, chrono::DateTime<Utc>, String)>,
);

fn from_gate(g: &GateState) -> Picked {
    (
        g.consent
            .as_ref()
            .map(|c| (g.consent_status().unwrap(), c.source.clone(), c.captured_at)),
        g.suppression.as_ref().map(|s| {
            let scope = match (&s.purpose, s.marketing_only) {
                (Some(p), _) => format!("purpose:{p}"),
                (None, true) => "marketing".to_string(),
                (None, false) => "all".to_string(),
            };
            (s.reason.clone(), s.since, scope)
        }),
    )
}

#[tokio::test]
async fn the_rust_and_sql_selections_pick_the_same_consent_and_suppression() {
    let env = TestEnv::new(&[]).await;
    let db = &env.core.db.conn;
    let base = Utc.with_ymd_and_hms(2026, 3, 1, 9, 0, 0).unwrap();
    let mut g = Gen(0x9E37_79B9_7F4A_7C15);
    let mut reads = Vec::new();
    let mut expected = Vec::new();
    let mut seen_suppressed = 0;
    let mut seen_marketing_only = 0;
    for case in 0..CASES {
        let (contact, _) = contacts::upsert(
            &env.core,
            &ContactInput {
                phone: format!("+4791{case:06}"),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        // Few distinct times, so rows tie on time and the id decides.
        let at = |g: &mut Gen| base + Duration::minutes(g.below(3) as i64);
        for i in 0..g.below(5) {
            let captured = at(&mut g);
            consent_row::ActiveModel {
                id: Set(format!("c{case:03}-{i}-{}", g.below(1000))),
                contact_id: Set(contact.id.clone()),
                channel: Set(g.pick(&["whatsapp", "sms"]).into()),
                status: Set(g.pick(&ConsentStatus::ALL)),
                source: Set(g.pick(&["api", "web_form", "keyword", "import"]).into()),
                captured_at: Set(captured),
                recorded_by: Set("test".into()),
                created_at: Set(captured),
                revoked_at: Set((g.below(4) == 0).then_some(captured)),
                strength: Set("declared".into()),
                purpose: Set(g
                    .pick(&[None, Some("service"), Some("marketing")])
                    .map(String::from)),
                ..Default::default()
            }
            .insert(db)
            .await
            .unwrap();
        }
        for i in 0..g.below(4) {
            let created = at(&mut g);
            suppression::ActiveModel {
                id: Set(format!("s{case:03}-{i}-{}", g.below(1000))),
                contact_id: Set(contact.id.clone()),
                channel: Set(g.pick(&["whatsapp", "sms", "all"]).into()),
                reason: Set(format!("reason {i}")),
                created_by: Set("test".into()),
                created_at: Set(created),
                lifted_at: Set((g.below(3) == 0).then_some(created)),
                scope: Set(g
                    .pick(&["all", "marketing", "purpose:service", "purpose:marketing"])
                    .into()),
                ..Default::default()
            }
            .insert(db)
            .await
            .unwrap();
        }
        let purposes = consent::purposes::list(db).await.unwrap();
        for (channel, purpose) in [Channel::WhatsApp, Channel::Sms]
            .into_iter()
            .flat_map(|c| purposes.iter().map(move |p| (c, p)))
        {
            // Rust: the ledger's reads.
            let consent = consent::current_consent_for(db, &contact.id, channel, purpose)
                .await
                .unwrap()
                .map(|m| (consent::consent_status(&m), m.source, m.captured_at));
            let stops_all = consent::active_suppression(db, &contact.id, channel)
                .await
                .unwrap();
            // SQL: the gates' statement for one message.
            let one = facts::fact_rows(
                db,
                ContactKey::Id(&contact.id),
                channel,
                None,
                Some(&purpose.name),
                None,
            )
            .await
            .unwrap();
            let sql = from_gate(&one.gate);
            assert_eq!(sql.0, consent, "case {case} {channel:?}: the consent");
            match &sql.1 {
                Some((reason, since, scope)) if scope == "all" => {
                    seen_suppressed += 1;
                    let rust = stops_all.expect("Rust finds the suppression SQL stops on");
                    assert_eq!(
                        (&rust.reason, &rust.created_at),
                        (reason, since),
                        "case {case} {channel:?}: the suppression"
                    );
                }
                Some((_, _, scope)) => {
                    seen_marketing_only += 1;
                    assert!(
                        scope == "marketing" || *scope == format!("purpose:{}", purpose.name),
                        "case {case} {channel:?}: a suppression of another purpose ({scope}) read for {}",
                        purpose.name
                    );
                    assert!(
                        stops_all.is_none(),
                        "case {case} {channel:?}: SQL reads a narrower one first, so none stops everything"
                    );
                    // A purpose's own suppression comes before marketing's.
                    if scope == "marketing" {
                        let own = suppression::Entity::find()
                            .filter(suppression::Column::ContactId.eq(&contact.id))
                            .filter(suppression::Column::Channel.is_in([channel.as_str(), "all"]))
                            .filter(suppression::Column::LiftedAt.is_null())
                            .filter(
                                suppression::Column::Scope.eq(format!("purpose:{}", purpose.name)),
                            )
                            .one(db)
                            .await
                            .unwrap();
                        assert!(
                            own.is_none(),
                            "case {case}: the purpose's own suppression first"
                        );
                    }
                }
                None => assert!(stops_all.is_none(), "case {case} {channel:?}"),
            }
            // The console's contact page: the gates' answer, not its own.
            let standing = heimdall_domain::reports::contact_timeline(&env.core, &contact.id)
                .await
                .unwrap()
                .standing
                .into_iter()
                .find(|s| s.channel == channel && s.purpose == purpose.name)
                .expect("a standing per channel and purpose");
            assert_eq!(standing.consent, sql.0.as_ref().map(|c| c.0), "case {case}");
            assert_eq!(
                standing.suppression.map(|v| (
                    v.suppression.reason,
                    v.suppression.created_at,
                    v.suppression.scope
                )),
                sql.1,
                "case {case} {channel:?}: the console's suppression"
            );
            reads.push(FactRead::new(
                ContactKey::Id(&contact.id),
                channel,
                None,
                Some(&purpose.name),
            ));
            expected.push(sql);
        }
    }
    // The generator reached every kind of answer.
    assert!(seen_suppressed > 10 && seen_marketing_only > 3);
    assert!(expected.iter().any(|p| p.0.is_none()));
    assert!(expected
        .iter()
        .any(|p| p.0.as_ref().is_some_and(|c| c.0 == ConsentStatus::Active)));
    // SQL for many messages at once (PostgreSQL's merged reads).
    if let Some(pool) = env.core.db.postgres_pool() {
        let many = facts::fact_rows_many(pool, &reads, &[]).await.unwrap();
        let many: Vec<Picked> = many.iter().map(|r| from_gate(&r.gate)).collect();
        assert_eq!(many, expected);
    }
}

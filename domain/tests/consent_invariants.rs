//! The consent ledger's invariants under random interleavings of events,
//! on real storage (SQLite by default; PostgreSQL and Redis when the run
//! asks for them).
//!
//! For a few people, proptest generates sequences of: public form
//! submissions by anyone (single and double opt-in), inbound keywords and
//! chatter (STOP, START, UNSTOP, YES, HELP, "hello", quick-reply buttons),
//! provider opt-outs, staff suppressions, API consents and revocations,
//! confirmation links clicked, sends from the API, the inbox and campaigns
//! (drafted, edited, submitted and approved by different staff), workers
//! draining the queue, the clock moving and the process restarting. After
//! every step it asserts:
//!
//! 1. no message reached the provider for a contact who, at the moment of
//!    the call, was suppressed or had no active consent on the channel
//!    (checked inside the provider call against the database as it is
//!    then; the reply to the person's own keyword, a confirmation request
//!    for a pending consent, and an inbox reply to someone who wrote are
//!    the rule's own exceptions, each still refused after a STOP);
//! 2. no suppression was lifted without proof from the number: every
//!    lifted suppression names an inbound opt-in keyword from that number;
//! 3. no campaign was approved by one of its authors.
//!
//! `HEIMDALL_INVARIANT_CASES` sets the number of cases (default 32).

use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use chrono::Duration;
use proptest::prelude::*;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use heimdall_domain::access::accounts::{Role, StaffUser};
use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::campaigns::{self, Audience, CampaignDraft, VariableSource};
use heimdall_domain::compliance::gates::ConsentStatus;
use heimdall_domain::consent::{self, ConsentEvidence, ConsentSource, OptOutSource, Scope};
use heimdall_domain::contacts::{self, ContactInput};
use heimdall_domain::entities::{campaign, inbound_message, outbound_message, suppression};
use heimdall_domain::inbound::{self, InboundMessage};
use heimdall_domain::optin::{self, ChannelText, FormInput, RequestEvidence, SubmissionInput};
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::{templates, Channel, Core, PhoneNumber};

const PEOPLE: usize = 3;

fn phone(who: usize) -> String {
    format!("+479100000{who}")
}

#[derive(Debug, Clone, Copy)]
enum Said {
    Stop,
    Start,
    Unstop,
    Yes,
    Help,
    Hello,
    /// A quick-reply button reading "Yes" that answers another question.
    YesButton,
    /// A button reading "Stop" with an opaque payload.
    StopButton,
}

#[derive(Debug, Clone, Copy)]
enum Step {
    /// Anyone types the person's number on a public form.
    Form {
        who: usize,
        channel: Channel,
        double: bool,
    },
    Inbound {
        who: usize,
        channel: Channel,
        said: Said,
    },
    ProviderOptOut {
        who: usize,
        channel: Channel,
    },
    StaffSuppress {
        who: usize,
        all: bool,
    },
    ApiConsent {
        who: usize,
        channel: Channel,
        pending: bool,
    },
    ApiRevoke {
        who: usize,
        channel: Channel,
    },
    /// The confirmation link last sent to the person is opened.
    ConfirmLink {
        who: usize,
    },
    Send {
        who: usize,
        channel: Channel,
    },
    InboxReply {
        who: usize,
    },
    Draft {
        author: usize,
    },
    Edit {
        editor: usize,
    },
    Submit {
        by: usize,
    },
    Approve {
        by: usize,
    },
    FanOut,
    Drain,
    Advance {
        minutes: i64,
    },
    Restart,
}

fn channel() -> impl Strategy<Value = Channel> {
    prop_oneof![Just(Channel::WhatsApp), Just(Channel::Sms)]
}

fn said() -> impl Strategy<Value = Said> {
    prop_oneof![
        Just(Said::Stop),
        Just(Said::Start),
        Just(Said::Unstop),
        Just(Said::Yes),
        Just(Said::Help),
        Just(Said::Hello),
        Just(Said::YesButton),
        Just(Said::StopButton),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    let who = 0..PEOPLE;
    let staff = 0..3usize;
    prop_oneof![
        3 => (who.clone(), channel(), any::<bool>()).prop_map(|(who, channel, double)| Step::Form { who, channel, double }),
        4 => (who.clone(), channel(), said()).prop_map(|(who, channel, said)| Step::Inbound { who, channel, said }),
        1 => (who.clone(), channel()).prop_map(|(who, channel)| Step::ProviderOptOut { who, channel }),
        1 => (who.clone(), any::<bool>()).prop_map(|(who, all)| Step::StaffSuppress { who, all }),
        2 => (who.clone(), channel(), any::<bool>()).prop_map(|(who, channel, pending)| Step::ApiConsent { who, channel, pending }),
        1 => (who.clone(), channel()).prop_map(|(who, channel)| Step::ApiRevoke { who, channel }),
        2 => who.clone().prop_map(|who| Step::ConfirmLink { who }),
        4 => (who.clone(), channel()).prop_map(|(who, channel)| Step::Send { who, channel }),
        1 => who.prop_map(|who| Step::InboxReply { who }),
        1 => staff.clone().prop_map(|author| Step::Draft { author }),
        1 => staff.clone().prop_map(|editor| Step::Edit { editor }),
        1 => staff.clone().prop_map(|by| Step::Submit { by }),
        2 => staff.prop_map(|by| Step::Approve { by }),
        1 => Just(Step::FanOut),
        4 => Just(Step::Drain),
        1 => (1i64..600).prop_map(|minutes| Step::Advance { minutes }),
        1 => Just(Step::Restart),
    ]
}

/// Violations of rule 1 seen inside provider calls.
type Violations = Arc<Mutex<Vec<String>>>;

/// Check, at the moment of the call, that the message may reach the person.
fn watch(env: &TestEnv, violations: Violations) {
    let db = env.core.db.conn.clone();
    env.provider.on_send(Arc::new(move |req| {
        let db = db.clone();
        let violations = violations.clone();
        Box::pin(async move {
            let why = async {
                let m = outbound_message::Entity::find_by_id(req.message_id.as_str())
                    .one(&db)
                    .await
                    .ok()??;
                let c = contacts::find_by_phone(&db, &req.to).await.ok()??;
                let suppressed = heimdall_domain::consent::active_suppression(&db, &c.id, req.channel)
                    .await
                    .ok()?
                    .is_some();
                let latest = heimdall_domain::consent::current_consent(&db, &c.id, req.channel)
                    .await
                    .ok()?
                    .map(|x| heimdall_domain::consent::consent_status(&x));
                let ok = match m.source.as_str() {
                    // The reply to the person's own keyword (STOP's
                    // confirmation, HELP) answers what they just sent.
                    "compliance" => true,
                    _ if suppressed => false,
                    // A confirmation request, for a consent that is
                    // pending (or was confirmed meanwhile).
                    "optin" => matches!(
                        latest,
                        Some(ConsentStatus::Pending | ConsentStatus::Active)
                    ),
                    "inbox" => latest != Some(ConsentStatus::Revoked),
                    _ => latest == Some(ConsentStatus::Active),
                };
                (!ok).then(|| {
                    format!(
                        "{} message {} reached the provider for {} on {} (suppressed: {suppressed}, consent: {latest:?})",
                        m.source, m.id, req.to, req.channel
                    )
                })
            }
            .await;
            if let Some(why) = why {
                violations.lock().unwrap().push(why);
            }
        })
    }));
}

struct World {
    /// Every process so far (kept alive: the first holds the storage).
    envs: Vec<TestEnv>,
    staff: Vec<StaffUser>,
    violations: Violations,
    /// Bodies of every message sent so far (confirmation links in them).
    sent_bodies: Vec<(String, String)>,
    campaign: Option<String>,
    n: usize,
}

impl World {
    fn env(&self) -> &TestEnv {
        self.envs.last().expect("a process")
    }

    fn core(&self) -> &Core {
        &self.env().core
    }

    fn next(&mut self) -> usize {
        self.n += 1;
        self.n
    }
}

async fn staff(core: &Core, email: &str, role: Role) -> StaffUser {
    heimdall_domain::testing::staff_user(core, email, role).await
}

fn form(slug: &str, double: bool) -> FormInput {
    FormInput {
        slug: slug.into(),
        title: "Updates".into(),
        intro: "Updates.".into(),
        fields: vec![],
        thank_you: "Thanks!".into(),
        channels: vec![
            ChannelText {
                channel: Channel::WhatsApp,
                consent_text: "Yes, WhatsApp me.".into(),
                purpose: None,
            },
            ChannelText {
                channel: Channel::Sms,
                consent_text: "Yes, text me.".into(),
                purpose: None,
            },
        ],
        double_opt_in: double,
        whatsapp_confirmation_template: None,
        active: None,
    }
}

async fn world() -> World {
    let env = TestEnv::new(&[
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    let core = &env.core;
    for who in 0..PEOPLE {
        contacts::upsert(
            core,
            &ContactInput {
                phone: phone(who),
                name: Some(format!("Person {who}")),
                time_zone: Some("Europe/Oslo".into()),
                tags: vec!["everyone".into()],
                ..Default::default()
            },
        )
        .await
        .unwrap();
    }
    for (slug, double) in [("single", false), ("double", true)] {
        optin::create_form(core, &form(slug, double), "staff:1")
            .await
            .unwrap();
    }
    let staff = vec![
        staff(core, "operator@example.com", Role::Operator).await,
        staff(core, "admin@example.com", Role::Admin).await,
        staff(core, "approver@example.com", Role::Approver).await,
    ];
    let violations = Violations::default();
    watch(&env, violations.clone());
    World {
        envs: vec![env],
        staff,
        violations,
        sent_bodies: vec![],
        campaign: None,
        n: 0,
    }
}

async fn contact_id(core: &Core, who: usize) -> String {
    let p = PhoneNumber::parse_e164(&phone(who)).unwrap();
    contacts::find_by_phone(&core.db.conn, &p)
        .await
        .unwrap()
        .expect("every person is a contact")
        .id
}

fn evidence() -> ConsentEvidence {
    ConsentEvidence {
        ip: Some("203.0.113.7".into()),
        user_agent: Some("Mozilla/5.0 test".into()),
        consent_text_version: Some("v1".into()),
        ..Default::default()
    }
}

fn bootstrap() -> Origin {
    Origin::Automation {
        principal: ApiPrincipal {
            key_id: None,
            name: "bootstrap".into(),
        },
        source: MessageSource::Api,
        reminder_id: None,
    }
}

fn reminder_content() -> RequestedContent {
    let mut variables = BTreeMap::new();
    variables.insert("task_name".to_string(), "Viewing".to_string());
    variables.insert("due_time".to_string(), "17:00".to_string());
    RequestedContent::Template {
        name: "task_reminder".into(),
        variables,
    }
}

fn campaign_draft(name: &str) -> CampaignDraft {
    CampaignDraft {
        name: name.into(),
        channel: Channel::WhatsApp,
        template_name: "task_reminder".into(),
        audience: Audience::Tags {
            tags: vec!["everyone".into()],
        },
        variables: [
            (
                "task_name".to_string(),
                VariableSource::Field("name".into()),
            ),
            (
                "due_time".to_string(),
                VariableSource::Value("17:00".into()),
            ),
        ]
        .into(),
        scheduled_at: None,
    }
}

async fn apply(w: &mut World, step: Step) {
    let n = w.next();
    let now = w.core().now();
    match step {
        Step::Form {
            who,
            channel,
            double,
        } => {
            let slug = if double { "double" } else { "single" };
            let form = optin::form_by_slug(w.core(), slug).await.unwrap().unwrap();
            let version = form.offer(channel, None).map(|t| t.version).unwrap_or(1);
            let input = SubmissionInput::from_pairs([
                ("name".to_string(), "Someone Else".to_string()),
                ("phone".to_string(), phone(who)),
                ("channel".to_string(), channel.as_str().to_string()),
                (
                    format!("text_version_{}", channel.as_str()),
                    version.to_string(),
                ),
                ("website".to_string(), String::new()),
            ]);
            let request = RequestEvidence {
                ip: "198.51.100.9".parse().unwrap(),
                user_agent: Some("Mozilla/5.0 test".into()),
                page_url: optin::public_url(w.core(), &format!("/optin/{slug}")),
            };
            optin::submit(w.core(), &form, None, &input, &request)
                .await
                .unwrap();
        }
        Step::Inbound { who, channel, said } => {
            let (body, text, payload) = match said {
                Said::Stop => ("STOP", None, None),
                Said::Start => ("START", None, None),
                Said::Unstop => ("UNSTOP", None, None),
                Said::Yes => ("YES", None, None),
                Said::Help => ("HELP", None, None),
                Said::Hello => ("hello, is this the office?", None, None),
                Said::YesButton => ("Yes", Some("Yes"), Some("attending")),
                Said::StopButton => ("Stop", Some("Stop"), Some("btn_2")),
            };
            let msg = InboundMessage {
                provider: "twilio".into(),
                provider_message_id: format!("SM{n:032}"),
                channel,
                from: match channel {
                    Channel::WhatsApp => format!("whatsapp:{}", phone(who)),
                    Channel::Sms => phone(who),
                },
                to: None,
                body: Some(body.into()),
                media: vec![],
                button_text: text.map(str::to_string),
                button_payload: payload.map(str::to_string),
                profile_name: None,
                received_at: now,
            };
            inbound::handle_message(w.core(), msg).await.unwrap();
        }
        Step::ProviderOptOut { who, channel } => {
            let cid = contact_id(w.core(), who).await;
            consent::opt_out(
                &w.core().db.conn,
                &cid,
                Some(channel),
                Scope::All,
                OptOutSource::Provider,
                Some("21610"),
                "provider",
                now,
            )
            .await
            .unwrap();
        }
        Step::StaffSuppress { who, all } => {
            let cid = contact_id(w.core(), who).await;
            consent::opt_out(
                &w.core().db.conn,
                &cid,
                if all { None } else { Some(Channel::WhatsApp) },
                Scope::All,
                OptOutSource::Staff,
                Some("asked on the phone"),
                "admin@example.com",
                now,
            )
            .await
            .unwrap();
        }
        Step::ApiConsent {
            who,
            channel,
            pending,
        } => {
            let cid = contact_id(w.core(), who).await;
            consent::record_opt_in(
                &w.core().db.conn,
                &cid,
                channel,
                None,
                ConsentSource::Api,
                &evidence(),
                "api_key:bootstrap",
                pending,
                now,
            )
            .await
            .unwrap();
        }
        Step::ApiRevoke { who, channel } => {
            let cid = contact_id(w.core(), who).await;
            consent::opt_out(
                &w.core().db.conn,
                &cid,
                Some(channel),
                Scope::All,
                OptOutSource::Api,
                None,
                "api_key:bootstrap",
                now,
            )
            .await
            .unwrap();
        }
        Step::ConfirmLink { who } => {
            let to = phone(who);
            let token = w
                .sent_bodies
                .iter()
                .rev()
                .find(|(p, b)| *p == to && b.contains("/optin/confirm/"))
                .map(|(_, b)| {
                    let at = b.find("/optin/confirm/").unwrap() + "/optin/confirm/".len();
                    b[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                        .collect::<String>()
                });
            if let Some(token) = token {
                optin::confirm(w.core(), &token).await.unwrap();
            }
        }
        Step::Send { who, channel } => {
            let cid = contact_id(w.core(), who).await;
            outbound::accept(
                w.core(),
                SendRequest {
                    recipient: Recipient::Contact(cid),
                    channel,
                    content: reminder_content(),
                    origin: bootstrap(),
                    idempotency_key: None,
                    purpose: None,
                },
            )
            .await
            .unwrap();
        }
        Step::InboxReply { who } => {
            let cid = contact_id(w.core(), who).await;
            outbound::accept(
                w.core(),
                SendRequest {
                    recipient: Recipient::Contact(cid),
                    channel: Channel::WhatsApp,
                    content: RequestedContent::Text {
                        body: "Thanks for your message!".into(),
                        media_url: None,
                        format: Default::default(),
                        reply_to: None,
                    },
                    origin: Origin::Inbox {
                        staff: w.staff[0].clone(),
                        ip: None,
                    },
                    idempotency_key: None,
                    purpose: None,
                },
            )
            .await
            .unwrap();
        }
        Step::Draft { author } => {
            let by = w.staff[author].clone();
            if let Ok(c) =
                campaigns::create_draft(w.core(), &by, campaign_draft(&format!("c{n}"))).await
            {
                w.campaign = Some(c.id);
            }
        }
        Step::Edit { editor } => {
            if let Some(id) = w.campaign.clone() {
                let by = w.staff[editor].clone();
                let _ =
                    campaigns::update_draft(w.core(), &by, &id, campaign_draft(&format!("e{n}")))
                        .await;
            }
        }
        Step::Submit { by } => {
            if let Some(id) = w.campaign.clone() {
                let by = w.staff[by].clone();
                let _ = campaigns::submit(w.core(), &by, &id).await;
            }
        }
        Step::Approve { by } => {
            if let Some(id) = w.campaign.clone() {
                let by = w.staff[by].clone();
                let hash = campaigns::review(w.core(), &id, 0)
                    .await
                    .unwrap()
                    .content_hash;
                let _ = campaigns::approve(w.core(), &by, &id, &hash).await;
            }
        }
        Step::FanOut => {
            if let Some(id) = w.campaign.clone() {
                campaigns::fan_out(w.core(), &id).await.unwrap();
            }
        }
        Step::Drain => {
            for id in w.env().take_enqueued() {
                outbound::process_send(w.core(), &id).await.unwrap();
            }
        }
        Step::Advance { minutes } => {
            w.env().clock.advance(Duration::minutes(minutes));
        }
        Step::Restart => {
            // A new process on the same storage; the queue's jobs survive
            // (they are in the database or Redis in a real run).
            let waiting = w.env().take_enqueued();
            let next = w.env().sibling(&[]).await;
            authz::register_senders(&next.core, true).await.unwrap();
            for id in waiting {
                next.queue.sends.lock().unwrap().push((id, None));
            }
            watch(&next, w.violations.clone());
            w.envs.push(next);
        }
    }
    // What went out, for the links in it.
    let sent: Vec<(String, String)> = w
        .env()
        .provider
        .sent
        .lock()
        .unwrap()
        .drain(..)
        .filter_map(|r| match r.content {
            heimdall_domain::channels::Content::Text { body, .. } => Some((r.to.to_string(), body)),
            _ => None,
        })
        .collect();
    w.sent_bodies.extend(sent);
}

/// Rules 2 and 3, read from the database after a step.
async fn check_ledger(core: &Core) -> Result<(), String> {
    let db = &core.db.conn;
    for s in suppression::Entity::find()
        .filter(suppression::Column::LiftedAt.is_not_null())
        .all(db)
        .await
        .unwrap()
    {
        let Some(proof) = &s.lift_ref else {
            return Err(format!("suppression {} was lifted without proof", s.id));
        };
        let inbound = inbound_message::Entity::find()
            .filter(inbound_message::Column::ContactId.eq(&s.contact_id))
            .filter(inbound_message::Column::ProviderMessageId.eq(proof))
            .one(db)
            .await
            .unwrap();
        match inbound {
            Some(m) if m.keyword_action.as_deref() == Some("optin") => {}
            other => {
                return Err(format!(
                    "suppression {} was lifted by {proof}, which is not an opt-in from the number: {other:?}",
                    s.id
                ))
            }
        }
    }
    for c in campaign::Entity::find().all(db).await.unwrap() {
        if let Some(a) = &c.approved_by {
            if heimdall_domain::access::authz::campaign_authors(&c).contains(a) {
                return Err(format!("campaign {} was approved by its author {a}", c.id));
            }
        }
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("HEIMDALL_INVARIANT_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(32)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        max_shrink_iters: 64,
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn no_send_reaches_an_opted_out_or_unconsented_person_and_no_stop_is_undone(
        steps in proptest::collection::vec(step(), 1..40)
    ) {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let outcome: Result<(), String> = rt.block_on(async {
            let mut w = world().await;
            for (i, step) in steps.iter().enumerate() {
                apply(&mut w, *step).await;
                let seen = w.violations.lock().unwrap().clone();
                if !seen.is_empty() {
                    return Err(format!("after step {i} {step:?}: {seen:?}"));
                }
                check_ledger(w.core())
                    .await
                    .map_err(|e| format!("after step {i} {step:?}: {e}"))?;
            }
            Ok(())
        });
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

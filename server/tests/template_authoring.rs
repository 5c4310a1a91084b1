//! Templates written in the console, through the domain against an
//! in-process sandbox: created at Twilio (Content API plus the WhatsApp
//! approval request) or at Meta (message_templates), recorded as pending
//! with an audit row, refused by the gates until approved, and refreshed
//! with the review's outcome (rejection reasons included).

use heimdall_domain::compliance::message_source::MessageSource;
use std::collections::BTreeMap;
use std::net::TcpListener;
use std::sync::Arc;

use heimdall_domain::channels::meta::MetaClient;
use heimdall_domain::channels::twilio::{default_http_client, TwilioClient};
use heimdall_domain::compliance::gates::Gate;
use heimdall_domain::core::{CoreParts, Providers};
use heimdall_domain::entities::staff_audit;
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::templates::authoring::{
    self, CreateError, DraftInput, TemplateDraft, TemplateProvider,
};
use heimdall_domain::testing::{contact_with_consent, TestEnv};
use heimdall_domain::{templates, Channel, Core};
use heimdall_sandbox::{SandboxConfig, SandboxHandle, TemplateSpec, DEFAULT_WABA_ID};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

async fn sandbox() -> SandboxHandle {
    heimdall_sandbox::start(
        SandboxConfig::default(),
        TcpListener::bind("127.0.0.1:0").unwrap(),
    )
    .await
    .unwrap()
}

/// A core whose Twilio and Meta clients talk to the sandbox; WhatsApp goes
/// through `provider`.
async fn env(sb: &SandboxHandle, provider: &str) -> (TestEnv, Arc<Core>) {
    let env = TestEnv::new(&[
        ("WHATSAPP_ACCESS_TOKEN", "unused-here"),
        ("WHATSAPP_PHONE_NUMBER_ID", "100000000000001"),
        ("WHATSAPP_APP_SECRET", "unused-here"),
        ("WHATSAPP_BUSINESS_ACCOUNT_ID", DEFAULT_WABA_ID),
        ("HEIMDALL_WHATSAPP_PROVIDER", provider),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ])
    .await;
    let http = default_http_client();
    let core = Core::new(CoreParts {
        settings: (*env.core.settings).clone(),
        db: env.core.db.clone(),
        redis: env.core.redis.clone(),
        clock: Arc::new(env.clock.clone()),
        queue: env.queue.clone(),
        providers: Providers {
            twilio: Some(Arc::new(TwilioClient::new(
                &sb.twilio_settings(),
                http.clone(),
            ))),
            meta: Some(Arc::new(MetaClient::new(&sb.meta_settings(), http))),
            ..env.core.providers.clone()
        },
        alerts: None,
    });
    heimdall_domain::access::authz::register_senders(&core, true)
        .await
        .unwrap();
    (env, core)
}

fn draft(name: &str, body: &str, samples: &[(&str, &str)]) -> TemplateDraft {
    TemplateDraft::parse(&DraftInput {
        name: name.into(),
        language: "en".into(),
        category: "UTILITY".into(),
        body: body.into(),
        samples: samples
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    })
    .expect("a valid draft")
}

async fn audit_rows(core: &Core, target: &str) -> Vec<staff_audit::Model> {
    staff_audit::Entity::find()
        .filter(staff_audit::Column::Target.eq(target))
        .all(&core.db.conn)
        .await
        .unwrap()
}

async fn send(core: &Core, name: &str, variables: &[(&str, &str)]) -> Option<Gate> {
    let cid = contact_with_consent(core, "+4791234599", &[Channel::WhatsApp]).await;
    let out = outbound::accept(
        core,
        SendRequest {
            recipient: Recipient::Contact(cid),
            channel: Channel::WhatsApp,
            content: RequestedContent::Template {
                name: name.into(),
                variables: variables
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect::<BTreeMap<_, _>>(),
            },
            origin: Origin::Automation {
                principal: heimdall_domain::access::authz::ApiPrincipal {
                    key_id: None,
                    name: "bootstrap".into(),
                },
                source: MessageSource::Api,
                reminder_id: None,
            },
            idempotency_key: None,
            purpose: None,
        },
    )
    .await
    .unwrap();
    out.decision.decision.reason()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_twilio_created_pending_refused_then_rejected_with_its_reason() {
    let sb = sandbox().await;
    let (_env, core) = env(&sb, "twilio").await;
    let d = draft(
        "pickup_ready",
        "Hi {{first_name}}, order {{order_id}} is ready.",
        &[("first_name", "Kari"), ("order_id", "A-17")],
    );
    let t = authoring::create(
        &core,
        &d,
        TemplateProvider::Twilio,
        "staff:1",
        Some("203.0.113.9"),
    )
    .await
    .expect("created");
    assert_eq!(t.approval_status.as_str(), "pending");
    assert_eq!(t.source, "console");
    assert_eq!(t.provider, "twilio");
    assert_eq!(t.body, "Hi {{1}}, order {{2}} is ready.");
    assert_eq!(t.variables, vec!["first_name", "order_id"]);
    let sid = t.provider_id.clone().expect("a ContentSid");

    // At the provider: the content with its samples, submitted under the name.
    let stored = sb
        .state()
        .templates()
        .into_iter()
        .find(|s| s.sid == sid)
        .expect("content at Twilio");
    assert_eq!(stored.status, "pending");
    assert_eq!(stored.category, "UTILITY");
    assert_eq!(stored.variables.get("2").map(String::as_str), Some("A-17"));
    assert_eq!(
        stored.body().as_deref(),
        Some("Hi {{1}}, order {{2}} is ready.")
    );

    // Audited, with who and from where.
    let rows = audit_rows(&core, "template:pickup_ready").await;
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].action, "template_created");
    assert_eq!(rows[0].actor, "staff:1");
    assert_eq!(rows[0].ip.as_deref(), Some("203.0.113.9"));

    // A pending template is refused by the gate.
    let gate = send(
        &core,
        "pickup_ready",
        &[("first_name", "Ola"), ("order_id", "B-2")],
    )
    .await;
    assert_eq!(gate, Some(Gate::TemplateNotApproved));

    // WhatsApp rejects it; a refresh shows the reason.
    sb.state()
        .apply_template(TemplateSpec {
            name: "pickup_ready".into(),
            status: Some("rejected".into()),
            rejection_reason: Some("The sample values look like placeholders".into()),
            ..Default::default()
        })
        .unwrap();
    let report = authoring::refresh_approvals(&core)
        .await
        .expect("refreshed");
    assert!(report.failed.is_empty(), "{report:?}");
    let t = templates::find_by_name(&core.db.conn, "pickup_ready")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.approval_status.as_str(), "rejected");
    assert_eq!(
        t.rejection_reason.as_deref(),
        Some("The sample values look like placeholders")
    );
    // The sync kept the names of the variables and the source.
    assert_eq!(t.variables, vec!["first_name", "order_id"]);
    assert_eq!(t.source, "console");

    // Approved: now it goes.
    sb.state()
        .apply_template(TemplateSpec {
            name: "pickup_ready".into(),
            status: Some("approved".into()),
            rejection_reason: Some(String::new()),
            ..Default::default()
        })
        .unwrap();
    authoring::refresh_approvals(&core).await.unwrap();
    let t = templates::find_by_name(&core.db.conn, "pickup_ready")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.approval_status.as_str(), "approved");
    assert_eq!(t.rejection_reason, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn through_meta_created_pending_and_refreshed() {
    let sb = sandbox().await;
    let (_env, core) = env(&sb, "meta").await;
    assert_eq!(
        authoring::available_providers(&core),
        vec![TemplateProvider::Meta, TemplateProvider::Twilio]
    );
    let d = draft(
        "visit_confirm",
        "Hello {{name}}, your visit on {{day}} is booked.",
        &[("name", "Kari"), ("day", "Monday")],
    );
    let t = authoring::create(&core, &d, TemplateProvider::Meta, "staff:2", None)
        .await
        .expect("created");
    assert_eq!(
        (t.provider.as_str(), t.approval_status.as_str()),
        ("meta", "pending")
    );
    let id = t.provider_id.clone().unwrap();
    assert!(id.bytes().all(|b| b.is_ascii_digit()), "{id}");
    assert_eq!(
        send(
            &core,
            "visit_confirm",
            &[("name", "Ola"), ("day", "Friday")]
        )
        .await,
        Some(Gate::TemplateNotApproved)
    );

    sb.state()
        .apply_template(TemplateSpec {
            name: "visit_confirm".into(),
            status: Some("rejected".into()),
            rejection_reason: Some("INVALID_FORMAT".into()),
            ..Default::default()
        })
        .unwrap();
    let report = authoring::refresh_approvals(&core).await.unwrap();
    assert!(report.failed.is_empty(), "{report:?}");
    let t = templates::find_by_name(&core.db.conn, "visit_confirm")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.approval_status.as_str(), "rejected");
    assert_eq!(t.rejection_reason.as_deref(), Some("INVALID_FORMAT"));
    assert_eq!(t.provider_id.as_deref(), Some(id.as_str()));
    assert_eq!(t.variables, vec!["name", "day"]);
    // The seeds Twilio's sync recorded stay Twilio's.
    let seed = templates::find_by_name(&core.db.conn, "task_reminder")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seed.provider, "twilio");

    sb.state()
        .apply_template(TemplateSpec {
            name: "visit_confirm".into(),
            status: Some("approved".into()),
            rejection_reason: Some(String::new()),
            ..Default::default()
        })
        .unwrap();
    authoring::refresh_approvals(&core).await.unwrap();
    let t = templates::find_by_name(&core.db.conn, "visit_confirm")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (t.approval_status.as_str(), t.rejection_reason.as_deref()),
        ("approved", None)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_record_nothing() {
    let sb = sandbox().await;
    let (_env, core) = env(&sb, "twilio").await;
    let before = sb.state().templates().len();

    // A name already known here.
    authoring::create(
        &core,
        &draft("first_one", "Hello there.", &[]),
        TemplateProvider::Twilio,
        "staff:1",
        None,
    )
    .await
    .unwrap();
    let err = authoring::create(
        &core,
        &draft("first_one", "Hello again.", &[]),
        TemplateProvider::Twilio,
        "staff:1",
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CreateError::Exists(_)), "{err:?}");
    assert_eq!(sb.state().templates().len(), before + 1);

    // Meta refuses a name it has in that language already (made there
    // outside Heimdall): nothing is recorded here.
    core.providers
        .meta
        .as_ref()
        .unwrap()
        .create_template("made_elsewhere", "en", "UTILITY", "Hello.", &[])
        .await
        .unwrap();
    let err = authoring::create(
        &core,
        &draft("made_elsewhere", "Hello from us.", &[]),
        TemplateProvider::Meta,
        "staff:1",
        None,
    )
    .await
    .unwrap_err();
    match &err {
        CreateError::Provider(m) => assert!(m.contains("already exists"), "{m}"),
        other => panic!("expected the provider's refusal, got {other:?}"),
    }
    assert!(templates::find_by_name(&core.db.conn, "made_elsewhere")
        .await
        .unwrap()
        .is_none());
    assert!(audit_rows(&core, "template:made_elsewhere")
        .await
        .is_empty());

    // Twilio refuses the approval request (here: a name WhatsApp does not
    // take, which only the approval request checks): the content made for
    // it is deleted again.
    let twilio_before = sb.state().templates().len();
    let mut bad = draft("ok_name", "Hello.", &[]);
    bad.name = "Not Valid".into();
    let err = authoring::create(&core, &bad, TemplateProvider::Twilio, "staff:1", None)
        .await
        .unwrap_err();
    assert!(matches!(err, CreateError::Provider(_)), "{err:?}");
    assert_eq!(sb.state().templates().len(), twilio_before);
    assert!(audit_rows(&core, "template:Not Valid").await.is_empty());

    // Known here already (synced from Twilio): refused before any call.
    templates::sync_from_twilio(&core).await.unwrap();
    let err = authoring::create(
        &core,
        &draft("task_reminder", "Hello.", &[]),
        TemplateProvider::Meta,
        "staff:1",
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CreateError::Exists(_)), "{err:?}");

    // Without the business account id, Meta is not offered.
    let mut settings = (*core.settings).clone();
    if let Some(m) = settings.meta.as_mut() {
        m.business_account_id = None;
    }
    let no_waba = Core::new(CoreParts {
        settings,
        db: core.db.clone(),
        redis: core.redis.clone(),
        clock: Arc::new(heimdall_domain::clock::SystemClock),
        queue: _env.queue.clone(),
        providers: core.providers.clone(),
        alerts: None,
    });
    assert_eq!(
        authoring::available_providers(&no_waba),
        vec![TemplateProvider::Twilio]
    );
    let err = authoring::create(
        &no_waba,
        &draft("needs_waba", "Hello.", &[]),
        TemplateProvider::Meta,
        "staff:1",
        None,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, CreateError::NotConfigured(_)), "{err:?}");
    assert!(templates::find_by_name(&core.db.conn, "needs_waba")
        .await
        .unwrap()
        .is_none());
    assert!(audit_rows(&core, "template:needs_waba").await.is_empty());
}

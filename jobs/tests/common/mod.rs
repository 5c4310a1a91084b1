//! What the jobs crate's tests share: a test world with a sender and the
//! reminder template, and a message accepted in it.

use heimdall_domain::access::authz::{self, ApiPrincipal};
use heimdall_domain::sending::outbound::{self, Origin, Recipient, RequestedContent, SendRequest};
use heimdall_domain::testing::{contact_with_consent, TestEnv};
use heimdall_domain::{templates, Channel};

/// The number [`accepted_reminder`] sends to.
pub const PHONE: &str = "+4791234567";

/// A test world (settings from `extra` on top) with the senders and the
/// reminder template registered, and no pause between one person's messages.
pub async fn env(extra: &[(&str, &str)]) -> TestEnv {
    let mut pairs = vec![
        ("HEIMDALL_API_KEY", "test-bootstrap-key"),
        (
            "WA_TEMPLATE_TASK_REMINDER",
            "HX00000000000000000000000000000001",
        ),
        ("HEIMDALL_RECIPIENT_PACE_SECONDS", "0"),
    ];
    pairs.extend_from_slice(extra);
    let env = TestEnv::new(&pairs).await;
    authz::register_senders(&env.core, true).await.unwrap();
    templates::register_from_settings(&env.core).await.unwrap();
    env
}

/// A reminder to [`PHONE`] accepted on the test's recording queue: recorded
/// and queued, and on no real queue.
pub async fn accepted_reminder(env: &TestEnv) -> String {
    let contact = contact_with_consent(&env.core, PHONE, &[Channel::WhatsApp]).await;
    outbound::accept(
        &env.core,
        SendRequest {
            recipient: Recipient::Contact(contact),
            channel: Channel::WhatsApp,
            content: RequestedContent::Template {
                name: "task_reminder".into(),
                variables: [
                    ("task_name".to_string(), "Call Bob".to_string()),
                    ("due_time".to_string(), "17:00".to_string()),
                ]
                .into(),
            },
            origin: Origin::Automation {
                principal: ApiPrincipal {
                    key_id: None,
                    name: "bootstrap".into(),
                },
                source: "api",
                reminder_id: None,
            },
            idempotency_key: None,
        },
    )
    .await
    .unwrap()
    .message_id
}

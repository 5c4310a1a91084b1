//! Inbound messages against real storage: a provider's redelivery of a
//! message long after its dedup entry expired is still a duplicate.

use chrono::Duration;
use sea_orm::{EntityTrait, PaginatorTrait};

use heimdall_domain::entities::{inbound_message, suppression};
use heimdall_domain::inbound::{self, InboundMessage, InboundOutcome};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::Channel;

fn message(env: &TestEnv, sid: &str, body: &str) -> InboundMessage {
    InboundMessage {
        provider: "twilio".into(),
        provider_message_id: sid.into(),
        channel: Channel::WhatsApp,
        from: "+4791234567".into(),
        to: Some("+4790000000".into()),
        body: Some(body.into()),
        media: Vec::new(),
        button_text: None,
        button_payload: None,
        profile_name: None,
        received_at: env.core.now(),
    }
}

#[tokio::test]
async fn a_redelivery_after_the_dedup_entry_expired_is_a_duplicate() {
    let env = TestEnv::new(&[]).await;
    for (sid, body) in [
        ("SM00000000000000000000000000000101", "hello"),
        ("SM00000000000000000000000000000102", "STOP"),
    ] {
        let first = inbound::handle_message(&env.core, message(&env, sid, body))
            .await
            .expect("first delivery");
        assert!(
            matches!(first, InboundOutcome::Stored { .. }),
            "{sid}: {first:?}"
        );
        // Twilio retries for longer than the 24 h dedup entry lives.
        env.clock.advance(Duration::hours(25));
        inbound::purge_dedup(&env.core).await.expect("purge");
        let again = inbound::handle_message(&env.core, message(&env, sid, body))
            .await
            .expect("redelivery is answered, not an error");
        assert!(
            matches!(again, InboundOutcome::Duplicate),
            "{sid}: {again:?}"
        );
    }
    let stored = inbound_message::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(stored, 2, "each message stored once");
    let suppressions = suppression::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap();
    assert_eq!(suppressions, 1, "the STOP acted once");
}

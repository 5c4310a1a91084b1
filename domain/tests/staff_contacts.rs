//! Contacts added and edited by staff: a new contact and the consent staff vouch for are
//! recorded together or not at all; an existing number is refused, never changed; an edit
//! replaces name, tags, time zone and fields, and a bad zone changes nothing.

use heimdall_domain::compliance::gates::ConsentStatus;
use std::collections::BTreeMap;

use heimdall_domain::consent::{self, ConsentEvidence, NewContactError, StaffOptIn};
use heimdall_domain::contacts::{self, ContactEdit, ContactError, ContactInput};
use heimdall_domain::testing::TestEnv;
use heimdall_domain::Channel;

const PHONE: &str = "+4791237101";

fn input() -> ContactInput {
    ContactInput {
        phone: PHONE.into(),
        name: Some("Nora".into()),
        tags: vec!["Oslo".into(), " newcomers ".into()],
        ..Default::default()
    }
}

fn opt_in(page_url: Option<&str>) -> StaffOptIn {
    StaffOptIn {
        channel: Channel::WhatsApp,
        purposes: vec![],
        evidence: ConsentEvidence {
            page_url: page_url.map(str::to_string),
            consent_text_version: Some("front-desk-v1".into()),
            consent_text: Some("Yes, remind me on WhatsApp.".into()),
            ..Default::default()
        },
        pending: false,
    }
}

#[tokio::test]
async fn a_contact_and_its_consent_are_recorded_together_or_not_at_all() {
    let env = TestEnv::new(&[]).await;
    // Evidence that does not say how the consent was given: neither is recorded.
    let err = consent::create_contact_with_opt_in(&env.core, &input(), Some(&opt_in(None)), "op@x")
        .await
        .unwrap_err();
    assert!(
        matches!(err, NewContactError::Contact(ContactError::Evidence(_))),
        "{err}"
    );
    let phone =
        heimdall_domain::PhoneNumber::parse(PHONE, env.core.settings.default_region).unwrap();
    assert!(contacts::find_by_phone(&env.core.db.conn, &phone)
        .await
        .unwrap()
        .is_none());

    let (c, outcome) = consent::create_contact_with_opt_in(
        &env.core,
        &input(),
        Some(&opt_in(Some("https://example.com/signed.pdf"))),
        "op@x",
    )
    .await
    .unwrap();
    assert_eq!(c.tags, vec!["newcomers".to_string(), "oslo".to_string()]);
    let record = outcome.first().expect("a consent").consent().clone();
    assert_eq!(record.status, ConsentStatus::Active);
    assert_eq!(record.source, "staff");
    assert_eq!(record.strength, "attested");
    assert_eq!(record.recorded_by, "op@x");
    assert_eq!(
        record.page_url.as_deref(),
        Some("https://example.com/signed.pdf")
    );
    assert_eq!(
        record.consent_text_hash.as_deref(),
        Some(heimdall_domain::consent::text_hash("Yes, remind me on WhatsApp.").as_str())
    );

    // The same number again: refused with the contact's id, and nothing changes.
    let mut again = input();
    again.name = Some("Someone else".into());
    match consent::create_contact_with_opt_in(&env.core, &again, None, "op@x").await {
        Err(NewContactError::Exists { id, .. }) => assert_eq!(id, c.id),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        contacts::get(&env.core, &c.id)
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("Nora")
    );

    // Without a consent: a contact who gets no messages but replies.
    let mut quiet = input();
    quiet.phone = "+4791237102".into();
    let (_, outcome) = consent::create_contact_with_opt_in(&env.core, &quiet, None, "op@x")
        .await
        .unwrap();
    assert!(outcome.is_empty());
}

#[tokio::test]
async fn an_edit_replaces_what_it_names_and_a_bad_zone_changes_nothing() {
    let env = TestEnv::new(&[]).await;
    let (c, _) = consent::create_contact_with_opt_in(&env.core, &input(), None, "op@x")
        .await
        .unwrap();
    let bad = ContactEdit {
        name: Some("Changed".into()),
        time_zone: Some("Mars/Olympus".into()),
        ..Default::default()
    };
    assert!(matches!(
        contacts::edit(&env.core, &c.id, &bad).await,
        Err(ContactError::TimeZone(_))
    ));
    assert_eq!(
        contacts::get(&env.core, &c.id)
            .await
            .unwrap()
            .name
            .as_deref(),
        Some("Nora")
    );

    let mut fields = BTreeMap::new();
    fields.insert("plan".to_string(), "gold".to_string());
    let edited = contacts::edit(
        &env.core,
        &c.id,
        &ContactEdit {
            name: Some("  ".into()),
            time_zone: Some("Europe/Oslo".into()),
            tags: vec!["VIP".into()],
            attributes: fields.clone(),
        },
    )
    .await
    .unwrap();
    assert_eq!(edited.name, None, "a blank name removes it");
    assert_eq!(
        edited.tags,
        vec!["vip".to_string()],
        "tags are replaced, not merged"
    );
    assert_eq!(edited.time_zone.as_deref(), Some("Europe/Oslo"));
    assert_eq!(edited.attributes, fields);
    assert_eq!(edited.phone, PHONE, "the number stays");
    assert!(matches!(
        contacts::edit(&env.core, "no-such-id", &ContactEdit::default()).await,
        Err(ContactError::NotFound(_))
    ));
}

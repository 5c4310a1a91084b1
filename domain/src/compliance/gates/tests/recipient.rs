//! The number, the allowlist, suppression and consent.

use super::*;

#[test]
fn invalid_number_blocks() {
    let mut m = automation_template();
    m.recipient = None;
    m.raw_to = "12".into();
    let d = run(&m, &facts());
    assert_eq!(
        d.decision,
        Decision::Block {
            reason: Gate::InvalidNumber
        }
    );
    assert!(d.explanation().contains("'12'"));
}

#[test]
fn no_consent_blocks_and_pending_or_revoked_also_block() {
    let m = automation_template();
    let mut f = facts();
    f.consent = None;
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::NoConsent
        }
    );
    for status in [ConsentStatus::Pending, ConsentStatus::Revoked] {
        f.consent = Some(ConsentFact {
            status,
            source: "web_form".into(),
            captured_at: now(),
            purpose: Some("service".into()),
        });
        assert_eq!(
            run(&m, &f).decision,
            Decision::Block {
                reason: Gate::NoConsent
            }
        );
    }
}

#[test]
fn suppressed_blocks_everything_but_the_keyword_reply() {
    let mut f = facts();
    f.suppression = Some(SuppressionFact {
        reason: "keyword STOP".into(),
        since: now(),
        marketing_only: false,
        purpose: None,
    });
    assert_eq!(
        run(&automation_template(), &f).decision,
        Decision::Block {
            reason: Gate::Suppressed
        }
    );
    let mut reply = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::ComplianceReply,
    );
    f.authorization = Authorization::System;
    f.consent = None;
    reply.content = MessageContent::FreeForm;
    assert_eq!(run(&reply, &f).decision, Decision::Pass);
}

#[test]
fn inbox_reply_in_window_needs_no_opt_in_but_revocation_still_blocks() {
    let m = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::InboxReply,
    );
    let mut f = facts();
    f.authorization = Authorization::Staff {
        user: "op@example.com".into(),
        may_reply: true,
    };
    f.window_expires_at = Some(now() + Duration::hours(2));
    f.consent = None;
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    f.consent = Some(ConsentFact {
        status: ConsentStatus::Revoked,
        source: "keyword".into(),
        captured_at: now(),
        purpose: Some("service".into()),
    });
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::NoConsent
        }
    );
}

#[test]
fn the_allowlist_refuses_every_other_number_with_its_own_code() {
    let m = automation_template();
    let f = facts();
    let mut policy = Policy {
        allowlist: Some(std::sync::Arc::new(
            ["+4700000000".to_string()].into_iter().collect(),
        )),
        ..Policy::default()
    };
    let d = evaluate(&m, &f, now(), &policy);
    assert_eq!(
        d.decision,
        Decision::Block {
            reason: Gate::NotAllowlisted
        }
    );
    // Even the reply to a keyword does not go outside the list.
    let reply = msg(
        Channel::WhatsApp,
        MessageContent::FreeForm,
        Purpose::ComplianceReply,
    );
    assert_eq!(
        evaluate(&reply, &f, now(), &policy).decision.reason(),
        Some(Gate::NotAllowlisted)
    );
    // The listed number passes.
    policy.allowlist = Some(std::sync::Arc::new(
        ["+4791234567".to_string()].into_iter().collect(),
    ));
    assert_eq!(evaluate(&m, &f, now(), &policy).decision, Decision::Pass);
    // No list: the gate does not apply.
    assert!(matches!(
        run(&m, &f).verdict(Gate::NotAllowlisted),
        Some(Verdict::NotApplicable { .. })
    ));
}

#[test]
fn a_marketing_only_suppression_stops_marketing_and_nothing_else() {
    let mut f = facts();
    f.suppression = Some(SuppressionFact {
        reason: "provider 131050".into(),
        since: now(),
        marketing_only: true,
        purpose: None,
    });
    // A utility template still goes.
    assert_eq!(run(&automation_template(), &f).decision, Decision::Pass);
    // A marketing one does not.
    f.template.as_mut().unwrap().category = TemplateCategory::Marketing;
    assert_eq!(
        run(&automation_template(), &f).decision.reason(),
        Some(Gate::Suppressed)
    );
}

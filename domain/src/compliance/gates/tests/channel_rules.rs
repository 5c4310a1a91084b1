//! WhatsApp's window, marketing to US numbers, and a paused sender.

use super::*;

#[test]
fn outside_window_blocks_free_form_and_its_twin_passes_inside() {
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
    f.window_expires_at = Some(now() - Duration::minutes(1));
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::OutsideWindow
        }
    );
    f.window_expires_at = Some(now() + Duration::hours(2));
    assert_eq!(run(&m, &f).decision, Decision::Pass);
    // Outside the window a template passes.
    f.window_expires_at = None;
    let t = msg(
        Channel::WhatsApp,
        template("task_reminder"),
        Purpose::InboxReply,
    );
    assert_eq!(run(&t, &f).decision, Decision::Pass);
}

#[test]
fn marketing_to_plus_one_is_paused_on_whatsapp_only() {
    let mut m = msg(
        Channel::WhatsApp,
        template("spring_offer"),
        Purpose::Automation,
    );
    m.recipient = Some(PhoneNumber::parse("+14155552671", Id::US).unwrap());
    let mut f = facts();
    f.template.as_mut().unwrap().category = TemplateCategory::Marketing;
    if let Authorization::Automation { templates, .. } = &mut f.authorization {
        templates.push("spring_offer".into());
    }
    f.template.as_mut().unwrap().name = "spring_offer".into();
    assert_eq!(
        run(&m, &f).decision,
        Decision::Block {
            reason: Gate::MarketingPaused
        }
    );
    // Twin: the same template to a Norwegian number passes.
    let mut m2 = m.clone();
    m2.recipient = Some(PhoneNumber::parse("+4791234567", Id::US).unwrap());
    assert_eq!(run(&m2, &f).decision, Decision::Pass);
    // Canada is +1 but not part of Meta's US pause.
    let mut ca = m.clone();
    ca.recipient = Some(PhoneNumber::parse("+14165550123", Id::US).unwrap());
    assert_eq!(run(&ca, &f).decision, Decision::Pass);
    // And by SMS the WhatsApp rule does not apply.
    let mut m3 = m.clone();
    m3.channel = Channel::Sms;
    f.time_zone = LocalZones::Contact(chrono_tz::UTC);
    assert_eq!(run(&m3, &f).decision, Decision::Pass);
}

#[test]
fn a_paused_sender_holds_messages_instead_of_refusing_them() {
    let mut f = facts();
    f.sender.paused = Some("error 63007".into());
    let d = run(&automation_template(), &f);
    match d.decision {
        Decision::Defer { reason, until } => {
            assert_eq!(reason, Gate::SenderPaused);
            assert_eq!(until, sender_paused_until());
        }
        other => panic!("{other:?}"),
    }
    assert!(Gate::SenderPaused.defers());
}

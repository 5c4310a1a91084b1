//! The channel's and the sender's own rules: WhatsApp's 24-hour window,
//! Meta's pause of marketing templates to US numbers, and a sender paused
//! after a fault of ours (held, not refused).

use super::*;

pub(super) fn outside_window(
    msg: &MessageFacts,
    facts: &LoadedFacts,
    window_open: bool,
    now: DateTime<Utc>,
) -> Verdict {
    if msg.channel != Channel::WhatsApp {
        return Verdict::na("SMS has no customer-service window");
    }
    match (&msg.content, window_open) {
        (MessageContent::Template { .. }, true) => Verdict::pass("template inside the window"),
        (MessageContent::Template { .. }, false) => {
            Verdict::pass("approved templates may open a conversation")
        }
        (MessageContent::FreeForm, true) => {
            let left = facts
                .window_expires_at
                .map(|e| e - now)
                .unwrap_or_else(Duration::zero);
            Verdict::pass(format!(
                "inside the 24-hour window ({}h{:02}m left)",
                left.num_hours(),
                left.num_minutes() % 60
            ))
        }
        (MessageContent::FreeForm, false) if msg.purpose == Purpose::ComplianceReply => {
            Verdict::pass("reply to the person's own message")
        }
        (MessageContent::FreeForm, false) => Verdict::block(match facts.window_expires_at {
            Some(e) => format!(
                "the 24-hour window closed at {}; only an approved template may go",
                e.format("%Y-%m-%d %H:%M UTC")
            ),
            None => "the person has never written; only an approved template may go".into(),
        }),
    }
}

pub(super) fn marketing_paused(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    if msg.channel != Channel::WhatsApp || !is_marketing(msg, facts) {
        return Verdict::na("not a WhatsApp marketing template");
    }
    match &msg.recipient {
        Some(p) if p.is_us() => Verdict::block(
            "Meta does not deliver WhatsApp MARKETING templates to US numbers; use SMS where consented",
        ),
        _ => Verdict::pass("marketing template to a number outside the US"),
    }
}

/// A sender paused after a fault of ours holds its messages (nothing is
/// dropped) until an admin fixes and re-activates it.
pub(super) fn sender_paused(msg: &MessageFacts, facts: &LoadedFacts) -> Verdict {
    match &facts.sender.paused {
        None => Verdict::pass("the sender is not paused"),
        Some(why) => Verdict::Defer {
            until: sender_paused_until(),
            detail: format!(
                "the {} sender {} is paused ({why}); held until an admin re-activates it",
                msg.channel,
                facts.sender.address.as_deref().unwrap_or("?")
            ),
        },
    }
}

/// A held message's `defer_until` while its sender is paused: far enough
/// that nothing sends it before the sender is re-activated.
pub fn sender_paused_until() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2999, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

//! The preference page: a person opens `/p/{token}` from the link in
//! Heimdall's HELP reply (no login), sees what they agreed to on each
//! channel and for each purpose, when and how, and withdraws one purpose
//! on one channel or everything.
//!
//! A link is a random token (128 bits, 22 characters), stored only as its
//! SHA-256: a copy of the table opens no page. A new one is made for each
//! HELP reply; each stays valid for its contact (the number it was sent
//! to is the proof, as for the double opt-in link). A withdrawal is
//! written, in one transaction, before the page answers; it never lifts
//! anything (only the person's own number does that: START).
//!
//! This module only withdraws; it never records a consent.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use serde::Serialize;

use super::purposes::{self, Purpose};
use super::{current_consent_for, opted_out, OptOutSource, Scope};
use crate::channel::Channel;
use crate::compliance::gates::ConsentStatus;
use crate::entities::{contact, preference_link};
use crate::Core;

/// Posts to preference pages per address in ten minutes: room for a person
/// to press every button, not for guessing links.
pub const POSTS_PER_ADDRESS: u32 = 20;

/// A new link's token, for `contact_id`; only its hash is stored.
pub async fn new_link(
    db: &impl ConnectionTrait,
    contact_id: &str,
    now: DateTime<Utc>,
) -> Result<String, sea_orm::DbErr> {
    use base64::Engine;
    use rand::RngCore;
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    preference_link::ActiveModel {
        token_hash: Set(super::text_hash(&token)),
        contact_id: Set(contact_id.to_string()),
        created_at: Set(now),
        used_at: Set(None),
    }
    .insert(db)
    .await?;
    Ok(token)
}

/// The page's address for a token.
pub fn link_url(core: &Core, token: &str) -> String {
    let mut url = core.settings.public_base();
    url.set_path(&format!("/p/{token}"));
    url.set_query(None);
    url.to_string()
}

/// The contact a token is for. Anything that is not a well-formed token
/// finds nothing without a lookup.
async fn contact_for(
    db: &impl ConnectionTrait,
    token: &str,
) -> Result<Option<contact::Model>, sea_orm::DbErr> {
    let well_formed = (16..=64).contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if !well_formed {
        return Ok(None);
    }
    let Some(link) = preference_link::Entity::find_by_id(super::text_hash(token))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    contact::Entity::find_by_id(link.contact_id).one(db).await
}

/// Where one purpose stands on one channel, as the person reads it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum PurposeState {
    /// Messages for it may be sent.
    Receiving {
        since: DateTime<Utc>,
        /// How the consent was given (`web_form`, `keyword`, `api`, ...).
        how: String,
        /// The consent text's version, when there is one.
        text_version: Option<String>,
        /// Recorded before purposes existed (it covers this purpose).
        before_purposes: bool,
    },
    /// Agreed, waiting for the person's confirmation.
    Pending { since: DateTime<Utc> },
    /// Withdrawn or stopped: nothing for it is sent.
    Stopped { since: DateTime<Utc>, why: String },
    /// Never agreed to: nothing for it is sent.
    NotAgreed,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PurposeLine {
    pub purpose: Purpose,
    pub state: PurposeState,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelLine {
    pub channel: Channel,
    pub purposes: Vec<PurposeLine>,
}

impl ChannelLine {
    /// Anything for it may still be sent on this channel.
    pub fn receiving_any(&self) -> bool {
        self.purposes.iter().any(|p| {
            matches!(
                p.state,
                PurposeState::Receiving { .. } | PurposeState::Pending { .. }
            )
        })
    }
}

/// What the page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PreferenceView {
    /// The number's last digits only ("ending in 4567").
    pub number_hint: String,
    pub channels: Vec<ChannelLine>,
}

impl PreferenceView {
    pub fn receiving_any(&self) -> bool {
        self.channels.iter().any(ChannelLine::receiving_any)
    }
}

async fn view_of(
    db: &impl ConnectionTrait,
    c: &contact::Model,
) -> Result<PreferenceView, sea_orm::DbErr> {
    let all = purposes::list(db).await?;
    let mut channels = Vec::new();
    for channel in Channel::ALL {
        let mut lines = Vec::with_capacity(all.len());
        for p in &all {
            let state = match opted_out(db, &c.id, channel, Some(p)).await? {
                Some(o) => PurposeState::Stopped {
                    since: o.since,
                    why: o.reason,
                },
                None => match current_consent_for(db, &c.id, channel, p).await? {
                    Some(m) => match super::consent_status(&m) {
                        ConsentStatus::Active => PurposeState::Receiving {
                            since: m.captured_at,
                            how: m.source,
                            text_version: m.consent_text_version,
                            before_purposes: m.purpose.is_none(),
                        },
                        ConsentStatus::Pending => PurposeState::Pending {
                            since: m.captured_at,
                        },
                        ConsentStatus::Revoked => PurposeState::Stopped {
                            since: m.revoked_at.unwrap_or(m.created_at),
                            why: m.revocation_source.unwrap_or_default(),
                        },
                    },
                    None => PurposeState::NotAgreed,
                },
            };
            lines.push(PurposeLine {
                purpose: p.clone(),
                state,
            });
        }
        channels.push(ChannelLine {
            channel,
            purposes: lines,
        });
    }
    let digits: String = c.phone_e164.chars().filter(char::is_ascii_digit).collect();
    let tail = &digits[digits.len().saturating_sub(4)..];
    Ok(PreferenceView {
        number_hint: format!("ending in {tail}"),
        channels,
    })
}

/// The page for a token; `None` for a token that opens nothing.
pub async fn view(core: &Core, token: &str) -> Result<Option<PreferenceView>, sea_orm::DbErr> {
    let db = &core.db.conn;
    match contact_for(db, token).await? {
        Some(c) => Ok(Some(view_of(db, &c).await?)),
        None => Ok(None),
    }
}

/// What the person withdraws.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Withdrawal {
    /// Everything, on every channel (as a STOP on each).
    Everything,
    /// One purpose on one channel.
    Purpose { channel: Channel, purpose: String },
}

#[derive(Debug, thiserror::Error)]
pub enum PreferenceError {
    #[error("no purpose named {0}")]
    UnknownPurpose(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// Withdraw, in one transaction, before answering; then the page as it is
/// now. `None` for a token that opens nothing (nothing changed).
pub async fn withdraw(
    core: &Core,
    token: &str,
    what: &Withdrawal,
) -> Result<Option<PreferenceView>, PreferenceError> {
    let now = core.now();
    let txn = core.db.begin_write().await?;
    let Some(c) = contact_for(&txn, token).await? else {
        return Ok(None);
    };
    // Which link did it, without the link itself.
    let reference = format!("preference link {}", &super::text_hash(token)[..12]);
    match what {
        Withdrawal::Everything => {
            super::opt_out(
                &txn,
                &c.id,
                None,
                Scope::All,
                OptOutSource::PreferencePage,
                Some(&reference),
                "preference_page",
                now,
            )
            .await?;
        }
        Withdrawal::Purpose { channel, purpose } => {
            let p = purposes::find(&txn, purpose)
                .await?
                .ok_or_else(|| PreferenceError::UnknownPurpose(purpose.clone()))?;
            super::withdraw_purpose(
                &txn,
                &c.id,
                *channel,
                &p.name,
                OptOutSource::PreferencePage,
                Some(&reference),
                "preference_page",
                now,
            )
            .await?;
        }
    }
    let mut link: preference_link::ActiveModel =
        preference_link::Entity::find_by_id(super::text_hash(token))
            .one(&txn)
            .await?
            .ok_or_else(|| sea_orm::DbErr::RecordNotFound("the preference link".into()))?
            .into();
    link.used_at = Set(Some(now));
    link.update(&txn).await?;
    let view = view_of(&txn, &c).await?;
    txn.commit().await?;
    metrics::counter!("heimdall_preference_withdrawals_total", "what" => match what { Withdrawal::Everything => "everything", Withdrawal::Purpose { .. } => "purpose" }).increment(1);
    Ok(Some(view))
}

//! The human authorization behind messages that no staff member sends by
//! hand: automations (an API key bound to approved templates, approved by
//! an approver who did not create it), and senders (channels) that an admin
//! activated. Every activation and change of a sender is written to
//! `infra_config_changes`.

use chrono::{DateTime, Utc};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::access::accounts::{hash_api_key, Role};
use crate::channel::Channel;
use crate::clock::new_id;
use crate::compliance::gates::{Authorization, SenderFact};
use crate::entities::api_key::{self, Scopes};
use crate::entities::{automation, campaign, channel_config, template};
use crate::settings::WhatsAppProvider;
use crate::Core;

/// Who is calling the internal API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiPrincipal {
    /// `None` for the bootstrap key from settings.
    pub key_id: Option<String>,
    pub name: String,
}

impl ApiPrincipal {
    pub fn actor(&self) -> String {
        match &self.key_id {
            Some(id) => format!("api_key:{}", self.name_or(id)),
            None => "api_key:bootstrap".into(),
        }
    }
    fn name_or<'a>(&'a self, id: &'a str) -> &'a str {
        if self.name.is_empty() {
            id
        } else {
            &self.name
        }
    }
}

/// An authenticated API caller and what its key may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiCaller {
    pub principal: ApiPrincipal,
    pub scopes: Scopes,
}

/// Check an API key: the bootstrap key (constant-time compare) or a stored,
/// unrevoked key (looked up by its hash).
pub async fn authenticate_api_key(
    core: &Core,
    presented: &str,
) -> Result<Option<ApiCaller>, sea_orm::DbErr> {
    let presented = presented.trim();
    if presented.is_empty() {
        return Ok(None);
    }
    if let Some(bootstrap) = &core.settings.api_key {
        let b = bootstrap.expose_secret().as_bytes();
        if b.len() == presented.len() && bool::from(b.ct_eq(presented.as_bytes())) {
            return Ok(Some(ApiCaller {
                principal: ApiPrincipal {
                    key_id: None,
                    name: "bootstrap (HEIMDALL_API_KEY)".into(),
                },
                scopes: core.settings.api_key_scopes.clone(),
            }));
        }
    }
    let hash = hash_api_key(presented);
    let key = api_key::Entity::find()
        .filter(api_key::Column::KeyHash.eq(hash))
        .filter(api_key::Column::RevokedAt.is_null())
        .one(&core.db.conn)
        .await?;
    Ok(key.map(|k| ApiCaller {
        scopes: Scopes::from_stored(&k.scopes),
        principal: ApiPrincipal {
            key_id: Some(k.id),
            name: k.name,
        },
    }))
}

/// The authorization an API principal carries for the gates.
pub async fn automation_authorization(
    core: &Core,
    principal: &ApiPrincipal,
) -> Result<Authorization, sea_orm::DbErr> {
    automation_authorization_for(&core.db.conn, &core.settings, principal, None).await
}

/// As [`automation_authorization`]; when the message's template is known,
/// the bootstrap key's answer is read from it instead of listing every
/// template registered from settings (the send path's hot loop).
pub async fn automation_authorization_for(
    db: &impl ConnectionTrait,
    settings: &crate::settings::Settings,
    principal: &ApiPrincipal,
    template: Option<&crate::templates::Template>,
) -> Result<Authorization, sea_orm::DbErr> {
    // The bootstrap key may reply in free text only when its configurer said so.
    let bootstrap_free_form = settings.api_key_free_form;
    match &principal.key_id {
        None if template.is_some() => Ok(Authorization::Automation {
            name: "bootstrap key".into(),
            approved: true,
            approved_by: Some("the operator who set HEIMDALL_API_KEY".into()),
            templates: template
                .filter(|t| t.source == "settings")
                .map(|t| vec![t.name.clone()])
                .unwrap_or_default(),
            free_form: bootstrap_free_form,
        }),
        None => {
            // The bootstrap key stands for whoever configured it, for the
            // templates registered from settings.
            let templates = template::Entity::find()
                .filter(template::Column::Source.eq("settings"))
                .all(db)
                .await?
                .into_iter()
                .map(|t| t.name)
                .collect();
            Ok(Authorization::Automation {
                name: "bootstrap key".into(),
                approved: true,
                approved_by: Some("the operator who set HEIMDALL_API_KEY".into()),
                templates,
                free_form: bootstrap_free_form,
            })
        }
        Some(key_id) => {
            // A key revoked after the message was accepted no longer
            // authorizes it.
            let live = api_key::Entity::find_by_id(key_id.as_str())
                .filter(api_key::Column::RevokedAt.is_null())
                .one(db)
                .await?
                .is_some();
            if !live {
                return Ok(Authorization::None {
                    why: "the API key behind this message was revoked or deleted".into(),
                });
            }
            let autos = automation::Entity::find()
                .filter(automation::Column::ApiKeyId.eq(key_id))
                .all(db)
                .await?;
            let approved: Vec<&automation::Model> =
                autos.iter().filter(|a| a.status == "approved").collect();
            if approved.is_empty() {
                return Ok(Authorization::Automation {
                    name: autos
                        .first()
                        .map(|a| a.name.clone())
                        .unwrap_or_else(|| principal.name.clone()),
                    approved: false,
                    approved_by: None,
                    templates: vec![],
                    free_form: false,
                });
            }
            let mut templates: Vec<String> = approved
                .iter()
                .flat_map(|a| serde_json::from_str::<Vec<String>>(&a.templates).unwrap_or_default())
                .collect();
            templates.sort();
            templates.dedup();
            // Free-form replies come from the approved automation that allows them
            // (its name and approver are what the verdict cites).
            let speaker = approved
                .iter()
                .find(|a| a.free_form)
                .unwrap_or(&approved[0]);
            Ok(Authorization::Automation {
                name: speaker.name.clone(),
                approved: true,
                approved_by: speaker.approved_by.clone(),
                templates,
                free_form: approved.iter().any(|a| a.free_form),
            })
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AutomationError {
    #[error("no automation with id {0}")]
    NotFound(String),
    #[error("no API key with id {0}")]
    NoKey(String),
    #[error("an automation needs at least one template, or free-form replies inside the window")]
    NoTemplates,
    #[error("template '{0}' is not registered")]
    UnknownTemplate(String),
    #[error("the automation must be approved by someone other than its creator")]
    SelfApproval,
    #[error("only an approver or admin may approve automations")]
    Forbidden,
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

#[derive(Debug, Clone, Serialize)]
pub struct Automation {
    pub id: String,
    pub name: String,
    pub api_key_id: String,
    pub templates: Vec<String>,
    /// May reply in free text inside the 24-hour window.
    pub free_form: bool,
    pub status: String,
    pub created_by: String,
    pub approved_by: Option<String>,
    pub approved_at: Option<DateTime<Utc>>,
}

impl From<automation::Model> for Automation {
    fn from(m: automation::Model) -> Self {
        Automation {
            templates: serde_json::from_str(&m.templates).unwrap_or_default(),
            id: m.id,
            name: m.name,
            api_key_id: m.api_key_id,
            free_form: m.free_form,
            status: m.status,
            created_by: m.created_by,
            approved_by: m.approved_by,
            approved_at: m.approved_at,
        }
    }
}

/// Bind an API key to templates and, when `free_form`, to free-form replies inside the
/// 24-hour window; it sends nothing until an approver who is not `created_by` approves it.
pub async fn create_automation(
    core: &Core,
    name: &str,
    api_key_id: &str,
    templates: &[String],
    free_form: bool,
    created_by: &str,
) -> Result<Automation, AutomationError> {
    if templates.is_empty() && !free_form {
        return Err(AutomationError::NoTemplates);
    }
    if api_key::Entity::find_by_id(api_key_id)
        .one(&core.db.conn)
        .await?
        .is_none()
    {
        return Err(AutomationError::NoKey(api_key_id.to_string()));
    }
    for t in templates {
        if crate::templates::find_by_name(&core.db.conn, t)
            .await?
            .is_none()
        {
            return Err(AutomationError::UnknownTemplate(t.clone()));
        }
    }
    let now = core.clock.now();
    let m = automation::ActiveModel {
        id: Set(new_id()),
        name: Set(name.trim().to_string()),
        api_key_id: Set(api_key_id.to_string()),
        templates: Set(serde_json::to_string(templates).unwrap_or_else(|_| "[]".into())),
        free_form: Set(free_form),
        status: Set("pending".into()),
        created_by: Set(created_by.to_string()),
        approved_by: Set(None),
        approved_at: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&core.db.conn)
    .await?;
    Ok(m.into())
}

/// Approve an automation: an approver (or admin) who is not its creator.
pub async fn approve_automation(
    core: &Core,
    id: &str,
    approver: &str,
    role: Role,
) -> Result<Automation, AutomationError> {
    if !role.allows(Role::Approver) {
        return Err(AutomationError::Forbidden);
    }
    let m = automation::Entity::find_by_id(id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| AutomationError::NotFound(id.to_string()))?;
    if m.created_by == approver {
        return Err(AutomationError::SelfApproval);
    }
    let now = core.clock.now();
    let mut am: automation::ActiveModel = m.into();
    am.status = Set("approved".into());
    am.approved_by = Set(Some(approver.to_string()));
    am.approved_at = Set(Some(now));
    am.updated_at = Set(now);
    Ok(am.update(&core.db.conn).await?.into())
}

pub async fn list_automations(core: &Core) -> Result<Vec<Automation>, sea_orm::DbErr> {
    Ok(automation::Entity::find()
        .order_by_desc(automation::Column::CreatedAt)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(Automation::from)
        .collect())
}

// ---------------------------------------------------------------------------
// Senders (channels)

/// The kind of a sender row for a channel under the current settings.
pub fn sender_kind(core: &Core, channel: Channel) -> &'static str {
    match (channel, core.settings.whatsapp_provider) {
        (Channel::WhatsApp, WhatsAppProvider::Meta) => "meta_whatsapp",
        (Channel::WhatsApp, WhatsAppProvider::Twilio) => "twilio_whatsapp",
        (Channel::Sms, _) => "twilio_sms",
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Sender {
    pub id: String,
    pub kind: String,
    pub address: String,
    pub active: bool,
    pub activated_by: Option<String>,
    pub activated_at: Option<DateTime<Utc>>,
    pub rate_per_sec: Option<i32>,
    /// Paused after a fault of ours, and why (see [`crate::sending::senders`]).
    pub paused_at: Option<DateTime<Utc>>,
    pub paused_reason: Option<String>,
}

impl From<channel_config::Model> for Sender {
    fn from(m: channel_config::Model) -> Self {
        Sender {
            id: m.id,
            kind: m.kind,
            address: m.address,
            active: m.active,
            activated_by: m.activated_by,
            activated_at: m.activated_at,
            rate_per_sec: m.rate_per_sec,
            paused_at: m.paused_at,
            paused_reason: m.paused_reason,
        }
    }
}

/// Make sure every configured sender has a row (inactive until an admin
/// activates it). In sandbox mode the sandbox's senders are activated by
/// the system, since nothing real can be reached; that too is recorded.
pub async fn register_senders(core: &Core, sandbox: bool) -> Result<(), sea_orm::DbErr> {
    let now = core.clock.now();
    for channel in Channel::ALL {
        let Some(address) = core.settings.sender_for(channel) else {
            continue;
        };
        let kind = sender_kind(core, channel);
        let existing = channel_config::Entity::find()
            .filter(channel_config::Column::Kind.eq(kind))
            .filter(channel_config::Column::Address.eq(&address))
            .one(&core.db.conn)
            .await?;
        if existing.is_some() {
            continue;
        }
        let id = new_id();
        channel_config::ActiveModel {
            id: Set(id.clone()),
            kind: Set(kind.to_string()),
            address: Set(address.clone()),
            active: Set(sandbox),
            activated_by: Set(sandbox.then(|| "system (sandbox mode)".to_string())),
            activated_at: Set(sandbox.then_some(now)),
            rate_per_sec: Set(None),
            tier_limit: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            paused_at: Set(None),
            paused_reason: Set(None),
        }
        .insert(&core.db.conn)
        .await?;
        crate::audit::record_infra_change(
            &core.db.conn,
            if sandbox {
                "system (sandbox mode)"
            } else {
                "system (settings)"
            },
            &format!("sender:{kind}:{address}"),
            if sandbox {
                "registered and activated (sandbox)"
            } else {
                "registered (inactive)"
            },
            None,
            Some(serde_json::json!({"kind": kind, "address": address, "active": sandbox})),
            now,
        )
        .await?;
    }
    Ok(())
}

pub async fn list_senders(core: &Core) -> Result<Vec<Sender>, sea_orm::DbErr> {
    Ok(channel_config::Entity::find()
        .order_by_asc(channel_config::Column::Kind)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(Sender::from)
        .collect())
}

/// The `channels` row (kind, address) a message on this channel goes
/// from: `None` when no sender is configured for the channel.
pub fn sender_key(core: &Core, channel: Channel) -> Option<(&'static str, String)> {
    core.settings
        .sender_for(channel)
        .map(|address| (sender_kind(core, channel), address))
}

/// The sender fact, and the sender's own rate, from the sender's key and
/// its `channels` row (read with the message's other facts): a sender may
/// send only when its row is active.
pub fn sender_fact(
    key: Option<&(&'static str, String)>,
    row: Option<&channel_config::Model>,
) -> (SenderFact, Option<i32>) {
    match key {
        None => (
            SenderFact {
                address: None,
                active: false,
                paused: None,
            },
            None,
        ),
        Some((_, address)) => (
            SenderFact {
                address: Some(address.clone()),
                active: row.is_some_and(|r| r.active),
                paused: row
                    .filter(|r| r.paused_at.is_some())
                    .map(|r| r.paused_reason.clone().unwrap_or_else(|| "paused".into())),
            },
            row.and_then(|r| r.rate_per_sec),
        ),
    }
}

/// Everyone who wrote or changed a campaign (its creator at least): none of
/// them may approve it.
pub fn campaign_authors(m: &campaign::Model) -> Vec<String> {
    let mut authors: Vec<String> = serde_json::from_str(&m.authors).unwrap_or_default();
    if !authors.contains(&m.created_by) {
        authors.insert(0, m.created_by.clone());
    }
    authors
}

/// The human decision behind a campaign's messages, for the gates: its
/// state, its authors, its approver and the template it approved (the
/// digest in the approved snapshot, `campaigns::ContentSnapshot`).
pub fn campaign_authorization(m: &campaign::Model) -> Authorization {
    #[derive(Deserialize)]
    struct Approved {
        template_digest: String,
    }
    let approved: Option<Approved> = m
        .approved_snapshot
        .as_deref()
        .and_then(|s| serde_json::from_str(s).ok());
    Authorization::Campaign {
        status: m.status,
        authors: campaign_authors(m),
        approved_by: m.approved_by.clone(),
        approved_template: approved.map(|a| a.template_digest),
    }
}

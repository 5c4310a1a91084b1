//! Purposes: what messages are sent for, as staff define them
//! (`marketing`, `service`, `reminders`, ...). Each template and campaign
//! is tagged with one; each consent row names the one it covers; the
//! consent gate checks the message's purpose.
//!
//! A purpose's name never changes once it exists (consents name it), nor
//! whether it is marketing (a person's "STOP PROMOTIONS" was read against
//! it); its label and description may. Purposes are never deleted.
//!
//! The two created with purposes themselves (migration 070) are `legacy`:
//! a consent recorded before purposes existed (no purpose of its own)
//! covers exactly those, never one defined later.

use chrono::{DateTime, Utc};
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QueryOrder, Set};
use serde::{Deserialize, Serialize};

use crate::entities::purpose;

/// A purpose as defined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Purpose {
    pub name: String,
    pub label: String,
    pub description: String,
    /// A marketing purpose: stopped by a marketing opt-out.
    pub marketing: bool,
    /// Covered by the consents recorded before purposes existed.
    pub legacy: bool,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
}

impl From<purpose::Model> for Purpose {
    fn from(m: purpose::Model) -> Self {
        Purpose {
            name: m.name,
            label: m.label,
            description: m.description,
            marketing: m.marketing,
            legacy: m.legacy,
            created_by: m.created_by,
            created_at: m.created_at,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PurposeError {
    #[error("{0}")]
    Invalid(String),
    #[error("a purpose named {0} already exists")]
    Exists(String),
    #[error("no purpose named {0}")]
    Unknown(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// A purpose's name: 1 to 40 lower-case letters, digits, `-` or `_`,
/// starting with a letter (the settings check `HEIMDALL_DEFAULT_PURPOSE`
/// by the same rule).
pub use crate::settings::check_purpose_name as check_name;

/// Every purpose, by name.
pub async fn list(db: &impl ConnectionTrait) -> Result<Vec<Purpose>, sea_orm::DbErr> {
    Ok(purpose::Entity::find()
        .order_by_asc(purpose::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(Purpose::from)
        .collect())
}

pub async fn find(
    db: &impl ConnectionTrait,
    name: &str,
) -> Result<Option<Purpose>, sea_orm::DbErr> {
    Ok(purpose::Entity::find_by_id(name.trim().to_string())
        .one(db)
        .await?
        .map(Purpose::from))
}

/// The purpose named `name`, or [`PurposeError::Unknown`].
pub async fn require(db: &impl ConnectionTrait, name: &str) -> Result<Purpose, PurposeError> {
    find(db, name)
        .await?
        .ok_or_else(|| PurposeError::Unknown(name.trim().to_string()))
}

/// What staff write to define a purpose.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPurpose {
    pub name: String,
    pub label: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub marketing: bool,
}

fn check_label(label: &str) -> Result<String, PurposeError> {
    let l = label.trim();
    if l.is_empty() || l.chars().count() > 120 {
        return Err(PurposeError::Invalid(
            "the label must be 1 to 120 characters".into(),
        ));
    }
    Ok(l.to_string())
}

fn check_description(description: &str) -> Result<String, PurposeError> {
    let d = description.trim();
    if d.chars().count() > 1000 {
        return Err(PurposeError::Invalid(
            "the description must be at most 1000 characters".into(),
        ));
    }
    Ok(d.to_string())
}

/// Define a purpose. It is not `legacy`: no consent recorded before it
/// existed covers it.
pub async fn create(
    db: &impl ConnectionTrait,
    new: &NewPurpose,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<Purpose, PurposeError> {
    let name = check_name(&new.name).map_err(PurposeError::Invalid)?;
    let label = check_label(&new.label)?;
    let description = check_description(&new.description)?;
    if find(db, &name).await?.is_some() {
        return Err(PurposeError::Exists(name));
    }
    let m = purpose::ActiveModel {
        name: Set(name),
        label: Set(label),
        description: Set(description),
        marketing: Set(new.marketing),
        legacy: Set(false),
        created_by: Set(actor.to_string()),
        created_at: Set(now),
    }
    .insert(db)
    .await?;
    Ok(m.into())
}

/// Change a purpose's label and description (its name and whether it is
/// marketing never change).
pub async fn relabel(
    db: &impl ConnectionTrait,
    name: &str,
    label: &str,
    description: &str,
) -> Result<Purpose, PurposeError> {
    let label = check_label(label)?;
    let description = check_description(description)?;
    let Some(m) = purpose::Entity::find_by_id(name.trim().to_string())
        .one(db)
        .await?
    else {
        return Err(PurposeError::Unknown(name.trim().to_string()));
    };
    let mut am: purpose::ActiveModel = m.into();
    am.label = Set(label);
    am.description = Set(description);
    Ok(am.update(db).await?.into())
}

/// The purposes a consent claim covers: each one it names, which must be
/// defined; naming none, every purpose defined now (and the consent rows
/// then name each, so the record says what it covered).
pub async fn claimed(
    db: &impl ConnectionTrait,
    names: &[String],
) -> Result<Vec<Purpose>, PurposeError> {
    if names.is_empty() {
        return Ok(list(db).await?);
    }
    let mut out: Vec<Purpose> = Vec::with_capacity(names.len());
    for name in names {
        let p = require(db, name).await?;
        if !out.iter().any(|o| o.name == p.name) {
            out.push(p);
        }
    }
    Ok(out)
}

/// Purpose names written in one text: separated by spaces, commas or `|`.
pub fn parse_list(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || c == ',' || c == '|')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The purposes a consent covers as a person would read them: its own, or
/// for one recorded before purposes, the legacy ones.
pub fn covered<'a>(consent_purpose: Option<&str>, all: &'a [Purpose]) -> Vec<&'a Purpose> {
    all.iter()
        .filter(|p| match consent_purpose {
            Some(name) => p.name == name,
            None => p.legacy,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_lower_case_words() {
        assert_eq!(check_name(" reminders ").unwrap(), "reminders");
        assert_eq!(check_name("order-updates_2").unwrap(), "order-updates_2");
        for bad in [
            "",
            "Marketing",
            "2fa",
            "a b",
            "x".repeat(41).as_str(),
            "mkt;drop",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?} accepted");
        }
    }
}

//! Redaction: replace personal fields of a chained row (erasure) with a
//! recorded `redacted` entry, so that the chain still verifies and shows
//! what was replaced, when, why and by whom.

use std::collections::BTreeMap;

use sea_orm::sea_query::{Alias, Expr, ExprTrait, Query};
use sea_orm::{ConnectionTrait, DbErr, Set};

use super::content::{self, content_hash, content_pairs, digest, is_redaction, Detail};
use super::seal::lock;
use super::Stream;
use crate::entities::audit_chain;
use crate::Core;

/// Why a redaction was refused.
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("{0} is not a chained table")]
    UnknownTable(String),
    #[error("{field} is not a personal field of {table} (those are: {allowed})")]
    NotPersonal {
        table: String,
        field: String,
        allowed: String,
    },
    #[error("no field to redact")]
    NoField,
    #[error("no row {1} in {0}")]
    NotFound(String, String),
    #[error("the row is not chained yet (the sealer chains it within seconds)")]
    NotSealed,
    #[error("{0} was redacted already")]
    AlreadyRedacted(String),
    /// Redacting would record a changed value as the original one.
    #[error("the row no longer matches its chain ({0}): it is not redacted")]
    Tampered(String),
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// Replace `fields` of a chained row with their placeholders (NULL, or a
/// fixed value where the column is required: see [`super::personal_fields`])
/// and chain a `redacted` entry recording each field's original digest,
/// the reason and the actor. Returns the entry's seq.
pub async fn redact(
    core: &Core,
    row_table: &str,
    row_id: &str,
    fields: &[&str],
    reason: &str,
    actor: &str,
) -> Result<i64, RedactError> {
    let table = Stream::parse(row_table)
        .ok_or_else(|| RedactError::UnknownTable(row_table.into()))?
        .table();
    let replacements: Vec<(&str, Option<&str>)> = fields
        .iter()
        .map(|f| {
            let placeholder = table
                .personal
                .iter()
                .find(|(p, _)| p == f)
                .and_then(|(_, v)| *v);
            (*f, placeholder)
        })
        .collect();
    redact_to(core, row_table, row_id, &replacements, reason, actor).await
}

/// [`redact`] with the values to put in each field's place (an erasure
/// that keeps a keyed hash of the number, say).
pub async fn redact_to(
    core: &Core,
    row_table: &str,
    row_id: &str,
    replacements: &[(&str, Option<&str>)],
    reason: &str,
    actor: &str,
) -> Result<i64, RedactError> {
    let stream =
        Stream::parse(row_table).ok_or_else(|| RedactError::UnknownTable(row_table.into()))?;
    let table = stream.table();
    if replacements.is_empty() {
        return Err(RedactError::NoField);
    }
    let mut fields: Vec<(&'static str, Option<String>)> = Vec::new();
    for (field, value) in replacements {
        let Some((name, _)) = table.personal.iter().find(|(p, _)| p == field) else {
            return Err(RedactError::NotPersonal {
                table: table.name.into(),
                field: field.to_string(),
                allowed: super::personal_fields(table.name).join(", "),
            });
        };
        if !fields.iter().any(|(f, _)| f == name) {
            fields.push((name, value.map(str::to_string)));
        }
    }

    let txn = core.db.begin_write().await?;
    lock(&txn, stream).await?;
    let ids = [row_id.to_string()];
    let Some(mut row) = content::rows_by_id(&txn, table, &ids).await?.remove(row_id) else {
        return Err(RedactError::NotFound(table.name.into(), row_id.into()));
    };
    let entries = content::entries_of(&txn, table, &ids)
        .await?
        .remove(row_id)
        .unwrap_or_default();
    if !entries.iter().any(|e| e.event == table.created().name) {
        return Err(RedactError::NotSealed);
    }
    let mut redactions = 0;
    for e in entries.iter().filter(|e| is_redaction(&e.event)) {
        redactions += 1;
        let done = Detail::parse(e.detail.as_deref()).map_err(RedactError::Tampered)?;
        if let Some((f, _)) = fields.iter().find(|(f, _)| done.redacted.contains_key(*f)) {
            return Err(RedactError::AlreadyRedacted(f.to_string()));
        }
    }
    // The originals recorded must be what was chained, not a value
    // changed by hand since.
    for e in &entries {
        if content::recompute(table, e, &row, &entries).map_err(RedactError::Tampered)?
            != e.content_hash
        {
            return Err(RedactError::Tampered(format!(
                "its {} entry, seq {}",
                e.event, e.seq
            )));
        }
    }

    let mut originals = BTreeMap::new();
    let mut update = Query::update();
    update.table(Alias::new(table.name));
    for (field, value) in &fields {
        originals.insert(field.to_string(), hex::encode(digest(row.get(field))));
        update.value(Alias::new(*field), value.clone());
        row.set(field, value.clone());
    }
    update.and_where(Expr::col(Alias::new("id")).eq(row_id));
    txn.execute(&update).await?;

    let event = match redactions {
        0 => "redacted".to_string(),
        n => format!("redacted.{}", n + 1),
    };
    let detail = Detail {
        redacted: originals,
        reason: Some(reason.to_string()),
        actor: Some(actor.to_string()),
        ..Default::default()
    };
    let content = content_hash(
        &content_pairs(table, &event, &row, &detail, &BTreeMap::new())
            .map_err(RedactError::Tampered)?,
    );
    let (head, prev) = content::head(&txn, stream).await?;
    let seq = head + 1;
    let hash = content::link_hash(
        &prev,
        stream.as_str(),
        seq,
        table.name,
        row_id,
        &event,
        &content,
    );
    sea_orm::ActiveModelTrait::insert(
        audit_chain::ActiveModel {
            stream: Set(stream.as_str().to_string()),
            seq: Set(seq),
            row_table: Set(table.name.to_string()),
            row_id: Set(row_id.to_string()),
            event: Set(event),
            content_hash: Set(content),
            prev_hash: Set(prev),
            hash: Set(hash),
            detail: Set(detail.to_text()),
            sealed_at: Set(core.now()),
        },
        &txn,
    )
    .await?;
    txn.commit().await?;
    Ok(seq)
}

//! The `retention_runs` table: what each run of the retention job purged,
//! per kind of data (see [`crate::housekeeping::retention`]).

use sea_orm::entity::prelude::*;
use serde::Serialize;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize)]
#[sea_orm(table_name = "retention_runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// `message_bodies`, `inbound_texts`, `webhook_audit` or `consent_evidence`.
    pub kind: String,
    /// Rows whose content was cleared (or, for webhook audit, deleted).
    pub purged: i64,
    /// Rows due but left for the next run (a consent not chained yet).
    pub deferred: i64,
    pub ran_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

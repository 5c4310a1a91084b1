//! A consent record's status. Only `active` lets a message through the
//! `no_consent` gate; a revoked one (or one with a revocation time) and a
//! pending one (double opt-in not yet confirmed) do not.

use serde::{Deserialize, Serialize};

/// Stored as its [`as_str`](ConsentStatus::as_str) name; with the `db`
/// feature it is the `consents.status` column's own type, so a stored
/// name this enum does not know is a read error (never read as active).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(sea_orm::DeriveValueType))]
#[cfg_attr(
    feature = "db",
    sea_orm(value_type = "String", from_str = "ConsentStatus::from_stored")
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ConsentStatus {
    Active,
    /// Waiting for the person's confirmation (double opt-in), or for proof
    /// from the number after a STOP.
    Pending,
    Revoked,
}

crate::named_values!(ConsentStatus, "consent status", {
    Active => "active",
    Pending => "pending",
    Revoked => "revoked",
});

#[cfg(test)]
mod tests {
    use super::ConsentStatus as S;

    #[test]
    fn names_round_trip_and_unknown_ones_are_errors() {
        for s in S::ALL {
            assert_eq!(S::from_stored(s.as_str()), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        for other in ["ACTIVE", "opted_in", ""] {
            assert!(S::from_stored(other).is_err(), "{other}");
        }
    }
}

//! A WhatsApp template's approval state, as Heimdall records it, and the
//! one mapping from what Twilio's Content API and Meta's Graph API report.
//! Only an approved template may be sent (the `template_not_approved`
//! gate); the console offers only approved ones.

use serde::{Deserialize, Serialize};

/// Stored as its [`as_str`](TemplateApproval::as_str) name; with the `db`
/// feature it is the `templates.approval_status` column's own type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(sea_orm::DeriveValueType))]
#[cfg_attr(
    feature = "db",
    sea_orm(value_type = "String", from_str = "TemplateApproval::from_stored")
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TemplateApproval {
    /// Submitted, or in a state the provider reports that we do not know:
    /// not sendable until the provider says approved.
    Pending,
    Approved,
    Rejected,
    /// Paused by Meta for its quality rating.
    Paused,
    Disabled,
}

crate::named_values!(TemplateApproval, "template approval status", {
    Pending => "pending",
    Approved => "approved",
    Rejected => "rejected",
    Paused => "paused",
    Disabled => "disabled",
});

impl TemplateApproval {
    /// What Twilio's Content API (`approval_requests.whatsapp.status`) or
    /// Meta's Graph API (`status`, upper case) reports, in either case.
    /// Anything else (`received`, `in_review`, `unsubmitted`, a state added
    /// later) is pending: never sendable on a guess.
    pub fn from_provider(status: &str) -> TemplateApproval {
        match status.to_ascii_lowercase().as_str() {
            "approved" => TemplateApproval::Approved,
            "rejected" => TemplateApproval::Rejected,
            "paused" => TemplateApproval::Paused,
            "disabled" => TemplateApproval::Disabled,
            _ => TemplateApproval::Pending,
        }
    }

    pub fn is_approved(self) -> bool {
        self == TemplateApproval::Approved
    }
}

#[cfg(test)]
mod tests {
    use super::TemplateApproval as A;

    #[test]
    fn names_round_trip_and_match_serde() {
        for a in A::ALL {
            assert_eq!(A::parse(a.as_str()), Some(a));
            assert_eq!(A::from_stored(a.as_str()), Ok(a));
            assert_eq!(
                serde_json::to_string(&a).unwrap(),
                format!("\"{}\"", a.as_str())
            );
        }
        assert!(A::from_stored("APPROVED").is_err());
        assert!(A::from_stored("").is_err());
    }

    #[test]
    fn providers_statuses_map_and_unknown_ones_are_pending() {
        // Twilio (lower case) and Meta (upper case).
        assert_eq!(A::from_provider("approved"), A::Approved);
        assert_eq!(A::from_provider("APPROVED"), A::Approved);
        assert_eq!(A::from_provider("REJECTED"), A::Rejected);
        assert_eq!(A::from_provider("paused"), A::Paused);
        assert_eq!(A::from_provider("DISABLED"), A::Disabled);
        for other in ["received", "PENDING", "IN_APPEAL", "unsubmitted", ""] {
            assert_eq!(A::from_provider(other), A::Pending, "{other}");
            assert!(!A::from_provider(other).is_approved());
        }
    }
}

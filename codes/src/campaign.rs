//! A campaign's states and the one table of what may happen to it in each
//! ([`CampaignStatus::apply`]). The server applies it (with a
//! compare-and-set on the stored status); the console asks it which
//! buttons to offer, so it never offers what the server would refuse.

use serde::{Deserialize, Serialize};

/// Stored as its [`as_str`](CampaignStatus::as_str) name; with the `db`
/// feature it is the `campaigns.status` column's own type (a stored name
/// this enum does not know is a read error, never a silent draft).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "db", derive(sea_orm::DeriveValueType))]
#[cfg_attr(
    feature = "db",
    sea_orm(value_type = "String", from_str = "CampaignStatus::from_stored")
)]
#[serde(rename_all = "snake_case")]
pub enum CampaignStatus {
    Draft,
    Submitted,
    Approved,
    Rejected,
    Scheduled,
    Sending,
    Paused,
    Completed,
    Cancelled,
}

/// What someone, or the scheduler, does to a campaign. The two actions
/// whose outcome depends on the campaign carry what decides it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CampaignAction {
    /// Change its content, audience or schedule (a rejected one becomes a
    /// draft again).
    Edit,
    Submit,
    /// A second person approves what they reviewed.
    Approve {
        /// Its send time is still ahead.
        scheduled_ahead: bool,
    },
    Reject,
    Pause,
    Resume {
        /// Its fan-out had started before the pause.
        fanned_out: bool,
        /// Its send time is still ahead.
        scheduled_ahead: bool,
    },
    Cancel,
    /// Its scheduled time came.
    Start,
    /// The fan-out claims it (it continues one that did not finish).
    FanOut,
    /// Every recipient's message was accepted and none is waiting.
    Complete,
    /// What would go out is no longer what was approved: back to review.
    ReturnToReview,
}

impl CampaignAction {
    /// The verb, for errors ("cannot approve a campaign that is draft").
    pub fn name(self) -> &'static str {
        match self {
            CampaignAction::Edit => "edit",
            CampaignAction::Submit => "submit",
            CampaignAction::Approve { .. } => "approve",
            CampaignAction::Reject => "reject",
            CampaignAction::Pause => "pause",
            CampaignAction::Resume { .. } => "resume",
            CampaignAction::Cancel => "cancel",
            CampaignAction::Start => "start",
            CampaignAction::FanOut => "fan out",
            CampaignAction::Complete => "complete",
            CampaignAction::ReturnToReview => "return to review",
        }
    }
}

crate::named_values!(CampaignStatus, "campaign status", {
    Draft => "draft",
    Submitted => "submitted",
    Approved => "approved",
    Rejected => "rejected",
    Scheduled => "scheduled",
    Sending => "sending",
    Paused => "paused",
    Completed => "completed",
    Cancelled => "cancelled",
});

impl CampaignStatus {
    /// Nothing more can happen to the campaign.
    pub fn is_terminal(self) -> bool {
        matches!(self, CampaignStatus::Completed | CampaignStatus::Cancelled)
    }

    /// Not yet approved: a review applies.
    pub fn before_approval(self) -> bool {
        matches!(
            self,
            CampaignStatus::Draft | CampaignStatus::Submitted | CampaignStatus::Rejected
        )
    }

    /// An approval stands behind its messages (the gates let them go in
    /// these states; a paused or cancelled campaign's messages wait or stop).
    pub fn authorizes_sending(self) -> bool {
        matches!(
            self,
            CampaignStatus::Approved
                | CampaignStatus::Scheduled
                | CampaignStatus::Sending
                | CampaignStatus::Completed
        )
    }

    /// The one table: the status `action` leads to from this one, or
    /// `None` when it may not happen now.
    pub fn apply(self, action: CampaignAction) -> Option<CampaignStatus> {
        use CampaignAction as A;
        use CampaignStatus as S;
        match (self, action) {
            (S::Draft | S::Rejected, A::Edit) => Some(S::Draft),
            (S::Draft, A::Submit) => Some(S::Submitted),
            (S::Submitted, A::Approve { scheduled_ahead }) => Some(if scheduled_ahead {
                S::Scheduled
            } else {
                S::Approved
            }),
            (S::Submitted, A::Reject) => Some(S::Rejected),
            (S::Approved | S::Scheduled | S::Sending, A::Pause) => Some(S::Paused),
            (
                S::Paused,
                A::Resume {
                    fanned_out,
                    scheduled_ahead,
                },
            ) => Some(if fanned_out {
                S::Sending
            } else if scheduled_ahead {
                S::Scheduled
            } else {
                S::Approved
            }),
            (s, A::Cancel) if !s.is_terminal() => Some(S::Cancelled),
            (S::Scheduled, A::Start) => Some(S::Approved),
            (S::Approved | S::Scheduled | S::Sending, A::FanOut) => Some(S::Sending),
            (S::Sending, A::Complete) => Some(S::Completed),
            (S::Approved | S::Scheduled | S::Sending, A::ReturnToReview) => Some(S::Submitted),
            _ => None,
        }
    }

    /// Whether `action` may happen now (for the console's buttons).
    pub fn allows(self, action: CampaignAction) -> bool {
        self.apply(action).is_some()
    }
}

impl std::str::FromStr for CampaignStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s.trim()).ok_or_else(|| format!("unknown campaign status '{}'", s.trim()))
    }
}

#[cfg(test)]
mod tests {
    use super::CampaignAction as A;
    use super::CampaignStatus as S;

    const ACTIONS: [A; 12] = [
        A::Edit,
        A::Submit,
        A::Approve {
            scheduled_ahead: false,
        },
        A::Approve {
            scheduled_ahead: true,
        },
        A::Reject,
        A::Pause,
        A::Resume {
            fanned_out: true,
            scheduled_ahead: false,
        },
        A::Cancel,
        A::Start,
        A::FanOut,
        A::Complete,
        A::ReturnToReview,
    ];

    #[test]
    fn nothing_leaves_an_ended_campaign() {
        for s in [S::Completed, S::Cancelled] {
            for a in ACTIONS {
                assert_eq!(s.apply(a), None, "{s} {}", a.name());
            }
        }
    }

    #[test]
    fn only_an_approval_leads_to_sending() {
        // Every path to a status that authorizes sending passes an approval:
        // from a status before approval, only Approve gets there.
        for s in S::ALL.into_iter().filter(|s| s.before_approval()) {
            for a in ACTIONS {
                if let Some(next) = s.apply(a) {
                    assert!(
                        !next.authorizes_sending() || matches!(a, A::Approve { .. }),
                        "{s} -{}-> {next}",
                        a.name()
                    );
                }
            }
        }
        // A draft cannot be approved without being submitted, nor a rejected
        // one submitted without being edited back into a draft.
        assert_eq!(
            S::Draft.apply(A::Approve {
                scheduled_ahead: false
            }),
            None
        );
        assert_eq!(S::Rejected.apply(A::Submit), None);
        assert_eq!(S::Rejected.apply(A::Edit), Some(S::Draft));
    }

    #[test]
    fn the_stored_names_read_back() {
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
            assert_eq!(s.as_str().parse::<S>(), Ok(s));
        }
        assert!("nonsense".parse::<S>().is_err());
    }
}

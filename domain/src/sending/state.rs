//! Every write of an outbound message's state starts here: [`moving`]
//! names the states a message may be in for the write to apply (the
//! compare-and-set that keeps two workers, a late report or a cancelled
//! campaign from overwriting each other) and checks the move against the
//! one state machine ([`MessageState::may_become`]).
//!
//! (The send path's batched rows, `store::message_writes`, carry the
//! gates' and the provider's outcomes; their states are the worker's own
//! and are written with the claim that guards them.)

use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use crate::compliance::message_state::MessageState;
use crate::entities::outbound_message;

/// An update of the messages that are in one of `from` to `to`; the caller
/// adds which messages (by id, part, campaign) and the other columns.
pub fn moving(
    from: &[MessageState],
    to: MessageState,
) -> sea_orm::UpdateMany<outbound_message::Entity> {
    debug_assert!(
        from.iter().all(|f| f.may_become(to)),
        "a move the state machine does not allow: {from:?} -> {to}"
    );
    outbound_message::Entity::update_many()
        .col_expr(outbound_message::Column::State, Expr::value(to.as_str()))
        .filter(outbound_message::Column::State.is_in(from.iter().map(|s| s.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sea_orm::{DbBackend, QueryTrait};

    #[test]
    fn the_update_names_its_states() {
        let sql = moving(
            &[MessageState::Queued, MessageState::Deferred],
            MessageState::Cancelled,
        )
        .build(DbBackend::Postgres)
        .to_string();
        assert!(sql.contains(r#""state" = 'cancelled'"#), "{sql}");
        assert!(
            sql.contains(r#""state" IN ('queued', 'deferred')"#),
            "{sql}"
        );
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "does not allow")]
    fn a_move_out_of_the_diagram_is_refused() {
        let _ = moving(&[MessageState::Blocked], MessageState::Queued);
    }
}

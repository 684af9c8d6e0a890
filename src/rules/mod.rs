//! Streaming rules: the model of a `rules` row ([`model`]), the pure evaluator ([`eval`]) and the
//! room-level settling of caps and requests ([`queue`]) and the checker behind `podium rules check`
//! ([`check`]).

pub mod check;
pub mod eval;
pub mod explain;
pub mod model;
#[cfg(test)]
mod properties;
pub mod queue;
pub mod window;

pub use eval::{Decision, OccupantFacts, Reason, RoomRules, RuleSet, Standing};
pub use explain::{Inputs, explain, room_rules_text, rules_text};
pub use model::{Effect, Grant, GrantRow, Rule, RuleProblem, RuleRow, Service};
pub use queue::{Seat, settle};

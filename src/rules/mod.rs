//! Streaming rules: the model of a `rules` row ([`model`]), the pure evaluator ([`eval`]) and the
//! checker behind `podium rules check` ([`check`]).

pub mod check;
pub mod eval;
pub mod model;
pub mod window;

pub use eval::{Decision, OccupantFacts, Reason, RoomRules, RuleSet};
pub use model::{Effect, Rule, RuleProblem, RuleRow, Service};

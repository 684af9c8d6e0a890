//! Streaming rules: the model of a `rules` row ([`model`]) and the pure evaluator ([`eval`]).

pub mod eval;
pub mod model;

pub use eval::{Decision, OccupantFacts, Reason, RoomRules, RuleSet};
pub use model::{Effect, Rule, RuleProblem, RuleRow, Service};

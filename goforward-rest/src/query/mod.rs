//! Parsing of the request: the PostgREST query-string grammar ([`parse`],
//! [`select`], [`filter`]) and the headers ([`headers`]). Pure functions, no
//! schema: names are checked later by the planner.

pub mod filter;
pub mod headers;
pub mod parse;
pub mod select;

pub use filter::{Expr, FtsKind, Operand, RawOp};
pub use headers::{Accept, Prefer, RangeHeader};
pub use parse::{EmbedModifiers, Field, Limits, OrderTerm, ParsedQuery, parse_query};
pub use select::{AggFunc, Cast, SelectItem};

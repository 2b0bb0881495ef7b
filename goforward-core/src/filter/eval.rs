//! In-memory evaluation of a [`Filter`] against a JSON row, with SQL's
//! three-valued logic: a comparison involving NULL (or a missing column) is
//! [`Truth::Unknown`], `NOT unknown` is unknown, and only [`Truth::True`] matches.
//!
//! Values compare as SQL does for same-typed operands: numbers numerically,
//! strings by bytes (PostgreSQL's "C" collation), booleans `false < true`.
//! Operands of different types are incomparable: [`Truth::Unknown`].

use std::cmp::Ordering;

use serde_json::Value;

use super::{Comparison, Filter, Op};

/// SQL's three truth values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Truth {
    /// Holds.
    True,
    /// Does not hold.
    False,
    /// Involves NULL: neither holds nor fails (and does not match).
    Unknown,
}

impl Truth {
    fn from_bool(b: bool) -> Self {
        if b { Truth::True } else { Truth::False }
    }

    fn not(self) -> Self {
        match self {
            Truth::True => Truth::False,
            Truth::False => Truth::True,
            Truth::Unknown => Truth::Unknown,
        }
    }
}

impl Filter {
    /// Evaluates the filter on `row` (a JSON object of column → value).
    pub fn eval(&self, row: &Value) -> Truth {
        match self {
            Filter::True => Truth::True,
            Filter::False => Truth::False,
            Filter::And { filters } => {
                filters
                    .iter()
                    .fold(Truth::True, |acc, f| match (acc, f.eval(row)) {
                        (Truth::False, _) | (_, Truth::False) => Truth::False,
                        (Truth::Unknown, _) | (_, Truth::Unknown) => Truth::Unknown,
                        _ => Truth::True,
                    })
            }
            Filter::Or { filters } => {
                filters
                    .iter()
                    .fold(Truth::False, |acc, f| match (acc, f.eval(row)) {
                        (Truth::True, _) | (_, Truth::True) => Truth::True,
                        (Truth::Unknown, _) | (_, Truth::Unknown) => Truth::Unknown,
                        _ => Truth::False,
                    })
            }
            Filter::Not { filter } => filter.eval(row).not(),
            Filter::Cmp(c) => c.eval(row),
        }
    }

    /// True when the filter holds on `row` ([`Truth::True`]).
    pub fn matches(&self, row: &Value) -> bool {
        self.eval(row) == Truth::True
    }
}

fn lookup<'a>(row: &'a Value, column: &str, path: &[String]) -> &'a Value {
    let mut current = row.get(column).unwrap_or(&Value::Null);
    for step in path {
        current = match current {
            Value::Object(map) => map.get(step).unwrap_or(&Value::Null),
            Value::Array(items) => step
                .parse::<usize>()
                .ok()
                .and_then(|i| items.get(i))
                .unwrap_or(&Value::Null),
            _ => &Value::Null,
        };
    }
    current
}

/// SQL comparison of two non-null scalars; `None` when incomparable.
fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => Some(x.as_bytes().cmp(y.as_bytes())),
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

impl Comparison {
    fn eval(&self, row: &Value) -> Truth {
        let left = lookup(row, &self.column, &self.json_path);
        match self.op {
            Op::Is => match (&self.value, left) {
                (Value::Null, v) => Truth::from_bool(v.is_null()),
                (Value::Bool(b), v) => Truth::from_bool(v.as_bool() == Some(*b)),
                (Value::String(s), v) if s == "unknown" => Truth::from_bool(v.is_null()),
                _ => Truth::False,
            },
            Op::IsDistinct => match (left, &self.value) {
                (Value::Null, Value::Null) => Truth::False,
                (Value::Null, _) | (_, Value::Null) => Truth::True,
                (l, r) => Truth::from_bool(compare(l, r) != Some(Ordering::Equal)),
            },
            // An empty list is constant FALSE (how it renders in SQL), even for NULL.
            Op::In if self.value.as_array().is_some_and(Vec::is_empty) => Truth::False,
            _ if left.is_null() => Truth::Unknown,
            Op::In => {
                let Value::Array(items) = &self.value else {
                    return Truth::Unknown;
                };
                let mut saw_unknown = false;
                for item in items {
                    match compare(left, item) {
                        Some(Ordering::Equal) => return Truth::True,
                        None => saw_unknown = true,
                        Some(_) => {}
                    }
                }
                if saw_unknown {
                    Truth::Unknown
                } else {
                    Truth::False
                }
            }
            Op::Like | Op::ILike => match (left, &self.value) {
                (Value::String(s), Value::String(p)) => {
                    let insensitive = self.op == Op::ILike;
                    Truth::from_bool(like(s, p, insensitive))
                }
                _ => Truth::Unknown,
            },
            Op::Cs => contains(left, &self.value),
            Op::Cd => contains(&self.value, left),
            Op::Ov => match (left, &self.value) {
                (Value::Array(a), Value::Array(b)) => {
                    Truth::from_bool(a.iter().any(|x| b.contains(x)))
                }
                _ => Truth::Unknown,
            },
            _ if self.value.is_null() => Truth::Unknown,
            op => match compare(left, &self.value) {
                None => Truth::Unknown,
                Some(ord) => Truth::from_bool(match op {
                    Op::Eq => ord == Ordering::Equal,
                    Op::Neq => ord != Ordering::Equal,
                    Op::Gt => ord == Ordering::Greater,
                    Op::Gte => ord != Ordering::Less,
                    Op::Lt => ord == Ordering::Less,
                    _ => ord != Ordering::Greater,
                }),
            },
        }
    }
}

/// jsonb `@>` semantics: arrays contain every element of the operand,
/// objects contain every key with a contained value, scalars are equal.
fn contains(outer: &Value, inner: &Value) -> Truth {
    if outer.is_null() || inner.is_null() {
        return Truth::Unknown;
    }
    fn holds(outer: &Value, inner: &Value) -> bool {
        match (outer, inner) {
            (Value::Array(o), Value::Array(i)) => i.iter().all(|x| o.iter().any(|y| holds(y, x))),
            (Value::Object(o), Value::Object(i)) => i
                .iter()
                .all(|(k, v)| o.get(k).is_some_and(|ov| holds(ov, v))),
            (o, i) => compare(o, i) == Some(Ordering::Equal) || o == i,
        }
    }
    Truth::from_bool(holds(outer, inner))
}

/// SQL LIKE: `%` any run, `_` one character, `\` escapes the next character.
fn like(text: &str, pattern: &str, insensitive: bool) -> bool {
    let fold = |s: &str| {
        if insensitive {
            s.to_lowercase()
        } else {
            s.to_owned()
        }
    };
    let text: Vec<char> = fold(text).chars().collect();
    let mut tokens: Vec<Option<char>> = Vec::new(); // None = %, Some('\u{0}')… literal; '_' marked separately
    let mut singles: Vec<bool> = Vec::new();
    let mut chars = fold(pattern).chars().collect::<Vec<_>>().into_iter();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                tokens.push(Some(chars.next().unwrap_or('\\')));
                singles.push(false);
            }
            '%' => {
                tokens.push(None);
                singles.push(false);
            }
            '_' => {
                tokens.push(Some('_'));
                singles.push(true);
            }
            other => {
                tokens.push(Some(other));
                singles.push(false);
            }
        }
    }
    // Dynamic programming over (token index, text index).
    let (n, m) = (tokens.len(), text.len());
    let mut dp = vec![vec![false; m + 1]; n + 1];
    dp[0][0] = true;
    for i in 1..=n {
        for j in 0..=m {
            dp[i][j] = match tokens[i - 1] {
                None => dp[i - 1][j] || (j > 0 && dp[i][j - 1]),
                Some(_) if singles[i - 1] => j > 0 && dp[i - 1][j - 1],
                Some(c) => j > 0 && dp[i - 1][j - 1] && text[j - 1] == c,
            };
        }
    }
    dp[n][m]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn three_valued_logic() {
        let row = json!({"a": null, "b": 1});
        let a_eq = Filter::cmp("a", Op::Eq, 1);
        assert_eq!(a_eq.eval(&row), Truth::Unknown);
        assert_eq!(Filter::not(a_eq.clone()).eval(&row), Truth::Unknown);
        assert_eq!(
            Filter::or([a_eq.clone(), Filter::eq("b", 1)]).eval(&row),
            Truth::True
        );
        assert_eq!(
            Filter::and([a_eq.clone(), Filter::eq("b", 2)]).eval(&row),
            Truth::False
        );
        assert_eq!(
            Filter::cmp("a", Op::Is, Value::Null).eval(&row),
            Truth::True
        );
        assert_eq!(
            Filter::cmp("missing", Op::Is, "unknown").eval(&row),
            Truth::True
        );
        assert_eq!(Filter::cmp("a", Op::IsDistinct, 1).eval(&row), Truth::True);
        assert_eq!(
            Filter::cmp("b", Op::In, json!([2, null])).eval(&row),
            Truth::Unknown
        );
        assert_eq!(
            Filter::cmp("b", Op::In, json!([1, null])).eval(&row),
            Truth::True
        );
    }

    #[test]
    fn like_patterns() {
        assert!(like("hello", "h%o", false));
        assert!(like("hello", "h_llo", false));
        assert!(!like("Hello", "h%", false));
        assert!(like("Hello", "h%", true));
        assert!(like("50%", "50\\%", false));
        assert!(!like("500", "50\\%", false));
        assert!(like("", "%", false));
    }

    #[test]
    fn contains_and_json_paths() {
        let row = json!({"tags": ["a", "b"], "meta": {"x": {"y": 2}}});
        assert!(Filter::cmp("tags", Op::Cs, json!(["a"])).matches(&row));
        assert!(Filter::cmp("tags", Op::Cd, json!(["a", "b", "c"])).matches(&row));
        assert!(Filter::cmp("tags", Op::Ov, json!(["z", "b"])).matches(&row));
        let path = Filter::Cmp(Comparison {
            column: "meta".into(),
            json_path: vec!["x".into(), "y".into()],
            op: Op::Gt,
            value: json!(1),
        });
        assert!(path.matches(&row));
    }
}

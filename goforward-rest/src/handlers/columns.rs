//! Column-level policies: which columns a role may read and which it may
//! write, per table ([`ColumnPolicy`], given with `Rest::column_policy`).
//!
//! A column a role may not read behaves for that role exactly like a hidden
//! column (absent from `*`, "does not exist" when selected, filtered,
//! ordered or embedded through). Writing a column the role may read but not
//! write answers 401/403 `42501` naming the column; nothing is written.
//! service_role bypasses column policies as it bypasses row policies.

use std::collections::HashMap;

/// Per-role readable / writable column lists of one table. Roles are
/// `anon`, `authenticated` or a custom role name; `"*"` applies to every
/// role not listed. A role with no list (and no `"*"`) is unrestricted.
///
/// ```
/// use goforward_rest::ColumnPolicy;
///
/// let policy = ColumnPolicy::new()
///     .readable("anon", ["id", "username"])
///     .writable("authenticated", ["username", "bio"]);
/// assert!(policy.may_read("anon", "username"));
/// assert!(!policy.may_read("anon", "email"));
/// assert!(policy.may_read("authenticated", "email"));
/// assert!(!policy.may_write("authenticated", "email"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct ColumnPolicy {
    read: HashMap<String, Vec<String>>,
    write: HashMap<String, Vec<String>>,
}

impl ColumnPolicy {
    /// A policy restricting nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// `role` may read only `columns` (repeatable: lists add up).
    pub fn readable<I, S>(mut self, role: impl Into<String>, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.read
            .entry(role.into())
            .or_default()
            .extend(columns.into_iter().map(Into::into));
        self
    }

    /// `role` may write only `columns` (repeatable: lists add up).
    pub fn writable<I, S>(mut self, role: impl Into<String>, columns: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.write
            .entry(role.into())
            .or_default()
            .extend(columns.into_iter().map(Into::into));
        self
    }

    fn list<'a>(map: &'a HashMap<String, Vec<String>>, role: &str) -> Option<&'a [String]> {
        map.get(role).or_else(|| map.get("*")).map(Vec::as_slice)
    }

    /// Whether `role` may read `column`.
    pub fn may_read(&self, role: &str, column: &str) -> bool {
        Self::list(&self.read, role).is_none_or(|l| l.iter().any(|c| c == column))
    }

    /// Whether `role` may write `column`.
    pub fn may_write(&self, role: &str, column: &str) -> bool {
        Self::list(&self.write, role).is_none_or(|l| l.iter().any(|c| c == column))
    }
}

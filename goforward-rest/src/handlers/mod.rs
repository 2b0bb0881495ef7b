//! HTTP handlers: request → access decision → plan → SQL → response.

pub mod admin;
pub mod columns;
pub mod openapi;
pub mod read;
pub mod rpc;
pub mod scope;
pub mod write;

use std::{collections::HashMap, sync::Arc};

use actix_web::{HttpResponse, http::StatusCode};
use goforward_core::{
    Context, Principal,
    access::{Action, Decision, Resource},
    filter::{Filter, Op, SqlBackend},
};
use serde_json::Value;

use crate::error::{RestError, Result};
use crate::plan::Cond;
use crate::query::Limits;
use crate::schema::{SchemaCache, Table};

/// What every handler shares (built once, cloned per worker).
#[derive(Clone)]
pub struct RestState {
    /// Core services.
    pub ctx: Context,
    /// The schema cache.
    pub cache: Arc<SchemaCache>,
    /// Hidden columns per table.
    pub hidden: Arc<HashMap<String, Vec<String>>>,
    /// Query-string caps.
    pub limits: Limits,
    /// Most rows one response carries.
    pub max_rows: u64,
    /// Functions callable at `/rpc/{name}`.
    pub functions: rpc::Functions,
    /// PostgreSQL functions exposed at `/rpc/{name}`.
    pub pg_functions: Arc<std::collections::HashSet<String>>,
    /// Column policies per table.
    pub column_policies: Arc<HashMap<String, columns::ColumnPolicy>>,
    /// Aggregates in `select` (`rest.aggregates_enabled`).
    pub aggregates: bool,
    /// How write transactions end (`rest.tx_end`).
    pub tx_end: TxEnd,
    /// Time zones PostgreSQL confirmed (`Prefer: timezone=`), so
    /// `pg_timezone_names` is read once per zone.
    pub known_zones: Arc<std::sync::RwLock<std::collections::HashSet<String>>>,
    /// Longest a statement may run (`rest.statement_timeout_ms`; `None`: off).
    pub statement_timeout: Option<std::time::Duration>,
    /// Native RLS mode on PostgreSQL (`rest.native_rls`).
    pub native_rls: Option<Arc<scope::NativeRls>>,
    /// SQLite under a statement timeout: where writes begin and how their
    /// deadline is armed.
    #[cfg(feature = "sqlite")]
    pub sqlite_writes: Option<Arc<scope::SqliteWrites>>,
    /// Default select lists planned per table (see [`crate::plan::read::StarList`]).
    pub star_lists: Arc<std::sync::RwLock<HashMap<String, Arc<crate::plan::read::StarList>>>>,
    /// SQLite: REST's own read connections (see [`scope::SqliteReads`]).
    #[cfg(feature = "sqlite")]
    pub sqlite_reads: Option<Arc<scope::SqliteReads>>,
    /// PostgreSQL under a statement timeout below the connections' own:
    /// REST's pool for reads that need no other setting (see
    /// [`scope::pg_read_pool`]).
    #[cfg(feature = "postgres")]
    pub pg_reads: Option<goforward_core::sea_orm::sqlx::PgPool>,
}

/// PostgREST's `db-tx-end` (config `rest.tx_end`): how write transactions
/// end, and whether a request may choose with `Prefer: tx=commit|rollback`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TxEnd {
    /// Commit; `Prefer: tx=` is not honoured (the default, as PostgREST's).
    #[default]
    Commit,
    /// Commit unless the request asks `Prefer: tx=rollback`.
    CommitAllowOverride,
    /// Roll every write back (a dry-run server).
    Rollback,
    /// Roll back unless the request asks `Prefer: tx=commit`.
    RollbackAllowOverride,
}

impl TxEnd {
    /// Whether a write ends in a rollback, given the request's `Prefer: tx=`
    /// (`Some(true)` rollback, `Some(false)` commit), and whether that
    /// preference was applied.
    pub fn rollback(self, requested: Option<bool>) -> (bool, bool) {
        match (self, requested) {
            (Self::CommitAllowOverride | Self::RollbackAllowOverride, Some(r)) => (r, true),
            (Self::Rollback | Self::RollbackAllowOverride, _) => (true, false),
            _ => (false, false),
        }
    }
}

/// The full and the visible table of a request.
pub struct Resolved {
    /// Every column.
    pub table: Arc<Table>,
    /// Hidden columns removed (the same table when none are hidden).
    pub visible: Arc<Table>,
    /// The dialect.
    pub backend: SqlBackend,
}

impl RestState {
    /// The exposed table `name`, or 404 `PGRST205` (also for tables that exist
    /// but are not exposed: the caller learns nothing about them).
    ///
    /// # Errors
    /// [`RestError::TableNotFound`].
    pub fn resolve(&self, name: &str) -> Result<Resolved> {
        self.resolve_for(name, None)
    }

    /// As [`RestState::resolve`], for `who`: columns `who` may not read
    /// (column policy) are removed from the visible table too.
    ///
    /// # Errors
    /// [`RestError::TableNotFound`].
    pub fn resolve_as(&self, name: &str, who: &Principal) -> Result<Resolved> {
        self.resolve_for(name, Some(who))
    }

    fn resolve_for(&self, name: &str, who: Option<&Principal>) -> Result<Resolved> {
        let not_found = || RestError::TableNotFound(name.chars().take(63).collect());
        if !self.ctx.access().policies().has_table(name) {
            return Err(not_found());
        }
        let schema = self.cache.snapshot();
        let table = schema.table(name).cloned().ok_or_else(not_found)?;
        let mut hidden: Vec<String> = self.hidden.get(name).cloned().unwrap_or_default();
        if let (Some(who), Some(policy)) = (who, self.column_policies.get(name))
            && !who.is_service()
        {
            let role = who.role.as_str();
            hidden.extend(
                table
                    .columns
                    .iter()
                    .filter(|c| !policy.may_read(role, &c.name))
                    .map(|c| c.name.clone()),
            );
        }
        let visible = if hidden.is_empty() {
            Arc::clone(&table)
        } else {
            Arc::new(table.without(&hidden))
        };
        let backend = SqlBackend::try_from(goforward_core::db::backend_of(self.ctx.db()))
            .map_err(RestError::Core)?;
        Ok(Resolved {
            table,
            visible,
            backend,
        })
    }

    /// The default select list (`select` absent or `*`) of a resolved
    /// table, planned once per schema snapshot; `None` when the visible
    /// table is a per-request copy (hidden columns) or cannot be cached.
    pub fn star_list(&self, resolved: &Resolved) -> Option<Arc<crate::plan::read::StarList>> {
        if !Arc::ptr_eq(&resolved.table, &resolved.visible) {
            return None;
        }
        let fresh = |s: &Arc<crate::plan::read::StarList>| {
            Arc::ptr_eq(&s.table, &resolved.visible) && s.backend == resolved.backend
        };
        if let Ok(lists) = self.star_lists.read()
            && let Some(list) = lists.get(&resolved.visible.name)
            && fresh(list)
        {
            return Some(Arc::clone(list));
        }
        let list = Arc::new(crate::plan::read::StarList::new(
            Arc::clone(&resolved.visible),
            resolved.backend,
        )?);
        if let Ok(mut lists) = self.star_lists.write() {
            lists.insert(resolved.visible.name.clone(), Arc::clone(&list));
        }
        Some(list)
    }

    /// The related tables a select list embeds, each exposed and with the
    /// caller's select policy; unknown or unexposed ones are left out (and
    /// answer "no relationship", like tables that do not exist).
    pub async fn embeds(
        &self,
        who: &Principal,
        items: Option<&[crate::query::SelectItem]>,
    ) -> crate::plan::embed::Embeds {
        let mut names = Vec::new();
        if let Some(items) = items {
            crate::plan::embed::relations(items, &mut names);
        }
        let mut out = crate::plan::embed::Embeds::new();
        if names.is_empty() {
            return out;
        }
        let schema = self.cache.snapshot();
        // A target that is no table may name a foreign-key column
        // (`manager_id(…)`): resolve the tables such keys reference.
        let mut referenced = Vec::new();
        for name in names.iter().filter(|n| !schema.tables.contains_key(*n)) {
            for t in schema.tables.values() {
                for fk in &t.foreign_keys {
                    if fk.columns.len() == 1
                        && fk.columns[0] == *name
                        && !names.contains(&fk.foreign_table)
                        && !referenced.contains(&fk.foreign_table)
                    {
                        referenced.push(fk.foreign_table.clone());
                    }
                }
            }
        }
        names.extend(referenced);
        // Junction candidates: exposed tables with foreign keys to two
        // tables, one of them embedded here.
        for (jname, jt) in &schema.tables {
            let joins_embedded = jt
                .foreign_keys
                .iter()
                .any(|fk| names.contains(&fk.foreign_table));
            if jt.foreign_keys.len() < 2 || !joins_embedded {
                continue;
            }
            let Ok(resolved) = self.resolve_as(jname, who) else {
                continue;
            };
            let decision = self.decide(who, Action::Select, jname).await;
            out.junctions.push(crate::plan::embed::EmbedTable {
                table: resolved.table,
                visible: resolved.visible,
                policy: decision_cond(&decision),
            });
        }
        let tables = &mut out.tables;
        for name in names {
            let Ok(resolved) = self.resolve_as(&name, who) else {
                continue;
            };
            let decision = self.decide(who, Action::Select, &name).await;
            tables.insert(
                name,
                crate::plan::embed::EmbedTable {
                    table: resolved.table,
                    visible: resolved.visible,
                    policy: decision_cond(&decision),
                },
            );
        }
        out
    }

    /// Refuses a write naming `columns` of `table` that `who` may not write
    /// (column policy): 401/403 `42501` naming the first such column.
    /// Columns `who` may not read either answer "not found" (PGRST204),
    /// as hidden ones do.
    ///
    /// # Errors
    /// [`RestError::ColumnNotWritable`], [`RestError::BodyColumnNotFound`].
    pub fn check_writable<'a>(
        &self,
        who: &Principal,
        table: &str,
        columns: impl IntoIterator<Item = &'a String>,
    ) -> Result<()> {
        let Some(policy) = self.column_policies.get(table) else {
            return Ok(());
        };
        if who.is_service() {
            return Ok(());
        }
        let role = who.role.as_str();
        for c in columns {
            if policy.may_write(role, c) {
                continue;
            }
            if !policy.may_read(role, c) {
                return Err(RestError::BodyColumnNotFound {
                    table: table.to_owned(),
                    column: c.chars().take(63).collect(),
                });
            }
            return Err(RestError::ColumnNotWritable {
                table: table.to_owned(),
                column: c.chars().take(63).collect(),
                anonymous: anonymous(who),
            });
        }
        Ok(())
    }

    /// The access decision for `action` on `table`.
    pub async fn decide(&self, who: &Principal, action: Action, table: &str) -> Decision {
        self.ctx
            .access()
            .decide(who, &action, &Resource::table(table))
            .await
    }
}

/// A decision as a row condition (`Deny` = no row).
pub fn decision_cond(decision: &Decision) -> Option<Cond> {
    match decision {
        Decision::Allow => None,
        Decision::Deny => Some(Cond::Filter(Filter::False)),
        Decision::AllowWhere(f) => Some(Cond::Filter(f.clone())),
    }
}

/// Whether the caller is anonymous (42501 answers 401 then, 403 otherwise).
pub fn anonymous(who: &Principal) -> bool {
    who.is_anon() || who.user_id.is_none() && !who.is_service()
}

/// The `column = value` equalities a policy filter requires at its top level
/// (the owner column), used to fill inserted rows.
pub fn required_values(decision: &Decision) -> Vec<(String, Value)> {
    fn walk(f: &Filter, out: &mut Vec<(String, Value)>) {
        match f {
            Filter::And { filters } => filters.iter().for_each(|f| walk(f, out)),
            Filter::Cmp(c) if c.op == Op::Eq && c.json_path.is_empty() => {
                out.push((c.column.clone(), c.value.clone()))
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    if let Decision::AllowWhere(f) = decision {
        walk(f, &mut out);
    }
    out
}

/// A response with PostgREST's `Content-Range`.
pub fn with_range(status: StatusCode, range: String) -> actix_web::HttpResponseBuilder {
    let mut b = HttpResponse::build(status);
    b.insert_header(("Content-Range", range));
    b
}

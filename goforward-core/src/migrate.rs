//! Per-plugin migrations on top of sea-orm-migration's [`MigrationTrait`].
//!
//! Every plugin contributes its own ordered list of migrations and has its
//! own ledger table, `goforward_migrations_<plugin>`, so a plugin added later
//! gets its tables without touching the others.
//!
//! Each migration runs in one transaction **on both backends** (sea-orm only
//! wraps PostgreSQL by default): the ledger row is inserted first — which
//! takes the write lock on SQLite and a row lock on PostgreSQL — then the
//! migration's statements run, then the transaction commits. A failing
//! statement rolls back the schema and the ledger together, and two processes
//! booting at once apply each migration once (the second finds the ledger
//! row and skips). A migration that returns `Some(false)` from
//! `use_transaction` runs outside a transaction (e.g. `CREATE INDEX
//! CONCURRENTLY`) and must be idempotent.

use std::time::{SystemTime, UNIX_EPOCH};

use sea_orm::sea_query::{Alias, ColumnDef, Expr, ExprTrait, OnConflict, Order, Query, Table};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, TransactionTrait};
use sea_orm_migration::{MigrationTrait, SchemaManager};

use crate::error::{Error, Result};

/// The migrations of one plugin, in order.
pub struct PluginMigrations {
    plugin: String,
    migrations: Vec<Box<dyn MigrationTrait>>,
}

impl std::fmt::Debug for PluginMigrations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginMigrations")
            .field("plugin", &self.plugin)
            .field(
                "migrations",
                &self
                    .migrations
                    .iter()
                    .map(|m| m.name().to_owned())
                    .collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// One migration's state, as `goforward migrate status` prints it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MigrationStatus {
    /// Owning plugin.
    pub plugin: String,
    /// Migration name (`mYYYYMMDD_HHMMSS_verb_object`).
    pub name: String,
    /// Unix microseconds of application; `None` when pending.
    pub applied_at: Option<i64>,
}

/// Runs the migrations of all registered plugins.
#[derive(Debug, Default)]
pub struct Migrator {
    sets: Vec<PluginMigrations>,
}

/// Checks a plugin name usable in a table name: `[a-z][a-z0-9_]{0,47}`.
pub fn valid_plugin_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some('a'..='z'))
        && name.len() <= 48
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

impl Migrator {
    /// An empty migrator.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `plugin`'s migrations (in order).
    ///
    /// # Errors
    /// [`Error::Plugin`] for an invalid or duplicate plugin name or duplicate migration names.
    pub fn add(&mut self, plugin: &str, migrations: Vec<Box<dyn MigrationTrait>>) -> Result<()> {
        let fail = |message: String| Error::Plugin {
            plugin: plugin.to_owned(),
            message,
        };
        if !valid_plugin_name(plugin) {
            return Err(fail(
                "plugin names must match [a-z][a-z0-9_]* (at most 48 characters)".into(),
            ));
        }
        if self.sets.iter().any(|s| s.plugin == plugin) {
            return Err(fail("registered twice".into()));
        }
        let mut names: Vec<&str> = migrations.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err(fail("two migrations share a name".into()));
        }
        self.sets.push(PluginMigrations {
            plugin: plugin.to_owned(),
            migrations,
        });
        Ok(())
    }

    fn ledger(plugin: &str) -> Alias {
        Alias::new(format!("goforward_migrations_{plugin}"))
    }

    async fn ensure_ledger(db: &DatabaseConnection, plugin: &str) -> Result<()> {
        let stmt = Table::create()
            .table(Self::ledger(plugin))
            .if_not_exists()
            .col(
                ColumnDef::new(Alias::new("version"))
                    .string_len(255)
                    .not_null()
                    .primary_key(),
            )
            .col(
                ColumnDef::new(Alias::new("applied_at"))
                    .big_integer()
                    .not_null(),
            )
            .to_owned();
        // Concurrent `CREATE TABLE IF NOT EXISTS` can race on PostgreSQL's catalog; retry once.
        if db.execute(&stmt).await.is_err() {
            db.execute(&stmt).await.map_err(Error::from_db)?;
        }
        Ok(())
    }

    async fn applied(db: &DatabaseConnection, plugin: &str) -> Result<Vec<(String, i64)>> {
        Self::ensure_ledger(db, plugin).await?;
        let query = Query::select()
            .columns([Alias::new("version"), Alias::new("applied_at")])
            .from(Self::ledger(plugin))
            .order_by(Alias::new("applied_at"), Order::Asc)
            .to_owned();
        let rows = db.query_all(&query).await.map_err(Error::from_db)?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<String>("", "version")?,
                    row.try_get::<i64>("", "applied_at")?,
                ))
            })
            .collect::<std::result::Result<Vec<_>, DbErr>>()
            .map_err(Error::from_db)
    }

    /// The state of every known migration, plugin by plugin.
    ///
    /// # Errors
    /// Database errors; [`Error::Plugin`] when the ledger names a migration the code no longer has.
    pub async fn status(&self, db: &DatabaseConnection) -> Result<Vec<MigrationStatus>> {
        let mut out = Vec::new();
        for set in &self.sets {
            let applied = Self::applied(db, &set.plugin).await?;
            for (version, _) in &applied {
                if !set.migrations.iter().any(|m| m.name() == version) {
                    return Err(Error::Plugin {
                        plugin: set.plugin.clone(),
                        message: format!("applied migration `{version}` is unknown to this build"),
                    });
                }
            }
            for m in &set.migrations {
                let applied_at = applied
                    .iter()
                    .find(|(v, _)| v == m.name())
                    .map(|(_, at)| *at);
                out.push(MigrationStatus {
                    plugin: set.plugin.clone(),
                    name: m.name().to_owned(),
                    applied_at,
                });
            }
        }
        Ok(out)
    }

    /// Applies every pending migration; returns what was applied.
    ///
    /// # Errors
    /// [`Error::Migration`] for the first failing migration (already rolled back).
    pub async fn up(&self, db: &DatabaseConnection) -> Result<Vec<MigrationStatus>> {
        let mut done = Vec::new();
        for set in &self.sets {
            let applied = Self::applied(db, &set.plugin).await?;
            for m in &set.migrations {
                if applied.iter().any(|(v, _)| v == m.name()) {
                    continue;
                }
                if let Some(at) = Self::apply(db, &set.plugin, m.as_ref()).await? {
                    tracing::info!(plugin = %set.plugin, migration = m.name(), "migration applied");
                    done.push(MigrationStatus {
                        plugin: set.plugin.clone(),
                        name: m.name().to_owned(),
                        applied_at: Some(at),
                    });
                }
            }
        }
        Ok(done)
    }

    /// Reverts the `steps` most recently applied migrations (across plugins, newest first).
    ///
    /// # Errors
    /// [`Error::Migration`] for the first failing `down` (already rolled back).
    pub async fn down(&self, db: &DatabaseConnection, steps: u32) -> Result<Vec<MigrationStatus>> {
        let mut applied: Vec<(i64, usize, usize)> = Vec::new();
        for (set_idx, set) in self.sets.iter().enumerate() {
            for (version, at) in Self::applied(db, &set.plugin).await? {
                let idx = set
                    .migrations
                    .iter()
                    .position(|m| m.name() == version)
                    .ok_or_else(|| Error::Plugin {
                        plugin: set.plugin.clone(),
                        message: format!("applied migration `{version}` is unknown to this build"),
                    })?;
                applied.push((at, set_idx, idx));
            }
        }
        applied.sort_unstable_by(|a, b| b.cmp(a));
        let mut done = Vec::new();
        for (_, set_idx, idx) in applied.into_iter().take(steps as usize) {
            let set = &self.sets[set_idx];
            let m = set.migrations[idx].as_ref();
            if Self::revert(db, &set.plugin, m).await? {
                tracing::info!(plugin = %set.plugin, migration = m.name(), "migration reverted");
                done.push(MigrationStatus {
                    plugin: set.plugin.clone(),
                    name: m.name().to_owned(),
                    applied_at: None,
                });
            }
        }
        Ok(done)
    }

    /// Reverts everything, then applies everything.
    ///
    /// # Errors
    /// As [`Migrator::down`] and [`Migrator::up`].
    pub async fn fresh(&self, db: &DatabaseConnection) -> Result<Vec<MigrationStatus>> {
        self.down(db, u32::MAX).await?;
        self.up(db).await
    }

    fn now_micros() -> i64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or_default()
    }

    async fn apply(
        db: &DatabaseConnection,
        plugin: &str,
        m: &dyn MigrationTrait,
    ) -> Result<Option<i64>> {
        let fail = |source: DbErr| Error::Migration {
            plugin: plugin.to_owned(),
            migration: m.name().to_owned(),
            source,
        };
        let at = Self::now_micros();
        let record = Query::insert()
            .into_table(Self::ledger(plugin))
            .columns([Alias::new("version"), Alias::new("applied_at")])
            .values([m.name().into(), at.into()])
            .map_err(|e| Error::Internal(e.to_string()))?
            .on_conflict(
                OnConflict::column(Alias::new("version"))
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        if m.use_transaction() == Some(false) {
            m.up(&SchemaManager::new(db)).await.map_err(fail)?;
            db.execute(&record).await.map_err(fail)?;
            return Ok(Some(at));
        }
        let txn = db.begin().await.map_err(fail)?;
        let inserted = txn.execute(&record).await.map_err(fail)?.rows_affected();
        if inserted == 0 {
            // Another process applied it between our read and our lock.
            txn.rollback().await.map_err(fail)?;
            return Ok(None);
        }
        m.up(&SchemaManager::new(&txn)).await.map_err(fail)?;
        txn.commit().await.map_err(fail)?;
        Ok(Some(at))
    }

    async fn revert(db: &DatabaseConnection, plugin: &str, m: &dyn MigrationTrait) -> Result<bool> {
        let fail = |source: DbErr| Error::Migration {
            plugin: plugin.to_owned(),
            migration: m.name().to_owned(),
            source,
        };
        let delete = Query::delete()
            .from_table(Self::ledger(plugin))
            .and_where(ExprTrait::eq(Expr::col(Alias::new("version")), m.name()))
            .to_owned();
        if m.use_transaction() == Some(false) {
            m.down(&SchemaManager::new(db)).await.map_err(fail)?;
            db.execute(&delete).await.map_err(fail)?;
            return Ok(true);
        }
        let txn = db.begin().await.map_err(fail)?;
        if txn.execute(&delete).await.map_err(fail)?.rows_affected() == 0 {
            txn.rollback().await.map_err(fail)?;
            return Ok(false);
        }
        m.down(&SchemaManager::new(&txn)).await.map_err(fail)?;
        txn.commit().await.map_err(fail)?;
        Ok(true)
    }

    /// The registered plugin names, in order.
    pub fn plugins(&self) -> impl Iterator<Item = &str> {
        self.sets.iter().map(|s| s.plugin.as_str())
    }
}

//! [`Hooks`]: the registry core creates once and shares with every plugin.

use std::{
    any::{Any, TypeId},
    collections::HashMap,
    fmt,
    sync::{Arc, PoisonError, RwLock},
};

use super::{Hook, RecordAction, RecordErrorEvent, RecordEvent, RecordExecuteEvent};

/// The four hooks of one record action (create, update or delete), in the
/// order they run. See [`Hooks::record`].
#[derive(Clone, Debug)]
pub struct RecordHooks {
    wrap: Hook<RecordEvent>,
    execute: Hook<RecordExecuteEvent>,
    after_success: Hook<RecordEvent>,
    after_error: Hook<RecordErrorEvent>,
}

impl RecordHooks {
    fn new(action: RecordAction) -> Self {
        let action = action.as_str();
        Self {
            wrap: Hook::new(format!("on_record_{action}")),
            execute: Hook::new(format!("on_record_{action}_execute")),
            after_success: Hook::new(format!("on_record_after_{action}_success")),
            after_error: Hook::new(format!("on_record_after_{action}_error")),
        }
    }

    /// `on_record_<action>`: wraps the whole write.
    pub fn wrap(&self) -> &Hook<RecordEvent> {
        &self.wrap
    }

    /// `on_record_<action>_execute`: inside the transaction, before the SQL.
    pub fn execute(&self) -> &Hook<RecordExecuteEvent> {
        &self.execute
    }

    /// `on_record_after_<action>_success`: after commit.
    pub fn after_success(&self) -> &Hook<RecordEvent> {
        &self.after_success
    }

    /// `on_record_after_<action>_error`: after a failed write was rolled back.
    pub fn after_error(&self) -> &Hook<RecordErrorEvent> {
        &self.after_error
    }
}

/// The hook registry: built once by `GoForward::build`, shared with every
/// plugin as `Arc<Hooks>` through [`Context::hooks`](crate::Context::hooks).
///
/// It holds the record lifecycle hooks, named as in PocketBase, for each of
/// create, update and delete:
///
/// | hook | runs | event |
/// |---|---|---|
/// | `on_record_create` | around the whole write | [`RecordEvent`] |
/// | `on_record_create_execute` | in the transaction, before the SQL | [`RecordExecuteEvent`] |
/// | `on_record_after_create_success` | after commit | [`RecordEvent`] |
/// | `on_record_after_create_error` | after rollback | [`RecordErrorEvent`] |
///
/// All record events are tagged by table ([`Hook::bind_tagged`]). Mail,
/// webhooks and anything that announces a change belong in the after-commit
/// hooks: never announce a row that may roll back.
///
/// Plugins declare their own hooks with [`Hooks::custom`].
///
/// # Examples
///
/// ```
/// use goforward_core::hooks::{Hooks, RecordEvent};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> goforward_core::Result<()> {
/// let hooks = Hooks::new();
///
/// // Validation: refuse empty titles on `todos`.
/// hooks.on_record_create().bind_tagged(["todos"], "require_title", 0, |e: RecordEvent, next| async move {
///     if e.record["title"].as_str().unwrap_or_default().is_empty() {
///         return Err(next.abort("title is required"));
///     }
///     next.run(e).await
/// });
///
/// // Notification after commit, for every table.
/// hooks.on_record_after_create_success().bind("log", 0, |e, next| async move {
///     tracing::info!(table = %e.table, "created");
///     next.run(e).await
/// });
/// # Ok(())
/// # }
/// ```
pub struct Hooks {
    create: RecordHooks,
    update: RecordHooks,
    delete: RecordHooks,
    custom: RwLock<HashMap<(String, TypeId), Arc<dyn Any + Send + Sync>>>,
}

impl Default for Hooks {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Hooks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let custom: Vec<String> = self
            .custom
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .keys()
            .map(|(name, _)| name.clone())
            .collect();
        f.debug_struct("Hooks")
            .field("create", &self.create)
            .field("update", &self.update)
            .field("delete", &self.delete)
            .field("custom", &custom)
            .finish()
    }
}

impl Hooks {
    /// A registry with every hook empty.
    pub fn new() -> Self {
        Self {
            create: RecordHooks::new(RecordAction::Create),
            update: RecordHooks::new(RecordAction::Update),
            delete: RecordHooks::new(RecordAction::Delete),
            custom: RwLock::new(HashMap::new()),
        }
    }

    /// The four hooks of `action`: handy to bind one handler to every action.
    ///
    /// # Examples
    ///
    /// ```
    /// use goforward_core::hooks::{Hooks, RecordAction};
    ///
    /// let hooks = Hooks::new();
    /// for action in [RecordAction::Create, RecordAction::Update, RecordAction::Delete] {
    ///     hooks.record(action).after_success().bind("audit", 0, move |e, next| async move {
    ///         tracing::info!(%action, table = %e.table, "write committed");
    ///         next.run(e).await
    ///     });
    /// }
    /// ```
    pub fn record(&self, action: RecordAction) -> &RecordHooks {
        match action {
            RecordAction::Create => &self.create,
            RecordAction::Update => &self.update,
            RecordAction::Delete => &self.delete,
        }
    }

    /// Wraps a whole insert (validation, defaults, refusing, post-processing).
    pub fn on_record_create(&self) -> &Hook<RecordEvent> {
        &self.create.wrap
    }

    /// Runs inside the insert's transaction, before the SQL.
    pub fn on_record_create_execute(&self) -> &Hook<RecordExecuteEvent> {
        &self.create.execute
    }

    /// Runs after an insert committed.
    pub fn on_record_after_create_success(&self) -> &Hook<RecordEvent> {
        &self.create.after_success
    }

    /// Runs after an insert failed and was rolled back.
    pub fn on_record_after_create_error(&self) -> &Hook<RecordErrorEvent> {
        &self.create.after_error
    }

    /// Wraps a whole update.
    pub fn on_record_update(&self) -> &Hook<RecordEvent> {
        &self.update.wrap
    }

    /// Runs inside the update's transaction, before the SQL.
    pub fn on_record_update_execute(&self) -> &Hook<RecordExecuteEvent> {
        &self.update.execute
    }

    /// Runs after an update committed.
    pub fn on_record_after_update_success(&self) -> &Hook<RecordEvent> {
        &self.update.after_success
    }

    /// Runs after an update failed and was rolled back.
    pub fn on_record_after_update_error(&self) -> &Hook<RecordErrorEvent> {
        &self.update.after_error
    }

    /// Wraps a whole delete.
    pub fn on_record_delete(&self) -> &Hook<RecordEvent> {
        &self.delete.wrap
    }

    /// Runs inside the delete's transaction, before the SQL.
    pub fn on_record_delete_execute(&self) -> &Hook<RecordExecuteEvent> {
        &self.delete.execute
    }

    /// Runs after a delete committed.
    pub fn on_record_after_delete_success(&self) -> &Hook<RecordEvent> {
        &self.delete.after_success
    }

    /// Runs after a delete failed and was rolled back.
    pub fn on_record_after_delete_error(&self) -> &Hook<RecordErrorEvent> {
        &self.delete.after_error
    }

    /// The hook called `name` for events of type `E`, created empty on first
    /// use: how plugins declare hooks core does not know (`on_user_signup`,
    /// `on_object_upload`, …). The plugin that owns the hook triggers it;
    /// any plugin (or the host) may bind to it.
    ///
    /// Hooks are keyed by name *and* event type: the same name with another
    /// type is another hook. Export a typed accessor from the owning crate
    /// (or the name and event type) so binders and triggerer agree.
    ///
    /// # Examples
    ///
    /// ```
    /// use goforward_core::hooks::Hooks;
    ///
    /// #[derive(Debug)]
    /// pub struct SignupEvent { pub email: String }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> goforward_core::Result<()> {
    /// let hooks = Hooks::new();
    ///
    /// // A host or another plugin binds…
    /// hooks.custom::<SignupEvent>("on_user_signup").bind("domain", 0, |e, next| async move {
    ///     if !e.email.ends_with("@example.com") {
    ///         return Err(next.abort("signups are restricted"));
    ///     }
    ///     next.run(e).await
    /// });
    ///
    /// // …the auth plugin triggers, the signup itself being the finalizer.
    /// let signup = hooks.custom::<SignupEvent>("on_user_signup");
    /// let event = SignupEvent { email: "ann@example.com".into() };
    /// let event = signup.trigger(event, |e| async move { /* create the user */ Ok(e) }).await?;
    /// assert_eq!(event.email, "ann@example.com");
    /// # Ok(())
    /// # }
    /// ```
    pub fn custom<E: Send + 'static>(&self, name: &str) -> Hook<E> {
        let key = (name.to_owned(), TypeId::of::<E>());
        if let Some(hook) = self.lookup::<E>(&key) {
            return hook;
        }
        let mut map = self.custom.write().unwrap_or_else(PoisonError::into_inner);
        // Another thread may have created it between the two locks.
        if let Some(hook) = map.get(&key).and_then(|any| any.downcast_ref::<Hook<E>>()) {
            return hook.clone();
        }
        let hook = Hook::<E>::new(name);
        map.insert(key, Arc::new(hook.clone()));
        hook
    }

    fn lookup<E: Send + 'static>(&self, key: &(String, TypeId)) -> Option<Hook<E>> {
        self.custom
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .and_then(|any| any.downcast_ref::<Hook<E>>())
            .cloned()
    }
}

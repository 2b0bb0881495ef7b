//! Typed lifecycle hooks, modelled on PocketBase's `tools/hook`.
//!
//! A [`Hook<E>`] is an ordered chain of async handlers for events of type `E`.
//! Each handler is bound with an id and a priority (lower runs first, ties in
//! bind order) and receives the event together with a [`Next`] continuation:
//! `next.run(event).await` runs the rest of the chain — the remaining
//! handlers, then the *finalizer*, i.e. the operation itself — and returns the
//! (possibly modified) event. A handler may
//!
//! - change the event before and/or after calling `next`,
//! - stop the chain by returning `Ok(event)` without calling `next` (the
//!   operation silently does not happen),
//! - abort with `Err(..)` ([`Next::abort`] builds an
//!   [`Error::Hook`]); the error is returned by
//!   [`Hook::trigger`].
//!
//! [`TaggedHook`] binds handlers that only run for events carrying one of
//! their tags (a table name, a bucket, a channel): see [`Tagged`].
//!
//! [`Hooks`] is the registry core creates once and hands to every plugin
//! through [`Context::hooks`](crate::Context::hooks): the record lifecycle
//! hooks (`on_record_create`, `on_record_create_execute`,
//! `on_record_after_create_success`, `on_record_after_create_error`, and the
//! same for update and delete) plus [`Hooks::custom`] for hooks that plugins
//! declare themselves. [`run_record_write`] drives one write through the
//! record lifecycle.
//!
//! # Examples
//!
//! ```
//! use goforward_core::hooks::Hook;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> goforward_core::Result<()> {
//! let hook: Hook<String> = Hook::new("on_greeting");
//!
//! // Runs second: appends after the operation.
//! hook.bind("exclaim", 10, |greeting, next| async move {
//!     let greeting = next.run(greeting).await?;
//!     Ok(format!("{greeting}!"))
//! });
//! // Runs first: validates, may abort.
//! hook.bind("validate", -10, |greeting: String, next| async move {
//!     if greeting.is_empty() {
//!         return Err(next.abort("a greeting is required"));
//!     }
//!     next.run(greeting).await
//! });
//!
//! // The finalizer is the operation itself, the last link of the chain.
//! let out = hook.trigger("hello".to_owned(), |g| async move { Ok(g.to_uppercase()) }).await?;
//! assert_eq!(out, "HELLO!");
//!
//! assert!(hook.trigger(String::new(), |g| async move { Ok(g) }).await.is_err());
//! # Ok(())
//! # }
//! ```

mod record;
mod registry;

use std::{
    fmt,
    future::Future,
    sync::{Arc, PoisonError, RwLock},
};

use futures_util::future::BoxFuture;

use crate::error::{Error, Result};

pub use self::record::{
    RecordAction, RecordErrorEvent, RecordEvent, RecordExecuteEvent, run_record_write,
    run_record_writes,
};
pub use self::registry::{Hooks, RecordHooks};

/// The type-erased handler stored in a chain.
type DynHandler<E> = dyn Fn(E, Next<E>) -> BoxFuture<'static, Result<E>> + Send + Sync;

/// The type-erased tag filter of a tagged handler.
type DynFilter<E> = dyn Fn(&E) -> bool + Send + Sync;

/// The type-erased last link of a chain.
type Finalizer<E> = Box<dyn FnOnce(E) -> BoxFuture<'static, Result<E>> + Send>;

/// One bound handler.
struct Entry<E> {
    id: String,
    priority: i32,
    /// Bind order, kept when a handler is replaced under the same id.
    seq: u64,
    handler: Arc<DynHandler<E>>,
    /// `None`: runs for every event.
    filter: Option<Arc<DynFilter<E>>>,
}

impl<E> Clone for Entry<E> {
    fn clone(&self) -> Self {
        Self {
            id: self.id.clone(),
            priority: self.priority,
            seq: self.seq,
            handler: Arc::clone(&self.handler),
            filter: self.filter.clone(),
        }
    }
}

impl<E> Entry<E> {
    fn accepts(&self, event: &E) -> bool {
        self.filter.as_ref().is_none_or(|filter| filter(event))
    }
}

/// The bound handlers, sorted; replaced as a whole on every change so that a
/// trigger works on a snapshot without holding the lock.
struct State<E> {
    chain: Arc<[Entry<E>]>,
    next_seq: u64,
}

struct HookInner<E> {
    name: Arc<str>,
    state: RwLock<State<E>>,
}

/// An ordered chain of async handlers for events of type `E`.
///
/// Cloning is cheap and yields a handle to the *same* hook: handlers bound
/// through one clone run when any clone is triggered.
///
/// Handlers are `Fn(E, Next<E>) -> impl Future<Output = Result<E>>` closures
/// (`Send + Sync + 'static`, their futures `Send + 'static`): clone what they
/// need into them. Binding, unbinding and triggering may happen concurrently;
/// a trigger runs the handlers bound when it started.
///
/// # Examples
///
/// ```
/// use goforward_core::hooks::Hook;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> goforward_core::Result<()> {
/// let hook: Hook<Vec<&'static str>> = Hook::new("on_demo");
/// hook.bind("b", 0, |mut log, next| async move { log.push("b"); next.run(log).await });
/// hook.bind("a", -1, |mut log, next| async move { log.push("a"); next.run(log).await });
/// hook.bind("c", 0, |mut log, next| async move { log.push("c"); next.run(log).await });
///
/// let log = hook.trigger(Vec::new(), |mut log| async move { log.push("op"); Ok(log) }).await?;
/// assert_eq!(log, ["a", "b", "c", "op"]);
///
/// assert!(hook.unbind("b"));
/// let log = hook.emit(Vec::new()).await?;
/// assert_eq!(log, ["a", "c"]);
/// # Ok(())
/// # }
/// ```
pub struct Hook<E> {
    inner: Arc<HookInner<E>>,
}

impl<E> Clone for Hook<E> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E> fmt::Debug for Hook<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let chain = self.snapshot();
        f.debug_struct("Hook")
            .field("name", &&*self.inner.name)
            .field(
                "handlers",
                &chain.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl<E> Hook<E> {
    /// A hook without handlers; `name` appears in errors raised through
    /// [`Next::abort`] and in logs.
    pub fn new(name: impl Into<String>) -> Self {
        let name: String = name.into();
        Self {
            inner: Arc::new(HookInner {
                name: Arc::from(name),
                state: RwLock::new(State {
                    chain: Arc::from(Vec::new()),
                    next_seq: 0,
                }),
            }),
        }
    }

    /// The hook's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The number of bound handlers (tagged ones included).
    pub fn len(&self) -> usize {
        self.snapshot().len()
    }

    /// Whether no handler is bound.
    pub fn is_empty(&self) -> bool {
        self.snapshot().is_empty()
    }

    /// Whether a handler with this id is bound.
    pub fn contains(&self, id: &str) -> bool {
        self.snapshot().iter().any(|e| e.id == id)
    }

    /// The ids of the bound handlers, in the order they run.
    pub fn ids(&self) -> Vec<String> {
        self.snapshot().iter().map(|e| e.id.clone()).collect()
    }

    /// Removes the handler bound under `id`; `false` if there was none.
    ///
    /// Triggers already running finish with the handlers they started with.
    pub fn unbind(&self, id: &str) -> bool {
        let mut state = self.write();
        if !state.chain.iter().any(|e| e.id == id) {
            return false;
        }
        let chain: Vec<Entry<E>> = state.chain.iter().filter(|e| e.id != id).cloned().collect();
        state.chain = Arc::from(chain);
        true
    }

    /// Removes every handler.
    pub fn unbind_all(&self) {
        self.write().chain = Arc::from(Vec::new());
    }

    fn snapshot(&self) -> Arc<[Entry<E>]> {
        let state = self
            .inner
            .state
            .read()
            .unwrap_or_else(PoisonError::into_inner);
        Arc::clone(&state.chain)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State<E>> {
        self.inner
            .state
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Inserts or replaces an entry and re-sorts; returns the id.
    fn insert(
        &self,
        id: String,
        priority: i32,
        handler: Arc<DynHandler<E>>,
        filter: Option<Arc<DynFilter<E>>>,
    ) -> String {
        let mut state = self.write();
        let id = if id.is_empty() {
            format!("__hook_{}", uuid::Uuid::new_v4().simple())
        } else {
            id
        };
        let mut chain: Vec<Entry<E>> = state.chain.to_vec();
        match chain.iter_mut().find(|e| e.id == id) {
            // Replacing keeps the original bind position among equal priorities.
            Some(existing) => {
                existing.priority = priority;
                existing.handler = handler;
                existing.filter = filter;
            }
            None => {
                let seq = state.next_seq;
                state.next_seq += 1;
                chain.push(Entry {
                    id: id.clone(),
                    priority,
                    seq,
                    handler,
                    filter,
                });
            }
        }
        chain.sort_by_key(|e| (e.priority, e.seq));
        state.chain = Arc::from(chain);
        id
    }
}

impl<E: Send + 'static> Hook<E> {
    /// Binds `handler` under `id` with `priority` and returns the id.
    ///
    /// Lower priorities run first; equal priorities run in bind order.
    /// Binding an id that is already bound replaces that handler (keeping its
    /// place among equal priorities). An empty id gets a generated one.
    ///
    /// The handler receives the event and the [`Next`] continuation; call
    /// `next.run(event).await` to continue the chain.
    ///
    /// # Examples
    ///
    /// ```
    /// use goforward_core::hooks::Hook;
    ///
    /// let hook: Hook<u32> = Hook::new("on_number");
    /// let id = hook.bind("double", 0, |n, next| async move { next.run(n * 2).await });
    /// assert_eq!(id, "double");
    /// ```
    pub fn bind<H, Fut>(&self, id: impl Into<String>, priority: i32, handler: H) -> String
    where
        H: Fn(E, Next<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E>> + Send + 'static,
    {
        self.insert(id.into(), priority, box_handler(handler), None)
    }

    /// Binds `handler` with a generated id and priority 0; returns the id
    /// (keep it to [`unbind`](Hook::unbind) later).
    pub fn bind_fn<H, Fut>(&self, handler: H) -> String
    where
        H: Fn(E, Next<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E>> + Send + 'static,
    {
        self.bind(String::new(), 0, handler)
    }

    /// Runs the chain: every handler in order, then `finalizer` (the
    /// operation itself) as the last link, and returns the resulting event.
    ///
    /// No lock is held while handlers run.
    ///
    /// # Errors
    ///
    /// The first error a handler or the finalizer returns.
    pub async fn trigger<F, Fut>(&self, event: E, finalizer: F) -> Result<E>
    where
        F: FnOnce(E) -> Fut + Send + 'static,
        Fut: Future<Output = Result<E>> + Send + 'static,
    {
        let chain = self.snapshot();
        if chain.is_empty() {
            return finalizer(event).await;
        }
        let next = Next {
            hook: Arc::clone(&self.inner.name),
            chain,
            index: 0,
            finalizer: Box::new(move |event| Box::pin(finalizer(event))),
        };
        next.run(event).await
    }

    /// Runs the chain with no operation at the end (the last handler's
    /// `next.run` returns the event as it is): for notification-style hooks
    /// such as `on_record_after_create_success`.
    ///
    /// # Errors
    ///
    /// The first error a handler returns.
    pub async fn emit(&self, event: E) -> Result<E> {
        self.trigger(event, |event| async move { Ok(event) }).await
    }
}

impl<E: Tagged + Send + 'static> Hook<E> {
    /// Binds `handler` so that it runs only for events carrying one of
    /// `tags` (see [`Tagged::has_tag`]); for any other event the chain goes
    /// on without it. An empty tag list matches every event.
    ///
    /// Otherwise as [`Hook::bind`] (same id space: binding an id again
    /// replaces the handler, tagged or not).
    ///
    /// # Examples
    ///
    /// ```
    /// use goforward_core::hooks::{Hooks, Next, RecordEvent};
    ///
    /// let hooks = Hooks::new();
    /// hooks.on_record_create().bind_tagged(["todos"], "todo_defaults", 0,
    ///     |mut e: RecordEvent, next: Next<RecordEvent>| async move {
    ///         if e.record.get("done").is_none() {
    ///             e.record["done"] = serde_json::json!(false);
    ///         }
    ///         next.run(e).await
    ///     });
    /// ```
    pub fn bind_tagged<T, S, H, Fut>(
        &self,
        tags: T,
        id: impl Into<String>,
        priority: i32,
        handler: H,
    ) -> String
    where
        T: IntoIterator<Item = S>,
        S: Into<String>,
        H: Fn(E, Next<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E>> + Send + 'static,
    {
        let tags: Arc<[String]> = tags.into_iter().map(Into::into).collect();
        self.bind_with_tags(tags, id.into(), priority, handler)
    }

    /// A view of this hook whose bindings are restricted to `tags`
    /// (PocketBase's `app.OnRecordCreate("todos")`).
    ///
    /// # Examples
    ///
    /// ```
    /// use goforward_core::hooks::Hooks;
    ///
    /// let hooks = Hooks::new();
    /// let todos = hooks.on_record_create().tagged(["todos", "notes"]);
    /// todos.bind("audit", 100, |e, next| async move {
    ///     tracing::info!(table = %e.table, "creating");
    ///     next.run(e).await
    /// });
    /// assert_eq!(hooks.on_record_create().len(), 1);
    /// ```
    pub fn tagged<T, S>(&self, tags: T) -> TaggedHook<E>
    where
        T: IntoIterator<Item = S>,
        S: Into<String>,
    {
        TaggedHook {
            hook: self.clone(),
            tags: tags.into_iter().map(Into::into).collect(),
        }
    }

    fn bind_with_tags<H, Fut>(
        &self,
        tags: Arc<[String]>,
        id: String,
        priority: i32,
        handler: H,
    ) -> String
    where
        H: Fn(E, Next<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E>> + Send + 'static,
    {
        let filter: Option<Arc<DynFilter<E>>> = if tags.is_empty() {
            None
        } else {
            Some(Arc::new(move |event: &E| {
                tags.iter().any(|tag| event.has_tag(tag))
            }))
        };
        self.insert(id, priority, box_handler(handler), filter)
    }
}

fn box_handler<E, H, Fut>(handler: H) -> Arc<DynHandler<E>>
where
    E: Send + 'static,
    H: Fn(E, Next<E>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<E>> + Send + 'static,
{
    Arc::new(move |event, next| Box::pin(handler(event, next)))
}

/// The rest of a hook chain, handed to each handler.
///
/// Call [`run`](Next::run) exactly once to continue (it consumes the
/// continuation), or drop it to stop the chain.
pub struct Next<E> {
    hook: Arc<str>,
    chain: Arc<[Entry<E>]>,
    index: usize,
    finalizer: Finalizer<E>,
}

impl<E> fmt::Debug for Next<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Next")
            .field("hook", &&*self.hook)
            .field("remaining", &self.chain.len().saturating_sub(self.index))
            .finish_non_exhaustive()
    }
}

impl<E: Send + 'static> Next<E> {
    /// Runs the remaining handlers (skipping tagged ones whose tags the event
    /// does not carry) and then the finalizer; returns the resulting event.
    ///
    /// # Errors
    ///
    /// The first error a later handler or the finalizer returns.
    pub async fn run(mut self, event: E) -> Result<E> {
        while let Some(entry) = self.chain.get(self.index) {
            self.index += 1;
            if entry.accepts(&event) {
                let handler = Arc::clone(&entry.handler);
                return handler(event, self).await;
            }
        }
        (self.finalizer)(event).await
    }
}

impl<E> Next<E> {
    /// The name of the hook being triggered.
    pub fn hook_name(&self) -> &str {
        &self.hook
    }

    /// Builds the error a handler returns to abort the operation:
    /// [`Error::Hook`] naming this hook (HTTP 400, `message` shown to the
    /// client). It does not stop anything by itself: `return Err(next.abort(..))`.
    pub fn abort(&self, message: impl Into<String>) -> Error {
        Error::Hook {
            hook: self.hook.to_string(),
            message: message.into(),
        }
    }
}

/// Events that carry tags, for handlers bound with
/// [`Hook::bind_tagged`] / [`TaggedHook`].
///
/// Record events are tagged by their table name (and `schema.table`);
/// plugins tag theirs by bucket, channel, provider…
///
/// # Examples
///
/// ```
/// use goforward_core::hooks::Tagged;
///
/// struct ObjectUpload { bucket: String, path: String }
///
/// impl Tagged for ObjectUpload {
///     fn tags(&self) -> Vec<&str> {
///         vec![&self.bucket]
///     }
/// }
/// ```
pub trait Tagged {
    /// The event's tags.
    fn tags(&self) -> Vec<&str>;

    /// Whether the event carries `tag`. Defaults to a lookup in
    /// [`tags`](Tagged::tags); override to accept aliases without allocating.
    fn has_tag(&self, tag: &str) -> bool {
        self.tags().contains(&tag)
    }
}

/// A [`Hook`] seen through a list of tags: every handler bound through it
/// runs only for events carrying one of the tags.
///
/// Created by [`Hook::tagged`]. Handlers are bound on the underlying hook,
/// so triggering that hook runs them (filtered) in priority order among all
/// its other handlers.
pub struct TaggedHook<E> {
    hook: Hook<E>,
    tags: Arc<[String]>,
}

impl<E> Clone for TaggedHook<E> {
    fn clone(&self) -> Self {
        Self {
            hook: self.hook.clone(),
            tags: Arc::clone(&self.tags),
        }
    }
}

impl<E> fmt::Debug for TaggedHook<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaggedHook")
            .field("hook", &self.hook.name())
            .field("tags", &self.tags)
            .finish()
    }
}

impl<E: Tagged + Send + 'static> TaggedHook<E> {
    /// The tags handlers bound through this view are restricted to.
    pub fn tags(&self) -> &[String] {
        &self.tags
    }

    /// The underlying hook.
    pub fn hook(&self) -> &Hook<E> {
        &self.hook
    }

    /// Whether a handler bound through this view would run for `event`.
    pub fn can_trigger_on(&self, event: &E) -> bool {
        self.tags.is_empty() || self.tags.iter().any(|tag| event.has_tag(tag))
    }

    /// As [`Hook::bind`], restricted to this view's tags.
    pub fn bind<H, Fut>(&self, id: impl Into<String>, priority: i32, handler: H) -> String
    where
        H: Fn(E, Next<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E>> + Send + 'static,
    {
        self.hook
            .bind_with_tags(Arc::clone(&self.tags), id.into(), priority, handler)
    }

    /// As [`Hook::bind_fn`], restricted to this view's tags.
    pub fn bind_fn<H, Fut>(&self, handler: H) -> String
    where
        H: Fn(E, Next<E>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<E>> + Send + 'static,
    {
        self.bind(String::new(), 0, handler)
    }

    /// Removes the handler bound under `id` from the underlying hook.
    pub fn unbind(&self, id: &str) -> bool {
        self.hook.unbind(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Tag(&'static str);

    impl Tagged for Tag {
        fn tags(&self) -> Vec<&str> {
            vec![self.0]
        }
    }

    #[tokio::test]
    async fn replaced_handler_keeps_its_place() {
        let hook: Hook<Vec<u8>> = Hook::new("t");
        hook.bind("a", 0, |mut v, n| async move {
            v.push(1);
            n.run(v).await
        });
        hook.bind("b", 0, |mut v, n| async move {
            v.push(2);
            n.run(v).await
        });
        hook.bind("a", 0, |mut v, n| async move {
            v.push(3);
            n.run(v).await
        });
        assert_eq!(hook.emit(Vec::new()).await.unwrap(), [3, 2]);
        assert_eq!(hook.ids(), ["a", "b"]);
    }

    #[tokio::test]
    async fn empty_tags_match_everything() {
        let hook: Hook<Tag> = Hook::new("t");
        let view = hook.tagged(Vec::<String>::new());
        assert!(view.can_trigger_on(&Tag("x")));
        let generated = view.bind_fn(|e, n| async move { n.run(e).await });
        assert!(generated.starts_with("__hook_"));
        assert!(hook.tagged(["y"]).can_trigger_on(&Tag("y")));
        assert!(!hook.tagged(["y"]).can_trigger_on(&Tag("x")));
    }
}

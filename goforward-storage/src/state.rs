//! The shared storage state and its database / object-store operations.
//!
//! Bytes live under opaque version keys (`objects/<xx>/<version>`), never
//! under the object's name: a name cannot address a file, and an object
//! becomes visible only when its row, pointing at a fully written version,
//! is committed. Overwrites write a new version, switch the row in a
//! transaction, then delete the old version's bytes.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use goforward_core::access::{Access, Action, Decision, Resource};
use goforward_core::bus::{Event, ObjectEvent, SharedBus};
use goforward_core::sea_query::{Expr, ExprTrait};
use goforward_core::token::Principal;
use object_store::{ObjectStore, path::Path};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait,
    FromQueryResult, QueryFilter, QuerySelect, Set, SqlErr, TransactionTrait,
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::entity::{bucket, object, object_version};
use crate::error::{Result, StorageError};
use crate::signing::UrlSigner;

/// Everything the handlers share (one per app, cloned as an `Arc`).
pub struct StorageState {
    pub(crate) db: DatabaseConnection,
    pub(crate) store: Arc<dyn ObjectStore>,
    pub(crate) access: Access,
    pub(crate) bus: SharedBus,
    pub(crate) signer: UrlSigner,
    pub(crate) max_file_size: u64,
    /// Kept versions per object in versioned buckets without their own
    /// `max_versions` (0: no limit).
    pub(crate) default_max_versions: u64,
    /// Local backend: fsync an upload's bytes (file and directory) before its commit.
    pub(crate) fsync: bool,
    pub(crate) signed_upload_expires_secs: u64,
    pub(crate) max_signed_url_expires_secs: u64,
    /// Ids of the buckets declared in code (their policies are not replaced at run time).
    pub(crate) declared: std::collections::HashSet<String>,
    /// Image transformation limits (feature `image`).
    #[cfg(feature = "image")]
    pub(crate) images: crate::transform::Limits,
    /// On SQLite, upload commits queue here instead of in SQLite's busy handler
    /// (which sleeps up to 100 ms between retries while another connection
    /// holds the single write lock); `None` on PostgreSQL.
    pub(crate) sqlite_writes: Option<tokio::sync::Mutex<()>>,
    /// The local backend's root, for the staging files object_store does not list.
    pub(crate) local_root: Option<std::path::PathBuf>,
}

impl std::fmt::Debug for StorageState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StorageState")
            .field("store", &self.store.to_string())
            .field("max_file_size", &self.max_file_size)
            .finish_non_exhaustive()
    }
}

/// The object-store key of a version's bytes.
pub(crate) fn version_key(version: &Uuid) -> Path {
    let v = version.simple().to_string();
    Path::from(format!("objects/{}/{v}", &v[..2]))
}

/// Timestamps as Supabase Storage writes them (`2024-01-01T00:00:00.000Z`).
pub(crate) fn ts(t: &chrono::DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// What a finished upload (or copy) commits.
#[derive(Debug, Clone)]
pub(crate) struct NewVersion {
    pub bucket: String,
    pub name: String,
    pub owner: Option<String>,
    pub version: Uuid,
    pub size: u64,
    pub mimetype: String,
    pub cache_control: String,
    pub user_metadata: Option<Value>,
    pub upsert: bool,
    /// No row had the name when the upload was authorised: the commit first
    /// tries a plain insert (fewer statements), falling back to the locking
    /// path when the name was taken meanwhile or the bucket has quotas.
    pub fresh: bool,
}

impl NewVersion {
    fn metadata(&self, now: &chrono::DateTime<Utc>) -> Value {
        json!({
            "eTag": format!("\"{}\"", self.version.simple()),
            "size": self.size,
            "mimetype": self.mimetype,
            "cacheControl": self.cache_control,
            "lastModified": ts(now),
            "contentLength": self.size,
            "httpStatusCode": 200,
        })
    }
}

/// The JSON an access rule sees for an object.
pub(crate) fn object_row(
    bucket: &str,
    name: &str,
    owner: Option<&str>,
    metadata: Option<&Value>,
    user_metadata: Option<&Value>,
) -> Value {
    json!({
        "bucket_id": bucket,
        "name": name,
        "owner": owner,
        "owner_id": owner,
        "metadata": metadata,
        "user_metadata": user_metadata,
    })
}

impl StorageState {
    /// The bucket `id`.
    pub(crate) async fn bucket(&self, id: &str) -> Result<bucket::Model> {
        bucket::Entity::find_by_id(id.to_owned())
            .one(&self.db)
            .await?
            .ok_or(StorageError::NoSuchBucket)
    }

    /// The object `bucket/name`, if any.
    pub(crate) async fn object(&self, bucket: &str, name: &str) -> Result<Option<object::Model>> {
        Ok(object::Entity::find()
            .filter(object::Column::BucketId.eq(bucket))
            .filter(object::Column::Name.eq(name))
            .one(&self.db)
            .await?)
    }

    /// The access decision for `action` on an object of `bucket`.
    pub(crate) async fn decide(
        &self,
        who: &Principal,
        action: Action,
        bucket: &str,
        name: &str,
        owner: Option<&str>,
        user_metadata: Option<&Value>,
    ) -> Decision {
        let resource = Resource::Object {
            bucket,
            path: name,
            owner,
            metadata: user_metadata,
        };
        self.access.decide(who, &action, &resource).await
    }

    /// Whether `who` may do `action` on the object described by the arguments.
    pub(crate) async fn allowed(
        &self,
        who: &Principal,
        action: Action,
        bucket: &str,
        name: &str,
        owner: Option<&str>,
        user_metadata: Option<&Value>,
    ) -> bool {
        let decision = self
            .decide(who, action, bucket, name, owner, user_metadata)
            .await;
        decision.permits(&object_row(bucket, name, owner, None, user_metadata))
    }

    /// Whether `who` may read `row`.
    pub(crate) async fn may_read(&self, who: &Principal, row: &object::Model) -> bool {
        self.allowed(
            who,
            Action::Select,
            &row.bucket_id,
            &row.name,
            row.owner.as_deref(),
            row.user_metadata.as_ref(),
        )
        .await
    }

    /// Commits an uploaded version: inserts the row, or (upsert, when
    /// `may_replace` accepts the current row) switches the existing row to
    /// the new version. Returns the row and the versions whose bytes the
    /// caller deletes: the one it replaced (unless the bucket keeps it) and
    /// kept versions pruned by the bucket's retention limit.
    ///
    /// The first statement is a no-op `UPDATE` of the target row: it takes
    /// SQLite's write lock (so the read that follows cannot be stale) and
    /// PostgreSQL's row lock (so concurrent upserts serialise).
    pub(crate) async fn commit_version(
        &self,
        nv: &NewVersion,
        may_replace: impl Fn(&object::Model) -> bool,
    ) -> Result<(object::Model, Vec<Uuid>)> {
        let mut attempts = 0;
        loop {
            attempts += 1;
            let tried = if attempts == 1 && nv.fresh {
                self.try_insert_fresh(nv).await
            } else {
                Ok(None)
            };
            let outcome = match tried {
                Ok(Some(row)) => Ok((row, Vec::new())),
                Ok(None) => self.try_commit_version(nv, &may_replace).await,
                Err(err) => Err(err),
            };
            match outcome {
                Err(StorageError::Database(err))
                    if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) =>
                {
                    if !nv.upsert {
                        return Err(StorageError::KeyAlreadyExists);
                    }
                    if attempts >= 4 {
                        return Err(StorageError::Database(err));
                    }
                }
                Err(StorageError::Database(err))
                    if matches!(
                        err.sql_err(),
                        Some(SqlErr::ForeignKeyConstraintViolation(_))
                    ) =>
                {
                    return Err(StorageError::NoSuchBucket);
                }
                other => return other,
            }
        }
    }

    /// The commit of a name that was free: `BEGIN`, `INSERT`, read the bucket,
    /// `COMMIT`. `Ok(None)` when the bucket has quotas (rolled back: the
    /// locking path checks them) ; a unique violation (the name was taken
    /// meanwhile) is returned for [`Self::commit_version`] to retry on the
    /// locking path.
    async fn try_insert_fresh(&self, nv: &NewVersion) -> Result<Option<object::Model>> {
        let now = Utc::now();
        let _writer = match &self.sqlite_writes {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        let txn = self.db.begin().await?;
        let inserted = object::ActiveModel {
            id: Set(Uuid::new_v4()),
            bucket_id: Set(nv.bucket.clone()),
            name: Set(nv.name.clone()),
            owner: Set(nv.owner.clone()),
            metadata: Set(nv.metadata(&now)),
            user_metadata: Set(nv.user_metadata.clone()),
            version: Set(nv.version),
            created_at: Set(now),
            updated_at: Set(now),
            last_accessed_at: Set(now),
        }
        .insert(&txn)
        .await;
        let row = match inserted {
            Ok(row) => row,
            Err(err) => {
                txn.rollback().await?;
                return Err(err.into());
            }
        };
        let bucket = bucket::Entity::find_by_id(nv.bucket.clone())
            .one(&txn)
            .await?
            .ok_or(StorageError::NoSuchBucket)?;
        if bucket.quota.is_some() || bucket.owner_quota.is_some() {
            txn.rollback().await?;
            return Ok(None);
        }
        txn.commit().await?;
        Ok(Some(row))
    }

    async fn try_commit_version(
        &self,
        nv: &NewVersion,
        may_replace: &impl Fn(&object::Model) -> bool,
    ) -> Result<(object::Model, Vec<Uuid>)> {
        let now = Utc::now();
        let _writer = match &self.sqlite_writes {
            Some(gate) => Some(gate.lock().await),
            None => None,
        };
        let txn = self.db.begin().await?;
        object::Entity::update_many()
            .col_expr(object::Column::Version, Expr::col(object::Column::Version))
            .filter(object::Column::BucketId.eq(&nv.bucket))
            .filter(object::Column::Name.eq(&nv.name))
            .exec(&txn)
            .await?;
        // `FOR UPDATE` on PostgreSQL: a row inserted by a concurrent upload after
        // the no-op `UPDATE` began is not locked by it; this locks it (waiting
        // for its writer) and reads its latest version.
        let existing = object::Entity::find()
            .filter(object::Column::BucketId.eq(&nv.bucket))
            .filter(object::Column::Name.eq(&nv.name))
            .lock_exclusive()
            .one(&txn)
            .await?;
        let bucket = bucket::Entity::find_by_id(nv.bucket.clone())
            .one(&txn)
            .await?
            .ok_or(StorageError::NoSuchBucket)?;
        match &existing {
            Some(_) if !nv.upsert => return Err(StorageError::KeyAlreadyExists),
            Some(row) if !may_replace(row) => {
                return Err(StorageError::AccessDenied(
                    "new row violates row-level security policy".into(),
                ));
            }
            _ => {}
        }
        let keep_old = bucket.versioning && existing.is_some();
        // Quotas: lock the bucket before writing (below), check after.
        let quotas = bucket.quota.is_some() || bucket.owner_quota.is_some();
        if quotas {
            self.lock_bucket(&txn, &nv.bucket).await?;
        }
        let (row, old) = match existing {
            Some(row) => {
                let mut old = vec![row.version];
                if keep_old {
                    archive(&txn, &row, now).await?;
                    old = match self.retention(&bucket) {
                        Some(keep) => prune_versions(&txn, row.id, keep).await?,
                        None => Vec::new(),
                    };
                }
                let mut am: object::ActiveModel = row.into();
                am.version = Set(nv.version);
                am.owner = Set(nv.owner.clone());
                am.metadata = Set(nv.metadata(&now));
                am.user_metadata = Set(nv.user_metadata.clone());
                am.updated_at = Set(now);
                am.last_accessed_at = Set(now);
                (am.update(&txn).await?, old)
            }
            None => {
                let am = object::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    bucket_id: Set(nv.bucket.clone()),
                    name: Set(nv.name.clone()),
                    owner: Set(nv.owner.clone()),
                    metadata: Set(nv.metadata(&now)),
                    user_metadata: Set(nv.user_metadata.clone()),
                    version: Set(nv.version),
                    created_at: Set(now),
                    updated_at: Set(now),
                    last_accessed_at: Set(now),
                };
                (am.insert(&txn).await?, Vec::new())
            }
        };
        if quotas {
            self.check_quota(&txn, &bucket, nv.owner.as_deref()).await?;
        }
        txn.commit().await?;
        Ok((row, old))
    }

    /// The local backend's root when uploads are synced to the disk before commit.
    pub(crate) fn sync_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref().filter(|_| self.fsync)
    }

    /// How many versions of an object `bucket` keeps at most (`None`: no limit).
    pub(crate) fn retention(&self, bucket: &bucket::Model) -> Option<u64> {
        match bucket.max_versions {
            None => (self.default_max_versions > 0).then_some(self.default_max_versions),
            Some(n) => u64::try_from(n).ok().filter(|n| *n > 0),
        }
    }

    /// Bytes `bucket` holds: its objects and their kept versions; with
    /// `owner`, only those of the objects `owner` owns.
    pub(crate) async fn usage<C: ConnectionTrait>(
        &self,
        conn: &C,
        bucket: &str,
        owner: Option<&str>,
    ) -> Result<u64> {
        use sea_orm::sea_query::{Alias, Condition, Query};
        #[derive(FromQueryResult)]
        struct Used {
            used: i64,
        }
        let backend = conn.get_database_backend();
        // Fixed fragments (no client input): the size inside the JSON metadata.
        let object_sizes = match backend {
            sea_orm::DbBackend::Postgres => {
                "CAST(COALESCE(SUM(CAST(\"metadata\"->>'size' AS BIGINT)), 0) AS BIGINT)"
            }
            _ => {
                "CAST(COALESCE(SUM(CAST(json_extract(\"metadata\", '$.size') AS INTEGER)), 0) AS BIGINT)"
            }
        };
        let objects_of = || {
            let mut c = Condition::all().add(Expr::col(object::Column::BucketId).eq(bucket));
            if let Some(o) = owner {
                c = c.add(Expr::col(object::Column::Owner).eq(o));
            }
            c
        };
        let objects = Query::select()
            .expr_as(Expr::cust(object_sizes), Alias::new("used"))
            .from(object::Entity)
            .cond_where(objects_of())
            .to_owned();
        let versions = Query::select()
            .expr_as(
                Expr::cust("CAST(COALESCE(SUM(\"size\"), 0) AS BIGINT)"),
                Alias::new("used"),
            )
            .from(object_version::Entity)
            .and_where(
                Expr::col(object_version::Column::ObjectId).in_subquery(
                    Query::select()
                        .column(object::Column::Id)
                        .from(object::Entity)
                        .cond_where(objects_of())
                        .to_owned(),
                ),
            )
            .to_owned();
        let mut total: u64 = 0;
        for stmt in [objects, versions] {
            let used = Used::find_by_statement(backend.build(&stmt))
                .one(conn)
                .await?
                .map_or(0, |u| u.used);
            total = total.saturating_add(u64::try_from(used).unwrap_or(0));
        }
        Ok(total)
    }

    /// Inside a write transaction, before its writes: locks the row of a
    /// bucket with quotas (`SELECT … FOR UPDATE` on PostgreSQL; SQLite's write
    /// lock is already held), so concurrent writers to it check their quotas
    /// one after the other, each seeing what the previous ones committed. Taken
    /// before the writes: an insert's foreign-key check share-locks the same row.
    pub(crate) async fn lock_bucket<C: ConnectionTrait>(
        &self,
        txn: &C,
        bucket: &str,
    ) -> Result<bucket::Model> {
        bucket::Entity::find_by_id(bucket.to_owned())
            .lock_exclusive()
            .one(txn)
            .await?
            .ok_or(StorageError::NoSuchBucket)
    }

    /// Inside a write transaction, after its writes (and [`Self::lock_bucket`]):
    /// refuses the transaction when `bucket` is over its quota, or `owner` over
    /// the bucket's per-owner quota.
    pub(crate) async fn check_quota<C: ConnectionTrait>(
        &self,
        txn: &C,
        bucket: &bucket::Model,
        owner: Option<&str>,
    ) -> Result<()> {
        if let Some(quota) = bucket.quota.and_then(|q| u64::try_from(q).ok())
            && self.usage(txn, &bucket.id, None).await? > quota
        {
            return Err(StorageError::QuotaExceeded);
        }
        if let (Some(quota), Some(owner)) = (
            bucket.owner_quota.and_then(|q| u64::try_from(q).ok()),
            owner,
        ) && self.usage(txn, &bucket.id, Some(owner)).await? > quota
        {
            return Err(StorageError::QuotaExceeded);
        }
        Ok(())
    }

    /// Bytes `owner` may still add to `bucket` under its quotas (`None`: no
    /// quota applies), for the streaming limit. The commit checks exactly.
    pub(crate) async fn quota_room(
        &self,
        bucket: &bucket::Model,
        owner: Option<&str>,
    ) -> Result<Option<u64>> {
        let mut room: Option<u64> = None;
        if let Some(quota) = bucket.quota.and_then(|q| u64::try_from(q).ok()) {
            let left = quota.saturating_sub(self.usage(&self.db, &bucket.id, None).await?);
            room = Some(left);
        }
        if let (Some(quota), Some(owner)) = (
            bucket.owner_quota.and_then(|q| u64::try_from(q).ok()),
            owner,
        ) {
            let left = quota.saturating_sub(self.usage(&self.db, &bucket.id, Some(owner)).await?);
            room = Some(room.map_or(left, |r| Ord::min(r, left)));
        }
        Ok(room)
    }

    /// Deletes the bytes of a version no row points at any more; failures
    /// are logged (the bytes are then an orphan for the sweeper).
    pub(crate) async fn discard_version(&self, version: &Uuid) {
        match self.store.delete(&version_key(version)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(err) => tracing::warn!(%version, error = %err, "could not delete object bytes"),
        }
    }

    /// Deletes `rows` and their kept versions (one transaction), then their
    /// bytes; announces each deletion.
    pub(crate) async fn delete_rows(&self, rows: Vec<object::Model>) -> Result<Vec<object::Model>> {
        if rows.is_empty() {
            return Ok(rows);
        }
        let txn = self.db.begin().await?;
        // Kept versions go with their object (also by `ON DELETE CASCADE`):
        // read them first so their bytes can be deleted after commit.
        let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
        let kept: Vec<(Uuid, Uuid)> = object_version::Entity::find()
            .select_only()
            .column(object_version::Column::Version)
            .column(object_version::Column::ObjectId)
            .filter(object_version::Column::ObjectId.is_in(ids))
            .into_tuple::<(Uuid, Uuid)>()
            .all(&txn)
            .await?;
        let mut deleted = Vec::with_capacity(rows.len());
        for row in rows {
            let res = object::Entity::delete_many()
                .filter(object::Column::Id.eq(row.id))
                .filter(object::Column::Version.eq(row.version))
                .exec(&txn)
                .await?;
            if res.rows_affected == 1 {
                deleted.push(row);
            }
        }
        let gone: std::collections::HashSet<Uuid> = deleted.iter().map(|r| r.id).collect();
        let versions: Vec<Uuid> = kept
            .into_iter()
            .filter(|(_, object_id)| gone.contains(object_id))
            .map(|(version, _)| version)
            .collect();
        if !versions.is_empty() {
            object_version::Entity::delete_many()
                .filter(object_version::Column::Version.is_in(versions.clone()))
                .exec(&txn)
                .await?;
        }
        txn.commit().await?;
        for version in &versions {
            self.discard_version(version).await;
        }
        for row in &deleted {
            self.discard_version(&row.version).await;
            self.announce(Event::ObjectDeleted(object_event(row))).await;
        }
        Ok(deleted)
    }

    /// Publishes `event` (after commit); a bus failure is logged, not returned.
    pub(crate) async fn announce(&self, event: Event) {
        if let Err(err) = self.bus.publish(event).await {
            tracing::warn!(error = %err, "could not publish storage event");
        }
    }
}

/// The size of an object row's current version.
pub(crate) fn size_of(row: &object::Model) -> u64 {
    row.metadata
        .get("size")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Inside a transaction: keeps `row`'s current version as a previous version.
pub(crate) async fn archive<C: ConnectionTrait>(
    txn: &C,
    row: &object::Model,
    now: chrono::DateTime<Utc>,
) -> Result<()> {
    object_version::ActiveModel {
        version: Set(row.version),
        object_id: Set(row.id),
        owner: Set(row.owner.clone()),
        size: Set(i64::try_from(size_of(row)).unwrap_or(i64::MAX)),
        metadata: Set(row.metadata.clone()),
        user_metadata: Set(row.user_metadata.clone()),
        created_at: Set(row.updated_at),
        archived_at: Set(now),
    }
    .insert(txn)
    .await?;
    Ok(())
}

/// Inside a transaction: deletes the rows of `object`'s kept versions beyond
/// the `keep` newest (by `archived_at`, then `created_at`) and returns their
/// versions, whose bytes the caller deletes after commit.
pub(crate) async fn prune_versions<C: ConnectionTrait>(
    txn: &C,
    object: Uuid,
    keep: u64,
) -> Result<Vec<Uuid>> {
    use sea_orm::QueryOrder;
    let pruned: Vec<Uuid> = object_version::Entity::find()
        .select_only()
        .column(object_version::Column::Version)
        .filter(object_version::Column::ObjectId.eq(object))
        .order_by_desc(object_version::Column::ArchivedAt)
        .order_by_desc(object_version::Column::CreatedAt)
        .order_by_desc(object_version::Column::Version)
        .offset(keep)
        // SQLite accepts `OFFSET` only after a `LIMIT`.
        .limit(i64::MAX.unsigned_abs())
        .into_tuple::<Uuid>()
        .all(txn)
        .await?;
    if !pruned.is_empty() {
        object_version::Entity::delete_many()
            .filter(object_version::Column::Version.is_in(pruned.clone()))
            .exec(txn)
            .await?;
    }
    Ok(pruned)
}

/// The bus event describing `row`.
pub(crate) fn object_event(row: &object::Model) -> ObjectEvent {
    ObjectEvent {
        bucket: row.bucket_id.clone(),
        path: row.name.clone(),
        owner: row.owner.clone(),
        size: row.metadata.get("size").and_then(Value::as_u64),
        content_type: row
            .metadata
            .get("mimetype")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

impl StorageState {
    /// Deletes bytes under `objects/` that no row points at and that are
    /// older than `grace` (uploads in flight are younger): what a crash
    /// between writing bytes and committing their row leaves behind.
    /// Returns how many were deleted.
    ///
    /// # Errors
    /// Listing the store or querying the database failed.
    pub async fn sweep_orphans(&self, grace: std::time::Duration) -> Result<usize> {
        use futures_util::StreamExt;
        let cutoff =
            Utc::now() - chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let mut listing = self.store.list(Some(&Path::from("objects")));
        let mut candidates: Vec<(Uuid, Path)> = Vec::new();
        let mut deleted = 0;
        while let Some(meta) = listing.next().await {
            let meta = meta?;
            if meta.last_modified > cutoff {
                continue;
            }
            let Some(version) = meta
                .location
                .filename()
                .and_then(|f| Uuid::try_parse(f).ok())
            else {
                continue;
            };
            candidates.push((version, meta.location));
            if candidates.len() >= 500 {
                deleted += self
                    .delete_unreferenced(std::mem::take(&mut candidates))
                    .await?;
            }
        }
        deleted += self.delete_unreferenced(candidates).await?;
        if let Some(root) = self.local_root.clone() {
            let cutoff = std::time::SystemTime::now()
                .checked_sub(grace)
                .unwrap_or(std::time::UNIX_EPOCH);
            deleted += tokio::task::spawn_blocking(move || {
                sweep_staging_files(&root.join("objects"), cutoff)
            })
            .await
            .map_err(|e| StorageError::Internal(format!("staging sweep: {e}")))?;
        }
        Ok(deleted)
    }

    async fn delete_unreferenced(&self, candidates: Vec<(Uuid, Path)>) -> Result<usize> {
        if candidates.is_empty() {
            return Ok(0);
        }
        let versions: Vec<Uuid> = candidates.iter().map(|(v, _)| *v).collect();
        let mut referenced: std::collections::HashSet<Uuid> = object::Entity::find()
            .select_only()
            .column(object::Column::Version)
            .filter(object::Column::Version.is_in(versions.clone()))
            .into_tuple::<Uuid>()
            .all(&self.db)
            .await?
            .into_iter()
            .collect();
        referenced.extend(
            object_version::Entity::find()
                .select_only()
                .column(object_version::Column::Version)
                .filter(object_version::Column::Version.is_in(versions))
                .into_tuple::<Uuid>()
                .all(&self.db)
                .await?,
        );
        let mut deleted = 0;
        for (version, path) in candidates {
            if referenced.contains(&version) {
                continue;
            }
            match self.store.delete(&path).await {
                Ok(()) => deleted += 1,
                Err(object_store::Error::NotFound { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        if deleted > 0 {
            tracing::info!(deleted, "storage sweeper removed orphaned bytes");
        }
        Ok(deleted)
    }
}

/// Deletes the local backend's staging files (`objects/<xx>/<version>#<n>`, a
/// multipart upload in progress) last written before `cutoff`: an upload that
/// was cut short by a crash leaves one behind, and object_store's listing does
/// not show them. Only regular files of exactly that shape are touched (never
/// followed symlinks); a directory that cannot be read is skipped.
fn sweep_staging_files(objects: &std::path::Path, cutoff: std::time::SystemTime) -> usize {
    let mut deleted = 0;
    let Ok(shards) = std::fs::read_dir(objects) else {
        return 0;
    };
    for shard in shards.flatten() {
        if !shard.file_type().is_ok_and(|t| t.is_dir()) {
            continue;
        }
        let Ok(files) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let Some((version, suffix)) = name.to_str().and_then(|n| n.split_once('#')) else {
                continue;
            };
            let staging = Uuid::try_parse(version).is_ok()
                && !suffix.is_empty()
                && suffix.bytes().all(|b| b.is_ascii_digit());
            let old = file
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff);
            if staging
                && old
                && file.file_type().is_ok_and(|t| t.is_file())
                && std::fs::remove_file(file.path()).is_ok()
            {
                deleted += 1;
            }
        }
    }
    if deleted > 0 {
        tracing::info!(deleted, "storage sweeper removed stale staging files");
    }
    deleted
}

//! Builds the object store from [`BackendConfig`].

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use goforward_core::Error;
use object_store::{ObjectStore, local::LocalFileSystem, memory::InMemory};

use crate::config::BackendConfig;

/// The local backend's root (canonical), `None` for the other backends.
///
/// # Errors
/// [`Error::Config`] naming `storage.backend` when the root cannot be resolved.
pub fn local_root(config: &BackendConfig, data_dir: &Path) -> Result<Option<PathBuf>, Error> {
    match config {
        BackendConfig::Local { root } => {
            let root = root.clone().unwrap_or_else(|| data_dir.join("storage"));
            std::fs::canonicalize(&root).map(Some).map_err(|e| {
                Error::config(
                    "storage.backend",
                    "",
                    format!("cannot resolve {}: {e}", root.display()),
                )
            })
        }
        _ => Ok(None),
    }
}

/// Creates the local backend's 256 shard directories (`objects/00` … `objects/ff`)
/// and flushes them (and `objects`, and the root) to the disk once, so that a
/// synced upload has only its file and its shard directory to flush.
fn prepare_shards(root: &Path) -> std::io::Result<()> {
    let objects = root.join("objects");
    std::fs::create_dir_all(&objects)?;
    for shard in 0..=255u8 {
        let dir = objects.join(format!("{shard:02x}"));
        if !dir.is_dir() {
            std::fs::create_dir(&dir)?;
            std::fs::File::open(&dir)?.sync_all()?;
        }
    }
    std::fs::File::open(&objects)?.sync_all()?;
    std::fs::File::open(root)?.sync_all()
}

/// Builds the configured store; the local backend's root is created if
/// missing and canonicalised (symlinks resolved once, at start). With
/// `fsync`, the local backend's shard directories are created up front and
/// kept when they empty (see [`crate::upload::sync_version`]).
///
/// # Errors
/// [`Error::Config`] naming `storage.backend` when the store cannot be set up.
pub fn build(
    config: &BackendConfig,
    data_dir: &Path,
    fsync: bool,
) -> Result<Arc<dyn ObjectStore>, Error> {
    let fail = |problem: String| Error::config("storage.backend", "", problem);
    match config {
        BackendConfig::Local { root } => {
            let root = root.clone().unwrap_or_else(|| data_dir.join("storage"));
            std::fs::create_dir_all(&root)
                .map_err(|e| fail(format!("cannot create {}: {e}", root.display())))?;
            let root = std::fs::canonicalize(&root)
                .map_err(|e| fail(format!("cannot resolve {}: {e}", root.display())))?;
            if fsync {
                prepare_shards(&root)
                    .map_err(|e| fail(format!("cannot prepare {}: {e}", root.display())))?;
            }
            // Empty directories are removed after deletes, except when uploads
            // are synced: the shard directories must stay (their entries are
            // on the disk already).
            let fs = LocalFileSystem::new_with_prefix(&root)
                .map_err(|e| fail(e.to_string()))?
                .with_automatic_cleanup(!fsync);
            Ok(Arc::new(fs))
        }
        BackendConfig::Memory => Ok(Arc::new(InMemory::new())),
        #[cfg(feature = "s3")]
        BackendConfig::S3 {
            bucket,
            region,
            endpoint,
            access_key_id,
            secret_access_key,
            allow_http,
        } => {
            use secrecy::ExposeSecret;
            let mut b = object_store::aws::AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_allow_http(*allow_http);
            if let Some(r) = region {
                b = b.with_region(r);
            }
            if let Some(e) = endpoint {
                b = b.with_endpoint(e);
            }
            if let Some(k) = access_key_id {
                b = b.with_access_key_id(k);
            }
            if let Some(s) = secret_access_key {
                b = b.with_secret_access_key(s.expose_secret());
            }
            Ok(Arc::new(b.build().map_err(|e| fail(e.to_string()))?))
        }
        #[cfg(feature = "gcs")]
        BackendConfig::Gcs {
            bucket,
            service_account_path,
        } => {
            let mut b =
                object_store::gcp::GoogleCloudStorageBuilder::new().with_bucket_name(bucket);
            if let Some(p) = service_account_path {
                b = b.with_service_account_path(p);
            }
            Ok(Arc::new(b.build().map_err(|e| fail(e.to_string()))?))
        }
        #[cfg(feature = "azure")]
        BackendConfig::Azure {
            account,
            container,
            access_key,
        } => {
            use secrecy::ExposeSecret;
            let mut b = object_store::azure::MicrosoftAzureBuilder::new()
                .with_account(account)
                .with_container_name(container);
            if let Some(k) = access_key {
                b = b.with_access_key(k.expose_secret());
            }
            Ok(Arc::new(b.build().map_err(|e| fail(e.to_string()))?))
        }
    }
}

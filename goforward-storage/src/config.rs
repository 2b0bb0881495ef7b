//! The typed `storage` config section.
//!
//! ```toml
//! [storage]
//! max_file_size = "50MB"           # server-wide cap; buckets may set lower limits
//! signed_upload_expires_secs = 7200
//! sweep_interval_secs = 3600      # orphan sweeper period (0: off)
//! orphan_grace_secs = 3600        # bytes without a row older than this are deleted
//! max_versions = 0                # kept versions per object in versioned buckets (0: no limit)
//! fsync = true                    # local backend: fsync bytes before the commit
//! signing_secret = "…"            # signs new signed URLs (default: derived from jwt.secret)
//! signing_kid = "2026-11"         # the `kid` of those tokens
//! [[storage.previous_signing_secrets]]   # verify-only keys of a rotation
//! kid = "2026-05"
//! secret = "…"
//! [storage.backend]
//! kind = "local"                   # "local" (default), "memory", "s3", "gcs", "azure"
//! root = "/var/lib/goforward/storage"   # default: <data_dir>/storage
//! ```

use std::path::PathBuf;

use secrecy::SecretString;
use serde::Deserialize;

/// The `storage` section.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Where object bytes live.
    pub backend: BackendConfig,
    /// Largest object accepted anywhere, as bytes or `"50MB"`-style string (default 50 MiB).
    pub max_file_size: serde_json::Value,
    /// Lifetime of signed upload URLs in seconds (default 2 hours).
    pub signed_upload_expires_secs: u64,
    /// Longest lifetime a signed download URL may ask for, in seconds (default one year).
    pub max_signed_url_expires_secs: u64,
    /// Secret for signed URLs (at least 32 bytes); default: derived from the
    /// JWT secret (then `jwt.kid` and `jwt.previous_secrets` apply).
    pub signing_secret: Option<SecretString>,
    /// Key id written into the header of the tokens `signing_secret` signs.
    pub signing_kid: Option<String>,
    /// Earlier signing secrets, still accepted to verify the tokens they
    /// signed (matched by `kid`), never used to sign: a rotation does not
    /// break links issued before it until they expire.
    pub previous_signing_secrets: Vec<PreviousSigningSecret>,
    /// How often the orphan sweeper runs, in seconds (0: never; default one hour).
    pub sweep_interval_secs: u64,
    /// Age in seconds after which unreferenced bytes are orphans (default one hour).
    pub orphan_grace_secs: u64,
    /// Most kept versions per object in versioned buckets that set no
    /// `max_versions` of their own (0: no limit; default 0).
    pub max_versions: u64,
    /// Local backend: `fsync` an upload's file and its directory before its
    /// row is committed, so a committed object survives a power loss
    /// (default true; see docs/storage.md, Durability).
    pub fsync: bool,
    /// Image transformations (feature `image`): largest object transformed, in
    /// bytes (default 25 MiB).
    pub image_max_input_bytes: u64,
    /// Image transformations: largest input width or height in pixels, checked
    /// from the image header before decoding (default 8192).
    pub image_max_input_side: u32,
    /// Image transformations run at once (default 2); others wait.
    pub image_max_concurrent: usize,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            backend: BackendConfig::default(),
            max_file_size: serde_json::Value::from(50u64 << 20),
            signed_upload_expires_secs: 7200,
            max_signed_url_expires_secs: 365 * 24 * 3600,
            signing_secret: None,
            signing_kid: None,
            previous_signing_secrets: Vec::new(),
            sweep_interval_secs: 3600,
            orphan_grace_secs: 3600,
            max_versions: 0,
            fsync: true,
            image_max_input_bytes: 25 << 20,
            image_max_input_side: 8192,
            image_max_concurrent: 2,
        }
    }
}

/// A retired signed-URL secret, accepted for verification during a rotation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousSigningSecret {
    /// The `kid` of the tokens it signed (none for tokens signed without one).
    #[serde(default)]
    pub kid: Option<String>,
    /// The secret (at least 32 bytes).
    pub secret: SecretString,
}

/// The object store backend.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
#[non_exhaustive]
pub enum BackendConfig {
    /// Local filesystem.
    Local {
        /// Root directory; default `<data_dir>/storage`.
        #[serde(default)]
        root: Option<PathBuf>,
    },
    /// In memory (tests; lost at exit, not shared between nodes).
    Memory,
    /// An S3-compatible service (feature `s3`).
    #[cfg(feature = "s3")]
    S3 {
        /// Bucket name.
        bucket: String,
        /// Region (e.g. `us-east-1`).
        #[serde(default)]
        region: Option<String>,
        /// Endpoint URL for S3-compatible servers (MinIO, R2…).
        #[serde(default)]
        endpoint: Option<String>,
        /// Access key id.
        #[serde(default)]
        access_key_id: Option<String>,
        /// Secret access key.
        #[serde(default)]
        secret_access_key: Option<SecretString>,
        /// Allow plain `http://` endpoints.
        #[serde(default)]
        allow_http: bool,
    },
    /// Google Cloud Storage (feature `gcs`).
    #[cfg(feature = "gcs")]
    Gcs {
        /// Bucket name.
        bucket: String,
        /// Path to a service-account JSON file.
        #[serde(default)]
        service_account_path: Option<String>,
    },
    /// Azure Blob Storage (feature `azure`).
    #[cfg(feature = "azure")]
    Azure {
        /// Storage account.
        account: String,
        /// Container name.
        container: String,
        /// Access key.
        #[serde(default)]
        access_key: Option<SecretString>,
    },
}

impl Default for BackendConfig {
    fn default() -> Self {
        Self::Local { root: None }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_denies_unknown_fields() {
        let c: StorageConfig = serde_json::from_value(serde_json::json!({
            "max_file_size": "5MB",
            "backend": {"kind": "memory"}
        }))
        .unwrap();
        assert!(matches!(c.backend, BackendConfig::Memory));
        assert!(
            serde_json::from_value::<StorageConfig>(serde_json::json!({"max_size": 1})).is_err()
        );
        assert!(
            serde_json::from_value::<StorageConfig>(
                serde_json::json!({"backend": {"kind": "local", "rooot": "/x"}})
            )
            .is_err()
        );
    }
}

//! Buckets declared in code: [`Bucket`].

use goforward_core::access::{Action, Policy, Rule};

/// A bucket the host declares when building the plugin; created (or
/// brought in line with this declaration) at start, with its access policy
/// registered in core's policy registry.
///
/// ```
/// use goforward_storage::{Bucket, Storage};
///
/// let storage = Storage::new()
///     .bucket(Bucket::public("avatars").allowed_mime_types(["image/*"]).file_size_limit(5_000_000))
///     .bucket(Bucket::private("documents").file_size_limit(50_000_000));
/// # let _ = storage;
/// ```
#[derive(Debug, Clone)]
pub struct Bucket {
    pub(crate) id: String,
    pub(crate) public: bool,
    pub(crate) file_size_limit: Option<u64>,
    pub(crate) allowed_mime_types: Option<Vec<String>>,
    pub(crate) policy: Option<Policy>,
    pub(crate) versioning: bool,
    pub(crate) quota: Option<u64>,
    pub(crate) owner_quota: Option<u64>,
    pub(crate) max_versions: Option<u64>,
}

impl Bucket {
    /// A public bucket: anyone (anon too) reads and lists; signed-in users
    /// upload, and replace or delete only what they own.
    pub fn public(id: impl Into<String>) -> Self {
        Self::new(id, true)
    }

    /// A private bucket: signed-in users read, list, replace and delete only
    /// the objects they own; no anonymous access.
    pub fn private(id: impl Into<String>) -> Self {
        Self::new(id, false)
    }

    fn new(id: impl Into<String>, public: bool) -> Self {
        Self {
            id: id.into(),
            public,
            file_size_limit: None,
            allowed_mime_types: None,
            policy: None,
            versioning: false,
            quota: None,
            owner_quota: None,
            max_versions: None,
        }
    }

    /// Largest object in bytes.
    pub fn file_size_limit(mut self, bytes: u64) -> Self {
        self.file_size_limit = Some(bytes);
        self
    }

    /// Allowed MIME types; `type/*` wildcards are accepted.
    pub fn allowed_mime_types<S: Into<String>>(
        mut self,
        types: impl IntoIterator<Item = S>,
    ) -> Self {
        self.allowed_mime_types = Some(types.into_iter().map(Into::into).collect());
        self
    }

    /// Keeps the previous version of an object when it is overwritten
    /// (listed and restored through `/object/versions/…`); off by default.
    pub fn versioning(mut self, on: bool) -> Self {
        self.versioning = on;
        self
    }

    /// Most bytes the bucket may hold, counting objects and kept versions;
    /// enforced while uploads stream and again at commit.
    pub fn quota(mut self, bytes: u64) -> Self {
        self.quota = Some(bytes);
        self
    }

    /// Most bytes one owner's objects (with their kept versions) may take in
    /// this bucket; objects without an owner (service uploads) are not counted
    /// against anyone. Enforced like [`Bucket::quota`].
    pub fn owner_quota(mut self, bytes: u64) -> Self {
        self.owner_quota = Some(bytes);
        self
    }

    /// Most kept versions per object when the bucket keeps versions: an
    /// overwrite that would keep more prunes the oldest (rows and bytes) in
    /// its commit. `0`: no limit. Unset: the server's `storage.max_versions`.
    pub fn max_versions(mut self, versions: u64) -> Self {
        self.max_versions = Some(versions);
        self
    }

    /// Replaces the default access policy (see [`Bucket::default_policy`]).
    /// Rules see object rows as `{bucket_id, name, owner, metadata, user_metadata}`.
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The bucket id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The policy a bucket gets unless one is given: for public buckets,
    /// `Select` and `List` are public and writes are owner-only; for private
    /// buckets every action is owner-only. Bucket administration (`Admin`)
    /// is left to service_role.
    pub fn default_policy(public: bool) -> Policy {
        let owner = || Rule::Owner("owner".into());
        if public {
            Policy::deny_all()
                .with(Action::Select, Rule::Public)
                .with(Action::List, Rule::Public)
                .with(Action::Upload, owner())
                .with(Action::Update, owner())
                .with(Action::Delete, owner())
        } else {
            Policy::all(owner()).with(Action::Admin, Rule::Deny)
        }
    }
}

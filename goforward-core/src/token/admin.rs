//! The administrator hierarchy and what each level may do.
//!
//! The auth plugin stores a user's administrator level in
//! `app_metadata.admin_role` (server-only, so users cannot grant it to
//! themselves) and it travels in the access token. Every plugin asks the
//! same question through [`Principal::has_capability`], so "who may manage
//! users, tables, storage, SQL and logs" is decided in one place.
//! `service_role` holds every capability.

use serde_json::Value;

use super::Principal;

/// A level of the administrator hierarchy, lowest first:
/// `moderator < admin < super_admin < system_admin`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum AdminRole {
    /// Sees users and the audit log; cannot change them.
    Moderator,
    /// Manages users and storage.
    Admin,
    /// Also manages tables (schema, data import/export) and lower admins.
    SuperAdmin,
    /// Everything, including the raw SQL runner and server settings.
    SystemAdmin,
}

impl AdminRole {
    /// Every level, lowest first.
    pub const ALL: [AdminRole; 4] = [
        AdminRole::Moderator,
        AdminRole::Admin,
        AdminRole::SuperAdmin,
        AdminRole::SystemAdmin,
    ];

    /// Parses the claim string (`"system_admin"`, …); `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The claim string.
    pub fn as_str(self) -> &'static str {
        match self {
            AdminRole::Moderator => "moderator",
            AdminRole::Admin => "admin",
            AdminRole::SuperAdmin => "super_admin",
            AdminRole::SystemAdmin => "system_admin",
        }
    }

    /// Whether this level holds `capability`.
    pub fn grants(self, capability: Capability) -> bool {
        self >= capability.minimum_role()
    }
}

/// Something an administrator may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Capability {
    /// List and read users, sessions and identities.
    ViewUsers,
    /// Create, update, ban and delete users; revoke their sessions.
    ManageUsers,
    /// Read the audit log and request logs.
    ViewLogs,
    /// Manage buckets and any object regardless of owner.
    ManageStorage,
    /// Introspect and change the database schema; import and export data.
    ManageTables,
    /// Grant and revoke administrator levels below one's own.
    ManageAdmins,
    /// Run raw SQL (still subject to the SQL runner's own lock, see the meta API).
    RunSql,
}

impl Capability {
    /// The lowest administrator level holding this capability.
    pub fn minimum_role(self) -> AdminRole {
        match self {
            Capability::ViewUsers => AdminRole::Moderator,
            Capability::ManageUsers | Capability::ViewLogs | Capability::ManageStorage => {
                AdminRole::Admin
            }
            Capability::ManageTables | Capability::ManageAdmins => AdminRole::SuperAdmin,
            Capability::RunSql => AdminRole::SystemAdmin,
        }
    }
}

impl Principal {
    /// The administrator level from the token's `app_metadata.admin_role`
    /// claim, if any (service_role is not an administrator level: it is above them).
    ///
    /// ```
    /// use goforward_core::token::{AdminRole, Principal};
    /// let claims = serde_json::json!({
    ///     "role": "authenticated", "sub": "u1",
    ///     "app_metadata": {"admin_role": "super_admin"},
    /// });
    /// let p = Principal::from_claims(claims.as_object().unwrap().clone()).unwrap();
    /// assert_eq!(p.admin_role(), Some(AdminRole::SuperAdmin));
    /// ```
    pub fn admin_role(&self) -> Option<AdminRole> {
        match self.claims.get("app_metadata")?.get("admin_role")? {
            Value::String(name) => AdminRole::parse(name),
            _ => None,
        }
    }

    /// Whether the caller may do `capability`: service_role always; a
    /// signed-in user when their administrator level grants it.
    ///
    /// ```
    /// use goforward_core::token::{Capability, Principal};
    /// assert!(Principal::service().has_capability(Capability::RunSql));
    /// assert!(!Principal::anon().has_capability(Capability::ViewUsers));
    /// ```
    pub fn has_capability(&self, capability: Capability) -> bool {
        if self.is_service() {
            return true;
        }
        // Only a user's token carries an administrator level: an API key
        // with a custom role and a stray claim is not an administrator.
        self.user_id.is_some()
            && self
                .admin_role()
                .is_some_and(|role| role.grants(capability))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn user(admin_role: Value) -> Principal {
        let claims = json!({"role": "authenticated", "sub": "u", "app_metadata": {"admin_role": admin_role}});
        Principal::from_claims(claims.as_object().cloned().unwrap_or_default()).unwrap()
    }

    #[test]
    fn hierarchy_is_ordered_and_capabilities_follow_it() {
        let moderator = user(json!("moderator"));
        assert!(moderator.has_capability(Capability::ViewUsers));
        assert!(!moderator.has_capability(Capability::ManageUsers));
        let admin = user(json!("admin"));
        assert!(admin.has_capability(Capability::ManageStorage));
        assert!(!admin.has_capability(Capability::ManageTables));
        let super_admin = user(json!("super_admin"));
        assert!(super_admin.has_capability(Capability::ManageTables));
        assert!(!super_admin.has_capability(Capability::RunSql));
        assert!(user(json!("system_admin")).has_capability(Capability::RunSql));
    }

    #[test]
    fn unknown_or_malformed_levels_grant_nothing() {
        for bad in [json!("root"), json!(7), json!(null), json!(["admin"])] {
            let p = user(bad);
            assert_eq!(p.admin_role(), None);
            assert!(!p.has_capability(Capability::ViewUsers));
        }
        assert!(!Principal::anon().has_capability(Capability::ViewUsers));
        let top_level_claim =
            json!({"role": "authenticated", "sub": "u", "admin_role": "system_admin"});
        let p = Principal::from_claims(top_level_claim.as_object().cloned().unwrap_or_default())
            .unwrap();
        assert!(!p.has_capability(Capability::RunSql));
    }
}

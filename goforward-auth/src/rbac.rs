//! RBAC and the administrator hierarchy.
//!
//! - A user's administrator level (core's [`AdminRole`]: moderator < admin <
//!   super_admin < system_admin) lives in `app_metadata.admin_role`, which
//!   only the server writes, so it travels in every access token issued or
//!   refreshed after it changes.
//! - RBAC roles (`auth_roles`) grant permissions (`auth_permissions`); the
//!   names of the roles assigned to a user (`auth_user_roles`) are mirrored
//!   into `app_metadata.roles` on every change, so AccessControl rules can
//!   read them from the token.
//! - The admin API asks `authorize` for a capability: service_role holds
//!   all; a user holds those of their level, checked against the token *and*
//!   the database (a demotion or ban applies at once). Administrators act only
//!   on users strictly below their own level (`Caller::may_act_on`) and grant
//!   only levels strictly below their own (`Caller::may_grant`); only
//!   service_role (the server key, the CLI) can make a system_admin.

use chrono::Utc;
use goforward_core::{
    Principal,
    token::{AdminRole, Capability},
};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Set,
};
use serde_json::{Value, json};

use crate::entity::{role, user, user_role};
use crate::error::{AuthError, Result};
use crate::state::AuthState;
use crate::users;

/// Names an RBAC role may not take (core's roles and the administrator levels).
pub const RESERVED_ROLE_NAMES: [&str; 9] = [
    "anon",
    "authenticated",
    "service_role",
    "supabase_admin",
    "postgres",
    "moderator",
    "admin",
    "super_admin",
    "system_admin",
];

/// The administrator level stored in `user`'s `app_metadata.admin_role`.
pub fn admin_level(user: &user::Model) -> Option<AdminRole> {
    match users::json_object(&user.raw_app_meta_data).get("admin_role") {
        Some(Value::String(name)) => AdminRole::parse(name),
        _ => None,
    }
}

/// Parses an administrator level from a request (`null` = none).
///
/// # Errors
/// `validation_failed` for anything but a level name or `null`.
pub fn parse_level(value: &Value) -> Result<Option<AdminRole>> {
    match value {
        Value::Null => Ok(None),
        Value::String(name) => AdminRole::parse(name).map(Some).ok_or_else(|| {
            AuthError::Validation(format!(
                "Unknown admin_role {name:?}: expected moderator, admin, super_admin, system_admin or null"
            ))
        }),
        _ => Err(AuthError::Validation(
            "admin_role must be a string or null".into(),
        )),
    }
}

/// Checks an RBAC role name: `[a-z][a-z0-9_-]*`, at most 64 characters, not reserved.
///
/// # Errors
/// `validation_failed`.
pub fn valid_role_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-');
    if !ok {
        return Err(AuthError::Validation(format!(
            "Invalid role name {name:?}: expected [a-z][a-z0-9_-]*, at most 64 characters"
        )));
    }
    if RESERVED_ROLE_NAMES.contains(&name) {
        return Err(AuthError::Validation(format!(
            "Role name {name:?} is reserved"
        )));
    }
    Ok(name.to_owned())
}

/// Checks a permission name: letters, digits and `_-.:*`, 1 to 128 characters.
///
/// # Errors
/// `validation_failed`.
pub fn valid_permission_name(name: &str) -> Result<String> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:*".contains(c));
    if ok {
        Ok(name.to_owned())
    } else {
        Err(AuthError::Validation(format!(
            "Invalid permission name {name:?}: expected letters, digits and _-.:*, at most 128 characters"
        )))
    }
}

/// Who is calling the admin API, once `authorize`d.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    /// The caller's user id (`None` for service_role).
    pub user_id: Option<String>,
    /// The caller's administrator level (`None` for service_role).
    pub level: Option<AdminRole>,
}

impl Caller {
    /// The service_role key (or a server-internal call).
    pub(crate) fn service() -> Self {
        Self {
            user_id: None,
            level: None,
        }
    }

    /// True for service_role, which is above every level.
    pub(crate) fn is_service(&self) -> bool {
        self.user_id.is_none()
    }

    /// Whether the caller holds `capability`.
    pub(crate) fn holds(&self, capability: Capability) -> bool {
        self.is_service() || self.level.is_some_and(|l| l.grants(capability))
    }

    /// Requires `capability`.
    ///
    /// # Errors
    /// `not_admin` (403).
    pub(crate) fn require(&self, capability: Capability) -> Result<()> {
        if self.holds(capability) {
            Ok(())
        } else {
            Err(AuthError::NotAdmin("User not allowed".into()))
        }
    }

    /// An administrator may change, ban, delete or sign in as (links) only
    /// users strictly below their own level (so never themselves or a peer).
    ///
    /// # Errors
    /// `not_admin` (403).
    pub(crate) fn may_act_on(&self, target: &user::Model) -> Result<()> {
        if self.is_service() {
            return Ok(());
        }
        match (self.level, admin_level(target)) {
            (Some(mine), Some(theirs)) if theirs < mine => Ok(()),
            (Some(_), None) if self.user_id.as_deref() != Some(target.id.as_str()) => Ok(()),
            _ => Err(AuthError::NotAdmin(
                "Administrators can only manage users below their own admin_role".into(),
            )),
        }
    }

    /// Whether the caller may set `target`'s level to `level`: service_role
    /// any; otherwise `ManageAdmins`, a target below the caller and a level
    /// strictly below the caller's (so a super_admin cannot make a
    /// system_admin or another super_admin).
    ///
    /// # Errors
    /// `not_admin` (403).
    pub(crate) fn may_grant(
        &self,
        target: Option<&user::Model>,
        level: Option<AdminRole>,
    ) -> Result<()> {
        if self.is_service() {
            return Ok(());
        }
        self.require(Capability::ManageAdmins)?;
        if let Some(target) = target {
            self.may_act_on(target)?;
        }
        match (self.level, level) {
            (Some(mine), Some(wanted)) if wanted >= mine => Err(AuthError::NotAdmin(format!(
                "Cannot grant admin_role {:?}: only levels below your own ({:?})",
                wanted.as_str(),
                mine.as_str()
            ))),
            _ => Ok(()),
        }
    }
}

/// Establishes the caller of an admin endpoint and requires `capability`:
/// service_role, or a user whose token carries an administrator level
/// granting it *and* whose stored level (re-read, with ban and session
/// checks) still does.
///
/// # Errors
/// `not_admin` (403) when the caller lacks the capability; `user_banned`,
/// `session_not_found` for a banned user or revoked session.
pub(crate) async fn authorize(
    state: &AuthState,
    principal: &Principal,
    capability: Capability,
) -> Result<Caller> {
    if principal.is_service() {
        return Ok(Caller::service());
    }
    if !principal.has_capability(capability) {
        return Err(AuthError::NotAdmin("User not allowed".into()));
    }
    let (user, _) = crate::handlers::current(state, principal).await?;
    let caller = Caller {
        user_id: Some(user.id.clone()),
        level: admin_level(&user),
    };
    caller.require(capability)?;
    Ok(caller)
}

/// Writes `level` into `user`'s `app_metadata.admin_role` (removes it for `None`).
///
/// # Errors
/// Database errors.
pub async fn set_admin_level<C: ConnectionTrait>(
    db: &C,
    user: user::Model,
    level: Option<AdminRole>,
) -> Result<user::Model> {
    let mut app = users::json_object(&user.raw_app_meta_data);
    match level {
        Some(level) => app.insert("admin_role".into(), json!(level.as_str())),
        None => app.remove("admin_role"),
    };
    let mut active: user::ActiveModel = user.into();
    active.raw_app_meta_data = Set(Value::Object(app).to_string());
    active.updated_at = Set(Utc::now());
    Ok(active.update(db).await?)
}

/// The names of the roles assigned to `user_id`, sorted.
///
/// # Errors
/// Database errors.
pub async fn role_names<C: ConnectionTrait>(db: &C, user_id: &str) -> Result<Vec<String>> {
    let assigned: Vec<String> = user_role::Entity::find()
        .filter(user_role::Column::UserId.eq(user_id))
        .all(db)
        .await?
        .into_iter()
        .map(|a| a.role_id)
        .collect();
    if assigned.is_empty() {
        return Ok(Vec::new());
    }
    Ok(role::Entity::find()
        .filter(role::Column::Id.is_in(assigned))
        .order_by_asc(role::Column::Name)
        .all(db)
        .await?
        .into_iter()
        .map(|r| r.name)
        .collect())
}

/// Mirrors `user_id`'s assigned role names into `app_metadata.roles`
/// (removed when none).
///
/// # Errors
/// Database errors.
pub async fn sync_roles<C: ConnectionTrait>(db: &C, user_id: &str) -> Result<()> {
    let Some(user) = users::find_by_id(db, user_id).await? else {
        return Ok(());
    };
    let names = role_names(db, user_id).await?;
    let mut app = users::json_object(&user.raw_app_meta_data);
    let before = app.get("roles").cloned();
    if names.is_empty() {
        app.remove("roles");
    } else {
        app.insert("roles".into(), json!(names));
    }
    if app.get("roles").cloned() == before {
        return Ok(());
    }
    let mut active: user::ActiveModel = user.into();
    active.raw_app_meta_data = Set(Value::Object(app).to_string());
    active.updated_at = Set(Utc::now());
    active.update(db).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_names_are_checked() {
        assert!(valid_role_name("editor").is_ok());
        assert!(valid_role_name("team-lead_2").is_ok());
        for bad in ["", "Editor", "2x", "a b", "admin", "service_role", "x;drop"] {
            assert!(valid_role_name(bad).is_err(), "{bad}");
        }
        assert!(valid_role_name(&"a".repeat(65)).is_err());
        assert!(valid_permission_name("posts:write").is_ok());
        assert!(valid_permission_name("posts/write").is_err());
    }

    #[test]
    fn levels_parse() {
        assert_eq!(
            parse_level(&json!("admin")).ok().flatten(),
            Some(AdminRole::Admin)
        );
        assert!(matches!(parse_level(&json!(null)), Ok(None)));
        assert!(parse_level(&json!("root")).is_err());
        assert!(parse_level(&json!(3)).is_err());
    }
}

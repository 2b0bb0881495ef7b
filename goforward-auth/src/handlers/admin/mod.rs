//! The admin API: users (`/admin/users…`, GoTrue's pagination headers,
//! ban, role, metadata, soft/hard delete), links and invitations, a user's
//! MFA factors and sessions, RBAC roles and assignments, administrator levels, API keys
//! and the audit log.
//!
//! Callers: the service_role key, or a user whose administrator level grants
//! the capability (see [`crate::rbac`]): `ViewUsers` for reads, `ManageUsers`
//! for writes, `ViewLogs` for the audit log, `ManageAdmins` for levels,
//! role definitions and API keys.

mod api_keys;
mod audit;
mod factors;
mod links;
mod rbac;
mod sessions;
mod users;

pub(crate) use api_keys::{create_key, list_keys, revoke_key};
pub(crate) use audit::list_audit;
pub(crate) use factors::{delete_factor, list_factors};
pub(crate) use links::{generate_link, invite};
pub(crate) use rbac::{
    assign_role, create_role, delete_role, list_permissions, list_roles, set_admin_role,
    unassign_role, update_role, user_roles,
};
pub(crate) use sessions::{list_sessions, revoke_session, revoke_sessions};
pub(crate) use users::{create, delete, get_user, list_users, update};

use crate::entity::user;
use crate::error::{AuthError, Result};
use crate::state::AuthState;

pub(super) async fn find(state: &AuthState, id: &str) -> Result<user::Model> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(AuthError::AdminUserNotFound);
    }
    crate::users::find_by_id(&state.db, id)
        .await?
        .ok_or(AuthError::AdminUserNotFound)
}

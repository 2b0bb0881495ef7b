//! The admin API for the service_role key: users (`/admin/users…`,
//! GoTrue's pagination headers, ban, role, metadata, soft/hard delete),
//! links and invitations, and a user's MFA factors.
//!
//! Admins as users (RBAC capabilities) come with the RBAC work; today the
//! caller must present the service_role key as bearer.

mod factors;
mod links;
mod users;

pub(crate) use factors::{delete_factor, list_factors};
pub(crate) use links::{generate_link, invite};
pub(crate) use users::{create, delete, get_user, list_users, update};

use goforward_core::{Principal, Role};

use crate::entity::user;
use crate::error::{AuthError, Result};
use crate::state::AuthState;

pub(super) fn require_admin(principal: &Principal) -> Result<()> {
    if principal.role == Role::ServiceRole {
        Ok(())
    } else {
        Err(AuthError::NotAdmin("User not allowed".into()))
    }
}

pub(super) async fn find(state: &AuthState, id: &str) -> Result<user::Model> {
    if uuid::Uuid::parse_str(id).is_err() {
        return Err(AuthError::AdminUserNotFound);
    }
    crate::users::find_by_id(&state.db, id)
        .await?
        .ok_or(AuthError::AdminUserNotFound)
}

//! sea-orm entities of the auth tables (all prefixed `auth_`).
//!
//! Ids are UUIDs stored as text and JSON columns are text, so one schema
//! serves SQLite and PostgreSQL alike.

pub mod api_key;
pub mod audit_log;
pub mod flow_state;
pub mod identity;
pub mod mfa_challenge;
pub mod mfa_factor;
pub mod mfa_recovery_code;
pub mod oauth_state;
pub mod one_time_token;
pub mod permission;
pub mod refresh_token;
pub mod role;
pub mod role_permission;
pub mod session;
pub mod user;
pub mod user_role;

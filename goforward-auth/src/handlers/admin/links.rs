//! `POST /invite` and `POST /admin/generate_link`.

use actix_web::{HttpRequest, HttpResponse, web};
use goforward_core::{Principal, token::Capability};
use sea_orm::{ActiveModelTrait, Set};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::entity::user;
use crate::error::{AuthError, Result};
use crate::handlers::{RedirectQuery, State, audit, create_user, ok, parse};
use crate::password;
use crate::rbac::authorize;
use crate::users;

#[derive(Debug, Default, Deserialize)]
struct InviteBody {
    email: Option<String>,
    data: Option<Value>,
}

/// `POST /invite` (service_role): creates the user if needed and emails an
/// invitation (`verify` type `invite` signs the user in and confirms the email).
pub(crate) async fn invite(
    req: HttpRequest,
    principal: Principal,
    state: State,
    query: web::Query<RedirectQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let body: InviteBody = parse(body.into_inner())?;
    let Some(email) = body
        .email
        .as_deref()
        .map(users::normalize_email)
        .filter(|e| !e.is_empty())
    else {
        return Err(AuthError::Validation("An email address is required".into()));
    };
    if !users::valid_email(&email) {
        return Err(AuthError::EmailAddressInvalid);
    }
    let data = crate::handlers::signup::metadata(body.data)?;
    let redirect_to = state.redirects.resolve(query.redirect_to.as_deref());
    let user = match users::find_by_email(&state.db, &email).await? {
        Some(existing) if existing.email_confirmed_at.is_some() => {
            return Err(AuthError::EmailExists);
        }
        Some(existing) => {
            caller.may_act_on(&existing)?;
            existing
        }
        None => create_user(&state, Some(&email), None, data, false).await?,
    };
    crate::otp::send(
        &state,
        &user,
        crate::otp::TokenType::Invite,
        &email,
        &redirect_to,
        None,
    )
    .await?;
    audit(
        &state,
        caller.user_id.as_deref(),
        "user_invited",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": user.id }),
    )
    .await;
    let fresh = users::find_by_id(&state.db, &user.id)
        .await?
        .unwrap_or(user);
    Ok(ok(&users::user_json(&state.db, &fresh).await?))
}

#[derive(Debug, Default, Deserialize)]
struct GenerateLinkBody {
    #[serde(rename = "type")]
    kind: Option<String>,
    email: Option<String>,
    password: Option<String>,
    data: Option<Value>,
    new_email: Option<String>,
    redirect_to: Option<String>,
    #[serde(rename = "redirectTo")]
    redirect_to_camel: Option<String>,
}

/// `POST /admin/generate_link`: issues a link and code without sending an
/// email; answers the user object plus `action_link`, `email_otp`,
/// `hashed_token`, `redirect_to`, `verification_type`.
pub(crate) async fn generate_link(
    req: HttpRequest,
    principal: Principal,
    state: State,
    query: web::Query<RedirectQuery>,
    body: web::Json<Value>,
) -> Result<HttpResponse> {
    use crate::otp::TokenType;
    let caller = authorize(&state, &principal, Capability::ManageUsers).await?;
    let body: GenerateLinkBody = parse(body.into_inner())?;
    let kind = body.kind.clone().unwrap_or_default();
    let Some(email) = body
        .email
        .as_deref()
        .map(users::normalize_email)
        .filter(|e| users::valid_email(e))
    else {
        return Err(AuthError::EmailAddressInvalid);
    };
    let redirect_to = state.redirects.resolve(
        query
            .redirect_to
            .as_deref()
            .or(body.redirect_to.as_deref())
            .or(body.redirect_to_camel.as_deref()),
    );
    let existing = users::find_by_email(&state.db, &email).await?;
    if let Some(existing) = &existing {
        // A link signs its holder in as the user.
        caller.may_act_on(existing)?;
    }
    let (user, ty, to) = match kind.as_str() {
        "signup" | "invite" => {
            let confirmed = existing
                .as_ref()
                .is_some_and(|u| u.email_confirmed_at.is_some());
            if confirmed {
                return Err(AuthError::EmailExists);
            }
            let hash = match (kind.as_str(), body.password.as_deref()) {
                ("signup", Some(pw)) => {
                    password::check_policy(pw, state.config.password_min_length)?;
                    Some(password::hash(pw, state.config.bcrypt_cost).await?)
                }
                ("signup", None) => {
                    return Err(AuthError::Validation(
                        "Password is required for signup links".into(),
                    ));
                }
                _ => None,
            };
            let data = crate::handlers::signup::metadata(body.data)?;
            let user = match existing {
                Some(user) => match hash {
                    Some(hash) => {
                        let mut active: user::ActiveModel = user.into();
                        active.encrypted_password = Set(Some(hash));
                        active.update(&state.db).await?
                    }
                    None => user,
                },
                None => create_user(&state, Some(&email), hash, data, false).await?,
            };
            let ty = if kind == "signup" {
                TokenType::Confirmation
            } else {
                TokenType::Invite
            };
            (user, ty, email.clone())
        }
        "magiclink" | "recovery" => {
            let user = existing.ok_or(AuthError::AdminUserNotFound)?;
            let ty = if kind == "magiclink" {
                TokenType::MagicLink
            } else {
                TokenType::Recovery
            };
            (user, ty, email.clone())
        }
        "email_change_current" | "email_change_new" => {
            let user = existing.ok_or(AuthError::AdminUserNotFound)?;
            let Some(new_email) = body
                .new_email
                .as_deref()
                .map(users::normalize_email)
                .filter(|e| users::valid_email(e))
            else {
                return Err(AuthError::Validation(
                    "new_email must be a valid email address".into(),
                ));
            };
            if users::find_by_email(&state.db, &new_email).await?.is_some() {
                return Err(AuthError::EmailExists);
            }
            let mut active: user::ActiveModel = user.into();
            active.email_change = Set(Some(new_email.clone()));
            let user = active.update(&state.db).await?;
            if kind == "email_change_new" {
                (user, TokenType::EmailChangeNew, new_email)
            } else {
                (user, TokenType::EmailChangeCurrent, email.clone())
            }
        }
        other => {
            return Err(AuthError::Validation(format!(
                "Invalid link type {other:?}: expected signup, invite, magiclink, recovery, email_change_current or email_change_new"
            )));
        }
    };
    let issued = crate::otp::issue(&state, &user, ty, &to, &redirect_to).await?;
    audit(
        &state,
        caller.user_id.as_deref(),
        "generate_link",
        state.client_ip(&req).as_deref(),
        json!({ "user_id": user.id, "type": kind }),
    )
    .await;
    let fresh = users::find_by_id(&state.db, &user.id)
        .await?
        .unwrap_or(user);
    let mut out = users::user_json(&state.db, &fresh).await?;
    if let Some(map) = out.as_object_mut() {
        map.insert("action_link".into(), json!(issued.link));
        map.insert("email_otp".into(), json!(issued.code));
        map.insert("hashed_token".into(), json!(issued.hash));
        map.insert("redirect_to".into(), json!(redirect_to));
        map.insert("verification_type".into(), json!(ty.verify_type()));
    }
    Ok(ok(&out))
}

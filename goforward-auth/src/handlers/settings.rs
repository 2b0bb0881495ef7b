//! `GET /settings`: what this server allows (from the `[auth]` config).

use actix_web::HttpResponse;
use goforward_core::Principal;
use serde_json::json;

use super::{State, ok};

pub(crate) async fn settings(_principal: Principal, state: State) -> HttpResponse {
    let c = &state.config;
    let mut external = json!({
        "anonymous_users": c.anonymous_users,
        "email": true,
        "phone": c.phone_enabled,
    });
    for name in state.oauth.keys() {
        external[name.as_str()] = json!(true);
    }
    ok(&json!({
        "external": external,
        "disable_signup": c.disable_signup,
        "mailer_autoconfirm": c.mailer_autoconfirm,
        "phone_autoconfirm": false,
        "sms_provider": if c.phone_enabled { "goforward" } else { "" },
        "saml_enabled": false,
    }))
}

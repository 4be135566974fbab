//! The OpenAPI document of the REST API, generated from the handlers' annotations and served at
//! `GET /api/openapi.json`.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    accounts, admin, broadcasting_auth, conversations, groups, messages, notifications, oidc, people, pusher_api,
    typing,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "chatbox", description = "Real-time chat and Pusher-protocol broadcast server: the REST API. \
        Errors are {\"error\": {\"code\", \"message\"}}. Authenticate with the session cookie from login, or a bearer token."),
    paths(
        accounts::register, accounts::login, accounts::logout, accounts::logout_everywhere, accounts::me,
        oidc::login, oidc::callback,
        messages::send_to_user, messages::user_history, messages::send_to_group, messages::group_history,
        messages::read_user, messages::read_group, messages::acknowledge,
        typing::typing,
        conversations::list,
        groups::create, groups::list, groups::show, groups::rename, groups::remove_group,
        groups::add_member, groups::remove_member,
        people::list, people::show, people::search, people::friends, people::add_friend, people::remove_friend, people::members,
        notifications::poll,
        broadcasting_auth::authorize,
        admin::presence, admin::stats,
        pusher_api::trigger, pusher_api::batch,
        super::healthz, super::client_config,
    ),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// `GET /api/openapi.json`.
pub async fn document() -> axum::Json<utoipa::openapi::OpenApi> {
    axum::Json(ApiDoc::openapi())
}

//! The OpenAPI document of the REST API, generated from the handlers' annotations and served at
//! `GET /api/openapi.json`.

use utoipa::{
    Modify, OpenApi,
    openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme},
};

use super::{
    accounts, admin, attachments, broadcasting_auth, channels_api, conversations, echo_api, groups, message_changes,
    messages, notifications, oidc, people, pictures, pusher_api, questions, typing,
};

#[derive(OpenApi)]
#[openapi(
    info(title = "chatbox", description = "Real-time chat and Pusher-protocol broadcast server: the REST API. \
        Errors are {\"error\": {\"code\", \"message\"}}. Authenticate with the session cookie from login, or a bearer token. \
        Live events on private-individual.message.{userId}: App\\Events\\IndividualMessage {message}, Typing, \
        MessagesRead {reader_id, up_to, user_id}, MessageUpdated {message}, MessageDeleted {message_id, user_id}; \
        on private-group.message.{userId}: GroupMessage {message}, AddedToGroup, RemovedFromGroup, GroupUpdated, \
        UserRegistered, Typing, MessagesRead {reader_id, up_to, group_id}, MessageUpdated {message}, \
        MessageDeleted {message_id, group_id}, Mentioned {from, pseudonym?, group, message_id}. \
        An anonymous question has sender: null and a pseudonym everywhere."),
    paths(
        accounts::register, accounts::login, accounts::logout, accounts::logout_everywhere, accounts::me,
        oidc::login, oidc::callback,
        messages::send_to_user, messages::user_history, messages::send_to_group, messages::group_history,
        messages::read_user, messages::read_group, messages::acknowledge,
        attachments::upload, attachments::download, attachments::thumbnail,
        pictures::set_avatar, pictures::clear_avatar, pictures::avatar, pictures::group_picture,
        message_changes::edit, message_changes::remove,
        typing::typing,
        conversations::list,
        groups::create, groups::list, groups::show, groups::rename, groups::remove_group,
        groups::add_member, groups::remove_member,
        questions::mute, questions::unmute, questions::list_muted,
        people::list, people::show, people::search, people::friends, people::add_friend, people::remove_friend, people::members,
        notifications::poll,
        broadcasting_auth::authorize,
        admin::presence, admin::stats,
        pusher_api::trigger, pusher_api::batch,
        channels_api::channels, channels_api::channel, channels_api::users, channels_api::terminate,
        echo_api::status, echo_api::channels, echo_api::channel, echo_api::users, echo_api::events,
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

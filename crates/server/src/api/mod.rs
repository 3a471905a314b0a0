//! The JSON API under `/api/v1`: one module per area; `router` mounts them all.

pub mod accounts;
pub mod bedside;
pub mod clinical;
pub mod devices;
pub mod discharge;
pub mod ledger;
pub mod library;
pub mod live;
pub mod outcomes;
pub mod record;
pub mod safety;
pub mod sessions;

use utoipa_axum::router::OpenApiRouter;

use crate::state::AppState;

/// Every area's routes, relative to `/api/v1`, with their OpenAPI operations: the document is
/// generated from the same list the router serves, so neither can miss a route.
pub(crate) fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(accounts::routes())
        .merge(library::routes())
        .merge(clinical::routes())
        .merge(sessions::routes())
        .merge(bedside::routes())
        .merge(discharge::routes())
        .merge(live::routes())
        .merge(record::routes())
        .merge(outcomes::routes())
        .merge(safety::routes())
        .merge(ledger::routes())
        .merge(devices::routes())
}

/// Operations anyone may call: signing in, and a patient answering a questionnaire link.
const PUBLIC_OPERATIONS: [&str; 3] = ["login", "open_link", "submit_link"];

/// Writes into the document the answers every operation can give because of what runs before
/// its handler, once, where each handler's list would repeat them seventy times: the
/// authentication (401, and the bearer token or session cookie it accepts), a bad path id or
/// query (400, from [`crate::extract::Path`] and [`crate::extract::Query`]) and a refused body (400, 413, 415, from
/// [`crate::extract::JsonBody`] and the body limit).
pub(crate) fn document_common_answers(document: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::path::ParameterIn;
    use utoipa::openapi::security::{
        ApiKey, ApiKeyValue, Http, HttpAuthScheme, SecurityRequirement, SecurityScheme,
    };
    use utoipa::openapi::{Content, Ref, RefOr, ResponseBuilder};

    let components = document.components.get_or_insert_with(Default::default);
    components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    components.add_security_scheme(
        "session_cookie",
        SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
            crate::auth::SESSION_COOKIE,
            "set by POST /api/v1/auth/login",
        ))),
    );
    let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                )
                .build(),
        )
    };
    for item in document.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let public = operation
                .operation_id
                .as_deref()
                .is_some_and(|id| PUBLIC_OPERATIONS.contains(&id));
            let answers = &mut operation.responses.responses;
            if public {
                operation.security = Some(Vec::new());
            } else {
                operation.security = Some(vec![
                    SecurityRequirement::new("bearer", Vec::<String>::new()),
                    SecurityRequirement::new("session_cookie", Vec::<String>::new()),
                ]);
                answers
                    .entry("401".to_string())
                    .or_insert_with(|| error("not signed in, or the session or token has ended"));
            }
            let has = |place: ParameterIn| {
                operation.parameters.iter().flatten().any(|p| match p {
                    RefOr::T(p) => p.parameter_in == place,
                    RefOr::Ref(_) => false,
                })
            };
            if has(ParameterIn::Path) {
                answers
                    .entry("400".to_string())
                    .or_insert_with(|| error("a path id that does not parse; the error names it"));
            }
            if has(ParameterIn::Query) {
                answers
                    .entry("400".to_string())
                    .or_insert_with(|| error("a query parameter that does not parse; the error names it"));
            }
            if operation.request_body.is_some() {
                answers
                    .entry("400".to_string())
                    .or_insert_with(|| error("a body that does not parse; the error says where"));
                answers
                    .entry("413".to_string())
                    .or_insert_with(|| error("the body is larger than the server accepts"));
                answers
                    .entry("415".to_string())
                    .or_insert_with(|| error("the body is not sent as application/json"));
            }
        }
    }
}

//! The OpenAPI 3.1 document of the JSON API, generated from the handlers' annotations and the
//! response types in [`super::schema`], served at `/api/openapi.json` and as a page at
//! `/api/docs` (rendered on the server: the CSP allows no third-party script, and the page
//! needs none).

use super::schema::Problem;
use crate::state::AppState;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Json, Response};
use axum_extra::extract::cookie::CookieJar;
use minijinja::context;
use std::sync::OnceLock;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Doc, Ref, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Twofold API",
        description = "Sign-in, account and verification API of Twofold. Sign-in and account endpoints use the session cookie set by `POST /api/v1/session`; the verification API (`/subjects/…`) takes an API key as a Bearer token. Every error is RFC 9457 `application/problem+json`.",
    ),
    components(schemas(Problem)),
    modifiers(&ApiKeyScheme, &ProblemResponses),
    tags(
        (name = "sign-in", description = "Sign-up, sign-in with the second step, password reset"),
        (name = "account", description = "The signed-in account"),
        (name = "verification", description = "The verification API for apps with their own sign-in"),
        (name = "forward-auth", description = "Reverse-proxy checks"),
    )
)]
struct ApiDoc;

struct ApiKeyScheme;

impl Modify for ApiKeyScheme {
    fn modify(&self, doc: &mut Doc) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// Every error response is problem+json; a request body that is not JSON (415) or not the
/// expected JSON (422), and an internal error (500), can happen on any operation that takes one.
struct ProblemResponses;

fn problem_response(description: &str) -> RefOr<utoipa::openapi::Response> {
    RefOr::T(
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                Content::new(Some(Ref::from_schema_name("Problem"))),
            )
            .build(),
    )
}

fn fix_operation(op: &mut Operation) {
    for (status, response) in op.responses.responses.iter_mut() {
        if let RefOr::T(r) = response
            && r.description.is_empty()
        {
            r.description = status
                .parse::<u16>()
                .ok()
                .and_then(|s| StatusCode::from_u16(s).ok())
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error")
                .to_owned();
        }
        if !status.starts_with(['4', '5']) {
            continue;
        }
        if let RefOr::T(r) = response
            && let Some(content) = r.content.shift_remove("application/json")
        {
            r.content.insert("application/problem+json".into(), content);
        }
    }
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.into())
            .or_insert_with(|| problem_response(description));
    };
    if op.request_body.is_some() {
        add(
            "415",
            "The body is not JSON (send `Content-Type: application/json`)",
        );
        add(
            "422",
            "The JSON lacks a field, has one of the wrong type, or has one the request does not take (`field` names it)",
        );
    }
    add("500", "Something went wrong on the server");
}

impl Modify for ProblemResponses {
    fn modify(&self, doc: &mut Doc) {
        for item in doc.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                fix_operation(op);
            }
        }
    }
}

/// The document, built once.
pub fn openapi() -> &'static Doc {
    static DOC: OnceLock<Doc> = OnceLock::new();
    DOC.get_or_init(|| {
        let (_, mut doc) = OpenApiRouter::<AppState>::with_openapi(ApiDoc::openapi())
            .nest("/api/v1", super::api())
            .split_for_parts();
        // Modifiers ran before the routes were added; run the one that needs them again.
        ProblemResponses.modify(&mut doc);
        doc
    })
}

pub async fn openapi_json() -> Response {
    Json(openapi()).into_response()
}

/// A readable list of every operation, with its parameters, body and answers.
pub async fn docs_page(State(state): State<AppState>, jar: CookieJar) -> Response {
    let doc = match serde_json::to_value(openapi()) {
        Ok(v) => v,
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize the OpenAPI document");
            return StatusCode::INTERNAL_SERVER_ERROR.into_response();
        }
    };
    let mut operations = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "delete", "patch"] {
                let Some(op) = item.get(method) else {
                    continue;
                };
                let responses: Vec<_> = op["responses"]
                    .as_object()
                    .map(|r| {
                        r.iter()
                            .map(|(status, resp)| {
                                let schema = resp["content"]
                                    .as_object()
                                    .and_then(|c| c.values().next())
                                    .and_then(|c| c["schema"]["$ref"].as_str())
                                    .map(|r| r.trim_start_matches("#/components/schemas/"));
                                context! { status, description => resp["description"].as_str(), schema }
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                let body = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .map(|r| r.trim_start_matches("#/components/schemas/").to_owned());
                operations.push(context! {
                    method => method.to_uppercase(),
                    path,
                    tag => op["tags"][0].as_str(),
                    summary => op["summary"].as_str(),
                    description => op["description"].as_str(),
                    api_key => op.get("security").is_some(),
                    body,
                    responses,
                });
            }
        }
    }
    let schemas: Vec<_> = doc["components"]["schemas"]
        .as_object()
        .map(|s| {
            s.iter()
                .map(|(name, schema)| {
                    let required: Vec<&str> = schema["required"]
                        .as_array()
                        .map(|r| r.iter().filter_map(|v| v.as_str()).collect())
                        .unwrap_or_default();
                    let fields: Vec<_> = schema["properties"]
                        .as_object()
                        .map(|p| {
                            p.iter()
                                .map(|(field, f)| {
                                    let kind = f["type"]
                                        .as_str()
                                        .map(str::to_owned)
                                        .or_else(|| f["type"].as_array().map(|t| {
                                            t.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(" or ")
                                        }))
                                        .or_else(|| f["$ref"].as_str().map(|r| r.trim_start_matches("#/components/schemas/").to_owned()))
                                        .unwrap_or_else(|| "object".into());
                                    context! { field, kind, required => required.contains(&field.as_str()), description => f["description"].as_str() }
                                })
                                .collect()
                        })
                        .unwrap_or_default();
                    context! { name, fields }
                })
                .collect()
        })
        .unwrap_or_default();
    crate::pages::render(
        &state,
        jar,
        None,
        StatusCode::OK,
        "api_docs.html",
        context! { title => doc["info"]["title"].as_str(), operations, schemas },
    )
}

//! The OpenAPI document: 3.1, every JSON endpoint in it, every error answer problem+json, and
//! what the server really sends matching what the document says (status codes documented,
//! required fields present, no undocumented fields).

use serde_json::{Value, json};
use twofold_testkit::{TestApp, TestDb, both_backends, spawn_app};

const PW: &str = "correct horse battery staple 42";

const OPERATIONS: &[(&str, &str)] = &[
    ("post", "/api/v1/signup"),
    ("post", "/api/v1/email-verification"),
    ("post", "/api/v1/session"),
    ("delete", "/api/v1/session"),
    ("get", "/api/v1/session/second-factor"),
    ("post", "/api/v1/session/second-factor"),
    ("post", "/api/v1/session/second-factor/code"),
    ("post", "/api/v1/session/device"),
    ("post", "/api/v1/session/device/code"),
    ("post", "/api/v1/session/step-up"),
    ("get", "/api/v1/session/permissions/{permission}"),
    ("get", "/api/v1/forward-auth"),
    ("post", "/api/v1/password-reset"),
    ("post", "/api/v1/password-reset/complete"),
    ("get", "/api/v1/account"),
    ("post", "/api/v1/account/password"),
    ("post", "/api/v1/account/email"),
    ("post", "/api/v1/account/email/confirm"),
    ("get", "/api/v1/account/sessions"),
    ("delete", "/api/v1/account/sessions/{id}"),
    ("get", "/api/v1/subjects/{subject}/factors"),
    ("post", "/api/v1/subjects/{subject}/factors"),
    ("delete", "/api/v1/subjects/{subject}/factors/{id}"),
    ("post", "/api/v1/subjects/{subject}/factors/{id}/confirm"),
    ("post", "/api/v1/subjects/{subject}/verify"),
    ("post", "/api/v1/subjects/{subject}/challenges"),
    ("get", "/api/v1/subjects/{subject}/challenges/{id}"),
    ("post", "/api/v1/subjects/{subject}/backup-codes"),
    ("post", "/api/v1/subjects/{subject}/webauthn/registrations"),
    (
        "post",
        "/api/v1/subjects/{subject}/webauthn/registrations/{id}/finish",
    ),
    ("post", "/api/v1/subjects/{subject}/webauthn/assertions"),
    (
        "post",
        "/api/v1/subjects/{subject}/webauthn/assertions/{id}/finish",
    ),
];

fn schema_name(r: &Value) -> Option<&str> {
    r["$ref"]
        .as_str()
        .map(|s| s.trim_start_matches("#/components/schemas/"))
}

/// The answer's body against the documented one for `status` of `method path`.
async fn conforms(doc: &Value, method: &str, path: &str, res: reqwest::Response) -> Value {
    let status = res.status().as_u16().to_string();
    let op = &doc["paths"][path][method];
    let documented = &op["responses"][&status];
    assert!(
        documented.is_object(),
        "{method} {path} answered {status}, which the document does not list"
    );
    let content_type = res
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    let Some(content) = documented["content"].as_object() else {
        return body;
    };
    let (media, spec) = content.iter().next().unwrap();
    assert!(
        content_type.starts_with(media.as_str()),
        "{method} {path} {status}: sent {content_type}, documented {media}"
    );
    let name = schema_name(&spec["schema"]).expect("a named schema");
    let schema = &doc["components"]["schemas"][name];
    let props = schema["properties"].as_object().unwrap();
    for required in schema["required"].as_array().into_iter().flatten() {
        let field = required.as_str().unwrap();
        assert!(
            body.get(field).is_some(),
            "{method} {path} {status}: {name}.{field} is required but missing in {body}"
        );
    }
    for key in body.as_object().unwrap().keys() {
        assert!(
            props.contains_key(key),
            "{method} {path} {status}: {key} is not in {name}"
        );
    }
    body
}

async fn document(db: TestDb) {
    let app: TestApp = spawn_app(db).await;
    let c = app.client();
    let doc: Value = c
        .get(app.at("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    assert_eq!(doc["info"]["title"], "Twofold API");
    let mut listed = 0;
    for (_, item) in doc["paths"].as_object().unwrap() {
        listed += item.as_object().unwrap().len();
    }
    assert_eq!(listed, OPERATIONS.len(), "operations in the document");
    for (method, path) in OPERATIONS {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} is not documented");
        for (status, response) in op["responses"].as_object().unwrap() {
            // nginx's auth_request reads only the status and Location of this 401.
            let bodiless = *path == "/api/v1/forward-auth" && status == "401";
            if (status.starts_with('4') || status.starts_with('5')) && !bodiless {
                let schema = &response["content"]["application/problem+json"]["schema"];
                assert_eq!(
                    schema_name(schema),
                    Some("Problem"),
                    "{method} {path} {status} is not problem+json"
                );
            }
        }
        assert!(
            op["responses"]["500"].is_object(),
            "{method} {path}: no 500"
        );
    }

    // What the server sends is what the document says.
    let email = "doc@example.com";
    let r = c
        .post(app.at("/api/v1/signup"))
        .body("not json")
        .send()
        .await
        .unwrap();
    conforms(&doc, "post", "/api/v1/signup", r).await;
    let r = c
        .post(app.at("/api/v1/signup"))
        .json(&json!({ "email": email }))
        .send()
        .await
        .unwrap();
    conforms(&doc, "post", "/api/v1/signup", r).await;
    app.verified_account(email, PW).await;
    let r = c
        .post(app.at("/api/v1/session"))
        .json(&json!({ "email": email, "password": "wrong password here" }))
        .send()
        .await
        .unwrap();
    let problem = conforms(&doc, "post", "/api/v1/session", r).await;
    assert_eq!(problem["type"], "urn:twofold:problem:invalid-credentials");
    let r = app.log_in(&c, email, PW).await;
    conforms(&doc, "post", "/api/v1/session", r).await;
    let r = c.get(app.at("/api/v1/account")).send().await.unwrap();
    conforms(&doc, "get", "/api/v1/account", r).await;
    let r = c
        .get(app.at("/api/v1/account/sessions"))
        .send()
        .await
        .unwrap();
    conforms(&doc, "get", "/api/v1/account/sessions", r).await;
    let r = c
        .post(app.at("/api/v1/subjects/u1/verify"))
        .json(&json!({ "code": "123456" }))
        .send()
        .await
        .unwrap();
    conforms(&doc, "post", "/api/v1/subjects/{subject}/verify", r).await;
    let (_, key) = app.core.create_api_key("default", "docs").await.unwrap();
    let api =
        |method: reqwest::Method, path: &str| c.request(method, app.at(path)).bearer_auth(&key);
    let r = api(reqwest::Method::POST, "/api/v1/subjects/u1/factors")
        .json(&json!({ "type": "totp", "label": "phone" }))
        .send()
        .await
        .unwrap();
    conforms(&doc, "post", "/api/v1/subjects/{subject}/factors", r).await;
    let r = api(reqwest::Method::POST, "/api/v1/subjects/u1/verify")
        .json(&json!({ "code": "000000" }))
        .send()
        .await
        .unwrap();
    let v = conforms(&doc, "post", "/api/v1/subjects/{subject}/verify", r).await;
    assert_eq!(v["valid"], false);
    let r = api(reqwest::Method::GET, "/api/v1/subjects/u1/factors")
        .send()
        .await
        .unwrap();
    conforms(&doc, "get", "/api/v1/subjects/{subject}/factors", r).await;

    // The page lists the operations.
    let page = c.get(app.at("/api/docs")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap().replace("&#x2f;", "/");
    assert!(
        html.contains("POST /api/v1/subjects/{subject}/verify"),
        "{html}"
    );
    assert!(html.contains("id=\"schema-Problem\""));
}
both_backends!(openapi_document, document);

/// Every request body refuses fields it does not take (422 problem+json naming the field, and
/// nothing done), and the document says so (`additionalProperties: false`); malformed JSON
/// stays a 400.
async fn unknown_fields(db: TestDb) {
    let app: TestApp = spawn_app(db).await;
    let c = app.client();
    let doc: Value = c
        .get(app.at("/api/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for (method, path) in OPERATIONS {
        let body = &doc["paths"][path][method]["requestBody"];
        let Some(name) = schema_name(&body["content"]["application/json"]["schema"]) else {
            continue;
        };
        let schema = &doc["components"]["schemas"][name];
        assert_eq!(schema["additionalProperties"], false, "{name}: {schema}");
    }

    let (_, key) = app.core.create_api_key("default", "docs").await.unwrap();
    let refused = |path: &'static str, body: Value, field: &'static str| {
        let req = c.post(app.at(path)).bearer_auth(&key).json(&body);
        let doc = &doc;
        async move {
            let r = req.send().await.unwrap();
            assert_eq!(r.status(), 422, "{path} {body}");
            let spec = path.replace("/u1/", "/{subject}/");
            let problem = conforms(doc, "post", &spec, r).await;
            assert_eq!(problem["type"], "urn:twofold:problem:invalid-body");
            assert_eq!(problem["field"], field, "{problem}");
            let detail = problem["detail"].as_str().unwrap();
            assert!(detail.contains(&format!("`{field}`")), "{detail}");
        }
    };
    refused(
        "/api/v1/subjects/u1/factors",
        json!({ "type": "totp", "digits": 8 }),
        "digits",
    )
    .await;
    let factors: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM factors")
        .fetch_one(app.store.pool())
        .await
        .unwrap();
    assert_eq!(factors, 0, "no factor was made");
    refused(
        "/api/v1/subjects/u1/verify",
        json!({ "code": "123456", "window": 10 }),
        "window",
    )
    .await;
    refused(
        "/api/v1/signup",
        json!({ "email": "x@example.com", "password": PW, "admin": true }),
        "admin",
    )
    .await;
    refused(
        "/api/v1/session",
        json!({ "email": "x@example.com", "password": PW, "remember_me": true }),
        "remember_me",
    )
    .await;
    refused(
        "/api/v1/password-reset",
        json!({ "email": "x@example.com", "lang": "de" }),
        "lang",
    )
    .await;

    let r = c
        .post(app.at("/api/v1/signup"))
        .header("content-type", "application/json")
        .body("{\"email\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let problem = conforms(&doc, "post", "/api/v1/signup", r).await;
    assert_eq!(problem["type"], "urn:twofold:problem:invalid-body");
}
both_backends!(unknown_fields_case, unknown_fields);

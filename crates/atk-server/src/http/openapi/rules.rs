//! The server's own input rules, written into the generated document so
//! that it says exactly what the server accepts: id patterns, name
//! lengths, catalog enums, limits, which confirmations and scopes each key
//! kind takes, and every error answer (one shared error schema). The
//! values come from the same definitions the server checks with (the
//! catalog, the id rules, the limits), so the two cannot drift apart;
//! Schemathesis checks the result against a live server in CI.

use atk_core::Catalog;
use atk_core::entitlement::EntitlementStatus;
use atk_core::key::KeyKind;
use serde_json::{Map, Value, json};

/// `ProjectId::parse`: a lower-case letter, then 2–62 of `[a-z0-9_]`.
const PROJECT_ID_PATTERN: &str = "^[a-z][a-z0-9_]{2,62}$";
/// `KeyId::parse`: `key_` and 22 letters or digits.
const KEY_ID_PATTERN: &str = "^key_[0-9A-Za-z]{22}$";
/// `DisplayName::parse`: no control character and something besides white
/// space; at most 100 characters (the server counts after trimming, so
/// this is never more than it accepts).
const NAME_PATTERN: &str = "^[^\\u0000-\\u001f\\u007f-\\u009f]*[^\\s\\u0000-\\u001f\\u007f-\\u009f][^\\u0000-\\u001f\\u007f-\\u009f]*$";
/// A key-list cursor as the server writes it: `<millis>.<key id>`; empty
/// means the first page, as does leaving it out.
const KEY_CURSOR_PATTERN: &str = "^((0|[1-9][0-9]{0,14})\\.key_[0-9A-Za-z]{22})?$";
/// An audit cursor: a positive position in plain digits (or empty).
const AUDIT_CURSOR_PATTERN: &str = "^([1-9][0-9]{0,17})?$";
/// IPv4 with an optional prefix length (an allowlist entry).
const IPV4_NETWORK_PATTERN: &str = "^((25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/(3[0-2]|[12]?[0-9])$";

/// One reusable answer per error status, all with the shared `ErrorBody`.
const ERROR_RESPONSES: &[(&str, &str, &str)] = &[
    (
        "400",
        "BadRequest",
        "invalid_request: a malformed id, an unknown field or a bad value",
    ),
    ("401", "Unauthorized", "unauthorized: no valid credential"),
    (
        "403",
        "Forbidden",
        "forbidden: the credential may not do this",
    ),
    (
        "404",
        "NotFound",
        "not_found: no such project or resource (another project's look the same)",
    ),
    (
        "405",
        "MethodNotAllowed",
        "invalid_request: this path does not take that method",
    ),
    (
        "408",
        "RequestTimeout",
        "request_timeout: the body did not arrive in time; the connection is closed",
    ),
    (
        "409",
        "Conflict",
        "conflict: the resource exists or has ended",
    ),
    (
        "413",
        "PayloadTooLarge",
        "payload_too_large: the body is over the size limit",
    ),
    (
        "422",
        "Unprocessable",
        "confirmation_required or scope_not_allowed",
    ),
    (
        "429",
        "TooManyRequests",
        "rate_limited: too many failed attempts from this address; see Retry-After",
    ),
    (
        "503",
        "Unavailable",
        "unavailable: the database cannot be reached; see Retry-After",
    ),
];

pub fn apply(document: &mut Value, help_routes: &[String]) {
    let catalog = Catalog::get();
    add_error_responses(document);
    name_enum_members(&mut document["components"]["schemas"]);
    let actions: Vec<Value> = catalog
        .products
        .iter()
        .flat_map(|product| &product.actions)
        .map(|action| json!(action.scope))
        .collect();
    let products: Vec<Value> = catalog
        .products
        .iter()
        .map(|product| json!(product.id))
        .collect();
    let schemas = &mut document["components"]["schemas"];
    set(
        schemas,
        "CreateProject",
        &["properties", "project_id"],
        json!({"type": "string", "pattern": PROJECT_ID_PATTERN, "example": "project_identity_demo"}),
    );
    set(
        schemas,
        "CreateProject",
        &["properties", "name"],
        name_schema(),
    );
    schemas["CreateKey"] = create_key_schema(catalog);
    schemas["PutEntitlement"] = put_entitlement_schema();
    for (schema, path) in [("AskRequest", "question"), ("GlobalAskRequest", "question")] {
        set(
            schemas,
            schema,
            &["properties", path],
            json!({"type": "string", "maxLength": 1000}),
        );
    }
    set(
        schemas,
        "AskRequest",
        &["properties", "route"],
        json!({
            "type": "string",
            "enum": help_routes,
            // Names for generated clients' enum members ("KEY_CREATE"),
            // since a route id is no identifier.
            "x-enum-varnames": help_routes
                .iter()
                .map(|route| route.rsplit('/').next().unwrap_or(route).replace('-', "_").to_uppercase())
                .collect::<Vec<_>>(),
        }),
    );
    set(
        schemas,
        "AskRequest",
        &["properties", "project_id"],
        json!({"type": ["string", "null"], "pattern": PROJECT_ID_PATTERN}),
    );
    set(
        schemas,
        "VerifyRequest",
        &["properties", "action"],
        json!({"enum": actions.iter().cloned().chain([Value::Null]).collect::<Vec<_>>(),
               "description": "A catalog action; left out, only the key itself is checked."}),
    );
    set(
        schemas,
        "VerifyRequest",
        &["properties", "client_ip"],
        json!({"anyOf": [{"type": "string", "format": "ipv4"}, {"type": "string", "format": "ipv6"}, {"type": "null"}],
               "description": "What the calling backend knows of its own caller's address."}),
    );
    set(
        schemas,
        "RevokeKey",
        &["properties", "reason"],
        json!({"type": ["string", "null"], "maxLength": 500,
               "pattern": "^[^\\u0000-\\u0009\\u000b-\\u001f\\u007f-\\u009f]*$",
               "description": "Why; kept with the key and in the audit log. Up to 500 characters, no control characters but line breaks."}),
    );
    set(
        schemas,
        "RotateKey",
        &["properties", "confirmations"],
        json!({"type": "array", "items": {"$ref": "#/components/schemas/Confirmation"},
               "contains": {"const": "secret_shown_once"},
               "description": "Must include `secret_shown_once`; rotating a Service Role Key also needs `service_role_danger` (422 otherwise, naming the missing ones)."}),
    );
    add_required(schemas, "RotateKey", "confirmations");
    for (path, item) in document["paths"]
        .as_object_mut()
        .into_iter()
        .flat_map(|paths| paths.iter_mut())
    {
        for (method, operation) in item.as_object_mut().into_iter().flatten() {
            refine_operation(path, method, operation, &products);
        }
    }
    // Rules between fields, which JSON Schema cannot state, in words.
    if let Some(usage) =
        document.pointer_mut("/paths/~1v1~1projects~1{project_id}~1keys~1{key_id}~1usage/get")
    {
        usage["description"] = json!(format!(
            "Verification counts of one key over `[from, to)`, by hour or by day. \
             `from` must be before `to`, both between 1970 and 9999, and the window \
             at most {} days by hour or {} days by day (400 otherwise, naming the field). \
             Defaults: the last 24 hours by hour, the last 30 days by day.",
            atk_core::usage::Granularity::Hour.max_window().num_days(),
            atk_core::usage::Granularity::Day.max_window().num_days(),
        ));
    }
    if let Some(rotate) =
        document.pointer_mut("/paths/~1v1~1projects~1{project_id}~1keys~1{key_id}~1rotate/post")
    {
        rotate["description"] = json!(
            "A new secret (shown once) for the same name, kind, environment, scopes and \
             expiration choice; the old key ends after the grace. Rotating a Service Role \
             Key also needs the `service_role_danger` confirmation: which confirmations \
             apply depends on the stored key's kind, so a missing one is a 422 naming it."
        );
    }
    // Revoking takes an optional body: none at all is fine.
    if let Some(body) = document
        .pointer_mut("/paths/~1v1~1projects~1{project_id}~1keys~1{key_id}~1revoke/post/requestBody")
    {
        body["required"] = json!(false);
    }
}

/// Points every documented error at the shared response, and adds the
/// answers any operation can give (405, 408 for a body, 429, 503).
fn add_error_responses(document: &mut Value) {
    let components = document["components"]
        .as_object_mut()
        .expect("the document has components");
    let responses = components
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    for (_, name, description) in ERROR_RESPONSES {
        responses.insert(
            (*name).to_owned(),
            json!({
                "description": description,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
            }),
        );
    }
}

fn error_ref(status: &str) -> Value {
    let name = ERROR_RESPONSES
        .iter()
        .find(|(code, _, _)| *code == status)
        .map_or("BadRequest", |(_, name, _)| name);
    json!({"$ref": format!("#/components/responses/{name}")})
}

fn refine_operation(path: &str, method: &str, operation: &mut Value, products: &[Value]) {
    let has_body = operation.get("requestBody").is_some();
    if operation.get("description").is_none()
        && let Some(summary) = operation.get("summary").cloned()
    {
        operation["description"] = summary;
    }
    for parameter in operation
        .get_mut("parameters")
        .and_then(Value::as_array_mut)
        .into_iter()
        .flatten()
    {
        let name = parameter["name"].as_str().unwrap_or_default().to_owned();
        let schema = match name.as_str() {
            "project_id" => json!({"type": "string", "pattern": PROJECT_ID_PATTERN}),
            "key_id" => json!({"type": "string", "pattern": KEY_ID_PATTERN}),
            "product" => json!({"type": "string", "enum": products}),
            "limit" => json!({"type": "integer", "minimum": 1, "maximum": 200}),
            "expiring_within_days" => json!({"type": "integer", "minimum": 0, "maximum": 3650}),
            "cursor" if path.ends_with("/audit") => {
                json!({"type": "string", "pattern": AUDIT_CURSOR_PATTERN})
            }
            "cursor" => json!({"type": "string", "pattern": KEY_CURSOR_PATTERN}),
            _ => continue,
        };
        parameter["schema"] = schema;
    }
    let responses = operation["responses"]
        .as_object_mut()
        .expect("every operation has responses");
    for (status, response) in responses.iter_mut() {
        if status.starts_with('4') || status.starts_with('5') {
            // readyz's 503 is its own `Health` body, not an error.
            let is_error = response
                .pointer("/content/application~1json/schema")
                .map(Value::to_string)
                .is_some_and(|schema| {
                    schema.contains("ErrorDetail") || schema.contains("ErrorBody")
                });
            if is_error {
                *response = error_ref(status);
            }
        }
    }
    let mut always = vec!["405", "429", "503"];
    if has_body {
        always.extend(["400", "408", "413"]);
    }
    if method == "get" && responses.contains_key("400") {
        always.push("400");
    }
    for status in always {
        responses
            .entry(status.to_owned())
            .or_insert_with(|| error_ref(status));
    }
}

/// Enum values such as `7_days` are no identifiers; generated clients
/// then number their members (`VALUE_0`). `x-enum-varnames` names them
/// instead, the number moved to the end: `DAYS_7`, `HOUR_1`.
fn name_enum_members(schemas: &mut Value) {
    for schema in schemas
        .as_object_mut()
        .into_iter()
        .flat_map(|schemas| schemas.values_mut())
    {
        let Some(values) = schema.get("enum").and_then(Value::as_array) else {
            continue;
        };
        let values: Vec<&str> = values.iter().filter_map(Value::as_str).collect();
        if values
            .iter()
            .all(|value| value.starts_with(char::is_alphabetic))
        {
            continue;
        }
        let names: Vec<String> = values
            .iter()
            .map(|value| match value.split_once('_') {
                Some((number, rest)) if number.chars().all(|c| c.is_ascii_digit()) => {
                    format!("{rest}_{number}").to_uppercase()
                }
                _ => value.to_uppercase(),
            })
            .collect();
        schema["x-enum-varnames"] = json!(names);
    }
}

fn name_schema() -> Value {
    json!({"type": "string", "minLength": 1, "maxLength": 100, "pattern": NAME_PATTERN})
}

fn set(schemas: &mut Value, schema: &str, path: &[&str], value: Value) {
    let mut at = &mut schemas[schema];
    for part in path {
        at = &mut at[*part];
    }
    *at = value;
}

fn add_required(schemas: &mut Value, schema: &str, field: &str) {
    let required = schemas[schema]["required"]
        .as_array_mut()
        .expect("the schema lists required fields");
    if !required.iter().any(|name| name == field) {
        required.push(json!(field));
    }
}

/// One variant per key kind: the scopes it may carry, the confirmations it
/// needs and whether it takes an IP allowlist.
fn create_key_schema(catalog: &Catalog) -> Value {
    let variants: Vec<Value> = KeyKind::ALL
        .iter()
        .map(|kind| {
            let info = catalog.kind(*kind);
            let allowed: Vec<&str> = catalog
                .products
                .iter()
                .flat_map(|product| &product.actions)
                .filter(|action| catalog.kind_allows(*kind, &action.scope))
                .map(|action| action.scope.as_str())
                .collect();
            let confirmations: Vec<Value> = catalog
                .required_confirmations(*kind)
                .iter()
                .map(|confirmation| json!({"contains": {"const": confirmation}}))
                .collect();
            let has_defaults = !catalog.default_scopes(*kind).is_empty();
            let scopes = json!({
                "type": if has_defaults { json!(["array", "null"]) } else { json!("array") },
                "items": {"type": "string", "enum": allowed},
                "minItems": 1,
                "description": if has_defaults {
                    "Catalog actions this kind may carry; left out or null, the kind's defaults."
                } else {
                    "Catalog actions this kind may carry; at least one."
                },
            });
            let allowed_ips = if info.may_have_ip_allowlist {
                json!({
                    "type": ["array", "null"],
                    "maxItems": 50,
                    "items": {"anyOf": [
                        {"type": "string", "format": "ipv4"},
                        {"type": "string", "format": "ipv6"},
                        {"type": "string", "pattern": IPV4_NETWORK_PATTERN},
                    ]},
                    "description": "The networks (CIDR, or single addresses) the key may be used from; verify answers FORBIDDEN_IP outside them. Kept on rotation.",
                })
            } else {
                json!({"type": ["array", "null"], "maxItems": 0, "items": {"type": "string"},
                       "description": "Only Backend Secret and Service Role keys take an allowlist."})
            };
            let kind_schema = if *kind == KeyKind::default() {
                json!({"anyOf": [{"type": "string", "const": kind}, {"type": "null"}],
                       "description": "Left out or null: this kind."})
            } else {
                json!({"type": "string", "const": kind})
            };
            let mut required = vec!["name", "confirmations"];
            if *kind != KeyKind::default() {
                required.push("kind");
            }
            if !has_defaults {
                required.push("scopes");
            }
            json!({
                "title": info.name,
                "type": "object",
                "additionalProperties": false,
                "required": required,
                "properties": {
                    "name": name_schema(),
                    "kind": kind_schema,
                    "environment": {"oneOf": [{"$ref": "#/components/schemas/Environment"}, {"type": "null"}], "description": "Default `production`."},
                    "expiration": {"oneOf": [{"$ref": "#/components/schemas/Expiration"}, {"type": "null"}], "description": "Default `90_days`."},
                    "scopes": scopes,
                    "confirmations": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Confirmation"},
                        "allOf": confirmations,
                        "description": "Every confirmation this kind needs (see `GET /v1/catalog`); a missing one is a 422 naming it.",
                    },
                    "allowed_ips": allowed_ips,
                    "rate_limit": {"oneOf": [{"$ref": "#/components/schemas/RateLimit"}, {"type": "null"}],
                                   "description": "The key's own limit, per node: verify answers RATE_LIMITED past it."},
                },
            })
        })
        .collect();
    json!({
        "description": "A new key. Each kind takes its own scopes and confirmations (one variant per kind).",
        "oneOf": variants,
    })
}

/// `trial_ends_at` goes only with `trial`.
fn put_entitlement_schema() -> Value {
    let others: Vec<&str> = [
        EntitlementStatus::Enabled,
        EntitlementStatus::UpgradeRequired,
        EntitlementStatus::Disabled,
    ]
    .iter()
    .map(|status| status.as_str())
    .collect();
    json!({
        "description": "The entitlement to put in force. `trial_ends_at` only with `trial`: from that instant the trial blocks.",
        "oneOf": [
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "const": EntitlementStatus::Trial.as_str()},
                    "trial_ends_at": {"type": ["string", "null"], "format": "date-time"},
                },
            },
            {
                "type": "object",
                "additionalProperties": false,
                "required": ["status"],
                "properties": {
                    "status": {"type": "string", "enum": others},
                    "trial_ends_at": {"type": "null"},
                },
            },
        ],
    })
}

/// Links from a created project and a created key to the operations that
/// take their ids, for clients and for Schemathesis' stateful phase.
pub fn add_links(document: &mut Value) {
    let key_links = links(
        &[
            ("GetKey", "get_key"),
            ("RotateKey", "rotate_key"),
            ("RevokeKey", "revoke_key"),
            ("ExpireKey", "expire_key"),
            ("KeyUsage", "key_usage"),
        ],
        json!({"project_id": "$request.path.project_id", "key_id": "$response.body#/key/id"}),
    );
    let project_links = links(
        &[
            ("GetProject", "get_project"),
            ("ListKeys", "list_keys"),
            ("CreateKey", "create_key"),
            ("ListEntitlements", "list_entitlements"),
            ("ListAudit", "list_audit"),
        ],
        json!({"project_id": "$response.body#/project_id"}),
    );
    for (created, links) in [
        ("/paths/~1v1~1projects~1{project_id}~1keys/post", &key_links),
        (
            "/paths/~1v1~1projects~1{project_id}~1keys~1{key_id}~1rotate/post",
            &key_links,
        ),
        ("/paths/~1v1~1projects/post", &project_links),
    ] {
        // `pointer_mut`, not indexing: a missing path must not be created.
        if let Some(response) = document
            .pointer_mut(&format!("{created}/responses/201"))
            .and_then(Value::as_object_mut)
        {
            response.insert("links".into(), links.clone());
        }
    }
}

/// One link per `(name, operation id)`, each passing `parameters`.
fn links(targets: &[(&str, &str)], parameters: Value) -> Value {
    let links: Map<String, Value> = targets
        .iter()
        .map(|(name, operation)| {
            (
                (*name).to_owned(),
                json!({"operationId": operation, "parameters": parameters}),
            )
        })
        .collect();
    Value::Object(links)
}

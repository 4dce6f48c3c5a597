//! The OpenAPI 3.0 document, generated from the contract's descriptors and the HTTP
//! route table rather than written by hand or derived with utoipa: utoipa derives
//! schemas from Rust types, and prost's types (enums as i32, 64-bit integers as
//! numbers) do not match the canonical JSON the server speaks, which the
//! descriptors describe exactly.

use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::DescriptorProto;
use serde_json::{json, Map, Value};

use crate::descriptors::Descriptors;
use crate::http::Route;

fn schema_name(full: &str) -> String {
    full.trim_start_matches('.')
        .trim_start_matches("rampart.v1.")
        .replace('.', "_")
}

fn field_schema(d: &Descriptors, f: &prost_types::FieldDescriptorProto) -> Value {
    let type_name = f.type_name().trim_start_matches('.');
    let one = match f.r#type() {
        Type::String => json!({"type": "string"}),
        Type::Bytes => json!({"type": "string", "format": "byte"}),
        Type::Bool => json!({"type": "boolean"}),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            json!({"type": "integer", "format": "int32"})
        }
        Type::Uint32 | Type::Fixed32 => {
            json!({"type": "integer", "format": "int32", "minimum": 0, "maximum": 4294967295u64})
        }
        // The canonical mapping writes 64-bit integers as decimal strings.
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
            json!({"type": "string", "format": "int64", "pattern": "^-?[0-9]{1,18}$"})
        }
        Type::Uint64 | Type::Fixed64 => {
            json!({"type": "string", "format": "uint64", "pattern": "^[0-9]{1,19}$"})
        }
        Type::Double | Type::Float => json!({"type": "number"}),
        Type::Enum => {
            let values: Vec<&str> = d
                .enums
                .get(type_name)
                .map(|e| e.value.iter().map(|v| v.name()).collect())
                .unwrap_or_default();
            json!({"type": "string", "enum": values})
        }
        Type::Message | Type::Group => match type_name {
            "google.protobuf.Struct" => json!({"type": "object", "additionalProperties": true}),
            "google.protobuf.Value" => json!({}),
            _ => json!({"$ref": format!("#/components/schemas/{}", schema_name(type_name))}),
        },
    };
    if f.label() == Label::Repeated {
        json!({"type": "array", "items": one})
    } else {
        one
    }
}

fn message_schema(d: &Descriptors, full: &str, m: &DescriptorProto, skip: &[String]) -> Value {
    let mut props = Map::new();
    for f in &m.field {
        if skip.iter().any(|s| s == f.name() || s == f.json_name()) {
            continue;
        }
        let mut s = field_schema(d, f);
        if let (Some(doc), Some(o)) = (
            d.docs.get(&format!("{full}.{}", f.name())),
            s.as_object_mut(),
        ) {
            if !o.contains_key("$ref") {
                o.insert("description".into(), Value::String(doc.clone()));
            }
        }
        props.insert(f.json_name().to_string(), s);
    }
    let mut o = json!({"type": "object", "properties": props, "additionalProperties": false});
    if let Some(doc) = d.docs.get(full) {
        o["description"] = Value::String(doc.clone());
    }
    o
}

fn path_params(template: &str) -> Vec<String> {
    template
        .split('/')
        .filter_map(|seg| {
            seg.strip_prefix('{')?
                .split_once('}')
                .map(|(n, _)| n.to_string())
        })
        .collect()
}

/// The query parameters of a GET route: the input's scalar fields, and one level of
/// a nested message's fields as `outer.inner`.
fn query_params(d: &Descriptors, input: &str, skip: &[String], prefix: &str, out: &mut Vec<Value>) {
    let Some(m) = d.messages.get(input) else {
        return;
    };
    for f in &m.field {
        if skip.iter().any(|s| s == f.name()) {
            continue;
        }
        let name = format!("{prefix}{}", f.json_name());
        if f.r#type() == Type::Message {
            if prefix.is_empty() {
                let nested = f.type_name().trim_start_matches('.').to_string();
                query_params(d, &nested, &[], &format!("{name}."), out);
            }
            continue;
        }
        let mut p =
            json!({"name": name, "in": "query", "required": false, "schema": field_schema(d, f)});
        if f.label() == Label::Repeated {
            p["style"] = json!("form");
            p["explode"] = json!(true);
        }
        if let Some(doc) = d.docs.get(&format!("{input}.{}", f.name())) {
            p["description"] = Value::String(doc.clone());
        }
        out.push(p);
    }
}

fn error_response(description: &str) -> Value {
    json!({"description": description, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}})
}

/// The whole document for `routes`.
pub fn document(routes: &[Route]) -> Value {
    let d = Descriptors::get();
    let mut paths = Map::new();
    let mut schemas = Map::new();
    for (name, m) in &d.messages {
        if name.starts_with("rampart.v1.") {
            schemas.insert(schema_name(name), message_schema(d, name, m, &[]));
        }
    }
    schemas.insert(
        "Error".into(),
        json!({"type": "object", "properties": {
            "code": {"type": "string", "description": "The gRPC status code name (INVALID_ARGUMENT, UNAUTHENTICATED, ...)"},
            "message": {"type": "string"},
            "status": {"type": "integer"}
        }, "required": ["code", "message", "status"]}),
    );
    for r in routes {
        let key = format!("{}.{}", r.service, r.rpc);
        let Some((input, output, streaming)) = d.rpcs.get(&key) else {
            continue;
        };
        let params = path_params(r.path);
        let mut parameters: Vec<Value> = params
            .iter()
            .map(|p| json!({"name": p, "in": "path", "required": true, "schema": {"type": "string", "minLength": 1}}))
            .collect();
        let mut op = json!({
            "operationId": r.rpc,
            "tags": [r.service],
            "security": [{"bearer": []}],
        });
        if let Some(doc) = d.docs.get(input) {
            op["description"] = Value::String(doc.clone());
        }
        if r.method == axum::http::Method::GET {
            query_params(d, input, &params, "", &mut parameters);
        } else if let Some(m) = d.messages.get(input) {
            op["requestBody"] = json!({
                "required": false,
                "content": {"application/json": {"schema": message_schema(d, input, m, &params)}}
            });
        }
        op["parameters"] = Value::Array(parameters);
        let ok = if let Some(t) = r.handler.file_type() {
            json!({"description": format!("The file itself ({t}), not JSON; over gRPC the bytes are {}.data", schema_name(output)),
                   "content": {t: {"schema": {"type": "string", "format": "binary"}}}})
        } else if *streaming {
            json!({"description": format!("Server-sent events, one {} (canonical JSON) per `data:` line", schema_name(output)),
                   "content": {"text/event-stream": {"schema": {"type": "string"}}}})
        } else {
            json!({"description": "OK", "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{}", schema_name(output))}}}})
        };
        let mut responses = json!({
            "200": ok,
            "400": error_response("The request does not fit the contract"),
            "401": error_response("No valid bearer token"),
            "403": error_response("The token's role may not do this"),
            "404": error_response("Not found"),
            "413": error_response("The body is larger than the limit"),
        });
        if r.unimplemented {
            responses["501"] =
                error_response("Not implemented yet: the message names the missing part");
            op["x-rampart-unimplemented"] = Value::Bool(true);
        }
        op["responses"] = responses;
        let method = r.method.as_str().to_lowercase();
        // The OpenAPI path template has no `:verb` syntax of its own; it is literal text.
        let entry = paths
            .entry(r.path.to_string())
            .or_insert_with(|| Value::Object(Map::new()));
        entry[method] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "Rampart API",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Rampart's API over HTTP/JSON (the canonical proto3 JSON mapping of the rampart.v1 contract; the same services over gRPC on the same port). Every call needs `Authorization: Bearer <token>`.",
        },
        "servers": [{"url": "/"}],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    })
}

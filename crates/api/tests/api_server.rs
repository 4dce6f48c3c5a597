//! The API served for real (TLS listener, SQLite store, tokens): the same answers over
//! HTTP/JSON and gRPC, 401 and 403, audited writes, clear errors for garbage and
//! oversized input, live alerts on gRPC streams and server-sent events.

mod support;

use std::time::Duration;

use futures_util::StreamExt;
use rampart_event::Priority;
use rampart_proto::v1 as pb;
use rampart_proto::v1::alert_service_client::AlertServiceClient;
use rampart_proto::v1::response_service_client::ResponseServiceClient;
use support::{alert, Server, SEC, T0};

/// One critical alert, `a1` on node-a, for the tests that act on an alert.
fn ingest_shadow_alert(s: &Server) {
    s.ingest(
        "node-a",
        &[alert(
            "a1",
            T0,
            "Read shadow",
            Priority::Critical,
            Some("c1"),
        )],
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_is_401_without_token_403_for_a_viewer_and_writes_are_audited() {
    let s = Server::start().await;
    ingest_shadow_alert(&s);

    let anon = s.client(None);
    let r = anon.request("GET", "/v1/alerts", None).await.unwrap();
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["code"], "UNAUTHENTICATED");
    let bad = s.client(Some("rmp_not_a_token"));
    assert_eq!(
        bad.request("GET", "/v1/alerts", None).await.unwrap().status,
        401
    );

    let viewer = s.client(Some(&s.viewer));
    let r = viewer.request("GET", "/v1/alerts", None).await.unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["alerts"][0]["id"], "a1");
    let r = viewer
        .request("POST", "/v1/alerts/a1:acknowledge", None)
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["code"], "PERMISSION_DENIED");
    let ask = serde_json::json!({"action": "RESPONSE_ACTION_KILL_PROCESS", "containerId": "c1", "pid": 42});
    let r = viewer
        .request("POST", "/v1/responses", Some(ask.to_string().into_bytes()))
        .await
        .unwrap();
    assert_eq!(r.status, 403, "{}", r.text());

    // gRPC: the same core, the same answers.
    let mut alerts = AlertServiceClient::with_origin(anon.grpc_channel(), anon.origin());
    let e = alerts
        .list_alerts(anon.grpc_request(pb::ListAlertsRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e}");
    let mut responses = ResponseServiceClient::with_origin(viewer.grpc_channel(), viewer.origin());
    let e = responses
        .request_action(viewer.grpc_request(pb::RequestActionRequest {
            action: pb::ResponseAction::StopContainer as i32,
            container_id: "c1".into(),
            ..Default::default()
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e}");

    // An analyst triages over gRPC and over HTTP; both are audited.
    let analyst = s.client(Some(&s.analyst));
    let mut alerts = AlertServiceClient::with_origin(analyst.grpc_channel(), analyst.origin());
    let a = alerts
        .acknowledge_alert(analyst.grpc_request(pb::AcknowledgeAlertRequest { id: "a1".into() }))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(a.status, pb::AlertStatus::Acknowledged as i32);
    let r = analyst
        .request(
            "POST",
            "/v1/alerts/a1:comment",
            Some(br#"{"text": "looked at it"}"#.to_vec()),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["comments"][0]["author"], "ana");
    assert_eq!(r.json()["status"], "ALERT_STATUS_ACKNOWLEDGED");
    let r = analyst
        .request("POST", "/v1/alerts/nope:resolve", None)
        .await
        .unwrap();
    assert_eq!(r.status, 404, "{}", r.text());

    let audit = viewer
        .request("GET", "/v1/audit", None)
        .await
        .unwrap()
        .json();
    let seen: Vec<(String, String)> = audit["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["actor"].as_str().unwrap().to_string(),
                r["action"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    for want in [
        ("vic", "alert.acknowledge.denied"),
        ("vic", "response.response_action_kill_process.denied"),
        ("vic", "response.response_action_stop_container.denied"),
        ("ana", "alert.acknowledge"),
        ("ana", "alert.comment"),
    ] {
        assert!(
            seen.iter().any(|(a, b)| a == want.0 && b == want.1),
            "{want:?} not audited: {seen:?}"
        );
    }
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filters_and_pages_over_http_match_grpc() {
    let s = Server::start().await;
    let mut batch = Vec::new();
    for i in 0..30u64 {
        let p = [Priority::Critical, Priority::Warning, Priority::Notice][(i % 3) as usize];
        batch.push(alert(
            &format!("a{i:02}"),
            T0 + i * SEC,
            &format!("rule-{}", i % 3),
            p,
            Some("c1"),
        ));
    }
    s.ingest("node-a", &batch);
    let c = s.client(Some(&s.viewer));
    let r = c
        .request(
            "GET",
            &format!(
                "/v1/alerts?severity=SEVERITY_CRITICAL&sinceNs={}&limit=4",
                T0 + 10 * SEC
            ),
            None,
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    let ids: Vec<&str> = j["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["a27", "a24", "a21", "a18"]);
    for a in j["alerts"].as_array().unwrap() {
        assert_eq!(a["severity"], "SEVERITY_CRITICAL");
        assert_eq!(a["container"]["id"], "c1");
    }
    let token = j["nextPageToken"].as_str().unwrap();
    let r = c
        .request(
            "GET",
            &format!(
                "/v1/alerts?severity=SEVERITY_CRITICAL&sinceNs={}&limit=4&pageToken={token}",
                T0 + 10 * SEC
            ),
            None,
        )
        .await
        .unwrap();
    let ids: Vec<String> = r.json()["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids, ["a15", "a12"]);

    let mut g = AlertServiceClient::with_origin(c.grpc_channel(), c.origin());
    let page = g
        .list_alerts(c.grpc_request(pb::ListAlertsRequest {
            severity: pb::Severity::Critical as i32,
            since_ns: T0 + 10 * SEC,
            limit: 4,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let grpc_ids: Vec<&str> = page.alerts.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(grpc_ids, ["a27", "a24", "a21", "a18"]);
    assert_eq!(page.next_page_token, token);

    let r = c
        .request("GET", "/v1/alerts?rule=rule-1&limit=100", None)
        .await
        .unwrap();
    assert_eq!(r.json()["alerts"].as_array().unwrap().len(), 10);
    let r = c
        .request("GET", "/v1/containers?includeRemoved=true", None)
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["containers"][0]["id"], "c1");
    let r = c.request("GET", "/v1/nodes", None).await.unwrap();
    assert_eq!(r.json()["nodes"][0]["name"], "node-a");
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_input_get_clear_4xx_errors() {
    let s = Server::start().await;
    s.ingest("node-a", &[alert("a1", T0, "r", Priority::Critical, None)]);
    let c = s.client(Some(&s.analyst));
    let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
        (
            "POST",
            "/v1/alerts/a1:comment",
            b"{not json".to_vec(),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "/v1/alerts/a1:comment",
            b"[1,2]".to_vec(),
            400,
            "must be a JSON object",
        ),
        (
            "POST",
            "/v1/alerts/a1:comment",
            br#"{"text": 5}"#.to_vec(),
            400,
            "request:",
        ),
        (
            "POST",
            "/v1/alerts/a1:comment",
            br#"{"txt": "x"}"#.to_vec(),
            400,
            "unknown field",
        ),
        (
            "POST",
            "/v1/alerts/a1:comment",
            vec![b' '; 2 << 20],
            413,
            "larger than 1048576 bytes",
        ),
        ("GET", "/v1/alerts?severity=SEVERE", vec![], 400, "severity"),
        (
            "GET",
            "/v1/alerts?bogus=1",
            vec![],
            400,
            "unknown query parameter",
        ),
        ("GET", "/v1/alerts?limit=-1", vec![], 400, "limit"),
        ("GET", "/v1/alerts?pageToken=zzz", vec![], 400, "page_token"),
        ("DELETE", "/v1/alerts", vec![], 405, "takes GET"),
        ("GET", "/v2/nothing", vec![], 404, "no route"),
    ];
    for (method, path, body, status, needle) in cases {
        let body = (!body.is_empty()).then_some(body);
        let r = c.request(method, path, body).await.unwrap();
        assert_eq!(r.status, status, "{method} {path}: {}", r.text());
        assert!(
            r.content_type.starts_with("application/json"),
            "{method} {path}: {}",
            r.content_type
        );
        let j = r.json();
        assert!(
            j["message"].as_str().unwrap_or_default().contains(needle),
            "{method} {path}: {j}"
        );
    }

    // gRPC: a message over the limit is refused by the decoder, with the sizes named.
    let mut g = AlertServiceClient::with_origin(c.grpc_channel(), c.origin());
    let e = g
        .comment_alert(c.grpc_request(pb::CommentAlertRequest {
            id: "a1".into(),
            text: "x".repeat(2 << 20),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::OutOfRange, "{e}");
    assert!(e.message().contains("message length too large"), "{e}");
    // A comment over the core's own bound is INVALID_ARGUMENT.
    let e = g
        .comment_alert(c.grpc_request(pb::CommentAlertRequest {
            id: "a1".into(),
            text: "x".repeat(20_000),
        }))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument, "{e}");

    // gRPC garbage: a frame whose bytes are no protobuf message.
    let garbage: &[u8] = &[0, 0, 0, 0, 6, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    let req = hyper::Request::builder()
        .method("POST")
        .uri(format!("{}/rampart.v1.AlertService/GetAlert", c.base()))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .header("authorization", format!("Bearer {}", s.analyst))
        .body(tonic::body::Body::new(http_body_util::Full::new(
            bytes::Bytes::from_static(garbage),
        )))
        .unwrap();
    let resp = c.grpc_channel().request(req).await.unwrap();
    let status = tonic::Status::from_header_map(resp.headers()).or_else(|| None);
    let status = match status {
        Some(s) => s,
        None => {
            use http_body_util::BodyExt;
            let collected = resp.into_body().collect().await.unwrap();
            tonic::Status::from_header_map(collected.trailers().unwrap()).unwrap()
        }
    };
    assert_ne!(status.code(), tonic::Code::Ok);
    assert!(status.message().contains("decode"), "{status:?}");
    // The server is still there.
    assert_eq!(
        c.request("GET", "/v1/alerts", None).await.unwrap().status,
        200
    );
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stored_alert_reaches_grpc_streams_and_server_sent_events_at_once() {
    let s = Server::start().await;
    let c = s.client(Some(&s.viewer));
    let mut g = AlertServiceClient::with_origin(c.grpc_channel(), c.origin());
    let mut grpc_stream = g
        .stream_alerts(c.grpc_request(pb::StreamAlertsRequest {
            severity: pb::Severity::High as i32,
            ..Default::default()
        }))
        .await
        .unwrap()
        .into_inner();
    let sse = c
        .sse("/v1/alerts:stream?severity=SEVERITY_HIGH")
        .await
        .unwrap();
    tokio::pin!(sse);
    // Subscriptions are live once the responses' headers are back.
    let now = rampart_event::wall_ns();
    let t = std::time::Instant::now();
    s.ingest(
        "node-a",
        &[
            alert("low", now, "quiet", Priority::Notice, None),
            alert("hot", now, "loud", Priority::Critical, Some("c9")),
        ],
    );
    let a = tokio::time::timeout(Duration::from_secs(1), grpc_stream.next())
        .await
        .expect("gRPC stream within 1 s")
        .unwrap()
        .unwrap();
    assert_eq!((a.id.as_str(), a.node.as_str()), ("hot", "node-a"));
    let line = tokio::time::timeout(Duration::from_secs(1), sse.next())
        .await
        .expect("server-sent event within 1 s")
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(j["id"], "hot", "{j}");
    assert_eq!(j["container"]["id"], "c9");
    eprintln!("store -> gRPC and SSE: {:?}", t.elapsed());
    // A redelivered batch is not announced again.
    s.ingest(
        "node-a",
        &[alert("hot", now, "loud", Priority::Critical, Some("c9"))],
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(300), grpc_stream.next())
            .await
            .is_err()
    );
    s.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_covers_every_route_and_unimplemented_parts_say_so() {
    let s = Server::start().await;
    let c = s.client(Some(&s.viewer));
    let doc = c
        .request("GET", "/openapi.json", None)
        .await
        .unwrap()
        .json();
    assert_eq!(doc["openapi"], "3.0.3");
    for r in rampart_api::http::routes() {
        let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
        assert_eq!(op["operationId"], r.rpc, "{} {}", r.method, r.path);
    }
    let alert = &doc["components"]["schemas"]["Alert"]["properties"];
    assert_eq!(alert["tsNs"]["type"], "string");
    assert_eq!(alert["severity"]["enum"][3], "SEVERITY_HIGH");
    let r = c.request("GET", "/v1/network/graph", None).await.unwrap();
    assert_eq!(r.status, 501, "{}", r.text());
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap()
            .contains("network graph"),
        "{}",
        r.text()
    );
    let r = c
        .request(
            "POST",
            "/v1/rules:validate",
            Some(
                br#"{"fileName": "mine.yaml", "yaml": "- rule: x\n  condition: evt.type = (\n"}"#
                    .to_vec(),
            ),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.text());
    let j = r.json();
    // false is proto3's default, which the canonical mapping leaves out.
    assert_ne!(j["valid"], true, "{j}");
    assert_eq!(j["diagnostics"][0]["file"], "mine.yaml", "{j}");
    assert!(j["diagnostics"][0]["line"].as_u64().unwrap() >= 1, "{j}");
    s.server.stop().await;
}

/// A refused request's body is read all the same, so its connection stays open: the
/// next request a client sends on it (a POST, which clients do not send again) is
/// answered, not cut. Before, a refusal (401, 404, 405) left the body unread and the
/// server closed the connection after answering, which schemathesis now and then met
/// as "EOF occurred in violation of protocol" on its next POST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_request_keeps_its_connection_for_the_next_post() {
    let s = Server::start().await;
    ingest_shadow_alert(&s);
    let analyst = s.client(Some(&s.analyst));
    // The same connection pool, no token.
    let anon = analyst.with_token(None);
    for i in 0..40 {
        let refused = match i % 3 {
            0 => anon.request("POST", "/v1/alerts/a1:comment", Some(vec![b' '; 256 << 10])),
            1 => analyst.request("POST", "/v2/nothing", Some(vec![b' '; 256 << 10])),
            _ => analyst.request("PUT", "/v1/alerts", Some(vec![b' '; 256 << 10])),
        }
        .await
        .unwrap_or_else(|e| panic!("refusal {i}: {e}"));
        assert!(
            [401, 404, 405].contains(&refused.status),
            "{i}: {}",
            refused.text()
        );
        let r = analyst
            .request(
                "POST",
                "/v1/alerts/a1:comment",
                Some(format!(r#"{{"text": "note {i}"}}"#).into_bytes()),
            )
            .await
            .unwrap_or_else(|e| panic!("the POST after refusal {i}: {e}"));
        assert_eq!(r.status, 200, "{i}: {}", r.text());
    }
    s.server.stop().await;
}

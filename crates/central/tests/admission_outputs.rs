//! An admission decision's alert renders in every output encoding and in the API as
//! the request it was: kind, namespace, name, user and the clauses that denied it, from
//! its own `admission` event (no placeholder event, no container).

use rampart_admission::{AdmissionPolicy, NoScans, Requester};
use rampart_notify::config::Encoding;
use rampart_notify::encode::{encode, EncodeContext};

fn alert() -> rampart_event::Alert {
    let pod = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "miner", "namespace": "shop"},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.36",
            "securityContext": {"privileged": true}}]}
    });
    let d = AdmissionPolicy::default().evaluate("Pod", "shop", &pod, &NoScans, 1);
    let by = Requester {
        user: "system:serviceaccount:ci:deployer",
        operation: "CREATE",
    };
    rampart_admission::alert(&d, by, "central", 1_800_000_000_000_000_000).expect("denied")
}

#[test]
fn admission_alerts_render_in_every_encoding_and_the_api() {
    let a = alert();
    let ctx = EncodeContext {
        hostname_override: None,
        local_hostname: "central".into(),
        product_version: "0.1.0".into(),
        falco_uuid: false,
    };
    for enc in [
        Encoding::Json,
        Encoding::Falco,
        Encoding::Ocsf,
        Encoding::Text,
        Encoding::Cef,
    ] {
        let text = encode(enc, &a, &ctx);
        assert!(
            text.contains("shop/miner") && text.contains("system:serviceaccount:ci:deployer"),
            "{enc:?}: {text}"
        );
    }
    let rampart_json: serde_json::Value =
        serde_json::from_str(&encode(Encoding::Json, &a, &ctx)).unwrap();
    assert_eq!(rampart_json["event"]["kind"], "admission");
    assert_eq!(rampart_json["event"]["data"]["operation"], "CREATE");
    let falco: serde_json::Value =
        serde_json::from_str(&encode(Encoding::Falco, &a, &ctx)).unwrap();
    assert_eq!(
        falco["output_fields"]["ka.user.name"],
        "system:serviceaccount:ci:deployer"
    );
    assert_eq!(falco["source"], "admission");

    // The API's message: the event as a Struct, the request in it.
    let pb = rampart_api::convert::alert(&a);
    let ev = serde_json::to_value(pb.event.expect("the event")).unwrap();
    assert_eq!(ev["kind"], "admission", "{ev}");
    assert_eq!(ev["data"]["kind"], "Pod");
    assert_eq!(ev["data"]["namespace"], "shop");
    assert_eq!(ev["data"]["name"], "miner");
    assert_eq!(ev["data"]["user"], "system:serviceaccount:ci:deployer");
    assert_eq!(ev["data"]["decision"], "deny");
    assert!(ev["data"]["denied_by"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "privileged"));
    assert!(
        pb.container.is_none(),
        "no container: the pod does not exist yet"
    );
}

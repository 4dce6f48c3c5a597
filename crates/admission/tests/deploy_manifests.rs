//! Every manifest under deploy/kubernetes, and the Helm chart under deploy/helm
//! rendered with its default values, is valid against the Kubernetes API's JSON
//! schemas (v1.33, strict: unknown fields are errors), vendored in
//! deploy/kubernetes/schemas. Offline: no cluster, no network.
//!
//! The chart is rendered twice: by helm itself (`helm template`; scripts/setup installs
//! it, RAMPART_HELM names another; skips without it elsewhere, fails in CI), and by a
//! small renderer here of the only template forms the chart uses (`{{ .Values.a.b }}`,
//! `{{ .Release.Namespace }}`, `| quote`, `| toYaml | nindent N`), which must agree
//! with helm object for object; a template using anything else fails the test rather
//! than rendering wrong.

use std::path::{Path, PathBuf};

use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const SCHEMAS: &[(&str, &str)] = &[
    ("Namespace", "namespace-v1"),
    ("ServiceAccount", "serviceaccount-v1"),
    ("ConfigMap", "configmap-v1"),
    ("DaemonSet", "daemonset-apps-v1"),
    ("Deployment", "deployment-apps-v1"),
    ("Service", "service-v1"),
    ("PersistentVolumeClaim", "persistentvolumeclaim-v1"),
    ("PodDisruptionBudget", "poddisruptionbudget-policy-v1"),
    (
        "ValidatingWebhookConfiguration",
        "validatingwebhookconfiguration-admissionregistration-v1",
    ),
];

struct Validators(Vec<(&'static str, jsonschema::Validator)>);

impl Validators {
    fn load() -> Self {
        let dir = repo().join("deploy/kubernetes/schemas");
        let read = |f: &str| -> Value {
            serde_json::from_slice(&std::fs::read(dir.join(f)).unwrap()).unwrap()
        };
        let defs = read("_definitions.json");
        let v = SCHEMAS
            .iter()
            .map(|(kind, file)| {
                let resource = jsonschema::Resource::from_contents(defs.clone()).unwrap();
                let validator = jsonschema::options()
                    .with_resource("https://kubernetes.io/api/_definitions.json", resource)
                    .build(&read(&format!("{file}.json")))
                    .unwrap_or_else(|e| panic!("{file}: {e}"));
                (*kind, validator)
            })
            .collect();
        Self(v)
    }

    /// Errors of every document in a YAML stream, as `origin: kind/name: error`.
    fn check(&self, origin: &str, text: &str) -> (usize, Vec<String>) {
        use serde::Deserialize;
        let mut errors = Vec::new();
        let mut n = 0;
        for doc in yaml_serde::Deserializer::from_str(text) {
            let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: {e}"));
            if value.is_null() {
                continue;
            }
            n += 1;
            let kind = value["kind"].as_str().unwrap_or("");
            let name = value["metadata"]["name"].as_str().unwrap_or("");
            let Some((_, v)) = self.0.iter().find(|(k, _)| *k == kind) else {
                errors.push(format!(
                    "{origin}: {kind}/{name}: no schema vendored for this kind"
                ));
                continue;
            };
            for e in v.iter_errors(&value) {
                errors.push(format!(
                    "{origin}: {kind}/{name}: {} at {}",
                    e, e.instance_path
                ));
            }
        }
        (n, errors)
    }
}

#[test]
fn the_schemas_catch_a_wrong_manifest() {
    let v = Validators::load();
    let (_, errors) = v.check(
        "bad",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\nspec:\n  replicas: two\n  selector: {}\n  template: {spec: {containers: [{image: b}]}}\n  replcias: 1\n",
    );
    let all = errors.join("\n");
    assert!(
        all.contains("replicas"),
        "a string where an integer goes: {all}"
    );
    assert!(
        all.contains("replcias"),
        "a misspelt field (strict schemas): {all}"
    );
    assert!(
        all.contains("\"name\" is a required property"),
        "a container without its name: {all}"
    );
}

#[test]
fn deploy_kubernetes_manifests_are_valid() {
    let v = Validators::load();
    let dir = repo().join("deploy/kubernetes");
    let mut total = 0;
    let mut errors = Vec::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_some_and(|x| x == "yaml") {
            let (n, errs) = v.check(
                &path.display().to_string(),
                &std::fs::read_to_string(&path).unwrap(),
            );
            total += n;
            errors.extend(errs);
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(total >= 12, "{total} objects");
}

/// `{{ .Values.a.b }}` and friends, from the chart's values.yaml.
fn render(template: &str, values: &Value, namespace: &str, origin: &str) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..]
            .find("}}")
            .unwrap_or_else(|| panic!("{origin}: unclosed {{{{"))
            + start;
        let inner = &rest[start + 2..end];
        // `{{-` eats the whitespace (newlines too) before it, as in Go templates.
        if inner.starts_with('-') {
            let kept = out.trim_end().len();
            out.truncate(kept);
        }
        let expr = inner.trim_start_matches('-').trim();
        let mut parts = expr.split('|').map(str::trim);
        let head = parts.next().unwrap();
        let value = if head == ".Release.Namespace" {
            Value::String(namespace.into())
        } else if let Some(path) = head.strip_prefix(".Values.") {
            path.split('.').fold(values.clone(), |v, k| v[k].clone())
        } else {
            panic!("{origin}: template form this renderer does not know: {expr}");
        };
        assert!(!value.is_null(), "{origin}: {head} has no value");
        let mut text = match &value {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        for filter in parts {
            if filter == "quote" {
                text = serde_json::to_string(&text).unwrap();
            } else if filter == "toYaml" {
                text = yaml_serde::to_string(&value)
                    .unwrap()
                    .trim_end()
                    .to_string();
            } else if let Some(n) = filter.strip_prefix("nindent ") {
                let pad = " ".repeat(n.trim().parse().unwrap());
                text = text.lines().map(|l| format!("\n{pad}{l}")).collect();
            } else {
                panic!("{origin}: filter this renderer does not know: {filter}");
            }
        }
        out.push_str(&text);
        rest = &rest[end + 2..];
    }
    out.push_str(rest);
    out
}

#[test]
fn the_helm_chart_renders_valid_manifests() {
    let v = Validators::load();
    let chart = repo().join("deploy/helm/rampart");
    let chart_yaml: Value =
        yaml_serde::from_str(&std::fs::read_to_string(chart.join("Chart.yaml")).unwrap()).unwrap();
    assert_eq!(chart_yaml["apiVersion"], "v2");
    let values: Value =
        yaml_serde::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    let mut total = 0;
    let mut errors = Vec::new();
    let mut rendered_all = String::new();
    for e in std::fs::read_dir(chart.join("templates")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let origin = path.display().to_string();
        let rendered = render(
            &std::fs::read_to_string(&path).unwrap(),
            &values,
            "rampart",
            &origin,
        );
        let (n, errs) = v.check(&origin, &rendered);
        total += n;
        errors.extend(errs);
        rendered_all.push_str(&rendered);
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(total >= 12, "{total} objects");
    // The values reach the objects.
    assert!(rendered_all.contains(&format!(
        "image: {}",
        values["image"]["repository"].as_str().unwrap()
    )));
    assert!(rendered_all.contains("failurePolicy: Ignore"));
}

/// The YAML documents of a stream as JSON values, by `kind/name`.
fn objects(text: &str, origin: &str) -> std::collections::BTreeMap<String, Value> {
    use serde::Deserialize;
    let mut out = std::collections::BTreeMap::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{origin}: {e}"));
        if value.is_null() {
            continue;
        }
        let key = format!(
            "{}/{}",
            value["kind"].as_str().unwrap_or(""),
            value["metadata"]["name"].as_str().unwrap_or("")
        );
        assert!(
            out.insert(key.clone(), value).is_none(),
            "{origin}: {key} twice"
        );
    }
    out
}

fn helm_binary() -> Option<PathBuf> {
    let helm = std::env::var_os("RAMPART_HELM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("helm"));
    let ok = std::process::Command::new(&helm)
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        Some(helm)
    } else {
        rampart_testbed::skip_or_fail(format!(
            "{} does not run (scripts/setup installs helm)",
            helm.display()
        ));
        None
    }
}

#[test]
fn helm_template_renders_valid_manifests_the_same_as_the_test_renderer() {
    let Some(helm) = helm_binary() else {
        return;
    };
    let chart = repo().join("deploy/helm/rampart");
    let out = std::process::Command::new(&helm)
        .args(["template", "rampart"])
        .arg(&chart)
        .args(["--namespace", "rampart"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "helm template: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let v = Validators::load();
    let (n, errors) = v.check("helm template", &text);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    assert!(n >= 12, "{n} objects");
    let by_helm = objects(&text, "helm template");

    // The same objects from the test's renderer, field for field.
    let values: Value =
        yaml_serde::from_str(&std::fs::read_to_string(chart.join("values.yaml")).unwrap()).unwrap();
    let mut ours = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(chart.join("templates")).unwrap() {
        let path = e.unwrap().path();
        if path.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let origin = path.display().to_string();
        let rendered = render(
            &std::fs::read_to_string(&path).unwrap(),
            &values,
            "rampart",
            &origin,
        );
        ours.extend(objects(&rendered, &origin));
    }
    assert_eq!(
        by_helm.keys().collect::<Vec<_>>(),
        ours.keys().collect::<Vec<_>>()
    );
    for (key, object) in &by_helm {
        assert_eq!(
            object, &ours[key],
            "{key} differs between helm and the test renderer"
        );
    }

    // Values given on the command line reach the objects (helm's own templating).
    let out = std::process::Command::new(&helm)
        .args(["template", "rampart"])
        .arg(&chart)
        .args([
            "--namespace",
            "security",
            "--set",
            "image.repository=registry.example.com/rampart",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("image: registry.example.com/rampart"),
        "{text}"
    );
    assert!(text.contains("namespace: security"));
    let (_, errors) = v.check("helm template --set", &text);
    assert!(errors.is_empty(), "{}", errors.join("\n"));
}

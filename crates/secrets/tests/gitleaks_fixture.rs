//! gitleaks' own default configuration (222 rules, from the shared fixtures)
//! loaded and applied: realistic fake secrets for many rules must hit, and
//! allowlisted, stop-worded, low-entropy and out-of-scope lookalikes must not.

mod common;

use std::sync::OnceLock;

use common::*;
use rampart_secrets::{SecretFinding, SecretScanner};

const FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../../shared/fixtures/secrets/gitleaks.toml"
);

fn scanner() -> &'static SecretScanner {
    static SCANNER: OnceLock<SecretScanner> = OnceLock::new();
    SCANNER.get_or_init(|| {
        let text = std::fs::read_to_string(FIXTURE).unwrap();
        SecretScanner::from_gitleaks_toml(&text).unwrap()
    })
}

struct Case {
    rule_id: &'static str,
    path: String,
    content: String,
    /// The secret the rule should extract (for redaction and group checks).
    secret: String,
}

fn case(rule_id: &'static str, path: &str, content: String, secret: String) -> Case {
    Case {
        rule_id,
        path: path.to_string(),
        content,
        secret,
    }
}

/// One realistic sample per rule, shaped after the rule's regex.
fn positive_cases() -> Vec<Case> {
    let mut f = Fake::new(20_261_122);
    let mut cases = Vec::new();
    let mut add = |rule_id: &'static str, path: &str, before: &str, secret: String, after: &str| {
        let content = format!("# sample\n{before}{secret}{after}\n");
        cases.push(case(rule_id, path, content, secret));
    };

    add(
        "aws-access-token",
        "config/aws.ini",
        "aws_access_key_id = ",
        format!("AKIA{}", f.string(BASE32_UPPER, 16)),
        "",
    );
    add(
        "github-pat",
        "ci/env.sh",
        "export GH_TOKEN=",
        format!("ghp_{}", f.string(ALNUM, 36)),
        "",
    );
    add(
        "github-fine-grained-pat",
        "ci/env.sh",
        "GH=",
        format!("github_pat_{}", f.string(ALNUM, 82)),
        "",
    );
    add(
        "github-oauth",
        "app.py",
        "oauth = '",
        format!("gho_{}", f.string(ALNUM, 36)),
        "'",
    );
    add(
        "github-app-token",
        "app.py",
        "installation = '",
        format!("ghs_{}", f.string(ALNUM, 36)),
        "'",
    );
    add(
        "gitlab-pat",
        ".gitlab-ci.yml",
        "  GITLAB_TOKEN: ",
        format!("glpat-{}", f.string(ALNUM, 20)),
        "",
    );
    add(
        "gitlab-runner-authentication-token",
        "config.toml",
        "  token = \"",
        format!("glrt-{}", f.string(ALNUM, 20)),
        "\"",
    );
    add(
        "slack-bot-token",
        "bot.js",
        "const slack = new WebClient('",
        format!(
            "xoxb-{}-{}-{}",
            f.string(DIGITS, 11),
            f.string(DIGITS, 13),
            f.string(ALNUM, 24)
        ),
        "');",
    );
    add(
        "slack-user-token",
        "bot.js",
        "user: '",
        format!(
            "xoxp-{}-{}-{}-{}",
            f.string(DIGITS, 11),
            f.string(DIGITS, 12),
            f.string(DIGITS, 13),
            f.string(HEX, 32)
        ),
        "'",
    );
    add(
        "slack-webhook-url",
        "notify.sh",
        "curl -X POST ",
        format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            f.string(UPPER_ALNUM, 8),
            f.string(UPPER_ALNUM, 10),
            f.string(ALNUM, 24)
        ),
        " -d @payload.json",
    );
    add(
        "stripe-access-token",
        "billing.rb",
        "Stripe.api_key = '",
        format!("sk_live_{}", f.string(ALNUM, 24)),
        "'",
    );
    add(
        "gcp-api-key",
        "firebase.js",
        "apiKey: \"",
        format!("AIza{}", f.string(BASE64URL, 35)),
        "\",",
    );
    add(
        "twilio-api-key",
        "sms.py",
        "TWILIO_KEY_SID = '",
        format!("SK{}", f.string(HEX, 32)),
        "'",
    );
    add(
        "sendgrid-api-token",
        "mail.py",
        "SENDGRID = '",
        format!("SG.{}.{}", f.string(BASE64URL, 22), f.string(BASE64URL, 43)),
        "'",
    );
    add(
        "npm-access-token",
        ".npmrc",
        "//registry.npmjs.org/:_authToken=",
        format!("npm_{}", f.string(ALNUM, 36)),
        "",
    );
    add(
        "pypi-upload-token",
        ".pypirc",
        "password = ",
        format!("pypi-AgEIcHlwaS5vcmc{}", f.string(BASE64URL, 70)),
        "",
    );
    add(
        "jwt",
        "client.ts",
        "const token = \"",
        format!(
            "eyJ{}.eyJ{}.{}",
            f.string(ALNUM, 30),
            f.string(ALNUM, 60),
            f.string(BASE64URL, 43)
        ),
        "\";",
    );
    add(
        "openai-api-key",
        "llm.py",
        "client = OpenAI(api_key=\"",
        format!(
            "sk-proj-{}T3BlbkFJ{}",
            f.string(ALNUM, 74),
            f.string(ALNUM, 74)
        ),
        "\")",
    );
    add(
        "anthropic-api-key",
        "llm.py",
        "ANTHROPIC_API_KEY=",
        format!("sk-ant-api03-{}AA", f.string(BASE64URL, 93)),
        "",
    );
    add(
        "digitalocean-pat",
        "terraform.tfvars",
        "do_token = \"",
        format!("dop_v1_{}", f.string(HEX, 64)),
        "\"",
    );
    add(
        "shopify-access-token",
        "shop.rb",
        "token = '",
        format!("shpat_{}", f.string(HEX, 32)),
        "'",
    );
    add(
        "hashicorp-tf-api-token",
        ".terraformrc",
        "  token = \"",
        format!(
            "{}.atlasv1.{}",
            f.string(LOWER_ALNUM, 14),
            f.string(LOWER_ALNUM, 67)
        ),
        "\"",
    );
    add(
        "databricks-api-token",
        "notebook.py",
        "DATABRICKS_TOKEN = \"",
        format!("dapi{}", f.string(HEX, 32)),
        "\"",
    );
    add(
        "age-secret-key",
        "keys.txt",
        "",
        format!("AGE-SECRET-KEY-1{}", f.string(BECH32_UPPER, 58)),
        "",
    );
    add(
        "huggingface-access-token",
        "train.py",
        "HF_TOKEN = \"",
        format!("hf_{}", f.string(LETTERS, 34)),
        "\"",
    );
    add(
        "grafana-service-account-token",
        "grafana.ini",
        "token = ",
        format!("glsa_{}_{}", f.string(ALNUM, 32), f.string(HEX, 8)),
        "",
    );
    add(
        "pulumi-api-token",
        "deploy.sh",
        "PULUMI_ACCESS_TOKEN=",
        format!("pul-{}", f.string(HEX, 40)),
        "",
    );
    add(
        "linear-api-key",
        "sync.ts",
        "const linear = '",
        format!("lin_api_{}", f.string(ALNUM, 40)),
        "'",
    );
    add(
        "postman-api-token",
        "postman.env",
        "POSTMAN_API_KEY=",
        format!("PMAK-{}-{}", f.string(HEX, 24), f.string(HEX, 34)),
        "",
    );
    add(
        "doppler-api-token",
        "doppler.yaml",
        "token: ",
        format!("dp.pt.{}", f.string(ALNUM, 43)),
        "",
    );
    add(
        "vault-service-token",
        "vault.env",
        "VAULT_TOKEN=",
        format!("hvs.{}", f.string(BASE64URL, 95)),
        "",
    );
    add(
        "atlassian-api-token",
        "jira.cfg",
        "token=",
        format!("ATATT3{}", f.string(BASE64URL, 186)),
        "",
    );
    add(
        "square-access-token",
        "pay.js",
        "const square = '",
        format!("sq0atp-{}", f.string(BASE64URL, 22)),
        "';",
    );
    add(
        "alibaba-access-key-id",
        "oss.properties",
        "accessKeyId=",
        format!("LTAI{}", f.string(ALNUM, 20)),
        "",
    );
    add(
        "1password-secret-key",
        "vault.txt",
        "",
        format!(
            "A3-{}-{}-{}-{}-{}",
            f.string(UPPER_ALNUM, 6),
            f.string(UPPER_ALNUM, 11),
            f.string(UPPER_ALNUM, 5),
            f.string(UPPER_ALNUM, 5),
            f.string(UPPER_ALNUM, 5)
        ),
        "",
    );
    add(
        "dynatrace-api-token",
        "dt.env",
        "DT_API_TOKEN=",
        format!(
            "dt0c01.{}.{}",
            f.string(UPPER_ALNUM, 24),
            f.string(UPPER_ALNUM, 64)
        ),
        "",
    );
    add(
        "flyio-access-token",
        "fly.env",
        "FLY_API_TOKEN=",
        format!("fo1_{}", f.string(BASE64URL, 43)),
        "",
    );
    add(
        "rubygems-api-token",
        "credentials",
        ":rubygems_api_key: ",
        format!("rubygems_{}", f.string(HEX, 48)),
        "",
    );
    add(
        "prefect-api-token",
        "prefect.env",
        "PREFECT_API_KEY=",
        format!("pnu_{}", f.string(ALNUM, 36)),
        "",
    );
    add(
        "azure-ad-client-secret",
        "appsettings.json",
        "  \"ClientSecret\": \"",
        format!(
            "{}{}Q~{}",
            f.string(ALNUM, 3),
            f.string(DIGITS, 1),
            f.string(ALNUM, 34)
        ),
        "\",",
    );

    // Rules that extract a capture group from a keyed assignment.
    let uuid = f.uuid();
    cases.push(case(
        "heroku-api-key",
        "Procfile.env",
        format!("HEROKU_API_KEY = \"{uuid}\"\n"),
        uuid,
    ));
    let mailgun = format!("key-{}", f.string(HEX, 32));
    cases.push(case(
        "mailgun-private-api-token",
        "mail.yml",
        format!("mailgun_api_key: {mailgun}\n"),
        mailgun,
    ));
    let telegram = format!("{}:A{}", f.string(DIGITS, 10), f.string(BASE64URL, 34));
    cases.push(case(
        "telegram-bot-api-token",
        "bot.env",
        format!("TELEGRAM_BOT_TOKEN={telegram}\n"),
        telegram,
    ));
    let sonar = format!("squ_{}", f.string(HEX, 40));
    cases.push(case(
        "sonar-api-token",
        "sonar-project.properties",
        format!("sonar.token={sonar}\n"),
        sonar,
    ));
    let generic = format!("{}7Q{}", f.string(ALNUM, 10), f.string(ALNUM, 12));
    cases.push(case(
        "generic-api-key",
        "settings.py",
        format!("PAYMENTS_API_SECRET = \"{generic}\"\n"),
        generic,
    ));
    let bearer = f.string(BASE64URL, 40);
    cases.push(case(
        "curl-auth-header",
        "README.md",
        format!("curl -H \"Authorization: Bearer {bearer}\" https://api.internal.test/v1/items\n"),
        bearer,
    ));
    let pem = f.pem_private_key("RSA ");
    cases.push(case(
        "private-key",
        "deploy/id_rsa",
        pem.clone(),
        pem.trim_end().to_string(),
    ));
    let k8s_value = f.string(BASE64, 32);
    cases.push(case(
        "kubernetes-secret-yaml",
        "deploy/db-secret.yaml",
        format!(
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ntype: Opaque\ndata:\n  password: {k8s_value}\n"
        ),
        format!("password: {k8s_value}"),
    ));
    let nuget = format!("{}!{}", f.string(ALNUM, 8), f.string(ALNUM, 6));
    cases.push(case(
        "nuget-config-password",
        "src/NuGet.Config",
        format!(
            "<packageSourceCredentials><feed>\n  <add key=\"ClearTextPassword\" value=\"{nuget}\" />\n</feed></packageSourceCredentials>\n"
        ),
        nuget,
    ));
    cases
}

fn findings_for<'a>(findings: &'a [SecretFinding], rule_id: &str) -> Vec<&'a SecretFinding> {
    findings.iter().filter(|f| f.rule_id == rule_id).collect()
}

#[test]
fn fixture_loads_with_every_rule_compiled() {
    let scanner = scanner();
    let skipped: Vec<_> = scanner
        .skipped_rules()
        .iter()
        .map(|s| format!("{}: {}", s.rule_id, s.reason))
        .collect();
    assert!(skipped.is_empty(), "skipped rules: {skipped:#?}");
    assert_eq!(scanner.rule_count(), 222);
}

#[test]
fn realistic_secrets_hit_their_rules() {
    let scanner = scanner();
    let cases = positive_cases();
    let distinct: std::collections::HashSet<_> = cases.iter().map(|c| c.rule_id).collect();
    assert!(
        distinct.len() >= 45,
        "only {} rules covered",
        distinct.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let findings = scanner.scan(&case.path, case.content.as_bytes());
        let hits = findings_for(&findings, case.rule_id);
        let Some(hit) = hits.first() else {
            failures.push(format!(
                "{} did not fire on {:?}; got {:?}",
                case.rule_id,
                case.content,
                findings.iter().map(|f| &f.rule_id).collect::<Vec<_>>()
            ));
            continue;
        };
        // Redaction: a short prefix of the extracted secret, never the secret.
        let secret_prefix: String = case.secret.chars().take(4).collect();
        if !hit.redacted.ends_with("****")
            || !secret_prefix.starts_with(hit.redacted.trim_end_matches('*'))
            || hit.redacted.contains(&case.secret)
        {
            failures.push(format!(
                "{}: redacted {:?} does not fit secret {:?}",
                case.rule_id, hit.redacted, case.secret
            ));
        }
        assert_eq!(hit.path, case.path);
        assert_eq!(
            hit.fingerprint,
            format!("{}:{}:{}", case.path, case.rule_id, hit.line)
        );
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn line_and_column_point_at_the_match() {
    let mut f = Fake::new(7);
    let token = format!("ghp_{}", f.string(ALNUM, 36));
    let content = format!("first line\nsecond line\n    token: {token}\n");
    let findings = scanner().scan("app/config.yml", content.as_bytes());
    let hit = findings_for(&findings, "github-pat")[0];
    assert_eq!((hit.line, hit.column), (3, 12));
    assert_eq!(hit.fingerprint, "app/config.yml:github-pat:3");
    assert_eq!(hit.redacted, "ghp_****");
    let entropy = hit.entropy.unwrap();
    assert!(entropy > 3.0, "entropy {entropy}");
}

#[test]
fn secret_group_selects_the_configured_capture_group() {
    // sonar-api-token has secretGroup = 2: group 1 is the word "token".
    let mut f = Fake::new(99);
    let token = format!("squ_{}", f.string(HEX, 40));
    let findings = scanner().scan("ci.properties", format!("sonar.token={token}\n").as_bytes());
    let hit = findings_for(&findings, "sonar-api-token")[0];
    assert_eq!(hit.redacted, "squ_****");
}

fn assert_no_hit(rule_id: &str, path: &str, content: &str) {
    let findings = scanner().scan(path, content.as_bytes());
    let hits = findings_for(&findings, rule_id);
    assert!(
        hits.is_empty(),
        "{rule_id} fired on {content:?} at {path}: {hits:?}"
    );
}

#[test]
fn rule_allowlist_regex_suppresses_documented_example_keys() {
    // AWS's documentation key ends in EXAMPLE: the rule's allowlist drops it.
    assert_no_hit(
        "aws-access-token",
        "docs/aws.md",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE\n",
    );
    // The same shape without the suffix is reported.
    let findings = scanner().scan("docs/aws.md", b"aws_access_key_id = AKIAIOSFODNN7QXZMPLW\n");
    assert_eq!(findings_for(&findings, "aws-access-token").len(), 1);
}

#[test]
fn low_entropy_lookalikes_do_not_hit() {
    assert_no_hit("aws-access-token", "a.ini", "key = AKIAAAAAAAAAAAAAAAAA\n");
    assert_no_hit(
        "github-pat",
        "a.env",
        "GH=ghp_000000000000000000000000000000000000\n",
    );
    assert_no_hit(
        "generic-api-key",
        "settings.py",
        "API_SECRET = \"aaaaaaaa11111111\"\n",
    );
}

#[test]
fn generic_rule_stopwords_and_match_allowlist_apply() {
    let mut f = Fake::new(5);
    let random = format!("{}4k{}", f.string(ALNUM, 8), f.string(ALNUM, 8));
    // Reported as a sanity check of the sample itself...
    let line = format!("PAYMENT_API_KEY = \"{random}\"\n");
    let findings = scanner().scan("settings.py", line.as_bytes());
    assert_eq!(
        findings_for(&findings, "generic-api-key").len(),
        1,
        "{line}"
    );
    // ...but a stop word inside the secret is allowed,
    assert_no_hit(
        "generic-api-key",
        "settings.py",
        &format!("PAYMENT_API_KEY = \"example{random}\"\n"),
    );
    // and so is a public key name (allowlist with regexTarget = "match").
    assert_no_hit(
        "generic-api-key",
        "settings.py",
        &format!("STRIPE_PUBLIC_KEY = \"{random}\"\n"),
    );
}

#[test]
fn global_stopwords_apply_to_every_rule() {
    // "014df517-39d1-4453-b7b3-9930c563627c" is in the global stopwords.
    assert_no_hit(
        "heroku-api-key",
        "Procfile.env",
        "HEROKU_API_KEY = \"014df517-39d1-4453-b7b3-9930c563627c\"\n",
    );
}

#[test]
fn global_and_rule_path_allowlists_skip_files() {
    let mut f = Fake::new(11);
    let line = format!("token = ghp_{}\n", f.string(ALNUM, 36));
    let findings = scanner().scan("src/config.js", line.as_bytes());
    assert_eq!(findings_for(&findings, "github-pat").len(), 1);
    // Global allowlist paths: dependency trees and lock files.
    for path in [
        "web/node_modules/left-pad/index.js",
        "package-lock.json",
        "vendor/github.com/x/y/z.go",
        "assets/logo.svg",
    ] {
        assert!(
            scanner().scan(path, line.as_bytes()).is_empty(),
            "{path} not skipped"
        );
    }
    // The github-pat rule's own allowlist path.
    assert_no_hit(
        "github-pat",
        "third_party/@octokit/auth-token/README.md",
        &line,
    );
}

#[test]
fn and_condition_needs_both_path_and_line() {
    // generic-api-key's AND allowlist: BitBake files (path) whose line is a
    // SRC...= "..." assignment (regexTarget = line).
    let mut f = Fake::new(3);
    let line = format!("SRCREV_key = \"{}\"\n", f.string(HEX, 32));
    let in_text_file = scanner().scan("notes/recipe.txt", line.as_bytes());
    assert_eq!(
        findings_for(&in_text_file, "generic-api-key").len(),
        1,
        "sample should hit outside BitBake files"
    );
    assert_no_hit("generic-api-key", "meta/recipes/foo_1.0.bb", &line);
}

#[test]
fn gitleaks_allow_comment_suppresses_the_line() {
    let mut f = Fake::new(13);
    let token = format!("ghp_{}", f.string(ALNUM, 36));
    assert_no_hit(
        "github-pat",
        "test/fixtures.rb",
        &format!("TOKEN = '{token}' # gitleaks:allow\n"),
    );
}

#[test]
fn specific_rule_takes_precedence_over_generic_on_the_same_line() {
    let mut f = Fake::new(17);
    let token = format!("ghp_{}", f.string(ALNUM, 36));
    let findings = scanner().scan("ci.env", format!("github_token = {token}\n").as_bytes());
    let ids: Vec<_> = findings.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(ids, ["github-pat"]);
}

#[test]
fn rule_path_limits_where_a_rule_applies() {
    // kubernetes-secret-yaml only applies to YAML files.
    let mut f = Fake::new(23);
    let content = format!(
        "kind: Secret\ndata:\n  password: {}\n",
        f.string(BASE64, 32)
    );
    let yaml = scanner().scan("k8s/secret.yml", content.as_bytes());
    assert_eq!(findings_for(&yaml, "kubernetes-secret-yaml").len(), 1);
    assert_no_hit("kubernetes-secret-yaml", "k8s/secret.txt", &content);
    // Templated values are allowlisted.
    assert_no_hit(
        "kubernetes-secret-yaml",
        "k8s/secret.yaml",
        "kind: Secret\ndata:\n  password: {{ .Values.password }}\n",
    );
}

#[test]
fn binary_files_are_not_searched_but_path_rules_apply() {
    let mut f = Fake::new(29);
    let mut content = b"\x7fELF\x02\x01\x01\x00\x00\x00".to_vec();
    content.extend_from_slice(format!("ghp_{}\n", f.string(ALNUM, 36)).as_bytes());
    assert!(scanner().scan("usr/bin/tool", &content).is_empty());
    // Known binary extension without NUL bytes.
    let token = format!("token = ghp_{}\n", f.string(ALNUM, 36));
    assert!(scanner()
        .scan("lib/archive.jar", token.as_bytes())
        .is_empty());
    // pkcs12-file is a path-only rule: it reports the file by name.
    let findings = scanner().scan("certs/client.p12", &content);
    let ids: Vec<_> = findings.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(ids, ["pkcs12-file"]);
}

/// Keywords per rule id, read from the fixture itself.
fn fixture_keywords() -> std::collections::HashMap<String, Vec<String>> {
    let text = std::fs::read_to_string(FIXTURE).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    table["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|rule| {
            let id = rule["id"].as_str().unwrap().to_string();
            let keywords = rule
                .get("keywords")
                .and_then(|k| k.as_array())
                .map(|k| {
                    k.iter()
                        .map(|w| w.as_str().unwrap().to_lowercase())
                        .collect()
                })
                .unwrap_or_default();
            (id, keywords)
        })
        .collect()
}

#[test]
fn prefilter_only_drops_rules_whose_keywords_are_absent() {
    let scanner = scanner();
    let keywords = fixture_keywords();
    let mut corpus: Vec<(String, Vec<u8>)> = positive_cases()
        .into_iter()
        .map(|c| (c.path, c.content.into_bytes()))
        .collect();
    // Plus this crate's own sources and rules: real text with keywords.
    let root = env!("CARGO_MANIFEST_DIR");
    for entry in walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| !e.path().components().any(|c| c.as_os_str() == "target"))
    {
        let relative = entry.path().strip_prefix(root).unwrap();
        corpus.push((
            relative.display().to_string(),
            std::fs::read(entry.path()).unwrap(),
        ));
    }
    assert!(corpus.len() > 50);
    let (mut kept, mut dropped) = (0, 0);
    for (path, bytes) in &corpus {
        let fast = scanner.scan(path, bytes);
        let slow = scanner.scan_without_prefilter(path, bytes);
        let lowered = String::from_utf8_lossy(bytes).to_lowercase();
        for finding in &slow {
            if fast.contains(finding) {
                kept += 1;
                continue;
            }
            // gitleaks only runs a rule when one of its keywords occurs.
            let rule_keywords = &keywords[&finding.rule_id];
            assert!(
                !rule_keywords.is_empty() && rule_keywords.iter().all(|k| !lowered.contains(k)),
                "pre-filter dropped {finding:?} although a keyword occurs"
            );
            dropped += 1;
        }
        for finding in &fast {
            assert!(slow.contains(finding), "pre-filter added {finding:?}");
        }
    }
    assert!(kept >= 45, "corpus should contain findings, got {kept}");
    println!("kept {kept}, dropped {dropped} keyword-less matches");
}

#[test]
fn extend_is_ignored_with_a_note_and_bad_rules_are_skipped() {
    let config = r#"
[extend]
useDefault = true

[[rules]]
id = "good"
regex = '''good_[a-z0-9]{8}'''
keywords = ["good_"]

[[rules]]
id = "bad-regex"
regex = '''(unclosed'''

[[rules]]
id = "bad-group"
regex = '''x(y)'''
secretGroup = 3

[[rules]]
id = "bad-type"
regex = '''z'''
entropy = "high"

[[rules]]
description = "no id"
regex = '''q'''

[[rules]]
id = "no-effect"
"#;
    let scanner = SecretScanner::from_gitleaks_toml(config).unwrap();
    assert_eq!(scanner.rule_ids().collect::<Vec<_>>(), ["good"]);
    let skipped: Vec<_> = scanner
        .skipped_rules()
        .iter()
        .map(|s| s.rule_id.as_str())
        .collect();
    assert_eq!(
        skipped,
        [
            "bad-regex",
            "bad-group",
            "bad-type",
            "rules[4]",
            "no-effect"
        ]
    );
    assert!(scanner.skipped_rules()[0].reason.contains("regex"));
    assert!(scanner.skipped_rules()[1].reason.contains("secretGroup 3"));
    assert!(scanner.notes()[0].contains("[extend] ignored"));
    let findings = scanner.scan("a.txt", b"x = good_abcd1234\n");
    assert_eq!(findings.len(), 1);
}

#[test]
fn toml_syntax_error_reports_line_and_column() {
    let error = SecretScanner::from_gitleaks_toml("title = \"x\"\n[[rules]\nid = 1\n")
        .err()
        .unwrap();
    let message = error.to_string();
    assert!(message.contains("line 2"), "{message}");
}

#[test]
fn targeted_global_allowlist_applies_only_to_its_rules() {
    let config = r#"
[[allowlists]]
targetRules = ["alpha"]
stopwords = ["fixture"]

[[rules]]
id = "alpha"
regex = '''alpha_([a-z]+)'''

[[rules]]
id = "beta"
regex = '''beta_([a-z]+)'''
"#;
    let scanner = SecretScanner::from_gitleaks_toml(config).unwrap();
    assert!(scanner.skipped_rules().is_empty());
    let findings = scanner.scan("t.txt", b"alpha_fixturex beta_fixturex alpha_real\n");
    let ids: Vec<_> = findings.iter().map(|f| f.rule_id.as_str()).collect();
    assert_eq!(ids, ["beta", "alpha"]);
    assert_eq!(findings[1].column, 30);
}

#[test]
fn composite_rule_needs_its_required_rule_nearby() {
    let config = r#"
[[rules]]
id = "client-id"
regex = '''client_id=([a-z0-9]{8})'''
skipReport = true

[[rules]]
id = "client-secret"
regex = '''client_secret=([a-z0-9]{16})'''
[[rules.required]]
id = "client-id"
withinLines = 2
"#;
    let scanner = SecretScanner::from_gitleaks_toml(config).unwrap();
    let near = b"client_id=abcd1234\nclient_secret=0123456789abcdef\n";
    let ids: Vec<_> = scanner
        .scan("a.env", near)
        .into_iter()
        .map(|f| f.rule_id)
        .collect();
    assert_eq!(ids, ["client-secret"]);
    let far = b"client_id=abcd1234\n\n\n\n\nclient_secret=0123456789abcdef\n";
    assert!(scanner.scan("a.env", far).is_empty());
    let alone = b"client_secret=0123456789abcdef\n";
    assert!(scanner.scan("a.env", alone).is_empty());
}

//! Rampart's own default rule set (`rules/default.toml`): every rule fires on
//! a realistic sample and stays quiet on a benign neighbour of similar shape.

mod common;

use std::collections::BTreeSet;

use common::*;
use rampart_secrets::SecretScanner;

struct Case {
    rule_id: &'static str,
    path: &'static str,
    sample: String,
    benign: String,
}

fn cases() -> Vec<Case> {
    let mut f = Fake::new(4242);
    let mut cases = Vec::new();
    let mut add = |rule_id: &'static str, path: &'static str, sample: String, benign: String| {
        cases.push(Case {
            rule_id,
            path,
            sample,
            benign,
        });
    };

    add(
        "aws-access-key-id",
        "aws.ini",
        format!("aws_access_key_id = AKIA{}", f.string(BASE32_UPPER, 16)),
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE".into(),
    );
    add(
        "aws-secret-access-key",
        "aws.ini",
        format!("aws_secret_access_key = {}", f.string(BASE64, 40)),
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into(),
    );
    add(
        "gcp-api-key",
        "firebase.js",
        format!("apiKey: \"AIza{}\"", f.string(BASE64URL, 35)),
        format!("apiKey: \"AIza{}\"", f.string(BASE64URL, 20)),
    );
    add(
        "gcp-oauth-client-secret",
        "client_secret.json",
        format!("\"client_secret\": \"GOCSPX-{}\"", f.string(BASE64URL, 28)),
        "\"client_secret\": \"GOCSPX-<your-client-secret>\"".into(),
    );
    add(
        "azure-storage-account-key",
        "appsettings.json",
        format!(
            "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey={}==;EndpointSuffix=core.windows.net",
            f.string(BASE64, 86)
        ),
        "DefaultEndpointsProtocol=https;AccountName=acme;AccountKey=<key>;".into(),
    );
    add(
        "digitalocean-token",
        "do.tfvars",
        format!("do_token = \"dop_v1_{}\"", f.string(HEX, 64)),
        format!("do_token = \"dop_v1_{}\"", f.string(HEX, 32)),
    );
    add(
        "alibaba-access-key-id",
        "oss.properties",
        format!("accessKeyId=LTAI{}", f.string(ALNUM, 20)),
        "accessKeyId=LTAI_YOUR_ACCESS_KEY".into(),
    );
    add(
        "heroku-api-key",
        "deploy.env",
        format!("HEROKU_API_KEY={}", f.uuid()),
        format!("HEROKU_APP_ID={}", f.string(HEX, 12)),
    );
    add(
        "github-pat",
        "ci.sh",
        format!("export GH_TOKEN=ghp_{}", f.string(ALNUM, 36)),
        "export GH_TOKEN=ghp_000000000000000000000000000000000000".into(),
    );
    add(
        "github-fine-grained-pat",
        "ci.sh",
        format!("GH=github_pat_{}", f.string(ALNUM, 82)),
        format!("GH=github_pat_{}", f.string(ALNUM, 30)),
    );
    add(
        "github-oauth-token",
        "app.py",
        format!("token = 'gho_{}'", f.string(ALNUM, 36)),
        format!("token = 'gho_{}'", f.string(ALNUM, 12)),
    );
    add(
        "github-app-token",
        "app.py",
        format!("token = 'ghs_{}'", f.string(ALNUM, 36)),
        "token = 'ghs_' + installation_token".into(),
    );
    add(
        "github-refresh-token",
        "app.py",
        format!("refresh = 'ghr_{}'", f.string(ALNUM, 76)),
        "refresh = 'ghr_'".into(),
    );
    add(
        "gitlab-pat",
        ".gitlab-ci.yml",
        format!("  GITLAB_TOKEN: glpat-{}", f.string(BASE64URL, 20)),
        "  GITLAB_TOKEN: glpat-xxxx".into(),
    );
    add(
        "gitlab-runner-token",
        "config.toml",
        format!("  token = \"glrt-{}\"", f.string(ALNUM, 24)),
        "  token = \"glrt-REDACTED\"".into(),
    );
    add(
        "gitlab-pipeline-trigger-token",
        "trigger.sh",
        format!("-F token=glptt-{}", f.string(HEX, 40)),
        format!("-F token=glptt-{}", f.string(HEX, 20)),
    );
    add(
        "npm-access-token",
        ".npmrc",
        format!(
            "//registry.npmjs.org/:_authToken=npm_{}",
            f.string(ALNUM, 36)
        ),
        "//registry.npmjs.org/:_authToken=${NPM_TOKEN}".into(),
    );
    add(
        "pypi-upload-token",
        ".pypirc",
        format!("password = pypi-AgEIcHlwaS5vcmc{}", f.string(BASE64URL, 80)),
        "password = pypi-AgEIcHlwaS5vcmc".into(),
    );
    add(
        "rubygems-api-key",
        "credentials",
        format!(":rubygems_api_key: rubygems_{}", f.string(HEX, 48)),
        ":rubygems_api_key: rubygems_xxxx".into(),
    );
    add(
        "docker-hub-pat",
        "docker.env",
        format!("DOCKERHUB_TOKEN=dckr_pat_{}", f.string(BASE64URL, 27)),
        "DOCKERHUB_TOKEN=dckr_pat_".into(),
    );
    add(
        "hashicorp-vault-token",
        "vault.env",
        format!("VAULT_TOKEN=hvs.{}", f.string(BASE64URL, 95)),
        "VAULT_TOKEN=hvs.root".into(),
    );
    add(
        "terraform-cloud-token",
        ".terraformrc",
        format!(
            "  token = \"{}.atlasv1.{}\"",
            f.string(ALNUM, 14),
            f.string(BASE64URL, 67)
        ),
        "  token = \"xxxxxxxxxxxxxx.atlasv1.zzzz\"".into(),
    );
    add(
        "pulumi-access-token",
        "deploy.sh",
        format!("PULUMI_ACCESS_TOKEN=pul-{}", f.string(HEX, 40)),
        "PULUMI_ACCESS_TOKEN=pul-xxxxxxxx".into(),
    );
    add(
        "slack-bot-token",
        "bot.js",
        format!(
            "new WebClient('xoxb-{}-{}-{}')",
            f.string(DIGITS, 11),
            f.string(DIGITS, 13),
            f.string(ALNUM, 24)
        ),
        "new WebClient('xoxb-your-token')".into(),
    );
    add(
        "slack-user-token",
        "bot.js",
        format!(
            "user: 'xoxp-{}-{}-{}-{}'",
            f.string(DIGITS, 11),
            f.string(DIGITS, 12),
            f.string(DIGITS, 13),
            f.string(HEX, 32)
        ),
        "user: 'xoxp-...'".into(),
    );
    add(
        "slack-app-token",
        "socket.py",
        format!(
            "SLACK_APP_TOKEN=xapp-1-A{}-{}-{}",
            f.string(UPPER_ALNUM, 10),
            f.string(DIGITS, 13),
            f.string(HEX, 64)
        ),
        "SLACK_APP_TOKEN=xapp-1-...".into(),
    );
    add(
        "slack-webhook-url",
        "notify.sh",
        format!(
            "curl -X POST https://hooks.slack.com/services/T{}/B{}/{}",
            f.string(UPPER_ALNUM, 8),
            f.string(UPPER_ALNUM, 10),
            f.string(ALNUM, 24)
        ),
        "see https://hooks.slack.com/services/ for setup".into(),
    );
    add(
        "discord-webhook-url",
        "notify.py",
        format!(
            "URL = 'https://discord.com/api/webhooks/{}/{}'",
            f.string(DIGITS, 18),
            f.string(BASE64URL, 68)
        ),
        "URL = 'https://discord.com/api/webhooks/<id>/<token>'".into(),
    );
    add(
        "telegram-bot-token",
        "bot.env",
        format!(
            "BOT_TOKEN={}:AA{}",
            f.string(DIGITS, 10),
            f.string(BASE64URL, 33)
        ),
        "time = 10:AA and more".into(),
    );
    add(
        "atlassian-api-token",
        "jira.cfg",
        format!("token=ATATT3{}", f.string(BASE64URL, 190)),
        "token=ATATT3xFfGF0".into(),
    );
    add(
        "linear-api-key",
        "sync.ts",
        format!("const linear = 'lin_api_{}'", f.string(ALNUM, 40)),
        "const linear = 'lin_api_'".into(),
    );
    add(
        "postman-api-key",
        "postman.env",
        format!(
            "POSTMAN_API_KEY=PMAK-{}-{}",
            f.string(HEX, 24),
            f.string(HEX, 34)
        ),
        "POSTMAN_API_KEY=PMAK-xxxxxxxx".into(),
    );
    add(
        "stripe-secret-key",
        "billing.rb",
        format!("Stripe.api_key = 'sk_live_{}'", f.string(ALNUM, 24)),
        format!("Stripe.publishable = 'pk_live_{}'", f.string(ALNUM, 24)),
    );
    add(
        "square-access-token",
        "pay.js",
        format!("const square = 'sq0atp-{}';", f.string(BASE64URL, 22)),
        "const square = 'sq0atp-';".into(),
    );
    add(
        "shopify-token",
        "shop.rb",
        format!("token = 'shpat_{}'", f.string(HEX, 32)),
        "token = 'shpat_00000000000000000000000000000000'".into(),
    );
    add(
        "sendgrid-api-key",
        "mail.py",
        format!(
            "SENDGRID = 'SG.{}.{}'",
            f.string(BASE64URL, 22),
            f.string(BASE64URL, 43)
        ),
        "msg = 'SG.send failed'".into(),
    );
    add(
        "twilio-api-key",
        "sms.py",
        format!("TWILIO_KEY_SID = 'SK{}'", f.string(HEX, 32)),
        "TWILIO_KEY_SID = 'SKxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'".into(),
    );
    add(
        "mailgun-api-key",
        "mail.yml",
        format!("mailgun_api_key: key-{}", f.string(HEX, 32)),
        "mailgun_domain: mg.example.org".into(),
    );
    add(
        "mailchimp-api-key",
        "newsletter.py",
        format!("MAILCHIMP = '{}-us{}'", f.string(HEX, 32), f.below(20) + 1),
        "REGION = 'eu-west-1'; ZONE = 'us-east-1'".into(),
    );
    add(
        "openai-api-key",
        "llm.py",
        format!(
            "OpenAI(api_key=\"sk-proj-{}T3BlbkFJ{}\")",
            f.string(ALNUM, 74),
            f.string(ALNUM, 74)
        ),
        "OpenAI(api_key=os.environ[\"OPENAI_API_KEY\"])".into(),
    );
    add(
        "anthropic-api-key",
        "llm.py",
        format!(
            "ANTHROPIC_API_KEY=sk-ant-api03-{}AA",
            f.string(BASE64URL, 93)
        ),
        "ANTHROPIC_API_KEY=sk-ant-...".into(),
    );
    add(
        "huggingface-token",
        "train.py",
        format!("HF_TOKEN = \"hf_{}\"", f.string(LETTERS, 34)),
        "HF_TOKEN = \"hf_transfer\"".into(),
    );
    add(
        "databricks-token",
        "notebook.py",
        format!("DATABRICKS_TOKEN = \"dapi{}\"", f.string(HEX, 32)),
        "DATABRICKS_HOST = \"https://dapi.example.cloud\"".into(),
    );
    add(
        "grafana-service-account-token",
        "grafana.ini",
        format!("token = glsa_{}_{}", f.string(ALNUM, 32), f.string(HEX, 8)),
        "token = glsa_".into(),
    );
    add(
        "private-key",
        "deploy/id_ed25519",
        f.pem_private_key("OPENSSH "),
        "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----".into(),
    );
    add(
        "age-secret-key",
        "keys.txt",
        format!("AGE-SECRET-KEY-1{}", f.string(BECH32_UPPER, 58)),
        "# public key: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p".into(),
    );
    add(
        "jwt",
        "client.ts",
        format!(
            "const token = \"eyJ{}.eyJ{}.{}\";",
            f.string(BASE64URL, 30),
            f.string(BASE64URL, 60),
            f.string(BASE64URL, 43)
        ),
        "const header = \"eyJhbGciOiJIUzI1NiJ9\";".into(),
    );
    add(
        "password-in-url",
        "settings.py",
        format!(
            "DATABASE_URL = \"postgres://app:{}@db.internal:5432/app\"",
            f.string(ALNUM, 16)
        ),
        "DATABASE_URL = \"postgres://app:password@localhost:5432/app\"".into(),
    );
    cases
}

#[test]
fn builtin_rules_all_load() {
    let scanner = SecretScanner::builtin();
    assert!(
        scanner.skipped_rules().is_empty(),
        "{:?}",
        scanner.skipped_rules()
    );
    assert!(scanner.rule_count() >= 40, "{}", scanner.rule_count());
}

#[test]
fn every_builtin_rule_has_a_sample() {
    let scanner = SecretScanner::builtin();
    let rules: BTreeSet<&str> = scanner.rule_ids().collect();
    let tested: BTreeSet<&str> = cases().iter().map(|c| c.rule_id).collect();
    let untested: Vec<_> = rules.difference(&tested).collect();
    let unknown: Vec<_> = tested.difference(&rules).collect();
    assert!(untested.is_empty(), "rules without a sample: {untested:?}");
    assert!(unknown.is_empty(), "samples for unknown rules: {unknown:?}");
}

#[test]
fn each_builtin_rule_fires_on_its_sample_and_not_on_its_neighbour() {
    let scanner = SecretScanner::builtin();
    let mut failures = Vec::new();
    for case in cases() {
        let sample = format!("# config\n{}\n", case.sample);
        let findings = scanner.scan(case.path, sample.as_bytes());
        match findings.iter().find(|f| f.rule_id == case.rule_id) {
            None => failures.push(format!(
                "{} missed {:?} (got {:?})",
                case.rule_id,
                case.sample,
                findings.iter().map(|f| &f.rule_id).collect::<Vec<_>>()
            )),
            Some(hit) => {
                assert_eq!(hit.line, 2, "{}", case.rule_id);
                assert!(hit.redacted.ends_with("****"));
                assert!(
                    hit.redacted.len() < 12,
                    "{} redaction too long: {}",
                    case.rule_id,
                    hit.redacted
                );
            }
        }
        let benign = format!("# config\n{}\n", case.benign);
        let quiet = scanner.scan(case.path, benign.as_bytes());
        if !quiet.is_empty() {
            failures.push(format!(
                "benign neighbour of {} hit: {:?} -> {:?}",
                case.rule_id,
                case.benign,
                quiet.iter().map(|f| &f.rule_id).collect::<Vec<_>>()
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn builtin_skips_lock_files_and_placeholders() {
    let scanner = SecretScanner::builtin();
    let mut f = Fake::new(8);
    let token = format!("ghp_{}", f.string(ALNUM, 36));
    let line = format!("token = {token}\n");
    assert_eq!(scanner.scan("src/app.js", line.as_bytes()).len(), 1);
    assert!(scanner
        .scan("web/package-lock.json", line.as_bytes())
        .is_empty());
    assert!(scanner.scan("Cargo.lock", line.as_bytes()).is_empty());
}

//! Bad configs are refused by `meridian -t -c FILE` with one message that names the file,
//! the line, the region and the field; good ones (every file in conf/) pass.

use crate::common::meridian_bin;
use std::process::Command;

const REGION: &str = "  - name: ap-south-1\n    provider: aws\n    endpoints: [http://127.0.0.1:8003]\n    cost_per_1k: 0.32\n    priority: 1\n";

/// Runs `meridian -t -c` on `yaml`; returns (exit code, stderr, file path).
fn check(yaml: &str, env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meridian.yaml");
    std::fs::write(&path, yaml).unwrap();
    let out = Command::new(meridian_bin())
        .args(["-t", "-c"])
        .arg(&path)
        .envs(env.iter().copied())
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    (
        out.status.code().unwrap_or(-1),
        stderr,
        path.display().to_string(),
    )
}

fn refused(yaml: &str, expect: &[&str]) {
    let (code, stderr, path) = check(yaml, &[]);
    assert_eq!(code, 1, "should be refused:\n{yaml}\n{stderr}");
    assert!(stderr.contains(&path), "message names the file: {stderr}");
    for e in expect {
        assert!(stderr.contains(e), "message should contain {e:?}: {stderr}");
    }
    assert_eq!(
        stderr
            .lines()
            .filter(|l| l.starts_with("meridian:"))
            .count(),
        1,
        "{stderr}"
    );
}

#[test]
fn every_shipped_config_is_valid() {
    let mut checked = 0;
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/conf")).unwrap() {
        let path = entry.unwrap().path();
        let out = Command::new(meridian_bin())
            .arg("-t")
            .arg("-c")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}: {}",
            path.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        checked += 1;
    }
    assert!(checked >= 1);
    let out = Command::new(meridian_bin()).arg("-t").output().unwrap();
    assert!(out.status.success(), "the built-in default is valid");
    assert!(String::from_utf8_lossy(&out.stdout).contains("is valid (5 region(s), 1 geo rule(s))"));
}

#[test]
fn yaml_syntax_error() {
    refused(
        "regions:\n  - name: ap-south-1\n    endpoints: [http://x:1\n    priority: 1\n",
        &["line 4", "expected ',' or ']'"],
    );
}

#[test]
fn unknown_field_names_region_field_and_line() {
    let yaml = format!("regions:\n{REGION}    priorty: 2\n");
    refused(
        &yaml,
        &[
            "line 7",
            "region 'ap-south-1'",
            "field 'priorty'",
            "unknown field",
        ],
    );
    refused("listen:\n  proxi: 127.0.0.1:1\n", &["line 2", "proxi"]);
}

#[test]
fn wrong_type_names_region_and_field() {
    let yaml = "regions:\n  - name: ap-south-1\n    provider: aws\n    endpoints: [http://127.0.0.1:8003]\n    cost_per_1k: cheap\n    priority: 1\n";
    refused(
        yaml,
        &[
            "line 5",
            "region 'ap-south-1'",
            "field 'cost_per_1k'",
            "invalid type",
        ],
    );
}

#[test]
fn duplicate_region() {
    let second = REGION.replace("8003", "8004");
    refused(
        &format!("regions:\n{REGION}{second}"),
        &["line 7", "region 'ap-south-1'", "duplicate region name"],
    );
}

#[test]
fn bad_endpoint_url() {
    for (url, why) in [
        ("127.0.0.1:8003", "expected a URL"),
        ("http://127.0.0.1:99999", "invalid port"),
        (
            "http://127.0.0.1:8003/v1#top",
            "a fragment ('#top') is never sent",
        ),
        (
            "'http://127.0.0.1:8003/v1?a=1&a=2'",
            "parameter 'a' is given twice",
        ),
        ("http://127.0.0.1:8003/v1//x", "empty segment"),
        ("ftp://127.0.0.1:21", "unsupported scheme"),
    ] {
        let yaml = format!("regions:\n{}", REGION.replace("http://127.0.0.1:8003", url));
        refused(
            &yaml,
            &["line 4", "region 'ap-south-1'", "field 'endpoints'", why],
        );
    }
    // Two regions cannot share one endpoint.
    let other = REGION.replace("ap-south-1", "me-south-1");
    refused(
        &format!("regions:\n{REGION}{other}"),
        &["region 'me-south-1'", "already used by region 'ap-south-1'"],
    );
}

#[test]
fn a_path_prefix_and_query_parameters_are_accepted() {
    let yaml = format!(
        "regions:\n{}",
        REGION.replace(
            "http://127.0.0.1:8003",
            "'http://127.0.0.1:8003/openai/?api-version=2024-10-21'"
        )
    );
    let (code, stderr, _) = check(&yaml, &[]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn bad_region_health_check_names_region_field_and_line() {
    for (block, line, field, why) in [
        (
            "      expect_status: 99\n",
            "line 8",
            "health_check.expect_status",
            "not an HTTP status",
        ),
        (
            "      expect_status: [200, 200]\n",
            "line 8",
            "health_check.expect_status",
            "listed twice",
        ),
        (
            "      expect_status: ok\n",
            "line 8",
            "health_check.expect_status",
            "a status code (200) or a list",
        ),
        (
            "      path: /v1/models\n      body: '{}'\n",
            "line 9",
            "health_check.body",
            "only a POST probe sends a body",
        ),
        (
            "      path: v1/models\n",
            "line 8",
            "health_check.path",
            "must be a path starting with '/'",
        ),
        (
            "      method: PUT\n",
            "line 8",
            "health_check.method",
            "unknown variant `PUT`",
        ),
        (
            "      methd: GET\n",
            "line 8",
            "health_check",
            "unknown field `methd`",
        ),
    ] {
        let yaml = format!("regions:\n{REGION}    health_check:\n{block}");
        refused(
            &yaml,
            &[
                line,
                "region 'ap-south-1'",
                &format!("field '{field}'"),
                why,
            ],
        );
    }
    // The fleet's probe is checked on its own, with the same words.
    refused(
        &format!("health_check:\n  expect_status: 600\nregions:\n{REGION}"),
        &[
            "line 2",
            "field 'health_check.expect_status'",
            "600 is not an HTTP status",
        ],
    );
}

#[test]
fn geo_rule_naming_an_unknown_region_or_tag() {
    let geo = "geo:\n  rules:\n    - name: eu\n      match: [DE]\n      allow: [eu-west-1]\n";
    refused(
        &format!("regions:\n{REGION}{geo}"),
        &[
            "line 11",
            "geo rule 'eu'",
            "region 'eu-west-1' does not exist",
        ],
    );
    let geo = "geo:\n  rules:\n    - name: eu\n      match: [DE]\n      allow: [tag:eu]\n";
    refused(
        &format!("regions:\n{REGION}{geo}"),
        &["tag 'eu' is carried by no region"],
    );
    let geo = "geo:\n  rules:\n    - name: eu\n      match: [DE]\n      allow: [ap-south-1]\n      deny: true\n";
    refused(
        &format!("regions:\n{REGION}{geo}"),
        &["either denies or allows"],
    );
    let geo = "geo:\n  rules:\n    - name: a\n      match: [DE]\n      deny: true\n    - name: b\n      match: [de]\n      deny: true\n";
    refused(
        &format!("regions:\n{REGION}{geo}"),
        &["geo rule 'b'", "already matched by rule 'a'"],
    );
}

#[test]
fn zero_regions() {
    refused(
        "regions: []\n",
        &["line 1", "field 'regions'", "at least one region"],
    );
    refused(
        "listen:\n  proxy: 127.0.0.1:7000\n",
        &["at least one region"],
    );
}

#[test]
fn out_of_range_settings() {
    refused(
        &format!("health_check:\n  interval: 0s\nregions:\n{REGION}"),
        &["line 2", "health_check.interval", "greater than 0"],
    );
    refused(
        &format!("upstream:\n  max_attempts: 0\nregions:\n{REGION}"),
        &["upstream.max_attempts"],
    );
    refused(
        &format!("regions:\n{}", REGION.replace("0.32", "-1")),
        &["region 'ap-south-1'", "cost_per_1k"],
    );
    refused(
        &format!("server:\n  pid_file: relative.pid\nregions:\n{REGION}"),
        &["server.pid_file", "absolute"],
    );
    refused(
        &format!("listen:\n  proxy: nowhere\nregions:\n{REGION}"),
        &["line 2", "listen.proxy"],
    );
    refused(
        &format!("limits:\n  keepalive_requests: 0\nregions:\n{REGION}"),
        &["line 2", "limits.keepalive_requests", "between 1 and"],
    );
}

#[test]
fn endpoint_override_from_environment() {
    let yaml = format!("regions:\n{REGION}");
    let (code, stderr, _) = check(
        &yaml,
        &[("MERIDIAN_ENDPOINT_AP_SOUTH_1", "http://127.0.0.1:9100")],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, stderr, _) = check(&yaml, &[("MERIDIAN_ENDPOINT_AP_SOUTH_1", "htp://broken")]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("MERIDIAN_ENDPOINT_AP_SOUTH_1") && stderr.contains("region 'ap-south-1'"),
        "{stderr}"
    );
    let (code, stderr, _) = check(
        &yaml,
        &[("MERIDIAN_ENDPOINT_AP_SOTH_1", "http://127.0.0.1:9100")],
    );
    assert_eq!(code, 0);
    assert!(
        stderr.contains("MERIDIAN_ENDPOINT_AP_SOTH_1 names no configured region"),
        "{stderr}"
    );
}

#[test]
fn admin_off_loopback_needs_a_token_from_the_environment() {
    let open = format!("listen:\n  admin: 0.0.0.0:9000\nregions:\n{REGION}");
    refused(
        &open,
        &["listen.admin", "not a loopback address", "admin_token_env"],
    );

    let with_env =
        format!("listen:\n  admin: 0.0.0.0:9000\n  admin_token_env: MERIDIAN_ADMIN_TOKEN\nregions:\n{REGION}");
    refused(&with_env, &["line 3", "MERIDIAN_ADMIN_TOKEN is not set"]);
    let (code, stderr, _) = check(&with_env, &[("MERIDIAN_ADMIN_TOKEN", "short")]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("at least 16 printable characters"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("short"),
        "the token is never echoed: {stderr}"
    );
    let (code, stderr, _) = check(
        &with_env,
        &[("MERIDIAN_ADMIN_TOKEN", "0123456789abcdef-ok")],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn bad_trusted_proxy_blocks() {
    for (block, why) in [
        ("10.0.0.1/8", "host bits"),
        ("10.0.0.0/40", "prefix length"),
        ("cdn", "address block"),
    ] {
        let yaml = format!("regions:\n{REGION}geo:\n  trusted_proxies: [\"{block}\"]\n");
        refused(&yaml, &["geo.trusted_proxies", why]);
    }
    let yaml = format!("regions:\n{REGION}geo:\n  untrusted_header: drop\n");
    refused(&yaml, &["untrusted_header", "ignore", "reject"]);
}

#[test]
fn a_region_credential_must_come_from_a_set_variable() {
    let yaml =
        format!("regions:\n{REGION}    credentials:\n      value_env: NO_SUCH_VAR_FOR_MERIDIAN\n");
    refused(
        &yaml,
        &[
            "region 'ap-south-1'",
            "credentials.value_env",
            "NO_SUCH_VAR_FOR_MERIDIAN is not set",
        ],
    );
    let (code, stderr, _) = check(&yaml, &[("NO_SUCH_VAR_FOR_MERIDIAN", "Bearer x-1")]);
    assert_eq!(code, 0, "{stderr}");
    let yaml =
        format!("regions:\n{REGION}    credentials:\n      header: host\n      value_env: V\n");
    let (code, stderr, _) = check(&yaml, &[("V", "x")]);
    assert_eq!(code, 1);
    assert!(stderr.contains("cannot carry a credential"), "{stderr}");
}

#[test]
fn tls_files_are_checked_at_load() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.pem");
    std::fs::write(&junk, "not a certificate").unwrap();
    let junk = junk.display().to_string();
    let https = "  - name: ap-south-1\n    provider: aws\n    endpoints: [https://127.0.0.1:8443]\n    cost_per_1k: 0.32\n    priority: 1\n";
    refused(
        &format!("regions:\n{https}    ca_file: {junk}\n"),
        &["region 'ap-south-1'", "ca_file", "holds no PEM certificate"],
    );
    refused(
        &format!("regions:\n{https}    ca_file: /no/such/ca.pem\n"),
        &["ca_file", "cannot read '/no/such/ca.pem'"],
    );
    refused(
        &format!("regions:\n{REGION}    ca_file: {junk}\n"),
        &["ca_file", "only used by https:// endpoints"],
    );
    refused(
        &format!("listen:\n  proxy_tls:\n    addr: 127.0.0.1:8443\n    cert_file: {junk}\n    key_file: {junk}\nregions:\n{REGION}"),
        &["listen.proxy_tls", "holds no PEM certificate"],
    );
    // Without a CA file, https endpoints use the system's trust store.
    let (code, stderr, _) = check(&format!("regions:\n{https}"), &[]);
    assert_eq!(code, 0, "{stderr}");
}

/// Models: a region naming an undeclared model or alias, an alias colliding with another
/// model's name, duplicates: each refused with file, line, region and field.
#[test]
fn model_declarations_are_checked() {
    let models = "models:\n  - name: llama-3.1-70b\n    aliases: [llama-70b]\n  - name: bge-m3\n";
    let region = |list: &str| {
        format!(
            "  - name: ap-south-1\n    provider: aws\n    endpoints: [http://127.0.0.1:8003]\n    cost_per_1k: 0.32\n    priority: 1\n    models:\n{list}"
        )
    };
    // A valid one passes, aliases and upstream names included.
    let ok = format!(
        "{models}regions:\n{}",
        region(
            "      - name: llama-70b\n        upstream_name: prod-llama70b\n      - name: bge-m3\n"
        )
    );
    let (code, stderr, _) = check(&ok, &[]);
    assert_eq!(code, 0, "{stderr}");

    // Line 12 is the entry `- name: mistral` (models: lines 1-4, regions: 5, the region 6-11).
    refused(
        &format!("{models}regions:\n{}", region("      - name: mistral\n")),
        &[
            "line 12",
            "region 'ap-south-1'",
            "field 'models.name'",
            "'mistral' is not a declared model or alias",
        ],
    );
    refused(
        &format!(
            "{models}regions:\n{}",
            region("      - name: llama-3.1-70b\n      - name: llama-70b\n")
        ),
        &["region 'ap-south-1'", "field 'models.name'", "listed twice"],
    );
    refused(
        &format!("{models}regions:\n{}", region("")).replace("    models:\n", "    models: []\n"),
        &[
            "line 11",
            "region 'ap-south-1'",
            "field 'models'",
            "empty list",
        ],
    );
    refused(
        "models:\n  - name: a\n  - name: b\n    aliases: [a]\n",
        &[
            "line 3",
            "field 'models.aliases'",
            "'a' is already a name or alias of model 'a'",
        ],
    );
    refused(
        "models:\n  - name: a\n    canary:\n      version: v2\n      share: 0.1\n",
        &[
            "line 2",
            "field 'models.canary.version'",
            "set pin_version too",
        ],
    );
    refused(
        "models:\n  - name: a\n    pin_version: v1\n    canary:\n      version: v2\n      share: 1.5\n",
        &["field 'models.canary.share'", "above 0 and at most 1"],
    );
    refused(
        "models:\n  - name: a\n  - name: a\n",
        &["field 'models.name'", "'a' is listed twice"],
    );
    refused(
        &format!("regions:\n{}", region("      - name: bge-m3\n")),
        &["region 'ap-south-1'", "no models are declared"],
    );
    refused(
        &format!(
            "{models}regions:\n{}",
            region("      - name: bge-m3\n        upstream_name: \"has space\"\n")
        ),
        &["region 'ap-south-1'", "field 'models.upstream_name'"],
    );
    refused(
        &format!(
            "{models}regions:\n{}",
            region("      - name: bge-m3\n        price: {input: -1, output: 2}\n")
        ),
        &[
            "region 'ap-south-1'",
            "field 'models.price.input'",
            "-1 must be a number >= 0",
        ],
    );
    refused(
        &format!(
            "currency: US$\n{models}regions:\n{}",
            region("      - name: bge-m3\n")
        ),
        &["field 'currency'", "1-16 letters or digits"],
    );
    refused(
        &format!(
            "{models}regions:\n{}",
            region("      - name: bge-m3\n        max_in_flight: 0\n")
        ),
        &["region 'ap-south-1'", "field 'models.max_in_flight'"],
    );
}

#[test]
fn region_protocol_and_probe_are_checked() {
    refused(
        &format!("regions:\n{REGION}    protocol: auto\n"),
        &["region 'ap-south-1'", "field 'protocol'", "https://"],
    );
    refused(
        &format!("regions:\n{REGION}    probe: grpc\n"),
        &["region 'ap-south-1'", "field 'probe'", "protocol: h2"],
    );
    refused(
        &format!("regions:\n{REGION}    protocol: http3\n"),
        &["region 'ap-south-1'", "field 'protocol'", "unknown variant"],
    );
    refused(
        &format!("listen:\n  h2c: yes please\nregions:\n{REGION}"),
        &["h2c"],
    );
    let (code, stderr, _) = check(
        &format!("listen:\n  h2c: true\nregions:\n{REGION}    protocol: h2\n    probe: grpc\n"),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn affinity_settings_are_checked() {
    for (body, field, says) in [
        ("  margin: -1\n", "affinity.margin", "between 0 and 10"),
        (
            "  load_factor: 0.5\n",
            "affinity.load_factor",
            "between 1 and 100",
        ),
        ("  max_keys: 0\n", "affinity.max_keys", "between 1 and"),
        ("  idle_ttl: 0s\n", "affinity.idle_ttl", "between 1s"),
        (
            "  header: \"bad header\"\n",
            "affinity.header",
            "not a valid header name",
        ),
        ("  sources: []\n", "affinity.sources", "at least one"),
        ("  sources: [user, user]\n", "affinity.sources", "twice"),
        ("  prefix_bytes: 1\n", "affinity.prefix_bytes", "between 16"),
    ] {
        refused(
            &format!("regions:\n{REGION}affinity:\n{body}"),
            &["line 8", field, says],
        );
    }
    refused(
        &format!("regions:\n{REGION}affinity:\n  sources: [cookie]\n"),
        &["affinity.sources", "unknown variant"],
    );
    let (code, stderr, _) = check(
        &format!("regions:\n{REGION}affinity:\n  enabled: false\n  sources: []\n"),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn affinity_read_body_takes_auto_or_always() {
    refused(
        &format!("regions:\n{REGION}affinity:\n  read_body: sometimes\n"),
        &["affinity.read_body", "unknown variant"],
    );
    let (code, stderr, _) = check(
        &format!("regions:\n{REGION}affinity:\n  read_body: always\n"),
        &[],
    );
    assert_eq!(code, 0, "{stderr}");
}

//! The deployment files in deploy/ stay true to the code: the Kubernetes ConfigMap holds
//! a config Meridian accepts, the Deployment probes the listener that config opens, and
//! the systemd unit and Terraform files pass the checks this machine can run.

use crate::common::meridian_bin;
use std::path::Path;
use std::process::Command;

fn deploy(path: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(path)
}

fn docs(path: &str) -> Vec<serde_yaml::Value> {
    let text = std::fs::read_to_string(deploy(path)).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect()
}

#[test]
fn kubernetes_config_is_valid_and_probes_match_it() {
    let cm = &docs("kubernetes/configmap.yaml")[0];
    let conf = cm["data"]["meridian.yaml"]
        .as_str()
        .expect("ConfigMap data");
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meridian.yaml");
    std::fs::write(&path, conf).unwrap();
    // The endpoints are cluster names; point them at loopback for the check.
    let check = |token: Option<&str>| {
        let mut cmd = Command::new(meridian_bin());
        cmd.args(["-t", "-c"]).arg(&path);
        for (region, port) in [
            ("US_EAST_1", 18001),
            ("EU_WEST_1", 18002),
            ("AP_SOUTH_1", 18003),
        ] {
            cmd.env(
                format!("MERIDIAN_ENDPOINT_{region}"),
                format!("http://127.0.0.1:{port}"),
            );
        }
        if let Some(t) = token {
            cmd.env("MERIDIAN_ADMIN_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let out = check(Some("a-token-long-enough-for-the-check"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Without the token variable the off-loopback admin listener is refused.
    assert!(!check(None).status.success());

    let parsed: serde_yaml::Value = serde_yaml::from_str(conf).unwrap();
    let proxy_port: u16 = parsed["listen"]["proxy"]
        .as_str()
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    let deployment = docs("kubernetes/deployment.yaml")
        .into_iter()
        .find(|d| d["kind"] == "Deployment")
        .unwrap();
    let c = &deployment["spec"]["template"]["spec"]["containers"][0];
    let ports = c["ports"].as_sequence().unwrap();
    let proxy = ports.iter().find(|p| p["name"] == "proxy").unwrap();
    assert_eq!(proxy["containerPort"].as_u64(), Some(u64::from(proxy_port)));
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["httpGet"]["port"], "proxy");
    assert_eq!(c["env"][0]["name"], "MERIDIAN_ADMIN_TOKEN");
    let grace = parsed["server"]["grace_period_seconds"].as_u64().unwrap();
    let k8s_grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        k8s_grace > grace,
        "Kubernetes waits longer than Meridian drains"
    );
}

#[test]
fn systemd_unit_verifies() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        println!("systemd-analyze not installed: unit not verified");
        return;
    }
    let unit = std::fs::read_to_string(deploy("systemd/meridian.service")).unwrap();
    assert!(unit.contains("ExecReload=/bin/kill -QUIT $MAINPID"));
    // The unit names the installed binary; verify it against the built one.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("meridian.service");
    std::fs::write(
        &path,
        unit.replace("/usr/local/bin/meridian", meridian_bin()),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let msgs = String::from_utf8_lossy(&out.stderr).to_string();
    assert!(out.status.success() && msgs.trim().is_empty(), "{msgs}");
}

#[test]
fn terraform_files_are_well_formed() {
    if Command::new("terraform").arg("version").output().is_err() {
        println!("terraform not installed: files not checked");
        return;
    }
    let out = Command::new("terraform")
        .args(["fmt", "-check", "-recursive"])
        .arg(deploy("terraform"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "terraform fmt: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

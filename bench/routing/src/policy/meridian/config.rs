//! The Meridian config for a run: the scenario's regions on the fleet's ports, the
//! residency rule, faster probes than the default so the outage is noticed within the
//! phase, in the multi-model scenario its models and each region's list, and every other
//! setting left at Meridian's default.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

use crate::scenario::models::MODELS;
use crate::scenario::regions::{price, REGIONS, RESIDENCY_COUNTRY};

/// YAML accepts JSON strings, and JSON quoting is safe for any path or URL.
pub fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

/// What every scenario's config starts with: the run's own files and ports, and probes
/// fast enough that an outage is noticed within its phase.
pub fn preamble(y: &mut String, dir: &Path, proxy: SocketAddr, admin: SocketAddr) {
    let dir = dir.display();
    // Writing to a String cannot fail.
    let _ = writeln!(y, "server:");
    let _ = writeln!(y, "  pid_file: {}", quoted(&format!("{dir}/meridian.pid")));
    let _ = writeln!(
        y,
        "  upgrade_sock: {}",
        quoted(&format!("{dir}/meridian_upgrade.sock"))
    );
    let _ = writeln!(y, "listen:");
    let _ = writeln!(y, "  proxy: {}", quoted(&proxy.to_string()));
    let _ = writeln!(y, "  admin: {}", quoted(&admin.to_string()));
    let _ = writeln!(y, "health_check:");
    let _ = writeln!(y, "  interval: 500ms");
    let _ = writeln!(y, "  timeout: 1s");
}

/// The residency rule every scenario has: DE requests only to regions tagged `eu`.
pub fn residency_rule(y: &mut String) {
    let _ = writeln!(y, "geo:");
    let _ = writeln!(y, "  rules:");
    let _ = writeln!(y, "    - name: eu-data-residency");
    let _ = writeln!(y, "      match: [{RESIDENCY_COUNTRY}]");
    let _ = writeln!(y, "      allow: [\"tag:eu\"]");
}

pub fn render(
    dir: &Path,
    proxy: SocketAddr,
    admin: SocketAddr,
    urls: &[String],
    models: bool,
) -> String {
    let mut y = String::new();
    preamble(&mut y, dir, proxy, admin);
    if models {
        let _ = writeln!(y, "models:");
        for m in &MODELS {
            let _ = writeln!(y, "  - name: {}", m.name);
            if !m.aliases.is_empty() {
                let _ = writeln!(y, "    aliases: [{}]", m.aliases.join(", "));
            }
        }
    }
    let _ = writeln!(y, "regions:");
    for (i, (def, url)) in REGIONS.iter().zip(urls).enumerate() {
        let _ = writeln!(y, "  - name: {}", def.name);
        let _ = writeln!(y, "    provider: {}", def.provider);
        let _ = writeln!(y, "    endpoints: [{}]", quoted(url));
        let _ = writeln!(y, "    cost_per_1k: {}", def.cost_per_1k);
        let _ = writeln!(y, "    priority: {}", def.priority);
        if !def.tags.is_empty() {
            let _ = writeln!(y, "    tags: [{}]", def.tags.join(", "));
        }
        if models {
            let _ = writeln!(y, "    models:");
            for m in MODELS.iter() {
                let Some(own) = m.upstream_name(i) else {
                    continue;
                };
                let _ = writeln!(y, "      - name: {}", m.name);
                if own != m.name {
                    let _ = writeln!(y, "        upstream_name: {own}");
                }
                // The harness prices the same tokens with the same figures.
                let p = price(i);
                let _ = writeln!(
                    y,
                    "        price: {{input: {}, output: {}}}",
                    p.input_per_1m, p.output_per_1m
                );
            }
        }
    }
    residency_rule(&mut y);
    y
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_every_region_and_the_rule() {
        let urls: Vec<String> = (0..REGIONS.len())
            .map(|i| format!("http://127.0.0.1:{}", 9100 + i))
            .collect();
        let y = render(
            Path::new("/tmp/x"),
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
            &urls,
            false,
        );
        for (def, url) in REGIONS.iter().zip(&urls) {
            assert!(y.contains(&format!("name: {}", def.name)));
            assert!(y.contains(url.as_str()));
        }
        assert!(y.contains("tags: [eu]"));
        assert!(y.contains("match: [DE]"));
        assert!(y.contains("\"/tmp/x/meridian.pid\""));
        assert!(!y.contains("models:"));
    }

    #[test]
    fn declares_the_models_and_each_regions_list() {
        let urls: Vec<String> = (0..REGIONS.len())
            .map(|i| format!("http://127.0.0.1:{}", 9100 + i))
            .collect();
        let y = render(
            Path::new("/tmp/x"),
            "127.0.0.1:1".parse().expect("addr"),
            "127.0.0.1:2".parse().expect("addr"),
            &urls,
            true,
        );
        assert!(y.contains(
            "models:\n  - name: llama-3.1-70b\n    aliases: [llama-70b]\n  - name: qwen-7b\n"
        ));
        assert!(
            y.contains("      - name: llama-3.1-70b\n        upstream_name: llama70b-us-east-1\n")
        );
        // ap-south-1 serves the small model only, under the fleet's name.
        let ap = y.split("- name: ap-south-1").nth(1).expect("ap");
        let ap = ap.split("\n  - name: ").next().expect("block");
        assert!(ap
            .ends_with("models:\n      - name: qwen-7b\n        price: {input: 320, output: 320}"));
        assert!(!ap.contains("llama"));
    }
}

//! The Meridian config for a run: the scenario's regions on the fleet's ports, the
//! residency rule, faster probes than the default so the outage is noticed within the
//! phase, and every other setting left at Meridian's default.

use std::fmt::Write;
use std::net::SocketAddr;
use std::path::Path;

use crate::scenario::regions::{REGIONS, RESIDENCY_COUNTRY};

/// YAML accepts JSON strings, and JSON quoting is safe for any path or URL.
fn quoted(s: &str) -> String {
    serde_json::Value::from(s).to_string()
}

pub fn render(dir: &Path, proxy: SocketAddr, admin: SocketAddr, urls: &[String]) -> String {
    let dir = dir.display();
    let mut y = String::new();
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
    let _ = writeln!(y, "regions:");
    for (def, url) in REGIONS.iter().zip(urls) {
        let _ = writeln!(y, "  - name: {}", def.name);
        let _ = writeln!(y, "    provider: {}", def.provider);
        let _ = writeln!(y, "    endpoints: [{}]", quoted(url));
        let _ = writeln!(y, "    cost_per_1k: {}", def.cost_per_1k);
        let _ = writeln!(y, "    priority: {}", def.priority);
        if !def.tags.is_empty() {
            let _ = writeln!(y, "    tags: [{}]", def.tags.join(", "));
        }
    }
    let _ = writeln!(y, "geo:");
    let _ = writeln!(y, "  rules:");
    let _ = writeln!(y, "    - name: eu-data-residency");
    let _ = writeln!(y, "      match: [{RESIDENCY_COUNTRY}]");
    let _ = writeln!(y, "      allow: [\"tag:eu\"]");
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
        );
        for (def, url) in REGIONS.iter().zip(&urls) {
            assert!(y.contains(&format!("name: {}", def.name)));
            assert!(y.contains(url.as_str()));
        }
        assert!(y.contains("tags: [eu]"));
        assert!(y.contains("match: [DE]"));
        assert!(y.contains("\"/tmp/x/meridian.pid\""));
    }
}

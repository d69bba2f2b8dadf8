//! What one routing decision costs as the fleet grows: the ranking plus the walk through
//! the per-request checks (`routing::pick`, what `upstream_peer` calls), at 4, 64 and
//! 1,024 endpoints.
//!
//! `cargo bench --bench selection`

use criterion::{black_box, criterion_group, criterion_main, BenchmarkId, Criterion};
use meridian::config::Config;
use meridian::regions::{build_table, RegionMask};
use meridian::routing::{pick, Filter, Intent, Ranker, Weights};
use std::fmt::Write;
use std::time::{Duration, Instant};

/// A config with `endpoints` loopback endpoints spread over at most 16 regions.
fn config(endpoints: usize) -> Config {
    let regions = endpoints.min(16);
    let mut yaml = String::from("regions:\n");
    for r in 0..regions {
        let _ = writeln!(yaml, "  - name: region-{r}\n    provider: aws\n    cost_per_1k: 0.{:02}\n    priority: {}\n    endpoints:", 30 + r, 1 + r % 3);
        for e in (r..endpoints).step_by(regions) {
            let _ = writeln!(
                yaml,
                "      - http://127.0.0.{}:{}",
                1 + e / 60000,
                1024 + e % 60000
            );
        }
    }
    Config::load_str(&yaml, "bench").expect("bench config is valid")
}

fn decide(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    for endpoints in [4usize, 64, 1024] {
        let config = config(endpoints);
        let regions = build_table(&config);
        let ranker = Ranker::new(&regions, Weights::from(&config.selection));
        let now = Instant::now();
        for (i, r) in regions.iter().enumerate() {
            r.rtt.observe(Duration::from_millis(40 + i as u64 * 7), now);
        }
        let filter = Filter {
            allowed: RegionMask::all(regions.len()),
            tried: RegionMask::EMPTY,
            model: None,
            version: None,
            gpu_saturation: 0.95,
            allow_saturated: false,
        };
        group.bench_with_input(
            BenchmarkId::from_parameter(endpoints),
            &endpoints,
            |b, _| {
                b.iter(|| {
                    let mut ranked = ranker.ranked(Intent::default());
                    let chosen = pick(&mut ranked, &regions, &filter, Instant::now()).chosen;
                    black_box(chosen)
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, decide);
criterion_main!(benches);

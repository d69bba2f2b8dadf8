//! The five regions every policy runs against. Like Meridian's default config, but with
//! heterogeneous capacity so that routing everything to the cheapest region saturates it.

pub struct RegionDef {
    pub name: &'static str,
    pub provider: &'static str,
    pub cost_per_1k: f64,
    pub priority: u32,
    /// Network latency, paid by every request (probes too) before anything else.
    pub latency_ms: u64,
    /// Time to first token once a capacity slot is free.
    pub work_ms: u64,
    /// Requests worked on at once; the rest queue.
    pub capacity: u32,
    pub tags: &'static [&'static str],
}

/// Per-token delay in every region.
pub const TOKEN_MS: u64 = 5;

/// The region killed at the start of the outage phase: the cheapest one, so a policy that
/// leans on price is hit hardest.
pub const KILLED: &str = "ap-south-1";

/// The only region a request with the residency country may be served by.
pub const RESIDENCY_REGION: &str = "eu-west-1";

/// The country that triggers the residency rule.
pub const RESIDENCY_COUNTRY: &str = "DE";

pub const REGIONS: [RegionDef; 5] = [
    RegionDef {
        name: "ap-south-1",
        provider: "aws",
        cost_per_1k: 0.32,
        priority: 1,
        latency_ms: 50,
        work_ms: 80,
        capacity: 6,
        tags: &[],
    },
    RegionDef {
        name: "me-south-1",
        provider: "aws",
        cost_per_1k: 0.35,
        priority: 1,
        latency_ms: 60,
        work_ms: 80,
        capacity: 6,
        tags: &[],
    },
    RegionDef {
        name: "brazilsouth",
        provider: "azure",
        cost_per_1k: 0.38,
        priority: 2,
        latency_ms: 80,
        work_ms: 80,
        capacity: 12,
        tags: &[],
    },
    RegionDef {
        name: "eu-west-1",
        provider: "aws",
        cost_per_1k: 0.45,
        priority: 2,
        latency_ms: 70,
        work_ms: 80,
        capacity: 12,
        tags: &["eu"],
    },
    RegionDef {
        name: "us-east-1",
        provider: "aws",
        cost_per_1k: 0.50,
        priority: 3,
        latency_ms: 100,
        work_ms: 80,
        capacity: 24,
        tags: &[],
    },
];

/// What a region charges per 1M tokens, input and output.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Price {
    pub input_per_1m: f64,
    pub output_per_1m: f64,
}

impl Price {
    /// What `prompt` input and `completion` output tokens cost, as Meridian prices them:
    /// `(input x price.input + output x price.output) / 10^6`.
    pub fn cost(self, prompt: u64, completion: u64) -> f64 {
        (prompt as f64 * self.input_per_1m + completion as f64 * self.output_per_1m) / 1e6
    }
}

/// The price of every token in `region` (an index into `REGIONS`): its `cost_per_1k` per
/// 1,000 tokens, input and output alike. Meridian's config says the same, as
/// `cost_per_1k` (which prices every token when a model has no price) and, in the
/// multi-model scenario, as each model's `price`, so the harness and Meridian price the
/// same tokens the same way.
pub fn price(region: usize) -> Price {
    let per_1m = REGIONS[region].cost_per_1k * 1000.0;
    Price {
        input_per_1m: per_1m,
        output_per_1m: per_1m,
    }
}

/// How long one request holds a capacity slot in `region`: the time to first token and
/// then `token_ms` per token (a stream's chunks are `token_ms` apart and it ends one
/// `token_ms` after its last, so a stream of `max_tokens` holds its slot just as long).
pub fn service_ms(region: usize, max_tokens: u32) -> u64 {
    REGIONS[region].work_ms + u64::from(max_tokens) * TOKEN_MS
}

/// Index of a region by name.
pub fn index_of(name: &str) -> Option<usize> {
    REGIONS.iter().position(|r| r.name == name)
}

/// Regions a request may use: residency requests only the residency region, and a request
/// naming a model only the regions serving it. Baselines get this filter for free, as a
/// client that knows the fleet would have it, so the comparison is about routing quality,
/// not about geo rules or the model catalogue.
pub fn allowed(residency: bool, model: Option<usize>) -> Vec<usize> {
    (0..REGIONS.len())
        .filter(|&r| !residency || REGIONS[r].name == RESIDENCY_REGION)
        .filter(|&r| super::models::serves(model, r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_regions_exist() {
        assert!(index_of(KILLED).is_some());
        let eu = index_of(RESIDENCY_REGION).expect("eu");
        assert_eq!(allowed(true, None), vec![eu]);
        assert_eq!(allowed(false, None).len(), REGIONS.len());
        assert_eq!(allowed(true, Some(super::super::models::BIG)), vec![eu]);
        assert_eq!(
            allowed(false, Some(super::super::models::BIG)),
            super::super::models::regions_serving(super::super::models::BIG)
        );
        assert!(REGIONS
            .iter()
            .find(|r| r.name == RESIDENCY_REGION)
            .expect("eu")
            .tags
            .contains(&"eu"));
    }

    #[test]
    fn prices_say_cost_per_1k_for_every_token() {
        let ap = index_of("ap-south-1").expect("ap");
        let p = price(ap);
        assert!((p.cost(13, 16) - 0.32 * 29.0 / 1000.0).abs() < 1e-15);
        assert_eq!(service_ms(ap, 16), 160);
    }

    #[test]
    fn killed_region_is_the_cheapest() {
        let cheapest = REGIONS
            .iter()
            .min_by(|a, b| {
                (a.priority, a.cost_per_1k)
                    .partial_cmp(&(b.priority, b.cost_per_1k))
                    .expect("finite")
            })
            .expect("regions");
        assert_eq!(cheapest.name, KILLED);
    }
}

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
    /// Concurrent inference slots; the rest queue.
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

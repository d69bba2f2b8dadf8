//! The models of the multi-model scenario: a big model that only the big-GPU regions serve,
//! each under its own name, and a small one every region serves. The default scenario
//! names no model at all.

use super::regions::REGIONS;

/// Index of the big model in [`MODELS`].
pub const BIG: usize = 0;
/// Index of the small model in [`MODELS`].
pub const SMALL: usize = 1;

pub struct ModelDef {
    /// The fleet-wide name: what a client of Meridian sends, and what Meridian declares.
    pub name: &'static str,
    /// Other names Meridian's config declares for it (the client never sends them).
    pub aliases: &'static [&'static str],
    /// The regions serving it and the name each of them knows it by.
    pub served: &'static [(&'static str, &'static str)],
}

pub const MODELS: [ModelDef; 2] = [
    ModelDef {
        name: "llama-3.1-70b",
        aliases: &["llama-70b"],
        served: &[
            ("brazilsouth", "llama70b-brazilsouth"),
            ("eu-west-1", "llama70b-eu-west-1"),
            ("us-east-1", "llama70b-us-east-1"),
        ],
    },
    ModelDef {
        name: "qwen-7b",
        aliases: &[],
        served: &[
            ("ap-south-1", "qwen-7b"),
            ("me-south-1", "qwen-7b"),
            ("brazilsouth", "qwen-7b"),
            ("eu-west-1", "qwen-7b"),
            ("us-east-1", "qwen-7b"),
        ],
    },
];

impl ModelDef {
    /// The name `region` (an index into `REGIONS`) knows this model by, when it serves it.
    pub fn upstream_name(&self, region: usize) -> Option<&'static str> {
        let name = REGIONS.get(region)?.name;
        self.served
            .iter()
            .find(|(r, _)| *r == name)
            .map(|(_, own)| *own)
    }

    pub fn serves(&self, region: usize) -> bool {
        self.upstream_name(region).is_some()
    }

    /// Whether `name` means this model: its fleet name, an alias or any region's name.
    fn is_called(&self, name: &str) -> bool {
        self.name == name
            || self.aliases.contains(&name)
            || self.served.iter().any(|(_, own)| *own == name)
    }
}

/// Whether `model` (an index into `MODELS`, `None` for the default scenario's requests)
/// may be sent to `region` at all.
pub fn serves(model: Option<usize>, region: usize) -> bool {
    model.is_none_or(|m| MODELS[m].serves(region))
}

/// The `(own name, version)` list a region's mock serves in the multi-model scenario.
pub fn served_by(region: usize) -> Vec<(&'static str, &'static str)> {
    MODELS
        .iter()
        .filter_map(|m| m.upstream_name(region))
        .map(|own| (own, "v1"))
        .collect()
}

/// Which model a name a region received stands for, whoever's name it is.
pub fn model_of(name: &str) -> Option<usize> {
    MODELS.iter().position(|m| m.is_called(name))
}

/// What a region received under one name, judged against what it serves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// Its own name for a model it serves.
    Served(usize),
    /// A model the region does not serve at all.
    NotServedHere(usize),
    /// A model it serves, but under another name (a fleet name, another region's): the
    /// region refuses it like a model it has never heard of.
    WrongName(usize),
    /// A name of no model in the scenario (or none at all).
    Unknown,
}

pub fn judge(region: usize, name: &str) -> Received {
    let Some(m) = model_of(name) else {
        return Received::Unknown;
    };
    match MODELS[m].upstream_name(region) {
        None => Received::NotServedHere(m),
        Some(own) if own == name => Received::Served(m),
        Some(_) => Received::WrongName(m),
    }
}

/// The region indices serving `model`, in table order.
#[cfg(test)]
pub fn regions_serving(model: usize) -> Vec<usize> {
    (0..REGIONS.len())
        .filter(|&r| MODELS[model].serves(r))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::regions::{index_of, KILLED, RESIDENCY_REGION};

    #[test]
    fn the_table_is_consistent() {
        for m in &MODELS {
            assert!(
                m.served.iter().all(|(r, _)| index_of(r).is_some()),
                "{}",
                m.name
            );
        }
        let eu = index_of(RESIDENCY_REGION).expect("eu");
        // Residency requests must be servable for either model.
        assert!(MODELS.iter().all(|m| m.serves(eu)));
        // The small model everywhere; the big one not in the cheap tier.
        assert_eq!(regions_serving(SMALL).len(), REGIONS.len());
        let killed = index_of(KILLED).expect("killed");
        assert!(!MODELS[BIG].serves(killed));
        assert_eq!(served_by(killed), vec![("qwen-7b", "v1")]);
    }

    #[test]
    fn received_names_are_judged_per_region() {
        let us = index_of("us-east-1").expect("us");
        let ap = index_of("ap-south-1").expect("ap");
        assert_eq!(judge(us, "llama70b-us-east-1"), Received::Served(BIG));
        assert_eq!(judge(us, "llama70b-eu-west-1"), Received::WrongName(BIG));
        assert_eq!(judge(us, "llama-3.1-70b"), Received::WrongName(BIG));
        assert_eq!(
            judge(ap, "llama70b-us-east-1"),
            Received::NotServedHere(BIG)
        );
        assert_eq!(judge(ap, "qwen-7b"), Received::Served(SMALL));
        assert_eq!(judge(ap, ""), Received::Unknown);
        assert_eq!(MODELS[BIG].upstream_name(ap), None);
        assert!(serves(None, ap));
    }
}

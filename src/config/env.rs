//! Endpoint overrides from the environment, so one file serves local and real deployments:
//! `MERIDIAN_ENDPOINT_AP_SOUTH_1=http://10.0.0.5:8080[,http://10.0.0.6:8080]` replaces the
//! endpoints of region `ap-south-1`.

use super::file::RegionFile;

pub const PREFIX: &str = "MERIDIAN_ENDPOINT_";

/// The variable that overrides a region: upper case, every non-alphanumeric as `_`.
pub fn var_name(region: &str) -> String {
    let suffix: String = region
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_uppercase()
            } else {
                '_'
            }
        })
        .collect();
    format!("{PREFIX}{suffix}")
}

/// Replaces endpoints of regions named by a variable; returns warnings for variables that
/// name no region (most likely a typo the operator wants to hear about).
pub fn apply(regions: &mut [RegionFile], vars: &[(String, String)]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (key, value) in vars.iter().filter(|(k, _)| k.starts_with(PREFIX)) {
        let mut matched = false;
        for region in regions.iter_mut().filter(|r| &var_name(&r.name) == key) {
            region.endpoints = value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect();
            matched = true;
        }
        if !matched {
            warnings.push(format!(
                "environment variable {key} names no configured region"
            ));
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_region() {
        assert_eq!(var_name("ap-south-1"), "MERIDIAN_ENDPOINT_AP_SOUTH_1");
        assert_eq!(var_name("brazilsouth"), "MERIDIAN_ENDPOINT_BRAZILSOUTH");
    }
}

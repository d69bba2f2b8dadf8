//! Meridian's prompt-cache affinity as a run wants it: the default config's (on, unless the
//! file says otherwise) or turned off.

/// What Meridian's config says about `affinity:`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Affinity {
    /// As the default config has it (`conf/meridian.yaml` has no `affinity:` section, so on,
    /// every key source read).
    Default,
    /// `affinity.enabled: false`: no key is looked for, and without models the body
    /// streams through unread.
    Off,
    /// On, with `affinity.read_body: always`: without models, model API bodies are held
    /// and read for their keys alone (by default, `auto`, they stream through unread).
    BodyAlways,
}

impl Affinity {
    pub fn name(self) -> &'static str {
        match self {
            Affinity::Default => "affinity on",
            Affinity::Off => "affinity off",
            Affinity::BodyAlways => "affinity on, read_body: always",
        }
    }
}

/// `text` with `affinity.enabled: false` when `affinity` is `Off`, or `read_body: always`
/// when it is `BodyAlways` (the rest of an `affinity:` section it has kept); unchanged for
/// `Default`.
pub fn with_affinity(text: &str, affinity: Affinity) -> Result<String, String> {
    use serde_yaml::{Mapping, Value};
    if affinity == Affinity::Default {
        return Ok(text.to_string());
    }
    let mut v: Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let map = v.as_mapping_mut().ok_or("not a YAML mapping")?;
    let section = map
        .entry("affinity".into())
        .or_insert_with(|| Value::Mapping(Mapping::new()));
    if section.is_null() {
        *section = Value::Mapping(Mapping::new());
    }
    let section = section
        .as_mapping_mut()
        .ok_or("`affinity` is not a mapping")?;
    match affinity {
        Affinity::Off => section.insert("enabled".into(), false.into()),
        _ => section.insert("read_body".into(), "always".into()),
    };
    serde_yaml::to_string(&v).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> serde_yaml::Value {
        serde_yaml::from_str(text).expect("yaml")
    }

    #[test]
    fn off_adds_the_section_or_turns_the_existing_one_off() {
        let plain = "listen:\n  proxy: 127.0.0.1:8000\n";
        assert_eq!(
            with_affinity(plain, Affinity::Default).expect("unchanged"),
            plain
        );
        let v = yaml(&with_affinity(plain, Affinity::Off).expect("off"));
        assert_eq!(v["affinity"]["enabled"], false);
        assert_eq!(v["listen"]["proxy"], "127.0.0.1:8000");
        let set = "affinity:\n  enabled: true\n  header: x-conversation\n";
        let v = yaml(&with_affinity(set, Affinity::Off).expect("off"));
        assert_eq!(v["affinity"]["enabled"], false);
        assert_eq!(v["affinity"]["header"], "x-conversation");
        assert!(with_affinity("affinity: [1]\n", Affinity::Off).is_err());
    }
}

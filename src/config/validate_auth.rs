//! The `auth:` section and its keys file, checked like the rest of the config: a bad key
//! is refused with the keys file, line, key and field.

use super::auth::{parse_sha256, Auth, ClientKey};
use super::error::{field_line, find_line};
use super::file::{AuthFile, KeysFile};
use super::validate::{is_token, Validator};
use super::{ConfigError, Listen, Models, RegionConfig, Resolution};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// At most this many keys: each request compares against all of them.
const MAX_KEYS: usize = 10_000;

impl Validator<'_> {
    pub(super) fn auth(
        &self,
        auth: Option<&AuthFile>,
        models: &Models,
        regions: &[RegionConfig],
        listen: &Listen,
        vars: &[(String, String)],
    ) -> Result<Auth, ConfigError> {
        let Some(a) = auth else {
            return self.open_relay_check(listen, regions).map(|()| Auth::None);
        };
        if a.open {
            if a.keys_file.is_some() || !a.env_keys.is_empty() {
                return Err(self.top(
                    "auth.open",
                    "open: true means no client keys; remove keys_file and env_keys, or open",
                ));
            }
            return Ok(Auth::Open);
        }
        if a.keys_file.is_none() && a.env_keys.is_empty() {
            return Err(self.top(
                "auth",
                "name a keys_file or env_keys (or set open: true to run without client keys)",
            ));
        }
        let mut keys: Vec<ClientKey> = Vec::new();
        if let Some(file) = &a.keys_file {
            let path = self.relative(file);
            if self.resolution != Resolution::Offline {
                let shown = path.display().to_string();
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| self.top("auth.keys_file", format!("cannot read {shown}: {e}")))?;
                let parsed: KeysFile = serde_yaml::from_str(&text).map_err(|e| {
                    ConfigError::new(&shown, strip_at(&e.to_string()))
                        .line(e.location().map(|l| l.line()))
                })?;
                for k in &parsed.keys {
                    let err = |field: &str, msg: String| {
                        let name_line = find_line(&text, None, |l| {
                            l.strip_prefix("name:").is_some_and(|v| {
                                v.trim().trim_matches(|c| c == '"' || c == '\'') == k.name
                            })
                        });
                        let line = field_line(&text, name_line, field).or(name_line);
                        ConfigError::new(&shown, msg)
                            .line(line)
                            .key(&k.name)
                            .field(field)
                    };
                    let sha256 = parse_sha256(&k.sha256).ok_or_else(|| {
                        err(
                            "sha256",
                            "must be the 64 hex digits of the key's SHA-256 (printf %s \"$KEY\" | sha256sum)".into(),
                        )
                    })?;
                    keys.push(
                        self.key(&k.name, sha256, &k.models, &k.allow, models, regions, &err)?,
                    );
                }
            }
        }
        for (i, k) in a.env_keys.iter().enumerate() {
            let err = |field: &str, msg: String| {
                self.top(
                    &format!("auth.env_keys.{field}"),
                    format!("key '{}' (entry {}): {msg}", k.name, i + 1),
                )
            };
            let value = vars
                .iter()
                .find(|(name, _)| *name == k.value_env)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    err(
                        "value_env",
                        format!("environment variable {} is not set or empty", k.value_env),
                    )
                })?;
            let sha256: [u8; 32] = Sha256::digest(value.as_bytes()).into();
            keys.push(self.key(&k.name, sha256, &k.models, &k.allow, models, regions, &err)?);
        }
        if keys.len() > MAX_KEYS {
            return Err(self.top("auth", format!("at most {MAX_KEYS} keys are supported")));
        }
        for (i, k) in keys.iter().enumerate() {
            if let Some(other) = keys[..i].iter().find(|o| o.name == k.name) {
                return Err(self.top("auth", format!("key name '{}' is used twice", other.name)));
            }
            if let Some(other) = keys[..i].iter().find(|o| o.sha256 == k.sha256) {
                return Err(self.top(
                    "auth",
                    format!("keys '{}' and '{}' are the same key", other.name, k.name),
                ));
            }
        }
        Ok(Auth::Keys(keys))
    }

    #[allow(clippy::too_many_arguments)]
    fn key(
        &self,
        name: &str,
        sha256: [u8; 32],
        model_names: &Option<Vec<String>>,
        allow: &Option<Vec<String>>,
        models: &Models,
        regions: &[RegionConfig],
        err: &dyn Fn(&str, String) -> ConfigError,
    ) -> Result<ClientKey, ConfigError> {
        if !is_token(name) {
            return Err(err(
                "name",
                format!("'{name}' must be 1-63 characters of a-z, A-Z, 0-9, '-', '_', '.'"),
            ));
        }
        let models = match model_names {
            None => None,
            Some(list) => {
                if list.is_empty() {
                    return Err(err(
                        "models",
                        "an empty list allows nothing; omit it for any model".into(),
                    ));
                }
                let mut ids = Vec::with_capacity(list.len());
                for m in list {
                    let id = models.resolve(m).ok_or_else(|| {
                        err("models", format!("'{m}' is not a declared model or alias"))
                    })?;
                    ids.push(id);
                }
                Some(ids)
            }
        };
        let allow = match allow {
            None => None,
            Some(list) if list.is_empty() => {
                return Err(err(
                    "allow",
                    "an empty list allows no region; omit it for no bound".into(),
                ))
            }
            Some(list) => Some(self.allowed(list, regions).map_err(|e| err("allow", e))?),
        };
        Ok(ClientKey {
            name: name.to_string(),
            sha256,
            models,
            allow,
        })
    }

    /// Off loopback, with regions that inject credentials, a proxy without client keys is
    /// an open relay for those credentials: refused unless `auth: {open: true}` says so.
    fn open_relay_check(
        &self,
        listen: &Listen,
        regions: &[RegionConfig],
    ) -> Result<(), ConfigError> {
        let exposed = std::iter::once(listen.proxy)
            .chain(listen.proxy_tls.as_ref().map(|t| t.addr))
            .find(|a| !a.ip().is_loopback());
        let injecting = regions.iter().find(|r| r.credential.is_some());
        match (exposed, injecting) {
            (Some(addr), Some(r)) => Err(self.top(
                "auth",
                format!(
                    "the proxy listens on {addr}, off loopback, and region '{}' injects credentials: anyone who can reach it would spend them. Add client keys (auth: {{keys_file: keys.yaml}}), or run open deliberately (auth: {{open: true}})",
                    r.name
                ),
            )),
            _ => Ok(()),
        }
    }

    /// A path from the config, relative to the config file's folder.
    fn relative(&self, file: &str) -> PathBuf {
        let p = Path::new(file);
        if p.is_absolute() {
            return p.to_path_buf();
        }
        match Path::new(self.source).parent() {
            Some(dir) if !self.source.starts_with('<') => dir.join(p),
            _ => p.to_path_buf(),
        }
    }
}

fn strip_at(msg: &str) -> String {
    match msg.find(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

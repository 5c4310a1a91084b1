//! The raw key/value pairs settings are read from (`heimdall.toml`, then
//! the environment over it), where each came from, and the typed reads of
//! one value that name the setting when it is bad.

use std::collections::HashMap;
use std::path::Path;

use secrecy::SecretString;
use url::Url;

use super::{invalid, SettingsError};

/// Raw key/value pairs from the file and the environment.
#[derive(Debug, Default, Clone)]
pub struct Source {
    pub(super) values: HashMap<String, String>,
    /// The keys whose value came from the settings file (the environment did not
    /// override them).
    from_file: std::collections::HashSet<String>,
}

/// Where a setting's configured value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueSource {
    /// Nothing set it: Heimdall's default.
    Default,
    /// An environment variable.
    Environment,
    /// `heimdall.toml` (or the file `HEIMDALL_CONFIG` names).
    File,
}

impl ValueSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ValueSource::Default => "default",
            ValueSource::Environment => "environment",
            ValueSource::File => "settings file",
        }
    }
}

impl Source {
    /// Read `heimdall.toml` (or the file named by `HEIMDALL_CONFIG`) and then
    /// the process environment, which wins.
    pub fn from_env() -> Result<Self, SettingsError> {
        let mut source = Source::default();
        let explicit = std::env::var("HEIMDALL_CONFIG").ok();
        let path = explicit.clone().unwrap_or_else(|| "heimdall.toml".into());
        if Path::new(&path).exists() {
            source.merge_toml_file(Path::new(&path))?;
        } else if let Some(p) = explicit {
            return Err(SettingsError::File {
                path: p,
                message: "file not found".into(),
            });
        }
        source.overlay_environment(std::env::vars());
        Ok(source)
    }

    /// The environment's variables, which win over the file's.
    pub fn overlay_environment(&mut self, vars: impl IntoIterator<Item = (String, String)>) {
        for (k, v) in vars {
            self.from_file.remove(&k);
            self.values.insert(k, v);
        }
    }

    /// Where `name`'s value comes from (a blank value counts as unset).
    pub fn origin(&self, name: &str) -> ValueSource {
        match self.get(name) {
            None => ValueSource::Default,
            Some(_) if self.from_file.contains(name) => ValueSource::File,
            Some(_) => ValueSource::Environment,
        }
    }

    /// Pairs given directly (tests, tools).
    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Source {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            from_file: Default::default(),
        }
    }

    fn merge_toml_file(&mut self, path: &Path) -> Result<(), SettingsError> {
        let text = std::fs::read_to_string(path).map_err(|e| SettingsError::File {
            path: path.display().to_string(),
            message: e.to_string(),
        })?;
        self.merge_toml(&text)
            .map_err(|message| SettingsError::File {
                path: path.display().to_string(),
                message,
            })
    }

    /// Keys may be written as the variable (`HEIMDALL_BIND`) or lower case.
    pub fn merge_toml(&mut self, text: &str) -> Result<(), String> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| e.to_string())?;
        for (k, v) in table {
            let value = match v {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Float(f) => f.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Array(items) => items
                    .iter()
                    .map(|i| match i {
                        toml::Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect::<Vec<_>>()
                    .join(","),
                other => return Err(format!("{k}: unsupported value {other}")),
            };
            self.from_file.insert(k.to_uppercase());
            self.values.insert(k.to_uppercase(), value);
        }
        Ok(())
    }

    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.values
            .get(name)
            .map(|s| s.trim())
            .filter(|s| !s.is_empty())
    }

    pub(super) fn secret(&self, name: &str) -> Option<SecretString> {
        self.get(name).map(|s| SecretString::from(s.to_string()))
    }

    pub(super) fn parse<T: std::str::FromStr>(
        &self,
        name: &str,
        default: T,
    ) -> Result<T, SettingsError>
    where
        T::Err: std::fmt::Display,
    {
        match self.get(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|e| invalid(name, format!("'{v}' is not valid: {e}"))),
        }
    }

    pub(super) fn bool(&self, name: &str, default: bool) -> Result<bool, SettingsError> {
        match self.get(name).map(|s| s.to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
            Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
            Some(v) => Err(invalid(name, format!("'{v}' is not true or false"))),
        }
    }

    pub(super) fn url(&self, name: &str) -> Result<Option<Url>, SettingsError> {
        match self.get(name) {
            None => Ok(None),
            Some(v) => {
                let url =
                    Url::parse(v).map_err(|e| invalid(name, format!("'{v}' is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https") {
                    return Err(invalid(name, "must be an http or https URL"));
                }
                Ok(Some(url))
            }
        }
    }

    pub(super) fn url_or(&self, name: &str, default: &str) -> Result<Url, SettingsError> {
        Ok(self
            .url(name)?
            .unwrap_or_else(|| Url::parse(default).expect("default URLs are valid")))
    }
}

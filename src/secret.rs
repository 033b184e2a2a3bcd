//! Secrets: passwords come from an environment variable or a file, are held
//! in a type whose `Debug`/`Display` never show the value, and files that
//! hold them are written with mode 0600.

use serde::Deserialize;
use std::fmt;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// Where a secret comes from, as written in a topology file:
/// `password_env = "VAR"` or `password_file = "path"` (relative to the file).
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SecretSource {
    pub password_env: Option<String>,
    pub password_file: Option<PathBuf>,
}

impl SecretSource {
    pub fn is_set(&self) -> bool {
        self.password_env.is_some() || self.password_file.is_some()
    }

    /// Read the secret. `base` is the directory relative file paths are
    /// resolved against (the topology file's directory). The error names the
    /// variable or file but never a value.
    pub fn resolve(&self, base: &Path) -> anyhow::Result<Option<Secret>> {
        if let Some(var) = &self.password_env {
            return match std::env::var(var) {
                Ok(v) if !v.is_empty() => Ok(Some(Secret(v))),
                Ok(_) => anyhow::bail!("environment variable {var} (password_env) is empty"),
                Err(_) => anyhow::bail!(
                    "environment variable {var} (password_env) is not set; export it or use password_file"
                ),
            };
        }
        if let Some(file) = &self.password_file {
            let path = if file.is_absolute() {
                file.clone()
            } else {
                base.join(file)
            };
            let text = std::fs::read_to_string(&path).map_err(|e| {
                anyhow::anyhow!("cannot read password_file {}: {e}", path.display())
            })?;
            let v = text.trim_end_matches(['\n', '\r']).to_string();
            if v.is_empty() {
                anyhow::bail!("password_file {} is empty", path.display());
            }
            return Ok(Some(Secret(v)));
        }
        Ok(None)
    }
}

/// A secret value. Formatting it prints `***`; use [`Secret::expose`] only
/// where the value must go over the wire or into a 0600 file.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(v: impl Into<String>) -> Self {
        Secret(v.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// A random alphanumeric secret of `len` characters.
    pub fn generate(len: usize) -> Self {
        use rand::distr::{Alphanumeric, SampleString};
        Secret(Alphanumeric.sample_string(&mut rand::rng(), len))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}
impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Write `contents` to `path` with mode 0600 (created or truncated; the mode
/// is forced even when the file already existed).
pub fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    f.write_all(contents)?;
    f.sync_all()
}

/// Load a secret stored in the state dir, or generate and store one (0600).
pub fn load_or_generate(path: &Path, len: usize) -> std::io::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Secret(s.trim().to_string())),
        _ => {
            let s = Secret::generate(len);
            write_private(path, s.expose().as_bytes())?;
            Ok(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn secrets_never_format_their_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }

    #[test]
    fn files_are_private_and_env_errors_name_the_variable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("pw");
        write_private(&p, b"s3cret\n").unwrap();
        assert_eq!(
            std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let src = SecretSource {
            password_env: None,
            password_file: Some("pw".into()),
        };
        assert_eq!(src.resolve(dir.path()).unwrap().unwrap().expose(), "s3cret");
        let src = SecretSource {
            password_env: Some("DATATIER_TEST_SURELY_UNSET".into()),
            password_file: None,
        };
        let e = src.resolve(dir.path()).unwrap_err().to_string();
        assert!(e.contains("DATATIER_TEST_SURELY_UNSET"), "{e}");
        let g = load_or_generate(&dir.path().join("gen"), 24).unwrap();
        assert_eq!(g.expose().len(), 24);
        assert_eq!(load_or_generate(&dir.path().join("gen"), 24).unwrap(), g);
    }
}

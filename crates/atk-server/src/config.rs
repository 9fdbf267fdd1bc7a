use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use atk_core::limits::RateLimit;
use atk_core::secret::Pepper;
use thiserror::Error;

/// Where the SQLite file goes inside the data directory.
const SQLITE_FILE: &str = "atk.sqlite";
/// Where a generated pepper goes inside the data directory.
const PEPPER_FILE: &str = "pepper";

/// Server configuration. Every field is a CLI flag and an environment
/// variable (see the `atk` binary); defaults are in [`Config::default`].
#[derive(Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// `None`: a SQLite file in `data_dir`.
    pub database_url: Option<String>,
    /// `None`: generated on first start, printed once, stored hashed.
    pub admin_token: Option<String>,
    /// `None`: generated in `data_dir` with mode 0600.
    pub pepper_file: Option<PathBuf>,
    /// The address people reach the console at (behind a proxy, say
    /// `https://keys.example.com`), for printed links. `None`: the listen
    /// address over plain HTTP.
    pub public_url: Option<String>,
    /// A folder of the operator's own Knowledge Hub documents (`*.md`),
    /// answered beside the shipped ones.
    pub knowledge_dir: Option<PathBuf>,
    /// Marks the console session cookie `Secure` (browsers then send it over
    /// HTTPS only). On by default when `public_url` is `https://…`.
    pub secure_cookies: bool,
    /// Failed verifications (`MALFORMED`, `NOT_FOUND`) per source address,
    /// per node, before verify answers 429.
    pub failed_verify_limit: RateLimit,
    /// Management calls with a bad credential per source address, per
    /// node, before they answer 429.
    pub bad_credential_limit: RateLimit,
    /// Proxies whose `X-Forwarded-For` is believed (CIDR or addresses).
    pub trusted_proxies: Vec<String>,
    /// GitHub's secret-scanning public keys document (JSON), for signed
    /// leaked-secret reports. `None`: every report is refused.
    pub secret_scanning_keys: Option<PathBuf>,
    /// Slow-client limits: open connections, header and body deadlines.
    pub connections: crate::http::connections::ConnectionLimits,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            data_dir: PathBuf::from("./atk-data"),
            database_url: None,
            admin_token: None,
            pepper_file: None,
            public_url: None,
            knowledge_dir: None,
            secure_cookies: false,
            failed_verify_limit: RateLimit {
                requests: 600,
                per_seconds: 60,
            },
            bad_credential_limit: RateLimit {
                requests: 30,
                per_seconds: 300,
            },
            connections: crate::http::connections::ConnectionLimits::default(),
            secret_scanning_keys: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// The admin token and database URL may carry secrets; `Debug` hides them.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("database", &self.database_url.as_ref().map(|_| "<set>"))
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "<redacted>"),
            )
            .field("pepper_file", &self.pepper_file)
            .field("public_url", &self.public_url)
            .field("knowledge_dir", &self.knowledge_dir)
            .field("secure_cookies", &self.secure_cookies)
            .field("connections", &self.connections)
            .field("secret_scanning_keys", &self.secret_scanning_keys)
            .field("trusted_proxies", &self.trusted_proxies)
            .finish()
    }
}

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read the pepper file {path}: {source}")]
    ReadPepper {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write a new pepper file {path}: {source}")]
    WritePepper {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the pepper file {0} must hold at least {min} bytes as hex (64 hex characters)",
        min = Pepper::MIN_LEN
    )]
    BadPepper(PathBuf),
    #[error("cannot read the knowledge folder {path}: {source}")]
    KnowledgeDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the admin token must be at least 32 characters")]
    WeakAdminToken,
}

impl Config {
    /// The configured URL, or the SQLite file in the data directory.
    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join(SQLITE_FILE).display()))
    }

    /// The operator's Knowledge Hub documents: every `*.md` file of
    /// `knowledge_dir`, by name.
    pub fn knowledge_documents(&self) -> Result<Vec<crate::help::HubDocument>, ConfigError> {
        let Some(dir) = &self.knowledge_dir else {
            return Ok(Vec::new());
        };
        let error = |source| ConfigError::KnowledgeDir {
            path: dir.clone(),
            source,
        };
        let mut documents = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(error)? {
            let path = entry.map_err(error)?.path();
            if path.extension().is_some_and(|ext| ext == "md") {
                documents.push(crate::help::HubDocument {
                    name: path
                        .file_name()
                        .unwrap_or_default()
                        .to_string_lossy()
                        .into_owned(),
                    markdown: std::fs::read_to_string(&path).map_err(error)?,
                });
            }
        }
        documents.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(documents)
    }

    /// Where printed console links point: the configured public URL without
    /// a trailing slash, or `http://<bound address>`.
    pub fn public_url(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }

    pub fn uses_data_dir_database(&self) -> bool {
        self.database_url.is_none()
    }

    /// Creates the data directory if the SQLite file or the pepper lives
    /// there: readable by the owner only (0700), like the database file
    /// (0600, created empty here so SQLite never creates it with the
    /// process umask; its journal files take the same mode).
    pub fn prepare_data_dir(&self) -> Result<(), ConfigError> {
        let error = |source| ConfigError::DataDir {
            path: self.data_dir.clone(),
            source,
        };
        if self.uses_data_dir_database() || self.pepper_file.is_none() {
            let mut builder = std::fs::DirBuilder::new();
            builder.recursive(true);
            #[cfg(unix)]
            std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
            builder.create(&self.data_dir).map_err(error)?;
        }
        if self.uses_data_dir_database() {
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(false);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            options
                .open(self.data_dir.join(SQLITE_FILE))
                .map_err(error)?;
        }
        Ok(())
    }

    pub fn checked_admin_token(&self) -> Result<Option<&str>, ConfigError> {
        match self.admin_token.as_deref() {
            Some(token) if token.len() < 32 => Err(ConfigError::WeakAdminToken),
            other => Ok(other),
        }
    }

    /// Reads the pepper. A configured file must exist; the default file in
    /// the data directory is generated on first use, readable by the owner only.
    pub fn load_pepper(&self) -> Result<Pepper, ConfigError> {
        match &self.pepper_file {
            Some(path) => read_pepper(path),
            None => {
                let path = self.data_dir.join(PEPPER_FILE);
                if !path.exists() {
                    write_new_pepper(&path)?;
                }
                read_pepper(&path)
            }
        }
    }
}

fn read_pepper(path: &Path) -> Result<Pepper, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadPepper {
        path: path.to_owned(),
        source,
    })?;
    let bytes = hex::decode(text.trim()).map_err(|_| ConfigError::BadPepper(path.to_owned()))?;
    Pepper::from_bytes(&bytes).map_err(|_| ConfigError::BadPepper(path.to_owned()))
}

fn write_new_pepper(path: &Path) -> Result<(), ConfigError> {
    let error = |source| ConfigError::WritePepper {
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    // create_new: two processes starting at once cannot both write one.
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    match options.open(path) {
        Ok(mut file) => {
            let hex = hex::encode(Pepper::generate_bytes());
            file.write_all(format!("{hex}\n").as_bytes())
                .map_err(error)?;
            file.sync_all().map_err(error)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(error(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generated_pepper_is_owner_only_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            data_dir: dir.path().to_owned(),
            ..Config::default()
        };
        config.load_pepper().unwrap();
        let first = std::fs::read_to_string(dir.path().join(PEPPER_FILE)).unwrap();
        config.load_pepper().unwrap();
        let second = std::fs::read_to_string(dir.path().join(PEPPER_FILE)).unwrap();
        assert_eq!(first, second);
        assert_eq!(first.trim().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(PEPPER_FILE))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn a_configured_pepper_file_must_exist_and_be_long_enough() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        let config = Config {
            pepper_file: Some(path.clone()),
            ..Config::default()
        };
        assert!(matches!(
            config.load_pepper(),
            Err(ConfigError::ReadPepper { .. })
        ));
        std::fs::write(&path, "abcd").unwrap();
        assert!(matches!(
            config.load_pepper(),
            Err(ConfigError::BadPepper(_))
        ));
        std::fs::write(&path, "ab".repeat(32)).unwrap();
        assert!(config.load_pepper().is_ok());
    }

    #[test]
    fn debug_output_hides_the_admin_token() {
        let config = Config {
            admin_token: Some("super-secret-admin-token-value-1234".into()),
            database_url: Some("postgres://u:pw@h/db".into()),
            ..Config::default()
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("super-secret"));
        assert!(!shown.contains("pw"));
    }
}

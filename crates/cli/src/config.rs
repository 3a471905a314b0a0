//! `ketaflow.toml`: every `serve` setting in one file, and how it meets flags and the environment.
//!
//! Precedence, for each setting on its own: a command-line flag, then its `KETAFLOW_*` environment
//! variable, then the file, then the built-in default. The file is `--config FILE` (or
//! `KETAFLOW_CONFIG`); without either, [`DEFAULT_PATH`] when it exists, else none.
//!
//! The file is read key by key rather than through one `Deserialize`, so that `config check`
//! names every bad key at once (a typo, a wrong type, a value out of range), each with what is
//! allowed, instead of stopping at the first. Unknown keys are errors: a misspelt `lisen` must
//! not leave the server listening on the default.

use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;

/// Where the package installs the configuration, and where it is looked for by default.
pub(crate) const DEFAULT_PATH: &str = "/etc/ketaflow/ketaflow.toml";

/// The settings a file may hold; each is optional (absent means: the default, unless a flag or the
/// environment gives it).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FileConfig {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) database: Option<String>,
    pub(crate) time_zone: Option<String>,
    pub(crate) log_format: Option<LogFormat>,
    pub(crate) protocols: Option<PathBuf>,
    pub(crate) instrument_wording: Option<PathBuf>,
    pub(crate) mllp: Option<SocketAddr>,
    pub(crate) metrics_from: Option<Vec<IpNet>>,
    pub(crate) demo: Option<bool>,
    pub(crate) clock_speed: Option<f64>,
    pub(crate) tls_cert: Option<PathBuf>,
    pub(crate) tls_key: Option<PathBuf>,
    pub(crate) behind_proxy: Option<bool>,
    pub(crate) trusted_proxies: Option<Vec<IpNet>>,
    pub(crate) checkpoint_key: Option<PathBuf>,
    pub(crate) checkpoints: Option<PathBuf>,
    pub(crate) checkpoint_minutes: Option<u64>,
}

/// How the server logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub(crate) enum LogFormat {
    /// Human-readable lines (coloured at a terminal).
    #[default]
    Text,
    /// One JSON object per line, for a log collector.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(text: &str) -> Result<LogFormat, String> {
        match text {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!(
                "{other:?} is not a log format; allowed: \"text\" or \"json\""
            )),
        }
    }
}

/// One thing wrong in a configuration file: the key (dotted, `tls.cert`), what was found, and
/// what is allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Problem {
    pub(crate) key: String,
    pub(crate) message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

/// Every problem of a file, with the file's name.
#[derive(Debug)]
pub(crate) struct ConfigErrors {
    pub(crate) file: PathBuf,
    pub(crate) problems: Vec<Problem>,
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{} has {n} problem{}:",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {problem}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The keys of the top level, of `[tls]`, `[proxy]` and `[checkpoints]`, with what each takes (for
/// the message about an unknown key).
const TOP_KEYS: &[&str] = &[
    "listen",
    "database",
    "time_zone",
    "log_format",
    "protocols",
    "instrument_wording",
    "mllp",
    "metrics_from",
    "demo",
    "clock_speed",
    "tls",
    "proxy",
    "checkpoints",
];
const TLS_KEYS: &[&str] = &["cert", "key"];
const PROXY_KEYS: &[&str] = &["behind", "trusted"];
const CHECKPOINT_KEYS: &[&str] = &["key", "file", "every_minutes"];

/// Which file to read: the one named, else the default path when it exists, else none.
pub(crate) fn chosen_path(named: Option<&Path>) -> Option<PathBuf> {
    match named {
        Some(path) => Some(path.to_owned()),
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    }
}

/// Reads and checks a configuration file. Relative paths in it are taken from the file's own
/// directory, so a file means the same whatever directory the server starts in.
pub(crate) fn load(path: &Path) -> Result<FileConfig, ConfigErrors> {
    let fail = |key: &str, message: String| ConfigErrors {
        file: path.to_owned(),
        problems: vec![Problem {
            key: key.to_owned(),
            message,
        }],
    };
    let text = std::fs::read_to_string(path).map_err(|e| fail("(file)", format!("cannot be read: {e}")))?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, base).map_err(|problems| ConfigErrors {
        file: path.to_owned(),
        problems,
    })
}

/// Checks the text of a configuration file; `base` is the directory relative paths start from.
pub(crate) fn parse(text: &str, base: &Path) -> Result<FileConfig, Vec<Problem>> {
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        vec![Problem {
            key: "(syntax)".into(),
            message: format!("not valid TOML: {}", e.message().trim()),
        }]
    })?;
    let mut reader = Reader {
        problems: Vec::new(),
        base,
    };
    let mut config = FileConfig::default();
    reader.unknown_keys(&table, "", TOP_KEYS);
    config.listen = reader.address(&table, "", "listen", false);
    config.database = reader.database(&table);
    config.time_zone = reader.time_zone(&table);
    config.log_format = reader.parsed(&table, "", "log_format");
    config.protocols = reader.path(&table, "", "protocols", PathKind::Directory);
    config.instrument_wording = reader.path(&table, "", "instrument_wording", PathKind::File);
    config.mllp = reader.address(&table, "", "mllp", true);
    config.metrics_from = reader.nets(&table, "", "metrics_from");
    config.demo = reader.boolean(&table, "", "demo");
    config.clock_speed = reader.number(&table, "", "clock_speed", 1.0, 600.0);
    if let Some(tls) = reader.table(&table, "tls", TLS_KEYS) {
        config.tls_cert = reader.path(tls, "tls.", "cert", PathKind::File);
        config.tls_key = reader.path(tls, "tls.", "key", PathKind::File);
        if tls.contains_key("cert") != tls.contains_key("key") {
            reader.problem(
                "tls",
                "give both cert and key (a certificate chain and its private key, PEM), or neither".into(),
            );
        }
    }
    if let Some(proxy) = reader.table(&table, "proxy", PROXY_KEYS) {
        config.behind_proxy = reader.boolean(proxy, "proxy.", "behind");
        config.trusted_proxies = reader.nets(proxy, "proxy.", "trusted");
        if config.trusted_proxies.is_some() && config.behind_proxy != Some(true) {
            reader.problem("proxy.trusted", "takes effect only with behind = true".into());
        }
    }
    if let Some(checkpoints) = reader.table(&table, "checkpoints", CHECKPOINT_KEYS) {
        config.checkpoint_key = reader.path(checkpoints, "checkpoints.", "key", PathKind::Created);
        config.checkpoints = reader.path(checkpoints, "checkpoints.", "file", PathKind::Created);
        config.checkpoint_minutes = reader.integer(checkpoints, "checkpoints.", "every_minutes", 1, 1440);
        if checkpoints.contains_key("key") != checkpoints.contains_key("file") {
            reader.problem(
                "checkpoints",
                "give both key (the signing key) and file (the checkpoint file), or neither".into(),
            );
        }
        if !checkpoints.contains_key("key")
            && !checkpoints.contains_key("file")
            && checkpoints.contains_key("every_minutes")
        {
            reader.problem(
                "checkpoints.every_minutes",
                "takes effect only with key (the signing key) and file (the checkpoint file)".into(),
            );
        }
    }
    if reader.problems.is_empty() {
        Ok(config)
    } else {
        Err(reader.problems)
    }
}

/// What a path must be for the check to pass.
#[derive(Clone, Copy)]
enum PathKind {
    /// An existing directory.
    Directory,
    /// An existing, readable file.
    File,
    /// A file that may not exist yet, in an existing directory.
    Created,
}

struct Reader<'a> {
    problems: Vec<Problem>,
    base: &'a Path,
}

impl Reader<'_> {
    fn problem(&mut self, key: &str, message: String) {
        self.problems.push(Problem {
            key: key.to_owned(),
            message,
        });
    }

    fn unknown_keys(&mut self, table: &toml::Table, prefix: &str, known: &[&str]) {
        for key in table.keys() {
            if !known.contains(&key.as_str()) {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("unknown key; allowed here: {}", known.join(", ")),
                );
            }
        }
    }

    fn table<'t>(&mut self, table: &'t toml::Table, key: &str, known: &[&str]) -> Option<&'t toml::Table> {
        match table.get(key)? {
            toml::Value::Table(inner) => {
                self.unknown_keys(inner, &format!("{key}."), known);
                Some(inner)
            }
            other => {
                self.problem(
                    key,
                    format!(
                        "is {}, but must be a table ([{key}]) with {}",
                        kind(other),
                        known.join(", ")
                    ),
                );
                None
            }
        }
    }

    fn text<'t>(&mut self, table: &'t toml::Table, prefix: &str, key: &str) -> Option<&'t str> {
        match table.get(key)? {
            toml::Value::String(s) => Some(s),
            other => {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("is {}, but must be a string", kind(other)),
                );
                None
            }
        }
    }

    fn parsed<T: std::str::FromStr<Err = String>>(
        &mut self,
        table: &toml::Table,
        prefix: &str,
        key: &str,
    ) -> Option<T> {
        let text = self.text(table, prefix, key)?;
        match text.parse() {
            Ok(value) => Some(value),
            Err(message) => {
                self.problem(&format!("{prefix}{key}"), message);
                None
            }
        }
    }

    fn boolean(&mut self, table: &toml::Table, prefix: &str, key: &str) -> Option<bool> {
        match table.get(key)? {
            toml::Value::Boolean(b) => Some(*b),
            other => {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("is {}, but must be true or false", kind(other)),
                );
                None
            }
        }
    }

    fn number(&mut self, table: &toml::Table, prefix: &str, key: &str, low: f64, high: f64) -> Option<f64> {
        let value = match table.get(key)? {
            toml::Value::Float(x) => *x,
            toml::Value::Integer(n) => *n as f64,
            other => {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("is {}, but must be a number from {low} to {high}", kind(other)),
                );
                return None;
            }
        };
        if (low..=high).contains(&value) {
            Some(value)
        } else {
            self.problem(
                &format!("{prefix}{key}"),
                format!("{value} is outside the allowed {low}–{high}"),
            );
            None
        }
    }

    fn integer(&mut self, table: &toml::Table, prefix: &str, key: &str, low: u64, high: u64) -> Option<u64> {
        let value = match table.get(key)? {
            toml::Value::Integer(n) => *n,
            other => {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!(
                        "is {}, but must be a whole number from {low} to {high}",
                        kind(other)
                    ),
                );
                return None;
            }
        };
        match u64::try_from(value) {
            Ok(v) if (low..=high).contains(&v) => Some(v),
            _ => {
                self.problem(
                    &format!("{prefix}{key}"),
                    format!("{value} is outside the allowed {low}–{high}"),
                );
                None
            }
        }
    }

    fn address(
        &mut self,
        table: &toml::Table,
        prefix: &str,
        key: &str,
        loopback_only: bool,
    ) -> Option<SocketAddr> {
        let text = self.text(table, prefix, key)?;
        let full = format!("{prefix}{key}");
        let Ok(address) = text.parse::<SocketAddr>() else {
            self.problem(
                &full,
                format!(
                    "{text:?} is not an address and port; allowed: e.g. \"127.0.0.1:8080\" or \"[::1]:8080\""
                ),
            );
            return None;
        };
        if loopback_only && !address.ip().is_loopback() {
            self.problem(
                &full,
                format!("{address} is not on loopback; MLLP carries no encryption, so only 127.0.0.1 or [::1] is allowed (reach it through a TLS tunnel or gateway on this machine)"),
            );
            return None;
        }
        Some(address)
    }

    fn database(&mut self, table: &toml::Table) -> Option<String> {
        let url = self.text(table, "", "database")?;
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        if scheme == "sqlite" {
            // A relative file is beside the configuration file, like every other path in it.
            let rest = url
                .strip_prefix("sqlite://")
                .or_else(|| url.strip_prefix("sqlite:"))
                .unwrap_or_default();
            if rest.is_empty() || rest.starts_with(':') || Path::new(rest).is_absolute() {
                Some(url.to_owned())
            } else {
                Some(format!("sqlite://{}", self.base.join(rest).display()))
            }
        } else if matches!(scheme, "postgres" | "postgresql") {
            Some(url.to_owned())
        } else {
            self.problem(
                "database",
                format!(
                    "{:?} is not a database URL; allowed: sqlite://PATH or postgres://USER@HOST/DB",
                    redact(url)
                ),
            );
            None
        }
    }

    fn time_zone(&mut self, table: &toml::Table) -> Option<String> {
        let name = self.text(table, "", "time_zone")?;
        match ketaflow_app::clinic_time::ClinicZone::named(name) {
            Ok(_) => Some(name.to_owned()),
            Err(_) => {
                self.problem(
                    "time_zone",
                    format!("{name:?} is not a known IANA time-zone name; allowed: e.g. \"America/New_York\", \"Europe/London\" or \"UTC\""),
                );
                None
            }
        }
    }

    fn path(&mut self, table: &toml::Table, prefix: &str, key: &str, want: PathKind) -> Option<PathBuf> {
        let text = self.text(table, prefix, key)?;
        let full = format!("{prefix}{key}");
        if text.is_empty() {
            self.problem(&full, "is empty; give a path".into());
            return None;
        }
        let path = self.base.join(text);
        let wrong = match want {
            PathKind::Directory => (!path.is_dir()).then_some("is not a directory"),
            PathKind::File => match std::fs::File::open(&path) {
                Ok(_) if path.is_file() => None,
                Ok(_) => Some("is not a file"),
                Err(_) => Some("cannot be read (missing, or no permission)"),
            },
            PathKind::Created => match path.parent() {
                Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => None,
                _ => Some("is in a directory that does not exist"),
            },
        };
        match wrong {
            Some(why) => {
                self.problem(&full, format!("{} {why}", path.display()));
                None
            }
            None => Some(path),
        }
    }

    fn nets(&mut self, table: &toml::Table, prefix: &str, key: &str) -> Option<Vec<IpNet>> {
        let full = format!("{prefix}{key}");
        let toml::Value::Array(items) = table.get(key)? else {
            let found = kind(table.get(key)?);
            self.problem(&full, format!("is {found}, but must be a list of addresses or ranges, e.g. [\"10.0.0.5\", \"10.0.0.0/24\"]"));
            return None;
        };
        let mut nets = Vec::with_capacity(items.len());
        let mut ok = true;
        for (i, item) in items.iter().enumerate() {
            match item.as_str().map(parse_net) {
                Some(Ok(net)) => nets.push(net),
                Some(Err(message)) => {
                    self.problem(&format!("{full}[{i}]"), message);
                    ok = false;
                }
                None => {
                    self.problem(
                        &format!("{full}[{i}]"),
                        format!("is {}, but must be a string such as \"10.0.0.0/24\"", kind(item)),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(nets)
    }
}

/// An address or range: `10.0.0.5`, `10.0.0.0/24`, `::1`.
pub(crate) fn parse_net(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<std::net::IpAddr>().map(IpNet::from))
        .map_err(|_| {
            format!("{text:?} is not an address or ADDR/PREFIX range (e.g. 10.0.0.5 or 10.0.0.0/24)")
        })
}

fn kind(value: &toml::Value) -> &'static str {
    match value {
        toml::Value::String(_) => "a string",
        toml::Value::Integer(_) => "a whole number",
        toml::Value::Float(_) => "a number",
        toml::Value::Boolean(_) => "true/false",
        toml::Value::Datetime(_) => "a date",
        toml::Value::Array(_) => "a list",
        toml::Value::Table(_) => "a table",
    }
}

/// The URL without any password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            format!("{}://…@{}", &url[..scheme_end], &url[at + 1..])
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(text: &str) -> Vec<String> {
        parse(text, Path::new("/"))
            .expect_err("the file has problems")
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_complete_file_is_read_with_paths_from_its_own_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cert.pem"), "x").unwrap();
        std::fs::write(dir.path().join("key.pem"), "x").unwrap();
        std::fs::create_dir(dir.path().join("protocols")).unwrap();
        let text = r#"
            listen = "0.0.0.0:8443"
            database = "postgres://ketaflow@db.example/ketaflow"
            time_zone = "America/New_York"
            log_format = "json"
            protocols = "protocols"
            mllp = "127.0.0.1:2575"
            metrics_from = ["10.0.0.0/24", "::1"]
            clock_speed = 1
            [tls]
            cert = "cert.pem"
            key = "key.pem"
            [proxy]
            behind = false
            [checkpoints]
            key = "checkpoint.key"
            file = "checkpoints.log"
            every_minutes = 30
        "#;
        let config = parse(text, dir.path()).expect("a good file");
        assert_eq!(config.listen, Some("0.0.0.0:8443".parse().unwrap()));
        assert_eq!(
            config.database.as_deref(),
            Some("postgres://ketaflow@db.example/ketaflow")
        );
        assert_eq!(config.time_zone.as_deref(), Some("America/New_York"));
        assert_eq!(config.log_format, Some(LogFormat::Json));
        assert_eq!(config.protocols, Some(dir.path().join("protocols")));
        assert_eq!(config.mllp, Some("127.0.0.1:2575".parse().unwrap()));
        assert_eq!(config.metrics_from.as_ref().map(Vec::len), Some(2));
        assert_eq!(config.clock_speed, Some(1.0));
        assert_eq!(config.tls_cert, Some(dir.path().join("cert.pem")));
        assert_eq!(config.behind_proxy, Some(false));
        assert_eq!(config.checkpoint_key, Some(dir.path().join("checkpoint.key")));
        assert_eq!(config.checkpoint_minutes, Some(30));
        assert_eq!(
            parse("", dir.path()),
            Ok(FileConfig::default()),
            "an empty file is all defaults"
        );
        let sqlite = |url: &str| {
            parse(&format!("database = {url:?}"), Path::new("/etc/ketaflow"))
                .unwrap()
                .database
                .unwrap()
        };
        assert_eq!(
            sqlite("sqlite://ketaflow.db"),
            "sqlite:///etc/ketaflow/ketaflow.db"
        );
        assert_eq!(sqlite("sqlite:data/k.db"), "sqlite:///etc/ketaflow/data/k.db");
        assert_eq!(
            sqlite("sqlite:///var/lib/ketaflow/k.db"),
            "sqlite:///var/lib/ketaflow/k.db"
        );
        assert_eq!(sqlite("sqlite::memory:"), "sqlite::memory:");
    }

    #[test]
    fn every_bad_key_is_named_with_what_is_allowed() {
        let found = problems(
            r#"
            lisen = "127.0.0.1:8080"
            listen = "localhost"
            database = "mysql://root@db/ketaflow"
            time_zone = "Mars/Olympus"
            log_format = "xml"
            mllp = "0.0.0.0:2575"
            metrics_from = ["10.0.0.0/33", 7]
            demo = "yes"
            clock_speed = 1000
            [tls]
            cert = "/nonexistent/cert.pem"
            [checkpoints]
            every_minutes = 0
            colour = "red"
            "#,
        );
        let expect = [
            "lisen: unknown key; allowed here: listen, database",
            "listen: \"localhost\" is not an address and port",
            "database: \"mysql://…@db/ketaflow\" is not a database URL; allowed: sqlite://PATH or postgres://USER@HOST/DB",
            "time_zone: \"Mars/Olympus\" is not a known IANA time-zone name",
            "log_format: \"xml\" is not a log format; allowed: \"text\" or \"json\"",
            "mllp: 0.0.0.0:2575 is not on loopback",
            "metrics_from[0]: \"10.0.0.0/33\" is not an address or ADDR/PREFIX range",
            "metrics_from[1]: is a whole number, but must be a string",
            "demo: is a string, but must be true or false",
            "clock_speed: 1000 is outside the allowed 1–600",
            "tls.cert: /nonexistent/cert.pem cannot be read",
            "tls: give both cert and key",
            "checkpoints.colour: unknown key; allowed here: key, file, every_minutes",
            "checkpoints.every_minutes: 0 is outside the allowed 1–1440",
            "checkpoints.every_minutes: takes effect only with key (the signing key) and file",
        ];
        for want in expect {
            assert!(
                found.iter().any(|p| p.starts_with(want)),
                "missing {want:?} in {found:#?}"
            );
        }
        assert_eq!(found.len(), expect.len(), "one problem each: {found:#?}");
    }

    #[test]
    fn a_file_that_is_not_toml_says_where() {
        let found = problems("listen = \n");
        assert_eq!(found.len(), 1);
        assert!(found[0].starts_with("(syntax): not valid TOML"), "{found:?}");
        assert_eq!(
            problems("tls = 3"),
            vec!["tls: is a whole number, but must be a table ([tls]) with cert, key"]
        );
        assert_eq!(
            problems("[proxy]\ntrusted = [\"10.0.0.1\"]"),
            vec!["proxy.trusted: takes effect only with behind = true"]
        );
    }

    #[test]
    fn a_password_in_a_bad_url_is_not_repeated() {
        let found = problems("database = \"mysql://root:secret@db/ketaflow\"");
        assert!(!found[0].contains("secret"), "{found:?}");
    }
}

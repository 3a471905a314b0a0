//! `ketaflow.toml` (issue 20): `config check` on good and bad files, and the precedence flags >
//! environment > file > defaults, shown on the real binary by where `serve` listens and which
//! database it opens.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::free_port;

/// `ketaflow` with no `KETAFLOW_*` variable inherited from whoever runs the tests.
fn ketaflow(dir: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_ketaflow"));
    command.current_dir(dir);
    for (name, _) in std::env::vars() {
        if name.starts_with("KETAFLOW_") {
            command.env_remove(name);
        }
    }
    command
}

/// Starts `serve` and returns the address it says it listens on, then stops it.
fn listening_address(mut command: Command) -> String {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = Instant::now();
    let mut found = None;
    while let Some(Ok(line)) = lines.next() {
        if let Some(url) = line.strip_prefix("ketaflow listening on http://") {
            found = Some(url.to_owned());
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    found.unwrap_or_else(|| {
        panic!(
            "serve did not listen: {}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[test]
fn config_check_passes_a_good_file_and_names_every_problem_of_a_bad_one() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("good.toml"),
        "listen = \"127.0.0.1:8181\"\ndatabase = \"sqlite://ketaflow.db\"\ntime_zone = \"Europe/London\"\nmetrics_from = [\"10.0.0.0/24\"]\n",
    )
    .unwrap();
    let out = ketaflow(dir.path())
        .args(["config", "check", "good.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(said.starts_with("good.toml: ok\n"), "{said}");
    assert!(said.contains("  listen    127.0.0.1:8181\n"), "{said}");
    assert!(said.contains("  time zone Europe/London\n"), "{said}");
    assert!(said.contains("  metrics   10.0.0.0/24\n"), "{said}");

    std::fs::write(
        dir.path().join("bad.toml"),
        "lisen = \"127.0.0.1:8181\"\nclock_speed = 0.5\nlog_format = \"xml\"\n[checkpoints]\nevery_minutes = 2000\n",
    )
    .unwrap();
    let out = ketaflow(dir.path())
        .args(["config", "check", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.starts_with("error: bad.toml has 5 problems:\n"), "{err}");
    for line in [
        "  lisen: unknown key; allowed here: listen, database,",
        "  clock_speed: 0.5 is outside the allowed 1–600",
        "  log_format: \"xml\" is not a log format; allowed: \"text\" or \"json\"",
        "  checkpoints.every_minutes: 2000 is outside the allowed 1–1440",
        "  checkpoints.every_minutes: takes effect only with key (the signing key) and file (the checkpoint file)",
    ] {
        assert!(err.contains(line), "missing {line:?} in {err}");
    }

    // What only the whole shows: plain HTTP beyond loopback with no TLS and no proxy.
    std::fs::write(dir.path().join("open.toml"), "listen = \"0.0.0.0:8181\"\n").unwrap();
    let out = ketaflow(dir.path())
        .args(["config", "check", "open.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("refusing to serve plain HTTP on 0.0.0.0:8181"));

    // The file a protocol directory names is loaded as serve would.
    std::fs::create_dir(dir.path().join("empty")).unwrap();
    std::fs::write(dir.path().join("protocols.toml"), "protocols = \"empty\"\n").unwrap();
    let out = ketaflow(dir.path())
        .args(["config", "check", "protocols.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("protocols.toml: protocols") && err.contains("library.toml"),
        "{err}"
    );

    // Nothing named: the default path, which does not exist on a test machine, is named.
    if !Path::new("/etc/ketaflow/ketaflow.toml").exists() {
        let out = ketaflow(dir.path()).args(["config", "check"]).output().unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("/etc/ketaflow/ketaflow.toml does not exist"));
    }
    // Serve refuses to start on a bad file, with the same words.
    let out = ketaflow(dir.path())
        .args(["serve", "--config", "bad.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("clock_speed: 0.5 is outside the allowed 1–600"));
}

#[test]
fn flags_win_over_the_environment_which_wins_over_the_file_which_wins_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let (from_file, from_env, from_flag) = (free_port(), free_port(), free_port());
    std::fs::create_dir(dir.path().join("etc")).unwrap();
    std::fs::write(
        dir.path().join("etc/ketaflow.toml"),
        format!("listen = \"127.0.0.1:{from_file}\"\ndatabase = \"sqlite://from-file.db\"\n"),
    )
    .unwrap();
    // The file alone.
    let mut command = ketaflow(dir.path());
    command.args(["serve", "--config", "etc/ketaflow.toml"]);
    assert_eq!(listening_address(command), format!("127.0.0.1:{from_file}"));
    // Relative paths in the file are from the file's directory, not the working directory.
    assert!(dir.path().join("etc/from-file.db").exists());

    // The environment over the file.
    let mut command = ketaflow(dir.path());
    command
        .args(["serve", "--config", "etc/ketaflow.toml"])
        .env("KETAFLOW_LISTEN", format!("127.0.0.1:{from_env}"));
    assert_eq!(listening_address(command), format!("127.0.0.1:{from_env}"));

    // A flag over both.
    let mut command = ketaflow(dir.path());
    command
        .args(["serve", "--listen", &format!("127.0.0.1:{from_flag}")])
        .env("KETAFLOW_CONFIG", "etc/ketaflow.toml")
        .env("KETAFLOW_LISTEN", format!("127.0.0.1:{from_env}"));
    assert_eq!(listening_address(command), format!("127.0.0.1:{from_flag}"));

    // The database: the environment over the file, and the default with neither.
    let mut command = ketaflow(dir.path());
    command
        .args(["serve", "--config", "etc/ketaflow.toml"])
        .env("KETAFLOW_DATABASE_URL", "sqlite://from-env.db");
    listening_address(command);
    assert!(dir.path().join("from-env.db").exists());
    let mut command = ketaflow(dir.path());
    command.args(["serve", "--listen", &format!("127.0.0.1:{}", free_port())]);
    listening_address(command);
    assert!(
        dir.path().join("ketaflow.db").exists(),
        "the default database is ketaflow.db here"
    );

    // The account tools read the same file's database.
    let out = ketaflow(dir.path())
        .args(["user", "list", "--config", "etc/ketaflow.toml"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("admin"));
}

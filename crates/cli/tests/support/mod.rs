//! What the command-line tests share: running the real binary and finding a free port.

#![allow(dead_code)] // each test file uses its own part of this

use std::process::{Command, Output};

/// Runs `ketaflow` with `args` and waits for it.
pub(crate) fn ketaflow(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ketaflow"))
        .args(args)
        .output()
        .expect("run ketaflow")
}

/// The standard output of a run that succeeded (the test fails with both outputs otherwise).
pub(crate) fn ok(output: &Output) -> String {
    assert!(
        output.status.success(),
        "failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// A loopback port nobody listens on now.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

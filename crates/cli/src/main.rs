//! `ketaflow`: the one binary. The clinic server (`serve`) with its account, backup and audit
//! tools, and the PK/PD command line (`models`, `simulate`, `tci`, `population`). This crate is the
//! only place that reads files, the environment and the terminal, and it converts all input to
//! checked values before the library crates see it.

mod clinic;
mod config;
mod monitor_sim;
mod pk;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc keeps freed pages for reuse; glibc hands large blocks back to the kernel, so every new
// output buffer of a cohort or population run would pay page faults again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The version and the commit this binary was built from (`build.rs`).
const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("KETAFLOW_COMMIT"), ")");

#[derive(Debug, Parser)]
#[command(
    name = "ketaflow",
    version = VERSION,
    about = "Ketaflow: a ketamine infusion clinic system with an exact PK/PD engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the clinic server (JSON API under /api/v1) on an embedded SQLite file or PostgreSQL
    Serve(clinic::ServeArgs),
    /// Manage user accounts
    #[command(subcommand)]
    User(clinic::UserCommand),
    /// Make a consistent online copy of the database
    Backup(clinic::BackupArgs),
    /// Load a backup into a new, empty database and verify its audit chain
    Restore(clinic::BackupArgs),
    /// Check a configuration file (ketaflow.toml)
    #[command(subcommand)]
    Config(clinic::ConfigCommand),
    /// Check the audit chain
    #[command(subcommand)]
    Audit(clinic::AuditCommand),
    /// List the shipped pharmacokinetic and pharmacodynamic models with their sources and validity
    Models(pk::ModelsArgs),
    /// Predict plasma, effect-site (and metabolite, PD) concentrations for a regimen
    Simulate(pk::SimulateArgs),
    /// Target-controlled infusion: the pump-rate schedule that reaches a plasma or effect-site target
    Tci(pk::TciArgs),
    /// Population prediction: percentile bands over virtual patients with inter-individual variability
    Population(pk::PopulationArgs),
    /// A bedside monitor: send IHE PCD-01 ORU^R01 readings to `serve --mllp` and print each ACK
    MonitorSim(monitor_sim::MonitorSimArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    ketaflow_server::ops::set_build(VERSION);
    let result = match cli.command {
        Command::Serve(args) => clinic::serve(&args),
        Command::User(command) => clinic::user(&command),
        Command::Backup(args) => clinic::backup(&args),
        Command::Restore(args) => clinic::restore(&args),
        Command::Audit(command) => clinic::audit(&command),
        Command::Config(command) => clinic::config(&command),
        Command::Models(args) => pk::models(&args),
        Command::Simulate(args) => pk::simulate(&args),
        Command::Tci(args) => pk::tci(&args),
        Command::Population(args) => pk::population(&args),
        Command::MonitorSim(args) => monitor_sim::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`ketaflow simulate … | head`): what it wanted was written.
        Err(error) if broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

fn broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

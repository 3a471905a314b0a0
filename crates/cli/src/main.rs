//! `ketaflow`: the one binary. Today it carries the PK/PD command line (`models`, `simulate`,
//! `tci`, `population`); the clinic server (`serve`) and account tools join it in later work.
//! This crate is the only place that reads files and the terminal, and it converts all input to
//! checked quantities before the engine sees it.

mod pk;
mod plot;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

// mimalloc keeps freed pages for reuse; glibc hands large blocks back to the kernel, so every new
// output buffer of a cohort or population run would pay page faults again.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "ketaflow",
    version,
    about = "Ketaflow: a ketamine infusion clinic system with an exact PK/PD engine"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// List the shipped pharmacokinetic and pharmacodynamic models with their sources and validity
    Models(pk::ModelsArgs),
    /// Predict plasma, effect-site (and metabolite, PD) concentrations for a regimen
    Simulate(pk::SimulateArgs),
    /// Target-controlled infusion: the pump-rate schedule that reaches a plasma or effect-site target
    Tci(pk::TciArgs),
    /// Population prediction: percentile bands over virtual patients with inter-individual variability
    Population(pk::PopulationArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Models(args) => pk::models(&args),
        Command::Simulate(args) => pk::simulate(&args),
        Command::Tci(args) => pk::tci(&args),
        Command::Population(args) => pk::population(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}

//! The PK/PD commands: argument types, input files, and the three output formats (a readable
//! table, CSV with unit-suffixed columns, JSON) plus SVG plots.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ketaflow_pkpd::model::{Covariates, Ke0Source, ModelId, SamplingSite, Sex};
use ketaflow_pkpd::patient::{DrugGiven, PatientModel};
use ketaflow_pkpd::pd::PdModelId;
use ketaflow_pkpd::population::{PopulationSettings, Variability, VariabilitySource, run_population};
use ketaflow_pkpd::recovery::{DEFAULT_BRACKET_S, Quantity, Recovery, time_below};
use ketaflow_pkpd::schedule::{Dose, Regimen, Schedule};
use ketaflow_pkpd::simulate::{Grid, Trajectory, simulate as run_simulation, simulate_cp_ce};
use ketaflow_pkpd::system::ResponseKind;
use ketaflow_pkpd::tci::{TargetSite, TargetStep, TciResult, TciSettings, run_tci};
use ketaflow_units::{
    Centimetres, Kilograms, MgPerMl, MicrogramsPerMl, MlPerHour, PerMinute, Seconds, Years,
};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::json;

use ketaflow_charts::{Band, Chart, Curve, Level};

// ---------------------------------------------------------------------------------------------
// Arguments

#[derive(Debug, Args)]
pub(crate) struct ModelsArgs {
    /// Print JSON instead of a table
    #[arg(long)]
    json: bool,
}

/// Which drug the doses are.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Drug {
    /// Racemic ketamine (the usual infusion product)
    Racemic,
    /// S-ketamine (esketamine)
    Esketamine,
}

#[derive(Debug, Args)]
struct PatientArgs {
    /// Model: clements1981, domino1982, hijazi2003, herd2007, hornik2018, kamp2020, otto2021
    #[arg(long, default_value = "kamp2020")]
    model: ModelId,
    /// Total body weight, e.g. 70kg
    #[arg(long)]
    weight: Option<Kilograms>,
    /// Age, e.g. 40 (years)
    #[arg(long)]
    age: Option<Years>,
    /// Height, e.g. 170cm (no shipped model uses it; recorded for reports)
    #[arg(long)]
    height: Option<Centimetres>,
    /// Sex: male or female (no shipped model uses it; recorded for reports)
    #[arg(long)]
    sex: Option<Sex>,
    /// Override the effect-site rate constant, e.g. 0.652/min
    #[arg(long)]
    ke0: Option<PerMinute>,
    /// The drug given
    #[arg(long, value_enum, default_value = "racemic")]
    drug: Drug,
}

#[derive(Debug, Args)]
struct DoseArgs {
    #[arg(allow_hyphen_values = true)]
    /// An infusion, e.g. "0.5 mg/kg over 40 min", "0.25 mg/kg/h for 4 h", "22 mg/h for 4 h from 30 min" (repeatable)
    #[arg(long)]
    infuse: Vec<Dose>,
    #[arg(allow_hyphen_values = true)]
    /// A bolus, e.g. "20 mg at 5 min" or "0.35 mg/kg over 1 min" (repeatable)
    #[arg(long)]
    bolus: Vec<Dose>,
    /// A regimen file (TOML or JSON) with `doses = ["0.5 mg/kg over 40 min", ...]`
    #[arg(long)]
    regimen: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct OutputArgs {
    /// Simulate until this time, e.g. 4h
    #[arg(long, default_value = "4h")]
    until: Seconds,
    /// Output step, e.g. 10s or 5min
    #[arg(long, default_value = "1min")]
    every: Seconds,
    /// Write CSV to standard output
    #[arg(long, conflicts_with = "json")]
    csv: bool,
    /// Write JSON to standard output
    #[arg(long)]
    json: bool,
    /// Also draw the concentrations to this SVG file
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Report when Cp and Ce fall below this concentration for good (recovery), e.g. 0.05ug/mL
    #[arg(long)]
    threshold: Option<MicrogramsPerMl>,
}

#[derive(Debug, Args)]
pub(crate) struct SimulateArgs {
    #[command(flatten)]
    patient: PatientArgs,
    /// Run every subject of a CSV file (columns id,weight_kg,age_years,height_cm,sex) instead of one patient
    #[arg(long, conflicts_with_all = ["weight", "age", "height", "sex"])]
    cohort: Option<PathBuf>,
    #[command(flatten)]
    doses: DoseArgs,
    /// Add a PD model's effect site and fractional effect: olofsen2022, dahan2011 (repeatable)
    #[arg(long)]
    pd: Vec<PdModelId>,
    /// Also report the drug amount in each compartment and the amount eliminated (mg)
    #[arg(long)]
    amounts: bool,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct TciArgs {
    #[command(flatten)]
    patient: PatientArgs,
    /// Run every subject of a CSV file (columns id,weight_kg,age_years,height_cm,sex)
    #[arg(long, conflicts_with_all = ["weight", "age", "height", "sex"])]
    cohort: Option<PathBuf>,
    /// Target the plasma concentration, e.g. 0.2ug/mL
    #[arg(
        long,
        conflicts_with = "target_effect",
        required_unless_present = "target_effect"
    )]
    target_plasma: Option<MicrogramsPerMl>,
    /// Target the effect-site concentration, e.g. 0.2ug/mL
    #[arg(long)]
    target_effect: Option<MicrogramsPerMl>,
    /// A later target change, e.g. "0.3ug/mL at 30min"; 0ug/mL stops the pump (repeatable)
    #[arg(long)]
    then: Vec<String>,
    /// How long the controller runs before the pump stops, e.g. 60min
    #[arg(long = "for")]
    duration: Seconds,
    /// Syringe or bag concentration
    #[arg(long, default_value = "10mg/mL")]
    syringe: MgPerMl,
    /// The pump's maximum rate
    #[arg(long, default_value = "1200mL/h")]
    max_rate: MlPerHour,
    /// Pump update interval
    #[arg(long, default_value = "10s")]
    interval: Seconds,
    #[command(flatten)]
    output: OutputArgs,
}

#[derive(Debug, Args)]
pub(crate) struct PopulationArgs {
    #[command(flatten)]
    patient: PatientArgs,
    #[command(flatten)]
    doses: DoseArgs,
    /// Number of virtual subjects
    #[arg(long, default_value_t = 1000)]
    subjects: usize,
    /// Seed of the random streams (the same seed gives the same bands)
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Percentiles to report, comma separated
    #[arg(long, default_value = "5,50,95", value_delimiter = ',')]
    percentiles: Vec<f64>,
    /// Assumed coefficient of variation on every clearance and volume, e.g. 30% or 0.3 (used when the
    /// model has no published variability, or to replace it); results are labelled as assumed
    #[arg(long)]
    cv: Option<String>,
    #[command(flatten)]
    output: OutputArgs,
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// One row of a cohort file.
#[derive(Debug, Deserialize)]
struct CohortRow {
    id: String,
    weight_kg: f64,
    age_years: f64,
    height_cm: f64,
    sex: String,
}

#[derive(Debug, Clone)]
struct Subject {
    id: String,
    covariates: Covariates,
}

fn read_cohort(path: &Path) -> Result<Vec<Subject>> {
    let mut reader = csv::Reader::from_path(path)
        .with_context(|| format!("could not open cohort file {}", path.display()))?;
    let mut subjects = Vec::new();
    for (line, row) in reader.deserialize::<CohortRow>().enumerate() {
        let row_number = line + 2;
        let row = row.with_context(|| {
            format!(
                "{} line {row_number}: expected columns id,weight_kg,age_years,height_cm,sex",
                path.display()
            )
        })?;
        let context = |what: &str| {
            format!(
                "{} line {row_number} (subject {}): {what}",
                path.display(),
                row.id
            )
        };
        let covariates = Covariates {
            weight: Kilograms::new(row.weight_kg).with_context(|| context("weight"))?,
            age: Years::new(row.age_years).with_context(|| context("age"))?,
            height: Centimetres::new(row.height_cm).with_context(|| context("height"))?,
            sex: row
                .sex
                .parse::<Sex>()
                .map_err(anyhow::Error::msg)
                .with_context(|| context("sex"))?,
        };
        subjects.push(Subject {
            id: row.id,
            covariates,
        });
    }
    if subjects.is_empty() {
        bail!("cohort file {} has no subjects", path.display());
    }
    Ok(subjects)
}

fn single_subject(patient: &PatientArgs) -> Result<Subject> {
    let weight = patient
        .weight
        .context("give the patient's weight, e.g. --weight 70kg (or --cohort FILE.csv)")?;
    let age = patient
        .age
        .context("give the patient's age, e.g. --age 40 (the models' validated ranges depend on it)")?;
    Ok(Subject {
        id: "patient".into(),
        covariates: Covariates {
            weight,
            age,
            // No shipped model uses height or sex; the defaults only fill the record and are reported.
            height: patient
                .height
                .unwrap_or(Centimetres::new(170.0).expect("constant in range")),
            sex: patient.sex.unwrap_or(Sex::Male),
        },
    })
}

fn subjects(patient: &PatientArgs, cohort: Option<&Path>) -> Result<Vec<Subject>> {
    match cohort {
        Some(path) => read_cohort(path),
        None => Ok(vec![single_subject(patient)?]),
    }
}

/// A regimen file: `doses = ["0.5 mg/kg over 40 min", "20 mg at 5 min"]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegimenFile {
    doses: Vec<String>,
}

fn regimen(doses: &DoseArgs) -> Result<Regimen> {
    let mut all: Vec<Dose> = doses.infuse.clone();
    for dose in &doses.bolus {
        if matches!(dose, Dose::RateFor { .. }) {
            bail!(
                "--bolus takes an amount (\"20 mg at 5 min\" or \"0.35 mg/kg over 1 min\"), not a rate; use --infuse for \"{dose}\""
            );
        }
        all.push(*dose);
    }
    if let Some(path) = &doses.regimen {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("could not read regimen file {}", path.display()))?;
        let file: RegimenFile = if path.extension().is_some_and(|e| e == "json") {
            serde_json::from_str(&text).with_context(|| {
                format!(
                    "{} is not a regimen in JSON: expected {{\"doses\": [\"0.5 mg/kg over 40 min\"]}}",
                    path.display()
                )
            })?
        } else {
            toml::from_str(&text).with_context(|| {
                format!(
                    "{} is not a regimen in TOML: expected doses = [\"0.5 mg/kg over 40 min\"]",
                    path.display()
                )
            })?
        };
        for (i, text) in file.doses.iter().enumerate() {
            all.push(
                text.parse()
                    .with_context(|| format!("{} dose {}", path.display(), i + 1))?,
            );
        }
    }
    if all.is_empty() {
        bail!(
            "give at least one dose: --infuse \"0.5 mg/kg over 40 min\", --bolus \"20 mg\" or --regimen FILE"
        );
    }
    Ok(Regimen::new(all))
}

fn drug(patient: &PatientArgs) -> DrugGiven {
    match patient.drug {
        Drug::Racemic => DrugGiven::Racemic,
        Drug::Esketamine => DrugGiven::Esketamine,
    }
}

fn assemble(patient: &PatientArgs, subject: &Subject, pd: &[PdModelId]) -> Result<PatientModel> {
    PatientModel::new(patient.model, subject.covariates, patient.ke0, pd, drug(patient)).with_context(|| {
        format!(
            "could not build model {} for subject {}",
            patient.model, subject.id
        )
    })
}

fn grid(output: &OutputArgs) -> Result<Grid> {
    Ok(Grid::uniform(output.every.get(), output.until.get())?)
}

// ---------------------------------------------------------------------------------------------
// `models`

fn sampling(site: SamplingSite) -> &'static str {
    match site {
        SamplingSite::Arterial => "arterial",
        SamplingSite::Venous => "venous",
        SamplingSite::Unconfirmed => "not confirmed",
    }
}

fn range_text(range: Option<&std::ops::RangeInclusive<f64>>, unit: &str, open_above: f64) -> String {
    match range {
        Some(r) if *r.end() >= open_above => format!("≥ {} {unit}", r.start()),
        Some(r) => format!("{}–{} {unit}", r.start(), r.end()),
        None => "none published".into(),
    }
}

pub(crate) fn models(args: &ModelsArgs) -> Result<()> {
    if args.json {
        let pk: Vec<_> = ModelId::ALL
            .iter()
            .map(|m| {
                let i = m.info();
                json!({
                    "id": m.id(),
                    "name": i.name,
                    "citation": i.reference.citation,
                    "pmid": i.reference.pmid,
                    "doi": i.reference.doi,
                    "population": i.population,
                    "sampling_site": sampling(i.sampling_site),
                    "drug": format!("{:?}", i.enantiomer),
                    "compartments": i.compartments,
                    "covariate_formulas": i.covariate_formulas,
                    "validated_weight_kg": i.weight_range_kg.as_ref().map(|r| [*r.start(), *r.end()]),
                    "validated_age_years": i.age_range_years.as_ref().map(|r| [*r.start(), *r.end()]),
                    "ke0_per_min": i.ke0.get(),
                    "ke0_source": i.ke0_source.to_string(),
                    "variability": i.variability.map(|v| v.note),
                    "metabolite": i.metabolite,
                    "parameters_read_from": m.parameter_source_note(),
                    "caveats": i.caveats,
                })
            })
            .collect();
        let pd: Vec<_> = PdModelId::ALL
            .iter()
            .map(|p| {
                let m = p.model();
                json!({
                    "id": p.id(), "name": m.name, "endpoint": m.endpoint, "citation": m.reference.citation,
                    "doi": m.reference.doi, "pmid": m.reference.pmid, "ke0_per_min": m.ke0.get(),
                    "t_half_ke0_min": m.ke0.half_life(), "c50_ng_per_ml": m.c50_ng_per_ml,
                    "c50_refers_to": format!("{:?}", m.concentration_of), "gamma": m.gamma, "caveats": m.caveats,
                })
            })
            .collect();
        println!(
            "{}",
            serde_json::to_string_pretty(&json!({ "pk_models": pk, "pd_models": pd }))?
        );
        return Ok(());
    }
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<13} {:>4}  {:<10} {:<13} {:<15} {:<12} {:>9}  source",
        "model", "cmt", "drug", "sampling", "weight range", "age range", "ke0 /min"
    );
    for m in ModelId::ALL {
        let i = m.info();
        let source = match (i.reference.pmid, i.reference.doi) {
            (Some(p), Some(d)) => format!("PMID {p}, doi {d}"),
            (Some(p), None) => format!("PMID {p}"),
            (None, Some(d)) => format!("doi {d}"),
            (None, None) => String::new(),
        };
        let _ = writeln!(
            out,
            "{:<13} {:>4}  {:<10} {:<13} {:<15} {:<12} {:>9.4}  {}",
            m.id(),
            i.compartments,
            format!("{:?}", i.enantiomer),
            sampling(i.sampling_site),
            range_text(i.weight_range_kg.as_ref(), "kg", Kilograms::MAX),
            range_text(i.age_range_years.as_ref(), "y", Years::MAX),
            i.ke0.get(),
            source
        );
    }
    let _ = writeln!(out, "\nke0 sources:");
    for m in ModelId::ALL {
        let _ = writeln!(out, "  {:<13} {}", m.id(), m.info().ke0_source);
    }
    let _ = writeln!(out, "\nPD models:");
    for p in PdModelId::ALL {
        let m = p.model();
        let _ = writeln!(
            out,
            "  {:<13} C50 {:.1} ng/mL ({:?}), t½ke0 {:.1} min — {} (doi {})",
            p.id(),
            m.c50_ng_per_ml,
            m.concentration_of,
            m.ke0.half_life(),
            m.endpoint,
            m.reference.doi.unwrap_or("-")
        );
    }
    let _ = writeln!(
        out,
        "\nUse `ketaflow models --json` for populations, covariate formulas and caveats."
    );
    print!("{out}");
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `simulate`

/// Everything one subject's simulation produced.
struct SubjectResult {
    amounts: bool,
    subject: Subject,
    patient: PatientModel,
    trajectory: Trajectory,
    recovery: Option<(Recovery, Recovery)>,
    total_mg: f64,
}

fn recovery_pair(
    patient: &PatientModel,
    schedule: &Schedule,
    threshold: f64,
) -> Result<(Recovery, Recovery)> {
    let cp = time_below(
        &patient.system,
        schedule,
        Quantity::Plasma,
        threshold,
        DEFAULT_BRACKET_S,
    )?;
    let ce = time_below(
        &patient.system,
        schedule,
        Quantity::Response(0),
        threshold,
        DEFAULT_BRACKET_S,
    )?;
    Ok((cp, ce))
}

fn recovery_text(recovery: Recovery) -> String {
    match recovery {
        Recovery::NeverAbove => "never above the threshold".into(),
        Recovery::BelowFrom(t) => format!("{:.1} min ({:.0} s)", t / 60.0, t),
    }
}

fn recovery_json(recovery: Recovery) -> serde_json::Value {
    match recovery {
        Recovery::NeverAbove => serde_json::Value::Null,
        Recovery::BelowFrom(t) => json!(t),
    }
}

/// Column names (CSV and JSON) and values of one trajectory, beyond time, Cp and Ce.
/// The curves to report: Cp and Ce alone by the lean closed-form path when nothing else is asked
/// for (no amounts, no metabolite, no PD model), else every response step by step.
fn trajectory(patient: &PatientModel, schedule: &Schedule, grid: &Grid, amounts: bool) -> Result<Trajectory> {
    if amounts || !patient.metabolite_modes.is_empty() || !patient.pd.is_empty() {
        return Ok(run_simulation(&patient.system, schedule, grid)?);
    }
    let (mut cp, mut ce) = (Vec::new(), Vec::new());
    simulate_cp_ce(&patient.system, schedule, grid, &mut cp, &mut ce)?;
    Ok(Trajectory {
        times_s: grid.times(),
        cp,
        responses: vec![ce],
    })
}

fn extra_columns(patient: &PatientModel, trajectory: &Trajectory, amounts: bool) -> Vec<(String, Vec<f64>)> {
    let mut columns = Vec::new();
    if amounts {
        let v1 = patient.parameters.v1_l();
        columns.push((
            "central_mg".to_string(),
            trajectory.cp.iter().map(|c| c * v1).collect(),
        ));
        for (index, kind) in patient.system.response_kinds().iter().enumerate() {
            let name = match kind {
                ResponseKind::PeripheralAmount(j) => format!("peripheral{j}_mg"),
                ResponseKind::Eliminated => "eliminated_mg".to_string(),
                _ => continue,
            };
            columns.push((name, trajectory.responses[index].clone()));
        }
    }
    if !patient.metabolite_modes.is_empty() {
        let values = (0..trajectory.times_s.len())
            .map(|k| {
                patient
                    .metabolite_modes
                    .iter()
                    .map(|&m| trajectory.responses[m][k])
                    .sum()
            })
            .collect();
        columns.push(("norketamine_ug_per_ml".to_string(), values));
    }
    for (pd, index) in &patient.pd {
        let ce: Vec<f64> = trajectory.responses[*index]
            .iter()
            .map(|c| pd.relevant_concentration_ug_per_ml(*c, patient.concentration_drug()))
            .collect();
        let effect = ce.iter().map(|c| pd.fraction_of_max_effect(*c)).collect();
        columns.push((format!("{}_ce_s_ketamine_ug_per_ml", pd.id.id()), ce));
        columns.push((format!("{}_effect_fraction", pd.id.id()), effect));
    }
    columns
}

fn describe_patient(patient: &PatientModel, subject: &Subject) -> Vec<String> {
    let info = patient.model.info();
    let c = &subject.covariates;
    let mut lines = vec![
        format!("model      {} — {}", patient.model.id(), info.name),
        format!("source     {}", info.reference.citation),
        format!(
            "patient    {} : {} kg, {} years, {} cm, {}",
            subject.id,
            c.weight.get(),
            c.age.get(),
            c.height.get(),
            c.sex
        ),
        format!(
            "drug       {:?} model, {} samples; effect site ke0 {:.4} /min ({})",
            info.enantiomer,
            sampling(info.sampling_site),
            patient.ke0.get(),
            patient.ke0_source
        ),
    ];
    if matches!(patient.ke0_source, Ke0Source::OpentivaTimeToPeakOneMinute) {
        lines.push("note       this ke0 is not published pharmacology: Ce shows the algorithm, not a validated effect".into());
    }
    if let Some(note) = patient.drug_note() {
        lines.push(format!("note       {note}"));
    }
    for warning in &patient.warnings {
        lines.push(format!("warning    {warning}"));
    }
    lines
}

pub(crate) fn simulate(args: &SimulateArgs) -> Result<()> {
    let subjects = subjects(&args.patient, args.cohort.as_deref())?;
    let regimen = regimen(&args.doses)?;
    let grid = grid(&args.output)?;
    let threshold = args.output.threshold.map(MicrogramsPerMl::get);
    let results: Vec<SubjectResult> = subjects
        .par_iter()
        .map(|subject| -> Result<SubjectResult> {
            let patient = assemble(&args.patient, subject, &args.pd)?;
            let given = regimen
                .resolve(subject.covariates.weight)
                .with_context(|| format!("regimen for subject {}", subject.id))?;
            let schedule = patient.model_input(&given);
            let trajectory = trajectory(&patient, &schedule, &grid, args.amounts)?;
            let recovery = threshold
                .map(|t| recovery_pair(&patient, &schedule, t))
                .transpose()?;
            Ok(SubjectResult {
                amounts: args.amounts,
                subject: subject.clone(),
                patient,
                trajectory,
                recovery,
                total_mg: given.total_mg(),
            })
        })
        .collect::<Result<_>>()?;
    let cohort = args.cohort.is_some();
    write_simulation(&results, cohort, &args.output)?;
    if let Some(path) = &args.output.plot {
        let chart = simulation_chart(&results, threshold);
        write_plot(path, &chart)?;
    }
    Ok(())
}

/// The pump rate (mL/h) in force at each of the rising `times_s`: one pass, since the row in force
/// only moves forward (0 where no row covers a time), as the rows run in time order.
fn rates_at(tci: &TciResult, times_s: &[f64]) -> Vec<f64> {
    let mut row = 0;
    times_s
        .iter()
        .map(|&t| {
            // Robust to a time that goes back (not made by the engine's grids): start over.
            if tci.rows.get(row).is_some_and(|r| t < r.start_s) {
                row = 0;
            }
            while row < tci.rows.len() && tci.rows[row].end_s <= t {
                row += 1;
            }
            tci.rows
                .get(row)
                .filter(|r| r.start_s <= t)
                .map_or(0.0, |r| r.rate_ml_per_h)
        })
        .collect()
}

/// Numbers for CSV, written without allocating: concentrations and rates as the shortest text that
/// reads back as the same `f64` (Żmij), times in whole seconds as integers (`2400`, not `2400.0`).
#[derive(Default)]
struct CsvNumbers {
    float: zmij::Buffer,
    integer: itoa::Buffer,
}

impl CsvNumbers {
    fn value(&mut self, x: f64) -> &str {
        self.float.format(x)
    }

    fn time(&mut self, t_s: f64) -> &str {
        // Exactly representable whole numbers (|t| < 2^53) print as integers.
        if t_s.fract() == 0.0 && t_s.abs() < 9.0e15 {
            self.integer.format(t_s as i64)
        } else {
            self.float.format(t_s)
        }
    }
}

/// Bytes gathered before each write to standard output: a cohort's CSV is megabytes, and a write
/// per 8 KiB (the default) costs a system call each.
const OUTPUT_BUFFER: usize = 1 << 20;

/// CSV rows written straight into a buffered writer: numbers need no quoting, so only text fields
/// (subject ids, headers) go through the quoting rule of RFC 4180 (a field with a comma, a quote or
/// a line break is quoted, its quotes doubled).
struct CsvOut<W: std::io::Write> {
    out: W,
    numbers: CsvNumbers,
    row_started: bool,
}

impl<W: std::io::Write> CsvOut<W> {
    fn new(out: W) -> CsvOut<W> {
        CsvOut {
            out,
            numbers: CsvNumbers::default(),
            row_started: false,
        }
    }

    fn separator(&mut self) -> std::io::Result<()> {
        if self.row_started {
            self.out.write_all(b",")?;
        }
        self.row_started = true;
        Ok(())
    }

    fn text(&mut self, field: &str) -> std::io::Result<()> {
        self.separator()?;
        if field.contains([',', '"', '\n', '\r']) {
            self.out.write_all(b"\"")?;
            self.out.write_all(field.replace('"', "\"\"").as_bytes())?;
            self.out.write_all(b"\"")
        } else {
            self.out.write_all(field.as_bytes())
        }
    }

    fn number(&mut self, x: f64) -> std::io::Result<()> {
        self.separator()?;
        self.out.write_all(self.numbers.value(x).as_bytes())
    }

    fn time(&mut self, t_s: f64) -> std::io::Result<()> {
        self.separator()?;
        self.out.write_all(self.numbers.time(t_s).as_bytes())
    }

    fn end_row(&mut self) -> std::io::Result<()> {
        self.row_started = false;
        self.out.write_all(b"\n")
    }

    fn header(&mut self, names: &[impl AsRef<str>]) -> std::io::Result<()> {
        for name in names {
            self.text(name.as_ref())?;
        }
        self.end_row()
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// Prints (subject, note) lines to stderr: a note every one of several subjects has, once for all
/// of them; the others per subject, in order.
fn print_notes(notes: Vec<(String, String)>, subjects: usize) {
    let mut shared: Vec<&str> = Vec::new();
    if subjects > 1 {
        for (_, line) in &notes {
            if !shared.contains(&line.as_str()) && notes.iter().filter(|(_, l)| l == line).count() == subjects
            {
                shared.push(line);
            }
        }
    }
    for line in &shared {
        eprintln!("all {subjects} subjects: {line}");
    }
    for (subject, line) in &notes {
        if !shared.contains(&line.as_str()) {
            eprintln!("{subject}: {line}");
        }
    }
}

fn write_simulation(results: &[SubjectResult], cohort: bool, output: &OutputArgs) -> Result<()> {
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(OUTPUT_BUFFER, stdout.lock());
    if output.csv {
        let notes = results
            .iter()
            .flat_map(|r| {
                describe_patient(&r.patient, &r.subject)
                    .into_iter()
                    .filter(|l| l.starts_with("warning") || l.starts_with("note"))
                    .map(|l| (r.subject.id.clone(), l))
            })
            .collect();
        print_notes(notes, results.len());
        let mut writer = CsvOut::new(&mut out);
        for (i, r) in results.iter().enumerate() {
            let extra = extra_columns(&r.patient, &r.trajectory, r.amounts);
            if i == 0 {
                let mut header: Vec<String> = Vec::new();
                if cohort {
                    header.push("subject".into());
                }
                header.extend(["time_s", "cp_ug_per_ml", "ce_ug_per_ml"].map(String::from));
                header.extend(extra.iter().map(|(name, _)| name.clone()));
                writer.header(&header)?;
            }
            let ce = r.trajectory.ce();
            for k in 0..r.trajectory.times_s.len() {
                if cohort {
                    writer.text(&r.subject.id)?;
                }
                writer.time(r.trajectory.times_s[k])?;
                writer.number(r.trajectory.cp[k])?;
                writer.number(ce[k])?;
                for (_, values) in &extra {
                    writer.number(values[k])?;
                }
                writer.end_row()?;
            }
            if let Some((cp, ce)) = r.recovery {
                eprintln!(
                    "{}: Cp below threshold from {}; Ce from {}",
                    r.subject.id,
                    recovery_text(cp),
                    recovery_text(ce)
                );
            }
        }
        writer.flush()?;
        return Ok(());
    }
    if output.json {
        let subjects: Vec<_> = results
            .iter()
            .map(|r| {
                let mut columns = serde_json::Map::new();
                columns.insert("time_s".into(), json!(r.trajectory.times_s));
                columns.insert("cp_ug_per_ml".into(), json!(r.trajectory.cp));
                columns.insert("ce_ug_per_ml".into(), json!(r.trajectory.ce()));
                for (name, values) in extra_columns(&r.patient, &r.trajectory, r.amounts) {
                    columns.insert(name, json!(values));
                }
                json!({
                    "subject": r.subject.id,
                    "model": r.patient.model.id(),
                    "weight_kg": r.subject.covariates.weight.get(),
                    "age_years": r.subject.covariates.age.get(),
                    "ke0_per_min": r.patient.ke0.get(),
                    "ke0_source": r.patient.ke0_source.to_string(),
                    "warnings": r.patient.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "drug_note": r.patient.drug_note().map(|n| n.to_string()),
                    "total_dose_mg": r.total_mg,
                    "recovery_cp_below_threshold_from_s": r.recovery.map(|(cp, _)| recovery_json(cp)),
                    "recovery_ce_below_threshold_from_s": r.recovery.map(|(_, ce)| recovery_json(ce)),
                    "series": columns,
                })
            })
            .collect();
        let document = if cohort {
            json!({ "subjects": subjects })
        } else {
            subjects.into_iter().next().expect("one subject")
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
        return Ok(());
    }
    for r in results {
        for line in describe_patient(&r.patient, &r.subject) {
            writeln!(out, "{line}")?;
        }
        let extra = extra_columns(&r.patient, &r.trajectory, r.amounts);
        write!(out, "\n{:>9} {:>12} {:>12}", "time min", "Cp µg/mL", "Ce µg/mL")?;
        for (name, _) in &extra {
            write!(out, " {:>14}", short_name(name))?;
        }
        writeln!(out)?;
        for k in 0..r.trajectory.times_s.len() {
            write!(
                out,
                "{:>9.2} {:>12.5} {:>12.5}",
                r.trajectory.times_s[k] / 60.0,
                r.trajectory.cp[k],
                r.trajectory.ce()[k]
            )?;
            for (_, values) in &extra {
                write!(out, " {:>14.5}", values[k])?;
            }
            writeln!(out)?;
        }
        let (peak_idx, peak) = r
            .trajectory
            .cp
            .iter()
            .enumerate()
            .fold((0, 0.0), |best, (i, v)| if *v > best.1 { (i, *v) } else { best });
        writeln!(
            out,
            "\ntotal dose {:.2} mg; peak Cp on this grid {:.4} µg/mL at {:.1} min",
            r.total_mg,
            peak,
            r.trajectory.times_s[peak_idx] / 60.0
        )?;
        if let Some((cp, ce)) = r.recovery {
            writeln!(
                out,
                "below {} µg/mL for good: Cp from {}, Ce from {}",
                output.threshold.map_or(0.0, |t| t.get()),
                recovery_text(cp),
                recovery_text(ce)
            )?;
        }
        writeln!(out)?;
    }
    Ok(())
}

fn short_name(column: &str) -> String {
    column
        .replace("_ug_per_ml", " µg/mL")
        .replace("_s_ketamine", "")
        .replace("_effect_fraction", " E/Emax")
}

const COLOURS: [&str; 6] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2"];

fn simulation_chart(results: &[SubjectResult], threshold: Option<f64>) -> Chart {
    let first = &results[0];
    let mut chart = Chart {
        title: format!("Predicted ketamine concentrations — {}", first.patient.model.id()),
        subtitle: if results.len() == 1 {
            format!(
                "{} kg, {} years; ke0 {:.3} /min ({})",
                first.subject.covariates.weight.get(),
                first.subject.covariates.age.get(),
                first.patient.ke0.get(),
                first.patient.ke0_source
            )
        } else {
            format!("{} subjects", results.len())
        },
        y_label: "concentration (µg/mL)".into(),
        times_s: first.trajectory.times_s.clone(),
        ..Chart::default()
    };
    for (i, r) in results.iter().take(COLOURS.len()).enumerate() {
        let suffix = if results.len() > 1 {
            format!(" {}", r.subject.id)
        } else {
            String::new()
        };
        chart.curves.push(Curve {
            label: format!("Cp{suffix}"),
            colour: COLOURS[i],
            dashed: false,
            values: r.trajectory.cp.clone(),
            points: false,
        });
        // One subject: Cp and Ce in two colours; several: one colour per subject, Ce dashed.
        let ce_colour = if results.len() == 1 {
            COLOURS[1]
        } else {
            COLOURS[i]
        };
        chart.curves.push(Curve {
            label: format!("Ce{suffix}"),
            colour: ce_colour,
            dashed: true,
            values: r.trajectory.ce().to_vec(),
            points: false,
        });
    }
    if results.len() == 1 {
        for (name, values) in extra_columns(&first.patient, &first.trajectory, false)
            .into_iter()
            .filter(|(n, _)| n.ends_with("ug_per_ml"))
        {
            let colour = COLOURS[(2 + chart.curves.len()) % COLOURS.len()];
            chart.curves.push(Curve {
                label: short_name(&name),
                colour,
                dashed: false,
                values,
                points: false,
            });
        }
    }
    if let Some(t) = threshold {
        chart.levels.push(Level {
            label: format!("recovery threshold {t} µg/mL"),
            colour: "#2ca02c",
            value: t,
        });
    }
    chart
}

fn write_plot(path: &Path, chart: &Chart) -> Result<()> {
    std::fs::write(path, chart.to_svg())
        .with_context(|| format!("could not write plot {}", path.display()))?;
    eprintln!("plot written to {}", path.display());
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `tci`

fn parse_target_change(text: &str) -> Result<TargetStep> {
    let lower = text.to_ascii_lowercase();
    let (target, at) = lower
        .split_once(" at ")
        .or_else(|| lower.split_once(" from "))
        .with_context(|| format!("target change {text:?} must look like \"0.3ug/mL at 30min\""))?;
    let target: MicrogramsPerMl = target
        .trim()
        .parse()
        .with_context(|| format!("target change {text:?}"))?;
    let at: Seconds = at
        .trim()
        .parse()
        .with_context(|| format!("target change {text:?}"))?;
    Ok(TargetStep {
        from_s: at.get(),
        target_ug_per_ml: target.get(),
    })
}

pub(crate) fn tci(args: &TciArgs) -> Result<()> {
    let subjects = subjects(&args.patient, args.cohort.as_deref())?;
    let (site, first_target) = match (args.target_plasma, args.target_effect) {
        (Some(t), None) => (TargetSite::Plasma, t),
        (None, Some(t)) => (TargetSite::EffectSite, t),
        _ => bail!("give exactly one of --target-plasma and --target-effect"),
    };
    let mut targets = vec![TargetStep {
        from_s: 0.0,
        target_ug_per_ml: first_target.get(),
    }];
    for change in &args.then {
        targets.push(parse_target_change(change)?);
    }
    let settings = TciSettings {
        site,
        targets,
        until_s: args.duration.get(),
        interval_s: args.interval.get(),
        syringe: args.syringe,
        max_rate: args.max_rate,
    };
    let grid = grid(&args.output)?;
    let threshold = args.output.threshold.map(MicrogramsPerMl::get);
    let results: Vec<(SubjectResult, TciResult)> = subjects
        .par_iter()
        .map(|subject| -> Result<(SubjectResult, TciResult)> {
            let patient = assemble(&args.patient, subject, &[])?;
            let result = run_tci(&patient.system, &settings)
                .with_context(|| format!("TCI for subject {}", subject.id))?;
            let trajectory = trajectory(&patient, &result.schedule, &grid, false)?;
            let recovery = threshold
                .map(|t| recovery_pair(&patient, &result.schedule, t))
                .transpose()?;
            let total_mg = result.total_mg;
            Ok((
                SubjectResult {
                    amounts: false,
                    subject: subject.clone(),
                    patient,
                    trajectory,
                    recovery,
                    total_mg,
                },
                result,
            ))
        })
        .collect::<Result<_>>()?;
    let cohort = args.cohort.is_some();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(OUTPUT_BUFFER, stdout.lock());
    if args.output.csv {
        let mut writer = CsvOut::new(&mut out);
        let mut header: Vec<&str> = Vec::new();
        if cohort {
            header.push("subject");
        }
        header.extend(["time_s", "cp_ug_per_ml", "ce_ug_per_ml", "rate_ml_per_h"]);
        writer.header(&header)?;
        let warnings = results
            .iter()
            .flat_map(|(r, _)| {
                r.patient
                    .warnings
                    .iter()
                    .map(|w| (r.subject.id.clone(), format!("warning: {w}")))
            })
            .collect();
        print_notes(warnings, results.len());
        for (r, tci) in &results {
            let ce = r.trajectory.ce();
            let rates = rates_at(tci, &r.trajectory.times_s);
            for (k, (&t, &rate)) in r.trajectory.times_s.iter().zip(&rates).enumerate() {
                if cohort {
                    writer.text(&r.subject.id)?;
                }
                writer.time(t)?;
                writer.number(r.trajectory.cp[k])?;
                writer.number(ce[k])?;
                writer.number(rate)?;
                writer.end_row()?;
            }
        }
        writer.flush()?;
    } else if args.output.json {
        let subjects: Vec<_> = results
            .iter()
            .map(|(r, tci)| {
                json!({
                    "subject": r.subject.id,
                    "model": r.patient.model.id(),
                    "site": format!("{:?}", site),
                    "warnings": r.patient.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
                    "total_dose_mg": tci.total_mg,
                    "total_volume_ml": tci.total_mg / args.syringe.get(),
                    "pump_schedule": tci.rows.iter().map(|row| json!({
                        "start_s": row.start_s, "end_s": row.end_s, "target_ug_per_ml": row.target_ug_per_ml,
                        "rate_mg_per_h": row.rate_mg_per_h, "rate_ml_per_h": row.rate_ml_per_h,
                        "predicted_cp_end_ug_per_ml": row.cp_end, "predicted_ce_end_ug_per_ml": row.ce_end,
                    })).collect::<Vec<_>>(),
                    "series": {
                        "time_s": r.trajectory.times_s, "cp_ug_per_ml": r.trajectory.cp, "ce_ug_per_ml": r.trajectory.ce(),
                        "rate_ml_per_h": rates_at(tci, &r.trajectory.times_s),
                    },
                    "recovery_cp_below_threshold_from_s": r.recovery.map(|(cp, _)| recovery_json(cp)),
                    "recovery_ce_below_threshold_from_s": r.recovery.map(|(_, ce)| recovery_json(ce)),
                })
            })
            .collect();
        let document = if cohort {
            json!({ "subjects": subjects })
        } else {
            subjects.into_iter().next().expect("one subject")
        };
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
    } else {
        for (r, tci) in &results {
            for line in describe_patient(&r.patient, &r.subject) {
                writeln!(out, "{line}")?;
            }
            writeln!(
                out,
                "tci        {:?} target {} µg/mL for {:.1} min; syringe {}; max {}; update every {} s",
                site,
                first_target.get(),
                args.duration.get() / 60.0,
                args.syringe,
                args.max_rate,
                args.interval.get()
            )?;
            writeln!(
                out,
                "\n{:>9} {:>12} {:>12} {:>12}",
                "time min", "Cp µg/mL", "Ce µg/mL", "pump mL/h"
            )?;
            let rates = rates_at(tci, &r.trajectory.times_s);
            for k in 0..r.trajectory.times_s.len() {
                writeln!(
                    out,
                    "{:>9.2} {:>12.5} {:>12.5} {:>12.2}",
                    r.trajectory.times_s[k] / 60.0,
                    r.trajectory.cp[k],
                    r.trajectory.ce()[k],
                    rates[k]
                )?;
            }
            writeln!(
                out,
                "\ntotal {:.2} mg = {:.2} mL of {}",
                tci.total_mg,
                tci.total_mg / args.syringe.get(),
                args.syringe
            )?;
            if let Some((cp, ce)) = r.recovery {
                writeln!(
                    out,
                    "below {} µg/mL for good: Cp from {}, Ce from {}",
                    threshold.unwrap_or(0.0),
                    recovery_text(cp),
                    recovery_text(ce)
                )?;
            }
            writeln!(out)?;
        }
    }
    out.flush()?;
    drop(out);
    if let Some(path) = &args.output.plot {
        let subject_results: Vec<SubjectResult> = results.into_iter().map(|(r, _)| r).collect();
        let mut chart = simulation_chart(&subject_results, threshold);
        let site_name = match site {
            TargetSite::Plasma => "Plasma",
            TargetSite::EffectSite => "Effect-site",
        };
        chart.title = format!(
            "{site_name} TCI, target {} µg/mL — {}",
            first_target.get(),
            args.patient.model.id()
        );
        chart.levels.insert(
            0,
            Level {
                label: format!("target {} µg/mL", first_target.get()),
                colour: "#d62728",
                value: first_target.get(),
            },
        );
        write_plot(path, &chart)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// `population`

fn parse_cv(text: &str) -> Result<f64> {
    let trimmed = text.trim();
    let percent = trimmed.strip_suffix('%');
    let value = match percent {
        Some(percent) => percent.trim().parse::<f64>().map(|p| p / 100.0),
        None => trimmed.parse::<f64>(),
    }
    .with_context(|| format!("--cv {text:?} is not a coefficient of variation; write e.g. 30% or 0.3"))?;
    if !(0.0..=2.0).contains(&value) {
        // A bare number is a fraction: say so, since "30" most likely meant 30 %.
        if percent.is_none() && (0.0..=200.0).contains(&value) {
            bail!(
                "--cv {text:?} is read as a fraction ({} %), outside 0–2 (0–200 %); for {value} %, write {value}% or {}",
                value * 100.0,
                value / 100.0
            );
        }
        bail!("--cv {text:?} is outside 0–200 % (0–2 as a fraction)");
    }
    Ok(value)
}

pub(crate) fn population(args: &PopulationArgs) -> Result<()> {
    let subject = single_subject(&args.patient)?;
    let patient = assemble(&args.patient, &subject, &[])?;
    let given = regimen(&args.doses)?.resolve(subject.covariates.weight)?;
    let schedule = patient.model_input(&given);
    let info = patient.model.info();
    let variability = match (&args.cv, info.variability) {
        (Some(cv), _) => Variability::assumed_cv(parse_cv(cv)?)?,
        (None, Some(published)) => {
            let w = ketaflow_pkpd::population::omega_from_cv;
            Variability {
                cl: w(published.cl_cv),
                v1: w(published.v1_cv),
                peripheral: [(w(published.q2_cv), w(published.v2_cv)), (0.0, 0.0)],
                source: VariabilitySource::Published(published.note),
            }
        }
        (None, None) => bail!(
            "{} has no published inter-individual variability; give an assumed one with --cv 30% (results will be labelled as assumed)",
            patient.model
        ),
    };
    let settings = PopulationSettings {
        n_subjects: args.subjects,
        seed: args.seed,
        percentiles: args.percentiles.clone(),
        step_s: args.output.every.get(),
        until_s: args.output.until.get(),
    };
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} population [{bar:40}] {pos}/{len} time points ({eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
    };
    let bands = run_population(
        &patient.parameters,
        patient.ke0.per_second(),
        &schedule,
        &variability,
        &settings,
        &progress,
    )?;
    bar.finish_and_clear();
    let source = match &variability.source {
        VariabilitySource::Published(note) => format!("published: {note}"),
        VariabilitySource::Assumed { cv } => format!(
            "ASSUMED: {:.0} % CV on every clearance and volume (not published for this model)",
            cv * 100.0
        ),
        VariabilitySource::None => "none".into(),
    };
    let label = |p: f64| format!("p{}", p.to_string().replace('.', "_"));
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(OUTPUT_BUFFER, stdout.lock());
    if args.output.csv {
        eprintln!("variability: {source}");
        let mut writer = CsvOut::new(&mut out);
        let mut header = vec!["time_s".to_string()];
        header.extend(
            bands
                .percentiles
                .iter()
                .map(|p| format!("cp_{}_ug_per_ml", label(*p))),
        );
        header.extend(
            bands
                .percentiles
                .iter()
                .map(|p| format!("ce_{}_ug_per_ml", label(*p))),
        );
        writer.header(&header)?;
        for k in 0..bands.times_s.len() {
            writer.time(bands.times_s[k])?;
            for series in bands.cp.iter().chain(&bands.ce) {
                writer.number(series[k])?;
            }
            writer.end_row()?;
        }
        writer.flush()?;
    } else if args.output.json {
        let mut series = serde_json::Map::new();
        series.insert("time_s".into(), json!(bands.times_s));
        for (i, p) in bands.percentiles.iter().enumerate() {
            series.insert(format!("cp_{}_ug_per_ml", label(*p)), json!(bands.cp[i]));
            series.insert(format!("ce_{}_ug_per_ml", label(*p)), json!(bands.ce[i]));
        }
        let document = json!({
            "model": patient.model.id(), "subjects": args.subjects, "seed": args.seed,
            "variability": source, "warnings": patient.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "series": series,
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&document)?)?;
    } else {
        for line in describe_patient(&patient, &subject) {
            writeln!(out, "{line}")?;
        }
        writeln!(
            out,
            "population {} subjects, seed {}; variability {source}",
            args.subjects, args.seed
        )?;
        write!(out, "\n{:>9}", "time min")?;
        for p in &bands.percentiles {
            write!(out, " {:>11}", format!("Cp {}", label(*p)))?;
        }
        for p in &bands.percentiles {
            write!(out, " {:>11}", format!("Ce {}", label(*p)))?;
        }
        writeln!(out, "   (µg/mL)")?;
        for k in 0..bands.times_s.len() {
            write!(out, "{:>9.2}", bands.times_s[k] / 60.0)?;
            for c in bands.cp.iter().chain(bands.ce.iter()) {
                write!(out, " {:>11.5}", c[k])?;
            }
            writeln!(out)?;
        }
    }
    out.flush()?;
    drop(out);
    if let Some(path) = &args.output.plot {
        let n = bands.percentiles.len();
        let mut chart = Chart {
            title: format!("Population prediction — {}", patient.model.id()),
            subtitle: format!(
                "{} virtual patients of {} kg, seed {}; variability {}",
                args.subjects,
                subject.covariates.weight.get(),
                args.seed,
                if matches!(variability.source, VariabilitySource::Assumed { .. }) {
                    "assumed"
                } else {
                    "published"
                }
            ),
            y_label: "concentration (µg/mL)".into(),
            times_s: bands.times_s.clone(),
            ..Chart::default()
        };
        if n >= 2 {
            let range = format!("{}–{} %", bands.percentiles[0], bands.percentiles[n - 1]);
            chart.bands.push(Band {
                label: format!("Cp {range}"),
                colour: COLOURS[0],
                lower: bands.cp[0].clone(),
                upper: bands.cp[n - 1].clone(),
            });
            chart.bands.push(Band {
                label: format!("Ce {range}"),
                colour: COLOURS[1],
                lower: bands.ce[0].clone(),
                upper: bands.ce[n - 1].clone(),
            });
        }
        let middle = n / 2;
        chart.curves.push(Curve {
            label: format!("Cp {} %", bands.percentiles[middle]),
            colour: COLOURS[0],
            dashed: false,
            values: bands.cp[middle].clone(),
            points: false,
        });
        chart.curves.push(Curve {
            label: format!("Ce {} %", bands.percentiles[middle]),
            colour: COLOURS[1],
            dashed: true,
            values: bands.ce[middle].clone(),
            points: false,
        });
        if let Some(t) = args.output.threshold {
            chart.levels.push(Level {
                label: format!("threshold {}", t),
                colour: "#2ca02c",
                value: t.get(),
            });
        }
        write_plot(path, &chart)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_text_is_quoted_only_when_it_must_be() {
        let mut bytes = Vec::new();
        let mut csv = CsvOut::new(&mut bytes);
        csv.header(&["subject", "time_s"]).unwrap();
        csv.text("plain").unwrap();
        csv.time(60.0).unwrap();
        csv.end_row().unwrap();
        csv.text("Lee, \"J\"").unwrap();
        csv.number(0.25).unwrap();
        csv.end_row().unwrap();
        let text = String::from_utf8(bytes).unwrap();
        assert_eq!(text, "subject,time_s\nplain,60\n\"Lee, \"\"J\"\"\",0.25\n");
        // And the csv crate reads it back as written.
        let rows: Vec<csv::StringRecord> = csv::Reader::from_reader(text.as_bytes())
            .records()
            .map(Result::unwrap)
            .collect();
        assert_eq!(&rows[1][0], "Lee, \"J\"");
    }

    #[test]
    fn csv_numbers_read_back_exactly_and_whole_seconds_stay_integers() {
        let mut numbers = CsvNumbers::default();
        assert_eq!(numbers.time(2400.0), "2400");
        assert_eq!(numbers.time(0.0), "0");
        assert_eq!(numbers.time(12.5), "12.5");
        assert_eq!(numbers.value(0.5), "0.5");
        assert_eq!(numbers.value(f64::NAN), "NaN");
        for x in [
            0.1 + 0.2,
            1.234_567_890_123_456_7e-7,
            3.0e-300,
            52.5,
            std::f64::consts::PI,
        ] {
            let text = numbers.value(x).to_owned();
            assert_eq!(text.parse::<f64>().unwrap().to_bits(), x.to_bits(), "{text}");
        }
    }

    #[test]
    fn target_changes_and_cv_parse() {
        let step = parse_target_change("0.3ug/mL at 30min").unwrap();
        assert_eq!(
            step,
            TargetStep {
                from_s: 1800.0,
                target_ug_per_ml: 0.3
            }
        );
        assert!(parse_target_change("0.3ug/mL").is_err());
        assert_eq!(parse_cv("30%").unwrap(), 0.3);
        assert_eq!(parse_cv("0.25").unwrap(), 0.25);
        assert!(parse_cv("300%").is_err());
        assert!(parse_cv("lots").is_err());
        // A bare 30 is a fraction (3000 %): refused, saying how to write 30 %.
        assert_eq!(
            parse_cv("30").unwrap_err().to_string(),
            "--cv \"30\" is read as a fraction (3000 %), outside 0–2 (0–200 %); for 30 %, write 30% or 0.3"
        );
        assert_eq!(
            parse_cv("300%").unwrap_err().to_string(),
            "--cv \"300%\" is outside 0–200 % (0–2 as a fraction)"
        );
    }
}

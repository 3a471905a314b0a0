//! `ketaflow monitor-sim`: a bedside monitor on the command line. It connects to a Ketaflow MLLP
//! listener, sends an IHE PCD-01 ORU^R01 every interval with a scenario's vital signs, and prints
//! each acknowledgement, so `serve --demo --mllp 127.0.0.1:2575` plus the simulator makes a live
//! board. The values are illustrative, not physiology.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use ketaflow_hl7::MonitorReading;
use ketaflow_hl7::mllp::{CR, END, START};

/// What the simulated patient does.
#[derive(Debug, Clone, Copy, ValueEnum, PartialEq, Eq)]
pub(crate) enum Scenario {
    /// Steady, normal adult values.
    Normal,
    /// Blood pressure climbing by 6/3 mmHg a message from 128/80, past the 180 mmHg alarm.
    Hypertension,
    /// SpO2 falling by one point a message from 98 %, past the 92 % alarm.
    Desaturation,
}

#[derive(Debug, Args)]
pub(crate) struct MonitorSimArgs {
    /// The MLLP listener (`serve --mllp`), e.g. 127.0.0.1:2575
    #[arg(long, value_name = "ADDR:PORT")]
    mllp: String,
    /// The monitor's identifier, as registered (e.g. DEMO-MON-1)
    #[arg(long)]
    device: String,
    /// Time between messages: a number with s or ms (5s, 500ms)
    #[arg(long, default_value = "5s", value_parser = parse_interval)]
    every: Duration,
    /// What the values do
    #[arg(long, value_enum, default_value_t = Scenario::Normal)]
    scenario: Scenario,
    /// Stop after this many messages (default: until interrupted)
    #[arg(long)]
    count: Option<u64>,
}

fn parse_interval(text: &str) -> Result<Duration, String> {
    let wrong = || {
        format!(
            "{text:?} is not an interval; allowed: a number with s or ms, from 100ms to 3600s (e.g. 5s, 500ms)"
        )
    };
    let (number, unit) = if let Some(n) = text.strip_suffix("ms") {
        (n, 0.001)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1.0)
    } else {
        return Err(wrong());
    };
    let seconds = number.trim().parse::<f64>().map_err(|_| wrong())? * unit;
    if !(0.1..=3600.0).contains(&seconds) {
        return Err(wrong());
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// The `n`th (from 0) reading of a scenario.
pub(crate) fn reading(scenario: Scenario, n: u64) -> MonitorReading {
    let step = n as f64;
    let (systolic, diastolic, spo2) = match scenario {
        Scenario::Normal => (122.0, 78.0, 98.0),
        Scenario::Hypertension => (128.0 + 6.0 * step, 80.0 + 3.0 * step, 98.0),
        Scenario::Desaturation => (122.0, 78.0, (98.0 - step).max(70.0)),
    };
    MonitorReading {
        systolic_mmhg: Some(systolic.min(260.0)),
        diastolic_mmhg: Some(diastolic.min(150.0)),
        heart_rate_per_min: Some(72.0),
        spo2_percent: Some(spo2),
        respiratory_rate_per_min: Some(14.0),
        ..MonitorReading::default()
    }
}

pub(crate) fn run(args: &MonitorSimArgs) -> Result<()> {
    let mut stream = TcpStream::connect(&args.mllp)
        .with_context(|| format!("could not connect to the MLLP listener at {}", args.mllp))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut n = 0u64;
    loop {
        if args.count.is_some_and(|count| n >= count) {
            return Ok(());
        }
        let control_id = format!("SIM-{}-{}", std::process::id(), n + 1);
        let message = ketaflow_hl7::pcd01::message_for(
            &args.device,
            &control_id,
            time::OffsetDateTime::now_utc(),
            &reading(args.scenario, n),
        );
        let mut frame = vec![START];
        frame.extend_from_slice(message.as_bytes());
        frame.extend_from_slice(&[END, CR]);
        stream
            .write_all(&frame)
            .context("the listener closed the connection")?;
        let ack = read_frame(&mut stream)?;
        let msa = ack
            .split('\r')
            .find(|s| s.starts_with("MSA|"))
            .unwrap_or("MSA|? (no MSA in the answer)");
        let err = ack.split('\r').find(|s| s.starts_with("ERR|")).unwrap_or("");
        println!("{control_id}: {msa} {err}");
        n += 1;
        std::thread::sleep(args.every);
    }
}

fn read_frame(stream: &mut TcpStream) -> Result<String> {
    let mut answer = Vec::new();
    let mut byte = [0u8];
    while !answer.ends_with(&[END, CR]) {
        if stream.read(&mut byte).context("no acknowledgement")? == 0 {
            bail!("the listener closed the connection before acknowledging");
        }
        answer.push(byte[0]);
    }
    let start = answer.iter().position(|&b| b == START).map_or(0, |p| p + 1);
    Ok(String::from_utf8_lossy(&answer[start..answer.len() - 2]).into_owned())
}

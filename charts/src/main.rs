//! `charts`: SVG charts from gatehouse loadgen JSON results (see the library docs).

use clap::Parser;
use gatehouse_charts::{input, plan, stamp_date};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Draws SVG charts (latency CDFs, server CPU, memory, scaling) from gatehouse loadgen
/// `--json` results.
#[derive(Parser, Debug)]
#[command(name = "charts", version)]
struct Cli {
    /// Directory to write the SVGs into [default: the first input directory, or the directory
    /// of the first input file].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Loadgen JSON files, or directories of them (bench/compare.sh's output directory).
    #[arg(required = true, value_name = "INPUT")]
    inputs: Vec<PathBuf>,
}

/// The directory an input stands for: itself, or a file's parent.
fn dir_of(input: &Path) -> PathBuf {
    if input.is_dir() {
        return input.to_path_buf();
    }
    match input.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn run(cli: &Cli) -> Result<(), String> {
    let runs = input::load_all(&cli.inputs)?;
    if runs.is_empty() {
        return Err("no loadgen JSON file in the inputs".into());
    }
    let first = dir_of(&cli.inputs[0]);
    let date = std::fs::canonicalize(&first)
        .ok()
        .and_then(|d| d.file_name().and_then(|n| n.to_str()).and_then(stamp_date));
    let out = cli.out.clone().unwrap_or(first);
    let p = plan::plan(&runs, date.as_deref())?;
    for w in &p.warnings {
        eprintln!("charts: warning: {w}");
    }
    for s in &p.skipped {
        eprintln!("charts: {s}");
    }
    if p.charts.is_empty() {
        return Err(format!(
            "no chart written: none of the {} runs has data for any chart (see above)",
            runs.len()
        ));
    }
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    for (name, svg) in &p.charts {
        let path = out.join(name);
        std::fs::write(&path, svg).map_err(|e| format!("{}: {e}", path.display()))?;
        println!("{}", path.display());
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("charts: error: {e}");
            ExitCode::FAILURE
        }
    }
}

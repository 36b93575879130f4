//! Finding and reading the result files named on the command line.
//!
//! Each input is a loadgen JSON file or a directory of them (bench/compare.sh's output
//! directory); a directory contributes every `*.json` directly in it, in name order. A run's
//! name is its file stem.

use crate::run::Run;
use std::path::{Path, PathBuf};

/// Larger files are refused before reading (a loadgen result is a few KiB).
pub const MAX_FILE_BYTES: u64 = 16 << 20;

/// The JSON files an input names, sorted; an error names the path.
pub fn json_files(input: &Path) -> Result<Vec<PathBuf>, String> {
    let meta = std::fs::metadata(input).map_err(|e| format!("{}: {e}", input.display()))?;
    if !meta.is_dir() {
        return Ok(vec![input.to_path_buf()]);
    }
    let entries = std::fs::read_dir(input).map_err(|e| format!("{}: {e}", input.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| format!("{}: {e}", input.display()))?
            .path();
        if path.extension().is_some_and(|x| x == "json") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Reads and parses one run; the error names the file.
pub fn load(path: &Path) -> Result<Run, String> {
    let fail = |why: String| format!("{}: {why}", path.display());
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .ok_or_else(|| fail("the file name is not UTF-8".into()))?;
    let len = std::fs::metadata(path)
        .map_err(|e| fail(e.to_string()))?
        .len();
    if len > MAX_FILE_BYTES {
        return Err(fail(format!(
            "{len} bytes, more than a loadgen result ({MAX_FILE_BYTES} at most)"
        )));
    }
    let text = std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?;
    Run::from_json(stem, &text).map_err(fail)
}

/// Loads every run the inputs name; two runs with the same name are an error (their curves
/// could not be told apart).
pub fn load_all(inputs: &[PathBuf]) -> Result<Vec<Run>, String> {
    let mut runs: Vec<(PathBuf, Run)> = Vec::new();
    for input in inputs {
        for file in json_files(input)? {
            let run = load(&file)?;
            if let Some((first, _)) = runs.iter().find(|(_, r)| r.name.stem == run.name.stem) {
                return Err(format!(
                    "run {} given twice: {} and {}",
                    run.name.stem,
                    first.display(),
                    file.display()
                ));
            }
            runs.push((file, run));
        }
    }
    Ok(runs.into_iter().map(|(_, r)| r).collect())
}

//! The charts committed in `docs/charts/` (shown by README.md and BENCHMARKS.md) are exactly
//! what `bench/charts.sh bench/data/<newest> --out docs/charts` draws from the committed
//! measurements: regenerated, never hand-edited or left stale. After a new `bench/compare.sh`
//! run is committed under `bench/data/`, redraw with that command.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("charts/ sits in the repository root")
        .to_path_buf()
}

/// The newest measurement directory under bench/data/ (compare.sh names them by UTC time).
fn newest_data() -> PathBuf {
    let data = repo().join("bench/data");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&data)
        .unwrap_or_else(|e| panic!("{}: {e}", data.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    dirs.pop()
        .unwrap_or_else(|| panic!("no measurement directory under {}", data.display()))
}

#[test]
fn committed_charts_are_drawn_from_the_committed_data() {
    let data = newest_data();
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("charts-committed");
    let _ = std::fs::remove_dir_all(&out);
    let status = Command::new(env!("CARGO_BIN_EXE_charts"))
        .arg("--out")
        .arg(&out)
        .arg(&data)
        .output()
        .expect("run the charts binary");
    assert!(
        status.status.success(),
        "charts failed on {}: {}",
        data.display(),
        String::from_utf8_lossy(&status.stderr)
    );
    let committed = repo().join("docs/charts");
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".svg"))
            .collect();
        v.sort();
        v
    };
    assert_eq!(
        names(&committed),
        names(&out),
        "docs/charts/ does not hold the charts of {}; redraw: bench/charts.sh {} --out docs/charts",
        data.display(),
        data.display()
    );
    for name in names(&out) {
        let drawn = std::fs::read(out.join(&name)).unwrap();
        let kept = std::fs::read(committed.join(&name)).unwrap();
        assert!(
            drawn == kept,
            "docs/charts/{name} differs from what {} draws; redraw: bench/charts.sh {} --out \
             docs/charts",
            data.display(),
            data.display()
        );
    }
}

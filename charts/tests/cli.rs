//! The `charts` binary end to end on the synthetic fixtures (tests/fixtures/README.md):
//! which files it writes, that each is well-formed SVG with the series and axis titles, and
//! how it fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

/// A fresh, empty output directory under the target dir (removed first if a previous run left
/// it).
fn out_dir(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("charts-{name}"));
    let _ = std::fs::remove_dir_all(&d);
    d
}

fn charts(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_charts"))
        .args(args)
        .output()
        .expect("run the charts binary")
}

fn render(input: &Path, out: &Path) -> Output {
    charts(&["--out".as_ref(), out.as_os_str(), input.as_os_str()])
}

/// Parses the SVG and returns all its text content, one string.
fn svg_text(path: &Path) -> String {
    let svg = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(
        svg.starts_with("<svg"),
        "{} does not start with <svg",
        path.display()
    );
    let doc = roxmltree::Document::parse(&svg)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts: Vec<&str> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(str::trim)
        .collect();
    texts.join("\n")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn compare_run_yields_every_chart_with_both_servers() {
    let out = out_dir("compare");
    let o = render(&fixtures("compare"), &out);
    assert!(o.status.success(), "charts failed: {}", stderr(&o));
    let expect = [
        (
            "latency-echo.svg",
            &[
                "gatehouse, 2 I/O threads",
                "pinus 1.7.4",
                "latency (µs, log scale)",
                "percentile (tail-expanded)",
                "99.9%",
                "1,000 clients",
            ][..],
        ),
        (
            "latency-blast.svg",
            &[
                "gatehouse, 2 I/O threads",
                "gatehouse, 1 I/O thread",
                "pinus 1.7.4",
                "99.999%",
            ][..],
        ),
        (
            "latency-setup.svg",
            &["gatehouse, 2 I/O threads", "pinus 1.7.4"][..],
        ),
        (
            "latency-saturation.svg",
            &["gatehouse, 2 I/O threads", "pinus 1.7.4"][..],
        ),
        (
            "cpu.svg",
            &[
                "gatehouse, 2 I/O threads",
                "pinus 1.7.4",
                "server CPU per push (µs)",
                "server CPU per setup (µs)",
                "pinus/gatehouse = 4×",
                "10,000 clients",
            ][..],
        ),
        (
            "memory.svg",
            &[
                "gatehouse, 2 I/O threads",
                "pinus 1.7.4",
                "bytes per session (VmRSS delta)",
                "pinus/gatehouse = 5.45×",
            ][..],
        ),
        (
            "scaling.svg",
            &[
                "gatehouse, 2 I/O threads",
                "pinus 1.7.4",
                "connections (bound sessions, log scale)",
                "delivered pushes/s",
                "100–10,000 clients",
            ][..],
        ),
    ];
    for (file, needles) in expect {
        let text = svg_text(&out.join(file));
        for n in needles {
            assert!(text.contains(n), "{file} lacks {n:?}; its text:\n{text}");
        }
        assert!(
            text.contains("machine: SYNTHETIC fixture CPU, nproc 2"),
            "{file} lacks the machine footer"
        );
    }
    // The 10k runs have no `latencies`: no 10k latency chart, and the tool says why.
    assert!(!out.join("latency-blast-10k.svg").exists());
    let err = stderr(&o);
    assert!(
        err.contains("latency-blast-10k.svg: not written") && err.contains("gate-10k"),
        "stderr does not explain the missing 10k chart:\n{err}"
    );
    // fanout ran nowhere: no chart and nothing to say.
    assert!(!out.join("latency-fanout.svg").exists());
    let written: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(
        written.len(),
        expect.len(),
        "stdout lists the written files: {written:?}"
    );
}

#[test]
fn a_run_without_latencies_gets_no_latency_chart_and_a_warning() {
    let out = out_dir("old");
    let o = render(&fixtures("no-latencies"), &out);
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "nothing to draw is a failure: {err}"
    );
    assert!(err.contains("latency-echo.svg: not written"), "{err}");
    assert!(err.contains("gate-1k"), "the warning names the run: {err}");
    assert!(err.contains("no chart written"), "{err}");
    let any_svg = std::fs::read_dir(&out).map(|d| d.count()).unwrap_or(0);
    assert_eq!(any_svg, 0, "no file may be written");

    // Next to runs that have latencies, it is a named warning and the chart is drawn.
    let out = out_dir("mixed");
    let o = charts(&[
        "--out".as_ref(),
        out.as_os_str(),
        fixtures("no-latencies/gate-1k.json").as_os_str(),
        fixtures("compare/pinus-1k.json").as_os_str(),
    ]);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains(
            "latency-echo.svg: no curve for run gate-1k: its JSON has no `latencies` array"
        ),
        "{err}"
    );
    let text = svg_text(&out.join("latency-echo.svg"));
    assert!(
        text.contains("pinus 1.7.4") && !text.contains("gatehouse, 2"),
        "{text}"
    );
}

#[test]
fn a_single_run_gets_its_latency_charts() {
    let out = out_dir("single");
    let o = render(&fixtures("compare/gate-1k.json"), &out);
    let err = stderr(&o);
    assert!(o.status.success(), "{err}");
    for f in [
        "latency-echo.svg",
        "latency-blast.svg",
        "latency-setup.svg",
        "latency-saturation.svg",
    ] {
        assert!(
            svg_text(&out.join(f)).contains("gatehouse, 2 I/O threads"),
            "{f}"
        );
    }
    assert!(!out.join("cpu.svg").exists() && !out.join("memory.svg").exists());
    assert!(
        err.contains("cpu.svg: not written: it compares servers"),
        "{err}"
    );
}

#[test]
fn bad_json_names_the_file_and_exits_1() {
    let out = out_dir("bad");
    let o = render(&fixtures("bad"), &out);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("broken.json") && err.contains("invalid JSON"),
        "{err}"
    );
    let o = render(&fixtures("does-not-exist"), &out);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("does-not-exist"));
}

#[test]
fn usage_errors_exit_2() {
    let o = charts(&["--bogus".as_ref(), fixtures("compare").as_os_str()]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let o = charts(&[]);
    assert_eq!(o.status.code(), Some(2), "an input is required");
    let o = charts(&["--help".as_ref()]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("--out <DIR>"));
}

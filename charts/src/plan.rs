//! Which charts a set of runs yields, and why the others are not drawn.
//!
//! - Runs named `<server>-scale-<N>` feed only `scaling.svg`.
//! - The other runs are grouped by client count (`settings.clients`). The most common count
//!   (the smaller on a tie) is the main one: its latency charts are `latency-<scenario>.svg`;
//!   another count N gets `latency-<scenario>-<N>.svg` (10000 → `-10k`).
//! - `cpu.svg` and `memory.svg` compare servers, so they need values from at least two
//!   servers; each client count is one bar group.
//!
//! A chart without data is never drawn: [`Plan::skipped`] says which file and why, and
//! [`Plan::warnings`] names every run that lacks a curve or bar it could have had.

use crate::chart::bars::{Group, Panel};
use crate::chart::{self, Series};
use crate::latency::Latency;
use crate::name::Server;
use crate::numfmt::{count_suffix, grouped, short};
use crate::run::Run;

/// The latency keys the loadgen writes, in chart order, with their chart titles.
pub const LATENCY_KEYS: [(&str, &str); 5] = [
    ("echo.rtt", "Request round trip at a fixed rate (echo)"),
    ("blast.latency", "Push delivery latency (blast)"),
    ("fanout.latency", "Broadcast delivery latency (fan-out)"),
    ("setup.latency", "Session setup latency"),
    ("saturation.rtt", "Round trip at saturation (closed loop)"),
];

/// The CPU chart's panels: title, row key, y axis title.
const CPU_PANELS: [(&str, &str, &str); 2] = [
    (
        "server CPU per push",
        "blast.server_cpu_per_push",
        "server CPU per push (µs)",
    ),
    (
        "server CPU per session setup",
        "setup.server_cpu_per_setup",
        "server CPU per setup (µs)",
    ),
];

/// At most this many latency keys beyond [`LATENCY_KEYS`] get a chart (one file each).
const MAX_EXTRA_KEYS: usize = 16;

/// The memory chart's row key.
const RSS_KEY: &str = "memory.rss_per_session";
/// The scaling chart's row key.
const RATE_KEY: &str = "blast.pushes_per_s";

/// The outcome: SVG documents to write, charts not drawn, and warnings.
#[derive(Debug, Default)]
pub struct Plan {
    /// `(file name, SVG text)`.
    pub charts: Vec<(String, String)>,
    /// One line per chart not drawn: the file and the reason.
    pub skipped: Vec<String>,
    /// Runs that lack a curve or bar, and entries that were unreadable.
    pub warnings: Vec<String>,
}

/// Plans and renders every chart for `runs`; `date` goes into the footer when known.
pub fn plan(runs: &[Run], date: Option<&str>) -> Result<Plan, String> {
    let mut p = Plan::default();
    for r in runs {
        p.warnings.extend(r.warnings.iter().cloned());
    }
    let ctx = Context::new(runs, date);
    let mut plain: Vec<&Run> = Vec::new();
    for r in runs.iter().filter(|r| r.name.scale.is_none()) {
        match r.clients {
            Some(_) => plain.push(r),
            None => p.warnings.push(format!(
                "run {}: no settings.clients, left out of the latency, CPU and memory charts",
                r.name.stem
            )),
        }
    }
    let groups = by_clients(&plain);
    latency_charts(&ctx, &groups, &mut p)?;
    bar_chart(&ctx, &groups, Bars::Cpu, &mut p)?;
    bar_chart(&ctx, &groups, Bars::Memory, &mut p)?;
    scaling_chart(&ctx, runs, &mut p)?;
    Ok(p)
}

/// What every chart shares: the footer and a stable colour per series label.
struct Context {
    footer: String,
    labels: Vec<String>,
}

impl Context {
    fn new(runs: &[Run], date: Option<&str>) -> Context {
        let machine = runs
            .iter()
            .find_map(|r| r.machine.cpu.as_ref().map(|c| (c, r)));
        let mut footer = match machine {
            Some((cpu, r)) => match r.machine.nproc {
                Some(n) => format!("machine: {cpu}, nproc {n}"),
                None => format!("machine: {cpu}"),
            },
            None => "machine: not recorded".to_string(),
        };
        if let Some(d) = date {
            footer.push_str(&format!(" · {d}"));
        }
        footer.push_str(" · gatehouse loadgen, loopback");
        // Colours by server, then the most I/O threads first (the main gatehouse setup gets
        // the first colour).
        let mut keyed: Vec<(Server, std::cmp::Reverse<Option<u64>>, String)> = runs
            .iter()
            .map(|r| {
                (
                    r.name.server.clone(),
                    std::cmp::Reverse(r.io_threads),
                    r.label(),
                )
            })
            .collect();
        keyed.sort();
        keyed.dedup();
        Context {
            footer,
            labels: keyed.into_iter().map(|(_, _, l)| l).collect(),
        }
    }

    /// The colour index of a label.
    fn color(&self, label: &str) -> usize {
        self.labels.iter().position(|l| l == label).unwrap_or(0)
    }

    /// Series for `runs` in colour order, labels made unique with the run name when needed.
    fn series(&self, runs: &[&Run]) -> Vec<Series> {
        runs.iter()
            .map(|r| {
                let label = r.label();
                let twins = runs.iter().filter(|o| o.label() == label).count();
                Series {
                    color: self.color(&label),
                    label: if twins > 1 {
                        format!("{label} [{}]", r.name.stem)
                    } else {
                        label
                    },
                }
            })
            .collect()
    }

    /// `runs` sorted by colour, then name.
    fn ordered<'a>(&self, mut runs: Vec<&'a Run>) -> Vec<&'a Run> {
        runs.sort_by_key(|r| {
            let label = r.label();
            let c = self.labels.iter().position(|l| *l == label);
            (c, r.name.stem.clone())
        });
        runs
    }
}

/// Runs grouped by client count, ascending, with the main count first.
fn by_clients<'a>(runs: &[&'a Run]) -> Vec<(u64, bool, Vec<&'a Run>)> {
    let mut groups: Vec<(u64, bool, Vec<&'a Run>)> = Vec::new();
    for &r in runs {
        let Some(c) = r.clients else { continue };
        match groups.iter_mut().find(|g| g.0 == c) {
            Some(g) => g.2.push(r),
            None => groups.push((c, false, vec![r])),
        }
    }
    groups.sort_by_key(|g| g.0);
    let main = groups
        .iter()
        .enumerate()
        .max_by_key(|(i, g)| (g.2.len(), std::cmp::Reverse(*i)))
        .map(|(i, _)| i);
    if let Some(i) = main {
        groups[i].1 = true;
    }
    groups
}

/// A scenario as a file-name part: ASCII letters, digits, `_` and `-` only.
fn file_part(s: &str) -> String {
    s.chars()
        .take(40)
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn latency_charts(
    ctx: &Context,
    groups: &[(u64, bool, Vec<&Run>)],
    p: &mut Plan,
) -> Result<(), String> {
    for (clients, main, runs) in groups {
        let suffix = if *main {
            String::new()
        } else {
            format!("-{}", count_suffix(*clients))
        };
        let mut keys: Vec<String> = LATENCY_KEYS.iter().map(|k| k.0.to_string()).collect();
        for r in runs {
            for l in r.latencies.iter().flatten() {
                if keys.contains(&l.key) {
                    continue;
                }
                if keys.len() >= LATENCY_KEYS.len() + MAX_EXTRA_KEYS {
                    p.warnings.push(format!(
                        "run {}: latency key {} not drawn: more than {MAX_EXTRA_KEYS} unknown keys",
                        r.name.stem, l.key
                    ));
                    continue;
                }
                keys.push(l.key.clone());
            }
        }
        for key in keys {
            let scenario = key.split('.').next().unwrap_or(&key).to_string();
            let file = format!("latency-{}{suffix}.svg", file_part(&scenario));
            let with = ctx.ordered(
                runs.iter()
                    .copied()
                    .filter(|r| r.latency(&key).is_some())
                    .collect(),
            );
            let ran: Vec<&Run> = runs.iter().copied().filter(|r| r.ran(&scenario)).collect();
            if with.is_empty() {
                if !ran.is_empty() {
                    let names: Vec<&str> = ran.iter().map(|r| r.name.stem.as_str()).collect();
                    p.skipped.push(format!(
                        "{file}: not written: no run at {} clients has `{key}` latencies \
                         (runs of scenario {scenario}: {}; their JSON has no `latencies` entry for it)",
                        grouped(*clients),
                        names.join(", ")
                    ));
                }
                continue;
            }
            for r in ran.iter().filter(|r| r.latency(&key).is_none()) {
                let why = if r.latencies.is_none() {
                    "its JSON has no `latencies` array"
                } else {
                    "no entry for this key"
                };
                p.warnings
                    .push(format!("{file}: no curve for run {}: {why}", r.name.stem));
            }
            let series = ctx.series(&with);
            let curves: Vec<(Series, &Latency)> = series
                .into_iter()
                .zip(&with)
                .filter_map(|(s, r)| r.latency(&key).map(|l| (s, l)))
                .collect();
            let name = LATENCY_KEYS
                .iter()
                .find(|k| k.0 == key)
                .map_or(key.as_str(), |k| k.1);
            let title = format!("{name}, {} clients: latency CDF", grouped(*clients));
            let svg = chart::latency::render(&title, &curves, &ctx.footer)
                .map_err(|e| format!("{file}: {e}"))?;
            p.charts.push((file, svg));
        }
    }
    Ok(())
}

/// The two bar charts.
#[derive(Clone, Copy)]
enum Bars {
    Cpu,
    Memory,
}

fn bar_chart(
    ctx: &Context,
    groups: &[(u64, bool, Vec<&Run>)],
    which: Bars,
    p: &mut Plan,
) -> Result<(), String> {
    let (file, specs): (&str, Vec<(&str, &str, &str)>) = match which {
        Bars::Cpu => ("cpu.svg", CPU_PANELS.to_vec()),
        Bars::Memory => (
            "memory.svg",
            vec![(
                "RSS per idle bound session",
                RSS_KEY,
                "bytes per session (VmRSS delta)",
            )],
        ),
    };
    let all: Vec<&Run> = ctx.ordered(groups.iter().flat_map(|g| g.2.iter().copied()).collect());
    // One series per label (a colour in the legend), shared by the groups; a run whose label
    // another run of its group also has gets its own series, named after the run.
    let mut series: Vec<Series> = Vec::new();
    let mut series_of: Vec<usize> = Vec::new();
    for r in &all {
        let twins = groups
            .iter()
            .find(|g| g.2.iter().any(|o| std::ptr::eq(*o, *r)))
            .map_or(0, |g| g.2.iter().filter(|o| o.label() == r.label()).count());
        let s = Series {
            color: ctx.color(&r.label()),
            label: if twins > 1 {
                format!("{} [{}]", r.label(), r.name.stem)
            } else {
                r.label()
            },
        };
        series_of.push(match series.iter().position(|x| *x == s) {
            Some(i) => i,
            None => {
                series.push(s);
                series.len() - 1
            }
        });
    }
    let mut panels = Vec::new();
    let mut servers: Vec<&Server> = Vec::new();
    let mut negative = Vec::new();
    for (title, key, y_desc) in &specs {
        let mut out = Vec::new();
        for (clients, _, runs) in groups {
            let bars: Vec<(usize, f64)> = all
                .iter()
                .enumerate()
                .filter(|(_, r)| runs.iter().any(|g| std::ptr::eq(*g, **r)))
                .filter_map(|(i, r)| r.value(key).map(|v| (i, v)))
                .filter(|&(i, v)| {
                    // A negative cost (e.g. RSS shrank during the run) is no bar height.
                    if v < 0.0 {
                        negative.push(format!(
                            "{file}: no bar for run {}: {key} is negative ({v})",
                            all[i].name.stem
                        ));
                    }
                    v >= 0.0
                })
                .collect();
            let runs_of_bars: Vec<usize> = bars.iter().map(|b| b.0).collect();
            if bars.is_empty() {
                continue;
            }
            for (i, _) in &bars {
                if !servers.contains(&&all[*i].name.server) {
                    servers.push(&all[*i].name.server);
                }
            }
            let reference = |s: Server| {
                bars.iter()
                    .filter(|(i, _)| all[*i].name.server == s)
                    .min_by_key(|(i, _)| all[*i].name.stem.len())
                    .map(|b| b.1)
            };
            let note = match (reference(Server::Pinus), reference(Server::Gatehouse)) {
                (Some(pv), Some(gv)) if gv > 0.0 => {
                    Some(format!("pinus/gatehouse = {}×", short(pv / gv)))
                }
                _ => None,
            };
            out.push(Group {
                name: format!("{} clients", grouped(*clients)),
                bars: runs_of_bars
                    .iter()
                    .zip(&bars)
                    .map(|(&i, b)| (series_of[i], b.1))
                    .collect(),
                note,
            });
        }
        if !out.is_empty() {
            panels.push(Panel {
                title: title.to_string(),
                y_desc: y_desc.to_string(),
                groups: out,
            });
        }
    }
    p.warnings.append(&mut negative);
    let keys: Vec<&str> = specs.iter().map(|s| s.1).collect();
    if panels.is_empty() {
        p.skipped.push(format!(
            "{file}: not written: no run has {}",
            keys.join(" or ")
        ));
        return Ok(());
    }
    if servers.len() < 2 {
        let only: Vec<&str> = servers.iter().map(|s| s.display()).collect();
        p.skipped.push(format!(
            "{file}: not written: it compares servers, and only {} has {}",
            only.join(", "),
            keys.join(" or ")
        ));
        return Ok(());
    }
    for r in &all {
        // Only runs that ran the scenario could have had a bar (gate-1k-t1 runs blast only).
        let ran = keys
            .iter()
            .any(|k| k.split('.').next().is_some_and(|s| r.ran(s)));
        if ran && keys.iter().all(|k| r.value(k).is_none()) {
            p.warnings.push(format!(
                "{file}: no bar for run {}: no {}",
                r.name.stem,
                keys.join(" or ")
            ));
        }
    }
    let counts: Vec<String> = groups.iter().map(|g| grouped(g.0)).collect();
    let what = match which {
        Bars::Cpu => "Server CPU time per operation",
        Bars::Memory => "Memory per idle bound session",
    };
    let title = format!(
        "{what} at {} clients (lower is better)",
        counts.join(" and ")
    );
    let svg = chart::bars::render(&title, &series, &panels, &ctx.footer)
        .map_err(|e| format!("{file}: {e}"))?;
    p.charts.push((file.to_string(), svg));
    Ok(())
}

fn scaling_chart(ctx: &Context, runs: &[Run], p: &mut Plan) -> Result<(), String> {
    const FILE: &str = "scaling.svg";
    let scale: Vec<&Run> = ctx.ordered(runs.iter().filter(|r| r.name.scale.is_some()).collect());
    let mut lines: Vec<(Series, Vec<(f64, f64)>)> = Vec::new();
    for r in &scale {
        let (Some(n), Some(v)) = (r.clients.or(r.name.scale), r.value(RATE_KEY)) else {
            p.warnings.push(format!(
                "{FILE}: no point for run {}: no {RATE_KEY}",
                r.name.stem
            ));
            continue;
        };
        let label = r.label();
        let color = ctx.color(&label);
        match lines.iter_mut().find(|l| l.0.label == label) {
            Some(l) => l.1.push((n as f64, v)),
            None => lines.push((Series { label, color }, vec![(n as f64, v)])),
        }
    }
    if lines.is_empty() {
        p.skipped.push(format!(
            "{FILE}: not written: no <server>-scale-<N> run with {RATE_KEY}"
        ));
        return Ok(());
    }
    for l in &mut lines {
        l.1.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    let xs: Vec<u64> = {
        let mut v: Vec<u64> = lines
            .iter()
            .flat_map(|l| l.1.iter().map(|q| q.0 as u64))
            .collect();
        v.sort_unstable();
        v
    };
    let span = match (xs.first(), xs.last()) {
        (Some(a), Some(b)) if a != b => format!("{}–{} clients", grouped(*a), grouped(*b)),
        (Some(a), _) => format!("{} clients", grouped(*a)),
        _ => String::new(),
    };
    let title = format!("Delivered pushes/s vs connections (blast, {span})");
    let svg =
        chart::scaling::render(&title, &lines, &ctx.footer).map_err(|e| format!("{FILE}: {e}"))?;
    p.charts.push((FILE.to_string(), svg));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(stem: &str, clients: u64) -> Run {
        let json = format!(r#"{{"settings": {{"clients": {clients}}}, "rows": []}}"#);
        Run::from_json(stem, &json).unwrap()
    }

    #[test]
    fn the_most_common_client_count_is_the_main_one() {
        let runs = [
            run("gate-1k", 1000),
            run("pinus-1k", 1000),
            run("gate-10k", 10000),
        ];
        let refs: Vec<&Run> = runs.iter().collect();
        let g = by_clients(&refs);
        let main: Vec<(u64, bool)> = g.iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(main, [(1000, true), (10000, false)]);
        // A tie goes to the smaller count.
        let runs = [run("gate-a", 5000), run("gate-b", 200)];
        let refs: Vec<&Run> = runs.iter().collect();
        let main: Vec<(u64, bool)> = by_clients(&refs).iter().map(|g| (g.0, g.1)).collect();
        assert_eq!(main, [(200, true), (5000, false)]);
    }

    #[test]
    fn another_client_count_gets_its_own_latency_files() {
        let lat =
            r#"[{"key": "blast.latency", "count": 100, "cdf": [[0, 10], [0.5, 20], [1, 90]]}]"#;
        let mk = |stem: &str, clients: u64| {
            let json = format!(
                r#"{{"settings": {{"clients": {clients}}}, "latencies": {lat},
                    "rows": [{{"key": "blast.pushes_per_s", "scenario": "blast", "value": 1}}]}}"#
            );
            Run::from_json(stem, &json).unwrap()
        };
        let runs = [
            mk("gate-1k", 1000),
            mk("pinus-1k", 1000),
            mk("gate-10k", 10000),
        ];
        let p = plan(&runs, Some("2026-12-05 21:38 UTC")).unwrap();
        let files: Vec<&str> = p.charts.iter().map(|c| c.0.as_str()).collect();
        assert!(files.contains(&"latency-blast.svg"), "{files:?}");
        assert!(files.contains(&"latency-blast-10k.svg"), "{files:?}");
        let ten = &p
            .charts
            .iter()
            .find(|c| c.0 == "latency-blast-10k.svg")
            .unwrap()
            .1;
        assert!(ten.contains("10,000 clients") && !ten.contains("pinus"));
        assert!(
            ten.contains("2026-12-05 21:38 UTC"),
            "the date is in the footer"
        );
        assert!(p
            .skipped
            .iter()
            .any(|s| s.starts_with("scaling.svg: not written")));
    }

    #[test]
    fn file_names_are_sanitised() {
        assert_eq!(file_part("echo"), "echo");
        assert_eq!(file_part("../x y"), "___x_y");
        assert_eq!(file_part(&"a".repeat(100)).len(), 40);
    }

    #[test]
    fn negative_values_are_not_drawn() {
        let mk = |stem: &str, rss: f64| {
            let json = format!(
                r#"{{"settings": {{"clients": 1000}}, "rows": [{{"key": "{RSS_KEY}", "value": {rss}}}]}}"#
            );
            Run::from_json(stem, &json).unwrap()
        };
        let p = plan(&[mk("gate-1k", -50.0), mk("pinus-1k", 9000.0)], None).unwrap();
        assert!(p
            .warnings
            .iter()
            .any(|w| w.contains("gate-1k") && w.contains("negative")));
        // One server left: no comparison chart.
        assert!(
            p.charts.iter().all(|c| c.0 != "memory.svg"),
            "{:?}",
            p.skipped
        );
    }
}

//! Turns the raw results of `tests/bench/loadbench.sh` into the table of BENCHMARKS.md and a chart.
//!
//! ```text
//! loadbench_report <dir>   reads <dir>/results.tsv (+ memory.txt, machine.txt),
//!                          writes <dir>/table.md and <dir>/ratios.png
//! ```
//!
//! With a sixth column in results.tsv (`LB_CLIENT=browser`: the server's CPU time per request),
//! the table also compares the variants by it: actix-session's CPU per request ÷ ours is how many
//! times cheaper ours is.
//!
//! Medians over the rounds; each ratio is between medians measured in the same run. Below the
//! table, each target's ratio is also given round by round (the two variants of a pair ran
//! seconds apart, so a host that changes speed between rounds moves both), as the median of those
//! per-round ratios and their range.

use std::{collections::BTreeMap, fmt::Write as _, path::Path};

use plotters::prelude::*;

/// What each variant is compared with, and the issue's target for it.
struct Target {
    variant: &'static str,
    /// The variant it is compared with (`bare` when only the bare ratio matters).
    against: &'static str,
    /// The lowest acceptable ratio `variant / against`.
    at_least: f64,
}

const TARGETS: &[Target] = &[
    Target {
        variant: "ours-untouched",
        against: "bare",
        at_least: 0.97,
    },
    Target {
        variant: "ours-cookie-rw",
        against: "as-cookie-rw",
        at_least: 1.2,
    },
    Target {
        variant: "ours-cookie-ro",
        against: "as-cookie-ro",
        at_least: 1.2,
    },
    Target {
        variant: "ours-redis-rw",
        against: "as-redis-rw",
        at_least: 1.5,
    },
    Target {
        variant: "ours-redis-ro",
        against: "as-redis-ro",
        at_least: 1.5,
    },
    Target {
        variant: "ours-pg-rw",
        against: "pg-loop",
        at_least: 0.7,
    },
];

/// A ratio reported next to a variant's target without being a target itself.
struct Reference {
    variant: &'static str,
    against: &'static str,
    /// Why this comparison is shown, printed after the ratio.
    label: &'static str,
}

/// `pg-loop` issues one UPDATE per iteration while a read+write request needs the load SELECT
/// and the UPDATE, so the issue's target is not like-for-like; `pg-loop-pair` issues both.
/// With a local cache in front (`ours-pgcached-rw`), a read+write request issues one
/// `UPDATE … RETURNING`: the like-for-like reference is then `pg-loop`.
const REFERENCES: &[Reference] = &[
    Reference {
        variant: "ours-cookie-nocache-rw",
        against: "as-cookie-rw",
        label: "cache of opened values off",
    },
    Reference {
        variant: "ours-cookie-nocache-ro",
        against: "as-cookie-ro",
        label: "cache of opened values off",
    },
    Reference {
        variant: "ours-pg-rw",
        against: "pg-loop-pair",
        label: "like-for-like",
    },
    Reference {
        variant: "ours-pgcached-rw",
        against: "pg-loop",
        label: "with a local cache: one statement per request, like the loop",
    },
];

/// The bare-driver loops: no HTTP, no server process, not drawn in the chart.
const LOOPS: &[&str] = &["pg-loop", "pg-loop-pair"];

/// The actix-session variant matching one of ours (for the "× actix-session" column).
fn peer(variant: &str) -> Option<String> {
    let rest = variant.strip_prefix("ours-")?;
    // actix-session has no cache of opened cookies: its variant is the peer of both of ours.
    (rest.starts_with("cookie") || rest.starts_with("redis"))
        .then(|| format!("as-{}", rest.replace("-nocache", "")))
}

/// Display order: the table and the chart follow it.
const ORDER: &[&str] = &[
    "bare",
    "ours-untouched",
    "as-cookie-rw",
    "ours-cookie-rw",
    "as-cookie-ro",
    "ours-cookie-ro",
    "ours-cookie-nocache-rw",
    "ours-cookie-nocache-ro",
    "as-redis-rw",
    "ours-redis-rw",
    "as-redis-ro",
    "ours-redis-ro",
    "ours-memory-rw",
    "ours-memory-ro",
    "pg-loop",
    "pg-loop-pair",
    "ours-pg-rw",
    "ours-pg-ro",
    "ours-pgcached-rw",
    "ours-pgcached-ro",
];

struct Row {
    rps: f64,
    /// The server's CPU time per request in µs; NaN when not measured.
    server_us: f64,
    p99_ms: f64,
    peak_mb: f64,
    rounds: usize,
}

/// `ratio` with two decimals, or, when two would show a ratio under `target` as the target
/// itself, with as many as it takes (1.248 or 1.2496 against 1.25).
fn against_target(ratio: f64, target: f64) -> String {
    let mut digits = 2;
    while ratio < target
        && format!("{ratio:.digits$}") == format!("{target:.digits$}")
        && digits < 6
    {
        digits += 1;
    }
    format!("{ratio:.digits$}")
}

/// How far `ratio` falls short of `target`, in per cent, with the decimals a small shortfall
/// needs to show as more than zero.
fn shortfall(ratio: f64, target: f64) -> String {
    let short = (1.0 - ratio / target) * 100.0;
    let digits = if short < 0.1 {
        2
    } else {
        usize::from(short < 1.0)
    };
    format!("{short:.digits$} % short")
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tests/bench/loadbench".into());
    let dir = Path::new(&dir);
    let raw = std::fs::read_to_string(dir.join("results.tsv"))?;
    let mut samples: BTreeMap<String, Vec<[f64; 4]>> = BTreeMap::new();
    // variant -> round -> req/s, and server µs per request
    let mut by_round: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    let mut cpu_by_round: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for line in raw.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 5 {
            continue;
        }
        let num = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
        by_round
            .entry(f[0].to_owned())
            .or_default()
            .insert(f[1].to_owned(), num(f[2]));
        let cpu = f.get(5).map_or(f64::NAN, |s| num(s));
        if cpu.is_finite() {
            cpu_by_round
                .entry(f[0].to_owned())
                .or_default()
                .insert(f[1].to_owned(), cpu);
        }
        samples.entry(f[0].to_owned()).or_default().push([
            num(f[2]),
            num(f[3]),
            num(f[4]) / 1024.0,
            cpu,
        ]);
    }
    let rows: BTreeMap<String, Row> = samples
        .into_iter()
        .map(|(variant, s)| {
            let col = |i: usize| median(s.iter().map(|r| r[i]).filter(|x| !x.is_nan()).collect());
            let row = Row {
                rps: col(0),
                server_us: col(3),
                p99_ms: col(1),
                peak_mb: col(2),
                rounds: s.len(),
            };
            (variant, row)
        })
        .collect();
    let ratio = |a: &str, b: &str| Some(rows.get(a)?.rps / rows.get(b)?.rps);
    // How many times less server CPU `a` takes per request than `b`.
    let cheaper = |a: &str, b: &str| {
        Some(rows.get(b)?.server_us / rows.get(a)?.server_us).filter(|r| r.is_finite())
    };
    let has_cpu = rows.values().any(|r| r.server_us.is_finite());
    let mut order: Vec<&str> = ORDER
        .iter()
        .copied()
        .filter(|v| rows.contains_key(*v))
        .collect();
    order.extend(
        rows.keys()
            .map(String::as_str)
            .filter(|v| !ORDER.contains(v)),
    );

    let mut md = String::new();
    let (cpu_head, cpu_rule) = if has_cpu {
        (
            " server CPU/req | CPU: × cheaper than actix-session |",
            "---:|---:|",
        )
    } else {
        ("", "")
    };
    writeln!(
        md,
        "| variant | req/s (median) | p99 latency | peak server RSS | × bare | × actix-session |{cpu_head} target | met? |"
    )?;
    writeln!(md, "|---|---:|---:|---:|---:|---:|{cpu_rule}---|---|")?;
    for v in &order {
        let row = &rows[*v];
        let vs_bare = ratio(v, "bare").map_or("–".into(), |r| format!("{r:.2}"));
        let vs_peer =
            peer(v)
                .and_then(|p| Some((ratio(v, &p)?, p)))
                .map_or("–".into(), |(r, p)| {
                    match TARGETS.iter().find(|t| t.variant == *v && t.against == p) {
                        Some(t) => against_target(r, t.at_least),
                        None => format!("{r:.2}"),
                    }
                });
        let (target, mut met) = match TARGETS.iter().find(|t| t.variant == *v) {
            None => ("".to_owned(), "".to_owned()),
            Some(t) => {
                let label = if t.against == "bare" {
                    format!("≥ {:.2} × bare", t.at_least)
                } else {
                    format!("≥ {:.2} × {}", t.at_least, t.against)
                };
                let met = match ratio(v, t.against) {
                    None => format!("no {} in this run", t.against),
                    Some(r) if r >= t.at_least => format!("yes ({r:.2})"),
                    Some(r) => format!(
                        "**no**: {}, {}",
                        against_target(r, t.at_least),
                        shortfall(r, t.at_least)
                    ),
                };
                (label, met)
            }
        };
        for reference in REFERENCES.iter().filter(|r| r.variant == *v) {
            let shown = ratio(v, reference.against).map_or_else(
                || format!("no {} in this run", reference.against),
                |r| format!("{r:.2} × {}", reference.against),
            );
            let sep = if met.is_empty() { "" } else { "; " };
            write!(met, "{sep}{shown} ({})", reference.label)?;
        }
        let cpu = if has_cpu {
            let us = if row.server_us.is_finite() {
                format!("{:.2} µs", row.server_us)
            } else {
                "–".into()
            };
            let vs = peer(v)
                .and_then(|p| cheaper(v, &p))
                .map_or("–".into(), |r| format!("{r:.2}"));
            format!(" {us} | {vs} |")
        } else {
            String::new()
        };
        let peak = if row.peak_mb > 0.0 {
            format!("{:.1} MB", row.peak_mb)
        } else {
            "–".into()
        };
        writeln!(
            md,
            "| `{v}`{} | {:.0} | {:.2} ms | {peak} | {vs_bare} | {vs_peer} |{cpu} {target} | {met} |",
            if row.rounds > 1 {
                String::new()
            } else {
                " (1 round)".into()
            },
            row.rps,
            row.p99_ms,
        )?;
    }
    for missing in TARGETS.iter().filter(|t| !rows.contains_key(t.variant)) {
        writeln!(
            md,
            "| `{}` | not run | | | | |{} ≥ {:.2} × {} | not measured |",
            missing.variant,
            if has_cpu { " | |" } else { "" },
            missing.at_least,
            missing.against
        )?;
    }
    paired(&mut md, &by_round)?;
    if has_cpu {
        paired_cpu(&mut md, &cpu_by_round)?;
    }
    if let Ok(memory) = std::fs::read_to_string(dir.join("memory.txt")) {
        writeln!(md)?;
        let field = |key: &str| {
            memory
                .split_whitespace()
                .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                .and_then(|v| v.parse::<f64>().ok())
        };
        if let (Some(sessions), Some(rss), Some(payload)) =
            (field("sessions"), field("rss_mb"), field("payload_bytes"))
        {
            let met = if rss <= 400.0 {
                "yes".to_owned()
            } else {
                format!("**no**: {:.3} × the budget", rss / 400.0)
            };
            // Just over the budget must not print as the budget itself.
            let digits = usize::from(rss > 400.0 && rss < 400.5);
            writeln!(
                md,
                "Memory store, {sessions:.0} live sessions of {payload:.0} B of JSON each: \
                 **{rss:.digits$} MB** resident (target ≤ 400 MB: {met})."
            )?;
        }
        if let (Some(one), Some(two), Some(scaling)) =
            (field("one_thread"), field("two_threads"), field("scaling"))
        {
            let met = if scaling >= 1.6 {
                "yes".to_owned()
            } else {
                format!("**no**, {}", shortfall(scaling, 1.6))
            };
            let scaling = against_target(scaling, 1.6);
            let spread = match (field("scaling_min"), field("scaling_max"), field("repeats")) {
                (Some(min), Some(max), Some(n)) if n > 1.0 => {
                    format!(" (median of {n:.0} pairs of runs, range {min:.2}–{max:.2})")
                }
                _ => String::new(),
            };
            writeln!(
                md,
                "Memory store load+save: {one:.0} ops/s on one thread, {two:.0} ops/s on two \
                 at once = **{scaling} ×**{spread} (target ≥ 1.6 ×: {met})."
            )?;
        }
    }
    std::fs::write(dir.join("table.md"), &md)?;
    print!("{md}");
    chart(dir, &order, &rows)?;
    Ok(())
}

/// Each target's ratio round by round: the median of the per-round ratios and their range.
fn paired(md: &mut String, by_round: &BTreeMap<String, BTreeMap<String, f64>>) -> std::fmt::Result {
    let pairs = TARGETS
        .iter()
        .map(|t| (t.variant, t.against, Some(t.at_least)))
        .chain(REFERENCES.iter().map(|r| (r.variant, r.against, None)));
    let mut lines = Vec::new();
    for (variant, against, at_least) in pairs {
        let (Some(a), Some(b)) = (by_round.get(variant), by_round.get(against)) else {
            continue;
        };
        let ratios: Vec<f64> = a
            .iter()
            .filter_map(|(round, rps)| Some(rps / b.get(round)?))
            .filter(|r| r.is_finite())
            .collect();
        if ratios.len() < 2 {
            continue;
        }
        let (low, high) = ratios
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        let rounds = ratios.len();
        let mid = median(ratios);
        let verdict = match at_least {
            Some(t) if mid >= t => format!(" (target {t:.2}: yes)"),
            Some(t) => format!(" (target {t:.2}: no)"),
            None => String::new(),
        };
        let mid = at_least.map_or_else(|| format!("{mid:.2}"), |t| against_target(mid, t));
        lines.push(format!(
            "`{variant}` ÷ `{against}`: {mid} ({low:.2}–{high:.2} over {rounds} rounds){verdict}"
        ));
    }
    if !lines.is_empty() {
        writeln!(md)?;
        writeln!(
            md,
            "Per-round ratios (each pair measured seconds apart in the same round; median and \
             range over the rounds):"
        )?;
        for line in lines {
            writeln!(md, "- {line}")?;
        }
    }
    Ok(())
}

/// Each target's server CPU per request round by round: the compared variant's ÷ this one's.
fn paired_cpu(
    md: &mut String,
    by_round: &BTreeMap<String, BTreeMap<String, f64>>,
) -> std::fmt::Result {
    let pairs = TARGETS
        .iter()
        .map(|t| (t.variant, t.against))
        .chain(REFERENCES.iter().map(|r| (r.variant, r.against)));
    let mut lines = Vec::new();
    for (variant, against) in pairs {
        let (Some(a), Some(b)) = (by_round.get(variant), by_round.get(against)) else {
            continue;
        };
        let ratios: Vec<f64> = a
            .iter()
            .filter_map(|(round, us)| Some(b.get(round)? / us))
            .filter(|r| r.is_finite())
            .collect();
        if ratios.is_empty() {
            continue;
        }
        let (low, high) = ratios
            .iter()
            .fold((f64::INFINITY, 0.0f64), |(l, h), r| (l.min(*r), h.max(*r)));
        let rounds = ratios.len();
        lines.push(format!(
            "`{against}` ÷ `{variant}`: {:.2} ({low:.2}–{high:.2} over {rounds} rounds)",
            median(ratios)
        ));
    }
    if !lines.is_empty() {
        writeln!(md)?;
        writeln!(
            md,
            "Server CPU per request, round by round (the compared variant's µs per request ÷ \
             the second-named one's: above 1, that one is so many times cheaper; median and \
             range over the rounds):"
        )?;
        for line in lines {
            writeln!(md, "- {line}")?;
        }
    }
    Ok(())
}

/// A horizontal bar per variant: its throughput as a ratio to bare actix-web.
fn chart(
    dir: &Path,
    order: &[&str],
    rows: &BTreeMap<String, Row>,
) -> Result<(), Box<dyn std::error::Error>> {
    let Some(bare) = rows.get("bare").map(|r| r.rps) else {
        eprintln!("no `bare` variant: no chart");
        return Ok(());
    };
    let font = ["/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"]
        .iter()
        .find_map(|p| std::fs::read(p).ok())
        .ok_or("no DejaVuSans.ttf (Debian: apt-get install fonts-dejavu-core)")?;
    plotters::style::register_font("sans-serif", FontStyle::Normal, Box::leak(font.into()))
        .map_err(|_| "DejaVuSans.ttf is not a usable font")?;

    // Bottom to top, so that the table's first row is the chart's top bar.
    let bars: Vec<(&str, f64)> = order
        .iter()
        .rev()
        .filter(|v| !LOOPS.contains(v))
        .map(|v| (*v, rows[*v].rps / bare))
        .collect();
    let path = dir.join("ratios.png");
    let height = 90 + 34 * bars.len() as u32;
    let root = BitMapBackend::new(&path, (900, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let n = bars.len() as i32;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "Throughput as a ratio to bare actix-web (higher is better)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(150)
        // A segmented 0..n has a segment for n too: one less, or an empty tick tops the chart.
        .build_cartesian_2d(0.0..1.1f64, (0..n - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&|y| match y {
            SegmentValue::CenterOf(i) => bars
                .get(*i as usize)
                .map(|(v, _)| (*v).to_owned())
                .unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("× bare actix-web req/s (medians of one run)")
        .label_style(("sans-serif", 14))
        .draw()?;
    let colour = |v: &str| {
        if v == "bare" {
            RGBColor(120, 120, 120)
        } else if v.starts_with("as-") {
            RGBColor(230, 140, 60)
        } else {
            RGBColor(50, 110, 190)
        }
    };
    chart.draw_series(bars.iter().enumerate().map(|(i, (v, r))| {
        let i = i as i32;
        let mut bar = Rectangle::new(
            [
                (0.0, SegmentValue::Exact(i)),
                (*r, SegmentValue::Exact(i + 1)),
            ],
            colour(v).filled(),
        );
        bar.set_margin(4, 4, 0, 0);
        bar
    }))?;
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, r))| {
        Text::new(
            format!("{r:.2}"),
            (r + 0.01, SegmentValue::CenterOf(i as i32)),
            ("sans-serif", 13),
        )
    }))?;
    root.present()?;
    eprintln!("chart: {}", path.display());
    Ok(())
}

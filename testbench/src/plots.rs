//! SVG plots: latency histogram, latency over time, throughput against offered rate.

use plotters::coord::ranged1d::AsRangedCoord;
use plotters::coord::types::RangedCoordf64;
use plotters::drawing::DrawingAreaErrorKind;
use plotters::prelude::*;
use std::path::{Path, PathBuf};

use crate::error::TbError;
use crate::report::Report;

/// What every drawing step returns (the SVG backend's errors are I/O errors).
type Drawn<T> = Result<T, DrawingAreaErrorKind<std::io::Error>>;

type Area<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// The 900 x 500 white canvas every plot draws on.
fn canvas(path: &Path) -> Drawn<Area<'_>> {
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    Ok(root)
}

/// A chart with the plots' caption font, margins and labelled axes.
fn chart<'a, 'b, Y>(
    root: &'a Area<'b>,
    caption: String,
    x: std::ops::Range<f64>,
    y: Y,
    (x_desc, y_desc): (&str, &str),
) -> Drawn<ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y::CoordDescType>>>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: plotters::coord::ranged1d::ValueFormatter<f64>,
{
    let mut c = ChartBuilder::on(root)
        .caption(caption, ("sans-serif", 18))
        .margin(15)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(x, y)?;
    c.configure_mesh().x_desc(x_desc).y_desc(y_desc).draw()?;
    Ok(c)
}

/// A legend entry: a short line in `style`.
fn key<S: Into<ShapeStyle> + Clone>(style: S) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], style.clone())
}

/// Draws the legend box.
fn legend<'a, 'b: 'a, Y: Ranged<ValueType = f64>>(
    c: &mut ChartContext<'a, SVGBackend<'b>, Cartesian2d<RangedCoordf64, Y>>,
) -> Drawn<()> {
    c.configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .draw()
}

/// Draws the plots `r` has data for into `dir` as `<prefix>_<plot>.svg`;
/// returns their paths.
pub fn write_all(r: &Report, dir: &Path, prefix: &str) -> Result<Vec<PathBuf>, TbError> {
    type Plot = fn(&Report, &Path) -> Drawn<()>;
    let plots: [(&str, bool, Plot); 3] = [
        ("latency_hist", !r.series.latency_ns.is_empty(), histogram),
        ("latency_time", !r.series.timeline.is_empty(), timeline),
        ("throughput", !r.sweep.is_empty(), throughput),
    ];
    let mut out = Vec::new();
    for (name, has_data, draw) in plots {
        if has_data {
            let path = dir.join(format!("{prefix}_{name}.svg"));
            draw(r, &path).map_err(|source| TbError::Plot {
                path: path.clone(),
                source,
            })?;
            out.push(path);
        }
    }
    Ok(out)
}

fn histogram(r: &Report, path: &Path) -> Drawn<()> {
    let v = &r.series.latency_ns;
    let lo = v.iter().cloned().fold(f64::MAX, f64::min);
    let hi = v.iter().cloned().fold(f64::MIN, f64::max).max(lo + 1e-9);
    let hi_axis = hi.max(r.budget_ns.min(hi * 2.0));
    let nb = 60usize;
    let w = (hi_axis - lo) / nb as f64;
    let w = if w <= 0.0 { 1.0 } else { w };
    let mut counts = vec![0u64; nb + 1];
    for &x in v {
        counts[(((x - lo) / w) as usize).min(nb)] += 1;
    }
    let ymax = *counts.iter().max().unwrap_or(&1) as f64;
    let root = canvas(path)?;
    let mut c = chart(
        &root,
        format!(
            "{} {}: latency of {} events (p99 {:.1} ns, max {:.1} ns)",
            r.model, r.target, r.latency_ns.count, r.latency_ns.p99, r.latency_ns.max
        ),
        lo..(hi_axis + w),
        (0.5f64..ymax * 2.0).log_scale(),
        ("latency (ns)", "events"),
    )?;
    c.draw_series(
        counts
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(i, &n)| {
                let x0 = lo + i as f64 * w;
                Rectangle::new(
                    [(x0, 0.5), (x0 + w * 0.95, n as f64)],
                    BLUE.mix(0.6).filled(),
                )
            }),
    )?;
    if r.budget_ns <= hi_axis + w {
        c.draw_series(LineSeries::new(
            vec![(r.budget_ns, 0.5), (r.budget_ns, ymax * 2.0)],
            RED.stroke_width(2),
        ))?
        .label(format!("budget {:.0} ns", r.budget_ns))
        .legend(key(RED));
        legend(&mut c)?;
    }
    root.present()?;
    Ok(())
}

fn timeline(r: &Report, path: &Path) -> Drawn<()> {
    let t = &r.series.timeline;
    let x1 = t.last().map(|p| p.0).unwrap_or(1.0).max(1e-6);
    let ymax = t
        .iter()
        .map(|p| p.2)
        .fold(0.0, f64::max)
        .max(r.budget_ns.min(1e12))
        * 1.1;
    let root = canvas(path)?;
    let mut c = chart(
        &root,
        format!("{} {}: latency over time", r.model, r.target),
        0f64..x1,
        0f64..ymax.max(1.0),
        ("arrival time (us)", "latency (ns)"),
    )?;
    c.draw_series(LineSeries::new(t.iter().map(|p| (p.0, p.2)), RED))?
        .label("max per bin")
        .legend(key(RED));
    c.draw_series(LineSeries::new(t.iter().map(|p| (p.0, p.1)), BLUE))?
        .label("mean per bin")
        .legend(key(BLUE));
    c.draw_series(LineSeries::new(
        vec![(0.0, r.budget_ns), (x1, r.budget_ns)],
        BLACK.mix(0.5),
    ))?
    .label("budget")
    .legend(key(BLACK.mix(0.5)));
    legend(&mut c)?;
    root.present()?;
    Ok(())
}

fn throughput(r: &Report, path: &Path) -> Drawn<()> {
    let mut s = r.sweep.clone();
    s.sort_by(|a, b| a.offered_mhz.total_cmp(&b.offered_mhz));
    let xmax = s
        .iter()
        .map(|p| p.offered_mhz)
        .fold(0.0, f64::max)
        .max(1e-6)
        * 1.05;
    let ymax = s
        .iter()
        .map(|p| p.achieved_mhz)
        .fold(0.0, f64::max)
        .max(xmax * 0.5)
        * 1.1;
    let root = canvas(path)?;
    let mut c = chart(
        &root,
        format!("{} {}: throughput against offered rate", r.model, r.target),
        0f64..xmax,
        0f64..ymax,
        ("offered rate (MHz)", "accepted and processed (MHz)"),
    )?;
    c.draw_series(LineSeries::new(
        vec![(0.0, 0.0), (xmax.min(ymax), xmax.min(ymax))],
        BLACK.mix(0.3),
    ))?
    .label("no loss")
    .legend(key(BLACK.mix(0.3)));
    c.draw_series(LineSeries::new(
        s.iter().map(|p| (p.offered_mhz, p.achieved_mhz)),
        BLUE,
    ))?
    .label("measured");
    c.draw_series(s.iter().map(|p| {
        let col = if p.lost == 0 { GREEN } else { RED };
        Circle::new((p.offered_mhz, p.achieved_mhz), 4, col.filled())
    }))?;
    legend(&mut c)?;
    root.present()?;
    Ok(())
}

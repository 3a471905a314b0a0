//! Ketaflow's charts against time as SVG: curves, shaded percentile bands, and horizontal reference
//! lines (a TCI target, a recovery threshold, a remission line). Plain SVG so that it opens
//! anywhere, prints well and needs no fonts or scripts; the command line writes it to a file, the
//! web pages inline it. A crate of its own so that `ketaflow simulate` draws without the server.

use std::fmt::Write as _;

/// One line on the chart. A non-finite value leaves a gap (a missing reading).
#[derive(Debug, Clone, Default)]
pub struct Curve {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub colour: &'static str,
    /// Dashed rather than solid.
    pub dashed: bool,
    /// A dot on every value (sparse measurements such as questionnaire scores).
    pub points: bool,
    /// One value per time point.
    pub values: Vec<f64>,
}

/// A shaded band between two series.
#[derive(Debug, Clone)]
pub struct Band {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub colour: &'static str,
    /// Lower edge, one value per time point.
    pub lower: Vec<f64>,
    /// Upper edge, one value per time point.
    pub upper: Vec<f64>,
}

/// A horizontal reference line.
#[derive(Debug, Clone)]
pub struct Level {
    /// Legend text.
    pub label: String,
    /// CSS colour.
    pub colour: &'static str,
    /// Where, in the y unit.
    pub value: f64,
}

/// How the time axis is labelled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TimeAxis {
    /// Minutes, or hours beyond 6 h (an infusion, a recovery).
    #[default]
    Clock,
    /// Days (a course of treatment).
    Days,
}

/// A chart of values against time.
#[derive(Debug, Clone, Default)]
pub struct Chart {
    /// Heading.
    pub title: String,
    /// Second line (wrapped).
    pub subtitle: String,
    /// The y axis, with its unit.
    pub y_label: String,
    /// Time of each point, seconds from the chart's origin.
    pub times_s: Vec<f64>,
    /// How time is shown.
    pub time_axis: TimeAxis,
    /// Lines.
    pub curves: Vec<Curve>,
    /// Shaded bands.
    pub bands: Vec<Band>,
    /// Reference lines.
    pub levels: Vec<Level>,
}

const WIDTH: f64 = 980.0;
const HEIGHT: f64 = 520.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 280.0;
const TOP: f64 = 70.0;
const BOTTOM: f64 = 60.0;

/// A "nice" tick step (1, 2 or 5 × 10ⁿ) giving about `target` ticks over `span`.
fn tick_step(span: f64, target: f64) -> f64 {
    let raw = span / target;
    let magnitude = 10f64.powf(raw.log10().floor());
    let fraction = raw / magnitude;
    let nice = if fraction < 1.5 {
        1.0
    } else if fraction < 3.5 {
        2.0
    } else if fraction < 7.5 {
        5.0
    } else {
        10.0
    };
    nice * magnitude
}

/// Splits `text` into lines of at most `width` characters at spaces.
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let line = lines.last_mut().expect("never empty");
        if !line.is_empty() && line.chars().count() + 1 + word.chars().count() > width {
            lines.push(word.to_string());
        } else {
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
    }
    lines
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn format_tick(value: f64, step: f64) -> String {
    let decimals = if step >= 1.0 {
        0
    } else {
        (-step.log10().floor()) as usize
    };
    format!("{value:.decimals$}")
}

/// Thins a polyline (screen coordinates, in time order) to at most four points per half-pixel
/// column: the first, the highest, the lowest and the last of the column, in the order they
/// occurred. What is drawn is the same (every extreme stays, so a one-reading spike still shows),
/// but a session streamed at one reading per second for hours no longer sends thousands of points
/// per line on every live refresh.
fn thin_to_columns(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    let column = |x: f64| (x * 2.0).floor() as i64;
    let mut out = Vec::with_capacity(points.len().min(4 * WIDTH as usize * 2));
    let mut start = 0;
    while start < points.len() {
        let col = column(points[start].0);
        let mut end = start + 1;
        while end < points.len() && column(points[end].0) == col {
            end += 1;
        }
        let group = &points[start..end];
        // Screen y grows downwards: the highest value has the smallest y.
        let highest = (0..group.len()).min_by(|&a, &b| group[a].1.total_cmp(&group[b].1));
        let lowest = (0..group.len()).max_by(|&a, &b| group[a].1.total_cmp(&group[b].1));
        let mut keep = vec![0, group.len() - 1];
        keep.extend(highest);
        keep.extend(lowest);
        keep.sort_unstable();
        keep.dedup();
        out.extend(keep.into_iter().map(|i| group[i]));
        start = end;
    }
    out
}

impl Chart {
    /// Renders the chart as an SVG document.
    pub fn to_svg(&self) -> String {
        // A single point (one questionnaire, one reading) still gets a readable axis: at least a
        // week of days, or ten minutes of clock.
        let least_span_s = match self.time_axis {
            TimeAxis::Days => 7.0 * 86_400.0,
            TimeAxis::Clock => 600.0,
        };
        let t_max = self.times_s.last().copied().unwrap_or(0.0).max(least_span_s);
        // Hours on the axis for long runs, minutes otherwise.
        let (time_scale, time_unit) = if self.time_axis == TimeAxis::Days {
            (86_400.0, "days")
        } else if t_max > 6.0 * 3600.0 {
            (3600.0, "h")
        } else {
            (60.0, "min")
        };
        let x_max = t_max / time_scale;
        let all_values = self
            .curves
            .iter()
            .flat_map(|c| c.values.iter())
            .chain(self.bands.iter().flat_map(|b| b.upper.iter()))
            .chain(self.levels.iter().map(|l| &l.value))
            .copied()
            .filter(|v| v.is_finite());
        let y_top = all_values.fold(0.0, f64::max).max(1e-9) * 1.08;
        let y_step = tick_step(y_top, 6.0);
        let y_max = (y_top / y_step).ceil() * y_step;
        let x_step = tick_step(x_max, 8.0);
        let plot_w = WIDTH - LEFT - RIGHT;
        let plot_h = HEIGHT - TOP - BOTTOM;
        let px = |t_s: f64| LEFT + t_s / time_scale / x_max * plot_w;
        let py = |v: f64| TOP + plot_h - v.clamp(0.0, y_max) / y_max * plot_h;

        let mut svg = String::new();
        let _ = writeln!(
            svg,
            r#"<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="13" role="img" aria-label="{}">"#,
            escape(&self.title)
        );
        let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(
            svg,
            r#"<text x="{LEFT}" y="26" font-size="17" font-weight="bold">{}</text>"#,
            escape(&self.title)
        );
        // Long subtitles wrap onto a second line rather than run off the page.
        for (i, line) in wrap(&self.subtitle, 120).iter().take(2).enumerate() {
            let _ = writeln!(
                svg,
                r##"<text x="{LEFT}" y="{}" fill="#555" font-size="12">{}</text>"##,
                44 + 15 * i,
                escape(line)
            );
        }
        // Grid and ticks.
        let mut y = 0.0;
        while y <= y_max + y_step * 1e-9 {
            let yy = py(y);
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="#e4e4e4"/>"##,
                LEFT + plot_w
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 8.0,
                yy + 4.0,
                format_tick(y, y_step)
            );
            y += y_step;
        }
        let mut x = 0.0;
        while x <= x_max + x_step * 1e-9 {
            let xx = LEFT + x / x_max * plot_w;
            let _ = writeln!(
                svg,
                r##"<line x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{:.1}" stroke="#f0f0f0"/>"##,
                TOP + plot_h
            );
            let _ = writeln!(
                svg,
                r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + plot_h + 20.0,
                format_tick(x, x_step)
            );
            x += x_step;
        }
        let _ = writeln!(
            svg,
            r#"<rect x="{LEFT}" y="{TOP}" width="{plot_w}" height="{plot_h}" fill="none" stroke="black"/>"#
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">time ({time_unit})</text>"#,
            LEFT + plot_w / 2.0,
            HEIGHT - 15.0
        );
        let _ = writeln!(
            svg,
            r#"<text transform="translate(22 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            TOP + plot_h / 2.0,
            escape(&self.y_label)
        );
        // Bands, then curves, then reference lines on top.
        for band in &self.bands {
            let mut points: Vec<String> = self
                .times_s
                .iter()
                .zip(&band.upper)
                .map(|(t, v)| format!("{:.1},{:.1}", px(*t), py(*v)))
                .collect();
            points.extend(
                self.times_s
                    .iter()
                    .zip(&band.lower)
                    .rev()
                    .map(|(t, v)| format!("{:.1},{:.1}", px(*t), py(*v))),
            );
            let _ = writeln!(
                svg,
                r#"<polygon points="{}" fill="{}" fill-opacity="0.22" stroke="none"/>"#,
                points.join(" "),
                band.colour
            );
        }
        for curve in &self.curves {
            let dash = if curve.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            // A missing value breaks the line rather than joining across the gap.
            let mut runs: Vec<Vec<(f64, f64)>> = vec![vec![]];
            for (t, v) in self.times_s.iter().zip(&curve.values) {
                if v.is_finite() {
                    if curve.points {
                        let _ = writeln!(
                            svg,
                            r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{}"/>"#,
                            px(*t),
                            py(*v),
                            curve.colour
                        );
                    }
                    runs.last_mut().expect("never empty").push((px(*t), py(*v)));
                } else if !runs.last().expect("never empty").is_empty() {
                    runs.push(vec![]);
                }
            }
            for run in runs.iter().filter(|r| r.len() > 1) {
                let run: Vec<String> = thin_to_columns(run)
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                let _ = writeln!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"{dash}/>"#,
                    run.join(" "),
                    curve.colour
                );
            }
        }
        for level in &self.levels {
            let yy = py(level.value);
            let _ = writeln!(
                svg,
                r#"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="2 3"/>"#,
                LEFT + plot_w,
                level.colour
            );
        }
        // Legend.
        let mut ly = TOP + 10.0;
        let lx = LEFT + plot_w + 16.0;
        for band in &self.bands {
            let _ = writeln!(
                svg,
                r#"<rect x="{lx}" y="{:.1}" width="22" height="12" fill="{}" fill-opacity="0.3"/>"#,
                ly - 10.0,
                band.colour
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
                lx + 30.0,
                escape(&band.label)
            );
            ly += 22.0;
        }
        for curve in &self.curves {
            let dash = if curve.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="2"{dash}/>"#,
                ly - 4.0,
                lx + 22.0,
                ly - 4.0,
                curve.colour
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
                lx + 30.0,
                escape(&curve.label)
            );
            ly += 22.0;
        }
        for level in &self.levels {
            let _ = writeln!(
                svg,
                r#"<line x1="{lx}" y1="{:.1}" x2="{:.1}" y2="{:.1}" stroke="{}" stroke-width="1.5" stroke-dasharray="2 3"/>"#,
                ly - 4.0,
                lx + 22.0,
                ly - 4.0,
                level.colour
            );
            let _ = writeln!(
                svg,
                r#"<text x="{:.1}" y="{ly:.1}">{}</text>"#,
                lx + 30.0,
                escape(&level.label)
            );
            ly += 22.0;
        }
        svg.push_str("</svg>\n");
        svg
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_thinned_per_column_and_keep_every_extreme() {
        // Four hours at one reading per second, flat at 120 with one reading of 190 in the middle.
        let n = 4 * 3600 + 1;
        let mut values = vec![120.0; n];
        values[7200] = 190.0;
        values[7201] = 60.0;
        let chart = Chart {
            title: "Vital signs".into(),
            times_s: (0..n).map(|k| k as f64).collect(),
            curves: vec![Curve {
                label: "systolic".into(),
                colour: "#b3261e",
                values,
                ..Curve::default()
            }],
            ..Chart::default()
        };
        let svg = chart.to_svg();
        let line = svg
            .lines()
            .find(|l| l.starts_with("<polyline"))
            .expect("the curve");
        let points = line.split('"').nth(1).expect("points").split(' ').count();
        // At most 4 per half-pixel column over the 620-px plot, far fewer than 14 401.
        assert!(points <= 4 * 2 * 621, "{points} points");
        // The spike and the dip are drawn at their own heights (the y axis rounds 190 × 1.08 up to
        // 220; the plot is 390 px high from y = 70).
        let ys: Vec<f64> = line
            .split('"')
            .nth(1)
            .unwrap()
            .split(' ')
            .map(|p| p.split(',').nth(1).unwrap().parse().unwrap())
            .collect();
        let y_of = |v: f64| 70.0 + 390.0 - v / 220.0 * 390.0;
        for v in [190.0, 60.0, 120.0] {
            assert!(ys.iter().any(|y| (y - y_of(v)).abs() < 0.06), "{v} not drawn");
        }
        // Short lines are left alone.
        let pts = thin_to_columns(&[(0.0, 5.0), (10.0, 6.0), (20.0, 7.0)]);
        assert_eq!(pts, vec![(0.0, 5.0), (10.0, 6.0), (20.0, 7.0)]);
        // One column keeps first, highest, lowest and last in order.
        let pts = thin_to_columns(&[(1.0, 5.0), (1.1, 2.0), (1.2, 9.0), (1.3, 6.0), (1.4, 5.5)]);
        assert_eq!(pts, vec![(1.0, 5.0), (1.1, 2.0), (1.2, 9.0), (1.4, 5.5)]);
    }

    /// One score on a course chart: the axis runs over a week in whole days, not fractions of a
    /// second.
    #[test]
    fn a_single_point_gets_a_readable_time_axis() {
        let chart = Chart {
            title: "PHQ-9".into(),
            y_label: "score".into(),
            times_s: vec![0.0],
            time_axis: TimeAxis::Days,
            curves: vec![Curve {
                label: "PHQ-9".into(),
                colour: "#1f77b4",
                values: vec![14.0],
                ..Curve::default()
            }],
            ..Chart::default()
        };
        let svg = chart.to_svg();
        let x_labels: Vec<&str> = svg
            .lines()
            .filter(|l| l.contains(r#"text-anchor="middle">"#) && !l.contains("time ("))
            .map(|l| l.rsplit_once('>').unwrap().0.rsplit_once('>').unwrap().1)
            .map(|l| l.trim_end_matches("</text"))
            .filter(|l| l.parse::<f64>().is_ok())
            .collect();
        assert_eq!(x_labels, ["0", "1", "2", "3", "4", "5", "6", "7"], "{svg}");
        assert!(svg.contains("time (days)"));
    }

    #[test]
    fn ticks_are_round_numbers() {
        assert_eq!(tick_step(0.27, 6.0), 0.05);
        assert_eq!(tick_step(240.0, 8.0), 20.0);
        assert_eq!(tick_step(7.0, 8.0), 1.0);
    }

    #[test]
    fn svg_contains_every_series_and_escapes_text() {
        let chart = Chart {
            title: "Cp <test>".into(),
            subtitle: String::new(),
            y_label: "µg/mL".into(),
            times_s: vec![0.0, 60.0, 120.0],
            curves: vec![Curve {
                label: "Cp".into(),
                colour: "#1f77b4",
                values: vec![0.0, 0.2, 0.1],
                ..Curve::default()
            }],
            bands: vec![Band {
                label: "5–95 %".into(),
                colour: "#1f77b4",
                lower: vec![0.0, 0.1, 0.05],
                upper: vec![0.0, 0.3, 0.2],
            }],
            levels: vec![Level {
                label: "target".into(),
                colour: "#d62728",
                value: 0.2,
            }],
            ..Chart::default()
        };
        let svg = chart.to_svg();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("Cp &lt;test&gt;"));
        assert_eq!(svg.matches("<polyline").count(), 1);
        assert_eq!(svg.matches("<polygon").count(), 1);
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_missing_value_breaks_the_line_and_points_get_dots() {
        let chart = Chart {
            title: "PHQ-9".into(),
            times_s: vec![0.0, 86_400.0, 2.0 * 86_400.0, 3.0 * 86_400.0, 4.0 * 86_400.0],
            time_axis: TimeAxis::Days,
            curves: vec![Curve {
                label: "score".into(),
                colour: "#000",
                points: true,
                values: vec![20.0, 15.0, f64::NAN, 9.0, 4.0],
                ..Curve::default()
            }],
            ..Chart::default()
        };
        let svg = chart.to_svg();
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert_eq!(svg.matches("<circle").count(), 4);
        assert!(svg.contains("time (days)"));
    }
}

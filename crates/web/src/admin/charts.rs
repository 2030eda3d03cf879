//! The statistics page's two charts, drawn here as SVG: a line of the share of accounts with
//! 2FA per day, and bars of accounts per method. Hand-written because the charting crate of
//! the field (plotters) has had no release since 2024 and needs a font stack for its labels;
//! these charts need a polyline, rectangles and a few fixed labels. Every number is also in the
//! table beside the chart.

use std::fmt::Write;
use twofold_core::stats::TrendPoint;

const W: f64 = 640.0;
const H: f64 = 220.0;
const PAD: f64 = 40.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The share of active accounts with 2FA, per day (0–100 %).
pub fn trend(points: &[TrendPoint]) -> String {
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" aria-labelledby="trend-title"><title id="trend-title">Share of active accounts with two-step verification, per day</title>"#
    );
    let (x0, x1, y0, y1) = (PAD, W - 10.0, H - 30.0, 10.0);
    let _ = write!(
        svg,
        r##"<line x1="{x0}" y1="{y0}" x2="{x1}" y2="{y0}" stroke="#888"/><line x1="{x0}" y1="{y0}" x2="{x0}" y2="{y1}" stroke="#888"/>"##
    );
    for pct in [0, 50, 100] {
        let y = y0 - (y0 - y1) * f64::from(pct) / 100.0;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="11" text-anchor="end" fill="#444">{pct}%</text>"##,
            x0 - 4.0,
            y + 4.0
        );
    }
    let n = points.len();
    let x_of = |i: usize| {
        if n <= 1 {
            (x0 + x1) / 2.0
        } else {
            x0 + (x1 - x0) * (i as f64) / ((n - 1) as f64)
        }
    };
    let coords: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x_of(i), y0 - (y0 - y1) * p.share / 100.0))
        .collect();
    if n == 1 {
        let _ = write!(
            svg,
            r##"<circle cx="{}" cy="{}" r="3" fill="#2563eb"/>"##,
            coords[0].split(',').next().unwrap_or("0"),
            coords[0].split(',').nth(1).unwrap_or("0")
        );
    } else if n > 1 {
        let _ = write!(
            svg,
            r##"<polyline fill="none" stroke="#2563eb" stroke-width="2" points="{}"/>"##,
            coords.join(" ")
        );
    }
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            svg,
            r##"<text x="{x0}" y="{}" font-size="11" fill="#444">{}</text><text x="{x1}" y="{}" font-size="11" text-anchor="end" fill="#444">{}</text>"##,
            H - 12.0,
            first.day,
            H - 12.0,
            last.day
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Accounts with each method, as horizontal bars.
pub fn methods(methods: &[(String, i64, f64)]) -> String {
    let row = 28.0;
    let height = PAD + row * methods.len().max(1) as f64;
    let mut svg = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" aria-labelledby="methods-title"><title id="methods-title">Active accounts with each method</title>"#
    );
    let max = methods.iter().map(|m| m.1).max().unwrap_or(0).max(1) as f64;
    let (x0, x1) = (110.0, W - 80.0);
    for (i, (method, n, pct)) in methods.iter().enumerate() {
        let y = 10.0 + row * i as f64;
        let width = (x1 - x0) * (*n as f64) / max;
        let _ = write!(
            svg,
            r##"<text x="{}" y="{}" font-size="12" text-anchor="end" fill="#222">{}</text><rect x="{x0}" y="{y}" width="{width:.1}" height="18" fill="#2563eb"/><text x="{:.1}" y="{}" font-size="12" fill="#222">{n} ({pct:.1}%)</text>"##,
            x0 - 6.0,
            y + 13.0,
            escape(method),
            x0 + width + 6.0,
            y + 13.0
        );
    }
    svg.push_str("</svg>");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::date;

    #[test]
    fn charts_are_svg_with_escaped_labels() {
        let points = [
            TrendPoint {
                day: date!(2026 - 11 - 30),
                active: 10,
                with_two_factor: 2,
                share: 20.0,
            },
            TrendPoint {
                day: date!(2026 - 12 - 01),
                active: 10,
                with_two_factor: 5,
                share: 50.0,
            },
        ];
        let t = trend(&points);
        assert!(t.starts_with("<svg") && t.ends_with("</svg>") && t.contains("<polyline"));
        let m = methods(&[("<x>".into(), 3, 30.0)]);
        assert!(m.contains("&lt;x&gt;") && !m.contains("<x>"));
    }
}

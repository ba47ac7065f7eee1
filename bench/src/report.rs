//! Results: a table per scenario on stdout, and the same figures as JSON.

use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Section {
    pub scenario: &'static str,
    pub title: String,
    pub header: Vec<&'static str>,
    pub rows: Vec<Vec<String>>,
    pub notes: Vec<String>,
    pub targets: Vec<Target>,
    /// Every check of this scenario passed: each copy byte-exact (and in
    /// order), each session completed.
    pub exact: bool,
    /// The raw figures, for tools.
    pub data: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct Target {
    pub what: String,
    pub measured: String,
    pub goal: String,
    /// `None` when it could not be measured (e.g. no sshd for the baseline).
    pub met: Option<bool>,
}

impl Target {
    pub fn new(what: &str, measured: String, goal: &str, met: Option<bool>) -> Self {
        Self {
            what: what.to_string(),
            measured,
            goal: goal.to_string(),
            met,
        }
    }

    pub fn verdict(&self) -> &'static str {
        match self.met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        }
    }
}

impl Section {
    pub fn new(scenario: &'static str, title: String, header: Vec<&'static str>) -> Self {
        Self {
            scenario,
            title,
            header,
            rows: Vec::new(),
            notes: Vec::new(),
            targets: Vec::new(),
            exact: true,
            data: serde_json::Value::Null,
        }
    }

    pub fn print(&self) {
        println!("\n## {}\n", self.title);
        print_table(&self.header, &self.rows);
        for note in &self.notes {
            println!("  {note}");
        }
        for t in &self.targets {
            println!(
                "  target: {} = {} (goal {}): {}",
                t.what,
                t.measured,
                t.goal,
                t.verdict()
            );
        }
        if !self.exact {
            println!("  CHECK FAILED: a copy was not byte-exact or a session failed");
        }
    }
}

/// A Markdown table, so the README can quote it as is.
pub fn print_table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(cell.len());
            }
        }
    }
    let line = |cells: Vec<&str>| {
        let padded: Vec<String> = cells
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        println!("| {} |", padded.join(" | "));
    };
    line(header.to_vec());
    println!(
        "|{}|",
        widths
            .iter()
            .map(|w| "-".repeat(w + 2))
            .collect::<Vec<_>>()
            .join("|")
    );
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
}

pub fn mib_per_s(bytes: u64, secs: f64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0) / secs.max(1e-9)
}

pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// The `p`-th percentile (0–100) by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    // The small epsilon keeps 99.9 % of 1,000 at rank 999 despite rounding.
    let rank = (p * sorted.len() as f64 / 100.0 - 1e-9).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians() {
        let xs: Vec<f64> = (1..=1000).map(f64::from).collect();
        assert_eq!(percentile(&xs, 50.0), 500.0);
        assert_eq!(percentile(&xs, 99.0), 990.0);
        assert_eq!(percentile(&xs, 99.9), 999.0);
        assert_eq!(percentile(&xs, 100.0), 1000.0);
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), 2.5);
    }
}

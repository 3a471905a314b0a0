//! The one CSV writer every export goes through (questionnaires, the controlled-substance ledger,
//! the session record). A text cell that a spreadsheet would run as a formula is neutralised as
//! OWASP's CSV-injection guidance says: a cell starting with `=`, `+`, `-`, `@`, a tab or a
//! carriage return gets a leading single quote, so `=HYPERLINK(...)` in a patient's name is shown,
//! never run (OWASP, "CSV Injection", owasp.org/www-community/attacks/CSV_Injection). Quoting of
//! separators, quotes and line breaks is the `csv` crate's. A cell that is a plain number stays as
//! it is, so -3.5 is still a number.

use crate::AppError;

/// Characters that make a spreadsheet read a cell as a formula (OWASP CSV Injection).
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// `cell` as it is safe to write: unchanged when it is a plain number or does not start with a
/// formula trigger, else with a leading `'`.
pub fn neutralise(cell: &str) -> std::borrow::Cow<'_, str> {
    let is_number = cell.parse::<f64>().is_ok_and(f64::is_finite);
    if !is_number && cell.starts_with(FORMULA_TRIGGERS) {
        std::borrow::Cow::Owned(format!("'{cell}"))
    } else {
        std::borrow::Cow::Borrowed(cell)
    }
}

/// A CSV document being written, row by row, every cell neutralised.
pub struct CsvWriter {
    inner: csv::Writer<Vec<u8>>,
}

impl std::fmt::Debug for CsvWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CsvWriter").finish_non_exhaustive()
    }
}

impl Default for CsvWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl CsvWriter {
    /// An empty document.
    pub fn new() -> Self {
        Self {
            inner: csv::Writer::from_writer(Vec::new()),
        }
    }

    /// Writes one row.
    pub fn row<I, S>(&mut self, cells: I) -> Result<(), AppError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let cells: Vec<String> = cells
            .into_iter()
            .map(|c| neutralise(c.as_ref()).into_owned())
            .collect();
        self.inner
            .write_record(&cells)
            .map_err(|e| AppError::Internal(format!("writing CSV: {e}")))
    }

    /// The document as text.
    pub fn finish(self) -> Result<String, AppError> {
        let bytes = self
            .inner
            .into_inner()
            .map_err(|e| AppError::Internal(format!("writing CSV: {e}")))?;
        String::from_utf8(bytes).map_err(|e| AppError::Internal(format!("writing CSV: {e}")))
    }
}

/// A whole table as CSV text.
pub fn csv_text<R, S>(rows: impl IntoIterator<Item = R>) -> Result<String, AppError>
where
    R: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut w = CsvWriter::new();
    for row in rows {
        w.row(row)?;
    }
    w.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_shown_never_run_and_numbers_stay_numbers() {
        // The review's payloads: a patient name, a chair, a supplier, a lot.
        for (given, written) in [
            (
                "=HYPERLINK(\"http://x\",\"click\")",
                "'=HYPERLINK(\"http://x\",\"click\")",
            ),
            ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
            ("+1-2", "'+1-2"),
            ("-2+3+cmd|' /C calc'!A0", "'-2+3+cmd|' /C calc'!A0"),
            ("\t=1", "'\t=1"),
            ("\r=1", "'\r=1"),
            ("-", "'-"),
        ] {
            assert_eq!(neutralise(given), written, "{given:?}");
        }
        for kept in [
            "-3.5",
            "+2",
            "0",
            "35.000",
            "1e3",
            "Chair 1",
            "2026-11-26",
            "Robin Hale",
            "",
        ] {
            assert_eq!(neutralise(kept), kept, "{kept:?}");
        }
        assert_eq!(neutralise("NaN"), "NaN");
        let text = csv_text([["name", "dose"], ["=cmd()", "-3.5"], ["a,b", "1"]]).unwrap();
        assert_eq!(text, "name,dose\n'=cmd(),-3.5\n\"a,b\",1\n");
    }
}

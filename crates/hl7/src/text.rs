//! HL7 v2 text as this crate writes it: field values escaped for the default delimiters, and
//! date-times with their UTC offset.

use time::OffsetDateTime;

/// Text as an HL7 field value with the default delimiters (`|^~\&`): each delimiter escaped, and
/// line breaks, which would end a segment, as spaces.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\E\\"),
            '|' => out.push_str("\\F\\"),
            '^' => out.push_str("\\S\\"),
            '&' => out.push_str("\\T\\"),
            '~' => out.push_str("\\R\\"),
            '\r' | '\n' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// An HL7 DTM with its UTC offset, to the second: `20261207143005+0000`.
pub fn dtm(t: OffsetDateTime) -> String {
    let o = t.offset();
    let (hours, minutes, _) = o.as_hms();
    format!(
        "{:04}{:02}{:02}{:02}{:02}{:02}{}{:02}{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        if o.is_negative() { '-' } else { '+' },
        hours.unsigned_abs(),
        minutes.unsigned_abs()
    )
}

//! Text for a terminal: strings from a trace made harmless, lines wrapped to 80
//! columns, aligned tables.

use std::{
    borrow::Cow,
    fmt::Write as _,
    io::{self, Write},
};

use crate::render::style::Style;

/// The terminal width the text fits.
pub const WIDTH: usize = 80;
/// The width of a table's label column.
pub const LABEL: usize = 28;

/// `text` as a terminal may show it: every control character (C0, DEL, C1: escape
/// sequences, bells, carriage returns, newlines, tabs) and every bidirectional override
/// is written as a visible escape (`\x1b`, `\u{9b}`), so that a string from a trace (a
/// process name, a host name, a tracepoint's detail, an error quoting the trace) can
/// neither drive the terminal nor disguise the line. Every text printer passes every
/// line holding such a string through here; JSON has its own escaping.
pub fn clean(text: &str) -> Cow<'_, str> {
    let harmful =
        |c: char| c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if !text.contains(harmful) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !harmful(c) {
            out.push(c);
        } else if c.is_ascii() {
            write!(out, "\\x{:02x}", u32::from(c)).unwrap_or_default();
        } else {
            write!(out, "\\u{{{:x}}}", u32::from(c)).unwrap_or_default();
        }
    }
    Cow::Owned(out)
}

/// Wraps `text` at word boundaries to [`WIDTH`], indenting continuations.
pub fn wrap(text: &str, first_indent: &str, indent: &str) -> String {
    wrap_to(text, first_indent, indent, WIDTH)
}

/// Wraps `text` at word boundaries to `width` columns, indenting continuations.
pub fn wrap_to(text: &str, first_indent: &str, indent: &str, width: usize) -> String {
    let mut out = String::new();
    let mut line = first_indent.to_owned();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > width {
            out.push_str(&line);
            out.push('\n');
            line = indent.to_owned();
            empty = true;
        }
        if !empty {
            line.push(' ');
        }
        line.push_str(word);
        empty = false;
    }
    out.push_str(&line);
    out
}

/// A table row: the label column, then right-aligned cells. A label too long for its
/// column gets a line of its own.
fn row(out: &mut impl Write, label: &str, cells: &[(usize, String)]) -> io::Result<()> {
    let mut line = String::new();
    if label.chars().count() > LABEL {
        writeln!(out, "{label}")?;
        line.push_str(&" ".repeat(LABEL));
    } else {
        write!(line, "{label:<LABEL$}").unwrap_or_default();
    }
    for (width, cell) in cells {
        write!(line, "{cell:>width$}").unwrap_or_default();
    }
    writeln!(out, "{}", line.trim_end())
}

/// A table header in bold: the title in the label column, then right-aligned names.
fn header(
    out: &mut impl Write,
    style: Style,
    title: &str,
    cells: &[(usize, &str)],
) -> io::Result<()> {
    let mut line = format!("{title:<LABEL$}");
    for (width, cell) in cells {
        write!(line, "{cell:>width$}").unwrap_or_default();
    }
    writeln!(out, "{}", style.bold(&line))
}

/// A table: the bold header, then a row per item. `columns` are (width, name); `row_of`
/// gives an item's label and its cells, in the order of the columns.
pub fn table<T>(
    out: &mut impl Write,
    style: Style,
    title: &str,
    columns: &[(usize, &str)],
    items: impl IntoIterator<Item = T>,
    row_of: impl Fn(T) -> (String, Vec<String>),
) -> io::Result<()> {
    header(out, style, title, columns)?;
    for item in items {
        let (label, cells) = row_of(item);
        let cells: Vec<(usize, String)> =
            columns.iter().map(|(width, _)| *width).zip(cells).collect();
        row(out, &label, &cells)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_shown_not_obeyed() {
        assert_eq!(clean("\x1b[2J\x1b]0;PWN\x07"), "\\x1b[2J\\x1b]0;PWN\\x07");
        assert_eq!(clean("a\tb\r\nc\u{7f}"), "a\\x09b\\x0d\\x0ac\\x7f");
        assert_eq!(clean("\u{9b}31m \u{202e}txt"), "\\u{9b}31m \\u{202e}txt");
        assert!(matches!(clean("main-SendThread é µs"), Cow::Borrowed(_)));
    }

    #[test]
    fn long_lines_wrap_at_words() {
        let text = "word ".repeat(30);
        let wrapped = wrap(text.trim_end(), "  ", "    ");
        let lines: Vec<&str> = wrapped.lines().collect();
        assert!(lines.iter().all(|l| l.chars().count() <= WIDTH));
        assert!(lines[0].starts_with("  word") && lines[1].starts_with("    word"));
        assert_eq!(wrap("short", "", "  "), "short");
    }

    #[test]
    fn tables_align_cells_under_their_columns() {
        let mut out = Vec::new();
        let columns = [(6, "A"), (4, "B")];
        table(
            &mut out,
            Style::default(),
            "T",
            &columns,
            [1, 22],
            |i: u32| (format!("row {i}"), vec![i.to_string(), "x".into()]),
        )
        .unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{:<28}     A   B", "T"));
        assert_eq!(lines[1], format!("{:<28}     1   x", "row 1"));
        assert_eq!(lines[2], format!("{:<28}    22   x", "row 22"));
    }

    #[test]
    fn a_long_label_gets_its_own_line() {
        let mut out = Vec::new();
        row(&mut out, "short", &[(5, "1".into())]).unwrap();
        row(&mut out, &"x".repeat(30), &[(5, "2".into())]).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], format!("{:<28}    1", "short"));
        assert_eq!(lines[1], "x".repeat(30));
        assert_eq!(lines[2], format!("{:28}    2", ""));
    }
}

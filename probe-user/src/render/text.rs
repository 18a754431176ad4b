//! Text layout: lines wrapped to an 80-column terminal, aligned tables.

use std::{
    fmt::Write as _,
    io::{self, Write},
};

use crate::render::style::Style;

/// The terminal width the text fits.
pub const WIDTH: usize = 80;
/// The width of a table's label column.
pub const LABEL: usize = 28;

/// Wraps `text` at word boundaries to [`WIDTH`], indenting continuations.
pub fn wrap(text: &str, first_indent: &str, indent: &str) -> String {
    let mut out = String::new();
    let mut line = first_indent.to_owned();
    let mut empty = true;
    for word in text.split(' ') {
        if !empty && line.chars().count() + 1 + word.chars().count() > WIDTH {
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

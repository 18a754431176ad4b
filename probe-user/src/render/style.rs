//! Colour in text output.

/// When text output is coloured (`--color`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ColorChoice {
    /// On a terminal, unless `NO_COLOR` is set (<https://no-color.org>).
    #[default]
    Auto,
    Always,
    Never,
}

/// ANSI styling, or none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    pub color: bool,
}

impl Style {
    /// The style for a choice, given whether the output is a terminal and whether
    /// `NO_COLOR` asks for none.
    pub fn new(choice: ColorChoice, terminal: bool, no_color: bool) -> Self {
        let color = match choice {
            ColorChoice::Always => true,
            ColorChoice::Never => false,
            ColorChoice::Auto => terminal && !no_color,
        };
        Self { color }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Red: a reconnect loop.
    pub fn alarm(self, text: &str) -> String {
        self.paint("1;31", text)
    }

    /// Yellow: something to look at.
    pub fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_colours_only_a_terminal_without_no_color() {
        assert!(Style::new(ColorChoice::Auto, true, false).color);
        assert!(!Style::new(ColorChoice::Auto, true, true).color);
        assert!(!Style::new(ColorChoice::Auto, false, false).color);
        assert!(Style::new(ColorChoice::Always, false, true).color);
        assert!(!Style::new(ColorChoice::Never, true, false).color);
        assert_eq!(Style { color: true }.alarm("x"), "\x1b[1;31mx\x1b[0m");
        assert_eq!(Style::default().warn("x"), "x");
    }
}

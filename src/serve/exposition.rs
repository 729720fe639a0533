//! Writes the Prometheus text exposition format (0.0.4) straight into one buffer: no metric
//! objects in between, so a 60,000-series render is a few large allocations rather than hundreds
//! of thousands of small ones. Escaping follows the format (and the prometheus crate's encoder):
//! label values escape `\`, `"` and newline; HELP text escapes `\` and newline.

use std::fmt::Write;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Gauge,
    Counter,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
        }
    }
}

/// The text being written.
pub(crate) struct Exposition {
    out: String,
}

/// The samples of one family; `name` is written in front of each.
pub(crate) struct Samples<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Exposition {
    pub(crate) fn with_capacity(bytes: usize) -> Exposition {
        Exposition { out: String::with_capacity(bytes) }
    }

    /// Writes a family's HELP and TYPE lines and whatever samples `fill` adds; a family that gets
    /// no sample is left out entirely, as the prometheus crate's encoder does.
    pub(crate) fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        fill: impl FnOnce(&mut Samples<'_>),
    ) {
        let start = self.out.len();
        self.out.push_str("# HELP ");
        self.out.push_str(name);
        self.out.push(' ');
        push_escaped(&mut self.out, help, false);
        self.out.push_str("\n# TYPE ");
        self.out.push_str(name);
        self.out.push(' ');
        self.out.push_str(kind.as_str());
        self.out.push('\n');
        let header_end = self.out.len();
        fill(&mut Samples { out: &mut self.out, name });
        if self.out.len() == header_end {
            self.out.truncate(start);
        }
    }

    pub(crate) fn finish(self) -> String {
        self.out
    }
}

impl Samples<'_> {
    pub(crate) fn add(&mut self, labels: &[(&str, &str)], value: f64) {
        let out = &mut *self.out;
        out.push_str(self.name);
        if let Some(((first_name, first_value), rest)) = labels.split_first() {
            out.push('{');
            push_label(out, first_name, first_value);
            for (name, value) in rest {
                out.push(',');
                push_label(out, name, value);
            }
            out.push('}');
        }
        out.push(' ');
        push_value(out, value);
        out.push('\n');
    }
}

pub(crate) fn push_label(out: &mut String, name: &str, value: &str) {
    out.push_str(name);
    out.push_str("=\"");
    push_escaped(out, value, true);
    out.push('"');
}

/// Copies `text`, escaping backslash and newline (and `"` in label values). Most values need no
/// escaping and are copied whole.
pub(crate) fn push_escaped(out: &mut String, text: &str, quotes: bool) {
    let needs_escape = |b: u8| b == b'\\' || b == b'\n' || (quotes && b == b'"');
    if !text.bytes().any(needs_escape) {
        out.push_str(text);
        return;
    }
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quotes => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// Integers without a fraction (`12`, not `12.0`); others in Rust's shortest round-trip form,
/// which Prometheus parses back to the same `f64`.
pub(crate) fn push_value(out: &mut String, value: f64) {
    if value.is_nan() {
        out.push_str("NaN");
    } else if value.is_infinite() {
        out.push_str(if value > 0.0 { "+Inf" } else { "-Inf" });
    } else if value.fract() == 0.0
        && value.abs() < 1e15
        && !(value == 0.0 && value.is_sign_negative())
    {
        // Counts are whole numbers: integer formatting is several times faster than a float's.
        write!(out, "{}", value as i64).expect("writing to a String cannot fail");
    } else {
        write!(out, "{value}").expect("writing to a String cannot fail");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(fill: impl FnOnce(&mut Samples<'_>)) -> String {
        let mut text = Exposition::with_capacity(0);
        text.family("m", "Help with \\ and\nnewline \"kept\".", Kind::Counter, fill);
        text.finish()
    }

    #[test]
    fn writes_help_type_and_escaped_samples() {
        let text = render(|samples| {
            samples.add(&[("a", "x\"y\\z\nw ñ")], 1.5);
            samples.add(&[("a", "plain"), ("b", "")], 3.0);
            samples.add(&[], 1e21);
        });
        assert_eq!(
            text,
            "# HELP m Help with \\\\ and\\nnewline \"kept\".\n# TYPE m counter\n\
             m{a=\"x\\\"y\\\\z\\nw ñ\"} 1.5\nm{a=\"plain\",b=\"\"} 3\nm 1000000000000000000000\n"
        );
    }

    #[test]
    fn special_values_use_the_formats_spelling() {
        let text = render(|samples| {
            for value in [
                f64::NAN,
                f64::INFINITY,
                f64::NEG_INFINITY,
                -0.25,
                -0.0,
                0.0,
                -7.0,
                1e15,
                123456789012345.0,
            ] {
                samples.add(&[], value);
            }
        });
        assert!(text.ends_with("m NaN\nm +Inf\nm -Inf\nm -0.25\nm -0\nm 0\nm -7\nm 1000000000000000\nm 123456789012345\n"), "{text}");
    }

    #[test]
    fn a_family_without_samples_is_left_out() {
        let mut text = Exposition::with_capacity(0);
        text.family("empty", "nothing", Kind::Gauge, |_| {});
        text.family("one", "something", Kind::Gauge, |samples| samples.add(&[], 1.0));
        text.family("empty_too", "nothing", Kind::Gauge, |_| {});
        assert_eq!(text.finish(), "# HELP one something\n# TYPE one gauge\none 1\n");
    }
}

//! Diagnostics: problems found in the inventory, each with a file, a byte span, a
//! `line:column` and a hint, rendered the way rustc renders its errors.

use codespan_reporting::diagnostic as cs;
use codespan_reporting::files::{Files, SimpleFiles};
use codespan_reporting::term::{self, termcolor};
use std::fmt::Write as _;
use std::ops::Range;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// A place in a source file, with its `line:column` resolved when it was made.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Label {
    #[serde(skip)]
    pub file_id: usize,
    /// Path relative to the repository root, e.g. `hosts/helios64.toml`.
    pub file: String,
    pub span: Range<usize>,
    /// 1-based.
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    pub text: String,
}

impl Label {
    /// `file:line:column`.
    pub fn location(&self) -> String {
        format!("{}:{}:{}", self.file, self.line, self.column)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    /// Where the problem is; `None` for problems that have no place in a file.
    pub primary: Option<Label>,
    /// Related places (the first definition of a duplicate, ...).
    pub secondary: Vec<Label>,
    /// What to do about it.
    pub help: Vec<String>,
    /// Extra facts.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>) -> Self {
        Self::new(Severity::Error, message)
    }

    pub fn warning(message: impl Into<String>) -> Self {
        Self::new(Severity::Warning, message)
    }

    fn new(severity: Severity, message: impl Into<String>) -> Self {
        Self {
            severity,
            message: message.into(),
            primary: None,
            secondary: Vec::new(),
            help: Vec::new(),
            notes: Vec::new(),
        }
    }

    pub fn at(mut self, label: Label) -> Self {
        self.primary = Some(label);
        self
    }

    pub fn also(mut self, label: Label) -> Self {
        self.secondary.push(label);
        self
    }

    pub fn help(mut self, text: impl Into<String>) -> Self {
        self.help.push(text.into());
        self
    }

    pub fn note(mut self, text: impl Into<String>) -> Self {
        self.notes.push(text.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// `file:line:column` of the primary label.
    pub fn location(&self) -> Option<String> {
        self.primary.as_ref().map(Label::location)
    }
}

/// The source files diagnostics point into.
pub struct Sources {
    files: SimpleFiles<String, String>,
    names: Vec<String>,
}

impl Default for Sources {
    fn default() -> Self {
        Self {
            files: SimpleFiles::new(),
            names: Vec::new(),
        }
    }
}

impl Sources {
    pub fn add(&mut self, name: impl Into<String>, text: String) -> usize {
        let name = name.into();
        self.names.push(name.clone());
        self.files.add(name, text)
    }

    pub fn name(&self, id: usize) -> &str {
        &self.names[id]
    }

    pub fn text(&self, id: usize) -> &str {
        self.files
            .get(id)
            .map(|f| f.source().as_str())
            .unwrap_or("")
    }

    /// A label over `span` in file `id`; the span is clamped to the text and to
    /// character boundaries so rendering never fails.
    pub fn label(&self, id: usize, span: Range<usize>, text: impl Into<String>) -> Label {
        let src = self.text(id);
        let clamp = |mut i: usize| {
            i = i.min(src.len());
            while !src.is_char_boundary(i) {
                i -= 1;
            }
            i
        };
        let start = clamp(span.start);
        let mut end = clamp(span.end.max(start));
        // One line is enough to point at a table or a long array.
        if let Some(nl) = src[start..end].find('\n').filter(|&i| i > 0) {
            end = start + nl;
        }
        let (line, column) = match self.files.location(id, start) {
            Ok(loc) => (loc.line_number, loc.column_number),
            Err(_) => (1, 1),
        };
        Label {
            file_id: id,
            file: self.name(id).to_string(),
            span: start..end,
            line,
            column,
            text: text.into(),
        }
    }

    /// Render diagnostics like rustc. `color` adds ANSI escapes. Only the first
    /// [`MAX_SHOWN`] are rendered, then a line counting the rest: a file of 50,000
    /// mistakes gives a screenful, not 20 MB.
    pub fn render(&self, diagnostics: &[Diagnostic], color: bool) -> String {
        let (shown, rest) = diagnostics.split_at(diagnostics.len().min(MAX_SHOWN));
        let mut out = self.render_all(shown, color);
        if !rest.is_empty() {
            let _ = writeln!(out, "{}", omitted_line(rest.len()));
        }
        out
    }

    fn render_all(&self, diagnostics: &[Diagnostic], color: bool) -> String {
        let mut buffer = if color {
            termcolor::Buffer::ansi()
        } else {
            termcolor::Buffer::no_color()
        };
        let config = term::Config {
            chars: term::Chars::ascii(),
            ..Default::default()
        };
        for d in diagnostics {
            let rendered = term::emit(&mut buffer, &config, &self.files, &self.to_codespan(d));
            if rendered.is_err() {
                // Only reachable with a bad span; still say what is wrong.
                let _ = std::io::Write::write_all(&mut buffer, plain(d).as_bytes());
            }
        }
        String::from_utf8_lossy(buffer.as_slice()).into_owned()
    }

    fn to_codespan(&self, d: &Diagnostic) -> cs::Diagnostic<usize> {
        let base = match d.severity {
            Severity::Error => cs::Diagnostic::error(),
            Severity::Warning => cs::Diagnostic::warning(),
        };
        let mut labels = Vec::new();
        if let Some(p) = &d.primary {
            labels.push(cs::Label::primary(p.file_id, p.span.clone()).with_message(&p.text));
        }
        for s in &d.secondary {
            labels.push(cs::Label::secondary(s.file_id, s.span.clone()).with_message(&s.text));
        }
        let notes = d
            .notes
            .iter()
            .map(|n| format!("note: {n}"))
            .chain(d.help.iter().map(|h| format!("help: {h}")))
            .collect();
        base.with_message(&d.message)
            .with_labels(labels)
            .with_notes(notes)
    }
}

/// How many diagnostics are rendered (and listed by `check --json`) at most.
pub const MAX_SHOWN: usize = 50;

/// The line that stands for the diagnostics past [`MAX_SHOWN`].
pub fn omitted_line(count: usize) -> String {
    let noun = if count == 1 {
        "diagnostic"
    } else {
        "diagnostics"
    };
    format!("note: … and {count} more {noun} not shown; fix the ones above and run again")
}

/// Fallback rendering without source snippets.
fn plain(d: &Diagnostic) -> String {
    let mut s = String::new();
    let kind = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    let _ = writeln!(s, "{kind}: {}", d.message);
    if let Some(loc) = d.location() {
        let _ = writeln!(s, "  --> {loc}");
    }
    for n in &d.notes {
        let _ = writeln!(s, "  = note: {n}");
    }
    for h in &d.help {
        let _ = writeln!(s, "  = help: {h}");
    }
    s.push('\n');
    s
}

/// `3 errors in 2 files`, `1 error in 1 file`.
pub fn summary(diagnostics: &[Diagnostic]) -> String {
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    let warnings = diagnostics.len() - errors.len();
    let mut files: Vec<&str> = errors
        .iter()
        .filter_map(|d| d.primary.as_ref().map(|p| p.file.as_str()))
        .collect();
    files.sort_unstable();
    files.dedup();
    let mut s = format!(
        "{} in {}",
        plural(errors.len(), "error"),
        plural(files.len(), "file")
    );
    if warnings > 0 {
        let _ = write!(s, "; {}", plural(warnings, "warning"));
    }
    s
}

pub fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// The closest candidate to `wrong`, if any is close enough to be a likely typo.
pub fn did_you_mean<'a>(
    wrong: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let wrong_l = wrong.to_lowercase();
    let mut best: Option<(&str, f64)> = None;
    for c in candidates {
        let c_l = c.to_lowercase();
        let score = strsim::normalized_damerau_levenshtein(&wrong_l, &c_l)
            .max(strsim::jaro_winkler(&wrong_l, &c_l) - 0.15);
        if best.map_or(true, |(_, b)| score > b) {
            best = Some((c, score));
        }
    }
    best.filter(|&(_, s)| s >= 0.65).map(|(c, _)| c)
}

/// "`a`, `b` or `c`".
pub fn list_code(items: &[impl AsRef<str>]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{}`", i.as_ref())).collect();
    match quoted.len() {
        0 => "nothing".into(),
        1 => quoted[0].clone(),
        n => format!("{} or {}", quoted[..n - 1].join(", "), quoted[n - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names_only() {
        let keys = ["address", "port", "user"];
        assert_eq!(did_you_mean("adress", keys), Some("address"));
        assert_eq!(did_you_mean("prot", keys), Some("port"));
        assert_eq!(did_you_mean("usr", keys), Some("user"));
        assert_eq!(did_you_mean("frobnicate", keys), None);
        assert_eq!(
            did_you_mean("node_exporter", ["node-exporter", "nfs"]),
            Some("node-exporter")
        );
    }

    #[test]
    fn renders_like_rustc_without_color() {
        let mut s = Sources::default();
        let id = s.add("hosts/a.toml", "system = \"x\"\nadress = 1\n".into());
        let d = Diagnostic::error("unknown key `adress`")
            .at(s.label(id, 13..19, "unknown key"))
            .help("did you mean `address`?");
        assert_eq!(d.location().as_deref(), Some("hosts/a.toml:2:1"));
        let out = s.render(&[d], false);
        assert!(out.starts_with("error: unknown key `adress`\n"), "{out}");
        assert!(out.contains("--> hosts/a.toml:2:1"), "{out}");
        assert!(out.contains("2 | adress = 1"), "{out}");
        assert!(out.contains("^^^^^^ unknown key"), "{out}");
        assert!(out.contains("= help: did you mean `address`?"), "{out}");
        assert!(!out.contains('\u{1b}'), "no ANSI escapes: {out}");
    }

    #[test]
    fn labels_survive_out_of_range_spans() {
        let mut s = Sources::default();
        let id = s.add("x.toml", "é".into());
        let l = s.label(id, 1..99, "here");
        assert_eq!(l.span, 0..2);
        let out = s.render(&[Diagnostic::error("boom").at(l)], false);
        assert!(out.contains("x.toml:1:1"), "{out}");
    }

    #[test]
    fn rendering_stops_after_max_shown_and_counts_the_rest() {
        let mut s = Sources::default();
        let id = s.add("a.toml", "x = 1\n".into());
        let ds: Vec<Diagnostic> = (0..MAX_SHOWN + 7)
            .map(|i| Diagnostic::error(format!("problem {i}")).at(s.label(id, 0..1, "")))
            .collect();
        let out = s.render(&ds, false);
        assert_eq!(out.matches("error: problem").count(), MAX_SHOWN);
        assert!(out.contains(&format!("error: problem {}\n", MAX_SHOWN - 1)));
        assert!(!out.contains(&format!("error: problem {MAX_SHOWN}\n")));
        assert!(out.ends_with(
            "note: … and 7 more diagnostics not shown; fix the ones above and run again\n"
        ));
        assert_eq!(summary(&ds), format!("{} errors in 1 file", MAX_SHOWN + 7));
    }

    #[test]
    fn summary_counts_errors_files_and_warnings() {
        let mut s = Sources::default();
        let a = s.add("a", "x".into());
        let b = s.add("b", "x".into());
        let ds = vec![
            Diagnostic::error("1").at(s.label(a, 0..1, "")),
            Diagnostic::error("2").at(s.label(a, 0..1, "")),
            Diagnostic::error("3").at(s.label(b, 0..1, "")),
            Diagnostic::warning("4").at(s.label(b, 0..1, "")),
        ];
        assert_eq!(summary(&ds), "3 errors in 2 files; 1 warning");
        assert_eq!(summary(&ds[..1]), "1 error in 1 file");
    }
}

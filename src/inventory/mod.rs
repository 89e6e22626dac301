//! Inventory: read `hearth.toml` and `hosts/*.toml`, validate, and hand out a typed model.
//!
//! `load` is the only entry point the later stages use. It returns every problem it
//! found at once as `Diagnostics` (file, line, column, source line), never just the first.

mod checks;
pub mod diag;
pub use crate::files;
pub mod model;
pub mod schedule;
pub mod schema;
mod shape;
mod ssh_target;

pub use diag::{Diagnostic, Label, Severity};
pub use model::*;

use crate::catalog::Catalog;
use checks::{Checks, HostIn, Src};
use diag::Sources;
use sha2::Digest;
use shape::{Shape, Walker};
use std::cell::OnceCell;
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use toml_edit::ImDocument;

pub const FLEET_FILE: &str = "hearth.toml";
pub const HOSTS_DIR: &str = "hosts";

/// A whole, validated inventory.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Repository root (where `hearth.toml` lives).
    pub root: PathBuf,
    pub fleet: FleetFile,
    /// Hosts by name (the file stem of `hosts/<name>.toml`).
    pub hosts: BTreeMap<String, Host>,
}

#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    /// Path relative to the repository root, e.g. `hosts/helios64.toml`.
    pub source: PathBuf,
    pub file: HostFile,
}

/// The deploy policy with fleet defaults applied.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct EffectiveDeploy {
    pub magic_rollback: bool,
    pub confirm_timeout: u32,
    pub health_timeout: u32,
    pub substitute_on_destination: bool,
    pub health: HealthChecks,
}

impl Inventory {
    pub fn deploy_policy(&self, host: &Host) -> EffectiveDeploy {
        let d = &self.fleet.deploy;
        let h = &host.file.deploy;
        EffectiveDeploy {
            magic_rollback: h.magic_rollback.unwrap_or(d.magic_rollback),
            confirm_timeout: h.confirm_timeout.unwrap_or(d.confirm_timeout),
            health_timeout: h.health_timeout.unwrap_or(d.health_timeout),
            substitute_on_destination: h
                .substitute_on_destination
                .unwrap_or(d.substitute_on_destination),
            health: h.health.clone(),
        }
    }

    pub fn host(&self, name: &str) -> Option<&Host> {
        self.hosts.get(name)
    }
}

impl Host {
    /// `networking.hostId`: the file's `host_id`, else derived from the name.
    pub fn host_id(&self) -> String {
        self.file
            .host_id
            .clone()
            .unwrap_or_else(|| host_id(&self.name))
    }
}

/// A stable ZFS `networking.hostId` for a host: the first 8 hex digits of the
/// sha256 of its name.
pub fn host_id(name: &str) -> String {
    let digest = sha2::Sha256::digest(name.as_bytes());
    hex::encode(&digest[..4])
}

/// The inventory is invalid: every error found, and the rustc-style rendering of all
/// diagnostics (plain text unless stderr is a terminal).
#[derive(Debug, thiserror::Error)]
#[error("invalid inventory ({summary}):\n\n{rendered}")]
pub struct InventoryError {
    /// Errors and warnings, in file order.
    pub diagnostics: Vec<Diagnostic>,
    pub rendered: String,
    /// `3 errors in 2 files`.
    pub summary: String,
}

/// A valid inventory plus the warnings found on the way.
#[derive(Debug)]
pub struct Loaded {
    pub inventory: Inventory,
    pub warnings: Vec<Diagnostic>,
    /// The warnings rendered like rustc; empty when there are none.
    pub rendered_warnings: String,
}

/// Everything one validation run found.
pub struct Report {
    /// Present exactly when there are no errors.
    pub inventory: Option<Inventory>,
    /// Errors and warnings, ordered by file and position.
    pub diagnostics: Vec<Diagnostic>,
    pub sources: Sources,
}

impl Report {
    pub fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    pub fn render(&self, color: bool) -> String {
        self.sources.render(&self.diagnostics, color)
    }

    pub fn summary(&self) -> String {
        diag::summary(&self.diagnostics)
    }

    /// Fold the errors of an in-memory compile into the report (which then has no
    /// inventory). A message starting with a repository file (`catalog/x.nix.tera: …`)
    /// points at that file.
    pub fn add_compile_errors(&mut self, root: &Path, errors: Vec<String>) {
        self.inventory = None;
        for msg in errors {
            let file = msg
                .split_once(": ")
                .map(|(f, _)| f.to_string())
                .filter(|f| !f.contains(' ') && !f.starts_with('/'));
            let mut d = Diagnostic::error(msg.clone());
            if let Some(f) = file {
                if let Ok(text) = files::read_text(&root.join(&f)) {
                    let span = locate_option(&text, &msg);
                    let id = self.sources.add(f, text);
                    d = d.at(self.sources.label(id, span, "set here"));
                }
            }
            self.diagnostics.push(d);
        }
    }
}

pub fn color_stderr() -> bool {
    std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()
}

/// Load and validate the inventory at `root`. Errors come back as an
/// [`InventoryError`] (inside anyhow) listing every problem; warnings are dropped.
pub fn load(root: &Path) -> anyhow::Result<Inventory> {
    load_with_warnings(root).map(|l| l.inventory)
}

/// Like [`load`], and also hands back the warnings.
pub fn load_with_warnings(root: &Path) -> anyhow::Result<Loaded> {
    let report = check(root)?;
    let color = color_stderr();
    match report.inventory {
        Some(inventory) => {
            let rendered_warnings = report.sources.render(&report.diagnostics, color);
            Ok(Loaded {
                inventory,
                warnings: report.diagnostics,
                rendered_warnings,
            })
        }
        None => {
            let rendered = report.sources.render(&report.diagnostics, color);
            let summary = diag::summary(&report.diagnostics);
            Err(InventoryError {
                diagnostics: report.diagnostics,
                rendered,
                summary,
            }
            .into())
        }
    }
}

/// Validate the inventory at `root` against the catalog found there. `Err` only when
/// the catalog itself can't be loaded; problems in the inventory are in the report.
pub fn check(root: &Path) -> anyhow::Result<Report> {
    let catalog = Catalog::load(root)?;
    Ok(check_with_catalog(root, &catalog))
}

fn fleet_shape() -> &'static Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    SHAPE.get_or_init(|| Shape::compile(&schema::fleet_schema()))
}

fn bare_host_shape() -> &'static Shape {
    static SHAPE: OnceLock<Shape> = OnceLock::new();
    SHAPE.get_or_init(|| Shape::compile(&schema::host_schema(&Catalog::default())))
}

/// One file read, parsed, structurally checked and (when clean) deserialized.
/// A clean file's document is consumed by serde; checks that need a span parse it
/// again lazily, which only happens when they report something.
struct Parsed<T> {
    id: usize,
    doc: OnceCell<ImDocument<String>>,
    model: Option<T>,
}

impl<T> Parsed<T> {
    fn new(id: usize, doc: Option<ImDocument<String>>, model: Option<T>) -> Self {
        let cell = OnceCell::new();
        if let Some(doc) = doc {
            let _ = cell.set(doc);
        }
        Parsed {
            id,
            doc: cell,
            model,
        }
    }

    fn src<'a>(&'a self, sources: &'a Sources) -> Src<'a> {
        Src {
            id: self.id,
            text: sources.text(self.id),
            doc: &self.doc,
        }
    }
}

fn parse_file<T: serde::de::DeserializeOwned>(
    sources: &Sources,
    id: usize,
    shape: &Shape,
    out: &mut Vec<Diagnostic>,
) -> Parsed<T> {
    let text = sources.text(id).to_string();
    let doc =
        match ImDocument::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let mut lines = e.message().trim().lines();
                let first = lines.next().unwrap_or("invalid TOML").to_string();
                let rest: Vec<&str> = lines.collect();
                // Point at where the parser stopped, not at the whole rest of the file.
                let span = e.span().unwrap_or(0..0);
                let text = sources.text(id);
                let line_end = text
                    .get(span.start..)
                    .and_then(|rest| rest.find('\n'))
                    .map_or(text.len(), |i| span.start + i);
                let span = span.start..span.end.min(line_end).max(span.start);
                let mut d = Diagnostic::error(format!("TOML syntax error: {first}"))
                    .at(sources.label(id, span, first.clone()));
                if !rest.is_empty() {
                    d = d.note(rest.join(" "));
                }
                out.push(d.help("fix the TOML syntax; see https://toml.io"));
                return Parsed::new(id, None, None);
            }
        };
    // Walk into a list of this file's own, so the walker's cap on costly hints
    // (`did you mean`) counts this file's problems only.
    let mut found = Vec::new();
    Walker {
        sources,
        file: id,
        out: &mut found,
    }
    .document(shape, &doc);
    if !found.is_empty() {
        out.append(&mut found);
        return Parsed::new(id, Some(doc), None);
    }
    // The walk found nothing, so this rarely fails; if it does, say where.
    match T::deserialize(toml_edit::de::Deserializer::from(doc)) {
        Ok(model) => Parsed::new(id, None, Some(model)),
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            out.push(
                Diagnostic::error(e.message().trim().to_string())
                    .at(sources.label(id, span, "invalid value"))
                    .help("see docs/HOST_FILE.md for the accepted values"),
            );
            Parsed::new(id, None, None)
        }
    }
}

/// `parse_file` over many files, on several threads when there are many.
fn parse_all<T: serde::de::DeserializeOwned + Send>(
    sources: &Sources,
    ids: &[usize],
    shape: &Shape,
    out: &mut Vec<Diagnostic>,
) -> Vec<Parsed<T>> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let threads = cores.min(ids.len() / 64).max(1);
    let parse_chunk = |chunk: &[usize]| {
        let mut found = Vec::new();
        let parsed: Vec<Parsed<T>> = chunk
            .iter()
            .map(|&id| parse_file(sources, id, shape, &mut found))
            .collect();
        (parsed, found)
    };
    let results = if threads == 1 {
        vec![parse_chunk(ids)]
    } else {
        let size = ids.len().div_ceil(threads);
        std::thread::scope(|scope| {
            let handles: Vec<_> = ids
                .chunks(size)
                .map(|c| scope.spawn(move || parse_chunk(c)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        })
    };
    let mut all = Vec::with_capacity(ids.len());
    for (parsed, found) in results {
        all.extend(parsed);
        out.extend(found);
    }
    all
}

/// Where in `text` the first dotted option named in `msg` (`` `a.b.c` ``) is set: the
/// longest suffix of it that occurs (`a.b.c`, `b.c`, `c`), else the start.
fn locate_option(text: &str, msg: &str) -> std::ops::Range<usize> {
    let option = msg
        .split('`')
        .skip(1)
        .step_by(2)
        .find(|w| w.contains('.') && !w.contains(' ') && !w.contains('/'));
    let Some(option) = option else {
        return 0..0;
    };
    let parts: Vec<&str> = option.split('.').collect();
    (0..parts.len())
        .map(|i| parts[i..].join("."))
        .find_map(|suffix| text.find(&suffix).map(|at| at..at + suffix.len()))
        .unwrap_or(0..0)
}

/// `hearth.toml`'s id in `sources`, or an error saying why it can't be read.
fn read_fleet(root: &Path, sources: &mut Sources, out: &mut Vec<Diagnostic>) -> Option<usize> {
    let e = match files::read_text(&root.join(FLEET_FILE)) {
        Ok(text) => return Some(sources.add(FLEET_FILE, text)),
        Err(e) => e,
    };
    let d = Diagnostic::error(format!(
        "cannot read `{FLEET_FILE}` in `{}`: it {e}",
        root.display()
    ));
    out.push(match e {
        files::FileError::Missing => d.help("run hearth in the repository root, or pass `-C DIR`"),
        _ => {
            let id = sources.add(FLEET_FILE, String::new());
            d.at(sources.label(id, 0..0, "not a readable file"))
                .help(format!("make `{FLEET_FILE}` a regular text file"))
        }
    });
    None
}

/// One `hosts/<name>.toml`: its source id, and whether its text was read.
struct Listed {
    name: String,
    id: usize,
    read: bool,
}

/// Every entry of `hosts/`, read or refused by name. Each entry must be a regular file
/// (or a symlink to one) with a UTF-8 name; those ending in `.toml` are host files,
/// others are ignored. Nothing that isn't a regular file is opened for reading.
fn list_hosts(
    root: &Path,
    fleet_found: bool,
    sources: &mut Sources,
    out: &mut Vec<Diagnostic>,
) -> Option<Vec<Listed>> {
    let dir = root.join(HOSTS_DIR);
    let entries = match files::stat(&dir).map(|m| m.is_dir()) {
        Ok(true) => std::fs::read_dir(&dir).map_err(files::FileError::Io),
        Ok(false) => Err(files::FileError::NotRegular("")),
        Err(e) => Err(e),
    };
    let entries = match entries {
        Ok(entries) => entries,
        Err(files::FileError::Missing) => {
            if fleet_found {
                out.push(
                    Diagnostic::warning(format!(
                        "no `{HOSTS_DIR}/` directory: the fleet has no hosts"
                    ))
                    .help(format!(
                        "add one file per machine: `{HOSTS_DIR}/<name>.toml`"
                    )),
                );
            }
            return Some(Vec::new());
        }
        Err(e) => {
            let why = match e {
                files::FileError::NotRegular(_) => "is not a directory".to_string(),
                files::FileError::Io(e) => format!("cannot be read: {e}"),
                e => e.to_string(),
            };
            out.push(
                Diagnostic::error(format!("`{HOSTS_DIR}/` {why}")).help(format!(
                    "`{HOSTS_DIR}/` must be a directory readable by hearth"
                )),
            );
            return None;
        }
    };
    let mut names: Vec<std::ffi::OsString> = Vec::new();
    for entry in entries {
        match entry {
            Ok(e) => names.push(e.file_name()),
            Err(e) => out.push(Diagnostic::error(format!(
                "`{HOSTS_DIR}/` cannot be listed: {e}"
            ))),
        }
    }
    names.sort();
    Some(
        names
            .into_iter()
            .filter_map(|n| host_entry(&dir, &n, sources, out))
            .collect(),
    )
}

/// One entry of `hosts/`: a host to parse, a host that failed (reported), or `None`
/// for an ignored file or a refused name.
fn host_entry(
    dir: &Path,
    file_name: &std::ffi::OsStr,
    sources: &mut Sources,
    out: &mut Vec<Diagnostic>,
) -> Option<Listed> {
    let path = dir.join(file_name);
    let rel = format!("{HOSTS_DIR}/{}", file_name.to_string_lossy());
    let refuse = |sources: &mut Sources, out: &mut Vec<Diagnostic>, why: String, help: String| {
        let id = sources.add(rel.clone(), String::new());
        out.push(
            Diagnostic::error(format!("`{rel}` {why}"))
                .at(sources.label(id, 0..0, "refused"))
                .help(help),
        );
        id
    };
    let Some(utf8) = file_name.to_str() else {
        refuse(
            sources,
            out,
            "has a file name that is not valid UTF-8".into(),
            format!("rename it: host files are `{HOSTS_DIR}/<name>.toml` with an ASCII name"),
        );
        return None;
    };
    let Some(name) = utf8.strip_suffix(".toml") else {
        // Not a host file: fine when it is a regular file (a README), refused otherwise.
        if let Err(e) = files::stat(&path).and_then(|m| match files::irregular_kind(&m) {
            Some(kind) => Err(files::FileError::NotRegular(kind)),
            None => Ok(()),
        }) {
            refuse(
                sources,
                out,
                e.to_string(),
                format!("`{HOSTS_DIR}/` holds only host files `<name>.toml` (subdirectories are not read); move it out"),
            );
        }
        return None;
    };
    match files::read_text(&path) {
        Ok(text) => Some(Listed {
            name: name.to_string(),
            id: sources.add(rel, text),
            read: true,
        }),
        Err(e) => Some(Listed {
            name: name.to_string(),
            id: refuse(
                sources,
                out,
                e.to_string(),
                "a host file must be a readable regular UTF-8 text file of at most 1 MiB".into(),
            ),
            read: false,
        }),
    }
}

/// Validate with a given catalog (tests pass a hand-made one).
pub fn check_with_catalog(root: &Path, catalog: &Catalog) -> Report {
    let mut sources = Sources::default();
    let mut out = Vec::new();

    let fleet_id = read_fleet(root, &mut sources, &mut out);
    // `None` when `hosts/` exists but can't be listed: then references to hosts can't
    // be judged, and the fleet-wide checks would only add false "no such host" errors.
    let listed = list_hosts(root, fleet_id.is_some(), &mut sources, &mut out);
    let hosts_known = listed.is_some();
    let listed = listed.unwrap_or_default();

    let fleet: Option<Parsed<FleetFile>> =
        fleet_id.map(|id| parse_file(&sources, id, fleet_shape(), &mut out));
    let catalog_shape;
    let host_shape = if catalog.services.is_empty() {
        bare_host_shape()
    } else {
        catalog_shape = Shape::compile(&schema::host_schema(catalog));
        &catalog_shape
    };
    let hosts = parse_hosts(listed, &sources, host_shape, &mut out);
    let fleet_model = fleet.as_ref().and_then(|f| f.model.as_ref());
    let mut checks = Checks {
        root,
        sources: &sources,
        out: &mut out,
        names: &hosts.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>(),
        local_system: format!("{}-linux", std::env::consts::ARCH),
    };
    if let Some(f) = fleet.as_ref().filter(|_| hosts_known) {
        if let Some(model) = &f.model {
            checks.fleet(f.src(&sources), model);
        }
    }
    check_hosts(&mut checks, &hosts, fleet_model, hosts_known);
    sort_by_position(&mut out);
    let failed = out.iter().any(Diagnostic::is_error);
    let inventory = match fleet.and_then(|f| f.model) {
        Some(fleet) if !failed => Some(into_inventory(root, fleet, hosts)),
        _ => None,
    };
    Report {
        inventory,
        diagnostics: out,
        sources,
    }
}

/// Parse every readable host file. Unreadable ones keep their name (so references to
/// them don't cascade into "no such host" errors) but are not parsed.
fn parse_hosts(
    listed: Vec<Listed>,
    sources: &Sources,
    host_shape: &Shape,
    out: &mut Vec<Diagnostic>,
) -> Vec<(String, Parsed<HostFile>)> {
    let ids: Vec<usize> = listed.iter().filter(|h| h.read).map(|h| h.id).collect();
    let mut parsed = parse_all::<HostFile>(sources, &ids, host_shape, out).into_iter();
    listed
        .into_iter()
        .map(|h| {
            let p = match h.read {
                true => parsed.next().expect("one parse per readable file"),
                false => Parsed::new(h.id, None, None),
            };
            (h.name, p)
        })
        .collect()
}

/// Each host's own checks, then (when every host is known) the fleet-wide ones.
fn check_hosts(
    checks: &mut Checks,
    hosts: &[(String, Parsed<HostFile>)],
    fleet_model: Option<&FleetFile>,
    hosts_known: bool,
) {
    let mut valid = Vec::new();
    for (name, parsed) in hosts {
        checks.host_name(parsed.id, name);
        if let Some(file) = &parsed.model {
            valid.push(HostIn {
                name,
                src: parsed.src(checks.sources),
                file,
            });
        }
    }
    for h in &valid {
        checks.host(h, fleet_model);
    }
    if hosts_known {
        checks.fleet_wide(&valid);
    }
}

/// Diagnostics in file order, then by position.
fn sort_by_position(out: &mut [Diagnostic]) {
    out.sort_by_key(|d| {
        d.primary
            .as_ref()
            .map(|p| (p.file_id, p.span.start))
            .unwrap_or((0, 0))
    });
}

fn into_inventory(
    root: &Path,
    fleet: FleetFile,
    hosts: Vec<(String, Parsed<HostFile>)>,
) -> Inventory {
    Inventory {
        root: root.to_path_buf(),
        fleet,
        hosts: hosts
            .into_iter()
            .filter_map(|(name, p)| {
                let file = p.model?;
                let source = Path::new(HOSTS_DIR).join(format!("{name}.toml"));
                Some((name.clone(), Host { name, source, file }))
            })
            .collect(),
    }
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Examples:\n  hearth schema > schema/host.schema.json\n  hearth schema --fleet > schema/fleet.schema.json\n  hearth schema --markdown   the key reference in docs/HOST_FILE.md"
)]
pub struct SchemaArgs {
    /// The schema of hearth.toml instead of a host file.
    #[arg(long, conflicts_with = "markdown")]
    pub fleet: bool,
    /// The Markdown key reference of both files (as in docs/HOST_FILE.md).
    #[arg(long)]
    pub markdown: bool,
}

/// `hearth schema`.
pub fn run_schema(root: &Path, args: SchemaArgs) -> anyhow::Result<u8> {
    let catalog = Catalog::load(root)?;
    let host = schema::host_schema(&catalog);
    let text = if args.markdown {
        schema::markdown(&host, &schema::fleet_schema())
    } else if args.fleet {
        schema::to_json(&schema::fleet_schema())
    } else {
        schema::to_json(&host)
    };
    print!("{text}");
    Ok(0)
}

#[cfg(test)]
mod tests;

//! `hearth check`: the inventory's own checks, then `gen` without writing (compile in
//! memory and parse every file), then the secret files. It sits above `inventory`,
//! `compile` and `secrets` because it runs all three; none of them calls it.

use crate::catalog::Catalog;
use crate::{compile, inventory, secrets};
use std::path::Path;

#[derive(Debug, clap::Args)]
pub struct CheckArgs {
    /// Print the diagnostics as JSON on stdout instead of text on stderr.
    #[arg(long)]
    pub json: bool,
}

/// `hearth check`: 0 when valid (warnings printed), 1 with every error printed.
pub fn run_check(root: &Path, args: CheckArgs) -> anyhow::Result<u8> {
    let catalog = Catalog::load(root)?;
    let mut report = inventory::check_with_catalog(root, &catalog);
    if let Some(inv) = &report.inventory {
        // `check` is `gen` without writing: compile in memory and parse every file.
        let compiled = compile::dry_run(inv, &catalog);
        // The secret files only matter once the inventory that names them is valid.
        let secrets = secrets::check_diagnostics(root, inv);
        report.diagnostics.extend(secrets);
        if let Err(e) = compiled {
            report.add_compile_errors(root, e.0);
        }
    }
    let errors = report.error_count();
    if args.json {
        let shown = report.diagnostics.len().min(inventory::diag::MAX_SHOWN);
        let mut json = serde_json::json!({
            "ok": errors == 0,
            "summary": report.summary(),
            "diagnostics": report.diagnostics[..shown],
            "omitted": report.diagnostics.len() - shown,
        });
        // Keys sorted, as `--json` has always printed them (docs/ARCHITECTURE.md,
        // "Dependencies").
        json.sort_all_objects();
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(u8::from(errors > 0));
    }
    eprint!("{}", report.render(inventory::color_stderr()));
    if errors > 0 {
        eprintln!("error: {}", report.summary());
        return Ok(1);
    }
    let hosts = report.inventory.as_ref().map_or(0, |i| i.hosts.len());
    let warnings = report.diagnostics.len();
    let mut line = format!("ok: {} valid", inventory::diag::plural(hosts, "host"));
    if warnings > 0 {
        line.push_str(&format!(
            ", {}",
            inventory::diag::plural(warnings, "warning")
        ));
    }
    eprintln!("{line}");
    Ok(0)
}

use clap::{CommandFactory, Parser};
use hearth::cli::{Cli, Command};
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root();
    let result = match cli.command {
        Command::Gen(args) => hearth::compile::run_gen(&root, args),
        Command::Check(args) => hearth::check::run_check(&root, args),
        Command::Show(args) => hearth::compile::run_show(&root, args),
        Command::Schema(args) => hearth::inventory::run_schema(&root, args),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "hearth", &mut std::io::stdout());
            Ok(0)
        }
        Command::Lab(args) => hearth::lab::run(&root, args),
        Command::Deploy(args) => hearth::deploy::run_deploy(&root, args),
        Command::Rollback(args) => hearth::deploy::run_rollback(&root, args),
        Command::Status(args) => hearth::deploy::run_status(&root, args),
        Command::Builders(args) => hearth::builders::run(&root, args),
        Command::Update(args) => hearth::update::run_update(&root, args),
        Command::Diff(args) => hearth::update::run_diff(&root, args),
        Command::Secrets(args) => hearth::secrets::run(&root, args),
        Command::Install(args) => hearth::install::run_install(&root, args),
        Command::Image(args) => hearth::install::run_image(&root, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(1)
        }
    }
}

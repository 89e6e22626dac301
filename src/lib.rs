//! hearth: inventory files → validated model → compile (Nix) and plan → build → push
//! → activate → report. One module per stage, plus narrow wrappers around `nix` and `ssh`.

pub mod builders;
pub mod catalog;
pub mod check;
pub mod cli;
pub mod compile;
pub mod deploy;
pub mod events;
pub mod files;
pub mod install;
pub mod inventory;
pub mod lab;
pub mod lines;
pub mod nix;
pub mod process;
pub mod secrets;
pub mod ssh;
pub mod ui;
pub mod update;
pub mod values;

//! Narrow wrappers around the `nix` CLI. Command lines come from pure functions
//! (unit-tested); running them goes through `crate::process`.
//!
//! Tests run Nix 2.8 (Debian); users run 2.18+. Anything whose shape differs by
//! version branches on [`NixVersion`].

pub mod closure;
pub mod flake;
pub mod version;

pub use version::NixVersion;

//! Narrow wrappers around the `nix` CLI. Command lines come from pure functions
//! (unit-tested); running them goes through `crate::process`.
//!
//! Tests run Nix 2.8 (Debian); users run 2.18+. Anything whose shape differs by
//! version branches on [`NixVersion`] or accepts both shapes.

pub mod build;
pub mod closure;
pub mod copy;
pub mod flake;
pub mod pathinfo;
pub mod version;

pub use version::NixVersion;

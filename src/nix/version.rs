//! Detect the local Nix version, because several CLI shapes changed between 2.8 and 2.19+.

use anyhow::{anyhow, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NixVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl NixVersion {
    /// The oldest Nix hearth drives (Debian 12's); assumed when detection failed, since its
    /// command shapes are the conservative ones.
    pub const OLDEST_SUPPORTED: NixVersion = NixVersion::new(2, 8, 0);

    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parse the output of `nix --version`, e.g. `nix (Nix) 2.8.0` or `nix (Nix) 2.24.10`.
    /// The last number wins, since vendor builds print their own version first.
    pub fn parse(text: &str) -> Result<Self> {
        let word = text
            .split_whitespace()
            .rfind(|w| w.chars().next().is_some_and(|c| c.is_ascii_digit()))
            .ok_or_else(|| anyhow!("no version number in `{}`", text.trim()))?;
        let mut nums = word
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty())
            .map(|s| s.parse::<u32>().unwrap_or(0));
        let major = nums.next().unwrap_or(0);
        let minor = nums.next().unwrap_or(0);
        let patch = nums.next().unwrap_or(0);
        Ok(Self {
            major,
            minor,
            patch,
        })
    }

    pub fn detect() -> Result<Self> {
        let out = crate::process::run_stdout(crate::nix::command().arg("--version"))?;
        Self::parse(&out)
    }

    /// `nix path-info --json` prints an object keyed by path (2.19+) instead of an array.
    pub fn path_info_is_object(self) -> bool {
        self >= Self::new(2, 19, 0)
    }

    /// `nix flake update INPUT` replaced `nix flake lock --update-input INPUT` (2.19+).
    pub fn has_flake_update_input_args(self) -> bool {
        self >= Self::new(2, 19, 0)
    }

    /// `nix build --print-out-paths` exists from 2.9.
    pub fn has_print_out_paths(self) -> bool {
        self >= Self::new(2, 9, 0)
    }
}

impl std::fmt::Display for NixVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_shapes() {
        assert_eq!(
            NixVersion::parse("nix (Nix) 2.8.0\n").unwrap(),
            NixVersion::new(2, 8, 0)
        );
        assert_eq!(
            NixVersion::parse("nix (Nix) 2.24.10").unwrap(),
            NixVersion::new(2, 24, 10)
        );
        // The last number is Nix's own version, whatever the vendor prefix says.
        assert_eq!(
            NixVersion::parse("nix (Determinate Nix 3.6.2) 2.29.0").unwrap(),
            NixVersion::new(2, 29, 0)
        );
        assert!(NixVersion::parse("nix").is_err());
    }

    #[test]
    fn feature_gates() {
        assert!(!NixVersion::new(2, 8, 0).path_info_is_object());
        assert!(NixVersion::new(2, 19, 0).path_info_is_object());
        assert!(NixVersion::new(2, 18, 1).has_print_out_paths());
    }
}

//! Version ordering exactly like Nix's `builtins.compareVersions`, so the PR body
//! calls an upgrade what `nix-env -u` would.

use std::cmp::Ordering;

/// Split off the next component: a run of digits, or a run of other characters;
/// `.` and `-` only separate.
fn next_component<'a>(rest: &mut &'a str) -> &'a str {
    let s = rest.trim_start_matches(['.', '-']);
    let is_digit = s.chars().next().is_some_and(|c| c.is_ascii_digit());
    let end = s
        .char_indices()
        .find(|&(_, c)| {
            if is_digit {
                !c.is_ascii_digit()
            } else {
                c.is_ascii_digit() || c == '.' || c == '-'
            }
        })
        .map(|(i, _)| i)
        .unwrap_or(s.len());
    *rest = &s[end..];
    &s[..end]
}

fn is_number(c: &str) -> bool {
    !c.is_empty() && c.bytes().all(|b| b.is_ascii_digit())
}

/// Numeric order on digit strings of any length (dates like 20250101 and
/// long git-describe counts must not overflow).
fn cmp_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

/// Nix's `componentsLT`.
fn component_lt(c1: &str, c2: &str) -> bool {
    let (n1, n2) = (is_number(c1), is_number(c2));
    if n1 && n2 {
        cmp_numbers(c1, c2) == Ordering::Less
    } else if (c1.is_empty() && n2) || (c1 == "pre" && c2 != "pre") {
        true
    } else if c2 == "pre" {
        false
    } else if n2 {
        // `2.3a` < `2.3.1`
        true
    } else if n1 {
        false
    } else {
        c1 < c2
    }
}

/// Compare two version strings the way `builtins.compareVersions` does.
///
/// Note Nix's rule that a non-numeric component sorts *after* a missing one,
/// so `1.0 < 1.0-rc1`, while the special word `pre` sorts first (`1.0pre1 < 1.0`).
pub fn compare_versions(v1: &str, v2: &str) -> Ordering {
    let (mut p1, mut p2) = (v1, v2);
    while !p1.is_empty() || !p2.is_empty() {
        let c1 = next_component(&mut p1);
        let c2 = next_component(&mut p2);
        if component_lt(c1, c2) {
            return Ordering::Less;
        }
        if component_lt(c2, c1) {
            return Ordering::Greater;
        }
    }
    Ordering::Equal
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn numeric_components_compare_as_numbers() {
        assert_eq!(compare_versions("6.12.40", "6.12.44"), Less);
        assert_eq!(compare_versions("2.4.10", "2.4.9"), Greater);
        assert_eq!(compare_versions("1.10", "1.9"), Greater);
        assert_eq!(compare_versions("1.0", "1.0"), Equal);
        assert_eq!(compare_versions("1.0", "1.0.0"), Less);
        assert_eq!(compare_versions("007", "7"), Equal);
    }

    #[test]
    fn dates_and_unstable_versions() {
        assert_eq!(compare_versions("2024-11-05", "2025-01-02"), Less);
        assert_eq!(
            compare_versions("0-unstable-2024-11-05", "0-unstable-2024-12-01"),
            Less
        );
        assert_eq!(compare_versions("20250101", "20241231"), Greater);
        // Longer than any machine integer.
        assert_eq!(
            compare_versions("1.123456789012345678901234567890", "1.99"),
            Greater
        );
    }

    #[test]
    fn pre_releases_follow_nix_rules() {
        // `pre` sorts before everything.
        assert_eq!(compare_versions("1.0pre1", "1.0"), Less);
        assert_eq!(compare_versions("2.3pre", "2.3"), Less);
        // Any other word sorts after a missing component: Nix orders 1.0 < 1.0-rc1.
        assert_eq!(compare_versions("1.0-rc1", "1.0"), Greater);
        assert_eq!(compare_versions("1.0-rc1", "1.0-rc2"), Less);
        assert_eq!(compare_versions("1.0-rc2", "1.0.1"), Less);
        // Letters sort before numbers: 2.3a < 2.3.1.
        assert_eq!(compare_versions("2.3a", "2.3.1"), Less);
        assert_eq!(compare_versions("2.3a", "2.3b"), Less);
        assert_eq!(compare_versions("1.2.3", "1.2.3a"), Less);
    }

    #[test]
    fn matches_nix_manual_examples() {
        // From the Nix manual's `builtins.compareVersions` / `nix-env` ordering list.
        let ordered = ["1.0", "2.3", "2.3a", "2.3.1", "2.5"];
        for w in ordered.windows(2) {
            assert_eq!(compare_versions(w[0], w[1]), Less, "{} < {}", w[0], w[1]);
            assert_eq!(compare_versions(w[1], w[0]), Greater);
        }
        assert_eq!(compare_versions("2.3pre1", "2.3"), Less);
        assert_eq!(compare_versions("2.3pre1", "2.3c"), Less);
        assert_eq!(compare_versions("2.3pre1", "2.3q"), Less);
    }
}

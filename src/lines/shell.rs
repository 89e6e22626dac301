//! POSIX shell words: the one quoter for every command line hearth builds (remote
//! commands over ssh, the supervisor script, the builder's copy script, values NixOS
//! puts into scripts such as `nix.gc.options`).

/// `s` as one POSIX shell word the shell reads back exactly: as is when it is made only
/// of characters no shell interprets (`/nix/store/…-x`, `30d`), else single-quoted. A NUL
/// cannot be in a word at all; it never reaches here from a host file (the Nix layer
/// refuses it) and is dropped rather than cutting the command short.
pub fn quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./,+-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\0', "").replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn exact_quoting() {
        assert_eq!(quote("30d"), "30d");
        assert_eq!(quote("/nix/store/abc-x"), "/nix/store/abc-x");
        assert_eq!(quote("a=b"), "'a=b'", "never an assignment");
        assert_eq!(quote("~"), "'~'");
        assert_eq!(quote("30d; rm -rf /"), "'30d; rm -rf /'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote(""), "''");
    }

    proptest! {
        // `sh` itself reads the word back; batched so the test spawns one shell per case set.
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn sh_reads_back_exactly(words in proptest::collection::vec("[^\u{0}]*", 1..8)) {
            let script: String = words
                .iter()
                .map(|w| format!("printf '%s\\0' {}\n", quote(w)))
                .collect();
            let out = std::process::Command::new("sh").arg("-c").arg(&script).output().unwrap();
            let got: Vec<String> = String::from_utf8(out.stdout)
                .unwrap()
                .split_terminator('\0')
                .map(String::from)
                .collect();
            prop_assert_eq!(got, words);
        }
    }
}

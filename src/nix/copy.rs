//! `nix copy` to a host, with progress read from `--log-format internal-json -v`.

use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;

/// Nix's activity types (libutil/logging.hh) that copy progress needs.
const ACT_COPY_PATH: u64 = 100;
const ACT_COPY_PATHS: u64 = 103;
/// Result types.
const RES_PROGRESS: u64 = 105;
const RES_SET_EXPECTED: u64 = 106;

/// The store URI of a host reached through an SSH config alias.
/// `ssh-ng` runs `nix-daemon --stdio` there; `ssh` runs `nix-store --serve`.
pub fn store_uri(ssh_ng: bool, user: &str, host_alias: &str) -> String {
    let scheme = if ssh_ng { "ssh-ng" } else { "ssh" };
    format!("{scheme}://{user}@{host_alias}")
}

/// Arguments of `nix copy` (after the program name). Without a signing key, locally built
/// paths are unsigned, hence `--no-check-sigs` (which only a user the target trusts may use);
/// `signed` paths carry the deployer's signature and the target checks it.
pub fn copy_args(
    to: &str,
    path: &str,
    substitute_on_destination: bool,
    signed: bool,
) -> Vec<String> {
    let mut a: Vec<String> = vec!["copy".into(), "--to".into(), to.into()];
    if !signed {
        a.push("--no-check-sigs".into());
    }
    if substitute_on_destination {
        a.push("--substitute-on-destination".into());
    }
    a.extend([
        "--log-format".into(),
        "internal-json".into(),
        "-v".into(),
        path.into(),
    ]);
    a
}

/// `NIX_SSHOPTS` for Nix's own ssh calls: our config file, and our control socket when
/// a multiplexed master is already up (saves a handshake).
pub fn nix_sshopts(ssh_config: &Path, control_path: Option<&Path>) -> String {
    crate::ssh::profiles::nix_sshopts(ssh_config, control_path)
}

/// Progress of one `nix copy`, folded from its internal-json log lines.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CopyProgress {
    pub paths_done: u64,
    pub paths_expected: u64,
    pub bytes_done: u64,
    pub bytes_expected: u64,
    /// Bytes copied so far by paths still in flight: activity id → (done, expected).
    running: HashMap<u64, (u64, u64)>,
    copy_path_ids: std::collections::HashSet<u64>,
    copy_paths_ids: std::collections::HashSet<u64>,
    finished_bytes: u64,
    finished_paths: u64,
    /// Error messages Nix logged (`msg` at level 0).
    pub errors: Vec<String>,
}

impl CopyProgress {
    /// Feed one stderr line. Returns true when the visible progress changed.
    pub fn feed(&mut self, line: &str) -> bool {
        let Some(json) = line.strip_prefix("@nix ") else {
            return false;
        };
        let Ok(v) = serde_json::from_str::<Value>(json) else {
            return false;
        };
        let id = v.get("id").and_then(Value::as_u64).unwrap_or(0);
        let ty = v.get("type").and_then(Value::as_u64).unwrap_or(0);
        let fields: Vec<u64> = v
            .get("fields")
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default();
        let before = self.visible();
        match v.get("action").and_then(Value::as_str) {
            Some("start") if ty == ACT_COPY_PATHS => {
                self.copy_paths_ids.insert(id);
                // "copying 12 paths"
                let text = v.get("text").and_then(Value::as_str).unwrap_or("");
                if let Some(n) = text.split_whitespace().find_map(|w| w.parse::<u64>().ok()) {
                    // Nix's own count of the paths it will copy replaces any estimate.
                    self.paths_expected = n;
                }
            }
            Some("start") if ty == ACT_COPY_PATH => {
                self.copy_path_ids.insert(id);
                self.running.insert(id, (0, 0));
            }
            Some("stop") if self.copy_path_ids.remove(&id) => {
                if let Some((done, expected)) = self.running.remove(&id) {
                    self.finished_bytes += done.max(expected);
                }
                self.finished_paths += 1;
            }
            Some("result") if ty == RES_PROGRESS && fields.len() >= 2 => {
                if self.copy_paths_ids.contains(&id) {
                    self.paths_done = self.paths_done.max(fields[0]);
                    self.paths_expected = self.paths_expected.max(fields[1]);
                } else if let Some(r) = self.running.get_mut(&id) {
                    *r = (fields[0], fields[1]);
                }
            }
            Some("result")
                if ty == RES_SET_EXPECTED
                    && fields.len() >= 2
                    && self.copy_paths_ids.contains(&id)
                    && fields[0] == ACT_COPY_PATH =>
            {
                self.bytes_expected = fields[1];
            }
            Some("msg") if v.get("level").and_then(Value::as_u64) == Some(0) => {
                if let Some(m) = v.get("msg").and_then(Value::as_str) {
                    self.errors.push(strip_ansi(m));
                }
            }
            _ => {}
        }
        self.paths_done = self.paths_done.max(self.finished_paths);
        self.bytes_done = self.finished_bytes + self.running.values().map(|r| r.0).sum::<u64>();
        self.bytes_expected = self.bytes_expected.max(self.bytes_done);
        self.paths_expected = self.paths_expected.max(self.paths_done);
        before != self.visible()
    }

    fn visible(&self) -> (u64, u64, u64, u64) {
        (
            self.paths_done,
            self.paths_expected,
            self.bytes_done,
            self.bytes_expected,
        )
    }
}

/// Remove terminal colour codes Nix puts in its messages.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_command_line() {
        let a = copy_args("ssh-ng://root@h1", "/nix/store/x-sys", true, false);
        assert_eq!(
            a.join(" "),
            "copy --to ssh-ng://root@h1 --no-check-sigs --substitute-on-destination --log-format internal-json -v /nix/store/x-sys"
        );
        assert!(!copy_args("ssh://u@h", "/p", false, false)
            .iter()
            .any(|s| s.contains("substitute")));
        assert_eq!(
            copy_args("ssh-ng://hearth-push@h2", "/p", false, true).join(" "),
            "copy --to ssh-ng://hearth-push@h2 --log-format internal-json -v /p"
        );
        assert_eq!(store_uri(true, "root", "h1"), "ssh-ng://root@h1");
        assert_eq!(store_uri(false, "deploy", "h1"), "ssh://deploy@h1");
        assert_eq!(
            nix_sshopts(Path::new("/r/cfg"), Some(Path::new("/t/sock"))),
            "-F /r/cfg -o ControlPath=/t/sock -o ControlMaster=no"
        );
    }

    #[test]
    fn folds_internal_json_progress() {
        let lines = [
            r#"@nix {"action":"start","id":1,"level":3,"text":"copying 2 paths","type":103}"#,
            r#"@nix {"action":"result","id":1,"type":106,"fields":[100,3000]}"#,
            r#"@nix {"action":"start","fields":["/nix/store/a","local","ssh-ng://h"],"id":2,"level":3,"text":"copying path","type":100}"#,
            r#"@nix {"action":"result","id":2,"type":105,"fields":[500,1000,0,0]}"#,
            "some unrelated line",
            r#"@nix {"action":"stop","id":2}"#,
            r#"@nix {"action":"result","id":1,"type":105,"fields":[1,2,1,0]}"#,
            r#"@nix {"action":"start","fields":["/nix/store/b","local","ssh-ng://h"],"id":3,"level":3,"text":"copying path","type":100}"#,
            r#"@nix {"action":"result","id":3,"type":105,"fields":[1500,2000,0,0]}"#,
        ];
        let mut p = CopyProgress::default();
        for l in lines {
            p.feed(l);
        }
        assert_eq!((p.paths_done, p.paths_expected), (1, 2));
        assert_eq!((p.bytes_done, p.bytes_expected), (2500, 3000));
        p.feed(r#"@nix {"action":"stop","id":3}"#);
        assert_eq!((p.paths_done, p.bytes_done), (2, 3000));
        p.feed(
            r#"@nix {"action":"msg","level":0,"msg":"\u001b[31;1merror:\u001b[0m cannot connect"}"#,
        );
        assert_eq!(p.errors, vec!["error: cannot connect".to_string()]);
    }
}

//! Read-only questions the wiring modules ask about the resolved fleet.

use crate::compile::resolve::ResolvedHost;
use crate::inventory::Inventory;
use std::collections::BTreeMap;

pub struct Fleet<'a> {
    pub inv: &'a Inventory,
    pub hosts: &'a BTreeMap<String, ResolvedHost>,
}

impl Fleet<'_> {
    /// Hosts running `service`, in name order.
    pub fn running(&self, service: &str) -> Vec<&ResolvedHost> {
        self.hosts
            .values()
            .filter(|h| h.services.contains_key(service))
            .collect()
    }

    /// A resolved setting of a service on a host.
    pub fn setting(&self, host: &str, service: &str, key: &str) -> Option<&toml::Value> {
        self.hosts.get(host)?.services.get(service)?.get(key)
    }

    pub fn str_setting(&self, host: &str, service: &str, key: &str) -> String {
        self.setting(host, service, key)
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string()
    }

    pub fn port(&self, host: &str, service: &str, default: i64) -> i64 {
        self.setting(host, service, "port")
            .and_then(|v| v.as_integer())
            .unwrap_or(default)
    }

    /// `http://address:port` of `service` on `server` as seen from `client`: loopback when
    /// both are the same host (its port may be closed to the network), else the address
    /// hearth reaches the server at.
    pub fn url(&self, client: &str, server: &str, service: &str, default_port: i64) -> String {
        let addr = if client == server {
            "127.0.0.1".to_string()
        } else {
            self.inv.hosts[server].file.ssh.address.clone()
        };
        format!(
            "http://{}",
            host_port(&addr, self.port(server, service, default_port))
        )
    }

    /// `address:port` of `service` on `server` (for Prometheus targets).
    pub fn target(&self, server: &str, service: &str, default_port: i64) -> String {
        host_port(
            &self.inv.hosts[server].file.ssh.address,
            self.port(server, service, default_port),
        )
    }

    pub fn source(&self, host: &str) -> &str {
        &self.hosts[host].source
    }
}

/// `host:port` with IPv6 addresses bracketed.
pub fn host_port(addr: &str, port: i64) -> String {
    if addr.contains(':') {
        format!("[{addr}]:{port}")
    } else {
        format!("{addr}:{port}")
    }
}

/// Seconds in a duration such as `30s`, `1h30m`, `90d` (the `duration` value kind).
pub fn duration_seconds(d: &str) -> Option<u64> {
    let mut total = 0u64;
    let mut num = String::new();
    let mut chars = d.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let unit = if c == 'm' && chars.peek() == Some(&'s') {
            chars.next();
            "ms"
        } else {
            match c {
                's' => "s",
                'm' => "m",
                'h' => "h",
                'd' => "d",
                'w' => "w",
                'y' => "y",
                _ => return None,
            }
        };
        let n: u64 = num.parse().ok()?;
        num.clear();
        let mult = match unit {
            "ms" => 0,
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86400,
            "w" => 7 * 86400,
            _ => 365 * 86400,
        };
        total = total.checked_add(n.checked_mul(mult)?)?;
    }
    num.is_empty().then_some(total)
}

/// The longest gap between two runs of a systemd calendar expression, for the named
/// schedules and the common `[weekday] *-*-* HH:MM` forms; None for anything else.
pub fn calendar_period(expr: &str) -> Option<u64> {
    const DAY: u64 = 86400;
    let named = match expr {
        "minutely" => Some(60),
        "hourly" => Some(3600),
        "daily" => Some(DAY),
        "weekly" => Some(7 * DAY),
        "monthly" => Some(31 * DAY),
        "quarterly" => Some(92 * DAY),
        "semiannually" => Some(184 * DAY),
        "yearly" | "annually" => Some(366 * DAY),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    let parts: Vec<&str> = expr.split_whitespace().collect();
    let time = |t: &str| {
        let f: Vec<&str> = t.split(':').collect();
        (2..=3).contains(&f.len())
            && f.iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
    };
    let weekday = |w: &str| {
        w.split(',')
            .all(|d| ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"].contains(&d))
    };
    match parts.as_slice() {
        [t] if time(t) => Some(DAY),
        ["*-*-*", t] if time(t) => Some(DAY),
        [w, t] if weekday(w) && time(t) => Some(7 * DAY),
        [w, "*-*-*", t] if weekday(w) && time(t) => Some(7 * DAY),
        _ => None,
    }
}

/// `seconds` as a Prometheus duration (`2d`, `90m`, `45s`): the largest unit that divides it.
pub fn prometheus_duration(seconds: u64) -> String {
    for (unit, n) in [("w", 7 * 86400), ("d", 86400), ("h", 3600), ("m", 60)] {
        if seconds >= n && seconds % n == 0 {
            return format!("{}{unit}", seconds / n);
        }
    }
    format!("{seconds}s")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_calendars() {
        assert_eq!(duration_seconds("30s"), Some(30));
        assert_eq!(duration_seconds("1h30m"), Some(5400));
        assert_eq!(duration_seconds("2d"), Some(172800));
        assert_eq!(duration_seconds("500ms"), Some(0));
        assert_eq!(duration_seconds("5"), None);
        assert_eq!(calendar_period("daily"), Some(86400));
        assert_eq!(calendar_period("*-*-* 03:00"), Some(86400));
        assert_eq!(calendar_period("Mon,Thu 03:00"), Some(7 * 86400));
        assert_eq!(calendar_period("Sun *-*-* 02:30:00"), Some(7 * 86400));
        assert_eq!(calendar_period("*:0/30"), None);
        assert_eq!(prometheus_duration(2 * 86400), "2d");
        assert_eq!(prometheus_duration(14 * 86400), "2w");
        assert_eq!(prometheus_duration(5400), "90m");
        assert_eq!(prometheus_duration(45), "45s");
    }

    #[test]
    fn ipv6_is_bracketed() {
        assert_eq!(host_port("fd00::1", 3100), "[fd00::1]:3100");
    }
}

//! The deployer's link, measured where the bytes leave: the transmit counter of the network
//! interface the kernel routes each host's address through (`/proc/net/route`,
//! `/proc/net/ipv6_route`, `/sys/class/net/<dev>/statistics/tx_bytes`). Counted after the
//! interface's queue, so it is what the link carried, not what programs wrote into buffers,
//! and it sums every copy at once, so a loaded CPU that slows one copy does not make the
//! link look slow. Linux only; elsewhere there is no meter and fan-out does not judge.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One route: destination prefix, its length, metric, and the interface.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Route {
    dest: IpAddr,
    prefix: u32,
    metric: u32,
    iface: String,
}

const RTF_UP: u32 = 0x1;

/// Routes of `/proc/net/route` (IPv4; addresses are the kernel's raw network-order words
/// printed as native integers, hence `to_ne_bytes`).
fn parse_v4(text: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 8 {
            continue;
        }
        let hex = |s: &str| u32::from_str_radix(s, 16).ok();
        let (Some(dest), Some(flags), Ok(metric), Some(mask)) =
            (hex(f[1]), hex(f[3]), f[6].parse::<u32>(), hex(f[7]))
        else {
            continue;
        };
        if flags & RTF_UP == 0 {
            continue;
        }
        out.push(Route {
            dest: IpAddr::V4(Ipv4Addr::from(dest.to_ne_bytes())),
            prefix: mask.count_ones(),
            metric,
            iface: f[0].to_string(),
        });
    }
    out
}

/// Routes of `/proc/net/ipv6_route`: dest, prefix length, source, its length, next hop,
/// metric, refcount, use, flags, interface.
fn parse_v6(text: &str) -> Vec<Route> {
    let mut out = Vec::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() < 10 || f[0].len() != 32 {
            continue;
        }
        let (Ok(dest), Ok(prefix), Ok(metric), Ok(flags)) = (
            u128::from_str_radix(f[0], 16),
            u32::from_str_radix(f[1], 16),
            u32::from_str_radix(f[5], 16),
            u32::from_str_radix(f[8], 16),
        ) else {
            continue;
        };
        if flags & RTF_UP == 0 {
            continue;
        }
        out.push(Route {
            dest: IpAddr::V6(Ipv6Addr::from(dest)),
            prefix,
            metric,
            iface: f[9].to_string(),
        });
    }
    out
}

fn matches(r: &Route, addr: &IpAddr) -> bool {
    let bits = |a: &IpAddr| -> (u128, u32) {
        match a {
            IpAddr::V4(v) => (u32::from(*v) as u128, 32),
            IpAddr::V6(v) => (u128::from(*v), 128),
        }
    };
    let ((d, width), (a, width_a)) = (bits(&r.dest), bits(addr));
    if width != width_a || r.prefix > width {
        return false;
    }
    let shift = width - r.prefix;
    shift == width || (d >> shift) == (a >> shift)
}

/// The interface the longest matching prefix (then the lowest metric) sends `addr` through.
fn route_iface(routes: &[Route], addr: &IpAddr) -> Option<String> {
    routes
        .iter()
        .filter(|r| matches(r, addr))
        .max_by(|a, b| a.prefix.cmp(&b.prefix).then(b.metric.cmp(&a.metric)))
        .map(|r| r.iface.clone())
}

/// The interface the kernel sends `addr` through (policy routing aside: the main table).
pub fn iface_for(addr: &IpAddr) -> Option<String> {
    let (file, parse): (&str, fn(&str) -> Vec<Route>) = match addr {
        IpAddr::V4(_) => ("/proc/net/route", parse_v4),
        IpAddr::V6(_) => ("/proc/net/ipv6_route", parse_v6),
    };
    let text = std::fs::read_to_string(file).ok()?;
    route_iface(&parse(&text), addr)
}

/// Bytes the interfaces of a deploy have sent, summed.
#[derive(Debug, Clone, Default)]
pub struct Meter {
    pub devices: Vec<String>,
}

impl Meter {
    /// The interfaces towards `addrs` (host names are resolved); None when none is known.
    pub async fn towards(addrs: &[(String, u16)]) -> Option<Meter> {
        let mut devices = std::collections::BTreeSet::new();
        for (host, port) in addrs {
            let ip = match host.parse::<IpAddr>() {
                Ok(ip) => Some(ip),
                Err(_) => tokio::net::lookup_host((host.as_str(), *port))
                    .await
                    .ok()
                    .and_then(|mut a| a.next())
                    .map(|a| a.ip()),
            };
            if let Some(dev) = ip.as_ref().and_then(iface_for) {
                devices.insert(dev);
            }
        }
        let m = Meter {
            devices: devices.into_iter().collect(),
        };
        (!m.devices.is_empty() && m.tx().is_some()).then_some(m)
    }

    pub fn tx(&self) -> Option<u64> {
        let mut sum = 0;
        for d in &self.devices {
            let p = format!("/sys/class/net/{d}/statistics/tx_bytes");
            sum += std::fs::read_to_string(p)
                .ok()?
                .trim()
                .parse::<u64>()
                .ok()?;
        }
        Some(sum)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const V4: &str =
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n\
eth0\t00000000\t010200C0\t0003\t0\t0\t100\t00000000\t0\t0\t0\n\
eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
hlab\t00004E0A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n\
down0\t00054E0A\t00000000\t0000\t0\t0\t0\t00FFFFFF\t0\t0\t0\n";

    #[test]
    fn the_longest_prefix_picks_the_interface() {
        let r = parse_v4(V4);
        assert_eq!(r.len(), 3, "a route that is not up is ignored: {r:?}");
        let at = |s: &str| route_iface(&r, &s.parse().unwrap());
        assert_eq!(at("10.78.5.2").as_deref(), Some("hlab"));
        assert_eq!(at("192.0.2.9").as_deref(), Some("eth0"));
        assert_eq!(at("1.1.1.1").as_deref(), Some("eth0"), "default route");
        assert_eq!(route_iface(&r, &"::1".parse().unwrap()), None);
    }

    #[test]
    fn ipv6_routes_parse() {
        let t = "fd000000000000000000000000000000 08 00000000000000000000000000000000 00 00000000000000000000000000000000 00000100 00000001 00000000 00000001     wg0\n\
00000000000000000000000000000000 00 00000000000000000000000000000000 00 fe800000000000000000000000000001 00000400 00000001 00000000 00000003     eth0\n";
        let r = parse_v6(t);
        assert_eq!(
            route_iface(&r, &"fd12::1".parse().unwrap()).as_deref(),
            Some("wg0")
        );
        assert_eq!(
            route_iface(&r, &"2001:db8::1".parse().unwrap()).as_deref(),
            Some("eth0")
        );
    }
}

//! Diffing two closures of 3,000 store paths each (target: under 100 ms).
//! Run: `cargo bench --bench closure_diff`.

use hearth::update::closure_diff::{ClosurePath, HostDiff};
use std::time::Instant;

/// A synthetic NixOS-like closure: `n` packages with versions, several versions of some
/// names, a system-path with references, and unversioned paths.
fn closure(n: usize, generation: u64) -> (String, Vec<ClosurePath>) {
    let hash = |i: usize, g: u64| {
        format!("{:032x}", (i as u128) * 7919 + g as u128 * 1_000_003)[..32].to_string()
    };
    let mut paths = Vec::with_capacity(n);
    for i in 0..n - 2 {
        // Every 7th package moves to a newer patch version; every 50th is replaced.
        let bump = if i % 7 == 0 { generation } else { 0 };
        let name = match i % 10 {
            0 => format!("unit-svc{i}.service"),
            1 => format!(
                "python3.12-lib{}-{}.{}.{}",
                i / 50 * (generation as usize + 1),
                1 + i % 5,
                i % 13,
                10 + bump
            ),
            _ => format!("pkg{i}-{}.{}.{}", 1 + i % 5, i % 13, 10 + bump),
        };
        paths.push(ClosurePath {
            path: format!(
                "/nix/store/{}-{name}",
                hash(i, if bump > 0 { generation } else { 0 })
            ),
            nar_size: 1000 + (i as u64 % 97) * 1000 + bump * 10,
            references: vec![],
        });
    }
    let sw = format!("/nix/store/{}-system-path", hash(n, generation));
    let refs: Vec<String> = paths.iter().step_by(20).map(|p| p.path.clone()).collect();
    paths.push(ClosurePath {
        path: sw.clone(),
        nar_size: 50_000,
        references: refs,
    });
    let top = format!(
        "/nix/store/{}-nixos-system-box-25.11",
        hash(n + 1, generation)
    );
    paths.push(ClosurePath {
        path: top.clone(),
        nar_size: 10_000,
        references: vec![sw],
    });
    (top, paths)
}

fn main() {
    let (old_top, old) = closure(3000, 0);
    let (new_top, new) = closure(3000, 1);
    assert_eq!((old.len(), new.len()), (3000, 3000));
    // Warm up, then take the best and the median of several runs.
    let d = HostDiff::new(&old, &old_top, &new, &new_top);
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let d = HostDiff::new(&old, &old_top, &new, &new_top);
        std::hint::black_box(&d);
        times.push(t.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "closure_diff: 2 × 3000 paths → {} package changes; median {:.2} ms, best {:.2} ms, worst {:.2} ms (target < 100 ms)",
        d.diff.changes.len(),
        times[times.len() / 2],
        times[0],
        times[times.len() - 1]
    );
    let median = times[times.len() / 2];
    if median >= 100.0 {
        eprintln!("closure_diff: median {median:.2} ms is over the 100 ms target");
        std::process::exit(1);
    }
}

//! Sampling at scale: `clusterclip-v1` and `uniform-v1` streams over many documents, with the
//! wall time, the draw rate and the process's peak resident memory.
//!
//! Run: `cargo run --release --example sample_scale -- [DOCUMENTS] [CLUSTERS] [DRAWS] [CLIP]`
//! (defaults 10,000,000 documents, 100,000 clusters, 100,000,000 draws, C = 20).
//! Cluster labels come from a seeded SplitMix64 stream, so cluster sizes vary as in real data.

use std::time::Instant;

use clipaudit::sample::{clusterclip_v1, uniform_v1, ClipParams, ExhaustionPolicy};

/// Returns the process's peak resident set size in MiB, from /proc/self/status (Linux).
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

fn main() {
    let args: Vec<u64> = std::env::args().skip(1).map(|a| a.replace('_', "").parse().expect("numbers")).collect();
    let documents = *args.first().unwrap_or(&10_000_000) as usize;
    let clusters = *args.get(1).unwrap_or(&100_000);
    let draws = *args.get(2).unwrap_or(&100_000_000);
    let clip = *args.get(3).unwrap_or(&20) as u32;

    // SplitMix64 labels, squared to skew the cluster sizes.
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let labels: Vec<u32> = (0..documents)
        .map(|_| {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^= z >> 31;
            let u = (z >> 11) as f64 / (1u64 << 53) as f64;
            ((u * u) * clusters as f64) as u32
        })
        .collect();
    println!("documents {documents}, clusters {clusters}, draws {draws}, clip {clip}");
    println!("after labels: peak RSS {:.0} MiB", peak_rss_mib().unwrap_or(f64::NAN));

    let start = Instant::now();
    let stream = clusterclip_v1(&labels, &ClipParams { clip, draws, seed: 7, policy: ExhaustionPolicy::Stop }).expect("valid parameters");
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "clusterclip-v1: {} draws in {seconds:.2} s, {:.1} M draws/s, largest count {}, peak RSS {:.0} MiB",
        stream.draws(),
        stream.draws() as f64 / seconds / 1e6,
        stream.max_count(),
        peak_rss_mib().unwrap_or(f64::NAN)
    );
    drop(stream);

    let start = Instant::now();
    let stream = uniform_v1(documents, draws, 7).expect("valid parameters");
    let seconds = start.elapsed().as_secs_f64();
    println!(
        "uniform-v1: {} draws in {seconds:.2} s, {:.1} M draws/s, peak RSS {:.0} MiB",
        stream.draws(),
        stream.draws() as f64 / seconds / 1e6,
        peak_rss_mib().unwrap_or(f64::NAN)
    );
}

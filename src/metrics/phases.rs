//! Mixtures over training: a sampled stream split into phases, with each phase's group or
//! cluster shares measured against the reference, so a schedule that rebalances as training
//! goes on can be audited phase by phase.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::metrics::representation::{js_divergence, kl_divergence, serialize_extended};

/// One phase of the stream: draws `start..end`.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub start: u64,
    pub end: u64,
    /// Draws per group in this phase.
    pub counts: Vec<u64>,
    pub shares: Vec<f64>,
    /// The target shares of this phase: the attribute's reference, or a declared per-phase target.
    pub reference: Vec<f64>,
    #[serde(serialize_with = "serialize_extended")]
    pub kl_divergence: f64,
    pub js_distance: f64,
}

/// The per-phase mixture of one attribute (or of clusters).
#[derive(Debug, Clone, Serialize)]
pub struct PhaseMixture {
    pub attribute: String,
    pub groups: Vec<String>,
    /// True when the config declares a target mixture per phase.
    pub phase_targets: bool,
    pub phases: Vec<Phase>,
}

/// Start steps of the phases: `boundaries` when given (must start at 0 and increase), else
/// `count` phases of equal length (the last one takes the remainder).
pub fn plan(draws: u64, count: usize, boundaries: Option<&[u64]>) -> Result<Vec<u64>> {
    if let Some(b) = boundaries {
        if b.first() != Some(&0) {
            return Err(Error::input_hint(
                "sampling.phase_starts must begin with 0",
                "list the first step of every phase, e.g. phase_starts = [0, 1000, 3000]",
            ));
        }
        if let Some(w) = b.windows(2).find(|w| w[1] <= w[0]) {
            return Err(Error::input(format!("sampling.phase_starts: {} does not come after {}; steps must increase", w[1], w[0])));
        }
        return Ok(b.iter().copied().filter(|&s| s < draws.max(1)).collect());
    }
    if count == 0 {
        return Err(Error::input("sampling.phases must be at least 1"));
    }
    let length = (draws / count as u64).max(1);
    Ok((0..count as u64).map(|i| i * length).filter(|&s| s < draws.max(1)).collect())
}

/// Measures the mixture of `codes` (group of each document) over the phases of `stream`, each
/// against `references[phase]`, or against `references[0]` when only one is given.
pub fn measure(attribute: &str, groups: &[String], codes: &[u32], stream: &[u32], starts: &[u64], references: &[Vec<f64>]) -> PhaseMixture {
    let total = stream.len() as u64;
    let phases = starts
        .iter()
        .enumerate()
        .map(|(i, &start)| {
            let end = starts.get(i + 1).copied().unwrap_or(total).min(total);
            let mut counts = vec![0u64; groups.len()];
            for &d in &stream[start as usize..end as usize] {
                counts[codes[d as usize] as usize] += 1;
            }
            let n: u64 = counts.iter().sum();
            let shares: Vec<f64> = counts.iter().map(|&c| if n == 0 { 0.0 } else { c as f64 / n as f64 }).collect();
            let reference = references.get(i).unwrap_or(&references[0]).clone();
            Phase {
                start,
                end,
                kl_divergence: kl_divergence(&shares, &reference),
                js_distance: js_divergence(&shares, &reference).max(0.0).sqrt(),
                counts,
                shares,
                reference,
            }
        })
        .collect();
    PhaseMixture { attribute: attribute.to_string(), groups: groups.to_vec(), phase_targets: references.len() > 1, phases }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_equal_and_explicit() {
        assert_eq!(plan(100, 4, None).unwrap(), vec![0, 25, 50, 75]);
        assert_eq!(plan(10, 4, None).unwrap(), vec![0, 2, 4, 6]);
        assert_eq!(plan(100, 4, Some(&[0, 10, 90])).unwrap(), vec![0, 10, 90]);
        assert!(plan(100, 4, Some(&[5, 10])).unwrap_err().to_string().contains("begin with 0"));
        assert!(plan(100, 4, Some(&[0, 10, 10])).unwrap_err().to_string().contains("does not come after"));
    }

    #[test]
    fn phase_shares_by_hand() {
        // Documents 0, 1 in group a, 2 in group b; the stream draws a, a, then b, b.
        let groups = vec!["a".to_string(), "b".to_string()];
        let m = measure("g", &groups, &[0, 0, 1], &[0, 1, 2, 2], &[0, 2], &[vec![0.5, 0.5]]);
        assert_eq!(m.phases[0].counts, vec![2, 0]);
        assert_eq!(m.phases[1].counts, vec![0, 2]);
        assert_eq!(m.phases[1].end, 4);
        // P = (1, 0) against R = (½, ½): KL = ln 2. With M = (¾, ¼), KL(P ‖ M) = ln(4/3) and
        // KL(R ‖ M) = ½ ln(2/3) + ½ ln 2, and the JS distance is the root of their mean.
        assert!((m.phases[0].kl_divergence - 2f64.ln()).abs() < 1e-12);
        let kl_pm = (4.0f64 / 3.0).ln();
        let kl_rm = 0.5 * (2.0f64 / 3.0).ln() + 0.5 * 2f64.ln();
        let expected_js = (0.5 * kl_pm + 0.5 * kl_rm).sqrt();
        assert!((m.phases[0].js_distance - expected_js).abs() < 1e-12, "{}", m.phases[0].js_distance);
    }

    #[test]
    fn per_phase_targets_apply_in_order() {
        // A schedule that moves from group a to group b meets its per-phase targets exactly.
        let groups = vec!["a".to_string(), "b".to_string()];
        let targets = vec![vec![1.0, 0.0], vec![0.0, 1.0]];
        let m = measure("g", &groups, &[0, 0, 1], &[0, 1, 2, 2], &[0, 2], &targets);
        assert!(m.phase_targets);
        assert_eq!(m.phases[1].reference, vec![0.0, 1.0]);
        assert_eq!(m.phases[0].kl_divergence, 0.0);
        assert_eq!(m.phases[1].js_distance, 0.0);
    }
}

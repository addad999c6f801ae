//! Representation of groups and clusters in the raw corpus, the curated stream and the random
//! baseline, measured against a declared reference distribution.
//!
//! Conventions, stated once here and repeated in `metrics.json` and the report:
//! - logarithms are natural (nats);
//! - KL divergence is KL(P ‖ R) of the population P from the reference R; it is infinite when P
//!   gives weight to a group that R gives none, and that is reported, never smoothed;
//! - the Jensen–Shannon figure is the distance, the square root of the divergence
//!   JSD(P, R) = ½ KL(P ‖ M) + ½ KL(R ‖ M) with M = ½ (P + R), so it lies in [0, √ln 2];
//! - total variation is ½ Σ |pᵢ − rᵢ|;
//! - normalised entropy is H(P) / ln K with K the number of groups in the reference support,
//!   1 for K = 1;
//! - Gini–Simpson is 1 − Σ pᵢ²;
//! - a group whose count is under the minimum cell count, or whose share is under the minimum
//!   share, is indeterminate rather than passed or failed.

use std::collections::BTreeMap;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Serialize, Serializer};

use crate::config::{GroupSpec, Reference};
use crate::error::{Error, Result};

/// The three populations compared throughout the report.
pub const POPULATIONS: [&str; 3] = ["raw", "curated", "baseline"];

/// Writes infinities as the strings "inf" / "-inf" and NaN as null, since JSON has no such numbers.
pub fn serialize_extended<S: Serializer>(value: &f64, serializer: S) -> std::result::Result<S::Ok, S::Error> {
    if value.is_nan() {
        serializer.serialize_none()
    } else if value.is_infinite() {
        serializer.serialize_str(if *value > 0.0 { "inf" } else { "-inf" })
    } else {
        serializer.serialize_f64(*value)
    }
}

/// One group's figures in one population.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    pub count: u64,
    pub share: f64,
    /// share / reference share; infinite when the reference share is 0 and the share is not.
    #[serde(serialize_with = "serialize_extended")]
    pub representation_ratio: f64,
    /// `ok`, or `indeterminate` when under the minimum count or minimum share.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// One group across the three populations.
#[derive(Debug, Clone, Serialize)]
pub struct GroupRow {
    pub group: String,
    pub reference_share: f64,
    pub raw: Cell,
    pub curated: Cell,
    pub baseline: Cell,
}

/// Divergence and diversity figures of one population against the reference.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Summary {
    pub total: u64,
    #[serde(serialize_with = "serialize_extended")]
    pub kl_divergence: f64,
    pub js_distance: f64,
    pub total_variation: f64,
    pub normalized_entropy: f64,
    pub gini_simpson: f64,
    pub min_share: f64,
    /// Pearson's chi-square goodness of fit of the counts to the reference; infinite when a group
    /// with reference share 0 has a positive count.
    #[serde(serialize_with = "serialize_extended")]
    pub chi_square: f64,
    /// Degrees of freedom: groups with a positive reference share, minus one.
    pub chi_square_df: u64,
    /// Upper-tail probability of `chi_square` under the χ² distribution with `chi_square_df`
    /// degrees of freedom: 0 when `chi_square` is infinite, NaN (null) with no degree of freedom.
    #[serde(serialize_with = "serialize_extended")]
    pub chi_square_p: f64,
    /// Theil T of the representation ratios ρᵢ = pᵢ / rᵢ weighted by the reference:
    /// Σ rᵢ ρᵢ ln ρᵢ, which equals KL(P ‖ R).
    #[serde(serialize_with = "serialize_extended")]
    pub theil_t: f64,
    /// Theil L (mean log deviation) of the same ratios: Σ rᵢ ln(1 / ρᵢ), which equals KL(R ‖ P);
    /// infinite when a group with a positive reference share is absent.
    #[serde(serialize_with = "serialize_extended")]
    pub theil_l: f64,
}

impl Summary {
    /// Returns the measures that bias deltas are reported for, by name.
    pub fn measures(&self) -> [(&'static str, f64); 6] {
        [
            ("kl_divergence", self.kl_divergence),
            ("js_distance", self.js_distance),
            ("total_variation", self.total_variation),
            ("normalized_entropy", self.normalized_entropy),
            ("gini_simpson", self.gini_simpson),
            ("min_share", self.min_share),
        ]
    }
}

/// A measure's change towards the curated stream, with a bootstrap interval on the change.
#[derive(Debug, Clone, Serialize)]
pub struct Delta {
    pub measure: &'static str,
    /// `raw` or `baseline`: the population the curated stream is compared with.
    pub from: &'static str,
    #[serde(serialize_with = "serialize_extended")]
    pub from_value: f64,
    #[serde(serialize_with = "serialize_extended")]
    pub curated_value: f64,
    /// curated − from.
    #[serde(serialize_with = "serialize_extended")]
    pub absolute: f64,
    /// (curated − from) / |from|; NaN (null) when `from` is 0.
    #[serde(serialize_with = "serialize_extended")]
    pub relative: f64,
    #[serde(serialize_with = "serialize_extended")]
    pub ci_low: f64,
    #[serde(serialize_with = "serialize_extended")]
    pub ci_high: f64,
}

/// Representation of one attribute (or of clusters).
#[derive(Debug, Clone, Serialize)]
pub struct Representation {
    pub attribute: String,
    pub reference: Reference,
    pub min_share: f64,
    pub min_count: u64,
    pub special_category: bool,
    pub groups: Vec<GroupRow>,
    pub summary: BTreeMap<&'static str, Summary>,
    pub deltas: Vec<Delta>,
    pub bootstrap_resamples: usize,
}

/// Counts the values of `labels`, in first-seen order of the sorted set.
fn count(labels: impl Iterator<Item = u32>, groups: usize) -> Vec<u64> {
    let mut counts = vec![0u64; groups];
    for label in labels {
        counts[label as usize] += 1;
    }
    counts
}

/// Returns the reference shares for `names`, in the same order.
pub(crate) fn reference_shares(spec: &GroupSpec, names: &[String], raw_counts: &[u64]) -> Result<Vec<f64>> {
    match &spec.reference {
        Reference::Uniform => Ok(vec![1.0 / names.len() as f64; names.len()]),
        Reference::Corpus => {
            let total: u64 = raw_counts.iter().sum();
            Ok(raw_counts.iter().map(|&c| c as f64 / total as f64).collect())
        }
        Reference::Shares(shares) => {
            for name in names {
                if !shares.contains_key(name) {
                    return Err(Error::input_hint(
                        format!("groups.{}.reference: the corpus has group `{name}`, which the reference does not list", spec.attribute),
                        format!("add `{name}` to the declared shares (with 0 if it should not occur), or fix the data"),
                    ));
                }
            }
            Ok(names.iter().map(|n| shares[n]).collect())
        }
    }
}

/// Measures population `counts` against reference shares `reference`.
pub fn summarize(counts: &[u64], reference: &[f64]) -> Summary {
    let total: u64 = counts.iter().sum();
    let p: Vec<f64> = counts.iter().map(|&c| if total == 0 { 0.0 } else { c as f64 / total as f64 }).collect();
    let support = reference.iter().filter(|&&r| r > 0.0).count();
    let entropy: f64 = -p.iter().filter(|&&x| x > 0.0).map(|&x| x * x.ln()).sum::<f64>();
    let (chi_square, df) = pearson_chi_square(counts, reference);
    Summary {
        total,
        kl_divergence: kl_divergence(&p, reference),
        js_distance: js_divergence(&p, reference).max(0.0).sqrt(),
        total_variation: 0.5 * p.iter().zip(reference).map(|(a, b)| (a - b).abs()).sum::<f64>(),
        normalized_entropy: if support <= 1 { 1.0 } else { entropy / (support as f64).ln() },
        gini_simpson: 1.0 - p.iter().map(|x| x * x).sum::<f64>(),
        min_share: p
            .iter()
            .zip(reference)
            .filter(|(_, &r)| r > 0.0)
            .map(|(&x, _)| x)
            .fold(f64::INFINITY, f64::min)
            .min(1.0),
        chi_square,
        chi_square_df: df,
        chi_square_p: match (chi_square.is_infinite(), df) {
            (true, _) => 0.0,
            (false, 0) => f64::NAN,
            (false, df) => chi_square_survival(chi_square, df as f64),
        },
        theil_t: kl_divergence(&p, reference),
        theil_l: kl_divergence(reference, &p),
    }
}

/// Pearson's χ² statistic of `counts` against `reference` shares, with its degrees of freedom.
fn pearson_chi_square(counts: &[u64], reference: &[f64]) -> (f64, u64) {
    let total: u64 = counts.iter().sum();
    let mut statistic = 0.0;
    for (&observed, &share) in counts.iter().zip(reference) {
        let expected = share * total as f64;
        if expected > 0.0 {
            statistic += (observed as f64 - expected).powi(2) / expected;
        } else if observed > 0 {
            statistic = f64::INFINITY;
        }
    }
    let df = reference.iter().filter(|&&r| r > 0.0).count().saturating_sub(1) as u64;
    (statistic, df)
}

/// P(X ≥ x) for X ~ χ²(k): the regularised upper incomplete gamma function Q(k/2, x/2).
pub fn chi_square_survival(x: f64, k: f64) -> f64 {
    if x.is_infinite() {
        return 0.0;
    }
    if x <= 0.0 {
        return 1.0;
    }
    upper_regularized_gamma(0.5 * k, 0.5 * x)
}

/// Q(a, x) = Γ(a, x) / Γ(a), by the power series of P(a, x) for x < a + 1 and by Lentz's
/// continued fraction otherwise (both as in Press et al., Numerical Recipes, 3rd ed., 6.2),
/// to a relative precision of about 1e-15.
fn upper_regularized_gamma(a: f64, x: f64) -> f64 {
    let log_prefactor = a * x.ln() - x - ln_gamma(a);
    if x < a + 1.0 {
        // P(a, x) = e^{-x} x^a / Γ(a) · Σ xⁿ / (a (a+1) … (a+n)).
        let (mut term, mut sum, mut denominator) = (1.0 / a, 1.0 / a, a);
        for _ in 0..10_000 {
            denominator += 1.0;
            term *= x / denominator;
            sum += term;
            if term.abs() < sum.abs() * 1e-16 {
                break;
            }
        }
        return (1.0 - sum * log_prefactor.exp()).max(0.0);
    }
    // Q(a, x) = e^{-x} x^a / Γ(a) · 1 / (x + 1 − a − 1·(1−a) / (x + 3 − a − 2·(2−a) / (x + 5 − a − …))).
    let tiny = 1e-300;
    let mut b = x + 1.0 - a;
    let mut c = 1.0 / tiny;
    let mut d = 1.0 / b;
    let mut h = d;
    for i in 1..10_000 {
        let an = -(i as f64) * (i as f64 - a);
        b += 2.0;
        d = an * d + b;
        if d.abs() < tiny {
            d = tiny;
        }
        c = b + an / c;
        if c.abs() < tiny {
            c = tiny;
        }
        d = 1.0 / d;
        let step = d * c;
        h *= step;
        if (step - 1.0).abs() < 1e-16 {
            break;
        }
    }
    (log_prefactor.exp() * h).clamp(0.0, 1.0)
}

/// ln Γ(z) for z > 0 by the Lanczos approximation (g = 7, 9 coefficients), accurate to about
/// 1e-15 relative.
fn ln_gamma(z: f64) -> f64 {
    const G: f64 = 7.0;
    const COEFFICIENTS: [f64; 9] = [
        0.999_999_999_999_809_9,
        676.520_368_121_885_1,
        -1_259.139_216_722_402_8,
        771.323_428_777_653_1,
        -176.615_029_162_140_6,
        12.507_343_278_686_905,
        -0.138_571_095_265_720_12,
        9.984_369_578_019_572e-6,
        1.505_632_735_149_311_6e-7,
    ];
    if z < 0.5 {
        // Reflection: Γ(z) Γ(1 − z) = π / sin(πz).
        return (std::f64::consts::PI / (std::f64::consts::PI * z).sin()).ln() - ln_gamma(1.0 - z);
    }
    let z = z - 1.0;
    let mut sum = COEFFICIENTS[0];
    for (i, &c) in COEFFICIENTS.iter().enumerate().skip(1) {
        sum += c / (z + i as f64);
    }
    let t = z + G + 0.5;
    0.5 * (2.0 * std::f64::consts::PI).ln() + (z + 0.5) * t.ln() - t + sum.ln()
}

/// KL(p ‖ q) in nats: terms with pᵢ = 0 contribute 0, and pᵢ > 0 with qᵢ = 0 makes it infinite.
pub fn kl_divergence(p: &[f64], q: &[f64]) -> f64 {
    let mut total = 0.0;
    for (&a, &b) in p.iter().zip(q) {
        if a > 0.0 {
            if b == 0.0 {
                return f64::INFINITY;
            }
            total += a * (a / b).ln();
        }
    }
    total
}

/// Jensen–Shannon divergence in nats (finite for any two distributions).
pub fn js_divergence(p: &[f64], q: &[f64]) -> f64 {
    let m: Vec<f64> = p.iter().zip(q).map(|(a, b)| 0.5 * (a + b)).collect();
    0.5 * kl_divergence(p, &m) + 0.5 * kl_divergence(q, &m)
}

/// The inputs of one attribute's representation: group names and each population's labels.
pub struct Populations<'a> {
    pub names: &'a [String],
    /// Group index of each corpus document.
    pub raw: &'a [u32],
    /// Document indices of the curated stream.
    pub curated: &'a [u32],
    /// Document indices of the baseline stream.
    pub baseline: &'a [u32],
}

/// Measures one attribute over the three populations, with bias deltas and bootstrap intervals.
///
/// The interval on each delta is the percentile interval (2.5 %, 97.5 %) of `resamples` bootstrap
/// replicates. Each replicate redraws, with replacement, the raw corpus, the curated stream and the
/// baseline stream at their own sizes. The resampling generator is ChaCha20 keyed by
/// SHA-256(seed little-endian ‖ "bootstrap:" ‖ attribute).
pub fn measure(spec: &GroupSpec, pops: &Populations, resamples: usize, seed: u64) -> Result<Representation> {
    let k = pops.names.len();
    let raw_counts = count(pops.raw.iter().copied(), k);
    let curated_counts = count(pops.curated.iter().map(|&i| pops.raw[i as usize]), k);
    let baseline_counts = count(pops.baseline.iter().map(|&i| pops.raw[i as usize]), k);
    let reference = reference_shares(spec, pops.names, &raw_counts)?;

    let cell = |counts: &[u64], g: usize| -> Cell {
        let total: u64 = counts.iter().sum();
        let share = if total == 0 { 0.0 } else { counts[g] as f64 / total as f64 };
        let ratio = if reference[g] > 0.0 {
            share / reference[g]
        } else if share > 0.0 {
            f64::INFINITY
        } else {
            f64::NAN
        };
        let reason = if counts[g] < spec.min_count {
            Some(format!("count {} is under the minimum cell count {}", counts[g], spec.min_count))
        } else if share < spec.min_share {
            Some(format!("share {:.4} is under the minimum share {}", share, spec.min_share))
        } else {
            None
        };
        Cell {
            count: counts[g],
            share,
            representation_ratio: ratio,
            status: if reason.is_some() { "indeterminate" } else { "ok" },
            reason,
        }
    };
    let groups = (0..k)
        .map(|g| GroupRow {
            group: pops.names[g].clone(),
            reference_share: reference[g],
            raw: cell(&raw_counts, g),
            curated: cell(&curated_counts, g),
            baseline: cell(&baseline_counts, g),
        })
        .collect();

    let summaries = [
        summarize(&raw_counts, &reference),
        summarize(&curated_counts, &reference),
        summarize(&baseline_counts, &reference),
    ];
    let summary = POPULATIONS.iter().copied().zip(summaries).collect();

    // Bootstrap: replicate the three populations and keep each delta's replicates.
    let key = crate::cluster::derive_key(seed, format!("bootstrap:{}", spec.attribute).as_bytes());
    let mut rng = ChaCha20Rng::from_seed(key);
    let mut draw = |labels: &mut dyn FnMut(usize) -> u32, size: usize| -> Vec<u64> {
        let mut counts = vec![0u64; k];
        for _ in 0..size {
            counts[labels(bounded(&mut rng, size as u64) as usize) as usize] += 1;
        }
        counts
    };
    let measures = summaries[0].measures().len();
    let mut replicates = vec![Vec::with_capacity(resamples); 2 * measures];
    for _ in 0..resamples {
        let raw = draw(&mut |i| pops.raw[i], pops.raw.len());
        let curated = draw(&mut |i| pops.raw[pops.curated[i] as usize], pops.curated.len());
        let baseline = draw(&mut |i| pops.raw[pops.baseline[i] as usize], pops.baseline.len());
        let (r, c, b) = (summarize(&raw, &reference), summarize(&curated, &reference), summarize(&baseline, &reference));
        for (m, ((_, cv), ((_, rv), (_, bv)))) in c.measures().iter().zip(r.measures().iter().zip(b.measures().iter())).enumerate() {
            replicates[m].push(cv - rv);
            replicates[measures + m].push(cv - bv);
        }
    }

    let mut deltas = Vec::new();
    for (side, (from, from_summary)) in [("raw", &summaries[0]), ("baseline", &summaries[2])].into_iter().enumerate() {
        for (m, ((measure, from_value), (_, curated_value))) in
            from_summary.measures().into_iter().zip(summaries[1].measures()).enumerate()
        {
            let absolute = curated_value - from_value;
            let (ci_low, ci_high) = percentile_interval(&mut replicates[side * measures + m]);
            deltas.push(Delta {
                measure,
                from,
                from_value,
                curated_value,
                absolute,
                relative: if from_value == 0.0 { f64::NAN } else { absolute / from_value.abs() },
                ci_low,
                ci_high,
            });
        }
    }

    Ok(Representation {
        attribute: spec.attribute.clone(),
        reference: spec.reference.clone(),
        min_share: spec.min_share,
        min_count: spec.min_count,
        special_category: spec.special_category,
        groups,
        summary,
        deltas,
        bootstrap_resamples: resamples,
    })
}

/// Returns the 2.5 % and 97.5 % percentiles, interpolating linearly between order statistics,
/// or NaN when there are no finite replicates.
fn percentile_interval(values: &mut [f64]) -> (f64, f64) {
    let mut finite: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    finite.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let pos = q * (finite.len() - 1) as f64;
        let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
        finite[lo] + (finite[hi] - finite[lo]) * (pos - lo as f64)
    };
    (at(0.025), at(0.975))
}

/// Uniform integer in [0, n) by Lemire's nearly-divisionless method.
fn bounded(rng: &mut ChaCha20Rng, n: u64) -> u64 {
    let mut m = u128::from(rng.next_u64()) * u128::from(n);
    if (m as u64) < n {
        let t = n.wrapping_neg() % n;
        while (m as u64) < t {
            m = u128::from(rng.next_u64()) * u128::from(n);
        }
    }
    (m >> 64) as u64
}

/// Maps each document's value of an attribute to a group index; group names sorted.
pub fn encode(values: &[String]) -> (Vec<String>, Vec<u32>) {
    let names: Vec<String> = values.iter().cloned().collect::<std::collections::BTreeSet<_>>().into_iter().collect();
    let index: BTreeMap<&str, u32> = names.iter().enumerate().map(|(i, n)| (n.as_str(), i as u32)).collect();
    let codes = values.iter().map(|v| index[v.as_str()]).collect();
    (names, codes)
}

/// Counts of group × cluster over the raw corpus: `table[g][c]`.
pub fn contingency(groups: &[u32], group_count: usize, clusters: &[u32], cluster_count: usize) -> Vec<Vec<u64>> {
    let mut table = vec![vec![0u64; cluster_count]; group_count];
    for (&g, &c) in groups.iter().zip(clusters) {
        table[g as usize][c as usize] += 1;
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-12
    }

    #[test]
    fn kl_known_values() {
        // KL([½, ½] ‖ [¼, ¾]) = ½ ln 2 + ½ ln(2/3).
        let expected = 0.5 * 2f64.ln() + 0.5 * (2.0f64 / 3.0).ln();
        assert!(close(kl_divergence(&[0.5, 0.5], &[0.25, 0.75]), expected));
        assert_eq!(kl_divergence(&[0.5, 0.5], &[1.0, 0.0]), f64::INFINITY);
        assert_eq!(kl_divergence(&[1.0, 0.0], &[0.5, 0.5]), 2f64.ln());
    }

    #[test]
    fn js_distance_bounds() {
        // Disjoint supports reach the maximum divergence ln 2.
        assert!(close(js_divergence(&[1.0, 0.0], &[0.0, 1.0]), 2f64.ln()));
        assert!(close(js_divergence(&[0.3, 0.7], &[0.3, 0.7]), 0.0));
    }

    #[test]
    fn summary_by_hand() {
        // Counts 30 / 10 against a uniform reference over two groups.
        let s = summarize(&[30, 10], &[0.5, 0.5]);
        assert!(close(s.total_variation, 0.25));
        assert!(close(s.gini_simpson, 1.0 - (0.75f64 * 0.75 + 0.25 * 0.25)));
        assert!(close(s.min_share, 0.25));
        let h = -(0.75f64 * 0.75f64.ln() + 0.25 * 0.25f64.ln());
        assert!(close(s.normalized_entropy, h / 2f64.ln()));
    }

    #[test]
    fn chi_square_survival_known_values() {
        // With 2 degrees of freedom the survival function is exactly e^{-x/2}.
        for x in [0.5, 3.0, 10.0, 40.0] {
            assert!((chi_square_survival(x, 2.0) - (-x / 2.0f64).exp()).abs() < 1e-14, "x = {x}");
        }
        // The 95 % critical values of χ²(1) and χ²(4), from standard tables (e.g. NIST/SEMATECH
        // e-Handbook of Statistical Methods, 1.3.6.7.4): 3.841459 and 9.487729.
        assert!((chi_square_survival(3.841_458_820_694_124, 1.0) - 0.05).abs() < 1e-12);
        assert!((chi_square_survival(9.487_729_036_781_154, 4.0) - 0.05).abs() < 1e-12);
        // The 1 % critical value of χ²(30): 50.892181.
        assert!((chi_square_survival(50.892_181_229_448_3, 30.0) - 0.01).abs() < 1e-9);
        assert_eq!(chi_square_survival(f64::INFINITY, 3.0), 0.0);
        assert_eq!(chi_square_survival(0.0, 3.0), 1.0);
    }

    #[test]
    fn chi_square_and_theil_by_hand() {
        // Counts 30 / 10 against ½ / ½: expected 20 each, χ² = (100 + 100) / 20 = 10 with 1 df.
        let s = summarize(&[30, 10], &[0.5, 0.5]);
        assert!(close(s.chi_square, 10.0));
        assert_eq!(s.chi_square_df, 1);
        assert!(close(s.theil_t, s.kl_divergence));
        assert!(close(s.theil_l, kl_divergence(&[0.5, 0.5], &[0.75, 0.25])));
        // A group the reference excludes makes χ² infinite and its p-value 0.
        let s = summarize(&[5, 5], &[1.0, 0.0]);
        assert_eq!(s.chi_square, f64::INFINITY);
        assert_eq!(s.chi_square_p, 0.0);
    }

    #[test]
    fn measure_marks_small_groups_indeterminate() {
        let spec = GroupSpec {
            attribute: "language".into(),
            reference: Reference::Uniform,
            min_share: 0.007,
            min_count: 20,
            special_category: false,
            privileged: None,
            phase_targets: None,
        };
        let names = vec!["de".to_string(), "nl".to_string()];
        let raw: Vec<u32> = (0..110).map(|i| u32::from(i >= 100)).collect();
        let curated: Vec<u32> = (0..110).collect();
        let r = measure(&spec, &Populations { names: &names, raw: &raw, curated: &curated, baseline: &curated }, 50, 1).unwrap();
        assert_eq!(r.groups[0].raw.status, "ok");
        assert_eq!(r.groups[1].raw.status, "indeterminate");
        assert!(close(r.groups[0].raw.representation_ratio, (100.0 / 110.0) / 0.5));
        assert_eq!(r.deltas.len(), 12);
    }

    #[test]
    fn explicit_reference_must_list_every_group() {
        let spec = GroupSpec {
            attribute: "language".into(),
            reference: Reference::Shares([("de".to_string(), 1.0)].into_iter().collect()),
            min_share: 0.0,
            min_count: 0,
            special_category: false,
            privileged: None,
            phase_targets: None,
        };
        let names = vec!["de".to_string(), "nl".to_string()];
        let raw = vec![0, 1];
        let error = measure(&spec, &Populations { names: &names, raw: &raw, curated: &raw, baseline: &raw }, 0, 1).unwrap_err();
        assert!(error.to_string().contains("group `nl`"), "{error}");
    }

    #[test]
    fn bootstrap_is_seeded() {
        let spec = GroupSpec { attribute: "a".into(), reference: Reference::Uniform, min_share: 0.0, min_count: 0, special_category: false, privileged: None, phase_targets: None };
        let names = vec!["x".to_string(), "y".to_string(), "z".to_string()];
        let raw: Vec<u32> = (0..60).map(|i| (i % 3) as u32).collect();
        let curated: Vec<u32> = (0..60).rev().collect();
        let pops = Populations { names: &names, raw: &raw, curated: &curated, baseline: &curated };
        let a = measure(&spec, &pops, 100, 9).unwrap();
        let b = measure(&spec, &pops, 100, 9).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }
}

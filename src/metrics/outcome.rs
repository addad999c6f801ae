//! Outcome-label parity per group: base rates, statistical parity difference and disparate
//! impact, in the raw corpus, the curated stream and the random baseline.
//!
//! Conventions, repeated in `metrics.json` and the report:
//! - the base rate of a group is the share of its documents (draws, in a stream) whose outcome
//!   is the favourable value;
//! - statistical parity difference = base rate of the group − base rate of the privileged group;
//! - disparate impact = base rate of the group / base rate of the privileged group, undefined
//!   when the privileged base rate is 0;
//! - the four-fifths rule (US EEOC Uniform Guidelines, 29 CFR 1607.4(D)) flags a disparate
//!   impact under 0.8;
//! - a group, or a privileged group, under the minimum cell count is indeterminate.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::GroupSpec;
use crate::error::{Error, Result};
use crate::metrics::representation::{serialize_extended, POPULATIONS};

/// The disparate-impact ratio under which the four-fifths rule flags adverse impact.
pub const FOUR_FIFTHS: f64 = 0.8;

/// One group's outcome figures in one population.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeCell {
    pub count: u64,
    pub positives: u64,
    #[serde(serialize_with = "serialize_extended")]
    pub base_rate: f64,
    #[serde(serialize_with = "serialize_extended")]
    pub statistical_parity_difference: f64,
    #[serde(serialize_with = "serialize_extended")]
    pub disparate_impact: f64,
    /// True when the disparate impact is under 0.8; absent when it is undefined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub four_fifths_flag: Option<bool>,
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct OutcomeGroup {
    pub group: String,
    pub privileged: bool,
    pub raw: OutcomeCell,
    pub curated: OutcomeCell,
    pub baseline: OutcomeCell,
}

/// The balance of the outcome classes in one population.
#[derive(Debug, Clone, Serialize)]
pub struct ClassBalance {
    pub total: u64,
    pub positives: u64,
    #[serde(serialize_with = "serialize_extended")]
    pub positive_share: f64,
    /// Minority class count / majority class count: 1 for balanced classes.
    #[serde(serialize_with = "serialize_extended")]
    pub imbalance_ratio: f64,
}

/// Outcome parity of one attribute.
#[derive(Debug, Clone, Serialize)]
pub struct OutcomeParity {
    pub attribute: String,
    pub positive: String,
    pub privileged: String,
    /// `declared`, or `largest raw group` when the config names none.
    pub privileged_source: &'static str,
    pub min_count: u64,
    pub groups: Vec<OutcomeGroup>,
    pub class_balance: BTreeMap<&'static str, ClassBalance>,
}

/// Encodes outcome labels as favourable or not; the labels must be binary and contain `positive`.
pub fn encode_outcomes(values: &[String], positive: &str, column: &str) -> Result<Vec<bool>> {
    let distinct: std::collections::BTreeSet<&str> = values.iter().map(String::as_str).collect();
    if !distinct.contains(positive) {
        return Err(Error::input_hint(
            format!("dataset.outcome_positive: `{positive}` never occurs in column `{column}`"),
            format!("values in the column: {}", distinct.iter().copied().collect::<Vec<_>>().join(", ")),
        ));
    }
    if distinct.len() > 2 {
        return Err(Error::input_hint(
            format!("column `{column}` has {} distinct values, but an outcome must be binary", distinct.len()),
            format!("values: {}; map them to two values first", distinct.iter().copied().collect::<Vec<_>>().join(", ")),
        ));
    }
    Ok(values.iter().map(|v| v == positive).collect())
}

/// Measures outcome parity for one attribute over the three populations.
///
/// `codes` gives each document's group index into `names`; `curated` and `baseline` are streams
/// of document indices.
pub fn measure(
    spec: &GroupSpec,
    names: &[String],
    codes: &[u32],
    favourable: &[bool],
    positive: &str,
    curated: &[u32],
    baseline: &[u32],
) -> Result<OutcomeParity> {
    let k = names.len();
    let tally = |documents: &mut dyn Iterator<Item = usize>| {
        let (mut counts, mut positives) = (vec![0u64; k], vec![0u64; k]);
        for d in documents {
            counts[codes[d] as usize] += 1;
            positives[codes[d] as usize] += u64::from(favourable[d]);
        }
        (counts, positives)
    };
    let raw = tally(&mut (0..codes.len()));
    let curated = tally(&mut curated.iter().map(|&i| i as usize));
    let baseline = tally(&mut baseline.iter().map(|&i| i as usize));

    let (privileged, privileged_source) = match &spec.privileged {
        Some(name) => {
            let index = names.iter().position(|n| n == name).ok_or_else(|| {
                Error::input_hint(
                    format!("groups.{}.privileged: group `{name}` does not occur in the corpus", spec.attribute),
                    format!("groups: {}", names.join(", ")),
                )
            })?;
            (index, "declared")
        }
        None => {
            // The largest raw group; ties go to the first name in sorted order.
            let index = (0..k).max_by_key(|&g| (raw.0[g], std::cmp::Reverse(g))).unwrap_or(0);
            (index, "largest raw group")
        }
    };

    let cell = |(counts, positives): &(Vec<u64>, Vec<u64>), g: usize| -> OutcomeCell {
        let rate = |g: usize| if counts[g] == 0 { f64::NAN } else { positives[g] as f64 / counts[g] as f64 };
        let (base_rate, reference) = (rate(g), rate(privileged));
        let disparate_impact = if reference > 0.0 { base_rate / reference } else { f64::NAN };
        let reason = if counts[g] < spec.min_count {
            Some(format!("count {} is under the minimum cell count {}", counts[g], spec.min_count))
        } else if counts[privileged] < spec.min_count {
            Some(format!("the privileged group has count {}, under the minimum cell count {}", counts[privileged], spec.min_count))
        } else if disparate_impact.is_nan() {
            Some("the privileged group's base rate is 0, so the ratio is undefined".to_string())
        } else {
            None
        };
        OutcomeCell {
            count: counts[g],
            positives: positives[g],
            base_rate,
            statistical_parity_difference: base_rate - reference,
            disparate_impact,
            four_fifths_flag: (!disparate_impact.is_nan()).then_some(disparate_impact < FOUR_FIFTHS),
            status: if reason.is_some() { "indeterminate" } else { "ok" },
            reason,
        }
    };
    let groups = (0..k)
        .map(|g| OutcomeGroup {
            group: names[g].clone(),
            privileged: g == privileged,
            raw: cell(&raw, g),
            curated: cell(&curated, g),
            baseline: cell(&baseline, g),
        })
        .collect();

    let balance = |(counts, positives): &(Vec<u64>, Vec<u64>)| {
        let total: u64 = counts.iter().sum();
        let positive: u64 = positives.iter().sum();
        let (minority, majority) = (positive.min(total - positive), positive.max(total - positive));
        ClassBalance {
            total,
            positives: positive,
            positive_share: if total == 0 { f64::NAN } else { positive as f64 / total as f64 },
            imbalance_ratio: if majority == 0 { f64::NAN } else { minority as f64 / majority as f64 },
        }
    };
    let class_balance = POPULATIONS.iter().copied().zip([balance(&raw), balance(&curated), balance(&baseline)]).collect();

    Ok(OutcomeParity {
        attribute: spec.attribute.clone(),
        positive: positive.to_string(),
        privileged: names[privileged].clone(),
        privileged_source,
        min_count: spec.min_count,
        groups,
        class_balance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Reference;

    fn spec(privileged: Option<&str>, min_count: u64) -> GroupSpec {
        GroupSpec {
            attribute: "colour".into(),
            reference: Reference::Corpus,
            min_share: 0.0,
            min_count,
            special_category: false,
            privileged: privileged.map(str::to_string),
            phase_targets: None,
        }
    }

    #[test]
    fn parity_by_hand() {
        // Group A: 10 documents, 8 favourable; group B: 10 documents, 4 favourable.
        let names = vec!["A".to_string(), "B".to_string()];
        let codes: Vec<u32> = (0..20).map(|i| u32::from(i >= 10)).collect();
        let favourable: Vec<bool> = (0..20).map(|i| if i < 10 { i < 8 } else { i < 14 }).collect();
        // The curated stream draws only favourable B documents and all of A.
        let curated: Vec<u32> = (0..10).chain(10..14).collect();
        let p = measure(&spec(Some("A"), 1), &names, &codes, &favourable, "Yes", &curated, &curated).unwrap();
        let b = &p.groups[1];
        assert!((b.raw.base_rate - 0.4).abs() < 1e-12);
        assert!((b.raw.statistical_parity_difference + 0.4).abs() < 1e-12);
        assert!((b.raw.disparate_impact - 0.5).abs() < 1e-12);
        assert_eq!(b.raw.four_fifths_flag, Some(true));
        assert!((b.curated.disparate_impact - 1.25).abs() < 1e-12);
        assert_eq!(b.curated.four_fifths_flag, Some(false));
        assert!(p.groups[0].privileged);
        assert_eq!(p.class_balance["raw"].positives, 12);
        assert!((p.class_balance["raw"].imbalance_ratio - 8.0 / 12.0).abs() < 1e-12);
    }

    #[test]
    fn privileged_defaults_to_largest_group() {
        let names = vec!["A".to_string(), "B".to_string()];
        let codes = vec![0, 1, 1];
        let favourable = vec![true, true, false];
        let p = measure(&spec(None, 0), &names, &codes, &favourable, "Yes", &[0], &[0]).unwrap();
        assert_eq!(p.privileged, "B");
        assert_eq!(p.privileged_source, "largest raw group");
    }

    #[test]
    fn small_groups_are_indeterminate() {
        let names = vec!["A".to_string(), "B".to_string()];
        let codes = vec![0, 0, 0, 1];
        let favourable = vec![true, false, true, true];
        let p = measure(&spec(Some("A"), 2), &names, &codes, &favourable, "Yes", &[], &[]).unwrap();
        assert_eq!(p.groups[1].raw.status, "indeterminate");
        assert_eq!(p.groups[0].raw.status, "ok");
        // An empty stream leaves every cell indeterminate with an undefined rate.
        assert!(p.groups[0].curated.base_rate.is_nan());
        assert_eq!(p.groups[0].curated.status, "indeterminate");
    }

    #[test]
    fn outcomes_must_be_binary_and_contain_positive() {
        let values: Vec<String> = ["Yes", "No", "Maybe"].iter().map(|s| s.to_string()).collect();
        assert!(encode_outcomes(&values, "Yes", "released").unwrap_err().to_string().contains("3 distinct values"));
        let values: Vec<String> = ["No", "No"].iter().map(|s| s.to_string()).collect();
        assert!(encode_outcomes(&values, "Yes", "released").unwrap_err().to_string().contains("never occurs"));
        let values: Vec<String> = ["Yes", "No"].iter().map(|s| s.to_string()).collect();
        assert_eq!(encode_outcomes(&values, "Yes", "released").unwrap(), vec![true, false]);
    }

    #[test]
    fn unknown_privileged_group_is_an_error() {
        let names = vec!["A".to_string()];
        let error = measure(&spec(Some("Z"), 0), &names, &[0], &[true], "Yes", &[], &[]).unwrap_err();
        assert!(error.to_string().contains("group `Z`"), "{error}");
    }
}

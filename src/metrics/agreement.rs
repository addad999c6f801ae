//! Inter-rater agreement statistics for label audits: Cohen's κ (unweighted, linear and
//! quadratic weights), Fleiss' κ, Krippendorff's α and Gwet's AC1.
//!
//! Conventions shared by every statistic in this module:
//!
//! - Category order. When every label parses as a finite `f64`, categories are ordered by
//!   numeric value and interval and ratio α use those values. Otherwise categories are
//!   ordered lexicographically by bytes, and interval and ratio α are undefined. Weighted κ
//!   and ordinal α use this order, so text labels such as "low" < "medium" < "high" get
//!   the alphabetical order, which is rarely the intended one. Use numeric codes when the
//!   order matters.
//! - Confidence intervals are 95 % Wald intervals, value ± 1.959963984540054 × SE, where
//!   the constant is the 0.975 quantile of the standard normal distribution. They are not
//!   clipped to [-1, 1].
//! - Standard errors. Cohen's κ reports the large-sample SE of Fleiss, Cohen & Everitt
//!   (1969) in `se` and the CI, and its `z` divides κ by the SE under H0: κ = 0. Fleiss' κ
//!   reports only the SE under H0 (Fleiss, Nee & Landis 1979), so it has a `z` but no CI.
//!   Gwet's AC1 reports Gwet's SE conditional on the rater sample, and its `z` is AC1 / SE.
//!   Krippendorff's α reports the value only.
//! - Undefined statistics. When a statistic is 0/0 or its input does not fit the formula,
//!   it is returned with `status: "undefined"`, a null value and a `reason`, never as a
//!   placeholder 1 or 0.

use std::collections::{HashMap, HashSet};
use std::fmt;

use serde::Serialize;

/// 0.975 quantile of the standard normal distribution, used for every 95 % CI.
pub const Z_95: f64 = 1.959963984540054;

/// Expected agreement at or above this value counts as 1, which makes κ 0/0.
const EXPECTED_AGREEMENT_LIMIT: f64 = 1.0 - 1e-12;

/// Relative tolerance for equal numbers of ratings per item in a Fleiss count table,
/// which may contain non-integer counts.
const ROW_TOTAL_TOLERANCE: f64 = 1e-9;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

/// Invalid input for building a [`RatingMatrix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgreementError {
    /// The same rater rated the same item twice.
    DuplicateRating { item: String, rater: String },
    /// A rating has an empty label.
    EmptyLabel { item: String, rater: String },
    /// The wide-form header names the same rater twice.
    DuplicateRater { rater: String },
    /// Two wide-form rows have the same item id.
    DuplicateItem { item: String },
    /// A wide-form row has a different number of entries than the header has raters.
    RowLength {
        item: String,
        expected: usize,
        found: usize,
    },
    /// Two different labels parse to the same number, such as "1" and "1.0".
    ConflictingNumericLabels { first: String, second: String },
}

impl fmt::Display for AgreementError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AgreementError::DuplicateRating { item, rater } => write!(
                f,
                "duplicate rating for item '{item}' by rater '{rater}': keep one rating per item and rater"
            ),
            AgreementError::EmptyLabel { item, rater } => write!(
                f,
                "empty label for item '{item}' by rater '{rater}': leave a missing rating out \
                 (or use None in wide form) instead of an empty label"
            ),
            AgreementError::DuplicateRater { rater } => write!(
                f,
                "duplicate rater '{rater}' in the header: rater names must be unique"
            ),
            AgreementError::DuplicateItem { item } => write!(
                f,
                "duplicate item '{item}': give each item one row"
            ),
            AgreementError::RowLength {
                item,
                expected,
                found,
            } => write!(
                f,
                "item '{item}' has {found} entries but the header names {expected} raters: \
                 give one entry per rater, None for a missing rating"
            ),
            AgreementError::ConflictingNumericLabels { first, second } => write!(
                f,
                "labels '{first}' and '{second}' have the same numeric value: \
                 write each category with one spelling"
            ),
        }
    }
}

impl std::error::Error for AgreementError {}

// ---------------------------------------------------------------------------
// Rating matrix
// ---------------------------------------------------------------------------

/// Ratings of items by raters, with at most one label per (item, rater) pair.
///
/// Items and raters keep the order in which they first appear in the input. Categories
/// are the distinct labels, ordered as described in the module documentation.
#[derive(Debug, Clone, PartialEq)]
pub struct RatingMatrix {
    items: Vec<String>,
    raters: Vec<String>,
    categories: Vec<String>,
    /// Numeric value of each category when every label parses as a finite `f64`.
    numeric_values: Option<Vec<f64>>,
    /// Category index of each rating, indexed `[item][rater]`. `None` is a missing rating.
    ratings: Vec<Vec<Option<usize>>>,
}

impl RatingMatrix {
    /// Builds a matrix from long-form `(item, rater, label)` triples.
    ///
    /// A missing rating is a triple that is not there. Returns an error for a second
    /// rating of the same (item, rater) pair, for an empty label, and for two labels
    /// with the same numeric value.
    pub fn from_long<I, S1, S2, S3>(triples: I) -> Result<RatingMatrix, AgreementError>
    where
        I: IntoIterator<Item = (S1, S2, S3)>,
        S1: AsRef<str>,
        S2: AsRef<str>,
        S3: AsRef<str>,
    {
        let mut items: Vec<String> = Vec::new();
        let mut item_index: HashMap<String, usize> = HashMap::new();
        let mut raters: Vec<String> = Vec::new();
        let mut rater_index: HashMap<String, usize> = HashMap::new();
        let mut labels = LabelInterner::default();
        let mut ratings: Vec<Vec<Option<usize>>> = Vec::new();

        for (item, rater, label) in triples {
            let (item, rater, label) = (item.as_ref(), rater.as_ref(), label.as_ref());

            let item_position = *item_index.entry(item.to_string()).or_insert_with(|| {
                items.push(item.to_string());
                ratings.push(Vec::new());
                items.len() - 1
            });
            let rater_position = *rater_index.entry(rater.to_string()).or_insert_with(|| {
                raters.push(rater.to_string());
                raters.len() - 1
            });
            if label.is_empty() {
                return Err(AgreementError::EmptyLabel {
                    item: item.to_string(),
                    rater: rater.to_string(),
                });
            }

            let row = &mut ratings[item_position];
            if row.len() <= rater_position {
                row.resize(rater_position + 1, None);
            }
            if row[rater_position].is_some() {
                return Err(AgreementError::DuplicateRating {
                    item: item.to_string(),
                    rater: rater.to_string(),
                });
            }
            row[rater_position] = Some(labels.intern(label));
        }

        for row in &mut ratings {
            row.resize(raters.len(), None);
        }
        RatingMatrix::assemble(items, raters, labels, ratings)
    }

    /// Builds a matrix from wide form: one row per item with one entry per rater, in the
    /// order of `raters`, and `None` for a missing rating.
    ///
    /// Returns an error for a repeated rater name or item id, a row whose length differs
    /// from the number of raters, an empty label, and two labels with the same numeric
    /// value.
    pub fn from_wide(
        raters: Vec<String>,
        rows: Vec<(String, Vec<Option<String>>)>,
    ) -> Result<RatingMatrix, AgreementError> {
        let mut seen_raters: HashSet<&str> = HashSet::new();
        for rater in &raters {
            if !seen_raters.insert(rater.as_str()) {
                return Err(AgreementError::DuplicateRater {
                    rater: rater.clone(),
                });
            }
        }

        let mut items: Vec<String> = Vec::with_capacity(rows.len());
        let mut seen_items: HashSet<String> = HashSet::new();
        let mut labels = LabelInterner::default();
        let mut ratings: Vec<Vec<Option<usize>>> = Vec::with_capacity(rows.len());

        for (item, row) in rows {
            if !seen_items.insert(item.clone()) {
                return Err(AgreementError::DuplicateItem { item });
            }
            if row.len() != raters.len() {
                return Err(AgreementError::RowLength {
                    item,
                    expected: raters.len(),
                    found: row.len(),
                });
            }

            let mut coded_row = Vec::with_capacity(row.len());
            for (rater, label) in raters.iter().zip(row) {
                let coded = match label {
                    None => None,
                    Some(label) if label.is_empty() => {
                        return Err(AgreementError::EmptyLabel {
                            item,
                            rater: rater.clone(),
                        });
                    }
                    Some(label) => Some(labels.intern(&label)),
                };
                coded_row.push(coded);
            }
            items.push(item);
            ratings.push(coded_row);
        }

        RatingMatrix::assemble(items, raters, labels, ratings)
    }

    /// Orders the interned labels into categories and recodes the ratings to match.
    fn assemble(
        items: Vec<String>,
        raters: Vec<String>,
        labels: LabelInterner,
        mut ratings: Vec<Vec<Option<usize>>>,
    ) -> Result<RatingMatrix, AgreementError> {
        let order = order_categories(labels.labels)?;
        for row in &mut ratings {
            for code in row.iter_mut().flatten() {
                *code = order.position_of[*code];
            }
        }
        Ok(RatingMatrix {
            items,
            raters,
            categories: order.categories,
            numeric_values: order.numeric_values,
            ratings,
        })
    }

    /// Item ids in first-appearance order.
    pub fn items(&self) -> &[String] {
        &self.items
    }

    /// Rater names in first-appearance order (header order for wide form).
    pub fn raters(&self) -> &[String] {
        &self.raters
    }

    /// Distinct labels in category order.
    pub fn categories(&self) -> &[String] {
        &self.categories
    }

    /// Numeric values of [`Self::categories`], or `None` when some label is not a
    /// finite number.
    pub fn numeric_values(&self) -> Option<&[f64]> {
        self.numeric_values.as_deref()
    }

    /// Label that rater `rater` gave item `item` (both indices), or `None` when the
    /// rating is missing or an index is out of range.
    pub fn rating(&self, item: usize, rater: usize) -> Option<&str> {
        let code = (*self.ratings.get(item)?.get(rater)?)?;
        Some(self.categories[code].as_str())
    }

    /// Number of ratings given to each category, per item, skipping items with none.
    fn category_counts_per_rated_item(&self) -> Vec<Vec<f64>> {
        let category_count = self.categories.len();
        let mut table = Vec::with_capacity(self.items.len());
        for row in &self.ratings {
            let mut counts = vec![0.0; category_count];
            let mut rated = false;
            for code in row.iter().flatten() {
                counts[*code] += 1.0;
                rated = true;
            }
            if rated {
                table.push(counts);
            }
        }
        table
    }
}

/// Labels in first-appearance order with a lookup from label to its position.
#[derive(Default)]
struct LabelInterner {
    labels: Vec<String>,
    index: HashMap<String, usize>,
}

impl LabelInterner {
    fn intern(&mut self, label: &str) -> usize {
        if let Some(&code) = self.index.get(label) {
            return code;
        }
        self.labels.push(label.to_string());
        self.index.insert(label.to_string(), self.labels.len() - 1);
        self.labels.len() - 1
    }
}

/// Categories in their final order, and the final position of each interned label.
struct CategoryOrder {
    categories: Vec<String>,
    numeric_values: Option<Vec<f64>>,
    position_of: Vec<usize>,
}

/// Orders labels numerically when all parse as finite numbers, else lexicographically.
///
/// Returns an error when two labels have the same numeric value, because they would be
/// two categories at the same point of the scale.
fn order_categories(labels: Vec<String>) -> Result<CategoryOrder, AgreementError> {
    let parsed: Option<Vec<f64>> = labels.iter().map(|label| parse_finite(label)).collect();
    let mut sorted: Vec<usize> = (0..labels.len()).collect();

    match &parsed {
        Some(values) => {
            sorted.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
            for pair in sorted.windows(2) {
                if values[pair[0]] == values[pair[1]] {
                    return Err(AgreementError::ConflictingNumericLabels {
                        first: labels[pair[0]].clone(),
                        second: labels[pair[1]].clone(),
                    });
                }
            }
        }
        None => sorted.sort_by(|&a, &b| labels[a].cmp(&labels[b])),
    }

    let mut position_of = vec![0; labels.len()];
    for (position, &code) in sorted.iter().enumerate() {
        position_of[code] = position;
    }
    let numeric_values = parsed.map(|values| sorted.iter().map(|&code| values[code]).collect());
    let categories = sorted.iter().map(|&code| labels[code].clone()).collect();

    Ok(CategoryOrder {
        categories,
        numeric_values,
        position_of,
    })
}

/// Parses a label as a number. "NaN" and "inf" parse in Rust but count as text here.
fn parse_finite(label: &str) -> Option<f64> {
    label.parse::<f64>().ok().filter(|value| value.is_finite())
}

// ---------------------------------------------------------------------------
// Statistic
// ---------------------------------------------------------------------------

/// Whether a statistic could be computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Undefined,
}

/// One agreement statistic with its uncertainty, as written into evidence reports.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Statistic {
    /// Point estimate; `None` (JSON null) when the statistic is undefined.
    pub value: Option<f64>,
    pub status: Status,
    /// Reason the statistic is undefined.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Standard error. Which SE this is depends on the statistic (see the module
    /// documentation); for Fleiss' κ it is the SE under H0.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub se: Option<f64>,
    /// Lower end of the 95 % CI, value − [`Z_95`] × SE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_low: Option<f64>,
    /// Upper end of the 95 % CI, value + [`Z_95`] × SE.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ci_high: Option<f64>,
    /// Test statistic for H0: no agreement beyond chance. Absent when its denominator
    /// is zero.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub z: Option<f64>,
}

impl Statistic {
    /// Creates an undefined statistic with the reason.
    pub fn undefined(reason: impl Into<String>) -> Statistic {
        Statistic {
            value: None,
            status: Status::Undefined,
            reason: Some(reason.into()),
            se: None,
            ci_low: None,
            ci_high: None,
            z: None,
        }
    }

    /// Returns whether the statistic has a value.
    pub fn is_defined(&self) -> bool {
        self.status == Status::Ok
    }

    /// Creates a defined statistic, or an undefined one if `value` is not finite.
    fn estimate(value: f64) -> Statistic {
        if !value.is_finite() {
            return Statistic::undefined(format!(
                "the computation produced a non-finite value ({value}); the counts may be too large"
            ));
        }
        Statistic {
            value: Some(value),
            status: Status::Ok,
            reason: None,
            se: None,
            ci_low: None,
            ci_high: None,
            z: None,
        }
    }

    /// Sets the SE and the 95 % CI computed from it.
    fn with_confidence_interval(mut self, se: f64) -> Statistic {
        if let (Some(value), true) = (self.value, se.is_finite()) {
            self.se = Some(se);
            self.ci_low = Some(value - Z_95 * se);
            self.ci_high = Some(value + Z_95 * se);
        }
        self
    }

    /// Sets the SE without a CI, for an SE that is valid only under H0.
    fn with_null_standard_error(mut self, se: f64) -> Statistic {
        if self.value.is_some() && se.is_finite() {
            self.se = Some(se);
        }
        self
    }

    /// Sets z = value / `denominator`, leaving it absent when the denominator is zero.
    fn with_z(mut self, denominator: f64) -> Statistic {
        if let Some(value) = self.value {
            if denominator > 0.0 && denominator.is_finite() {
                self.z = Some(value / denominator);
            }
        }
        self
    }
}

/// Square root of a variance, with rounding noise below zero treated as zero.
fn standard_error(variance: f64) -> f64 {
    variance.max(0.0).sqrt()
}

/// Checks that a count table is non-empty, rectangular with `columns` columns, and holds
/// only finite non-negative counts. Returns the reason when it does not.
fn validate_count_table(table: &[Vec<f64>], columns: usize, name: &str) -> Result<(), String> {
    if table.is_empty() || columns == 0 {
        return Err(format!("the {name} is empty"));
    }
    for (row_index, row) in table.iter().enumerate() {
        if row.len() != columns {
            return Err(format!(
                "row {row_index} of the {name} has {} entries, expected {columns}",
                row.len()
            ));
        }
        for (column_index, &count) in row.iter().enumerate() {
            if !count.is_finite() || count < 0.0 {
                return Err(format!(
                    "the {name} has count {count} at row {row_index}, column {column_index}: \
                     counts must be finite and non-negative"
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Cohen's kappa
// ---------------------------------------------------------------------------

/// Agreement weights for Cohen's κ, as a function of the distance between category ranks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weights {
    /// Credit only for exact agreement: w = 1 on the diagonal, 0 elsewhere.
    Unweighted,
    /// w_ij = 1 − |i − j| / (k − 1) (Cicchetti & Allison 1971 with scores 1..k).
    Linear,
    /// w_ij = 1 − (i − j)² / (k − 1)² (Fleiss & Cohen 1973).
    Quadratic,
}

impl Weights {
    /// Agreement weight of rank `i` against rank `j` among `k` categories.
    ///
    /// Weights use category ranks, not numeric label values. With one category every
    /// weight is 1.
    fn weight(self, i: usize, j: usize, k: usize) -> f64 {
        if i == j {
            return 1.0;
        }
        let distance = i.abs_diff(j) as f64;
        let span = (k.max(2) - 1) as f64;
        match self {
            Weights::Unweighted => 0.0,
            Weights::Linear => 1.0 - distance / span,
            Weights::Quadratic => 1.0 - (distance * distance) / (span * span),
        }
    }
}

/// Computes Cohen's κ between two raters of `matrix`, given by rater index.
///
/// Only items rated by both raters are used. The contingency table spans every category
/// of the matrix, so weighted κ measures distance on the matrix-wide category order, even
/// for categories that neither of the two raters used. Undefined when an index is out of
/// range, both indices are the same rater, or the raters have no items in common.
pub fn cohen_kappa(
    matrix: &RatingMatrix,
    rater_a: usize,
    rater_b: usize,
    weights: Weights,
) -> Statistic {
    let rater_count = matrix.raters.len();
    for index in [rater_a, rater_b] {
        if index >= rater_count {
            return Statistic::undefined(format!(
                "rater index {index} is out of range: the matrix has {rater_count} raters"
            ));
        }
    }
    if rater_a == rater_b {
        return Statistic::undefined(format!(
            "both rater indices refer to rater '{}': Cohen's kappa compares two different raters",
            matrix.raters[rater_a]
        ));
    }

    let pairs: Vec<(usize, usize)> = matrix
        .ratings
        .iter()
        .filter_map(|row| Some((row[rater_a]?, row[rater_b]?)))
        .collect();
    if pairs.is_empty() {
        return Statistic::undefined(format!(
            "raters '{}' and '{}' have no rated items in common",
            matrix.raters[rater_a], matrix.raters[rater_b]
        ));
    }

    // The table spans only the categories used in the paired ratings, in category order, as
    // scikit-learn's cohen_kappa_score does by default. Weighted kappa scores categories by
    // rank, so a label seen only in unpaired ratings would otherwise shift the weights.
    let mut used = vec![false; matrix.categories.len()];
    for &(a, b) in &pairs {
        used[a] = true;
        used[b] = true;
    }
    let mut rank = vec![usize::MAX; used.len()];
    let mut k = 0;
    for (category, &is_used) in used.iter().enumerate() {
        if is_used {
            rank[category] = k;
            k += 1;
        }
    }
    let mut table = vec![vec![0.0; k]; k];
    for (a, b) in pairs {
        table[rank[a]][rank[b]] += 1.0;
    }
    cohen_kappa_table(&table, weights)
}

/// Computes Cohen's κ from a k × k contingency table: rows are rater A's categories,
/// columns rater B's, both in category order. Counts may be non-integer.
///
/// With cell proportions p_ij, margins p_i· and p_·j and weights w_ij (Cohen 1960, "A
/// coefficient of agreement for nominal scales"; Cohen 1968, "Weighted kappa"):
///
/// ```text
/// p_o = Σ w_ij p_ij,   p_e = Σ w_ij p_i· p_·j,   κ = (p_o − p_e) / (1 − p_e)
/// ```
///
/// The SE is the square root of the large-sample variance of Fleiss, Cohen & Everitt
/// (1969), "Large sample standard errors of kappa and weighted kappa", Psychological
/// Bulletin 72(5):323–327. With w̄_i· = Σ_j p_·j w_ij and w̄_·j = Σ_i p_i· w_ij:
///
/// ```text
/// Var(κ)  = [Σ p_ij (w_ij − (w̄_i· + w̄_·j)(1 − κ))² − (κ − p_e(1 − κ))²] / (n (1 − p_e)²)
/// Var0(κ) = [Σ p_i· p_·j (w_ij − (w̄_i· + w̄_·j))² − p_e²] / (n (1 − p_e)²)
/// ```
///
/// where n is the total count and Var0 is the variance under H0: κ = 0. The CI uses
/// Var, and z = κ / √Var0. Undefined when the table is empty, not square, has a
/// negative or non-finite count or no ratings, or when p_e = 1 (both raters always chose
/// the same single category), which makes κ 0/0.
pub fn cohen_kappa_table(table: &[Vec<f64>], weights: Weights) -> Statistic {
    let k = table.len();
    if let Err(reason) = validate_count_table(table, k, "contingency table") {
        return Statistic::undefined(reason);
    }
    let total: f64 = table.iter().flatten().sum();
    if total <= 0.0 {
        return Statistic::undefined("the contingency table has no ratings (all counts are zero)");
    }

    let weight: Vec<Vec<f64>> = (0..k)
        .map(|i| (0..k).map(|j| weights.weight(i, j, k)).collect())
        .collect();
    let proportion: Vec<Vec<f64>> = table
        .iter()
        .map(|row| row.iter().map(|count| count / total).collect())
        .collect();
    let row_margin: Vec<f64> = proportion.iter().map(|row| row.iter().sum()).collect();
    let column_margin: Vec<f64> = (0..k)
        .map(|j| proportion.iter().map(|row| row[j]).sum())
        .collect();

    let mut observed = 0.0;
    let mut expected = 0.0;
    for i in 0..k {
        for j in 0..k {
            observed += weight[i][j] * proportion[i][j];
            expected += weight[i][j] * row_margin[i] * column_margin[j];
        }
    }
    if expected >= EXPECTED_AGREEMENT_LIMIT {
        return Statistic::undefined(
            "expected agreement is 1 because both raters used one and the same category \
             for every item, so kappa is 0/0",
        );
    }
    let kappa = (observed - expected) / (1.0 - expected);

    // Weighted margins w̄_i· and w̄_·j of the variance formulas.
    let row_weight_mean: Vec<f64> = (0..k)
        .map(|i| (0..k).map(|j| column_margin[j] * weight[i][j]).sum())
        .collect();
    let column_weight_mean: Vec<f64> = (0..k)
        .map(|j| (0..k).map(|i| row_margin[i] * weight[i][j]).sum())
        .collect();

    let mut sum_squares = 0.0;
    let mut sum_squares_null = 0.0;
    for i in 0..k {
        for j in 0..k {
            let margin_weight = row_weight_mean[i] + column_weight_mean[j];
            let deviation = weight[i][j] - margin_weight * (1.0 - kappa);
            sum_squares += proportion[i][j] * deviation * deviation;
            let deviation_null = weight[i][j] - margin_weight;
            sum_squares_null += row_margin[i] * column_margin[j] * deviation_null * deviation_null;
        }
    }
    let scale = total * (1.0 - expected) * (1.0 - expected);
    let correction = kappa - expected * (1.0 - kappa);
    let variance = (sum_squares - correction * correction) / scale;
    let variance_null = (sum_squares_null - expected * expected) / scale;

    Statistic::estimate(kappa)
        .with_confidence_interval(standard_error(variance))
        .with_z(standard_error(variance_null))
}

// ---------------------------------------------------------------------------
// Fleiss' kappa
// ---------------------------------------------------------------------------

/// Computes Fleiss' κ over the items of `matrix`.
///
/// Fleiss' κ needs the same number of ratings (at least two) for every item, but not
/// the same raters, so a design where each item gets exactly two of three raters is
/// accepted. Undefined, naming the first offending item, when the number of ratings
/// varies or an item has no ratings; also undefined with fewer than two raters.
pub fn fleiss_kappa(matrix: &RatingMatrix) -> Statistic {
    if matrix.raters.len() < 2 {
        return Statistic::undefined(format!(
            "Fleiss' kappa needs at least two raters, the matrix has {}",
            matrix.raters.len()
        ));
    }
    if matrix.items.is_empty() {
        return Statistic::undefined("the matrix has no items");
    }

    let k = matrix.categories.len();
    let mut counts = Vec::with_capacity(matrix.items.len());
    let mut ratings_per_item: Option<usize> = None;
    for (item, row) in matrix.items.iter().zip(&matrix.ratings) {
        let mut item_counts = vec![0.0; k];
        let mut rating_count = 0usize;
        for code in row.iter().flatten() {
            item_counts[*code] += 1.0;
            rating_count += 1;
        }
        match ratings_per_item {
            None => ratings_per_item = Some(rating_count),
            Some(expected) if expected != rating_count => {
                return Statistic::undefined(format!(
                    "item '{item}' has {rating_count} ratings but the first item has {expected}: \
                     Fleiss' kappa needs the same number of ratings for every item"
                ));
            }
            Some(_) => {}
        }
        counts.push(item_counts);
    }
    fleiss_kappa_counts(&counts)
}

/// Computes Fleiss' κ from an items × categories table of rating counts.
///
/// With N items, n ratings per item, n_ij ratings of item i in category j,
/// p_j = Σ_i n_ij / (N n), P_i = (Σ_j n_ij² − n) / (n (n − 1)), P̄ = mean of P_i and
/// P̄_e = Σ_j p_j²: κ = (P̄ − P̄_e) / (1 − P̄_e) (Fleiss 1971, "Measuring nominal scale
/// agreement among many raters", Psychological Bulletin 76(5):378–382).
///
/// The SE is the one under H0: κ = 0 from Fleiss, Nee & Landis (1979), "Large sample
/// variance of kappa in the case of different sets of raters", Psychological Bulletin
/// 86(5):974–977. With q_j = 1 − p_j:
///
/// ```text
/// Var0(κ) = 2 / (N n (n − 1)) × [(Σ p_j q_j)² − Σ p_j q_j (q_j − p_j)] / (Σ p_j q_j)²
/// ```
///
/// This SE is valid only under H0, so `se` is this SE, `z` = κ / SE, and no CI is given.
/// Undefined when the table is empty or ragged, has a negative or non-finite count, the
/// row totals differ or are below 2, or every rating is in one category (P̄_e = 1).
pub fn fleiss_kappa_counts(counts: &[Vec<f64>]) -> Statistic {
    let k = counts.first().map_or(0, Vec::len);
    if let Err(reason) = validate_count_table(counts, k, "count table") {
        return Statistic::undefined(reason);
    }

    let ratings_per_item: f64 = counts[0].iter().sum();
    for (row_index, row) in counts.iter().enumerate() {
        let row_total: f64 = row.iter().sum();
        let tolerance = ROW_TOTAL_TOLERANCE * ratings_per_item.max(1.0);
        if (row_total - ratings_per_item).abs() > tolerance {
            return Statistic::undefined(format!(
                "row {row_index} of the count table has {row_total} ratings but row 0 has \
                 {ratings_per_item}: Fleiss' kappa needs the same number of ratings for every item"
            ));
        }
    }
    if ratings_per_item < 2.0 {
        return Statistic::undefined(format!(
            "each item has {ratings_per_item} ratings: Fleiss' kappa needs at least two per item"
        ));
    }

    let item_count = counts.len() as f64;
    let n = ratings_per_item;
    let category_share: Vec<f64> = (0..k)
        .map(|j| counts.iter().map(|row| row[j]).sum::<f64>() / (item_count * n))
        .collect();
    let expected: f64 = category_share.iter().map(|p| p * p).sum();
    if expected >= EXPECTED_AGREEMENT_LIMIT {
        return Statistic::undefined(
            "every rating is in one category, so expected agreement is 1 and kappa is 0/0",
        );
    }

    let observed = counts
        .iter()
        .map(|row| (row.iter().map(|c| c * c).sum::<f64>() - n) / (n * (n - 1.0)))
        .sum::<f64>()
        / item_count;
    let kappa = (observed - expected) / (1.0 - expected);

    let spread: f64 = category_share.iter().map(|p| p * (1.0 - p)).sum();
    let skew: f64 = category_share
        .iter()
        .map(|p| p * (1.0 - p) * ((1.0 - p) - p))
        .sum();
    let variance_null =
        2.0 / (item_count * n * (n - 1.0)) * (spread * spread - skew) / (spread * spread);
    let se_null = standard_error(variance_null);

    Statistic::estimate(kappa)
        .with_null_standard_error(se_null)
        .with_z(se_null)
}

// ---------------------------------------------------------------------------
// Krippendorff's alpha
// ---------------------------------------------------------------------------

/// Level of measurement, which selects the difference function of Krippendorff's α.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Nominal,
    Ordinal,
    Interval,
    Ratio,
}

impl Level {
    fn name(self) -> &'static str {
        match self {
            Level::Nominal => "nominal",
            Level::Ordinal => "ordinal",
            Level::Interval => "interval",
            Level::Ratio => "ratio",
        }
    }
}

/// Computes Krippendorff's α at the given level of measurement (value only, no SE).
///
/// Follows the coincidence-matrix formulation of Krippendorff (2011), "Computing
/// Krippendorff's Alpha-Reliability", University of Pennsylvania. Items are units,
/// raters are coders. Units with fewer than two ratings are not pairable and are
/// dropped. Each pairable unit u with m_u ratings adds 1 / (m_u − 1) to o_ck for every
/// ordered pair of ratings (c, k) by two different raters. With n_c = Σ_k o_ck and
/// n = Σ_c n_c:
///
/// ```text
/// α = 1 − (n − 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck
/// ```
///
/// Undefined when fewer than two units are pairable, when expected disagreement is zero
/// (all pairable ratings are equal), for interval or ratio data with a non-numeric
/// label, and for ratio data with a negative value.
pub fn krippendorff_alpha(matrix: &RatingMatrix, level: Level) -> Statistic {
    let values = match level {
        Level::Nominal | Level::Ordinal => None,
        Level::Interval | Level::Ratio => match matrix.numeric_values() {
            Some(values) => Some(values),
            None => {
                let example = matrix
                    .categories
                    .iter()
                    .find(|label| parse_finite(label).is_none())
                    .map_or("", String::as_str);
                return Statistic::undefined(format!(
                    "{} alpha needs numeric labels, but label '{example}' is not a finite number",
                    level.name()
                ));
            }
        },
    };
    if level == Level::Ratio {
        if let Some(negative) = values.into_iter().flatten().find(|value| **value < 0.0) {
            return Statistic::undefined(format!(
                "ratio alpha needs non-negative values, but the labels include {negative}"
            ));
        }
    }

    let (coincidences, pairable_units) = coincidence_matrix(matrix);
    if pairable_units < 2 {
        return Statistic::undefined(format!(
            "{pairable_units} units have two or more ratings: alpha needs at least two such units"
        ));
    }

    let marginals: Vec<f64> = coincidences.iter().map(|row| row.iter().sum()).collect();
    let pairable_values: f64 = marginals.iter().sum();
    let difference = squared_differences(level, &marginals, values);

    let k = marginals.len();
    let mut observed = 0.0;
    let mut expected = 0.0;
    for c in 0..k {
        for j in 0..k {
            observed += coincidences[c][j] * difference[c][j];
            expected += marginals[c] * marginals[j] * difference[c][j];
        }
    }
    if expected <= 0.0 {
        return Statistic::undefined(
            "all pairable ratings have the same value, so expected disagreement is zero and alpha is 0/0",
        );
    }
    Statistic::estimate(1.0 - (pairable_values - 1.0) * observed / expected)
}

/// Builds the coincidence matrix o_ck over pairable units and returns it with the number
/// of pairable units.
fn coincidence_matrix(matrix: &RatingMatrix) -> (Vec<Vec<f64>>, usize) {
    let k = matrix.categories.len();
    let mut coincidences = vec![vec![0.0; k]; k];
    let mut pairable_units = 0usize;

    for counts in matrix.category_counts_per_rated_item() {
        let ratings: f64 = counts.iter().sum();
        if ratings < 2.0 {
            continue;
        }
        pairable_units += 1;

        let used: Vec<usize> = (0..k).filter(|&c| counts[c] > 0.0).collect();
        for &c in &used {
            for &j in &used {
                // Pairs of ratings from different raters: m_c m_j pairs, or
                // m_c (m_c − 1) on the diagonal.
                let pairs = if c == j {
                    counts[c] * (counts[c] - 1.0)
                } else {
                    counts[c] * counts[j]
                };
                coincidences[c][j] += pairs / (ratings - 1.0);
            }
        }
    }
    (coincidences, pairable_units)
}

/// Squared difference δ²_ck between categories c and k (Krippendorff 2011):
///
/// - nominal: 0 when c = k, else 1;
/// - ordinal: (Σ_{g=c..k} n_g − (n_c + n_k) / 2)² over category ranks, with n_g the
///   coincidence marginals;
/// - interval: (v_c − v_k)²;
/// - ratio: ((v_c − v_k) / (v_c + v_k))². The caller rejects negative values, so
///   v_c + v_k > 0 whenever c ≠ k.
///
/// `values` must be `Some` for interval and ratio.
fn squared_differences(level: Level, marginals: &[f64], values: Option<&[f64]>) -> Vec<Vec<f64>> {
    let k = marginals.len();
    let mut cumulative = vec![0.0; k + 1];
    for g in 0..k {
        cumulative[g + 1] = cumulative[g] + marginals[g];
    }

    let mut difference = vec![vec![0.0; k]; k];
    for c in 0..k {
        for j in 0..k {
            if c == j {
                continue;
            }
            difference[c][j] = match (level, values) {
                (Level::Nominal, _) => 1.0,
                (Level::Ordinal, _) => {
                    let (low, high) = (c.min(j), c.max(j));
                    let between = cumulative[high + 1] - cumulative[low];
                    let rank_distance = between - (marginals[c] + marginals[j]) / 2.0;
                    rank_distance * rank_distance
                }
                (Level::Interval, Some(v)) => (v[c] - v[j]) * (v[c] - v[j]),
                (Level::Ratio, Some(v)) => {
                    let relative = (v[c] - v[j]) / (v[c] + v[j]);
                    relative * relative
                }
                (Level::Interval | Level::Ratio, None) => {
                    unreachable!("interval and ratio differences need numeric values")
                }
            };
        }
    }
    difference
}

// ---------------------------------------------------------------------------
// Gwet's AC1
// ---------------------------------------------------------------------------

/// Computes Gwet's AC1 with its SE, 95 % CI and z = AC1 / SE, for two or more raters
/// with missing ratings allowed.
///
/// Follows Gwet (2008), "Computing inter-rater reliability and its variance in the
/// presence of high agreement", British Journal of Mathematical and Statistical
/// Psychology 61:29–48, in the form for missing ratings of Gwet's Handbook of
/// Inter-Rater Reliability (4th ed., 2014). The formulas follow `CAC.gwet` of the
/// Python package irrCAC 0.4.4, a port of `gwet.ac1.raw` in the R package irrCAC.
///
/// Items without ratings are dropped, which leaves n items. For item i, r_i is its
/// number of ratings and r_ik the number in category k. q is the number of distinct
/// labels in the matrix. A category of the coding scheme that no rater used does not
/// count, although it would lower p_e.
///
/// ```text
/// p_a = mean over items with r_i ≥ 2 of Σ_k r_ik (r_ik − 1) / (r_i (r_i − 1))
/// π_k = (1/n) Σ_i r_ik / r_i,   p_e = Σ_k π_k (1 − π_k) / (q − 1)
/// AC1 = (p_a − p_e) / (1 − p_e)
/// ```
///
/// The variance treats raters as fixed and the n items as a sample from an infinite
/// population. With n₂ the number of items with r_i ≥ 2, p_a|i item i's term of p_a
/// (0 when r_i < 2) and [r_i ≥ 2] equal to 1 or 0:
///
/// ```text
/// p_e|i   = Σ_k r_ik (1 − π_k) / (r_i (q − 1))
/// AC1_i   = (n / n₂) (p_a|i − p_e [r_i ≥ 2]) / (1 − p_e)
/// AC1*_i  = AC1_i − 2 (1 − AC1) (p_e|i − p_e) / (1 − p_e)
/// Var     = Σ_i (AC1*_i − AC1)² / (n (n − 1))
/// ```
///
/// NOTE: irrCAC builds its CI from the t distribution with n − 1 degrees of freedom and
/// caps it at 1. This function uses the normal quantile [`Z_95`] like every statistic in
/// this module, so its CI is narrower for small n.
///
/// Undefined with fewer than two raters, fewer than two categories (p_e has q − 1 in the
/// denominator), or no item with two or more ratings. The SE, CI and z are absent when
/// fewer than two items are rated.
pub fn gwet_ac1(matrix: &RatingMatrix) -> Statistic {
    if matrix.raters.len() < 2 {
        return Statistic::undefined(format!(
            "AC1 needs at least two raters, the matrix has {}",
            matrix.raters.len()
        ));
    }
    let q = matrix.categories.len();
    if q < 2 {
        return Statistic::undefined(format!(
            "the ratings use {q} categories: AC1's chance agreement needs at least two categories"
        ));
    }

    let counts = matrix.category_counts_per_rated_item();
    let n = counts.len() as f64;
    let ratings_per_item: Vec<f64> = counts.iter().map(|row| row.iter().sum()).collect();
    let multiply_rated = ratings_per_item.iter().filter(|&&r| r >= 2.0).count();
    if multiply_rated == 0 {
        return Statistic::undefined(
            "no item has two or more ratings, so AC1 has no observed agreement",
        );
    }
    let multiply_rated = multiply_rated as f64;

    // Item i's share of agreeing rating pairs, p_a|i; zero for items with one rating.
    let item_agreement: Vec<f64> = counts
        .iter()
        .zip(&ratings_per_item)
        .map(|(row, &r)| {
            if r < 2.0 {
                0.0
            } else {
                row.iter().map(|c| c * (c - 1.0)).sum::<f64>() / (r * (r - 1.0))
            }
        })
        .collect();
    let observed = item_agreement.iter().sum::<f64>() / multiply_rated;

    let classification: Vec<f64> = (0..q)
        .map(|k| {
            counts
                .iter()
                .zip(&ratings_per_item)
                .map(|(row, &r)| row[k] / r)
                .sum::<f64>()
                / n
        })
        .collect();
    let chance_scale = 1.0 / (q as f64 - 1.0);
    let expected = chance_scale * classification.iter().map(|p| p * (1.0 - p)).sum::<f64>();
    let ac1 = (observed - expected) / (1.0 - expected);

    let statistic = Statistic::estimate(ac1);
    if counts.len() < 2 {
        return statistic;
    }

    let mut sum_squares = 0.0;
    for ((row, &r), &agreement) in counts.iter().zip(&ratings_per_item).zip(&item_agreement) {
        let expected_share = if r >= 2.0 { expected } else { 0.0 };
        let item_ac1 = (n / multiply_rated) * (agreement - expected_share) / (1.0 - expected);
        let item_expected = chance_scale
            * row
                .iter()
                .zip(&classification)
                .map(|(c, p)| c * (1.0 - p))
                .sum::<f64>()
            / r;
        let linearized =
            item_ac1 - 2.0 * (1.0 - ac1) * (item_expected - expected) / (1.0 - expected);
        sum_squares += (linearized - ac1) * (linearized - ac1);
    }
    let se = standard_error(sum_squares / (n * (n - 1.0)));

    statistic.with_confidence_interval(se).with_z(se)
}

// ---------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------

/// All agreement statistics that apply to one rating matrix, serialized as one JSON
/// object in field order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AgreementReport {
    /// Unweighted Cohen's κ; present only with exactly two raters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohen: Option<Statistic>,
    /// Linearly weighted Cohen's κ; present only with exactly two raters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohen_linear: Option<Statistic>,
    /// Quadratically weighted Cohen's κ; present only with exactly two raters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cohen_quadratic: Option<Statistic>,
    pub fleiss: Statistic,
    pub krippendorff_nominal: Statistic,
    pub krippendorff_ordinal: Statistic,
    pub krippendorff_interval: Statistic,
    pub krippendorff_ratio: Statistic,
    pub gwet_ac1: Statistic,
    /// Number of items, including items without ratings.
    pub items: usize,
    /// Number of raters.
    pub raters: usize,
    /// Number of distinct labels.
    pub categories: usize,
}

/// Computes every statistic of this module for `matrix`. Cohen's κ is included only when
/// the matrix has exactly two raters.
pub fn agreement_report(matrix: &RatingMatrix) -> AgreementReport {
    let two_raters = matrix.raters.len() == 2;
    let cohen = |weights| two_raters.then(|| cohen_kappa(matrix, 0, 1, weights));

    AgreementReport {
        cohen: cohen(Weights::Unweighted),
        cohen_linear: cohen(Weights::Linear),
        cohen_quadratic: cohen(Weights::Quadratic),
        fleiss: fleiss_kappa(matrix),
        krippendorff_nominal: krippendorff_alpha(matrix, Level::Nominal),
        krippendorff_ordinal: krippendorff_alpha(matrix, Level::Ordinal),
        krippendorff_interval: krippendorff_alpha(matrix, Level::Interval),
        krippendorff_ratio: krippendorff_alpha(matrix, Level::Ratio),
        gwet_ac1: gwet_ac1(matrix),
        items: matrix.items.len(),
        raters: matrix.raters.len(),
        categories: matrix.categories.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Asserts |actual − expected| ≤ tolerance, naming the quantity on failure.
    fn assert_close(actual: Option<f64>, expected: f64, tolerance: f64, quantity: &str) {
        let actual = actual.unwrap_or_else(|| panic!("{quantity}: expected {expected}, got None"));
        assert!(
            (actual - expected).abs() <= tolerance,
            "{quantity}: expected {expected} ± {tolerance}, got {actual}"
        );
    }

    fn assert_undefined(statistic: &Statistic, reason_part: &str) {
        assert_eq!(
            statistic.status,
            Status::Undefined,
            "status of {statistic:?}"
        );
        assert_eq!(statistic.value, None, "value of {statistic:?}");
        let reason = statistic.reason.as_deref().unwrap_or("");
        assert!(
            reason.contains(reason_part),
            "reason {reason:?} should contain {reason_part:?}"
        );
    }

    /// Builds a matrix from one whitespace-separated line per rater, with "." for a
    /// missing rating. Raters are named r0, r1, … and items u0, u1, ….
    fn matrix_from_coder_lines(lines: &[&str]) -> RatingMatrix {
        let mut triples = Vec::new();
        for (rater, line) in lines.iter().enumerate() {
            for (item, label) in line.split_whitespace().enumerate() {
                if label != "." {
                    triples.push((format!("u{item}"), format!("r{rater}"), label.to_string()));
                }
            }
        }
        RatingMatrix::from_long(triples).expect("valid ratings")
    }

    /// Builds a complete matrix from one row of labels per item.
    fn matrix_from_item_rows(rows: &[&[&str]]) -> RatingMatrix {
        let rater_count = rows[0].len();
        let raters = (0..rater_count).map(|r| format!("r{r}")).collect();
        let rows = rows
            .iter()
            .enumerate()
            .map(|(item, labels)| {
                let labels = labels
                    .iter()
                    .map(|label| (*label != ".").then(|| label.to_string()))
                    .collect();
                (format!("u{item}"), labels)
            })
            .collect();
        RatingMatrix::from_wide(raters, rows).expect("valid ratings")
    }

    fn table(rows: &[&[f64]]) -> Vec<Vec<f64>> {
        rows.iter().map(|row| row.to_vec()).collect()
    }

    // --- Cohen's kappa -------------------------------------------------------

    /// 2 × 2 table with κ = 0.40, checked at four and five digits and against the
    /// full-precision output of statsmodels 0.15.0 `cohens_kappa`.
    #[test]
    fn cohen_two_by_two_example() {
        let statistic =
            cohen_kappa_table(&table(&[&[20.0, 5.0], &[10.0, 15.0]]), Weights::Unweighted);

        assert_eq!(statistic.status, Status::Ok);
        assert_close(statistic.value, 0.40, 5e-6, "kappa");
        assert_close(statistic.se, 0.12700, 5e-6, "ASE");
        assert_close(statistic.ci_low, 0.1511, 5e-5, "CI low");
        assert_close(statistic.ci_high, 0.6489, 5e-5, "CI high");
        assert_close(statistic.z, 2.8868, 5e-5, "z");

        assert_close(statistic.se, 0.12699606293110033, 1e-6, "ASE (statsmodels)");
        assert_close(statistic.z, 2.886751345948128, 1e-6, "z (statsmodels)");
        let ase_null = statistic.value.unwrap() / statistic.z.unwrap();
        assert_close(Some(ase_null), 0.13856, 5e-6, "ASE under H0");
    }

    /// 3 × 3 table of the SAS PROC FREQ kappa example, with the SAS printout quoted in
    /// statsmodels 0.15.0 `stats/tests/test_inter_rater.py` (`table10`).
    #[test]
    fn cohen_three_by_three_sas_unweighted() {
        let table10 = table(&[&[0.0, 4.0, 1.0], &[0.0, 8.0, 0.0], &[0.0, 1.0, 5.0]]);
        let statistic = cohen_kappa_table(&table10, Weights::Unweighted);

        assert_close(statistic.value, 0.4842, 5e-5, "kappa");
        assert_close(statistic.se, 0.1380, 5e-5, "ASE");
        assert_close(statistic.ci_low, 0.2137, 5e-5, "CI low");
        assert_close(statistic.ci_high, 0.7547, 5e-5, "CI high");
        assert_close(statistic.z, 3.2626, 5e-5, "z");
        let ase_null = statistic.value.unwrap() / statistic.z.unwrap();
        assert_close(Some(ase_null), 0.1484, 5e-5, "ASE under H0");
    }

    /// Same SAS example with Cicchetti–Allison (linear) weights, from the same
    /// statsmodels test file.
    #[test]
    fn cohen_three_by_three_sas_linear() {
        let table10 = table(&[&[0.0, 4.0, 1.0], &[0.0, 8.0, 0.0], &[0.0, 1.0, 5.0]]);
        let statistic = cohen_kappa_table(&table10, Weights::Linear);

        assert_close(statistic.value, 0.4701, 5e-5, "kappa");
        assert_close(statistic.se, 0.1457, 5e-5, "ASE");
        assert_close(statistic.ci_low, 0.1845, 5e-5, "CI low");
        assert_close(statistic.ci_high, 0.7558, 5e-5, "CI high");
        assert_close(statistic.z, 3.2971, 5e-5, "z");
    }

    /// Quadratic weights on the SAS table; reference values from statsmodels 0.15.0
    /// `cohens_kappa(table10, wt="quadratic")`.
    #[test]
    fn cohen_three_by_three_quadratic() {
        let table10 = table(&[&[0.0, 4.0, 1.0], &[0.0, 8.0, 0.0], &[0.0, 1.0, 5.0]]);
        let statistic = cohen_kappa_table(&table10, Weights::Quadratic);

        assert_close(statistic.value, 0.45016, 5e-6, "kappa (five digits)");
        assert_close(statistic.value, 0.4501607717041801, 1e-6, "kappa");
        assert_close(statistic.se, 0.19223266335726072, 1e-6, "ASE");
        assert_close(statistic.z, 2.3954983257762588, 1e-6, "z");
    }

    /// Random 4 × 4 table (numpy RandomState(20240611), integers 0..11 plus 6 on the
    /// diagonal); reference values from statsmodels 0.15.0 `cohens_kappa`.
    #[test]
    fn cohen_random_table_matches_statsmodels() {
        let random4 = table(&[
            &[8.0, 6.0, 8.0, 5.0],
            &[4.0, 7.0, 10.0, 6.0],
            &[2.0, 2.0, 10.0, 0.0],
            &[3.0, 1.0, 8.0, 13.0],
        ]);
        // (weights, kappa, ASE, z, CI low, CI high) from statsmodels, whose CI uses
        // scipy's norm.ppf(0.975).
        let cases = [
            (
                Weights::Unweighted,
                [
                    0.23128944995491435,
                    0.06287337072708825,
                    4.189264156572239,
                    0.10805990774318644,
                    0.3545189921666423,
                ],
            ),
            (
                Weights::Linear,
                [
                    0.2599023331524688,
                    0.07455101099690012,
                    3.6872955541490287,
                    0.11378503658749503,
                    0.40601962971744254,
                ],
            ),
            (
                Weights::Quadratic,
                [
                    0.2817554061421045,
                    0.09877506041093168,
                    2.8510955890198706,
                    0.08815984516591024,
                    0.4753509671182987,
                ],
            ),
        ];
        for (weights, [kappa, ase, z, ci_low, ci_high]) in cases {
            let statistic = cohen_kappa_table(&random4, weights);
            let label = format!("{weights:?}");
            assert_close(statistic.value, kappa, 1e-6, &format!("{label} kappa"));
            assert_close(statistic.se, ase, 1e-6, &format!("{label} ASE"));
            assert_close(statistic.z, z, 1e-6, &format!("{label} z"));
            // A tighter tolerance here catches a rounded normal quantile such as 1.96.
            assert_close(statistic.ci_low, ci_low, 1e-9, &format!("{label} CI low"));
            assert_close(
                statistic.ci_high,
                ci_high,
                1e-9,
                &format!("{label} CI high"),
            );
        }
    }

    /// Cohen's κ from a matrix must equal κ of the table built by hand from the items
    /// that both raters rated.
    #[test]
    fn cohen_matrix_uses_common_items_only() {
        let matrix = matrix_from_coder_lines(&["a a b b c . a", "a b b b c c ."]);
        let from_matrix = cohen_kappa(&matrix, 0, 1, Weights::Unweighted);
        // Items u0..u4 are rated by both: (a,a) (a,b) (b,b) (b,b) (c,c).
        let by_hand = cohen_kappa_table(
            &table(&[&[1.0, 1.0, 0.0], &[0.0, 2.0, 0.0], &[0.0, 0.0, 1.0]]),
            Weights::Unweighted,
        );
        assert_eq!(from_matrix, by_hand);
        assert!(from_matrix.is_defined());
    }

    #[test]
    fn cohen_no_common_items_undefined() {
        let matrix = matrix_from_coder_lines(&["a b . .", ". . a b"]);
        let statistic = cohen_kappa(&matrix, 0, 1, Weights::Unweighted);
        assert_undefined(&statistic, "no rated items in common");
        assert!(statistic.reason.unwrap().contains("'r0' and 'r1'"));
    }

    #[test]
    fn cohen_invalid_rater_indices_undefined() {
        let matrix = matrix_from_coder_lines(&["a b", "a b"]);
        assert_undefined(
            &cohen_kappa(&matrix, 0, 2, Weights::Unweighted),
            "out of range",
        );
        assert_undefined(
            &cohen_kappa(&matrix, 1, 1, Weights::Unweighted),
            "two different raters",
        );
    }

    #[test]
    fn cohen_table_invalid_input_undefined() {
        let ragged = table(&[&[1.0, 2.0], &[3.0]]);
        assert_undefined(
            &cohen_kappa_table(&ragged, Weights::Unweighted),
            "expected 2",
        );
        let negative = table(&[&[1.0, -2.0], &[3.0, 4.0]]);
        assert_undefined(
            &cohen_kappa_table(&negative, Weights::Unweighted),
            "non-negative",
        );
        let not_a_number = table(&[&[1.0, f64::NAN], &[3.0, 4.0]]);
        assert_undefined(&cohen_kappa_table(&not_a_number, Weights::Linear), "finite");
        let zeros = table(&[&[0.0, 0.0], &[0.0, 0.0]]);
        assert_undefined(
            &cohen_kappa_table(&zeros, Weights::Unweighted),
            "no ratings",
        );
        assert_undefined(&cohen_kappa_table(&[], Weights::Unweighted), "empty");
    }

    /// Perfect agreement over two categories gives κ = 1 with SE 0, which is a valid
    /// result, unlike a single shared category.
    #[test]
    fn cohen_perfect_agreement_is_one() {
        let statistic = cohen_kappa_table(&table(&[&[3.0, 0.0], &[0.0, 2.0]]), Weights::Unweighted);
        assert_close(statistic.value, 1.0, 1e-12, "kappa");
        assert_close(statistic.se, 0.0, 1e-12, "ASE");
        assert!(statistic.z.is_some(), "z should be defined: {statistic:?}");
    }

    /// A constant rater A gives an SE under H0 of zero, so z is left out instead of
    /// being reported as NaN or infinity.
    #[test]
    fn cohen_zero_null_se_omits_z() {
        let statistic = cohen_kappa_table(&table(&[&[5.0, 5.0], &[0.0, 0.0]]), Weights::Unweighted);
        assert_close(statistic.value, 0.0, 1e-12, "kappa");
        assert_eq!(statistic.z, None);
    }

    // --- Fleiss' kappa -------------------------------------------------------

    /// Ten items rated by 14 raters into five categories (Fleiss 1971 style counts):
    /// `table1` of statsmodels 0.15.0 `stats/tests/test_inter_rater.py`, which takes it
    /// from the Wikipedia example of Fleiss' kappa and expects κ = 0.210.
    fn wikipedia_fleiss_counts() -> Vec<Vec<f64>> {
        table(&[
            &[0.0, 0.0, 0.0, 0.0, 14.0],
            &[0.0, 2.0, 6.0, 4.0, 2.0],
            &[0.0, 0.0, 3.0, 5.0, 6.0],
            &[0.0, 3.0, 9.0, 2.0, 0.0],
            &[2.0, 2.0, 8.0, 1.0, 1.0],
            &[7.0, 7.0, 0.0, 0.0, 0.0],
            &[3.0, 2.0, 6.0, 3.0, 0.0],
            &[2.0, 5.0, 3.0, 2.0, 2.0],
            &[6.0, 5.0, 2.0, 1.0, 0.0],
            &[0.0, 2.0, 2.0, 3.0, 7.0],
        ])
    }

    #[test]
    fn fleiss_wikipedia_example() {
        let statistic = fleiss_kappa_counts(&wikipedia_fleiss_counts());
        assert_close(statistic.value, 0.20993, 5e-6, "kappa");
        // Full precision from statsmodels 0.15.0 `fleiss_kappa`.
        assert_close(
            statistic.value,
            0.20993070442195522,
            1e-9,
            "kappa (statsmodels)",
        );
        assert_eq!(statistic.ci_low, None, "no CI from an SE under H0");
        assert_eq!(statistic.ci_high, None, "no CI from an SE under H0");
    }

    /// Fleiss (1971) psychiatric diagnoses: 30 patients, 6 raters, 5 categories. The
    /// table is `diagnoses` from statsmodels 0.15.0 `stats/tests/test_inter_rater.py`,
    /// which also quotes the reference values of R irr `kappam.fleiss` used here:
    /// κ = 0.4302445 and z = 17.65183.
    fn fleiss_1971_diagnoses() -> Vec<[u8; 6]> {
        vec![
            [4, 4, 4, 4, 4, 4],
            [2, 2, 2, 5, 5, 5],
            [2, 3, 3, 3, 3, 5],
            [5, 5, 5, 5, 5, 5],
            [2, 2, 2, 4, 4, 4],
            [1, 1, 3, 3, 3, 3],
            [3, 3, 3, 3, 5, 5],
            [1, 1, 3, 3, 3, 4],
            [1, 1, 4, 4, 4, 4],
            [5, 5, 5, 5, 5, 5],
            [1, 4, 4, 4, 4, 4],
            [1, 2, 4, 4, 4, 4],
            [2, 2, 2, 3, 3, 3],
            [1, 4, 4, 4, 4, 4],
            [2, 2, 4, 4, 4, 5],
            [3, 3, 3, 3, 3, 5],
            [1, 1, 1, 4, 5, 5],
            [1, 1, 1, 1, 1, 2],
            [2, 2, 4, 4, 4, 4],
            [1, 3, 3, 5, 5, 5],
            [5, 5, 5, 5, 5, 5],
            [2, 4, 4, 4, 4, 4],
            [2, 2, 4, 5, 5, 5],
            [1, 1, 4, 4, 4, 4],
            [1, 4, 4, 4, 4, 5],
            [2, 2, 2, 2, 2, 4],
            [1, 1, 1, 1, 5, 5],
            [2, 2, 4, 4, 4, 4],
            [1, 3, 3, 3, 3, 3],
            [5, 5, 5, 5, 5, 5],
        ]
    }

    fn diagnoses_matrix() -> RatingMatrix {
        let raters = (1..=6).map(|r| format!("rater{r}")).collect();
        let rows = fleiss_1971_diagnoses()
            .iter()
            .enumerate()
            .map(|(patient, codes)| {
                let labels = codes.iter().map(|code| Some(code.to_string())).collect();
                (format!("{}", patient + 1), labels)
            })
            .collect();
        RatingMatrix::from_wide(raters, rows).expect("valid diagnoses")
    }

    #[test]
    fn fleiss_diagnoses_matches_irr() {
        let matrix = diagnoses_matrix();
        assert_eq!(matrix.categories(), ["1", "2", "3", "4", "5"]);

        let statistic = fleiss_kappa(&matrix);
        assert_close(statistic.value, 0.4302445, 5e-8, "kappa");
        assert_close(statistic.z, 17.65183, 5e-6, "z");
        assert_close(statistic.se, 0.4302445 / 17.65183, 1e-6, "SE under H0");
    }

    /// Category totals of the diagnoses table, as checked in the statsmodels test of
    /// `aggregate_raters`: [26, 26, 30, 55, 43].
    #[test]
    fn fleiss_diagnoses_category_totals() {
        let matrix = diagnoses_matrix();
        let counts = matrix.category_counts_per_rated_item();
        let totals: Vec<f64> = (0..5)
            .map(|k| counts.iter().map(|row| row[k]).sum())
            .collect();
        assert_eq!(totals, [26.0, 26.0, 30.0, 55.0, 43.0]);
    }

    /// Counts from the matrix and from the count table must give the same statistic.
    #[test]
    fn fleiss_matrix_equals_counts() {
        let matrix = diagnoses_matrix();
        let counts = matrix.category_counts_per_rated_item();
        assert_eq!(fleiss_kappa(&matrix), fleiss_kappa_counts(&counts));
    }

    #[test]
    fn fleiss_varying_ratings_undefined() {
        let matrix = matrix_from_item_rows(&[&["a", "a", "b"], &["b", "b", "."], &["a", "b", "a"]]);
        let statistic = fleiss_kappa(&matrix);
        assert_undefined(
            &statistic,
            "item 'u1' has 2 ratings but the first item has 3",
        );
    }

    /// Fleiss' κ allows different raters per item as long as each item has the same
    /// number of ratings, so this design equals the count table of its ratings.
    #[test]
    fn fleiss_same_count_different_raters() {
        let matrix = matrix_from_item_rows(&[
            &["a", "a", "."],
            &["b", ".", "a"],
            &[".", "b", "b"],
            &["a", ".", "a"],
        ]);
        let counts = table(&[&[2.0, 0.0], &[1.0, 1.0], &[0.0, 2.0], &[2.0, 0.0]]);
        let statistic = fleiss_kappa(&matrix);
        assert!(statistic.is_defined(), "{statistic:?}");
        assert_eq!(statistic, fleiss_kappa_counts(&counts));
    }

    #[test]
    fn fleiss_counts_invalid_input_undefined() {
        let unequal = table(&[&[1.0, 2.0], &[1.0, 1.0]]);
        assert_undefined(&fleiss_kappa_counts(&unequal), "same number of ratings");
        let single = table(&[&[1.0, 0.0], &[0.0, 1.0]]);
        assert_undefined(&fleiss_kappa_counts(&single), "at least two per item");
        let ragged = table(&[&[1.0, 1.0], &[2.0]]);
        assert_undefined(&fleiss_kappa_counts(&ragged), "expected 2");
        assert_undefined(&fleiss_kappa_counts(&[]), "empty");
    }

    #[test]
    fn fleiss_single_rater_undefined() {
        let matrix = matrix_from_coder_lines(&["a b a"]);
        assert_undefined(&fleiss_kappa(&matrix), "at least two raters");
    }

    // --- Krippendorff's alpha ------------------------------------------------

    /// Three coders and 15 units with missing values, a common worked example of
    /// Krippendorff's α (α = 0.691 nominal, 0.811 interval at three digits). All
    /// reference values were reproduced with the Python package krippendorff 0.9.0.
    fn three_coder_alpha_example() -> RatingMatrix {
        matrix_from_coder_lines(&[
            ". . . . . 3 4 1 2 1 1 3 3 . 3",
            "1 . 2 1 3 3 4 3 . . . . . . .",
            ". . 2 1 3 4 4 . 2 1 1 3 3 . 4",
        ])
    }

    #[test]
    fn alpha_three_coder_example_all_levels() {
        let matrix = three_coder_alpha_example();
        assert_close(
            krippendorff_alpha(&matrix, Level::Nominal).value,
            0.691358,
            1e-6,
            "nominal",
        );
        assert_close(
            krippendorff_alpha(&matrix, Level::Interval).value,
            0.810845,
            1e-6,
            "interval",
        );
        // krippendorff 0.9.0, level_of_measurement="ordinal" and "ratio".
        assert_close(
            krippendorff_alpha(&matrix, Level::Ordinal).value,
            0.8067214199413153,
            1e-6,
            "ordinal",
        );
        assert_close(
            krippendorff_alpha(&matrix, Level::Ratio).value,
            0.8089436707842471,
            1e-6,
            "ratio",
        );
    }

    /// Four coders and 12 units: the "C" data of Krippendorff as printed in the R
    /// DescTools documentation of `KrippAlpha`. Reference values from the Python
    /// package krippendorff 0.9.0, which round to 0.743 nominal, 0.815 ordinal, 0.849
    /// interval and 0.797 ratio.
    #[test]
    fn alpha_krippendorff_c_data_all_levels() {
        let matrix = matrix_from_coder_lines(&[
            "1 2 3 3 2 1 4 1 2 . . .",
            "1 2 3 3 2 2 4 1 2 5 . .",
            ". 3 3 3 2 3 4 2 2 5 1 3",
            "1 2 3 3 2 4 4 1 2 5 1 .",
        ]);
        let cases = [
            (Level::Nominal, 0.743, 0.743421052631579),
            (Level::Ordinal, 0.815, 0.8153875037548814),
            (Level::Interval, 0.849, 0.8491071428571428),
            (Level::Ratio, 0.797, 0.7974027747116121),
        ];
        for (level, rounded, full) in cases {
            let value = krippendorff_alpha(&matrix, level).value;
            assert_close(value, rounded, 5e-4, &format!("{level:?} (three digits)"));
            assert_close(
                value,
                full,
                1e-6,
                &format!("{level:?} (krippendorff 0.9.0)"),
            );
        }
    }

    /// Random 4 × 12 data (numpy RandomState(77), values 0..4, about a quarter
    /// missing). The zeros give ratio differences of 1 against any other value.
    /// Reference values from the Python package krippendorff 0.9.0.
    #[test]
    fn alpha_random_data_matches_krippendorff_package() {
        let matrix = matrix_from_coder_lines(&[
            "4 4 3 0 0 1 . 3 0 3 . 4",
            "2 3 3 . . 1 . 4 0 . 1 0",
            "1 . 3 . . . 4 . 4 0 1 3",
            "4 3 2 . 4 . 2 . 2 . 4 4",
        ]);
        let cases = [
            (Level::Nominal, 0.06297229219143574),
            (Level::Ordinal, -0.17353940436946536),
            (Level::Interval, -0.1301338255652975),
            (Level::Ratio, 0.05030657521004056),
        ];
        for (level, expected) in cases {
            let value = krippendorff_alpha(&matrix, level).value;
            assert_close(value, expected, 1e-6, &format!("{level:?}"));
        }
    }

    /// Units with a single rating are not pairable, so adding them, even with a new
    /// label, must leave α unchanged at every level.
    #[test]
    fn alpha_drops_single_rating_units() {
        let base = three_coder_alpha_example();
        let with_singletons = matrix_from_coder_lines(&[
            ". . . . . 3 4 1 2 1 1 3 3 . 3 9 .",
            "1 . 2 1 3 3 4 3 . . . . . . . . 0",
            ". . 2 1 3 4 4 . 2 1 1 3 3 . 4 . .",
        ]);
        assert_eq!(
            with_singletons.categories().len(),
            base.categories().len() + 2
        );
        for level in [
            Level::Nominal,
            Level::Ordinal,
            Level::Interval,
            Level::Ratio,
        ] {
            let expected = krippendorff_alpha(&base, level).value.unwrap();
            let value = krippendorff_alpha(&with_singletons, level).value;
            assert_close(value, expected, 1e-12, &format!("{level:?}"));
        }
    }

    #[test]
    fn alpha_one_pairable_unit_undefined() {
        let matrix = matrix_from_coder_lines(&["1 2 .", "2 . 3"]);
        let statistic = krippendorff_alpha(&matrix, Level::Nominal);
        assert_undefined(&statistic, "1 units have two or more ratings");
    }

    #[test]
    fn alpha_text_labels_interval_ratio_undefined() {
        let matrix = matrix_from_coder_lines(&["low high low", "low high high"]);
        assert!(krippendorff_alpha(&matrix, Level::Nominal).is_defined());
        assert!(krippendorff_alpha(&matrix, Level::Ordinal).is_defined());
        assert_undefined(
            &krippendorff_alpha(&matrix, Level::Interval),
            "interval alpha needs numeric labels",
        );
        assert_undefined(
            &krippendorff_alpha(&matrix, Level::Ratio),
            "label 'high' is not a finite number",
        );
    }

    #[test]
    fn alpha_ratio_negative_values_undefined() {
        let matrix = matrix_from_coder_lines(&["-1 2 3", "1 2 3"]);
        assert!(krippendorff_alpha(&matrix, Level::Interval).is_defined());
        assert_undefined(
            &krippendorff_alpha(&matrix, Level::Ratio),
            "non-negative values",
        );
    }

    // --- One category everywhere ---------------------------------------------

    /// When every rating is the same category, chance agreement is 1 and every
    /// chance-corrected statistic is 0/0: undefined, never 1.
    #[test]
    fn single_category_everything_undefined() {
        let matrix = matrix_from_coder_lines(&["yes yes yes yes", "yes yes yes yes"]);

        assert_undefined(
            &cohen_kappa(&matrix, 0, 1, Weights::Unweighted),
            "expected agreement is 1",
        );
        assert_undefined(
            &cohen_kappa(&matrix, 0, 1, Weights::Quadratic),
            "expected agreement is 1",
        );
        assert_undefined(&fleiss_kappa(&matrix), "every rating is in one category");
        assert_undefined(
            &krippendorff_alpha(&matrix, Level::Nominal),
            "expected disagreement is zero",
        );
        assert_undefined(
            &krippendorff_alpha(&matrix, Level::Ordinal),
            "expected disagreement is zero",
        );
        assert_undefined(&gwet_ac1(&matrix), "at least two categories");
    }

    #[test]
    fn single_numeric_value_alpha_undefined() {
        let matrix = matrix_from_coder_lines(&["2 2 2", "2 2 2", "2 . 2"]);
        for level in [
            Level::Nominal,
            Level::Ordinal,
            Level::Interval,
            Level::Ratio,
        ] {
            assert_undefined(
                &krippendorff_alpha(&matrix, level),
                "expected disagreement is zero",
            );
        }
    }

    // --- Gwet's AC1 ----------------------------------------------------------

    /// Two raters, four items: (a,a) (a,a) (a,b) (b,b). By hand from Gwet's formulas:
    /// p_a = 3/4, π = (5/8, 3/8), p_e = 2 · 5/8 · 3/8 = 15/32, AC1 = (9/32) / (17/32)
    /// = 9/17. The linearized item terms are 337/289 (twice), −271/289 and 209/289, so
    /// Var = 250624 / (289² · 12) = 62656 / 250563. irrCAC 0.4.4 gives the same values
    /// (AC1 0.529411764706, SE 0.500060859233).
    #[test]
    fn ac1_hand_computed_example() {
        let matrix = matrix_from_item_rows(&[&["a", "a"], &["a", "a"], &["a", "b"], &["b", "b"]]);
        let statistic = gwet_ac1(&matrix);
        let se = (62656.0_f64 / 250563.0).sqrt();

        assert_close(statistic.value, 9.0 / 17.0, 1e-12, "AC1");
        assert_close(statistic.se, se, 1e-12, "SE");
        assert_close(statistic.z, (9.0 / 17.0) / se, 1e-12, "z");
        assert_close(statistic.ci_low, 9.0 / 17.0 - Z_95 * se, 1e-12, "CI low");
        assert_close(statistic.ci_high, 9.0 / 17.0 + Z_95 * se, 1e-12, "CI high");
    }

    /// Three raters, ten items with missing ratings, one item with a single rating and
    /// one with none. Reference values from the Python package irrCAC 0.4.4,
    /// `CAC(ratings, digits=12).gwet()`, which drops the unrated item (n = 9, q = 3).
    /// irrCAC's CI uses the t distribution, so only the value, SE and z are compared.
    #[test]
    fn ac1_missing_ratings_matches_irrcac() {
        let matrix = matrix_from_item_rows(&[
            &["a", "a", "b"],
            &["b", "b", "b"],
            &["c", ".", "c"],
            &["a", "b", "."],
            &[".", "c", "."],
            &["b", "b", "a"],
            &["a", "a", "a"],
            &[".", ".", "."],
            &["c", "c", "b"],
            &["a", ".", "a"],
        ]);
        let statistic = gwet_ac1(&matrix);

        assert_close(statistic.value, 0.439518195797, 1e-9, "AC1");
        assert_close(statistic.se, 0.226606079168, 1e-9, "SE");
        assert_close(statistic.z, 1.939569306398, 1e-9, "z");
        let value = statistic.value.unwrap();
        let se = statistic.se.unwrap();
        assert_close(statistic.ci_low, value - Z_95 * se, 1e-12, "CI low");
        assert_close(statistic.ci_high, value + Z_95 * se, 1e-12, "CI high");
    }

    #[test]
    fn ac1_no_multiply_rated_item_undefined() {
        let matrix = matrix_from_coder_lines(&["a . b", ". b ."]);
        assert_undefined(&gwet_ac1(&matrix), "no item has two or more ratings");
    }

    /// With a single rated item the value exists but the SE, which divides by n − 1,
    /// does not.
    #[test]
    fn ac1_single_item_has_no_se() {
        let matrix = matrix_from_item_rows(&[&["a", "b", "a"]]);
        let statistic = gwet_ac1(&matrix);
        assert!(statistic.is_defined(), "{statistic:?}");
        assert_eq!(statistic.se, None);
        assert_eq!(statistic.z, None);
    }

    // --- Rating matrix -------------------------------------------------------

    #[test]
    fn matrix_long_form_first_appearance_order() {
        let matrix = RatingMatrix::from_long([
            ("img-9", "bob", "cat"),
            ("img-2", "alice", "dog"),
            ("img-9", "alice", "cat"),
            ("img-2", "carol", "bird"),
        ])
        .unwrap();

        assert_eq!(matrix.items(), ["img-9", "img-2"]);
        assert_eq!(matrix.raters(), ["bob", "alice", "carol"]);
        assert_eq!(matrix.categories(), ["bird", "cat", "dog"]);
        assert_eq!(matrix.numeric_values(), None);
        assert_eq!(matrix.rating(1, 1), Some("dog"));
        assert_eq!(matrix.rating(1, 0), None);
        assert_eq!(matrix.rating(0, 2), None);
        assert_eq!(matrix.rating(5, 0), None);
    }

    #[test]
    fn matrix_numeric_labels_sorted_by_value() {
        let matrix = RatingMatrix::from_long([
            ("u1", "a", "10"),
            ("u1", "b", "9"),
            ("u2", "a", "-0.5"),
            ("u2", "b", "1e1"),
        ]);
        let error = matrix.unwrap_err();
        assert_eq!(
            error,
            AgreementError::ConflictingNumericLabels {
                first: "10".to_string(),
                second: "1e1".to_string()
            }
        );

        let matrix = RatingMatrix::from_long([
            ("u1", "a", "10"),
            ("u1", "b", "9"),
            ("u2", "a", "-0.5"),
            ("u2", "b", "2"),
        ])
        .unwrap();
        assert_eq!(matrix.categories(), ["-0.5", "2", "9", "10"]);
        assert_eq!(matrix.numeric_values(), Some(&[-0.5, 2.0, 9.0, 10.0][..]));
    }

    /// One text label makes the whole set text, and "NaN" counts as text.
    #[test]
    fn matrix_mixed_labels_sorted_lexicographically() {
        let matrix =
            RatingMatrix::from_long([("u1", "a", "10"), ("u1", "b", "9"), ("u2", "a", "NaN")])
                .unwrap();
        assert_eq!(matrix.categories(), ["10", "9", "NaN"]);
        assert_eq!(matrix.numeric_values(), None);
    }

    #[test]
    fn matrix_duplicate_rating_error() {
        let error = RatingMatrix::from_long([
            ("u1", "alice", "x"),
            ("u1", "bob", "x"),
            ("u1", "alice", "y"),
        ])
        .unwrap_err();
        assert_eq!(
            error,
            AgreementError::DuplicateRating {
                item: "u1".to_string(),
                rater: "alice".to_string()
            }
        );
        let message = error.to_string();
        assert!(message.contains("'u1'"), "{message}");
        assert!(message.contains("'alice'"), "{message}");
    }

    #[test]
    fn matrix_empty_label_error() {
        let error = RatingMatrix::from_long([("u1", "alice", "")]).unwrap_err();
        assert!(
            matches!(error, AgreementError::EmptyLabel { .. }),
            "{error:?}"
        );

        let error = RatingMatrix::from_wide(
            vec!["alice".to_string()],
            vec![("u1".to_string(), vec![Some(String::new())])],
        )
        .unwrap_err();
        assert!(
            matches!(error, AgreementError::EmptyLabel { .. }),
            "{error:?}"
        );
    }

    #[test]
    fn matrix_wide_form_errors() {
        let raters = vec!["alice".to_string(), "bob".to_string()];
        let short_row = vec![("u1".to_string(), vec![Some("x".to_string())])];
        let error = RatingMatrix::from_wide(raters.clone(), short_row).unwrap_err();
        assert_eq!(
            error.to_string(),
            "item 'u1' has 1 entries but the header names 2 raters: \
             give one entry per rater, None for a missing rating"
        );

        let repeated_item = vec![
            ("u1".to_string(), vec![None, None]),
            ("u1".to_string(), vec![None, None]),
        ];
        let error = RatingMatrix::from_wide(raters, repeated_item).unwrap_err();
        assert_eq!(
            error,
            AgreementError::DuplicateItem {
                item: "u1".to_string()
            }
        );

        let repeated_rater = vec!["alice".to_string(), "alice".to_string()];
        let error = RatingMatrix::from_wide(repeated_rater, Vec::new()).unwrap_err();
        assert_eq!(
            error,
            AgreementError::DuplicateRater {
                rater: "alice".to_string()
            }
        );
    }

    /// Long and wide form of the same ratings give the same matrix.
    #[test]
    fn matrix_long_equals_wide() {
        let long =
            RatingMatrix::from_long([("u1", "alice", "2"), ("u1", "bob", "1"), ("u2", "bob", "2")])
                .unwrap();
        let wide = RatingMatrix::from_wide(
            vec!["alice".to_string(), "bob".to_string()],
            vec![
                (
                    "u1".to_string(),
                    vec![Some("2".to_string()), Some("1".to_string())],
                ),
                ("u2".to_string(), vec![None, Some("2".to_string())]),
            ],
        )
        .unwrap();
        assert_eq!(long, wide);
    }

    #[test]
    fn matrix_empty_input_statistics_undefined() {
        let matrix = RatingMatrix::from_long(Vec::<(&str, &str, &str)>::new()).unwrap();
        let report = agreement_report(&matrix);
        assert!(!report.fleiss.is_defined());
        assert!(!report.krippendorff_nominal.is_defined());
        assert!(!report.gwet_ac1.is_defined());
        assert_eq!(report.cohen, None);
    }

    // --- Report and serialization ----------------------------------------------

    #[test]
    fn statistic_undefined_serializes_null_value() {
        let json = serde_json::to_string(&Statistic::undefined("no data")).unwrap();
        assert_eq!(
            json,
            r#"{"value":null,"status":"undefined","reason":"no data"}"#
        );
    }

    #[test]
    fn statistic_defined_serializes_all_fields() {
        let statistic =
            cohen_kappa_table(&table(&[&[20.0, 5.0], &[10.0, 15.0]]), Weights::Unweighted);
        let json = serde_json::to_value(&statistic).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(keys, ["value", "status", "se", "ci_low", "ci_high", "z"]);
        assert_eq!(json["status"], "ok");
    }

    /// Returns the position of each top-level key in the serialized report.
    fn key_positions(json: &str, keys: &[&str]) -> Vec<usize> {
        keys.iter()
            .map(|key| {
                json.find(&format!("\"{key}\":"))
                    .unwrap_or_else(|| panic!("key {key} missing in {json}"))
            })
            .collect()
    }

    #[test]
    fn report_two_raters_keys_in_order() {
        let matrix = matrix_from_coder_lines(&["1 2 3 3 2 1", "1 2 3 2 2 2"]);
        let report = agreement_report(&matrix);
        let json = serde_json::to_string(&report).unwrap();
        let expected = [
            "cohen",
            "cohen_linear",
            "cohen_quadratic",
            "fleiss",
            "krippendorff_nominal",
            "krippendorff_ordinal",
            "krippendorff_interval",
            "krippendorff_ratio",
            "gwet_ac1",
            "items",
            "raters",
            "categories",
        ];

        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        let mut keys: Vec<&str> = value
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        let mut sorted_expected = expected.to_vec();
        sorted_expected.sort_unstable();
        assert_eq!(keys, sorted_expected);

        let positions = key_positions(&json, &expected);
        assert!(
            positions.windows(2).all(|pair| pair[0] < pair[1]),
            "key order in {json}"
        );
        assert_eq!(value["items"], 6);
        assert_eq!(value["raters"], 2);
        assert_eq!(value["categories"], 3);
        assert_eq!(
            report.cohen,
            Some(cohen_kappa(&matrix, 0, 1, Weights::Unweighted))
        );
    }

    #[test]
    fn report_three_raters_omits_cohen() {
        let report = agreement_report(&three_coder_alpha_example());
        let value = serde_json::to_value(&report).unwrap();
        let object = value.as_object().unwrap();
        for key in ["cohen", "cohen_linear", "cohen_quadratic"] {
            assert!(!object.contains_key(key), "{key} should be absent");
        }
        assert_eq!(value["fleiss"]["status"], "undefined");
        assert!(value["fleiss"]["reason"]
            .as_str()
            .unwrap()
            .contains("same number of ratings"));
        assert_close(
            value["krippendorff_nominal"]["value"].as_f64(),
            0.691358,
            1e-6,
            "nominal alpha",
        );
        // Units u1 and u13 have no ratings, so the long-form input never names them.
        assert_eq!(value["items"], 13);
        assert_eq!(value["raters"], 3);
        assert_eq!(value["categories"], 4);
    }

    #[test]
    fn report_text_labels_interval_undefined() {
        let matrix = matrix_from_coder_lines(&["cat dog cat", "cat dog dog"]);
        let value = serde_json::to_value(agreement_report(&matrix)).unwrap();
        assert_eq!(value["krippendorff_interval"]["status"], "undefined");
        assert_eq!(
            value["krippendorff_interval"]["value"],
            serde_json::Value::Null
        );
        assert_eq!(value["krippendorff_ratio"]["status"], "undefined");
        assert_eq!(value["cohen"]["status"], "ok");
    }
}

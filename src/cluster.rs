//! k-means clustering of the embeddings (re-run), and the statistics the report shows about it.
//!
//! The `linfa` backend fits with linfa-clustering 0.8. Its update step is linfa's "m_k-means"
//! variant: each new centroid is the mean of its members together with the old centroid, which
//! keeps empty clusters from collapsing. It stops when successive centroid matrices are closer
//! than `tolerance` under the metric, or after `max_iterations`. For the `cosine` metric the
//! distance is 1 − cos θ; since cosine is scale-invariant this is spherical k-means, and the
//! final centroids are re-normalised to unit length. After the fit every document is assigned
//! again in f64 to its nearest final centroid, and the objective is computed from that assignment.

use linfa::prelude::*;
use linfa_clustering::{KMeans, KMeansInit};
use linfa_nn::distance::{Distance, L2Dist};
use ndarray::{Array2, ArrayView, Dimension};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde::Serialize;
use sha2::{Digest, Sha256};

use crate::config::{Init, Metric};
use crate::dataset::Embeddings;
use crate::error::{Error, Result};

/// Cosine distance 1 − a·b / (|a||b|), at least 0, for linfa; 1 when either vector is zero.
#[derive(Debug, Clone, Copy)]
pub struct CosineDist;

impl Distance<f32> for CosineDist {
    fn distance<D: Dimension>(&self, a: ArrayView<f32, D>, b: ArrayView<f32, D>) -> f32 {
        let (mut dot, mut aa, mut bb) = (0.0f64, 0.0f64, 0.0f64);
        for (x, y) in a.iter().zip(b.iter()) {
            dot += f64::from(*x) * f64::from(*y);
            aa += f64::from(*x) * f64::from(*x);
            bb += f64::from(*y) * f64::from(*y);
        }
        if aa == 0.0 || bb == 0.0 {
            return 1.0;
        }
        // Rounding can push cos θ just above 1; a negative distance would break the k-means++
        // weights, so the result is clamped at 0.
        (1.0 - dot / (aa.sqrt() * bb.sqrt())).max(0.0) as f32
    }
}

/// The parameters of one k-means fit.
#[derive(Debug, Clone, Serialize)]
pub struct KMeansParams {
    pub k: usize,
    pub max_iterations: u64,
    pub tolerance: f64,
    pub seed: u64,
    pub metric: Metric,
    pub init: Init,
    pub n_runs: usize,
    pub backend: &'static str,
    /// The random generator behind the seed, named so the fit can be reproduced elsewhere.
    pub generator: &'static str,
}

/// A fitted clustering with its figures.
#[derive(Debug, Clone, Serialize)]
pub struct Clustering {
    pub params: KMeansParams,
    /// Cluster of each document, in corpus row order.
    #[serde(skip)]
    pub labels: Vec<u32>,
    /// k × d centroids, row-major (unit length for the cosine metric).
    #[serde(skip)]
    pub centroids: Vec<f64>,
    pub sizes: Vec<u64>,
    pub empty_clusters: Vec<u32>,
    /// k · Σ nᵢ² / N²: 1 for equal sizes, k when one cluster contains every document.
    pub imbalance_factor: f64,
    /// Mean cosine distance to the assigned centroid (cosine), or mean squared distance (l2).
    pub objective: f64,
    pub objective_name: &'static str,
}

/// Fits k-means on `embeddings` with linfa-clustering and assigns every document.
pub fn fit(embeddings: &Embeddings, params: &KMeansParams) -> Result<Clustering> {
    let n = embeddings.ids.len();
    let d = embeddings.dimension;
    if params.k > n {
        return Err(Error::input_hint(
            format!("clustering.k = {} is larger than the number of documents ({n})", params.k),
            "choose k at most the number of documents",
        ));
    }
    if params.metric == Metric::Cosine {
        for i in 0..n {
            if embeddings.row(i).iter().all(|&x| x == 0.0) {
                return Err(Error::input_hint(
                    format!("document `{}` (row {i}) has a zero embedding, which has no direction under the cosine metric", embeddings.ids[i]),
                    "remove the document or use metric = \"l2\"",
                ));
            }
        }
    }

    let records = Array2::from_shape_vec((n, d), embeddings.data.clone())
        .map_err(|e| Error::internal(format!("embedding matrix shape ({e})")))?;
    let dataset = DatasetBase::from(records.view());
    let rng = ChaCha20Rng::from_seed(derive_key(params.seed, b"kmeans-linfa"));
    let init = match params.init {
        Init::KMeansPlusPlus => KMeansInit::KMeansPlusPlus,
        Init::Random => KMeansInit::Random,
    };

    let centroids: Array2<f32> = match params.metric {
        Metric::Cosine => KMeans::params_with(params.k, rng, CosineDist)
            .n_runs(params.n_runs)
            .max_n_iterations(params.max_iterations)
            .tolerance(params.tolerance as f32)
            .init_method(init)
            .fit(&dataset)
            .map_err(|e| Error::internal(format!("k-means failed ({e})")))?
            .centroids()
            .clone(),
        Metric::L2 => KMeans::params_with(params.k, rng, L2Dist)
            .n_runs(params.n_runs)
            .max_n_iterations(params.max_iterations)
            .tolerance(params.tolerance as f32)
            .init_method(init)
            .fit(&dataset)
            .map_err(|e| Error::internal(format!("k-means failed ({e})")))?
            .centroids()
            .clone(),
    };

    let mut centroids: Vec<f64> = centroids.iter().map(|&x| f64::from(x)).collect();
    if params.metric == Metric::Cosine {
        for row in centroids.chunks_mut(d) {
            normalize(row);
        }
    }
    let (labels, objective) = assign(embeddings, &centroids, params.k, params.metric);
    Ok(summarize(params.clone(), labels, centroids, objective))
}

/// Builds the figures of a clustering from its labels.
pub fn summarize(params: KMeansParams, labels: Vec<u32>, centroids: Vec<f64>, objective: f64) -> Clustering {
    let k = params.k;
    let mut sizes = vec![0u64; k];
    for &label in &labels {
        sizes[label as usize] += 1;
    }
    let empty_clusters = (0..k as u32).filter(|&c| sizes[c as usize] == 0).collect();
    let objective_name = match params.metric {
        Metric::Cosine => "mean cosine distance",
        Metric::L2 => "mean squared Euclidean distance",
    };
    Clustering {
        imbalance_factor: imbalance_factor(&sizes),
        params,
        labels,
        centroids,
        sizes,
        empty_clusters,
        objective,
        objective_name,
    }
}

/// k · Σ nᵢ² / N² over cluster sizes; 0 for an empty input.
pub fn imbalance_factor(sizes: &[u64]) -> f64 {
    let total: f64 = sizes.iter().map(|&s| s as f64).sum();
    if total == 0.0 {
        return 0.0;
    }
    let squares: f64 = sizes.iter().map(|&s| (s as f64) * (s as f64)).sum();
    sizes.len() as f64 * squares / (total * total)
}

/// Assigns each document to its nearest centroid in f64; ties go to the lower cluster index.
/// Returns the labels and the mean objective (cosine distance or squared distance).
pub fn assign(embeddings: &Embeddings, centroids: &[f64], k: usize, metric: Metric) -> (Vec<u32>, f64) {
    let d = embeddings.dimension;
    let mut labels = Vec::with_capacity(embeddings.ids.len());
    let mut total = 0.0;
    let mut x = vec![0.0f64; d];
    for i in 0..embeddings.ids.len() {
        for (xi, &v) in x.iter_mut().zip(embeddings.row(i)) {
            *xi = f64::from(v);
        }
        if metric == Metric::Cosine {
            normalize(&mut x);
        }
        let mut best = (0u32, f64::INFINITY);
        for c in 0..k {
            let centroid = &centroids[c * d..(c + 1) * d];
            let distance = match metric {
                Metric::Cosine => 1.0 - dot(&x, centroid),
                Metric::L2 => x.iter().zip(centroid).map(|(a, b)| (a - b) * (a - b)).sum(),
            };
            if distance < best.1 {
                best = (c as u32, distance);
            }
        }
        labels.push(best.0);
        total += best.1;
    }
    (labels, total / embeddings.ids.len() as f64)
}

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

fn normalize(v: &mut [f64]) {
    let norm = dot(v, v).sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// SHA-256 of the seed's 8 little-endian bytes followed by `purpose`: the key of a ChaCha20 stream.
pub fn derive_key(seed: u64, purpose: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(purpose);
    hasher.finalize().into()
}

/// Adjusted Rand index between two labelings of the same documents (Hubert and Arabie, 1985).
pub fn adjusted_rand_index(a: &[u32], b: &[u32]) -> f64 {
    use std::collections::BTreeMap;
    let n = a.len() as f64;
    let mut table: BTreeMap<(u32, u32), f64> = BTreeMap::new();
    let mut rows: BTreeMap<u32, f64> = BTreeMap::new();
    let mut cols: BTreeMap<u32, f64> = BTreeMap::new();
    for (&x, &y) in a.iter().zip(b) {
        *table.entry((x, y)).or_default() += 1.0;
        *rows.entry(x).or_default() += 1.0;
        *cols.entry(y).or_default() += 1.0;
    }
    let pairs = |v: f64| v * (v - 1.0) / 2.0;
    let index: f64 = table.values().map(|&v| pairs(v)).sum();
    let row_sum: f64 = rows.values().map(|&v| pairs(v)).sum();
    let col_sum: f64 = cols.values().map(|&v| pairs(v)).sum();
    let expected = row_sum * col_sum / pairs(n);
    let max = (row_sum + col_sum) / 2.0;
    if max == expected {
        return 1.0;
    }
    (index - expected) / (max - expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(k: usize, metric: Metric) -> KMeansParams {
        KMeansParams {
            k,
            max_iterations: 100,
            tolerance: 1e-6,
            seed: 7,
            metric,
            init: Init::KMeansPlusPlus,
            n_runs: 1,
            backend: "linfa",
            generator: "ChaCha20",
        }
    }

    /// Three tight bundles of directions: any sound clustering separates them.
    fn three_bundles() -> Embeddings {
        let axes = [[1.0f32, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]];
        let mut data = Vec::new();
        let mut ids = Vec::new();
        for (a, axis) in axes.iter().enumerate() {
            for j in 0..10 {
                let jitter = 0.01 * j as f32;
                data.extend(axis.iter().map(|&x| x * 5.0 + jitter));
                ids.push(format!("{a}-{j}"));
            }
        }
        Embeddings { ids, dimension: 3, data }
    }

    #[test]
    fn fit_separates_three_bundles() {
        let e = three_bundles();
        let c = fit(&e, &params(3, Metric::Cosine)).unwrap();
        let truth: Vec<u32> = (0..30).map(|i| i / 10).collect();
        assert_eq!(adjusted_rand_index(&c.labels, &truth), 1.0);
        assert_eq!(c.sizes.iter().sum::<u64>(), 30);
        assert!(c.empty_clusters.is_empty());
        assert!((c.imbalance_factor - 1.0).abs() < 1e-12);
        for row in c.centroids.chunks(3) {
            assert!((dot(row, row) - 1.0).abs() < 1e-12, "centroid not unit length");
        }
    }

    #[test]
    fn fit_is_deterministic_for_a_seed() {
        let e = three_bundles();
        let a = fit(&e, &params(4, Metric::Cosine)).unwrap();
        let b = fit(&e, &params(4, Metric::Cosine)).unwrap();
        assert_eq!(a.labels, b.labels);
        assert_eq!(a.centroids, b.centroids);
    }

    #[test]
    fn fit_rejects_k_above_n() {
        let e = three_bundles();
        let error = fit(&e, &params(31, Metric::L2)).unwrap_err().to_string();
        assert!(error.contains("clustering.k = 31"), "{error}");
    }

    #[test]
    fn fit_rejects_zero_vector_under_cosine() {
        let mut e = three_bundles();
        e.data[3..6].copy_from_slice(&[0.0, 0.0, 0.0]);
        let error = fit(&e, &params(3, Metric::Cosine)).unwrap_err().to_string();
        assert!(error.contains("zero embedding"), "{error}");
    }

    #[test]
    fn imbalance_factor_by_hand() {
        // k = 2, sizes 3 and 1: 2 · (9 + 1) / 16 = 1.25.
        assert_eq!(imbalance_factor(&[3, 1]), 1.25);
        assert_eq!(imbalance_factor(&[4, 0]), 2.0);
    }

    #[test]
    fn ari_by_hand() {
        // Identical partitions up to renaming.
        assert_eq!(adjusted_rand_index(&[0, 0, 1, 1], &[1, 1, 0, 0]), 1.0);
        // Hubert and Arabie's index for a = [0,0,0,1,1,1], b = [0,0,1,1,2,2]: index 2,
        // expected (6 · 3) / 15 = 1.2, max 4.5, ARI = 0.8 / 3.3.
        let ari = adjusted_rand_index(&[0, 0, 0, 1, 1, 1], &[0, 0, 1, 1, 2, 2]);
        assert!((ari - 0.8 / 3.3).abs() < 1e-12, "{ari}");
    }
}

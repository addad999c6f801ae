//! Deterministic training-data samplers: `clusterclip-v1` and its baseline `uniform-v1`.
//!
//! `clusterclip-v1` draws a cluster uniformly from the clusters that still have
//! documents to give, then takes that cluster's next document from a shuffled pass
//! over its documents. A document is never drawn more than `clip` times (C) unless the
//! exhaustion policy is `random_fallback`. `uniform-v1` emits shuffled epochs of all
//! documents, the usual random-sampling baseline.
//!
//! Both streams are pure functions of their inputs and give the same output on every
//! platform. The random numbers come from ChaCha20 keyed with
//! SHA-256(seed as 8 little-endian bytes ‖ sampler name), and every integer range
//! uses Lemire's nearly-divisionless method, so another implementation can reproduce
//! a stream exactly. `docs/clusterclip-v1.md` is the normative definition and lists
//! test vectors, and `scripts/clusterclip_reference.py` is an independent reference
//! implementation that generates them.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Name of the cluster-clipped sampler, also used as the key derivation suffix.
pub const CLUSTERCLIP_V1: &str = "clusterclip-v1";

/// Name of the random-sampling baseline, also used as the key derivation suffix.
pub const UNIFORM_V1: &str = "uniform-v1";

/// Maximum number of documents, because document indices are stored as `u32`.
pub const MAX_DOCUMENTS: usize = u32::MAX as usize;

/// Action taken by `clusterclip-v1` when every cluster is exhausted before the
/// requested number of draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExhaustionPolicy {
    /// End the stream early. The stream is shorter than requested and
    /// `Stream::stopped_early` is set.
    #[default]
    Stop,
    /// Draw every remaining document uniformly from the whole corpus, with
    /// replacement. Counts keep growing, so documents can exceed the clip threshold.
    RandomFallback,
    /// Set every count to zero, make every cluster active again and continue.
    ResetCounts,
}

impl ExhaustionPolicy {
    /// All policies, in the order the specification lists them.
    pub const ALL: [ExhaustionPolicy; 3] = [
        ExhaustionPolicy::Stop,
        ExhaustionPolicy::RandomFallback,
        ExhaustionPolicy::ResetCounts,
    ];

    /// Returns the policy name used on the command line and in serialized output.
    pub fn as_str(self) -> &'static str {
        match self {
            ExhaustionPolicy::Stop => "stop",
            ExhaustionPolicy::RandomFallback => "random_fallback",
            ExhaustionPolicy::ResetCounts => "reset_counts",
        }
    }
}

impl fmt::Display for ExhaustionPolicy {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for ExhaustionPolicy {
    type Err = SampleError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        ExhaustionPolicy::ALL
            .into_iter()
            .find(|policy| policy.as_str() == value)
            .ok_or_else(|| SampleError::InvalidPolicy {
                value: value.to_owned(),
            })
    }
}

/// Parameters of a `clusterclip-v1` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClipParams {
    /// Clip threshold C: the maximum number of times a document is drawn
    /// (per round under `reset_counts`, unbounded after a `random_fallback`). At least 1.
    pub clip: u32,
    /// Number of draws T requested. At least 1.
    pub draws: u64,
    /// Seed of the random stream.
    pub seed: u64,
    /// Action taken when every cluster is exhausted before `draws` draws.
    pub policy: ExhaustionPolicy,
}

/// Sampled document indices and the bookkeeping an audit report needs.
///
/// Every step below is a number of draws already emitted, so step `s` lies between
/// `indices[s - 1]` and `indices[s]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stream {
    /// `CLUSTERCLIP_V1` or `UNIFORM_V1`.
    pub sampler: &'static str,
    /// Document indices (corpus row numbers) in draw order.
    pub indices: Vec<u32>,
    /// Count per document at the end of the stream. For `clusterclip-v1` this is the
    /// clip counter r, which `reset_counts` sets back to zero, so under that policy it
    /// covers only the draws since the last reset. `appearance_counts` covers the
    /// whole stream. Counts saturate at `u32::MAX`.
    pub counts: Vec<u32>,
    /// True when the `stop` policy ended the stream before the requested draws.
    pub stopped_early: bool,
    /// Each cluster exhaustion as (label, step after which the cluster left the
    /// active list), in order. Under `reset_counts` a label appears once per round.
    pub exhausted_at: Vec<(u32, u64)>,
    /// Steps at which `reset_counts` set all counts back to zero.
    pub resets: Vec<u64>,
    /// Step at which `random_fallback` took over, if it did.
    pub fallback_from: Option<u64>,
}

impl Stream {
    /// Returns the number of draws in the stream.
    pub fn draws(&self) -> u64 {
        self.indices.len() as u64
    }

    /// Returns (count, number of documents with that count) in ascending count order.
    ///
    /// Count 0 is always present, with 0 documents if every document was drawn. Other
    /// counts appear only when at least one document has them.
    pub fn repetition_histogram(&self) -> Vec<(u32, u64)> {
        let mut histogram = BTreeMap::new();
        histogram.insert(0, 0);
        for &count in &self.counts {
            *histogram.entry(count).or_insert(0) += 1;
        }
        histogram.into_iter().collect()
    }

    /// Returns the largest count, or 0 for an empty corpus.
    pub fn max_count(&self) -> u32 {
        self.counts.iter().copied().max().unwrap_or(0)
    }

    /// Returns the number of documents whose count reached `clip` or more.
    pub fn clipped_documents(&self, clip: u32) -> usize {
        self.counts.iter().filter(|&&count| count >= clip).count()
    }

    /// Returns the number of documents whose count is above `clip`, which only
    /// `random_fallback` can cause in `clusterclip-v1`.
    pub fn documents_over_clip(&self, clip: u32) -> usize {
        self.counts.iter().filter(|&&count| count > clip).count()
    }

    /// Counts how often each document appears in `indices`, over the whole stream.
    ///
    /// This equals `counts` except under `reset_counts`, where `counts` restarts at
    /// every reset. Counts saturate at `u32::MAX`.
    pub fn appearance_counts(&self) -> Vec<u32> {
        let mut appearances = vec![0u32; self.counts.len()];
        for &index in &self.indices {
            let slot = &mut appearances[index as usize];
            *slot = slot.saturating_add(1);
        }
        appearances
    }
}

/// Invalid sampler input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SampleError {
    /// The clip threshold is below 1.
    ClipBelowOne { clip: u32 },
    /// Zero draws were requested.
    ZeroDraws,
    /// The corpus has no documents.
    NoDocuments,
    /// The corpus has more documents than a `u32` index can address.
    TooManyDocuments { documents: usize },
    /// Memory for the index list of a stream this long could not be reserved.
    TooManyDraws { draws: u64 },
    /// The text is not the name of an exhaustion policy.
    InvalidPolicy { value: String },
}

impl fmt::Display for SampleError {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SampleError::ClipBelowOne { clip } => write!(
                formatter,
                "invalid clip threshold {clip}: it must be at least 1"
            ),
            SampleError::ZeroDraws => write!(
                formatter,
                "invalid number of draws 0: request at least 1 draw"
            ),
            SampleError::NoDocuments => write!(
                formatter,
                "no documents to sample: the corpus has 0 documents, give at least one"
            ),
            SampleError::TooManyDocuments { documents } => write!(
                formatter,
                "too many documents: {documents} exceeds the limit of {MAX_DOCUMENTS} \
                 because document indices are 32-bit, split the corpus into smaller parts"
            ),
            SampleError::TooManyDraws { draws } => write!(
                formatter,
                "too many draws: memory for {draws} document indices ({} bytes) could not \
                 be reserved, request fewer draws",
                u128::from(*draws) * 4
            ),
            SampleError::InvalidPolicy { value } => write!(
                formatter,
                "invalid exhaustion policy {value:?}: expected stop, random_fallback or \
                 reset_counts"
            ),
        }
    }
}

impl std::error::Error for SampleError {}

/// Samples `params.draws` documents with `clusterclip-v1`.
///
/// `labels` contains one cluster label per document in corpus row order, so document
/// `i` has label `labels[i]`. Labels need not be contiguous. Returns an error for
/// `clip < 1`, zero draws, an empty corpus, more than `MAX_DOCUMENTS` documents or an
/// index list that cannot be allocated.
pub fn clusterclip_v1(labels: &[u32], params: &ClipParams) -> Result<Stream, SampleError> {
    if params.clip < 1 {
        return Err(SampleError::ClipBelowOne { clip: params.clip });
    }
    validate_corpus(labels.len(), params.draws)?;

    // Without a fallback or reset, every document can give at most C draws.
    let capacity = u64::from(params.clip) * labels.len() as u64;
    let stream_len = match params.policy {
        ExhaustionPolicy::Stop => params.draws.min(capacity),
        ExhaustionPolicy::RandomFallback | ExhaustionPolicy::ResetCounts => params.draws,
    };
    let mut indices = allocate_indices(stream_len)?;

    let clusters = ClusterIndex::build(labels);
    let mut sampler = ClipSampler::new(&clusters, params.clip);
    let mut source = RandomSource::new(params.seed, CLUSTERCLIP_V1);
    let mut stopped_early = false;
    let mut exhausted_at = Vec::new();
    let mut resets = Vec::new();
    let mut fallback_from = None;

    while (indices.len() as u64) < params.draws {
        if sampler.active.is_empty() {
            let step = indices.len() as u64;
            match params.policy {
                ExhaustionPolicy::Stop => {
                    stopped_early = true;
                    break;
                }
                ExhaustionPolicy::RandomFallback => {
                    fallback_from = Some(step);
                    sampler.draw_uniformly(&mut source, params.draws, &mut indices);
                    break;
                }
                ExhaustionPolicy::ResetCounts => {
                    resets.push(step);
                    sampler.reset();
                    continue;
                }
            }
        }

        let draw = sampler.draw(&mut source);
        indices.push(draw.document);
        if let Some(cluster) = draw.exhausted_cluster {
            exhausted_at.push((clusters.labels[cluster], indices.len() as u64));
        }
    }

    Ok(Stream {
        sampler: CLUSTERCLIP_V1,
        indices,
        counts: sampler.counts,
        stopped_early,
        exhausted_at,
        resets,
        fallback_from,
    })
}

/// Samples `draws` documents with `uniform-v1`, the random-sampling baseline.
///
/// Each epoch is the list 0..documents shuffled afresh (not the previous epoch
/// reshuffled). Epochs follow one another until `draws` indices are emitted, and the
/// last epoch is cut short. Returns an error for zero draws, zero documents, more than
/// `MAX_DOCUMENTS` documents or an index list that cannot be allocated.
pub fn uniform_v1(documents: usize, draws: u64, seed: u64) -> Result<Stream, SampleError> {
    validate_corpus(documents, draws)?;
    let mut indices = allocate_indices(draws)?;

    let mut source = RandomSource::new(seed, UNIFORM_V1);
    let epoch_len = documents as u32;
    let mut epoch: Vec<u32> = Vec::with_capacity(documents);
    while (indices.len() as u64) < draws {
        epoch.clear();
        epoch.extend(0..epoch_len);
        source.shuffle(&mut epoch);

        let remaining = draws - indices.len() as u64;
        let take = remaining.min(documents as u64) as usize;
        indices.extend_from_slice(&epoch[..take]);
    }

    let mut counts = vec![0u32; documents];
    for &index in &indices {
        let slot = &mut counts[index as usize];
        *slot = slot.saturating_add(1);
    }

    Ok(Stream {
        sampler: UNIFORM_V1,
        indices,
        counts,
        stopped_early: false,
        exhausted_at: Vec::new(),
        resets: Vec::new(),
        fallback_from: None,
    })
}

fn validate_corpus(documents: usize, draws: u64) -> Result<(), SampleError> {
    if draws == 0 {
        return Err(SampleError::ZeroDraws);
    }
    if documents == 0 {
        return Err(SampleError::NoDocuments);
    }
    if documents > MAX_DOCUMENTS {
        return Err(SampleError::TooManyDocuments { documents });
    }
    Ok(())
}

/// Reserves the whole index list up front, so that an impossible length fails with
/// an error instead of aborting halfway through the stream.
///
/// NOTE: where the operating system overcommits memory, the reservation can succeed
/// and the process can still run out of memory while the list fills.
fn allocate_indices(len: u64) -> Result<Vec<u32>, SampleError> {
    let too_many = SampleError::TooManyDraws { draws: len };
    let len = usize::try_from(len).map_err(|_| too_many.clone())?;
    let mut indices = Vec::new();
    indices.try_reserve_exact(len).map_err(|_| too_many)?;
    Ok(indices)
}

// ---------------------------------------------------------------------------
// Random stream
// ---------------------------------------------------------------------------

/// Returns SHA-256(seed as 8 little-endian bytes ‖ ASCII sampler name), the ChaCha20 key.
fn derive_key(seed: u64, sampler: &str) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(seed.to_le_bytes());
    hasher.update(sampler.as_bytes());
    hasher.finalize().into()
}

/// ChaCha20 keystream with nonce zero and block counter from zero, read as
/// little-endian u64 values.
struct RandomSource {
    rng: ChaCha20Rng,
}

impl RandomSource {
    fn new(seed: u64, sampler: &str) -> Self {
        RandomSource {
            rng: ChaCha20Rng::from_seed(derive_key(seed, sampler)),
        }
    }

    /// Returns a uniform integer in `[0, n)`. Consumes at least one u64, even for n = 1.
    fn bounded(&mut self, n: u64) -> u64 {
        bounded(n, || self.rng.next_u64())
    }

    /// Shuffles `items` in place: for i from len − 1 down to 1, swap items[i] with
    /// items[bounded(i + 1)].
    fn shuffle(&mut self, items: &mut [u32]) {
        for i in (1..items.len()).rev() {
            let j = self.bounded(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

/// Returns a uniform integer in `[0, n)` by Lemire's nearly-divisionless method,
/// taking 64-bit random values from `next_u64`.
///
/// The result is the high half of the 128-bit product x·n. A low half below
/// (2^64 − n) mod n would make some results more likely, so such an x is rejected and
/// another one is drawn. The threshold needs a division, which happens only when the
/// low half is below n. This is not the method of `rand`'s `random_range`.
///
/// Panics if `n` is 0.
fn bounded(n: u64, mut next_u64: impl FnMut() -> u64) -> u64 {
    assert!(n > 0, "bounded() needs a non-empty range, got n = 0");
    let mut product = u128::from(next_u64()) * u128::from(n);
    let mut low = product as u64;
    if low < n {
        let threshold = n.wrapping_neg() % n;
        while low < threshold {
            product = u128::from(next_u64()) * u128::from(n);
            low = product as u64;
        }
    }
    (product >> 64) as u64
}

// ---------------------------------------------------------------------------
// Cluster bookkeeping
// ---------------------------------------------------------------------------

/// Documents grouped by cluster in compressed sparse row layout.
///
/// Cluster `c` (its rank among the distinct labels) has label `labels[c]` and
/// documents `members[offsets[c]..offsets[c + 1]]` in ascending index order.
struct ClusterIndex {
    labels: Vec<u32>,
    offsets: Vec<u32>,
    members: Vec<u32>,
}

impl ClusterIndex {
    /// Groups documents by label with a counting sort. Needs `labels.len() <= MAX_DOCUMENTS`.
    fn build(labels: &[u32]) -> Self {
        let mut distinct = labels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        distinct.shrink_to_fit();

        let cluster_of: Vec<u32> = labels
            .iter()
            .map(|label| {
                let rank = distinct.binary_search(label);
                rank.expect("every label is in the distinct list") as u32
            })
            .collect();

        let mut offsets = vec![0u32; distinct.len() + 1];
        for &cluster in &cluster_of {
            offsets[cluster as usize + 1] += 1;
        }
        for c in 0..distinct.len() {
            offsets[c + 1] += offsets[c];
        }

        // Documents are placed in index order, so each cluster's slice is ascending.
        let mut next_slot = offsets[..distinct.len()].to_vec();
        let mut members = vec![0u32; labels.len()];
        for (document, &cluster) in cluster_of.iter().enumerate() {
            let slot = &mut next_slot[cluster as usize];
            members[*slot as usize] = document as u32;
            *slot += 1;
        }

        ClusterIndex {
            labels: distinct,
            offsets,
            members,
        }
    }

    fn len(&self) -> usize {
        self.labels.len()
    }

    fn range(&self, cluster: usize) -> Range<usize> {
        self.offsets[cluster] as usize..self.offsets[cluster + 1] as usize
    }
}

/// Active clusters in ascending label order: one bit per cluster rank, plus a Fenwick
/// tree over the number of set bits in each 64-bit word.
///
/// Selecting the k-th active cluster and removing one both take O(log K) time, where
/// a plain vector would need O(K) per removal. The bitmap and the tree take about
/// K/8 + K/16 bytes, so they stay in cache far longer than a tree with a node per
/// cluster.
struct ActiveClusters {
    clusters: usize,
    /// Bit `c % 64` of `words[c / 64]` is set while cluster `c` is active.
    words: Vec<u64>,
    /// 1-based Fenwick tree: `tree[i]` counts the set bits of words
    /// `i − lowbit(i) .. i` (0-based, end exclusive).
    tree: Vec<u32>,
    len: usize,
    /// Largest power of two not above the number of words.
    top_step: usize,
}

impl ActiveClusters {
    fn new(clusters: usize) -> Self {
        let word_count = clusters.div_ceil(64);
        let top_step = if word_count == 0 {
            0
        } else {
            1 << (usize::BITS - 1 - word_count.leading_zeros())
        };
        let mut active = ActiveClusters {
            clusters,
            words: vec![0; word_count],
            tree: vec![0; word_count + 1],
            len: 0,
            top_step,
        };
        active.reset();
        active
    }

    /// Makes every cluster active again.
    fn reset(&mut self) {
        self.words.fill(u64::MAX);
        let tail_bits = self.clusters % 64;
        if tail_bits != 0 {
            if let Some(last) = self.words.last_mut() {
                *last = (1u64 << tail_bits) - 1;
            }
        }

        // Linear-time Fenwick build: each node passes its total on to its parent.
        for (word, node) in self.words.iter().zip(self.tree.iter_mut().skip(1)) {
            *node = word.count_ones();
        }
        for node in 1..self.tree.len() {
            let parent = node + (node & node.wrapping_neg());
            if parent < self.tree.len() {
                self.tree[parent] += self.tree[node];
            }
        }
        self.len = self.clusters;
    }

    fn len(&self) -> usize {
        self.len
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Returns the rank of the active cluster at position `position` (0-based) in the
    /// active list. Needs `position < self.len()`.
    fn select(&self, position: usize) -> usize {
        debug_assert!(position < self.len);
        let mut node = 0;
        let mut remaining = position as u32;
        let mut step = self.top_step;
        while step > 0 {
            let next = node + step;
            if next < self.tree.len() && self.tree[next] <= remaining {
                node = next;
                remaining -= self.tree[next];
            }
            step >>= 1;
        }
        // Words 0..node hold at most `position` active clusters, so the cluster wanted
        // is set bit number `remaining` of word `node`.
        node * 64 + select_bit(self.words[node], remaining)
    }

    /// Removes the cluster of rank `cluster`, which must be active.
    fn remove(&mut self, cluster: usize) {
        let word = cluster / 64;
        let bit = 1u64 << (cluster % 64);
        debug_assert!(
            self.words[word] & bit != 0,
            "cluster {cluster} is not active"
        );
        self.words[word] &= !bit;

        let mut node = word + 1;
        while node < self.tree.len() {
            self.tree[node] -= 1;
            node += node & node.wrapping_neg();
        }
        self.len -= 1;
    }
}

/// Returns the position of set bit number `rank` (0-based, from the least significant
/// end) in `word`, by halving the search range with popcounts. Needs
/// `rank < word.count_ones()`.
fn select_bit(word: u64, rank: u32) -> usize {
    debug_assert!(rank < word.count_ones());
    let mut word = word;
    let mut rank = rank;
    let mut position = 0;
    for width in [32, 16, 8, 4, 2, 1] {
        let low_ones = (word & ((1u64 << width) - 1)).count_ones();
        if rank >= low_ones {
            rank -= low_ones;
            word >>= width;
            position += width;
        }
    }
    position
}

/// One `clusterclip-v1` draw: the document emitted and the cluster that left the
/// active list because of it, if any.
struct Draw {
    document: u32,
    exhausted_cluster: Option<usize>,
}

/// Per-cluster state of a `clusterclip-v1` stream, kept together so that a draw
/// touches one cache line for its cluster.
#[derive(Clone, Copy)]
struct ClusterState {
    /// Slot in `ClipSampler::pass_order` of the next document of the current pass.
    pass_next: u32,
    /// End (exclusive) of the current pass in `ClipSampler::pass_order`. The pass is
    /// empty when it equals `pass_next`.
    pass_end: u32,
    /// Number of documents of the cluster whose count is still below the clip threshold.
    unclipped: u32,
}

/// Mutable state of a `clusterclip-v1` stream.
///
/// The current pass of cluster `c` lives inside the cluster's own CSR slice of
/// `pass_order`, because a pass never has more than the cluster's documents, so all
/// passes together take N slots.
struct ClipSampler<'a> {
    clusters: &'a ClusterIndex,
    clip: u32,
    /// Clip counter r per document.
    counts: Vec<u32>,
    pass_order: Vec<u32>,
    states: Vec<ClusterState>,
    active: ActiveClusters,
}

impl<'a> ClipSampler<'a> {
    fn new(clusters: &'a ClusterIndex, clip: u32) -> Self {
        let documents = clusters.members.len();
        let empty = ClusterState {
            pass_next: 0,
            pass_end: 0,
            unclipped: 0,
        };
        let mut sampler = ClipSampler {
            clusters,
            clip,
            counts: vec![0; documents],
            pass_order: vec![0; documents],
            states: vec![empty; clusters.len()],
            active: ActiveClusters::new(clusters.len()),
        };
        sampler.reset();
        sampler
    }

    /// Sets every count to zero, empties every pass and makes every cluster active.
    fn reset(&mut self) {
        self.counts.fill(0);
        for (cluster, state) in self.states.iter_mut().enumerate() {
            let range = self.clusters.range(cluster);
            *state = ClusterState {
                pass_next: range.start as u32,
                pass_end: range.start as u32,
                unclipped: range.len() as u32,
            };
        }
        self.active.reset();
    }

    /// Draws one document. Needs at least one active cluster.
    fn draw(&mut self, source: &mut RandomSource) -> Draw {
        let position = source.bounded(self.active.len() as u64) as usize;
        let cluster = self.active.select(position);
        let state = self.states[cluster];
        if state.pass_next == state.pass_end {
            self.start_pass(cluster, source);
        }

        let state = &mut self.states[cluster];
        let document = self.pass_order[state.pass_next as usize];
        state.pass_next += 1;

        let count = &mut self.counts[document as usize];
        *count += 1;
        if *count == self.clip {
            state.unclipped -= 1;
        }

        let mut exhausted_cluster = None;
        if state.pass_next == state.pass_end && state.unclipped == 0 {
            self.active.remove(cluster);
            exhausted_cluster = Some(cluster);
        }
        Draw {
            document,
            exhausted_cluster,
        }
    }

    /// Fills the cluster's pass with its documents whose count is below `clip`, in
    /// ascending index order, then shuffles it.
    ///
    /// Each pass emits every document of its cluster once, so all documents of a
    /// cluster have the same count when a new pass starts. The filter therefore keeps
    /// all of them (it is kept to follow the definition literally), and the pass is
    /// never empty because a cluster whose documents all reached `clip` is inactive.
    fn start_pass(&mut self, cluster: usize, source: &mut RandomSource) {
        let range = self.clusters.range(cluster);
        let cluster_size = range.len();
        let start = range.start;
        let mut end = start;
        for &document in &self.clusters.members[range] {
            if self.counts[document as usize] < self.clip {
                self.pass_order[end] = document;
                end += 1;
            }
        }
        debug_assert_eq!(end - start, cluster_size, "a pass left out documents");

        source.shuffle(&mut self.pass_order[start..end]);
        let state = &mut self.states[cluster];
        state.pass_next = start as u32;
        state.pass_end = end as u32;
    }

    /// Appends documents drawn uniformly with replacement until `indices` has `draws`
    /// entries. Counts keep growing past `clip` and saturate at `u32::MAX`.
    fn draw_uniformly(&mut self, source: &mut RandomSource, draws: u64, indices: &mut Vec<u32>) {
        let documents = self.counts.len() as u64;
        while (indices.len() as u64) < draws {
            let document = source.bounded(documents) as u32;
            let count = &mut self.counts[document as usize];
            *count = count.saturating_add(1);
            indices.push(document);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::collections::VecDeque;

    /// Test vectors written by `scripts/clusterclip_reference.py --json tests/vectors.json`.
    const VECTORS_JSON: &str = include_str!("../tests/clusterclip_vectors.json");

    #[derive(Deserialize)]
    struct Vectors {
        keystreams: Vec<KeystreamVector>,
        bounded: Vec<BoundedVector>,
        cases: Vec<CaseVector>,
    }

    #[derive(Deserialize)]
    struct KeystreamVector {
        seed: u64,
        domain: String,
        key_hex: String,
        first_u64: Vec<u64>,
    }

    #[derive(Deserialize)]
    struct BoundedVector {
        seed: u64,
        domain: String,
        n: u64,
        outputs: Vec<u64>,
        next_u64_after: u64,
    }

    #[derive(Deserialize)]
    struct CaseVector {
        name: String,
        sampler: String,
        labels: Option<Vec<u32>>,
        clip: Option<u32>,
        policy: Option<ExhaustionPolicy>,
        documents: Option<usize>,
        draws: u64,
        seed: u64,
        expected: ExpectedStream,
    }

    #[derive(Deserialize)]
    struct ExpectedStream {
        sampler: String,
        indices: Vec<u32>,
        counts: Vec<u32>,
        stopped_early: bool,
        exhausted_at: Vec<(u32, u64)>,
        resets: Vec<u64>,
        fallback_from: Option<u64>,
    }

    fn load_vectors() -> Vectors {
        serde_json::from_str(VECTORS_JSON).expect("tests/vectors.json is valid")
    }

    fn run_case(case: &CaseVector) -> Stream {
        match case.sampler.as_str() {
            CLUSTERCLIP_V1 => {
                let labels = case.labels.as_ref().expect("clusterclip case has labels");
                let params = ClipParams {
                    clip: case.clip.expect("clusterclip case has clip"),
                    draws: case.draws,
                    seed: case.seed,
                    policy: case.policy.expect("clusterclip case has policy"),
                };
                clusterclip_v1(labels, &params).expect("vector inputs are valid")
            }
            UNIFORM_V1 => {
                let documents = case.documents.expect("uniform case has documents");
                uniform_v1(documents, case.draws, case.seed).expect("vector inputs are valid")
            }
            other => panic!("case {}: unknown sampler {other:?}", case.name),
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|byte| format!("{byte:02x}")).collect()
    }

    fn params(clip: u32, draws: u64, seed: u64, policy: ExhaustionPolicy) -> ClipParams {
        ClipParams {
            clip,
            draws,
            seed,
            policy,
        }
    }

    /// Returns a fixed sequence as a `next_u64` closure and records how many values were read.
    fn scripted(
        values: &[u64],
    ) -> (
        impl FnMut() -> u64 + '_,
        std::rc::Rc<std::cell::Cell<usize>>,
    ) {
        let consumed = std::rc::Rc::new(std::cell::Cell::new(0));
        let counter = consumed.clone();
        let next = move || {
            let index = counter.get();
            counter.set(index + 1);
            values[index]
        };
        (next, consumed)
    }

    /// Labels of sizes 1, 2, 4, 7 and 11 under non-contiguous labels, interleaved.
    fn uneven_labels() -> Vec<u32> {
        let sizes = [(40u32, 1usize), (3, 2), (17, 4), (9, 7), (25, 11)];
        let mut labels = Vec::new();
        let mut remaining: Vec<(u32, usize)> = sizes.to_vec();
        while remaining.iter().any(|&(_, left)| left > 0) {
            for (label, left) in remaining.iter_mut() {
                if *left > 0 {
                    labels.push(*label);
                    *left -= 1;
                }
            }
        }
        labels
    }

    // --- Agreement with the Python reference -------------------------------

    #[test]
    fn keystream_matches_vectors() {
        let vectors = load_vectors();
        assert!(vectors.keystreams.len() >= 2);
        for vector in &vectors.keystreams {
            let key = derive_key(vector.seed, &vector.domain);
            assert_eq!(
                hex(&key),
                vector.key_hex,
                "key for seed {} {}",
                vector.seed,
                vector.domain
            );

            let mut rng = ChaCha20Rng::from_seed(key);
            let first: Vec<u64> = (0..vector.first_u64.len())
                .map(|_| rng.next_u64())
                .collect();
            assert_eq!(
                first, vector.first_u64,
                "u64 values for seed {} {}",
                vector.seed, vector.domain
            );
        }
        let seeds: Vec<u64> = vectors
            .keystreams
            .iter()
            .map(|vector| vector.seed)
            .collect();
        assert!(seeds.contains(&0), "no keystream vector for seed 0");
        assert!(seeds.contains(&42), "no keystream vector for seed 42");
    }

    #[test]
    fn bounded_matches_vectors() {
        let vectors = load_vectors();
        assert!(!vectors.bounded.is_empty());
        for vector in &vectors.bounded {
            let mut source = RandomSource::new(vector.seed, &vector.domain);
            let outputs: Vec<u64> = (0..vector.outputs.len())
                .map(|_| source.bounded(vector.n))
                .collect();
            assert_eq!(
                outputs, vector.outputs,
                "bounded({}) for seed {}",
                vector.n, vector.seed
            );
            assert_eq!(
                source.rng.next_u64(),
                vector.next_u64_after,
                "values consumed by bounded({}) for seed {}",
                vector.n,
                vector.seed
            );
        }
    }

    #[test]
    fn streams_match_vectors() {
        let vectors = load_vectors();
        for case in &vectors.cases {
            let stream = run_case(case);
            let expected = &case.expected;
            let name = &case.name;
            assert_eq!(stream.sampler, expected.sampler, "case {name}: sampler");
            assert_eq!(stream.indices, expected.indices, "case {name}: indices");
            assert_eq!(stream.counts, expected.counts, "case {name}: counts");
            assert_eq!(
                stream.stopped_early, expected.stopped_early,
                "case {name}: stopped_early"
            );
            assert_eq!(
                stream.exhausted_at, expected.exhausted_at,
                "case {name}: exhausted_at"
            );
            assert_eq!(stream.resets, expected.resets, "case {name}: resets");
            assert_eq!(
                stream.fallback_from, expected.fallback_from,
                "case {name}: fallback_from"
            );
        }
    }

    #[test]
    fn vectors_cover_required_cases() {
        let vectors = load_vectors();
        let clusterclip: Vec<&CaseVector> = vectors
            .cases
            .iter()
            .filter(|case| case.sampler == CLUSTERCLIP_V1)
            .collect();
        let uniform: Vec<&CaseVector> = vectors
            .cases
            .iter()
            .filter(|case| case.sampler == UNIFORM_V1)
            .collect();
        assert!(vectors.cases.len() >= 8, "fewer than 8 cases");

        for seed in [0, 1, 42, u64::MAX] {
            assert!(
                vectors.cases.iter().any(|case| case.seed == seed),
                "no case with seed {seed}"
            );
        }
        for clip in [1, 2, 3] {
            assert!(
                clusterclip.iter().any(|case| case.clip == Some(clip)),
                "no case with clip {clip}"
            );
        }
        for policy in ExhaustionPolicy::ALL {
            assert!(
                clusterclip.iter().any(|case| case.policy == Some(policy)),
                "no case with {policy}"
            );
        }

        let over_capacity = clusterclip.iter().any(|case| {
            let documents = case.labels.as_ref().unwrap().len() as u64;
            case.draws > u64::from(case.clip.unwrap()) * documents
        });
        assert!(over_capacity, "no case asks for more draws than C·N");

        let singleton_and_seven = clusterclip.iter().any(|case| {
            let labels = case.labels.as_ref().unwrap();
            let size = |label: u32| labels.iter().filter(|&&l| l == label).count();
            labels.iter().any(|&l| size(l) == 1) && labels.iter().any(|&l| size(l) == 7)
        });
        assert!(
            singleton_and_seven,
            "no case with clusters of 1 and 7 documents"
        );

        let non_contiguous = clusterclip.iter().any(|case| {
            let labels = case.labels.as_ref().unwrap();
            [3, 10, 11].iter().all(|label| labels.contains(label)) && !labels.contains(&0)
        });
        assert!(non_contiguous, "no case with labels 3, 10 and 11");

        let multi_epoch = uniform
            .iter()
            .any(|case| case.draws > 2 * case.documents.unwrap() as u64);
        assert!(multi_epoch, "no uniform-v1 case spans more than two epochs");
    }

    // --- Random stream and bounded -----------------------------------------

    #[test]
    fn chacha20_matches_rfc8439_block_vector() {
        // RFC 8439, section 2.3.2: key 00..1f, block counter 1 and nonce
        // 00:00:00:09:00:00:00:4a:00:00:00:00. rand_chacha keeps a 64-bit counter in
        // state words 12 and 13 and a 64-bit stream id in words 14 and 15, so the RFC
        // nonce word 13 becomes the counter's high half and word 14 the stream id.
        let key: [u8; 32] = std::array::from_fn(|i| i as u8);
        let mut rng = ChaCha20Rng::from_seed(key);
        rng.set_stream(0x4a00_0000);
        rng.set_word_pos(u128::from(1u64 | (0x0900_0000u64 << 32)) * 16);
        let expected: [u32; 16] = [
            0xe4e7f110, 0x15593bd1, 0x1fdd0f50, 0xc47120a3, 0xc7f4d1c7, 0x0368c033, 0x9aaa2204,
            0x4e6cd4c3, 0x466482d2, 0x09aa9f07, 0x05d7c214, 0xa2028bd9, 0xd19c12b5, 0xb94e16de,
            0xe883d0cb, 0x4e3c50a2,
        ];
        let block: Vec<u32> = (0..16).map(|_| rng.next_u32()).collect();
        assert_eq!(block, expected);
    }

    #[test]
    fn key_depends_on_sampler_name() {
        assert_ne!(derive_key(0, CLUSTERCLIP_V1), derive_key(0, UNIFORM_V1));
        assert_ne!(derive_key(0, CLUSTERCLIP_V1), derive_key(1, CLUSTERCLIP_V1));
    }

    #[test]
    fn bounded_of_one_is_zero() {
        for x in [0, 1, 1 << 63, u64::MAX] {
            let values = [x, 99];
            let (next, consumed) = scripted(&values);
            assert_eq!(bounded(1, next), 0, "x = {x}");
            assert_eq!(consumed.get(), 1, "x = {x} consumed a second value");
        }
    }

    #[test]
    fn bounded_rejects_biased_low_half() {
        // n = 3: 2^64 mod 3 = 1, so the threshold (2^64 − 3) mod 3 is 1, and only
        // x = 0 (low half 0) is rejected. x = 2^63 gives 3·2^63 = 2^64 + 2^63, so 1.
        let values = [0, 1 << 63];
        let (next, consumed) = scripted(&values);
        assert_eq!(bounded(3, next), 1);
        assert_eq!(consumed.get(), 2);

        let values = [0, 0, 5];
        let (next, consumed) = scripted(&values);
        assert_eq!(bounded(3, next), 0);
        assert_eq!(consumed.get(), 3);
    }

    #[test]
    fn bounded_accepts_low_half_above_threshold() {
        // x = (2^64 + 2) / 3 gives 3x = 2^64 + 2: low half 2 is below n = 3, so the
        // threshold is computed, but 2 is not below the threshold 1.
        let x: u64 = 6_148_914_691_236_517_206;
        assert_eq!(x.wrapping_mul(3), 2);
        let values = [x, 7];
        let (next, consumed) = scripted(&values);
        assert_eq!(bounded(3, next), 1);
        assert_eq!(consumed.get(), 1);

        // x = (2^65 + 1) / 3 gives 3x = 2^65 + 1: low half 1 equals the threshold,
        // and only values strictly below it are rejected.
        let x: u64 = 12_297_829_382_473_034_411;
        assert_eq!(x.wrapping_mul(3), 1);
        let values = [x, 7];
        let (next, consumed) = scripted(&values);
        assert_eq!(bounded(3, next), 2);
        assert_eq!(consumed.get(), 1);
    }

    #[test]
    fn bounded_rejection_with_large_range() {
        // n = 2^63 + 1 has threshold 2^63 − 1, so any x whose low half is below it is
        // rejected. x = 2 gives low half 2^64 + 2 − 2^64 = 2 and is rejected, x = 3
        // gives 3·2^63 + 3 = 2^64 + 2^63 + 3, low half 2^63 + 3, so 1.
        let n = (1u64 << 63) + 1;
        let values = [2, 3];
        let (next, consumed) = scripted(&values);
        assert_eq!(bounded(n, next), 1);
        assert_eq!(consumed.get(), 2);
    }

    #[test]
    fn bounded_stays_in_range() {
        let mut source = RandomSource::new(7, CLUSTERCLIP_V1);
        for n in [1, 2, 3, 10, 1000, (1 << 63) + 1, u64::MAX] {
            for _ in 0..200 {
                assert!(source.bounded(n) < n, "bounded({n}) out of range");
            }
        }
    }

    #[test]
    fn shuffle_keeps_elements() {
        let mut source = RandomSource::new(3, UNIFORM_V1);
        let mut items: Vec<u32> = (0..100).collect();
        source.shuffle(&mut items);
        assert_ne!(
            items,
            (0..100).collect::<Vec<u32>>(),
            "shuffle left 100 items in order"
        );
        items.sort_unstable();
        assert_eq!(items, (0..100).collect::<Vec<u32>>());
    }

    #[test]
    fn shuffle_of_one_item_draws_nothing() {
        let mut used = RandomSource::new(5, CLUSTERCLIP_V1);
        let mut fresh = RandomSource::new(5, CLUSTERCLIP_V1);
        used.shuffle(&mut []);
        used.shuffle(&mut [9]);
        assert_eq!(used.rng.next_u64(), fresh.rng.next_u64());
    }

    // --- Data structures -----------------------------------------------------

    #[test]
    fn cluster_index_groups_non_contiguous_labels() {
        let clusters = ClusterIndex::build(&[10, 3, 11, 3, 10, 10]);
        assert_eq!(clusters.labels, vec![3, 10, 11]);
        assert_eq!(clusters.offsets, vec![0, 2, 5, 6]);
        assert_eq!(clusters.members, vec![1, 3, 0, 4, 5, 2]);
        assert_eq!(clusters.range(1), 2..5);
    }

    #[test]
    fn active_clusters_match_vector_model() {
        // Sizes around the 64-bit word boundaries and the Fenwick tree's powers of two.
        for clusters in [1usize, 2, 3, 63, 64, 65, 127, 128, 129, 300, 1000] {
            let mut active = ActiveClusters::new(clusters);
            let mut model: Vec<usize> = (0..clusters).collect();
            let mut source = RandomSource::new(clusters as u64, CLUSTERCLIP_V1);
            while !model.is_empty() {
                assert_eq!(active.len(), model.len());
                for (position, &cluster) in model.iter().enumerate() {
                    assert_eq!(
                        active.select(position),
                        cluster,
                        "{clusters} clusters, position {position}"
                    );
                }
                let removed = model.remove(source.bounded(model.len() as u64) as usize);
                active.remove(removed);
            }
            assert!(active.is_empty());

            active.reset();
            assert_eq!(active.len(), clusters);
            for position in 0..clusters {
                assert_eq!(
                    active.select(position),
                    position,
                    "{clusters} clusters after reset"
                );
            }
        }
    }

    #[test]
    fn select_bit_finds_each_set_bit() {
        let words = [
            1u64,
            1 << 63,
            u64::MAX,
            0x8000_0001_0000_0100,
            0xaaaa_aaaa_aaaa_aaaa,
        ];
        for word in words {
            let positions: Vec<usize> = (0..64).filter(|bit| word & (1 << bit) != 0).collect();
            for (rank, &position) in positions.iter().enumerate() {
                assert_eq!(
                    select_bit(word, rank as u32),
                    position,
                    "word {word:#x}, rank {rank}"
                );
            }
        }
    }

    // --- clusterclip-v1 behaviour ------------------------------------------

    #[test]
    fn hand_checkable_small_case() {
        // Labels [0, 0, 1] with C = 1: cluster 0 contains documents 0 and 1, and cluster
        // 1 contains document 2. Each document can be drawn once, so T = 3 draws must emit
        // every document exactly once, both clusters leave the active list, and the
        // last one leaves after step 3. A fourth draw under `stop` is not possible.
        let stream = clusterclip_v1(&[0, 0, 1], &params(1, 3, 0, ExhaustionPolicy::Stop)).unwrap();
        let mut sorted = stream.indices.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, vec![0, 1, 2]);
        assert_eq!(stream.counts, vec![1, 1, 1]);
        assert!(!stream.stopped_early);
        assert_eq!(stream.exhausted_at.len(), 2);
        assert_eq!(stream.exhausted_at[1].1, 3);

        // For seed 0 the first draw picks cluster 1 because the first u64 has its top
        // bit set. The shuffle of cluster 0's pass [0, 1] draws j = 1, so the pass keeps
        // its order. docs/clusterclip-v1.md walks through this stream step by step.
        assert_eq!(stream.indices, vec![2, 0, 1]);
        assert_eq!(stream.exhausted_at, vec![(1, 1), (0, 3)]);

        let longer = clusterclip_v1(&[0, 0, 1], &params(1, 4, 0, ExhaustionPolicy::Stop)).unwrap();
        assert_eq!(longer.indices, stream.indices);
        assert!(longer.stopped_early);
    }

    #[test]
    fn same_seed_same_stream() {
        let labels = uneven_labels();
        for policy in ExhaustionPolicy::ALL {
            let request = params(2, 120, 42, policy);
            let first = clusterclip_v1(&labels, &request).unwrap();
            let second = clusterclip_v1(&labels, &request).unwrap();
            assert_eq!(first, second, "policy {policy}");
        }
        assert_eq!(
            uniform_v1(50, 170, 9).unwrap(),
            uniform_v1(50, 170, 9).unwrap()
        );
    }

    #[test]
    fn different_seeds_differ() {
        let labels = uneven_labels();
        let seeds = [0, 1, 42, u64::MAX];
        let streams: Vec<Stream> = seeds
            .iter()
            .map(|&seed| {
                clusterclip_v1(&labels, &params(2, 40, seed, ExhaustionPolicy::Stop)).unwrap()
            })
            .collect();
        for a in 0..seeds.len() {
            for b in a + 1..seeds.len() {
                assert_ne!(
                    streams[a].indices, streams[b].indices,
                    "seeds {} and {}",
                    seeds[a], seeds[b]
                );
            }
        }
        assert_ne!(
            uniform_v1(50, 50, 0).unwrap().indices,
            uniform_v1(50, 50, 1).unwrap().indices
        );
    }

    #[test]
    fn samplers_use_separate_streams() {
        // One cluster per document makes clusterclip-v1 with C = 1 a permutation too,
        // but its key differs from uniform-v1's.
        let labels: Vec<u32> = (0..30).collect();
        let clipped = clusterclip_v1(&labels, &params(1, 30, 0, ExhaustionPolicy::Stop)).unwrap();
        let uniform = uniform_v1(30, 30, 0).unwrap();
        assert_ne!(clipped.indices, uniform.indices);
    }

    #[test]
    fn stop_keeps_counts_within_clip() {
        let labels = uneven_labels();
        for clip in [1, 2, 3] {
            for seed in 0..20 {
                let stream =
                    clusterclip_v1(&labels, &params(clip, 60, seed, ExhaustionPolicy::Stop))
                        .unwrap();
                assert!(stream.max_count() <= clip, "clip {clip}, seed {seed}");
                assert_eq!(
                    stream.documents_over_clip(clip),
                    0,
                    "clip {clip}, seed {seed}"
                );
                assert_eq!(
                    stream.appearance_counts(),
                    stream.counts,
                    "clip {clip}, seed {seed}"
                );
            }
        }
    }

    #[test]
    fn stop_ends_at_capacity() {
        let labels = uneven_labels();
        let documents = labels.len() as u64;
        for clip in [1u32, 2, 3] {
            let capacity = u64::from(clip) * documents;
            let stream = clusterclip_v1(
                &labels,
                &params(clip, capacity + 10, 11, ExhaustionPolicy::Stop),
            )
            .unwrap();
            assert_eq!(stream.draws(), capacity, "clip {clip}");
            assert!(stream.stopped_early, "clip {clip}");
            assert!(
                stream.counts.iter().all(|&count| count == clip),
                "clip {clip}"
            );
            assert_eq!(stream.clipped_documents(clip), labels.len(), "clip {clip}");
            assert_eq!(
                stream.repetition_histogram(),
                vec![(0, 0), (clip, documents)],
                "clip {clip}"
            );
            assert_eq!(stream.exhausted_at.len(), 5, "clip {clip}");
            assert_eq!(
                stream.exhausted_at.last().unwrap().1,
                capacity,
                "clip {clip}"
            );
        }
    }

    #[test]
    fn stop_at_exact_capacity_is_not_early() {
        let labels = uneven_labels();
        let capacity = 2 * labels.len() as u64;
        let stream =
            clusterclip_v1(&labels, &params(2, capacity, 5, ExhaustionPolicy::Stop)).unwrap();
        assert_eq!(stream.draws(), capacity);
        assert!(!stream.stopped_early);
    }

    #[test]
    fn passes_cover_cluster_before_repeat() {
        // A single cluster with C = 3 takes three full passes, each a permutation.
        let labels = vec![8u32; 6];
        let stream = clusterclip_v1(&labels, &params(3, 18, 42, ExhaustionPolicy::Stop)).unwrap();
        for pass in stream.indices.chunks(6) {
            let mut sorted = pass.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, vec![0, 1, 2, 3, 4, 5]);
        }
        assert_eq!(stream.exhausted_at, vec![(8, 18)]);
    }

    #[test]
    fn exhaustion_follows_cluster_sizes() {
        // A cluster of s documents leaves the active list right after its C·s-th draw,
        // whatever the seed. Which cluster is drawn is random, so the order of
        // exhaustion is only forced through this rule.
        let labels = uneven_labels();
        for clip in [1u32, 2, 3] {
            for seed in 0..30 {
                let stream =
                    clusterclip_v1(&labels, &params(clip, 1000, seed, ExhaustionPolicy::Stop))
                        .unwrap();
                let mut drawn_per_label: BTreeMap<u32, u64> = BTreeMap::new();
                let mut exhaustions = stream.exhausted_at.iter().copied().collect::<VecDeque<_>>();
                for (step, &document) in stream.indices.iter().enumerate() {
                    let label = labels[document as usize];
                    let drawn = drawn_per_label.entry(label).or_insert(0);
                    *drawn += 1;
                    let size = labels.iter().filter(|&&l| l == label).count() as u64;
                    if *drawn == u64::from(clip) * size {
                        let (exhausted_label, exhausted_step) = exhaustions.pop_front().unwrap();
                        assert_eq!(
                            exhausted_label,
                            label,
                            "clip {clip}, seed {seed}, step {}",
                            step + 1
                        );
                        assert_eq!(exhausted_step, step as u64 + 1, "clip {clip}, seed {seed}");
                    }
                }
                assert!(
                    exhaustions.is_empty(),
                    "clip {clip}, seed {seed}: exhaustions without draws"
                );
            }
        }
    }

    #[test]
    fn exhaustion_order_one_and_seven() {
        // With C = 1, the cluster of one document (label 4) leaves the active list the
        // first time it is drawn, and the 7-document cluster only after 7 draws. Seed
        // 42 draws the single document first, so the exhaustion order is fixed.
        let labels = [4, 9, 9, 9, 9, 9, 9, 9];
        let stream = clusterclip_v1(&labels, &params(1, 20, 42, ExhaustionPolicy::Stop)).unwrap();
        assert_eq!(stream.exhausted_at, vec![(4, 1), (9, 8)]);
        assert_eq!(stream.indices[0], 0);
        assert_eq!(stream.draws(), 8);
    }

    #[test]
    fn random_fallback_reports_overdrawn_documents() {
        let labels = uneven_labels();
        let documents = labels.len() as u64;
        let stream = clusterclip_v1(
            &labels,
            &params(1, 3 * documents, 2, ExhaustionPolicy::RandomFallback),
        )
        .unwrap();
        assert_eq!(stream.draws(), 3 * documents);
        assert_eq!(stream.fallback_from, Some(documents));
        assert!(!stream.stopped_early);
        assert!(stream.resets.is_empty());
        assert!(
            stream.documents_over_clip(1) > 0,
            "fallback never drew a document twice"
        );
        assert_eq!(stream.clipped_documents(1), labels.len());
        assert!(stream.max_count() > 1);
        assert_eq!(stream.appearance_counts(), stream.counts);

        // Before the fallback the stream is the same as under `stop`.
        let stopped = clusterclip_v1(
            &labels,
            &params(1, 3 * documents, 2, ExhaustionPolicy::Stop),
        )
        .unwrap();
        assert_eq!(&stream.indices[..documents as usize], &stopped.indices[..]);
    }

    #[test]
    fn random_fallback_unused_below_capacity() {
        let labels = uneven_labels();
        let stream =
            clusterclip_v1(&labels, &params(2, 10, 2, ExhaustionPolicy::RandomFallback)).unwrap();
        assert_eq!(stream.fallback_from, None);
        assert_eq!(stream.documents_over_clip(2), 0);
    }

    #[test]
    fn reset_counts_restarts_each_round() {
        let labels = uneven_labels();
        let documents = labels.len();
        for clip in [1u32, 2, 3] {
            let round = clip as usize * documents;
            let draws = (2 * round + round / 2) as u64;
            let stream = clusterclip_v1(
                &labels,
                &params(clip, draws, 13, ExhaustionPolicy::ResetCounts),
            )
            .unwrap();
            assert_eq!(stream.draws(), draws, "clip {clip}");
            assert_eq!(
                stream.resets,
                vec![round as u64, 2 * round as u64],
                "clip {clip}"
            );
            assert!(stream.max_count() <= clip, "clip {clip}");
            let full_rounds_end = 2 * round as u64;
            let in_full_rounds = stream
                .exhausted_at
                .iter()
                .filter(|&&(_, step)| step <= full_rounds_end)
                .count();
            assert_eq!(
                in_full_rounds, 10,
                "clip {clip}: two full rounds of 5 clusters"
            );

            // Every full round draws each document exactly C times.
            for (number, round_indices) in stream.indices.chunks(round).enumerate() {
                let mut counts = vec![0u32; documents];
                for &index in round_indices {
                    counts[index as usize] += 1;
                }
                assert!(
                    counts.iter().all(|&count| count <= clip),
                    "clip {clip}, round {number}"
                );
                if round_indices.len() == round {
                    assert!(
                        counts.iter().all(|&count| count == clip),
                        "clip {clip}, round {number}"
                    );
                }
            }

            // `counts` covers the last, partial round, and appearances the whole stream.
            let last_round = stream.indices.len() - 2 * round;
            assert_eq!(
                stream.counts.iter().map(|&c| c as usize).sum::<usize>(),
                last_round
            );
            let appearances = stream.appearance_counts();
            assert_eq!(
                appearances.iter().map(|&c| c as usize).sum::<usize>(),
                stream.indices.len()
            );
        }
    }

    #[test]
    fn reset_counts_replays_differently() {
        // The rounds after a reset continue the same random stream, so they are not
        // copies of the first round.
        let labels = uneven_labels();
        let round = labels.len();
        let stream = clusterclip_v1(
            &labels,
            &params(1, 2 * round as u64, 21, ExhaustionPolicy::ResetCounts),
        )
        .unwrap();
        assert_ne!(stream.indices[..round], stream.indices[round..]);
    }

    #[test]
    fn histogram_includes_zero_count() {
        let labels = [1, 1, 1, 2, 2, 3];
        let stream = clusterclip_v1(&labels, &params(2, 3, 0, ExhaustionPolicy::Stop)).unwrap();
        let histogram = stream.repetition_histogram();
        assert_eq!(histogram[0].0, 0);
        assert_eq!(
            histogram
                .iter()
                .map(|&(_, documents)| documents)
                .sum::<u64>(),
            6
        );
        let drawn: u64 = histogram
            .iter()
            .map(|&(count, documents)| u64::from(count) * documents)
            .sum();
        assert_eq!(drawn, 3);
        assert!(histogram.windows(2).all(|pair| pair[0].0 < pair[1].0));

        let full = clusterclip_v1(&labels, &params(1, 6, 0, ExhaustionPolicy::Stop)).unwrap();
        assert_eq!(full.repetition_histogram(), vec![(0, 0), (1, 6)]);
    }

    #[test]
    fn single_document_with_max_label() {
        let stream = clusterclip_v1(&[u32::MAX], &params(5, 9, 1, ExhaustionPolicy::Stop)).unwrap();
        assert_eq!(stream.indices, vec![0; 5]);
        assert_eq!(stream.exhausted_at, vec![(u32::MAX, 5)]);
        assert!(stream.stopped_early);
    }

    // --- uniform-v1 behaviour ----------------------------------------------

    #[test]
    fn uniform_emits_whole_epochs() {
        let documents = 13usize;
        let draws = 3 * documents as u64 + 5;
        let stream = uniform_v1(documents, draws, 42).unwrap();
        assert_eq!(stream.sampler, UNIFORM_V1);
        assert_eq!(stream.draws(), draws);
        for epoch in stream.indices.chunks(documents).take(3) {
            let mut sorted = epoch.to_vec();
            sorted.sort_unstable();
            assert_eq!(sorted, (0..documents as u32).collect::<Vec<u32>>());
        }
        let tail = &stream.indices[3 * documents..];
        let mut distinct = tail.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), 5, "the cut epoch repeats a document");
        assert_eq!(stream.max_count(), 4);
        assert_eq!(stream.repetition_histogram(), vec![(0, 0), (3, 8), (4, 5)]);
    }

    #[test]
    fn uniform_shuffles_identity_each_epoch() {
        // Each epoch shuffles 0..N in order, not the previous epoch's permutation.
        let mut source = RandomSource::new(8, UNIFORM_V1);
        let mut expected = Vec::new();
        for _ in 0..3 {
            let mut epoch: Vec<u32> = (0..20).collect();
            source.shuffle(&mut epoch);
            expected.extend(epoch);
        }
        assert_eq!(uniform_v1(20, 60, 8).unwrap().indices, expected);
    }

    #[test]
    fn uniform_cut_epoch_is_prefix() {
        let long = uniform_v1(20, 60, 8).unwrap();
        let cut = uniform_v1(20, 47, 8).unwrap();
        assert_eq!(cut.indices[..], long.indices[..47]);
    }

    // --- Input validation and names ----------------------------------------

    #[test]
    fn errors_for_invalid_input() {
        let stop = ExhaustionPolicy::Stop;
        assert_eq!(
            clusterclip_v1(&[0], &params(0, 1, 0, stop)).unwrap_err(),
            SampleError::ClipBelowOne { clip: 0 }
        );
        assert_eq!(
            clusterclip_v1(&[0], &params(1, 0, 0, stop)).unwrap_err(),
            SampleError::ZeroDraws
        );
        assert_eq!(
            clusterclip_v1(&[], &params(1, 1, 0, stop)).unwrap_err(),
            SampleError::NoDocuments
        );
        assert_eq!(uniform_v1(0, 1, 0).unwrap_err(), SampleError::NoDocuments);
        assert_eq!(uniform_v1(1, 0, 0).unwrap_err(), SampleError::ZeroDraws);
        assert_eq!(
            uniform_v1(MAX_DOCUMENTS + 1, 1, 0).unwrap_err(),
            SampleError::TooManyDocuments {
                documents: MAX_DOCUMENTS + 1
            }
        );
        assert_eq!(
            uniform_v1(1, u64::MAX, 0).unwrap_err(),
            SampleError::TooManyDraws { draws: u64::MAX }
        );
    }

    #[test]
    fn stop_reserves_only_capacity() {
        // Under `stop` the stream cannot be longer than C·N, so a huge T is fine.
        let stream =
            clusterclip_v1(&[0, 1], &params(1, u64::MAX, 0, ExhaustionPolicy::Stop)).unwrap();
        assert_eq!(stream.draws(), 2);
        assert!(stream.stopped_early);
    }

    #[test]
    fn error_messages_name_value_and_fix() {
        let cases = [
            (SampleError::ClipBelowOne { clip: 0 }, "invalid clip threshold 0: it must be at least 1"),
            (SampleError::ZeroDraws, "invalid number of draws 0: request at least 1 draw"),
            (
                SampleError::NoDocuments,
                "no documents to sample: the corpus has 0 documents, give at least one",
            ),
            (
                SampleError::TooManyDocuments {
                    documents: 5_000_000_000,
                },
                "too many documents: 5000000000 exceeds the limit of 4294967295 because \
                 document indices are 32-bit, split the corpus into smaller parts",
            ),
            (
                SampleError::TooManyDraws { draws: 10 },
                "too many draws: memory for 10 document indices (40 bytes) could not be \
                 reserved, request fewer draws",
            ),
            (
                SampleError::InvalidPolicy { value: "halt".into() },
                "invalid exhaustion policy \"halt\": expected stop, random_fallback or reset_counts",
            ),
        ];
        for (error, message) in cases {
            assert_eq!(error.to_string(), message);
        }
    }

    #[test]
    fn policy_names_round_trip() {
        for (policy, name) in [
            (ExhaustionPolicy::Stop, "stop"),
            (ExhaustionPolicy::RandomFallback, "random_fallback"),
            (ExhaustionPolicy::ResetCounts, "reset_counts"),
        ] {
            assert_eq!(policy.to_string(), name);
            assert_eq!(name.parse::<ExhaustionPolicy>().unwrap(), policy);
            assert_eq!(
                serde_json::to_string(&policy).unwrap(),
                format!("\"{name}\"")
            );
            assert_eq!(
                serde_json::from_str::<ExhaustionPolicy>(&format!("\"{name}\"")).unwrap(),
                policy
            );
        }
        assert_eq!(ExhaustionPolicy::default(), ExhaustionPolicy::Stop);
        assert_eq!(
            "Stop".parse::<ExhaustionPolicy>().unwrap_err(),
            SampleError::InvalidPolicy {
                value: "Stop".into()
            }
        );
    }

    #[test]
    fn clip_params_serialize_with_policy_name() {
        let request = params(2, 10, u64::MAX, ExhaustionPolicy::ResetCounts);
        let json = serde_json::to_string(&request).unwrap();
        assert_eq!(
            json,
            r#"{"clip":2,"draws":10,"seed":18446744073709551615,"policy":"reset_counts"}"#
        );
        assert_eq!(serde_json::from_str::<ClipParams>(&json).unwrap(), request);
    }
}

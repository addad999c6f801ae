//! clipaudit: evidence that a training corpus was curated in a balanced way.
//!
//! The pipeline of `clipaudit run`, stage by stage:
//! 1. [`config`]: read and validate the audit TOML;
//! 2. [`dataset`]: load the corpus and its embeddings, hashing every file as it is read;
//! 3. [`embed`]: Sentence-BERT embeddings with candle, when none are precomputed;
//! 4. [`cluster`]: k-means with linfa-clustering;
//! 5. [`sample`]: ClusterClip sampling (`clusterclip-v1`) and the random baseline (`uniform-v1`);
//! 6. [`metrics`]: representation, bias deltas and label agreement;
//! 7. [`gate`]: release checks over the figures;
//! 8. [`report`]: charts and the PDF/A-3b report compiled with typst;
//! 9. [`evidence`]: manifest, `SHA256SUMS`, signatures, and bundle verification.
//!
//! The library returns values and errors and never prints; `main.rs` owns the terminal.

pub mod cluster;
pub mod config;
pub mod dataset;
pub mod embed;
pub mod error;
pub mod evidence;
pub mod gate;
pub mod metrics;
pub mod report;
pub mod run;
pub mod sample;
pub mod sample_verify;
pub mod stages;

pub use error::{Error, Result};

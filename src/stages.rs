//! File-level entry points of the single-stage commands (`embed`, `sample`).

use std::collections::BTreeMap;
use std::path::Path;

use polars::prelude::{Column, DataFrame, DataType};

use crate::dataset::{self, EmbeddingProvenance, Embeddings};
use crate::error::{Error, Result};
use crate::sample::{self, ClipParams, ExhaustionPolicy, Stream};

/// Embeds the texts of `input` with the model in `model_dir` and writes `out` (Parquet) and its
/// provenance file beside it, which it also returns. `progress` receives (documents done, total).
pub fn embed_file(
    input: &Path,
    model_dir: &Path,
    out: &Path,
    id_column: &str,
    text_column: &str,
    batch_size: usize,
    progress: &dyn Fn(usize, usize),
) -> Result<EmbeddingProvenance> {
    if batch_size == 0 {
        return Err(Error::input("--batch-size must be at least 1"));
    }
    let columns = dataset::Columns { id: id_column, text: Some(text_column), groups: &[], outcome: None };
    let corpus = dataset::load_corpus(&[input.to_path_buf()], &columns)?;
    let model = crate::embed::Model::load(model_dir, candle_core::Device::Cpu)?;
    let total = corpus.len();
    let output = model.embed(&corpus.texts, batch_size, |done| progress(done, total))?;
    let embeddings = Embeddings { ids: corpus.ids.clone(), dimension: model.dimension, data: output.data };

    let provenance = EmbeddingProvenance {
        model: model.name.clone(),
        model_files: model.file_hashes(model_dir),
        pooling: model.pooling.name().into(),
        normalized: model.normalize,
        max_seq_length: model.max_seq_length,
        dimension: model.dimension,
        documents: corpus.len(),
        truncated_documents: output.truncated,
        inputs: corpus
            .files
            .iter()
            .map(|f| (f.path.file_name().unwrap_or_default().to_string_lossy().into_owned(), f.sha256.clone()))
            .collect::<BTreeMap<_, _>>(),
        tool: format!("clipaudit {}", env!("CARGO_PKG_VERSION")),
    };
    dataset::write_embeddings(out, &embeddings)?;
    let sidecar = dataset::provenance_path(out);
    let bytes = crate::run::to_json_bytes(&provenance)?;
    std::fs::write(&sidecar, bytes).map_err(|e| Error::io("write", &sidecar, e))?;
    tracing::info!(documents = total, truncated = output.truncated, "embedded");
    Ok(provenance)
}

/// Reads a labels table (columns `id` and `cluster`, an integer) in document order.
pub fn read_labels(labels: &Path) -> Result<(Vec<String>, Vec<u32>)> {
    let (bytes, _) = dataset::read_hashed(labels, "labels")?;
    let df = dataset::parse_table(labels, bytes)?;
    let missing = |name: &str| {
        Error::input_hint(format!("{}: missing column `{name}`", labels.display()), "the labels file needs columns id and cluster")
    };
    let ids = df.column("id").map_err(|_| missing("id"))?.cast(&DataType::String)?;
    let clusters = df.column("cluster").map_err(|_| missing("cluster"))?;
    if !clusters.dtype().is_integer() {
        return Err(Error::input(format!("{}: column `cluster` has type {}, expected integers", labels.display(), clusters.dtype())));
    }
    let clusters = clusters.cast(&DataType::Int64)?;
    let mut label_values = Vec::with_capacity(df.height());
    for (row, value) in clusters.i64()?.iter().enumerate() {
        match value {
            Some(v) if (0..=i64::from(u32::MAX)).contains(&v) => label_values.push(v as u32),
            other => {
                return Err(Error::input(format!(
                    "{}: row {row}: cluster {} is not an integer in 0..=4294967295",
                    labels.display(),
                    other.map(|v| v.to_string()).unwrap_or_else(|| "null".into())
                )))
            }
        }
    }
    let mut id_values = Vec::with_capacity(df.height());
    for (row, id) in ids.str()?.iter().enumerate() {
        id_values.push(id.ok_or_else(|| Error::input(format!("{}: row {row}: column `id` is null", labels.display())))?.to_string());
    }
    if id_values.is_empty() {
        return Err(Error::input_hint(format!("{}: the labels table has no rows", labels.display()), "write one row per document"));
    }
    dataset::check_unique_ids(&id_values, &labels.display().to_string())?;
    Ok((id_values, label_values))
}

/// The parameters of one `sample` request.
pub struct SampleRequest {
    pub clip: u32,
    pub draws: u64,
    pub seed: u64,
    pub policy: ExhaustionPolicy,
    /// `clusterclip-v1` or `uniform-v1`.
    pub sampler: String,
}

/// Reads cluster labels, draws the requested stream and writes it to `out` as Parquet with
/// columns `step`, `id` and `cluster`. With `counts`, it also writes the draws per document
/// (`id`, `count`).
pub fn sample_file(labels: &Path, request: &SampleRequest, out: &Path, counts: Option<&Path>) -> Result<Stream> {
    let (ids, label_values) = read_labels(labels)?;
    let stream = match request.sampler.as_str() {
        sample::CLUSTERCLIP_V1 => sample::clusterclip_v1(
            &label_values,
            &ClipParams { clip: request.clip, draws: request.draws, seed: request.seed, policy: request.policy },
        ),
        sample::UNIFORM_V1 => sample::uniform_v1(label_values.len(), request.draws, request.seed),
        other => {
            return Err(Error::input_hint(format!("unknown sampler `{other}`"), "use clusterclip-v1 or uniform-v1"));
        }
    }
    .map_err(|e| Error::input(format!("{}: {e}", labels.display())))?;

    let steps: Vec<u64> = (0..stream.indices.len() as u64).collect();
    let drawn_ids: Vec<&str> = stream.indices.iter().map(|&i| ids[i as usize].as_str()).collect();
    let drawn_labels: Vec<u32> = stream.indices.iter().map(|&i| label_values[i as usize]).collect();
    let mut frame = DataFrame::new_infer_height(vec![
        Column::new("step".into(), &steps),
        Column::new("id".into(), &drawn_ids),
        Column::new("cluster".into(), &drawn_labels),
    ])?;
    dataset::write_parquet(out, &mut frame)?;

    if let Some(path) = counts {
        let mut frame = DataFrame::new_infer_height(vec![
            Column::new("id".into(), &ids),
            Column::new("count".into(), &stream.appearance_counts()),
        ])?;
        dataset::write_parquet(path, &mut frame)?;
    }
    Ok(stream)
}

//! File-level entry points of the single-stage commands (`embed`, `sample`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use polars::prelude::{Column, DataFrame, DataType};

use crate::dataset::{self, EmbeddingProvenance, Embeddings};
use crate::error::{Error, Result};
use crate::sample::{self, ClipParams, ExhaustionPolicy, Stream};

/// The precision of the vectors `embed` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    F32,
    F16,
}

/// One `embed` request: the corpus, the model and how to write the vectors.
pub struct EmbedRequest<'a> {
    pub input: &'a Path,
    pub model_dir: &'a Path,
    pub out: &'a Path,
    pub id_column: &'a str,
    pub text_column: &'a str,
    /// Texts per forward pass. With the longest text, it sets the working memory.
    pub batch_size: usize,
    /// Documents per shard: the unit that is written to disk and skipped on resume.
    pub shard_size: usize,
    pub precision: Precision,
}

/// The outcome of `embed_file`.
pub struct EmbedSummary {
    pub provenance: EmbeddingProvenance,
    pub shards: usize,
    /// Shards found complete from an earlier, interrupted run and not recomputed.
    pub resumed_shards: usize,
}

/// Identifies a run, so that shards left by an interrupted run are reused only by the same run.
#[derive(Debug, PartialEq, Serialize, Deserialize)]
struct ShardRun {
    inputs: BTreeMap<String, String>,
    model_files: BTreeMap<String, String>,
    id_column: String,
    text_column: String,
    documents: usize,
    shard_size: usize,
    precision: Precision,
}

/// A finished shard's counts, written beside it.
#[derive(Serialize, Deserialize)]
struct ShardRecord {
    documents: usize,
    truncated: usize,
}

/// Returns the folder for the shards of output `out` while it is being made.
pub fn shard_dir(out: &Path) -> PathBuf {
    let mut name = out.file_name().unwrap_or_default().to_os_string();
    name.push(".parts");
    out.with_file_name(name)
}

/// Embeds the texts of `request.input` and writes `request.out` (Parquet, columns `id` and
/// `embedding`) with its provenance file beside it.
///
/// The vectors are written shard by shard into `OUT.parts/` as they are computed. A shard is
/// complete once its file is renamed into place. A re-run of the same request skips the
/// complete shards, so an interrupted run resumes where it stopped. When all shards are there,
/// they are joined into `OUT` one at a time and the folder is removed. Memory is the texts, one
/// shard of vectors and one batch of activations. `progress` receives (documents done, total).
pub fn embed_file(request: &EmbedRequest, backend: crate::embed::Backend, progress: &dyn Fn(usize, usize)) -> Result<EmbedSummary> {
    if request.batch_size == 0 {
        return Err(Error::input("--batch-size must be at least 1"));
    }
    if request.shard_size == 0 {
        return Err(Error::input("--shard-size must be at least 1"));
    }
    let columns = dataset::Columns { id: request.id_column, text: Some(request.text_column), groups: &[], outcome: None };
    let corpus = dataset::load_corpus(&[request.input.to_path_buf()], &columns)?;
    let model = crate::embed::Model::load(request.model_dir, backend)?;
    let total = corpus.len();
    let precision = match request.precision {
        Precision::F32 => "f32",
        Precision::F16 => "f16",
    };
    // The truncation count is filled in once every shard is done.
    let mut provenance = model.provenance(request.model_dir, &corpus.files, total, 0, precision);
    let run = ShardRun {
        inputs: provenance.inputs.clone(),
        model_files: provenance.model_files.clone(),
        id_column: request.id_column.into(),
        text_column: request.text_column.into(),
        documents: total,
        shard_size: request.shard_size,
        precision: request.precision,
    };

    let parts = shard_dir(request.out);
    let run_file = parts.join("run.json");
    // run.json is written before any shard, so a folder without it has no complete shard.
    if run_file.exists() {
        let earlier: Option<ShardRun> = std::fs::read(&run_file).ok().and_then(|b| serde_json::from_slice(&b).ok());
        if earlier.as_ref() != Some(&run) {
            return Err(Error::input_hint(
                format!("{}: has shards of a different embedding run (another input, model or setting)", parts.display()),
                "delete this folder to start over, or repeat the earlier command to finish that run",
            ));
        }
    } else {
        std::fs::create_dir_all(&parts).map_err(|e| Error::io("create", &parts, e))?;
        write_atomic(&run_file, &crate::run::to_json_bytes(&run)?)?;
    }

    let shards = total.div_ceil(request.shard_size);
    let shard_path = |i: usize| parts.join(format!("part-{i:06}.parquet"));
    let mut truncated = 0;
    let mut resumed = 0;
    for shard in 0..shards {
        let range = shard * request.shard_size..((shard + 1) * request.shard_size).min(total);
        let path = shard_path(shard);
        let record_path = dataset::provenance_path(&path);
        if path.exists() {
            let record: ShardRecord = std::fs::read(&record_path)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .filter(|r: &ShardRecord| r.documents == range.len())
                .ok_or_else(|| {
                    Error::input_hint(
                        format!("{}: shard record missing or inconsistent", record_path.display()),
                        format!("delete {} to start over", parts.display()),
                    )
                })?;
            truncated += record.truncated;
            resumed += 1;
            progress(range.end, total);
            continue;
        }
        let done_before = range.start;
        let output = model.embed(&corpus.texts[range.clone()], request.batch_size, |done| progress(done_before + done, total))?;
        let embeddings = Embeddings { ids: corpus.ids[range.clone()].to_vec(), dimension: model.dimension, data: output.data };
        write_atomic(&record_path, &crate::run::to_json_bytes(&ShardRecord { documents: range.len(), truncated: output.truncated })?)?;
        let staging = path.with_extension("parquet.partial");
        dataset::write_embeddings_as(&staging, &embeddings, request.precision == Precision::F16)?;
        std::fs::rename(&staging, &path).map_err(|e| Error::io("rename", &staging, e))?;
        truncated += output.truncated;
    }

    provenance.truncated_documents = truncated;
    dataset::join_parquet(&(0..shards).map(shard_path).collect::<Vec<_>>(), request.out)?;
    write_atomic(&dataset::provenance_path(request.out), &crate::run::to_json_bytes(&provenance)?)?;
    std::fs::remove_dir_all(&parts).map_err(|e| Error::io("remove", &parts, e))?;
    tracing::info!(documents = total, truncated, shards, resumed, "embedded");
    Ok(EmbedSummary { provenance, shards, resumed_shards: resumed })
}

/// Writes `bytes` to `path` through a temporary file beside it and a rename.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".partial");
    let staging = path.with_file_name(name);
    std::fs::write(&staging, bytes).map_err(|e| Error::io("write", &staging, e))?;
    std::fs::rename(&staging, path).map_err(|e| Error::io("rename", &staging, e))
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

//! Sentence-BERT embeddings with candle.
//!
//! A sentence-transformers model directory contains `config.json` (the BERT configuration),
//! `model.safetensors`, `tokenizer.json`, `1_Pooling/config.json` (mean, CLS or max pooling),
//! `sentence_bert_config.json` (`max_seq_length`) and `modules.json` (whether a `Normalize`
//! module follows the pooling). Texts are tokenized with truncation to `max_seq_length`, sorted by
//! token length into batches so padding stays small, run through BERT in f32, pooled over the
//! attention mask, optionally L2-normalised, and returned in the original order.
//!
//! Two engines run the encoder. On the CPU, [`native`] packs each batch without padding and
//! runs it with its own element-wise kernels. On a GPU (`--device cuda`, built with the `cuda`
//! feature), candle-transformers' BERT runs it. Both read the same files, and both stay within
//! the parity bound with sentence-transformers.

pub mod native;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::dataset::{hex, EmbeddingProvenance, InputFile};
use crate::error::{Error, Result};

/// The pooling of token vectors into one sentence vector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooling {
    Mean,
    Cls,
    Max,
}

impl Pooling {
    pub fn name(self) -> &'static str {
        match self {
            Pooling::Mean => "mean",
            Pooling::Cls => "cls",
            Pooling::Max => "max",
        }
    }
}

/// Reads the pooling mode from `1_Pooling/config.json`: exactly one of mean, CLS and max, and no
/// other mode set, over vectors of the encoder's width.
fn pooling_mode(config: &serde_json::Map<String, serde_json::Value>, path: &Path, hidden_size: usize) -> Result<Pooling> {
    let modes: Vec<&str> = config
        .iter()
        .filter(|(key, value)| key.starts_with("pooling_mode_") && value.as_bool() == Some(true))
        .map(|(key, _)| key.as_str())
        .collect();
    let pooling = match modes.as_slice() {
        ["pooling_mode_mean_tokens"] => Pooling::Mean,
        ["pooling_mode_cls_token"] => Pooling::Cls,
        ["pooling_mode_max_tokens"] => Pooling::Max,
        [] => {
            return Err(Error::input_hint(
                format!("{}: no pooling mode is set", path.display()),
                "set one of pooling_mode_mean_tokens, pooling_mode_cls_token and pooling_mode_max_tokens to true",
            ))
        }
        other => {
            return Err(Error::input_hint(
                format!("{}: the pooling modes {} are set together, which is not supported", path.display(), other.join(" and ")),
                "clipaudit pools by exactly one of pooling_mode_mean_tokens, pooling_mode_cls_token and pooling_mode_max_tokens",
            ))
        }
    };
    if let Some(width) = config.get("word_embedding_dimension").and_then(serde_json::Value::as_u64) {
        if width != hidden_size as u64 {
            return Err(Error::input(format!(
                "{}: word_embedding_dimension {width} differs from hidden_size {hidden_size} in config.json",
                path.display()
            )));
        }
    }
    Ok(pooling)
}

#[derive(Deserialize)]
struct SentenceBertConfig {
    max_seq_length: usize,
}

#[derive(Deserialize)]
struct ModuleEntry {
    #[serde(rename = "type")]
    kind: String,
}

/// The files of a model directory that a model is read from, relative to the directory.
pub const MODEL_FILES: [&str; 6] =
    ["config.json", "1_Pooling/config.json", "sentence_bert_config.json", "modules.json", "tokenizer.json", "model.safetensors"];

/// Hashes the model files of directory `dir` (those in [`MODEL_FILES`]) without loading the model.
pub fn hash_model_files(dir: &Path) -> Result<Vec<InputFile>> {
    MODEL_FILES
        .iter()
        .map(|name| {
            read_model_file(&dir.join(name)).map(|(_, info)| info)
        })
        .collect()
}

/// The engine and device that run the encoder.
pub enum Backend {
    /// The packed CPU encoder in [`native`].
    Native,
    /// candle-transformers' BERT on a candle device (CPU or CUDA).
    Candle(Device),
}

impl Backend {
    /// Returns the backend for `--device`: the packed CPU encoder, or candle on CUDA GPU 0.
    // NOTE: the CUDA path (the `cuda` feature) has not been built or run on a GPU yet. Only its
    // error without CUDA support is tested.
    pub fn for_device(cuda: bool) -> Result<Backend> {
        if !cuda {
            return Ok(Backend::Native);
        }
        let device = Device::new_cuda(0).map_err(|e| {
            Error::input_hint(
                format!("--device cuda: no CUDA device could be opened ({e})"),
                "build with `cargo build --release --features cuda` on a machine with the CUDA toolkit and a GPU, or use --device cpu",
            )
        })?;
        Ok(Backend::Candle(device))
    }
}

enum Engine {
    Native(native::Bert),
    Candle { bert: BertModel, device: Device },
}

/// A loaded sentence-transformers model.
pub struct Model {
    pub name: String,
    engine: Engine,
    tokenizer: Tokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    pub dimension: usize,
    /// Every model file read, with its hash, for the manifest.
    pub files: Vec<InputFile>,
}

/// The token ids of one text, cut at the model's maximum length.
struct Tokens {
    ids: Vec<u32>,
    type_ids: Vec<u32>,
}

/// The output of [`Model::embed`].
pub struct EmbeddingOutput {
    /// Row-major vectors in the order of the input texts.
    pub data: Vec<f32>,
    /// How many texts were cut at `max_seq_length` tokens.
    pub truncated: usize,
}

/// The hint for a model file that is present but unusable.
const DAMAGED: &str = "the model folder is damaged or not a BERT sentence-transformers model; copy it again from its source \
     (for all-MiniLM-L6-v2, scripts/fetch-model.sh in the clipaudit repository)";

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, files: &mut Vec<InputFile>) -> Result<T> {
    let value: serde_json::Value = read_json_value(path, files)?;
    serde_json::from_value(value).map_err(|e| Error::input_hint(format!("{}: {e}", path.display()), DAMAGED))
}

/// Reads and hashes one file of a model directory.
fn read_model_file(path: &Path) -> Result<(Vec<u8>, InputFile)> {
    crate::dataset::read_hashed(path, "model").map_err(|e| {
        e.with_hint(
            "--model needs a sentence-transformers folder with config.json, model.safetensors, tokenizer.json, modules.json, \
             sentence_bert_config.json and 1_Pooling/config.json (for all-MiniLM-L6-v2, scripts/fetch-model.sh in the clipaudit repository fetches one)",
        )
    })
}

fn read_json_value(path: &Path, files: &mut Vec<InputFile>) -> Result<serde_json::Value> {
    let (bytes, info) = read_model_file(path)?;
    files.push(info);
    serde_json::from_slice(&bytes).map_err(|e| Error::input_hint(format!("{}: invalid JSON ({e})", path.display()), DAMAGED))
}

impl Model {
    /// Loads the model in directory `dir` for `backend`.
    pub fn load(dir: &Path, backend: Backend) -> Result<Model> {
        let mut files = Vec::new();
        let config_path = dir.join("config.json");
        let config_value = read_json_value(&config_path, &mut files)?;
        let config: native::BertConfig = serde_json::from_value(config_value.clone())
            .map_err(|e| Error::input_hint(format!("{}: {e}", config_path.display()), DAMAGED))?;
        if let Some(kind) = config.model_type.as_deref().filter(|&kind| kind != "bert") {
            return Err(Error::input_hint(
                format!("{}: model_type `{kind}` is not supported", config_path.display()),
                "the encoder runs BERT models (model_type \"bert\"); RoBERTa-style models lay out positions differently",
            ));
        }
        let pooling_path = dir.join("1_Pooling/config.json");
        let pooling: serde_json::Map<String, serde_json::Value> = read_json(&pooling_path, &mut files)?;
        let sbert: SentenceBertConfig = read_json(&dir.join("sentence_bert_config.json"), &mut files)?;
        let modules: Vec<ModuleEntry> = read_json(&dir.join("modules.json"), &mut files)?;

        let pooling = pooling_mode(&pooling, &pooling_path, config.hidden_size)?;
        let normalize = modules.iter().any(|m| m.kind.ends_with("Normalize"));
        if sbert.max_seq_length == 0 || sbert.max_seq_length > config.max_position_embeddings {
            return Err(Error::input_hint(
                format!(
                    "{}: max_seq_length {} must lie in 1..={} (max_position_embeddings in config.json)",
                    dir.join("sentence_bert_config.json").display(),
                    sbert.max_seq_length,
                    config.max_position_embeddings
                ),
                DAMAGED,
            ));
        }

        let tokenizer_path = dir.join("tokenizer.json");
        let (tokenizer_bytes, info) = read_model_file(&tokenizer_path)?;
        files.push(info);
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| Error::input_hint(format!("{}: invalid tokenizer ({e})", tokenizer_path.display()), DAMAGED))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: sbert.max_seq_length, ..Default::default() }))
            .map_err(|e| Error::input(format!("{}: cannot set truncation ({e})", tokenizer_path.display())))?;

        let weights = dir.join("model.safetensors");
        let (weight_bytes, info) = read_model_file(&weights)?;
        files.push(info);
        let engine = match backend {
            Backend::Native => Engine::Native(native::Bert::load(&config, &config_path, &weights, &weight_bytes)?),
            Backend::Candle(device) => {
                let candle_config: Config = serde_json::from_value(config_value)
                    .map_err(|e| Error::input(format!("{}: {e}", config_path.display())))?;
                // SAFETY: the file is memory-mapped read-only and not modified while the model lives.
                let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
                    .map_err(|e| Error::input(format!("{}: cannot be read as safetensors ({e})", weights.display())))?;
                let bert = BertModel::load(vb, &candle_config)
                    .map_err(|e| Error::input(format!("{}: weights do not match config.json ({e})", weights.display())))?;
                Engine::Candle { bert, device }
            }
        };

        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Model {
            name,
            engine,
            tokenizer,
            pooling,
            normalize,
            max_seq_length: sbert.max_seq_length,
            dimension: config.hidden_size,
            files,
        })
    }

    /// Returns the provenance of `documents` vectors that this model, loaded from `dir`, made from
    /// the corpus files `inputs`, stored at `precision` (`f32` or `f16`).
    pub fn provenance(&self, dir: &Path, inputs: &[InputFile], documents: usize, truncated: usize, precision: &str) -> EmbeddingProvenance {
        EmbeddingProvenance {
            model: self.name.clone(),
            model_files: self.file_hashes(dir),
            pooling: self.pooling.name().into(),
            normalized: self.normalize,
            max_seq_length: self.max_seq_length,
            dimension: self.dimension,
            documents,
            truncated_documents: truncated,
            precision: precision.into(),
            inputs: inputs
                .iter()
                .map(|f| (f.path.file_name().unwrap_or_default().to_string_lossy().into_owned(), f.sha256.clone()))
                .collect(),
            tool: format!("clipaudit {}", env!("CARGO_PKG_VERSION")),
        }
    }

    /// Returns the model files' SHA-256 by file name relative to the model directory.
    pub fn file_hashes(&self, dir: &Path) -> BTreeMap<String, String> {
        self.files
            .iter()
            .map(|f| {
                let name: PathBuf = f.path.strip_prefix(dir).map(Path::to_path_buf).unwrap_or_else(|_| f.path.clone());
                (name.to_string_lossy().replace('\\', "/"), f.sha256.clone())
            })
            .collect()
    }

    /// Embeds `texts` in batches of `batch_size` and calls `progress` with the number done.
    pub fn embed(&self, texts: &[String], batch_size: usize, mut progress: impl FnMut(usize)) -> Result<EmbeddingOutput> {
        // Tokenize in chunks and keep only the ids: a full encoding also carries the token strings,
        // offsets and the overflowing part of every truncated text.
        let mut tokens = Vec::with_capacity(texts.len());
        let mut truncated = 0;
        for chunk in texts.chunks(1024) {
            let encodings = self
                .tokenizer
                .encode_batch(chunk.iter().map(String::as_str).collect::<Vec<_>>(), true)
                .map_err(|e| Error::internal(format!("tokenization failed ({e})")))?;
            truncated += encodings.iter().filter(|e| !e.get_overflowing().is_empty()).count();
            tokens.extend(encodings.iter().map(|e| Tokens { ids: e.get_ids().to_vec(), type_ids: e.get_type_ids().to_vec() }));
        }

        // In order of decreasing length, so a shortage of memory shows in the first batch.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].ids.len()));

        let mut data = vec![0f32; texts.len() * self.dimension];
        let mut done = 0;
        for batch in order.chunks(batch_size.max(1)) {
            let encodings: Vec<&Tokens> = batch.iter().map(|&i| &tokens[i]).collect();
            let pooled = match &self.engine {
                Engine::Native(bert) => self.embed_native(bert, &encodings)?,
                Engine::Candle { bert, device } => self.embed_candle(bert, device, &encodings)?,
            };
            for (&i, row) in batch.iter().zip(pooled.chunks_exact(self.dimension)) {
                data[i * self.dimension..(i + 1) * self.dimension].copy_from_slice(row);
            }
            done += batch.len();
            progress(done);
        }
        Ok(EmbeddingOutput { data, truncated })
    }

    /// Pools and normalises one batch with the packed CPU encoder.
    fn embed_native(&self, bert: &native::Bert, batch: &[&Tokens]) -> Result<Vec<f32>> {
        let sequences: Vec<native::Sequence> = batch.iter().map(|t| native::Sequence { ids: &t.ids, type_ids: &t.type_ids }).collect();
        let hidden = bert.forward(&sequences)?;
        let d = self.dimension;
        let mut pooled = vec![0f32; batch.len() * d];
        let mut start = 0;
        for (e, out) in batch.iter().zip(pooled.chunks_exact_mut(d)) {
            let len = e.ids.len();
            let rows = &hidden[start * d..(start + len) * d];
            start += len;
            match self.pooling {
                Pooling::Cls => out.copy_from_slice(&rows[..d]),
                Pooling::Mean => {
                    for row in rows.chunks_exact(d) {
                        out.iter_mut().zip(row).for_each(|(o, &v)| *o += v);
                    }
                    let count = (len as f32).max(1e-9);
                    out.iter_mut().for_each(|o| *o /= count);
                }
                Pooling::Max => {
                    out.fill(f32::NEG_INFINITY);
                    for row in rows.chunks_exact(d) {
                        out.iter_mut().zip(row).for_each(|(o, &v)| *o = o.max(v));
                    }
                }
            }
            if self.normalize {
                let norm = out.iter().map(|&v| v * v).sum::<f32>().sqrt().max(1e-12);
                out.iter_mut().for_each(|o| *o /= norm);
            }
        }
        Ok(pooled)
    }

    /// Pools and normalises one padded batch with candle-transformers' BERT.
    fn embed_candle(&self, bert: &BertModel, device: &Device, batch: &[&Tokens]) -> Result<Vec<f32>> {
        let width = batch.iter().map(|t| t.ids.len()).max().unwrap_or(0).max(1);
        let mut ids = vec![0u32; batch.len() * width];
        let mut types = vec![0u32; batch.len() * width];
        let mut mask = vec![0u32; batch.len() * width];
        for (row, t) in batch.iter().enumerate() {
            let at = row * width..row * width + t.ids.len();
            ids[at.clone()].copy_from_slice(&t.ids);
            types[at.clone()].copy_from_slice(&t.type_ids);
            mask[at].fill(1);
        }
        let shape = (batch.len(), width);
        let ids = Tensor::from_vec(ids, shape, device)?;
        let types = Tensor::from_vec(types, shape, device)?;
        let mask = Tensor::from_vec(mask, shape, device)?;
        let hidden = bert.forward(&ids, &types, Some(&mask))?;
        let pooled = self.pool(&hidden, &mask)?;
        let pooled = if self.normalize {
            pooled.broadcast_div(&pooled.sqr()?.sum_keepdim(1)?.sqrt()?.clamp(1e-12, f64::MAX)?)?
        } else {
            pooled
        };
        Ok(pooled.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?)
    }

    fn pool(&self, hidden: &Tensor, mask: &Tensor) -> Result<Tensor> {
        let mask = mask.to_dtype(DType::F32)?.unsqueeze(2)?;
        Ok(match self.pooling {
            Pooling::Cls => hidden.narrow(1, 0, 1)?.squeeze(1)?,
            Pooling::Mean => {
                let summed = hidden.broadcast_mul(&mask)?.sum(1)?;
                let counts = mask.sum(1)?.clamp(1e-9, f64::MAX)?;
                summed.broadcast_div(&counts)?
            }
            Pooling::Max => {
                // Padding positions get a large negative value so they never win the maximum.
                let penalty = ((mask.ones_like()? - &mask)? * -1e9)?;
                hidden.broadcast_add(&penalty)?.max(1)?
            }
        })
    }
}

/// Hex SHA-256 of a byte string.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(bytes))
}

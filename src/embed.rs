//! Sentence-BERT embeddings with candle.
//!
//! A sentence-transformers model directory contains `config.json` (the BERT configuration),
//! `model.safetensors`, `tokenizer.json`, `1_Pooling/config.json` (mean, CLS or max pooling),
//! `sentence_bert_config.json` (`max_seq_length`) and `modules.json` (whether a `Normalize`
//! module follows the pooling). Texts are tokenized with truncation to `max_seq_length`, sorted by
//! token length into batches so padding stays small, run through BERT in f32, pooled over the
//! attention mask, optionally L2-normalised, and returned in the original order.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use candle_transformers::models::bert::{BertModel, Config};
use serde::Deserialize;
use tokenizers::{Tokenizer, TruncationParams};

use crate::dataset::{hex, InputFile};
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

#[derive(Deserialize)]
struct PoolingConfig {
    #[serde(default)]
    pooling_mode_cls_token: bool,
    #[serde(default)]
    pooling_mode_mean_tokens: bool,
    #[serde(default)]
    pooling_mode_max_tokens: bool,
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

/// A loaded sentence-transformers model.
pub struct Model {
    pub name: String,
    bert: BertModel,
    tokenizer: Tokenizer,
    pub pooling: Pooling,
    pub normalize: bool,
    pub max_seq_length: usize,
    pub dimension: usize,
    device: Device,
    /// Every model file read, with its hash, for the manifest.
    pub files: Vec<InputFile>,
}

/// The output of [`Model::embed`].
pub struct EmbeddingOutput {
    /// Row-major vectors in the order of the input texts.
    pub data: Vec<f32>,
    /// How many texts were cut at `max_seq_length` tokens.
    pub truncated: usize,
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path, files: &mut Vec<InputFile>) -> Result<T> {
    let (bytes, info) = crate::dataset::read_hashed(path, "model").map_err(|e| {
        e.with_hint("a sentence-transformers model directory is expected; fetch the reference model with scripts/fetch-model.sh")
    })?;
    files.push(info);
    serde_json::from_slice(&bytes).map_err(|e| Error::input(format!("{}: invalid JSON ({e})", path.display())))
}

impl Model {
    /// Loads the model in directory `dir` onto `device`.
    pub fn load(dir: &Path, device: Device) -> Result<Model> {
        let mut files = Vec::new();
        let config: Config = read_json(&dir.join("config.json"), &mut files)?;
        let pooling: PoolingConfig = read_json(&dir.join("1_Pooling/config.json"), &mut files)?;
        let sbert: SentenceBertConfig = read_json(&dir.join("sentence_bert_config.json"), &mut files)?;
        let modules: Vec<ModuleEntry> = read_json(&dir.join("modules.json"), &mut files)?;

        let pooling = match (pooling.pooling_mode_mean_tokens, pooling.pooling_mode_cls_token, pooling.pooling_mode_max_tokens) {
            (true, false, false) => Pooling::Mean,
            (false, true, false) => Pooling::Cls,
            (false, false, true) => Pooling::Max,
            _ => {
                return Err(Error::input_hint(
                    format!("{}: exactly one of the mean, CLS and max pooling modes must be set", dir.join("1_Pooling/config.json").display()),
                    "combined pooling modes are not supported",
                ))
            }
        };
        let normalize = modules.iter().any(|m| m.kind.ends_with("Normalize"));

        let tokenizer_path = dir.join("tokenizer.json");
        let (tokenizer_bytes, info) = crate::dataset::read_hashed(&tokenizer_path, "model")?;
        files.push(info);
        let mut tokenizer = Tokenizer::from_bytes(&tokenizer_bytes)
            .map_err(|e| Error::input(format!("{}: invalid tokenizer ({e})", tokenizer_path.display())))?;
        tokenizer.with_padding(None);
        tokenizer
            .with_truncation(Some(TruncationParams { max_length: sbert.max_seq_length, ..Default::default() }))
            .map_err(|e| Error::input(format!("{}: cannot set truncation ({e})", tokenizer_path.display())))?;

        let weights = dir.join("model.safetensors");
        let (_, info) = crate::dataset::read_hashed(&weights, "model")?;
        files.push(info);
        // SAFETY: the file is memory-mapped read-only and not modified while the model lives.
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&[&weights], DType::F32, &device) }
            .map_err(|e| Error::input(format!("{}: cannot be read as safetensors ({e})", weights.display())))?;
        let bert = BertModel::load(vb, &config)
            .map_err(|e| Error::input(format!("{}: weights do not match config.json ({e})", weights.display())))?;

        let name = dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        Ok(Model {
            name,
            bert,
            tokenizer,
            pooling,
            normalize,
            max_seq_length: sbert.max_seq_length,
            dimension: config.hidden_size,
            device,
            files,
        })
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

    /// Embeds `texts` in batches of `batch_size`; `progress` is called with the number done.
    pub fn embed(&self, texts: &[String], batch_size: usize, mut progress: impl FnMut(usize)) -> Result<EmbeddingOutput> {
        let encodings = self
            .tokenizer
            .encode_batch(texts.iter().map(String::as_str).collect::<Vec<_>>(), true)
            .map_err(|e| Error::internal(format!("tokenization failed ({e})")))?;
        let truncated = encodings.iter().filter(|e| !e.get_overflowing().is_empty()).count();

        // Longest first, so the first batch shows the peak memory at once.
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(encodings[i].get_ids().len()));

        let mut data = vec![0f32; texts.len() * self.dimension];
        let mut done = 0;
        for batch in order.chunks(batch_size.max(1)) {
            let width = batch.iter().map(|&i| encodings[i].get_ids().len()).max().unwrap_or(0).max(1);
            let mut ids = vec![0u32; batch.len() * width];
            let mut mask = vec![0u32; batch.len() * width];
            for (row, &i) in batch.iter().enumerate() {
                let e = &encodings[i];
                ids[row * width..row * width + e.get_ids().len()].copy_from_slice(e.get_ids());
                mask[row * width..row * width + e.get_ids().len()].copy_from_slice(e.get_attention_mask());
            }
            let shape = (batch.len(), width);
            let ids = Tensor::from_vec(ids, shape, &self.device)?;
            let mask = Tensor::from_vec(mask, shape, &self.device)?;
            let types = ids.zeros_like()?;
            let hidden = self.bert.forward(&ids, &types, Some(&mask))?;
            let pooled = self.pool(&hidden, &mask)?;
            let pooled = if self.normalize {
                pooled.broadcast_div(&pooled.sqr()?.sum_keepdim(1)?.sqrt()?)?
            } else {
                pooled
            };
            let rows: Vec<Vec<f32>> = pooled.to_dtype(DType::F32)?.to_vec2()?;
            for (&i, row) in batch.iter().zip(rows) {
                data[i * self.dimension..(i + 1) * self.dimension].copy_from_slice(&row);
            }
            done += batch.len();
            progress(done);
        }
        Ok(EmbeddingOutput { data, truncated })
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

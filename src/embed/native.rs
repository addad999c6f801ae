//! A BERT encoder for CPUs, written for throughput.
//!
//! The batch is packed: the tokens of all texts are stacked into one matrix with no padding.
//! Every dense layer is then one large matrix product over real tokens only. Attention runs per
//! text and head over that text's own tokens. Matrix products use the `gemm` crate (the kernels
//! candle uses, with their AVX-512 variants), spread over the rayon thread pool. The element-wise
//! steps (bias, GELU, softmax, layer normalisation) are plain loops, compiled once per
//! instruction set (AVX-512, AVX2 with FMA, baseline) and picked at run time.
//!
//! The arithmetic is f32 throughout, as in the reference implementation. The polynomial `exp` and
//! `erf` below are accurate to a few units in the 7th significant digit, far inside the parity
//! bound with sentence-transformers.

use std::path::Path;

use candle_core::safetensors::SliceSafetensors;
use rayon::prelude::*;
use serde::Deserialize;

use crate::error::{Error, Result};

/// The `config.json` fields the encoder needs.
#[derive(Debug, Deserialize)]
pub struct BertConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub hidden_act: String,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub layer_norm_eps: f64,
    #[serde(default)]
    pub position_embedding_type: Option<String>,
    #[serde(default)]
    pub model_type: Option<String>,
}

#[derive(Debug, Clone, Copy)]
enum Activation {
    /// GELU with the exact error function.
    Gelu,
    /// GELU with the tanh approximation.
    GeluTanh,
    Relu,
}

struct Norm {
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// A dense layer. `weight` is `[out × in]` row-major, as stored in the checkpoint.
struct Linear {
    weight: Vec<f32>,
    bias: Vec<f32>,
    inputs: usize,
    outputs: usize,
}

struct Layer {
    /// Query, key and value stacked into one `[3·hidden × hidden]` layer.
    qkv: Linear,
    attention_out: Linear,
    attention_norm: Norm,
    up: Linear,
    down: Linear,
    output_norm: Norm,
}

/// The encoder's weights and shape.
pub struct Bert {
    hidden: usize,
    heads: usize,
    eps: f32,
    activation: Activation,
    max_positions: usize,
    vocab: usize,
    types: usize,
    word: Vec<f32>,
    position: Vec<f32>,
    token_type: Vec<f32>,
    embedding_norm: Norm,
    layers: Vec<Layer>,
}

/// One tokenized text of a batch.
pub struct Sequence<'a> {
    pub ids: &'a [u32],
    pub type_ids: &'a [u32],
}

impl Bert {
    /// Reads the weights from `bytes`, the contents of the safetensors file `weights`, for the
    /// shape in `config`.
    pub fn load(config: &BertConfig, config_path: &Path, weights: &Path, bytes: &[u8]) -> Result<Bert> {
        let bad_config = |what: String| {
            Error::input_hint(
                format!("{}: {what}", config_path.display()),
                "the encoder runs BERT models with absolute positions; check that config.json belongs to such a model",
            )
        };
        let activation = match config.hidden_act.as_str() {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "relu" => Activation::Relu,
            other => return Err(bad_config(format!("hidden_act `{other}` is not supported; use gelu, gelu_new or relu"))),
        };
        if let Some(kind) = config.position_embedding_type.as_deref() {
            if kind != "absolute" {
                return Err(bad_config(format!("position_embedding_type `{kind}` is not supported; only absolute positions are")));
            }
        }
        if config.num_attention_heads == 0 || config.hidden_size % config.num_attention_heads != 0 {
            return Err(bad_config(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                config.hidden_size, config.num_attention_heads
            )));
        }

        let tensors = candle_core::safetensors::SliceSafetensors::new(bytes).map_err(|e| {
            Error::input_hint(
                format!("{}: cannot be read as safetensors ({e})", weights.display()),
                "the file is damaged or incomplete; copy the model folder again from its source",
            )
        })?;
        let mut store = Store { tensors, path: weights, prefix: String::new() };
        let prefix = config.model_type.clone().unwrap_or_else(|| "bert".into());
        if store.tensors.get("embeddings.word_embeddings.weight").is_err()
            && store.tensors.get(&format!("{prefix}.embeddings.word_embeddings.weight")).is_ok()
        {
            store.prefix = format!("{prefix}.");
        }

        let (h, inter) = (config.hidden_size, config.intermediate_size);
        let norm = |store: &mut Store, name: &str| -> Result<Norm> {
            Ok(Norm { weight: store.take(&format!("{name}.weight"), &[h])?, bias: store.take(&format!("{name}.bias"), &[h])? })
        };
        let linear = |store: &mut Store, name: &str, inputs: usize, outputs: usize| -> Result<Linear> {
            Ok(Linear {
                weight: store.take(&format!("{name}.weight"), &[outputs, inputs])?,
                bias: store.take(&format!("{name}.bias"), &[outputs])?,
                inputs,
                outputs,
            })
        };

        let word = store.take("embeddings.word_embeddings.weight", &[config.vocab_size, h])?;
        let position = store.take("embeddings.position_embeddings.weight", &[config.max_position_embeddings, h])?;
        let token_type = store.take("embeddings.token_type_embeddings.weight", &[config.type_vocab_size, h])?;
        let embedding_norm = norm(&mut store, "embeddings.LayerNorm")?;
        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let at = |part: &str| format!("encoder.layer.{i}.{part}");
            let q = linear(&mut store, &at("attention.self.query"), h, h)?;
            let k = linear(&mut store, &at("attention.self.key"), h, h)?;
            let v = linear(&mut store, &at("attention.self.value"), h, h)?;
            let qkv = Linear {
                weight: [q.weight, k.weight, v.weight].concat(),
                bias: [q.bias, k.bias, v.bias].concat(),
                inputs: h,
                outputs: 3 * h,
            };
            layers.push(Layer {
                qkv,
                attention_out: linear(&mut store, &at("attention.output.dense"), h, h)?,
                attention_norm: norm(&mut store, &at("attention.output.LayerNorm"))?,
                up: linear(&mut store, &at("intermediate.dense"), h, inter)?,
                down: linear(&mut store, &at("output.dense"), inter, h)?,
                output_norm: norm(&mut store, &at("output.LayerNorm"))?,
            });
        }
        Ok(Bert {
            hidden: h,
            heads: config.num_attention_heads,
            eps: config.layer_norm_eps as f32,
            activation,
            max_positions: config.max_position_embeddings,
            vocab: config.vocab_size,
            types: config.type_vocab_size,
            word,
            position,
            token_type,
            embedding_norm,
            layers,
        })
    }

    /// Runs the encoder over `batch` and returns the last hidden states of all tokens, packed:
    /// the rows of text 0, then those of text 1, and so on (`[Σ lengths × hidden]`).
    pub fn forward(&self, batch: &[Sequence]) -> Result<Vec<f32>> {
        let h = self.hidden;
        let mut starts = Vec::with_capacity(batch.len() + 1);
        let mut total = 0;
        for s in batch {
            if s.ids.len() > self.max_positions {
                return Err(Error::internal(format!("a text of {} tokens exceeds the model's {} positions", s.ids.len(), self.max_positions)));
            }
            starts.push(total);
            total += s.ids.len();
        }
        starts.push(total);

        // Embeddings: word + position + token type, then layer normalisation.
        let mut x = vec![0f32; total * h];
        for (s, seq) in batch.iter().enumerate() {
            for (p, (&id, &ty)) in seq.ids.iter().zip(seq.type_ids).enumerate() {
                let (id, ty) = (id as usize, ty as usize);
                if id >= self.vocab || ty >= self.types {
                    return Err(Error::internal(format!("token id {id} or type {ty} lies outside the model's vocabulary")));
                }
                let row = &mut x[(starts[s] + p) * h..(starts[s] + p + 1) * h];
                add3(row, &self.word[id * h..(id + 1) * h], &self.position[p * h..(p + 1) * h], &self.token_type[ty * h..(ty + 1) * h]);
            }
        }
        layer_norm_rows(&mut x, &self.embedding_norm, self.eps);

        let inter = self.layers.first().map_or(0, |l| l.up.outputs);
        let mut qkv = vec![0f32; total * 3 * h];
        let mut context = vec![0f32; total * h];
        let mut up = vec![0f32; total * inter];
        for layer in &self.layers {
            linear(&x, &layer.qkv, &mut qkv, false);
            self.attention(&qkv, &starts, &mut context);
            // x ← norm(x + context·Woᵀ + b)
            linear(&context, &layer.attention_out, &mut x, true);
            layer_norm_rows(&mut x, &layer.attention_norm, self.eps);
            linear(&x, &layer.up, &mut up, false);
            activate(&mut up, self.activation);
            linear(&up, &layer.down, &mut x, true);
            layer_norm_rows(&mut x, &layer.output_norm, self.eps);
        }
        Ok(x)
    }

    /// Scaled dot-product attention of every text and head, over that text's tokens only.
    fn attention(&self, qkv: &[f32], starts: &[usize], context: &mut [f32]) {
        let h = self.hidden;
        let d = h / self.heads;
        let scale = 1.0 / (d as f32).sqrt();
        let out = SharedMut(context.as_mut_ptr());
        let tasks: Vec<(usize, usize)> = (0..starts.len() - 1).flat_map(|s| (0..self.heads).map(move |head| (s, head))).collect();
        tasks.into_par_iter().for_each_init(Vec::new, |scores: &mut Vec<f32>, (s, head)| {
            let (start, len) = (starts[s], starts[s + 1] - starts[s]);
            if len == 0 {
                return;
            }
            scores.clear();
            scores.resize(len * len, 0.0);
            let q = qkv[start * 3 * h + head * d..].as_ptr();
            let k = qkv[start * 3 * h + h + head * d..].as_ptr();
            let v = qkv[start * 3 * h + 2 * h + head * d..].as_ptr();
            let row = 3 * h as isize;
            // SAFETY: the pointers address `len` rows of `d` values inside `qkv` (stride 3h), and
            // `scores` has room for len × len values. `gemm` stays within those bounds.
            unsafe {
                gemm::gemm(len, len, d, scores.as_mut_ptr(), 1, len as isize, false, q, 1, row, k, row, 1, 0.0, scale, false, false, false, gemm::Parallelism::None);
            }
            softmax_rows(scores, len);
            // SAFETY: each task writes the columns of its own head in the rows of its own text,
            // so no two tasks write the same element of `context`.
            unsafe {
                let dst = out.at(start * h + head * d);
                gemm::gemm(len, d, len, dst, 1, h as isize, false, scores.as_ptr(), 1, len as isize, v, 1, row, 0.0, 1.0, false, false, false, gemm::Parallelism::None);
            }
        });
    }
}

/// A raw pointer that tasks writing disjoint parts of one buffer share.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: used only where every task writes a disjoint region (see `Bert::attention`).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}

impl SharedMut {
    /// Returns the pointer `offset` elements in. The caller keeps within the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: the caller guarantees `offset` lies within the buffer.
        unsafe { self.0.add(offset) }
    }
}

/// Looks up checkpoint tensors by name, checking their shapes.
struct Store<'a> {
    tensors: SliceSafetensors<'a>,
    path: &'a Path,
    prefix: String,
}

impl Store<'_> {
    /// Copies tensor `name` out as f32 values, checking that it has `shape`.
    fn take(&mut self, name: &str, shape: &[usize]) -> Result<Vec<f32>> {
        let key = format!("{}{name}", self.prefix);
        let tensor = self.tensors.load(&key, &candle_core::Device::Cpu).map_err(|_| {
            Error::input_hint(
                format!("{}: tensor `{key}` is missing", self.path.display()),
                "the weights must be a BERT checkpoint matching config.json",
            )
        })?;
        if tensor.dims() != shape {
            return Err(Error::input(format!(
                "{}: tensor `{key}` has shape {:?}, but config.json implies {shape:?}",
                self.path.display(),
                tensor.dims()
            )));
        }
        let values = tensor
            .to_dtype(candle_core::DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| Error::input(format!("{}: tensor `{key}` cannot be read ({e})", self.path.display())))?;
        Ok(values)
    }
}

/// `out = x·Wᵀ + b`, or with `residual` set, `out = out + x·Wᵀ + b`.
fn linear(x: &[f32], layer: &Linear, out: &mut [f32], residual: bool) {
    let rows = x.len() / layer.inputs;
    if rows == 0 {
        return;
    }
    add_bias_rows(out, &layer.bias, residual);
    // SAFETY: `x` is rows × inputs, `weight` outputs × inputs and `out` rows × outputs, all
    // row-major and of exactly those lengths.
    unsafe {
        gemm::gemm(
            rows,
            layer.outputs,
            layer.inputs,
            out.as_mut_ptr(),
            1,
            layer.outputs as isize,
            true,
            x.as_ptr(),
            1,
            layer.inputs as isize,
            layer.weight.as_ptr(),
            layer.inputs as isize,
            1,
            1.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::Rayon(rayon::current_num_threads()),
        );
    }
}

#[cfg(test)]
thread_local! {
    /// Set by tests to run the baseline build of the element-wise loops on this thread.
    static BASELINE_ONLY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Returns whether the baseline build is forced on this thread (only tests force it).
#[inline(always)]
fn baseline_forced() -> bool {
    #[cfg(test)]
    return BASELINE_ONLY.with(|b| b.get());
    #[cfg(not(test))]
    false
}

/// Compiles `$name` once per instruction set and picks the best the CPU has at run time.
// NOTE: the AVX2 build has only been compiled, not run, because the test machines have AVX-512.
macro_rules! multiversion {
    ($(#[$meta:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) $body:block) => {
        $(#[$meta])*
        fn $name($($arg: $ty),*) {
            #[inline(always)]
            fn generic($($arg: $ty),*) $body
            #[cfg(target_arch = "x86_64")]
            if !baseline_forced() {
                #[target_feature(enable = "avx512f,avx512vl,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) { generic($($arg),*) }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) { generic($($arg),*) }
                if std::arch::is_x86_feature_detected!("avx512f") {
                    // SAFETY: the CPU has the features `avx512` is compiled for.
                    return unsafe { avx512($($arg),*) };
                }
                if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                    // SAFETY: as above, for AVX2 and FMA.
                    return unsafe { avx2($($arg),*) };
                }
            }
            generic($($arg),*)
        }
    };
}

multiversion! {
    /// `row = a + b + c`.
    fn add3(row: &mut [f32], a: &[f32], b: &[f32], c: &[f32]) {
        for (((r, &a), &b), &c) in row.iter_mut().zip(a).zip(b).zip(c) {
            *r = a + b + c;
        }
    }
}

multiversion! {
    /// Fills each row of `out` with `bias`, or adds `bias` to it when `accumulate` is set.
    fn add_bias_rows(out: &mut [f32], bias: &[f32], accumulate: bool) {
        for row in out.chunks_exact_mut(bias.len()) {
            if accumulate {
                for (o, &b) in row.iter_mut().zip(bias) {
                    *o += b;
                }
            } else {
                row.copy_from_slice(bias);
            }
        }
    }
}

/// Layer normalisation of every row of `x` (population variance, as PyTorch computes it).
fn layer_norm_rows(x: &mut [f32], norm: &Norm, eps: f32) {
    let h = norm.weight.len();
    x.par_chunks_mut(h * 64).for_each(|block| layer_norm_block(block, &norm.weight, &norm.bias, eps));
}

multiversion! {
    fn layer_norm_block(block: &mut [f32], weight: &[f32], bias: &[f32], eps: f32) {
        let h = weight.len() as f32;
        for row in block.chunks_exact_mut(weight.len()) {
            let mean = sum(row) / h;
            let mut lanes = [0f32; 16];
            let mut chunks = row.chunks_exact(16);
            for chunk in &mut chunks {
                for (l, &v) in lanes.iter_mut().zip(chunk) {
                    let c = v - mean;
                    *l += c * c;
                }
            }
            let tail: f32 = chunks.remainder().iter().map(|&v| (v - mean) * (v - mean)).sum();
            let variance = (lanes.iter().sum::<f32>() + tail) / h;
            let inv = 1.0 / (variance + eps).sqrt();
            for ((v, &w), &b) in row.iter_mut().zip(weight).zip(bias) {
                *v = (*v - mean) * inv * w + b;
            }
        }
    }
}

/// Sum with 16 independent lanes, so the compiler can keep it in vector registers.
#[inline(always)]
fn sum(values: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let mut chunks = values.chunks_exact(16);
    for chunk in &mut chunks {
        for (l, &v) in lanes.iter_mut().zip(chunk) {
            *l += v;
        }
    }
    lanes.iter().sum::<f32>() + chunks.remainder().iter().sum::<f32>()
}

/// Applies the activation in place, in parallel blocks.
fn activate(x: &mut [f32], activation: Activation) {
    x.par_chunks_mut(1 << 14).for_each(|block| match activation {
        Activation::Gelu => gelu_block(block),
        Activation::GeluTanh => gelu_tanh_block(block),
        Activation::Relu => block.iter_mut().for_each(|v| *v = v.max(0.0)),
    });
}

multiversion! {
    fn gelu_block(block: &mut [f32]) {
        for v in block.iter_mut() {
            *v = 0.5 * *v * (1.0 + erf(*v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}

multiversion! {
    fn gelu_tanh_block(block: &mut [f32]) {
        for v in block.iter_mut() {
            let x = *v;
            let inner = 0.797_884_6 * (x + 0.044_715 * x * x * x);
            // tanh(u) = 1 − 2 / (exp(2u) + 1)
            let tanh = 1.0 - 2.0 / (exp(2.0 * inner) + 1.0);
            *v = 0.5 * x * (1.0 + tanh);
        }
    }
}

multiversion! {
    /// Softmax of each row of the `n × n` matrix `scores`, in place.
    fn softmax_rows(scores: &mut [f32], n: usize) {
        for row in scores.chunks_exact_mut(n) {
            let mut lanes = [f32::NEG_INFINITY; 16];
            let mut chunks = row.chunks_exact(16);
            for chunk in &mut chunks {
                for (l, &v) in lanes.iter_mut().zip(chunk) {
                    *l = l.max(v);
                }
            }
            let max = chunks.remainder().iter().chain(lanes.iter()).fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            for v in row.iter_mut() {
                *v = exp(*v - max);
            }
            let inv = 1.0 / sum(row);
            for v in row.iter_mut() {
                *v *= inv;
            }
        }
    }
}

/// `e^x` for f32: range reduction by ln 2 and a degree-6 polynomial (relative error about 2e-7).
/// Inputs below −87 give about 1e-38 instead of underflowing.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding and subtracting it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    // The low bits of `shifted` contain k = round(x / ln 2). Integer arithmetic on them builds 2^k
    // without a float-to-integer conversion, so the loop stays vectorised.
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let k = shifted - ROUND;
    let r = x - k * 0.693_359_4 + k * 2.121_944_4e-4;
    let p = ((((1.987_569_1e-4 * r + 1.398_199_9e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r + 0.166_666_65) * r + 0.5;
    let e = p * r * r + r + 1.0;
    e * f32::from_bits(shifted.to_bits().wrapping_add(127) << 23)
}

/// The error function by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
#[inline(always)]
pub(crate) fn erf(x: f32) -> f32 {
    let a = x.abs();
    let t = 1.0 / (1.0 + 0.327_591_1 * a);
    let poly = ((((1.061_405_4 * t - 1.453_152_1) * t + 1.421_413_7) * t - 0.284_496_72) * t + 0.254_829_6) * t;
    let y = 1.0 - poly * exp(-a * a);
    y.copysign(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_the_standard_library() {
        let mut worst = 0f64;
        for i in -87_000..=88_000 {
            let x = i as f32 / 1000.0;
            let want = (x as f64).exp();
            worst = worst.max(((exp(x) as f64 - want) / want).abs());
        }
        assert!(worst < 4e-7, "worst relative error {worst}");
    }

    #[test]
    fn erf_matches_published_values() {
        // Abramowitz and Stegun, table 7.1: erf(0.5), erf(1), erf(2). The bound is the formula's
        // 1.5e-7 plus the rounding of its f32 evaluation.
        for (x, want) in [(0.5f32, 0.520_499_877_8f64), (1.0, 0.842_700_792_9), (2.0, 0.995_322_265_0), (-1.0, -0.842_700_792_9), (0.0, 0.0)] {
            assert!((erf(x) as f64 - want).abs() < 4e-7, "erf({x}) = {}", erf(x));
        }
    }

    /// The vector builds of the element-wise loops against the baseline build: no fused
    /// multiply-adds are formed and every sum has the same 16-lane order, so the results must be
    /// identical to the bit.
    #[test]
    fn vector_builds_match_the_baseline_to_the_bit() {
        let mut state = 11u64;
        let mut values = |n: usize, scale: f32| -> Vec<f32> {
            (0..n)
                .map(|_| {
                    state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
                    (((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5) * scale
                })
                .collect()
        };
        let (h, rows) = (48, 37);
        let x = values(h * rows, 20.0);
        let (a, b, c) = (values(h, 1.0), values(h, 1.0), values(h, 1.0));
        let (weight, bias) = (values(h, 2.0), values(h, 2.0));
        let run = |baseline: bool| -> Vec<Vec<f32>> {
            BASELINE_ONLY.with(|f| f.set(baseline));
            let mut outputs = Vec::new();
            let mut row = vec![0f32; h];
            add3(&mut row, &a, &b, &c);
            outputs.push(row);
            let mut out = x.clone();
            add_bias_rows(&mut out, &bias, true);
            outputs.push(out);
            let mut out = x.clone();
            layer_norm_block(&mut out, &weight, &bias, 1e-12);
            outputs.push(out);
            let mut out = x.clone();
            gelu_block(&mut out);
            outputs.push(out);
            let mut out = x.clone();
            gelu_tanh_block(&mut out);
            outputs.push(out);
            let mut out = x[..37 * 37].to_vec();
            softmax_rows(&mut out, 37);
            outputs.push(out);
            BASELINE_ONLY.with(|f| f.set(false));
            outputs
        };
        let (vector, baseline) = (run(false), run(true));
        for (step, (v, s)) in vector.iter().zip(&baseline).enumerate() {
            let differ = v.iter().zip(s).filter(|(p, q)| p.to_bits() != q.to_bits()).count();
            assert_eq!(differ, 0, "step {step}: {differ} values differ between the vector and baseline builds");
        }
    }

    #[test]
    fn softmax_rows_sum_to_one_and_keep_order() {
        let mut scores = vec![1.0, 2.0, 3.0, -50.0, 0.0, 50.0, 0.0, 0.0, 0.0];
        softmax_rows(&mut scores, 3);
        for row in scores.chunks(3) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        }
        // e^1 / (e^1 + e^2 + e^3)
        assert!((scores[0] - 0.090_030_57).abs() < 1e-7);
        assert!((scores[6] - 1.0 / 3.0).abs() < 1e-7);
    }
}

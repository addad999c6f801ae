//! The embedding stage against sentence-transformers: parity of the vectors on real texts in four
//! languages, both encoders, f16 output, sharded output with resume after an interruption, and
//! the errors for broken model directories.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use clipaudit::dataset::{load_embeddings, Embeddings};
use polars::prelude::SerReader;

fn model_dir() -> PathBuf {
    let Some(model) = std::env::var_os("CLIPAUDIT_MODEL_DIR") else {
        panic!("CLIPAUDIT_MODEL_DIR is not set: fetch the model with scripts/fetch-model.sh and export its output (bash .ci/run does both)");
    };
    PathBuf::from(model)
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn clipaudit(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipaudit")).args(args).current_dir(dir).env_remove("RUST_LOG").output().expect("clipaudit runs")
}

fn text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
    let norm = |v: &[f32]| v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    dot / (norm(a) * norm(b))
}

/// Loads the reference vectors of tests/parity, made by sentence-transformers (see its README).
fn reference() -> Embeddings {
    load_embeddings(&root().join("tests/parity/reference.parquet")).unwrap().0
}

/// Asserts that every vector of `ours` has cosine ≥ 0.9999 to the reference vector of its id.
fn assert_parity(ours: &Embeddings, label: &str) {
    let reference = reference();
    let position: std::collections::HashMap<&str, usize> = reference.ids.iter().enumerate().map(|(i, id)| (id.as_str(), i)).collect();
    let mut worst = (1.0f64, String::new());
    for (i, id) in ours.ids.iter().enumerate() {
        let c = cosine(ours.row(i), reference.row(position[id.as_str()]));
        if c < worst.0 {
            worst = (c, id.clone());
        }
    }
    assert!(worst.0 >= 0.9999, "{label}: text {} has cosine {} to sentence-transformers", worst.1, worst.0);
}

#[test]
fn embed_matches_sentence_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let texts = root().join("tests/parity/texts.jsonl");
    let out = clipaudit(
        &["embed", texts.to_str().unwrap(), "--model", model_dir().to_str().unwrap(), "--out", "ours.parquet", "--batch-size", "7"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let (ours, _) = load_embeddings(&dir.path().join("ours.parquet")).unwrap();
    assert_eq!(ours.ids, reference().ids, "the output keeps the input order");
    assert!(ours.ids.len() >= 200);
    for language in ["de", "en", "es", "nl"] {
        assert!(ours.ids.iter().filter(|id| id.starts_with(language)).count() >= 50, "too few {language} texts");
    }
    assert_parity(&ours, "native encoder");

    // The 40 whole speeches exceed 256 tokens, and the count appears in the provenance and output.
    let provenance: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ours.parquet.json")).unwrap()).unwrap();
    let truncated = provenance["truncated_documents"].as_u64().unwrap();
    assert!((30..=40).contains(&truncated), "{provenance}");
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{truncated} of the texts exceeded 256 tokens")), "{}", text(&out));
}

#[test]
fn candle_encoder_matches_sentence_transformers() {
    let model = clipaudit::embed::Model::load(&model_dir(), clipaudit::embed::Backend::Candle(candle_core::Device::Cpu)).unwrap();
    let lines = std::fs::read_to_string(root().join("tests/parity/texts.jsonl")).unwrap();
    // Every seventh text keeps the test short while covering all four languages and both kinds.
    let rows: Vec<serde_json::Value> = lines.lines().step_by(7).map(|l| serde_json::from_str(l).unwrap()).collect();
    let texts: Vec<String> = rows.iter().map(|r| r["text"].as_str().unwrap().to_string()).collect();
    let output = model.embed(&texts, 8, |_| {}).unwrap();
    let ours = Embeddings { ids: rows.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect(), dimension: 384, data: output.data };
    assert_parity(&ours, "candle encoder");
}

#[test]
fn embed_f16_output_stays_within_parity() {
    let dir = tempfile::tempdir().unwrap();
    let texts = root().join("tests/parity/texts.jsonl");
    let out = clipaudit(
        &["embed", texts.to_str().unwrap(), "--model", model_dir().to_str().unwrap(), "--out", "half.parquet", "--dtype", "f16"],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let file = std::fs::File::open(dir.path().join("half.parquet")).unwrap();
    let df = polars::prelude::ParquetReader::new(file).finish().unwrap();
    assert_eq!(df.column("embedding").unwrap().dtype().to_string(), "list[f16]");
    let (half, _) = load_embeddings(&dir.path().join("half.parquet")).unwrap();
    assert_parity(&half, "f16 output");
}

/// Writes the first `n` speeches of the shipped corpus as JSONL.
fn speeches(path: &Path, n: usize) {
    let columns = clipaudit::dataset::Columns { id: "id", text: Some("text"), groups: &[], outcome: None };
    let corpus = clipaudit::dataset::load_corpus(&[root().join("fixtures/parlspeech/corpus.parquet")], &columns).unwrap();
    let mut jsonl = String::new();
    for i in 0..n {
        jsonl.push_str(&serde_json::json!({"id": corpus.ids[i], "text": corpus.texts[i]}).to_string());
        jsonl.push('\n');
    }
    std::fs::write(path, jsonl).unwrap();
}

#[test]
fn embed_interrupted_resumes() {
    let dir = tempfile::tempdir().unwrap();
    speeches(&dir.path().join("speeches.jsonl"), 240);
    let model = model_dir();
    let args = ["embed", "speeches.jsonl", "--model", model.to_str().unwrap(), "--out", "out.parquet", "--shard-size", "30"];

    // An uninterrupted run for comparison.
    let full = clipaudit(&[&args[..5], &["full.parquet", "--shard-size", "30"]].concat(), dir.path());
    assert_eq!(full.status.code(), Some(0), "{}", text(&full));

    // Stop the process for real once two shards are on disk.
    let mut child = Command::new(env!("CARGO_BIN_EXE_clipaudit"))
        .args(args)
        .current_dir(dir.path())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let parts = dir.path().join("out.parquet.parts");
    let started = Instant::now();
    while !parts.join("part-000001.parquet").exists() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be interrupted");
        assert!(started.elapsed() < Duration::from_secs(120), "no shard appeared");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!dir.path().join("out.parquet").exists(), "an interrupted run leaves no output file");
    let complete = std::fs::read_dir(&parts).unwrap().filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().ends_with(".parquet")).count();
    assert!((2..8).contains(&complete), "{complete} shards complete");

    let resumed = clipaudit(&args, dir.path());
    assert_eq!(resumed.status.code(), Some(0), "{}", text(&resumed));
    assert!(String::from_utf8_lossy(&resumed.stderr).contains(&format!("resumed: {complete} of 8 shards")), "{}", text(&resumed));
    assert!(!parts.exists(), "the shard folder is removed when the output is complete");
    assert_eq!(std::fs::read(dir.path().join("out.parquet")).unwrap(), std::fs::read(dir.path().join("full.parquet")).unwrap());
    assert_eq!(std::fs::read(dir.path().join("out.parquet.json")).unwrap(), std::fs::read(dir.path().join("full.parquet.json")).unwrap());
}

#[test]
fn embed_rejects_other_run_shards() {
    let dir = tempfile::tempdir().unwrap();
    speeches(&dir.path().join("speeches.jsonl"), 3);
    let parts = dir.path().join("out.parquet.parts");
    std::fs::create_dir(&parts).unwrap();
    std::fs::write(parts.join("run.json"), "{}").unwrap();
    let out = clipaudit(&["embed", "speeches.jsonl", "--model", model_dir().to_str().unwrap(), "--out", "out.parquet"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in ["out.parquet.parts", "different embedding run", "delete this folder"] {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {}", text(&out));
    }
}

/// Copies the model directory (linking the weights) so a test can break the copy on purpose.
fn model_copy(dir: &Path) -> PathBuf {
    let copy = dir.join("model");
    std::fs::create_dir_all(copy.join("1_Pooling")).unwrap();
    for name in clipaudit::embed::MODEL_FILES {
        if name == "model.safetensors" {
            std::os::unix::fs::symlink(model_dir().join(name), copy.join(name)).unwrap();
        } else {
            std::fs::copy(model_dir().join(name), copy.join(name)).unwrap();
        }
    }
    copy
}

/// Runs `embed` with a broken model copy, expecting exit 2 and every `needle` in stderr.
fn assert_model_rejected(break_it: impl FnOnce(&Path), needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    speeches(&dir.path().join("speeches.jsonl"), 2);
    let model = model_copy(dir.path());
    break_it(&model);
    let out = clipaudit(&["embed", "speeches.jsonl", "--model", "model", "--out", "out.parquet"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in needles {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {}", text(&out));
    }
    assert!(!dir.path().join("out.parquet").exists());
}

#[test]
fn embed_broken_model_directory() {
    assert_model_rejected(|m| std::fs::remove_file(m.join("tokenizer.json")).unwrap(), &["tokenizer.json", "scripts/fetch-model.sh"]);
    assert_model_rejected(
        |m| std::fs::write(m.join("sentence_bert_config.json"), r#"{"max_seq_length": 1024}"#).unwrap(),
        &["sentence_bert_config.json", "max_seq_length 1024", "512"],
    );
    assert_model_rejected(
        |m| {
            let config = std::fs::read_to_string(m.join("config.json")).unwrap().replace("\"intermediate_size\": 1536", "\"intermediate_size\": 1024");
            std::fs::write(m.join("config.json"), config).unwrap();
        },
        &["model.safetensors", "encoder.layer.0.intermediate.dense.weight", "[1536, 384]", "[1024, 384]"],
    );
    assert_model_rejected(
        |m| std::fs::write(m.join("1_Pooling/config.json"), r#"{"pooling_mode_mean_tokens": true, "pooling_mode_cls_token": true}"#).unwrap(),
        &["1_Pooling/config.json", "pooling modes pooling_mode_mean_tokens and pooling_mode_cls_token are set together"],
    );
    // sentence-transformers concatenates the two poolings into 768 values, so clipaudit must not
    // quietly return the mean alone.
    assert_model_rejected(
        |m| {
            let pooling = r#"{"word_embedding_dimension": 384, "pooling_mode_mean_tokens": true, "pooling_mode_mean_sqrt_len_tokens": true}"#;
            std::fs::write(m.join("1_Pooling/config.json"), pooling).unwrap();
        },
        &["1_Pooling/config.json", "pooling_mode_mean_sqrt_len_tokens"],
    );
    assert_model_rejected(
        |m| std::fs::write(m.join("1_Pooling/config.json"), r#"{"pooling_mode_mean_tokens": false}"#).unwrap(),
        &["1_Pooling/config.json", "no pooling mode is set"],
    );
    assert_model_rejected(
        |m| std::fs::write(m.join("1_Pooling/config.json"), r#"{"word_embedding_dimension": 768, "pooling_mode_mean_tokens": true}"#).unwrap(),
        &["1_Pooling/config.json", "word_embedding_dimension 768 differs from hidden_size 384"],
    );
    assert_model_rejected(
        |m| {
            let config = std::fs::read_to_string(m.join("config.json")).unwrap().replace("\"model_type\": \"bert\"", "\"model_type\": \"roberta\"");
            std::fs::write(m.join("config.json"), config).unwrap();
        },
        &["config.json", "model_type `roberta` is not supported"],
    );
    assert_model_rejected(|m| std::fs::write(m.join("modules.json"), "[{").unwrap(), &["modules.json", "invalid JSON"]);
}

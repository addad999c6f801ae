//! The `clipaudit` command line: parse, call the library, map the result to an exit status.
//!
//! Exit status: 0 success or gate passed; 1 gate failed or verification failed; 2 invalid input,
//! usage or runtime error; 3 gate indeterminate.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use clipaudit::error::{Error, Result};
use clipaudit::evidence::{bundle, signing};
use clipaudit::sample::ExhaustionPolicy;

#[derive(Parser)]
#[command(name = "clipaudit", version, about = "Evidence that a training corpus was curated in a balanced way (EU AI Act Art. 10)")]
struct Cli {
    /// More log output (-v info, -vv debug); RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Only errors on stderr; no progress.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every stage the config enables and write the signed evidence bundle.
    Run {
        /// Audit config (TOML). Without it, the shipped ParlSpeech example runs.
        config: Option<PathBuf>,
        /// Bundle folder to create; an earlier bundle there is replaced.
        #[arg(long, default_value = "clipaudit-bundle")]
        out: PathBuf,
        /// Private signing key (PKCS#8 PEM, mode 0600), e.g. from `clipaudit keygen`.
        /// Without it and without [signing] in the config, a throwaway key signs the bundle.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print the outcome as JSON on stdout.
        #[arg(long)]
        json: bool,
        /// Device for the encoder when the config embeds with a model: cpu, or cuda (GPU 0;
        /// needs a build with `--features cuda`).
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
    /// Check a bundle: every hash, every signature, no missing or extra files.
    Verify {
        /// The bundle folder.
        bundle: PathBuf,
        /// The signer's public key (SPKI PEM), obtained out of band. Without it the bundle's
        /// own signer.pub.pem is used, which proves integrity but not who signed.
        #[arg(long)]
        key: Option<PathBuf>,
        /// Print the checks as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Create an Ed25519 key pair: signer.key.pem, signer.pub.pem, signer.pub, allowed_signers.
    Keygen {
        /// Folder for the key files (created if missing; existing keys are never overwritten).
        #[arg(long)]
        out: PathBuf,
        /// Principal (signer name) for the OpenSSH files.
        #[arg(long, default_value = signing::DEFAULT_PRINCIPAL)]
        principal: String,
    },
    /// Embed texts with a sentence-transformers model (BERT family).
    Embed {
        /// Corpus: Parquet, JSONL or CSV.
        input: PathBuf,
        /// Model directory (config.json, model.safetensors, tokenizer.json, 1_Pooling/, ...).
        #[arg(long)]
        model: PathBuf,
        /// Output Parquet file (columns id, embedding); a provenance file OUT.json is written beside it.
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value = "id")]
        id_column: String,
        #[arg(long, default_value = "text")]
        text_column: String,
        /// Texts per forward pass, which sets the working memory.
        #[arg(long, default_value_t = 32)]
        batch_size: usize,
        /// Documents per shard written to OUT.parts/ as the run goes. A re-run resumes after the
        /// last complete shard.
        #[arg(long, default_value_t = 10_000)]
        shard_size: usize,
        /// Precision of the stored vectors.
        #[arg(long, value_enum, default_value = "f32")]
        dtype: clipaudit::stages::Precision,
        /// Device for the encoder: cpu, or cuda (GPU 0, which needs a build with `--features cuda`).
        #[arg(long, value_enum, default_value = "cpu")]
        device: DeviceArg,
    },
    /// Draw a ClusterClip stream (clusterclip-v1) from cluster labels.
    Sample {
        /// CSV or Parquet with columns id and cluster (integer), rows in document order.
        labels: PathBuf,
        /// Clip threshold C: the most times one document may be drawn.
        #[arg(long)]
        clip: u32,
        /// Number of draws T.
        #[arg(long)]
        draws: u64,
        /// Seed of the random stream.
        #[arg(long)]
        seed: u64,
        /// Exhaustion policy when every cluster is exhausted before T draws: stop,
        /// random_fallback or reset_counts.
        #[arg(long, default_value = "stop")]
        policy: ExhaustionPolicy,
        /// Sampler: clusterclip-v1, or the random baseline uniform-v1 (shuffled passes over all
        /// documents, ignoring clusters and --clip).
        #[arg(long, default_value = "clusterclip-v1")]
        sampler: String,
        /// Output Parquet file (columns step, id, cluster).
        #[arg(long)]
        out: PathBuf,
        /// Also write the draws per document (columns id, count) to this Parquet file.
        #[arg(long)]
        counts: Option<PathBuf>,
    },
    /// Verify a recorded sample: draw for draw against a re-run when it claims clusterclip-v1 or
    /// uniform-v1, and against the invariants (counts ≤ C, balance, exhaustion order) always.
    CheckSample {
        /// The recorded sample: Parquet, JSONL or CSV with `id` (and optionally `step`), a counts
        /// table with `id` and `count`, or an `.npy` array of document indices.
        recorded: PathBuf,
        /// CSV or Parquet with columns id and cluster (integer), rows in document order.
        #[arg(long)]
        labels: PathBuf,
        /// Clip threshold C the sample claims.
        #[arg(long)]
        clip: u32,
        /// The sampler the sample claims; other names get the invariant checks only.
        #[arg(long, default_value = "clusterclip-v1")]
        sampler: String,
        /// Seed the sample claims; required when it claims clusterclip-v1 or uniform-v1.
        #[arg(long)]
        seed: Option<u64>,
        /// Draws the sample claims; the recorded length when absent.
        #[arg(long)]
        draws: Option<u64>,
        /// Exhaustion policy the sample claims: stop, random_fallback or reset_counts.
        #[arg(long, default_value = "stop")]
        policy: ExhaustionPolicy,
        /// Print the verification as JSON on stdout.
        #[arg(long)]
        json: bool,
    },
    /// Label agreement statistics (Cohen, Fleiss, Krippendorff, Gwet) for an annotation table.
    Agreement {
        /// CSV or Parquet: long form item,rater,label, or wide form with --wide.
        annotations: PathBuf,
        /// Wide form: first column the item, one column per rater, empty cell = missing.
        #[arg(long)]
        wide: bool,
        /// Print JSON on stdout.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    match execute(cli) {
        Ok(code) => ExitCode::from(code),
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::from(2)
        }
    }
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn,usvg=error",
        (false, 1) => "info,usvg=error",
        (false, _) => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal, and never when NO_COLOR is set.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr()) && std::env::var_os("NO_COLOR").is_none();
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_target(false).with_ansi(ansi).init();
}

/// Returns a spinner on stderr when it is a terminal and output is not quiet.
fn spinner(quiet: bool) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(ProgressStyle::with_template("{spinner} {elapsed} {msg}").expect("valid template"));
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Returns a documents-per-second progress bar on stderr when it is a terminal.
/// The `--device` choices.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum DeviceArg {
    Cpu,
    Cuda,
}

impl DeviceArg {
    fn backend(self) -> Result<clipaudit::embed::Backend> {
        clipaudit::embed::Backend::for_device(matches!(self, DeviceArg::Cuda))
    }
}

fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    bar.set_style(ProgressStyle::with_template("{bar:40} {pos}/{len} documents, {per_sec}, {eta} left").expect("valid template"));
    bar
}

fn print_json(value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::internal(e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn execute(cli: Cli) -> Result<u8> {
    let quiet = cli.quiet;
    match cli.command {
        Command::Run { config, out, key, json, device } => {
            let bar = spinner(quiet);
            let progress_bar = bar.clone();
            let options = clipaudit::run::RunOptions {
                config,
                out,
                key,
                cuda: matches!(device, DeviceArg::Cuda),
                progress: Box::new(move |stage| {
                    progress_bar.set_message(stage.to_string());
                    tracing::info!("{stage}");
                }),
            };
            let outcome = clipaudit::run::run(&options);
            bar.finish_and_clear();
            let outcome = outcome?;
            if json {
                print_json(&serde_json::json!({
                    "bundle": outcome.bundle,
                    "verdict": outcome.gate.verdict,
                    "ephemeral_key": outcome.ephemeral_key,
                    "checks": outcome.gate.results,
                }))?;
            }
            if !quiet {
                for r in outcome.gate.results.iter().filter(|r| r.verdict != "pass") {
                    eprintln!("gate {}: {} [{}]: {}", r.verdict, r.check, r.subject, r.detail);
                }
                eprintln!("bundle written to {} (gate: {})", outcome.bundle.display(), outcome.gate.verdict);
                if outcome.ephemeral_key {
                    eprintln!("warning: signed with an ephemeral key, so the report marks it as not valid as evidence");
                    eprintln!("hint: create a key with `clipaudit keygen --out keys` and pass `--key keys/signer.key.pem`");
                }
            }
            Ok(match outcome.gate.verdict {
                "pass" => 0,
                "fail" => 1,
                _ => 3,
            })
        }
        Command::Verify { bundle: dir, key, json } => {
            if !dir.is_dir() {
                return Err(Error::input_hint(
                    format!("bundle folder {} not found", dir.display()),
                    "pass the folder that `clipaudit run --out` wrote",
                ));
            }
            let (verifying, own_key) = match &key {
                Some(path) => (signing::load_verifying_key_pem(path)?, false),
                None => {
                    let path = dir.join(signing::PUBLIC_KEY_PEM_FILE);
                    (signing::load_verifying_key_pem(&path)?, true)
                }
            };
            if own_key && !quiet {
                eprintln!("warning: no --key given; checking against the bundle's own signer.pub.pem, which proves integrity but not who signed");
            }
            let report = bundle::verify_bundle(&dir, &verifying, None);
            let ephemeral = std::fs::read(dir.join("manifest.json"))
                .ok()
                .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
                .is_some_and(|m| m["signer"]["ephemeral"] == true);
            if ephemeral && !quiet {
                eprintln!("warning: the manifest records an ephemeral signing key, so the signatures show integrity but not who produced the bundle");
            }
            if json {
                print_json(&report)?;
            }
            // Failed checks are errors, so they print even with --quiet.
            for check in report.checks.iter().filter(|c| !c.ok) {
                eprintln!("FAILED {}: {}: {}", check.name, check.file, check.detail);
            }
            if !quiet {
                let failed = report.checks.iter().filter(|c| !c.ok).count();
                eprintln!(
                    "{}: {} checks, {} failed (key id {})",
                    if report.passed() { "verified" } else { "verification failed" },
                    report.checks.len(),
                    failed,
                    signing::key_id(&verifying)
                );
            }
            Ok(if report.passed() { 0 } else { 1 })
        }
        Command::Keygen { out, principal } => {
            let files = signing::keygen(&out, &principal)?;
            if !quiet {
                eprintln!("wrote {}", files.private_key.display());
                eprintln!("key id {}", files.key_id);
            }
            Ok(0)
        }
        Command::Embed { input, model, out, id_column, text_column, batch_size, shard_size, dtype, device } => {
            let bar = progress_bar(quiet);
            let request = clipaudit::stages::EmbedRequest {
                input: &input,
                model_dir: &model,
                out: &out,
                id_column: &id_column,
                text_column: &text_column,
                batch_size,
                shard_size,
                precision: dtype,
            };
            let summary = clipaudit::stages::embed_file(&request, device.backend()?, &|done, total| {
                bar.set_length(total as u64);
                bar.set_position(done as u64);
            })?;
            bar.finish_and_clear();
            if !quiet {
                let p = &summary.provenance;
                if summary.resumed_shards > 0 {
                    eprintln!("resumed: {} of {} shards were complete from an earlier run", summary.resumed_shards, summary.shards);
                }
                eprintln!(
                    "{} embeddings written to {}; {} of the texts exceeded {} tokens and were cut to that length",
                    p.documents,
                    out.display(),
                    p.truncated_documents,
                    p.max_seq_length
                );
            }
            Ok(0)
        }
        Command::Sample { labels, clip, draws, seed, policy, sampler, out, counts } => {
            let request = clipaudit::stages::SampleRequest { clip, draws, seed, policy, sampler };
            let stream = clipaudit::stages::sample_file(&labels, &request, &out, counts.as_deref())?;
            if !quiet {
                eprintln!("{} draws written to {} (largest count {})", stream.draws(), out.display(), stream.max_count());
            }
            Ok(0)
        }
        Command::CheckSample { recorded, labels, clip, sampler, seed, draws, policy, json } => {
            let (ids, label_values) = clipaudit::stages::read_labels(&labels)?;
            let draws = match draws {
                Some(d) => d,
                None => clipaudit::sample_verify::read_recorded(&recorded, &ids)?.0.draws(),
            };
            let implemented = [clipaudit::sample::CLUSTERCLIP_V1, clipaudit::sample::UNIFORM_V1].contains(&sampler.as_str());
            let seed = match (seed, implemented) {
                (Some(seed), _) => seed,
                (None, false) => 0,
                (None, true) => {
                    return Err(Error::input_hint(
                        format!("--seed is required to re-run {sampler} and compare draw for draw"),
                        "pass the seed the sample was drawn with, or --sampler NAME for another sampler to check the invariants only",
                    ))
                }
            };
            let claim = clipaudit::sample_verify::Claim {
                sampler,
                params: clipaudit::sample::ClipParams { clip, draws, seed, policy },
            };
            let (verification, _) = clipaudit::sample_verify::verify_recorded(&recorded, &ids, &label_values, &claim)?;
            if json {
                print_json(&verification)?;
            }
            for failure in &verification.failures {
                eprintln!("FAILED {}: {failure}", recorded.display());
            }
            if !quiet {
                eprintln!(
                    "{}: {} ({}), {} failure(s)",
                    if verification.passed { "verified" } else { "verification failed" },
                    recorded.display(),
                    verification.kind,
                    verification.failures.len()
                );
            }
            Ok(if verification.passed { 0 } else { 1 })
        }
        Command::Agreement { annotations, wide, json } => {
            let (matrix, _) = clipaudit::dataset::load_annotations(&annotations, wide)?;
            let report = clipaudit::metrics::agreement::agreement_report(&matrix);
            if json {
                print_json(&report)?;
            } else {
                let value = serde_json::to_value(&report).map_err(|e| Error::internal(e.to_string()))?;
                for (name, stat) in value.as_object().into_iter().flatten() {
                    match stat {
                        serde_json::Value::Object(s) => {
                            let value = s.get("value").and_then(|v| v.as_f64()).map(|v| format!("{v:.6}")).unwrap_or_else(|| "undefined".into());
                            let reason = s.get("reason").and_then(|r| r.as_str()).map(|r| format!(" ({r})")).unwrap_or_default();
                            println!("{name:<24} {value}{reason}");
                        }
                        other => println!("{name:<24} {other}"),
                    }
                }
            }
            Ok(0)
        }
    }
}

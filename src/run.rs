//! `clipaudit run`: every stage the config enables, then the signed evidence bundle.
//!
//! The bundle is built in a temporary folder beside the target and renamed into place only when
//! it is complete, so a failed run leaves no partial bundle behind. Order matters for the
//! signatures: outputs, then `manifest.json` and `SHA256SUMS`, then `report.pdf` (which embeds
//! them), then the detached signatures over the final bytes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use polars::prelude::{Column, DataFrame};
use serde_json::{json, Value};

use crate::cluster::{self, Clustering, KMeansParams};
use crate::config::{Audit, GroupSpec, Reference};
use crate::dataset::{self, Corpus, EmbeddingProvenance, Embeddings, InputFile};
use crate::error::{Error, Result};
use crate::evidence::manifest::{self, Clock, ConfigEntry, Environment, FileEntry, Manifest, Signer, Step, Tool};
use crate::evidence::{bundle, signing};
use crate::gate::{self, GateReport};
use crate::metrics::agreement::{self, Weights};
use crate::metrics::{outcome, phases};
use crate::metrics::representation::{self, Populations, Representation};
use crate::report;
use crate::sample::{self, ClipParams, Stream};
use crate::sample_verify;

/// The shipped example, compiled into the binary so `clipaudit run` needs no download.
pub const EMBEDDED_EXAMPLE: &[(&str, &[u8])] = &[
    ("parlspeech/audit.toml", include_bytes!("../fixtures/parlspeech/audit.toml")),
    ("parlspeech/corpus.parquet", include_bytes!("../fixtures/parlspeech/corpus.parquet")),
    ("parlspeech/embeddings.parquet", include_bytes!("../fixtures/parlspeech/embeddings.parquet")),
    ("parlspeech/embeddings.parquet.json", include_bytes!("../fixtures/parlspeech/embeddings.parquet.json")),
    ("parlspeech/recorded_sample.parquet", include_bytes!("../fixtures/parlspeech/recorded_sample.parquet")),
    ("annotations/fleiss1971.csv", include_bytes!("../fixtures/annotations/fleiss1971.csv")),
];

/// Bootstrap replicates behind every bias-delta interval.
pub const BOOTSTRAP_RESAMPLES: usize = 1000;

/// Options of one `run`.
pub struct RunOptions {
    /// The config file; `None` runs the embedded example.
    pub config: Option<PathBuf>,
    pub out: PathBuf,
    /// A private key (PKCS#8 PEM); overrides `[signing]`. `None` with no `[signing]` key signs
    /// with an ephemeral key.
    pub key: Option<PathBuf>,
    /// Whether a model in the config runs on CUDA GPU 0 rather than the CPU.
    pub cuda: bool,
    /// Progress callback: stage name.
    pub progress: Box<dyn Fn(&str)>,
}

/// Result of one `run`.
#[derive(Debug)]
pub struct RunOutcome {
    pub bundle: PathBuf,
    pub gate: GateReport,
    pub ephemeral_key: bool,
}

/// Runs the audit and writes the bundle to `options.out`.
pub fn run(options: &RunOptions) -> Result<RunOutcome> {
    let clock = Clock::from_env()?;
    let started = clock.now();

    // The embedded example is written to a scratch folder so it is read like any other config.
    let scratch = tempfile::tempdir().map_err(|e| Error::internal(format!("cannot create a temporary folder ({e})")))?;
    let config_path = match &options.config {
        Some(path) => path.clone(),
        None => {
            for (name, bytes) in EMBEDDED_EXAMPLE {
                let path = scratch.path().join("fixtures").join(name);
                std::fs::create_dir_all(path.parent().expect("has a parent")).map_err(|e| Error::io("create", &path, e))?;
                std::fs::write(&path, bytes).map_err(|e| Error::io("write", &path, e))?;
            }
            scratch.path().join("fixtures/parlspeech/audit.toml")
        }
    };
    let audit = Audit::load(&config_path)?;
    let base = config_path.parent().map(Path::to_path_buf).unwrap_or_default();

    // Keys: an explicit key, the config's key, or an ephemeral one. A bad key fails before any work.
    let key_path = options.key.clone().or_else(|| audit.signing_key.clone()).or_else(|| {
        audit
            .raw
            .signing
            .as_ref()
            .and_then(|s| s.key_env.as_ref())
            .and_then(std::env::var_os)
            .map(PathBuf::from)
    });
    let ephemeral_key = key_path.is_none();
    let signing_key = match &key_path {
        Some(path) => signing::load_signing_key(path)?,
        None => signing::generate_signing_key()?,
    };
    // The principal: [signing].principal, else the one `keygen` wrote into signer.pub beside the key.
    let principal_from_keygen = key_path.as_ref().and_then(|path| {
        let public = path.with_file_name(signing::OPENSSH_PUBLIC_KEY_FILE);
        match signing::load_openssh_public_key(&public) {
            Ok((key, Some(name))) if key == signing_key.verifying_key() => Some(name),
            _ => None,
        }
    });
    let principal = audit
        .raw
        .signing
        .as_ref()
        .and_then(|s| s.principal.clone())
        .or(principal_from_keygen)
        .unwrap_or_else(|| if ephemeral_key { "ephemeral".to_string() } else { signing::DEFAULT_PRINCIPAL.to_string() });
    signing::validate_principal(&principal).map_err(|e| Error::from(e).context(format!("{}: signing.principal", audit.path.display())))?;

    // Prepare the target first, so a bad --out fails before any work.
    let staging = staging_dir(&options.out)?;
    let dir = staging.path();

    (options.progress)("loading corpus");
    let columns = dataset::Columns {
        id: &audit.raw.dataset.id_column,
        text: audit.raw.dataset.text_column.as_deref(),
        groups: &audit.raw.dataset.group_columns,
        outcome: audit.raw.dataset.outcome_column.as_deref(),
    };
    let corpus = dataset::load_corpus(&audit.corpus_files, &columns)?;

    (options.progress)("loading embeddings");
    let (embeddings, mut inputs, provenance) = load_or_embed(&audit, &corpus, options.cuda, &options.progress)?;
    inputs.splice(0..0, corpus.files.iter().cloned());

    (options.progress)("clustering");
    let c = &audit.raw.clustering;
    let params = KMeansParams {
        k: c.k,
        max_iterations: c.max_iterations,
        tolerance: c.tolerance,
        seed: c.seed,
        metric: audit.metric,
        init: audit.init,
        n_runs: c.n_runs,
        backend: "linfa",
        generator: "ChaCha20, key SHA-256(seed little-endian || \"kmeans-linfa\")",
    };
    let clustering = cluster::fit(&embeddings, &params)?;

    (options.progress)("sampling");
    let s = &audit.raw.sampling;
    let clip = ClipParams { clip: s.clip, draws: s.draws, seed: s.seed, policy: s.policy };
    let stream = sample::clusterclip_v1(&clustering.labels, &clip).map_err(|e| Error::input(format!("sampling: {e}")))?;
    let baseline = sample::uniform_v1(corpus.len(), stream.draws(), s.seed).map_err(|e| Error::input(format!("baseline: {e}")))?;

    let recorded = match &audit.recorded_sample {
        Some(path) => {
            (options.progress)("verifying the recorded sample");
            let claim = sample_verify::Claim { sampler: s.recorded_sampler.clone(), params: clip };
            let (verification, info) = sample_verify::verify_recorded(path, &corpus.ids, &clustering.labels, &claim)?;
            inputs.push(info);
            Some(verification)
        }
        None => None,
    };

    (options.progress)("measuring representation");
    let representations = measure_all(&audit, &corpus, &clustering, &stream, &baseline)?;

    let outcome = measure_outcomes(&audit, &corpus, &stream, &baseline)?;
    let mixtures = measure_phases(&audit, &corpus, &clustering, &stream, &representations)?;

    (options.progress)("measuring label agreement");
    let agreement = match &audit.annotations {
        Some(path) => {
            let (value, info) = measure_agreement(&audit, path)?;
            inputs.push(info);
            Some(value)
        }
        None => None,
    };

    // Stage outputs.
    std::fs::create_dir_all(dir.join("data")).map_err(|e| Error::io("create", &dir.join("data"), e))?;
    std::fs::create_dir_all(dir.join("charts")).map_err(|e| Error::io("create", &dir.join("charts"), e))?;
    write_stage_outputs(dir, &corpus, &clustering, &stream, &baseline)?;

    // Metrics, then the gate over them.
    let mut metrics = build_metrics(&audit, &corpus, &embeddings, &provenance, &clustering, &clip, &stream, &baseline, &representations, agreement);
    metrics["outcome"] = serde_json::to_value(&outcome).map_err(|e| Error::internal(e.to_string()))?;
    metrics["phases"] = serde_json::to_value(&mixtures).map_err(|e| Error::internal(e.to_string()))?;
    metrics["sampling"]["recorded"] = serde_json::to_value(&recorded).map_err(|e| Error::internal(e.to_string()))?;
    let gate = gate::evaluate(&audit.raw.gate.check, &metrics).map_err(|e| e.context(audit.path.display()))?;
    metrics["gate"] = serde_json::to_value(&gate).map_err(|e| Error::internal(e.to_string()))?;

    (options.progress)("drawing charts");
    let charts = report::draw_charts(&metrics, &clustering, &stream, s.clip)?;
    for (name, svg) in &charts {
        write(dir, name, svg.as_bytes())?;
    }
    write(dir, "metrics.json", &to_json_bytes(&metrics)?)?;
    write(dir, "config.toml", &audit.source)?;

    let verifying = signing_key.verifying_key();
    signing::write_public_key_files(dir, &verifying, &principal)?;

    // The manifest lists every output written so far.
    let finished = clock.now();
    let mut outputs = Vec::new();
    for (relative, role) in output_files(dir, &charts)? {
        outputs.push(manifest::output_entry(dir, &relative, &role)?);
    }
    let manifest = Manifest {
        schema_version: manifest::SCHEMA_VERSION,
        tool: Tool::current(),
        run_id: run_id(&audit, &inputs, started),
        started_at: manifest::rfc3339(started),
        finished_at: manifest::rfc3339(finished),
        config: ConfigEntry {
            path: config_path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            sha256: crate::embed::sha256_hex(&audit.source),
            content: serde_json::to_value(&audit.raw).map_err(|e| Error::internal(e.to_string()))?,
        },
        signer: Signer {
            principal: principal.clone(),
            key_id: signing::key_id(&verifying),
            openssh_fingerprint: signing::openssh_fingerprint(&verifying),
            ephemeral: ephemeral_key,
        },
        inputs: inputs.iter().map(|f| input_entry(f, &base)).collect(),
        model_files: provenance.model_files.clone(),
        outputs,
        parameters: json!({
            "clustering": &params,
            "sampling": { "sampler": sample::CLUSTERCLIP_V1, "clip": clip.clip, "draws": clip.draws, "seed": clip.seed, "policy": clip.policy.as_str() },
            "baseline": { "sampler": sample::UNIFORM_V1, "draws": stream.draws(), "seed": clip.seed },
            "bootstrap": { "resamples": BOOTSTRAP_RESAMPLES, "seed": clip.seed, "generator": "ChaCha20, key SHA-256(seed little-endian || \"bootstrap:\" || attribute)" },
        }),
        steps: steps(&audit, &inputs, &base, &charts),
        environment: Environment::current("cpu"),
        unlisted: BTreeMap::from([
            ("SHA256SUMS", "lists the hashes of the other files; signed by SHA256SUMS.sig and SHA256SUMS.sshsig"),
            ("report.pdf", "embeds manifest.json, metrics.json and SHA256SUMS, so neither can hold its hash; signed by report.pdf.sig and report.pdf.sshsig"),
            ("*.sig, *.sshsig", "detached signatures made after the files they sign"),
        ]),
    };
    let manifest_bytes = to_json_bytes(&manifest)?;
    write(dir, "manifest.json", &manifest_bytes)?;
    let mut listed: Vec<String> = manifest.outputs.iter().map(|o| o.path.clone()).collect();
    listed.push("manifest.json".into());
    bundle::write_sha256sums(dir, &listed)?;

    (options.progress)("compiling report");
    let sums = std::fs::read(dir.join("SHA256SUMS")).map_err(|e| Error::io("read", &dir.join("SHA256SUMS"), e))?;
    let report_context = report::Context {
        audit: &audit,
        manifest: &manifest,
        metrics: &metrics,
        manifest_json: &manifest_bytes,
        metrics_json: &to_json_bytes(&metrics)?,
        sums: &sums,
        charts: &charts,
        principal: &principal,
        key_id: signing::key_id(&verifying),
        ssh_fingerprint: signing::openssh_fingerprint(&verifying),
        ephemeral_key,
        date: manifest::civil(started),
    };
    let pdf = report::compile(&report_context)?;
    write(dir, "report.pdf", &pdf)?;

    (options.progress)("signing");
    bundle::sign_bundle(dir, &signing_key, &principal)?;

    let bundle_path = publish(staging, &options.out)?;
    Ok(RunOutcome { bundle: bundle_path, gate, ephemeral_key })
}

/// Creates a temporary folder beside `out`, so the final rename stays on one file system.
fn staging_dir(out: &Path) -> Result<tempfile::TempDir> {
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(Error::input_hint(
            format!("the parent folder of the output {} does not exist", out.display()),
            "create it first, or pass another --out",
        ));
    }
    if out.exists() && !out.join("manifest.json").is_file() {
        let empty = out.read_dir().map(|mut d| d.next().is_none()).unwrap_or(false);
        if !empty {
            return Err(Error::input_hint(
                format!("{} exists and is not a clipaudit bundle", out.display()),
                "pass an --out path that does not exist yet; only an earlier bundle is replaced",
            ));
        }
    }
    tempfile::Builder::new()
        .prefix(".clipaudit-staging-")
        .tempdir_in(&parent)
        .map_err(|e| Error::io("create a staging folder in", &parent, e))
}

/// Moves the finished bundle into place, replacing an earlier bundle at `out`.
fn publish(staging: tempfile::TempDir, out: &Path) -> Result<PathBuf> {
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(|e| Error::io("remove the earlier bundle", out, e))?;
    }
    let path = staging.keep();
    std::fs::rename(&path, out).map_err(|e| {
        let _ = std::fs::remove_dir_all(&path);
        Error::io("move the bundle into", out, e)
    })?;
    Ok(out.to_path_buf())
}

fn write(dir: &Path, relative: &str, bytes: &[u8]) -> Result<()> {
    let path = dir.join(relative);
    std::fs::write(&path, bytes).map_err(|e| Error::io("write", &path, e))
}

/// Pretty JSON with a final newline: stable bytes for identical values.
pub fn to_json_bytes<T: serde::Serialize>(value: &T) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(value).map_err(|e| Error::internal(format!("JSON serialisation ({e})")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

fn input_entry(file: &InputFile, base: &Path) -> FileEntry {
    let relative = file.path.strip_prefix(base).unwrap_or(&file.path);
    FileEntry {
        path: relative.to_string_lossy().replace('\\', "/"),
        size: file.size,
        sha256: file.sha256.clone(),
        media_type: file.media_type.to_string(),
        role: file.role.to_string(),
    }
}

/// Lists every file of the bundle so far with its role, sorted by path.
fn output_files(dir: &Path, charts: &BTreeMap<String, String>) -> Result<Vec<(String, String)>> {
    let mut files = vec![
        ("allowed_signers".to_string(), "public key, OpenSSH allowed signers".to_string()),
        ("config.toml".to_string(), "configuration".to_string()),
        ("data/baseline.parquet".to_string(), "random baseline stream".to_string()),
        ("data/clusters.parquet".to_string(), "cluster assignment".to_string()),
        ("data/counts.parquet".to_string(), "draws per document".to_string()),
        ("data/sample.parquet".to_string(), "curated stream".to_string()),
        ("metrics.json".to_string(), "metrics".to_string()),
        ("signer.pub".to_string(), "public key, OpenSSH".to_string()),
        ("signer.pub.pem".to_string(), "public key, SPKI PEM".to_string()),
    ];
    files.extend(charts.keys().map(|name| (name.clone(), "chart".to_string())));
    files.sort();
    for (relative, _) in &files {
        if !dir.join(relative).is_file() {
            return Err(Error::internal(format!("bundle file {relative} was not written")));
        }
    }
    Ok(files)
}

fn steps(audit: &Audit, inputs: &[InputFile], base: &Path, charts: &BTreeMap<String, String>) -> Vec<Step> {
    let rel = |f: &InputFile| input_entry(f, base).path;
    let of_role = |role: &str| inputs.iter().filter(|f| f.role == role).map(rel).collect::<Vec<_>>();
    let mut steps = vec![
        Step { name: "load corpus".into(), inputs: of_role("corpus"), outputs: vec![], parameters: json!({ "id_column": audit.raw.dataset.id_column, "text_column": audit.raw.dataset.text_column, "group_columns": audit.raw.dataset.group_columns }) },
        Step { name: "load embeddings".into(), inputs: [of_role("embeddings"), of_role("embedding provenance"), of_role("model")].concat(), outputs: vec![], parameters: json!({}) },
        Step { name: "k-means (linfa)".into(), inputs: vec![], outputs: vec!["data/clusters.parquet".into()], parameters: json!({ "k": audit.raw.clustering.k, "seed": audit.raw.clustering.seed, "metric": audit.raw.clustering.metric }) },
        Step { name: "ClusterClip sampling (clusterclip-v1)".into(), inputs: vec!["data/clusters.parquet".into()], outputs: vec!["data/sample.parquet".into(), "data/counts.parquet".into()], parameters: json!({ "clip": audit.raw.sampling.clip, "draws": audit.raw.sampling.draws, "seed": audit.raw.sampling.seed }) },
        Step { name: "random baseline (uniform-v1)".into(), inputs: vec![], outputs: vec!["data/baseline.parquet".into()], parameters: json!({ "seed": audit.raw.sampling.seed }) },
        Step { name: "representation and bias deltas".into(), inputs: vec!["data/sample.parquet".into(), "data/baseline.parquet".into()], outputs: vec!["metrics.json".into()], parameters: json!({ "bootstrap_resamples": BOOTSTRAP_RESAMPLES }) },
    ];
    if audit.recorded_sample.is_some() {
        steps.push(Step {
            name: "recorded sample verification".into(),
            inputs: of_role(sample_verify::RECORDED_SAMPLE_ROLE),
            outputs: vec!["metrics.json".into()],
            parameters: json!({ "claimed_sampler": audit.raw.sampling.recorded_sampler }),
        });
    }
    if audit.annotations.is_some() {
        steps.push(Step { name: "label agreement".into(), inputs: of_role("annotations"), outputs: vec!["metrics.json".into()], parameters: json!({}) });
    }
    steps.push(Step { name: "gate".into(), inputs: vec!["metrics.json".into()], outputs: vec!["metrics.json".into()], parameters: json!({ "checks": audit.raw.gate.check.len() }) });
    steps.push(Step { name: "charts".into(), inputs: vec!["metrics.json".into()], outputs: charts.keys().cloned().collect(), parameters: json!({}) });
    steps.push(Step { name: "manifest and SHA256SUMS".into(), inputs: vec![], outputs: vec!["manifest.json".into(), "SHA256SUMS".into()], parameters: json!({}) });
    steps.push(Step { name: "report (typst, PDF/A-3b)".into(), inputs: vec!["manifest.json".into(), "metrics.json".into(), "SHA256SUMS".into()], outputs: vec!["report.pdf".into()], parameters: json!({}) });
    steps.push(Step { name: "signatures (Ed25519 raw and SSHSIG)".into(), inputs: vec!["manifest.json".into(), "SHA256SUMS".into(), "report.pdf".into()], outputs: vec!["*.sig".into(), "*.sshsig".into()], parameters: json!({}) });
    steps
}

/// A run id that is a pure function of the config, the inputs and the start time.
fn run_id(audit: &Audit, inputs: &[InputFile], started: i64) -> String {
    let mut text = crate::embed::sha256_hex(&audit.source);
    for f in inputs {
        text.push_str(&f.sha256);
    }
    text.push_str(&started.to_string());
    crate::embed::sha256_hex(text.as_bytes())[..32].to_string()
}

fn load_or_embed(audit: &Audit, corpus: &Corpus, cuda: bool, progress: &dyn Fn(&str)) -> Result<(Embeddings, Vec<InputFile>, EmbeddingProvenance)> {
    if let Some(path) = &audit.embeddings {
        let (embeddings, info) = dataset::load_embeddings(path)?;
        dataset::align_embeddings(corpus, &embeddings, path)?;
        let sidecar = dataset::provenance_path(path);
        let (bytes, mut sidecar_info) = dataset::read_hashed(&sidecar, "embedding provenance").map_err(|e| {
            e.with_hint("every embedding file needs its provenance file beside it, as `clipaudit embed` writes it")
        })?;
        sidecar_info.media_type = "application/json";
        let provenance: EmbeddingProvenance = serde_json::from_slice(&bytes)
            .map_err(|e| Error::input(format!("{}: invalid provenance ({e})", sidecar.display())))?;
        if provenance.dimension != embeddings.dimension || provenance.documents != embeddings.ids.len() {
            return Err(Error::input_hint(
                format!(
                    "{}: records {} vectors of dimension {}, but {} holds {} of dimension {}",
                    sidecar.display(),
                    provenance.documents,
                    provenance.dimension,
                    path.display(),
                    embeddings.ids.len(),
                    embeddings.dimension
                ),
                "the embeddings and their provenance do not belong together; re-embed the corpus",
            ));
        }
        // Every corpus file must be one the embeddings were made from, whatever its name now.
        // A provenance that records no inputs (written by another tool) cannot be checked.
        for file in corpus.files.iter().filter(|_| !provenance.inputs.is_empty()) {
            if provenance.inputs.values().any(|recorded| recorded == &file.sha256) {
                continue;
            }
            let name = file.path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let source = match provenance.inputs.get(&name) {
                Some(recorded) => format!("a different {name} (SHA-256 {recorded}, now {})", file.sha256),
                None => format!(
                    "{}, none of which is the corpus file {name} (SHA-256 {})",
                    provenance.inputs.keys().cloned().collect::<Vec<_>>().join(", "),
                    file.sha256
                ),
            };
            return Err(Error::input_hint(
                format!("{}: the embeddings were made from {source}", path.display()),
                "re-embed the corpus with `clipaudit embed`",
            ));
        }
        let mut inputs = vec![info, sidecar_info];
        if let Some(model_dir) = &audit.model {
            let model_files = crate::embed::hash_model_files(model_dir)?;
            for file in &model_files {
                let name = file.path.strip_prefix(model_dir).unwrap_or(&file.path).to_string_lossy().replace('\\', "/");
                let recorded = provenance.model_files.get(&name);
                if recorded != Some(&file.sha256) {
                    return Err(Error::input_hint(
                        format!(
                            "{}: the embeddings were made by another model than [embedding] model names: {name} has SHA-256 {} in {}, but the provenance records {}",
                            path.display(),
                            file.sha256,
                            model_dir.display(),
                            recorded.map_or("no such file", String::as_str)
                        ),
                        "re-embed the corpus with this model (`clipaudit embed`), or set [embedding] model to the model that made the embeddings",
                    ));
                }
            }
            inputs.extend(model_files);
        }
        return Ok((embeddings, inputs, provenance));
    }

    let model_dir = audit.model.as_ref().expect("validated: precomputed or model");
    progress("embedding");
    let model = crate::embed::Model::load(model_dir, crate::embed::Backend::for_device(cuda)?)?;
    let output = model.embed(&corpus.texts, audit.raw.embedding.batch_size, |_| {})?;
    let provenance = model.provenance(model_dir, &corpus.files, corpus.len(), output.truncated, "f32");
    let embeddings = Embeddings { ids: corpus.ids.clone(), dimension: model.dimension, data: output.data };
    Ok((embeddings, model.files.clone(), provenance))
}

/// One attribute's representation with its group × cluster table (none for clusters themselves).
type AttributeMeasures = (Representation, Option<Vec<Vec<u64>>>);

fn measure_all(audit: &Audit, corpus: &Corpus, clustering: &Clustering, stream: &Stream, baseline: &Stream) -> Result<Vec<AttributeMeasures>> {
    let seed = audit.raw.sampling.seed;
    // Empty clusters are reported with the clustering; the uniform reference covers the others.
    let cluster_values: Vec<String> = clustering.labels.iter().map(|c| format!("{c:>width$}", width = clustering.params.k.to_string().len())).collect();
    let (cluster_names, cluster_codes) = representation::encode(&cluster_values);
    let cluster_names: Vec<String> = cluster_names.iter().map(|n| n.trim().to_string()).collect();
    let cluster_spec = GroupSpec {
        attribute: "cluster".into(),
        reference: Reference::Uniform,
        min_share: crate::config::DEFAULT_MIN_SHARE,
        min_count: crate::config::DEFAULT_MIN_COUNT,
        special_category: false,
        privileged: None,
        phase_targets: None,
    };
    let mut out = vec![(
        representation::measure(
            &cluster_spec,
            &Populations { names: &cluster_names, raw: &cluster_codes, curated: &stream.indices, baseline: &baseline.indices },
            BOOTSTRAP_RESAMPLES,
            seed,
        )?,
        None,
    )];
    for spec in &audit.groups {
        let (names, codes) = representation::encode(&corpus.groups[&spec.attribute]);
        let rep = representation::measure(
            spec,
            &Populations { names: &names, raw: &codes, curated: &stream.indices, baseline: &baseline.indices },
            BOOTSTRAP_RESAMPLES,
            seed,
        )
        .map_err(|e| e.context(audit.path.display()))?;
        let table = representation::contingency(&codes, names.len(), &clustering.labels, clustering.params.k);
        out.push((rep, Some(table)));
    }

    // Intersections of two attributes, measured against the raw corpus's own shares so the ratio
    // shows how curation moved each combination.
    for (i, first) in audit.groups.iter().enumerate() {
        for second in &audit.groups[i + 1..] {
            let values: Vec<String> = corpus.groups[&first.attribute]
                .iter()
                .zip(&corpus.groups[&second.attribute])
                .map(|(a, b)| format!("{a} × {b}"))
                .collect();
            let (names, codes) = representation::encode(&values);
            let spec = GroupSpec {
                attribute: format!("{} × {}", first.attribute, second.attribute),
                reference: Reference::Corpus,
                min_share: first.min_share.max(second.min_share),
                min_count: first.min_count.max(second.min_count),
                special_category: first.special_category || second.special_category,
                privileged: None,
                phase_targets: None,
            };
            let rep = representation::measure(
                &spec,
                &Populations { names: &names, raw: &codes, curated: &stream.indices, baseline: &baseline.indices },
                BOOTSTRAP_RESAMPLES,
                seed,
            )?;
            out.push((rep, None));
        }
    }
    Ok(out)
}

/// Measures the mixture of clusters and of each declared attribute over the phases of the curated stream.
fn measure_phases(
    audit: &Audit,
    corpus: &Corpus,
    clustering: &Clustering,
    stream: &Stream,
    representations: &[AttributeMeasures],
) -> Result<Vec<phases::PhaseMixture>> {
    let s = &audit.raw.sampling;
    let starts = phases::plan(stream.draws(), s.phases, s.phase_starts.as_deref())?;
    let mut out = Vec::new();
    // The representation tables hold each attribute's groups and reference shares already.
    for (rep, _) in representations.iter().filter(|(r, _)| !r.attribute.contains(" × ")) {
        let names: Vec<String> = rep.groups.iter().map(|g| g.group.clone()).collect();
        let mut references = vec![rep.groups.iter().map(|g| g.reference_share).collect::<Vec<f64>>()];
        let targets = audit.groups.iter().find(|g| g.attribute == rep.attribute).and_then(|g| g.phase_targets.as_ref());
        if let Some(targets) = targets {
            references = targets
                .iter()
                .enumerate()
                .map(|(phase, shares)| {
                    if let Some(unknown) = shares.keys().find(|k| !names.contains(k)) {
                        return Err(Error::input_hint(
                            format!("{}: groups.{}.phase_targets[{phase}] names group `{unknown}`, which the corpus does not have", audit.path.display(), rep.attribute),
                            format!("groups: {}", names.join(", ")),
                        ));
                    }
                    Ok(names.iter().map(|n| shares.get(n).copied().unwrap_or(0.0)).collect())
                })
                .collect::<Result<_>>()?;
        }
        let codes: Vec<u32> = if rep.attribute == "cluster" {
            let position: std::collections::BTreeMap<String, u32> = names.iter().enumerate().map(|(i, n)| (n.clone(), i as u32)).collect();
            clustering.labels.iter().map(|l| position[&l.to_string()]).collect()
        } else {
            representation::encode(&corpus.groups[&rep.attribute]).1
        };
        out.push(phases::measure(&rep.attribute, &names, &codes, &stream.indices, &starts, &references));
    }
    Ok(out)
}

/// Outcome parity for every declared attribute, when the corpus has an outcome column.
fn measure_outcomes(audit: &Audit, corpus: &Corpus, stream: &Stream, baseline: &Stream) -> Result<Vec<outcome::OutcomeParity>> {
    let (Some(values), Some(column), Some(positive)) =
        (&corpus.outcomes, &audit.raw.dataset.outcome_column, &audit.raw.dataset.outcome_positive)
    else {
        return Ok(Vec::new());
    };
    let favourable = outcome::encode_outcomes(values, positive, column).map_err(|e| e.context(audit.path.display()))?;
    let mut out = Vec::new();
    for spec in &audit.groups {
        let (names, codes) = representation::encode(&corpus.groups[&spec.attribute]);
        let parity = outcome::measure(spec, &names, &codes, &favourable, positive, &stream.indices, &baseline.indices)
            .map_err(|e| e.context(audit.path.display()))?;
        out.push(parity);
    }
    Ok(out)
}

fn measure_agreement(audit: &Audit, path: &Path) -> Result<(Value, InputFile)> {
    let section = audit.raw.annotations.as_ref().expect("annotations path implies the section");
    let (matrix, info) = dataset::load_annotations(path, section.layout == "wide")?;
    let raters = matrix.raters();
    let pair = match &section.cohen_raters {
        Some([a, b]) => {
            let find = |name: &String| {
                raters.iter().position(|r| r == name).ok_or_else(|| {
                    Error::input_hint(
                        format!("{}: annotations.cohen_raters names rater `{name}`, which {} does not have", audit.path.display(), path.display()),
                        format!("raters in the file: {}", raters.join(", ")),
                    )
                })
            };
            (find(a)?, find(b)?)
        }
        None if raters.len() >= 2 => (0, 1),
        None => {
            return Err(Error::input(format!("{}: fewer than two raters, so agreement is undefined", path.display())));
        }
    };
    let report = agreement::agreement_report(&matrix);
    let mut value = serde_json::to_value(&report).map_err(|e| Error::internal(e.to_string()))?;
    value["cohen"] = serde_json::to_value(agreement::cohen_kappa(&matrix, pair.0, pair.1, Weights::Unweighted)).map_err(|e| Error::internal(e.to_string()))?;
    value["cohen_linear"] = serde_json::to_value(agreement::cohen_kappa(&matrix, pair.0, pair.1, Weights::Linear)).map_err(|e| Error::internal(e.to_string()))?;
    value["cohen_quadratic"] = serde_json::to_value(agreement::cohen_kappa(&matrix, pair.0, pair.1, Weights::Quadratic)).map_err(|e| Error::internal(e.to_string()))?;
    value["cohen_raters"] = json!([raters[pair.0], raters[pair.1]]);
    value["level"] = json!(section.level);
    value["source"] = json!(info.path.file_name().map(|n| n.to_string_lossy().into_owned()));
    if let Some(description) = &section.description {
        value["description"] = json!(description);
    }
    Ok((value, info))
}

fn write_stage_outputs(dir: &Path, corpus: &Corpus, clustering: &Clustering, stream: &Stream, baseline: &Stream) -> Result<()> {
    let mut clusters = DataFrame::new_infer_height(vec![
        Column::new("id".into(), &corpus.ids),
        Column::new("cluster".into(), &clustering.labels),
    ])?;
    dataset::write_parquet(&dir.join("data/clusters.parquet"), &mut clusters)?;

    for (name, s) in [("data/sample.parquet", stream), ("data/baseline.parquet", baseline)] {
        let steps: Vec<u64> = (0..s.indices.len() as u64).collect();
        let ids: Vec<&str> = s.indices.iter().map(|&i| corpus.ids[i as usize].as_str()).collect();
        let labels: Vec<u32> = s.indices.iter().map(|&i| clustering.labels[i as usize]).collect();
        let mut df = DataFrame::new_infer_height(vec![
            Column::new("step".into(), &steps),
            Column::new("id".into(), &ids),
            Column::new("cluster".into(), &labels),
        ])?;
        dataset::write_parquet(&dir.join(name), &mut df)?;
    }

    let mut counts = DataFrame::new_infer_height(vec![
        Column::new("id".into(), &corpus.ids),
        Column::new("count".into(), &stream.appearance_counts()),
    ])?;
    dataset::write_parquet(&dir.join("data/counts.parquet"), &mut counts)
}

/// Returns each cluster's share of the draws before the first cluster was exhausted and after it.
fn before_after_exhaustion(clustering: &Clustering, stream: &Stream) -> Value {
    let Some(&(_, first)) = stream.exhausted_at.first() else {
        return json!({ "first_exhaustion_step": null, "note": "no cluster was exhausted" });
    };
    let split = first.min(stream.draws()) as usize;
    let shares = |draws: &[u32]| -> Vec<f64> {
        let mut counts = vec![0u64; clustering.params.k];
        for &d in draws {
            counts[clustering.labels[d as usize] as usize] += 1;
        }
        counts.iter().map(|&c| if draws.is_empty() { 0.0 } else { c as f64 / draws.len() as f64 }).collect()
    };
    json!({
        "first_exhaustion_step": first,
        "clusters": (0..clustering.params.k).collect::<Vec<_>>(),
        "before": shares(&stream.indices[..split]),
        "after": shares(&stream.indices[split..]),
    })
}

#[allow(clippy::too_many_arguments)]
fn build_metrics(
    audit: &Audit,
    corpus: &Corpus,
    embeddings: &Embeddings,
    provenance: &EmbeddingProvenance,
    clustering: &Clustering,
    clip: &ClipParams,
    stream: &Stream,
    baseline: &Stream,
    representations: &[AttributeMeasures],
    agreement: Option<Value>,
) -> Value {
    let counts = stream.appearance_counts();
    let exhausted: Vec<Value> = stream
        .exhausted_at
        .iter()
        .map(|&(label, step)| json!({ "cluster": label, "documents": clustering.sizes[label as usize], "step": step }))
        .collect();
    let contingency: Vec<Value> = representations
        .iter()
        .filter_map(|(rep, table)| {
            table.as_ref().map(|t| {
                json!({
                    "attribute": rep.attribute,
                    "groups": rep.groups.iter().map(|g| g.group.clone()).collect::<Vec<_>>(),
                    "clusters": clustering.params.k,
                    "counts": t,
                })
            })
        })
        .collect();
    json!({
        "schema_version": "clipaudit-metrics/1",
        "conventions": {
            "log_base": "natural (nats)",
            "kl_divergence": "KL(P || R) of the population P from the reference R; infinite (written \"inf\") when P has weight where R has none; never smoothed",
            "js": "Jensen-Shannon distance: the square root of the divergence, natural log, in [0, sqrt(ln 2)]",
            "total_variation": "half the sum of absolute share differences",
            "normalized_entropy": "H(P) / ln K, K the number of groups with a positive reference share",
            "theil": "Theil T and L of the representation ratios p_i / r_i weighted by the reference shares r_i; T equals KL(P || R) and L equals KL(R || P)",
            "chi_square": "Pearson's goodness of fit of the counts to the reference, df = groups with a positive reference share - 1; the curated stream counts repeated draws, which are not independent, so its p-value is descriptive only",
            "intersections": "every pair of group attributes is also measured as one attribute whose groups are the value pairs, against the raw corpus's own shares",
            "representation_ratio": "share / reference share",
            "indeterminate": "a group under the minimum cell count or the minimum share is indeterminate, neither passed nor failed",
            "curated_counts": "the curated stream is counted with repeats",
            "bootstrap": "percentile 95 % interval of the change, from replicates that redraw all three populations with replacement; for min_share, an extreme statistic, the interval is unreliable when the smallest group has only a few documents and may not contain the estimate",
            "kappa_ci": "value +/- 1.959963984540054 x asymptotic standard error",
            "agreement_categories": "ordered numerically when every label is a number, else lexicographically",
            "kappa_weights": "weighted Cohen's kappa scores the categories used by the rater pair by rank i = 0..k-1; linear disagreement weight |i - j| / (k - 1), quadratic ((i - j) / (k - 1))^2",
            "fleiss_se": "Fleiss' kappa carries the standard error under the null hypothesis of chance agreement (Fleiss, Nee and Landis 1979), which gives z but no interval",
            "outcome": "base rate = share of favourable outcomes in a group; statistical parity difference = base rate - privileged base rate; disparate impact = base rate / privileged base rate; the four-fifths rule flags a disparate impact under 0.8; the privileged group is declared per attribute, else the largest raw group",
        },
        "corpus": {
            "documents": corpus.len(),
            "group_columns": audit.raw.dataset.group_columns,
        },
        "embedding": {
            "model": provenance.model,
            "dimension": embeddings.dimension,
            "pooling": provenance.pooling,
            "normalized": provenance.normalized,
            "max_seq_length": provenance.max_seq_length,
            "truncated_documents": provenance.truncated_documents,
            "precision": provenance.precision,
        },
        "clustering": clustering,
        "sampling": {
            "sampler": stream.sampler,
            "clip": clip.clip,
            "before_after_first_exhaustion": before_after_exhaustion(clustering, stream),
            "draws_requested": clip.draws,
            "draws": stream.draws(),
            "seed": clip.seed,
            "policy": clip.policy.as_str(),
            "stopped_early": stream.stopped_early,
            "max_count": counts.iter().copied().max().unwrap_or(0),
            "clipped_documents": stream.clipped_documents(clip.clip),
            "documents_over_clip": stream.documents_over_clip(clip.clip),
            "never_drawn": counts.iter().filter(|&&c| c == 0).count(),
            "repetition_histogram": stream.repetition_histogram().iter().map(|&(c, d)| json!({ "count": c, "documents": d })).collect::<Vec<_>>(),
            "exhausted": exhausted,
            "baseline": { "sampler": baseline.sampler, "draws": baseline.draws(), "max_count": baseline.appearance_counts().iter().copied().max().unwrap_or(0) },
        },
        "representation": representations.iter().map(|(r, _)| r).collect::<Vec<_>>(),
        "contingency": contingency,
        "agreement": agreement,
    })
}

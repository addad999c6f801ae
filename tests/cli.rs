//! End-to-end tests of the `clipaudit` binary on the shipped example and on small inputs,
//! checked with the real verifiers auditors use: sha256sum, OpenSSL, OpenSSH and poppler.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use polars::prelude::NamedFrom;
use clipaudit::dataset::{provenance_path, write_embeddings, EmbeddingProvenance, Embeddings};

const EPOCH: &str = "1796415114";

fn clipaudit(args: &[&str], dir: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_clipaudit"))
        .args(args)
        .current_dir(dir)
        .env("SOURCE_DATE_EPOCH", EPOCH)
        .env_remove("RUST_LOG")
        .output()
        .expect("clipaudit runs")
}

/// Runs an external verifier; a missing tool fails the test with the package to install.
fn tool(program: &str, args: &[&str], dir: &Path, stdin: Option<&Path>) -> Output {
    let mut command = Command::new(program);
    command.args(args).current_dir(dir);
    if let Some(path) = stdin {
        command.stdin(std::fs::File::open(path).unwrap());
    }
    command.output().unwrap_or_else(|e| {
        let package = match program {
            "openssl" => "openssl",
            "ssh-keygen" => "openssh-client",
            "pdfdetach" | "pdfinfo" => "poppler-utils",
            _ => "coreutils",
        };
        panic!("{program} could not be run ({e}); install the Debian package {package} (bash .ci/run does)")
    })
}

fn text(output: &Output) -> String {
    format!("status {:?}\nstdout:\n{}\nstderr:\n{}", output.status.code(), String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// Returns the default bundle, made once per test binary.
fn default_bundle() -> &'static Path {
    static BUNDLE: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    let (_, path) = BUNDLE.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = clipaudit(&["run", "--out", "bundle"], dir.path());
        assert_eq!(out.status.code(), Some(0), "{}", text(&out));
        let path = dir.path().join("bundle");
        (dir, path)
    });
    path
}

fn files_of(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                let relative = path.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

fn copy_dir(from: &Path, to: &Path) {
    for (relative, bytes) in files_of(from) {
        let path = to.join(relative);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn metrics(bundle: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(bundle.join("metrics.json")).unwrap()).unwrap()
}

#[test]
fn default_run_writes_complete_bundle() {
    let bundle = default_bundle();
    for name in [
        "report.pdf",
        "manifest.json",
        "metrics.json",
        "SHA256SUMS",
        "manifest.json.sig",
        "SHA256SUMS.sig",
        "report.pdf.sig",
        "manifest.json.sshsig",
        "SHA256SUMS.sshsig",
        "report.pdf.sshsig",
        "signer.pub.pem",
        "signer.pub",
        "allowed_signers",
        "data/sample.parquet",
        "data/baseline.parquet",
        "data/clusters.parquet",
        "charts/cluster_shares.svg",
        "charts/repetition_histogram.svg",
    ] {
        assert!(bundle.join(name).is_file(), "{name} missing from the bundle");
    }
    let m = metrics(bundle);
    assert_eq!(m["corpus"]["documents"], 4000);
    assert_eq!(m["clustering"]["sizes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).sum::<u64>(), 4000);
    // Every document's draw count is at most C.
    let clip = m["sampling"]["clip"].as_u64().unwrap();
    assert!(m["sampling"]["max_count"].as_u64().unwrap() <= clip);
    assert_eq!(m["sampling"]["documents_over_clip"], 0);
    let histogram_total: u64 = m["sampling"]["repetition_histogram"].as_array().unwrap().iter().map(|b| b["documents"].as_u64().unwrap()).sum();
    assert_eq!(histogram_total, 4000);
    // Agreement on the Fleiss 1971 table: 0.4302445 as quoted in statsmodels' test_inter_rater.py.
    assert!((m["agreement"]["fleiss"]["value"].as_f64().unwrap() - 0.4302445).abs() < 5e-8);
    let attributes: Vec<&str> = m["representation"].as_array().unwrap().iter().map(|r| r["attribute"].as_str().unwrap()).collect();
    assert_eq!(attributes, ["cluster", "language", "party", "language × party"]);
}

#[test]
fn bundle_checks_with_sha256sum_openssl_and_ssh_keygen() {
    let bundle = default_bundle();
    let sums = tool("sha256sum", &["-c", "--strict", "SHA256SUMS"], bundle, None);
    assert!(sums.status.success(), "{}", text(&sums));

    for file in ["manifest.json", "SHA256SUMS", "report.pdf"] {
        let sig = format!("{file}.sig");
        let out = tool("openssl", &["pkeyutl", "-verify", "-pubin", "-inkey", "signer.pub.pem", "-rawin", "-in", file, "-sigfile", &sig], bundle, None);
        assert!(out.status.success(), "{file}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stdout).contains("Signature Verified Successfully"), "{}", text(&out));

        let namespace = if file == "report.pdf" { "clipaudit-report" } else { "clipaudit-manifest" };
        let sshsig = format!("{file}.sshsig");
        let out = tool("ssh-keygen", &["-Y", "verify", "-f", "allowed_signers", "-I", "ephemeral", "-n", namespace, "-s", &sshsig], bundle, Some(&bundle.join(file)));
        assert!(out.status.success(), "{file}: {}", text(&out));
    }

    // The key id on record is the SHA-256 of the SPKI DER that OpenSSL derives.
    let der = tool("openssl", &["pkey", "-pubin", "-in", "signer.pub.pem", "-outform", "DER"], bundle, None);
    let key_id = clipaudit::embed::sha256_hex(&der.stdout);
    let report = tool("pdftotext", &["report.pdf", "-"], bundle, None);
    assert!(String::from_utf8_lossy(&report.stdout).contains(&key_id[..16]), "key id {key_id} not in the report");
}

#[test]
fn report_has_attachments_pages_and_sections() {
    let bundle = default_bundle();
    let list = tool("pdfdetach", &["-list", "report.pdf"], bundle, None);
    let listing = String::from_utf8_lossy(&list.stdout);
    for name in ["manifest.json", "metrics.json", "SHA256SUMS"] {
        assert!(listing.contains(name), "{name} not attached:\n{listing}");
    }
    // The attachments are the bundle's own files, byte for byte.
    let extracted = tempfile::tempdir().unwrap();
    let save = tool("pdfdetach", &["-saveall", "-o", extracted.path().to_str().unwrap(), "report.pdf"], bundle, None);
    assert!(save.status.success(), "{}", text(&save));
    for name in ["manifest.json", "metrics.json", "SHA256SUMS"] {
        assert_eq!(std::fs::read(extracted.path().join(name)).unwrap(), std::fs::read(bundle.join(name)).unwrap(), "{name}");
    }

    let info = tool("pdfinfo", &["report.pdf"], bundle, None);
    let info = String::from_utf8_lossy(&info.stdout);
    let pages: u32 = info.lines().find_map(|l| l.strip_prefix("Pages:")).unwrap().trim().parse().unwrap();
    assert!(pages >= 5, "{pages} pages");
    let meta = tool("pdfinfo", &["-meta", "report.pdf"], bundle, None);
    let meta = String::from_utf8_lossy(&meta.stdout);
    assert!(meta.contains("<pdfaid:part>3</pdfaid:part>"), "no PDF/A-3 identification:\n{meta}");
    assert!(meta.contains("<pdfaid:conformance>B</pdfaid:conformance>"), "not conformance level B:\n{meta}");

    let body = tool("pdftotext", &["report.pdf", "-"], bundle, None);
    let body = String::from_utf8_lossy(&body.stdout);
    for section in [
        "Summary of gate results",
        "EU AI Act mapping",
        "Data set and provenance",
        "Clustering",
        "ClusterClip sampling",
        "Representation",
        "Bias deltas",
        "Label agreement",
        "Data gaps and limitations",
        "Lineage",
        "How to verify",
        "Parameters, conventions and environment",
        "not valid as evidence",
    ] {
        assert!(body.contains(section), "section {section:?} missing from the report");
    }
}

#[test]
fn verify_passes_then_names_each_tampered_file() {
    let bundle = default_bundle();
    let out = clipaudit(&["verify", bundle.to_str().unwrap(), "--key", bundle.join("signer.pub.pem").to_str().unwrap()], bundle);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    // The auditor's key comes from outside the bundle.
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("signer.pub.pem");
    std::fs::write(&key, std::fs::read(bundle.join("signer.pub.pem")).unwrap()).unwrap();
    for (relative, bytes) in files_of(bundle) {
        let copy = tempfile::tempdir().unwrap();
        copy_dir(bundle, copy.path());
        let mut changed = bytes.clone();
        let middle = changed.len() / 2;
        changed[middle] ^= 0x01;
        std::fs::write(copy.path().join(&relative), changed).unwrap();
        let out = clipaudit(&["verify", copy.path().to_str().unwrap(), "--key", key.to_str().unwrap()], copy.path());
        assert_eq!(out.status.code(), Some(1), "changing {relative}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).contains(&relative), "changing {relative} is not named: {}", text(&out));
    }
}

#[test]
fn verify_rejects_extra_and_missing_files() {
    let bundle = default_bundle();
    let copy = tempfile::tempdir().unwrap();
    copy_dir(bundle, copy.path());
    std::fs::write(copy.path().join("extra.txt"), b"not part of the run").unwrap();
    let out = clipaudit(&["verify", copy.path().to_str().unwrap()], copy.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("extra.txt"), "{}", text(&out));

    std::fs::remove_file(copy.path().join("extra.txt")).unwrap();
    std::fs::remove_file(copy.path().join("data/baseline.parquet")).unwrap();
    let out = clipaudit(&["verify", copy.path().to_str().unwrap()], copy.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("data/baseline.parquet"), "{}", text(&out));
}

#[test]
fn same_inputs_and_key_give_identical_bundles() {
    let dir = tempfile::tempdir().unwrap();
    let keygen = clipaudit(&["keygen", "--out", "keys", "--principal", "auditor@example.org"], dir.path());
    assert_eq!(keygen.status.code(), Some(0), "{}", text(&keygen));
    for out in ["a", "b"] {
        let run = clipaudit(&["run", "--out", out, "--key", "keys/signer.key.pem"], dir.path());
        assert_eq!(run.status.code(), Some(0), "{}", text(&run));
    }
    let (a, b) = (files_of(&dir.path().join("a")), files_of(&dir.path().join("b")));
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (name, bytes) in &a {
        assert!(bytes == &b[name], "{name} differs between two runs with the same inputs");
    }
    // A real key: the report does not carry the ephemeral warning.
    let body = tool("pdftotext", &["report.pdf", "-"], &dir.path().join("a"), None);
    assert!(!String::from_utf8_lossy(&body.stdout).contains("not valid as evidence"));

    // The principal given to keygen signs the bundle, and the keygen's own allowed_signers
    // file verifies it.
    let allowed = std::fs::read_to_string(dir.path().join("a/allowed_signers")).unwrap();
    assert!(allowed.starts_with("auditor@example.org "), "{allowed}");
    let bundle = dir.path().join("a");
    let out = tool(
        "ssh-keygen",
        &["-Y", "verify", "-f", "../keys/allowed_signers", "-I", "auditor@example.org", "-n", "clipaudit-report", "-s", "report.pdf.sshsig"],
        &bundle,
        Some(&bundle.join("report.pdf")),
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn keygen_writes_private_key_0600_and_never_overwrites() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out = clipaudit(&["keygen", "--out", "keys"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let mode = std::fs::metadata(dir.path().join("keys/signer.key.pem")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    for name in ["signer.pub.pem", "signer.pub", "allowed_signers"] {
        assert!(dir.path().join("keys").join(name).is_file(), "{name}");
    }
    let again = clipaudit(&["keygen", "--out", "keys"], dir.path());
    assert_eq!(again.status.code(), Some(2), "{}", text(&again));
}

#[test]
fn agreement_command_matches_statsmodels_value() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = clipaudit(&["agreement", "fixtures/annotations/fleiss1971.csv", "--json"], root);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let value: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    // statsmodels test_fleiss_kappa_irr: 0.4302445 (the value R irr reports).
    assert!((value["fleiss"]["value"].as_f64().unwrap() - 0.4302445).abs() < 5e-8, "{value}");
    assert_eq!(value["items"], 30);
    assert_eq!(value["raters"], 6);
    assert!(value.get("cohen").is_none(), "Cohen's kappa needs exactly two raters");
}

#[test]
fn embed_reproduces_shipped_embeddings() {
    let Some(model) = std::env::var_os("CLIPAUDIT_MODEL_DIR") else {
        panic!("CLIPAUDIT_MODEL_DIR is not set: fetch the model with scripts/fetch-model.sh and export its output (bash .ci/run does both)");
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let (shipped, _) = clipaudit::dataset::load_embeddings(&root.join("fixtures/parlspeech/embeddings.parquet")).unwrap();
    let columns = clipaudit::dataset::Columns { id: "id", text: Some("text"), groups: &[], outcome: None };
    let corpus = clipaudit::dataset::load_corpus(&[root.join("fixtures/parlspeech/corpus.parquet")], &columns).unwrap();

    // Twelve documents, three from each language, written to a small CSV corpus.
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<usize> = (0..4).flat_map(|l| (0..3).map(move |i| l * 1000 + i * 97)).collect();
    let mut csv = String::from("id,text\n");
    for &r in &rows {
        csv.push_str(&format!("{},\"{}\"\n", corpus.ids[r], corpus.texts[r].replace('"', "\"\"")));
    }
    std::fs::write(dir.path().join("small.csv"), csv).unwrap();
    let out = clipaudit(&["embed", "small.csv", "--model", model.to_str().unwrap(), "--out", "small.parquet", "--batch-size", "5"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));

    let (fresh, _) = clipaudit::dataset::load_embeddings(&dir.path().join("small.parquet")).unwrap();
    for (i, &r) in rows.iter().enumerate() {
        let (a, b) = (fresh.row(i), shipped.row(r));
        let dot: f64 = a.iter().zip(b).map(|(x, y)| f64::from(*x) * f64::from(*y)).sum();
        assert!(dot >= 0.9999, "document {} has cosine {dot} to the shipped vector", corpus.ids[r]);
    }
    let provenance: EmbeddingProvenance = serde_json::from_slice(&std::fs::read(provenance_path(&dir.path().join("small.parquet"))).unwrap()).unwrap();
    assert_eq!(provenance.model_files["model.safetensors"], "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db");
}

// ---------------------------------------------------------------- bad input

/// Writes a small valid audit into `dir`: 60 documents in 3 languages, 8-dimensional embeddings.
fn small_audit(dir: &Path) {
    let mut csv = String::from("id,text,language\n");
    let mut ids = Vec::new();
    let mut data = Vec::new();
    for i in 0..60 {
        let language = ["de", "en", "nl"][i % 3];
        csv.push_str(&format!("doc-{i},text number {i},{language}\n"));
        ids.push(format!("doc-{i}"));
        for j in 0..8 {
            // Three directions with a little spread, so k-means has clear clusters.
            data.push(if j == i % 3 { 1.0 } else { 0.05 * ((i * 7 + j * 3) % 5) as f32 });
        }
    }
    std::fs::write(dir.join("corpus.csv"), csv).unwrap();
    write_small_embeddings(dir, Embeddings { ids, dimension: 8, data });
    std::fs::write(
        dir.join("audit.toml"),
        r#"
[project]
system = "test system"
provider = "test provider"
intended_purpose = "tests"
responsible_person = "tester"
dataset_version = "1"

[dataset]
files = ["corpus.csv"]
group_columns = ["language"]

[embedding]
precomputed = "embeddings.parquet"

[clustering]
k = 3
seed = 1

[sampling]
clip = 2
draws = 200
seed = 1
"#,
    )
    .unwrap();
}

fn write_small_embeddings(dir: &Path, embeddings: Embeddings) {
    let path = dir.join("embeddings.parquet");
    write_embeddings(&path, &embeddings).unwrap();
    let provenance = EmbeddingProvenance {
        model: "test".into(),
        model_files: BTreeMap::new(),
        pooling: "mean".into(),
        normalized: false,
        max_seq_length: 8,
        dimension: embeddings.dimension,
        documents: embeddings.ids.len(),
        truncated_documents: 0,
        precision: "f32".into(),
        inputs: BTreeMap::new(),
        tool: "test".into(),
    };
    std::fs::write(provenance_path(&path), serde_json::to_vec(&provenance).unwrap()).unwrap();
}

/// Runs the small audit after `mutate`, expecting exit 2, `expected` in stderr and no bundle.
fn assert_rejected(mutate: impl FnOnce(&Path), expected: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    small_audit(dir.path());
    mutate(dir.path());
    let out = clipaudit(&["run", "audit.toml", "--out", "bundle"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    for needle in expected {
        assert!(stderr.contains(needle), "stderr lacks {needle:?}: {}", text(&out));
    }
    let left: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(!left.iter().any(|n| n == "bundle" || n.starts_with(".clipaudit-staging")), "partial output left behind: {left:?}");
}

#[test]
fn small_audit_runs() {
    let dir = tempfile::tempdir().unwrap();
    small_audit(dir.path());
    let out = clipaudit(&["run", "audit.toml", "--out", "bundle"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let m = metrics(&dir.path().join("bundle"));
    // Three clean directions with 20 documents each: k-means finds them.
    let mut sizes: Vec<u64> = m["clustering"]["sizes"].as_array().unwrap().iter().map(|v| v.as_u64().unwrap()).collect();
    sizes.sort();
    assert_eq!(sizes, [20, 20, 20]);
    // 200 draws requested with C = 2 over 60 documents: the stream stops after C · N = 120 draws,
    // every document drawn exactly twice, so each cluster of 20 documents gets exactly 40 draws.
    assert_eq!(m["sampling"]["draws"], 120);
    assert_eq!(m["sampling"]["stopped_early"], true);
    assert_eq!(m["sampling"]["repetition_histogram"], serde_json::json!([{"count": 0, "documents": 0}, {"count": 2, "documents": 60}]));
    let clusters = &m["representation"][0]["groups"];
    for g in clusters.as_array().unwrap() {
        assert_eq!(g["curated"]["count"], 40, "{g}");
    }
}

#[test]
fn bad_input_missing_column() {
    assert_rejected(
        |d| std::fs::write(d.join("corpus.csv"), std::fs::read_to_string(d.join("corpus.csv")).unwrap().replacen("language", "lang", 1)).unwrap(),
        &["corpus.csv", "missing column `language`", "hint:"],
    );
}

#[test]
fn bad_input_duplicate_id() {
    assert_rejected(
        |d| std::fs::write(d.join("corpus.csv"), std::fs::read_to_string(d.join("corpus.csv")).unwrap().replace("doc-7,", "doc-3,")).unwrap(),
        &["duplicate id `doc-3`", "rows 3 and 7"],
    );
}

#[test]
fn bad_input_empty_corpus() {
    assert_rejected(|d| std::fs::write(d.join("corpus.csv"), "id,text,language\n").unwrap(), &["corpus.csv", "no rows"]);
}

#[test]
fn bad_input_wrong_embedding_dimension() {
    assert_rejected(
        |d| {
            let (mut e, _) = clipaudit::dataset::load_embeddings(&d.join("embeddings.parquet")).unwrap();
            // Rebuild with row 5 one component short: write through a list of rows.
            let rows: Vec<Vec<f32>> = (0..e.ids.len()).map(|i| e.row(i).to_vec()).collect();
            let mut df = polars::prelude::DataFrame::new_infer_height(vec![
                polars::prelude::Column::new("id".into(), &e.ids),
                polars::prelude::Column::new(
                    "embedding".into(),
                    rows.iter().enumerate().map(|(i, r)| polars::prelude::Series::new("".into(), if i == 5 { &r[..7] } else { &r[..] })).collect::<Vec<_>>(),
                ),
            ])
            .unwrap();
            clipaudit::dataset::write_parquet(&d.join("embeddings.parquet"), &mut df).unwrap();
            e.data.clear();
        },
        &["embeddings.parquet", "row 5", "dimension 7", "row 0 has 8"],
    );
}

#[test]
fn bad_input_nan_embedding() {
    assert_rejected(
        |d| {
            let (mut e, _) = clipaudit::dataset::load_embeddings(&d.join("embeddings.parquet")).unwrap();
            e.data[8 * 4 + 2] = f32::NAN;
            write_small_embeddings(d, e);
        },
        &["embeddings.parquet", "row 4", "doc-4", "NaN"],
    );
}

#[test]
fn bad_input_unknown_config_key() {
    assert_rejected(
        |d| {
            let config = std::fs::read_to_string(d.join("audit.toml")).unwrap().replace("k = 3", "kk = 3");
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["audit.toml", "unknown key `kk`", "did you mean `k`"],
    );
}

#[test]
fn bad_input_embeddings_from_another_corpus() {
    assert_rejected(
        |d| {
            let sidecar = provenance_path(&d.join("embeddings.parquet"));
            let mut provenance: EmbeddingProvenance = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
            provenance.inputs.insert("older.csv".into(), "0".repeat(64));
            std::fs::write(&sidecar, serde_json::to_vec(&provenance).unwrap()).unwrap();
        },
        &["embeddings.parquet", "made from older.csv, none of which is the corpus file corpus.csv", "re-embed"],
    );
}

#[test]
fn bad_input_embeddings_from_another_model() {
    let model = std::env::var("CLIPAUDIT_MODEL_DIR").expect("CLIPAUDIT_MODEL_DIR is set (bash .ci/run does)");
    // The small audit's embeddings record no model files, so the named model cannot have made them.
    assert_rejected(
        |d| {
            let config = std::fs::read_to_string(d.join("audit.toml")).unwrap();
            let config = config.replace("precomputed = \"embeddings.parquet\"", &format!("precomputed = \"embeddings.parquet\"\nmodel = {model:?}"));
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["embeddings.parquet", "another model than [embedding] model names", "config.json", "re-embed the corpus"],
    );
}

#[test]
fn embeddings_from_the_named_model_are_accepted() {
    let model = PathBuf::from(std::env::var("CLIPAUDIT_MODEL_DIR").expect("CLIPAUDIT_MODEL_DIR is set (bash .ci/run does)"));
    let dir = tempfile::tempdir().unwrap();
    small_audit(dir.path());
    let sidecar = provenance_path(&dir.path().join("embeddings.parquet"));
    let mut provenance: EmbeddingProvenance = serde_json::from_slice(&std::fs::read(&sidecar).unwrap()).unwrap();
    for file in clipaudit::embed::hash_model_files(&model).unwrap() {
        let name = file.path.strip_prefix(&model).unwrap().to_string_lossy().into_owned();
        provenance.model_files.insert(name, file.sha256);
    }
    std::fs::write(&sidecar, serde_json::to_vec(&provenance).unwrap()).unwrap();
    let config = std::fs::read_to_string(dir.path().join("audit.toml")).unwrap();
    let config = config.replace("precomputed = \"embeddings.parquet\"", &format!("precomputed = \"embeddings.parquet\"\nmodel = {model:?}"));
    std::fs::write(dir.path().join("audit.toml"), config).unwrap();
    let out = clipaudit(&["run", "audit.toml", "--out", "bundle"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let manifest = std::fs::read_to_string(dir.path().join("bundle/manifest.json")).unwrap();
    assert!(manifest.contains("53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"), "the model weights' hash is in the manifest");
}

#[test]
fn bad_input_reference_shares_not_summing_to_one() {
    assert_rejected(
        |d| {
            let mut config = std::fs::read_to_string(d.join("audit.toml")).unwrap();
            config.push_str("\n[groups.language]\nreference = { de = 0.5, en = 0.3, nl = 0.1 }\n");
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["groups.language.reference", "sum to 0.9"],
    );
}

#[test]
fn bad_input_clip_below_one() {
    assert_rejected(
        |d| {
            let config = std::fs::read_to_string(d.join("audit.toml")).unwrap().replace("clip = 2", "clip = 0");
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["sampling.clip", "at least 1"],
    );
}

#[test]
fn bad_input_k_larger_than_documents() {
    assert_rejected(
        |d| {
            let config = std::fs::read_to_string(d.join("audit.toml")).unwrap().replace("k = 3", "k = 61");
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["clustering.k = 61", "60"],
    );
}

#[test]
fn arrests_disparate_impact_before_and_after_curation() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempfile::tempdir().unwrap();
    let out = clipaudit(&["run", root.join("fixtures/arrests/audit.toml").to_str().unwrap(), "--out", "bundle"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    let bundle = dir.path().join("bundle");
    let m = metrics(&bundle);
    let colour = m["outcome"].as_array().unwrap().iter().find(|o| o["attribute"] == "colour").unwrap();
    assert_eq!(colour["privileged"], "White");
    let black = colour["groups"].as_array().unwrap().iter().find(|g| g["group"] == "Black").unwrap();

    // Raw corpus, counted by hand in fixtures/arrests/README.md: 955 of 1,288 Black and 3,379 of
    // 3,938 White arrestees were released.
    assert_eq!(black["raw"]["count"], 1288);
    assert_eq!(black["raw"]["positives"], 955);
    let expected = (955.0 / 1288.0) / (3379.0 / 3938.0);
    assert!((black["raw"]["disparate_impact"].as_f64().unwrap() - expected).abs() < 1e-12);
    assert_eq!(black["raw"]["four_fifths_flag"], false);

    // Curated stream: recount from the bundle's own stream joined with the corpus.
    use polars::prelude::*;
    let read = |path: PathBuf| ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
    let corpus = read(root.join("fixtures/arrests/arrests.parquet"));
    let stream = read(bundle.join("data/sample.parquet"));
    let lookup: BTreeMap<&str, (&str, &str)> = corpus
        .column("id").unwrap().str().unwrap().iter()
        .zip(corpus.column("colour").unwrap().str().unwrap().iter())
        .zip(corpus.column("released").unwrap().str().unwrap().iter())
        .map(|((id, c), r)| (id.unwrap(), (c.unwrap(), r.unwrap())))
        .collect();
    let mut tally: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for id in stream.column("id").unwrap().str().unwrap().iter() {
        let (colour, released) = lookup[id.unwrap()];
        let entry = tally.entry(colour).or_default();
        entry.0 += 1.0;
        entry.1 += f64::from(u8::from(released == "Yes"));
    }
    let rate = |c: &str| tally[c].1 / tally[c].0;
    let curated = rate("Black") / rate("White");
    assert_eq!(black["curated"]["count"].as_f64().unwrap(), tally["Black"].0);
    assert!((black["curated"]["disparate_impact"].as_f64().unwrap() - curated).abs() < 1e-12);
    assert_eq!(black["curated"]["four_fifths_flag"], curated < 0.8);

    // The report carries the parity table, and the gate judged the ratio.
    let body = tool("pdftotext", &["report.pdf", "-"], &bundle, None);
    assert!(String::from_utf8_lossy(&body.stdout).contains("Outcome-label parity"));
    assert!(m["gate"]["results"].as_array().unwrap().iter().any(|r| r["check"].as_str().unwrap().starts_with("disparate_impact")));
}

#[test]
fn bad_input_non_binary_outcome() {
    assert_rejected(
        |d| {
            let config = std::fs::read_to_string(d.join("audit.toml")).unwrap().replace(
                "group_columns = [\"language\"]",
                "group_columns = [\"language\"]\noutcome_column = \"language\"\noutcome_positive = \"de\"",
            );
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["column `language` has 3 distinct values", "binary"],
    );
}

#[test]
fn bad_input_unknown_privileged_group() {
    assert_rejected(
        |d| {
            // Give every document a binary outcome, then name a group the corpus lacks.
            let corpus = std::fs::read_to_string(d.join("corpus.csv")).unwrap();
            let mut lines = corpus.lines();
            let mut rewritten = format!("{},approved\n", lines.next().unwrap());
            for (i, line) in lines.enumerate() {
                rewritten.push_str(&format!("{line},{}\n", if i % 2 == 0 { "yes" } else { "no" }));
            }
            std::fs::write(d.join("corpus.csv"), rewritten).unwrap();
            let mut config = std::fs::read_to_string(d.join("audit.toml")).unwrap().replace(
                "group_columns = [\"language\"]",
                "group_columns = [\"language\"]\noutcome_column = \"approved\"\noutcome_positive = \"yes\"",
            );
            config.push_str("\n[groups.language]\nprivileged = \"fr\"\n");
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["groups.language.privileged", "group `fr`", "groups: de, en, nl"],
    );
}

// ---------------------------------------------------------------- recorded samples

/// Writes a recorded stream as CSV (`step,id`) from document ids.
fn write_stream_csv(path: &Path, ids: &[String]) {
    let mut csv = String::from("step,id\n");
    for (step, id) in ids.iter().enumerate() {
        csv.push_str(&format!("{step},{id}\n"));
    }
    std::fs::write(path, csv).unwrap();
}

fn stream_ids(path: &Path) -> Vec<String> {
    use polars::prelude::*;
    let df = ParquetReader::new(std::fs::File::open(path).unwrap()).finish().unwrap();
    df.column("id").unwrap().str().unwrap().iter().map(|v| v.unwrap().to_string()).collect()
}

#[test]
fn sample_rerun_is_byte_identical() {
    let bundle = default_bundle();
    let dir = tempfile::tempdir().unwrap();
    let labels = bundle.join("data/clusters.parquet");
    let out = clipaudit(&["sample", labels.to_str().unwrap(), "--clip", "2", "--draws", "4000", "--seed", "7", "--out", "again.parquet"], dir.path());
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(std::fs::read(dir.path().join("again.parquet")).unwrap() == std::fs::read(bundle.join("data/sample.parquet")).unwrap());
    // The default run verified the shipped recorded stream draw for draw.
    let m = metrics(bundle);
    assert_eq!(m["sampling"]["recorded"]["exact"]["identical"], true);
    assert_eq!(m["sampling"]["recorded"]["passed"], true);
}

#[test]
fn check_sample_reports_changed_draw_step() {
    let bundle = default_bundle();
    let dir = tempfile::tempdir().unwrap();
    let mut ids = stream_ids(&bundle.join("data/sample.parquet"));
    // Replace draw 17 with a document drawn nowhere near it.
    ids[17] = ids[3999].clone();
    write_stream_csv(&dir.path().join("changed.csv"), &ids);
    let labels = bundle.join("data/clusters.parquet");
    let out = clipaudit(&["check-sample", "changed.csv", "--labels", labels.to_str().unwrap(), "--clip", "2", "--seed", "7", "--draws", "4000", "--json"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["exact"]["first_difference"]["step"], 17, "{report}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("17"), "{}", text(&out));
}

#[test]
fn check_sample_names_document_over_clip() {
    let bundle = default_bundle();
    let dir = tempfile::tempdir().unwrap();
    // Another sampler's stream: the recorded stream with its first document drawn once more
    // than C = 2 allows.
    let mut ids = stream_ids(&bundle.join("data/sample.parquet"));
    let first = ids[0].clone();
    let count = ids.iter().filter(|i| **i == first).count();
    for _ in count..3 {
        ids.push(first.clone());
    }
    write_stream_csv(&dir.path().join("other.csv"), &ids);
    let labels = bundle.join("data/clusters.parquet");
    let out = clipaudit(&["check-sample", "other.csv", "--labels", labels.to_str().unwrap(), "--clip", "2", "--sampler", "other-sampler"], dir.path());
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains(&first), "{first} not named: {}", text(&out));
}

#[test]
fn check_sample_rejects_non_monotonic_steps() {
    let bundle = default_bundle();
    let dir = tempfile::tempdir().unwrap();
    let ids = stream_ids(&bundle.join("data/sample.parquet"));
    std::fs::write(dir.path().join("steps.csv"), format!("step,id\n0,{}\n2,{}\n1,{}\n", ids[0], ids[1], ids[2])).unwrap();
    let labels = bundle.join("data/clusters.parquet");
    let out = clipaudit(&["check-sample", "steps.csv", "--labels", labels.to_str().unwrap(), "--clip", "2", "--seed", "7"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("row 1"), "{}", text(&out));
}

#[test]
fn sample_rejects_bad_labels_and_parameters() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("labels.csv"), "id,cluster\na,0\nb,1\na,1\n").unwrap();
    let out = clipaudit(&["sample", "labels.csv", "--clip", "1", "--draws", "3", "--seed", "1", "--out", "s.parquet"], dir.path());
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("duplicate id `a`"), "{}", text(&out));

    std::fs::write(dir.path().join("labels.csv"), "id,cluster\na,0\nb,1\n").unwrap();
    for (flag, value, expected) in [("--clip", "0", "clip"), ("--draws", "0", "draw")] {
        let mut args = vec!["sample", "labels.csv", "--clip", "1", "--draws", "3", "--seed", "1", "--out", "s.parquet"];
        let position = args.iter().position(|a| *a == flag).unwrap();
        args[position + 1] = value;
        let out = clipaudit(&args, dir.path());
        assert_eq!(out.status.code(), Some(2), "{flag} {value}: {}", text(&out));
        assert!(String::from_utf8_lossy(&out.stderr).to_lowercase().contains(expected), "{}", text(&out));
        assert!(!dir.path().join("s.parquet").exists(), "output written despite {flag} {value}");
    }
}

#[test]
fn phase_targets_must_match_phase_count() {
    assert_rejected(
        |d| {
            let mut config = std::fs::read_to_string(d.join("audit.toml")).unwrap();
            config.push_str("\n[groups.language]\nphase_targets = [{ de = 0.5, en = 0.5 }, { nl = 1.0 }]\n");
            std::fs::write(d.join("audit.toml"), config).unwrap();
        },
        &["groups.language.phase_targets", "2 targets for 4 phases"],
    );
}

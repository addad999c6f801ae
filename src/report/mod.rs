//! The evidence report: charts, the view model `report.json`, and the typst compilation.
//!
//! Every figure in the report is read from `metrics.json` and `manifest.json` of the same run;
//! this module only formats them. The template lives in `templates/report.typ`.

pub mod charts;
pub mod typst_world;

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::cluster::Clustering;
use crate::config::{Audit, REPORT_NOTE_KEYS};
use crate::error::{Error, Result};
use crate::evidence::manifest::Manifest;
use crate::sample::Stream;

const TEMPLATE: &str = include_str!("../../templates/report.typ");

/// The field's usual floor for label agreement, shown beside each statistic.
const KAPPA_FLOOR: f64 = 0.8;

/// Everything the report is made from.
pub struct Context<'a> {
    pub audit: &'a Audit,
    pub manifest: &'a Manifest,
    pub metrics: &'a Value,
    pub manifest_json: &'a [u8],
    pub metrics_json: &'a [u8],
    pub sums: &'a [u8],
    pub charts: &'a BTreeMap<String, String>,
    pub principal: &'a str,
    pub key_id: String,
    pub ssh_fingerprint: String,
    pub ephemeral_key: bool,
    pub date: (i32, u8, u8, u8, u8, u8),
}

/// Draws every chart; returns bundle-relative path to SVG text.
pub fn draw_charts(metrics: &Value, clustering: &Clustering, stream: &Stream, clip: u32) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for table in metrics["representation"].as_array().into_iter().flatten() {
        let attribute = table["attribute"].as_str().unwrap_or_default();
        let rows = table["groups"].as_array().cloned().unwrap_or_default();
        let names: Vec<String> = rows.iter().map(|r| r["group"].as_str().unwrap_or_default().to_string()).collect();
        let share = |population: &str| -> Vec<f64> { rows.iter().map(|r| r[population]["share"].as_f64().unwrap_or(0.0)).collect() };
        let (raw, curated, baseline) = (share("raw"), share("curated"), share("baseline"));
        let reference: Vec<f64> = rows.iter().map(|r| r["reference_share"].as_f64().unwrap_or(0.0)).collect();
        let series = [
            charts::Series { label: "raw corpus", values: &raw, color: charts::SERIES_COLORS[0] },
            charts::Series { label: "curated stream", values: &curated, color: charts::SERIES_COLORS[1] },
            charts::Series { label: "random baseline", values: &baseline, color: charts::SERIES_COLORS[2] },
        ];
        let (name, title) = if attribute == "cluster" {
            ("charts/cluster_shares.svg".to_string(), "Cluster shares".to_string())
        } else {
            (format!("charts/representation_{}.svg", file_stem(attribute)), format!("Shares by {attribute}"))
        };
        out.insert(name, charts::grouped_bars(&title, "share", attribute, &names, &series, Some(&reference))?);
    }
    for table in metrics["contingency"].as_array().into_iter().flatten() {
        let attribute = table["attribute"].as_str().unwrap_or_default();
        let groups: Vec<String> = table["groups"].as_array().into_iter().flatten().map(|g| g.as_str().unwrap_or_default().to_string()).collect();
        let counts: Vec<Vec<u64>> = serde_json::from_value(table["counts"].clone()).map_err(|e| Error::internal(e.to_string()))?;
        // Each row is one group's documents spread over the clusters.
        let shares: Vec<Vec<f64>> = counts
            .iter()
            .map(|row| {
                let total: u64 = row.iter().sum();
                row.iter().map(|&n| if total == 0 { 0.0 } else { n as f64 / total as f64 }).collect()
            })
            .collect();
        let clusters: Vec<String> = (0..clustering.params.k).map(|c| c.to_string()).collect();
        out.insert(
            format!("charts/heatmap_{}_cluster.svg", file_stem(attribute)),
            charts::heatmap(&format!("{attribute} × cluster (raw corpus): share of each group's documents"), &groups, &clusters, "cluster", &shares)?,
        );
    }
    for mixture in metrics["phases"].as_array().into_iter().flatten() {
        let attribute = mixture["attribute"].as_str().unwrap_or_default();
        let groups: Vec<String> = serde_json::from_value(mixture["groups"].clone()).map_err(|e| Error::internal(e.to_string()))?;
        let phases = mixture["phases"].as_array().cloned().unwrap_or_default();
        let reference: Vec<Vec<f64>> = phases.iter().map(|p| serde_json::from_value(p["reference"].clone()).unwrap_or_default()).collect();
        let shares: Vec<Vec<f64>> = phases.iter().map(|p| serde_json::from_value(p["shares"].clone()).unwrap_or_default()).collect();
        let labels: Vec<String> = phases.iter().map(|p| format!("{}–{}", p["start"], p["end"].as_u64().unwrap_or(1).saturating_sub(1))).collect();
        let name = format!("charts/phases_{}.svg", file_stem(attribute));
        let svg = if groups.len() <= charts::MAX_LINES {
            charts::phase_lines(&format!("{} shares by training phase", capitalize(attribute)), &groups, &shares, &reference, &labels)?
        } else {
            // Rows are groups and columns phases, each cell the group's share of that phase.
            let by_group: Vec<Vec<f64>> = (0..groups.len()).map(|g| shares.iter().map(|phase| phase[g]).collect()).collect();
            charts::heatmap(&format!("{} shares by training phase", capitalize(attribute)), &groups, &labels, "phase of the curated stream (draws)", &by_group)?
        };
        out.insert(name, svg);
    }
    out.insert(
        "charts/repetition_histogram.svg".into(),
        charts::repetition_histogram("Draws per document in the curated stream", &stream.repetition_histogram(), clip)?,
    );
    Ok(out)
}

/// Returns `text` with its first letter in upper case, for chart titles.
fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    chars.next().map(|first| first.to_uppercase().chain(chars).collect()).unwrap_or_default()
}

/// Returns a file-name-safe form of an attribute name.
fn file_stem(name: &str) -> String {
    name.replace(" × ", "_x_").chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c.to_ascii_lowercase() } else { '_' }).collect()
}

/// Fixed-point with `digits` decimals; "∞" for infinity and "—" for an undefined value.
fn fmt(value: &Value, digits: usize) -> String {
    match value {
        Value::Number(n) => match n.as_f64() {
            Some(v) if v.fract() == 0.0 && digits == 0 => format!("{v:.0}"),
            Some(v) => {
                let text = format!("{v:.digits$}");
                // A value that rounds to zero is shown without a sign.
                if text.trim_start_matches('-').chars().all(|c| c == '0' || c == '.') { text.trim_start_matches('-').to_string() } else { text }
            }
            None => n.to_string(),
        },
        Value::String(s) if s == "inf" => "∞".into(),
        Value::String(s) => s.clone(),
        _ => "—".into(),
    }
}

/// Compiles the report PDF with its attachments.
pub fn compile(context: &Context) -> Result<Vec<u8>> {
    let view = view_model(context);
    let mut files: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    files.insert("report.json".into(), serde_json::to_vec(&view).map_err(|e| Error::internal(e.to_string()))?);
    files.insert("manifest.json".into(), context.manifest_json.to_vec());
    files.insert("metrics.json".into(), context.metrics_json.to_vec());
    files.insert("SHA256SUMS".into(), context.sums.to_vec());
    for (name, svg) in context.charts {
        files.insert(name.clone(), svg.as_bytes().to_vec());
    }
    typst_world::compile_pdf(TEMPLATE, &files, context.date)
}

/// The EU AI Act evidence map: provision, its requirement, where this report evidences it, and
/// the `[report.notes]` key for the provider's part.
const MAPPING: &[(&str, &str, &str, &str)] = &[
    ("Art. 10(2)(a)", "Relevant design choices.", "Clustering, sampling and reference-distribution parameters with the config hash (sections Clustering, ClusterClip sampling, Parameters).", "design_choices"),
    ("Art. 10(2)(b)", "Data collection processes, origin of data, original purpose of personal data.", "Sources with hashes and sizes (sections Data set and provenance, Lineage).", "collection"),
    ("Art. 10(2)(c)", "Preparation: annotation, labelling, cleaning, updating, enrichment, aggregation.", "Curation steps in order (embedding model and hashes, clustering, clipping) and label agreement with its method (sections Lineage, Label agreement).", "preparation"),
    ("Art. 10(2)(d)", "Assumptions about what the data measure and represent.", "Declared group attributes and reference distributions (section Representation).", "assumptions"),
    ("Art. 10(2)(e)", "Availability, quantity and suitability of the data sets.", "Counts per group and cluster; minimum cell counts (sections Representation, Clustering).", "suitability"),
    ("Art. 10(2)(f)", "Examination in view of possible biases.", "Representation against the reference, divergences and, where an outcome label exists, outcome-label parity, before and after curation (sections Representation, Bias deltas).", "bias_context"),
    ("Art. 10(2)(g)", "Measures to detect, prevent and mitigate biases.", "The ClusterClip curation and its measured effect, bias deltas with intervals (sections ClusterClip sampling, Bias deltas).", "other_measures"),
    ("Art. 10(2)(h)", "Data gaps and shortcomings, and how they are addressed.", "Groups under thresholds, indeterminate and undefined results, limits of balancing (section Data gaps and limitations).", "data_gaps"),
    ("Art. 10(3)", "Relevant, sufficiently representative, as free of errors and complete as possible; statistical properties for the persons or groups concerned.", "The representation section and the gate verdicts.", "relevance"),
    ("Art. 10(4)", "The specific geographical, contextual, behavioural or functional setting.", "Breakdowns by the declared setting attributes (section Representation).", "intended_setting"),
    ("Art. 10(5)", "Special categories of personal data only where strictly necessary for bias detection, with safeguards.", "Whether any declared attribute is a special category (section Representation).", "special_categories"),
    ("Annex IV 2(d)", "Datasheets: provenance, scope, main characteristics, how data were obtained and selected, labelling, cleaning.", "Data set section and lineage table.", "datasheet"),
    ("Annex IV 2(g)", "Test logs and reports, dated and signed by the responsible persons.", "Date, responsible person, signature and key id on the cover; verification commands.", ""),
    ("Art. 12, Art. 18", "Record keeping; documentation kept for ten years.", "The signed bundle and how to verify it later with standard tools (section How to verify).", "retention"),
];

fn view_model(c: &Context) -> Value {
    let m = c.metrics;
    let project = &c.audit.raw.project;
    let notes = &c.audit.raw.report.notes;
    debug_assert!(MAPPING.iter().all(|(_, _, _, key)| key.is_empty() || REPORT_NOTE_KEYS.contains(key)));

    let gate_rows: Vec<Value> = m["gate"]["results"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let value = match r["value"].as_f64() {
                Some(v) if v.fract() == 0.0 => format!("{v:.0}"),
                _ => fmt(&r["value"], 4),
            };
            json!({ "check": r["check"], "subject": r["subject"], "value": value, "verdict": r["verdict"], "detail": r["detail"] })
        })
        .collect();
    let verdict = m["gate"]["verdict"].as_str().unwrap_or("indeterminate");
    let failed = gate_rows.iter().filter(|r| r["verdict"] == "fail").count();
    let warnings = gate_rows.iter().filter(|r| r["verdict"] == "warning").count();
    let verdict_note = format!(
        "{} gate checks: {} failed, {} warnings, {} indeterminate. Only checks of severity \"error\" decide the verdict; warnings and their indeterminate results are shown, not counted.",
        gate_rows.len(),
        failed,
        warnings,
        gate_rows.iter().filter(|r| r["verdict"] == "indeterminate").count()
    );

    let mapping: Vec<Value> = MAPPING
        .iter()
        .map(|(provision, asks, shows, key)| {
            let (left, documented) = if key.is_empty() {
                ("—".to_string(), true)
            } else {
                match notes.get(*key) {
                    Some(text) => (text.clone(), true),
                    None => (format!("not documented (set [report.notes] {key})"), false),
                }
            };
            json!({ "provision": provision, "asks": asks, "shows": shows, "left": left, "left_documented": documented })
        })
        .collect();

    let inputs = &c.manifest.inputs;
    let corpus_files: Vec<Value> = inputs.iter().filter(|f| f.role == "corpus").map(|f| json!({ "path": f.path, "size": f.size.to_string(), "sha256": f.sha256 })).collect();
    let model_files: Vec<Value> = c.manifest.model_files.iter().map(|(name, sha)| json!({ "name": name, "sha256": sha })).collect();
    let e = &m["embedding"];
    let features = e["pooling"] == "none";
    let embedding_text = if features {
        format!(
            "Vectors of dimension {} built from the data's own columns ({}), not by a language model. The provenance file records how they were made and the hash of the table they came from.",
            fmt(&e["dimension"], 0),
            e["model"].as_str().unwrap_or("unknown"),
        )
    } else {
        format!(
        "Vectors of dimension {} from the model {} ({} pooling, {}, stored as {}, at most {} tokens; {} documents were truncated at that length). The model files' hashes below are those recorded when the embeddings were made.",
        fmt(&e["dimension"], 0),
        e["model"].as_str().unwrap_or("unknown"),
        e["pooling"].as_str().unwrap_or("unknown"),
        if e["normalized"].as_bool().unwrap_or(false) { "L2-normalised" } else { "not normalised" },
        e["precision"].as_str().unwrap_or("f32"),
        fmt(&e["max_seq_length"], 0),
        fmt(&e["truncated_documents"], 0),
        )
    };

    let cl = &m["clustering"];
    let p = &cl["params"];
    let sizes: Vec<u64> = serde_json::from_value(cl["sizes"].clone()).unwrap_or_default();
    let clustering_rows = vec![
        json!(["backend", p["backend"]]),
        json!(["clusters k", fmt(&p["k"], 0)]),
        json!(["metric", p["metric"]]),
        json!(["initialisation", p["init"]]),
        json!(["seed", fmt(&p["seed"], 0)]),
        json!(["random generator", p["generator"]]),
        json!(["maximum iterations / tolerance", format!("{} / {}", fmt(&p["max_iterations"], 0), p["tolerance"])]),
        json!(["restarts (n_runs)", fmt(&p["n_runs"], 0)]),
        json!([cl["objective_name"], fmt(&cl["objective"], 6)]),
        json!(["cluster sizes (smallest / largest)", format!("{} / {}", sizes.iter().min().unwrap_or(&0), sizes.iter().max().unwrap_or(&0))]),
        json!(["empty clusters", if cl["empty_clusters"].as_array().is_some_and(|a| a.is_empty()) { "none".to_string() } else { cl["empty_clusters"].to_string() }]),
        json!(["imbalance factor k·Σnᵢ²/N²", fmt(&cl["imbalance_factor"], 4)]),
    ];
    let clustering_text = "The embeddings were clustered again (mode \"rerun\") with linfa-clustering's k-means. Its update step counts each old centroid as one more member of its cluster (linfa's m_k-means variant), and it stops when successive centroid matrices are closer than the tolerance. For the cosine metric the final centroids are re-normalised to unit length, every document is then assigned in f64 to its nearest centroid (ties to the lower index), and the objective is computed from that assignment. The imbalance factor is 1 for equal cluster sizes and k when one cluster holds every document.";

    let s = &m["sampling"];
    let sampling_rows = vec![
        json!(["sampler", s["sampler"]]),
        json!(["clip threshold C", fmt(&s["clip"], 0)]),
        json!(["draws requested / emitted", format!("{} / {}", fmt(&s["draws_requested"], 0), fmt(&s["draws"], 0))]),
        json!(["seed", fmt(&s["seed"], 0)]),
        json!(["exhaustion policy", s["policy"]]),
        json!(["stream ended early (all clusters exhausted)", if s["stopped_early"].as_bool().unwrap_or(false) { "yes" } else { "no" }]),
        json!(["largest draw count of one document", fmt(&s["max_count"], 0)]),
        json!(["documents clipped (drawn C times)", fmt(&s["clipped_documents"], 0)]),
        json!(["documents drawn more than C times", fmt(&s["documents_over_clip"], 0)]),
        json!(["documents never drawn", fmt(&s["never_drawn"], 0)]),
        json!(["random baseline", format!("{}, {} draws, largest count {}", s["baseline"]["sampler"].as_str().unwrap_or(""), fmt(&s["baseline"]["draws"], 0), fmt(&s["baseline"]["max_count"], 0))]),
    ];
    let sampling_text = "ClusterClip sampling draws a cluster uniformly among the clusters still active, then the next document of that cluster's current pass (a shuffled list of its documents drawn fewer than C times). A document drawn C times is clipped; a cluster whose documents are all clipped leaves the draw. The stream is the clusterclip-v1 definition: a ChaCha20 keystream keyed by SHA-256 of the seed and the sampler name, Lemire's bounded integers and Fisher–Yates shuffles, so any implementation of the definition reproduces it draw for draw. The random baseline (uniform-v1) draws the same number of documents as shuffled passes over the whole corpus.";
    let sampling_text = if s["baseline"]["draws"] == m["corpus"]["documents"] {
        format!("{sampling_text} Here the stream has exactly as many draws as the corpus has documents, so the baseline is one shuffled pass and its shares equal the raw corpus's.")
    } else {
        sampling_text.to_string()
    };
    // Every cluster: its size, when it was exhausted, and its share of the draws before and after
    // the first exhaustion.
    let split = &s["before_after_first_exhaustion"];
    let sizes = cl["sizes"].as_array().cloned().unwrap_or_default();
    let exhausted: Vec<Value> = if split["first_exhaustion_step"].is_null() {
        Vec::new()
    } else {
        (0..sizes.len())
            .map(|c| {
                let step = s["exhausted"].as_array().into_iter().flatten().find(|x| x["cluster"] == c).map(|x| fmt(&x["step"], 0)).unwrap_or_else(|| "—".into());
                json!([c.to_string(), fmt(&sizes[c], 0), step, fmt(&split["before"][c], 4), fmt(&split["after"][c], 4)])
            })
            .collect()
    };
    let first_exhaustion = fmt(&split["first_exhaustion_step"], 0);

    let mut representation = Vec::new();
    let mut deltas = Vec::new();
    let mut gaps = Vec::new();
    for t in m["representation"].as_array().into_iter().flatten() {
        let attribute = t["attribute"].as_str().unwrap_or_default();
        let reference = match &t["reference"] {
            Value::String(s) if s == "uniform" => "uniform over the groups present in the corpus".to_string(),
            Value::String(s) if s == "corpus" => "the raw corpus's own shares".to_string(),
            other => format!("declared shares {}", other.get("shares").unwrap_or(other)),
        };
        // One gap line per attribute and population, listing the indeterminate groups with counts.
        for population in ["raw", "curated"] {
            let small: Vec<String> = t["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|g| g[population]["status"] == "indeterminate")
                .map(|g| format!("{} ({})", g["group"].as_str().unwrap_or(""), fmt(&g[population]["count"], 0)))
                .collect();
            if !small.is_empty() {
                gaps.push(format!(
                    "Attribute \"{attribute}\", {population}: {} group(s) under the minimum cell count {} or minimum share {} are indeterminate: {}.",
                    small.len(),
                    fmt(&t["min_count"], 0),
                    fmt(&t["min_share"], 4),
                    small.join(", ")
                ));
            }
        }
        let rows: Vec<Value> = t["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|g| {
                let status = format!("{} / {}", g["raw"]["status"].as_str().unwrap_or(""), g["curated"]["status"].as_str().unwrap_or(""));
                json!([g["group"], fmt(&g["reference_share"], 4), fmt(&g["raw"]["count"], 0), fmt(&g["raw"]["share"], 4), fmt(&g["curated"]["count"], 0), fmt(&g["curated"]["share"], 4), fmt(&g["curated"]["representation_ratio"], 3), fmt(&g["baseline"]["share"], 4), status])
            })
            .collect();
        let summary: Vec<Value> = [
            ("KL divergence (nats)", "kl_divergence"),
            ("Jensen–Shannon distance", "js_distance"),
            ("total variation distance", "total_variation"),
            ("normalised entropy H/ln K", "normalized_entropy"),
            ("Gini–Simpson index", "gini_simpson"),
            ("minimum share", "min_share"),
            ("Theil T = KL(P ‖ R)", "theil_t"),
            ("Theil L = KL(R ‖ P)", "theil_l"),
            ("Pearson χ² against the reference", "chi_square"),
            ("χ² degrees of freedom", "chi_square_df"),
            ("χ² p-value (upper tail)", "chi_square_p"),
        ]
        .iter()
        .map(|(label, key)| {
            let digits = if *key == "chi_square_df" { 0 } else { 4 };
            let cell = |population: &str| {
                let value = &t["summary"][population][key];
                // p-values span many orders of magnitude, so small ones keep their exponent.
                match value.as_f64() {
                    Some(p) if *key == "chi_square_p" && p > 0.0 && p < 1e-4 => format!("{p:.2e}"),
                    Some(p) if *key == "chi_square_p" && p == 0.0 => "< 1e-300".to_string(),
                    _ => fmt(value, digits),
                }
            };
            json!([label, cell("raw"), cell("curated"), cell("baseline")])
        })
        .collect();
        let chart = if attribute == "cluster" { "charts/cluster_shares.svg".to_string() } else { format!("charts/representation_{}.svg", file_stem(attribute)) };
        let has_table = m["contingency"].as_array().into_iter().flatten().any(|c| c["attribute"] == attribute);
        let heatmap = if has_table { json!(format!("charts/heatmap_{}_cluster.svg", file_stem(attribute))) } else { Value::Null };
        representation.push(json!({
            "attribute": attribute,
            "reference": reference,
            "min_share": fmt(&t["min_share"], 4),
            "min_count": fmt(&t["min_count"], 0),
            "special_category": t["special_category"],
            "chart": chart,
            "heatmap": heatmap,
            "rows": rows,
            "summary": summary,
        }));
        let delta_rows: Vec<Value> = t["deltas"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|d| {
                json!([d["measure"], d["from"], fmt(&d["from_value"], 4), fmt(&d["curated_value"], 4), fmt(&d["absolute"], 4), fmt(&d["relative"], 3), format!("[{}, {}]", fmt(&d["ci_low"], 4), fmt(&d["ci_high"], 4))])
            })
            .collect();
        deltas.push(json!({ "attribute": attribute, "rows": delta_rows }));
    }

    let outcome: Vec<Value> = m["outcome"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|t| {
            let rows: Vec<Value> = t["groups"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|g| {
                    let flag = |c: &Value| match c["four_fifths_flag"].as_bool() {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "—",
                    };
                    let name = if g["privileged"] == true { format!("{} (privileged)", g["group"].as_str().unwrap_or("")) } else { g["group"].as_str().unwrap_or("").to_string() };
                    json!([
                        name,
                        fmt(&g["raw"]["count"], 0),
                        fmt(&g["raw"]["base_rate"], 4),
                        fmt(&g["raw"]["disparate_impact"], 3),
                        flag(&g["raw"]),
                        fmt(&g["curated"]["base_rate"], 4),
                        fmt(&g["curated"]["disparate_impact"], 3),
                        flag(&g["curated"]),
                        fmt(&g["baseline"]["disparate_impact"], 3),
                        format!("{} / {}", g["raw"]["status"].as_str().unwrap_or(""), g["curated"]["status"].as_str().unwrap_or("")),
                    ])
                })
                .collect();
            let balance: Vec<Value> = ["raw", "curated", "baseline"]
                .iter()
                .map(|p| {
                    let b = &t["class_balance"][*p];
                    json!([p, fmt(&b["total"], 0), fmt(&b["positives"], 0), fmt(&b["positive_share"], 4), fmt(&b["imbalance_ratio"], 4)])
                })
                .collect();
            json!({
                "attribute": t["attribute"],
                "privileged": t["privileged"],
                "privileged_source": t["privileged_source"],
                "positive": t["positive"],
                "rows": rows,
                "balance": balance,
            })
        })
        .collect();

    let agreement = if m["agreement"].is_null() {
        Value::Null
    } else {
        let a = &m["agreement"];
        let names = [
            ("cohen", "Cohen's κ (unweighted)"),
            ("cohen_linear", "Cohen's κ (linear weights)"),
            ("cohen_quadratic", "Cohen's κ (quadratic weights)"),
            ("fleiss", "Fleiss' κ (SE under H0, so no CI)"),
            ("krippendorff_nominal", "Krippendorff's α (nominal)"),
            ("krippendorff_ordinal", "Krippendorff's α (ordinal)"),
            ("krippendorff_interval", "Krippendorff's α (interval)"),
            ("krippendorff_ratio", "Krippendorff's α (ratio)"),
            ("gwet_ac1", "Gwet's AC1"),
        ];
        let rows: Vec<Value> = names
            .iter()
            .filter(|(key, _)| !a[*key].is_null())
            .map(|(key, label)| {
                let st = &a[*key];
                // Krippendorff's alpha is reported at every level; the declared one is marked.
                let label = match key.strip_prefix("krippendorff_") {
                    Some(level) if Some(level) == a["level"].as_str() => format!("{label}, declared level"),
                    Some(_) => format!("{label}, for comparison"),
                    None => label.to_string(),
                };
                let label = label.as_str();
                if st["status"] == "undefined" {
                    gaps.push(format!("{label} is undefined: {}.", st["reason"].as_str().unwrap_or("no reason given")));
                }
                let ci = if st["ci_low"].is_null() { "—".to_string() } else { format!("[{}, {}]", fmt(&st["ci_low"], 4), fmt(&st["ci_high"], 4)) };
                let computed = match st["reason"].as_str() {
                    Some(reason) => format!("{}: {reason}", st["status"].as_str().unwrap_or("")),
                    None => "yes".to_string(),
                };
                let against = match st["value"].as_f64() {
                    Some(v) if v >= KAPPA_FLOOR => "meets",
                    Some(_) => "below",
                    None => "—",
                };
                json!([label, fmt(&st["value"], 4), fmt(&st["se"], 4), ci, against, computed])
            })
            .collect();
        let pair = a["cohen_raters"].as_array().map(|p| p.iter().map(|r| r.as_str().unwrap_or("").to_string()).collect::<Vec<_>>().join(" and ")).unwrap_or_default();
        let text = format!(
            "{} {} items, {} raters, {} categories, from {}. Cohen's κ compares raters {pair}. Weighted κ and ordinal α use the categories' order. Where an interval is shown it is the value ± 1.96 asymptotic standard errors; Fleiss' κ has only the standard error under the null hypothesis of chance agreement, which gives its z but no interval. The column \"Against κ ≥ 0.8\" compares each value with the field's usual floor; the gate checks are in the summary.",
            a["description"].as_str().unwrap_or(""),
            fmt(&a["items"], 0),
            fmt(&a["raters"], 0),
            fmt(&a["categories"], 0),
            a["source"].as_str().unwrap_or("the annotation table"),
        );
        json!({ "text": text.trim(), "rows": rows })
    };

    let small = m["representation"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["attribute"] != "cluster" && !t["attribute"].as_str().unwrap_or("").contains(" × "))
        .flat_map(|t| t["groups"].as_array().cloned().unwrap_or_default().into_iter().map(move |g| (t["attribute"].clone(), g)))
        .filter(|(_, g)| g["raw"]["share"].as_f64().is_some_and(|s| s < 0.005))
        .count();
    gaps.push(format!(
        "Balancing by clusters cannot create documents: a group under about 0.5 % of a corpus stays rare whatever the sampler does, and clipping limits how often its documents can be repeated. {small} group(s) in this corpus are under 0.5 %."
    ));
    if m["sampling"]["stopped_early"].as_bool().unwrap_or(false) {
        gaps.push("Every cluster was exhausted before the requested number of draws, so the curated stream is shorter than requested.".into());
    }
    let truncated = m["embedding"]["truncated_documents"].as_u64().unwrap_or(0);
    if truncated > 0 {
        gaps.push(format!("{truncated} documents were longer than the embedding model's maximum sequence length; only their beginning was embedded."));
    }
    gaps.push("The tool measures what it was given. Whether the declared attributes and reference distributions suit the intended purpose is for the provider to argue (Art. 10(2)(d), 10(3)).".into());

    let mut lineage: Vec<Value> = c
        .manifest
        .inputs
        .iter()
        .map(|f| json!({ "path": f.path, "role": format!("input: {}", f.role), "size": f.size, "sha256": f.sha256 }))
        .collect();
    lineage.extend(c.manifest.outputs.iter().map(|f| json!({ "path": f.path, "role": f.role, "size": f.size, "sha256": f.sha256 })));

    let principal = c.principal;
    let verify = vec![
        json!({ "what": "Check every file listed in SHA256SUMS (GNU coreutils):", "command": "sha256sum -c SHA256SUMS" }),
        json!({ "what": "Compute the key id and compare it with the one on the cover:", "command": "openssl pkey -pubin -in signer.pub.pem -outform DER | sha256sum" }),
        json!({ "what": "Check the raw Ed25519 signatures (OpenSSL 3):", "command": "for f in manifest.json SHA256SUMS report.pdf; do openssl pkeyutl -verify -pubin -inkey signer.pub.pem -rawin -in \"$f\" -sigfile \"$f.sig\"; done" }),
        json!({ "what": format!("Check the OpenSSH signatures; the principal \"{principal}\" is the first field of allowed_signers. Namespace clipaudit-manifest covers manifest.json and SHA256SUMS:"), "command": format!("for f in manifest.json SHA256SUMS; do ssh-keygen -Y verify -f allowed_signers -I '{principal}' -n clipaudit-manifest -s \"$f.sshsig\" < \"$f\"; done") }),
        json!({ "what": "Namespace clipaudit-report covers the report:", "command": format!("ssh-keygen -Y verify -f allowed_signers -I '{principal}' -n clipaudit-report -s report.pdf.sshsig < report.pdf") }),
        json!({ "what": "Extract the files attached to this PDF (poppler-utils) into a folder outside the bundle and compare them with the bundle's copies:", "command": "d=$(mktemp -d) && pdfdetach -saveall -o \"$d\" report.pdf && for f in manifest.json metrics.json SHA256SUMS; do cmp \"$d/$f\" \"$f\"; done" }),
        json!({ "what": "Check every hash, every signature and the bundle's file list at once with clipaudit; it does not read the PDF's attachments, which the previous command compares:", "command": "clipaudit verify . --key signer.pub.pem" }),
    ];

    let parameters = vec![
        json!(["configuration file", format!("{} (SHA-256 {})", c.manifest.config.path, c.manifest.config.sha256)]),
        json!(["tool", format!("{} {} ({})", c.manifest.tool.name, c.manifest.tool.version, c.manifest.tool.build)]),
        json!(["started / finished", format!("{} / {}", c.manifest.started_at, c.manifest.finished_at)]),
        json!(["operating system / architecture", format!("{} / {}", c.manifest.environment.os, c.manifest.environment.arch)]),
        json!(["processor", c.manifest.environment.cpu]),
        json!(["threads / device", format!("{} / {}", c.manifest.environment.threads, c.manifest.environment.device)]),
        json!(["bootstrap", format!("{} resamples, seed {}, {}", c.manifest.parameters["bootstrap"]["resamples"], c.manifest.parameters["bootstrap"]["seed"], c.manifest.parameters["bootstrap"]["generator"].as_str().unwrap_or(""))]),
        json!(["sampling", format!("{}, C = {}, T = {}, seed {}, policy {}", c.manifest.parameters["sampling"]["sampler"].as_str().unwrap_or(""), c.manifest.parameters["sampling"]["clip"], c.manifest.parameters["sampling"]["draws"], c.manifest.parameters["sampling"]["seed"], c.manifest.parameters["sampling"]["policy"].as_str().unwrap_or(""))]),
        json!(["clustering seed generator", p["generator"]]),
    ];
    let conventions: Vec<Value> = m["conventions"].as_object().into_iter().flatten().map(|(k, v)| json!(format!("{k}: {}", v.as_str().unwrap_or("")))).collect();

    let dataset = &c.audit.raw.dataset;
    let title = c.audit.raw.report.title.clone().unwrap_or_else(|| "Training data evidence report".into());
    json!({
        "title": title,
        "project": project,
        "date": c.manifest.started_at,
        "tool": format!("clipaudit {} ({})", c.manifest.tool.version, c.manifest.tool.build),
        "run_id": c.manifest.run_id,
        "run_id_short": &c.manifest.run_id[..12],
        "config_path": c.manifest.config.path,
        "config_sha256": c.manifest.config.sha256,
        "signer": {
            "principal": principal,
            "key_id": c.key_id,
            "key_id_short": &c.key_id[..16],
            "ssh_fingerprint": c.ssh_fingerprint,
            "ephemeral": c.ephemeral_key,
        },
        "verdict": verdict,
        "verdict_note": verdict_note,
        "attachments": {
            "manifest.json": "Lineage manifest of this run",
            "metrics.json": "Every figure of this report",
            "SHA256SUMS": "SHA-256 of every bundle file except report.pdf and the signatures",
        },
        "gate": gate_rows,
        "mapping": mapping,
        "dataset": {
            "description": dataset.description.clone().unwrap_or_default(),
            "documents": fmt(&m["corpus"]["documents"], 0),
            "columns": format!(
                "id \"{}\", text {}, group attributes {}, outcome {}",
                dataset.id_column,
                dataset.text_column.as_ref().map(|t| format!("\"{t}\"")).unwrap_or_else(|| "none".into()),
                dataset.group_columns.iter().map(|g| format!("\"{g}\"")).collect::<Vec<_>>().join(", "),
                dataset.outcome_column.as_ref().map(|o| format!("\"{o}\" (favourable value \"{}\")", dataset.outcome_positive.as_deref().unwrap_or(""))).unwrap_or_else(|| "none".into()),
            ),
            "files": corpus_files,
            "embedding_text": embedding_text,
            "model_files": model_files,
        },
        "clustering": { "text": clustering_text, "rows": clustering_rows },
        "sampling": { "text": sampling_text, "rows": sampling_rows, "exhausted": exhausted, "first_exhaustion": first_exhaustion },
        "representation": representation,
        "deltas": deltas,
        "bootstrap_resamples": fmt(&m["representation"][0]["bootstrap_resamples"], 0),
        "agreement": agreement,
        "outcome": outcome,
        "phases": phase_view(m),
        "recorded": recorded_view(&m["sampling"]["recorded"]),
        "gaps": gaps,
        "lineage": lineage,
        "steps": c.manifest.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
        "verify": verify,
        "parameters": parameters,
        "conventions": conventions,
    })
}

/// Builds the mixture-over-training part of the sampling section: a chart per attribute and a table of
/// each phase's Jensen–Shannon distance to the reference.
fn phase_view(m: &Value) -> Value {
    let mixtures = m["phases"].as_array().cloned().unwrap_or_default();
    let Some(first) = mixtures.first() else {
        return json!({ "charts": [], "header": [], "rows": [] });
    };
    let header: Vec<String> = first["phases"].as_array().into_iter().flatten().map(|p| format!("{}–{}", p["start"], p["end"].as_u64().unwrap_or(1).saturating_sub(1))).collect();
    let rows: Vec<Value> = mixtures
        .iter()
        .map(|x| {
            let mut row = vec![json!(x["attribute"])];
            row.extend(x["phases"].as_array().into_iter().flatten().map(|p| json!(fmt(&p["js_distance"], 4))));
            Value::Array(row)
        })
        .collect();
    let charts: Vec<Value> = mixtures
        .iter()
        .map(|x| json!({ "attribute": x["attribute"], "path": format!("charts/phases_{}.svg", file_stem(x["attribute"].as_str().unwrap_or(""))) }))
        .collect();
    json!({ "charts": charts, "header": header, "rows": rows })
}

/// Builds the recorded-sample part of the sampling section, or null when no sample was recorded.
fn recorded_view(r: &Value) -> Value {
    if r.is_null() {
        return Value::Null;
    }
    let inv = &r["invariants"];
    let exact = match (&r["exact"], &r["counts"]) {
        (e, _) if !e.is_null() => {
            if e["identical"] == true {
                format!("identical to a {} re-run, draw for draw ({} draws)", r["claim"]["sampler"].as_str().unwrap_or(""), fmt(&e["recorded_draws"], 0))
            } else {
                r["first_difference"].as_str().unwrap_or("differs").to_string()
            }
        }
        (_, c) if !c.is_null() => {
            if c["identical"] == true { "per-document counts identical to a re-run".to_string() } else { format!("{} documents' counts differ from a re-run", fmt(&c["differing_documents"], 0)) }
        }
        _ => format!("no exact comparison: the claimed sampler \"{}\" is not one clipaudit implements", r["claim"]["sampler"].as_str().unwrap_or("")),
    };
    let balance = match inv["balance"]["status"].as_str() {
        Some("computed") => format!(
            "χ² = {} with {} df over the first {} draws, p = {}",
            fmt(&inv["balance"]["chi_square"], 3),
            fmt(&inv["balance"]["df"], 0),
            fmt(&inv["balance"]["prefix_draws"], 0),
            match inv["balance"]["p_value"].as_f64() {
                Some(p) if p > 0.0 && p < 1e-4 => format!("{p:.2e}"),
                _ => fmt(&inv["balance"]["p_value"], 4),
            }
        ),
        _ => format!("undefined: {}", inv["balance"]["reason"].as_str().unwrap_or("")),
    };
    let order = match inv["exhaustion"]["status"].as_str() {
        Some("computed") => format!(
            "{} clusters exhausted; Spearman ρ between size and exhaustion step {} (consistent when ρ ≥ 0; reported, not gating)",
            fmt(&inv["exhaustion"]["exhausted"], 0),
            fmt(&inv["exhaustion"]["spearman_rho"], 3)
        ),
        _ => format!("undefined: {}", inv["exhaustion"]["reason"].as_str().unwrap_or("")),
    };
    let rows = vec![
        json!(["file", format!("{} ({}, SHA-256 {})", r["file"].as_str().unwrap_or(""), r["kind"].as_str().unwrap_or(""), r["sha256"].as_str().unwrap_or(""))]),
        json!(["claimed sampler", r["claim"]["sampler"]]),
        json!(["exact comparison", exact]),
        json!(["documents drawn more than C times", inv["clip_violations"].as_array().map(|v| v.len()).unwrap_or(0).to_string()]),
        json!(["balance across active clusters", balance]),
        json!(["exhaustion order", order]),
        json!(["verdict", if r["passed"] == true { "passed".to_string() } else { format!("failed: {}", r["failures"].as_array().into_iter().flatten().filter_map(|f| f.as_str()).collect::<Vec<_>>().join("; ")) }]),
    ];
    json!({ "rows": rows })
}

//! The audit configuration: one TOML file that describes a run.
//!
//! Parsing happens in two steps. Serde reads the file into the raw `*Section` structs, rejecting
//! unknown keys. [`Audit::from_toml`] then validates every cross-field rule once and resolves paths
//! relative to the file, so later stages can trust what they are given.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gate::CheckSpec;
use crate::sample::ExhaustionPolicy;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub project: ProjectSection,
    pub dataset: DatasetSection,
    pub embedding: EmbeddingSection,
    pub clustering: ClusteringSection,
    pub sampling: SamplingSection,
    #[serde(default)]
    pub groups: BTreeMap<String, GroupSection>,
    pub annotations: Option<AnnotationsSection>,
    #[serde(default)]
    pub gate: GateSection,
    #[serde(default)]
    pub report: ReportSection,
    pub signing: Option<SigningSection>,
}

/// `[project]`: who provides which system, for the report's cover.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSection {
    pub system: String,
    pub provider: String,
    pub intended_purpose: String,
    pub responsible_person: String,
    pub dataset_version: String,
}

/// `[dataset]`: the corpus files and the columns that matter.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetSection {
    pub files: Vec<String>,
    #[serde(default = "default_id_column")]
    pub id_column: String,
    /// The text column, needed only when embeddings are computed from a model.
    pub text_column: Option<String>,
    #[serde(default)]
    pub group_columns: Vec<String>,
    /// A binary outcome label (e.g. a decision), for parity measures per group.
    pub outcome_column: Option<String>,
    /// The outcome value that counts as favourable.
    pub outcome_positive: Option<String>,
    pub description: Option<String>,
}

/// `[embedding]`: a precomputed embedding file, or a model directory to embed with. With both,
/// the file must have been made by that model (checked against its provenance).
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingSection {
    pub precomputed: Option<String>,
    pub model: Option<String>,
    #[serde(default = "default_batch_size")]
    pub batch_size: usize,
}

/// `[clustering]`: k-means parameters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ClusteringSection {
    #[serde(default = "default_mode")]
    pub mode: String,
    pub k: usize,
    #[serde(default = "default_max_iterations")]
    pub max_iterations: u64,
    #[serde(default = "default_tolerance")]
    pub tolerance: f64,
    pub seed: u64,
    #[serde(default = "default_metric")]
    pub metric: String,
    #[serde(default = "default_init")]
    pub init: String,
    #[serde(default = "default_backend")]
    pub backend: String,
    #[serde(default = "default_n_runs")]
    pub n_runs: usize,
}

/// `[sampling]`: ClusterClip parameters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SamplingSection {
    pub clip: u32,
    pub draws: u64,
    pub seed: u64,
    #[serde(default)]
    pub policy: ExhaustionPolicy,
    #[serde(default = "default_sampler")]
    pub sampler: String,
    /// Equal phases the stream is split into for the mixture over training.
    #[serde(default = "default_phases")]
    pub phases: usize,
    /// First step of each phase, in place of equal phases; must start at 0.
    pub phase_starts: Option<Vec<u64>>,
    /// A sample recorded by the curation pipeline, verified against these parameters: a stream
    /// (Parquet, JSONL or CSV with `id`, optionally `step`), a counts table (`id`, `count`) or an
    /// `.npy` array of document indices.
    pub recorded: Option<String>,
    /// The sampler the recorded sample claims; `clusterclip-v1` and `uniform-v1` are compared
    /// draw for draw, any other name gets the invariant checks only.
    #[serde(default = "default_sampler")]
    pub recorded_sampler: String,
}

/// `[groups.<attribute>]`: the declared reference distribution and thresholds of one attribute.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GroupSection {
    #[serde(default = "default_reference")]
    pub reference: ReferenceSpec,
    #[serde(default = "default_min_share")]
    pub min_share: f64,
    #[serde(default = "default_min_count")]
    pub min_count: u64,
    #[serde(default)]
    pub special_category: bool,
    /// The reference group for outcome parity; the largest group of the raw corpus when absent.
    pub privileged: Option<String>,
    /// A target mixture for each phase of the stream (shares that sum to 1), in phase order.
    pub phase_targets: Option<Vec<BTreeMap<String, f64>>>,
}

/// A declared reference distribution: `"uniform"`, `"corpus"`, or explicit shares.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq)]
#[serde(untagged)]
pub enum ReferenceSpec {
    Named(String),
    Shares(BTreeMap<String, f64>),
}

/// `[annotations]`: a multi-rater label table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AnnotationsSection {
    pub file: String,
    #[serde(default = "default_layout")]
    pub layout: String,
    /// The two raters for Cohen's kappa; the first two raters when absent.
    pub cohen_raters: Option<[String; 2]>,
    /// Level of measurement of the labels: nominal, ordinal, interval or ratio.
    #[serde(default = "default_level")]
    pub level: String,
    pub description: Option<String>,
}

/// `[gate]`: release checks.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct GateSection {
    #[serde(default)]
    pub check: Vec<CheckSpec>,
}

/// `[report]`: title and the provider's own notes for the EU AI Act mapping.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ReportSection {
    pub title: Option<String>,
    #[serde(default)]
    pub notes: BTreeMap<String, String>,
}

/// `[signing]`: where the private key is.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SigningSection {
    pub key: Option<String>,
    pub key_env: Option<String>,
    pub principal: Option<String>,
}

fn default_id_column() -> String {
    "id".into()
}
fn default_batch_size() -> usize {
    32
}
fn default_mode() -> String {
    "rerun".into()
}
fn default_max_iterations() -> u64 {
    100
}
fn default_tolerance() -> f64 {
    1e-4
}
fn default_metric() -> String {
    "cosine".into()
}
fn default_init() -> String {
    "kmeans++".into()
}
fn default_backend() -> String {
    "linfa".into()
}
fn default_n_runs() -> usize {
    1
}
fn default_sampler() -> String {
    "clusterclip-v1".into()
}
fn default_phases() -> usize {
    4
}
fn default_reference() -> ReferenceSpec {
    ReferenceSpec::Named("uniform".into())
}
/// The field's usual floor for a group's share: 0.7 %.
pub const DEFAULT_MIN_SHARE: f64 = 0.007;
/// The smallest cell count on which a share is judged at all.
pub const DEFAULT_MIN_COUNT: u64 = 20;
fn default_min_share() -> f64 {
    DEFAULT_MIN_SHARE
}
fn default_min_count() -> u64 {
    DEFAULT_MIN_COUNT
}
fn default_level() -> String {
    "nominal".into()
}
fn default_layout() -> String {
    "long".into()
}

/// Report notes the provider may write, one per EU AI Act provision in the mapping table.
pub const REPORT_NOTE_KEYS: &[&str] = &[
    "design_choices",
    "collection",
    "preparation",
    "assumptions",
    "suitability",
    "bias_context",
    "other_measures",
    "data_gaps",
    "relevance",
    "intended_setting",
    "special_categories",
    "datasheet",
    "retention",
];

/// Spherical (cosine) or Euclidean k-means.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Metric {
    Cosine,
    L2,
}

/// The k-means initialisation method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Init {
    #[serde(rename = "kmeans++")]
    KMeansPlusPlus,
    #[serde(rename = "random")]
    Random,
}

/// A reference distribution after validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reference {
    Uniform,
    Corpus,
    Shares(BTreeMap<String, f64>),
}

/// One validated group attribute.
#[derive(Debug, Clone, Serialize)]
pub struct GroupSpec {
    pub attribute: String,
    pub reference: Reference,
    pub min_share: f64,
    pub min_count: u64,
    pub special_category: bool,
    pub privileged: Option<String>,
    pub phase_targets: Option<Vec<BTreeMap<String, f64>>>,
}

/// The validated configuration of one run, with paths resolved against the config's folder.
#[derive(Debug, Clone)]
pub struct Audit {
    /// The config file as given, for messages.
    pub path: PathBuf,
    /// The config's bytes, hashed into the manifest and copied into the bundle.
    pub source: Vec<u8>,
    pub raw: RawConfig,
    pub corpus_files: Vec<PathBuf>,
    pub embeddings: Option<PathBuf>,
    pub model: Option<PathBuf>,
    pub metric: Metric,
    pub init: Init,
    pub groups: Vec<GroupSpec>,
    pub annotations: Option<PathBuf>,
    pub signing_key: Option<PathBuf>,
    pub recorded_sample: Option<PathBuf>,
}

impl Audit {
    /// Reads and validates the config at `path`.
    pub fn load(path: &Path) -> Result<Audit> {
        let source = std::fs::read(path).map_err(|e| {
            Error::io("read config", path, e).with_hint("pass the path of an audit TOML file, or no path for the shipped example")
        })?;
        Audit::from_toml(path, source)
    }

    /// Validates config `source`, read from `path` (used for messages and relative paths).
    pub fn from_toml(path: &Path, source: Vec<u8>) -> Result<Audit> {
        let text = std::str::from_utf8(&source)
            .map_err(|e| Error::input(format!("{}: config is not valid UTF-8 ({e})", path.display())))?;
        let raw: RawConfig = toml::from_str(text).map_err(|e| describe_toml_error(path, &e))?;
        let base = path.parent().map(Path::to_path_buf).unwrap_or_default();
        let at = |key: &str, message: String| Error::input(format!("{}: {key}: {message}", path.display()));

        if raw.dataset.files.is_empty() {
            return Err(at("dataset.files", "no corpus file is listed".into())
                .with_hint("list at least one Parquet, JSONL or CSV file, e.g. files = [\"corpus.parquet\"]"));
        }
        let corpus_files = raw.dataset.files.iter().map(|f| base.join(f)).collect();

        let embeddings = raw.embedding.precomputed.as_ref().map(|p| base.join(p));
        let model = raw.embedding.model.as_ref().map(|p| base.join(p));
        if embeddings.is_none() && model.is_none() {
            return Err(at("embedding", "neither `precomputed` nor `model` is set".into())
                .with_hint("set precomputed = \"embeddings.parquet\" or model = \"path/to/model-directory\""));
        }
        if model.is_some() && embeddings.is_none() && raw.dataset.text_column.is_none() {
            return Err(at("dataset.text_column", "is required to embed the corpus with a model".into())
                .with_hint("set text_column to the column holding the documents' text"));
        }
        match (&raw.dataset.outcome_column, &raw.dataset.outcome_positive) {
            (Some(_), None) => {
                return Err(at("dataset.outcome_positive", "is missing while outcome_column is set".into())
                    .with_hint("name the favourable outcome value, e.g. outcome_positive = \"Yes\""))
            }
            (None, Some(_)) => {
                return Err(at("dataset.outcome_column", "is missing while outcome_positive is set".into()))
            }
            _ => {}
        }
        if raw.embedding.batch_size == 0 {
            return Err(at("embedding.batch_size", "must be at least 1".into()));
        }

        let c = &raw.clustering;
        if c.mode != "rerun" {
            return Err(at("clustering.mode", format!("`{}` is not supported by `run` yet", c.mode))
                .with_hint("use mode = \"rerun\"; recorded clusterings are checked with `clipaudit check-clusters`"));
        }
        if c.k < 1 {
            return Err(at("clustering.k", "must be at least 1".into()));
        }
        if c.max_iterations < 1 {
            return Err(at("clustering.max_iterations", "must be at least 1".into()));
        }
        if !(c.tolerance >= 0.0 && c.tolerance.is_finite()) {
            return Err(at("clustering.tolerance", format!("{} is not a non-negative number", c.tolerance)));
        }
        if c.n_runs < 1 {
            return Err(at("clustering.n_runs", "must be at least 1".into()));
        }
        let metric = match c.metric.as_str() {
            "cosine" => Metric::Cosine,
            "l2" => Metric::L2,
            other => return Err(at("clustering.metric", format!("unknown metric `{other}`")).with_hint("use \"cosine\" or \"l2\"")),
        };
        let init = match c.init.as_str() {
            "kmeans++" => Init::KMeansPlusPlus,
            "random" => Init::Random,
            other => return Err(at("clustering.init", format!("unknown init `{other}`")).with_hint("use \"kmeans++\" or \"random\"")),
        };
        if c.backend != "linfa" {
            return Err(at("clustering.backend", format!("backend `{}` is not available in this build", c.backend))
                .with_hint("use backend = \"linfa\""));
        }

        let s = &raw.sampling;
        if s.clip < 1 {
            return Err(at("sampling.clip", "the clip threshold C must be at least 1".into())
                .with_hint("C is the largest number of times one document may be drawn"));
        }
        if s.draws < 1 {
            return Err(at("sampling.draws", "the number of draws T must be at least 1".into()));
        }
        crate::metrics::phases::plan(s.draws, s.phases, s.phase_starts.as_deref()).map_err(|e| e.context(path.display()))?;
        let phase_count = s.phase_starts.as_ref().map_or(s.phases, Vec::len);
        for (attribute, g) in &raw.groups {
            if let Some(targets) = &g.phase_targets {
                if targets.len() != phase_count {
                    return Err(at(&format!("groups.{attribute}.phase_targets"), format!("{} targets for {phase_count} phases", targets.len()))
                        .with_hint("give one table of shares per phase of [sampling]"));
                }
            }
        }
        if s.sampler != "clusterclip-v1" {
            return Err(at("sampling.sampler", format!("unknown sampler `{}`", s.sampler)).with_hint("use \"clusterclip-v1\""));
        }

        let mut groups = Vec::new();
        for (attribute, g) in &raw.groups {
            if !raw.dataset.group_columns.contains(attribute) {
                return Err(at(&format!("groups.{attribute}"), "is not one of dataset.group_columns".into())
                    .with_hint(format!("add \"{attribute}\" to dataset.group_columns, or remove [groups.{attribute}]")));
            }
            groups.push(validate_group(attribute, g).map_err(|e| e.context(path.display()))?);
        }
        // An attribute listed without its own section gets the defaults.
        for attribute in &raw.dataset.group_columns {
            if !raw.groups.contains_key(attribute) {
                groups.push(GroupSpec {
                    attribute: attribute.clone(),
                    reference: Reference::Uniform,
                    min_share: DEFAULT_MIN_SHARE,
                    min_count: DEFAULT_MIN_COUNT,
                    special_category: false,
                    privileged: None,
                    phase_targets: None,
                });
            }
        }
        groups.sort_by(|a, b| {
            let pos = |x: &str| raw.dataset.group_columns.iter().position(|c| c == x);
            pos(&a.attribute).cmp(&pos(&b.attribute))
        });

        let annotations = match &raw.annotations {
            Some(a) => {
                if a.layout != "long" && a.layout != "wide" {
                    return Err(at("annotations.layout", format!("unknown layout `{}`", a.layout))
                        .with_hint("use \"long\" (columns item, rater, label) or \"wide\" (item, then one column per rater)"));
                }
                if !["nominal", "ordinal", "interval", "ratio"].contains(&a.level.as_str()) {
                    return Err(at("annotations.level", format!("unknown level of measurement `{}`", a.level))
                        .with_hint("use \"nominal\", \"ordinal\", \"interval\" or \"ratio\""));
                }
                Some(base.join(&a.file))
            }
            None => None,
        };

        for key in raw.report.notes.keys() {
            if !REPORT_NOTE_KEYS.contains(&key.as_str()) {
                let hint = closest(key, REPORT_NOTE_KEYS.iter().copied())
                    .map(|c| format!("did you mean `{c}`?"))
                    .unwrap_or_else(|| format!("valid keys: {}", REPORT_NOTE_KEYS.join(", ")));
                return Err(at(&format!("report.notes.{key}"), "unknown note key".into()).with_hint(hint));
            }
        }

        for (i, check) in raw.gate.check.iter().enumerate() {
            check.validate().map_err(|e| e.context(format!("{}: [[gate.check]] number {}", path.display(), i + 1)))?;
        }

        let signing_key = raw.signing.as_ref().and_then(|s| s.key.as_ref()).map(|k| base.join(k));

        let recorded_sample = raw.sampling.recorded.as_ref().map(|r| base.join(r));
        Ok(Audit {
            path: path.to_path_buf(),
            source,
            raw,
            corpus_files,
            embeddings,
            model,
            metric,
            init,
            groups,
            annotations,
            signing_key,
            recorded_sample,
        })
    }
}

fn validate_group(attribute: &str, g: &GroupSection) -> Result<GroupSpec> {
    let key = format!("groups.{attribute}");
    let reference = match &g.reference {
        ReferenceSpec::Named(name) if name == "uniform" => Reference::Uniform,
        ReferenceSpec::Named(name) if name == "corpus" => Reference::Corpus,
        ReferenceSpec::Named(name) => {
            return Err(Error::input_hint(
                format!("{key}.reference: unknown reference `{name}`"),
                "use \"uniform\", \"corpus\", or a table of shares such as { de = 0.25, en = 0.75 }",
            ))
        }
        ReferenceSpec::Shares(shares) => {
            if shares.is_empty() {
                return Err(Error::input(format!("{key}.reference: the table of shares is empty")));
            }
            for (group, share) in shares {
                if !(share.is_finite() && *share >= 0.0 && *share <= 1.0) {
                    return Err(Error::input(format!("{key}.reference.{group}: share {share} is not between 0 and 1")));
                }
            }
            let total: f64 = shares.values().sum();
            if (total - 1.0).abs() > 1e-9 {
                return Err(Error::input_hint(
                    format!("{key}.reference: shares sum to {total}, not 1"),
                    "make the declared shares add up to exactly 1",
                ));
            }
            Reference::Shares(shares.clone())
        }
    };
    if !(g.min_share >= 0.0 && g.min_share < 1.0) {
        return Err(Error::input(format!("{key}.min_share: {} is not in [0, 1)", g.min_share)));
    }
    for (phase, target) in g.phase_targets.iter().flatten().enumerate() {
        let total: f64 = target.values().sum();
        if (total - 1.0).abs() > 1e-9 || target.values().any(|v| !(v.is_finite() && *v >= 0.0)) {
            return Err(Error::input_hint(
                format!("{key}.phase_targets[{phase}]: shares sum to {total}, not 1"),
                "give each phase's target mixture as non-negative shares that add up to 1",
            ));
        }
    }
    Ok(GroupSpec {
        attribute: attribute.to_string(),
        reference,
        min_share: g.min_share,
        min_count: g.min_count,
        special_category: g.special_category,
        privileged: g.privileged.clone(),
        phase_targets: g.phase_targets.clone(),
    })
}

/// Turns a TOML or serde error into one that names the file, the key and the closest valid key.
fn describe_toml_error(path: &Path, error: &toml::de::Error) -> Error {
    let message = error.message();
    let location = error
        .span()
        .and_then(|span| std::fs::read_to_string(path).ok().map(|text| line_of(&text, span.start)))
        .map(|line| format!(" (line {line})"))
        .unwrap_or_default();

    // serde words unknown keys as "unknown field `x`, expected one of `a`, `b`".
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (field, candidates) = rest.split_once('`').unwrap_or((rest, ""));
        let valid: Vec<&str> = candidates.split('`').skip(1).step_by(2).collect();
        let hint = match closest(field, valid.iter().copied()) {
            Some(c) => format!("did you mean `{c}`? valid keys here: {}", valid.join(", ")),
            None => format!("valid keys here: {}", valid.join(", ")),
        };
        return Error::input_hint(format!("{}{location}: unknown key `{field}`", path.display()), hint);
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let field = rest.split('`').next().unwrap_or(rest);
        return Error::input_hint(
            format!("{}{location}: missing key `{field}`", path.display()),
            "see fixtures/parlspeech/audit.toml for a complete example",
        );
    }
    Error::input(format!("{}{location}: {}", path.display(), message.trim_end()))
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].bytes().filter(|&b| b == b'\n').count() + 1
}

/// Returns the candidate nearest to `word` by edit distance, if any is reasonably close.
pub fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len().max(word.len()) / 2).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1).min(row[j] + 1).min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_known_pairs() {
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("k", "k"), 0);
    }

    #[test]
    fn closest_picks_nearest_key() {
        let keys = ["k", "seed", "metric", "max_iterations"];
        assert_eq!(closest("seeds", keys.iter().copied()), Some("seed"));
        assert_eq!(closest("max_iteration", keys.iter().copied()), Some("max_iterations"));
        assert_eq!(closest("zzzzzzzzzz", keys.iter().copied()), None);
    }
}

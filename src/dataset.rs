//! Loading the corpus, its embeddings and annotation tables.
//!
//! Every file is read into memory once while its SHA-256 is computed, and polars parses the
//! bytes, so the hash in the manifest is the hash of exactly what was analysed.

use std::collections::{BTreeMap, HashMap};
use std::io::Cursor;
use std::path::{Path, PathBuf};

use polars::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// A file that was read, with what the manifest needs to know about it.
#[derive(Debug, Clone, Serialize)]
pub struct InputFile {
    pub path: PathBuf,
    pub sha256: String,
    pub size: u64,
    pub media_type: &'static str,
    pub role: &'static str,
}

/// Reads `path` whole and hashes it.
pub fn read_hashed(path: &Path, role: &'static str) -> Result<(Vec<u8>, InputFile)> {
    let bytes = std::fs::read(path).map_err(|e| Error::io("read", path, e))?;
    let sha256 = hex(&Sha256::digest(&bytes));
    let info = InputFile {
        path: path.to_path_buf(),
        sha256,
        size: bytes.len() as u64,
        media_type: media_type(path),
        role,
    };
    Ok((bytes, info))
}

/// Lowercase hexadecimal of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn media_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()) {
        Some("parquet") => "application/vnd.apache.parquet",
        Some("csv") => "text/csv",
        Some("jsonl") | Some("ndjson") => "application/jsonl",
        Some("json") => "application/json",
        Some("toml") => "application/toml",
        Some("safetensors") => "application/octet-stream",
        _ => "application/octet-stream",
    }
}

/// Parses a table file by its extension: Parquet, JSON Lines or CSV.
pub fn parse_table(path: &Path, bytes: Vec<u8>) -> Result<DataFrame> {
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let cursor = Cursor::new(bytes);
    let parsed = match ext {
        "parquet" => ParquetReader::new(cursor).finish(),
        "jsonl" | "ndjson" => JsonReader::new(cursor).with_json_format(JsonFormat::JsonLines).finish(),
        "csv" => CsvReadOptions::default()
            .with_has_header(true)
            .with_infer_schema_length(Some(10_000))
            .into_reader_with_file_handle(cursor)
            .finish(),
        other => {
            return Err(Error::input_hint(
                format!("{}: unsupported file type `.{other}`", path.display()),
                "use a .parquet, .jsonl or .csv file",
            ))
        }
    };
    parsed.map_err(|e| {
        Error::input_hint(
            format!("{}: cannot be read as {ext} ({e})", path.display()),
            "the file may be truncated or corrupted; rebuild or re-download it",
        )
    })
}

/// The documents of a corpus, in row order across its files.
#[derive(Debug, Clone)]
pub struct Corpus {
    pub ids: Vec<String>,
    pub texts: Vec<String>,
    /// Group attribute name to one value per document.
    pub groups: BTreeMap<String, Vec<String>>,
    /// The outcome label of each document, when the corpus has one.
    pub outcomes: Option<Vec<String>>,
    pub files: Vec<InputFile>,
}

/// The columns `load_corpus` reads.
pub struct Columns<'a> {
    pub id: &'a str,
    /// Read only when present; the texts are needed only to embed with a model.
    pub text: Option<&'a str>,
    pub groups: &'a [String],
    pub outcome: Option<&'a str>,
}

impl Corpus {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
}

/// Loads and validates the corpus: required columns present, ids unique, text UTF-8 strings.
pub fn load_corpus(files: &[PathBuf], columns: &Columns) -> Result<Corpus> {
    let mut corpus = Corpus {
        ids: Vec::new(),
        texts: Vec::new(),
        groups: BTreeMap::new(),
        outcomes: columns.outcome.map(|_| Vec::new()),
        files: Vec::new(),
    };
    for attribute in columns.groups {
        corpus.groups.insert(attribute.clone(), Vec::new());
    }

    for path in files {
        let (bytes, info) = read_hashed(path, "corpus")?;
        let df = parse_table(path, bytes)?;
        let first_row = corpus.ids.len();
        corpus.ids.extend(string_column(&df, columns.id, path, "dataset.id_column")?);
        if let Some(text) = columns.text {
            corpus.texts.extend(string_column(&df, text, path, "dataset.text_column")?);
        }
        for attribute in columns.groups {
            let values = string_column(&df, attribute, path, "dataset.group_columns")?;
            corpus.groups.get_mut(attribute).expect("inserted above").extend(values);
        }
        if let (Some(outcome), Some(outcomes)) = (columns.outcome, corpus.outcomes.as_mut()) {
            outcomes.extend(string_column(&df, outcome, path, "dataset.outcome_column")?);
        }
        tracing::info!(file = %path.display(), rows = corpus.ids.len() - first_row, "read corpus file");
        corpus.files.push(info);
    }

    if corpus.is_empty() {
        return Err(Error::input_hint(
            format!("{}: the corpus has no rows", files[0].display()),
            "point dataset.files at a file with at least one document",
        ));
    }
    check_unique_ids(&corpus.ids, &files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))?;
    Ok(corpus)
}

/// Reads column `name` as strings: integers are written in decimal, nulls are rejected.
fn string_column(df: &DataFrame, name: &str, path: &Path, key: &str) -> Result<Vec<String>> {
    let column = df.column(name).map_err(|_| {
        let available: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
        let hint = match crate::config::closest(name, available.iter().map(String::as_str)) {
            Some(c) => format!("did you mean `{c}`? set {key} to a column of the file (columns: {})", available.join(", ")),
            None => format!("set {key} to a column of the file (columns: {})", available.join(", ")),
        };
        Error::input_hint(format!("{}: missing column `{name}`", path.display()), hint)
    })?;
    let as_text = match column.dtype() {
        DataType::String => column.clone(),
        dtype if dtype.is_integer() => column.cast(&DataType::String)?,
        DataType::Categorical(..) => column.cast(&DataType::String)?,
        other => {
            return Err(Error::input_hint(
                format!("{}: column `{name}` has type {other}, expected text or integers", path.display()),
                "convert the column to strings",
            ))
        }
    };
    let strings = as_text.str()?;
    let mut values = Vec::with_capacity(strings.len());
    for (row, value) in strings.iter().enumerate() {
        match value {
            Some(v) => values.push(v.to_string()),
            None => {
                return Err(Error::input_hint(
                    format!("{}: row {row}: column `{name}` is null", path.display()),
                    "fill the value or drop the row before the audit",
                ))
            }
        }
    }
    Ok(values)
}

pub(crate) fn check_unique_ids(ids: &[String], source: &str) -> Result<()> {
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        if let Some(first) = seen.insert(id.as_str(), row) {
            return Err(Error::input_hint(
                format!("{source}: duplicate id `{id}` at rows {first} and {row}"),
                "ids must be unique; deduplicate the corpus or choose another id column",
            ));
        }
    }
    Ok(())
}

/// Provenance written beside an embedding file: which model made it, from which corpus.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EmbeddingProvenance {
    pub model: String,
    /// Model file name to SHA-256.
    pub model_files: BTreeMap<String, String>,
    pub pooling: String,
    pub normalized: bool,
    pub max_seq_length: usize,
    pub dimension: usize,
    pub documents: usize,
    pub truncated_documents: usize,
    /// Precision of the stored vectors, `f32` or `f16`.
    #[serde(default = "f32_name")]
    pub precision: String,
    /// SHA-256 of each input file the texts came from.
    pub inputs: BTreeMap<String, String>,
    pub tool: String,
}

fn f32_name() -> String {
    "f32".into()
}

/// Returns the path of the provenance file that belongs beside embedding file `path`.
pub fn provenance_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".json");
    path.with_file_name(name)
}

/// Row-major embedding vectors with their document ids.
#[derive(Debug, Clone)]
pub struct Embeddings {
    pub ids: Vec<String>,
    pub dimension: usize,
    pub data: Vec<f32>,
}

impl Embeddings {
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dimension..(i + 1) * self.dimension]
    }
}

/// Loads embeddings (columns `id` and `embedding`, a list of floats) and validates every vector.
pub fn load_embeddings(path: &Path) -> Result<(Embeddings, InputFile)> {
    let (bytes, info) = read_hashed(path, "embeddings")?;
    let df = parse_table(path, bytes)?;
    let ids = string_column(&df, "id", path, "the embedding file's id column")?;
    let column = df.column("embedding").map_err(|_| {
        Error::input_hint(
            format!("{}: missing column `embedding`", path.display()),
            "embedding files have columns `id` and `embedding` (a list of f32); write one with `clipaudit embed`",
        )
    })?;
    let not_floats = || Error::input(format!("{}: column `embedding` has type {}, expected a list of floats", path.display(), column.dtype()));
    let column = column.cast(&DataType::List(Box::new(DataType::Float32))).map_err(|_| not_floats())?;
    let lists = column.list().map_err(|_| not_floats())?;

    let mut dimension = 0;
    let mut data = Vec::new();
    for (row, vector) in lists.amortized_iter().enumerate() {
        let vector = vector.ok_or_else(|| Error::input(format!("{}: row {row} (id `{}`): embedding is null", path.display(), ids[row])))?;
        let values = vector.as_ref().f32()?;
        if row == 0 {
            dimension = values.len();
            if dimension == 0 {
                return Err(Error::input(format!("{}: row 0 (id `{}`): embedding is empty", path.display(), ids[0])));
            }
            data.reserve(dimension * lists.len());
        } else if values.len() != dimension {
            return Err(Error::input_hint(
                format!(
                    "{}: row {row} (id `{}`): embedding has dimension {}, but row 0 has {dimension}",
                    path.display(),
                    ids[row],
                    values.len()
                ),
                "every vector must come from the same model; re-embed the corpus",
            ));
        }
        for value in values.iter() {
            match value {
                Some(v) if v.is_finite() => data.push(v),
                other => {
                    return Err(Error::input_hint(
                        format!(
                            "{}: row {row} (id `{}`): embedding holds {} ",
                            path.display(),
                            ids[row],
                            other.map(|v| v.to_string()).unwrap_or_else(|| "a null".into())
                        )
                        .trim_end()
                        .to_string(),
                        "NaN, infinite or null components are invalid; re-embed the document",
                    ))
                }
            }
        }
    }
    if ids.is_empty() {
        return Err(Error::input(format!("{}: the embedding file has no rows", path.display())));
    }
    check_unique_ids(&ids, &path.display().to_string())?;
    Ok((Embeddings { ids, dimension, data }, info))
}

/// Writes embeddings as Parquet with columns `id` and `embedding` (list of f32), zstd-compressed.
pub fn write_embeddings(path: &Path, embeddings: &Embeddings) -> Result<()> {
    write_embeddings_as(path, embeddings, false)
}

/// Writes embeddings as [`write_embeddings`] does, with f16 components when `half` is set
/// (rounded to nearest, ties to even).
pub fn write_embeddings_as(path: &Path, embeddings: &Embeddings, half: bool) -> Result<()> {
    let vectors: Vec<Series> = (0..embeddings.ids.len())
        .map(|i| Series::new(PlSmallStr::EMPTY, embeddings.row(i)))
        .collect();
    let mut vectors = Column::new("embedding".into(), vectors);
    if half {
        vectors = vectors.cast(&DataType::List(Box::new(DataType::Float16)))?;
    }
    let mut df = DataFrame::new_infer_height(vec![Column::new("id".into(), &embeddings.ids), vectors])?;
    write_parquet(path, &mut df)
}

/// Joins Parquet files with the same columns into one at `out`, holding one input at a time;
/// `out` appears only when complete.
pub fn join_parquet(parts: &[PathBuf], out: &Path) -> Result<()> {
    let staging = out.with_extension("parquet.partial");
    let file = std::fs::File::create(&staging).map_err(|e| Error::io("create", &staging, e))?;
    let mut writer = None;
    for part in parts {
        let reader = std::fs::File::open(part).map_err(|e| Error::io("read", part, e))?;
        let df = ParquetReader::new(reader)
            .finish()
            .map_err(|e| Error::input(format!("{}: cannot be read as Parquet ({e})", part.display())))?;
        if writer.is_none() {
            let file = file.try_clone().map_err(|e| Error::io("write", &staging, e))?;
            writer = Some(
                ParquetWriter::new(file)
                    .with_compression(ParquetCompression::Zstd(None))
                    .with_statistics(StatisticsOptions::empty())
                    .batched(df.schema())
                    .map_err(|e| Error::internal(format!("writing {} failed ({e})", staging.display())))?,
            );
        }
        if let Some(writer) = writer.as_mut() {
            writer.write_batch(&df).map_err(|e| Error::internal(format!("writing {} failed ({e})", staging.display())))?;
        }
    }
    let writer = writer.ok_or_else(|| Error::input("nothing to join: no shards"))?;
    writer.finish().map_err(|e| Error::internal(format!("writing {} failed ({e})", staging.display())))?;
    drop(file);
    std::fs::rename(&staging, out).map_err(|e| Error::io("rename", &staging, e))
}

/// Writes `df` to `path` as zstd-compressed Parquet.
pub fn write_parquet(path: &Path, df: &mut DataFrame) -> Result<()> {
    let file = std::fs::File::create(path).map_err(|e| Error::io("create", path, e))?;
    ParquetWriter::new(file)
        .with_compression(ParquetCompression::Zstd(None))
        .with_statistics(StatisticsOptions::empty())
        .finish(df)
        .map_err(|e| Error::internal(format!("writing {} failed ({e})", path.display())))?;
    Ok(())
}

/// Lines the embeddings up with the corpus: same ids in the same order.
pub fn align_embeddings(corpus: &Corpus, embeddings: &Embeddings, path: &Path) -> Result<()> {
    if embeddings.ids.len() != corpus.len() {
        return Err(Error::input_hint(
            format!("{}: {} embeddings for {} corpus documents", path.display(), embeddings.ids.len(), corpus.len()),
            "re-embed the corpus with `clipaudit embed` so every document has exactly one vector",
        ));
    }
    for (row, (a, b)) in corpus.ids.iter().zip(&embeddings.ids).enumerate() {
        if a != b {
            return Err(Error::input_hint(
                format!("{}: row {row}: embedding id `{b}` does not match corpus id `{a}`", path.display()),
                "embedding rows must follow the corpus row order; re-embed the corpus",
            ));
        }
    }
    Ok(())
}

/// Loads and hashes an annotation table: long form (`item`, `rater`, `label`, one row per
/// rating) or wide form (item column, then one column per rater).
pub fn load_annotations(path: &Path, wide: bool) -> Result<(crate::metrics::agreement::RatingMatrix, InputFile)> {
    let (bytes, info) = read_hashed(path, "annotations")?;
    let df = parse_table(path, bytes)?;
    let matrix = if wide {
        let names: Vec<String> = df.get_column_names().iter().map(|c| c.to_string()).collect();
        if names.len() < 3 {
            return Err(Error::input_hint(
                format!("{}: a wide annotation table needs an item column and at least two rater columns", path.display()),
                "use the long layout (item, rater, label) or add rater columns",
            ));
        }
        let items = string_column(&df, &names[0], path, "the item column")?;
        let mut columns = Vec::new();
        for name in &names[1..] {
            columns.push(optional_string_column(&df, name, path)?);
        }
        let rows = items
            .into_iter()
            .enumerate()
            .map(|(row, item)| (item, columns.iter().map(|c| c[row].clone()).collect()))
            .collect();
        crate::metrics::agreement::RatingMatrix::from_wide(names[1..].to_vec(), rows)
    } else {
        let items = string_column(&df, "item", path, "the annotation table")?;
        let raters = string_column(&df, "rater", path, "the annotation table")?;
        let labels: Vec<String> = optional_string_column(&df, "label", path)?
            .into_iter()
            .enumerate()
            .map(|(row, label)| {
                label.ok_or_else(|| {
                    Error::input_hint(
                        format!("{}: row {row}: column `label` is empty", path.display()),
                        "in the long layout a missing rating is a missing row; delete the row",
                    )
                })
            })
            .collect::<Result<_>>()?;
        crate::metrics::agreement::RatingMatrix::from_long(
            items.iter().zip(&raters).zip(&labels).map(|((i, r), l)| (i.as_str(), r.as_str(), l.as_str())),
        )
    };
    let matrix = matrix.map_err(|e| Error::input(format!("{}: {e}", path.display())))?;
    Ok((matrix, info))
}

/// Reads column `name` as labels: text, integers or decimals written as text; empty cells are
/// `None`.
fn optional_string_column(df: &DataFrame, name: &str, path: &Path) -> Result<Vec<Option<String>>> {
    let column = df.column(name).map_err(|_| {
        Error::input_hint(format!("{}: missing column `{name}`", path.display()), "the long layout has columns item, rater, label")
    })?;
    let as_text = column.cast(&DataType::String).map_err(|_| {
        Error::input(format!("{}: column `{name}` of type {} cannot be read as labels", path.display(), column.dtype()))
    })?;
    Ok(as_text
        .str()?
        .iter()
        .map(|v| v.filter(|s| !s.is_empty()).map(str::to_string))
        .collect())
}

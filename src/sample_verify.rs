//! Verification of a recorded training sample against clipaudit's samplers.
//!
//! A recorded sample is read from a table (Parquet, JSON Lines or CSV) or from a NumPy
//! `.npy` index array, and each document is resolved to its corpus row. Two kinds of
//! evidence follow:
//!
//! - exact comparison with the stream that `clusterclip-v1` or `uniform-v1` produces for
//!   the same inputs, draw by draw ([`compare_exact`]) or count by count
//!   ([`compare_counts`]);
//! - invariants that hold for any cluster-balanced, clipped sampler
//!   ([`check_invariants`]): no document above the clip threshold C, uniform draws over
//!   the clusters while all of them are active, and small clusters exhausted before
//!   large ones.
//!
//! Row numbers in error messages count data rows from 0, without the header, as
//! everywhere else in clipaudit.

use std::collections::HashMap;
use std::path::Path;

use polars::prelude::*;
use serde::Serialize;

use crate::dataset::{self, InputFile};
use crate::error::{Error, Result};
use crate::metrics::representation::chi_square_survival;
use crate::sample::{clusterclip_v1, uniform_v1, ClipParams, Stream, CLUSTERCLIP_V1, MAX_DOCUMENTS, UNIFORM_V1};

/// Role of a recorded sample in the manifest's list of input files.
pub const RECORDED_SAMPLE_ROLE: &str = "recorded sample";

/// P-value of the cluster balance test below which [`InvariantReport::passed`] fails.
///
/// By the chi-square approximation, uniform cluster choice gives p < 1e-6 in about one
/// run in a million. A sampler that draws one of four clusters three times as often as
/// each of the others reaches p < 1e-6 after about 100 draws (chi-square = draws / 3).
pub const BALANCE_P_VALUE_FAILURE: f64 = 1e-6;

/// Minimum number of exhausted clusters for the exhaustion-order check to be defined.
pub const MIN_EXHAUSTED_CLUSTERS: usize = 3;

// ---------------------------------------------------------------------------
// Recorded samples
// ---------------------------------------------------------------------------

/// A sample as another tool or an earlier run recorded it, with every document
/// resolved to its corpus row.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "documents", rename_all = "snake_case")]
pub enum RecordedSample {
    /// Document indices in draw order, from a table with an `id` column.
    Stream(Vec<u32>),
    /// Document indices whose order need not be the draw order, from an `.npy` array.
    ///
    /// The `*_balanced_selection.npy` of ssl-data-curation (facebookresearch,
    /// `scripts/run_hierarchical_sampling.py`) concatenates the selection cluster by
    /// cluster, or sorts it with `--sort_indices`, so only its counts are evidence. A caller that knows the array is in draw order can
    /// turn it into a `Stream`.
    Selection(Vec<u32>),
    /// Number of draws per document, indexed by corpus row. The draw order is unknown.
    Counts(Vec<u32>),
}

impl RecordedSample {
    /// Returns `stream`, `selection` or `counts`.
    pub fn kind(&self) -> &'static str {
        match self {
            RecordedSample::Stream(_) => "stream",
            RecordedSample::Selection(_) => "selection",
            RecordedSample::Counts(_) => "counts",
        }
    }

    /// Returns the total number of draws.
    pub fn draws(&self) -> u64 {
        match self {
            RecordedSample::Stream(indices) | RecordedSample::Selection(indices) => {
                indices.len() as u64
            }
            RecordedSample::Counts(counts) => counts.iter().map(|&count| u64::from(count)).sum(),
        }
    }

    /// Returns the document indices, or `None` for a counts table.
    pub fn indices(&self) -> Option<&[u32]> {
        match self {
            RecordedSample::Stream(indices) | RecordedSample::Selection(indices) => Some(indices),
            RecordedSample::Counts(_) => None,
        }
    }

    /// Counts the draws of each of `documents` documents.
    ///
    /// Panics if an index is not below `documents`.
    pub fn document_counts(&self, documents: usize) -> Vec<u64> {
        match self {
            RecordedSample::Stream(indices) | RecordedSample::Selection(indices) => {
                let mut counts = vec![0u64; documents];
                for &index in indices {
                    counts[index as usize] += 1;
                }
                counts
            }
            RecordedSample::Counts(counts) => {
                let mut widened: Vec<u64> = counts.iter().map(|&count| u64::from(count)).collect();
                widened.resize(documents, 0);
                widened
            }
        }
    }
}

/// Reads a recorded sample and resolves its documents against `corpus_ids`, the corpus
/// ids in row order.
///
/// The format follows the extension:
/// - `.parquet`, `.jsonl`, `.ndjson` or `.csv`: a table with an `id` column. With a
///   `count` column it is a [`RecordedSample::Counts`] table (one row per document,
///   documents not listed have count 0). Otherwise the rows are the draws in order,
///   and an optional `step` column must read 0, 1, 2, … down the rows.
/// - `.npy`: a 1-D little-endian int64 or int32 array of corpus row numbers, read as a
///   [`RecordedSample::Selection`].
///
/// The file is hashed as it is read. Returns an input error that names the file, the
/// row or position and the value for an unknown id, an index out of range, a malformed
/// `step` or `count` value, an empty sample or an unsupported file.
pub fn read_recorded(path: &Path, corpus_ids: &[String]) -> Result<(RecordedSample, InputFile)> {
    if corpus_ids.len() > MAX_DOCUMENTS {
        return Err(Error::input_hint(
            format!(
                "the corpus has {} documents, more than the {MAX_DOCUMENTS} that a recorded sample can index",
                corpus_ids.len()
            ),
            "split the corpus into smaller parts",
        ));
    }

    let extension = path.extension().and_then(|e| e.to_str()).unwrap_or("");
    let sample = match extension {
        "npy" => {
            let (bytes, info) = dataset::read_hashed(path, RECORDED_SAMPLE_ROLE)?;
            let indices = parse_npy_indices(path, &bytes, corpus_ids.len())?;
            (RecordedSample::Selection(indices), info)
        }
        "parquet" | "jsonl" | "ndjson" | "csv" => {
            let (bytes, info) = dataset::read_hashed(path, RECORDED_SAMPLE_ROLE)?;
            let table = dataset::parse_table(path, bytes)?;
            (read_sample_table(path, &table, corpus_ids)?, info)
        }
        other => {
            return Err(Error::input_hint(
                format!("{}: unsupported file type `.{other}` for a recorded sample", path.display()),
                "use a .parquet, .jsonl or .csv table with an `id` column, or a .npy array of corpus row numbers",
            ))
        }
    };

    if sample.0.draws() == 0 {
        return Err(Error::input_hint(
            format!("{}: the recorded sample contains no draws", path.display()),
            "check that the file is the sample the training run used",
        ));
    }
    Ok(sample)
}

/// Reads the `id`, `step` and `count` columns of a recorded sample table.
fn read_sample_table(path: &Path, table: &DataFrame, corpus_ids: &[String]) -> Result<RecordedSample> {
    let has_step = table.column("step").is_ok();
    let has_count = table.column("count").is_ok();
    if has_step && has_count {
        return Err(Error::input_hint(
            format!("{}: the table has both a `step` and a `count` column", path.display()),
            "a stream has one row per draw (`id`, optional `step`), a counts table one row per document (`id`, `count`); drop one of the columns",
        ));
    }

    let ids = id_column(table, path)?;
    let rows = resolve_ids(path, &ids, corpus_ids)?;

    if has_count {
        let counts = integer_column(table, "count", path)?;
        return counts_by_document(path, &ids, &rows, &counts, corpus_ids.len()).map(RecordedSample::Counts);
    }
    if has_step {
        let steps = integer_column(table, "step", path)?;
        check_steps(path, &steps)?;
    }
    Ok(RecordedSample::Stream(rows))
}

/// Reads the `id` column as text. Integer ids are written in decimal, as the corpus
/// loader does, so that they match integer corpus ids.
fn id_column(table: &DataFrame, path: &Path) -> Result<Vec<String>> {
    let column = table.column("id").map_err(|_| {
        let available: Vec<String> = table.get_column_names().iter().map(|c| c.to_string()).collect();
        Error::input_hint(
            format!("{}: missing column `id` (columns: {})", path.display(), available.join(", ")),
            "a recorded sample names each document in an `id` column that holds the corpus ids",
        )
    })?;
    let as_text = match column.dtype() {
        DataType::String => column.clone(),
        dtype if dtype.is_integer() => column.cast(&DataType::String)?,
        DataType::Categorical(..) => column.cast(&DataType::String)?,
        other => {
            return Err(Error::input_hint(
                format!("{}: column `id` has type {other}, expected text or integers", path.display()),
                "write the corpus ids as strings",
            ))
        }
    };

    let mut ids = Vec::with_capacity(as_text.len());
    for (row, value) in as_text.str()?.iter().enumerate() {
        match value {
            Some(id) => ids.push(id.to_string()),
            None => {
                return Err(Error::input_hint(
                    format!("{}: row {row}: column `id` is null", path.display()),
                    "every row of a recorded sample must name a corpus document",
                ))
            }
        }
    }
    Ok(ids)
}

/// Reads an integer column as i64. Nulls and non-integer types are input errors.
fn integer_column(table: &DataFrame, name: &str, path: &Path) -> Result<Vec<i64>> {
    let column = table.column(name)?;
    if !column.dtype().is_integer() {
        return Err(Error::input_hint(
            format!("{}: column `{name}` has type {}, expected integers", path.display(), column.dtype()),
            format!("write `{name}` as whole numbers"),
        ));
    }
    let widened = column.strict_cast(&DataType::Int64).map_err(|_| {
        Error::input_hint(
            format!("{}: column `{name}` has values above {}", path.display(), i64::MAX),
            format!("check the `{name}` column, such values cannot come from a sampler"),
        )
    })?;

    let mut values = Vec::with_capacity(widened.len());
    for (row, value) in widened.i64()?.iter().enumerate() {
        match value {
            Some(value) => values.push(value),
            None => {
                return Err(Error::input_hint(
                    format!("{}: row {row}: column `{name}` is null", path.display()),
                    format!("fill in `{name}` on every row"),
                ))
            }
        }
    }
    Ok(values)
}

/// Maps each id to its corpus row.
fn resolve_ids(path: &Path, ids: &[String], corpus_ids: &[String]) -> Result<Vec<u32>> {
    let mut row_of: HashMap<&str, u32> = HashMap::with_capacity(corpus_ids.len());
    for (row, id) in corpus_ids.iter().enumerate() {
        row_of.entry(id.as_str()).or_insert(row as u32);
    }

    let mut rows = Vec::with_capacity(ids.len());
    for (row, id) in ids.iter().enumerate() {
        match row_of.get(id.as_str()) {
            Some(&corpus_row) => rows.push(corpus_row),
            None => {
                return Err(Error::input_hint(
                    format!("{}: row {row}: id `{id}` is not a corpus id", path.display()),
                    "the sample must come from this corpus and name documents by the corpus id column; \
                     check the corpus files (a CSV reader drops leading zeros from numeric ids)",
                ))
            }
        }
    }
    Ok(rows)
}

/// Checks that `steps` reads 0, 1, 2, … down the rows.
fn check_steps(path: &Path, steps: &[i64]) -> Result<()> {
    let hint = "a stream has one row per draw in draw order; sort the file by `step` and check that no draw is missing or repeated";
    if let Some(&first) = steps.first() {
        if first != 0 {
            return Err(Error::input_hint(
                format!("{}: row 0: step {first}, expected 0 because steps start at 0", path.display()),
                hint,
            ));
        }
    }
    for (row, pair) in steps.windows(2).enumerate().map(|(i, pair)| (i + 1, pair)) {
        let (previous, step) = (pair[0], pair[1]);
        if previous.checked_add(1) != Some(step) {
            return Err(Error::input_hint(
                format!(
                    "{}: row {row}: step {step} follows step {previous} of row {}, expected step {}",
                    path.display(),
                    row - 1,
                    previous + 1
                ),
                hint,
            ));
        }
    }
    Ok(())
}

/// Builds per-document counts from a counts table. Each id may appear once, and every
/// count must be between 0 and `u32::MAX`.
fn counts_by_document(
    path: &Path,
    ids: &[String],
    rows: &[u32],
    counts: &[i64],
    documents: usize,
) -> Result<Vec<u32>> {
    let mut by_document = vec![0u32; documents];
    let mut table_row_of: HashMap<u32, usize> = HashMap::with_capacity(rows.len());
    for (row, ((id, &document), &count)) in ids.iter().zip(rows).zip(counts).enumerate() {
        if let Some(first) = table_row_of.insert(document, row) {
            return Err(Error::input_hint(
                format!("{}: rows {first} and {row}: id `{id}` appears twice", path.display()),
                "a counts table lists each document once with its total number of draws",
            ));
        }
        let count = u32::try_from(count).map_err(|_| {
            let problem = if count < 0 { "is negative" } else { "is above 4294967295" };
            Error::input_hint(
                format!("{}: row {row} (id `{id}`): count {count} {problem}", path.display()),
                "a count is the number of times the document was drawn, a whole number from 0",
            )
        })?;
        by_document[document as usize] = count;
    }
    Ok(by_document)
}

// ---------------------------------------------------------------------------
// NPY index arrays
// ---------------------------------------------------------------------------

const NPY_MAGIC: &[u8; 6] = b"\x93NUMPY";

/// Hint shared by the errors about an `.npy` file's layout.
const NPY_HINT: &str = "write the indices with numpy.save(path, indices.astype('<i8')) as a 1-D array of corpus row numbers";

/// Parses an NPY file (format versions 1.0, 2.0 and 3.0) holding a 1-D little-endian
/// int64 or int32 array of document indices below `documents`.
fn parse_npy_indices(path: &Path, bytes: &[u8], documents: usize) -> Result<Vec<u32>> {
    let invalid = |message: String| Error::input_hint(format!("{}: {message}", path.display()), NPY_HINT);

    if bytes.len() < 8 || &bytes[..6] != NPY_MAGIC {
        return Err(invalid("not an NPY file: it does not start with the bytes \\x93NUMPY".into()));
    }
    let (major, minor) = (bytes[6], bytes[7]);
    let (length_bytes, utf8) = match (major, minor) {
        (1, 0) => (2, false),
        (2, 0) => (4, false),
        (3, 0) => (4, true),
        _ => return Err(invalid(format!("unsupported NPY format version {major}.{minor}, expected 1.0, 2.0 or 3.0"))),
    };

    let header_start = 8 + length_bytes;
    if bytes.len() < header_start {
        return Err(invalid(format!("truncated NPY file: it ends after {} bytes, inside the header length", bytes.len())));
    }
    let header_length = if length_bytes == 2 {
        u16::from_le_bytes([bytes[8], bytes[9]]) as usize
    } else {
        u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize
    };
    let data_start = header_start + header_length;
    if bytes.len() < data_start {
        return Err(invalid(format!(
            "truncated NPY header: it declares {header_length} bytes, but the file ends after {} bytes of it",
            bytes.len() - header_start
        )));
    }

    // Versions 1.0 and 2.0 encode the header in Latin-1, version 3.0 in UTF-8.
    let header_bytes = &bytes[header_start..data_start];
    let header_text: String = if utf8 {
        std::str::from_utf8(header_bytes)
            .map_err(|_| invalid("invalid NPY header: it is not valid UTF-8".into()))?
            .to_string()
    } else {
        header_bytes.iter().map(|&byte| char::from(byte)).collect()
    };
    let header = NpyHeader::parse(&header_text)
        .map_err(|problem| invalid(format!("invalid NPY header {:?}: {problem}", header_text.trim_end())))?;

    let item_size = match header.descr.as_str() {
        "<i8" => 8,
        "<i4" => 4,
        ">i8" | ">i4" => {
            return Err(invalid(format!(
                "NPY dtype '{}' is big-endian, but only little-endian int64 ('<i8') or int32 ('<i4') indices are supported",
                header.descr
            )))
        }
        other => {
            return Err(invalid(format!(
                "NPY dtype '{other}' is not supported, expected int64 ('<i8') or int32 ('<i4') document indices"
            )))
        }
    };
    // A 1-D array has the same layout in C and Fortran order, so `fortran_order` is not
    // checked.
    let length = match header.shape.as_slice() {
        [length] => *length,
        shape => {
            let dimensions: Vec<String> = shape.iter().map(u64::to_string).collect();
            return Err(invalid(format!(
                "NPY array has shape ({}), expected a 1-D array of document indices",
                dimensions.join(", ")
            )));
        }
    };

    let data = &bytes[data_start..];
    let expected_bytes = length.checked_mul(item_size as u64);
    if expected_bytes.is_none_or(|expected| (data.len() as u64) < expected) {
        return Err(invalid(format!(
            "truncated NPY data: the header declares {length} values of {item_size} bytes, but {} bytes follow, \
             so the array ends at position {} (0-based)",
            data.len(),
            data.len() / item_size
        )));
    }
    if data.len() as u64 > length * item_size as u64 {
        return Err(invalid(format!(
            "{} bytes follow the {length} values that the NPY header declares",
            data.len() as u64 - length * item_size as u64
        )));
    }

    let mut indices = Vec::with_capacity(length as usize);
    for (position, chunk) in data.chunks_exact(item_size).enumerate() {
        let value = if item_size == 8 {
            i64::from_le_bytes(chunk.try_into().expect("chunk of 8 bytes"))
        } else {
            i64::from(i32::from_le_bytes(chunk.try_into().expect("chunk of 4 bytes")))
        };
        if value < 0 || value as u64 >= documents as u64 {
            return Err(Error::input_hint(
                format!(
                    "{}: position {position}: document index {value} is out of range, the corpus has {documents} documents (indices 0 to {})",
                    path.display(),
                    documents as i64 - 1
                ),
                "the array must index the corpus rows in the order clipaudit reads them; \
                 check that the corpus files and their order match the run that wrote the array",
            ));
        }
        indices.push(value as u32);
    }
    Ok(indices)
}

/// The three keys of an NPY header.
#[derive(Debug, PartialEq, Eq)]
struct NpyHeader {
    descr: String,
    fortran_order: bool,
    shape: Vec<u64>,
}

/// A value of the Python literal subset that NPY headers use.
#[derive(Debug, PartialEq, Eq)]
enum HeaderValue {
    Text(String),
    Bool(bool),
    Tuple(Vec<u64>),
}

impl NpyHeader {
    /// Parses a header such as `{'descr': '<i8', 'fortran_order': False, 'shape': (3,), }`.
    ///
    /// Like `numpy.lib.format` when it reads a header, this requires exactly the keys `descr`, `fortran_order` and
    /// `shape`. A structured dtype (a list in `descr`) is rejected.
    fn parse(text: &str) -> std::result::Result<NpyHeader, String> {
        let mut parser = LiteralParser { chars: text.chars().collect(), position: 0 };
        let mut entries = parser.parse_dict()?;

        let mut take = |key: &str| entries.remove(key).ok_or_else(|| format!("the key '{key}' is missing"));
        let descr = match take("descr")? {
            HeaderValue::Text(descr) => descr,
            _ => return Err("'descr' is not a string".into()),
        };
        let fortran_order = match take("fortran_order")? {
            HeaderValue::Bool(value) => value,
            _ => return Err("'fortran_order' is not True or False".into()),
        };
        let shape = match take("shape")? {
            HeaderValue::Tuple(shape) => shape,
            _ => return Err("'shape' is not a tuple of integers".into()),
        };
        if let Some(key) = entries.keys().next() {
            return Err(format!("unexpected key '{key}'"));
        }
        Ok(NpyHeader { descr, fortran_order, shape })
    }
}

struct LiteralParser {
    chars: Vec<char>,
    position: usize,
}

impl LiteralParser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.position).copied()
    }

    fn skip_whitespace(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.position += 1;
        }
    }

    fn expect(&mut self, expected: char) -> std::result::Result<(), String> {
        self.skip_whitespace();
        match self.peek() {
            Some(found) if found == expected => {
                self.position += 1;
                Ok(())
            }
            Some(found) => Err(format!("expected '{expected}' at character {}, found '{found}'", self.position)),
            None => Err(format!("expected '{expected}', but the header ends")),
        }
    }

    /// Parses `{key: value, …}` with an optional trailing comma, then expects the end.
    fn parse_dict(&mut self) -> std::result::Result<HashMap<String, HeaderValue>, String> {
        let mut entries = HashMap::new();
        self.expect('{')?;
        loop {
            self.skip_whitespace();
            if self.peek() == Some('}') {
                self.position += 1;
                break;
            }
            let key = self.parse_string()?;
            self.expect(':')?;
            let value = self.parse_value()?;
            if entries.insert(key.clone(), value).is_some() {
                return Err(format!("the key '{key}' appears twice"));
            }
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.position += 1,
                Some('}') => {
                    self.position += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or '}}' at character {}", self.position)),
            }
        }
        self.skip_whitespace();
        if self.position != self.chars.len() {
            return Err(format!("unexpected text after the dictionary at character {}", self.position));
        }
        Ok(entries)
    }

    fn parse_value(&mut self) -> std::result::Result<HeaderValue, String> {
        self.skip_whitespace();
        match self.peek() {
            Some('\'') | Some('"') => self.parse_string().map(HeaderValue::Text),
            Some('(') => self.parse_tuple().map(HeaderValue::Tuple),
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.position;
                while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                    self.position += 1;
                }
                let word: String = self.chars[start..self.position].iter().collect();
                match word.as_str() {
                    "True" => Ok(HeaderValue::Bool(true)),
                    "False" => Ok(HeaderValue::Bool(false)),
                    _ => Err(format!("unsupported value `{word}`")),
                }
            }
            Some('[') => Err("a structured dtype (a list in 'descr') is not supported".into()),
            Some(found) => Err(format!("unsupported value starting with '{found}' at character {}", self.position)),
            None => Err("expected a value, but the header ends".into()),
        }
    }

    /// Parses a quoted string without escape sequences, which NPY headers never need.
    fn parse_string(&mut self) -> std::result::Result<String, String> {
        self.skip_whitespace();
        let quote = match self.peek() {
            Some(quote @ ('\'' | '"')) => quote,
            _ => return Err(format!("expected a quoted string at character {}", self.position)),
        };
        self.position += 1;
        let start = self.position;
        while self.peek().is_some_and(|c| c != quote) {
            self.position += 1;
        }
        if self.peek().is_none() {
            return Err("a string is not closed".into());
        }
        let text = self.chars[start..self.position].iter().collect();
        self.position += 1;
        Ok(text)
    }

    /// Parses `()`, `(3,)` or `(3, 2)`. Python 2 wrote long integers with an `L` suffix.
    fn parse_tuple(&mut self) -> std::result::Result<Vec<u64>, String> {
        self.expect('(')?;
        let mut items = Vec::new();
        loop {
            self.skip_whitespace();
            if self.peek() == Some(')') {
                self.position += 1;
                return Ok(items);
            }
            let start = self.position;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.position += 1;
            }
            let digits: String = self.chars[start..self.position].iter().collect();
            if digits.is_empty() {
                return Err(format!("expected a non-negative integer in 'shape' at character {start}"));
            }
            let item = digits
                .parse::<u64>()
                .map_err(|_| format!("the dimension {digits} in 'shape' is too large"))?;
            items.push(item);
            if self.peek() == Some('L') {
                self.position += 1;
            }
            self.skip_whitespace();
            match self.peek() {
                Some(',') => self.position += 1,
                Some(')') => {
                    self.position += 1;
                    return Ok(items);
                }
                _ => return Err(format!("expected ',' or ')' in 'shape' at character {}", self.position)),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Exact comparison
// ---------------------------------------------------------------------------

/// Draw-by-draw comparison of a recorded stream with the stream a sampler produces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExactComparison {
    /// Name of the sampler that produced the expected stream.
    pub sampler: &'static str,
    /// True when both streams have the same documents in the same order.
    pub identical: bool,
    pub recorded_draws: u64,
    pub expected_draws: u64,
    /// The first draw where the streams differ, `None` when they are identical.
    pub first_difference: Option<FirstDifference>,
}

/// The first step at which two streams differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FirstDifference {
    /// Number of draws that agree before the difference, so also the 0-based position of
    /// the first differing draw.
    pub step: u64,
    /// Corpus row of the recorded draw, `None` when the recorded stream ends at `step`.
    pub recorded_index: Option<u32>,
    /// Corpus row of the expected draw, `None` when the expected stream ends at `step`.
    pub expected_index: Option<u32>,
}

impl FirstDifference {
    /// Describes the difference in one sentence, naming documents by their corpus ids.
    ///
    /// Panics if an index is not below `corpus_ids.len()`.
    pub fn describe(&self, sampler: &str, corpus_ids: &[String]) -> String {
        let document = |index: u32| format!("`{}` (row {index})", corpus_ids[index as usize]);
        let step = self.step;
        match (self.recorded_index, self.expected_index) {
            (Some(recorded), Some(expected)) => format!(
                "at step {step} the recorded sample draws {} where {sampler} draws {}",
                document(recorded),
                document(expected)
            ),
            (None, Some(expected)) => format!(
                "the recorded sample ends at step {step} where {sampler} continues with {}",
                document(expected)
            ),
            (Some(recorded), None) => format!(
                "{sampler} ends at step {step} where the recorded sample continues with {}",
                document(recorded)
            ),
            (None, None) => format!("the streams agree up to step {step}"),
        }
    }
}

/// Compares a recorded stream with `expected` draw by draw.
///
/// When one stream is a prefix of the other, the first difference is at the step where
/// the shorter one ends.
pub fn compare_exact(recorded: &[u32], expected: &Stream) -> ExactComparison {
    let agreeing = recorded
        .iter()
        .zip(&expected.indices)
        .take_while(|(recorded, expected)| recorded == expected)
        .count();
    let identical = agreeing == recorded.len() && agreeing == expected.indices.len();
    let first_difference = (!identical).then(|| FirstDifference {
        step: agreeing as u64,
        recorded_index: recorded.get(agreeing).copied(),
        expected_index: expected.indices.get(agreeing).copied(),
    });
    ExactComparison {
        sampler: expected.sampler,
        identical,
        recorded_draws: recorded.len() as u64,
        expected_draws: expected.draws(),
        first_difference,
    }
}

/// Document-by-document comparison of recorded counts with a sampler's stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountComparison {
    pub sampler: &'static str,
    /// True when every document was drawn as often as in the expected stream.
    pub identical: bool,
    pub recorded_draws: u64,
    pub expected_draws: u64,
    /// Number of documents whose counts differ.
    pub differing_documents: u64,
    /// The differing document with the lowest corpus row, if any.
    pub first_difference: Option<CountDifference>,
}

/// A document drawn a different number of times than expected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CountDifference {
    pub index: u32,
    pub recorded: u64,
    pub expected: u64,
}

/// Compares recorded per-document counts with how often each document appears in
/// `expected`, over the whole stream (including draws before a `reset_counts` reset).
///
/// A document beyond the end of either list counts as drawn 0 times.
pub fn compare_counts(recorded: &[u32], expected: &Stream) -> CountComparison {
    let expected_counts = expected.appearance_counts();
    let documents = recorded.len().max(expected_counts.len());
    let mut differing_documents = 0;
    let mut first_difference = None;
    for index in 0..documents {
        let recorded_count = u64::from(recorded.get(index).copied().unwrap_or(0));
        let expected_count = u64::from(expected_counts.get(index).copied().unwrap_or(0));
        if recorded_count != expected_count {
            differing_documents += 1;
            first_difference.get_or_insert(CountDifference {
                index: index as u32,
                recorded: recorded_count,
                expected: expected_count,
            });
        }
    }
    CountComparison {
        sampler: expected.sampler,
        identical: differing_documents == 0,
        recorded_draws: recorded.iter().map(|&count| u64::from(count)).sum(),
        expected_draws: expected.draws(),
        differing_documents,
        first_difference,
    }
}

// ---------------------------------------------------------------------------
// Invariants
// ---------------------------------------------------------------------------

/// Result of a check that needs conditions the sample may not meet.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum Check<T> {
    Computed(T),
    /// The check does not apply, for the stated reason.
    Undefined { reason: String },
}

impl<T> Check<T> {
    /// Returns the result, or `None` when the check is undefined.
    pub fn computed(&self) -> Option<&T> {
        match self {
            Check::Computed(value) => Some(value),
            Check::Undefined { .. } => None,
        }
    }
}

/// Invariants of a cluster-balanced, clipped sample, measured on a recorded sample.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct InvariantReport {
    /// `stream`, `selection` or `counts`, as in [`RecordedSample::kind`].
    pub sample_kind: &'static str,
    /// Clip threshold C.
    pub clip: u32,
    pub documents: u64,
    pub clusters: u64,
    pub total_draws: u64,
    /// Largest number of draws of one document.
    pub max_count: u64,
    /// Number of documents drawn exactly C times.
    pub documents_at_clip: u64,
    /// Every document drawn more than C times, in corpus row order.
    pub clip_violations: Vec<ClipViolation>,
    /// Uniformity of the cluster draws while every cluster is active. Defined for a
    /// stream with at least two clusters.
    pub balance: Check<ClusterBalance>,
    /// When each cluster was exhausted. Defined for a stream.
    pub exhaustion: Check<ExhaustionOrder>,
}

/// A document drawn more often than the clip threshold allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClipViolation {
    pub id: String,
    /// Corpus row of the document.
    pub index: u32,
    /// Cluster label of the document.
    pub label: u32,
    pub count: u64,
}

/// Pearson chi-square test of equal draws per cluster over the all-active prefix.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClusterBalance {
    /// Draws made while every cluster was active: the stream up to and including the
    /// draw that exhausted the first cluster, or the whole stream if none was exhausted.
    pub prefix_draws: u64,
    /// Draws per cluster in the prefix, in ascending label order.
    pub draws_per_cluster: Vec<ClusterDraws>,
    /// Draws each cluster would receive under uniform cluster choice: prefix / clusters.
    pub expected_draws_per_cluster: f64,
    /// Pearson statistic Σ (observed − expected)² / expected.
    pub chi_square: f64,
    /// Degrees of freedom: clusters − 1.
    pub df: u64,
    pub p_value: f64,
}

/// Number of draws of one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterDraws {
    pub label: u32,
    pub documents: u64,
    pub draws: u64,
}

/// Steps at which the clusters were exhausted, and whether small clusters went first.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExhaustionOrder {
    /// Every cluster in ascending label order.
    pub clusters: Vec<ClusterExhaustion>,
    /// Number of exhausted clusters.
    pub exhausted: u64,
    /// Spearman rank correlation between cluster size and exhaustion step over the
    /// exhausted clusters, with average ranks for ties. `None` when fewer than
    /// [`MIN_EXHAUSTED_CLUSTERS`] clusters were exhausted or all of them have the same size.
    pub spearman_rho: Option<f64>,
    /// True when `spearman_rho` ≥ 0, so that larger clusters did not tend to be
    /// exhausted earlier. `None` when `spearman_rho` is `None`.
    pub consistent: Option<bool>,
    /// Reason that `spearman_rho` is `None`.
    pub undefined_reason: Option<String>,
}

/// The step at which a cluster was exhausted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterExhaustion {
    pub label: u32,
    pub documents: u64,
    /// Number of draws up to and including the one that brought the last document of the
    /// cluster to C draws. `None` if some document stayed below C.
    pub exhausted_at: Option<u64>,
}

impl InvariantReport {
    /// Returns true when no document exceeds the clip threshold and the balance test,
    /// where defined, has p ≥ [`BALANCE_P_VALUE_FAILURE`]. The exhaustion order is
    /// reported but does not decide.
    pub fn passed(&self) -> bool {
        self.failures().is_empty()
    }

    /// Describes each failed invariant in one sentence.
    pub fn failures(&self) -> Vec<String> {
        let mut failures = Vec::new();
        if !self.clip_violations.is_empty() {
            let named_violations: Vec<String> = self
                .clip_violations
                .iter()
                .take(5)
                .map(|violation| format!("`{}` ({} draws)", violation.id, violation.count))
                .collect();
            let more = self.clip_violations.len() - named_violations.len();
            let rest = if more > 0 { format!(" and {more} more") } else { String::new() };
            failures.push(format!(
                "{} document(s) drawn more than C = {} times: {}{rest}",
                self.clip_violations.len(),
                self.clip,
                named_violations.join(", ")
            ));
        }
        if let Check::Computed(balance) = &self.balance {
            if balance.p_value < BALANCE_P_VALUE_FAILURE {
                failures.push(format!(
                    "the first {} draws are not spread evenly over the {} clusters: chi-square {:.2} with {} degrees of freedom, p = {:.3e} < {BALANCE_P_VALUE_FAILURE:e}",
                    balance.prefix_draws,
                    self.clusters,
                    balance.chi_square,
                    balance.df,
                    balance.p_value
                ));
            }
        }
        failures
    }
}

/// Documents grouped by cluster label.
struct Clusters {
    /// Distinct labels in ascending order. A cluster's number is its rank here.
    labels: Vec<u32>,
    /// Cluster number of each document.
    cluster_of: Vec<u32>,
    /// Number of documents per cluster.
    sizes: Vec<u64>,
}

impl Clusters {
    fn build(labels: &[u32]) -> Self {
        let mut distinct = labels.to_vec();
        distinct.sort_unstable();
        distinct.dedup();
        let cluster_of: Vec<u32> = labels
            .iter()
            .map(|label| distinct.binary_search(label).expect("every label is in the distinct list") as u32)
            .collect();
        let mut sizes = vec![0u64; distinct.len()];
        for &cluster in &cluster_of {
            sizes[cluster as usize] += 1;
        }
        Clusters { labels: distinct, cluster_of, sizes }
    }
}

/// Checks a recorded sample against the invariants of a cluster-balanced sampler with
/// clip threshold `clip`.
///
/// `labels` and `corpus_ids` describe the corpus in row order. A cluster is active until
/// the step at which every one of its documents has been drawn `clip` times, which for
/// `clusterclip-v1` is the step its `exhausted_at` records. Counts cover the whole
/// sample, so a `reset_counts` or `random_fallback` stream that runs past exhaustion
/// reports clip violations. The balance and exhaustion checks need the draw order and
/// are undefined for a selection or a counts table.
///
/// Panics if `labels` and `corpus_ids` differ in length or a document index is out of
/// range, which [`read_recorded`] rules out.
pub fn check_invariants(recorded: &RecordedSample, labels: &[u32], clip: u32, corpus_ids: &[String]) -> InvariantReport {
    assert_eq!(labels.len(), corpus_ids.len(), "one cluster label per corpus document");
    if let RecordedSample::Counts(counts) = recorded {
        assert_eq!(counts.len(), labels.len(), "one count per corpus document");
    }
    let clusters = Clusters::build(labels);
    let counts = recorded.document_counts(labels.len());

    let mut clip_violations = Vec::new();
    for (index, &count) in counts.iter().enumerate() {
        if count > u64::from(clip) {
            clip_violations.push(ClipViolation {
                id: corpus_ids[index].clone(),
                index: index as u32,
                label: labels[index],
                count,
            });
        }
    }

    let (balance, exhaustion) = match recorded {
        RecordedSample::Stream(indices) => {
            let exhausted_at = exhaustion_steps(indices, &clusters, clip);
            (cluster_balance(indices, &clusters, &exhausted_at), Check::Computed(exhaustion_order(&clusters, &exhausted_at)))
        }
        RecordedSample::Selection(_) => {
            let reason = "the order of an index array is not known to be the draw order".to_string();
            (Check::Undefined { reason: reason.clone() }, Check::Undefined { reason })
        }
        RecordedSample::Counts(_) => {
            let reason = "a counts table does not record the draw order".to_string();
            (Check::Undefined { reason: reason.clone() }, Check::Undefined { reason })
        }
    };

    InvariantReport {
        sample_kind: recorded.kind(),
        clip,
        documents: labels.len() as u64,
        clusters: clusters.labels.len() as u64,
        total_draws: recorded.draws(),
        max_count: counts.iter().copied().max().unwrap_or(0),
        documents_at_clip: counts.iter().filter(|&&count| count == u64::from(clip)).count() as u64,
        clip_violations,
        balance,
        exhaustion,
    }
}

/// Returns, per cluster, the number of draws after which all its documents had been
/// drawn `clip` times. With `clip` 0 every cluster is exhausted at step 0.
fn exhaustion_steps(indices: &[u32], clusters: &Clusters, clip: u32) -> Vec<Option<u64>> {
    if clip == 0 {
        return vec![Some(0); clusters.labels.len()];
    }
    let mut counts = vec![0u32; clusters.cluster_of.len()];
    let mut documents_at_clip = vec![0u64; clusters.labels.len()];
    let mut exhausted_at = vec![None; clusters.labels.len()];
    for (position, &document) in indices.iter().enumerate() {
        let count = &mut counts[document as usize];
        *count = count.saturating_add(1);
        // Counts grow one at a time, so each document reaches C at most once.
        if *count == clip {
            let cluster = clusters.cluster_of[document as usize] as usize;
            documents_at_clip[cluster] += 1;
            if documents_at_clip[cluster] == clusters.sizes[cluster] {
                exhausted_at[cluster] = Some(position as u64 + 1);
            }
        }
    }
    exhausted_at
}

/// Tests equal draws per cluster over the draws made while every cluster was active.
///
/// NOTE: the prefix ends with a draw of the cluster that is exhausted first, so the
/// prefix length depends on the draws it contains. The bias this adds to the statistic
/// is small once the prefix is long, but the chi-square approximation itself is poor
/// when `expected_draws_per_cluster` is below about 5.
fn cluster_balance(indices: &[u32], clusters: &Clusters, exhausted_at: &[Option<u64>]) -> Check<ClusterBalance> {
    let cluster_count = clusters.labels.len();
    if cluster_count < 2 {
        return Check::Undefined {
            reason: format!("the corpus has {cluster_count} cluster, so there is no balance to test"),
        };
    }
    let prefix_draws = exhausted_at.iter().flatten().copied().min().unwrap_or(indices.len() as u64);
    if prefix_draws == 0 {
        return Check::Undefined {
            reason: "no draw was made while every cluster was active".into(),
        };
    }

    let mut draws = vec![0u64; cluster_count];
    for &document in &indices[..prefix_draws as usize] {
        draws[clusters.cluster_of[document as usize] as usize] += 1;
    }
    let expected = prefix_draws as f64 / cluster_count as f64;
    let chi_square: f64 = draws
        .iter()
        .map(|&observed| (observed as f64 - expected).powi(2) / expected)
        .sum();
    let df = cluster_count as u64 - 1;

    Check::Computed(ClusterBalance {
        prefix_draws,
        draws_per_cluster: clusters
            .labels
            .iter()
            .zip(&clusters.sizes)
            .zip(&draws)
            .map(|((&label, &documents), &draws)| ClusterDraws { label, documents, draws })
            .collect(),
        expected_draws_per_cluster: expected,
        chi_square,
        df,
        p_value: chi_square_survival(chi_square, df as f64),
    })
}

/// Relates exhaustion steps to cluster sizes.
///
/// Under uniform cluster choice over K active clusters, a cluster of s documents is
/// exhausted after about C·s·K draws, so the exhaustion step should rise with the size.
fn exhaustion_order(clusters: &Clusters, exhausted_at: &[Option<u64>]) -> ExhaustionOrder {
    let per_cluster: Vec<ClusterExhaustion> = clusters
        .labels
        .iter()
        .zip(&clusters.sizes)
        .zip(exhausted_at)
        .map(|((&label, &documents), &exhausted_at)| ClusterExhaustion { label, documents, exhausted_at })
        .collect();

    let (sizes, steps): (Vec<f64>, Vec<f64>) = per_cluster
        .iter()
        .filter_map(|cluster| cluster.exhausted_at.map(|step| (cluster.documents as f64, step as f64)))
        .unzip();
    let exhausted = sizes.len();

    let (spearman_rho, undefined_reason) = if exhausted < MIN_EXHAUSTED_CLUSTERS {
        (None, Some(format!("{exhausted} clusters were exhausted, the order needs at least {MIN_EXHAUSTED_CLUSTERS}")))
    } else {
        match spearman_rho(&sizes, &steps) {
            Some(rho) => (Some(rho), None),
            None => (None, Some("the exhausted clusters all have the same size or were exhausted at the same step".into())),
        }
    };

    ExhaustionOrder {
        clusters: per_cluster,
        exhausted: exhausted as u64,
        spearman_rho,
        consistent: spearman_rho.map(|rho| rho >= 0.0),
        undefined_reason,
    }
}

/// Returns Spearman's rank correlation: the Pearson correlation of the ranks, with tied
/// values given their average rank. `None` when either list is constant or shorter than 2.
fn spearman_rho(x: &[f64], y: &[f64]) -> Option<f64> {
    assert_eq!(x.len(), y.len(), "paired samples");
    if x.len() < 2 {
        return None;
    }
    let (rank_x, rank_y) = (average_ranks(x), average_ranks(y));
    let mean = (x.len() as f64 + 1.0) / 2.0;
    let mut covariance = 0.0;
    let mut variance_x = 0.0;
    let mut variance_y = 0.0;
    for (a, b) in rank_x.iter().zip(&rank_y) {
        covariance += (a - mean) * (b - mean);
        variance_x += (a - mean).powi(2);
        variance_y += (b - mean).powi(2);
    }
    if variance_x == 0.0 || variance_y == 0.0 {
        return None;
    }
    Some(covariance / (variance_x * variance_y).sqrt())
}

/// Returns the 1-based rank of each value, with ties given the mean of their ranks.
fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        // Positions start..end (0-based) hold ranks start + 1 ..= end, whose mean is this.
        let rank = (start + end + 1) as f64 / 2.0;
        for &position in &order[start..end] {
            ranks[position] = rank;
        }
        start = end;
    }
    ranks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{clusterclip_v1, uniform_v1, ClipParams, ExhaustionPolicy};

    fn params(clip: u32, draws: u64, seed: u64) -> ClipParams {
        ClipParams { clip, draws, seed, policy: ExhaustionPolicy::Stop }
    }

    fn ids(documents: usize) -> Vec<String> {
        (0..documents).map(|i| format!("doc-{i}")).collect()
    }

    /// Clusters of 8, 20, 40 and 100 documents (labels 3, 5, 9, 11), interleaved.
    fn uneven_labels() -> Vec<u32> {
        let mut labels = Vec::new();
        for (label, size) in [(3u32, 8usize), (5, 20), (9, 40), (11, 100)] {
            labels.extend(std::iter::repeat_n(label, size));
        }
        // Interleave so that cluster membership does not follow the row order.
        let mut shuffled = Vec::with_capacity(labels.len());
        for offset in 0..7 {
            shuffled.extend(labels.iter().skip(offset).step_by(7));
        }
        shuffled
    }

    fn error_text(result: Result<(RecordedSample, InputFile)>) -> String {
        match result {
            Ok((sample, _)) => panic!("expected an error, read {sample:?}"),
            Err(error) => error.to_string(),
        }
    }

    // --- Exact comparison ----------------------------------------------------

    #[test]
    fn exact_stream_matches_itself() {
        let stream = clusterclip_v1(&uneven_labels(), &params(2, 200, 7)).unwrap();
        let comparison = compare_exact(&stream.indices, &stream);
        assert!(comparison.identical);
        assert_eq!(comparison.first_difference, None);
        assert_eq!(comparison.recorded_draws, 200);
        assert_eq!(comparison.expected_draws, 200);
        assert_eq!(comparison.sampler, "clusterclip-v1");
    }

    #[test]
    fn exact_reports_changed_draw() {
        let stream = clusterclip_v1(&uneven_labels(), &params(2, 200, 7)).unwrap();
        let mut recorded = stream.indices.clone();
        let expected_index = recorded[17];
        recorded[17] = (expected_index + 1) % 168;
        recorded[40] = (recorded[40] + 1) % 168;

        let comparison = compare_exact(&recorded, &stream);
        assert!(!comparison.identical);
        let difference = comparison.first_difference.expect("a difference");
        assert_eq!(difference.step, 17);
        assert_eq!(difference.recorded_index, Some((expected_index + 1) % 168));
        assert_eq!(difference.expected_index, Some(expected_index));

        let corpus_ids = ids(168);
        let sentence = difference.describe(stream.sampler, &corpus_ids);
        assert!(sentence.starts_with("at step 17 "), "{sentence}");
        assert!(sentence.contains(&format!("`doc-{expected_index}`")), "{sentence}");
    }

    #[test]
    fn exact_reports_truncation_step() {
        let stream = clusterclip_v1(&uneven_labels(), &params(2, 200, 7)).unwrap();

        let shorter = compare_exact(&stream.indices[..150], &stream);
        assert!(!shorter.identical);
        let difference = shorter.first_difference.expect("a difference");
        assert_eq!(difference.step, 150);
        assert_eq!(difference.recorded_index, None);
        assert_eq!(difference.expected_index, Some(stream.indices[150]));
        assert_eq!(shorter.recorded_draws, 150);

        let mut longer = stream.indices.clone();
        longer.push(0);
        let comparison = compare_exact(&longer, &stream);
        let difference = comparison.first_difference.expect("a difference");
        assert_eq!(difference.step, 200);
        assert_eq!(difference.recorded_index, Some(0));
        assert_eq!(difference.expected_index, None);
        let sentence = difference.describe(stream.sampler, &ids(168));
        assert_eq!(
            sentence,
            "clusterclip-v1 ends at step 200 where the recorded sample continues with `doc-0` (row 0)"
        );
    }

    #[test]
    fn exact_empty_recorded_differs_at_zero() {
        let stream = uniform_v1(5, 5, 1).unwrap();
        let comparison = compare_exact(&[], &stream);
        assert!(!comparison.identical);
        assert_eq!(comparison.first_difference.unwrap().step, 0);
    }

    #[test]
    fn counts_comparison_finds_document() {
        let stream = clusterclip_v1(&uneven_labels(), &params(2, 100, 3)).unwrap();
        let mut counts = stream.appearance_counts();
        assert!(compare_counts(&counts, &stream).identical);

        counts[30] += 1;
        counts[50] += 1;
        let comparison = compare_counts(&counts, &stream);
        assert!(!comparison.identical);
        assert_eq!(comparison.differing_documents, 2);
        assert_eq!(comparison.recorded_draws, 102);
        let difference = comparison.first_difference.unwrap();
        assert_eq!(difference.index, 30);
        assert_eq!(difference.recorded, difference.expected + 1);
    }

    // --- Invariants ------------------------------------------------------------

    #[test]
    fn clusterclip_stream_passes_invariants() {
        let labels = uneven_labels();
        let corpus_ids = ids(labels.len());
        for seed in 0..10 {
            let stream = clusterclip_v1(&labels, &params(3, 10_000, seed)).unwrap();
            let report = check_invariants(&RecordedSample::Stream(stream.indices.clone()), &labels, 3, &corpus_ids);
            assert!(report.passed(), "seed {seed}: {:?}", report.failures());
            assert!(report.clip_violations.is_empty(), "seed {seed}");
            assert_eq!(report.max_count, 3, "seed {seed}");
            assert_eq!(report.documents_at_clip, 168, "seed {seed}");
            assert_eq!(report.total_draws, 3 * 168, "seed {seed}");

            let balance = report.balance.computed().expect("balance is defined");
            assert!(balance.p_value > 1e-3, "seed {seed}: p = {}", balance.p_value);
            assert_eq!(balance.df, 3);
            assert_eq!(balance.draws_per_cluster.iter().map(|c| c.draws).sum::<u64>(), balance.prefix_draws);
            // No cluster can be exhausted before C · 8 = 24 draws, 8 documents being
            // the smallest cluster size.
            assert!(balance.prefix_draws >= 24, "seed {seed}: prefix {}", balance.prefix_draws);
        }
    }

    #[test]
    fn clip_violation_names_document() {
        let labels = uneven_labels();
        let corpus_ids = ids(labels.len());
        let mut indices = clusterclip_v1(&labels, &params(2, 60, 11)).unwrap().indices;
        let repeated = indices[5];
        let count = indices.iter().filter(|&&index| index == repeated).count();
        indices.extend(std::iter::repeat_n(repeated, 3 - count));

        let report = check_invariants(&RecordedSample::Stream(indices), &labels, 2, &corpus_ids);
        assert!(!report.passed());
        assert_eq!(
            report.clip_violations,
            vec![ClipViolation {
                id: format!("doc-{repeated}"),
                index: repeated,
                label: labels[repeated as usize],
                count: 3,
            }]
        );
        assert_eq!(report.max_count, 3);
        let failures = report.failures();
        assert_eq!(failures.len(), 1, "{failures:?}");
        assert!(failures[0].contains(&format!("`doc-{repeated}` (3 draws)")), "{}", failures[0]);
    }

    #[test]
    fn biased_stream_fails_balance() {
        // Cluster 3 (8 documents) is drawn three times for every draw of each other
        // cluster, round robin within each cluster, with C large enough that no cluster
        // is exhausted in 600 draws.
        let labels = uneven_labels();
        let corpus_ids = ids(labels.len());
        let members = |label: u32| -> Vec<u32> {
            (0..labels.len() as u32).filter(|&i| labels[i as usize] == label).collect()
        };
        let groups = [members(3), members(5), members(9), members(11)];
        let pattern = [0usize, 0, 0, 1, 2, 3];
        let mut next = [0usize; 4];
        let mut indices = Vec::new();
        for step in 0..600 {
            let group = pattern[step % pattern.len()];
            indices.push(groups[group][next[group] % groups[group].len()]);
            next[group] += 1;
        }

        let report = check_invariants(&RecordedSample::Stream(indices), &labels, 1000, &corpus_ids);
        let balance = report.balance.computed().expect("balance is defined");
        assert_eq!(balance.prefix_draws, 600);
        assert_eq!(balance.draws_per_cluster[0].draws, 300);
        // Expected 150 per cluster: (150² + 3 · 50²) / 150 = 200.
        assert!((balance.chi_square - 200.0).abs() < 1e-9, "chi-square {}", balance.chi_square);
        assert!(balance.p_value < BALANCE_P_VALUE_FAILURE, "p = {}", balance.p_value);
        assert!(report.clip_violations.is_empty());
        assert!(!report.passed());
        assert!(report.failures()[0].contains("not spread evenly"), "{:?}", report.failures());
    }

    #[test]
    fn uniform_baseline_fails_balance() {
        // uniform-v1 draws clusters in proportion to their sizes (8, 20, 40 and 100
        // documents), which is what the balance test exists to detect.
        let labels = uneven_labels();
        let stream = uniform_v1(labels.len(), labels.len() as u64, 5).unwrap();
        let report = check_invariants(&RecordedSample::Stream(stream.indices), &labels, 1, &ids(labels.len()));
        assert!(report.clip_violations.is_empty());
        let balance = report.balance.computed().unwrap();
        assert!(balance.p_value < BALANCE_P_VALUE_FAILURE, "p = {}", balance.p_value);
        assert!(!report.passed());
    }

    #[test]
    fn balance_statistic_by_hand() {
        // 30 draws of cluster 0 and 10 of cluster 1, nothing exhausted: expected 20 each,
        // chi-square (100 + 100) / 20 = 10 with 1 degree of freedom.
        let labels = [0, 0, 1, 1];
        let mut indices = vec![0u32; 15];
        indices.extend([1u32; 15]);
        indices.extend([2u32; 5]);
        indices.extend([3u32; 5]);
        let report = check_invariants(&RecordedSample::Stream(indices), &labels, 100, &ids(4));
        let balance = report.balance.computed().unwrap();
        assert_eq!(balance.prefix_draws, 40);
        assert_eq!(balance.expected_draws_per_cluster, 20.0);
        assert!((balance.chi_square - 10.0).abs() < 1e-12);
        assert_eq!(balance.df, 1);
        assert!((balance.p_value - chi_square_survival(10.0, 1.0)).abs() < 1e-15);
        // p ≈ 0.0016 is reported but above the failure threshold.
        assert!(report.passed());
    }

    #[test]
    fn balance_prefix_ends_at_first_exhaustion() {
        // C = 1: cluster 1 (document 2) is exhausted by the third draw, so the prefix is
        // the first three draws even though the stream goes on.
        let labels = [0, 0, 1, 2, 2, 2];
        let indices = vec![0, 3, 2, 1, 4, 5];
        let report = check_invariants(&RecordedSample::Stream(indices), &labels, 1, &ids(6));
        let balance = report.balance.computed().unwrap();
        assert_eq!(balance.prefix_draws, 3);
        let draws: Vec<u64> = balance.draws_per_cluster.iter().map(|c| c.draws).collect();
        assert_eq!(draws, vec![1, 1, 1]);
        assert_eq!(balance.chi_square, 0.0);
        assert_eq!(balance.p_value, 1.0);
    }

    #[test]
    fn balance_undefined_cases() {
        let one_cluster = check_invariants(&RecordedSample::Stream(vec![0, 1]), &[4, 4], 1, &ids(2));
        assert!(matches!(&one_cluster.balance, Check::Undefined { reason } if reason.contains("1 cluster")));

        let no_prefix = check_invariants(&RecordedSample::Stream(vec![0, 1]), &[4, 5], 0, &ids(2));
        assert!(matches!(&no_prefix.balance, Check::Undefined { reason } if reason.contains("no draw")));
        assert_eq!(no_prefix.clip_violations.len(), 2);
    }

    #[test]
    fn exhaustion_steps_match_sampler() {
        // The report's definition of exhaustion must reproduce the sampler's own record.
        let labels = uneven_labels();
        for clip in [1u32, 2, 3] {
            for seed in 0..5 {
                let stream = clusterclip_v1(&labels, &params(clip, 100_000, seed)).unwrap();
                let report = check_invariants(&RecordedSample::Stream(stream.indices.clone()), &labels, clip, &ids(labels.len()));
                let order = report.exhaustion.computed().expect("exhaustion is defined");
                let mut steps: Vec<(u32, u64)> = order
                    .clusters
                    .iter()
                    .map(|cluster| (cluster.label, cluster.exhausted_at.expect("every cluster is exhausted")))
                    .collect();
                steps.sort_by_key(|&(_, step)| step);
                assert_eq!(steps, stream.exhausted_at, "clip {clip}, seed {seed}");
                assert_eq!(order.exhausted, 4);
                assert_eq!(order.consistent, Some(true), "clip {clip}, seed {seed}: rho {:?}", order.spearman_rho);
            }
        }
    }

    #[test]
    fn exhaustion_inversion_is_inconsistent() {
        // Clusters of 1, 2 and 3 documents (labels 0, 1, 2), C = 1, exhausted largest first.
        let labels = [0, 1, 1, 2, 2, 2];
        let indices = vec![3, 4, 5, 1, 2, 0];
        let report = check_invariants(&RecordedSample::Stream(indices), &labels, 1, &ids(6));
        let order = report.exhaustion.computed().unwrap();
        let steps: Vec<Option<u64>> = order.clusters.iter().map(|c| c.exhausted_at).collect();
        assert_eq!(steps, vec![Some(6), Some(5), Some(3)]);
        assert_eq!(order.spearman_rho, Some(-1.0));
        assert_eq!(order.consistent, Some(false));
        // The exhaustion order is reported, not gating.
        assert!(report.clip_violations.is_empty());
    }

    #[test]
    fn exhaustion_needs_three_clusters() {
        let labels = [0, 1, 1, 2, 2, 2];
        let report = check_invariants(&RecordedSample::Stream(vec![0, 1, 2]), &labels, 1, &ids(6));
        let order = report.exhaustion.computed().unwrap();
        assert_eq!(order.exhausted, 2);
        assert_eq!(order.spearman_rho, None);
        assert_eq!(order.consistent, None);
        assert!(order.undefined_reason.as_deref().unwrap().contains("at least 3"));
    }

    #[test]
    fn spearman_with_ties() {
        assert_eq!(average_ranks(&[10.0, 20.0, 10.0, 30.0]), vec![1.5, 3.0, 1.5, 4.0]);
        assert_eq!(spearman_rho(&[1.0, 2.0, 3.0], &[5.0, 9.0, 12.0]), Some(1.0));
        assert_eq!(spearman_rho(&[2.0, 2.0, 2.0], &[1.0, 2.0, 3.0]), None);
        // Ranks x = [1.5, 1.5, 3], y = [1, 2, 3]: covariance 1.5, variances 1.5 and 2.
        let rho = spearman_rho(&[1.0, 1.0, 2.0], &[1.0, 2.0, 3.0]).unwrap();
        assert!((rho - 1.5 / (1.5f64 * 2.0).sqrt()).abs() < 1e-12, "rho {rho}");
    }

    #[test]
    fn counts_check_clip_only() {
        let labels = [0, 0, 1, 1, 2];
        let corpus_ids = ids(5);
        let report = check_invariants(&RecordedSample::Counts(vec![2, 1, 0, 3, 2]), &labels, 2, &corpus_ids);
        assert_eq!(report.sample_kind, "counts");
        assert_eq!(report.total_draws, 8);
        assert_eq!(report.documents_at_clip, 2);
        assert_eq!(report.clip_violations.len(), 1);
        assert_eq!(report.clip_violations[0].id, "doc-3");
        assert_eq!(report.clip_violations[0].count, 3);
        assert!(matches!(&report.balance, Check::Undefined { reason } if reason.contains("draw order")));
        assert!(matches!(&report.exhaustion, Check::Undefined { .. }));
        assert!(!report.passed());

        let within = check_invariants(&RecordedSample::Counts(vec![2, 1, 0, 2, 2]), &labels, 2, &corpus_ids);
        assert!(within.passed());
    }

    #[test]
    fn selection_skips_order_checks() {
        // A selection concatenated cluster by cluster would fail the balance test if it
        // were read as a draw order.
        let labels = [0, 0, 1, 1];
        let selection = RecordedSample::Selection(vec![0, 1, 0, 1, 2, 3, 2, 3]);
        let report = check_invariants(&selection, &labels, 2, &ids(4));
        assert!(report.passed());
        assert_eq!(report.total_draws, 8);
        assert!(matches!(&report.balance, Check::Undefined { .. }));
        assert!(matches!(&report.exhaustion, Check::Undefined { .. }));
    }

    #[test]
    fn report_serializes_to_json() {
        let labels = uneven_labels();
        let stream = clusterclip_v1(&labels, &params(1, 50, 2)).unwrap();
        let report = check_invariants(&RecordedSample::Stream(stream.indices.clone()), &labels, 1, &ids(labels.len()));
        let json = serde_json::to_value(&report).unwrap();
        assert_eq!(json["sample_kind"], "stream");
        assert_eq!(json["balance"]["status"], "computed");
        assert!(json["balance"]["p_value"].is_number());
        assert_eq!(json["exhaustion"]["status"], "computed");
        assert!(json["clip_violations"].as_array().unwrap().is_empty());

        let counts = check_invariants(&RecordedSample::Counts(vec![1; labels.len()]), &labels, 1, &ids(labels.len()));
        let json = serde_json::to_value(&counts).unwrap();
        assert_eq!(json["balance"]["status"], "undefined");
        assert!(json["balance"]["reason"].is_string());

        let comparison = serde_json::to_value(compare_exact(&stream.indices[..10], &stream)).unwrap();
        assert_eq!(comparison["first_difference"]["step"], 10);
        assert!(comparison["first_difference"]["recorded_index"].is_null());
    }

    // --- NPY files -------------------------------------------------------------

    /// Builds an NPY file as numpy.save does: magic, version, header length, a header
    /// dict padded with spaces and ending in a newline, then the data. The padding makes
    /// the data start at a multiple of 64 bytes (`ARRAY_ALIGN` in `numpy.lib.format`).
    fn npy_file(major: u8, descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
        let length_bytes = if major == 1 { 2 } else { 4 };
        let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {shape}, }}");
        let unpadded = 8 + length_bytes + header.len() + 1;
        header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
        header.push('\n');

        let mut bytes = b"\x93NUMPY".to_vec();
        bytes.extend([major, 0]);
        if major == 1 {
            bytes.extend((header.len() as u16).to_le_bytes());
        } else {
            bytes.extend((header.len() as u32).to_le_bytes());
        }
        bytes.extend(header.as_bytes());
        assert_eq!(bytes.len() % 64, 0, "numpy aligns the data to 64 bytes");
        bytes.extend(data);
        bytes
    }

    fn int64_data(values: &[i64]) -> Vec<u8> {
        values.iter().flat_map(|value| value.to_le_bytes()).collect()
    }

    fn write_npy(dir: &Path, name: &str, bytes: &[u8]) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    #[test]
    fn npy_int64_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let values = [4i64, 0, 2, 4, 1];
        let bytes = npy_file(1, "<i8", "(5,)", &int64_data(&values));
        let path = write_npy(dir.path(), "2r_mul2_5_balanced_selection.npy", &bytes);

        let (sample, info) = read_recorded(&path, &ids(5)).unwrap();
        assert_eq!(sample, RecordedSample::Selection(vec![4, 0, 2, 4, 1]));
        assert_eq!(info.size, bytes.len() as u64);
        assert_eq!(info.role, RECORDED_SAMPLE_ROLE);
        assert_eq!(info.sha256, dataset::hex(&<sha2::Sha256 as sha2::Digest>::digest(&bytes)));
    }

    #[test]
    fn npy_versions_and_int32() {
        let dir = tempfile::tempdir().unwrap();
        let int32: Vec<u8> = [3i32, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
        for major in [1u8, 2, 3] {
            let path = write_npy(dir.path(), &format!("v{major}.npy"), &npy_file(major, "<i4", "(3,)", &int32));
            let (sample, _) = read_recorded(&path, &ids(4)).unwrap();
            assert_eq!(sample, RecordedSample::Selection(vec![3, 1, 2]), "version {major}");
        }
        // Python 2 wrote `(3L,)`. A dict without the trailing comma parses too.
        let header = NpyHeader::parse("{'descr':'<i8','fortran_order':True,'shape':(3L,)}\n").unwrap();
        assert_eq!(header, NpyHeader { descr: "<i8".into(), fortran_order: true, shape: vec![3] });
    }

    #[test]
    fn npy_truncated_data_names_position() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = npy_file(1, "<i8", "(4,)", &int64_data(&[0, 1, 2, 3]));
        bytes.truncate(bytes.len() - 12);
        let path = write_npy(dir.path(), "cut.npy", &bytes);
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("cut.npy"), "{message}");
        assert!(message.contains("truncated NPY data"), "{message}");
        assert!(message.contains("declares 4 values of 8 bytes, but 20 bytes follow"), "{message}");
        assert!(message.contains("ends at position 2"), "{message}");
    }

    #[test]
    fn npy_truncated_header_is_error() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = npy_file(1, "<i8", "(1,)", &int64_data(&[0]));
        let path = write_npy(dir.path(), "header.npy", &bytes[..30]);
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("header.npy: truncated NPY header"), "{message}");

        let path = write_npy(dir.path(), "magic.npy", b"PK\x03\x04 not numpy");
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("magic.npy: not an NPY file"), "{message}");
    }

    #[test]
    fn npy_float_dtype_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let data: Vec<u8> = [1.0f64, 2.0].iter().flat_map(|v| v.to_le_bytes()).collect();
        let path = write_npy(dir.path(), "floats.npy", &npy_file(1, "<f8", "(2,)", &data));
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("floats.npy"), "{message}");
        assert!(message.contains("NPY dtype '<f8' is not supported"), "{message}");
        assert!(message.contains("hint: write the indices with numpy.save"), "{message}");

        let path = write_npy(dir.path(), "big.npy", &npy_file(1, ">i8", "(1,)", &[0; 8]));
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("'>i8' is big-endian"), "{message}");
    }

    #[test]
    fn npy_index_out_of_range() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_npy(dir.path(), "range.npy", &npy_file(1, "<i8", "(3,)", &int64_data(&[0, 1, 5])));
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("range.npy: position 2: document index 5 is out of range"), "{message}");
        assert!(message.contains("the corpus has 5 documents (indices 0 to 4)"), "{message}");

        let path = write_npy(dir.path(), "negative.npy", &npy_file(1, "<i8", "(2,)", &int64_data(&[0, -1])));
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("position 1: document index -1 is out of range"), "{message}");
    }

    #[test]
    fn npy_two_dimensions_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_npy(dir.path(), "matrix.npy", &npy_file(1, "<i8", "(2, 2)", &int64_data(&[0, 1, 2, 3])));
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("matrix.npy: NPY array has shape (2, 2), expected a 1-D array"), "{message}");

        let path = write_npy(dir.path(), "scalar.npy", &npy_file(1, "<i8", "()", &int64_data(&[0])));
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("shape (), expected a 1-D array"), "{message}");
    }

    #[test]
    fn npy_header_errors() {
        for (header, problem) in [
            ("{'descr': '<i8', 'shape': (3,), }", "the key 'fortran_order' is missing"),
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), 'extra': 1}", "unsupported value starting with '1'"),
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (3,), 'x': 'y'}", "unexpected key 'x'"),
            ("{'descr': [('a', '<i8')], 'fortran_order': False, 'shape': (3,)}", "structured dtype"),
            ("{'descr': '<i8', 'fortran_order': 0, 'shape': (3,)}", "unsupported value starting with '0'"),
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (-3,)}", "expected a non-negative integer"),
            ("{'descr': '<i8', 'fortran_order': False, 'shape': (3,)} trailing", "unexpected text"),
            ("{'descr': '<i8', 'descr': '<i8'}", "appears twice"),
        ] {
            let error = NpyHeader::parse(header).unwrap_err();
            assert!(error.contains(problem), "{header}: {error}");
        }
    }

    #[test]
    fn npy_empty_array_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = write_npy(dir.path(), "empty.npy", &npy_file(1, "<i8", "(0,)", &[]));
        let message = error_text(read_recorded(&path, &ids(5)));
        assert!(message.contains("empty.npy: the recorded sample contains no draws"), "{message}");
    }

    // --- Tables ----------------------------------------------------------------

    #[test]
    fn csv_stream_in_row_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.csv");
        std::fs::write(&path, "step,id\n0,doc-3\n1,doc-0\n2,doc-3\n").unwrap();
        let (sample, info) = read_recorded(&path, &ids(4)).unwrap();
        assert_eq!(sample, RecordedSample::Stream(vec![3, 0, 3]));
        assert_eq!(info.media_type, "text/csv");

        // Without a `step` column the row order is the draw order.
        let path = dir.path().join("plain.jsonl");
        std::fs::write(&path, "{\"id\": \"doc-1\"}\n{\"id\": \"doc-2\"}\n").unwrap();
        let (sample, _) = read_recorded(&path, &ids(4)).unwrap();
        assert_eq!(sample, RecordedSample::Stream(vec![1, 2]));
    }

    #[test]
    fn integer_ids_match_corpus() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("numeric.csv");
        std::fs::write(&path, "id\n17\n4\n").unwrap();
        let corpus_ids: Vec<String> = ["4", "17"].map(String::from).to_vec();
        let (sample, _) = read_recorded(&path, &corpus_ids).unwrap();
        assert_eq!(sample, RecordedSample::Stream(vec![1, 0]));
    }

    #[test]
    fn csv_step_gap_names_row() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("gap.csv");
        std::fs::write(&path, "id,step\ndoc-0,0\ndoc-1,1\ndoc-2,3\n").unwrap();
        let message = error_text(read_recorded(&path, &ids(4)));
        assert!(message.contains("gap.csv: row 2: step 3 follows step 1 of row 1, expected step 2"), "{message}");

        let path = dir.path().join("late.csv");
        std::fs::write(&path, "id,step\ndoc-0,1\ndoc-1,2\n").unwrap();
        let message = error_text(read_recorded(&path, &ids(4)));
        assert!(message.contains("late.csv: row 0: step 1, expected 0"), "{message}");
    }

    #[test]
    fn parquet_step_out_of_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.parquet");
        let recorded_ids: Vec<String> = ["doc-0", "doc-1", "doc-2", "doc-3"].map(String::from).to_vec();
        let mut table = DataFrame::new_infer_height(vec![
            Column::new("id".into(), &recorded_ids),
            Column::new("step".into(), &[0i64, 2, 1, 3]),
        ])
        .unwrap();
        dataset::write_parquet(&path, &mut table).unwrap();
        let message = error_text(read_recorded(&path, &ids(4)));
        assert!(message.contains("stream.parquet: row 1: step 2 follows step 0 of row 0"), "{message}");
        assert!(message.contains("hint: "), "{message}");

        // In order, the same file reads as a stream.
        let mut table = DataFrame::new_infer_height(vec![
            Column::new("id".into(), &recorded_ids),
            Column::new("step".into(), &[0i32, 1, 2, 3]),
        ])
        .unwrap();
        dataset::write_parquet(&path, &mut table).unwrap();
        let (sample, _) = read_recorded(&path, &ids(4)).unwrap();
        assert_eq!(sample, RecordedSample::Stream(vec![0, 1, 2, 3]));
    }

    #[test]
    fn unknown_id_names_row_and_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stream.csv");
        std::fs::write(&path, "id\ndoc-0\ndoc-9\n").unwrap();
        let message = error_text(read_recorded(&path, &ids(4)));
        assert!(message.contains("stream.csv: row 1: id `doc-9` is not a corpus id"), "{message}");

        let path = dir.path().join("counts.csv");
        std::fs::write(&path, "id,count\ndoc-0,1\nmissing,2\n").unwrap();
        let message = error_text(read_recorded(&path, &ids(4)));
        assert!(message.contains("counts.csv: row 1: id `missing` is not a corpus id"), "{message}");
    }

    #[test]
    fn counts_table_reads_counts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("counts.csv");
        std::fs::write(&path, "id,count\ndoc-2,3\ndoc-0,1\ndoc-3,0\n").unwrap();
        let (sample, _) = read_recorded(&path, &ids(5)).unwrap();
        // doc-1 and doc-4 are not listed, so they were drawn 0 times.
        assert_eq!(sample, RecordedSample::Counts(vec![1, 0, 3, 0, 0]));
        assert_eq!(sample.draws(), 4);
        assert_eq!(sample.kind(), "counts");
    }

    #[test]
    fn counts_table_errors() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            ("negative.csv", "id,count\ndoc-0,1\ndoc-1,-2\n", "row 1 (id `doc-1`): count -2 is negative"),
            ("twice.csv", "id,count\ndoc-0,1\ndoc-0,2\n", "rows 0 and 1: id `doc-0` appears twice"),
            ("fraction.csv", "id,count\ndoc-0,1.5\n", "column `count` has type f64, expected integers"),
            ("huge.csv", "id,count\ndoc-0,5000000000\n", "count 5000000000 is above 4294967295"),
            ("both.csv", "id,count,step\ndoc-0,1,0\n", "both a `step` and a `count` column"),
            ("zero.csv", "id,count\ndoc-0,0\n", "the recorded sample contains no draws"),
            ("noid.csv", "document,count\ndoc-0,1\n", "missing column `id` (columns: document, count)"),
        ];
        for (name, text, problem) in cases {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let message = error_text(read_recorded(&path, &ids(3)));
            assert!(message.contains(name), "{name}: {message}");
            assert!(message.contains(problem), "{name}: {message}");
        }
    }

    #[test]
    fn unsupported_extension_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.txt");
        std::fs::write(&path, "doc-0\n").unwrap();
        let message = error_text(read_recorded(&path, &ids(3)));
        assert!(message.contains("sample.txt: unsupported file type `.txt`"), "{message}");
    }
}

/// The parameters a recorded sample claims, for an exact re-run.
#[derive(Debug, Clone, Serialize)]
pub struct Claim {
    /// `clusterclip-v1`, `uniform-v1`, or another sampler's name (then only invariants apply).
    pub sampler: String,
    pub params: ClipParams,
}

/// Everything known about one recorded sample: the exact comparison when it claims a sampler
/// clipaudit implements, and the invariants in every case.
#[derive(Debug, Clone, Serialize)]
pub struct Verification {
    pub file: String,
    pub sha256: String,
    pub kind: &'static str,
    pub claim: Claim,
    /// Present when the claim names `clusterclip-v1` or `uniform-v1` and the sample is an
    /// ordered stream.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exact: Option<ExactComparison>,
    /// Present for a counts table or an unordered selection that claims a sampler clipaudit
    /// implements: the per-document counts are compared with the re-run's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counts: Option<CountComparison>,
    /// One sentence on the first differing draw, naming the documents.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_difference: Option<String>,
    pub invariants: InvariantReport,
    pub passed: bool,
    pub failures: Vec<String>,
}

/// Reads `path` and verifies it against the corpus `labels` (one per id in `corpus_ids`) and the
/// claimed sampler and parameters.
pub fn verify_recorded(path: &Path, corpus_ids: &[String], labels: &[u32], claim: &Claim) -> Result<(Verification, InputFile)> {
    let (recorded, info) = read_recorded(path, corpus_ids)?;
    let invariants = check_invariants(&recorded, labels, claim.params.clip, corpus_ids);
    let mut failures = invariants.failures();

    // A claim of a sampler clipaudit implements is checked draw for draw.
    let expected = match claim.sampler.as_str() {
        CLUSTERCLIP_V1 => Some(clusterclip_v1(labels, &claim.params)),
        UNIFORM_V1 => Some(uniform_v1(labels.len(), claim.params.draws, claim.params.seed)),
        _ => None,
    }
    .transpose()
    .map_err(|e| Error::input(format!("{}: cannot re-run the claimed sampler ({e})", path.display())))?;

    let (mut exact, mut counts, mut first_difference) = (None, None, None);
    if let Some(expected) = &expected {
        match &recorded {
            // A counts table, or a selection whose order is not the draw order, is compared
            // document by document: the same documents, each as often as in the re-run.
            RecordedSample::Counts(_) | RecordedSample::Selection(_) => {
                let values: Vec<u32> = recorded.document_counts(labels.len()).iter().map(|&c| c.min(u64::from(u32::MAX)) as u32).collect();
                let comparison = compare_counts(&values, expected);
                if !comparison.identical {
                    failures.push(format!(
                        "the per-document counts differ from a {} re-run for {} documents",
                        claim.sampler, comparison.differing_documents
                    ));
                }
                counts = Some(comparison);
            }
            other => {
                let indices = other.indices().unwrap_or_default();
                let comparison = compare_exact(indices, expected);
                if let Some(difference) = &comparison.first_difference {
                    let sentence = difference.describe(&claim.sampler, corpus_ids);
                    failures.push(sentence.clone());
                    first_difference = Some(sentence);
                }
                exact = Some(comparison);
            }
        }
    }

    let passed = failures.is_empty();
    Ok((
        Verification {
            file: path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
            sha256: info.sha256.clone(),
            kind: recorded.kind(),
            claim: claim.clone(),
            exact,
            counts,
            first_difference,
            invariants,
            passed,
            failures,
        },
        info,
    ))
}

//! An in-memory typst world: the template, the data files and the charts are served from memory,
//! fonts come from typst-assets (no system fonts), and the date is fixed by the caller.

use std::collections::{BTreeMap, HashMap};

use typst::diag::{FileError, FileResult, SourceDiagnostic};
use typst::foundations::{Bytes, Datetime, Duration};
use typst::syntax::{FileId, RootedPath, Source, VirtualPath, VirtualRoot};
use typst::text::{Font, FontBook};
use typst::utils::LazyHash;
use typst::{Library, LibraryExt, World, WorldExt};
use typst_layout::PagedDocument;
use typst_pdf::{PdfOptions, PdfStandard, PdfStandards, Timestamp};

use crate::error::{Error, Result};

/// Returns the fonts embedded in the binary, parsed once per process.
fn fonts() -> &'static [Font] {
    static FONTS: std::sync::OnceLock<Vec<Font>> = std::sync::OnceLock::new();
    FONTS.get_or_init(|| typst_assets::fonts().flat_map(|data| Font::iter(Bytes::new(data))).collect())
}

struct MemoryWorld {
    library: LazyHash<Library>,
    book: LazyHash<FontBook>,
    main: FileId,
    sources: HashMap<FileId, Source>,
    files: HashMap<FileId, Bytes>,
    today: Datetime,
}

fn file_id(path: &str) -> Result<FileId> {
    let vpath = VirtualPath::new(path).map_err(|e| Error::internal(format!("invalid virtual path {path} ({e:?})")))?;
    Ok(FileId::new(RootedPath::new(VirtualRoot::Project, vpath)))
}

impl World for MemoryWorld {
    fn library(&self) -> &LazyHash<Library> {
        &self.library
    }

    fn book(&self) -> &LazyHash<FontBook> {
        &self.book
    }

    fn main(&self) -> FileId {
        self.main
    }

    fn source(&self, id: FileId) -> FileResult<Source> {
        self.sources.get(&id).cloned().ok_or_else(|| FileError::NotFound(id.vpath().get_without_slash().into()))
    }

    fn file(&self, id: FileId) -> FileResult<Bytes> {
        if let Some(source) = self.sources.get(&id) {
            return Ok(Bytes::from_string(source.clone()));
        }
        self.files.get(&id).cloned().ok_or_else(|| FileError::NotFound(id.vpath().get_without_slash().into()))
    }

    fn font(&self, index: usize) -> Option<Font> {
        fonts().get(index).cloned()
    }

    fn today(&self, _offset: Option<Duration>) -> Option<Datetime> {
        Some(self.today)
    }
}

/// Compiles `main` (typst markup) with `files` (virtual path to bytes) to a PDF/A-3b document.
/// `date` is (year, month, day, hour, minute, second) in UTC, used for the document date.
pub fn compile_pdf(main: &str, files: &BTreeMap<String, Vec<u8>>, date: (i32, u8, u8, u8, u8, u8)) -> Result<Vec<u8>> {
    let main_id = file_id("/report.typ")?;
    let mut sources = HashMap::new();
    sources.insert(main_id, Source::new(main_id, main.to_string()));
    let mut bytes = HashMap::new();
    for (path, data) in files {
        bytes.insert(file_id(&format!("/{path}"))?, Bytes::new(data.clone()));
    }
    let (y, mo, d, h, mi, s) = date;
    let today = Datetime::from_ymd(y, mo, d).ok_or_else(|| Error::internal("invalid report date"))?;
    let world = MemoryWorld {
        library: LazyHash::new(Library::builder().build()),
        book: LazyHash::new(FontBook::from_fonts(fonts())),
        main: main_id,
        sources,
        files: bytes,
        today,
    };

    let document: PagedDocument = typst::compile(&world).output.map_err(|d| describe(&world, &d))?;
    let timestamp = Datetime::from_ymd_hms(y, mo, d, h, mi, s).map(Timestamp::new_utc);
    let options = PdfOptions {
        ident: typst::foundations::Smart::Custom("clipaudit-evidence-report".into()),
        timestamp,
        standards: PdfStandards::new(&[PdfStandard::A_3b])
            .map_err(|e| Error::internal(format!("PDF/A-3b is not available ({e:?})")))?,
        ..PdfOptions::default()
    };
    typst_pdf::pdf(&document, &options).map_err(|d| describe(&world, &d))
}

fn describe(world: &MemoryWorld, diagnostics: &[SourceDiagnostic]) -> Error {
    let messages: Vec<String> = diagnostics
        .iter()
        .map(|d| {
            let place = world
                .range(d.span)
                .and_then(|r| world.sources.get(&world.main).map(|s| (s.text().to_string(), r)))
                .map(|(text, r)| format!(" at {:?}", &text[r.start.min(text.len())..r.end.min(r.start + 60).min(text.len())]))
                .unwrap_or_default();
            let hints: Vec<String> = d.hints.iter().map(|h| format!(" (hint: {})", h.v)).collect();
            format!("{}{place}{}", d.message, hints.join(""))
        })
        .collect();
    Error::internal(format!("report compilation failed: {}", messages.join("; ")))
}

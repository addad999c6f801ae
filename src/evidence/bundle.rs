//! `SHA256SUMS`, signing and verification of an evidence bundle directory.
//!
//! A bundle contains the files listed in `SHA256SUMS`: manifest.json,
//! metrics, charts, data samples, the signer's public key files and so on.
//! It also contains top-level files that `SHA256SUMS` does not list:
//! `SHA256SUMS` itself, `report.pdf` and a raw `.sig` and an SSHSIG `.sshsig`
//! signature for each of `manifest.json`, `SHA256SUMS` and `report.pdf`.
//! `report.pdf` embeds `SHA256SUMS`, so it cannot be listed in it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::signing::{
    ALLOWED_SIGNERS_FILE, Error, HASH_BUFFER_SIZE, MANIFEST_NAMESPACE, OPENSSH_PUBLIC_KEY_FILE,
    PUBLIC_KEY_PEM_FILE, RAW_SIGNATURE_SUFFIX, REPORT_NAMESPACE, Result, SSH_SIGNATURE_SUFFIX,
    check_raw_signature, check_ssh_signature, hex_encode, io_error, key_id, openssh_fingerprint,
    parse_allowed_signers, parse_openssh_public_key, parse_verifying_key_pem, raw_signature_path,
    sign_raw, sign_ssh, ssh_signature_path, validate_principal, write_file_atomic,
};

pub const SHA256SUMS_FILE: &str = "SHA256SUMS";
pub const MANIFEST_FILE: &str = "manifest.json";
pub const REPORT_FILE: &str = "report.pdf";

/// Files that [`sign_bundle`] signs, each with its SSHSIG namespace.
pub const SIGNED_FILES: [(&str, &str); 3] = [
    (MANIFEST_FILE, MANIFEST_NAMESPACE),
    (SHA256SUMS_FILE, MANIFEST_NAMESPACE),
    (REPORT_FILE, REPORT_NAMESPACE),
];

/// Top-level files that every bundle contains and `SHA256SUMS` must not list.
pub const UNLISTED_FILES: [&str; 8] = [
    SHA256SUMS_FILE,
    REPORT_FILE,
    "manifest.json.sig",
    "SHA256SUMS.sig",
    "report.pdf.sig",
    "manifest.json.sshsig",
    "SHA256SUMS.sshsig",
    "report.pdf.sshsig",
];

/// Check names used in [`VerifyReport`].
pub const CHECK_BUNDLE_DIRECTORY: &str = "bundle-directory";
pub const CHECK_REQUIRED_FILE: &str = "required-file";
pub const CHECK_SHA256SUMS: &str = "sha256sums";
pub const CHECK_FILE_HASH: &str = "file-hash";
pub const CHECK_RAW_SIGNATURE: &str = "raw-signature";
pub const CHECK_SSH_SIGNATURE: &str = "ssh-signature";
pub const CHECK_UNLISTED_ENTRY: &str = "unlisted-entry";
pub const CHECK_SIGNER_KEY: &str = "signer-key";

/// Reader adapter that computes the SHA-256 and the length of all bytes
/// read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    bytes_read: u64,
}

impl<R> HashingReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            hasher: Sha256::new(),
            bytes_read: 0,
        }
    }

    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    pub fn get_ref(&self) -> &R {
        &self.inner
    }

    /// Returns the lowercase hex SHA-256 and the number of bytes read so far.
    /// Bytes that the caller did not read are not included.
    pub fn finish(self) -> (String, u64) {
        (hex_encode(&self.hasher.finalize()), self.bytes_read)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.hasher.update(&buffer[..read]);
        self.bytes_read += read as u64;
        Ok(read)
    }
}

/// Returns the lowercase hex SHA-256 and the size in bytes of the file at
/// `path`, reading it in 64 KiB blocks.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let file = File::open(path).map_err(io_error("open", path))?;
    sha256_reader(file).map_err(io_error("read", path))
}

fn sha256_reader<R: Read>(reader: R) -> io::Result<(String, u64)> {
    let mut hashing = HashingReader::new(reader);
    let mut buffer = vec![0u8; HASH_BUFFER_SIZE];
    loop {
        match hashing.read(&mut buffer) {
            Ok(0) => break,
            Ok(_) => {}
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    Ok(hashing.finish())
}

/// One `SHA256SUMS` line: a bundle-relative path with `/` separators and the
/// lowercase hex SHA-256 of the file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SumsEntry {
    pub path: String,
    pub sha256: String,
}

/// Checks that `path` is a relative bundle path that stays inside the bundle
/// and that `sha256sum --tag` writes without escaping.
pub fn validate_bundle_path(path: &str) -> Result<()> {
    match bundle_path_problem(path) {
        None => Ok(()),
        Some(reason) => Err(Error::InvalidBundlePath {
            path: path.to_string(),
            reason: reason.to_string(),
        }),
    }
}

fn bundle_path_problem(path: &str) -> Option<&'static str> {
    if path.is_empty() {
        return Some("the path is empty");
    }
    if path.starts_with('/') {
        return Some("the path is absolute, but bundle paths are relative to the bundle directory");
    }
    if path.contains('\\') {
        return Some("the path contains a backslash, but bundle paths use `/` separators");
    }
    if path.contains(['\n', '\r']) {
        return Some("the path contains a newline or carriage return");
    }
    if path.chars().any(char::is_control) {
        return Some("the path contains a control character");
    }
    for component in path.split('/') {
        match component {
            "" => return Some("the path contains an empty component (`//` or a trailing `/`)"),
            "." => return Some("the path contains a `.` component"),
            ".." => return Some("the path contains a `..` component, which leaves the bundle"),
            _ => {}
        }
    }
    None
}

fn sha256_hex_problem(hash: &str) -> Option<String> {
    let is_lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
    if hash.len() == 64 && hash.chars().all(is_lower_hex) {
        None
    } else if hash.len() == 64 && hash.chars().all(|c| c.is_ascii_hexdigit()) {
        Some(format!(
            "the hash {hash} contains uppercase hex digits, expected lowercase"
        ))
    } else {
        Some(format!("the hash {hash:?} is not 64 lowercase hex digits"))
    }
}

/// Formats entries as `sha256sum --tag` does: `SHA256 (PATH) = HEX` lines
/// sorted by path in byte order, LF line endings.
pub fn format_sha256sums(entries: &[SumsEntry]) -> Result<String> {
    let mut sorted: Vec<&SumsEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.path.cmp(&b.path));

    let mut text = String::new();
    for (index, entry) in sorted.iter().enumerate() {
        validate_bundle_path(&entry.path)?;
        if index > 0 && sorted[index - 1].path == entry.path {
            return Err(Error::InvalidBundlePath {
                path: entry.path.clone(),
                reason: "the path is listed twice".to_string(),
            });
        }
        if let Some(reason) = sha256_hex_problem(&entry.sha256) {
            return Err(Error::InvalidBundlePath {
                path: entry.path.clone(),
                reason,
            });
        }
        text.push_str(&format!("SHA256 ({}) = {}\n", entry.path, entry.sha256));
    }
    Ok(text)
}

/// Parses `SHA256SUMS` strictly and returns its entries in file order.
///
/// Rejects, naming the line: malformed lines, CRLF line endings, a missing
/// final newline, hashes that are not 64 lowercase hex digits, paths that
/// [`validate_bundle_path`] rejects, duplicate paths and lines out of byte
/// order.
pub fn parse_sha256sums(bytes: &[u8]) -> Result<Vec<SumsEntry>> {
    let scan = scan_sha256sums(bytes);
    if let Some((line, reason)) = scan.problems.into_iter().next() {
        return Err(Error::Sha256SumsSyntax { line, reason });
    }
    Ok(scan.entries)
}

/// Result of reading `SHA256SUMS` past bad lines, so that verification can
/// report every bad line and still check the valid ones.
struct SumsScan {
    entries: Vec<SumsEntry>,
    /// Line number (from 1) and reason, in line order.
    problems: Vec<(usize, String)>,
}

fn scan_sha256sums(bytes: &[u8]) -> SumsScan {
    let mut scan = SumsScan {
        entries: Vec::new(),
        problems: Vec::new(),
    };
    if bytes.is_empty() {
        return scan;
    }

    let terminated = bytes.ends_with(b"\n");
    let mut lines: Vec<&[u8]> = bytes.split(|byte| *byte == b'\n').collect();
    if terminated {
        // split() yields an empty slice after the final LF.
        lines.pop();
    }
    let line_count = lines.len();

    let mut first_line_of: BTreeMap<String, usize> = BTreeMap::new();
    let mut previous_path: Option<String> = None;
    for (index, raw_line) in lines.into_iter().enumerate() {
        let number = index + 1;
        if !terminated && number == line_count {
            scan.problems.push((
                number,
                "the last line does not end with a newline (LF)".to_string(),
            ));
        }

        let entry = match parse_sums_line(raw_line) {
            Ok(entry) => entry,
            Err(reason) => {
                scan.problems.push((number, reason));
                continue;
            }
        };
        if let Some(first) = first_line_of.get(&entry.path) {
            scan.problems.push((
                number,
                format!("{} is listed twice, first on line {first}", entry.path),
            ));
            continue;
        }
        let out_of_order = previous_path
            .as_ref()
            .filter(|previous| entry.path < **previous);
        if let Some(previous) = out_of_order {
            scan.problems.push((
                number,
                format!(
                    "{} is out of order: lines must be sorted by path in byte order, and it sorts before {previous}",
                    entry.path
                ),
            ));
        }
        previous_path = Some(entry.path.clone());
        first_line_of.insert(entry.path.clone(), number);
        scan.entries.push(entry);
    }
    scan
}

fn parse_sums_line(raw_line: &[u8]) -> std::result::Result<SumsEntry, String> {
    const EXPECTED: &str = "expected `SHA256 (PATH) = HASH`";

    let line =
        std::str::from_utf8(raw_line).map_err(|_| "the line is not valid UTF-8".to_string())?;
    if line.is_empty() {
        return Err("the line is empty".to_string());
    }
    if line.ends_with('\r') {
        return Err(
            "the line ends with a carriage return, but SHA256SUMS uses LF line endings".to_string(),
        );
    }
    if line.starts_with('\\') {
        return Err(
            "the line starts with a backslash, the sha256sum form for names with a backslash or newline, which bundle paths may not contain"
                .to_string(),
        );
    }

    let rest = line
        .strip_prefix("SHA256 (")
        .ok_or_else(|| EXPECTED.to_string())?;
    // The hash cannot contain ") = ", so the last occurrence ends the path.
    let (path, hash) = rest
        .rsplit_once(") = ")
        .ok_or_else(|| EXPECTED.to_string())?;
    if let Some(reason) = sha256_hex_problem(hash) {
        return Err(reason);
    }
    if let Some(reason) = bundle_path_problem(path) {
        return Err(format!("invalid path {path:?}: {reason}"));
    }
    Ok(SumsEntry {
        path: path.to_string(),
        sha256: hash.to_string(),
    })
}

/// Hashes the given bundle files and writes `DIR/SHA256SUMS`, replacing it.
/// Returns the entries in file order.
///
/// Each path must pass [`validate_bundle_path`], name a regular file reached
/// without symbolic links, appear once, and not be one of [`UNLISTED_FILES`].
pub fn write_sha256sums<S: AsRef<str>>(dir: &Path, paths: &[S]) -> Result<Vec<SumsEntry>> {
    let mut seen = BTreeSet::new();
    let mut entries = Vec::with_capacity(paths.len());
    for path in paths {
        let path = path.as_ref();
        validate_bundle_path(path)?;
        if UNLISTED_FILES.contains(&path) {
            return Err(Error::InvalidBundlePath {
                path: path.to_string(),
                reason: "this file is part of every bundle but never listed in SHA256SUMS"
                    .to_string(),
            });
        }
        if !seen.insert(path) {
            return Err(Error::InvalidBundlePath {
                path: path.to_string(),
                reason: "the path is listed twice".to_string(),
            });
        }

        let file = open_bundle_file(dir, path)?;
        let (sha256, _size) = sha256_reader(file).map_err(io_error("read", &dir.join(path)))?;
        entries.push(SumsEntry {
            path: path.to_string(),
            sha256,
        });
    }
    entries.sort_by(|a, b| a.path.cmp(&b.path));

    let text = format_sha256sums(&entries)?;
    write_file_atomic(&dir.join(SHA256SUMS_FILE), text.as_bytes(), 0o644, true)?;
    Ok(entries)
}

/// Opens `dir/path` for reading after checking that no component of `path`
/// is a symbolic link and that the target is a regular file.
///
/// NOTE: a process that swaps a parent directory for a symbolic link between
/// the checks and the open is not detected. On Unix, a swap of the file
/// itself is detected by comparing device and inode numbers.
pub fn open_bundle_file(dir: &Path, path: &str) -> Result<File> {
    validate_bundle_path(path)?;

    let mut current = dir.to_path_buf();
    let mut metadata = None;
    for component in path.split('/') {
        current.push(component);
        let component_metadata =
            fs::symlink_metadata(&current).map_err(io_error("open", &current))?;
        if component_metadata.file_type().is_symlink() {
            return Err(Error::NotRegularFile {
                path: current,
                kind: "a symbolic link",
            });
        }
        metadata = Some(component_metadata);
    }
    let metadata = metadata.expect("a validated path has at least one component");
    if !metadata.is_file() {
        return Err(Error::NotRegularFile {
            path: current,
            kind: file_kind(&metadata.file_type()),
        });
    }

    let file = File::open(&current).map_err(io_error("open", &current))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let opened = file
            .metadata()
            .map_err(io_error("read metadata of", &current))?;
        if (opened.dev(), opened.ino()) != (metadata.dev(), metadata.ino()) {
            return Err(Error::Io {
                action: "open",
                path: current,
                source: io::Error::other("the file was replaced while it was being opened"),
            });
        }
    }
    Ok(file)
}

fn file_kind(file_type: &fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a named pipe";
        }
        if file_type.is_socket() {
            return "a socket";
        }
        if file_type.is_block_device() || file_type.is_char_device() {
            return "a device file";
        }
    }
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "a special file"
    }
}

fn read_bundle_file(dir: &Path, path: &str) -> Result<Vec<u8>> {
    let mut file = open_bundle_file(dir, path)?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(io_error("read", &dir.join(path)))?;
    Ok(bytes)
}

/// Writes the raw and SSHSIG signatures of `manifest.json`, `SHA256SUMS` and
/// `report.pdf` in `dir`, replacing existing signature files. Returns the six
/// signature paths.
///
/// Each file is read once, so both signatures cover the same final bytes.
/// Fails with [`Error::PublicKeyFileMismatch`] when `signer.pub.pem`,
/// `signer.pub` or `allowed_signers` in `dir` name another key or principal,
/// because [`verify_bundle`] would report them.
pub fn sign_bundle(dir: &Path, key: &SigningKey, principal: &str) -> Result<Vec<PathBuf>> {
    validate_principal(principal)?;
    let verifying_key = key.verifying_key();
    for (file, outcome) in signer_key_file_results(dir, &verifying_key, Some(principal)) {
        if let Err(reason) = outcome {
            return Err(Error::PublicKeyFileMismatch {
                path: dir.join(file),
                reason,
            });
        }
    }

    let mut written = Vec::with_capacity(6);
    for (name, namespace) in SIGNED_FILES {
        // NOTE: pure Ed25519 needs the whole message, so each signed file is
        // read into memory.
        let message = read_bundle_file(dir, name)?;
        let path = dir.join(name);

        let raw_path = raw_signature_path(&path);
        write_file_atomic(&raw_path, &sign_raw(key, &message), 0o644, true)?;
        written.push(raw_path);

        let ssh_path = ssh_signature_path(&path);
        let armored = sign_ssh(key, namespace, &message)?;
        write_file_atomic(&ssh_path, armored.as_bytes(), 0o644, true)?;
        written.push(ssh_path);
    }
    Ok(written)
}

/// Outcome of one verification step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    /// One of the `CHECK_*` names.
    pub name: &'static str,
    /// Bundle-relative path of the file the check is about, `.` for the
    /// bundle directory.
    pub file: String,
    pub ok: bool,
    pub detail: String,
}

/// All checks made by [`verify_bundle`].
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub bundle: String,
    /// Key id of the verifying key, see [`key_id`].
    pub key_id: String,
    /// OpenSSH fingerprint of the verifying key.
    pub fingerprint: String,
    pub checks: Vec<Check>,
}

impl VerifyReport {
    /// Returns true when at least one check ran and every check passed.
    pub fn passed(&self) -> bool {
        !self.checks.is_empty() && self.checks.iter().all(|check| check.ok)
    }

    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|check| !check.ok)
    }

    fn pass(&mut self, name: &'static str, file: &str, detail: impl Into<String>) {
        self.push(name, file, true, detail.into());
    }

    fn fail(&mut self, name: &'static str, file: &str, detail: impl Into<String>) {
        self.push(name, file, false, detail.into());
    }

    fn push(&mut self, name: &'static str, file: &str, ok: bool, detail: String) {
        self.checks.push(Check {
            name,
            file: file.to_string(),
            ok,
            detail,
        });
    }
}

/// Verifies the bundle in `dir` against `key` and returns every check, failed
/// or passed. Verification continues after a failure.
///
/// The bundle passes only when all of these hold:
/// - `manifest.json`, `SHA256SUMS`, `report.pdf` and the six signature files
///   are regular files.
/// - `SHA256SUMS` parses, lists `manifest.json` and none of [`UNLISTED_FILES`].
/// - Every listed file is a regular file reached without symbolic links and
///   has the listed SHA-256.
/// - Every raw and SSHSIG signature verifies with `key`, and every SSHSIG has
///   the namespace of its file.
/// - The directory tree contains no other entry.
/// - `signer.pub.pem`, `signer.pub` and `allowed_signers`, where present,
///   contain `key`. With `principal` set, `signer.pub` and `allowed_signers`
///   must also name that principal.
pub fn verify_bundle(dir: &Path, key: &VerifyingKey, principal: Option<&str>) -> VerifyReport {
    let mut report = VerifyReport {
        bundle: dir.display().to_string(),
        key_id: key_id(key),
        fingerprint: openssh_fingerprint(key),
        checks: Vec::new(),
    };

    match fs::metadata(dir) {
        Ok(metadata) if metadata.is_dir() => {
            report.pass(CHECK_BUNDLE_DIRECTORY, ".", "the bundle is a directory");
        }
        Ok(_) => {
            report.fail(
                CHECK_BUNDLE_DIRECTORY,
                ".",
                format!("{} is not a directory", dir.display()),
            );
            return report;
        }
        Err(err) => {
            report.fail(
                CHECK_BUNDLE_DIRECTORY,
                ".",
                format!(
                    "failed to read the bundle directory {}: {err}",
                    dir.display()
                ),
            );
            return report;
        }
    }

    let present = check_required_files(dir, &mut report);
    let entries = if present.contains(SHA256SUMS_FILE) {
        check_sha256sums(dir, &mut report)
    } else {
        Vec::new()
    };
    check_listed_files(dir, &entries, &mut report);
    check_signatures(dir, key, &present, &mut report);
    check_unlisted_entries(dir, &entries, &mut report);
    check_signer_key_files(dir, key, principal, &mut report);
    report
}

/// Checks that `manifest.json` and the unlisted files exist as regular files
/// and returns the names that do.
fn check_required_files(dir: &Path, report: &mut VerifyReport) -> BTreeSet<&'static str> {
    let mut present = BTreeSet::new();
    let required = std::iter::once(MANIFEST_FILE).chain(UNLISTED_FILES);
    for name in required {
        match fs::symlink_metadata(dir.join(name)) {
            Ok(metadata) if metadata.is_file() => {
                report.pass(CHECK_REQUIRED_FILE, name, "present");
                present.insert(name);
            }
            Ok(metadata) => report.fail(
                CHECK_REQUIRED_FILE,
                name,
                format!(
                    "{name} is {}, but a bundle may contain only regular files",
                    file_kind(&metadata.file_type())
                ),
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound => report.fail(
                CHECK_REQUIRED_FILE,
                name,
                format!("{name} is missing, and every bundle must contain it"),
            ),
            Err(err) => report.fail(
                CHECK_REQUIRED_FILE,
                name,
                format!("failed to read metadata of {name}: {err}"),
            ),
        }
    }
    present
}

/// Parses `SHA256SUMS`, reports each bad line, and returns the valid entries
/// that should be hashed.
fn check_sha256sums(dir: &Path, report: &mut VerifyReport) -> Vec<SumsEntry> {
    let bytes = match read_bundle_file(dir, SHA256SUMS_FILE) {
        Ok(bytes) => bytes,
        Err(err) => {
            report.fail(CHECK_SHA256SUMS, SHA256SUMS_FILE, err.to_string());
            return Vec::new();
        }
    };

    let scan = scan_sha256sums(&bytes);
    let mut failed = !scan.problems.is_empty();
    for (line, reason) in &scan.problems {
        report.fail(
            CHECK_SHA256SUMS,
            SHA256SUMS_FILE,
            format!("line {line}: {reason}"),
        );
    }

    let mut entries = Vec::with_capacity(scan.entries.len());
    for entry in scan.entries {
        if UNLISTED_FILES.contains(&entry.path.as_str()) {
            failed = true;
            report.fail(
                CHECK_SHA256SUMS,
                SHA256SUMS_FILE,
                format!(
                    "SHA256SUMS lists {}, which must never be listed in it",
                    entry.path
                ),
            );
        } else {
            entries.push(entry);
        }
    }
    if !entries.iter().any(|entry| entry.path == MANIFEST_FILE) {
        failed = true;
        report.fail(
            CHECK_SHA256SUMS,
            SHA256SUMS_FILE,
            format!("SHA256SUMS does not list {MANIFEST_FILE}"),
        );
    }
    if !failed {
        report.pass(
            CHECK_SHA256SUMS,
            SHA256SUMS_FILE,
            format!("{} entries, well formed", entries.len()),
        );
    }
    entries
}

fn check_listed_files(dir: &Path, entries: &[SumsEntry], report: &mut VerifyReport) {
    for entry in entries {
        let path = entry.path.as_str();
        let hashed = open_bundle_file(dir, path)
            .and_then(|file| sha256_reader(file).map_err(io_error("read", &dir.join(path))));
        match hashed {
            Ok((actual, size)) if actual == entry.sha256 => {
                report.pass(
                    CHECK_FILE_HASH,
                    path,
                    format!("SHA-256 {actual}, {size} bytes"),
                );
            }
            Ok((actual, _)) => report.fail(
                CHECK_FILE_HASH,
                path,
                format!(
                    "SHA-256 mismatch for {path}: SHA256SUMS lists {}, the file has {actual}",
                    entry.sha256
                ),
            ),
            Err(err) if err.is_not_found() => report.fail(
                CHECK_FILE_HASH,
                path,
                format!("{path} is listed in SHA256SUMS but missing from the bundle"),
            ),
            Err(err) => report.fail(CHECK_FILE_HASH, path, err.to_string()),
        }
    }
}

fn check_signatures(
    dir: &Path,
    key: &VerifyingKey,
    present: &BTreeSet<&'static str>,
    report: &mut VerifyReport,
) {
    for (name, namespace) in SIGNED_FILES {
        let raw_name = format!("{name}{RAW_SIGNATURE_SUFFIX}");
        let ssh_name = format!("{name}{SSH_SIGNATURE_SUFFIX}");
        // A missing or irregular file already failed check_required_files.
        if !present.contains(name) {
            continue;
        }

        if present.contains(raw_name.as_str()) {
            let outcome = check_raw_signature_in_bundle(dir, key, name, &raw_name);
            match outcome {
                Ok(()) => report.pass(
                    CHECK_RAW_SIGNATURE,
                    &raw_name,
                    format!("Ed25519 signature over {name} verifies"),
                ),
                Err(err) => report.fail(CHECK_RAW_SIGNATURE, &raw_name, err.to_string()),
            }
        }

        if present.contains(ssh_name.as_str()) {
            let outcome = check_ssh_signature_in_bundle(dir, key, name, &ssh_name, namespace);
            match outcome {
                Ok(()) => report.pass(
                    CHECK_SSH_SIGNATURE,
                    &ssh_name,
                    format!("SSH signature over {name} verifies in namespace {namespace}"),
                ),
                Err(err) => report.fail(CHECK_SSH_SIGNATURE, &ssh_name, err.to_string()),
            }
        }
    }
}

fn check_raw_signature_in_bundle(
    dir: &Path,
    key: &VerifyingKey,
    name: &str,
    signature_name: &str,
) -> Result<()> {
    let mut signature_file = open_bundle_file(dir, signature_name)?;
    let signature_path = dir.join(signature_name);
    let len = signature_file
        .metadata()
        .map_err(io_error("read metadata of", &signature_path))?
        .len();
    // Checking the size first avoids reading a large file into memory.
    if len != 64 {
        return Err(Error::SignatureLength {
            path: PathBuf::from(signature_name),
            len,
        });
    }
    let mut signature = Vec::with_capacity(64);
    signature_file
        .read_to_end(&mut signature)
        .map_err(io_error("read", &signature_path))?;
    let message = read_bundle_file(dir, name)?;
    check_raw_signature(
        key,
        &message,
        &signature,
        Path::new(name),
        Path::new(signature_name),
    )
}

fn check_ssh_signature_in_bundle(
    dir: &Path,
    key: &VerifyingKey,
    name: &str,
    signature_name: &str,
    namespace: &str,
) -> Result<()> {
    // An Ed25519 SSHSIG armor with a clipaudit namespace is under 1 KiB, so
    // this bound only keeps a wrong file from being read into memory.
    const MAX_SSH_SIGNATURE_BYTES: u64 = 64 * 1024;

    let mut signature_file = open_bundle_file(dir, signature_name)?;
    let signature_path = dir.join(signature_name);
    let len = signature_file
        .metadata()
        .map_err(io_error("read metadata of", &signature_path))?
        .len();
    if len > MAX_SSH_SIGNATURE_BYTES {
        return Err(Error::MalformedSshSignature {
            path: PathBuf::from(signature_name),
            reason: format!(
                "the file is {len} bytes, more than the {MAX_SSH_SIGNATURE_BYTES} bytes allowed"
            ),
        });
    }
    let mut armored = Vec::new();
    signature_file
        .read_to_end(&mut armored)
        .map_err(io_error("read", &signature_path))?;

    let message = open_bundle_file(dir, name)?;
    check_ssh_signature(
        key,
        namespace,
        &armored,
        message,
        Path::new(name),
        Path::new(signature_name),
    )
}

/// Walks the bundle without following symbolic links and fails every entry
/// that is neither listed in `SHA256SUMS` nor one of [`UNLISTED_FILES`].
fn check_unlisted_entries(dir: &Path, entries: &[SumsEntry], report: &mut VerifyReport) {
    let listed: BTreeSet<&str> = entries.iter().map(|entry| entry.path.as_str()).collect();
    let mut listed_dirs: BTreeSet<&str> = BTreeSet::new();
    for path in &listed {
        for (index, c) in path.char_indices() {
            if c == '/' {
                listed_dirs.insert(&path[..index]);
            }
        }
    }

    let failures_before = report.failures().count();
    let mut pending: VecDeque<String> = VecDeque::from([String::new()]);
    while let Some(relative_dir) = pending.pop_front() {
        let absolute_dir = dir.join(&relative_dir);
        let mut children =
            match fs::read_dir(&absolute_dir).and_then(|it| it.collect::<io::Result<Vec<_>>>()) {
                Ok(children) => children,
                Err(err) => {
                    let display_path = if relative_dir.is_empty() {
                        "."
                    } else {
                        relative_dir.as_str()
                    };
                    report.fail(
                        CHECK_UNLISTED_ENTRY,
                        display_path,
                        format!("failed to list directory {display_path}: {err}"),
                    );
                    continue;
                }
            };
        children.sort_by_key(|child| child.file_name());

        for child in children {
            let file_name = child.file_name();
            let joined = |name: &str| {
                if relative_dir.is_empty() {
                    name.to_string()
                } else {
                    format!("{relative_dir}/{name}")
                }
            };
            let Some(name) = file_name.to_str() else {
                let display_path = joined(&file_name.to_string_lossy());
                report.fail(
                    CHECK_UNLISTED_ENTRY,
                    &display_path,
                    format!("unknown entry {display_path:?}: its name is not valid UTF-8"),
                );
                continue;
            };
            let path = joined(name);
            // Escape names that could disturb a terminal when printed.
            let display_path = match bundle_path_problem(&path) {
                Some(_) => format!("{path:?}"),
                None => path.clone(),
            };

            let file_type = match child.file_type() {
                Ok(file_type) => file_type,
                Err(err) => {
                    report.fail(
                        CHECK_UNLISTED_ENTRY,
                        &display_path,
                        format!("failed to read the type of {display_path}: {err}"),
                    );
                    continue;
                }
            };
            if file_type.is_dir() {
                if !listed_dirs.contains(path.as_str()) {
                    report.fail(
                        CHECK_UNLISTED_ENTRY,
                        &display_path,
                        format!(
                            "unknown directory {display_path}: SHA256SUMS lists no file inside it"
                        ),
                    );
                }
                pending.push_back(path);
                continue;
            }

            let known = listed.contains(path.as_str())
                || (relative_dir.is_empty() && UNLISTED_FILES.contains(&name));
            if known {
                // Type and content of known files are checked elsewhere.
                continue;
            }
            let detail = if file_type.is_file() {
                format!(
                    "unknown file {display_path}: it is not listed in SHA256SUMS and is not a signature or report file"
                )
            } else {
                format!(
                    "unexpected {} {display_path}: a bundle may contain only regular files listed in SHA256SUMS",
                    file_kind(&file_type)
                )
            };
            report.fail(CHECK_UNLISTED_ENTRY, &display_path, detail);
        }
    }

    if report.failures().count() == failures_before {
        report.pass(
            CHECK_UNLISTED_ENTRY,
            ".",
            "the bundle contains only listed files, SHA256SUMS, report.pdf and signature files",
        );
    }
}

fn check_signer_key_files(
    dir: &Path,
    key: &VerifyingKey,
    principal: Option<&str>,
    report: &mut VerifyReport,
) {
    for (file, outcome) in signer_key_file_results(dir, key, principal) {
        match outcome {
            Ok(detail) => report.pass(CHECK_SIGNER_KEY, file, detail),
            Err(reason) => report.fail(CHECK_SIGNER_KEY, file, reason),
        }
    }
}

/// Compares the public key files present in `dir` with `key` and, when
/// given, `principal`. Returns one outcome per present file. Absent files are
/// skipped because a bundle need not contain them.
fn signer_key_file_results(
    dir: &Path,
    key: &VerifyingKey,
    principal: Option<&str>,
) -> Vec<(&'static str, std::result::Result<String, String>)> {
    let expected_id = key_id(key);
    let mut results = Vec::new();
    for file in [
        PUBLIC_KEY_PEM_FILE,
        OPENSSH_PUBLIC_KEY_FILE,
        ALLOWED_SIGNERS_FILE,
    ] {
        let text = match read_bundle_file(dir, file) {
            Ok(bytes) => match String::from_utf8(bytes) {
                Ok(text) => text,
                Err(_) => {
                    results.push((file, Err(format!("{file} is not UTF-8 text"))));
                    continue;
                }
            },
            Err(err) if err.is_not_found() => continue,
            Err(err) => {
                results.push((file, Err(err.to_string())));
                continue;
            }
        };
        let outcome = match file {
            PUBLIC_KEY_PEM_FILE => compare_public_key_pem(&text, key, &expected_id),
            OPENSSH_PUBLIC_KEY_FILE => compare_openssh_public_key(&text, key, principal),
            _ => compare_allowed_signers(&text, key, principal),
        };
        results.push((file, outcome));
    }
    results
}

fn compare_public_key_pem(
    text: &str,
    key: &VerifyingKey,
    expected_id: &str,
) -> std::result::Result<String, String> {
    let found = parse_verifying_key_pem(text).map_err(|reason| {
        format!("{PUBLIC_KEY_PEM_FILE} is not an Ed25519 SPKI PEM public key: {reason}")
    })?;
    if &found != key {
        return Err(format!(
            "{PUBLIC_KEY_PEM_FILE} contains key id {}, but the bundle is verified with key id {expected_id}",
            key_id(&found)
        ));
    }
    Ok(format!(
        "{PUBLIC_KEY_PEM_FILE} contains the verifying key {expected_id}"
    ))
}

fn compare_openssh_public_key(
    text: &str,
    key: &VerifyingKey,
    principal: Option<&str>,
) -> std::result::Result<String, String> {
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let line = match (lines.next(), lines.next()) {
        (Some(line), None) => line,
        _ => {
            return Err(format!(
                "{OPENSSH_PUBLIC_KEY_FILE} must contain exactly one key line"
            ));
        }
    };
    let (found, comment) = parse_openssh_public_key(line).map_err(|err| err.to_string())?;
    if &found != key {
        return Err(format!(
            "{OPENSSH_PUBLIC_KEY_FILE} contains key {}, but the bundle is verified with key {}",
            openssh_fingerprint(&found),
            openssh_fingerprint(key)
        ));
    }
    let wrong_principal = principal.filter(|expected| comment.as_deref() != Some(*expected));
    if let Some(expected) = wrong_principal {
        return Err(format!(
            "{OPENSSH_PUBLIC_KEY_FILE} names principal {:?}, expected {expected:?}",
            comment.unwrap_or_default()
        ));
    }
    Ok(format!(
        "{OPENSSH_PUBLIC_KEY_FILE} contains the verifying key {}",
        openssh_fingerprint(key)
    ))
}

fn compare_allowed_signers(
    text: &str,
    key: &VerifyingKey,
    principal: Option<&str>,
) -> std::result::Result<String, String> {
    let signers = parse_allowed_signers(text)
        .map_err(|reason| format!("{ALLOWED_SIGNERS_FILE} is malformed: {reason}"))?;
    if signers.is_empty() {
        return Err(format!("{ALLOWED_SIGNERS_FILE} contains no signer"));
    }
    for signer in &signers {
        if &signer.key != key {
            return Err(format!(
                "{ALLOWED_SIGNERS_FILE} trusts key {} for {}, but the bundle is verified with key {}",
                openssh_fingerprint(&signer.key),
                signer.principals.join(","),
                openssh_fingerprint(key)
            ));
        }
        if let Some(namespaces) = &signer.namespaces {
            for required in [MANIFEST_NAMESPACE, REPORT_NAMESPACE] {
                if !namespaces.iter().any(|namespace| namespace == required) {
                    return Err(format!(
                        "{ALLOWED_SIGNERS_FILE} does not allow namespace {required} for {}",
                        signer.principals.join(",")
                    ));
                }
            }
        }
    }
    if let Some(principal) = principal {
        let named = signers
            .iter()
            .any(|signer| signer.principals.iter().any(|name| name == principal));
        if !named {
            return Err(format!(
                "{ALLOWED_SIGNERS_FILE} does not name principal {principal:?}"
            ));
        }
    }
    Ok(format!(
        "{ALLOWED_SIGNERS_FILE} trusts only the verifying key"
    ))
}

#[cfg(test)]
mod tests {
    use super::super::signing::test_tools::{assert_success, openssl, sha256sum, ssh_keygen};
    use super::super::signing::{generate_signing_key, write_public_key_files};
    use super::*;
    use std::os::unix::fs::symlink;

    const PRINCIPAL: &str = "auditor@example.org";

    const LISTED: [&str; 9] = [
        "manifest.json",
        "metrics.json",
        "config.toml",
        "charts/loss.svg",
        "charts/accuracy.svg",
        "data/sample.parquet",
        "signer.pub.pem",
        "signer.pub",
        "allowed_signers",
    ];

    struct Bundle {
        // Keeps the directory alive. The bundle is `root/bundle`, so that
        // tests can place files next to it, outside the bundle.
        _temp: tempfile::TempDir,
        root: PathBuf,
        key: SigningKey,
    }

    impl Bundle {
        fn verify(&self) -> VerifyReport {
            verify_bundle(&self.root, &self.key.verifying_key(), Some(PRINCIPAL))
        }

        fn path(&self, relative: &str) -> PathBuf {
            self.root.join(relative)
        }
    }

    fn write(path: &Path, contents: &[u8]) {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, contents).unwrap();
    }

    /// Builds a complete signed bundle with the clipaudit layout.
    fn build_bundle() -> Bundle {
        let temp = tempfile::tempdir().unwrap();
        let root = temp.path().join("bundle");
        let key = generate_signing_key().unwrap();

        write(
            &root.join("manifest.json"),
            b"{\n  \"dataset\": \"clips-v2\",\n  \"rows\": 1200\n}\n",
        );
        write(&root.join("metrics.json"), b"{\"accuracy\": 0.93}\n");
        write(&root.join("config.toml"), b"[run]\nseed = 7\n");
        write(
            &root.join("charts/loss.svg"),
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>\n",
        );
        write(
            &root.join("charts/accuracy.svg"),
            b"<svg xmlns=\"http://www.w3.org/2000/svg\"><g/></svg>\n",
        );
        // Larger than the 64 KiB hash buffer, so hashing takes several reads.
        let parquet: Vec<u8> = (0..200_000u32).map(|i| (i * 31 % 251) as u8).collect();
        write(&root.join("data/sample.parquet"), &parquet);
        write_public_key_files(&root, &key.verifying_key(), PRINCIPAL).unwrap();

        let entries = write_sha256sums(&root, &LISTED).unwrap();
        assert_eq!(entries.len(), LISTED.len());

        let sums = fs::read(root.join(SHA256SUMS_FILE)).unwrap();
        let mut report = b"%PDF-1.7\n% embedded SHA256SUMS follows\n".to_vec();
        report.extend_from_slice(&sums);
        report.extend_from_slice(b"%%EOF\n");
        write(&root.join(REPORT_FILE), &report);

        let written = sign_bundle(&root, &key, PRINCIPAL).unwrap();
        assert_eq!(written.len(), 6);
        Bundle {
            _temp: temp,
            root,
            key,
        }
    }

    /// Returns every file in the bundle as a relative path, sorted.
    fn bundle_files(root: &Path) -> Vec<String> {
        let mut files = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(relative) = pending.pop() {
            for entry in fs::read_dir(root.join(&relative)).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                let path = if relative.is_empty() {
                    name
                } else {
                    format!("{relative}/{name}")
                };
                if entry.file_type().unwrap().is_dir() {
                    pending.push(path);
                } else {
                    files.push(path);
                }
            }
        }
        files.sort();
        files
    }

    fn describe(report: &VerifyReport) -> String {
        report
            .failures()
            .map(|check| format!("  [{}] {}: {}", check.name, check.file, check.detail))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Asserts that verification failed and that a failed check names `file`,
    /// in its `file` field or in its detail.
    fn assert_fails_naming(report: &VerifyReport, file: &str) {
        assert!(!report.passed(), "bundle passed although {file} is wrong");
        let named = report
            .failures()
            .any(|check| check.file == file || check.detail.contains(file));
        assert!(
            named,
            "no failed check names {file}; failures:\n{}",
            describe(report)
        );
    }

    fn assert_failed_check(report: &VerifyReport, name: &str, file: &str, detail_part: &str) {
        let found = report.failures().any(|check| {
            check.name == name && check.file == file && check.detail.contains(detail_part)
        });
        assert!(
            found,
            "expected failed [{name}] check on {file} containing {detail_part:?}; failures:\n{}",
            describe(report)
        );
    }

    #[test]
    fn unlisted_file_names_match_suffixes() {
        for (name, _) in SIGNED_FILES {
            // manifest.json is signed and also listed in SHA256SUMS.
            assert_eq!(
                UNLISTED_FILES.contains(&name),
                name != MANIFEST_FILE,
                "{name}"
            );
            assert!(UNLISTED_FILES.contains(&format!("{name}{RAW_SIGNATURE_SUFFIX}").as_str()));
            assert!(UNLISTED_FILES.contains(&format!("{name}{SSH_SIGNATURE_SUFFIX}").as_str()));
        }
    }

    #[test]
    fn built_bundle_verifies() {
        let bundle = build_bundle();
        let report = bundle.verify();
        assert!(report.passed(), "failures:\n{}", describe(&report));

        let count = |name: &str| {
            report
                .checks
                .iter()
                .filter(|check| check.name == name)
                .count()
        };
        assert_eq!(count(CHECK_FILE_HASH), LISTED.len());
        assert_eq!(count(CHECK_RAW_SIGNATURE), 3);
        assert_eq!(count(CHECK_SSH_SIGNATURE), 3);
        assert_eq!(count(CHECK_SIGNER_KEY), 3);
        assert_eq!(count(CHECK_REQUIRED_FILE), 9);
        assert_eq!(report.key_id, key_id(&bundle.key.verifying_key()));

        let mut expected: Vec<String> = LISTED
            .iter()
            .chain(UNLISTED_FILES.iter())
            .map(|name| name.to_string())
            .collect();
        expected.sort();
        assert_eq!(bundle_files(&bundle.root), expected);
    }

    #[test]
    fn external_tools_verify_bundle() {
        let bundle = build_bundle();
        for (name, namespace) in SIGNED_FILES {
            let output = openssl(
                &[
                    "pkeyutl",
                    "-verify",
                    "-pubin",
                    "-inkey",
                    "signer.pub.pem",
                    "-rawin",
                    "-in",
                    name,
                    "-sigfile",
                    &format!("{name}.sig"),
                ],
                b"",
                &bundle.root,
            );
            assert_success(&output, &format!("openssl pkeyutl -verify {name}"));

            let contents = fs::read(bundle.path(name)).unwrap();
            let output = ssh_keygen(
                &[
                    "-Y",
                    "verify",
                    "-f",
                    "allowed_signers",
                    "-I",
                    PRINCIPAL,
                    "-n",
                    namespace,
                    "-s",
                    &format!("{name}.sshsig"),
                ],
                &contents,
                &bundle.root,
            );
            assert_success(&output, &format!("ssh-keygen -Y verify {name}"));
        }
    }

    #[test]
    fn sha256sum_tool_accepts_sums() {
        let bundle = build_bundle();
        let output = sha256sum(&["-c", "--strict", SHA256SUMS_FILE], b"", &bundle.root);
        assert_success(&output, "sha256sum -c SHA256SUMS");
        let stdout = String::from_utf8(output.stdout).unwrap();
        for name in LISTED {
            assert!(stdout.contains(&format!("{name}: OK\n")), "{stdout}");
        }

        // The same check must fail once a listed file changes.
        let metrics = bundle.path("metrics.json");
        let mut bytes = fs::read(&metrics).unwrap();
        bytes[0] ^= 0x01;
        fs::write(&metrics, bytes).unwrap();
        let output = sha256sum(&["-c", "--strict", SHA256SUMS_FILE], b"", &bundle.root);
        assert!(
            !output.status.success(),
            "sha256sum accepted a changed file"
        );
    }

    #[test]
    fn sha256sums_match_tag_format() {
        let bundle = build_bundle();
        let output = sha256sum(
            &["--tag", "charts/loss.svg", "manifest.json"],
            b"",
            &bundle.root,
        );
        assert_success(&output, "sha256sum --tag");
        let tool_lines = String::from_utf8(output.stdout).unwrap();
        let sums = fs::read_to_string(bundle.path(SHA256SUMS_FILE)).unwrap();
        for line in tool_lines.lines() {
            assert!(
                sums.contains(&format!("{line}\n")),
                "{line:?} missing from:\n{sums}"
            );
        }
    }

    #[test]
    fn one_byte_change_fails_each_file() {
        let bundle = build_bundle();
        let files = bundle_files(&bundle.root);
        assert_eq!(files.len(), LISTED.len() + UNLISTED_FILES.len());

        for file in &files {
            let path = bundle.path(file);
            let original = fs::read(&path).unwrap();
            for index in [0, original.len() / 2, original.len() - 1] {
                let mut changed = original.clone();
                changed[index] ^= 0x01;
                fs::write(&path, &changed).unwrap();

                let report = bundle.verify();
                assert!(
                    !report.passed(),
                    "changing byte {index} of {file} was not detected"
                );
                assert_fails_naming(&report, file);
            }
            fs::write(&path, &original).unwrap();
        }

        let report = bundle.verify();
        assert!(
            report.passed(),
            "restored bundle fails:\n{}",
            describe(&report)
        );
    }

    #[test]
    fn hash_mismatch_names_both_hashes() {
        let bundle = build_bundle();
        let path = bundle.path("charts/loss.svg");
        let (expected, _) = sha256_file(&path).unwrap();
        fs::write(&path, b"<svg/>\n").unwrap();
        let (actual, _) = sha256_file(&path).unwrap();

        let report = bundle.verify();
        assert_failed_check(&report, CHECK_FILE_HASH, "charts/loss.svg", &expected);
        assert_failed_check(&report, CHECK_FILE_HASH, "charts/loss.svg", &actual);
    }

    #[test]
    fn extra_entries_fail() {
        let cases: [(&str, &str); 4] = [
            ("notes.txt", "unknown file notes.txt"),
            ("charts/extra.svg", "unknown file charts/extra.svg"),
            (".hidden", "unknown file .hidden"),
            ("unlisted/deep/file.bin", "unknown directory unlisted"),
        ];
        for (extra, expected_detail) in cases {
            let bundle = build_bundle();
            write(&bundle.path(extra), b"extra\n");
            let report = bundle.verify();
            assert_failed_check(&report, CHECK_UNLISTED_ENTRY, extra, "unknown file");
            assert!(
                report
                    .failures()
                    .any(|check| check.detail.contains(expected_detail)),
                "{extra}: no failure contains {expected_detail:?}:\n{}",
                describe(&report)
            );
        }

        let bundle = build_bundle();
        fs::create_dir(bundle.path("empty")).unwrap();
        assert_failed_check(
            &bundle.verify(),
            CHECK_UNLISTED_ENTRY,
            "empty",
            "unknown directory",
        );

        // A signature-like name below the top level is not a known file.
        let bundle = build_bundle();
        write(&bundle.path("charts/report.pdf"), b"%PDF\n");
        assert_failed_check(
            &bundle.verify(),
            CHECK_UNLISTED_ENTRY,
            "charts/report.pdf",
            "unknown file",
        );
    }

    #[test]
    fn file_name_with_newline_is_escaped() {
        let bundle = build_bundle();
        write(&bundle.path("bad\nname"), b"x");
        let report = bundle.verify();
        assert_failed_check(
            &report,
            CHECK_UNLISTED_ENTRY,
            "\"bad\\nname\"",
            "unknown file",
        );
    }

    #[test]
    fn missing_files_fail() {
        let files = bundle_files(&build_bundle().root);
        for file in &files {
            let bundle = build_bundle();
            fs::remove_file(bundle.path(file)).unwrap();
            let report = bundle.verify();
            assert_fails_naming(&report, file);
            if LISTED.contains(&file.as_str()) {
                assert_failed_check(&report, CHECK_FILE_HASH, file, "missing");
            } else {
                assert_failed_check(&report, CHECK_REQUIRED_FILE, file, "missing");
            }
        }

        let bundle = build_bundle();
        fs::remove_dir_all(bundle.path("charts")).unwrap();
        let report = bundle.verify();
        assert_failed_check(&report, CHECK_FILE_HASH, "charts/loss.svg", "missing");
        assert_failed_check(&report, CHECK_FILE_HASH, "charts/accuracy.svg", "missing");
    }

    #[test]
    fn symlinks_fail() {
        // An extra symbolic link to a listed file.
        let bundle = build_bundle();
        symlink("manifest.json", bundle.path("alias.json")).unwrap();
        assert_failed_check(
            &bundle.verify(),
            CHECK_UNLISTED_ENTRY,
            "alias.json",
            "symbolic link",
        );

        // A listed file replaced by a link to an identical copy outside the
        // bundle: the hash matches, but the link must still fail.
        let bundle = build_bundle();
        let outside = bundle.root.parent().unwrap().join("metrics-copy.json");
        fs::copy(bundle.path("metrics.json"), &outside).unwrap();
        fs::remove_file(bundle.path("metrics.json")).unwrap();
        symlink(&outside, bundle.path("metrics.json")).unwrap();
        assert_failed_check(
            &bundle.verify(),
            CHECK_FILE_HASH,
            "metrics.json",
            "symbolic link",
        );

        // A listed directory replaced by a link to a copy outside the bundle.
        let bundle = build_bundle();
        let outside = bundle.root.parent().unwrap().join("charts-copy");
        fs::create_dir(&outside).unwrap();
        for name in ["loss.svg", "accuracy.svg"] {
            fs::copy(bundle.path(&format!("charts/{name}")), outside.join(name)).unwrap();
        }
        fs::remove_dir_all(bundle.path("charts")).unwrap();
        symlink(&outside, bundle.path("charts")).unwrap();
        let report = bundle.verify();
        assert_failed_check(&report, CHECK_FILE_HASH, "charts/loss.svg", "symbolic link");
        assert_failed_check(&report, CHECK_UNLISTED_ENTRY, "charts", "symbolic link");

        // A signature file replaced by a link to itself moved aside.
        let bundle = build_bundle();
        let moved = bundle.root.parent().unwrap().join("report.pdf.sig");
        fs::rename(bundle.path("report.pdf.sig"), &moved).unwrap();
        symlink(&moved, bundle.path("report.pdf.sig")).unwrap();
        assert_failed_check(
            &bundle.verify(),
            CHECK_REQUIRED_FILE,
            "report.pdf.sig",
            "symbolic link",
        );
    }

    #[test]
    fn named_pipe_fails() {
        let bundle = build_bundle();
        let output = super::super::signing::test_tools::run(
            "mkfifo",
            "coreutils",
            &["pipe"],
            b"",
            &bundle.root,
        );
        assert_success(&output, "mkfifo");
        // Verification must not open the pipe, which would block forever.
        assert_failed_check(&bundle.verify(), CHECK_UNLISTED_ENTRY, "pipe", "named pipe");
    }

    #[test]
    fn wrong_verifying_key_fails() {
        let bundle = build_bundle();
        let other = generate_signing_key().unwrap().verifying_key();
        let report = verify_bundle(&bundle.root, &other, Some(PRINCIPAL));
        assert!(!report.passed());

        for (name, _) in SIGNED_FILES {
            assert_failed_check(
                &report,
                CHECK_RAW_SIGNATURE,
                &format!("{name}.sig"),
                "does not verify",
            );
            assert_failed_check(
                &report,
                CHECK_SSH_SIGNATURE,
                &format!("{name}.sshsig"),
                "was made by key",
            );
        }
        assert_failed_check(&report, CHECK_SIGNER_KEY, PUBLIC_KEY_PEM_FILE, "key id");
        assert_failed_check(
            &report,
            CHECK_SIGNER_KEY,
            OPENSSH_PUBLIC_KEY_FILE,
            "contains key",
        );
        assert_failed_check(
            &report,
            CHECK_SIGNER_KEY,
            ALLOWED_SIGNERS_FILE,
            "trusts key",
        );
    }

    #[test]
    fn ssh_signature_wrong_namespace_fails() {
        let bundle = build_bundle();
        let message = fs::read(bundle.path(REPORT_FILE)).unwrap();
        let armored = sign_ssh(&bundle.key, MANIFEST_NAMESPACE, &message).unwrap();
        fs::write(bundle.path("report.pdf.sshsig"), armored).unwrap();

        let report = bundle.verify();
        assert_eq!(
            report.failures().count(),
            1,
            "failures:\n{}",
            describe(&report)
        );
        assert_failed_check(
            &report,
            CHECK_SSH_SIGNATURE,
            "report.pdf.sshsig",
            "namespace",
        );
    }

    #[test]
    fn oversized_signature_files_fail() {
        let bundle = build_bundle();
        let padding = vec![b'A'; 70 * 1024];
        fs::write(bundle.path("report.pdf.sshsig"), &padding).unwrap();
        fs::write(bundle.path("report.pdf.sig"), &padding[..65]).unwrap();

        let report = bundle.verify();
        assert_failed_check(
            &report,
            CHECK_SSH_SIGNATURE,
            "report.pdf.sshsig",
            "more than the 65536 bytes",
        );
        assert_failed_check(
            &report,
            CHECK_RAW_SIGNATURE,
            "report.pdf.sig",
            "65 bytes long",
        );
    }

    #[test]
    fn replaced_signer_pem_fails() {
        // A bundle signed correctly but carrying another public key PEM,
        // listed with its correct hash.
        let bundle = build_bundle();
        let other = generate_signing_key().unwrap().verifying_key();
        fs::write(
            bundle.path(PUBLIC_KEY_PEM_FILE),
            super::super::signing::public_key_pem(&other),
        )
        .unwrap();
        write_sha256sums(&bundle.root, &LISTED).unwrap();
        // sign_bundle rejects the mismatched key file, so sign by hand.
        for (name, namespace) in SIGNED_FILES {
            let message = fs::read(bundle.path(name)).unwrap();
            fs::write(
                bundle.path(&format!("{name}.sig")),
                sign_raw(&bundle.key, &message),
            )
            .unwrap();
            let armored = sign_ssh(&bundle.key, namespace, &message).unwrap();
            fs::write(bundle.path(&format!("{name}.sshsig")), armored).unwrap();
        }

        let report = bundle.verify();
        assert_eq!(
            report.failures().count(),
            1,
            "failures:\n{}",
            describe(&report)
        );
        assert_failed_check(
            &report,
            CHECK_SIGNER_KEY,
            PUBLIC_KEY_PEM_FILE,
            &key_id(&other),
        );
    }

    #[test]
    fn principal_mismatch_fails() {
        let bundle = build_bundle();
        let report = verify_bundle(
            &bundle.root,
            &bundle.key.verifying_key(),
            Some("someone-else"),
        );
        assert_failed_check(
            &report,
            CHECK_SIGNER_KEY,
            OPENSSH_PUBLIC_KEY_FILE,
            "someone-else",
        );
        assert_failed_check(
            &report,
            CHECK_SIGNER_KEY,
            ALLOWED_SIGNERS_FILE,
            "someone-else",
        );

        let report = verify_bundle(&bundle.root, &bundle.key.verifying_key(), None);
        assert!(report.passed(), "failures:\n{}", describe(&report));
    }

    /// Replaces SHA256SUMS with `text` and re-signs, so that only the
    /// listing itself is wrong.
    fn resign_with_sums(bundle: &Bundle, text: &str) {
        fs::write(bundle.path(SHA256SUMS_FILE), text).unwrap();
        sign_bundle(&bundle.root, &bundle.key, PRINCIPAL).unwrap();
    }

    #[test]
    fn sums_path_leaving_bundle_fails() {
        let bundle = build_bundle();
        let outside = bundle.root.parent().unwrap().join("outside.txt");
        fs::write(&outside, b"outside\n").unwrap();
        let (outside_hash, _) = sha256_file(&outside).unwrap();

        let sums = fs::read_to_string(bundle.path(SHA256SUMS_FILE)).unwrap();
        for bad_path in [
            "../outside.txt",
            "/etc/hostname",
            "charts/../../outside.txt",
        ] {
            let text = format!("SHA256 ({bad_path}) = {outside_hash}\n{sums}");
            resign_with_sums(&bundle, &text);
            let report = bundle.verify();
            assert_failed_check(&report, CHECK_SHA256SUMS, SHA256SUMS_FILE, "line 1:");
            assert_failed_check(&report, CHECK_SHA256SUMS, SHA256SUMS_FILE, bad_path);
            assert!(
                !report.checks.iter().any(|check| check.file == bad_path),
                "{bad_path} was hashed although it leaves the bundle"
            );
        }
    }

    #[test]
    fn sums_listing_unlisted_file_fails() {
        let bundle = build_bundle();
        let (hash, _) = sha256_file(&bundle.path(REPORT_FILE)).unwrap();
        let sums = fs::read_to_string(bundle.path(SHA256SUMS_FILE)).unwrap();
        let mut entries = parse_sha256sums(sums.as_bytes()).unwrap();
        entries.push(SumsEntry {
            path: REPORT_FILE.to_string(),
            sha256: hash,
        });
        resign_with_sums(&bundle, &format_sha256sums(&entries).unwrap());
        assert_failed_check(
            &bundle.verify(),
            CHECK_SHA256SUMS,
            SHA256SUMS_FILE,
            "must never be listed",
        );
    }

    #[test]
    fn sums_without_manifest_fails() {
        let bundle = build_bundle();
        let sums = fs::read_to_string(bundle.path(SHA256SUMS_FILE)).unwrap();
        let entries: Vec<SumsEntry> = parse_sha256sums(sums.as_bytes())
            .unwrap()
            .into_iter()
            .filter(|entry| entry.path != MANIFEST_FILE)
            .collect();
        resign_with_sums(&bundle, &format_sha256sums(&entries).unwrap());
        let report = bundle.verify();
        assert_failed_check(
            &report,
            CHECK_SHA256SUMS,
            SHA256SUMS_FILE,
            "does not list manifest.json",
        );
        assert_failed_check(&report, CHECK_UNLISTED_ENTRY, MANIFEST_FILE, "unknown file");
    }

    #[test]
    fn missing_bundle_directory_fails() {
        let temp = tempfile::tempdir().unwrap();
        let key = generate_signing_key().unwrap().verifying_key();
        let report = verify_bundle(&temp.path().join("absent"), &key, None);
        assert!(!report.passed());
        assert_failed_check(&report, CHECK_BUNDLE_DIRECTORY, ".", "failed to read");

        let report = verify_bundle(temp.path(), &key, None);
        assert!(!report.passed(), "an empty directory passed");
        assert_failed_check(&report, CHECK_REQUIRED_FILE, SHA256SUMS_FILE, "missing");
    }

    #[test]
    fn sign_bundle_rejects_foreign_key_files() {
        let bundle = build_bundle();
        let other = generate_signing_key().unwrap();
        let err = sign_bundle(&bundle.root, &other, PRINCIPAL).unwrap_err();
        assert!(matches!(err, Error::PublicKeyFileMismatch { .. }), "{err}");

        let err = sign_bundle(&bundle.root, &bundle.key, "someone-else").unwrap_err();
        assert!(matches!(err, Error::PublicKeyFileMismatch { .. }), "{err}");
        assert!(err.to_string().contains("someone-else"), "{err}");
    }

    #[test]
    fn sums_round_trip() {
        let entries = vec![
            SumsEntry {
                path: "b.txt".into(),
                sha256: "1".repeat(64),
            },
            SumsEntry {
                path: "a/z.svg".into(),
                sha256: "a".repeat(64),
            },
            SumsEntry {
                path: "B.txt".into(),
                sha256: "f".repeat(64),
            },
            SumsEntry {
                path: "a b (1) = x.txt".into(),
                sha256: "0".repeat(64),
            },
        ];
        let text = format_sha256sums(&entries).unwrap();
        let expected = format!(
            "SHA256 (B.txt) = {}\nSHA256 (a b (1) = x.txt) = {}\nSHA256 (a/z.svg) = {}\nSHA256 (b.txt) = {}\n",
            "f".repeat(64),
            "0".repeat(64),
            "a".repeat(64),
            "1".repeat(64)
        );
        assert_eq!(text, expected);

        let parsed = parse_sha256sums(text.as_bytes()).unwrap();
        let paths: Vec<&str> = parsed.iter().map(|entry| entry.path.as_str()).collect();
        assert_eq!(paths, ["B.txt", "a b (1) = x.txt", "a/z.svg", "b.txt"]);
        assert_eq!(parse_sha256sums(b"").unwrap(), Vec::new());
    }

    #[test]
    fn sums_parser_rejects_malformed() {
        let hash = "0".repeat(64);
        let good = format!("SHA256 (a.txt) = {hash}\n");
        let cases: Vec<(String, usize, &str)> = vec![
            (format!("{good}SHA256 (b.txt) = {hash}"), 2, "newline"),
            (
                format!("{good}SHA256 (b.txt) = {hash}\r\n"),
                2,
                "carriage return",
            ),
            (format!("{good}\n"), 2, "empty"),
            (
                format!("{good}{hash}  b.txt\n"),
                2,
                "expected `SHA256 (PATH) = HASH`",
            ),
            (format!("{good}SHA256(b.txt) = {hash}\n"), 2, "expected"),
            (
                format!("{good}SHA256 (b.txt) = {}\n", "0".repeat(63)),
                2,
                "64 lowercase hex",
            ),
            (
                format!("{good}SHA256 (b.txt) = {}\n", "A".repeat(64)),
                2,
                "uppercase",
            ),
            (
                format!("{good}SHA256 (b.txt) = {}\n", "g".repeat(64)),
                2,
                "64 lowercase hex",
            ),
            (format!("SHA256 (/etc/passwd) = {hash}\n"), 1, "absolute"),
            (format!("SHA256 (../x) = {hash}\n"), 1, "`..`"),
            (format!("{good}SHA256 (b/../../x) = {hash}\n"), 2, "`..`"),
            (format!("SHA256 (./a.txt) = {hash}\n"), 1, "`.` component"),
            (format!("SHA256 (a//b) = {hash}\n"), 1, "empty component"),
            (format!("SHA256 () = {hash}\n"), 1, "empty"),
            (format!("SHA256 (a\\b) = {hash}\n"), 1, "backslash"),
            (format!("\\SHA256 (a\\nb) = {hash}\n"), 1, "backslash"),
            (format!("SHA256 (a\tb) = {hash}\n"), 1, "control character"),
            (format!("{good}{good}"), 2, "listed twice, first on line 1"),
            (
                format!("SHA256 (b.txt) = {hash}\n{good}"),
                2,
                "out of order",
            ),
            (format!("MD5 (a.txt) = {hash}\n"), 1, "expected"),
        ];
        for (text, line, reason) in cases {
            match parse_sha256sums(text.as_bytes()) {
                Err(Error::Sha256SumsSyntax {
                    line: found_line,
                    reason: found_reason,
                }) => {
                    assert_eq!(found_line, line, "{text:?}: {found_reason}");
                    assert!(found_reason.contains(reason), "{text:?}: {found_reason}");
                }
                other => panic!("{text:?}: expected a syntax error, got {other:?}"),
            }
        }

        let mut invalid_utf8 = good.into_bytes();
        invalid_utf8.extend_from_slice(b"SHA256 (\xff) = ");
        invalid_utf8.extend_from_slice(hash.as_bytes());
        invalid_utf8.push(b'\n');
        let err = parse_sha256sums(&invalid_utf8).unwrap_err();
        assert!(err.to_string().starts_with("SHA256SUMS line 2: "), "{err}");
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    #[test]
    fn write_sums_rejects_bad_paths() {
        let bundle = build_bundle();
        symlink("metrics.json", bundle.path("link.json")).unwrap();
        fs::create_dir(bundle.path("dir")).unwrap();

        let cases: [(&[&str], &str); 7] = [
            (&["../x"], "`..`"),
            (&["/abs"], "absolute"),
            (&["report.pdf"], "never listed"),
            (&["SHA256SUMS"], "never listed"),
            (&["metrics.json", "metrics.json"], "listed twice"),
            (&["link.json"], "symbolic link"),
            (&["dir"], "a directory"),
        ];
        for (paths, reason) in cases {
            let err = write_sha256sums(&bundle.root, paths).unwrap_err();
            assert!(err.to_string().contains(reason), "{paths:?}: {err}");
        }
        let err = write_sha256sums(&bundle.root, &["absent.json"]).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
    }

    #[test]
    fn sha256_file_matches_tool() {
        let temp = tempfile::tempdir().unwrap();
        for size in [0usize, 1, 65_535, 65_536, 65_537, 300_001] {
            let path = temp.path().join(format!("file-{size}"));
            let contents: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            fs::write(&path, &contents).unwrap();

            let (hash, length) = sha256_file(&path).unwrap();
            assert_eq!(length, size as u64);
            let output = sha256sum(
                &[path.file_name().unwrap().to_str().unwrap()],
                b"",
                temp.path(),
            );
            assert_success(&output, "sha256sum");
            let stdout = String::from_utf8(output.stdout).unwrap();
            assert_eq!(
                stdout.split_whitespace().next(),
                Some(hash.as_str()),
                "size {size}"
            );
        }
    }

    #[test]
    fn hashing_reader_hashes_bytes_read() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i % 7) as u8).collect();
        let mut reader = HashingReader::new(&data[..]);
        let mut prefix = vec![0u8; 1000];
        reader.read_exact(&mut prefix).unwrap();
        assert_eq!(reader.bytes_read(), 1000);

        let mut rest = Vec::new();
        reader.read_to_end(&mut rest).unwrap();
        let (hash, length) = reader.finish();
        assert_eq!(length, data.len() as u64);
        assert_eq!(hash, hex_encode(&Sha256::digest(&data)));

        let mut partial = HashingReader::new(&data[..]);
        partial.read_exact(&mut prefix).unwrap();
        assert_eq!(
            partial.finish().0,
            hex_encode(&Sha256::digest(&data[..1000]))
        );
    }
}

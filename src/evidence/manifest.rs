//! The lineage manifest: what was read, what was written, with which parameters, in which order.
//!
//! Serialisation is deterministic: struct fields in declaration order, maps sorted, paths with
//! `/` separators, times from `SOURCE_DATE_EPOCH` when it is set.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};

pub const SCHEMA_VERSION: &str = "clipaudit-manifest/1";

/// A file with its hash, as listed in the manifest.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct FileEntry {
    /// Relative to the config's folder for inputs, to the bundle for outputs.
    pub path: String,
    pub size: u64,
    pub sha256: String,
    pub media_type: String,
    pub role: String,
}

/// One step of the run, in order.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub name: String,
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub parameters: Value,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
    pub build: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Environment {
    pub os: &'static str,
    pub arch: &'static str,
    pub cpu: String,
    pub threads: usize,
    pub device: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConfigEntry {
    pub path: String,
    pub sha256: String,
    /// The configuration as parsed, so the manifest alone records the request.
    pub content: Value,
}

/// The signer of the bundle.
#[derive(Debug, Clone, Serialize)]
pub struct Signer {
    pub principal: String,
    /// Lowercase hex SHA-256 of the public key's SPKI DER.
    pub key_id: String,
    pub openssh_fingerprint: String,
    /// True for a throwaway key made for this run: the signatures then show integrity, not origin.
    pub ephemeral: bool,
}

/// The manifest as written to `manifest.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    pub schema_version: &'static str,
    pub tool: Tool,
    pub run_id: String,
    pub started_at: String,
    pub finished_at: String,
    pub config: ConfigEntry,
    pub signer: Signer,
    pub inputs: Vec<FileEntry>,
    pub model_files: BTreeMap<String, String>,
    pub outputs: Vec<FileEntry>,
    pub parameters: Value,
    pub steps: Vec<Step>,
    pub environment: Environment,
    /// Files in the bundle that the manifest cannot list by hash, and why.
    pub unlisted: BTreeMap<&'static str, &'static str>,
}

impl Tool {
    pub fn current() -> Tool {
        Tool {
            name: "clipaudit",
            version: env!("CARGO_PKG_VERSION"),
            build: format!("{} {}", if cfg!(debug_assertions) { "debug" } else { "release" }, std::env::consts::ARCH),
        }
    }
}

impl Environment {
    pub fn current(device: &str) -> Environment {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|text| {
                text.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| "unknown".into());
        Environment {
            os: std::env::consts::OS,
            arch: std::env::consts::ARCH,
            cpu,
            threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
            device: device.to_string(),
        }
    }
}

/// Hashes the bundle file at `dir/relative` into a manifest entry.
pub fn output_entry(dir: &Path, relative: &str, role: &str) -> Result<FileEntry> {
    let path = dir.join(relative);
    let bytes = std::fs::read(&path).map_err(|e| Error::io("read", &path, e))?;
    Ok(FileEntry {
        path: relative.to_string(),
        size: bytes.len() as u64,
        sha256: crate::embed::sha256_hex(&bytes),
        media_type: media_type(relative).to_string(),
        role: role.to_string(),
    })
}

/// Returns the media type of a bundle file by its extension.
pub fn media_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("json") => "application/json",
        Some("parquet") => "application/vnd.apache.parquet",
        Some("svg") => "image/svg+xml",
        Some("toml") => "application/toml",
        Some("pem") => "application/x-pem-file",
        Some("pdf") => "application/pdf",
        Some("csv") => "text/csv",
        _ => "text/plain",
    }
}

/// The run's clock: `SOURCE_DATE_EPOCH` when set (for reproducible bundles), else the system time.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub fixed: Option<i64>,
}

impl Clock {
    pub fn from_env() -> Result<Clock> {
        match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(v) => v.trim().parse::<i64>().map(|s| Clock { fixed: Some(s) }).map_err(|_| {
                Error::input_hint(format!("SOURCE_DATE_EPOCH=`{v}` is not a whole number of seconds"), "set it to a Unix time such as 1767225600, or unset it")
            }),
            Err(_) => Ok(Clock { fixed: None }),
        }
    }

    /// Seconds since the Unix epoch.
    pub fn now(&self) -> i64 {
        self.fixed.unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
        })
    }
}

/// RFC 3339 UTC time of `seconds` since the epoch, e.g. `2026-12-04T20:11:54Z`.
pub fn rfc3339(seconds: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    t.format(&time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z")).unwrap_or_default()
}

/// (year, month, day, hour, minute, second) in UTC of `seconds` since the epoch.
pub fn civil(seconds: i64) -> (i32, u8, u8, u8, u8, u8) {
    let t = time::OffsetDateTime::from_unix_timestamp(seconds).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    (t.year(), t.month() as u8, t.day(), t.hour(), t.minute(), t.second())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        // 2026-12-04 20:11:54 UTC.
        assert_eq!(rfc3339(1_796_415_114), "2026-12-04T20:11:54Z");
        assert_eq!(civil(1_796_415_114), (2026, 12, 4, 20, 11, 54));
    }
}

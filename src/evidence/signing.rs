//! Ed25519 signer keys and the two signature formats of an evidence bundle.
//!
//! Formats written and read here:
//! - private key: unencrypted PKCS#8 v1 PEM (RFC 8410), the form that
//!   `openssl genpkey -algorithm ed25519` writes.
//! - public key: SubjectPublicKeyInfo PEM, and an OpenSSH `ssh-ed25519` line
//!   whose key blob is `string "ssh-ed25519" || string key` (RFC 8709). An
//!   RFC 4253 `string` is a big-endian u32 length followed by the bytes.
//! - `FILE.sig`: the 64-byte pure Ed25519 signature (RFC 8032) over the file bytes.
//! - `FILE.sshsig`: an armored SSHSIG signature as specified in OpenSSH's
//!   PROTOCOL.sshsig, which `ssh-keygen -Y verify` checks.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD};
use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{
    DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey, KeypairBytes,
};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256, Sha512};

/// Principal written into `signer.pub` and `allowed_signers` when none is given.
pub const DEFAULT_PRINCIPAL: &str = "clipaudit-signer";
/// SSHSIG namespace for `manifest.json` and `SHA256SUMS`.
pub const MANIFEST_NAMESPACE: &str = "clipaudit-manifest";
/// SSHSIG namespace for `report.pdf`.
pub const REPORT_NAMESPACE: &str = "clipaudit-report";

pub const PRIVATE_KEY_FILE: &str = "signer.key.pem";
pub const PUBLIC_KEY_PEM_FILE: &str = "signer.pub.pem";
pub const OPENSSH_PUBLIC_KEY_FILE: &str = "signer.pub";
pub const ALLOWED_SIGNERS_FILE: &str = "allowed_signers";

/// Suffix of the raw 64-byte Ed25519 signature written next to a signed file.
pub const RAW_SIGNATURE_SUFFIX: &str = ".sig";
/// Suffix of the armored SSHSIG signature written next to a signed file.
pub const SSH_SIGNATURE_SUFFIX: &str = ".sshsig";

const SSH_ED25519: &str = "ssh-ed25519";
const SSHSIG_MAGIC: &[u8; 6] = b"SSHSIG";
const SSHSIG_VERSION: u32 = 1;
const SSHSIG_BEGIN: &str = "-----BEGIN SSH SIGNATURE-----";
const SSHSIG_END: &str = "-----END SSH SIGNATURE-----";
/// Base64 line width of the SSHSIG armor that `ssh-keygen -Y sign` writes
/// (checked with OpenSSH 9.2p1).
const SSHSIG_LINE_WIDTH: usize = 70;
/// Line width that PROTOCOL.sshsig recommends, accepted from other signers.
const SSHSIG_SPEC_LINE_WIDTH: usize = 76;

/// Errors of key handling, signing, `SHA256SUMS` and bundle operations.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("failed to {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    #[error("failed to read random bytes from the operating system: {0}")]
    Random(String),

    #[error(
        "key file {} already exists and keygen never overwrites a key: move it away or pass another --out directory",
        path.display()
    )]
    KeyFileExists { path: PathBuf },

    #[error(
        "key file {} is accessible to other users (mode {mode:04o}): run `chmod 600 {}`",
        path.display(),
        path.display()
    )]
    KeyFilePermissions { path: PathBuf, mode: u32 },

    #[error("key file {} is not an unencrypted PKCS#8 PEM Ed25519 private key: {reason}", path.display())]
    InvalidPrivateKey { path: PathBuf, reason: String },

    #[error("{origin} is not a valid Ed25519 public key: {reason}")]
    InvalidPublicKey { origin: String, reason: String },

    #[error("invalid principal {principal:?}: {reason}")]
    InvalidPrincipal {
        principal: String,
        reason: &'static str,
    },

    #[error("invalid SSH signature namespace {namespace:?}: {reason}")]
    InvalidNamespace {
        namespace: String,
        reason: &'static str,
    },

    #[error("SHA256SUMS line {line}: {reason}")]
    Sha256SumsSyntax { line: usize, reason: String },

    #[error("invalid bundle path {path:?}: {reason}")]
    InvalidBundlePath { path: String, reason: String },

    #[error("{} is {kind}, but a bundle may contain only regular files", path.display())]
    NotRegularFile { path: PathBuf, kind: &'static str },

    #[error(
        "signature file {} is {len} bytes long, expected a 64-byte raw Ed25519 signature",
        path.display()
    )]
    SignatureLength { path: PathBuf, len: u64 },

    #[error(
        "signature {} does not verify over {}: the file changed after signing or another key signed it",
        signature.display(),
        file.display()
    )]
    SignatureMismatch { file: PathBuf, signature: PathBuf },

    #[error("SSH signature {} is malformed: {reason}", path.display())]
    MalformedSshSignature { path: PathBuf, reason: String },

    #[error("SSH signature {} has namespace {found:?}, expected {expected:?}", path.display())]
    SshSignatureNamespace {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error("SSH signature {} was made by key {found}, expected key {expected}", path.display())]
    SshSignatureKey {
        path: PathBuf,
        expected: String,
        found: String,
    },

    #[error(
        "SSH signature {} uses hash algorithm {found:?}, expected sha512 or sha256",
        path.display()
    )]
    SshSignatureHashAlgorithm { path: PathBuf, found: String },

    #[error("{} does not match the signing key: {reason}", path.display())]
    PublicKeyFileMismatch { path: PathBuf, reason: String },
}

impl Error {
    /// Returns true for an I/O error caused by a missing file or directory.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn io_error(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Error {
    let path = path.to_path_buf();
    move |source| Error::Io {
        action,
        path,
        source,
    }
}

/// Paths and identifiers of a key pair written by [`keygen`].
#[derive(Debug, Clone)]
pub struct KeyFiles {
    pub verifying_key: VerifyingKey,
    pub principal: String,
    /// Lowercase hex SHA-256 of the SubjectPublicKeyInfo DER, see [`key_id`].
    pub key_id: String,
    /// `SHA256:...` fingerprint as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub private_key: PathBuf,
    pub public_key_pem: PathBuf,
    pub openssh_public_key: PathBuf,
    pub allowed_signers: PathBuf,
}

/// Generates an Ed25519 key pair and writes `signer.key.pem` (mode 0600),
/// `signer.pub.pem`, `signer.pub` and `allowed_signers` into `out_dir`.
///
/// Creates `out_dir` when missing. When `signer.key.pem` exists, returns
/// [`Error::KeyFileExists`] and writes nothing.
pub fn keygen(out_dir: &Path, principal: &str) -> Result<KeyFiles> {
    validate_principal(principal)?;
    fs::create_dir_all(out_dir).map_err(io_error("create directory", out_dir))?;

    let private_key = out_dir.join(PRIVATE_KEY_FILE);
    if fs::symlink_metadata(&private_key).is_ok() {
        return Err(Error::KeyFileExists { path: private_key });
    }

    let signing_key = generate_signing_key()?;
    let pem = private_key_pem(&signing_key);
    write_file_atomic(&private_key, pem.as_bytes(), 0o600, false)?;

    let verifying_key = signing_key.verifying_key();
    write_public_key_files(out_dir, &verifying_key, principal)?;

    Ok(KeyFiles {
        verifying_key,
        principal: principal.to_string(),
        key_id: key_id(&verifying_key),
        fingerprint: openssh_fingerprint(&verifying_key),
        private_key,
        public_key_pem: out_dir.join(PUBLIC_KEY_PEM_FILE),
        openssh_public_key: out_dir.join(OPENSSH_PUBLIC_KEY_FILE),
        allowed_signers: out_dir.join(ALLOWED_SIGNERS_FILE),
    })
}

/// Writes `signer.pub.pem`, `signer.pub` and `allowed_signers` for `key`
/// into `dir` with mode 0644, replacing existing files.
pub fn write_public_key_files(dir: &Path, key: &VerifyingKey, principal: &str) -> Result<()> {
    validate_principal(principal)?;

    let files = [
        (PUBLIC_KEY_PEM_FILE, public_key_pem(key)),
        (
            OPENSSH_PUBLIC_KEY_FILE,
            format!("{}\n", openssh_public_key_line(key, principal)),
        ),
        (
            ALLOWED_SIGNERS_FILE,
            format!("{}\n", allowed_signers_line(key, principal)),
        ),
    ];
    for (name, contents) in files {
        write_file_atomic(&dir.join(name), contents.as_bytes(), 0o644, true)?;
    }
    Ok(())
}

/// Generates a signing key from 32 bytes of operating-system randomness,
/// for example as an ephemeral key that is never written to disk.
pub fn generate_signing_key() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed).map_err(|err| Error::Random(err.to_string()))?;
    let key = SigningKey::from_bytes(&seed);

    // SigningKey zeroizes its own copy on drop. This clears the stack copy,
    // but the compiler may still have left other copies of the seed.
    seed.fill(0);
    std::hint::black_box(&seed);
    Ok(key)
}

/// Loads an unencrypted PKCS#8 PEM Ed25519 private key.
///
/// On Unix the file must grant no access to group or others (mode 0600 or
/// stricter), otherwise this returns [`Error::KeyFilePermissions`].
pub fn load_signing_key(path: &Path) -> Result<SigningKey> {
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let metadata = file
        .metadata()
        .map_err(io_error("read metadata of", path))?;
    if !metadata.is_file() {
        return Err(Error::InvalidPrivateKey {
            path: path.to_path_buf(),
            reason: "not a regular file".to_string(),
        });
    }

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = metadata.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(Error::KeyFilePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }

    let mut text = String::new();
    file.read_to_string(&mut text)
        .map_err(|err| match err.kind() {
            io::ErrorKind::InvalidData => Error::InvalidPrivateKey {
                path: path.to_path_buf(),
                reason: "the file is not UTF-8 text".to_string(),
            },
            _ => io_error("read", path)(err),
        })?;

    let result = SigningKey::from_pkcs8_pem(&text).map_err(|err| Error::InvalidPrivateKey {
        path: path.to_path_buf(),
        reason: describe_private_key_problem(&text, &err.to_string()),
    });
    // Clear the PEM text. A reallocation inside read_to_string may have left
    // other copies in freed memory.
    let mut pem_bytes = text.into_bytes();
    pem_bytes.fill(0);
    std::hint::black_box(&pem_bytes);
    result
}

fn describe_private_key_problem(pem: &str, decoder_message: &str) -> String {
    if pem.contains("-----BEGIN ENCRYPTED PRIVATE KEY-----") {
        "the key is encrypted: write an unencrypted copy with `openssl pkey -in FILE -out NEW_FILE`"
            .to_string()
    } else if pem.contains("-----BEGIN OPENSSH PRIVATE KEY-----") {
        "the file is in OpenSSH private key format, which clipaudit does not read: use a key written by `clipaudit keygen`"
            .to_string()
    } else if pem.contains("-----BEGIN PUBLIC KEY-----") {
        "the file contains a public key, not a private key".to_string()
    } else {
        decoder_message.to_string()
    }
}

/// Loads an Ed25519 public key from a SubjectPublicKeyInfo PEM file
/// such as `signer.pub.pem`.
pub fn load_verifying_key_pem(path: &Path) -> Result<VerifyingKey> {
    let text = fs::read_to_string(path).map_err(io_error("read", path))?;
    parse_verifying_key_pem(&text).map_err(|reason| Error::InvalidPublicKey {
        origin: path.display().to_string(),
        reason,
    })
}

pub(crate) fn parse_verifying_key_pem(text: &str) -> std::result::Result<VerifyingKey, String> {
    VerifyingKey::from_public_key_pem(text).map_err(|err| err.to_string())
}

/// Loads an OpenSSH public key file such as `signer.pub` and returns the key
/// and its comment, which clipaudit sets to the principal.
pub fn load_openssh_public_key(path: &Path) -> Result<(VerifyingKey, Option<String>)> {
    let text = fs::read_to_string(path).map_err(io_error("read", path))?;
    let mut lines = text.lines().filter(|line| !line.trim().is_empty());
    let result = match (lines.next(), lines.next()) {
        (Some(line), None) => decode_openssh_public_key(line),
        (None, _) => Err("the file contains no key line".to_string()),
        (Some(_), Some(_)) => Err("the file contains more than one key line".to_string()),
    };
    result.map_err(|reason| Error::InvalidPublicKey {
        origin: path.display().to_string(),
        reason,
    })
}

/// Parses an OpenSSH public key line `ssh-ed25519 BASE64 [COMMENT]`.
pub fn parse_openssh_public_key(line: &str) -> Result<(VerifyingKey, Option<String>)> {
    decode_openssh_public_key(line).map_err(|reason| Error::InvalidPublicKey {
        origin: "OpenSSH public key line".to_string(),
        reason,
    })
}

fn decode_openssh_public_key(
    line: &str,
) -> std::result::Result<(VerifyingKey, Option<String>), String> {
    let line = line.trim();
    let (key_type, rest) = line
        .split_once(char::is_whitespace)
        .ok_or_else(|| "expected `ssh-ed25519 BASE64 [COMMENT]`".to_string())?;
    let rest = rest.trim_start();
    let (encoded, comment) = match rest.split_once(char::is_whitespace) {
        Some((encoded, comment)) => (encoded, Some(comment.trim().to_string())),
        None => (rest, None),
    };
    if key_type != SSH_ED25519 {
        return Err(format!(
            "key type is {key_type:?}, expected {SSH_ED25519:?}"
        ));
    }
    let blob = STANDARD
        .decode(encoded)
        .map_err(|err| format!("invalid base64 in key blob: {err}"))?;
    let key = decode_public_key_blob(&blob)?;
    Ok((key, comment.filter(|comment| !comment.is_empty())))
}

/// Decodes an OpenSSH `ssh-ed25519` public key blob (RFC 8709).
fn decode_public_key_blob(blob: &[u8]) -> std::result::Result<VerifyingKey, String> {
    let mut reader = SshReader::new(blob);
    let key_type = reader.read_string("key type")?;
    if key_type != SSH_ED25519.as_bytes() {
        return Err(format!(
            "key blob type is {:?}, expected {SSH_ED25519:?}",
            String::from_utf8_lossy(key_type)
        ));
    }
    let key_bytes = reader.read_string("Ed25519 public key")?;
    reader.expect_end("public key blob")?;
    let key_bytes: &[u8; 32] = key_bytes.try_into().map_err(|_| {
        format!(
            "Ed25519 public key is {} bytes, expected 32",
            key_bytes.len()
        )
    })?;
    VerifyingKey::from_bytes(key_bytes).map_err(|err| format!("invalid Ed25519 point: {err}"))
}

/// Returns the unencrypted PKCS#8 v1 PEM of `key`, LF line endings.
pub fn private_key_pem(key: &SigningKey) -> String {
    // PKCS#8 v1 without the optional public key field is the form that
    // OpenSSL itself writes for Ed25519 keys.
    let keypair = KeypairBytes {
        secret_key: key.to_bytes(),
        public_key: None,
    };
    let pem = keypair
        .to_pkcs8_pem(LineEnding::LF)
        .expect("PKCS#8 encoding of a 32-byte Ed25519 seed cannot fail");
    pem.to_string()
}

/// Returns the SubjectPublicKeyInfo PEM of `key`, LF line endings.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("SPKI encoding of an Ed25519 public key cannot fail")
}

/// Returns the key id: lowercase hex SHA-256 of the SubjectPublicKeyInfo DER,
/// equal to `openssl pkey -pubin -in signer.pub.pem -outform DER | sha256sum`.
pub fn key_id(key: &VerifyingKey) -> String {
    let der = key
        .to_public_key_der()
        .expect("SPKI encoding of an Ed25519 public key cannot fail");
    hex_encode(&Sha256::digest(der.as_bytes()))
}

/// Returns the OpenSSH public key blob `string "ssh-ed25519" || string key`.
pub fn openssh_public_key_blob(key: &VerifyingKey) -> Vec<u8> {
    let mut blob = Vec::with_capacity(51);
    put_string(&mut blob, SSH_ED25519.as_bytes());
    put_string(&mut blob, key.as_bytes());
    blob
}

/// Returns `SHA256:` followed by the unpadded base64 SHA-256 of the OpenSSH
/// public key blob, the fingerprint that `ssh-keygen -l` prints.
pub fn openssh_fingerprint(key: &VerifyingKey) -> String {
    fingerprint_of_blob(&openssh_public_key_blob(key))
}

fn fingerprint_of_blob(blob: &[u8]) -> String {
    format!("SHA256:{}", STANDARD_NO_PAD.encode(Sha256::digest(blob)))
}

/// Returns the OpenSSH public key line `ssh-ed25519 BASE64 PRINCIPAL`,
/// without a trailing newline.
pub fn openssh_public_key_line(key: &VerifyingKey, principal: &str) -> String {
    format!(
        "{SSH_ED25519} {} {principal}",
        STANDARD.encode(openssh_public_key_blob(key))
    )
}

/// Returns the `allowed_signers` line that trusts `key` as `principal` for
/// both clipaudit namespaces, without a trailing newline.
pub fn allowed_signers_line(key: &VerifyingKey, principal: &str) -> String {
    format!(
        "{principal} namespaces=\"{MANIFEST_NAMESPACE},{REPORT_NAMESPACE}\" {SSH_ED25519} {}",
        STANDARD.encode(openssh_public_key_blob(key))
    )
}

/// Checks that `principal` can be written unquoted into `allowed_signers`
/// and matched literally by `ssh-keygen -Y verify -I`.
pub fn validate_principal(principal: &str) -> Result<()> {
    let reject = |reason| {
        Err(Error::InvalidPrincipal {
            principal: principal.to_string(),
            reason,
        })
    };
    if principal.is_empty() {
        return reject("the principal is empty");
    }
    let allowed = |c: char| c.is_ascii_alphanumeric() || "._-@+".contains(c);
    if !principal.chars().all(allowed) {
        // allowed_signers treats whitespace, commas, quotes and `* ? !` as syntax.
        return reject("use only ASCII letters, digits and `. _ - @ +`");
    }
    Ok(())
}

/// One parsed `allowed_signers` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedSigner {
    pub principals: Vec<String>,
    /// Values of the `namespaces="..."` option. None when the option is
    /// absent, which lets the key sign in every namespace.
    pub namespaces: Option<Vec<String>>,
    pub key: VerifyingKey,
}

/// Parses the lines of an `allowed_signers` file, skipping blank lines and
/// `#` comments. Accepts only `ssh-ed25519` keys.
pub fn parse_allowed_signers(text: &str) -> std::result::Result<Vec<AllowedSigner>, String> {
    let mut signers = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let signer =
            parse_allowed_signer(line).map_err(|reason| format!("line {}: {reason}", index + 1))?;
        signers.push(signer);
    }
    Ok(signers)
}

fn parse_allowed_signer(line: &str) -> std::result::Result<AllowedSigner, String> {
    let fields = split_allowed_signers_fields(line)?;
    let (principals, rest) = fields
        .split_first()
        .ok_or_else(|| "the line is empty".to_string())?;

    // The options field is optional, and a key type field follows it.
    let (options, key_fields) = match rest.first() {
        Some(field) if field.as_str() == SSH_ED25519 => (None, rest),
        Some(field) => (Some(field.as_str()), &rest[1..]),
        None => return Err("missing key type and key".to_string()),
    };
    if key_fields.len() < 2 {
        return Err("missing key type or key".to_string());
    }
    let key_line = key_fields.join(" ");
    let (key, _comment) = decode_openssh_public_key(&key_line)?;

    let mut namespaces = None;
    if let Some(options) = options {
        for option in split_options(options) {
            if let Some(value) = option.strip_prefix("namespaces=") {
                let value = value
                    .strip_prefix('"')
                    .and_then(|value| value.strip_suffix('"'))
                    .unwrap_or(value);
                namespaces = Some(value.split(',').map(str::to_string).collect());
            }
        }
    }

    Ok(AllowedSigner {
        principals: principals.split(',').map(str::to_string).collect(),
        namespaces,
        key,
    })
}

/// Splits an `allowed_signers` line at whitespace outside double quotes.
fn split_allowed_signers_fields(line: &str) -> std::result::Result<Vec<String>, String> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in line.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if c.is_whitespace() && !in_quotes {
            if !current.is_empty() {
                fields.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if in_quotes {
        return Err("unterminated double quote".to_string());
    }
    if !current.is_empty() {
        fields.push(current);
    }
    Ok(fields)
}

/// Splits an options field at commas outside double quotes.
fn split_options(options: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let mut start = 0;
    let mut in_quotes = false;
    for (index, c) in options.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ',' if !in_quotes => {
                parts.push(&options[start..index]);
                start = index + 1;
            }
            _ => {}
        }
    }
    parts.push(&options[start..]);
    parts
}

/// Returns `FILE.sig` for `FILE`.
pub fn raw_signature_path(file: &Path) -> PathBuf {
    path_with_suffix(file, RAW_SIGNATURE_SUFFIX)
}

/// Returns `FILE.sshsig` for `FILE`.
pub fn ssh_signature_path(file: &Path) -> PathBuf {
    path_with_suffix(file, SSH_SIGNATURE_SUFFIX)
}

fn path_with_suffix(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_os_string();
    name.push(suffix);
    PathBuf::from(name)
}

/// Returns the pure Ed25519 signature (RFC 8032) of `message`, the bytes
/// that `openssl pkeyutl -verify -rawin` checks.
pub fn sign_raw(key: &SigningKey, message: &[u8]) -> [u8; 64] {
    key.sign(message).to_bytes()
}

/// Checks a pure Ed25519 signature with the strict rules of
/// `VerifyingKey::verify_strict`, which reject malleable signatures and
/// small-order keys.
pub fn verify_raw(key: &VerifyingKey, message: &[u8], signature: &[u8; 64]) -> bool {
    key.verify_strict(message, &Signature::from_bytes(signature))
        .is_ok()
}

/// Signs the bytes of `file` and writes the raw signature to `FILE.sig`.
/// Returns the signature path.
pub fn write_raw_signature(key: &SigningKey, file: &Path) -> Result<PathBuf> {
    // NOTE: pure Ed25519 hashes the message twice, so the whole file is read
    // into memory. Keep signed files to what fits in memory.
    let message = fs::read(file).map_err(io_error("read", file))?;
    let signature_path = raw_signature_path(file);
    write_file_atomic(&signature_path, &sign_raw(key, &message), 0o644, true)?;
    Ok(signature_path)
}

/// Checks the raw Ed25519 signature in `signature_file` over the bytes of `file`.
pub fn verify_raw_signature_file(
    key: &VerifyingKey,
    file: &Path,
    signature_file: &Path,
) -> Result<()> {
    let signature = fs::read(signature_file).map_err(io_error("read", signature_file))?;
    let message = fs::read(file).map_err(io_error("read", file))?;
    check_raw_signature(key, &message, &signature, file, signature_file)
}

pub(crate) fn check_raw_signature(
    key: &VerifyingKey,
    message: &[u8],
    signature: &[u8],
    file: &Path,
    signature_file: &Path,
) -> Result<()> {
    let signature: &[u8; 64] = signature.try_into().map_err(|_| Error::SignatureLength {
        path: signature_file.to_path_buf(),
        len: signature.len() as u64,
    })?;
    if verify_raw(key, message, signature) {
        Ok(())
    } else {
        Err(Error::SignatureMismatch {
            file: file.to_path_buf(),
            signature: signature_file.to_path_buf(),
        })
    }
}

/// Checks that `namespace` is a valid SSHSIG namespace: PROTOCOL.sshsig
/// makes it mandatory, and `ssh-keygen -n` takes it as one argument.
pub fn validate_namespace(namespace: &str) -> Result<()> {
    let reject = |reason| {
        Err(Error::InvalidNamespace {
            namespace: namespace.to_string(),
            reason,
        })
    };
    if namespace.is_empty() {
        return reject("the namespace is empty");
    }
    if !namespace.chars().all(|c| c.is_ascii_graphic()) {
        return reject("use only printable ASCII without spaces");
    }
    Ok(())
}

/// Returns the armored SSHSIG signature of `message` with the given
/// namespace and hash algorithm sha512, byte for byte in the form
/// `ssh-keygen -Y sign` writes.
pub fn sign_ssh(key: &SigningKey, namespace: &str, message: &[u8]) -> Result<String> {
    validate_namespace(namespace)?;
    Ok(sign_ssh_digest(key, namespace, &Sha512::digest(message)))
}

/// Signs `file`, streaming it through SHA-512, and writes the armored SSHSIG
/// signature to `FILE.sshsig`. Returns the signature path.
pub fn write_ssh_signature(key: &SigningKey, file: &Path, namespace: &str) -> Result<PathBuf> {
    validate_namespace(namespace)?;
    let reader = File::open(file).map_err(io_error("open", file))?;
    let digest = sha512_reader(reader).map_err(io_error("read", file))?;
    let armored = sign_ssh_digest(key, namespace, &digest);

    let signature_path = ssh_signature_path(file);
    write_file_atomic(&signature_path, armored.as_bytes(), 0o644, true)?;
    Ok(signature_path)
}

fn sign_ssh_digest(key: &SigningKey, namespace: &str, sha512_digest: &[u8]) -> String {
    let signed_data = sshsig_signed_data(namespace.as_bytes(), b"", b"sha512", sha512_digest);
    let signature = key.sign(&signed_data).to_bytes();

    let mut signature_blob = Vec::new();
    put_string(&mut signature_blob, SSH_ED25519.as_bytes());
    put_string(&mut signature_blob, &signature);

    let mut blob = Vec::new();
    blob.extend_from_slice(SSHSIG_MAGIC);
    blob.extend_from_slice(&SSHSIG_VERSION.to_be_bytes());
    put_string(&mut blob, &openssh_public_key_blob(&key.verifying_key()));
    put_string(&mut blob, namespace.as_bytes());
    put_string(&mut blob, b""); // reserved
    put_string(&mut blob, b"sha512");
    put_string(&mut blob, &signature_blob);
    armor_ssh_signature(&blob)
}

/// Checks the armored SSHSIG signature in `signature_file` over `file`.
///
/// Requires canonical armor (padded base64 in lines of 70 or 76 characters,
/// LF line endings), SSHSIG version 1, the public key `key`, the namespace
/// `namespace`, hash algorithm sha512 or sha256, and a valid `ssh-ed25519`
/// signature. The reserved field is
/// ignored, because PROTOCOL.sshsig tells implementations to ignore it.
pub fn verify_ssh_signature_file(
    key: &VerifyingKey,
    file: &Path,
    signature_file: &Path,
    namespace: &str,
) -> Result<()> {
    let armored = fs::read(signature_file).map_err(io_error("read", signature_file))?;
    let message = File::open(file).map_err(io_error("open", file))?;
    check_ssh_signature(key, namespace, &armored, message, file, signature_file)
}

pub(crate) fn check_ssh_signature<R: Read>(
    key: &VerifyingKey,
    namespace: &str,
    armored: &[u8],
    message: R,
    file: &Path,
    signature_file: &Path,
) -> Result<()> {
    let malformed = |reason: String| Error::MalformedSshSignature {
        path: signature_file.to_path_buf(),
        reason,
    };

    let blob = dearmor_ssh_signature(armored).map_err(malformed)?;
    let parsed = parse_sshsig_blob(&blob).map_err(malformed)?;

    let expected_key_blob = openssh_public_key_blob(key);
    if parsed.public_key != expected_key_blob.as_slice() {
        return Err(Error::SshSignatureKey {
            path: signature_file.to_path_buf(),
            expected: fingerprint_of_blob(&expected_key_blob),
            found: fingerprint_of_blob(parsed.public_key),
        });
    }
    if parsed.namespace != namespace.as_bytes() {
        return Err(Error::SshSignatureNamespace {
            path: signature_file.to_path_buf(),
            expected: namespace.to_string(),
            found: String::from_utf8_lossy(parsed.namespace).into_owned(),
        });
    }

    let hash_algorithm = parsed.hash_algorithm;
    let digest = match hash_algorithm {
        b"sha512" => sha512_reader(message),
        b"sha256" => sha256_reader(message),
        _ => {
            return Err(Error::SshSignatureHashAlgorithm {
                path: signature_file.to_path_buf(),
                found: String::from_utf8_lossy(hash_algorithm).into_owned(),
            });
        }
    }
    .map_err(io_error("read", file))?;

    let signed_data =
        sshsig_signed_data(parsed.namespace, parsed.reserved, hash_algorithm, &digest);

    if verify_raw(key, &signed_data, &parsed.signature) {
        Ok(())
    } else {
        Err(Error::SignatureMismatch {
            file: file.to_path_buf(),
            signature: signature_file.to_path_buf(),
        })
    }
}

/// Fields of an SSHSIG blob, borrowed from the decoded armor.
struct SshSigBlob<'a> {
    public_key: &'a [u8],
    namespace: &'a [u8],
    reserved: &'a [u8],
    hash_algorithm: &'a [u8],
    signature: [u8; 64],
}

/// Parses `"SSHSIG" || uint32 version || string publickey || string namespace
/// || string reserved || string hash_algorithm || string signature`.
fn parse_sshsig_blob(blob: &[u8]) -> std::result::Result<SshSigBlob<'_>, String> {
    let mut reader = SshReader::new(blob);
    if reader.read_bytes(SSHSIG_MAGIC.len(), "magic")? != SSHSIG_MAGIC {
        return Err("the blob does not start with the magic bytes \"SSHSIG\"".to_string());
    }
    let version = reader.read_u32("version")?;
    if version != SSHSIG_VERSION {
        return Err(format!("version is {version}, expected {SSHSIG_VERSION}"));
    }
    let public_key = reader.read_string("public key")?;
    let namespace = reader.read_string("namespace")?;
    let reserved = reader.read_string("reserved field")?;
    let hash_algorithm = reader.read_string("hash algorithm")?;
    let signature_blob = reader.read_string("signature")?;
    reader.expect_end("SSHSIG blob")?;

    let mut signature_reader = SshReader::new(signature_blob);
    let signature_type = signature_reader.read_string("signature type")?;
    if signature_type != SSH_ED25519.as_bytes() {
        return Err(format!(
            "signature type is {:?}, expected {SSH_ED25519:?}",
            String::from_utf8_lossy(signature_type)
        ));
    }
    let signature = signature_reader.read_string("Ed25519 signature")?;
    signature_reader.expect_end("signature blob")?;
    let signature: [u8; 64] = signature.try_into().map_err(|_| {
        format!(
            "Ed25519 signature is {} bytes, expected 64",
            signature.len()
        )
    })?;

    Ok(SshSigBlob {
        public_key,
        namespace,
        reserved,
        hash_algorithm,
        signature,
    })
}

/// Returns the data that an SSHSIG signature signs: `"SSHSIG" || string
/// namespace || string reserved || string hash_algorithm || string H(message)`.
fn sshsig_signed_data(
    namespace: &[u8],
    reserved: &[u8],
    hash_algorithm: &[u8],
    digest: &[u8],
) -> Vec<u8> {
    let mut data = Vec::new();
    data.extend_from_slice(SSHSIG_MAGIC);
    put_string(&mut data, namespace);
    put_string(&mut data, reserved);
    put_string(&mut data, hash_algorithm);
    put_string(&mut data, digest);
    data
}

fn armor_ssh_signature(blob: &[u8]) -> String {
    armor_ssh_signature_with_width(blob, SSHSIG_LINE_WIDTH)
}

fn armor_ssh_signature_with_width(blob: &[u8], line_width: usize) -> String {
    let encoded = STANDARD.encode(blob);
    let mut armored = String::with_capacity(encoded.len() + 80);
    armored.push_str(SSHSIG_BEGIN);
    armored.push('\n');
    // Base64 output is ASCII, so splitting at any byte offset is safe.
    for line in encoded.as_bytes().chunks(line_width) {
        armored.push_str(std::str::from_utf8(line).expect("base64 output is ASCII"));
        armored.push('\n');
    }
    armored.push_str(SSHSIG_END);
    armored.push('\n');
    armored
}

/// Decodes the armor and rejects any form other than the canonical one, so
/// that every changed byte of a signature file is detected. Canonical means
/// padded base64 in lines of 70 (ssh-keygen) or 76 (PROTOCOL.sshsig)
/// characters, LF line endings, and one newline after the END line.
fn dearmor_ssh_signature(armored: &[u8]) -> std::result::Result<Vec<u8>, String> {
    let text = std::str::from_utf8(armored)
        .map_err(|_| "the signature file is not UTF-8 text".to_string())?;
    let body = text
        .strip_prefix(SSHSIG_BEGIN)
        .and_then(|rest| rest.strip_prefix('\n'))
        .ok_or_else(|| format!("the first line is not {SSHSIG_BEGIN}"))?;
    let end_marker = format!("\n{SSHSIG_END}");
    let end = body
        .find(&end_marker)
        .ok_or_else(|| format!("missing the line {SSHSIG_END}"))?;

    let encoded: String = body[..end].split('\n').collect();
    let blob = STANDARD
        .decode(encoded.as_bytes())
        .map_err(|err| format!("invalid base64: {err}"))?;
    let canonical = [SSHSIG_LINE_WIDTH, SSHSIG_SPEC_LINE_WIDTH]
        .into_iter()
        .any(|width| armor_ssh_signature_with_width(&blob, width).as_bytes() == armored);
    if !canonical {
        return Err(format!(
            "the armor is not in canonical form: base64 lines of {SSHSIG_LINE_WIDTH} or {SSHSIG_SPEC_LINE_WIDTH} characters, LF line endings, and one newline after {SSHSIG_END}"
        ));
    }
    Ok(blob)
}

/// Reader for RFC 4253 `uint32` and `string` fields.
struct SshReader<'a> {
    data: &'a [u8],
}

impl<'a> SshReader<'a> {
    fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    fn read_bytes(&mut self, len: usize, field: &str) -> std::result::Result<&'a [u8], String> {
        if self.data.len() < len {
            return Err(format!(
                "truncated {field}: needs {len} bytes, {} left",
                self.data.len()
            ));
        }
        let (head, tail) = self.data.split_at(len);
        self.data = tail;
        Ok(head)
    }

    fn read_u32(&mut self, field: &str) -> std::result::Result<u32, String> {
        let bytes = self.read_bytes(4, field)?;
        Ok(u32::from_be_bytes(
            bytes.try_into().expect("read_bytes returned 4 bytes"),
        ))
    }

    fn read_string(&mut self, field: &str) -> std::result::Result<&'a [u8], String> {
        let len = self.read_u32(field)? as usize;
        self.read_bytes(len, field)
    }

    fn expect_end(&self, what: &str) -> std::result::Result<(), String> {
        if self.data.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} unexpected bytes after the {what}",
                self.data.len()
            ))
        }
    }
}

/// Appends an RFC 4253 `string`: a big-endian u32 length, then the bytes.
fn put_string(buffer: &mut Vec<u8>, data: &[u8]) {
    let len = u32::try_from(data.len()).expect("SSH string longer than 4 GiB");
    buffer.extend_from_slice(&len.to_be_bytes());
    buffer.extend_from_slice(data);
}

/// Buffer size for streaming hashes.
pub(crate) const HASH_BUFFER_SIZE: usize = 64 * 1024;

fn sha512_reader<R: Read>(reader: R) -> io::Result<Vec<u8>> {
    digest_reader::<Sha512, R>(reader)
}

fn sha256_reader<R: Read>(reader: R) -> io::Result<Vec<u8>> {
    digest_reader::<Sha256, R>(reader)
}

fn digest_reader<D: Digest, R: Read>(mut reader: R) -> io::Result<Vec<u8>> {
    let mut hasher = D::new();
    let mut buffer = vec![0u8; HASH_BUFFER_SIZE];
    loop {
        let read = match reader.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().to_vec())
}

pub(crate) fn hex_encode(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        hex.push(DIGITS[usize::from(byte >> 4)] as char);
        hex.push(DIGITS[usize::from(byte & 0x0f)] as char);
    }
    hex
}

/// Writes `contents` to a temporary file in the target directory and renames
/// it over `path`, so readers never see a partly written file.
///
/// `mode` sets the Unix permission bits regardless of the umask. With
/// `replace` false, an existing `path` is kept and
/// [`Error::KeyFileExists`] is returned.
pub(crate) fn write_file_atomic(
    path: &Path,
    contents: &[u8],
    mode: u32,
    replace: bool,
) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut temporary = tempfile::Builder::new()
        .prefix(".clipaudit-tmp-")
        .tempfile_in(dir)
        .map_err(io_error("create a temporary file in", dir))?;

    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        temporary
            .as_file()
            .set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io_error("set permissions on a temporary file for", path))?;
    }
    #[cfg(not(unix))]
    let _ = mode;

    temporary
        .write_all(contents)
        .and_then(|()| temporary.as_file().sync_all())
        .map_err(io_error("write", path))?;

    let persisted = if replace {
        temporary.persist(path)
    } else {
        temporary.persist_noclobber(path)
    };
    persisted.map_err(|err| {
        if !replace && err.error.kind() == io::ErrorKind::AlreadyExists {
            Error::KeyFileExists {
                path: path.to_path_buf(),
            }
        } else {
            Error::Io {
                action: "write",
                path: path.to_path_buf(),
                source: err.error,
            }
        }
    })?;
    Ok(())
}

/// Helpers that run the external verifiers from the tests of this module and
/// of the bundle module.
#[cfg(test)]
pub(crate) mod test_tools {
    use std::io::Write;
    use std::path::Path;
    use std::process::{Command, Output, Stdio};

    /// Runs `program` with `args` in `dir`, feeding `stdin`. Panics with the
    /// Debian package to install when the program is not found.
    pub(crate) fn run(
        program: &str,
        package: &str,
        args: &[&str],
        stdin: &[u8],
        dir: &Path,
    ) -> Output {
        let mut child = match Command::new(program)
            .args(args)
            .current_dir(dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
        {
            Ok(child) => child,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => panic!(
                "`{program}` not found: these tests run the real verifier, install the Debian package `{package}`"
            ),
            Err(err) => panic!("failed to start `{program}`: {err}"),
        };
        {
            let mut input = child.stdin.take().expect("stdin is piped");
            // A tool that exits without reading its input closes the pipe.
            // The caller then checks the exit status, so the error is ignored.
            let _ = input.write_all(stdin);
        }
        child
            .wait_with_output()
            .expect("failed to wait for the tool")
    }

    pub(crate) fn openssl(args: &[&str], stdin: &[u8], dir: &Path) -> Output {
        run("openssl", "openssl", args, stdin, dir)
    }

    pub(crate) fn ssh_keygen(args: &[&str], stdin: &[u8], dir: &Path) -> Output {
        run("ssh-keygen", "openssh-client", args, stdin, dir)
    }

    pub(crate) fn sha256sum(args: &[&str], stdin: &[u8], dir: &Path) -> Output {
        run("sha256sum", "coreutils", args, stdin, dir)
    }

    /// Panics with the tool's output unless it exited with status 0.
    pub(crate) fn assert_success(output: &Output, what: &str) {
        assert!(
            output.status.success(),
            "{what} failed with {}\nstdout: {}\nstderr: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::test_tools::{assert_success, openssl, sha256sum, ssh_keygen};
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    fn set_mode(path: &Path, mode: u32) {
        fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
    }

    fn flip_byte(path: &Path, index: usize) {
        let mut bytes = fs::read(path).unwrap();
        bytes[index] ^= 0x01;
        fs::write(path, bytes).unwrap();
    }

    #[test]
    fn keygen_writes_four_files_with_modes() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("keys");
        let files = keygen(&out, DEFAULT_PRINCIPAL).unwrap();

        assert_eq!(files.private_key, out.join("signer.key.pem"));
        assert_eq!(files.public_key_pem, out.join("signer.pub.pem"));
        assert_eq!(files.openssh_public_key, out.join("signer.pub"));
        assert_eq!(files.allowed_signers, out.join("allowed_signers"));

        assert_eq!(mode_of(&files.private_key), 0o600);
        assert_eq!(mode_of(&files.public_key_pem), 0o644);
        assert_eq!(mode_of(&files.openssh_public_key), 0o644);
        assert_eq!(mode_of(&files.allowed_signers), 0o644);

        let private_pem = fs::read_to_string(&files.private_key).unwrap();
        assert!(private_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let public_pem = fs::read_to_string(&files.public_key_pem).unwrap();
        assert!(public_pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));

        let key = &files.verifying_key;
        let blob = STANDARD.encode(openssh_public_key_blob(key));
        assert_eq!(
            fs::read_to_string(&files.openssh_public_key).unwrap(),
            format!("ssh-ed25519 {blob} clipaudit-signer\n")
        );
        assert_eq!(
            fs::read_to_string(&files.allowed_signers).unwrap(),
            format!(
                "clipaudit-signer namespaces=\"clipaudit-manifest,clipaudit-report\" ssh-ed25519 {blob}\n"
            )
        );

        assert_eq!(files.key_id.len(), 64);
        assert!(files.fingerprint.starts_with("SHA256:"));
        let loaded = load_signing_key(&files.private_key).unwrap();
        assert_eq!(&loaded.verifying_key(), key);
        assert_eq!(&load_verifying_key_pem(&files.public_key_pem).unwrap(), key);
        let (openssh_key, comment) = load_openssh_public_key(&files.openssh_public_key).unwrap();
        assert_eq!(&openssh_key, key);
        assert_eq!(comment.as_deref(), Some("clipaudit-signer"));

        let leftovers: Vec<_> = fs::read_dir(&out)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.starts_with(".clipaudit-tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
    }

    #[test]
    fn keygen_rejects_existing_key_file() {
        let dir = tempfile::tempdir().unwrap();
        let first = keygen(dir.path(), "first").unwrap();
        let original = fs::read(&first.private_key).unwrap();

        let err = keygen(dir.path(), "second").unwrap_err();
        assert!(matches!(err, Error::KeyFileExists { .. }), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(fs::read(&first.private_key).unwrap(), original);
        let signer_pub = fs::read_to_string(&first.openssh_public_key).unwrap();
        assert!(signer_pub.ends_with(" first\n"), "{signer_pub}");
    }

    #[test]
    fn keygen_rejects_invalid_principal() {
        let dir = tempfile::tempdir().unwrap();
        let err = keygen(dir.path(), "two words").unwrap_err();
        assert!(matches!(err, Error::InvalidPrincipal { .. }), "{err}");
        assert!(!dir.path().join(PRIVATE_KEY_FILE).exists());
    }

    #[test]
    fn principal_validation_cases() {
        for ok in ["clipaudit-signer", "auditor@example.org", "a.b_c+d", "X1"] {
            assert!(validate_principal(ok).is_ok(), "{ok:?} should be accepted");
        }
        for bad in [
            "", "a b", "a,b", "a*", "a?", "!a", "\"a\"", "a\tb", "ä", "#a",
        ] {
            assert!(
                validate_principal(bad).is_err(),
                "{bad:?} should be rejected"
            );
        }
    }

    #[test]
    fn openssl_derives_same_public_pem() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen(dir.path(), DEFAULT_PRINCIPAL).unwrap();

        let output = openssl(
            &["pkey", "-in", "signer.key.pem", "-pubout"],
            b"",
            dir.path(),
        );
        assert_success(&output, "openssl pkey -pubout");
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            fs::read_to_string(&files.public_key_pem).unwrap()
        );
    }

    #[test]
    fn ssh_keygen_prints_same_fingerprint() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen(dir.path(), "auditor@example.org").unwrap();

        let output = ssh_keygen(&["-l", "-f", "signer.pub"], b"", dir.path());
        assert_success(&output, "ssh-keygen -l");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let fields: Vec<&str> = stdout.split_whitespace().collect();
        assert_eq!(
            fields,
            [
                "256",
                files.fingerprint.as_str(),
                "auditor@example.org",
                "(ED25519)"
            ],
            "ssh-keygen -l output: {stdout}"
        );
    }

    #[test]
    fn openssl_der_hash_equals_key_id() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen(dir.path(), DEFAULT_PRINCIPAL).unwrap();

        let der = openssl(
            &["pkey", "-pubin", "-in", "signer.pub.pem", "-outform", "DER"],
            b"",
            dir.path(),
        );
        assert_success(&der, "openssl pkey -outform DER");
        assert_eq!(der.stdout.len(), 44, "Ed25519 SPKI DER is 44 bytes");

        let hashed = sha256sum(&[], &der.stdout, dir.path());
        assert_success(&hashed, "sha256sum");
        let stdout = String::from_utf8(hashed.stdout).unwrap();
        assert_eq!(
            stdout.split_whitespace().next(),
            Some(files.key_id.as_str())
        );
    }

    #[test]
    fn openssl_generated_key_loads() {
        let dir = tempfile::tempdir().unwrap();
        let output = openssl(
            &["genpkey", "-algorithm", "ed25519", "-out", "openssl.pem"],
            b"",
            dir.path(),
        );
        assert_success(&output, "openssl genpkey");
        let key_path = dir.path().join("openssl.pem");
        set_mode(&key_path, 0o600);

        let key = load_signing_key(&key_path).unwrap();
        let public = openssl(&["pkey", "-in", "openssl.pem", "-pubout"], b"", dir.path());
        assert_success(&public, "openssl pkey -pubout");
        assert_eq!(
            String::from_utf8(public.stdout).unwrap(),
            public_key_pem(&key.verifying_key())
        );
        // OpenSSL writes the same PKCS#8 v1 form that private_key_pem emits.
        assert_eq!(
            fs::read_to_string(&key_path).unwrap(),
            private_key_pem(&key)
        );
    }

    #[test]
    fn loose_key_permissions_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen(dir.path(), DEFAULT_PRINCIPAL).unwrap();

        set_mode(&files.private_key, 0o644);
        let err = load_signing_key(&files.private_key).unwrap_err();
        match &err {
            Error::KeyFilePermissions { mode, .. } => assert_eq!(*mode, 0o644),
            other => panic!("expected KeyFilePermissions, got {other:?}"),
        }
        let message = err.to_string();
        assert!(message.contains("signer.key.pem"), "{message}");
        assert!(message.contains("(mode 0644)"), "{message}");
        assert!(message.contains("chmod 600"), "{message}");

        for mode in [0o640, 0o604, 0o620, 0o660, 0o666] {
            set_mode(&files.private_key, mode);
            assert!(
                matches!(
                    load_signing_key(&files.private_key),
                    Err(Error::KeyFilePermissions { .. })
                ),
                "mode {mode:04o} should be rejected"
            );
        }
        for mode in [0o600, 0o400] {
            set_mode(&files.private_key, mode);
            assert!(
                load_signing_key(&files.private_key).is_ok(),
                "mode {mode:04o} should be accepted"
            );
        }
    }

    #[test]
    fn non_ed25519_private_keys_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let output = openssl(
            &[
                "genpkey",
                "-algorithm",
                "EC",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-out",
                "ec.pem",
            ],
            b"",
            dir.path(),
        );
        assert_success(&output, "openssl genpkey EC");
        let output = ssh_keygen(
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "x",
                "-f",
                "openssh_key",
            ],
            b"",
            dir.path(),
        );
        assert_success(&output, "ssh-keygen -t ed25519");
        let files = keygen(&dir.path().join("keys"), DEFAULT_PRINCIPAL).unwrap();
        fs::copy(&files.public_key_pem, dir.path().join("public.pem")).unwrap();
        fs::write(dir.path().join("garbage.pem"), "not a key\n").unwrap();

        let cases = [
            ("ec.pem", ""),
            ("openssh_key", "OpenSSH private key format"),
            ("public.pem", "contains a public key"),
            ("garbage.pem", ""),
        ];
        for (name, expected_reason) in cases {
            let path = dir.path().join(name);
            set_mode(&path, 0o600);
            let err = load_signing_key(&path).unwrap_err();
            assert!(
                matches!(err, Error::InvalidPrivateKey { .. }),
                "{name}: expected InvalidPrivateKey, got {err:?}"
            );
            assert!(err.to_string().contains(expected_reason), "{name}: {err}");
        }
    }

    #[test]
    fn missing_key_file_reported() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_signing_key(&dir.path().join("absent.pem")).unwrap_err();
        assert!(err.is_not_found(), "{err:?}");
        assert!(err.to_string().contains("absent.pem"), "{err}");
    }

    #[test]
    fn generated_keys_differ() {
        let first = generate_signing_key().unwrap();
        let second = generate_signing_key().unwrap();
        assert_ne!(first.verifying_key(), second.verifying_key());
    }

    #[test]
    fn raw_signature_verifies_with_openssl() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen(dir.path(), DEFAULT_PRINCIPAL).unwrap();
        let key = load_signing_key(&files.private_key).unwrap();
        let document = dir.path().join("manifest.json");
        fs::write(&document, b"{\"dataset\": \"clips\", \"rows\": 3}\n").unwrap();

        let signature = write_raw_signature(&key, &document).unwrap();
        assert_eq!(signature, dir.path().join("manifest.json.sig"));
        assert_eq!(fs::read(&signature).unwrap().len(), 64);
        verify_raw_signature_file(&files.verifying_key, &document, &signature).unwrap();

        let verify_args = [
            "pkeyutl",
            "-verify",
            "-pubin",
            "-inkey",
            "signer.pub.pem",
            "-rawin",
            "-in",
            "manifest.json",
            "-sigfile",
            "manifest.json.sig",
        ];
        let output = openssl(&verify_args, b"", dir.path());
        assert_success(&output, "openssl pkeyutl -verify");

        flip_byte(&document, 3);
        let output = openssl(&verify_args, b"", dir.path());
        assert!(!output.status.success(), "openssl accepted a changed file");
        let err =
            verify_raw_signature_file(&files.verifying_key, &document, &signature).unwrap_err();
        assert!(matches!(err, Error::SignatureMismatch { .. }), "{err}");
    }

    #[test]
    fn openssl_raw_signature_verifies_in_rust() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen(dir.path(), DEFAULT_PRINCIPAL).unwrap();
        fs::write(dir.path().join("report.pdf"), b"%PDF-1.7\n% test\n").unwrap();

        let output = openssl(
            &[
                "pkeyutl",
                "-sign",
                "-inkey",
                "signer.key.pem",
                "-rawin",
                "-in",
                "report.pdf",
                "-out",
                "report.pdf.sig",
            ],
            b"",
            dir.path(),
        );
        assert_success(&output, "openssl pkeyutl -sign");
        verify_raw_signature_file(
            &files.verifying_key,
            &dir.path().join("report.pdf"),
            &dir.path().join("report.pdf.sig"),
        )
        .unwrap();
    }

    #[test]
    fn raw_signature_length_checked() {
        let key = generate_signing_key().unwrap();
        let err = check_raw_signature(
            &key.verifying_key(),
            b"message",
            &[0u8; 63],
            Path::new("m"),
            Path::new("m.sig"),
        )
        .unwrap_err();
        assert!(
            matches!(err, Error::SignatureLength { len: 63, .. }),
            "{err}"
        );
    }

    #[test]
    fn ssh_signature_verifies_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        let files = keygen(dir.path(), "auditor@example.org").unwrap();
        let key = load_signing_key(&files.private_key).unwrap();
        let document = dir.path().join("SHA256SUMS");
        fs::write(&document, b"SHA256 (a) = 00\n".repeat(5000)).unwrap();
        let contents = fs::read(&document).unwrap();

        let signature = write_ssh_signature(&key, &document, MANIFEST_NAMESPACE).unwrap();
        assert_eq!(signature, dir.path().join("SHA256SUMS.sshsig"));

        let verify = |namespace: &str, stdin: &[u8]| {
            ssh_keygen(
                &[
                    "-Y",
                    "verify",
                    "-f",
                    "allowed_signers",
                    "-I",
                    "auditor@example.org",
                    "-n",
                    namespace,
                    "-s",
                    "SHA256SUMS.sshsig",
                ],
                stdin,
                dir.path(),
            )
        };
        assert_success(
            &verify(MANIFEST_NAMESPACE, &contents),
            "ssh-keygen -Y verify",
        );

        let novalidate = ssh_keygen(
            &[
                "-Y",
                "check-novalidate",
                "-n",
                MANIFEST_NAMESPACE,
                "-s",
                "SHA256SUMS.sshsig",
            ],
            &contents,
            dir.path(),
        );
        assert_success(&novalidate, "ssh-keygen -Y check-novalidate");

        let wrong_namespace = verify(REPORT_NAMESPACE, &contents);
        assert!(
            !wrong_namespace.status.success(),
            "ssh-keygen accepted the wrong namespace"
        );

        let mut changed = contents.clone();
        changed[10] ^= 0x01;
        assert!(
            !verify(MANIFEST_NAMESPACE, &changed).status.success(),
            "ssh-keygen accepted a changed message"
        );

        verify_ssh_signature_file(
            &files.verifying_key,
            &document,
            &signature,
            MANIFEST_NAMESPACE,
        )
        .unwrap();
    }

    #[test]
    fn ssh_signature_armor_matches_ssh_keygen() {
        let key = generate_signing_key().unwrap();
        let armored = sign_ssh(&key, REPORT_NAMESPACE, b"report").unwrap();
        let lines: Vec<&str> = armored.lines().collect();

        assert_eq!(lines.first(), Some(&"-----BEGIN SSH SIGNATURE-----"));
        assert_eq!(lines.last(), Some(&"-----END SSH SIGNATURE-----"));
        let body = &lines[1..lines.len() - 1];
        for line in &body[..body.len() - 1] {
            assert_eq!(line.len(), 70, "body line {line:?}");
        }
        assert!(body.last().unwrap().len() <= 70);
        assert!(armored.ends_with("-----\n"));
        assert!(!armored.contains('\r'));
    }

    #[test]
    fn ssh_keygen_signature_verifies_in_rust() {
        let dir = tempfile::tempdir().unwrap();
        let output = ssh_keygen(
            &[
                "-q",
                "-t",
                "ed25519",
                "-N",
                "",
                "-C",
                "tester",
                "-f",
                "id_ed25519",
            ],
            b"",
            dir.path(),
        );
        assert_success(&output, "ssh-keygen -t ed25519");
        let (key, comment) = load_openssh_public_key(&dir.path().join("id_ed25519.pub")).unwrap();
        assert_eq!(comment.as_deref(), Some("tester"));

        let message = dir.path().join("report.pdf");
        fs::write(
            &message,
            (0..=255u8).cycle().take(200_000).collect::<Vec<u8>>(),
        )
        .unwrap();
        let signature = dir.path().join("report.pdf.sig");

        for hash_algorithm in ["sha512", "sha256"] {
            let _ = fs::remove_file(&signature);
            let option = format!("hashalg={hash_algorithm}");
            let output = ssh_keygen(
                &[
                    "-Y",
                    "sign",
                    "-f",
                    "id_ed25519",
                    "-n",
                    REPORT_NAMESPACE,
                    "-O",
                    &option,
                    "report.pdf",
                ],
                b"",
                dir.path(),
            );
            assert_success(&output, "ssh-keygen -Y sign");
            verify_ssh_signature_file(&key, &message, &signature, REPORT_NAMESPACE)
                .unwrap_or_else(|err| panic!("{hash_algorithm}: {err}"));
        }

        let err =
            verify_ssh_signature_file(&key, &message, &signature, MANIFEST_NAMESPACE).unwrap_err();
        assert!(matches!(err, Error::SshSignatureNamespace { .. }), "{err}");

        let other_key = generate_signing_key().unwrap().verifying_key();
        let err = verify_ssh_signature_file(&other_key, &message, &signature, REPORT_NAMESPACE)
            .unwrap_err();
        assert!(matches!(err, Error::SshSignatureKey { .. }), "{err}");
        assert!(
            err.to_string().contains(&openssh_fingerprint(&key)),
            "{err}"
        );

        flip_byte(&message, 100_000);
        let err =
            verify_ssh_signature_file(&key, &message, &signature, REPORT_NAMESPACE).unwrap_err();
        assert!(matches!(err, Error::SignatureMismatch { .. }), "{err}");
    }

    #[test]
    fn ssh_signature_armor_strictness() {
        let dir = tempfile::tempdir().unwrap();
        let key = generate_signing_key().unwrap();
        let message = dir.path().join("manifest.json");
        fs::write(&message, b"{}\n").unwrap();
        let signature = write_ssh_signature(&key, &message, MANIFEST_NAMESPACE).unwrap();
        let armored = fs::read_to_string(&signature).unwrap();

        let blob = dearmor_ssh_signature(armored.as_bytes()).unwrap();
        let spec_width = armor_ssh_signature_with_width(&blob, SSHSIG_SPEC_LINE_WIDTH);
        fs::write(&signature, &spec_width).unwrap();
        verify_ssh_signature_file(
            &key.verifying_key(),
            &message,
            &signature,
            MANIFEST_NAMESPACE,
        )
        .unwrap();

        let variants = [
            armor_ssh_signature_with_width(&blob, 64),
            armored.replace('\n', "\r\n"),
            armored.trim_end().to_string(),
            format!("{armored}\n"),
            armored.replacen("-----BEGIN", "-----begin", 1),
        ];
        for variant in variants {
            fs::write(&signature, &variant).unwrap();
            let err = verify_ssh_signature_file(
                &key.verifying_key(),
                &message,
                &signature,
                MANIFEST_NAMESPACE,
            )
            .unwrap_err();
            assert!(
                matches!(err, Error::MalformedSshSignature { .. }),
                "{variant:?}: {err}"
            );
        }
    }

    #[test]
    fn openssh_public_key_parse_errors() {
        let key = generate_signing_key().unwrap().verifying_key();
        let line = openssh_public_key_line(&key, "p");
        assert_eq!(parse_openssh_public_key(&line).unwrap().0, key);

        let encoded = STANDARD.encode(openssh_public_key_blob(&key));
        let mut short_blob = Vec::new();
        put_string(&mut short_blob, b"ssh-ed25519");
        put_string(&mut short_blob, &[7u8; 31]);
        let cases = [
            format!("ssh-rsa {encoded} p"),
            "ssh-ed25519 !!!! p".to_string(),
            format!("ssh-ed25519 {}", STANDARD.encode(&short_blob)),
            "ssh-ed25519".to_string(),
        ];
        for case in cases {
            assert!(
                parse_openssh_public_key(&case).is_err(),
                "{case:?} should be rejected"
            );
        }
    }

    #[test]
    fn allowed_signers_parse_cases() {
        let key = generate_signing_key().unwrap().verifying_key();
        let text = format!(
            "# comment\n\n{}\nother,second {} trailing-comment\n",
            allowed_signers_line(&key, "auditor"),
            openssh_public_key_line(&key, "").trim_end()
        );
        let signers = parse_allowed_signers(&text).unwrap();
        assert_eq!(signers.len(), 2);
        assert_eq!(signers[0].principals, ["auditor"]);
        assert_eq!(
            signers[0].namespaces,
            Some(vec![
                MANIFEST_NAMESPACE.to_string(),
                REPORT_NAMESPACE.to_string()
            ])
        );
        assert_eq!(signers[0].key, key);
        assert_eq!(signers[1].principals, ["other", "second"]);
        assert_eq!(signers[1].namespaces, None);

        let err = parse_allowed_signers("auditor namespaces=\"x ssh-ed25519 AAAA\n").unwrap_err();
        assert!(err.starts_with("line 1:"), "{err}");
    }
}

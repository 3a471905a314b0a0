//! Signed checkpoints of the audit chain, kept outside the database.
//!
//! The chain's SHA-256 links show an edit to anyone who re-checks them, but someone with write
//! access to the database can rewrite an entry and re-hash every later one, or cut the newest
//! entries and move the head back, and the chain still verifies. A checkpoint is the chain's
//! head (seq and hash) at a moment, signed with an Ed25519 key that lives in a file apart from
//! the database (created 0600), appended to a checkpoint file that also lives apart. Verifying
//! against the latest checkpoint then names what the chain alone cannot: entries cut below it
//! ("truncated") and entries rewritten at or before it ("rewritten").

use std::io::Write;
use std::path::Path;

use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use ketaflow_store::{AuditFilter, Store};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::AppError;

/// One signed checkpoint: a line of the checkpoint file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The chain's last seq when it was taken.
    pub seq: i64,
    /// That entry's hash.
    pub hash: String,
    /// When (RFC 3339).
    pub at: String,
    /// The signer's public key, hex.
    pub public_key: String,
    /// Ed25519 signature of [`Checkpoint::message`], hex.
    pub signature: String,
}

impl Checkpoint {
    /// The bytes signed.
    fn message(seq: i64, hash: &str, at: &str) -> Vec<u8> {
        format!("ketaflow audit checkpoint\n{seq}\n{hash}\n{at}\n").into_bytes()
    }

    /// Whether the signature is this public key's over this seq, hash and time.
    pub fn signature_holds(&self) -> bool {
        let Some(key) = hex::decode(&self.public_key)
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .and_then(|b| VerifyingKey::from_bytes(&b).ok())
        else {
            return false;
        };
        let Some(signature) = hex::decode(&self.signature)
            .ok()
            .and_then(|b| <[u8; 64]>::try_from(b).ok())
            .map(|b| Signature::from_bytes(&b))
        else {
            return false;
        };
        key.verify(&Self::message(self.seq, &self.hash, &self.at), &signature)
            .is_ok()
    }
}

fn failed(what: &str, path: &Path, e: impl std::fmt::Display) -> AppError {
    AppError::BadInput(format!("{what} {}: {e}", path.display()))
}

/// The signing key in `path` (64 hex digits), or a new one written there readable by its owner
/// only, when the file does not exist.
pub fn load_or_create_key(path: &Path) -> Result<SigningKey, AppError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = hex::decode(text.trim())
                .ok()
                .and_then(|b| <[u8; 32]>::try_from(b).ok())
                .ok_or_else(|| failed("the checkpoint key", path, "is not 64 hex digits"))?;
            Ok(SigningKey::from_bytes(&bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut seed = [0u8; 32];
            rand::RngCore::fill_bytes(&mut rand::rng(), &mut seed);
            let key = SigningKey::from_bytes(&seed);
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(path)
                .map_err(|e| failed("could not create the checkpoint key", path, e))?;
            writeln!(file, "{}", hex::encode(seed)).map_err(|e| failed("could not write", path, e))?;
            Ok(key)
        }
        Err(e) => Err(failed("could not read the checkpoint key", path, e)),
    }
}

/// Verifies the chain, then signs its head and appends the checkpoint to `file`.
pub async fn write_checkpoint(
    store: &Store,
    key: &SigningKey,
    file: &Path,
    now: OffsetDateTime,
) -> Result<Checkpoint, AppError> {
    let chain = store.verify_audit_chain().await?;
    if let Some(problem) = chain.problem {
        return Err(AppError::Conflict(format!(
            "the audit chain is broken at entry {} ({:?}); no checkpoint is signed over it",
            problem.seq, problem.kind
        )));
    }
    let at = crate::vitals::rfc3339(now);
    let seq = chain.checked as i64;
    let signature = key.sign(&Checkpoint::message(seq, &chain.last_hash, &at));
    let checkpoint = Checkpoint {
        seq,
        hash: chain.last_hash,
        at,
        public_key: hex::encode(key.verifying_key().to_bytes()),
        signature: hex::encode(signature.to_bytes()),
    };
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options
        .open(file)
        .map_err(|e| failed("could not open the checkpoint file", file, e))?;
    writeln!(out, "{}", serde_json::to_string(&checkpoint)?)
        .map_err(|e| failed("could not write", file, e))?;
    out.sync_all().map_err(|e| failed("could not sync", file, e))?;
    Ok(checkpoint)
}

/// What verifying against the latest checkpoint found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointVerdict {
    /// The chain holds the checkpointed head unchanged (and perhaps more after it).
    Holds {
        /// The checkpoint checked.
        checkpoint: Checkpoint,
        /// Entries in the chain now.
        entries: u64,
    },
    /// The checkpoint file's last line is not a valid checkpoint, or not signed by the expected key.
    BadCheckpoint(String),
    /// The chain is shorter than the checkpoint: entries were cut.
    Truncated {
        /// The checkpoint's seq.
        checkpoint_seq: i64,
        /// Entries in the chain now.
        entries: u64,
    },
    /// The entry at the checkpoint's seq has another hash: an entry at or before it was rewritten
    /// and the chain re-hashed.
    Rewritten {
        /// The checkpoint's seq.
        seq: i64,
    },
}

/// Checks the chain against the last checkpoint in `file`; `trusted_key` (hex), when given, is
/// the only public key accepted.
pub async fn verify_against(
    store: &Store,
    file: &Path,
    trusted_key: Option<&str>,
) -> Result<CheckpointVerdict, AppError> {
    let text =
        std::fs::read_to_string(file).map_err(|e| failed("could not read the checkpoint file", file, e))?;
    let Some(last) = text.lines().rev().find(|l| !l.trim().is_empty()) else {
        return Ok(CheckpointVerdict::BadCheckpoint(
            "the checkpoint file is empty".into(),
        ));
    };
    let checkpoint: Checkpoint = match serde_json::from_str(last) {
        Ok(c) => c,
        Err(e) => {
            return Ok(CheckpointVerdict::BadCheckpoint(format!(
                "the last line is not a checkpoint: {e}"
            )));
        }
    };
    if !checkpoint.signature_holds() {
        return Ok(CheckpointVerdict::BadCheckpoint(
            "its signature does not verify".into(),
        ));
    }
    if trusted_key.is_some_and(|k| !k.eq_ignore_ascii_case(&checkpoint.public_key)) {
        return Ok(CheckpointVerdict::BadCheckpoint(
            "it is signed by another key than the trusted one".into(),
        ));
    }
    let chain = store.verify_audit_chain().await?;
    if (chain.checked as i64) < checkpoint.seq {
        return Ok(CheckpointVerdict::Truncated {
            checkpoint_seq: checkpoint.seq,
            entries: chain.checked,
        });
    }
    let at_seq = if checkpoint.seq == 0 {
        None
    } else {
        store
            .list_audit(&AuditFilter {
                after_seq: Some(checkpoint.seq - 1),
                limit: Some(1),
                ..AuditFilter::default()
            })
            .await?
            .into_iter()
            .find(|e| e.seq == checkpoint.seq)
    };
    let holds = match &at_seq {
        Some(entry) => entry.hash == checkpoint.hash,
        None => checkpoint.seq == 0,
    };
    if !holds {
        return Ok(CheckpointVerdict::Rewritten { seq: checkpoint.seq });
    }
    Ok(CheckpointVerdict::Holds {
        checkpoint,
        entries: chain.checked,
    })
}

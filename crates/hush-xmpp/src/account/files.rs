//! Sharing encrypted files: upload through the server's HTTP upload service, then the link
//! in an encrypted message; and fetching what others shared.

use std::path::Path;
use std::sync::Arc;

use hush_engine::Content;
use hush_files::{FileKey, Link, SharedFile, TAG_LEN};
use hush_store::Store;

use super::Hush;
use crate::error::Result;
use crate::transfer::{Downloaded, Http, Progress, TransferError};
use crate::{upload, BareJid, SendOptions, SendReport};

/// What sharing a file did: the message's report, and what was shared.
#[derive(Debug)]
pub struct FileSent {
    /// The message that carried the link, as for any message.
    pub report: SendReport,
    /// The file as its readers get it (its link holds the key: never show or log it).
    pub file: SharedFile,
}

/// A media type from a file name's extension, for the readers' clients (it travels
/// encrypted); `application/octet-stream` when unknown.
pub(crate) fn media_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "jpg" | "jpeg" => "image/jpeg",
        "png" => "image/png",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "heic" => "image/heic",
        "svg" => "image/svg+xml",
        "pdf" => "application/pdf",
        "txt" | "log" | "md" => "text/plain",
        "mp4" | "m4v" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "m4a" => "audio/mp4",
        "ogg" | "oga" | "opus" => "audio/ogg",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

impl<S: Store> Hush<S> {
    /// Trusts `der` (a CA certificate, DER) for file transfers too, besides the system's
    /// roots (or `SSL_CERT_FILE`): for a development server with a CA of its own, such as
    /// `hush-devserver`'s. The XMPP connection is not affected.
    pub fn trust_for_files(&mut self, der: Vec<u8>) {
        self.file_roots.push(der);
    }

    fn http(&self) -> std::result::Result<Http, TransferError> {
        Http::with_extra_roots(&self.file_roots)
    }

    /// Shares the file at `path` with `to` (a contact, or a room we are in): encrypts it
    /// with a fresh key while uploading it to our server's upload service, then sends the
    /// `aesgcm://` link — with the Stateless File Sharing element (name, type, size, SHA-256)
    /// for omemo:2 readers — in an encrypted message, as [`Self::send`] or
    /// [`Self::send_to_room`] would. The server sees the ciphertext and its size only.
    /// Nothing is uploaded when the conversation would go in clear.
    pub async fn send_file(
        &mut self,
        to: &BareJid,
        path: &Path,
        progress: Arc<dyn Progress>,
    ) -> Result<FileSent> {
        let is_room = self.store.room(to.as_str())?.is_some();
        if !is_room {
            if self
                .engine
                .route(&self.store, to.as_str(), SendOptions::default())?
                == hush_engine::Route::InClear
            {
                return Err(TransferError::NotEncrypted { to: to.to_string() }.into());
            }
            // Nothing is uploaded for a message that could not go (no device to read it, a
            // requirement of the conversation not met): the send's own refusal comes first.
            self.check_sendable(to).await?;
        } else {
            // As the room's send reads it (a stored room found not secure is read again
            // there, so that refusal is left to it).
            let route =
                match self
                    .engine
                    .room_readers(&self.store, to.as_str(), SendOptions::default())
                {
                    Ok((route, _)) => route,
                    Err(hush_engine::EngineError::NotSent { .. }) => hush_engine::Route::Encrypted,
                    Err(e) => return Err(e.into()),
                };
            if route == hush_engine::Route::InClear {
                return Err(TransferError::NotEncrypted { to: to.to_string() }.into());
            }
        }
        let io = |source| TransferError::Io {
            path: path.to_owned(),
            source,
        };
        let meta = tokio::fs::metadata(path).await.map_err(io)?;
        if !meta.is_file() {
            return Err(TransferError::Io {
                path: path.to_owned(),
                source: std::io::Error::other("not a regular file"),
            }
            .into());
        }
        let size = meta.len();
        if size > hush_files::MAX_PLAINTEXT {
            return Err(TransferError::Crypto(hush_files::FileError::TooLarge {
                limit: hush_files::MAX_PLAINTEXT,
            })
            .into());
        }
        let encrypted = size + TAG_LEN as u64;
        let service =
            self.xmpp
                .find_upload_service()
                .await?
                .ok_or_else(|| TransferError::NoService {
                    domain: self.jid.domain().to_string(),
                })?;
        if let Some(max) = service.max_size.filter(|max| encrypted > *max) {
            return Err(TransferError::TooLarge {
                size: encrypted,
                max,
            }
            .into());
        }
        let name = upload::neutral_name(&mut self.rng);
        let slot = self
            .xmpp
            .upload_slot(&service.jid, &name, encrypted)
            .await?;
        let key = FileKey::generate(&mut self.rng);
        // The link must be one before anything goes up.
        let link = Link::new(&slot.get, key).map_err(TransferError::Crypto)?;
        let http = self.http()?;
        let uploaded = http.upload(&slot, path, size, &link.key, progress).await?;
        let file_name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .filter(|n| !n.is_empty());
        let file = SharedFile {
            media_type: file_name.as_deref().map(|n| media_type(n).to_owned()),
            name: file_name,
            size: Some(uploaded.size),
            sha256: Some(uploaded.sha256),
            link,
        };
        let content = Content {
            body: file.link.to_aesgcm().to_string(),
            extra: vec![file.to_element()],
        };
        let report = if is_room {
            self.send_to_room(to, content, SendOptions::default())
                .await?
        } else {
            self.send(to, content, SendOptions::default()).await?
        };
        Ok(FileSent { report, file })
    }

    /// Fetches a shared file into `dir`, decrypting and checking it as it streams (see
    /// [`Http::download`]); at most `limit` bytes.
    pub async fn fetch_file(
        &self,
        file: &SharedFile,
        dir: &Path,
        limit: u64,
        progress: &dyn Progress,
    ) -> Result<Downloaded> {
        Ok(self.http()?.download(file, dir, limit, progress).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_types_follow_the_extension() {
        assert_eq!(media_type("Summit.JPG"), "image/jpeg");
        assert_eq!(media_type("notes"), "application/octet-stream");
        assert_eq!(media_type("a.tar.gz"), "application/gzip");
    }
}

//! Files staff attach to an inbox reply.
//!
//! Twilio and Meta fetch an attachment from a public link when they send the message, so
//! an uploaded file is kept here and served at an unguessable link
//! (`/media/{token}/{name}.{ext}`). What a file is comes from its first bytes, never from
//! the name or the type the browser claimed, and only what WhatsApp takes is accepted, at
//! WhatsApp's sizes; the link ends in the extension of what it really is, because the
//! send path chooses Meta's media kind (image, video, audio, document) from it.
//!
//! The bytes live in the database so that every process serves them, and are deleted by
//! housekeeping after `HEIMDALL_ATTACHMENT_DAYS`. This module never fetches anything and
//! never sends: the reply that carries the link goes through the gates like any other.

use chrono::{DateTime, Duration, Utc};
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, IntoActiveModel, QueryFilter};
use sha2::Digest;

use crate::clock::new_id;
use crate::entities::attachment;
use crate::Core;

/// The largest attachment: WhatsApp's limit for video and audio.
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// WhatsApp's limit for images.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;

/// The path under which attachments are served.
pub const PATH: &str = "/media";

/// What WhatsApp takes (by the file's own bytes), with its extension in our links.
const ACCEPTED: &[(&str, &str)] = &[
    ("image/jpeg", "jpg"),
    ("image/png", "png"),
    ("video/mp4", "mp4"),
    ("video/3gpp", "3gp"),
    ("audio/ogg", "ogg"),
    ("audio/mpeg", "mp3"),
    ("audio/aac", "aac"),
    ("audio/amr", "amr"),
    ("audio/m4a", "m4a"),
    ("application/pdf", "pdf"),
    (
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "docx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "xlsx",
    ),
    (
        "application/vnd.openxmlformats-officedocument.presentationml.presentation",
        "pptx",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum AttachmentError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {size} bytes; WhatsApp takes at most {max} for this kind of file")]
    TooLarge { size: usize, max: usize },
    #[error("{0}: WhatsApp takes JPEG and PNG images, MP4 and 3GPP video, OGG, MP3, AAC, AMR and M4A audio, PDF and Office documents")]
    Unsupported(String),
    #[error(transparent)]
    Db(#[from] sea_orm::DbErr),
}

/// A stored attachment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub id: String,
    pub token: String,
    /// The name in the link: the uploaded name's safe part, with the real extension.
    pub file_name: String,
    pub content_type: String,
    pub size: usize,
    pub sha256: String,
    pub created_at: DateTime<Utc>,
}

impl Attachment {
    /// The link, under `base` (Heimdall's public URL).
    pub fn url(&self, base: &str) -> String {
        format!(
            "{}{PATH}/{}/{}",
            base.trim_end_matches('/'),
            self.token,
            self.file_name
        )
    }
}

impl From<&attachment::Model> for Attachment {
    fn from(m: &attachment::Model) -> Self {
        Attachment {
            id: m.id.clone(),
            token: m.token.clone(),
            file_name: m.file_name.clone(),
            content_type: m.content_type.clone(),
            size: usize::try_from(m.size).unwrap_or(0),
            sha256: m.sha256.clone(),
            created_at: m.created_at,
        }
    }
}

/// What the bytes are: the content type and the extension our link gets.
pub fn sniff(bytes: &[u8]) -> Result<(&'static str, &'static str), AttachmentError> {
    if bytes.is_empty() {
        return Err(AttachmentError::Empty);
    }
    let Some(kind) = infer::get(bytes) else {
        return Err(AttachmentError::Unsupported(
            "this kind of file is not recognised".into(),
        ));
    };
    let found = ACCEPTED
        .iter()
        .find(|(mime, _)| *mime == kind.mime_type())
        // infer names MP4 audio audio/m4a and some MP4 video by its brand.
        .or_else(|| match kind.mime_type() {
            "audio/x-m4a" | "audio/mp4" => ACCEPTED.iter().find(|(m, _)| *m == "audio/m4a"),
            "video/quicktime" => None,
            _ => None,
        });
    match found {
        Some((mime, ext)) => {
            let max = if mime.starts_with("image/") {
                MAX_IMAGE_BYTES
            } else {
                MAX_BYTES
            };
            if bytes.len() > max {
                return Err(AttachmentError::TooLarge {
                    size: bytes.len(),
                    max,
                });
            }
            Ok((mime, ext))
        }
        None => Err(AttachmentError::Unsupported(format!(
            "a {} file",
            kind.mime_type()
        ))),
    }
}

/// The uploaded name's stem as safe link text: letters, digits, `-` and `_`, at most 60
/// characters (`attachment` when nothing is left).
fn safe_stem(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or(name);
    let stem = base.rsplit_once('.').map(|(s, _)| s).unwrap_or(base);
    let mut out = String::new();
    for c in stem.chars() {
        if out.chars().count() >= 60 {
            break;
        }
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            out.push(c);
        } else if !out.ends_with('-') && !out.is_empty() {
            out.push('-');
        }
    }
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "attachment".into()
    } else {
        out
    }
}

/// Keep an uploaded file; `uploaded_by` is the staff member, for the record.
pub async fn store(
    core: &Core,
    uploaded_name: &str,
    bytes: &[u8],
    uploaded_by: &str,
) -> Result<Attachment, AttachmentError> {
    if bytes.len() > MAX_BYTES {
        return Err(AttachmentError::TooLarge {
            size: bytes.len(),
            max: MAX_BYTES,
        });
    }
    let (content_type, ext) = sniff(bytes)?;
    let mut token_bytes = [0u8; 24];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut token_bytes);
    let model = attachment::Model {
        id: new_id(),
        token: hex::encode(token_bytes),
        file_name: format!("{}.{ext}", safe_stem(uploaded_name)),
        content_type: content_type.to_string(),
        size: i64::try_from(bytes.len()).unwrap_or(i64::MAX),
        sha256: hex::encode(sha2::Sha256::digest(bytes)),
        content: bytes.to_vec(),
        uploaded_by: uploaded_by.to_string(),
        created_at: core.now(),
    };
    let stored = model.into_active_model().insert(&core.db.conn).await?;
    Ok(Attachment::from(&stored))
}

/// An attachment and its bytes by the token in its link.
pub async fn open(
    core: &Core,
    token: &str,
) -> Result<Option<(Attachment, Vec<u8>)>, sea_orm::DbErr> {
    if token.len() != 48 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Ok(None);
    }
    Ok(attachment::Entity::find()
        .filter(attachment::Column::Token.eq(token))
        .one(&core.db.conn)
        .await?
        .map(|m| (Attachment::from(&m), m.content)))
}

/// Whether `url` is a link to one of our attachments under `base`.
pub fn is_ours(url: &str, base: &str) -> bool {
    url.strip_prefix(base.trim_end_matches('/'))
        .and_then(|rest| rest.strip_prefix(PATH))
        .and_then(|rest| rest.strip_prefix('/'))
        .is_some_and(|rest| {
            let mut parts = rest.split('/');
            matches!(
                (parts.next(), parts.next(), parts.next()),
                (Some(token), Some(name), None)
                    if token.len() == 48 && token.bytes().all(|b| b.is_ascii_hexdigit()) && !name.is_empty()
            )
        })
}

/// Delete attachments older than `HEIMDALL_ATTACHMENT_DAYS` (the provider fetched them
/// long before): how many went.
pub async fn prune(core: &Core) -> Result<u64, sea_orm::DbErr> {
    let cutoff = core.now() - Duration::days(i64::from(core.settings.attachment_days));
    Ok(attachment::Entity::delete_many()
        .filter(attachment::Column::CreatedAt.lt(cutoff))
        .exec(&core.db.conn)
        .await?
        .rows_affected)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PNG: &[u8] = &[
        0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0, 0, 13, b'I', b'H', b'D', b'R',
    ];

    #[test]
    fn the_bytes_decide_not_the_name() {
        assert_eq!(sniff(PNG).unwrap(), ("image/png", "png"));
        assert_eq!(sniff(b"%PDF-1.7\n...").unwrap(), ("application/pdf", "pdf"));
        // An executable, a script and HTML are refused whatever they are called.
        assert!(matches!(
            sniff(b"MZ\x90\x00\x03\x00\x00\x00"),
            Err(AttachmentError::Unsupported(_))
        ));
        assert!(matches!(
            sniff(b"<html><script>alert(1)</script></html>"),
            Err(AttachmentError::Unsupported(_))
        ));
        assert!(matches!(sniff(b""), Err(AttachmentError::Empty)));
    }

    #[test]
    fn images_are_held_to_whatsapps_five_megabytes() {
        let mut big = PNG.to_vec();
        big.resize(MAX_IMAGE_BYTES + 1, 0);
        assert!(matches!(sniff(&big), Err(AttachmentError::TooLarge { .. })));
        let mut pdf = b"%PDF-1.7\n".to_vec();
        pdf.resize(MAX_IMAGE_BYTES + 1, b' ');
        assert!(sniff(&pdf).is_ok(), "a document may be larger");
    }

    #[test]
    fn link_names_are_safe() {
        assert_eq!(safe_stem("Invoice March 2026.pdf"), "Invoice-March-2026");
        assert_eq!(safe_stem("../../etc/passwd"), "passwd");
        assert_eq!(safe_stem("C:\\x\\<script>.png"), "script");
        assert_eq!(safe_stem("...."), "attachment");
        assert_eq!(safe_stem(&"å".repeat(80)), "attachment");
    }

    #[test]
    fn only_our_links_are_ours() {
        let token = "ab".repeat(24);
        let base = "https://heimdall.example.com";
        assert!(is_ours(&format!("{base}/media/{token}/x.png"), base));
        assert!(is_ours(
            &format!("{base}/media/{token}/x.png"),
            "https://heimdall.example.com/"
        ));
        assert!(!is_ours(
            &format!("https://evil.example/media/{token}/x.png"),
            base
        ));
        assert!(!is_ours(&format!("{base}/media/short/x.png"), base));
        assert!(!is_ours(&format!("{base}/media/{token}/x.png/more"), base));
        assert!(!is_ours(&format!("{base}.evil/media/{token}/x.png"), base));
    }
}

//! Attachments kept for inbox replies, on both backends: the bytes come back as they went
//! in, under an unguessable token, typed by what they are; a file WhatsApp does not take
//! is refused and nothing is kept; housekeeping deletes them after the retention.

use chrono::Duration;
use sea_orm::{EntityTrait, PaginatorTrait};

use heimdall_domain::channels::attachments::{self, AttachmentError};
use heimdall_domain::entities::attachment;
use heimdall_domain::testing::TestEnv;

const PDF: &[u8] = b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF\n";

async fn count(env: &TestEnv) -> u64 {
    attachment::Entity::find()
        .count(&env.core.db.conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_stored_file_comes_back_by_its_token_as_what_it_is() {
    let env = TestEnv::new(&[("HEIMDALL_ATTACHMENT_DAYS", "7")]).await;
    let a = attachments::store(&env.core, "Lease (signed).docx", PDF, "op@example.com")
        .await
        .unwrap();
    // The bytes say PDF, whatever the name said.
    assert_eq!(a.content_type, "application/pdf");
    assert_eq!(a.file_name, "Lease-signed.pdf");
    assert_eq!(a.size, PDF.len());
    assert_eq!(a.token.len(), 48);
    let url = a.url("https://heimdall.example.com/");
    assert_eq!(
        url,
        format!(
            "https://heimdall.example.com/media/{}/Lease-signed.pdf",
            a.token
        )
    );
    assert!(attachments::is_ours(&url, "https://heimdall.example.com"));
    let (found, bytes) = attachments::open(&env.core, &a.token)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found, a);
    assert_eq!(bytes, PDF);
    // Another token, or none that could be one, finds nothing.
    assert!(attachments::open(&env.core, &"0".repeat(48))
        .await
        .unwrap()
        .is_none());
    assert!(attachments::open(&env.core, "../../etc")
        .await
        .unwrap()
        .is_none());
    // Two uploads of one file are two links.
    let b = attachments::store(&env.core, "x.pdf", PDF, "op@example.com")
        .await
        .unwrap();
    assert_ne!(a.token, b.token);

    // Retention: after 7 days they go, and not before.
    env.clock.advance(Duration::days(7) - Duration::minutes(1));
    assert_eq!(attachments::prune(&env.core).await.unwrap(), 0);
    env.clock.advance(Duration::minutes(2));
    assert_eq!(attachments::prune(&env.core).await.unwrap(), 2);
    assert!(attachments::open(&env.core, &a.token)
        .await
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn what_whatsapp_does_not_take_is_refused_and_nothing_is_kept() {
    let env = TestEnv::new(&[]).await;
    for (name, bytes) in [
        (
            "page.png",
            b"<!doctype html><script>alert(1)</script>".to_vec(),
        ),
        ("setup.pdf", b"MZ\x90\x00\x03\x00\x00\x00\x04\x00".to_vec()),
        ("empty.png", Vec::new()),
    ] {
        let err = attachments::store(&env.core, name, &bytes, "op@example.com")
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                AttachmentError::Unsupported(_) | AttachmentError::Empty
            ),
            "{name}: {err:?}"
        );
    }
    let mut big = PDF.to_vec();
    big.resize(attachments::MAX_BYTES + 1, b' ');
    let err = attachments::store(&env.core, "big.pdf", &big, "op@example.com")
        .await
        .unwrap_err();
    assert!(matches!(err, AttachmentError::TooLarge { .. }), "{err:?}");
    assert_eq!(count(&env).await, 0);
}

//! QR codes that lead to a form (and, on WhatsApp, to a prefilled message):
//! creating, scanning, rendering.

use super::*;

/// A QR code: where it was put up, how often it was scanned.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct QrCode {
    pub id: String,
    pub code: String,
    pub form_id: String,
    pub source_label: String,
    pub prefilled_text: Option<String>,
    pub scans: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// What the QR encodes: `<public URL>/q/<code>`.
    pub url: String,
    pub svg_url: String,
    pub png_url: String,
    pub print_url: String,
}

impl QrCode {
    fn from_model(core: &Core, m: qr_code::Model) -> Self {
        let url = qr_target_url(core, &m.code);
        QrCode {
            svg_url: format!("{url}.svg"),
            png_url: format!("{url}.png"),
            print_url: format!("{url}/print"),
            url,
            id: m.id,
            code: m.code,
            form_id: m.form_id,
            source_label: m.source_label,
            prefilled_text: m.prefilled_text,
            scans: m.scans,
            created_by: m.created_by,
            created_at: m.created_at,
        }
    }

    /// The text a "Message us on WhatsApp" link fills in.
    pub fn whatsapp_text(&self) -> String {
        self.prefilled_text
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| default_prefilled_text(&self.source_label))
    }
}

/// A new QR code for a form.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct QrInput {
    /// Where it is put up: 'open house 12 Elm St', 'flyer March'.
    pub source_label: String,
    /// The WhatsApp message the landing page's link fills in; default
    /// "Hi! I scanned the code at <source label>."
    #[serde(default)]
    pub prefilled_text: Option<String>,
}

pub fn default_prefilled_text(source_label: &str) -> String {
    format!("Hi! I scanned the code at {}.", source_label.trim())
}

/// What a QR code encodes.
pub fn qr_target_url(core: &Core, code: &str) -> String {
    public_url(core, &format!("/q/{code}"))
}

pub(super) fn new_code() -> String {
    let mut rng = rand::thread_rng();
    (0..CODE_LEN)
        .map(|_| CODE_ALPHABET[(rng.next_u32() as usize) % CODE_ALPHABET.len()] as char)
        .collect()
}

/// Is this string shaped like a code (so a path can be looked up)?
pub fn is_code(s: &str) -> bool {
    (4..=32).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

pub async fn create_qr_code(
    core: &Core,
    form_id: &str,
    input: &QrInput,
    actor: &str,
) -> Result<QrCode, FormError> {
    optin_form::Entity::find_by_id(form_id)
        .one(&core.db.conn)
        .await?
        .ok_or_else(|| FormError::NotFound(form_id.to_string()))?;
    let label = clean(&input.source_label).replace('\n', " ");
    let prefilled = input
        .prefilled_text
        .as_deref()
        .map(clean)
        .filter(|t| !t.is_empty());
    let mut errors = FieldErrors::new();
    check_text(
        &mut errors,
        "source_label",
        &label,
        true,
        120,
        "the source label",
    );
    if let Some(p) = &prefilled {
        check_text(
            &mut errors,
            "prefilled_text",
            p,
            false,
            500,
            "the prefilled text",
        );
    }
    if !errors.is_empty() {
        return Err(FormError::Invalid(errors));
    }
    let now = core.now();
    let mut last_err = None;
    for _ in 0..5 {
        let code = new_code();
        let res = qr_code::ActiveModel {
            id: Set(new_id()),
            code: Set(code.clone()),
            form_id: Set(form_id.to_string()),
            source_label: Set(label.clone()),
            prefilled_text: Set(prefilled.clone()),
            scans: Set(0),
            created_by: Set(actor.to_string()),
            created_at: Set(now),
        }
        .insert(&core.db.conn)
        .await;
        match res {
            Ok(m) => {
                audit::record_staff_action(
                    &core.db.conn,
                    actor,
                    "optin_form.qr_code",
                    Some(form_id),
                    Some(serde_json::json!({"code": code, "source_label": label})),
                    None,
                    now,
                )
                .await?;
                return Ok(QrCode::from_model(core, m));
            }
            // A code collision (1 in 10^11): draw again.
            Err(e) => last_err = Some(e),
        }
    }
    Err(FormError::Db(last_err.unwrap_or_else(|| {
        sea_orm::DbErr::Custom("could not draw a unique QR code".into())
    })))
}

pub async fn list_qr_codes(core: &Core, form_id: &str) -> Result<Vec<QrCode>, sea_orm::DbErr> {
    Ok(qr_code::Entity::find()
        .filter(qr_code::Column::FormId.eq(form_id))
        .order_by_asc(qr_code::Column::CreatedAt)
        .limit(MAX_LIST)
        .all(&core.db.conn)
        .await?
        .into_iter()
        .map(|m| QrCode::from_model(core, m))
        .collect())
}

/// A code and its form, without counting a scan (images, print page).
pub async fn find_qr_code(
    core: &Core,
    code: &str,
) -> Result<Option<(QrCode, Form)>, sea_orm::DbErr> {
    let code = code.trim().to_ascii_lowercase();
    if !is_code(&code) {
        return Ok(None);
    }
    let Some(m) = qr_code::Entity::find()
        .filter(qr_code::Column::Code.eq(code))
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    let Some(f) = optin_form::Entity::find_by_id(m.form_id.as_str())
        .one(&core.db.conn)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some((
        QrCode::from_model(core, m),
        to_form(core, &core.db.conn, f).await?,
    )))
}

/// Count a scan (atomically, in the database) and return the code and form.
pub async fn record_scan(
    core: &Core,
    code: &str,
) -> Result<Option<(QrCode, Form)>, sea_orm::DbErr> {
    let code = code.trim().to_ascii_lowercase();
    if !is_code(&code) {
        return Ok(None);
    }
    let res = qr_code::Entity::update_many()
        .col_expr(
            qr_code::Column::Scans,
            sea_orm::sea_query::ExprTrait::add(Expr::col(qr_code::Column::Scans), 1),
        )
        .filter(qr_code::Column::Code.eq(code.as_str()))
        .exec(&core.db.conn)
        .await?;
    if res.rows_affected == 0 {
        return Ok(None);
    }
    find_qr_code(core, &code).await
}

#[derive(Debug, thiserror::Error)]
pub enum QrError {
    #[error("could not make a QR code: {0}")]
    Encode(String),
}

pub(super) fn qr_for(url: &str) -> Result<qrcode::QrCode, QrError> {
    qrcode::QrCode::with_error_correction_level(url.as_bytes(), qrcode::EcLevel::M)
        .map_err(|e| QrError::Encode(e.to_string()))
}

/// The QR code for `url` as an SVG document (quiet zone included).
pub fn qr_svg(url: &str) -> Result<String, QrError> {
    use qrcode::render::svg;
    Ok(qr_for(url)?
        .render::<svg::Color<'_>>()
        .min_dimensions(256, 256)
        .dark_color(svg::Color("#000000"))
        .light_color(svg::Color("#ffffff"))
        .build())
}

/// The QR code for `url` as a PNG at least `size` pixels wide (clamped to
/// 64..=2048).
pub fn qr_png(url: &str, size: u32) -> Result<Vec<u8>, QrError> {
    use image::ImageEncoder;
    let size = size.clamp(64, 2048);
    let img = qr_for(url)?
        .render::<image::Luma<u8>>()
        .min_dimensions(size, size)
        .build();
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(
            img.as_raw(),
            img.width(),
            img.height(),
            image::ExtendedColorType::L8,
        )
        .map_err(|e| QrError::Encode(e.to_string()))?;
    Ok(out)
}

/// Percent-encode everything but RFC 3986's unreserved characters.
pub(super) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `https://wa.me/<number>?text=<prefilled>` for the WhatsApp sender, when
/// the sender is a phone number (Twilio). With Meta's Cloud API the sender
/// setting is a phone-number id, not a number, so there is no link.
/// Writing to us this way opens the 24-hour window; it is not an opt-in.
pub fn whatsapp_link(core: &Core, qr: &QrCode) -> Option<String> {
    let sender = core.settings.sender_for(Channel::WhatsApp)?;
    let number = PhoneNumber::parse_e164(sender.trim_start_matches("whatsapp:")).ok()?;
    let digits: String = number
        .as_str()
        .chars()
        .filter(char::is_ascii_digit)
        .collect();
    Some(format!(
        "https://wa.me/{digits}?text={}",
        percent_encode(&qr.whatsapp_text())
    ))
}

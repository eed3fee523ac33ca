//! A link code as a QR code drawn with Unicode half blocks, to scan from
//! the screen instead of typing 180 characters into a phone.

use qrcode::render::unicode::Dense1x2;
use qrcode::{EcLevel, QrCode};

/// The QR code of `text` (upper-cased: Bech32 allows it, and QR codes
/// hold upper-case letters and digits more compactly), light modules
/// drawn, for a terminal with a dark background; `None` if it does not
/// fit in a QR code.
pub fn render(text: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(text.to_uppercase(), EcLevel::L).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_link_code_fits_in_a_qr_code() {
        let text = format!("cairnlink1{}", "q".repeat(180));
        let drawn = super::render(&text).unwrap_or_default();
        assert!(drawn.lines().count() > 10, "{drawn}");
    }
}

//! QR codes as `data:` SVG images.

use base64::Engine as _;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An `img` source showing `data` as a QR code, or `None` if it does not fit in one.
pub fn svg_data_url(data: &[u8]) -> Option<String> {
    let code = QrCode::with_error_correction_level(data, EcLevel::L).ok()?;
    let svg = code.render::<svg::Color>().min_dimensions(256, 256).quiet_zone(true).build();
    Some(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

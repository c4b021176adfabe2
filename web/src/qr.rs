//! QR codes as `data:` SVG images.

use base64::Engine as _;
use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};
use yew::prelude::*;

/// An `img` source showing `data` as a QR code, or `None` if it does not fit in one.
fn svg_data_url(data: &[u8]) -> Option<String> {
    let code = QrCode::with_error_correction_level(data, EcLevel::L).ok()?;
    let svg = code.render::<svg::Color>().min_dimensions(256, 256).quiet_zone(true).build();
    Some(format!("data:image/svg+xml;base64,{}", base64::engine::general_purpose::STANDARD.encode(svg)))
}

#[derive(Properties, PartialEq)]
pub struct QrProps {
    /// What the code encodes.
    pub data: Vec<u8>,
    /// The image's accessible name.
    pub alt: AttrValue,
}

/// A QR code image. Encoding one (mask selection included) costs tens of milliseconds in wasm, so
/// it is computed once per `data` rather than on every render of the view around it.
#[component]
pub fn QrImage(props: &QrProps) -> Html {
    let src = use_memo(props.data.clone(), |data| svg_data_url(data));
    match (*src).clone() {
        Some(src) => html! { <img {src} alt={props.alt.clone()} class="qr" /> },
        None => Html::default(),
    }
}

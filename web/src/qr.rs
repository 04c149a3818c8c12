//! A QR code drawn as SVG in the page (no network, no image file).

use leptos::prelude::*;
use qrcode::render::svg;
use qrcode::QrCode;

/// `text` as a QR code (the invoice upper-cased: BOLT11 allows it, and QR codes hold upper-case
/// letters more compactly).
#[component]
pub fn Qr(text: String, id: &'static str) -> impl IntoView {
    let drawn = QrCode::new(text.to_uppercase().as_bytes()).map(|code| {
        code.render::<svg::Color>()
            .min_dimensions(240, 240)
            .dark_color(svg::Color("#000"))
            .light_color(svg::Color("#fff"))
            .build()
    });
    match drawn {
        Ok(svg) => view! { <div class="qr" id=id inner_html=svg></div> }.into_any(),
        Err(e) => {
            view! { <p class="bad" id=id>{format!("cannot draw the QR code: {e}")}</p> }.into_any()
        }
    }
}

//! Copying text to the clipboard.

/// Puts `text` on the clipboard (the browser may refuse without a user gesture; then nothing
/// happens and the text stays on screen to select by hand).
pub fn copy(text: &str) {
    if let Some(window) = web_sys::window() {
        let _ = window.navigator().clipboard().write_text(text);
    }
}

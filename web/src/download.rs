//! Files in and out of the browser: download bytes, read a chosen file.

use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

/// Offers `bytes` as a download named `name`.
pub fn download(name: &str, bytes: &[u8]) -> Result<(), String> {
    let fail = |what: &str| format!("cannot save the file: {what}");
    let document = web_sys::window()
        .and_then(|w| w.document())
        .ok_or_else(|| fail("no document"))?;
    let parts = js_sys::Array::of1(&js_sys::Uint8Array::from(bytes));
    let options = web_sys::BlobPropertyBag::new();
    options.set_type("application/json");
    let blob = web_sys::Blob::new_with_u8_array_sequence_and_options(&parts, &options)
        .map_err(|_| fail("blob"))?;
    let url = web_sys::Url::create_object_url_with_blob(&blob).map_err(|_| fail("url"))?;
    let anchor: web_sys::HtmlAnchorElement = document
        .create_element("a")
        .map_err(|_| fail("link"))?
        .dyn_into()
        .map_err(|_| fail("link"))?;
    anchor.set_href(&url);
    anchor.set_download(name);
    anchor.click();
    let _ = web_sys::Url::revoke_object_url(&url);
    Ok(())
}

/// The bytes of the file chosen in the `<input type=file>` with id `input_id`.
pub async fn read_file_input(input_id: &str) -> Result<Vec<u8>, String> {
    let input: web_sys::HtmlInputElement = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(input_id))
        .and_then(|e| e.dyn_into().ok())
        .ok_or("no file field")?;
    let file = input
        .files()
        .and_then(|f| f.get(0))
        .ok_or("choose a backup file first")?;
    let buffer = JsFuture::from(file.array_buffer())
        .await
        .map_err(|_| "cannot read the file".to_string())?;
    Ok(js_sys::Uint8Array::new(&buffer).to_vec())
}

//! Browser notifications, for news that should reach the user while the page is in the
//! background. Shown only when the browser allows it: if the user was never asked, they are
//! asked once (the browser may also refuse to ask); nothing ever waits on the answer, and a
//! browser without notifications is simply skipped.

use leptos::task::spawn_local;
use wasm_bindgen::JsValue;
use web_sys::{Notification, NotificationOptions, NotificationPermission};

/// Shows `title` with `body` as a notification when permitted; asks first if the user has not
/// decided yet. Never blocks, never fails.
pub fn announce(title: &str, body: &str) {
    let Some(window) = web_sys::window() else {
        return;
    };
    // A browser without the Notification API (or a page where it is hidden) shows nothing.
    if !js_sys::Reflect::has(&window, &JsValue::from_str("Notification")).unwrap_or(false) {
        return;
    }
    match Notification::permission() {
        NotificationPermission::Granted => show(title, body),
        NotificationPermission::Default => {
            let Ok(asked) = Notification::request_permission() else {
                return;
            };
            let (title, body) = (title.to_string(), body.to_string());
            spawn_local(async move {
                let answer = wasm_bindgen_futures::JsFuture::from(asked).await;
                if answer.ok().and_then(|a| a.as_string()).as_deref() == Some("granted") {
                    show(&title, &body);
                }
            });
        }
        _ => {}
    }
}

fn show(title: &str, body: &str) {
    let options = NotificationOptions::new();
    options.set_body(body);
    options.set_icon("icon-192.png");
    let _ = Notification::new_with_options(title, &options);
}

//! The two things the wallet needs from its platform besides I/O: the time and a timer.
//! Browser: `Date.now()` and `setTimeout` (gloo-timers); native: the system clock and tokio.

use std::time::Duration;

/// Seconds since the Unix epoch.
#[cfg(target_arch = "wasm32")]
pub fn unix_now() -> u64 {
    (js_sys::Date::now() / 1000.0) as u64
}

/// Seconds since the Unix epoch.
#[cfg(not(target_arch = "wasm32"))]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the Unix epoch.
#[cfg(target_arch = "wasm32")]
pub fn unix_millis() -> u64 {
    js_sys::Date::now() as u64
}

/// Milliseconds since the Unix epoch.
#[cfg(not(target_arch = "wasm32"))]
pub fn unix_millis() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Waits `duration`.
#[cfg(target_arch = "wasm32")]
pub async fn sleep(duration: Duration) {
    gloo_timers::future::sleep(duration).await
}

/// Waits `duration`.
#[cfg(not(target_arch = "wasm32"))]
pub async fn sleep(duration: Duration) {
    tokio::time::sleep(duration).await
}

/// Runs `task` in the background.
#[cfg(target_arch = "wasm32")]
pub fn spawn(task: impl std::future::Future<Output = ()> + 'static) {
    wasm_bindgen_futures::spawn_local(task)
}

/// Runs `task` in the background.
#[cfg(not(target_arch = "wasm32"))]
pub fn spawn(task: impl std::future::Future<Output = ()> + Send + 'static) {
    tokio::spawn(task);
}

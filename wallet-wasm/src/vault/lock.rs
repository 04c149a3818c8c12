//! One writer at a time: a Web Lock (`navigator.locks`) per vault, taken with `ifAvailable`,
//! so a second tab (or a second `Vault` in the same tab) is refused instead of queueing.
//! [`TabLock::try_acquire`] asks once; [`TabLock::acquire`] retries for [`LOCK_PATIENCE`].
//!
//! The lock is held while the callback's promise is pending; [`TabLock`] resolves it on drop.
//! The browser also releases it when the tab closes or reloads. web-sys exposes `LockManager`
//! only as an unstable API, so it is called through `js_sys::Reflect`.

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use futures::channel::oneshot;
use futures::future::{select, Either};
use js_sys::{Function, Object, Promise, Reflect};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::{describe, VaultError};

/// How long [`TabLock::acquire`] keeps trying before it reports another holder.
pub const LOCK_PATIENCE: Duration = Duration::from_millis(500);
/// Pause between its attempts.
const LOCK_RETRY: Duration = Duration::from_millis(25);

/// A held Web Lock; released on drop (or awaited with [`TabLock::release`]).
#[derive(Debug)]
pub struct TabLock {
    name: String,
    release: Function,
    /// Settles once the browser has released the lock.
    released: Promise,
}

impl TabLock {
    /// Takes the exclusive lock `name`, trying for up to [`LOCK_PATIENCE`]: a lock that was
    /// just released (a `Vault` dropped a moment ago, a tab reloading) is freed by the browser
    /// asynchronously. [`VaultError::OtherTabOpen`] if it is still held after that.
    pub async fn acquire(name: &str) -> Result<TabLock, VaultError> {
        let deadline = js_sys::Date::now() + LOCK_PATIENCE.as_millis() as f64;
        loop {
            match TabLock::try_acquire(name).await {
                Err(VaultError::OtherTabOpen) if js_sys::Date::now() < deadline => {
                    gloo_timers::future::sleep(LOCK_RETRY).await
                }
                outcome => return outcome,
            }
        }
    }

    /// Takes the exclusive lock `name` if no one (this tab included) holds it right now;
    /// [`VaultError::OtherTabOpen`] if someone does.
    pub async fn try_acquire(name: &str) -> Result<TabLock, VaultError> {
        let unavailable = || VaultError::Unavailable("Web Locks (navigator.locks)");
        let window = web_sys::window().ok_or(VaultError::Unavailable("a browser window"))?;
        let locks =
            Reflect::get(&window.navigator(), &"locks".into()).map_err(|_| unavailable())?;
        if locks.is_undefined() || locks.is_null() {
            return Err(unavailable());
        }
        let request: Function = Reflect::get(&locks, &"request".into())
            .and_then(|f| f.dyn_into())
            .map_err(|_| unavailable())?;
        let options = Object::new();
        Reflect::set(&options, &"ifAvailable".into(), &JsValue::TRUE).map_err(lock_error)?;
        Reflect::set(&options, &"mode".into(), &"exclusive".into()).map_err(lock_error)?;

        // The lock is held until `held` settles; `release` settles it.
        let mut release = None;
        let held = Promise::new(&mut |resolve, _reject| release = Some(resolve));
        let release = release.ok_or_else(|| VaultError::Storage("no promise resolver".into()))?;

        let (granted_tx, granted_rx) = oneshot::channel::<bool>();
        let granted_tx = Rc::new(RefCell::new(Some(granted_tx)));
        let callback = Closure::once_into_js(move |lock: JsValue| -> JsValue {
            // With `ifAvailable`, the callback gets `null` when the lock is taken.
            let granted = !lock.is_null() && !lock.is_undefined();
            if let Some(tx) = granted_tx.borrow_mut().take() {
                let _ = tx.send(granted);
            }
            if granted {
                held.into()
            } else {
                JsValue::UNDEFINED
            }
        });
        let waiting: Promise = request
            .call3(&locks, &name.into(), &options, &callback)
            .and_then(|p| p.dyn_into())
            .map_err(lock_error)?;

        let granted = match select(granted_rx, JsFuture::from(waiting.clone())).await {
            Either::Left((granted, _)) => granted,
            Either::Right((Err(e), _)) => return Err(lock_error(e)),
            // The request settled (callback done, lock already released): read the answer.
            Either::Right((Ok(_), granted_rx)) => granted_rx.await,
        };
        match granted {
            Ok(true) => Ok(TabLock {
                name: name.into(),
                release,
                released: waiting,
            }),
            Ok(false) => Err(VaultError::OtherTabOpen),
            Err(_) => Err(VaultError::Storage("the lock request was dropped".into())),
        }
    }

    /// Releases the lock and waits until the browser reports it released.
    pub async fn release(self) {
        let _ = self.release.call0(&JsValue::UNDEFINED);
        // The request's promise settles after the release; its value does not matter.
        let _ = JsFuture::from(self.released.clone()).await;
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TabLock {
    fn drop(&mut self) {
        // Resolving `held` ends the lock; nothing useful can be done if it throws.
        let _ = self.release.call0(&JsValue::UNDEFINED);
    }
}

fn lock_error(e: JsValue) -> VaultError {
    VaultError::Storage(format!("web lock: {}", describe(&e)))
}

//! The browser's side of "no single outage or eviction loses the app": the service worker that
//! keeps the pinned build for offline use (`/sw.js`, written by `cargo xtask dist`; see
//! docs/offline.md), and the request for persistent storage.

use gloo::events::EventListener;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;
use web_sys::{ServiceWorker, ServiceWorkerContainer, ServiceWorkerRegistration, ServiceWorkerState};
use yew::Callback;

/// The worker's fixed address (the browser checks it for a new build on every page load).
const WORKER: &str = "/sw.js";
/// What a page tells a waiting worker when the person takes the update.
const TAKE_UPDATE: &str = "take-update";

/// `navigator[name]` if this browser (in this context) has it. Service workers and the storage
/// manager exist only in secure contexts; calling into a missing one would throw.
fn navigator_part<T: JsCast>(name: &str) -> Option<T> {
    let navigator = gloo::utils::window().navigator();
    js_sys::Reflect::get(&navigator, &JsValue::from_str(name))
        .ok()
        .filter(|v| !v.is_undefined() && !v.is_null())
        .map(JsCast::unchecked_into)
}

/// Registers the worker. `on_update` is called when a new build has been installed (every file
/// checked against its hash) and waits for [`take_update`]. When a new worker takes over a page
/// that another worker served, the page reloads, so that every tab runs the same build.
pub fn start(on_update: Callback<()>) {
    let Some(container) = navigator_part::<ServiceWorkerContainer>("serviceWorker") else { return };
    // A page gets a controller when the first worker takes over (nothing to reload for: the page
    // came from the network) and again when a later build does (reload, to run that build).
    let had_controller = std::cell::Cell::new(container.controller().is_some());
    EventListener::new(&container, "controllerchange", move |_| {
        if had_controller.replace(true) {
            super::reload();
        }
    })
    .forget();
    wasm_bindgen_futures::spawn_local(async move {
        // No worker in a development build (`trunk serve` has no /sw.js): the register fails.
        let Ok(registration) = JsFuture::from(container.register(WORKER)).await else { return };
        let registration: ServiceWorkerRegistration = registration.unchecked_into();
        // An installed worker is an update only if another one controls the page (the first
        // worker, once installed, activates by itself).
        let announce = move || {
            if container.controller().is_some() {
                on_update.emit(());
            }
        };
        if registration.waiting().is_some() {
            announce();
        }
        if let Some(installing) = registration.installing() {
            when_installed(installing, announce.clone());
        }
        let watched = registration.clone();
        EventListener::new(&registration, "updatefound", move |_| {
            if let Some(installing) = watched.installing() {
                when_installed(installing, announce.clone());
            }
        })
        .forget();
    });
}

/// Calls `announce` once `worker` is installed (it then waits; a failed install becomes
/// "redundant" and says nothing).
fn when_installed(worker: ServiceWorker, announce: impl Fn() + 'static) {
    let watched = worker.clone();
    EventListener::new(&worker, "statechange", move |_| {
        if watched.state() == ServiceWorkerState::Installed {
            announce();
        }
    })
    .forget();
}

/// Lets the waiting worker take over; every page it then controls reloads (see [`start`]).
pub fn take_update() {
    let Some(container) = navigator_part::<ServiceWorkerContainer>("serviceWorker") else { return };
    wasm_bindgen_futures::spawn_local(async move {
        let Ok(registration) = JsFuture::from(container.get_registration()).await else { return };
        let waiting = registration.dyn_into::<ServiceWorkerRegistration>().ok().and_then(|r| r.waiting());
        match waiting {
            Some(worker) => {
                let _ = worker.post_message(&JsValue::from_str(TAKE_UPDATE));
            }
            // Already taken (by another tab, or the browser after all tabs closed).
            None => super::reload(),
        }
    });
}

/// Whether the browser keeps this site's data until the person deletes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persistence {
    /// The browser has agreed: it does not evict the data when space runs low.
    Granted,
    /// The browser said no (it may evict the data under storage pressure).
    Refused,
    /// This browser cannot be asked.
    Unsupported,
}

/// Asks the browser to keep this site's data (`navigator.storage.persist()`): some browsers
/// decide by themselves (Chromium, from how the site is used), others ask the person.
pub async fn request_persistence() -> Persistence {
    let Some(storage) = navigator_part::<web_sys::StorageManager>("storage") else {
        return Persistence::Unsupported;
    };
    let Ok(promise) = storage.persist() else { return Persistence::Unsupported };
    match JsFuture::from(promise).await.map(|v| v.as_bool()) {
        Ok(Some(true)) => Persistence::Granted,
        Ok(Some(false)) => Persistence::Refused,
        _ => Persistence::Unsupported,
    }
}

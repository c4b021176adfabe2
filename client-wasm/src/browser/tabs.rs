//! Several tabs of one profile: exactly one owns the engine and the relay connection.
//!
//! Ownership is a Web Lock (`navigator.locks`), held for the tab's lifetime and handed to the next
//! waiting tab when the owner closes, so two tabs never run the ratchet at once. Tabs talk over a
//! `BroadcastChannel` with opaque byte messages (the app defines their meaning).

use std::rc::Rc;

use js_sys::{Function, Promise, Reflect, Uint8Array};
use wasm_bindgen::closure::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{BroadcastChannel, MessageEvent};

const LOCK_NAME: &str = "doorless-engine";
const CHANNEL_NAME: &str = "doorless";

/// Asks for engine ownership; `on_owner` runs once this tab holds it (at once if no other tab
/// does). Returns false if the browser has no Web Locks, in which case this tab should own.
pub fn request_ownership(on_owner: impl FnOnce() + 'static) -> bool {
    let navigator = gloo_navigator();
    let Ok(locks) = Reflect::get(&navigator, &JsValue::from_str("locks")) else { return false };
    if locks.is_undefined() {
        return false;
    }
    let Ok(request) = Reflect::get(&locks, &JsValue::from_str("request")) else { return false };
    let Ok(request) = request.dyn_into::<Function>() else { return false };
    let mut on_owner = Some(on_owner);
    // The lock is held until the returned promise settles; it never does, so the lock is released
    // only when the tab goes away.
    let callback = Closure::<dyn FnMut(JsValue) -> Promise>::new(move |_lock| {
        if let Some(f) = on_owner.take() {
            f();
        }
        Promise::new(&mut |_, _| {})
    });
    let ok = request.call2(&locks, &JsValue::from_str(LOCK_NAME), callback.as_ref()).is_ok();
    // Lives as long as the tab: the browser calls it once, whenever the lock is granted.
    callback.forget();
    ok
}

fn gloo_navigator() -> JsValue {
    Reflect::get(&js_sys::global(), &JsValue::from_str("navigator")).unwrap_or(JsValue::UNDEFINED)
}

/// The channel between tabs of this profile.
pub struct TabChannel {
    channel: BroadcastChannel,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
}

impl TabChannel {
    /// Opens the channel; `on_message` gets every message another tab posts.
    pub fn open(on_message: impl Fn(Vec<u8>) + 'static) -> Option<Self> {
        let channel = BroadcastChannel::new(CHANNEL_NAME).ok()?;
        let on_message = Rc::new(on_message);
        let closure = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            if let Ok(bytes) = event.data().dyn_into::<Uint8Array>() {
                on_message(bytes.to_vec());
            }
        });
        channel.set_onmessage(Some(closure.as_ref().unchecked_ref()));
        Some(Self { channel, _on_message: closure })
    }

    /// Posts to every other tab.
    pub fn post(&self, bytes: &[u8]) {
        let _ = self.channel.post_message(&Uint8Array::from(bytes));
    }
}

impl Drop for TabChannel {
    fn drop(&mut self) {
        self.channel.set_onmessage(None);
        self.channel.close();
    }
}

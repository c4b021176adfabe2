//! Per-browser preferences that are not secret: kept in localStorage, shared by all tabs.

const RELAY_KEY: &str = "doorless.relay";
const NOTIFY_KEY: &str = "doorless.notifications";

fn storage() -> Option<web_sys::Storage> {
    gloo::utils::window().local_storage().ok().flatten()
}

/// The relay's WebSocket URL: the one set in settings, or the page's own origin.
pub fn relay_url() -> String {
    if let Some(url) = storage().and_then(|s| s.get_item(RELAY_KEY).ok().flatten()).filter(|u| !u.is_empty())
    {
        return url;
    }
    default_relay_url()
}

/// The page's own relay.
pub fn default_relay_url() -> String {
    let location = gloo::utils::window().location();
    let scheme = if location.protocol().as_deref() == Ok("https:") { "wss" } else { "ws" };
    let host = location.host().unwrap_or_default();
    format!("{scheme}://{host}/ws")
}

/// The WebSocket endpoint of the relay at `origin` (`https://host` → `wss://host/ws`).
pub fn socket_url(origin: &doorless_frames::RelayOrigin) -> String {
    let origin = origin.as_str();
    match origin.strip_prefix("https://") {
        Some(host) => format!("wss://{host}/ws"),
        None => format!("ws://{}/ws", origin.strip_prefix("http://").unwrap_or(origin)),
    }
}

/// Sets the relay address; empty means the page's own. Returns false if it is not a ws(s) URL.
pub fn set_relay_url(url: &str) -> bool {
    let url = url.trim();
    if !(url.is_empty() || url.starts_with("ws://") || url.starts_with("wss://")) {
        return false;
    }
    if let Some(s) = storage() {
        let _ = if url.is_empty() { s.remove_item(RELAY_KEY) } else { s.set_item(RELAY_KEY, url) };
    }
    true
}

/// Notifications opted in.
pub fn notifications() -> bool {
    storage().and_then(|s| s.get_item(NOTIFY_KEY).ok().flatten()).as_deref() == Some("on")
}

/// Opt in or out of notifications.
pub fn set_notifications(on: bool) {
    if let Some(s) = storage() {
        let _ = if on { s.set_item(NOTIFY_KEY, "on") } else { s.remove_item(NOTIFY_KEY) };
    }
}

/// Forget every preference.
pub fn clear() {
    if let Some(s) = storage() {
        let _ = s.remove_item(RELAY_KEY);
        let _ = s.remove_item(NOTIFY_KEY);
    }
}

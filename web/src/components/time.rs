//! Times and days in the person's locale and time zone.

use wasm_bindgen::JsValue;

fn date(unix: u64) -> js_sys::Date {
    js_sys::Date::new(&JsValue::from_f64(unix as f64 * 1000.0))
}

/// "14:05".
pub fn clock(unix: u64) -> String {
    let d = date(unix);
    format!("{:02}:{:02}", d.get_hours(), d.get_minutes())
}

/// A key that changes at local midnight.
pub fn day_key(unix: u64) -> (u32, u32, u32) {
    let d = date(unix);
    (d.get_full_year(), d.get_month(), d.get_date())
}

/// "Today", "Yesterday" or the locale's date.
pub fn day_label(unix: u64) -> String {
    let now = client_wasm::browser::now();
    if day_key(unix) == day_key(now) {
        return "Today".into();
    }
    if day_key(unix) == day_key(now.saturating_sub(86_400)) {
        return "Yesterday".into();
    }
    String::from(date(unix).to_locale_date_string("default", &JsValue::UNDEFINED))
}

/// Clock time today, else the date.
pub fn short(unix: u64) -> String {
    if day_key(unix) == day_key(client_wasm::browser::now()) { clock(unix) } else { day_label(unix) }
}

/// Date and time, for expiries.
pub fn long(unix: u64) -> String {
    String::from(date(unix).to_locale_string("default", &JsValue::UNDEFINED))
}

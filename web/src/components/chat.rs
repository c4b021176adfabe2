use client_wasm::engine::{ContactId, Delivery};
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use crate::client::ClientHandle;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub client: ClientHandle,
    pub contact: ContactId,
    pub revision: u64,
}

/// One conversation: the log and the composer. Enter sends; Shift+Enter adds a line.
#[component]
pub fn Chat(props: &Props) -> Html {
    let draft = use_state(String::new);
    let log_ref = use_node_ref();
    let view = props.client.with_engine(|e| {
        e.contact(props.contact).map(|c| (c.name.clone(), c.messages.clone()))
    });
    let Some(Some((name, messages))) = view else {
        return html! { <section class="chat"><p class="muted">{ "No conversation selected." }</p></section> };
    };

    {
        // Keep the newest message in view.
        let log_ref = log_ref.clone();
        use_effect_with(messages.len(), move |_| {
            if let Some(el) = log_ref.cast::<web_sys::Element>() {
                el.set_scroll_top(el.scroll_height());
            }
        });
    }

    let send = {
        let draft = draft.clone();
        let client = props.client.clone();
        let contact = props.contact;
        Callback::from(move |_: ()| {
            if !draft.trim().is_empty() && client.send(contact, &draft) {
                draft.set(String::new());
            }
        })
    };
    let oninput = {
        let draft = draft.clone();
        Callback::from(move |e: InputEvent| draft.set(e.target_unchecked_into::<HtmlTextAreaElement>().value()))
    };
    let onkeydown = {
        let send = send.clone();
        Callback::from(move |e: KeyboardEvent| {
            if e.key() == "Enter" && !e.shift_key() && !e.is_composing() {
                e.prevent_default();
                send.emit(());
            }
        })
    };
    let onclick = {
        let send = send.clone();
        Callback::from(move |_| send.emit(()))
    };

    html! {
        <section class="chat" aria-label={format!("Conversation with {name}")}>
            <h2>{ name }</h2>
            <div class="messages" role="log" aria-label="Messages" aria-live="polite" ref={log_ref}>
                { for messages.iter().map(|m| {
                    let class = if m.outgoing { "message mine" } else { "message" };
                    let state = match (m.outgoing, m.delivery) {
                        (false, _) => "",
                        (true, Delivery::Pending) => " · waiting",
                        (true, Delivery::Sent) => " · sent",
                        (true, Delivery::Delivered) => " · delivered",
                    };
                    html! {
                        <div {class}>
                            <span class="text">{ m.text.clone() }</span>
                            <span class="meta">{ format!("{}{}", clock(m.sent_at), state) }</span>
                        </div>
                    }
                }) }
            </div>
            <div class="composer">
                <textarea aria-label="Message" rows="2" value={(*draft).clone()} {oninput} {onkeydown}
                    placeholder="Write a message" />
                <button {onclick}>{ "Send" }</button>
            </div>
        </section>
    }
}

fn clock(unix: u64) -> String {
    let date = js_sys::Date::new(&wasm_bindgen::JsValue::from_f64(unix as f64 * 1000.0));
    format!("{:02}:{:02}", date.get_hours(), date.get_minutes())
}

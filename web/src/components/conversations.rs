use client_wasm::engine::ContactId;
use yew::prelude::*;

use crate::client::ClientHandle;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub client: ClientHandle,
    pub selected: Option<ContactId>,
    pub revision: u64,
    pub on_select: Callback<ContactId>,
}

/// The list of conversations.
#[component]
pub fn Conversations(props: &Props) -> Html {
    let items = props
        .client
        .with_engine(|e| {
            e.contacts()
                .map(|c| (c.id, c.name.clone(), c.messages.last().map(|m| m.text.clone())))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    html! {
        <nav>
            <h2 class="muted" id="conversations-heading">{ "Conversations" }</h2>
            <ul class="conversations" aria-label="Conversations">
                { for items.into_iter().map(|(id, name, last)| {
                    let onclick = { let cb = props.on_select.clone(); Callback::from(move |_| cb.emit(id)) };
                    let current = (props.selected == Some(id)).then_some("true");
                    html! {
                        <li>
                            <button {onclick} aria-current={current}>
                                <strong>{ name }</strong>
                                if let Some(last) = last { <span class="muted">{ format!(" {}", preview(&last)) }</span> }
                            </button>
                        </li>
                    }
                }) }
            </ul>
        </nav>
    }
}

fn preview(text: &str) -> String {
    let mut chars = text.chars();
    let short: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() { format!("{short}…") } else { short }
}

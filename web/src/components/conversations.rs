use client_wasm::engine::MessageKind;
use yew::prelude::*;

use super::chat::Marks;
use super::{shown_unread, time, use_ctx, use_visible};
use crate::state::Action;

/// The list of conversations: name, last message, time, unread count.
#[component]
pub fn Conversations() -> Html {
    let ctx = use_ctx();
    let visible = use_visible();
    let selected = ctx.state.selected;
    let contacts = &ctx.state.shared.view.contacts;
    html! {
        <nav aria-labelledby="conversations-heading">
            <h2 class="muted small-heading" id="conversations-heading">{ "Conversations" }</h2>
            if contacts.is_empty() {
                <p class="muted">{ "No conversations yet." }</p>
            }
            <ul class="conversations" aria-label="Conversations">
                { for contacts.iter().map(|c| {
                    let id = c.id;
                    let onclick = { let s = ctx.state.clone(); Callback::from(move |_| s.dispatch(Action::Select(id))) };
                    let last = c.messages().rev().find(|m| matches!(m.kind, MessageKind::Text | MessageKind::Attachment));
                    let preview = last.map(|m| preview(&m.text)).unwrap_or_default();
                    let when = last.map(|m| time::short(m.received_at)).unwrap_or_default();
                    let current = (selected == Some(id)).then_some("true");
                    let unread = shown_unread(&ctx.state, c, visible);
                    html! {
                        <li>
                            <button {onclick} aria-current={current} class="conversation">
                                <span class="row">
                                    <strong class="name">{ c.name.clone() }</strong>
                                    if c.barred { <span class="muted">{ "Blocked" }</span> }
                                    <span class="muted when">{ when }</span>
                                </span>
                                if c.verified || c.same_name_as_other || c.calls_themselves.is_some() {
                                    <Marks calls_themselves={c.calls_themselves.clone().map(AttrValue::from)}
                                        verified={c.verified} same_name={c.same_name_as_other} in_list=true />
                                }
                                <span class="row">
                                    <span class="muted preview">{ preview }</span>
                                    if unread > 0 {
                                        <span class="badge" aria-label={format!("{unread} unread")}>{ unread }</span>
                                    }
                                </span>
                            </button>
                        </li>
                    }
                }) }
            </ul>
        </nav>
    }
}

fn preview(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default();
    let mut chars = line.chars();
    let short: String = chars.by_ref().take(40).collect();
    if chars.next().is_some() || text.lines().nth(1).is_some() { format!("{short}…") } else { short }
}

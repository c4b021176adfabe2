//! The conversation menu ("Conversation menu": "Rename", "Clear history", "Block", "Delete
//! conversation"), the dialog that confirms what cannot be undone, and the one that renames.

use client_wasm::engine::ContactId;
use wasm_bindgen::JsCast;
use web_sys::{HtmlElement, HtmlInputElement};
use yew::prelude::*;

use super::modal::Modal;
use super::use_ctx;
use crate::client::protocol::Command;
use crate::state::{Action, Confirm, Dialog};

#[derive(Properties, PartialEq)]
pub struct MenuProps {
    pub contact: ContactId,
    /// The contact is blocked: the menu offers "Unblock".
    pub barred: bool,
}

/// A menu button and its menu (the WAI-ARIA menu button pattern): it opens with focus on the
/// first item; arrows move, Escape closes and returns to the button.
#[component]
pub fn ConversationMenu(props: &MenuProps) -> Html {
    let ctx = use_ctx();
    let open = use_state(|| false);
    let button = use_node_ref();
    let menu = use_node_ref();
    {
        let menu = menu.clone();
        use_effect_with(*open, move |open| {
            if *open {
                focus_item(&menu, |_, _| 0);
            }
        });
    }
    let id = props.contact;
    let toggle = {
        let open = open.clone();
        Callback::from(move |_| open.set(!*open))
    };
    let choose = |dialog: Option<Dialog>, command: Option<Command>| {
        let (open, state, client, button) =
            (open.clone(), ctx.state.clone(), ctx.client.clone(), button.clone());
        Callback::from(move |_| {
            open.set(false);
            if let Some(el) = button.cast::<HtmlElement>() {
                let _ = el.focus();
            }
            if dialog.is_some() {
                state.dispatch(Action::Dialog(dialog));
            }
            if let Some(command) = command.clone() {
                client.command(command);
            }
        })
    };
    let onkeydown = {
        let (open, menu, button) = (open.clone(), menu.clone(), button.clone());
        Callback::from(move |e: KeyboardEvent| match e.key().as_str() {
            "Escape" => {
                e.prevent_default();
                open.set(false);
                if let Some(el) = button.cast::<HtmlElement>() {
                    let _ = el.focus();
                }
            }
            "ArrowDown" => {
                e.prevent_default();
                focus_item(&menu, |at, n| at.map_or(0, |i| (i + 1) % n));
            }
            "ArrowUp" => {
                e.prevent_default();
                focus_item(&menu, |at, n| at.map_or(n - 1, |i| (i + n - 1) % n));
            }
            _ => {}
        })
    };
    let block = if props.barred {
        html! { <li role="none"><button role="menuitem" tabindex="-1" onclick={choose(None, Some(Command::SetBarred { contact: id, barred: false }))}>{ "Unblock" }</button></li> }
    } else {
        html! { <li role="none"><button role="menuitem" tabindex="-1" onclick={choose(Some(Dialog::Confirm(Confirm::Block, id)), None)}>{ "Block" }</button></li> }
    };
    html! {
        <div class="menu-wrap">
            // Its name is "Conversation menu" at every width; a phone-sized screen shows only "⋯",
            // so the header keeps to one line (style.css).
            <button class="secondary menu-button" ref={button.clone()} aria-haspopup="menu" aria-expanded={(*open).to_string()}
                aria-controls="conversation-menu" aria-label="Conversation menu" title="Conversation menu" onclick={toggle}>
                <span class="wide" aria-hidden="true">{ "Conversation menu" }</span>
                <span class="narrow" aria-hidden="true">{ "⋯" }</span>
            </button>
            if *open {
                <ul class="menu panel" role="menu" id="conversation-menu" aria-label="Conversation menu" ref={menu.clone()} {onkeydown}>
                    <li role="none"><button role="menuitem" tabindex="-1" onclick={choose(Some(Dialog::Rename(id)), None)}>{ "Rename" }</button></li>
                    <li role="none"><button role="menuitem" tabindex="-1" onclick={choose(Some(Dialog::Confirm(Confirm::ClearHistory, id)), None)}>{ "Clear history" }</button></li>
                    { block }
                    <li role="none"><button role="menuitem" tabindex="-1" class="danger-text" onclick={choose(Some(Dialog::Confirm(Confirm::Delete, id)), None)}>{ "Delete conversation" }</button></li>
                </ul>
            }
        </div>
    }
}

/// Focuses the menu item `pick(current, count)` returns.
fn focus_item(menu: &NodeRef, pick: impl Fn(Option<usize>, usize) -> usize) {
    let Some(menu) = menu.cast::<HtmlElement>() else { return };
    let Ok(items) = menu.query_selector_all("[role=menuitem]") else { return };
    let n = items.length() as usize;
    if n == 0 {
        return;
    }
    let active = gloo::utils::document().active_element();
    let at = (0..n).find(|&i| {
        items.get(i as u32).zip(active.as_ref()).is_some_and(|(item, active)| item.is_same_node(Some(active)))
    });
    if let Some(item) = items.get(pick(at, n) as u32).and_then(|i| i.dyn_into::<HtmlElement>().ok()) {
        let _ = item.focus();
    }
}

#[derive(Properties, PartialEq)]
pub struct ConfirmProps {
    pub confirm: Confirm,
    pub contact: ContactId,
}

/// Asks before a conversation menu action that cannot be undone.
#[component]
pub fn ConfirmDialog(props: &ConfirmProps) -> Html {
    let ctx = use_ctx();
    let Some(name) =
        ctx.state.shared.view.contacts.iter().find(|c| c.id == props.contact).map(|c| c.name.clone())
    else {
        return html! {};
    };
    let id = props.contact;
    let (title, text, action, command) = match props.confirm {
        Confirm::Delete => (
            format!("Delete the conversation with {name}?"),
            format!(
                "Its messages and keys are deleted from this browser, and you will no longer receive \
                anything {name} sends to it. {name} is not told. This cannot be undone; to talk again, \
                one of you makes a new invite."
            ),
            "Delete conversation",
            Command::DeleteConversation { contact: id },
        ),
        Confirm::Block => (
            format!("Block {name}?"),
            format!(
                "Nothing {name} sends will be shown, and nothing is sent to {name}: no messages, no \
                delivery receipts, no name changes. {name} is not told. You can unblock later from this menu."
            ),
            "Block",
            Command::SetBarred { contact: id, barred: true },
        ),
        Confirm::ClearHistory => (
            format!("Clear the history with {name}?"),
            format!(
                "Every message of this conversation is deleted from this browser. {name} keeps their copy, \
                and you can go on talking. This cannot be undone."
            ),
            "Clear history",
            Command::ClearHistory { contact: id },
        ),
    };
    let close = {
        let state = ctx.state.clone();
        Callback::from(move |()| state.dispatch(Action::Dialog(None)))
    };
    let confirm = {
        let (state, client) = (ctx.state.clone(), ctx.client.clone());
        Callback::from(move |_| {
            client.command(command.clone());
            state.dispatch(Action::Dialog(None));
        })
    };
    html! {
        <Modal labelled_by="confirm-title" on_close={close.clone()}>
            <h2 id="confirm-title">{ title }</h2>
            <p>{ text }</p>
            <div class="dialog-actions">
                <button class="secondary" onclick={close.reform(|_| ())} autofocus=true>{ "Cancel" }</button>
                <button class="danger" onclick={confirm}>{ action }</button>
            </div>
        </Modal>
    }
}

#[derive(Properties, PartialEq)]
pub struct RenameProps {
    pub contact: ContactId,
}

/// "Rename NAME": the name shown for a contact on this side (they are not told).
#[component]
pub fn RenameDialog(props: &RenameProps) -> Html {
    let ctx = use_ctx();
    let current =
        ctx.state.shared.view.contacts.iter().find(|c| c.id == props.contact).map(|c| c.name.clone());
    let name = use_state(|| current.clone().unwrap_or_default());
    let Some(current) = current else {
        return html! {};
    };
    let id = props.contact;
    let close = {
        let state = ctx.state.clone();
        Callback::from(move |()| state.dispatch(Action::Dialog(None)))
    };
    let oninput = {
        let name = name.clone();
        Callback::from(move |e: InputEvent| name.set(e.target_unchecked_into::<HtmlInputElement>().value()))
    };
    let onsubmit = {
        let (state, client, name) = (ctx.state.clone(), ctx.client.clone(), name.clone());
        Callback::from(move |e: SubmitEvent| {
            e.prevent_default();
            client.command(Command::RenameContact { contact: id, name: name.trim().to_owned() });
            state.dispatch(Action::Dialog(None));
        })
    };
    html! {
        <Modal labelled_by="rename-title" on_close={close.clone()}>
            <form {onsubmit}>
                <h2 id="rename-title">{ format!("Rename {current}") }</h2>
                <label>{ "Name" }
                    <input type="text" value={(*name).clone()} {oninput} maxlength="64" required=true autofocus=true />
                </label>
                <p class="muted">{ "Only you see this name; they are not told. The name they chose stays beside it if it differs." }</p>
                <div class="dialog-actions">
                    <button type="button" class="secondary" onclick={close.reform(|_| ())}>{ "Cancel" }</button>
                    <button type="submit" disabled={name.trim().is_empty()}>{ "Rename" }</button>
                </div>
            </form>
        </Modal>
    }
}

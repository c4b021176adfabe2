use client_wasm::engine::ContactId;
use yew::prelude::*;

use super::modal::Modal;
use super::use_ctx;
use crate::client::protocol::Command;
use crate::qr::QrImage;
use crate::state::Action;

#[derive(Properties, PartialEq)]
pub struct Props {
    pub contact: ContactId,
}

/// "Verify safety number": the number, its QR code, and "Mark as verified".
#[component]
pub fn SafetyDialog(props: &Props) -> Html {
    let ctx = use_ctx();
    let Some(contact) = ctx.state.shared.view.contacts.iter().find(|c| c.id == props.contact).cloned() else {
        return html! {};
    };
    let close = {
        let state = ctx.state.clone();
        Callback::from(move |()| state.dispatch(Action::Dialog(None)))
    };
    let verify = {
        let client = ctx.client.clone();
        let id = contact.id;
        // The number this dialog shows: the owner refuses it if it changed meanwhile.
        let shown = contact.safety_digits.clone();
        Callback::from(move |_| client.command(Command::MarkVerified { contact: id, shown: shown.clone() }))
    };
    html! {
        <Modal labelled_by="safety-title" on_close={close.clone()}>
                <h2 id="safety-title">{ "Verify safety number" }</h2>
                <p class="muted">{ format!("Compare these numbers with {} in person or over a call you trust. \
                    If they match, nobody is in the middle.", contact.name) }</p>
                <p class="safety-number" aria-label="Safety number">{ contact.safety_digits.clone() }</p>
                <QrImage data={contact.safety_qr.clone()} alt="Safety number QR code" />
                if contact.verified {
                    <p class="verified" role="status">{ format!("You have verified {}.", contact.name) }</p>
                } else {
                    <button onclick={verify}>{ "Mark as verified" }</button>
                }
                <button class="secondary" onclick={close.reform(|_| ())} autofocus=true>{ "Close" }</button>
        </Modal>
    }
}

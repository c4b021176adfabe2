//! A modal dialog on the platform's own `<dialog>`, opened with `showModal()`: the browser moves
//! focus in (to the `autofocus` control, or the first focusable one), makes the page behind it
//! inert, and closes it on Escape. Its accessible name is its heading (`aria-labelledby`).

use gloo::events::EventListener;
use wasm_bindgen::JsCast;
use web_sys::{HtmlDialogElement, HtmlElement};
use yew::prelude::*;

#[derive(Properties, PartialEq)]
pub struct Props {
    /// The id of the heading that names the dialog.
    pub labelled_by: AttrValue,
    /// Extra classes.
    #[prop_or_default]
    pub class: Classes,
    /// Called when the dialog closes by itself (Escape).
    pub on_close: Callback<()>,
    /// The content.
    #[prop_or_default]
    pub children: Html,
}

/// A modal dialog, shown while it is in the document. When it goes, focus returns to the control
/// that opened it.
#[component]
pub fn Modal(props: &Props) -> Html {
    let node = use_node_ref();
    {
        let node = node.clone();
        let on_close = props.on_close.clone();
        use_effect_with((), move |_| {
            let opener =
                gloo::utils::document().active_element().and_then(|e| e.dyn_into::<HtmlElement>().ok());
            let dialog = node.cast::<HtmlDialogElement>();
            let listener = dialog.as_ref().map(|dialog| {
                // Escape: the browser has closed it; the app state follows.
                EventListener::new(dialog, "close", move |_| on_close.emit(()))
            });
            if let Some(dialog) = &dialog {
                let _ = dialog.show_modal();
            }
            move || {
                drop(listener);
                if let Some(dialog) = dialog.filter(HtmlDialogElement::open) {
                    dialog.close();
                }
                if let Some(opener) = opener.filter(|o| o.is_connected()) {
                    let _ = opener.focus();
                }
            }
        });
    }
    html! {
        <dialog ref={node} class={classes!("dialog", "panel", props.class.clone())} aria-labelledby={props.labelled_by.clone()}>
            { props.children.clone() }
        </dialog>
    }
}

//! The Doorless web app: UI only. All cryptography and protocol logic live in `client-wasm`.

mod attach;
mod client;
mod components;
mod qr;
mod state;

fn main() {
    yew::Renderer::<components::App>::new().render();
}

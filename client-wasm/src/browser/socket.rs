//! A binary WebSocket to the relay that speaks [`doorless_frames::Frame`].

use std::rc::Rc;

use doorless_frames::Frame;
use wasm_bindgen::JsCast;
use wasm_bindgen::closure::Closure;
use web_sys::{BinaryType, CloseEvent, Event, MessageEvent, WebSocket};

/// What the socket reports.
#[derive(Debug)]
pub enum SocketEvent {
    /// Open and ready to send.
    Open,
    /// A frame arrived.
    Frame(Frame),
    /// Bytes arrived that are not a frame; they were dropped.
    Malformed,
    /// Closed (by either side, or failed to open).
    Closed,
}

/// One connection attempt. Dropping it closes the socket and detaches the callbacks.
pub struct RelaySocket {
    ws: WebSocket,
    _on_open: Closure<dyn FnMut(Event)>,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_close: Closure<dyn FnMut(CloseEvent)>,
}

impl RelaySocket {
    /// Opens a socket to `url` (`ws://` or `wss://`), reporting through `on_event`.
    pub fn connect(url: &str, on_event: impl Fn(SocketEvent) + 'static) -> Result<Self, String> {
        let ws = WebSocket::new(url).map_err(|_| "could not open a WebSocket".to_owned())?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let on_event = Rc::new(on_event);

        let report = on_event.clone();
        let on_open = Closure::<dyn FnMut(Event)>::new(move |_| report(SocketEvent::Open));
        let report = on_event.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |event: MessageEvent| {
            let Ok(buffer) = event.data().dyn_into::<js_sys::ArrayBuffer>() else {
                report(SocketEvent::Malformed);
                return;
            };
            let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
            match Frame::decode(&bytes) {
                Ok(frame) => report(SocketEvent::Frame(frame)),
                Err(_) => report(SocketEvent::Malformed),
            }
        });
        let report = on_event;
        let on_close = Closure::<dyn FnMut(CloseEvent)>::new(move |_| report(SocketEvent::Closed));

        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        Ok(Self { ws, _on_open: on_open, _on_message: on_message, _on_close: on_close })
    }

    /// Sends one frame. Returns false if the socket is not open.
    pub fn send(&self, frame: &Frame) -> bool {
        self.ws.ready_state() == WebSocket::OPEN && self.ws.send_with_u8_array(&frame.encode()).is_ok()
    }
}

impl Drop for RelaySocket {
    fn drop(&mut self) {
        self.ws.set_onopen(None);
        self.ws.set_onmessage(None);
        self.ws.set_onclose(None);
        let _ = self.ws.close();
    }
}

use client_wasm::engine::{Chunk, ContactId, ContactView, Delivery, Message, MessageKind};
use web_sys::HtmlTextAreaElement;
use yew::prelude::*;

use super::attachments::{AttachFile, FileEntry};
use super::invite::InvitePanel;
use super::links::{self, Piece};
use super::menu::ConversationMenu;
use super::{time, use_ctx, use_visible};
use crate::client::protocol::Command;
use crate::state::{Action, Dialog};

#[derive(Properties, PartialEq)]
pub struct Props {
    pub contact: ContactId,
}

/// Chunks of history in the document when following the newest messages (up to 256 messages).
const WINDOW_CHUNKS: usize = 4;
/// Chunks added by "Show earlier messages" (or by scrolling to the top).
const MORE_CHUNKS: usize = 4;

/// One conversation: the log and the composer. Enter sends; Shift+Enter adds a line.
#[component]
pub fn Chat(props: &Props) -> Html {
    let ctx = use_ctx();
    let draft = use_state(String::new);
    let log_ref = use_node_ref();
    let stick_to_bottom = use_mut_ref(|| true);
    // The person scrolled the log by hand (wheel, touch, keys, scroll bar) since the app last put
    // it at the end. Only then does a position away from the end mean reading back: the log also
    // moves by itself (new messages below, the window of chunks sliding, entries taking their size).
    let by_hand = use_mut_ref(|| false);
    let contact = ctx.state.shared.view.contacts.iter().find(|c| c.id == props.contact).cloned();
    let id = props.contact;
    // Scrolled away from the newest messages: "Jump to newest" shows.
    let scrolled_up = use_state(|| false);
    // Bumped by "Jump to newest": the log goes to the bottom after the render.
    let jump = use_state(|| 0u32);
    // The unread count when this conversation opened (it is marked read at once): the first of
    // those messages gets a "New messages" marker and the conversation opens there.
    let opened = use_mut_ref(|| None::<(ContactId, u32)>);
    if opened.borrow().is_none_or(|(shown, _)| shown != id) {
        *opened.borrow_mut() = Some((id, contact.as_ref().map_or(0, |c| c.unread)));
    }
    let unread_at_open = opened.borrow().map_or(0, |(_, n)| n);
    let first_unread = contact.as_ref().and_then(|c| first_unread(c, unread_at_open));
    // The clock, for how long a conversation has waited for its inviter; it ticks only then.
    let now = use_state(client_wasm::browser::now);
    {
        let now = now.clone();
        let waiting = contact.as_ref().is_some_and(|c| c.awaiting_since.is_some());
        use_effect_with(waiting, move |&waiting| {
            let tick = waiting.then(|| {
                now.set(client_wasm::browser::now());
                gloo::timers::callback::Interval::new(15_000, move || now.set(client_wasm::browser::now()))
            });
            move || drop(tick)
        });
    }
    let now = *now;
    // The conversation was just opened: the next layout places it (at the marker or the end).
    let placing = use_mut_ref(|| true);
    {
        // A refused text comes back into the composer (unless something new was typed since).
        let draft = draft.clone();
        use_effect_with(ctx.state.unsent.clone(), move |unsent| {
            if let Some(unsent) = unsent.as_ref().filter(|u| u.contact == id)
                && draft.trim().is_empty()
            {
                draft.set(unsent.text.to_string());
            }
        });
    }

    // Only the newest chunks are in the document: a long history costs nothing per new message.
    // Reading back pins the window's start, so new messages do not push out what is being read.
    let pinned = use_state(|| None::<usize>);
    let chunk_count = contact.as_ref().map_or(0, |c| c.chunks.len());
    let newest_start = chunk_count.saturating_sub(WINDOW_CHUNKS);
    // The marker is in the document when the conversation opens, however far back it is.
    let newest_start = first_unread.map_or(newest_start, |(chunk, _)| newest_start.min(chunk));
    let start = pinned.map_or(newest_start, |s| s.min(chunk_count));
    let anchor = use_mut_ref(|| None::<(i32, i32)>);
    {
        let pinned = pinned.clone();
        let stick = stick_to_bottom.clone();
        let placing = placing.clone();
        let scrolled_up = scrolled_up.clone();
        use_effect_with(id, move |_| {
            pinned.set(None);
            scrolled_up.set(false);
            *stick.borrow_mut() = true;
            *placing.borrow_mut() = true;
        });
    }
    {
        // Earlier messages were added above: keep the ones on screen where they were.
        let log_ref = log_ref.clone();
        let anchor = anchor.clone();
        use_effect_with((id, start), move |_| {
            if let (Some(el), Some((height, top))) =
                (log_ref.cast::<web_sys::Element>(), anchor.borrow_mut().take())
            {
                el.set_scroll_top(el.scroll_height() - height + top);
            }
        });
    }
    let show_earlier = {
        let log_ref = log_ref.clone();
        let pinned = pinned.clone();
        let anchor = anchor.clone();
        Callback::from(move |()| {
            if start == 0 {
                return;
            }
            if let Some(el) = log_ref.cast::<web_sys::Element>() {
                *anchor.borrow_mut() = Some((el.scroll_height(), el.scroll_top()));
            }
            pinned.set(Some(start.saturating_sub(MORE_CHUNKS)));
        })
    };

    {
        // Scrolled to the top by hand: earlier messages load once the scroll has come to rest
        // (`scrollend`), so a fling that is still moving does not carry on past what was read.
        let log_ref = log_ref.clone();
        let show_earlier = show_earlier.clone();
        let by_hand = by_hand.clone();
        use_effect_with((id, start), move |_| {
            let listener = log_ref.cast::<web_sys::Element>().map(|el| {
                let target = el.clone();
                gloo::events::EventListener::new(&el, "scrollend", move |_| {
                    if target.scroll_top() < 40 && *by_hand.borrow() {
                        show_earlier.emit(());
                    }
                })
            });
            move || drop(listener)
        });
    }
    let count = contact.as_ref().map_or(0, ContactView::message_count);
    {
        // Follow new messages, unless the person scrolled up to read older ones. A conversation
        // opens at the "New messages" marker if it has one, else at the newest message.
        let log_ref = log_ref.clone();
        let stick = stick_to_bottom.clone();
        let placing = placing.clone();
        let by_hand = by_hand.clone();
        // In the next animation frame, when the browser lays the page out anyway: reading the
        // height here would force a layout before the owner's save and send can go on.
        use_effect_with((id, count, *jump), move |_| {
            let frame = gloo::render::request_animation_frame(move |_| {
                let Some(el) = log_ref.cast::<web_sys::HtmlElement>() else { return };
                let marker = std::mem::take(&mut *placing.borrow_mut())
                    .then(|| el.query_selector(".unread-marker").ok().flatten())
                    .flatten()
                    .and_then(|m| wasm_bindgen::JsCast::dyn_into::<web_sys::HtmlElement>(m).ok());
                if let Some(marker) = marker {
                    el.set_scroll_top(marker.offset_top());
                    *stick.borrow_mut() = at_bottom(&el);
                } else if *stick.borrow() {
                    el.set_scroll_top(el.scroll_height());
                    *by_hand.borrow_mut() = false;
                }
            });
            move || drop(frame)
        });
    }
    {
        // Seen: clear the unread count while this conversation is on screen in a visible tab, and
        // when the person comes back to this tab.
        let unread = contact.as_ref().map_or(0, |c| c.unread);
        let visible = use_visible();
        let client = ctx.client.clone();
        use_effect_with((id, unread, visible), move |&(id, unread, visible)| {
            if unread > 0 && visible {
                client.command(Command::MarkRead { contact: id });
            }
        });
    }
    let Some(contact) = contact else {
        return html! { <section class="chat"><p class="muted">{ "No conversation selected." }</p></section> };
    };

    let onscroll = {
        let stick = stick_to_bottom.clone();
        let pinned = pinned.clone();
        let scrolled_up = scrolled_up.clone();
        let by_hand = by_hand.clone();
        Callback::from(move |e: Event| {
            let Some(el) = e.target_dyn_into::<web_sys::Element>() else { return };
            if at_bottom(&el) {
                *stick.borrow_mut() = true;
                *by_hand.borrow_mut() = false;
            } else if *by_hand.borrow() {
                *stick.borrow_mut() = false;
            }
            let following = *stick.borrow();
            if *scrolled_up == following {
                scrolled_up.set(!following);
            }
            match (*pinned, following) {
                // Back at the newest: the window follows new messages again.
                (Some(_), true) => pinned.set(None),
                (None, false) => pinned.set(Some(start)),
                _ => {}
            }
        })
    };
    // Hidden rather than absent when everything is shown, for the same reason as "Jump to newest".
    let earlier_button = {
        let show_earlier = show_earlier.clone();
        let onclick = Callback::from(move |_| show_earlier.emit(()));
        html! { <button class="secondary earlier" hidden={start == 0} {onclick}>{ "Show earlier messages" }</button> }
    };
    let scrolling_by_hand = {
        let by_hand = by_hand.clone();
        Callback::from(move |_: ()| *by_hand.borrow_mut() = true)
    };
    // Always in the document (hidden while following): a node appearing next to the log would make
    // yew replace the log element, and with it the scroll position.
    let jump_button = {
        let stick = stick_to_bottom.clone();
        let pinned = pinned.clone();
        let jump = jump.clone();
        let log_ref = log_ref.clone();
        let onclick = Callback::from(move |_| {
            *stick.borrow_mut() = true;
            // At once, then again once the window of chunks is back to the newest ones.
            if let Some(el) = log_ref.cast::<web_sys::Element>() {
                el.set_scroll_top(el.scroll_height());
            }
            pinned.set(None);
            jump.set(jump.wrapping_add(1));
        });
        html! { <button class="jump" hidden={!*scrolled_up} {onclick}>{ "Jump to newest" }</button> }
    };
    let send = {
        let draft = draft.clone();
        let client = ctx.client.clone();
        let stick = stick_to_bottom.clone();
        Callback::from(move |_: ()| {
            if !draft.trim().is_empty() {
                *stick.borrow_mut() = true;
                client.command(Command::Send { contact: id, text: (*draft).clone() });
                draft.set(String::new());
            }
        })
    };
    let oninput = {
        let draft = draft.clone();
        Callback::from(move |e: InputEvent| {
            draft.set(e.target_unchecked_into::<HtmlTextAreaElement>().value())
        })
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
    let open_safety = {
        let state = ctx.state.clone();
        Callback::from(move |_| state.dispatch(Action::Dialog(Some(Dialog::Safety(id)))))
    };
    let accept_change = {
        let client = ctx.client.clone();
        Callback::from(move |_| client.command(Command::AcceptSafetyNumberChange { contact: id }))
    };
    let back = {
        let state = ctx.state.clone();
        Callback::from(move |_| state.dispatch(Action::Deselect))
    };

    let name = AttrValue::from(contact.name.clone());
    // The day of the last message above the window, so the first separator is right.
    let mut last_day = start
        .checked_sub(1)
        .and_then(|before| contact.chunks.get(before)?.last())
        .map(|m| time::day_key(m.received_at));
    let last_mine = last_mine(&contact);
    let chunks = contact.chunks.iter().enumerate().skip(start).map(|(index, chunk)| {
        let prev_day = last_day;
        last_day = chunk.last().map(|m| time::day_key(m.received_at));
        let marker = first_unread.filter(|(c, _)| *c == index).map(|(_, entry)| entry);
        let last_mine = last_mine.filter(|(c, _)| *c == index).map(|(_, entry)| entry);
        html! { <ChunkEntries key={index} chunk={chunk.clone()} {prev_day} name={name.clone()} {marker} {last_mine} /> }
    });
    html! {
        <section class="chat" aria-label={format!("Conversation with {}", contact.name)}>
            <div class="chat-head">
                <button class="secondary back" onclick={back} aria-label="Back to conversations">{ "‹" }</button>
                <div class="who">
                    <h2>{ contact.name.clone() }</h2>
                    <Marks calls_themselves={contact.calls_themselves.clone().map(AttrValue::from)}
                        verified={contact.verified} same_name={contact.same_name_as_other} />
                </div>
                <button class="secondary" onclick={open_safety}>{ "Safety number" }</button>
                <ConversationMenu contact={id} barred={contact.barred} />
            </div>
            if contact.barred {
                <p class="notice panel" role="status">{ format!("You blocked {}. Nothing they send is shown, and nothing is sent to them.", contact.name) }</p>
            }
            if ctx.state.shared.unreachable.contains(&id) {
                <p class="notice panel" role="status">{ format!("{}'s relay is unreachable. Your messages wait and are sent when it is back.", contact.name) }</p>
            }
            if let Some(since) = contact.awaiting_since {
                <p class="notice panel" role="status">{ waiting_text(&contact.name, since, contact.all_stored, now) }</p>
            }
            if contact.missing > 0 {
                <p class="muted">{ format!("{} earlier message(s) have not arrived yet.", contact.missing) }</p>
            }
            if contact.blocked {
                <div class="notice panel" role="alert">
                    <span>{ format!("{}'s safety number changed. Sending is paused until you accept the new one; compare it with them first.", contact.name) }</span>
                    <button onclick={accept_change}>{ "Accept new safety number" }</button>
                </div>
            }
            <div class="log-area">
                <div class={classes!("messages", (!*scrolled_up).then_some("following"))} role="log" aria-label="Messages" aria-live="polite" tabindex="0" ref={log_ref} {onscroll}
                    onwheel={scrolling_by_hand.reform(|_: WheelEvent| ())} ontouchmove={scrolling_by_hand.reform(|_: TouchEvent| ())}
                    onkeydown={scrolling_by_hand.reform(|_: KeyboardEvent| ())} onpointerdown={scrolling_by_hand.reform(|_: PointerEvent| ())}>
                    { earlier_button }
                    // The start of the history (always in the document, hidden once earlier
                    // messages are left out, for the same reason as the jump button).
                    <p class="system info start" hidden={start != 0}>{ start_text(&contact.name, contact.verified) }</p>
                    { for chunks }
                    // The scroll anchor while at the end: entries that take their real size after
                    // a scroll to the end (they skip layout while off screen) push it, and the
                    // browser keeps it in view (style.css, `overflow-anchor`).
                    <div class="end" aria-hidden="true"></div>
                </div>
                { jump_button }
            </div>
            <div class="composer">
                <textarea aria-label="Message" rows="2" value={(*draft).clone()} {oninput} {onkeydown}
                    placeholder="Write a message (Enter sends)" disabled={contact.blocked || contact.barred} />
                <button {onclick} disabled={contact.blocked || contact.barred}>{ "Send" }</button>
                <AttachFile contact={id} disabled={contact.blocked || contact.barred} />
            </div>
            <details class="reinvite">
                <summary>{ "Lost contact? Invite them again" }</summary>
                <InvitePanel for_contact={Some(id)} />
            </details>
        </section>
    }
}

/// What the top of a conversation says: where it starts, and how to be sure who is on the other side.
fn start_text(name: &str, verified: bool) -> String {
    if verified {
        format!(
            "This is the start of your conversation with {name}. You compared safety numbers: it is really them."
        )
    } else {
        format!(
            "This is the start of your conversation with {name}. Messages are end-to-end encrypted. \
             To be sure it is really {name}, compare safety numbers with them in person or on a call \
             (\u{201c}Safety number\u{201d} above)."
        )
    }
}

/// After this long without a word from the inviter, although the relay has our answer, the invite
/// was most likely answered by someone else first (an invite works once), or revoked. (Nothing
/// tells the joiner which: a revoked invite's mailbox is simply never read again.)
const PROBABLY_USED_AFTER_SECS: u64 = 10 * 60;

/// What a conversation that waits for the inviter's first message says.
fn waiting_text(name: &str, since: u64, stored: bool, now: u64) -> String {
    let waited = now.saturating_sub(since);
    if stored && waited >= PROBABLY_USED_AFTER_SECS {
        format!(
            "Waiting for {name} to confirm. Nothing has come from {name} in the {} minutes since you \
             accepted the invite, although the relay has your answer: the invite was probably already \
             used by someone else, or {name} revoked it. Ask {name} for a new one, through a channel \
             you trust.",
            waited / 60
        )
    } else {
        format!(
            "Waiting for {name} to confirm. Messages you write now are sent when {name}'s app answers the invite."
        )
    }
}

/// Near enough to the end of the log to follow new messages.
fn at_bottom(el: &web_sys::Element) -> bool {
    el.scroll_height() - el.scroll_top() - el.client_height() < 40
}

/// Where the first of the last `unread` incoming texts is: (chunk, entry).
fn first_unread(contact: &ContactView, unread: u32) -> Option<(usize, usize)> {
    let mut left = unread;
    if left == 0 {
        return None;
    }
    for (c, chunk) in contact.chunks.iter().enumerate().rev() {
        for (e, m) in chunk.iter().enumerate().rev() {
            // Files count as unread like texts (the engine counts both).
            if !m.outgoing && matches!(m.kind, MessageKind::Text | MessageKind::Attachment) {
                left -= 1;
                if left == 0 {
                    return Some((c, e));
                }
            }
        }
    }
    None
}

/// Where the last text of mine is: (chunk, entry). Only it says "delivered".
fn last_mine(contact: &ContactView) -> Option<(usize, usize)> {
    contact.chunks.iter().enumerate().rev().find_map(|(c, chunk)| {
        chunk.iter().rposition(|m| m.outgoing && m.kind == MessageKind::Text).map(|e| (c, e))
    })
}

#[derive(Properties, PartialEq)]
struct ChunkProps {
    /// Shared with the engine's log: equal (by pointer, at once) while nothing in it changed.
    chunk: Chunk,
    /// The day of the message before this chunk, if any.
    prev_day: Option<(u32, u32, u32)>,
    name: AttrValue,
    /// The entry that starts the unread messages, if it is in this chunk.
    marker: Option<usize>,
    /// The entry that is the last text of mine, if it is in this chunk.
    last_mine: Option<usize>,
}

/// One chunk of the log. Components all the way down, so a new message re-renders the last chunk
/// and within it the new entry; the rest of the history is not even compared.
#[component]
fn ChunkEntries(props: &ChunkProps) -> Html {
    let mut last_day = props.prev_day;
    let entries = props.chunk.iter().enumerate().map(|(index, m)| {
        let day = time::day_key(m.received_at);
        let first_of_day = last_day.replace(day) != Some(day);
        let first_unread = props.marker == Some(index);
        let last_mine = props.last_mine == Some(index);
        html! { <Entry key={index} message={m.clone()} name={props.name.clone()} {first_of_day} {first_unread} {last_mine} /> }
    });
    html! { <>{ for entries }</> }
}

#[derive(Properties, PartialEq)]
struct EntryProps {
    message: Message,
    /// The contact's name, for notices.
    name: AttrValue,
    /// Starts a new day: a separator goes above it.
    first_of_day: bool,
    /// The first unread message when the conversation opened: a "New messages" marker goes above.
    first_unread: bool,
    /// The last text of mine: it shows "delivered"; the others show only a state still to come.
    last_mine: bool,
}

/// One entry of the log. A component, so that a render of the conversation re-renders only the
/// entries whose message changed (a new one, or a delivery state), not the whole history.
#[component]
fn Entry(props: &EntryProps) -> Html {
    let m = &props.message;
    let separator = props
        .first_of_day
        .then(|| html! { <div class="day" role="separator">{ time::day_label(m.received_at) }</div> });
    let marker = props
        .first_unread
        .then(|| html! { <div class="unread-marker" role="separator">{ "New messages" }</div> });
    let entry = match m.kind {
        MessageKind::SafetyNumberChanged => html! {
            <div class="system">{ format!("{}'s safety number changed. Compare it again to be sure it is really them.", props.name) }</div>
        },
        MessageKind::Renamed => html! {
            <div class="system info">{ format!("{} now calls themselves {}", props.name, m.text) }</div>
        },
        MessageKind::Lost { count } => html! {
            <div class="system">{ match count {
                1 => "1 message could not be received.".to_owned(),
                n => format!("{n} messages could not be received."),
            } }</div>
        },
        MessageKind::Attachment => html! { <FileEntry message={m.clone()} /> },
        MessageKind::Text => {
            let class = if m.outgoing { "message mine" } else { "message" };
            let state = match (m.outgoing, m.delivery) {
                (false, _) => "",
                (true, Delivery::Pending) => " · waiting to send",
                (true, Delivery::Sent) => " · sent",
                (true, Delivery::Delivered) if props.last_mine => " · delivered",
                (true, Delivery::Delivered) => "",
            };
            let text = links::pieces(&m.text).into_iter().map(|piece| match piece {
                Piece::Text(text) => html! { { text } },
                // No preview is fetched; the page opened gets neither this window nor a referrer.
                Piece::Link(address) => html! {
                    <a href={address.to_owned()} target="_blank" rel="noopener noreferrer">{ address }</a>
                },
            });
            html! {
                <div {class}>
                    <span class="text">{ for text }</span>
                    <span class="meta">{ format!("{}{}", time::clock(m.received_at), state) }</span>
                </div>
            }
        }
    };
    html! { <>{ for separator }{ for marker }{ entry }</> }
}

#[derive(Properties, PartialEq)]
pub struct MarksProps {
    /// The name they call themselves, when it differs from the name given to them.
    pub calls_themselves: Option<AttrValue>,
    /// Safety number compared.
    pub verified: bool,
    /// Another contact has the same name.
    pub same_name: bool,
    /// In the conversation list: say nothing about an unverified contact (the header does).
    #[prop_or_default]
    pub in_list: bool,
}

/// What sets a contact apart from a look-alike, as text (so screen readers say it too): the name
/// they call themselves if it differs from the name given to them, "Verified" (or, in the header,
/// "Not verified"), and "Same name as another contact".
#[component]
pub fn Marks(props: &MarksProps) -> Html {
    let c = props;
    html! {
        <span class="marks">
            if let Some(theirs) = &c.calls_themselves {
                <span class="muted calls">{ format!("calls themselves {theirs}") }</span>
            }
            if c.verified {
                <span class="verified">{ "Verified" }</span>
            } else if !props.in_list {
                <span class="unverified">{ "Not verified" }</span>
            }
            if c.same_name {
                <span class="same-name">{ "Same name as another contact" }</span>
            }
        </span>
    }
}

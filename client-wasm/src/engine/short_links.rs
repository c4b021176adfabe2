//! Short invite links (docs/protocol.md §3.1, docs/relay-protocol.md "Invite bundles").
//!
//! The inviter's side: a new invite is sealed into a bundle and uploaded to the home relay; its
//! short link is given out only once the relay confirmed the bundle durable (the invite itself is
//! saved before the upload leaves, as everything is). The bundle is deleted when the invite is
//! answered or revoked, and otherwise expires at the relay.
//!
//! The joiner's side: the bundle is fetched from the relay the link names (a connection opened on
//! demand, [`Engine::relays`]), opened and checked against the link's commitment; the full invite
//! then goes the way a full link does. A changed bundle is refused as altered; one that does not
//! come within [`INVITE_FETCH_TIMEOUT_SECS`] (time is an input, [`Engine::check_invite_fetches`])
//! as withheld.
//!
//! Nothing here is stored: an upload a reload interrupts leaves a pending invite without a short
//! link (it can be revoked), and a fetch a reload interrupts is asked for again by the page.

use doorless_frames::{ErrorCode, Frame, RelayOrigin};
use rand_core::CryptoRng;
use serde::{Deserialize, Serialize};

use super::{EngineError, Event, InviteId, PendingInvite};
use crate::core::{Invite, InviteError, ShortLink, ShortLinkError};
use crate::engine::Engine;

/// How long the relay named by a short link gets to hand over the invite, in seconds, from the
/// moment it was asked for (connecting included).
pub const INVITE_FETCH_TIMEOUT_SECS: u64 = 20;

/// A fetch of a short link's invite ([`Engine::fetch_invite`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FetchId(pub u32);

/// Why a short link's invite could not be fetched. The relay is named (it is in the link the
/// person opened); nothing else about the link is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShortInviteError {
    /// The relay returned something other than the invite the link stands for (the commitment
    /// did not match): it, or something between, altered it.
    #[error("the invite from {relay} was altered")]
    Altered {
        /// The relay named by the link.
        relay: String,
    },
    /// The relay did not hand over the invite within [`INVITE_FETCH_TIMEOUT_SECS`].
    #[error("{relay} did not hand over the invite in time")]
    Withheld {
        /// The relay named by the link.
        relay: String,
    },
    /// The relay holds no invite for the link: used, revoked or expired.
    #[error("{relay} holds no such invite")]
    Gone {
        /// The relay named by the link.
        relay: String,
    },
    /// The invite matches the link but is refused (expired, for instance).
    #[error(transparent)]
    Invite(#[from] InviteError),
}

/// An upload of an invite's bundle.
struct Upload {
    invite: InviteId,
    link: ShortLink,
    sealed: Vec<u8>,
    /// The request of the last `PutBundle` sent.
    request: u32,
    confirmed: bool,
}

/// A fetch of a short link's bundle.
struct Fetch {
    id: FetchId,
    link: ShortLink,
    /// The request of the last `GetBundle` sent (0: none yet).
    request: u32,
    started: u64,
    /// The full invite's fragment, once fetched and checked.
    fetched: Option<String>,
}

/// The engine's short-link work in progress (not stored).
#[derive(Default)]
pub(super) struct ShortLinks {
    uploads: Vec<Upload>,
    fetches: Vec<Fetch>,
    /// Requests of `DeleteBundle`s sent, whose answers are dropped.
    deletes: Vec<u32>,
    next_fetch: u32,
}

impl ShortLinks {
    /// The relays short links need now: uploads not yet confirmed and fetches not yet answered.
    pub(super) fn relays(&self) -> impl Iterator<Item = &RelayOrigin> {
        let uploads = self.uploads.iter().filter(|u| !u.confirmed).map(|u| u.link.relay());
        let fetches = self.fetches.iter().filter(|f| f.fetched.is_none()).map(|f| f.link.relay());
        uploads.chain(fetches)
    }
}

fn relay_name(relay: &RelayOrigin) -> String {
    let relay = relay.as_str();
    relay.strip_prefix("https://").unwrap_or(relay).to_owned()
}

impl Engine {
    /// Seals `invite` (just made as `id`) for a short link on the home relay and queues its upload.
    /// Without a home relay, or for an invite too long to seal, there is no short link.
    pub(super) fn upload_short_link(&mut self, invite: &Invite, id: InviteId, rng: &mut impl CryptoRng) {
        let Some(home) = self.home.clone() else { return };
        let link = ShortLink::for_invite(invite, home);
        let Ok(sealed) = link.seal(invite, rng) else { return };
        let request = self.request_id();
        self.short.uploads.push(Upload { invite: id, link, sealed, request, confirmed: false });
        if let Some(upload) = self.short.uploads.last() {
            let relay = upload.link.relay().clone();
            if self.is_connected_to(&relay) {
                let frame = put_frame(upload);
                self.out.push_back((relay, frame));
            }
        }
    }

    /// The short link of `invite` (the URL fragment, without `#`), once its relay confirmed the
    /// bundle durable. [`Event::ShortLinkReady`] says when.
    pub fn short_link(&self, invite: InviteId) -> Option<String> {
        self.short.uploads.iter().find(|u| u.invite == invite && u.confirmed).map(|u| u.link.to_fragment())
    }

    /// Whether `invite`'s bundle is on its way to the relay (its short link comes once it is
    /// stored). False for an invite that has no short link.
    pub fn short_link_pending(&self, invite: InviteId) -> bool {
        self.short.uploads.iter().any(|u| u.invite == invite && !u.confirmed)
    }

    /// Starts fetching the invite of a short link's `fragment` from the relay the link names (a
    /// connection to it is needed: [`Engine::relays`]). The outcome is [`Event::InviteFetched`]
    /// (then [`Engine::take_fetched_invite`]) or [`Event::InviteFetchFailed`].
    pub fn fetch_invite(&mut self, fragment: &str, now: u64) -> Result<FetchId, EngineError> {
        let link = ShortLink::parse(fragment)?;
        let id = FetchId(self.short.next_fetch);
        self.short.next_fetch = self.short.next_fetch.wrapping_add(1);
        self.short.fetches.push(Fetch { id, link, request: 0, started: now, fetched: None });
        if let Some(relay) = self.short.fetches.last().map(|f| f.link.relay().clone())
            && self.is_connected_to(&relay)
        {
            self.send_fetches(&relay);
        }
        Ok(id)
    }

    /// The full invite fragment a fetch brought (as [`Engine::read_invite`] and
    /// [`Engine::accept_invite`] take), handed out once.
    pub fn take_fetched_invite(&mut self, id: FetchId) -> Option<String> {
        let pos = self.short.fetches.iter().position(|f| f.id == id && f.fetched.is_some())?;
        self.short.fetches.remove(pos).fetched
    }

    /// Gives up on fetches the relay has not answered within [`INVITE_FETCH_TIMEOUT_SECS`]: each
    /// is an [`Event::InviteFetchFailed`] with [`ShortInviteError::Withheld`]. The page calls this
    /// when that time has passed.
    pub fn check_invite_fetches(&mut self, now: u64) -> Vec<Event> {
        let mut events = Vec::new();
        self.short.fetches.retain(|f| {
            let late = f.fetched.is_none() && now >= f.started.saturating_add(INVITE_FETCH_TIMEOUT_SECS);
            if late {
                let relay = relay_name(f.link.relay());
                events.push(Event::InviteFetchFailed(f.id, ShortInviteError::Withheld { relay }));
            }
            !late
        });
        events
    }

    /// A new connection to `relay` is ready: uploads and fetches for it go (again).
    pub(super) fn short_links_ready(&mut self, relay: &RelayOrigin) {
        let mut frames = Vec::new();
        for upload in self.short.uploads.iter().filter(|u| !u.confirmed && u.link.relay() == relay) {
            frames.push(put_frame(upload));
        }
        for frame in frames {
            self.out.push_back((relay.clone(), frame));
        }
        self.send_fetches(relay);
    }

    fn send_fetches(&mut self, relay: &RelayOrigin) {
        let waiting: Vec<usize> = (0..self.short.fetches.len())
            .filter(|&i| {
                self.short.fetches[i].fetched.is_none() && self.short.fetches[i].link.relay() == relay
            })
            .collect();
        for i in waiting {
            let request = self.request_id();
            let fetch = &mut self.short.fetches[i];
            fetch.request = request;
            let frame = Frame::GetBundle { request, id: fetch.link.bundle_id() };
            self.out.push_back((relay.clone(), frame));
        }
    }

    /// Deletes the bundle of `invite` (answered or revoked) at its relay, if connected: a bundle
    /// left behind expires there anyway.
    pub(super) fn delete_short_link(&mut self, invite: &PendingInvite) {
        self.short.uploads.retain(|u| u.invite != invite.id);
        let Some(relay) = self.resolve(&invite.relay).cloned() else { return };
        if !self.is_connected_to(&relay) {
            return;
        }
        let link = ShortLink::from_link_key(invite.secret.invite_hash(), relay.clone());
        let request = self.request_id();
        self.short.deletes.push(request);
        let frame =
            Frame::DeleteBundle { request, id: link.bundle_id(), delete_secret: *link.delete_secret() };
        self.out.push_back((relay, frame));
    }

    /// Handles a relay's answer to a short-link request; `None` if `frame` is not one.
    pub(super) fn on_short_link_frame(
        &mut self,
        relay: &RelayOrigin,
        frame: &Frame,
        now: u64,
    ) -> Option<Vec<Event>> {
        let request = match frame {
            Frame::BundleStored { request }
            | Frame::Bundle { request, .. }
            | Frame::BundleDeleted { request }
            | Frame::Error { request, .. } => *request,
            _ => return None,
        };
        if request == 0 {
            // About the connection, not a request.
            return None;
        }
        if let Some(pos) = self.short.deletes.iter().position(|r| *r == request) {
            self.short.deletes.remove(pos);
            return Some(Vec::new());
        }
        if let Some(upload) =
            self.short.uploads.iter_mut().find(|u| u.request == request && u.link.relay() == relay)
        {
            return Some(match frame {
                Frame::BundleStored { .. } => {
                    upload.confirmed = true;
                    upload.sealed = Vec::new();
                    vec![Event::ShortLinkReady(upload.invite)]
                }
                // Uploaded again on the next connection.
                Frame::Error { code, .. } => vec![Event::RelayError(*code)],
                _ => Vec::new(),
            });
        }
        let pos = self
            .short
            .fetches
            .iter()
            .position(|f| f.request == request && f.fetched.is_none() && f.link.relay() == relay)?;
        let fetch = &mut self.short.fetches[pos];
        let name = relay_name(relay);
        let failed = |fetch: &Fetch, error| Event::InviteFetchFailed(fetch.id, error);
        let event = match frame {
            Frame::Bundle { bundle, .. } => match fetch.link.open(bundle, now) {
                Ok(invite) => {
                    fetch.fetched = Some(invite.to_fragment());
                    return Some(vec![Event::InviteFetched(fetch.id)]);
                }
                Err(ShortLinkError::Invite(err)) => failed(fetch, ShortInviteError::Invite(err)),
                Err(_) => failed(fetch, ShortInviteError::Altered { relay: name }),
            },
            Frame::Error { code: ErrorCode::NoSuchBundle, .. } => {
                failed(fetch, ShortInviteError::Gone { relay: name })
            }
            // Anything else (rate limited, storage failure): asked again on the next connection,
            // until the timeout.
            Frame::Error { code, .. } => return Some(vec![Event::RelayError(*code)]),
            _ => return Some(Vec::new()),
        };
        self.short.fetches.remove(pos);
        Some(vec![event])
    }
}

fn put_frame(upload: &Upload) -> Frame {
    Frame::PutBundle {
        request: upload.request,
        id: upload.link.bundle_id(),
        delete_hash: upload.link.delete_hash(),
        bundle: upload.sealed.clone(),
    }
}

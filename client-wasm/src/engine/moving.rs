//! Moving and rotating inboxes (docs/protocol.md, "Moving and rotation").
//!
//! Both do the same per contact: a fresh inbox (on the home relay), announced inside that
//! contact's ratchet with `Content::Inbox`; the old inbox is still read until the contact is
//! known to write to the fresh one, or until the relay has dropped the last announcement
//! ([`OLD_INBOX_SECS`] after it was sent), then dropped. Until the contact has moved, every
//! deposit for them is preceded by the announcement again, so a contact who missed it (it went
//! through a relay that is gone, or expired there) moves the next time they hear from us.
//!
//! A move ([`Engine::move_to`]) makes the new relay home and rotates every contact onto it; the
//! schedule ([`Engine::tick`]) rotates each contact whose inbox is [`ROTATION_SECS`] old, so that a
//! relay cannot link one mailbox's traffic over months.

use doorless_frames::RelayOrigin;
use rand_core::CryptoRng;

use super::{Contact, ContactId, Engine, EngineError, Mailbox, Retiring};

/// How often each contact's inbox is replaced: weekly.
pub const ROTATION_SECS: u64 = 7 * 24 * 60 * 60;

/// How long an old inbox is read after its replacement was last announced: the relay's message
/// TTL (the relay's default `DOORLESS_TTL_SECS`), as long as the announcement can wait there.
pub const OLD_INBOX_SECS: u64 = 7 * 24 * 60 * 60;

/// How far a move to another relay has got ([`Engine::move_progress`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MoveProgress {
    /// Contacts known to write to their inbox on the home relay.
    pub switched: usize,
    /// Contacts.
    pub contacts: usize,
}

/// A relay this profile talks to, and why ([`Engine::relays_in_use`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayInUse {
    /// The relay.
    pub origin: RelayOrigin,
    /// It is the home relay.
    pub home: bool,
    /// Old inboxes on it are still read (draining after a move), or an open invite's.
    pub draining: bool,
    /// Contacts whose mailbox for us is on it (where we deposit), in contact order.
    pub contacts: Vec<ContactId>,
}

/// The contact wrote to its current inbox. If nothing of theirs is missing (every message they
/// sent before this one has arrived, whichever inbox it went to), nothing more can come through
/// the old inboxes: they are dropped at the next connection or [`Engine::tick`].
pub(super) fn switched(contact: &mut Contact) {
    if contact.session.skipped_keys() == 0 {
        contact.retiring.iter_mut().for_each(|r| r.switched = true);
    }
}

/// Whether the contact may still write to an old inbox: our deposits carry the announcement.
pub(super) fn unswitched(contact: &Contact) -> bool {
    contact.retiring.iter().any(|r| !r.switched)
}

impl Engine {
    /// Moves this profile to the relay at `relay_url` (as for [`Engine::on_connected`]): it
    /// becomes the home relay, and every contact gets a fresh inbox there, announced inside
    /// their ratchet (at once, or with the next deposit for a contact that is blocked). The old
    /// inboxes are read until each contact has moved ([`Engine::move_progress`]).
    pub fn move_to(
        &mut self,
        relay_url: &str,
        now: u64,
        rng: &mut impl CryptoRng,
    ) -> Result<(), EngineError> {
        self.set_home_relay(relay_url)?;
        let ids: Vec<ContactId> = self.contacts.keys().copied().collect();
        for id in ids {
            self.rotate(id, now, rng);
        }
        Ok(())
    }

    /// The schedule, called now and then with the clock (and at each connection): forgets old
    /// inboxes no longer needed, and rotates every contact's inbox that is [`ROTATION_SECS`] old
    /// (not while an earlier rotation is still under way, nor for a contact that gets nothing:
    /// blocked by the person, or with a changed safety number).
    pub fn tick(&mut self, now: u64, rng: &mut impl CryptoRng) {
        self.expire(now);
        let due: Vec<ContactId> = self
            .contacts
            .values()
            .filter(|c| {
                !c.blocked
                    && !c.barred
                    && !unswitched(c)
                    && now >= c.inbox_since.saturating_add(ROTATION_SECS)
            })
            .map(|c| c.id)
            .collect();
        for id in due {
            self.rotate(id, now, rng);
        }
    }

    /// A move under way: how many contacts write to their inbox on the home relay. `None` when
    /// no contact has an inbox left on another relay.
    pub fn move_progress(&self) -> Option<MoveProgress> {
        let home = self.home.as_ref()?;
        let elsewhere = |c: &Contact| c.retiring.iter().any(|r| self.resolve(&r.relay) != Some(home));
        if !self.contacts.values().any(elsewhere) {
            return None;
        }
        let switched = self.contacts.values().filter(|c| !unswitched(c)).count();
        Some(MoveProgress { switched, contacts: self.contacts.len() })
    }

    /// Every relay this profile talks to and why, home first: the home relay, relays where old
    /// inboxes (or invites) are still read, and each contact's relay. Unlike [`Engine::relays`],
    /// which names the connections needed now, this includes contacts' relays with nothing
    /// waiting.
    pub fn relays_in_use(&self) -> Vec<RelayInUse> {
        let mut uses: Vec<RelayInUse> = Vec::new();
        let entry = |uses: &mut Vec<RelayInUse>, origin: &RelayOrigin| -> usize {
            uses.iter().position(|u| u.origin == *origin).unwrap_or_else(|| {
                uses.push(RelayInUse {
                    origin: origin.clone(),
                    home: false,
                    draining: false,
                    contacts: Vec::new(),
                });
                uses.len() - 1
            })
        };
        if let Some(home) = &self.home {
            let at = entry(&mut uses, home);
            uses[at].home = true;
        }
        for relay in self.inbox_relays() {
            if let Some(origin) = self.resolve(relay) {
                let at = entry(&mut uses, origin);
                uses[at].draining |= !uses[at].home;
            }
        }
        for contact in self.contacts.values() {
            if let Some(origin) = self.resolve(&contact.outbox_relay) {
                let at = entry(&mut uses, origin);
                uses[at].contacts.push(contact.id);
            }
        }
        uses
    }

    /// The relay of every inbox we read: each contact's current and old ones, each invite's.
    pub(super) fn inbox_relays(&self) -> impl Iterator<Item = &Option<RelayOrigin>> {
        self.contacts
            .values()
            .flat_map(|c| std::iter::once(&c.inbox_relay).chain(c.retiring.iter().map(|r| &r.relay)))
            .chain(self.invites.iter().map(|i| &i.relay))
    }

    /// Gives `contact` a fresh inbox on the home relay and announces it (now, or with the next
    /// deposit if they get nothing now); the current one is kept as an old inbox.
    fn rotate(&mut self, contact: ContactId, now: u64, rng: &mut impl CryptoRng) {
        let fresh = Mailbox::generate(rng);
        let relay = self.home.clone();
        self.subscribe(&relay, &fresh);
        let Some(entry) = self.contacts.get_mut(&contact) else { return };
        let old = std::mem::replace(&mut entry.inbox, fresh);
        let old_relay = std::mem::replace(&mut entry.inbox_relay, relay);
        entry.retiring.push(Retiring { inbox: old, relay: old_relay, until: u64::MAX, switched: false });
        entry.inbox_since = now;
        entry.announce = true;
        if !entry.blocked && !entry.barred {
            // An error leaves the announcement for the next deposit to this contact.
            let _ = self.announce_inbox(contact, now, rng);
        }
    }
}

/// Why a typed relay address is not one to move to ([`relay_address`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayAddressError {
    /// Not a web address (`https://host/`) or WebSocket endpoint (`wss://host/ws`) with a plain host.
    #[error(
        "Type the relay's web address (https://relay.example/) or its WebSocket endpoint (wss://relay.example/ws)."
    )]
    NotAnAddress,
    /// An unencrypted address (`http://`, `ws://`) for a host that is not this computer.
    #[error("Only a relay on this computer may use http:// or ws://; use https:// or wss://.")]
    Unencrypted,
}

/// The relay a person typed in Settings: its web address (`https://host/`, path `/` or none) or
/// its WebSocket endpoint (`wss://host/ws`); `http` and `ws` only for a loopback host
/// (`localhost`, `127.x.x.x`, `[::1]`), as in development.
pub fn relay_address(typed: &str) -> Result<RelayOrigin, RelayAddressError> {
    let typed = typed.trim();
    let (scheme, rest) = typed.split_once("://").ok_or(RelayAddressError::NotAnAddress)?;
    let scheme = scheme.to_ascii_lowercase();
    let path = rest.find('/').map_or("", |at| &rest[at..]);
    let fits = match scheme.as_str() {
        "https" | "http" => path.is_empty() || path == "/",
        "wss" | "ws" => path == "/ws",
        _ => false,
    };
    let origin = RelayOrigin::parse(typed).ok().filter(|_| fits).ok_or(RelayAddressError::NotAnAddress)?;
    if let Some(authority) = origin.as_str().strip_prefix("http://") {
        let loopback = match authority.strip_prefix('[') {
            Some(v6) => v6
                .split(']')
                .next()
                .and_then(|ip| ip.parse::<std::net::Ipv6Addr>().ok())
                .is_some_and(|ip| ip.is_loopback()),
            None => {
                let host = authority.split(':').next().unwrap_or_default();
                host == "localhost" || host.parse::<std::net::Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
            }
        };
        if !loopback {
            return Err(RelayAddressError::Unencrypted);
        }
    }
    Ok(origin)
}

#[cfg(test)]
mod tests {
    use super::{RelayAddressError, relay_address};

    #[test]
    fn a_relay_address_is_a_web_address_or_a_websocket_endpoint() {
        let ok =
            |typed: &str, origin: &str| assert_eq!(relay_address(typed).unwrap().as_str(), origin, "{typed}");
        ok("https://relay.example/", "https://relay.example");
        ok(" https://Relay.Example ", "https://relay.example");
        ok("wss://relay.example:8443/ws", "https://relay.example:8443");
        ok("http://127.0.0.1:8080/", "http://127.0.0.1:8080");
        ok("ws://localhost:9000/ws", "http://localhost:9000");
        ok("ws://[::1]:9000/ws", "http://[::1]:9000");
        let no = |typed: &str, why: RelayAddressError| assert_eq!(relay_address(typed), Err(why), "{typed}");
        for typed in [
            "relay.example",
            "ftp://relay.example/",
            "https://relay.example/app",
            "wss://relay.example/",
            "wss://relay.example/socket",
            "https://user@relay.example/",
            "",
        ] {
            no(typed, RelayAddressError::NotAnAddress);
        }
        no("http://relay.example/", RelayAddressError::Unencrypted);
        no("ws://10.0.0.1:9000/ws", RelayAddressError::Unencrypted);
        no("http://127.0.0.1.evil.example/", RelayAddressError::Unencrypted);
    }
}

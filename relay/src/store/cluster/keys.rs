//! Key names and the mapping between stream entry ids and sequence numbers.
//!
//! A mailbox's keys share the hash tag `{<mailbox id in hex>}`, so they live in one slot:
//! `PREFIX:{HEX}:s` (the stream), `PREFIX:{HEX}:q` (the quota hash) and the sharded pub/sub channel
//! `PREFIX:{HEX}:w`. A stream entry id `MS-S` is the sequence number `MS << 16 | S` (`S` < 2^16):
//! the same numbers the embedded store gives (`initial_seq` is `ms << 16`), in the same order as
//! the ids, and parsed here, never in Lua (Lua numbers are doubles: exact only up to 2^53).

use doorless_frames::MailboxId;

/// The keys and channel of one mailbox.
pub(super) struct MailboxKeys {
    pub stream: String,
    pub quota: String,
    pub channel: String,
}

/// Lower-case hex of a mailbox id.
fn hex(mailbox: &MailboxId) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(64);
    for byte in mailbox.0 {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 15)]));
    }
    out
}

impl MailboxKeys {
    pub(super) fn new(prefix: &str, mailbox: &MailboxId) -> Self {
        let tag = hex(mailbox);
        Self {
            stream: format!("{prefix}:{{{tag}}}:s"),
            quota: format!("{prefix}:{{{tag}}}:q"),
            channel: format!("{prefix}:{{{tag}}}:w"),
        }
    }
}

/// The mailbox whose wake-up channel is `channel` (`None` for anything else).
pub(super) fn mailbox_of_channel(prefix: &str, channel: &[u8]) -> Option<MailboxId> {
    let rest = channel.strip_prefix(prefix.as_bytes())?.strip_prefix(b":{")?;
    let digits = rest.strip_suffix(b"}:w")?;
    if digits.len() != 64 {
        return None;
    }
    let mut id = [0; 32];
    for (byte, pair) in id.iter_mut().zip(digits.chunks_exact(2)) {
        let text = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(text, 16).ok()?;
    }
    Some(MailboxId(id))
}

/// Highest sequence part within one millisecond.
const MAX_SUB: u64 = 0xffff;

/// The stream entry id of sequence number `seq`.
pub(super) fn id_of_seq(seq: u64) -> String {
    format!("{}-{}", seq >> 16, seq & MAX_SUB)
}

/// The sequence number of a stream entry id, if it is one the relay writes.
pub(super) fn seq_of_id(id: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(id).ok()?;
    let (ms, sub) = text.split_once('-')?;
    let (ms, sub): (u64, u64) = (ms.parse().ok()?, sub.parse().ok()?);
    (ms < 1 << 48 && sub <= MAX_SUB).then_some(ms << 16 | sub)
}

/// The id of the first entry of millisecond `ms`.
pub(super) fn first_id_of_ms(ms: u64) -> String {
    format!("{ms}-0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_sequence_numbers_map_both_ways_in_order() {
        let ms = 1_700_000_000_000u64;
        assert_eq!(seq_of_id(b"1700000000000-0"), Some(ms << 16));
        assert_eq!(seq_of_id(b"1700000000000-65535"), Some((ms << 16) + 65535));
        assert_eq!(id_of_seq((ms << 16) + 65535 + 1), "1700000000001-0");
        for seq in [1, ms << 16, (ms << 16) + 7, u64::MAX >> 16 << 16] {
            assert_eq!(seq_of_id(id_of_seq(seq).as_bytes()), Some(seq));
        }
        // Beyond 2^53, where a Lua number would round.
        let big = (1u64 << 60) + 3;
        assert_eq!(seq_of_id(id_of_seq(big).as_bytes()), Some(big));
    }

    #[test]
    fn ids_the_relay_never_writes_are_refused() {
        for id in [&b"1-65536"[..], b"281474976710656-0", b"x-1", b"1", b"-1-2", b"1-\xff"] {
            assert_eq!(seq_of_id(id), None);
        }
    }

    #[test]
    fn channel_names_give_back_their_mailbox() {
        let mailbox = MailboxId([0xa5; 32]);
        let keys = MailboxKeys::new("dl", &mailbox);
        assert_eq!(mailbox_of_channel("dl", keys.channel.as_bytes()), Some(mailbox));
        assert_eq!(mailbox_of_channel("other", keys.channel.as_bytes()), None);
        assert_eq!(mailbox_of_channel("dl", keys.stream.as_bytes()), None);
        assert!(keys.stream.starts_with("dl:{a5a5"));
    }
}

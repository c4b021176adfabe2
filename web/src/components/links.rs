//! Web addresses in message text, made into links. Only `http://` and `https://` addresses
//! become links (never `javascript:` or `data:`); nothing is fetched to preview them.

/// A piece of a message's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Plain text.
    Text(&'a str),
    /// A web address, as written (also its link target).
    Link(&'a str),
}

const SCHEMES: [&str; 2] = ["https://", "http://"];
/// Characters that end a sentence rather than an address when they come last.
const TRAILING: &[char] = &['.', ',', ';', ':', '!', '?', '\'', '"', ')', ']', '}', '>'];

/// Splits `text` into plain text and web addresses. An address starts with `http://` or
/// `https://` (any case) at the start of the text or after a non-alphanumeric character, runs
/// to the next white space or `<`, and leaves out punctuation that ends the sentence around it
/// (a closing bracket stays when the address opened it).
pub fn pieces(text: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut plain_from = 0;
    let mut at = 0;
    while at < text.len() {
        let rest = &text[at..];
        let starts_word = text[..at].chars().next_back().is_none_or(|c| !c.is_alphanumeric());
        let scheme = SCHEMES.iter().find(|s| rest.get(..s.len()).is_some_and(|p| p.eq_ignore_ascii_case(s)));
        if let (true, Some(scheme)) = (starts_word, scheme) {
            let end = rest.find(|c: char| c.is_whitespace() || c == '<').unwrap_or(rest.len());
            let address = trim_trailing(&rest[..end]);
            // A scheme alone ("https://") is not an address.
            if address.len() > scheme.len() {
                if plain_from < at {
                    out.push(Piece::Text(&text[plain_from..at]));
                }
                out.push(Piece::Link(address));
                at += address.len();
                plain_from = at;
                continue;
            }
        }
        at += rest.chars().next().map_or(1, char::len_utf8);
    }
    if plain_from < text.len() {
        out.push(Piece::Text(&text[plain_from..]));
    }
    out
}

fn trim_trailing(mut address: &str) -> &str {
    while let Some(last) = address.chars().next_back().filter(|c| TRAILING.contains(c)) {
        let opened = match last {
            ')' => Some('('),
            ']' => Some('['),
            '}' => Some('{'),
            _ => None,
        };
        // "https://en.wikipedia.org/wiki/Rust_(language)" keeps its bracket.
        if opened.is_some_and(|open| address.matches(open).count() >= address.matches(last).count()) {
            break;
        }
        address = &address[..address.len() - last.len_utf8()];
    }
    address
}

#[cfg(test)]
mod tests {
    use super::Piece::{Link, Text};
    use super::pieces;

    #[test]
    fn addresses_become_links_and_the_rest_stays_text() {
        assert_eq!(
            pieces("see https://example.org/a?b=1, and http://x.test."),
            vec![
                Text("see "),
                Link("https://example.org/a?b=1"),
                Text(", and "),
                Link("http://x.test"),
                Text(".")
            ]
        );
        assert_eq!(pieces("HTTPS://EXAMPLE.ORG"), vec![Link("HTTPS://EXAMPLE.ORG")]);
        assert_eq!(
            pieces("(https://en.wikipedia.org/wiki/Rust_(language))"),
            vec![Text("("), Link("https://en.wikipedia.org/wiki/Rust_(language)"), Text(")")]
        );
        assert_eq!(
            pieces("a\nhttps://é.test/ü\nb"),
            vec![Text("a\n"), Link("https://é.test/ü"), Text("\nb")]
        );
    }

    #[test]
    fn other_schemes_and_lookalikes_stay_text() {
        for text in [
            "javascript:alert(1)",
            "data:text/html,hi",
            "xhttps://example.org",
            "https://",
            "https://...",
            "ftp://example.org",
            "",
        ] {
            assert!(pieces(text).iter().all(|p| matches!(p, Text(_))), "{text:?}");
        }
    }
}

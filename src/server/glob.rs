//! Glob-style patterns as Redis matches them (`KEYS`, `SCAN ... MATCH`,
//! `CONFIG GET`): `*`, `?`, `[abc]`, `[^a-z]` and `\` escapes, ported from
//! Redis's `stringmatchlen` (src/util.c), including its treatment of
//! unterminated classes.

/// Whether `text` matches `pattern`.
#[must_use]
pub(crate) fn matches(pattern: &[u8], text: &[u8]) -> bool {
    let mut give_up = false;
    match_from(pattern, text, &mut give_up)
}

/// Whether `text` matches `pattern`, ASCII case ignored (`CONFIG GET`).
#[must_use]
pub(crate) fn matches_nocase(pattern: &[u8], text: &[u8]) -> bool {
    matches(&pattern.to_ascii_lowercase(), &text.to_ascii_lowercase())
}

fn match_from(mut p: &[u8], mut s: &[u8], give_up: &mut bool) -> bool {
    while !p.is_empty() && !s.is_empty() {
        match p[0] {
            b'*' => {
                while p.get(1) == Some(&b'*') {
                    p = &p[1..];
                }
                if p.len() == 1 {
                    return true;
                }
                while !s.is_empty() {
                    if match_from(&p[1..], s, give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    s = &s[1..];
                }
                // No later start matches the rest: no longer match of this
                // star (or of any before it) can either.
                *give_up = true;
                return false;
            }
            b'?' => p = &p[1..],
            b'[' => {
                let (matched, rest) = class(&p[1..], s[0]);
                if !matched {
                    return false;
                }
                p = rest;
            }
            c => {
                let (literal, rest) = match (c, p.get(1)) {
                    (b'\\', Some(&escaped)) => (escaped, &p[2..]),
                    _ => (c, &p[1..]),
                };
                if literal != s[0] {
                    return false;
                }
                p = rest;
            }
        }
        s = &s[1..];
        if s.is_empty() {
            while p.first() == Some(&b'*') {
                p = &p[1..];
            }
            break;
        }
    }
    p.is_empty() && s.is_empty()
}

/// Matches `c` against the class starting after `[`; returns whether it
/// matched and the pattern after the class. An unterminated class ends
/// with the pattern, as in Redis.
fn class(mut p: &[u8], c: u8) -> (bool, &[u8]) {
    let negate = p.first() == Some(&b'^');
    if negate {
        p = &p[1..];
    }
    let mut matched = false;
    loop {
        match p {
            [b'\\', escaped, rest @ ..] => {
                matched |= *escaped == c;
                p = rest;
            }
            [b']', rest @ ..] => return (matched != negate, rest),
            [] => return (matched != negate, p),
            [start, b'-', end, rest @ ..] => {
                let (low, high) = if start <= end {
                    (*start, *end)
                } else {
                    (*end, *start)
                };
                matched |= (low..=high).contains(&c);
                p = rest;
            }
            [other, rest @ ..] => {
                matched |= *other == c;
                p = rest;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_in_redis() {
        let yes = [
            ("*", "anything"),
            ("h?llo", "hello"),
            ("h*llo", "hllo"),
            ("h*llo", "heeeello"),
            ("h[ae]llo", "hallo"),
            ("h[^e]llo", "hallo"),
            ("h[a-b]llo", "hbllo"),
            ("h[b-a]llo", "hallo"),
            ("user:\\*", "user:*"),
            ("a*b*c", "axxbyyc"),
            ("[\\]]", "]"),
        ];
        for (pattern, text) in yes {
            assert!(
                matches(pattern.as_bytes(), text.as_bytes()),
                "{pattern} {text}"
            );
        }
        let no = [
            ("h?llo", "hllo"),
            ("h[^e]llo", "hello"),
            ("h[ae]llo", "hillo"),
            ("user:\\*", "user:x"),
            ("a*b*c", "axxbyy"),
            ("abc", "abcd"),
            ("", "a"),
        ];
        for (pattern, text) in no {
            assert!(
                !matches(pattern.as_bytes(), text.as_bytes()),
                "{pattern} {text}"
            );
        }
        assert!(matches_nocase(b"MAX*", b"maxmemory"));
    }

    #[test]
    fn hostile_patterns_terminate_and_never_panic() {
        let pattern = "a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b";
        let text = "a".repeat(64);
        assert!(!matches(pattern.as_bytes(), text.as_bytes()));
        for pattern in ["[", "[^", "\\", "[a-", "[\\", "*[", "?["] {
            let _ = matches(pattern.as_bytes(), b"ab");
            let _ = matches(pattern.as_bytes(), b"");
        }
    }
}

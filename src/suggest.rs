//! "Did you mean ...?" for a misspelt key or value: the closest of the names serde listed in
//! its "unknown field" or "unknown variant" error, when one is close enough to be a typo.
//!
//! Contract: pure text in, text out; suggests only a name from the error's own list (so it
//! names something that exists), and only one within a small edit distance (a third of the
//! word, at least 1, at most 3), so an unrelated word gets no suggestion rather than a wrong
//! one. It never quotes anything but the listed names.

/// The closest of `candidates` to `word`, if it is close enough to be a typo of it and no
/// other candidate is as close (`dc3` among `dc1` and `dc2` gets no guess). Case and `-` for
/// `_` do not count as differences.
pub fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    let norm = |s: &str| s.to_ascii_lowercase().replace('-', "_");
    let word = norm(word);
    let limit = (word.chars().count() / 3).clamp(1, 3);
    let mut near: Vec<(usize, &str)> = candidates
        .iter()
        .map(|c| (distance(&word, &norm(c)), *c))
        .filter(|(d, _)| *d <= limit)
        .collect();
    near.sort_by_key(|(d, _)| *d);
    match near.as_slice() {
        [(d, c), rest @ ..] if rest.first().is_none_or(|(next, _)| next > d) => Some(c),
        _ => None,
    }
}

/// Edit distance over chars where an insertion, deletion, substitution or swap of two
/// neighbours costs 1 (optimal string alignment: `ordre` is one edit from `order`).
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // d[i][j]: distance between a[..i] and b[..j].
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// `message` (a serde/toml error) with "; did you mean `NAME`?" after it when it reports an
/// unknown field or variant and one of the names it lists is close to the bad one; otherwise
/// `message` unchanged.
pub fn did_you_mean(message: &str) -> String {
    match hint(message) {
        Some(name) => format!("{}; did you mean `{name}`?", message.trim_end()),
        None => message.to_owned(),
    }
}

fn hint(message: &str) -> Option<&str> {
    let (_, rest) = message
        .split_once("unknown field `")
        .or_else(|| message.split_once("unknown variant `"))?;
    let (word, rest) = rest.split_once('`')?;
    // The listed names: every `quoted` word on the rest of that line ("expected one of `a`,
    // `b`" or "expected `a` or `b`").
    let list = rest.lines().next().unwrap_or("");
    let names: Vec<&str> = list.split('`').skip(1).step_by(2).collect();
    closest(word, &names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_listed_name_within_a_typo() {
        let names = ["address", "remote_as", "hold_time", "passive"];
        assert_eq!(closest("hold_tme", &names), Some("hold_time"));
        assert_eq!(closest("holdtime", &names), Some("hold_time"));
        assert_eq!(closest("Hold-Time", &names), Some("hold_time"));
        assert_eq!(closest("remote-as", &names), Some("remote_as"));
        assert_eq!(closest("adress", &names), Some("address"));
        // Unrelated words get nothing rather than a wrong guess.
        assert_eq!(closest("keepalive", &names), None);
        assert_eq!(closest("x", &names), None);
        assert_eq!(closest("hold_time", &[]), None);
        // Two names as close: no guess.
        assert_eq!(closest("dc3", &["dc1", "dc2"]), None);
        assert_eq!(closest("dc", &["dc1", "dc2", "lab"]), None);
    }

    #[test]
    fn distance_counts_edits() {
        assert_eq!(distance("", ""), 0);
        assert_eq!(distance("abc", ""), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("hold_tme", "hold_time"), 1);
        assert_eq!(distance("ordre", "order"), 1);
        assert_eq!(distance("ab", "ba"), 1);
    }

    #[test]
    fn hint_reads_both_serde_list_shapes() {
        let m = "unknown field `hold_tme`, expected one of `address`, `hold_time`, `port`\n";
        assert_eq!(
            did_you_mean(m),
            "unknown field `hold_tme`, expected one of `address`, `hold_time`, `port`; did you mean `hold_time`?"
        );
        let m = "unknown variant `ipv44`, expected `ipv4` or `ipv6`";
        assert!(
            did_you_mean(m).ends_with("did you mean `ipv4`?"),
            "{}",
            did_you_mean(m)
        );
        let m = "unknown field `zzz`, expected `address`";
        assert_eq!(did_you_mean(m), m);
        let m = "invalid type: integer `1`, expected a string";
        assert_eq!(did_you_mean(m), m);
    }
}

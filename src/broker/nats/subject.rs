//! How channel names map onto NATS subjects. A channel's dots are NATS token separators,
//! so that a pattern ending at a dot (`news.*`) is a NATS wildcard (`…out.news.>`).
//! Every other channel character (`A-Z a-z 0-9 _ - : @ /`) is valid in a NATS token as
//! it is; the one thing NATS forbids that a channel may hold is an empty token (`a..b`,
//! `news.`), written `%` (a character channel names never contain).

/// The subjects of one stream: `PREFIX.in.CHANNEL` is what nodes publish and the stream
/// stores; `PREFIX.out.CHANNEL` is what the stream republishes once a message is stored,
/// and what nodes subscribe to. (Subscribing to what publishers send would also deliver
/// the publications that the stream refuses.)
#[derive(Debug, Clone)]
pub(super) struct Subjects {
    stored: String,
    delivered: String,
}

impl Subjects {
    /// The subjects under `prefix` (for example `sluice`).
    pub fn new(prefix: &str) -> Self {
        Self { stored: format!("{prefix}.in."), delivered: format!("{prefix}.out.") }
    }

    /// Where a message of `channel` is published and stored.
    pub fn stored(&self, channel: &str) -> String {
        format!("{}{}", self.stored, escape(channel))
    }

    /// Where a stored message of `channel` is delivered.
    pub fn delivered(&self, channel: &str) -> String {
        format!("{}{}", self.delivered, escape(channel))
    }

    /// The stream's subjects, and the republish mapping from stored to delivered.
    pub fn stream(&self) -> (String, String) {
        (format!("{}>", self.stored), format!("{}>", self.delivered))
    }

    /// The channel a delivered subject belongs to.
    pub fn channel_of(&self, subject: &str) -> Option<String> {
        subject.strip_prefix(&self.delivered).map(unescape)
    }

    /// The NATS filter that covers every channel starting with `prefix` (a pattern without
    /// its `*`): the subtree of its last complete token. A prefix that does not end at a dot
    /// (`new*`) gets a wider filter, and the node drops what no local pattern wants.
    pub fn filter(&self, prefix: &str) -> String {
        match prefix.rfind('.') {
            Some(dot) => format!("{}{}.>", self.delivered, escape(&prefix[..dot])),
            None => format!("{}>", self.delivered),
        }
    }

    /// The filters narrower than the widest, from widest, that a delivered `subject`
    /// falls under: `P.out.>`, `P.out.a.>`, `P.out.a.b.>` for `P.out.a.b.c`.
    pub fn filters_of<'a>(&'a self, subject: &'a str) -> impl Iterator<Item = String> + 'a {
        let tail = subject.strip_prefix(&self.delivered).unwrap_or("");
        let dots = tail.match_indices('.').map(|(i, _)| i);
        std::iter::once(format!("{}>", self.delivered))
            .chain(dots.map(move |i| format!("{}{}.>", self.delivered, &tail[..i])))
    }
}

fn escape(channel: &str) -> String {
    channel.split('.').map(|t| if t.is_empty() { "%" } else { t }).collect::<Vec<_>>().join(".")
}

fn unescape(subject: &str) -> String {
    subject.split('.').map(|t| if t == "%" { "" } else { t }).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channels_round_trip_through_subjects() {
        let s = Subjects::new("sluice");
        for channel in ["news", "news.a", "a..b", "news.", ".x", "u:1@host/x", "a.b-c_d"] {
            let subject = s.delivered(channel);
            assert!(!subject.contains("..") && !subject.ends_with('.'), "{subject}");
            assert_eq!(s.channel_of(&subject).as_deref(), Some(channel));
        }
        assert_eq!(s.stored("a..b"), "sluice.in.a.%.b");
    }

    #[test]
    fn patterns_map_onto_the_narrowest_covering_wildcard() {
        let s = Subjects::new("p");
        assert_eq!(s.filter("news."), "p.out.news.>");
        assert_eq!(s.filter("a.b.ne"), "p.out.a.b.>");
        assert_eq!(s.filter("new"), "p.out.>");
        assert_eq!(s.filter(""), "p.out.>");
        assert_eq!(s.filter("a.."), "p.out.a.%.>");
        let all: Vec<String> = s.filters_of("p.out.a.b.c").collect();
        assert_eq!(all, ["p.out.>", "p.out.a.>", "p.out.a.b.>"]);
    }
}

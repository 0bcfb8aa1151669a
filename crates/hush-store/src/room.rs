//! Group chats (XEP-0045 rooms) as the store keeps them: the rooms this account joined, and
//! what Hush last learnt of each one's members and configuration.
//!
//! XEP-0384 §5.8 encrypts a room message for every device of every member, owner and admin
//! (their real JIDs, present or not). The member list is the room service's answer; it is kept
//! here so that `hush status ROOM` can say who would read the next message without going
//! online, and so that the engine can tell a member's first message from a stranger's.

/// A member's standing in a room (XEP-0045 §5.2), as far as encryption cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Affiliation {
    /// Owns the room: can change its configuration and every list.
    Owner,
    /// Administers the room: can grant and revoke membership.
    Admin,
    /// May enter a members-only room.
    Member,
}

impl Affiliation {
    /// The XEP-0045 name.
    pub fn as_str(self) -> &'static str {
        match self {
            Affiliation::Owner => "owner",
            Affiliation::Admin => "admin",
            Affiliation::Member => "member",
        }
    }

    /// The affiliation named `s`; `None` for `none`, `outcast` and anything else (no key).
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "owner" => Some(Affiliation::Owner),
            "admin" => Some(Affiliation::Admin),
            "member" => Some(Affiliation::Member),
            _ => None,
        }
    }

    /// Whether it may add readers: owners and admins grant membership.
    pub fn can_add_members(self) -> bool {
        matches!(self, Affiliation::Owner | Affiliation::Admin)
    }
}

/// One member of a room: a real bare JID with an affiliation.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Member {
    /// The member's real bare JID.
    pub jid: String,
    /// Its affiliation.
    pub affiliation: Affiliation,
}

/// What the room service says about a room's privacy (its disco#info features, XEP-0045
/// §16.3). OMEMO requires a non-anonymous room, and a members-only one keeps the list of
/// readers in the hands of its owners and admins.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RoomConfig {
    /// `muc_membersonly`: only members may enter.
    pub members_only: bool,
    /// `muc_nonanonymous`: every occupant sees every occupant's real JID.
    pub non_anonymous: bool,
}

/// A room this account joined.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Room {
    /// The room's bare JID (`room@service`).
    pub jid: String,
    /// Our nickname in it.
    pub nick: String,
    /// The room's privacy, as last read.
    pub config: RoomConfig,
    /// The members, admins and owners, as last read (sorted, each JID once). Our own JID is
    /// among them when we are affiliated.
    pub members: Vec<Member>,
    /// Whether the member list could be read the last time it was asked for: a room whose
    /// list is unknown gets no encrypted message.
    pub members_known: bool,
    /// When we joined (unix seconds): earlier messages were not encrypted for us.
    pub joined_at: u64,
    /// The members (JIDs, sorted) as the report of the last message sent there named them;
    /// `None` before any. The next report names who joined and left since: the room service
    /// decides who is a member, so a reader it adds must not go unnoticed.
    pub members_told: Option<Vec<String>>,
}

impl Room {
    /// The affiliation of `jid` in this room, if it has one.
    pub fn affiliation(&self, jid: &str) -> Option<Affiliation> {
        self.members
            .iter()
            .find(|m| m.jid == jid)
            .map(|m| m.affiliation)
    }

    /// Replaces the member list, each JID once with its highest affiliation, sorted.
    pub fn set_members(&mut self, members: impl IntoIterator<Item = Member>) {
        let mut all: Vec<Member> = members.into_iter().collect();
        all.sort_by(|a, b| a.jid.cmp(&b.jid).then(a.affiliation.cmp(&b.affiliation)));
        all.dedup_by(|later, kept| later.jid == kept.jid);
        self.members = all;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_member_list_keeps_each_jid_once_at_its_highest_affiliation() {
        let mut room = Room {
            jid: "r@muc.x".into(),
            nick: "me".into(),
            config: RoomConfig::default(),
            members: Vec::new(),
            members_known: true,
            joined_at: 0,
            members_told: None,
        };
        room.set_members([
            Member {
                jid: "b@x".into(),
                affiliation: Affiliation::Member,
            },
            Member {
                jid: "a@x".into(),
                affiliation: Affiliation::Member,
            },
            Member {
                jid: "b@x".into(),
                affiliation: Affiliation::Owner,
            },
        ]);
        assert_eq!(
            room.members
                .iter()
                .map(|m| (m.jid.as_str(), m.affiliation))
                .collect::<Vec<_>>(),
            [("a@x", Affiliation::Member), ("b@x", Affiliation::Owner)]
        );
        assert_eq!(room.affiliation("b@x"), Some(Affiliation::Owner));
        assert_eq!(room.affiliation("c@x"), None);
        assert_eq!(Affiliation::parse("outcast"), None);
        assert_eq!(Affiliation::parse("admin"), Some(Affiliation::Admin));
    }
}

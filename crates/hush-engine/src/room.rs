//! Group chats (XEP-0045 rooms, XEP-0384 §5.8): who gets the keys of a room message, and the
//! message itself.
//!
//! A room message is encrypted for every device of every member, admin and owner of the room
//! (their real JIDs, present or not, as the room's member list says) and for our own other
//! devices — never for the room, which is only a relay. Each member is written to in the best
//! suite it announces, so one stanza may carry an `omemo:2` element for some readers and a
//! legacy one for others (a mixed room works by design, not by luck).
//!
//! What a room must be before anything encrypted goes into it, checked on every send:
//! non-anonymous (every member sees every member's real JID, so each can check whom it writes
//! to), members-only (the readers are whom the owners and admins admitted, not whoever walks
//! in), and with a member list we could read. Otherwise the send is refused with the reason
//! ([`RoomRefusal`]); only the user's explicit request sends in clear.
//!
//! A send takes the same three steps as a direct message (see [`crate::send`]):
//! [`Engine::room_readers`] names whose device lists to fetch, [`Engine::plan_room_send`]
//! turns the lists into devices and bundles to fetch, and [`Engine::prepare_room_send`]
//! decides, seals and hands out the transaction and the stanza.

use core::fmt;

use hush_proto::{Session, Suite};
use hush_store::{ConversationChange, DeviceListUpdate, Room, SessionKey, Store, Transaction};
use rand_core::CryptoRng;

use crate::refusal::{Obstacle, Refusal};
use crate::send::{decide_readers, Fetched, Opened, Prepared, Route};
use crate::stanza::MessageStanza;
use crate::types::Unreached;
use crate::{Content, Engine, EngineError, Result, SendOptions, SendReport, MAX_LISTED_DEVICES};

/// Why a room gets no encrypted message.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RoomRefusal {
    /// We have not joined it.
    NotJoined,
    /// Its occupants cannot see each other's real JIDs (semi-anonymous): nobody could check
    /// whom a message is encrypted for (XEP-0384 requires non-anonymous rooms).
    Anonymous,
    /// Anyone may enter it: the readers would be whoever walks in, not whom its owners
    /// admitted.
    OpenToNonMembers,
    /// Its member list could not be read, so the readers are unknown.
    MembersUnknown,
}

impl RoomRefusal {
    /// Why the joined room `room`, as stored, gets no encrypted message; `None` when it is
    /// private enough (non-anonymous, members-only, its member list known).
    pub fn of(room: &Room) -> Option<Self> {
        if !room.config.non_anonymous {
            Some(Self::Anonymous)
        } else if !room.config.members_only {
            Some(Self::OpenToNonMembers)
        } else if !room.members_known {
            Some(Self::MembersUnknown)
        } else {
            None
        }
    }
}

impl fmt::Display for RoomRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NotJoined => "the room is not joined",
            Self::Anonymous => {
                "the room is anonymous: its members cannot see each other's real addresses, so \
                 nobody can check whom a message is encrypted for"
            }
            Self::OpenToNonMembers => {
                "the room is open to non-members: anyone who walks in could be given the keys"
            }
            Self::MembersUnknown => "the room's member list could not be read",
        })
    }
}

/// A device list as the shell fetched it: the first suite, in [`Suite::ALL`] order, with a
/// non-empty list, and its device ids; `None` when there is none.
pub type Announced = Option<(Suite, Vec<u32>)>;

/// Sessions to encrypt on, `(jid, device, session)`.
type Group = Vec<(String, u32, Session)>;

/// The devices one room message is for, decided from the members' device lists.
#[derive(Debug, Clone)]
pub struct RoomPlan {
    room: String,
    /// `(suite, jid, device, is a member's)`, members' first.
    targets: Vec<(Suite, String, u32, bool)>,
    inactive: Vec<((String, u32), Obstacle)>,
    device_lists: Vec<DeviceListUpdate>,
    /// Members with no OMEMO device at all: they cannot read the message.
    without_devices: Vec<String>,
    /// Members left out, with why: a flooded device list, or a downgrade (neither may keep
    /// the whole room from getting the message).
    unreached: Vec<(String, Unreached)>,
    /// Devices to encrypt for that have no session yet: fetch their bundles in the suite
    /// given and hand them to [`Engine::prepare_room_send`].
    pub bundles_needed: Vec<(Suite, String, u32)>,
}

impl RoomPlan {
    /// The devices to encrypt for: `(suite, jid, device, is a member's)`.
    pub fn targets(&self) -> &[(Suite, String, u32, bool)] {
        &self.targets
    }
}

impl Engine {
    /// The room `room` as stored, if it may receive encrypted messages; else why not.
    pub fn secure_room<S: Store + ?Sized>(&self, store: &S, room: &str) -> Result<Room> {
        let refuse = |why| EngineError::NotSent {
            jid: room.to_owned(),
            refusal: Refusal::Room(why),
        };
        let stored = store
            .room(room)?
            .ok_or_else(|| refuse(RoomRefusal::NotJoined))?;
        match RoomRefusal::of(&stored) {
            Some(why) => Err(refuse(why)),
            None => Ok(stored),
        }
    }

    /// Step 1: whether a message to the room goes in clear (only as the user asked) or
    /// encrypted, and for an encrypted one the members whose device lists to fetch (every
    /// member, admin and owner but us).
    pub fn room_readers<S: Store + ?Sized>(
        &self,
        store: &S,
        room: &str,
        options: SendOptions,
    ) -> Result<(Route, Vec<String>)> {
        if self.route(store, room, options)? == Route::InClear {
            return Ok((Route::InClear, Vec::new()));
        }
        let stored = self.secure_room(store, room)?;
        let members = stored
            .members
            .into_iter()
            .map(|m| m.jid)
            .filter(|jid| *jid != self.jid)
            .collect();
        Ok((Route::Encrypted, members))
    }

    /// A message in clear to a room — only reached on the user's explicit request.
    pub fn prepare_in_clear_to_room<R: CryptoRng + ?Sized>(
        &self,
        room: &str,
        text: &str,
        now: u64,
        rng: &mut R,
    ) -> Prepared {
        let mut prepared = self.prepare_in_clear(room, text, now, rng);
        let origin_id = prepared.stanza.origin_id().to_owned();
        prepared.stanza = MessageStanza::in_clear_to_room(room, text, origin_id);
        prepared
    }

    /// Step 2: the devices a room message is for, from the device lists the shell fetched:
    /// each member's (`lists`: the first suite, in [`Suite::ALL`] order, with a non-empty
    /// list, or `None`) and ours (`own`, chosen the same way). A member whose devices have all
    /// been silent too long keeps them (see [`crate::DEFAULT_INACTIVE_AFTER`]).
    pub fn plan_room_send<S: Store + ?Sized>(
        &self,
        store: &S,
        room: &str,
        lists: Vec<(String, Announced)>,
        own: Announced,
        now: u64,
    ) -> Result<RoomPlan> {
        let stored = self.secure_room(store, room)?;
        let mut device_lists = Vec::new();
        let mut targets: Vec<(Suite, String, u32, bool)> = Vec::new();
        let mut inactive = Vec::new();
        let mut without_devices = Vec::new();
        let mut unreached = Vec::new();
        let mut readers: Vec<(String, Announced, bool)> = lists
            .into_iter()
            // Only members get keys, whatever the shell fetched.
            .filter(|(jid, _)| *jid != self.jid && stored.affiliation(jid).is_some())
            .map(|(jid, list)| (jid, list, true))
            .collect();
        readers.push((self.jid.clone(), own, false));
        for (jid, list, member) in readers {
            let Some((suite, mut devices)) = list.filter(|(_, l)| !l.is_empty()) else {
                if member {
                    without_devices.push(jid);
                }
                continue;
            };
            if devices.len() > MAX_LISTED_DEVICES {
                if !member {
                    return Err(EngineError::DeviceListTooLong {
                        jid,
                        count: devices.len(),
                    });
                }
                log::warn!(
                    "{jid}'s device list names {} devices, more than any account has: left out \
                     of this room message",
                    devices.len()
                );
                unreached.push((
                    jid,
                    Unreached::ListTooLong {
                        count: devices.len(),
                    },
                ));
                continue;
            }
            if member {
                match self.refuse_downgrade(store, &jid, suite, &devices) {
                    Ok(()) => {}
                    Err(EngineError::NotSent {
                        refusal: Refusal::Downgrade { used, left },
                        ..
                    }) => {
                        log::warn!(
                            "{jid} announces only {left} although {used} was used with them: \
                             left out of this room message"
                        );
                        unreached.push((jid, Unreached::Downgrade { used, left }));
                        continue;
                    }
                    Err(e) => return Err(e),
                }
            }
            device_lists.push(DeviceListUpdate {
                suite,
                jid: jid.clone(),
                devices: devices.clone(),
                at: now,
            });
            devices.sort_unstable();
            devices.dedup();
            if jid == self.jid {
                devices.retain(|id| *id != self.device_id());
            }
            let mut silent = Vec::new();
            for device in &devices {
                if let Some(why) = self.inactive(store, suite, &jid, *device, now)? {
                    silent.push(((jid.clone(), *device), why));
                }
            }
            // A member whose every device is silent would otherwise be unreachable.
            if !(member && silent.len() == devices.len()) {
                inactive.extend(silent);
            }
            targets.extend(devices.into_iter().map(|d| (suite, jid.clone(), d, member)));
        }
        let rewound = store.sessions_needing_reset()?;
        let mut bundles_needed = Vec::new();
        for (suite, jid, device, _) in &targets {
            let left_out = inactive.iter().any(|((j, d), _)| j == jid && d == device);
            let key = SessionKey::new(*suite, jid, *device);
            if !left_out && (rewound.contains(&key) || store.session(&key)?.is_none()) {
                bundles_needed.push((*suite, jid.clone(), *device));
            }
        }
        Ok(RoomPlan {
            room: room.to_owned(),
            targets,
            inactive,
            device_lists,
            without_devices,
            unreached,
            bundles_needed,
        })
    }

    /// Step 3: decides over every device the plan found (the room's own policy, as for a
    /// contact), seals one element per suite the readers use, and hands out one transaction
    /// with the advanced sessions, the history and outbox entry and what was learnt.
    pub fn prepare_room_send<S: Store + ?Sized, R: CryptoRng + ?Sized>(
        &self,
        store: &S,
        plan: RoomPlan,
        content: impl Into<Content>,
        bundles: Vec<((String, u32), Fetched)>,
        now: u64,
        rng: &mut R,
    ) -> Result<Prepared> {
        let RoomPlan {
            room,
            targets,
            inactive,
            device_lists,
            without_devices,
            unreached,
            ..
        } = plan;
        let content = content.into();
        let text = content.body.as_str();
        // The room is checked again: its configuration may have changed since the plan.
        self.secure_room(store, &room)?;
        let conversation = store.conversation(&room)?;
        let Opened {
            readers,
            sessions,
            reasons,
            new_keys,
            report_keys,
        } = self.open_sessions(store, targets, inactive, bundles, now, rng)?;
        let (chosen, skipped, properties) =
            decide_readers(&conversation.policy, &room, &readers, &reasons)?;
        let mut by_suite: Vec<(Suite, Group)> = Vec::new();
        for (suite, jid, device, session) in sessions {
            if !chosen.iter().any(|(j, d)| *j == jid && *d == device) {
                continue;
            }
            match by_suite.iter_mut().find(|(s, _)| *s == suite) {
                Some((_, group)) => group.push((jid, device, session)),
                None => by_suite.push((suite, vec![(jid, device, session)])),
            }
        }
        // The best suite's element first (its readers are the most).
        by_suite.sort_by_key(|(suite, _)| Suite::ALL.iter().position(|s| s == suite));
        let mut elements = Vec::new();
        let mut advanced = Vec::new();
        let mut devices = Vec::new();
        for (suite, mut group) in by_suite {
            elements.push(self.seal_content(suite, &content, &room, &mut group, now, rng)?);
            for (jid, device, session) in group {
                devices.push((jid.clone(), device));
                advanced.push((SessionKey::new(suite, &jid, device), session));
            }
        }
        let suite = elements.first().map_or(Suite::Omemo2, |e| e.suite);
        let suites: Vec<Suite> = elements.iter().map(|e| e.suite).collect();
        // Known by content too, should the room send it back under other ids (or none): the
        // first element, which a reader without a key of its own picks (the best suite).
        let digest = elements.first().and_then(|e| e.sent_digest());
        let origin_id = crate::send::origin_id(rng);
        let stanza = MessageStanza::to_room(&room, elements, origin_id.clone());
        let bytes = String::from(&stanza.to_element()).into_bytes();
        let mut outgoing = self.outgoing_with_id(&room, text, Some(suite), bytes, now, origin_id);
        outgoing.ids.digest = digest;
        Ok(Prepared {
            transaction: Transaction {
                new_keys,
                device_lists,
                conversations: vec![
                    (room.clone(), ConversationChange::Reached(properties)),
                    (room.clone(), ConversationChange::Contact),
                ],
                outgoing: Some((advanced, outgoing)),
                ..Transaction::default()
            },
            stanza,
            report: SendReport {
                suite: Some(suite),
                suites,
                devices,
                skipped,
                properties,
                new_keys: report_keys,
                without_devices,
                members_added: Vec::new(),
                members_removed: Vec::new(),
                members_unreached: unreached,
            },
        })
    }

    /// Whether `sender` is a member (any affiliation) of the joined room `room`: a member's
    /// first message is not a stranger's.
    pub(crate) fn is_room_member<S: Store + ?Sized>(
        &self,
        store: &S,
        room: &str,
        sender: &str,
    ) -> Result<bool> {
        Ok(store
            .room(room)?
            .is_some_and(|r| r.affiliation(sender).is_some()))
    }
}

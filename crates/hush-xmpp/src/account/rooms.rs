//! The account in rooms (XEP-0045 with XEP-0384 §5.8): joining and leaving, keeping the
//! stored room (its privacy and member list) as the room service last said, and sending.
//!
//! The member list is read again before every encrypted message: a member removed gets no key
//! from the next message on, and a new one gets keys from the next message on. (Reading it
//! costs four round trips; a membership change missed between two notices must not leave a
//! reader in.)

use hush_engine::{Delivery, RoomChange, RoomRefusal, Route, SendOptions, SendReport};
use hush_proto::Suite;
use hush_store::{Affiliation, Room, Store};
use tokio_xmpp::parsers::jid::BareJid;

use std::collections::BTreeSet;

use super::Hush;
use crate::error::{Result, XmppError};

impl<S: Store> Hush<S> {
    /// Joins `room` as `nick` (or the nickname it was joined with before), creating it
    /// members-only and non-anonymous if it does not exist, and records it with its privacy
    /// and member list. Joined rooms are entered again on every connection.
    pub async fn join_room(&mut self, room: &BareJid, nick: Option<&str>) -> Result<Room> {
        self.join_room_since(room, nick, None).await
    }

    /// [`Self::join_room`]; a room this device enters for the first time because the account
    /// joined it elsewhere at `since` (its bookmark says when) is read from then, not from
    /// now: members encrypted for every device of the account meanwhile.
    async fn join_room_since(
        &mut self,
        room: &BareJid,
        nick: Option<&str>,
        since: Option<u64>,
    ) -> Result<Room> {
        let stored = self.store.room(room.as_str())?;
        let default_nick = self.jid.node().map_or("hush", |n| n.as_str()).to_owned();
        let nick = nick
            .map(str::to_owned)
            .or_else(|| stored.as_ref().map(|r| r.nick.clone()))
            .unwrap_or(default_nick);
        let was_in = self.xmpp.in_room(room);
        let entered = self.xmpp.join_room(room, &nick).await?;
        let new = stored.is_none();
        let mut record = stored.unwrap_or(Room {
            jid: room.to_string(),
            nick: entered.nick.clone(),
            config: Default::default(),
            members: Vec::new(),
            members_known: false,
            joined_at: since.unwrap_or_else(|| self.now()),
            members_told: None,
        });
        record.nick = entered.nick;
        let mut record = self.refresh_room(record).await?;
        if new && record.members_known {
            // The members as joined: the first send reports who joined and left since.
            record.members_told = Some(member_set(&record).into_iter().collect());
            self.store.save_room(&record)?;
        }
        // Every device of the account enters it too (XEP-0402); without the bookmark this
        // device is still in the room, so a failure is only logged.
        if let Err(e) = self
            .xmpp
            .publish_bookmark(room, &record.nick, record.joined_at)
            .await
        {
            log::warn!("could not bookmark {room} for this account's other devices: {e}");
        }
        if new && since.is_some() {
            // Read from when the account joined (by the next entry into its rooms).
        } else if new {
            // Nothing archived before the join was encrypted for us: reading starts at the
            // archive's end (or, if that cannot be read, at the time of joining).
            match self.xmpp.room_archive_end(room).await {
                Ok(Some(end)) => self.store.set_archive_resume(room.as_str(), &end)?,
                Ok(None) => {}
                Err(e) => log::warn!("could not find the end of {room}'s archive: {e}"),
            }
        } else if !was_in {
            self.read_room_archive_into_backlog(room).await;
        }
        Ok(record)
    }

    /// Reads the room's privacy and member list again and stores them. A list the room
    /// refuses to give leaves the room with its members unknown (it then gets no encrypted
    /// message); any other failure is returned.
    async fn refresh_room(&mut self, mut room: Room) -> Result<Room> {
        let jid: BareJid = room
            .jid
            .parse()
            .map_err(|_| XmppError::BadJid(room.jid.clone()))?;
        room.config = self.xmpp.room_config(&jid).await?;
        match self.xmpp.room_members(&jid).await {
            Ok(members) => {
                room.set_members(members);
                room.members_known = true;
            }
            Err(XmppError::Refused { condition, .. }) => {
                log::warn!(
                    "{jid} does not show its member list to this account ({}): nothing \
                     encrypted can be sent there",
                    crate::error::condition_name(&condition)
                );
                room.members_known = false;
            }
            Err(e) => return Err(e),
        }
        self.store.save_room(&room)?;
        Ok(room)
    }

    /// Leaves `room` and forgets it (its history stays).
    pub async fn leave_room(&mut self, room: &BareJid) -> Result<()> {
        self.xmpp.leave_room(room).await?;
        self.store.forget_room(room.as_str())?;
        if let Err(e) = self.xmpp.retract_bookmark(room).await {
            log::warn!("could not remove {room}'s bookmark: the account's other devices may enter it again: {e}");
        }
        Ok(())
    }

    /// The account's room bookmarks (XEP-0402), as its server keeps them for all its devices.
    pub async fn bookmarks(&mut self) -> Result<Vec<crate::Bookmark>> {
        self.xmpp.bookmarks().await
    }

    /// The rooms joined, as stored.
    pub fn rooms(&self) -> Result<Vec<Room>> {
        Ok(self.store.rooms()?)
    }

    /// Makes `jid` a member (or admin, owner) of `room`, or takes its affiliation away
    /// (`None`), as the room's owner or admin; the stored member list is read again.
    pub async fn set_room_member(
        &mut self,
        room: &BareJid,
        jid: &BareJid,
        affiliation: Option<Affiliation>,
    ) -> Result<Room> {
        self.enter(room).await?;
        self.xmpp.set_affiliation(room, jid, affiliation).await?;
        let stored = self.stored_room(room)?;
        self.refresh_room(stored).await
    }

    /// The stored room, or the engine's refusal for a room never joined.
    fn stored_room(&self, room: &BareJid) -> Result<Room> {
        self.store
            .room(room.as_str())?
            .ok_or_else(|| XmppError::NotJoined(room.to_string()))
    }

    /// Enters the joined room `room` if this connection is not in it yet.
    pub(super) async fn enter(&mut self, room: &BareJid) -> Result<()> {
        if self.xmpp.in_room(room) {
            return Ok(());
        }
        let stored = self.stored_room(room)?;
        self.xmpp.join_room(room, &stored.nick).await?;
        self.read_room_archive_into_backlog(room).await;
        Ok(())
    }

    /// Reads what `room`'s archive holds since we last read it, for the next `receive` to
    /// hand out. A failure is logged: entering the room stands, and the next entry reads again
    /// from the same place.
    async fn read_room_archive_into_backlog(&mut self, room: &BareJid) {
        let mut found = Vec::new();
        if let Err(e) = self.read_room_archive(room, &mut found).await {
            log::warn!(
                "could not read {room}'s archive: messages sent there while none of this \
                 account's devices was in the room are not read ({e})"
            );
        }
        self.backlog.extend(found);
    }

    /// Reads `room`'s archive (XEP-0313 §6) from where we last read it: the first time, from
    /// where its archive ended when we joined.
    pub(super) async fn read_room_archive(
        &mut self,
        room: &BareJid,
        out: &mut Vec<Delivery>,
    ) -> Result<()> {
        match self
            .engine
            .room_archive_cursor(&self.store, room.as_str())?
        {
            Some(cursor) => self.read_pages(Some(room), cursor, out).await,
            None => Ok(()),
        }
    }

    /// Enters every joined room this connection is not in (after going online, and after a
    /// session was lost), and reads what each room's archive holds since we last read it into
    /// `out`. A room that refuses, or whose archive cannot be read, is logged: the others are
    /// still entered.
    pub(crate) async fn enter_rooms(&mut self, out: &mut Vec<Delivery>) {
        self.join_bookmarked_rooms().await;
        let rooms = match self.store.rooms() {
            Ok(r) => r,
            Err(e) => {
                log::warn!("could not read the joined rooms: {e}");
                return;
            }
        };
        for room in rooms {
            let Ok(jid) = room.jid.parse::<BareJid>() else {
                continue;
            };
            if self.xmpp.in_room(&jid) {
                // Still in it, but live messages may have been dropped (a flood while an
                // answer was awaited): the room's archive has them, and copies are recognised.
                if let Err(e) = self.read_room_archive(&jid, out).await {
                    log::warn!("could not read {jid}'s archive: {e}");
                }
                continue;
            }
            match self.xmpp.join_room(&jid, &room.nick).await {
                Ok(_) => {
                    if let Err(e) = self.refresh_room(room).await {
                        log::warn!("could not read what {jid} is now: {e}");
                    }
                    if let Err(e) = self.read_room_archive(&jid, out).await {
                        log::warn!(
                            "could not read {jid}'s archive: messages sent there while none \
                             of this account's devices was in the room are not read ({e})"
                        );
                    }
                }
                Err(e) => log::warn!("could not enter {jid} again: {e}"),
            }
        }
    }

    /// Joins the rooms the account bookmarked for entering automatically (XEP-0402) that this
    /// device has not joined: a room joined on another device. Failures are logged; the rooms
    /// this device joined are entered anyway.
    async fn join_bookmarked_rooms(&mut self) {
        let bookmarks = match self.xmpp.bookmarks().await {
            Ok(b) => b,
            Err(e) => {
                log::warn!("could not read the account's room bookmarks: {e}");
                return;
            }
        };
        for b in bookmarks.into_iter().filter(|b| b.autojoin) {
            match self.store.room(b.room.as_str()) {
                Ok(None) => {}
                Ok(Some(_)) => continue,
                Err(e) => {
                    log::warn!("could not read the joined rooms: {e}");
                    return;
                }
            }
            log::info!(
                "entering {}, bookmarked by another device of this account",
                b.room
            );
            // Not from before this device existed: nothing then was encrypted for it.
            let since = b.joined_at.map(|t| t.max(self.since));
            if let Err(e) = self
                .join_room_since(&b.room, b.nick.as_deref(), since)
                .await
            {
                log::warn!("could not enter the bookmarked room {}: {e}", b.room);
            }
        }
    }

    /// Stores what the rooms said changed (affiliations, privacy) since the last look, and
    /// tells the user — as a room notice for the next `receive` — when a room removed this
    /// account or stopped being private enough for encrypted messages. A room that banned us
    /// or took our membership away is forgotten (joining it again would be refused; its
    /// history stays); one that kicked us or shut down is entered again on the next
    /// connection.
    pub(crate) async fn apply_room_changes(&mut self) -> Result<()> {
        for (room, code) in self.xmpp.take_removed_rooms() {
            log::warn!("{room} removed this account (status {code})");
            if matches!(code, 301 | 321 | 322) {
                self.store.forget_room(room.as_str())?;
                // Nor should the account's other devices try to enter it again.
                if let Err(e) = self.xmpp.retract_bookmark(&room).await {
                    log::warn!("could not remove {room}'s bookmark: {e}");
                }
            }
            self.backlog.push_back(Delivery::room_notice(
                room.as_str(),
                RoomChange::Removed { code },
            ));
        }
        for room in self.xmpp.take_changed_rooms() {
            if let Some(stored) = self.store.room(room.as_str())? {
                let was = RoomRefusal::of(&stored);
                let now = self.refresh_room(stored).await?;
                if let (None, Some(why)) = (was, RoomRefusal::of(&now)) {
                    self.backlog.push_back(Delivery::room_notice(
                        room.as_str(),
                        RoomChange::NoLongerPrivate(why),
                    ));
                }
            }
        }
        Ok(())
    }

    /// Sends `text` to `room`: encrypted for every device of every member (each in the best
    /// suite it announces) and our own other devices, after reading the member list again —
    /// or in clear, only as the user asked. A room that is anonymous, open to non-members or
    /// hides its member list gets nothing (the engine's refusal says which).
    pub async fn send_to_room(
        &mut self,
        room: &BareJid,
        content: impl Into<hush_engine::Content>,
        options: SendOptions,
    ) -> Result<SendReport> {
        let content = content.into();
        let text = content.body.as_str();
        let now = self.now();
        self.enter(room).await?;
        let (route, _) = self
            .engine
            .room_readers(&self.store, room.as_str(), options)
            .or_else(|e| match e {
                // The stored room may be stale: it is read again below.
                hush_engine::EngineError::NotSent { .. } => Ok((Route::Encrypted, Vec::new())),
                e => Err(e),
            })?;
        if route == Route::InClear {
            if !content.extra.is_empty() {
                return Err(crate::transfer::TransferError::NotEncrypted {
                    to: room.to_string(),
                }
                .into());
            }
            let prepared =
                self.engine
                    .prepare_in_clear_to_room(room.as_str(), text, now, &mut self.rng);
            return Ok(self.transmit(prepared).await?.0);
        }
        let stored = self.stored_room(room)?;
        self.refresh_room(stored).await?;
        let (_, members) = self
            .engine
            .room_readers(&self.store, room.as_str(), options)?;
        let mut lists = Vec::with_capacity(members.len());
        // Members whose device list could not be read: not "without devices", a failure.
        let mut unreadable = Vec::new();
        for member in members {
            let list = match member.parse::<BareJid>() {
                Ok(jid) => match self.devices_of(&jid).await {
                    Ok(list) => list,
                    Err(e) => {
                        log::warn!("could not fetch {member}'s devices: {e}");
                        unreadable.push(member.clone());
                        None
                    }
                },
                Err(_) => None,
            };
            lists.push((member, list));
        }
        let own_jid = self.jid.clone();
        let own = match self.devices_of(&own_jid).await {
            Ok(list) => list,
            Err(e) => {
                // Our other devices get no key: said in the report, not only the log.
                log::warn!("could not fetch this account's own devices: {e}");
                unreadable.push(own_jid.to_string());
                None
            }
        };
        let plan = self
            .engine
            .plan_room_send(&self.store, room.as_str(), lists, own, now)?;
        let mut bundles = Vec::with_capacity(plan.bundles_needed.len());
        for (suite, jid, device) in plan.bundles_needed.clone() {
            bundles.push((
                (jid.clone(), device),
                self.fetch_for(suite, &jid, device).await,
            ));
        }
        let prepared = self.engine.prepare_room_send(
            &self.store,
            plan,
            content,
            bundles,
            now,
            &mut self.rng,
        )?;
        let mut report = self.transmit(prepared).await?.0;
        report.without_devices.retain(|j| !unreadable.contains(j));
        report.members_unreached.extend(
            unreadable
                .into_iter()
                .map(|j| (j, hush_engine::Unreached::ListUnreadable)),
        );
        // Who joined and left since the last report named the members: stored, so that no
        // run of `recv` or other connection in between (each reads the list again) hides one.
        let mut stored = self.stored_room(room)?;
        let now_members = member_set(&stored);
        if let Some(told) = &stored.members_told {
            let told: BTreeSet<String> = told.iter().cloned().collect();
            report.members_added = now_members.difference(&told).cloned().collect();
            report.members_removed = told.difference(&now_members).cloned().collect();
        }
        stored.members_told = Some(now_members.into_iter().collect());
        self.store.save_room(&stored)?;
        Ok(report)
    }

    /// The bundle of `jid`'s device `device` in `suite`, or why it could not be had.
    pub(super) async fn fetch_for(
        &mut self,
        suite: Suite,
        jid: &str,
        device: u32,
    ) -> hush_engine::Fetched {
        use hush_engine::FetchFailed;
        match jid.parse::<BareJid>() {
            Ok(bare) => self
                .xmpp
                .bundle(&bare, suite, device)
                .await
                .map_err(FetchFailed::new),
            Err(_) => Err(FetchFailed::new(XmppError::BadJid(jid.to_owned()))),
        }
    }
}

/// The JIDs of a room's members (every affiliation that gets keys).
fn member_set(room: &Room) -> BTreeSet<String> {
    room.members.iter().map(|m| m.jid.clone()).collect()
}

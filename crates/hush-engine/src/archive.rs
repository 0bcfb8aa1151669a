//! Reading our archive (XEP-0313) to catch up: where to start, when to start again, when the
//! archive is misbehaving, and where the next catch-up resumes.
//!
//! The shell queries and pages; an [`ArchiveCursor`] decides. Messages are committed page by
//! page and the resume point moves only past a committed page, so a crash never skips a
//! message and never reads one twice into history (copies are recognised anyway). Live
//! messages do not move it: a message a server held back is still fetched.

use hush_store::Store;

use crate::{Engine, EngineError, Result};

/// Where a catch-up is in the archive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveCursor {
    after: Option<String>,
    since: u64,
}

impl Engine {
    /// Where a catch-up starts: after the last page a previous catch-up committed, or — for a
    /// device that never finished one — at `since` (unix seconds; the device's creation).
    ///
    /// Never after the last archived message stored: live messages carry the archive's stanza
    /// ids too, so a device whose first catch-up found the archive empty would start after the
    /// last message it read live and never fetch one it lost live before that (the simulation
    /// found this). A store from before resume points reads from `since` once; what it has
    /// already is recognised by its ids.
    pub fn archive_cursor<S: Store + ?Sized>(
        &self,
        store: &S,
        since: u64,
    ) -> Result<ArchiveCursor> {
        let after = store.archive_resume(&self.jid)?;
        Ok(ArchiveCursor { after, since })
    }

    /// Where reading the joined room `room`'s archive starts: after the last page read, or —
    /// the first time — at the moment it was joined (nothing older was encrypted for us).
    /// `None` for a room not joined.
    pub fn room_archive_cursor<S: Store + ?Sized>(
        &self,
        store: &S,
        room: &str,
    ) -> Result<Option<ArchiveCursor>> {
        let Some(joined) = store.room(room)? else {
            return Ok(None);
        };
        let after = store.archive_resume(room)?;
        Ok(Some(ArchiveCursor {
            after,
            since: joined.joined_at,
        }))
    }
}

impl ArchiveCursor {
    /// The archive id to query after (`None`: from `since`).
    pub fn after(&self) -> Option<&str> {
        self.after.as_deref()
    }

    /// The time to query from.
    pub fn since(&self) -> u64 {
        self.since
    }

    /// The archive no longer has the message we were to resume after (it expired, or the
    /// server lost it). `true`: query again from `since` — copies of what we already have are
    /// recognised by their ids; `false`: we were reading from `since` already, so this is the
    /// server misbehaving, and the error stands.
    pub fn lost_place(&mut self) -> bool {
        if self.after.is_none() {
            return false;
        }
        log::warn!(
            "the server's archive no longer has the last message we read from it; reading all \
             it has since this device was set up again"
        );
        self.after = None;
        true
    }

    /// A page arrived that ends at `last` and says whether the archive is `complete`. Moves
    /// the cursor past it; refuses a page that ends where it started without saying the
    /// archive is complete (a server that would have us query forever).
    pub fn page(&mut self, complete: bool, last: Option<&str>) -> Result<()> {
        if !complete && last.is_some() && last == self.after.as_deref() {
            return Err(EngineError::ArchiveMisbehaves(
                "a page ended where it started, without saying the archive is complete",
            ));
        }
        if let Some(last) = last {
            self.after = Some(last.to_owned());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hush_store::MemoryStore;
    use rand::SeedableRng;

    fn engine() -> (Engine, MemoryStore) {
        let mut rng = rand::rngs::StdRng::seed_from_u64(1);
        let local = hush_proto::LocalDevice::generate(3, 1, 0, &mut rng).unwrap();
        let mut store = MemoryStore::default();
        store.create_account("me@x", &local).unwrap();
        (Engine::new("me@x", local), store)
    }

    #[test]
    fn a_catch_up_resumes_after_the_last_committed_page() {
        let (engine, mut store) = engine();
        let mut cursor = engine.archive_cursor(&store, 100).unwrap();
        assert_eq!((cursor.after(), cursor.since()), (None, 100));
        cursor.page(false, Some("a")).unwrap();
        cursor.page(true, Some("b")).unwrap();
        assert_eq!(cursor.after(), Some("b"));
        store.set_archive_resume("me@x", "b").unwrap();
        let cursor = engine.archive_cursor(&store, 100).unwrap();
        assert_eq!(cursor.after(), Some("b"));
    }

    #[test]
    fn a_room_archive_is_read_from_the_join_then_from_the_last_page() {
        let (engine, mut store) = engine();
        assert_eq!(
            engine.room_archive_cursor(&store, "team@muc.x").unwrap(),
            None
        );
        store
            .save_room(&hush_store::Room {
                jid: "team@muc.x".into(),
                nick: "me".into(),
                config: hush_store::RoomConfig::default(),
                members: Vec::new(),
                members_known: false,
                joined_at: 1_700_000_000,
                members_told: None,
            })
            .unwrap();
        let cursor = engine
            .room_archive_cursor(&store, "team@muc.x")
            .unwrap()
            .unwrap();
        assert_eq!((cursor.after(), cursor.since()), (None, 1_700_000_000));
        store.set_archive_resume("team@muc.x", "r9").unwrap();
        let cursor = engine
            .room_archive_cursor(&store, "team@muc.x")
            .unwrap()
            .unwrap();
        assert_eq!(cursor.after(), Some("r9"));
        // Our own archive's place is another one.
        assert_eq!(engine.archive_cursor(&store, 5).unwrap().after(), None);
    }

    #[test]
    fn a_message_read_live_is_not_where_a_catch_up_starts() {
        let (engine, mut store) = engine();
        let session = {
            let mut rng = rand::rngs::StdRng::seed_from_u64(2);
            let other = hush_proto::LocalDevice::generate(4, 1, 0, &mut rng).unwrap();
            hush_proto::Session::initiate(
                other.identity(),
                &engine.device().bundle(hush_proto::Suite::Omemo2),
                &mut rng,
            )
            .unwrap()
        };
        // A live message carries our archive's stanza id.
        store
            .commit_received(vec![hush_store::Received {
                ids: hush_store::MessageIds {
                    stanza_id: Some("live-7".into()),
                    archive: Some("me@x".into()),
                    ..Default::default()
                },
                peer: "you@y".into(),
                sender: "you@y".into(),
                sender_device: 4,
                suite: hush_proto::Suite::Omemo2,
                at: 150,
                outcome: hush_store::Outcome::Decrypted {
                    session: Box::new(session),
                    body: Some(b"hi".to_vec()),
                    consumed_prekey: None,
                },
            }])
            .unwrap();
        assert_eq!(
            store.last_archive_id("me@x").unwrap().as_deref(),
            Some("live-7")
        );
        let cursor = engine.archive_cursor(&store, 100).unwrap();
        assert_eq!((cursor.after(), cursor.since()), (None, 100));
    }

    #[test]
    fn a_page_that_goes_nowhere_is_refused_and_a_lost_place_restarts_once() {
        let (engine, mut store) = engine();
        store.set_archive_resume("me@x", "x").unwrap();
        let mut cursor = engine.archive_cursor(&store, 100).unwrap();
        assert!(matches!(
            cursor.page(false, Some("x")),
            Err(EngineError::ArchiveMisbehaves(_))
        ));
        // An empty complete page is fine.
        cursor.page(true, None).unwrap();
        assert!(cursor.lost_place());
        assert_eq!(cursor.after(), None);
        assert!(
            !cursor.lost_place(),
            "from `since` there is nothing to lose"
        );
    }
}

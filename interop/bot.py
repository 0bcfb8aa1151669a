"""An independent OMEMO client on a real XMPP server: slixmpp + slixmpp-omemo + python-omemo.

The Rust tests `crates/hush-cli/tests/interop_bot.rs` (one to one) and `interop_room.rs` (in a
room) run it next to the `hush` binary against a private Prosody; it talks JSON lines.

  bot.py --jid J --password PW --server HOST:PORT --ns omemo2|legacy --store FILE.json

The bot loads python-omemo with ONE backend (twomemo or oldmemo), so it publishes its device list
and bundle only in that namespace, and anyone writing to it has to use that namespace. Publishing
(node options, precondition handling) is slixmpp-omemo's own code; encryption and decryption are
python-omemo's SessionManager. slixmpp-omemo 2.2.0 cannot do OMEMO:2 messages (no SCE), so for
those the bot builds and checks the XEP-0420 envelope itself and (de)serialises with twomemo.etree;
legacy messages go through the plugin's encrypt_message/decrypt_message.

Rooms (XEP-0045, slixmpp's xep_0045 plugin) are legacy only, as slixmpp-omemo encrypts them: a room
message is encrypted with the plugin's encrypt_message for the room's members, as deployed clients
such as Conversations do, so that a member who is away reads it later from the room's archive: the
JIDs on its owner, admin and member lists (read from the room before each message; a members-only,
non-anonymous room shows them to its members), together with the real JIDs of the occupants present
(as their presence in the non-anonymous room gives them). When the lists cannot be read, it is the
occupants alone, and stderr says so. A room message is decrypted with the plugin's decrypt_message,
which finds the sender's real JID among the occupants present when the message is handled. A room
message for members of both namespaces carries an <encrypted/> of each; the plugin would take the
OMEMO:2 one whenever there is one, so it is handed the stanza with only ours. Our own room
messages come back from the room: the plugin answers those from its cache of what it sent ("echo"
below).

A room is entered asking for no history (<history maxstanzas='0'/>): what was said while the bot was
away is read from the room's archive (XEP-0313 §6, slixmpp's xep_0313 plugin), on request, with
{"catch_up": ...} after {"join": ...}, from the archive id of the last message it read (the "id"
of its "received"/"echo" lines; the room stamps each message with it, XEP-0359). An archived
message names its sender by nickname only; a non-anonymous room keeps the real JID in
<x xmlns='http://jabber.org/protocol/muc#user'><item jid=.../></x>, which the room adds when it
archives the message and gives back to members. The plugin's decrypt_message would look the
sender up among the occupants present now, who may have left since; so the legacy <encrypted/>
is parsed (oldmemo.etree) and decrypted (python-omemo's SessionManager) as the plugin does, with
that real JID as the sender. Our own archived messages are not decrypted (they hold no key for us)
but checked to come from our device and reported as "echo".

Only plaintext connections to a loopback address are made (the test server has no TLS).

stdout, one JSON object per line:
  {"ready": true, "device": ID, "ns": NS, "fingerprint": FP, "identity_key": HEX}
                                              (HEX: the identity key as python-omemo holds it,
                                              its Ed25519 form)
                                              logged in; device list and bundle published and
                                              fetched back from the server
  {"sent": true, "to": JID, "ns": NS, "devices": [ID, ...]}   the devices it was encrypted for
  {"received": true, "from": BARE, "device": SID, "ns": NS, "body": TEXT, "fingerprint": FP}
  {"empty": true, "from": BARE, "device": SID, "ns": NS, "fingerprint": FP}
                                              key-exchange completion / heartbeat
  {"joined": true, "room": ROOM, "nick": NICK, "occupants": {NICK: BARE or null, ...}}
                                              entered ROOM (after its self-presence and subject);
                                              the occupants then present, ourselves included,
                                              with the real JIDs the room gave
  {"sent": true, "room": ROOM, "to": [BARE, ...], "present": [BARE, ...], "member_lists": BOOL,
   "ns": "legacy", "devices": [ID, ...]}
                                              a room message, encrypted for the accounts in "to"
                                              (members and occupants, ourselves left out); of
                                              those, "present" were in the room; "member_lists"
                                              false when the affiliation lists could not be read
                                              (then "to" is the occupants alone)
  {"left": true, "room": ROOM, "nick": NICK}  NICK is not (or no longer) in ROOM
  {"received": true, "room": ROOM, "nick": NICK, "from": BARE, "device": SID, "ns": NS,
   "body": TEXT, "fingerprint": FP}            a room message; BARE is the sender's real JID
  {"empty": true, "room": ROOM, "nick": NICK, "from": BARE, "device": SID, "ns": NS,
   "fingerprint": FP}                         an empty OMEMO message through a room
  {"echo": true, "room": ROOM, "nick": NICK, "ns": NS, "body": TEXT}
                                              the room sent our own message back
  Room messages ("received", "empty", "echo") also carry "id": the room's archive id of the
  message (its <stanza-id by=ROOM/>), or null when the room gave none.
  {"left_room": true, "room": ROOM, "nick": NICK}
                                              we left ROOM: the room confirmed it (our own
                                              unavailable presence, status 110)
  {"received": true, "room": ROOM, "nick": NICK, "from": BARE, "device": SID, "ns": "legacy",
   "body": TEXT, "fingerprint": FP, "archived": true, "id": ARCHIVE_ID, "stamp": STAMP}
  {"empty": true, ..., "archived": true, "id": ARCHIVE_ID, "stamp": STAMP}
  {"echo": true, "room": ROOM, "nick": NICK, "from": OUR_BARE, "ns": "legacy", "body": null,
   "device": SID, "archived": true, "id": ARCHIVE_ID, "stamp": STAMP}
  {"skipped": true, "room": ROOM, "nick": NICK, "archived": true, "id": ARCHIVE_ID, "why": TEXT}
                                              one line per archived message of {"catch_up": ...},
                                              in the archive's order: BARE is the real JID the
                                              archive gives, STAMP its <delay/> stamp; "skipped"
                                              for one without OMEMO (the live path never sees
                                              those); a message that cannot be read is an error
                                              line, and the catch-up goes on
  {"caught_up": true, "room": ROOM, "count": K, "skipped": S, "failed": F, "last": ARCHIVE_ID}
                                              the end of the archive: K messages reported as
                                              received/empty/echo, S skipped, F error lines;
                                              "last" the archive id of the last message (or the
                                              "after" given, when there was none)
  A "received" line whose body is an aesgcm:// link also carries the file, fetched over HTTPS
  (trusting the system's CAs or SSL_CERT_FILE) and decrypted with the xep_0454 plugin:
  "file": {"size": N, "sha256": HEX}, or "file_error": TEXT when it could not be.
  {"error": "..."}                            anything that failed (never silently dropped)
  {"bye": true}                               after {"quit": true}, just before exiting 0
stdin, one JSON object per line:
  {"send": {"to": JID, "body": TEXT}}
  {"join": {"room": ROOM, "nick": NICK}}
  {"send": {"room": ROOM, "body": TEXT}}      (only with --ns legacy, in a room joined before)
  {"await_leave": {"room": ROOM, "nick": NICK}}
                                              answers "left" once the room said NICK went away
                                              (at once if NICK is not there); an error after
                                              LEAVE_TIMEOUT seconds
  {"leave": {"room": ROOM}}                   leaves ROOM; answers "left_room" once the room
                                              confirmed (an error after LEAVE_TIMEOUT seconds)
  {"catch_up": {"room": ROOM, "after": ARCHIVE_ID or null}}
                                              reads ROOM's archive after ARCHIVE_ID (null: from
                                              its start; each message can be decrypted once only)
                                              and answers as above, then "caught_up"; only with
                                              --ns legacy; the bot must be a member, not present
  {"send_file": {"to": JID or "room": ROOM, "path": PATH, "service": UPLOAD_JID}}
                                              encrypts the file at PATH as XEP-0454 says (slixmpp's
                                              xep_0454 plugin: AES-256-GCM, 12-byte IV, tag appended),
                                              asks UPLOAD_JID for a slot (XEP-0363), PUTs the
                                              ciphertext over HTTPS, and sends the aesgcm:// link as
                                              the body of an OMEMO message, as "send" does; answers
                                              "sent" (as for "send"), then
                                              {"sent_file": true, "link": LINK, "size": N,
                                               "sha256": HEX}
  {"quit": true}                              (end of input means the same)
NS is "omemo2" or "legacy"; FP is a fingerprint as python-omemo shows it (Curve25519 form, eight
groups of eight hex digits; of our identity, or of the sender's). Diagnostics go to stderr.
"""
from __future__ import annotations

import argparse
import asyncio
import hashlib
import io
import ipaddress
import json
import logging
import os
import secrets
import ssl
import sys
import time
import urllib.request
from copy import copy
import xml.etree.ElementTree as ET
from typing import Any, Dict, FrozenSet, Optional, Set

import omemo
from omemo.storage import Just, Maybe, Nothing, Storage
from omemo.types import DeviceInformation

import oldmemo
import twomemo
import twomemo.etree

from slixmpp import ClientXMPP
from slixmpp.jid import JID  # pylint: disable=no-name-in-module
from slixmpp.exceptions import IqError, IqTimeout, PresenceError
from slixmpp.plugins.base import register_plugin
from slixmpp.stanza import Message
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchMany, MatchXPath

from slixmpp.plugins.xep_0454 import XEP_0454

from slixmpp_omemo import XEP_0384, TrustLevel
# The plugin builds its SessionManager (PEP publishing and fetching via XEP-0060) with this helper;
# it always loads both backends, so the bot calls it itself with just one. Pinned: 2.2.0.
from slixmpp_omemo.xep_0384 import _make_session_manager

SCE = "urn:xmpp:sce:1"
NAMESPACES = {"omemo2": twomemo.twomemo.NAMESPACE, "legacy": oldmemo.oldmemo.NAMESPACE}
SHORT = {v: k for k, v in NAMESPACES.items()}
# How long a room gets to let us in (seconds).
JOIN_TIMEOUT = 60
# How long {"await_leave": ...} waits for an occupant to go (seconds).
LEAVE_TIMEOUT = 60
# The affiliations whose lists make a room's members (XEP-0045 §9.5, §10.5, §10.8).
MEMBER_AFFILIATIONS = ("owner", "admin", "member")
# Archive queries (XEP-0313): messages asked for per page, and how long the room gets to answer
# one page (seconds).
MAM_PAGE = 20
MAM_TIMEOUT = 60
MAM = "urn:xmpp:mam:2"
FORWARD = "urn:xmpp:forward:0"
DELAY = "urn:xmpp:delay"
STANZA_ID = "urn:xmpp:sid:0"
MUC_USER = "http://jabber.org/protocol/muc#user"
HTTP_UPLOAD = "urn:xmpp:http:upload:0"
# How long one HTTPS request may take (seconds).
HTTP_TIMEOUT = 120

log = logging.getLogger("bot")


def fingerprint(identity_key: bytes) -> str:
    """python-omemo's fingerprint: Curve25519 form, eight groups of eight hex digits."""
    return " ".join(omemo.SessionManager.format_identity_key(identity_key))


def emit(obj: Dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def http_put(url: str, headers: Dict[str, str], data: bytes) -> None:
    """PUTs `data` to `url` over HTTPS (urllib, the system's CAs or SSL_CERT_FILE)."""
    if not url.startswith("https://"):
        raise ValueError(f"refusing a slot that is not https: {url}")
    request = urllib.request.Request(url, data=data, method="PUT", headers={
        **headers, "Content-Type": "application/octet-stream", "Content-Length": str(len(data)),
    })
    with urllib.request.urlopen(request, context=ssl.create_default_context(), timeout=HTTP_TIMEOUT) as r:
        if r.status not in (200, 201):
            raise RuntimeError(f"PUT {url}: HTTP {r.status}")


def http_get(url: str) -> bytes:
    with urllib.request.urlopen(url, context=ssl.create_default_context(), timeout=HTTP_TIMEOUT) as r:
        return r.read()


def fetch_aesgcm(link: str) -> Dict[str, Any]:
    """Downloads and decrypts an aesgcm:// link with the xep_0454 plugin: its size and SHA-256."""
    location, fragment = link[len("aesgcm://"):].rsplit("#", 1)
    encrypted = http_get("https://" + location)
    plain = XEP_0454.decrypt(io.BytesIO(encrypted), fragment)
    return {"size": len(plain), "sha256": hashlib.sha256(plain).hexdigest()}


def archive_id(message: ET.Element, room: str) -> Optional[str]:
    """The archive id `room` gave `message` (XEP-0359 <stanza-id/>, by the room), if any."""
    ids = [
        el.get("id") for el in message.findall(f"{{{STANZA_ID}}}stanza-id")
        if JID(el.get("by", "")).bare == room
    ]
    if len(ids) > 1:
        raise ValueError(f"{room} gave a message {len(ids)} archive ids: {ids}")
    return ids[0] if ids else None


class JsonFileStorage(Storage):
    """python-omemo storage in one JSON file, rewritten atomically on every change."""

    def __init__(self, path: str) -> None:
        super().__init__()
        self.path = path
        self.data: Dict[str, Any] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                self.data = json.load(f)

    def _flush(self) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    async def _load(self, key: str) -> Maybe[Any]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: Any) -> None:
        self.data[key] = value
        self._flush()

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)
        self._flush()


# --- XEP-0420 envelopes (the OMEMO:2 plaintext), written independently of Hush -----------------

def seal_envelope(body: str, sender: str, recipient: str) -> bytes:
    env = ET.Element(f"{{{SCE}}}envelope")
    content = ET.SubElement(env, f"{{{SCE}}}content")
    ET.SubElement(content, "{jabber:client}body").text = body
    # Random-length padding, as XEP-0420 recommends (0..39 URL-safe characters).
    ET.SubElement(env, f"{{{SCE}}}rpad").text = secrets.token_urlsafe(40)[: secrets.randbelow(40)]
    ET.SubElement(env, f"{{{SCE}}}from", jid=sender)
    ET.SubElement(env, f"{{{SCE}}}to", jid=recipient)
    ET.SubElement(env, f"{{{SCE}}}time", stamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    return ET.tostring(env, encoding="utf-8", xml_declaration=False)


def open_envelope(raw: bytes, sender: str, recipient: str) -> str:
    """The body of an OMEMO:2 envelope, after the checks XEP-0384 asks for."""
    env = ET.fromstring(raw)
    if env.tag != f"{{{SCE}}}envelope":
        raise ValueError(f"not an SCE envelope: {env.tag}")
    if env.find(f"{{{SCE}}}rpad") is None:
        raise ValueError("SCE envelope without <rpad/>")
    frm = env.find(f"{{{SCE}}}from")
    if frm is not None and JID(frm.get("jid", "")).bare != sender:
        raise ValueError(f"SCE <from/> names {frm.get('jid')!r}, but the stanza came from {sender}")
    to = env.find(f"{{{SCE}}}to")
    if to is not None and JID(to.get("jid", "")).bare != recipient:
        raise ValueError(f"SCE <to/> names {to.get('jid')!r}, but the stanza went to {recipient}")
    content = env.find(f"{{{SCE}}}content")
    if content is None:
        raise ValueError("SCE envelope without <content/>")
    body = content.find("{jabber:client}body")
    if body is None:
        raise ValueError("SCE content without <body/>")
    return body.text or ""


# --- slixmpp-omemo, restricted to one namespace -----------------------------------------------

class OneNamespaceOmemo(XEP_0384):  # pylint: disable=invalid-name
    """slixmpp-omemo's plugin with a SessionManager that loads a single backend."""

    name = "xep_0384"
    description = "OMEMO Encryption (one namespace, for the interop bot)"
    dependencies = XEP_0384.dependencies
    default_config = XEP_0384.default_config

    def plugin_init(self) -> None:
        super().plugin_init()
        self._sm_task: Optional[asyncio.Future] = None

    @property
    def storage(self) -> Storage:
        return self.xmpp.omemo_storage

    @property
    def _btbv_enabled(self) -> bool:
        return True

    async def _devices_blindly_trusted(
        self, blindly_trusted: FrozenSet[DeviceInformation], identifier: Optional[str]
    ) -> None:
        for d in blindly_trusted:
            log.info("blindly trusting %s device %d", d.bare_jid, d.device_id)

    async def _prompt_manual_trust(
        self, manually_trusted: FrozenSet[DeviceInformation], identifier: Optional[str]
    ) -> None:
        # Trust everything: this is a test peer.
        sm = await self.get_session_manager()
        for d in manually_trusted:
            await sm.set_trust(d.bare_jid, d.identity_key, TrustLevel.TRUSTED.value)

    async def _prepare(self) -> omemo.SessionManager:
        ns = self.xmpp.omemo_ns
        storage = self.storage
        backend = (
            twomemo.Twomemo(storage) if ns == twomemo.twomemo.NAMESPACE else oldmemo.Oldmemo(storage)
        )
        manager = _make_session_manager(self.xmpp, self)
        if self.xmpp.unlisted:

            class Unlisted(manager):  # type: ignore[valid-type,misc]
                """Publishes no device list, as Profanity 0.13 does on a new account."""

                @staticmethod
                async def _upload_device_list(namespace: str, device_list: Any) -> None:
                    log.info("not publishing the device list (--unlisted)")

            manager = Unlisted
        sm = await manager.create(
            [backend],
            storage,
            self.xmpp.boundjid.bare,
            initial_own_label=None,
            undecided_trust_level_name=TrustLevel.UNDECIDED.value,
        )
        await sm.ensure_data_consistency()
        await sm.after_history_sync()
        return sm

    async def get_session_manager(self) -> omemo.SessionManager:
        if self._sm_task is None:
            self._sm_task = asyncio.ensure_future(self._prepare())
        return await self._sm_task

    async def refresh_device_lists(self, jids: Set[JID], force_download: bool = False) -> None:
        # No presence subscription between the test accounts, so no PEP pushes: always fetch.
        sm = await self.get_session_manager()
        for jid in jids:
            if JID(jid).bare != self.xmpp.boundjid.bare:
                await sm.refresh_device_list(self.xmpp.omemo_ns, JID(jid).bare)

    async def _on_device_list_update(self, msg: Message) -> None:
        # The stock handler would hand the other namespace's lists to a backend we did not load.
        items = msg["pubsub_event"]["items"]
        tag = "devices" if self.xmpp.omemo_ns == twomemo.twomemo.NAMESPACE else "list"
        if len(items) == 1 and items["item"].xml.find(f"{{{self.xmpp.omemo_ns}}}{tag}") is not None:
            async with self.xmpp.omemo_lock:
                await super()._on_device_list_update(msg)


register_plugin(OneNamespaceOmemo)


class Bot(ClientXMPP):
    def __init__(self, jid: str, password: str, ns: str, storage: Storage, unlisted: bool = False) -> None:
        super().__init__(
            jid,
            password,
            # The only server we talk to is a loopback one without TLS (checked in main()).
            plugin_config={"feature_mechanisms": {"unencrypted_plain": True, "unencrypted_scram": True}},
        )
        self.enable_direct_tls = False
        self.enable_starttls = False
        self.enable_plaintext = True
        self.omemo_ns = ns
        self.omemo_storage = storage
        self.unlisted = unlisted
        self.omemo_lock = asyncio.Lock()
        self.quitting = False
        self.tasks: list = []
        # Rooms joined: room JID -> our nickname there (as the room confirmed it).
        self.rooms: Dict[str, str] = {}
        self.work: asyncio.Queue = asyncio.Queue()
        self.done: asyncio.Future = asyncio.get_running_loop().create_future()

        for plugin in ("xep_0030", "xep_0045", "xep_0060", "xep_0163", "xep_0313", "xep_0334", "xep_0384"):
            self.register_plugin(plugin)

        self.add_event_handler("session_start", self.on_session_start)
        self.add_event_handler("failed_auth", lambda _: self.fail("authentication failed"))
        self.add_event_handler("connection_failed", lambda e: self.fail(f"connection failed: {e}"))
        self.add_event_handler("disconnected", self.on_disconnected)
        self.add_event_handler("message_error", self.on_message_error)
        # One handler for both namespaces: a stanza carrying both (a room message for members
        # with different namespaces) is handled once.
        self.register_handler(Callback(
            "OMEMO",
            MatchMany([
                MatchXPath(f"{{{self.default_ns}}}message/{{{omemo_ns}}}encrypted")
                for omemo_ns in NAMESPACES.values()
            ]),
            lambda stanza: self.work.put_nowait(("stanza", stanza)),
        ))

    @property
    def omemo(self) -> OneNamespaceOmemo:
        return self.plugin["xep_0384"]

    @property
    def muc(self) -> Any:
        return self.plugin["xep_0045"]

    @property
    def mam(self) -> Any:
        return self.plugin["xep_0313"]

    def fail(self, why: str) -> None:
        emit({"error": why})
        if not self.done.done():
            self.done.set_result(1)

    def on_disconnected(self, _event: Any) -> None:
        if not self.quitting and not self.done.done():
            emit({"error": "disconnected from the server"})
            self.done.set_result(1)

    def on_message_error(self, msg: Message) -> None:
        emit({"error": f"message error from {msg['from']}: {msg['error']['condition']} {msg['error']['text']}"})

    async def on_session_start(self, _event: Any) -> None:
        try:
            self.send_presence()
            sm = await self.omemo.get_session_manager()
            own, _ = await sm.get_own_device_information()
            # Ready means others can find us: read device list and bundle back from the server.
            published = await sm._download_device_list(self.omemo_ns, own.bare_jid)
            if self.unlisted and own.device_id in published:
                raise RuntimeError(f"device {own.device_id} is listed though --unlisted: {published}")
            if not self.unlisted and own.device_id not in published:
                raise RuntimeError(f"device {own.device_id} missing from our published list {published}")
            await sm._download_bundle(self.omemo_ns, own.bare_jid, own.device_id)
            other = next(ns for ns in NAMESPACES.values() if ns != self.omemo_ns)
            if own.device_id in await sm._download_device_list(other, own.bare_jid):
                raise RuntimeError(f"device {own.device_id} is also announced in {other}")
        except Exception as e:  # pylint: disable=broad-exception-caught
            log.exception("setup failed")
            self.fail(f"OMEMO setup failed: {type(e).__name__}: {e}")
            return
        emit({
            "ready": True,
            "device": own.device_id,
            "ns": SHORT[self.omemo_ns],
            "fingerprint": fingerprint(own.identity_key),
            "identity_key": own.identity_key.hex(),
        })
        # The loop keeps only weak references to tasks: hold them.
        self.tasks = [asyncio.ensure_future(self.read_commands()), asyncio.ensure_future(self.worker())]

    async def read_commands(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                self.work.put_nowait(("cmd", {"quit": True}))
                return
            if not line.strip():
                continue
            try:
                cmd = json.loads(line)
            except ValueError as e:
                emit({"error": f"bad command {line!r}: {e}"})
                continue
            self.work.put_nowait(("cmd", cmd))
            if cmd.get("quit"):
                return

    async def worker(self) -> None:
        """Handles commands and incoming messages one at a time, in arrival order (python-omemo's
        session state must not be touched by two coroutines at once)."""
        while True:
            kind, item = await self.work.get()
            if kind == "cmd" and item.get("quit"):
                await self.quit()
                return
            async with self.omemo_lock:
                try:
                    if kind == "cmd":
                        await self.command(item)
                    else:
                        await self.incoming(item)
                except Exception as e:  # pylint: disable=broad-exception-caught
                    log.exception("failed on %s", kind)
                    emit({"error": f"{type(e).__name__}: {e}"})

    async def command(self, cmd: Dict[str, Any]) -> None:
        if "join" in cmd:
            await self.join(JID(cmd["join"]["room"]).bare, cmd["join"]["nick"])
            return
        if "await_leave" in cmd:
            await self.await_leave(JID(cmd["await_leave"]["room"]).bare, cmd["await_leave"]["nick"])
            return
        if "leave" in cmd:
            await self.leave(JID(cmd["leave"]["room"]).bare)
            return
        if "catch_up" in cmd:
            after = cmd["catch_up"]["after"]
            if after is not None and not isinstance(after, str):
                raise ValueError(f"catch_up: after must be an archive id or null, not {after!r}")
            await self.catch_up(JID(cmd["catch_up"]["room"]).bare, after)
            return
        if "send_file" in cmd:
            await self.send_file(cmd["send_file"])
            return
        if "send" not in cmd:
            raise ValueError(f"unknown command {cmd}")
        if "room" in cmd["send"]:
            await self.send_to_room(JID(cmd["send"]["room"]).bare, cmd["send"]["body"])
            return
        await self.send_body(JID(cmd["send"]["to"]).bare, cmd["send"]["body"])

    async def send_file(self, what: Dict[str, Any]) -> None:
        path = what["path"]
        with open(path, "rb") as f:
            data = f.read()
        payload, fragment = XEP_0454.encrypt(input_file=io.BytesIO(data))
        put, headers, get = await self.request_slot(JID(what["service"]), len(payload))
        await asyncio.to_thread(http_put, put, headers, payload)
        link = XEP_0454.format_url(get, fragment)
        if "room" in what:
            await self.send_to_room(JID(what["room"]).bare, link)
        else:
            await self.send_body(JID(what["to"]).bare, link)
        emit({"sent_file": True, "link": link, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()})

    async def request_slot(self, service: JID, size: int) -> tuple[str, Dict[str, str], str]:
        """A XEP-0363 slot for `size` bytes, under a name that says nothing of the file."""
        iq = self.make_iq_get(ito=service)
        iq.xml.append(ET.Element(f"{{{HTTP_UPLOAD}}}request", {
            "filename": secrets.token_hex(8) + ".bin", "size": str(size),
            "content-type": "application/octet-stream",
        }))
        answer = await iq.send(timeout=30)
        slot = answer.xml.find(f"{{{HTTP_UPLOAD}}}slot")
        if slot is None:
            raise ValueError(f"{service} answered the slot request without a slot")
        put = slot.find(f"{{{HTTP_UPLOAD}}}put")
        get = slot.find(f"{{{HTTP_UPLOAD}}}get")
        if put is None or get is None:
            raise ValueError(f"{service} answered a slot without put or get")
        headers = {h.get("name"): (h.text or "") for h in put.findall(f"{{{HTTP_UPLOAD}}}header")}
        return put.get("url"), headers, get.get("url")

    async def send_body(self, to: str, body: str) -> None:
        sm = await self.omemo.get_session_manager()
        if self.omemo_ns == twomemo.twomemo.NAMESPACE:
            await self.omemo.refresh_device_lists({JID(to)})
            envelope = seal_envelope(body, self.boundjid.bare, to)
            messages, errors = await sm.encrypt(
                frozenset({to}), {self.omemo_ns: envelope}, backend_priority_order=[self.omemo_ns]
            )
            if errors:
                raise RuntimeError(f"encryption errors: {errors}")
            (message,) = messages.keys()
            stanza = self.make_message(mto=JID(to), mtype="chat", mbody="This message is OMEMO encrypted.")
            stanza.append(twomemo.etree.serialize_message(message))
            stanza.enable("store")
        else:
            plain = self.make_message(mto=JID(to), mtype="chat", mbody=body)
            stanza, errors = await self.omemo.encrypt_message(plain, JID(to))
            if errors:
                raise RuntimeError(f"encryption errors: {errors}")
            if stanza is None:
                raise RuntimeError("the plugin produced nothing to send")
        encrypted = stanza.xml.find(f"{{{self.omemo_ns}}}encrypted")
        devices = sorted(int(k.get("rid")) for k in encrypted.iter(f"{{{self.omemo_ns}}}key"))
        stanza.send()
        emit({"sent": True, "to": to, "ns": SHORT[self.omemo_ns], "devices": devices})

    def occupants(self, room: str) -> Dict[str, Optional[str]]:
        """The occupants of `room` now, by nickname, with the real bare JIDs their presence gave."""
        found = {}
        for nick in self.muc.get_roster(JID(room)):
            real = self.muc.get_jid_property(JID(room), nick, "jid")
            found[nick] = JID(real).bare if real else None
        return found

    async def join(self, room: str, nick: str) -> None:
        # The plugin's join: presence out, then the occupants' presences, our own (status 110)
        # and the subject back. A refusal comes back as a presence error. No history: it would
        # come as live messages, read already or to be read from the archive ({"catch_up"}).
        try:
            pres, _subject, _occupants, _history = await self.muc.join_muc_wait(
                JID(room), nick, maxstanzas=0, timeout=JOIN_TIMEOUT
            )
        except asyncio.TimeoutError as e:
            raise RuntimeError(f"no answer from {room} within {JOIN_TIMEOUT} s") from e
        except PresenceError as e:
            raise RuntimeError(
                f"{room} refused us: {e.presence['error']['condition']} {e.presence['error']['text']}"
            ) from e
        self.rooms[room] = pres["from"].resource
        emit({"joined": True, "room": room, "nick": self.rooms[room], "occupants": self.occupants(room)})

    async def await_leave(self, room: str, nick: str) -> None:
        if room not in self.rooms:
            raise ValueError(f"{room} is not joined")
        gone: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_offline(pres: Any) -> None:
            # The plugin fires this after taking the nickname out of its roster.
            if pres["from"].resource == nick and not gone.done():
                gone.set_result(None)

        event = f"muc::{room}::got_offline"
        self.add_event_handler(event, on_offline)
        try:
            if nick in self.occupants(room):
                await asyncio.wait_for(gone, LEAVE_TIMEOUT)
        except asyncio.TimeoutError as e:
            raise RuntimeError(f"{nick} is still in {room} after {LEAVE_TIMEOUT} s") from e
        finally:
            self.del_event_handler(event, on_offline)
        emit({"left": True, "room": room, "nick": nick})

    async def leave(self, room: str) -> None:
        if room not in self.rooms:
            raise ValueError(f"{room} is not joined")
        nick = self.rooms[room]
        gone: asyncio.Future = asyncio.get_running_loop().create_future()

        def on_presence(pres: Any) -> None:
            # The plugin forgets the room as the presence goes out (leave_muc), so it fires no
            # room event for the answer: this handler sees every room presence.
            if (
                pres["from"].bare == room
                and pres["from"].resource == nick
                and pres["type"] == "unavailable"
                and 110 in pres["muc"]["status_codes"]
                and not gone.done()
            ):
                gone.set_result(None)

        self.add_event_handler("groupchat_presence", on_presence)
        try:
            self.muc.leave_muc(JID(room), nick)
            del self.rooms[room]
            await asyncio.wait_for(gone, LEAVE_TIMEOUT)
        except asyncio.TimeoutError as e:
            raise RuntimeError(f"{room} did not confirm within {LEAVE_TIMEOUT} s that we left") from e
        finally:
            self.del_event_handler("groupchat_presence", on_presence)
        emit({"left_room": True, "room": room, "nick": nick})

    async def catch_up(self, room: str, after: Optional[str]) -> None:
        """Reads `room`'s archive after the archive id `after` (from its start if None), a page at a
        time, and reports each message as the docstring says."""
        if self.omemo_ns != oldmemo.oldmemo.NAMESPACE:
            raise ValueError("room messages are legacy only (slixmpp-omemo has no SCE): start with --ns legacy")
        counts = {"count": 0, "skipped": 0, "failed": 0}
        last = after
        while True:
            rsm: Dict[str, Any] = {"max": MAM_PAGE}
            if last is not None:
                rsm["after"] = last
            # Not the plugin's iterate: its pager ends quietly on an error from the server.
            try:
                iq = await self.mam.retrieve(jid=JID(room), rsm=rsm, timeout=MAM_TIMEOUT)
            except IqError as e:
                raise RuntimeError(f"{room} refused the archive query (after {last!r}): {e.format()}") from e
            except IqTimeout as e:
                raise RuntimeError(f"{room} did not answer the archive query within {MAM_TIMEOUT} s") from e
            fin = iq.xml.find(f"{{{MAM}}}fin")
            if fin is None:
                raise RuntimeError(f"{room} answered the archive query without <fin/>: {iq}")
            results = iq["mam"]["results"]
            for result in results:
                id_ = result["mam_result"]["id"]
                try:
                    counts[await self.archived(room, result.xml, id_)] += 1
                except Exception as e:  # pylint: disable=broad-exception-caught
                    log.exception("archived message %s of %s", id_, room)
                    emit({"error": f"archived message {id_} of {room}: {type(e).__name__}: {e}"})
                    counts["failed"] += 1
                last = id_
            if fin.get("complete") in ("true", "1"):
                break
            if not results:
                raise RuntimeError(f"{room} sent an empty page after {last!r} but says the archive goes on")
        emit({"caught_up": True, "room": room, **counts, "last": last})

    async def archived(self, room: str, result: ET.Element, id_: str) -> str:
        """Reports one archived message of `room` (a MAM <result/> with id `id_`); says which
        count it goes to."""
        forwarded = result.find(f"{{{MAM}}}result/{{{FORWARD}}}forwarded")
        if forwarded is None:
            raise ValueError("a result without <forwarded/>")
        messages = forwarded.findall("{jabber:client}message")
        if len(messages) != 1:
            raise ValueError(f"{len(messages)} messages forwarded in one result")
        message = messages[0]
        delay = forwarded.find(f"{{{DELAY}}}delay")
        sender = JID(message.get("from", ""))
        if sender.bare != room or not sender.resource:
            raise ValueError(f"archived message from {sender}, not an occupant of {room}")
        nick = sender.resource
        where = {"room": room, "nick": nick, "archived": True, "id": id_}
        where["stamp"] = None if delay is None else delay.get("stamp")
        el = message.find(f"{{{self.omemo_ns}}}encrypted")
        if el is None:
            other = [SHORT[ns] for ns in NAMESPACES.values() if message.find(f"{{{ns}}}encrypted") is not None]
            if other:
                raise ValueError(
                    f"{nick} sent a {other} message, but this bot announces only {SHORT[self.omemo_ns]}"
                )
            emit({"skipped": True, **where, "why": "not OMEMO-encrypted"})
            return "skipped"
        if message.get("type") != "groupchat":
            raise ValueError(f"an archived {message.get('type')!r} message, not groupchat")
        # The real JID, which the room added when it archived the message; one that the sender
        # put in itself would make two, and is refused.
        items = message.findall(f"{{{MUC_USER}}}x/{{{MUC_USER}}}item")
        reals = [item.get("jid") for item in items if item.get("jid")]
        if len(reals) != 1:
            raise ValueError(f"the archive gives {len(reals)} real JIDs for {nick}: {reals}")
        real = JID(reals[0]).bare
        sm = await self.omemo.get_session_manager()
        own, _ = await sm.get_own_device_information()
        header = el.find(f"{{{self.omemo_ns}}}header")
        if header is None or not (header.get("sid") or "").isdigit():
            raise ValueError(f"{nick} sent an <encrypted/> without a sender device")
        sid = int(header.get("sid"))
        if real == self.boundjid.bare:
            # Our own message: python-omemo does not encrypt for the sending device.
            if sid != own.device_id:
                raise ValueError(f"our own JID in {room}, but device {sid}")
            emit({"echo": True, **where, "from": real, "ns": SHORT[self.omemo_ns], "body": None, "device": sid})
            return "count"
        # What the plugin's decrypt_message does, with the sender the archive names.
        parsed = await oldmemo.etree.parse_message(el, real, self.boundjid.bare, sm)
        plaintext, device, _ = await sm.decrypt(parsed)
        if device.bare_jid != real or device.device_id != sid:
            raise ValueError(
                f"decrypted as device {device.device_id} of {device.bare_jid}, not {sid} of {real}"
            )
        await self.report_decrypted(where, real, device, None if plaintext is None else plaintext.decode("utf-8"))
        return "count"

    async def members(self, room: str) -> Optional[Set[str]]:
        """The bare JIDs on the room's owner, admin and member lists; None when the room does
        not show them to us (the caller then has the occupants only)."""
        found: Set[str] = set()
        for affiliation in MEMBER_AFFILIATIONS:
            try:
                listed = await self.muc.get_affiliation_list(JID(room), affiliation)
            except IqError as e:
                log.warning(
                    "%s does not give its %s list (%s): encrypting for the occupants present only",
                    room, affiliation, e.format(),
                )
                return None
            except IqTimeout:
                log.warning(
                    "%s did not answer for its %s list: encrypting for the occupants present only",
                    room, affiliation,
                )
                return None
            found.update(JID(jid).bare for jid in listed if jid)
        return found

    async def send_to_room(self, room: str, body: str) -> None:
        if self.omemo_ns != oldmemo.oldmemo.NAMESPACE:
            raise ValueError("room messages are legacy only (slixmpp-omemo has no SCE): start with --ns legacy")
        if room not in self.rooms:
            raise ValueError(f"{room} is not joined")
        occupants = self.occupants(room)
        hidden = sorted(nick for nick, real in occupants.items() if real is None)
        if hidden:
            raise ValueError(f"{room} does not give the real JIDs of {hidden}: nothing encrypted is sent there")
        me = self.boundjid.bare
        present = {real for real in occupants.values() if real and real != me}
        members = await self.members(room)
        recipients = sorted(present | {m for m in (members or set()) if m != me})
        if not recipients:
            raise ValueError(f"{room} has no member or occupant besides us")
        plain = self.make_message(mto=JID(room), mtype="groupchat", mbody=body)
        stanza, errors = await self.omemo.encrypt_message(plain, {JID(r) for r in recipients})
        if errors:
            raise RuntimeError(f"encryption errors: {errors}")
        if stanza is None:
            raise RuntimeError("the plugin produced nothing to send")
        encrypted = stanza.xml.find(f"{{{self.omemo_ns}}}encrypted")
        devices = sorted(int(k.get("rid")) for k in encrypted.iter(f"{{{self.omemo_ns}}}key"))
        stanza.send()
        emit({
            "sent": True,
            "room": room,
            "to": recipients,
            "present": sorted(present),
            "member_lists": members is not None,
            "ns": SHORT[self.omemo_ns],
            "devices": devices,
        })

    async def incoming_groupchat(self, stanza: Message, el: ET.Element) -> None:
        room, nick = stanza["from"].bare, stanza["from"].resource
        if room not in self.rooms:
            raise ValueError(f"a groupchat message from {stanza['from']}, a room we did not join")
        # A room message for members with different namespaces carries one <encrypted/> per
        # namespace. The plugin's decrypt_message takes the OMEMO:2 one whenever there is one,
        # backend loaded or not, key for us or not: it gets the stanza with only ours.
        ours = copy(stanza)
        for ns in NAMESPACES.values():
            if ns != self.omemo_ns:
                for other in ours.xml.findall(f"{{{ns}}}encrypted"):
                    ours.xml.remove(other)
        # The plugin finds the sender among the occupants present now (and ourselves in the
        # cache of what we sent, for our own messages coming back).
        decrypted, device = await self.omemo.decrypt_message(ours)
        has_payload = el.find(f"{{{self.omemo_ns}}}payload") is not None
        body = decrypted["body"] if has_payload else None
        id_ = archive_id(stanza.xml, room)
        if nick == self.rooms[room]:
            own, _ = await (await self.omemo.get_session_manager()).get_own_device_information()
            if device.device_id != own.device_id:
                raise ValueError(f"our nickname in {room}, but device {device.device_id} of {device.bare_jid}")
            emit({
                "echo": True, "room": room, "nick": nick, "ns": SHORT[self.omemo_ns], "body": body, "id": id_,
            })
            return
        real = self.occupants(room).get(nick)
        if real is None or device.bare_jid != real:
            raise ValueError(f"decrypted as {device.bare_jid}, but {nick} in {room} is {real}")
        await self.report_decrypted({"room": room, "nick": nick, "id": id_}, real, device, body)

    async def incoming(self, stanza: Message) -> None:
        sender = stanza["from"].bare
        els = {ns: stanza.xml.find(f"{{{ns}}}encrypted") for ns in NAMESPACES.values()}
        el = els[self.omemo_ns]
        if el is None:
            other = next(ns for ns, e in els.items() if e is not None)
            raise ValueError(
                f"{sender} sent a {SHORT[other]} message, but this bot announces only {SHORT[self.omemo_ns]}"
            )
        if stanza["type"] == "groupchat":
            if self.omemo_ns != oldmemo.oldmemo.NAMESPACE:
                raise ValueError(f"a room message from {stanza['from']}, but rooms are legacy only here")
            await self.incoming_groupchat(stanza, el)
            return
        sm = await self.omemo.get_session_manager()
        if self.omemo_ns == twomemo.twomemo.NAMESPACE:
            message = twomemo.etree.parse_message(el, sender)
            plaintext, device, _ = await sm.decrypt(message)
            body = None if plaintext is None else open_envelope(plaintext, sender, self.boundjid.bare)
        else:
            decrypted, device = await self.omemo.decrypt_message(stanza)
            has_payload = el.find(f"{{{self.omemo_ns}}}payload") is not None
            body = decrypted["body"] if has_payload else None
        if device.bare_jid != sender:
            raise ValueError(f"decrypted as {device.bare_jid}, but the stanza came from {sender}")
        await self.report_decrypted({}, sender, device, body)

    async def report_decrypted(self, where: Dict[str, Any], sender: str, device: Any, body: Optional[str]) -> None:
        """Emits a decrypted message from `device` of `sender` (with the room fields in `where`,
        if any): `received` with its body, or `empty` for a message without one."""
        base = {
            **where,
            "from": sender,
            "device": device.device_id,
            "ns": SHORT[self.omemo_ns],
            "fingerprint": fingerprint(device.identity_key),
        }
        if body is None:
            emit({"empty": True, **base})
            return
        line = {"received": True, **base, "body": body}
        if body.startswith("aesgcm://"):
            try:
                line["file"] = await asyncio.to_thread(fetch_aesgcm, body)
            except Exception as e:  # pylint: disable=broad-exception-caught
                line["file_error"] = f"{type(e).__name__}: {e}"
        emit(line)

    async def quit(self) -> None:
        sm = await self.omemo.get_session_manager()
        await sm.shutdown()
        self.quitting = True  # so the disconnect is not reported as an error
        await self.disconnect()
        emit({"bye": True})
        if not self.done.done():
            self.done.set_result(0)


async def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--jid", required=True)
    p.add_argument("--password", required=True)
    p.add_argument("--server", required=True, help="HOST:PORT of a loopback server (no TLS)")
    p.add_argument("--ns", required=True, choices=sorted(NAMESPACES))
    p.add_argument("--store", required=True, help="JSON file for python-omemo's state")
    p.add_argument("--unlisted", action="store_true",
                   help="publish our bundle but never our device list (as Profanity 0.13 does on a new account)")
    p.add_argument("--debug", action="store_true", help="log everything to stderr")
    args = p.parse_args()
    logging.basicConfig(
        level=logging.DEBUG if args.debug else logging.WARNING,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    host, _, port = args.server.rpartition(":")
    host = host.strip("[]")
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        emit({"error": f"refusing an unencrypted connection to {host}: loopback only"})
        return 2
    bot = Bot(args.jid, args.password, NAMESPACES[args.ns], JsonFileStorage(args.store), args.unlisted)
    bot.connect(host, int(port))
    return await bot.done


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))

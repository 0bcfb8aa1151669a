"""An OMEMO peer built on python-omemo's backends (twomemo / oldmemo), driven over JSON lines.

The Rust interop tests start this process and send one JSON object per line on stdin; each gets
one JSON object per line on stdout: {"ok": true, ...} or {"ok": false, "error": "..."}.
It uses the reference implementations for everything cryptographic and for the XML of bundles
and OMEMO:2 messages; SCE envelopes are built and checked here with ElementTree, independently
of Hush's code.

Commands (all binary values base64, XML as text):
  new_device   {name, ns, jid, device_id}            -> {bundle, identity}
  encrypt      {name, to: [{jid, device_id, bundle?}], body?, sce_to?}
                                                      -> {xml}      body absent = empty message
  decrypt      {name, sender_jid, xml, sce_to?, answer?}
                                                      -> {body|null, kex, replaced, answer?}
               answer = true: also return the empty message python-omemo's SessionManager would
               send right away (after a key exchange, or when the session went stale), as XML
  session_state {name, jid, device_id}               -> {session: {initiation, confirmed,
                                                          sending, receiving} | null}
  bench_*      see bench_vs_python.py
"""
from __future__ import annotations

import asyncio
import base64
import json
import secrets
import sys
import time
import xml.etree.ElementTree as ET
from typing import Any, Dict, Optional

import omemo
from omemo.message import Message
from omemo.session import Initiation
from omemo.storage import Just, Maybe, Nothing, Storage

import oldmemo
import oldmemo.etree
import oldmemo.oldmemo as om
import twomemo
import twomemo.etree

SCE = "urn:xmpp:sce:1"

# omemo/session_manager.py: SessionManager.STALENESS_MAGIC_NUMBER, and the default of its
# pre_key_refill_threshold argument.
STALENESS_MAGIC_NUMBER = 53
PRE_KEY_REFILL_THRESHOLD = 99


def attached_key_exchange(session: Any) -> Any:
    """The key exchange python-omemo sends along with a message on `session`: only an active
    session's, until a message from the peer confirmed it (SessionManager.encrypt and
    SessionManager.__send_empty_message). A passive session never sends one, confirmed or not."""
    if session.initiation is Initiation.ACTIVE and not session.confirmed:
        return session.key_exchange
    return None


class MemoryStorage(Storage):
    def __init__(self) -> None:
        super().__init__(disable_cache=True)
        self.data: Dict[str, Any] = {}

    async def _load(self, key: str) -> Maybe[Any]:
        return Just(self.data[key]) if key in self.data else Nothing()

    async def _store(self, key: str, value: Any) -> None:
        self.data[key] = value

    async def _delete(self, key: str) -> None:
        self.data.pop(key, None)


class Device:
    def __init__(self, ns: str, jid: str, device_id: int) -> None:
        self.ns = ns
        self.jid = jid
        self.device_id = device_id
        self.storage = MemoryStorage()
        self.backend = twomemo.Twomemo(self.storage) if ns == twomemo.twomemo.NAMESPACE else oldmemo.Oldmemo(self.storage)
        self.bundles: Dict[tuple, Any] = {}
        # Legacy only: the Ed25519 sign bit of each peer identity, which the legacy wire form drops.
        self.sign_bits: Dict[tuple, bool] = {}

    @property
    def etree(self):
        return twomemo.etree if self.ns == twomemo.twomemo.NAMESPACE else oldmemo.etree

    async def bundle_xml(self) -> str:
        if await self.backend.get_num_visible_pre_keys() < 100:
            await self.backend.generate_pre_keys(100 - await self.backend.get_num_visible_pre_keys())
        bundle = await self.backend.get_bundle(self.jid, self.device_id)
        return ET.tostring(self.etree.serialize_bundle(bundle), encoding="unicode")

    def learn_bundle(self, jid: str, device_id: int, xml: str) -> None:
        bundle = self.etree.parse_bundle(ET.fromstring(xml), jid, device_id)
        self.bundles[(jid, device_id)] = bundle
        self.sign_bits[(jid, device_id)] = bool((bundle.identity_key[31] >> 7) & 1)


def sce_envelope(body: str, sender: str, recipient: str) -> bytes:
    env = ET.Element(f"{{{SCE}}}envelope")
    content = ET.SubElement(env, f"{{{SCE}}}content")
    ET.SubElement(content, "{jabber:client}body").text = body
    ET.SubElement(env, f"{{{SCE}}}rpad").text = secrets.token_urlsafe(secrets.randbelow(40))
    ET.SubElement(env, f"{{{SCE}}}time", stamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    ET.SubElement(env, f"{{{SCE}}}to", jid=recipient)
    ET.SubElement(env, f"{{{SCE}}}from", jid=sender)
    return ET.tostring(env, encoding="utf-8")


def open_envelope(raw: bytes, sender: str, recipient: str) -> str:
    env = ET.fromstring(raw)
    if env.tag != f"{{{SCE}}}envelope":
        raise ValueError(f"not an SCE envelope: {env.tag}")
    if env.find(f"{{{SCE}}}rpad") is None:
        raise ValueError("SCE envelope without <rpad/>")
    to = env.find(f"{{{SCE}}}to")
    frm = env.find(f"{{{SCE}}}from")
    if to is None or to.get("jid", "").split("/")[0] != recipient:
        raise ValueError(f"SCE <to/> does not name {recipient}")
    if frm is None or frm.get("jid", "").split("/")[0] != sender:
        raise ValueError(f"SCE <from/> does not name {sender}")
    body = env.find(f"{{{SCE}}}content/{{jabber:client}}body")
    if body is None:
        raise ValueError("SCE content without <body/>")
    return body.text or ""


def parse_legacy(dev: Device, el: ET.Element, sender: str) -> Message:
    """oldmemo.etree.parse_message needs a whole SessionManager to find the sender's sign bit; we
    know the bundle already, so parse the (simple) legacy element here."""
    ns = "{eu.siacs.conversations.axolotl}"
    header = el.find(f"{ns}header")
    sid = int(header.get("sid"))
    sign_bit = dev.sign_bits.get((sender, sid), False)
    keys = set()
    for k in header.iter(f"{ns}key"):
        data = base64.b64decode(k.text or "")
        kex = None
        if k.get("prekey", "false") in ("true", "1"):
            kex, data = om.KeyExchangeImpl.parse(data, sign_bit)
        keys.add((om.EncryptedKeyMaterialImpl.parse(data, dev.jid, int(k.get("rid"))), kex))
    payload = el.find(f"{ns}payload")
    iv = header.find(f"{ns}iv")
    content = (
        om.ContentImpl.make_empty() if payload is None or iv is None
        else om.ContentImpl(base64.b64decode(payload.text or ""), base64.b64decode(iv.text or ""))
    )
    return Message(dev.ns, sender, sid, content, frozenset(keys))


class Peer:
    def __init__(self) -> None:
        self.devices: Dict[str, Device] = {}

    async def new_device(self, name: str, ns: str, jid: str, device_id: int) -> Dict[str, Any]:
        dev = Device(ns, jid, device_id)
        self.devices[name] = dev
        return {"bundle": await dev.bundle_xml()}

    async def learn(self, name: str, jid: str, device_id: int, bundle: str) -> Dict[str, Any]:
        self.devices[name].learn_bundle(jid, device_id, bundle)
        return {}

    async def encrypt(self, name: str, to: list, body: Optional[str] = None, sce_to: Optional[str] = None) -> Dict[str, Any]:
        dev = self.devices[name]
        be = dev.backend
        if body is None:
            content, pkm = await be.encrypt_empty()
        else:
            plaintext = body.encode() if dev.ns != twomemo.twomemo.NAMESPACE else sce_envelope(body, dev.jid, sce_to or to[0]["jid"])
            content, pkm = await be.encrypt_plaintext(plaintext)
        keys = set()
        for r in to:
            jid, did = r["jid"], r["device_id"]
            session = await be.load_session(jid, did)
            if session is None:
                session, ekm = await be.build_session_active(jid, did, dev.bundles[(jid, did)], pkm)
            else:
                ekm = await be.encrypt_key_material(session, pkm)
            keys.add((ekm, attached_key_exchange(session)))
            await be.store_session(session)
        msg = Message(dev.ns, dev.jid, dev.device_id, content, frozenset(keys))
        return {"xml": ET.tostring(dev.etree.serialize_message(msg), encoding="unicode")}

    async def decrypt(
        self, name: str, sender_jid: str, xml: str, sce_to: Optional[str] = None, answer: bool = False
    ) -> Dict[str, Any]:
        """What python-omemo's SessionManager.decrypt (omemo/session_manager.py) does with one
        message, without its device-list and trust checks:

        - A message with a key exchange goes to the stored session only if that session is
          PASSIVE and was built from this very key exchange (handle_key_exchange:
          `session.initiation is Initiation.PASSIVE and
          session.key_exchange.builds_same_session(key_exchange)`). Any other stored session —
          in particular our own ACTIVE one whose key exchange the peer has not answered yet — is
          dropped ("Key exchange replaces existing session.") and build_session_passive builds a
          new one. python-omemo keeps one session per device: the dropped one is gone for good.
        - A message without one is decrypted by the stored session only (decrypt_key_material);
          there is no other state to try.
        - The session is stored only after the payload decrypted ("Persist the session following
          successful decryption"); after a key exchange the one-time prekey is deleted at once
          (delete_pre_key, outside history synchronisation) and the prekeys refilled.
        - After a key exchange, or once the receiving chain is longer than
          STALENESS_MAGIC_NUMBER, an empty message is sent right away on that same session
          (__send_empty_message); `answer` returns it.
        """
        dev = self.devices[name]
        be = dev.backend
        el = ET.fromstring(xml)
        msg = twomemo.etree.parse_message(el, sender_jid) if dev.ns == twomemo.twomemo.NAMESPACE else parse_legacy(dev, el, sender_jid)
        mine = [k for k in msg.keys if k[0].device_id == dev.device_id and k[0].bare_jid == dev.jid]
        if not mine:
            raise ValueError("message not encrypted for this device")
        ekm, kex = mine[0]
        session = await be.load_session(sender_jid, msg.device_id)
        replaced = False
        if kex is None:
            if session is None:
                raise ValueError("no session and no key exchange")
            pkm = await be.decrypt_key_material(session, ekm)
        else:
            if session is not None and not (
                session.initiation is Initiation.PASSIVE and session.key_exchange.builds_same_session(kex)
            ):
                session, replaced = None, True
            if session is None:
                session, pkm = await be.build_session_passive(sender_jid, msg.device_id, kex, ekm)
            else:
                pkm = await be.decrypt_key_material(session, ekm)
        plaintext = None if msg.content.empty else await be.decrypt_plaintext(msg.content, pkm)
        await be.store_session(session)
        if kex is not None and await be.delete_pre_key(session):
            visible = await be.get_num_visible_pre_keys()
            if visible <= PRE_KEY_REFILL_THRESHOLD:
                await be.generate_pre_keys(100 - visible)
        out: Dict[str, Any] = {"body": None, "kex": kex is not None, "replaced": replaced}
        if plaintext is not None:
            if dev.ns == twomemo.twomemo.NAMESPACE:
                out["body"] = open_envelope(plaintext, sender_jid, sce_to or dev.jid)
            else:
                out["body"] = plaintext.decode()
        if answer and (kex is not None or (session.receiving_chain_length or 0) > STALENESS_MAGIC_NUMBER):
            out["answer"] = await self.empty_message(dev, session)
        return out

    async def empty_message(self, dev: Device, session: Any) -> str:
        """SessionManager.__send_empty_message: an empty message on `session`, then the session
        stored."""
        content, pkm = await dev.backend.encrypt_empty()
        ekm = await dev.backend.encrypt_key_material(session, pkm)
        msg = Message(dev.ns, dev.jid, dev.device_id, content, frozenset({(ekm, attached_key_exchange(session))}))
        await dev.backend.store_session(session)
        return ET.tostring(dev.etree.serialize_message(msg), encoding="unicode")

    async def session_state(self, name: str, jid: str, device_id: int) -> Dict[str, Any]:
        session = await self.devices[name].backend.load_session(jid, device_id)
        if session is None:
            return {"session": None}
        return {"session": {
            "initiation": session.initiation.name.lower(),
            "confirmed": session.confirmed,
            "sending": session.sending_chain_length,
            "receiving": session.receiving_chain_length,
        }}


async def serve() -> None:
    peer = Peer()
    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            return
        req = json.loads(line)
        cmd = req.pop("cmd")
        try:
            if cmd.startswith("bench_"):
                import bench_ops
                result = await getattr(bench_ops, cmd)(**req)
            else:
                result = await getattr(peer, cmd)(**req)
            out = {"ok": True, **result}
        except Exception as e:  # reported to the Rust side, which fails the test
            out = {"ok": False, "error": f"{type(e).__name__}: {e}"}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    asyncio.run(serve())

"""Side-by-side timing of Hush (hush-proto) and python-omemo for the same OMEMO operations.

Run through scripts/bench-vs-python, which builds the Rust side first. Both sides use the same
loop: warm up, then the fastest of five rounds of at least 3 iterations and 60 ms. Python runs
the reference backends (twomemo / oldmemo) with sessions held in memory, so storage costs are
left out on both sides.
"""
import asyncio
import json
import subprocess
import sys
import time

import xeddsa

import oldmemo
import twomemo
from peer import MemoryStorage

PAYLOAD = b"\x42" * 100


async def timed(op) -> float:
    """Warm up, then five rounds of at least 60 ms and 3 iterations each; the fastest round
    counts, as on the Rust side (examples/bench_ops.rs)."""
    for _ in range(3):
        await op()
    best = float("inf")
    for _ in range(5):
        n = 0
        start = time.perf_counter()
        while n < 3 or time.perf_counter() - start < 0.06:
            await op()
            n += 1
        best = min(best, (time.perf_counter() - start) / n * 1e9)
    return best


async def backend(cls, jid: str, device_id: int):
    be = cls(MemoryStorage())
    await be.generate_pre_keys(100)
    return be, await be.get_bundle(jid, device_id)


async def python_side() -> dict:
    out = {}
    priv = bytes(range(32))
    msg = b"\x05" * 33
    sig = xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(priv, False), msg)
    curve = xeddsa.priv_to_curve25519_pub(priv)

    async def sign():
        xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(priv, False), msg)

    async def verify():
        assert xeddsa.ed25519_verify(sig, xeddsa.curve25519_pub_to_ed25519_pub(curve, False), msg)

    out["xeddsa_sign"] = await timed(sign)
    out["xeddsa_verify"] = await timed(verify)

    alice, _ = await backend(twomemo.Twomemo, "alice@example.org", 1)
    bob, bob_bundle = await backend(twomemo.Twomemo, "bob@example.net", 2)
    kex = {}

    async def active():
        content, pkm = await alice.encrypt_plaintext(PAYLOAD)
        session, ekm = await alice.build_session_active("bob@example.net", 2, bob_bundle, pkm)
        kex["last"] = (content, ekm, session.key_exchange)

    async def passive():
        content, ekm, key_exchange = kex["last"]
        session, pkm = await bob.build_session_passive("alice@example.org", 1, key_exchange, ekm)
        assert await bob.decrypt_plaintext(content, pkm) == PAYLOAD

    # X3DH alone, through the backend's own x3dh state (a private attribute of python-omemo).
    state = await alice._Twomemo__get_state()
    bob_state = await bob._Twomemo__get_state()
    agreed = {}

    async def x3dh_active():
        agreed["header"] = (await state.get_shared_secret_active(bob_bundle.bundle))[2]

    async def x3dh_passive():
        await bob_state.get_shared_secret_passive(agreed["header"])

    out["x3dh_active"] = await timed(x3dh_active)
    out["x3dh_passive"] = await timed(x3dh_passive)
    out["session_active"] = await timed(active)
    await active()
    out["session_passive"] = await timed(passive)

    for cls, name in [(twomemo.Twomemo, "message_omemo2"), (oldmemo.Oldmemo, "message_legacy")]:
        a, _ = await backend(cls, "alice@example.org", 1)
        b, b_bundle = await backend(cls, "bob@example.net", 2)
        content, pkm = await a.encrypt_plaintext(PAYLOAD)
        s_ab, ekm = await a.build_session_active("bob@example.net", 2, b_bundle, pkm)
        s_ba, _ = await b.build_session_passive("alice@example.org", 1, s_ab.key_exchange, ekm)

        async def round_trip():
            content, pkm = await a.encrypt_plaintext(PAYLOAD)
            ekm = await a.encrypt_key_material(s_ab, pkm)
            pkm2 = await b.decrypt_key_material(s_ba, ekm)
            assert await b.decrypt_plaintext(content, pkm2) == PAYLOAD

        out[name] = await timed(round_trip)

    for n in (1, 10, 100):
        a, _ = await backend(twomemo.Twomemo, "alice@example.org", 1)
        sessions = []
        for i in range(n):
            b, b_bundle = await backend(twomemo.Twomemo, "bob@example.net", 100 + i)
            _, pkm = await a.encrypt_plaintext(PAYLOAD)
            s, _ = await a.build_session_active("bob@example.net", 100 + i, b_bundle, pkm)
            sessions.append(s)

        async def fanout():
            _, pkm = await a.encrypt_plaintext(PAYLOAD)
            for s in sessions:
                await a.encrypt_key_material(s, pkm)

        out[f"fanout_{n}"] = await timed(fanout)

    # One room message: 50 members with 3 devices each, every session confirmed by the empty
    # message that answers its key exchange (read by Alice), as in a room already talking.
    a, _ = await backend(twomemo.Twomemo, "alice@example.org", 1)
    room = []
    for m in range(50):
        jid = f"member{m}@example.net"
        for d in range(3):
            device_id = 100 + 3 * m + d
            b, b_bundle = await backend(twomemo.Twomemo, jid, device_id)
            _, pkm = await a.encrypt_plaintext(b"hi")
            s_ab, ekm = await a.build_session_active(jid, device_id, b_bundle, pkm)
            s_ba, _ = await b.build_session_passive("alice@example.org", 1, s_ab.key_exchange, ekm)
            _, empty = await b.encrypt_empty()
            await a.decrypt_key_material(s_ab, await b.encrypt_key_material(s_ba, empty))
            assert s_ab.confirmed
            room.append(s_ab)

    async def room_message():
        _, pkm = await a.encrypt_plaintext(PAYLOAD)
        for s in room:
            await a.encrypt_key_material(s, pkm)

    out["room_150"] = await timed(room_message)

    # The first message to n devices never written to: a session built from each bundle (its
    # signature checked), one payload, n key wraps.
    for n in (1, 10, 100):
        a, _ = await backend(twomemo.Twomemo, "alice@example.org", 1)
        bundles = [(await backend(twomemo.Twomemo, "bob@example.net", 100 + i))[1] for i in range(n)]

        async def first_message():
            _, pkm = await a.encrypt_plaintext(PAYLOAD)
            for i, b in enumerate(bundles):
                await a.build_session_active("bob@example.net", 100 + i, b, pkm)

        out[f"first_message_{n}"] = await timed(first_message)
    return out


async def openssl_side() -> dict:
    """OpenSSL's curve primitives (through Python's `cryptography`, which calls OpenSSL):
    the reference for the rows the curve bounds. The few hundred nanoseconds Python adds per
    call count against OpenSSL here, not against Hush."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    ours = X25519PrivateKey.from_private_bytes(b"\x41" * 32)
    theirs = X25519PrivateKey.from_private_bytes(b"\x17" * 32).public_key()
    signer = Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
    public = signer.public_key()
    msg = b"\x05" * 33
    sig = signer.sign(msg)

    async def x25519():
        ours.exchange(theirs)

    async def x25519_public():
        X25519PrivateKey.from_private_bytes(b"\x41" * 32).public_key()

    async def ed25519_verify():
        public.verify(sig, msg)

    async def ed25519_sign():
        signer.sign(msg)

    out = {
        "x25519": await timed(x25519),
        "x25519_public": await timed(x25519_public),
        "ed25519_verify": await timed(ed25519_verify),
        "ed25519_sign": await timed(ed25519_sign),
    }
    out.update(await openssl_blocks())
    return out


async def openssl_blocks() -> dict:
    """What one block of SHA-256, AES-256-CBC and AES-128-GCM costs OpenSSL in bulk (hashlib and
    `cryptography` both call it): 1 MiB per call, so Python's overhead per call is spread over
    16,384 SHA-256 blocks or 65,536 AES blocks. OpenSSL pays no per-message key setup here,
    so the floor these give is below what any implementation can reach on short messages."""
    import hashlib

    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    data = b"\x5a" * (1 << 20)
    key, iv = b"\x33" * 32, b"\x44" * 16

    async def sha256():
        hashlib.sha256(data).digest()

    async def cbc_encrypt():
        Cipher(algorithms.AES(key), modes.CBC(iv)).encryptor().update(data)

    async def cbc_decrypt():
        Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor().update(data)

    async def gcm():
        e = Cipher(algorithms.AES(key[:16]), modes.GCM(iv[:12])).encryptor()
        e.update(data)
        e.finalize()

    return {
        "sha256_block": await timed(sha256) / (len(data) // 64),
        "aes256_cbc_encrypt_block": await timed(cbc_encrypt) / (len(data) // 16),
        "aes256_cbc_decrypt_block": await timed(cbc_decrypt) / (len(data) // 16),
        "aes128_gcm_block": await timed(gcm) / (len(data) // 16),
    }


ROWS = [
    ("xeddsa_sign", "XEdDSA sign"),
    ("xeddsa_verify", "XEdDSA verify"),
    ("x3dh_active", "X3DH active: verify bundle + agreement"),
    ("x3dh_passive", "X3DH passive: agreement"),
    ("session_active", "X3DH active + first message (omemo:2)"),
    ("session_passive", "X3DH passive + first message (omemo:2)"),
    ("message_omemo2", "encrypt+decrypt 100 B (omemo:2)"),
    ("message_legacy", "encrypt+decrypt 100 B (legacy)"),
    ("fanout_1", "encrypt for 1 device (omemo:2)"),
    ("fanout_10", "encrypt for 10 devices (omemo:2)"),
    ("fanout_100", "encrypt for 100 devices (omemo:2)"),
    ("room_150", "encrypt one message for 150 devices (sessions established)"),
    ("first_message_1", "first message to 1 new device (bundle checked)"),
    ("first_message_10", "first message to 10 new devices (bundles checked)"),
    ("first_message_100", "first message to 100 new devices (bundles checked)"),
]

# (hush's row, OpenSSL's, label)
PRIMITIVES = [
    ("x25519", "x25519", "X25519"),
    ("x25519_public", "x25519_public", "X25519 public key (fixed base)"),
    ("ed25519_verify", "ed25519_verify", "Ed25519 verify"),
    ("xeddsa_sign", "ed25519_sign", "Ed25519 sign (hush: XEdDSA, key cached)"),
]


def symmetric(sha256_blocks: int, cbc_encrypt: int, cbc_decrypt: int = 0, gcm: int = 0) -> dict:
    return {
        "sha256_block": sha256_blocks,
        "aes256_cbc_encrypt_block": cbc_encrypt,
        "aes256_cbc_decrypt_block": cbc_decrypt,
        "aes128_gcm_block": gcm,
    }


def fanout(devices: int) -> dict:
    # The payload: its key's HKDF (10 SHA-256 blocks), its tag (5), 7 AES blocks for 100 bytes.
    # Each device: the chain step (6), the message key's HKDF (12), the tag (6), and 4 AES
    # blocks for the 48 bytes of key and tag.
    return symmetric(15 + 24 * devices, 7 + 4 * devices)


# Each row's floor: the work the protocol fixes for it, priced at OpenSSL's speed. A row at
# 1.0 does that work as fast as OpenSSL would and nothing else. Rows bound by the curve count
# their curve operations only. The symmetric rows count SHA-256 and AES blocks; the SHA-256
# counts are checked by hush-proto's unit tests (src/cost_tests.rs): 39 blocks per side of an
# OMEMO:2 message to one device, 24 per further device, 22 per side in legacy, whose payload
# is AES-128-GCM.
FLOORS = {
    "message_omemo2": symmetric(2 * 39, 11, 11),
    "message_legacy": symmetric(2 * 22, 3, 3, gcm=2 * 7),
    "fanout_1": fanout(1),
    "fanout_10": fanout(10),
    "fanout_100": fanout(100),
    "room_150": fanout(150),
    "xeddsa_sign": {"ed25519_sign": 1},
    "xeddsa_verify": {"ed25519_verify": 1},
    "x3dh_active": {"ed25519_verify": 1, "x25519": 4, "x25519_public": 1},
    "x3dh_passive": {"x25519": 4},
    "session_active": {"ed25519_verify": 1, "x25519": 5, "x25519_public": 2},
    "session_passive": {"x25519": 6, "x25519_public": 1},
    "first_message_1": {"ed25519_verify": 1, "x25519": 5, "x25519_public": 2},
    "first_message_10": {"ed25519_verify": 10, "x25519": 50, "x25519_public": 20},
    "first_message_100": {"ed25519_verify": 100, "x25519": 500, "x25519_public": 200},
}


def fmt(ns: float) -> str:
    return f"{ns / 1000:10.1f} µs"


def main() -> None:
    rust_bin = sys.argv[1]
    rust = json.loads(subprocess.run([rust_bin], check=True, capture_output=True, text=True).stdout)
    python = asyncio.run(python_side())
    openssl = asyncio.run(openssl_side())
    width = max(44, *(len(label) for _, label in ROWS))
    print(f"{'operation':{width}} {'hush':>13} {'python-omemo':>13} {'ratio':>8} {'÷ floor':>8}")
    worst = None
    for key, label in ROWS:
        ratio = python[key] / rust[key]
        worst = ratio if worst is None else min(worst, ratio)
        floor = FLOORS.get(key)
        against = ""
        if floor:
            ns = sum(openssl[p] * n for p, n in floor.items())
            against = f"{rust[key] / ns:7.2f}x"
        print(f"{label:{width}} {fmt(rust[key])} {fmt(python[key])} {ratio:7.1f}x {against:>8}")
    print(f"\nslowest ratio: {worst:.1f}x (hush faster by this factor on every row)")
    print("÷ floor: hush's time over what the row's fixed work costs in OpenSSL: its curve")
    print("operations, or for the symmetric rows its SHA-256 and AES blocks at OpenSSL's bulk speed")
    print(
        f"(per block: SHA-256 {openssl['sha256_block']:.1f} ns, AES-256-CBC encrypt "
        f"{openssl['aes256_cbc_encrypt_block']:.1f} ns, decrypt {openssl['aes256_cbc_decrypt_block']:.1f} ns, "
        f"AES-128-GCM {openssl['aes128_gcm_block']:.1f} ns)\n"
    )
    print(f"{'primitive':{width}} {'hush':>13} {'OpenSSL':>13} {'hush/OpenSSL':>13}")
    for ours, theirs, label in PRIMITIVES:
        print(f"{label:{width}} {fmt(rust[ours])} {fmt(openssl[theirs])} {rust[ours] / openssl[theirs]:12.2f}x")


if __name__ == "__main__":
    main()

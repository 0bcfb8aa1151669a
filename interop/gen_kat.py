"""Generate known-answer vectors for hush-proto from the Python reference (python-omemo stack).

Run:  .venv/bin/python interop/gen_kat.py > crates/hush-proto/tests/kat/vectors.json
Every value is produced by the independent implementation (xeddsa, doubleratchet, twomemo,
oldmemo); hush-proto's unit tests must reproduce them byte for byte.
"""
import asyncio
import hashlib
import json

import xeddsa
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import doubleratchet
import oldmemo.oldmemo as om
import twomemo.twomemo as tm


def h(b: bytes) -> str:
    return b.hex()


def det(label: str, n: int = 32) -> bytes:
    """Deterministic test bytes."""
    out = b""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{label}/{i}".encode()).digest()
        i += 1
    return out[:n]


def clamp(k: bytes) -> bytes:
    b = bytearray(k)
    b[0] &= 248
    b[31] &= 127
    b[31] |= 64
    return bytes(b)


def hkdf(ikm: bytes, salt: bytes, info: bytes, n: int) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=n, salt=salt, info=info).derive(ikm)


async def main() -> None:
    out = {}

    # XEdDSA: spec signing (sign bit forced to 0, as x3dh does before signing).
    xs = []
    for i in range(8):
        k = clamp(det(f"xeddsa-key-{i}"))
        msg = det(f"xeddsa-msg-{i}", 33 + i)
        z = det(f"xeddsa-nonce-{i}", 64)
        sig = xeddsa.ed25519_priv_sign(xeddsa.priv_force_sign(k, False), msg, z)
        curve_pub = xeddsa.priv_to_curve25519_pub(k)
        ed_pub = xeddsa.curve25519_pub_to_ed25519_pub(curve_pub, False)
        assert xeddsa.ed25519_verify(sig, ed_pub, msg)
        xs.append({"k": h(k), "msg": h(msg), "z": h(z), "sig": h(sig), "curve_pub": h(curve_pub), "ed_pub": h(ed_pub)})
    out["xeddsa"] = xs

    # X3DH shared secrets, both info strings, from fixed keys.
    keys = {n: clamp(det(f"x3dh-{n}")) for n in ("ika", "eka", "ikb", "spkb", "opkb")}
    pub = {n: xeddsa.priv_to_curve25519_pub(k) for n, k in keys.items()}
    dh1 = xeddsa.x25519(keys["ika"], pub["spkb"])
    dh2 = xeddsa.x25519(keys["eka"], pub["ikb"])
    dh3 = xeddsa.x25519(keys["eka"], pub["spkb"])
    dh4 = xeddsa.x25519(keys["eka"], pub["opkb"])
    ikm = b"\xff" * 32 + dh1 + dh2 + dh3 + dh4
    out["x3dh"] = {
        **{n: h(k) for n, k in keys.items()},
        "sk_omemo2": h(hkdf(ikm, b"\x00" * 32, b"OMEMO X3DH", 32)),
        "sk_legacy": h(hkdf(ikm, b"\x00" * 32, b"WhisperText", 32)),
    }

    # Root and chain KDF steps.
    rk = det("rk")
    dh = det("dh")
    ck = det("ck")
    out["kdf"] = {
        "rk": h(rk), "dh": h(dh), "ck": h(ck),
        "root_omemo2": h(await tm.RootChainKDFImpl.derive(rk, dh, 64)),
        "root_legacy": h(await om.RootChainKDFImpl.derive(rk, dh, 64)),
        # derive(ck, b"\x02\x01") = next chain key || message key
        "chain": h(await tm.MessageChainKDFImpl.derive(ck, tm.DoubleRatchetImpl.MESSAGE_CHAIN_CONSTANT, 64)),
    }

    # Ratchet message formats: deterministic given message key, AD and header.
    mk = det("mk")
    ad_ik = det("ad", 64)
    ratchet_pub = xeddsa.priv_to_curve25519_pub(clamp(det("ratchet")))
    header = doubleratchet.Header(ratchet_pub, 3, 7)
    plaintext = det("key-material", 48)
    ad2 = tm.DoubleRatchetImpl._build_associated_data(ad_ik, header)
    msg2 = await tm.AEADImpl.encrypt(plaintext, mk, ad2)
    ad_legacy = b"\x05" + ad_ik[:32] + b"\x05" + ad_ik[32:]
    adl = om.DoubleRatchetImpl._build_associated_data(ad_legacy, header)
    msgl = await om.AEADImpl.encrypt(plaintext[:32], mk, adl)
    out["message"] = {
        "mk": h(mk), "ratchet_pub": h(ratchet_pub), "pn": 3, "n": 7,
        "ad_omemo2": h(ad_ik), "ad_legacy": h(ad_legacy),
        "plaintext_omemo2": h(plaintext), "plaintext_legacy": h(plaintext[:32]),
        "omemo2": h(msg2), "legacy": h(msgl),
    }

    # OMEMO:2 payload with a fixed key.
    key = det("payload-key")
    derived = hkdf(key, b"\x00" * 32, b"OMEMO Payload", 80)
    from cryptography.hazmat.primitives import padding, hmac as chmac
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
    p = padding.PKCS7(128).padder()
    body = b"<envelope xmlns='urn:xmpp:sce:1'><content/><rpad/></envelope>"
    padded = p.update(body) + p.finalize()
    enc = Cipher(algorithms.AES(derived[:32]), modes.CBC(derived[64:])).encryptor()
    ct = enc.update(padded) + enc.finalize()
    mac = chmac.HMAC(derived[32:64], hashes.SHA256())
    mac.update(ct)
    out["payload_omemo2"] = {"key": h(key), "plaintext": h(body), "ciphertext": h(ct), "tag": h(mac.finalize()[:16])}

    print(json.dumps(out, indent=1, sort_keys=True))


asyncio.run(main())

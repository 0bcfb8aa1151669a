//! Binary framing of ratchet messages and key exchanges, per suite.
//!
//! OMEMO:2 (XEP-0384 §"Protobuf"): `OMEMOMessage{n=1, pn=2, dh_pub=3, ciphertext=4}` wrapped in
//! `OMEMOAuthenticatedMessage{mac=1, message=2}`, and `OMEMOKeyExchange{pk_id=1, spk_id=2, ik=3,
//! ek=4, message=5}`; no version byte.
//!
//! Legacy (libsignal): `0x33 || WhisperMessage{ratchetKey=1, counter=2, previousCounter=3,
//! ciphertext=4} || mac[8]` and `0x33 || PreKeyWhisperMessage{preKeyId=1, baseKey=2,
//! identityKey=3, message=4, registrationId=5, signedPreKeyId=6}`.
//!
//! All protobuf fields are declared `optional` so that a missing `required` field is detected
//! here (prost does not enforce proto2 `required`); encoding always sets them, zeros included.
//! MACs are checked over the bytes as received: [`RatchetMessage::signed`] keeps them.

use prost::Message;

use crate::error::{ProtoError, Result};
use crate::keys::IdentityKey;
use crate::suite::Suite;

/// libsignal message version byte: current version 3, message version 3. Only this exact value
/// is accepted: the key exchange wrapper is not authenticated, so tolerating other values
/// would make it malleable.
const LEGACY_VERSION: u8 = 0x33;

/// A legacy protobuf message behind its version byte.
fn legacy_framed(pb: &impl Message) -> Vec<u8> {
    let body = pb.encode_to_vec();
    let mut out = Vec::with_capacity(1 + body.len() + 8);
    out.push(LEGACY_VERSION);
    out.extend_from_slice(&body);
    out
}

#[derive(Clone, PartialEq, Message)]
struct PbOmemoMessage {
    #[prost(uint32, optional, tag = "1")]
    n: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    pn: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    dh_pub: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PbAuthenticated {
    #[prost(bytes = "vec", optional, tag = "1")]
    mac: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "2")]
    message: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PbKeyExchange {
    #[prost(uint32, optional, tag = "1")]
    pk_id: Option<u32>,
    #[prost(uint32, optional, tag = "2")]
    spk_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "3")]
    ik: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ek: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "5")]
    message: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PbWhisper {
    #[prost(bytes = "vec", optional, tag = "1")]
    ratchet_key: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "2")]
    counter: Option<u32>,
    #[prost(uint32, optional, tag = "3")]
    previous_counter: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "4")]
    ciphertext: Option<Vec<u8>>,
}

#[derive(Clone, PartialEq, Message)]
struct PbPreKeyWhisper {
    #[prost(uint32, optional, tag = "1")]
    pre_key_id: Option<u32>,
    #[prost(bytes = "vec", optional, tag = "2")]
    base_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "3")]
    identity_key: Option<Vec<u8>>,
    #[prost(bytes = "vec", optional, tag = "4")]
    message: Option<Vec<u8>>,
    #[prost(uint32, optional, tag = "5")]
    registration_id: Option<u32>,
    #[prost(uint32, optional, tag = "6")]
    signed_pre_key_id: Option<u32>,
}

/// The Double Ratchet header carried by every message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    pub dh: [u8; 32],
    pub pn: u32,
    pub n: u32,
}

/// A decoded ratchet message.
#[derive(Debug)]
pub(crate) struct RatchetMessage {
    pub header: Header,
    pub ciphertext: Vec<u8>,
    /// The exact bytes the MAC covers (after the associated data).
    pub signed: Vec<u8>,
    pub mac: Vec<u8>,
}

fn malformed(what: &'static str, detail: impl Into<String>) -> ProtoError {
    ProtoError::Malformed {
        what,
        detail: detail.into(),
    }
}

fn need<T>(what: &'static str, field: &'static str, v: Option<T>) -> Result<T> {
    v.ok_or_else(|| malformed(what, format!("required field `{field}` is missing")))
}

/// Serializes the MAC-covered part of a ratchet message.
pub(crate) fn encode_signed(suite: Suite, header: &Header, ciphertext: &[u8]) -> Vec<u8> {
    match suite {
        Suite::Omemo2 => PbOmemoMessage {
            n: Some(header.n),
            pn: Some(header.pn),
            dh_pub: Some(header.dh.to_vec()),
            ciphertext: Some(ciphertext.to_vec()),
        }
        .encode_to_vec(),
        Suite::Legacy => {
            let pb = PbWhisper {
                ratchet_key: Some(suite.encode_public(&header.dh)),
                counter: Some(header.n),
                previous_counter: Some(header.pn),
                ciphertext: Some(ciphertext.to_vec()),
            };
            legacy_framed(&pb)
        }
    }
}

/// Completes a ratchet message from its MAC-covered bytes and the truncated MAC.
pub(crate) fn frame_message(suite: Suite, signed: Vec<u8>, mac: &[u8]) -> Vec<u8> {
    match suite {
        Suite::Omemo2 => PbAuthenticated {
            mac: Some(mac.to_vec()),
            message: Some(signed),
        }
        .encode_to_vec(),
        Suite::Legacy => {
            let mut out = signed;
            out.extend_from_slice(mac);
            out
        }
    }
}

/// Decodes a ratchet message (not a key exchange).
pub(crate) fn decode_message(suite: Suite, bytes: &[u8]) -> Result<RatchetMessage> {
    let what = "ratchet message";
    let mac_len = suite.params().mac_len;
    let (signed, mac) = match suite {
        Suite::Omemo2 => {
            let outer = PbAuthenticated::decode(bytes)
                .map_err(|e| malformed("OMEMOAuthenticatedMessage", e.to_string()))?;
            (
                need(what, "message", outer.message)?,
                need(what, "mac", outer.mac)?,
            )
        }
        Suite::Legacy => {
            if bytes.len() < 1 + mac_len {
                return Err(ProtoError::BadLength {
                    what: "WhisperMessage",
                    got: bytes.len(),
                    expected: "at least 9",
                });
            }
            let (signed, mac) = bytes.split_at(bytes.len() - mac_len);
            (signed.to_vec(), mac.to_vec())
        }
    };
    if mac.len() != mac_len {
        return Err(ProtoError::BadLength {
            what: "message MAC",
            got: mac.len(),
            expected: if mac_len == 16 { "16" } else { "8" },
        });
    }
    let (dh, n, pn, ciphertext) = match suite {
        Suite::Omemo2 => {
            let m = PbOmemoMessage::decode(signed.as_slice())
                .map_err(|e| malformed("OMEMOMessage", e.to_string()))?;
            (
                need(what, "dh_pub", m.dh_pub)?,
                need(what, "n", m.n)?,
                need(what, "pn", m.pn)?,
                m.ciphertext,
            )
        }
        Suite::Legacy => {
            match signed.first() {
                Some(&v) if v == LEGACY_VERSION => {}
                Some(&v) => {
                    return Err(malformed(
                        "WhisperMessage",
                        format!("unsupported version byte {v:#04x}"),
                    ))
                }
                None => return Err(malformed("WhisperMessage", "empty")),
            }
            let m = PbWhisper::decode(&signed[1..])
                .map_err(|e| malformed("WhisperMessage", e.to_string()))?;
            (
                need(what, "ratchetKey", m.ratchet_key)?,
                need(what, "counter", m.counter)?,
                need(what, "previousCounter", m.previous_counter)?,
                m.ciphertext,
            )
        }
    };
    let dh = suite.decode_public("ratchet key", &dh)?;
    // Both suites put the key material in the ciphertext field; it is required in practice.
    let ciphertext = need(what, "ciphertext", ciphertext)?;
    Ok(RatchetMessage {
        header: Header { dh, pn, n },
        ciphertext,
        signed,
        mac,
    })
}

/// A decoded key exchange (`OMEMOKeyExchange` / `PreKeyWhisperMessage`).
#[derive(Debug, Clone)]
pub(crate) struct KeyExchange {
    pub pk_id: u32,
    pub spk_id: u32,
    pub identity: IdentityKey,
    /// The identity key exactly as sent (OMEMO:2 authenticates these bytes).
    pub identity_bytes: Vec<u8>,
    pub ek: [u8; 32],
    /// The embedded ratchet message, in [`decode_message`] form.
    pub message: Vec<u8>,
}

pub(crate) fn encode_kex(
    suite: Suite,
    pk_id: u32,
    spk_id: u32,
    ik: &[u8],
    ek: &[u8; 32],
    message: Vec<u8>,
) -> Vec<u8> {
    match suite {
        Suite::Omemo2 => PbKeyExchange {
            pk_id: Some(pk_id),
            spk_id: Some(spk_id),
            ik: Some(ik.to_vec()),
            ek: Some(ek.to_vec()),
            message: Some(message),
        }
        .encode_to_vec(),
        Suite::Legacy => {
            let pb = PbPreKeyWhisper {
                pre_key_id: Some(pk_id),
                base_key: Some(suite.encode_public(ek)),
                identity_key: Some(ik.to_vec()),
                message: Some(message),
                registration_id: None,
                signed_pre_key_id: Some(spk_id),
            };
            legacy_framed(&pb)
        }
    }
}

pub(crate) fn decode_kex(suite: Suite, bytes: &[u8]) -> Result<KeyExchange> {
    let what = "key exchange";
    let (pk_id, spk_id, ik, ek, message) = match suite {
        Suite::Omemo2 => {
            let m = PbKeyExchange::decode(bytes)
                .map_err(|e| malformed("OMEMOKeyExchange", e.to_string()))?;
            (m.pk_id, m.spk_id, m.ik, m.ek, m.message)
        }
        Suite::Legacy => {
            match bytes.first() {
                Some(&v) if v == LEGACY_VERSION => {}
                Some(&v) => {
                    return Err(malformed(
                        "PreKeyWhisperMessage",
                        format!("unsupported version byte {v:#04x}"),
                    ))
                }
                None => return Err(malformed("PreKeyWhisperMessage", "empty")),
            }
            let m = PbPreKeyWhisper::decode(&bytes[1..])
                .map_err(|e| malformed("PreKeyWhisperMessage", e.to_string()))?;
            (
                m.pre_key_id,
                m.signed_pre_key_id,
                m.identity_key,
                m.base_key,
                m.message,
            )
        }
    };
    // OMEMO requires a one-time prekey in every key exchange.
    let pk_id = need(what, "pk_id", pk_id)?;
    let spk_id = need(what, "spk_id", spk_id)?;
    let identity_bytes = need(what, "ik", ik)?;
    let identity = suite.decode_identity(&identity_bytes)?;
    let ek = suite.decode_public("ephemeral key", &need(what, "ek", ek)?)?;
    let message = need(what, "message", message)?;
    Ok(KeyExchange {
        pk_id,
        spk_id,
        identity,
        identity_bytes,
        ek,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_in_both_suites() {
        for suite in Suite::ALL {
            let header = Header {
                dh: [5; 32],
                pn: 0,
                n: 7,
            };
            let signed = encode_signed(suite, &header, b"ciphertext");
            let mac = vec![0xaa; suite.params().mac_len];
            let bytes = frame_message(suite, signed.clone(), &mac);
            let m = decode_message(suite, &bytes).unwrap();
            assert_eq!(m.header, header);
            assert_eq!(m.ciphertext, b"ciphertext");
            assert_eq!(m.signed, signed);
            assert_eq!(m.mac, mac);
        }
    }

    #[test]
    fn zero_counters_are_emitted() {
        // Peers (libsignal, python-omemo) require `pn`/`n` present even when 0.
        let signed = encode_signed(
            Suite::Omemo2,
            &Header {
                dh: [1; 32],
                pn: 0,
                n: 0,
            },
            b"",
        );
        assert!(
            signed.windows(2).any(|w| w == [0x08, 0x00]),
            "n=0 must be encoded"
        );
        assert!(
            signed.windows(2).any(|w| w == [0x10, 0x00]),
            "pn=0 must be encoded"
        );
    }

    #[test]
    fn missing_fields_are_errors() {
        let no_dh = PbOmemoMessage {
            n: Some(1),
            pn: Some(0),
            dh_pub: None,
            ciphertext: Some(vec![1]),
        }
        .encode_to_vec();
        let bytes = frame_message(Suite::Omemo2, no_dh, &[0; 16]);
        assert!(matches!(
            decode_message(Suite::Omemo2, &bytes),
            Err(ProtoError::Malformed { .. })
        ));
        assert!(decode_message(Suite::Legacy, &[0x33]).is_err());
        assert!(decode_message(Suite::Legacy, &[0x23, 0, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
        assert!(decode_kex(Suite::Omemo2, &[]).is_err());
    }
}

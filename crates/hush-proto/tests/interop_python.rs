//! Interoperability with the Python reference implementation (python-omemo's `twomemo` and
//! `oldmemo` backends, `x3dh`, `doubleratchet`, `xeddsa`), in both namespaces and directions.
//!
//! `interop/peer.py` runs as a child process and is driven over JSON lines. It needs the venv
//! that `./scripts/test` creates (`.venv/`, or the interpreter named by `HUSH_PYTHON`); without
//! it this test fails with instructions — it never skips.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use common::Party;
use hush_proto::{sce, Bundle, Element, ProtoError, Session, Suite};
use rand::seq::SliceRandom;
use serde_json::{json, Value};

const PY: &str = "py@example.org";
const HUSH: &str = "hush@example.org";

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("HUSH_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = workspace().join(".venv/bin/python");
    assert!(
        venv.exists(),
        "the interop peers are not installed: run ./scripts/test (it creates .venv with python-omemo), \
         or point HUSH_PYTHON at a Python with interop/requirements.txt installed"
    );
    venv
}

struct PyPeer {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl PyPeer {
    fn start() -> Self {
        let mut child = Command::new(python())
            .arg(workspace().join("interop/peer.py"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the python peer");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Self {
            child,
            stdin,
            stdout,
        }
    }

    fn call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("python peer said {line:?}: {e}"));
        assert_eq!(
            v["ok"],
            json!(true),
            "python peer failed on {req}: {}",
            v["error"]
        );
        v
    }

    fn try_call(&mut self, req: Value) -> Value {
        writeln!(self.stdin, "{req}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap()
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Hush's side: a device plus the SCE handling that belongs to OMEMO:2.
struct Hush {
    party: Party,
    suite: Suite,
}

impl Hush {
    fn send(&mut self, to: &[(&str, u32)], body: Option<&str>) -> String {
        let payload = body.map(|b| match self.suite {
            Suite::Omemo2 => sce::seal(
                &[sce::body(b)],
                HUSH,
                PY,
                Some(1_795_435_200),
                &mut self.party.rng,
            )
            .unwrap(),
            _ => b.as_bytes().to_vec(),
        });
        self.party.send(self.suite, to, payload.as_deref())
    }

    fn receive(&mut self, xml: &str) -> Result<Option<String>, ProtoError> {
        let opened = self.party.receive(PY, xml)?;
        Ok(opened.payload.map(|p| match self.suite {
            Suite::Omemo2 => {
                let env = sce::open(
                    &p,
                    sce::Expect {
                        from: PY,
                        to: HUSH,
                        require_to: true,
                    },
                )
                .unwrap();
                env.content
                    .iter()
                    .find(|c| c.name() == "body")
                    .expect("a body")
                    .text()
            }
            _ => String::from_utf8(p.to_vec()).unwrap(),
        }))
    }
}

fn py_encrypt(py: &mut PyPeer, name: &str, body: Option<&str>) -> String {
    let mut req = json!({"cmd": "encrypt", "name": name, "to": [{"jid": HUSH, "device_id": 2002}]});
    if let Some(b) = body {
        req["body"] = json!(b);
    }
    py.call(req)["xml"].as_str().unwrap().to_owned()
}

fn py_decrypt(py: &mut PyPeer, name: &str, xml: &str) -> Value {
    py.call(json!({"cmd": "decrypt", "name": name, "sender_jid": HUSH, "xml": xml}))
}

fn conversation(suite: Suite) {
    let ns = suite.namespace();
    let mut py = PyPeer::start();
    let mut hush = Hush {
        party: Party::new(HUSH, 2002, 77),
        suite,
    };
    let mut rng = common::rng(4242);
    let hush_bundle = String::from(&hush.party.device.bundle(suite).to_element());

    // Two python devices on one account: p1 is contacted by Hush, p2 contacts Hush.
    let mut py_bundles = Vec::new();
    for (name, id) in [("p1", 1001u32), ("p2", 1003)] {
        let v = py
            .call(json!({"cmd": "new_device", "name": name, "ns": ns, "jid": PY, "device_id": id}));
        py_bundles.push(v["bundle"].as_str().unwrap().to_owned());
        py.call(json!({"cmd": "learn", "name": name, "jid": HUSH, "device_id": 2002, "bundle": hush_bundle}));
    }

    // 1. Hush initiates with p1 from p1's bundle (signature made by the reference, checked by us).
    let bundle = Bundle::from_element(&py_bundles[0].parse::<Element>().unwrap(), 1001).unwrap();
    bundle.verify().unwrap();
    let session =
        Session::initiate(hush.party.device.identity(), &bundle, &mut hush.party.rng).unwrap();
    hush.party.sessions.insert((PY.into(), 1001), session);
    let kexes: Vec<String> = (0..3)
        .map(|i| hush.send(&[(PY, 1001)], Some(&format!("hello p1 #{i}"))))
        .collect();
    for i in [2usize, 0, 1] {
        let v = py_decrypt(&mut py, "p1", &kexes[i]);
        assert_eq!(v["body"], json!(format!("hello p1 #{i}")));
        assert_eq!(v["kex"], json!(true));
    }
    // python-omemo answers a key exchange with an empty message; Hush accepts it silently.
    let empty = py_encrypt(&mut py, "p1", None);
    assert_eq!(hush.receive(&empty).unwrap(), None);
    assert!(hush.party.sessions[&(PY.to_string(), 1001)].is_confirmed());

    // 2. p2 initiates with Hush from Hush's bundle; Hush decrypts its key exchanges out of order.
    let from_p2: Vec<String> = (0..3)
        .map(|i| py_encrypt(&mut py, "p2", Some(&format!("hi from p2 #{i}"))))
        .collect();
    for i in [1usize, 2, 0] {
        assert_eq!(
            hush.receive(&from_p2[i]).unwrap().as_deref(),
            Some(format!("hi from p2 #{i}").as_str())
        );
    }
    assert!(
        hush.party.device.prekey_count() < 30,
        "the consumed prekey was removed"
    );
    let answer = hush.send(&[(PY, 1003)], None);
    assert_eq!(py_decrypt(&mut py, "p2", &answer)["body"], Value::Null);

    // 3. A long conversation: bursts in both directions, shuffled, some held back and delivered
    //    much later (skipped keys), every Hush message encrypted once for both python devices.
    let mut held_for_py: Vec<(String, String)> = Vec::new();
    let mut held_for_hush: Vec<(String, String)> = Vec::new();
    let (mut to_py, mut to_hush) = (0usize, 0usize);
    for round in 0..12 {
        let mut burst: Vec<(String, String)> = (0..6)
            .map(|i| {
                let text = format!("hush round {round} msg {i} ✓");
                (hush.send(&[(PY, 1001), (PY, 1003)], Some(&text)), text)
            })
            .collect();
        burst.shuffle(&mut rng);
        held_for_py.push(burst.pop().unwrap());
        for (xml, text) in &burst {
            for dev in ["p1", "p2"] {
                assert_eq!(py_decrypt(&mut py, dev, xml)["body"], json!(text));
            }
            to_py += 1;
        }
        let sender = if round % 2 == 0 { "p1" } else { "p2" };
        let mut burst: Vec<(String, String)> = (0..6)
            .map(|i| {
                let text = format!("{sender} round {round} msg {i} ☂");
                (py_encrypt(&mut py, sender, Some(&text)), text)
            })
            .collect();
        burst.shuffle(&mut rng);
        held_for_hush.push(burst.pop().unwrap());
        for (xml, text) in &burst {
            assert_eq!(hush.receive(xml).unwrap().as_deref(), Some(text.as_str()));
            to_hush += 1;
        }
    }
    held_for_py.shuffle(&mut rng);
    held_for_hush.shuffle(&mut rng);
    for (xml, text) in &held_for_py {
        for dev in ["p1", "p2"] {
            assert_eq!(py_decrypt(&mut py, dev, xml)["body"], json!(text));
        }
        to_py += 1;
    }
    for (xml, text) in &held_for_hush {
        assert_eq!(hush.receive(xml).unwrap().as_deref(), Some(text.as_str()));
        to_hush += 1;
    }
    assert!(
        to_py >= 70 && to_hush >= 70 && to_py + to_hush >= 140,
        "{to_py} / {to_hush}"
    );

    // 4. Replays are refused on both sides; a tampered reference message is rejected by Hush.
    let (replay, _) = &held_for_hush[0];
    assert!(matches!(
        hush.receive(replay),
        Err(ProtoError::MessageKeyGone { .. })
    ));
    let (replay, _) = &held_for_py[0];
    assert_eq!(
        py.try_call(json!({"cmd": "decrypt", "name": "p1", "sender_jid": HUSH, "xml": replay}))
            ["ok"],
        json!(false)
    );
    let fresh = py_encrypt(&mut py, "p1", Some("untouched"));
    let mut el =
        hush_proto::EncryptedElement::from_element(&fresh.parse::<Element>().unwrap()).unwrap();
    let payload = el.payload.as_mut().unwrap();
    payload[0] ^= 0x80;
    assert!(hush.receive(&String::from(&el.to_element())).is_err());
    assert_eq!(
        hush.receive(&fresh).unwrap().as_deref(),
        Some("untouched"),
        "the genuine message still decrypts"
    );
}

#[test]
fn omemo2_with_twomemo_both_directions() {
    conversation(Suite::Omemo2);
}

#[test]
fn legacy_with_oldmemo_both_directions() {
    conversation(Suite::Legacy);
}

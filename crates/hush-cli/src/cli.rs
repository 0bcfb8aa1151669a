//! The command line: every command, its arguments and its help text (clap).

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "hush",
    version,
    about = "End-to-end encrypted XMPP messaging (OMEMO)"
)]
pub(crate) struct Cli {
    /// Directory holding this account's config and store.
    #[arg(long, global = true, env = "HUSH_HOME")]
    pub(crate) home: Option<std::path::PathBuf>,
    /// Print one JSON object per line.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Read the store passphrase from standard input (default: the environment variable
    /// HUSH_PASSPHRASE, else a prompt on the terminal).
    #[arg(long, global = true, conflicts_with = "passphrase_env")]
    pub(crate) passphrase_stdin: bool,
    /// Read the store passphrase from this environment variable.
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) passphrase_env: Option<String>,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create the account profile and a new device identity, connect, publish device and keys.
    Init {
        /// The account's JID.
        #[arg(long)]
        jid: String,
        /// Server address HOST:PORT (default: the JID's domain, port 5222).
        #[arg(long)]
        server: Option<String>,
        /// Read the XMPP password from standard input.
        #[arg(long, conflicts_with = "password_env")]
        password_stdin: bool,
        /// Read the XMPP password from this environment variable.
        #[arg(long)]
        password_env: Option<String>,
        /// Allow an unencrypted connection, only to 127.0.0.0/8 or ::1 (local test servers).
        #[arg(long)]
        insecure_loopback: bool,
        /// Keep the store unencrypted on disk (no passphrase): keys, messages and the XMPP
        /// password are then protected by file permissions only. Every command warns.
        #[arg(long)]
        unencrypted_store: bool,
    },
    /// Encrypt TEXT for every device of JID and our other devices, and send it. Nothing is
    /// ever sent in clear unless asked for (`--plaintext`, or `hush config --encryption off`).
    Send {
        /// The recipient's bare JID (with `--muc`, the room's).
        jid: String,
        /// The message.
        #[arg(required = true)]
        text: Vec<String>,
        /// Send this message in clear (readable by the servers on the way).
        #[arg(long)]
        plaintext: bool,
        /// JID is a room joined with `hush join`: encrypt for every device of every member.
        #[arg(long)]
        muc: bool,
    },
    /// Share a file with JID: it is encrypted (AES-256-GCM, a fresh key) while it is uploaded
    /// to your server's HTTP upload service, and the link with the key goes in an encrypted
    /// message. The server sees the encrypted file and its size; name, type and hash travel
    /// encrypted.
    SendFile {
        /// The recipient's bare JID (with `--muc`, the room's).
        jid: String,
        /// The file.
        path: std::path::PathBuf,
        /// JID is a room joined with `hush join`.
        #[arg(long)]
        muc: bool,
    },
    /// Download a shared file from its `aesgcm://` link (as `hush recv` or `hush history`
    /// shows it), decrypting and checking it as it streams.
    Fetch {
        /// The `aesgcm://` link.
        link: String,
        /// Save under this name (default: the link's).
        #[arg(long)]
        name: Option<String>,
        /// Where to save it (default: `downloads` in the home directory).
        #[arg(long, value_name = "DIR")]
        downloads: Option<std::path::PathBuf>,
        /// Refuse files larger than this many bytes.
        #[arg(long, value_name = "BYTES", default_value_t = 64 << 30)]
        max_size: u64,
    },
    /// Join ROOM (a XEP-0045 group chat), creating it if it does not exist: Hush creates rooms
    /// members-only and non-anonymous, as OMEMO requires. It stays joined (entered on every
    /// connection) until `hush leave`.
    Join {
        /// The room's bare JID (room@conference.example.org).
        room: String,
        /// The nickname in the room (default: the one used before, else your account's name).
        #[arg(long)]
        nick: Option<String>,
    },
    /// Leave ROOM and forget it (its history stays).
    Leave {
        /// The room.
        room: String,
    },
    /// The rooms joined, with their privacy and member counts (offline, from the store).
    Rooms,
    /// A room's members (offline, from the store), or, as its owner or admin, make an account
    /// a member (`add`) or take its membership away (`remove`).
    Members {
        /// The room.
        room: String,
        #[command(subcommand)]
        action: Option<MembersAction>,
    },
    /// Show or change settings: the global encryption switch, or with JID that
    /// conversation's switch and the authentication it requires.
    Config {
        /// The conversation (default: the global settings).
        jid: Option<String>,
        /// Switch encryption on or off.
        #[arg(long, value_parser = ["on", "off"])]
        encryption: Option<String>,
        /// The authentication every message to JID must reach: `strong` sends only to
        /// verified devices; `weak` also to blindly trusted ones.
        #[arg(long, value_parser = ["weak", "strong"], requires = "jid")]
        require_auth: Option<String>,
        /// Block JID: its messages and key exchanges are ignored.
        #[arg(long, value_parser = ["on", "off"], requires = "jid")]
        blocked: Option<String>,
        /// How new keys start out: `btbv` (blind trust before verification, the default:
        /// trusted until a key of that account is verified), `tofu` (trust on first use: the
        /// devices met first are trusted, later ones wait for a decision) or `manual` (every
        /// new key waits). Without JID the account's model; with JID that contact's
        /// (`account` goes back to the account's). Keys already decided keep their trust.
        #[arg(long, value_parser = ["btbv", "tofu", "manual", "account"])]
        trust_model: Option<String>,
    },
    /// The stored history of a conversation, oldest first: what was sent and received, and
    /// every message that could not be decrypted (offline, from the store).
    History {
        /// The contact.
        jid: String,
        /// At most this many of the latest entries.
        #[arg(long, default_value_t = 50)]
        limit: usize,
    },
    /// The conversation's security properties, who can read it and who could add a reader.
    Status {
        /// The contact.
        jid: String,
    },
    /// Mark a contact's device (id or fingerprint) as verified.
    Trust {
        /// The contact.
        jid: String,
        /// A device id or a fingerprint (as `hush devices` shows it).
        device: String,
    },
    /// Verify devices from a contact's verification URI (QR code or `hush fingerprint`):
    /// `xmpp:JID?omemo-sid-DEVICE=FINGERPRINT`. A different key than the one we hold is
    /// reported as a mismatch and not verified.
    Verify {
        /// The URI.
        uri: String,
    },
    /// Compare seven words with another device instead of fingerprints: `hush sas JID DEVICE`
    /// starts, and the other device runs `hush sas --wait`. When nobody is in between, both
    /// show the same words; answer yes on each device to verify the other (no: nothing is
    /// verified, and the other device is told). Both devices need OMEMO 2.
    Sas {
        /// The account to compare with (with --wait: only its devices).
        jid: Option<String>,
        /// Its device (as `hush devices JID` lists it).
        device: Option<u32>,
        /// Wait for another device to start a comparison with this one.
        #[arg(long, conflicts_with = "device")]
        wait: bool,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// Refuse a contact's device (id or fingerprint): it gets no keys any more.
    Distrust {
        /// The contact.
        jid: String,
        /// A device id or a fingerprint.
        device: String,
    },
    /// Connect, catch up, and print messages as they are decrypted.
    Recv {
        /// Stop once at least this many messages were printed (everything caught up from the
        /// archive is printed, so none is committed unseen).
        #[arg(long)]
        count: Option<usize>,
        /// Stop after this many seconds without a message.
        #[arg(long, default_value_t = 30, conflicts_with = "follow")]
        timeout: u64,
        /// Keep reading until interrupted (Ctrl-C, SIGTERM), like `tail -f`.
        #[arg(long, conflicts_with = "count")]
        follow: bool,
        /// Where files that arrive are saved (default: `downloads` in the home directory).
        #[arg(long, value_name = "DIR")]
        downloads: Option<std::path::PathBuf>,
        /// Files larger than this many bytes are not downloaded by themselves (default 100
        /// MiB); `hush fetch` gets them.
        #[arg(long, value_name = "BYTES")]
        max_download: Option<u64>,
    },
    /// A conversation in the terminal: messages as they arrive (time, sender, device, an
    /// encryption and trust mark; failures in red) while you type; `/help` lists the
    /// commands (trust, verify, status, session reset…). Uses the running agent, or runs one
    /// for as long as the chat lasts.
    Chat {
        /// The contact to talk to (or choose with `/to JID`).
        jid: Option<String>,
    },
    /// Our device and fingerprint, as text and as a verification URI (with the devices of ours
    /// you verified), and with `--qr` as a QR code for another device to scan.
    Fingerprint {
        /// Also draw the URI as a QR code, for a terminal with a `dark` (default) or `light`
        /// background.
        #[arg(long, value_name = "BACKGROUND", num_args = 0..=1, default_missing_value = "dark",
              value_parser = ["dark", "light"])]
        qr: Option<String>,
        /// The URI's form: `omemo` (`omemo-sid-`, read by Conversations, Dino, Gajim, Monal,
        /// Profanity and Hush) or `trust-message` (XEP-0434, read by Kaidan).
        #[arg(long, value_name = "FORM", default_value = "omemo",
              value_parser = ["omemo", "trust-message"])]
        uri: String,
    },
    /// Known devices of a contact (or our own device), with fingerprints and trust.
    Devices {
        /// The contact (default: ourselves).
        jid: Option<String>,
        /// Remove these devices of ours from our published device lists (a lost or
        /// reinstalled device); nobody encrypts to them afterwards. A device still in use adds
        /// itself back when it next connects, as XEP-0384 asks.
        #[arg(long, value_name = "DEVICE", num_args = 1.., conflicts_with = "jid")]
        remove: Vec<u32>,
    },
    /// Contacts (the roster) and presence subscriptions: a contact subscribed both ways sees
    /// you online and gets your device changes as they happen, and you theirs. Without an
    /// action, lists them.
    Contacts {
        #[command(subcommand)]
        action: Option<ContactsAction>,
    },
    /// Session management.
    Session {
        #[command(subcommand)]
        action: SessionAction,
    },
    /// Attestations: OpenPGP and X.509 signatures over a device's identity key, so contacts
    /// who trust the signer verify the device without comparing fingerprints.
    Attest {
        #[command(subcommand)]
        action: AttestAction,
    },
    /// Run the account's agent: it holds the store and the connection, and serves the other
    /// commands (`send` while `recv --follow` runs) and scripts (JSON-RPC 2.0) on the Unix
    /// socket `agent.sock` in the home directory, until interrupted. `lock` and `unlock` talk
    /// to a running one.
    Agent {
        #[command(subcommand)]
        action: Option<AgentAction>,
        /// Ask on this terminal before serving each new connection (naming the process),
        /// like `ssh-add -c`; the answer holds while it stays connected.
        #[arg(long)]
        confirm: bool,
    },
    /// The store on disk.
    Store {
        #[command(subcommand)]
        action: StoreAction,
    },
    /// A walkthrough on a private server inside this process, with nothing to set up: four
    /// devices, an offline one catching up, verification, and a server that tampers.
    #[cfg(feature = "demo")]
    Demo,
}

#[derive(Subcommand)]
pub(crate) enum AgentAction {
    /// Close the running agent's store and connection and forget the passphrase: its keys
    /// leave memory, and it serves nothing until unlocked.
    Lock,
    /// Give the running agent the store passphrase again (from the usual sources: the
    /// terminal, HUSH_PASSPHRASE, --passphrase-env, --passphrase-stdin).
    Unlock,
}

#[derive(Subcommand)]
pub(crate) enum MembersAction {
    /// Make JID a member (its devices get the keys of every message from the next one on).
    Add {
        /// The account.
        jid: String,
        /// Make it an admin (who can add and remove members) instead.
        #[arg(long)]
        admin: bool,
    },
    /// Take JID's affiliation away: its devices get no key from the next message on.
    Remove {
        /// The account.
        jid: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum ContactsAction {
    /// List the contacts, and who asked to see you without being one.
    List,
    /// Add JID: ask to see their presence, and allow them to see yours.
    Add {
        /// The contact.
        jid: String,
    },
    /// Remove JID, and the presence subscriptions both ways.
    Remove {
        /// The contact.
        jid: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum StoreAction {
    /// Encrypt an unencrypted store (made with --unencrypted-store, or by an older hush)
    /// under a new passphrase, and move the XMPP password out of config.json into it.
    Encrypt,
}

#[derive(Subcommand)]
pub(crate) enum AttestAction {
    /// Print this device's statement: the exact bytes to sign (`gpg --detach-sign --armor`,
    /// `openssl dgst -sha256 -sign KEY`, or for Ed25519 `openssl pkeyutl -sign -rawin`).
    Statement,
    /// Publish signatures over the statement with this device's keys.
    Publish {
        /// A detached OpenPGP signature (armored).
        #[arg(long, value_name = "FILE")]
        openpgp: Option<std::path::PathBuf>,
        /// The signing certificate, then any intermediates (PEM).
        #[arg(long, value_name = "FILE", requires = "x509_signature")]
        x509_chain: Option<std::path::PathBuf>,
        /// The certificate key's signature over the statement (raw bytes).
        #[arg(long, value_name = "FILE", requires = "x509_chain")]
        x509_signature: Option<std::path::PathBuf>,
    },
    /// Trust an OpenPGP key (armored) or a certification authority (PEM) to vouch for keys,
    /// or stop trusting one (--remove).
    Anchor {
        /// An OpenPGP public key.
        #[arg(long, value_name = "FILE")]
        openpgp: Option<std::path::PathBuf>,
        /// A certification authority's certificate.
        #[arg(long, value_name = "FILE")]
        x509: Option<std::path::PathBuf>,
        /// Stop trusting this anchor: its id as `hush attest anchors` shows it (an OpenPGP
        /// fingerprint, or a certificate's SHA-256), or its first 8 digits or more.
        #[arg(long, value_name = "ID", conflicts_with_all = ["openpgp", "x509"])]
        remove: Option<String>,
    },
    /// The keys and authorities trusted to vouch, each with its id.
    Anchors,
    /// Read what JID's devices published, and verify each one a trusted signer vouches for.
    Check {
        /// The contact.
        jid: String,
    },
}

#[derive(Subcommand)]
pub(crate) enum SessionAction {
    /// Replace broken sessions with JID (one device or all): the next message starts new ones.
    Reset {
        /// The contact.
        jid: String,
        /// Only this device.
        device: Option<u32>,
    },
}

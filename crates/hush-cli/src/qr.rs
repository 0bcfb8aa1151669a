//! QR codes for the terminal: a verification URI drawn with Unicode half blocks.
//!
//! Comparing fingerprints by eye is slow and error prone; a phone that scans the other
//! device's `xmpp:…?omemo-sid-…=…` URI compares every byte. So we draw that URI as a QR code
//! in plain text, which works over SSH and in any terminal without image support.
//!
//! One text line holds two module rows: the upper module picks `▀`, the lower `▄`, both `█`,
//! neither a space. A terminal cell is about twice as tall as wide, so the modules come out
//! square. Which modules get painted depends on [`Colors`]: on a dark terminal the *light*
//! modules must be painted (the unpainted background is the dark part), as `qrencode -t UTF8`
//! does; on paper the dark ones are.
//!
//! The tests read renderings back with `hush_test_support::qr` (a bitmap decoded by `rqrr`), so
//! the tests check what a scanner would see rather than our own idea of the layout.

use qrcode::bits::Bits;
use qrcode::types::Mode;
use qrcode::{Color, EcLevel, QrCode, Version};

/// Blank modules around the code on every side. The standard asks for 4; phone scanners read
/// 2 without trouble, and on a terminal every module costs space (half a line vertically).
const QUIET_ZONE: usize = 2;

/// The largest QR code version: 177 × 177 modules.
const MAX_VERSION: i16 = 40;

/// Error correction levels to try, best first. M survives a smudge or a reflection; L is the
/// fallback that still fits a URI listing many devices in a code a terminal can show.
const EC_LEVELS: [EcLevel; 2] = [EcLevel::M, EcLevel::L];

/// Why a QR code could not be drawn.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub(crate) enum QrError {
    /// The data exceeds the largest QR code even at the lowest error correction level.
    #[error(
        "{bytes} bytes do not fit in a QR code, even the largest one (version 40) \
         at the lowest error correction level (L)"
    )]
    TooLong {
        /// Length of the data that did not fit, in bytes.
        bytes: usize,
    },
}

/// Which modules are painted with block characters; the others are left as spaces, i.e.
/// the terminal's (or the paper's) background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Colors {
    /// For a terminal with a dark background: light modules are painted, dark ones are
    /// spaces. The usual choice, and what `qrencode -t UTF8` draws.
    LightOnDark,
    /// For a light background, such as print on white paper: dark modules are painted.
    DarkOnLight,
}

impl Colors {
    /// The module color that is painted with block characters.
    fn painted(self) -> Color {
        match self {
            Colors::LightOnDark => Color::Light,
            Colors::DarkOnLight => Color::Dark,
        }
    }
}

/// Draws `data` as a QR code in text: lines of `▀`, `▄`, `█` and spaces, each ending in '\n',
/// all of the same width, with a quiet zone of [`QUIET_ZONE`] modules on every side.
///
/// The data is encoded in byte mode at error correction level M, or L if M does not fit.
pub(crate) fn render(data: &str, colors: Colors) -> Result<String, QrError> {
    let code = encode(data.as_bytes())?;
    Ok(draw(&code, colors))
}

/// Encodes `data` in byte mode in the smallest QR code that fits, at the best level of
/// [`EC_LEVELS`] that fits.
fn encode(data: &[u8]) -> Result<QrCode, QrError> {
    let too_long = || QrError::TooLong { bytes: data.len() };
    let (version, level) = smallest_fit(data.len()).ok_or_else(too_long)?;
    // `smallest_fit` checked the size, so this does not fail; if it did, the data did not fit
    // after all.
    encode_bytes(data, version, level).map_err(|_| too_long())
}

/// Encodes `data` in byte mode as a QR code of `version` at `level`.
///
/// Byte mode throughout, rather than `QrCode::new`'s mix of modes: every scanner reads it,
/// and [`fits`] can size the code without encoding it.
fn encode_bytes(data: &[u8], version: Version, level: EcLevel) -> qrcode::QrResult<QrCode> {
    let mut bits = Bits::new(version);
    bits.push_byte_data(data)?;
    bits.push_terminator(level)?;
    QrCode::with_bits(bits, level)
}

/// The smallest version, at the best level of [`EC_LEVELS`], whose data capacity holds
/// `bytes` bytes in byte mode; `None` if none does.
fn smallest_fit(bytes: usize) -> Option<(Version, EcLevel)> {
    EC_LEVELS.iter().find_map(|&level| {
        (1..=MAX_VERSION)
            .map(Version::Normal)
            .find(|&version| fits(bytes, version, level))
            .map(|version| (version, level))
    })
}

/// Whether `bytes` bytes in byte mode fit the data capacity of `version` at `level`.
fn fits(bytes: usize, version: Version, level: EcLevel) -> bool {
    let Ok(capacity) = Bits::new(version).max_len(level) else {
        return false;
    };
    // Mode indicator (4 bits), the length field, then 8 bits a byte. (The length field, 8 or
    // 16 bits, always holds the count of as many bytes as the capacity leaves room for.)
    let length_bits = Mode::Byte.length_bits_count(version);
    let needed = bytes.saturating_mul(8).saturating_add(4 + length_bits);
    needed <= capacity
}

/// Draws the modules of `code`, quiet zone included, two rows a line.
fn draw(code: &QrCode, colors: Colors) -> String {
    let grid = with_quiet_zone(code);
    let side = grid.len();
    let painted = |row: Option<&Vec<Color>>, x: usize| {
        row.and_then(|row| row.get(x)) == Some(&colors.painted())
    };
    let mut text = String::with_capacity(side.div_ceil(2) * (side * 3 + 1));
    for pair in grid.chunks(2) {
        // With an odd number of rows the last line has no lower row: leave it unpainted.
        let (upper, lower) = (pair.first(), pair.get(1));
        for x in 0..side {
            text.push(half_block(painted(upper, x), painted(lower, x)));
        }
        text.push('\n');
    }
    text
}

/// The modules of `code` as rows, surrounded by [`QUIET_ZONE`] light modules.
fn with_quiet_zone(code: &QrCode) -> Vec<Vec<Color>> {
    let width = code.width();
    let side = width + 2 * QUIET_ZONE;
    let mut grid = vec![vec![Color::Light; side]; side];
    let colors = code.to_colors();
    for (y, row) in colors.chunks(width.max(1)).enumerate() {
        for (x, &color) in row.iter().enumerate() {
            if let Some(cell) = grid
                .get_mut(y + QUIET_ZONE)
                .and_then(|r| r.get_mut(x + QUIET_ZONE))
            {
                *cell = color;
            }
        }
    }
    grid
}

/// The character for one text cell, given whether its upper and lower modules are painted.
fn half_block(upper: bool, lower: bool) -> char {
    match (upper, lower) {
        (true, true) => '█',
        (true, false) => '▀',
        (false, true) => '▄',
        (false, false) => ' ',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads a rendering back as a scanner would (see `hush_test_support::qr`).
    fn read_back(text: &str, colors: Colors) -> Option<String> {
        hush_test_support::qr::read(text, colors == Colors::DarkOnLight)
    }

    /// Which halves of a text cell are painted, `(upper, lower)`.
    fn halves(c: char) -> Option<(bool, bool)> {
        hush_test_support::qr::halves(c)
    }

    /// Both ways of painting.
    const BOTH: [Colors; 2] = [Colors::LightOnDark, Colors::DarkOnLight];

    /// A URI for one device.
    fn short_uri() -> String {
        format!(
            "xmpp:alice@example.org?omemo-sid-123456={}",
            "5f1e".repeat(16)
        )
    }

    /// A URI for eight devices, 64 hex digits each, with a JID of 60 characters.
    fn long_uri() -> String {
        let jid = format!("{}@example.org", "a".repeat(60 - "@example.org".len()));
        assert_eq!(jid.len(), 60);
        let devices: Vec<String> = (0..8u32)
            .map(|i| {
                let sid = 1_000_000_000 + i * 123_456_789;
                let key: String = (0..32u32)
                    .map(|b| format!("{:02x}", (b * 37 + i * 11) % 256))
                    .collect();
                format!("omemo-sid-{sid}={key}")
            })
            .collect();
        format!("xmpp:{jid}?{}", devices.join(";"))
    }

    #[test]
    fn round_trips_short_and_long_uris_in_both_colors() {
        let long = long_uri();
        assert!(long.len() > 650, "long URI is {} bytes", long.len());
        for uri in [short_uri(), long] {
            for colors in BOTH {
                let text = render(&uri, colors).unwrap();
                assert_eq!(
                    read_back(&text, colors).as_deref(),
                    Some(uri.as_str()),
                    "{colors:?}"
                );
            }
        }
    }

    #[test]
    fn lines_are_equally_wide_and_hold_two_rows_each() {
        for uri in [short_uri(), long_uri()] {
            let modules = encode(uri.as_bytes()).unwrap().width();
            let side = modules + 2 * QUIET_ZONE;
            for colors in BOTH {
                let text = render(&uri, colors).unwrap();
                assert!(text.ends_with('\n'));
                let lines: Vec<&str> = text.lines().collect();
                // (modules + 2 × quiet zone + 1) / 2, rounding down.
                assert_eq!(lines.len(), side.div_ceil(2));
                assert_eq!(text.matches('\n').count(), lines.len());
                for line in lines {
                    assert_eq!(line.chars().count(), side);
                }
            }
        }
    }

    #[test]
    fn quiet_zone_is_painted_only_for_dark_terminals() {
        let text = render(&short_uri(), Colors::LightOnDark).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.chars().all(|c| c == '█'), "{first:?}");
        let text = render(&short_uri(), Colors::DarkOnLight).unwrap();
        let first = text.lines().next().unwrap();
        assert!(first.chars().all(|c| c == ' '), "{first:?}");
    }

    #[test]
    fn prefers_level_m_and_falls_back_to_l() {
        let code = encode(long_uri().as_bytes()).unwrap();
        assert_eq!(code.error_correction_level(), EcLevel::M);
        // Version 40 holds 2331 bytes at M and 2953 at L.
        assert_eq!(
            encode(&[b'x'; 2331]).unwrap().error_correction_level(),
            EcLevel::M
        );
        let code = encode(&[b'x'; 2332]).unwrap();
        assert_eq!(code.error_correction_level(), EcLevel::L);
        assert!(encode(&[b'x'; 2953]).is_ok());
        assert_eq!(
            encode(&[b'x'; 2954]).err(),
            Some(QrError::TooLong { bytes: 2954 })
        );
    }

    #[test]
    fn picks_the_smallest_version() {
        // Version 1 at M holds 14 bytes, version 2 at M 26.
        assert_eq!(encode(&[b'x'; 14]).unwrap().version(), Version::Normal(1));
        assert_eq!(encode(&[b'x'; 15]).unwrap().version(), Version::Normal(2));
        assert_eq!(encode(b"").unwrap().version(), Version::Normal(1));
    }

    #[test]
    fn too_long_data_is_an_error() {
        let data = "x".repeat(5000);
        for colors in BOTH {
            assert_eq!(render(&data, colors), Err(QrError::TooLong { bytes: 5000 }));
        }
        let message = QrError::TooLong { bytes: 5000 }.to_string();
        assert!(
            message.contains("5000 bytes") && message.contains("(L)"),
            "{message}"
        );
        assert!(!fits(usize::MAX, Version::Normal(40), EcLevel::L));
    }

    #[test]
    fn a_changed_character_never_decodes_to_other_text() {
        let mut corrected = 0;
        for uri in [short_uri(), long_uri()] {
            for colors in BOTH {
                let text = render(&uri, colors).unwrap();
                let lines: Vec<Vec<char>> = text.lines().map(|l| l.chars().collect()).collect();
                let (height, width) = (lines.len(), lines[0].len());
                let positions = [
                    (height / 2, width / 2),
                    (height / 2, width / 3),
                    (height / 3, width / 2),
                    (height * 2 / 3, width * 2 / 3),
                    (height / 2 + 1, width / 2 - 3),
                ];
                for (y, x) in positions {
                    let mut changed = lines.clone();
                    // Flip both modules of the cell: the largest change one character can make.
                    let (upper, lower) = halves(changed[y][x]).unwrap();
                    changed[y][x] = half_block(!upper, !lower);
                    let changed: String = changed
                        .iter()
                        .map(|line| line.iter().collect::<String>() + "\n")
                        .collect();
                    if let Some(decoded) = read_back(&changed, colors) {
                        assert_eq!(decoded, uri, "{colors:?} at line {y}, column {x}");
                        corrected += 1;
                    }
                }
            }
        }
        // Error correction repairs two modules: if nothing decoded, `read_back` is broken and
        // the loop above proved nothing.
        assert!(corrected > 0);
    }

    #[test]
    fn read_back_rejects_what_is_not_a_rendering() {
        for colors in BOTH {
            assert_eq!(read_back("", colors), None);
            assert_eq!(read_back("hello\n", colors), None);
            assert_eq!(read_back("██\n█\n", colors), None);
            assert_eq!(read_back("████\n████\n████\n", colors), None);
            assert_eq!(read_back("████\n████\n", colors), None);
            assert_eq!(read_back("██\n██\n", colors), None);
        }
    }

    #[test]
    fn read_back_needs_the_matching_colors() {
        let text = render(&short_uri(), Colors::LightOnDark).unwrap();
        assert_eq!(read_back(&text, Colors::DarkOnLight), None);
    }
}

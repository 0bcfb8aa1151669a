//! QR codes drawn as text, read back as a phone would: the module grid rebuilt from the half
//! blocks, scaled into a greyscale bitmap and decoded by `rqrr`, an independent decoder. Tests
//! of `hush fingerprint --qr` check what a scanner sees, not our own idea of the layout.

/// Which halves of a text cell are painted, `(upper, lower)`; `None` for any other character.
pub fn halves(c: char) -> Option<(bool, bool)> {
    match c {
        '█' => Some((true, true)),
        '▀' => Some((true, false)),
        '▄' => Some((false, true)),
        ' ' => Some((false, false)),
        _ => None,
    }
}

/// Pixels a module in the bitmap handed to the decoder.
const PIXELS_PER_MODULE: usize = 4;

/// White modules around the rendering in that bitmap, on top of its own quiet zone: the
/// decoder gets a comfortable margin, as a scanner would from a screen's surroundings.
const BITMAP_MARGIN: usize = 4;

/// Reads a text rendering of a QR code (half blocks, as `hush fingerprint --qr` draws it) back
/// like a scanner would: `painted_is_dark` says whether the block characters are the dark
/// modules (drawn for a light background) or the light ones (for a dark terminal). It
/// rebuilds the module grid, scales it into a greyscale bitmap and decodes that with `rqrr`.
/// `None` if the text is not such a rendering or holds no readable code.
pub fn read(text: &str, painted_is_dark: bool) -> Option<String> {
    let dark = dark_modules(text, painted_is_dark)?;
    let side = dark.len();
    let bitmap_side = (side + 2 * BITMAP_MARGIN) * PIXELS_PER_MODULE;
    let module_is_dark = |x: usize, y: usize| {
        let mx = (x / PIXELS_PER_MODULE).checked_sub(BITMAP_MARGIN)?;
        let my = (y / PIXELS_PER_MODULE).checked_sub(BITMAP_MARGIN)?;
        dark.get(my)?.get(mx).copied()
    };
    let mut image =
        rqrr::PreparedImage::prepare_from_greyscale(bitmap_side, bitmap_side, |x, y| {
            if module_is_dark(x, y) == Some(true) {
                0
            } else {
                255
            }
        });
    image
        .detect_grids()
        .iter()
        .find_map(|grid| grid.decode().ok())
        .map(|(_meta, content)| content)
}

/// The square module grid of a rendering, `true` for dark; `None` if a character is not a
/// half block, the lines differ in width, or their number does not make a square.
fn dark_modules(text: &str, painted_is_dark: bool) -> Option<Vec<Vec<bool>>> {
    let mut rows = Vec::new();
    for line in text.lines() {
        let cells = line.chars().map(halves).collect::<Option<Vec<_>>>()?;
        rows.push(
            cells
                .iter()
                .map(|&(upper, _)| upper == painted_is_dark)
                .collect(),
        );
        rows.push(
            cells
                .iter()
                .map(|&(_, lower)| lower == painted_is_dark)
                .collect(),
        );
    }
    let side = rows.first().map(Vec::len)?;
    let square = rows.len() == side.div_ceil(2) * 2;
    if side == 0 || !square || rows.iter().any(|row| row.len() != side) {
        return None;
    }
    // An odd side leaves an unpainted half row below the code: it is not part of it.
    rows.truncate(side);
    Some(rows)
}

//! A name to save a received file under, whatever its sender wrote.

/// The most bytes a saved name may take (file systems allow 255; room is left for ` (n)`).
const MAX_NAME_BYTES: usize = 200;

/// `claimed` (a sender's file name, or the last part of a URL) reduced to one safe path
/// component: no directories, nothing starting with a dot or a space (hidden files, `.`,
/// `..`), no control or separator characters, at most 200 bytes (cut at a character
/// boundary, the extension kept); `fallback` when nothing usable is left.
pub fn safe_file_name(claimed: &str, fallback: &str) -> String {
    let last = claimed.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = last
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let trimmed = cleaned
        .trim_start_matches(|c: char| c == '.' || c.is_whitespace())
        .trim_end();
    let short = shorten(trimmed);
    if short.is_empty() || short == "." || short == ".." {
        fallback.to_owned()
    } else {
        short
    }
}

/// `name` within [`MAX_NAME_BYTES`], keeping a short extension.
fn shorten(name: &str) -> String {
    if name.len() <= MAX_NAME_BYTES {
        return name.to_owned();
    }
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e)
        .filter(|e| !e.is_empty() && e.len() <= 16);
    let room = MAX_NAME_BYTES - ext.map_or(0, |e| e.len() + 1);
    let mut stem = String::with_capacity(room);
    for c in name.chars() {
        if stem.len() + c.len_utf8() > room {
            break;
        }
        stem.push(c);
    }
    match ext {
        Some(ext) => format!("{stem}.{ext}"),
        None => stem,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_leave_the_directory_or_hide() {
        assert_eq!(safe_file_name("photo.jpg", "f"), "photo.jpg");
        assert_eq!(safe_file_name("../../etc/passwd", "f"), "passwd");
        assert_eq!(safe_file_name("..", "f"), "f");
        assert_eq!(safe_file_name(".bashrc", "f"), "bashrc");
        assert_eq!(safe_file_name(". .bashrc", "f"), "bashrc");
        assert_eq!(safe_file_name(". ..", "f"), "f");
        assert_eq!(safe_file_name(" .profile", "f"), "profile");
        assert_eq!(safe_file_name("a\\b\\c.txt", "f"), "c.txt");
        assert_eq!(safe_file_name("x\u{1b}[31m.txt", "f"), "x_[31m.txt");
        assert_eq!(safe_file_name("", "f"), "f");
    }

    #[test]
    fn long_names_fit_a_file_system_and_keep_their_extension() {
        let latin = safe_file_name(&format!("{}.pdf", "a".repeat(500)), "f");
        assert!(latin.len() <= 200 && latin.ends_with(".pdf"), "{latin}");
        // Three bytes a character: 120 characters would be 360 bytes.
        let cjk = safe_file_name(&format!("{}.jpg", "写".repeat(150)), "f");
        assert!(cjk.len() <= 200 && cjk.ends_with(".jpg"), "{cjk}");
        assert!(cjk.starts_with('写'));
    }
}

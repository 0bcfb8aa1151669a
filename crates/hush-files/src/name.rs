//! A name to save a received file under, whatever its sender wrote.

/// `claimed` (a sender's file name, or the last part of a URL) reduced to one safe path
/// component: no directories, no leading dots (hidden files, `..`), no control or
/// separator characters, at most 120 characters; `fallback` when nothing usable is left.
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
    let trimmed = cleaned.trim().trim_start_matches('.').trim();
    let short: String = trimmed.chars().take(120).collect();
    if short.is_empty() {
        fallback.to_owned()
    } else {
        short
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
        assert_eq!(safe_file_name("a\\b\\c.txt", "f"), "c.txt");
        assert_eq!(safe_file_name("x\u{1b}[31m.txt", "f"), "x_[31m.txt");
        assert_eq!(safe_file_name("", "f"), "f");
        assert_eq!(safe_file_name(&"a".repeat(500), "f").len(), 120);
    }
}

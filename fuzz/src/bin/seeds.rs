//! Writes the seed corpus of every target into the directory given (`fuzz/corpus` by
//! `scripts/fuzz --seeds`): real inputs made by the fixture, `seed-NN` in each target's
//! directory (what libFuzzer finds beside them is named by its hash).

use std::path::PathBuf;

fn main() -> std::io::Result<()> {
    let root = PathBuf::from(std::env::args().nth(1).unwrap_or_else(|| "corpus".into()));
    for target in hush_fuzz::TARGETS {
        let dir = root.join(target);
        std::fs::create_dir_all(&dir)?;
        for (i, seed) in hush_fuzz::seeds_of(target).iter().enumerate() {
            std::fs::write(dir.join(format!("seed-{i:02}")), seed)?;
        }
        println!("{target}: {} seeds", hush_fuzz::seeds_of(target).len());
    }
    Ok(())
}

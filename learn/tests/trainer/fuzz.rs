//! Fuzzing what a resume reads: `meta.json` and the weight files of a checkpoint, damaged in any
//! way (random text, flipped bytes, cut short, grown). A resume either gives a trainer or a clear
//! error; it never panics. Runs a bounded number of cases in `cargo test`
//! (`BOLERO_RANDOM_ITERATIONS` raises it), and for hours with `cargo bolero test` (docs/fuzzing.md).

use std::path::Path;

use bolero::TypeGenerator;

use super::*;

/// One way to damage a checkpoint file.
#[derive(Debug, Clone, TypeGenerator)]
enum Damage {
    /// Replace the file with these bytes.
    Replace(Vec<u8>),
    /// XOR the byte at this position (modulo the length) with a non-zero mask.
    Flip { at: u32, mask: u8 },
    /// Keep this fraction (in 1/256ths) of the file.
    Cut(u8),
    /// Append these bytes.
    Grow(Vec<u8>),
    /// Replace a JSON number or string in `meta.json` with this text.
    MetaValue { nth: u8, with: String },
}

fn damage(path: &Path, how: &Damage) {
    let mut bytes = std::fs::read(path).expect("read");
    match how {
        Damage::Replace(new) => bytes = new.clone(),
        Damage::Flip { at, mask } => {
            if !bytes.is_empty() {
                let at = *at as usize % bytes.len();
                bytes[at] ^= mask.max(&1);
            }
        }
        Damage::Cut(keep) => bytes.truncate(bytes.len() * usize::from(*keep) / 256),
        Damage::Grow(more) => bytes.extend_from_slice(more),
        Damage::MetaValue { nth, with } => {
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // The nth value after a `:` in the JSON text.
            let colons: Vec<usize> = text.match_indices(':').map(|(i, _)| i).collect();
            if let Some(&colon) = colons.get(usize::from(*nth) % colons.len().max(1)) {
                let end = text[colon + 1..]
                    .find([',', '}'])
                    .map_or(text.len(), |i| colon + 1 + i);
                bytes = format!("{}{}{}", &text[..=colon], with, &text[end..]).into_bytes();
            }
        }
    }
    std::fs::write(path, bytes).expect("write");
}

#[test]
fn fuzz_damaged_checkpoints_resume_or_are_refused_with_an_error() {
    let _serial = serial();
    let scratch = tempfile::tempdir().expect("tempdir");
    let good = scratch.path().join("good");
    let trainer = filled_trainer(small_config(5));
    trainer.save_checkpoint(&good).expect("save");
    let files = ["meta.json", "model.bpk", "target.bpk", "optimizer.bin"];
    let work = scratch.path().join("work");
    bolero::check!()
        .with_iterations(300)
        .with_type::<(u8, Damage)>()
        .for_each(|(file, how)| {
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir(&work).expect("work dir");
            for name in files {
                std::fs::copy(good.join(name), work.join(name)).expect("copy");
            }
            damage(&work.join(files[usize::from(*file) % files.len()]), how);
            match Trainer::resume(&work, None) {
                Ok(resumed) => assert_eq!(resumed.config().model.embed_dim(), 32),
                Err(error) => assert!(!error.to_string().is_empty()),
            }
        });
}

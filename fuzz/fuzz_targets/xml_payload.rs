//! The bounded XML parser that reads every decrypted payload (SCE envelopes): no input may get
//! a tree past its limits, and none may panic, recurse without bound or hang.
#![no_main]

use hush_proto::bounded_xml::{self, Limits};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let tight = Limits {
        max_bytes: 4096,
        max_depth: 8,
        max_elements: 64,
        max_attributes: 64,
        max_text_nodes: 64,
    };
    for limits in [&tight, &hush_fuzz::STANZA_LIMITS] {
        if let Ok(tree) = bounded_xml::parse(data, limits) {
            // What was built stays inside the limits, and serialises again.
            let depth = depth(&tree);
            assert!(
                depth <= limits.max_depth,
                "depth {depth} over {}",
                limits.max_depth
            );
            // And it is written out as XML that reads back as the same tree (escaping may make
            // the text longer than the input).
            let written = String::from(&tree);
            let roomy = Limits {
                max_bytes: usize::MAX,
                ..*limits
            };
            let again = bounded_xml::parse(written.as_bytes(), &roomy)
                .expect("what parse built is written out as XML it reads");
            assert_eq!(
                again, tree,
                "written out and read back, the tree is the same"
            );
        }
    }
});

fn depth(e: &hush_proto::Element) -> usize {
    // Iterative, so a deep tree cannot overflow the fuzzer's own stack either.
    let mut deepest = 0;
    let mut stack = vec![(e, 1)];
    while let Some((e, d)) = stack.pop() {
        deepest = deepest.max(d);
        stack.extend(e.children().map(|c| (c, d + 1)));
    }
    deepest
}

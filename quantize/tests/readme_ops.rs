//! The README's operator table is the importer's op table, word for word.

const BEGIN: &str = "<!-- ops: begin (quantize::onnx::supported_ops_table) -->\n";
const END: &str = "<!-- ops: end -->";

#[test]
fn readme_lists_exactly_the_op_table() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md");
    let readme = std::fs::read_to_string(path).unwrap();
    let want = quantize::onnx::supported_ops_table();
    let got = readme
        .split_once(BEGIN)
        .and_then(|(_, rest)| rest.split_once(END))
        .map(|(table, _)| table);
    assert_eq!(
        got,
        Some(want.as_str()),
        "README.md's operator table differs from the op table; put this between the markers:\n{BEGIN}{want}{END}"
    );
}

//! Embeds `openapi.json` minified: the source stays readable, the wasm carries no white space.

fn main() {
    println!("cargo:rerun-if-changed=openapi.json");
    let text = std::fs::read_to_string("openapi.json").expect("functions/openapi.json is readable");
    let doc: serde_json::Value = serde_json::from_str(&text).expect("functions/openapi.json is valid JSON");
    let out = std::path::Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("openapi.min.json");
    std::fs::write(out, serde_json::to_string(&doc).expect("a JSON value serializes")).expect("OUT_DIR is writable");
}

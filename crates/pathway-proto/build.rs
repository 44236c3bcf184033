//! Compiles `proto/` with a pure-Rust protobuf compiler (protox), so a bare
//! machine with only cargo can build Pathway, and generates `Event::event_type`
//! from the `Event.kind` oneof so the name table can never drift from the schema.

use std::{env, fmt::Write as _, fs, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let root = root.canonicalize()?;
    let dir = root.join("pathway/events/v1");
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|x| x == "proto"));
    files.sort();
    println!("cargo:rerun-if-changed={}", root.display());
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }

    let fds = protox::compile(&files, [&root])?;

    // The oneof variants of `Event`, in field order, for the name table.
    let event = fds
        .file
        .iter()
        .filter(|f| f.package() == "pathway.events.v1")
        .flat_map(|f| f.message_type.iter())
        .find(|m| m.name() == "Event")
        .ok_or("message pathway.events.v1.Event not found")?;
    let mut table = String::from(
        "impl event::Kind {\n    /// The event type name stored in the envelope, e.g. `PersonRegistered`.\n    pub fn event_type(&self) -> &'static str {\n        match self {\n",
    );
    let mut names = String::from(
        "/// Every event type name, in field-number order.\npub const EVENT_TYPES: &[&str] = &[\n",
    );
    for field in &event.field {
        let ty = field.type_name().rsplit('.').next().unwrap_or_default();
        writeln!(table, "            event::Kind::{ty}(_) => \"{ty}\",")?;
        writeln!(names, "    \"{ty}\",")?;
    }
    table.push_str("        }\n    }\n}\n");
    names.push_str("];\n");
    let out = PathBuf::from(env::var("OUT_DIR")?);
    fs::write(out.join("event_types.rs"), format!("{table}\n{names}"))?;

    // The descriptor set, for tests that check the schema by reflection.
    fs::write(
        out.join("descriptor_set.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;

    let mut config = prost_build::Config::new();
    config.compile_fds(fds)?;
    Ok(())
}

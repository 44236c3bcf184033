//! Compiles `proto/` with a pure-Rust protobuf compiler (protox), so a bare
//! machine with only cargo can build Pathway, and generates `Event::event_type`
//! from the `Event.kind` oneof so the name table can never drift from the schema.
//! With feature `grpc`, also the gRPC API of `proto/pathway/api/v1`.

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

    compile_published(&root, &out)?;
    if env::var_os("CARGO_FEATURE_GRPC").is_some() {
        compile_api(&root)?;
    }
    Ok(())
}

/// The gRPC API (`pathway.api.v1`, feature `grpc`): messages with prost and
/// the `Pathway` service's server and client with tonic, from the same
/// protox descriptor set, so no `protoc` is needed.
#[cfg(feature = "grpc")]
fn compile_api(root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    let dir = root.join("pathway/api/v1");
    for entry in fs::read_dir(&dir)? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "proto") {
            println!("cargo:rerun-if-changed={}", path.display());
            files.push(path);
        }
    }
    files.sort();
    let fds = protox::compile(&files, [root])?;
    // Messages and the server. A request that does not decode is answered
    // INVALID_ARGUMENT by `codec::StrictProstCodec` (tonic's codec says
    // INTERNAL).
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(false)
        .codec_path("crate::codec::StrictProstCodec")
        .compile_fds(fds.clone())?;
    // The client, with tonic's codec, into its own file: the messages are
    // the ones generated above.
    let client = PathBuf::from(env::var("OUT_DIR")?).join("client");
    fs::create_dir_all(&client)?;
    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        .extern_path(".pathway.api.v1", "crate::api::v1")
        .out_dir(&client)
        .compile_fds(fds)?;
    Ok(())
}

#[cfg(not(feature = "grpc"))]
fn compile_api(_root: &std::path::Path) -> Result<(), Box<dyn std::error::Error>> {
    Ok(())
}

/// The messages Pathway publishes to other agencies and receives from them:
/// department views (`pathway.views.v1`) and the graduate exchange
/// (`pathway.exchange.v1`). Compiled apart from the events so their
/// descriptor set (`published_descriptor_set.bin`) holds only them.
fn compile_published(
    root: &std::path::Path,
    out: &std::path::Path,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut files = Vec::new();
    for dir in ["pathway/views/v1", "pathway/exchange/v1"] {
        let dir = root.join(dir);
        if !dir.exists() {
            continue;
        }
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            if path.extension().is_some_and(|x| x == "proto") {
                println!("cargo:rerun-if-changed={}", path.display());
                files.push(path);
            }
        }
    }
    files.sort();
    let fds = protox::compile(&files, [root])?;
    fs::write(
        out.join("published_descriptor_set.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    prost_build::Config::new().compile_fds(fds)?;
    Ok(())
}

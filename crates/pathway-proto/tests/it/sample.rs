//! Sample messages built by reflection from a compiled schema: every field set
//! to a value derived from its field number, so the encoded bytes depend on
//! every field's number and type. Shared by the event fixtures and the
//! published-message fixtures.

use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};

/// A deterministic value for a field of `kind`, derived from its number.
pub(crate) fn value_for(kind: &Kind, number: u32, name: &str, depth: u32) -> Value {
    let n = number as i64;
    match kind {
        Kind::Double => Value::F64(n as f64 + 0.5),
        Kind::Float => Value::F32(n as f32 + 0.5),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(2000 + number as i32),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => Value::I64(1_000_000 + n),
        Kind::Uint32 | Kind::Fixed32 => Value::U32(number % 12 + 1),
        Kind::Uint64 | Kind::Fixed64 => Value::U64(100 + n as u64),
        Kind::Bool => Value::Bool(true),
        Kind::String => Value::String(format!("{name}-{number}")),
        Kind::Bytes => Value::Bytes(vec![number as u8; 4].into()),
        Kind::Enum(e) => Value::EnumNumber(
            e.values()
                .map(|v| v.number())
                .find(|&v| v != 0)
                .unwrap_or(0),
        ),
        Kind::Message(m) => Value::Message(sample(m, depth + 1, None)),
    }
}

/// A message with every field set; of each oneof, `member` if it belongs to
/// it, else the first member.
pub(crate) fn sample(desc: &MessageDescriptor, depth: u32, member: Option<u32>) -> DynamicMessage {
    assert!(
        depth < 8,
        "message nesting too deep in {}",
        desc.full_name()
    );
    let mut msg = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        if let Some(oneof) = field.containing_oneof() {
            let numbers: Vec<u32> = oneof.fields().map(|f| f.number()).collect();
            let chosen = member
                .filter(|m| numbers.contains(m))
                .or(numbers.first().copied());
            if chosen != Some(field.number()) {
                continue;
            }
        }
        let value = value_for(&field.kind(), field.number(), field.name(), depth);
        if field.is_list() {
            msg.set_field(&field, Value::List(vec![value]));
        } else {
            msg.set_field(&field, value);
        }
    }
    msg
}

/// Every enum of `pool` starts with a `*_UNSPECIFIED` zero value.
pub(crate) fn assert_enums_start_unspecified(pool: &DescriptorPool) {
    for e in pool.all_enums() {
        let zero = e
            .get_value(0)
            .unwrap_or_else(|| panic!("{} has no zero value", e.full_name()));
        assert!(
            zero.name().ends_with("_UNSPECIFIED"),
            "{}: zero value is {}",
            e.full_name(),
            zero.name()
        );
    }
}

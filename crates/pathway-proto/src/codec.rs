//! The codec of the gRPC server (feature `grpc`): tonic's prost codec, except
//! that a request that does not decode as its message is the caller's
//! mistake, answered `INVALID_ARGUMENT` (with metadata `pathway-error:
//! malformed`, as every refusal of the API) instead of tonic's `INTERNAL`.
//! The generated server uses it (`codec_path` in build.rs); the generated
//! client keeps tonic's codec.

use std::marker::PhantomData;

use prost::Message;
use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
    metadata::MetadataValue,
};
use tonic_prost::{ProstCodec, ProstEncoder};

/// [`ProstCodec`] whose decoder refuses undecodable bytes with
/// `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U> {
    inner: ProstCodec<T, U>,
}

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        StrictProstCodec {
            inner: ProstCodec::default(),
        }
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = StrictProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        self.inner.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictProstDecoder::default()
    }
}

/// Decodes `U`; bytes that are not a `U` are `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct StrictProstDecoder<U> {
    _message: PhantomData<U>,
    buffer_settings: BufferSettings,
}

impl<U> Default for StrictProstDecoder<U> {
    fn default() -> Self {
        StrictProstDecoder {
            _message: PhantomData,
            buffer_settings: BufferSettings::default(),
        }
    }
}

impl<U: Message + Default> Decoder for StrictProstDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(src).map(Some).map_err(|e| not_a_valid::<U>(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.buffer_settings
    }
}

/// `INVALID_ARGUMENT`: "request is not a valid `<Message>` protobuf message: …".
fn not_a_valid<U>(error: &prost::DecodeError) -> Status {
    let name = message_name::<U>();
    let mut status = Status::invalid_argument(format!(
        "request is not a valid {name} protobuf message: {error}"
    ));
    status
        .metadata_mut()
        .insert("pathway-error", MetadataValue::from_static("malformed"));
    status
}

/// The message's name without its module path, e.g. `SubmitCommandRequest`.
fn message_name<U>() -> &'static str {
    let path = std::any::type_name::<U>();
    // Generic messages do not occur; a plain path's last segment is the name.
    path.rsplit("::").next().unwrap_or(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_message_and_the_decode_error() {
        let error = prost_types::Timestamp::decode(&b"\xff\xff\xff"[..]).expect_err("garbage");
        let status = not_a_valid::<prost_types::Timestamp>(&error);
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("request is not a valid Timestamp protobuf message: "),
            "{}",
            status.message()
        );
        assert_eq!(
            status.metadata().get("pathway-error").map(|v| v.as_bytes()),
            Some(&b"malformed"[..])
        );
    }
}

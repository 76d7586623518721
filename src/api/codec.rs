//! The prost codec, with one change: a request that is not valid protobuf
//! (truncated, wrong wire types, malformed UTF-8 in a string field) is the
//! caller's fault, so it is refused with `INVALID_ARGUMENT` rather than the
//! `INTERNAL` that tonic-prost reports.

use tonic::{
    Status,
    codec::{BufferSettings, Codec, DecodeBuf, Decoder},
};
use tonic_prost::ProstCodec;

/// Drop-in for `tonic_prost::ProstCodec` (set in `build.rs`).
#[derive(Debug, Clone)]
pub struct StrictProstCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for StrictProstCodec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> Codec for StrictProstCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = <ProstCodec<T, U> as Codec>::Encoder;
    type Decoder = StrictDecoder<<ProstCodec<T, U> as Codec>::Decoder>;

    fn encoder(&mut self) -> Self::Encoder {
        self.0.encoder()
    }

    fn decoder(&mut self) -> Self::Decoder {
        StrictDecoder(self.0.decoder())
    }
}

/// Wraps a decoder and reports its failures as `INVALID_ARGUMENT`.
#[derive(Debug)]
pub struct StrictDecoder<D>(D);

impl<D: Decoder<Error = Status>> Decoder for StrictDecoder<D> {
    type Item = D::Item;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Self::Item>, Status> {
        self.0.decode(buf).map_err(|status| {
            Status::invalid_argument(format!("malformed protobuf message: {}", status.message()))
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        self.0.buffer_settings()
    }
}

//! Fuzzes the IOCTL protocol the way civ.sys meets it: arbitrary bytes as
//! the input of every IOCTL code civ answers (and one it does not), served
//! by the engine into output buffers of several sizes, and every reply
//! decoder civctl uses. Nothing may panic; a request that decodes must
//! encode back to the same bytes; a reply the service writes must decode.
#![no_main]

use civ_engine::protocol::{self, Kind, Reply, Request};
use civ_engine::serve;
use libfuzzer_sys::fuzz_target;
use std::hint::black_box;

fuzz_target!(|data: &[u8]| {
    // civctl's side: any bytes as a reply.
    let _ = black_box(Reply::decode(data));
    let _ = black_box(protocol::decode_reply_version(data));
    let _ = black_box(protocol::decode_reply_status(data));
    let _ = black_box(protocol::decode_reply_sites(data));
    let _ = black_box(protocol::decode_reply_events(data));
    for kind in Kind::ALL {
        let _ = black_box(protocol::decode_reply_ack(kind, data));
    }

    // The driver's side: any bytes as a request.
    if let Ok(request) = Request::decode(data) {
        let mut again = vec![0u8; request.encoded_len().expect("a decoded request has a length")];
        let n = request.encode(&mut again).expect("a decoded request encodes");
        assert_eq!(&again[..n], data, "decode then encode changed the request");
    }
    let codes = Kind::ALL.iter().map(|k| k.ioctl()).chain([0x0022_3FFC]);
    for code in codes {
        for size in [0usize, 4, 16, 40, 200, 4096] {
            let mut out = vec![0u8; size];
            let answer = serve::handle(code, data, &mut out);
            assert!(answer.bytes <= size, "wrote past the output buffer");
            if answer.status == protocol::STATUS_SUCCESS && answer.bytes > 0 {
                // What the driver writes, civctl can read.
                if let Err(e) = Reply::decode(&out[..answer.bytes]) {
                    panic!("the service wrote an undecodable reply ({e}) to {code:#x}");
                }
            }
        }
    }
});

//! Job bodies: `POST /v1/jobs` (`EnqueueRequest`), `POST /v1/jobs/batch`
//! (`BatchEnqueueRequest`), `POST /v1/batches` (`BatchRequest`) and
//! `POST /v1/batches/{id}/jobs` (`BatchJobsRequest`), read as the server reads every body
//! (`errand_server::parse_json_body`: UTF-8, serde_json, strict shapes, the field named),
//! then checked with the server's limits as the route does.
//!
//! Input: the first byte picks the body; the rest is the body. Properties: nothing panics;
//! an enqueue request that is accepted, written back as JSON, reads as the same request
//! and is accepted again.
#![no_main]

use errand_api::{
    BatchEnqueueRequest, BatchJobsRequest, BatchRequest, EnqueueLimits, EnqueueRequest,
};
use errand_core::BatchId;
use errand_server::parse_json_body;
use libfuzzer_sys::fuzz_target;

const LIMITS: EnqueueLimits = EnqueueLimits {
    max_payload_bytes: 1024 * 1024,
};

fuzz_target!(|data: &[u8]| {
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => {
            let Ok(req) = parse_json_body::<EnqueueRequest>(body) else {
                return;
            };
            if req.clone().into_new_job(&LIMITS).is_ok() {
                let written = serde_json::to_vec(&req).expect("a request serialises");
                let back = parse_json_body::<EnqueueRequest>(&written).unwrap_or_else(|e| {
                    panic!(
                        "{} does not read back: {e:?}",
                        String::from_utf8_lossy(&written)
                    )
                });
                assert_eq!(back, req);
                if let Err(e) = back.into_new_job(&LIMITS) {
                    panic!("accepted once, refused written back: {e:?}");
                }
            }
        }
        1 => {
            if let Ok(req) = parse_json_body::<BatchEnqueueRequest>(body) {
                let _ = req.into_new_jobs(&LIMITS);
            }
        }
        2 => {
            if let Ok(req) = parse_json_body::<BatchRequest>(body) {
                let _ = req.into_batch(&LIMITS);
            }
        }
        _ => {
            if let Ok(req) = parse_json_body::<BatchJobsRequest>(body) {
                let _ = req.into_jobs(BatchId::new(), &LIMITS);
            }
        }
    }
});

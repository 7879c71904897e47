/* bxflow CPU engine: C API. Bit-exact fixed-point inference of a quantized
 * network (a .bxq from `bxflow quantize`), single event, batch, and a
 * streaming pipeline with in-order results. The default library reads .bxq
 * only (no ONNX importer, so it stays small): bxflow_engine_open on an .onnx
 * fails with a message saying to quantize it first, unless the library was
 * built with the `onnx` feature (cargo build -p bxflow-capi --features onnx).
 *
 * Build: cargo build --profile capi -p bxflow-capi (whole-program LTO, a
 * small library), then link target/capi/libbxflow.a (or libbxflow.so) plus
 * -lpthread -ldl -lm.
 * Errors: functions return a negative BXFLOW_ERR_* code (or NULL) and leave a
 * message for bxflow_last_error() on the calling thread.
 * Kept in sync with capi/src/lib.rs by capi/tests/capi.rs. */
#ifndef BXFLOW_H
#define BXFLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define BXFLOW_OK 0
#define BXFLOW_END 1
#define BXFLOW_EMPTY 2
#define BXFLOW_DROPPED 3 /* push under the drop policy: the event was refused (counted in dropped) */
#define BXFLOW_ERR_NULL (-1)
#define BXFLOW_ERR_LENGTH (-2)
#define BXFLOW_ERR_INPUT (-3)
#define BXFLOW_ERR_IO (-4)
#define BXFLOW_ERR_CLOSED (-5)
#define BXFLOW_ERR_WORKER (-6)
#define BXFLOW_ERR_PANIC (-7)
#define BXFLOW_ERR_LIMIT (-8) /* an argument over its documented limit */

typedef struct BxflowEngine bxflow_engine;
typedef struct BxflowPipeline bxflow_pipeline;

typedef struct bxflow_stats {
    uint64_t pushed;
    uint64_t dropped;
    uint64_t processed;
    uint64_t failed;
    uint64_t delivered;
    uint64_t in_flight;
    uint64_t latency_p50_ns;
    uint64_t latency_p99_ns;
    uint64_t latency_p999_ns;
    uint64_t latency_max_ns;
} bxflow_stats;

/* The calling thread's last error message (never NULL). */
const char *bxflow_last_error(void);

/* Model: a .bxq path (see above for .onnx); NULL on error. */
bxflow_engine *bxflow_engine_open(const char *path);
void bxflow_engine_free(bxflow_engine *e);
size_t bxflow_engine_input_len(const bxflow_engine *e);
size_t bxflow_engine_output_len(const bxflow_engine *e);

/* Inference (thread-safe, allocation-free after a thread's first call) */
int bxflow_infer_f32(const bxflow_engine *e, const float *input, size_t in_len, float *output, size_t out_len);
int bxflow_infer_raw(const bxflow_engine *e, const int64_t *input, size_t in_len, int64_t *output, size_t out_len);
int bxflow_infer_batch_f32(const bxflow_engine *e, const float *input, float *output, size_t n_events);

/* Streaming pipeline: drop_when_full 0 = block (backpressure), 1 = drop and count.
 * workers: 0 = all CPUs, at most 1024. batch: 0 = 256 events, at most 65536
 * events and 64 MiB of raw codes (events x (inputs + outputs) x 8 bytes).
 * A value over a limit returns NULL with BXFLOW_ERR_LIMIT, before anything
 * is allocated or started. */
bxflow_pipeline *bxflow_pipeline_create(const bxflow_engine *e, size_t workers, size_t batch, int drop_when_full);
int bxflow_pipeline_push_f32(bxflow_pipeline *p, const float *event, size_t len, uint64_t *seq);
int bxflow_pipeline_finish(bxflow_pipeline *p);
int bxflow_pipeline_pop_f32(bxflow_pipeline *p, uint64_t *seq, float *out, size_t out_len, int64_t timeout_us);
int bxflow_pipeline_stats(const bxflow_pipeline *p, bxflow_stats *out);
void bxflow_pipeline_close(bxflow_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* BXFLOW_H */

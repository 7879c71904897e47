/* bxflow CPU engine: C API. Bit-exact fixed-point inference of a quantized
 * network (a .bxq from `bxflow quantize`): single events, batches, and a
 * streaming pipeline with in-order results. The default library reads .bxq
 * only (no ONNX importer, so it stays small): bxflow_engine_open on an .onnx
 * fails with a message saying to quantize it first, unless the library was
 * built with the `onnx` feature (cargo build -p bxflow-capi --features onnx).
 *
 * Build: cargo build --profile capi -p bxflow-capi (whole-program LTO, a
 * small library), then link target/capi/libbxflow.a (or libbxflow.so) plus
 * -lpthread -ldl -lm.
 *
 * Conventions
 * - Status: functions return BXFLOW_OK (0) or another code >= 0 on success,
 *   a negative BXFLOW_ERR_* on failure (or NULL for constructors). After a
 *   failure bxflow_last_error() holds a message naming what was wrong; a
 *   success resets it to "no error". bxflow_strerror(code) gives a code's
 *   meaning.
 * - No call aborts the process or unwinds into C: an internal panic is
 *   BXFLOW_ERR_PANIC. Sizes are checked against the limits below before
 *   anything is allocated.
 * - Threads: an engine is immutable; any number of threads may run the
 *   inference functions on one engine at once. A pipeline has one producer
 *   side (push, flush, finish) and one consumer side (pop): each side is
 *   used by one thread at a time; stats may be called from any thread.
 * - Ownership: handles are freed by their free/close function, once.
 *   Pipelines hold their own reference to the engine, so the engine may be
 *   freed before its pipelines.
 * - Raw codes: the *_raw functions take and return the integer codes of the
 *   model's fixed-point types (each input's and output's:
 *   bxflow_engine_input_info/_output_info): value = code * 2^-(width -
 *   int_bits). The float functions quantize each input with its type and
 *   return outputs as float, which rounds codes wider than 24 bits: use the
 *   raw functions for exact results. */
#ifndef BXFLOW_H
#define BXFLOW_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The ABI of this header; bxflow_abi_version() returns the library's. */
#define BXFLOW_ABI_VERSION 2

/* Status codes (>= 0) */
#define BXFLOW_OK 0
#define BXFLOW_END 1     /* pop: the input was finished and every result delivered */
#define BXFLOW_EMPTY 2   /* pop: nothing arrived within the timeout */
#define BXFLOW_DROPPED 3 /* push, drop policy: the pipeline was full; the event was refused,
                            took its sequence number and is counted in stats.dropped */
/* Errors (< 0) */
#define BXFLOW_ERR_NULL (-1)    /* a required pointer is NULL */
#define BXFLOW_ERR_LENGTH (-2)  /* a length does not match the model */
#define BXFLOW_ERR_INPUT (-3)   /* a raw input code is outside the input type */
#define BXFLOW_ERR_IO (-4)      /* the model file cannot be read or is invalid */
#define BXFLOW_ERR_CLOSED (-5)  /* the pipeline's input is finished */
#define BXFLOW_ERR_WORKER (-6)  /* pop: a batch failed in a worker (its events are in the message) */
#define BXFLOW_ERR_PANIC (-7)   /* internal error (a bug: please report the message) */
#define BXFLOW_ERR_LIMIT (-8)   /* an argument over its documented limit */
#define BXFLOW_ERR_TIMEOUT (-9) /* push, block policy: no room within the push timeout; not taken */

/* Pipeline limits, checked at creation */
#define BXFLOW_MAX_WORKERS 1024
#define BXFLOW_MAX_BATCH 65536              /* events per batch */
#define BXFLOW_MAX_QUEUE 65536              /* batches per queue */
#define BXFLOW_MAX_BATCH_BYTES (64u << 20)  /* events x (inputs + outputs) x 8 */
#define BXFLOW_MAX_WAIT_US 10000000         /* max_wait_us and spin_us */

typedef struct BxflowEngine bxflow_engine;
typedef struct BxflowPipeline bxflow_pipeline;

/* A fixed-point type: value = code * 2^-(width - int_bits). */
typedef struct bxflow_fixed_type {
    uint32_t width;
    int32_t int_bits;
    int is_signed;
} bxflow_fixed_type;

typedef struct bxflow_stats {
    uint64_t pushed;    /* = delivered + dropped + failed + in_flight, always */
    uint64_t dropped;
    uint64_t processed;
    uint64_t failed;
    uint64_t delivered;
    uint64_t in_flight;
    uint64_t latency_p50_ns; /* push of a batch's first event to its in-order delivery */
    uint64_t latency_p99_ns;
    uint64_t latency_p999_ns;
    uint64_t latency_max_ns;
} bxflow_stats;

typedef struct bxflow_pipeline_options {
    size_t size;             /* sizeof(bxflow_pipeline_options): set by _options_init */
    size_t workers;          /* worker threads; 0 (default): one per CPU; <= BXFLOW_MAX_WORKERS */
    size_t batch;            /* events per batch; 0: 256 (default 256) */
    size_t queue;            /* batches per queue; 0: 64 (default 64) */
    int drop_when_full;      /* 0 (default): block, push waits for room; 1: drop, push refuses */
    int64_t max_wait_us;     /* a partial batch is sent once its first event waited this long
                                (default 100; the OS timer adds tens of us); negative: only
                                when full, on flush or on finish */
    int64_t spin_us;         /* an idle worker polls this long before it sleeps (default 50;
                                0: sleep at once); at most CPUs - 1 workers poll at once */
    int64_t push_timeout_us; /* block policy: the longest a push waits for room, then
                                BXFLOW_ERR_TIMEOUT; negative (default): forever */
} bxflow_pipeline_options;

/* Library */
const char *bxflow_version(void);   /* "MAJOR.MINOR.PATCH", static storage */
int bxflow_abi_version(void);       /* compare with BXFLOW_ABI_VERSION */
const char *bxflow_strerror(int code); /* static storage */
/* The calling thread's last error message (never NULL); valid until the
 * next bxflow call on this thread. */
const char *bxflow_last_error(void);
/* The code of that error (BXFLOW_OK after a success): why a call that
 * returns a pointer returned NULL. */
int bxflow_last_error_code(void);

/* Model: a .bxq path (see above for .onnx); NULL on error. */
bxflow_engine *bxflow_engine_open(const char *path);
void bxflow_engine_free(bxflow_engine *e); /* NULL is ignored */
size_t bxflow_engine_input_len(const bxflow_engine *e);  /* values per event in; 0 if NULL */
size_t bxflow_engine_output_len(const bxflow_engine *e); /* values per event out; 0 if NULL */
/* The type of every input (output); BXFLOW_ERR_LIMIT when the model's
 * inputs (outputs) have different types: then use the _info calls. */
int bxflow_engine_input_type(const bxflow_engine *e, bxflow_fixed_type *out);
int bxflow_engine_output_type(const bxflow_engine *e, bxflow_fixed_type *out);

/* Graph inputs and outputs. An event is every input after the other, in
 * order (input_len values in all); its result is every output after the
 * other (output_len values). */
typedef struct bxflow_tensor_info {
    const char *name;       /* the ONNX name; valid while the engine lives */
    size_t offset;          /* first value within an event's input (output) */
    size_t len;             /* number of values */
    bxflow_fixed_type type; /* the raw codes' type */
} bxflow_tensor_info;
size_t bxflow_engine_num_inputs(const bxflow_engine *e);  /* 0 if NULL */
size_t bxflow_engine_num_outputs(const bxflow_engine *e); /* 0 if NULL */
/* Input (output) k, from 0; BXFLOW_ERR_LIMIT if there is none. */
int bxflow_engine_input_info(const bxflow_engine *e, size_t k, bxflow_tensor_info *out);
int bxflow_engine_output_info(const bxflow_engine *e, size_t k, bxflow_tensor_info *out);

/* Inference: thread-safe, allocation-free after a thread's first call.
 * Single events: in_len = input_len, out_len = output_len.
 * Batches: events back to back, in_len = n * input_len, out_len = n * output_len. */
int bxflow_infer_f32(const bxflow_engine *e, const float *input, size_t in_len, float *output, size_t out_len);
int bxflow_infer_raw(const bxflow_engine *e, const int64_t *input, size_t in_len, int64_t *output, size_t out_len);
int bxflow_infer_batch_f32(const bxflow_engine *e, const float *input, size_t in_len, float *output, size_t out_len);
int bxflow_infer_batch_raw(const bxflow_engine *e, const int64_t *input, size_t in_len, int64_t *output, size_t out_len);

/* Streaming pipeline: events are numbered 0, 1, 2, ... at push; results
 * come out in that order (a dropped event is a gap). */
void bxflow_pipeline_options_init(bxflow_pipeline_options *o);
/* NULL on error; a setting over its limit: BXFLOW_ERR_LIMIT, nothing started. */
bxflow_pipeline *bxflow_pipeline_create_opts(const bxflow_engine *e, const bxflow_pipeline_options *o);
/* The defaults but for workers, batch and drop_when_full. */
bxflow_pipeline *bxflow_pipeline_create(const bxflow_engine *e, size_t workers, size_t batch, int drop_when_full);
/* One event; *seq (if not NULL) gets its number. BXFLOW_OK, BXFLOW_DROPPED
 * (drop policy), BXFLOW_ERR_TIMEOUT (block policy with a push timeout), ... */
int bxflow_pipeline_push_f32(bxflow_pipeline *p, const float *event, size_t len, uint64_t *seq);
int bxflow_pipeline_push_raw(bxflow_pipeline *p, const int64_t *event, size_t len, uint64_t *seq);
/* Sends the partial batch now (waits for room if the queue is full). */
int bxflow_pipeline_flush(bxflow_pipeline *p);
/* Sends the last batch and closes the input; pop until BXFLOW_END. Waits
 * for room: pop from another thread if the queues may be full. */
int bxflow_pipeline_finish(bxflow_pipeline *p);
/* Next result: BXFLOW_OK, BXFLOW_EMPTY after timeout_us (negative: wait
 * forever), BXFLOW_END, or BXFLOW_ERR_WORKER for a failed batch. */
int bxflow_pipeline_pop_f32(bxflow_pipeline *p, uint64_t *seq, float *out, size_t out_len, int64_t timeout_us);
int bxflow_pipeline_pop_raw(bxflow_pipeline *p, uint64_t *seq, int64_t *out, size_t out_len, int64_t timeout_us);
int bxflow_pipeline_stats(const bxflow_pipeline *p, bxflow_stats *out);
/* Discards undelivered results, stops the threads, frees (NULL is ignored).
 * Never waits for a consumer. */
void bxflow_pipeline_close(bxflow_pipeline *p);

#ifdef __cplusplus
}
#endif
#endif /* BXFLOW_H */

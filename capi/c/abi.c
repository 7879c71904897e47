/* The C ABI's contract, from C: version and error queries, the raw entry
 * points bit-exact with each other, the pipeline's options (maximum wait,
 * drop reported, push timeout, limits) and misuse of every kind. Run by
 * capi/tests/capi.rs on a .bxq of the jet tagger. */
#include "bxflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <time.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d %s (last error: %s)\n", __FILE__, __LINE__, #c, bxflow_last_error()); return 1; } } while (0)

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL\n", argv[0]); return 2; }
    /* Library queries */
    CHECK(bxflow_abi_version() == BXFLOW_ABI_VERSION);
    CHECK(strlen(bxflow_version()) >= 5);
    CHECK(strstr(bxflow_strerror(BXFLOW_ERR_TIMEOUT), "timeout") != NULL);
    CHECK(strcmp(bxflow_strerror(12345), "unknown bxflow code") == 0);

    /* last_error: set by a failure, reset by a success */
    CHECK(bxflow_engine_open("/nonexistent.bxq") == NULL);
    CHECK(strstr(bxflow_last_error(), "nonexistent") != NULL);
    CHECK(bxflow_last_error_code() == BXFLOW_ERR_IO);
    CHECK(bxflow_engine_open(NULL) == NULL);
    CHECK(bxflow_last_error_code() == BXFLOW_ERR_NULL);
    bxflow_engine *e = bxflow_engine_open(argv[1]);
    CHECK(e != NULL);
    CHECK(strcmp(bxflow_last_error(), "no error") == 0);
    CHECK(bxflow_last_error_code() == BXFLOW_OK);

    /* Introspection */
    size_t in = bxflow_engine_input_len(e), out = bxflow_engine_output_len(e);
    bxflow_fixed_type ti, to;
    CHECK(bxflow_engine_input_type(e, &ti) == BXFLOW_OK);
    CHECK(bxflow_engine_output_type(e, &to) == BXFLOW_OK);
    CHECK(ti.width >= 2 && ti.width <= 64 && to.width >= 2 && to.width <= 64);
    CHECK(bxflow_engine_input_type(e, NULL) == BXFLOW_ERR_NULL);
    CHECK(bxflow_engine_output_type(NULL, &to) == BXFLOW_ERR_NULL);
    /* Inputs and outputs: the jet tagger has one of each, of those types */
    bxflow_tensor_info info;
    CHECK(bxflow_engine_num_inputs(e) == 1 && bxflow_engine_num_outputs(e) == 1);
    CHECK(bxflow_engine_num_inputs(NULL) == 0 && bxflow_engine_num_outputs(NULL) == 0);
    CHECK(bxflow_engine_input_info(e, 0, &info) == BXFLOW_OK);
    CHECK(info.offset == 0 && info.len == in && info.type.width == ti.width && strlen(info.name) > 0);
    CHECK(bxflow_engine_output_info(e, 0, &info) == BXFLOW_OK);
    CHECK(info.offset == 0 && info.len == out && info.type.int_bits == to.int_bits);
    CHECK(bxflow_engine_input_info(e, 1, &info) == BXFLOW_ERR_LIMIT);
    CHECK(strstr(bxflow_last_error(), "no input 1") != NULL);
    CHECK(bxflow_engine_output_info(e, SIZE_MAX, &info) == BXFLOW_ERR_LIMIT);
    CHECK(bxflow_engine_input_info(e, 0, NULL) == BXFLOW_ERR_NULL);
    CHECK(bxflow_engine_output_info(NULL, 0, &info) == BXFLOW_ERR_NULL);

    /* Raw codes of the input type: single, batch and pipeline agree */
    enum { N = 300 };
    int64_t lo = ti.is_signed ? -((int64_t)1 << (ti.width - 1)) : 0;
    int64_t hi = ti.is_signed ? ((int64_t)1 << (ti.width - 1)) - 1 : ((int64_t)1 << ti.width) - 1;
    int64_t *x = malloc(sizeof(int64_t) * in * N), *y1 = malloc(sizeof(int64_t) * out * N);
    int64_t *yb = malloc(sizeof(int64_t) * out * N), *yp = malloc(sizeof(int64_t) * out);
    uint64_t r = 88172645463325252ull;
    for (size_t i = 0; i < in * N; i++) {
        r ^= r << 13; r ^= r >> 7; r ^= r << 17;
        x[i] = lo + (int64_t)(r % (uint64_t)(hi - lo + 1));
    }
    for (size_t k = 0; k < N; k++)
        CHECK(bxflow_infer_raw(e, x + k * in, in, y1 + k * out, out) == BXFLOW_OK);
    CHECK(bxflow_infer_batch_raw(e, x, in * N, yb, out * N) == BXFLOW_OK);
    CHECK(memcmp(y1, yb, sizeof(int64_t) * out * N) == 0);
    CHECK(bxflow_infer_batch_raw(e, x, in * N - 1, yb, out * N) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_infer_batch_raw(e, x, in * N, yb, out * N - 1) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_infer_batch_raw(e, NULL, in * N, yb, out * N) == BXFLOW_ERR_NULL);
    /* Zero and huge lengths: refused before any slice is made */
    CHECK(bxflow_infer_raw(e, x, 0, yp, out) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_infer_raw(e, x, SIZE_MAX, yp, out) == BXFLOW_ERR_LENGTH);
    CHECK(strstr(bxflow_last_error(), "in_len") != NULL);
    CHECK(bxflow_infer_raw(e, x, in, yp, SIZE_MAX) == BXFLOW_ERR_LENGTH);
    CHECK(strstr(bxflow_last_error(), "out_len") != NULL);
    CHECK(bxflow_infer_batch_raw(e, x, 0, yb, 0) == BXFLOW_OK); /* no events */
    CHECK(bxflow_infer_batch_raw(e, x, SIZE_MAX, yb, out * N) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_infer_batch_raw(e, x, in * N, yb, SIZE_MAX) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_infer_batch_f32(e, NULL, SIZE_MAX, NULL, SIZE_MAX) == BXFLOW_ERR_NULL);
    int64_t bad = hi + 1;
    int64_t *xb = malloc(sizeof(int64_t) * in);
    memcpy(xb, x, sizeof(int64_t) * in);
    xb[0] = bad;
    CHECK(bxflow_infer_raw(e, xb, in, yp, out) == BXFLOW_ERR_INPUT);

    bxflow_pipeline_options o;
    bxflow_pipeline_options_init(&o);
    CHECK(o.size == sizeof o && o.push_timeout_us < 0 && o.max_wait_us > 0);
    o.workers = 2;
    o.batch = 16;
    bxflow_pipeline *p = bxflow_pipeline_create_opts(e, &o);
    CHECK(p != NULL);
    for (size_t k = 0; k < N; k++) {
        uint64_t s;
        CHECK(bxflow_pipeline_push_raw(p, x + k * in, in, &s) == BXFLOW_OK);
        CHECK(s == k);
    }
    CHECK(bxflow_pipeline_push_raw(p, xb, in, NULL) == BXFLOW_ERR_INPUT);
    CHECK(bxflow_pipeline_push_raw(p, x, in - 1, NULL) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_pipeline_push_raw(p, x, SIZE_MAX, NULL) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_pipeline_push_raw(p, x, 0, NULL) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_pipeline_flush(p) == BXFLOW_OK);
    CHECK(bxflow_pipeline_finish(p) == BXFLOW_OK);
    CHECK(bxflow_pipeline_flush(p) == BXFLOW_ERR_CLOSED);
    CHECK(bxflow_pipeline_push_raw(p, x, in, NULL) == BXFLOW_ERR_CLOSED);
    CHECK(bxflow_pipeline_pop_raw(p, NULL, yp, out - 1, 0) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_pipeline_pop_raw(p, NULL, yp, SIZE_MAX, 0) == BXFLOW_ERR_LENGTH);
    uint64_t seq, n = 0;
    int rc;
    while ((rc = bxflow_pipeline_pop_raw(p, &seq, yp, out, -1)) == BXFLOW_OK) {
        CHECK(seq == n);
        CHECK(memcmp(yp, y1 + seq * out, sizeof(int64_t) * out) == 0);
        n++;
    }
    CHECK(rc == BXFLOW_END);
    CHECK(n == N);
    bxflow_pipeline_close(p);

    /* Maximum wait: with a batch of 64, one event comes out on its own
     * within the maximum wait (2 ms here), long before any finish. */
    bxflow_pipeline_options_init(&o);
    o.workers = 1;
    o.batch = 64;
    o.max_wait_us = 2000;
    p = bxflow_pipeline_create_opts(e, &o);
    CHECK(p != NULL);
    for (int k = 0; k < 3; k++) {
        double t0 = now_s();
        CHECK(bxflow_pipeline_push_raw(p, x + k * in, in, NULL) == BXFLOW_OK);
        CHECK(bxflow_pipeline_pop_raw(p, &seq, yp, out, 1000000) == BXFLOW_OK);
        double waited = now_s() - t0;
        CHECK(seq == (uint64_t)k);
        CHECK(memcmp(yp, y1 + k * out, sizeof(int64_t) * out) == 0);
        if (waited > 0.050) { fprintf(stderr, "FAIL: event %d took %.1f ms with a 2 ms maximum wait\n", k, waited * 1e3); return 1; }
    }
    bxflow_pipeline_close(p);

    /* Drop policy: nobody pops, so the pipeline fills and pushes report
     * BXFLOW_DROPPED; the stats count exactly those. */
    bxflow_pipeline_options_init(&o);
    o.workers = 1; o.batch = 1; o.queue = 1; o.drop_when_full = 1;
    p = bxflow_pipeline_create_opts(e, &o);
    CHECK(p != NULL);
    uint64_t dropped = 0;
    for (int k = 0; k < 200; k++) {
        uint64_t s;
        rc = bxflow_pipeline_push_raw(p, x, in, &s);
        CHECK(rc == BXFLOW_OK || rc == BXFLOW_DROPPED);
        CHECK(s == (uint64_t)k);
        dropped += rc == BXFLOW_DROPPED;
    }
    bxflow_stats st;
    CHECK(bxflow_pipeline_stats(p, &st) == BXFLOW_OK);
    CHECK(dropped > 150 && st.dropped == dropped && st.pushed == 200);
    bxflow_pipeline_close(p); /* with results undelivered: must not wait */

    /* Block policy with a push timeout: gives up, takes nothing */
    bxflow_pipeline_options_init(&o);
    o.workers = 1; o.batch = 1; o.queue = 1; o.push_timeout_us = 2000;
    p = bxflow_pipeline_create_opts(e, &o);
    CHECK(p != NULL);
    uint64_t taken = 0;
    for (;;) {
        rc = bxflow_pipeline_push_raw(p, x, in, NULL);
        if (rc != BXFLOW_OK) break;
        taken++;
        CHECK(taken < 100);
    }
    CHECK(rc == BXFLOW_ERR_TIMEOUT);
    CHECK(strstr(bxflow_last_error(), "timeout") != NULL);
    CHECK(bxflow_pipeline_stats(p, &st) == BXFLOW_OK);
    CHECK(st.pushed == taken && st.dropped == 0);
    bxflow_pipeline_close(p);

    /* Limits and bad options: refused before anything starts */
    CHECK(bxflow_pipeline_create(e, SIZE_MAX, 0, 0) == NULL);
    CHECK(bxflow_pipeline_create(e, (size_t)1 << 34, 0, 0) == NULL);
    CHECK(bxflow_pipeline_create(e, 1, (size_t)1 << 34, 0) == NULL);
    CHECK(strstr(bxflow_last_error(), "17179869184") != NULL);
    bxflow_pipeline_options_init(&o);
    o.workers = BXFLOW_MAX_WORKERS + 1;
    CHECK(bxflow_pipeline_create_opts(e, &o) == NULL);
    CHECK(strstr(bxflow_last_error(), "workers") != NULL);
    CHECK(bxflow_last_error_code() == BXFLOW_ERR_LIMIT);
    bxflow_pipeline_options_init(&o);
    o.batch = (size_t)1 << 34;
    CHECK(bxflow_pipeline_create_opts(e, &o) == NULL);
    bxflow_pipeline_options_init(&o);
    o.batch = (size_t)-1;
    CHECK(bxflow_pipeline_create_opts(e, &o) == NULL);
    bxflow_pipeline_options_init(&o);
    o.queue = BXFLOW_MAX_QUEUE + 1;
    CHECK(bxflow_pipeline_create_opts(e, &o) == NULL);
    bxflow_pipeline_options_init(&o);
    o.max_wait_us = (int64_t)BXFLOW_MAX_WAIT_US + 1;
    CHECK(bxflow_pipeline_create_opts(e, &o) == NULL);
    CHECK(strstr(bxflow_last_error(), "max wait") != NULL);
    bxflow_pipeline_options_init(&o);
    o.spin_us = INT64_MAX;
    CHECK(bxflow_pipeline_create_opts(e, &o) == NULL);
    bxflow_pipeline_options_init(&o);
    o.size = 8;
    CHECK(bxflow_pipeline_create_opts(e, &o) == NULL);
    CHECK(strstr(bxflow_last_error(), "options.size") != NULL);
    CHECK(bxflow_pipeline_create_opts(e, NULL) == NULL);
    CHECK(bxflow_pipeline_create_opts(NULL, &o) == NULL);
    CHECK(bxflow_pipeline_flush(NULL) == BXFLOW_ERR_NULL);
    CHECK(bxflow_pipeline_push_raw(NULL, x, in, NULL) == BXFLOW_ERR_NULL);
    CHECK(bxflow_pipeline_pop_raw(NULL, NULL, yp, out, 0) == BXFLOW_ERR_NULL);

    bxflow_engine_free(e);
    free(x); free(y1); free(yb); free(yp); free(xb);
    printf("C ABI contract OK: bxflow %s, ABI %d, %d events raw bit-exact, %llu dropped and reported\n",
           bxflow_version(), bxflow_abi_version(), N, (unsigned long long)dropped);
    return 0;
}

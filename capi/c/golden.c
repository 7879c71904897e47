/* Checks every inference entry point of the C API against the golden
 * model's outputs, bit for bit: single events, batches and the pipeline,
 * raw codes and floats. Reads a case file written by capi/tests/capi.rs:
 *   u64 n, in_len, out_len (little-endian), then
 *   i64 raw_in[n*in_len], i64 raw_out[n*out_len],
 *   f32 f_in[n*in_len],   f32 f_out[n*out_len]
 * where raw_out = golden(raw_in) and f_out = golden(quantize(f_in)) as floats.
 * Valid C and C++: the tests build it as both.
 * Usage: golden MODEL.bxq CASES.bin */
#include "bxflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d %s (last error: %s)\n", __FILE__, __LINE__, #c, bxflow_last_error()); return 1; } } while (0)

static void *slurp(FILE *f, size_t bytes) {
    void *p = malloc(bytes ? bytes : 1);
    if (p && fread(p, 1, bytes, f) != bytes) { free(p); return NULL; }
    return p;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s MODEL.bxq CASES.bin\n", argv[0]); return 2; }
    FILE *f = fopen(argv[2], "rb");
    CHECK(f != NULL);
    uint64_t hdr[3];
    CHECK(fread(hdr, 8, 3, f) == 3);
    size_t n = hdr[0], in = hdr[1], out = hdr[2];
    int64_t *ri = (int64_t *)slurp(f, 8 * n * in), *ro = (int64_t *)slurp(f, 8 * n * out);
    float *fi = (float *)slurp(f, 4 * n * in), *fo = (float *)slurp(f, 4 * n * out);
    CHECK(ri && ro && fi && fo);
    fclose(f);

    bxflow_engine *e = bxflow_engine_open(argv[1]);
    CHECK(e != NULL);
    CHECK(bxflow_engine_input_len(e) == in && bxflow_engine_output_len(e) == out);
    /* The inputs and outputs tile an event's values, in order */
    size_t at = 0;
    for (size_t k = 0; k < bxflow_engine_num_inputs(e); k++) {
        bxflow_tensor_info t;
        CHECK(bxflow_engine_input_info(e, k, &t) == BXFLOW_OK && t.offset == at && t.name != NULL);
        at += t.len;
    }
    CHECK(at == in);
    at = 0;
    for (size_t k = 0; k < bxflow_engine_num_outputs(e); k++) {
        bxflow_tensor_info t;
        CHECK(bxflow_engine_output_info(e, k, &t) == BXFLOW_OK && t.offset == at && t.name != NULL);
        at += t.len;
    }
    CHECK(at == out);
    int64_t *y = (int64_t *)malloc(8 * n * out);
    float *yf = (float *)malloc(4 * n * out);
    size_t bad = 0;

    /* Single events */
    for (size_t k = 0; k < n; k++) {
        CHECK(bxflow_infer_raw(e, ri + k * in, in, y + k * out, out) == BXFLOW_OK);
        CHECK(bxflow_infer_f32(e, fi + k * in, in, yf + k * out, out) == BXFLOW_OK);
    }
    bad += memcmp(y, ro, 8 * n * out) != 0;
    bad += memcmp(yf, fo, 4 * n * out) != 0;
    CHECK(bad == 0);
    /* Batches */
    memset(y, 0, 8 * n * out);
    memset(yf, 0, 4 * n * out);
    CHECK(bxflow_infer_batch_raw(e, ri, n * in, y, n * out) == BXFLOW_OK);
    CHECK(bxflow_infer_batch_f32(e, fi, n * in, yf, n * out) == BXFLOW_OK);
    CHECK(memcmp(y, ro, 8 * n * out) == 0);
    CHECK(memcmp(yf, fo, 4 * n * out) == 0);
    /* Pipeline: raw events then float events, every result in order */
    bxflow_pipeline_options o;
    bxflow_pipeline_options_init(&o);
    o.workers = 2;
    o.batch = 32;
    /* Room for everything, as one thread pushes all and then pops: full
     * batches only (no maximum wait, which would send partial ones). */
    o.queue = (2 * n) / 32 + 2;
    o.max_wait_us = -1;
    bxflow_pipeline *p = bxflow_pipeline_create_opts(e, &o);
    CHECK(p != NULL);
    for (size_t k = 0; k < n; k++) CHECK(bxflow_pipeline_push_raw(p, ri + k * in, in, NULL) == BXFLOW_OK);
    for (size_t k = 0; k < n; k++) CHECK(bxflow_pipeline_push_f32(p, fi + k * in, in, NULL) == BXFLOW_OK);
    CHECK(bxflow_pipeline_finish(p) == BXFLOW_OK);
    uint64_t seq;
    for (size_t k = 0; k < n; k++) {
        CHECK(bxflow_pipeline_pop_raw(p, &seq, y, out, -1) == BXFLOW_OK);
        CHECK(seq == k && memcmp(y, ro + k * out, 8 * out) == 0);
    }
    for (size_t k = 0; k < n; k++) {
        CHECK(bxflow_pipeline_pop_f32(p, &seq, yf, out, -1) == BXFLOW_OK);
        CHECK(seq == n + k && memcmp(yf, fo + k * out, 4 * out) == 0);
    }
    CHECK(bxflow_pipeline_pop_raw(p, &seq, y, out, -1) == BXFLOW_END);
    bxflow_pipeline_close(p);
    bxflow_engine_free(e);
    printf("golden OK: %s, %zu events x 6 entry points bit-exact\n", argv[1], n);
    free(ri); free(ro); free(fi); free(fo); free(y); free(yf);
    return 0;
}

/* Opens a model, runs one event, a batch and a pipeline; checks misuse. */
#include "bxflow.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c) do { if (!(c)) { fprintf(stderr, "FAIL %s:%d %s: %s\n", __FILE__, __LINE__, #c, bxflow_last_error()); return 1; } } while (0)

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: %s MODEL\n", argv[0]); return 2; }
    CHECK(bxflow_engine_open(NULL) == NULL);
    CHECK(bxflow_engine_open("/nonexistent.bxq") == NULL);
    CHECK(strlen(bxflow_last_error()) > 0);
    bxflow_engine *e = bxflow_engine_open(argv[1]);
    CHECK(e != NULL);
    size_t in = bxflow_engine_input_len(e), out = bxflow_engine_output_len(e);
    CHECK(in > 0 && out > 0);
    float *x = calloc(in * 8, sizeof(float)), *y = calloc(out * 8, sizeof(float)), *y1 = calloc(out, sizeof(float));
    for (size_t i = 0; i < in * 8; i++) x[i] = (float)((int)(i % 7) - 3) * 0.25f;
    CHECK(bxflow_infer_f32(e, x, in, y1, out) == BXFLOW_OK);
    CHECK(bxflow_infer_f32(e, x, in - 1, y1, out) == BXFLOW_ERR_LENGTH);
    CHECK(bxflow_infer_f32(NULL, x, in, y1, out) == BXFLOW_ERR_NULL);
    CHECK(bxflow_infer_f32(e, NULL, in, y1, out) == BXFLOW_ERR_NULL);
    CHECK(bxflow_infer_batch_f32(e, x, in * 8, y, out * 8) == BXFLOW_OK);
    CHECK(memcmp(y, y1, out * sizeof(float)) == 0);

    bxflow_pipeline *p = bxflow_pipeline_create(e, 2, 4, 0);
    CHECK(p != NULL);
    for (int i = 0; i < 8; i++) {
        uint64_t s;
        CHECK(bxflow_pipeline_push_f32(p, x + i * in, in, &s) == BXFLOW_OK);
        CHECK(s == (uint64_t)i);
    }
    CHECK(bxflow_pipeline_finish(p) == BXFLOW_OK);
    CHECK(bxflow_pipeline_push_f32(p, x, in, NULL) == BXFLOW_ERR_CLOSED);
    uint64_t seq, n = 0;
    int rc;
    while ((rc = bxflow_pipeline_pop_f32(p, &seq, y1, out, -1)) == BXFLOW_OK) {
        CHECK(seq == n);
        CHECK(memcmp(y1, y + seq * out, out * sizeof(float)) == 0);
        n++;
    }
    CHECK(rc == BXFLOW_END);
    CHECK(n == 8);
    bxflow_stats st;
    CHECK(bxflow_pipeline_stats(p, &st) == BXFLOW_OK);
    CHECK(st.pushed == 8 && st.delivered == 8 && st.dropped == 0 && st.in_flight == 0);
    CHECK(bxflow_pipeline_stats(NULL, &st) == BXFLOW_ERR_NULL);
    bxflow_pipeline_close(p);
    bxflow_pipeline_close(NULL);
    bxflow_engine_free(e);
    bxflow_engine_free(NULL);
    free(x); free(y); free(y1);
    printf("C example OK: %zu inputs, %zu outputs, 8 events in order\n", in, out);
    return 0;
}

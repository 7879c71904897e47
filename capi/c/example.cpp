// C++ use of the C API with RAII handles.
#include "bxflow.h"
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

struct EngineDel { void operator()(bxflow_engine *e) const { bxflow_engine_free(e); } };
struct PipeDel { void operator()(bxflow_pipeline *p) const { bxflow_pipeline_close(p); } };

static void check(int rc, const char *what) {
    if (rc < 0) throw std::runtime_error(std::string(what) + ": " + bxflow_last_error());
}

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    try {
        std::unique_ptr<bxflow_engine, EngineDel> e(bxflow_engine_open(argv[1]));
        if (!e) throw std::runtime_error(bxflow_last_error());
        const size_t in = bxflow_engine_input_len(e.get()), out = bxflow_engine_output_len(e.get());
        std::vector<float> x(in, 0.5f), y(out), z(out);
        check(bxflow_infer_f32(e.get(), x.data(), in, y.data(), out), "infer");
        std::unique_ptr<bxflow_pipeline, PipeDel> p(bxflow_pipeline_create(e.get(), 0, 0, 1));
        if (!p) throw std::runtime_error(bxflow_last_error());
        for (int i = 0; i < 100; i++) check(bxflow_pipeline_push_f32(p.get(), x.data(), in, nullptr), "push");
        check(bxflow_pipeline_finish(p.get()), "finish");
        uint64_t seq = 0, n = 0;
        int rc;
        while ((rc = bxflow_pipeline_pop_f32(p.get(), &seq, z.data(), out, 1000000)) == BXFLOW_OK) {
            if (z != y) throw std::runtime_error("pipeline result differs from infer");
            n++;
        }
        check(rc, "pop");
        bxflow_stats st{};
        check(bxflow_pipeline_stats(p.get(), &st), "stats");
        if (st.delivered + st.dropped != st.pushed || st.pushed != 100 || n != st.delivered)
            throw std::runtime_error("accounting");
        std::printf("C++ example OK: %llu delivered, %llu dropped\n", (unsigned long long)st.delivered,
                    (unsigned long long)st.dropped);
    } catch (const std::exception &ex) {
        std::fprintf(stderr, "FAIL: %s\n", ex.what());
        return 1;
    }
    return 0;
}

// C++ use of the library through the RAII wrapper bxflow.hpp: an engine,
// one event, a pipeline under the drop policy, accounting checked.
#include "bxflow.hpp"
#include <cmath>
#include <cstdio>

int main(int argc, char **argv) {
    if (argc < 2) return 2;
    try {
        bxflow::Engine e(argv[1]);
        std::vector<float> x(e.input_len(), 0.5f);
        const std::vector<float> y = e.infer(x);
        auto opts = bxflow::pipeline_options();
        opts.drop_when_full = 1;
        bxflow::Pipeline p(e, opts);
        uint64_t accepted = 0;
        for (int i = 0; i < 100; i++) accepted += p.push(x).has_value();
        p.finish();
        uint64_t n = 0;
        std::vector<float> z;
        while (auto r = p.pop_raw()) {
            // The raw result, as floats, equals the engine's float result.
            const auto t = e.output_type();
            for (size_t j = 0; j < r->raw.size(); j++) {
                const float v = (float)std::ldexp((double)r->raw[j], t.int_bits - (int)t.width);
                if (v != y[j]) throw std::runtime_error("pipeline result differs from infer");
            }
            n++;
        }
        if (!p.ended()) throw std::runtime_error("pop ended early");
        const bxflow_stats st = p.stats();
        if (st.delivered + st.dropped != st.pushed || st.pushed != 100 || n != st.delivered || n != accepted)
            throw std::runtime_error("accounting");
        try {
            bxflow::Engine bad("/nonexistent.bxq");
            throw std::runtime_error("opened a missing file");
        } catch (const bxflow::Error &err) {
            if (err.code() != BXFLOW_ERR_IO) throw;
        }
        try {
            auto big = bxflow::pipeline_options();
            big.workers = BXFLOW_MAX_WORKERS + 1;
            bxflow::Pipeline q(e, big);
            throw std::runtime_error("started a pipeline over its limits");
        } catch (const bxflow::Error &err) {
            if (err.code() != BXFLOW_ERR_LIMIT) throw;
        }
        std::printf("C++ example OK (bxflow %s): %llu delivered, %llu dropped\n", bxflow_version(),
                    (unsigned long long)st.delivered, (unsigned long long)st.dropped);
    } catch (const std::exception &ex) {
        std::fprintf(stderr, "FAIL: %s\n", ex.what());
        return 1;
    }
    return 0;
}

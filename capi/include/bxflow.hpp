// bxflow CPU engine: a header-only C++17 wrapper over the C API (bxflow.h).
// Handles own their C objects (move-only, freed in the destructor); every
// error becomes a bxflow::Error carrying the code and the library's message.
// The rules of bxflow.h (threads, ownership, limits) hold unchanged.
#ifndef BXFLOW_HPP
#define BXFLOW_HPP

#include "bxflow.h"

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace bxflow {

/// A failed call: `code()` is the BXFLOW_ERR_* value, `what()` the message.
class Error : public std::runtime_error {
public:
    Error(int code, const std::string &msg) : std::runtime_error(msg), code_(code) {}
    int code() const noexcept { return code_; }

private:
    int code_;
};

namespace detail {
inline int check(int rc, const char *call) {
    if (rc < 0) throw Error(rc, std::string(call) + ": " + bxflow_last_error());
    return rc;
}
}  // namespace detail

/// A result taken from a pipeline.
struct Result {
    uint64_t seq;
    std::vector<int64_t> raw;
};

/// A loaded model; thread-safe for inference.
class Engine {
public:
    explicit Engine(const std::string &path) : e_(bxflow_engine_open(path.c_str())) {
        if (!e_) throw Error(bxflow_last_error_code(), bxflow_last_error());
    }
    Engine(Engine &&o) noexcept : e_(std::exchange(o.e_, nullptr)) {}
    Engine &operator=(Engine &&o) noexcept {
        std::swap(e_, o.e_);
        return *this;
    }
    Engine(const Engine &) = delete;
    Engine &operator=(const Engine &) = delete;
    ~Engine() { bxflow_engine_free(e_); }

    size_t input_len() const { return bxflow_engine_input_len(e_); }
    size_t output_len() const { return bxflow_engine_output_len(e_); }
    bxflow_fixed_type input_type() const {
        bxflow_fixed_type t{};
        detail::check(bxflow_engine_input_type(e_, &t), "bxflow_engine_input_type");
        return t;
    }
    bxflow_fixed_type output_type() const {
        bxflow_fixed_type t{};
        detail::check(bxflow_engine_output_type(e_, &t), "bxflow_engine_output_type");
        return t;
    }

    /// The graph inputs and outputs, in the order an event holds them.
    std::vector<bxflow_tensor_info> inputs() const {
        std::vector<bxflow_tensor_info> v(bxflow_engine_num_inputs(e_));
        for (size_t k = 0; k < v.size(); ++k)
            detail::check(bxflow_engine_input_info(e_, k, &v[k]), "bxflow_engine_input_info");
        return v;
    }
    std::vector<bxflow_tensor_info> outputs() const {
        std::vector<bxflow_tensor_info> v(bxflow_engine_num_outputs(e_));
        for (size_t k = 0; k < v.size(); ++k)
            detail::check(bxflow_engine_output_info(e_, k, &v[k]), "bxflow_engine_output_info");
        return v;
    }

    /// One event or several back to back (the length says how many).
    std::vector<float> infer(const std::vector<float> &x) const {
        std::vector<float> y(x.size() / nonzero(input_len()) * output_len());
        detail::check(bxflow_infer_batch_f32(e_, x.data(), x.size(), y.data(), y.size()),
                      "bxflow_infer_batch_f32");
        return y;
    }
    std::vector<int64_t> infer_raw(const std::vector<int64_t> &x) const {
        std::vector<int64_t> y(x.size() / nonzero(input_len()) * output_len());
        detail::check(bxflow_infer_batch_raw(e_, x.data(), x.size(), y.data(), y.size()),
                      "bxflow_infer_batch_raw");
        return y;
    }

    const bxflow_engine *get() const noexcept { return e_; }

private:
    static size_t nonzero(size_t n) { return n ? n : 1; }
    bxflow_engine *e_;
};

/// Pipeline settings: the library's defaults, changed field by field.
inline bxflow_pipeline_options pipeline_options() {
    bxflow_pipeline_options o;
    bxflow_pipeline_options_init(&o);
    return o;
}

/// A streaming pipeline (one producer thread, one consumer thread).
class Pipeline {
public:
    Pipeline(const Engine &e, const bxflow_pipeline_options &o)
        : p_(bxflow_pipeline_create_opts(e.get(), &o)), out_len_(e.output_len()) {
        if (!p_) throw Error(bxflow_last_error_code(), bxflow_last_error());
    }
    explicit Pipeline(const Engine &e) : Pipeline(e, pipeline_options()) {}
    Pipeline(Pipeline &&o) noexcept
        : p_(std::exchange(o.p_, nullptr)), out_len_(o.out_len_) {}
    Pipeline &operator=(Pipeline &&o) noexcept {
        std::swap(p_, o.p_);
        std::swap(out_len_, o.out_len_);
        return *this;
    }
    Pipeline(const Pipeline &) = delete;
    Pipeline &operator=(const Pipeline &) = delete;
    ~Pipeline() { bxflow_pipeline_close(p_); }

    /// Pushes one event; its sequence number, or nothing if it was dropped
    /// (drop policy). Throws on errors, including BXFLOW_ERR_TIMEOUT.
    std::optional<uint64_t> push(const std::vector<float> &event) {
        uint64_t seq = 0;
        int rc = detail::check(bxflow_pipeline_push_f32(p_, event.data(), event.size(), &seq),
                               "bxflow_pipeline_push_f32");
        return rc == BXFLOW_DROPPED ? std::nullopt : std::optional<uint64_t>(seq);
    }
    std::optional<uint64_t> push_raw(const std::vector<int64_t> &event) {
        uint64_t seq = 0;
        int rc = detail::check(bxflow_pipeline_push_raw(p_, event.data(), event.size(), &seq),
                               "bxflow_pipeline_push_raw");
        return rc == BXFLOW_DROPPED ? std::nullopt : std::optional<uint64_t>(seq);
    }
    void flush() { detail::check(bxflow_pipeline_flush(p_), "bxflow_pipeline_flush"); }
    void finish() { detail::check(bxflow_pipeline_finish(p_), "bxflow_pipeline_finish"); }

    /// The next result in order; nothing at the end of the stream or when
    /// nothing came within `timeout_us` (negative: wait forever; `ended()`
    /// tells which).
    std::optional<Result> pop_raw(int64_t timeout_us = -1) {
        Result r{0, std::vector<int64_t>(out_len_)};
        int rc = detail::check(bxflow_pipeline_pop_raw(p_, &r.seq, r.raw.data(), out_len_, timeout_us),
                               "bxflow_pipeline_pop_raw");
        ended_ = rc == BXFLOW_END;
        if (rc != BXFLOW_OK) return std::nullopt;
        return r;
    }
    bool ended() const noexcept { return ended_; }

    bxflow_stats stats() const {
        bxflow_stats s{};
        detail::check(bxflow_pipeline_stats(p_, &s), "bxflow_pipeline_stats");
        return s;
    }

private:
    bxflow_pipeline *p_;
    size_t out_len_;
    bool ended_ = false;
};

}  // namespace bxflow

#endif  // BXFLOW_HPP

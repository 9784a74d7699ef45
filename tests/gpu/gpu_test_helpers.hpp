#pragma once
// Shared by the GPU test executables: the two backends, paired host/device tensors, and assertions built on
// mammocl::testing (backend_equivalence.hpp).
#include <boost/test/unit_test.hpp>

#include <cstdint>
#include <string>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#ifndef MAMMOCL_GPU_TESTS_ON_CPU
#include "mammocl/backend/cuda/cuda_backend.hpp"
#endif
#include "mammocl/testing/backend_equivalence.hpp"

namespace mammocl::gpu_test {

using C = cpu_backend;  // the reference
#ifndef MAMMOCL_GPU_TESTS_ON_CPU
using G = cuda_backend;  // under test
#else
// A check of the tests' own logic on a machine without a GPU (shapes, views, tolerances, expected messages):
// the same sources compiled with the CPU backend in the place of the CUDA one, the device-only cases left out.
using G = cpu_backend;
#endif
using testing::tolerance;

/// The same values on both backends: `c` on the host (the reference), `g` on the device.
struct twin {
  tensor<C> c;
  tensor<G> g;
  /// Channels [c0, c0+count) of both, as strided views of the same buffers.
  [[nodiscard]] twin channels(index_t c0, index_t count) const { return {c.channels(c0, count), g.channels(c0, count)}; }
  [[nodiscard]] const shape& dims() const { return c.dims(); }
};

/// Uniform values in [lo, hi) from `seed`, identical on both backends.
inline twin random_twin(const shape& s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  tensor<C> h = testing::random_host<C>(s, seed, lo, hi);
  return {h, to<G>(h)};
}
/// Both tensors filled with v.
inline twin full_twin(const shape& s, float v) { return {tensor<C>::full(s, v), tensor<G>::full(s, v)}; }
/// A host tensor's values copied into a new twin.
inline twin twin_of(const tensor<C>& h) { return {h.clone(), to<G>(h)}; }

/// Both contexts every test needs: the CPU reference with 4 threads and one CUDA context (fp32, no TF32).
struct contexts {
  C::context cc{4};
  G::context gc{};
};

/// Asserts that the device tensor matches the host reference under `tol`; the message names the worst element.
inline void check(const twin& t, const tolerance& tol, const std::string& what) {
  const testing::comparison r = testing::compare(t.g, t.c, tol, what);
  BOOST_TEST(r.ok, r.message());
}
/// Asserts a whole report (a layer's outputs and gradients).
inline void check(const testing::report& r, const std::string& what) {
  BOOST_TEST(r.ok(), what << ":\n" << r.message());
  BOOST_TEST_MESSAGE(what << ":\n" << r.message(true));
}

/// The tolerance of a reduction of length k, atol measured in units of the reference's RMS.
inline tolerance reduction(index_t k, double atol = 1e-5, double rtol = 1e-4) {
  return tolerance{.atol = atol, .rtol = rtol, .reduction = k, .atol_times_rms = true};
}
/// Elementwise ops: a few roundings at most.
inline tolerance elementwise(double atol = 1e-6, double rtol = 1e-6) { return tolerance{.atol = atol, .rtol = rtol}; }
/// Pure data movement (copies, concatenation, pooling selections): bit-exact.
inline tolerance exact() { return tolerance{.atol = 0.0, .rtol = 0.0}; }

/// Runs f on both backends and checks that both throw E with the same message (the CPU backend's text).
template <class E, class FC, class FG>
void expect_same_error(FC&& on_cpu, FG&& on_gpu, const std::string& fragment) {
  std::string cpu_msg, gpu_msg;
  try {
    on_cpu();
    BOOST_ERROR("CPU backend: no exception; expected one mentioning '" << fragment << "'");
  } catch (const E& e) {
    cpu_msg = e.message();
  }
  try {
    on_gpu();
    BOOST_ERROR("CUDA backend: no exception; expected one mentioning '" << fragment << "'");
  } catch (const E& e) {
    gpu_msg = e.message();
  }
  BOOST_TEST(cpu_msg.find(fragment) != std::string::npos, "CPU message: " << cpu_msg);
  BOOST_TEST(gpu_msg == cpu_msg, "CUDA message '" << gpu_msg << "' differs from the CPU backend's '" << cpu_msg << "'");
}

}  // namespace mammocl::gpu_test

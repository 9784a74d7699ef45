// Per-kernel convolution throughput of the CPU backend: forward, input gradient and filter gradient of
// DenseNet-121's convolution shapes, in GFLOP/s of process CPU time (the minimum over --reps calls, so that
// another process on the machine changes the figures little). docs/performance.md records them.
//
//   bench_conv_kernels [--threads N] [--reps R] [--wall]
//
// --wall reports GFLOP/s of wall-clock time instead (what a multi-threaded call delivers; only meaningful on a
// quiet machine).
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/rng.hpp"

using namespace mammocl;
using B = cpu_backend;

namespace {

bool use_wall = false;

double cpu_seconds() {
  timespec t{};
  clock_gettime(use_wall ? CLOCK_MONOTONIC : CLOCK_PROCESS_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + 1e-9 * static_cast<double>(t.tv_nsec);
}

struct conv_shape {
  const char* what;
  index_t n, cin, hw, cout, k, pad, stride;
};

}  // namespace

int main(int argc, char** argv) {
  int threads = 1, reps = 15;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--reps") && i + 1 < argc) reps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--wall")) use_wall = true;
    else {
      std::fprintf(stderr, "usage: %s [--threads N] [--reps R] [--wall]\n", argv[0]);
      return 2;
    }
  }
  if (threads < 1 || reps < 1) {
    std::fprintf(stderr, "--threads and --reps must be >= 1\n");
    return 2;
  }
  B::context ctx(threads);
  const conv_shape shapes[] = {
      {"dense 3x3, block 1", 8, 128, 56, 32, 3, 1, 1}, {"dense 3x3, block 2", 8, 128, 28, 32, 3, 1, 1},
      {"dense 3x3, block 3", 8, 128, 14, 32, 3, 1, 1}, {"dense 3x3, block 4", 8, 128, 7, 32, 3, 1, 1},
      {"dense 3x3 @512, block 1", 1, 128, 128, 32, 3, 1, 1}, {"conv0 7x7 stride 2", 8, 3, 224, 64, 7, 3, 2},
      {"dense 1x1, block 1", 8, 256, 56, 128, 1, 0, 1}, {"dense 1x1, block 3", 8, 1024, 14, 128, 1, 0, 1},
  };
  std::printf("%d thread(s), minimum of %d calls, GFLOP/s of %s\n", threads, reps,
              use_wall ? "wall-clock time" : "process CPU time");
  std::printf("%-26s %12s %12s %12s\n", "convolution", "forward", "input grad", "filter grad");
  for (const conv_shape& s : shapes) {
    const conv_geometry g{s.k, s.k, s.stride, s.pad};
    const index_t ho = g.out_h(s.hw);
    tensor<B> x(shape{s.n, s.cin, s.hw, s.hw}), w(shape{s.cout, s.cin, s.k, s.k}), y(shape{s.n, s.cout, ho, ho});
    tensor<B> dx(x.dims()), dw(w.dims());
    rng r(1);
    for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(r.normal());
    for (index_t i = 0; i < w.numel(); ++i) w.data()[i] = static_cast<float>(r.normal());
    const double flop = 2.0 * static_cast<double>(s.n * s.cout * ho * ho * s.cin * s.k * s.k);
    double best[3] = {1e30, 1e30, 1e30};
    for (int rep = 0; rep < reps; ++rep) {
      const double t0 = cpu_seconds();
      B::conv2d_forward(ctx, x, w, nullptr, y, g);
      const double t1 = cpu_seconds();
      B::conv2d_backward_data(ctx, y, w, dx, g, 0.0f);
      const double t2 = cpu_seconds();
      B::conv2d_backward_filter(ctx, x, y, dw, nullptr, g, 0.0f);
      const double t3 = cpu_seconds();
      best[0] = std::min(best[0], t1 - t0);
      best[1] = std::min(best[1], t2 - t1);
      best[2] = std::min(best[2], t3 - t2);
    }
    std::printf("%-26s %12.1f %12.1f %12.1f\n", s.what, flop / best[0] * 1e-9, flop / best[1] * 1e-9,
                flop / best[2] * 1e-9);
  }
  return 0;
}

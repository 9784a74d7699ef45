// One training step (forward, cross-entropy, backward, SGD update) of the whole-image classifier on
// DenseNet-121 at full-mammogram size, reporting the time of each phase and the peak resident memory
// (VmHWM). Run one configuration per process, since VmHWM is the process's peak:
//
//   bench_whole_image_memory [--height 1152] [--width 896] [--batch 1] [--channels 1] [--threads 1]
//                            [--memory-efficient 0|1] [--steps 1]
//
// docs/whole_image_classifier.md lists the measured figures.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/losses/cross_entropy.hpp"
#include "mammocl/models/whole_image_classifier.hpp"
#include "mammocl/optim/sgd.hpp"

namespace {

/// A field of /proc/self/status in MiB (VmHWM: peak resident set; VmRSS: current).
double status_mib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line))
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') return std::atof(line.c_str() + n + 1) / 1024.0;
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace mammocl;
  using B = cpu_backend;
  using model_t = models::whole_image_classifier<B, models::densenet121>;
  index_t height = 1152, width = 896, batch = 1, channels = 1;
  int threads = 1, steps = 1;
  bool memory_efficient = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string k = argv[i];
    const long v = std::atol(argv[i + 1]);
    if (k == "--height") height = v;
    else if (k == "--width") width = v;
    else if (k == "--batch") batch = v;
    else if (k == "--channels") channels = v;
    else if (k == "--threads") threads = static_cast<int>(v);
    else if (k == "--memory-efficient") memory_efficient = v != 0;
    else if (k == "--steps") steps = static_cast<int>(v);
    else {
      std::fprintf(stderr, "unknown option %s\n", k.c_str());
      return 2;
    }
  }
  try {
    B::context ctx(threads);
    model_t m({.in_channels = channels, .num_classes = 2, .memory_efficient = memory_efficient});
    m.init(1);
    optim::sgd<B> opt(optim::collect_parameters(m), {.lr = 1e-3, .momentum = 0.9, .weight_decay = 1e-4});
    tensor<B> x(shape{batch, channels, height, width});
    rng r(2);
    for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(r.normal());
    std::vector<int> labels;
    for (index_t i = 0; i < batch; ++i) labels.push_back(static_cast<int>(i % 2));
    const double base_mib = status_mib("VmHWM");
    std::printf("whole_image_classifier<densenet121>: %ldx%ldx%ldx%ld, memory_efficient %d, %d thread(s), %lld parameters\n",
                static_cast<long>(batch), static_cast<long>(channels), static_cast<long>(height), static_cast<long>(width),
                memory_efficient ? 1 : 0, threads, static_cast<long long>(m.parameter_count()));
    std::ostringstream shapes;
    shapes << "feature map " << model_t::feature_map_shape(x.dims()) << ", unit output " << m.top_map_shape(x.dims());
    std::printf("%s\n", shapes.str().c_str());
    std::printf("peak RSS before the step (model, optimizer, input): %.0f MiB\n", base_mib);
    losses::cross_entropy ce;
    for (int s = 0; s < steps; ++s) {
      const auto t0 = std::chrono::steady_clock::now();
      model_t::cache c;
      const tensor<B> logits = m.forward(ctx, x, c);
      const double t_fwd = seconds_since(t0);
      const double after_fwd = status_mib("VmRSS");
      tensor<B> dlogits;
      const double loss = ce.value_and_gradient<B>(ctx, logits, labels, &dlogits);
      const auto t1 = std::chrono::steady_clock::now();
      m.backward(ctx, c, dlogits, grad_mode::overwrite);
      const double t_bwd = seconds_since(t1);
      opt.step(ctx);
      std::printf("step %d: loss %.4f, forward %.2f s (RSS after forward %.0f MiB), backward %.2f s, step total %.2f s\n",
                  s + 1, loss, t_fwd, after_fwd, t_bwd, seconds_since(t0));
    }
    std::printf("peak RSS (VmHWM): %.0f MiB\n", status_mib("VmHWM"));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}

// bench_train_step_gpu: throughput and peak device memory of DenseNet-121 on the CUDA backend; the GPU
// counterpart of bench/train_step.cpp, with the same options and the same JSON fields where they apply.
//
//   --mode train    one step = forward (training mode), cross-entropy, backward (grad_mode::overwrite),
//                   SGD update (lr 0.01, momentum 0.9, weight decay 1e-4; optim::sgd)
//   --mode forward  one step = model.infer (running BN statistics, no cache)
//
// The first --warmup steps are run and discarded (cuDNN algorithm search, the caching allocator's first
// blocks, lazy module loading); the next --steps are timed one by one with CUDA events recorded on the
// context's stream around each step (and around its phases), after a synchronisation, and the median is
// reported. Peak memory: the caching allocator's peak bytes in use over the steps (reset after setup) and its
// reserved bytes (cuda_backend::memory_stats()), and the device's used memory from cudaMemGetInfo (which also counts the
// CUDA context, cuBLAS and cuDNN), sampled after every step.
//
// Output: a human-readable summary, or with --json one JSON line that bench/gpu/compare_pytorch_gpu.py parses.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/backend/cuda/cuda_backend.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/core/transfer.hpp"
#include "mammocl/losses/cross_entropy.hpp"
#include "mammocl/models/densenet.hpp"
#include "mammocl/optim/sgd.hpp"
#include "mammocl/testing/backend_equivalence.hpp"
#include "../bench_cli.hpp"

namespace {

using namespace mammocl;
using B = cuda_backend;
using model_t = models::densenet<B, models::densenet121>;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string mode = "train";
  index_t batch = 32;
  index_t size = 224;
  index_t channels = 3;
  index_t classes = 5;
  int device = 0;
  int warmup = 3;
  int steps = 10;
  bool memory_efficient = false;
  bool allow_tf32 = false;
  bool json = false;
  std::uint64_t seed = 1;
};

[[noreturn]] void usage(const char* argv0, const std::string& error = {}) {
  std::ostream& os = error.empty() ? std::cout : std::cerr;
  if (!error.empty()) os << argv0 << ": " << error << "\n\n";
  os << "usage: " << argv0
     << " [--mode train|forward] [--batch N] [--size S] [--channels C] [--classes K] [--device D]\n"
        "       [--warmup W] [--steps N] [--memory-efficient] [--allow-tf32] [--seed S] [--json]\n\n"
        "DenseNet-121 on the CUDA backend, float32, input (N,C,S,S). Defaults: train, batch 32, size 224,\n"
        "3 channels, 5 classes, device 0, 3 warm-up steps, 10 timed steps.\n"
        "  train         forward + cross-entropy + backward + SGD (momentum 0.9, weight decay 1e-4)\n"
        "  forward       model.infer (inference mode)\n"
        "  --allow-tf32  let cuDNN and cuBLAS use TF32 tensor-core math (default: exact float32)\n"
        "  --json        print one JSON line: images_per_s (median), step_s (every timed step), phase medians,\n"
        "                peak_in_use_bytes, reserved_bytes (caching allocator), device_used_bytes (cudaMemGetInfo)\n";
  std::exit(error.empty() ? 0 : 2);
}

template <class I>
I parse_number(const char* argv0, std::string_view flag, std::string_view text, I lo) {
  return bench::parse_number<I>(usage, argv0, flag, text, lo);
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view a = argv[i];
    auto value = [&]() -> std::string_view {
      if (i + 1 >= argc) usage(argv[0], std::string(a) + " needs a value");
      return argv[++i];
    };
    if (a == "--help" || a == "-h") usage(argv[0]);
    else if (a == "--mode") {
      o.mode = value();
      if (o.mode != "train" && o.mode != "forward") usage(argv[0], "--mode is train or forward, got '" + o.mode + "'");
    } else if (a == "--batch") o.batch = parse_number<index_t>(argv[0], a, value(), 1);
    else if (a == "--size") o.size = parse_number<index_t>(argv[0], a, value(), 29);
    else if (a == "--channels") o.channels = parse_number<index_t>(argv[0], a, value(), 1);
    else if (a == "--classes") o.classes = parse_number<index_t>(argv[0], a, value(), 1);
    else if (a == "--device") o.device = parse_number<int>(argv[0], a, value(), 0);
    else if (a == "--warmup") o.warmup = parse_number<int>(argv[0], a, value(), 0);
    else if (a == "--steps") o.steps = parse_number<int>(argv[0], a, value(), 1);
    else if (a == "--seed") o.seed = parse_number<std::uint64_t>(argv[0], a, value(), 0);
    else if (a == "--memory-efficient") o.memory_efficient = true;
    else if (a == "--allow-tf32") o.allow_tf32 = true;
    else if (a == "--json") o.json = true;
    else usage(argv[0], "unknown argument '" + std::string(a) + "'");
  }
  return o;
}

/// Throws with the call's text when a CUDA runtime call of the benchmark itself fails.
void cuda_ok(cudaError_t e, const char* call) {
  if (e != cudaSuccess)
    throw std::runtime_error(std::string(call) + ": " + cudaGetErrorName(e) + ": " + cudaGetErrorString(e));
}
#define BENCH_CUDA(call) cuda_ok((call), #call)

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// CUDA events at the phase boundaries of one step, recorded on the context's stream.
struct step_events {
  cudaEvent_t e[5]{};
  step_events() {
    for (auto& x : e) BENCH_CUDA(cudaEventCreate(&x));
  }
  ~step_events() {
    for (auto& x : e) cudaEventDestroy(x);
  }
  step_events(const step_events&) = delete;
  step_events& operator=(const step_events&) = delete;
  void record(int i, cudaStream_t s) { BENCH_CUDA(cudaEventRecord(e[i], s)); }
  double seconds(int a, int b) const {
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, e[a], e[b]));
    return 1e-3 * static_cast<double>(ms);
  }
};

struct step_times {
  double total = 0, forward = 0, loss = 0, backward = 0, optimizer = 0;
  double wall = 0;  ///< host clock around the synchronised step, a cross-check of the events
};

struct result {
  std::vector<step_times> steps;
  std::vector<double> losses;
  std::int64_t parameters = 0;
  double setup_s = 0;
  std::size_t device_used_peak = 0;  ///< max over the steps of (total - free) from cudaMemGetInfo
  std::size_t device_used_before = 0;  ///< (total - free) after the context was made, before the model
  std::string gpu;
};

std::size_t device_used() {
  std::size_t free_b = 0, total_b = 0;
  BENCH_CUDA(cudaMemGetInfo(&free_b, &total_b));
  return total_b - free_b;
}

result run(const options& o) {
  result r;
  const auto t_setup = clock_type::now();
  BENCH_CUDA(cudaSetDevice(o.device));
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, o.device));
  r.gpu = prop.name;
  B::context ctx(o.device);
  ctx.allow_tf32 = o.allow_tf32;
  r.device_used_before = device_used();
  const cudaStream_t stream = ctx.stream();

  // Weights and input are made on the host from the seeds (as bench_train_step does) and copied once.
  model_t model({.in_channels = o.channels, .num_classes = o.classes, .memory_efficient = o.memory_efficient});
  {
    models::densenet<cpu_backend, models::densenet121> host(
        {.in_channels = o.channels, .num_classes = o.classes, .memory_efficient = o.memory_efficient});
    host.init(o.seed);
    testing::copy_state(host, model);
  }
  r.parameters = model.parameter_count();
  tensor<B> x;
  {
    tensor<cpu_backend> xh(shape{o.batch, o.channels, o.size, o.size});
    rng g(o.seed + 1);
    for (index_t i = 0; i < xh.numel(); ++i) xh.data()[i] = static_cast<float>(g.normal());
    x = to<B>(xh);
  }
  std::vector<int> labels(static_cast<std::size_t>(o.batch));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(static_cast<index_t>(i) % o.classes);

  const losses::cross_entropy loss;
  std::optional<optim::sgd<B>> opt;
  if (o.mode == "train")
    opt.emplace(optim::collect_parameters(model), optim::sgd<B>::options{.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
  tensor<B> dlogits;
  ctx.synchronize();
  r.setup_s = seconds_since(t_setup);
  // The peak from here on: weights, gradients, momentum buffers and input stay live (they count), the
  // host-side setup copies do not; PyTorch's side resets its peak at the same point.
  B::reset_peak_memory_stats();

  step_events ev;
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    step_times t;
    ctx.synchronize();
    const auto w0 = clock_type::now();
    ev.record(0, stream);
    if (o.mode == "train") {
      model_t::cache cache;
      const tensor<B> logits = model.forward(ctx, x, cache);
      ev.record(1, stream);
      const double l = loss.value_and_gradient<B>(ctx, logits, labels, &dlogits);
      ev.record(2, stream);
      model.backward(ctx, cache, dlogits, grad_mode::overwrite);
      ev.record(3, stream);
      opt->step(ctx);
      ev.record(4, stream);
      BENCH_CUDA(cudaEventSynchronize(ev.e[4]));
      MAMMOCL_CHECK(std::isfinite(l), numeric_error, "bench_train_step_gpu: the loss is not finite");
      t.forward = ev.seconds(0, 1);
      t.loss = ev.seconds(1, 2);
      t.backward = ev.seconds(2, 3);
      t.optimizer = ev.seconds(3, 4);
      t.total = ev.seconds(0, 4);
      if (s >= o.warmup) r.losses.push_back(l);
    } else {
      const tensor<B> logits = model.infer(ctx, x);
      ev.record(4, stream);
      BENCH_CUDA(cudaEventSynchronize(ev.e[4]));
      t.forward = t.total = ev.seconds(0, 4);
      // Read the result, so a broken forward pass is caught.
      MAMMOCL_CHECK(B::all_finite(ctx, logits), numeric_error, "bench_train_step_gpu: the logits are not finite");
    }
    t.wall = seconds_since(w0);
    r.device_used_peak = std::max(r.device_used_peak, device_used());
    if (s >= o.warmup) r.steps.push_back(t);
  }
  return r;
}

template <class F>
double median_of(const std::vector<step_times>& v, F&& f) {
  std::vector<double> x;
  for (const auto& s : v) x.push_back(f(s));
  return median(x);
}

std::string json_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    if (c == '"' || c == '\\') o += '\\';
    if (static_cast<unsigned char>(c) >= 0x20) o += c;
  }
  return o;
}

void print_json(const options& o, const result& r, double med) {
  const auto mem = B::memory_stats();
  std::ostringstream js;
  js.precision(6);
  js << "{\"framework\":\"mammocl\",\"device\":\"cuda\",\"gpu\":\"" << json_escape(r.gpu) << "\",\"mode\":\"" << o.mode
     << "\",\"batch\":" << o.batch << ",\"size\":" << o.size << ",\"channels\":" << o.channels
     << ",\"classes\":" << o.classes << ",\"warmup\":" << o.warmup << ",\"steps\":" << o.steps
     << ",\"memory_efficient\":" << (o.memory_efficient ? "true" : "false")
     << ",\"allow_tf32\":" << (o.allow_tf32 ? "true" : "false") << ",\"parameters\":" << r.parameters
     << ",\"images_per_s\":" << static_cast<double>(o.batch) / med << ",\"median_step_s\":" << med << ",\"step_s\":[";
  for (std::size_t i = 0; i < r.steps.size(); ++i) js << (i ? "," : "") << r.steps[i].total;
  js << "],\"wall_median_s\":" << median_of(r.steps, [](auto& s) { return s.wall; })
     << ",\"phase_median_s\":{\"forward\":" << median_of(r.steps, [](auto& s) { return s.forward; })
     << ",\"loss\":" << median_of(r.steps, [](auto& s) { return s.loss; })
     << ",\"backward\":" << median_of(r.steps, [](auto& s) { return s.backward; })
     << ",\"optimizer\":" << median_of(r.steps, [](auto& s) { return s.optimizer; }) << "},\"losses\":[";
  for (std::size_t i = 0; i < r.losses.size(); ++i) js << (i ? "," : "") << r.losses[i];
  js << "],\"setup_s\":" << r.setup_s << ",\"peak_in_use_bytes\":" << mem.peak_in_use
     << ",\"in_use_bytes\":" << mem.in_use << ",\"reserved_bytes\":" << mem.reserved
     << ",\"device_used_bytes\":" << r.device_used_peak << ",\"device_used_before_model_bytes\":" << r.device_used_before
     << "}";
  std::cout << js.str() << std::endl;
}

void print_text(const options& o, const result& r, double med) {
  const double mib = 1024.0 * 1024.0;
  const auto mem = B::memory_stats();
  std::printf("DenseNet-121 %s on %s, input (%lld,%lld,%lld,%lld)%s%s, %lld parameters\n", o.mode.c_str(),
              r.gpu.c_str(), static_cast<long long>(o.batch), static_cast<long long>(o.channels),
              static_cast<long long>(o.size), static_cast<long long>(o.size), o.memory_efficient ? ", memory-efficient" : "",
              o.allow_tf32 ? ", TF32 allowed" : ", float32 math", static_cast<long long>(r.parameters));
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    const auto& s = r.steps[i];
    if (o.mode == "train")
      std::printf("  step %zu: %.4f s (forward %.4f, loss %.5f, backward %.4f, sgd %.5f; wall %.4f), loss %.5f\n",
                  i + 1, s.total, s.forward, s.loss, s.backward, s.optimizer, s.wall, r.losses[i]);
    else
      std::printf("  step %zu: %.4f s (wall %.4f)\n", i + 1, s.total, s.wall);
  }
  std::printf("median step %.4f s = %.1f images/s (%d warm-up step(s) discarded)\n", med,
              static_cast<double>(o.batch) / med, o.warmup);
  std::printf("device memory: peak in use %.1f MiB, reserved %.1f MiB (caching allocator); device used %.1f MiB "
              "(cudaMemGetInfo, %.1f MiB before the model); setup %.2f s\n",
              static_cast<double>(mem.peak_in_use) / mib, static_cast<double>(mem.reserved) / mib,
              static_cast<double>(r.device_used_peak) / mib, static_cast<double>(r.device_used_before) / mib, r.setup_s);
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices <= o.device) {
    std::cerr << "bench_train_step_gpu: no CUDA device " << o.device << " (cudaGetDeviceCount: "
              << (e != cudaSuccess ? cudaGetErrorString(e) : std::to_string(devices) + " device(s)") << ")\n";
    return 3;
  }
  try {
    const result r = run(o);
    std::vector<double> totals;
    for (const auto& s : r.steps) totals.push_back(s.total);
    const double med = median(totals);
    if (o.json) print_json(o, r, med);
    else print_text(o, r, med);
  } catch (const std::exception& ex) {
    std::cerr << "bench_train_step_gpu: " << ex.what() << "\n";
    return 1;
  }
  return 0;
}

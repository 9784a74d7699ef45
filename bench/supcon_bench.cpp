// bench_supcon: the SupCon workloads of issue 3 on the CPU backend, float32 tensors.
//
//   --workload loss   one call = losses::supcon::value_and_gradient on features (B,V,D) with labels from
//                     --classes classes (sample b has label b mod classes), temperature 0.1;
//                     --normalize: raw features, L2-normalised inside (value and gradient through the
//                     normalisation, the strategy's setting); --unit: rows already of unit norm.
//   --workload step   one call = train::strategies::supcon_linear<densenet<cpu_backend, densenet_small>>
//                     ::train_step in stage 0: forward of both views through the encoder (BN over both
//                     views), MLP projector (hidden = feature width, out 128), SupCon with normalisation,
//                     backward, gradient finiteness check, SGD (momentum 0.9, weight decay 1e-4) step.
//                     The batch (--batch samples x 2 views of --size² one-channel synthetic patches) is
//                     generated once before timing: the data pipeline is not part of the step.
//   --values-in F     check mode: read features and labels from F (format below), compute the loss once
//                     (--normalize or --unit), print it as JSON and write ∂L/∂features to --values-out.
//
// The first --warmup calls are discarded (allocation, first-touch page faults); the next --steps are timed
// one by one and the median is reported, with the process's CPU time per wall time of every call (near
// --threads when nothing else competes for the cores). Peak memory is VmHWM from /proc/self/status.
// Output: one JSON line per run (bench/compare_supcon.py parses it), or a short text summary without --json.
//
// --values-in file: little-endian, "SCV1", int32 B, V, D, B int32 labels, B·V·D float32 features (B,V,D).
// --values-out file: B·V·D float32, the gradient in the same layout (written to a temporary file, renamed).
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/data/synthetic_domains.hpp"
#include "mammocl/losses/supcon.hpp"
#include "mammocl/models/densenet.hpp"
#include "mammocl/train/strategies.hpp"
#include "bench_cli.hpp"

namespace {

using namespace mammocl;
using B = cpu_backend;
using model_t = models::densenet<B, models::densenet_small>;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string workload = "loss";
  index_t batch = 0;  // 0: 256 for loss, 32 for step
  index_t views = 2;
  index_t dim = 128;
  int classes = 5;
  index_t size = 64;
  double temperature = 0.1;
  bool normalize = true;
  int threads = 1;
  int warmup = 3;
  int steps = 0;  // 0: 20 for loss, 7 for step
  std::uint64_t seed = 1;
  bool json = false;
  bool profile = false;
  std::string values_in, values_out;
};

[[noreturn]] void usage(const char* argv0, const std::string& error = {}) {
  std::ostream& os = error.empty() ? std::cout : std::cerr;
  if (!error.empty()) os << argv0 << ": " << error << "\n\n";
  os << "usage: " << argv0
     << " [--workload loss|step] [--batch N] [--views V] [--dim D] [--classes K] [--size S]\n"
        "       [--temperature T] [--normalize|--unit] [--threads T] [--warmup W] [--steps N] [--seed S]\n"
        "       [--profile] [--json]\n"
        "       " << argv0 << " --values-in FILE --values-out FILE [--normalize|--unit] [--temperature T]\n\n"
        "  loss  SupCon value + gradient, features (N,V,D); defaults N 256, V 2, D 128, 5 classes, --normalize\n"
        "  step  one SupContr stage-1 step of the small DenseNet (1 channel) + MLP projector (out --dim);\n"
        "        defaults N 32 samples x 2 views, 64x64\n"
        "  defaults: 1 thread, 3 warm-up calls, 20 timed calls (loss) or 7 (step)\n"
        "  --profile  (loss) also time the loss's parts in isolation: its two double GEMMs, the same GEMMs in\n"
        "             float, and the exp pass over the N x N logits\n";
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
    else if (a == "--workload") {
      o.workload = value();
      if (o.workload != "loss" && o.workload != "step")
        usage(argv[0], "--workload is loss or step, got '" + o.workload + "'");
    } else if (a == "--batch") o.batch = parse_number<index_t>(argv[0], a, value(), 1);
    else if (a == "--views") o.views = parse_number<index_t>(argv[0], a, value(), 1);
    else if (a == "--dim") o.dim = parse_number<index_t>(argv[0], a, value(), 1);
    else if (a == "--classes") o.classes = parse_number<int>(argv[0], a, value(), 2);
    else if (a == "--size") o.size = parse_number<index_t>(argv[0], a, value(), 32);
    else if (a == "--temperature") {
      const std::string t(value());
      char* end = nullptr;
      o.temperature = std::strtod(t.c_str(), &end);
      if (end != t.c_str() + t.size() || !(o.temperature > 0)) usage(argv[0], "--temperature needs a number > 0");
    } else if (a == "--normalize") o.normalize = true;
    else if (a == "--unit") o.normalize = false;
    else if (a == "--threads") o.threads = parse_number<int>(argv[0], a, value(), 1);
    else if (a == "--warmup") o.warmup = parse_number<int>(argv[0], a, value(), 0);
    else if (a == "--steps") o.steps = parse_number<int>(argv[0], a, value(), 1);
    else if (a == "--seed") o.seed = parse_number<std::uint64_t>(argv[0], a, value(), 0);
    else if (a == "--json") o.json = true;
    else if (a == "--profile") o.profile = true;
    else if (a == "--values-in") o.values_in = value();
    else if (a == "--values-out") o.values_out = value();
    else usage(argv[0], "unknown argument '" + std::string(a) + "'");
  }
  if (o.batch == 0) o.batch = o.workload == "loss" ? 256 : 32;
  if (o.steps == 0) o.steps = o.workload == "loss" ? 20 : 7;
  if (o.workload == "step" && o.views != 2) usage(argv[0], "--workload step takes 2 views (SupContr stage 1)");
  if (o.values_in.empty() != o.values_out.empty()) usage(argv[0], "--values-in and --values-out go together");
  return o;
}

/// A field of /proc/self/status in bytes ("VmHWM", "VmRSS"); 0 when unavailable.
std::int64_t proc_status_bytes(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const std::size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0 && line.size() > n && line[n] == ':') {
      std::istringstream is(line.substr(n + 1));
      std::int64_t kib = 0;
      is >> kib;
      return kib * 1024;
    }
  }
  return 0;
}

/// User + system CPU time of the whole process (all threads), in seconds.
double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return s(u.ru_utime) + s(u.ru_stime);
}

/// The 1-minute load average (other processes competing for the cores), or -1.
double load_average() {
  std::ifstream in("/proc/loadavg");
  double l = -1;
  in >> l;
  return l;
}

double median(std::vector<double> v) {
  if (v.empty()) return std::nan("");
  std::sort(v.begin(), v.end());
  const std::size_t m = v.size() / 2;
  return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

/// Wall time and CPU time of every timed call, and the value each call returned.
struct timings {
  std::vector<double> wall, cpu_per_wall, values;
};

/// Runs f() warmup + steps times and records the timed calls.
template <class F>
timings measure(int warmup, int steps, F&& f) {
  timings t;
  for (int s = 0; s < warmup + steps; ++s) {
    const double c0 = cpu_seconds();
    const auto t0 = clock_type::now();
    const double v = f();
    const double w = seconds_since(t0);
    const double c = cpu_seconds() - c0;
    if (s < warmup) continue;
    t.wall.push_back(w);
    t.cpu_per_wall.push_back(c / w);
    t.values.push_back(v);
  }
  return t;
}

/// Features (B,V,D) from N(0,1), or rows scaled to unit norm for --unit; labels b mod classes.
tensor<B> make_features(index_t nb, index_t nv, index_t d, bool unit, std::uint64_t seed) {
  tensor<B> f(shape{nb, nv, d});
  rng g(seed);
  for (index_t i = 0; i < f.numel(); ++i) f.data()[i] = static_cast<float>(g.normal());
  if (unit) {
    for (index_t r = 0; r < nb * nv; ++r) {
      float* row = f.data() + r * d;
      double s2 = 0;
      for (index_t k = 0; k < d; ++k) s2 += static_cast<double>(row[k]) * row[k];
      const double inv = 1.0 / std::sqrt(s2);
      for (index_t k = 0; k < d; ++k) row[k] = static_cast<float>(row[k] * inv);
    }
  }
  return f;
}

std::vector<int> make_labels(index_t nb, int classes) {
  std::vector<int> y(static_cast<std::size_t>(nb));
  for (index_t b = 0; b < nb; ++b) y[static_cast<std::size_t>(b)] = static_cast<int>(b % classes);
  return y;
}

void json_timings(std::ostringstream& js, const timings& t) {
  js << ",\"median_s\":" << median(t.wall) << ",\"call_s\":[";
  for (std::size_t i = 0; i < t.wall.size(); ++i) js << (i ? "," : "") << t.wall[i];
  js << "],\"cpu_per_wall\":" << median(t.cpu_per_wall) << ",\"load_average\":" << load_average();
}

void print_text_timings(const options& o, const timings& t) {
  const double cpw = median(t.cpu_per_wall);
  std::printf("median %.3f ms over %d call(s) after %d warm-up; CPU time / wall time %.2f (of %d threads); "
              "1-minute load average %.2f\n",
              1e3 * median(t.wall), o.steps, o.warmup, cpw, o.threads, load_average());
  if (cpw < 0.8 * o.threads)
    std::printf("WARNING: CPU time / wall time %.2f is well below %d threads: other processes competed for the cores\n",
                cpw, o.threads);
}

// ------------------------------------------------------------------------------------------------ loss

/// Times the loss's parts in isolation with its shapes: S = Z Zᵀ (N×N×D) and H Z (N×D×N) in double, the
/// same two products in float, and exp over N² values. JSON object of medians in seconds.
std::string profile_loss(const options& o) {
  const index_t n = o.batch * o.views, d = o.dim;
  const auto sz = [](index_t k) { return static_cast<std::size_t>(k); };
  rng g(o.seed + 7);
  std::vector<double> zd(sz(n * d)), hd(sz(n * n)), sd(sz(n * n)), outd(sz(n * d));
  for (auto& v : zd) v = g.normal() / std::sqrt(static_cast<double>(d));
  for (auto& v : hd) v = g.normal() * 1e-3;
  std::vector<float> zf(zd.begin(), zd.end()), hf(hd.begin(), hd.end()), sf(sz(n * n)), outf(sz(n * d));
  cpu_backend_f64::context cd(o.threads);
  cpu_backend::context cf(o.threads);
  const int reps = std::max(o.steps, 5);
  auto med = [&](auto&& f) { return median(measure(o.warmup, reps, [&] { f(); return 0.0; }).wall); };
  const double g1d = med([&] { cpu_backend_f64::gemm(cd, false, true, n, n, d, 10.0, zd.data(), d, zd.data(), d, 0.0, sd.data(), n); });
  const double g2d = med([&] { cpu_backend_f64::gemm(cd, false, false, n, d, n, 1.0, hd.data(), n, zd.data(), d, 0.0, outd.data(), d); });
  const double g1f = med([&] { cpu_backend::gemm(cf, false, true, n, n, d, 10.0f, zf.data(), d, zf.data(), d, 0.0f, sf.data(), n); });
  const double g2f = med([&] { cpu_backend::gemm(cf, false, false, n, d, n, 1.0f, hf.data(), n, zf.data(), d, 0.0f, outf.data(), d); });
  double sink = 0;
  const double ex = med([&] {
    double acc = 0;
    for (std::size_t i = 0; i < sd.size(); ++i) acc += std::exp(sd[i] - 10.0);
    sink += acc;
  });
  const double gflop = 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(d) / 1e9;
  std::ostringstream js;
  js.precision(6);
  js << "{\"gemm_zzT_f64_s\":" << g1d << ",\"gemm_hz_f64_s\":" << g2d << ",\"gemm_zzT_f32_s\":" << g1f
     << ",\"gemm_hz_f32_s\":" << g2f << ",\"exp_pass_f64_s\":" << ex << ",\"gflop_per_gemm\":" << gflop
     << ",\"sink\":" << (std::isfinite(sink) ? 0 : 1) << "}";
  return js.str();
}

int run_loss(const options& o) {
  const tensor<B> f = make_features(o.batch, o.views, o.dim, !o.normalize, o.seed);
  const std::vector<int> y = make_labels(o.batch, o.classes);
  const losses::supcon loss({.temperature = o.temperature, .base_temperature = o.temperature,
                             .normalize = o.normalize, .num_classes = o.classes});
  B::context ctx(o.threads);
  tensor<B> grad;
  const timings t = measure(o.warmup, o.steps, [&] { return loss.value_and_gradient<B>(ctx, f, y, &grad); });
  double gsum = 0;
  for (index_t i = 0; i < grad.numel(); ++i) gsum += std::abs(static_cast<double>(grad.data()[i]));
  MAMMOCL_CHECK(std::isfinite(gsum), numeric_error, "bench_supcon: the gradient is not finite");
  const std::int64_t hwm = proc_status_bytes("VmHWM");
  const std::string prof = o.profile ? profile_loss(o) : std::string();
  if (o.json) {
    std::ostringstream js;
    js.precision(9);
    js << "{\"framework\":\"mammocl\",\"workload\":\"loss\",\"batch\":" << o.batch << ",\"views\":" << o.views
       << ",\"dim\":" << o.dim << ",\"classes\":" << o.classes << ",\"temperature\":" << o.temperature
       << ",\"normalize\":" << (o.normalize ? "true" : "false") << ",\"threads\":" << o.threads
       << ",\"warmup\":" << o.warmup << ",\"steps\":" << o.steps << ",\"loss\":" << t.values.back()
       << ",\"grad_abs_sum\":" << gsum;
    json_timings(js, t);
    js << ",\"peak_rss_bytes\":" << hwm;
    if (!prof.empty()) js << ",\"profile\":" << prof;
    js << "}";
    std::cout << js.str() << std::endl;
  } else {
    std::printf("SupCon value + gradient, features (%lld,%lld,%lld), %d classes, tau %g, %s, %d thread(s): loss %.6f\n",
                static_cast<long long>(o.batch), static_cast<long long>(o.views), static_cast<long long>(o.dim),
                o.classes, o.temperature, o.normalize ? "normalised inside" : "unit rows", o.threads, t.values.back());
    print_text_timings(o, t);
    std::printf("peak RSS %.1f MiB\n", static_cast<double>(hwm) / (1024.0 * 1024.0));
    if (!prof.empty()) std::printf("profile: %s\n", prof.c_str());
  }
  return 0;
}

// ------------------------------------------------------------------------------------------------ values check

template <class T>
T read_le(std::istream& in, const std::string& path, const char* what) {
  T v{};
  in.read(reinterpret_cast<char*>(&v), sizeof(T));
  MAMMOCL_CHECK(in.good(), io_error, path, ": truncated while reading ", what);
  return v;
}

int run_values(const options& o) {
  std::ifstream in(o.values_in, std::ios::binary);
  MAMMOCL_CHECK(in.is_open(), io_error, o.values_in, ": cannot open");
  char magic[4] = {};
  in.read(magic, 4);
  MAMMOCL_CHECK(in.good() && std::memcmp(magic, "SCV1", 4) == 0, io_error, o.values_in, ": expected magic SCV1");
  const auto nb = read_le<std::int32_t>(in, o.values_in, "B");
  const auto nv = read_le<std::int32_t>(in, o.values_in, "V");
  const auto d = read_le<std::int32_t>(in, o.values_in, "D");
  MAMMOCL_CHECK(nb >= 1 && nv >= 1 && d >= 1, io_error, o.values_in, ": B, V, D = ", nb, ", ", nv, ", ", d,
                " must all be >= 1");
  std::vector<int> y(static_cast<std::size_t>(nb));
  for (auto& v : y) v = read_le<std::int32_t>(in, o.values_in, "labels");
  tensor<B> f(shape{nb, nv, d});
  in.read(reinterpret_cast<char*>(f.data()), static_cast<std::streamsize>(sizeof(float) * static_cast<std::size_t>(f.numel())));
  MAMMOCL_CHECK(in.good(), io_error, o.values_in, ": truncated while reading ", f.numel(), " features");
  const losses::supcon loss({.temperature = o.temperature, .base_temperature = o.temperature, .normalize = o.normalize});
  B::context ctx(o.threads);
  tensor<B> grad;
  const double l = loss.value_and_gradient<B>(ctx, f, y, &grad);
  const std::string tmp = o.values_out + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(grad.data()),
              static_cast<std::streamsize>(sizeof(float) * static_cast<std::size_t>(grad.numel())));
    out.close();
    MAMMOCL_CHECK(out.good(), io_error, tmp, ": write failed");
  }
  MAMMOCL_CHECK(std::rename(tmp.c_str(), o.values_out.c_str()) == 0, io_error, "cannot rename ", tmp, " to ",
                o.values_out);
  std::ostringstream js;
  js.precision(17);
  js << "{\"framework\":\"mammocl\",\"workload\":\"values\",\"batch\":" << nb << ",\"views\":" << nv << ",\"dim\":" << d
     << ",\"normalize\":" << (o.normalize ? "true" : "false") << ",\"loss\":" << l << "}";
  std::cout << js.str() << std::endl;
  return 0;
}

// ------------------------------------------------------------------------------------------------ step

int run_step(const options& o) {
  B::context ctx(o.threads);
  model_t model({.in_channels = 1, .num_classes = o.classes});
  model.init(o.seed);
  train::strategy_options so;
  so.num_classes = o.classes;
  so.temperature = so.base_temperature = o.temperature;
  so.projector_out = o.dim;  // hidden 0: the feature width
  so.stage1.lr = 0.05;
  so.stage1.momentum = 0.9;
  so.stage1.weight_decay = 1e-4;
  so.seed = o.seed;
  train::strategies::supcon_linear<model_t> strategy(model, so);
  strategy.begin_stage(0);
  const std::int64_t parameters = model.parameter_count() - model.classifier().opts().out_features *
                                                                 (model.classifier().opts().in_features + 1);
  std::int64_t projector_parameters = 0;
  strategy.projector().for_each_parameter("projector.", [&](const std::string&, auto& p) {
    projector_parameters += p.value.numel();
  });

  data::synthetic_domain_task_options to;
  to.patches.size = static_cast<int>(o.size);
  to.patches.seed = o.seed;
  to.count = o.batch;
  to.batch_size = static_cast<int>(o.batch);
  to.kind = data::synthetic_domain_task_options::variant::domain_a;
  const data::synthetic_domain_task task(to);
  const data::batch b = task.get_batch({.stage = 0, .epoch = 0, .index = 0, .views = 2});

  train::step_context sc{.stage = 0, .epoch = 0, .step = 0, .stage_step = 0, .stage_steps = 1, .lr = so.stage1.lr};
  const std::int64_t rss_setup = proc_status_bytes("VmRSS");
  const timings t = measure(o.warmup, o.steps, [&] { return strategy.train_step(ctx, b, sc).loss; });
  for (double v : t.values) MAMMOCL_CHECK(std::isfinite(v), numeric_error, "bench_supcon: a step's loss is not finite");
  const std::int64_t hwm = proc_status_bytes("VmHWM");

  // The loss alone at the step's shape (after peak RSS is read): its share of the step.
  const losses::supcon loss({.temperature = o.temperature, .base_temperature = o.temperature, .normalize = true});
  const tensor<B> f = make_features(o.batch, 2, o.dim, false, o.seed + 3);
  tensor<B> grad;
  const double loss_s = median(
      measure(o.warmup, o.steps, [&] { return loss.value_and_gradient<B>(ctx, f, b.labels, &grad); }).wall);

  const double med = median(t.wall);
  const double images = static_cast<double>(2 * o.batch);
  if (o.json) {
    std::ostringstream js;
    js.precision(9);
    js << "{\"framework\":\"mammocl\",\"workload\":\"step\",\"batch\":" << o.batch << ",\"views\":2,\"size\":" << o.size
       << ",\"dim\":" << o.dim << ",\"classes\":" << o.classes << ",\"threads\":" << o.threads
       << ",\"warmup\":" << o.warmup << ",\"steps\":" << o.steps << ",\"encoder_parameters\":" << parameters
       << ",\"projector_parameters\":" << projector_parameters << ",\"feature_dim\":" << model.classifier().opts().in_features
       << ",\"losses\":[";
    for (std::size_t i = 0; i < t.values.size(); ++i) js << (i ? "," : "") << t.values[i];
    js << "]";
    json_timings(js, t);
    js << ",\"images_per_s\":" << images / med << ",\"loss_alone_s\":" << loss_s
       << ",\"rss_after_setup_bytes\":" << rss_setup << ",\"peak_rss_bytes\":" << hwm << "}";
    std::cout << js.str() << std::endl;
  } else {
    std::printf("SupContr stage-1 step, densenet_small (1 channel, %lld features, %lld encoder parameters) + projector "
                "(%lld parameters), %lld samples x 2 views of %lldx%lld, %d thread(s)\n",
                static_cast<long long>(model.classifier().opts().in_features), static_cast<long long>(parameters),
                static_cast<long long>(projector_parameters), static_cast<long long>(o.batch),
                static_cast<long long>(o.size), static_cast<long long>(o.size), o.threads);
    for (std::size_t i = 0; i < t.wall.size(); ++i)
      std::printf("  step %zu: %.2f ms, loss %.5f\n", i + 1, 1e3 * t.wall[i], t.values[i]);
    print_text_timings(o, t);
    std::printf("%.1f images/s (both views counted); the SupCon loss alone at this shape %.2f ms (%.0f%% of the step)\n",
                images / med, 1e3 * loss_s, 100.0 * loss_s / med);
    std::printf("peak RSS %.1f MiB (VmHWM); RSS after setup %.1f MiB\n", static_cast<double>(hwm) / (1024.0 * 1024.0),
                static_cast<double>(rss_setup) / (1024.0 * 1024.0));
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
#ifdef _OPENMP
  omp_set_num_threads(o.threads);
#endif
  try {
    if (!o.values_in.empty()) return run_values(o);
    return o.workload == "loss" ? run_loss(o) : run_step(o);
  } catch (const std::exception& e) {
    std::cerr << "bench_supcon: " << e.what() << "\n";
    return 1;
  }
}

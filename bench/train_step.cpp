// bench_train_step: wall-clock throughput and peak memory of DenseNet-121 on the CPU backend.
//
//   --mode train    one step = forward (training mode), cross-entropy, backward (grad_mode::overwrite),
//                   SGD update (lr 0.01, momentum 0.9, weight decay 1e-4; optim::sgd)
//   --mode forward  one step = model.infer (running BN statistics, no cache)
//
// The first --warmup steps are run and discarded (allocator, scratch buffers, first-touch page faults);
// the next --steps are timed one by one and the median is reported. Peak memory is the process's
// high-water mark: VmHWM from /proc/self/status, and getrusage's ru_maxrss as a cross-check.
//
// Output: a human-readable summary, or with --json one JSON line (see print_json) that
// bench/compare_libtorch.py parses.
#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <fstream>
#include <iostream>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mammocl/mammocl.hpp"
#include "mammocl/optim/sgd.hpp"
#include "bench_cli.hpp"

namespace {

using namespace mammocl;
using B = cpu_backend;
using model_t = models::densenet<B, models::densenet121>;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string mode = "train";
  index_t batch = 8;
  index_t size = 224;
  index_t channels = 3;
  index_t classes = 5;
  int threads = 2;
  int warmup = 2;
  int steps = 5;
  bool memory_efficient = false;
  bool json = false;
  bool breakdown = false;
  std::uint64_t seed = 1;
};

[[noreturn]] void usage(const char* argv0, const std::string& error = {}) {
  std::ostream& os = error.empty() ? std::cout : std::cerr;
  if (!error.empty()) os << argv0 << ": " << error << "\n\n";
  os << "usage: " << argv0
     << " [--mode train|forward] [--batch N] [--size S] [--channels C] [--classes K] [--threads T]\n"
        "       [--warmup W] [--steps N] [--memory-efficient] [--seed S] [--json] [--breakdown]\n\n"
        "DenseNet-121 on the CPU backend, float32, input (N,C,S,S). Defaults: train, batch 8, size 224,\n"
        "3 channels, 5 classes, 2 threads, 2 warm-up steps, 5 timed steps.\n"
        "  train    forward + cross-entropy + backward + SGD (momentum 0.9, weight decay 1e-4)\n"
        "  forward  model.infer (inference mode)\n"
        "  --json   print one JSON line: images_per_s (median), step_s (every timed step), phase medians,\n"
        "           peak_rss_bytes (VmHWM) and ru_maxrss_bytes\n"
        "  --breakdown  after the measurement (and after peak RSS is read), replay the network layer by layer\n"
        "           with the same shapes and time every layer kind, forward and backward (--warmup + --steps\n"
        "           replays, medians reported)\n";
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
    else if (a == "--threads") o.threads = parse_number<int>(argv[0], a, value(), 1);
    else if (a == "--warmup") o.warmup = parse_number<int>(argv[0], a, value(), 0);
    else if (a == "--steps") o.steps = parse_number<int>(argv[0], a, value(), 1);
    else if (a == "--seed") o.seed = parse_number<std::uint64_t>(argv[0], a, value(), 0);
    else if (a == "--memory-efficient") o.memory_efficient = true;
    else if (a == "--json") o.json = true;
    else if (a == "--breakdown") o.breakdown = true;
    else usage(argv[0], "unknown argument '" + std::string(a) + "'");
  }
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

std::int64_t ru_maxrss_bytes() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<std::int64_t>(u.ru_maxrss) * 1024;  // Linux reports KiB
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

struct step_times {
  double total = 0, forward = 0, loss = 0, backward = 0, optimizer = 0;
  double cpu = 0;  ///< process CPU seconds during the step; cpu/total near --threads means no contention
};

struct result {
  std::vector<step_times> steps;
  std::vector<double> losses;
  std::int64_t parameters = 0;
  std::int64_t rss_after_setup = 0;
  double setup_s = 0;
};

result run(const options& o) {
  result r;
  const auto t_setup = clock_type::now();
  B::context ctx(o.threads);
  model_t model({.in_channels = o.channels, .num_classes = o.classes, .memory_efficient = o.memory_efficient});
  model.init(o.seed);
  r.parameters = model.parameter_count();

  tensor<B> x(shape{o.batch, o.channels, o.size, o.size});
  {
    rng g(o.seed + 1);
    for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(g.normal());
  }
  std::vector<int> labels(static_cast<std::size_t>(o.batch));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(static_cast<index_t>(i) % o.classes);

  const losses::cross_entropy loss;
  std::optional<optim::sgd<B>> opt;
  if (o.mode == "train")
    opt.emplace(optim::collect_parameters(model), optim::sgd<B>::options{.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
  tensor<B> dlogits;
  r.setup_s = seconds_since(t_setup);
  r.rss_after_setup = proc_status_bytes("VmRSS");

  for (int s = 0; s < o.warmup + o.steps; ++s) {
    step_times t;
    const double c0 = cpu_seconds();
    const auto t0 = clock_type::now();
    if (o.mode == "train") {
      auto t1 = clock_type::now();
      model_t::cache cache;
      const tensor<B> logits = model.forward(ctx, x, cache);
      t.forward = seconds_since(t1);
      t1 = clock_type::now();
      const double l = loss.value_and_gradient<B>(ctx, logits, labels, &dlogits);
      t.loss = seconds_since(t1);
      t1 = clock_type::now();
      model.backward(ctx, cache, dlogits, grad_mode::overwrite);
      t.backward = seconds_since(t1);
      t1 = clock_type::now();
      opt->step(ctx);
      t.optimizer = seconds_since(t1);
      if (s >= o.warmup) r.losses.push_back(l);  // one per timed step, like r.steps
    } else {
      const tensor<B> logits = model.infer(ctx, x);
      // Touch the result so the work cannot be considered dead, and catch a broken forward pass.
      double s_abs = 0;
      for (index_t i = 0; i < logits.numel(); ++i) s_abs += std::abs(static_cast<double>(logits.data()[i]));
      MAMMOCL_CHECK(std::isfinite(s_abs), numeric_error, "bench_train_step: the logits are not finite");
      t.forward = seconds_since(t0);
    }
    t.total = seconds_since(t0);
    t.cpu = cpu_seconds() - c0;
    if (s >= o.warmup) r.steps.push_back(t);
  }
  return r;
}

// ---------------------------------------------------------------------------------- per-layer-kind breakdown
//
// A replay of DenseNet-121 built from the public layer classes with the model's shapes and data flow (the
// shared concatenation buffer of each dense block, the strided channel views, the same backward calls and
// accumulation), timing every call by the kind of layer it belongs to. It answers "where does the step go";
// the model itself is what the headline figures measure, and the replay's total is printed next to it.

// Dense-block convolutions are split by block, i.e. by feature-map size (56, 28, 14, 7 at 224x224 input):
// the same operation behaves very differently on a 56x56 map and on a 7x7 one.
enum kind : int {
  k_conv0,
  k_dense1x1,                 // + block index 0..3
  k_dense3x3 = k_dense1x1 + 4,  // + block index 0..3
  k_trans1x1 = k_dense3x3 + 4,
  k_bn,
  k_pool,
  k_copy,
  k_head,
  k_count
};
constexpr const char* kind_names[k_count] = {
    "conv0 7x7",           "dense conv 1x1, block 1", "dense conv 1x1, block 2", "dense conv 1x1, block 3",
    "dense conv 1x1, block 4", "dense conv 3x3, block 1", "dense conv 3x3, block 2", "dense conv 3x3, block 3",
    "dense conv 3x3, block 4", "transition conv 1x1",  "batch norm (+ReLU)",      "pooling (max/avg/global)",
    "concatenation copies", "classifier + loss"};
static_assert(models::densenet121::blocks.size() == 4, "the breakdown names four dense blocks");
static_assert(layers::dense_layer<B>::folded && layers::transition<B>::folded,
              "the replay folds the batch norms into the convolutions, as the dense layers and transitions do here");

struct pass_times {
  double seconds[k_count][2] = {};  ///< [kind][0 forward, 1 backward]
  double gflop[k_count][2] = {};    ///< convolution and classifier GFLOP, same layout
  double total = 0;
};

template <class F>
auto timed(double& acc, F&& f) {
  const auto t0 = clock_type::now();
  if constexpr (std::is_void_v<decltype(f())>) {
    f();
    acc += seconds_since(t0);
  } else {
    auto r = f();
    acc += seconds_since(t0);
    return r;
  }
}

pass_times replay_once(const options& o, B::context& ctx) {
  using namespace layers;
  using cfg = models::densenet121;
  using bn_t = batch_norm<B>;
  using conv_t = conv2d<B>;
  constexpr grad_mode mode = grad_mode::overwrite;
  const bool train = o.mode == "train";
  pass_times t;
  auto fw = [&t](int k) -> double& { return t.seconds[k][0]; };
  auto bw = [&t](int k) -> double& { return t.seconds[k][1]; };
  auto conv_gflop = [](const conv_t& c, const shape& in) {
    return 2.0 * static_cast<double>(c.output_shape(in).numel()) * static_cast<double>(c.opts().in_channels) *
           static_cast<double>(c.opts().kernel * c.opts().kernel) / 1e9;
  };
  const auto t_start = clock_type::now();
  rng r(o.seed);

  tensor<B> x(shape{o.batch, o.channels, o.size, o.size});
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(r.normal());

  // ---- forward
  conv_t conv0({.in_channels = o.channels, .out_channels = cfg::init_features, .kernel = 7, .stride = 2, .padding = 3});
  conv0.init(r);
  bn_t norm0({.channels = cfg::init_features, .relu = true});
  max_pool<B> pool0({.kernel = 3, .stride = 2, .padding = 1});
  bn_t::cache n0c;
  max_pool<B>::cache p0c;
  const tensor<B> z0 = timed(fw(k_conv0), [&] { return conv0.infer(ctx, x); });
  t.gflop[k_conv0][0] += conv_gflop(conv0, x.dims());
  const tensor<B> a0 = timed(fw(k_bn), [&] { return train ? norm0.forward(ctx, z0, n0c) : norm0.infer(ctx, z0); });
  tensor<B> h = timed(fw(k_pool), [&] { return train ? pool0.forward(ctx, a0, p0c) : pool0.infer(ctx, a0); });

  struct dense_parts {
    bn_t n1;
    conv_t c1;
    bn_t n2;
    conv_t c2;
    bn_t::cache n1c{}, n2c{};
    tensor<B> scale1{}, shift1{}, z1{}, scale2{}, shift2{};  // inference: the BNs' running maps (training: in n1c, n2c)
  };
  struct block_parts {
    std::vector<dense_parts> layers;
    tensor<B> buffer;
    index_t c0 = 0;
  };
  struct transition_parts {
    bn_t n;
    conv_t c;
    avg_pool<B> p;
    bn_t::cache nc{};
    tensor<B> scale{}, shift{};  // inference: the batch norm's running map (training: in nc)
    shape z{};
  };
  std::vector<block_parts> blocks(cfg::blocks.size());
  std::vector<transition_parts> trans;
  const index_t k = cfg::growth_rate, bottleneck = cfg::bn_size * cfg::growth_rate;
  index_t c = cfg::init_features;
  for (std::size_t b = 0; b < cfg::blocks.size(); ++b) {
    block_parts& bp = blocks[b];
    const index_t layers = cfg::blocks[b];
    const int k1x1 = k_dense1x1 + static_cast<int>(b), k3x3 = k_dense3x3 + static_cast<int>(b);
    bp.c0 = c;
    bp.buffer = tensor<B>(shape{h.n(), c + layers * k, h.h(), h.w()});
    timed(fw(k_copy), [&] { B::copy(h, bp.buffer.channels(0, c)); });
    bp.layers.reserve(static_cast<std::size_t>(layers));
    for (index_t l = 0; l < layers; ++l) {
      const index_t cl = c + l * k;
      dense_parts& d = bp.layers.emplace_back(dense_parts{
          bn_t({.channels = cl, .relu = true}), conv_t({.in_channels = cl, .out_channels = bottleneck, .kernel = 1}),
          bn_t({.channels = bottleneck, .relu = true}),
          conv_t({.in_channels = bottleneck, .out_channels = k, .kernel = 3, .padding = 1})});
      d.c1.init(r);
      d.c2.init(r);
      const tensor<B> xin = bp.buffer.channels(0, cl);
      timed(fw(k_bn), [&] {  // BN1: statistics and the per-channel map only; conv1 applies it while packing
        if (train) d.n1.statistics_into(ctx, xin, d.n1c, l > 0 ? &bp.layers[static_cast<std::size_t>(l - 1)].n1c : nullptr);
        else d.n1.fold_running(ctx, d.scale1, d.shift1);
      });
      d.z1 = timed(fw(k1x1), [&] {
        tensor<B> z(d.c1.output_shape(xin.dims()));
        d.c1.forward_folded(ctx, xin, train ? d.n1c.scale : d.scale1, train ? d.n1c.shift : d.shift1, z);
        return z;
      });
      t.gflop[k1x1][0] += conv_gflop(d.c1, xin.dims());
      timed(fw(k_bn), [&] {  // BN2 likewise, applied by conv2 while it pads its input
        if (train) d.n2.statistics_into(ctx, d.z1, d.n2c);
        else d.n2.fold_running(ctx, d.scale2, d.shift2);
      });
      timed(fw(k3x3), [&] {
        d.c2.forward_folded(ctx, d.z1, train ? d.n2c.scale : d.scale2, train ? d.n2c.shift : d.shift2,
                            bp.buffer.channels(cl, k));
      });
      t.gflop[k3x3][0] += conv_gflop(d.c2, d.z1.dims());
      if (!train) d.scale1 = d.shift1 = d.z1 = d.scale2 = d.shift2 = tensor<B>();  // inference keeps nothing
    }
    c += layers * k;
    h = bp.buffer;
    if (!train) bp.buffer = tensor<B>();
    if (b + 1 < cfg::blocks.size()) {
      const auto out = static_cast<index_t>(static_cast<double>(c) * cfg::compression);
      transition_parts& tp = trans.emplace_back(transition_parts{
          bn_t({.channels = c, .relu = true}), conv_t({.in_channels = c, .out_channels = out, .kernel = 1}),
          avg_pool<B>({.kernel = 2, .stride = 2})});
      tp.c.init(r);
      timed(fw(k_bn), [&] {
        if (train) tp.n.statistics_into(ctx, h, tp.nc);
        else tp.n.fold_running(ctx, tp.scale, tp.shift);
      });
      const tensor<B> z = timed(fw(k_trans1x1), [&] {
        tensor<B> out_z(tp.c.output_shape(h.dims()));
        tp.c.forward_folded(ctx, h, train ? tp.nc.scale : tp.scale, train ? tp.nc.shift : tp.shift, out_z);
        return out_z;
      });
      t.gflop[k_trans1x1][0] += conv_gflop(tp.c, h.dims());
      tp.z = z.dims();
      if (!train) tp.scale = tp.shift = tensor<B>();
      h = timed(fw(k_pool), [&] { return tp.p.infer(ctx, z); });
      c = out;
    }
  }
  bn_t norm5({.channels = c});
  bn_t::cache n5c;
  global_avg_pool<B> gap({.relu = true});
  global_avg_pool<B>::cache gc;
  linear<B> classifier({.in_features = c, .out_features = o.classes});
  classifier.init(r);
  linear<B>::cache lc;
  const tensor<B> f5 = timed(fw(k_bn), [&] { return train ? norm5.forward(ctx, h, n5c) : norm5.infer(ctx, h); });
  h = tensor<B>();
  const tensor<B> pooled = timed(fw(k_pool), [&] { return train ? gap.forward(ctx, f5, gc) : gap.infer(ctx, f5); });
  const tensor<B> logits =
      timed(fw(k_head), [&] { return train ? classifier.forward(ctx, pooled, lc) : classifier.infer(ctx, pooled); });
  t.gflop[k_head][0] += 2.0 * static_cast<double>(o.batch * c * o.classes) / 1e9;
  if (!train) {
    t.total = seconds_since(t_start);
    return t;
  }
  std::vector<int> labels(static_cast<std::size_t>(o.batch));
  for (std::size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<int>(static_cast<index_t>(i) % o.classes);
  tensor<B> dlogits;
  timed(fw(k_head), [&] { return losses::cross_entropy{}.value_and_gradient<B>(ctx, logits, labels, &dlogits); });

  // ---- backward, in the model's order, releasing caches as the model does
  tensor<B> g = timed(bw(k_head), [&] { return classifier.backward(ctx, lc, dlogits, mode); });
  t.gflop[k_head][1] += 4.0 * static_cast<double>(o.batch * c * o.classes) / 1e9;
  g = timed(bw(k_pool), [&] { return gap.backward(ctx, gc, g, mode); });
  g = timed(bw(k_bn), [&] { return norm5.backward(ctx, n5c, g, mode); });
  n5c = {};
  gc = {};
  for (std::size_t b = blocks.size(); b-- > 0;) {
    if (b < trans.size()) {
      transition_parts& tp = trans[b];
      const avg_pool<B>::cache pc{tp.z};
      const tensor<B> dz = timed(bw(k_pool), [&] { return tp.p.backward(ctx, pc, g, mode); });
      const tensor<B> xin = tp.nc.x, da(xin.dims());
      timed(bw(k_trans1x1), [&] {
        tp.c.backward_folded(ctx, xin, tp.nc.scale, tp.nc.shift, dz, da, 0.0f, mode);
      });
      t.gflop[k_trans1x1][1] += 2.0 * conv_gflop(tp.c, xin.dims());
      g = timed(bw(k_bn), [&] { return tp.n.backward(ctx, tp.nc, da, mode); });
      tp.scale = tp.shift = tensor<B>();
      tp.nc = {};
    }
    block_parts& bp = blocks[b];
    const int k1x1 = k_dense1x1 + static_cast<int>(b), k3x3 = k_dense3x3 + static_cast<int>(b);
    const tensor<B> gg = timed(bw(k_copy), [&] { return g.clone(); });
    index_t ch = gg.c();
    for (std::size_t l = bp.layers.size(); l-- > 0;) {
      ch -= k;
      dense_parts& d = bp.layers[l];
      const tensor<B> da2(d.z1.dims()), dy = gg.channels(ch, k);
      timed(bw(k3x3), [&] {
        d.c2.backward_folded(ctx, d.z1, d.n2c.scale, d.n2c.shift, dy, da2, 0.0f, mode);
      });
      t.gflop[k3x3][1] += 2.0 * conv_gflop(d.c2, d.z1.dims());
      const tensor<B> dz1(d.z1.dims());
      timed(bw(k_bn), [&] { d.n2.backward_into(ctx, d.n2c, da2, dz1, 0.0f, mode); });
      const tensor<B> xin = d.n1c.x, da1(xin.dims());
      timed(bw(k1x1), [&] {
        d.c1.backward_folded(ctx, xin, d.n1c.scale, d.n1c.shift, dz1, da1, 0.0f, mode);
      });
      t.gflop[k1x1][1] += 2.0 * conv_gflop(d.c1, xin.dims());
      timed(bw(k_bn), [&] { d.n1.backward_into(ctx, d.n1c, da1, gg.channels(0, ch), 1.0f, mode); });
      d.scale1 = d.shift1 = d.z1 = d.scale2 = d.shift2 = tensor<B>();
      d.n1c = d.n2c = {};
    }
    g = timed(bw(k_copy), [&] { return gg.channels(0, bp.c0).clone(); });
    bp.buffer = tensor<B>();
  }
  g = timed(bw(k_pool), [&] { return pool0.backward(ctx, p0c, g, mode); });
  g = timed(bw(k_bn), [&] { return norm0.backward(ctx, n0c, g, mode); });
  timed(bw(k_conv0), [&] { conv0.backward_params(ctx, x, g, mode); });
  t.gflop[k_conv0][1] += conv_gflop(conv0, x.dims());  // filter gradient only: nothing needs the input's
  t.total = seconds_since(t_start);
  return t;
}

/// Median over the timed replays of each kind and pass; the replay's total is the median of the totals.
pass_times replay(const options& o) {
  B::context ctx(o.threads);
  std::vector<pass_times> runs;
  for (int s = 0; s < o.warmup + o.steps; ++s) {
    pass_times p = replay_once(o, ctx);
    if (s >= o.warmup) runs.push_back(p);
  }
  pass_times m = runs.front();
  for (int kd = 0; kd < k_count; ++kd)
    for (int p = 0; p < 2; ++p) {
      std::vector<double> v;
      for (const auto& run : runs) v.push_back(run.seconds[kd][p]);
      m.seconds[kd][p] = median(v);
    }
  std::vector<double> totals;
  for (const auto& run : runs) totals.push_back(run.total);
  m.total = median(totals);
  return m;
}

std::string breakdown_json(const pass_times& t) {
  std::ostringstream js;
  js.precision(6);
  js << "{\"replay_total_s\":" << t.total << ",\"kinds\":{";
  for (int kd = 0; kd < k_count; ++kd)
    js << (kd ? "," : "") << "\"" << kind_names[kd] << "\":{\"forward_s\":" << t.seconds[kd][0]
       << ",\"backward_s\":" << t.seconds[kd][1] << ",\"forward_gflop\":" << t.gflop[kd][0]
       << ",\"backward_gflop\":" << t.gflop[kd][1] << "}";
  js << "}}";
  return js.str();
}

void print_breakdown(const options& o, const pass_times& t, double measured_step) {
  std::printf("\nper layer kind (replay of the network with the model's shapes; median of %d replay(s)):\n", o.steps);
  std::printf("  %-27s %10s %10s %10s %7s %12s %12s\n", "kind", "forward s", "backward s", "total s", "share",
              "fwd GFLOP/s", "bwd GFLOP/s");
  double sum = 0;
  for (int kd = 0; kd < k_count; ++kd) sum += t.seconds[kd][0] + t.seconds[kd][1];
  for (int kd = 0; kd < k_count; ++kd) {
    const double f = t.seconds[kd][0], b = t.seconds[kd][1];
    auto rate = [](double gf, double s) { return gf > 0 && s > 0 ? gf / s : 0.0; };
    std::printf("  %-27s %10.3f %10.3f %10.3f %6.1f%% %12.1f %12.1f\n", kind_names[kd], f, b, f + b,
                100.0 * (f + b) / sum, rate(t.gflop[kd][0], f), rate(t.gflop[kd][1], b));
  }
  std::printf("  replay total %.3f s (timed calls %.3f s); the model's measured step: %.3f s%s\n", t.total, sum,
              measured_step, o.mode == "train" ? " (which also includes the SGD update)" : "");
}

template <class F>
double median_of(const std::vector<step_times>& v, F&& f) {
  std::vector<double> x;
  for (const auto& s : v) x.push_back(f(s));
  return median(x);
}

void print_json(const options& o, const result& r, double med, std::int64_t hwm, std::int64_t maxrss,
                const std::string& breakdown) {
  std::ostringstream js;
  js.precision(6);
  js << "{\"framework\":\"mammocl\",\"mode\":\"" << o.mode << "\",\"batch\":" << o.batch << ",\"size\":" << o.size
     << ",\"channels\":" << o.channels << ",\"classes\":" << o.classes << ",\"threads\":" << o.threads
     << ",\"warmup\":" << o.warmup << ",\"steps\":" << o.steps
     << ",\"memory_efficient\":" << (o.memory_efficient ? "true" : "false") << ",\"parameters\":" << r.parameters
     << ",\"images_per_s\":" << static_cast<double>(o.batch) / med << ",\"median_step_s\":" << med << ",\"step_s\":[";
  for (std::size_t i = 0; i < r.steps.size(); ++i) js << (i ? "," : "") << r.steps[i].total;
  js << "],\"phase_median_s\":{\"forward\":" << median_of(r.steps, [](auto& s) { return s.forward; })
     << ",\"loss\":" << median_of(r.steps, [](auto& s) { return s.loss; })
     << ",\"backward\":" << median_of(r.steps, [](auto& s) { return s.backward; })
     << ",\"optimizer\":" << median_of(r.steps, [](auto& s) { return s.optimizer; })
     << "},\"cpu_per_wall\":" << median_of(r.steps, [](auto& s) { return s.cpu / s.total; })
     << ",\"load_average\":" << load_average() << ",\"losses\":[";
  for (std::size_t i = 0; i < r.losses.size(); ++i) js << (i ? "," : "") << r.losses[i];
  js << "],\"setup_s\":" << r.setup_s << ",\"rss_after_setup_bytes\":" << r.rss_after_setup
     << ",\"peak_rss_bytes\":" << hwm << ",\"ru_maxrss_bytes\":" << maxrss;
  if (!breakdown.empty()) js << ",\"breakdown\":" << breakdown;
  js << "}";
  std::cout << js.str() << std::endl;
}

void print_text(const options& o, const result& r, double med, std::int64_t hwm, std::int64_t maxrss) {
  const double mib = 1024.0 * 1024.0;
  std::printf("DenseNet-121 %s, input (%lld,%lld,%lld,%lld), %d thread(s)%s, %lld parameters\n", o.mode.c_str(),
              static_cast<long long>(o.batch), static_cast<long long>(o.channels), static_cast<long long>(o.size),
              static_cast<long long>(o.size), o.threads, o.memory_efficient ? ", memory-efficient" : "",
              static_cast<long long>(r.parameters));
  for (std::size_t i = 0; i < r.steps.size(); ++i) {
    const auto& s = r.steps[i];
    if (o.mode == "train")
      std::printf("  step %zu: %.3f s (forward %.3f, loss %.4f, backward %.3f, sgd %.4f), loss %.5f\n", i + 1, s.total,
                  s.forward, s.loss, s.backward, s.optimizer, r.losses[i]);
    else
      std::printf("  step %zu: %.3f s\n", i + 1, s.total);
  }
  std::printf("median step %.3f s = %.3f images/s (%d warm-up step(s) discarded)\n", med,
              static_cast<double>(o.batch) / med, o.warmup);
  std::printf("CPU time / wall time %.2f (of %d threads); 1-minute load average %.2f\n",
              median_of(r.steps, [](auto& s) { return s.cpu / s.total; }), o.threads, load_average());
  const double cpu_per_wall = median_of(r.steps, [](auto& s) { return s.cpu / s.total; });
  if (cpu_per_wall < 0.8 * o.threads)
    std::printf("WARNING: CPU time / wall time %.2f is well below %d threads: other processes are competing for the "
                "cores, so these figures are not reliable; rerun on a quiet machine\n",
                cpu_per_wall, o.threads);
  std::printf("peak RSS %.1f MiB (VmHWM), %.1f MiB (ru_maxrss); RSS after setup %.1f MiB; setup %.2f s\n", hwm / mib,
              maxrss / mib, r.rss_after_setup / mib, r.setup_s);
}

}  // namespace

int main(int argc, char** argv) {
  const options o = parse(argc, argv);
#ifdef _OPENMP
  omp_set_num_threads(o.threads);
#endif
  try {
    const result r = run(o);
    std::vector<double> totals;
    for (const auto& s : r.steps) totals.push_back(s.total);
    const double med = median(totals);
    const std::int64_t hwm = proc_status_bytes("VmHWM"), maxrss = ru_maxrss_bytes();
    if (!o.json) print_text(o, r, med, hwm, maxrss);
    std::string breakdown;
    if (o.breakdown) {
      const pass_times t = replay(o);
      if (o.json) breakdown = breakdown_json(t);
      else print_breakdown(o, t, med);
    }
    if (o.json) print_json(o, r, med, hwm, maxrss, breakdown);
  } catch (const std::exception& e) {
    std::cerr << "bench_train_step: " << e.what() << "\n";
    return 1;
  }
  return 0;
}

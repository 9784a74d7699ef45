// train_patch_classifier: trains the small DenseNet patch classifier on MammoCL's built-in two-domain task
// (synthetic 5-class patches; domain B = the same patch through the sigmoid VOI LUT) with one or more
// training strategies chosen by name, evaluates each on a test set holding both versions of every patch,
// and prints the table: pooled one-vs-one AUC, the AUC of each domain and their gap, accuracy, and the
// class-wise MMD between the two domains' features. Each strategy's best checkpoint is reloaded into a
// fresh model, which must reproduce the test logits bit for bit.
//
//   train_patch_classifier [--strategy ce,supcon_linear,supcon_finetune] [--variant mixed|augmented]
//                          [--epochs N] [--epochs2 N] [--lr X] [--lr2 X] [--train N] [--val N] [--test N]
//                          [--batch N] [--size N] [--patience N] [--seed N] [--threads N] [--out DIR]
//                          [--device cpu|cuda] [--no-resume] [--quiet]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include "mammocl/data/synthetic_domains.hpp"
#include "mammocl/eval/invariance.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/train/trainer.hpp"
// The backend of this translation unit: cpu_backend here; train_patch_classifier_cuda.cpp compiles this
// file again with cuda_backend (MAMMOCL_EXAMPLE_BACKEND, its header and MAMMOCL_EXAMPLE_ENTRY defined first).
#ifdef MAMMOCL_EXAMPLE_BACKEND_HEADER
#include MAMMOCL_EXAMPLE_BACKEND_HEADER
#endif
#ifndef MAMMOCL_EXAMPLE_BACKEND
#define MAMMOCL_EXAMPLE_BACKEND mammocl::cpu_backend
#endif

using namespace mammocl;
using B = MAMMOCL_EXAMPLE_BACKEND;
using model_t = models::densenet<B, models::densenet_small>;
using task = data::synthetic_domain_task;

namespace {

struct args {
  std::vector<std::string> strategies{"ce", "supcon_linear", "supcon_finetune"};
  task::variant variant = task::variant::mixed;
  std::optional<int> epochs, epochs2;
  std::optional<double> lr, lr2;
  int train = 1000, val = 100, test = 300, batch = 32, size = 32, patience = 0, threads = 2;
  std::uint64_t seed = 1;
  std::int64_t crash_after = 0;  // testing: end the process abruptly after this many steps (0: never)
  bool resume = true, quiet = false, cuda = false;  // cuda: --device cuda
  std::filesystem::path out = "patch_classifier_out";
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: train_patch_classifier [options]\n"
               "  --strategy LIST  comma-separated, from ce, supcon_linear, supcon_finetune, dann, mmd\n"
               "                   (default ce,supcon_linear,supcon_finetune)\n"
               "  --variant V      training set: mixed (half of each class with the LUT) or augmented (both)\n"
               "  --epochs N       epochs of stage 1 (default: ce/dann/mmd 5, SupCon pre-training 8)\n"
               "  --epochs2 N      epochs of stage 2 of the SupCon strategies (default 3)\n"
               "  --lr X           stage-1 learning rate (default: ce/mmd 0.1, dann 0.03, SupCon 0.03)\n"
               "  --lr2 X          stage-2 learning rate (default: linear probe SGD 0.1, fine-tuning Adam 1e-3)\n"
               "  --train N        training patches (default 1000)\n"
               "  --val N          validation patches, both versions (default 100)\n"
               "  --test N         test patches, both versions (default 300)\n"
               "  --batch N        batch size (default 32)\n"
               "  --size N         patch side in pixels, >= 16 (default 32)\n"
               "  --patience N     early stopping on the validation AUC (default 0: off)\n"
               "  --seed N         seed of the initialisation and the heads (default 1)\n"
               "  --threads N      CPU threads (default 2)\n"
               "  --device D       cpu (default) or cuda (a build with MAMMOCL_WITH_CUDA)\n"
               "  --out DIR        checkpoints and logs, one folder per strategy (default patch_classifier_out)\n"
               "  --no-resume      start afresh even where DIR/<strategy>/last.safetensors exists\n"
               "  --crash-after N  testing: kill the process (no clean-up) after N training steps of a run\n"
               "  --quiet          no progress bars\n");
}

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "train_patch_classifier: %s\n", msg.c_str());
  std::exit(2);
}

args parse(int argc, char** argv) {
  args a;
  auto value = [&](int& i, const std::string& name) -> std::string {
    if (i + 1 >= argc) fail(name + " needs a value");
    return argv[++i];
  };
  auto number = [&](int& i, const std::string& name) -> double {
    const std::string v = value(i, name);
    char* end = nullptr;
    const double x = std::strtod(v.c_str(), &end);
    if (end == v.c_str() || *end) fail(name + " expects a number, got '" + v + "'");
    return x;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") { usage(stdout); std::exit(0); }
    else if (k == "--strategy") {
      a.strategies.clear();
      std::stringstream ss(value(i, k));
      for (std::string s; std::getline(ss, s, ',');) {
        if (std::find(train::strategy_names.begin(), train::strategy_names.end(), s) == train::strategy_names.end())
          fail("unknown strategy '" + s + "'; expected ce, supcon_linear, supcon_finetune, dann or mmd");
        a.strategies.push_back(s);
      }
      if (a.strategies.empty()) fail("--strategy needs at least one name");
    } else if (k == "--variant") {
      const std::string v = value(i, k);
      if (v == "mixed") a.variant = task::variant::mixed;
      else if (v == "augmented") a.variant = task::variant::augmented;
      else fail("--variant must be mixed or augmented, got '" + v + "'");
    }
    else if (k == "--epochs") a.epochs = static_cast<int>(number(i, k));
    else if (k == "--epochs2") a.epochs2 = static_cast<int>(number(i, k));
    else if (k == "--lr") a.lr = number(i, k);
    else if (k == "--lr2") a.lr2 = number(i, k);
    else if (k == "--train") a.train = static_cast<int>(number(i, k));
    else if (k == "--val") a.val = static_cast<int>(number(i, k));
    else if (k == "--test") a.test = static_cast<int>(number(i, k));
    else if (k == "--batch") a.batch = static_cast<int>(number(i, k));
    else if (k == "--size") a.size = static_cast<int>(number(i, k));
    else if (k == "--patience") a.patience = static_cast<int>(number(i, k));
    else if (k == "--threads") a.threads = static_cast<int>(number(i, k));
    else if (k == "--device") {
      const std::string v = value(i, k);
      if (v != "cpu" && v != "cuda") fail("--device must be cpu or cuda, got '" + v + "'");
      a.cuda = v == "cuda";
    }
    else if (k == "--seed") a.seed = static_cast<std::uint64_t>(number(i, k));
    else if (k == "--out") a.out = value(i, k);
    else if (k == "--no-resume") a.resume = false;
    else if (k == "--crash-after") a.crash_after = static_cast<std::int64_t>(number(i, k));
    else if (k == "--quiet") a.quiet = true;
    else { usage(stderr); fail("unknown option '" + k + "'"); }
  }
  if (a.epochs && *a.epochs < 1) fail("--epochs must be at least 1");
  if (a.epochs2 && *a.epochs2 < 1) fail("--epochs2 must be at least 1");
  if ((a.lr && !(*a.lr > 0)) || (a.lr2 && !(*a.lr2 > 0))) fail("--lr and --lr2 must be positive");
  if (a.batch < 2) fail("--batch must be at least 2 (batch norm needs two samples)");
  if (a.train < a.batch) fail("--train (" + std::to_string(a.train) + ") must hold at least one batch (" + std::to_string(a.batch) + ")");
  if (a.val < 5 || a.test < 5) fail("--val and --test must be at least 5 (one patch per class)");
  if (a.size < 16) fail("--size must be at least 16 pixels");
  if (a.threads < 1) fail("--threads must be at least 1");
  if (a.patience < 0) fail("--patience must be >= 0");
  return a;
}

/// The strategy options this example uses by default, overridden by the flags.
train::strategy_options options_for(const std::string& name, const args& a) {
  train::strategy_options so;
  so.seed = a.seed;
  const bool supcon = name.rfind("supcon", 0) == 0;
  so.stage1 = {.epochs = supcon ? 8 : 5, .lr = supcon || name == "dann" ? 0.03 : 0.1};
  if (name == "supcon_finetune")
    so.stage2 = {.epochs = 3, .optimizer = train::optimizer_kind::adam, .lr = 1e-3};
  else
    so.stage2 = {.epochs = 3, .lr = 0.1, .weight_decay = 0.0};
  so.mmd_weight = 0.1;
  if (a.epochs) so.stage1.epochs = *a.epochs;
  if (a.epochs2) so.stage2.epochs = *a.epochs2;
  if (a.lr) so.stage1.lr = *a.lr;
  if (a.lr2) so.stage2.lr = *a.lr2;
  return so;
}

struct row {
  std::string strategy;
  double auc = 0, auc_a = 0, auc_b = 0, accuracy = 0, mmd2 = 0, seconds = 0;
  bool reproduced = false, resumed = false;
};

/// Test logits, features, labels and domains of a model in inference mode.
struct predictions {
  std::vector<float> logits;
  std::vector<double> features;
  std::vector<int> labels, domains;
  std::size_t dim = 0;
};

predictions predict(B::context& ctx, const model_t& m, task& t) {
  predictions p;
  for (std::int64_t i = 0; i < t.batches_per_epoch(); ++i) {
    const data::batch b = t.get_batch({0, 0, i, 1});
    const tensor<B> x = train::detail::to_tensor<B>(b);
    const tensor<B> fd = m.infer_features(ctx, x);
    // Features and logits on the host (copies on a device backend).
    const auto f = host_bridge::on_host(fd);
    const auto l = host_bridge::on_host(m.classifier().infer(ctx, fd));
    p.logits.insert(p.logits.end(), l.data(), l.data() + l.numel());
    p.features.insert(p.features.end(), f.data(), f.data() + f.numel());
    p.dim = static_cast<std::size_t>(f.c());
    p.labels.insert(p.labels.end(), b.labels.begin(), b.labels.end());
    p.domains.insert(p.domains.end(), b.domains.begin(), b.domains.end());
  }
  return p;
}

row evaluate(B::context& ctx, const model_t& model, const std::filesystem::path& best, task& test) {
  row r;
  const predictions p = predict(ctx, model, test);
  const std::size_t n = p.labels.size();
  std::vector<double> prob(n * 5);
  std::size_t correct = 0;
  for (std::size_t i = 0; i < n; ++i) {
    const float* z = p.logits.data() + 5 * i;
    const float mx = *std::max_element(z, z + 5);
    double s = 0;
    for (int c = 0; c < 5; ++c) s += prob[5 * i + c] = std::exp(static_cast<double>(z[c] - mx));
    for (int c = 0; c < 5; ++c) prob[5 * i + c] /= s;
    correct += std::max_element(z, z + 5) - z == p.labels[i];
  }
  r.accuracy = static_cast<double>(correct) / static_cast<double>(n);
  r.auc = eval::ovo_auc(prob, p.labels, 5).macro;
  const auto dom = eval::per_domain_auc(prob, 5, p.labels, p.domains,
                                        [](std::span<const double> s, std::span<const int> y) {
                                          return eval::ovo_auc(s, y, 5).macro;
                                        });
  r.auc_a = dom.auc_a;
  r.auc_b = dom.auc_b;
  eval::mmd_options mo;
  mo.permutations = 20;
  r.mmd2 = eval::mmd_permutation_test(p.features, p.dim, p.labels, p.domains, mo).mmd2;
  // The best checkpoint, reloaded into a fresh model, reproduces the logits exactly.
  model_t reloaded({.in_channels = 1, .num_classes = 5});
  io::load_state(reloaded, best);
  const predictions again = predict(ctx, reloaded, test);
  r.reproduced = again.logits.size() == p.logits.size() &&
                 std::memcmp(again.logits.data(), p.logits.data(), p.logits.size() * sizeof(float)) == 0;
  return r;
}

/// A context of this translation unit's backend: CPU threads, or device 0.
B::context make_context(int threads) {
  if constexpr (B::is_host) {
    return B::context(threads);
  } else {
    (void)threads;
    return B::context(0);
  }
}

/// The program on this translation unit's backend.
int run(const args& a) {
  try {
    auto ctx = make_context(a.threads);
    const data::synthetic_patches_options gen{.size = a.size, .seed = 1};
    task train_set({.patches = gen, .first = 0, .count = a.train, .kind = a.variant, .batch_size = a.batch});
    const task::options eval_opts{.patches = gen, .kind = task::variant::both_versions, .batch_size = 50,
                                  .shuffle = false, .augment = false, .drop_last = false};
    task val_set([&] { auto o = eval_opts; o.first = 1'000'000; o.count = a.val; return o; }());
    task test_set([&] { auto o = eval_opts; o.first = 2'000'000; o.count = a.test; return o; }());
    std::printf("MammoCL patch classifier, synthetic two-domain task: %d training patches (%s), %d validation and "
                "%d test patches in both domains, %dx%d pixels, %d threads\n",
                a.train, a.variant == task::variant::mixed ? "mixed: half of each class with the sigmoid LUT"
                                                           : "augmented: every patch with and without the LUT",
                a.val, a.test, a.size, a.size, a.threads);

    std::vector<row> rows;
    for (const std::string& name : a.strategies) {
      const auto t0 = std::chrono::steady_clock::now();
      model_t model({.in_channels = 1, .num_classes = 5});
      model.init(a.seed);
      const train::strategy_options so = options_for(name, a);
      const auto dir = a.out / name;
      const train::fit_result fit = train::with_strategy<model_t>(name, [&]<class S>() {
        S strategy(model, so);
        train::trainer_options opt{.out_dir = dir, .resume = a.resume, .patience = a.patience,
                                   .checkpoint_every = 3, .progress = !a.quiet, .progress_stream = stdout};
        std::int64_t steps_here = 0;
        if (a.crash_after > 0)
          opt.on_step = [&](const train::step_event&) {
            if (++steps_here == a.crash_after) {
              std::fprintf(stderr, "train_patch_classifier: --crash-after %lld: ending the process now\n",
                           static_cast<long long>(a.crash_after));
              std::_Exit(3);  // like a crash: no destructors, no flushing of our files
            }
          };
        return train::fit(ctx, strategy, train_set, &val_set, opt, 5);
      });
      row r = evaluate(ctx, model, fit.best_checkpoint, test_set);
      r.strategy = name;
      r.resumed = fit.resumed;
      r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      std::printf("%s: best validation AUC %.4f (stage %d, epoch %d), log %s\n", name.c_str(), fit.best_metric,
                  fit.best_stage + 1, fit.best_epoch + 1, (dir / "log.jsonl").c_str());
      rows.push_back(r);
    }

    std::printf("\nTest set: %d patches, each in domain A (no LUT) and B (sigmoid LUT); one-vs-one macro AUC\n\n",
                a.test);
    std::printf("| strategy | AUC (A+B) | AUC A | AUC B | gap A-B | accuracy | class-wise MMD² A vs B | time (s) |\n");
    std::printf("|---|---|---|---|---|---|---|---|\n");
    bool all_reproduced = true;
    for (const row& r : rows) {
      std::printf("| %s | %.4f | %.4f | %.4f | %+.4f | %.3f | %.4f | %.0f%s |\n", r.strategy.c_str(), r.auc, r.auc_a,
                  r.auc_b, r.auc_a - r.auc_b, r.accuracy, r.mmd2, r.seconds, r.resumed ? " (resumed)" : "");
      all_reproduced = all_reproduced && r.reproduced;
    }
    std::printf("\nclass-wise MMD²: Σ over classes of the unbiased MMD² between the two domains' L2-normalised "
                "features (Gaussian kernel, median heuristic).\nbest checkpoints reloaded into fresh models "
                "reproduce every test logit: %s\n",
                all_reproduced ? "yes" : "NO");
    return all_reproduced ? 0 : 1;
  } catch (const mammocl::error& e) {
    std::fprintf(stderr, "train_patch_classifier: %s\n", e.what());
    return 1;
  }
}

}  // namespace

#ifdef MAMMOCL_EXAMPLE_ENTRY
/// The program on another backend, called by the CPU build's main() for --device cuda.
int MAMMOCL_EXAMPLE_ENTRY(int argc, char** argv) { return run(parse(argc, argv)); }
#else
#if MAMMOCL_EXAMPLES_WITH_CUDA
int train_patch_classifier_cuda_main(int argc, char** argv);  // train_patch_classifier_cuda.cpp
#endif

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  if (a.cuda) {
#if MAMMOCL_EXAMPLES_WITH_CUDA
    return train_patch_classifier_cuda_main(argc, argv);
#else
    fail("--device cuda: this build has no CUDA backend; configure with -DMAMMOCL_WITH_CUDA=ON (docs/gpu_backend.md)");
#endif
  }
  return run(a);
}
#endif

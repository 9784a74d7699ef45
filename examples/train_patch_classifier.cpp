// train_patch_classifier: trains the small DenseNet with cross-entropy on MammoCL's built-in synthetic
// 5-class patch task, evaluates it, saves a checkpoint (safetensors, torchvision names), reloads it into a
// fresh model and checks that the predictions are reproduced exactly.
//
//   train_patch_classifier [--epochs 6] [--train 2000] [--test 500] [--batch 32] [--size 48] [--lr 0.05]
//                          [--seed 1] [--threads 2] [--out DIR]
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "mammocl/data/synthetic.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/optim/lr_schedule.hpp"
#include "mammocl/optim/sgd.hpp"
#include "mammocl/train/progress.hpp"

using namespace mammocl;
using B = cpu_backend;
using model_t = models::densenet<B, models::densenet_small>;

namespace {

struct args {
  int epochs = 6, train = 2000, test = 500, batch = 32, size = 48, threads = 2;
  double lr = 0.05;
  std::uint64_t seed = 1;
  std::filesystem::path out = "patch_classifier_out";
};

void usage(std::FILE* f) {
  std::fprintf(f,
               "usage: train_patch_classifier [options]\n"
               "  --epochs N    training epochs (default 6)\n"
               "  --train N     training patches (default 2000)\n"
               "  --test N      test patches (default 500)\n"
               "  --batch N     batch size (default 32)\n"
               "  --size N      patch side in pixels, >= 32 (default 48)\n"
               "  --lr X        initial SGD learning rate, cosine-annealed (default 0.05)\n"
               "  --seed N      seed of the data, the initialisation and the shuffling (default 1)\n"
               "  --threads N   CPU threads (default 2)\n"
               "  --out DIR     where the checkpoint is written (default patch_classifier_out)\n");
}

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "train_patch_classifier: %s\n", msg.c_str());
  std::exit(2);
}

args parse(int argc, char** argv) {
  args a;
  auto number = [&](int& i, const char* name) -> double {
    if (i + 1 >= argc) fail(std::string(name) + " needs a value");
    char* end = nullptr;
    const double v = std::strtod(argv[++i], &end);
    if (end == argv[i] || *end) fail(std::string(name) + " expects a number, got '" + argv[i] + "'");
    return v;
  };
  for (int i = 1; i < argc; ++i) {
    const std::string k = argv[i];
    if (k == "--help" || k == "-h") { usage(stdout); std::exit(0); }
    else if (k == "--epochs") a.epochs = static_cast<int>(number(i, "--epochs"));
    else if (k == "--train") a.train = static_cast<int>(number(i, "--train"));
    else if (k == "--test") a.test = static_cast<int>(number(i, "--test"));
    else if (k == "--batch") a.batch = static_cast<int>(number(i, "--batch"));
    else if (k == "--size") a.size = static_cast<int>(number(i, "--size"));
    else if (k == "--threads") a.threads = static_cast<int>(number(i, "--threads"));
    else if (k == "--lr") a.lr = number(i, "--lr");
    else if (k == "--seed") a.seed = static_cast<std::uint64_t>(number(i, "--seed"));
    else if (k == "--out") { if (i + 1 >= argc) fail("--out needs a directory"); a.out = argv[++i]; }
    else { usage(stderr); fail("unknown option '" + k + "'"); }
  }
  if (a.epochs < 1) fail("--epochs must be at least 1");
  if (a.train < a.batch) fail("--train (" + std::to_string(a.train) + ") must hold at least one batch (" + std::to_string(a.batch) + ")");
  if (a.test < 5) fail("--test must be at least 5 (one patch per class)");
  if (a.batch < 2) fail("--batch must be at least 2 (batch norm needs two samples)");
  if (a.size < 32) fail("--size must be at least 32 pixels");
  if (a.threads < 1) fail("--threads must be at least 1");
  if (!(a.lr > 0)) fail("--lr must be positive");
  return a;
}

struct dataset {
  std::vector<float> pixels;
  std::vector<int> labels;
  int size = 0;
};

dataset make_set(const data::synthetic_patches& gen, std::int64_t first, int count) {
  dataset d;
  d.size = gen.opt.size;
  const std::size_t px = static_cast<std::size_t>(d.size) * d.size;
  d.pixels.resize(px * count);
  d.labels.resize(count);
  for (int i = 0; i < count; ++i) d.labels[i] = gen.generate(first + i, d.pixels.data() + px * i);
  return d;
}

tensor<B> batch_of(const dataset& d, const std::vector<int>& idx, std::size_t from, std::size_t count) {
  const std::size_t px = static_cast<std::size_t>(d.size) * d.size;
  tensor<B> x(shape{static_cast<index_t>(count), 1, d.size, d.size});
  for (std::size_t j = 0; j < count; ++j) std::memcpy(x.item(j), d.pixels.data() + px * idx[from + j], px * sizeof(float));
  return x;
}

/// Logits of every sample in inference mode, in dataset order.
std::vector<float> predict(B::context& ctx, const model_t& m, const dataset& d, int batch) {
  std::vector<int> order(d.labels.size());
  std::iota(order.begin(), order.end(), 0);
  std::vector<float> out;
  for (std::size_t i = 0; i < order.size(); i += batch) {
    const std::size_t n = std::min<std::size_t>(batch, order.size() - i);
    tensor<B> logits = m.infer(ctx, batch_of(d, order, i, n));
    out.insert(out.end(), logits.data(), logits.data() + logits.numel());
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  try {
    B::context ctx(a.threads);
    data::synthetic_patches gen({.size = a.size, .seed = a.seed});
    std::printf("MammoCL patch classifier on the synthetic 5-class task: %d training and %d test patches of %dx%d\n",
                a.train, a.test, a.size, a.size);
    const dataset train = make_set(gen, 0, a.train);
    const dataset test = make_set(gen, 1'000'000, a.test);

    model_t model({.in_channels = 1, .num_classes = data::num_patch_classes});
    model.init(a.seed);
    std::printf("model: small DenseNet, %lld parameters, %d threads\n", static_cast<long long>(model.parameter_count()),
                a.threads);
    optim::sgd<B> opt(optim::collect_parameters(model), {.lr = a.lr, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = true});
    const long steps_per_epoch = a.train / a.batch;
    const optim::cosine_annealing_lr schedule(a.lr, steps_per_epoch * a.epochs);
    losses::cross_entropy ce;

    std::vector<int> order(a.train);
    std::iota(order.begin(), order.end(), 0);
    long step = 0;
    for (int epoch = 1; epoch <= a.epochs; ++epoch) {
      rng shuffle(a.seed * 1000 + epoch);
      for (int i = a.train - 1; i > 0; --i) std::swap(order[i], order[shuffle.below(static_cast<std::uint64_t>(i) + 1)]);
      train::progress_bar bar("epoch " + std::to_string(epoch) + "/" + std::to_string(a.epochs), steps_per_epoch, stdout);
      double loss_sum = 0;
      long correct = 0, seen = 0;
      for (long s = 0; s < steps_per_epoch; ++s, ++step) {
        const std::size_t from = static_cast<std::size_t>(s) * a.batch;
        tensor<B> x = batch_of(train, order, from, a.batch);
        std::vector<int> y(order.begin() + from, order.begin() + from + a.batch);
        for (int& v : y) v = train.labels[v];
        model_t::cache c;
        tensor<B> logits = model.forward(ctx, x, c);
        tensor<B> dl;
        const double loss = ce.value_and_gradient<B>(ctx, logits, y, &dl);
        model.backward(ctx, c, dl, grad_mode::overwrite);
        opt.set_lr(schedule(step));
        opt.step(ctx);
        loss_sum += loss * a.batch;
        for (int j = 0; j < a.batch; ++j) {
          const float* r = logits.item(j);
          correct += static_cast<int>(std::max_element(r, r + data::num_patch_classes) - r) == y[j];
        }
        seen += a.batch;
        bar.update(s + 1, loss_sum / seen, static_cast<double>(correct) / seen, seen);
      }
    }

    const std::vector<float> logits = predict(ctx, model, test, 64);
    int confusion[5][5] = {};
    long correct = 0;
    for (int i = 0; i < a.test; ++i) {
      const float* r = logits.data() + 5 * i;
      const int p = static_cast<int>(std::max_element(r, r + 5) - r);
      ++confusion[test.labels[i]][p];
      correct += p == test.labels[i];
    }
    std::printf("\ntest accuracy %.3f (%ld/%d)\nconfusion matrix (rows: true class, columns: predicted)\n",
                static_cast<double>(correct) / a.test, correct, a.test);
    for (int k = 0; k < 5; ++k) {
      std::printf("  %-24s", data::patch_class_names[k]);
      for (int j = 0; j < 5; ++j) std::printf(" %5d", confusion[k][j]);
      std::printf("\n");
    }

    std::filesystem::create_directories(a.out);
    const auto ckpt = a.out / "patch_classifier.safetensors";
    io::save_state(model, ckpt, {{"model", "densenet_small"}, {"classes", "5"}, {"seed", std::to_string(a.seed)}});
    model_t reloaded({.in_channels = 1, .num_classes = data::num_patch_classes});
    io::load_state(reloaded, ckpt);
    const std::vector<float> again = predict(ctx, reloaded, test, 64);
    const bool same = again.size() == logits.size() && std::memcmp(again.data(), logits.data(), logits.size() * sizeof(float)) == 0;
    std::printf("checkpoint %s: reloaded model reproduces the %zu test logits %s\n", ckpt.c_str(), logits.size(),
                same ? "exactly" : "NOT exactly");
    return same ? 0 : 1;
  } catch (const mammocl::error& e) {
    std::fprintf(stderr, "train_patch_classifier: %s\n", e.what());
    return 1;
  }
}

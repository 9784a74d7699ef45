// phantom_patches: measures how hard the phantom's 5-class patch task is. Generates phantom mammograms,
// cuts lesion and background patches with Shen et al.'s sampler (train and test from disjoint phantom
// indices, so no lesion is in both), trains the small DenseNet with cross-entropy and prints the per-class
// accuracy and the confusion matrix (docs/data-phantom-patches.md records the numbers).
//
//   phantom_patches [--train-images 160] [--test-images 60] [--per-roi 4] [--per-image 3] [--window 128]
//                   [--size 64] [--epochs 4] [--batch 32] [--lr 0.05] [--seed 1] [--threads 1]
#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <string>
#include <vector>

#include "mammocl/data/patches.hpp"
#include "mammocl/data/phantom.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/optim/lr_schedule.hpp"
#include "mammocl/optim/sgd.hpp"
#include "mammocl/train/progress.hpp"

using namespace mammocl;
using B = cpu_backend;
using model_t = models::densenet<B, models::densenet_small>;

namespace {

constexpr int classes = 5;

struct args {
  int train_images = 160, test_images = 60, per_roi = 4, per_image = 3, window = 128, size = 64;
  int epochs = 4, batch = 32, threads = 1;
  double lr = 0.05;
  std::uint64_t seed = 1;
};

[[noreturn]] void fail(const std::string& msg) {
  std::fprintf(stderr, "phantom_patches: %s\n", msg.c_str());
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
    if (k == "--help" || k == "-h") {
      std::printf("usage: phantom_patches [--train-images N] [--test-images N] [--per-roi N] [--per-image N]\n"
                  "                       [--window N] [--size N] [--epochs N] [--batch N] [--lr X] [--seed N] [--threads N]\n");
      std::exit(0);
    } else if (k == "--train-images") a.train_images = static_cast<int>(number(i, "--train-images"));
    else if (k == "--test-images") a.test_images = static_cast<int>(number(i, "--test-images"));
    else if (k == "--per-roi") a.per_roi = static_cast<int>(number(i, "--per-roi"));
    else if (k == "--per-image") a.per_image = static_cast<int>(number(i, "--per-image"));
    else if (k == "--window") a.window = static_cast<int>(number(i, "--window"));
    else if (k == "--size") a.size = static_cast<int>(number(i, "--size"));
    else if (k == "--epochs") a.epochs = static_cast<int>(number(i, "--epochs"));
    else if (k == "--batch") a.batch = static_cast<int>(number(i, "--batch"));
    else if (k == "--threads") a.threads = static_cast<int>(number(i, "--threads"));
    else if (k == "--lr") a.lr = number(i, "--lr");
    else if (k == "--seed") a.seed = static_cast<std::uint64_t>(number(i, "--seed"));
    else fail("unknown option '" + k + "'");
  }
  if (a.train_images < 1 || a.test_images < 1) fail("--train-images and --test-images must be at least 1");
  if (a.per_roi < 1 || a.per_image < 0) fail("--per-roi must be >= 1 and --per-image >= 0");
  if (a.size < 32 || a.window < a.size / 4) fail("--size must be >= 32 and --window a sensible crop for it");
  if (a.epochs < 1 || a.batch < 2 || a.threads < 1 || !(a.lr > 0)) fail("--epochs, --batch (>= 2), --threads, --lr must be positive");
  return a;
}

struct dataset {
  std::vector<float> pixels;
  std::vector<int> labels;
  int size = 0;
  std::array<int, classes> count{};
};

/// Patches of phantoms [first, first + n): every lesion patch, background patches capped so that the
/// normal class is about as frequent as the average lesion class.
dataset make_set(const data::phantom_options& po, const data::patch_options& so, std::uint64_t first, int n) {
  dataset d;
  d.size = so.output_size;
  const std::size_t px = static_cast<std::size_t>(d.size) * d.size;
  for (int i = 0; i < n; ++i) {
    const data::phantom_case pc = data::generate_phantom(po, first + static_cast<std::uint64_t>(i));
    const auto patches = data::sample_patches(pc.img, pc.record, pc.lesion_masks, pc.breast, so, first + i);
    for (const auto& p : patches) {
      d.pixels.insert(d.pixels.end(), p.pixels.pixels.begin(), p.pixels.pixels.end());
      d.labels.push_back(p.label);
      ++d.count[p.label];
    }
  }
  (void)px;
  return d;
}

tensor<B> batch_of(const dataset& d, const std::vector<int>& idx, std::size_t from, std::size_t count) {
  const std::size_t px = static_cast<std::size_t>(d.size) * d.size;
  tensor<B> x(shape{static_cast<index_t>(count), 1, d.size, d.size});
  for (std::size_t j = 0; j < count; ++j) std::memcpy(x.item(j), d.pixels.data() + px * idx[from + j], px * sizeof(float));
  return x;
}

}  // namespace

int main(int argc, char** argv) {
  const args a = parse(argc, argv);
  try {
    const auto t0 = std::chrono::steady_clock::now();
    B::context ctx(a.threads);
    data::phantom_options po;
    po.seed = a.seed;
    data::patch_options so;
    so.patch_size = a.window;
    so.output_size = a.size;
    so.per_roi = a.per_roi;
    so.per_image = a.per_image;
    so.seed = a.seed;
    const dataset train = make_set(po, so, 0, a.train_images);
    const dataset test = make_set(po, so, 1'000'000, a.test_images);
    const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("phantom 5-class patch task: %d train / %d test phantoms (%lldx%lld, %.2f mm), %dx%d windows -> %dx%d, "
                "%d per ROI, %d background per image (%.1f s to generate)\n",
                a.train_images, a.test_images, static_cast<long long>(po.rows), static_cast<long long>(po.cols),
                po.pixel_spacing_mm, a.window, a.window, a.size, a.size, a.per_roi, a.per_image, gen_s);
    for (int k = 0; k < classes; ++k)
      std::printf("  %-24s train %5d  test %5d\n", std::string(data::class_name(static_cast<data::patch_class>(k))).c_str(), train.count[k], test.count[k]);

    const int ntrain = static_cast<int>(train.labels.size()), ntest = static_cast<int>(test.labels.size());
    if (ntrain < a.batch) fail("fewer training patches than one batch");
    model_t model({.in_channels = 1, .num_classes = classes});
    model.init(a.seed);
    optim::sgd<B> opt(optim::collect_parameters(model), {.lr = a.lr, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = true});
    const long steps_per_epoch = ntrain / a.batch;
    const optim::cosine_annealing_lr schedule(a.lr, steps_per_epoch * a.epochs);
    losses::cross_entropy ce;
    std::vector<int> order(static_cast<std::size_t>(ntrain));
    std::iota(order.begin(), order.end(), 0);
    long step = 0;
    for (int epoch = 1; epoch <= a.epochs; ++epoch) {
      rng shuffle(a.seed * 1000 + static_cast<std::uint64_t>(epoch));
      for (int i = ntrain - 1; i > 0; --i) std::swap(order[i], order[shuffle.below(static_cast<std::uint64_t>(i) + 1)]);
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
          correct += static_cast<int>(std::max_element(r, r + classes) - r) == y[j];
        }
        seen += a.batch;
        bar.update(s + 1, loss_sum / seen, static_cast<double>(correct) / seen, seen);
      }
    }

    int confusion[classes][classes] = {};
    long correct = 0;
    std::vector<int> all(static_cast<std::size_t>(ntest));
    std::iota(all.begin(), all.end(), 0);
    for (int i = 0; i < ntest; i += 64) {
      const int n = std::min(64, ntest - i);
      tensor<B> logits = model.infer(ctx, batch_of(test, all, static_cast<std::size_t>(i), static_cast<std::size_t>(n)));
      for (int j = 0; j < n; ++j) {
        const float* r = logits.item(j);
        const int p = static_cast<int>(std::max_element(r, r + classes) - r), t = test.labels[i + j];
        ++confusion[t][p];
        correct += p == t;
      }
    }
    double balanced = 0;
    std::printf("\ntest accuracy %.3f (%ld/%d)\nper class accuracy and confusion matrix (rows: true, columns: predicted)\n",
                static_cast<double>(correct) / ntest, correct, ntest);
    for (int k = 0; k < classes; ++k) {
      const double acc = test.count[k] ? static_cast<double>(confusion[k][k]) / test.count[k] : 0.0;
      balanced += acc / classes;
      std::printf("  %-24s %.3f |", std::string(data::class_name(static_cast<data::patch_class>(k))).c_str(), acc);
      for (int j = 0; j < classes; ++j) std::printf(" %5d", confusion[k][j]);
      std::printf("\n");
    }
    std::printf("balanced accuracy %.3f; total %.1f s\n", balanced,
                std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    return 0;
  } catch (const mammocl::error& e) {
    std::fprintf(stderr, "phantom_patches: %s\n", e.what());
    return 1;
  }
}

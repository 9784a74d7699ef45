// bench_data_loader: throughput of the data path, in images per second delivered to the consumer.
//
// Each item is produced as in training: a patch is generated (data/synthetic.hpp stands in for the PGM/PNG
// decode, so that the bench depends on no reader and no file), augmented with the default grey-mammogram
// pipeline (rotation, random resized crop, flips, gamma/contrast jitter; data/augment.hpp) back to the same
// size, and copied into the NCHW batch buffer by data::loader. The consumer does nothing but take batches,
// so the figure is the loader's ceiling: compare it with a training step's images/s (docs/performance.md,
// bench_train_step).
//
//   bench_data_loader [--sizes 64,224,512] [--workers 1,2] [--batch 8] [--seconds 3] [--two-views]
//                     [--source synthetic|crop]
//
// --source crop replaces the generator by a copy of a patch cut at a per-item position from one 2048 x 2048
// float image held in memory (the cost of an already decoded image), to separate decode from augmentation.
//
// For each size and worker count: one warm-up epoch, then whole epochs until --seconds have passed; the
// reported rate is images / wall time over the timed epochs. The generate and augment costs per image are
// also timed alone, in the main thread, to show where the time goes.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>
#include <vector>

#include "mammocl/data/augment.hpp"
#include "mammocl/data/loader.hpp"
#include "mammocl/data/synthetic.hpp"

namespace {

using namespace mammocl;
using namespace mammocl::data;
using clock_type = std::chrono::steady_clock;

struct patch_source {
  synthetic_patches gen;
  augment_pipeline aug;
  std::size_t n;
  const image* big = nullptr;  // --source crop: patches cut from this in-memory image instead
  [[nodiscard]] std::size_t size() const { return n; }
  [[nodiscard]] image make(std::size_t i) const {
    const int s = gen.opt.size;
    image im(s, s);
    if (big == nullptr) {
      (void)gen.generate(static_cast<std::int64_t>(i), im.pixels.data());
      return im;
    }
    rng r(i + 1);  // a patch position per item
    const auto top = static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(big->rows - s + 1)));
    const auto left = static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(big->cols - s + 1)));
    for (std::int64_t y = 0; y < s; ++y)
      for (std::int64_t x = 0; x < s; ++x) im(y, x) = (*big)(top + y, left + x);
    return im;
  }
  [[nodiscard]] sample get(std::size_t i, rng& r) const {
    return {aug(make(i), r), gen.label(static_cast<std::int64_t>(i)), static_cast<int>(i % 2), -1};
  }
};

std::vector<int> parse_list(const char* s) {
  std::vector<int> v;
  std::stringstream ss(s);
  std::string tok;
  while (std::getline(ss, tok, ',')) v.push_back(std::atoi(tok.c_str()));
  return v;
}

double seconds_since(clock_type::time_point t0) { return std::chrono::duration<double>(clock_type::now() - t0).count(); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<int> sizes{64, 224, 512}, workers{1, 2};
  std::size_t batch_size = 8;
  double budget = 3.0;
  bool two = false, crop = false;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "--sizes" && a + 1 < argc) sizes = parse_list(argv[++a]);
    else if (arg == "--workers" && a + 1 < argc) workers = parse_list(argv[++a]);
    else if (arg == "--batch" && a + 1 < argc) batch_size = static_cast<std::size_t>(std::atoi(argv[++a]));
    else if (arg == "--seconds" && a + 1 < argc) budget = std::atof(argv[++a]);
    else if (arg == "--two-views") two = true;
    else if (arg == "--source" && a + 1 < argc) crop = std::string(argv[++a]) == "crop";
    else {
      std::fprintf(stderr, "usage: %s [--sizes 64,224,512] [--workers 1,2] [--batch 8] [--seconds 3] [--two-views] [--source synthetic|crop]\n", argv[0]);
      return 2;
    }
  }
  image big(2048, 2048);
  {
    rng r(2);
    for (auto& v : big.pixels) v = static_cast<float>(r.uniform());
  }
  std::printf("batch %zu, %s, source %s, default augment_pipeline, hardware threads %u\n", batch_size,
              two ? "two views per item" : "one view per item", crop ? "crop of an in-memory image" : "synthetic generator",
              std::thread::hardware_concurrency());
  std::printf("%6s %8s %14s %14s %16s %16s\n", "size", "workers", "images/s", "batches/s", "generate ms/img", "augment ms/img");
  for (int s : sizes) {
    // Enough items for a few batches per epoch at every size.
    const std::size_t n = s <= 64 ? 512 : s <= 224 ? 96 : 32;
    const patch_source src{synthetic_patches{{.size = s, .seed = 1}}, augment_pipeline{}, n, crop ? &big : nullptr};
    // Per-image costs in the main thread.
    double gen_ms = 0, aug_ms = 0;
    {
      rng r(1);
      const int reps = s <= 64 ? 200 : s <= 224 ? 30 : 8;
      auto t0 = clock_type::now();
      std::vector<image> imgs;
      for (int k = 0; k < reps; ++k) imgs.push_back(src.make(static_cast<std::size_t>(k)));
      gen_ms = 1e3 * seconds_since(t0) / reps;
      t0 = clock_type::now();
      double sink = 0;
      for (const auto& im : imgs) sink += src.aug(im, r).pixels[0];
      aug_ms = 1e3 * seconds_since(t0) / reps;
      if (sink == -1) std::printf(" ");
    }
    for (int w : workers) {
      loader ld(src, {.batch_size = batch_size, .two_views = two, .workers = w, .prefetch = 4, .seed = 1});
      std::int64_t epoch = 0;
      ld.start_epoch(epoch++);
      while (ld.next()) {
      }
      std::int64_t images = 0, batches = 0;
      const auto t0 = clock_type::now();
      do {
        ld.start_epoch(epoch++);
        while (auto b = ld.next()) images += b->n, ++batches;
      } while (seconds_since(t0) < budget);
      const double dt = seconds_since(t0);
      std::printf("%6d %8d %14.1f %14.2f %16.3f %16.3f\n", s, w, static_cast<double>(images) / dt,
                  static_cast<double>(batches) / dt, gen_ms, aug_ms);
      std::fflush(stdout);
    }
  }
  return 0;
}

#pragma once
/// `synthetic_domain_task`: the built-in two-domain version of the synthetic 5-class patch task
/// (data/synthetic.hpp), a `BatchSource` for the trainer's tests and demos.
///
/// Domain A is the patch as generated; domain B is the same patch through the sigmoid VOI LUT with the
/// METHOD.md §2.1 default window (data/voi_lut.hpp): c = median, w = p99 − p1 of the patch's pixels,
/// y = 1 / (1 + exp(−4 (x − c) / w)), so B has a different contrast and brightness per image, as a
/// post-processed mammogram does. The class is what lies on the patch; the domain is not.
///
/// Variants (METHOD.md §2.3) of a set of `count` source patches, items `first .. first+count-1`:
///  - `mixed`: every patch once, in domain B for exactly half of each class (for a count per class that
///    is even; seeded);
///  - `augmented`: every patch in both domains (2·count samples);
///  - `domain_a` / `domain_b`: every patch once, all in one domain;
///  - `both_versions` is `augmented` kept in a fixed order for evaluation: sample 2k is patch k in A and
///    sample 2k+1 the same patch in B (ids equal, so a bootstrap can resample the pair as one cluster).
/// Training batches are shuffled per (stage, epoch) and, with `augment`, randomly flipped, rotated by a
/// multiple of 90° and gamma-jittered, independently for each view. Everything is a pure function of the
/// options and the request.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/batch.hpp"
#include "mammocl/data/synthetic.hpp"
#include "mammocl/data/voi_lut.hpp"

namespace mammocl::data {

/// The domain-B transform of one square patch in place: `apply_lut_domain` (data/voi_lut.hpp) with the
/// window `estimate_lut_params` takes from the whole patch (the patch is all breast).
inline void apply_sigmoid_domain(float* px, int side) {
  image im(side, side);
  std::copy_n(px, im.pixels.size(), im.pixels.begin());
  im.meta.min_value = 0.0;
  im.meta.max_value = 1.0;
  mask all(side, side);
  std::fill(all.values.begin(), all.values.end(), std::uint8_t{1});
  const image out = apply_lut_domain(im, estimate_lut_params(im, all));
  std::copy(out.pixels.begin(), out.pixels.end(), px);
}

struct synthetic_domain_task_options {
  enum class variant { mixed, augmented, domain_a, domain_b, both_versions };
  synthetic_patches_options patches{};  ///< patch generator (size, seed, noise, contrast)
  std::int64_t first = 0;               ///< first generator item
  std::int64_t count = 500;             ///< number of source patches
  variant kind = variant::mixed;
  int batch_size = 32;
  bool shuffle = true;                  ///< shuffle per (stage, epoch); false: fixed order
  bool augment = true;                  ///< flips, 90° rotations, gamma jitter in [0.8, 1.25]
  bool drop_last = true;                ///< drop the last incomplete batch (BN needs full batches)
  std::uint64_t seed = 7;               ///< domain assignment, shuffling and augmentation
};

class synthetic_domain_task {
 public:
  using options = synthetic_domain_task_options;
  using variant = options::variant;

  explicit synthetic_domain_task(const options& o) : opt_(o), gen_(o.patches) {
    MAMMOCL_CHECK(o.count >= 1 && o.batch_size >= 1, config_error, "synthetic_domain_task: count (", o.count,
                  ") and batch_size (", o.batch_size, ") must be >= 1");
    const bool both = o.kind == variant::augmented || o.kind == variant::both_versions;
    for (std::int64_t k = 0; k < o.count; ++k) {
      const std::int64_t item = o.first + k;
      if (both) {
        items_.push_back({item, 0});
        items_.push_back({item, 1});
      } else {
        items_.push_back({item, o.kind == variant::domain_b ? 1 : o.kind == variant::domain_a ? 0 : 0});
      }
    }
    if (o.kind == variant::mixed) assign_mixed();
    MAMMOCL_CHECK(batches_per_epoch() >= 1, config_error, "synthetic_domain_task: ", items_.size(),
                  " samples do not fill one batch of ", o.batch_size, " (drop_last)");
  }

  [[nodiscard]] std::int64_t size() const noexcept { return static_cast<std::int64_t>(items_.size()); }
  [[nodiscard]] std::int64_t batches_per_epoch() const noexcept {
    const auto n = size(), b = static_cast<std::int64_t>(opt_.batch_size);
    return opt_.drop_last ? n / b : (n + b - 1) / b;
  }
  [[nodiscard]] int label(std::int64_t sample) const { return gen_.label(items_[static_cast<std::size_t>(sample)].item); }
  [[nodiscard]] int domain(std::int64_t sample) const { return items_[static_cast<std::size_t>(sample)].domain; }
  [[nodiscard]] const options& opts() const noexcept { return opt_; }

  /// The batch `r.index` of epoch `r.epoch` of stage `r.stage`, with r.views augmented views per sample.
  [[nodiscard]] batch get_batch(const batch_request& r) const {
    MAMMOCL_EXPECTS(r.index >= 0 && r.index < batches_per_epoch(), "synthetic_domain_task: batch ", r.index,
                    " outside [0, ", batches_per_epoch(), ")");
    MAMMOCL_EXPECTS(r.views >= 1, "synthetic_domain_task: views must be >= 1, got ", r.views);
    const std::vector<std::int64_t> order = epoch_order(r.stage, r.epoch);
    const std::int64_t from = r.index * opt_.batch_size;
    const std::int64_t n = std::min<std::int64_t>(opt_.batch_size, size() - from);
    const int s = opt_.patches.size;
    const auto px = static_cast<std::size_t>(s) * static_cast<std::size_t>(s);
    batch b;
    b.samples = n;
    b.views = r.views;
    b.height = b.width = s;
    b.images.resize(px * static_cast<std::size_t>(n * r.views));
    std::vector<float> base(px);
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t sample = order[static_cast<std::size_t>(from + j)];
      const item& it = items_[static_cast<std::size_t>(sample)];
      b.labels.push_back(gen_.generate(it.item, base.data()));
      if (it.domain == 1) apply_sigmoid_domain(base.data(), s);
      b.domains.push_back(it.domain);
      b.ids.push_back(it.item);
      for (int v = 0; v < r.views; ++v) {
        float* dst = b.images.data() + px * static_cast<std::size_t>(v * n + j);
        if (!opt_.augment) {
          std::copy(base.begin(), base.end(), dst);
          continue;
        }
        rng a(mix(opt_.seed, 0xA5A5, static_cast<std::uint64_t>(r.stage), static_cast<std::uint64_t>(r.epoch),
                  static_cast<std::uint64_t>(sample), static_cast<std::uint64_t>(v)));
        augment(base.data(), dst, s, a);
      }
    }
    return b;
  }

 private:
  struct item {
    std::int64_t item;
    int domain;
  };

  static std::uint64_t mix(std::uint64_t a, std::uint64_t b, std::uint64_t c = 0, std::uint64_t d = 0,
                           std::uint64_t e = 0, std::uint64_t f = 0) {
    std::uint64_t h = 0x9E3779B97F4A7C15ULL;
    for (std::uint64_t x : {a, b, c, d, e, f}) {
      h ^= x + 0x9E3779B97F4A7C15ULL + (h << 6) + (h >> 2);
      h *= 0xBF58476D1CE4E5B9ULL;
      h ^= h >> 31;
    }
    return h;
  }

  // Exactly half of each class in B: shuffle each class's items (seeded) and put the second half in B.
  void assign_mixed() {
    for (int c = 0; c < num_patch_classes; ++c) {
      std::vector<std::size_t> idx;
      for (std::size_t i = 0; i < items_.size(); ++i)
        if (gen_.label(items_[i].item) == c) idx.push_back(i);
      rng r(mix(opt_.seed, 0x11, static_cast<std::uint64_t>(c)));
      for (std::size_t i = idx.size(); i > 1; --i) std::swap(idx[i - 1], idx[r.below(i)]);
      for (std::size_t i = 0; i < idx.size(); ++i) items_[idx[i]].domain = 2 * i >= idx.size() ? 1 : 0;
    }
  }

  [[nodiscard]] std::vector<std::int64_t> epoch_order(int stage, int epoch) const {
    std::vector<std::int64_t> order(items_.size());
    std::iota(order.begin(), order.end(), std::int64_t{0});
    if (!opt_.shuffle) return order;
    rng r(mix(opt_.seed, 0x5D, static_cast<std::uint64_t>(stage), static_cast<std::uint64_t>(epoch)));
    for (std::size_t i = order.size(); i > 1; --i) std::swap(order[i - 1], order[r.below(i)]);
    return order;
  }

  // Random flips, a rotation by k·90° and gamma in [0.8, 1.25] on values clamped to [0, 1].
  static void augment(const float* src, float* dst, int s, rng& a) {
    const bool fh = a.below(2) == 1, fv = a.below(2) == 1;
    const int k = static_cast<int>(a.below(4));
    const double gamma = std::exp(a.uniform(std::log(0.8), std::log(1.25)));
    for (int y = 0; y < s; ++y)
      for (int x = 0; x < s; ++x) {
        int sy = y, sx = x;
        for (int t = 0; t < k; ++t) {  // rotate the sampling position by 90° k times
          const int ny = sx, nx = s - 1 - sy;
          sy = ny;
          sx = nx;
        }
        if (fh) sx = s - 1 - sx;
        if (fv) sy = s - 1 - sy;
        const double v = std::clamp(static_cast<double>(src[sy * s + sx]), 0.0, 1.0);
        dst[y * s + x] = static_cast<float>(std::pow(v, gamma));
      }
  }

  options opt_;
  synthetic_patches gen_;
  std::vector<item> items_;
};

static_assert(BatchSource<synthetic_domain_task>);

}  // namespace mammocl::data

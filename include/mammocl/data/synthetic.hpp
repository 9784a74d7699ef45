#pragma once
/// `synthetic_patches`: a deterministic, built-in 5-class patch task for demos and tests, generated in
/// code (no download). Every patch is a noisy, textured background; the class decides what lies on it,
/// in MammoCL's fixed class order:
///   0 normal: background only;
///   1 benign calcification: 2-4 larger, round, scattered bright dots;
///   2 malignant calcification: 6-12 small, dense, clustered dots;
///   3 benign mass: one smooth, round-to-oval bright blob with a sharp margin;
///   4 malignant mass: one irregular blob with spicules.
/// Sample i of a dataset with seed s is a pure function of (s, i), so any subset can be regenerated.
/// The full phantom mammogram generator arrives with the data issue; this task is deliberately small.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"

namespace mammocl::data {

inline constexpr int num_patch_classes = 5;
inline constexpr const char* patch_class_names[num_patch_classes] = {
    "normal", "benign calcification", "malignant calcification", "benign mass", "malignant mass"};

/// Options of `synthetic_patches`.
struct synthetic_patches_options {
  int size = 48;              ///< patch side in pixels
  std::uint64_t seed = 1;     ///< dataset seed
  double noise = 0.08;        ///< standard deviation of the pixel noise
  double contrast = 0.35;     ///< lesion brightness above the background
};

struct synthetic_patches {
  using options = synthetic_patches_options;
  options opt;

  explicit synthetic_patches(const options& o = {}) : opt(o) {
    MAMMOCL_CHECK(o.size >= 16, config_error, "synthetic_patches: size ", o.size, " is below the minimum of 16 pixels");
  }

  /// The label of sample i: classes cycle so that every 5 consecutive samples hold each class once.
  [[nodiscard]] int label(std::int64_t i) const { return static_cast<int>(i % num_patch_classes); }

  /// Writes sample i (size x size floats in about [0, 1]) to `out` and returns its label.
  int generate(std::int64_t i, float* out) const {
    const int n = opt.size, cls = label(i);
    rng r(opt.seed * 0x9E3779B97F4A7C15ULL + static_cast<std::uint64_t>(i) * 0xD1B54A32D192ED03ULL + 1);
    // Background: smooth low-frequency tissue (sum of random cosines) plus pixel noise.
    const double base = r.uniform(0.25, 0.45);
    double fx[4], fy[4], ph[4], am[4];
    for (int k = 0; k < 4; ++k) {
      fx[k] = r.uniform(0.5, 3.0) * 2 * std::numbers::pi / n;
      fy[k] = r.uniform(0.5, 3.0) * 2 * std::numbers::pi / n;
      ph[k] = r.uniform(0, 2 * std::numbers::pi);
      am[k] = r.uniform(0.02, 0.06);
    }
    std::vector<double> img(static_cast<std::size_t>(n) * n);
    for (int y = 0; y < n; ++y)
      for (int x = 0; x < n; ++x) {
        double v = base;
        for (int k = 0; k < 4; ++k) v += am[k] * std::cos(fx[k] * x + fy[k] * y + ph[k]);
        img[static_cast<std::size_t>(y) * n + x] = v;
      }
    const double c = opt.contrast;
    auto add_disc = [&](double cx, double cy, double rad, double amp, double soft) {
      for (int y = 0; y < n; ++y)
        for (int x = 0; x < n; ++x) {
          const double d = std::hypot(x - cx, y - cy);
          img[static_cast<std::size_t>(y) * n + x] += amp / (1 + std::exp((d - rad) / soft));
        }
    };
    const double mid = n / 2.0;
    switch (cls) {
      case 1: {  // benign calcifications: few, larger, scattered
        const int k = 2 + static_cast<int>(r.below(3));
        for (int j = 0; j < k; ++j)
          add_disc(r.uniform(0.15 * n, 0.85 * n), r.uniform(0.15 * n, 0.85 * n), r.uniform(0.05, 0.08) * n, c * 1.2, 0.6);
        break;
      }
      case 2: {  // malignant calcifications: many, small, clustered
        const int k = 6 + static_cast<int>(r.below(7));
        const double cx = mid + r.uniform(-0.15, 0.15) * n, cy = mid + r.uniform(-0.15, 0.15) * n;
        for (int j = 0; j < k; ++j)
          add_disc(cx + r.normal() * 0.08 * n, cy + r.normal() * 0.08 * n, r.uniform(0.015, 0.035) * n, c * 1.2, 0.4);
        break;
      }
      case 3: {  // benign mass: smooth oval, circumscribed
        const double rx = r.uniform(0.16, 0.24) * n, ry = rx * r.uniform(0.75, 1.0), th = r.uniform(0, std::numbers::pi);
        const double cx = mid + r.uniform(-0.1, 0.1) * n, cy = mid + r.uniform(-0.1, 0.1) * n;
        for (int y = 0; y < n; ++y)
          for (int x = 0; x < n; ++x) {
            const double u = (x - cx) * std::cos(th) + (y - cy) * std::sin(th), v = -(x - cx) * std::sin(th) + (y - cy) * std::cos(th);
            const double d = std::sqrt(u * u / (rx * rx) + v * v / (ry * ry));
            img[static_cast<std::size_t>(y) * n + x] += c * 0.8 / (1 + std::exp((d - 1) * 12));
          }
        break;
      }
      case 4: {  // malignant mass: irregular radius and spicules
        const double r0 = r.uniform(0.12, 0.18) * n, cx = mid + r.uniform(-0.1, 0.1) * n, cy = mid + r.uniform(-0.1, 0.1) * n;
        double ha[5], hp[5];
        for (int k = 0; k < 5; ++k) { ha[k] = r.uniform(0.05, 0.2); hp[k] = r.uniform(0, 2 * std::numbers::pi); }
        const int spic = 5 + static_cast<int>(r.below(5));
        std::vector<double> sa(static_cast<std::size_t>(spic)), sl(static_cast<std::size_t>(spic));
        for (int k = 0; k < spic; ++k) { sa[k] = r.uniform(0, 2 * std::numbers::pi); sl[k] = r.uniform(1.6, 2.6); }
        for (int y = 0; y < n; ++y)
          for (int x = 0; x < n; ++x) {
            const double dx = x - cx, dy = y - cy, d = std::hypot(dx, dy), a = std::atan2(dy, dx);
            double rad = r0;
            for (int k = 0; k < 5; ++k) rad *= 1 + ha[k] * std::sin((k + 2) * a + hp[k]) / (k + 1);
            double v = c * 0.8 / (1 + std::exp((d - rad) / 0.8));
            for (int k = 0; k < spic; ++k) {
              double da = std::remainder(a - sa[k], 2 * std::numbers::pi);
              const double width = 0.9 / std::max(d, 1.0);
              if (d < rad * sl[k]) v = std::max(v, c * 0.6 * std::exp(-da * da / (2 * width * width)) * (1 - d / (rad * sl[k])));
            }
            img[static_cast<std::size_t>(y) * n + x] += v;
          }
        break;
      }
      default: break;
    }
    for (std::size_t j = 0; j < img.size(); ++j) out[j] = static_cast<float>(std::clamp(img[j] + opt.noise * r.normal(), 0.0, 1.0));
    return cls;
  }
};

}  // namespace mammocl::data

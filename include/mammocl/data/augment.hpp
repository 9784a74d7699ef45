#pragma once
/// Augmentations for single-channel float images (`data::image`, values in [0, 1] after normalisation):
/// flips, rotation about the centre (bilinear), RandomResizedCrop with torchvision's parameter draw and
/// centre-crop fallback, gamma and contrast jitter, composed by `augment_pipeline` with the grey-mammogram
/// defaults of METHOD.md §2.4. The sigmoid VOI LUT is deliberately not an augmentation: the domain is an
/// experimental factor (METHOD.md §2.4, §2.3), chosen by data/domains.hpp, never at random here.
///
/// Geometry conventions (shared with data/image.hpp): row-major, row 0 at the top; a pixel covers the unit
/// square around its integer centre, so the image spans [-0.5, rows - 0.5] x [-0.5, cols - 0.5] and its
/// centre is ((rows - 1) / 2, (cols - 1) / 2).
///
///   data::augment_pipeline aug({.out_rows = 224, .out_cols = 224});
///   mammocl::rng r(seed);
///   data::image v = aug(patch, r);                   // one augmented view
///   auto [v0, v1] = data::two_views(patch, aug, r);  // SupCon's two independent views
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>
#include <utility>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/image.hpp"

namespace mammocl::data {

namespace detail {

/// Bilinear sample at (y, x) in pixel-centre coordinates. Points outside the image's area give `fill`;
/// points inside it but beyond the outermost pixel centres take the edge pixels (clamped).
[[nodiscard]] inline float sample_bilinear(const image& img, double y, double x, float fill) noexcept {
  if (!(y >= -0.5 && y <= static_cast<double>(img.rows) - 0.5 && x >= -0.5 && x <= static_cast<double>(img.cols) - 0.5))
    return fill;
  y = std::clamp(y, 0.0, static_cast<double>(img.rows - 1));
  x = std::clamp(x, 0.0, static_cast<double>(img.cols - 1));
  const auto y0 = static_cast<std::int64_t>(y), x0 = static_cast<std::int64_t>(x);
  const std::int64_t y1 = std::min(y0 + 1, img.rows - 1), x1 = std::min(x0 + 1, img.cols - 1);
  const double wy = y - static_cast<double>(y0), wx = x - static_cast<double>(x0);
  const double top = img(y0, x0) + wx * (img(y0, x1) - img(y0, x0));
  const double bot = img(y1, x0) + wx * (img(y1, x1) - img(y1, x0));
  return static_cast<float>(top + wy * (bot - top));
}

/// Coordinates within 1e-9 of an integer are snapped to it, so that exact rotations (multiples of 90°)
/// and integer grids sample pixels exactly instead of blending in round-off neighbours.
[[nodiscard]] inline double snap(double v) noexcept {
  const double r = std::nearbyint(v);
  return std::abs(v - r) < 1e-9 ? r : v;
}

inline void check_image(const image& img, const char* fn) {
  MAMMOCL_CHECK(img.rows > 0 && img.cols > 0 && img.pixels.size() == static_cast<std::size_t>(img.rows * img.cols),
                shape_error, fn, ": image is ", img.rows, " x ", img.cols, " with ", img.pixels.size(),
                " pixels; expected a non-empty image with rows x cols pixels");
}

}  // namespace detail

/// Mirror left-right: out(r, c) = in(r, cols - 1 - c).
[[nodiscard]] inline image hflip(const image& in) {
  image out = in;
  for (std::int64_t r = 0; r < in.rows; ++r) std::reverse(out.pixels.begin() + r * in.cols, out.pixels.begin() + (r + 1) * in.cols);
  return out;
}

/// Mirror top-bottom: out(r, c) = in(rows - 1 - r, c).
[[nodiscard]] inline image vflip(const image& in) {
  image out = in;
  for (std::int64_t r = 0; r < in.rows; ++r)
    std::copy_n(in.pixels.begin() + (in.rows - 1 - r) * in.cols, in.cols, out.pixels.begin() + r * in.cols);
  return out;
}

/// Rotates by `degrees` counter-clockwise as displayed (torchvision's sign) about the image centre, same
/// size (corners cut, as torchvision's expand=False), bilinear; output points whose source lies outside the
/// image take `fill`. Multiples of 90° on a square image are exact pixel permutations (90°: out(r, c) =
/// in(c, n - 1 - r), numpy's rot90). Errors: an empty image, a non-finite angle (shape_error / config_error).
[[nodiscard]] inline image rotate(const image& in, double degrees, float fill = 0.0f) {
  detail::check_image(in, "rotate");
  MAMMOCL_CHECK(std::isfinite(degrees), config_error, "rotate: angle ", degrees, " is not finite");
  double c, s;
  const double quarter = degrees / 90.0;
  if (quarter == std::nearbyint(quarter)) {  // exact sin/cos for multiples of 90°
    const auto q = ((static_cast<long long>(quarter) % 4) + 4) % 4;
    c = q == 0 ? 1 : q == 2 ? -1 : 0;
    s = q == 1 ? 1 : q == 3 ? -1 : 0;
  } else {
    const double t = degrees * std::numbers::pi / 180.0;
    c = std::cos(t);
    s = std::sin(t);
  }
  image out(in.rows, in.cols, fill);
  out.meta = in.meta;
  const double cy = (static_cast<double>(in.rows) - 1) / 2, cx = (static_cast<double>(in.cols) - 1) / 2;
  for (std::int64_t r = 0; r < in.rows; ++r) {
    const double dy = static_cast<double>(r) - cy;
    for (std::int64_t col = 0; col < in.cols; ++col) {
      const double dx = static_cast<double>(col) - cx;
      // Inverse map of a counter-clockwise turn with the row axis pointing down.
      const double sx = detail::snap(cx + dx * c - dy * s), sy = detail::snap(cy + dx * s + dy * c);
      out(r, col) = detail::sample_bilinear(in, sy, sx, fill);
    }
  }
  return out;
}

/// A crop rectangle: top-left pixel and size, in pixels.
struct crop_box {
  std::int64_t top = 0, left = 0, height = 0, width = 0;
  friend bool operator==(const crop_box&, const crop_box&) = default;
};

/// torchvision `RandomResizedCrop.get_params`: up to 10 tries of target area = rows·cols·U(scale) and
/// aspect w/h = exp(U(log ratio)), w = round(sqrt(area·aspect)), h = round(sqrt(area/aspect)); accepted when
/// 0 < w <= cols and 0 < h <= rows, with top = below(rows - h + 1), left = below(cols - w + 1). After 10
/// failures: the centre crop of the largest size whose aspect is clamped into the ratio range. Each try
/// draws two uniforms from `r` (then two integers when accepted). Python's round-half-even is used.
[[nodiscard]] inline crop_box random_resized_crop_params(std::int64_t rows, std::int64_t cols, std::array<double, 2> scale,
                                                         std::array<double, 2> ratio, rng& r) {
  MAMMOCL_CHECK(rows > 0 && cols > 0, shape_error, "random_resized_crop_params: image size ", rows, " x ", cols, " is empty");
  MAMMOCL_CHECK(scale[0] > 0 && scale[0] <= scale[1] && scale[1] <= 1, config_error, "random_resized_crop_params: scale (",
                scale[0], ", ", scale[1], ") is not an ordered range in (0, 1]");
  MAMMOCL_CHECK(ratio[0] > 0 && ratio[0] <= ratio[1] && std::isfinite(ratio[1]), config_error,
                "random_resized_crop_params: ratio (", ratio[0], ", ", ratio[1], ") is not an ordered positive range");
  const double area = static_cast<double>(rows) * static_cast<double>(cols);
  const double lr0 = std::log(ratio[0]), lr1 = std::log(ratio[1]);
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * r.uniform(scale[0], scale[1]);
    const double aspect = std::exp(r.uniform(lr0, lr1));
    const auto w = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target * aspect)));  // FE_TONEAREST: half-even
    const auto h = static_cast<std::int64_t>(std::nearbyint(std::sqrt(target / aspect)));
    if (w > 0 && w <= cols && h > 0 && h <= rows) {
      const auto top = static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(rows - h + 1)));
      const auto left = static_cast<std::int64_t>(r.below(static_cast<std::uint64_t>(cols - w + 1)));
      return {top, left, h, w};
    }
  }
  const double in_ratio = static_cast<double>(cols) / static_cast<double>(rows);
  std::int64_t w = cols, h = rows;
  if (in_ratio < ratio[0]) h = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(w) / ratio[0]));
  else if (in_ratio > ratio[1]) w = static_cast<std::int64_t>(std::nearbyint(static_cast<double>(h) * ratio[1]));
  return {(rows - h) / 2, (cols - w) / 2, h, w};
}

/// Crops `box` and resizes it to out_rows x out_cols, bilinear with half-pixel centres (PyTorch's
/// interpolate(mode="bilinear", align_corners=False, antialias=False)): source y = top + (r + 0.5)·h/H - 0.5,
/// clamped to the box. Errors: a box outside the image or an empty output size (shape_error).
[[nodiscard]] inline image resized_crop(const image& in, const crop_box& box, std::int64_t out_rows, std::int64_t out_cols) {
  detail::check_image(in, "resized_crop");
  MAMMOCL_CHECK(box.height > 0 && box.width > 0 && box.top >= 0 && box.left >= 0 && box.top + box.height <= in.rows &&
                    box.left + box.width <= in.cols,
                shape_error, "resized_crop: box (top ", box.top, ", left ", box.left, ", ", box.height, " x ", box.width,
                ") is not inside the ", in.rows, " x ", in.cols, " image");
  MAMMOCL_CHECK(out_rows > 0 && out_cols > 0, shape_error, "resized_crop: output size ", out_rows, " x ", out_cols, " is empty");
  image out(out_rows, out_cols);
  out.meta = in.meta;
  const double fy = static_cast<double>(box.height) / static_cast<double>(out_rows);
  const double fx = static_cast<double>(box.width) / static_cast<double>(out_cols);
  const double y_hi = static_cast<double>(box.top + box.height - 1), x_hi = static_cast<double>(box.left + box.width - 1);
  for (std::int64_t r = 0; r < out_rows; ++r) {
    const double sy = std::clamp(static_cast<double>(box.top) + (static_cast<double>(r) + 0.5) * fy - 0.5,
                                 static_cast<double>(box.top), y_hi);
    for (std::int64_t c = 0; c < out_cols; ++c) {
      const double sx = std::clamp(static_cast<double>(box.left) + (static_cast<double>(c) + 0.5) * fx - 0.5,
                                   static_cast<double>(box.left), x_hi);
      out(r, c) = detail::sample_bilinear(in, detail::snap(sy), detail::snap(sx), 0.0f);
    }
  }
  return out;
}

/// Gamma: out = clamp(in, 0, 1)^gamma (torchvision adjust_gamma with gain 1, on [0, 1] floats).
[[nodiscard]] inline image adjust_gamma(image img, double gamma) {
  MAMMOCL_CHECK(std::isfinite(gamma) && gamma > 0, config_error, "adjust_gamma: gamma ", gamma, " is not a positive number");
  for (auto& v : img.pixels) v = static_cast<float>(std::pow(std::clamp(static_cast<double>(v), 0.0, 1.0), gamma));
  return img;
}

/// Contrast: out = clamp(m + factor·(in - m), 0, 1) with m the image mean (torchvision adjust_contrast on a
/// grey image: a blend with the mean grey level).
[[nodiscard]] inline image adjust_contrast(image img, double factor) {
  MAMMOCL_CHECK(std::isfinite(factor) && factor >= 0, config_error, "adjust_contrast: factor ", factor, " is not a number >= 0");
  double sum = 0;
  for (float v : img.pixels) sum += v;
  const double m = img.pixels.empty() ? 0.0 : sum / static_cast<double>(img.pixels.size());
  for (auto& v : img.pixels) v = static_cast<float>(std::clamp(m + factor * (static_cast<double>(v) - m), 0.0, 1.0));
  return img;
}

/// Options of `augment_pipeline`; the defaults are METHOD.md §2.4's for grey mammograms: flips, rotation
/// ±25° (Shen's Keras pipeline), RandomResizedCrop scale (0.5, 1) with torchvision's aspect range (3/4, 4/3),
/// and mild gamma / contrast jitter (our choice of "mild": gamma log-uniform in [0.8, 1.25] and contrast
/// factor uniform in [0.8, 1.2], i.e. ColorJitter(contrast = 0.2), each applied with probability 0.5).
struct augment_options {
  std::int64_t out_rows = 0, out_cols = 0;        ///< output size; 0 = the input's
  double hflip_p = 0.5, vflip_p = 0.5;            ///< flip probabilities
  double rotate_p = 1.0;                          ///< probability of a rotation
  double max_degrees = 25.0;                      ///< angle ~ U(-max, max)
  float fill = 0.0f;                              ///< value outside the rotated image
  bool random_crop = true;                        ///< RandomResizedCrop (else a plain resize when out size differs)
  std::array<double, 2> crop_scale{0.5, 1.0};     ///< area fraction range
  std::array<double, 2> crop_ratio{3.0 / 4.0, 4.0 / 3.0};  ///< aspect ratio (w/h) range
  double gamma_p = 0.5;                           ///< probability of gamma jitter
  std::array<double, 2> gamma{0.8, 1.25};         ///< gamma ~ log-uniform in this range
  double contrast_p = 0.5;                        ///< probability of contrast jitter
  std::array<double, 2> contrast{0.8, 1.2};       ///< factor ~ U(range)
};

/// The parameters of one augmentation, drawn once and applied by `augment_pipeline::apply`.
struct augment_params {
  double degrees = 0.0;       ///< 0 = no rotation
  bool rotated = false;
  crop_box box{};             ///< the whole image when no crop
  bool hflip = false, vflip = false;
  double gamma = 1.0;         ///< 1 = none
  double contrast = 1.0;      ///< 1 = none
};

/// Rotation, then random resized crop (to the output size), then flips, then gamma, then contrast; every
/// random number comes from the caller's `rng&`, drawn in that order, so one seed gives one result.
class augment_pipeline {
 public:
  using options = augment_options;

  /// Checks the options: probabilities in [0, 1], ordered positive ranges, a non-negative output size
  /// (config_error naming the field and its value).
  explicit augment_pipeline(const options& o = {}) : opt_(o) {
    for (auto [name, p] : {std::pair{"hflip_p", o.hflip_p}, {"vflip_p", o.vflip_p}, {"rotate_p", o.rotate_p},
                           {"gamma_p", o.gamma_p}, {"contrast_p", o.contrast_p}})
      MAMMOCL_CHECK(p >= 0 && p <= 1, config_error, "augment_pipeline: ", name, " = ", p, " is not a probability in [0, 1]");
    MAMMOCL_CHECK(o.max_degrees >= 0 && o.max_degrees <= 180, config_error, "augment_pipeline: max_degrees = ",
                  o.max_degrees, " is not in [0, 180]");
    MAMMOCL_CHECK(o.out_rows >= 0 && o.out_cols >= 0 && (o.out_rows == 0) == (o.out_cols == 0), config_error,
                  "augment_pipeline: output size ", o.out_rows, " x ", o.out_cols, " must be both positive or both 0");
    MAMMOCL_CHECK(o.crop_scale[0] > 0 && o.crop_scale[0] <= o.crop_scale[1] && o.crop_scale[1] <= 1, config_error,
                  "augment_pipeline: crop_scale (", o.crop_scale[0], ", ", o.crop_scale[1], ") is not an ordered range in (0, 1]");
    MAMMOCL_CHECK(o.crop_ratio[0] > 0 && o.crop_ratio[0] <= o.crop_ratio[1], config_error, "augment_pipeline: crop_ratio (",
                  o.crop_ratio[0], ", ", o.crop_ratio[1], ") is not an ordered positive range");
    MAMMOCL_CHECK(o.gamma[0] > 0 && o.gamma[0] <= o.gamma[1], config_error, "augment_pipeline: gamma (", o.gamma[0], ", ",
                  o.gamma[1], ") is not an ordered positive range");
    MAMMOCL_CHECK(o.contrast[0] >= 0 && o.contrast[0] <= o.contrast[1], config_error, "augment_pipeline: contrast (",
                  o.contrast[0], ", ", o.contrast[1], ") is not an ordered range >= 0");
  }

  [[nodiscard]] const options& opts() const noexcept { return opt_; }

  /// Draws the parameters for a rows x cols input.
  [[nodiscard]] augment_params draw(std::int64_t rows, std::int64_t cols, rng& r) const {
    augment_params p;
    p.box = {0, 0, rows, cols};
    if (opt_.rotate_p > 0 && r.uniform() < opt_.rotate_p) {
      p.rotated = true;
      p.degrees = r.uniform(-opt_.max_degrees, opt_.max_degrees);
    }
    if (opt_.random_crop) p.box = random_resized_crop_params(rows, cols, opt_.crop_scale, opt_.crop_ratio, r);
    p.hflip = opt_.hflip_p > 0 && r.uniform() < opt_.hflip_p;
    p.vflip = opt_.vflip_p > 0 && r.uniform() < opt_.vflip_p;
    if (opt_.gamma_p > 0 && r.uniform() < opt_.gamma_p)
      p.gamma = std::exp(r.uniform(std::log(opt_.gamma[0]), std::log(opt_.gamma[1])));
    if (opt_.contrast_p > 0 && r.uniform() < opt_.contrast_p) p.contrast = r.uniform(opt_.contrast[0], opt_.contrast[1]);
    return p;
  }

  /// Applies drawn parameters (deterministic).
  [[nodiscard]] image apply(const image& in, const augment_params& p) const {
    detail::check_image(in, "augment_pipeline");
    const std::int64_t orows = opt_.out_rows ? opt_.out_rows : in.rows, ocols = opt_.out_cols ? opt_.out_cols : in.cols;
    image x = p.rotated ? rotate(in, p.degrees, opt_.fill) : in;
    const bool whole = p.box == crop_box{0, 0, in.rows, in.cols};
    if (!whole || orows != in.rows || ocols != in.cols) x = resized_crop(x, p.box, orows, ocols);
    if (p.hflip) x = hflip(x);
    if (p.vflip) x = vflip(x);
    if (p.gamma != 1.0) x = adjust_gamma(std::move(x), p.gamma);
    if (p.contrast != 1.0) x = adjust_contrast(std::move(x), p.contrast);
    return x;
  }

  /// One augmented view: apply(in, draw(in.rows, in.cols, r)).
  [[nodiscard]] image operator()(const image& in, rng& r) const { return apply(in, draw(in.rows, in.cols, r)); }

 private:
  options opt_;
};

/// Two independently augmented views of one image (HobbitLong's TwoCropTransform): the pipeline applied
/// twice, the second view's parameters drawn after the first's from the same `r`.
[[nodiscard]] inline std::array<image, 2> two_views(const image& in, const augment_pipeline& pipeline, rng& r) {
  image a = pipeline(in, r);
  image b = pipeline(in, r);
  return {std::move(a), std::move(b)};
}

}  // namespace mammocl::data

#pragma once
/// Breast-region segmentation for patch sampling and for the LUT window (METHOD.md §2.1, §2.2).
///
/// `segment_breast` finds the breast in a mammogram whose breast is brighter than the background
/// (MONOCHROME2 after the readers' inversion), in five steps:
///  1. a working copy is reduced by block averaging with the integer factor f = ceil(max(rows, cols) /
///     working_size) (f = 1 for images at most working_size on a side); the averaging also smooths noise;
///  2. Otsu's threshold is computed on a histogram of the working copy (`histogram_bins` equal bins
///     between its minimum and maximum); the threshold is the upper edge of Otsu's last background bin;
///  3. every full-resolution pixel at or above the threshold is foreground, and only the largest
///     8-connected foreground component is kept (this drops film labels, markers and film-edge pieces
///     that do not touch the breast);
///  4. optionally, a morphological closing with a (2r+1) x (2r+1) square (r = `closing_radius`), where
///     the image border counts as foreground for the erosion so that a breast touching it is not eaten;
///  5. holes are filled: background pixels not 4-connected to the image border become breast.
/// The result is one 8-connected component. Cost: a few passes over the full image (0.2-0.4 s
/// for a 4664 x 3064 image on one core; docs/data-voi-lut.md has the measured numbers).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <limits>
#include <string>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/image.hpp"

namespace mammocl::data {

/// Options of `segment_breast`.
struct segmentation_options {
  std::int64_t working_size = 512;  ///< longest side of the block-averaged copy used for Otsu's threshold
  int histogram_bins = 256;         ///< bins of Otsu's histogram (between the copy's min and max)
  int closing_radius = 0;           ///< half side of the square closing element in pixels; 0: no closing
  bool fill_holes = true;           ///< fill background regions that do not touch the image border
};

/// The breast region of an image: its mask, bounding box and the threshold used.
struct breast_region {
  mask region;                             ///< 1 inside the breast, same size as the image
  std::int64_t top = 0, left = 0;          ///< bounding box, first row and column inside
  std::int64_t bottom = 0, right = 0;      ///< bounding box, one past the last row and column inside
  double threshold = 0.0;                  ///< pixels >= threshold were foreground (before steps 3-5)
};

namespace detail {

// Union-find root with path halving.
inline std::int32_t uf_find(std::vector<std::int32_t>& parent, std::int32_t x) {
  while (parent[static_cast<std::size_t>(x)] != x) {
    parent[static_cast<std::size_t>(x)] = parent[static_cast<std::size_t>(parent[static_cast<std::size_t>(x)])];
    x = parent[static_cast<std::size_t>(x)];
  }
  return x;
}

// A horizontal run [begin, end) of equal mask values in one row.
struct mask_run {
  std::int64_t row, begin, end;
};

// Connected components of the runs of `value` in `m`, with 8-connectivity (diagonal contact joins
// two runs) or 4-connectivity. Working on runs instead of pixels keeps the cost to one pass over the
// bytes plus a little per run (a breast row holds one or two runs). On return, comp[i] is the root of
// run i, the smallest run index of its component, so components are numbered in raster order.
inline void label_runs(const mask& m, std::uint8_t value, bool eight, std::vector<mask_run>& runs,
                       std::vector<std::int32_t>& comp) {
  runs.clear();
  comp.clear();
  const std::int64_t R = m.rows, C = m.cols;
  const std::int64_t touch = eight ? 1 : 0;  // runs [a, b) and [c, d) of adjacent rows join when c < b + touch, a < d + touch
  std::size_t prev_begin = 0, prev_end = 0;
  for (std::int64_t r = 0; r < R; ++r) {
    const std::uint8_t* row = m.values.data() + r * C;
    const std::size_t cur_begin = runs.size();
    for (std::int64_t c = 0; c < C;) {
      if ((row[c] != 0) != (value != 0)) { ++c; continue; }
      const std::int64_t s = c;
      while (c < C && (row[c] != 0) == (value != 0)) ++c;
      runs.push_back({r, s, c});
      comp.push_back(static_cast<std::int32_t>(comp.size()));
    }
    const std::size_t cur_end = runs.size();
    // Two-pointer sweep over the previous row's runs and this row's runs, both sorted by column.
    std::size_t i = prev_begin, j = cur_begin;
    while (i < prev_end && j < cur_end) {
      const mask_run &a = runs[i], &b = runs[j];
      if (b.begin < a.end + touch && a.begin < b.end + touch) {
        const std::int32_t x = uf_find(comp, static_cast<std::int32_t>(i)), y = uf_find(comp, static_cast<std::int32_t>(j));
        if (x != y) comp[static_cast<std::size_t>(std::max(x, y))] = std::min(x, y);
      }
      if (a.end < b.end) ++i; else if (b.end < a.end) ++j; else { ++i; ++j; }
    }
    prev_begin = cur_begin;
    prev_end = cur_end;
  }
  for (std::size_t k = 0; k < comp.size(); ++k) comp[k] = uf_find(comp, static_cast<std::int32_t>(k));
}

/// Keeps only the largest 8-connected component of `m` (ties: the one met first in raster order).
/// Returns its size (0 when m is empty).
inline std::int64_t keep_largest_component(mask& m) {
  std::vector<mask_run> runs;
  std::vector<std::int32_t> comp;
  label_runs(m, 1, true, runs, comp);
  if (runs.empty()) return 0;
  std::vector<std::int64_t> size(runs.size(), 0);
  for (std::size_t k = 0; k < runs.size(); ++k) size[static_cast<std::size_t>(comp[k])] += runs[k].end - runs[k].begin;
  // Roots are the smallest run index of their component, so the first maximum is the first component
  // in raster order: a deterministic tie break.
  const auto best = static_cast<std::int32_t>(std::max_element(size.begin(), size.end()) - size.begin());
  for (std::size_t k = 0; k < runs.size(); ++k)
    if (comp[k] != best)
      std::fill_n(m.values.begin() + runs[k].row * m.cols + runs[k].begin, runs[k].end - runs[k].begin, 0);
  return size[static_cast<std::size_t>(best)];
}

/// Sets every background pixel that is not 4-connected to the image border to 1.
inline void fill_holes(mask& m) {
  std::vector<mask_run> runs;
  std::vector<std::int32_t> comp;
  label_runs(m, 0, false, runs, comp);
  std::vector<std::uint8_t> border(runs.size(), 0);
  for (std::size_t k = 0; k < runs.size(); ++k) {
    const auto& r = runs[k];
    if (r.row == 0 || r.row == m.rows - 1 || r.begin == 0 || r.end == m.cols) border[static_cast<std::size_t>(comp[k])] = 1;
  }
  for (std::size_t k = 0; k < runs.size(); ++k)
    if (!border[static_cast<std::size_t>(comp[k])])
      std::fill_n(m.values.begin() + runs[k].row * m.cols + runs[k].begin, runs[k].end - runs[k].begin, 1);
}

/// One separable pass of a square dilation (any in the window) or erosion (all in the window) of
/// half side `rad` along rows (`along_rows`) or columns; for erosion, outside the image counts as 1.
inline void square_pass(mask& m, std::int64_t rad, bool dilate, bool along_rows) {
  const std::int64_t R = m.rows, C = m.cols;
  const std::int64_t lines = along_rows ? R : C, len = along_rows ? C : R;
  const std::int64_t step = along_rows ? 1 : C, line_step = along_rows ? C : 1;
  std::vector<std::int64_t> prefix(static_cast<std::size_t>(len + 1));
  for (std::int64_t l = 0; l < lines; ++l) {
    std::uint8_t* p = m.values.data() + l * line_step;
    prefix[0] = 0;
    for (std::int64_t i = 0; i < len; ++i) prefix[static_cast<std::size_t>(i + 1)] = prefix[static_cast<std::size_t>(i)] + (p[i * step] != 0);
    for (std::int64_t i = 0; i < len; ++i) {
      const std::int64_t a = std::max<std::int64_t>(0, i - rad), b = std::min(len, i + rad + 1);
      const std::int64_t ones = prefix[static_cast<std::size_t>(b)] - prefix[static_cast<std::size_t>(a)];
      p[i * step] = dilate ? (ones > 0) : (ones == b - a);
    }
  }
}

/// Otsu's split of a histogram: the last bin of the lower class that maximises the between-class
/// variance (first maximum on ties), or -1 when the histogram has a single occupied bin.
inline int otsu_split(const std::vector<double>& hist) {
  double total = 0, sum_all = 0;
  for (std::size_t i = 0; i < hist.size(); ++i) { total += hist[i]; sum_all += static_cast<double>(i) * hist[i]; }
  double w0 = 0, sum0 = 0, best = -1;
  int split = -1;
  for (std::size_t k = 0; k + 1 < hist.size(); ++k) {
    w0 += hist[k];
    sum0 += static_cast<double>(k) * hist[k];
    const double w1 = total - w0;
    if (w0 <= 0 || w1 <= 0) continue;
    const double m0 = sum0 / w0, m1 = (sum_all - sum0) / w1;
    const double between = w0 * w1 * (m0 - m1) * (m0 - m1);
    if (between > best) { best = between; split = static_cast<int>(k); }
  }
  return split;
}

}  // namespace detail

/// Segments the breast of `im` (see the file comment for the algorithm). Errors: shape_error for an
/// empty image or one whose pixel count differs from rows x cols; numeric_error for a non-finite pixel
/// or an image with no foreground (all pixels equal); config_error for working_size < 1,
/// histogram_bins < 2 or closing_radius < 0.
[[nodiscard]] inline breast_region segment_breast(const image& im, const segmentation_options& opt = {}) {
  const std::string src = im.meta.source.empty() ? std::string("(generated)") : im.meta.source;
  MAMMOCL_CHECK(im.rows > 0 && im.cols > 0, shape_error, "segment_breast: image ", src, " is empty (", im.rows,
                " x ", im.cols, ")");
  MAMMOCL_CHECK(im.pixels.size() == static_cast<std::size_t>(im.rows * im.cols), shape_error, "segment_breast: image ",
                src, " has ", im.pixels.size(), " pixels for ", im.rows, " x ", im.cols);
  MAMMOCL_CHECK(opt.working_size >= 1, config_error, "segment_breast: working_size ", opt.working_size, " must be >= 1");
  MAMMOCL_CHECK(opt.histogram_bins >= 2, config_error, "segment_breast: histogram_bins ", opt.histogram_bins,
                " must be >= 2");
  MAMMOCL_CHECK(opt.closing_radius >= 0, config_error, "segment_breast: closing_radius ", opt.closing_radius,
                " must be >= 0");
  const std::int64_t R = im.rows, C = im.cols;

  // 1. Block-averaged working copy (partial blocks at the bottom/right average the pixels they hold).
  const std::int64_t f = std::max<std::int64_t>(1, (std::max(R, C) + opt.working_size - 1) / opt.working_size);
  const std::int64_t wr = (R + f - 1) / f, wc = (C + f - 1) / f;
  std::vector<double> work(static_cast<std::size_t>(wr * wc), 0.0);
  for (std::int64_t r = 0; r < R; ++r) {
    const float* row = im.pixels.data() + r * C;
    double* out = work.data() + (r / f) * wc;
    for (std::int64_t c = 0; c < C; ++c) {
      MAMMOCL_CHECK(std::isfinite(row[c]), numeric_error, "segment_breast: image ", src, " has a non-finite pixel at (",
                    r, ", ", c, ")");
      out[c / f] += row[c];
    }
  }
  for (std::int64_t r = 0; r < wr; ++r)
    for (std::int64_t c = 0; c < wc; ++c) {
      const std::int64_t n = (std::min(R, (r + 1) * f) - r * f) * (std::min(C, (c + 1) * f) - c * f);
      work[static_cast<std::size_t>(r * wc + c)] /= static_cast<double>(n);
    }

  // 2. Otsu on the working copy.
  const auto [mn, mx] = std::minmax_element(work.begin(), work.end());
  const double lo = *mn, hi = *mx;
  MAMMOCL_CHECK(hi > lo, numeric_error, "segment_breast: image ", src, " is uniform (every pixel is ", lo,
                "): no foreground to segment");
  const int bins = opt.histogram_bins;
  const double scale = bins / (hi - lo);
  std::vector<double> hist(static_cast<std::size_t>(bins), 0.0);
  for (double v : work) hist[static_cast<std::size_t>(std::min<double>(bins - 1, std::floor((v - lo) * scale)))] += 1;
  const int split = detail::otsu_split(hist);
  MAMMOCL_CHECK(split >= 0, numeric_error, "segment_breast: image ", src, " has no foreground (one histogram bin)");
  // Foreground: bin index > split, i.e. (v - lo) * scale >= split + 1, the same test as the histogram's.
  const double edge = split + 1.0;

  // 3. Full-resolution foreground, largest 8-connected component.
  breast_region out;
  out.threshold = lo + edge / scale;
  out.region = mask(R, C);
  for (std::size_t i = 0; i < im.pixels.size(); ++i)
    out.region.values[i] = (static_cast<double>(im.pixels[i]) - lo) * scale >= edge;
  const std::int64_t kept = detail::keep_largest_component(out.region);
  MAMMOCL_CHECK(kept > 0, numeric_error, "segment_breast: image ", src, " has no pixel at or above the threshold ",
                out.threshold);

  // 4. Optional closing (dilate, then erode), separable square element.
  if (opt.closing_radius > 0) {
    detail::square_pass(out.region, opt.closing_radius, true, true);
    detail::square_pass(out.region, opt.closing_radius, true, false);
    detail::square_pass(out.region, opt.closing_radius, false, true);
    detail::square_pass(out.region, opt.closing_radius, false, false);
  }
  // 5. Holes.
  if (opt.fill_holes) detail::fill_holes(out.region);

  // Bounding box.
  out.top = R, out.left = C, out.bottom = 0, out.right = 0;
  for (std::int64_t r = 0; r < R; ++r) {
    const auto first = out.region.values.begin() + r * C, last = first + C;
    const auto a = std::find(first, last, std::uint8_t{1});
    if (a == last) continue;
    const auto b = std::find(std::make_reverse_iterator(last), std::make_reverse_iterator(a), std::uint8_t{1});
    out.top = std::min(out.top, r);
    out.bottom = r + 1;
    out.left = std::min<std::int64_t>(out.left, a - first);
    out.right = std::max<std::int64_t>(out.right, (b.base() - first));
  }
  return out;
}

namespace detail {
inline void check_crop(std::int64_t rows, std::int64_t cols, std::int64_t top, std::int64_t left, std::int64_t bottom,
                       std::int64_t right, const char* what) {
  MAMMOCL_CHECK(0 <= top && top < bottom && bottom <= rows && 0 <= left && left < right && right <= cols, shape_error,
                "crop: box rows [", top, ", ", bottom, ") x cols [", left, ", ", right, ") is empty or outside the ",
                rows, " x ", cols, " ", what);
}
}  // namespace detail

/// The rows [top, bottom) and columns [left, right) of `im`, with its metadata. Throws shape_error when
/// the box is empty or leaves the image.
[[nodiscard]] inline image crop(const image& im, std::int64_t top, std::int64_t left, std::int64_t bottom,
                                std::int64_t right) {
  detail::check_crop(im.rows, im.cols, top, left, bottom, right, "image");
  image out(bottom - top, right - left);
  out.meta = im.meta;
  for (std::int64_t r = top; r < bottom; ++r)
    std::copy_n(im.pixels.begin() + r * im.cols + left, right - left, out.pixels.begin() + (r - top) * out.cols);
  return out;
}

/// The rows [top, bottom) and columns [left, right) of `m`. Throws shape_error as `crop(image, ...)`.
[[nodiscard]] inline mask crop(const mask& m, std::int64_t top, std::int64_t left, std::int64_t bottom,
                               std::int64_t right) {
  detail::check_crop(m.rows, m.cols, top, left, bottom, right, "mask");
  mask out(bottom - top, right - left);
  for (std::int64_t r = top; r < bottom; ++r)
    std::copy_n(m.values.begin() + r * m.cols + left, right - left, out.values.begin() + (r - top) * out.cols);
  return out;
}

/// `im` cropped to the bounding box of `b`.
[[nodiscard]] inline image crop(const image& im, const breast_region& b) {
  return crop(im, b.top, b.left, b.bottom, b.right);
}

/// `m` cropped to the bounding box of `b`.
[[nodiscard]] inline mask crop(const mask& m, const breast_region& b) { return crop(m, b.top, b.left, b.bottom, b.right); }

}  // namespace mammocl::data

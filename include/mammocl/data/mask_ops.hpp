#pragma once
/// Operations on binary masks shared by the phantom generator and the patch sampler: rasterising a `roi`
/// (circle or polygon) into a mask, bounding boxes, area, the largest connected component, and the overlap
/// of a rectangular window with a mask (direct count, or O(1) per window through a summed-area table).
///
/// Pixel convention: pixel (r, c) is the unit square centred on the integer point (r, c); a shape covers a
/// pixel when it contains that centre. Boxes are half-open: rows [top, bottom), columns [left, right).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/annotation.hpp"
#include "mammocl/data/image.hpp"

namespace mammocl::data {

/// A half-open pixel box: rows [top, bottom), columns [left, right).
struct box {
  std::int64_t top = 0, left = 0, bottom = 0, right = 0;
  [[nodiscard]] std::int64_t height() const noexcept { return bottom - top; }
  [[nodiscard]] std::int64_t width() const noexcept { return right - left; }
  [[nodiscard]] std::int64_t area() const noexcept { return height() * width(); }
  [[nodiscard]] bool empty() const noexcept { return bottom <= top || right <= left; }
  friend bool operator==(const box&, const box&) = default;
};

/// Number of set pixels.
[[nodiscard]] inline std::int64_t area(const mask& m) noexcept { return m.count(); }

/// Smallest box holding every set pixel, or nullopt for an empty mask.
[[nodiscard]] inline std::optional<box> bounding_box(const mask& m) {
  box b{m.rows, m.cols, -1, -1};
  for (std::int64_t r = 0; r < m.rows; ++r)
    for (std::int64_t c = 0; c < m.cols; ++c)
      if (m(r, c)) {
        b.top = std::min(b.top, r);
        b.bottom = std::max(b.bottom, r + 1);
        b.left = std::min(b.left, c);
        b.right = std::max(b.right, c + 1);
      }
  if (b.bottom < 0) return std::nullopt;
  return b;
}

/// Sets (value 1) every pixel whose centre lies in the disc of `radius` around (row, col), clipped to m.
inline void fill_circle(mask& m, double row, double col, double radius) {
  if (!(radius >= 0)) return;
  const auto r0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(row - radius)));
  const auto r1 = std::min<std::int64_t>(m.rows - 1, static_cast<std::int64_t>(std::floor(row + radius)));
  const auto c0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(col - radius)));
  const auto c1 = std::min<std::int64_t>(m.cols - 1, static_cast<std::int64_t>(std::floor(col + radius)));
  const double r2 = radius * radius;
  for (std::int64_t r = r0; r <= r1; ++r)
    for (std::int64_t c = c0; c <= c1; ++c) {
      const double dr = static_cast<double>(r) - row, dc = static_cast<double>(c) - col;
      if (dr * dr + dc * dc <= r2) m(r, c) = 1;
    }
}

/// Sets every pixel whose centre lies inside the polygon (even-odd rule; vertices (row, col), closed
/// implicitly), clipped to m. A centre exactly on an edge counts as inside on the left/top edges of a
/// span and outside on the right/bottom ones (the usual half-open scanline rule), so two polygons that
/// share an edge never both claim a pixel.
inline void fill_polygon(mask& m, const std::vector<std::array<double, 2>>& poly) {
  const std::size_t n = poly.size();
  if (n < 3) return;
  double rmin = poly[0][0], rmax = poly[0][0];
  for (const auto& p : poly) rmin = std::min(rmin, p[0]), rmax = std::max(rmax, p[0]);
  const auto r0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(rmin)));
  const auto r1 = std::min<std::int64_t>(m.rows - 1, static_cast<std::int64_t>(std::floor(rmax)));
  std::vector<double> xs;
  for (std::int64_t r = r0; r <= r1; ++r) {
    const double y = static_cast<double>(r);
    xs.clear();
    for (std::size_t i = 0; i < n; ++i) {
      const auto& a = poly[i];
      const auto& b = poly[(i + 1) % n];
      // Half-open in y: an edge counts for rows in [min(ya, yb), max(ya, yb)), so vertices are not doubled.
      if ((a[0] <= y && y < b[0]) || (b[0] <= y && y < a[0]))
        xs.push_back(a[1] + (y - a[0]) * (b[1] - a[1]) / (b[0] - a[0]));
    }
    std::sort(xs.begin(), xs.end());
    for (std::size_t k = 0; k + 1 < xs.size(); k += 2) {
      const auto c0 = std::max<std::int64_t>(0, static_cast<std::int64_t>(std::ceil(xs[k])));
      // Columns with centre < right crossing.
      auto c1 = static_cast<std::int64_t>(std::ceil(xs[k + 1])) - 1;
      c1 = std::min<std::int64_t>(m.cols - 1, c1);
      for (std::int64_t c = c0; c <= c1; ++c) m(r, c) = 1;
    }
  }
}

/// The mask of a located circle or polygon ROI in a rows x cols image. A ROI given by a mask file must be
/// read with an image reader instead; an unlocated ROI has no extent. Both are config_error.
[[nodiscard]] inline mask rasterize(const roi& region, std::int64_t rows, std::int64_t cols) {
  mask m(rows, cols);
  if (region.center) {
    MAMMOCL_CHECK(region.radius > 0, config_error, "rasterize: circle ROI at (", (*region.center)[0], ", ",
                  (*region.center)[1], ") has radius ", region.radius, "; expected a positive radius");
    fill_circle(m, (*region.center)[0], (*region.center)[1], region.radius);
  } else if (!region.polygon.empty()) {
    MAMMOCL_CHECK(region.polygon.size() >= 3, config_error, "rasterize: polygon ROI has ", region.polygon.size(),
                  " vertices; expected at least 3");
    fill_polygon(m, region.polygon);
  } else if (!region.mask_path.empty()) {
    MAMMOCL_THROW(config_error, "rasterize: ROI is given by the mask file ", region.mask_path,
                  "; read it with an image reader instead of rasterising it");
  } else {
    MAMMOCL_THROW(config_error, "rasterize: ROI (", class_name(region.label()),
                  ") has no location (no circle, polygon or mask file)");
  }
  return m;
}

/// The largest 8-connected component of m (the region OpenCV's outer contour of largest area encloses,
/// up to holes), as a mask of the same size; ties go to the component met first in raster order. Empty
/// in, empty out.
[[nodiscard]] inline mask largest_component(const mask& m) {
  mask out(m.rows, m.cols);
  std::vector<std::int32_t> label(m.values.size(), 0);
  std::vector<std::int64_t> stack;
  std::int32_t best = 0, next = 0;
  std::int64_t best_size = 0;
  for (std::int64_t start = 0; start < static_cast<std::int64_t>(m.values.size()); ++start) {
    if (!m.values[static_cast<std::size_t>(start)] || label[static_cast<std::size_t>(start)]) continue;
    ++next;
    std::int64_t size = 0;
    stack.assign(1, start);
    label[static_cast<std::size_t>(start)] = next;
    while (!stack.empty()) {
      const std::int64_t p = stack.back();
      stack.pop_back();
      ++size;
      const std::int64_t r = p / m.cols, c = p % m.cols;
      for (std::int64_t dr = -1; dr <= 1; ++dr)
        for (std::int64_t dc = -1; dc <= 1; ++dc) {
          const std::int64_t rr = r + dr, cc = c + dc;
          if (rr < 0 || rr >= m.rows || cc < 0 || cc >= m.cols) continue;
          const auto q = static_cast<std::size_t>(rr * m.cols + cc);
          if (m.values[q] && !label[q]) {
            label[q] = next;
            stack.push_back(static_cast<std::int64_t>(q));
          }
        }
    }
    if (size > best_size) best_size = size, best = next;
  }
  if (best)
    for (std::size_t i = 0; i < label.size(); ++i) out.values[i] = label[i] == best;
  return out;
}

/// Bounding box of the largest 8-connected component, or nullopt for an empty mask (Shen et al. draw
/// lesion-patch centres uniformly in this box).
[[nodiscard]] inline std::optional<box> largest_component_box(const mask& m) {
  return bounding_box(largest_component(m));
}

/// Number of set pixels of m inside the window rows [top, top + height), columns [left, left + width);
/// the parts of the window outside m count as unset. Direct count, O(window area).
[[nodiscard]] inline std::int64_t overlap(const mask& m, std::int64_t top, std::int64_t left, std::int64_t height,
                                          std::int64_t width) {
  const std::int64_t r0 = std::max<std::int64_t>(0, top), r1 = std::min(m.rows, top + height);
  const std::int64_t c0 = std::max<std::int64_t>(0, left), c1 = std::min(m.cols, left + width);
  std::int64_t n = 0;
  for (std::int64_t r = r0; r < r1; ++r)
    for (std::int64_t c = c0; c < c1; ++c) n += m(r, c) != 0;
  return n;
}

/// Summed-area table of a mask: `count(top, left, height, width)` is `overlap(m, ...)` in O(1), for
/// samplers that test thousands of windows against the same mask.
class mask_integral {
 public:
  mask_integral() = default;
  explicit mask_integral(const mask& m) : rows_(m.rows), cols_(m.cols) {
    sum_.assign(static_cast<std::size_t>((rows_ + 1) * (cols_ + 1)), 0);
    for (std::int64_t r = 0; r < rows_; ++r) {
      std::int64_t row_sum = 0;
      for (std::int64_t c = 0; c < cols_; ++c) {
        row_sum += m(r, c) != 0;
        at(r + 1, c + 1) = at(r, c + 1) + row_sum;
      }
    }
  }
  [[nodiscard]] std::int64_t rows() const noexcept { return rows_; }
  [[nodiscard]] std::int64_t cols() const noexcept { return cols_; }
  /// Set pixels of the whole mask.
  [[nodiscard]] std::int64_t total() const noexcept { return sum_.empty() ? 0 : sum_.back(); }
  /// Set pixels inside the window (clipped to the mask).
  [[nodiscard]] std::int64_t count(std::int64_t top, std::int64_t left, std::int64_t height, std::int64_t width) const {
    const std::int64_t r0 = std::clamp<std::int64_t>(top, 0, rows_), r1 = std::clamp<std::int64_t>(top + height, 0, rows_);
    const std::int64_t c0 = std::clamp<std::int64_t>(left, 0, cols_), c1 = std::clamp<std::int64_t>(left + width, 0, cols_);
    if (r1 <= r0 || c1 <= c0) return 0;
    return get(r1, c1) - get(r0, c1) - get(r1, c0) + get(r0, c0);
  }

 private:
  std::int64_t& at(std::int64_t r, std::int64_t c) { return sum_[static_cast<std::size_t>(r * (cols_ + 1) + c)]; }
  [[nodiscard]] std::int64_t get(std::int64_t r, std::int64_t c) const {
    return sum_[static_cast<std::size_t>(r * (cols_ + 1) + c)];
  }
  std::int64_t rows_ = 0, cols_ = 0;
  std::vector<std::int64_t> sum_;
};

/// Crops rows [b.top, b.bottom) x columns [b.left, b.right) out of m (the box must lie inside m).
[[nodiscard]] inline mask crop(const mask& m, const box& b) {
  MAMMOCL_CHECK(b.top >= 0 && b.left >= 0 && b.bottom <= m.rows && b.right <= m.cols && !b.empty(), shape_error,
                "crop: box rows [", b.top, ", ", b.bottom, ") x columns [", b.left, ", ", b.right,
                ") is not a non-empty box inside the ", m.rows, " x ", m.cols, " mask");
  mask out(b.height(), b.width());
  for (std::int64_t r = 0; r < b.height(); ++r)
    std::copy_n(m.values.begin() + (b.top + r) * m.cols + b.left, b.width(), out.values.begin() + r * b.width());
  return out;
}

/// Crops rows [b.top, b.bottom) x columns [b.left, b.right) out of img; metadata is kept.
[[nodiscard]] inline image crop(const image& img, const box& b) {
  MAMMOCL_CHECK(b.top >= 0 && b.left >= 0 && b.bottom <= img.rows && b.right <= img.cols && !b.empty(), shape_error,
                "crop: box rows [", b.top, ", ", b.bottom, ") x columns [", b.left, ", ", b.right,
                ") is not a non-empty box inside the ", img.rows, " x ", img.cols, " image",
                img.meta.source.empty() ? "" : " from ", img.meta.source);
  image out(b.height(), b.width());
  out.meta = img.meta;
  for (std::int64_t r = 0; r < b.height(); ++r)
    std::copy_n(img.pixels.begin() + (b.top + r) * img.cols + b.left, b.width(), out.pixels.begin() + r * b.width());
  return out;
}

}  // namespace mammocl::data

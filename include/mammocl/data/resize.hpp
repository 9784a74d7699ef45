#pragma once
/// Resizing of images and masks, separable (rows, then columns), each axis on its own:
///  - an axis that shrinks uses area averaging: output pixel o covers the input interval
///    [o * s, (o + 1) * s) with s = in / out, and takes the mean of the input weighted by how much of
///    each input pixel lies in that interval (OpenCV's INTER_AREA; preserves the mean and, scaled by the
///    area ratio, the total);
///  - an axis that grows uses linear interpolation with half-pixel centres: output pixel o samples the
///    input at x = (o + 0.5) * s - 0.5, clamped to [0, in - 1] (OpenCV's INTER_LINEAR, PyTorch's
///    align_corners=False);
///  - an axis whose size does not change is copied.
/// Masks: the same weights with nearest-neighbour (input pixel floor((o + 0.5) * s)) on growing axes,
/// then a pixel is set when its covered fraction is > 0.5.
/// A constant stays exactly constant. A linear ramp v = c stays the ramp (o + 0.5) * s - 0.5 on a growing
/// axis (away from the clamped border) and on an axis shrunk by an integer factor; for a non-integer
/// factor area averaging gives the mean of the pixel values in the interval, not the ramp's value there.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/data/image.hpp"

namespace mammocl::data {

namespace detail {

/// For each output index along one axis, the input indices and weights (summing to 1) that make it.
struct axis_weights {
  std::vector<std::int64_t> start;    // offset into idx/w of output o
  std::vector<std::int64_t> idx;
  std::vector<double> w;
};

inline axis_weights make_axis_weights(std::int64_t in, std::int64_t out, bool nearest_when_growing) {
  axis_weights a;
  a.start.reserve(static_cast<std::size_t>(out) + 1);
  const double s = static_cast<double>(in) / static_cast<double>(out);
  for (std::int64_t o = 0; o < out; ++o) {
    a.start.push_back(static_cast<std::int64_t>(a.idx.size()));
    if (in == out) {
      a.idx.push_back(o);
      a.w.push_back(1.0);
    } else if (in > out) {  // area averaging over [o*s, (o+1)*s)
      const double x0 = static_cast<double>(o) * s, x1 = static_cast<double>(o + 1) * s;
      const auto i0 = static_cast<std::int64_t>(std::floor(x0));
      const auto i1 = std::min<std::int64_t>(in, static_cast<std::int64_t>(std::ceil(x1)));
      for (std::int64_t i = i0; i < i1; ++i) {
        const double cover = std::min(x1, static_cast<double>(i + 1)) - std::max(x0, static_cast<double>(i));
        if (cover > 0) {
          a.idx.push_back(i);
          a.w.push_back(cover / s);
        }
      }
    } else if (nearest_when_growing) {
      a.idx.push_back(std::min<std::int64_t>(in - 1, static_cast<std::int64_t>(std::floor((static_cast<double>(o) + 0.5) * s))));
      a.w.push_back(1.0);
    } else {  // linear, half-pixel centres, clamped
      const double x = std::clamp((static_cast<double>(o) + 0.5) * s - 0.5, 0.0, static_cast<double>(in - 1));
      const auto i0 = static_cast<std::int64_t>(std::floor(x));
      const double f = x - static_cast<double>(i0);
      a.idx.push_back(i0);
      a.w.push_back(1.0 - f);
      if (f > 0 && i0 + 1 < in) {
        a.idx.push_back(i0 + 1);
        a.w.push_back(f);
      }
    }
  }
  a.start.push_back(static_cast<std::int64_t>(a.idx.size()));
  return a;
}

/// Separable resampling of a rows x cols float field (double accumulation).
inline std::vector<double> resample(const std::vector<double>& in, std::int64_t rows, std::int64_t cols,
                                    std::int64_t out_rows, std::int64_t out_cols, bool nearest_when_growing) {
  const axis_weights wr = make_axis_weights(rows, out_rows, nearest_when_growing);
  const axis_weights wc = make_axis_weights(cols, out_cols, nearest_when_growing);
  std::vector<double> tmp(static_cast<std::size_t>(out_rows * cols), 0.0);
  for (std::int64_t o = 0; o < out_rows; ++o) {
    double* dst = tmp.data() + o * cols;
    for (std::int64_t k = wr.start[o]; k < wr.start[o + 1]; ++k) {
      const double w = wr.w[k];
      const double* src = in.data() + wr.idx[k] * cols;
      for (std::int64_t c = 0; c < cols; ++c) dst[c] += w * src[c];
    }
  }
  std::vector<double> out(static_cast<std::size_t>(out_rows * out_cols), 0.0);
  for (std::int64_t r = 0; r < out_rows; ++r) {
    const double* src = tmp.data() + r * cols;
    double* dst = out.data() + r * out_cols;
    for (std::int64_t o = 0; o < out_cols; ++o) {
      double v = 0;
      for (std::int64_t k = wc.start[o]; k < wc.start[o + 1]; ++k) v += wc.w[k] * src[wc.idx[k]];
      dst[o] = v;
    }
  }
  return out;
}

}  // namespace detail

/// `img` resampled to rows x cols (area averaging on shrinking axes, linear on growing ones; see the file
/// comment). Metadata is kept, with the pixel spacings scaled by the size ratio when they are known.
[[nodiscard]] inline image resize(const image& img, std::int64_t rows, std::int64_t cols) {
  MAMMOCL_CHECK(rows > 0 && cols > 0, shape_error, "resize: target size ", rows, " x ", cols,
                " must be positive (image", img.meta.source.empty() ? "" : " from ", img.meta.source, ")");
  MAMMOCL_CHECK(img.rows > 0 && img.cols > 0, shape_error, "resize: the ", img.rows, " x ", img.cols, " image",
                img.meta.source.empty() ? "" : " from ", img.meta.source, " is empty");
  image out(rows, cols);
  out.meta = img.meta;
  if (img.meta.pixel_spacing_mm_row) out.meta.pixel_spacing_mm_row = *img.meta.pixel_spacing_mm_row * img.rows / rows;
  if (img.meta.pixel_spacing_mm_col) out.meta.pixel_spacing_mm_col = *img.meta.pixel_spacing_mm_col * img.cols / cols;
  if (rows == img.rows && cols == img.cols) {
    out.pixels = img.pixels;
    return out;
  }
  const std::vector<double> in(img.pixels.begin(), img.pixels.end());
  const std::vector<double> res = detail::resample(in, img.rows, img.cols, rows, cols, false);
  for (std::size_t i = 0; i < res.size(); ++i) out.pixels[i] = static_cast<float>(res[i]);
  return out;
}

/// `m` resampled to rows x cols: nearest neighbour on growing axes, covered fraction > 0.5 on shrinking ones.
[[nodiscard]] inline mask resize(const mask& m, std::int64_t rows, std::int64_t cols) {
  MAMMOCL_CHECK(rows > 0 && cols > 0, shape_error, "resize: target size ", rows, " x ", cols, " of a mask must be positive");
  MAMMOCL_CHECK(m.rows > 0 && m.cols > 0, shape_error, "resize: the ", m.rows, " x ", m.cols, " mask is empty");
  if (rows == m.rows && cols == m.cols) {
    mask same = m;
    for (auto& v : same.values) v = v != 0;
    return same;
  }
  mask out(rows, cols);
  std::vector<double> in(m.values.size());
  for (std::size_t i = 0; i < in.size(); ++i) in[i] = m.values[i] != 0 ? 1.0 : 0.0;
  const std::vector<double> res = detail::resample(in, m.rows, m.cols, rows, cols, true);
  // Tolerance so that an exact half (0.5 after rounding error) stays unset.
  for (std::size_t i = 0; i < res.size(); ++i) out.values[i] = res[i] > 0.5 + 1e-9;
  return out;
}

}  // namespace mammocl::data

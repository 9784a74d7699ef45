#pragma once
/// Convolution and pooling geometry shared by layers and backends.
#include "mammocl/core/shape.hpp"

namespace mammocl {

/// Geometry of a 2-D convolution (square or rectangular kernels, symmetric padding, no dilation).
struct conv_geometry {
  index_t kh = 1, kw = 1, stride = 1, pad = 0;
  [[nodiscard]] index_t out_h(index_t h) const { return (h + 2 * pad - kh) / stride + 1; }
  [[nodiscard]] index_t out_w(index_t w) const { return (w + 2 * pad - kw) / stride + 1; }
  [[nodiscard]] bool pointwise() const { return kh == 1 && kw == 1 && stride == 1 && pad == 0; }
};

/// Geometry of a pooling window (floor mode).
struct pool_geometry {
  index_t k = 2, stride = 2, pad = 0;
  [[nodiscard]] index_t out(index_t h) const { return (h + 2 * pad - k) / stride + 1; }
};

}  // namespace mammocl

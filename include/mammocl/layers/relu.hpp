#pragma once
/// `relu`: y = max(x, 0).
#include <string>

#include "mammocl/core/concepts.hpp"

namespace mammocl::layers {

template <Backend B>
class relu {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {};
  struct cache {
    tensor_t y;  // the output; its sign is the mask backward needs
  };
  explicit relu(const options& = {}) {}
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    c.y = infer(ctx, x);
    return c.y;
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    tensor_t y(x.dims());
    B::relu_forward(ctx, x, y);
    return y;
  }
  /// dx = dy·[y > 0].
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode) const {
    MAMMOCL_EXPECTS(dy.dims() == c.y.dims(), "relu::backward: dy has shape ", dy.dims(), ", expected ", c.y.dims());
    tensor_t dx(dy.dims());
    B::relu_backward(ctx, c.y, dy, dx, T(0));
    return dx;
  }
  template <class F> void for_each_parameter(const std::string&, F&&) {}
  template <class F> void for_each_buffer(const std::string&, F&&) {}
};

}  // namespace mammocl::layers

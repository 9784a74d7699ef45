#pragma once
/// Pooling layers: `max_pool`, `avg_pool` (floor mode, PyTorch's padding conventions) and
/// `global_avg_pool` ((N,C,H,W) → (N,C), optionally of ReLU(x)).
#include <string>

#include "mammocl/core/concepts.hpp"

namespace mammocl::layers {

namespace detail {
template <Backend B>
class pool_base {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t kernel = 2, stride = 2, padding = 0;
  };
  explicit pool_base(const options& o, const char* name) : opt_(o), geom_{o.kernel, o.stride, o.padding}, name_(name) {
    MAMMOCL_CHECK(o.kernel > 0 && o.stride > 0 && o.padding >= 0 && 2 * o.padding <= o.kernel, config_error, name,
                  ": invalid options (kernel ", o.kernel, ", stride ", o.stride, ", padding ", o.padding,
                  "); kernel and stride must be positive and padding at most half the kernel");
  }
  [[nodiscard]] shape output_shape(const shape& in) const {
    MAMMOCL_EXPECTS(in.rank() == 4, name_, ": input must be NCHW (rank 4), got ", in);
    MAMMOCL_EXPECTS(in[2] + 2 * opt_.padding >= opt_.kernel && in[3] + 2 * opt_.padding >= opt_.kernel, name_,
                    ": input ", in, " is smaller than the ", opt_.kernel, "x", opt_.kernel, " window");
    return shape{in[0], in[1], geom_.out(in[2]), geom_.out(in[3])};
  }
  template <class F> void for_each_parameter(const std::string&, F&&) {}
  template <class F> void for_each_buffer(const std::string&, F&&) {}

 protected:
  options opt_;
  pool_geometry geom_;
  const char* name_;
};
}  // namespace detail

template <Backend B>
class max_pool : public detail::pool_base<B> {
  using base = detail::pool_base<B>;
 public:
  using typename base::options;
  using typename base::T;
  using typename base::tensor_t;
  struct cache {
    tensor_t x;  // (N,C,H,W); the arg-max is recomputed from it in backward
  };
  explicit max_pool(const options& o) : base(o, "max_pool") {}
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    c.x = x;
    return infer(ctx, x);
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    tensor_t y(this->output_shape(x.dims()));
    B::max_pool_forward(ctx, x, y, this->geom_);
    return y;
  }
  /// dx[argmax of each window] += dy.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode) const {
    MAMMOCL_EXPECTS(dy.dims() == this->output_shape(c.x.dims()), "max_pool::backward: dy has shape ", dy.dims(),
                    ", expected ", this->output_shape(c.x.dims()));
    tensor_t dx(c.x.dims());
    B::max_pool_backward(ctx, c.x, dy, dx, this->geom_, T(0));
    return dx;
  }
};

template <Backend B>
class avg_pool : public detail::pool_base<B> {
  using base = detail::pool_base<B>;
 public:
  using typename base::options;
  using typename base::T;
  using typename base::tensor_t;
  struct cache {
    shape in;  // (N,C,H,W)
  };
  explicit avg_pool(const options& o) : base(o, "avg_pool") {}
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    c.in = x.dims();
    return infer(ctx, x);
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    tensor_t y(this->output_shape(x.dims()));
    B::avg_pool_forward(ctx, x, y, this->geom_);
    return y;
  }
  /// dx = dy / window area, spread over each window.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode) const {
    MAMMOCL_EXPECTS(dy.dims() == this->output_shape(c.in), "avg_pool::backward: dy has shape ", dy.dims(),
                    ", expected ", this->output_shape(c.in));
    tensor_t dx(c.in);
    B::avg_pool_backward(ctx, dy, dx, this->geom_, T(0));
    return dx;
  }
};

template <Backend B>
class global_avg_pool {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    bool relu = false;  ///< pool ReLU(x) instead of x (DenseNet's final ReLU, fused)
  };
  struct cache {
    tensor_t x;  // (N,C,H,W)
  };
  explicit global_avg_pool(const options& o = {}) : opt_(o) {}
  /// (N,C,H,W) → (N,C)
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    c.x = x;
    return infer(ctx, x);
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    MAMMOCL_EXPECTS(x.rank() == 4, "global_avg_pool: input must be NCHW (rank 4), got ", x.dims());
    tensor_t y(shape{x.n(), x.c()});
    B::global_avg_pool_forward(ctx, x, y, opt_.relu);
    return y;
  }
  /// dx = dy/(H·W) on every position (times [x>0] with ReLU).
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode) const {
    MAMMOCL_EXPECTS(dy.dims() == (shape{c.x.n(), c.x.c()}), "global_avg_pool::backward: dy has shape ", dy.dims(),
                    ", expected ", shape{c.x.n(), c.x.c()});
    tensor_t dx(c.x.dims());
    B::global_avg_pool_backward(ctx, c.x, dy, dx, opt_.relu, T(0));
    return dx;
  }
  template <class F> void for_each_parameter(const std::string&, F&&) {}
  template <class F> void for_each_buffer(const std::string&, F&&) {}

 private:
  options opt_;
};

}  // namespace mammocl::layers

#pragma once
/// `conv2d`: 2-D convolution, PyTorch weight layout (Cout, Cin, kh, kw), optional bias.
#include <cmath>
#include <string>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"

namespace mammocl::layers {

template <Backend B>
class conv2d {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t in_channels = 0, out_channels = 0, kernel = 3, stride = 1, padding = 0;
    bool bias = false;
  };
  struct cache {
    tensor_t x;  // (N,Cin,H,W)
  };

  explicit conv2d(const options& o) : opt_(o), geom_{o.kernel, o.kernel, o.stride, o.padding} {
    MAMMOCL_CHECK(o.in_channels > 0 && o.out_channels > 0 && o.kernel > 0 && o.stride > 0 && o.padding >= 0,
                  config_error, "conv2d: invalid options (in_channels ", o.in_channels, ", out_channels ",
                  o.out_channels, ", kernel ", o.kernel, ", stride ", o.stride, ", padding ", o.padding,
                  "); channels, kernel and stride must be positive and padding non-negative");
    weight_ = parameter<B>(shape{o.out_channels, o.in_channels, o.kernel, o.kernel});
    B::fill(weight_.value, T(0));
    if (o.bias) {
      bias_ = parameter<B>(shape{o.out_channels});
      B::fill(bias_.value, T(0));
    }
  }
  /// torchvision's DenseNet init: weights ~ N(0, 2/fan_in) (kaiming_normal_), bias 0. The values are drawn
  /// on the host and copied in with `B::from_host`, so every backend gets the same numbers for a seed.
  void init(rng& r) {
    const double sd = std::sqrt(2.0 / static_cast<double>(opt_.in_channels * opt_.kernel * opt_.kernel));
    std::vector<T> w(static_cast<std::size_t>(weight_.value.numel()));
    for (T& v : w) v = static_cast<T>(r.normal(0.0, sd));
    B::from_host(w.data(), weight_.value);
    if (opt_.bias) B::fill(bias_.value, T(0));
  }

  [[nodiscard]] shape output_shape(const shape& in) const {
    check_input(in);
    const index_t ho = geom_.out_h(in[2]), wo = geom_.out_w(in[3]);
    return shape{in[0], opt_.out_channels, ho, wo};
  }

  /// y = w ⋆ x (+ b).   x (N,Cin,H,W) → y (N,Cout,Ho,Wo)
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    tensor_t y(output_shape(x.dims()));
    forward_into(ctx, x, y);
    c.x = x;
    return y;
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    tensor_t y(output_shape(x.dims()));
    forward_into(ctx, x, y);
    return y;
  }
  /// Writes the output into `y`, which may be a channel slice of a larger buffer.
  void forward_into(typename B::context& ctx, const tensor_t& x, const tensor_t& y) const {
    MAMMOCL_EXPECTS(y.dims() == output_shape(x.dims()), "conv2d: output buffer has shape ", y.dims(),
                    ", expected ", output_shape(x.dims()));
    B::conv2d_forward(ctx, x, weight_.value, opt_.bias ? &bias_.value : nullptr, y, geom_);
  }
  /// y = conv(max(0, x·scale + shift)): the convolution of a batch norm + ReLU given as a per-channel map
  /// (batch_norm::statistics_into, fold_running), applied while the input is packed (FoldsBatchNormIntoConv
  /// backends; the backend checks the shapes). No bias.
  void forward_folded(typename B::context& ctx, const tensor_t& x, const tensor_t& scale, const tensor_t& shift,
                      const tensor_t& y) const {
    MAMMOCL_EXPECTS(!opt_.bias, "conv2d::forward_folded: the folded convolution has no bias");
    B::conv2d_affine_relu_forward(ctx, x, scale, shift, weight_.value, y, geom_);
  }
  /// The backward of forward_folded: dx = conv_transpose(dy) + dx_beta·dx, where dx is the gradient with respect
  /// to the mapped input; the filter gradient per `mode`, from the mapped input packed again.
  void backward_folded(typename B::context& ctx, const tensor_t& x, const tensor_t& scale, const tensor_t& shift,
                       const tensor_t& dy, const tensor_t& dx, T dx_beta, grad_mode mode) {
    const T beta = mode == grad_mode::accumulate ? T(1) : T(0);
    B::conv2d_affine_relu_backward_filter(ctx, x, scale, shift, dy, weight_.grad, geom_, beta);
    B::conv2d_backward_data(ctx, dy, weight_.value, dx, geom_, dx_beta);
  }
  /// dx = wᵀ ⋆ dy;  dw (+)= Σ dy ⊗ x;  db (+)= Σ dy.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode mode) {
    tensor_t dx(c.x.dims());
    backward_into(ctx, c.x, dy, dx, T(0), mode);
    return dx;
  }
  /// dx = conv_transpose(dy) + dx_beta·dx (dx may be a strided view); parameter gradients per `mode`.
  void backward_into(typename B::context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dx, T dx_beta,
                     grad_mode mode) {
    MAMMOCL_EXPECTS(dy.dims() == output_shape(x.dims()), "conv2d::backward: dy has shape ", dy.dims(), ", expected ",
                    output_shape(x.dims()));
    backward_params(ctx, x, dy, mode);
    B::conv2d_backward_data(ctx, dy, weight_.value, dx, geom_, dx_beta);
  }
  /// Parameter gradients only (for the first layer, whose input gradient nobody needs).
  void backward_params(typename B::context& ctx, const tensor_t& x, const tensor_t& dy, grad_mode mode) {
    const T beta = mode == grad_mode::accumulate ? T(1) : T(0);
    B::conv2d_backward_filter(ctx, x, dy, weight_.grad, opt_.bias ? &bias_.grad : nullptr, geom_, beta);
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    f(prefix + "weight", weight_);
    if (opt_.bias) f(prefix + "bias", bias_);
  }
  template <class F>
  void for_each_buffer(const std::string&, F&&) {}

  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  [[nodiscard]] const conv_geometry& geometry() const noexcept { return geom_; }
  [[nodiscard]] parameter<B>& weight() noexcept { return weight_; }
  [[nodiscard]] const parameter<B>& weight() const noexcept { return weight_; }
  [[nodiscard]] parameter<B>& bias() noexcept { return bias_; }

 private:
  void check_input(const shape& in) const {
    MAMMOCL_EXPECTS(in.rank() == 4, "conv2d: input must be NCHW (rank 4), got shape ", in);
    MAMMOCL_EXPECTS(in[1] == opt_.in_channels, "conv2d: input has ", in[1], " channels, expected ",
                    opt_.in_channels, " (input shape ", in, ")");
    MAMMOCL_EXPECTS(in[2] + 2 * opt_.padding >= opt_.kernel && in[3] + 2 * opt_.padding >= opt_.kernel,
                    "conv2d: input ", in, " is smaller than the ", opt_.kernel, "x", opt_.kernel,
                    " kernel with padding ", opt_.padding);
  }
  options opt_;
  conv_geometry geom_;
  parameter<B> weight_, bias_;
};

}  // namespace mammocl::layers

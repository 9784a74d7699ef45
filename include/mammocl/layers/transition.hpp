#pragma once
/// DenseNet's `transition`: BN-ReLU → conv 1x1 (C → C_out) → average pool 2x2, stride 2. On backends that fold
/// batch norm into convolutions (FoldsBatchNormIntoConv, the CPU backend) the BN-ReLU output is never stored:
/// the batch norm computes its statistics and the convolution normalises the block's buffer while packing it.
#include <string>

#include "mammocl/core/concepts.hpp"
#include "mammocl/layers/batch_norm.hpp"
#include "mammocl/layers/conv2d.hpp"
#include "mammocl/layers/pooling.hpp"

namespace mammocl::layers {

template <Backend B>
class transition {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t in_channels = 0, out_channels = 0;
  };
  static constexpr bool folded = FoldsBatchNormIntoConv<B>;
  struct cache {
    typename batch_norm<B>::cache n;
    tensor_t a;  // (N,C,H,W)      ReLU(BN(x)), unfolded backends only
    shape z;     // (N,C_out,H,W)  conv output shape
  };
  explicit transition(const options& o)
      : norm_({.channels = o.in_channels, .relu = true}),
        conv_({.in_channels = o.in_channels, .out_channels = o.out_channels, .kernel = 1}),
        pool_({.kernel = 2, .stride = 2}) {}
  void init(rng& r) { conv_.init(r); }

  /// (N,C,H,W) → (N,C_out,⌊H/2⌋,⌊W/2⌋)
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    tensor_t z;
    if constexpr (folded) {
      norm_.statistics_into(ctx, x, c.n);
      z = tensor_t(conv_.output_shape(x.dims()));
      conv_.forward_folded(ctx, x, c.n.scale, c.n.shift, z);
    } else {
      c.a = norm_.forward(ctx, x, c.n);
      z = conv_.infer(ctx, c.a);
    }
    c.z = z.dims();
    return pool_.infer(ctx, z);
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    if constexpr (folded) {
      tensor_t scale, shift;
      norm_.fold_running(ctx, scale, shift);
      const tensor_t z(conv_.output_shape(x.dims()));
      conv_.forward_folded(ctx, x, scale, shift, z);
      return pool_.infer(ctx, z);
    } else {
      return pool_.infer(ctx, conv_.infer(ctx, norm_.infer(ctx, x)));
    }
  }
  [[nodiscard]] tensor_t backward(typename B::context& ctx, cache& c, const tensor_t& dy, grad_mode mode) {
    typename avg_pool<B>::cache pc{c.z};
    tensor_t dz = pool_.backward(ctx, pc, dy, mode);
    const tensor_t& x = c.n.x;
    tensor_t da(x.dims());
    if constexpr (folded) {
      conv_.backward_folded(ctx, x, c.n.scale, c.n.shift, dz, da, T(0), mode);
    } else {
      conv_.backward_into(ctx, c.a, dz, da, T(0), mode);
    }
    return norm_.backward(ctx, c.n, da, mode);
  }
  template <class F>
  void for_each_parameter(const std::string& p, F&& f) {
    norm_.for_each_parameter(p + "norm.", f);
    conv_.for_each_parameter(p + "conv.", f);
  }
  template <class F>
  void for_each_buffer(const std::string& p, F&& f) {
    norm_.for_each_buffer(p + "norm.", f);
  }

 private:
  batch_norm<B> norm_;
  conv2d<B> conv_;
  avg_pool<B> pool_;
};

}  // namespace mammocl::layers

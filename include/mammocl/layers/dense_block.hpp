#pragma once
/// DenseNet's `dense_layer` (BN-ReLU-conv1x1-BN-ReLU-conv3x3) and `dense_block` (L dense layers, each
/// reading the concatenation of the block input and every earlier layer's output).
///
/// A dense block keeps one concatenation buffer (N, C0 + L·k, H, W): the block input is copied into its
/// first C0 channels, layer l reads channels [0, C_l) as a strided view and writes its k new channels
/// right after them. No layer copies its input, so the quadratic memory of per-layer concatenation is gone
/// in both modes. On backends that fold batch norm into convolutions (the CPU backend) no BN-ReLU output is
/// stored at all: the convolutions normalise their inputs while packing them, and the two modes are the same
/// computation. Elsewhere, in the memory-efficient mode (Pleiss et al.) each layer's BN1-ReLU output, the
/// largest cached tensor, is not kept: backward recomputes it from the buffer and the saved batch statistics,
/// without touching the running statistics. Both modes give bit-identical results.
#include <string>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/layers/batch_norm.hpp"
#include "mammocl/layers/conv2d.hpp"

namespace mammocl::layers {

template <Backend B>
class dense_layer {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t in_channels = 0, growth = 32, bn_size = 4;
    bool memory_efficient = false;
  };
  /// Whether the two batch norms (and ReLUs) are folded into the convolutions after them (backends with
  /// FoldsBatchNormIntoConv, the CPU backend): conv1 then normalises the concatenation buffer while packing it
  /// and conv2 normalises conv1's output while padding it, so neither BN-ReLU output is ever stored, in either
  /// mode; the batch norms compute their statistics only. Other backends (CUDA) store both outputs (BN1's
  /// only outside the memory-efficient mode) and run the layers one after the other.
  static constexpr bool folded = FoldsBatchNormIntoConv<B>;
  struct cache {
    typename batch_norm<B>::cache n1, n2;
    tensor_t a1;  // (N,C_l,H,W)  ReLU(BN1(x)): unfolded, not memory-efficient
    tensor_t z1;  // (N,bn·k,H,W) conv1 output
    tensor_t a2;  // (N,bn·k,H,W) ReLU(BN2(z1)): unfolded only
  };
  explicit dense_layer(const options& o)
      : opt_(o),
        norm1_({.channels = o.in_channels, .relu = true}),
        conv1_({.in_channels = o.in_channels, .out_channels = o.bn_size * o.growth, .kernel = 1}),
        norm2_({.channels = o.bn_size * o.growth, .relu = true}),
        conv2_({.in_channels = o.bn_size * o.growth, .out_channels = o.growth, .kernel = 3, .padding = 1}) {}

  void init(rng& r) {
    conv1_.init(r);
    conv2_.init(r);
  }
  [[nodiscard]] index_t out_channels() const noexcept { return opt_.growth; }

  /// Training forward of x (N,C_l,H,W), possibly a strided view, into y (N,k,H,W), possibly a view. `previous`
  /// (folded backends) is the cache of the layer before this one in a dense block: its input was the first
  /// channels of this one's, in the same buffer, so BN1 reads only the channels that are new to it.
  void forward_into(typename B::context& ctx, const tensor_t& x, const tensor_t& y, cache& c,
                    const cache* previous = nullptr) {
    if constexpr (folded) {
      norm1_.statistics_into(ctx, x, c.n1, previous ? &previous->n1 : nullptr);
      c.z1 = tensor_t(conv1_.output_shape(x.dims()));
      conv1_.forward_folded(ctx, x, c.n1.scale, c.n1.shift, c.z1);
      norm2_.statistics_into(ctx, c.z1, c.n2);
      conv2_.forward_folded(ctx, c.z1, c.n2.scale, c.n2.shift, y);
    } else {
      (void)previous;
      tensor_t a1(x.dims());
      norm1_.forward_into(ctx, x, a1, c.n1, true);
      c.z1 = conv1_.infer(ctx, a1);
      c.a1 = opt_.memory_efficient ? tensor_t() : a1;
      c.a2 = tensor_t(c.z1.dims());
      norm2_.forward_into(ctx, c.z1, c.a2, c.n2, true);
      conv2_.forward_into(ctx, c.a2, y);
    }
  }
  /// Backward: dx = dx + ∂L/∂x (dx is accumulated into, it may be a strided view). `scratch` holds at
  /// least x's elements and is used to recompute BN1-ReLU in the memory-efficient mode (unfolded backends).
  void backward_into(typename B::context& ctx, cache& c, const tensor_t& dy, const tensor_t& dx, grad_mode mode,
                     const tensor_t& scratch = {}) {
    const tensor_t& x = c.n1.x;
    tensor_t da2(c.z1.dims());
    if constexpr (folded) {
      conv2_.backward_folded(ctx, c.z1, c.n2.scale, c.n2.shift, dy, da2, T(0), mode);
      tensor_t dz1(c.z1.dims());
      norm2_.backward_into(ctx, c.n2, da2, dz1, T(0), mode);
      da2 = tensor_t();
      tensor_t da1(x.dims());
      conv1_.backward_folded(ctx, x, c.n1.scale, c.n1.shift, dz1, da1, T(0), mode);
      norm1_.backward_into(ctx, c.n1, da1, dx, T(1), mode);
    } else {
      tensor_t a1 = c.a1;
      if (opt_.memory_efficient) {
        MAMMOCL_EXPECTS(scratch.numel() >= x.numel(), "dense_layer::backward: recomputation scratch of ", scratch.numel(),
                        " elements, need ", x.numel());
        a1 = scratch.prefix(x.dims());
        norm1_.recompute_into(ctx, c.n1, a1);
      }
      conv2_.backward_into(ctx, c.a2, dy, da2, T(0), mode);
      tensor_t dz1(c.z1.dims());
      norm2_.backward_into(ctx, c.n2, da2, dz1, T(0), mode);
      da2 = tensor_t();
      tensor_t da1(x.dims());
      conv1_.backward_into(ctx, a1, dz1, da1, T(0), mode);
      norm1_.backward_into(ctx, c.n1, da1, dx, T(1), mode);
    }
  }

  /// Stand-alone use (tests, custom models): y (N,k,H,W) from x (N,C_l,H,W).
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    tensor_t y(shape{x.n(), opt_.growth, x.h(), x.w()});
    forward_into(ctx, x, y, c);
    return y;
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    tensor_t y(shape{x.n(), opt_.growth, x.h(), x.w()});
    infer_into(ctx, x, y);
    return y;
  }
  void infer_into(typename B::context& ctx, const tensor_t& x, const tensor_t& y) const {
    if constexpr (folded) {
      tensor_t scale, shift;
      norm1_.fold_running(ctx, scale, shift);
      const tensor_t z1(conv1_.output_shape(x.dims()));
      conv1_.forward_folded(ctx, x, scale, shift, z1);
      norm2_.fold_running(ctx, scale, shift);
      conv2_.forward_folded(ctx, z1, scale, shift, y);
    } else {
      conv2_.forward_into(ctx, norm2_.infer(ctx, conv1_.infer(ctx, norm1_.infer(ctx, x))), y);
    }
  }
  [[nodiscard]] tensor_t backward(typename B::context& ctx, cache& c, const tensor_t& dy, grad_mode mode) {
    tensor_t dx = tensor_t::zeros(c.n1.x.dims());
    tensor_t scratch = opt_.memory_efficient && !folded ? tensor_t(c.n1.x.dims()) : tensor_t();
    backward_into(ctx, c, dy, dx, mode, scratch);
    return dx;
  }

  template <class F>
  void for_each_parameter(const std::string& p, F&& f) {
    norm1_.for_each_parameter(p + "norm1.", f);
    conv1_.for_each_parameter(p + "conv1.", f);
    norm2_.for_each_parameter(p + "norm2.", f);
    conv2_.for_each_parameter(p + "conv2.", f);
  }
  template <class F>
  void for_each_buffer(const std::string& p, F&& f) {
    norm1_.for_each_buffer(p + "norm1.", f);
    norm2_.for_each_buffer(p + "norm2.", f);
  }

 private:
  options opt_;
  batch_norm<B> norm1_;
  conv2d<B> conv1_;
  batch_norm<B> norm2_;
  conv2d<B> conv2_;
};

template <Backend B>
class dense_block {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t num_layers = 0, in_channels = 0, growth = 32, bn_size = 4;
    bool memory_efficient = false;
  };
  static constexpr bool folded = dense_layer<B>::folded;
  struct cache {
    tensor_t buffer;  // (N, C0 + L·k, H, W), the shared concatenation buffer (also the block output)
    std::vector<typename dense_layer<B>::cache> layers;
  };

  explicit dense_block(const options& o) : opt_(o) {
    MAMMOCL_CHECK(o.num_layers > 0 && o.in_channels > 0 && o.growth > 0 && o.bn_size > 0, config_error,
                  "dense_block: num_layers (", o.num_layers, "), in_channels (", o.in_channels, "), growth (", o.growth,
                  ") and bn_size (", o.bn_size, ") must be positive");
    layers_.reserve(static_cast<std::size_t>(o.num_layers));
    for (index_t l = 0; l < o.num_layers; ++l)
      layers_.emplace_back(typename dense_layer<B>::options{o.in_channels + l * o.growth, o.growth, o.bn_size,
                                                            o.memory_efficient});
  }
  void init(rng& r) {
    for (auto& l : layers_) l.init(r);
  }
  [[nodiscard]] index_t out_channels() const noexcept { return opt_.in_channels + opt_.num_layers * opt_.growth; }

  /// (N,C0,H,W) → (N,C0+L·k,H,W) = concat[x, y_0, …, y_{L−1}]
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    check_input(x.dims());
    c.buffer = tensor_t(shape{x.n(), out_channels(), x.h(), x.w()});
    B::copy(x, c.buffer.channels(0, opt_.in_channels));
    c.layers.resize(layers_.size());
    index_t ch = opt_.in_channels;
    for (std::size_t l = 0; l < layers_.size(); ++l) {
      layers_[l].forward_into(ctx, c.buffer.channels(0, ch), c.buffer.channels(ch, opt_.growth), c.layers[l],
                              l > 0 ? &c.layers[l - 1] : nullptr);
      ch += opt_.growth;
    }
    return c.buffer;
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    check_input(x.dims());
    tensor_t buf(shape{x.n(), out_channels(), x.h(), x.w()});
    B::copy(x, buf.channels(0, opt_.in_channels));
    index_t ch = opt_.in_channels;
    for (const auto& l : layers_) {
      l.infer_into(ctx, buf.channels(0, ch), buf.channels(ch, opt_.growth));
      ch += opt_.growth;
    }
    return buf;
  }
  /// Walks the layers backwards; each adds its input gradient into the first C_l channels of one
  /// gradient buffer, whose first C0 channels are dx at the end.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, cache& c, const tensor_t& dy, grad_mode mode) {
    MAMMOCL_EXPECTS(dy.dims() == c.buffer.dims(), "dense_block::backward: dy has shape ", dy.dims(), ", expected ",
                    c.buffer.dims());
    tensor_t g = dy.clone();
    tensor_t scratch;
    if (opt_.memory_efficient && !dense_layer<B>::folded) {
      const index_t cmax = out_channels() - opt_.growth;
      scratch = tensor_t(shape{dy.n(), cmax, dy.h(), dy.w()});
    }
    index_t ch = out_channels();
    for (std::size_t l = layers_.size(); l-- > 0;) {
      ch -= opt_.growth;
      layers_[l].backward_into(ctx, c.layers[l], g.channels(ch, opt_.growth), g.channels(0, ch), mode, scratch);
      c.layers[l] = {};
    }
    return g.channels(0, opt_.in_channels).clone();
  }

  template <class F>
  void for_each_parameter(const std::string& p, F&& f) {
    for (std::size_t l = 0; l < layers_.size(); ++l) layers_[l].for_each_parameter(p + "denselayer" + std::to_string(l + 1) + ".", f);
  }
  template <class F>
  void for_each_buffer(const std::string& p, F&& f) {
    for (std::size_t l = 0; l < layers_.size(); ++l) layers_[l].for_each_buffer(p + "denselayer" + std::to_string(l + 1) + ".", f);
  }
  [[nodiscard]] const options& opts() const noexcept { return opt_; }

 private:
  void check_input(const shape& in) const {
    MAMMOCL_EXPECTS(in.rank() == 4 && in[1] == opt_.in_channels, "dense_block: input must be (N,", opt_.in_channels,
                    ",H,W), got ", in);
  }
  options opt_;
  std::vector<dense_layer<B>> layers_;
};

}  // namespace mammocl::layers

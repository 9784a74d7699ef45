#pragma once
/// `residual_bottleneck`: the ResNet v1 bottleneck unit that Shen et al. append to a patch network to make
/// a whole-image classifier ("bottleneck_org" in lishen/end2end-all-conv, METHOD.md §3.2):
///
///     r  = ReLU(BN(conv1x1(x; d, stride s)))        stride on the first 1x1 (ResNet v1 / Caffe style)
///     r  = ReLU(BN(conv3x3(r; d, pad 1)))
///     r  = BN(conv1x1(r; d·e))                      no ReLU before the addition
///     sc = projection ? BN(conv1x1(x; d·e, stride s)) : x
///     y  = ReLU(sc + r)
///
/// Parameter names follow torchvision's ResNet `Bottleneck` (conv1, bn1, conv2, bn2, conv3, bn3,
/// downsample.0 = shortcut conv, downsample.1 = shortcut BN), so a saved unit opens in Python with the same
/// keys. Batch norm uses PyTorch's conventions (eps 1e-5, momentum 0.1), like the DenseNet it sits on.
/// Shen's dropout after each ReLU is omitted (his whole-image scripts run it at p = 0).
#include <optional>
#include <string>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/layers/batch_norm.hpp"
#include "mammocl/layers/conv2d.hpp"

namespace mammocl::layers {

template <Backend B>
class residual_bottleneck {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  /// Sizes of the unit. The defaults are METHOD.md §3.2's unit for DenseNet-121 (d 512, e 2, stride 2,
  /// projection shortcut, bias-free convolutions); `in_channels` has no default.
  struct options {
    index_t in_channels = 0;   ///< channels of x
    index_t depth = 512;       ///< d: width of the two inner convolutions
    index_t expansion = 2;     ///< e: the output has d·e channels
    index_t stride = 2;        ///< s: on the first 1x1 convolution and on the shortcut
    bool projection = true;    ///< shortcut conv1x1 + BN; false: identity (needs stride 1 and in_channels = d·e)
    bool bias = false;         ///< conv biases (Keras' default; redundant before BN)
  };
  struct cache {
    typename conv2d<B>::cache conv1, conv2, conv3, conv_sc;
    typename batch_norm<B>::cache bn1, bn2, bn3, bn_sc;
    tensor_t y;  // (N,d·e,Ho,Wo) output; its sign is the final ReLU's mask
  };

  explicit residual_bottleneck(const options& o)
      : opt_(checked(o)),
        conv1_({.in_channels = o.in_channels, .out_channels = o.depth, .kernel = 1, .stride = o.stride, .bias = o.bias}),
        bn1_({.channels = o.depth, .relu = true}),
        conv2_({.in_channels = o.depth, .out_channels = o.depth, .kernel = 3, .padding = 1, .bias = o.bias}),
        bn2_({.channels = o.depth, .relu = true}),
        conv3_({.in_channels = o.depth, .out_channels = o.depth * o.expansion, .kernel = 1, .bias = o.bias}),
        bn3_({.channels = o.depth * o.expansion}) {
    if (o.projection)
      sc_.emplace(shortcut{conv2d<B>({.in_channels = o.in_channels, .out_channels = out_channels(), .kernel = 1,
                                      .stride = o.stride, .bias = o.bias}),
                           batch_norm<B>({.channels = out_channels()})});
  }

  /// Kaiming-normal convolutions (std √(2/fan_in), as DenseNet's), biases 0, BN γ = 1, β = 0.
  void init(rng& r) {
    conv1_.init(r);
    conv2_.init(r);
    conv3_.init(r);
    if (sc_) sc_->conv.init(r);
    bn1_.reset();
    bn2_.reset();
    bn3_.reset();
    if (sc_) sc_->bn.reset();
  }

  /// Channels of the output, d·e.
  [[nodiscard]] index_t out_channels() const noexcept { return opt_.depth * opt_.expansion; }
  /// (N,Cin,H,W) → (N,d·e,⌊(H−1)/s⌋+1,⌊(W−1)/s⌋+1)
  [[nodiscard]] shape output_shape(const shape& in) const {
    check_input(in);
    return shape{in[0], out_channels(), (in[2] - 1) / opt_.stride + 1, (in[3] - 1) / opt_.stride + 1};
  }

  /// Training forward (batch statistics; running statistics updated once per BN).
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    check_input(x.dims());
    tensor_t r = conv1_.forward(ctx, x, c.conv1);
    r = bn1_.forward(ctx, r, c.bn1);
    r = conv2_.forward(ctx, r, c.conv2);
    r = bn2_.forward(ctx, r, c.bn2);
    r = conv3_.forward(ctx, r, c.conv3);
    r = bn3_.forward(ctx, r, c.bn3);
    if (sc_) {
      const tensor_t s = sc_->bn.forward(ctx, sc_->conv.forward(ctx, x, c.conv_sc), c.bn_sc);
      add_relu(ctx, s, r);
    } else {
      add_relu(ctx, x.contiguous() ? x : x.clone(), r);
    }
    c.y = r;
    return r;
  }
  /// Inference (running statistics).
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    check_input(x.dims());
    tensor_t r = bn3_.infer(ctx, conv3_.infer(ctx, bn2_.infer(ctx, conv2_.infer(ctx, bn1_.infer(ctx, conv1_.infer(ctx, x))))));
    if (sc_) add_relu(ctx, sc_->bn.infer(ctx, sc_->conv.infer(ctx, x)), r);
    else add_relu(ctx, x.contiguous() ? x : x.clone(), r);
    return r;
  }
  /// With g = dy·[y > 0]: the residual branch and the shortcut both receive g; dx is the sum of their
  /// input gradients. Parameter gradients per `mode`.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, cache& c, const tensor_t& dy, grad_mode mode) {
    MAMMOCL_EXPECTS(dy.dims() == c.y.dims(), "residual_bottleneck::backward: dy has shape ", dy.dims(), ", expected ",
                    c.y.dims());
    tensor_t g(dy.dims());
    B::relu_backward(ctx, c.y, dy, g, T(0));
    tensor_t d = bn3_.backward(ctx, c.bn3, g, mode);
    d = conv3_.backward(ctx, c.conv3, d, mode);
    d = bn2_.backward(ctx, c.bn2, d, mode);
    d = conv2_.backward(ctx, c.conv2, d, mode);
    d = bn1_.backward(ctx, c.bn1, d, mode);
    tensor_t dx = conv1_.backward(ctx, c.conv1, d, mode);
    if (sc_) {
      const tensor_t ds = sc_->bn.backward(ctx, c.bn_sc, g, mode);
      sc_->conv.backward_into(ctx, c.conv_sc.x, ds, dx, T(1), mode);
    } else {
      B::axpby(ctx, T(1), g, T(1), dx);
    }
    return dx;
  }

  /// torchvision Bottleneck names: conv1, bn1, conv2, bn2, conv3, bn3, downsample.0, downsample.1.
  template <class F>
  void for_each_parameter(const std::string& p, F&& f) {
    conv1_.for_each_parameter(p + "conv1.", f);
    bn1_.for_each_parameter(p + "bn1.", f);
    conv2_.for_each_parameter(p + "conv2.", f);
    bn2_.for_each_parameter(p + "bn2.", f);
    conv3_.for_each_parameter(p + "conv3.", f);
    bn3_.for_each_parameter(p + "bn3.", f);
    if (sc_) {
      sc_->conv.for_each_parameter(p + "downsample.0.", f);
      sc_->bn.for_each_parameter(p + "downsample.1.", f);
    }
  }
  template <class F>
  void for_each_buffer(const std::string& p, F&& f) {
    bn1_.for_each_buffer(p + "bn1.", f);
    bn2_.for_each_buffer(p + "bn2.", f);
    bn3_.for_each_buffer(p + "bn3.", f);
    if (sc_) sc_->bn.for_each_buffer(p + "downsample.1.", f);
  }

  [[nodiscard]] const options& opts() const noexcept { return opt_; }

 private:
  static const options& checked(const options& o) {
    MAMMOCL_CHECK(o.in_channels > 0 && o.depth > 0 && o.expansion > 0 && o.stride > 0, config_error,
                  "residual_bottleneck: in_channels (", o.in_channels, "), depth (", o.depth, "), expansion (",
                  o.expansion, ") and stride (", o.stride, ") must be positive");
    MAMMOCL_CHECK(o.projection || (o.stride == 1 && o.in_channels == o.depth * o.expansion), config_error,
                  "residual_bottleneck: an identity shortcut needs stride 1 and in_channels = depth*expansion (got stride ",
                  o.stride, ", in_channels ", o.in_channels, ", depth*expansion ", o.depth * o.expansion,
                  "); use projection = true");
    return o;
  }
  void check_input(const shape& in) const {
    MAMMOCL_EXPECTS(in.rank() == 4 && in[1] == opt_.in_channels, "residual_bottleneck: input must be (N,",
                    opt_.in_channels, ",H,W), got ", in);
  }
  /// r = ReLU(s + r), in place on r (contiguous, fresh from a layer).
  static void add_relu(typename B::context& ctx, const tensor_t& s, const tensor_t& r) {
    B::axpby(ctx, T(1), s, T(1), r);
    B::relu_forward(ctx, r, r);
  }

  options opt_;
  conv2d<B> conv1_;
  batch_norm<B> bn1_;
  conv2d<B> conv2_;
  batch_norm<B> bn2_;
  conv2d<B> conv3_;
  batch_norm<B> bn3_;
  struct shortcut {  // the projection shortcut; absent for an identity unit
    conv2d<B> conv;
    batch_norm<B> bn;
  };
  std::optional<shortcut> sc_;
};

}  // namespace mammocl::layers

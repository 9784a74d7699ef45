#pragma once
/// `mlp_projector`: the SupCon projection head of HobbitLong/SupContrast (`resnet_big.py::SupConResNet`,
/// head='mlp'; METHOD.md §3.3):
///
///   z = W₂·ReLU(W₁·x + b₁) + b₂            (batch_norm = false, the reference)
///   z = W₂·ReLU(BN(W₁·x + b₁)) + b₂        (batch_norm = true, BatchNorm1d on the hidden units)
///
/// with W₁ (hidden, in), W₂ (out, in) in PyTorch's layout and bias on both Linear layers. The output is
/// not normalised; follow it with `l2_normalize` for SupCon. Default 1024→1024→128: 1 180 800 parameters.
///
/// Parameter names follow torch.nn.Sequential's numbering of the reference head:
///   without BN  Sequential(Linear, ReLU, Linear):      "0.weight", "0.bias", "2.weight", "2.bias";
///   with BN     Sequential(Linear, BN, ReLU, Linear):  "0.weight", "0.bias", "1.weight", "1.bias",
///               "3.weight", "3.bias"; buffers "1.running_mean", "1.running_var", "1.num_batches_tracked".
#include <optional>
#include <string>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/layers/batch_norm.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/layers/relu.hpp"

namespace mammocl::layers {

template <Backend B>
class mlp_projector {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t in_features = 1024;
    index_t hidden = 1024;  ///< 0: the hidden width equals in_features (the reference)
    index_t out_features = 128;
    bool batch_norm = false;  ///< BatchNorm1d between the first Linear and the ReLU
  };
  struct cache {
    typename linear<B>::cache fc1, fc2;
    typename layers::batch_norm<B>::cache bn;
    typename relu<B>::cache act;
  };

  explicit mlp_projector(const options& o)
      : opt_(checked(o)),
        fc1_({.in_features = opt_.in_features, .out_features = opt_.hidden, .bias = true}),
        fc2_({.in_features = opt_.hidden, .out_features = opt_.out_features, .bias = true}) {
    if (opt_.batch_norm) bn_.emplace(typename layers::batch_norm<B>::options{.channels = opt_.hidden});
  }

  /// PyTorch's Linear default for both weights (U(−1/√in, 1/√in)); biases as `linear::init` sets them; BN reset.
  void init(rng& r) {
    fc1_.init(r);
    fc2_.init(r);
    if (bn_) bn_->reset();
  }

  /// Training mode (BN uses batch statistics and updates its running statistics). (N,in) → (N,out).
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    tensor_t h = fc1_.forward(ctx, x, c.fc1);
    if (bn_) h = bn_->forward(ctx, h, c.bn);
    h = act_.forward(ctx, h, c.act);
    return fc2_.forward(ctx, h, c.fc2);
  }
  /// Inference (BN uses its running statistics).
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    tensor_t h = fc1_.infer(ctx, x);
    if (bn_) h = bn_->infer(ctx, h);
    h = act_.infer(ctx, h);
    return fc2_.infer(ctx, h);
  }
  /// Chain rule through Linear₂, ReLU, (BN,) Linear₁; parameter gradients written or accumulated per `mode`.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode mode) {
    tensor_t g = fc2_.backward(ctx, c.fc2, dy, mode);
    g = act_.backward(ctx, c.act, g, mode);
    if (bn_) g = bn_->backward(ctx, c.bn, g, mode);
    return fc1_.backward(ctx, c.fc1, g, mode);
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    fc1_.for_each_parameter(prefix + "0.", f);
    if (bn_) {
      bn_->for_each_parameter(prefix + "1.", f);
      fc2_.for_each_parameter(prefix + "3.", f);
    } else {
      fc2_.for_each_parameter(prefix + "2.", f);
    }
  }
  template <class F>
  void for_each_buffer(const std::string& prefix, F&& f) {
    if (bn_) bn_->for_each_buffer(prefix + "1.", f);
  }

  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  [[nodiscard]] linear<B>& fc1() noexcept { return fc1_; }
  [[nodiscard]] linear<B>& fc2() noexcept { return fc2_; }
  /// The BatchNorm1d layer; only with options::batch_norm.
  [[nodiscard]] layers::batch_norm<B>& bn() {
    MAMMOCL_CHECK(bn_.has_value(), config_error, "mlp_projector::bn: built without batch_norm");
    return *bn_;
  }

 private:
  static options checked(options o) {
    if (o.hidden == 0) o.hidden = o.in_features;
    MAMMOCL_CHECK(o.in_features > 0 && o.hidden > 0 && o.out_features > 0, config_error,
                  "mlp_projector: in_features (", o.in_features, "), hidden (", o.hidden, ") and out_features (",
                  o.out_features, ") must be positive");
    return o;
  }
  options opt_;
  linear<B> fc1_, fc2_;
  std::optional<layers::batch_norm<B>> bn_;
  relu<B> act_;
};

}  // namespace mammocl::layers

#pragma once
/// DenseNet (Huang et al. 2017) exactly as torchvision builds it: same layer order, same parameter names
/// (`features.conv0.weight`, `features.denseblock1.denselayer1.norm1.running_mean`, …, `classifier.bias`),
/// same counts (DenseNet-121: 6,958,981 parameters for 5 classes and 3 input channels).
///
/// The architecture is a compile-time configuration type with static constexpr members; sizes that vary
/// per run (input channels, classes, memory-efficient mode) are run-time options. Only the model is
/// instantiated per configuration: its blocks are run-time vectors of one dense_block type.
#include <array>
#include <concepts>
#include <cstdint>
#include <string>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/layers/batch_norm.hpp"
#include "mammocl/layers/conv2d.hpp"
#include "mammocl/layers/dense_block.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/layers/pooling.hpp"
#include "mammocl/layers/transition.hpp"

namespace mammocl::models {

/// torchvision's densenet121: growth 32, bottleneck 4·32, 64 initial features, blocks 6-12-24-16,
/// compression 0.5.
struct densenet121 {
  static constexpr int growth_rate = 32;
  static constexpr int bn_size = 4;
  static constexpr int init_features = 64;
  static constexpr std::array<int, 4> blocks{6, 12, 24, 16};
  static constexpr double compression = 0.5;
};

/// A small DenseNet for tests, demos and CPU-sized experiments (about 26 k parameters, 64 features).
struct densenet_small {
  static constexpr int growth_rate = 8;
  static constexpr int bn_size = 2;
  static constexpr int init_features = 16;
  static constexpr std::array<int, 3> blocks{2, 3, 4};
  static constexpr double compression = 0.5;
};

/// What a DenseNet configuration type must provide.
template <class C>
concept DenseNetConfig = requires {
  { C::growth_rate } -> std::convertible_to<int>;
  { C::bn_size } -> std::convertible_to<int>;
  { C::init_features } -> std::convertible_to<int>;
  { C::compression } -> std::convertible_to<double>;
  C::blocks.size();
  { C::blocks[0] } -> std::convertible_to<int>;
};

namespace detail {
template <class C>
constexpr bool all_blocks_positive() {
  for (auto b : C::blocks)
    if (b <= 0) return false;
  return true;
}
}  // namespace detail

template <Backend B, DenseNetConfig Config>
class densenet {
  static_assert(Config::growth_rate > 0, "mammocl: a DenseNet config needs a positive growth_rate.");
  static_assert(Config::bn_size > 0, "mammocl: a DenseNet config needs a positive bn_size (bottleneck width factor).");
  static_assert(Config::init_features > 0, "mammocl: a DenseNet config needs a positive init_features.");
  static_assert(Config::blocks.size() >= 1, "mammocl: a DenseNet config needs at least one dense block.");
  static_assert(detail::all_blocks_positive<Config>(), "mammocl: every dense block of a DenseNet config needs at least one layer.");
  static_assert(Config::compression > 0.0 && Config::compression <= 1.0,
                "mammocl: a DenseNet config's compression must lie in (0, 1]; torchvision uses 0.5.");

 public:
  using backend_type = B;
  using config = Config;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t in_channels = 3;
    index_t num_classes = 5;
    bool memory_efficient = false;  ///< recompute BN1-ReLU in dense layers during backward (backends that store
                                    ///< it; the CPU backend folds the batch norms and stores none in either mode)
  };
  struct cache {
    typename layers::conv2d<B>::cache conv0;
    typename layers::batch_norm<B>::cache norm0;
    typename layers::max_pool<B>::cache pool0;
    std::vector<typename layers::dense_block<B>::cache> blocks;
    std::vector<typename layers::transition<B>::cache> transitions;
    typename layers::batch_norm<B>::cache norm5;
    typename layers::global_avg_pool<B>::cache gap;
    typename layers::linear<B>::cache classifier;
  };

  explicit densenet(const options& o = {})
      : opt_(o),
        conv0_({.in_channels = o.in_channels, .out_channels = Config::init_features, .kernel = 7, .stride = 2, .padding = 3}),
        norm0_({.channels = Config::init_features, .relu = true}),
        pool0_({.kernel = 3, .stride = 2, .padding = 1}),
        norm5_({.channels = final_channels()}),
        gap_({.relu = true}),
        classifier_({.in_features = final_channels(), .out_features = o.num_classes}) {
    MAMMOCL_CHECK(o.in_channels > 0 && o.num_classes > 0, config_error, "densenet: in_channels (", o.in_channels,
                  ") and num_classes (", o.num_classes, ") must be positive");
    index_t c = Config::init_features;
    for (std::size_t b = 0; b < Config::blocks.size(); ++b) {
      blocks_.emplace_back(typename layers::dense_block<B>::options{Config::blocks[b], c, Config::growth_rate,
                                                                    Config::bn_size, o.memory_efficient});
      c += Config::blocks[b] * Config::growth_rate;
      if (b + 1 < Config::blocks.size()) {
        const auto out = static_cast<index_t>(static_cast<double>(c) * Config::compression);
        transitions_.emplace_back(typename layers::transition<B>::options{c, out});
        c = out;
      }
    }
  }

  /// Channels of the feature map after norm5 (1024 for DenseNet-121).
  static constexpr index_t final_channels() {
    index_t c = Config::init_features;
    for (std::size_t b = 0; b < Config::blocks.size(); ++b) {
      c += Config::blocks[b] * Config::growth_rate;
      if (b + 1 < Config::blocks.size()) c = static_cast<index_t>(static_cast<double>(c) * Config::compression);
    }
    return c;
  }

  /// torchvision's initialisation, from a seed: conv kaiming-normal, BN γ=1 β=0, linear U(±1/√in), bias 0.
  void init(std::uint64_t seed) {
    rng r(seed);
    conv0_.init(r);
    norm0_.reset();
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      blocks_[b].init(r);
      if (b < transitions_.size()) transitions_[b].init(r);
    }
    classifier_.init(r);
  }

  /// Training forward to the logits. x (N,Cin,H,W) → (N,classes)
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    return classifier_.forward(ctx, forward_features(ctx, x, c), c.classifier);
  }
  /// Training forward to the pooled features ReLU(norm5) → GAP. x (N,Cin,H,W) → (N,F)
  [[nodiscard]] tensor_t forward_features(typename B::context& ctx, const tensor_t& x, cache& c) {
    return gap_.forward(ctx, forward_feature_map(ctx, x, c), c.gap);
  }
  /// Training forward to the norm5 feature map, before the final ReLU (the input of a whole-image head).
  /// x (N,Cin,H,W) → (N,F,h,w). Pair it with `backward_feature_map`; `c.gap` and `c.classifier` stay empty.
  [[nodiscard]] tensor_t forward_feature_map(typename B::context& ctx, const tensor_t& x, cache& c) {
    check_input(x.dims());
    tensor_t z = conv0_.forward(ctx, x, c.conv0);
    tensor_t a = norm0_.forward(ctx, z, c.norm0);
    tensor_t h = pool0_.forward(ctx, a, c.pool0);
    c.blocks.resize(blocks_.size());
    c.transitions.resize(transitions_.size());
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      h = blocks_[b].forward(ctx, h, c.blocks[b]);
      if (b < transitions_.size()) h = transitions_[b].forward(ctx, h, c.transitions[b]);
    }
    return norm5_.forward(ctx, h, c.norm5);
  }
  /// Backward from the gradient of the norm5 map (N,F,h,w) of `forward_feature_map` through the encoder;
  /// parameter gradients per `mode`, the cache released as it goes.
  void backward_feature_map(typename B::context& ctx, cache& c, const tensor_t& dmap, grad_mode mode) {
    tensor_t g = norm5_.backward(ctx, c.norm5, dmap, mode);
    c.norm5 = {};
    for (std::size_t b = blocks_.size(); b-- > 0;) {
      if (b < transitions_.size()) {
        g = transitions_[b].backward(ctx, c.transitions[b], g, mode);
        c.transitions[b] = {};
      }
      g = blocks_[b].backward(ctx, c.blocks[b], g, mode);
      c.blocks[b] = {};
    }
    g = pool0_.backward(ctx, c.pool0, g, mode);
    c.pool0 = {};
    g = norm0_.backward(ctx, c.norm0, g, mode);
    c.norm0 = {};
    conv0_.backward_params(ctx, c.conv0.x, g, mode);
    c.conv0 = {};
  }
  /// Inference (running BN statistics). x (N,Cin,H,W) → logits (N,classes)
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    return classifier_.infer(ctx, infer_features(ctx, x));
  }
  /// Inference to the pooled features. x (N,Cin,H,W) → (N,F)
  [[nodiscard]] tensor_t infer_features(typename B::context& ctx, const tensor_t& x) const {
    return gap_.infer(ctx, infer_feature_map(ctx, x));
  }
  /// Inference to the norm5 feature map (before the final ReLU), e.g. for a whole-image head. → (N,F,h,w)
  [[nodiscard]] tensor_t infer_feature_map(typename B::context& ctx, const tensor_t& x) const {
    check_input(x.dims());
    tensor_t h = pool0_.infer(ctx, norm0_.infer(ctx, conv0_.infer(ctx, x)));
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      h = blocks_[b].infer(ctx, h);
      if (b < transitions_.size()) h = transitions_[b].infer(ctx, h);
    }
    return norm5_.infer(ctx, h);
  }

  /// Backward from the logits' gradient; parameter gradients per `mode`. The input gradient is not
  /// computed (nothing upstream of a model's input is trainable).
  void backward(typename B::context& ctx, cache& c, const tensor_t& dlogits, grad_mode mode) {
    backward_features(ctx, c, classifier_.backward(ctx, c.classifier, dlogits, mode), mode);
  }
  /// Backward from the pooled features' gradient (N,F) through the encoder only (the classifier untouched).
  void backward_features(typename B::context& ctx, cache& c, const tensor_t& dfeat, grad_mode mode) {
    backward_feature_map(ctx, c, gap_.backward(ctx, c.gap, dfeat, mode), mode);
  }

  /// Every trainable parameter with its torchvision state_dict name.
  template <class F>
  void for_each_parameter(F&& f) {
    conv0_.for_each_parameter("features.conv0.", f);
    norm0_.for_each_parameter("features.norm0.", f);
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      blocks_[b].for_each_parameter("features.denseblock" + std::to_string(b + 1) + ".", f);
      if (b < transitions_.size()) transitions_[b].for_each_parameter("features.transition" + std::to_string(b + 1) + ".", f);
    }
    norm5_.for_each_parameter("features.norm5.", f);  // torchvision calls it norm5 whatever the block count
    classifier_.for_each_parameter("classifier.", f);
  }
  /// Every buffer (BN running statistics and num_batches_tracked) with its torchvision name.
  template <class F>
  void for_each_buffer(F&& f) {
    norm0_.for_each_buffer("features.norm0.", f);
    for (std::size_t b = 0; b < blocks_.size(); ++b) {
      blocks_[b].for_each_buffer("features.denseblock" + std::to_string(b + 1) + ".", f);
      if (b < transitions_.size()) transitions_[b].for_each_buffer("features.transition" + std::to_string(b + 1) + ".", f);
    }
    norm5_.for_each_buffer("features.norm5.", f);
  }
  /// Number of trainable parameters.
  [[nodiscard]] std::int64_t parameter_count() {
    std::int64_t n = 0;
    for_each_parameter([&](const std::string&, parameter<B>& p) { n += p.value.numel(); });
    return n;
  }

  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  [[nodiscard]] layers::linear<B>& classifier() noexcept { return classifier_; }
  [[nodiscard]] const layers::linear<B>& classifier() const noexcept { return classifier_; }

 private:
  void check_input(const shape& in) const {
    MAMMOCL_EXPECTS(in.rank() == 4 && in[1] == opt_.in_channels, "densenet: input must be (N,", opt_.in_channels,
                    ",H,W), got ", in);
    for (int axis = 2; axis <= 3; ++axis) {
      index_t e = (in[axis] + 6 - 7) / 2 + 1;  // conv0
      e = (e + 2 - 3) / 2 + 1;                 // pool0
      bool ok = in[axis] >= 7 && e >= 1;
      for (std::size_t t = 0; t < transitions_.size() && ok; ++t) {
        ok = e >= 2;
        e /= 2;
      }
      MAMMOCL_EXPECTS(ok, "densenet: input ", in, " is too small for this configuration (",
                      transitions_.size(), " transitions); DenseNet-121 needs at least 29x29 pixels");
    }
  }
  options opt_;
  layers::conv2d<B> conv0_;
  layers::batch_norm<B> norm0_;
  layers::max_pool<B> pool0_;
  std::vector<layers::dense_block<B>> blocks_;
  std::vector<layers::transition<B>> transitions_;
  layers::batch_norm<B> norm5_;
  layers::global_avg_pool<B> gap_;
  layers::linear<B> classifier_;
};

}  // namespace mammocl::models

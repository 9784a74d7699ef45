#pragma once
/// The whole-image classifier of Shen et al. (METHOD.md §3.2) on a DenseNet encoder:
///
///     x (N,Cin,H,W) → DenseNet features → ReLU(norm5) (N,F,h,w) → residual_bottleneck (d, e, stride s)
///       → global average pool (N,d·e) → linear (d·e → classes)
///
/// The encoder is the `features` part of a trained patch classifier (`densenet<B, Config>`), loaded from
/// its checkpoint with `load_encoder`; because it is fully convolutional it runs on full mammograms
/// (1152x896 gives a 36x28 map with DenseNet-121). State names: the encoder's torchvision names
/// ("features.…"), the unit under "top.0." and the head under "classifier.", so the whole model saves and
/// loads with io::save_state / io::load_state like any other.
///
/// `train::strategies::whole_image_two_stage<M>` is Shen's two-stage training: the new layers (top and
/// head) on the frozen encoder first, then everything at a lower learning rate.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>

#include "mammocl/core/concepts.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/layers/pooling.hpp"
#include "mammocl/layers/relu.hpp"
#include "mammocl/layers/residual_bottleneck.hpp"
#include "mammocl/models/densenet.hpp"
#include "mammocl/train/strategies.hpp"

namespace mammocl::models {

template <Backend B, DenseNetConfig Config>
class whole_image_classifier {
 public:
  using backend_type = B;
  using config = Config;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  using encoder_type = densenet<B, Config>;
  using top_type = layers::residual_bottleneck<B>;

  /// Run-time sizes. Defaults: METHOD.md §3.2's model for DenseNet-121 (one d = 512, e = 2, stride-2 unit
  /// with a projection shortcut and bias-free convolutions; cancer / no cancer).
  struct options {
    index_t in_channels = 3;        ///< as the patch classifier whose encoder is loaded
    index_t num_classes = 2;
    bool memory_efficient = false;  ///< the encoder's memory-efficient dense blocks (same results, less memory)
    index_t top_depth = 512;        ///< d
    index_t top_expansion = 2;      ///< e; the head sees d·e features
    index_t top_stride = 2;
    bool top_projection = true;
    bool top_bias = false;
  };
  struct cache {
    typename encoder_type::cache encoder;
    typename layers::relu<B>::cache relu;          // ReLU(norm5), the unit's input
    typename top_type::cache top;
    typename layers::global_avg_pool<B>::cache gap;
    typename layers::linear<B>::cache classifier;
  };

  explicit whole_image_classifier(const options& o = {})
      : opt_(checked(o)),
        // The encoder's own classifier is never used or visited; one output keeps it small.
        encoder_({.in_channels = o.in_channels, .num_classes = 1, .memory_efficient = o.memory_efficient}),
        top_({.in_channels = encoder_type::final_channels(), .depth = o.top_depth, .expansion = o.top_expansion,
              .stride = o.top_stride, .projection = o.top_projection, .bias = o.top_bias}),
        classifier_({.in_features = o.top_depth * o.top_expansion, .out_features = o.num_classes}) {}

  /// Fresh initialisation from a seed: the encoder as densenet::init, the unit's convolutions
  /// kaiming-normal with BN γ = 1, β = 0, the head U(±1/√in) with bias 0.
  void init(std::uint64_t seed) {
    encoder_.init(seed);
    rng r(seed ^ 0x7019C1A55ULL);
    top_.init(r);
    classifier_.init(r);
  }

  /// Loads the encoder from a patch classifier's checkpoint (`densenet<B, Config>` saved by io::save_state or
  /// the trainer's best.safetensors; its "classifier." is skipped). Every other key must be there with the
  /// encoder's shape; on any mismatch io_error names the key and the model is unchanged. The unit and the
  /// head keep their values.
  io::load_report load_encoder(const std::filesystem::path& patch_checkpoint) {
    const io::safetensors::file f = io::safetensors::file::read(patch_checkpoint);  // its own errors name the file
    try {
      return io::load_state(encoder_, f, {.exclude_prefixes = {"classifier."}});
    } catch (const io_error& e) {
      MAMMOCL_THROW(io_error, "whole_image_classifier: cannot load the encoder from the patch checkpoint (it must be "
                    "a DenseNet of the same configuration and input channels): ", e.message());
    }
  }

  /// Shape of the ReLU(norm5) map for an input shape, by DenseNet's size arithmetic (no computation):
  /// conv0 ⌊(H−1)/2⌋+1, pool0 ⌊(H−1)/2⌋+1, then one floor halving per transition.
  [[nodiscard]] static shape feature_map_shape(const shape& in) {
    MAMMOCL_EXPECTS(in.rank() == 4, "whole_image_classifier: input must be (N,C,H,W), got ", in);
    auto side = [](index_t e) {
      e = (e + 6 - 7) / 2 + 1;
      e = (e + 2 - 3) / 2 + 1;
      for (std::size_t t = 0; t + 1 < Config::blocks.size(); ++t) e /= 2;
      return e;
    };
    return shape{in[0], encoder_type::final_channels(), side(in[2]), side(in[3])};
  }
  /// Shape of the unit's output map for an input shape.
  [[nodiscard]] shape top_map_shape(const shape& in) const { return top_.output_shape(feature_map_shape(in)); }

  /// Training forward to the logits. x (N,Cin,H,W) → (N,classes)
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    return classifier_.forward(ctx, forward_features(ctx, x, c), c.classifier);
  }
  /// Training forward (encoder, unit and pooling) to the pooled features. x (N,Cin,H,W) → (N,d·e)
  [[nodiscard]] tensor_t forward_features(typename B::context& ctx, const tensor_t& x, cache& c) {
    return forward_head_features(ctx, encoder_.forward_feature_map(ctx, x, c.encoder), c);
  }
  /// Training forward of the new layers only, from a norm5 map (N,F,h,w) computed elsewhere (e.g. by the
  /// frozen encoder's infer_feature_map) to the pooled features (N,d·e).
  [[nodiscard]] tensor_t forward_head_features(typename B::context& ctx, const tensor_t& map, cache& c) {
    const tensor_t a = relu_.forward(ctx, map, c.relu);
    return gap_.forward(ctx, top_.forward(ctx, a, c.top), c.gap);
  }

  /// Backward from the logits' gradient; parameter gradients per `mode` (the input gradient is not computed).
  void backward(typename B::context& ctx, cache& c, const tensor_t& dlogits, grad_mode mode) {
    backward_features(ctx, c, classifier_.backward(ctx, c.classifier, dlogits, mode), mode);
  }
  /// Backward from the pooled features' gradient (N,d·e) through the unit and the encoder (head untouched).
  void backward_features(typename B::context& ctx, cache& c, const tensor_t& dfeat, grad_mode mode) {
    encoder_.backward_feature_map(ctx, c.encoder, backward_head_features(ctx, c, dfeat, mode), mode);
  }
  /// Backward through the pooling, the unit and the ReLU only; returns the gradient of the norm5 map.
  tensor_t backward_head_features(typename B::context& ctx, cache& c, const tensor_t& dfeat, grad_mode mode) {
    tensor_t g = gap_.backward(ctx, c.gap, dfeat, mode);
    c.gap = {};
    g = top_.backward(ctx, c.top, g, mode);
    c.top = {};
    g = relu_.backward(ctx, c.relu, g, mode);
    c.relu = {};
    return g;
  }

  /// Inference (running BN statistics). x (N,Cin,H,W) → logits (N,classes)
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    return classifier_.infer(ctx, infer_features(ctx, x));
  }
  /// Inference to the pooled features (N,d·e).
  [[nodiscard]] tensor_t infer_features(typename B::context& ctx, const tensor_t& x) const {
    return gap_.infer(ctx, infer_top_map(ctx, x));
  }
  /// Inference to the unit's output map (N,d·e,h',w') (after its final ReLU), e.g. for a class activation map.
  [[nodiscard]] tensor_t infer_top_map(typename B::context& ctx, const tensor_t& x) const {
    return top_.infer(ctx, relu_.infer(ctx, encoder_.infer_feature_map(ctx, x)));
  }

  /// Every trainable parameter: the encoder's torchvision names ("features.…"), then "top.0.…", then
  /// "classifier.weight" and "classifier.bias".
  template <class F>
  void for_each_parameter(F&& f) {
    encoder_.for_each_parameter([&](const std::string& name, parameter<B>& p) {
      if (!is_encoder_head(name)) f(name, p);
    });
    top_.for_each_parameter("top.0.", f);
    classifier_.for_each_parameter("classifier.", f);
  }
  /// Every buffer (BN running statistics and counters) of the encoder and the unit.
  template <class F>
  void for_each_buffer(F&& f) {
    encoder_.for_each_buffer(f);
    top_.for_each_buffer("top.0.", f);
  }
  /// Number of trainable parameters.
  [[nodiscard]] std::int64_t parameter_count() {
    std::int64_t n = 0;
    for_each_parameter([&](const std::string&, parameter<B>& p) { n += p.value.numel(); });
    return n;
  }
  /// True for the names of the layers added on top of the patch network ("top." and "classifier."):
  /// what stage 1 of the two-stage training trains.
  [[nodiscard]] static bool is_new_layer(std::string_view name) noexcept {
    return name.starts_with("top.") || name.starts_with("classifier.");
  }

  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  [[nodiscard]] encoder_type& encoder() noexcept { return encoder_; }
  [[nodiscard]] const encoder_type& encoder() const noexcept { return encoder_; }
  [[nodiscard]] top_type& top() noexcept { return top_; }
  [[nodiscard]] layers::linear<B>& classifier() noexcept { return classifier_; }
  [[nodiscard]] const layers::linear<B>& classifier() const noexcept { return classifier_; }

 private:
  static bool is_encoder_head(const std::string& name) { return name.starts_with("classifier."); }
  static const options& checked(const options& o) {
    MAMMOCL_CHECK(o.num_classes > 0, config_error, "whole_image_classifier: num_classes (", o.num_classes,
                  ") must be positive");
    return o;
  }

  options opt_;
  encoder_type encoder_;
  layers::relu<B> relu_;
  top_type top_;
  layers::global_avg_pool<B> gap_;
  layers::linear<B> classifier_;
};

}  // namespace mammocl::models

namespace mammocl::train {

/// A classifier model with a separable encoder and new layers, as whole_image_two_stage needs it.
template <class M>
concept WholeImageModel =
    ClassifierModel<M> &&
    requires(M& m, typename M::backend_type::context& ctx, const tensor<typename M::backend_type>& x,
             typename M::cache& c, std::string_view name) {
      { m.encoder().infer_feature_map(ctx, x) } -> std::same_as<tensor<typename M::backend_type>>;
      { m.forward_head_features(ctx, x, c) } -> std::same_as<tensor<typename M::backend_type>>;
      m.backward_head_features(ctx, c, x, grad_mode::overwrite);
      { M::is_new_layer(name) } -> std::convertible_to<bool>;
    };

namespace strategies {

/// Shen et al.'s two-stage training of the whole-image model (`dm_keras_ext.py::do_2stage_training`,
/// METHOD.md §3.2), with cross-entropy:
///  - stage 1 ("new_layers"): `stage1` options; only the new layers (top unit and head) train, on features of
///    the frozen encoder in inference mode, so its weights and running statistics do not change at all;
///  - stage 2 ("all_layers"): everything trains end to end with `stage2`'s epochs, optimizer, schedule and
///    weight decay (Shen's weight_decay2), at learning rate stage1.lr × all_layer_multiplier (Shen's
///    init_lr·all_layer_multiplier; `stage2.lr` is not used).
/// Both stages are validated.
template <WholeImageModel M>
class whole_image_two_stage : public detail::strategy_core<M> {
  using core = detail::strategy_core<M>;

 public:
  using typename core::B;
  using typename core::backend_type;
  using tensor_t = tensor<B>;
  static constexpr std::string_view name = "whole_image_two_stage";

  /// `all_layer_multiplier`: 0.1 in Shen's train_image_clf_im1152.sh.
  whole_image_two_stage(M& model, const strategy_options& o, double all_layer_multiplier = 0.1)
      : core(model, o), stage2_(o.stage2) {
    MAMMOCL_CHECK(std::isfinite(all_layer_multiplier) && all_layer_multiplier > 0, config_error,
                  "whole_image_two_stage: all_layer_multiplier ", all_layer_multiplier, " must be a finite number > 0");
    stage2_.lr = o.stage1.lr * all_layer_multiplier;
  }
  [[nodiscard]] int num_stages() const noexcept { return 2; }
  [[nodiscard]] stage_info stage(int s) const {
    if (s == 0) return {"new_layers", this->opt_.stage1.epochs, 1, true};
    return {"all_layers", stage2_.epochs, 1, true};
  }
  [[nodiscard]] const stage_options& stage_opts(int s) const noexcept { return s == 0 ? this->opt_.stage1 : stage2_; }
  void begin_stage(int s) {
    auto params = this->model_parameters();
    if (s == 0) {
      std::vector<optim::named_parameter<B>> fresh;
      for (auto& p : params)
        if (M::is_new_layer(p.name)) fresh.push_back(std::move(p));
      params = std::move(fresh);
    }
    this->make_optimizer(std::move(params), stage_opts(s));
  }
  step_result train_step(typename B::context& ctx, const data::batch& b, const step_context& sc) {
    if (sc.stage != 0) return this->ce_step(ctx, b, sc, [](auto&&...) {});
    MAMMOCL_EXPECTS(b.views == 1, "whole_image_two_stage: a batch holds one view per sample, got ", b.views);
    M& m = this->model_;
    const tensor_t map = m.encoder().infer_feature_map(ctx, detail::to_tensor<B>(b));
    typename M::cache c;
    const tensor_t feat = m.forward_head_features(ctx, map, c);
    typename layers::linear<B>::cache lc;
    const tensor_t logits = m.classifier().forward(ctx, feat, lc);
    tensor_t dlogits;
    step_result r;
    r.class_loss = r.loss = this->ce_.template value_and_gradient<B>(ctx, logits, b.labels, &dlogits);
    r.correct = detail::count_correct(logits, b.labels);
    r.counted = b.samples;
    (void)m.backward_head_features(ctx, c, m.classifier().backward(ctx, lc, dlogits, grad_mode::overwrite),
                                   grad_mode::overwrite);
    this->update(ctx, sc);
    return r;
  }
  [[nodiscard]] double all_layer_multiplier() const noexcept { return stage2_.lr / this->opt_.stage1.lr; }
  template <class F> void for_each_parameter(F&& f) { this->model_.for_each_parameter(f); }
  template <class F> void for_each_buffer(F&& f) {
    this->model_.for_each_buffer(f);
    this->visit_optimizer(f);
  }

 private:
  stage_options stage2_;
};

}  // namespace strategies
}  // namespace mammocl::train

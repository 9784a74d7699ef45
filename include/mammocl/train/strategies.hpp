#pragma once
/// Training strategies (METHOD.md §5.1, DESIGN.md §4): policy classes that own the order of the training
/// stages, which parameters each stage trains and with what loss. The maths lives in losses/ and
/// layers/; the loop, checkpoints and validation live in train/trainer.hpp.
///
/// | policy                         | stage 1                                    | stage 2                               |
/// |--------------------------------|--------------------------------------------|---------------------------------------|
/// | `strategies::ce<M>`            | encoder + linear head, CE                  | —                                     |
/// | `strategies::supcon_linear<M>` | encoder + MLP projector, SupCon, 2 views   | new head on frozen eval-mode features |
/// | `strategies::supcon_finetune<M>` | as supcon_linear                         | new head, everything fine-tuned, CE   |
/// | `strategies::dann<M>`          | CE + domain classifier behind a gradient reversal (λ_p schedule) | —               |
/// | `strategies::mmd<M>`           | CE + λ_mmd · (class-conditional) MMD² between the domains' features | —            |
///
/// `M` is a classifier model (`ClassifierModel`: DenseNet and anything shaped like it: an encoder to
/// pooled features, and a `layers::linear` head reached by `classifier()`). Each policy is chosen at compile
/// time; `with_strategy(name, f)` picks one from its name at run time (the examples' `--strategy`).
///
/// A strategy is also a state-dict module: `for_each_parameter` / `for_each_buffer` visit the model under
/// its own (torchvision) names, the projector under "projector.", the domain classifier under
/// "domain_classifier." and the current stage's optimizer state under "optimizer.", which is what the
/// trainer's resume checkpoint holds.
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/core/tensor.hpp"
#include "mammocl/data/batch.hpp"
#include "mammocl/layers/gradient_reversal.hpp"
#include "mammocl/layers/host_bridge.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/layers/mlp_projector.hpp"
#include "mammocl/losses/cross_entropy.hpp"
#include "mammocl/losses/domain_adversarial.hpp"
#include "mammocl/losses/mmd.hpp"
#include "mammocl/losses/supcon.hpp"
#include "mammocl/optim/adam.hpp"
#include "mammocl/optim/lr_schedule.hpp"
#include "mammocl/optim/optimizer.hpp"
#include "mammocl/optim/sgd.hpp"

namespace mammocl::train {

/// A model the strategies can train: an encoder to pooled features (N,F) and a linear head.
template <class M>
concept ClassifierModel =
    Backend<typename M::backend_type> &&
    requires(M& m, const M& cm, typename M::backend_type::context& ctx, const tensor<typename M::backend_type>& x,
             typename M::cache& c) {
      { m.forward_features(ctx, x, c) } -> std::same_as<tensor<typename M::backend_type>>;
      m.backward_features(ctx, c, x, grad_mode::overwrite);
      { cm.infer(ctx, x) } -> std::same_as<tensor<typename M::backend_type>>;
      { cm.infer_features(ctx, x) } -> std::same_as<tensor<typename M::backend_type>>;
      { m.classifier() } -> std::same_as<layers::linear<typename M::backend_type>&>;
    };

enum class optimizer_kind { sgd, adam, adamw };
enum class schedule_kind { constant, cosine, multistep };

/// How one stage trains: epochs, optimizer and learning-rate schedule.
struct stage_options {
  int epochs = 10;
  optimizer_kind optimizer = optimizer_kind::sgd;
  double lr = 0.05;
  double momentum = 0.9;        ///< SGD only
  bool nesterov = false;        ///< SGD only
  double weight_decay = 1e-4;
  schedule_kind schedule = schedule_kind::cosine;
  double eta_min_factor = 1e-3;     ///< cosine: the floor is lr·factor (HobbitLong: rate³ = 0.1³)
  std::vector<int> milestones{};    ///< multistep: epochs (0-based) at whose start lr is multiplied by gamma
  double gamma = 0.1;               ///< multistep factor
};

/// Everything a strategy can be configured with; each policy reads the fields it needs.
struct strategy_options {
  int num_classes = 5;
  stage_options stage1{};     ///< the only stage of ce, dann and mmd; SupCon pre-training otherwise
  /// Stage 2 of supcon_linear (default: METHOD.md §5.3's linear probe, SGD 0.1, no weight decay) and of
  /// supcon_finetune (set it to Adam 1e-4 there: `finetune_defaults()`).
  stage_options stage2{.epochs = 10, .lr = 0.1, .weight_decay = 0.0};
  // SupCon (METHOD.md §3.3, §4.2)
  double temperature = 0.1;
  double base_temperature = 0.1;
  index_t projector_hidden = 0;     ///< 0: the feature width (the reference's MLP head)
  index_t projector_out = 128;
  bool projector_batch_norm = false;
  // DANN (METHOD.md §4.3(a))
  double dann_gamma = 10.0;         ///< λ_p = 2/(1+exp(−γ p)) − 1
  index_t dann_hidden = 1024;
  // MMD (METHOD.md §4.3(b))
  double mmd_weight = 1.0;          ///< λ_mmd
  bool mmd_class_conditional = true;
  std::uint64_t seed = 1;           ///< initialisation of the heads each strategy adds
};

/// METHOD.md §5.3's fine-tuning default for stage 2 of supcon_finetune: Adam 1e-4, cosine.
[[nodiscard]] inline stage_options finetune_defaults(int epochs = 10) {
  return {.epochs = epochs, .optimizer = optimizer_kind::adam, .lr = 1e-4, .weight_decay = 1e-4};
}

/// The learning rate at step t (0-based, within the stage) of a stage with `steps_per_epoch` steps per epoch.
[[nodiscard]] inline double stage_lr(const stage_options& s, std::int64_t t, std::int64_t steps_per_epoch) {
  switch (s.schedule) {
    case schedule_kind::constant: return s.lr;
    case schedule_kind::cosine:
      return optim::cosine_annealing_lr(s.lr, std::max<std::int64_t>(1, steps_per_epoch * s.epochs),
                                        s.lr * s.eta_min_factor)(t);
    case schedule_kind::multistep: {
      const std::int64_t epoch = t / std::max<std::int64_t>(1, steps_per_epoch);
      double lr = s.lr;
      for (int m : s.milestones)
        if (epoch >= m) lr *= s.gamma;
      return lr;
    }
  }
  return s.lr;
}

/// SGD, Adam or AdamW behind one type, chosen by `stage_options::optimizer`.
template <Backend B>
class any_optimizer {
 public:
  any_optimizer(std::vector<optim::named_parameter<B>> params, const stage_options& s) : impl_(make(std::move(params), s)) {}
  void step(typename B::context& ctx) {
    std::visit([&](auto& o) { o.step(ctx); }, impl_);
  }
  void set_lr(double lr) {
    std::visit([&](auto& o) { o.set_lr(lr); }, impl_);
  }
  template <class F>
  void for_each_state(F&& f) {
    std::visit([&](auto& o) { o.for_each_state(f); }, impl_);
  }

 private:
  using variant_t = std::variant<optim::sgd<B>, optim::adam<B>, optim::adamw<B>>;
  static variant_t make(std::vector<optim::named_parameter<B>> p, const stage_options& s) {
    MAMMOCL_CHECK(s.epochs >= 1, config_error, "stage_options: epochs must be >= 1, got ", s.epochs);
    switch (s.optimizer) {
      case optimizer_kind::sgd:
        return optim::sgd<B>(std::move(p), {.lr = s.lr, .momentum = s.momentum, .weight_decay = s.weight_decay,
                                            .nesterov = s.nesterov});
      case optimizer_kind::adam:
        return variant_t(std::in_place_type<optim::adam<B>>, std::move(p),
                         typename optim::adam<B>::options{.lr = s.lr, .weight_decay = s.weight_decay});
      case optimizer_kind::adamw:
        return variant_t(std::in_place_type<optim::adamw<B>>, std::move(p),
                         typename optim::adamw<B>::options{.lr = s.lr, .weight_decay = s.weight_decay});
    }
    MAMMOCL_THROW(config_error, "stage_options: unknown optimizer kind");
  }
  variant_t impl_;
};

/// What the trainer tells a step.
struct step_context {
  int stage = 0, epoch = 0;
  std::int64_t step = 0;            ///< within the epoch
  std::int64_t stage_step = 0;      ///< within the stage
  std::int64_t stage_steps = 1;     ///< steps in the whole stage
  double lr = 0;                    ///< learning rate for this step
  [[nodiscard]] double progress() const noexcept {
    return stage_steps > 1 ? static_cast<double>(stage_step) / static_cast<double>(stage_steps - 1) : 1.0;
  }
};

/// What a step reports.
struct step_result {
  double loss = 0;                 ///< the total loss minimised
  std::int64_t correct = 0;        ///< correctly classified samples (0 when the stage has no classifier output)
  std::int64_t counted = 0;        ///< samples that entered `correct`
  double class_loss = 0;           ///< the cross-entropy part (0 for SupCon)
  double domain_loss = 0;          ///< DANN domain BCE or λ_mmd·MMD² (0 otherwise)
};

/// One stage as the trainer sees it.
struct stage_info {
  std::string name;
  int epochs = 1;
  int views = 1;          ///< images per sample in a batch (2 for SupCon)
  bool validate = true;   ///< the stage ends in a classifier whose validation AUC selects the best model
};

namespace detail {

template <Backend B>
tensor<B> to_tensor(const data::batch& b) {
  b.validate();
  tensor<B> x(b.image_shape());
  if constexpr (std::is_same_v<typename B::scalar_type, float>) {
    B::from_host(b.images.data(), x);
  } else {
    std::vector<typename B::scalar_type> v(b.images.begin(), b.images.end());
    B::from_host(v.data(), x);
  }
  return x;
}

inline bool has_prefix(const std::string& s, std::string_view p) { return s.compare(0, p.size(), p) == 0; }

template <class B>
std::vector<optim::named_parameter<B>> filter(std::vector<optim::named_parameter<B>> all, std::string_view prefix,
                                              bool keep) {
  std::vector<optim::named_parameter<B>> out;
  for (auto& p : all)
    if (has_prefix(p.name, prefix) == keep) out.push_back(std::move(p));
  return out;
}

/// Samples whose largest logit is their label's (the (N,K) logits copied to the host on a device backend).
template <class B>
std::int64_t count_correct(const tensor<B>& logits_in, std::span<const int> labels) {
  const auto logits = host_bridge::on_host(logits_in);
  std::int64_t correct = 0;
  for (index_t i = 0; i < logits.n(); ++i) {
    index_t best = 0;
    for (index_t j = 1; j < logits.c(); ++j)
      if (logits.at(i, j) > logits.at(i, best)) best = j;
    correct += best == labels[static_cast<std::size_t>(i)];
  }
  return correct;
}

/// What every policy shares: the model, the options, the current stage's optimizer and the CE step.
template <ClassifierModel M>
class strategy_core {
 public:
  using backend_type = typename M::backend_type;
  using B = backend_type;
  using tensor_t = tensor<B>;

  strategy_core(M& model, const strategy_options& o) : model_(model), opt_(o) {
    MAMMOCL_CHECK(o.num_classes >= 2, config_error, "strategy: num_classes must be >= 2, got ", o.num_classes);
    MAMMOCL_CHECK(model.classifier().opts().out_features == o.num_classes, config_error, "strategy: the model's head has ",
                  model.classifier().opts().out_features, " outputs but strategy_options::num_classes is ", o.num_classes);
  }

  [[nodiscard]] M& model() noexcept { return model_; }
  [[nodiscard]] const strategy_options& options() const noexcept { return opt_; }
  [[nodiscard]] index_t feature_dim() const { return model_.classifier().opts().in_features; }

  /// Logits in inference mode (running BN statistics), for validation and prediction.
  [[nodiscard]] tensor_t predict(typename B::context& ctx, const tensor_t& x) const { return model_.infer(ctx, x); }
  /// Pooled features in inference mode.
  [[nodiscard]] tensor_t features(typename B::context& ctx, const tensor_t& x) const {
    return model_.infer_features(ctx, x);
  }

 protected:
  void reinit_head(int stage) {
    rng r(opt_.seed * 0x9E3779B97F4A7C15ULL + 0xC1A55 + static_cast<std::uint64_t>(stage));
    model_.classifier().init(r);
  }
  std::vector<optim::named_parameter<B>> model_parameters() { return optim::collect_parameters<B>(model_); }

  /// CE on the head over features computed in training mode; `extra(feat, dfeat, result)` may add a
  /// domain term to dfeat before the encoder's backward. Then one optimizer step.
  template <class Extra>
  step_result ce_step(typename B::context& ctx, const data::batch& b, const step_context& sc, Extra&& extra) {
    MAMMOCL_EXPECTS(b.views == 1, "strategy: a cross-entropy stage takes one view per sample, the batch has ",
                    b.views);
    const tensor_t x = to_tensor<B>(b);
    typename M::cache c;
    const tensor_t feat = model_.forward_features(ctx, x, c);
    typename layers::linear<B>::cache lc;
    const tensor_t logits = model_.classifier().forward(ctx, feat, lc);
    tensor_t dlogits;
    step_result r;
    r.class_loss = ce_.value_and_gradient<B>(ctx, logits, b.labels, &dlogits);
    r.correct = count_correct(logits, b.labels);
    r.counted = b.samples;
    tensor_t dfeat = model_.classifier().backward(ctx, lc, dlogits, grad_mode::overwrite);
    extra(ctx, feat, dfeat, r);
    r.loss = r.class_loss + r.domain_loss;
    model_.backward_features(ctx, c, dfeat, grad_mode::overwrite);
    update(ctx, sc);
    return r;
  }

  /// Stage 1 of the SupCon strategies: encoder + projector on a two-view batch (BN over both views).
  step_result supcon_step(typename B::context& ctx, const data::batch& b, const step_context& sc,
                          layers::mlp_projector<B>& projector) {
    MAMMOCL_EXPECTS(b.views == 2, "strategy: the SupCon stage needs 2 views per sample, the batch has ", b.views);
    const tensor_t x = to_tensor<B>(b);
    typename M::cache c;
    const tensor_t feat = model_.forward_features(ctx, x, c);  // (2B, F), view-major
    typename layers::mlp_projector<B>::cache pc;
    const tensor_t proj = projector.forward(ctx, feat, pc);   // (2B, D)
    const index_t nb = b.samples, d = proj.c();
    // proj's rows are view-major (row v·B+s); SupCon takes (B, 2, D). Each view moves as one strided copy
    // in the backend's memory (views of the same buffers, B rows of D values).
    auto rows_of_view = [&](const tensor_t& t, index_t v) {
      return tensor_t::strided_view(t.item(v * nb), shape{nb, d}, t.batch_stride());
    };
    auto view_of_z = [&](const tensor_t& t, index_t v) {
      return tensor_t::strided_view(t.data() + v * d, shape{nb, d}, 2 * d);
    };
    tensor_t z(shape{nb, 2, d}), dz;
    for (index_t v = 0; v < 2; ++v) B::copy(rows_of_view(proj, v), view_of_z(z, v));
    const losses::supcon loss({.temperature = opt_.temperature, .base_temperature = opt_.base_temperature,
                               .normalize = true, .num_classes = opt_.num_classes});
    step_result r;
    r.loss = loss.value_and_gradient<B>(ctx, z, b.labels, &dz);
    tensor_t dproj(proj.dims());
    for (index_t v = 0; v < 2; ++v) B::copy(view_of_z(dz, v), rows_of_view(dproj, v));
    const tensor_t dfeat = projector.backward(ctx, pc, dproj, grad_mode::overwrite);
    model_.backward_features(ctx, c, dfeat, grad_mode::overwrite);
    update(ctx, sc);
    return r;
  }

  /// Stage 2 of supcon_linear: features of the frozen encoder in eval mode, no encoder gradient.
  step_result linear_probe_step(typename B::context& ctx, const data::batch& b, const step_context& sc) {
    MAMMOCL_EXPECTS(b.views == 1, "strategy: the linear stage takes one view per sample, the batch has ", b.views);
    const tensor_t feat = model_.infer_features(ctx, to_tensor<B>(b));
    typename layers::linear<B>::cache lc;
    const tensor_t logits = model_.classifier().forward(ctx, feat, lc);
    tensor_t dlogits;
    step_result r;
    r.class_loss = r.loss = ce_.value_and_gradient<B>(ctx, logits, b.labels, &dlogits);
    r.correct = count_correct(logits, b.labels);
    r.counted = b.samples;
    (void)model_.classifier().backward(ctx, lc, dlogits, grad_mode::overwrite);
    update(ctx, sc);
    return r;
  }

  /// Builds the stage's optimizer over `params` (kept for the gradient check).
  void make_optimizer(std::vector<optim::named_parameter<B>> params, const stage_options& so) {
    trained_ = params;
    optimizer_.emplace(std::move(params), so);
  }

  /// The update: refuses non-finite gradients (the weights stay as they were), then one optimizer step.
  void update(typename B::context& ctx, const step_context& sc) {
    for (const auto& np : trained_)
      MAMMOCL_CHECK(B::all_finite(ctx, np.p->grad), numeric_error, "the gradient of '", np.name,
                    "' holds NaN or Inf (a non-finite input, loss or activation); the weights were not updated");
    optimizer_->set_lr(sc.lr);
    optimizer_->step(ctx);
  }

  template <class F>
  void visit_optimizer(F&& f) {
    if (optimizer_)
      optimizer_->for_each_state([&]<class V>(const std::string& name, V& v) { f("optimizer." + name, v); });
  }

  M& model_;
  strategy_options opt_;
  std::optional<any_optimizer<B>> optimizer_;
  std::vector<optim::named_parameter<B>> trained_;
  losses::cross_entropy ce_;
};

}  // namespace detail

namespace strategies {

/// CE: encoder + linear head trained end to end with cross-entropy.
template <ClassifierModel M>
class ce : public detail::strategy_core<M> {
  using core = detail::strategy_core<M>;

 public:
  using typename core::B;
  using typename core::backend_type;
  static constexpr std::string_view name = "ce";

  ce(M& model, const strategy_options& o) : core(model, o) {}
  [[nodiscard]] int num_stages() const noexcept { return 1; }
  [[nodiscard]] stage_info stage(int) const { return {"ce", this->opt_.stage1.epochs, 1, true}; }
  [[nodiscard]] const stage_options& stage_opts(int) const noexcept { return this->opt_.stage1; }
  void begin_stage(int) { this->make_optimizer(this->model_parameters(), this->opt_.stage1); }
  step_result train_step(typename B::context& ctx, const data::batch& b, const step_context& sc) {
    return this->ce_step(ctx, b, sc, [](auto&&...) {});
  }
  template <class F> void for_each_parameter(F&& f) { this->model_.for_each_parameter(f); }
  template <class F> void for_each_buffer(F&& f) {
    this->model_.for_each_buffer(f);
    this->visit_optimizer(f);
  }
};

/// The SupCon strategies' shared stage 1 (encoder + projector, SupCon on two views).
template <ClassifierModel M, bool Finetune>
class supcon_two_stage : public detail::strategy_core<M> {
  using core = detail::strategy_core<M>;

 public:
  using typename core::B;
  using typename core::backend_type;
  static constexpr std::string_view name = Finetune ? "supcon_finetune" : "supcon_linear";

  supcon_two_stage(M& model, const strategy_options& o)
      : core(model, o),
        projector_({.in_features = this->feature_dim(), .hidden = o.projector_hidden, .out_features = o.projector_out,
                    .batch_norm = o.projector_batch_norm}) {
    rng r(o.seed * 0x9E3779B97F4A7C15ULL + 0x9A0);
    projector_.init(r);
    // Validate the SupCon options now rather than at the first step.
    (void)losses::supcon({.temperature = o.temperature, .base_temperature = o.base_temperature});
  }
  [[nodiscard]] int num_stages() const noexcept { return 2; }
  [[nodiscard]] stage_info stage(int s) const {
    if (s == 0) return {"supcon", this->opt_.stage1.epochs, 2, false};
    return {Finetune ? "finetune" : "linear", this->opt_.stage2.epochs, 1, true};
  }
  [[nodiscard]] const stage_options& stage_opts(int s) const noexcept {
    return s == 0 ? this->opt_.stage1 : this->opt_.stage2;
  }
  void begin_stage(int s) {
    if (s == 0) {
      auto params = detail::filter(this->model_parameters(), "classifier.", false);
      for (auto& p : optim::collect_parameters<B>(projector_, "projector.")) params.push_back(p);
      this->make_optimizer(std::move(params), this->opt_.stage1);
    } else {
      // The projector is dropped; a new head is trained on the SupCon encoder.
      this->reinit_head(s);
      auto params = Finetune ? this->model_parameters() : detail::filter(this->model_parameters(), "classifier.", true);
      this->make_optimizer(std::move(params), this->opt_.stage2);
    }
    stage_ = s;
  }
  step_result train_step(typename B::context& ctx, const data::batch& b, const step_context& sc) {
    if (sc.stage == 0) return this->supcon_step(ctx, b, sc, projector_);
    if constexpr (Finetune) return this->ce_step(ctx, b, sc, [](auto&&...) {});
    else return this->linear_probe_step(ctx, b, sc);
  }
  [[nodiscard]] layers::mlp_projector<B>& projector() noexcept { return projector_; }
  template <class F> void for_each_parameter(F&& f) {
    this->model_.for_each_parameter(f);
    projector_.for_each_parameter("projector.", f);
  }
  template <class F> void for_each_buffer(F&& f) {
    this->model_.for_each_buffer(f);
    projector_.for_each_buffer("projector.", f);
    this->visit_optimizer(f);
  }

 private:
  layers::mlp_projector<B> projector_;
  int stage_ = 0;
};

/// SupContr: SupCon pre-training, then a linear head on the frozen encoder (eval-mode BN, no gradient).
template <ClassifierModel M>
using supcon_linear = supcon_two_stage<M, false>;
/// SupContr+CE: SupCon pre-training, then the whole network fine-tuned with CE from a new head.
template <ClassifierModel M>
using supcon_finetune = supcon_two_stage<M, true>;

/// DANN: CE plus a domain classifier on the pooled features behind a gradient reversal whose λ follows
/// Ganin et al.'s schedule over the stage's progress.
template <ClassifierModel M>
class dann : public detail::strategy_core<M> {
  using core = detail::strategy_core<M>;

 public:
  using typename core::B;
  using typename core::backend_type;
  static constexpr std::string_view name = "dann";

  dann(M& model, const strategy_options& o)
      : core(model, o), domain_({.in_features = this->feature_dim(), .hidden = {o.dann_hidden, o.dann_hidden}}) {
    rng r(o.seed * 0x9E3779B97F4A7C15ULL + 0xDA77);
    domain_.init(r);
  }
  [[nodiscard]] int num_stages() const noexcept { return 1; }
  [[nodiscard]] stage_info stage(int) const { return {"dann", this->opt_.stage1.epochs, 1, true}; }
  [[nodiscard]] const stage_options& stage_opts(int) const noexcept { return this->opt_.stage1; }
  void begin_stage(int) {
    auto params = this->model_parameters();
    for (auto& p : optim::collect_parameters<B>(domain_, "domain_classifier.")) params.push_back(p);
    this->make_optimizer(std::move(params), this->opt_.stage1);
  }
  step_result train_step(typename B::context& ctx, const data::batch& b, const step_context& sc) {
    MAMMOCL_EXPECTS(b.domains.size() == static_cast<std::size_t>(b.samples), "dann: the batch has no domain labels");
    domain_.set_lambda(layers::dann_lambda(sc.progress(), this->opt_.dann_gamma));
    return this->ce_step(ctx, b, sc, [&](auto& c, const tensor<B>& feat, tensor<B>& dfeat, step_result& r) {
      auto res = domain_.forward_backward(c, feat, b.domains, grad_mode::overwrite);
      B::axpby(c, typename B::scalar_type(1), res.features_grad, typename B::scalar_type(1), dfeat);
      r.domain_loss = res.loss;
    });
  }
  [[nodiscard]] losses::domain_adversarial<B>& domain_classifier() noexcept { return domain_; }
  template <class F> void for_each_parameter(F&& f) {
    this->model_.for_each_parameter(f);
    domain_.for_each_parameter("domain_classifier.", f);
  }
  template <class F> void for_each_buffer(F&& f) {
    this->model_.for_each_buffer(f);
    this->visit_optimizer(f);
  }

 private:
  losses::domain_adversarial<B> domain_;
};

/// MMD: CE plus λ_mmd times the MMD² (class-conditional by default) between the pooled features of the
/// batch's domain-A and domain-B samples (Gaussian kernel, σ² by the median heuristic on the batch).
template <ClassifierModel M>
class mmd : public detail::strategy_core<M> {
  using core = detail::strategy_core<M>;

 public:
  using typename core::B;
  using typename core::backend_type;
  static constexpr std::string_view name = "mmd";

  mmd(M& model, const strategy_options& o) : core(model, o) {
    MAMMOCL_CHECK(std::isfinite(o.mmd_weight) && o.mmd_weight >= 0, config_error, "mmd strategy: mmd_weight ",
                  o.mmd_weight, " must be a finite number >= 0");
  }
  [[nodiscard]] int num_stages() const noexcept { return 1; }
  [[nodiscard]] stage_info stage(int) const { return {"mmd", this->opt_.stage1.epochs, 1, true}; }
  [[nodiscard]] const stage_options& stage_opts(int) const noexcept { return this->opt_.stage1; }
  void begin_stage(int) { this->make_optimizer(this->model_parameters(), this->opt_.stage1); }
  step_result train_step(typename B::context& ctx, const data::batch& b, const step_context& sc) {
    MAMMOCL_EXPECTS(b.domains.size() == static_cast<std::size_t>(b.samples), "mmd: the batch has no domain labels");
    return this->ce_step(ctx, b, sc, [&](auto& c, const tensor<B>& feat, tensor<B>& dfeat, step_result& r) {
      if constexpr (B::is_host) {
        add_mmd_term<B>(c, feat, dfeat, b, r);
      } else {
        // The (N,F) pooled features and their gradient make a host round trip (docs/device_generic.md).
        using H = host_bridge::host_twin_t<B>;
        typename H::context hctx = host_bridge::host_context<B>(c);
        tensor<H> hdfeat = to<H>(dfeat);
        add_mmd_term<H>(hctx, to<H>(feat), hdfeat, b, r);
        host_bridge::assign<B>(hdfeat, dfeat);
      }
    });
  }

 private:
  /// Adds λ_mmd·∂MMD²/∂feat to dfeat and the term to r, on host tensors (B itself on a host backend).
  template <Backend HB>
  void add_mmd_term(typename HB::context& c, const tensor<HB>& feat, tensor<HB>& dfeat, const data::batch& b,
                    step_result& r) const {
    std::vector<index_t> rows[2];
    std::vector<int> labels[2];
    for (index_t i = 0; i < feat.n(); ++i) {
      const int d = b.domains[static_cast<std::size_t>(i)];
      rows[d].push_back(i);
      labels[d].push_back(b.labels[static_cast<std::size_t>(i)]);
    }
    if (rows[0].size() < 2 || rows[1].size() < 2) return;  // one domain missing from the batch: no term
    const index_t f = feat.c();
    tensor<HB> x[2], g[2];
    for (int d = 0; d < 2; ++d) {
      x[d] = tensor<HB>(shape{static_cast<index_t>(rows[d].size()), f});
      for (std::size_t k = 0; k < rows[d].size(); ++k) std::copy_n(feat.item(rows[d][k]), f, x[d].item(static_cast<index_t>(k)));
    }
    const losses::mmd loss;
    double value = 0;
    if (this->opt_.mmd_class_conditional)
      value = loss.class_conditional<HB>(c, x[0], labels[0], x[1], labels[1], &g[0], &g[1]).value;
    else
      value = loss.value_and_gradient<HB>(c, x[0], x[1], &g[0], &g[1]).value;
    r.domain_loss = this->opt_.mmd_weight * value;
    using T = typename HB::scalar_type;
    for (int d = 0; d < 2; ++d)
      for (std::size_t k = 0; k < rows[d].size(); ++k) {
        T* dst = dfeat.item(rows[d][k]);
        const T* src = g[d].item(static_cast<index_t>(k));
        for (index_t j = 0; j < f; ++j) dst[j] += static_cast<T>(this->opt_.mmd_weight) * src[j];
      }
  }

 public:
  template <class F> void for_each_parameter(F&& f) { this->model_.for_each_parameter(f); }
  template <class F> void for_each_buffer(F&& f) {
    this->model_.for_each_buffer(f);
    this->visit_optimizer(f);
  }
};

}  // namespace strategies

/// The strategies' names, as `--strategy` accepts them.
inline constexpr std::array<std::string_view, 5> strategy_names{"ce", "supcon_linear", "supcon_finetune", "dann",
                                                                "mmd"};

/// Calls `f.template operator()<S>()` with S the policy named `name` for model M, and returns its result.
/// Throws config_error listing the valid names for any other name.
template <ClassifierModel M, class F>
decltype(auto) with_strategy(std::string_view name, F&& f) {
  if (name == "ce") return f.template operator()<strategies::ce<M>>();
  if (name == "supcon_linear") return f.template operator()<strategies::supcon_linear<M>>();
  if (name == "supcon_finetune") return f.template operator()<strategies::supcon_finetune<M>>();
  if (name == "dann") return f.template operator()<strategies::dann<M>>();
  if (name == "mmd") return f.template operator()<strategies::mmd<M>>();
  MAMMOCL_THROW(config_error, "unknown strategy '", name,
                "'; expected one of ce, supcon_linear, supcon_finetune, dann, mmd");
}

/// What the trainer needs from a strategy.
template <class S>
concept Strategy = requires(S& s, const S& cs, typename S::backend_type::context& ctx, const data::batch& b,
                            const step_context& sc, const tensor<typename S::backend_type>& x) {
  { S::name } -> std::convertible_to<std::string_view>;
  { cs.num_stages() } -> std::convertible_to<int>;
  { cs.stage(0) } -> std::same_as<stage_info>;
  { cs.stage_opts(0) } -> std::convertible_to<const stage_options&>;
  s.begin_stage(0);
  { s.train_step(ctx, b, sc) } -> std::same_as<step_result>;
  { cs.predict(ctx, x) } -> std::same_as<tensor<typename S::backend_type>>;
  s.model();
};

}  // namespace mammocl::train

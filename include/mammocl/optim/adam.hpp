#pragma once
/// `optim::adam<B>` (Adam with L2 weight decay, torch.optim.Adam) and `optim::adamw<B>` (decoupled weight
/// decay, torch.optim.AdamW). For each parameter p with gradient g, at step t = 1, 2, ...:
///
///     adam:  g = g + weight_decay·p            adamw:  p = p·(1 − lr·weight_decay)
///     m = beta1·m + (1 − beta1)·g
///     v = beta2·v + (1 − beta2)·g²
///     p = p − (lr / (1 − beta1^t)) · m / (sqrt(v) / sqrt(1 − beta2^t) + eps)
///
/// The update itself is the backend's fused `B::adam_step`; this class owns the options, the moment
/// estimates m ("exp_avg") and v ("exp_avg_sq") and the step count t, and exposes them for checkpoints.
#include <cmath>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/optim/optimizer.hpp"

namespace mammocl::optim {

/// Adam (`Decoupled == false`) or AdamW (`Decoupled == true`); use the aliases `adam<B>` and `adamw<B>`.
template <Backend B, bool Decoupled>
class basic_adam {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  /// "adam" or "adamw", as used in error messages.
  static constexpr const char* name = Decoupled ? "adamw" : "adam";
  static constexpr bool decoupled = Decoupled;

  /// torch.optim.Adam / AdamW defaults.
  struct options {
    double lr = 1e-3;     ///< >= 0
    double beta1 = 0.9;   ///< in [0, 1): decay of the first moment
    double beta2 = 0.999; ///< in [0, 1): decay of the second moment
    double eps = 1e-8;    ///< >= 0: added to the denominator
    double weight_decay = Decoupled ? 1e-2 : 0.0;  ///< >= 0: L2 (adam) or decoupled (adamw) decay
  };

  /// Builds the optimizer over `params` (see `collect_parameters`).
  /// @pre the parameters outlive the optimizer.
  /// @post step_count() == 0; exp_avg and exp_avg_sq are zeros shaped like each parameter.
  /// @throws config_error when an option is invalid (the message names it) or the parameter list is empty,
  ///         has a null pointer, a repeated parameter or name, or a gradient shaped unlike its value.
  basic_adam(std::vector<named_parameter<B>> params, const options& o) : params_(std::move(params)), opt_(o) {
    validate(opt_);
    detail::check_parameters(params_, name);
    exp_avg_.reserve(params_.size());
    exp_avg_sq_.reserve(params_.size());
    for (const auto& np : params_) {
      exp_avg_.push_back(tensor<B>::zeros(np.p->value.dims()));
      exp_avg_sq_.push_back(tensor<B>::zeros(np.p->value.dims()));
    }
  }
  /// Builds the optimizer with the default options.
  explicit basic_adam(std::vector<named_parameter<B>> params) : basic_adam(std::move(params), options{}) {}

  /// Throws config_error naming the first invalid option of `o`.
  static void validate(const options& o) {
    detail::check_at_least(o.lr, 0.0, name, "lr");
    detail::check_range(o.beta1, 0.0, 1.0, false, name, "beta1");
    detail::check_range(o.beta2, 0.0, 1.0, false, name, "beta2");
    detail::check_at_least(o.eps, 0.0, name, "eps");
    detail::check_at_least(o.weight_decay, 0.0, name, "weight_decay");
  }

  /// Increments step_count() and applies one update to every parameter from its current gradient.
  /// @pre every gradient holds dL/dp for the current values; shapes unchanged since construction.
  /// @throws shape_error when a parameter, gradient or restored state tensor changed shape.
  void step(typename B::context& ctx) {
    MAMMOCL_CHECK(step_ >= 0, config_error, name, "::step: the step count is ", step_,
                  "; restored optimizer state must have step >= 0");
    const std::int64_t t = step_ + 1;
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const parameter<B>& p = *params_[i].p;
      detail::check_step_shapes(params_[i], name, {&exp_avg_[i], &exp_avg_sq_[i]});
      B::adam_step(ctx, p.value, p.grad, exp_avg_[i], exp_avg_sq_[i], static_cast<T>(opt_.lr),
                   static_cast<T>(opt_.beta1), static_cast<T>(opt_.beta2), static_cast<T>(opt_.eps),
                   static_cast<T>(opt_.weight_decay), Decoupled, static_cast<long>(t));
    }
    step_ = t;
  }

  /// Sets every parameter gradient to zero (for callers that accumulate gradients).
  void zero_grad() {
    for (const auto& np : params_) B::fill(np.p->grad, T(0));
  }

  /// The learning rate the next step uses.
  [[nodiscard]] double lr() const noexcept { return opt_.lr; }
  /// Sets the learning rate of the following steps (a schedule calls this once per epoch or iteration).
  /// @throws config_error unless `lr` is finite and >= 0.
  void set_lr(double lr) {
    detail::check_at_least(lr, 0.0, name, "lr");
    opt_.lr = lr;
  }
  /// Steps taken so far, t of the last step (restored along with the state).
  [[nodiscard]] std::int64_t step_count() const noexcept { return step_; }
  /// The options, with lr the current learning rate.
  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  /// The parameters, in update order.
  [[nodiscard]] const std::vector<named_parameter<B>>& parameters() const noexcept { return params_; }

  /// Visits the state: `f("step", std::int64_t&)`, then for each parameter in order
  /// `f("<parameter name>.exp_avg", tensor<B>&)` and `f("<parameter name>.exp_avg_sq", tensor<B>&)`.
  /// `f` may overwrite what it is given (restore): a tensor must keep the parameter's shape.
  template <class F>
  void for_each_state(F&& f) {
    f(std::string("step"), step_);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      f(params_[i].name + ".exp_avg", exp_avg_[i]);
      f(params_[i].name + ".exp_avg_sq", exp_avg_sq_[i]);
    }
  }
  /// The read-only visit (save).
  template <class F>
  void for_each_state(F&& f) const {
    f(std::string("step"), step_);
    for (std::size_t i = 0; i < params_.size(); ++i) {
      f(params_[i].name + ".exp_avg", exp_avg_[i]);
      f(params_[i].name + ".exp_avg_sq", exp_avg_sq_[i]);
    }
  }

 private:
  std::vector<named_parameter<B>> params_;
  options opt_;
  std::vector<tensor<B>> exp_avg_, exp_avg_sq_;
  std::int64_t step_ = 0;
};

/// Adam with L2 weight decay added to the gradient (torch.optim.Adam).
template <Backend B>
using adam = basic_adam<B, false>;
/// AdamW: weight decay applied to the parameter, decoupled from the moments (torch.optim.AdamW).
template <Backend B>
using adamw = basic_adam<B, true>;

}  // namespace mammocl::optim

#pragma once
/// `optim::sgd<B>`: stochastic gradient descent with momentum, dampening, Nesterov momentum and L2 weight
/// decay, with torch.optim.SGD's semantics. For each parameter p with gradient g, at every step:
///
///     d = g + weight_decay·p
///     if momentum != 0:
///         buf = d                                       (first step)
///         buf = momentum·buf + (1 − dampening)·d        (later steps)
///         d   = nesterov ? d + momentum·buf : buf
///     p = p − lr·d
///
/// The update itself is the backend's fused `B::sgd_step`; this class owns the options, the momentum
/// buffers and the step count, and exposes the latter two for checkpoints.
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/optim/optimizer.hpp"

namespace mammocl::optim {

template <Backend B>
class sgd {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;

  struct options {
    /// Learning rate; required (like torch.optim.SGD, there is no default): left unset it is NaN and the
    /// constructor says so.
    double lr = std::numeric_limits<double>::quiet_NaN();
    double momentum = 0.0;      ///< >= 0; 0 disables the momentum buffers
    double dampening = 0.0;     ///< in [0, 1]; scales the new gradient in the buffer by (1 − dampening)
    double weight_decay = 0.0;  ///< >= 0; L2 penalty added to the gradient
    bool nesterov = false;      ///< needs momentum > 0 and dampening == 0
  };

  /// Builds the optimizer over `params` (see `collect_parameters`).
  /// @pre the parameters outlive the optimizer.
  /// @post step_count() == 0; momentum buffers (zeros, one per parameter) exist iff momentum != 0.
  /// @throws config_error when an option is invalid (the message names it) or the parameter list is empty,
  ///         has a null pointer, a repeated parameter or name, or a gradient shaped unlike its value.
  sgd(std::vector<named_parameter<B>> params, const options& o) : params_(std::move(params)), opt_(o) {
    validate(opt_);
    detail::check_parameters(params_, "sgd");
    if (opt_.momentum != 0.0) {
      buffers_.reserve(params_.size());
      for (const auto& np : params_) buffers_.push_back(tensor<B>::zeros(np.p->value.dims()));
    }
  }

  /// Throws config_error naming the first invalid option of `o`.
  static void validate(const options& o) {
    MAMMOCL_CHECK(!std::isnan(o.lr), config_error,
                  "sgd: option lr must be set; SGD has no default learning rate (e.g. {.lr = 0.01})");
    detail::check_at_least(o.lr, 0.0, "sgd", "lr");
    detail::check_at_least(o.momentum, 0.0, "sgd", "momentum");
    detail::check_range(o.dampening, 0.0, 1.0, true, "sgd", "dampening");
    detail::check_at_least(o.weight_decay, 0.0, "sgd", "weight_decay");
    MAMMOCL_CHECK(!o.nesterov || (o.momentum > 0.0 && o.dampening == 0.0), config_error,
                  "sgd: option nesterov needs momentum > 0 and dampening == 0 (as torch.optim.SGD), got momentum ",
                  o.momentum, " and dampening ", o.dampening);
  }

  /// Applies one update to every parameter from its current gradient, then increments step_count().
  /// @pre every gradient holds dL/dp for the current values; shapes unchanged since construction.
  /// @throws shape_error when a parameter, gradient or restored state tensor changed shape.
  void step(typename B::context& ctx) {
    MAMMOCL_CHECK(step_ >= 0, config_error, "sgd::step: the step count is ", step_,
                  "; restored optimizer state must have step >= 0");
    const bool first = step_ == 0;
    const bool use_buffers = !buffers_.empty();
    for (std::size_t i = 0; i < params_.size(); ++i) {
      const parameter<B>& p = *params_[i].p;
      if (use_buffers) detail::check_step_shapes(params_[i], "sgd", {&buffers_[i]});
      else detail::check_step_shapes(params_[i], "sgd");
      B::sgd_step(ctx, p.value, p.grad, use_buffers ? &buffers_[i] : nullptr, static_cast<T>(opt_.lr),
                  static_cast<T>(opt_.momentum), static_cast<T>(opt_.dampening), static_cast<T>(opt_.weight_decay),
                  opt_.nesterov, first);
    }
    ++step_;
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
    detail::check_at_least(lr, 0.0, "sgd", "lr");
    opt_.lr = lr;
  }
  /// Steps taken so far (restored along with the state).
  [[nodiscard]] std::int64_t step_count() const noexcept { return step_; }
  /// The options, with lr the current learning rate.
  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  /// The parameters, in update order.
  [[nodiscard]] const std::vector<named_parameter<B>>& parameters() const noexcept { return params_; }

  /// Visits the state: `f("step", std::int64_t&)`, then, when momentum != 0,
  /// `f("<parameter name>.momentum_buffer", tensor<B>&)` for each parameter in order. `f` may overwrite
  /// what it is given (restore): a tensor must keep the parameter's shape.
  template <class F>
  void for_each_state(F&& f) {
    f(std::string("step"), step_);
    for (std::size_t i = 0; i < buffers_.size(); ++i) f(params_[i].name + ".momentum_buffer", buffers_[i]);
  }
  /// The read-only visit (save).
  template <class F>
  void for_each_state(F&& f) const {
    f(std::string("step"), step_);
    for (std::size_t i = 0; i < buffers_.size(); ++i) f(params_[i].name + ".momentum_buffer", buffers_[i]);
  }

 private:
  std::vector<named_parameter<B>> params_;
  options opt_;
  std::vector<tensor<B>> buffers_;
  std::int64_t step_ = 0;
};

/// Deduces the backend from the parameter list: `optim::sgd opt(optim::collect_parameters(model), {.lr = 0.1});`
template <class B>
sgd(std::vector<named_parameter<B>>, const typename sgd<B>::options&) -> sgd<B>;

}  // namespace mammocl::optim

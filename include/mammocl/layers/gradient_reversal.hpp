#pragma once
/// `gradient_reversal`: the DANN gradient reversal layer R_λ (Ganin et al., JMLR 2016; METHOD.md §4.3(a)):
///
///   forward  R_λ(x) = x;     backward  dx = −λ·dy   (∂R/∂x = −λ I).
///
/// λ is settable at run time (`set_lambda`), typically from `dann_lambda(p)` each iteration. No parameters.
#include <cmath>
#include <string>

#include "mammocl/core/concepts.hpp"

namespace mammocl::layers {

/// The DANN schedule λ_p = 2/(1 + exp(−γ·p)) − 1, with p ∈ [0,1] the training progress; γ = 10 by default.
/// λ_0 = 0 and λ_p → 1. Throws config_error when p is outside [0,1] or not finite, or γ is not finite.
[[nodiscard]] inline double dann_lambda(double progress, double gamma = 10.0) {
  MAMMOCL_CHECK(std::isfinite(progress) && progress >= 0 && progress <= 1, config_error, "dann_lambda: progress ",
                progress, " is outside [0, 1]");
  MAMMOCL_CHECK(std::isfinite(gamma), config_error, "dann_lambda: gamma ", gamma, " is not finite");
  return 2.0 / (1.0 + std::exp(-gamma * progress)) - 1.0;
}

template <Backend B>
class gradient_reversal {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    double lambda = 1.0;
  };
  struct cache {
    shape dims;  // the input shape, to check dy
  };

  explicit gradient_reversal(const options& o = {}) { set_lambda(o.lambda); }

  void set_lambda(double l) {
    MAMMOCL_CHECK(std::isfinite(l), config_error, "gradient_reversal: lambda ", l, " is not finite");
    lambda_ = l;
  }
  [[nodiscard]] double lambda() const noexcept { return lambda_; }

  /// y = x (a copy, so that later in-place work on y leaves x alone).
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    c.dims = x.dims();
    return infer(ctx, x);
  }
  [[nodiscard]] tensor_t infer(typename B::context&, const tensor_t& x) const {
    tensor_t y(x.dims());
    B::copy(x, y);
    return y;
  }
  /// dx = −λ·dy.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode) const {
    MAMMOCL_EXPECTS(dy.dims() == c.dims, "gradient_reversal::backward: dy has shape ", dy.dims(), ", expected ",
                    c.dims);
    tensor_t dx(dy.dims());
    B::axpby(ctx, static_cast<T>(-lambda_), dy, T(0), dx);
    return dx;
  }
  template <class F> void for_each_parameter(const std::string&, F&&) {}
  template <class F> void for_each_buffer(const std::string&, F&&) {}

 private:
  double lambda_ = 1.0;
};

}  // namespace mammocl::layers

#pragma once
/// Finite-difference gradient checks, public so that users test their own layers and losses.
///
/// `check_gradients(layer, input_shape)` runs a layer on the double-precision CPU backend with a random
/// input and a random upstream gradient dy (never all ones), and compares, for the input and for every
/// parameter, the analytic gradient of f(x) = Σ dy ⊙ layer(x) with central differences
/// (f(x+h) − f(x−h)) / 2h, h = step·max(1,|x|). A tensor passes when ‖a − n‖ ≤ rel_tol·‖a + n‖ or
/// ‖a − n‖ ≤ abs_tol. The check fails when analytic and numeric gradients are both about zero, since it
/// then proves nothing (tiny-dnn #871). It also checks that backward in accumulate mode adds to
/// gradients already present instead of overwriting them.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"

namespace mammocl::testing {

struct gradient_check_options {
  double step = 1e-6;        ///< relative finite-difference step
  double rel_tol = 1e-6;     ///< ‖a−n‖ / ‖a+n‖ bound
  double abs_tol = 1e-9;     ///< absolute bound on ‖a−n‖ (for tiny gradients)
  double zero_norm = 1e-10;  ///< below this both norms count as zero, and the check fails
  std::uint64_t seed = 1;
  index_t max_checks_per_tensor = 0;  ///< 0: every element; else that many elements chosen at random
  bool check_accumulate = true;
};

struct gradient_check_result {
  bool ok = true;
  double worst_rel_error = 0;
  std::string report;  ///< one line per checked tensor
};

/// One differentiable variable: its value (perturbed in place) and the analytic gradient to compare.
struct gradient_variable {
  std::string name;
  tensor<cpu_backend_f64> value;
  tensor<cpu_backend_f64> analytic;
};

/// Compares analytic gradients with central differences of f for each variable.
inline gradient_check_result check_function(const std::function<double()>& f, const std::vector<gradient_variable>& vars,
                                            const gradient_check_options& opt = {}) {
  gradient_check_result res;
  rng pick(opt.seed ^ 0x5eedULL);
  std::ostringstream rep;
  for (const auto& v : vars) {
    MAMMOCL_EXPECTS(v.value.dims() == v.analytic.dims(), "gradient check: ", v.name, " has shape ", v.value.dims(),
                    " but its analytic gradient has shape ", v.analytic.dims());
    MAMMOCL_EXPECTS(v.value.contiguous(), "gradient check: ", v.name, " must be contiguous");
    const index_t n = v.value.numel();
    std::vector<index_t> idx;
    if (opt.max_checks_per_tensor <= 0 || opt.max_checks_per_tensor >= n) {
      idx.resize(static_cast<std::size_t>(n));
      for (index_t i = 0; i < n; ++i) idx[static_cast<std::size_t>(i)] = i;
    } else {
      for (index_t k = 0; k < opt.max_checks_per_tensor; ++k) idx.push_back(static_cast<index_t>(pick.below(static_cast<std::uint64_t>(n))));
    }
    double diff2 = 0, sum2 = 0, a2 = 0, n2 = 0;
    for (index_t i : idx) {
      double& x = v.value.data()[i];
      const double x0 = x, h = opt.step * std::max(1.0, std::abs(x0));
      x = x0 + h;
      const double fp = f();
      x = x0 - h;
      const double fm = f();
      x = x0;
      const double num = (fp - fm) / (2 * h), ana = v.analytic.data()[i];
      diff2 += (ana - num) * (ana - num);
      sum2 += (ana + num) * (ana + num);
      a2 += ana * ana;
      n2 += num * num;
    }
    const double diff = std::sqrt(diff2), sum = std::sqrt(sum2);
    const double rel = sum > 0 ? diff / sum : 0.0;
    const bool zero = std::sqrt(a2) < opt.zero_norm && std::sqrt(n2) < opt.zero_norm;
    const bool ok = !zero && (diff <= opt.rel_tol * sum || diff <= opt.abs_tol);
    res.worst_rel_error = std::max(res.worst_rel_error, rel);
    res.ok = res.ok && ok;
    rep << (ok ? "  ok   " : "  FAIL ") << v.name << " " << v.value.dims() << ": |analytic| " << std::sqrt(a2)
        << ", |numeric| " << std::sqrt(n2) << ", |diff| " << diff << ", relative " << rel
        << (zero ? " (both gradients are zero: the check proves nothing)" : "") << " over " << idx.size()
        << " elements\n";
  }
  res.report = rep.str();
  return res;
}

namespace detail {
inline void fill_normal(const tensor<cpu_backend_f64>& t, rng& r) {
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = r.normal();
}
}  // namespace detail

/// Checks the input gradient and every parameter gradient of `layer` (on cpu_backend_f64) for a random
/// input of `input_shape`, and that accumulate mode adds.
template <Layer L>
  requires std::same_as<typename L::backend_type, cpu_backend_f64>
gradient_check_result check_gradients(L& layer, const shape& input_shape, const gradient_check_options& opt = {}) {
  using B = cpu_backend_f64;
  using tensor_t = tensor<B>;
  typename B::context ctx(1);
  rng r(opt.seed);
  tensor_t x(input_shape);
  detail::fill_normal(x, r);
  typename L::cache c0;
  tensor_t y0 = layer.forward(ctx, x, c0);
  tensor_t dy(y0.dims());
  detail::fill_normal(dy, r);

  std::vector<parameter<B>*> params;
  std::vector<std::string> names;
  layer.for_each_parameter("", [&](const std::string& name, parameter<B>& p) {
    params.push_back(&p);
    names.push_back(name);
  });
  typename L::cache c;
  (void)layer.forward(ctx, x, c);
  tensor_t dx = layer.backward(ctx, c, dy, grad_mode::overwrite);
  MAMMOCL_EXPECTS(dx.dims() == x.dims(), "gradient check: backward returned dx of shape ", dx.dims(),
                  " for an input of shape ", x.dims());
  std::vector<gradient_variable> vars{{"input", x, dx.clone()}};
  for (std::size_t i = 0; i < params.size(); ++i) vars.push_back({names[i], params[i]->value, params[i]->grad.clone()});

  auto f = [&]() {
    typename L::cache cc;
    tensor_t y = layer.forward(ctx, x, cc);
    return B::dot(ctx, y.clone(), dy);
  };
  gradient_check_result res = check_function(f, vars, opt);

  if (opt.check_accumulate && !params.empty()) {
    std::vector<tensor_t> before;
    for (auto* p : params) {
      detail::fill_normal(p->grad, r);
      before.push_back(p->grad.clone());
    }
    typename L::cache ca;
    (void)layer.forward(ctx, x, ca);
    (void)layer.backward(ctx, ca, dy, grad_mode::accumulate);
    for (std::size_t i = 0; i < params.size(); ++i) {
      double err = 0, scale = 0;
      const auto& g = params[i]->grad;
      for (index_t j = 0; j < g.numel(); ++j) {
        const double want = before[i].data()[j] + vars[i + 1].analytic.data()[j];
        err = std::max(err, std::abs(g.data()[j] - want));
        scale = std::max(scale, std::abs(want));
      }
      const bool ok = err <= 1e-12 * std::max(1.0, scale);
      res.ok = res.ok && ok;
      res.report += std::string(ok ? "  ok   " : "  FAIL ") + names[i] + ": accumulate mode " +
                    (ok ? "adds to the existing gradient\n" : "does not add to the existing gradient\n");
    }
  }
  return res;
}

}  // namespace mammocl::testing

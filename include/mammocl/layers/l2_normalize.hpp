#pragma once
/// `l2_normalize`: row-wise L2 normalisation, as F.normalize(x, dim=1) (METHOD.md §3.3):
///
///   y_i = x_i / max(‖x_i‖₂, ε),  ε = 1e-12, one row per item of a (N, …) tensor.
///
/// Backward: for ‖x_i‖ > ε, dx_i = (I − y_i y_iᵀ)·dy_i / ‖x_i‖ = (dy_i − y_i (y_i·dy_i)) / ‖x_i‖;
/// in the clamp branch (‖x_i‖ ≤ ε) the denominator is the constant ε and dx_i = dy_i / ε.
/// Norms and dot products are accumulated in double; no parameters. On a device backend the (N,D) rows
/// make a host round trip (layers/host_bridge.hpp): the same numbers as on the host.
#include <algorithm>
#include <cmath>
#include <string>

#include "mammocl/core/concepts.hpp"
#include "mammocl/layers/host_bridge.hpp"

namespace mammocl::layers {

template <Backend B>
class l2_normalize {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    double eps = 1e-12;  ///< lower clamp of the norm
  };
  struct cache {
    tensor_t y;      // the output (N, …)
    tensor_t norms;  // (N) the unclamped norms ‖x_i‖
  };

  explicit l2_normalize(const options& o = {}) : opt_(o) {
    MAMMOCL_CHECK(o.eps > 0 && std::isfinite(o.eps), config_error, "l2_normalize: eps (", o.eps,
                  ") must be a positive finite number");
  }

  [[nodiscard]] tensor_t forward(typename B::context&, const tensor_t& x, cache& c) const {
    check(x);
    if constexpr (B::is_host) {
      c.norms = tensor_t(shape{x.n()});
      c.y = run<B>(x, &c.norms);
    } else {  // host round trip of the (N,D) rows: docs/device_generic.md
      tensor<H> norms(shape{x.n()});
      const tensor<H> y = run<H>(host_bridge::on_host(x), &norms);
      c.norms = host_bridge::to_backend<B>(norms);
      c.y = host_bridge::to_backend<B>(y);
    }
    return c.y;
  }
  [[nodiscard]] tensor_t infer(typename B::context&, const tensor_t& x) const {
    check(x);
    if constexpr (B::is_host) {
      return run<B>(x, nullptr);
    } else {
      return host_bridge::to_backend<B>(run<H>(host_bridge::on_host(x), nullptr));
    }
  }
  [[nodiscard]] tensor_t backward(typename B::context&, const cache& c, const tensor_t& dy, grad_mode) const {
    MAMMOCL_EXPECTS(dy.dims() == c.y.dims(), "l2_normalize::backward: dy has shape ", dy.dims(), ", expected ",
                    c.y.dims());
    MAMMOCL_EXPECTS(dy.contiguous(), "l2_normalize::backward: dy must be contiguous");
    if constexpr (B::is_host) {
      return backward_rows<B>(c.y, c.norms, dy);
    } else {
      return host_bridge::to_backend<B>(backward_rows<H>(host_bridge::on_host(c.y), host_bridge::on_host(c.norms),
                                                         host_bridge::on_host(dy)));
    }
  }
  template <class F> void for_each_parameter(const std::string&, F&&) {}
  template <class F> void for_each_buffer(const std::string&, F&&) {}
  [[nodiscard]] const options& opts() const noexcept { return opt_; }

 private:
  using H = host_bridge::host_side_t<B>;  // where the rows are computed: B itself on a host backend

  void check(const tensor_t& x) const {
    MAMMOCL_EXPECTS(x.rank() >= 2 && x.contiguous(), "l2_normalize: needs a contiguous (N, …) tensor, got ", x.dims());
  }
  template <class HB>
  tensor<HB> run(const tensor<HB>& x, tensor<HB>* norms) const {
    using HT = typename HB::scalar_type;
    tensor<HB> y(x.dims());
    const index_t n = x.n(), d = x.item_size();
    for (index_t i = 0; i < n; ++i) {
      const HT* p = x.data() + i * d;
      HT* q = y.data() + i * d;
      double s = 0;
      for (index_t j = 0; j < d; ++j) s += static_cast<double>(p[j]) * p[j];
      const double nrm = std::sqrt(s), den = std::max(nrm, opt_.eps);
      for (index_t j = 0; j < d; ++j) q[j] = static_cast<HT>(p[j] / den);
      if (norms) norms->data()[i] = static_cast<HT>(nrm);
    }
    return y;
  }
  template <class HB>
  tensor<HB> backward_rows(const tensor<HB>& cy, const tensor<HB>& norms, const tensor<HB>& dy) const {
    using HT = typename HB::scalar_type;
    tensor<HB> dx(dy.dims());
    const index_t n = cy.n(), d = cy.item_size();
    for (index_t i = 0; i < n; ++i) {
      const HT* y = cy.data() + i * d;
      const HT* g = dy.data() + i * d;
      HT* o = dx.data() + i * d;
      const double nrm = static_cast<double>(norms.data()[i]);
      if (nrm > opt_.eps) {
        double ydg = 0;
        for (index_t j = 0; j < d; ++j) ydg += static_cast<double>(y[j]) * g[j];
        for (index_t j = 0; j < d; ++j) o[j] = static_cast<HT>((g[j] - y[j] * ydg) / nrm);
      } else {
        for (index_t j = 0; j < d; ++j) o[j] = static_cast<HT>(g[j] / opt_.eps);
      }
    }
    return dx;
  }
  options opt_;
};

}  // namespace mammocl::layers

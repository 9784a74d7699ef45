#pragma once
/// Domain-adversarial (DANN) loss pieces (Ganin et al., JMLR 2016; METHOD.md §4.3(a)).
///
/// `binary_cross_entropy_with_logits`: as torch.nn.functional.binary_cross_entropy_with_logits with mean
/// reduction. For logits z_i and targets y_i ∈ [0,1], i = 1..N:
///
///   L = (1/N)·Σ_i [ max(z_i,0) − z_i·y_i + log(1 + exp(−|z_i|)) ]      (numerically stable form)
///   ∂L/∂z_i = (σ(z_i) − y_i) / N.
///
/// `domain_adversarial<B>`: the domain branch of DANN,
///
///   L_dom = L_d(G_d(R_λ(G_f(x_A))), 0) + L_d(G_d(R_λ(G_f(x_B))), 1),
///
/// where L_d is the mean BCE above over the rows of ONE domain, so the total is the SUM of the two
/// per-domain means, exactly as fungtion/DANN sums err_s_domain + err_t_domain (each a mean over its own
/// batch). It owns the domain classifier G_d (linear→relu→linear→relu→linear, widths
/// in_features→hidden[0]→hidden[1]→1, default 1024→1024→1024→1, parameter names "0.weight", "0.bias",
/// "2.weight", "2.bias", "4.weight", "4.bias" as torch.nn.Sequential) and the reversal layer R_λ.
#include <algorithm>
#include <array>
#include <cmath>
#include <span>
#include <string>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/layers/gradient_reversal.hpp"
#include "mammocl/layers/host_bridge.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/layers/relu.hpp"
#include "mammocl/layers/sequential.hpp"

namespace mammocl::losses {

namespace detail {
/// max(z,0) − z·y + log(1 + exp(−|z|)).
[[nodiscard]] inline double bce_with_logits_term(double z, double y) noexcept {
  return std::max(z, 0.0) - z * y + std::log1p(std::exp(-std::abs(z)));
}
/// σ(z) without overflow for large |z|.
[[nodiscard]] inline double stable_sigmoid(double z) noexcept {
  if (z >= 0) return 1.0 / (1.0 + std::exp(-z));
  const double e = std::exp(z);
  return e / (1.0 + e);
}
}  // namespace detail

class binary_cross_entropy_with_logits {
 public:
  /// Mean BCE of logits (any shape, numel N ≥ 1) against targets (N values in [0,1]); writes
  /// ∂L/∂logits = (σ(z) − y)/N into dlogits (shape of logits) when it is given.
  /// Throws shape_error for N = 0, a count mismatch or a target outside [0,1]; numeric_error when a logit
  /// is not finite.
  /// On a device backend the logits make a host round trip (layers/host_bridge.hpp).
  template <Backend B>
  double value_and_gradient(typename B::context& ctx, const tensor<B>& logits, std::span<const double> targets,
                            tensor<B>* dlogits) const {
    if constexpr (!B::is_host) {
      MAMMOCL_EXPECTS(logits.contiguous(), "binary_cross_entropy_with_logits: logits must be contiguous");
      using H = host_bridge::host_twin_t<B>;
      typename H::context hctx = host_bridge::host_context<B>(ctx);
      tensor<H> hg;
      const double loss = value_and_gradient<H>(hctx, host_bridge::on_host(logits), targets, dlogits ? &hg : nullptr);
      if (dlogits) host_bridge::assign<B>(hg, *dlogits);
      return loss;
    } else {
      (void)ctx;
      return host_value_and_gradient(logits, targets, dlogits);
    }
  }

 private:
  template <Backend B>
  double host_value_and_gradient(const tensor<B>& logits, std::span<const double> targets, tensor<B>* dlogits) const {
    using T = typename B::scalar_type;
    MAMMOCL_EXPECTS(logits.contiguous(), "binary_cross_entropy_with_logits: logits must be contiguous");
    const index_t n = logits.numel();
    MAMMOCL_EXPECTS(n > 0, "binary_cross_entropy_with_logits: empty logits ", logits.dims());
    MAMMOCL_EXPECTS(static_cast<index_t>(targets.size()) == n, "binary_cross_entropy_with_logits: ", targets.size(),
                    " targets for ", n, " logits ", logits.dims());
    for (index_t i = 0; i < n; ++i)
      MAMMOCL_EXPECTS(targets[i] >= 0 && targets[i] <= 1, "binary_cross_entropy_with_logits: target ", targets[i],
                      " at ", i, " is outside [0, 1]");
    const T* z = logits.data();
    double sum = 0;
    for (index_t i = 0; i < n; ++i) {
      const double zi = static_cast<double>(z[i]);
      MAMMOCL_CHECK(std::isfinite(zi), numeric_error, "binary_cross_entropy_with_logits: logit ", zi, " at ", i,
                    " is not finite");
      sum += detail::bce_with_logits_term(zi, targets[i]);
    }
    if (dlogits) {
      if (dlogits->dims() != logits.dims()) *dlogits = tensor<B>(logits.dims());
      T* g = dlogits->data();
      for (index_t i = 0; i < n; ++i)
        g[i] = static_cast<T>((detail::stable_sigmoid(static_cast<double>(z[i])) - targets[i]) / static_cast<double>(n));
    }
    return sum / static_cast<double>(n);
  }
};

template <Backend B>
class domain_adversarial {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  using classifier_t =
      layers::sequential<layers::linear<B>, layers::relu<B>, layers::linear<B>, layers::relu<B>, layers::linear<B>>;

  struct options {
    index_t in_features = 1024;
    std::array<index_t, 2> hidden{1024, 1024};
    double lambda = 1.0;  ///< the reversal's λ; set it per iteration with set_lambda(layers::dann_lambda(p))
  };

  struct result {
    double loss = 0;         ///< loss_domain0 + loss_domain1
    double loss_domain0 = 0; ///< mean BCE of the domain-0 (A, source) rows against 0; 0 when there are none
    double loss_domain1 = 0; ///< mean BCE of the domain-1 (B, target) rows against 1; 0 when there are none
    index_t count_domain0 = 0, count_domain1 = 0;  ///< a count of 0 reports a domain that contributed 0
    tensor_t features_grad;  ///< −λ·∂L_dom/∂features (the reversed gradient), shape (N,F)
  };

  explicit domain_adversarial(const options& o = {})
      : opt_(o),
        classifier_(layers::linear<B>({.in_features = o.in_features, .out_features = o.hidden[0]}), layers::relu<B>(),
                    layers::linear<B>({.in_features = o.hidden[0], .out_features = o.hidden[1]}), layers::relu<B>(),
                    layers::linear<B>({.in_features = o.hidden[1], .out_features = 1})),
        reversal_({.lambda = o.lambda}) {}

  /// Initialises every linear layer of G_d as torch's default (W ~ U(−1/√in, 1/√in), b = 0).
  void init(rng& r) {
    classifier_.template get<0>().init(r);
    classifier_.template get<2>().init(r);
    classifier_.template get<4>().init(r);
  }

  void set_lambda(double l) { reversal_.set_lambda(l); }
  [[nodiscard]] double lambda() const noexcept { return reversal_.lambda(); }

  /// Training step of the domain branch for features (N,F) with domains d_i ∈ {0,1}:
  ///   z = G_d(R_λ(features)) (N,1);  n_k = #{i : d_i = k};
  ///   L_dom = Σ_{k∈{0,1}, n_k>0} (1/n_k)·Σ_{i: d_i=k} [max(z_i,0) − z_i·k + log(1+exp(−|z_i|))];
  ///   ∂L_dom/∂z_i = (σ(z_i) − d_i)/n_{d_i};
  ///   G_d's parameter gradients get +∂L_dom/∂θ (written or added per `mode`);
  ///   features_grad = −λ·∂L_dom/∂features (the reversal applied).
  /// A domain with no rows contributes 0 and is reported by a zero count in the result.
  /// Throws shape_error for features that are not (N≥1, in_features), N ≠ domains.size() or a domain
  /// outside {0,1}; numeric_error for non-finite features or a non-finite loss.
  [[nodiscard]] result forward_backward(typename B::context& ctx, const tensor_t& features,
                                        std::span<const int> domains, grad_mode mode) {
    MAMMOCL_EXPECTS(features.rank() == 2 && features.n() > 0 && features.c() == opt_.in_features,
                    "domain_adversarial: features must be (N>=1, ", opt_.in_features, "), got ", features.dims());
    const index_t n = features.n();
    MAMMOCL_EXPECTS(static_cast<index_t>(domains.size()) == n, "domain_adversarial: ", domains.size(),
                    " domain labels for ", n, " feature rows");
    result res;
    for (index_t i = 0; i < n; ++i) {
      MAMMOCL_EXPECTS(domains[i] == 0 || domains[i] == 1, "domain_adversarial: domain ", domains[i], " at row ", i,
                      " is not 0 or 1");
      (domains[i] == 0 ? res.count_domain0 : res.count_domain1) += 1;
    }
    // On a device backend one reduction says whether the (N,F) features are finite; only a failing batch is
    // copied to the host, to name the first bad value as the host path does.
    bool finite = true;
    if constexpr (!B::is_host) finite = B::all_finite(ctx, features);
    if (!finite || B::is_host) {
      const auto hf = host_bridge::on_host(features);
      for (index_t i = 0; i < n; ++i)
        for (index_t j = 0; j < opt_.in_features; ++j)
          MAMMOCL_CHECK(std::isfinite(static_cast<double>(hf.at(i, j))), numeric_error, "domain_adversarial: feature (",
                        i, ", ", j, ") = ", hf.at(i, j), " is not finite");
    }

    typename layers::gradient_reversal<B>::cache rc;
    typename classifier_t::cache cc;
    const tensor_t reversed = reversal_.forward(ctx, features, rc);
    const tensor_t logits = classifier_.forward(ctx, reversed, cc);  // (N,1)

    // The (N,1) logits and their gradient: on the host (a round trip of N values on a device backend).
    const auto hlogits = host_bridge::on_host(logits);
    tensor<host_bridge::host_side_t<B>> hd(logits.dims());
    for (index_t i = 0; i < n; ++i) {
      const double z = static_cast<double>(hlogits.at(i, 0));
      const int d = domains[i];
      const double nk = static_cast<double>(d == 0 ? res.count_domain0 : res.count_domain1);
      (d == 0 ? res.loss_domain0 : res.loss_domain1) += detail::bce_with_logits_term(z, d) / nk;
      hd.at(i, 0) = static_cast<T>((detail::stable_sigmoid(z) - d) / nk);
    }
    const tensor_t dlogits = host_bridge::to_backend<B>(hd);
    res.loss = res.loss_domain0 + res.loss_domain1;
    MAMMOCL_CHECK(std::isfinite(res.loss), numeric_error, "domain_adversarial: the domain loss is not finite (",
                  res.loss, ")");
    const tensor_t dreversed = classifier_.backward(ctx, cc, dlogits, mode);
    res.features_grad = reversal_.backward(ctx, rc, dreversed, mode);
    return res;
  }

  /// Domain logits z = G_d(features) (N,1), no reversal (it is the identity forward), no caches.
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& features) const {
    return classifier_.infer(ctx, features);
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    classifier_.for_each_parameter(prefix, f);
  }
  template <class F> void for_each_buffer(const std::string&, F&&) {}

  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  [[nodiscard]] classifier_t& classifier() noexcept { return classifier_; }
  [[nodiscard]] layers::gradient_reversal<B>& reversal() noexcept { return reversal_; }

 private:
  options opt_;
  classifier_t classifier_;
  layers::gradient_reversal<B> reversal_;
};

}  // namespace mammocl::losses

#pragma once
/// `cross_entropy`: softmax cross-entropy with mean reduction and optional class weights, as
/// torch.nn.CrossEntropyLoss: L = Σ_i w_{y_i}·(−log softmax(z_i)[y_i]) / Σ_i w_{y_i}  (w = 1 without weights).
#include <cmath>
#include <span>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/layers/host_bridge.hpp"

namespace mammocl::losses {

class cross_entropy {
 public:
  struct options {
    std::vector<double> class_weights;  ///< empty: every class weighs 1
  };
  cross_entropy() = default;
  explicit cross_entropy(options o) : opt_(std::move(o)) {
    for (double w : opt_.class_weights)
      MAMMOCL_CHECK(std::isfinite(w) && w >= 0, config_error, "cross_entropy: class weight ", w,
                    " is not a finite non-negative number");
  }

  /// Loss of logits (N,K) against labels in [0,K); writes ∂L/∂logits (N,K) into dlogits when it is
  /// defined (dlogits = w_{y_i}·(softmax(z_i) − onehot(y_i)) / Σ w_{y_i}).
  /// On a device backend the (N,K) logits make a host round trip (layers/host_bridge.hpp): N·K values down,
  /// N·K gradient values up, the same numbers as on the host.
  template <Backend B>
  double value_and_gradient(typename B::context& ctx, const tensor<B>& logits, std::span<const int> labels,
                            tensor<B>* dlogits) const {
    if constexpr (!B::is_host) {
      using H = host_bridge::host_twin_t<B>;
      typename H::context hctx = host_bridge::host_context<B>(ctx);
      tensor<H> hg;
      const double loss = value_and_gradient<H>(hctx, host_bridge::on_host(logits), labels, dlogits ? &hg : nullptr);
      if (dlogits) host_bridge::assign<B>(hg, *dlogits);
      return loss;
    } else {
      return host_value_and_gradient(ctx, logits, labels, dlogits);
    }
  }

 private:
  template <Backend B>
  double host_value_and_gradient(typename B::context& ctx, const tensor<B>& logits, std::span<const int> labels,
                                 tensor<B>* dlogits) const {
    using T = typename B::scalar_type;
    MAMMOCL_EXPECTS(logits.rank() == 2, "cross_entropy: logits must be (N,K), got ", logits.dims());
    const index_t n = logits.n(), k = logits.c();
    MAMMOCL_EXPECTS(static_cast<index_t>(labels.size()) == n, "cross_entropy: ", labels.size(), " labels for ", n,
                    " rows of logits ", logits.dims());
    MAMMOCL_EXPECTS(opt_.class_weights.empty() || static_cast<index_t>(opt_.class_weights.size()) == k,
                    "cross_entropy: ", opt_.class_weights.size(), " class weights for ", k, " classes");
    for (index_t i = 0; i < n; ++i)
      MAMMOCL_EXPECTS(labels[i] >= 0 && labels[i] < k, "cross_entropy: label ", labels[i], " at row ", i,
                      " is outside [0, ", k, ")");
    tensor<B> lsm(logits.dims());
    B::log_softmax_rows(ctx, logits, lsm);
    double num = 0, den = 0;
    for (index_t i = 0; i < n; ++i) {
      const double w = opt_.class_weights.empty() ? 1.0 : opt_.class_weights[labels[i]];
      num -= w * lsm.at(i, labels[i]);
      den += w;
    }
    MAMMOCL_CHECK(den > 0, numeric_error, "cross_entropy: the labels' class weights sum to 0");
    const double loss = num / den;
    MAMMOCL_CHECK(std::isfinite(loss), numeric_error, "cross_entropy: the loss is not finite (", loss,
                  "); the logits hold NaN or Inf");
    if (dlogits) {
      if (dlogits->dims() != logits.dims()) *dlogits = tensor<B>(logits.dims());
      for (index_t i = 0; i < n; ++i) {
        const double w = (opt_.class_weights.empty() ? 1.0 : opt_.class_weights[labels[i]]) / den;
        for (index_t j = 0; j < k; ++j)
          dlogits->at(i, j) = static_cast<T>(w * (std::exp(static_cast<double>(lsm.at(i, j))) - (j == labels[i] ? 1.0 : 0.0)));
      }
    }
    return loss;
  }

  options opt_;
};

}  // namespace mammocl::losses

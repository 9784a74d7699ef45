#pragma once
/// `linear`: y = x·Wᵀ + b with PyTorch's layout, W (out, in), b (out).
#include <cmath>
#include <string>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"

namespace mammocl::layers {

template <Backend B>
class linear {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t in_features = 0, out_features = 0;
    bool bias = true;
  };
  struct cache {
    tensor_t x;  // (N,In)
  };

  explicit linear(const options& o) : opt_(o) {
    MAMMOCL_CHECK(o.in_features > 0 && o.out_features > 0, config_error, "linear: in_features (", o.in_features,
                  ") and out_features (", o.out_features, ") must be positive");
    weight_ = parameter<B>(shape{o.out_features, o.in_features});
    B::fill(weight_.value, T(0));
    if (o.bias) {
      bias_ = parameter<B>(shape{o.out_features});
      B::fill(bias_.value, T(0));
    }
  }
  /// PyTorch's default: W ~ U(−1/√in, 1/√in); the bias is set to 0 as torchvision's DenseNet does. Drawn on
  /// the host and copied in with `B::from_host`: the same numbers on every backend for a seed.
  void init(rng& r) {
    const double a = 1.0 / std::sqrt(static_cast<double>(opt_.in_features));
    std::vector<T> w(static_cast<std::size_t>(weight_.value.numel()));
    for (T& v : w) v = static_cast<T>(r.uniform(-a, a));
    B::from_host(w.data(), weight_.value);
    if (opt_.bias) B::fill(bias_.value, T(0));
  }

  /// (N,In) → (N,Out)
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    tensor_t y = infer(ctx, x);
    c.x = x;
    return y;
  }
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    check_input(x);
    tensor_t y(shape{x.n(), opt_.out_features});
    B::gemm(ctx, false, true, x.n(), opt_.out_features, opt_.in_features, T(1), x.data(), x.batch_stride(),
            weight_.value.data(), opt_.in_features, T(0), y.data(), opt_.out_features);
    if (opt_.bias) B::add_row_broadcast(ctx, y, bias_.value);
    return y;
  }
  /// dx = dy·W;  dW (+)= dyᵀ·x;  db (+)= Σ_rows dy.
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode mode) {
    MAMMOCL_EXPECTS(dy.dims() == (shape{c.x.n(), opt_.out_features}), "linear::backward: dy has shape ", dy.dims(),
                    ", expected ", shape{c.x.n(), opt_.out_features});
    const T beta = mode == grad_mode::accumulate ? T(1) : T(0);
    const index_t n = c.x.n();
    B::gemm(ctx, true, false, opt_.out_features, opt_.in_features, n, T(1), dy.data(), opt_.out_features, c.x.data(),
            c.x.batch_stride(), beta, weight_.grad.data(), opt_.in_features);
    if (opt_.bias) B::sum_rows(ctx, dy, bias_.grad, beta);
    tensor_t dx(c.x.dims());
    B::gemm(ctx, false, false, n, opt_.in_features, opt_.out_features, T(1), dy.data(), opt_.out_features,
            weight_.value.data(), opt_.in_features, T(0), dx.data(), opt_.in_features);
    return dx;
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    f(prefix + "weight", weight_);
    if (opt_.bias) f(prefix + "bias", bias_);
  }
  template <class F> void for_each_buffer(const std::string&, F&&) {}

  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  [[nodiscard]] parameter<B>& weight() noexcept { return weight_; }
  [[nodiscard]] parameter<B>& bias() noexcept { return bias_; }

 private:
  void check_input(const tensor_t& x) const {
    MAMMOCL_EXPECTS(x.rank() >= 2 && x.item_size() == opt_.in_features, "linear: input of shape ", x.dims(), " has ",
                    x.rank() >= 2 ? x.item_size() : index_t{0}, " features per item, expected ", opt_.in_features);
  }
  options opt_;
  parameter<B> weight_, bias_;
};

}  // namespace mammocl::layers

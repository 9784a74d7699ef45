#pragma once
/// `batch_norm`: BatchNorm2d with PyTorch's conventions (eps 1e-5, momentum 0.1, biased variance for
/// normalisation, unbiased for the running variance), optionally fused with the ReLU that follows it.
#include <cstdint>
#include <string>

#include "mammocl/core/concepts.hpp"

namespace mammocl::layers {

template <Backend B>
class batch_norm {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = tensor<B>;
  struct options {
    index_t channels = 0;
    double eps = 1e-5;
    double momentum = 0.1;
    bool relu = false;  ///< apply ReLU to the output (BN-ReLU fused); parameter names do not change
  };
  struct cache {
    tensor_t x;                 // (N,C,H,W), the input
    tensor_t mean, invstd;      // (C) batch statistics
    tensor_t scale, shift;      // (C) the normalisation as a per-channel map (statistics_into only)
  };

  explicit batch_norm(const options& o) : opt_(o) {
    MAMMOCL_CHECK(o.channels > 0 && o.eps > 0 && o.momentum >= 0 && o.momentum <= 1, config_error,
                  "batch_norm: invalid options (channels ", o.channels, ", eps ", o.eps, ", momentum ", o.momentum,
                  "); channels and eps must be positive and momentum in [0,1]");
    gamma_ = parameter<B>(shape{o.channels});
    beta_ = parameter<B>(shape{o.channels});
    running_mean_ = tensor_t(shape{o.channels});
    running_var_ = tensor_t(shape{o.channels});
    reset();
  }
  /// γ = 1, β = 0, running mean 0, running variance 1, no batches seen.
  void reset() {
    B::fill(gamma_.value, T(1));
    B::fill(beta_.value, T(0));
    B::fill(running_mean_, T(0));
    B::fill(running_var_, T(1));
    num_batches_tracked_ = 0;
  }

  /// Training mode: normalise with the batch statistics and update the running statistics.
  [[nodiscard]] tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) {
    tensor_t y(x.dims());
    forward_into(ctx, x, y, c, true);
    return y;
  }
  /// Training-mode forward into `y` (which may be a strided view). With update_running false the
  /// running statistics are left alone (recomputation in the memory-efficient mode).
  void forward_into(typename B::context& ctx, const tensor_t& x, const tensor_t& y, cache& c, bool update_running) {
    check_input(x.dims());
    c.x = x;
    c.mean = tensor_t(shape{opt_.channels});
    c.invstd = tensor_t(shape{opt_.channels});
    B::batch_norm_forward_train(ctx, x, gamma_.value, beta_.value, y, c.mean, c.invstd,
                                update_running ? &running_mean_ : nullptr, update_running ? &running_var_ : nullptr,
                                opt_.momentum, opt_.eps, opt_.relu);
    if (update_running) ++num_batches_tracked_;
  }
  /// The statistics half of a training forward: the batch statistics into the cache, the normalisation as a
  /// per-channel map y = x·scale + shift (c.scale, c.shift) and the running statistics updated; no output
  /// written. For a convolution that applies the map while packing its input (conv2d::forward_folded). Needs a
  /// backend with FoldsBatchNormIntoConv.
  ///
  /// `known`, when given, is the cache of a batch norm whose input was the first channels of this one's (a dense
  /// layer's predecessor, reading the same buffer): its statistics are copied instead of recomputed.
  void statistics_into(typename B::context& ctx, const tensor_t& x, cache& c, const cache* known = nullptr) {
    check_input(x.dims());
    c.x = x;
    c.mean = tensor_t(shape{opt_.channels});
    c.invstd = tensor_t(shape{opt_.channels});
    index_t k = 0;
    if (known) {
      k = known->mean.numel();
      MAMMOCL_EXPECTS(k <= opt_.channels && known->x.data() == x.data() && known->x.n() == x.n() &&
                          known->x.h() == x.h() && known->x.w() == x.w() && known->x.batch_stride() == x.batch_stride(),
                      "batch_norm::statistics_into: the known statistics (input ", known->x.dims(),
                      ") are not of the first channels of this input ", x.dims());
      B::copy(known->mean, c.mean.prefix(shape{k}));
      B::copy(known->invstd, c.invstd.prefix(shape{k}));
    }
    B::batch_norm_statistics(ctx, x, c.mean, c.invstd, &running_mean_, &running_var_, opt_.momentum, opt_.eps, k);
    ++num_batches_tracked_;
    c.scale = tensor_t(shape{opt_.channels});
    c.shift = tensor_t(shape{opt_.channels});
    B::batch_norm_fold(ctx, gamma_.value, beta_.value, c.mean, c.invstd, c.scale, c.shift);
  }
  /// The inference-mode normalisation (running statistics) as y = x·scale + shift per channel, into new (C)
  /// tensors.
  void fold_running(typename B::context& ctx, tensor_t& scale, tensor_t& shift) const {
    scale = tensor_t(shape{opt_.channels});
    shift = tensor_t(shape{opt_.channels});
    B::batch_norm_fold_running(ctx, gamma_.value, beta_.value, running_mean_, running_var_, opt_.eps, scale, shift);
  }
  /// Recomputes the training-mode output of a cached forward without touching any statistics.
  void recompute_into(typename B::context& ctx, const cache& c, const tensor_t& y) const {
    B::batch_norm_recompute(ctx, c.x, gamma_.value, beta_.value, c.mean, c.invstd, y, opt_.relu);
  }
  /// Inference mode: normalise with the running statistics.
  [[nodiscard]] tensor_t infer(typename B::context& ctx, const tensor_t& x) const {
    check_input(x.dims());
    tensor_t y(x.dims());
    B::batch_norm_forward_eval(ctx, x, gamma_.value, beta_.value, running_mean_, running_var_, opt_.eps, y, opt_.relu);
    return y;
  }
  /// With x̂ = (x−μ)/σ and dz = dy·[y>0] (ReLU) or dy:  dβ = Σ dz, dγ = Σ dz·x̂,
  /// dx = γ/σ · (dz − mean(dz) − x̂·mean(dz·x̂)).
  [[nodiscard]] tensor_t backward(typename B::context& ctx, const cache& c, const tensor_t& dy, grad_mode mode) {
    tensor_t dx(c.x.dims());
    backward_into(ctx, c, dy, dx, T(0), mode);
    return dx;
  }
  /// dx = (the above) + dx_beta·dx, dx possibly a strided view.
  void backward_into(typename B::context& ctx, const cache& c, const tensor_t& dy, const tensor_t& dx, T dx_beta,
                     grad_mode mode) {
    MAMMOCL_EXPECTS(dy.dims() == c.x.dims(), "batch_norm::backward: dy has shape ", dy.dims(), ", expected ", c.x.dims());
    const T pb = mode == grad_mode::accumulate ? T(1) : T(0);
    B::batch_norm_backward(ctx, c.x, dy, gamma_.value, beta_.value, c.mean, c.invstd, opt_.relu, dx, dx_beta,
                           gamma_.grad, beta_.grad, pb);
  }

  template <class F>
  void for_each_parameter(const std::string& prefix, F&& f) {
    f(prefix + "weight", gamma_);
    f(prefix + "bias", beta_);
  }
  /// Buffers in torchvision's order: running_mean, running_var (tensors), num_batches_tracked (int64).
  template <class F>
  void for_each_buffer(const std::string& prefix, F&& f) {
    f(prefix + "running_mean", running_mean_);
    f(prefix + "running_var", running_var_);
    f(prefix + "num_batches_tracked", num_batches_tracked_);
  }

  [[nodiscard]] const options& opts() const noexcept { return opt_; }
  [[nodiscard]] parameter<B>& gamma() noexcept { return gamma_; }
  [[nodiscard]] parameter<B>& beta() noexcept { return beta_; }
  [[nodiscard]] const tensor_t& running_mean() const noexcept { return running_mean_; }
  [[nodiscard]] const tensor_t& running_var() const noexcept { return running_var_; }
  [[nodiscard]] std::int64_t num_batches_tracked() const noexcept { return num_batches_tracked_; }

 private:
  void check_input(const shape& in) const {
    MAMMOCL_EXPECTS(in.rank() == 4 || in.rank() == 2, "batch_norm: input must be (N,C,H,W) or (N,C), got ", in);
    MAMMOCL_EXPECTS(in[1] == opt_.channels, "batch_norm: input has ", in[1], " channels, expected ", opt_.channels,
                    " (input shape ", in, ")");
  }
  options opt_;
  parameter<B> gamma_, beta_;
  tensor_t running_mean_, running_var_;
  std::int64_t num_batches_tracked_ = 0;
};

}  // namespace mammocl::layers

#pragma once
/// `testing::emulated_device_backend`: a backend that says it is a device (`is_host = false`) but keeps its
/// memory on the host and computes every primitive with `cpu_backend_t<T>` on the same memory.
///
/// What it is for: proving on any CPU that the layers, models, losses, strategies, trainer and linear
/// probe are device-generic. Code that reads tensor elements directly (`tensor::at`, which needs
/// `B::is_host`) or takes a host-only branch fails to compile for it, exactly as for `cuda_backend`; code
/// that goes through the backend's primitives, `to_host` / `from_host` and the explicit host round trips
/// (layers/host_bridge.hpp) runs, and its results must equal `cpu_backend`'s bit for bit
/// (tests/cpu/test_device_generic.cpp), because every op is the CPU op on the same numbers with the same
/// thread count. It does not prove that a real device's kernels are right: tests/gpu does that.
///
/// Each op turns its tensors into `tensor<cpu_backend_t<T>>::strided_view`s of the same memory (same
/// shape and batch stride) and calls the CPU op. `supcon` (the device SupCon op of the CUDA backend) is
/// the host loss, losses::supcon, on those views.
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/concepts.hpp"
#include "mammocl/core/geometry.hpp"
#include "mammocl/losses/supcon.hpp"

namespace mammocl::testing {

/// Fold: whether it offers the CPU backend's batch-norm-into-convolution ops (FoldsBatchNormIntoConv). With
/// false, dense layers take the path they take on backends without them (the CUDA backend): BN-ReLU outputs
/// stored, then the convolutions.
template <class T, bool Fold = true>
struct emulated_device_backend_t {
  using scalar_type = T;
  static constexpr bool is_host = false;
  static constexpr const char* name = "emulated_device";
  /// The backend every op delegates to.
  using host = cpu_backend_t<T>;
  using tensor_t = tensor<emulated_device_backend_t>;
  using host_tensor = tensor<host>;

  /// A CPU context (thread count, scratch) behind the device-style interface: `threads()`, `synchronize()`.
  class context {
   public:
    /// `threads` as cpu_backend's context takes it (0: OpenMP's default).
    explicit context(int threads = 0) : host_(threads) {}
    [[nodiscard]] int threads() const noexcept { return host_.threads(); }
    /// Nothing is asynchronous here; present because device contexts have it.
    void synchronize() {}
    /// The CPU context the ops run with.
    [[nodiscard]] typename host::context& cpu() noexcept { return host_; }

   private:
    typename host::context host_;
  };

  /// The same memory as a CPU tensor (same shape and batch stride).
  [[nodiscard]] static host_tensor h(const tensor_t& t) {
    if (t.contiguous()) return host_tensor::view(t.data(), t.dims());
    return host_tensor::strided_view(t.data(), t.dims(), t.batch_stride());
  }

  // ---------------------------------------------------------------- memory (no context: the default stream)
  static std::shared_ptr<T> allocate(std::size_t n) { return host::allocate(n); }
  static void fill(const tensor_t& t, T v) { host::fill(h(t), v); }
  static void copy(const tensor_t& src, const tensor_t& dst) { host::copy(h(src), h(dst)); }
  /// Device-to-host copy (contiguous destination of numel() values).
  static void to_host(const tensor_t& src, T* dst) { host::to_host(h(src), dst); }
  /// Host-to-device copy (contiguous source of numel() values).
  static void from_host(const T* src, const tensor_t& dst) { host::from_host(src, h(dst)); }

  // ---------------------------------------------------------------- every cpu_backend primitive
  static void gemm(context& ctx, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                   index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    host::gemm(ctx.cpu(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
  static void conv2d_forward(context& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias,
                             const tensor_t& y, const conv_geometry& g) {
    const opt hb(bias);
    host::conv2d_forward(ctx.cpu(), h(x), h(w), hb.get(), h(y), g);
  }
  static void conv2d_backward_data(context& ctx, const tensor_t& dy, const tensor_t& w, const tensor_t& dx,
                                   const conv_geometry& g, T beta) {
    host::conv2d_backward_data(ctx.cpu(), h(dy), h(w), h(dx), g, beta);
  }
  static void conv2d_backward_filter(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dw,
                                     const tensor_t* db, const conv_geometry& g, T beta) {
    const opt hdb(db);
    host::conv2d_backward_filter(ctx.cpu(), h(x), h(dy), h(dw), hdb.get(), g, beta);
  }
  static void batch_norm_forward_train(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                       const tensor_t& y, const tensor_t& save_mean, const tensor_t& save_invstd,
                                       const tensor_t* running_mean, const tensor_t* running_var, double momentum,
                                       double eps, bool relu) {
    const opt rm(running_mean), rv(running_var);
    host::batch_norm_forward_train(ctx.cpu(), h(x), h(gamma), h(beta), h(y), h(save_mean), h(save_invstd), rm.get(),
                                   rv.get(), momentum, eps, relu);
  }
  static void batch_norm_statistics(context& ctx, const tensor_t& x, const tensor_t& save_mean,
                                    const tensor_t& save_invstd, const tensor_t* running_mean,
                                    const tensor_t* running_var, double momentum, double eps, index_t known = 0)
    requires Fold
  {
    const opt rm(running_mean), rv(running_var);
    host::batch_norm_statistics(ctx.cpu(), h(x), h(save_mean), h(save_invstd), rm.get(), rv.get(), momentum, eps, known);
  }
  static void batch_norm_fold(context& ctx, const tensor_t& gamma, const tensor_t& beta, const tensor_t& save_mean,
                              const tensor_t& save_invstd, const tensor_t& scale, const tensor_t& shift)
    requires Fold
  {
    host::batch_norm_fold(ctx.cpu(), h(gamma), h(beta), h(save_mean), h(save_invstd), h(scale), h(shift));
  }
  static void batch_norm_fold_running(context& ctx, const tensor_t& gamma, const tensor_t& beta,
                                      const tensor_t& running_mean, const tensor_t& running_var, double eps,
                                      const tensor_t& scale, const tensor_t& shift)
    requires Fold
  {
    host::batch_norm_fold_running(ctx.cpu(), h(gamma), h(beta), h(running_mean), h(running_var), eps, h(scale), h(shift));
  }
  static void conv2d_affine_relu_forward(context& ctx, const tensor_t& x, const tensor_t& scale, const tensor_t& shift,
                                         const tensor_t& w, const tensor_t& y, const conv_geometry& g)
    requires Fold
  {
    host::conv2d_affine_relu_forward(ctx.cpu(), h(x), h(scale), h(shift), h(w), h(y), g);
  }
  static void conv2d_affine_relu_backward_filter(context& ctx, const tensor_t& x, const tensor_t& scale,
                                                 const tensor_t& shift, const tensor_t& dy, const tensor_t& dw,
                                                 const conv_geometry& g, T beta)
    requires Fold
  {
    host::conv2d_affine_relu_backward_filter(ctx.cpu(), h(x), h(scale), h(shift), h(dy), h(dw), g, beta);
  }
  static void batch_norm_recompute(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                   const tensor_t& save_mean, const tensor_t& save_invstd, const tensor_t& y, bool relu) {
    host::batch_norm_recompute(ctx.cpu(), h(x), h(gamma), h(beta), h(save_mean), h(save_invstd), h(y), relu);
  }
  static void batch_norm_forward_eval(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                      const tensor_t& running_mean, const tensor_t& running_var, double eps,
                                      const tensor_t& y, bool relu) {
    host::batch_norm_forward_eval(ctx.cpu(), h(x), h(gamma), h(beta), h(running_mean), h(running_var), eps, h(y), relu);
  }
  static void batch_norm_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                                  const tensor_t& beta, const tensor_t& save_mean, const tensor_t& save_invstd,
                                  bool relu, const tensor_t& dx, T dx_beta, const tensor_t& dgamma,
                                  const tensor_t& dbeta, T param_beta) {
    host::batch_norm_backward(ctx.cpu(), h(x), h(dy), h(gamma), h(beta), h(save_mean), h(save_invstd), relu, h(dx),
                              dx_beta, h(dgamma), h(dbeta), param_beta);
  }
  static void batch_norm_backward_eval(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                                       const tensor_t& beta, const tensor_t& running_mean,
                                       const tensor_t& running_var, double eps, bool relu, const tensor_t& dx,
                                       T dx_beta, const tensor_t& dgamma, const tensor_t& dbeta, T param_beta) {
    host::batch_norm_backward_eval(ctx.cpu(), h(x), h(dy), h(gamma), h(beta), h(running_mean), h(running_var), eps,
                                   relu, h(dx), dx_beta, h(dgamma), h(dbeta), param_beta);
  }
  static void concat_channels(context& ctx, std::span<const tensor_t> inputs, const tensor_t& out) {
    const std::vector<host_tensor> hs = hosts(inputs);
    host::concat_channels(ctx.cpu(), std::span<const host_tensor>(hs), h(out));
  }
  static void split_channels(context& ctx, const tensor_t& dy, std::span<const tensor_t> outputs, T beta) {
    const std::vector<host_tensor> hs = hosts(outputs);
    host::split_channels(ctx.cpu(), h(dy), std::span<const host_tensor>(hs), beta);
  }
  static void relu_forward(context& ctx, const tensor_t& x, const tensor_t& y) { host::relu_forward(ctx.cpu(), h(x), h(y)); }
  static void relu_backward(context& ctx, const tensor_t& y, const tensor_t& dy, const tensor_t& dx, T beta) {
    host::relu_backward(ctx.cpu(), h(y), h(dy), h(dx), beta);
  }
  static void max_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, const pool_geometry& g) {
    host::max_pool_forward(ctx.cpu(), h(x), h(y), g);
  }
  static void max_pool_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dx,
                                const pool_geometry& g, T beta) {
    host::max_pool_backward(ctx.cpu(), h(x), h(dy), h(dx), g, beta);
  }
  static void avg_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, const pool_geometry& g) {
    host::avg_pool_forward(ctx.cpu(), h(x), h(y), g);
  }
  static void avg_pool_backward(context& ctx, const tensor_t& dy, const tensor_t& dx, const pool_geometry& g, T beta) {
    host::avg_pool_backward(ctx.cpu(), h(dy), h(dx), g, beta);
  }
  static void global_avg_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, bool relu) {
    host::global_avg_pool_forward(ctx.cpu(), h(x), h(y), relu);
  }
  static void global_avg_pool_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dx,
                                       bool relu, T beta) {
    host::global_avg_pool_backward(ctx.cpu(), h(x), h(dy), h(dx), relu, beta);
  }
  static void add_row_broadcast(context& ctx, const tensor_t& y, const tensor_t& b) {
    host::add_row_broadcast(ctx.cpu(), h(y), h(b));
  }
  static void sum_rows(context& ctx, const tensor_t& a, const tensor_t& out, T beta) {
    host::sum_rows(ctx.cpu(), h(a), h(out), beta);
  }
  static void log_softmax_rows(context& ctx, const tensor_t& x, const tensor_t& out) {
    host::log_softmax_rows(ctx.cpu(), h(x), h(out));
  }
  static void softmax_rows(context& ctx, const tensor_t& x, const tensor_t& out) {
    host::softmax_rows(ctx.cpu(), h(x), h(out));
  }
  static void axpby(context& ctx, T a, const tensor_t& x, T b, const tensor_t& y) {
    host::axpby(ctx.cpu(), a, h(x), b, h(y));
  }
  static void scale(context& ctx, const tensor_t& x, T a) { host::scale(ctx.cpu(), h(x), a); }
  static double sum(context& ctx, const tensor_t& x) { return host::sum(ctx.cpu(), h(x)); }
  static double dot(context& ctx, const tensor_t& x, const tensor_t& y) { return host::dot(ctx.cpu(), h(x), h(y)); }
  static bool all_finite(context& ctx, const tensor_t& x) { return host::all_finite(ctx.cpu(), h(x)); }
  static void sgd_step(context& ctx, const tensor_t& p, const tensor_t& g, const tensor_t* buf, T lr, T momentum,
                       T dampening, T weight_decay, bool nesterov, bool first) {
    const opt hbuf(buf);
    host::sgd_step(ctx.cpu(), h(p), h(g), hbuf.get(), lr, momentum, dampening, weight_decay, nesterov, first);
  }
  static void adam_step(context& ctx, const tensor_t& p, const tensor_t& g, const tensor_t& m, const tensor_t& v, T lr,
                        T beta1, T beta2, T eps, T weight_decay, bool decoupled, long step) {
    host::adam_step(ctx.cpu(), h(p), h(g), h(m), h(v), lr, beta1, beta2, eps, weight_decay, decoupled, step);
  }

  /// The device SupCon op (the CUDA backend's signature): features (B,V,D), a host B×B row-major 0/1
  /// sample mask, all_views_anchor = contrast_mode::all. Computed by losses::supcon on the same memory.
  static double supcon(context& ctx, const tensor_t& features, const std::vector<double>& mask, double temperature,
                       double base_temperature, bool all_views_anchor, bool normalize, tensor_t* grad,
                       std::vector<double>* anchor_losses) {
    const losses::supcon loss({.temperature = temperature, .base_temperature = base_temperature,
                               .mode = all_views_anchor ? losses::supcon::contrast_mode::all
                                                        : losses::supcon::contrast_mode::one,
                               .normalize = normalize});
    host_tensor hg;
    if (grad) {
      if (grad->dims() != features.dims()) *grad = tensor_t(features.dims());
      hg = h(*grad);  // the host loss writes into the same memory (its shape already matches)
    }
    return loss.value_and_gradient_masked<host>(ctx.cpu(), h(features), mask, grad ? &hg : nullptr, anchor_losses);
  }

 private:
  /// An optional tensor argument as an optional CPU view.
  class opt {
   public:
    explicit opt(const tensor_t* t) : has_(t != nullptr) {
      if (t) v_ = h(*t);
    }
    [[nodiscard]] const host_tensor* get() const noexcept { return has_ ? &v_ : nullptr; }

   private:
    bool has_;
    host_tensor v_;
  };
  static std::vector<host_tensor> hosts(std::span<const tensor_t> ts) {
    std::vector<host_tensor> out;
    out.reserve(ts.size());
    for (const auto& t : ts) out.push_back(h(t));
    return out;
  }
};

/// The float emulated device backend.
using emulated_device_backend = emulated_device_backend_t<float>;

static_assert(Backend<emulated_device_backend>, "mammocl: emulated_device_backend must satisfy the Backend concept.");
static_assert(!emulated_device_backend::is_host, "mammocl: emulated_device_backend must look like a device backend.");
static_assert(FoldsBatchNormIntoConv<emulated_device_backend> &&
                  !FoldsBatchNormIntoConv<emulated_device_backend_t<float, false>>,
              "mammocl: emulated_device_backend_t<T, Fold> offers the folded batch-norm ops exactly when Fold is true.");

}  // namespace mammocl::testing

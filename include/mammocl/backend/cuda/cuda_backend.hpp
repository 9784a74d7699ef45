#pragma once
/// The CUDA backend: cuDNN 9 for convolutions, cuBLAS for matrix products, MammoCL's kernels (kernels/,
/// declared in backend/cuda/kernels.hpp) for everything else, float only.
///
/// `cuda_backend` offers cpu_backend's static primitive set with the same names, arguments and semantics,
/// op for op (cpu_backend is where correctness is defined; tests/gpu compares the two), on device memory:
/// tensor<cuda_backend>::data() is a device pointer. This header is compiled by the host compiler; it
/// includes only the CUDA runtime API, cuDNN, cuBLAS and the kernel launchers, and programs link
/// mammocl::cuda (docs/gpu_backend.md).
///
/// Streams: every op that takes a context runs on that context's stream, which is created blocking so that
/// it orders with the legacy default stream, where the context-free ops (fill, copy, to_host, from_host)
/// run. to_host, from_host and the ops that return a host value (sum, dot, all_finite, supcon) wait for
/// their result; nothing else synchronises. Memory comes from a caching allocator (allocator.hpp).
#include <cuda_runtime_api.h>
#include <cublas_v2.h>
#include <cudnn.h>

#include <array>
#include <cmath>
#include <cstddef>
#include <limits>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "mammocl/backend/cuda/allocator.hpp"
#include "mammocl/backend/cuda/check.hpp"
#include "mammocl/backend/cuda/kernels.hpp"
#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/core/geometry.hpp"
#include "mammocl/core/tensor.hpp"

namespace mammocl {

namespace cuda_detail {
/// `v` as an int for a cuDNN/cuBLAS argument; shape_error naming `what` when it does not fit.
inline int to_int(index_t v, const char* what) {
  MAMMOCL_EXPECTS(v >= 0 && v <= std::numeric_limits<int>::max(), what, " = ", v,
                  " does not fit the 32-bit sizes of cuDNN and cuBLAS");
  return static_cast<int>(v);
}
}  // namespace cuda_detail

template <class T>
struct cuda_backend_t {
  static_assert(std::is_same_v<T, float>,
                "mammocl: the CUDA backend works in float only; use cuda_backend (cuda_backend_t<float>), or "
                "cpu_backend_f64 for double-precision checks on the host.");
  using scalar_type = T;
  static constexpr bool is_host = false;
  static constexpr const char* name = "cuda";
  using tensor_t = tensor<cuda_backend_t>;
  using idx = cuda_kernels::idx;

  /// The state of one GPU worker: the device, one stream, a cuBLAS and a cuDNN handle bound to it, a
  /// grow-only workspace, scratch buffers and the per-shape convolution algorithm cache. Not copyable;
  /// use one per thread.
  class context {
   public:
    /// Selects `device` (after checking that it exists) and creates the stream and handles.
    /// Throws device_error when no CUDA device is present or `device` is out of range.
    explicit context(int device = 0) : device_(device) {
      int count = 0;
      const cudaError_t s = cudaGetDeviceCount(&count);
      if (s != cudaSuccess) {
        (void)cudaGetLastError();
        MAMMOCL_THROW(device_error, "cuda_backend::context: no CUDA device (cudaGetDeviceCount: ",
                      cudaGetErrorString(s), ")");
      }
      MAMMOCL_CHECK(count > 0, device_error, "cuda_backend::context: no CUDA device (cudaGetDeviceCount: 0 devices)");
      MAMMOCL_CHECK(device >= 0 && device < count, device_error, "cuda_backend::context: device ", device,
                    " does not exist (", count, " CUDA device", count == 1 ? "" : "s", " present)");
      MAMMOCL_CUDA_CHECK(cudaSetDevice(device), "cudaSetDevice(", device, ")");
      // Blocking (cudaStreamDefault): orders with the legacy default stream of the context-free ops.
      MAMMOCL_CUDA_CHECK(cudaStreamCreateWithFlags(&h_.stream, cudaStreamDefault),
                         "cudaStreamCreateWithFlags(cudaStreamDefault) on device ", device);
      MAMMOCL_CUBLAS_CHECK(cublasCreate(&h_.blas), "cublasCreate() on device ", device);
      MAMMOCL_CUBLAS_CHECK(cublasSetStream(h_.blas, h_.stream), "cublasSetStream()");
      MAMMOCL_CUBLAS_CHECK(cublasSetPointerMode(h_.blas, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode(host)");
      MAMMOCL_CUBLAS_CHECK(cublasSetMathMode(h_.blas, CUBLAS_DEFAULT_MATH), "cublasSetMathMode(CUBLAS_DEFAULT_MATH)");
      MAMMOCL_CUDNN_CHECK(cudnnCreate(&h_.dnn), "cudnnCreate() on device ", device);
      MAMMOCL_CUDNN_CHECK(cudnnSetStream(h_.dnn, h_.stream), "cudnnSetStream()");
    }
    context(const context&) = delete;
    context& operator=(const context&) = delete;
    ~context() {
      // Buffers go back to the cache only once the stream no longer uses them.
      if (h_.stream) (void)cudaStreamSynchronize(h_.stream);
    }

    /// The stream every op of this context runs on.
    [[nodiscard]] cudaStream_t stream() const noexcept { return h_.stream; }
    [[nodiscard]] cublasHandle_t cublas() const noexcept { return h_.blas; }
    [[nodiscard]] cudnnHandle_t cudnn() const noexcept { return h_.dnn; }
    [[nodiscard]] int device() const noexcept { return device_; }
    /// 1: generic code may ask how many host threads an op uses.
    [[nodiscard]] int threads() const noexcept { return 1; }
    /// Waits until all work of this context's stream has finished.
    void synchronize() {
      MAMMOCL_CUDA_CHECK(cudaStreamSynchronize(h_.stream), "cudaStreamSynchronize(context stream of device ",
                         device_, ")");
    }

    /// Allow TF32 tensor-core math in cuBLAS GEMMs and cuDNN convolutions (faster, about 1e-3 relative
    /// error). Off by default: fp32 math, so that results match the CPU backend.
    bool allow_tf32 = false;
    /// The largest convolution workspace, in bytes, an algorithm may ask for to be chosen.
    std::size_t workspace_limit = std::size_t{1} << 30;

    /// Device workspace of at least `bytes`, grown on demand and never shrunk (valid until the next call).
    void* workspace(std::size_t bytes) { return grow(ws_, ws_bytes_, bytes); }
    [[nodiscard]] std::size_t workspace_bytes() const noexcept { return ws_bytes_; }
    /// Device scratch of at least `bytes` in slot 0..3, grown on demand (valid until the next call with
    /// the same slot; reuse is ordered by the stream).
    void* scratch(std::size_t bytes, int slot = 0) {
      MAMMOCL_EXPECTS(slot >= 0 && slot < 4, "cuda_backend::context::scratch: slot ", slot, " is not in [0, 4)");
      return grow(scratch_[slot], scratch_bytes_[slot], bytes);
    }
    /// Convolution algorithms chosen so far (one per direction and shape).
    [[nodiscard]] std::size_t cached_algorithms() const noexcept { return plans_.size(); }

    /// A chosen convolution: descriptors, algorithm, workspace size, and whether strided operands are
    /// staged through packed copies (when no algorithm takes them as they are).
    struct conv_plan {
      cudnn_tensor_desc x, y;  // x: input (dx for backward data); y: output (dy for the backward passes)
      cudnn_filter_desc w;
      cudnn_convolution_desc conv;
      int algo = 0;
      std::size_t workspace = 0;
      bool staged = false;
      cudnnMathType_t math = CUDNN_FMA_MATH;
      std::vector<std::pair<int, bool>> rejected;  // (algorithm, staged) that failed with NOT_SUPPORTED
    };
    using conv_key = std::array<long long, 19>;
    std::map<conv_key, std::unique_ptr<conv_plan>>& plans() noexcept { return plans_; }
    /// Applies allow_tf32 to the cuBLAS handle when it changed.
    void apply_blas_math() {
      if (blas_tf32_ == allow_tf32) return;
      MAMMOCL_CUBLAS_CHECK(cublasSetMathMode(h_.blas, allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH),
                           "cublasSetMathMode(", allow_tf32 ? "CUBLAS_TF32_TENSOR_OP_MATH" : "CUBLAS_DEFAULT_MATH", ")");
      blas_tf32_ = allow_tf32;
    }

   private:
    void* grow(std::shared_ptr<void>& buf, std::size_t& have, std::size_t bytes) {
      if (bytes > have || !buf) {
        buf.reset();  // the old block returns to the cache first, so it can be the new one's memory
        buf = cuda_detail::caching_allocator::instance().allocate(std::max<std::size_t>(bytes, 256));
        have = std::max<std::size_t>(bytes, 256);
      }
      return buf.get();
    }
    // Destroyed last (declared first): the handles are released after the buffers below.
    struct handles {
      cudaStream_t stream = nullptr;
      cublasHandle_t blas = nullptr;
      cudnnHandle_t dnn = nullptr;
      handles() = default;
      handles(const handles&) = delete;
      handles& operator=(const handles&) = delete;
      ~handles() {
        if (dnn) cudnnDestroy(dnn);
        if (blas) cublasDestroy(blas);
        if (stream) cudaStreamDestroy(stream);
      }
    };
    handles h_;
    int device_ = 0;
    bool blas_tf32_ = false;
    std::shared_ptr<void> ws_;
    std::size_t ws_bytes_ = 0;
    std::shared_ptr<void> scratch_[4];
    std::size_t scratch_bytes_[4] = {0, 0, 0, 0};
    std::map<conv_key, std::unique_ptr<conv_plan>> plans_;
  };

  // ---------------------------------------------------------------- memory

  /// n floats of device memory from the caching allocator (uninitialised).
  static std::shared_ptr<T> allocate(std::size_t n) {
    return std::static_pointer_cast<T>(cuda_detail::caching_allocator::instance().allocate(n * sizeof(T)));
  }
  /// Bytes in use, peak in use and reserved by the caching allocator (all devices).
  static cuda_memory_stats memory_stats() { return cuda_detail::caching_allocator::instance().stats(); }
  /// Starts a new peak: peak_in_use = in_use.
  static void reset_peak_memory_stats() { cuda_detail::caching_allocator::instance().reset_peak(); }
  /// Returns the cached, unused blocks to the driver (synchronises the device).
  static void empty_cache() { cuda_detail::caching_allocator::instance().empty_cache(); }

  /// t = v (on the legacy default stream).
  static void fill(const tensor_t& t, T v) {
    if (t.numel() == 0) return;
    cuda_kernels::fill(t.data(), t.n(), t.item_size(), t.batch_stride(), v, cudaStreamLegacy);
  }
  /// dst = src (same shape; either may be strided over the batch), on the legacy default stream.
  static void copy(const tensor_t& src, const tensor_t& dst) {
    MAMMOCL_EXPECTS(src.dims() == dst.dims(), "copy: source shape ", src.dims(), " != destination shape ", dst.dims());
    copy_async(src, dst, cudaStreamLegacy, cudaMemcpyDeviceToDevice);
  }
  /// Host copy of src (contiguous at dst); waits for it.
  static void to_host(const tensor_t& src, T* dst) {
    if (src.numel() == 0) return;
    copy_async(src, tensor_t::view(dst, src.dims()), cudaStreamLegacy, cudaMemcpyDeviceToHost);
    MAMMOCL_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy), "cudaStreamSynchronize(legacy stream) after to_host of ",
                       src.dims());
  }
  /// dst = the contiguous host values at src; waits for the copy.
  static void from_host(const T* src, const tensor_t& dst) {
    if (dst.numel() == 0) return;
    copy_async(tensor_t::view(const_cast<T*>(src), dst.dims()), dst, cudaStreamLegacy, cudaMemcpyHostToDevice);
    MAMMOCL_CUDA_CHECK(cudaStreamSynchronize(cudaStreamLegacy),
                       "cudaStreamSynchronize(legacy stream) after from_host of ", dst.dims());
  }

  // ---------------------------------------------------------------- matrix products

  /// C = alpha * op(A) * op(B) + beta * C, row-major, device pointers; op(A) is MxK, op(B) is KxN.
  /// cuBLAS is column-major, so it computes Cᵀ = op(B)ᵀ op(A)ᵀ on the same memory. fp32 math unless
  /// ctx.allow_tf32.
  static void gemm(context& ctx, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                   index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    if (m == 0 || n == 0) return;
    if (k == 0) {  // cuBLAS asks lda >= rows even then; C = beta*C is all there is to do
      if (beta == T(0)) cuda_kernels::fill(c, m, n, ldc, T(0), ctx.stream());
      else cuda_kernels::axpby(m, n, T(0), c, ldc, beta, c, ldc, ctx.stream());
      return;
    }
    ctx.apply_blas_math();
    using cuda_detail::to_int;
    MAMMOCL_CUBLAS_CHECK(
        cublasSgemm(ctx.cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                    to_int(n, "gemm n"), to_int(m, "gemm m"), to_int(k, "gemm k"), &alpha, b, to_int(ldb, "gemm ldb"),
                    a, to_int(lda, "gemm lda"), &beta, c, to_int(ldc, "gemm ldc")),
        "cublasSgemm(row-major ", m, "x", n, "x", k, ", trans_a ", trans_a, ", trans_b ", trans_b, ", lda ", lda,
        ", ldb ", ldb, ", ldc ", ldc, ", alpha ", alpha, ", beta ", beta, ")");
  }

  // ---------------------------------------------------------------- convolution

  /// y = conv(x, w) (+ bias). x (N,Cin,H,W), w (Cout,Cin,kh,kw), y (N,Cout,Ho,Wo); x and y may be strided.
  static void conv2d_forward(context& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias,
                             const tensor_t& y, const conv_geometry& g) {
    check_conv("conv2d_forward", x, w, y, g);
    if (y.numel() == 0) return;
    auto& p = plan(ctx, conv_dir::forward, x, w, y, g);
    const T one = 1, zero = 0;
    for (;;) {
      void* ws = p.workspace ? ctx.workspace(p.workspace) : nullptr;
      staged_in xs(ctx, x, p.staged);
      staged_out ys(ctx, y, p.staged, false);
      const cudnnStatus_t s = cudnnConvolutionForward(ctx.cudnn(), &one, p.x, xs.ptr(), p.w, w.data(), p.conv,
                                                      static_cast<cudnnConvolutionFwdAlgo_t>(p.algo), ws, p.workspace,
                                                      &zero, p.y, ys.ptr());
      if (s == CUDNN_STATUS_NOT_SUPPORTED && reselect(ctx, conv_dir::forward, x, y, p)) continue;
      MAMMOCL_CUDNN_CHECK(s, "cudnnConvolutionForward(", describe(x, w, g, p), ")");
      ys.finish(ctx);
      break;
    }
    if (bias)
      cuda_kernels::add_channel_bias(y.data(), y.n(), y.c(), y.h() * y.w(), y.batch_stride(), bias->data(),
                                     ctx.stream());
  }

  /// dx = conv_transpose(dy, w) + beta*dx.
  static void conv2d_backward_data(context& ctx, const tensor_t& dy, const tensor_t& w, const tensor_t& dx,
                                   const conv_geometry& g, T beta) {
    check_conv("conv2d_backward_data", dx, w, dy, g);
    if (dx.numel() == 0) return;
    if (dy.numel() == 0) {
      scale_batch(ctx, dx, beta);
      return;
    }
    auto& p = plan(ctx, conv_dir::backward_data, dx, w, dy, g);
    const T one = 1;
    for (;;) {
      void* ws = p.workspace ? ctx.workspace(p.workspace) : nullptr;
      staged_in dys(ctx, dy, p.staged);
      staged_out dxs(ctx, dx, p.staged, beta != T(0));
      // A NOT_SUPPORTED call is refused before it writes, so dx still holds what beta accumulates into.
      const cudnnStatus_t s = cudnnConvolutionBackwardData(ctx.cudnn(), &one, p.w, w.data(), p.y, dys.ptr(), p.conv,
                                                           static_cast<cudnnConvolutionBwdDataAlgo_t>(p.algo), ws,
                                                           p.workspace, &beta, p.x, dxs.ptr());
      if (s == CUDNN_STATUS_NOT_SUPPORTED && reselect(ctx, conv_dir::backward_data, dx, dy, p)) continue;
      MAMMOCL_CUDNN_CHECK(s, "cudnnConvolutionBackwardData(dy ", dy.dims(), " stride ", dy.batch_stride(), ", ",
                          describe(dx, w, g, p), ", beta ", beta, ")");
      dxs.finish(ctx);
      break;
    }
  }

  /// dw = Σ_n dy_n ⋆ x_n + beta*dw;  db = Σ dy + beta*db (when db is given, summed in double).
  static void conv2d_backward_filter(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dw,
                                     const tensor_t* db, const conv_geometry& g, T beta) {
    check_conv("conv2d_backward_filter", x, dw, dy, g);
    if (x.numel() == 0 || dy.numel() == 0) {
      scale_batch(ctx, dw, beta);
    } else {
      auto& p = plan(ctx, conv_dir::backward_filter, x, dw, dy, g);
      const T one = 1;
      for (;;) {
        void* ws = p.workspace ? ctx.workspace(p.workspace) : nullptr;
        staged_in xs(ctx, x, p.staged);
        staged_in dys(ctx, dy, p.staged);
        const cudnnStatus_t s = cudnnConvolutionBackwardFilter(ctx.cudnn(), &one, p.x, xs.ptr(), p.y, dys.ptr(), p.conv,
                                                               static_cast<cudnnConvolutionBwdFilterAlgo_t>(p.algo), ws,
                                                               p.workspace, &beta, p.w, dw.data());
        if (s == CUDNN_STATUS_NOT_SUPPORTED && reselect(ctx, conv_dir::backward_filter, x, dy, p)) continue;
        MAMMOCL_CUDNN_CHECK(s, "cudnnConvolutionBackwardFilter(dy ", dy.dims(), " stride ", dy.batch_stride(), ", ",
                            describe(x, dw, g, p), ", beta ", beta, ")");
        break;
      }
    }
    if (db)
      cuda_kernels::channel_sum(dy.data(), dy.n(), dy.c(), dy.h() * dy.w(), dy.batch_stride(), db->data(), beta,
                                ctx.stream());
  }

  // ---------------------------------------------------------------- batch norm

  /// Training-mode batch norm over (N,H,W) per channel, optionally followed by ReLU.
  /// Saves the batch mean and 1/sqrt(var+eps); updates running statistics when they are given
  /// (running = (1-momentum)*running + momentum*batch, running_var with the unbiased variance).
  static void batch_norm_forward_train(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                       const tensor_t& y, const tensor_t& save_mean, const tensor_t& save_invstd,
                                       const tensor_t* running_mean, const tensor_t* running_var, double momentum,
                                       double eps, bool relu) {
    const cuda_kernels::bn_dims d = bn_dims_of(x);
    MAMMOCL_EXPECTS(d.n * d.hw > 1, "batch_norm: training needs more than one value per channel, got input ", x.dims());
    void* scratch = ctx.scratch(cuda_kernels::bn_scratch_bytes(d), 0);
    cuda_kernels::bn_forward_train(x.data(), x.batch_stride(), y.data(), y.batch_stride(), d, gamma.data(), beta.data(),
                                   save_mean.data(), save_invstd.data(), running_mean ? running_mean->data() : nullptr,
                                   running_mean && running_var ? running_var->data() : nullptr, momentum, eps, relu,
                                   scratch, ctx.stream());
  }

  /// Recomputes the training-mode output from saved statistics (memory-efficient mode). No statistics change.
  static void batch_norm_recompute(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                   const tensor_t& save_mean, const tensor_t& save_invstd, const tensor_t& y, bool relu) {
    cuda_kernels::bn_forward_apply(x.data(), x.batch_stride(), y.data(), y.batch_stride(), bn_dims_of(x), gamma.data(),
                                   beta.data(), save_mean.data(), save_invstd.data(), false, 0.0, relu, ctx.stream());
  }

  /// Inference-mode batch norm with the running statistics, optionally followed by ReLU.
  static void batch_norm_forward_eval(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                      const tensor_t& running_mean, const tensor_t& running_var, double eps,
                                      const tensor_t& y, bool relu) {
    cuda_kernels::bn_forward_apply(x.data(), x.batch_stride(), y.data(), y.batch_stride(), bn_dims_of(x), gamma.data(),
                                   beta.data(), running_mean.data(), running_var.data(), true, eps, relu, ctx.stream());
  }

  /// Backward of training-mode batch norm (with the ReLU that followed it when `relu`; its mask is
  /// recomputed from x and the saved statistics). With x̂ = (x-μ)·invstd and dz = dy·[y>0]:
  ///   dβ = Σ dz,  dγ = Σ dz·x̂,  dx = γ·invstd·(dz − dβ/M − x̂·dγ/M).
  /// dx = that + dx_beta·dx; dgamma/dbeta = that + param_beta·previous.
  static void batch_norm_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                                  const tensor_t& beta, const tensor_t& save_mean, const tensor_t& save_invstd,
                                  bool relu, const tensor_t& dx, T dx_beta, const tensor_t& dgamma,
                                  const tensor_t& dbeta, T param_beta) {
    const cuda_kernels::bn_dims d = bn_dims_of(x);
    void* scratch = ctx.scratch(cuda_kernels::bn_scratch_bytes(d), 0);
    cuda_kernels::bn_backward(x.data(), x.batch_stride(), dy.data(), dy.batch_stride(), dx.data(), dx.batch_stride(), d,
                              gamma.data(), beta.data(), save_mean.data(), save_invstd.data(), relu, dx_beta,
                              dgamma.data(), dbeta.data(), param_beta, scratch, ctx.stream());
  }

  /// Backward of inference-mode batch norm (frozen statistics): dx = dy·γ/sqrt(var+eps) (+ ReLU mask).
  static void batch_norm_backward_eval(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                                       const tensor_t& beta, const tensor_t& running_mean,
                                       const tensor_t& running_var, double eps, bool relu, const tensor_t& dx,
                                       T dx_beta, const tensor_t& dgamma, const tensor_t& dbeta, T param_beta) {
    const cuda_kernels::bn_dims d = bn_dims_of(x);
    void* scratch = ctx.scratch(cuda_kernels::bn_scratch_bytes(d), 0);
    cuda_kernels::bn_backward_eval(x.data(), x.batch_stride(), dy.data(), dy.batch_stride(), dx.data(),
                                   dx.batch_stride(), d, gamma.data(), beta.data(), running_mean.data(),
                                   running_var.data(), eps, relu, dx_beta, dgamma.data(), dbeta.data(), param_beta,
                                   scratch, ctx.stream());
  }

  // ---------------------------------------------------------------- concatenation

  /// out = channel-concat[inputs...] of NCHW tensors with equal N, H, W (out may be strided): one 2-D
  /// copy per input straight into its channel range of out.
  static void concat_channels(context& ctx, std::span<const tensor_t> inputs, const tensor_t& out) {
    index_t c0 = 0;
    for (const auto& t : inputs) {
      MAMMOCL_EXPECTS(t.rank() == 4 && t.n() == out.n() && t.h() == out.h() && t.w() == out.w(),
                      "concat_channels: input ", t.dims(), " does not match the output ", out.dims(), " in N, H or W");
      MAMMOCL_EXPECTS(c0 + t.c() <= out.c(), "concat_channels: the inputs hold more channels than the output ", out.dims());
      copy_async(t, out.channels(c0, t.c()), ctx.stream(), cudaMemcpyDeviceToDevice);
      c0 += t.c();
    }
    MAMMOCL_EXPECTS(c0 == out.c(), "concat_channels: the inputs hold ", c0, " channels, the output ", out.c());
  }
  /// The backward of concat_channels: outputs[i] = the matching channel range of dy (+ beta·outputs[i]).
  static void split_channels(context& ctx, const tensor_t& dy, std::span<const tensor_t> outputs, T beta) {
    index_t c0 = 0;
    for (const auto& t : outputs) {
      MAMMOCL_EXPECTS(t.rank() == 4 && t.n() == dy.n() && t.h() == dy.h() && t.w() == dy.w() && c0 + t.c() <= dy.c(),
                      "split_channels: output ", t.dims(), " does not fit in channels [", c0, ",", c0 + t.c(), ") of ", dy.dims());
      const tensor_t src = dy.channels(c0, t.c());
      if (beta == T(0)) copy_async(src, t, ctx.stream(), cudaMemcpyDeviceToDevice);
      else if (t.numel() > 0)
        cuda_kernels::axpby(t.n(), t.item_size(), T(1), src.data(), src.batch_stride(), beta, t.data(),
                            t.batch_stride(), ctx.stream());
      c0 += t.c();
    }
    MAMMOCL_EXPECTS(c0 == dy.c(), "split_channels: the outputs hold ", c0, " channels, dy ", dy.c());
  }

  // ---------------------------------------------------------------- activations

  static void relu_forward(context& ctx, const tensor_t& x, const tensor_t& y) {
    MAMMOCL_EXPECTS(x.dims() == y.dims(), "elementwise op: shapes differ, ", x.dims(), " vs ", y.dims());
    cuda_kernels::relu_forward(x.data(), x.batch_stride(), y.data(), y.batch_stride(), x.n(), x.item_size(),
                               ctx.stream());
  }
  /// dx = dy·[y > 0] (+ beta·dx).
  static void relu_backward(context& ctx, const tensor_t& y, const tensor_t& dy, const tensor_t& dx, T beta) {
    cuda_kernels::relu_backward(y.data(), y.batch_stride(), dy.data(), dy.batch_stride(), dx.data(), dx.batch_stride(),
                                y.n(), y.item_size(), beta, ctx.stream());
  }

  // ---------------------------------------------------------------- pooling

  /// Max pooling (floor mode, padding counts as -inf); the first maximum of a window wins, as in PyTorch.
  static void max_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, const pool_geometry& g) {
    cuda_kernels::max_pool_forward(x.data(), x.batch_stride(), y.data(), y.batch_stride(), pool_dims_of(x, y, g),
                                   ctx.stream());
  }
  /// dx = scatter of dy to each window's first maximum (+ beta·dx).
  static void max_pool_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dx,
                                const pool_geometry& g, T beta) {
    cuda_kernels::max_pool_backward(x.data(), x.batch_stride(), dy.data(), dy.batch_stride(), dx.data(),
                                    dx.batch_stride(), pool_dims_of(x, dy, g), beta, ctx.stream());
  }
  /// Average pooling (floor mode); padded positions count in the divisor (PyTorch's count_include_pad).
  static void avg_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, const pool_geometry& g) {
    cuda_kernels::avg_pool_forward(x.data(), x.batch_stride(), y.data(), y.batch_stride(), pool_dims_of(x, y, g),
                                   ctx.stream());
  }
  static void avg_pool_backward(context& ctx, const tensor_t& dy, const tensor_t& dx, const pool_geometry& g, T beta) {
    cuda_kernels::avg_pool_backward(dy.data(), dy.batch_stride(), dx.data(), dx.batch_stride(), pool_dims_of(dx, dy, g),
                                    beta, ctx.stream());
  }
  /// (N,C,H,W) -> (N,C): the mean of each plane (summed in double), optionally of ReLU(x).
  static void global_avg_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, bool relu) {
    cuda_kernels::global_avg_pool_forward(x.data(), x.n(), x.c(), x.h() * x.w(), x.batch_stride(), y.data(), relu,
                                          ctx.stream());
  }
  /// dx = dy/(H·W) broadcast over each plane (masked by [x > 0] when relu) (+ beta·dx).
  static void global_avg_pool_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dx,
                                       bool relu, T beta) {
    cuda_kernels::global_avg_pool_backward(x.data(), x.batch_stride(), dy.data(), dx.data(), dx.batch_stride(), dx.n(),
                                           dx.c(), dx.h() * dx.w(), relu, beta, ctx.stream());
  }

  // ---------------------------------------------------------------- rows (N,F)

  /// y(i,:) += b for every row i.
  static void add_row_broadcast(context& ctx, const tensor_t& y, const tensor_t& b) {
    cuda_kernels::add_row_broadcast(y.data(), y.n(), y.item_size(), y.batch_stride(), b.data(), ctx.stream());
  }
  /// out = Σ_rows a + beta·out (in double).
  static void sum_rows(context& ctx, const tensor_t& a, const tensor_t& out, T beta) {
    cuda_kernels::sum_rows(a.data(), a.n(), a.item_size(), a.batch_stride(), out.data(), beta, ctx.stream());
  }
  /// Row-wise log-softmax of (N,K) logits: out = x - max - log Σ exp(x - max).
  static void log_softmax_rows(context& ctx, const tensor_t& x, const tensor_t& out) {
    cuda_kernels::log_softmax_rows(x.data(), x.batch_stride(), out.data(), out.batch_stride(), x.n(), x.item_size(),
                                   false, ctx.stream());
  }
  /// Row-wise softmax: exp of log_softmax_rows.
  static void softmax_rows(context& ctx, const tensor_t& x, const tensor_t& out) {
    cuda_kernels::log_softmax_rows(x.data(), x.batch_stride(), out.data(), out.batch_stride(), x.n(), x.item_size(),
                                   true, ctx.stream());
  }

  // ---------------------------------------------------------------- elementwise

  /// y = a·x + b·y.
  static void axpby(context& ctx, T a, const tensor_t& x, T b, const tensor_t& y) {
    MAMMOCL_EXPECTS(x.numel() == y.numel(), "axpby: sizes differ, ", x.dims(), " vs ", y.dims());
    if (x.numel() == 0) return;
    if (x.contiguous() && y.contiguous())
      cuda_kernels::axpby(1, x.numel(), a, x.data(), x.numel(), b, y.data(), y.numel(), ctx.stream());
    else {
      MAMMOCL_EXPECTS(x.dims() == y.dims(), "axpby: a strided operand needs equal shapes, got ", x.dims(), " and ", y.dims());
      cuda_kernels::axpby(x.n(), x.item_size(), a, x.data(), x.batch_stride(), b, y.data(), y.batch_stride(), ctx.stream());
    }
  }
  static void scale(context& ctx, const tensor_t& x, T a) { axpby(ctx, T(0), x, a, x); }
  /// Σ x (in double); waits for the result.
  static double sum(context& ctx, const tensor_t& x) {
    if (x.numel() == 0) return 0.0;
    char* s = static_cast<char*>(ctx.scratch(cuda_kernels::reduce_scratch_bytes() + 256, 1));
    auto* result = reinterpret_cast<double*>(s + cuda_kernels::reduce_scratch_bytes());
    cuda_kernels::sum(x.data(), x.n(), x.item_size(), x.batch_stride(), s, result, ctx.stream());
    return read_back<double>(ctx, result, "sum");
  }
  /// Σ x·y (in double); waits for the result.
  static double dot(context& ctx, const tensor_t& x, const tensor_t& y) {
    MAMMOCL_EXPECTS(x.numel() == y.numel() && x.contiguous() && y.contiguous(), "dot: needs two contiguous tensors of one size, got ", x.dims(), " and ", y.dims());
    if (x.numel() == 0) return 0.0;
    char* s = static_cast<char*>(ctx.scratch(cuda_kernels::reduce_scratch_bytes() + 256, 1));
    auto* result = reinterpret_cast<double*>(s + cuda_kernels::reduce_scratch_bytes());
    cuda_kernels::dot(x.data(), y.data(), x.numel(), s, result, ctx.stream());
    return read_back<double>(ctx, result, "dot");
  }
  /// True when every element is finite; waits for the result.
  static bool all_finite(context& ctx, const tensor_t& x) {
    if (x.numel() == 0) return true;
    auto* bad = static_cast<unsigned int*>(ctx.scratch(sizeof(unsigned int), 2));
    MAMMOCL_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(unsigned int), ctx.stream()), "cudaMemsetAsync(4 B)");
    cuda_kernels::count_non_finite(x.data(), x.n(), x.item_size(), x.batch_stride(), bad, ctx.stream());
    return read_back<unsigned int>(ctx, bad, "all_finite") == 0;
  }

  /// One SGD step, PyTorch semantics: d = g + wd·p; buf = momentum·buf + (1-dampening)·d (buf = d on the
  /// first step); d = nesterov ? d + momentum·buf : buf (when momentum > 0); p -= lr·d.
  static void sgd_step(context& ctx, const tensor_t& p, const tensor_t& g, const tensor_t* buf, T lr, T momentum,
                       T dampening, T weight_decay, bool nesterov, bool first) {
    cuda_kernels::sgd_step(p.data(), g.data(), buf ? buf->data() : nullptr, p.numel(), lr, momentum, dampening,
                           weight_decay, nesterov, first, ctx.stream());
  }
  /// One Adam/AdamW step, PyTorch semantics (step counts from 1). Adam adds wd·p to the gradient;
  /// AdamW (decoupled) multiplies p by (1 - lr·wd) first.
  static void adam_step(context& ctx, const tensor_t& p, const tensor_t& g, const tensor_t& m, const tensor_t& v,
                        T lr, T beta1, T beta2, T eps, T weight_decay, bool decoupled, long step) {
    const T bc1 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta1), static_cast<double>(step)));
    const T bc2 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta2), static_cast<double>(step)));
    cuda_kernels::adam_step(p.data(), g.data(), m.data(), v.data(), p.numel(), lr, beta1, beta2, eps, weight_decay,
                            decoupled, lr / bc1, std::sqrt(bc2), ctx.stream());
  }

  // ---------------------------------------------------------------- SupCon and the VOI LUT

  /// The Supervised Contrastive loss of losses::supcon::compute (same algebra, view-major order, errors and
  /// messages) on device features (B,V,D), in double on the GPU. mask: host B×B row-major 0/1 sample-level
  /// positives; all_views_anchor: contrast_mode::all (else only view 0 anchors). Writes ∂L/∂features into
  /// *grad when grad is not null (reallocated to the features' shape when it differs) and the anchor
  /// losses into *anchor_losses (host) when not null. Waits for the loss.
  static double supcon(context& ctx, const tensor_t& features, const std::vector<double>& mask, double temperature,
                       double base_temperature, bool all_views_anchor, bool normalize, tensor_t* grad,
                       std::vector<double>* anchor_losses) {
    MAMMOCL_CHECK(std::isfinite(temperature) && temperature > 0, config_error, "supcon: temperature ", temperature,
                  " is not a finite positive number");
    MAMMOCL_CHECK(std::isfinite(base_temperature) && base_temperature > 0, config_error, "supcon: base_temperature ",
                  base_temperature, " is not a finite positive number");
    MAMMOCL_EXPECTS(features.rank() == 3, "supcon: features must be (B, V, D), got ", features.dims());
    MAMMOCL_EXPECTS(features.dim(0) >= 1 && features.dim(1) >= 1 && features.dim(2) >= 1, "supcon: features ",
                    features.dims(), " must have B, V and D >= 1");
    const index_t nb = features.dim(0), nv = features.dim(1), d = features.dim(2), n = nv * nb;
    const index_t na = all_views_anchor ? n : nb;
    MAMMOCL_EXPECTS(static_cast<index_t>(mask.size()) == nb * nb, "supcon: mask must be (", nb, ",", nb,
                    ") for features ", features.dims(), ", got ", mask.size(), " values");
    const auto sz = [](index_t k) { return static_cast<std::size_t>(k); };
    // Device scratch (slot 3): z, norm, mask, g, h, dz, ell (doubles), then the per-row bad counts.
    const std::size_t doubles = sz(n * d) * 2 + sz(n) + sz(nb * nb) + sz(na * n) + sz(n * n) + sz(na);
    char* base = static_cast<char*>(ctx.scratch(doubles * sizeof(double) + sz(n) * sizeof(unsigned int) + 256, 3));
    double* z = reinterpret_cast<double*>(base);
    double* norm = z + n * d;
    double* mdev = norm + n;
    double* g = mdev + nb * nb;
    double* h = g + na * n;
    double* dz = h + n * n;
    double* ell = dz + n * d;
    auto* bad = reinterpret_cast<unsigned int*>(ell + na);
    const cudaStream_t st = ctx.stream();
    MAMMOCL_CUDA_CHECK(cudaMemcpyAsync(mdev, mask.data(), sz(nb * nb) * sizeof(double), cudaMemcpyHostToDevice, st),
                       "cudaMemcpyAsync(supcon mask ", nb, "x", nb, ", host to device)");
    cuda_kernels::supcon_prepare(features.data(), features.batch_stride(), nb, nv, d, normalize, z, norm, bad, st);
    std::vector<double> norms(sz(n));
    std::vector<unsigned int> bads(sz(n));
    MAMMOCL_CUDA_CHECK(cudaMemcpyAsync(norms.data(), norm, sz(n) * sizeof(double), cudaMemcpyDeviceToHost, st),
                       "cudaMemcpyAsync(supcon norms, ", n, " doubles, device to host)");
    MAMMOCL_CUDA_CHECK(cudaMemcpyAsync(bads.data(), bad, sz(n) * sizeof(unsigned int), cudaMemcpyDeviceToHost, st),
                       "cudaMemcpyAsync(supcon finiteness, ", n, " counts, device to host)");
    ctx.synchronize();
    constexpr double norm_tolerance = 1e-4;  // losses::supcon::norm_tolerance
    for (index_t v = 0; v < nv; ++v)
      for (index_t b = 0; b < nb; ++b) {
        const index_t a = v * nb + b;
        if (bads[sz(a)] != 0) {  // the row's first non-finite component, named as the CPU backend does
          std::vector<T> row(sz(d));
          MAMMOCL_CUDA_CHECK(cudaMemcpy(row.data(), features.item(b) + v * d, sz(d) * sizeof(T), cudaMemcpyDeviceToHost),
                             "cudaMemcpy(supcon feature row ", a, ", device to host)");
          for (index_t k = 0; k < d; ++k)
            MAMMOCL_CHECK(std::isfinite(static_cast<double>(row[sz(k)])), numeric_error, "supcon: feature (sample ", b,
                          ", view ", v, ", component ", k, ") is ", static_cast<double>(row[sz(k)]));
        }
        if (!normalize) {
          const double r = norms[sz(a)];
          MAMMOCL_EXPECTS(std::abs(r - 1.0) <= norm_tolerance, "supcon: feature row ", a, " (sample ", b, ", view ", v,
                          ") has L2 norm ", r, ", expected 1 within ", norm_tolerance,
                          "; normalise the features or set options::normalize");
        }
      }
    const double scale = temperature / base_temperature;
    dgemm(ctx, false, true, na, n, d, 1.0 / temperature, z, d, z, d, 0.0, g, n);  // S = Z_I Zᵀ / τ
    cuda_kernels::supcon_rows(g, na, n, nb, mdev, scale, ell, st);
    std::vector<double> ells(sz(na));
    MAMMOCL_CUDA_CHECK(cudaMemcpyAsync(ells.data(), ell, sz(na) * sizeof(double), cudaMemcpyDeviceToHost, st),
                       "cudaMemcpyAsync(supcon anchor losses, ", na, " doubles, device to host)");
    ctx.synchronize();
    double total = 0;
    for (double l : ells) total += l;
    if (anchor_losses) *anchor_losses = ells;
    const double loss = total / static_cast<double>(na);
    MAMMOCL_CHECK(std::isfinite(loss), numeric_error, "supcon: the loss is not finite (", loss, ")");
    if (!grad) return loss;
    // ∂L/∂z = H Z / (|I| τ) with H = G + Gᵀ, G the |I|×N matrix g padded with zero rows to N×N.
    cuda_kernels::supcon_symmetrize(g, na, n, h, st);
    dgemm(ctx, false, false, n, d, n, 1.0 / (static_cast<double>(na) * temperature), h, n, z, d, 0.0, dz, d);
    if (grad->dims() != features.dims()) *grad = tensor_t(features.dims());
    cuda_kernels::supcon_gradient(dz, z, norm, nb, nv, d, normalize, grad->data(), grad->batch_stride(), st);
    return loss;
  }

  /// y = (ymax - ymin)/(1 + exp(-4(x - center)/width)) + ymin elementwise, in double: the DICOM SIGMOID VOI
  /// LUT of data::voi_sigmoid_unchecked (no check of the window: the caller's, as there).
  static void voi_lut_sigmoid(context& ctx, const tensor_t& x, const tensor_t& y, double center, double width,
                              double ymin, double ymax) {
    MAMMOCL_EXPECTS(x.dims() == y.dims(), "voi_lut_sigmoid: input ", x.dims(), " and output ", y.dims(), " differ");
    cuda_kernels::voi_sigmoid(x.data(), x.batch_stride(), y.data(), y.batch_stride(), x.n(), x.item_size(), center,
                              width, ymin, ymax, ctx.stream());
  }

 private:
  enum class conv_dir { forward = 0, backward_data = 1, backward_filter = 2 };

  static void check_conv(const char* op, const tensor_t& x, const tensor_t& w, const tensor_t& y,
                         const conv_geometry& g) {
    MAMMOCL_EXPECTS(x.rank() == 4 && w.rank() == 4 && y.rank() == 4, op, ": needs rank-4 tensors, got x ", x.dims(),
                    ", w ", w.dims(), ", y ", y.dims());
    MAMMOCL_EXPECTS(w.dim(1) == x.c() && w.dim(2) == g.kh && w.dim(3) == g.kw, op, ": filter ", w.dims(),
                    " does not match input ", x.dims(), " and kernel ", g.kh, "x", g.kw);
    MAMMOCL_EXPECTS(y.n() == x.n() && y.c() == w.dim(0) && y.h() == g.out_h(x.h()) && y.w() == g.out_w(x.w()), op,
                    ": output ", y.dims(), " does not match input ", x.dims(), ", filter ", w.dims(), ", stride ",
                    g.stride, ", pad ", g.pad);
    MAMMOCL_CHECK(w.contiguous(), shape_error, op, ": the filter must be contiguous");
  }

  static std::string describe(const tensor_t& x, const tensor_t& w, const conv_geometry& g,
                              const typename context::conv_plan& p) {
    return detail::concat("x ", x.dims(), " stride ", x.batch_stride(), ", w ", w.dims(), ", pad ", g.pad, ", stride ",
                          g.stride, ", algo ", p.algo, ", workspace ", p.workspace, " B", p.staged ? ", staged" : "",
                          p.math == CUDNN_FMA_MATH ? ", FMA math" : ", default math");
  }

  static void set_tensor(cudnnTensorDescriptor_t d, const tensor_t& t, bool packed) {
    using cuda_detail::to_int;
    const int n = to_int(t.n(), "tensor N"), c = to_int(t.c(), "tensor C"), h = to_int(t.h(), "tensor H"),
              w = to_int(t.w(), "tensor W");
    const int ns = to_int(packed ? t.item_size() : t.batch_stride(), "tensor batch stride");
    MAMMOCL_CUDNN_CHECK(cudnnSetTensor4dDescriptorEx(d, CUDNN_DATA_FLOAT, n, c, h, w, ns, h * w, w, 1),
                        "cudnnSetTensor4dDescriptorEx(", t.dims(), ", strides ", ns, ",", h * w, ",", w, ",1)");
  }

  /// The convolution plan of (direction, shapes, strides, geometry, math) from the context's cache, chosen
  /// on first use with cuDNN's heuristics (cudnnGet*Algorithm_v7): the best-ranked algorithm that supports
  /// the descriptors within ctx.workspace_limit. Heuristics, not cudnnFind*: they run nothing, so they
  /// cannot clobber dx or dw that a beta = 1 call accumulates into, they need no trial buffers (no extra
  /// peak memory), and PyTorch eager uses them too (cudnn.benchmark = False).
  static typename context::conv_plan& plan(context& ctx, conv_dir dir, const tensor_t& x, const tensor_t& w,
                                           const tensor_t& y, const conv_geometry& g) {
    const typename context::conv_key key{static_cast<long long>(dir), x.n(), x.c(), x.h(), x.w(), x.batch_stride(),
                                         w.dim(0), w.dim(2), w.dim(3), y.c(), y.h(), y.w(), y.batch_stride(),
                                         g.stride, g.pad, ctx.allow_tf32 ? 1 : 0, x.contiguous(), y.contiguous(),
                                         static_cast<long long>(ctx.workspace_limit)};
    auto& plans = ctx.plans();
    if (auto it = plans.find(key); it != plans.end()) return *it->second;
    auto p = std::make_unique<typename context::conv_plan>();
    using cuda_detail::to_int;
    MAMMOCL_CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(w.dim(0), "filter K"),
                                                   to_int(w.dim(1), "filter C"), to_int(w.dim(2), "filter kh"),
                                                   to_int(w.dim(3), "filter kw")),
                        "cudnnSetFilter4dDescriptor(", w.dims(), ")");
    const int pad = to_int(g.pad, "pad"), stride = to_int(g.stride, "stride");
    MAMMOCL_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, pad, pad, stride, stride, 1, 1, CUDNN_CROSS_CORRELATION,
                                                        CUDNN_DATA_FLOAT),
                        "cudnnSetConvolution2dDescriptor(pad ", pad, ", stride ", stride, ", cross-correlation, float)");
    if (select(ctx, dir, x, y, *p)) return *plans.emplace(key, std::move(p)).first->second;
    MAMMOCL_THROW(device_error, "cudnnGetConvolution", dir == conv_dir::forward ? "Forward" : dir == conv_dir::backward_data ? "BackwardData" : "BackwardFilter",
                  "Algorithm_v7(x ", x.dims(), " stride ", x.batch_stride(), ", w ", w.dims(), ", y ", y.dims(),
                  " stride ", y.batch_stride(), ", pad ", g.pad, ", stride ", g.stride,
                  "): no algorithm supports this convolution within the workspace limit of ", ctx.workspace_limit,
                  " B (context::workspace_limit)");
  }

  /// Sets p's tensor descriptors and algorithm: strided operands as they are first, packed copies when no
  /// algorithm takes the strides. False when nothing fits.
  static bool select(context& ctx, conv_dir dir, const tensor_t& x, const tensor_t& y, typename context::conv_plan& p) {
    const bool strided = !x.contiguous() || !y.contiguous();
    for (int attempt = 0; attempt < (strided ? 2 : 1); ++attempt) {
      const bool packed = attempt == 1;
      set_tensor(p.x, x, packed);
      set_tensor(p.y, y, packed);
      if (choose(ctx, dir, p, packed)) {
        p.staged = packed;
        return true;
      }
    }
    return false;
  }
  /// After a call refused p's algorithm with CUDNN_STATUS_NOT_SUPPORTED (the heuristics and the workspace
  /// query accepted it): excludes it and selects again. False (the caller reports the status) when no
  /// other algorithm is left.
  static bool reselect(context& ctx, conv_dir dir, const tensor_t& x, const tensor_t& y,
                       typename context::conv_plan& p) {
    p.rejected.emplace_back(p.algo, p.staged);
    const int algo = p.algo;
    const bool staged = p.staged;
    if (select(ctx, dir, x, y, p)) return true;
    p.algo = algo;  // the refused one, for the error message; descriptors back to match it
    p.staged = staged;
    set_tensor(p.x, x, staged);
    set_tensor(p.y, y, staged);
    return false;
  }

  /// Picks the first heuristic result that cuDNN accepts with p's descriptors; false when none does.
  static bool choose(context& ctx, conv_dir dir, typename context::conv_plan& p, bool packed) {
    const cudnnMathType_t base_math = ctx.allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
    MAMMOCL_CUDNN_CHECK(cudnnSetConvolutionMathType(p.conv, base_math), "cudnnSetConvolutionMathType(", base_math, ")");
    auto try_algo = [&](int algo, cudnnMathType_t math) {
      for (const auto& r : p.rejected)
        if (r.first == algo && r.second == packed) return false;
      // Without TF32 every algorithm runs in FMA math; with it, the math type the heuristic ranked.
      const cudnnMathType_t use = ctx.allow_tf32 ? math : CUDNN_FMA_MATH;
      if (cudnnSetConvolutionMathType(p.conv, use) != CUDNN_STATUS_SUCCESS) return false;
      std::size_t bytes = 0;
      cudnnStatus_t s;
      if (dir == conv_dir::forward)
        s = cudnnGetConvolutionForwardWorkspaceSize(ctx.cudnn(), p.x, p.w, p.conv, p.y,
                                                    static_cast<cudnnConvolutionFwdAlgo_t>(algo), &bytes);
      else if (dir == conv_dir::backward_data)
        s = cudnnGetConvolutionBackwardDataWorkspaceSize(ctx.cudnn(), p.w, p.y, p.conv, p.x,
                                                         static_cast<cudnnConvolutionBwdDataAlgo_t>(algo), &bytes);
      else
        s = cudnnGetConvolutionBackwardFilterWorkspaceSize(ctx.cudnn(), p.x, p.y, p.conv, p.w,
                                                           static_cast<cudnnConvolutionBwdFilterAlgo_t>(algo), &bytes);
      if (s != CUDNN_STATUS_SUCCESS || bytes > ctx.workspace_limit) return false;
      p.algo = algo;
      p.workspace = bytes;
      p.math = use;
      return true;
    };
    int returned = 0;
    if (dir == conv_dir::forward) {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      MAMMOCL_CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(ctx.cudnn(), p.x, p.w, p.conv, p.y,
                                                                 CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf),
                          "cudnnGetConvolutionForwardAlgorithm_v7()");
      for (int i = 0; i < returned; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && try_algo(perf[i].algo, perf[i].mathType)) return true;
    } else if (dir == conv_dir::backward_data) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      MAMMOCL_CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(ctx.cudnn(), p.w, p.y, p.conv, p.x,
                                                                      CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned, perf),
                          "cudnnGetConvolutionBackwardDataAlgorithm_v7()");
      for (int i = 0; i < returned; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && try_algo(perf[i].algo, perf[i].mathType)) return true;
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      MAMMOCL_CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(ctx.cudnn(), p.x, p.y, p.conv, p.w,
                                                                        CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &returned,
                                                                        perf),
                          "cudnnGetConvolutionBackwardFilterAlgorithm_v7()");
      for (int i = 0; i < returned; ++i)
        if (perf[i].status == CUDNN_STATUS_SUCCESS && try_algo(perf[i].algo, perf[i].mathType)) return true;
    }
    return false;
  }

  /// An input operand as cuDNN gets it: the tensor itself, or a packed copy when the plan is staged.
  struct staged_in {
    tensor_t packed;
    const tensor_t* src;
    staged_in(context& ctx, const tensor_t& t, bool staged) : src(&t) {
      if (staged && !t.contiguous()) {
        packed = tensor_t(t.dims());
        copy_async(t, packed, ctx.stream(), cudaMemcpyDeviceToDevice);
        src = &packed;
      }
    }
    [[nodiscard]] T* ptr() const { return src->data(); }
  };
  /// An output operand: written in place, or into a packed buffer (holding the old values when the call
  /// accumulates) that finish() copies back.
  struct staged_out {
    tensor_t packed;
    const tensor_t* dst;
    staged_out(context& ctx, const tensor_t& t, bool staged, bool accumulate) : dst(&t) {
      if (staged && !t.contiguous()) {
        packed = tensor_t(t.dims());
        if (accumulate) copy_async(t, packed, ctx.stream(), cudaMemcpyDeviceToDevice);
      }
    }
    [[nodiscard]] T* ptr() const { return packed.defined() && packed.numel() ? packed.data() : dst->data(); }
    void finish(context& ctx) {
      if (packed.defined() && packed.numel()) copy_async(packed, *dst, ctx.stream(), cudaMemcpyDeviceToDevice);
    }
  };

  /// t = beta*t over a (possibly strided) tensor (fill with 0 when beta = 0, so NaN does not survive).
  static void scale_batch(context& ctx, const tensor_t& t, T beta) {
    if (t.numel() == 0 || beta == T(1)) return;
    if (beta == T(0)) cuda_kernels::fill(t.data(), t.n(), t.item_size(), t.batch_stride(), T(0), ctx.stream());
    else cuda_kernels::axpby(t.n(), t.item_size(), T(0), t.data(), t.batch_stride(), beta, t.data(), t.batch_stride(),
                             ctx.stream());
  }

  static void copy_async(const tensor_t& src, const tensor_t& dst, cudaStream_t stream, cudaMemcpyKind kind) {
    if (src.numel() == 0) return;
    const std::size_t k = sizeof(T) * static_cast<std::size_t>(src.item_size());
    if (src.contiguous() && dst.contiguous()) {
      MAMMOCL_CUDA_CHECK(cudaMemcpyAsync(dst.data(), src.data(), k * static_cast<std::size_t>(src.n()), kind, stream),
                         "cudaMemcpyAsync(", src.dims(), ", ", k * static_cast<std::size_t>(src.n()), " B, ", kind_name(kind), ")");
      return;
    }
    MAMMOCL_CUDA_CHECK(cudaMemcpy2DAsync(dst.data(), sizeof(T) * static_cast<std::size_t>(dst.batch_stride()), src.data(),
                                         sizeof(T) * static_cast<std::size_t>(src.batch_stride()), k,
                                         static_cast<std::size_t>(src.n()), kind, stream),
                       "cudaMemcpy2DAsync(", src.dims(), ", source stride ", src.batch_stride(), ", destination stride ",
                       dst.batch_stride(), ", ", kind_name(kind), ")");
  }
  static const char* kind_name(cudaMemcpyKind k) {
    return k == cudaMemcpyHostToDevice ? "host to device" : k == cudaMemcpyDeviceToHost ? "device to host" : "device to device";
  }

  template <class V>
  static V read_back(context& ctx, const V* dev, const char* op) {
    V v{};
    MAMMOCL_CUDA_CHECK(cudaMemcpyAsync(&v, dev, sizeof(V), cudaMemcpyDeviceToHost, ctx.stream()), "cudaMemcpyAsync(",
                       op, " result, ", sizeof(V), " B, device to host)");
    ctx.synchronize();
    return v;
  }

  /// Row-major double GEMM (SupCon) through cuBLAS's column-major API, as gemm().
  static void dgemm(context& ctx, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, double alpha,
                    const double* a, index_t lda, const double* b, index_t ldb, double beta, double* c, index_t ldc) {
    using cuda_detail::to_int;
    MAMMOCL_CUBLAS_CHECK(
        cublasDgemm(ctx.cublas(), trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
                    to_int(n, "gemm n"), to_int(m, "gemm m"), to_int(k, "gemm k"), &alpha, b, to_int(ldb, "gemm ldb"), a,
                    to_int(lda, "gemm lda"), &beta, c, to_int(ldc, "gemm ldc")),
        "cublasDgemm(row-major ", m, "x", n, "x", k, ", trans_a ", trans_a, ", trans_b ", trans_b, ")");
  }

  static cuda_kernels::bn_dims bn_dims_of(const tensor_t& x) {
    MAMMOCL_EXPECTS(x.rank() >= 2 && x.c() > 0, "batch_norm: needs (N,C) or (N,C,H,W) input, got ", x.dims());
    return {x.n(), x.c(), x.item_size() / x.c()};
  }
  static cuda_kernels::pool_dims pool_dims_of(const tensor_t& x, const tensor_t& y, const pool_geometry& g) {
    return {x.n(), x.c(), x.h(), x.w(), y.h(), y.w(), g.k, g.stride, g.pad};
  }
};

using cuda_backend = cuda_backend_t<float>;

static_assert(Backend<cuda_backend>, "mammocl: cuda_backend must satisfy the Backend concept.");

}  // namespace mammocl

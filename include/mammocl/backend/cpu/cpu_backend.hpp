#pragma once
/// The CPU backend: MammoCL's packed GEMM kernel (or Eigen's, with MAMMOCL_CPU_EIGEN_GEMM) for matrix
/// products, OpenMP threads for everything else, float or double.
///
/// `cpu_backend_t<T>` is a policy class: it owns memory (64-byte aligned host buffers) and the primitive
/// operations the layers call. It is where correctness is defined: every other backend is tested op by
/// op against it. All operations are deterministic for a given thread count: every output element and
/// every reduction is computed by one thread in a fixed order.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <span>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "mammocl/backend/cpu/block_cache.hpp"
#include "mammocl/backend/cpu/gemm.hpp"
#ifdef MAMMOCL_CPU_EIGEN_GEMM
#include <Eigen/Core>
#endif
#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/core/tensor.hpp"

namespace mammocl {

template <class T>
struct cpu_backend_t {
  using scalar_type = T;
  static constexpr bool is_host = true;
  static constexpr const char* name = "cpu";
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>,
                "mammocl: the CPU backend works in float or double; pick one of the two.");

  /// Per-thread-group state: the number of threads and reusable scratch memory.
  class context {
   public:
    explicit context(int threads = 0) {
#ifdef _OPENMP
      threads_ = threads > 0 ? threads : omp_get_max_threads();
#else
      threads_ = 1;
      (void)threads;
#endif
#ifdef MAMMOCL_CPU_EIGEN_GEMM
      Eigen::setNbThreads(1);  // gemm() splits the work across threads itself
#endif
    }
    [[nodiscard]] int threads() const noexcept { return threads_; }
    /// Scratch space of at least n elements, valid until the next call with the same slot.
    T* scratch(std::size_t n, int slot = 0) {
      auto& v = scratch_[slot];
      if (v.size() < n) v.assign(n, T(0));
      return v.data();
    }
    /// Frees the scratch buffers.
    void release_scratch() {
      for (auto& v : scratch_) std::vector<T>().swap(v);
    }

   private:
    int threads_ = 1;
    std::vector<T> scratch_[3];
  };

  using tensor_t = tensor<cpu_backend_t>;
  /// MammoCL's single-threaded GEMM kernel (backend/cpu/gemm.hpp).
  using kernel = detail::gemm_kernel<T>;
  /// A per-channel map max(0, x·scale + shift) applied to a convolution's input as it is packed (a folded
  /// batch norm and ReLU; see conv2d_affine_relu_forward).
  using input_map = typename kernel::affine_relu;
  // ---------------------------------------------------------------- memory

  /// 64-byte aligned host memory for n elements. Large buffers come from and return to a process-wide
  /// cache (backend/cpu/block_cache.hpp), so a training loop does not fault fresh pages in every step.
  /// Defining MAMMOCL_CPU_NO_BLOCK_CACHE turns the cache off (the sanitizer builds do, so that AddressSanitizer
  /// sees every buffer's lifetime).
  static std::shared_ptr<T> allocate(std::size_t n) {
#ifdef MAMMOCL_CPU_NO_BLOCK_CACHE
    T* q = static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t{64}));
    return std::shared_ptr<T>(q, [](T* r) { ::operator delete(r, std::align_val_t{64}); });
#else
    const auto [p, bytes] = detail::block_cache::instance().get(n * sizeof(T));
    return std::shared_ptr<T>(static_cast<T*>(p), [bytes = bytes](T* q) { detail::block_cache::instance().put(q, bytes); });
#endif
  }
  /// Gives the cached free buffers back to the system (memory held by live tensors is not affected).
  static void empty_cache() { detail::block_cache::instance().release(); }
  static void fill(const tensor_t& t, T v) {
    for_items(t, [&](T* p, index_t k) { std::fill(p, p + k, v); });
  }
  /// dst = src (same shape; either may be strided over the batch).
  static void copy(const tensor_t& src, const tensor_t& dst) {
    MAMMOCL_EXPECTS(src.dims() == dst.dims(), "copy: source shape ", src.dims(), " != destination shape ", dst.dims());
    const index_t k = src.item_size();
    for (index_t i = 0; i < src.n(); ++i) std::memcpy(dst.item(i), src.item(i), sizeof(T) * k);
  }
  static void to_host(const tensor_t& src, T* dst) {
    const index_t k = src.item_size();
    for (index_t i = 0; i < src.n(); ++i) std::memcpy(dst + i * k, src.item(i), sizeof(T) * k);
  }
  static void from_host(const T* src, const tensor_t& dst) {
    const index_t k = dst.item_size();
    for (index_t i = 0; i < dst.n(); ++i) std::memcpy(dst.item(i), src + i * k, sizeof(T) * k);
  }

  // ---------------------------------------------------------------- matrix products

  /// C = alpha * op(A) * op(B) + beta * C, row-major; op(A) is MxK, op(B) is KxN, C is MxN.
  /// Large products are cut into blocks of columns (or of rows, when M > N), each computed by a
  /// single-threaded kernel; the threads take the blocks in turn (see `piece_size`). No thread
  /// synchronises inside the product, and every element of C is computed by one kernel call in a fixed
  /// order: the result does not depend on the thread count or on which thread took which block.
  static void gemm(context& ctx, bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                   index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    const double work = static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
    product_blocks(ctx, m, n, work, 256, [&](index_t r0, index_t r1, index_t c0, index_t c1) {
      gemm_serial(trans_a, trans_b, r1 - r0, c1 - c0, k, alpha, trans_a ? a + r0 : a + r0 * lda, lda,
                  trans_b ? b + c0 * ldb : b + c0, ldb, beta, c + r0 * ldc + c0, ldc);
    });
  }

  /// f(r0, r1, c0, c1) for blocks [r0, r1) x [c0, c1) that together cover an m x n result of `work`
  /// multiply-adds, each block computed by one call on one thread, the threads taking blocks as they finish.
  /// When n ≥ m the blocks are columns, at least `min_cols` wide: each re-packs the left operand (m x K),
  /// which costs under 1/min_cols of its multiply-adds. Otherwise the right operand (K x n) is the large one,
  /// and the rows are cut only into one block per thread (whole 6-row micro-tiles). Small products run in
  /// one call on the calling thread.
  template <class F>
  static void product_blocks(context& ctx, index_t m, index_t n, double work, index_t min_cols, F&& f) {
    const int t = ctx.threads();
#ifdef _OPENMP
    if (t > 1 && work >= 1.0e6 && !omp_in_parallel()) {
      const bool by_cols = n >= m;
      const index_t extent = by_cols ? n : m;
      const index_t step = by_cols ? piece_size(extent, t, min_cols, kernel::panel_width)
                                   : piece_size(extent, t, (extent + t - 1) / t, 24);
      const index_t count = (extent + step - 1) / step;
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
      for (index_t q = 0; q < count; ++q) {
        const index_t e0 = q * step, e1 = std::min(extent, e0 + step);
        if (by_cols) f(index_t{0}, m, e0, e1);
        else f(e0, e1, index_t{0}, n);
      }
      return;
    }
#endif
    (void)t;
    (void)work;
    (void)min_cols;
    f(index_t{0}, m, index_t{0}, n);
  }

  /// The size of the pieces `extent` units of work are cut into for `threads` threads that take them in turn:
  /// about 32 per thread, at least `min_piece` (but no more than an even share), a multiple of `align`.
  /// Threads taking pieces as they finish, rather than one fixed share each, keep both cores busy when one
  /// runs slower than the other: on the project's shared 2-vCPU machines one core ran an FMA loop 25-30 %
  /// slower than the other for minutes at a time, and every fixed half-and-half split waited for it.
  static index_t piece_size(index_t extent, int threads, index_t min_piece, index_t align) {
    const index_t share = (extent + threads - 1) / threads;
    const index_t target = std::min(share, std::max<index_t>(min_piece, (extent + 32 * threads - 1) / (32 * threads)));
    return std::max<index_t>(align, (target + align - 1) / align * align);
  }

  /// f(i, c0, c1) for every image i of a batch of n and every column range [c0, c1) of its map of `positions`,
  /// where f computes columns c0..c1 of image i's GEMM (of `work` multiply-adds for the whole map) on the
  /// calling thread. One parallel region serves the whole batch: the (image, column block) pieces are taken
  /// by the threads as they finish, so that a layer has one tail instead of one per image. Small maps go
  /// whole when the batch divides evenly among the threads (14 x 14 = 196 columns would be split 112/84,
  /// 7 x 7 = 49 split 32/17); larger ones in blocks of at least 256 columns. A column block's result does
  /// not depend on the blocking, so every choice gives the same values.
  template <class F>
  static void per_image_gemm(context& ctx, index_t n, index_t positions, double work, F&& f) {
    const int t = ctx.threads();
#ifdef _OPENMP
    if (t > 1 && static_cast<double>(n) * work >= 1.0e6 && !omp_in_parallel()) {
      const bool whole = positions < 1024 && n >= t && n % t == 0;
      const index_t per = whole ? positions : piece_size(positions * n, t, 256, kernel::panel_width);
      const index_t pieces = (positions + per - 1) / per, count = n * pieces;
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
      for (index_t q = 0; q < count; ++q) {
        const index_t c0 = (q % pieces) * per;
        f(q / pieces, c0, std::min(positions, c0 + per));
      }
      return;
    }
#endif
    (void)t;
    (void)work;
    for (index_t i = 0; i < n; ++i) f(i, index_t{0}, positions);
  }

  /// The same product on the calling thread only: MammoCL's packed GEMM kernel (backend/cpu/gemm.hpp), or
  /// Eigen's when MAMMOCL_CPU_EIGEN_GEMM is defined (the two are compared in tests/cpu/test_gemm.cpp).
  static void gemm_serial(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                          index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
#ifdef MAMMOCL_CPU_EIGEN_GEMM
    gemm_eigen(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#else
    detail::gemm_kernel<T>::run(gemm_workspace(), trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
#endif
  }

#ifdef MAMMOCL_CPU_EIGEN_GEMM
  using matrix = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  using map_t = Eigen::Map<matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  using cmap_t = Eigen::Map<const matrix, Eigen::Unaligned, Eigen::OuterStride<>>;
  static void gemm_eigen(bool trans_a, bool trans_b, index_t m, index_t n, index_t k, T alpha, const T* a,
                         index_t lda, const T* b, index_t ldb, T beta, T* c, index_t ldc) {
    map_t C(c, m, n, Eigen::OuterStride<>(ldc));
    if (k == 0) {
      if (beta == T(0)) C.setZero(); else C *= beta;
      return;
    }
    cmap_t A(a, trans_a ? k : m, trans_a ? m : k, Eigen::OuterStride<>(lda));
    cmap_t Bm(b, trans_b ? n : k, trans_b ? k : n, Eigen::OuterStride<>(ldb));
    auto run = [&](auto&& opa, auto&& opb) {
      if (beta == T(0)) {
        C.noalias() = alpha * opa * opb;
      } else {
        if (beta != T(1)) C *= beta;
        C.noalias() += alpha * opa * opb;
      }
    };
    if (!trans_a && !trans_b) run(A, Bm);
    else if (trans_a && !trans_b) run(A.transpose(), Bm);
    else if (!trans_a && trans_b) run(A, Bm.transpose());
    else run(A.transpose(), Bm.transpose());
  }
#endif

  // ---------------------------------------------------------------- convolution

  /// y = conv(x, w) (+ bias). x (N,Cin,H,W), w (Cout,Cin,kh,kw), y (N,Cout,Ho,Wo); x and y may be strided.
  static void conv2d_forward(context& ctx, const tensor_t& x, const tensor_t& w, const tensor_t* bias,
                             const tensor_t& y, const conv_geometry& g) {
    conv_forward_impl(ctx, x, w, bias, y, g, nullptr);
  }
  /// conv2d_forward of max(0, x·scale + shift) when xf is given (conv2d_affine_relu_forward): the 1x1 GEMM's
  /// packing and the stride-1 kernels' padded copy apply the map; the im2col paths get it computed first.
  static void conv_forward_impl(context& ctx, const tensor_t& x_in, const tensor_t& w, const tensor_t* bias,
                                const tensor_t& y, const conv_geometry& g, const input_map* xf) {
    const tensor_t x = mapped_unless_packed(ctx, x_in, g, xf);
    const index_t cin = x.c(), h = x.h(), wd = x.w(), cout = w.dim(0);
    const index_t ho = g.out_h(h), wo = g.out_w(wd), p = ho * wo, kk = cin * g.kh * g.kw;
    if (g.pointwise()) {
      per_image_gemm(ctx, x.n(), p, static_cast<double>(cout) * static_cast<double>(p) * static_cast<double>(cin),
                     [&](index_t i, index_t c0, index_t c1) {
                       if (xf) {
                         const T* xi = x.item(i) + c0;
                         kernel::run_packed_b(
                             gemm_workspace(), false, cout, c1 - c0, cin, T(1), w.data(), cin,
                             [&](long pc, long jc, long kb, long nb, T* dst) { kernel::pack_b_as(false, xi, p, pc, jc, kb, nb, dst, *xf); },
                             T(0), y.item(i) + c0, p);
                       } else {
                         gemm_serial(false, false, cout, c1 - c0, cin, T(1), w.data(), cin, x.item(i) + c0, p, T(0),
                                     y.item(i) + c0, p);
                       }
                     });
    } else if (implicit_gemm && winograd_applies(g, cin, cout, x.n(), h, wd)) {
      conv_forward_winograd(ctx, x, w.data(), cout, y, T(0), xf);
    } else if (implicit_gemm && g.stride == 1) {
      conv_forward_direct(ctx, x, w.data(), cout, y, g, T(0), xf);
    } else if constexpr (implicit_gemm) {
      // The im2col matrix is never stored: the GEMM packs its panels straight from x (implicit GEMM).
      const index_t chunk = implicit_chunk(p, x.n());
      T* out = chunk > 1 ? ctx.scratch(static_cast<std::size_t>(cout * chunk * p), 1) : nullptr;
      for (index_t i0 = 0; i0 < x.n(); i0 += chunk) {
        const index_t nc = std::min(chunk, x.n() - i0);
        if (nc == 1) {
          conv_gemm(ctx, w.data(), cout, x, i0, 1, g, T(0), y.item(i0), p);
        } else {
          conv_gemm(ctx, w.data(), cout, x, i0, nc, g, T(0), out, nc * p);
          scatter_columns(ctx, out, cout, nc, p, y, i0, T(0));
        }
      }
    } else {
      const index_t chunk = images_per_chunk(kk, p, x.n());
      T* col = ctx.scratch(static_cast<std::size_t>(kk * chunk * p), 0);
      T* out = ctx.scratch(static_cast<std::size_t>(cout * chunk * p), 1);
      for (index_t i0 = 0; i0 < x.n(); i0 += chunk) {
        const index_t nc = std::min(chunk, x.n() - i0);
        im2col(ctx, x, i0, nc, g, col);
        if (nc == 1) {
          gemm(ctx, false, false, cout, p, kk, T(1), w.data(), kk, col, p, T(0), y.item(i0), p);
        } else {
          gemm(ctx, false, false, cout, nc * p, kk, T(1), w.data(), kk, col, nc * p, T(0), out, nc * p);
          scatter_columns(ctx, out, cout, nc, p, y, i0, T(0));
        }
      }
    }
    if (bias) {
      const T* b = bias->data();
      parallel_planes(ctx, y.n() * cout, [&](index_t q) {
        T* d = y.item(q / cout) + (q % cout) * p;
        const T v = b[q % cout];
        for (index_t j = 0; j < p; ++j) d[j] += v;
      });
    }
  }

  /// dx = conv_transpose(dy, w) + beta*dx.
  static void conv2d_backward_data(context& ctx, const tensor_t& dy, const tensor_t& w, const tensor_t& dx,
                                   const conv_geometry& g, T beta) {
    const index_t cin = dx.c(), cout = w.dim(0);
    const index_t ho = dy.h(), wo = dy.w(), p = ho * wo, kk = cin * g.kh * g.kw;
    if (g.pointwise()) {
      per_image_gemm(ctx, dy.n(), p, static_cast<double>(cin) * static_cast<double>(p) * static_cast<double>(cout),
                     [&](index_t i, index_t c0, index_t c1) {
                       gemm_serial(true, false, cin, c1 - c0, cout, T(1), w.data(), cin, dy.item(i) + c0, p, beta,
                                   dx.item(i) + c0, p);
                     });
      return;
    }
    if constexpr (implicit_gemm) {
      if (g.stride == 1 && g.kh == g.kw && g.pad <= g.kh - 1) {
        // Stride 1: dx is the convolution of dy with the flipped, transposed filters and padding k-1-pad,
        // computed by the direct kernel of the forward pass (no column matrix, no scatter-add).
        const index_t taps = g.kh * g.kw, kt = cout * taps;
        T* wt = ctx.scratch(static_cast<std::size_t>(cin * kt), 2);
        const T* wp = w.data();
        for (index_t ci = 0; ci < cin; ++ci)
          for (index_t co = 0; co < cout; ++co)
            for (index_t t = 0; t < taps; ++t) wt[ci * kt + co * taps + t] = wp[(co * cin + ci) * taps + (taps - 1 - t)];
        const conv_geometry gt{g.kh, g.kw, 1, g.kh - 1 - g.pad};
        if (winograd_applies(gt, cout, cin, dy.n(), ho, wo)) conv_forward_winograd(ctx, dy, wt, cin, dx, beta);
        else conv_forward_direct(ctx, dy, wt, cin, dx, gt, beta);
        return;
      }
    }
    const index_t chunk = images_per_chunk(kk, p, dy.n());
    T* col = ctx.scratch(static_cast<std::size_t>(kk * chunk * p), 0);
    T* dyc = ctx.scratch(static_cast<std::size_t>(cout * chunk * p), 1);
    for (index_t i0 = 0; i0 < dy.n(); i0 += chunk) {
      const index_t nc = std::min(chunk, dy.n() - i0);
      const T* dsrc;
      if (nc == 1) {
        dsrc = dy.item(i0);
      } else {
        gather_columns(ctx, dy, i0, nc, p, dyc);
        dsrc = dyc;
      }
      gemm(ctx, true, false, kk, nc * p, cout, T(1), w.data(), kk, dsrc, nc * p, T(0), col, nc * p);
      col2im(ctx, col, i0, nc, g, dx, beta);
    }
  }

  /// dw = Σ_n dy_n · im2col(x_n)ᵀ + beta*dw;  db = Σ dy + beta*db (when db is given).
  static void conv2d_backward_filter(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dw,
                                     const tensor_t* db, const conv_geometry& g, T beta) {
    filter_gradient_impl(ctx, x, dy, dw, db, g, beta, nullptr);
  }
  /// conv2d_backward_filter of the mapped input max(0, x·scale + shift) when xf is given, mapped as in
  /// conv_forward_impl.
  static void filter_gradient_impl(context& ctx, const tensor_t& x_in, const tensor_t& dy, const tensor_t& dw,
                                   const tensor_t* db, const conv_geometry& g, T beta, const input_map* xf) {
    const tensor_t x = mapped_unless_packed(ctx, x_in, g, xf);
    const index_t cin = x.c(), cout = dw.dim(0);
    const index_t p = dy.h() * dy.w(), kk = cin * g.kh * g.kw;
    if (g.pointwise()) {
      // dw = Σ_i dy_i · x_iᵀ, the images accumulated in order into each block of dw (columns, or rows when
      // Cout > Cin: the operand that every block re-packs is then the smaller one), in one parallel region.
      const auto images = [&](index_t r0, index_t r1, index_t c0, index_t c1) {
        for (index_t i = 0; i < x.n(); ++i) {
          const T* xi = x.item(i) + c0 * p;
          T* out = dw.data() + r0 * cin + c0;
          if (xf) {
            const input_map part{xf->scale + c0, xf->shift + c0};
            kernel::run_packed_b(
                gemm_workspace(), false, r1 - r0, c1 - c0, p, T(1), dy.item(i) + r0 * p, p,
                [&](long pc, long jc, long kb, long nb, T* dst) { kernel::pack_b_as(true, xi, p, pc, jc, kb, nb, dst, part); },
                i == 0 ? beta : T(1), out, cin);
          } else {
            gemm_serial(false, true, r1 - r0, c1 - c0, p, T(1), dy.item(i) + r0 * p, p, xi, p, i == 0 ? beta : T(1), out, cin);
          }
        }
      };
      const double macs = static_cast<double>(cout) * static_cast<double>(cin) * static_cast<double>(p * x.n());
      product_blocks(ctx, cout, cin, macs, 64, images);
    } else if (implicit_gemm && g.stride == 1) {
      if (winograd_applies(g, cin, cout, x.n(), x.h(), x.w())) filter_gradient_winograd(ctx, x, dy, dw, beta, xf);
      else filter_gradient_by_taps(ctx, x, dy, dw, g, beta, xf);
    } else {
      const index_t chunk = images_per_chunk(kk, p, x.n());
      T* col = ctx.scratch(static_cast<std::size_t>(kk * chunk * p), 0);
      T* dyc = ctx.scratch(static_cast<std::size_t>(cout * chunk * p), 1);
      for (index_t i0 = 0; i0 < x.n(); i0 += chunk) {
        const index_t nc = std::min(chunk, x.n() - i0);
        im2col(ctx, x, i0, nc, g, col);
        const T* dsrc;
        if (nc == 1) {
          dsrc = dy.item(i0);
        } else {
          gather_columns(ctx, dy, i0, nc, p, dyc);
          dsrc = dyc;
        }
        gemm(ctx, false, true, cout, kk, nc * p, T(1), dsrc, nc * p, col, nc * p, i0 == 0 ? beta : T(1), dw.data(), kk);
      }
    }
    if (db) {
      T* d = db->data();
      parallel_planes(ctx, cout, [&](index_t c) {
        double s = 0;
        for (index_t i = 0; i < dy.n(); ++i) {
          const T* q = dy.item(i) + c * p;
          for (index_t j = 0; j < p; ++j) s += q[j];
        }
        d[c] = static_cast<T>(s) + (beta == T(0) ? T(0) : beta * d[c]);
      });
    }
  }

  // ---------------------------------------------------------------- batch norm + ReLU folded into a convolution

  /// y = conv(max(0, x·scale + shift), w), without bias: a convolution whose input is the batch norm and ReLU of
  /// x, given as per-channel scale and shift (batch_norm_fold, batch_norm_fold_running). The normalised input is
  /// never stored: the kernels apply the map to x while they pack it (1x1: the GEMM's panels; stride-1
  /// Winograd and direct kernels: the padded, channel-blocked copy of the image, whose zero padding stays
  /// zero). DenseNet's BN1-ReLU-conv1 and BN2-ReLU-conv2 run this way. Other geometries compute the map into
  /// a temporary and call conv2d_forward. Same values as batch_norm_forward_train (or _eval) followed by
  /// conv2d_forward, to the rounding of the map's multiply-add (x·scale + shift, contracted to one FMA or not
  /// by the compiler in both).
  static void conv2d_affine_relu_forward(context& ctx, const tensor_t& x, const tensor_t& scale, const tensor_t& shift,
                                         const tensor_t& w, const tensor_t& y, const conv_geometry& g) {
    check_folded_conv(x, scale, shift, w, g, y.dims(), "conv2d_affine_relu_forward");
    const input_map xf{scale.data(), shift.data()};
    conv_forward_impl(ctx, x, w, nullptr, y, g, &xf);
  }

  /// dw = ∂L/∂w + beta·dw for conv2d_affine_relu_forward (the filter gradient of the convolution of the mapped
  /// input), the map again applied while x is packed; same kernels, blocks and order as conv2d_backward_filter.
  static void conv2d_affine_relu_backward_filter(context& ctx, const tensor_t& x, const tensor_t& scale,
                                                 const tensor_t& shift, const tensor_t& dy, const tensor_t& dw,
                                                 const conv_geometry& g, T beta) {
    check_folded_conv(x, scale, shift, dw, g, dy.dims(), "conv2d_affine_relu_backward_filter");
    const input_map xf{scale.data(), shift.data()};
    filter_gradient_impl(ctx, x, dy, dw, nullptr, g, beta, &xf);
  }

  // ---------------------------------------------------------------- batch norm

  /// Training-mode batch norm over (N,H,W) per channel, optionally followed by ReLU.
  /// Saves the batch mean and 1/sqrt(var+eps); updates running statistics when they are given
  /// (running = (1-momentum)*running + momentum*batch, running_var with the unbiased variance).
  static void batch_norm_forward_train(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                       const tensor_t& y, const tensor_t& save_mean, const tensor_t& save_invstd,
                                       const tensor_t* running_mean, const tensor_t* running_var, double momentum,
                                       double eps, bool relu) {
    const index_t n = x.n(), c = x.c(), hw = x.item_size() / c;
    check_batch_statistics(x);
    parallel_planes(ctx, c, [&](index_t ch) {
      channel_statistics(x, ch, save_mean, save_invstd, running_mean, running_var, momentum, eps);
      // The output is computed from the saved (rounded) statistics, so recomputation reproduces it bit for bit.
      const auto [a, b] = fold_saved(gamma, beta, save_mean, save_invstd, ch);
      for (index_t i = 0; i < n; ++i) affine(x.item(i) + ch * hw, y.item(i) + ch * hw, hw, a, b, relu);
    });
  }

  /// The statistics half of batch_norm_forward_train: the batch mean and 1/sqrt(var+eps) into save_mean and
  /// save_invstd, the running statistics updated when given; no output is written. A dense layer calls it and
  /// then applies the normalisation inside its convolutions (conv2d_affine_relu_forward).
  ///
  /// With `known` > 0 the first `known` channels' statistics are already in save_mean and save_invstd (a dense
  /// layer copies them from the layer before it, whose input held the same channels of the same buffer): only
  /// the other channels are read. The known channels' running statistics are still updated, their batch
  /// variance taken as 1/invstd² − eps from the saved (rounded) invstd: a relative difference of about 1e-7
  /// in that variance, i.e. 1e-8 in the running variance after the momentum, against reading the channel.
  static void batch_norm_statistics(context& ctx, const tensor_t& x, const tensor_t& save_mean,
                                    const tensor_t& save_invstd, const tensor_t* running_mean,
                                    const tensor_t* running_var, double momentum, double eps, index_t known = 0) {
    check_batch_statistics(x);
    MAMMOCL_EXPECTS(known >= 0 && known <= x.c(), "batch_norm_statistics: ", known, " known channels of an input with ",
                    x.c());
    const index_t fresh = x.c() - known;
    parallel_planes(ctx, fresh, [&](index_t q) {
      channel_statistics(x, known + q, save_mean, save_invstd, running_mean, running_var, momentum, eps);
    });
    if (running_mean) {
      const double m = static_cast<double>(x.n() * (x.item_size() / x.c()));
      for (index_t ch = 0; ch < known; ++ch) {
        const double mean = save_mean.data()[ch], inv = save_invstd.data()[ch];
        const double var = std::max(0.0, 1.0 / (inv * inv) - eps);
        T& rm = running_mean->data()[ch];
        T& rv = running_var->data()[ch];
        rm = static_cast<T>((1.0 - momentum) * rm + momentum * mean);
        rv = static_cast<T>((1.0 - momentum) * rv + momentum * var * m / (m - 1));
      }
    }
  }

  /// Training-mode batch norm as a per-channel affine map, y = x·scale + shift with scale = γ·invstd and
  /// shift = β − μ·γ·invstd from the saved statistics: the coefficients batch_norm_forward_train applies.
  static void batch_norm_fold(context&, const tensor_t& gamma, const tensor_t& beta, const tensor_t& save_mean,
                              const tensor_t& save_invstd, const tensor_t& scale, const tensor_t& shift) {
    for (index_t ch = 0; ch < gamma.numel(); ++ch) {
      const auto [a, b] = fold_saved(gamma, beta, save_mean, save_invstd, ch);
      scale.data()[ch] = a;
      shift.data()[ch] = b;
    }
  }
  /// Inference-mode batch norm as a per-channel affine map (the coefficients batch_norm_forward_eval applies).
  static void batch_norm_fold_running(context&, const tensor_t& gamma, const tensor_t& beta,
                                      const tensor_t& running_mean, const tensor_t& running_var, double eps,
                                      const tensor_t& scale, const tensor_t& shift) {
    for (index_t ch = 0; ch < gamma.numel(); ++ch) {
      const auto [a, b] = fold_running(gamma, beta, running_mean, running_var, eps, ch);
      scale.data()[ch] = a;
      shift.data()[ch] = b;
    }
  }

  /// Recomputes the training-mode output from saved statistics (memory-efficient mode). No statistics change.
  static void batch_norm_recompute(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                   const tensor_t& save_mean, const tensor_t& save_invstd, const tensor_t& y, bool relu) {
    const index_t n = x.n(), c = x.c(), hw = x.item_size() / c;
    parallel_planes(ctx, c, [&](index_t ch) {
      const auto [a, b] = fold_saved(gamma, beta, save_mean, save_invstd, ch);
      for (index_t i = 0; i < n; ++i) affine(x.item(i) + ch * hw, y.item(i) + ch * hw, hw, a, b, relu);
    });
  }

  /// Inference-mode batch norm with the running statistics, optionally followed by ReLU.
  static void batch_norm_forward_eval(context& ctx, const tensor_t& x, const tensor_t& gamma, const tensor_t& beta,
                                      const tensor_t& running_mean, const tensor_t& running_var, double eps,
                                      const tensor_t& y, bool relu) {
    const index_t n = x.n(), c = x.c(), hw = x.item_size() / c;
    parallel_planes(ctx, c, [&](index_t ch) {
      const auto [a, b] = fold_running(gamma, beta, running_mean, running_var, eps, ch);
      for (index_t i = 0; i < n; ++i) affine(x.item(i) + ch * hw, y.item(i) + ch * hw, hw, a, b, relu);
    });
  }

  /// Backward of training-mode batch norm (with the ReLU that followed it when `relu`; its mask is
  /// recomputed from x and the saved statistics). With x̂ = (x-μ)·invstd and dz = dy·[y>0]:
  ///   dβ = Σ dz,  dγ = Σ dz·x̂,  dx = γ·invstd·(dz − dβ/M − x̂·dγ/M).
  /// dx = that + dx_beta·dx; dgamma/dbeta = that + param_beta·previous.
  static void batch_norm_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                                  const tensor_t& beta, const tensor_t& save_mean, const tensor_t& save_invstd,
                                  bool relu, const tensor_t& dx, T dx_beta, const tensor_t& dgamma,
                                  const tensor_t& dbeta, T param_beta) {
    if (relu) bn_backward_impl<true>(ctx, x, dy, gamma, beta, save_mean, save_invstd, dx, dx_beta, dgamma, dbeta, param_beta);
    else bn_backward_impl<false>(ctx, x, dy, gamma, beta, save_mean, save_invstd, dx, dx_beta, dgamma, dbeta, param_beta);
  }

  /// Backward of inference-mode batch norm (frozen statistics): dx = dy·γ/sqrt(var+eps) (+ ReLU mask).
  static void batch_norm_backward_eval(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                                       const tensor_t& beta, const tensor_t& running_mean,
                                       const tensor_t& running_var, double eps, bool relu, const tensor_t& dx,
                                       T dx_beta, const tensor_t& dgamma, const tensor_t& dbeta, T param_beta) {
    const index_t n = x.n(), c = x.c(), hw = x.item_size() / c;
    parallel_planes(ctx, c, [&](index_t ch) {
      const T mean = running_mean.data()[ch];
      const T inv = static_cast<T>(1.0 / std::sqrt(static_cast<double>(running_var.data()[ch]) + eps));
      const T ga = gamma.data()[ch], be = beta.data()[ch];
      double sdz = 0, sdzx = 0;
      for (index_t i = 0; i < n; ++i) {
        const T* px = x.item(i) + ch * hw;
        const T* pd = dy.item(i) + ch * hw;
        T* po = dx.item(i) + ch * hw;
        for (index_t j = 0; j < hw; ++j) {
          const T xh = (px[j] - mean) * inv;
          const T dz = (!relu || xh * ga + be > T(0)) ? pd[j] : T(0);
          sdz += dz;
          sdzx += static_cast<double>(dz) * xh;
          po[j] = dx_beta == T(0) ? dz * ga * inv : dz * ga * inv + dx_beta * po[j];
        }
      }
      T& dgr = dgamma.data()[ch];
      T& dbr = dbeta.data()[ch];
      dgr = static_cast<T>(sdzx) + (param_beta == T(0) ? T(0) : param_beta * dgr);
      dbr = static_cast<T>(sdz) + (param_beta == T(0) ? T(0) : param_beta * dbr);
    });
  }

  // ---------------------------------------------------------------- concatenation

  /// out = channel-concat[inputs...] of NCHW tensors with equal N, H, W (out may be strided).
  static void concat_channels(context&, std::span<const tensor_t> inputs, const tensor_t& out) {
    index_t c0 = 0;
    for (const auto& t : inputs) {
      MAMMOCL_EXPECTS(t.rank() == 4 && t.n() == out.n() && t.h() == out.h() && t.w() == out.w(),
                      "concat_channels: input ", t.dims(), " does not match the output ", out.dims(), " in N, H or W");
      MAMMOCL_EXPECTS(c0 + t.c() <= out.c(), "concat_channels: the inputs hold more channels than the output ", out.dims());
      copy(t, out.channels(c0, t.c()));
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
      if (beta == T(0)) copy(src, t);
      else
        parallel_planes(ctx, t.n(), [&](index_t i) {
          const T* a = src.item(i);
          T* b = t.item(i);
          for (index_t j = 0; j < t.item_size(); ++j) b[j] = a[j] + beta * b[j];
        });
      c0 += t.c();
    }
    MAMMOCL_EXPECTS(c0 == dy.c(), "split_channels: the outputs hold ", c0, " channels, dy ", dy.c());
  }

  // ---------------------------------------------------------------- activations

  static void relu_forward(context& ctx, const tensor_t& x, const tensor_t& y) {
    parallel_items(ctx, x, y, [](const T* a, T* b, index_t k) {
      for (index_t j = 0; j < k; ++j) b[j] = a[j] > T(0) ? a[j] : T(0);
    });
  }
  /// dx = dy·[y > 0] (+ beta·dx).
  static void relu_backward(context& ctx, const tensor_t& y, const tensor_t& dy, const tensor_t& dx, T beta) {
    const index_t k = y.item_size();
    parallel_planes(ctx, y.n(), [&](index_t i) {
      const T* a = y.item(i);
      const T* d = dy.item(i);
      T* o = dx.item(i);
      for (index_t j = 0; j < k; ++j) {
        const T v = a[j] > T(0) ? d[j] : T(0);
        o[j] = beta == T(0) ? v : v + beta * o[j];
      }
    });
  }

  // ---------------------------------------------------------------- pooling

  /// Max pooling (floor mode, padding counts as -inf); the first maximum of a window wins, as in PyTorch.
  static void max_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, const pool_geometry& g) {
    const index_t c = x.c(), h = x.h(), w = x.w(), ho = y.h(), wo = y.w();
    parallel_planes(ctx, x.n() * c, [&](index_t q) {
      const T* src = x.item(q / c) + (q % c) * h * w;
      T* dst = y.item(q / c) + (q % c) * ho * wo;
      for_each_window(src, h, w, ho, wo, g, [&](index_t o, index_t a) { dst[o] = src[a]; });
    });
  }
  /// dx = scatter of dy to each window's first maximum (+ beta·dx).
  static void max_pool_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dx,
                                const pool_geometry& g, T beta) {
    const index_t c = x.c(), h = x.h(), w = x.w(), ho = dy.h(), wo = dy.w();
    parallel_planes(ctx, x.n() * c, [&](index_t q) {
      const T* src = x.item(q / c) + (q % c) * h * w;
      const T* d = dy.item(q / c) + (q % c) * ho * wo;
      T* o = dx.item(q / c) + (q % c) * h * w;
      if (beta == T(0)) std::fill(o, o + h * w, T(0)); else if (beta != T(1)) for (index_t j = 0; j < h * w; ++j) o[j] *= beta;
      for_each_window(src, h, w, ho, wo, g, [&](index_t out, index_t a) { o[a] += d[out]; });
    });
  }
  /// Average pooling (floor mode); padded positions count in the divisor (PyTorch's count_include_pad).
  static void avg_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, const pool_geometry& g) {
    const index_t c = x.c(), h = x.h(), w = x.w(), ho = y.h(), wo = y.w();
    const bool tiled2 = g.k == 2 && g.stride == 2 && g.pad == 0;  // DenseNet's transitions: disjoint 2x2 windows
    parallel_planes(ctx, x.n() * c, [&](index_t q) {
      const T* src = x.item(q / c) + (q % c) * h * w;
      T* dst = y.item(q / c) + (q % c) * ho * wo;
      if (tiled2) {  // the generic loop's sum, in its order, without its per-window bounds
        for (index_t oy = 0; oy < ho; ++oy) {
          const T* r0 = src + 2 * oy * w;
          const T* r1 = r0 + w;
          T* o = dst + oy * wo;
#pragma omp simd
          for (index_t ox = 0; ox < wo; ++ox) o[ox] = (((r0[2 * ox] + r0[2 * ox + 1]) + r1[2 * ox]) + r1[2 * ox + 1]) * T(0.25);
        }
        return;
      }
      for (index_t oy = 0; oy < ho; ++oy)
        for (index_t ox = 0; ox < wo; ++ox) {
          index_t y0, y1, x0, x1;
          const T inv = avg_window(h, w, oy, ox, g, y0, y1, x0, x1);
          T s = 0;
          for (index_t iy = y0; iy < y1; ++iy)
            for (index_t ix = x0; ix < x1; ++ix) s += src[iy * w + ix];
          dst[oy * wo + ox] = s * inv;
        }
    });
  }
  static void avg_pool_backward(context& ctx, const tensor_t& dy, const tensor_t& dx, const pool_geometry& g, T beta) {
    const index_t c = dx.c(), h = dx.h(), w = dx.w(), ho = dy.h(), wo = dy.w();
    const bool tiled2 = g.k == 2 && g.stride == 2 && g.pad == 0;
    parallel_planes(ctx, dx.n() * c, [&](index_t q) {
      const T* d = dy.item(q / c) + (q % c) * ho * wo;
      T* o = dx.item(q / c) + (q % c) * h * w;
      if (tiled2 && beta == T(0)) {  // every input in at most one window: write dx once, zero outside the windows
        for (index_t oy = 0; oy < ho; ++oy) {
          T* r0 = o + 2 * oy * w;
          T* r1 = r0 + w;
          const T* dr = d + oy * wo;
#pragma omp simd
          for (index_t ox = 0; ox < wo; ++ox) {
            const T v = dr[ox] * T(0.25);
            r0[2 * ox] = v;
            r0[2 * ox + 1] = v;
            r1[2 * ox] = v;
            r1[2 * ox + 1] = v;
          }
          for (index_t ix = 2 * wo; ix < w; ++ix) r0[ix] = r1[ix] = T(0);
        }
        std::fill(o + 2 * ho * w, o + h * w, T(0));
        return;
      }
      if (beta == T(0)) std::fill(o, o + h * w, T(0)); else if (beta != T(1)) for (index_t j = 0; j < h * w; ++j) o[j] *= beta;
      for (index_t oy = 0; oy < ho; ++oy)
        for (index_t ox = 0; ox < wo; ++ox) {
          index_t y0, y1, x0, x1;
          const T v = d[oy * wo + ox] * avg_window(h, w, oy, ox, g, y0, y1, x0, x1);
          for (index_t iy = y0; iy < y1; ++iy)
            for (index_t ix = x0; ix < x1; ++ix) o[iy * w + ix] += v;
        }
    });
  }
  /// (N,C,H,W) -> (N,C): the mean of each plane, optionally of ReLU(x).
  static void global_avg_pool_forward(context& ctx, const tensor_t& x, const tensor_t& y, bool relu) {
    const index_t c = x.c(), hw = x.h() * x.w();
    parallel_planes(ctx, x.n() * c, [&](index_t q) {
      const T* p = x.item(q / c) + (q % c) * hw;
      double s = 0;
      for (index_t j = 0; j < hw; ++j) s += relu ? std::max(p[j], T(0)) : p[j];
      y.data()[q] = static_cast<T>(s / static_cast<double>(hw));
    });
  }
  /// dx = dy/(H·W) broadcast over each plane (masked by [x > 0] when relu) (+ beta·dx).
  static void global_avg_pool_backward(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dx,
                                       bool relu, T beta) {
    const index_t c = dx.c(), hw = dx.h() * dx.w();
    parallel_planes(ctx, dx.n() * c, [&](index_t q) {
      const T v = dy.data()[q] / static_cast<T>(hw);
      const T* px = x.item(q / c) + (q % c) * hw;
      T* o = dx.item(q / c) + (q % c) * hw;
      for (index_t j = 0; j < hw; ++j) {
        const T d = (!relu || px[j] > T(0)) ? v : T(0);
        o[j] = beta == T(0) ? d : d + beta * o[j];
      }
    });
  }

  // ---------------------------------------------------------------- rows (N,F)

  /// y(i,:) += b for every row i.
  static void add_row_broadcast(context&, const tensor_t& y, const tensor_t& b) {
    const index_t f = y.item_size();
    for (index_t i = 0; i < y.n(); ++i) {
      T* p = y.item(i);
      for (index_t j = 0; j < f; ++j) p[j] += b.data()[j];
    }
  }
  /// out = Σ_rows a + beta·out.
  static void sum_rows(context&, const tensor_t& a, const tensor_t& out, T beta) {
    const index_t f = a.item_size();
    for (index_t j = 0; j < f; ++j) {
      double s = 0;
      for (index_t i = 0; i < a.n(); ++i) s += a.item(i)[j];
      out.data()[j] = static_cast<T>(s) + (beta == T(0) ? T(0) : beta * out.data()[j]);
    }
  }
  /// Row-wise log-softmax of (N,K) logits: out = x - max - log Σ exp(x - max).
  static void log_softmax_rows(context&, const tensor_t& x, const tensor_t& out) {
    const index_t k = x.item_size();
    for (index_t i = 0; i < x.n(); ++i) {
      const T* p = x.item(i);
      T* o = out.item(i);
      T mx = -std::numeric_limits<T>::infinity();
      for (index_t j = 0; j < k; ++j) mx = std::max(mx, p[j]);
      double s = 0;
      for (index_t j = 0; j < k; ++j) s += std::exp(static_cast<double>(p[j] - mx));
      const T lse = mx + static_cast<T>(std::log(s));
      for (index_t j = 0; j < k; ++j) o[j] = p[j] - lse;
    }
  }
  static void softmax_rows(context& ctx, const tensor_t& x, const tensor_t& out) {
    log_softmax_rows(ctx, x, out);
    for (index_t i = 0; i < out.n(); ++i) {
      T* o = out.item(i);
      for (index_t j = 0; j < out.item_size(); ++j) o[j] = std::exp(o[j]);
    }
  }

  // ---------------------------------------------------------------- elementwise (contiguous tensors)

  /// y = a·x + b·y.
  static void axpby(context& ctx, T a, const tensor_t& x, T b, const tensor_t& y) {
    MAMMOCL_EXPECTS(x.numel() == y.numel(), "axpby: sizes differ, ", x.dims(), " vs ", y.dims());
    const T* px = x.data();
    T* py = y.data();
    const index_t n = x.numel();
#pragma omp parallel for num_threads(ctx.threads()) schedule(static) if (n > 65536)
    for (index_t i = 0; i < n; ++i) py[i] = a * px[i] + (b == T(0) ? T(0) : b * py[i]);
  }
  static void scale(context& ctx, const tensor_t& x, T a) { axpby(ctx, T(0), x, a, x); }
  /// Σ x (in double).
  static double sum(context&, const tensor_t& x) {
    double s = 0;
    for_items(x, [&](const T* p, index_t k) { for (index_t j = 0; j < k; ++j) s += p[j]; });
    return s;
  }
  /// Σ x·y (in double).
  static double dot(context&, const tensor_t& x, const tensor_t& y) {
    MAMMOCL_EXPECTS(x.numel() == y.numel() && x.contiguous() && y.contiguous(), "dot: needs two contiguous tensors of one size, got ", x.dims(), " and ", y.dims());
    double s = 0;
    for (index_t i = 0; i < x.numel(); ++i) s += static_cast<double>(x.data()[i]) * y.data()[i];
    return s;
  }
  /// True when every element is finite.
  static bool all_finite(context&, const tensor_t& x) {
    bool ok = true;
    for_items(x, [&](const T* p, index_t k) { for (index_t j = 0; j < k; ++j) ok = ok && std::isfinite(p[j]); });
    return ok;
  }

  /// One SGD step, PyTorch semantics: d = g + wd·p; buf = momentum·buf + (1-dampening)·d (buf = d on the
  /// first step); d = nesterov ? d + momentum·buf : buf (when momentum > 0); p -= lr·d.
  static void sgd_step(context& ctx, const tensor_t& p, const tensor_t& g, const tensor_t* buf, T lr, T momentum,
                       T dampening, T weight_decay, bool nesterov, bool first) {
    T* pp = p.data();
    const T* pg = g.data();
    T* pb = buf ? buf->data() : nullptr;
    const index_t n = p.numel();
#pragma omp parallel for num_threads(ctx.threads()) schedule(static) if (n > 65536)
    for (index_t i = 0; i < n; ++i) {
      T d = pg[i] + weight_decay * pp[i];
      if (pb && momentum != T(0)) {
        pb[i] = first ? d : momentum * pb[i] + (T(1) - dampening) * d;
        d = nesterov ? d + momentum * pb[i] : pb[i];
      }
      pp[i] -= lr * d;
    }
  }
  /// One Adam/AdamW step, PyTorch semantics (step counts from 1). Adam adds wd·p to the gradient;
  /// AdamW (decoupled) multiplies p by (1 - lr·wd) first.
  static void adam_step(context& ctx, const tensor_t& p, const tensor_t& g, const tensor_t& m, const tensor_t& v,
                        T lr, T beta1, T beta2, T eps, T weight_decay, bool decoupled, long step) {
    T* pp = p.data();
    const T* pg = g.data();
    T* pm = m.data();
    T* pv = v.data();
    const T bc1 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta1), static_cast<double>(step)));
    const T bc2 = T(1) - static_cast<T>(std::pow(static_cast<double>(beta2), static_cast<double>(step)));
    const T step_size = lr / bc1;
    const T bc2_sqrt = std::sqrt(bc2);
    const index_t n = p.numel();
#pragma omp parallel for num_threads(ctx.threads()) schedule(static) if (n > 65536)
    for (index_t i = 0; i < n; ++i) {
      T gi = pg[i];
      if (decoupled) pp[i] *= (T(1) - lr * weight_decay);
      else gi += weight_decay * pp[i];
      pm[i] = beta1 * pm[i] + (T(1) - beta1) * gi;
      pv[i] = beta2 * pv[i] + (T(1) - beta2) * gi * gi;
      const T denom = std::sqrt(pv[i]) / bc2_sqrt + eps;
      pp[i] -= step_size * pm[i] / denom;
    }
  }

 private:
  template <bool Relu>
  static void bn_backward_impl(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& gamma,
                               const tensor_t& beta, const tensor_t& save_mean, const tensor_t& save_invstd,
                               const tensor_t& dx, T dx_beta, const tensor_t& dgamma, const tensor_t& dbeta,
                               T param_beta) {
    const index_t n = x.n(), c = x.c(), hw = x.item_size() / c, m = n * hw;
    parallel_planes(ctx, c, [&](index_t ch) {
      const T mean = save_mean.data()[ch], inv = save_invstd.data()[ch];
      const T ga = gamma.data()[ch], be = beta.data()[ch];
      double sdz = 0, sdzx = 0;
      for (index_t i = 0; i < n; ++i) {
        const T* px = x.item(i) + ch * hw;
        const T* pd = dy.item(i) + ch * hw;
        T a = 0, b = 0;  // per-plane partial sums in T (vectorised); planes are added in double
#pragma omp simd reduction(+ : a, b)
        for (index_t j = 0; j < hw; ++j) {
          const T xh = (px[j] - mean) * inv;
          const T d = pd[j];
          const T dz = (!Relu || xh * ga + be > T(0)) ? d : T(0);
          a += dz;
          b += dz * xh;
        }
        sdz += a;
        sdzx += b;
      }
      T& dgr = dgamma.data()[ch];
      T& dbr = dbeta.data()[ch];
      dgr = static_cast<T>(sdzx) + (param_beta == T(0) ? T(0) : param_beta * dgr);
      dbr = static_cast<T>(sdz) + (param_beta == T(0) ? T(0) : param_beta * dbr);
      const T k = ga * inv;
      const T mdb = static_cast<T>(sdz / static_cast<double>(m));
      const T mdg = static_cast<T>(sdzx / static_cast<double>(m));
      for (index_t i = 0; i < n; ++i) {
        const T* px = x.item(i) + ch * hw;
        const T* pd = dy.item(i) + ch * hw;
        T* po = dx.item(i) + ch * hw;
        const T keep = dx_beta;
#pragma omp simd
        for (index_t j = 0; j < hw; ++j) {
          const T xh = (px[j] - mean) * inv;
          const T d = pd[j];
          const T dz = (!Relu || xh * ga + be > T(0)) ? d : T(0);
          const T prev = keep == T(0) ? T(0) : keep * po[j];
          po[j] = k * (dz - mdb - xh * mdg) + prev;
        }
      }
    });
  }
  template <class F>
  static void for_items(const tensor_t& t, F&& f) {
    if (t.numel() == 0) return;
    if (t.contiguous()) { f(t.data(), t.numel()); return; }
    for (index_t i = 0; i < t.n(); ++i) f(t.item(i), t.item_size());
  }
  /// f(q) for q in [0, count), the items shared among the context's threads in pieces of about count / (32 ·
  /// threads) that each thread takes as it becomes free (see `piece_size`). Every f(q) must be independent of
  /// the others; which thread runs it does not change its result.
  template <class F>
  static void parallel_planes(context& ctx, index_t count, F&& f) {
    const int t = ctx.threads();
    const index_t piece = t > 1 ? piece_size(count, t, 1, 1) : count;
#pragma omp parallel for num_threads(t) schedule(dynamic, piece) if (count > 1 && t > 1)
    for (index_t q = 0; q < count; ++q) f(q);
  }
  /// parallel_planes for `work` units (elements touched or multiply-adds) in all: small jobs stay on the
  /// calling thread, since an OpenMP region costs microseconds, and far more when another process holds
  /// one of the cores (every region ends in a barrier that waits for the descheduled thread).
  template <class F>
  static void parallel_planes_if(context& ctx, index_t count, double work, F&& f) {
    if (work < parallel_work) {
      for (index_t q = 0; q < count; ++q) f(q);
      return;
    }
    parallel_planes(ctx, count, std::forward<F>(f));
  }
  static constexpr double parallel_work = 1 << 18;
  template <class F>
  static void parallel_items(context& ctx, const tensor_t& x, const tensor_t& y, F&& f) {
    MAMMOCL_EXPECTS(x.dims() == y.dims(), "elementwise op: shapes differ, ", x.dims(), " vs ", y.dims());
    const index_t k = x.item_size();
    const index_t parts = std::max<index_t>(1, std::min<index_t>(64, k / 4096));
    const index_t step = (k + parts - 1) / parts;
    parallel_planes(ctx, x.n() * parts, [&](index_t q) {
      const index_t i = q / parts, j0 = (q % parts) * step, j1 = std::min(k, j0 + step);
      if (j1 > j0) f(x.item(i) + j0, y.item(i) + j0, j1 - j0);
    });
  }
  static void check_folded_conv(const tensor_t& x, const tensor_t& scale, const tensor_t& shift, const tensor_t& w,
                                const conv_geometry& g, const shape& out, const char* op) {
    MAMMOCL_EXPECTS(x.rank() == 4 && w.rank() == 4 && w.dim(1) == x.c() && w.dim(2) == g.kh && w.dim(3) == g.kw, op,
                    ": input ", x.dims(), " and filters ", w.dims(), " do not make a ", g.kh, "x", g.kw,
                    " convolution of the input's channels");
    MAMMOCL_EXPECTS(scale.numel() == x.c() && shift.numel() == x.c(), op, ": scale ", scale.dims(), " and shift ",
                    shift.dims(), " must hold one value per input channel (", x.c(), ")");
    const shape expected({x.n(), w.dim(0), g.out_h(x.h()), g.out_w(x.w())});
    MAMMOCL_EXPECTS(out == expected, op, ": output (or output gradient) has shape ", out, ", expected ", expected);
  }
  /// x itself when the convolution's kernel applies the map xf while packing (1x1 GEMMs and the stride-1
  /// kernels with MammoCL's GEMM), or when there is no map; otherwise a new tensor max(0, x·scale + shift) for
  /// the im2col paths (and for every path with MAMMOCL_CPU_EIGEN_GEMM), which then get no map.
  static tensor_t mapped_unless_packed(context& ctx, const tensor_t& x, const conv_geometry& g, const input_map*& xf) {
    if (!xf || (implicit_gemm && (g.pointwise() || g.stride == 1))) return x;
    const index_t c = x.c(), hw = x.item_size() / c;
    const tensor_t a(x.dims());
    parallel_planes(ctx, x.n() * c, [&](index_t q) {
      const index_t i = q / c, ch = q % c;
      affine(x.item(i) + ch * hw, a.item(i) + ch * hw, hw, xf->scale[ch], xf->shift[ch], true);
    });
    xf = nullptr;
    return a;
  }
  /// The calling thread's GEMM workspace (packed panels), shared by every product it runs.
  static detail::gemm_workspace<T>& gemm_workspace() {
    thread_local detail::gemm_workspace<T> ws;
    return ws;
  }
  static void check_batch_statistics(const tensor_t& x) {
    MAMMOCL_EXPECTS(x.n() * (x.item_size() / x.c()) > 1, "batch_norm: training needs more than one value per channel, got input ",
                    x.dims());
  }
  /// Batch statistics of channel ch of x into save_mean / save_invstd, and the running statistics' update
  /// (running = (1−momentum)·running + momentum·batch, the variance unbiased) when they are given.
  static void channel_statistics(const tensor_t& x, index_t ch, const tensor_t& save_mean, const tensor_t& save_invstd,
                                 const tensor_t* running_mean, const tensor_t* running_var, double momentum, double eps) {
    const index_t n = x.n(), hw = x.item_size() / x.c(), m = n * hw;
    // One pass over x for both statistics, shifted by K, the mean of the channel's first (up to) 256
    // values: with d = x − K, μ = K + Σd/M and var = (Σd² − (Σd)²/M) / M. K is close to μ, so the
    // subtraction cancels little (a factor 1 + ((K−μ)/σ)² of the sums' rounding), and a second read
    // of x is saved. Per-plane sums in T (vectorised), planes added in double.
    const T* first = x.item(0) + ch * hw;
    const index_t ns = std::min<index_t>(hw, 256);
    double k0 = 0;
    for (index_t j = 0; j < ns; ++j) k0 += first[j];
    const T shift = static_cast<T>(k0 / static_cast<double>(ns));
    double v = 0, dsum = 0;
    for (index_t i = 0; i < n; ++i) {
      const T* p = x.item(i) + ch * hw;
      T a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
      for (index_t j = 0; j < hw; ++j) {
        const T d = p[j] - shift;
        a += d * d;
        b += d;
      }
      v += a;
      dsum += b;
    }
    const double mean = static_cast<double>(shift) + dsum / static_cast<double>(m);
    v = std::max(0.0, v - dsum * dsum / static_cast<double>(m));
    const double var = v / static_cast<double>(m);
    const double inv = 1.0 / std::sqrt(var + eps);
    save_mean.data()[ch] = static_cast<T>(mean);
    save_invstd.data()[ch] = static_cast<T>(inv);
    if (running_mean) {
      T& rm = running_mean->data()[ch];
      T& rv = running_var->data()[ch];
      rm = static_cast<T>((1.0 - momentum) * rm + momentum * mean);
      rv = static_cast<T>((1.0 - momentum) * rv + momentum * var * static_cast<double>(m) / static_cast<double>(m - 1));
    }
  }
  /// Channel ch's training-mode batch norm as y = a·x + b, from the saved (rounded) statistics.
  static std::pair<T, T> fold_saved(const tensor_t& gamma, const tensor_t& beta, const tensor_t& save_mean,
                                    const tensor_t& save_invstd, index_t ch) {
    const double mean = save_mean.data()[ch], inv = save_invstd.data()[ch];
    return {static_cast<T>(gamma.data()[ch] * inv), static_cast<T>(beta.data()[ch] - mean * gamma.data()[ch] * inv)};
  }
  /// Channel ch's inference-mode batch norm as y = a·x + b, from the running statistics.
  static std::pair<T, T> fold_running(const tensor_t& gamma, const tensor_t& beta, const tensor_t& running_mean,
                                      const tensor_t& running_var, double eps, index_t ch) {
    const double inv = 1.0 / std::sqrt(static_cast<double>(running_var.data()[ch]) + eps);
    const double mean = running_mean.data()[ch];
    return {static_cast<T>(gamma.data()[ch] * inv), static_cast<T>(beta.data()[ch] - mean * gamma.data()[ch] * inv)};
  }
  static void affine(const T* x, T* y, index_t k, T a, T b, bool relu) {
    if (relu)
      for (index_t j = 0; j < k; ++j) { const T v = x[j] * a + b; y[j] = v > T(0) ? v : T(0); }
    else
      for (index_t j = 0; j < k; ++j) y[j] = x[j] * a + b;
  }
  /// f(output index, index of its window's maximum in src) for every output position, in order: the first
  /// maximum in row-major order, or the last NaN. 3x3 windows that lie inside the image (DenseNet's pool0)
  /// are searched 64 outputs at a time by `row_argmax3`, with the same result.
  template <class F>
  static void for_each_window(const T* src, index_t h, index_t w, index_t ho, index_t wo, const pool_geometry& g,
                              F&& f) {
    const index_t s = g.stride, pad = g.pad;
    // Interior outputs: oy·s − pad ≥ 0 and oy·s − pad + k ≤ h (likewise in x).
    const auto hi = [&](index_t n) { return n + pad - g.k < 0 ? index_t{0} : (n + pad - g.k) / s + 1; };
    const index_t lo = std::min(wo, (pad + s - 1) / s), yhi = std::min(ho, hi(h)), xhi = std::max(lo, std::min(wo, hi(w)));
    constexpr index_t chunk = pool_row_chunk;
    std::int32_t best[chunk];
    for (index_t oy = 0; oy < ho; ++oy) {
      if (g.k != 3 || oy < lo || oy >= yhi || (s != 1 && s != 2)) {
        for (index_t ox = 0; ox < wo; ++ox) f(oy * wo + ox, argmax_window(src, h, w, oy, ox, g));
        continue;
      }
      for (index_t ox = 0; ox < lo; ++ox) f(oy * wo + ox, argmax_window(src, h, w, oy, ox, g));
      for (index_t x0 = lo; x0 < xhi; x0 += chunk) {
        const index_t len = std::min(chunk, xhi - x0);
        const T* top = src + (oy * s - pad) * w + x0 * s - pad;  // window of output x0 + j starts at top + s·j
        if (s == 1) row_argmax3<1>(top, w, len, best);
        else row_argmax3<2>(top, w, len, best);
        const index_t base = top - src;
        for (index_t j = 0; j < len; ++j) f(oy * wo + x0 + j, base + best[j]);
      }
      for (index_t ox = xhi; ox < wo; ++ox) f(oy * wo + ox, argmax_window(src, h, w, oy, ox, g));
    }
  }
  /// For j < len ≤ pool_row_chunk: the offset from top of the maximum of the 3x3 window at top + S·j (rows w apart), by the
  /// rule of argmax_window. Each row's three values are searched first (the first maximum or the last NaN
  /// in the row), then the rows in order with the same rule, which is the row-major rule over the window;
  /// written without branches so that the compiler vectorises the loop over j.
  static constexpr index_t pool_row_chunk = 64;
  template <index_t S>
  static void row_argmax3(const T* top, index_t w, index_t len, std::int32_t* best) {
    T bv[pool_row_chunk];
#pragma GCC unroll 1
    for (index_t r = 0; r < 3; ++r) {
      const T* row = top + r * w;
      const std::int32_t roff = static_cast<std::int32_t>(r * w);
#pragma omp simd
      for (index_t j = 0; j < len; ++j) {
        const T v0 = row[S * j], v1 = row[S * j + 1], v2 = row[S * j + 2];
        T m = v0;
        std::int32_t i = 0;
        const bool t1 = v1 > m || v1 != v1;
        m = t1 ? v1 : m;
        i = t1 ? 1 : i;
        const bool t2 = v2 > m || v2 != v2;
        m = t2 ? v2 : m;
        i = t2 ? 2 : i;
        const std::int32_t idx = roff + static_cast<std::int32_t>(S * j) + i;
        const bool take = r == 0 || m > bv[j] || m != m;
        bv[j] = take ? m : bv[j];
        best[j] = take ? idx : best[j];
      }
    }
  }
  static index_t argmax_window(const T* src, index_t h, index_t w, index_t oy, index_t ox, const pool_geometry& g) {
    const index_t y0 = oy * g.stride - g.pad, x0 = ox * g.stride - g.pad;
    index_t best = -1;
    T bv = -std::numeric_limits<T>::infinity();
    for (index_t iy = std::max<index_t>(y0, 0); iy < std::min(y0 + g.k, h); ++iy)
      for (index_t ix = std::max<index_t>(x0, 0); ix < std::min(x0 + g.k, w); ++ix) {
        const T v = src[iy * w + ix];
        if (best < 0 || v > bv || std::isnan(v)) { bv = v; best = iy * w + ix; }
      }
    return best;
  }
  static T avg_window(index_t h, index_t w, index_t oy, index_t ox, const pool_geometry& g, index_t& y0, index_t& y1,
                      index_t& x0, index_t& x1) {
    y0 = oy * g.stride - g.pad;
    x0 = ox * g.stride - g.pad;
    y1 = std::min(y0 + g.k, h + g.pad);
    x1 = std::min(x0 + g.k, w + g.pad);
    const index_t area = (y1 - y0) * (x1 - x0);
    y0 = std::max<index_t>(y0, 0);
    x0 = std::max<index_t>(x0, 0);
    y1 = std::min(y1, h);
    x1 = std::min(x1, w);
    return T(1) / static_cast<T>(area);
  }
  /// How many images share one im2col matrix: enough columns to keep the GEMM efficient on small
  /// feature maps, with the column buffer held under about 8 M elements.
  static index_t images_per_chunk(index_t kk, index_t p, index_t n) {
    const index_t by_cols = std::max<index_t>(1, 4096 / std::max<index_t>(p, 1));
    const index_t by_mem = std::max<index_t>(1, (index_t{8} << 20) / std::max<index_t>(kk * p, 1));
    return std::max<index_t>(1, std::min({n, by_cols, by_mem}));
  }
  /// col(K, nc·P): row r = (ci, ky, kx), column j·P + (oy·Wo + ox) for image i0 + j.
  static void im2col(context& ctx, const tensor_t& x, index_t i0, index_t nc, const conv_geometry& g, T* col) {
    const index_t cin = x.c(), h = x.h(), w = x.w(), ho = g.out_h(h), wo = g.out_w(w), p = ho * wo;
    const index_t rows = cin * g.kh * g.kw, ld = nc * p;
    parallel_planes(ctx, rows, [&](index_t r) {
      const index_t ci = r / (g.kh * g.kw), ky = (r / g.kw) % g.kh, kx = r % g.kw;
      for (index_t j = 0; j < nc; ++j) {
        const T* src = x.item(i0 + j) + ci * h * w;
        T* dst = col + r * ld + j * p;
        for (index_t oy = 0; oy < ho; ++oy) {
          const index_t iy = oy * g.stride - g.pad + ky;
          T* d = dst + oy * wo;
          if (iy < 0 || iy >= h) { std::fill(d, d + wo, T(0)); continue; }
          const T* s = src + iy * w;
          if (g.stride == 1) {
            const index_t lo = std::clamp<index_t>(g.pad - kx, 0, wo), hi = std::clamp<index_t>(w + g.pad - kx, lo, wo);
            std::fill(d, d + lo, T(0));
            std::memcpy(d + lo, s + lo - g.pad + kx, sizeof(T) * (hi - lo));
            std::fill(d + hi, d + wo, T(0));
          } else {
            for (index_t ox = 0; ox < wo; ++ox) {
              const index_t ix = ox * g.stride - g.pad + kx;
              d[ox] = (ix >= 0 && ix < w) ? s[ix] : T(0);
            }
          }
        }
      }
    });
  }
  /// dx(images i0..i0+nc) = col2im(col) + beta·dx; parallel over input channels, so no two threads write one element.
  static void col2im(context& ctx, const T* col, index_t i0, index_t nc, const conv_geometry& g, const tensor_t& dx, T beta) {
    const index_t cin = dx.c(), h = dx.h(), w = dx.w(), ho = g.out_h(h), wo = g.out_w(w), p = ho * wo, ld = nc * p;
    parallel_planes(ctx, cin * nc, [&](index_t q) {
      const index_t ci = q / nc, j = q % nc;
      T* dst = dx.item(i0 + j) + ci * h * w;
      if (beta == T(0)) std::fill(dst, dst + h * w, T(0)); else if (beta != T(1)) for (index_t t = 0; t < h * w; ++t) dst[t] *= beta;
      for (index_t ky = 0; ky < g.kh; ++ky)
        for (index_t kx = 0; kx < g.kw; ++kx) {
          const T* src = col + ((ci * g.kh + ky) * g.kw + kx) * ld + j * p;
          for (index_t oy = 0; oy < ho; ++oy) {
            const index_t iy = oy * g.stride - g.pad + ky;
            if (iy < 0 || iy >= h) continue;
            T* d = dst + iy * w;
            const T* s = src + oy * wo;
            for (index_t ox = 0; ox < wo; ++ox) {
              const index_t ix = ox * g.stride - g.pad + kx;
              if (ix >= 0 && ix < w) d[ix] += s[ox];
            }
          }
        }
    });
  }
  /// y(images i0..) plane (co) <- out(co, j·P ..).
  static void scatter_columns(context& ctx, const T* out, index_t cout, index_t nc, index_t p, const tensor_t& y, index_t i0,
                              T beta) {
    parallel_planes(ctx, cout * nc, [&](index_t q) {
      const index_t co = q / nc, j = q % nc;
      T* d = y.item(i0 + j) + co * p;
      const T* s = out + co * nc * p + j * p;
      if (beta == T(0)) std::memcpy(d, s, sizeof(T) * p);
      else for (index_t t = 0; t < p; ++t) d[t] = s[t] + beta * d[t];
    });
  }
  /// How many images share one implicit GEMM: about 4096 columns, so small feature maps still give
  /// the threads long column ranges.
  static index_t implicit_chunk(index_t p, index_t n) {
    return std::max<index_t>(1, std::min<index_t>(n, 4096 / std::max<index_t>(p, 1)));
  }

  // With MAMMOCL_CPU_EIGEN_GEMM the convolutions go through im2col and Eigen's product, so that the
  // Eigen build keeps testing that path; otherwise through the kernels below (MammoCL's GEMM kernel).
#ifdef MAMMOCL_CPU_EIGEN_GEMM
  static constexpr bool implicit_gemm = false;
#else
  static constexpr bool implicit_gemm = true;
#endif

  /// Packs rows [pc, pc+kb) and columns [jc, jc+nb) (offset by col0) of the im2col matrix of images
  /// i0.. of x (row r = (ci, ky, kx), column c = image·P + oy·Wo + ox) in the GEMM's panel order.
  struct im2col_packer {
    const tensor_t& x;
    index_t i0, col0;
    conv_geometry g;
    index_t h, w, wo, p;
    std::vector<index_t>& row_off;  // per packed row: ci·H·W, and ky, kx
    std::vector<index_t>& row_ky;
    std::vector<index_t>& row_kx;

    void operator()(long pc, long jc, long kb, long nb, T* dst) const {
      constexpr long NR = kernel::panel_width;
      row_off.resize(static_cast<std::size_t>(kb));
      row_ky.resize(static_cast<std::size_t>(kb));
      row_kx.resize(static_cast<std::size_t>(kb));
      const index_t taps = g.kh * g.kw;
      for (long q = 0; q < kb; ++q) {
        const index_t r = pc + q;
        row_off[q] = (r / taps) * h * w;
        row_ky[q] = (r % taps) / g.kw - g.pad;
        row_kx[q] = r % g.kw - g.pad;
      }
      struct segment {
        const T* img;
        index_t iy0, ix0, len, off;  // input row/column of tap (0,0) without padding, run length, panel offset
      };
      for (long j0 = 0; j0 < nb; j0 += NR) {
        const long nn = std::min<long>(NR, nb - j0);
        T* d = dst + (j0 / NR) * NR * kb;
        segment seg[NR];
        int ns = 0;
        for (long j = 0; j < nn;) {
          const index_t c = col0 + jc + j0 + j, img = c / p, pix = c % p, oy = pix / wo, ox = pix % wo;
          const index_t len = std::min<index_t>(nn - j, wo - ox);
          seg[ns++] = {x.item(i0 + img), oy * g.stride, ox * g.stride, len, j};
          j += len;
        }
        for (long q = 0; q < kb; ++q) {
          T* o = d + q * NR;
          for (long j = nn; j < NR; ++j) o[j] = T(0);
          const index_t ky = row_ky[q], kx = row_kx[q];
          for (int k = 0; k < ns; ++k) {
            const segment& sg = seg[k];
            T* os = o + sg.off;
            const index_t iy = sg.iy0 + ky;
            if (iy < 0 || iy >= h) {
              for (index_t t = 0; t < sg.len; ++t) os[t] = T(0);
              continue;
            }
            const T* srow = sg.img + row_off[q] + iy * w;
            if (g.stride == 1) {
              const index_t ix0 = sg.ix0 + kx;
              if (sg.len == NR && ix0 >= 0 && ix0 + NR <= w) {  // the common case: one whole panel row in bounds
                std::memcpy(os, srow + ix0, sizeof(T) * NR);
                continue;
              }
              const index_t lo = std::clamp<index_t>(-ix0, 0, sg.len), hi = std::clamp<index_t>(w - ix0, lo, sg.len);
              for (index_t t = 0; t < lo; ++t) os[t] = T(0);
              for (index_t t = lo; t < hi; ++t) os[t] = srow[ix0 + t];
              for (index_t t = hi; t < sg.len; ++t) os[t] = T(0);
            } else {
              for (index_t t = 0; t < sg.len; ++t) {
                const index_t ix = sg.ix0 + t * g.stride + kx;
                os[t] = (ix >= 0 && ix < w) ? srow[ix] : T(0);
              }
            }
          }
        }
      }
    }
  };

  /// C(m x nc·P) = A(m x K) · im2col(x images i0..i0+nc) + beta·C, K = Cin·kh·kw, P = Ho·Wo, with the
  /// columns split into one range per thread (each thread packs its own panels; no synchronisation).
  static void conv_gemm(context& ctx, const T* a, index_t m, const tensor_t& x, index_t i0, index_t nc,
                        const conv_geometry& g, T beta, T* c, index_t ldc) {
    const index_t h = x.h(), w = x.w(), wo = g.out_w(w), p = g.out_h(h) * wo, k = x.c() * g.kh * g.kw, n = nc * p;
    const auto run = [&](index_t c0, index_t c1) {
      thread_local detail::gemm_workspace<T> ws;
      thread_local std::vector<index_t> off, ky, kx;
      const im2col_packer pack{x, i0, c0, g, h, w, wo, p, off, ky, kx};
      kernel::run_packed_b(ws, false, m, c1 - c0, k, T(1), a, k, pack, beta, c + c0, ldc);
    };
    const int t = ctx.threads();
#ifdef _OPENMP
    if (t > 1 && static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k) >= 1.0e6 && !omp_in_parallel()) {
      const index_t per = piece_size(n, t, 256, kernel::panel_width), pieces = (n + per - 1) / per;
#pragma omp parallel for num_threads(t) schedule(dynamic, 1)
      for (index_t q = 0; q < pieces; ++q) run(q * per, std::min<index_t>(n, q * per + per));
      return;
    }
#endif
    (void)t;
    run(0, n);
  }

  /// Images i0..i0+nc of x, zero-padded by `pad` and stored channel-blocked: block b (channels
  /// [b·NR, b·NR+NR), zero past C) at xb + b·stride_b, position-major (image j, padded row, padded column),
  /// NR channels per position, followed by `margin` zero positions.
  static void pad_and_block(context& ctx, const tensor_t& x, index_t i0, index_t nc, index_t pad, index_t margin, T* xb,
                            index_t stride_b, const input_map* xf = nullptr) {
    constexpr index_t NR = kernel::panel_width;
    const index_t cin = x.c(), h = x.h(), w = x.w(), wp = w + 2 * pad, q = (h + 2 * pad) * wp;
    const index_t blocks = (cin + NR - 1) / NR;
    parallel_planes_if(ctx, blocks * nc, static_cast<double>(blocks * NR * nc * q), [&](index_t t) {
      const index_t b = t / nc, j = t % nc, c0 = b * NR, cn = std::min<index_t>(NR, cin - c0);
      T* dst = xb + b * stride_b + j * q * NR;
      // Zero only the padding; each image row is the GEMM's transposed panel packing of NR channel rows
      // (in-register transposes where available), written position by position.
      std::fill(dst, dst + pad * wp * NR, T(0));
      for (index_t iy = 0; iy < h; ++iy) {
        T* row = dst + (iy + pad) * wp * NR;
        std::fill(row, row + pad * NR, T(0));
        if (xf) kernel::pack_b_as(true, x.item(i0 + j), h * w, iy * w, c0, w, cn, row + pad * NR, *xf);
        else kernel::pack_b(true, x.item(i0 + j), h * w, iy * w, c0, w, cn, row + pad * NR);
        std::fill(row + (pad + w) * NR, row + wp * NR, T(0));
      }
      std::fill(dst + (h + pad) * wp * NR, dst + q * NR, T(0));
      if (j == nc - 1) std::fill(dst + q * NR, dst + (q + margin) * NR, T(0));
    });
  }

  /// y = conv(x, w) for stride 1 as a direct convolution: x is padded and channel-blocked once
  /// (pad_and_block), the filters packed per block of 16 output channels; a register tile of 6 output
  /// positions x 16 output channels then accumulates over every tap and input channel, reading the
  /// blocked image in place (tap (ky, kx) is the offset ky·Wp + kx on the padded grid). Nothing of the
  /// size of the im2col matrix is ever written; positions in the Wp − Wo padding columns are computed and dropped.
  /// w is (cout, Cin, kh, kw), contiguous; y = conv + beta·y.
  static void conv_forward_direct(context& ctx, const tensor_t& x, const T* wsrc, index_t cout, const tensor_t& y,
                                  const conv_geometry& g, T beta, const input_map* xf = nullptr) {
    constexpr index_t NR = kernel::panel_width, PX = 6, L = 32 / sizeof(T), NV = kernel::vectors_per_panel_row;
    using vec = typename kernel::vector_type;
    const index_t n = x.n(), cin = x.c(), h = x.h(), wd = x.w(), ho = y.h(), wo = y.w();
    const index_t wp = wd + 2 * g.pad, q = (h + 2 * g.pad) * wp, taps = g.kh * g.kw;
    const index_t blocks = (cin + NR - 1) / NR, cinp = blocks * NR, cob = (cout + NR - 1) / NR;
    const index_t margin = (g.kh - 1) * wp + (g.kw - 1) + PX;
    const index_t chunk = std::max<index_t>(1, std::min<index_t>(n, (index_t{8} << 20) / (cinp * q)));
    const index_t stride_b = (chunk * q + margin) * NR;
    T* xb = ctx.scratch(static_cast<std::size_t>(blocks * stride_b), 0);
    // wpk[o][tap][ci][16]: 16 output channels of block o for input channel ci at one tap, zero-padded.
    T* wpk = ctx.scratch(static_cast<std::size_t>(cob * taps * cinp * NR), 1);
    parallel_planes_if(ctx, cob, static_cast<double>(cob * taps * cinp * NR), [&](index_t o) {
      for (index_t tap = 0; tap < taps; ++tap)
        for (index_t ci = 0; ci < cinp; ++ci) {
          T* d = wpk + ((o * taps + tap) * cinp + ci) * NR;
          for (index_t c = 0; c < NR; ++c) {
            const index_t co = o * NR + c;
            d[c] = (co < cout && ci < cin) ? wsrc[(co * cin + ci) * taps + tap] : T(0);
          }
        }
    });
    const index_t rows = ho * wp;  // output positions on the padded-width grid, per image
    const index_t tiles = (rows + PX - 1) / PX;
    for (index_t i0 = 0; i0 < n; i0 += chunk) {
      const index_t nc = std::min(chunk, n - i0);
      pad_and_block(ctx, x, i0, nc, g.pad, margin, xb, stride_b, xf);
      // With many output blocks (the input gradient: Cin = 128 outputs from 32 channels), the output block
      // goes outermost, so that its packed filters stay in L1 and each thread writes whole channel planes
      // in order; with few (the forward pass: 32 outputs from up to 1024 channels), every block of a tile is
      // computed while the tile's image rows are in cache.
      const bool o_outer = cob >= 4;
      // Tiles go in groups of G: a group's results are staged per output channel and written as runs of up
      // to G·PX positions, not 6 at a time into 16 planes that may lie a power of two apart (128 x 128
      // planes: 64 KiB, the same cache set).
      constexpr index_t G = 8;
      const index_t tgroups = (tiles + G - 1) / G, per_o = nc * tgroups;
      const index_t items = (o_outer ? cob : 1) * per_o;
      parallel_planes_if(ctx, items, static_cast<double>(nc * rows * cob * NR * taps * cinp), [&](index_t t) {
        const index_t u = t % per_o, j = u / tgroups, tile0 = (u % tgroups) * G, tile1 = std::min(tiles, tile0 + G);
        const index_t o_begin = o_outer ? t / per_o : 0, o_end = o_outer ? o_begin + 1 : cob;
        T stage[NR][G * PX];
        for (index_t o = o_begin; o < o_end; ++o) {
          for (index_t tl = tile0; tl < tile1; ++tl) {
            const T* base = xb + (j * q + tl * PX) * NR;
            vec acc[PX][NV];
            for (index_t r = 0; r < PX; ++r)
              for (index_t v = 0; v < NV; ++v) acc[r][v] = vec{};
            for (index_t tap = 0; tap < taps; ++tap) {
              const T* a_tap = base + ((tap / g.kw) * wp + tap % g.kw) * NR;
              const T* w_tap = wpk + (o * taps + tap) * cinp * NR;
              for (index_t b = 0; b < blocks; ++b) {
                const T* a = a_tap + b * stride_b;
                const T* wb = w_tap + b * NR * NR;
                for (index_t c = 0; c < NR; ++c) kernel::template rank1_update<PX>(acc, a + c, NR, wb + c * NR);
              }
            }
            T tile[PX][NR];
            for (index_t r = 0; r < PX; ++r)
              for (index_t v = 0; v < NV; ++v) std::memcpy(&tile[r][v * L], &acc[r][v], sizeof(vec));
            const index_t col = (tl - tile0) * PX;
            for (index_t c = 0; c < NR; ++c)
              for (index_t r = 0; r < PX; ++r) stage[c][col + r] = tile[r][c];
          }
          // Write the group's positions q0 .. q1 (padded-width grid) channel by channel, one output row
          // segment at a time; the Wp − Wo padding columns are dropped.
          const index_t q0 = tile0 * PX, q1 = std::min(rows, tile1 * PX);
          for (index_t c = 0; c < NR && o * NR + c < cout; ++c) {
            T* plane = y.item(i0 + j) + (o * NR + c) * ho * wo;
            for (index_t pos = q0; pos < q1;) {
              const index_t oy = pos / wp, ox = pos % wp, run_end = std::min(q1, oy * wp + wp);
              if (ox < wo) {
                const index_t len = std::min(run_end, oy * wp + wo) - pos;
                T* d = plane + oy * wo + ox;
                const T* sv = &stage[c][pos - q0];
                if (beta == T(0))
                  for (index_t e = 0; e < len; ++e) d[e] = sv[e];
                else
                  for (index_t e = 0; e < len; ++e) d[e] = sv[e] + beta * d[e];
              }
              pos = run_end;
            }
          }
        }
      });
    }
  }

  /// The layout both Winograd kernels work on: images of Cin channels, h x w, padded by 1 and stored
  /// channel-blocked by pad_and_block (`blocks` blocks of NR channels, each `stride_b` apart, `chunk` images
  /// at a time), cut into th x tw tiles of 2 x 2 outputs per image. An odd height or width makes the last
  /// tiles read one row or column past the padded image (into the next image, or the zero `margin` after the
  /// last one); those values only reach outputs that are dropped (or, in the filter gradient, are multiplied
  /// by the zero dy beyond the map).
  struct winograd_grid {
    index_t blocks, cinp, wp, q, th, tw, per_image, margin, chunk, stride_b;
    winograd_grid(index_t n, index_t cin, index_t h, index_t w)
        : blocks((cin + kernel::panel_width - 1) / kernel::panel_width),
          cinp(blocks * kernel::panel_width),
          wp(w + 2),
          q((h + 2) * wp),
          th((h + 1) / 2),
          tw((w + 1) / 2),
          per_image(th * tw),
          margin(2 * wp + 4),
          chunk(std::max<index_t>(1, std::min<index_t>(n, (index_t{8} << 20) / (cinp * q)))),
          stride_b((chunk * q + margin) * kernel::panel_width) {}
  };

  /// V_ξ = (Bᵀ d B)_ξ, Bᵀ = [1 0 −1 0; 0 1 1 0; 0 −1 1 0; 0 1 0 −1], for the tiles t0 .. t0+tn of one block of NR
  /// channels of a padded, channel-blocked image laid out as `gr` says (xb: that block; image j's padded position
  /// p at xb + (j·q + p)·NR; tile t is image t / per_image, tile row (t % per_image) / tw, column t % tw; its 4x4
  /// patch starts at padded row 2·ty, column 2·tx). V_ξ(tile tl, channel e) goes to v[ξ·xi_stride + tl·ld + e].
  static void winograd_input_tiles(const winograd_grid& gr, const T* xb, index_t t0, index_t tn, T* v, index_t ld,
                                   index_t xi_stride) {
    constexpr index_t NR = kernel::panel_width;
    const index_t wp = gr.wp;
    for (index_t tl = 0; tl < tn; ++tl) {
      const index_t t = t0 + tl, j = t / gr.per_image, ty = (t % gr.per_image) / gr.tw, tx = t % gr.tw;
      const T* d = xb + (j * gr.q + 2 * ty * wp + 2 * tx) * NR;
      T bd[4][4][NR];  // Bᵀ·d
      for (index_t c = 0; c < 4; ++c) {
        const T* d0 = d + c * NR;
        const T* d1 = d0 + wp * NR;
        const T* d2 = d1 + wp * NR;
        const T* d3 = d2 + wp * NR;
        for (index_t e = 0; e < NR; ++e) {
          bd[0][c][e] = d0[e] - d2[e];
          bd[1][c][e] = d1[e] + d2[e];
          bd[2][c][e] = d2[e] - d1[e];
          bd[3][c][e] = d1[e] - d3[e];
        }
      }
      T* out = v + tl * ld;
      for (index_t r = 0; r < 4; ++r)
        for (index_t e = 0; e < NR; ++e) {
          out[(r * 4 + 0) * xi_stride + e] = bd[r][0][e] - bd[r][2][e];
          out[(r * 4 + 1) * xi_stride + e] = bd[r][1][e] + bd[r][2][e];
          out[(r * 4 + 2) * xi_stride + e] = bd[r][2][e] - bd[r][1][e];
          out[(r * 4 + 3) * xi_stride + e] = bd[r][1][e] - bd[r][3][e];
        }
    }
  }

  /// Whether the Winograd kernels compute this convolution: 3x3, stride 1, padding 1 (a DenseNet dense layer's
  /// 3x3 and, with the filters flipped, its input gradient), with enough channels on both sides, maps of at
  /// least 64 positions and at least 384 tiles in the batch, for the transforms to pay. At 7 x 7 the tiles'
  /// rounding (8 x 8 computed for 7 x 7) ate the gain, and one image of 32 x 32 (256 tiles) ran 0.8-0.95x the
  /// direct kernel; from 14 x 14 at batch 8 (392 tiles) on, 128 -> 32 channels (the forward pass) ran 1.1-1.3x
  /// faster and 32 -> 128 (the input gradient) 1.2-1.4x.
  static bool winograd_applies(const conv_geometry& g, index_t cin, index_t cout, index_t n, index_t h, index_t w) {
    return g.kh == 3 && g.kw == 3 && g.stride == 1 && g.pad == 1 && cin >= 16 && cout >= 16 && h * w >= 64 &&
           n * ((h + 1) / 2) * ((w + 1) / 2) >= 384;
  }

  /// y = conv(x, w) + beta·y for 3x3 filters, stride 1, padding 1, by Winograd's minimal filtering F(2x2, 3x3)
  /// (Lavin & Gray, 2016): each 2x2 block of outputs ("tile") is Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A, with d the tile's
  /// 4x4 input patch. Summed over input channels, the element-wise product becomes 16 independent matrix
  /// products M_ξ (tiles x Cout) = V_ξ (tiles x Cin) · U_ξ (Cin x Cout): 16 multiply-adds per tile and channel
  /// pair instead of the direct convolution's 36. Tiles go in blocks of `TB` (all 16 V_ξ of a block stay in
  /// L2); the image is padded and channel-blocked first (pad_and_block), so that an input transform works on
  /// 16 channels at a time. w is (cout, Cin, 3, 3), contiguous.
  static void conv_forward_winograd(context& ctx, const tensor_t& x, const T* wsrc, index_t cout, const tensor_t& y,
                                    T beta, const input_map* xf = nullptr) {
    constexpr index_t NR = kernel::panel_width;
    const index_t n = x.n(), cin = x.c(), h = x.h(), wd = x.w();  // y is h x wd too
    const winograd_grid gr(n, cin, h, wd);
    const index_t cob = (cout + NR - 1) / NR;
    T* xb = ctx.scratch(static_cast<std::size_t>(gr.blocks * gr.stride_b), 0);
    // U_ξ in the GEMM's panel layout: rows Cin (zero past cin), panels of NR output channels (zero past cout).
    const index_t ustride = cob * gr.cinp * NR;
    T* u = ctx.scratch(static_cast<std::size_t>(16 * ustride), 1);
    parallel_planes_if(ctx, cob * NR, static_cast<double>(cob * NR * gr.cinp * 16), [&](index_t co) {
      for (index_t ci = 0; ci < gr.cinp; ++ci) {
        T gg[3][3] = {};
        if (co < cout && ci < cin)
          for (int e = 0; e < 9; ++e) gg[e / 3][e % 3] = wsrc[(co * cin + ci) * 9 + e];
        T a[4][3];  // G·g, G = [1 0 0; ½ ½ ½; ½ −½ ½; 0 0 1]
        for (int c = 0; c < 3; ++c) {
          a[0][c] = gg[0][c];
          a[1][c] = T(0.5) * (gg[0][c] + gg[1][c] + gg[2][c]);
          a[2][c] = T(0.5) * (gg[0][c] - gg[1][c] + gg[2][c]);
          a[3][c] = gg[2][c];
        }
        for (int r = 0; r < 4; ++r) {  // (G·g)·Gᵀ
          const T v[4] = {a[r][0], T(0.5) * (a[r][0] + a[r][1] + a[r][2]), T(0.5) * (a[r][0] - a[r][1] + a[r][2]), a[r][2]};
          for (int c = 0; c < 4; ++c) u[(r * 4 + c) * ustride + (co / NR) * gr.cinp * NR + ci * NR + co % NR] = v[c];
        }
      }
    });
    const index_t TB = std::clamp<index_t>(6144 / (gr.cinp + cout) / 6 * 6, 6, 96);
    for (index_t i0 = 0; i0 < n; i0 += gr.chunk) {
      const index_t nc = std::min(gr.chunk, n - i0), tiles = nc * gr.per_image, nblk = (tiles + TB - 1) / TB;
      pad_and_block(ctx, x, i0, nc, 1, gr.margin, xb, gr.stride_b, xf);
      const double macs = static_cast<double>(tiles) * 16.0 * static_cast<double>(gr.cinp * cout);
      parallel_planes_if(ctx, nblk, macs, [&](index_t b) {
        thread_local detail::gemm_workspace<T> ws;
        thread_local std::vector<T> vbuf, mbuf;
        vbuf.resize(static_cast<std::size_t>(16 * TB * gr.cinp));
        mbuf.resize(static_cast<std::size_t>(16 * TB * cout));
        T* v = vbuf.data();
        T* mm = mbuf.data();
        const index_t t0 = b * TB, tn = std::min(TB, tiles - t0);
        // V_ξ (tiles x Cin): channel block outermost, so that the patches are read from 4 image rows at a time.
        for (index_t blk = 0; blk < gr.blocks; ++blk)
          winograd_input_tiles(gr, xb + blk * gr.stride_b, t0, tn, v + blk * NR, gr.cinp, TB * gr.cinp);
        for (index_t xi = 0; xi < 16; ++xi)
          kernel::run_panels(ws, false, tn, cout, gr.cinp, T(1), v + xi * TB * gr.cinp, gr.cinp, u + xi * ustride,
                             gr.cinp * NR, T(0), mm + xi * TB * cout, cout);
        // y = Aᵀ M A, Aᵀ = [1 1 1 0; 0 1 −1 −1], for every output channel of the tile at once, staged as
        // stage[co][output row 0 or 1][2·tile + column] and then copied channel by channel as runs of whole
        // tile rows: writing 4 values into each of Cout planes per tile was slow when the planes lie a power
        // of two apart (64 x 64 and 128 x 128 maps: 16 and 64 KiB, the same cache sets), as for the direct
        // kernel, and a staged row is a contiguous run of the output row.
        thread_local std::vector<T> sbuf;
        sbuf.resize(static_cast<std::size_t>(4 * TB * cout));
        T* stage = sbuf.data();
        const index_t xs = TB * cout;
        for (index_t tl = 0; tl < tn; ++tl) {
          const T* m = mm + tl * cout;
#pragma omp simd
          for (index_t co = 0; co < cout; ++co) {
            T a0[4], a1[4];
            for (index_t c = 0; c < 4; ++c) {
              const T m0 = m[c * xs + co], m1 = m[(4 + c) * xs + co], m2 = m[(8 + c) * xs + co], m3 = m[(12 + c) * xs + co];
              a0[c] = m0 + m1 + m2;
              a1[c] = m1 - m2 - m3;
            }
            T* st = stage + co * 4 * TB + 2 * tl;
            st[0] = a0[0] + a0[1] + a0[2];
            st[1] = a0[1] - a0[2] - a0[3];
            st[2 * TB] = a1[0] + a1[1] + a1[2];
            st[2 * TB + 1] = a1[1] - a1[2] - a1[3];
          }
        }
        for (index_t r0 = 0; r0 < tn;) {  // a run of tiles in one tile row: tiles r0 .. r1
          const index_t t = t0 + r0, j = t / gr.per_image, ty = (t % gr.per_image) / gr.tw, tx0 = t % gr.tw;
          const index_t r1 = std::min(tn, r0 + (gr.tw - tx0));
          const index_t oy = 2 * ty, ny = std::min<index_t>(2, h - oy);
          const index_t ox0 = 2 * tx0, len = std::min(wd, 2 * (tx0 + (r1 - r0))) - ox0;
          T* img = y.item(i0 + j) + oy * wd + ox0;
          for (index_t co = 0; co < cout; ++co)
            for (index_t r = 0; r < ny; ++r) {
              const T* st = stage + co * 4 * TB + r * 2 * TB + 2 * r0;
              T* dst = img + co * h * wd + r * wd;
              if (beta == T(0))
                std::memcpy(dst, st, sizeof(T) * static_cast<std::size_t>(len));
              else
#pragma omp simd
                for (index_t e = 0; e < len; ++e) dst[e] = st[e] + beta * dst[e];
            }
          r0 = r1;
        }
      });
    }
  }

  /// dw = ∂L/∂w + beta·dw for the convolution of conv_forward_winograd, differentiated through its transforms:
  /// with dM = A·dy_tile·Aᵀ (4x4 from each 2x2 tile of dy), dU_ξ (Cin x Cout) = Σ_tiles V_ξ(tile, ·)ᵀ · dM_ξ(tile, ·)
  /// and dw = Gᵀ·dU·G. The threads take groups of up to 64 input channels, each accumulating its columns of dUᵀ
  /// over all tiles in order: every value is summed in the same order whatever the grouping, so the result does
  /// not depend on the thread count. dM of the whole chunk of images
  /// is transformed first (16 x tiles x Cout values; 12.8 MB for a batch of 8 at 56 x 56 with 32 channels).
  static void filter_gradient_winograd(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dw, T beta,
                                       const input_map* xf = nullptr) {
    constexpr index_t NR = kernel::panel_width;
    const index_t n = x.n(), cin = x.c(), h = x.h(), wd = x.w(), cout = dw.dim(0);
    const winograd_grid gr(n, cin, h, wd);
    T* xb = ctx.scratch(static_cast<std::size_t>(gr.blocks * gr.stride_b), 0);
    T* dm = ctx.scratch(static_cast<std::size_t>(16 * cout * gr.chunk * gr.per_image), 1);  // dM_ξ: Cout x tiles
    T* acc = ctx.scratch(static_cast<std::size_t>(16 * gr.cinp * cout), 2);                  // dU_ξᵀ: Cout x Cin
    constexpr index_t TB = 128;
    for (index_t i0 = 0; i0 < n; i0 += gr.chunk) {
      const index_t nc = std::min(gr.chunk, n - i0), tiles = nc * gr.per_image;
      pad_and_block(ctx, x, i0, nc, 1, gr.margin, xb, gr.stride_b, xf);
      // dM = A·g·Aᵀ, A = [1 0; 1 1; 1 −1; 0 −1], for one tile row of one channel at a time (zero past the map).
      parallel_planes_if(ctx, nc * cout * gr.th, static_cast<double>(16 * cout * tiles), [&](index_t r) {
        const index_t j = r / (cout * gr.th), co = (r / gr.th) % cout, ty = r % gr.th;
        const T* plane = dy.item(i0 + j) + co * h * wd;
        const T* row0 = plane + 2 * ty * wd;
        T* out = dm + co * tiles + j * gr.per_image + ty * gr.tw;
        const index_t xs = cout * tiles;  // from one dM_ξ to the next
        const index_t full = wd / 2;      // tiles with both columns inside the map
        const auto put = [&](index_t tx, T g00, T g01, T g10, T g11) {
          const T p[4][2] = {{g00, g01}, {g00 + g10, g01 + g11}, {g00 - g10, g01 - g11}, {-g10, -g11}};
          for (index_t a = 0; a < 4; ++a) {
            out[(a * 4 + 0) * xs + tx] = p[a][0];
            out[(a * 4 + 1) * xs + tx] = p[a][0] + p[a][1];
            out[(a * 4 + 2) * xs + tx] = p[a][0] - p[a][1];
            out[(a * 4 + 3) * xs + tx] = -p[a][1];
          }
        };
        if (2 * ty + 1 < h) {
          const T* row1 = row0 + wd;
#pragma omp simd
          for (index_t tx = 0; tx < full; ++tx) put(tx, row0[2 * tx], row0[2 * tx + 1], row1[2 * tx], row1[2 * tx + 1]);
          if (full < gr.tw) put(full, row0[2 * full], T(0), row1[2 * full], T(0));
        } else {  // an odd height: the last tile row has one row of dy
#pragma omp simd
          for (index_t tx = 0; tx < full; ++tx) put(tx, row0[2 * tx], row0[2 * tx + 1], T(0), T(0));
          if (full < gr.tw) put(full, row0[2 * full], T(0), T(0), T(0));
        }
      });
      // Groups of up to 4 channel blocks (fewer when there are more threads than groups of 4): dU_ξᵀ (Cout x 64
      // channels) = dM_ξ (Cout x tiles) · V_ξ (tiles x 64), V_ξ written by the input transform straight into the
      // GEMM's panel layout (one panel per channel block). A group re-packs dM, so larger groups pack it less.
      const index_t G = std::clamp<index_t>(gr.blocks / std::max(1, ctx.threads()), 1, 4);
      const index_t groups = (gr.blocks + G - 1) / G;
      const double macs = static_cast<double>(16 * tiles) * static_cast<double>(gr.cinp * cout);
      parallel_planes_if(ctx, groups, macs, [&](index_t gi) {
        thread_local detail::gemm_workspace<T> ws;
        thread_local std::vector<T> vbuf;
        const index_t b0 = gi * G, gb = std::min(G, gr.blocks - b0);
        vbuf.resize(static_cast<std::size_t>(16 * TB * G * NR));
        T* v = vbuf.data();
        for (index_t t0 = 0; t0 < tiles; t0 += TB) {
          const index_t tn = std::min(TB, tiles - t0);
          for (index_t bl = 0; bl < gb; ++bl)
            winograd_input_tiles(gr, xb + (b0 + bl) * gr.stride_b, t0, tn, v + bl * TB * NR, NR, TB * G * NR);
          for (index_t xi = 0; xi < 16; ++xi)
            kernel::run_panels(ws, false, cout, gb * NR, tn, T(1), dm + xi * cout * tiles + t0, tiles,
                               v + xi * TB * G * NR, TB * NR, i0 == 0 && t0 == 0 ? T(0) : T(1),
                               acc + xi * cout * gr.cinp + b0 * NR, gr.cinp);
        }
      });
    }
    // dw = Gᵀ·dU·G, Gᵀ = [1 ½ ½ 0; 0 ½ −½ 0; 0 ½ ½ 1].
    T* d = dw.data();
    parallel_planes_if(ctx, cout, static_cast<double>(cout * cin * 16), [&](index_t co) {
      for (index_t ci = 0; ci < cin; ++ci) {
        T uu[4][4];
        for (index_t xi = 0; xi < 16; ++xi) uu[xi / 4][xi % 4] = acc[(xi * cout + co) * gr.cinp + ci];
        T t3[3][4];
        for (index_t c = 0; c < 4; ++c) {
          t3[0][c] = uu[0][c] + T(0.5) * (uu[1][c] + uu[2][c]);
          t3[1][c] = T(0.5) * (uu[1][c] - uu[2][c]);
          t3[2][c] = T(0.5) * (uu[1][c] + uu[2][c]) + uu[3][c];
        }
        for (index_t r = 0; r < 3; ++r) {
          const T vals[3] = {t3[r][0] + T(0.5) * (t3[r][1] + t3[r][2]), T(0.5) * (t3[r][1] - t3[r][2]),
                             T(0.5) * (t3[r][1] + t3[r][2]) + t3[r][3]};
          for (index_t c = 0; c < 3; ++c) {
            T& o = d[(co * cin + ci) * 9 + r * 3 + c];
            o = beta == T(0) ? vals[c] : vals[c] + beta * o;
          }
        }
      }
    });
  }

  /// dw = Σ_n dy_n · im2col(x_n)ᵀ + beta·dw for stride 1, one GEMM per filter tap (ky, kx) and no column
  /// matrix. With the image zero-padded to Hp x Wp and stored channel-blocked (blocks of NR channels,
  /// position-major: exactly the GEMM's packed-panel layout), tap (ky, kx) only shifts the rows of B by
  /// ky·Wp + kx; dy is laid out on the same padded grid (zero in the Wp − Wo extra columns), so each tap is
  /// dW_tap (Cout x Cin) = dy_pad (Cout x nQ) · shifted image (nQ x Cin), read in place.
  static void filter_gradient_by_taps(context& ctx, const tensor_t& x, const tensor_t& dy, const tensor_t& dw,
                                      const conv_geometry& g, T beta, const input_map* xf = nullptr) {
    constexpr index_t NR = kernel::panel_width;
    const index_t n = x.n(), cin = x.c(), h = x.h(), w = x.w(), cout = dw.dim(0), ho = dy.h(), wo = dy.w();
    const index_t hp = h + 2 * g.pad, wp = w + 2 * g.pad, q = hp * wp, taps = g.kh * g.kw;
    const index_t blocks = (cin + NR - 1) / NR, margin = (g.kh - 1) * wp + (g.kw - 1);
    const index_t chunk = std::max<index_t>(1, std::min<index_t>(n, (index_t{8} << 20) / (blocks * NR * q)));
    const index_t kmax = chunk * q, stride_b = (kmax + margin) * NR;
    T* xb = ctx.scratch(static_cast<std::size_t>(blocks * stride_b), 0);
    T* dyp = ctx.scratch(static_cast<std::size_t>(cout * kmax), 1);
    T* acc = ctx.scratch(static_cast<std::size_t>(taps * cout * cin), 2);
    for (index_t i0 = 0; i0 < n; i0 += chunk) {
      const index_t nc = std::min(chunk, n - i0), k = nc * q;
      pad_and_block(ctx, x, i0, nc, g.pad, margin, xb, stride_b, xf);
      parallel_planes_if(ctx, cout * nc, static_cast<double>(cout * k), [&](index_t t) {  // dy on the padded grid
        const index_t co = t / nc, j = t % nc;
        T* dst = dyp + co * k + j * q;
        const T* src = dy.item(i0 + j) + co * ho * wo;
        std::fill(dst, dst + q, T(0));
        for (index_t oy = 0; oy < ho; ++oy) std::copy_n(src + oy * wo, wo, dst + oy * wp);
      });
      // The taps go innermost, over one k block at a time: the taps' B operands are the same image block
      // shifted by at most (kh-1)·Wp + kw-1 positions, so the image is read from memory once, not once per tap.
      const auto run = [&](index_t c0, index_t c1) {
        thread_local detail::gemm_workspace<T> ws;
        constexpr index_t KB = kernel::block_depth;
        for (index_t p0 = 0; p0 < k; p0 += KB) {
          const index_t kb = std::min(KB, k - p0);
          const T bet = i0 == 0 && p0 == 0 ? T(0) : T(1);
          for (index_t tap = 0; tap < taps; ++tap) {
            const index_t off = (tap / g.kw) * wp + tap % g.kw;
            kernel::run_panels(ws, false, cout, c1 - c0, kb, T(1), dyp + p0, k,
                               xb + (c0 / NR) * stride_b + (p0 + off) * NR, stride_b, bet, acc + tap * cout * cin + c0, cin);
          }
        }
      };
      const double macs = static_cast<double>(cout) * static_cast<double>(cin) * static_cast<double>(k * taps);
      const int th = macs < parallel_work ? 1 : std::min<int>(ctx.threads(), static_cast<int>(blocks));
#ifdef _OPENMP
      if (th > 1 && !omp_in_parallel()) {
        const index_t per = (blocks + th - 1) / th * NR;
#pragma omp parallel num_threads(th)
        {
          const index_t c0 = std::min<index_t>(cin, per * omp_get_thread_num()), c1 = std::min<index_t>(cin, c0 + per);
          if (c1 > c0) run(c0, c1);
        }
      } else {
        run(0, cin);
      }
#else
      run(0, cin);
#endif
    }
    T* d = dw.data();
    parallel_planes_if(ctx, cout, static_cast<double>(cout * cin * taps), [&](index_t co) {
      for (index_t ci = 0; ci < cin; ++ci)
        for (index_t tap = 0; tap < taps; ++tap) {
          T& o = d[(co * cin + ci) * taps + tap];
          const T v = acc[(tap * cout + co) * cin + ci];
          o = beta == T(0) ? v : v + beta * o;
        }
    });
  }

  static void gather_columns(context& ctx, const tensor_t& dy, index_t i0, index_t nc, index_t p, T* dst) {
    const index_t cout = dy.c();
    parallel_planes(ctx, cout * nc, [&](index_t q) {
      const index_t co = q / nc, j = q % nc;
      std::memcpy(dst + co * nc * p + j * p, dy.item(i0 + j) + co * p, sizeof(T) * p);
    });
  }
};

using cpu_backend = cpu_backend_t<float>;
using cpu_backend_f64 = cpu_backend_t<double>;

static_assert(Backend<cpu_backend>, "mammocl: cpu_backend must satisfy the Backend concept.");
static_assert(Backend<cpu_backend_f64>, "mammocl: cpu_backend_f64 must satisfy the Backend concept.");
static_assert(FoldsBatchNormIntoConv<cpu_backend> && FoldsBatchNormIntoConv<cpu_backend_f64>,
              "mammocl: the CPU backend folds batch norm into convolutions (dense layers rely on it).");

}  // namespace mammocl

#pragma once
/// MammoCL's own single-threaded GEMM for the CPU backend: C = alpha·op(A)·op(B) + beta·C, row-major.
///
/// A BLIS-style blocked product: B is packed into KC x NR panels, A into MR x KC panels, and a register
/// micro-kernel of MR x NR accumulators (GCC/Clang vector extensions, 256-bit lanes) runs over them. It
/// compiles in a fraction of the time an Eigen product takes and its speed does not depend on the shape
/// of the expression at the call site. Every element of C is accumulated over k in the same order for a
/// given shape, whatever the blocking of the other dimensions, so results are reproducible.
#include <algorithm>
#include <cstddef>
#include <cstring>
#include <type_traits>
#include <vector>

#if defined(__AVX__)
#include <immintrin.h>
#endif

namespace mammocl::detail {

template <class T>
struct gemm_traits;
template <>
struct gemm_traits<float> {
  typedef float vec __attribute__((vector_size(32)));
  static constexpr int lanes = 8, mr = 6, nr = 16, kc = 256, mc = 120, nc = 3072;
};
template <>
struct gemm_traits<double> {
  typedef double vec __attribute__((vector_size(32)));
  static constexpr int lanes = 4, mr = 6, nr = 8, kc = 256, mc = 96, nc = 2048;
};

/// Working memory of one thread's GEMM (packed panels), reused across calls.
template <class T>
struct gemm_workspace {
  std::vector<T> a, b;
};

template <class T>
class gemm_kernel {
  using tr = gemm_traits<T>;
  using vec = typename tr::vec;
  static constexpr int MR = tr::mr, NR = tr::nr, KC = tr::kc, MC = tr::mc, NC = tr::nc, L = tr::lanes, NV = NR / L;

 public:
  static void run(gemm_workspace<T>& ws, bool ta, bool tb, long m, long n, long k, T alpha, const T* a, long lda,
                  const T* b, long ldb, T beta, T* c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == T(0)) {
      scale_c(m, n, beta, c, ldc);
      return;
    }
    // Few rows and many columns (3x3 convolutions with 32 output channels): solve Cᵀ = op(B)ᵀ·op(A)ᵀ
    // instead, so that the micro-tiles are full, and write the tiles of Cᵀ transposed into C.
    if (m < 4 * MR && n >= 4 * m)
      blocked<true>(ws, !tb, !ta, n, m, k, alpha, b, ldb, a, lda, beta, c, ldc);
    else
      blocked<false>(ws, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }

  /// The blocked product; with TransC the (m x n) result is stored transposed (C is n x m, row stride ldc).
  template <bool TransC>
  static void blocked(gemm_workspace<T>& ws, bool ta, bool tb, long m, long n, long k, T alpha, const T* a, long lda,
                      const T* b, long ldb, T beta, T* c, long ldc) {
    blocked_with<TransC>(ws, ta, m, n, k, alpha, a, lda,
                         [&](long pc, long jc, long kb, long nb, T* dst) { pack_b(tb, b, ldb, pc, jc, kb, nb, dst); },
                         beta, c, ldc);
  }

  /// C = alpha·op(A)·B + beta·C where B (k x n) exists only through `pack(pc, jc, kb, nb, dst)`, which must
  /// write rows [pc, pc+kb) and columns [jc, jc+nb) of B as consecutive KC-deep panels of NR columns
  /// (dst[(j / NR)·NR·kb + p·NR + j % NR] = B(pc+p, jc+j), zero past column nb). This is how a convolution
  /// packs its im2col matrix straight from the image without ever storing it (implicit GEMM). The
  /// accumulation order over k is that of run(), so both give identical results for the same B.
  template <class PackB>
  static void run_packed_b(gemm_workspace<T>& ws, bool ta, long m, long n, long k, T alpha, const T* a, long lda,
                           PackB&& pack, T beta, T* c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == T(0)) {
      scale_c(m, n, beta, c, ldc);
      return;
    }
    blocked_with<false>(ws, ta, m, n, k, alpha, a, lda, pack, beta, c, ldc);
  }

  /// C = alpha·op(A)·B + beta·C where B is already stored in panel order: rows k, NR-column panels, panel
  /// j/NR of row p at b + (j/NR)·panel_stride + p·NR (zero beyond column n). Nothing of B is copied. A
  /// convolution's filter gradient uses it with a channel-blocked image, one call per filter tap.
  static void run_panels(gemm_workspace<T>& ws, bool ta, long m, long n, long k, T alpha, const T* a, long lda,
                         const T* b, long panel_stride, T beta, T* c, long ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == T(0)) {
      scale_c(m, n, beta, c, ldc);
      return;
    }
    blocked_core<false>(ws, ta, m, n, k, alpha, a, lda,
                        [&](long pc, long jc, long, long, T*) { return panels{b + (jc / NR) * panel_stride + pc * NR, panel_stride}; },
                        beta, c, ldc);
  }

  using vector_type = vec;
  static constexpr long vectors_per_panel_row = NV;
  /// acc[r][·] += a[r·a_stride] · b[0 .. NR) for r < R: one step of an R x NR register tile (R broadcasts,
  /// NV loads, R·NV FMAs). Shared by the micro-kernel and the direct convolution; always inlined, since a
  /// call would pass the accumulators through memory.
  template <int R>
  __attribute__((always_inline)) static inline void rank1_update(vec (&acc)[R][NV], const T* a, long a_stride,
                                                                 const T* b) {
    vec bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) load(bv[v], b + v * L);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      vec av;
      splat(av, a[r * a_stride]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] += av * bv[v];
    }
  }

  /// Width of the B panels that a packing function of run_packed_b writes.
  static constexpr long panel_width = NR;
  /// Depth of the k blocks that run_packed_b asks for.
  static constexpr long block_depth = KC;

  /// Packs values as they are stored.
  struct as_stored {
    static constexpr bool identity = true;
  };
  /// Packs max(0, v·scale[r] + shift[r]) for a value v of stored row r: a batch norm and its ReLU applied to
  /// a 1x1 convolution's input while it is packed (rows of B are channels; rows of Bᵀ when tb).
  struct affine_relu {
    static constexpr bool identity = false;
    const T* scale;
    const T* shift;
    T operator()(long r, T v) const {
      const T u = v * scale[r] + shift[r];
      return u > T(0) ? u : T(0);
    }
  };

  /// B block (rows pc.., columns jc..) into column panels of NR: panel q holds, for each p, NR values.
  /// Public because a convolution uses it to store images channel-blocked (tb: NR channel rows side by side).
  static void pack_b(bool tb, const T* b, long ldb, long pc, long jc, long kb, long nb, T* dst) {
    pack_b_as(tb, b, ldb, pc, jc, kb, nb, dst, as_stored{});
  }
  /// pack_b with every value passed through `xf` (as_stored or affine_relu) on its way; the zeros that pad
  /// a last, narrower panel stay zero.
  template <class Xf>
  static void pack_b_as(bool tb, const T* b, long ldb, long pc, long jc, long kb, long nb, T* dst, const Xf& xf) {
    if (!tb) {
      // Rows in groups of 8, each group copied panel after panel: every source row is read in runs of a
      // whole block row (one panel at a time down all kb rows touches a new page per row), and every
      // panel receives 8 consecutive rows at once.
      constexpr long rows = 8;
      const long full = nb / NR * NR;
      for (long p0 = 0; p0 < kb; p0 += rows) {
        const long pe = std::min<long>(kb, p0 + rows);
        for (long j0 = 0; j0 < full; j0 += NR) {
          T* d = dst + (j0 / NR) * NR * kb;
          for (long p = p0; p < pe; ++p) {
            const T* src = b + (pc + p) * ldb + jc + j0;
            if constexpr (Xf::identity) {
              std::memcpy(d + p * NR, src, sizeof(T) * NR);
            } else {
              const T a = xf.scale[pc + p], c = xf.shift[pc + p];
              T* o = d + p * NR;
#pragma GCC unroll 16
              for (long j = 0; j < NR; ++j) {
                const T u = src[j] * a + c;
                o[j] = u > T(0) ? u : T(0);
              }
            }
          }
        }
      }
      if (full < nb) {
        const long nn = nb - full;
        T* d = dst + (full / NR) * NR * kb;
        for (long p = 0; p < kb; ++p) {
          const T* s = b + (pc + p) * ldb + jc + full;
          T* o = d + p * NR;
          long j = 0;
          for (; j < nn; ++j) o[j] = value(xf, pc + p, s[j]);
          for (; j < NR; ++j) o[j] = T(0);
        }
      }
      return;
    }
    for (long j0 = 0; j0 < nb; j0 += NR) {
      const long nn = std::min<long>(NR, nb - j0);
      T* d = dst + (j0 / NR) * NR * kb;
      // Bᵀ is stored: NR source rows are read side by side, each contiguously, and the panel is written in order.
      const T* rows[NR];
      for (long j = 0; j < NR; ++j) rows[j] = j < nn ? b + (jc + j0 + j) * ldb + pc : nullptr;
      if (nn == NR) {
        long p = 0;
#if defined(__AVX__)
        if constexpr (std::is_same_v<T, float> && NR == 16) {  // 8 x 8 blocks transposed in registers
          for (; p + 8 <= kb; p += 8)
            for (int half = 0; half < 2; ++half) {
              __m256 r[8];
              for (int j = 0; j < 8; ++j) r[j] = _mm256_loadu_ps(rows[half * 8 + j] + p);
              transpose8(r);
              if constexpr (!Xf::identity) {  // lane j of every r[q] is stored row jc + j0 + half·8 + j
                const __m256 sc = _mm256_loadu_ps(xf.scale + jc + j0 + half * 8);
                const __m256 sh = _mm256_loadu_ps(xf.shift + jc + j0 + half * 8);
                for (int q = 0; q < 8; ++q) r[q] = _mm256_max_ps(multiply_add(r[q], sc, sh), _mm256_setzero_ps());
              }
              for (int q = 0; q < 8; ++q) _mm256_storeu_ps(d + (p + q) * NR + half * 8, r[q]);
            }
        }
#endif
        for (; p < kb; ++p)
#pragma GCC unroll 16
          for (long j = 0; j < NR; ++j) d[p * NR + j] = value(xf, jc + j0 + j, rows[j][p]);
      } else {
        for (long p = 0; p < kb; ++p)
          for (long j = 0; j < NR; ++j) d[p * NR + j] = j < nn ? value(xf, jc + j0 + j, rows[j][p]) : T(0);
      }
    }
  }

 private:
  template <class Xf>
  static T value(const Xf& xf, long r, T v) {
    if constexpr (Xf::identity) return v;
    else return xf(r, v);
  }
#if defined(__AVX__)
  /// v·a + b, fused when the target has FMA, as the compiler contracts the scalar expression.
  static __m256 multiply_add(__m256 v, __m256 a, __m256 b) {
#if defined(__FMA__)
    return _mm256_fmadd_ps(v, a, b);
#else
    return _mm256_add_ps(_mm256_mul_ps(v, a), b);
#endif
  }
#endif
  /// Where the B panels of one (k block, column block) lie: panel i at base + i·stride.
  struct panels {
    const T* base;
    long stride;
  };
  template <bool TransC, class PackB>
  static void blocked_with(gemm_workspace<T>& ws, bool ta, long m, long n, long k, T alpha, const T* a, long lda,
                           PackB&& pack, T beta, T* c, long ldc) {
    blocked_core<TransC>(ws, ta, m, n, k, alpha, a, lda,
                         [&](long pc, long jc, long kb, long nb, T* buf) {
                           pack(pc, jc, kb, nb, buf);
                           return panels{buf, NR * kb};
                         },
                         beta, c, ldc);
  }
  template <bool TransC, class PanelsB>
  static void blocked_core(gemm_workspace<T>& ws, bool ta, long m, long n, long k, T alpha, const T* a, long lda,
                           PanelsB&& get_b, T beta, T* c, long ldc) {
    ws.a.resize(static_cast<std::size_t>(MC + MR) * KC);
    ws.b.resize(static_cast<std::size_t>(KC) * (NC + NR));
    for (long jc = 0; jc < n; jc += NC) {
      const long nb = std::min<long>(NC, n - jc);
      for (long pc = 0; pc < k; pc += KC) {
        const long kb = std::min<long>(KC, k - pc);
        const panels bpan = get_b(pc, jc, kb, nb, ws.b.data());
        const T bet = pc == 0 ? beta : T(1);
        for (long ic = 0; ic < m; ic += MC) {
          const long mb = std::min<long>(MC, m - ic);
          pack_a(ta, a, lda, ic, pc, mb, kb, ws.a.data());
          for (long jr = 0; jr < nb; jr += NR) {
            const long nn = std::min<long>(NR, nb - jr);
            const T* bp = bpan.base + (jr / NR) * bpan.stride;
            for (long ir = 0; ir < mb; ir += MR) {
              const long mm = std::min<long>(MR, mb - ir);
              const T* ap = ws.a.data() + (ir / MR) * MR * kb;
              if constexpr (TransC) {
                micro_rows<true>(kb, ap, bp, alpha, bet, c + (jc + jr) * ldc + ic + ir, ldc, mm, nn);
              } else {
                T* cp = c + (ic + ir) * ldc + jc + jr;
                if (mm == MR && nn == NR) micro<MR, true, false>(kb, ap, bp, alpha, bet, cp, ldc, MR, NR);
                else micro_rows<false>(kb, ap, bp, alpha, bet, cp, ldc, mm, nn);
              }
            }
          }
        }
      }
    }
  }
  static void scale_c(long m, long n, T beta, T* c, long ldc) {
    for (long i = 0; i < m; ++i) {
      T* r = c + i * ldc;
      if (beta == T(0)) std::fill(r, r + n, T(0));
      else for (long j = 0; j < n; ++j) r[j] *= beta;
    }
  }
  /// A block (rows ic.., columns pc..) into row panels of MR: panel q holds, for each p, MR values.
  static void pack_a(bool ta, const T* a, long lda, long ic, long pc, long mb, long kb, T* dst) {
    for (long i0 = 0; i0 < mb; i0 += MR) {
      const long mm = std::min<long>(MR, mb - i0);
      T* d = dst + (i0 / MR) * MR * kb;
      if (!ta) {
        const T* rows[MR];
        for (long i = 0; i < MR; ++i) rows[i] = i < mm ? a + (ic + i0 + i) * lda + pc : nullptr;
        if (mm == MR) {
          long p = 0;
#if defined(__AVX__)
          if constexpr (std::is_same_v<T, float> && MR == 6) {  // 6 rows (and 2 unused) transposed in registers
            for (; p + 8 <= kb; p += 8) {
              __m256 r[8];
              for (int i = 0; i < 6; ++i) r[i] = _mm256_loadu_ps(rows[i] + p);
              r[6] = r[7] = _mm256_setzero_ps();
              transpose8(r);
              for (int q = 0; q < 8; ++q) {
                _mm_storeu_ps(d + (p + q) * MR, _mm256_castps256_ps128(r[q]));
                _mm_storel_pi(reinterpret_cast<__m64*>(d + (p + q) * MR + 4), _mm256_extractf128_ps(r[q], 1));
              }
            }
          }
#endif
          for (; p < kb; ++p)
#pragma GCC unroll 8
            for (long i = 0; i < MR; ++i) d[p * MR + i] = rows[i][p];
        } else {
          for (long p = 0; p < kb; ++p)
            for (long i = 0; i < MR; ++i) d[p * MR + i] = i < mm ? rows[i][p] : T(0);
        }
      } else {
        for (long p = 0; p < kb; ++p) {
          const T* s = a + (pc + p) * lda + ic + i0;
          T* o = d + p * MR;
          long i = 0;
          for (; i < mm; ++i) o[i] = s[i];
          for (; i < MR; ++i) o[i] = T(0);
        }
      }
    }
  }
#if defined(__AVX__)
  /// r[q][j] ← r[j][q]: an 8 x 8 transpose in registers.
  static void transpose8(__m256 (&r)[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 4; ++i) {
      t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
      t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; ++i) {
      u[4 * i + 0] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0x44);
      u[4 * i + 1] = _mm256_shuffle_ps(t[4 * i], t[4 * i + 2], 0xEE);
      u[4 * i + 2] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0x44);
      u[4 * i + 3] = _mm256_shuffle_ps(t[4 * i + 1], t[4 * i + 3], 0xEE);
    }
    for (int i = 0; i < 4; ++i) {
      r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
      r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
  }
#endif
  // Vectors go through references only: passing them by value would tie the helpers to an AVX ABI.
  static void load(vec& v, const T* p) { std::memcpy(&v, p, sizeof v); }
  static void store(T* p, const vec& v) { std::memcpy(p, &v, sizeof v); }
  static void splat(vec& v, T x) {
    if constexpr (L == 8) v = vec{x, x, x, x, x, x, x, x};
    else v = vec{x, x, x, x};
  }
  /// A tile of mm < MR rows (or of fewer than NR columns): the kernel for 2, 4 or 6 rows, whichever is the
  /// smallest that covers mm, so that the 2-row tail of M = 32 or 128 (DenseNet's convolutions) costs a third
  /// of a full tile's arithmetic instead of all of it.
  template <bool TransC>
  static void micro_rows(long kb, const T* ap, const T* bp, T alpha, T beta, T* c, long ldc, long mm, long nn) {
    static_assert(MR == 6, "micro_rows assumes 6-row micro-tiles");
    if (mm <= 2) micro<2, false, TransC>(kb, ap, bp, alpha, beta, c, ldc, mm, nn);
    else if (mm <= 4) micro<4, false, TransC>(kb, ap, bp, alpha, beta, c, ldc, mm, nn);
    else micro<MR, false, TransC>(kb, ap, bp, alpha, beta, c, ldc, mm, nn);
  }
  /// C(mm x nn) = alpha·(Ap·Bp) + beta·C for one tile of at most R (≤ MR) rows of an MR-row A panel.
  template <int R, bool Full, bool TransC>
  __attribute__((noinline)) static void micro(long kb, const T* ap, const T* bp, T alpha, T beta, T* c, long ldc, long mm, long nn) {
    vec acc[R][NV];
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r)
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = vec{};
#pragma GCC unroll 4
    for (long p = 0; p < kb; ++p) rank1_update<R>(acc, ap + p * MR, 1, bp + p * NR);
    if constexpr (Full) {
      vec va, vb;
      splat(va, alpha);
      splat(vb, beta);
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) {
          T* cp = c + r * ldc + v * L;
          vec res = va * acc[r][v];
          if (beta != T(0)) {
            vec old;
            load(old, cp);
            res += beta == T(1) ? old : vb * old;
          }
          store(cp, res);
        }
    } else {
      T tile[R][NR];
      for (int r = 0; r < R; ++r)
        for (int v = 0; v < NV; ++v) store(&tile[r][v * L], acc[r][v]);
      for (long r = 0; r < mm; ++r)
        for (long j = 0; j < nn; ++j) {
          T& cr = TransC ? c[j * ldc + r] : c[r * ldc + j];
          const T res = alpha * tile[r][j];
          cr = beta == T(0) ? res : (beta == T(1) ? res + cr : res + beta * cr);
        }
    }
  }
};

}  // namespace mammocl::detail

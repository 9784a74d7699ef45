// The CPU backend's GEMM (MammoCL's packed kernel) against a direct triple loop in long double, for every
// transposition, alpha/beta, leading dimensions larger than the width, edge tiles, the transposed-output
// path, and the multi-threaded split; plus determinism across repeated calls.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <limits>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/rng.hpp"

using namespace mammocl;

namespace {
template <class T>
void check_shape(rng& r, typename cpu_backend_t<T>::context& ctx, bool ta, bool tb, index_t m, index_t n, index_t k,
                 T alpha, T beta) {
  // Error bound of a length-k dot product in T, relative to 1 + |result| (values are N(0,1)).
  const double tol = 4.0 * static_cast<double>(k) * std::numeric_limits<T>::epsilon();
  const index_t lda = (ta ? m : k) + 3, ldb = (tb ? k : n) + 5, ldc = n + 2;
  std::vector<T> a(static_cast<std::size_t>((ta ? k : m) * lda)), b(static_cast<std::size_t>((tb ? n : k) * ldb)),
      c(static_cast<std::size_t>(m * ldc));
  for (auto& v : a) v = static_cast<T>(r.normal());
  for (auto& v : b) v = static_cast<T>(r.normal());
  for (auto& v : c) v = static_cast<T>(r.normal());
  std::vector<T> c0 = c;
  cpu_backend_t<T>::gemm(ctx, ta, tb, m, n, k, alpha, a.data(), lda, b.data(), ldb, beta, c.data(), ldc);
  double worst = 0;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = 0; j < n; ++j) {
      long double s = 0;
      for (index_t p = 0; p < k; ++p)
        s += static_cast<long double>(ta ? a[p * lda + i] : a[i * lda + p]) * (tb ? b[j * ldb + p] : b[p * ldb + j]);
      const long double want = alpha * s + (beta == T(0) ? 0.0L : beta * static_cast<long double>(c0[i * ldc + j]));
      worst = std::max(worst, static_cast<double>(std::abs(want - c[i * ldc + j]) / (1 + std::abs(want))));
    }
  // Padding columns of C are never written.
  bool untouched = true;
  for (index_t i = 0; i < m; ++i)
    for (index_t j = n; j < ldc; ++j) untouched = untouched && c[i * ldc + j] == c0[i * ldc + j];
  BOOST_TEST_CONTEXT("ta " << ta << " tb " << tb << " m " << m << " n " << n << " k " << k << " alpha " << alpha << " beta " << beta) {
    BOOST_TEST(worst <= tol);
    BOOST_TEST(untouched);
  }
}
}  // namespace

BOOST_AUTO_TEST_CASE(gemm_matches_reference_double) {
  rng r(1);
  cpu_backend_f64::context ctx(1);
  for (int t = 0; t < 120; ++t) {
    const index_t m = 1 + static_cast<index_t>(r.below(40)), n = 1 + static_cast<index_t>(r.below(70)),
                  k = 1 + static_cast<index_t>(r.below(300));
    const double beta = static_cast<double>(r.below(3)) * 0.5, alpha = 0.5 + static_cast<double>(r.below(3));
    check_shape<double>(r, ctx, r.below(2), r.below(2), m, n, k, alpha, beta);
  }
}

BOOST_AUTO_TEST_CASE(gemm_matches_reference_float_and_threads) {
  rng r(2);
  for (int threads : {1, 2}) {
    cpu_backend::context ctx(threads);
    for (int t = 0; t < 40; ++t) {
      const index_t m = 1 + static_cast<index_t>(r.below(150)), n = 1 + static_cast<index_t>(r.below(400)),
                    k = 1 + static_cast<index_t>(r.below(600));
      check_shape<float>(r, ctx, r.below(2), r.below(2), m, n, k, 1.0f, static_cast<float>(r.below(2)));
    }
    // Large enough for the multi-threaded split along rows and along columns, and several K blocks.
    check_shape<float>(r, ctx, false, false, 300, 40, 700, 1.0f, 0.0f);
    check_shape<float>(r, ctx, true, true, 40, 300, 700, 2.0f, 1.0f);
    check_shape<float>(r, ctx, false, true, 20, 3200, 50, 1.0f, 0.0f);
  }
}

BOOST_AUTO_TEST_CASE(gemm_k_zero_and_alpha_zero_scale_c) {
  cpu_backend_f64::context ctx(1);
  std::vector<double> c{1, 2, 3, 4};
  const double a = 7, b = 9;
  cpu_backend_f64::gemm(ctx, false, false, 2, 2, 0, 1.0, &a, 1, &b, 2, 0.5, c.data(), 2);
  BOOST_TEST(c == (std::vector<double>{0.5, 1, 1.5, 2}), boost::test_tools::per_element());
  cpu_backend_f64::gemm(ctx, false, false, 2, 2, 0, 1.0, &a, 1, &b, 2, 0.0, c.data(), 2);
  BOOST_TEST(c == (std::vector<double>{0, 0, 0, 0}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(gemm_is_deterministic) {
  rng r(3);
  cpu_backend::context ctx(2);
  const index_t m = 130, n = 517, k = 901;
  std::vector<float> a(m * k), b(k * n), c1(m * n), c2(m * n);
  for (auto& v : a) v = static_cast<float>(r.normal());
  for (auto& v : b) v = static_cast<float>(r.normal());
  cpu_backend::gemm(ctx, false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c1.data(), n);
  cpu_backend::gemm(ctx, false, false, m, n, k, 1.0f, a.data(), k, b.data(), n, 0.0f, c2.data(), n);
  BOOST_TEST(std::memcmp(c1.data(), c2.data(), c1.size() * sizeof(float)) == 0);
}

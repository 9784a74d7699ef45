// Every primitive of the CUDA backend against the CPU backend (the reference), forward and backward, on odd
// sizes, on strided batch views (a channel range of a concatenation buffer), with beta = 0 and beta != 0.
// Tolerances: testing::tolerance, scaled with each op's reduction length (docs/gpu_testing.md).
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <vector>

#include "gpu_test_helpers.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/voi_lut.hpp"
#include "mammocl/losses/supcon.hpp"

using namespace mammocl;
using namespace mammocl::gpu_test;

namespace {

/// A buffer of `total` channels holding random values, with channels [c0, c0+c) as the op's operand: the
/// op sees a batch-strided view, and the comparison of the whole buffer proves it wrote nothing outside.
struct strided_operand {
  twin buffer;
  twin view;
};
strided_operand strided_random(index_t n, index_t c0, index_t c, index_t total, index_t h, index_t w,
                               std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  strided_operand s{random_twin(shape{n, total, h, w}, seed, lo, hi), {}};
  s.view = s.buffer.channels(c0, c);
  return s;
}

}  // namespace

// ------------------------------------------------------------------------------------------------ memory

BOOST_AUTO_TEST_SUITE(memory)

BOOST_AUTO_TEST_CASE(fill_copy_and_host_transfers_of_strided_views) {
  // from_host / to_host / copy / fill on a channel range of a buffer: only that range changes.
  strided_operand dst = strided_random(3, 2, 5, 11, 7, 9, 1);
  const twin src = random_twin(shape{3, 5, 7, 9}, 2);
  C::copy(src.c, dst.view.c);
  G::copy(src.g, dst.view.g);
  check(dst.buffer, exact(), "copy into a strided view");

  C::fill(dst.view.c, 0.25f);
  G::fill(dst.view.g, 0.25f);
  check(dst.buffer, exact(), "fill of a strided view");

  // to_host of a strided device view gives the contiguous values; from_host writes them back strided.
  std::vector<float> staged(static_cast<std::size_t>(src.c.numel()));
  G::to_host(dst.buffer.g.channels(1, 5), staged.data());
  std::vector<float> want(staged.size());
  C::to_host(dst.buffer.c.channels(1, 5), want.data());
  BOOST_TEST(staged == want);
  G::from_host(src.c.data(), dst.view.g);
  C::from_host(src.c.data(), dst.view.c);
  check(dst.buffer, exact(), "from_host into a strided view");

  // A contiguous round trip and mammocl::to in both directions.
  const twin t = random_twin(shape{4, 13}, 3);
  const tensor<C> back = to<C>(t.g);
  BOOST_TEST(std::equal(back.data(), back.data() + back.numel(), t.c.data()));
  const tensor<G> z = tensor<G>::zeros(shape{2, 3, 5, 7});
  const std::vector<float> zs = testing::host_values(z);
  BOOST_TEST(std::all_of(zs.begin(), zs.end(), [](float v) { return v == 0.0f; }));
}

#ifndef MAMMOCL_GPU_TESTS_ON_CPU  // device-only
BOOST_AUTO_TEST_CASE(caching_allocator_statistics) {
  G::empty_cache();
  const auto before = G::memory_stats();
  {
    const tensor<G> a(shape{1 << 20});  // 4 MiB
    const auto during = G::memory_stats();
    BOOST_TEST(during.in_use >= before.in_use + (std::size_t{4} << 20));
    BOOST_TEST(during.peak_in_use >= during.in_use);
    BOOST_TEST(during.reserved >= during.in_use);
  }
  const auto after = G::memory_stats();
  BOOST_TEST(after.in_use == before.in_use);
  BOOST_TEST(after.reserved >= after.in_use);  // the freed block is kept for reuse
  G::empty_cache();
  BOOST_TEST(G::memory_stats().reserved <= after.reserved);
}
#endif

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ GEMM

BOOST_AUTO_TEST_SUITE(gemm)

BOOST_FIXTURE_TEST_CASE(four_transpositions_with_leading_dimensions_and_beta, contexts) {
  // C = alpha·op(A)·op(B) + beta·C, row-major, every operand with a leading dimension wider than its rows.
  const index_t m = 37, n = 29, k = 70;
  for (const bool ta : {false, true})
    for (const bool tb : {false, true})
      for (const float beta : {0.0f, 0.75f}) {
        const index_t ar = ta ? k : m, ac = ta ? m : k, br = tb ? n : k, bc = tb ? k : n;
        const index_t lda = ac + 3, ldb = bc + 5, ldc = n + 2;
        const twin a = random_twin(shape{ar, lda}, 10), b = random_twin(shape{br, ldb}, 11);
        twin c = random_twin(shape{m, ldc}, 12);
        if (beta == 0.0f) {  // beta 0 must ignore C entirely, NaN included (BLAS semantics)
          C::fill(c.c, std::numeric_limits<float>::quiet_NaN());
          G::fill(c.g, std::numeric_limits<float>::quiet_NaN());
          // ...except the padding columns, which must stay NaN on both: the comparison checks them too.
        }
        const float alpha = 1.25f;
        C::gemm(cc, ta, tb, m, n, k, alpha, a.c.data(), lda, b.c.data(), ldb, beta, c.c.data(), ldc);
        G::gemm(gc, ta, tb, m, n, k, alpha, a.g.data(), lda, b.g.data(), ldb, beta, c.g.data(), ldc);
        check(c, reduction(k), "gemm trans_a " + std::to_string(ta) + " trans_b " + std::to_string(tb) + " beta " +
                                   std::to_string(beta));
      }
}

BOOST_FIXTURE_TEST_CASE(degenerate_sizes, contexts) {
  // k = 0: C = beta·C; a single row and a single column.
  twin c = random_twin(shape{3, 4}, 20);
  const twin a = random_twin(shape{3, 1}, 21), b = random_twin(shape{1, 4}, 22);
  C::gemm(cc, false, false, 3, 4, 0, 1.0f, a.c.data(), 1, b.c.data(), 4, 0.5f, c.c.data(), 4);
  G::gemm(gc, false, false, 3, 4, 0, 1.0f, a.g.data(), 1, b.g.data(), 4, 0.5f, c.g.data(), 4);
  check(c, elementwise(), "gemm k = 0");
  C::gemm(cc, false, false, 3, 4, 1, 1.0f, a.c.data(), 1, b.c.data(), 4, 0.0f, c.c.data(), 4);
  G::gemm(gc, false, false, 3, 4, 1, 1.0f, a.g.data(), 1, b.g.data(), 4, 0.0f, c.g.data(), 4);
  check(c, elementwise(), "gemm outer product");
  twin v = random_twin(shape{1, 1}, 23);
  const twin x = random_twin(shape{1, 301}, 24), y = random_twin(shape{301, 1}, 25);
  C::gemm(cc, false, false, 1, 1, 301, 1.0f, x.c.data(), 301, y.c.data(), 1, 0.0f, v.c.data(), 1);
  G::gemm(gc, false, false, 1, 1, 301, 1.0f, x.g.data(), 301, y.g.data(), 1, 0.0f, v.g.data(), 1);
  check(v, reduction(301), "gemm dot product");
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ convolution

namespace {

struct conv_case {
  const char* name;
  index_t n, cin, cout, h, w;
  conv_geometry g;
  bool bias;
};
const conv_case conv_cases[] = {
    {"1x1", 3, 13, 7, 9, 11, {1, 1, 1, 0}, false},
    {"1x1 bias", 2, 6, 5, 5, 4, {1, 1, 1, 0}, true},
    {"3x3 pad 1", 3, 9, 8, 10, 7, {3, 3, 1, 1}, false},
    {"3x3 stride 2 pad 1 bias", 2, 5, 6, 11, 9, {3, 3, 2, 1}, true},
    {"7x7 stride 2 pad 3", 2, 3, 16, 23, 19, {7, 7, 2, 3}, false},
    {"3x3 no pad", 2, 4, 3, 6, 8, {3, 3, 1, 0}, false},
};

}  // namespace

BOOST_AUTO_TEST_SUITE(convolution)

BOOST_FIXTURE_TEST_CASE(forward_backward_data_and_filter, contexts) {
  for (const conv_case& cs : conv_cases) {
    BOOST_TEST_CONTEXT("convolution " << cs.name) {
      const conv_geometry& g = cs.g;
      const index_t ho = g.out_h(cs.h), wo = g.out_w(cs.w), kk = cs.cin * g.kh * g.kw;
      // x is channels [2, 2+cin) of a wider buffer, y channels [1, 1+cout) of another: both strided.
      const strided_operand x = strided_random(cs.n, 2, cs.cin, cs.cin + 5, cs.h, cs.w, 30);
      const double a = 1.0 / std::sqrt(static_cast<double>(kk));  // outputs of order 1
      const twin w = random_twin(shape{cs.cout, cs.cin, g.kh, g.kw}, 31, -a, a);
      const twin b = random_twin(shape{cs.cout}, 32);
      strided_operand y = strided_random(cs.n, 1, cs.cout, cs.cout + 3, ho, wo, 33);
      C::conv2d_forward(cc, x.view.c, w.c, cs.bias ? &b.c : nullptr, y.view.c, g);
      G::conv2d_forward(gc, x.view.g, w.g, cs.bias ? &b.g : nullptr, y.view.g, g);
      check(y.buffer, reduction(kk), "conv2d_forward (whole output buffer)");

      // Backward data into a strided dx, with beta 0 and beta 1.5 (the dense block accumulates).
      const twin dy = random_twin(shape{cs.n, cs.cout, ho, wo}, 34);
      const index_t kd = cs.cout * g.kh * g.kw;
      for (const float beta : {0.0f, 1.5f}) {
        strided_operand dx = strided_random(cs.n, 3, cs.cin, cs.cin + 4, cs.h, cs.w, 35);
        C::conv2d_backward_data(cc, dy.c, w.c, dx.view.c, g, beta);
        G::conv2d_backward_data(gc, dy.g, w.g, dx.view.g, g, beta);
        check(dx.buffer, reduction(kd), "conv2d_backward_data beta " + std::to_string(beta));
      }

      // Backward filter (and bias) from the strided x, beta 0 and 1; dy scaled so that dw is of order 1.
      const index_t kf = cs.n * ho * wo;
      const double s = 1.0 / std::sqrt(static_cast<double>(kf));
      const twin dys = random_twin(shape{cs.n, cs.cout, ho, wo}, 36, -s, s);
      for (const float beta : {0.0f, 1.0f}) {
        twin dw = random_twin(w.dims(), 37), db = random_twin(shape{cs.cout}, 38);
        C::conv2d_backward_filter(cc, x.view.c, dys.c, dw.c, cs.bias ? &db.c : nullptr, g, beta);
        G::conv2d_backward_filter(gc, x.view.g, dys.g, dw.g, cs.bias ? &db.g : nullptr, g, beta);
        check(dw, reduction(kf), "conv2d_backward_filter dw beta " + std::to_string(beta));
        if (cs.bias) check(db, reduction(kf), "conv2d_backward_filter db beta " + std::to_string(beta));
      }
    }
  }
}

BOOST_FIXTURE_TEST_CASE(algorithm_cache_gives_the_same_result_twice, contexts) {
  // The second call of one shape uses the cached algorithm: same bits as the first call.
  const twin x = random_twin(shape{2, 8, 12, 12}, 40), w = random_twin(shape{16, 8, 3, 3}, 41, -0.1, 0.1);
  const conv_geometry g{3, 3, 1, 1};
  tensor<G> y1(shape{2, 16, 12, 12}), y2(shape{2, 16, 12, 12});
  G::conv2d_forward(gc, x.g, w.g, nullptr, y1, g);
  G::conv2d_forward(gc, x.g, w.g, nullptr, y2, g);
  BOOST_TEST(testing::host_values(y1) == testing::host_values(y2));
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ batch norm

BOOST_AUTO_TEST_SUITE(batch_norm)

BOOST_FIXTURE_TEST_CASE(training_forward_running_statistics_and_backward, contexts) {
  const index_t n = 3, c = 6, h = 7, w = 5, m = n * h * w;
  for (const bool relu : {false, true})
    for (const bool strided : {false, true}) {
      BOOST_TEST_CONTEXT("relu " << relu << ", strided " << strided) {
        // Values with a large mean and a small spread: the variance must be computed without cancellation.
        const strided_operand x = strided ? strided_random(n, 3, c, c + 5, h, w, 50, 2.0, 3.0)
                                          : strided_operand{random_twin(shape{n, c, h, w}, 50, 2.0, 3.0), {}};
        const twin xv = strided ? x.view : x.buffer;
        const twin gamma = random_twin(shape{c}, 51, 0.5, 1.5), beta = random_twin(shape{c}, 52, -0.5, 0.5);
        twin rmean = random_twin(shape{c}, 53), rvar = random_twin(shape{c}, 54, 0.5, 2.0);
        twin mean = full_twin(shape{c}, 0.0f), invstd = full_twin(shape{c}, 0.0f);
        strided_operand y = strided ? strided_random(n, 1, c, c + 2, h, w, 55)
                                    : strided_operand{random_twin(shape{n, c, h, w}, 55), {}};
        const twin yv = strided ? y.view : y.buffer;
        C::batch_norm_forward_train(cc, xv.c, gamma.c, beta.c, yv.c, mean.c, invstd.c, &rmean.c, &rvar.c, 0.1, 1e-5,
                                    relu);
        G::batch_norm_forward_train(gc, xv.g, gamma.g, beta.g, yv.g, mean.g, invstd.g, &rmean.g, &rvar.g, 0.1, 1e-5,
                                    relu);
        check(y.buffer, reduction(m), "batch_norm_forward_train y");
        check(mean, reduction(m), "saved mean");
        check(invstd, reduction(m), "saved invstd");
        check(rmean, reduction(m), "running mean");
        check(rvar, reduction(m), "running variance (unbiased)");

        // Recomputation from the saved statistics reproduces the forward output.
        twin y2 = random_twin(shape{n, c, h, w}, 56);
        C::batch_norm_recompute(cc, xv.c, gamma.c, beta.c, mean.c, invstd.c, y2.c, relu);
        G::batch_norm_recompute(gc, xv.g, gamma.g, beta.g, mean.g, invstd.g, y2.g, relu);
        check(y2, reduction(m), "batch_norm_recompute");

        // Without running statistics nothing else changes (the memory-efficient recomputation path).
        twin rm2 = rmean, rv2 = rvar;
        const std::vector<float> rm_before = testing::host_values(rm2.g);
        G::batch_norm_forward_train(gc, xv.g, gamma.g, beta.g, yv.g, mean.g, invstd.g, nullptr, nullptr, 0.1, 1e-5,
                                    relu);
        BOOST_TEST(testing::host_values(rm2.g) == rm_before);

        // Backward, dx strided, dx_beta and param_beta 0 and 1.
        const double s = 1.0 / std::sqrt(static_cast<double>(m));
        const twin dy = random_twin(shape{n, c, h, w}, 57);
        for (const float kb : {0.0f, 1.0f}) {
          strided_operand dx = strided ? strided_random(n, 2, c, c + 3, h, w, 58)
                                       : strided_operand{random_twin(shape{n, c, h, w}, 58), {}};
          const twin dxv = strided ? dx.view : dx.buffer;
          twin dgamma = random_twin(shape{c}, 59, -s * 10, s * 10), dbeta = random_twin(shape{c}, 60, -s * 10, s * 10);
          C::batch_norm_backward(cc, xv.c, dy.c, gamma.c, beta.c, mean.c, invstd.c, relu, dxv.c, kb, dgamma.c, dbeta.c,
                                 kb);
          G::batch_norm_backward(gc, xv.g, dy.g, gamma.g, beta.g, mean.g, invstd.g, relu, dxv.g, kb, dgamma.g, dbeta.g,
                                 kb);
          check(dx.buffer, reduction(m), "batch_norm_backward dx, beta " + std::to_string(kb));
          check(dgamma, reduction(m), "batch_norm_backward dgamma, beta " + std::to_string(kb));
          check(dbeta, reduction(m), "batch_norm_backward dbeta, beta " + std::to_string(kb));
        }
      }
    }
}

BOOST_FIXTURE_TEST_CASE(running_statistics_over_several_batches, contexts) {
  // Five batches of shifting data: the running mean and the unbiased running variance follow the CPU's.
  const index_t c = 4;
  const twin gamma = full_twin(shape{c}, 1.0f), beta = full_twin(shape{c}, 0.0f);
  twin rmean = full_twin(shape{c}, 0.0f), rvar = full_twin(shape{c}, 1.0f);
  for (int step = 0; step < 5; ++step) {
    const twin x = random_twin(shape{2, c, 3, 3}, 70 + static_cast<std::uint64_t>(step), step, 2.0 * step + 1.0);
    twin y = full_twin(x.dims(), 0.0f), mean = full_twin(shape{c}, 0.0f), invstd = full_twin(shape{c}, 0.0f);
    C::batch_norm_forward_train(cc, x.c, gamma.c, beta.c, y.c, mean.c, invstd.c, &rmean.c, &rvar.c, 0.1, 1e-5, false);
    G::batch_norm_forward_train(gc, x.g, gamma.g, beta.g, y.g, mean.g, invstd.g, &rmean.g, &rvar.g, 0.1, 1e-5, false);
  }
  check(rmean, reduction(18), "running mean after 5 batches");
  check(rvar, reduction(18), "running variance after 5 batches");
}

BOOST_FIXTURE_TEST_CASE(rank_two_input, contexts) {
  // (N,C) features (the projector's BatchNorm1d): statistics over the batch only.
  const twin x = random_twin(shape{9, 12}, 80), gamma = random_twin(shape{12}, 81, 0.5, 1.5),
             beta = random_twin(shape{12}, 82);
  twin y = full_twin(x.dims(), 0.0f), mean = full_twin(shape{12}, 0.0f), invstd = full_twin(shape{12}, 0.0f);
  twin rm = full_twin(shape{12}, 0.0f), rv = full_twin(shape{12}, 1.0f);
  C::batch_norm_forward_train(cc, x.c, gamma.c, beta.c, y.c, mean.c, invstd.c, &rm.c, &rv.c, 0.1, 1e-5, false);
  G::batch_norm_forward_train(gc, x.g, gamma.g, beta.g, y.g, mean.g, invstd.g, &rm.g, &rv.g, 0.1, 1e-5, false);
  check(y, reduction(9), "batch norm (N,C) y");
  check(rv, reduction(9), "batch norm (N,C) running variance");
  const twin dy = random_twin(x.dims(), 83);
  twin dx = full_twin(x.dims(), 0.0f), dg = full_twin(shape{12}, 0.0f), db = full_twin(shape{12}, 0.0f);
  C::batch_norm_backward(cc, x.c, dy.c, gamma.c, beta.c, mean.c, invstd.c, false, dx.c, 0.0f, dg.c, db.c, 0.0f);
  G::batch_norm_backward(gc, x.g, dy.g, gamma.g, beta.g, mean.g, invstd.g, false, dx.g, 0.0f, dg.g, db.g, 0.0f);
  check(dx, reduction(9), "batch norm (N,C) dx");
  check(dg, reduction(9), "batch norm (N,C) dgamma");
}

BOOST_FIXTURE_TEST_CASE(inference_forward_and_backward, contexts) {
  const index_t n = 2, c = 5, h = 6, w = 9;
  for (const bool relu : {false, true}) {
    BOOST_TEST_CONTEXT("relu " << relu) {
      const strided_operand x = strided_random(n, 1, c, c + 2, h, w, 90);
      const twin gamma = random_twin(shape{c}, 91, 0.5, 1.5), beta = random_twin(shape{c}, 92);
      const twin rmean = random_twin(shape{c}, 93, -0.3, 0.3), rvar = random_twin(shape{c}, 94, 0.2, 3.0);
      strided_operand y = strided_random(n, 2, c, c + 4, h, w, 95);
      C::batch_norm_forward_eval(cc, x.view.c, gamma.c, beta.c, rmean.c, rvar.c, 1e-5, y.view.c, relu);
      G::batch_norm_forward_eval(gc, x.view.g, gamma.g, beta.g, rmean.g, rvar.g, 1e-5, y.view.g, relu);
      check(y.buffer, elementwise(1e-6, 1e-5), "batch_norm_forward_eval");

      const twin dy = random_twin(shape{n, c, h, w}, 96);
      for (const float kb : {0.0f, 1.0f}) {
        strided_operand dx = strided_random(n, 0, c, c + 1, h, w, 97);
        twin dg = random_twin(shape{c}, 98), db = random_twin(shape{c}, 99);
        C::batch_norm_backward_eval(cc, x.view.c, dy.c, gamma.c, beta.c, rmean.c, rvar.c, 1e-5, relu, dx.view.c, kb,
                                    dg.c, db.c, kb);
        G::batch_norm_backward_eval(gc, x.view.g, dy.g, gamma.g, beta.g, rmean.g, rvar.g, 1e-5, relu, dx.view.g, kb,
                                    dg.g, db.g, kb);
        check(dx.buffer, elementwise(1e-6, 1e-5), "batch_norm_backward_eval dx");
        check(dg, reduction(n * h * w), "batch_norm_backward_eval dgamma");
        check(db, reduction(n * h * w), "batch_norm_backward_eval dbeta");
      }
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ concatenation

BOOST_AUTO_TEST_SUITE(concatenation)

BOOST_FIXTURE_TEST_CASE(concat_and_split_channels_into_a_shared_buffer, contexts) {
  const twin a = random_twin(shape{3, 4, 5, 6}, 100), b = random_twin(shape{3, 1, 5, 6}, 101),
             c = random_twin(shape{3, 7, 5, 6}, 102);
  // The output is itself channels [2, 14) of a wider buffer.
  strided_operand out = strided_random(3, 2, 12, 16, 5, 6, 103);
  const std::vector<tensor<C>> ic{a.c, b.c, c.c};
  const std::vector<tensor<G>> ig{a.g, b.g, c.g};
  C::concat_channels(cc, std::span<const tensor<C>>(ic), out.view.c);
  G::concat_channels(gc, std::span<const tensor<G>>(ig), out.view.g);
  check(out.buffer, exact(), "concat_channels");

  // beta = 0 is a copy (bit-exact); beta != 0 is a + beta·b, which a fused multiply-add rounds once and the CPU
  // twice: a few 1e-8 apart for values of order 1.
  for (const float beta : {0.0f, 0.5f}) {
    twin sa = random_twin(a.dims(), 104), sb = random_twin(b.dims(), 105), sc = random_twin(c.dims(), 106);
    const std::vector<tensor<C>> oc{sa.c, sb.c, sc.c};
    const std::vector<tensor<G>> og{sa.g, sb.g, sc.g};
    C::split_channels(cc, out.view.c, std::span<const tensor<C>>(oc), beta);
    G::split_channels(gc, out.view.g, std::span<const tensor<G>>(og), beta);
    check(sa, beta == 0.0f ? exact() : elementwise(), "split_channels first, beta " + std::to_string(beta));
    check(sb, beta == 0.0f ? exact() : elementwise(), "split_channels second, beta " + std::to_string(beta));
    check(sc, beta == 0.0f ? exact() : elementwise(), "split_channels third, beta " + std::to_string(beta));
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ activations

BOOST_AUTO_TEST_SUITE(activations)

BOOST_FIXTURE_TEST_CASE(relu_forward_and_backward_on_strided_views, contexts) {
  strided_operand x = strided_random(3, 1, 5, 8, 7, 3, 110);
  C::fill(x.buffer.c.channels(1, 1), 0.0f);  // exact zeros: the mask is y > 0 on both
  G::fill(x.buffer.g.channels(1, 1), 0.0f);
  strided_operand y = strided_random(3, 2, 5, 7, 7, 3, 111);
  C::relu_forward(cc, x.view.c, y.view.c);
  G::relu_forward(gc, x.view.g, y.view.g);
  check(y.buffer, exact(), "relu_forward");
  const twin dy = random_twin(shape{3, 5, 7, 3}, 112);
  for (const float beta : {0.0f, 2.0f}) {
    strided_operand dx = strided_random(3, 0, 5, 6, 7, 3, 113);
    C::relu_backward(cc, y.view.c, dy.c, dx.view.c, beta);
    G::relu_backward(gc, y.view.g, dy.g, dx.view.g, beta);
    check(dx.buffer, beta == 0.0f ? exact() : elementwise(), "relu_backward beta " + std::to_string(beta));
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ pooling

BOOST_AUTO_TEST_SUITE(pooling)

BOOST_FIXTURE_TEST_CASE(max_pool_ties_and_padding, contexts) {
  // Values in {-1, 0, 1, 2}: most windows hold ties, and the first maximum (PyTorch's) must win in backward.
  tensor<C> h(shape{2, 3, 9, 8});
  rng r(120);
  for (index_t i = 0; i < h.numel(); ++i) h.data()[i] = static_cast<float>(static_cast<int>(r.below(4)) - 1);
  const twin x = twin_of(h);
  for (const pool_geometry g : {pool_geometry{3, 2, 1}, pool_geometry{2, 2, 0}, pool_geometry{3, 1, 1}}) {
    BOOST_TEST_CONTEXT("max pool k " << g.k << " stride " << g.stride << " pad " << g.pad) {
      const index_t ho = g.out(9), wo = g.out(8);
      twin y = full_twin(shape{2, 3, ho, wo}, 7.0f);
      C::max_pool_forward(cc, x.c, y.c, g);
      G::max_pool_forward(gc, x.g, y.g, g);
      check(y, exact(), "max_pool_forward");
      const twin dy = random_twin(y.dims(), 121);
      for (const float beta : {0.0f, 1.0f}) {
        twin dx = random_twin(x.dims(), 122);
        C::max_pool_backward(cc, x.c, dy.c, dx.c, g, beta);
        G::max_pool_backward(gc, x.g, dy.g, dx.g, g, beta);
        check(dx, elementwise(1e-6, 1e-6), "max_pool_backward (first maximum wins) beta " + std::to_string(beta));
      }
    }
  }
}

BOOST_FIXTURE_TEST_CASE(max_pool_negative_values_at_the_padding, contexts) {
  // All values negative: padding counts as -inf, never as 0.
  const twin x = random_twin(shape{1, 2, 5, 5}, 125, -3.0, -1.0);
  const pool_geometry g{3, 2, 1};
  twin y = full_twin(shape{1, 2, 3, 3}, 0.0f);
  C::max_pool_forward(cc, x.c, y.c, g);
  G::max_pool_forward(gc, x.g, y.g, g);
  check(y, exact(), "max_pool_forward of negative values with padding");
}

BOOST_FIXTURE_TEST_CASE(average_pool_with_padding_counted, contexts) {
  const twin x = random_twin(shape{2, 3, 9, 7}, 130);
  for (const pool_geometry g : {pool_geometry{2, 2, 0}, pool_geometry{3, 2, 1}, pool_geometry{3, 3, 0}}) {
    BOOST_TEST_CONTEXT("avg pool k " << g.k << " stride " << g.stride << " pad " << g.pad) {
      twin y = full_twin(shape{2, 3, g.out(9), g.out(7)}, 0.0f);
      C::avg_pool_forward(cc, x.c, y.c, g);
      G::avg_pool_forward(gc, x.g, y.g, g);
      check(y, elementwise(1e-6, 1e-5), "avg_pool_forward");
      const twin dy = random_twin(y.dims(), 131);
      for (const float beta : {0.0f, 1.0f}) {
        twin dx = random_twin(x.dims(), 132);
        C::avg_pool_backward(cc, dy.c, dx.c, g, beta);
        G::avg_pool_backward(gc, dy.g, dx.g, g, beta);
        check(dx, elementwise(1e-6, 1e-5), "avg_pool_backward beta " + std::to_string(beta));
      }
    }
  }
}

BOOST_FIXTURE_TEST_CASE(global_average_pool_with_and_without_relu, contexts) {
  const strided_operand x = strided_random(3, 2, 6, 9, 7, 5, 140);
  for (const bool relu : {false, true}) {
    twin y = full_twin(shape{3, 6}, 0.0f);
    C::global_avg_pool_forward(cc, x.view.c, y.c, relu);
    G::global_avg_pool_forward(gc, x.view.g, y.g, relu);
    check(y, reduction(35), "global_avg_pool_forward relu " + std::to_string(relu));
    const twin dy = random_twin(shape{3, 6}, 141);
    for (const float beta : {0.0f, 1.0f}) {
      strided_operand dx = strided_random(3, 1, 6, 7, 7, 5, 142);
      C::global_avg_pool_backward(cc, x.view.c, dy.c, dx.view.c, relu, beta);
      G::global_avg_pool_backward(gc, x.view.g, dy.g, dx.view.g, relu, beta);
      check(dx.buffer, elementwise(1e-6, 1e-5), "global_avg_pool_backward relu " + std::to_string(relu));
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ rows

BOOST_AUTO_TEST_SUITE(rows)

BOOST_FIXTURE_TEST_CASE(bias_broadcast_column_sums_and_softmax, contexts) {
  twin y = random_twin(shape{7, 13}, 150);
  const twin b = random_twin(shape{13}, 151);
  C::add_row_broadcast(cc, y.c, b.c);
  G::add_row_broadcast(gc, y.g, b.g);
  check(y, elementwise(), "add_row_broadcast");

  const twin a = random_twin(shape{300, 11}, 152);
  for (const float beta : {0.0f, 1.0f}) {
    twin out = random_twin(shape{11}, 153);
    C::sum_rows(cc, a.c, out.c, beta);
    G::sum_rows(gc, a.g, out.g, beta);
    check(out, reduction(300), "sum_rows beta " + std::to_string(beta));
  }

  // Logits with a large spread and one row of equal values: log-softmax must subtract the row maximum.
  tensor<C> lh = testing::random_host<C>(shape{6, 5}, 154, -30.0, 30.0);
  for (index_t j = 0; j < 5; ++j) lh.at(2, j) = 100.0f;
  const twin logits = twin_of(lh);
  twin ls = full_twin(logits.dims(), 0.0f), sm = full_twin(logits.dims(), 0.0f);
  C::log_softmax_rows(cc, logits.c, ls.c);
  G::log_softmax_rows(gc, logits.g, ls.g);
  check(ls, elementwise(1e-5, 1e-6), "log_softmax_rows");
  C::softmax_rows(cc, logits.c, sm.c);
  G::softmax_rows(gc, logits.g, sm.g);
  check(sm, elementwise(1e-7, 1e-5), "softmax_rows");
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ elementwise and reductions

BOOST_AUTO_TEST_SUITE(elementwise_and_reductions)

BOOST_FIXTURE_TEST_CASE(axpby_scale_sum_dot_and_finiteness, contexts) {
  const twin x = random_twin(shape{1001}, 160);
  for (const float b : {0.0f, -0.5f}) {
    twin y = random_twin(shape{1001}, 161);
    C::axpby(cc, 1.5f, x.c, b, y.c);
    G::axpby(gc, 1.5f, x.g, b, y.g);
    check(y, elementwise(), "axpby b " + std::to_string(b));
  }
  twin s = random_twin(shape{3, 7}, 162);
  C::scale(cc, s.c, -2.0f);
  G::scale(gc, s.g, -2.0f);
  check(s, elementwise(), "scale");

  // Reductions in double: the results agree to double rounding of float inputs, whatever the order.
  const twin big = random_twin(shape{3, 5, 33, 31}, 163);
  const double sc = C::sum(cc, big.c), sg = G::sum(gc, big.g);
  BOOST_TEST(std::abs(sc - sg) <= 1e-9 * (1.0 + std::abs(sc)), "sum: CUDA " << sg << ", CPU " << sc);
  const strided_operand sv = strided_random(3, 1, 4, 6, 5, 5, 164);
  const double svc = C::sum(cc, sv.view.c), svg = G::sum(gc, sv.view.g);
  BOOST_TEST(std::abs(svc - svg) <= 1e-9 * (1.0 + std::abs(svc)), "sum of a strided view: CUDA " << svg << ", CPU " << svc);
  const twin big2 = random_twin(big.dims(), 165);
  const double dc = C::dot(cc, big.c, big2.c), dg = G::dot(gc, big.g, big2.g);
  BOOST_TEST(std::abs(dc - dg) <= 1e-9 * (1.0 + std::abs(dc)), "dot: CUDA " << dg << ", CPU " << dc);

  BOOST_TEST(G::all_finite(gc, big.g));
  for (const float bad : {std::numeric_limits<float>::quiet_NaN(), std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity()}) {
    tensor<C> h = big.c.clone();
    h.data()[h.numel() - 1] = bad;  // the very last element: every block of the reduction must be looked at
    const tensor<G> d = to<G>(h);
    BOOST_TEST(!G::all_finite(gc, d), "all_finite missed " << bad);
    BOOST_TEST(G::all_finite(gc, d) == C::all_finite(cc, h));
  }
  // A strided view whose non-finite element lies outside the view is finite.
  strided_operand nf = strided_random(2, 1, 2, 4, 3, 3, 166);
  tensor<C> hb = nf.buffer.c;
  hb.at(1, 0, 2, 2) = std::numeric_limits<float>::quiet_NaN();
  nf.buffer.g = to<G>(hb);
  BOOST_TEST(G::all_finite(gc, nf.buffer.g.channels(1, 2)) == true);
  BOOST_TEST(G::all_finite(gc, nf.buffer.g) == false);
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ optimizers

BOOST_AUTO_TEST_SUITE(optimizer_steps)

BOOST_FIXTURE_TEST_CASE(sgd_over_several_iterations, contexts) {
  struct variant {
    float momentum, dampening, wd;
    bool nesterov, buffer;
  };
  for (const variant v : {variant{0.9f, 0.0f, 1e-4f, false, true}, variant{0.9f, 0.1f, 0.0f, false, true},
                          variant{0.8f, 0.0f, 5e-4f, true, true}, variant{0.0f, 0.0f, 1e-3f, false, false}}) {
    BOOST_TEST_CONTEXT("momentum " << v.momentum << " dampening " << v.dampening << " wd " << v.wd << " nesterov "
                                   << v.nesterov) {
      twin p = random_twin(shape{4097}, 170), buf = full_twin(shape{4097}, 0.0f);
      for (int step = 0; step < 6; ++step) {
        const twin g = random_twin(shape{4097}, 171 + static_cast<std::uint64_t>(step));
        C::sgd_step(cc, p.c, g.c, v.buffer ? &buf.c : nullptr, 0.05f, v.momentum, v.dampening, v.wd, v.nesterov,
                    step == 0);
        G::sgd_step(gc, p.g, g.g, v.buffer ? &buf.g : nullptr, 0.05f, v.momentum, v.dampening, v.wd, v.nesterov,
                    step == 0);
      }
      check(p, elementwise(1e-6, 1e-5), "sgd parameters after 6 steps");
      if (v.buffer) check(buf, elementwise(1e-6, 1e-5), "sgd momentum buffer after 6 steps");
    }
  }
}

BOOST_FIXTURE_TEST_CASE(adam_and_adamw_over_several_iterations, contexts) {
  for (const bool decoupled : {false, true}) {
    BOOST_TEST_CONTEXT("decoupled " << decoupled) {
      twin p = random_twin(shape{3001}, 180), m = full_twin(shape{3001}, 0.0f), v = full_twin(shape{3001}, 0.0f);
      for (long step = 1; step <= 7; ++step) {
        const twin g = random_twin(shape{3001}, 181 + static_cast<std::uint64_t>(step), -0.01, 0.01);
        C::adam_step(cc, p.c, g.c, m.c, v.c, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, decoupled, step);
        G::adam_step(gc, p.g, g.g, m.g, v.g, 1e-3f, 0.9f, 0.999f, 1e-8f, 1e-2f, decoupled, step);
      }
      check(p, elementwise(1e-6, 1e-5), "adam parameters after 7 steps");
      check(m, elementwise(1e-9, 1e-5), "adam first moment");
      check(v, elementwise(1e-12, 1e-5), "adam second moment");
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

#ifndef MAMMOCL_GPU_TESTS_ON_CPU  // the SupCon and VOI LUT ops exist on the CUDA backend only
// ------------------------------------------------------------------------------------------------ SupCon

namespace {

/// Host SupCon (losses::supcon with an explicit mask) against the device op with the same (B,B) mask.
void check_supcon(contexts& ctx, index_t b, index_t v, index_t d, const std::vector<double>& mask, bool all,
                  bool normalize, double temperature, double base_temperature, std::uint64_t seed) {
  tensor<C> f = testing::random_host<C>(shape{b, v, d}, seed);
  if (!normalize)  // rows of unit norm, as the op requires without normalize
    for (index_t i = 0; i < b; ++i)
      for (index_t j = 0; j < v; ++j) {
        float* row = f.item(i) + j * d;
        double s = 0;
        for (index_t k = 0; k < d; ++k) s += static_cast<double>(row[k]) * row[k];
        for (index_t k = 0; k < d; ++k) row[k] = static_cast<float>(row[k] / std::sqrt(s));
      }
  tensor<C> mh(shape{b, b});
  for (index_t i = 0; i < b * b; ++i) mh.data()[i] = static_cast<float>(mask[static_cast<std::size_t>(i)]);
  const losses::supcon loss({.temperature = temperature, .base_temperature = base_temperature,
                             .mode = all ? losses::supcon::contrast_mode::all : losses::supcon::contrast_mode::one,
                             .normalize = normalize});
  tensor<C> grad_c;
  std::vector<double> ell_c;
  const double lc = loss.value_and_gradient<C>(ctx.cc, f, mh, &grad_c, &ell_c);

  const tensor<G> fg = to<G>(f);
  tensor<G> grad_g(shape{1});  // wrong shape on purpose: the op reallocates it
  std::vector<double> ell_g;
  const double lg = G::supcon(ctx.gc, fg, mask, temperature, base_temperature, all, normalize, &grad_g, &ell_g);
  BOOST_TEST(std::abs(lg - lc) <= 1e-9 * (1.0 + std::abs(lc)), "SupCon loss: CUDA " << lg << ", CPU " << lc);
  BOOST_TEST_REQUIRE(ell_g.size() == ell_c.size());
  for (std::size_t i = 0; i < ell_c.size(); ++i)
    BOOST_TEST(std::abs(ell_g[i] - ell_c[i]) <= 1e-9 * (1.0 + std::abs(ell_c[i])), "anchor " << i);
  // Both compute in double and round the gradient to float once: a few float roundings apart at most.
  const testing::comparison c = testing::compare(grad_g, grad_c, tolerance{.atol = 1e-7, .rtol = 1e-5, .atol_times_rms = true}, "SupCon gradient");
  BOOST_TEST(c.ok, c.message());
  // Without grad or anchor losses the value is the same.
  const double lv = G::supcon(ctx.gc, fg, mask, temperature, base_temperature, all, normalize, nullptr, nullptr);
  BOOST_TEST(std::abs(lv - lg) <= 1e-12 * (1.0 + std::abs(lg)));
}

std::vector<double> label_mask(const std::vector<int>& labels) {
  const std::size_t b = labels.size();
  std::vector<double> m(b * b);
  for (std::size_t i = 0; i < b; ++i)
    for (std::size_t j = 0; j < b; ++j) m[i * b + j] = labels[i] == labels[j] ? 1.0 : 0.0;
  return m;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(supcon)

BOOST_FIXTURE_TEST_CASE(against_losses_supcon_on_the_host, contexts) {
  // Labels (with a class of one sample: its anchors have no positive with one view), an explicit random
  // mask, and SimCLR's identity mask; all and one mode; normalize on and off; several sizes.
  const std::vector<int> labels{0, 1, 0, 2, 1, 1, 3};
  std::vector<double> random_mask(49);
  rng r(190);
  for (auto& x : random_mask) x = r.below(3) == 0 ? 1.0 : 0.0;
  std::vector<double> identity(49, 0.0);
  for (int i = 0; i < 7; ++i) identity[static_cast<std::size_t>(i * 7 + i)] = 1.0;
  for (const bool all : {true, false})
    for (const bool normalize : {false, true}) {
      BOOST_TEST_CONTEXT("all " << all << ", normalize " << normalize) {
        check_supcon(*this, 7, 2, 16, label_mask(labels), all, normalize, 0.1, 0.1, 191);
        check_supcon(*this, 7, 2, 33, random_mask, all, normalize, 0.07, 0.1, 192);
        check_supcon(*this, 7, 3, 5, identity, all, normalize, 0.5, 0.07, 193);
        check_supcon(*this, 7, 1, 8, label_mask(labels), all, normalize, 0.1, 0.1, 194);
      }
    }
  // A size past one thread block: 2 x 150 anchors, 128-d.
  std::vector<int> many(150);
  for (std::size_t i = 0; i < many.size(); ++i) many[i] = static_cast<int>(i % 5);
  check_supcon(*this, 150, 2, 128, label_mask(many), true, true, 0.1, 0.1, 195);
}

BOOST_FIXTURE_TEST_CASE(errors_match_the_host_loss, contexts) {
  // A row that is not unit-norm without normalize: shape_error naming the row, as losses::supcon.
  tensor<C> f = testing::random_host<C>(shape{3, 2, 4}, 196, 0.5, 1.0);
  const std::vector<double> m = label_mask({0, 1, 0});
  const tensor<G> fg = to<G>(f);
  try {
    (void)G::supcon(gc, fg, m, 0.1, 0.1, true, false, nullptr, nullptr);
    BOOST_ERROR("no shape_error for rows that are not unit-norm");
  } catch (const shape_error& e) {
    BOOST_TEST(std::string(e.message()).find("supcon: feature row 0 (sample 0, view 0) has L2 norm") == 0,
               e.message());
  }
  // One NaN: numeric_error naming it, with the host loss's exact message.
  f.item(1)[4 + 2] = std::numeric_limits<float>::quiet_NaN();  // sample 1, view 1, component 2
  tensor<C> mh(shape{3, 3});
  for (index_t i = 0; i < 9; ++i) mh.data()[i] = static_cast<float>(m[static_cast<std::size_t>(i)]);
  const losses::supcon host({.normalize = true});
  expect_same_error<numeric_error>([&] { (void)host.value_and_gradient<C>(cc, f, mh, nullptr); },
                                   [&] { (void)G::supcon(gc, to<G>(f), m, 0.1, 0.1, true, true, nullptr, nullptr); },
                                   "supcon: feature (sample 1, view 1, component 2)");
}

BOOST_AUTO_TEST_SUITE_END()

// ------------------------------------------------------------------------------------------------ VOI LUT

BOOST_AUTO_TEST_SUITE(voi_lut)

BOOST_FIXTURE_TEST_CASE(sigmoid_against_data_voi_sigmoid_unchecked, contexts) {
  // 12-bit raw values on a strided view, written into a strided view: a wide window, a narrow one (most
  // values saturate) and a signed 16-bit output range with a sub-unit width.
  const strided_operand x = strided_random(2, 1, 3, 5, 17, 13, 220, 0.0, 4095.0);
  struct window {
    double c, w, ymin, ymax;
  };
  for (const window wd : {window{2048, 4096, 0, 1}, window{1000, 50, 0, 4095}, window{3000.5, 0.5, -32768, 32767}}) {
    BOOST_TEST_CONTEXT("center " << wd.c << " width " << wd.w << " range [" << wd.ymin << ", " << wd.ymax << "]") {
      strided_operand y = strided_random(2, 0, 3, 4, 17, 13, 221);
      G::voi_lut_sigmoid(gc, x.view.g, y.view.g, wd.c, wd.w, wd.ymin, wd.ymax);
      for (index_t i = 0; i < 2; ++i)
        for (index_t k = 0; k < x.view.c.item_size(); ++k)
          y.view.c.item(i)[k] = static_cast<float>(data::detail::voi_sigmoid_unchecked(
              static_cast<double>(x.view.c.item(i)[k]), wd.c, wd.w, wd.ymin, wd.ymax));
      // Both evaluate in double and round once to float: equal but for a last-ulp difference of exp().
      check(y.buffer, tolerance{.atol = 1e-9 * (wd.ymax - wd.ymin), .rtol = 2.5e-7}, "voi_lut_sigmoid");
    }
  }
}

BOOST_AUTO_TEST_SUITE_END()

#endif

// ------------------------------------------------------------------------------------------------ errors

BOOST_AUTO_TEST_SUITE(errors)

BOOST_FIXTURE_TEST_CASE(shape_errors_carry_the_cpu_backends_text, contexts) {
  const twin a = random_twin(shape{2, 3}, 200), b = random_twin(shape{3, 2}, 201), c = random_twin(shape{7}, 202);
  expect_same_error<shape_error>([&] { C::copy(a.c, b.c); }, [&] { G::copy(a.g, b.g); }, "copy: source shape (2,3)");
  expect_same_error<shape_error>([&] { C::axpby(cc, 1.0f, a.c, 1.0f, c.c); },
                                 [&] { G::axpby(gc, 1.0f, a.g, 1.0f, c.g); }, "axpby: sizes differ");
  expect_same_error<shape_error>([&] { (void)C::dot(cc, a.c, c.c); }, [&] { (void)G::dot(gc, a.g, c.g); },
                                 "dot: needs two contiguous tensors");
  const twin x = random_twin(shape{2, 3, 4, 4}, 203), y = random_twin(shape{2, 3, 5, 4}, 204);
  expect_same_error<shape_error>([&] { C::relu_forward(cc, x.c, y.c); }, [&] { G::relu_forward(gc, x.g, y.g); },
                                 "elementwise op: shapes differ");
  const twin out = random_twin(shape{2, 5, 4, 4}, 205);
  const std::vector<tensor<C>> ic{x.c};
  const std::vector<tensor<G>> ig{x.g};
  expect_same_error<shape_error>([&] { C::concat_channels(cc, std::span<const tensor<C>>(ic), out.c); },
                                 [&] { G::concat_channels(gc, std::span<const tensor<G>>(ig), out.g); },
                                 "concat_channels: the inputs hold 3 channels, the output 5");
  const std::vector<tensor<C>> oc{y.c};
  const std::vector<tensor<G>> og{y.g};
  expect_same_error<shape_error>([&] { C::split_channels(cc, out.c, std::span<const tensor<C>>(oc), 0.0f); },
                                 [&] { G::split_channels(gc, out.g, std::span<const tensor<G>>(og), 0.0f); },
                                 "split_channels: output (2,3,5,4) does not fit");
}

#ifndef MAMMOCL_GPU_TESTS_ON_CPU  // device-only
BOOST_FIXTURE_TEST_CASE(device_errors_name_the_call, contexts) {
  // A device error derives from mammocl::error and names the failing call; an absurd allocation fails
  // in cudaMalloc (or the caching allocator) with a device_error, not a crash.
  try {
    const tensor<G> huge(shape{index_t{1} << 50});
    BOOST_ERROR("allocating 4 PiB on the device did not throw");
  } catch (const device_error& e) {
    BOOST_TEST(std::string(e.message()).find("cudaMalloc") != std::string::npos, e.message());
    const error& base = e;
    BOOST_TEST(!std::string(base.what()).empty());
  }
  // The context still works after the failed allocation.
  const twin t = random_twin(shape{5}, 210);
  BOOST_TEST(std::abs(G::sum(gc, t.g) - C::sum(cc, t.c)) <= 1e-9);
}
#endif

BOOST_AUTO_TEST_SUITE_END()

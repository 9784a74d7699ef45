// The CPU backend's batch norm folded into the convolution after it (what a dense layer runs on it):
// batch_norm_statistics and batch_norm_fold give batch_norm_forward_train's statistics and coefficients bit for
// bit; conv2d_affine_relu_forward and its filter gradient match a double-precision sum over max(0, x·a + b)
// (zero padding outside the map) and the unfused ops (batch norm, then conv2d). 1x1 convolutions (the packed
// GEMM), 3x3 ones through the Winograd and the direct kernels and a stride-2 one (the unfused fallback), for
// strided inputs, channel counts and map sizes that are not multiples of the kernels' panels, several k
// blocks, one and two threads, float and double. A dense layer on a backend without the folded ops (the
// emulated device with Fold = false: the CUDA path) gives the same values as the folded one.
#include <boost/test/unit_test.hpp>

#include <bit>
#include <cmath>
#include <cstring>
#include <vector>

#include "test_helpers.hpp"

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/layers/dense_block.hpp"
#include "mammocl/layers/transition.hpp"
#include "mammocl/testing/emulated_device_backend.hpp"

using namespace mammocl;

namespace {

struct fold_case {
  index_t n, cin, cout, h, w, k = 1, stride = 1, pad = 0;
};

template <class B>
void fill_normal(const tensor<B>& t, rng& r, double mean = 0.0, double sd = 1.0) {
  for (index_t i = 0; i < t.n(); ++i)
    for (index_t j = 0; j < t.item_size(); ++j) t.item(i)[j] = static_cast<typename B::scalar_type>(r.normal(mean, sd));
}

template <class B>
bool bit_equal(const tensor<B>& a, const tensor<B>& b) {
  if (a.dims() != b.dims()) return false;
  for (index_t i = 0; i < a.n(); ++i)
    if (std::memcmp(a.item(i), b.item(i), sizeof(typename B::scalar_type) * static_cast<std::size_t>(a.item_size())) != 0)
      return false;
  return true;
}

/// Largest |got − want| / (1 + Σ|terms|) over a tensor, with the reference and the term sums in double.
template <class B>
double worst(const tensor<B>& got, const std::vector<double>& want, const std::vector<double>& mag) {
  double e = 0;
  const index_t k = got.item_size();
  for (index_t i = 0; i < got.n(); ++i)
    for (index_t j = 0; j < k; ++j) {
      const auto q = static_cast<std::size_t>(i * k + j);
      e = std::max(e, std::abs(static_cast<double>(got.item(i)[j]) - want[q]) / (1.0 + mag[q]));
    }
  return e;
}

template <class B>
void check_case(const fold_case& c, int threads, double tol) {
  using T = typename B::scalar_type;
  typename B::context ctx(threads);
  rng r(static_cast<std::uint64_t>(c.n * 1000 + c.cin * 31 + c.cout + c.h * 7 + c.w));
  const index_t p = c.h * c.w;
  // x is a channel view of a larger buffer (a dense block's concatenation buffer), its channels shifted and
  // scaled differently so that the batch norm matters, and some channels mostly negative after it.
  tensor<B> buffer(shape{c.n, c.cin + 5, c.h, c.w});
  fill_normal(buffer, r, 0.3, 2.0);
  const tensor<B> x = buffer.channels(2, c.cin);
  tensor<B> gamma(shape{c.cin}), beta(shape{c.cin}), mean(shape{c.cin}), invstd(shape{c.cin}), rm(shape{c.cin}),
      rv(shape{c.cin});
  for (index_t ch = 0; ch < c.cin; ++ch) {
    gamma.data()[ch] = static_cast<T>(0.5 + 0.01 * static_cast<double>(ch));
    beta.data()[ch] = static_cast<T>(ch % 3 == 0 ? -0.8 : 0.1);
    rm.data()[ch] = T(0.25);
    rv.data()[ch] = T(1.5);
  }
  B::batch_norm_statistics(ctx, x, mean, invstd, &rm, &rv, 0.1, 1e-5);
  tensor<B> scale(shape{c.cin}), shift(shape{c.cin});
  B::batch_norm_fold(ctx, gamma, beta, mean, invstd, scale, shift);

  // Statistics and coefficients are batch_norm_forward_train's, bit for bit; so is the map's output.
  {
    tensor<B> mean2(mean.dims()), invstd2(mean.dims()), rm2(mean.dims()), rv2(mean.dims()), a(x.dims()), a2(x.dims());
    B::fill(rm2, T(0.25));
    B::fill(rv2, T(1.5));
    B::batch_norm_forward_train(ctx, x, gamma, beta, a, mean2, invstd2, &rm2, &rv2, 0.1, 1e-5, true);
    BOOST_TEST(bit_equal(mean, mean2));
    BOOST_TEST(bit_equal(invstd, invstd2));
    BOOST_TEST(bit_equal(rm, rm2));
    BOOST_TEST(bit_equal(rv, rv2));
    B::batch_norm_recompute(ctx, x, gamma, beta, mean, invstd, a2, true);
    BOOST_TEST(bit_equal(a, a2));
  }

  // The normalised input in double, from the float coefficients.
  std::vector<double> a(static_cast<std::size_t>(c.n * c.cin * p));
  for (index_t i = 0; i < c.n; ++i)
    for (index_t ch = 0; ch < c.cin; ++ch)
      for (index_t j = 0; j < p; ++j) {
        const double v = static_cast<double>(x.item(i)[ch * p + j]) * static_cast<double>(scale.data()[ch]) +
                         static_cast<double>(shift.data()[ch]);
        a[static_cast<std::size_t>((i * c.cin + ch) * p + j)] = v > 0 ? v : 0;
      }

  const conv_geometry g{c.k, c.k, c.stride, c.pad};
  const index_t ho = g.out_h(c.h), wo = g.out_w(c.w), po = ho * wo, taps = c.k * c.k;
  tensor<B> w(shape{c.cout, c.cin, c.k, c.k}), y(shape{c.n, c.cout, ho, wo}), dy(y.dims());
  fill_normal(w, r);
  fill_normal(dy, r);
  B::fill(y, T(9));  // overwritten
  B::conv2d_affine_relu_forward(ctx, x, scale, shift, w, y, g);
  // The mapped input at (image, channel, output position, tap); zero in the padding.
  const auto mapped = [&](index_t i, index_t ch, index_t o, index_t t) {
    const index_t iy = (o / wo) * c.stride - c.pad + t / c.k, ix = (o % wo) * c.stride - c.pad + t % c.k;
    if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) return 0.0;
    return a[static_cast<std::size_t>((i * c.cin + ch) * p + iy * c.w + ix)];
  };
  std::vector<double> want(static_cast<std::size_t>(y.numel())), mag(want.size());
  for (index_t i = 0; i < c.n; ++i)
    for (index_t o = 0; o < c.cout; ++o)
      for (index_t j = 0; j < po; ++j) {
        double s = 0, m = 0;
        for (index_t ch = 0; ch < c.cin; ++ch)
          for (index_t t = 0; t < taps; ++t) {
            const double v = static_cast<double>(w.data()[(o * c.cin + ch) * taps + t]) * mapped(i, ch, j, t);
            s += v;
            m += std::abs(v);
          }
        want[static_cast<std::size_t>((i * c.cout + o) * po + j)] = s;
        mag[static_cast<std::size_t>((i * c.cout + o) * po + j)] = m;
      }
  BOOST_TEST(worst(y, want, mag) <= tol);

  // The unfused ops: batch norm with ReLU, then the 1x1 convolution.
  {
    tensor<B> an(x.dims()), yn(y.dims());
    B::batch_norm_recompute(ctx, x, gamma, beta, mean, invstd, an, true);
    B::conv2d_forward(ctx, an, w, nullptr, yn, g);
    std::vector<double> unfused(want.size());
    for (index_t i = 0; i < c.n; ++i)
      for (index_t j = 0; j < yn.item_size(); ++j)
        unfused[static_cast<std::size_t>(i * yn.item_size() + j)] = static_cast<double>(yn.item(i)[j]);
    BOOST_TEST(worst(y, unfused, mag) <= tol);
  }

  // Filter gradient, overwritten (beta 0) and accumulated (beta 1).
  for (T beta_acc : {T(0), T(1)}) {
    tensor<B> dw(w.dims());
    fill_normal(dw, r);
    std::vector<double> dwant(static_cast<std::size_t>(dw.numel())), dmag(dwant.size());
    for (index_t o = 0; o < c.cout; ++o)
      for (index_t ch = 0; ch < c.cin; ++ch)
        for (index_t t = 0; t < taps; ++t) {
          const auto q = static_cast<std::size_t>((o * c.cin + ch) * taps + t);
          double s = beta_acc == T(0) ? 0.0 : static_cast<double>(dw.data()[q]), m = std::abs(s);
          for (index_t i = 0; i < c.n; ++i)
            for (index_t j = 0; j < po; ++j) {
              const double v = static_cast<double>(dy.item(i)[o * po + j]) * mapped(i, ch, j, t);
              s += v;
              m += std::abs(v);
            }
          dwant[q] = s;
          dmag[q] = m;
        }
    B::conv2d_affine_relu_backward_filter(ctx, x, scale, shift, dy, dw, g, beta_acc);
    BOOST_TEST_CONTEXT("filter gradient, beta " << beta_acc) { BOOST_TEST(worst(dw, dwant, dmag) <= tol); }
  }
}

const fold_case cases[] = {
    {2, 37, 12, 5, 7},             // 1x1, 35 positions: a narrower last panel; 37 channels: a narrower channel panel
    {3, 64, 128, 9, 9},            // 1x1, DenseNet-like: 128 outputs (a 2-row tail of 6-row tiles)
    {1, 20, 40, 16, 20},           // 1x1, more outputs than inputs: the filter gradient is cut into row blocks
    {2, 48, 32, 20, 20},           // 1x1, 400 positions: two k blocks of the filter gradient
    {1, 300, 16, 6, 6},            // 1x1, 300 channels: two k blocks of the forward product
    {2, 40, 20, 26, 25, 3, 1, 1},  // 3x3 through Winograd (676 tiles); 40 channels: a narrower channel block
    {3, 20, 17, 9, 11, 3, 1, 1},   // 3x3 through the direct kernel and the per-tap filter gradient
    {2, 5, 6, 9, 8, 3, 2, 1},      // 3x3 stride 2: the unfused fallback
};

}  // namespace

BOOST_AUTO_TEST_CASE(folded_float_matches_direct_sums_and_unfused_ops) {
  for (int threads : {1, 2})
    for (const fold_case& c : cases)
      BOOST_TEST_CONTEXT("float, " << threads << " thread(s), n " << c.n << " cin " << c.cin << " cout " << c.cout
                                   << " " << c.h << "x" << c.w << " kernel " << c.k << " stride " << c.stride) {
        check_case<cpu_backend>(c, threads, 2e-6);
      }
}

BOOST_AUTO_TEST_CASE(folded_double_matches_direct_sums_and_unfused_ops) {
  for (const fold_case& c : cases)
    BOOST_TEST_CONTEXT("double, n " << c.n << " cin " << c.cin << " cout " << c.cout << " " << c.h << "x" << c.w
                                    << " kernel " << c.k << " stride " << c.stride) {
      check_case<cpu_backend_f64>(c, 2, 1e-14);
    }
}

BOOST_AUTO_TEST_CASE(folded_conv_results_do_not_depend_on_the_thread_count) {
  using B = cpu_backend;
  for (index_t k : {1, 3}) {
    const conv_geometry g{k, k, 1, k / 2};
    rng r(5);
    tensor<B> x(shape{4, 70, 18, 18}), scale(shape{70}), shift(shape{70}), w(shape{128, 70, k, k}), dy(shape{4, 128, 18, 18});
    fill_normal(x, r);
    fill_normal(scale, r);
    fill_normal(shift, r);
    fill_normal(w, r);
    fill_normal(dy, r);
    tensor<B> y1(dy.dims()), y2(dy.dims()), dw1(w.dims()), dw2(w.dims());
    B::context one(1), two(2);
    B::conv2d_affine_relu_forward(one, x, scale, shift, w, y1, g);
    B::conv2d_affine_relu_forward(two, x, scale, shift, w, y2, g);
    B::conv2d_affine_relu_backward_filter(one, x, scale, shift, dy, dw1, g, 0.0f);
    B::conv2d_affine_relu_backward_filter(two, x, scale, shift, dy, dw2, g, 0.0f);
    BOOST_TEST_CONTEXT("kernel " << k) {
      BOOST_TEST(bit_equal(y1, y2));
      BOOST_TEST(bit_equal(dw1, dw2));
    }
  }
}

BOOST_AUTO_TEST_CASE(folded_conv_rejects_mismatched_shapes) {
  using B = cpu_backend;
  B::context ctx(1);
  const conv_geometry g1{1, 1, 1, 0};
  tensor<B> x(shape{2, 6, 4, 4}), s5(shape{5}), s6(shape{6}), w(shape{8, 6, 1, 1}), w3(shape{8, 6, 3, 3}), y(shape{2, 8, 4, 4}),
      y_bad(shape{2, 8, 4, 5});
  test::expect_error<shape_error>([&] { B::conv2d_affine_relu_forward(ctx, x, s5, s6, w, y, g1); },
                                  "conv2d_affine_relu_forward: scale (5) and shift (6) must hold one value per input channel (6)");
  test::expect_error<shape_error>([&] { B::conv2d_affine_relu_forward(ctx, x, s6, s6, w3, y, g1); },
                                  "conv2d_affine_relu_forward: input (2,6,4,4) and filters (8,6,3,3) do not make a 1x1 convolution");
  test::expect_error<shape_error>([&] { B::conv2d_affine_relu_forward(ctx, x, s6, s6, w, y_bad, g1); },
                                  "conv2d_affine_relu_forward: output (or output gradient) has shape (2,8,4,5), expected (2,8,4,4)");
  tensor<B> dw(w.dims());
  test::expect_error<shape_error>([&] { B::conv2d_affine_relu_backward_filter(ctx, x, s6, s6, y_bad, dw, g1, 0.0f); },
                                  "conv2d_affine_relu_backward_filter: output (or output gradient) has shape (2,8,4,5)");
}

namespace {

/// Forward, input gradient, inference, parameter gradients and running statistics of a layer on the CPU backend
/// (folded) against the same layer, same initialisation, on the emulated device without the folded ops.
template <template <class> class Layer>
void check_folded_agrees(const typename Layer<cpu_backend>::options& o, const shape& in, std::size_t parameters,
                         std::size_t buffers) {
  using F = cpu_backend;
  using U = testing::emulated_device_backend_t<float, false>;
  static_assert(Layer<F>::folded && !Layer<U>::folded);
  Layer<F> lf(o);
  Layer<U> lu(std::bit_cast<typename Layer<U>::options>(o));  // the same aggregate for the other backend
  rng r1(3), r2(3);
  lf.init(r1);
  lu.init(r2);
  F::context cf(2);
  U::context cu(2);
  tensor<F> xf(in);
  rng r(17);
  fill_normal(xf, r, 0.2, 1.5);
  tensor<U> xu(in);
  U::from_host(xf.data(), xu);
  typename Layer<F>::cache kf;
  typename Layer<U>::cache ku;
  const tensor<F> yf = lf.forward(cf, xf, kf);
  const tensor<U> yu = lu.forward(cu, xu, ku);
  tensor<F> dyf(yf.dims());
  fill_normal(dyf, r);
  tensor<U> dyu(yu.dims());
  U::from_host(dyf.data(), dyu);
  const tensor<F> dxf = lf.backward(cf, kf, dyf, grad_mode::overwrite);
  const tensor<U> dxu = lu.backward(cu, ku, dyu, grad_mode::overwrite);
  const tensor<F> inf = lf.infer(cf, xf);
  const tensor<U> inu = lu.infer(cu, xu);
  const auto close = [](const auto& a, const auto& b, double tol) {
    std::vector<float> va(static_cast<std::size_t>(a.numel())), vb(static_cast<std::size_t>(b.numel()));
    std::remove_cvref_t<decltype(a)>::backend_type::to_host(a, va.data());
    std::remove_cvref_t<decltype(b)>::backend_type::to_host(b, vb.data());
    double e = va.size() == vb.size() ? 0.0 : 1e30;
    for (std::size_t i = 0; i < va.size() && i < vb.size(); ++i)
      e = std::max(e, std::abs(double(va[i]) - double(vb[i])) / (1.0 + std::abs(double(vb[i]))));
    BOOST_TEST_MESSAGE("largest relative difference " << e);
    return e <= tol;
  };
  BOOST_TEST(close(yf, yu, 1e-5));
  BOOST_TEST(close(dxf, dxu, 1e-5));
  BOOST_TEST(close(inf, inu, 1e-5));
  std::vector<tensor<F>> pf, bf;
  std::vector<tensor<U>> pu, bu;
  lf.for_each_parameter("", [&](const std::string&, parameter<F>& q) { pf.push_back(q.grad); });
  lu.for_each_parameter("", [&](const std::string&, parameter<U>& q) { pu.push_back(q.grad); });
  lf.for_each_buffer("", [&](const std::string&, auto& b) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(b)>, tensor<F>>) bf.push_back(b);
  });
  lu.for_each_buffer("", [&](const std::string&, auto& b) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(b)>, tensor<U>>) bu.push_back(b);
  });
  BOOST_TEST(pf.size() == parameters);
  BOOST_TEST(bf.size() == buffers);
  for (std::size_t i = 0; i < pf.size() && i < pu.size(); ++i)
    BOOST_TEST_CONTEXT("parameter gradient " << i) { BOOST_TEST(close(pf[i], pu[i], 1e-4)); }
  for (std::size_t i = 0; i < bf.size() && i < bu.size(); ++i)
    BOOST_TEST_CONTEXT("running statistic " << i) { BOOST_TEST(close(bf[i], bu[i], 1e-6)); }
}

}  // namespace

// Dense layers and transitions take the folded path on the CPU backend and store their BN-ReLU outputs on a
// backend without the folded ops; both compute the same function, gradients and running statistics.
BOOST_AUTO_TEST_CASE(dense_layer_folded_and_unfolded_agree) {
  for (bool me : {false, true})
    BOOST_TEST_CONTEXT("memory_efficient " << me) {
      // 16 x 16 at batch 3 (192 tiles): the 3x3 runs through the direct kernel; 30 x 28 (420): through Winograd.
      for (index_t hw : {16, 30})
        BOOST_TEST_CONTEXT("map " << hw) {
          check_folded_agrees<layers::dense_layer>({.in_channels = 40, .growth = 16, .bn_size = 4, .memory_efficient = me},
                                                   shape{3, 40, hw, hw - 2 * (hw == 30)}, 6, 4);
        }
    }
}

BOOST_AUTO_TEST_CASE(dense_block_folded_and_unfolded_agree) {
  // Layers after the first copy their predecessor's BN1 statistics and read only their new channels.
  check_folded_agrees<layers::dense_block>({.num_layers = 3, .in_channels = 20, .growth = 16, .bn_size = 2},
                                           shape{2, 20, 12, 11}, 18, 12);
}

BOOST_AUTO_TEST_CASE(known_statistics_are_copied_and_the_rest_computed) {
  using B = cpu_backend;
  B::context ctx(2);
  rng r(23);
  tensor<B> buffer(shape{3, 30, 7, 9});
  fill_normal(buffer, r, 0.5, 2.0);
  const tensor<B> x = buffer.channels(0, 24);
  tensor<B> mean(shape{24}), invstd(shape{24}), rm(shape{24}), rv(shape{24});
  tensor<B> mean_k(shape{24}), invstd_k(shape{24}), rm_k(shape{24}), rv_k(shape{24});
  for (auto* t : {&rm, &rm_k}) B::fill(*t, 0.3f);
  for (auto* t : {&rv, &rv_k}) B::fill(*t, 2.0f);
  B::batch_norm_statistics(ctx, x, mean, invstd, &rm, &rv, 0.1, 1e-5);
  // The first 16 channels known (copied), the other 8 computed; a NaN in the copies' place would show.
  B::fill(mean_k, std::nanf(""));
  B::fill(invstd_k, std::nanf(""));
  for (index_t ch = 0; ch < 16; ++ch) {
    mean_k.data()[ch] = mean.data()[ch];
    invstd_k.data()[ch] = invstd.data()[ch];
  }
  B::batch_norm_statistics(ctx, x, mean_k, invstd_k, &rm_k, &rv_k, 0.1, 1e-5, 16);
  BOOST_TEST(bit_equal(mean, mean_k));
  BOOST_TEST(bit_equal(invstd, invstd_k));
  BOOST_TEST(bit_equal(rm, rm_k));
  for (index_t ch = 0; ch < 24; ++ch)
    BOOST_TEST_CONTEXT("channel " << ch) {
      if (ch >= 16) BOOST_TEST(rv.data()[ch] == rv_k.data()[ch]);  // computed: the same operations
      else BOOST_TEST(std::abs(rv.data()[ch] - rv_k.data()[ch]) <= 1e-6f * rv.data()[ch]);  // from the rounded invstd
    }
  test::expect_error<shape_error>([&] { B::batch_norm_statistics(ctx, x, mean_k, invstd_k, &rm_k, &rv_k, 0.1, 1e-5, 25); },
                                  "batch_norm_statistics: 25 known channels of an input with 24");
  // Through the layer: known statistics must come from the first channels of the same buffer.
  layers::batch_norm<B> small({.channels = 16, .relu = true}), big({.channels = 24, .relu = true});
  layers::batch_norm<B>::cache cs, cb, other;
  small.statistics_into(ctx, buffer.channels(0, 16), cs);
  big.statistics_into(ctx, x, cb, &cs);
  BOOST_TEST(bit_equal(cb.mean, mean));
  const tensor<B> elsewhere(shape{3, 16, 7, 9});
  B::copy(buffer.channels(0, 16), elsewhere);
  small.statistics_into(ctx, elsewhere, other);
  test::expect_error<shape_error>([&] { big.statistics_into(ctx, x, cb, &other); },
                                  "batch_norm::statistics_into: the known statistics (input (3,16,7,9)) are not of the first "
                                  "channels of this input (3,24,7,9)");
}

BOOST_AUTO_TEST_CASE(transition_folded_and_unfolded_agree) {
  check_folded_agrees<layers::transition>({.in_channels = 36, .out_channels = 18}, shape{2, 36, 10, 9}, 3, 2);
}

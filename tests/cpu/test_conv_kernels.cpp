// The CPU backend's convolution kernels against a direct double-precision sum: the stride-1 direct
// forward kernel (channel-blocked image, 6 x 16 register tiles), the implicit-GEMM input gradient, the
// per-tap filter gradient and the im2col paths for other strides. Channel counts that are not multiples of
// the 16-channel blocks, batches that span several chunks, tensors strided over the batch (views of a
// concatenation buffer) and the beta accumulate arguments are all exercised, in float and double. Max
// pooling's unrolled interior search is checked against the plain rule (first maximum, last NaN) too.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/rng.hpp"

using namespace mammocl;

namespace {

struct conv_case {
  index_t n, cin, cout, h, w, k, stride, pad;
};

// A tensor of shape (n, c, h, w) that is a channel view [1, 1 + c) of a buffer with c + 3 channels, so its
// items lie further apart than one item.
template <class B>
struct strided {
  tensor<B> buffer, view;
  strided(index_t n, index_t c, index_t h, index_t w) : buffer(shape{n, c + 3, h, w}) {
    B::fill(buffer, typename B::scalar_type(7));  // not zero: a kernel reading outside the view would show
    view = buffer.channels(1, c);
  }
};

template <class B>
void fill_normal(const tensor<B>& t, rng& r) {
  for (index_t i = 0; i < t.n(); ++i)
    for (index_t j = 0; j < t.item_size(); ++j) t.item(i)[j] = static_cast<typename B::scalar_type>(r.normal());
}

template <class B>
double at(const tensor<B>& t, index_t n, index_t c, index_t y, index_t x) {
  return static_cast<double>(t.item(n)[(c * t.h() + y) * t.w() + x]);
}

template <class B>
void check_case(const conv_case& c, bool strided_views, double tol) {
  using T = typename B::scalar_type;
  const conv_geometry g{c.k, c.k, c.stride, c.pad};
  const index_t ho = g.out_h(c.h), wo = g.out_w(c.w);
  typename B::context ctx(2);
  rng r(static_cast<std::uint64_t>(c.cin * 131 + c.cout * 7 + c.k + c.stride * 1000 + c.n));
  strided<B> xs(c.n, c.cin, c.h, c.w), ys(c.n, c.cout, ho, wo), dxs(c.n, c.cin, c.h, c.w);
  tensor<B> x = strided_views ? xs.view : tensor<B>(shape{c.n, c.cin, c.h, c.w});
  tensor<B> y = strided_views ? ys.view : tensor<B>(shape{c.n, c.cout, ho, wo});
  tensor<B> dx = strided_views ? dxs.view : tensor<B>(shape{c.n, c.cin, c.h, c.w});
  tensor<B> w(shape{c.cout, c.cin, c.k, c.k}), dw(w.dims()), dy(y.dims());
  fill_normal(x, r);
  fill_normal(w, r);
  fill_normal(dy, r);
  fill_normal(dx, r);
  fill_normal(dw, r);
  const tensor<B> dx0 = dx.clone(), dw0 = dw.clone();
  const T beta = T(0.5);

  B::conv2d_forward(ctx, x, w, nullptr, y, g);
  B::conv2d_backward_data(ctx, dy, w, dx, g, beta);
  B::conv2d_backward_filter(ctx, x, dy, dw, nullptr, g, beta);

  // Direct sums in double.
  std::vector<double> ry(static_cast<std::size_t>(c.n * c.cout * ho * wo), 0.0);
  std::vector<double> rdx(static_cast<std::size_t>(c.n * c.cin * c.h * c.w), 0.0);
  std::vector<double> rdw(static_cast<std::size_t>(c.cout * c.cin * c.k * c.k), 0.0);
  // Σ|terms| of every sum: the scale of its rounding error (a sum that cancels to a small value is still
  // only as exact as its terms are large).
  std::vector<double> ay(ry.size(), 0.0), adx(rdx.size(), 0.0), adw(rdw.size(), 0.0);
  for (index_t n = 0; n < c.n; ++n)
    for (index_t co = 0; co < c.cout; ++co)
      for (index_t oy = 0; oy < ho; ++oy)
        for (index_t ox = 0; ox < wo; ++ox) {
          const double d = at(dy, n, co, oy, ox);
          double s = 0, sa = 0;
          for (index_t ci = 0; ci < c.cin; ++ci)
            for (index_t ky = 0; ky < c.k; ++ky)
              for (index_t kx = 0; kx < c.k; ++kx) {
                const index_t iy = oy * c.stride - c.pad + ky, ix = ox * c.stride - c.pad + kx;
                if (iy < 0 || iy >= c.h || ix < 0 || ix >= c.w) continue;
                const double wv = at(w, co, ci, ky, kx);
                s += wv * at(x, n, ci, iy, ix);
                sa += std::abs(wv * at(x, n, ci, iy, ix));
                const auto ix_dx = static_cast<std::size_t>(((n * c.cin + ci) * c.h + iy) * c.w + ix);
                const auto ix_dw = static_cast<std::size_t>(((co * c.cin + ci) * c.k + ky) * c.k + kx);
                rdx[ix_dx] += wv * d;
                adx[ix_dx] += std::abs(wv * d);
                rdw[ix_dw] += at(x, n, ci, iy, ix) * d;
                adw[ix_dw] += std::abs(at(x, n, ci, iy, ix) * d);
              }
          ry[static_cast<std::size_t>(((n * c.cout + co) * ho + oy) * wo + ox)] = s;
          ay[static_cast<std::size_t>(((n * c.cout + co) * ho + oy) * wo + ox)] = sa;
        }
  // Relative to the result, plus a hundredth of that relative to Σ|terms| (the order of the sum's
  // rounding when it cancels; a missing or wrong term is of the order of one term and is still caught).
  const auto close = [&](double got, double want, double terms) {
    return std::abs(got - want) <= tol * (1.0 + std::abs(want)) + tol / 100 * terms;
  };
  int bad = 0;
  for (index_t n = 0; n < c.n; ++n) {
    for (index_t co = 0; co < c.cout; ++co)
      for (index_t p = 0; p < ho * wo; ++p) {
        const double want = ry[static_cast<std::size_t>((n * c.cout + co) * ho * wo + p)];
        const double got = at(y, n, co, p / wo, p % wo);
        if (!close(got, want, ay[static_cast<std::size_t>((n * c.cout + co) * ho * wo + p)]) && bad++ < 5)
          BOOST_ERROR("forward: image " << n << " channel " << co << " position " << p << ": " << got << " vs " << want);
      }
    for (index_t ci = 0; ci < c.cin; ++ci)
      for (index_t p = 0; p < c.h * c.w; ++p) {
        const double want = rdx[static_cast<std::size_t>((n * c.cin + ci) * c.h * c.w + p)] + 0.5 * at(dx0, n, ci, p / c.w, p % c.w);
        const double got = at(dx, n, ci, p / c.w, p % c.w);
        if (!close(got, want, adx[static_cast<std::size_t>((n * c.cin + ci) * c.h * c.w + p)]) && bad++ < 5)
          BOOST_ERROR("input gradient: image " << n << " channel " << ci << " position " << p << ": " << got << " vs " << want);
      }
  }
  for (index_t i = 0; i < dw.numel(); ++i) {
    const double want = rdw[static_cast<std::size_t>(i)] + 0.5 * static_cast<double>(dw0.data()[i]);
    const double got = static_cast<double>(dw.data()[i]);
    if (!close(got, want, adw[static_cast<std::size_t>(i)]) && bad++ < 5) BOOST_ERROR("filter gradient " << i << ": " << got << " vs " << want);
  }
  BOOST_TEST(bad == 0);
  if (strided_views) {  // the channels around the views are untouched
    for (const tensor<B>* buf : {&ys.buffer, &dxs.buffer})
      for (index_t n = 0; n < buf->n(); ++n) {
        const index_t plane = buf->h() * buf->w();
        for (index_t j = 0; j < plane; ++j) BOOST_TEST(buf->item(n)[j] == T(7));
        for (index_t j = (buf->c() - 2) * plane; j < buf->c() * plane; ++j) BOOST_TEST(buf->item(n)[j] == T(7));
      }
  }
}

const conv_case cases[] = {
    {2, 128, 32, 9, 11, 3, 1, 1},   // a dense layer's 3x3 (direct kernel): 8 input blocks, 2 output blocks
    {2, 128, 32, 27, 29, 3, 1, 1},  // the same through Winograd (420 tiles), odd sizes, several tile blocks
    {3, 20, 17, 23, 21, 3, 1, 1},   // Winograd with channel counts off the blocks (396 tiles)
    {2, 70, 12, 20, 19, 3, 1, 1},   // input gradient with 5 output blocks (block-outer order), several tile groups
    {3, 17, 5, 6, 7, 3, 1, 1},      // channel counts off the 16-channel blocks
    {1, 40, 33, 13, 5, 3, 1, 0},    // no padding; 3 output blocks, the last with one channel
    {2, 6, 9, 8, 8, 5, 1, 2},       // 5x5
    {2, 5, 7, 7, 6, 5, 1, 4},       // padding k-1: the input gradient's padding is 0
    {9, 8, 4, 3, 3, 3, 1, 1},       // tiny maps: several images per chunk
    {2, 3, 8, 15, 13, 7, 2, 3},     // conv0's 7x7 stride 2 (im2col path)
    {2, 4, 6, 9, 8, 3, 2, 1},       // 3x3 stride 2
    {1, 3, 4, 6, 6, 2, 2, 0},       // 2x2 stride 2, no padding
    {4, 40, 36, 12, 13, 1, 1, 0},   // 1x1: whole images per thread
};

}  // namespace

BOOST_AUTO_TEST_SUITE(conv_kernels)

BOOST_AUTO_TEST_CASE(float_kernels_match_direct_sums) {
  for (const conv_case& c : cases)
    for (bool s : {false, true})
      BOOST_TEST_CONTEXT("n " << c.n << " cin " << c.cin << " cout " << c.cout << " " << c.h << "x" << c.w << " k " << c.k
                              << " stride " << c.stride << " pad " << c.pad << (s ? " strided" : "")) {
        check_case<cpu_backend>(c, s, 2e-5);
      }
}

BOOST_AUTO_TEST_CASE(double_kernels_match_direct_sums) {
  for (const conv_case& c : cases)
    BOOST_TEST_CONTEXT("n " << c.n << " cin " << c.cin << " cout " << c.cout << " k " << c.k << " stride " << c.stride) {
      check_case<cpu_backend_f64>(c, true, 1e-12);
    }
}

BOOST_AUTO_TEST_CASE(results_do_not_depend_on_the_thread_count) {
  // Every output element is computed by one thread in a fixed order, so 1 and 2 threads agree exactly. The
  // second 3x3 case goes through Winograd (507 tiles; its filter gradient groups 3 channel blocks on one thread
  // and 1 per group on two). The 1x1 cases are large enough to be parallel: 4 images of 16 x 16 go whole to
  // the threads, 3 images and 40 x 40 maps are each split.
  const conv_case cases_t[] = {{3, 24, 20, 10, 9, 3, 1, 1},  {3, 40, 20, 26, 25, 3, 1, 1}, {4, 64, 64, 16, 16, 1, 1, 0},
                               {3, 64, 64, 16, 16, 1, 1, 0}, {2, 64, 64, 40, 40, 1, 1, 0}};
  for (const conv_case& c : cases_t) {
    const conv_geometry g{c.k, c.k, c.stride, c.pad};
    rng r(5);
    tensor<cpu_backend> x(shape{c.n, c.cin, c.h, c.w}), w(shape{c.cout, c.cin, c.k, c.k}),
        dy(shape{c.n, c.cout, g.out_h(c.h), g.out_w(c.w)});
    fill_normal(x, r);
    fill_normal(w, r);
    fill_normal(dy, r);
    std::vector<std::vector<float>> out;
    for (int threads : {1, 2}) {
      cpu_backend::context ctx(threads);
      tensor<cpu_backend> y(dy.dims()), dx(x.dims()), dw(w.dims());
      cpu_backend::conv2d_forward(ctx, x, w, nullptr, y, g);
      cpu_backend::conv2d_backward_data(ctx, dy, w, dx, g, 0.0f);
      cpu_backend::conv2d_backward_filter(ctx, x, dy, dw, nullptr, g, 0.0f);
      std::vector<float> all(y.data(), y.data() + y.numel());
      all.insert(all.end(), dx.data(), dx.data() + dx.numel());
      all.insert(all.end(), dw.data(), dw.data() + dw.numel());
      out.push_back(std::move(all));
    }
    BOOST_TEST_CONTEXT("n " << c.n << " k " << c.k) { BOOST_TEST(out[0] == out[1]); }
  }
}

BOOST_AUTO_TEST_CASE(max_pool_picks_the_first_maximum_or_the_last_nan) {
  // Values from {0, 1, 2} (many ties) and a few NaNs; the reference scans each window in row-major order.
  using B = cpu_backend;
  B::context ctx(2);
  rng r(11);
  const pool_geometry geoms[] = {{3, 2, 1}, {3, 1, 0}, {3, 2, 0}, {3, 1, 1}, {2, 2, 0}};
  for (const pool_geometry& g : geoms)
    for (index_t hw : {5, 8, 13, 150}) {  // 150: interior rows longer than one 64-output chunk
      const index_t n = 2, c = 3, ho = g.out(hw);
      tensor<B> x(shape{n, c, hw, hw}), y(shape{n, c, ho, ho}), dy(y.dims()), dx(x.dims());
      for (index_t i = 0; i < x.numel(); ++i)
        x.data()[i] = r.below(40) == 0 ? std::nanf("") : static_cast<float>(r.below(3));
      for (index_t i = 0; i < dy.numel(); ++i) dy.data()[i] = static_cast<float>(1 + r.below(1000));
      B::max_pool_forward(ctx, x, y, g);
      B::fill(dx, 0.5f);
      B::max_pool_backward(ctx, x, dy, dx, g, 1.0f);
      std::vector<double> ref_dx(static_cast<std::size_t>(x.numel()), 0.5);
      bool values_ok = true;
      for (index_t q = 0; q < n * c; ++q) {
        const float* src = x.data() + q * hw * hw;
        for (index_t oy = 0; oy < ho; ++oy)
          for (index_t ox = 0; ox < ho; ++ox) {
            index_t best = -1;
            for (index_t iy = oy * g.stride - g.pad; iy < oy * g.stride - g.pad + g.k; ++iy)
              for (index_t ix = ox * g.stride - g.pad; ix < ox * g.stride - g.pad + g.k; ++ix) {
                if (iy < 0 || iy >= hw || ix < 0 || ix >= hw) continue;
                const float v = src[iy * hw + ix];
                if (best < 0 || std::isnan(v) || (!std::isnan(src[best]) && v > src[best])) best = iy * hw + ix;
              }
            const float got = y.data()[q * ho * ho + oy * ho + ox], want = src[best];
            values_ok = values_ok && (std::isnan(want) ? std::isnan(got) : got == want);
            ref_dx[static_cast<std::size_t>(q * hw * hw + best)] += dy.data()[q * ho * ho + oy * ho + ox];
          }
      }
      index_t dx_wrong = 0;
      for (index_t i = 0; i < x.numel(); ++i) dx_wrong += dx.data()[i] != static_cast<float>(ref_dx[static_cast<std::size_t>(i)]);
      BOOST_TEST_CONTEXT("k " << g.k << " stride " << g.stride << " pad " << g.pad << " size " << hw) {
        BOOST_TEST(values_ok);
        BOOST_TEST(dx_wrong == 0);
      }
    }
}

BOOST_AUTO_TEST_CASE(avg_pool_2x2_matches_the_window_sums) {
  // DenseNet's transition pooling (2x2, stride 2, no padding) has its own loop; odd sizes leave a last row and
  // column that no window covers (floor mode): their gradient is 0, or beta·dx.
  using B = cpu_backend;
  B::context ctx(2);
  rng r(12);
  const pool_geometry g{2, 2, 0};
  for (index_t hw : {7, 8, 57})
    for (float beta : {0.0f, 1.0f}) {
      const index_t n = 2, c = 3, ho = g.out(hw);
      tensor<B> x(shape{n, c, hw, hw}), y(shape{n, c, ho, ho}), dy(y.dims()), dx(x.dims());
      fill_normal(x, r);
      fill_normal(dy, r);
      B::fill(dx, 0.5f);
      B::avg_pool_forward(ctx, x, y, g);
      B::avg_pool_backward(ctx, dy, dx, g, beta);
      index_t y_wrong = 0, dx_wrong = 0;
      for (index_t q = 0; q < n * c; ++q) {
        const float* src = x.data() + q * hw * hw;
        for (index_t oy = 0; oy < ho; ++oy)
          for (index_t ox = 0; ox < ho; ++ox) {
            const float* t = src + 2 * oy * hw + 2 * ox;
            y_wrong += y.data()[q * ho * ho + oy * ho + ox] != (((t[0] + t[1]) + t[hw]) + t[hw + 1]) * 0.25f;
          }
        for (index_t iy = 0; iy < hw; ++iy)
          for (index_t ix = 0; ix < hw; ++ix) {
            const bool covered = iy < 2 * ho && ix < 2 * ho;
            const float from_dy = covered ? dy.data()[q * ho * ho + (iy / 2) * ho + ix / 2] * 0.25f : 0.0f;
            dx_wrong += dx.data()[q * hw * hw + iy * hw + ix] != from_dy + beta * 0.5f;
          }
      }
      BOOST_TEST_CONTEXT("size " << hw << " beta " << beta) {
        BOOST_TEST(y_wrong == 0);
        BOOST_TEST(dx_wrong == 0);
      }
    }
}

BOOST_AUTO_TEST_SUITE_END()

// Finite-difference gradient checks of every layer (double precision), in both the overwrite and the
// accumulate gradient modes, plus forward values that can be checked by hand.
#include <boost/test/unit_test.hpp>

#include "test_helpers.hpp"

#include "mammocl/mammocl.hpp"
#include "mammocl/testing/gradient_check.hpp"

using namespace mammocl;
using B = cpu_backend_f64;

BOOST_AUTO_TEST_SUITE(gradients)

BOOST_AUTO_TEST_CASE(conv2d_kernels_strides_paddings) {
  struct cfg { index_t cin, cout, k, s, p; bool bias; index_t h, w; };
  for (cfg c : {cfg{3, 4, 3, 1, 1, false, 6, 5}, cfg{3, 4, 3, 2, 1, true, 7, 6}, cfg{2, 3, 1, 1, 0, false, 4, 4},
                cfg{2, 3, 1, 2, 0, true, 5, 5}, cfg{2, 2, 7, 2, 3, false, 9, 8}, cfg{2, 3, 2, 2, 0, false, 5, 4}}) {
    layers::conv2d<B> l({.in_channels = c.cin, .out_channels = c.cout, .kernel = c.k, .stride = c.s, .padding = c.p, .bias = c.bias});
    rng r(7);
    l.init(r);
    BOOST_TEST_CONTEXT("conv " << c.k << "x" << c.k << " stride " << c.s << " pad " << c.p) {
      mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{3, c.cin, c.h, c.w}));
    }
  }
}

BOOST_AUTO_TEST_CASE(conv2d_batched_im2col_path) {
  // Small maps make the backend group several images into one GEMM; check that path too.
  layers::conv2d<B> l({.in_channels = 2, .out_channels = 3, .kernel = 3, .padding = 1});
  rng r(3);
  l.init(r);
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{5, 2, 3, 3}));
}

BOOST_AUTO_TEST_CASE(batch_norm_plain_and_fused_relu) {
  for (bool relu : {false, true}) {
    layers::batch_norm<B> l({.channels = 3, .relu = relu});
    // Non-trivial affine parameters so that γ and β matter.
    for (int i = 0; i < 3; ++i) {
      l.gamma().value.at(i) = 0.5 + 0.3 * i;
      l.beta().value.at(i) = 0.2 - 0.1 * i;
    }
    BOOST_TEST_CONTEXT("relu " << relu) { mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{4, 3, 3, 2})); }
  }
}

BOOST_AUTO_TEST_CASE(batch_norm_on_features) {
  layers::batch_norm<B> l({.channels = 4});
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{5, 4}));
}

BOOST_AUTO_TEST_CASE(relu_layer) {
  layers::relu<B> l;
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{2, 3, 4, 4}));
}

BOOST_AUTO_TEST_CASE(max_pool_layer) {
  for (auto o : {layers::max_pool<B>::options{3, 2, 1}, layers::max_pool<B>::options{2, 2, 0},
                 layers::max_pool<B>::options{3, 1, 1}}) {
    layers::max_pool<B> l(o);
    mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{2, 2, 7, 6}));
  }
}

BOOST_AUTO_TEST_CASE(avg_pool_layer) {
  for (auto o : {layers::avg_pool<B>::options{2, 2, 0}, layers::avg_pool<B>::options{3, 2, 1}}) {
    layers::avg_pool<B> l(o);
    mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{2, 2, 7, 6}));
  }
}

BOOST_AUTO_TEST_CASE(global_avg_pool_layer) {
  for (bool relu : {false, true}) {
    layers::global_avg_pool<B> l({.relu = relu});
    mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{3, 4, 3, 5}));
  }
}

BOOST_AUTO_TEST_CASE(linear_layer) {
  for (bool bias : {true, false}) {
    layers::linear<B> l({.in_features = 6, .out_features = 4, .bias = bias});
    rng r(5);
    l.init(r);
    mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{3, 6}));
  }
}

BOOST_AUTO_TEST_CASE(dense_layer_both_modes) {
  for (bool me : {false, true}) {
    layers::dense_layer<B> l({.in_channels = 5, .growth = 3, .bn_size = 2, .memory_efficient = me});
    rng r(11);
    l.init(r);
    BOOST_TEST_CONTEXT("memory_efficient " << me) { mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{3, 5, 4, 4})); }
  }
}

BOOST_AUTO_TEST_CASE(dense_block_both_modes) {
  for (bool me : {false, true}) {
    layers::dense_block<B> l({.num_layers = 3, .in_channels = 4, .growth = 2, .bn_size = 2, .memory_efficient = me});
    rng r(13);
    l.init(r);
    BOOST_TEST_CONTEXT("memory_efficient " << me) {
      mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{2, 4, 3, 3}, {.max_checks_per_tensor = 40}));
    }
  }
}

BOOST_AUTO_TEST_CASE(transition_layer) {
  layers::transition<B> l({.in_channels = 6, .out_channels = 3});
  rng r(17);
  l.init(r);
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{2, 6, 5, 4}));
}

BOOST_AUTO_TEST_CASE(sequential_of_layers) {
  using seq = layers::sequential<layers::conv2d<B>, layers::batch_norm<B>, layers::max_pool<B>, layers::global_avg_pool<B>,
                                 layers::linear<B>>;
  seq s(layers::conv2d<B>({.in_channels = 2, .out_channels = 4, .kernel = 3, .padding = 1}),
        layers::batch_norm<B>({.channels = 4, .relu = true}), layers::max_pool<B>({3, 2, 1}), layers::global_avg_pool<B>(),
        layers::linear<B>({.in_features = 4, .out_features = 3}));
  rng r(19);
  s.get<0>().init(r);
  s.get<4>().init(r);
  mammocl::test::expect_gradients_ok(testing::check_gradients(s, shape{3, 2, 6, 6}));
  std::vector<std::string> names;
  s.for_each_parameter("m.", [&](const std::string& n, parameter<B>&) { names.push_back(n); });
  BOOST_TEST(names == (std::vector<std::string>{"m.0.weight", "m.1.weight", "m.1.bias", "m.4.weight", "m.4.bias"}),
             boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(check_fails_on_a_wrong_gradient) {
  // The checker itself must be able to fail: a layer whose backward is off by a factor must be caught,
  // and so must a layer whose gradients are all zero.
  struct wrong_relu : layers::relu<B> {
    tensor<B> backward(B::context& ctx, const cache& c, const tensor<B>& dy, grad_mode m) const {
      tensor<B> dx = layers::relu<B>::backward(ctx, c, dy, m);
      B::scale(ctx, dx, 1.01);
      return dx;
    }
  };
  wrong_relu w;
  BOOST_TEST(!testing::check_gradients(w, shape{2, 3, 2, 2}).ok);
  struct zero_relu : layers::relu<B> {
    tensor<B> forward(B::context&, const tensor<B>& x, cache& c) const {
      c.y = tensor<B>::zeros(x.dims());
      return c.y;
    }
  };
  zero_relu z;
  const auto res = testing::check_gradients(z, shape{2, 3, 2, 2});
  BOOST_TEST(!res.ok);
  BOOST_TEST(res.report.find("both gradients are zero") != std::string::npos);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(values)

BOOST_AUTO_TEST_CASE(batch_norm_statistics_follow_pytorch) {
  // x per channel: channel 0 = {1,2,3,4}, channel 1 = {0,0,2,2} over N=2, H*W=2.
  using F = cpu_backend;
  F::context ctx(1);
  layers::batch_norm<F> bn({.channels = 2});
  tensor<F> x(shape{2, 2, 1, 2});
  const float v[] = {1, 2, 0, 0, 3, 4, 2, 2};
  F::from_host(v, x);
  layers::batch_norm<F>::cache c;
  tensor<F> y = bn.forward(ctx, x, c);
  // mean 2.5, biased var 1.25, unbiased 5/3; running = 0.9*init + 0.1*batch.
  BOOST_TEST(bn.running_mean().at(0) == 0.25f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(bn.running_var().at(0) == 0.9f + 0.1f * 5.0f / 3.0f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(bn.running_mean().at(1) == 0.1f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(bn.running_var().at(1) == 0.9f + 0.1f * 4.0f / 3.0f, boost::test_tools::tolerance(1e-6f));
  BOOST_TEST(bn.num_batches_tracked() == 1);
  BOOST_TEST(y.at(0, 0, 0, 0) == static_cast<float>((1 - 2.5) / std::sqrt(1.25 + 1e-5)), boost::test_tools::tolerance(1e-5f));
  // Eval mode uses the running statistics.
  tensor<F> ye = bn.infer(ctx, x);
  BOOST_TEST(ye.at(1, 0, 0, 1) == static_cast<float>((4 - 0.25) / std::sqrt(0.9 + 0.1 * 5.0 / 3.0 + 1e-5)),
             boost::test_tools::tolerance(1e-5f));
}

BOOST_AUTO_TEST_CASE(batch_norm_statistics_are_accurate_far_from_zero) {
  // One pass over x, shifted by an estimate of the mean taken from the first plane: check mean and
  // 1/sqrt(var + eps) against double-precision two-pass statistics where a naive Σx² − (Σx)²/M in float
  // would be useless: channel 0 is 1000 + 0.01·N(0,1); in channel 1 the first image sits 3σ above the others.
  using F = cpu_backend;
  F::context ctx(2);
  const index_t n = 4, c = 2, hw = 300;
  tensor<F> x(shape{n, c, 15, 20}), y(x.dims()), gamma(shape{c}), beta(shape{c}), mean(shape{c}), invstd(shape{c});
  rng r(7);
  for (index_t i = 0; i < n; ++i)
    for (index_t j = 0; j < hw; ++j) {
      x.item(i)[j] = static_cast<float>(1000.0 + 0.01 * r.normal());
      x.item(i)[hw + j] = static_cast<float>((i == 0 ? 3.0 : 0.0) + r.normal());
    }
  for (index_t ch = 0; ch < c; ++ch) {
    gamma.data()[ch] = 1;
    beta.data()[ch] = 0;
  }
  F::batch_norm_forward_train(ctx, x, gamma, beta, y, mean, invstd, nullptr, nullptr, 0.1, 1e-5, false);
  for (index_t ch = 0; ch < c; ++ch) {
    double s = 0, ss = 0;
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < hw; ++j) s += x.item(i)[ch * hw + j];
    const double mu = s / static_cast<double>(n * hw);
    for (index_t i = 0; i < n; ++i)
      for (index_t j = 0; j < hw; ++j) ss += (x.item(i)[ch * hw + j] - mu) * (x.item(i)[ch * hw + j] - mu);
    const double inv = 1.0 / std::sqrt(ss / static_cast<double>(n * hw) + 1e-5);
    BOOST_TEST_CONTEXT("channel " << ch) {
      BOOST_TEST(mean.data()[ch] == mu, boost::test_tools::tolerance(1e-7));
      BOOST_TEST(invstd.data()[ch] == inv, boost::test_tools::tolerance(1e-5));
    }
  }
}

BOOST_AUTO_TEST_CASE(pooling_matches_pytorch_conventions) {
  using F = cpu_backend;
  F::context ctx(1);
  tensor<F> x(shape{1, 1, 3, 3});
  const float v[] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  F::from_host(v, x);
  // MaxPool2d(3, 2, 1) on 3x3 → 2x2: windows clipped by the padding.
  tensor<F> m = layers::max_pool<F>({3, 2, 1}).infer(ctx, x);
  BOOST_TEST(m.dims() == (shape{1, 1, 2, 2}));
  BOOST_TEST(m.at(0, 0, 0, 0) == 5.0f);
  BOOST_TEST(m.at(0, 0, 1, 1) == 9.0f);
  // AvgPool2d(3, 2, 1), count_include_pad=True: the padded zeros count in the divisor 9.
  tensor<F> a = layers::avg_pool<F>({3, 2, 1}).infer(ctx, x);
  BOOST_TEST(a.at(0, 0, 0, 0) == (1 + 2 + 4 + 5) / 9.0f, boost::test_tools::tolerance(1e-6f));
  // AvgPool2d(2, 2) floors: 3x3 → 1x1.
  tensor<F> a2 = layers::avg_pool<F>({2, 2, 0}).infer(ctx, x);
  BOOST_TEST(a2.dims() == (shape{1, 1, 1, 1}));
  BOOST_TEST(a2.at(0, 0, 0, 0) == 3.0f);
}

BOOST_AUTO_TEST_CASE(conv_matches_a_direct_sum) {
  using F = cpu_backend_f64;
  F::context ctx(2);
  layers::conv2d<F> l({.in_channels = 2, .out_channels = 3, .kernel = 3, .stride = 2, .padding = 1, .bias = true});
  rng r(1);
  l.init(r);
  for (int i = 0; i < 3; ++i) l.bias().value.at(i) = 0.1 * i;
  tensor<F> x(shape{2, 2, 5, 6});
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = r.normal();
  tensor<F> y = l.infer(ctx, x);
  for (index_t n = 0; n < 2; ++n)
    for (index_t co = 0; co < 3; ++co)
      for (index_t oy = 0; oy < y.h(); ++oy)
        for (index_t ox = 0; ox < y.w(); ++ox) {
          double s = l.bias().value.at(co);
          for (index_t ci = 0; ci < 2; ++ci)
            for (index_t ky = 0; ky < 3; ++ky)
              for (index_t kx = 0; kx < 3; ++kx) {
                const index_t iy = oy * 2 - 1 + ky, ix = ox * 2 - 1 + kx;
                if (iy >= 0 && iy < 5 && ix >= 0 && ix < 6) s += l.weight().value.at(co, ci, ky, kx) * x.at(n, ci, iy, ix);
              }
          BOOST_TEST(y.at(n, co, oy, ox) == s, boost::test_tools::tolerance(1e-12));
        }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

BOOST_AUTO_TEST_CASE(wrong_channel_count_names_layer_and_shapes) {
  cpu_backend::context ctx(1);
  layers::conv2d<cpu_backend> l({.in_channels = 3, .out_channels = 4});
  tensor<cpu_backend> x = tensor<cpu_backend>::zeros(shape{1, 2, 8, 8});
  try {
    (void)l.infer(ctx, x);
    BOOST_FAIL("no exception");
  } catch (const shape_error& e) {
    BOOST_TEST(e.message() == "conv2d: input has 2 channels, expected 3 (input shape (1,2,8,8))");
  }
  layers::linear<cpu_backend> lin({.in_features = 5, .out_features = 2});
  BOOST_CHECK_THROW((void)lin.infer(ctx, tensor<cpu_backend>::zeros(shape{2, 4})), shape_error);
  layers::batch_norm<cpu_backend> bn({.channels = 3});
  layers::batch_norm<cpu_backend>::cache c;
  BOOST_CHECK_THROW((void)bn.forward(ctx, tensor<cpu_backend>::zeros(shape{1, 3, 1, 1}), c), shape_error);
}

BOOST_AUTO_TEST_CASE(impossible_options_are_config_errors) {
  BOOST_CHECK_THROW(layers::conv2d<cpu_backend>({.in_channels = 0, .out_channels = 4}), config_error);
  BOOST_CHECK_THROW(layers::max_pool<cpu_backend>({2, 0, 0}), config_error);
  BOOST_CHECK_THROW(layers::batch_norm<cpu_backend>({.channels = 3, .momentum = 2.0}), config_error);
  cpu_backend::context ctx(1);
  layers::conv2d<cpu_backend> l({.in_channels = 1, .out_channels = 1, .kernel = 7});
  BOOST_CHECK_THROW((void)l.infer(ctx, tensor<cpu_backend>::zeros(shape{1, 1, 4, 4})), shape_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(concatenation)

BOOST_AUTO_TEST_CASE(concat_and_split_channels_round_trip) {
  using F = cpu_backend;
  F::context ctx(2);
  tensor<F> a(shape{2, 2, 3, 3}), b(shape{2, 3, 3, 3});
  for (index_t i = 0; i < a.numel(); ++i) a.data()[i] = static_cast<float>(i);
  for (index_t i = 0; i < b.numel(); ++i) b.data()[i] = static_cast<float>(1000 + i);
  tensor<F> out(shape{2, 5, 3, 3});
  const tensor<F> parts[] = {a, b};
  F::concat_channels(ctx, parts, out);
  // torch.cat([a, b], 1): image 1, channel 2 is b's image 1, channel 0.
  BOOST_TEST(out.at(1, 2, 1, 2) == b.at(1, 0, 1, 2));
  BOOST_TEST(out.at(0, 1, 2, 0) == a.at(0, 1, 2, 0));
  // Backward with beta 1 adds the channel ranges of dy to what the gradients already hold.
  tensor<F> da = tensor<F>::full(a.dims(), 1.0f), db = tensor<F>::zeros(b.dims());
  const tensor<F> grads[] = {da, db};
  F::split_channels(ctx, out, grads, 1.0f);
  BOOST_TEST(da.at(1, 1, 2, 2) == a.at(1, 1, 2, 2) + 1.0f);
  BOOST_TEST(db.at(0, 2, 0, 1) == b.at(0, 2, 0, 1));
  tensor<F> wrong(shape{2, 4, 3, 3});
  try {
    F::concat_channels(ctx, parts, wrong);
    BOOST_FAIL("no exception");
  } catch (const shape_error& e) {
    BOOST_TEST(e.message() == "concat_channels: the inputs hold more channels than the output (2,4,3,3)");
  }
}

BOOST_AUTO_TEST_SUITE_END()

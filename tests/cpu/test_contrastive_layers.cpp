// The contrastive-learning layers: mlp_projector, l2_normalize and gradient_reversal (METHOD.md §3.3,
// §4.3(a)): finite-difference gradient checks in both gradient modes, parameter counts and names, and
// forward values that can be checked by hand.
#include <boost/test/unit_test.hpp>

#include "test_helpers.hpp"

#include <cmath>
#include <string>
#include <vector>

#include "mammocl/layers/gradient_reversal.hpp"
#include "mammocl/layers/l2_normalize.hpp"
#include "mammocl/layers/mlp_projector.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/testing/gradient_check.hpp"

using namespace mammocl;
using B = cpu_backend_f64;

namespace {
template <class L>
index_t count_parameters(L& l) {
  index_t n = 0;
  l.for_each_parameter("", [&](const std::string&, parameter<B>& p) { n += p.value.numel(); });
  return n;
}
template <class L>
std::vector<std::string> parameter_names(L& l) {
  std::vector<std::string> names;
  l.for_each_parameter("", [&](const std::string& s, parameter<B>&) { names.push_back(s); });
  return names;
}
tensor<B> make(const shape& s, const std::vector<double>& v) {
  tensor<B> t(s);
  for (std::size_t i = 0; i < v.size(); ++i) t.data()[i] = v[i];
  return t;
}
}  // namespace

BOOST_AUTO_TEST_SUITE(mlp_projector_layer)

BOOST_AUTO_TEST_CASE(reference_parameter_count_and_names) {
  layers::mlp_projector<B> p({});  // 1024 → 1024 → 128, the DenseNet-121 head
  BOOST_TEST(count_parameters(p) == 1180800);
  BOOST_TEST(p.opts().hidden == 1024);
  const std::vector<std::string> want{"0.weight", "0.bias", "2.weight", "2.bias"};
  BOOST_TEST(parameter_names(p) == want, boost::test_tools::per_element());
  index_t buffers = 0;
  p.for_each_buffer("", [&](const std::string&, auto&) { ++buffers; });
  BOOST_TEST(buffers == 0);
}

BOOST_AUTO_TEST_CASE(hidden_zero_means_in_features_and_bn_names) {
  layers::mlp_projector<B> p({.in_features = 6, .hidden = 0, .out_features = 3, .batch_norm = true});
  BOOST_TEST(p.opts().hidden == 6);
  BOOST_TEST(count_parameters(p) == 6 * 6 + 6 + 6 + 6 + 3 * 6 + 3);
  const std::vector<std::string> want{"0.weight", "0.bias", "1.weight", "1.bias", "3.weight", "3.bias"};
  BOOST_TEST(parameter_names(p) == want, boost::test_tools::per_element());
  std::vector<std::string> buffers;
  p.for_each_buffer("head.", [&](const std::string& s, auto&) { buffers.push_back(s); });
  const std::vector<std::string> want_buf{"head.1.running_mean", "head.1.running_var", "head.1.num_batches_tracked"};
  BOOST_TEST(buffers == want_buf, boost::test_tools::per_element());
  BOOST_CHECK_THROW(layers::mlp_projector<B>({.in_features = 0}), config_error);
}

BOOST_AUTO_TEST_CASE(exact_forward_values) {
  // W1 = [[1,-1],[2,0],[0,1]], b1 = [0.5,-3,0]; W2 = [[1,1,1],[-1,0,2]], b2 = [0.25,-0.5].
  layers::mlp_projector<B> p({.in_features = 2, .hidden = 3, .out_features = 2});
  const std::vector<double> w1{1, -1, 2, 0, 0, 1}, b1{0.5, -3, 0}, w2{1, 1, 1, -1, 0, 2}, b2{0.25, -0.5};
  for (int i = 0; i < 6; ++i) p.fc1().weight().value.data()[i] = w1[i], p.fc2().weight().value.data()[i] = w2[i];
  for (int i = 0; i < 3; ++i) p.fc1().bias().value.data()[i] = b1[i];
  for (int i = 0; i < 2; ++i) p.fc2().bias().value.data()[i] = b2[i];
  B::context ctx(1);
  tensor<B> x = make(shape{2, 2}, {1, 2, 3, -1});
  // row 0: h = [1-2+0.5, 2-3, 2] = [-0.5,-1,2] → relu [0,0,2] → z = [2.25, 3.5]
  // row 1: h = [3+1+0.5, 6-3, -1] = [4.5,3,-1] → relu [4.5,3,0] → z = [7.75, -5]
  decltype(p)::cache c;
  tensor<B> y = p.forward(ctx, x, c);
  tensor<B> yi = p.infer(ctx, x);
  const std::vector<double> want{2.25, 3.5, 7.75, -5};
  for (int i = 0; i < 4; ++i) {
    BOOST_TEST(y.data()[i] == want[i]);
    BOOST_TEST(yi.data()[i] == want[i]);
  }
}

BOOST_AUTO_TEST_CASE(gradients_plain_and_bn) {
  for (bool bn : {false, true}) {
    layers::mlp_projector<B> p({.in_features = 5, .hidden = 7, .out_features = 4, .batch_norm = bn});
    rng r(11);
    p.init(r);
    // Non-zero biases so that they matter.
    for (index_t i = 0; i < 7; ++i) p.fc1().bias().value.at(i) = 0.1 * static_cast<double>(i) - 0.3;
    for (index_t i = 0; i < 4; ++i) p.fc2().bias().value.at(i) = 0.05 * static_cast<double>(i);
    BOOST_TEST_CONTEXT("batch_norm " << bn) { mammocl::test::expect_gradients_ok(testing::check_gradients(p, shape{6, 5})); }
  }
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(l2_normalize_layer)

BOOST_AUTO_TEST_CASE(exact_forward_values_and_clamp) {
  layers::l2_normalize<B> l;
  B::context ctx(1);
  tensor<B> x = make(shape{3, 2}, {3, 4, 0, 0, -1e-13, 0});
  tensor<B> y = l.infer(ctx, x);
  BOOST_TEST(y.at(0, 0) == 0.6);
  BOOST_TEST(y.at(0, 1) == 0.8);
  BOOST_TEST(y.at(1, 0) == 0.0);
  BOOST_TEST(y.at(1, 1) == 0.0);
  BOOST_TEST(y.at(2, 0) == -1e-13 / 1e-12, boost::test_tools::tolerance(1e-15));
  // The clamp branch: dx = dy / eps.
  decltype(l)::cache c;
  (void)l.forward(ctx, x, c);
  tensor<B> dy = make(shape{3, 2}, {1, 0, 2e-12, -3e-12, 1e-12, 1e-12});
  tensor<B> dx = l.backward(ctx, c, dy, grad_mode::overwrite);
  // row 0: (dy − y(y·dy))/5 = ([1,0] − [0.6,0.8]·0.6)/5 = [0.128, −0.096]
  BOOST_TEST(dx.at(0, 0) == 0.128, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(dx.at(0, 1) == -0.096, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(dx.at(1, 0) == 2.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(dx.at(1, 1) == -3.0, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(dx.at(2, 0) == 1.0, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(gradients_rows_and_nchw) {
  layers::l2_normalize<B> l;
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{5, 8}));
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{3, 2, 2, 2}));
  // The clamp branch, with a large eps that every row falls under: dx = dy/eps is then exact.
  layers::l2_normalize<B> big({.eps = 100.0});
  mammocl::test::expect_gradients_ok(testing::check_gradients(big, shape{4, 3}));
  BOOST_CHECK_THROW(layers::l2_normalize<B>({.eps = 0.0}), config_error);
}

BOOST_AUTO_TEST_CASE(accumulate_mode_gives_the_same_dx) {
  // No parameters: the gradient mode only concerns parameter gradients, dx is the same in both modes.
  layers::l2_normalize<B> l;
  B::context ctx(1);
  rng g(8);
  tensor<B> x(shape{4, 6}), dy(shape{4, 6});
  for (index_t i = 0; i < 24; ++i) x.data()[i] = g.normal(), dy.data()[i] = g.normal();
  decltype(l)::cache c;
  (void)l.forward(ctx, x, c);
  tensor<B> a = l.backward(ctx, c, dy, grad_mode::overwrite), b = l.backward(ctx, c, dy, grad_mode::accumulate);
  for (index_t i = 0; i < 24; ++i) BOOST_TEST(a.data()[i] == b.data()[i]);
  tensor<B> wrong(shape{4, 5});
  BOOST_CHECK_THROW((void)l.backward(ctx, c, wrong, grad_mode::overwrite), shape_error);
  BOOST_CHECK_THROW((void)l.infer(ctx, tensor<B>(shape{4})), shape_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(gradient_reversal_layer)

BOOST_AUTO_TEST_CASE(identity_forward_negated_backward) {
  layers::gradient_reversal<B> l({.lambda = 0.5});
  B::context ctx(1);
  tensor<B> x = make(shape{2, 3}, {1, -2, 3, 0.5, 0, -7});
  decltype(l)::cache c;
  tensor<B> y = l.forward(ctx, x, c);
  for (int i = 0; i < 6; ++i) BOOST_TEST(y.data()[i] == x.data()[i]);
  tensor<B> dy = make(shape{2, 3}, {2, 4, -6, 1, 0, 8});
  tensor<B> dx = l.backward(ctx, c, dy, grad_mode::overwrite);
  for (int i = 0; i < 6; ++i) BOOST_TEST(dx.data()[i] == -0.5 * dy.data()[i]);
  l.set_lambda(layers::dann_lambda(0.25));
  BOOST_TEST(l.lambda() == layers::dann_lambda(0.25));
  BOOST_CHECK_THROW(l.set_lambda(std::nan("")), config_error);
}

BOOST_AUTO_TEST_CASE(gradients_both_modes) {
  // check_gradients compares dx with the derivative of f(x) = Σ dy ⊙ R(x), which is dy (R is the identity
  // forward). The layer returns −λ·dy on purpose, so λ = −1 must pass the check as it stands and λ = 0.7
  // must match −0.7 times the finite differences.
  layers::gradient_reversal<B> l({.lambda = -1.0});
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{3, 4}));
  mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{2, 2, 3, 3}));

  layers::gradient_reversal<B> r({.lambda = 0.7});
  B::context ctx(1);
  rng g(4);
  tensor<B> x(shape{3, 5}), dy(shape{3, 5});
  for (index_t i = 0; i < 15; ++i) x.data()[i] = g.normal(), dy.data()[i] = g.normal();
  decltype(r)::cache c;
  (void)r.forward(ctx, x, c);
  for (grad_mode m : {grad_mode::overwrite, grad_mode::accumulate}) {
    tensor<B> dx = r.backward(ctx, c, dy, m);
    tensor<B> true_grad = dx.clone();
    B::scale(ctx, true_grad, -1.0 / 0.7);  // undo the reversal: the derivative of Σ dy ⊙ x
    auto f = [&]() {
      decltype(r)::cache cc;
      return B::dot(ctx, r.forward(ctx, x, cc).clone(), dy);
    };
    mammocl::test::expect_gradients_ok(testing::check_function(f, {{"input", x, true_grad}}));
  }
  tensor<B> wrong(shape{3, 4});
  BOOST_CHECK_THROW((void)r.backward(ctx, c, wrong, grad_mode::overwrite), shape_error);
}

BOOST_AUTO_TEST_CASE(dann_schedule) {
  BOOST_TEST(layers::dann_lambda(0.0) == 0.0);
  BOOST_TEST(layers::dann_lambda(1.0) == 2.0 / (1.0 + std::exp(-10.0)) - 1.0);
  BOOST_TEST(layers::dann_lambda(0.5) == 0.9866142981514305, boost::test_tools::tolerance(1e-15));
  BOOST_TEST(layers::dann_lambda(0.1, 5.0) == 2.0 / (1.0 + std::exp(-0.5)) - 1.0);
  BOOST_CHECK_THROW((void)layers::dann_lambda(1.5), config_error);
  BOOST_CHECK_THROW((void)layers::dann_lambda(-0.1), config_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(compositions)

BOOST_AUTO_TEST_CASE(supcon_head_projector_then_l2_normalize) {
  // z = L2normalize(projector(feat)), the SupCon head of METHOD.md §3.3, as one sequential.
  layers::sequential<layers::mlp_projector<B>, layers::l2_normalize<B>> s(
      layers::mlp_projector<B>({.in_features = 6, .hidden = 0, .out_features = 4}), layers::l2_normalize<B>{});
  rng r2(17);
  s.get<0>().init(r2);
  mammocl::test::expect_gradients_ok(testing::check_gradients(s, shape{5, 6}));
  B::context ctx(1);
  tensor<B> x(shape{3, 6});
  for (index_t i = 0; i < 18; ++i) x.data()[i] = r2.normal();
  tensor<B> z = s.infer(ctx, x);
  for (index_t i = 0; i < 3; ++i) {
    double n2 = 0;
    for (index_t k = 0; k < 4; ++k) n2 += z.at(i, k) * z.at(i, k);
    BOOST_TEST(n2 == 1.0, boost::test_tools::tolerance(1e-14));
  }
}

BOOST_AUTO_TEST_SUITE_END()

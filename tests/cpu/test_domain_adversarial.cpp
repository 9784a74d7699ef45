// The DANN domain branch (METHOD.md §4.3(a), §7 item 12): binary_cross_entropy_with_logits against torch
// goldens, and domain_adversarial's classifier gradients, reversal sign/scale, gradient modes and input
// errors.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "mammocl/losses/domain_adversarial.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/testing/gradient_check.hpp"

using namespace mammocl;
using B = cpu_backend_f64;

namespace {
tensor<B> make(const shape& s, const std::vector<double>& v) {
  tensor<B> t(s);
  for (std::size_t i = 0; i < v.size(); ++i) t.data()[i] = v[i];
  return t;
}
tensor<B> random_tensor(const shape& s, std::uint64_t seed) {
  rng r(seed);
  tensor<B> t(s);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = r.normal();
  return t;
}
using dann_t = losses::domain_adversarial<B>;
dann_t small_dann(double lambda) {
  dann_t d({.in_features = 5, .hidden = {6, 4}, .lambda = lambda});
  rng r(7);
  d.init(r);
  // Non-zero biases, so that their gradients are tested at a generic point.
  rng rb(11);
  d.for_each_parameter("", [&](const std::string& name, parameter<B>& p) {
    if (name.ends_with("bias"))
      for (index_t i = 0; i < p.value.numel(); ++i) p.value.data()[i] = 0.1 * rb.normal();
  });
  return d;
}
const std::vector<int> mixed_domains{0, 1, 1, 0, 0, 1, 0};
}  // namespace

BOOST_AUTO_TEST_SUITE(binary_cross_entropy_with_logits_loss)

// Goldens from /usr/bin/python3 with torch 1.13, float64:
//   z = torch.tensor([-3.0, -0.5, 0.0, 0.25, 2.0, 40.0, -40.0], dtype=torch.float64, requires_grad=True)
//   y = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0], dtype=torch.float64)
//   l = torch.nn.functional.binary_cross_entropy_with_logits(z, y); l.backward(); print(l.item(), z.grad)
BOOST_AUTO_TEST_CASE(torch_goldens) {
  B::context ctx(1);
  const tensor<B> z = make(shape{7, 1}, {-3.0, -0.5, 0.0, 0.25, 2.0, 40.0, -40.0});
  const std::vector<double> y{0.0, 1.0, 1.0, 0.0, 1.0, 0.0, 0.0};
  const double want_loss = 6.095525563890802;
  const std::vector<double> want_grad{0.006775124739652397, -0.08892276160026494, -0.07142857142857142,
                                      0.08031092869797116,  -0.017028988860302526, 0.14285714285714285,
                                      6.069077507559413e-19};
  tensor<B> g;
  const double loss = losses::binary_cross_entropy_with_logits{}.value_and_gradient<B>(ctx, z, y, &g);
  BOOST_TEST(loss == want_loss, boost::test_tools::tolerance(1e-14));
  BOOST_REQUIRE(g.dims() == z.dims());
  for (std::size_t i = 0; i < want_grad.size(); ++i)
    BOOST_TEST(std::abs(g.data()[i] - want_grad[i]) <= 1e-15 + 1e-13 * std::abs(want_grad[i]), "element " << i);
}

BOOST_AUTO_TEST_CASE(gradient_matches_finite_differences) {
  B::context ctx(1);
  tensor<B> z = random_tensor(shape{9}, 3);
  const std::vector<double> y{0, 1, 0.25, 1, 0, 0.5, 1, 0, 0.75};
  const losses::binary_cross_entropy_with_logits bce;
  tensor<B> g;
  (void)bce.value_and_gradient<B>(ctx, z, y, &g);
  const auto r = testing::check_function([&] { return bce.value_and_gradient<B>(ctx, z, y, nullptr); },
                                         {{"logits", z, g.clone()}});
  BOOST_TEST(r.ok, r.report);
}

BOOST_AUTO_TEST_CASE(bad_input) {
  B::context ctx(1);
  const losses::binary_cross_entropy_with_logits bce;
  const tensor<B> z = make(shape{2}, {0.5, -0.5});
  BOOST_CHECK_THROW((void)bce.value_and_gradient<B>(ctx, z, std::vector<double>{0.0}, nullptr), shape_error);
  BOOST_CHECK_THROW((void)bce.value_and_gradient<B>(ctx, z, std::vector<double>{0.0, 1.5}, nullptr), shape_error);
  const tensor<B> bad = make(shape{2}, {std::numeric_limits<double>::quiet_NaN(), 0.0});
  BOOST_CHECK_THROW((void)bce.value_and_gradient<B>(ctx, bad, std::vector<double>{0.0, 1.0}, nullptr), numeric_error);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(domain_adversarial_loss)

BOOST_AUTO_TEST_CASE(reference_classifier_names_and_count) {
  dann_t d;  // 1024 → 1024 → 1024 → 1
  std::vector<std::string> names;
  index_t count = 0;
  d.for_each_parameter("", [&](const std::string& s, parameter<B>& p) {
    names.push_back(s);
    count += p.value.numel();
  });
  const std::vector<std::string> want{"0.weight", "0.bias", "2.weight", "2.bias", "4.weight", "4.bias"};
  BOOST_TEST(names == want, boost::test_tools::per_element());
  BOOST_TEST(count == 2 * (1024 * 1024 + 1024) + 1024 + 1);
  BOOST_TEST(d.lambda() == 1.0);
}

BOOST_AUTO_TEST_CASE(loss_is_sum_of_per_domain_means) {
  B::context ctx(1);
  dann_t d = small_dann(1.0);
  const tensor<B> x = random_tensor(shape{7, 5}, 5);
  const auto res = d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite);
  BOOST_TEST(res.count_domain0 == 4);
  BOOST_TEST(res.count_domain1 == 3);
  const tensor<B> z = d.infer(ctx, x);
  std::vector<double> z0, z1;
  for (index_t i = 0; i < 7; ++i) (mixed_domains[i] == 0 ? z0 : z1).push_back(z.at(i, 0));
  const losses::binary_cross_entropy_with_logits bce;
  const double l0 = bce.value_and_gradient<B>(ctx, make(shape{4}, z0), std::vector<double>(4, 0.0), nullptr);
  const double l1 = bce.value_and_gradient<B>(ctx, make(shape{3}, z1), std::vector<double>(3, 1.0), nullptr);
  BOOST_TEST(res.loss_domain0 == l0, boost::test_tools::tolerance(1e-13));
  BOOST_TEST(res.loss_domain1 == l1, boost::test_tools::tolerance(1e-13));
  BOOST_TEST(res.loss == l0 + l1, boost::test_tools::tolerance(1e-13));
}

BOOST_AUTO_TEST_CASE(empty_domain_contributes_zero_and_is_reported) {
  B::context ctx(1);
  dann_t d = small_dann(1.0);
  const tensor<B> x = random_tensor(shape{3, 5}, 9);
  const std::vector<int> all_zero{0, 0, 0};
  const auto res = d.forward_backward(ctx, x, all_zero, grad_mode::overwrite);
  BOOST_TEST(res.count_domain1 == 0);
  BOOST_TEST(res.loss_domain1 == 0.0);
  const tensor<B> z = d.infer(ctx, x);
  const double l0 =
      losses::binary_cross_entropy_with_logits{}.value_and_gradient<B>(ctx, z, std::vector<double>(3, 0.0), nullptr);
  BOOST_TEST(res.loss == l0, boost::test_tools::tolerance(1e-13));
}

// With λ = −1 the reversal multiplies by +1, so features_grad is the true gradient of L_dom; the
// classifier's parameter gradients are always the true (+1) gradients.
BOOST_AUTO_TEST_CASE(classifier_path_gradient_check) {
  B::context ctx(1);
  dann_t d = small_dann(-1.0);
  tensor<B> x = random_tensor(shape{7, 5}, 13);
  const auto res = d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite);
  std::vector<testing::gradient_variable> vars{{"features", x, res.features_grad.clone()}};
  d.for_each_parameter("", [&](const std::string& s, parameter<B>& p) {
    vars.push_back({s, p.value, p.grad.clone()});
  });
  const auto f = [&] { return d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite).loss; };
  const auto r = testing::check_function(f, vars);
  BOOST_TEST_MESSAGE(r.report);
  BOOST_TEST(r.ok, r.report);
}

BOOST_AUTO_TEST_CASE(reversal_sign_and_scale) {
  B::context ctx(1);
  dann_t d = small_dann(-1.0);
  const tensor<B> x = random_tensor(shape{7, 5}, 17);
  const tensor<B> truth = d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite).features_grad.clone();
  d.set_lambda(0.5);
  BOOST_TEST(d.lambda() == 0.5);
  const auto res = d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite);
  double norm = 0;
  for (index_t i = 0; i < truth.numel(); ++i) {
    norm += truth.data()[i] * truth.data()[i];
    BOOST_TEST(res.features_grad.data()[i] == -0.5 * truth.data()[i], boost::test_tools::tolerance(1e-14));
  }
  BOOST_TEST(norm > 1e-12);
  d.set_lambda(0.0);
  const auto zero = d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite);
  for (index_t i = 0; i < truth.numel(); ++i) BOOST_TEST(zero.features_grad.data()[i] == 0.0);
}

BOOST_AUTO_TEST_CASE(parameter_gradients_accumulate_or_overwrite) {
  B::context ctx(1);
  dann_t d = small_dann(1.0);
  const tensor<B> x = random_tensor(shape{7, 5}, 19);
  std::vector<parameter<B>*> ps;
  d.for_each_parameter("", [&](const std::string&, parameter<B>& p) { ps.push_back(&p); });
  (void)d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite);
  std::vector<tensor<B>> once;
  for (auto* p : ps) once.push_back(p->grad.clone());
  (void)d.forward_backward(ctx, x, mixed_domains, grad_mode::accumulate);
  for (std::size_t k = 0; k < ps.size(); ++k)
    for (index_t i = 0; i < once[k].numel(); ++i)
      BOOST_TEST(ps[k]->grad.data()[i] == 2 * once[k].data()[i], boost::test_tools::tolerance(1e-12));
  (void)d.forward_backward(ctx, x, mixed_domains, grad_mode::overwrite);
  for (std::size_t k = 0; k < ps.size(); ++k)
    for (index_t i = 0; i < once[k].numel(); ++i)
      BOOST_TEST(ps[k]->grad.data()[i] == once[k].data()[i], boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(bad_input) {
  B::context ctx(1);
  dann_t d = small_dann(1.0);
  const tensor<B> x = random_tensor(shape{3, 5}, 23);
  BOOST_CHECK_THROW((void)d.forward_backward(ctx, x, std::vector<int>{0, 2, 1}, grad_mode::overwrite), shape_error);
  BOOST_CHECK_THROW((void)d.forward_backward(ctx, x, std::vector<int>{0, -1, 1}, grad_mode::overwrite), shape_error);
  BOOST_CHECK_THROW((void)d.forward_backward(ctx, x, std::vector<int>{0, 1}, grad_mode::overwrite), shape_error);
  const tensor<B> wrong_f = random_tensor(shape{3, 4}, 29);
  BOOST_CHECK_THROW((void)d.forward_backward(ctx, wrong_f, std::vector<int>{0, 1, 0}, grad_mode::overwrite),
                    shape_error);
  tensor<B> nan_x = x.clone();
  nan_x.at(1, 2) = std::numeric_limits<double>::quiet_NaN();
  BOOST_CHECK_THROW((void)d.forward_backward(ctx, nan_x, std::vector<int>{0, 1, 0}, grad_mode::overwrite),
                    numeric_error);
  BOOST_CHECK_THROW(d.set_lambda(std::numeric_limits<double>::infinity()), config_error);
  BOOST_CHECK_THROW(dann_t({.in_features = 0}), config_error);
}

BOOST_AUTO_TEST_SUITE_END()

// Cross-entropy: golden values from PyTorch 1.13 (torch.nn.functional.cross_entropy, float64), a
// finite-difference check, and the errors for bad labels and non-finite logits.
#include <boost/test/unit_test.hpp>

#include <limits>
#include <vector>

#include "mammocl/mammocl.hpp"
#include "mammocl/testing/gradient_check.hpp"

using namespace mammocl;
using B = cpu_backend_f64;

namespace {
tensor<B> golden_logits() {
  tensor<B> z(shape{3, 5});
  const double v[] = {1.0, 2.0, 0.5, -1.0, 0.0, 0.3, -0.2, 2.5, 1.0, -1.5, -0.7, 0.1, 0.2, 0.3, 3.0};
  B::from_host(v, z);
  return z;
}
const std::vector<int> golden_labels{1, 2, 0};
}  // namespace

BOOST_AUTO_TEST_CASE(cross_entropy_matches_pytorch) {
  B::context ctx(1);
  tensor<B> z = golden_logits(), dz;
  const double loss = losses::cross_entropy().value_and_gradient<B>(ctx, z, golden_labels, &dz);
  BOOST_TEST(loss == 1.6044932960738116, boost::test_tools::tolerance(1e-14));
  const double g[3][5] = {{0.06904131204248642, -0.14565958939527185, 0.041875672540555076, 0.009343725520297259, 0.025398879291933078},
                          {0.026020127378340432, 0.015782005024591577, -0.0985013324868155, 0.05239810195685972, 0.004301098127023741},
                          {-0.3265098256441673, 0.015185995638122058, 0.016783120741276136, 0.018548216957810584, 0.27599249230695855}};
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 5; ++j) BOOST_TEST(dz.at(i, j) == g[i][j], boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(weighted_cross_entropy_matches_pytorch) {
  B::context ctx(1);
  tensor<B> z = golden_logits(), dz;
  losses::cross_entropy ce({.class_weights = {1.0, 2.0, 0.5, 1.5, 3.0}});
  const double loss = ce.value_and_gradient<B>(ctx, z, golden_labels, &dz);
  BOOST_TEST(loss == 1.4893661476940083, boost::test_tools::tolerance(1e-14));
  BOOST_TEST(dz.at(0, 1) == -0.24970215324903747, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(dz.at(2, 4) == 0.23656499340596446, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(dz.at(1, 2) == -0.042214856780063786, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(cross_entropy_gradient_check) {
  B::context ctx(1);
  rng r(3);
  tensor<B> z(shape{4, 5});
  for (index_t i = 0; i < z.numel(); ++i) z.data()[i] = 2 * r.normal();
  const std::vector<int> y{0, 4, 2, 2};
  losses::cross_entropy ce({.class_weights = {1.0, 0.5, 2.0, 1.0, 1.5}});
  tensor<B> dz;
  ce.value_and_gradient<B>(ctx, z, y, &dz);
  auto f = [&] { return ce.value_and_gradient<B>(ctx, z, y, nullptr); };
  const auto res = testing::check_function(f, {{"logits", z, dz}});
  BOOST_TEST(res.ok, res.report);
}

BOOST_AUTO_TEST_CASE(cross_entropy_bad_input) {
  B::context ctx(1);
  tensor<B> z = golden_logits();
  try {
    losses::cross_entropy().value_and_gradient<B>(ctx, z, std::vector<int>{1, 5, 0}, nullptr);
    BOOST_FAIL("no exception");
  } catch (const shape_error& e) {
    BOOST_TEST(e.message() == "cross_entropy: label 5 at row 1 is outside [0, 5)");
  }
  BOOST_CHECK_THROW(losses::cross_entropy().value_and_gradient<B>(ctx, z, std::vector<int>{1, 2}, nullptr), shape_error);
  z.at(1, 3) = std::numeric_limits<double>::quiet_NaN();
  BOOST_CHECK_THROW(losses::cross_entropy().value_and_gradient<B>(ctx, z, golden_labels, nullptr), numeric_error);
  BOOST_CHECK_THROW(losses::cross_entropy({.class_weights = {1, -1, 1, 1, 1}}), config_error);
}

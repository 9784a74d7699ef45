// Domain-invariance measures: METHOD.md §4.3(b) MMD test vectors, hand-checkable consistency, cosine,
// median and AUC-gap values, permutation-test behaviour on identical and shifted domains, proxy
// A-distance on separable and identical domains, the logistic regression against scikit-learn, and the
// errors for bad input.
#include <boost/test/unit_test.hpp>

#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "mammocl/core/rng.hpp"
#include "mammocl/eval/invariance.hpp"

namespace ev = mammocl::eval;
namespace tt = boost::test_tools;

namespace {
/// Mann-Whitney AUC of binary labels, ties counted half (the callable under test).
double small_auc(std::span<const double> s, std::span<const int> l) {
  double wins = 0, pos = 0, neg = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (l[i] != 1) continue;
    ++pos;
    for (std::size_t j = 0; j < s.size(); ++j)
      if (l[j] == 0) wins += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
  }
  for (int v : l) neg += v == 0 ? 1 : 0;
  return wins / (pos * neg);
}

/// n images × 2 versions in `dim` dimensions; version B shifted by `shift` along every axis.
/// Rows: image i version A at 2i, version B at 2i+1.
struct paired_set {
  std::vector<double> x;
  std::vector<int> labels, domains, ids;
};
paired_set make_pairs(std::size_t n, std::size_t dim, double shift, std::uint64_t seed, int classes = 2,
                      bool independent_b = true) {
  mammocl::rng r(seed);
  paired_set p;
  for (std::size_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % static_cast<std::size_t>(classes));
    std::vector<double> base(dim);
    for (std::size_t j = 0; j < dim; ++j) base[j] = (j == static_cast<std::size_t>(c) ? 3.0 : 0.0) + r.normal();
    for (int d = 0; d < 2; ++d) {
      for (std::size_t j = 0; j < dim; ++j) {
        const double noise = independent_b ? r.normal() : 0.0;
        p.x.push_back(d == 0 ? base[j] : (independent_b ? (j == static_cast<std::size_t>(c) ? 3.0 : 0.0) + noise : base[j]) + shift);
      }
      p.labels.push_back(c);
      p.domains.push_back(d);
      p.ids.push_back(static_cast<int>(i));
    }
  }
  return p;
}
}  // namespace

// ----- MMD -------------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(mmd_matches_method_test_vectors) {
  const std::vector<double> x{0, 0, 1, 0, 0, 1}, y{1, 1, 2, 1};
  const double sigma[] = {0.5, 1.0, 2.0};
  const double biased[] = {0.8626592294, 0.7658386710, 0.3517403177};
  const double unbiased[] = {0.1291031161, 0.4114307520, 0.2422992788};
  for (int i = 0; i < 3; ++i) {
    const double s2 = sigma[i] * sigma[i];
    BOOST_TEST(ev::gaussian_mmd2(x, y, 2, s2, ev::mmd_estimator::biased) == biased[i], tt::tolerance(1e-9));
    BOOST_TEST(ev::gaussian_mmd2(x, y, 2, s2) == unbiased[i], tt::tolerance(1e-9));
  }
  const std::vector<double> x2{0, 0, 1, 0};
  BOOST_TEST(ev::multi_kernel_mmd_reference(x2, y, 2) == 4.023342443341554, tt::tolerance(1e-13));
}

BOOST_AUTO_TEST_CASE(mmd_hand_value_and_symmetry) {
  // x = {0, 1}, y = {3, 5} in 1-D, σ² = 2: k = exp(−d²/4).
  const std::vector<double> x{0, 1}, y{3, 5};
  const double kxx = std::exp(-0.25), kyy = std::exp(-1.0);
  const double kxy = (std::exp(-9.0 / 4) + std::exp(-25.0 / 4) + std::exp(-1.0) + std::exp(-4.0)) / 4;
  BOOST_TEST(ev::gaussian_mmd2(x, y, 1, 2.0) == kxx + kyy - 2 * kxy, tt::tolerance(1e-14));
  BOOST_TEST(ev::gaussian_mmd2(x, y, 1, 2.0, ev::mmd_estimator::biased) ==
                 (2 + 2 * kxx) / 4 + (2 + 2 * kyy) / 4 - 2 * kxy,
             tt::tolerance(1e-14));
  BOOST_TEST(ev::gaussian_mmd2(y, x, 1, 2.0) == ev::gaussian_mmd2(x, y, 1, 2.0), tt::tolerance(1e-15));
}

BOOST_AUTO_TEST_CASE(median_heuristic_and_normalisation) {
  BOOST_TEST(ev::median_heuristic_sigma2(std::vector<double>{0, 1, 3}, 1) == 4.0);
  // Squared distances 1, 9, 49, 4, 36, 16: median (9 + 16)/2.
  BOOST_TEST(ev::median_heuristic_sigma2(std::vector<double>{0, 1, 3, 7}, 1) == 12.5);
  const auto z = ev::l2_normalised(std::vector<double>{3, 4, 0, -2}, 2);
  BOOST_TEST(z[0] == 0.6, tt::tolerance(1e-15));
  BOOST_TEST(z[1] == 0.8, tt::tolerance(1e-15));
  BOOST_TEST(z[2] == 0.0);
  BOOST_TEST(z[3] == -1.0);
}

BOOST_AUTO_TEST_CASE(permutation_test_statistic_is_the_class_sum) {
  const auto p = make_pairs(40, 5, 0.5, 21, 3);
  ev::mmd_options opt;
  opt.sigma2 = 3.0;
  opt.l2_normalise = false;
  opt.permutations = 50;
  const auto res = ev::mmd_permutation_test(p.x, 5, p.labels, p.domains, opt);
  BOOST_TEST(res.classes.size() == 3u);
  BOOST_TEST(res.skipped_classes.empty());
  BOOST_TEST(res.sigma2 == 3.0);
  double sum = 0;
  for (const auto& c : res.classes) {
    std::vector<double> a, b;
    for (std::size_t i = 0; i < p.labels.size(); ++i)
      if (p.labels[i] == c.label) (p.domains[i] == 0 ? a : b).insert((p.domains[i] == 0 ? a : b).end(), p.x.begin() + i * 5, p.x.begin() + (i + 1) * 5);
    BOOST_TEST(c.n_a == a.size() / 5);
    BOOST_TEST(c.n_b == b.size() / 5);
    BOOST_TEST(c.mmd2 == ev::gaussian_mmd2(a, b, 5, 3.0), tt::tolerance(1e-12));
    sum += c.mmd2;
  }
  BOOST_TEST(res.mmd2 == sum, tt::tolerance(1e-14));
  // σ² from the median heuristic on the L2-normalised rows when not given.
  opt = {};
  opt.permutations = 10;
  const auto med = ev::mmd_permutation_test(p.x, 5, p.labels, p.domains, opt);
  BOOST_TEST(med.sigma2 == ev::median_heuristic_sigma2(ev::l2_normalised(p.x, 5), 5));
}

BOOST_AUTO_TEST_CASE(identical_domains_give_large_p_shifted_domains_small_p) {
  const auto same = make_pairs(60, 8, 0.0, 5);
  const auto res_same = ev::mmd_permutation_test(same.x, 8, same.labels, same.domains);
  BOOST_TEST_MESSAGE("identical: MMD² " << res_same.mmd2 << ", p " << res_same.p_value);
  BOOST_TEST(std::abs(res_same.mmd2) < 0.02);
  BOOST_TEST(res_same.p_value > 0.05);
  BOOST_TEST(res_same.permutations == 1000u);
  const auto shifted = make_pairs(60, 8, 1.0, 5);
  const auto res_shift = ev::mmd_permutation_test(shifted.x, 8, shifted.labels, shifted.domains);
  BOOST_TEST_MESSAGE("shifted: MMD² " << res_shift.mmd2 << ", p " << res_shift.p_value);
  BOOST_TEST(res_shift.mmd2 > 0.05);
  BOOST_TEST(res_shift.p_value == 1.0 / 1001.0);
  BOOST_TEST(res_shift.classes.size() == 2u);
  for (const auto& c : res_shift.classes) BOOST_TEST(c.p_value == 1.0 / 1001.0);
  for (const auto& c : res_same.classes) BOOST_TEST(c.p_value > 0.01);
  // A single class: its own p is the p of the sum.
  const std::vector<int> one(same.labels.size(), 0);
  const auto overall = ev::mmd_permutation_test(shifted.x, 8, one, shifted.domains);
  BOOST_TEST(overall.classes.size() == 1u);
  BOOST_TEST(overall.classes[0].p_value == overall.p_value);
  // Exactly identical features in both domains: MMD²_u of a set with itself is −2/(m(m−1))·Σ... ≤ 0,
  // never significant.
  const auto twin = make_pairs(30, 4, 0.0, 8, 2, false);
  const auto res_twin = ev::mmd_permutation_test(twin.x, 4, twin.labels, twin.domains);
  BOOST_TEST(res_twin.mmd2 <= 1e-12);
  BOOST_TEST(res_twin.p_value > 0.5);
}

BOOST_AUTO_TEST_CASE(permutation_test_is_seeded_and_thread_independent) {
  const auto p = make_pairs(30, 6, 0.15, 9);
  ev::mmd_options opt;
  opt.seed = 3;
  const auto a = ev::mmd_permutation_test(p.x, 6, p.labels, p.domains, opt);
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  const auto b = ev::mmd_permutation_test(p.x, 6, p.labels, p.domains, opt);
  omp_set_num_threads(threads);
  BOOST_TEST(a.p_value == b.p_value);
  BOOST_TEST(a.mmd2 == b.mmd2);
  for (std::size_t i = 0; i < a.classes.size(); ++i) BOOST_TEST(a.classes[i].p_value == b.classes[i].p_value);
  opt.seed = 4;
  const auto c = ev::mmd_permutation_test(p.x, 6, p.labels, p.domains, opt);
  BOOST_TEST(c.mmd2 == a.mmd2);
  BOOST_TEST_MESSAGE("p with seeds 3 and 4: " << a.p_value << ", " << c.p_value);
  // p always on the (1 + k)/(1 + P) grid.
  const double k = a.p_value * 1001.0 - 1.0;
  BOOST_TEST(std::abs(k - std::round(k)) < 1e-9);
}

BOOST_AUTO_TEST_CASE(small_classes_are_skipped_and_reported) {
  // Class 7 has one A row: skipped for MMD²_u, used for MMD²_b.
  std::vector<double> x{0, 1, 2, 3, 10, 11, 12, 13, 20, 21, 22};
  std::vector<int> labels{1, 1, 1, 1, 7, 7, 7, 7, 9, 9, 9};
  std::vector<int> domains{0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0};
  ev::mmd_options opt;
  opt.sigma2 = 1.0;
  opt.l2_normalise = false;
  opt.permutations = 20;
  const auto u = ev::mmd_permutation_test(x, 1, labels, domains, opt);
  BOOST_TEST(u.classes.size() == 1u);
  BOOST_TEST(u.classes[0].label == 1);
  BOOST_TEST((u.skipped_classes == std::vector<int>{7, 9}));
  opt.estimator = ev::mmd_estimator::biased;
  const auto b = ev::mmd_permutation_test(x, 1, labels, domains, opt);
  BOOST_TEST(b.classes.size() == 2u);
  BOOST_TEST((b.skipped_classes == std::vector<int>{9}));
  // No usable class at all.
  try {
    (void)ev::mmd_permutation_test(std::vector<double>{1, 0, 0, 1, 1, 1}, 2, std::vector<int>{0, 0, 0},
                                   std::vector<int>{0, 1, 1}, opt = {});
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "mmd_permutation_test: no class has at least 2 samples in each domain; nothing to compare");
  }
}

// ----- paired consistency ----------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(paired_consistency_hand_values) {
  const std::vector<double> a{0.7, 0.2, 0.1, 0.1, 0.5, 0.4};
  const std::vector<double> b{0.6, 0.3, 0.1, 0.1, 0.3, 0.6};
  const auto r = ev::paired_prediction_consistency(a, b, 3);
  // |diff|: 0.1 0.1 0 0 0.2 0.2 → 0.6/6.
  BOOST_TEST(r.mean_abs_difference == 0.1, tt::tolerance(1e-14));
  BOOST_TEST(r.argmax_agreement == 0.5);
  BOOST_TEST(r.pairs == 2u);
  // Ties: the first maximum, as numpy.
  const auto t = ev::paired_prediction_consistency(std::vector<double>{0.5, 0.5}, std::vector<double>{0.5, 0.5}, 2);
  BOOST_TEST(t.argmax_agreement == 1.0);
  BOOST_TEST(t.mean_abs_difference == 0.0);
}

BOOST_AUTO_TEST_CASE(paired_cosine_hand_values) {
  const std::vector<double> a{1, 0, 3, 4}, b{0, 2, 6, 8};
  BOOST_TEST(ev::mean_paired_cosine(a, b, 2) == 0.5, tt::tolerance(1e-15));
  BOOST_TEST(ev::mean_paired_cosine(std::vector<double>{1, 1}, std::vector<double>{-1, -1}, 2) == -1.0,
             tt::tolerance(1e-15));
}

// ----- per-domain AUC --------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(per_domain_auc_and_gap) {
  // A rows: scores 0.1 0.4 0.35 0.8, labels 0 0 1 1 → AUC 0.75. B rows: 0.2 0.9 0.7, labels 0 1 1 → 1.
  const std::vector<double> s{0.1, 0.2, 0.4, 0.9, 0.35, 0.8, 0.7};
  const std::vector<int> l{0, 0, 0, 1, 1, 1, 1};
  const std::vector<int> d{0, 1, 0, 1, 0, 0, 1};
  const auto r = ev::per_domain_auc(s, 1, l, d, small_auc);
  BOOST_TEST(r.auc_a == 0.75);
  BOOST_TEST(r.auc_b == 1.0);
  BOOST_TEST(r.gap == 0.25);
  BOOST_TEST(r.n_a == 4u);
  BOOST_TEST(r.n_b == 3u);
  // Multi-column scores travel row by row to the callable.
  const std::vector<double> s2{0.9, 0.1, 0.2, 0.8, 0.3, 0.7, 0.6, 0.4};
  const auto col1 = [](std::span<const double> sc, std::span<const int> lab) {
    std::vector<double> c;
    for (std::size_t i = 0; i < lab.size(); ++i) c.push_back(sc[2 * i + 1]);
    return small_auc(c, lab);
  };
  const auto r2 = ev::per_domain_auc(s2, 2, std::vector<int>{0, 1, 1, 0}, std::vector<int>{0, 0, 1, 1}, col1);
  BOOST_TEST(r2.auc_a == 1.0);
  BOOST_TEST(r2.auc_b == 1.0);
  BOOST_TEST(r2.gap == 0.0);
}

// ----- proxy A-distance ------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(logistic_regression_matches_scikit_learn) {
  // X[i][j] = sin(0.9i + 1.7j) + 0.5 cos(0.3ij), 40×3; y = sin(2.3i) + X[i][0] > 0. Expected:
  // sklearn 1.2.1 LogisticRegression(C, class_weight='balanced', solver='newton-cg', tol=1e-12)
  // (tests/tools/make_eval_invariance_golden.py).
  Eigen::MatrixXd x(40, 3);
  std::vector<int> y(40);
  double pos = 0;
  for (int i = 0; i < 40; ++i) {
    for (int j = 0; j < 3; ++j) x(i, j) = std::sin(0.9 * i + 1.7 * j) + 0.5 * std::cos(0.3 * i * j);
    y[i] = std::sin(2.3 * i) + x(i, 0) > 0 ? 1 : 0;
    pos += y[i];
  }
  BOOST_TEST(pos == 29);
  std::vector<double> s(40);
  for (int i = 0; i < 40; ++i) s[i] = 40.0 / (2.0 * (y[i] == 1 ? pos : 40 - pos));
  Eigen::VectorXd wb = Eigen::VectorXd::Zero(4);
  mammocl::eval::detail::fit_logistic(x, y, s, 0.7, 100, wb);
  const double e07[] = {1.0314783432945889, -0.2760999931551467, -0.5949091363406617, -0.2766231583771572};
  for (int k = 0; k < 4; ++k) BOOST_TEST(wb(k) == e07[k], tt::tolerance(1e-7));
  mammocl::eval::detail::fit_logistic(x, y, s, 100.0, 100, wb);
  const double e100[] = {1.9409723326776207, -0.2761185188244698, -0.19877620262294177, -0.6189706124596918};
  for (int k = 0; k < 4; ++k) BOOST_TEST(wb(k) == e100[k], tt::tolerance(1e-6));
}

BOOST_AUTO_TEST_CASE(pad_is_two_for_a_separable_shift_and_near_zero_for_identical_domains) {
  const auto sep = make_pairs(100, 10, 6.0, 31);
  const auto r = ev::proxy_a_distance(sep.x, 10, sep.domains, sep.ids);
  BOOST_TEST(r.error == 0.0);
  BOOST_TEST(r.pad == 2.0);
  BOOST_TEST(r.n_train == 100u);
  BOOST_TEST(r.n_test == 100u);
  BOOST_TEST(r.grid_errors.size() == 16u);
  const auto same = make_pairs(200, 10, 0.0, 32);
  const auto z = ev::proxy_a_distance(same.x, 10, same.domains, same.ids);
  BOOST_TEST_MESSAGE("identical domains: PAD " << z.pad << ", error " << z.error << ", C " << z.best_c);
  BOOST_TEST(std::abs(z.pad) < 0.4);
  BOOST_TEST(z.error > 0.4);
}

BOOST_AUTO_TEST_CASE(pad_in_more_dimensions_than_training_rows) {
  // 40 images, 200-d: the fit runs in the span of the 40 training rows.
  const auto sep = make_pairs(40, 200, 1.0, 41);
  const auto r = ev::proxy_a_distance(sep.x, 200, sep.domains, sep.ids);
  BOOST_TEST(r.pad == 2.0);
  const auto same = make_pairs(40, 200, 0.0, 42);
  const auto z = ev::proxy_a_distance(same.x, 200, same.domains, same.ids);
  BOOST_TEST_MESSAGE("identical 200-d: PAD " << z.pad);
  BOOST_TEST(z.pad < 1.0);
  // Exactly identical versions cannot be told apart: every held-out pair is split 1:1.
  const auto twin = make_pairs(40, 200, 0.0, 43, 2, false);
  const auto t = ev::proxy_a_distance(twin.x, 200, twin.domains, twin.ids);
  BOOST_TEST(t.error == 0.5);
  BOOST_TEST(t.pad == 0.0);
}

BOOST_AUTO_TEST_CASE(pad_split_keeps_images_together_and_is_seeded) {
  // 7 images, version B separable from A: an odd image count gives halves of 3 and 4 images, i.e.
  // 6 and 8 rows, only if both versions of each image stay together.
  const auto sep = make_pairs(7, 3, 8.0, 51);
  ev::pad_options opt;
  opt.seed = 2;
  const auto a = ev::proxy_a_distance(sep.x, 3, sep.domains, sep.ids, opt);
  BOOST_TEST(a.n_train == 6u);
  BOOST_TEST(a.n_test == 8u);
  const auto b = ev::proxy_a_distance(sep.x, 3, sep.domains, sep.ids, opt);
  BOOST_TEST(a.grid_errors == b.grid_errors);
  BOOST_TEST(a.pad == 2.0);
}

// ----- bad input -------------------------------------------------------------------------------------

BOOST_AUTO_TEST_CASE(bad_input_gives_exact_errors) {
  const std::vector<double> x{0, 0, 1, 0, 0, 1}, y{1, 1, 2, 1};
  try {
    (void)ev::gaussian_mmd2(x, std::vector<double>{1, 1, 2}, 2, 1.0);
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "gaussian_mmd2 y: 3 values are not a whole number of rows of 2");
  }
  try {
    (void)ev::gaussian_mmd2(x, std::vector<double>{1, 1}, 2, 1.0);
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "gaussian_mmd2 y: needs at least 2 rows, got 1");
  }
  BOOST_CHECK_NO_THROW((void)ev::gaussian_mmd2(x, std::vector<double>{1, 1}, 2, 1.0, ev::mmd_estimator::biased));
  try {
    (void)ev::gaussian_mmd2(x, std::vector<double>{1, std::numeric_limits<double>::quiet_NaN(), 2, 1}, 2, 1.0);
    BOOST_FAIL("accepted");
  } catch (const mammocl::numeric_error& e) {
    BOOST_TEST(e.message() == "gaussian_mmd2 y: value nan at row 0, column 1 is not finite");
  }
  BOOST_CHECK_THROW((void)ev::gaussian_mmd2(x, y, 2, 0.0), mammocl::config_error);
  try {
    (void)ev::mmd_permutation_test(x, 2, std::vector<int>{0, 0}, std::vector<int>{0, 1, 1});
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "mmd_permutation_test: 2 labels for 3 rows");
  }
  try {
    (void)ev::mmd_permutation_test(x, 2, std::vector<int>{0, 0, 0}, std::vector<int>{0, 2, 1});
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "mmd_permutation_test: domain 2 at row 1 is neither 0 (A) nor 1 (B)");
  }
  try {
    (void)ev::mmd_permutation_test(std::vector<double>{0, 0, 1, 0}, 2, std::vector<int>{0, 0}, std::vector<int>{0, 1});
    BOOST_FAIL("accepted");
  } catch (const mammocl::numeric_error& e) {
    BOOST_TEST(e.message() == "l2_normalised: row 0 is all zeros");
  }
  BOOST_CHECK_THROW((void)ev::median_heuristic_sigma2(std::vector<double>{1, 1, 1}, 1), mammocl::numeric_error);
  BOOST_CHECK_THROW((void)ev::multi_kernel_mmd_reference(x, y, 2), mammocl::shape_error);
  try {
    (void)ev::paired_prediction_consistency(std::vector<double>{0.5, 0.5}, std::vector<double>{0.5, 0.5, 1, 0}, 2);
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "paired_prediction_consistency: prob_a has 1 rows but prob_b has 2");
  }
  try {
    (void)ev::paired_prediction_consistency(std::vector<double>{0.5, 1.5}, std::vector<double>{0.5, 0.5}, 2);
    BOOST_FAIL("accepted");
  } catch (const mammocl::numeric_error& e) {
    BOOST_TEST(e.message() == "paired_prediction_consistency: probability outside [0, 1] at row 0, class 1 (A: 1.5, B: 0.5)");
  }
  try {
    (void)ev::mean_paired_cosine(std::vector<double>{1, 0}, std::vector<double>{0, 0}, 2);
    BOOST_FAIL("accepted");
  } catch (const mammocl::numeric_error& e) {
    BOOST_TEST(e.message() == "mean_paired_cosine: row 0 of feat_b is all zeros; its cosine is undefined");
  }
  try {
    (void)ev::per_domain_auc(std::vector<double>{0.1, 0.2}, 1, std::vector<int>{0, 1}, std::vector<int>{0, 0}, small_auc);
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "per_domain_auc: domain B has no samples");
  }
  try {
    (void)ev::per_domain_auc(std::vector<double>{0.1, 0.2, 0.3}, 1, std::vector<int>{0, 1}, std::vector<int>{0, 1}, small_auc);
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "per_domain_auc: 3 scores for 2 labels of 1 column(s)");
  }
  // A single-class domain makes this AUC NaN: reported, never passed on.
  BOOST_CHECK_THROW((void)ev::per_domain_auc(std::vector<double>{0.1, 0.2, 0.3, 0.4}, 1, std::vector<int>{0, 0, 0, 1},
                                             std::vector<int>{0, 0, 1, 1}, small_auc),
                    mammocl::numeric_error);
  BOOST_CHECK_THROW((void)ev::per_domain_auc(std::vector<double>{0.1, 0.2}, 1, std::vector<int>{0, 1}, std::vector<int>{0, 1},
                                             ev::auc_callable{}),
                    mammocl::config_error);
  const auto p = make_pairs(3, 2, 5.0, 1);
  try {
    (void)ev::proxy_a_distance(p.x, 2, p.domains, p.ids);
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "proxy_a_distance: needs at least 4 distinct image ids, got 3");
  }
  try {
    (void)ev::proxy_a_distance(p.x, 2, p.domains, std::vector<int>{0, 0, 1});
    BOOST_FAIL("accepted");
  } catch (const mammocl::shape_error& e) {
    BOOST_TEST(e.message() == "proxy_a_distance: 3 image ids for 6 rows");
  }
  // One domain only in a half.
  const auto q = make_pairs(4, 2, 5.0, 1);
  std::vector<int> all_a(q.domains.size(), 0);
  BOOST_CHECK_THROW((void)ev::proxy_a_distance(q.x, 2, all_a, q.ids), mammocl::shape_error);
  ev::pad_options bad;
  bad.c_grid = {1.0, -1.0};
  BOOST_CHECK_THROW((void)ev::proxy_a_distance(q.x, 2, q.domains, q.ids, bad), mammocl::config_error);
}

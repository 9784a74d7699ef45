// eval/auc: METHOD.md §6.1–6.2 test vectors, random cases checked against scikit-learn (golden header made by
// tests/tools/make_auc_golden.py), the resample statistics against the plain functions, and bad input.
#include <boost/test/unit_test.hpp>

#include "test_helpers.hpp"

#include <cmath>
#include <limits>
#include <vector>

#include "golden/auc_golden.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/eval/auc.hpp"

namespace ev = mammocl::eval;
namespace tt = boost::test_tools;

namespace {
// METHOD.md TV-AUC-1 (3 classes, 9 samples).
const std::vector<int> tv1_labels{0, 0, 0, 1, 1, 1, 2, 2, 2};
const std::vector<double> tv1_scores{.7, .2, .1, .5, .3, .2, .2, .5, .3, .3, .5, .2, .2, .6, .2,
                                     .5, .2, .3, .1, .3, .6, .2, .4, .4, .3, .3, .4};

// METHOD.md TV-AUC-2 (5 classes, 13 samples, rows divided by their sums).
std::vector<double> tv2_scores() {
  const double rows[13][5] = {{5, 1, 1, 1, 1}, {3, 2, 1, 1, 1}, {2, 2, 2, 2, 2}, {1, 3, 1, 1, 1}, {1, 4, 1, 2, 1},
                              {2, 3, 1, 1, 1}, {1, 1, 4, 1, 2}, {2, 1, 2, 2, 1}, {1, 1, 1, 5, 2}, {1, 2, 1, 3, 3},
                              {2, 1, 1, 2, 1}, {1, 1, 2, 2, 4}, {1, 1, 1, 1, 3}};
  std::vector<double> s;
  for (const auto& r : rows) {
    double sum = 0;
    for (double v : r) sum += v;
    for (double v : r) s.push_back(v / sum);
  }
  return s;
}
const std::vector<int> tv2_labels{0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 3, 4, 4};

}  // namespace

BOOST_AUTO_TEST_CASE(binary_auc_method_example_with_ties) {
  // positives {0.9, 0.4, 0.4}, negatives {0.4, 0.1} -> 5/6
  const std::vector<double> s{0.9, 0.4, 0.4, 0.4, 0.1};
  const std::vector<int> y{1, 1, 1, 0, 0};
  BOOST_TEST(ev::binary_auc(s, y) == 5.0 / 6.0, tt::tolerance(1e-15));
}

BOOST_AUTO_TEST_CASE(binary_auc_matches_sklearn_golden) {
  for (const auto& c : mammocl_golden::binary_auc_cases) {
    BOOST_TEST(ev::binary_auc(c.scores, c.labels) == c.auc, tt::tolerance(1e-12));
    const auto roc = ev::roc_curve(c.scores, c.labels);
    BOOST_TEST_REQUIRE(roc.fpr.size() == c.fpr.size());
    BOOST_TEST(std::isinf(roc.thresholds[0]));
    double trapezoid = 0;
    for (std::size_t i = 0; i < c.fpr.size(); ++i) {
      BOOST_TEST(roc.fpr[i] == c.fpr[i], tt::tolerance(1e-14));
      BOOST_TEST(roc.tpr[i] == c.tpr[i], tt::tolerance(1e-14));
      if (i > 0) {
        BOOST_TEST(roc.thresholds[i] == c.thresholds[i]);
        trapezoid += (roc.fpr[i] - roc.fpr[i - 1]) * (roc.tpr[i] + roc.tpr[i - 1]) / 2;
      }
    }
    BOOST_TEST(trapezoid == c.auc, tt::tolerance(1e-12));  // the Mann-Whitney form equals the ROC area
  }
}

BOOST_AUTO_TEST_CASE(ovo_auc_tv_auc_1) {
  const auto r = ev::ovo_auc(tv1_scores, tv1_labels, 3);
  BOOST_TEST(r.macro == 29.0 / 36.0, tt::tolerance(1e-15));
  BOOST_TEST(r.weighted == 29.0 / 36.0, tt::tolerance(1e-15));
  BOOST_TEST_REQUIRE(r.pairs.size() == 3u);
  BOOST_TEST(r.pairs[0].auc_a_b == 2.0 / 3.0, tt::tolerance(1e-15));
  BOOST_TEST(r.pairs[0].auc_b_a == 2.0 / 3.0, tt::tolerance(1e-15));
  BOOST_TEST(r.pairs[1].auc_a_b == 5.0 / 6.0, tt::tolerance(1e-15));  // worked check A(0|2) = 7.5/9
  BOOST_TEST(r.pairs[1].auc_b_a == 1.0, tt::tolerance(1e-15));
  BOOST_TEST(r.pairs[1].auc == 11.0 / 12.0, tt::tolerance(1e-15));
  BOOST_TEST(r.pairs[2].auc_a_b == 2.0 / 3.0, tt::tolerance(1e-15));
  BOOST_TEST(r.pairs[2].auc == 5.0 / 6.0, tt::tolerance(1e-15));
  BOOST_TEST(r.pair(2, 0) == 11.0 / 12.0, tt::tolerance(1e-15));
  BOOST_TEST(r.directional[0 * 3 + 2] == 5.0 / 6.0, tt::tolerance(1e-15));
  BOOST_TEST(r.directional[2 * 3 + 0] == 1.0, tt::tolerance(1e-15));
  BOOST_TEST(r.directional[1 * 3 + 1] == 0.5);
  BOOST_TEST(r.pairs[1].count == 6u);
}

BOOST_AUTO_TEST_CASE(ovo_auc_tv_auc_2_unbalanced) {
  const auto r = ev::ovo_auc(tv2_scores(), tv2_labels, 5);
  BOOST_TEST(r.macro == 919.0 / 960.0, tt::tolerance(1e-15));
  BOOST_TEST(r.weighted == 2369.0 / 2496.0, tt::tolerance(1e-14));
  BOOST_TEST(r.pair(0, 1) == 0.8125, tt::tolerance(1e-15));
  BOOST_TEST(r.pair(0, 2) == 0.875, tt::tolerance(1e-15));
  BOOST_TEST(r.pair(0, 3) == 11.0 / 12.0, tt::tolerance(1e-15));
  BOOST_TEST(r.pair(0, 4) == 0.96875, tt::tolerance(1e-15));
  for (int a = 1; a < 5; ++a)
    for (int b = a + 1; b < 5; ++b) BOOST_TEST(r.pair(a, b) == 1.0);
}

BOOST_AUTO_TEST_CASE(ovo_auc_matches_sklearn_golden) {
  for (const auto& c : mammocl_golden::ovo_auc_cases) {
    BOOST_TEST_CONTEXT("K = " << c.num_classes << ", N = " << c.labels.size()) {
      const auto r = ev::ovo_auc(c.scores, c.labels, c.num_classes);
      BOOST_TEST(r.macro == c.macro, tt::tolerance(1e-12));
      BOOST_TEST(r.weighted == c.weighted, tt::tolerance(1e-12));
      BOOST_TEST_REQUIRE(r.pairs.size() == c.pair_auc.size());
      for (std::size_t p = 0; p < r.pairs.size(); ++p) BOOST_TEST(r.pairs[p].auc == c.pair_auc[p], tt::tolerance(1e-12));
      const auto roc = ev::roc_curve_one_vs_rest(c.scores, c.labels, c.num_classes, 0);
      BOOST_TEST_REQUIRE(roc.fpr.size() == c.ovr_fpr.size());
      for (std::size_t i = 0; i < roc.fpr.size(); ++i) {
        BOOST_TEST(roc.fpr[i] == c.ovr_fpr[i], tt::tolerance(1e-14));
        BOOST_TEST(roc.tpr[i] == c.ovr_tpr[i], tt::tolerance(1e-14));
        if (i > 0) BOOST_TEST(roc.thresholds[i] == c.ovr_thresholds[i], tt::tolerance(1e-15));
      }
    }
  }
}

BOOST_AUTO_TEST_CASE(ovo_two_classes_uses_the_binary_path) {
  const std::vector<int> y{0, 1, 0, 1, 1, 0};
  const std::vector<double> p{.8, .2, .3, .7, .6, .4, .4, .6, .5, .5, .9, .1};
  std::vector<double> col1;
  for (std::size_t i = 0; i < y.size(); ++i) col1.push_back(p[2 * i + 1]);
  const auto r = ev::ovo_auc(p, y, 2);
  BOOST_TEST(r.macro == ev::binary_auc(col1, y), tt::tolerance(1e-15));
  BOOST_TEST(r.weighted == r.macro);
  BOOST_TEST(r.pairs[0].auc == r.macro, tt::tolerance(1e-15));  // rows sum to 1: A(0|1) = A(1|0)
}

BOOST_AUTO_TEST_CASE(ovo_raw_scores_when_probabilities_not_required) {
  std::vector<double> logits = tv1_scores;
  for (double& v : logits) v = 3 * std::log(v);  // monotone per column: the ranks, hence the AUCs, are unchanged
  ev::ovo_options opt;
  opt.require_probabilities = false;
  BOOST_TEST(ev::ovo_auc(logits, tv1_labels, 3, opt).macro == 29.0 / 36.0, tt::tolerance(1e-15));
  mammocl::test::expect_error<mammocl::numeric_error>([&] { (void)ev::ovo_auc(logits, tv1_labels, 3); }, "sums to");
}

BOOST_AUTO_TEST_CASE(resample_statistics_equal_the_plain_functions) {
  mammocl::rng r(11);
  for (const auto& c : mammocl_golden::ovo_auc_cases) {
    const std::size_t n = c.labels.size(), k = static_cast<std::size_t>(c.num_classes);
    const ev::ovo_auc_statistic macro(c.scores, c.labels, c.num_classes);
    const ev::ovo_auc_statistic weighted(c.scores, c.labels, c.num_classes, ev::ovo_average::weighted);
    BOOST_TEST(macro.size() == n);
    for (int t = 0; t < 5; ++t) {
      std::vector<std::size_t> idx(n);
      for (auto& i : idx) i = static_cast<std::size_t>(r.below(n));
      std::vector<int> y;
      std::vector<double> s;
      for (std::size_t i : idx) {
        y.push_back(c.labels[i]);
        for (std::size_t j = 0; j < k; ++j) s.push_back(c.scores[i * k + j]);
      }
      std::vector<int> present(k, 0);
      for (int l : y) present[static_cast<std::size_t>(l)] = 1;
      bool all = true;
      for (int v : present) all = all && v;
      if (!all) {
        BOOST_TEST(!macro(idx).has_value());
        continue;
      }
      const auto ref = ev::ovo_auc(s, y, c.num_classes);
      BOOST_TEST(*macro(idx) == ref.macro, tt::tolerance(1e-13));
      BOOST_TEST(*weighted(idx) == ref.weighted, tt::tolerance(1e-13));
      const auto full = macro.full(idx);
      for (std::size_t p = 0; p < ref.pairs.size(); ++p)
        BOOST_TEST(full->pairs[p].auc == ref.pairs[p].auc, tt::tolerance(1e-13));
    }
  }
  for (const auto& c : mammocl_golden::binary_auc_cases) {
    const ev::binary_auc_statistic stat(c.scores, c.labels);
    const std::size_t n = c.labels.size();
    for (int t = 0; t < 5; ++t) {
      std::vector<std::size_t> idx(n);
      for (auto& i : idx) i = static_cast<std::size_t>(r.below(n));
      std::vector<int> y;
      std::vector<double> s;
      for (std::size_t i : idx) {
        y.push_back(c.labels[i]);
        s.push_back(c.scores[i]);
      }
      int pos = 0;
      for (int l : y) pos += l;
      if (pos == 0 || pos == static_cast<int>(n)) BOOST_TEST(!stat(idx).has_value());
      else BOOST_TEST(*stat(idx) == ev::binary_auc(s, y), tt::tolerance(1e-13));
    }
  }
  // one class only in the resample -> undefined, not NaN
  const ev::binary_auc_statistic stat(std::vector<double>{.1, .2, .3}, std::vector<int>{0, 1, 1});
  BOOST_TEST(!stat(std::vector<std::size_t>{1, 2, 2}).has_value());
}

BOOST_AUTO_TEST_CASE(bad_input_is_a_clear_error) {
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  const std::vector<int> y{0, 1, 1, 0};
  using mammocl::config_error;
  using mammocl::numeric_error;
  using mammocl::shape_error;
  // binary
  mammocl::test::expect_error<numeric_error>([&] { (void)ev::binary_auc(std::vector<double>{.1, nan, .3, .4}, y); }, "not finite");
  mammocl::test::expect_error<numeric_error>([&] { (void)ev::binary_auc(std::vector<double>{.1, .2, inf, .4}, y); }, "index 2");
  mammocl::test::expect_error<shape_error>([&] { (void)ev::binary_auc(std::vector<double>{.1, .2, .3}, y); }, "3 scores for 4 labels");
  mammocl::test::expect_error<shape_error>([&] { (void)ev::binary_auc(std::vector<double>{}, std::vector<int>{}); }, "no samples");
  mammocl::test::expect_error<config_error>([&] { (void)ev::binary_auc(std::vector<double>{.1, .2, .3, .4}, std::vector<int>{0, 2, 1, 0}); },
                             "label 2 at index 1");
  mammocl::test::expect_error<config_error>([&] { (void)ev::binary_auc(std::vector<double>{.1, .2, .3}, std::vector<int>{1, 1, 1}); },
                             "only one class");
  mammocl::test::expect_error<config_error>([&] { (void)ev::roc_curve(std::vector<double>{.1, .2}, std::vector<int>{0, 0}); },
                             "only one class");
  mammocl::test::expect_error<config_error>([&] { (void)ev::binary_auc_statistic(std::vector<double>{.1, .2}, std::vector<int>{0, 0}); },
                             "only one class");
  // multiclass
  std::vector<double> s = tv1_scores;
  s[4] = nan;
  mammocl::test::expect_error<numeric_error>([&] { (void)ev::ovo_auc(s, tv1_labels, 3); }, "not finite");
  mammocl::test::expect_error<shape_error>([&] { (void)ev::ovo_auc(tv1_scores, tv1_labels, 4); }, "27 scores for 9 labels and 4 classes");
  std::vector<int> bad = tv1_labels;
  bad[7] = 3;
  mammocl::test::expect_error<config_error>([&] { (void)ev::ovo_auc(tv1_scores, bad, 3); }, "label 3 at index 7");
  bad[7] = -1;
  mammocl::test::expect_error<config_error>([&] { (void)ev::ovo_auc(tv1_scores, bad, 3); }, "label -1");
  const std::vector<int> absent{0, 0, 0, 2, 2, 2, 2, 2, 2};
  mammocl::test::expect_error<config_error>([&] { (void)ev::ovo_auc(tv1_scores, absent, 3); }, "class(es) 1 of the 3");
  const std::vector<int> single(9, 1);
  mammocl::test::expect_error<config_error>([&] { (void)ev::ovo_auc(tv1_scores, single, 3); }, "only one class (1)");
  mammocl::test::expect_error<config_error>([&] { (void)ev::ovo_auc(std::vector<double>{.1, .2}, std::vector<int>{0, 0}, 1); },
                             "num_classes = 1");
  mammocl::test::expect_error<config_error>([&] { (void)ev::roc_curve_one_vs_rest(tv1_scores, tv1_labels, 3, 3); }, "positive_class 3");
  mammocl::test::expect_error<config_error>([&] { (void)ev::ovo_auc_statistic(tv1_scores, absent, 3); }, "absent");
  const ev::ovo_auc_statistic stat(tv1_scores, tv1_labels, 3);
  mammocl::test::expect_error<shape_error>([&] { (void)stat(std::vector<std::size_t>{0, 9}); }, "index 9");
  const auto r = ev::ovo_auc(tv1_scores, tv1_labels, 3);
  mammocl::test::expect_error<config_error>([&] { (void)r.pair(1, 1); }, "distinct classes");
}

// ovo_auc_present: the plain macro AUC when every class occurs; with class 1 absent from TV-AUC-1's 5-class
// cousin, the mean over the pairs of present classes of (A(a|b) + A(b|a)) / 2, each computed here by
// counting wins on the raw score columns.
BOOST_AUTO_TEST_CASE(ovo_auc_present_drops_absent_classes) {
  BOOST_TEST(ev::ovo_auc_present(tv1_scores, tv1_labels, 3) == ev::ovo_auc(tv1_scores, tv1_labels, 3).macro,
             tt::tolerance(1e-15));
  // Four classes, class 1 never occurs; rows need not sum to 1 after dropping column 1.
  const std::vector<int> y{0, 0, 2, 2, 3, 3, 0, 3};
  const std::vector<double> s{.4, .3, .2, .1, .1, .5, .2, .2, .2, .2, .5, .1, .1, .1, .6, .2,
                              .3, .1, .1, .5, .1, .2, .1, .6, .6, .2, .1, .1, .2, .2, .3, .3};
  auto a_given = [&](int a, int b) {  // P(score_a of a random class-a sample > that of a class-b sample)
    double wins = 0, n = 0;
    for (std::size_t i = 0; i < y.size(); ++i)
      for (std::size_t j = 0; j < y.size(); ++j)
        if (y[i] == a && y[j] == b) {
          const double si = s[i * 4 + static_cast<std::size_t>(a)], sj = s[j * 4 + static_cast<std::size_t>(a)];
          wins += si > sj ? 1.0 : si == sj ? 0.5 : 0.0;
          n += 1;
        }
    return wins / n;
  };
  const int present[3] = {0, 2, 3};
  double sum = 0;
  for (int i = 0; i < 3; ++i)
    for (int j = i + 1; j < 3; ++j) sum += 0.5 * (a_given(present[i], present[j]) + a_given(present[j], present[i]));
  BOOST_TEST(ev::ovo_auc_present(s, y, 4) == sum / 3, tt::tolerance(1e-12));
  const std::vector<int> one{2, 2};
  mammocl::test::expect_error<mammocl::config_error>(
      [&] { (void)ev::ovo_auc_present(std::vector<double>(8, .25), one, 4); },
      "ovo_auc_present: the labels hold 1 class(es); an AUC needs at least two");
  mammocl::test::expect_error<mammocl::config_error>(
      [&] { (void)ev::ovo_auc_present(std::vector<double>(8, .25), std::vector<int>{0, 4}, 4); },
      "ovo_auc_present: label 4 outside [0, 4)");
}

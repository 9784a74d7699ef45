// eval/bootstrap: METHOD.md §6.3's explicit 5-resample vector, type-7 quantiles, seeded reproducibility
// (independent of threads), stratified and clustered plans, skipped replicates, and bad input.
#include <boost/test/unit_test.hpp>

#include "test_helpers.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "mammocl/core/rng.hpp"
#include "mammocl/eval/auc.hpp"
#include "mammocl/eval/bootstrap.hpp"

namespace ev = mammocl::eval;
namespace tt = boost::test_tools;

namespace {
const std::vector<int> tv_y{1, 1, 1, 1, 0, 0, 0, 0, 0, 0};
const std::vector<double> tv_a{.9, .8, .55, .4, .6, .3, .35, .2, .1, .5};
const std::vector<double> tv_b{.7, .45, .6, .3, .5, .4, .2, .25, .35, .65};
const std::vector<std::vector<std::size_t>> tv_resamples{{0, 0, 2, 3, 4, 4, 5, 7, 8, 9},
                                                         {1, 2, 2, 3, 5, 6, 6, 7, 9, 9},
                                                         {0, 1, 3, 3, 4, 5, 6, 8, 8, 9},
                                                         {0, 1, 2, 2, 4, 6, 7, 7, 8, 9},
                                                         {3, 3, 1, 0, 9, 9, 9, 4, 5, 6}};

}  // namespace

BOOST_AUTO_TEST_CASE(quantile_type7_and_sd) {
  const std::vector<double> x{3, 1, 4, 1, 5};  // sorted 1 1 3 4 5
  BOOST_TEST(ev::quantile_type7(x, 0.0) == 1.0);
  BOOST_TEST(ev::quantile_type7(x, 1.0) == 5.0);
  BOOST_TEST(ev::quantile_type7(x, 0.5) == 3.0);
  BOOST_TEST(ev::quantile_type7(x, 0.3) == 1.4, tt::tolerance(1e-15));   // h = 1.2 -> 1 + 0.2·2
  BOOST_TEST(ev::quantile_type7(x, 0.9) == 4.6, tt::tolerance(1e-15));   // numpy.quantile(x, 0.9)
  BOOST_TEST(ev::sample_sd(std::vector<double>{1, 2, 3, 4}) == std::sqrt(5.0 / 3.0), tt::tolerance(1e-15));
}

BOOST_AUTO_TEST_CASE(method_paired_vector_with_explicit_resamples) {
  const ev::binary_auc_statistic a(tv_a, tv_y), b(tv_b, tv_y);
  const auto plan = ev::make_explicit_plan(10, tv_resamples);
  BOOST_TEST(plan.replicate_count() == 5u);
  const auto r = ev::paired_bootstrap(plan, a, b);
  BOOST_TEST(r.first.estimate == 0.875, tt::tolerance(1e-15));
  BOOST_TEST(r.second.estimate == 0.7083333333333334, tt::tolerance(1e-14));
  BOOST_TEST(r.difference == 1.0 / 6.0, tt::tolerance(1e-13));
  const double ea[] = {0.7916666667, 0.9166666667, 0.8333333333, 0.9166666667, 0.6666666667};
  const double eb[] = {0.75, 0.625, 0.5, 0.8333333333, 0.4166666667};
  BOOST_TEST_REQUIRE(r.deltas.size() == 5u);
  for (std::size_t i = 0; i < 5; ++i) {
    BOOST_TEST(r.first.replicates[i] == ea[i], tt::tolerance(1e-9));
    BOOST_TEST(r.second.replicates[i] == eb[i], tt::tolerance(1e-9));
  }
  BOOST_TEST(r.sd_delta == 0.1297700959, tt::tolerance(1e-9));
  BOOST_TEST(r.z == 1.2843225981, tt::tolerance(1e-9));
  BOOST_TEST(r.p_two_sided == 0.1990291030, tt::tolerance(1e-8));
  BOOST_TEST(r.p_greater == 0.1990291030 / 2, tt::tolerance(1e-8));
  BOOST_TEST(r.p_less == 1 - 0.1990291030 / 2, tt::tolerance(1e-9));
  BOOST_TEST(r.first.ci_low == 0.6791666667, tt::tolerance(1e-9));
  BOOST_TEST(r.first.ci_high == 0.9166666667, tt::tolerance(1e-9));
  BOOST_TEST(r.skipped == 0u);
  // all 5 deltas are > 0: p = min(1, 2·min(1/6, 6/6)) = 1/3
  BOOST_TEST(r.p_percentile == 1.0 / 3.0, tt::tolerance(1e-15));
  // the one-statistic bootstrap gives the same summary for model A
  const auto ra = ev::bootstrap(plan, a, {.parallel = false});
  BOOST_TEST(ra.estimate == 0.875, tt::tolerance(1e-15));
  BOOST_TEST(ra.ci_low == r.first.ci_low);
  BOOST_TEST(ra.standard_error == ra.sd);
  BOOST_TEST(ra.sd == ev::sample_sd(std::vector<double>(ea, ea + 5)), tt::tolerance(1e-9));
}

BOOST_AUTO_TEST_CASE(seeded_plans_are_reproducible_and_thread_independent) {
  mammocl::rng g(5);
  std::vector<int> y(300);
  std::vector<double> s(300);
  for (std::size_t i = 0; i < y.size(); ++i) {
    y[i] = g.uniform() < 0.25;
    s[i] = g.normal() + y[i];
  }
  const ev::binary_auc_statistic stat(s, y);
  const auto p1 = ev::make_plan(y, {.replicates = 200, .seed = 42});
  const auto p2 = ev::make_plan(y, {.replicates = 200, .seed = 42});
  const auto p3 = ev::make_plan(y, {.replicates = 200, .seed = 43});
  BOOST_TEST(p1.draw(17) == p2.draw(17));
  BOOST_TEST(p1.draw(17) != p3.draw(17));
  BOOST_TEST(p1.draw(17) != p1.draw(18));
  const auto par = ev::bootstrap(p1, stat, {.parallel = true});
  const auto ser = ev::bootstrap(p2, stat, {.parallel = false});
  BOOST_TEST(par.replicates == ser.replicates);
  BOOST_TEST(par.ci_low == ser.ci_low);
  BOOST_TEST(par.sd == ser.sd);
  BOOST_TEST(par.used == 200u);
  BOOST_TEST(par.ci_low < par.estimate);
  BOOST_TEST(par.estimate < par.ci_high);
  // the plan's replicate b equals its own documented stream: rng(replicate_seed(seed, b))
  BOOST_TEST(ev::resampling_plan::replicate_seed(42, 3) != ev::resampling_plan::replicate_seed(42, 4));
  BOOST_TEST(p1.seed() == 42u);
}

BOOST_AUTO_TEST_CASE(plan_streams_are_pinned) {
  // The replicate streams are part of the contract (own splitmix64 + mammocl::rng, no std distributions):
  // these values must not change between compilers, standard libraries or releases.
  BOOST_TEST(ev::resampling_plan::replicate_seed(42, 3) == 1728429178538081316ULL);
  const auto plan = ev::make_plan(std::vector<int>{0, 1, 0, 1, 1, 0, 0, 1}, {.replicates = 3, .seed = 42});
  BOOST_TEST(plan.draw(0) == (std::vector<std::size_t>{5, 6, 2, 0, 3, 1, 1, 3}), tt::per_element());
  BOOST_TEST(plan.draw(2) == (std::vector<std::size_t>{0, 6, 5, 2, 4, 4, 1, 7}), tt::per_element());
}

BOOST_AUTO_TEST_CASE(stratified_plan_keeps_class_counts) {
  const std::vector<int> y{2, 0, 1, 1, 0, 2, 2, 2, 0, 1, 1, 1, 0};
  const auto plan = ev::make_plan(y, {.replicates = 50, .seed = 1});
  std::map<int, int> want;
  for (int l : y) ++want[l];
  for (std::size_t b = 0; b < plan.replicate_count(); ++b) {
    const auto idx = plan.draw(b);
    BOOST_TEST(idx.size() == y.size());
    std::map<int, int> got;
    for (std::size_t i : idx) ++got[y[i]];
    BOOST_TEST((got == want));
  }
  // a plain (unstratified) plan draws n samples from all
  const auto plain = ev::make_plan(y, {.replicates = 50, .seed = 1, .stratified = false});
  bool counts_vary = false;
  for (std::size_t b = 0; b < plain.replicate_count(); ++b) {
    const auto idx = plain.draw(b);
    BOOST_TEST(idx.size() == y.size());
    std::map<int, int> got;
    for (std::size_t i : idx) ++got[y[i]];
    counts_vary = counts_vary || got != want;
  }
  BOOST_TEST(counts_vary);
}

BOOST_AUTO_TEST_CASE(clustered_plan_keeps_cluster_members_together) {
  // 12 images in two domain versions each (samples 2j and 2j+1 share image id 100+j), plus one patient
  // cluster (id 7) holding samples of classes 0 and 1.
  std::vector<int> y;
  std::vector<std::int64_t> id;
  for (int j = 0; j < 12; ++j) {
    const int cls = j % 3 == 0 ? 1 : 0;
    y.insert(y.end(), {cls, cls});
    id.insert(id.end(), {100 + j, 100 + j});
  }
  y.insert(y.end(), {0, 1, 1});
  id.insert(id.end(), {7, 7, 7});
  const auto plan = ev::make_clustered_plan(y, id, {.replicates = 100, .seed = 3});
  for (std::size_t b = 0; b < plan.replicate_count(); ++b) {
    const auto idx = plan.draw(b);
    std::map<std::int64_t, int> members;
    for (std::size_t i : idx) ++members[id[i]];
    int class1_images = 0, mixed = 0;
    for (const auto& [cid, count] : members) {
      if (cid == 7) {
        BOOST_TEST(count % 3 == 0);  // the whole patient, every time it is drawn
        mixed += count / 3;
      } else {
        BOOST_TEST(count % 2 == 0);  // both domain versions together
        class1_images += (cid - 100) % 3 == 0 ? count / 2 : 0;
      }
    }
    // strata: {0}: 8 images, {1}: 4 images, {0,1}: 1 patient, counts kept per stratum
    BOOST_TEST(class1_images == 4);
    BOOST_TEST(mixed == 1);
    BOOST_TEST(idx.size() == y.size());
    // members of one drawn cluster are adjacent and in index order
    for (std::size_t t = 0; t < idx.size();) {
      const std::size_t size = id[idx[t]] == 7 ? 3 : 2;
      BOOST_TEST_REQUIRE(t + size <= idx.size());
      for (std::size_t u = 1; u < size; ++u) {
        BOOST_TEST(id[idx[t + u]] == id[idx[t]]);
        BOOST_TEST(idx[t + u] == idx[t] + u);
      }
      t += size;
    }
  }
}

BOOST_AUTO_TEST_CASE(replicates_with_a_missing_class_are_skipped_and_counted) {
  const ev::binary_auc_statistic a(tv_a, tv_y), b(tv_b, tv_y);
  auto resamples = tv_resamples;
  resamples.insert(resamples.begin() + 1, {4, 5, 6, 7, 8, 9, 9, 9, 4, 5});  // negatives only
  const auto plan = ev::make_explicit_plan(10, resamples);
  const auto r = ev::bootstrap(plan, a);
  BOOST_TEST(r.requested == 6u);
  BOOST_TEST(r.used == 5u);
  BOOST_TEST(r.skipped == 1u);
  BOOST_TEST(r.skipped_replicates == std::vector<std::size_t>{1});
  const auto p = ev::paired_bootstrap(plan, a, b);
  BOOST_TEST(p.skipped == 1u);
  BOOST_TEST(p.p_two_sided == 0.1990291030, tt::tolerance(1e-8));  // same as without the bad replicate
  // with an unstratified plan on a rare class, some replicates lack the class
  std::vector<int> y(40, 0);
  std::vector<double> s(40);
  y[3] = 1;
  for (std::size_t i = 0; i < s.size(); ++i) s[i] = static_cast<double>(i % 7);
  const ev::binary_auc_statistic rare(s, y);
  const auto plain = ev::bootstrap(ev::make_plan(y, {.replicates = 400, .seed = 9, .stratified = false}), rare);
  BOOST_TEST(plain.skipped > 0u);  // P(class absent) = (39/40)^40 ≈ 0.36
  BOOST_TEST(plain.used + plain.skipped == 400u);
  const auto strat = ev::bootstrap(ev::make_plan(y, {.replicates = 400, .seed = 9}), rare);
  BOOST_TEST(strat.skipped == 0u);
}

BOOST_AUTO_TEST_CASE(ovo_bootstrap_with_plain_double_statistic) {
  // a statistic returning double (always defined) works too; the OvO statistic on a stratified plan never skips
  const std::vector<int> y{0, 0, 0, 1, 1, 1, 2, 2, 2};
  const std::vector<double> p{.7, .2, .1, .5, .3, .2, .2, .5, .3, .3, .5, .2, .2, .6, .2,
                              .5, .2, .3, .1, .3, .6, .2, .4, .4, .3, .3, .4};
  const ev::ovo_auc_statistic ovo(p, y, 3);
  const auto plan = ev::make_plan(y, {.replicates = 300, .seed = 2});
  const auto r = ev::bootstrap(plan, ovo);
  BOOST_TEST(r.estimate == 29.0 / 36.0, tt::tolerance(1e-15));
  BOOST_TEST(r.skipped == 0u);
  const auto size_stat = [](std::span<const std::size_t> idx) { return static_cast<double>(idx.size()) + idx[0]; };
  const auto rs = ev::bootstrap(plan, size_stat);
  BOOST_TEST(rs.estimate == 9.0);
  BOOST_TEST(rs.used == 300u);
}

BOOST_AUTO_TEST_CASE(bad_input_is_a_clear_error) {
  using mammocl::config_error;
  using mammocl::numeric_error;
  using mammocl::shape_error;
  const ev::binary_auc_statistic a(tv_a, tv_y);
  mammocl::test::expect_error<shape_error>([] { (void)ev::make_plan(std::vector<int>{}); }, "no samples");
  mammocl::test::expect_error<config_error>([] { (void)ev::make_plan(std::vector<int>{0, 1}, {.replicates = 1}); }, "at least 2");
  mammocl::test::expect_error<shape_error>(
      [] { (void)ev::make_clustered_plan(std::vector<int>{0, 1, 1}, std::vector<std::int64_t>{1, 2}); },
      "2 cluster ids for 3 labels");
  mammocl::test::expect_error<shape_error>([] { (void)ev::make_explicit_plan(3, {{0, 1, 2}, {0, 3, 1}}); }, "index 3");
  mammocl::test::expect_error<shape_error>([] { (void)ev::make_explicit_plan(3, {{0, 1, 2}, {}}); }, "resample 1 is empty");
  mammocl::test::expect_error<config_error>([] { (void)ev::make_explicit_plan(3, {{0, 1, 2}}); }, "at least 2");
  const auto plan = ev::make_explicit_plan(10, tv_resamples);
  mammocl::test::expect_error<config_error>([&] { (void)plan.draw(5); }, "replicate 5 of 5");
  mammocl::test::expect_error<config_error>([&] { (void)ev::bootstrap(plan, a, {.level = 1.0}); }, "level");
  // a plan over more samples than the statistic knows
  const auto big = ev::make_plan(std::vector<int>(12, 0), {.replicates = 3});
  mammocl::test::expect_error<shape_error>([&] { (void)ev::bootstrap(big, a); }, "outside the 10 samples");
  // NaN from a statistic is an error, not a silent NaN
  const auto nan_stat = [](std::span<const std::size_t> idx) {
    return idx[0] == 0 && idx[1] == 1 ? 0.5 : std::numeric_limits<double>::quiet_NaN();
  };
  mammocl::test::expect_error<numeric_error>([&] { (void)ev::bootstrap(plan, nan_stat); }, "never NaN");
  // fewer than 2 defined replicates
  const auto mostly_undefined = [](std::span<const std::size_t> idx) -> std::optional<double> {
    for (std::size_t i = 0; i < idx.size(); ++i)
      if (idx[i] != i) return std::nullopt;
    return 0.5;  // defined on the full set (0, 1, ..., 9) only
  };
  mammocl::test::expect_error<numeric_error>([&] { (void)ev::bootstrap(plan, mostly_undefined); }, "only 0 of 5");
  // undefined on the full set
  const auto never = [](std::span<const std::size_t>) -> std::optional<double> { return std::nullopt; };
  mammocl::test::expect_error<config_error>([&] { (void)ev::bootstrap(plan, never); }, "undefined on the full set");
  // identical models: sd(δ) = 0
  mammocl::test::expect_error<numeric_error>([&] { (void)ev::paired_bootstrap(plan, a, a); }, "sd of the replicate differences");
  // exceptions thrown by the statistic inside the OpenMP loop reach the caller
  const auto throws = [](std::span<const std::size_t> idx) -> double {
    if (idx[0] == 3) throw mammocl::config_error("statistic failed", __FILE__, __LINE__);
    return 0.5;
  };
  mammocl::test::expect_error<config_error>([&] { (void)ev::bootstrap(plan, throws); }, "statistic failed");
  mammocl::test::expect_error<config_error>([] { (void)ev::quantile_type7(std::vector<double>{1}, 1.5); }, "outside [0, 1]");
  mammocl::test::expect_error<shape_error>([] { (void)ev::quantile_type7(std::vector<double>{}, 0.5); }, "no values");
  mammocl::test::expect_error<shape_error>([] { (void)ev::sample_sd(std::vector<double>{1}); }, "at least 2");
}

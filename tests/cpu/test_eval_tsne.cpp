// Exact t-SNE: well-separated Gaussian clusters stay separated (trustworthiness, k-NN label
// agreement), seeded and thread-count-independent reproducibility, trustworthiness hand values, and
// the errors for bad input.
#include <boost/test/unit_test.hpp>

#include <omp.h>

#include <cmath>
#include <limits>
#include <vector>

#include "mammocl/core/rng.hpp"
#include "mammocl/eval/tsne.hpp"

namespace ev = mammocl::eval;

namespace {
constexpr std::size_t clusters = 4, per_cluster = 60, dim = 20;

/// 4 clusters × 60 points in 20-D: centres 8 apart along the coordinate axes, unit noise.
std::vector<double> cluster_data(std::vector<int>& labels, std::uint64_t seed = 7) {
  mammocl::rng r(seed);
  std::vector<double> x;
  labels.clear();
  for (std::size_t c = 0; c < clusters; ++c)
    for (std::size_t i = 0; i < per_cluster; ++i) {
      for (std::size_t j = 0; j < dim; ++j) x.push_back((j == c ? 8.0 : 0.0) + r.normal());
      labels.push_back(static_cast<int>(c));
    }
  return x;
}
}  // namespace

BOOST_AUTO_TEST_CASE(separated_clusters_stay_separated) {
  std::vector<int> labels;
  const auto x = cluster_data(labels);
  const auto res = ev::tsne(x, dim);
  BOOST_TEST(res.embedding.size() == x.size() / dim * 2);
  BOOST_TEST(res.n_components == 2u);
  BOOST_TEST(res.iterations <= 999u);
  BOOST_TEST(std::isfinite(res.kl_divergence));
  BOOST_TEST(res.kl_divergence > 0.0);
  const double t = ev::trustworthiness(x, dim, res.embedding, 2, 5);
  BOOST_TEST_MESSAGE("trustworthiness " << t << ", KL " << res.kl_divergence << ", iterations " << res.iterations);
  BOOST_TEST(t > 0.9);
  BOOST_TEST(ev::knn_label_agreement(res.embedding, 2, labels, 10) > 0.99);
  // The clusters are also separated as sets: every within-cluster centroid distance is smaller than
  // every between-centroid distance... measured as: the nearest centroid of each point is its own.
  std::vector<double> cx(clusters * 2, 0.0);
  for (std::size_t i = 0; i < labels.size(); ++i)
    for (int c = 0; c < 2; ++c) cx[labels[i] * 2 + c] += res.embedding[i * 2 + c] / per_cluster;
  std::size_t nearest_own = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    std::size_t best = 0;
    double bd = std::numeric_limits<double>::max();
    for (std::size_t c = 0; c < clusters; ++c) {
      const double dx = res.embedding[i * 2] - cx[c * 2], dy = res.embedding[i * 2 + 1] - cx[c * 2 + 1];
      if (dx * dx + dy * dy < bd) {
        bd = dx * dx + dy * dy;
        best = c;
      }
    }
    nearest_own += best == static_cast<std::size_t>(labels[i]) ? 1 : 0;
  }
  BOOST_TEST(nearest_own == labels.size());
}

BOOST_AUTO_TEST_CASE(random_init_also_separates_and_is_seeded) {
  std::vector<int> labels;
  const auto x = cluster_data(labels, 11);
  ev::tsne_options opt;
  opt.init = ev::tsne_init::random;
  opt.seed = 5;
  const auto a = ev::tsne(x, dim, opt);
  const auto b = ev::tsne(x, dim, opt);
  BOOST_TEST(a.embedding == b.embedding);
  opt.seed = 6;
  const auto c = ev::tsne(x, dim, opt);
  BOOST_TEST(a.embedding != c.embedding);
  BOOST_TEST(ev::trustworthiness(x, dim, a.embedding, 2) > 0.9);
  BOOST_TEST(ev::knn_label_agreement(a.embedding, 2, labels) > 0.99);
}

BOOST_AUTO_TEST_CASE(reproducible_across_runs_and_thread_counts) {
  std::vector<int> labels;
  const auto x = cluster_data(labels, 3);
  ev::tsne_options opt;
  opt.max_iter = 400;
  const int threads = omp_get_max_threads();
  const auto a = ev::tsne(x, dim, opt);
  const auto b = ev::tsne(x, dim, opt);
  omp_set_num_threads(1);
  const auto c = ev::tsne(x, dim, opt);
  omp_set_num_threads(threads);
  BOOST_TEST(a.embedding == b.embedding);
  BOOST_TEST(a.embedding == c.embedding);
  BOOST_TEST(a.kl_divergence == c.kl_divergence);
  BOOST_TEST(a.iterations == 399u);
}

BOOST_AUTO_TEST_CASE(trustworthiness_hand_values) {
  // Points at 2^i − 1 on a line (no distance ties). An identical embedding is perfectly trustworthy.
  const std::vector<double> x{0, 1, 3, 7, 15, 31, 63, 127};
  BOOST_TEST(ev::trustworthiness(x, 1, x, 1, 1) == 1.0);
  // Swap the embedded positions of points 0 and 7; k = 1. Embedded nearest neighbours and their
  // input-space ranks: point 0 (at 127) → point 6, rank 6, penalty 5; point 1 (at 1) → point 7 (at 0),
  // rank 7, penalty 6; point 7 (at 0) → point 1, rank 6, penalty 5; every other point keeps its input
  // nearest neighbour. T = 1 − 16 · 2/(8·1·(16−3−1)) = 2/3.
  const std::vector<double> e{127, 1, 3, 7, 15, 31, 63, 0};
  BOOST_TEST(ev::trustworthiness(x, 1, e, 1, 1) == 2.0 / 3.0, boost::test_tools::tolerance(1e-15));
}

BOOST_AUTO_TEST_CASE(knn_label_agreement_hand_values) {
  const std::vector<double> e{0, 1, 10, 11};
  BOOST_TEST(ev::knn_label_agreement(e, 1, std::vector<int>{0, 0, 1, 1}, 1) == 1.0);
  BOOST_TEST(ev::knn_label_agreement(e, 1, std::vector<int>{0, 1, 0, 1}, 1) == 0.0);
  // k = 2: each point's neighbours are its partner and the nearer point of the other pair.
  BOOST_TEST(ev::knn_label_agreement(e, 1, std::vector<int>{0, 0, 1, 1}, 2) == 0.5);
}

BOOST_AUTO_TEST_CASE(bad_input_is_rejected) {
  std::vector<int> labels;
  const auto x = cluster_data(labels);
  ev::tsne_options opt;
  opt.perplexity = 240;  // N = 240
  BOOST_CHECK_THROW((void)ev::tsne(x, dim, opt), mammocl::config_error);
  opt.perplexity = 0;
  BOOST_CHECK_THROW((void)ev::tsne(x, dim, opt), mammocl::config_error);
  opt = {};
  opt.max_iter = 100;
  BOOST_CHECK_THROW((void)ev::tsne(x, dim, opt), mammocl::config_error);
  auto bad = x;
  bad[37] = std::numeric_limits<double>::quiet_NaN();
  try {
    (void)ev::tsne(bad, dim);
    BOOST_FAIL("NaN accepted");
  } catch (const mammocl::numeric_error& e) {
    BOOST_TEST(e.message() == "tsne features: value nan at row 1, column 17 is not finite");
  }
  BOOST_CHECK_THROW((void)ev::tsne(std::span<const double>(x).first(x.size() - 1), dim), mammocl::shape_error);
  BOOST_CHECK_THROW((void)ev::tsne(x, 0), mammocl::shape_error);
  const std::vector<double> same(40, 1.0);
  opt = {};
  opt.perplexity = 5;
  BOOST_CHECK_THROW((void)ev::tsne(same, 2, opt), mammocl::numeric_error);
  BOOST_CHECK_THROW((void)ev::trustworthiness(x, dim, x, dim, 120), mammocl::shape_error);
  BOOST_CHECK_THROW((void)ev::trustworthiness(x, dim, std::span<const double>(x).first(40), 2), mammocl::shape_error);
  BOOST_CHECK_THROW((void)ev::knn_label_agreement(x, dim, std::vector<int>(3, 0)), mammocl::shape_error);
}

BOOST_AUTO_TEST_CASE(trustworthiness_matches_scikit_learn) {
  // X[i][j] = sin(0.7i + 1.3j) + cos(0.37ij + 0.1i), 50×6; E = X[:, :2] + 0.3 sin(1.7i + 2.9j).
  // Expected values: sklearn 1.2.1 sklearn.manifold.trustworthiness(X, E, n_neighbors=k)
  // (tests/tools/make_eval_invariance_golden.py).
  std::vector<double> x, e;
  for (int i = 0; i < 50; ++i) {
    for (int j = 0; j < 6; ++j) x.push_back(std::sin(0.7 * i + 1.3 * j) + std::cos(0.37 * i * j + 0.1 * i));
    for (int j = 0; j < 2; ++j) e.push_back(x[i * 6 + j] + 0.3 * std::sin(1.7 * i + 2.9 * j));
  }
  BOOST_TEST(ev::trustworthiness(x, 6, e, 2, 5) == 0.8083809523809524, boost::test_tools::tolerance(1e-12));
  BOOST_TEST(ev::trustworthiness(x, 6, e, 2, 12) == 0.8158201058201058, boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(kl_divergence_matches_scikit_learn) {
  // X[i][j] = 5·[j == i mod 4] + sin(1.3i + 0.7j²) + 0.5 cos(0.21ij), 200×10. scikit-learn 1.2.1
  // TSNE(method='exact', random_state=0) (PCA init, defaults): kl_divergence_ 0.06079859701992949,
  // n_iter_ 999, trustworthiness(k=5) 0.9975052083333333 (tests/tools/make_eval_invariance_golden.py).
  // The PCA (randomised vs exact) and float32 casts differ, so the KL agrees to within 1%.
  std::vector<double> x;
  for (int i = 0; i < 200; ++i)
    for (int j = 0; j < 10; ++j)
      x.push_back((j == i % 4 ? 5.0 : 0.0) + std::sin(1.3 * i + 0.7 * j * j) + 0.5 * std::cos(0.21 * i * j));
  const auto r = ev::tsne(x, 10);
  BOOST_TEST(r.kl_divergence == 0.06079859701992949, boost::test_tools::tolerance(0.01));
  BOOST_TEST(r.iterations == 999u);
  BOOST_TEST(ev::trustworthiness(x, 10, r.embedding, 2, 5) >= 0.9975052083333333 - 0.005);
}

#pragma once
/// Domain-invariance measures of METHOD.md §6.4, host-side:
///  * `per_domain_auc`: AUC on the domain-A rows and the domain-B rows and their gap, with the AUC
///    supplied as a callable (e.g. `eval::binary_auc`);
///  * `paired_prediction_consistency`, `mean_paired_cosine`: agreement of the two versions of each image;
///  * `gaussian_mmd2`, `median_heuristic_sigma2`, `mmd_permutation_test`: (class-conditional) MMD² with a
///    Gaussian kernel and a permutation p-value (§4.3(b), §6.4.3); `multi_kernel_mmd_reference` is the
///    jindongwang/DAN five-kernel form, kept only to reproduce its test vector;
///  * `proxy_a_distance`: error of an L2 logistic-regression domain classifier split by image (§6.4.4).
///
/// Matrices are row-major `std::span<const double>` of N rows of `dim` values; labels, domains
/// (0 = A, 1 = B) and image ids are `std::span<const int>` of N entries.
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <numeric>
#include <span>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/eval/matrix_checks.hpp"

namespace mammocl::eval {

namespace detail {

/// Checks that `domains` has n entries, each 0 or 1.
inline void check_domains(std::span<const int> domains, std::size_t n, const char* what) {
  MAMMOCL_EXPECTS(domains.size() == n, what, ": ", domains.size(), " domain entries for ", n, " rows");
  for (std::size_t i = 0; i < n; ++i)
    MAMMOCL_EXPECTS(domains[i] == 0 || domains[i] == 1, what, ": domain ", domains[i], " at row ", i,
                    " is neither 0 (A) nor 1 (B)");
}

inline double squared_distance(const double* a, const double* b, std::size_t dim) {
  double s = 0.0;
  for (std::size_t j = 0; j < dim; ++j) s += (a[j] - b[j]) * (a[j] - b[j]);
  return s;
}

/// MMD² from a kernel matrix `k` (n×n, row-major) of rows assigned to A (0) or B (1) by `dom`.
/// Unbiased: off-diagonal means; biased: full-block means. Both domains need >= 2 rows (unbiased) or
/// >= 1 (biased); the caller guarantees it.
inline double mmd2_from_kernel(const std::vector<double>& k, std::size_t n, const int* dom, bool unbiased) {
  double s_aa = 0.0, s_bb = 0.0, s_ab = 0.0, d_a = 0.0, d_b = 0.0, m = 0.0, q = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double* row = k.data() + i * n;
    double ra = 0.0, rb = 0.0;
    for (std::size_t j = 0; j < i; ++j) (dom[j] == 0 ? ra : rb) += row[j];
    if (dom[i] == 0) {
      s_aa += 2.0 * ra;
      s_ab += rb;
      d_a += row[i];
      m += 1.0;
    } else {
      s_bb += 2.0 * rb;
      s_ab += ra;
      d_b += row[i];
      q += 1.0;
    }
  }
  if (unbiased) return s_aa / (m * (m - 1.0)) + s_bb / (q * (q - 1.0)) - 2.0 * s_ab / (m * q);
  return (s_aa + d_a) / (m * m) + (s_bb + d_b) / (q * q) - 2.0 * s_ab / (m * q);
}

}  // namespace detail

// ---------------------------------------------------------------------------------------------------
// Per-domain AUC

/// Any AUC: scores (N rows of `columns` values, row-major) and labels of N samples → AUC.
using auc_callable = std::function<double(std::span<const double> scores, std::span<const int> labels)>;

/// AUC on each domain and their absolute difference.
struct domain_auc_result {
  double auc_a = 0.0, auc_b = 0.0;
  double gap = 0.0;  ///< |auc_a − auc_b|
  std::size_t n_a = 0, n_b = 0;
};

/// Splits the rows by domain, keeping their order, and applies `auc` to each part.
/// Pre: columns >= 1; scores.size() == N·columns; labels and domains of N entries, domains 0/1;
///      both domains present; `auc` returns a finite value (its own errors propagate).
/// Throws: shape_error for mismatched sizes or a missing domain, numeric_error for a non-finite AUC.
[[nodiscard]] inline domain_auc_result per_domain_auc(std::span<const double> scores, std::size_t columns,
                                                      std::span<const int> labels, std::span<const int> domains,
                                                      const auc_callable& auc) {
  MAMMOCL_EXPECTS(columns >= 1, "per_domain_auc: score columns must be positive, got 0");
  MAMMOCL_EXPECTS(scores.size() == labels.size() * columns, "per_domain_auc: ", scores.size(),
                  " scores for ", labels.size(), " labels of ", columns, " column(s)");
  detail::check_domains(domains, labels.size(), "per_domain_auc");
  MAMMOCL_CHECK(static_cast<bool>(auc), config_error, "per_domain_auc: no AUC function given");
  std::vector<double> s[2];
  std::vector<int> l[2];
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const int d = domains[i];
    s[d].insert(s[d].end(), scores.begin() + static_cast<std::ptrdiff_t>(i * columns),
                scores.begin() + static_cast<std::ptrdiff_t>((i + 1) * columns));
    l[d].push_back(labels[i]);
  }
  MAMMOCL_EXPECTS(!l[0].empty() && !l[1].empty(), "per_domain_auc: domain ", l[0].empty() ? "A" : "B",
                  " has no samples");
  domain_auc_result r;
  r.n_a = l[0].size();
  r.n_b = l[1].size();
  r.auc_a = auc(s[0], l[0]);
  r.auc_b = auc(s[1], l[1]);
  MAMMOCL_CHECK(std::isfinite(r.auc_a) && std::isfinite(r.auc_b), numeric_error,
                "per_domain_auc: the AUC function returned a non-finite value (A: ", r.auc_a, ", B: ", r.auc_b, ")");
  r.gap = std::abs(r.auc_a - r.auc_b);
  return r;
}

// ---------------------------------------------------------------------------------------------------
// Paired consistency

/// Agreement between the class-probability rows of the two versions of each image.
struct paired_consistency {
  double mean_abs_difference = 0.0;  ///< mean over images and classes of |p(s_A) − p(s_B)|
  double argmax_agreement = 0.0;     ///< fraction of images whose two versions have the same argmax
  std::size_t pairs = 0;
};

/// Row i of `prob_a` and row i of `prob_b` are the two versions of image i (N×classes each). The argmax
/// takes the first maximum (as numpy). Probabilities are not required to sum to 1.
/// Pre: classes >= 1; equal sizes, whole rows, N >= 1; values finite and in [0, 1].
/// Throws: shape_error for sizes, numeric_error for non-finite or out-of-range values.
[[nodiscard]] inline paired_consistency paired_prediction_consistency(std::span<const double> prob_a,
                                                                      std::span<const double> prob_b,
                                                                      std::size_t classes) {
  const std::size_t n = detail::checked_rows(prob_a, classes, 1, "paired_prediction_consistency prob_a");
  const std::size_t nb = detail::checked_rows(prob_b, classes, 1, "paired_prediction_consistency prob_b");
  MAMMOCL_EXPECTS(n == nb, "paired_prediction_consistency: prob_a has ", n, " rows but prob_b has ", nb);
  for (std::size_t k = 0; k < prob_a.size(); ++k)
    MAMMOCL_CHECK(prob_a[k] >= 0.0 && prob_a[k] <= 1.0 && prob_b[k] >= 0.0 && prob_b[k] <= 1.0, numeric_error,
                  "paired_prediction_consistency: probability outside [0, 1] at row ", k / classes, ", class ",
                  k % classes, " (A: ", prob_a[k], ", B: ", prob_b[k], ")");
  paired_consistency r;
  r.pairs = n;
  double diff = 0.0;
  std::size_t agree = 0;
  for (std::size_t i = 0; i < n; ++i) {
    std::size_t am = 0, bm = 0;
    for (std::size_t c = 0; c < classes; ++c) {
      const double a = prob_a[i * classes + c], b = prob_b[i * classes + c];
      diff += std::abs(a - b);
      if (a > prob_a[i * classes + am]) am = c;
      if (b > prob_b[i * classes + bm]) bm = c;
    }
    agree += am == bm ? 1 : 0;
  }
  r.mean_abs_difference = diff / static_cast<double>(n * classes);
  r.argmax_agreement = static_cast<double>(agree) / static_cast<double>(n);
  return r;
}

/// Mean over i of cos(feat_a row i, feat_b row i).
/// Pre: equal sizes, whole rows of dim > 0, N >= 1, finite values, no all-zero row.
/// Throws: shape_error for sizes, numeric_error for non-finite values or a zero row.
[[nodiscard]] inline double mean_paired_cosine(std::span<const double> feat_a, std::span<const double> feat_b,
                                               std::size_t dim) {
  const std::size_t n = detail::checked_rows(feat_a, dim, 1, "mean_paired_cosine feat_a");
  const std::size_t nb = detail::checked_rows(feat_b, dim, 1, "mean_paired_cosine feat_b");
  MAMMOCL_EXPECTS(n == nb, "mean_paired_cosine: feat_a has ", n, " rows but feat_b has ", nb);
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    double ab = 0.0, aa = 0.0, bb = 0.0;
    for (std::size_t j = 0; j < dim; ++j) {
      const double a = feat_a[i * dim + j], b = feat_b[i * dim + j];
      ab += a * b;
      aa += a * a;
      bb += b * b;
    }
    MAMMOCL_CHECK(aa > 0.0 && bb > 0.0, numeric_error, "mean_paired_cosine: row ", i, " of feat_",
                  aa > 0.0 ? "b" : "a", " is all zeros; its cosine is undefined");
    total += ab / (std::sqrt(aa) * std::sqrt(bb));
  }
  return total / static_cast<double>(n);
}

// ---------------------------------------------------------------------------------------------------
// MMD

enum class mmd_estimator {
  unbiased,  ///< MMD²_u: off-diagonal within-domain means (can be negative)
  biased,    ///< MMD²_b: V-statistic, full-block means (>= 0)
};

/// Each row divided by its Euclidean norm.
/// Pre: whole rows of dim > 0, finite values, no all-zero row. Throws: shape_error, numeric_error.
[[nodiscard]] inline std::vector<double> l2_normalised(std::span<const double> features, std::size_t dim) {
  const std::size_t n = detail::checked_rows(features, dim, 1, "l2_normalised features");
  std::vector<double> out(features.begin(), features.end());
  for (std::size_t i = 0; i < n; ++i) {
    double s = 0.0;
    for (std::size_t j = 0; j < dim; ++j) s += out[i * dim + j] * out[i * dim + j];
    MAMMOCL_CHECK(s > 0.0, numeric_error, "l2_normalised: row ", i, " is all zeros");
    const double inv = 1.0 / std::sqrt(s);
    for (std::size_t j = 0; j < dim; ++j) out[i * dim + j] *= inv;
  }
  return out;
}

/// Median of the squared Euclidean distances over all row pairs i < j (numpy's median: the mean of
/// the two middle values for an even count).
/// Pre: >= 2 rows, finite values; the median is positive. Throws: shape_error, numeric_error.
[[nodiscard]] inline double median_heuristic_sigma2(std::span<const double> features, std::size_t dim) {
  const std::size_t n = detail::checked_rows(features, dim, 2, "median_heuristic_sigma2 features");
  std::vector<double> d;
  d.reserve(n * (n - 1) / 2);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j)
      d.push_back(detail::squared_distance(features.data() + i * dim, features.data() + j * dim, dim));
  const std::size_t mid = d.size() / 2;
  std::nth_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid), d.end());
  double med = d[mid];
  if (d.size() % 2 == 0) med = 0.5 * (med + *std::max_element(d.begin(), d.begin() + static_cast<std::ptrdiff_t>(mid)));
  MAMMOCL_CHECK(med > 0.0, numeric_error,
                "median_heuristic_sigma2: the median pairwise squared distance is 0 (mostly duplicate rows); "
                "give sigma2 explicitly");
  return med;
}

/// MMD² between the rows of x (m×dim) and y (n×dim) with k(u,v) = exp(−‖u−v‖²/(2·sigma2)).
/// Pre: sigma2 > 0 and finite; finite values; m, n >= 2 (unbiased) or >= 1 (biased).
/// Throws: shape_error for sizes, config_error for sigma2, numeric_error for non-finite values.
[[nodiscard]] inline double gaussian_mmd2(std::span<const double> x, std::span<const double> y, std::size_t dim,
                                          double sigma2, mmd_estimator estimator = mmd_estimator::unbiased) {
  const std::size_t min_rows = estimator == mmd_estimator::unbiased ? 2 : 1;
  const std::size_t m = detail::checked_rows(x, dim, min_rows, "gaussian_mmd2 x");
  const std::size_t n = detail::checked_rows(y, dim, min_rows, "gaussian_mmd2 y");
  MAMMOCL_CHECK(sigma2 > 0.0 && std::isfinite(sigma2), config_error, "gaussian_mmd2: sigma2 must be positive and finite, got ",
                sigma2);
  const std::size_t t = m + n;
  std::vector<double> k(t * t);
  std::vector<int> dom(t, 0);
  auto row = [&](std::size_t i) { return i < m ? x.data() + i * dim : y.data() + (i - m) * dim; };
  for (std::size_t i = 0; i < t; ++i) {
    dom[i] = i < m ? 0 : 1;
    for (std::size_t j = 0; j < t; ++j) k[i * t + j] = std::exp(-detail::squared_distance(row(i), row(j), dim) / (2.0 * sigma2));
  }
  return detail::mmd2_from_kernel(k, t, dom.data(), estimator == mmd_estimator::unbiased);
}

/// The multi-kernel MMD of jindongwang/transferlearning `mmd.py` (DAN): bandwidth = Σ‖z_i−z_j‖²/(N²−N)
/// over the concatenated rows, divided by kernel_mul^(kernel_num/2); kernel Σ_q exp(−‖·‖²/(bw·mul^q));
/// result mean(XX + YY − XY − YX). Kept only to reproduce that code's values (METHOD.md §7.13).
/// Pre: x and y have the same number of rows (>= 1), finite; kernel_mul > 0; kernel_num >= 1; not all
///      rows equal. Throws: shape_error, config_error, numeric_error.
[[nodiscard]] inline double multi_kernel_mmd_reference(std::span<const double> x, std::span<const double> y,
                                                       std::size_t dim, double kernel_mul = 2.0, int kernel_num = 5) {
  const std::size_t b = detail::checked_rows(x, dim, 1, "multi_kernel_mmd_reference x");
  const std::size_t bn = detail::checked_rows(y, dim, 1, "multi_kernel_mmd_reference y");
  MAMMOCL_EXPECTS(b == bn, "multi_kernel_mmd_reference: the reference slices by the source size, so x and y need "
                  "the same number of rows; got ", b, " and ", bn);
  MAMMOCL_CHECK(kernel_mul > 0.0 && kernel_num >= 1, config_error,
                "multi_kernel_mmd_reference: kernel_mul must be positive and kernel_num >= 1");
  const std::size_t t = 2 * b;
  auto row = [&](std::size_t i) { return i < b ? x.data() + i * dim : y.data() + (i - b) * dim; };
  std::vector<double> d(t * t);
  double sum = 0.0;
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < t; ++j) sum += d[i * t + j] = detail::squared_distance(row(i), row(j), dim);
  double bw = sum / static_cast<double>(t * t - t);
  MAMMOCL_CHECK(bw > 0.0, numeric_error, "multi_kernel_mmd_reference: all rows are equal, bandwidth 0");
  bw /= std::pow(kernel_mul, kernel_num / 2);
  double total = 0.0;
  for (std::size_t i = 0; i < t; ++i)
    for (std::size_t j = 0; j < t; ++j) {
      double kv = 0.0;
      for (int q = 0; q < kernel_num; ++q) kv += std::exp(-d[i * t + j] / (bw * std::pow(kernel_mul, q)));
      total += ((i < b) == (j < b)) ? kv : -kv;
    }
  return total / static_cast<double>(b * b);
}

/// Settings of `mmd_permutation_test`; the defaults are METHOD.md §6.4.3's.
struct mmd_options {
  /// Kernel width σ²; <= 0 selects the median heuristic on all (normalised) rows given.
  double sigma2 = 0.0;
  bool l2_normalise = true;
  mmd_estimator estimator = mmd_estimator::unbiased;
  std::size_t permutations = 1000;
  std::uint64_t seed = 0;
};

/// One class's term.
struct mmd_class_term {
  int label = 0;
  std::size_t n_a = 0, n_b = 0;
  double mmd2 = 0.0;
  /// This class's own permutation p-value, (1 + #{permuted term ≥ observed term}) / (1 + permutations),
  /// from the same within-class shuffles as the p-value of the sum.
  double p_value = 1.0;
};

/// Result of a (class-conditional) MMD permutation test.
struct mmd_test_result {
  double mmd2 = 0.0;     ///< Σ over the used classes of their MMD²
  double p_value = 1.0;  ///< (1 + #{permuted ≥ observed}) / (1 + permutations)
  double sigma2 = 0.0;   ///< the kernel width used
  std::size_t permutations = 0;
  std::vector<mmd_class_term> classes;  ///< used classes, by increasing label
  std::vector<int> skipped_classes;     ///< classes with fewer than 2 samples (1 for biased) in a domain
};

/// Class-conditional MMD² Σ_c MMD²(A-rows of class c, B-rows of class c) with a Gaussian kernel and its
/// permutation p-value, domain labels shuffled within each class (seeded, independent of the thread
/// count). For the overall (unconditional) MMD, give every row the same label.
/// Pre: features N×dim finite; labels, domains of N entries, domains 0/1; at least one class with
///      >= 2 rows (>= 1 for biased) in each domain; permutations >= 1.
/// Throws: shape_error for sizes and too few samples, config_error for options, numeric_error for
///         non-finite values, zero rows (with l2_normalise) or a zero median distance.
[[nodiscard]] inline mmd_test_result mmd_permutation_test(std::span<const double> features, std::size_t dim,
                                                          std::span<const int> labels, std::span<const int> domains,
                                                          const mmd_options& opt = {}) {
  const std::size_t n = detail::checked_rows(features, dim, 2, "mmd_permutation_test features");
  MAMMOCL_EXPECTS(labels.size() == n, "mmd_permutation_test: ", labels.size(), " labels for ", n, " rows");
  detail::check_domains(domains, n, "mmd_permutation_test");
  MAMMOCL_CHECK(opt.permutations >= 1, config_error, "mmd_permutation_test: permutations must be at least 1");
  MAMMOCL_CHECK(std::isfinite(opt.sigma2), config_error, "mmd_permutation_test: sigma2 must be finite, got ", opt.sigma2);
  const std::vector<double> z = opt.l2_normalise ? l2_normalised(features, dim)
                                                 : std::vector<double>(features.begin(), features.end());
  mmd_test_result res;
  res.sigma2 = opt.sigma2 > 0.0 ? opt.sigma2 : median_heuristic_sigma2(z, dim);
  res.permutations = opt.permutations;
  const bool unbiased = opt.estimator == mmd_estimator::unbiased;
  const std::size_t need = unbiased ? 2 : 1;

  std::map<int, std::vector<std::size_t>> by_class;
  for (std::size_t i = 0; i < n; ++i) by_class[labels[i]].push_back(i);
  struct block {
    std::vector<double> k;
    std::vector<int> dom;
  };
  std::vector<block> blocks;
  for (const auto& entry : by_class) {
    // Plain references, not a structured binding: clang 14 cannot capture one in the OpenMP region below.
    const int label = entry.first;
    const std::vector<std::size_t>& rows = entry.second;
    std::size_t na = 0;
    for (std::size_t i : rows) na += domains[i] == 0 ? 1 : 0;
    const std::size_t nb = rows.size() - na;
    if (na < need || nb < need) {
      res.skipped_classes.push_back(label);
      continue;
    }
    const std::size_t m = rows.size();
    block bl;
    bl.k.resize(m * m);
    bl.dom.resize(m);
    const auto mi = static_cast<std::ptrdiff_t>(m);
#pragma omp parallel for schedule(static)
    for (std::ptrdiff_t a = 0; a < mi; ++a)
      for (std::size_t b = 0; b < m; ++b)
        bl.k[static_cast<std::size_t>(a) * m + b] =
            std::exp(-detail::squared_distance(z.data() + rows[static_cast<std::size_t>(a)] * dim, z.data() + rows[b] * dim, dim) /
                     (2.0 * res.sigma2));
    for (std::size_t a = 0; a < m; ++a) bl.dom[a] = domains[rows[a]];
    const double v = detail::mmd2_from_kernel(bl.k, m, bl.dom.data(), unbiased);
    res.classes.push_back({label, na, nb, v});
    res.mmd2 += v;
    blocks.push_back(std::move(bl));
  }
  MAMMOCL_EXPECTS(!blocks.empty(), "mmd_permutation_test: no class has at least ", need,
                  " samples in each domain; nothing to compare");

  rng master(opt.seed);
  std::vector<std::uint64_t> seeds(opt.permutations);
  for (auto& s : seeds) s = master.next();
  // exceed[0]: the sum; exceed[1 + b]: block b. Counts are integers, so the reduction is exact.
  const std::size_t nblocks = blocks.size();
  std::vector<std::size_t> exceed(nblocks + 1, 0);
  const auto np = static_cast<std::ptrdiff_t>(opt.permutations);
#pragma omp parallel
  {
    std::vector<std::size_t> local(nblocks + 1, 0);
#pragma omp for schedule(dynamic, 4)
    for (std::ptrdiff_t p = 0; p < np; ++p) {
      rng r(seeds[static_cast<std::size_t>(p)]);
      double stat = 0.0;
      for (std::size_t b = 0; b < nblocks; ++b) {
        const block& bl = blocks[b];
        std::vector<int> dom = bl.dom;
        for (std::size_t i = dom.size() - 1; i > 0; --i) std::swap(dom[i], dom[r.below(i + 1)]);
        const double term = detail::mmd2_from_kernel(bl.k, dom.size(), dom.data(), unbiased);
        local[1 + b] += term >= res.classes[b].mmd2 ? 1 : 0;
        stat += term;
      }
      local[0] += stat >= res.mmd2 ? 1 : 0;
    }
#pragma omp critical
    for (std::size_t b = 0; b <= nblocks; ++b) exceed[b] += local[b];
  }
  const double denom = static_cast<double>(1 + opt.permutations);
  res.p_value = static_cast<double>(1 + exceed[0]) / denom;
  for (std::size_t b = 0; b < nblocks; ++b) res.classes[b].p_value = static_cast<double>(1 + exceed[1 + b]) / denom;
  return res;
}

// ---------------------------------------------------------------------------------------------------
// Proxy A-distance

/// Settings of `proxy_a_distance`; the defaults follow METHOD.md §6.4.4 and its reference code.
struct pad_options {
  /// Inverse regularisation strengths tried; the one with the lowest held-out error is kept.
  std::vector<double> c_grid = {1e-10, 1e-9, 1e-8, 1e-7, 1e-6, 1e-5, 1e-4, 1e-3,
                                1e-2,  1e-1, 1.0,  1e1,  1e2,  1e3,  1e4,  1e5};
  /// Class weights n/(2·n_domain) on the training half (scikit-learn's class_weight='balanced').
  bool balanced = true;
  /// Seed of the split of the image ids into the training and the held-out half.
  std::uint64_t seed = 0;
  /// Newton iterations per C.
  int max_newton_iterations = 100;
};

struct pad_result {
  double pad = 0.0;    ///< 2(1 − 2ε)
  double error = 0.0;  ///< ε: the lowest held-out error over the grid, replaced by 1 − ε if above 0.5
  double best_c = 0.0;
  std::vector<double> grid_errors;  ///< held-out error for each C of the grid
  std::size_t n_train = 0, n_test = 0;
};

namespace detail {
/// L2-regularised logistic regression (intercept unpenalised), minimising
/// ½‖w‖² + C Σ_i s_i log(1 + exp(−y_i (w·x_i + b))) with y_i = ±1, by Newton's method with Armijo
/// backtracking. x: n×dim, y in {0,1}, s: sample weights. `wb` (dim + 1, intercept last) is the start
/// point and receives the solution.
inline void fit_logistic(const Eigen::MatrixXd& x, const std::vector<int>& y, const std::vector<double>& s, double c,
                         int max_iter, Eigen::VectorXd& wb) {
  const Eigen::Index n = x.rows(), d = x.cols();
  Eigen::MatrixXd xt(n, d + 1);
  xt.leftCols(d) = x;
  xt.col(d).setOnes();
  auto objective = [&](const Eigen::VectorXd& v) {
    const Eigen::VectorXd f = xt * v;
    double loss = 0.0;
    for (Eigen::Index i = 0; i < n; ++i) {
      const double m = (y[static_cast<std::size_t>(i)] == 1 ? 1.0 : -1.0) * f(i);
      loss += s[static_cast<std::size_t>(i)] * (m > 0 ? std::log1p(std::exp(-m)) : -m + std::log1p(std::exp(m)));
    }
    return 0.5 * v.head(d).squaredNorm() + c * loss;
  };
  double obj = objective(wb);
  for (int it = 0; it < max_iter; ++it) {
    const Eigen::VectorXd f = xt * wb;
    Eigen::VectorXd r(n), h(n);
    for (Eigen::Index i = 0; i < n; ++i) {
      const double p = 1.0 / (1.0 + std::exp(-f(i)));
      const double si = s[static_cast<std::size_t>(i)];
      r(i) = c * si * (p - y[static_cast<std::size_t>(i)]);
      h(i) = c * si * p * (1.0 - p);
    }
    Eigen::VectorXd g = xt.transpose() * r;
    g.head(d) += wb.head(d);
    Eigen::MatrixXd hess = xt.transpose() * h.asDiagonal() * xt;
    hess.diagonal().head(d).array() += 1.0;
    hess(d, d) += 1e-10;
    const Eigen::VectorXd step = hess.ldlt().solve(g);
    if (!step.allFinite()) break;
    double t = 1.0, next = obj;
    Eigen::VectorXd cand;
    for (int ls = 0; ls < 50; ++ls, t *= 0.5) {
      cand = wb - t * step;
      next = objective(cand);
      if (next <= obj - 1e-4 * t * g.dot(step)) break;
    }
    if (!(next < obj)) break;
    wb = cand;
    const double decrease = obj - next;
    obj = next;
    if (decrease <= 1e-12 * std::max(1.0, std::abs(obj)) || (t * step).lpNorm<Eigen::Infinity>() < 1e-10) break;
  }
}
}  // namespace detail

/// Proxy A-distance of the A and B rows of `features`: the image ids are shuffled (seeded) and split
/// in half, so both versions of an image fall in the same half; a balanced L2 logistic regression is
/// trained on one half for each C of the grid and its error measured on the other; ε is the lowest
/// error, replaced by 1 − ε above 0.5; PAD = 2(1 − 2ε). When dim exceeds the training rows, the fit
/// runs exactly in the span of the centred training rows (the representer theorem), which keeps
/// 1024-d features cheap.
/// Pre: features N×dim finite; domains (0/1) and image_ids of N entries; >= 4 distinct image ids; each
///      half contains both domains; a non-empty grid of positive C.
/// Throws: shape_error for sizes or too few samples, config_error for the grid, numeric_error for
///         non-finite values.
[[nodiscard]] inline pad_result proxy_a_distance(std::span<const double> features, std::size_t dim,
                                                 std::span<const int> domains, std::span<const int> image_ids,
                                                 const pad_options& opt = {}) {
  const std::size_t n = detail::checked_rows(features, dim, 4, "proxy_a_distance features");
  detail::check_domains(domains, n, "proxy_a_distance");
  MAMMOCL_EXPECTS(image_ids.size() == n, "proxy_a_distance: ", image_ids.size(), " image ids for ", n, " rows");
  MAMMOCL_CHECK(!opt.c_grid.empty(), config_error, "proxy_a_distance: the C grid is empty");
  for (double c : opt.c_grid)
    MAMMOCL_CHECK(c > 0.0 && std::isfinite(c), config_error, "proxy_a_distance: C must be positive and finite, got ", c);
  std::vector<int> ids(image_ids.begin(), image_ids.end());
  std::sort(ids.begin(), ids.end());
  ids.erase(std::unique(ids.begin(), ids.end()), ids.end());
  MAMMOCL_EXPECTS(ids.size() >= 4, "proxy_a_distance: needs at least 4 distinct image ids, got ", ids.size());
  rng r(opt.seed);
  for (std::size_t i = ids.size() - 1; i > 0; --i) std::swap(ids[i], ids[r.below(i + 1)]);
  std::map<int, int> half;
  for (std::size_t i = 0; i < ids.size(); ++i) half[ids[i]] = i < ids.size() / 2 ? 0 : 1;

  std::vector<std::size_t> rows[2];
  std::size_t count[2][2] = {{0, 0}, {0, 0}};
  for (std::size_t i = 0; i < n; ++i) {
    const int h = half[image_ids[i]];
    rows[h].push_back(i);
    ++count[h][domains[i]];
  }
  for (int h = 0; h < 2; ++h)
    MAMMOCL_EXPECTS(count[h][0] > 0 && count[h][1] > 0, "proxy_a_distance: the ", h == 0 ? "training" : "held-out",
                    " half has ", count[h][0], " A and ", count[h][1], " B rows; both domains are needed in each half");

  auto gather = [&](const std::vector<std::size_t>& rs) {
    Eigen::MatrixXd m(static_cast<Eigen::Index>(rs.size()), static_cast<Eigen::Index>(dim));
    for (std::size_t i = 0; i < rs.size(); ++i)
      for (std::size_t j = 0; j < dim; ++j)
        m(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) = features[rs[i] * dim + j];
    return m;
  };
  Eigen::MatrixXd xtr = gather(rows[0]), xte = gather(rows[1]);
  // w lies in the span of the training rows; with the intercept free, the span of the centred rows
  // plus the mean direction, i.e. the row space of xtr itself. Reduce when it is smaller than dim.
  if (xtr.rows() < xtr.cols()) {
    Eigen::BDCSVD<Eigen::MatrixXd> svd(xtr, Eigen::ComputeThinV);
    const Eigen::VectorXd sv = svd.singularValues();
    Eigen::Index rank = 0;
    while (rank < sv.size() && sv(rank) > sv(0) * 1e-12) ++rank;
    const Eigen::MatrixXd v = svd.matrixV().leftCols(std::max<Eigen::Index>(rank, 1));
    xtr = xtr * v;
    xte = xte * v;
  }
  std::vector<int> ytr, yte;
  for (std::size_t i : rows[0]) ytr.push_back(domains[i]);
  for (std::size_t i : rows[1]) yte.push_back(domains[i]);
  std::vector<double> s(ytr.size(), 1.0);
  if (opt.balanced)
    for (std::size_t i = 0; i < ytr.size(); ++i)
      s[i] = static_cast<double>(ytr.size()) / (2.0 * static_cast<double>(count[0][ytr[i]]));

  pad_result res;
  res.n_train = ytr.size();
  res.n_test = yte.size();
  std::vector<std::size_t> order(opt.c_grid.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return opt.c_grid[a] < opt.c_grid[b]; });
  res.grid_errors.assign(opt.c_grid.size(), 0.0);
  Eigen::VectorXd wb = Eigen::VectorXd::Zero(xtr.cols() + 1);
  double best = 2.0;
  for (std::size_t gi : order) {  // increasing C, each fit warm-started from the previous one
    detail::fit_logistic(xtr, ytr, s, opt.c_grid[gi], opt.max_newton_iterations, wb);
    const Eigen::VectorXd f = xte * wb.head(xtr.cols()) + Eigen::VectorXd::Constant(xte.rows(), wb(xtr.cols()));
    std::size_t wrong = 0;
    for (Eigen::Index i = 0; i < f.size(); ++i) wrong += (f(i) > 0.0 ? 1 : 0) != yte[static_cast<std::size_t>(i)] ? 1 : 0;
    const double err = static_cast<double>(wrong) / static_cast<double>(yte.size());
    res.grid_errors[gi] = err;
    if (err < best || (err == best && opt.c_grid[gi] < res.best_c)) {
      best = err;
      res.best_c = opt.c_grid[gi];
    }
  }
  res.error = best > 0.5 ? 1.0 - best : best;
  res.pad = 2.0 * (1.0 - 2.0 * res.error);
  return res;
}

}  // namespace mammocl::eval

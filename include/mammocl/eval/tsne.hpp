#pragma once
/// Exact t-SNE (van der Maaten & Hinton 2008) as scikit-learn >= 1.2 computes it with
/// `TSNE(method="exact")`, for visualising up to a few thousand feature vectors (METHOD.md §6.4.5),
/// plus the two embedding-quality measures the tests and reports use: scikit-learn's
/// `trustworthiness` and a k-nearest-neighbour label agreement.
///
/// Feature matrices are host-side, row-major `std::span<const double>` of N rows of `dim` values.
/// Memory is O(N²) doubles (about 200 MB at N = 5000); time is O(N²) per iteration.
#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <numeric>
#include <span>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/eval/matrix_checks.hpp"

namespace mammocl::eval {

/// How the embedding starts.
enum class tsne_init {
  pca,     ///< first principal components, scaled so the first column has std 1e-4 (scikit-learn)
  random,  ///< 1e-4 × standard normal from `tsne_options::seed`
};

/// t-SNE settings; the defaults are scikit-learn >= 1.2's.
struct tsne_options {
  std::size_t n_components = 2;
  double perplexity = 30.0;
  double early_exaggeration = 12.0;
  /// Step size; <= 0 selects scikit-learn's 'auto': max(N / early_exaggeration / 4, 50).
  double learning_rate = 0.0;
  /// Total iterations, the first 250 of them with early exaggeration (momentum 0.5), then momentum 0.8.
  std::size_t max_iter = 1000;
  /// Stop the second phase when the KL divergence (checked every 50 iterations) has not improved for
  /// this many iterations.
  std::size_t n_iter_without_progress = 300;
  /// Stop when the norm of the gain-scaled gradient falls to this value (checked every 50 iterations).
  double min_grad_norm = 1e-7;
  tsne_init init = tsne_init::pca;
  /// Seed of the random initialisation; the PCA initialisation is exact and does not use it.
  std::uint64_t seed = 0;
};

/// A t-SNE embedding: N rows of `n_components` values, row-major, in the input's row order.
struct tsne_result {
  std::vector<double> embedding;
  std::size_t n_components = 0;
  /// KL(P || Q) at the last convergence check (or the last iteration), as scikit-learn's `kl_divergence_`.
  double kl_divergence = 0.0;
  /// Index of the last iteration run (scikit-learn's `n_iter_`).
  std::size_t iterations = 0;
};

namespace detail {

inline constexpr double tsne_machine_epsilon = std::numeric_limits<double>::epsilon();

/// Squared Euclidean distances of all row pairs via the Gram matrix (as scikit-learn's
/// `euclidean_distances(squared=True)`): clamped at 0, exact 0 on the diagonal. Row-major N×N.
inline std::vector<double> squared_distances(std::span<const double> x, std::size_t n, std::size_t dim) {
  using mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const mat> xm(x.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(dim));
  std::vector<double> d(n * n);
  Eigen::Map<mat> dm(d.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(n));
  dm.noalias() = xm * xm.transpose();
  const Eigen::VectorXd sq = xm.rowwise().squaredNorm();
  const auto ni = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static)
  for (std::ptrdiff_t i = 0; i < ni; ++i)
    for (std::ptrdiff_t j = 0; j < ni; ++j) {
      double& v = d[static_cast<std::size_t>(i) * n + static_cast<std::size_t>(j)];
      v = i == j ? 0.0 : std::max(0.0, sq(i) + sq(j) - 2.0 * v);
    }
  return d;
}

/// Replaces row i of the squared distances `d` (N×N) by the conditional probabilities p_{j|i} whose
/// entropy matches log(perplexity), by scikit-learn's `_binary_search_perplexity` (100 steps,
/// tolerance 1e-5, p_{i|i} = 0).
inline void conditional_probabilities(std::vector<double>& d, std::size_t n, double perplexity) {
  const double desired_entropy = std::log(perplexity);
  const auto ni = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(dynamic, 16)
  for (std::ptrdiff_t ii = 0; ii < ni; ++ii) {
    const auto i = static_cast<std::size_t>(ii);
    double* row = d.data() + i * n;
    std::vector<double> p(n);
    double beta = 1.0, beta_min = -std::numeric_limits<double>::infinity(),
           beta_max = std::numeric_limits<double>::infinity();
    for (int step = 0; step < 100; ++step) {
      double sum_p = 0.0;
      for (std::size_t j = 0; j < n; ++j) {
        p[j] = j == i ? 0.0 : std::exp(-row[j] * beta);
        sum_p += p[j];
      }
      if (sum_p == 0.0) sum_p = 1e-8;
      double sum_dist_p = 0.0;
      for (std::size_t j = 0; j < n; ++j) {
        p[j] /= sum_p;
        sum_dist_p += row[j] * p[j];
      }
      const double entropy_diff = std::log(sum_p) + beta * sum_dist_p - desired_entropy;
      if (std::abs(entropy_diff) <= 1e-5) break;
      if (entropy_diff > 0.0) {
        beta_min = beta;
        beta = std::isinf(beta_max) ? beta * 2.0 : (beta + beta_max) / 2.0;
      } else {
        beta_max = beta;
        beta = std::isinf(beta_min) ? beta / 2.0 : (beta + beta_min) / 2.0;
      }
    }
    std::copy(p.begin(), p.end(), row);
  }
}

/// Joint probabilities P = (p_{j|i} + p_{i|j}) / Σ, floored at machine epsilon off the diagonal, 0 on
/// it (scikit-learn's `_joint_probabilities`). Works in place on the conditional matrix.
inline void symmetrise(std::vector<double>& p, std::size_t n) {
  double total = 0.0;
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = i + 1; j < n; ++j) {
      const double s = p[i * n + j] + p[j * n + i];
      p[i * n + j] = s;
      total += 2.0 * s;
    }
  total = std::max(total, tsne_machine_epsilon);
  for (std::size_t i = 0; i < n; ++i) {
    p[i * n + i] = 0.0;
    for (std::size_t j = i + 1; j < n; ++j) {
      const double v = std::max(p[i * n + j] / total, tsne_machine_epsilon);
      p[i * n + j] = v;
      p[j * n + i] = v;
    }
  }
}

/// PCA initialisation: the first `k` principal-component scores (exact eigen-decomposition; the sign
/// of each component makes its largest-magnitude score positive, as scikit-learn's `svd_flip`), then
/// scaled so the first column has population standard deviation 1e-4.
inline std::vector<double> pca_init(std::span<const double> x, std::size_t n, std::size_t dim, std::size_t k) {
  using mat = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const Eigen::Map<const mat> xm(x.data(), static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(dim));
  const Eigen::RowVectorXd mean = xm.colwise().mean();
  const Eigen::MatrixXd xc = xm.rowwise() - mean;
  Eigen::MatrixXd scores(static_cast<Eigen::Index>(n), static_cast<Eigen::Index>(k));
  if (dim <= n) {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(xc.transpose() * xc);
    const Eigen::Index d = es.eigenvalues().size();
    for (std::size_t c = 0; c < k; ++c)
      scores.col(static_cast<Eigen::Index>(c)) = xc * es.eigenvectors().col(d - 1 - static_cast<Eigen::Index>(c));
  } else {
    Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd> es(xc * xc.transpose());
    const Eigen::Index d = es.eigenvalues().size();
    for (std::size_t c = 0; c < k; ++c) {
      const Eigen::Index e = d - 1 - static_cast<Eigen::Index>(c);
      scores.col(static_cast<Eigen::Index>(c)) = es.eigenvectors().col(e) * std::sqrt(std::max(0.0, es.eigenvalues()(e)));
    }
  }
  for (Eigen::Index c = 0; c < scores.cols(); ++c) {
    Eigen::Index arg = 0;
    scores.col(c).cwiseAbs().maxCoeff(&arg);
    if (scores(arg, c) < 0) scores.col(c) *= -1.0;
  }
  const double mean0 = scores.col(0).mean();
  const double sd0 = std::sqrt((scores.col(0).array() - mean0).square().mean());
  MAMMOCL_CHECK(sd0 > 0.0 && std::isfinite(sd0), numeric_error,
                "tsne: the features have no variance along their first principal component; PCA "
                "initialisation is impossible (all rows equal?)");
  std::vector<double> y(n * k);
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t c = 0; c < k; ++c)
      y[i * k + c] = scores(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(c)) / sd0 * 1e-4;
  return y;
}

/// One row of `tsne_gradient`: Σ_j z_ij, Σ_j P_ij log(P_ij / z_ij) (when `WithError`), and the two
/// gradient sums Σ_j P_ij z_ij (y_i − y_j) and Σ_j z_ij² (y_i − y_j), z_ij the Student-t kernel.
/// `K` is the embedding dimension when known at compile time (0: use `k`).
template <std::size_t K, bool WithError>
inline void tsne_row(const double* pi, double p_scale, const double* y, std::size_t n, std::size_t k,
                     std::size_t i, double dof, double* a_out, double* b_out, double& z_out, double& kl_out) {
  const std::size_t kk = K == 0 ? k : K;
  const double exponent = (dof + 1.0) / -2.0;
  double z = 0.0, kl = 0.0;
  double a_acc[8] = {}, b_acc[8] = {};
  const double* yi = y + i * kk;
  for (std::size_t j = 0; j < n; ++j) {
    if (j == i) continue;
    const double* yj = y + j * kk;
    double diff[8];
    double d2 = 0.0;
    for (std::size_t c = 0; c < kk; ++c) {
      diff[c] = yi[c] - yj[c];
      d2 += diff[c] * diff[c];
    }
    const double num = dof == 1.0 ? 1.0 / (1.0 + d2) : std::pow(1.0 + d2 / dof, exponent);
    const double pij = pi[j] * p_scale;
    z += num;
    if constexpr (WithError) kl += pij * (std::log(std::max(pij, tsne_machine_epsilon)) - std::log(num));
    const double pn = pij * num, nn = num * num;
    for (std::size_t c = 0; c < kk; ++c) {
      a_acc[c] += pn * diff[c];
      b_acc[c] += nn * diff[c];
    }
  }
  z_out = z;
  kl_out = kl;
  for (std::size_t c = 0; c < kk; ++c) {
    a_out[c] = a_acc[c];
    b_out[c] = b_acc[c];
  }
}

/// KL(P||Q) (when `error` is non-null) and its gradient for a Student-t embedding, following
/// scikit-learn's `_kl_divergence` (Q_ij = z_ij / Σ z; the gradient is c Σ_j (P_ij − Q_ij) z_ij (y_i − y_j),
/// c = 2(dof+1)/dof, evaluated in one pass as c (Σ P z Δ − Σ z² Δ / Σ z)). Rows run in parallel, each
/// summed in a fixed order, so the result does not depend on the thread count.
inline void tsne_gradient(const std::vector<double>& p, double p_scale, const std::vector<double>& y,
                          std::size_t n, std::size_t k, double dof, std::vector<double>& grad,
                          double* error) {
  const double c = 2.0 * (dof + 1.0) / dof;
  std::vector<double> row_z(n, 0.0), row_kl(n, 0.0), b(n * k, 0.0);
  const auto ni = static_cast<std::ptrdiff_t>(n);
  const bool with_error = error != nullptr;
#pragma omp parallel for schedule(dynamic, 16)
  for (std::ptrdiff_t ii = 0; ii < ni; ++ii) {
    const auto i = static_cast<std::size_t>(ii);
    const double* pi = p.data() + i * n;
    double* a_out = grad.data() + i * k;
    double* b_out = b.data() + i * k;
    if (k == 2 && !with_error)
      tsne_row<2, false>(pi, p_scale, y.data(), n, k, i, dof, a_out, b_out, row_z[i], row_kl[i]);
    else if (k == 2)
      tsne_row<2, true>(pi, p_scale, y.data(), n, k, i, dof, a_out, b_out, row_z[i], row_kl[i]);
    else if (!with_error)
      tsne_row<0, false>(pi, p_scale, y.data(), n, k, i, dof, a_out, b_out, row_z[i], row_kl[i]);
    else
      tsne_row<0, true>(pi, p_scale, y.data(), n, k, i, dof, a_out, b_out, row_z[i], row_kl[i]);
  }
  double z = 0.0;
  for (double v : row_z) z += v;
  for (std::size_t t = 0; t < n * k; ++t) grad[t] = c * (grad[t] - b[t] / z);
  if (error != nullptr) {
    double kl = 0.0, p_sum = 0.0;
    for (double v : row_kl) kl += v;
    for (std::size_t t = 0; t < n * n; ++t) p_sum += p[t];
    *error = kl + p_scale * p_sum * std::log(z);
  }
}

/// scikit-learn's `_gradient_descent`: momentum, delta-bar-delta gains (+0.2 / ×0.8, floor
/// `min_gain` 0.01), convergence checked every 50 iterations. Runs iterations [it, n_iter) and
/// returns the last index run; `error_out` receives the last computed KL divergence.
inline std::size_t tsne_descent(const std::vector<double>& p, double p_scale, std::vector<double>& y,
                                std::size_t n, std::size_t k, double dof, std::size_t it, std::size_t n_iter,
                                double momentum, double learning_rate, std::size_t n_iter_without_progress,
                                double min_grad_norm, double& error_out) {
  const std::size_t m = n * k;
  std::vector<double> update(m, 0.0), gains(m, 1.0), grad(m, 0.0);
  double best_error = std::numeric_limits<double>::max();
  std::size_t best_iter = it, i = it;
  for (i = it; i < n_iter; ++i) {
    const bool check = (i + 1) % 50 == 0;
    double error = 0.0;
    tsne_gradient(p, p_scale, y, n, k, dof, grad, (check || i == n_iter - 1) ? &error : nullptr);
    if (check || i == n_iter - 1) error_out = error;
    double grad_norm2 = 0.0;
    for (std::size_t t = 0; t < m; ++t) {
      if (update[t] * grad[t] < 0.0)
        gains[t] += 0.2;
      else
        gains[t] *= 0.8;
      gains[t] = std::max(gains[t], 0.01);
      grad[t] *= gains[t];
      grad_norm2 += grad[t] * grad[t];
      update[t] = momentum * update[t] - learning_rate * grad[t];
      y[t] += update[t];
    }
    if (check) {
      if (error < best_error) {
        best_error = error;
        best_iter = i;
      } else if (i - best_iter > n_iter_without_progress) {
        break;
      }
      if (std::sqrt(grad_norm2) <= min_grad_norm) break;
    }
  }
  return std::min(i, n_iter - 1);
}

}  // namespace detail

/// Exact t-SNE of the N×dim row-major `features`.
///
/// Pre: dim > 0; N >= 2; all values finite; 0 < perplexity < N (scikit-learn's rule);
///      n_components in [1, 8]; max_iter >= 250; early_exaggeration > 0.
/// Post: an N×n_components embedding, deterministic for given input and options (independent of the
///       OpenMP thread count).
/// Throws: shape_error for bad dimensions, config_error for bad options, numeric_error for
///         non-finite values or a degenerate PCA initialisation.
[[nodiscard]] inline tsne_result tsne(std::span<const double> features, std::size_t dim,
                                      const tsne_options& opt = {}) {
  const std::size_t n = detail::checked_rows(features, dim, 2, "tsne features");
  MAMMOCL_CHECK(opt.n_components >= 1 && opt.n_components <= 8, config_error,
                "tsne: n_components must be in [1, 8], got ", opt.n_components);
  MAMMOCL_CHECK(opt.perplexity > 0.0 && opt.perplexity < static_cast<double>(n), config_error,
                "tsne: perplexity must be positive and less than the number of samples (", n, "), got ",
                opt.perplexity);
  MAMMOCL_CHECK(opt.max_iter >= 250, config_error, "tsne: max_iter must be at least 250, got ", opt.max_iter);
  MAMMOCL_CHECK(opt.early_exaggeration > 0.0, config_error, "tsne: early_exaggeration must be positive, got ",
                opt.early_exaggeration);
  const std::size_t k = opt.n_components;
  const double learning_rate = opt.learning_rate > 0.0
                                   ? opt.learning_rate
                                   : std::max(static_cast<double>(n) / opt.early_exaggeration / 4.0, 50.0);

  std::vector<double> p = detail::squared_distances(features, n, dim);
  detail::conditional_probabilities(p, n, opt.perplexity);
  detail::symmetrise(p, n);

  std::vector<double> y;
  if (opt.init == tsne_init::pca) {
    y = detail::pca_init(features, n, dim, k);
  } else {
    rng r(opt.seed);
    y.resize(n * k);
    for (double& v : y) v = 1e-4 * r.normal();
  }

  const double dof = std::max(static_cast<double>(k) - 1.0, 1.0);
  tsne_result res;
  res.n_components = k;
  constexpr std::size_t exploration = 250;
  std::size_t it = detail::tsne_descent(p, opt.early_exaggeration, y, n, k, dof, 0, exploration, 0.5,
                                        learning_rate, exploration, opt.min_grad_norm, res.kl_divergence);
  if (it < exploration - 1 || opt.max_iter > exploration)
    it = detail::tsne_descent(p, 1.0, y, n, k, dof, it + 1, opt.max_iter, 0.8, learning_rate,
                              opt.n_iter_without_progress, opt.min_grad_norm, res.kl_divergence);
  res.iterations = it;
  res.embedding = std::move(y);
  return res;
}

/// scikit-learn's `sklearn.manifold.trustworthiness` with the Euclidean metric: 1 minus the penalty
/// for points that are among the k nearest neighbours in the embedding but not in the input space,
/// weighted by their input-space rank. Ties in distance are broken by row index.
///
/// Pre: both matrices have the same N rows, finite values; 1 <= k < N/2.
/// Post: a value in [0, 1]; 1 means every embedding neighbourhood is an input neighbourhood.
/// Throws: shape_error for mismatched rows or bad k, numeric_error for non-finite values.
[[nodiscard]] inline double trustworthiness(std::span<const double> features, std::size_t dim,
                                            std::span<const double> embedding, std::size_t embedding_dim,
                                            std::size_t k = 5) {
  const std::size_t n = detail::checked_rows(features, dim, 3, "trustworthiness features");
  const std::size_t ne = detail::checked_rows(embedding, embedding_dim, 3, "trustworthiness embedding");
  MAMMOCL_EXPECTS(n == ne, "trustworthiness: features have ", n, " rows but the embedding has ", ne);
  MAMMOCL_EXPECTS(k >= 1 && 2 * k < n, "trustworthiness: n_neighbors must be in [1, N/2) with N = ", n,
                  ", got ", k);
  const std::vector<double> dx = detail::squared_distances(features, n, dim);
  const std::vector<double> de = detail::squared_distances(embedding, n, embedding_dim);
  double t = 0.0;
  const auto ni = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) reduction(+ : t)
  for (std::ptrdiff_t ii = 0; ii < ni; ++ii) {
    const auto i = static_cast<std::size_t>(ii);
    auto closer = [i, n](const std::vector<double>& d) {
      return [&d, i, n](std::size_t a, std::size_t b) {
        const double da = d[i * n + a], db = d[i * n + b];
        return da < db || (da == db && a < b);
      };
    };
    std::vector<std::size_t> order;
    order.reserve(n - 1);
    for (std::size_t j = 0; j < n; ++j)
      if (j != i) order.push_back(j);
    std::vector<std::size_t> emb = order;
    std::sort(order.begin(), order.end(), closer(dx));
    std::vector<std::size_t> rank(n, 0);
    for (std::size_t r = 0; r < order.size(); ++r) rank[order[r]] = r + 1;
    std::partial_sort(emb.begin(), emb.begin() + static_cast<std::ptrdiff_t>(k), emb.end(), closer(de));
    double ti = 0.0;
    for (std::size_t r = 0; r < k; ++r) {
      const double excess = static_cast<double>(rank[emb[r]]) - static_cast<double>(k);
      if (excess > 0) ti += excess;
    }
    t += ti;
  }
  const double nd = static_cast<double>(n), kd = static_cast<double>(k);
  return 1.0 - t * (2.0 / (nd * kd * (2.0 * nd - 3.0 * kd - 1.0)));
}

/// Fraction of (point, neighbour) pairs among each point's k nearest neighbours in the embedding
/// (Euclidean, itself excluded, ties by row index) that share the point's label: 1 when every
/// neighbourhood is label-pure, about Σ_c (n_c/N)² for a random embedding.
///
/// Pre: labels.size() == N; 1 <= k < N; finite values.
/// Throws: shape_error for mismatched sizes or bad k, numeric_error for non-finite values.
[[nodiscard]] inline double knn_label_agreement(std::span<const double> embedding, std::size_t dim,
                                                std::span<const int> labels, std::size_t k = 10) {
  const std::size_t n = detail::checked_rows(embedding, dim, 2, "knn_label_agreement embedding");
  MAMMOCL_EXPECTS(labels.size() == n, "knn_label_agreement: ", labels.size(), " labels for ", n, " rows");
  MAMMOCL_EXPECTS(k >= 1 && k < n, "knn_label_agreement: k must be in [1, N) with N = ", n, ", got ", k);
  const std::vector<double> d = detail::squared_distances(embedding, n, dim);
  std::size_t agree = 0;
  const auto ni = static_cast<std::ptrdiff_t>(n);
#pragma omp parallel for schedule(static) reduction(+ : agree)
  for (std::ptrdiff_t ii = 0; ii < ni; ++ii) {
    const auto i = static_cast<std::size_t>(ii);
    std::vector<std::size_t> order;
    order.reserve(n - 1);
    for (std::size_t j = 0; j < n; ++j)
      if (j != i) order.push_back(j);
    std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                      [&](std::size_t a, std::size_t b) {
                        const double da = d[i * n + a], db = d[i * n + b];
                        return da < db || (da == db && a < b);
                      });
    for (std::size_t r = 0; r < k; ++r) agree += labels[order[r]] == labels[i] ? 1 : 0;
  }
  return static_cast<double>(agree) / (static_cast<double>(n) * static_cast<double>(k));
}

}  // namespace mammocl::eval

#pragma once
/// `mmd`: the squared maximum mean discrepancy between two feature sets (Gretton et al. 2006/2012;
/// METHOD.md §4.3(b), §6.4, §7 item 13), with its gradient with respect to both sets.
///
/// X = {x_1..x_m} and Y = {y_1..y_n}, each a (rows, D) tensor (a (N, …) tensor counts as N rows of
/// item_size() features). With a kernel k:
///
///   MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i,x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i,y_j) − 2/(mn) Σ_{i,j} k(x_i,y_j)
///   MMD²_b = 1/m²       Σ_{i,j} k(x_i,x_j) + 1/n²       Σ_{i,j} k(y_i,y_j) − 2/(mn) Σ_{i,j} k(x_i,y_j)
///
/// Kernels:
///  * kernel::gaussian:        k(a,b) = exp(−‖a−b‖² / (2σ²)), σ² given in options::sigma2 or, when that is
///    empty, the median heuristic: σ² = the median (numpy's, mean of the two middle values for an even
///    count) of the squared distances ‖z_i − z_j‖², i < j, over the concatenated batch Z = [X; Y].
///  * kernel::multi_gaussian:  the DAN / jindongwang `loss_funcs/mmd.py` reference form,
///    k(a,b) = Σ_{q=0}^{kernel_num−1} exp(−‖a−b‖² / (bw·kernel_mul^q)), with
///    bw = Σ_{i,j}‖z_i−z_j‖² / (N²−N) / kernel_mul^(kernel_num div 2) over Z (N = m+n rows).
///    With the biased estimator and m = n this is exactly the reference's XX + YY − XY − YX; for m ≠ n the
///    block means above are used (the reference slices by the source batch size and assumes m = n).
///
/// Bandwidths derived from the data (median heuristic, the multi-kernel bw) are treated as constants in the
/// gradient, as the reference does (it computes bw from `L2_distance.data`): the gradient is that of MMD²
/// at fixed bandwidth. With Z = [X; Y], MMD² = Σ_{a,b} w_ab·K(‖z_a−z_b‖²) with symmetric weights w, so
///
///   ∂MMD²/∂z_a = 4 Σ_b w_ab·K'(‖z_a−z_b‖²)·(z_a − z_b),   K'(s) = −Σ_q exp(−s/s_q)/s_q  (s_q = 2σ² or bw·mul^q).
///
/// All arithmetic is in double on the host (a device backend's features make a host round trip, layers/host_bridge.hpp). Errors: shape_error for a feature-width mismatch, a
/// label count that differs from the row count, or fewer than 2 rows in a set for the unbiased estimator
/// (fewer than 1 for the biased one); numeric_error for NaN/Inf in the features, a zero data-derived
/// bandwidth (all points identical) or a non-finite result; config_error for bad options.
///
/// Class-conditional variant (`class_conditional`): Σ_c MMD²(X^c, Y^c), an unweighted sum over the classes
/// with at least 2 rows in each domain (METHOD.md §4.3(b) default); the other classes are skipped and
/// reported. For the gaussian kernel with the median heuristic σ² is computed once on the whole batch
/// [X; Y] (all classes) and used for every class; the multi-kernel bw is computed per class from that
/// class's rows, as a call of the reference per class would.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/layers/host_bridge.hpp"

namespace mammocl::losses {

class mmd {
 public:
  enum class estimator { unbiased, biased };
  enum class kernel { gaussian, multi_gaussian };
  struct options {
    estimator est = estimator::unbiased;
    kernel kern = kernel::gaussian;
    std::optional<double> sigma2 = std::nullopt;  ///< gaussian: σ²; empty = median heuristic on the batch
    double kernel_mul = 2.0;       ///< multi_gaussian
    int kernel_num = 5;            ///< multi_gaussian
  };
  /// What one evaluation used.
  struct result {
    double value = 0;      ///< MMD²
    double bandwidth = 0;  ///< gaussian: σ²; multi_gaussian: the base bw
  };
  struct class_conditional_result {
    double value = 0;                   ///< Σ over used classes of MMD²
    std::vector<int> used_classes;      ///< ascending
    std::vector<double> per_class;      ///< MMD² of each used class, same order
    std::vector<int> skipped_classes;   ///< ascending: present in either domain but < 2 rows in one of them
    double bandwidth = 0;               ///< gaussian: the σ² used (multi_gaussian: 0, it is per class)
  };

  mmd() = default;
  explicit mmd(const options& o) : opt_(o) {
    MAMMOCL_CHECK(!o.sigma2 || (std::isfinite(*o.sigma2) && *o.sigma2 > 0), config_error, "mmd: sigma2 (",
                  o.sigma2.value_or(0.0), ") must be a positive finite number");
    MAMMOCL_CHECK(std::isfinite(o.kernel_mul) && o.kernel_mul > 0 && o.kernel_num >= 1, config_error,
                  "mmd: kernel_mul (", o.kernel_mul, ") must be positive and kernel_num (", o.kernel_num,
                  ") at least 1");
  }
  [[nodiscard]] const options& opts() const noexcept { return opt_; }

  /// MMD²(X, Y); writes ∂MMD²/∂X into *dx and ∂MMD²/∂Y into *dy when they are non-null (resized to the
  /// shapes of x and y when their shapes differ).
  template <Backend B>
  result value_and_gradient(typename B::context& ctx, const tensor<B>& x, const tensor<B>& y, tensor<B>* dx,
                            tensor<B>* dy) const {
    if constexpr (!B::is_host) {  // host round trip of the (rows, D) features: docs/device_generic.md
      check_device_pair(x, y);
      using H = host_bridge::host_twin_t<B>;
      typename H::context hctx = host_bridge::host_context<B>(ctx);
      tensor<H> hdx, hdy;
      const result r = value_and_gradient<H>(hctx, host_bridge::on_host(x), host_bridge::on_host(y),
                                             dx ? &hdx : nullptr, dy ? &hdy : nullptr);
      if (dx) host_bridge::assign<B>(hdx, *dx);
      if (dy) host_bridge::assign<B>(hdy, *dy);
      return r;
    } else {
      (void)ctx;
      return host_value_and_gradient(x, y, dx, dy);
    }
  }

  /// Σ_c MMD²(X^c, Y^c) over the classes with ≥ 2 rows in each domain; labels_x (m) and labels_y (n) give
  /// each row's class (any int). Gradients as value_and_gradient (rows of skipped classes get 0).
  template <Backend B>
  class_conditional_result class_conditional(typename B::context& ctx, const tensor<B>& x, std::span<const int> labels_x,
                                             const tensor<B>& y, std::span<const int> labels_y, tensor<B>* dx,
                                             tensor<B>* dy) const {
    if constexpr (!B::is_host) {
      check_device_pair(x, y);
      using H = host_bridge::host_twin_t<B>;
      typename H::context hctx = host_bridge::host_context<B>(ctx);
      tensor<H> hdx, hdy;
      class_conditional_result r = class_conditional<H>(hctx, host_bridge::on_host(x), labels_x, host_bridge::on_host(y),
                                                        labels_y, dx ? &hdx : nullptr, dy ? &hdy : nullptr);
      if (dx) host_bridge::assign<B>(hdx, *dx);
      if (dy) host_bridge::assign<B>(hdy, *dy);
      return r;
    } else {
      (void)ctx;
      return host_class_conditional(x, labels_x, y, labels_y, dx, dy);
    }
  }

 private:
  /// The layout check that the host copy (always contiguous) would no longer see.
  template <Backend B>
  static void check_device_pair(const tensor<B>& x, const tensor<B>& y) {
    if (x.rank() >= 2 && y.rank() >= 2)  // the rank checks stay with the host code, in their order
      MAMMOCL_EXPECTS(x.contiguous() && y.contiguous(), "mmd: X and Y must be contiguous (rows, D) tensors, got ",
                      x.dims(), " and ", y.dims());
  }

  template <Backend B>
  result host_value_and_gradient(const tensor<B>& x, const tensor<B>& y, tensor<B>* dx, tensor<B>* dy) const {
    const index_t d = check_pair(x, y);
    std::vector<double> z = gather<B>(x, y, d, nullptr, nullptr, -1);
    const index_t m = x.n(), n = y.n();
    const double bw = bandwidth(z, m + n, d);
    std::vector<double> g;
    const double v = evaluate(z, m, n, d, bw, (dx || dy) ? &g : nullptr);
    if (dx || dy) {
      scatter<B>(g, x, y, d, dx, dy, nullptr, nullptr, -1, false);
    }
    return {v, bw};
  }

  template <Backend B>
  class_conditional_result host_class_conditional(const tensor<B>& x, std::span<const int> labels_x, const tensor<B>& y,
                                                  std::span<const int> labels_y, tensor<B>* dx, tensor<B>* dy) const {
    MAMMOCL_EXPECTS(x.rank() >= 2 && y.rank() >= 2, "mmd: X and Y must be (rows, D) tensors, got ", x.dims(),
                    " and ", y.dims());
    MAMMOCL_EXPECTS(static_cast<index_t>(labels_x.size()) == x.n() && static_cast<index_t>(labels_y.size()) == y.n(),
                    "mmd::class_conditional: ", labels_x.size(), " labels for ", x.n(), " rows of X and ",
                    labels_y.size(), " labels for ", y.n(), " rows of Y");
    const index_t d = check_pair(x, y, /*min_rows=*/1);
    std::map<int, std::pair<index_t, index_t>> counts;
    for (int c : labels_x) ++counts[c].first;
    for (int c : labels_y) ++counts[c].second;

    class_conditional_result res;
    std::optional<double> sigma2 = opt_.sigma2;
    if (opt_.kern == kernel::gaussian && !sigma2) {
      std::vector<double> z = gather<B>(x, y, d, nullptr, nullptr, -1);
      sigma2 = median_heuristic(z, x.n() + y.n(), d);
    }
    if (opt_.kern == kernel::gaussian) res.bandwidth = *sigma2;
    const bool grad = dx || dy;
    if (dx && dx->dims() != x.dims()) *dx = tensor<B>(x.dims());
    if (dy && dy->dims() != y.dims()) *dy = tensor<B>(y.dims());
    if (dx) B::fill(*dx, typename B::scalar_type(0));
    if (dy) B::fill(*dy, typename B::scalar_type(0));
    for (const auto& [c, mn] : counts) {
      if (mn.first < 2 || mn.second < 2) {
        res.skipped_classes.push_back(c);
        continue;
      }
      std::vector<double> z = gather<B>(x, y, d, &labels_x, &labels_y, c);
      const double bw = opt_.kern == kernel::gaussian ? *sigma2 : multi_bandwidth(z, mn.first + mn.second, d);
      std::vector<double> g;
      const double v = evaluate(z, mn.first, mn.second, d, bw, grad ? &g : nullptr);
      if (grad) scatter<B>(g, x, y, d, dx, dy, &labels_x, &labels_y, c, true);
      res.used_classes.push_back(c);
      res.per_class.push_back(v);
      res.value += v;
    }
    return res;
  }

 public:
  /// σ² by the median heuristic: the median of ‖z_i − z_j‖² over i < j of the rows of z (rows × d, row-major).
  [[nodiscard]] static double median_heuristic(const std::vector<double>& z, index_t rows, index_t d) {
    MAMMOCL_EXPECTS(rows >= 2, "mmd: the median heuristic needs at least 2 rows, got ", rows);
    std::vector<double> s;
    s.reserve(static_cast<std::size_t>(rows * (rows - 1) / 2));
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = i + 1; j < rows; ++j) s.push_back(sqdist(z, i, j, d));
    const std::size_t k = s.size() / 2;
    std::nth_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k), s.end());
    double med = s[k];
    if (s.size() % 2 == 0) med = 0.5 * (med + *std::max_element(s.begin(), s.begin() + static_cast<std::ptrdiff_t>(k)));
    MAMMOCL_CHECK(med > 0 && std::isfinite(med), numeric_error, "mmd: the median heuristic gives sigma^2 = ", med,
                  " (at least half the pairs of rows coincide); pass options::sigma2");
    return med;
  }

 private:
  static double sqdist(const std::vector<double>& z, index_t i, index_t j, index_t d) {
    double s = 0;
    for (index_t k = 0; k < d; ++k) {
      const double t = z[static_cast<std::size_t>(i * d + k)] - z[static_cast<std::size_t>(j * d + k)];
      s += t * t;
    }
    return s;
  }

  template <Backend B>
  index_t check_pair(const tensor<B>& x, const tensor<B>& y, index_t min_rows = -1) const {
    MAMMOCL_EXPECTS(x.rank() >= 2 && y.rank() >= 2 && x.contiguous() && y.contiguous(),
                    "mmd: X and Y must be contiguous (rows, D) tensors, got ", x.dims(), " and ", y.dims());
    const index_t d = x.item_size();
    MAMMOCL_EXPECTS(y.item_size() == d && d > 0, "mmd: X has ", d, " features per row and Y has ", y.item_size(),
                    "; they must match (X ", x.dims(), ", Y ", y.dims(), ")");
    const index_t need = min_rows > 0 ? min_rows : (opt_.est == estimator::unbiased ? 2 : 1);
    MAMMOCL_EXPECTS(x.n() >= need && y.n() >= need, "mmd: the ",
                    opt_.est == estimator::unbiased ? "unbiased" : "biased", " estimator needs at least ", need,
                    " rows in each set, got ", x.n(), " in X and ", y.n(), " in Y");
    for (const tensor<B>* t : {&x, &y})
      for (index_t i = 0; i < t->numel(); ++i)
        MAMMOCL_CHECK(std::isfinite(static_cast<double>(t->data()[i])), numeric_error, "mmd: ",
                      t == &x ? "X" : "Y", " holds a non-finite value (", static_cast<double>(t->data()[i]),
                      ") at row ", i / d, ", feature ", i % d);
    return d;
  }

  /// Rows of X then rows of Y (only those labelled `cls` when labels are given) as doubles.
  template <Backend B>
  static std::vector<double> gather(const tensor<B>& x, const tensor<B>& y, index_t d, const std::span<const int>* lx,
                                    const std::span<const int>* ly, int cls) {
    std::vector<double> z;
    z.reserve(static_cast<std::size_t>((x.n() + y.n()) * d));
    auto add = [&](const tensor<B>& t, const std::span<const int>* l) {
      for (index_t i = 0; i < t.n(); ++i) {
        if (l && (*l)[static_cast<std::size_t>(i)] != cls) continue;
        for (index_t k = 0; k < d; ++k) z.push_back(static_cast<double>(t.data()[i * d + k]));
      }
    };
    add(x, lx);
    add(y, ly);
    return z;
  }

  /// Writes (or, with accumulate, adds) the gradient rows g (X's selected rows then Y's) into dx / dy.
  template <Backend B>
  static void scatter(const std::vector<double>& g, const tensor<B>& x, const tensor<B>& y, index_t d, tensor<B>* dx,
                      tensor<B>* dy, const std::span<const int>* lx, const std::span<const int>* ly, int cls,
                      bool accumulate) {
    using T = typename B::scalar_type;
    std::size_t row = 0;
    auto put = [&](const tensor<B>& t, tensor<B>* out, const std::span<const int>* l) {
      if (out && out->dims() != t.dims()) *out = tensor<B>(t.dims());
      for (index_t i = 0; i < t.n(); ++i) {
        if (l && (*l)[static_cast<std::size_t>(i)] != cls) continue;
        for (index_t k = 0; k < d; ++k) {
          const double v = g[row * static_cast<std::size_t>(d) + static_cast<std::size_t>(k)];
          if (out) {
            T& o = out->data()[i * d + k];
            o = accumulate ? static_cast<T>(o + v) : static_cast<T>(v);
          }
        }
        ++row;
      }
    };
    put(x, dx, lx);
    put(y, dy, ly);
  }

  [[nodiscard]] double multi_bandwidth(const std::vector<double>& z, index_t rows, index_t d) const {
    double s = 0;
    for (index_t i = 0; i < rows; ++i)
      for (index_t j = 0; j < rows; ++j) s += sqdist(z, i, j, d);
    double bw = s / static_cast<double>(rows * rows - rows);
    bw /= std::pow(opt_.kernel_mul, opt_.kernel_num / 2);
    MAMMOCL_CHECK(bw > 0 && std::isfinite(bw), numeric_error, "mmd: the multi-kernel bandwidth is ", bw,
                  " (all rows coincide)");
    return bw;
  }

  [[nodiscard]] double bandwidth(const std::vector<double>& z, index_t rows, index_t d) const {
    if (opt_.kern == kernel::multi_gaussian) return multi_bandwidth(z, rows, d);
    return opt_.sigma2 ? *opt_.sigma2 : median_heuristic(z, rows, d);
  }

  /// MMD² of z = [X (m rows); Y (n rows)] at bandwidth bw; the gradient rows into *g when non-null.
  double evaluate(const std::vector<double>& z, index_t m, index_t n, index_t d, double bw,
                  std::vector<double>* g) const {
    std::vector<double> scales;
    if (opt_.kern == kernel::gaussian) {
      scales.push_back(2.0 * bw);
    } else {
      for (int q = 0; q < opt_.kernel_num; ++q) scales.push_back(bw * std::pow(opt_.kernel_mul, q));
    }
    const bool unbiased = opt_.est == estimator::unbiased;
    const double md = static_cast<double>(m), nd = static_cast<double>(n);
    const double wxx = unbiased ? 1.0 / (md * (md - 1)) : 1.0 / (md * md);
    const double wyy = unbiased ? 1.0 / (nd * (nd - 1)) : 1.0 / (nd * nd);
    const double wxy = -1.0 / (md * nd);
    const index_t rows = m + n;
    if (g) g->assign(static_cast<std::size_t>(rows * d), 0.0);
    double v = 0;
    for (index_t a = 0; a < rows; ++a) {
      for (index_t b = 0; b < rows; ++b) {
        if (a == b && unbiased) continue;
        const bool ax = a < m, bx = b < m;
        const double w = ax && bx ? wxx : (!ax && !bx ? wyy : wxy);
        const double s = sqdist(z, a, b, d);
        double k = 0, dk = 0;
        for (double sc : scales) {
          const double e = std::exp(-s / sc);
          k += e;
          dk -= e / sc;
        }
        v += w * k;
        if (g && a != b) {
          // The (a,b) and (b,a) terms both hold z_a: together (w_ab + w_ba)·K'·2(z_a − z_b) = 4·w·K'·(z_a − z_b).
          const double f = 4.0 * w * dk;
          for (index_t c = 0; c < d; ++c) {
            const double t = z[static_cast<std::size_t>(a * d + c)] - z[static_cast<std::size_t>(b * d + c)];
            (*g)[static_cast<std::size_t>(a * d + c)] += f * t;
          }
        }
      }
    }
    MAMMOCL_CHECK(std::isfinite(v), numeric_error, "mmd: the value is not finite (", v, ")");
    return v;
  }

  options opt_;
};

}  // namespace mammocl::losses

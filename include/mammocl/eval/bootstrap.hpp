#pragma once
/// Bootstrap error bars and paired bootstrap p-values (METHOD.md §6.3, after pROC):
///
/// * `resampling_plan`: which sample indices each replicate contains. Made by `make_plan` (stratified by
///   class, keeping the class counts; or plain), `make_clustered_plan` (clusters — an image id shared by its
///   two domain versions, a patient id — resampled as units, stratified by the set of classes in the
///   cluster) or `make_explicit_plan` (given index lists). Replicate b is drawn from its own
///   `mammocl::rng` stream seeded from (seed, b), so a plan's resamples do not depend on the thread count or
///   on the order in which replicates are drawn.
/// * `bootstrap`: point estimate on the full set, bootstrap SD (n−1) = standard error, percentile interval
///   (type-7 quantiles, numpy's default) of a statistic callback.
/// * `paired_bootstrap`: two statistics on the same resamples; δ replicates, D = (θ1 − θ2)/sd(δ), two-sided
///   p = erfc(|D|/√2), one-sided p-values, and the percentile p-value.
///
/// A statistic is any callable `f(std::span<const std::size_t> indices)` returning `double` or
/// `std::optional<double>`; nullopt means "undefined on this resample" (e.g. a class is missing): the
/// replicate is skipped and counted, as pROC does. A NaN/Inf return value is a numeric_error. With
/// `bootstrap_options::parallel` the callback is called concurrently from OpenMP threads.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <map>
#include <numeric>
#include <optional>
#include <span>
#include <type_traits>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"

namespace mammocl::eval {

/// Type-7 quantile (R's default, numpy's "linear"): with the values sorted ascending as x_0..x_{n-1},
/// h = (n−1)·p and q = x_⌊h⌋ + (h − ⌊h⌋)(x_⌊h⌋+1 − x_⌊h⌋). Throws shape_error for no values, config_error for
/// p outside [0, 1], numeric_error for a non-finite value.
[[nodiscard]] inline double quantile_type7(std::span<const double> values, double p) {
  MAMMOCL_EXPECTS(!values.empty(), "quantile_type7: no values");
  MAMMOCL_CHECK(p >= 0 && p <= 1, config_error, "quantile_type7: p = ", p, " is outside [0, 1]");
  std::vector<double> x(values.begin(), values.end());
  for (double v : x) MAMMOCL_CHECK(std::isfinite(v), numeric_error, "quantile_type7: value ", v, " is not finite");
  std::sort(x.begin(), x.end());
  const double h = static_cast<double>(x.size() - 1) * p;
  const auto lo = static_cast<std::size_t>(std::floor(h));
  if (lo + 1 >= x.size()) return x.back();
  return x[lo] + (h - static_cast<double>(lo)) * (x[lo + 1] - x[lo]);
}

/// Sample standard deviation with the n−1 denominator (R's sd). Throws shape_error for fewer than 2 values.
[[nodiscard]] inline double sample_sd(std::span<const double> values) {
  MAMMOCL_EXPECTS(values.size() >= 2, "sample_sd: ", values.size(), " value(s); the n-1 SD needs at least 2");
  double mean = 0;
  for (double v : values) mean += v;
  mean /= static_cast<double>(values.size());
  double ss = 0;
  for (double v : values) ss += (v - mean) * (v - mean);
  return std::sqrt(ss / static_cast<double>(values.size() - 1));
}

/// Options of `make_plan` and `make_clustered_plan`.
struct plan_options {
  std::size_t replicates = 2000;  ///< B (pROC's default boot.n)
  std::uint64_t seed = 0;         ///< record it with the results
  bool stratified = true;         ///< resample within each class (stratum) keeping its size (pROC default)
};

/// The resamples of a bootstrap: `replicate_count()` lists of indices into `sample_count()` samples.
class resampling_plan {
 public:
  /// Number of samples n the indices refer to (the statistic's full set is 0..n−1).
  [[nodiscard]] std::size_t sample_count() const noexcept { return n_; }
  /// Number of replicates B.
  [[nodiscard]] std::size_t replicate_count() const noexcept { return explicit_ ? lists_.size() : replicates_; }
  /// The seed the plan was made with (0 for an explicit plan); record it with the results.
  [[nodiscard]] std::uint64_t seed() const noexcept { return seed_; }

  /// Writes the indices of replicate b into `out` (replacing its content). Deterministic in (plan, b).
  /// Throws config_error for b >= replicate_count().
  void draw(std::size_t b, std::vector<std::size_t>& out) const {
    MAMMOCL_CHECK(b < replicate_count(), config_error, "resampling_plan::draw: replicate ", b, " of ",
                  replicate_count());
    out.clear();
    if (explicit_) {
      out = lists_[b];
      return;
    }
    rng r(replicate_seed(seed_, b));
    for (const auto& stratum : strata_) {
      const std::size_t m = stratum.size();
      for (std::size_t t = 0; t < m; ++t) {
        const std::size_t u = stratum[static_cast<std::size_t>(r.below(m))];
        out.insert(out.end(), members_.begin() + static_cast<std::ptrdiff_t>(unit_start_[u]),
                   members_.begin() + static_cast<std::ptrdiff_t>(unit_start_[u + 1]));
      }
    }
  }
  /// The indices of replicate b.
  [[nodiscard]] std::vector<std::size_t> draw(std::size_t b) const {
    std::vector<std::size_t> out;
    draw(b, out);
    return out;
  }

  /// The seed of replicate b's rng stream: splitmix64 finalisers of the plan seed and b (part of the
  /// plan's contract, so resamples are reproducible across platforms).
  [[nodiscard]] static std::uint64_t replicate_seed(std::uint64_t seed, std::size_t b) noexcept {
    std::uint64_t z = seed ^ mix(static_cast<std::uint64_t>(b) + 0x632be59bd9b4e019ULL);
    return mix(z);
  }

 private:
  friend resampling_plan make_plan(std::span<const int>, plan_options);
  friend resampling_plan make_clustered_plan(std::span<const int>, std::span<const std::int64_t>, plan_options);
  friend resampling_plan make_explicit_plan(std::size_t, std::vector<std::vector<std::size_t>>);

  static std::uint64_t mix(std::uint64_t z) noexcept {
    z += 0x9e3779b97f4a7c15ULL;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
  }

  std::size_t n_ = 0;
  std::size_t replicates_ = 0;
  std::uint64_t seed_ = 0;
  bool explicit_ = false;
  std::vector<std::vector<std::size_t>> lists_;  // explicit plans
  std::vector<std::size_t> members_;             // sample indices, grouped by unit
  std::vector<std::size_t> unit_start_;          // unit u = members_[unit_start_[u], unit_start_[u+1])
  std::vector<std::vector<std::size_t>> strata_; // unit ids per stratum, strata in ascending key order
};

namespace detail {
inline void check_plan_options(const plan_options& opt, const char* who) {
  MAMMOCL_CHECK(opt.replicates >= 2, config_error, who, ": ", opt.replicates,
                " replicate(s); the bootstrap SD needs at least 2");
}
}  // namespace detail

/// A plan over the samples with these `labels` (any integers, one per sample): with opt.stratified, each
/// replicate draws n_c samples with replacement from each class c (class counts kept; every class in every
/// replicate); otherwise n samples from all. Indices come stratum by stratum in ascending label order.
/// Throws shape_error for no samples, config_error for fewer than 2 replicates.
[[nodiscard]] inline resampling_plan make_plan(std::span<const int> labels, plan_options opt = {}) {
  MAMMOCL_EXPECTS(!labels.empty(), "make_plan: no samples");
  detail::check_plan_options(opt, "make_plan");
  resampling_plan p;
  p.n_ = labels.size();
  p.replicates_ = opt.replicates;
  p.seed_ = opt.seed;
  p.members_.resize(labels.size());
  std::iota(p.members_.begin(), p.members_.end(), std::size_t{0});
  p.unit_start_.resize(labels.size() + 1);
  std::iota(p.unit_start_.begin(), p.unit_start_.end(), std::size_t{0});
  if (opt.stratified) {
    std::map<int, std::vector<std::size_t>> by_class;
    for (std::size_t i = 0; i < labels.size(); ++i) by_class[labels[i]].push_back(i);
    for (auto& [c, units] : by_class) p.strata_.push_back(std::move(units));
  } else {
    p.strata_.emplace_back(p.members_);
  }
  return p;
}

/// A clustered plan: samples sharing a `clusters` id (e.g. the two domain versions of one image, or one
/// patient's images) enter a replicate together, as one unit. With opt.stratified, clusters are stratified by
/// the set of classes they contain (for single-class clusters: the cluster's class), and each replicate
/// draws as many clusters from each stratum as it holds — so the cluster counts per stratum are kept and
/// every class appears in every replicate. Cluster members keep their original index order; clusters are
/// ordered by first appearance. Throws shape_error (no samples, lengths differ), config_error (< 2 replicates).
[[nodiscard]] inline resampling_plan make_clustered_plan(std::span<const int> labels,
                                                         std::span<const std::int64_t> clusters,
                                                         plan_options opt = {}) {
  MAMMOCL_EXPECTS(!labels.empty(), "make_clustered_plan: no samples");
  MAMMOCL_EXPECTS(clusters.size() == labels.size(), "make_clustered_plan: ", clusters.size(), " cluster ids for ",
                  labels.size(), " labels");
  detail::check_plan_options(opt, "make_clustered_plan");
  std::map<std::int64_t, std::size_t> unit_of;
  std::vector<std::vector<std::size_t>> units;
  for (std::size_t i = 0; i < clusters.size(); ++i) {
    const auto [it, fresh] = unit_of.try_emplace(clusters[i], units.size());
    if (fresh) units.emplace_back();
    units[it->second].push_back(i);
  }
  resampling_plan p;
  p.n_ = labels.size();
  p.replicates_ = opt.replicates;
  p.seed_ = opt.seed;
  p.unit_start_.push_back(0);
  std::map<std::vector<int>, std::vector<std::size_t>> by_key;
  for (std::size_t u = 0; u < units.size(); ++u) {
    std::vector<int> key;
    for (std::size_t i : units[u]) {
      p.members_.push_back(i);
      key.push_back(labels[i]);
    }
    p.unit_start_.push_back(p.members_.size());
    std::sort(key.begin(), key.end());
    key.erase(std::unique(key.begin(), key.end()), key.end());
    by_key[opt.stratified ? key : std::vector<int>{}].push_back(u);
  }
  for (auto& [key, us] : by_key) p.strata_.push_back(std::move(us));
  return p;
}

/// A plan with the given resamples (index lists into n samples), e.g. METHOD.md §6.3's test vector.
/// Throws shape_error for n = 0, an empty list or an index >= n; config_error for fewer than 2 lists.
[[nodiscard]] inline resampling_plan make_explicit_plan(std::size_t n, std::vector<std::vector<std::size_t>> resamples) {
  MAMMOCL_EXPECTS(n > 0, "make_explicit_plan: no samples");
  MAMMOCL_CHECK(resamples.size() >= 2, config_error, "make_explicit_plan: ", resamples.size(),
                " resample(s); the bootstrap SD needs at least 2");
  for (std::size_t b = 0; b < resamples.size(); ++b) {
    MAMMOCL_EXPECTS(!resamples[b].empty(), "make_explicit_plan: resample ", b, " is empty");
    for (std::size_t i : resamples[b])
      MAMMOCL_EXPECTS(i < n, "make_explicit_plan: resample ", b, " has index ", i, " outside the ", n, " samples");
  }
  resampling_plan p;
  p.n_ = n;
  p.explicit_ = true;
  p.lists_ = std::move(resamples);
  return p;
}

/// Options of `bootstrap` and `paired_bootstrap`.
struct bootstrap_options {
  double level = 0.95;   ///< percentile interval [q_(1−level)/2, q_(1+level)/2]
  bool parallel = true;  ///< evaluate replicates on OpenMP threads (results do not depend on it)
};

/// A bootstrap of one statistic.
struct bootstrap_result {
  double estimate = 0;        ///< the statistic on the full set (indices 0..n−1)
  double sd = 0;              ///< sample SD (n−1) of the used replicates
  double standard_error = 0;  ///< the bootstrap standard error = sd
  double ci_low = 0;          ///< type-7 quantile (1 − level)/2 of the replicates
  double ci_high = 0;         ///< type-7 quantile (1 + level)/2
  double level = 0.95;
  std::size_t requested = 0;                   ///< replicates in the plan
  std::size_t used = 0;                        ///< replicates where the statistic was defined
  std::size_t skipped = 0;                     ///< requested − used (pROC warns about these)
  std::vector<std::size_t> skipped_replicates; ///< their replicate numbers b
  std::vector<double> replicates;              ///< the used replicate values, in replicate order
};

/// A paired bootstrap of two statistics (models) on the same resamples.
struct paired_bootstrap_result {
  bootstrap_result first;   ///< statistic 1 over the jointly defined replicates
  bootstrap_result second;  ///< statistic 2 over the same replicates
  double difference = 0;    ///< first.estimate − second.estimate
  std::vector<double> deltas;  ///< δ_b = θ1_b − θ2_b
  double sd_delta = 0;         ///< sd(δ), n−1
  double z = 0;                ///< D = difference / sd_delta (pROC's bootstrap statistic)
  double p_two_sided = 0;      ///< erfc(|D|/√2)
  double p_greater = 0;        ///< Φ(−D): H1 "statistic 1 > statistic 2"
  double p_less = 0;           ///< Φ(D): H1 "statistic 1 < statistic 2"
  double p_percentile = 0;     ///< min(1, 2·min((1+#{δ≤0})/(B+1), (1+#{δ≥0})/(B+1)))
  double ci_low = 0;           ///< percentile interval of δ
  double ci_high = 0;
  std::size_t requested = 0;
  std::size_t skipped = 0;     ///< replicates where either statistic was undefined
  std::vector<std::size_t> skipped_replicates;
};

namespace detail {

template <class Statistic>
std::optional<double> evaluate(const Statistic& stat, std::span<const std::size_t> indices) {
  using result_t = std::remove_cvref_t<std::invoke_result_t<const Statistic&, std::span<const std::size_t>>>;
  if constexpr (std::is_same_v<result_t, std::optional<double>>) {
    return stat(indices);
  } else {
    static_assert(std::is_convertible_v<result_t, double>,
                  "a bootstrap statistic returns double or std::optional<double>");
    return static_cast<double>(stat(indices));
  }
}

/// Evaluates each statistic on every replicate: values[s][b] (nullopt where undefined). Exceptions from the
/// statistics are rethrown (the first one by replicate number).
template <class... Statistic>
std::vector<std::vector<std::optional<double>>> run_replicates(const resampling_plan& plan, bool parallel,
                                                               const Statistic&... stats) {
  constexpr std::size_t ns = sizeof...(Statistic);
  const std::size_t nb = plan.replicate_count();
  std::vector<std::vector<std::optional<double>>> values(ns, std::vector<std::optional<double>>(nb));
  std::vector<std::exception_ptr> errors(nb);
  const auto nbi = static_cast<std::ptrdiff_t>(nb);
#pragma omp parallel if (parallel)
  {
    std::vector<std::size_t> idx;
#pragma omp for schedule(dynamic, 4)
    for (std::ptrdiff_t bi = 0; bi < nbi; ++bi) {
      const auto b = static_cast<std::size_t>(bi);
      try {
        plan.draw(b, idx);
        std::size_t s = 0;
        ((values[s++][b] = evaluate(stats, std::span<const std::size_t>(idx))), ...);
      } catch (...) {
        errors[b] = std::current_exception();
      }
    }
  }
  for (const auto& e : errors)
    if (e) std::rethrow_exception(e);
  for (std::size_t s = 0; s < ns; ++s)
    for (std::size_t b = 0; b < nb; ++b)
      if (values[s][b])
        MAMMOCL_CHECK(std::isfinite(*values[s][b]), numeric_error, "bootstrap: the statistic returned ",
                      *values[s][b], " on replicate ", b,
                      "; return std::nullopt for an undefined replicate, never NaN/Inf");
  return values;
}

template <class Statistic>
double full_estimate(const Statistic& stat, std::size_t n, const char* who) {
  std::vector<std::size_t> all(n);
  std::iota(all.begin(), all.end(), std::size_t{0});
  const std::optional<double> v = evaluate(stat, std::span<const std::size_t>(all));
  MAMMOCL_CHECK(v.has_value(), config_error, who, ": the statistic is undefined on the full set");
  MAMMOCL_CHECK(std::isfinite(*v), numeric_error, who, ": the statistic is ", *v, " on the full set");
  return *v;
}

inline void summarise(bootstrap_result& r, double level, const char* who) {
  MAMMOCL_CHECK(r.replicates.size() >= 2, numeric_error, who, ": only ", r.replicates.size(), " of ",
                r.requested, " replicates had a defined statistic (", r.skipped,
                " skipped, e.g. a class missing); the SD needs at least 2 — use a stratified plan");
  r.used = r.replicates.size();
  r.level = level;
  r.sd = sample_sd(r.replicates);
  r.standard_error = r.sd;
  r.ci_low = quantile_type7(r.replicates, (1 - level) / 2);
  r.ci_high = quantile_type7(r.replicates, (1 + level) / 2);
}

inline void check_level(double level, const char* who) {
  MAMMOCL_CHECK(level > 0 && level < 1, config_error, who, ": level ", level, " is outside (0, 1)");
}

}  // namespace detail

/// Bootstrap of `stat` over the plan's replicates: the estimate on the full set, the SD (n−1) and
/// percentile interval of the replicates. Replicates where `stat` returns nullopt are skipped and counted.
/// Throws config_error (level outside (0,1), statistic undefined on the full set), numeric_error (a NaN/Inf
/// value, fewer than 2 defined replicates), and whatever `stat` throws.
template <class Statistic>
[[nodiscard]] bootstrap_result bootstrap(const resampling_plan& plan, const Statistic& stat,
                                         bootstrap_options opt = {}) {
  detail::check_level(opt.level, "bootstrap");
  bootstrap_result r;
  r.estimate = detail::full_estimate(stat, plan.sample_count(), "bootstrap");
  r.requested = plan.replicate_count();
  const auto values = detail::run_replicates(plan, opt.parallel, stat);
  for (std::size_t b = 0; b < r.requested; ++b) {
    if (values[0][b]) r.replicates.push_back(*values[0][b]);
    else r.skipped_replicates.push_back(b);
  }
  r.skipped = r.skipped_replicates.size();
  detail::summarise(r, opt.level, "bootstrap");
  return r;
}

/// Paired bootstrap comparison of two statistics (e.g. two models' AUCs on the same test set) on the same
/// resamples (METHOD.md §6.3, pROC method="bootstrap", paired). A replicate where either is undefined is
/// skipped for both. Throws as `bootstrap`, plus numeric_error when sd(δ) = 0 (D undefined, e.g. identical
/// models).
template <class Statistic1, class Statistic2>
[[nodiscard]] paired_bootstrap_result paired_bootstrap(const resampling_plan& plan, const Statistic1& stat1,
                                                       const Statistic2& stat2, bootstrap_options opt = {}) {
  detail::check_level(opt.level, "paired_bootstrap");
  paired_bootstrap_result r;
  r.first.estimate = detail::full_estimate(stat1, plan.sample_count(), "paired_bootstrap (statistic 1)");
  r.second.estimate = detail::full_estimate(stat2, plan.sample_count(), "paired_bootstrap (statistic 2)");
  r.difference = r.first.estimate - r.second.estimate;
  r.requested = r.first.requested = r.second.requested = plan.replicate_count();
  const auto values = detail::run_replicates(plan, opt.parallel, stat1, stat2);
  for (std::size_t b = 0; b < r.requested; ++b) {
    if (values[0][b] && values[1][b]) {
      r.first.replicates.push_back(*values[0][b]);
      r.second.replicates.push_back(*values[1][b]);
      r.deltas.push_back(*values[0][b] - *values[1][b]);
    } else {
      r.skipped_replicates.push_back(b);
    }
  }
  r.skipped = r.first.skipped = r.second.skipped = r.skipped_replicates.size();
  r.first.skipped_replicates = r.second.skipped_replicates = r.skipped_replicates;
  detail::summarise(r.first, opt.level, "paired_bootstrap (statistic 1)");
  detail::summarise(r.second, opt.level, "paired_bootstrap (statistic 2)");
  r.sd_delta = sample_sd(r.deltas);
  MAMMOCL_CHECK(r.sd_delta > 0, numeric_error, "paired_bootstrap: sd of the replicate differences is 0 (",
                "identical statistics?); D = difference / sd is undefined");
  r.z = r.difference / r.sd_delta;
  r.p_two_sided = std::erfc(std::abs(r.z) / std::sqrt(2.0));
  r.p_greater = 0.5 * std::erfc(r.z / std::sqrt(2.0));   // Φ(−D)
  r.p_less = 0.5 * std::erfc(-r.z / std::sqrt(2.0));     // Φ(D)
  std::size_t le = 0, ge = 0;
  for (double d : r.deltas) {
    le += d <= 0;
    ge += d >= 0;
  }
  const double bp1 = static_cast<double>(r.deltas.size() + 1);
  r.p_percentile = std::min(1.0, 2 * std::min((1 + static_cast<double>(le)) / bp1, (1 + static_cast<double>(ge)) / bp1));
  r.ci_low = quantile_type7(r.deltas, (1 - opt.level) / 2);
  r.ci_high = quantile_type7(r.deltas, (1 + opt.level) / 2);
  return r;
}

}  // namespace mammocl::eval

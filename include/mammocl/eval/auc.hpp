#pragma once
/// ROC AUC for evaluation (METHOD.md §6.1–6.2), host-side, on plain spans:
///
/// * `binary_auc`: the Mann–Whitney AUC with ties counted half, computed in O(N log N) from one sort
///   (equal to scikit-learn's `roc_auc_score` for a binary problem).
/// * `roc_curve`, `roc_curve_one_vs_rest`: ROC points as scikit-learn's `roc_curve(...,
///   drop_intermediate=False)` (scikit-learn >= 1.3: the first threshold is +infinity).
/// * `ovo_auc`: the one-vs-one multiclass AUC of Hand & Till (2001), macro and prevalence-weighted,
///   equal to scikit-learn's `roc_auc_score(multi_class="ovo", average=...)`, with the pairwise values.
/// * `binary_auc_statistic`, `ovo_auc_statistic`: the same AUCs on a resample (a multiset of sample
///   indices), for the bootstrap (bootstrap.hpp); the data are sorted once and each resample costs O(N).
///
/// Errors (never a silent NaN):
/// * `shape_error`: mismatched lengths, an empty input, an index outside the data;
/// * `config_error`: a label outside [0, K), a class absent from the labels, a single-class set;
/// * `numeric_error`: a NaN or infinite score, or (multiclass) a score row that does not sum to 1.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"

namespace mammocl::eval {

/// ROC curve points: `fpr[i]`, `tpr[i]` are the rates when predicting positive for score >= thresholds[i].
/// thresholds are decreasing; thresholds[0] = +infinity with fpr = tpr = 0 (as scikit-learn >= 1.3).
struct roc_points {
  std::vector<double> fpr;
  std::vector<double> tpr;
  std::vector<double> thresholds;
};

/// One unordered class pair (a < b) of the one-vs-one AUC.
struct ovo_pair {
  int a = 0;
  int b = 0;
  std::size_t count = 0;   ///< samples of class a or b (n_ab)
  double auc_a_b = 0;      ///< A(a|b): positives class a, negatives class b, score column a
  double auc_b_a = 0;      ///< A(b|a): positives class b, negatives class a, score column b
  double auc = 0;          ///< Â_ab = (A(a|b) + A(b|a)) / 2
};

/// The one-vs-one AUC with its pairwise values.
struct ovo_auc_result {
  int num_classes = 0;
  /// Unweighted mean of Â_ab over the K(K-1)/2 pairs (scikit-learn average="macro"). With K = 2, the
  /// binary AUC of score column 1 (scikit-learn's binary path), i.e. A(1|0).
  double macro = 0;
  /// Σ p_ab Â_ab / Σ p_ab with p_ab = n_ab / n (scikit-learn's code, average="weighted"). With K = 2, as
  /// macro.
  double weighted = 0;
  /// The pairs (0,1), (0,2), ..., (K-2,K-1) in scikit-learn's order.
  std::vector<ovo_pair> pairs;
  /// K×K row-major: entry (a, b) = A(a|b) for a != b. The diagonal (a class against itself) is 0.5 by
  /// convention.
  std::vector<double> directional;

  /// Â_ab for a != b (either order). Throws config_error for a == b or a class outside [0, K).
  [[nodiscard]] double pair(int a, int b) const {
    MAMMOCL_CHECK(a >= 0 && a < num_classes && b >= 0 && b < num_classes && a != b, config_error,
                  "ovo_auc_result::pair: (", a, ", ", b, ") is not a pair of distinct classes in [0, ",
                  num_classes, ")");
    const auto k = static_cast<std::size_t>(num_classes);
    return 0.5 * (directional[static_cast<std::size_t>(a) * k + static_cast<std::size_t>(b)] +
                  directional[static_cast<std::size_t>(b) * k + static_cast<std::size_t>(a)]);
  }
};

/// Options of `ovo_auc` and `ovo_auc_statistic`.
struct ovo_options {
  /// As scikit-learn: every score row must sum to 1 (|1 - s| <= 1e-8 + 1e-5·|s|, numpy.allclose), else a
  /// numeric_error. Set false to rank raw scores (e.g. logits); the AUC is then Hand & Till's M on those
  /// scores, which scikit-learn refuses to compute.
  bool require_probabilities = true;
};

/// Which average an `ovo_auc_statistic` returns.
enum class ovo_average { macro, weighted };

namespace detail {

/// Sample indices sorted ascending by one score column, with the starts of the tie groups.
struct sorted_column {
  std::vector<std::uint32_t> order;
  std::vector<std::uint32_t> group_start;  ///< one entry per tie group plus the end (order.size())
};

/// Sorts the n samples by scores[i*stride + col]; equal scores form one tie group.
inline sorted_column sort_column(std::span<const double> scores, std::size_t n, std::size_t stride,
                                 std::size_t col) {
  std::vector<std::pair<double, std::uint32_t>> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = {scores[i * stride + col], static_cast<std::uint32_t>(i)};
  std::sort(v.begin(), v.end());
  sorted_column s;
  s.order.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    s.order[i] = v[i].second;
    if (i == 0 || v[i].first != v[i - 1].first) s.group_start.push_back(static_cast<std::uint32_t>(i));
  }
  s.group_start.push_back(static_cast<std::uint32_t>(n));
  return s;
}

inline void check_finite(std::span<const double> scores, const char* who) {
  for (std::size_t i = 0; i < scores.size(); ++i)
    MAMMOCL_CHECK(std::isfinite(scores[i]), numeric_error, who, ": score ", scores[i], " at flat index ", i,
                  " is not finite (NaN or Inf); the AUC needs finite scores");
}

inline void check_sizes(std::size_t n_scores, std::size_t n_labels, std::size_t k, const char* who) {
  MAMMOCL_EXPECTS(n_labels > 0, who, ": no samples (empty labels)");
  MAMMOCL_EXPECTS(n_scores == n_labels * k, who, ": ", n_scores, " scores for ", n_labels, " labels and ", k,
                  k == 1 ? " score per sample" : " classes (expected N×K row-major scores)", "; expected ",
                  n_labels * k);
  MAMMOCL_EXPECTS(n_labels < std::numeric_limits<std::uint32_t>::max(), who, ": ", n_labels,
                  " samples exceed the supported 2^32 - 1");
}

inline void check_labels(std::span<const int> labels, int k, const char* who) {
  for (std::size_t i = 0; i < labels.size(); ++i)
    MAMMOCL_CHECK(labels[i] >= 0 && labels[i] < k, config_error, who, ": label ", labels[i], " at index ", i,
                  " is outside [0, ", k, ")");
}

/// Mann–Whitney wins of the positives over the negatives (ties half) on a sorted column; sample i has
/// multiplicity w[i] (all 1 when w is empty). Positives: labels[i] == 1.
inline double binary_wins(const sorted_column& s, std::span<const int> labels, std::span<const double> w,
                          double& n_pos, double& n_neg) {
  double wins = 0, below = 0, pos = 0;
  for (std::size_t g = 0; g + 1 < s.group_start.size(); ++g) {
    double p = 0, q = 0;
    for (std::uint32_t k = s.group_start[g]; k < s.group_start[g + 1]; ++k) {
      const std::uint32_t i = s.order[k];
      const double wi = w.empty() ? 1.0 : w[i];
      if (labels[i] == 1) p += wi;
      else q += wi;
    }
    wins += p * (below + 0.5 * q);
    below += q;
    pos += p;
  }
  n_pos = pos;
  n_neg = below;
  return wins;
}

/// One-vs-one wins from the K sorted columns: wins[a*K+b] = Mann–Whitney wins of class a over class b in
/// score column a (ties half); counts[c] = total multiplicity of class c.
inline void ovo_wins(const std::vector<sorted_column>& cols, std::span<const int> labels,
                     std::span<const double> w, int k, std::vector<double>& wins, std::vector<double>& counts) {
  const auto ku = static_cast<std::size_t>(k);
  wins.assign(ku * ku, 0.0);
  counts.assign(ku, 0.0);
  std::vector<double> below(ku), q(ku);
  for (std::size_t a = 0; a < ku; ++a) {
    const sorted_column& s = cols[a];
    std::fill(below.begin(), below.end(), 0.0);
    double* wa = wins.data() + a * ku;
    for (std::size_t g = 0; g + 1 < s.group_start.size(); ++g) {
      if (s.group_start[g + 1] - s.group_start[g] == 1) {  // no tie: the common case, O(1) for a negative
        const std::uint32_t i = s.order[s.group_start[g]];
        const double wi = w.empty() ? 1.0 : w[i];
        if (wi == 0) continue;
        const auto c = static_cast<std::size_t>(labels[i]);
        if (c != a) {
          below[c] += wi;
          continue;
        }
        for (std::size_t cc = 0; cc < ku; ++cc) wa[cc] += wi * below[cc];
        counts[a] += wi;
        continue;
      }
      double p = 0;
      std::fill(q.begin(), q.end(), 0.0);
      for (std::uint32_t j = s.group_start[g]; j < s.group_start[g + 1]; ++j) {
        const std::uint32_t i = s.order[j];
        const double wi = w.empty() ? 1.0 : w[i];
        const auto c = static_cast<std::size_t>(labels[i]);
        if (c == a) p += wi;
        else q[c] += wi;
      }
      for (std::size_t c = 0; c < ku; ++c) {
        if (p != 0) wa[c] += p * (below[c] + 0.5 * q[c]);
        below[c] += q[c];
      }
      counts[a] += p;
    }
  }
}

/// Fills the result from the wins and class counts (all counts must be positive).
inline ovo_auc_result ovo_from_wins(const std::vector<double>& wins, const std::vector<double>& counts, int k) {
  const auto ku = static_cast<std::size_t>(k);
  ovo_auc_result r;
  r.num_classes = k;
  r.directional.assign(ku * ku, 0.5);
  double total = 0;
  for (double c : counts) total += c;
  for (std::size_t a = 0; a < ku; ++a)
    for (std::size_t b = 0; b < ku; ++b)
      if (a != b) r.directional[a * ku + b] = wins[a * ku + b] / (counts[a] * counts[b]);
  double sum = 0, wsum = 0, psum = 0;
  for (std::size_t a = 0; a < ku; ++a)
    for (std::size_t b = a + 1; b < ku; ++b) {
      ovo_pair p;
      p.a = static_cast<int>(a);
      p.b = static_cast<int>(b);
      p.count = static_cast<std::size_t>(counts[a] + counts[b]);
      p.auc_a_b = r.directional[a * ku + b];
      p.auc_b_a = r.directional[b * ku + a];
      p.auc = (p.auc_a_b + p.auc_b_a) / 2;
      const double prevalence = (counts[a] + counts[b]) / total;
      sum += p.auc;
      wsum += prevalence * p.auc;
      psum += prevalence;
      r.pairs.push_back(p);
    }
  if (k == 2) {
    r.macro = r.weighted = r.directional[1 * ku + 0];
  } else {
    r.macro = sum / static_cast<double>(r.pairs.size());
    r.weighted = wsum / psum;
  }
  return r;
}

inline void check_probability_rows(std::span<const double> scores, std::size_t n, std::size_t k, const char* who) {
  for (std::size_t i = 0; i < n; ++i) {
    double s = 0;
    for (std::size_t c = 0; c < k; ++c) s += scores[i * k + c];
    MAMMOCL_CHECK(std::abs(1.0 - s) <= 1e-8 + 1e-5 * std::abs(s), numeric_error, who, ": score row ", i,
                  " sums to ", s, ", not 1; pass probabilities (softmax), as scikit-learn requires, or set "
                  "ovo_options::require_probabilities = false");
  }
}

/// Throws config_error naming the classes absent from `counts` (zero multiplicity).
inline void check_all_classes_present(const std::vector<double>& counts, const char* who) {
  std::string absent, present;
  int n_present = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    std::string& s = counts[c] > 0 ? present : absent;
    if (!s.empty()) s += ", ";
    s += std::to_string(c);
    if (counts[c] > 0) ++n_present;
  }
  if (n_present == 1)
    MAMMOCL_THROW(config_error, who, ": only one class (", present,
                  ") is present in the labels; the AUC is undefined for a single-class set");
  if (!absent.empty())
    MAMMOCL_THROW(config_error, who, ": class(es) ", absent, " of the ", counts.size(),
                  " score columns are absent from the labels (present: ", present,
                  "); scikit-learn refuses this too");
}

inline void validate_binary(std::span<const double> scores, std::span<const int> labels, const char* who) {
  check_sizes(scores.size(), labels.size(), 1, who);
  check_labels(labels, 2, who);
  check_finite(scores, who);
  std::size_t pos = 0;
  for (int l : labels) pos += l == 1;
  MAMMOCL_CHECK(pos > 0 && pos < labels.size(), config_error, who, ": only one class (",
                pos == 0 ? "0, negatives" : "1, positives",
                ") is present in the labels; the AUC is undefined for a single-class set");
}

inline void validate_multiclass(std::span<const double> scores, std::span<const int> labels, int k,
                                const ovo_options& opt, const char* who) {
  MAMMOCL_CHECK(k >= 2, config_error, who, ": num_classes = ", k, "; need at least 2");
  check_sizes(scores.size(), labels.size(), static_cast<std::size_t>(k), who);
  check_labels(labels, k, who);
  check_finite(scores, who);
  std::vector<double> counts(static_cast<std::size_t>(k), 0.0);
  for (int l : labels) counts[static_cast<std::size_t>(l)] += 1;
  check_all_classes_present(counts, who);
  if (opt.require_probabilities && k > 2)
    check_probability_rows(scores, labels.size(), static_cast<std::size_t>(k), who);
}

/// Multiplicities of a resample: w[i] = how often index i occurs.
inline void multiplicities(std::span<const std::size_t> indices, std::size_t n, std::vector<double>& w,
                           const char* who) {
  w.assign(n, 0.0);
  for (std::size_t i : indices) {
    MAMMOCL_EXPECTS(i < n, who, ": resample index ", i, " is outside the ", n, " samples");
    w[i] += 1;
  }
}

}  // namespace detail

/// Binary ROC AUC (Mann–Whitney, ties counted half) of `scores` (one per sample, larger = more positive)
/// against `labels` in {0, 1} (1 = positive). O(N log N). Equals scikit-learn's roc_auc_score(labels, scores).
/// Throws: shape_error (empty or lengths differ), config_error (a label not 0/1, or one class only — as
/// scikit-learn), numeric_error (a NaN/Inf score).
[[nodiscard]] inline double binary_auc(std::span<const double> scores, std::span<const int> labels) {
  detail::validate_binary(scores, labels, "binary_auc");
  const auto s = detail::sort_column(scores, labels.size(), 1, 0);
  double n_pos = 0, n_neg = 0;
  const double wins = detail::binary_wins(s, labels, {}, n_pos, n_neg);
  return wins / (n_pos * n_neg);
}

/// ROC curve of `scores` against `labels` in {0, 1}, as scikit-learn's roc_curve(labels, scores,
/// drop_intermediate=False) (>= 1.3): one point per distinct score, descending thresholds, and a first point
/// (0, 0) at threshold +infinity; the last point is (1, 1). Same errors as `binary_auc` (scikit-learn only
/// warns on a single-class set and returns NaN rates; here that is a config_error).
[[nodiscard]] inline roc_points roc_curve(std::span<const double> scores, std::span<const int> labels) {
  detail::validate_binary(scores, labels, "roc_curve");
  const auto s = detail::sort_column(scores, labels.size(), 1, 0);
  roc_points r;
  const std::size_t groups = s.group_start.size() - 1;
  r.fpr.reserve(groups + 1);
  r.tpr.reserve(groups + 1);
  r.thresholds.reserve(groups + 1);
  r.fpr.push_back(0);
  r.tpr.push_back(0);
  r.thresholds.push_back(std::numeric_limits<double>::infinity());
  double tp = 0, fp = 0;
  for (std::size_t g = groups; g-- > 0;) {  // descending scores
    for (std::uint32_t j = s.group_start[g]; j < s.group_start[g + 1]; ++j)
      (labels[s.order[j]] == 1 ? tp : fp) += 1;
    r.fpr.push_back(fp);
    r.tpr.push_back(tp);
    r.thresholds.push_back(scores[s.order[s.group_start[g]]]);
  }
  for (double& v : r.fpr) v /= fp;
  for (double& v : r.tpr) v /= tp;
  return r;
}

/// One-vs-rest ROC curve of class `positive_class` from N×K row-major `scores` and `labels` in [0, K):
/// roc_curve on score column `positive_class` with positives labels == positive_class. For plotting a
/// multiclass model's per-class curves. Throws as `roc_curve`, plus config_error for a class outside [0, K).
[[nodiscard]] inline roc_points roc_curve_one_vs_rest(std::span<const double> scores, std::span<const int> labels,
                                                      int num_classes, int positive_class) {
  const char* who = "roc_curve_one_vs_rest";
  MAMMOCL_CHECK(num_classes >= 2, config_error, who, ": num_classes = ", num_classes, "; need at least 2");
  MAMMOCL_CHECK(positive_class >= 0 && positive_class < num_classes, config_error, who, ": positive_class ",
                positive_class, " is outside [0, ", num_classes, ")");
  const auto k = static_cast<std::size_t>(num_classes);
  detail::check_sizes(scores.size(), labels.size(), k, who);
  detail::check_labels(labels, num_classes, who);
  std::vector<double> col(labels.size());
  std::vector<int> bin(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    col[i] = scores[i * k + static_cast<std::size_t>(positive_class)];
    bin[i] = labels[i] == positive_class ? 1 : 0;
  }
  return roc_curve(col, bin);
}

/// One-vs-one multiclass AUC (Hand & Till M) of N×K row-major `scores` (column c = score of class c) against
/// `labels` in [0, K), equal to scikit-learn's roc_auc_score(labels, scores, multi_class="ovo") with
/// average="macro" (`macro`) and "weighted" (`weighted`, normalised by Σ p_ab as scikit-learn's code does).
/// With K = 2, macro = weighted = the binary AUC of column 1 (scikit-learn's binary path). O(K·N log N).
/// Throws: shape_error (scores.size() != N·K, empty), config_error (K < 2, a label outside [0, K), a class
/// absent from the labels, a single class), numeric_error (NaN/Inf score; with K > 2 and
/// opt.require_probabilities, a row that does not sum to 1).
[[nodiscard]] inline ovo_auc_result ovo_auc(std::span<const double> scores, std::span<const int> labels,
                                            int num_classes, ovo_options opt = {}) {
  detail::validate_multiclass(scores, labels, num_classes, opt, "ovo_auc");
  const auto k = static_cast<std::size_t>(num_classes);
  std::vector<detail::sorted_column> cols;
  cols.reserve(k);
  for (std::size_t c = 0; c < k; ++c) cols.push_back(detail::sort_column(scores, labels.size(), k, c));
  std::vector<double> wins, counts;
  detail::ovo_wins(cols, labels, {}, num_classes, wins, counts);
  return detail::ovo_from_wins(wins, counts, num_classes);
}

/// One-vs-one macro AUC over the classes that occur in `labels` (at least two of the `num_classes`): the
/// score columns of the absent classes are dropped and Hand & Till's M is computed on the rest (raw
/// columns, so a row need not sum to 1 once columns are dropped). Equal to `ovo_auc(...).macro` when every
/// class occurs. For small real test sets in which a rare class (e.g. malignant calcification) may have no
/// sample; report which classes were present next to the value. Throws config_error when fewer than two
/// classes occur, and as `ovo_auc` otherwise.
[[nodiscard]] inline double ovo_auc_present(std::span<const double> scores, std::span<const int> labels,
                                            int num_classes) {
  MAMMOCL_CHECK(num_classes >= 2, config_error, "ovo_auc_present: num_classes must be at least 2, got ", num_classes);
  const auto k = static_cast<std::size_t>(num_classes);
  MAMMOCL_CHECK(scores.size() == labels.size() * k, shape_error, "ovo_auc_present: ", scores.size(),
                " scores for ", labels.size(), " labels and ", num_classes, " classes");
  std::vector<int> remap(k, -1);
  for (int y : labels) {
    MAMMOCL_CHECK(y >= 0 && y < num_classes, config_error, "ovo_auc_present: label ", y, " outside [0, ",
                  num_classes, ")");
    remap[static_cast<std::size_t>(y)] = 0;
  }
  int present = 0;
  for (auto& r : remap)
    if (r == 0) r = present++;
  MAMMOCL_CHECK(present >= 2, config_error, "ovo_auc_present: the labels hold ", present,
                " class(es); an AUC needs at least two");
  if (present == num_classes) return ovo_auc(scores, labels, num_classes).macro;
  std::vector<double> sub;
  sub.reserve(labels.size() * static_cast<std::size_t>(present));
  std::vector<int> y2;
  y2.reserve(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    for (std::size_t c = 0; c < k; ++c)
      if (remap[c] >= 0) sub.push_back(scores[i * k + c]);
    y2.push_back(remap[static_cast<std::size_t>(labels[i])]);
  }
  return ovo_auc(sub, y2, present, {.require_probabilities = false}).macro;
}

/// Binary AUC of a resample, for the bootstrap: the scores and labels are validated (as `binary_auc`) and
/// sorted once; `operator()` takes a multiset of sample indices and costs O(N + indices). Equal to
/// binary_auc on the gathered scores and labels. Thread-safe (const, no shared scratch).
class binary_auc_statistic {
 public:
  binary_auc_statistic(std::span<const double> scores, std::span<const int> labels)
      : labels_(labels.begin(), labels.end()) {
    detail::validate_binary(scores, labels, "binary_auc_statistic");
    sorted_ = detail::sort_column(scores, labels.size(), 1, 0);
  }
  /// Number of samples the indices refer to.
  [[nodiscard]] std::size_t size() const noexcept { return labels_.size(); }
  /// The AUC of the resample, or nullopt when it lacks positives or negatives. Throws shape_error for an
  /// index >= size().
  [[nodiscard]] std::optional<double> operator()(std::span<const std::size_t> indices) const {
    std::vector<double> w;
    detail::multiplicities(indices, labels_.size(), w, "binary_auc_statistic");
    double n_pos = 0, n_neg = 0;
    const double wins = detail::binary_wins(sorted_, labels_, w, n_pos, n_neg);
    if (n_pos == 0 || n_neg == 0) return std::nullopt;
    return wins / (n_pos * n_neg);
  }

 private:
  std::vector<int> labels_;
  detail::sorted_column sorted_;
};

/// One-vs-one AUC (macro or weighted) of a resample, for the bootstrap: validated (as `ovo_auc`) and sorted
/// once; each call costs O(K·N + indices). Equal to ovo_auc on the gathered rows. Thread-safe.
class ovo_auc_statistic {
 public:
  ovo_auc_statistic(std::span<const double> scores, std::span<const int> labels, int num_classes,
                    ovo_average average = ovo_average::macro, ovo_options opt = {})
      : labels_(labels.begin(), labels.end()), k_(num_classes), average_(average) {
    detail::validate_multiclass(scores, labels, num_classes, opt, "ovo_auc_statistic");
    for (std::size_t c = 0; c < static_cast<std::size_t>(k_); ++c)
      cols_.push_back(detail::sort_column(scores, labels.size(), static_cast<std::size_t>(k_), c));
  }
  /// Number of samples the indices refer to.
  [[nodiscard]] std::size_t size() const noexcept { return labels_.size(); }
  /// The AUC of the resample, or nullopt when a class is missing from it. Throws shape_error for an index
  /// >= size().
  [[nodiscard]] std::optional<double> operator()(std::span<const std::size_t> indices) const {
    const std::optional<ovo_auc_result> r = full(indices);
    if (!r) return std::nullopt;
    return average_ == ovo_average::macro ? r->macro : r->weighted;
  }
  /// The full result (pairs included) of the resample, or nullopt when a class is missing from it.
  [[nodiscard]] std::optional<ovo_auc_result> full(std::span<const std::size_t> indices) const {
    std::vector<double> w, wins, counts;
    detail::multiplicities(indices, labels_.size(), w, "ovo_auc_statistic");
    detail::ovo_wins(cols_, labels_, w, k_, wins, counts);
    for (double c : counts)
      if (c == 0) return std::nullopt;
    return detail::ovo_from_wins(wins, counts, k_);
  }

 private:
  std::vector<int> labels_;
  int k_;
  ovo_average average_;
  std::vector<detail::sorted_column> cols_;
};

}  // namespace mammocl::eval

#pragma once
/// Linear-probe generalisation (METHOD.md §5.5, the poster's INbreast test): freeze a trained encoder,
/// extract its pooled features once per sample in inference mode, train only a new `Linear(F, K)` with
/// cross-entropy on those cached features, and report the test AUC with a bootstrap interval.
///
/// * `extract_features(ctx, model, source)`: the encoder in eval mode (`infer_features`: running BN
///   statistics, no cache, no gradient) over every batch of any `data::BatchSource`, copied to the host.
///   The model is taken by const reference and never written: its weights and buffers are bit-identical
///   afterwards (tested).
/// * `fit_linear_probe(train, test, opt)`: the feature-level core, usable without a model (features from
///   anywhere). The head has its own class count (`opt.classes`), independent of the model's head: a
///   5-class patch encoder can be probed on a 2-class set (INbreast: cancer / no cancer).
/// * `linear_probe(ctx, model, train, test, opt)`: both of the above.
///
/// The head is trained on the host (`cpu_backend`, float) whatever backend the encoder runs on: it is a
/// K×F matrix and the features are cached, so one epoch costs O(N·F·K). Mini-batches are drawn by a
/// permutation of the training samples per epoch, seeded by (opt.seed, epoch); the result is a pure
/// function of the features, the labels and the options (the thread count included).
///
/// AUC: the one-vs-one macro AUC of Hand & Till over the softmax outputs (eval/auc.hpp), which with K = 2
/// is the binary AUC of the positive-class probability. The bootstrap (eval/bootstrap.hpp) resamples the
/// test samples stratified by class and, when the source gives ids, clustered on them (the two domain
/// versions of one image, or one patient's images, enter a replicate together).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/data/batch.hpp"
#include "mammocl/eval/auc.hpp"
#include "mammocl/eval/bootstrap.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/losses/cross_entropy.hpp"
#include "mammocl/optim/optimizer.hpp"
#include "mammocl/train/progress.hpp"
#include "mammocl/train/strategies.hpp"

namespace mammocl::train {

/// What the probe needs of a model: pooled features (N,F) in inference mode from a const model. Every
/// `ClassifierModel` (the DenseNets) and the whole-image classifier are.
template <class M>
concept FeatureEncoder =
    Backend<typename M::backend_type> &&
    requires(const M& cm, typename M::backend_type::context& ctx, const tensor<typename M::backend_type>& x) {
      { cm.infer_features(ctx, x) } -> std::same_as<tensor<typename M::backend_type>>;
    };

/// METHOD.md §5.3's linear probe (HobbitLong `main_linear.py`): SGD lr 0.1, momentum 0.9, no weight decay,
/// step schedule ×0.2 at 60 %, 75 % and 90 % of the epochs (60/75/90 of 100).
[[nodiscard]] inline stage_options linear_probe_defaults(int epochs = 100) {
  stage_options s;
  s.epochs = epochs;
  s.optimizer = optimizer_kind::sgd;
  s.lr = 0.1;
  s.momentum = 0.9;
  s.weight_decay = 0.0;
  s.schedule = schedule_kind::multistep;
  s.milestones = {epochs * 60 / 100, epochs * 75 / 100, epochs * 90 / 100};
  s.gamma = 0.2;
  return s;
}

/// How the probe is trained and evaluated.
struct linear_probe_options {
  stage_options stage = linear_probe_defaults();  ///< epochs, optimizer, learning rate and schedule
  int classes = 0;                 ///< the probe's own class count (>= 2); labels must lie in [0, classes)
  std::int64_t batch_size = 256;   ///< samples per step (main_linear.py: 256); the last batch may be smaller
  std::uint64_t seed = 1;          ///< head initialisation, shuffling and the bootstrap
  /// z-score each feature with the training set's mean and SD before training (off: main_linear.py feeds
  /// the raw features). The reported head is folded back so that it applies to raw features.
  bool standardize = false;
  std::vector<float> initial_weight{};  ///< classes×dim row-major start (empty: U(±1/√dim), as PyTorch)
  std::vector<float> initial_bias{};    ///< classes (empty: zeros)
  std::size_t bootstrap_replicates = 1000;  ///< 0: no bootstrap; else >= 2
  double bootstrap_level = 0.95;            ///< percentile interval level
  bool bootstrap_clustered = true;          ///< resample test samples that share an id together
  int threads = 1;                 ///< threads of the host context that trains the head
  bool progress = false;           ///< a progress line per epoch
  std::FILE* progress_stream = stderr;
};

/// Features of one set of samples, on the host.
struct feature_set {
  std::vector<float> features{};    ///< N×dim row-major
  std::size_t dim = 0;
  std::vector<int> labels{};        ///< N
  std::vector<int> domains{};       ///< N, or empty when the source gave none
  std::vector<std::int64_t> ids{};  ///< N, or empty when the source gave none
  [[nodiscard]] std::size_t size() const noexcept { return labels.size(); }
};

/// What the probe did.
struct linear_probe_result {
  int classes = 0;
  std::size_t dim = 0, train_samples = 0, test_samples = 0;
  double train_auc = 0, test_auc = 0;          ///< OvO macro AUC (binary AUC when classes == 2)
  double train_accuracy = 0, test_accuracy = 0;
  /// Test AUC of domain 0 (A) and 1 (B) alone, where the test set gives domains and every class is in it.
  std::optional<double> test_auc_domain[2];
  /// Bootstrap of the test AUC (s.e., percentile CI), stratified by class, clustered on ids; requested = 0
  /// when opt.bootstrap_replicates == 0.
  eval::bootstrap_result test_auc_bootstrap;
  std::vector<double> test_prob;               ///< test_samples×classes softmax outputs, in source order
  std::vector<int> test_labels, test_domains;
  std::vector<std::int64_t> test_ids;
  std::vector<float> weight, bias;             ///< the trained head on raw features: classes×dim, classes
  std::vector<double> loss_per_epoch;          ///< mean training CE of each epoch (over its steps' samples)
};

namespace detail {

inline std::uint64_t probe_mix(std::uint64_t a, std::uint64_t b) {
  std::uint64_t z = a * 0x9E3779B97F4A7C15ULL + b + 0x7F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

/// Throws unless `s` is a usable feature set (`which`: "training" or "test").
inline void check_feature_set(const feature_set& s, int classes, const char* which) {
  const std::size_t n = s.labels.size();
  MAMMOCL_CHECK(n > 0, config_error, "linear_probe: the ", which, " set is empty (0 samples); expected at least one");
  MAMMOCL_EXPECTS(s.dim >= 1, "linear_probe: the ", which, " features have dim 0; expected >= 1");
  MAMMOCL_EXPECTS(s.features.size() == n * s.dim, "linear_probe: the ", which, " set has ", s.features.size(),
                  " feature values for ", n, " samples of dim ", s.dim, "; expected ", n * s.dim);
  MAMMOCL_EXPECTS(s.domains.empty() || s.domains.size() == n, "linear_probe: the ", which, " set has ",
                  s.domains.size(), " domains for ", n, " samples; expected ", n, " or none");
  MAMMOCL_EXPECTS(s.ids.empty() || s.ids.size() == n, "linear_probe: the ", which, " set has ", s.ids.size(),
                  " ids for ", n, " samples; expected ", n, " or none");
  for (std::size_t i = 0; i < n; ++i)
    MAMMOCL_CHECK(s.labels[i] >= 0 && s.labels[i] < classes, config_error, "linear_probe: ", which, " label ",
                  s.labels[i], " of sample ", i, " is outside [0, ", classes, ") (linear_probe_options::classes = ",
                  classes, ")");
  for (std::size_t i = 0; i < s.features.size(); ++i)
    MAMMOCL_CHECK(std::isfinite(s.features[i]), numeric_error, "linear_probe: ", which, " feature ", i % s.dim,
                  " of sample ", i / s.dim, " is ", s.features[i], "; expected finite features from the encoder");
  std::vector<std::size_t> count(static_cast<std::size_t>(classes), 0);
  for (int y : s.labels) ++count[static_cast<std::size_t>(y)];
  std::string absent, present;
  for (std::size_t c = 0; c < count.size(); ++c) {
    std::string& t = count[c] ? present : absent;
    t += (t.empty() ? "" : ", ") + std::to_string(c);
  }
  MAMMOCL_CHECK(absent.empty(), config_error, "linear_probe: class(es) ", absent, " absent from the ", which,
                " labels (", n, " samples, present: ", present, "); expected every one of the ", classes,
                " classes (linear_probe_options::classes)");
}

inline void check_probe_options(const linear_probe_options& o) {
  MAMMOCL_CHECK(o.classes >= 2, config_error, "linear_probe_options::classes must be >= 2 (the probe's own class "
                "count), got ", o.classes);
  MAMMOCL_CHECK(o.batch_size >= 1, config_error, "linear_probe_options::batch_size must be >= 1, got ", o.batch_size);
  MAMMOCL_CHECK(o.stage.epochs >= 1, config_error, "linear_probe_options::stage.epochs must be >= 1, got ",
                o.stage.epochs);
  MAMMOCL_CHECK(o.bootstrap_replicates == 0 || o.bootstrap_replicates >= 2, config_error,
                "linear_probe_options::bootstrap_replicates must be 0 (no bootstrap) or >= 2, got ",
                o.bootstrap_replicates);
  MAMMOCL_CHECK(o.threads >= 1, config_error, "linear_probe_options::threads must be >= 1, got ", o.threads);
}

/// Softmax probabilities (N×K) of the head (W, b) on the features, in double.
inline std::vector<double> probe_probabilities(const std::vector<float>& x, std::size_t dim, const std::vector<float>& w,
                                               const std::vector<float>& b, std::size_t k) {
  const std::size_t n = x.size() / dim;
  std::vector<double> p(n * k), z(k);
  for (std::size_t i = 0; i < n; ++i) {
    const float* xi = x.data() + i * dim;
    double mx = -INFINITY;
    for (std::size_t c = 0; c < k; ++c) {
      double s = b[c];
      const float* wc = w.data() + c * dim;
      for (std::size_t j = 0; j < dim; ++j) s += static_cast<double>(wc[j]) * static_cast<double>(xi[j]);
      z[c] = s;
      mx = std::max(mx, s);
    }
    double sum = 0;
    for (std::size_t c = 0; c < k; ++c) sum += z[c] = std::exp(z[c] - mx);
    for (std::size_t c = 0; c < k; ++c) p[i * k + c] = z[c] / sum;
  }
  return p;
}

inline double probe_accuracy(const std::vector<double>& p, const std::vector<int>& labels, std::size_t k) {
  std::size_t correct = 0;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    const double* row = p.data() + i * k;
    correct += static_cast<int>(std::max_element(row, row + k) - row) == labels[i];
  }
  return static_cast<double>(correct) / static_cast<double>(labels.size());
}

}  // namespace detail

/// Runs the encoder in inference mode over every batch of `source` (requests {stage 0, epoch 0, index i,
/// views 1}, i < batches_per_epoch()) and returns the pooled features on the host. Domains and ids are
/// kept when every batch gives them. Give it a source in a fixed order without augmentation and without
/// dropping the last batch, or those samples are not seen. `which` names the source in errors.
/// Throws config_error (no batches), shape_error (a batch with views != 1 or inconsistent sizes, features
/// that are not (N,F) or change width).
template <FeatureEncoder M, class S>
  requires data::BatchSource<std::remove_reference_t<S>>
[[nodiscard]] feature_set extract_features(typename M::backend_type::context& ctx, const M& model, S&& source,
                                           const char* which = "source") {
  using B = typename M::backend_type;
  using T = typename B::scalar_type;
  const auto batches = static_cast<std::int64_t>(source.batches_per_epoch());
  MAMMOCL_CHECK(batches >= 1, config_error, "linear_probe: the ", which, " source is empty (batches_per_epoch() = ",
                batches, "); expected at least one batch");
  feature_set fs;
  bool all_domains = true, all_ids = true;
  std::vector<T> host;
  for (std::int64_t i = 0; i < batches; ++i) {
    const data::batch b = source.get_batch({0, 0, i, 1});
    MAMMOCL_EXPECTS(b.views == 1, "linear_probe: batch ", i, " of the ", which, " source has ", b.views,
                    " views per sample; expected 1");
    b.validate();
    MAMMOCL_EXPECTS(b.ids.empty() || b.ids.size() == b.labels.size(), "linear_probe: batch ", i, " of the ", which,
                    " source has ", b.ids.size(), " ids for ", b.samples, " samples; expected ", b.samples, " or none");
    const tensor<B> f = model.infer_features(ctx, detail::to_tensor<B>(b));
    MAMMOCL_EXPECTS(f.rank() == 2 && f.n() == b.samples, "linear_probe: the encoder returned features of shape ",
                    f.dims(), " for batch ", i, " of the ", which, " source; expected (", b.samples, ", F)");
    const auto dim = static_cast<std::size_t>(f.c());
    MAMMOCL_EXPECTS(fs.dim == 0 || fs.dim == dim, "linear_probe: batch ", i, " of the ", which, " source gave ", dim,
                    " features per sample, earlier batches ", fs.dim);
    fs.dim = dim;
    host.resize(static_cast<std::size_t>(f.numel()));
    B::to_host(f, host.data());
    fs.features.insert(fs.features.end(), host.begin(), host.end());  // float, whatever T is
    fs.labels.insert(fs.labels.end(), b.labels.begin(), b.labels.end());
    all_domains = all_domains && b.domains.size() == b.labels.size();
    all_ids = all_ids && b.ids.size() == b.labels.size();
    if (all_domains) fs.domains.insert(fs.domains.end(), b.domains.begin(), b.domains.end());
    if (all_ids) fs.ids.insert(fs.ids.end(), b.ids.begin(), b.ids.end());
  }
  if (!all_domains) fs.domains.clear();
  if (!all_ids) fs.ids.clear();
  return fs;
}

/// Trains a new `Linear(dim, opt.classes)` with cross-entropy on the training features and evaluates it
/// on the test features (see the file comment). Throws config_error (bad options, an empty set, a label
/// outside [0, classes), a class absent from the training or the test labels, a wrong-sized initial head),
/// shape_error (sizes that disagree, train and test dims that differ), numeric_error (a non-finite
/// feature, a head that diverged to non-finite weights).
[[nodiscard]] inline linear_probe_result fit_linear_probe(const feature_set& train, const feature_set& test,
                                                          const linear_probe_options& opt) {
  using H = cpu_backend;
  detail::check_probe_options(opt);
  detail::check_feature_set(train, opt.classes, "training");
  detail::check_feature_set(test, opt.classes, "test");
  MAMMOCL_EXPECTS(train.dim == test.dim, "linear_probe: the training features have dim ", train.dim,
                  " but the test features ", test.dim);
  const std::size_t dim = train.dim, k = static_cast<std::size_t>(opt.classes), n = train.size();
  MAMMOCL_CHECK(opt.initial_weight.empty() || opt.initial_weight.size() == k * dim, config_error,
                "linear_probe_options::initial_weight has ", opt.initial_weight.size(), " values; expected classes×dim = ",
                k * dim, " or none");
  MAMMOCL_CHECK(opt.initial_bias.empty() || opt.initial_bias.size() == k, config_error,
                "linear_probe_options::initial_bias has ", opt.initial_bias.size(), " values; expected classes = ", k,
                " or none");

  // Optional z-scoring with the training statistics (double sums, an SD of 0 left at 1).
  std::vector<double> mean(dim, 0.0), sd(dim, 1.0);
  if (opt.standardize) {
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < dim; ++j) mean[j] += train.features[i * dim + j];
    for (double& m : mean) m /= static_cast<double>(n);
    std::vector<double> var(dim, 0.0);
    for (std::size_t i = 0; i < n; ++i)
      for (std::size_t j = 0; j < dim; ++j) {
        const double d = train.features[i * dim + j] - mean[j];
        var[j] += d * d;
      }
    for (std::size_t j = 0; j < dim; ++j) sd[j] = var[j] > 0 ? std::sqrt(var[j] / static_cast<double>(n)) : 1.0;
  }
  auto transformed = [&](const std::vector<float>& x) {
    if (!opt.standardize) return x;
    std::vector<float> y(x.size());
    for (std::size_t i = 0; i < x.size(); ++i)
      y[i] = static_cast<float>((x[i] - mean[i % dim]) / sd[i % dim]);
    return y;
  };
  const std::vector<float> xtr = transformed(train.features), xte = transformed(test.features);

  H::context hctx(opt.threads);
  layers::linear<H> head({.in_features = static_cast<index_t>(dim), .out_features = static_cast<index_t>(k)});
  if (opt.initial_weight.empty()) {
    rng r(detail::probe_mix(opt.seed, 0x11EA2));
    head.init(r);
  } else {
    std::copy(opt.initial_weight.begin(), opt.initial_weight.end(), head.weight().value.data());
  }
  if (!opt.initial_bias.empty()) std::copy(opt.initial_bias.begin(), opt.initial_bias.end(), head.bias().value.data());
  any_optimizer<H> optimizer(optim::collect_parameters<H>(head), opt.stage);
  const losses::cross_entropy ce;

  const auto bs = static_cast<std::size_t>(std::min<std::int64_t>(opt.batch_size, static_cast<std::int64_t>(n)));
  const auto steps = static_cast<std::int64_t>((n + bs - 1) / bs);
  linear_probe_result res;
  std::optional<progress_bar> bar;
  if (opt.progress) bar.emplace("linear probe", opt.stage.epochs, opt.progress_stream);
  std::vector<std::size_t> order(n);
  std::vector<int> yb;
  for (int epoch = 0; epoch < opt.stage.epochs; ++epoch) {
    for (std::size_t i = 0; i < n; ++i) order[i] = i;
    rng shuffle(detail::probe_mix(opt.seed, 0x5A0F1E00ULL + static_cast<std::uint64_t>(epoch)));
    for (std::size_t i = n; i > 1; --i) std::swap(order[i - 1], order[static_cast<std::size_t>(shuffle.below(i))]);
    double loss_sum = 0;
    std::size_t correct = 0;
    for (std::int64_t t = 0; t < steps; ++t) {
      const std::size_t from = static_cast<std::size_t>(t) * bs, m = std::min(bs, n - from);
      tensor<H> x(shape{static_cast<index_t>(m), static_cast<index_t>(dim)});
      yb.resize(m);
      for (std::size_t r = 0; r < m; ++r) {
        const std::size_t s = order[from + r];
        std::copy_n(xtr.data() + s * dim, dim, x.item(static_cast<index_t>(r)));
        yb[r] = train.labels[s];
      }
      typename layers::linear<H>::cache lc;
      const tensor<H> logits = head.forward(hctx, x, lc);
      tensor<H> dlogits;
      loss_sum += ce.value_and_gradient<H>(hctx, logits, yb, &dlogits) * static_cast<double>(m);
      correct += static_cast<std::size_t>(detail::count_correct(logits, yb));
      (void)head.backward(hctx, lc, dlogits, grad_mode::overwrite);
      optimizer.set_lr(stage_lr(opt.stage, epoch * steps + t, steps));
      optimizer.step(hctx);
      // Stop at the first non-finite weight, before it turns into a NaN loss with no context.
      for (const parameter<H>* p : {&head.weight(), &head.bias()})
        for (index_t q = 0; q < p->value.numel(); ++q)
          MAMMOCL_CHECK(std::isfinite(p->value.data()[q]), numeric_error, "linear_probe: the head diverged (",
                        p == &head.weight() ? "weight" : "bias", " value ", q, " is ", p->value.data()[q],
                        " after step ", t, " of epoch ", epoch, "); expected finite weights: lower stage.lr");
    }
    res.loss_per_epoch.push_back(loss_sum / static_cast<double>(n));
    if (bar)
      bar->update(epoch + 1, res.loss_per_epoch.back(), static_cast<double>(correct) / static_cast<double>(n),
                  static_cast<long>(n) * (epoch + 1));
  }

  // The head as trained (on transformed features), and folded back onto raw features.
  std::vector<float> w(head.weight().value.data(), head.weight().value.data() + k * dim);
  std::vector<float> b(head.bias().value.data(), head.bias().value.data() + k);
  res.weight = w;
  res.bias = b;
  if (opt.standardize)
    for (std::size_t c = 0; c < k; ++c) {
      double shift = 0;
      for (std::size_t j = 0; j < dim; ++j) {
        shift += w[c * dim + j] * mean[j] / sd[j];
        res.weight[c * dim + j] = static_cast<float>(w[c * dim + j] / sd[j]);
      }
      res.bias[c] = static_cast<float>(b[c] - shift);
    }

  res.classes = opt.classes;
  res.dim = dim;
  res.train_samples = n;
  res.test_samples = test.size();
  // Scores from the head exactly as trained, on the features it was trained on.
  const std::vector<double> ptr = detail::probe_probabilities(xtr, dim, w, b, k);
  res.test_prob = detail::probe_probabilities(xte, dim, w, b, k);
  res.train_auc = eval::ovo_auc(ptr, train.labels, opt.classes).macro;
  res.test_auc = eval::ovo_auc(res.test_prob, test.labels, opt.classes).macro;
  res.train_accuracy = detail::probe_accuracy(ptr, train.labels, k);
  res.test_accuracy = detail::probe_accuracy(res.test_prob, test.labels, k);
  res.test_labels = test.labels;
  res.test_domains = test.domains;
  res.test_ids = test.ids;
  if (!test.domains.empty())
    for (int d = 0; d < 2; ++d) {
      std::vector<double> p;
      std::vector<int> y;
      std::vector<char> seen(k, 0);
      for (std::size_t i = 0; i < test.size(); ++i)
        if (test.domains[i] == d) {
          p.insert(p.end(), res.test_prob.begin() + static_cast<std::ptrdiff_t>(i * k),
                   res.test_prob.begin() + static_cast<std::ptrdiff_t>((i + 1) * k));
          y.push_back(test.labels[i]);
          seen[static_cast<std::size_t>(test.labels[i])] = 1;
        }
      if (std::count(seen.begin(), seen.end(), 1) == static_cast<std::ptrdiff_t>(k))
        res.test_auc_domain[d] = eval::ovo_auc(p, y, opt.classes).macro;
    }
  if (opt.bootstrap_replicates > 0) {
    const eval::plan_options po{.replicates = opt.bootstrap_replicates, .seed = opt.seed, .stratified = true};
    const eval::resampling_plan plan = opt.bootstrap_clustered && !test.ids.empty()
                                           ? eval::make_clustered_plan(test.labels, test.ids, po)
                                           : eval::make_plan(test.labels, po);
    const eval::ovo_auc_statistic stat(res.test_prob, test.labels, opt.classes);
    res.test_auc_bootstrap = eval::bootstrap(plan, stat, {.level = opt.bootstrap_level});
  }
  return res;
}

/// `fit_linear_probe` on flat arrays: N×dim row-major features and N labels for each set (no domains,
/// no ids: the bootstrap resamples single samples).
[[nodiscard]] inline linear_probe_result fit_linear_probe(std::span<const float> train_features,
                                                          std::span<const int> train_labels,
                                                          std::span<const float> test_features,
                                                          std::span<const int> test_labels, std::size_t dim,
                                                          const linear_probe_options& opt) {
  feature_set tr{.features = {train_features.begin(), train_features.end()}, .dim = dim,
                 .labels = {train_labels.begin(), train_labels.end()}};
  feature_set te{.features = {test_features.begin(), test_features.end()}, .dim = dim,
                 .labels = {test_labels.begin(), test_labels.end()}};
  return fit_linear_probe(tr, te, opt);
}

/// The linear probe of a trained model on another dataset: features of `train` and `test` from the frozen
/// model in inference mode (`extract_features`; the model is not modified), then `fit_linear_probe`.
/// `opt.classes` is the probe's class count, independent of the model's own head. The sources may be
/// lvalues (const or not) or temporaries. Throws as both.
template <FeatureEncoder M, class Train, class Test>
  requires data::BatchSource<std::remove_reference_t<Train>> && data::BatchSource<std::remove_reference_t<Test>>
[[nodiscard]] linear_probe_result linear_probe(typename M::backend_type::context& ctx, const M& model, Train&& train,
                                               Test&& test, const linear_probe_options& opt) {
  detail::check_probe_options(opt);  // before the (possibly long) feature extraction
  const feature_set tr = extract_features(ctx, model, train, "training");
  const feature_set te = extract_features(ctx, model, test, "test");
  return fit_linear_probe(tr, te, opt);
}

}  // namespace mammocl::train

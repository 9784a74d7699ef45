// The linear probe (train/linear_probe.hpp): the head reaches AUC 1 on separable data, equals an
// independent double-precision softmax-CE gradient descent, is deterministic, folds a standardisation back
// onto raw features; on a frozen small DenseNet the model state is bit-identical afterwards and the AUCs
// agree with eval::ovo_auc; every bad input is refused with its message.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <limits>
#include <vector>

#include "mammocl/data/synthetic_domains.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/models/whole_image_classifier.hpp"
#include "mammocl/train/linear_probe.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using B = cpu_backend;
using task = data::synthetic_domain_task;

// The models METHOD.md §5.5 probes: the patch DenseNet (GAP) and the whole-image model (unit + GAP).
static_assert(train::FeatureEncoder<models::densenet<B, models::densenet_small>>);
static_assert(train::FeatureEncoder<models::whole_image_classifier<B, models::densenet_small>>);

namespace {

/// A toy set: `n` points of dimension `dim`, label i % classes, the mean of class c at `sep`·e_c (in the
/// first min(classes, dim) axes), Gaussian noise of SD `noise`.
train::feature_set toy(std::size_t n, std::size_t dim, int classes, double sep, double noise, std::uint64_t seed) {
  rng r(seed);
  train::feature_set s;
  s.dim = dim;
  for (std::size_t i = 0; i < n; ++i) {
    const int y = static_cast<int>(i % static_cast<std::size_t>(classes));
    s.labels.push_back(y);
    for (std::size_t j = 0; j < dim; ++j)
      s.features.push_back(static_cast<float>((j == static_cast<std::size_t>(y) % dim ? sep : 0.0) + noise * r.normal()));
  }
  return s;
}

/// Full-batch softmax-CE gradient descent in double, written from the formulas: loss = mean −log p_y,
/// dL/dz = (p − onehot)/n, W ← W − lr·(dL/dz)ᵀx, b ← b − lr·Σ dL/dz. Returns the loss before each step.
std::vector<double> reference_gd(const train::feature_set& s, int k, std::vector<double>& w, std::vector<double>& b,
                                 const std::vector<double>& lr_per_step) {
  const std::size_t n = s.size(), d = s.dim, kk = static_cast<std::size_t>(k);
  std::vector<double> losses;
  for (double lr : lr_per_step) {
    std::vector<double> gw(kk * d, 0.0), gb(kk, 0.0);
    double loss = 0;
    for (std::size_t i = 0; i < n; ++i) {
      std::vector<double> z(kk);
      double mx = -1e300;
      for (std::size_t c = 0; c < kk; ++c) {
        z[c] = b[c];
        for (std::size_t j = 0; j < d; ++j) z[c] += w[c * d + j] * s.features[i * d + j];
        mx = std::max(mx, z[c]);
      }
      double sum = 0;
      for (double v : z) sum += std::exp(v - mx);
      const auto y = static_cast<std::size_t>(s.labels[i]);
      loss -= (z[y] - mx - std::log(sum)) / static_cast<double>(n);
      for (std::size_t c = 0; c < kk; ++c) {
        const double g = (std::exp(z[c] - mx) / sum - (c == y ? 1.0 : 0.0)) / static_cast<double>(n);
        gb[c] += g;
        for (std::size_t j = 0; j < d; ++j) gw[c * d + j] += g * s.features[i * d + j];
      }
    }
    losses.push_back(loss);
    for (std::size_t q = 0; q < w.size(); ++q) w[q] -= lr * gw[q];
    for (std::size_t c = 0; c < kk; ++c) b[c] -= lr * gb[c];
  }
  return losses;
}

/// Maps the 5-class patch labels to malignant (1: classes 2 and 4) vs not (0), as a 2-class dataset such
/// as INbreast would label them; any BatchSource works, this one wraps another.
struct malignant_vs_rest {
  const task* inner;
  [[nodiscard]] std::int64_t batches_per_epoch() const { return inner->batches_per_epoch(); }
  [[nodiscard]] data::batch get_batch(const data::batch_request& r) const {
    data::batch b = inner->get_batch(r);
    for (int& y : b.labels) y = (y == 2 || y == 4) ? 1 : 0;
    return b;
  }
};

/// An encoder that flattens the image (features = pixels), to test the probe without a network.
struct flatten_encoder {
  using backend_type = B;
  [[nodiscard]] tensor<B> infer_features(B::context&, const tensor<B>& x) const {
    tensor<B> f(shape{x.n(), x.item_size()});
    B::to_host(x, f.data());
    return f;
  }
};

/// A source of `n` 1×1×2 images, one batch, labels given; pixel (i, 1) = `bad` for sample `bad_sample`.
struct tiny_source {
  std::vector<int> labels;
  std::int64_t batches = 1;
  int bad_sample = -1;
  float bad = 0;
  [[nodiscard]] std::int64_t batches_per_epoch() const { return batches; }
  [[nodiscard]] data::batch get_batch(const data::batch_request&) const {
    data::batch b;
    b.samples = static_cast<index_t>(labels.size());
    b.height = 1;
    b.width = 2;
    b.labels = labels;
    for (std::size_t i = 0; i < labels.size(); ++i) {
      b.images.push_back(static_cast<float>(labels[i]));
      b.images.push_back(static_cast<int>(i) == bad_sample ? bad : static_cast<float>(i));
    }
    return b;
  }
};

train::linear_probe_options options(int classes, int epochs) {
  train::linear_probe_options o;
  o.classes = classes;
  o.stage = train::linear_probe_defaults(epochs);
  o.bootstrap_replicates = 200;
  return o;
}

/// Every parameter value and buffer of the model, bit for bit.
template <class M>
std::vector<std::uint32_t> state_bits(M& model) {
  std::vector<std::uint32_t> bits;
  auto add = [&](const tensor<B>& t) {
    for (index_t i = 0; i < t.numel(); ++i) {
      std::uint32_t u;
      std::memcpy(&u, t.data() + i, 4);
      bits.push_back(u);
    }
  };
  model.for_each_parameter([&](const std::string&, parameter<B>& p) { add(p.value); });
  model.for_each_buffer([&](const std::string&, auto& v) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(v)>, tensor<B>>) add(v);
    else {
      bits.push_back(static_cast<std::uint32_t>(v));
      bits.push_back(static_cast<std::uint32_t>(static_cast<std::uint64_t>(v) >> 32));
    }
  });
  return bits;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(linear_probe)

BOOST_AUTO_TEST_CASE(separable_two_d_set_reaches_auc_one) {
  // Classes at (±2, 0)-like means along two axes with SD 0.3: separable with a wide margin.
  const train::feature_set tr = toy(100, 2, 2, 3.0, 0.3, 11), te = toy(60, 2, 2, 3.0, 0.3, 12);
  const train::linear_probe_result r = train::fit_linear_probe(tr, te, options(2, 30));
  BOOST_TEST(r.train_auc == 1.0);
  BOOST_TEST(r.test_auc == 1.0);
  BOOST_TEST(r.test_accuracy == 1.0);
  BOOST_TEST(r.loss_per_epoch.size() == 30u);
  BOOST_TEST(r.loss_per_epoch.back() < 0.1 * r.loss_per_epoch.front());
  BOOST_TEST(r.test_auc_bootstrap.requested == 200u);
  BOOST_TEST(r.test_auc_bootstrap.ci_low == 1.0);
  BOOST_TEST(r.test_auc_bootstrap.standard_error == 0.0);
  BOOST_TEST(r.weight.size() == 4u);
  BOOST_TEST(r.bias.size() == 2u);
  BOOST_TEST(!r.test_auc_domain[0].has_value());  // no domains given
}

BOOST_AUTO_TEST_CASE(full_batch_sgd_equals_double_reference) {
  // 3 classes, 4 features, overlapping classes (so the loss stays away from 0).
  const train::feature_set tr = toy(30, 4, 3, 1.0, 1.0, 21), te = toy(30, 4, 3, 1.0, 1.0, 22);
  rng r(5);
  train::linear_probe_options o = options(3, 20);
  o.bootstrap_replicates = 0;
  o.batch_size = 30;  // the whole set: one step per epoch
  o.stage.momentum = 0.0;
  o.stage.weight_decay = 0.0;
  o.stage.lr = 0.5;
  o.stage.milestones = {8, 14};  // lr 0.5, then 0.25 from step 8, then 0.125 from step 14
  o.stage.gamma = 0.5;
  for (int q = 0; q < 12; ++q) o.initial_weight.push_back(static_cast<float>(r.uniform(-0.5, 0.5)));
  o.initial_bias = {0.1f, -0.2f, 0.05f};
  const train::linear_probe_result res = train::fit_linear_probe(tr, te, o);

  std::vector<double> w(o.initial_weight.begin(), o.initial_weight.end()), b(o.initial_bias.begin(), o.initial_bias.end());
  std::vector<double> lrs;
  for (int t = 0; t < 20; ++t) lrs.push_back(0.5 * (t >= 8 ? 0.5 : 1.0) * (t >= 14 ? 0.5 : 1.0));
  const std::vector<double> losses = reference_gd(tr, 3, w, b, lrs);
  for (std::size_t q = 0; q < w.size(); ++q) BOOST_TEST(res.weight[q] == w[q], boost::test_tools::tolerance(1e-5));
  for (std::size_t c = 0; c < 3; ++c) BOOST_TEST(res.bias[c] == b[c], boost::test_tools::tolerance(1e-5));
  for (std::size_t t = 0; t < 20; ++t)
    BOOST_TEST(res.loss_per_epoch[t] == losses[t], boost::test_tools::tolerance(1e-5));
  // The head moved well away from its start (the comparison is not trivial).
  BOOST_TEST(std::abs(w[0] - o.initial_weight[0]) > 0.05);
  // The reported probabilities are the softmax of the reference head.
  for (std::size_t i = 0; i < te.size(); ++i) {
    double z[3], mx = -1e300, sum = 0;
    for (std::size_t c = 0; c < 3; ++c) {
      z[c] = b[c];
      for (std::size_t j = 0; j < 4; ++j) z[c] += w[c * 4 + j] * te.features[i * 4 + j];
      mx = std::max(mx, z[c]);
    }
    for (double& v : z) sum += v = std::exp(v - mx);
    for (std::size_t c = 0; c < 3; ++c)
      BOOST_TEST(res.test_prob[i * 3 + c] == z[c] / sum, boost::test_tools::tolerance(1e-5));
  }
  BOOST_TEST(res.test_auc == eval::ovo_auc(res.test_prob, te.labels, 3).macro);
}

BOOST_AUTO_TEST_CASE(same_seed_same_head_and_standardisation_folds_back) {
  train::feature_set tr = toy(120, 6, 3, 1.5, 1.0, 31), te = toy(60, 6, 3, 1.5, 1.0, 32);
  train::linear_probe_options o = options(3, 10);
  o.batch_size = 16;  // mini-batches: the shuffle matters
  o.stage.optimizer = train::optimizer_kind::adamw;
  o.stage.lr = 0.01;
  o.stage.weight_decay = 1e-2;
  const train::linear_probe_result a = train::fit_linear_probe(tr, te, o), b = train::fit_linear_probe(tr, te, o);
  BOOST_TEST(a.weight == b.weight);
  BOOST_TEST(a.bias == b.bias);
  BOOST_TEST(a.loss_per_epoch == b.loss_per_epoch);
  BOOST_TEST(a.test_prob == b.test_prob);
  BOOST_TEST(a.test_auc_bootstrap.replicates == b.test_auc_bootstrap.replicates);
  o.seed = 2;
  const train::linear_probe_result c = train::fit_linear_probe(tr, te, o);
  BOOST_TEST((c.weight != a.weight));

  // Standardisation: features far from zero mean / unit scale; the reported head applies to raw features.
  for (float& v : tr.features) v = v * 40.0f + 100.0f;
  for (float& v : te.features) v = v * 40.0f + 100.0f;
  o.standardize = true;
  const train::linear_probe_result s = train::fit_linear_probe(tr, te, o);
  BOOST_TEST(s.test_auc > 0.8);
  for (std::size_t i = 0; i < te.size(); ++i) {
    double z[3], mx = -1e300, sum = 0;
    for (std::size_t k = 0; k < 3; ++k) {
      z[k] = s.bias[k];
      for (std::size_t j = 0; j < 6; ++j) z[k] += static_cast<double>(s.weight[k * 6 + j]) * te.features[i * 6 + j];
      mx = std::max(mx, z[k]);
    }
    for (double& v : z) sum += v = std::exp(v - mx);
    for (std::size_t k = 0; k < 3; ++k)
      BOOST_TEST(s.test_prob[i * 3 + k] == z[k] / sum, boost::test_tools::tolerance(1e-4));
  }
}

BOOST_AUTO_TEST_CASE(frozen_densenet_state_unchanged_and_auc_consistent) {
  using model_t = models::densenet<B, models::densenet_small>;
  B::context ctx(2);
  model_t model({.in_channels = 1, .num_classes = 5});
  model.init(1);
  // Make the BN running statistics non-trivial: two CE training steps.
  {
    task pre({.patches = {.size = 32, .seed = 3}, .count = 64, .batch_size = 32});
    train::strategy_options so;
    so.stage1 = {.epochs = 1, .lr = 0.05};
    train::strategies::ce<model_t> s(model, so);
    s.begin_stage(0);
    for (std::int64_t i = 0; i < pre.batches_per_epoch(); ++i)
      (void)s.train_step(ctx, pre.get_batch({0, 0, i, 1}), {.lr = 0.05});
  }
  const std::vector<std::uint32_t> before = state_bits(model);

  const task tr_inner({.patches = {.size = 32, .seed = 3}, .first = 50000, .count = 100,
                       .kind = task::variant::domain_b, .batch_size = 50, .shuffle = false, .augment = false,
                       .drop_last = false});
  const task te_inner({.patches = {.size = 32, .seed = 3}, .first = 90000, .count = 40,
                       .kind = task::variant::both_versions, .batch_size = 40, .shuffle = false, .augment = false,
                       .drop_last = false});
  const malignant_vs_rest tr{&tr_inner}, te{&te_inner};
  train::linear_probe_options o = options(2, 20);
  const train::linear_probe_result r = train::linear_probe(ctx, model, tr, te, o);
  BOOST_TEST((state_bits(model) == before));

  BOOST_TEST(r.classes == 2);
  BOOST_TEST(r.dim == static_cast<std::size_t>(model.classifier().opts().in_features));
  BOOST_TEST(r.train_samples == 100u);
  BOOST_TEST(r.test_samples == 80u);
  BOOST_TEST(r.test_auc >= 0.0);
  BOOST_TEST(r.test_auc <= 1.0);
  BOOST_TEST(r.test_auc == eval::ovo_auc(r.test_prob, r.test_labels, 2).macro);
  BOOST_TEST(r.test_auc == eval::binary_auc(std::vector<double>([&] {
                                              std::vector<double> p1;
                                              for (std::size_t i = 0; i < r.test_samples; ++i) p1.push_back(r.test_prob[2 * i + 1]);
                                              return p1;
                                            }()),
                                            r.test_labels));
  for (std::size_t i = 0; i < r.test_samples; ++i)
    BOOST_TEST(r.test_prob[2 * i] + r.test_prob[2 * i + 1] == 1.0, boost::test_tools::tolerance(1e-12));
  // Labels, domains and ids come from the source, in its order: both versions of each patch, A then B.
  BOOST_TEST(r.test_domains.size() == 80u);
  BOOST_TEST(r.test_ids.size() == 80u);
  for (std::size_t i = 0; i + 1 < r.test_samples; i += 2) {
    BOOST_TEST(r.test_domains[i] == 0);
    BOOST_TEST(r.test_domains[i + 1] == 1);
    BOOST_TEST(r.test_ids[i] == r.test_ids[i + 1]);
    BOOST_TEST(r.test_labels[i] == r.test_labels[i + 1]);
  }
  BOOST_TEST_REQUIRE(r.test_auc_domain[0].has_value());
  BOOST_TEST_REQUIRE(r.test_auc_domain[1].has_value());
  BOOST_TEST(*r.test_auc_domain[0] >= 0.0);
  BOOST_TEST(*r.test_auc_domain[1] <= 1.0);
  BOOST_TEST(r.test_auc_bootstrap.estimate == r.test_auc);
  BOOST_TEST(r.test_auc_bootstrap.ci_low <= r.test_auc);
  BOOST_TEST(r.test_auc_bootstrap.ci_high >= r.test_auc);
  BOOST_TEST(r.test_auc_bootstrap.standard_error > 0.0);
  BOOST_TEST_MESSAGE("probe of a briefly CE-trained small DenseNet, malignant vs rest: train AUC "
                     << r.train_auc << ", test AUC " << r.test_auc << " [" << r.test_auc_bootstrap.ci_low << ", "
                     << r.test_auc_bootstrap.ci_high << "], domain A " << *r.test_auc_domain[0] << ", domain B "
                     << *r.test_auc_domain[1]);
}

BOOST_AUTO_TEST_CASE(any_encoder_and_source) {
  // A flattening "encoder" on a tiny source: feature 0 is the label, so the probe separates perfectly.
  B::context ctx(1);
  const tiny_source tr{{0, 1, 0, 1, 1, 0}}, te{{1, 0, 0, 1}};
  train::linear_probe_options o = options(2, 40);
  o.bootstrap_replicates = 0;
  o.standardize = true;
  const train::linear_probe_result r = train::linear_probe(ctx, flatten_encoder{}, tr, te, o);
  BOOST_TEST(r.dim == 2u);
  BOOST_TEST(r.test_auc == 1.0);
  BOOST_TEST(r.test_auc_bootstrap.requested == 0u);
  BOOST_TEST(r.test_ids.empty());
  // linear_probe is fit_linear_probe on extract_features' output.
  const train::feature_set ftr = train::extract_features(ctx, flatten_encoder{}, tr);
  BOOST_TEST(ftr.dim == 2u);
  BOOST_TEST((ftr.features == std::vector<float>{0, 0, 1, 1, 0, 2, 1, 3, 1, 4, 0, 5}));
  BOOST_TEST((ftr.labels == tr.labels));
  const train::linear_probe_result f =
      train::fit_linear_probe(ftr, train::extract_features(ctx, flatten_encoder{}, te), o);
  BOOST_TEST((f.weight == r.weight));
  BOOST_TEST((f.test_prob == r.test_prob));
  // Temporaries and non-const lvalues are sources too.
  tiny_source te_mutable = te;
  const train::linear_probe_result t = train::linear_probe(ctx, flatten_encoder{}, tiny_source{tr}, te_mutable, o);
  BOOST_TEST((t.weight == r.weight));
}

BOOST_AUTO_TEST_CASE(errors) {
  using test::expect_error;
  B::context ctx(1);
  const flatten_encoder enc;
  const tiny_source good{{0, 1, 0, 1}};
  train::linear_probe_options o = options(2, 2);
  o.bootstrap_replicates = 0;

  train::linear_probe_options no_classes = o;
  no_classes.classes = 0;
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, good, good, no_classes); },
                             "linear_probe_options::classes must be >= 2 (the probe's own class count), got 0");
  train::linear_probe_options one_rep = o;
  one_rep.bootstrap_replicates = 1;
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, good, good, one_rep); },
                             "linear_probe_options::bootstrap_replicates must be 0 (no bootstrap) or >= 2, got 1");
  train::linear_probe_options bad_init = o;
  bad_init.initial_weight = {1, 2, 3};
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, good, good, bad_init); },
                             "linear_probe_options::initial_weight has 3 values; expected classes×dim = 4 or none");

  const tiny_source empty{{0, 1}, 0};
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, empty, good, o); },
                             "linear_probe: the training source is empty (batches_per_epoch() = 0); expected at least one batch");
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, good, empty, o); },
                             "linear_probe: the test source is empty (batches_per_epoch() = 0)");

  const tiny_source big_label{{0, 1, 2, 1}};
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, big_label, good, o); },
                             "linear_probe: training label 2 of sample 2 is outside [0, 2) (linear_probe_options::classes = 2)");
  const tiny_source one_class{{0, 0, 0}};
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, good, one_class, o); },
                             "linear_probe: class(es) 1 absent from the test labels (3 samples, present: 0); expected "
                             "every one of the 2 classes (linear_probe_options::classes)");
  train::linear_probe_options three = o;
  three.classes = 3;
  expect_error<config_error>([&] { (void)train::linear_probe(ctx, enc, good, good, three); },
                             "linear_probe: class(es) 2 absent from the training labels (4 samples, present: 0, 1)");

  const tiny_source nan_test{{0, 1, 0, 1}, 1, 2, std::numeric_limits<float>::quiet_NaN()};
  expect_error<numeric_error>([&] { (void)train::linear_probe(ctx, enc, good, nan_test, o); },
                              "linear_probe: test feature 1 of sample 2 is nan; expected finite features from the encoder");
  const tiny_source inf_train{{0, 1, 0, 1}, 1, 0, std::numeric_limits<float>::infinity()};
  expect_error<numeric_error>([&] { (void)train::linear_probe(ctx, enc, inf_train, good, o); },
                              "linear_probe: training feature 1 of sample 0 is inf");

  // The feature-level core.
  const std::vector<float> f4{0, 1, 2, 3, 4, 5, 6, 7};
  const std::vector<int> y4{0, 1, 0, 1};
  expect_error<config_error>(
      [&] { (void)train::fit_linear_probe(std::vector<float>{}, std::vector<int>{}, f4, y4, 2, o); },
      "linear_probe: the training set is empty (0 samples); expected at least one");
  expect_error<shape_error>([&] { (void)train::fit_linear_probe(f4, y4, f4, y4, 3, o); },
                            "linear_probe: the training set has 8 feature values for 4 samples of dim 3; expected 12");
  train::feature_set a{.features = f4, .dim = 2, .labels = y4}, b{.features = f4, .dim = 1, .labels = {0, 1, 0, 1, 0, 1, 0, 1}};
  expect_error<shape_error>([&] { (void)train::fit_linear_probe(a, b, o); },
                            "linear_probe: the training features have dim 2 but the test features 1");
  train::linear_probe_options diverge = o;
  diverge.stage.lr = 1e30;
  diverge.stage.schedule = train::schedule_kind::constant;
  train::feature_set far = a;
  for (float& v : far.features) v *= 1e10f;
  expect_error<numeric_error>([&] { (void)train::fit_linear_probe(far, far, diverge); }, "linear_probe: the head diverged");
}

BOOST_AUTO_TEST_SUITE_END()

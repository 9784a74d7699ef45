// Supervised Contrastive loss: METHOD.md §4.2 test vectors TV-SC1 and TV-SC2 (HobbitLong/SupContrast
// losses.py in torch float64), contrast_mode 'one' and explicit masks against a naive implementation
// written here from the reference's matrix steps, finite-difference checks through the L2
// normalisation, a 2 × 256 × 128 batch, and the errors for bad input.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "mammocl/losses/supcon.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/testing/gradient_check.hpp"

using namespace mammocl;
using B = cpu_backend_f64;
using losses::supcon;

namespace {

/// TV-SC1 raw vectors, as (B=3, V=2, D=3): sample b, view v.
tensor<B> tv_sc1_raw() {
  const double view0[3][3] = {{1, 0, 0}, {0, 1, 0}, {0.6, 0.8, 0}};
  const double view1[3][3] = {{0.8, 0.6, 0}, {0, 0.6, 0.8}, {1, 1, 1}};
  tensor<B> f(shape{3, 2, 3});
  for (int b = 0; b < 3; ++b)
    for (int k = 0; k < 3; ++k) {
      f.at(b, 0, k) = view0[b][k];
      f.at(b, 1, k) = view1[b][k];
    }
  return f;
}

tensor<B> normalized(const tensor<B>& w) {
  tensor<B> z = w.clone();
  const index_t nb = w.dim(0), nv = w.dim(1), d = w.dim(2);
  for (index_t b = 0; b < nb; ++b)
    for (index_t v = 0; v < nv; ++v) {
      double s = 0;
      for (index_t k = 0; k < d; ++k) s += w.at(b, v, k) * w.at(b, v, k);
      for (index_t k = 0; k < d; ++k) z.at(b, v, k) = w.at(b, v, k) / std::sqrt(s);
    }
  return z;
}

const std::vector<int> tv_sc1_labels{0, 1, 0};

/// Naive SupConLoss following losses.py step by step on full N×N matrices: anchor_dot_contrast,
/// logits = adc − rowmax, logits_mask, exp_logits, log_prob, mean_log_prob_pos, −(τ/τ_b)·mean. mask_bb is
/// the sample-level B×B mask; features must be normalised (B,V,D).
double naive_supcon(const tensor<B>& f, const std::vector<double>& mask_bb, double tau, double tau_b, bool one) {
  const index_t nb = f.dim(0), nv = f.dim(1), d = f.dim(2), n = nb * nv;
  std::vector<std::vector<double>> contrast(static_cast<std::size_t>(n), std::vector<double>(static_cast<std::size_t>(d)));
  for (index_t v = 0; v < nv; ++v)
    for (index_t b = 0; b < nb; ++b)
      for (index_t k = 0; k < d; ++k) contrast[static_cast<std::size_t>(v * nb + b)][static_cast<std::size_t>(k)] = f.at(b, v, k);
  const index_t na = one ? nb : n;
  double sum = 0;
  for (index_t i = 0; i < na; ++i) {
    std::vector<double> adc(static_cast<std::size_t>(n));
    double mx = -1e300;
    for (index_t j = 0; j < n; ++j) {
      double s = 0;
      for (index_t k = 0; k < d; ++k) s += contrast[static_cast<std::size_t>(i)][static_cast<std::size_t>(k)] * contrast[static_cast<std::size_t>(j)][static_cast<std::size_t>(k)];
      adc[static_cast<std::size_t>(j)] = s / tau;
      mx = std::max(mx, adc[static_cast<std::size_t>(j)]);
    }
    double exp_sum = 0;
    for (index_t j = 0; j < n; ++j)
      if (j != i) exp_sum += std::exp(adc[static_cast<std::size_t>(j)] - mx);
    double pos = 0, npos = 0;
    for (index_t j = 0; j < n; ++j) {
      const double logits_mask = j == i ? 0.0 : 1.0;
      const double mij = mask_bb[static_cast<std::size_t>((i % nb) * nb + j % nb)] * logits_mask;
      const double log_prob = (adc[static_cast<std::size_t>(j)] - mx) - std::log(exp_sum);
      pos += mij * log_prob;
      npos += mij;
    }
    sum += -(tau / tau_b) * pos / (npos < 1e-6 ? 1.0 : npos);
  }
  return sum / static_cast<double>(na);
}

std::vector<double> label_mask(const std::vector<int>& y) {
  std::vector<double> m(y.size() * y.size());
  for (std::size_t a = 0; a < y.size(); ++a)
    for (std::size_t c = 0; c < y.size(); ++c) m[a * y.size() + c] = y[a] == y[c] ? 1.0 : 0.0;
  return m;
}

tensor<B> random_features(index_t nb, index_t nv, index_t d, std::uint64_t seed) {
  rng r(seed);
  tensor<B> w(shape{nb, nv, d});
  for (index_t i = 0; i < w.numel(); ++i) w.data()[i] = r.normal();
  return w;
}

template <class F>
std::string message_of(F&& f) {
  try {
    f();
  } catch (const error& e) {
    return e.message();
  }
  return "no exception";
}

}  // namespace

BOOST_AUTO_TEST_CASE(tv_sc1_every_temperature_setting) {
  B::context ctx(1);
  const tensor<B> w = tv_sc1_raw(), z = normalized(w);
  struct row {
    double tau, tau_b;
    bool simclr;
    double loss;
  };
  const row rows[] = {{0.07, 0.07, false, 2.448474306117608},
                      {0.1, 0.07, false, 2.7660079942226585},
                      {0.1, 0.1, false, 1.9362055959558608},
                      {0.5, 0.5, false, 1.4691305938607364},
                      {0.5, 0.5, true, 1.4089216810438805}};
  for (const row& r : rows) {
    for (bool raw : {false, true}) {
      const supcon loss({.temperature = r.tau, .base_temperature = r.tau_b, .normalize = raw});
      const tensor<B>& in = raw ? w : z;
      const double got = r.simclr ? loss.value_and_gradient<B>(ctx, in, nullptr)
                                  : loss.value_and_gradient<B>(ctx, in, tv_sc1_labels, nullptr);
      BOOST_TEST(std::abs(got - r.loss) < 1e-9, "tau " << r.tau << " tau_b " << r.tau_b << (r.simclr ? " SimCLR" : "")
                                                       << (raw ? " raw" : " normalised") << ": " << got << " vs " << r.loss);
    }
  }
}

BOOST_AUTO_TEST_CASE(tv_sc1_per_anchor_losses) {
  B::context ctx(1);
  std::vector<double> ell;
  const supcon loss({.temperature = 0.1, .base_temperature = 0.1});
  const double l = loss.value_and_gradient<B>(ctx, normalized(tv_sc1_raw()), tv_sc1_labels, nullptr, &ell);
  const double want[] = {1.62709364, 2.32129461, 2.08193954, 1.41131737, 2.24306189, 1.93252653};
  BOOST_TEST_REQUIRE(ell.size() == 6u);
  double mean = 0;
  for (int i = 0; i < 6; ++i) {
    BOOST_TEST(std::abs(ell[static_cast<std::size_t>(i)] - want[i]) < 1e-8, "anchor " << i << ": " << ell[static_cast<std::size_t>(i)]);
    mean += ell[static_cast<std::size_t>(i)] / 6;
  }
  BOOST_TEST(std::abs(mean - l) < 1e-15);
}

BOOST_AUTO_TEST_CASE(tv_sc1_gradients) {
  B::context ctx(1);
  const tensor<B> w = tv_sc1_raw(), z = normalized(w);
  const double dz_want[6][3] = {{-0.99820755, -1.38455836, -0.75348398}, {1.60828823, -0.60261861, -3.27016439},
                                {-0.21295471, 2.84346259, -0.20804316},  {1.39194709, 1.36617794, -0.25727891},
                                {1.67756586, -2.58671364, 1.60096726},   {-1.98391158, 1.24665883, 2.21836530}};
  const double dw_want[6][3] = {{0, -1.38455836, -0.75348398},           {1.60828823, 0, -3.27016439},
                                {-1.50115306, 1.12586479, -0.20804316},  {-0.15466446, 0.20621928, -0.25727891},
                                {1.67756586, -2.42396101, 1.81797076},   {-1.43045213, 0.43471857, 0.99573356}};
  tensor<B> dz, dw;
  supcon({.temperature = 0.1, .base_temperature = 0.07}).value_and_gradient<B>(ctx, z, tv_sc1_labels, &dz);
  supcon({.temperature = 0.1, .base_temperature = 0.07, .normalize = true}).value_and_gradient<B>(ctx, w, tv_sc1_labels, &dw);
  BOOST_TEST_REQUIRE(dz.dims() == w.dims());
  BOOST_TEST_REQUIRE(dw.dims() == w.dims());
  for (int a = 0; a < 6; ++a)  // view-major row a = v·B + b
    for (int k = 0; k < 3; ++k) {
      const int b = a % 3, v = a / 3;
      BOOST_TEST(std::abs(dz.at(b, v, k) - dz_want[a][k]) < 1e-8, "dL/dz row " << a << " col " << k << ": " << dz.at(b, v, k));
      BOOST_TEST(std::abs(dw.at(b, v, k) - dw_want[a][k]) < 1e-8, "dL/dw row " << a << " col " << k << ": " << dw.at(b, v, k));
    }
}

BOOST_AUTO_TEST_CASE(tv_sc2_anchors_without_positives) {
  B::context ctx(1);
  const double r = 1 / std::sqrt(2.0);
  const double v[4][2] = {{1, 0}, {0, 1}, {r, r}, {r, -r}};
  tensor<B> f(shape{4, 1, 2});
  for (int b = 0; b < 4; ++b)
    for (int k = 0; k < 2; ++k) f.at(b, 0, k) = v[b][k];
  std::vector<double> ell;
  tensor<B> g;
  const double l = supcon({.temperature = 0.1, .base_temperature = 0.1})
                       .value_and_gradient<B>(ctx, f, std::vector<int>{0, 1, 1, 2}, &g, &ell);
  BOOST_TEST(std::abs(l - 0.1736053598105095) < 1e-9, l);
  const double want[] = {0, 0.00084969, 0.69357175, 0};
  for (int i = 0; i < 4; ++i) BOOST_TEST(std::abs(ell[static_cast<std::size_t>(i)] - want[i]) < 1e-8, "anchor " << i);
  // The gradient stays finite and agrees with finite differences.
  auto fn = [&] {
    return supcon({.temperature = 0.1, .base_temperature = 0.1, .normalize = true})
        .value_and_gradient<B>(ctx, f, std::vector<int>{0, 1, 1, 2}, nullptr);
  };
  tensor<B> gw;
  supcon({.temperature = 0.1, .base_temperature = 0.1, .normalize = true})
      .value_and_gradient<B>(ctx, f, std::vector<int>{0, 1, 1, 2}, &gw);
  const auto res = testing::check_function(fn, {{"w", f, gw}}, {.rel_tol = 1e-6});
  BOOST_TEST(res.ok, res.report);
}

BOOST_AUTO_TEST_CASE(contrast_mode_one_and_masks_against_naive) {
  B::context ctx(1);
  const tensor<B> z1 = normalized(tv_sc1_raw());
  for (double tau : {0.07, 0.1, 0.5}) {
    const supcon one({.temperature = tau, .base_temperature = 0.07, .mode = supcon::contrast_mode::one});
    const double got = one.value_and_gradient<B>(ctx, z1, tv_sc1_labels, nullptr);
    const double want = naive_supcon(z1, label_mask(tv_sc1_labels), tau, 0.07, true);
    BOOST_TEST(std::abs(got - want) < 1e-12, "one, tau " << tau << ": " << got << " vs " << want);
    // Independently of the naive code: in 'one' mode the loss is the mean of the view-0 anchors' ℓ of
    // mode 'all' (the contrast set is the same N vectors).
    std::vector<double> ell;
    supcon({.temperature = tau, .base_temperature = 0.07}).value_and_gradient<B>(ctx, z1, tv_sc1_labels, nullptr, &ell);
    BOOST_TEST(std::abs(got - (ell[0] + ell[1] + ell[2]) / 3) < 1e-12);
  }
  // Random batch: labels, the equivalent explicit mask, and a mask with a row without positives.
  const tensor<B> z = normalized(random_features(6, 3, 5, 11));
  const std::vector<int> y{2, 0, 2, 1, 0, 2};
  tensor<B> mask(shape{6, 6});
  const auto lm = label_mask(y);
  for (index_t i = 0; i < 36; ++i) mask.data()[i] = lm[static_cast<std::size_t>(i)];
  for (bool one_mode : {false, true}) {
    const supcon loss({.temperature = 0.2, .base_temperature = 0.1,
                       .mode = one_mode ? supcon::contrast_mode::one : supcon::contrast_mode::all});
    const double by_labels = loss.value_and_gradient<B>(ctx, z, y, nullptr);
    const double by_mask = loss.value_and_gradient<B>(ctx, z, mask, nullptr);
    BOOST_TEST(std::abs(by_labels - naive_supcon(z, lm, 0.2, 0.1, one_mode)) < 1e-12);
    BOOST_TEST(std::abs(by_mask - by_labels) < 1e-14);
    tensor<B> m2 = mask.clone();
    for (index_t c = 0; c < 6; ++c) m2.at(3, c) = 0;  // sample 3 has no positive, not even its own views
    m2.at(0, 4) = 1;                                  // asymmetric mask
    std::vector<double> m2v(m2.data(), m2.data() + 36);
    const double got = loss.value_and_gradient<B>(ctx, z, m2, nullptr);
    BOOST_TEST(std::abs(got - naive_supcon(z, m2v, 0.2, 0.1, one_mode)) < 1e-12);
    // SimCLR equals the identity mask.
    tensor<B> eye = tensor<B>::zeros(shape{6, 6});
    std::vector<double> eyev(36, 0.0);
    for (index_t i = 0; i < 6; ++i) eye.at(i, i) = eyev[static_cast<std::size_t>(i * 7)] = 1;
    BOOST_TEST(std::abs(loss.value_and_gradient<B>(ctx, z, nullptr) - naive_supcon(z, eyev, 0.2, 0.1, one_mode)) < 1e-12);
    BOOST_TEST(std::abs(loss.value_and_gradient<B>(ctx, z, eye, nullptr) - loss.value_and_gradient<B>(ctx, z, nullptr)) < 1e-14);
  }
}

BOOST_AUTO_TEST_CASE(gradient_check_through_normalisation) {
  B::context ctx(1);
  tensor<B> w = random_features(5, 3, 4, 7);
  for (index_t i = 0; i < w.numel(); ++i) w.data()[i] *= 1.7;  // raw rows far from unit norm
  const std::vector<int> y{0, 1, 0, 2, 1};
  tensor<B> mask = tensor<B>::zeros(shape{5, 5});
  mask.at(0, 2) = mask.at(2, 0) = mask.at(1, 1) = 1;  // samples 3 and 4 have no positives
  for (auto mode : {supcon::contrast_mode::all, supcon::contrast_mode::one}) {
    const supcon loss({.temperature = 0.3, .base_temperature = 0.07, .mode = mode, .normalize = true});
    tensor<B> g1, g2, g3;
    loss.value_and_gradient<B>(ctx, w, y, &g1);
    loss.value_and_gradient<B>(ctx, w, mask, &g2);
    loss.value_and_gradient<B>(ctx, w, &g3);
    auto r1 = testing::check_function([&] { return loss.value_and_gradient<B>(ctx, w, y, nullptr); }, {{"w labels", w, g1}});
    auto r2 = testing::check_function([&] { return loss.value_and_gradient<B>(ctx, w, mask, nullptr); }, {{"w mask", w, g2}});
    auto r3 = testing::check_function([&] { return loss.value_and_gradient<B>(ctx, w, nullptr); }, {{"w SimCLR", w, g3}});
    BOOST_TEST(r1.ok, r1.report);
    BOOST_TEST(r2.ok, r2.report);
    BOOST_TEST(r3.ok, r3.report);
  }
}

BOOST_AUTO_TEST_CASE(float_backend_matches_double) {
  using BF = cpu_backend;
  BF::context fctx(1);
  B::context ctx(1);
  const tensor<B> w = tv_sc1_raw();
  tensor<BF> wf(w.dims());
  for (index_t i = 0; i < w.numel(); ++i) wf.data()[i] = static_cast<float>(w.data()[i]);
  tensor<BF> gf;
  const double l = supcon({.temperature = 0.1, .base_temperature = 0.07, .normalize = true})
                       .value_and_gradient<BF>(fctx, wf, tv_sc1_labels, &gf);
  BOOST_TEST(std::abs(l - 2.7660079942226585) < 1e-6);
  BOOST_TEST(std::abs(gf.at(2, 0, 0) - -1.50115306) < 1e-5);
}

BOOST_AUTO_TEST_CASE(batch_2x256x128_against_naive) {
  B::context ctx(1);
  const index_t nb = 256, nv = 2, d = 128;
  tensor<B> w = random_features(nb, nv, d, 2026);
  const tensor<B> z = normalized(w);
  rng r(5);
  std::vector<int> y(static_cast<std::size_t>(nb));
  for (auto& v : y) v = static_cast<int>(r.below(10));
  const supcon loss_z({.temperature = 0.1, .base_temperature = 0.1});
  const supcon loss_w({.temperature = 0.1, .base_temperature = 0.1, .normalize = true});
  tensor<B> gz, gw;
  // Timing belongs in bench/, not in tests: this case checks values only.
  const double lz = loss_z.value_and_gradient<B>(ctx, z, y, &gz);
  const double lw = loss_w.value_and_gradient<B>(ctx, w, y, &gw);
  const double want = naive_supcon(z, label_mask(y), 0.1, 0.1, false);
  BOOST_TEST(std::abs(lz - want) < 1e-9, lz << " vs " << want);
  BOOST_TEST(std::abs(lw - want) < 1e-9, lw << " vs " << want);
  const double want_one = naive_supcon(z, label_mask(y), 0.1, 0.1, true);
  const supcon one({.temperature = 0.1, .base_temperature = 0.1, .mode = supcon::contrast_mode::one});
  BOOST_TEST(std::abs(one.value_and_gradient<B>(ctx, z, y, nullptr) - want_one) < 1e-9);
  // Gradient of the naive loss (raw w, through the normalisation) on sampled coordinates.
  auto naive_w = [&] { return naive_supcon(normalized(w), label_mask(y), 0.1, 0.1, false); };
  const auto res = testing::check_function(naive_w, {{"w", w, gw}}, {.step = 1e-5, .rel_tol = 1e-6, .max_checks_per_tensor = 12});
  BOOST_TEST(res.ok, res.report);
  const auto res_z = testing::check_function([&] { return loss_z.value_and_gradient<B>(ctx, z, y, nullptr); },
                                             {{"z", z, gz}}, {.step = 1e-5, .rel_tol = 1e-6, .max_checks_per_tensor = 12});
  BOOST_TEST(res_z.ok, res_z.report);
}

BOOST_AUTO_TEST_CASE(bad_input) {
  B::context ctx(1);
  const tensor<B> w = tv_sc1_raw(), z = normalized(w);
  const supcon loss;
  const supcon raw({.normalize = true});
  const supcon classes({.num_classes = 2});

  // Labels: count, negative, out of [0, num_classes).
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, z, std::vector<int>{0, 1}, nullptr), shape_error);
  BOOST_TEST(message_of([&] { (void)loss.value_and_gradient<B>(ctx, z, std::vector<int>{0, 1}, nullptr); }) ==
             "supcon: 2 labels for 3 samples of features (3,2,3)");
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, z, std::vector<int>{0, -1, 0}, nullptr), shape_error);
  BOOST_TEST(message_of([&] { (void)loss.value_and_gradient<B>(ctx, z, std::vector<int>{0, -1, 0}, nullptr); }) ==
             "supcon: label -1 at sample 1 is negative");
  BOOST_CHECK_THROW(classes.value_and_gradient<B>(ctx, z, std::vector<int>{0, 1, 2}, nullptr), shape_error);
  BOOST_TEST(message_of([&] { (void)classes.value_and_gradient<B>(ctx, z, std::vector<int>{0, 1, 2}, nullptr); }) ==
             "supcon: label 2 at sample 2 is outside [0, 2)");
  BOOST_TEST(std::isfinite(classes.value_and_gradient<B>(ctx, z, std::vector<int>{0, 1, 1}, nullptr)));

  // Shapes.
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, tensor<B>(shape{6, 3}), tv_sc1_labels, nullptr), shape_error);
  BOOST_TEST(message_of([&] { (void)loss.value_and_gradient<B>(ctx, tensor<B>(shape{6, 3}), tv_sc1_labels, nullptr); }) ==
             "supcon: features must be (B, V, D), got (6,3)");
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, z, tensor<B>::zeros(shape{3, 2}), nullptr), shape_error);
  BOOST_TEST(message_of([&] { (void)loss.value_and_gradient<B>(ctx, z, tensor<B>::zeros(shape{3, 2}), nullptr); }) ==
             "supcon: mask must be (3,3) for features (3,2,3), got (3,2)");
  tensor<B> half = tensor<B>::zeros(shape{3, 3});
  half.at(1, 2) = 0.5;
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, z, half, nullptr), shape_error);
  BOOST_TEST(message_of([&] { (void)loss.value_and_gradient<B>(ctx, z, half, nullptr); }) ==
             "supcon: mask entry (1,2) is 0.5; it must be 0 or 1");
  half.at(1, 2) = std::numeric_limits<double>::quiet_NaN();
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, z, half, nullptr), numeric_error);

  // One view: legal with labels (TV-SC2), an error for SimCLR.
  tensor<B> one_view(shape{3, 1, 3});
  for (index_t b = 0; b < 3; ++b)
    for (index_t k = 0; k < 3; ++k) one_view.at(b, 0, k) = z.at(b, 0, k);
  BOOST_TEST(std::isfinite(loss.value_and_gradient<B>(ctx, one_view, tv_sc1_labels, nullptr)));
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, one_view, nullptr), shape_error);
  const std::string m1 = message_of([&] { (void)loss.value_and_gradient<B>(ctx, one_view, nullptr); });
  BOOST_TEST(m1.find("at least 2 views") != std::string::npos, m1);
  BOOST_TEST(m1.find("have V = 1") != std::string::npos, m1);

  // Not normalised where normalised input is required; raw input is accepted with normalize.
  BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, w, tv_sc1_labels, nullptr), shape_error);
  const std::string m2 = message_of([&] { (void)loss.value_and_gradient<B>(ctx, w, tv_sc1_labels, nullptr); });
  BOOST_TEST(m2.find("supcon: feature row 5 (sample 2, view 1) has L2 norm 1.73205") == 0, m2);
  BOOST_TEST(m2.find("expected 1 within 0.0001") != std::string::npos, m2);
  tensor<B> near = z.clone();
  near.at(0, 0, 0) = 1 + 5e-5;  // within the tolerance
  BOOST_TEST(std::isfinite(loss.value_and_gradient<B>(ctx, near, tv_sc1_labels, nullptr)));
  near.at(0, 0, 0) = 1 + 2e-4;
  BOOST_TEST(message_of([&] { (void)loss.value_and_gradient<B>(ctx, near, tv_sc1_labels, nullptr); }).find("supcon: feature row 0 (sample 0, view 0) has L2 norm 1.0002") == 0);

  // NaN / Inf.
  for (double bad : {std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    tensor<B> f = w.clone();
    f.at(1, 1, 2) = bad;
    BOOST_CHECK_THROW(raw.value_and_gradient<B>(ctx, f, tv_sc1_labels, nullptr), numeric_error);
    BOOST_CHECK_THROW(loss.value_and_gradient<B>(ctx, f, nullptr), numeric_error);
    const std::string m = message_of([&] { (void)raw.value_and_gradient<B>(ctx, f, tv_sc1_labels, nullptr); });
    BOOST_TEST(m == std::string("supcon: feature (sample 1, view 1, component 2) is ") + (std::isnan(bad) ? "nan" : "inf"), m);
  }

  // Options.
  BOOST_CHECK_THROW(supcon({.temperature = 0}), config_error);
  BOOST_TEST(message_of([] { supcon({.temperature = -0.1}); }) == "supcon: temperature -0.1 is not a finite positive number");
  BOOST_CHECK_THROW(supcon({.base_temperature = std::numeric_limits<double>::infinity()}), config_error);
  BOOST_CHECK_THROW(supcon({.num_classes = -1}), config_error);
}

BOOST_AUTO_TEST_CASE(thread_count_does_not_change_the_result) {
  B::context ctx1(1), ctx2(2);
  const tensor<B> w = random_features(64, 2, 32, 9);
  std::vector<int> y(64);
  for (std::size_t i = 0; i < y.size(); ++i) y[i] = static_cast<int>(i % 7);
  const supcon loss({.temperature = 0.1, .base_temperature = 0.07, .normalize = true});
  tensor<B> g1, g2;
  const double l1 = loss.value_and_gradient<B>(ctx1, w, y, &g1), l2 = loss.value_and_gradient<B>(ctx2, w, y, &g2);
  BOOST_TEST(std::abs(l1 - l2) < 1e-12);
  double worst = 0;
  for (index_t i = 0; i < w.numel(); ++i) worst = std::max(worst, std::abs(g1.data()[i] - g2.data()[i]));
  BOOST_TEST(worst < 1e-12);
}

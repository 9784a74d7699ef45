// The layer/loss/model/train stack is device-generic: everything compiles for a backend with
// is_host = false (testing::emulated_device_backend, host memory behind a device interface, every op the
// CPU op), and gives cpu_backend's results bit for bit: DenseNet forward, backward and inference (plain
// and memory-efficient), every loss's value and gradient, init from a seed, models::copy_state in both
// directions, short CE / SupContr / DANN / MMD training through the strategies and the trainer, and the
// linear probe.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "mammocl/data/synthetic_domains.hpp"
#include "mammocl/mammocl.hpp"
#include "mammocl/models/copy_state.hpp"
#include "mammocl/models/whole_image_classifier.hpp"
#include "mammocl/testing/emulated_device_backend.hpp"
#include "mammocl/train/linear_probe.hpp"
#include "mammocl/train/trainer.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using H = cpu_backend;
using D = testing::emulated_device_backend;
template <class B>
using net = models::densenet<B, models::densenet_small>;
using task = data::synthetic_domain_task;

namespace {

constexpr int threads = 2;

/// The values of a tensor of any backend, on the host.
template <class B>
std::vector<float> values(const tensor<B>& t) {
  std::vector<float> v(static_cast<std::size_t>(t.numel()));
  if (!v.empty()) B::to_host(t, v.data());
  return v;
}
/// A tensor of backend B holding `v`.
template <class B>
tensor<B> make(const shape& s, const std::vector<float>& v) {
  tensor<B> t(s);
  B::from_host(v.data(), t);
  return t;
}
std::vector<float> normal_values(index_t n, std::uint64_t seed, double sd = 1.0) {
  rng r(seed);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (float& x : v) x = static_cast<float>(r.normal(0.0, sd));
  return v;
}
bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}
bool bit_equal(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

/// Every parameter value, gradient and buffer of a model or strategy, in visiting order.
template <class M>
std::vector<float> state_and_grads(M& m) {
  using B = typename M::backend_type;
  std::vector<float> out;
  auto add = [&](const tensor<B>& t) {
    const std::vector<float> v = values(t);
    out.insert(out.end(), v.begin(), v.end());
  };
  auto on_parameter = [&](const std::string&, parameter<B>& p) {
    add(p.value);
    if (p.grad.defined()) add(p.grad);
  };
  auto on_buffer = [&]<class V>(const std::string&, V& v) {
    if constexpr (std::is_same_v<V, std::int64_t>) out.push_back(static_cast<float>(v));
    else add(v);
  };
  if constexpr (requires { m.for_each_parameter(on_parameter); }) {  // models and strategies
    m.for_each_parameter(on_parameter);
    m.for_each_buffer(on_buffer);
  } else {  // layers take a key prefix first
    m.for_each_parameter(std::string{}, on_parameter);
    m.for_each_buffer(std::string{}, on_buffer);
  }
  return out;
}

task::options train_opts() {
  return {.patches = {.size = 24, .seed = 5}, .count = 16, .kind = task::variant::mixed, .batch_size = 8};
}
task::options val_opts() {
  return {.patches = {.size = 24, .seed = 5}, .first = 50000, .count = 10, .kind = task::variant::both_versions,
          .batch_size = 10, .shuffle = false, .augment = false, .drop_last = false};
}
train::strategy_options small_strategy() {
  train::strategy_options so;
  so.stage1 = {.epochs = 1, .lr = 0.05};
  so.stage2 = train::finetune_defaults(1);
  so.projector_out = 16;
  so.dann_hidden = 16;
  return so;
}

/// A fresh small DenseNet of backend B (1 input channel, 5 classes) from seed 11.
template <class B>
net<B> fresh(bool memory_efficient = false) {
  net<B> m({.in_channels = 1, .num_classes = 5, .memory_efficient = memory_efficient});
  m.init(11);
  return m;
}

/// One training step of DenseNet on backend B: logits, CE loss, backward; everything the step produced.
template <class B>
std::vector<float> densenet_step(bool memory_efficient, double& loss, std::vector<float>& logits,
                                 std::vector<float>& inferred) {
  typename B::context ctx(threads);
  net<B> m = fresh<B>(memory_efficient);
  const shape s{4, 1, 32, 32};
  const tensor<B> x = make<B>(s, normal_values(s.numel(), 3));
  typename net<B>::cache c;
  const tensor<B> z = m.forward(ctx, x, c);
  tensor<B> dz;
  const std::vector<int> labels{0, 3, 1, 4};
  loss = losses::cross_entropy().value_and_gradient<B>(ctx, z, labels, &dz);
  m.backward(ctx, c, dz, grad_mode::overwrite);
  logits = values(z);
  inferred = values(m.infer(ctx, x));
  return state_and_grads(m);
}

/// A short fit of strategy S from fresh<B>(): the model's state (returned), the strategy's whole state
/// (projector or domain classifier and optimizer included), the best metric and the log.
template <class S, class B>
std::vector<float> train_run(const std::filesystem::path& dir, std::vector<float>& strategy_state, double& best,
                             std::vector<nlohmann::json>& log) {
  typename B::context ctx(threads);
  net<B> model = fresh<B>();
  task tr(train_opts()), va(val_opts());
  S s(model, small_strategy());
  const train::fit_result r = train::fit(ctx, s, tr, &va, {.out_dir = dir, .resume = false, .progress = false}, 5);
  best = r.best_metric;
  log = r.log;
  for (auto& j : log) {  // wall-clock fields differ between any two runs
    j.erase("seconds");
    j.erase("images_per_second");
  }
  strategy_state = state_and_grads(s);
  return state_and_grads(model);
}

/// One DANN or MMD step through the strategy (no trainer): the loss terms and the state after the update.
template <class S, class B>
std::vector<float> strategy_step(train::step_result& r) {
  typename B::context ctx(threads);
  net<B> model = fresh<B>();
  task tr(train_opts());
  train::strategy_options so = small_strategy();
  so.mmd_class_conditional = false;  // 8 samples of 5 classes: too few for the class-conditional term
  S s(model, so);
  s.begin_stage(0);
  r = s.train_step(ctx, tr.get_batch({0, 0, 0, 1}), {.stage_steps = 4, .lr = 0.05});
  return state_and_grads(s);
}

}  // namespace

BOOST_AUTO_TEST_SUITE(device_generic)

BOOST_AUTO_TEST_CASE(init_from_a_seed_gives_the_same_numbers_on_both_backends) {
  net<H> a = fresh<H>();
  net<D> b = fresh<D>();
  const auto va = state_and_grads(a), vb = state_and_grads(b);
  BOOST_TEST(va.size() > 20000u);
  BOOST_TEST(bit_equal(va, vb));
  // A different seed gives different numbers (the comparison can fail).
  net<D> c({.in_channels = 1, .num_classes = 5});
  c.init(12);
  BOOST_TEST(!bit_equal(va, state_and_grads(c)));
}

BOOST_AUTO_TEST_CASE(copy_state_moves_every_parameter_and_buffer_both_ways) {
  H::context ctx(threads);
  net<H> a = fresh<H>();
  // Non-trivial BN statistics and counters: one training forward.
  const shape s{2, 1, 32, 32};
  typename net<H>::cache c;
  (void)a.forward(ctx, make<H>(s, normal_values(s.numel(), 9)), c);
  net<D> b({.in_channels = 1, .num_classes = 5});
  models::copy_state(a, b);
  net<H> back({.in_channels = 1, .num_classes = 5});
  models::copy_state(b, back);
  auto state = [](auto& m) {
    std::vector<float> v;
    io::for_each_state(m, [&]<class V>(const std::string&, V& x) {
      if constexpr (std::is_same_v<V, std::int64_t>) v.push_back(static_cast<float>(x));
      else {
        const auto h = values(x);
        v.insert(v.end(), h.begin(), h.end());
      }
    });
    return v;
  };
  const auto sa = state(a);
  BOOST_TEST(bit_equal(sa, state(b)));
  BOOST_TEST(bit_equal(sa, state(back)));
  BOOST_TEST(b.classifier().weight().value.dims() == (shape{5, net<D>::final_channels()}));
  // A different model: the error names the entry and the destination is untouched.
  net<D> other({.in_channels = 1, .num_classes = 3});
  const auto before = state(other);
  test::expect_error<shape_error>([&] { models::copy_state(a, other); }, "'classifier.weight' has shape");
  BOOST_TEST(bit_equal(before, state(other)));
  models::densenet<D, models::densenet121> big({.in_channels = 1, .num_classes = 5});
  test::expect_error<config_error>([&] { models::copy_state(a, big); }, "the same model");
  // Between precisions on the host: values converted.
  models::densenet<cpu_backend_f64, models::densenet_small> wide({.in_channels = 1, .num_classes = 5});
  models::copy_state(b, wide);
  BOOST_TEST(wide.classifier().weight().value.at(2, 7) == static_cast<double>(a.classifier().weight().value.at(2, 7)));
}

BOOST_AUTO_TEST_CASE(densenet_forward_backward_and_inference_match_bit_for_bit) {
  for (bool me : {false, true}) {
    double lh = 0, ld = 0;
    std::vector<float> zh, zd, ih, id;
    const auto sh = densenet_step<H>(me, lh, zh, ih);
    const auto sd = densenet_step<D>(me, ld, zd, id);
    BOOST_TEST(bit_equal(lh, ld), "memory_efficient " << me << ": loss " << lh << " vs " << ld);
    BOOST_TEST(bit_equal(zh, zd));
    BOOST_TEST(bit_equal(ih, id));
    BOOST_TEST(bit_equal(sh, sd), "memory_efficient " << me << ": parameters, gradients or buffers differ");
  }
}

BOOST_AUTO_TEST_CASE(whole_image_classifier_matches) {
  auto step = [](auto tag, double& loss) {
    using B = decltype(tag);
    typename B::context ctx(threads);
    models::whole_image_classifier<B, models::densenet_small> m(
        {.in_channels = 1, .num_classes = 2, .top_depth = 8, .top_expansion = 2});
    m.init(5);
    const shape s{2, 1, 64, 64};
    const tensor<B> x = make<B>(s, normal_values(s.numel(), 51));
    typename models::whole_image_classifier<B, models::densenet_small>::cache c;
    const tensor<B> z = m.forward(ctx, x, c);
    tensor<B> dz;
    const std::vector<int> labels{1, 0};
    loss = losses::cross_entropy().value_and_gradient<B>(ctx, z, labels, &dz);
    m.backward(ctx, c, dz, grad_mode::overwrite);
    std::vector<float> out = values(m.infer(ctx, x));
    const std::vector<float> st = state_and_grads(m);
    out.insert(out.end(), st.begin(), st.end());
    return out;
  };
  double lh = 0, ld = 0;
  const auto vh = step(H{}, lh), vd = step(D{}, ld);
  BOOST_TEST(bit_equal(lh, ld));
  BOOST_TEST(bit_equal(vh, vd));
}

BOOST_AUTO_TEST_CASE(cross_entropy_and_l2_normalize_match) {
  const shape s{6, 5};
  const auto z = normal_values(s.numel(), 21, 2.0);
  const std::vector<int> labels{0, 4, 2, 2, 1, 3};
  const losses::cross_entropy ce({.class_weights = {1.0, 2.0, 0.5, 1.0, 3.0}});
  H::context hc(threads);
  D::context dc(threads);
  tensor<H> gh;
  tensor<D> gd(s);  // an existing gradient tensor of the right shape is written in place
  const double lh = ce.value_and_gradient<H>(hc, make<H>(s, z), labels, &gh);
  const double ld = ce.value_and_gradient<D>(dc, make<D>(s, z), labels, &gd);
  BOOST_TEST(bit_equal(lh, ld));
  BOOST_TEST(bit_equal(values(gh), values(gd)));
  test::expect_error<shape_error>([&] { (void)ce.value_and_gradient<D>(dc, make<D>(s, z), {labels.data(), 5}, &gd); },
                                  "5 labels for 6 rows");

  const layers::l2_normalize<H> nh;
  const layers::l2_normalize<D> nd;
  std::vector<float> x = normal_values(s.numel(), 22);
  for (int j = 0; j < 5; ++j) x[static_cast<std::size_t>(10 + j)] = 0.0f;  // a zero row: the clamp branch
  typename layers::l2_normalize<H>::cache ch;
  typename layers::l2_normalize<D>::cache cd;
  BOOST_TEST(bit_equal(values(nh.forward(hc, make<H>(s, x), ch)), values(nd.forward(dc, make<D>(s, x), cd))));
  BOOST_TEST(bit_equal(values(nh.infer(hc, make<H>(s, x))), values(nd.infer(dc, make<D>(s, x)))));
  const auto dy = normal_values(s.numel(), 23);
  BOOST_TEST(bit_equal(values(nh.backward(hc, ch, make<H>(s, dy), grad_mode::overwrite)),
                       values(nd.backward(dc, cd, make<D>(s, dy), grad_mode::overwrite))));
}

BOOST_AUTO_TEST_CASE(supcon_every_form_matches) {
  const index_t nb = 6, nv = 2, dim = 8;
  const shape s{nb, nv, dim};
  const auto raw = normal_values(s.numel(), 31);
  const std::vector<int> labels{0, 1, 0, 2, 1, 1};
  std::vector<float> mask(static_cast<std::size_t>(nb * nb), 0.0f);
  for (index_t a = 0; a < nb; ++a)
    for (index_t c = 0; c < nb; ++c)
      if ((a + c) % 3 == 0 || a == c) mask[static_cast<std::size_t>(a * nb + c)] = 1.0f;
  H::context hc(threads);
  D::context dc(threads);
  using mode = losses::supcon::contrast_mode;
  for (mode m : {mode::all, mode::one}) {
    const losses::supcon loss({.temperature = 0.2, .base_temperature = 0.07, .mode = m, .normalize = true});
    const tensor<H> fh = make<H>(s, raw);
    const tensor<D> fd = make<D>(s, raw);
    tensor<H> gh;
    tensor<D> gd;
    std::vector<double> ah, ad;
    BOOST_TEST(bit_equal(loss.value_and_gradient<H>(hc, fh, labels, &gh, &ah),
                         loss.value_and_gradient<D>(dc, fd, labels, &gd, &ad)));
    BOOST_TEST(bit_equal(values(gh), values(gd)));
    BOOST_TEST(ah == ad);
    BOOST_TEST(bit_equal(loss.value_and_gradient<H>(hc, fh, make<H>(shape{nb, nb}, mask), &gh),
                         loss.value_and_gradient<D>(dc, fd, make<D>(shape{nb, nb}, mask), &gd)));
    BOOST_TEST(bit_equal(values(gh), values(gd)));
    BOOST_TEST(bit_equal(loss.value_and_gradient<H>(hc, fh, &gh), loss.value_and_gradient<D>(dc, fd, &gd)));
    BOOST_TEST(bit_equal(values(gh), values(gd)));
  }
  // Already normalised rows without options::normalize, and the checks before the device op.
  const losses::supcon plain({.num_classes = 3});
  tensor<H> zh = make<H>(s, raw);
  for (index_t r = 0; r < nb * nv; ++r) {
    float* p = zh.data() + r * dim;
    double n2 = 0;
    for (index_t k = 0; k < dim; ++k) n2 += static_cast<double>(p[k]) * p[k];
    for (index_t k = 0; k < dim; ++k) p[k] = static_cast<float>(p[k] / std::sqrt(n2));
  }
  const tensor<D> zd = to<D>(zh);
  tensor<H> gh;
  tensor<D> gd;
  BOOST_TEST(bit_equal(plain.value_and_gradient<H>(hc, zh, labels, &gh), plain.value_and_gradient<D>(dc, zd, labels, &gd)));
  BOOST_TEST(bit_equal(values(gh), values(gd)));
  const std::vector<int> bad{0, 1, 0, 3, 1, 1};
  test::expect_error<shape_error>([&] { (void)plain.value_and_gradient<D>(dc, zd, bad, &gd); },
                                  "label 3 at sample 3 is outside [0, 3)");
  mask[1] = 0.5f;
  test::expect_error<shape_error>([&] { (void)plain.value_and_gradient<D>(dc, zd, make<D>(shape{nb, nb}, mask), &gd); },
                                  "mask entry (0,1) is 0.5");
  test::expect_error<shape_error>([&] { (void)plain.value_and_gradient<D>(dc, make<D>(s, raw), labels, &gd); },
                                  "has L2 norm");
}

BOOST_AUTO_TEST_CASE(mmd_bce_and_domain_adversarial_match) {
  H::context hc(threads);
  D::context dc(threads);
  const shape sx{7, 6}, sy{5, 6};
  const auto x = normal_values(sx.numel(), 41), y = normal_values(sy.numel(), 42, 1.5);
  const std::vector<int> lx{0, 1, 0, 1, 2, 0, 1}, ly{1, 0, 1, 0, 0};
  for (auto kern : {losses::mmd::kernel::gaussian, losses::mmd::kernel::multi_gaussian}) {
    const losses::mmd loss({.kern = kern});
    tensor<H> dxh, dyh;
    tensor<D> dxd, dyd;
    const auto rh = loss.value_and_gradient<H>(hc, make<H>(sx, x), make<H>(sy, y), &dxh, &dyh);
    const auto rd = loss.value_and_gradient<D>(dc, make<D>(sx, x), make<D>(sy, y), &dxd, &dyd);
    BOOST_TEST(bit_equal(rh.value, rd.value));
    BOOST_TEST(bit_equal(values(dxh), values(dxd)));
    BOOST_TEST(bit_equal(values(dyh), values(dyd)));
    const auto ch = loss.class_conditional<H>(hc, make<H>(sx, x), lx, make<H>(sy, y), ly, &dxh, &dyh);
    const auto cd = loss.class_conditional<D>(dc, make<D>(sx, x), lx, make<D>(sy, y), ly, &dxd, &dyd);
    BOOST_TEST(bit_equal(ch.value, cd.value));
    BOOST_TEST(ch.used_classes == cd.used_classes);
    BOOST_TEST(ch.skipped_classes == cd.skipped_classes);
    BOOST_TEST(bit_equal(values(dxh), values(dxd)));
    BOOST_TEST(bit_equal(values(dyh), values(dyd)));
  }

  const shape sl{5, 1};
  const auto z = normal_values(sl.numel(), 43, 3.0);
  const std::vector<double> targets{0, 1, 1, 0, 1};
  tensor<H> gh;
  tensor<D> gd;
  const losses::binary_cross_entropy_with_logits bce;
  BOOST_TEST(bit_equal(bce.value_and_gradient<H>(hc, make<H>(sl, z), targets, &gh),
                       bce.value_and_gradient<D>(dc, make<D>(sl, z), targets, &gd)));
  BOOST_TEST(bit_equal(values(gh), values(gd)));

  losses::domain_adversarial<H> dh({.in_features = 6, .hidden = {8, 8}, .lambda = 0.7});
  losses::domain_adversarial<D> dd({.in_features = 6, .hidden = {8, 8}, .lambda = 0.7});
  rng r1(5), r2(5);
  dh.init(r1);
  dd.init(r2);
  const std::vector<int> domains{0, 1, 1, 0, 1, 0, 0};
  const auto resh = dh.forward_backward(hc, make<H>(sx, x), domains, grad_mode::overwrite);
  const auto resd = dd.forward_backward(dc, make<D>(sx, x), domains, grad_mode::overwrite);
  BOOST_TEST(bit_equal(resh.loss, resd.loss));
  BOOST_TEST(bit_equal(values(resh.features_grad), values(resd.features_grad)));
  BOOST_TEST(bit_equal(state_and_grads(dh), state_and_grads(dd)));
  std::vector<float> bad = x;
  bad[9] = std::numeric_limits<float>::infinity();
  test::expect_error<numeric_error>([&] { (void)dd.forward_backward(dc, make<D>(sx, bad), domains, grad_mode::overwrite); },
                                    "feature (1, 3) = inf is not finite");
}

BOOST_AUTO_TEST_CASE(ce_and_supcon_linear_training_through_the_trainer_match) {
  test::temp_dir dir("device-generic");
  {
    double bh = 0, bd = 0;
    std::vector<nlohmann::json> lh, ld;
    std::vector<float> th, td;
    const auto sh = train_run<train::strategies::ce<net<H>>, H>(dir / "ce_h", th, bh, lh);
    const auto sd = train_run<train::strategies::ce<net<D>>, D>(dir / "ce_d", td, bd, ld);
    BOOST_TEST(bit_equal(sh, sd));
    BOOST_TEST(bit_equal(th, td));
    BOOST_TEST(bit_equal(bh, bd));
    BOOST_TEST(lh == ld);
    BOOST_TEST(lh.size() == 1u);
  }
  {
    double bh = 0, bd = 0;
    std::vector<nlohmann::json> lh, ld;
    std::vector<float> th, td;
    const auto sh = train_run<train::strategies::supcon_linear<net<H>>, H>(dir / "sc_h", th, bh, lh);
    const auto sd = train_run<train::strategies::supcon_linear<net<D>>, D>(dir / "sc_d", td, bd, ld);
    BOOST_TEST(bit_equal(sh, sd));
    BOOST_TEST(bit_equal(th, td));
    BOOST_TEST(lh == ld);
    BOOST_TEST(lh.size() == 2u);  // the SupCon stage and the linear stage
    // Training moved the weights (the comparison above is not of two untouched models).
    net<H> untouched = fresh<H>();
    BOOST_TEST(!bit_equal(state_and_grads(untouched), sh));
  }
}

BOOST_AUTO_TEST_CASE(dann_and_mmd_steps_match) {
  train::step_result rh, rd;
  BOOST_TEST(bit_equal(strategy_step<train::strategies::dann<net<H>>, H>(rh),
                       strategy_step<train::strategies::dann<net<D>>, D>(rd)));
  BOOST_TEST(bit_equal(rh.loss, rd.loss));
  BOOST_TEST(bit_equal(rh.domain_loss, rd.domain_loss));
  BOOST_TEST(rh.correct == rd.correct);
  BOOST_TEST(bit_equal(strategy_step<train::strategies::mmd<net<H>>, H>(rh),
                       strategy_step<train::strategies::mmd<net<D>>, D>(rd)));
  BOOST_TEST(bit_equal(rh.domain_loss, rd.domain_loss));
  BOOST_TEST(rh.domain_loss > 0.0);  // both domains were in the batch: the term was computed
}

BOOST_AUTO_TEST_CASE(linear_probe_matches) {
  H::context hc(threads);
  D::context dc(threads);
  const net<H> mh = fresh<H>();
  const net<D> md = fresh<D>();
  task tr(train_opts()), te(val_opts());
  train::linear_probe_options o;
  o.stage = train::linear_probe_defaults(3);
  o.classes = 5;
  o.batch_size = 8;
  o.bootstrap_replicates = 20;
  const auto ph = train::linear_probe(hc, mh, tr, te, o);
  const auto pd = train::linear_probe(dc, md, tr, te, o);
  BOOST_TEST(bit_equal(ph.test_auc, pd.test_auc));
  BOOST_TEST(bit_equal(ph.weight, pd.weight));
  BOOST_TEST(bit_equal(ph.bias, pd.bias));
  BOOST_TEST(ph.test_prob == pd.test_prob);
  BOOST_TEST(ph.loss_per_epoch == pd.loss_per_epoch);
}

BOOST_AUTO_TEST_SUITE_END()

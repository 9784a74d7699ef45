// DenseNet: torchvision's parameter counts and names, shapes, the memory-efficient mode giving the
// same results as the plain mode, seeded bit-exact reproducibility, a sampled model-level gradient
// check, and bad input.
#include <boost/test/unit_test.hpp>

#include <cstring>
#include <map>
#include <vector>

#include "mammocl/mammocl.hpp"
#include "mammocl/testing/gradient_check.hpp"

using namespace mammocl;
using models::densenet;
using models::densenet121;
using models::densenet_small;

namespace {
template <class B>
tensor<B> random_input(const shape& s, std::uint64_t seed) {
  tensor<B> x(s);
  rng r(seed);
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<typename B::scalar_type>(r.normal());
  return x;
}
template <class M>
std::vector<float> snapshot(M& m) {
  std::vector<float> v;
  m.for_each_parameter([&](const std::string&, auto& p) {
    v.insert(v.end(), p.value.data(), p.value.data() + p.value.numel());
    v.insert(v.end(), p.grad.data(), p.grad.data() + p.grad.numel());
  });
  m.for_each_buffer([&](const std::string&, auto& b) {
    if constexpr (std::is_same_v<std::decay_t<decltype(b)>, std::int64_t>) v.push_back(static_cast<float>(b));
    else v.insert(v.end(), b.data(), b.data() + b.numel());
  });
  return v;
}
bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}
}  // namespace

BOOST_AUTO_TEST_CASE(densenet121_parameter_counts_match_torchvision) {
  densenet<cpu_backend, densenet121> m3({.in_channels = 3, .num_classes = 5});
  BOOST_TEST(m3.parameter_count() == 6958981);
  densenet<cpu_backend, densenet121> m1({.in_channels = 1, .num_classes = 5});
  BOOST_TEST(m1.parameter_count() == 6952709);
  densenet<cpu_backend, densenet121> m1000({.in_channels = 3, .num_classes = 1000});
  BOOST_TEST(m1000.parameter_count() == 7978856);
  BOOST_TEST((densenet<cpu_backend, densenet121>::final_channels() == 1024));
}

BOOST_AUTO_TEST_CASE(densenet121_state_names_match_torchvision) {
  densenet<cpu_backend, densenet121> m({.in_channels = 3, .num_classes = 5});
  std::map<std::string, shape> params, buffers;
  m.for_each_parameter([&](const std::string& n, parameter<cpu_backend>& p) { params.emplace(n, p.value.dims()); });
  int counters = 0;
  m.for_each_buffer([&](const std::string& n, auto& b) {
    if constexpr (std::is_same_v<std::decay_t<decltype(b)>, std::int64_t>) ++counters;
    else buffers.emplace(n, b.dims());
  });
  // torchvision: 120 convs + 1 linear weight, 121 BN layers with weight and bias, 1 classifier bias.
  BOOST_TEST(params.size() == 120u + 1u + 2u * 121u + 1u);
  BOOST_TEST(buffers.size() == 2u * 121u);
  BOOST_TEST(counters == 121);
  BOOST_TEST((params.at("features.conv0.weight") == shape{64, 3, 7, 7}));
  BOOST_TEST((params.at("features.denseblock3.denselayer24.conv1.weight") == shape{128, 992, 1, 1}));
  BOOST_TEST((params.at("features.denseblock4.denselayer16.conv2.weight") == shape{32, 128, 3, 3}));
  BOOST_TEST((params.at("features.transition2.conv.weight") == shape{256, 512, 1, 1}));
  BOOST_TEST((params.at("features.norm5.bias") == shape{1024}));
  BOOST_TEST((params.at("classifier.weight") == shape{5, 1024}));
  BOOST_TEST((buffers.at("features.denseblock1.denselayer1.norm1.running_mean") == shape{64}));
  BOOST_TEST((buffers.at("features.transition3.norm.running_var") == shape{1024}));
  // Totals of METHOD.md: 41 824 BN channels.
  index_t bn = 0;
  for (auto& [n, s] : buffers)
    if (n.ends_with("running_mean")) bn += s.numel();
  BOOST_TEST(bn == 41824);
}

BOOST_AUTO_TEST_CASE(densenet121_shapes) {
  cpu_backend::context ctx(2);
  densenet<cpu_backend, densenet121> m({.in_channels = 1, .num_classes = 5});
  m.init(1);
  tensor<cpu_backend> x = random_input<cpu_backend>(shape{1, 1, 64, 48}, 2);
  BOOST_TEST(m.infer_feature_map(ctx, x).dims() == (shape{1, 1024, 2, 1}));
  BOOST_TEST(m.infer(ctx, x).dims() == (shape{1, 5}));
}

BOOST_AUTO_TEST_CASE(memory_efficient_mode_gives_identical_results) {
  using B = cpu_backend;
  B::context ctx(2);
  densenet<B, densenet_small> plain({.in_channels = 1, .num_classes = 5});
  densenet<B, densenet_small> eff({.in_channels = 1, .num_classes = 5, .memory_efficient = true});
  plain.init(42);
  eff.init(42);
  BOOST_TEST(bit_equal(snapshot(plain), snapshot(eff)));
  tensor<B> x = random_input<B>(shape{4, 1, 40, 40}, 3);
  const std::vector<int> y{0, 1, 3, 4};
  for (int step = 0; step < 2; ++step) {
    for (auto* m : {&plain, &eff}) {
      decltype(plain)::cache c;
      tensor<B> logits = m->forward(ctx, x, c);
      tensor<B> dl;
      losses::cross_entropy().value_and_gradient<B>(ctx, logits, y, &dl);
      m->backward(ctx, c, dl, grad_mode::overwrite);
    }
    // Same parameters, gradients and running statistics (updated once per forward in both modes).
    BOOST_TEST(bit_equal(snapshot(plain), snapshot(eff)));
  }
  std::int64_t tracked = -1;
  eff.for_each_buffer([&](const std::string& n, auto& b) {
    if constexpr (std::is_same_v<std::decay_t<decltype(b)>, std::int64_t>)
      if (n == "features.denseblock2.denselayer1.norm1.num_batches_tracked") tracked = b;
  });
  BOOST_TEST(tracked == 2);
}

BOOST_AUTO_TEST_CASE(seeded_training_is_bit_identical) {
  using B = cpu_backend;
  auto train = [](int threads) {
    B::context ctx(threads);
    densenet<B, densenet_small> m({.in_channels = 1, .num_classes = 5});
    m.init(7);
    std::vector<tensor<B>> momentum;
    m.for_each_parameter([&](const std::string&, parameter<B>& p) { momentum.push_back(tensor<B>::zeros(p.value.dims())); });
    for (int step = 0; step < 3; ++step) {
      tensor<B> x = random_input<B>(shape{6, 1, 36, 36}, 100 + step);
      const std::vector<int> y{0, 1, 2, 3, 4, step % 5};
      decltype(m)::cache c;
      tensor<B> logits = m.forward(ctx, x, c);
      tensor<B> dl;
      losses::cross_entropy().value_and_gradient<B>(ctx, logits, y, &dl);
      m.backward(ctx, c, dl, grad_mode::overwrite);
      std::size_t i = 0;
      m.for_each_parameter([&](const std::string&, parameter<B>& p) {
        B::sgd_step(ctx, p.value, p.grad, &momentum[i++], 0.05f, 0.9f, 0.0f, 1e-4f, true, step == 0);
      });
    }
    return snapshot(m);
  };
  const auto a = train(2), b = train(2);
  BOOST_TEST(bit_equal(a, b));
  const auto c = train(1), d = train(1);
  BOOST_TEST(bit_equal(c, d));
}

BOOST_AUTO_TEST_CASE(small_densenet_model_gradient_check) {
  using B = cpu_backend_f64;
  B::context ctx(1);
  densenet<B, densenet_small> m({.in_channels = 1, .num_classes = 3});
  m.init(5);
  // Non-trivial BN affine parameters everywhere.
  rng r(9);
  m.for_each_parameter([&](const std::string& n, parameter<B>& p) {
    if (n.find("norm") != std::string::npos)
      for (index_t i = 0; i < p.value.numel(); ++i) p.value.data()[i] += 0.2 * r.normal();
  });
  tensor<B> x = random_input<B>(shape{3, 1, 32, 32}, 6);
  tensor<B> dy = random_input<B>(shape{3, 3}, 8);
  decltype(m)::cache c;
  (void)m.forward(ctx, x, c);
  m.backward(ctx, c, dy, grad_mode::overwrite);
  std::vector<testing::gradient_variable> vars;
  m.for_each_parameter([&](const std::string& n, parameter<B>& p) { vars.push_back({n, p.value, p.grad.clone()}); });
  auto f = [&] {
    decltype(m)::cache cc;
    return B::dot(ctx, m.forward(ctx, x, cc), dy);
  };
  const auto res = testing::check_function(f, vars, {.rel_tol = 1e-5, .max_checks_per_tensor = 6});
  BOOST_TEST_MESSAGE(res.report);
  BOOST_TEST(res.ok, res.report);
}

BOOST_AUTO_TEST_CASE(train_and_eval_forward_agree_when_statistics_are_frozen) {
  // After many forwards on the same batch with momentum 1 the running statistics equal the batch
  // statistics up to the unbiased-variance factor; instead we check the exact identity with momentum 1
  // on a single-layer model: eval with running stats = batch stats (biased) reproduces training output.
  using B = cpu_backend_f64;
  B::context ctx(1);
  layers::batch_norm<B> bn({.channels = 2, .momentum = 1.0});
  tensor<B> x = random_input<B>(shape{1, 2, 50, 40}, 4);
  layers::batch_norm<B>::cache c;
  tensor<B> yt = bn.forward(ctx, x, c);
  // running_var holds the unbiased variance; the training output used the biased one (M = 2000).
  const double m = 2000.0;
  for (int i = 0; i < 2; ++i) const_cast<double&>(bn.running_var().data()[i]) *= (m - 1) / m;
  tensor<B> ye = bn.infer(ctx, x);
  for (index_t i = 0; i < x.numel(); ++i) BOOST_TEST(ye.data()[i] == yt.data()[i], boost::test_tools::tolerance(1e-12));
}

BOOST_AUTO_TEST_CASE(densenet_bad_input) {
  cpu_backend::context ctx(1);
  densenet<cpu_backend, densenet121> m({.in_channels = 3, .num_classes = 5});
  try {
    (void)m.infer(ctx, tensor<cpu_backend>::zeros(shape{1, 1, 64, 64}));
    BOOST_FAIL("no exception");
  } catch (const shape_error& e) {
    BOOST_TEST(e.message() == "densenet: input must be (N,3,H,W), got (1,1,64,64)");
  }
  BOOST_CHECK_THROW((void)m.infer(ctx, tensor<cpu_backend>::zeros(shape{1, 3, 20, 64})), shape_error);
  BOOST_CHECK_THROW((densenet<cpu_backend, densenet121>({.in_channels = 3, .num_classes = 0})), config_error);
}

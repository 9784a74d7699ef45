// A short cross-entropy training run on the CUDA backend follows the CPU one: densenet_small on the built-in
// synthetic patches (data/synthetic.hpp), 15 SGD steps (momentum 0.9, weight decay 1e-4), same seeds, same
// batches, weights initialised on the host and copied.
//
// Tolerance. After the first step the two runs hold slightly different weights, and training carries the
// difference forward, so the bound on |L_gpu(t) − L_cpu(t)| cannot be a fixed number of roundings. It is
// calibrated in the same test: the CPU run is repeated in double precision, and |L_f32(t) − L_f64(t)| (how
// far float32 rounding alone moves the curve by step t) is the yardstick. Two float32 runs that round in
// different orders drift apart by about as much as either drifts from the double run, so the test allows
//   |L_gpu(t) − L_cpu(t)| <= 1e-5·(1 + |L_cpu(t)|) + 10·max_{s<=t} |L_f32(s) − L_f64(s)|,
// capped at 1e-2·|L_cpu(t)| so that a broken backend cannot hide behind a chaotic yardstick. Step 0 runs
// on identical weights, so there the bound is the first term plus the one-step drift.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <map>
#include <string>
#include <type_traits>
#include <vector>

#include "gpu_test_helpers.hpp"
#include "mammocl/data/synthetic.hpp"
#include "mammocl/losses/cross_entropy.hpp"
#include "mammocl/models/densenet.hpp"
#include "mammocl/optim/sgd.hpp"

using namespace mammocl;
using namespace mammocl::gpu_test;

namespace {

constexpr int steps = 15;
constexpr index_t batch = 10, side = 32;

/// Batch `step` of the synthetic patch task: samples [step·batch, (step+1)·batch), labels cycling 0..4.
template <class T>
std::vector<T> batch_pixels(int step, std::vector<int>& labels) {
  const data::synthetic_patches ds({.size = static_cast<int>(side), .seed = 5});
  std::vector<float> img(static_cast<std::size_t>(side * side));
  std::vector<T> out(static_cast<std::size_t>(batch * side * side));
  labels.assign(static_cast<std::size_t>(batch), 0);
  for (index_t i = 0; i < batch; ++i) {
    labels[static_cast<std::size_t>(i)] = ds.generate(step * batch + i, img.data());
    std::copy(img.begin(), img.end(), out.begin() + i * side * side);
  }
  return out;
}

/// The loss curve of `steps` SGD steps of densenet_small on backend B, starting from `init` (host float model).
template <Backend B>
std::vector<double> train(typename B::context& ctx, models::densenet<cpu_backend, models::densenet_small>& init) {
  using model_t = models::densenet<B, models::densenet_small>;
  using T = typename B::scalar_type;
  model_t model({.in_channels = 1, .num_classes = 5});
  if constexpr (std::is_same_v<T, float>) {
    testing::copy_state(init, model);
  } else {  // the double reference: the same float weights, widened
    std::map<std::string, std::vector<float>> values;
    testing::detail::visit_parameters(init, [&](const std::string& n, parameter<cpu_backend>& p) {
      values[n].assign(p.value.data(), p.value.data() + p.value.numel());
    });
    model.for_each_parameter([&](const std::string& n, parameter<B>& p) {
      const auto& v = values.at(n);
      for (index_t i = 0; i < p.value.numel(); ++i) p.value.data()[i] = static_cast<T>(v[static_cast<std::size_t>(i)]);
    });
  }
  optim::sgd<B> opt(optim::collect_parameters(model), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4});
  const losses::cross_entropy loss;
  std::vector<double> curve;
  for (int s = 0; s < steps; ++s) {
    std::vector<int> labels;
    const std::vector<T> px = batch_pixels<T>(s, labels);
    tensor<B> x(shape{batch, 1, side, side});
    B::from_host(px.data(), x);
    typename model_t::cache cache;
    const tensor<B> logits = model.forward(ctx, x, cache);
    tensor<B> dlogits;
    curve.push_back(loss.value_and_gradient<B>(ctx, logits, labels, &dlogits));
    model.backward(ctx, cache, dlogits, grad_mode::overwrite);
    opt.step(ctx);
  }
  return curve;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(training)

BOOST_FIXTURE_TEST_CASE(cross_entropy_sgd_loss_curve_follows_the_cpu, contexts) {
  models::densenet<cpu_backend, models::densenet_small> init({.in_channels = 1, .num_classes = 5});
  init.init(17);
  cpu_backend_f64::context c64(4);
  const std::vector<double> ref = train<C>(cc, init);
  const std::vector<double> f64 = train<cpu_backend_f64>(c64, init);
  const std::vector<double> got = train<G>(gc, init);
  BOOST_TEST_REQUIRE(got.size() == ref.size());

  // The run must learn something, or agreement would prove little: the loss falls over the 15 steps.
  BOOST_TEST(ref.back() < ref.front(), "the CPU loss did not fall: " << ref.front() << " -> " << ref.back());
  double drift = 0;
  for (std::size_t t = 0; t < ref.size(); ++t) {
    drift = std::max(drift, std::abs(ref[t] - f64[t]));
    const double bound = std::min(1e-5 * (1.0 + std::abs(ref[t])) + 10.0 * drift, 1e-2 * std::abs(ref[t]));
    BOOST_TEST_MESSAGE("step " << t << ": CUDA " << got[t] << ", CPU float " << ref[t] << ", CPU double " << f64[t]
                               << ", |CUDA - CPU| " << std::abs(got[t] - ref[t]) << ", bound " << bound);
    BOOST_TEST(std::abs(got[t] - ref[t]) <= bound, "step " << t << ": CUDA loss " << got[t] << ", CPU loss " << ref[t]
                                                             << ", |diff| " << std::abs(got[t] - ref[t]) << " > bound "
                                                             << bound << " (float/double drift so far " << drift << ")");
  }
}

BOOST_AUTO_TEST_SUITE_END()

// The whole-image classifier (METHOD.md §3.2): the residual bottleneck unit and the whole model have the
// parameter counts METHOD.md lists, the shapes of a 1152x896 mammogram, correct gradients (finite
// differences, double), the encoder loads bit for bit from a patch checkpoint and refuses one of another
// configuration naming the key, and the two-stage strategy trains with stage 1 leaving the encoder alone.
#include <boost/test/unit_test.hpp>

#include <cmath>
#include <cstring>
#include <map>
#include <numeric>
#include <string>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/io/checkpoint.hpp"
#include "mammocl/layers/residual_bottleneck.hpp"
#include "mammocl/models/whole_image_classifier.hpp"
#include "mammocl/testing/gradient_check.hpp"
#include "mammocl/train/trainer.hpp"
#include "temp_dir.hpp"
#include "test_helpers.hpp"

using namespace mammocl;
using models::densenet;
using models::densenet121;
using models::densenet_small;
using models::whole_image_classifier;
using unit_f32 = layers::residual_bottleneck<cpu_backend>;

static_assert(Layer<layers::residual_bottleneck<cpu_backend>>);
static_assert(train::ClassifierModel<whole_image_classifier<cpu_backend, densenet121>>);
static_assert(train::WholeImageModel<whole_image_classifier<cpu_backend, densenet_small>>);
static_assert(train::Strategy<train::strategies::whole_image_two_stage<whole_image_classifier<cpu_backend, densenet_small>>>);
static_assert(io::StateDictModule<whole_image_classifier<cpu_backend, densenet_small>>);

namespace {

/// Same as densenet_small but with growth 4: a patch network of another configuration.
struct densenet_other {
  static constexpr int growth_rate = 4;
  static constexpr int bn_size = 2;
  static constexpr int init_features = 16;
  static constexpr std::array<int, 3> blocks{2, 3, 4};
  static constexpr double compression = 0.5;
};

template <class B>
tensor<B> random_input(const shape& s, std::uint64_t seed) {
  tensor<B> x(s);
  rng r(seed);
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<typename B::scalar_type>(r.normal());
  return x;
}

template <class M>
std::int64_t count(M& m) {
  std::int64_t n = 0;
  m.for_each_parameter(std::string{}, [&](const std::string&, auto& p) { n += p.value.numel(); });
  return n;
}

/// Every value, gradient excluded, of the encoder's parameters and buffers, as bytes.
template <class M>
std::vector<unsigned char> encoder_bytes(M& m) {
  std::vector<unsigned char> v;
  auto add = [&](const void* p, std::size_t n) {
    const auto* c = static_cast<const unsigned char*>(p);
    v.insert(v.end(), c, c + n);
  };
  io::for_each_state(m.encoder(), [&]<class V>(const std::string&, V& t) {
    if constexpr (std::is_same_v<V, std::int64_t>) add(&t, sizeof t);
    else add(t.data(), static_cast<std::size_t>(t.numel()) * sizeof(float));
  });
  return v;
}

/// A tiny synthetic whole-image task: 64x48 noisy "mammograms", class 1 with a bright round lesion at a
/// random place, class 0 without. Deterministic per (epoch, batch).
struct lesion_task {
  static constexpr index_t h = 64, w = 48, batch = 8;
  std::int64_t batches = 4;
  std::uint64_t seed = 1;
  [[nodiscard]] std::int64_t batches_per_epoch() const { return batches; }
  data::batch get_batch(const data::batch_request& r) const {
    rng g(seed * 1000003ULL + static_cast<std::uint64_t>(r.epoch) * 7919ULL + static_cast<std::uint64_t>(r.index));
    data::batch b;
    b.samples = batch;
    b.height = h;
    b.width = w;
    b.images.resize(static_cast<std::size_t>(batch * h * w));
    for (index_t s = 0; s < batch; ++s) {
      const int label = static_cast<int>((s + r.index) % 2);
      b.labels.push_back(label);
      float* img = b.images.data() + s * h * w;
      for (index_t i = 0; i < h * w; ++i) img[i] = static_cast<float>(0.3 * g.normal());
      if (label == 1) {
        const double cy = 8 + g.uniform(0, h - 16), cx = 8 + g.uniform(0, w - 16), rad = 4 + g.uniform(0, 3);
        for (index_t y = 0; y < h; ++y)
          for (index_t x = 0; x < w; ++x) {
            const double d2 = (y - cy) * (y - cy) + (x - cx) * (x - cx);
            img[y * w + x] += static_cast<float>(1.5 * std::exp(-d2 / (2 * rad * rad)));
          }
      }
    }
    return b;
  }
};
static_assert(data::BatchSource<lesion_task>);

using small_model = whole_image_classifier<cpu_backend, densenet_small>;
small_model::options small_options() {
  return {.in_channels = 1, .num_classes = 2, .top_depth = 8, .top_expansion = 2};
}

}  // namespace

BOOST_AUTO_TEST_SUITE(parameter_counts)

BOOST_AUTO_TEST_CASE(unit_counts_match_method_3_2) {
  // METHOD.md §3.2: d = 512, e = 2, stride 2, projection at 1024 input channels.
  unit_f32 plain({.in_channels = 1024});
  BOOST_TEST(count(plain) == 4462592);
  unit_f32 biased({.in_channels = 1024, .bias = true});
  BOOST_TEST(count(biased) == 4465664);
  unit_f32 wide({.in_channels = 1024, .expansion = 4});
  BOOST_TEST(count(wide) == 6039552);
  BOOST_TEST(wide.out_channels() == 2048);
  // A further identity unit at 1024 channels (no shortcut parameters).
  unit_f32 identity({.in_channels = 1024, .stride = 1, .projection = false});
  BOOST_TEST(count(identity) == 3411968);
}

BOOST_AUTO_TEST_CASE(whole_model_counts_match_method_3_2) {
  whole_image_classifier<cpu_backend, densenet121> m3({.in_channels = 3, .num_classes = 2});
  BOOST_TEST(m3.parameter_count() == 11418498);
  whole_image_classifier<cpu_backend, densenet121> m1({.in_channels = 1, .num_classes = 2});
  BOOST_TEST(m1.parameter_count() == 11412226);
}

BOOST_AUTO_TEST_CASE(state_names) {
  whole_image_classifier<cpu_backend, densenet121> m({.in_channels = 3, .num_classes = 2});
  std::vector<std::string> params, buffers;
  m.for_each_parameter([&](const std::string& n, parameter<cpu_backend>&) { params.push_back(n); });
  m.for_each_buffer([&](const std::string& n, auto&) { buffers.push_back(n); });
  BOOST_TEST(params.front() == "features.conv0.weight");
  const std::vector<std::string> tail{"features.norm5.weight", "features.norm5.bias", "top.0.conv1.weight",
                                      "top.0.bn1.weight", "top.0.bn1.bias", "top.0.conv2.weight", "top.0.bn2.weight",
                                      "top.0.bn2.bias", "top.0.conv3.weight", "top.0.bn3.weight", "top.0.bn3.bias",
                                      "top.0.downsample.0.weight", "top.0.downsample.1.weight",
                                      "top.0.downsample.1.bias", "classifier.weight", "classifier.bias"};
  BOOST_TEST(std::vector<std::string>(params.end() - 16, params.end()) == tail, boost::test_tools::per_element());
  // The encoder's own classifier is not part of the model: "classifier." appears once, as the new head.
  BOOST_TEST(std::count_if(params.begin(), params.end(), [](const std::string& n) { return n.starts_with("classifier."); }) == 2);
  BOOST_TEST(buffers.back() == "top.0.downsample.1.num_batches_tracked");
  BOOST_TEST(buffers.size() == (121 + 4) * 3u);  // DenseNet-121's 121 BNs + the unit's 4, 3 buffers each
  // New layers are exactly the unit and the head.
  std::int64_t fresh = 0;
  m.for_each_parameter([&](const std::string& n, parameter<cpu_backend>& p) {
    if (decltype(m)::is_new_layer(n)) fresh += p.value.numel();
  });
  BOOST_TEST(fresh == 4462592 + 1024 * 2 + 2);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(shapes)

BOOST_AUTO_TEST_CASE(full_mammogram_shapes_by_arithmetic) {
  // METHOD.md §3.2: 1152x896 → 1024x36x28 → unit (stride 2) 1024x18x14 → GAP 1024 → 2.
  whole_image_classifier<cpu_backend, densenet121> m({.in_channels = 1, .num_classes = 2});
  BOOST_TEST(decltype(m)::feature_map_shape(shape{1, 1, 1152, 896}) == (shape{1, 1024, 36, 28}));
  BOOST_TEST(m.top_map_shape(shape{1, 1, 1152, 896}) == (shape{1, 1024, 18, 14}));
  BOOST_TEST(m.classifier().opts().in_features == 1024);
  BOOST_TEST(m.classifier().opts().out_features == 2);
  // METHOD.md §3.1's other whole-image examples.
  BOOST_TEST(decltype(m)::feature_map_shape(shape{2, 1, 2048, 1024}) == (shape{2, 1024, 64, 32}));
  BOOST_TEST(decltype(m)::feature_map_shape(shape{1, 1, 2294, 1914}) == (shape{1, 1024, 71, 59}));
  BOOST_TEST(m.top_map_shape(shape{1, 1, 2294, 1914}) == (shape{1, 1024, 36, 30}));  // ⌈71/2⌉, ⌈59/2⌉
}

BOOST_AUTO_TEST_CASE(arithmetic_agrees_with_real_forwards) {
  cpu_backend::context ctx(1);
  {  // DenseNet-121 on a small non-square image: 160x96 → 5x3 → 3x2.
    whole_image_classifier<cpu_backend, densenet121> m({.in_channels = 1, .num_classes = 2});
    m.init(1);
    const tensor<cpu_backend> x = random_input<cpu_backend>(shape{1, 1, 160, 96}, 2);
    BOOST_TEST(m.encoder().infer_feature_map(ctx, x).dims() == decltype(m)::feature_map_shape(x.dims()));
    BOOST_TEST(m.infer_top_map(ctx, x).dims() == (shape{1, 1024, 3, 2}));
    BOOST_TEST(m.top_map_shape(x.dims()) == (shape{1, 1024, 3, 2}));
    BOOST_TEST(m.infer(ctx, x).dims() == (shape{1, 2}));
  }
  {  // The small DenseNet in training mode, odd sizes.
    small_model m(small_options());
    m.init(3);
    const tensor<cpu_backend> x = random_input<cpu_backend>(shape{2, 1, 75, 53}, 4);
    small_model::cache c;
    const tensor<cpu_backend> map = m.encoder().forward_feature_map(ctx, x, c.encoder);
    BOOST_TEST(map.dims() == small_model::feature_map_shape(x.dims()));
    small_model::cache c2;
    BOOST_TEST(m.forward_features(ctx, x, c2).dims() == (shape{2, 16}));
    BOOST_TEST(c2.top.y.dims() == m.top_map_shape(x.dims()));
  }
}

BOOST_AUTO_TEST_CASE(feature_map_forward_matches_densenet_pooled_features) {
  // forward_feature_map is densenet's forward_features without the pooling: ReLU + GAP of the map must
  // give the pooled features exactly, and backward_feature_map the same parameter gradients.
  using B = cpu_backend_f64;
  B::context ctx(1);
  densenet<B, densenet_small> a({.in_channels = 1, .num_classes = 3}), b({.in_channels = 1, .num_classes = 3});
  a.init(8);
  b.init(8);
  const tensor<B> x = random_input<B>(shape{2, 1, 40, 36}, 9);
  densenet<B, densenet_small>::cache ca, cb;
  const tensor<B> pooled = a.forward_features(ctx, x, ca);
  const tensor<B> map = b.forward_feature_map(ctx, x, cb);
  layers::global_avg_pool<B> gap({.relu = true});
  layers::global_avg_pool<B>::cache gc;
  const tensor<B> pooled2 = gap.forward(ctx, map, gc);
  for (index_t i = 0; i < pooled.numel(); ++i) BOOST_TEST(pooled.data()[i] == pooled2.data()[i]);
  const tensor<B> dfeat = random_input<B>(pooled.dims(), 10);
  a.backward_features(ctx, ca, dfeat, grad_mode::overwrite);
  b.backward_feature_map(ctx, cb, gap.backward(ctx, gc, dfeat, grad_mode::overwrite), grad_mode::overwrite);
  std::vector<double> ga, gb;
  a.for_each_parameter([&](const std::string&, parameter<B>& p) { ga.insert(ga.end(), p.grad.data(), p.grad.data() + p.grad.numel()); });
  b.for_each_parameter([&](const std::string&, parameter<B>& p) { gb.insert(gb.end(), p.grad.data(), p.grad.data() + p.grad.numel()); });
  BOOST_TEST(ga.size() == gb.size());
  // The classifier's gradient is untouched by both; compare the encoder's.
  for (std::size_t i = 0; i + 3 * 52 + 3 < ga.size(); ++i) BOOST_TEST(ga[i] == gb[i]);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(gradients)

BOOST_AUTO_TEST_CASE(unit_stride2_projection_and_stride1_identity) {
  using B = cpu_backend_f64;
  struct cfg { index_t cin, d, e, s; bool proj, bias; index_t h, w; };
  // Conv biases are checked separately below: each sits before a BN, so its exact gradient is 0.
  for (cfg c : {cfg{6, 3, 2, 2, true, false, 7, 6}, cfg{5, 3, 2, 2, true, false, 6, 5}, cfg{8, 4, 2, 1, false, false, 5, 4},
                cfg{4, 2, 3, 1, true, false, 4, 5}}) {
    layers::residual_bottleneck<B> l({.in_channels = c.cin, .depth = c.d, .expansion = c.e, .stride = c.s,
                                      .projection = c.proj, .bias = c.bias});
    rng r(21);
    l.init(r);
    // Non-trivial BN affine parameters and biases so that every parameter matters.
    l.for_each_parameter("", [&](const std::string& n, parameter<B>& p) {
      if (n.find("bn") != std::string::npos || n.find("downsample.1") != std::string::npos || n.ends_with("bias"))
        for (index_t i = 0; i < p.value.numel(); ++i) p.value.data()[i] += 0.3 * r.normal();
    });
    BOOST_TEST_CONTEXT("cin " << c.cin << " d " << c.d << " e " << c.e << " stride " << c.s << " projection " << c.proj
                              << " bias " << c.bias) {
      mammocl::test::expect_gradients_ok(testing::check_gradients(l, shape{3, c.cin, c.h, c.w}));
    }
  }
}

BOOST_AUTO_TEST_CASE(unit_conv_biases_are_cancelled_by_batch_norm) {
  // Keras-style biases (bias = true): every conv is followed by a BN in training mode, which subtracts the
  // batch mean, so the output does not depend on the biases and their gradients are zero (up to rounding).
  using B = cpu_backend_f64;
  B::context ctx(1);
  for (bool proj : {true, false}) {
    layers::residual_bottleneck<B> l({.in_channels = 6, .depth = 3, .expansion = 2, .stride = proj ? 2 : 1,
                                      .projection = proj, .bias = true});
    rng r(23);
    l.init(r);
    const tensor<B> x = random_input<B>(shape{3, 6, 6, 5}, 24), dy = random_input<B>(l.output_shape(x.dims()), 25);
    layers::residual_bottleneck<B>::cache c;
    const tensor<B> y0 = l.forward(ctx, x, c).clone();
    (void)l.backward(ctx, c, dy, grad_mode::overwrite);
    int biases = 0;
    l.for_each_parameter("", [&](const std::string& n, parameter<B>& p) {
      if (!n.ends_with(".bias") || n.starts_with("bn") || n == "downsample.1.bias") return;
      ++biases;
      for (index_t i = 0; i < p.grad.numel(); ++i) BOOST_TEST(std::abs(p.grad.data()[i]) < 1e-12, n);
      for (index_t i = 0; i < p.value.numel(); ++i) p.value.data()[i] = 0.5 + i;
    });
    BOOST_TEST(biases == (proj ? 4 : 3));
    layers::residual_bottleneck<B>::cache c1;
    const tensor<B> y1 = l.forward(ctx, x, c1);
    for (index_t i = 0; i < y0.numel(); ++i) BOOST_TEST(y1.data()[i] == y0.data()[i], boost::test_tools::tolerance(1e-12));
  }
}

BOOST_AUTO_TEST_CASE(unit_forward_matches_a_direct_computation) {
  // On a 1x1 input every convolution is a matrix product (the 3x3 kernel meets the input at its centre
  // only); check y = ReLU(sc + r) of METHOD.md §3.2 evaluated by hand, in inference mode.
  using B = cpu_backend_f64;
  B::context ctx(1);
  layers::residual_bottleneck<B> l({.in_channels = 2, .depth = 1, .expansion = 2, .stride = 2, .projection = true});
  // Weights: conv1 (1,2,1,1) = [1, -1]; conv2 (1,1,3,3) = 2 at the centre; conv3 (2,1,1,1) = [1, -3];
  // shortcut (2,2,1,1) = [[1,0],[0,1]]. Every BN at its initial state: y = x/√(1 + 1e-5).
  std::map<std::string, std::vector<double>> w{{"conv1.weight", {1, -1}},
                                               {"conv2.weight", {0, 0, 0, 0, 2, 0, 0, 0, 0}},
                                               {"conv3.weight", {1, -3}},
                                               {"downsample.0.weight", {1, 0, 0, 1}}};
  l.for_each_parameter("", [&](const std::string& n, parameter<B>& p) {
    if (w.count(n)) std::copy(w[n].begin(), w[n].end(), p.value.data());
  });
  tensor<B> x(shape{1, 2, 1, 1});
  x.data()[0] = 3;
  x.data()[1] = 0.5;
  const tensor<B> y = l.infer(ctx, x);
  const double s = 1 / std::sqrt(1 + 1e-5);
  const double a1 = std::max(0.0, (3 - 0.5) * s), a2 = std::max(0.0, 2 * a1 * s);
  BOOST_TEST(y.dims() == (shape{1, 2, 1, 1}));
  BOOST_TEST(y.data()[0] == std::max(0.0, 3 * s + a2 * s), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(y.data()[1] == std::max(0.0, 0.5 * s - 3 * a2 * s), boost::test_tools::tolerance(1e-12));
  BOOST_TEST(y.data()[1] == 0.0);  // the final ReLU cuts the negative sum
}

BOOST_AUTO_TEST_CASE(whole_small_model) {
  using B = cpu_backend_f64;
  B::context ctx(1);
  whole_image_classifier<B, densenet_small> m({.in_channels = 1, .num_classes = 2, .top_depth = 4, .top_expansion = 2});
  m.init(5);
  rng r(9);
  m.for_each_parameter([&](const std::string& n, parameter<B>& p) {
    if (n.find("norm") != std::string::npos || n.find("bn") != std::string::npos || n.find("downsample.1") != std::string::npos)
      for (index_t i = 0; i < p.value.numel(); ++i) p.value.data()[i] += 0.2 * r.normal();
  });
  const tensor<B> x = random_input<B>(shape{3, 1, 64, 48}, 6);  // map 4x3, unit output 2x2
  const tensor<B> dy = random_input<B>(shape{3, 2}, 8);
  decltype(m)::cache c;
  (void)m.forward(ctx, x, c);
  m.backward(ctx, c, dy, grad_mode::overwrite);
  std::vector<testing::gradient_variable> vars;
  m.for_each_parameter([&](const std::string& n, parameter<B>& p) { vars.push_back({n, p.value, p.grad.clone()}); });
  auto f = [&] {
    decltype(m)::cache cc;
    return B::dot(ctx, m.forward(ctx, x, cc), dy);
  };
  // 1e-4: a few of the 1e-6 finite-difference steps cross a ReLU or max-pool kink in the deep encoder; a
  // wrong gradient gives errors of order 1.
  const auto res = testing::check_function(f, vars, {.rel_tol = 1e-4, .max_checks_per_tensor = 6});
  BOOST_TEST_MESSAGE(res.report);
  BOOST_TEST(res.ok, res.report);
}

BOOST_AUTO_TEST_CASE(memory_efficient_model_is_bit_identical) {
  cpu_backend::context ctx(1);
  auto run = [&](bool me) {
    auto o = small_options();
    o.memory_efficient = me;
    small_model m(o);
    m.init(4);
    const tensor<cpu_backend> x = random_input<cpu_backend>(shape{2, 1, 64, 48}, 5);
    const tensor<cpu_backend> dy = random_input<cpu_backend>(shape{2, 2}, 6);
    small_model::cache c;
    (void)m.forward(ctx, x, c);
    m.backward(ctx, c, dy, grad_mode::overwrite);
    std::vector<float> v;
    m.for_each_parameter([&](const std::string&, parameter<cpu_backend>& p) { v.insert(v.end(), p.grad.data(), p.grad.data() + p.grad.numel()); });
    return v;
  };
  const auto a = run(false), b = run(true);
  BOOST_TEST(a.size() == b.size());
  BOOST_TEST(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(checkpoints)

BOOST_AUTO_TEST_CASE(encoder_loads_bit_for_bit_from_a_patch_checkpoint) {
  cpu_backend::context ctx(1);
  test::temp_dir dir("whole-image-load");
  // A "trained" patch classifier: one training step so that the running statistics are not the defaults.
  densenet<cpu_backend, densenet_small> patch({.in_channels = 1, .num_classes = 5});
  patch.init(11);
  {
    densenet<cpu_backend, densenet_small>::cache c;
    (void)patch.forward(ctx, random_input<cpu_backend>(shape{4, 1, 32, 32}, 12), c);
  }
  io::save_state(patch, dir / "patch.safetensors");

  small_model m(small_options());
  m.init(99);
  std::vector<float> top_before;
  m.for_each_parameter([&](const std::string& n, parameter<cpu_backend>& p) {
    if (small_model::is_new_layer(n)) top_before.insert(top_before.end(), p.value.data(), p.value.data() + p.value.numel());
  });
  const io::load_report rep = m.load_encoder(dir / "patch.safetensors");
  BOOST_TEST(rep.missing.empty());
  BOOST_TEST(rep.unexpected.empty());
  BOOST_TEST(rep.excluded == (std::vector<std::string>{"classifier.weight", "classifier.bias"}),
             boost::test_tools::per_element());  // the patch head is skipped

  const tensor<cpu_backend> x = random_input<cpu_backend>(shape{2, 1, 80, 64}, 13);
  const tensor<cpu_backend> want = patch.infer_feature_map(ctx, x);
  const tensor<cpu_backend> got = m.encoder().infer_feature_map(ctx, x);
  BOOST_TEST(got.dims() == want.dims());
  BOOST_TEST(std::memcmp(got.data(), want.data(), static_cast<std::size_t>(want.numel()) * sizeof(float)) == 0);
  // The new layers are untouched by the load.
  std::vector<float> top_after;
  m.for_each_parameter([&](const std::string& n, parameter<cpu_backend>& p) {
    if (small_model::is_new_layer(n)) top_after.insert(top_after.end(), p.value.data(), p.value.data() + p.value.numel());
  });
  BOOST_TEST(top_after == top_before);

  // The whole model round-trips through its own checkpoint.
  io::save_state(m, dir / "whole.safetensors");
  small_model m2(small_options());
  m2.init(5);
  (void)io::load_state(m2, dir / "whole.safetensors");
  const tensor<cpu_backend> l1 = m.infer(ctx, x), l2 = m2.infer(ctx, x);
  BOOST_TEST(std::memcmp(l1.data(), l2.data(), static_cast<std::size_t>(l1.numel()) * sizeof(float)) == 0);
}

BOOST_AUTO_TEST_CASE(checkpoint_of_another_architecture_is_refused) {
  cpu_backend::context ctx(1);
  test::temp_dir dir("whole-image-bad");
  small_model m(small_options());
  m.init(1);
  const auto before = encoder_bytes(m);

  densenet<cpu_backend, densenet_other> other({.in_channels = 1, .num_classes = 5});
  other.init(2);
  const auto path = dir / "other.safetensors";
  io::save_state(other, path);
  try {
    (void)m.load_encoder(path);
    BOOST_FAIL("no exception");
  } catch (const io_error& e) {
    BOOST_TEST(e.message() ==
               "whole_image_classifier: cannot load the encoder from the patch checkpoint (it must be a DenseNet of "
               "the same configuration and input channels): load_state: key "
               "'features.denseblock1.denselayer1.conv1.weight' has shape (8,16,1,1) in checkpoint '" +
                   path.string() + "' but the model expects (16,16,1,1)");
  }
  BOOST_TEST((encoder_bytes(m) == before));  // all or nothing

  // Same configuration, 3 input channels: conv0 is named.
  densenet<cpu_backend, densenet_small> rgb({.in_channels = 3, .num_classes = 5});
  io::save_state(rgb, dir / "rgb.safetensors");
  mammocl::test::expect_error<io_error>([&] { (void)m.load_encoder(dir / "rgb.safetensors"); },
                                        "key 'features.conv0.weight' has shape (16,3,7,7) in checkpoint '" +
                                            (dir / "rgb.safetensors").string() + "' but the model expects (16,1,7,7)");
  // A whole-image checkpoint is not a patch checkpoint: its "top." keys are unexpected.
  io::save_state(m, dir / "whole.safetensors");
  mammocl::test::expect_error<io_error>([&] { (void)m.load_encoder(dir / "whole.safetensors"); },
                                        "file key(s) the model does not have ('top.0.bn1.bias'");
  // A missing file keeps the reader's own message.
  mammocl::test::expect_error<io_error>([&] { (void)m.load_encoder(dir / "none.safetensors"); }, "none.safetensors");
  BOOST_TEST((encoder_bytes(m) == before));
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(two_stage_training)

BOOST_AUTO_TEST_CASE(stage1_trains_new_layers_only_then_stage2_everything) {
  cpu_backend::context ctx(1);
  small_model m(small_options());
  m.init(7);
  train::strategy_options so;
  so.num_classes = 2;
  so.stage1 = {.epochs = 1, .optimizer = train::optimizer_kind::adam, .lr = 3e-3, .weight_decay = 1e-4,
               .schedule = train::schedule_kind::constant};
  so.stage2 = {.epochs = 1, .optimizer = train::optimizer_kind::adam, .lr = 123.0, .weight_decay = 1e-4,
               .schedule = train::schedule_kind::constant};
  train::strategies::whole_image_two_stage<small_model> s(m, so, 0.1);
  BOOST_TEST(s.stage_opts(1).lr == 3e-4, boost::test_tools::tolerance(1e-15));  // stage1.lr × multiplier
  BOOST_TEST(s.stage(0).name == "new_layers");
  BOOST_TEST(s.stage(1).name == "all_layers");

  lesion_task task;
  task.batches = 40;
  const auto encoder0 = encoder_bytes(m);
  std::vector<double> losses;
  s.begin_stage(0);
  for (std::int64_t i = 0; i < task.batches; ++i) {
    const train::step_context sc{.stage = 0, .epoch = 0, .step = i, .stage_step = i, .stage_steps = task.batches, .lr = 3e-3};
    losses.push_back(s.train_step(ctx, task.get_batch({0, 0, i, 1}), sc).loss);
  }
  // Stage 1 leaves every encoder weight and running statistic exactly as it was.
  BOOST_TEST((encoder_bytes(m) == encoder0));
  const auto mean = [](auto first, auto last) { return std::accumulate(first, last, 0.0) / static_cast<double>(last - first); };
  const double first = mean(losses.begin(), losses.begin() + 8), last = mean(losses.end() - 8, losses.end());
  BOOST_TEST_MESSAGE("stage 1 loss: first 8 steps " << first << ", last 8 steps " << last);
  BOOST_TEST(last < 0.6 * first);

  s.begin_stage(1);
  std::vector<double> losses2;
  for (std::int64_t i = 0; i < 10; ++i) {
    const train::step_context sc{.stage = 1, .epoch = 0, .step = i, .stage_step = i, .stage_steps = 10, .lr = 3e-4};
    losses2.push_back(s.train_step(ctx, task.get_batch({1, 1, i, 1}), sc).loss);
  }
  BOOST_TEST_MESSAGE("stage 2 loss: mean of 10 steps " << mean(losses2.begin(), losses2.end()));
  BOOST_TEST(!(encoder_bytes(m) == encoder0));  // stage 2 trains the encoder
  BOOST_TEST(mean(losses2.begin(), losses2.end()) < first);
}

BOOST_AUTO_TEST_CASE(runs_in_the_trainer) {
  cpu_backend::context ctx(1);
  test::temp_dir dir("whole-image-fit");
  small_model m(small_options());
  m.init(7);
  train::strategy_options so;
  so.num_classes = 2;
  so.stage1 = {.epochs = 2, .optimizer = train::optimizer_kind::adam, .lr = 3e-3, .weight_decay = 1e-4};
  so.stage2 = {.epochs = 1, .optimizer = train::optimizer_kind::adam, .weight_decay = 1e-4};
  train::strategies::whole_image_two_stage<small_model> s(m, so);
  lesion_task tr{.batches = 8, .seed = 1}, va{.batches = 4, .seed = 2};
  const train::fit_result r = train::fit(ctx, s, tr, &va, {.out_dir = dir.path, .progress = false}, 2);
  for (const auto& j : r.log) BOOST_TEST_MESSAGE("  " << j.dump());
  BOOST_TEST(r.log.size() == 3u);
  BOOST_TEST(r.best_metric >= 0.8);
  BOOST_TEST(std::filesystem::exists(r.best_checkpoint));
  // The trainer's best checkpoint is a whole-image checkpoint.
  small_model back(small_options());
  (void)io::load_state(back, r.best_checkpoint);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(bad_input)

BOOST_AUTO_TEST_CASE(impossible_units_are_config_errors) {
  try {
    unit_f32 u({.in_channels = 1024, .stride = 2, .projection = false});
    BOOST_FAIL("no exception");
  } catch (const config_error& e) {
    BOOST_TEST(e.message() ==
               "residual_bottleneck: an identity shortcut needs stride 1 and in_channels = depth*expansion (got stride 2, "
               "in_channels 1024, depth*expansion 1024); use projection = true");
  }
  mammocl::test::expect_error<config_error>([] { unit_f32 u({.in_channels = 512, .stride = 1, .projection = false}); },
                                            "(got stride 1, in_channels 512, depth*expansion 1024)");
  mammocl::test::expect_error<config_error>([] { unit_f32 u({.in_channels = 8, .depth = 0}); },
                                            "residual_bottleneck: in_channels (8), depth (0), expansion (2) and stride (2) must be positive");
  mammocl::test::expect_error<config_error>([] { unit_f32 u({}); }, "in_channels (0)");
  small_model m(small_options());
  mammocl::test::expect_error<config_error>(
      [&] { train::strategies::whole_image_two_stage<small_model> s(m, {.num_classes = 2}, 0.0); },
      "whole_image_two_stage: all_layer_multiplier 0 must be a finite number > 0");
  mammocl::test::expect_error<config_error>([] { small_model bad({.num_classes = 0}); }, "num_classes (0)");
}

BOOST_AUTO_TEST_CASE(wrong_inputs_are_shape_errors) {
  cpu_backend::context ctx(1);
  unit_f32 u({.in_channels = 4, .depth = 2});
  try {
    (void)u.infer(ctx, tensor<cpu_backend>::zeros(shape{1, 3, 4, 4}));
    BOOST_FAIL("no exception");
  } catch (const shape_error& e) {
    BOOST_TEST(e.message() == "residual_bottleneck: input must be (N,4,H,W), got (1,3,4,4)");
  }
  small_model m(small_options());
  mammocl::test::expect_error<shape_error>([&] { (void)m.infer(ctx, tensor<cpu_backend>::zeros(shape{1, 3, 64, 48})); },
                                           "densenet: input must be (N,1,H,W), got (1,3,64,48)");
}

BOOST_AUTO_TEST_SUITE_END()

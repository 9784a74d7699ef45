// custom_layer: how a user adds a layer to MammoCL (docs/adding_a_layer.md walks through it). The layer
// scales every channel by a learned factor; main() checks its gradients with the public finite-difference
// checker, composes it with built-in layers and trains a few steps. Exits non-zero if anything fails.
#include <cstdio>
#include <string>

#include "mammocl/mammocl.hpp"
#include "mammocl/optim/sgd.hpp"
#include "mammocl/testing/gradient_check.hpp"

/// y[n,c,h,w] = s[c]·x[n,c,h,w], s learned (initialised to 1).
template <mammocl::Backend B>
class channel_scale {
 public:
  using backend_type = B;
  using T = typename B::scalar_type;
  using tensor_t = mammocl::tensor<B>;
  struct options {
    mammocl::index_t channels = 0;
  };
  struct cache {
    tensor_t x;  // (N,C,H,W)
  };

  explicit channel_scale(const options& o) : opt_(o), s_(mammocl::shape{o.channels}) { B::fill(s_.value, T(1)); }

  tensor_t forward(typename B::context& ctx, const tensor_t& x, cache& c) const {
    c.x = x;
    return infer(ctx, x);
  }
  tensor_t infer(typename B::context&, const tensor_t& x) const {
    MAMMOCL_EXPECTS(x.rank() == 4 && x.c() == opt_.channels && x.contiguous(), "channel_scale: input must be a contiguous (N,",
                    opt_.channels, ",H,W) tensor, got ", x.dims());
    tensor_t y(x.dims());
    const auto hw = x.h() * x.w();
    for (mammocl::index_t i = 0; i < x.numel(); ++i) y.data()[i] = s_.value.data()[(i / hw) % x.c()] * x.data()[i];
    return y;
  }
  /// dx = s·dy;  ds (+)= Σ_{n,h,w} dy·x
  tensor_t backward(typename B::context&, const cache& c, const tensor_t& dy, mammocl::grad_mode mode) {
    tensor_t dx(dy.dims());
    const auto hw = dy.h() * dy.w();
    if (mode == mammocl::grad_mode::overwrite) B::fill(s_.grad, T(0));
    for (mammocl::index_t i = 0; i < dy.numel(); ++i) {
      const auto ch = (i / hw) % dy.c();
      dx.data()[i] = s_.value.data()[ch] * dy.data()[i];
      s_.grad.data()[ch] += dy.data()[i] * c.x.data()[i];
    }
    return dx;
  }
  template <class F>
  void for_each_parameter(const std::string& p, F&& f) { f(p + "scale", s_); }
  template <class F>
  void for_each_buffer(const std::string&, F&&) {}

 private:
  options opt_;
  mammocl::parameter<B> s_;
};

static_assert(mammocl::Layer<channel_scale<mammocl::cpu_backend>>, "channel_scale must satisfy the Layer concept");

int main() {
  using namespace mammocl;
  // 1. Gradients, in double, against central differences.
  channel_scale<cpu_backend_f64> probe({.channels = 3});
  probe.for_each_parameter("", [](const std::string&, parameter<cpu_backend_f64>& p) {
    for (index_t i = 0; i < p.value.numel(); ++i) p.value.data()[i] = 0.5 + 0.25 * static_cast<double>(i);
  });
  const auto check = testing::check_gradients(probe, shape{2, 3, 4, 4});
  std::printf("gradient check of channel_scale:\n%s", check.report.c_str());

  // 2. Composition with built-in layers, and a few training steps.
  using B = cpu_backend;
  using net_t = layers::sequential<layers::conv2d<B>, channel_scale<B>, layers::global_avg_pool<B>, layers::linear<B>>;
  net_t net({"conv", "scale", "pool", "fc"}, layers::conv2d<B>({.in_channels = 1, .out_channels = 4, .kernel = 3, .padding = 1}),
            channel_scale<B>({.channels = 4}), layers::global_avg_pool<B>({.relu = true}),
            layers::linear<B>({.in_features = 4, .out_features = 2}));
  rng r(3);
  net.get<0>().init(r);
  net.get<3>().init(r);
  B::context ctx(1);
  optim::sgd<B> opt(optim::collect_parameters(net), {.lr = 0.5, .momentum = 0.9});
  // Task: is the bright square in the top or the bottom half?
  tensor<B> x = tensor<B>::zeros(shape{8, 1, 8, 8});
  std::vector<int> y(8);
  for (int i = 0; i < 8; ++i) {
    y[i] = i % 2;
    for (int a = 0; a < 3; ++a)
      for (int b = 0; b < 3; ++b) x.at(i, 0, (y[i] ? 4 : 0) + a, i % 4 + b) = 1.0f;
  }
  double first = 0, last = 0;
  for (int step = 0; step < 60; ++step) {
    net_t::cache c;
    tensor<B> logits = net.forward(ctx, x, c);
    tensor<B> dl;
    last = losses::cross_entropy().value_and_gradient<B>(ctx, logits, y, &dl);
    if (step == 0) first = last;
    (void)net.backward(ctx, c, dl, grad_mode::overwrite);
    opt.step(ctx);
  }
  std::printf("training conv -> channel_scale -> pool -> fc: loss %.4f -> %.4f\n", first, last);
  const bool ok = check.ok && last < 0.5 * first;
  std::printf("%s\n", ok ? "custom layer: OK" : "custom layer: FAILED");
  return ok ? 0 : 1;
}

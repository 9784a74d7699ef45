// A user's program, as bench/compile_time.sh compiles it: builds DenseNet-121 through the umbrella header
// and trains it for a few SGD steps on random data. What it instantiates is what a real training program
// instantiates (the model, its layers, the CPU backend's float kernels, the loss and the optimizer), so its
// compile time is the compile time a user pays.
//
//   bench_compile_probe [steps] [size]     (defaults: 2 steps at 64x64, batch 2)
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mammocl/mammocl.hpp"
#include "mammocl/optim/sgd.hpp"

int main(int argc, char** argv) {
  using namespace mammocl;
  using B = cpu_backend;
  const int steps = argc > 1 ? std::atoi(argv[1]) : 2;
  const index_t size = argc > 2 ? std::atoi(argv[2]) : 64;

  B::context ctx(2);
  models::densenet<B, models::densenet121> model({.in_channels = 1, .num_classes = 2});
  model.init(42);
  optim::sgd<B> opt(optim::collect_parameters(model), {.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});
  const losses::cross_entropy loss;

  tensor<B> x(shape{2, 1, size, size});
  rng r(7);
  for (index_t i = 0; i < x.numel(); ++i) x.data()[i] = static_cast<float>(r.normal());
  const std::vector<int> labels{0, 1};
  tensor<B> dlogits;
  for (int s = 0; s < steps; ++s) {
    decltype(model)::cache cache;
    const tensor<B> logits = model.forward(ctx, x, cache);
    const double l = loss.value_and_gradient<B>(ctx, logits, labels, &dlogits);
    model.backward(ctx, cache, dlogits, grad_mode::overwrite);
    opt.step(ctx);
    std::printf("step %d: loss %.5f\n", s + 1, l);
  }
  const tensor<B> out = model.infer(ctx, x);
  std::printf("inference logits (%lld,%lld)\n", static_cast<long long>(out.dim(0)), static_cast<long long>(out.dim(1)));
  return 0;
}

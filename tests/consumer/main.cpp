// Builds against an installed MammoCL: one training step of the small DenseNet; exits non-zero on failure.
#include <mammocl/mammocl.hpp>

#include <cmath>
#include <cstdio>
#include <vector>

int main() {
  using namespace mammocl;
  cpu_backend::context ctx(1);
  models::densenet<cpu_backend, models::densenet_small> m({.in_channels = 1, .num_classes = 5});
  m.init(1);
  tensor<cpu_backend> x = tensor<cpu_backend>::full(shape{2, 1, 32, 32}, 0.5f);
  x.at(1, 0, 3, 4) = 2.0f;
  decltype(m)::cache c;
  tensor<cpu_backend> logits = m.forward(ctx, x, c);
  tensor<cpu_backend> dl;
  const std::vector<int> y{0, 3};
  const double loss = losses::cross_entropy().value_and_gradient<cpu_backend>(ctx, logits, y, &dl);
  m.backward(ctx, c, dl, grad_mode::overwrite);
  std::printf("consumer: %lld parameters, loss %.6f\n", static_cast<long long>(m.parameter_count()), loss);
  return std::isfinite(loss) && m.parameter_count() == 17617 ? 0 : 1;
}

// Must not compile: a DenseNet configuration with a zero growth rate. The test checks that the compiler
// prints MammoCL's sentence, not a wall of instantiations.
#include "mammocl/mammocl.hpp"

struct zero_growth {
  static constexpr int growth_rate = 0;
  static constexpr int bn_size = 4;
  static constexpr int init_features = 64;
  static constexpr std::array<int, 4> blocks{6, 12, 24, 16};
  static constexpr double compression = 0.5;
};

int main() {
  mammocl::models::densenet<mammocl::cpu_backend, zero_growth> m;
  return static_cast<int>(m.parameter_count());
}

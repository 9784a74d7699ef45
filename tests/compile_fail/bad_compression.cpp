// Must not compile: compression outside (0, 1].
#include "mammocl/mammocl.hpp"

struct bad_compression {
  static constexpr int growth_rate = 32;
  static constexpr int bn_size = 4;
  static constexpr int init_features = 64;
  static constexpr std::array<int, 2> blocks{6, 12};
  static constexpr double compression = 1.5;
};

int main() {
  mammocl::models::densenet<mammocl::cpu_backend, bad_compression> m;
  return static_cast<int>(m.parameter_count());
}

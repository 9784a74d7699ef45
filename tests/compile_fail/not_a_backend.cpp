// Must not compile: a type that is not a backend used as one. The diagnostic names the concept.
#include "mammocl/mammocl.hpp"

struct not_a_backend {
  using scalar_type = float;
};

int main() {
  mammocl::layers::relu<not_a_backend> r;
  (void)r;
}

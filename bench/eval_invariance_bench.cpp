// Timings of the domain-invariance tools (docs/eval-invariance-tsne.md): exact t-SNE of 1000 and 5000
// points (50-d, 5 Gaussian clusters), the class-free MMD²_u permutation test with 1000 permutations on
// 2×500 points of 128-d, and the proxy A-distance on 2×500 points of 1024-d.
// Build and run:
//   cmake --build build --target bench_eval_invariance
//   OMP_NUM_THREADS=2 ./build/bench/bench_eval_invariance [max_tsne_points]
#include <omp.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "mammocl/core/rng.hpp"
#include "mammocl/eval/invariance.hpp"
#include "mammocl/eval/tsne.hpp"

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}
std::vector<double> clusters(std::size_t n, std::size_t dim, std::vector<int>& labels, std::uint64_t seed) {
  mammocl::rng r(seed);
  std::vector<double> x(n * dim);
  labels.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    labels[i] = static_cast<int>(i % 5);
    for (std::size_t j = 0; j < dim; ++j) x[i * dim + j] = (j == static_cast<std::size_t>(labels[i]) ? 6.0 : 0.0) + r.normal();
  }
  return x;
}
}  // namespace

int main(int argc, char** argv) {
  const std::size_t max_points = argc > 1 ? static_cast<std::size_t>(std::atol(argv[1])) : 5000;
  std::printf("threads: %d\n", omp_get_max_threads());
  for (std::size_t n : {std::size_t{1000}, std::size_t{5000}}) {
    if (n > max_points) continue;
    std::vector<int> labels;
    const auto x = clusters(n, 50, labels, n);
    const auto t0 = std::chrono::steady_clock::now();
    const auto res = mammocl::eval::tsne(x, 50);
    const double s = seconds_since(t0);
    std::printf("tsne N=%zu D=50: %.2f s (%zu iterations, KL %.4f, 10-NN label agreement %.4f)\n", n, s,
                res.iterations + 1, res.kl_divergence, mammocl::eval::knn_label_agreement(res.embedding, 2, labels, 10));
  }
  {
    mammocl::rng r(1);
    const std::size_t n = 1000, dim = 128;
    std::vector<double> x(n * dim);
    std::vector<int> labels(n, 0), domains(n);
    for (std::size_t i = 0; i < n; ++i) {
      domains[i] = i < n / 2 ? 0 : 1;
      for (std::size_t j = 0; j < dim; ++j) x[i * dim + j] = r.normal() + (domains[i] == 1 && j == 0 ? 0.3 : 0.0);
    }
    const auto t0 = std::chrono::steady_clock::now();
    const auto res = mammocl::eval::mmd_permutation_test(x, dim, labels, domains);
    std::printf("mmd_permutation_test 2x500 x 128-d, 1000 permutations: %.2f s (MMD2_u %.5f, p %.4f)\n",
                seconds_since(t0), res.mmd2, res.p_value);
  }
  {
    mammocl::rng r(2);
    const std::size_t images = 500, dim = 1024;
    std::vector<double> x;
    std::vector<int> domains, ids;
    for (std::size_t i = 0; i < images; ++i)
      for (int d = 0; d < 2; ++d) {
        for (std::size_t j = 0; j < dim; ++j) x.push_back(r.normal() + (d == 1 && j < 8 ? 0.2 : 0.0));
        domains.push_back(d);
        ids.push_back(static_cast<int>(i));
      }
    const auto t0 = std::chrono::steady_clock::now();
    const auto res = mammocl::eval::proxy_a_distance(x, dim, domains, ids);
    std::printf("proxy_a_distance 2x500 x 1024-d, 16 C values: %.2f s (PAD %.3f, error %.3f, C %g)\n",
                seconds_since(t0), res.pad, res.error, res.best_c);
  }
}

// Timings of the evaluation code (docs/eval-auc-bootstrap.md): one-vs-one AUC of 100,000 samples × 5 classes,
// and 2000 stratified bootstrap replicates of a 10,000-sample binary AUC (OpenMP threads and one thread).
// Usage: bench_eval [--rounds R]   (each figure is the best of R rounds, default 5)
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "mammocl/core/rng.hpp"
#include "mammocl/eval/auc.hpp"
#include "mammocl/eval/bootstrap.hpp"

namespace {
double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

template <class F>
double best_of(int rounds, F&& f) {
  double best = 1e300;
  for (int r = 0; r < rounds; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    best = std::min(best, seconds_since(t0));
  }
  return best;
}
}  // namespace

int main(int argc, char** argv) {
  int rounds = 5;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--rounds") == 0 && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else {
      std::fprintf(stderr, "usage: bench_eval [--rounds R]\n");
      return 2;
    }
  }
  if (rounds < 1) {
    std::fprintf(stderr, "bench_eval: --rounds must be >= 1\n");
    return 2;
  }
  namespace ev = mammocl::eval;
  mammocl::rng r(2026);

  // 100,000 × 5 softmax probabilities with some signal for the true class.
  const std::size_t n = 100000, k = 5;
  std::vector<int> y(n);
  std::vector<double> p(n * k);
  for (std::size_t i = 0; i < n; ++i) {
    y[i] = static_cast<int>(r.below(k));
    double sum = 0;
    for (std::size_t c = 0; c < k; ++c) {
      const double z = r.normal() + (static_cast<int>(c) == y[i] ? 1.0 : 0.0);
      p[i * k + c] = std::exp(z);
      sum += p[i * k + c];
    }
    for (std::size_t c = 0; c < k; ++c) p[i * k + c] /= sum;
  }
  double macro = 0;
  const double t_ovo = best_of(rounds, [&] { macro = ev::ovo_auc(p, y, static_cast<int>(k)).macro; });
  std::printf("ovo_auc        N=%zu K=%zu: %.4f s (macro AUC %.6f)\n", n, k, t_ovo, macro);

  // 10,000 binary scores, 2000 stratified replicates.
  const std::size_t m = 10000;
  std::vector<int> yb(m);
  std::vector<double> sb(m);
  for (std::size_t i = 0; i < m; ++i) {
    yb[i] = r.uniform() < 0.3 ? 1 : 0;
    sb[i] = r.normal() + yb[i];
  }
  const ev::binary_auc_statistic stat(sb, yb);
  const auto plan = ev::make_plan(yb, {.replicates = 2000, .seed = 7});
  ev::bootstrap_result res;
  const double t_par = best_of(rounds, [&] { res = ev::bootstrap(plan, stat); });
  std::printf("bootstrap      N=%zu B=2000, %d threads: %.4f s (AUC %.4f, s.e. %.4f, 95%% CI %.4f-%.4f)\n", m,
              omp_get_max_threads(), t_par, res.estimate, res.standard_error, res.ci_low, res.ci_high);
  ev::bootstrap_result res1;
  const double t_ser = best_of(rounds, [&] { res1 = ev::bootstrap(plan, stat, {.parallel = false}); });
  std::printf("bootstrap      N=%zu B=2000, 1 thread:  %.4f s (identical replicates: %s)\n", m, t_ser,
              res1.replicates == res.replicates ? "yes" : "NO");

  // Paired bootstrap of two 5-class models' OvO AUCs on 10,000 samples.
  std::vector<int> y5(y.begin(), y.begin() + m);
  std::vector<double> p5(p.begin(), p.begin() + m * k), q5(p5);
  for (std::size_t i = 0; i < m; ++i) {
    double sum = 0;
    for (std::size_t c = 0; c < k; ++c) sum += (q5[i * k + c] *= std::exp(0.8 * r.normal()));
    for (std::size_t c = 0; c < k; ++c) q5[i * k + c] /= sum;
  }
  const ev::ovo_auc_statistic s1(p5, y5, static_cast<int>(k)), s2(q5, y5, static_cast<int>(k));
  const auto plan5 = ev::make_plan(y5, {.replicates = 2000, .seed = 7});
  ev::paired_bootstrap_result pr;
  const double t_pair = best_of(rounds, [&] { pr = ev::paired_bootstrap(plan5, s1, s2); });
  std::printf("paired OvO     N=%zu K=%zu B=2000, %d threads: %.4f s (AUC %.4f vs %.4f, D %.2f, p %.3g)\n", m, k,
              omp_get_max_threads(), t_pair, pr.first.estimate, pr.second.estimate, pr.z, pr.p_two_sided);
  return 0;
}

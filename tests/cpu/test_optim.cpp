// Optimizers (SGD, Adam, AdamW) and learning-rate schedules against golden values from PyTorch
// (tests/cpu/golden/optim_golden.hpp, written by tests/tools/make_optim_golden.py), option validation,
// and bit-exact resume through for_each_state.
#include <boost/test/unit_test.hpp>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <iomanip>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "golden/optim_golden.hpp"
#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/layers/linear.hpp"
#include "mammocl/models/densenet.hpp"
#include "mammocl/optim/adam.hpp"
#include "mammocl/optim/lr_schedule.hpp"
#include "mammocl/optim/optimizer.hpp"
#include "mammocl/optim/sgd.hpp"

namespace {

namespace golden = mammocl_test::optim_golden;
namespace optim = mammocl::optim;
using mammocl::config_error;
using mammocl::cpu_backend;
using mammocl::cpu_backend_f64;
using mammocl::parameter;
using mammocl::shape;
using mammocl::shape_error;
using mammocl::tensor;

static_assert(optim::Optimizer<optim::sgd<cpu_backend>>);
static_assert(optim::Optimizer<optim::sgd<cpu_backend_f64>>);
static_assert(optim::Optimizer<optim::adam<cpu_backend>>);
static_assert(optim::Optimizer<optim::adamw<cpu_backend_f64>>);
static_assert(!optim::Optimizer<int>);
static_assert(!optim::Optimizer<mammocl::layers::linear<cpu_backend>>);

/// The golden problem: 7 scalars in parameter "a" (2,2) = elements [0,4) and "b" (3) = elements [4,7).
template <class B>
struct problem {
  using T = typename B::scalar_type;
  parameter<B> a{shape{2, 2}};
  parameter<B> b{shape{3}};

  problem() {
    for (int i = 0; i < golden::n_values; ++i) value(i) = static_cast<T>(golden::initial_value(i));
  }
  problem(const problem&) = delete;  // optimizers hold pointers to a and b
  problem& operator=(const problem&) = delete;

  T& value(int i) { return i < golden::split ? a.value.data()[i] : b.value.data()[i - golden::split]; }
  T& grad(int i) { return i < golden::split ? a.grad.data()[i] : b.grad.data()[i - golden::split]; }
  std::vector<optim::named_parameter<B>> params() { return {{"a", &a}, {"b", &b}}; }
  /// Gradients of step k at the current values.
  void set_gradients(int k) {
    for (int i = 0; i < golden::n_values; ++i) grad(i) = golden::gradient<T>(k, i, value(i));
  }
  void copy_values_from(problem& o) {
    for (int i = 0; i < golden::n_values; ++i) value(i) = o.value(i);
  }
};

std::string fmt(double v) {
  std::ostringstream os;
  os << std::setprecision(17) << v;
  return os.str();
}

/// Runs the golden problem's n_steps steps with `opt` over `pr` and compares every value after every step
/// with `expected` to |got − want| <= rtol·|want| + atol. Returns the largest relative error seen.
template <class B, class Opt>
double replay(const char* name, double lr, double lr_factor, const double (&expected)[golden::n_steps][golden::n_values],
              Opt& opt, problem<B>& pr, double rtol, double atol) {
  typename B::context ctx(1);
  double worst = 0;
  for (int k = 0; k < golden::n_steps; ++k) {
    if (k == golden::lr_change_step) opt.set_lr(lr * lr_factor);
    pr.set_gradients(k);
    opt.step(ctx);
    BOOST_CHECK_EQUAL(opt.step_count(), k + 1);
    for (int i = 0; i < golden::n_values; ++i) {
      const double got = static_cast<double>(pr.value(i)), want = expected[k][i];
      const double err = std::abs(got - want);
      worst = std::max(worst, err / std::max(std::abs(want), 1e-300));
      BOOST_CHECK_MESSAGE(err <= rtol * std::abs(want) + atol, name << ": step " << k << ", value " << i << ": got "
                                                                     << fmt(got) << ", PyTorch " << fmt(want));
    }
  }
  return worst;
}

template <class B>
void check_sgd_cases(double rtol, double atol) {
  for (const auto& c : golden::sgd_cases) {
    problem<B> pr;
    optim::sgd<B> opt(pr.params(), {.lr = c.lr, .momentum = c.momentum, .dampening = c.dampening,
                                    .weight_decay = c.weight_decay, .nesterov = c.nesterov});
    const double worst = replay(c.name, c.lr, c.lr_factor, c.expected, opt, pr, rtol, atol);
    BOOST_TEST_MESSAGE("sgd " << c.name << " (" << B::name << ", " << sizeof(typename B::scalar_type) * 8
                              << "-bit): largest relative error " << worst);
  }
}

template <class B>
void check_adam_cases(double rtol, double atol) {
  for (const auto& c : golden::adam_cases) {
    problem<B> pr;
    double worst = 0;
    if (c.decoupled) {
      optim::adamw<B> opt(pr.params(), {.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps,
                                        .weight_decay = c.weight_decay});
      worst = replay(c.name, c.lr, c.lr_factor, c.expected, opt, pr, rtol, atol);
    } else {
      optim::adam<B> opt(pr.params(), {.lr = c.lr, .beta1 = c.beta1, .beta2 = c.beta2, .eps = c.eps,
                                       .weight_decay = c.weight_decay});
      worst = replay(c.name, c.lr, c.lr_factor, c.expected, opt, pr, rtol, atol);
    }
    BOOST_TEST_MESSAGE("adam " << c.name << " (" << sizeof(typename B::scalar_type) * 8
                               << "-bit): largest relative error " << worst);
  }
}

/// True when `e` is exactly a config_error whose message contains every one of `words`.
template <class E>
auto mentions(std::vector<std::string> words) {
  return [words = std::move(words)](const E& e) {
    if (typeid(e) != typeid(E)) return false;
    for (const auto& w : words)
      if (e.message().find(w) == std::string::npos) {
        BOOST_TEST_MESSAGE("message \"" << e.message() << "\" does not mention \"" << w << "\"");
        return false;
      }
    return true;
  };
}

/// A copy of an optimizer's state, taken through the const for_each_state.
template <class B>
struct saved_state {
  std::map<std::string, tensor<B>> tensors;
  std::vector<std::string> order;
  std::int64_t step = -1;
};

template <class B, class Opt>
saved_state<B> save(const Opt& opt) {
  saved_state<B> s;
  struct visitor {
    saved_state<B>* s;
    void operator()(const std::string& name, const tensor<B>& t) const {
      s->tensors.emplace(name, t.clone());
      s->order.push_back(name);
    }
    void operator()(const std::string& name, const std::int64_t& step) const {
      s->step = step;
      s->order.push_back(name);
    }
  };
  opt.for_each_state(visitor{&s});
  return s;
}

/// Writes `s` back into `opt` through the mutable for_each_state (into the tensors it exposes).
template <class B, class Opt>
void restore(Opt& opt, const saved_state<B>& s) {
  int visited = 0;
  struct visitor {
    const saved_state<B>* s;
    int* visited;
    void operator()(const std::string& name, tensor<B>& t) const {
      BOOST_REQUIRE_MESSAGE(s->tensors.count(name) == 1, "no saved state named " << name);
      B::copy(s->tensors.at(name), t);
      ++*visited;
    }
    void operator()(const std::string& name, std::int64_t& step) const {
      BOOST_REQUIRE_EQUAL(name, "step");
      step = s->step;
      ++*visited;
    }
  };
  opt.for_each_state(visitor{&s, &visited});
  BOOST_CHECK_EQUAL(static_cast<std::size_t>(visited), s.order.size());
}

/// Runs `steps` steps of the golden problem from step index k0.
template <class B, class Opt>
void run_steps(Opt& opt, problem<B>& pr, int k0, int steps) {
  typename B::context ctx(1);
  for (int k = k0; k < k0 + steps; ++k) {
    pr.set_gradients(k);
    opt.step(ctx);
  }
}

/// Trains `make(pr)` for 3 steps, saves parameters and optimizer state, and checks that a fresh optimizer
/// restored from that state continues bit-identically with the uninterrupted one for 4 more steps (and that a
/// fresh optimizer without the restore does not, so the check has teeth). Returns the saved state names.
template <class B, class Make>
std::vector<std::string> check_resume(Make make) {
  problem<B> original;
  auto opt = make(original);
  run_steps(opt, original, 0, 3);
  const saved_state<B> state = save<B>(opt);
  BOOST_CHECK_EQUAL(state.step, 3);

  problem<B> resumed, cold;
  resumed.copy_values_from(original);
  cold.copy_values_from(original);
  auto opt_resumed = make(resumed);
  auto opt_cold = make(cold);
  restore(opt_resumed, state);
  BOOST_CHECK_EQUAL(opt_resumed.step_count(), 3);

  run_steps(opt, original, 3, 4);
  run_steps(opt_resumed, resumed, 3, 4);
  run_steps(opt_cold, cold, 3, 4);
  bool any_cold_difference = false;
  for (int i = 0; i < golden::n_values; ++i) {
    BOOST_CHECK_MESSAGE(std::memcmp(&original.value(i), &resumed.value(i), sizeof(original.value(i))) == 0,
                        "value " << i << ": uninterrupted " << fmt(original.value(i)) << ", resumed "
                                 << fmt(resumed.value(i)));
    any_cold_difference = any_cold_difference || original.value(i) != cold.value(i);
  }
  BOOST_CHECK_MESSAGE(any_cold_difference, "an optimizer without restored state continued identically: the resume "
                                           "test cannot tell whether the state matters");
  const saved_state<B> after = save<B>(opt), after_resumed = save<B>(opt_resumed);
  BOOST_CHECK_EQUAL(after.step, after_resumed.step);
  for (const auto& [name, t] : after.tensors) {
    const auto& u = after_resumed.tensors.at(name);
    BOOST_CHECK_MESSAGE(std::memcmp(t.data(), u.data(), sizeof(*t.data()) * static_cast<std::size_t>(t.numel())) == 0,
                        "state " << name << " differs after resuming");
  }
  return state.order;
}

}  // namespace

BOOST_AUTO_TEST_SUITE(optim_golden)

BOOST_AUTO_TEST_CASE(sgd_matches_pytorch_float64) { check_sgd_cases<cpu_backend_f64>(1e-12, 1e-15); }

BOOST_AUTO_TEST_CASE(sgd_matches_pytorch_float32) { check_sgd_cases<cpu_backend>(1e-6, 1e-6); }

BOOST_AUTO_TEST_CASE(adam_and_adamw_match_pytorch_float64) { check_adam_cases<cpu_backend_f64>(1e-12, 1e-15); }

BOOST_AUTO_TEST_CASE(adam_and_adamw_match_pytorch_float32) { check_adam_cases<cpu_backend>(1e-6, 1e-6); }

BOOST_AUTO_TEST_CASE(schedules_match_pytorch) {
  const std::vector<std::int64_t> milestones{2, 5, 9};
  const optim::step_lr step(0.1, 3, 0.5);
  const optim::multistep_lr multistep(0.1, milestones, 0.1);
  const optim::cosine_annealing_lr cosine(0.1, 10, 0.001);
  const optim::cosine_annealing_lr cosine_zero(0.1, 7);
  const optim::linear_warmup warmup(optim::cosine_annealing_lr(0.1, 12, 0.0), 4, 0.1);
  auto check = [](const char* name, const auto& s, const auto& want) {
    for (std::size_t t = 0; t < want.size(); ++t) {
      const double got = s(static_cast<std::int64_t>(t));
      // PyTorch steps these schedules recursively; the closed forms agree to rounding, so the slack is
      // relative to the base rate (values near eta_min = 0 are compared absolutely).
      BOOST_CHECK_MESSAGE(std::abs(got - want[t]) <= 1e-12 * s.base_lr(),
                          name << ": t = " << t << ": got " << fmt(got) << ", PyTorch " << fmt(want[t]));
    }
  };
  check("step_lr", step, golden::schedule_step);
  check("multistep_lr", multistep, golden::schedule_multistep);
  check("cosine_annealing_lr", cosine, golden::schedule_cosine);
  check("cosine_annealing_lr (eta_min 0)", cosine_zero, golden::schedule_cosine_zero_floor);
  check("linear_warmup + cosine_annealing_lr", warmup, golden::schedule_warmup_cosine);

  // Exact anchor points of the closed forms.
  BOOST_TEST(cosine(0) == 0.1);
  BOOST_TEST(cosine(10) == 0.001);
  BOOST_TEST(cosine_zero(7) == 0.0);
  BOOST_TEST(warmup(4) == 0.1);
  BOOST_TEST(warmup.base_lr() == 0.1);
  BOOST_TEST(optim::constant_lr(0.03)(1000) == 0.03);
  BOOST_TEST(optim::linear_warmup(optim::constant_lr(0.2), 0, 0.5)(0) == 0.2);  // no warm-up
  BOOST_TEST(optim::multistep_lr(1.0, {3, 3}, 0.5)(3) == 0.25);                   // a repeated milestone applies twice
  BOOST_TEST(optim::multistep_lr(1.0, {}, 0.5)(50) == 1.0);
}

BOOST_AUTO_TEST_SUITE_END()

BOOST_AUTO_TEST_SUITE(optim_api)

BOOST_AUTO_TEST_CASE(bad_sgd_options_are_rejected) {
  problem<cpu_backend> pr;
  using opts = optim::sgd<cpu_backend>::options;
  auto make = [&](const opts& o) { optim::sgd<cpu_backend> s(pr.params(), o); };
  const double nan = std::numeric_limits<double>::quiet_NaN(), inf = std::numeric_limits<double>::infinity();
  BOOST_CHECK_EXCEPTION(make({}), config_error, mentions<config_error>({"sgd", "lr", "must be set"}));
  BOOST_CHECK_EXCEPTION(make({.lr = -0.1}), config_error, mentions<config_error>({"sgd", "option lr", "-0.1"}));
  BOOST_CHECK_EXCEPTION(make({.lr = inf}), config_error, mentions<config_error>({"option lr", "inf"}));
  BOOST_CHECK_EXCEPTION(make({.lr = 0.1, .momentum = -0.5}), config_error,
                        mentions<config_error>({"option momentum", "-0.5"}));
  BOOST_CHECK_EXCEPTION(make({.lr = 0.1, .momentum = nan}), config_error, mentions<config_error>({"option momentum"}));
  BOOST_CHECK_EXCEPTION(make({.lr = 0.1, .momentum = 0.9, .dampening = 1.5}), config_error,
                        mentions<config_error>({"option dampening", "1.5"}));
  BOOST_CHECK_EXCEPTION(make({.lr = 0.1, .momentum = 0.9, .dampening = -0.1}), config_error,
                        mentions<config_error>({"option dampening"}));
  BOOST_CHECK_EXCEPTION(make({.lr = 0.1, .weight_decay = -1e-4}), config_error,
                        mentions<config_error>({"option weight_decay"}));
  BOOST_CHECK_EXCEPTION(make({.lr = 0.1, .nesterov = true}), config_error,
                        mentions<config_error>({"option nesterov", "momentum > 0", "got momentum 0"}));
  BOOST_CHECK_EXCEPTION(make({.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}), config_error,
                        mentions<config_error>({"option nesterov", "dampening == 0", "dampening 0.1"}));
  // The boundaries that are allowed.
  BOOST_CHECK_NO_THROW(make({.lr = 0.0, .momentum = 0.0, .dampening = 1.0, .weight_decay = 0.0}));
  BOOST_CHECK_NO_THROW(make({.lr = 0.1, .momentum = 0.9, .nesterov = true}));

  optim::sgd<cpu_backend> s(pr.params(), {.lr = 0.1});
  BOOST_CHECK_EXCEPTION(s.set_lr(-1.0), config_error, mentions<config_error>({"sgd", "option lr", "-1"}));
  BOOST_CHECK_EXCEPTION(s.set_lr(nan), config_error, mentions<config_error>({"sgd", "option lr"}));
  BOOST_TEST(s.lr() == 0.1);
  s.set_lr(0.025);
  BOOST_TEST(s.lr() == 0.025);
  BOOST_TEST(s.opts().lr == 0.025);
}

BOOST_AUTO_TEST_CASE(bad_adam_options_are_rejected) {
  problem<cpu_backend_f64> pr;
  auto make_adam = [&](const optim::adam<cpu_backend_f64>::options& o) { optim::adam<cpu_backend_f64> a(pr.params(), o); };
  auto make_adamw = [&](const optim::adamw<cpu_backend_f64>::options& o) {
    optim::adamw<cpu_backend_f64> a(pr.params(), o);
  };
  BOOST_CHECK_EXCEPTION(make_adam({.lr = -1e-3}), config_error, mentions<config_error>({"adam:", "option lr"}));
  BOOST_CHECK_EXCEPTION(make_adam({.beta1 = 1.0}), config_error, mentions<config_error>({"option beta1", "[0, 1)"}));
  BOOST_CHECK_EXCEPTION(make_adam({.beta1 = -0.1}), config_error, mentions<config_error>({"option beta1"}));
  BOOST_CHECK_EXCEPTION(make_adam({.beta2 = 1.5}), config_error, mentions<config_error>({"option beta2", "1.5"}));
  BOOST_CHECK_EXCEPTION(make_adam({.eps = -1e-8}), config_error, mentions<config_error>({"option eps"}));
  BOOST_CHECK_EXCEPTION(make_adam({.weight_decay = -0.01}), config_error,
                        mentions<config_error>({"option weight_decay"}));
  BOOST_CHECK_EXCEPTION(make_adamw({.beta2 = std::numeric_limits<double>::quiet_NaN()}), config_error,
                        mentions<config_error>({"adamw:", "option beta2"}));
  BOOST_CHECK_EXCEPTION(make_adamw({.weight_decay = -0.01}), config_error,
                        mentions<config_error>({"adamw:", "option weight_decay"}));
  BOOST_CHECK_NO_THROW(make_adam({.lr = 0.0, .beta1 = 0.0, .beta2 = 0.0, .eps = 0.0}));

  // PyTorch's defaults; AdamW decays by 1e-2 unless told otherwise.
  const optim::adam<cpu_backend_f64>::options a;
  const optim::adamw<cpu_backend_f64>::options w;
  BOOST_TEST(a.lr == 1e-3);
  BOOST_TEST(a.beta1 == 0.9);
  BOOST_TEST(a.beta2 == 0.999);
  BOOST_TEST(a.eps == 1e-8);
  BOOST_TEST(a.weight_decay == 0.0);
  BOOST_TEST(w.weight_decay == 1e-2);
  optim::adamw<cpu_backend_f64> opt(pr.params());
  BOOST_TEST(opt.opts().weight_decay == 1e-2);
  BOOST_CHECK_EXCEPTION(opt.set_lr(-2.0), config_error, mentions<config_error>({"adamw", "option lr"}));
}

BOOST_AUTO_TEST_CASE(bad_parameter_lists_are_rejected) {
  problem<cpu_backend> pr;
  const optim::sgd<cpu_backend>::options o{.lr = 0.1};
  using list = std::vector<optim::named_parameter<cpu_backend>>;
  BOOST_CHECK_EXCEPTION(optim::sgd<cpu_backend>(list{}, o), config_error, mentions<config_error>({"sgd", "empty"}));
  BOOST_CHECK_EXCEPTION(optim::adam<cpu_backend>(list{}), config_error, mentions<config_error>({"adam", "empty"}));
  BOOST_CHECK_EXCEPTION(optim::sgd<cpu_backend>(list{{"a", &pr.a}, {"x", nullptr}}, o), config_error,
                        mentions<config_error>({"\"x\"", "null"}));
  BOOST_CHECK_EXCEPTION(optim::sgd<cpu_backend>(list{{"a", &pr.a}, {"a2", &pr.a}}, o), config_error,
                        mentions<config_error>({"\"a2\"", "twice"}));
  BOOST_CHECK_EXCEPTION(optim::adamw<cpu_backend>(list{{"w", &pr.a}, {"w", &pr.b}}), config_error,
                        mentions<config_error>({"adamw", "\"w\"", "unique"}));
  parameter<cpu_backend> odd(shape{3});
  odd.grad = tensor<cpu_backend>::zeros(shape{4});
  BOOST_CHECK_EXCEPTION(optim::sgd<cpu_backend>(list{{"odd", &odd}}, o), config_error,
                        mentions<config_error>({"\"odd\"", "(3)", "(4)"}));
}

BOOST_AUTO_TEST_CASE(bad_schedules_are_rejected) {
  BOOST_CHECK_EXCEPTION(optim::step_lr(0.1, 0), config_error, mentions<config_error>({"step_lr", "step_size"}));
  BOOST_CHECK_EXCEPTION(optim::step_lr(-0.1, 3), config_error, mentions<config_error>({"step_lr", "base_lr"}));
  BOOST_CHECK_EXCEPTION(optim::step_lr(0.1, 3, -0.5), config_error, mentions<config_error>({"step_lr", "gamma"}));
  BOOST_CHECK_EXCEPTION(optim::multistep_lr(0.1, {5, 2}), config_error,
                        mentions<config_error>({"multistep_lr", "milestones", "sorted"}));
  BOOST_CHECK_EXCEPTION(optim::multistep_lr(0.1, {0, 2}), config_error,
                        mentions<config_error>({"multistep_lr", "milestones", ">= 1"}));
  BOOST_CHECK_EXCEPTION(optim::cosine_annealing_lr(0.1, 0), config_error,
                        mentions<config_error>({"cosine_annealing_lr", "t_max"}));
  BOOST_CHECK_EXCEPTION(optim::cosine_annealing_lr(0.1, 10, -1.0), config_error,
                        mentions<config_error>({"cosine_annealing_lr", "eta_min"}));
  BOOST_CHECK_EXCEPTION((void)optim::constant_lr(std::numeric_limits<double>::infinity()), config_error,
                        mentions<config_error>({"constant_lr", "base_lr"}));
  BOOST_CHECK_EXCEPTION(optim::linear_warmup(optim::constant_lr(0.1), 5, 0.0), config_error,
                        mentions<config_error>({"linear_warmup", "start_factor"}));
  BOOST_CHECK_EXCEPTION(optim::linear_warmup(optim::constant_lr(0.1), -1), config_error,
                        mentions<config_error>({"linear_warmup", "warmup_steps"}));
  BOOST_CHECK_EXCEPTION((void)optim::cosine_annealing_lr(0.1, 10)(-1), config_error,
                        mentions<config_error>({"cosine_annealing_lr", "t must be >= 0", "-1"}));
}

BOOST_AUTO_TEST_CASE(state_names_and_bit_exact_resume) {
  using B = cpu_backend;  // float: the precision training runs in, where bit-exactness is hardest to fake
  const auto sgd_names = check_resume<B>([](problem<B>& pr) {
    return optim::sgd<B>(pr.params(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true});
  });
  BOOST_TEST(sgd_names == (std::vector<std::string>{"step", "a.momentum_buffer", "b.momentum_buffer"}),
             boost::test_tools::per_element());
  const auto dampened_names = check_resume<B>([](problem<B>& pr) {
    return optim::sgd<B>(pr.params(), {.lr = 0.1, .momentum = 0.8, .dampening = 0.3});
  });
  BOOST_TEST(dampened_names.size() == 3u);
  const auto adam_names = check_resume<B>([](problem<B>& pr) {
    return optim::adam<B>(pr.params(), {.lr = 0.05, .weight_decay = 0.1});
  });
  BOOST_TEST(adam_names == (std::vector<std::string>{"step", "a.exp_avg", "a.exp_avg_sq", "b.exp_avg", "b.exp_avg_sq"}),
             boost::test_tools::per_element());
  check_resume<B>([](problem<B>& pr) { return optim::adamw<B>(pr.params(), {.lr = 0.05, .weight_decay = 0.2}); });
  check_resume<cpu_backend_f64>(
      [](problem<cpu_backend_f64>& pr) { return optim::adam<cpu_backend_f64>(pr.params(), {.lr = 0.02}); });

  // Plain SGD has no buffers: its state is the step count alone.
  problem<B> pr;
  optim::sgd<B> plain(pr.params(), {.lr = 0.1});
  BOOST_TEST(save<B>(plain).order == (std::vector<std::string>{"step"}), boost::test_tools::per_element());
}

BOOST_AUTO_TEST_CASE(restored_state_of_the_wrong_shape_is_caught) {
  problem<cpu_backend> pr;
  optim::adam<cpu_backend> opt(pr.params(), {});
  opt.for_each_state([](const std::string& name, auto& s) {
    if constexpr (std::is_same_v<std::decay_t<decltype(s)>, tensor<cpu_backend>>) {
      if (name == "b.exp_avg_sq") s = tensor<cpu_backend>::zeros(shape{4});
    }
  });
  cpu_backend::context ctx(1);
  BOOST_CHECK_EXCEPTION(opt.step(ctx), shape_error, mentions<shape_error>({"adam::step", "\"b\"", "(4)", "(3)"}));

  optim::sgd<cpu_backend> s(pr.params(), {.lr = 0.1, .momentum = 0.9});
  s.for_each_state([](const std::string&, auto& v) {
    if constexpr (std::is_same_v<std::decay_t<decltype(v)>, std::int64_t>) v = -4;
  });
  BOOST_CHECK_EXCEPTION(s.step(ctx), config_error, mentions<config_error>({"sgd::step", "-4"}));
}

BOOST_AUTO_TEST_CASE(zero_grad_step_count_and_class_template_deduction) {
  problem<cpu_backend_f64> pr;
  pr.set_gradients(0);
  optim::sgd opt(pr.params(), {.lr = 0.5});  // B deduced from the parameter list
  static_assert(std::is_same_v<decltype(opt), optim::sgd<cpu_backend_f64>>);
  BOOST_TEST(opt.step_count() == 0);
  opt.zero_grad();
  for (int i = 0; i < golden::n_values; ++i) BOOST_TEST(pr.grad(i) == 0.0);
  std::vector<double> before;
  for (int i = 0; i < golden::n_values; ++i) before.push_back(pr.value(i));
  cpu_backend_f64::context ctx(1);
  opt.step(ctx);  // zero gradient, no decay: nothing moves
  for (int i = 0; i < golden::n_values; ++i) BOOST_TEST(pr.value(i) == before[static_cast<std::size_t>(i)]);
  BOOST_TEST(opt.step_count() == 1);
  BOOST_TEST(opt.parameters().size() == 2u);
  BOOST_TEST(opt.parameters()[1].name == "b");
}

BOOST_AUTO_TEST_CASE(collect_parameters_from_layers_and_models) {
  using B = cpu_backend;
  mammocl::layers::linear<B> fc({.in_features = 3, .out_features = 2});
  const auto lp = optim::collect_parameters(fc, "head.");
  BOOST_TEST_REQUIRE(lp.size() == 2u);
  BOOST_TEST(lp[0].name == "head.weight");
  BOOST_TEST(lp[1].name == "head.bias");
  BOOST_TEST(lp[0].p == &fc.weight());
  BOOST_TEST(lp[1].p == &fc.bias());

  mammocl::models::densenet<B, mammocl::models::densenet_small> net({.in_channels = 1, .num_classes = 5});
  std::vector<std::string> names;
  std::size_t numel = 0;
  net.for_each_parameter([&](const std::string& n, parameter<B>& p) {
    names.push_back(n);
    numel += static_cast<std::size_t>(p.value.numel());
  });
  const auto mp = optim::collect_parameters(net);
  BOOST_TEST_REQUIRE(mp.size() == names.size());
  for (std::size_t i = 0; i < mp.size(); ++i) BOOST_TEST(mp[i].name == names[i]);
  BOOST_TEST(mp.front().name == "features.conv0.weight");
  BOOST_TEST(mp.back().name == "classifier.bias");
  const auto prefixed = optim::collect_parameters<B>(net, "encoder.");
  BOOST_TEST(prefixed.front().name == "encoder.features.conv0.weight");

  // One SGD step over every parameter of the model: each value moves by exactly −lr·grad.
  net.init(7);
  std::vector<float> before;
  for (const auto& np : mp) {
    B::fill(np.p->grad, 0.5f);
    before.insert(before.end(), np.p->value.data(), np.p->value.data() + np.p->value.numel());
  }
  optim::sgd<B> opt(mp, {.lr = 0.25});
  B::context ctx(2);
  opt.step(ctx);
  std::size_t k = 0;
  bool all_moved = true;
  for (const auto& np : mp)
    for (mammocl::index_t j = 0; j < np.p->value.numel(); ++j, ++k)
      all_moved = all_moved && np.p->value.data()[j] == before[k] - 0.25f * 0.5f;
  BOOST_TEST(k == numel);
  BOOST_TEST(all_moved);
}

BOOST_AUTO_TEST_SUITE_END()

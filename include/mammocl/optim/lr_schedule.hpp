#pragma once
/// Learning-rate schedules as pure functions of a step index t = 0, 1, 2, ...: `schedule(t)` is the
/// learning rate to use during step t. Whether t counts epochs or iterations is the caller's choice
/// (the same schedule object works for both); a trainer calls `opt.set_lr(schedule(t))` before step t.
/// Because a schedule holds no state, resuming from a checkpoint needs only t.
///
/// Each schedule gives the values torch.optim.lr_scheduler gives after t calls of `scheduler.step()`
/// (closed forms; PyTorch's recursive updates agree with them to rounding):
///   constant_lr           base_lr
///   step_lr               StepLR:           base_lr · gamma^⌊t / step_size⌋
///   multistep_lr          MultiStepLR:      base_lr · gamma^(number of milestones <= t)
///   cosine_annealing_lr   CosineAnnealingLR: eta_min + (base_lr − eta_min)·(1 + cos(π t / t_max)) / 2
///   linear_warmup(s, w)   SequentialLR([LinearLR(start_factor, total_iters = w), s], milestones = [w])
#include <algorithm>
#include <cmath>
#include <concepts>
#include <cstdint>
#include <numbers>
#include <utility>
#include <vector>

#include "mammocl/core/error.hpp"

namespace mammocl::optim {

/// A learning-rate schedule: `s(t)` for t >= 0, and the rate it starts from, `s.base_lr()`.
template <class S>
concept LrSchedule = requires(const S& s, std::int64_t t) {
  { s(t) } -> std::convertible_to<double>;
  { s.base_lr() } -> std::convertible_to<double>;
};

namespace detail {
inline void check_base_lr(double base_lr, const char* who) {
  MAMMOCL_CHECK(std::isfinite(base_lr) && base_lr >= 0.0, config_error, who,
                ": base_lr must be a finite number >= 0, got ", base_lr);
}
inline void check_t(std::int64_t t, const char* who) {
  MAMMOCL_CHECK(t >= 0, config_error, who, ": the step index t must be >= 0, got ", t);
}
}  // namespace detail

/// The same rate at every step.
class constant_lr {
 public:
  /// @throws config_error unless base_lr is finite and >= 0.
  explicit constant_lr(double base_lr) : base_(base_lr) { detail::check_base_lr(base_lr, "constant_lr"); }
  /// @pre t >= 0 (config_error otherwise).
  [[nodiscard]] double operator()(std::int64_t t) const {
    detail::check_t(t, "constant_lr");
    return base_;
  }
  [[nodiscard]] double base_lr() const noexcept { return base_; }

 private:
  double base_;
};

/// StepLR: the rate is multiplied by gamma every step_size steps.
class step_lr {
 public:
  /// @throws config_error unless base_lr >= 0, step_size >= 1 and gamma >= 0 (all finite).
  step_lr(double base_lr, std::int64_t step_size, double gamma = 0.1)
      : base_(base_lr), step_size_(step_size), gamma_(gamma) {
    detail::check_base_lr(base_lr, "step_lr");
    MAMMOCL_CHECK(step_size >= 1, config_error, "step_lr: step_size must be >= 1, got ", step_size);
    MAMMOCL_CHECK(std::isfinite(gamma) && gamma >= 0.0, config_error, "step_lr: gamma must be a finite number >= 0, got ",
                  gamma);
  }
  /// base_lr · gamma^⌊t / step_size⌋.  @pre t >= 0 (config_error otherwise).
  [[nodiscard]] double operator()(std::int64_t t) const {
    detail::check_t(t, "step_lr");
    return base_ * std::pow(gamma_, static_cast<double>(t / step_size_));
  }
  [[nodiscard]] double base_lr() const noexcept { return base_; }
  [[nodiscard]] std::int64_t step_size() const noexcept { return step_size_; }
  [[nodiscard]] double gamma() const noexcept { return gamma_; }

 private:
  double base_;
  std::int64_t step_size_;
  double gamma_;
};

/// MultiStepLR: the rate is multiplied by gamma at each milestone.
class multistep_lr {
 public:
  /// @param milestones steps at which gamma is applied once more, non-decreasing, each >= 1 (a milestone
  ///        listed twice applies gamma twice, as in PyTorch).
  /// @throws config_error on a negative or non-finite base_lr or gamma, a milestone < 1, or unsorted milestones.
  multistep_lr(double base_lr, std::vector<std::int64_t> milestones, double gamma = 0.1)
      : base_(base_lr), milestones_(std::move(milestones)), gamma_(gamma) {
    detail::check_base_lr(base_lr, "multistep_lr");
    MAMMOCL_CHECK(std::isfinite(gamma) && gamma >= 0.0, config_error,
                  "multistep_lr: gamma must be a finite number >= 0, got ", gamma);
    for (std::size_t i = 0; i < milestones_.size(); ++i) {
      MAMMOCL_CHECK(milestones_[i] >= 1, config_error, "multistep_lr: milestones must be >= 1, got ", milestones_[i],
                    " at position ", i);
      MAMMOCL_CHECK(i == 0 || milestones_[i - 1] <= milestones_[i], config_error,
                    "multistep_lr: milestones must be sorted in increasing order, got ", milestones_[i - 1],
                    " before ", milestones_[i]);
    }
  }
  /// base_lr · gamma^(number of milestones <= t).  @pre t >= 0 (config_error otherwise).
  [[nodiscard]] double operator()(std::int64_t t) const {
    detail::check_t(t, "multistep_lr");
    const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
    return base_ * std::pow(gamma_, static_cast<double>(passed));
  }
  [[nodiscard]] double base_lr() const noexcept { return base_; }
  [[nodiscard]] const std::vector<std::int64_t>& milestones() const noexcept { return milestones_; }
  [[nodiscard]] double gamma() const noexcept { return gamma_; }

 private:
  double base_;
  std::vector<std::int64_t> milestones_;
  double gamma_;
};

/// CosineAnnealingLR: half a cosine from base_lr (t = 0) down to eta_min (t = t_max). Like PyTorch's, the
/// curve does not stop at t_max: it keeps following the cosine, back up to base_lr at t = 2·t_max, so train
/// for t_max steps (or pick t_max as the total number of steps).
class cosine_annealing_lr {
 public:
  /// @throws config_error unless base_lr >= 0, t_max >= 1 and eta_min >= 0 (all finite).
  cosine_annealing_lr(double base_lr, std::int64_t t_max, double eta_min = 0.0)
      : base_(base_lr), t_max_(t_max), eta_min_(eta_min) {
    detail::check_base_lr(base_lr, "cosine_annealing_lr");
    MAMMOCL_CHECK(t_max >= 1, config_error, "cosine_annealing_lr: t_max must be >= 1, got ", t_max);
    MAMMOCL_CHECK(std::isfinite(eta_min) && eta_min >= 0.0, config_error,
                  "cosine_annealing_lr: eta_min must be a finite number >= 0, got ", eta_min);
  }
  /// eta_min + (base_lr − eta_min)·(1 + cos(π t / t_max)) / 2.  @pre t >= 0 (config_error otherwise).
  [[nodiscard]] double operator()(std::int64_t t) const {
    detail::check_t(t, "cosine_annealing_lr");
    const double c = std::cos(std::numbers::pi * static_cast<double>(t) / static_cast<double>(t_max_));
    return eta_min_ + (base_ - eta_min_) * (1.0 + c) / 2.0;
  }
  [[nodiscard]] double base_lr() const noexcept { return base_; }
  [[nodiscard]] std::int64_t t_max() const noexcept { return t_max_; }
  [[nodiscard]] double eta_min() const noexcept { return eta_min_; }

 private:
  double base_;
  std::int64_t t_max_;
  double eta_min_;
};

/// Linear warm-up in front of another schedule: for t < warmup_steps the rate rises linearly from
/// start_factor·base_lr (t = 0) towards base_lr; from t = warmup_steps on it is `after(t − warmup_steps)`,
/// so the wrapped schedule starts its own t = 0 when the warm-up ends (PyTorch's
/// SequentialLR([LinearLR(start_factor, total_iters = warmup_steps), after], milestones = [warmup_steps])).
template <LrSchedule S>
class linear_warmup {
 public:
  /// @param warmup_steps length of the warm-up, >= 0 (0: no warm-up).
  /// @param start_factor fraction of base_lr at t = 0, in (0, 1] as PyTorch's LinearLR requires.
  /// @throws config_error on a negative warmup_steps or a start_factor outside (0, 1].
  linear_warmup(S after, std::int64_t warmup_steps, double start_factor = 1.0 / 3.0)
      : after_(std::move(after)), warmup_(warmup_steps), start_(start_factor) {
    MAMMOCL_CHECK(warmup_steps >= 0, config_error, "linear_warmup: warmup_steps must be >= 0, got ", warmup_steps);
    MAMMOCL_CHECK(start_factor > 0.0 && start_factor <= 1.0, config_error,
                  "linear_warmup: start_factor must lie in (0, 1], got ", start_factor);
  }
  /// base_lr·(start_factor + (1 − start_factor)·t / warmup_steps) for t < warmup_steps, else
  /// after(t − warmup_steps).  @pre t >= 0 (config_error otherwise).
  [[nodiscard]] double operator()(std::int64_t t) const {
    detail::check_t(t, "linear_warmup");
    if (t >= warmup_) return static_cast<double>(after_(t - warmup_));
    const double f = start_ + (1.0 - start_) * static_cast<double>(t) / static_cast<double>(warmup_);
    return static_cast<double>(after_.base_lr()) * f;
  }
  [[nodiscard]] double base_lr() const { return static_cast<double>(after_.base_lr()); }
  [[nodiscard]] const S& after() const noexcept { return after_; }
  [[nodiscard]] std::int64_t warmup_steps() const noexcept { return warmup_; }
  [[nodiscard]] double start_factor() const noexcept { return start_; }

 private:
  S after_;
  std::int64_t warmup_;
  double start_;
};

static_assert(LrSchedule<constant_lr> && LrSchedule<step_lr> && LrSchedule<multistep_lr> &&
                  LrSchedule<cosine_annealing_lr> && LrSchedule<linear_warmup<cosine_annealing_lr>>,
              "mammocl: every schedule in lr_schedule.hpp must satisfy LrSchedule.");

}  // namespace mammocl::optim

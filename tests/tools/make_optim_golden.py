#!/usr/bin/env python3
"""Writes tests/cpu/golden/optim_golden.hpp: golden optimizer trajectories and learning-rate schedules
computed with PyTorch (torch.optim.SGD / Adam / AdamW and torch.optim.lr_scheduler) in float64.

Usage (from the repository root):  /usr/bin/python3 tests/tools/make_optim_golden.py
The C++ test tests/cpu/test_optim.cpp replays the same problem with MammoCL's optimizers and schedules.

The problem, defined by formulas that the generated header repeats as C++ functions:
  - 7 scalars split into two parameters, "a" of shape (2,2) (elements 0..3) and "b" of shape (3)
    (elements 4..6);
  - initial value  x0[i] = 0.37 * (i - 3) + 0.11;
  - gradient at step k (k = 0, 1, ...), taken at the current value x:
        g_k(x)[i] = (((7 * i + 3 * k) % 11) - 5) * 0.125 + 0.5 * x[i]
    (a quadratic bowl plus a fixed, step-dependent push, so the trajectory depends on every update);
  - before step k >= 3 the learning rate becomes lr * lr_factor (lr_factor = 1 keeps it), which checks
    that a changed learning rate reaches the update rule.
The expected array holds the 7 values after each of the N_STEPS steps. A C++ compiler may contract the
formulas into fused multiply-adds (clang does when it folds constants), so the C++ side reproduces the
problem to rounding, not bit for bit; the test's tolerances (1e-12 relative in double) allow for that.
"""
import math
import os
import sys
import warnings

import torch

N = 7
N_STEPS = 6
SPLIT = 4  # "a" holds elements [0, 4), "b" elements [4, 7)


def x0():
    return [0.37 * (i - 3) + 0.11 for i in range(N)]


def grad_base(k):
    return [(((7 * i + 3 * k) % 11) - 5) * 0.125 for i in range(N)]


SGD_CASES = [
    # name, lr, momentum, dampening, weight_decay, nesterov, lr_factor
    ("plain", 0.1, 0.0, 0.0, 0.0, False, 1.0),
    ("momentum", 0.05, 0.9, 0.0, 0.0, False, 1.0),
    ("nesterov", 0.05, 0.9, 0.0, 0.0, True, 1.0),
    ("weight_decay", 0.1, 0.0, 0.0, 0.01, False, 1.0),
    ("momentum_weight_decay", 0.1, 0.9, 0.0, 0.01, False, 0.5),
    ("dampening", 0.1, 0.8, 0.3, 0.0, False, 1.0),
    ("nesterov_weight_decay", 0.05, 0.5, 0.0, 0.1, True, 0.25),
]

ADAM_CASES = [
    # name, decoupled (AdamW), lr, beta1, beta2, eps, weight_decay, lr_factor
    ("adam", False, 0.05, 0.9, 0.999, 1e-8, 0.0, 1.0),
    ("adam_weight_decay", False, 0.05, 0.8, 0.95, 1e-3, 0.1, 0.5),
    ("adamw_default_decay", True, 0.05, 0.9, 0.999, 1e-8, 1e-2, 1.0),
    ("adamw", True, 0.05, 0.85, 0.99, 1e-6, 0.2, 0.5),
]


def run(make_optimizer, lr, lr_factor):
    xs = x0()
    a = torch.tensor(xs[:SPLIT], dtype=torch.float64).reshape(2, 2).requires_grad_(True)
    b = torch.tensor(xs[SPLIT:], dtype=torch.float64).requires_grad_(True)
    opt = make_optimizer([a, b])
    out = []
    for k in range(N_STEPS):
        if k == 3:
            for group in opt.param_groups:
                group["lr"] = lr * lr_factor
        with torch.no_grad():
            x = torch.cat([a.reshape(-1), b])
            g = torch.tensor(grad_base(k), dtype=torch.float64) + 0.5 * x
        a.grad = g[:SPLIT].reshape(2, 2).clone()
        b.grad = g[SPLIT:].clone()
        opt.step()
        out.append(torch.cat([a.detach().reshape(-1), b.detach()]).tolist())
    return out


def sgd_trajectories():
    res = []
    for name, lr, mom, damp, wd, nest, fac in SGD_CASES:
        traj = run(lambda p: torch.optim.SGD(p, lr=lr, momentum=mom, dampening=damp, weight_decay=wd,
                                             nesterov=nest, foreach=False), lr, fac)
        res.append((name, lr, mom, damp, wd, nest, fac, traj))
    return res


def adam_trajectories():
    res = []
    for name, dec, lr, b1, b2, eps, wd, fac in ADAM_CASES:
        cls = torch.optim.AdamW if dec else torch.optim.Adam
        traj = run(lambda p: cls(p, lr=lr, betas=(b1, b2), eps=eps, weight_decay=wd, foreach=False), lr, fac)
        res.append((name, dec, lr, b1, b2, eps, wd, fac, traj))
    return res


SCHEDULE_EPOCHS = 25
BASE_LR = 0.1


def schedule_values(make_scheduler):
    """lr at epoch t = 0 .. SCHEDULE_EPOCHS-1, where epoch t's lr is the one after t scheduler.step() calls."""
    p = torch.zeros(1, requires_grad=True)
    opt = torch.optim.SGD([p], lr=BASE_LR)
    sched = make_scheduler(opt)
    out = []
    for _ in range(SCHEDULE_EPOCHS):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def schedules():
    S = torch.optim.lr_scheduler
    # SequentialLR calls step(0) on the scheduler it switches to, which torch flags as deprecated.
    warnings.filterwarnings("ignore", message="The epoch parameter")
    return [
        # name, C++ constructor expression (base_lr is BASE_LR), values
        ("step", "step_lr(0.1, 3, 0.5)", schedule_values(lambda o: S.StepLR(o, step_size=3, gamma=0.5))),
        ("multistep", "multistep_lr(0.1, {2, 5, 9}, 0.1)",
         schedule_values(lambda o: S.MultiStepLR(o, milestones=[2, 5, 9], gamma=0.1))),
        ("cosine", "cosine_annealing_lr(0.1, 10, 0.001)",
         schedule_values(lambda o: S.CosineAnnealingLR(o, T_max=10, eta_min=0.001))),
        ("cosine_zero_floor", "cosine_annealing_lr(0.1, 7)",
         schedule_values(lambda o: S.CosineAnnealingLR(o, T_max=7))),
        ("warmup_cosine", "linear_warmup(cosine_annealing_lr(0.1, 12, 0.0), 4, 0.1)",
         schedule_values(lambda o: S.SequentialLR(o, [S.LinearLR(o, start_factor=0.1, total_iters=4),
                                                      S.CosineAnnealingLR(o, T_max=12)], milestones=[4]))),
    ]


def lit(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    r = repr(float(v))
    if "e" not in r and "." not in r and "inf" not in r and "nan" not in r:
        r += ".0"
    return r


def rows(traj, indent):
    return (",\n" + indent).join("{" + ", ".join(lit(v) for v in step) + "}" for step in traj)


def main():
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    path = os.path.join(root, "tests", "cpu", "golden", "optim_golden.hpp")
    torch.set_default_dtype(torch.float64)
    L = []
    L.append("#pragma once")
    L.append("// GENERATED by tests/tools/make_optim_golden.py with torch " + torch.__version__ +
             " (Python " + sys.version.split()[0] + "). Do not edit; rerun the script.")
    L.append("// Golden trajectories of torch.optim.SGD, Adam and AdamW (float64, foreach=False) and learning-rate")
    L.append("// values of torch.optim.lr_scheduler, for tests/cpu/test_optim.cpp. The problem is described in the")
    L.append("// script's docstring; initial_value() and gradient() below are its formulas in C++.")
    L.append("#include <array>")
    L.append("")
    L.append("namespace mammocl_test::optim_golden {")
    L.append("")
    L.append(f"inline constexpr int n_values = {N};   ///< scalars in the problem")
    L.append(f"inline constexpr int split = {SPLIT};     ///< parameter \"a\" (2,2) holds [0, split), \"b\" (3) the rest")
    L.append(f"inline constexpr int n_steps = {N_STEPS};")
    L.append("inline constexpr int lr_change_step = 3;  ///< lr becomes lr * lr_factor before this step")
    L.append("")
    L.append("/// x0[i] = 0.37 * (i - 3) + 0.11")
    L.append("inline double initial_value(int i) { return 0.37 * (i - 3) + 0.11; }")
    L.append("/// g_k(x)[i] = (((7 i + 3 k) mod 11) - 5) * 0.125 + 0.5 * x[i], evaluated in T.")
    L.append("template <class T>")
    L.append("T gradient(int k, int i, T x) {")
    L.append("  return static_cast<T>((((7 * i + 3 * k) % 11) - 5) * 0.125) + static_cast<T>(0.5) * x;")
    L.append("}")
    L.append("")
    L.append("struct sgd_case {")
    L.append("  const char* name;")
    L.append("  double lr, momentum, dampening, weight_decay;")
    L.append("  bool nesterov;")
    L.append("  double lr_factor;")
    L.append("  double expected[n_steps][n_values];  ///< values after each step")
    L.append("};")
    L.append("")
    L.append("inline constexpr sgd_case sgd_cases[] = {")
    for name, lr, mom, damp, wd, nest, fac, traj in sgd_trajectories():
        L.append(f"  {{\"{name}\", {lit(lr)}, {lit(mom)}, {lit(damp)}, {lit(wd)}, {lit(nest)}, {lit(fac)},")
        L.append("   {" + rows(traj, "    ") + "}},")
    L.append("};")
    L.append("")
    L.append("struct adam_case {")
    L.append("  const char* name;")
    L.append("  bool decoupled;  ///< true: torch.optim.AdamW, false: torch.optim.Adam")
    L.append("  double lr, beta1, beta2, eps, weight_decay;")
    L.append("  double lr_factor;")
    L.append("  double expected[n_steps][n_values];")
    L.append("};")
    L.append("")
    L.append("inline constexpr adam_case adam_cases[] = {")
    for name, dec, lr, b1, b2, eps, wd, fac, traj in adam_trajectories():
        L.append(f"  {{\"{name}\", {lit(dec)}, {lit(lr)}, {lit(b1)}, {lit(b2)}, {lit(eps)}, {lit(wd)}, {lit(fac)},")
        L.append("   {" + rows(traj, "    ") + "}},")
    L.append("};")
    L.append("")
    L.append(f"inline constexpr int schedule_epochs = {SCHEDULE_EPOCHS};")
    L.append("")
    for name, ctor, values in schedules():
        L.append(f"/// mammocl::optim::{ctor}; lr before epoch t (after t scheduler.step() calls).")
        L.append(f"inline constexpr std::array<double, schedule_epochs> schedule_{name} = {{")
        L.append("    " + ", ".join(lit(v) for v in values) + "};")
    L.append("")
    L.append("}  // namespace mammocl_test::optim_golden")
    with open(path, "w") as f:
        f.write("\n".join(L) + "\n")
    print("wrote", path)


if __name__ == "__main__":
    main()

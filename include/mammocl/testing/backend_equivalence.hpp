#pragma once
/// Backend equivalence: run the same op, layer or model on two backends from the same inputs and compare
/// the outputs and gradients element by element. Public, so that users check their own layers on the GPU
/// against the CPU backend, where correctness is defined (DESIGN.md section 2).
///
/// The rule. An element `a` computed by the backend under test passes against the reference `r` when
///
///     |a − r| <= (atol + rtol·|r|) · scale(K),      scale(K) = max(1, sqrt(K / 64)),
///
/// where K is the reduction length behind the element (Cin·kh·kw for a convolution output, N·Ho·Wo for a
/// weight gradient, N·H·W for a batch-norm statistic, K for a GEMM; 1 for elementwise ops). Why: two
/// correct float32 implementations differ only in the order in which they round. One rounding costs at
/// most u = 2^-24 ≈ 6e-8 of the value; a sum of K terms accumulated in different orders differs by about
/// sqrt(K)·u·Σ|terms| when the rounding errors behave like independent random variables (the
/// probabilistic bound of Higham and Mary, SIAM J. Sci. Comput. 2019), and by K·u·Σ|terms| in the worst
/// case. Blocked and tree reductions (cuBLAS, cuDNN, our packed GEMM) sit near the probabilistic bound,
/// so the tolerance grows like sqrt(K). Below K = 64 it does not shrink: atol and rtol then cover the
/// few roundings of the elementwise work (exp, division, the epilogue), and 64 is the order of the
/// shortest reductions in the tests. atol covers results that cancel to about zero (|r| much smaller
/// than Σ|terms|), where a relative bound alone would demand more than float32 can give. For sums of K
/// terms of random sign, the rounding error is about u·sqrt(K)·rms(result) (each partial sum has the
/// size of the result), so atol is meant in units of the result's typical size: either scale the inputs
/// so that results are of order 1, or set `atol_times_rms` to measure atol in units of the reference's
/// root mean square. The defaults
/// (atol 1e-5, rtol 1e-4) are about 170·u and 1700·u: loose enough for any summation order over inputs
/// of order 1, tight enough that a wrong index, a missing term or a wrong beta (errors of order 1e-2 to
/// 1) fails every time.
///
/// Failures name the worst element: its index (and NCHW coordinates for a rank-4 tensor), both values,
/// the difference and the bound, plus how many elements failed and the relative L2 error of the whole
/// tensor. Comparisons always run on the host: both tensors are copied with `mammocl::to<host>`.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/concepts.hpp"
#include "mammocl/core/rng.hpp"
#include "mammocl/core/transfer.hpp"

namespace mammocl::testing {

/// The tolerance of one comparison: |a − r| <= (atol + rtol·|r|)·scale(reduction).
struct tolerance {
  double atol = 1e-5;        ///< absolute part, for results that cancel to about zero
  double rtol = 1e-4;        ///< relative part, times |reference|
  index_t reduction = 1;     ///< K, the length of the sum behind each element (1: elementwise)
  double max_rel_l2 = 0.0;   ///< > 0: also require ‖a − r‖₂ / ‖r‖₂ <= max_rel_l2 (whole-tensor check)
  bool atol_times_rms = false;  ///< atol is in units of the reference's RMS (for results not of order 1)
};

/// scale(K) = max(1, sqrt(K/64)): how the tolerance grows with the reduction length (see the file comment).
[[nodiscard]] inline double reduction_scale(index_t k) noexcept {
  return std::max(1.0, std::sqrt(static_cast<double>(std::max<index_t>(k, 1)) / 64.0));
}

/// The same tolerance for a reduction of length k.
[[nodiscard]] inline tolerance with_reduction(tolerance t, index_t k) noexcept {
  t.reduction = k;
  return t;
}

/// The outcome of comparing one tensor (or array) with its reference.
struct comparison {
  std::string what;             ///< what was compared ("conv2d_forward y", "features.conv0.weight grad")
  shape dims;                   ///< the compared shape
  bool ok = true;
  index_t count = 0;            ///< elements compared
  index_t failures = 0;         ///< elements outside the bound
  index_t worst = -1;           ///< index of the element with the largest |a − r| / bound (-1: none)
  double worst_got = 0, worst_ref = 0, worst_bound = 0;
  double max_abs_diff = 0;      ///< max |a − r| over all elements
  double rel_l2 = 0;            ///< ‖a − r‖₂ / ‖r‖₂ (‖a − r‖₂ when ‖r‖₂ = 0)
  tolerance tol;

  /// One line: "ok" or "FAIL", the worst element with both values and its bound, the counts.
  [[nodiscard]] std::string message() const {
    std::ostringstream os;
    os.precision(9);
    os << (ok ? "ok   " : "FAIL ") << what << " " << dims << ": ";
    if (count == 0) {
      os << "no elements";
      return os.str();
    }
    if (worst >= 0) {
      os << "worst element " << worst;
      if (dims.rank() == 4) {
        const index_t w = dims[3], h = dims[2], c = dims[1];
        os << " (n " << worst / (c * h * w) << ", c " << (worst / (h * w)) % c << ", y " << (worst / w) % h << ", x "
           << worst % w << ")";
      } else if (dims.rank() == 2) {
        os << " (row " << worst / dims[1] << ", column " << worst % dims[1] << ")";
      }
      os << ": got " << worst_got << ", reference " << worst_ref << ", |diff| " << std::abs(worst_got - worst_ref)
         << ", bound " << worst_bound << "; ";
    }
    os << failures << " of " << count << " elements outside |a-r| <= (" << tol.atol << (tol.atol_times_rms ? "*rms(r)" : "") << " + " << tol.rtol
       << "*|r|)*" << reduction_scale(tol.reduction) << " (K " << tol.reduction << "); max |diff| " << max_abs_diff
       << ", relative L2 error " << rel_l2;
    if (tol.max_rel_l2 > 0) os << " (limit " << tol.max_rel_l2 << ")";
    return os.str();
  }
};

/// Compares `got` with `ref` (same length) element by element under `tol`. NaN passes only against NaN
/// and an infinity only against the same infinity.
template <class T>
[[nodiscard]] comparison compare_values(const T* got, const T* ref, index_t n, const tolerance& tol, std::string what,
                                        const shape& dims) {
  comparison c;
  c.what = std::move(what);
  c.dims = dims;
  c.count = n;
  c.tol = tol;
  double atol = tol.atol;
  if (tol.atol_times_rms) {
    double q = 0;
    index_t finite = 0;
    for (index_t i = 0; i < n; ++i)
      if (std::isfinite(static_cast<double>(ref[i]))) {
        q += static_cast<double>(ref[i]) * static_cast<double>(ref[i]);
        ++finite;
      }
    atol *= finite > 0 ? std::sqrt(q / static_cast<double>(finite)) : 0.0;
  }
  const double s = reduction_scale(tol.reduction);
  double worst_ratio = -1, d2 = 0, r2 = 0;
  for (index_t i = 0; i < n; ++i) {
    const double a = static_cast<double>(got[i]), r = static_cast<double>(ref[i]);
    const double bound = (atol + tol.rtol * std::abs(r)) * s;
    double ratio;
    bool pass;
    if (std::isnan(a) || std::isnan(r)) {
      pass = std::isnan(a) && std::isnan(r);
      ratio = pass ? 0.0 : std::numeric_limits<double>::infinity();
    } else if (std::isinf(a) || std::isinf(r)) {
      pass = a == r;
      ratio = pass ? 0.0 : std::numeric_limits<double>::infinity();
    } else {
      const double d = std::abs(a - r);
      pass = d <= bound;
      ratio = d / bound;
      c.max_abs_diff = std::max(c.max_abs_diff, d);
      d2 += d * d;
      r2 += r * r;
    }
    if (!pass) ++c.failures;
    if (ratio > worst_ratio) {
      worst_ratio = ratio;
      c.worst = i;
      c.worst_got = a;
      c.worst_ref = r;
      c.worst_bound = bound;
    }
  }
  c.rel_l2 = r2 > 0 ? std::sqrt(d2 / r2) : std::sqrt(d2);
  c.ok = c.failures == 0 && (tol.max_rel_l2 <= 0 || c.rel_l2 <= tol.max_rel_l2);
  return c;
}

/// The values of `t` on the host, contiguous, in NCHW order (a copy through `mammocl::to`).
template <Backend B>
[[nodiscard]] std::vector<typename B::scalar_type> host_values(const tensor<B>& t) {
  using T = typename B::scalar_type;
  using host = cpu_backend_t<T>;
  std::vector<T> v(static_cast<std::size_t>(t.numel()));
  if (t.numel() == 0) return v;
  const tensor<host> h = to<host>(t);
  std::copy_n(h.data(), t.numel(), v.data());
  return v;
}

/// Compares a tensor of any backend with a reference tensor of any backend (shapes must match).
template <Backend BA, Backend BR>
[[nodiscard]] comparison compare(const tensor<BA>& got, const tensor<BR>& ref, const tolerance& tol, std::string what) {
  if (got.dims() != ref.dims()) {
    comparison c;
    c.what = std::move(what) + " (shape " + got.dims().str() + " vs reference " + ref.dims().str() + ")";
    c.dims = ref.dims();
    c.ok = false;
    c.count = 0;
    return c;
  }
  const auto a = host_values(got);
  const auto r = host_values(ref);
  return compare_values(a.data(), r.data(), ref.numel(), tol, std::move(what), ref.dims());
}

/// A list of comparisons (one op's outputs, one layer's outputs and gradients, a model's parameters).
struct report {
  std::vector<comparison> items;
  /// Appends one comparison.
  void add(comparison c) { items.push_back(std::move(c)); }
  /// Appends every comparison of another report.
  void add(const report& r) { items.insert(items.end(), r.items.begin(), r.items.end()); }
  /// True when every comparison passed.
  [[nodiscard]] bool ok() const {
    return std::all_of(items.begin(), items.end(), [](const comparison& c) { return c.ok; });
  }
  /// Every failing comparison, one per line (every comparison with `all`).
  [[nodiscard]] std::string message(bool all = false) const {
    std::ostringstream os;
    for (const auto& c : items)
      if (all || !c.ok) os << c.message() << "\n";
    return os.str();
  }
};

// ------------------------------------------------------------------------------------------- inputs

/// A host tensor of backend H with values uniform in [lo, hi), from `seed`.
template <Backend H>
  requires(H::is_host)
[[nodiscard]] tensor<H> random_host(const shape& s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  tensor<H> t(s);
  rng r(seed);
  for (index_t i = 0; i < t.numel(); ++i) t.data()[i] = static_cast<typename H::scalar_type>(r.uniform(lo, hi));
  return t;
}

/// The same random values on backend `B` (generated on the host, copied with `mammocl::to`).
template <Backend B>
[[nodiscard]] tensor<B> random_tensor(const shape& s, std::uint64_t seed, double lo = -1.0, double hi = 1.0) {
  using host = cpu_backend_t<typename B::scalar_type>;
  return to<B>(random_host<host>(s, seed, lo, hi));
}

// ------------------------------------------------------------------------------------ layers and models

namespace detail {
/// Calls f(name, parameter&) for a layer (for_each_parameter(prefix, f)) or a model (for_each_parameter(f)).
template <class M, class F>
void visit_parameters(M& m, F&& f) {
  if constexpr (requires { m.for_each_parameter(f); }) m.for_each_parameter(f);
  else m.for_each_parameter(std::string(), f);
}
/// Calls f(name, buffer&) for a layer or a model; buffers are tensors or std::int64_t counters.
template <class M, class F>
void visit_buffers(M& m, F&& f) {
  if constexpr (requires { m.for_each_buffer(f); }) m.for_each_buffer(f);
  else m.for_each_buffer(std::string(), f);
}
}  // namespace detail

/// Copies every parameter value and every buffer (BN running statistics, counters) of `src` into `dst`,
/// matched by name, across backends: initialise a layer or model on the host, then copy it to the device.
/// Throws shape_error when a name is missing in `src` or the shapes differ.
template <class Dst, class Src>
void copy_state(Src& src, Dst& dst) {
  using BS = typename Src::backend_type;
  using BD = typename Dst::backend_type;
  std::map<std::string, const parameter<BS>*> params;
  detail::visit_parameters(src, [&](const std::string& n, parameter<BS>& p) { params[n] = &p; });
  detail::visit_parameters(dst, [&](const std::string& n, parameter<BD>& p) {
    const auto it = params.find(n);
    MAMMOCL_EXPECTS(it != params.end(), "copy_state: parameter '", n, "' of the destination is missing in the source");
    MAMMOCL_EXPECTS(it->second->value.dims() == p.value.dims(), "copy_state: parameter '", n, "' has shape ",
                    it->second->value.dims(), " in the source and ", p.value.dims(), " in the destination");
    BD::copy(to<BD>(it->second->value), p.value);
  });
  std::map<std::string, tensor<BS>> tensors;
  std::map<std::string, std::int64_t> counters;
  detail::visit_buffers(src, [&](const std::string& n, auto& b) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(b)>, tensor<BS>>) tensors[n] = b;
    else counters[n] = static_cast<std::int64_t>(b);
  });
  detail::visit_buffers(dst, [&](const std::string& n, auto& b) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(b)>, tensor<BD>>) {
      const auto it = tensors.find(n);
      MAMMOCL_EXPECTS(it != tensors.end(), "copy_state: buffer '", n, "' of the destination is missing in the source");
      MAMMOCL_EXPECTS(it->second.dims() == b.dims(), "copy_state: buffer '", n, "' has shape ", it->second.dims(),
                      " in the source and ", b.dims(), " in the destination");
      BD::copy(to<BD>(it->second), b);
    } else {
      const auto it = counters.find(n);
      MAMMOCL_EXPECTS(it != counters.end(), "copy_state: counter '", n, "' of the destination is missing in the source");
      b = static_cast<std::remove_cvref_t<decltype(b)>>(it->second);
    }
  });
}

/// The tolerance for one named parameter gradient or buffer, given its shape.
using tolerance_for = std::function<tolerance(const std::string& name, const shape& dims)>;

/// Compares every parameter gradient of `got` with the same-named one of `ref` ("<name> grad").
template <class MA, class MR>
[[nodiscard]] report compare_parameter_gradients(MA& got, MR& ref, const tolerance_for& tol) {
  using BA = typename MA::backend_type;
  using BR = typename MR::backend_type;
  report r;
  std::map<std::string, const parameter<BR>*> refs;
  detail::visit_parameters(ref, [&](const std::string& n, parameter<BR>& p) { refs[n] = &p; });
  detail::visit_parameters(got, [&](const std::string& n, parameter<BA>& p) {
    const auto it = refs.find(n);
    if (it == refs.end()) {
      comparison c;
      c.what = n + " grad (missing in the reference)";
      c.ok = false;
      r.add(std::move(c));
      return;
    }
    r.add(compare(p.grad, it->second->grad, tol(n, p.grad.dims()), n + " grad"));
  });
  return r;
}

/// Compares every parameter value of `got` with the same-named one of `ref` (after optimizer steps).
template <class MA, class MR>
[[nodiscard]] report compare_parameter_values(MA& got, MR& ref, const tolerance_for& tol) {
  using BA = typename MA::backend_type;
  using BR = typename MR::backend_type;
  report r;
  std::map<std::string, const parameter<BR>*> refs;
  detail::visit_parameters(ref, [&](const std::string& n, parameter<BR>& p) { refs[n] = &p; });
  detail::visit_parameters(got, [&](const std::string& n, parameter<BA>& p) {
    const auto it = refs.find(n);
    if (it == refs.end()) {
      comparison c;
      c.what = n + " (missing in the reference)";
      c.ok = false;
      r.add(std::move(c));
      return;
    }
    r.add(compare(p.value, it->second->value, tol(n, p.value.dims()), n));
  });
  return r;
}

/// Compares every tensor buffer (BN running statistics) and counter of `got` with `ref`.
template <class MA, class MR>
[[nodiscard]] report compare_buffers(MA& got, MR& ref, const tolerance_for& tol) {
  using BA = typename MA::backend_type;
  using BR = typename MR::backend_type;
  report r;
  std::map<std::string, tensor<BR>> tensors;
  std::map<std::string, std::int64_t> counters;
  detail::visit_buffers(ref, [&](const std::string& n, auto& b) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(b)>, tensor<BR>>) tensors[n] = b;
    else counters[n] = static_cast<std::int64_t>(b);
  });
  detail::visit_buffers(got, [&](const std::string& n, auto& b) {
    if constexpr (std::is_same_v<std::remove_cvref_t<decltype(b)>, tensor<BA>>) {
      const auto it = tensors.find(n);
      if (it == tensors.end()) {
        comparison c;
        c.what = n + " (missing in the reference)";
        c.ok = false;
        r.add(std::move(c));
        return;
      }
      r.add(compare(b, it->second, tol(n, b.dims()), n));
    } else {
      comparison c;
      c.what = n;
      c.count = 1;
      const auto it = counters.find(n);
      c.ok = it != counters.end() && it->second == static_cast<std::int64_t>(b);
      if (!c.ok) {
        c.failures = 1;
        c.what += " (counter " + std::to_string(static_cast<std::int64_t>(b)) + " vs reference " +
                  (it == counters.end() ? std::string("missing") : std::to_string(it->second)) + ")";
      }
      r.add(std::move(c));
    }
  });
  return r;
}

/// The tolerances of a layer comparison: outputs, input gradient, and parameter gradients (per name).
struct layer_tolerances {
  tolerance output;        ///< forward (training) and infer outputs
  tolerance input_grad;    ///< dx
  tolerance_for param_grad = [](const std::string&, const shape&) { return tolerance{}; };
  tolerance_for buffer = [](const std::string&, const shape&) { return tolerance{}; };
};

/// Runs layer `got` (any backend, context `cg`) and layer `ref` (context `cr`), which must hold the same
/// state (see copy_state), on the same input x and upstream gradient dy (host tensors, copied to each
/// backend): training forward, backward (grad_mode::overwrite), then inference; compares the training
/// output, dx, every parameter gradient, every buffer after the training forward (running statistics)
/// and the inference output.
template <class LA, class LR, Backend H>
  requires(H::is_host)
[[nodiscard]] report compare_layers(LA& got, typename LA::backend_type::context& cg, LR& ref,
                                    typename LR::backend_type::context& cr, const tensor<H>& x, const tensor<H>& dy,
                                    const layer_tolerances& tol) {
  using BA = typename LA::backend_type;
  using BR = typename LR::backend_type;
  report r;
  const tensor<BA> xa = to<BA>(x), dya = to<BA>(dy);
  const tensor<BR> xr = to<BR>(x), dyr = to<BR>(dy);
  typename LA::cache ca;
  typename LR::cache cref;
  const tensor<BA> ya = got.forward(cg, xa, ca);
  const tensor<BR> yr = ref.forward(cr, xr, cref);
  r.add(compare(ya, yr, tol.output, "forward output"));
  r.add(compare_buffers(got, ref, tol.buffer));
  const tensor<BA> dxa = got.backward(cg, ca, dya, grad_mode::overwrite);
  const tensor<BR> dxr = ref.backward(cr, cref, dyr, grad_mode::overwrite);
  r.add(compare(dxa, dxr, tol.input_grad, "input gradient"));
  r.add(compare_parameter_gradients(got, ref, tol.param_grad));
  const tensor<BA> ia = got.infer(cg, xa);
  const tensor<BR> ir = ref.infer(cr, xr);
  r.add(compare(ia, ir, tol.output, "infer output"));
  return r;
}

}  // namespace mammocl::testing

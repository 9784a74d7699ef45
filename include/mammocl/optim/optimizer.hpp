#pragma once
/// What every optimizer in `mammocl::optim` shares: the list of named parameters it updates, the helper
/// that collects that list from a model or layer, the checks run on it, and the `Optimizer` concept the
/// trainer is written against.
///
/// An optimizer holds pointers to `parameter<B>` objects owned by a model; the model must outlive the
/// optimizer and must not move its parameters (re-assigning `parameter::value` in place, as loading
/// weights does, is fine as long as the shape stays the same).
///
/// Optimizer state (momentum buffers, Adam moments, the step count) is exposed through
/// `for_each_state(f)`, in the same style as a layer's `for_each_buffer`: `f(name, tensor<B>&)` for each
/// state tensor and `f("step", std::int64_t&)` for the step count. A checkpoint saves what it is given
/// and, on resume, writes the saved values back through the same call into a freshly constructed
/// optimizer over the same parameters; training then continues bit for bit as if never interrupted.
#include <cmath>
#include <concepts>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <unordered_set>
#include <utility>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"

namespace mammocl::optim {

/// One parameter an optimizer updates, with the name its state is saved under
/// (torchvision's dotted name, e.g. "features.conv0.weight").
template <class B>
struct named_parameter {
  std::string name;
  parameter<B>* p = nullptr;
};

/// Collects the parameters of `m`, in the order `m` visits them.
///
/// `m` is either a model, with `for_each_parameter(f)`, or a layer, with `for_each_parameter(prefix, f)`;
/// `f` is called as `f(const std::string& name, parameter<B>&)`. The names get `prefix` in front (a
/// model's names are prefixed here, a layer receives the prefix itself).
/// @pre `m` outlives every optimizer built from the result and does not move its parameters.
/// @post one entry per parameter, pointers into `m`.
template <class B, class M>
[[nodiscard]] std::vector<named_parameter<B>> collect_parameters(M& m, const std::string& prefix = {}) {
  std::vector<named_parameter<B>> out;
  auto add = [&out](const std::string& name, parameter<B>& p) { out.push_back({name, &p}); };
  if constexpr (requires { m.for_each_parameter(add); }) {
    m.for_each_parameter([&](const std::string& name, parameter<B>& p) { add(prefix + name, p); });
  } else if constexpr (requires { m.for_each_parameter(prefix, add); }) {
    m.for_each_parameter(prefix, add);
  } else {
    static_assert(dependent_false<M>,
                  "mammocl::optim::collect_parameters: the type has neither for_each_parameter(f) (a model) nor "
                  "for_each_parameter(prefix, f) (a layer) visiting parameter<B>& for this backend B.");
  }
  return out;
}

/// `collect_parameters` for a model or layer that names its backend as `backend_type`.
template <class M>
  requires requires { typename M::backend_type; }
[[nodiscard]] std::vector<named_parameter<typename M::backend_type>> collect_parameters(M& m,
                                                                                      const std::string& prefix = {}) {
  return collect_parameters<typename M::backend_type, M>(m, prefix);
}

namespace detail {

/// Throws config_error unless `params` is a usable parameter list for optimizer `who`: not empty, no null
/// pointer, no parameter twice, no name twice (state names derive from parameter names), and every
/// parameter's gradient has the shape of its value.
template <class B>
void check_parameters(const std::vector<named_parameter<B>>& params, const char* who) {
  MAMMOCL_CHECK(!params.empty(), config_error, who,
                ": the parameter list is empty; pass optim::collect_parameters(model) of a model with parameters");
  std::unordered_set<const parameter<B>*> seen;
  std::unordered_set<std::string> names;
  for (const auto& np : params) {
    MAMMOCL_CHECK(np.p != nullptr, config_error, who, ": parameter \"", np.name, "\" is a null pointer");
    MAMMOCL_CHECK(seen.insert(np.p).second, config_error, who, ": parameter \"", np.name,
                  "\" appears twice in the parameter list; each parameter may be updated only once per step");
    MAMMOCL_CHECK(names.insert(np.name).second, config_error, who, ": two parameters are both named \"", np.name,
                  "\"; names must be unique because optimizer state is saved by name");
    MAMMOCL_CHECK(np.p->grad.dims() == np.p->value.dims(), config_error, who, ": parameter \"", np.name,
                  "\" has value shape ", np.p->value.dims(), " but gradient shape ", np.p->grad.dims());
  }
}

/// Throws shape_error unless `np` can be updated in place with the state tensors `state` (contiguous
/// value and gradient of the same shape; each state tensor of that shape and contiguous).
template <class B>
void check_step_shapes(const named_parameter<B>& np, const char* who,
                       std::initializer_list<const tensor<B>*> state = {}) {
  const parameter<B>& p = *np.p;
  MAMMOCL_EXPECTS(p.grad.dims() == p.value.dims(), who, "::step: parameter \"", np.name, "\" has value shape ",
                  p.value.dims(), " but gradient shape ", p.grad.dims());
  MAMMOCL_EXPECTS(p.value.contiguous() && p.grad.contiguous(), who, "::step: parameter \"", np.name,
                  "\" has a value or gradient that is strided over the batch; optimizers need contiguous tensors");
  for (const tensor<B>* s : state) {
    MAMMOCL_EXPECTS(s->dims() == p.value.dims() && s->contiguous(), who, "::step: the state of parameter \"",
                    np.name, "\" has shape ", s->dims(), " but the parameter has shape ", p.value.dims(),
                    "; was optimizer state restored from a different model?");
  }
}

/// Throws config_error naming `who` and `option` unless `v` is finite and `v >= lo`.
inline void check_at_least(double v, double lo, const char* who, const char* option) {
  MAMMOCL_CHECK(std::isfinite(v) && v >= lo, config_error, who, ": option ", option, " must be a finite number >= ",
                lo, ", got ", v);
}

/// Throws config_error naming `who` and `option` unless `lo <= v < hi` (`hi` excluded) or, when
/// `hi_included`, `lo <= v <= hi`.
inline void check_range(double v, double lo, double hi, bool hi_included, const char* who, const char* option) {
  const bool ok = v >= lo && (hi_included ? v <= hi : v < hi);
  MAMMOCL_CHECK(ok, config_error, who, ": option ", option, " must lie in [", lo, ", ", hi, hi_included ? "]" : ")",
                ", got ", v);
}

/// The callback shape `for_each_state` accepts, used only to state the `Optimizer` concept.
template <class B>
struct state_visitor_archetype {
  void operator()(const std::string&, tensor<B>&) const {}
  void operator()(const std::string&, std::int64_t&) const {}
};

}  // namespace detail

/// An optimizer: updates the parameters it was built over from their gradients, one step at a time, with a
/// learning rate the caller (or a schedule) may change between steps, and exposes its state by name.
template <class O>
concept Optimizer = requires { typename O::backend_type; } &&
                    requires(O& o, const O& co, typename O::backend_type::context& ctx, double lr,
                             detail::state_visitor_archetype<typename O::backend_type> visit) {
                      o.step(ctx);
                      o.set_lr(lr);
                      { co.lr() } -> std::convertible_to<double>;
                      { co.step_count() } -> std::convertible_to<std::int64_t>;
                      o.zero_grad();
                      o.for_each_state(visit);
                    };

}  // namespace mammocl::optim

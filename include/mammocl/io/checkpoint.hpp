#pragma once
/// Model checkpoints as safetensors files with torch state_dict names, so that a torchvision DenseNet
/// loads into MammoCL and a MammoCL model opens in Python (`safetensors.torch.load_file` +
/// `model.load_state_dict`).
///
/// - `save_state(model, path, metadata)`: every parameter and floating buffer as F32 (float backends) or
///   F64 (double backends), every `num_batches_tracked` counter as an I64 scalar (shape [], as torch
///   saves it), plus string metadata ("format": "pt" unless given).
/// - `load_state(model, path, options)`: every model key must be in the file with exactly the model's
///   shape, and nothing else may be in the file (strict mode); floating tensors convert from F16, BF16,
///   F32 or F64. Options relax this for transfer learning: non-strict loading reports missing and
///   unexpected keys instead of failing, `exclude_prefixes` leaves whole sub-modules alone (the
///   1000-class ImageNet classifier), and `torchvision_legacy` reads torchvision's legacy key names.
///   Loading is all-or-nothing: on any error the model is left unchanged.
/// - `save_tensors` / `load_tensors`: a plain name → tensor map (optimizer state and the like).
///
/// Tensors move through `B::to_host` / `B::from_host`, so this works for device backends too.
#include <cstdint>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/core/shape.hpp"
#include "mammocl/core/tensor.hpp"
#include "mammocl/io/safetensors.hpp"

namespace mammocl::io {

namespace detail {
/// A callable that accepts exactly what a state visitor is called with; used only by the concept.
template <class B>
struct state_probe {
  void operator()(const std::string&, parameter<B>&) const {}
  void operator()(const std::string&, tensor<B>&) const {}
  void operator()(const std::string&, std::int64_t&) const {}
};
}  // namespace detail

/// A model or layer whose state is named like a torch state_dict. Models visit with
/// `for_each_parameter(f)` / `for_each_buffer(f)`; layers take a key prefix first,
/// `for_each_parameter(prefix, f)` / `for_each_buffer(prefix, f)`. `f` is called as f(name, parameter<B>&)
/// for parameters, and as f(name, tensor<B>&) or f(name, std::int64_t&) for buffers.
template <class M>
concept StateDictModule =
    requires { typename M::backend_type; } && Backend<typename M::backend_type> &&
    (requires(M& m, detail::state_probe<typename M::backend_type> f) {
      m.for_each_parameter(f);
      m.for_each_buffer(f);
    } || requires(M& m, detail::state_probe<typename M::backend_type> f, const std::string& prefix) {
      m.for_each_parameter(prefix, f);
      m.for_each_buffer(prefix, f);
    });

/// Calls f(name, tensor<B>&) for every parameter value and floating buffer, and f(name, std::int64_t&)
/// for every integer buffer, in the module's order.
template <StateDictModule M, class F>
void for_each_state(M& m, F&& f) {
  using B = typename M::backend_type;
  auto on_parameter = [&](const std::string& name, parameter<B>& p) { f(name, p.value); };
  if constexpr (requires { m.for_each_parameter(on_parameter); }) {
    m.for_each_parameter(on_parameter);
    m.for_each_buffer(f);
  } else {
    m.for_each_parameter(std::string{}, on_parameter);
    m.for_each_buffer(std::string{}, f);
  }
}

namespace detail {

inline std::string quoted(const std::string& s) { return "'" + s + "'"; }

inline safetensors::extents to_extents(const shape& s) { return {s.begin(), s.end()}; }

/// The mammocl::shape with the given extents; throws shape_error naming `what` beyond rank 4.
inline shape to_shape(const safetensors::extents& e, const std::string& what) {
  MAMMOCL_EXPECTS(e.size() <= static_cast<std::size_t>(shape::max_rank), what, " has shape ",
                  safetensors::to_string(e), " of rank ", e.size(), "; MammoCL tensors have rank 4 at most");
  switch (e.size()) {
    case 0: return shape{};
    case 1: return shape{e[0]};
    case 2: return shape{e[0], e[1]};
    case 3: return shape{e[0], e[1], e[2]};
    default: return shape{e[0], e[1], e[2], e[3]};
  }
}

/// A copy of `t` in host memory, row-major and contiguous.
template <Backend B>
std::vector<typename B::scalar_type> host_copy(const tensor<B>& t) {
  std::vector<typename B::scalar_type> v(static_cast<std::size_t>(t.numel()));
  if (!v.empty()) B::to_host(t, v.data());
  return v;
}

/// Names of `names` for a message: the first `limit`, then how many more.
inline std::string name_list(const std::vector<std::string>& names, std::size_t limit = 8) {
  std::string s;
  for (std::size_t i = 0; i < names.size() && i < limit; ++i) {
    if (i) s += ", ";
    s += quoted(names[i]);
  }
  if (names.size() > limit) s += " and " + std::to_string(names.size() - limit) + " more";
  return s;
}

inline bool has_prefix(const std::string& s, const std::vector<std::string>& prefixes) {
  for (const auto& p : prefixes)
    if (s.compare(0, p.size(), p) == 0) return true;
  return false;
}

inline bool ends_with(const std::string& s, std::string_view tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

}  // namespace detail

/// torchvision's renaming of legacy DenseNet keys (`torchvision/models/densenet.py::_load_state_dict`):
/// inside a dense layer, `norm.1.weight` → `norm1.weight`, `conv.2.weight` → `conv2.weight`, and so on for
/// weight, bias, running_mean and running_var. Other keys are returned unchanged.
[[nodiscard]] inline std::string torchvision_legacy_key(const std::string& key) {
  static const std::regex pattern(
      R"(^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$)");
  std::smatch m;
  if (std::regex_match(key, m, pattern)) return m[1].str() + m[2].str();
  return key;
}

/// The model's state as a safetensors file in memory: parameters and floating buffers as F32 or F64 (the
/// backend's scalar type), integer buffers as I64 scalars, `metadata` plus "format": "pt" unless
/// `metadata` sets "format". Throws config_error when two entries share a name.
template <StateDictModule M>
[[nodiscard]] safetensors::file to_safetensors(M& model, const std::map<std::string, std::string>& metadata = {}) {
  using B = typename M::backend_type;
  safetensors::file f;
  auto add = [&](const std::string& name, safetensors::entry&& e) {
    MAMMOCL_CHECK(!f.contains(name), config_error, "save_state: the model has two entries named ",
                  detail::quoted(name), "; state-dict keys must be unique");
    f.set(name, std::move(e));
  };
  for_each_state(model, [&]<class V>(const std::string& name, V& v) {
    if constexpr (std::is_same_v<V, tensor<B>>) {
      const auto host = detail::host_copy(v);
      add(name, safetensors::make_entry(detail::to_extents(v.dims()), std::span<const typename B::scalar_type>(host)));
    } else {
      static_assert(std::is_same_v<V, std::int64_t>, "mammocl: a state buffer is a tensor<B> or a std::int64_t counter.");
      add(name, safetensors::make_entry({}, std::span<const std::int64_t>(&v, 1)));
    }
  });
  f.metadata() = metadata;
  if (!f.metadata().count("format")) f.metadata()["format"] = "pt";
  return f;
}

/// Saves the model's state to `path` (atomically; see `to_safetensors` for the layout). Throws io_error
/// when the file cannot be written, leaving any previous file at `path` intact.
template <StateDictModule M>
void save_state(M& model, const std::filesystem::path& path, const std::map<std::string, std::string>& metadata = {}) {
  to_safetensors(model, metadata).write(path);
}

/// How `load_state` matches file keys to model keys.
struct load_options {
  /// Missing and unexpected keys are errors. When false they are listed in the report and skipped.
  bool strict = true;
  /// Read torchvision's legacy DenseNet key names (`norm.1.weight` → `norm1.weight`, see
  /// `torchvision_legacy_key`) and, as torch does for pre-1.0 checkpoints, set `num_batches_tracked`
  /// counters the file lacks to 0.
  bool torchvision_legacy = false;
  /// Model keys and file keys starting with one of these are left alone (e.g. "classifier." to keep a
  /// freshly initialised head when loading ImageNet weights).
  std::vector<std::string> exclude_prefixes{};
};

/// What `load_state` did.
struct load_report {
  std::vector<std::string> loaded;      ///< model keys set from the file, in the model's order
  std::vector<std::string> missing;     ///< model keys the file lacks (non-strict only); left unchanged
  std::vector<std::string> unexpected;  ///< file keys the model lacks (non-strict only); ignored
  std::vector<std::string> excluded;    ///< model and file keys skipped by `exclude_prefixes`
  std::vector<std::string> defaulted;   ///< counters set to 0 because a legacy file lacks them
  std::vector<std::pair<std::string, std::string>> renamed;  ///< legacy file key → model key
  std::map<std::string, std::string> metadata;               ///< the file's metadata
};

/// Loads `f` into `model` (see `load_options`). Throws io_error naming the key, the expected and the
/// actual shape or dtype and the file; on error the model is unchanged.
template <StateDictModule M>
load_report load_state(M& model, const safetensors::file& f, const load_options& opt = {}) {
  using B = typename M::backend_type;
  using T = typename B::scalar_type;
  const std::string src = f.source().empty() ? std::string("the checkpoint") : "checkpoint " + detail::quoted(f.source());
  load_report report;
  report.metadata = f.metadata();

  // File keys under the names the model uses.
  std::map<std::string, std::string> file_key;  // model-side name → key in the file
  for (const auto& [key, e] : f.tensors()) {
    const std::string name = opt.torchvision_legacy ? torchvision_legacy_key(key) : key;
    if (name != key) report.renamed.emplace_back(key, name);
    const auto [it, fresh] = file_key.emplace(name, key);
    if (!fresh)
      MAMMOCL_THROW(io_error, "load_state: ", src, " has both ", detail::quoted(it->second), " and ",
                    detail::quoted(key), ", which are the same key ", detail::quoted(name), " after legacy renaming");
  }

  // Validate and decode everything before touching the model.
  struct staged_tensor {
    tensor<B>* target;
    std::vector<T> values;
  };
  struct staged_counter {
    std::int64_t* target;
    std::int64_t value;
  };
  std::vector<staged_tensor> tensors;
  std::vector<staged_counter> counters;
  std::set<std::string> model_keys;
  for_each_state(model, [&]<class V>(const std::string& name, V& v) {
    MAMMOCL_CHECK(model_keys.insert(name).second, config_error, "load_state: the model has two entries named ",
                  detail::quoted(name), "; state-dict keys must be unique");
    if (detail::has_prefix(name, opt.exclude_prefixes)) {
      report.excluded.push_back(name);
      return;
    }
    const auto it = file_key.find(name);
    if (it == file_key.end()) {
      if constexpr (std::is_same_v<V, std::int64_t>) {
        if (opt.torchvision_legacy && detail::ends_with(name, "num_batches_tracked")) {
          report.defaulted.push_back(name);
          counters.push_back({&v, 0});
          return;
        }
      }
      report.missing.push_back(name);
      return;
    }
    const safetensors::entry& e = f.at(it->second);
    const std::string what = "key " + detail::quoted(name) +
                             (it->second != name ? " (" + detail::quoted(it->second) + " in the file)" : std::string());
    if constexpr (std::is_same_v<V, tensor<B>>) {
      if (!safetensors::is_floating(e.type))
        MAMMOCL_THROW(io_error, "load_state: ", what, " in ", src, " has dtype ", safetensors::to_string(e.type),
                      "; a floating-point parameter or buffer needs F16, BF16, F32 or F64");
      const auto expected = detail::to_extents(v.dims());
      if (e.shape != expected)
        MAMMOCL_THROW(io_error, "load_state: ", what, " has shape ", safetensors::to_string(e.shape), " in ", src,
                      " but the model expects ", safetensors::to_string(expected));
      tensors.push_back({&v, f.values<T>(it->second)});
    } else {
      if (!safetensors::is_integral(e.type))
        MAMMOCL_THROW(io_error, "load_state: ", what, " in ", src, " has dtype ", safetensors::to_string(e.type),
                      "; an integer buffer needs I64 (or another integer dtype)");
      if (!e.shape.empty())
        MAMMOCL_THROW(io_error, "load_state: ", what, " has shape ", safetensors::to_string(e.shape), " in ", src,
                      " but the model expects () (a scalar counter)");
      counters.push_back({&v, f.values<std::int64_t>(it->second)[0]});
    }
    report.loaded.push_back(name);
  });
  for (const auto& [name, key] : file_key) {
    if (model_keys.count(name)) continue;
    if (detail::has_prefix(name, opt.exclude_prefixes))
      report.excluded.push_back(key);
    else
      report.unexpected.push_back(key);
  }
  if (opt.strict && (!report.missing.empty() || !report.unexpected.empty())) {
    std::string msg = "load_state: " + src + " does not match the model:";
    if (!report.missing.empty())
      msg += " " + std::to_string(report.missing.size()) + " model key(s) missing from the file (" +
             detail::name_list(report.missing) + ")" + (report.unexpected.empty() ? "" : ";");
    if (!report.unexpected.empty())
      msg += " " + std::to_string(report.unexpected.size()) + " file key(s) the model does not have (" +
             detail::name_list(report.unexpected) + ")";
    msg += ". Use load_options{.strict = false} or exclude_prefixes to load a part of the model";
    if (!opt.torchvision_legacy && !report.missing.empty())
      msg += ", or .torchvision_legacy = true for a legacy torchvision file";
    MAMMOCL_THROW(io_error, msg);
  }

  for (auto& s : tensors)
    if (!s.values.empty()) B::from_host(s.values.data(), *s.target);
  for (auto& c : counters) *c.target = c.value;
  return report;
}

/// Reads `path` and loads it into `model` (see the overload above).
template <StateDictModule M>
load_report load_state(M& model, const std::filesystem::path& path, const load_options& opt = {}) {
  return load_state(model, safetensors::file::read(path), opt);
}

/// A plain set of named tensors with metadata, as `load_tensors` returns it.
template <Backend B>
struct tensor_dict {
  std::map<std::string, tensor<B>> tensors;
  std::map<std::string, std::string> metadata;
};

/// Saves named tensors (any rank up to 4) as F32 or F64 with `metadata`, atomically.
template <Backend B>
void save_tensors(const std::map<std::string, tensor<B>>& tensors, const std::filesystem::path& path,
                  const std::map<std::string, std::string>& metadata = {}) {
  safetensors::file f;
  for (const auto& [name, t] : tensors) f.set_values(name, detail::to_extents(t.dims()), detail::host_copy(t));
  f.metadata() = metadata;
  f.write(path);
}

/// Reads every tensor of `path` into backend B (converting F16, BF16, F32 and F64 to B's scalar type).
/// Throws io_error for a non-floating tensor and shape_error for a tensor of rank above 4.
template <Backend B>
[[nodiscard]] tensor_dict<B> load_tensors(const std::filesystem::path& path) {
  using T = typename B::scalar_type;
  const safetensors::file f = safetensors::file::read(path);
  tensor_dict<B> out;
  out.metadata = f.metadata();
  for (const auto& [name, e] : f.tensors()) {
    if (!safetensors::is_floating(e.type))
      MAMMOCL_THROW(io_error, "load_tensors: tensor ", detail::quoted(name), " in ", detail::quoted(f.source()),
                    " has dtype ", safetensors::to_string(e.type),
                    "; load_tensors reads floating-point tensors only (use safetensors::file for the others)");
    tensor<B> t(detail::to_shape(e.shape, "load_tensors: tensor " + detail::quoted(name) + " in " + detail::quoted(f.source())));
    const std::vector<T> v = f.values<T>(name);
    if (!v.empty()) B::from_host(v.data(), t);
    out.tensors.emplace(name, std::move(t));
  }
  return out;
}

}  // namespace mammocl::io

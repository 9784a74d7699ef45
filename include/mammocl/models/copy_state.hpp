#pragma once
/// `models::copy_state(src, dst)`: the explicit transfer of a model between backends (or between two
/// instances on one backend). Every parameter and every buffer (BN running statistics and
/// num_batches_tracked) of `src` is copied into the same-named entry of `dst`:
///
/// ```cpp
/// models::densenet<cpu_backend, models::densenet121> host_net(opt);
/// host_net.init(seed);
/// models::densenet<cuda_backend, models::densenet121> gpu_net(opt);
/// models::copy_state(host_net, gpu_net);   // the same numbers on the GPU
/// ```
///
/// Both models are state-dict modules (io/checkpoint.hpp: models visit `for_each_parameter(f)` /
/// `for_each_buffer(f)`, layers take a key prefix first) and must hold the same names in the same order
/// with the same shapes, which the same model type with the same options always does. Everything is
/// checked before anything is written: on a mismatch `dst` is unchanged and the error names the entry
/// (config_error for names and kinds, shape_error for shapes). Values move through the host
/// (`Src::to_host`, `Dst::from_host`), one tensor at a time, converted when the scalar types differ;
/// between two instances of one backend they are copied with `B::copy`. Gradients and optimizer state
/// are not copied (they are not state; a fresh optimizer starts from zero moments on the destination).
#include <cstddef>
#include <cstdint>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/error.hpp"
#include "mammocl/io/checkpoint.hpp"

namespace mammocl::models {

namespace detail {
/// One visited entry: a floating tensor (a parameter's value or a BN statistic) or an integer buffer.
template <Backend B>
struct state_entry {
  std::string name;
  std::variant<tensor<B>, std::int64_t*> value;
};

template <io::StateDictModule M>
std::vector<state_entry<typename M::backend_type>> collect_state(M& m) {
  using B = typename M::backend_type;
  std::vector<state_entry<B>> out;
  io::for_each_state(m, [&]<class V>(const std::string& name, V& v) {
    if constexpr (std::is_same_v<V, std::int64_t>) {
      out.push_back({name, &v});
    } else {
      out.push_back({name, v});  // a tensor handle: shares the model's buffer
    }
  });
  return out;
}
}  // namespace detail

/// Copies every parameter and buffer of `src` into `dst` (see the file comment). Throws config_error when the
/// two models differ in their entries' names, count or kinds and shape_error when a shape differs; `dst` is
/// then unchanged.
template <io::StateDictModule Src, io::StateDictModule Dst>
void copy_state(Src& src, Dst& dst) {
  using BS = typename Src::backend_type;
  using BD = typename Dst::backend_type;
  using TS = typename BS::scalar_type;
  using TD = typename BD::scalar_type;
  const auto from = detail::collect_state(src);
  const auto to = detail::collect_state(dst);
  MAMMOCL_CHECK(from.size() == to.size(), config_error, "copy_state: the source holds ", from.size(),
                " parameters and buffers, the destination ", to.size(), "; they must be the same model");
  for (std::size_t i = 0; i < from.size(); ++i) {
    MAMMOCL_CHECK(from[i].name == to[i].name, config_error, "copy_state: entry ", i, " is '", from[i].name,
                  "' in the source and '", to[i].name, "' in the destination; they must be the same model");
    MAMMOCL_CHECK(from[i].value.index() == to[i].value.index(), config_error, "copy_state: '", from[i].name,
                  "' is a tensor in one model and an integer buffer in the other");
    if (from[i].value.index() == 0) {
      const auto& a = std::get<0>(from[i].value);
      const auto& b = std::get<0>(to[i].value);
      MAMMOCL_EXPECTS(a.dims() == b.dims(), "copy_state: '", from[i].name, "' has shape ", a.dims(),
                      " in the source and ", b.dims(), " in the destination");
    }
  }
  std::vector<TS> staged;
  std::vector<TD> converted;
  for (std::size_t i = 0; i < from.size(); ++i) {
    if (from[i].value.index() == 1) {
      *std::get<1>(to[i].value) = *std::get<1>(from[i].value);
      continue;
    }
    const tensor<BS>& a = std::get<0>(from[i].value);
    const tensor<BD>& b = std::get<0>(to[i].value);
    if (a.numel() == 0) continue;
    if constexpr (std::is_same_v<BS, BD>) {
      if (a.data() != b.data()) BS::copy(a, b);
    } else {
      staged.resize(static_cast<std::size_t>(a.numel()));
      BS::to_host(a, staged.data());
      if constexpr (std::is_same_v<TS, TD>) {
        BD::from_host(staged.data(), b);
      } else {
        converted.assign(staged.begin(), staged.end());
        BD::from_host(converted.data(), b);
      }
    }
  }
}

}  // namespace mammocl::models

#pragma once
/// Explicit copies between backends: `to<cuda_backend>(host_tensor)`, `to<cpu_backend>(device_tensor)`.
/// Nothing moves between backends implicitly; these are the only crossings, and they always copy.
#include <algorithm>
#include <type_traits>
#include <vector>

#include "mammocl/core/concepts.hpp"
#include "mammocl/core/tensor.hpp"

namespace mammocl {

/// A new contiguous tensor of backend `To` with the shape and values of `t` (which may be strided over the
/// batch). The two backends must share the scalar type; convert on the host first otherwise.
template <Backend To, Backend From>
[[nodiscard]] tensor<To> to(const tensor<From>& t) {
  static_assert(std::is_same_v<typename To::scalar_type, typename From::scalar_type>,
                "mammocl::to<To>(t): the two backends hold different scalar types; copy to a host tensor of "
                "the source type and convert its values first.");
  if constexpr (std::is_same_v<To, From>) {
    return t.clone();
  } else {
    tensor<To> out(t.dims());
    if (t.numel() == 0) return out;
    if constexpr (To::is_host) {
      From::to_host(t, out.data());
    } else if constexpr (From::is_host) {
      if (t.contiguous()) {
        To::from_host(t.data(), out);
      } else {
        std::vector<typename From::scalar_type> staged(static_cast<std::size_t>(t.numel()));
        for (index_t i = 0; i < t.n(); ++i)
          std::copy_n(t.item(i), t.item_size(), staged.data() + i * t.item_size());
        To::from_host(staged.data(), out);
      }
    } else {
      std::vector<typename From::scalar_type> staged(static_cast<std::size_t>(t.numel()));
      From::to_host(t, staged.data());
      To::from_host(staged.data(), out);
    }
    return out;
  }
}

}  // namespace mammocl

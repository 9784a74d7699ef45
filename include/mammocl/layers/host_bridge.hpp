#pragma once
/// Host round trips for the few small tensors that layers, losses and strategies compute on the host
/// whatever the backend (docs/device_generic.md): cross-entropy on (N,K) logits, MMD and the DANN domain
/// loss on (N,F) features, l2_normalize on (N,D) rows, the argmax of a batch's logits.
///
/// On a host backend nothing is copied: `on_host(t)` returns `t` itself and `host_side_t<B>` is `B`, so the
/// host code path is the one that ran before device backends existed, bit for bit. On a device backend
/// `on_host` is one explicit `mammocl::to<cpu_backend_t<T>>` (a synchronous device-to-host copy) and the
/// result goes back with `to_backend<B>` (one host-to-device copy): a few KB per step for the tensors
/// above, against the megabytes of activations that stay on the device.
#include <type_traits>

#include "mammocl/backend/cpu/cpu_backend.hpp"
#include "mammocl/core/concepts.hpp"
#include "mammocl/core/transfer.hpp"

namespace mammocl::host_bridge {

/// The host backend with B's scalar type: where a device backend's small tensors are computed.
template <Backend B>
using host_twin_t = cpu_backend_t<typename B::scalar_type>;

/// The backend whose memory the host code reads: B itself when B is a host backend, its host twin otherwise.
template <Backend B>
using host_side_t = std::conditional_t<B::is_host, B, host_twin_t<B>>;

/// `t` itself on a host backend (no copy); a contiguous host copy of it on a device backend.
template <Backend B>
[[nodiscard]] tensor<host_side_t<B>> on_host(const tensor<B>& t) {
  if constexpr (B::is_host) {
    return t;
  } else {
    return to<host_twin_t<B>>(t);
  }
}

/// `h` as a tensor of backend B: `h` itself when B is the host side, a device copy otherwise.
template <Backend B>
[[nodiscard]] tensor<B> to_backend(const tensor<host_side_t<B>>& h) {
  if constexpr (std::is_same_v<B, host_side_t<B>>) {
    return h;
  } else {
    return to<B>(h);
  }
}

/// Copies the host tensor `h` into `*dst`, reallocated to h's shape when its shape differs (the losses'
/// contract for gradient outputs). `dst` may be strided over the batch.
template <Backend B>
void assign(const tensor<host_side_t<B>>& h, tensor<B>& dst) {
  if (dst.dims() != h.dims()) dst = tensor<B>(h.dims());
  if (h.numel() == 0) return;
  if constexpr (std::is_same_v<B, host_side_t<B>>) {
    B::copy(h, dst);
  } else {
    const tensor<host_side_t<B>> c = h.contiguous() ? h : h.clone();
    B::from_host(c.data(), dst);
  }
}

/// A host context with the thread count of `ctx` when it has one (1 otherwise), for host computations
/// whose result depends on the thread count.
template <Backend B>
[[nodiscard]] typename host_twin_t<B>::context host_context(typename B::context& ctx) {
  if constexpr (requires { ctx.threads(); }) {
    return typename host_twin_t<B>::context(std::max(1, static_cast<int>(ctx.threads())));
  } else {
    return typename host_twin_t<B>::context(1);
  }
}

}  // namespace mammocl::host_bridge

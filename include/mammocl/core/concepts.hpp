#pragma once
/// The concepts that bound MammoCL's templates: `Backend` (a policy class owning memory and primitive
/// operations) and `Layer` (something with a training forward, an inference forward and a backward).
#include <concepts>
#include <cstddef>
#include <memory>

#include "mammocl/core/geometry.hpp"
#include "mammocl/core/tensor.hpp"

namespace mammocl {

/// How backward writes parameter gradients.
enum class grad_mode { overwrite, accumulate };

/// A backend: a scalar type, a context type, and memory primitives. The full operation set used by the
/// layers is listed in docs/architecture.md; a missing operation fails at the call site with the
/// operation's name.
template <class B>
concept Backend = requires {
  typename B::scalar_type;
  typename B::context;
  { B::is_host } -> std::convertible_to<bool>;
  { B::name } -> std::convertible_to<const char*>;
} && std::floating_point<typename B::scalar_type> && requires(std::size_t n, tensor<B>& t, const tensor<B>& ct,
                                                               typename B::scalar_type v) {
  { B::allocate(n) } -> std::same_as<std::shared_ptr<typename B::scalar_type>>;
  B::fill(t, v);
  B::copy(ct, t);
};

/// A backend that folds a batch norm and its ReLU into the convolution that follows (the CPU backend): it
/// computes batch statistics without writing an output, turns them into a per-channel scale and shift, and
/// applies those to the convolution's input while packing it. Dense layers use it when it is there and never
/// store their BN-ReLU outputs; with other backends they run batch norm and convolution one after the other.
template <class B>
concept FoldsBatchNormIntoConv =
    Backend<B> && requires(typename B::context& ctx, const tensor<B>& t, typename B::scalar_type s, double d,
                           const conv_geometry& g) {
      B::batch_norm_statistics(ctx, t, t, t, &t, &t, d, d, index_t{0});
      B::batch_norm_fold(ctx, t, t, t, t, t, t);
      B::batch_norm_fold_running(ctx, t, t, t, t, d, t, t);
      B::conv2d_affine_relu_forward(ctx, t, t, t, t, t, g);
      B::conv2d_affine_relu_backward_filter(ctx, t, t, t, t, t, g, s);
    };

/// A trainable parameter: its value and the gradient backward writes into.
template <class B>
struct parameter {
  tensor<B> value;
  tensor<B> grad;
  parameter() = default;
  explicit parameter(const shape& s) : value(s), grad(tensor<B>::zeros(s)) {}
};

/// A layer: `forward(ctx, x, cache&)` (training mode; fills the cache), `infer(ctx, x)` (inference, const)
/// and `backward(ctx, cache, dy, grad_mode)` (returns dx, writes or accumulates parameter gradients).
template <class L>
concept Layer = requires { typename L::backend_type; typename L::cache; } &&
                requires(L& l, const L& cl, typename L::backend_type::context& ctx,
                         const tensor<typename L::backend_type>& x, typename L::cache& c, grad_mode m) {
                  { l.forward(ctx, x, c) } -> std::same_as<tensor<typename L::backend_type>>;
                  { cl.infer(ctx, x) } -> std::same_as<tensor<typename L::backend_type>>;
                  { l.backward(ctx, c, x, m) } -> std::same_as<tensor<typename L::backend_type>>;
                };

template <class>
inline constexpr bool dependent_false = false;

}  // namespace mammocl

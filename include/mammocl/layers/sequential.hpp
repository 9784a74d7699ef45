#pragma once
/// `sequential<L...>`: layers applied one after another. Forward is a left fold over the tuple of layers,
/// backward a fold over the reversed indices; the type stays flat however many layers there are.
/// Children are named "0", "1", ... (as in torch.nn.Sequential) unless names are given.
#include <array>
#include <string>
#include <tuple>
#include <utility>

#include "mammocl/core/concepts.hpp"

namespace mammocl::layers {

template <Layer... L>
class sequential {
  static_assert(sizeof...(L) > 0, "mammocl: sequential needs at least one layer.");
  using first = std::tuple_element_t<0, std::tuple<L...>>;

 public:
  using backend_type = typename first::backend_type;
  static_assert((std::is_same_v<typename L::backend_type, backend_type> && ...),
                "mammocl: every layer of a sequential must use the same backend.");
  using tensor_t = tensor<backend_type>;
  struct cache {
    std::tuple<typename L::cache...> items;
  };

  explicit sequential(L... layers) : layers_(std::move(layers)...) {
    for (std::size_t i = 0; i < sizeof...(L); ++i) names_[i] = std::to_string(i);
  }
  sequential(std::array<std::string, sizeof...(L)> names, L... layers)
      : layers_(std::move(layers)...), names_(std::move(names)) {}

  [[nodiscard]] tensor_t forward(typename backend_type::context& ctx, const tensor_t& x, cache& c) {
    return forward_impl(ctx, x, c, std::index_sequence_for<L...>{});
  }
  [[nodiscard]] tensor_t infer(typename backend_type::context& ctx, const tensor_t& x) const {
    tensor_t y = x;
    std::apply([&](const auto&... l) { ((y = l.infer(ctx, y)), ...); }, layers_);
    return y;
  }
  [[nodiscard]] tensor_t backward(typename backend_type::context& ctx, cache& c, const tensor_t& dy, grad_mode mode) {
    return backward_impl(ctx, c, dy, mode, std::index_sequence_for<L...>{});
  }
  template <std::size_t I>
  [[nodiscard]] auto& get() noexcept { return std::get<I>(layers_); }

  template <class F>
  void for_each_parameter(const std::string& p, F&& f) {
    visit_children([&](auto& l, const std::string& n) { l.for_each_parameter(p + n + ".", f); });
  }
  template <class F>
  void for_each_buffer(const std::string& p, F&& f) {
    visit_children([&](auto& l, const std::string& n) { l.for_each_buffer(p + n + ".", f); });
  }

 private:
  template <std::size_t... I>
  tensor_t forward_impl(typename backend_type::context& ctx, const tensor_t& x, cache& c, std::index_sequence<I...>) {
    tensor_t y = x;
    ((y = std::get<I>(layers_).forward(ctx, y, std::get<I>(c.items))), ...);
    return y;
  }
  template <std::size_t... I>
  tensor_t backward_impl(typename backend_type::context& ctx, cache& c, const tensor_t& dy, grad_mode mode,
                         std::index_sequence<I...>) {
    constexpr std::size_t n = sizeof...(L);
    tensor_t g = dy;
    ((g = std::get<n - 1 - I>(layers_).backward(ctx, std::get<n - 1 - I>(c.items), g, mode)), ...);
    return g;
  }
  template <class F>
  void visit_children(F&& f) {
    [&]<std::size_t... I>(std::index_sequence<I...>) { (f(std::get<I>(layers_), names_[I]), ...); }
    (std::index_sequence_for<L...>{});
  }
  std::tuple<L...> layers_;
  std::array<std::string, sizeof...(L)> names_;
};

}  // namespace mammocl::layers

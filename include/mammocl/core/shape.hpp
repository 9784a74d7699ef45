#pragma once
/// `shape`: the extents of a tensor of rank 0 to 4. Images are NCHW; features are (N, F).
#include <array>
#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <sstream>
#include <string>

#include "mammocl/core/error.hpp"

namespace mammocl {

using index_t = std::int64_t;

class shape {
 public:
  static constexpr int max_rank = 4;
  constexpr shape() = default;
  shape(std::initializer_list<index_t> dims) {
    MAMMOCL_EXPECTS(dims.size() <= max_rank, "shape: rank ", dims.size(), " exceeds the maximum of 4");
    for (index_t d : dims) {
      MAMMOCL_EXPECTS(d >= 0, "shape: negative extent ", d);
      d_[rank_++] = d;
    }
  }
  [[nodiscard]] constexpr int rank() const noexcept { return rank_; }
  [[nodiscard]] index_t operator[](int i) const {
    MAMMOCL_EXPECTS(i >= 0 && i < rank_, "shape: axis ", i, " out of range for rank ", rank_);
    return d_[i];
  }
  [[nodiscard]] constexpr index_t numel() const noexcept {
    index_t n = 1;
    for (int i = 0; i < rank_; ++i) n *= d_[i];
    return n;
  }
  [[nodiscard]] constexpr const index_t* begin() const noexcept { return d_.data(); }
  [[nodiscard]] constexpr const index_t* end() const noexcept { return d_.data() + rank_; }
  friend constexpr bool operator==(const shape& a, const shape& b) noexcept {
    if (a.rank_ != b.rank_) return false;
    for (int i = 0; i < a.rank_; ++i)
      if (a.d_[i] != b.d_[i]) return false;
    return true;
  }
  [[nodiscard]] std::string str() const {
    std::ostringstream os;
    os << *this;
    return os.str();
  }
  friend std::ostream& operator<<(std::ostream& os, const shape& s) {
    os << '(';
    for (int i = 0; i < s.rank_; ++i) os << (i ? "," : "") << s.d_[i];
    return os << ')';
  }

 private:
  std::array<index_t, max_rank> d_{};
  int rank_ = 0;
};

}  // namespace mammocl

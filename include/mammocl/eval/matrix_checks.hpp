#pragma once
/// Input checks shared by the evaluation headers that take row-major feature matrices.
#include <cmath>
#include <cstddef>
#include <span>

#include "mammocl/core/error.hpp"

namespace mammocl::eval::detail {

/// Checks a row-major N×dim matrix: dim > 0, size divisible by dim, at least `min_rows` rows, all
/// finite. Returns N. `what` names the matrix in the message.
inline std::size_t checked_rows(std::span<const double> x, std::size_t dim, std::size_t min_rows, const char* what) {
  MAMMOCL_EXPECTS(dim > 0, what, ": dimension must be positive, got 0");
  MAMMOCL_EXPECTS(x.size() % dim == 0, what, ": ", x.size(), " values are not a whole number of rows of ", dim);
  const std::size_t n = x.size() / dim;
  MAMMOCL_EXPECTS(n >= min_rows, what, ": needs at least ", min_rows, " rows, got ", n);
  for (std::size_t k = 0; k < x.size(); ++k)
    MAMMOCL_CHECK(std::isfinite(x[k]), numeric_error, what, ": value ", x[k], " at row ", k / dim, ", column ",
                  k % dim, " is not finite");
  return n;
}

}  // namespace mammocl::eval::detail

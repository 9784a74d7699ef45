#pragma once
/// Errors thrown by MammoCL. Every error carries the file and line that raised it and a sentence that
/// names the tensor, layer, file or field involved, what was expected and what was found.
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace mammocl {

class error : public std::runtime_error {
 public:
  error(const std::string& what, const char* file, int line)
      : std::runtime_error(what + " [" + file + ":" + std::to_string(line) + "]"),
        message_(what), file_(file), line_(line) {}
  /// The sentence alone, without the source location.
  [[nodiscard]] const std::string& message() const noexcept { return message_; }
  [[nodiscard]] const char* file() const noexcept { return file_; }
  [[nodiscard]] int line() const noexcept { return line_; }

 private:
  std::string message_;
  const char* file_;
  int line_;
};

/// A tensor or layer received a shape it cannot work with.
class shape_error : public error { using error::error; };
/// A configuration (options, model config, flags) that cannot work.
class config_error : public error { using error::error; };
/// A file could not be read or written, or its content is malformed.
class io_error : public error { using error::error; };
/// A numerical problem (NaN or Inf where a finite value is required).
class numeric_error : public error { using error::error; };

namespace detail {
template <class... Args>
[[nodiscard]] std::string concat(Args&&... args) {
  std::ostringstream os;
  (os << ... << std::forward<Args>(args));
  return os.str();
}
}  // namespace detail
}  // namespace mammocl

/// Throws `mammocl::shape_error` built from the streamed message pieces when `cond` is false.
#define MAMMOCL_EXPECTS(cond, ...)                                                                  \
  do {                                                                                              \
    if (!(cond)) [[unlikely]]                                                                       \
      throw ::mammocl::shape_error(::mammocl::detail::concat(__VA_ARGS__), __FILE__, __LINE__);   \
  } while (0)

/// Throws the given error type (a subclass of mammocl::error) with the streamed message.
#define MAMMOCL_THROW(type, ...) throw type(::mammocl::detail::concat(__VA_ARGS__), __FILE__, __LINE__)

/// Throws `type` when `cond` is false.
#define MAMMOCL_CHECK(cond, type, ...)                                                              \
  do {                                                                                              \
    if (!(cond)) [[unlikely]] MAMMOCL_THROW(type, __VA_ARGS__);                                     \
  } while (0)

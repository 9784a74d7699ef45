#pragma once
/// Command-line helpers shared by the benchmark programs.
#include <charconv>
#include <sstream>
#include <string>
#include <string_view>
#include <system_error>

namespace mammocl::bench {

/// The integer written in `text` when all of it is one and it is >= lo; otherwise calls
/// usage(argv0, "<flag> needs an integer >= <lo>, got '<text>'"), which must not return.
template <class I, class Usage>
I parse_number(Usage&& usage, const char* argv0, std::string_view flag, std::string_view text, I lo) {
  I v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc{} || end != text.data() + text.size() || v < lo) {
    std::ostringstream os;
    os << flag << " needs an integer >= " << lo << ", got '" << text << "'";
    usage(argv0, os.str());
  }
  return v;
}

}  // namespace mammocl::bench

#pragma once
/// What a fuzz harness tells the driver (tests/fuzz/fuzz_main.cpp) about its parser: a name, whether the
/// input is text (turns on the token-aware mutations), which real files of the shared data folder seed
/// the corpus, a few small valid inputs the harness builds itself, and a dictionary of format tokens.
///
/// Every harness defines, in one translation unit:
///   extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);
///   mammocl::fuzz::target_info mammocl::fuzz::describe_target();
/// The first is the libFuzzer entry point (so the same file builds with clang -fsanitize=fuzzer); it
/// calls the parser and swallows `mammocl::error`, the library's documented failure. Anything else that
/// escapes, a sanitizer report, a crash or a hang is a bug. The second is used only by the stand-alone
/// driver and by `--write-corpus`.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace mammocl::fuzz {

using bytes = std::vector<std::uint8_t>;

/// Real files under the shared data folder that seed the corpus. `path` is relative to the data root;
/// when it names a directory, the first `max_files` regular files whose names end in `extension` (in
/// sorted order, so the choice is deterministic without naming any file) are taken. Each file is cut
/// to its first `max_bytes` bytes (large images: the header plus the first few KB).
struct seed_source {
  std::string path;
  std::size_t max_bytes = 4096;
  std::string extension;     ///< directories only
  std::size_t max_files = 1;  ///< directories only
};

/// A named, small, valid input built by the harness (possibly from real data: e.g. a crop of a real
/// image re-encoded). `data_root` is empty when the shared data folder is absent.
struct generated_seed {
  std::string name;
  bytes data;
};

struct target_info {
  std::string name;   ///< "pgm", "csv", ...: names the executable, the regressions folder and artifacts
  bool text = false;  ///< text formats get number/field/line mutations on top of the byte-level ones
  std::vector<seed_source> data_seeds;
  std::function<std::vector<generated_seed>(const std::filesystem::path& data_root)> generate;
  std::vector<std::string> dictionary;  ///< tokens worth inserting (magic numbers, keywords, tags)
  std::size_t max_len = 64 * 1024;      ///< mutated inputs are cut to max(max_len, largest seed)
  /// Iterations run even when the time is up (0: the driver's default, 1000); slow parsers ask for fewer
  /// so that the time bound still holds.
  std::uint64_t min_iterations = 0;
};

/// Defined by each harness.
target_info describe_target();

inline bytes to_bytes(std::string_view s) { return bytes(s.begin(), s.end()); }

/// The shared data folder as the tests find it: $MAMMOCL_DATA, else <source>/../shared/data. Harnesses
/// that need real files at run time (not only as seeds) use it; it may not exist.
inline std::filesystem::path data_root() {
  if (const char* e = std::getenv("MAMMOCL_DATA"); e && *e) return e;
  return std::filesystem::path(MAMMOCL_SOURCE_DIR) / ".." / "shared" / "data";
}

}  // namespace mammocl::fuzz

// Fuzz harness: mammocl::io::safetensors::file::parse (the checkpoint format, io/safetensors.hpp) on
// arbitrary bytes. A parsed file is then read back completely (every tensor converted to float or int64
// and re-serialised), so that a header the parser accepted but got wrong shows up as an out-of-bounds
// read. mammocl::error is the accepted failure.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_target.hpp"
#include "mammocl/io/safetensors.hpp"

namespace st = mammocl::io::safetensors;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  try {
    const auto f = st::file::parse(std::span(reinterpret_cast<const std::byte*>(data), size), "fuzz.safetensors");
    for (const auto& [name, e] : f.tensors()) {
      try {
        (void)f.values<float>(name);
      } catch (const mammocl::error&) {
        (void)f.values<std::int64_t>(name);
      }
    }
    // What parse accepted, serialize must reproduce as a file that parses to the same tensors.
    const auto again = st::file::parse(f.serialize(), "fuzz-reserialised.safetensors");
    if (again.size() != f.size()) __builtin_trap();
  } catch (const mammocl::error&) {
  }
  return 0;
}

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "safetensors";
  t.generate = [](const std::filesystem::path&) {
    std::vector<generated_seed> out;
    st::file f;
    f.set_values<float>("features.conv0.weight", {2, 1, 2, 2}, std::vector<float>{1, -2, 3.5f, 0, 1e-30f, 7, 8, 9});
    f.set_values<double>("scale", {}, std::vector<double>{0.25});
    f.set_values<std::int64_t>("num_batches_tracked", {1}, std::vector<std::int64_t>{42});
    f.set_values<float>("empty", {0, 3}, std::vector<float>{});
    f.metadata()["format"] = "pt";
    const auto img = f.serialize();
    out.push_back({"four tensors and metadata",
                   bytes(reinterpret_cast<const std::uint8_t*>(img.data()),
                         reinterpret_cast<const std::uint8_t*>(img.data()) + img.size())});
    st::file g;
    g.set_values<std::int64_t>("labels", {5}, std::vector<std::int64_t>{0, 1, 2, 3, 4});
    const auto img2 = g.serialize();
    out.push_back({"one int64 tensor", bytes(reinterpret_cast<const std::uint8_t*>(img2.data()),
                                             reinterpret_cast<const std::uint8_t*>(img2.data()) + img2.size())});
    return out;
  };
  t.dictionary = {"\"dtype\"", "\"shape\"", "\"data_offsets\"", "\"__metadata__\"", "\"F16\"", "\"BF16\"",
                  "\"F64\"",   "\"U64\"",   "\"BOOL\"",         "\"I8\"",           "[]",       "[0,0]",
                  "18446744073709551615",   "{}",  "\\u0000",     "\"\\ud800\""};
  t.max_len = 4096;
  return t;
}

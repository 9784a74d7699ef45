// Fuzz harness: mammocl::data::read_manifest (data/domains.hpp), the JSON domain manifest that fixes an
// experiment's patient split and training sets. The reader takes a path, so each input is written to
// one per-process file in the temp directory first. What it accepts must survive a write/read round
// trip unchanged (the header's promise: "the result compares equal to the plan"). mammocl::error is the
// accepted failure.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <string>

#include "fuzz_target.hpp"
#include "mammocl/data/domains.hpp"

namespace {
const std::filesystem::path& scratch() {
  static const std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("mammocl-fuzz-manifest-" + std::to_string(::getpid()) + ".json");
  return p;
}
void put_file(const std::filesystem::path& p, const std::uint8_t* data, std::size_t size) {
  std::FILE* f = std::fopen(p.c_str(), "wb");
  if (!f) __builtin_trap();  // the temp directory must be writable
  if (size) (void)!std::fwrite(data, 1, size, f);
  std::fclose(f);
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace d = mammocl::data;
  put_file(scratch(), data, size);
  try {
    const d::domain_plan plan = d::read_manifest(scratch());
    const std::string again = d::manifest_json(plan).dump();
    put_file(scratch(), reinterpret_cast<const std::uint8_t*>(again.data()), again.size());
    if (!(d::read_manifest(scratch()) == plan)) __builtin_trap();
  } catch (const mammocl::error&) {
  }
  std::error_code ec;
  std::filesystem::remove(scratch(), ec);
  return 0;
}

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "domain_manifest";
  t.text = true;
  t.generate = [](const std::filesystem::path&) {
    namespace d = mammocl::data;
    // 12 items of 6 patients (two views each), labels in the 5-class order.
    std::vector<d::source_item> items;
    for (int k = 0; k < 12; ++k) items.push_back({100 + k, (k * 3) % 5, "patient-" + std::to_string(k / 2)});
    std::vector<generated_seed> out;
    for (const auto variant : {d::train_variant::mixed, d::train_variant::mixed_downsampled, d::train_variant::augmented}) {
      d::domain_plan_options opt;
      opt.variant = variant;
      opt.ratio = variant == d::train_variant::mixed_downsampled ? 0.5 : 1.0;
      opt.split = {0.5, 0.25, 0.25, d::patient_stratum::max_label};
      out.push_back({std::string(d::variant_name(variant)), to_bytes(d::manifest_json(d::make_domain_plan(items, opt)).dump(1))});
    }
    return out;
  };
  t.dictionary = {"\"format\"", "\"version\"", "\"seed\"", "\"options\"", "\"items\"", "\"split\"", "\"sets\"",
                  "\"domain\"", "\"A\"", "\"B\"", "\"pair\"", "\"label\"", "\"patient\"", "\"index\"", "null",
                  "true", "[]", "{}", "18446744073709551615", "-9223372036854775808", "1e400", "\"\\u0000\""};
  t.max_len = 16384;
  t.min_iterations = 500;  // one file write and read per input
  return t;
}

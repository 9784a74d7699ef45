// Fuzz harness: mammocl::data::parse_mini_mias_info (data/mini_mias.hpp), the Info.txt reader, followed
// by build_mini_mias as read_mini_mias does, so the grouping, BG consistency and NORM/lesion checks run
// on every accepted input. Images are looked up in a folder that does not exist with
// skip_missing_images, so no file is opened and every image is reported as skipped (the test of the
// reader covers the real folder). mammocl::error is the accepted failure.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "fuzz_target.hpp"
#include "mammocl/data/mini_mias.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    const auto rows = mammocl::data::parse_mini_mias_info(text, "fuzz-Info.txt");
    for (const auto& r : rows) {
      if (r.tokens == 7 && !(r.x && r.y && r.radius)) __builtin_trap();  // the header's promise
      (void)mammocl::data::mias_patient_id(r.number);
    }
    mammocl::data::mini_mias_options opt;
    opt.skip_missing_images = true;
    opt.arch_asym = size % 2 ? mammocl::data::mias_arch_asym::as_mass : mammocl::data::mias_arch_asym::exclude_image;
    (void)mammocl::data::build_mini_mias(rows, "/nonexistent-mammocl-fuzz-dir", "fuzz-Info.txt", opt);
  } catch (const mammocl::error&) {
  }
  return 0;
}

mammocl::fuzz::target_info mammocl::fuzz::describe_target() {
  target_info t;
  t.name = "mini_mias";
  t.text = true;
  t.data_seeds = {{"mini-mias/Info.txt", 1 << 20, "", 1}};
  t.generate = [](const std::filesystem::path&) {
    return std::vector<generated_seed>{
        {"every row shape", to_bytes("REFNUM BG CLASS SEVERITY X Y RADIUS \n"
                                     "mdb900 G CIRC B 535 425 197\n"
                                     "mdb901 F NORM\n\n"
                                     "mdb902 D CALC M *NOTE 3*\r\n"
                                     "mdb903 G MISC B\n"
                                     "mdb903 G ARCH M 1.5 2.5e2 0\n")},
    };
  };
  t.dictionary = {"REFNUM", "mdb", "NORM", "CALC", "CIRC", "SPIC", "MISC", "ARCH", "ASYM", "*NOTE", "3*", " B ", " M "};
  return t;
}

#pragma once
// Where the tests find the real data of ../shared/data (mini-MIAS, DICOM samples, CBIS-DDSM CSVs).
// $MAMMOCL_DATA wins when set; otherwise <source>/../shared/data. When the folder is missing the test
// fails with a message that says where it looked, unless MAMMOCL_ALLOW_MISSING_DATA=1, in which case the
// test case is skipped with that message (for machines without the data; CI always has it).
#include <boost/test/unit_test.hpp>

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace mammocl::test {

/// The shared data folder, or nullopt after reporting (fail or skip) that `relative` is absent.
/// Use: `auto dir = shared_data("mini-mias/Info.txt"); if (!dir) return;`
inline std::optional<std::filesystem::path> shared_data(const std::string& relative = "") {
  namespace fs = std::filesystem;
  fs::path root;
  if (const char* env = std::getenv("MAMMOCL_DATA"); env && *env)
    root = env;
  else
    root = fs::path(MAMMOCL_SOURCE_DIR) / ".." / "shared" / "data";
  const fs::path wanted = relative.empty() ? root : root / relative;
  if (fs::exists(wanted)) return root;
  const std::string msg = "real test data not found: " + wanted.string() +
                          " (set MAMMOCL_DATA to the shared data folder)";
  if (const char* allow = std::getenv("MAMMOCL_ALLOW_MISSING_DATA"); allow && std::string(allow) == "1") {
    BOOST_TEST_MESSAGE("SKIPPED: " << msg);
    return std::nullopt;
  }
  BOOST_FAIL(msg);
  return std::nullopt;
}

}  // namespace mammocl::test

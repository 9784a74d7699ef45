#pragma once
// Assertions shared by the test executables.
#include <boost/test/unit_test.hpp>

#include <string>

#include "mammocl/testing/gradient_check.hpp"

namespace mammocl::test {

/// Runs f and checks that it throws E with a message containing `fragment`.
template <class E, class F>
void expect_error(F&& f, const std::string& fragment) {
  try {
    f();
    BOOST_ERROR("no exception; expected one mentioning '" << fragment << "'");
  } catch (const E& e) {
    BOOST_TEST(std::string(e.what()).find(fragment) != std::string::npos, "message: " << e.what());
  }
}

/// Passes when a gradient check passed; prints its report either way.
inline void expect_gradients_ok(const testing::gradient_check_result& r) {
  BOOST_TEST_MESSAGE(r.report);
  BOOST_TEST(r.ok, "gradient check failed:\n" << r.report);
}

}  // namespace mammocl::test

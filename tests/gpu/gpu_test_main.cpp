// The one main of the GPU test executables: Boost.Test runs only when a CUDA device is present. With no
// device, or no driver, it prints one line and exits 77, which CMake's SKIP_RETURN_CODE turns into "skipped".
#define BOOST_TEST_NO_MAIN
#include <boost/test/unit_test.hpp>

#include <cuda_runtime_api.h>

#include <cstdio>

namespace {
/// Names the master suite; the test cases register themselves.
bool init_gpu_tests() {
  boost::unit_test::framework::master_test_suite().p_name.value = "mammocl_gpu";
  return true;
}
}  // namespace

int main(int argc, char** argv) {
  int devices = 0;
  const cudaError_t e = cudaGetDeviceCount(&devices);
  if (e != cudaSuccess || devices == 0) {
    std::printf("SKIPPED: no CUDA device (cudaGetDeviceCount: %s); these tests need a GPU\n",
                e != cudaSuccess ? cudaGetErrorString(e) : "0 devices");
    std::fflush(stdout);
    return 77;
  }
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess)
    std::printf("GPU tests on device 0: %s (compute capability %d.%d, %.1f GiB)\n", prop.name, prop.major, prop.minor,
                static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0));
  return boost::unit_test::unit_test_main(&init_gpu_tests, argc, argv);
}

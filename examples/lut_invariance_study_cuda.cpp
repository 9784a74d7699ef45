// lut_invariance_study on the CUDA backend: the same program text (lut_invariance_study.cpp) compiled with
// B = cuda_backend in its own translation unit, so that it compiles in parallel with the CPU one and a
// build without CUDA never sees it. lut_invariance_study's main() calls lut_invariance_study_cuda_main for
// --device cuda.
#define MAMMOCL_EXAMPLE_BACKEND_HEADER "mammocl/backend/cuda/cuda_backend.hpp"
#define MAMMOCL_EXAMPLE_BACKEND mammocl::cuda_backend
#define MAMMOCL_EXAMPLE_ENTRY lut_invariance_study_cuda_main
#include "lut_invariance_study.cpp"

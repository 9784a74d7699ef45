// whole_image_classifier on the CUDA backend: the same program text (whole_image_classifier.cpp) compiled with
// B = cuda_backend in its own translation unit, so that it compiles in parallel with the CPU one and a
// build without CUDA never sees it. whole_image_classifier's main() calls whole_image_classifier_cuda_main for
// --device cuda.
#define MAMMOCL_EXAMPLE_BACKEND_HEADER "mammocl/backend/cuda/cuda_backend.hpp"
#define MAMMOCL_EXAMPLE_BACKEND mammocl::cuda_backend
#define MAMMOCL_EXAMPLE_ENTRY whole_image_classifier_cuda_main
#include "whole_image_classifier.cpp"
